/* ir/verify.c: the IR's invariants, checked after every pass in tests and
 * debug builds. Reports every broken invariant it finds, not only the first. */
#include <string.h>

#include "graph.h"

static void node_error(kiln_diag *d, const kiln_graph *g, size_t i, const char *msg)
{
    const kiln_node *n = &g->nodes[i];
    kiln_diag_error(d, n->loc, "IR node %zu (%s, layer '%s'): %s", i, kiln_op_name(n->op),
                    n->layer ? n->layer : "?", msg);
}

static void check_values(const kiln_graph *g, kiln_diag *d)
{
    for (size_t i = 0; i < g->n_values; i++) {
        const kiln_value *v = &g->values[i];
        if (!v->name) {
            kiln_diag_error(d, v->loc, "IR value %zu has no name", i);
            continue;
        }
        if (kiln_graph_find_value(g, v->name) != i)
            kiln_diag_error(d, v->loc, "IR value '%s' is not unique or not indexed", v->name);
        const kiln_shape *s = &v->type.shape;
        if (s->rank < 0 || s->rank > KILN_MAX_RANK) {
            kiln_diag_error(d, v->loc, "IR value '%s' has rank %d", v->name, s->rank);
            continue;
        }
        if (s->batched && (s->rank < 1 || s->dims[0] != KILN_DIM_BATCH || !g->batch_name))
            kiln_diag_error(d, v->loc, "IR value '%s' is batched but its axis 0 is not the batch", v->name);
        for (int k = s->batched ? 1 : 0; k < s->rank; k++)
            if (s->dims[k] < 1 || s->dims[k] > KILN_MAX_DIM)
                kiln_diag_error(d, v->loc, "IR value '%s' has dimension %d = %lld", v->name, k,
                                (long long)s->dims[k]);
        if ((unsigned)v->type.dtype >= KILN_DTYPE_COUNT)
            kiln_diag_error(d, v->loc, "IR value '%s' has an unknown dtype", v->name);
        switch (v->kind) {
        case KILN_VALUE_NODE:
            if (v->producer >= g->n_nodes || g->nodes[v->producer].output != i)
                kiln_diag_error(d, v->loc, "IR value '%s' has no producing node", v->name);
            break;
        case KILN_VALUE_PARAM:
            if (v->producer != KILN_NO_ID)
                kiln_diag_error(d, v->loc, "IR parameter '%s' has a producer", v->name);
            if (v->type.shape.batched)
                kiln_diag_error(d, v->loc, "IR parameter '%s' cannot have a batch dimension", v->name);
            if (v->param.source == KILN_PARAM_FILE && v->param.file >= g->n_weight_files)
                kiln_diag_error(d, v->loc, "IR parameter '%s' names weights file %u of %zu", v->name,
                                v->param.file, g->n_weight_files);
            break;
        case KILN_VALUE_INPUT: {
            bool listed = false;
            for (size_t k = 0; k < g->n_inputs; k++)
                listed |= g->inputs[k] == i;
            if (!listed)
                kiln_diag_error(d, v->loc, "IR input '%s' is not a model input", v->name);
            break;
        }
        }
    }
}

static void check_nodes(const kiln_graph *g, kiln_diag *d)
{
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln_node *n = &g->nodes[i];
        char err[512];
        if ((unsigned)n->op >= KILN_OP_COUNT) {
            node_error(d, g, i, "unknown op");
            continue;
        }
        if (n->output >= g->n_values || g->values[n->output].producer != i) {
            node_error(d, g, i, "its output value does not point back at it");
            continue;
        }
        bool ordered = true;
        for (uint32_t k = 0; k < n->n_inputs; k++) {
            kiln_id in = n->inputs[k];
            if (in >= g->n_values) {
                node_error(d, g, i, "an operand refers to no value");
                ordered = false;
                break;
            }
            const kiln_value *v = &g->values[in];
            if (v->kind == KILN_VALUE_NODE && v->producer >= i) {
                snprintf(err, sizeof err, "operand '%s' is produced later (not topological)", v->name);
                node_error(d, g, i, err);
                ordered = false;
            }
        }
        if (!ordered)
            continue;
        kiln_type want;
        if (kiln_ir_node_type(g, n, &want, err, sizeof err) != KILN_OK) {
            node_error(d, g, i, err);
            continue;
        }
        const kiln_type *have = &g->values[n->output].type;
        if (n->op == KILN_OP_CONSTANT || have->layout == KILN_LAYOUT_PLAIN) {
            if (!kiln_shape_equal(&want.shape, &have->shape)) {
                char a[160], b[160];
                snprintf(err, sizeof err, "output is %s but the shape rule gives %s",
                         kiln_type_format(have, g->batch_name, a, sizeof a),
                         kiln_type_format(&want, g->batch_name, b, sizeof b));
                node_error(d, g, i, err);
            }
        }
    }
}

kiln_status kiln_ir_verify(const kiln_graph *g, kiln_diag *d)
{
    size_t before = d->errors;
    if (!g->name || !g->name[0])
        kiln_diag_error(d, (kiln_loc){0}, "IR graph has no name");
    check_values(g, d);
    check_nodes(g, d);
    for (size_t i = 0; i < g->n_inputs; i++)
        if (g->inputs[i] >= g->n_values || g->values[g->inputs[i]].kind != KILN_VALUE_INPUT)
            kiln_diag_error(d, (kiln_loc){0}, "IR graph input %zu is not an input value", i);
    if (g->n_outputs == 0)
        kiln_diag_error(d, (kiln_loc){0}, "IR graph '%s' has no outputs", g->name ? g->name : "?");
    for (size_t i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] >= g->n_values)
            kiln_diag_error(d, (kiln_loc){0}, "IR graph output %zu refers to no value", i);
    return d->errors > before ? KILN_ERR_INTERNAL : KILN_OK;
}
