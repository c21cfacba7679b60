/* compiler/passes/infer_shapes.c: every node's output type from its op's
 * shape rule, in node order, so that each rule sees its operands' final
 * types. The frontend and the IR reader already do this node by node; the
 * pass makes the pipeline independent of how the graph was built. */
#include "passes.h"

kiln_status kiln_pass_infer_shapes(kiln_graph *g, kiln_diag *d)
{
    kiln_status first = KILN_OK;
    for (size_t i = 0; i < g->n_nodes; i++) {
        kiln_node *n = &g->nodes[i];
        kiln_value *v = &g->values[n->output];
        kiln_type old = v->type;
        char err[512] = "";
        kiln_status st = kiln_ir_infer_node(g, (kiln_id)i, err, sizeof err);
        if (st != KILN_OK) {
            kiln_diag_error(d, n->loc, "layer '%s': %s", n->layer, err[0] ? err : "the shape rule fails");
            if (first == KILN_OK)
                first = st;
            continue;
        }
        /* What passes decided stays: dtype, quantization, layout (the shape
         * is logical whatever the layout, so the rule's shape stands). */
        v = &g->values[n->output];
        v->type.dtype = old.dtype;
        v->type.layout = old.layout;
        v->type.block = old.block;
        v->type.quantized = old.quantized;
        v->type.scale = old.scale;
        v->type.zero_point = old.zero_point;
    }
    return first;
}
