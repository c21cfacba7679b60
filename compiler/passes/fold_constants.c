/* compiler/passes/fold_constants.c: nodes that compute nothing go away.
 *
 * A node is a no-op when its output equals its operand element for element,
 * bit for bit: identity and dropout (at inference), reshape or flatten to the
 * operand's own shape, transpose by the identity permutation, mul or div by a
 * scalar 1 (x*1 and x/1 are exact; 1/x is not, so a reversed div stays), and
 * x - 0 (exact for every x, -0 included; x + 0 is not, for x = -0), and
 * of version 1.1: a slice or expand whose result has its operand's shape
 * (the whole axis, in order), pow by a scalar 1 (x^1 = x, NaN and -0
 * included; 1^x is not).
 *
 * Its uses are rewired to its operand. When its output is a model output the
 * operand must take the name instead (the outputs are the generated API):
 * possible when the operand is a node output and not itself a model output;
 * otherwise the node stays. `constant` nodes stay: they are how a weights
 * tensor becomes a value. Folding arithmetic on constants is left for later:
 * it needs an evaluator with the interpreter's exact semantics. */
#include <string.h>

#include "ir/rewrite.h"
#include "passes.h"

static bool same_type(const kiln_type *a, const kiln_type *b)
{
    return a->dtype == b->dtype && kiln_shape_equal(&a->shape, &b->shape) && a->layout == b->layout &&
           a->block == b->block && a->quantized == b->quantized &&
           (!a->quantized || (a->scale == b->scale && a->zero_point == b->zero_point));
}

static bool scalar_is(const kiln_node *n, double v)
{
    return n->n_inputs == 1 && kiln_node_has(n, KILN_ATTR_SCALAR) && n->attrs[KILN_ATTR_SCALAR].f == v;
}

static bool reversed(const kiln_node *n)
{
    return kiln_node_has(n, KILN_ATTR_REVERSE) && n->attrs[KILN_ATTR_REVERSE].i != 0;
}

/* Whether node n passes its first operand through unchanged. */
static bool is_noop(const kiln_graph *g, const kiln_node *n)
{
    if (n->n_inputs < 1)
        return false;
    const kiln_type *in = &g->values[n->inputs[0]].type, *out = &g->values[n->output].type;
    if (!same_type(in, out))
        return false;
    switch (n->op) {
    case KILN_OP_IDENTITY:
    case KILN_OP_DROPOUT:
    case KILN_OP_REORDER: /* between equal layouts: a copy */
    case KILN_OP_RESHAPE:
    case KILN_OP_FLATTEN:
    case KILN_OP_SLICE:  /* the same shape: every element, in order */
    case KILN_OP_EXPAND: /* nothing repeated */
        return true; /* same type: the same shape */
    case KILN_OP_TRANSPOSE: {
        const kiln_attr *p = &n->attrs[KILN_ATTR_PERM];
        for (int i = 0; i < p->n; i++)
            if (p->ints[i] != i)
                return false;
        return true;
    }
    case KILN_OP_MUL:
        return scalar_is(n, 1.0);
    case KILN_OP_DIV:
        return scalar_is(n, 1.0) && !reversed(n);
    case KILN_OP_SUB:
        return scalar_is(n, 0.0) && !reversed(n);
    case KILN_OP_POW:
        return scalar_is(n, 1.0) && !reversed(n);
    default:
        return false;
    }
}

kiln_status kiln_pass_fold_constants(kiln_graph *g, kiln_diag *d)
{
    kiln_id *node_map = kiln_calloc(g->n_nodes ? g->n_nodes : 1, sizeof *node_map);
    kiln_id *value_map = kiln_calloc(g->n_values ? g->n_values : 1, sizeof *value_map);
    bool *is_output = kiln_calloc(g->n_values ? g->n_values : 1, sizeof *is_output);
    if (!node_map || !value_map || !is_output) {
        kiln_free(node_map);
        kiln_free(value_map);
        kiln_free(is_output);
        kiln_diag_error(d, (kiln_loc){0}, "out of memory in pass fold_constants");
        return KILN_ERR_OUT_OF_MEMORY;
    }
    for (size_t i = 0; i < g->n_outputs; i++)
        is_output[g->outputs[i]] = true;
    size_t removed = 0;
    for (size_t i = 0; i < g->n_nodes; i++) {
        kiln_node *n = &g->nodes[i];
        if (!is_noop(g, n))
            continue;
        kiln_id a = n->inputs[0], y = n->output;
        if (is_output[y]) {
            /* The operand takes the output's name, if it can. */
            kiln_value *av = &g->values[a];
            if (av->kind != KILN_VALUE_NODE || is_output[a])
                continue;
            av->name = g->values[y].name; /* the index is rebuilt by the compaction */
            av->loc = g->values[y].loc;
            is_output[a] = true;
        }
        kiln_graph_replace_uses(g, y, a);
        /* The node keeps reading `a`; it goes with its output. */
        node_map[i] = KILN_NO_ID;
        value_map[y] = KILN_NO_ID;
        removed++;
    }
    kiln_status st = KILN_OK;
    if (removed > 0) {
        st = kiln_graph_compact(g, node_map, value_map);
        if (st == KILN_OK)
            kiln_graph_clear_annotations(g, KILN_ANNOT_PLANS);
        else
            kiln_diag_error(d, (kiln_loc){0}, "fold_constants: internal error while removing no-op nodes");
    }
    kiln_free(node_map);
    kiln_free(value_map);
    kiln_free(is_output);
    return st;
}
