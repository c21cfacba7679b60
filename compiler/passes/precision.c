/* compiler/passes/precision.c: records on every node the precision it
 * computes in (kiln_node.precision), by the one rule of ir/graph.h
 * (kiln_node_precision): what the layer asks (its own `precision`, else the
 * model's default, which `--precision` replaces), where a kernel for it
 * exists. Today that is bf16, f16 and int8 on dense layers and on the
 * convolutions the GEMM computes (docs/precision.md); select, running next, picks a GEMM for those, and
 * the code generator and the interpreter read what is written here. An
 * int8 node also needs its input's scale and zero point (in_scale,
 * in_zero), which the driver writes from calibration ranges after the
 * pipeline.
 *
 * Layers that compute f32 by design (activations, pools, norms, ...) become
 * f32 without a word. A layer that could have a reduced precision but has
 * no kernel for it yet (auto outside kiln compile's search, matmul with a
 * constant operand, a depthwise or blocked convolution, an int8 layer
 * with a reduction longer than 65535) is compiled in f32 with a warning
 * that says so. A node of a model whose default is f32 that asked for nothing
 * keeps `default` (dumps of f32 models do not change); every other node
 * gets its precision written out. */
#include "passes.h"

/* Why a layer that asks for a reduced precision computes f32 anyway, or
 * NULL when that is by design (no warning). */
static const char *not_implemented(const kiln_graph *g, const kiln_node *n, kiln_precision asked)
{
    bool eligible = kiln_node_precision_eligible(g, n);
    if (asked == KILN_PREC_AUTO)
        return eligible ? "is not implemented yet" : NULL;
    if (asked == KILN_PREC_INT8) { /* an eligible layer whose reduction is too long */
        const char *why = kiln_node_int8_unsupported(g, n);
        if (why && *why)
            return why;
    }
    if (eligible)
        return NULL;
    if (n->op == KILN_OP_CONV2D)
        return "is not implemented yet for convolutions with one input channel per group or channel-blocked "
               "values";
    if (n->op == KILN_OP_MATMUL) {
        for (uint32_t i = 0; i < n->n_inputs && i < 2; i++)
            if (g->values[n->inputs[i]].kind == KILN_VALUE_PARAM)
                return "is not implemented yet for matmul";
    }
    return NULL;
}

kiln_status kiln_pass_precision(kiln_graph *g, kiln_diag *d)
{
    const bool model_f32 = g->precision == KILN_PREC_DEFAULT || g->precision == KILN_PREC_F32;
    /* auto: one warning per model (every eligible layer would say the same) */
    size_t unimplemented[KILN_PREC_COUNT] = {0};
    const kiln_node *first[KILN_PREC_COUNT] = {NULL};
    for (size_t i = 0; i < g->n_nodes; i++) {
        kiln_node *n = &g->nodes[i];
        kiln_precision asked = kiln_node_precision_asked(g, n), got = kiln_node_precision(g, n);
        if (asked != got) {
            const char *why = not_implemented(g, n, asked);
            if (why && asked == KILN_PREC_AUTO) {
                if (!unimplemented[asked]++)
                    first[asked] = n;
            } else if (why) {
                kiln_diag_warning(d, n->loc, "layer '%s' (%s): precision %s %s; computed in f32",
                                  n->layer ? n->layer : "?", kiln_op_name(n->op), kiln_precision_name(asked), why);
            }
        }
        if (!(got == KILN_PREC_F32 && n->precision == KILN_PREC_DEFAULT && model_f32))
            n->precision = got;
    }
    if (unimplemented[KILN_PREC_AUTO])
        kiln_diag_warning(d, first[KILN_PREC_AUTO]->loc,
                          "precision auto is chosen by 'kiln compile --calibration DATA --tolerance X'; here %zu "
                          "layer%s computed in f32 (the first: '%s')",
                          unimplemented[KILN_PREC_AUTO], unimplemented[KILN_PREC_AUTO] == 1 ? "" : "s",
                          first[KILN_PREC_AUTO]->layer ? first[KILN_PREC_AUTO]->layer : "?");
    return KILN_OK;
}
