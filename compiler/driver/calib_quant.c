/* compiler/driver/calib_quant.c: the activation quantization of int8 layers,
 * from calibration ranges (docs/precision.md, "int8").
 *
 * After the pass pipeline every node that computes int8 (its `precision`)
 * gets the scale and zero point of its data input (in_scale, in_zero),
 * computed by ir/quant.h from the range the calibration method keeps for
 * that value. The ranges are those of the model computed in f32: they are
 * observed on a copy of the optimized graph whose layers all compute f32,
 * so that no layer's range depends on the quantization of the layers
 * before it (and the int8 nodes, which have no parameters yet, are not
 * evaluated). Every command that opens a model (compile, check, run, bench,
 * dump) does this here, once. */
#include <stdio.h>

#include "calibration.h"
#include "cli.h"
#include "ir/quant.h"

static bool is_int8(const kiln_graph *g, const kiln_node *n)
{
    return kiln_node_precision(g, n) == KILN_PREC_INT8;
}

int kiln_calib_quantize(kiln_graph *g, const kiln_calib *c, kiln_calib_method m, size_t *n_int8, const char *cmd)
{
    size_t count = 0;
    for (size_t i = 0; i < g->n_nodes; i++)
        count += is_int8(g, &g->nodes[i]);
    *n_int8 = count;
    if (count == 0)
        return 0;
    if (!c->samples) { /* a .kir that carries its parameters needs no data; the code generator checks */
        for (size_t i = 0; i < g->n_nodes; i++) {
            const kiln_node *n = &g->nodes[i];
            kiln_quant_act qa;
            if (is_int8(g, n) && kiln_node_in_quant(n, &qa) != 0)
                return kiln_cli_error(cmd, "layer '%s' computes int8 but has no valid in_scale and in_zero: give "
                                           "--calibration FILE (or --calibration random)",
                                      n->layer ? n->layer : "?");
        }
        return 0;
    }
    kiln_graph *f32 = kiln_graph_clone(g);
    if (!f32)
        return kiln_cli_error(cmd, "out of memory");
    for (size_t i = 0; i < f32->n_nodes; i++)
        if (is_int8(f32, &f32->nodes[i]))
            f32->nodes[i].precision = KILN_PREC_F32;
    kiln_calib_ranges r = {0};
    int rc = kiln_calib_observe(f32, c, &r, cmd);
    kiln_graph_destroy(f32);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < g->n_nodes; i++) {
        kiln_node *n = &g->nodes[i];
        if (!is_int8(g, n))
            continue;
        const kiln_calib_range *x = NULL;
        for (size_t j = 0; j < r.n && !x; j++)
            if (r.r[j].value == n->inputs[0])
                x = &r.r[j];
        if (!x) {
            kiln_calib_ranges_free(&r);
            return kiln_cli_error(cmd, "internal error: no calibration range for the input of layer '%s'",
                                  n->layer ? n->layer : "?");
        }
        double lo, hi;
        float scale;
        int32_t zero;
        kiln_calib_range_pick(x, m, &lo, &hi);
        kiln_quant_act_from_range(lo, hi, &scale, &zero);
        kiln_node_set_float(n, KILN_ATTR_IN_SCALE, (double)scale);
        kiln_node_set_int(n, KILN_ATTR_IN_ZERO, zero);
    }
    kiln_calib_ranges_free(&r);
    return 0;
}

void kiln_calib_quant_print(const kiln_graph *g, FILE *f, const char *indent)
{
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln_node *n = &g->nodes[i];
        kiln_quant_act qa;
        if (is_int8(g, n) && kiln_node_in_quant(n, &qa) == 0)
            fprintf(f, "%s%-16s in_scale=%.6g in_zero=%d  (input %s)\n", indent, n->layer ? n->layer : "?",
                    (double)qa.scale, (int)qa.zero, kiln_graph_value(g, n->inputs[0])->name);
    }
}
