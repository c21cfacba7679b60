/* compiler/passes/layout.c: channel-blocked activations (nchw<B>c, ir/type.h)
 * where the code generator's blocked kernels pay, with reorders only where a
 * blocked value meets a reader that needs it plain.
 *
 * B is kiln_layout_options.block: the target's f32 lanes (the driver gives
 * kiln_target_lanes). With B = 0 the pass changes nothing at all.
 *
 * Policy. A value is a CANDIDATE when it is a rank-4 f32 node output that is
 * no model output (model inputs, outputs and params are always plain), and
 * its producer is
 *   - a conv2d with dilation 1 that is either ordinary (groups 1) or
 *     depthwise (groups == C_in == C_out, weight [C,1,kh,kw]), and that the
 *     target's rule lets the blocked layout hold (kiln_target_conv_blocks:
 *     depthwise, 1x1 and few-channel convolutions Winograd does not take;
 *     no target: every such conv);
 *   - a maxpool2d or avgpool2d;
 *   - a one-input elementwise op;
 *   - a binary elementwise op whose two data operands have the output's
 *     shape (no broadcasting), or its one-operand `scalar` form.
 * Every candidate starts blocked; then these two rules remove values until
 * nothing changes (they only ever remove, so the loop ends):
 *   a. the output of a pool, an elementwise op or a depthwise conv stays
 *      blocked only if all its data operands are blocked (their kernels map
 *      blocked to blocked; a groups-1 conv reads a plain input as block 1);
 *   b. a value stays blocked only if some reader uses it blocked: a conv2d
 *      whose output is blocked, a pool or elementwise node whose output is
 *      blocked, or global_avgpool (which reads any layout).
 * So a region is blocked only from a conv that starts it to the readers that
 * take blocked values, and a lone pool or elementwise op is never blocked.
 *
 * Reorders. A reader needs its operand plain when it is any op other than
 * the above, a conv2d whose output is plain, or a pool or elementwise node
 * whose output is plain. Each blocked value with such readers gets ONE
 * reorder to plain, shared by all of them, named "<value>.plain", with the
 * producer's layer, placed right after the producer. Blocked readers keep
 * reading the blocked value.
 *
 * The pass owns layouts: it first undoes any earlier decision (removes the
 * reorders whose output is no model output, wiring their readers back to the
 * reorder's operand, and makes every value plain), so running it on its own
 * output gives the same graph.
 *
 * Finally it recomputes the fusion groups (kiln_pass_fuse): a reorder ends a
 * chain, and fuse joins only values of one layout. That drops any memory
 * plan and schedule, which the later passes make again.
 *
 * Memory: every allocation (analysis arrays, the new nodes) happens while all
 * values are still plain, and a reorder between two plain values is valid,
 * so running out of memory leaves a graph that verifies. */
#include <string.h>

#include "ir/rewrite.h"
#include "passes.h"

/* Ops whose blocked output keeps its operands' layout (pools, elementwise
 * ops: ops.def's KEEP). */
static bool keeps_layout(kiln_op op) { return kiln_op_facts_of(op)->layout == KILN_LAYR_KEEP; }

/* groups == C_in == C_out with a [C,1,kh,kw] weight. */
static bool is_depthwise(const kiln_graph *g, const kiln_node *n)
{
    int64_t groups = n->attrs[KILN_ATTR_GROUPS].i;
    int64_t cin = g->values[n->inputs[0]].type.shape.dims[1];
    int64_t cout = g->values[n->output].type.shape.dims[1];
    kiln_id w = kiln_node_param(g, n, "weight");
    return groups > 1 && groups == cin && groups == cout && w != KILN_NO_ID &&
           g->values[w].type.shape.rank == 4 && g->values[w].type.shape.dims[0] == cout &&
           g->values[w].type.shape.dims[1] == 1;
}

static bool is_candidate(const kiln_graph *g, const kiln_layout_options *o, const kiln_node *n,
                         const bool *is_output)
{
    const kiln_type *t = &g->values[n->output].type;
    if (is_output[n->output] || t->shape.rank != 4 || t->dtype != KILN_F32 || t->quantized)
        return false;
    if (kiln_op_facts_of(n->op)->layout == KILN_LAYR_CONV) {
        const int64_t *dil = n->attrs[KILN_ATTR_DILATION].ints;
        if (dil[0] != 1 || dil[1] != 1)
            return false;
        if (n->attrs[KILN_ATTR_GROUPS].i != 1 && !is_depthwise(g, n))
            return false;
        return !o->target || kiln_target_conv_blocks(o->target, g, n, o->winograd);
    }
    if (keeps_layout(n->op) && !kiln_op_is_binary(n->op))
        return true;
    if (kiln_op_is_binary(n->op)) {
        uint32_t data = kiln_node_data_inputs(g, n);
        for (uint32_t k = 0; k < data; k++)
            if (!kiln_shape_equal(&g->values[n->inputs[k]].type.shape, &t->shape))
                return false;
        return data == 1 || data == 2;
    }
    return false;
}

/* Rule a: ops whose blocked output needs blocked data operands. */
static bool needs_blocked_inputs(const kiln_graph *g, const kiln_node *n)
{
    return keeps_layout(n->op) || (kiln_op_facts_of(n->op)->layout == KILN_LAYR_CONV && is_depthwise(g, n));
}

/* Whether node n reads its data operands in the blocked layout, given the
 * current decisions. */
static bool reads_blocked(const kiln_node *n, const bool *blocked)
{
    switch (kiln_op_facts_of(n->op)->layout) {
    case KILN_LAYR_READ_ANY:
        return true;
    case KILN_LAYR_CONV:
    case KILN_LAYR_KEEP:
        return blocked[n->output];
    default:
        return false;
    }
}

/* Removes the reorders an earlier run made and makes every value plain.
 * *changed tells whether anything was there to undo. */
static kiln_status undo(kiln_graph *g, bool *changed, kiln_diag *d)
{
    size_t reorders = 0, blocked = 0;
    for (size_t i = 0; i < g->n_nodes; i++)
        reorders += g->nodes[i].op == KILN_OP_REORDER;
    for (size_t v = 0; v < g->n_values; v++)
        blocked += g->values[v].type.layout != KILN_LAYOUT_PLAIN;
    *changed = reorders + blocked > 0;
    if (reorders > 0) {
        kiln_id *node_map = kiln_calloc(g->n_nodes, sizeof *node_map);
        kiln_id *value_map = kiln_calloc(g->n_values, sizeof *value_map);
        bool *is_output = kiln_calloc(g->n_values, sizeof *is_output);
        if (!node_map || !value_map || !is_output) {
            kiln_free(node_map);
            kiln_free(value_map);
            kiln_free(is_output);
            kiln_diag_error(d, (kiln_loc){0}, "out of memory in pass layout");
            return KILN_ERR_OUT_OF_MEMORY;
        }
        for (size_t k = 0; k < g->n_outputs; k++)
            is_output[g->outputs[k]] = true;
        for (size_t i = 0; i < g->n_nodes; i++) {
            const kiln_node *n = &g->nodes[i];
            if (n->op != KILN_OP_REORDER || is_output[n->output])
                continue; /* a reorder that makes a model output names it: it stays */
            kiln_graph_replace_uses(g, n->output, n->inputs[0]);
            node_map[i] = KILN_NO_ID;
            value_map[n->output] = KILN_NO_ID;
        }
        kiln_status st = kiln_graph_compact(g, node_map, value_map);
        kiln_free(node_map);
        kiln_free(value_map);
        kiln_free(is_output);
        if (st != KILN_OK) {
            kiln_diag_error(d, (kiln_loc){0}, "layout: internal error while removing reorders");
            return st;
        }
    }
    for (size_t v = 0; v < g->n_values; v++) {
        g->values[v].type.layout = KILN_LAYOUT_PLAIN;
        g->values[v].type.block = 0;
    }
    return KILN_OK;
}

/* The fixpoint of rules a and b over blocked[] (by value id). `first`/`readers`
 * list each value's reading nodes (CSR). */
static void settle(const kiln_graph *g, bool *blocked, const size_t *first, const kiln_id *readers)
{
    bool changed = true;
    while (changed) {
        changed = false;
        /* rule a, forwards: a chain loses its blocks in one sweep */
        for (size_t i = 0; i < g->n_nodes; i++) {
            const kiln_node *n = &g->nodes[i];
            if (!blocked[n->output] || !needs_blocked_inputs(g, n))
                continue;
            uint32_t data = kiln_node_data_inputs(g, n);
            for (uint32_t k = 0; k < data; k++)
                if (!blocked[n->inputs[k]]) {
                    blocked[n->output] = false;
                    changed = true;
                    break;
                }
        }
        /* rule b, backwards: readers are decided before their operands */
        for (size_t i = g->n_nodes; i-- > 0;) {
            kiln_id v = g->nodes[i].output;
            if (!blocked[v])
                continue;
            bool used = false;
            for (size_t r = first[v]; r < first[v + 1] && !used; r++)
                used = reads_blocked(&g->nodes[readers[r]], blocked);
            if (!used) {
                blocked[v] = false;
                changed = true;
            }
        }
    }
}

/* Adds "<v>.plain" = reorder(v) right after v's producer and points every
 * reader of v that needs it plain at it (all values are still plain here).
 * `blocked` covers the new value's id. */
static kiln_status add_reorder(kiln_graph *g, kiln_id v, bool *blocked, kiln_diag *d)
{
    size_t len = strlen(g->values[v].name);
    char *base = kiln_malloc(len + sizeof ".plain");
    if (!base) {
        kiln_diag_error(d, (kiln_loc){0}, "out of memory in pass layout");
        return KILN_ERR_OUT_OF_MEMORY;
    }
    memcpy(base, g->values[v].name, len);
    memcpy(base + len, ".plain", sizeof ".plain");
    const char *name = kiln_graph_fresh_name(g, base);
    kiln_free(base);
    kiln_id p = g->values[v].producer;
    kiln_id id = name ? kiln_graph_add_node(g, KILN_OP_REORDER, &v, 1, name, g->nodes[p].layer, g->nodes[p].loc)
                      : KILN_NO_ID;
    if (id == KILN_NO_ID) {
        kiln_diag_error(d, (kiln_loc){0}, "out of memory in pass layout");
        return KILN_ERR_OUT_OF_MEMORY;
    }
    kiln_id out = g->nodes[id].output;
    g->values[out].type = g->values[v].type;
    blocked[out] = false;
    /* right after the producer: everything in between moves below it */
    if ((size_t)p + 1 < id)
        kiln_graph_move_nodes(g, (size_t)p + 1, id - ((size_t)p + 1), (size_t)id + 1);
    for (size_t i = 0; i < g->n_nodes; i++) {
        kiln_node *n = &g->nodes[i];
        if (n->output == out || reads_blocked(n, blocked))
            continue;
        for (uint32_t k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] == v)
                n->inputs[k] = out;
    }
    return KILN_OK;
}

kiln_status kiln_pass_layout(kiln_graph *g, const kiln_layout_options *o, kiln_diag *d)
{
    if (!o || o->block == 0)
        return KILN_OK;
    if (o->block < 1 || o->block > KILN_MAX_BLOCK) {
        kiln_diag_error(d, (kiln_loc){0}, "layout: channel block %d is outside 1..%d", o->block, KILN_MAX_BLOCK);
        return KILN_ERR_INVALID_ARGUMENT;
    }
    bool changed = false;
    kiln_status st = undo(g, &changed, d);
    if (st != KILN_OK)
        return st;

    /* At most one reorder per node output: size the per-value arrays for them. */
    size_t nv = g->n_values, cap = nv + g->n_nodes + 1;
    bool *blocked = kiln_calloc(cap, sizeof *blocked);
    bool *is_output = kiln_calloc(nv + 1, sizeof *is_output);
    size_t *first = kiln_calloc(nv + 1, sizeof *first);
    size_t n_edges = 0;
    for (size_t i = 0; i < g->n_nodes; i++)
        n_edges += g->nodes[i].n_inputs;
    kiln_id *readers = kiln_malloc(sizeof *readers * (n_edges + 1));
    kiln_id *todo = kiln_malloc(sizeof *todo * (g->n_nodes + 1)); /* values that get a reorder */
    if (!blocked || !is_output || !first || !readers || !todo) {
        kiln_diag_error(d, (kiln_loc){0}, "out of memory in pass layout");
        st = KILN_ERR_OUT_OF_MEMORY;
        goto done;
    }
    for (size_t k = 0; k < g->n_outputs; k++)
        is_output[g->outputs[k]] = true;
    /* readers of each value, by data operand (counting sort into CSR) */
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln_node *n = &g->nodes[i];
        uint32_t data = kiln_node_data_inputs(g, n);
        for (uint32_t k = 0; k < data; k++)
            first[n->inputs[k]]++;
    }
    for (size_t v = 0, sum = 0; v <= nv; v++) {
        size_t c = v < nv ? first[v] : 0;
        first[v] = sum;
        sum += c;
    }
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln_node *n = &g->nodes[i];
        uint32_t data = kiln_node_data_inputs(g, n);
        for (uint32_t k = 0; k < data; k++)
            readers[first[n->inputs[k]]++] = (kiln_id)i;
    }
    for (size_t v = nv; v > 0; v--) /* first[v] ran to the end of v's list: shift back */
        first[v] = first[v - 1];
    first[0] = 0;

    for (size_t i = 0; i < g->n_nodes; i++)
        blocked[g->nodes[i].output] = is_candidate(g, o, &g->nodes[i], is_output);
    settle(g, blocked, first, readers);

    /* The blocked values some reader needs plain, in node order. */
    size_t n_todo = 0, n_blocked = 0;
    for (size_t i = 0; i < g->n_nodes; i++) {
        kiln_id v = g->nodes[i].output;
        if (!blocked[v])
            continue;
        n_blocked++;
        bool plain_reader = false;
        for (size_t r = first[v]; r < first[v + 1] && !plain_reader; r++)
            plain_reader = !reads_blocked(&g->nodes[readers[r]], blocked);
        if (plain_reader)
            todo[n_todo++] = v;
    }
    for (size_t k = 0; k < n_todo && st == KILN_OK; k++)
        st = add_reorder(g, todo[k], blocked, d);
    if (st != KILN_OK)
        goto done;
    /* Every allocation is behind us: block the values. */
    for (size_t v = 0; v < nv; v++)
        if (blocked[v]) {
            g->values[v].type.layout = KILN_LAYOUT_NCHWXC;
            g->values[v].type.block = o->block;
        }
    if (changed || n_blocked > 0)
        st = kiln_pass_fuse(g, d);
done:
    kiln_free(blocked);
    kiln_free(is_output);
    kiln_free(first);
    kiln_free(readers);
    kiln_free(todo);
    return st;
}
