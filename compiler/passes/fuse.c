/* compiler/passes/fuse.c: marks fusion groups (kiln_node.group; the rules
 * are in ir/graph.h and checked by kiln_ir_verify). Annotation only: no op
 * changes, the code generator emits one kernel per group.
 *
 * Greedy, in node order. Each node not yet taken that can start a group
 * (ops.def's OUT_FUSABLE ops: conv2d, dense, matmul; or an elementwise op)
 * grows a chain: while the chain's last value is read by exactly one node,
 * is no model output, and that reader can join (a one-input elementwise op;
 * or a binary one whose other operand, from outside the chain, broadcasts
 * into the output, which has the chained value's shape; and what the code
 * generator can apply in the anchor's registers, compiler/target/fusion.c),
 * the reader joins. A chain of one node is
 * no group. A binary node that both its operands could reach joins the
 * chain of its first operand (so the groups do not depend on node order, and
 * fusing again changes nothing).
 *
 * Members must be consecutive nodes. When the reader is further down (a
 * residual add waiting for its shortcut branch), the chain so far moves down
 * to sit just before it: legal, because every chained value is read only by
 * the next member, so the nodes in between do not read the chain, and the
 * chain's own operands are all defined before its old place. */
#include <stdint.h>

#include "ir/rewrite.h"
#include "passes.h"

/* Whether node u (reading chained value v) can join the chain that occupies
 * nodes [start, end]: the IR's chain rule (ir/graph.h), and the code
 * generator's (compiler/target/fusion.c) when the anchor is known. */
static bool can_join(const kiln_graph *g, const kiln_node *u, kiln_id v, size_t start, size_t end)
{
    if (!kiln_op_is_elementwise(u->op))
        return false;
    kiln_epi_member m;
    if (start != SIZE_MAX &&
        (end - start >= KILN_TARGET_MAX_EPI || !kiln_target_epi_member(g, &g->nodes[start], u, v, &m)))
        return false;
    const kiln_type *vt = &g->values[v].type, *ot = &g->values[u->output].type;
    if (!kiln_shape_equal(&vt->shape, &ot->shape) || vt->dtype != ot->dtype || vt->layout != ot->layout)
        return false;
    uint32_t data = kiln_node_data_inputs(g, u), seen = 0;
    for (uint32_t k = 0; k < data; k++) {
        kiln_id o = u->inputs[k];
        if (o == v) {
            seen++;
            continue;
        }
        const kiln_value *ov = &g->values[o];
        if (ov->kind == KILN_VALUE_NODE && ov->producer >= start && ov->producer <= end)
            return false;
        if (ov->type.dtype != vt->dtype || ov->type.layout != vt->layout)
            return false;
    }
    return seen == 1;
}

/* A binary node both of whose operands could chain into it joins the chain
 * of its first operand: whichever chain reaches it first, so the groups do
 * not depend on the node order (and fusing a fused graph changes nothing). */
static bool claimed(const kiln_graph *g, const uint32_t *uses, const kiln_node *u, kiln_id v)
{
    if (kiln_node_data_inputs(g, u) != 2 || u->inputs[0] == v)
        return false;
    kiln_id a = u->inputs[0];
    const kiln_value *av = &g->values[a];
    return av->kind == KILN_VALUE_NODE && uses[a] == 1 && kiln_op_can_anchor(g->nodes[av->producer].op) &&
           can_join(g, u, a, SIZE_MAX, SIZE_MAX);
}

kiln_status kiln_pass_fuse(kiln_graph *g, kiln_diag *d)
{
    /* Groups are recomputed from scratch; a plan or schedule made for the
     * old ones no longer holds. */
    kiln_graph_clear_annotations(g, KILN_ANNOT_PLANS);
    size_t nv = g->n_values ? g->n_values : 1;
    uint32_t *uses = kiln_malloc(sizeof *uses * nv);
    kiln_id *reader = kiln_malloc(sizeof *reader * nv); /* per value: the output of a node reading it */
    bool *taken = kiln_calloc(nv, sizeof *taken);       /* per node, by its output value (stable under moves) */
    if (!uses || !reader || !taken) {
        kiln_free(uses);
        kiln_free(reader);
        kiln_free(taken);
        kiln_diag_error(d, (kiln_loc){0}, "out of memory in pass fuse");
        return KILN_ERR_OUT_OF_MEMORY;
    }
    kiln_graph_count_uses(g, uses);
    for (size_t v = 0; v < g->n_values; v++)
        reader[v] = KILN_NO_ID;
    for (size_t i = 0; i < g->n_nodes; i++)
        for (uint32_t k = 0; k < g->nodes[i].n_inputs; k++)
            reader[g->nodes[i].inputs[k]] = g->nodes[i].output;

    uint32_t next = 1;
    size_t i = 0;
    while (i < g->n_nodes) {
        kiln_node *n = &g->nodes[i];
        if (taken[n->output]) {
            i++;
            continue;
        }
        taken[n->output] = true;
        if (!kiln_op_can_anchor(n->op))
            continue;
        size_t start = i, end = i;
        for (;;) {
            kiln_id v = g->nodes[end].output;
            /* uses counts model outputs: one use that is a reader means no output */
            if (uses[v] != 1 || reader[v] == KILN_NO_ID || taken[reader[v]])
                break;
            size_t ui = g->values[reader[v]].producer;
            if (ui <= end || !can_join(g, &g->nodes[ui], v, start, end) || claimed(g, uses, &g->nodes[ui], v))
                break;
            if (ui != end + 1) {
                size_t len = end - start + 1;
                kiln_graph_move_nodes(g, start, len, ui);
                start = ui - len;
            }
            end = ui;
            taken[reader[v]] = true;
        }
        if (end > start)
            for (size_t k = start; k <= end; k++)
                g->nodes[k].group = next;
        next += end > start;
        /* Nodes that moved up from between the chain's members now sit at i:
         * the loop looks at them next; chain members are skipped as taken. */
    }
    /* Number the groups 1, 2, ... in node order. */
    uint32_t id = 0, prev = 0;
    for (size_t k = 0; k < g->n_nodes; k++) {
        uint32_t grp = g->nodes[k].group;
        if (grp == 0) {
            prev = 0;
            continue;
        }
        if (grp != prev)
            id++;
        prev = grp;
        g->nodes[k].group = id;
    }
    kiln_free(uses);
    kiln_free(reader);
    kiln_free(taken);
    return KILN_OK;
}
