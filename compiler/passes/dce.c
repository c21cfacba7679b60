/* compiler/passes/dce.c: dead-code elimination. A value is live when a model
 * output is, or a live node reads it; walking the nodes backwards (they are
 * in topological order) finds them all in one sweep. Dead nodes and dead
 * params go; model inputs always stay (they are the generated API even when
 * nothing reads them). */
#include "ir/rewrite.h"
#include "passes.h"

kiln_status kiln_pass_dce(kiln_graph *g, kiln_diag *d)
{
    bool *live = kiln_calloc(g->n_values ? g->n_values : 1, sizeof *live);
    kiln_id *node_map = kiln_calloc(g->n_nodes ? g->n_nodes : 1, sizeof *node_map);
    kiln_id *value_map = kiln_calloc(g->n_values ? g->n_values : 1, sizeof *value_map);
    kiln_status st = KILN_OK;
    if (!live || !node_map || !value_map) {
        kiln_diag_error(d, (kiln_loc){0}, "out of memory in pass dce");
        st = KILN_ERR_OUT_OF_MEMORY;
        goto done;
    }
    for (size_t i = 0; i < g->n_outputs; i++)
        live[g->outputs[i]] = true;
    for (size_t i = 0; i < g->n_inputs; i++)
        live[g->inputs[i]] = true;
    size_t removed = 0, removed_nodes = 0;
    for (size_t i = g->n_nodes; i-- > 0;) {
        const kiln_node *n = &g->nodes[i];
        if (!live[n->output]) {
            node_map[i] = KILN_NO_ID;
            removed_nodes++;
            continue;
        }
        for (uint32_t k = 0; k < n->n_inputs; k++)
            live[n->inputs[k]] = true;
    }
    for (size_t v = 0; v < g->n_values; v++)
        if (!live[v]) {
            value_map[v] = KILN_NO_ID;
            removed++;
        }
    if (removed > 0) {
        st = kiln_graph_compact(g, node_map, value_map);
        if (st != KILN_OK)
            kiln_diag_error(d, (kiln_loc){0}, "dce: internal error while removing dead nodes");
        else if (removed_nodes > 0)
            kiln_graph_clear_annotations(g, KILN_ANNOT_PLANS); /* groups and plan may have had holes punched */
    }
done:
    kiln_free(live);
    kiln_free(node_map);
    kiln_free(value_map);
    return st;
}
