/* compiler/passes/fold_batchnorm.c: batchnorm folded into the conv2d or dense
 * that produces its input (inference BN is a per-channel affine map, so it
 * can be absorbed into the producer's weight and bias):
 *
 *     s[c]     = gamma[c] / sqrt(var[c] + eps)
 *     W'[c,..] = W[c,..] * s[c]
 *     b'[c]    = (b[c] - mean[c]) * s[c] + beta[c]      (b = 0 without a bias)
 *
 * computed in double from the bound params and stored as new INLINE f32
 * params. Each fold is all-or-nothing: the new params are made before the
 * graph changes, and compaction allocates nothing, so running out of memory
 * leaves a valid graph with the folds done so far. */
#include <math.h>
#include <string.h>

#include "ir/rewrite.h"
#include "passes.h"

static bool plain_f32(const kiln_type *t)
{
    return t->dtype == KILN_F32 && t->layout == KILN_LAYOUT_PLAIN && !t->quantized;
}

static bool bound(const kiln_graph *g, kiln_id v)
{
    return v != KILN_NO_ID && kiln_param_readable(&g->values[v]);
}

/* Whether BN node `bn` can fold into its producer; sets *prod. */
static bool foldable(const kiln_graph *g, const uint32_t *uses, const kiln_node *bn, kiln_id *prod)
{
    kiln_id x = bn->inputs[0];
    const kiln_value *xv = &g->values[x];
    if (xv->kind != KILN_VALUE_NODE || uses[x] != 1)
        return false; /* read by someone else too, or a model output */
    const kiln_node *p = &g->nodes[xv->producer];
    if (p->op == KILN_OP_DENSE) {
        if (xv->type.shape.rank != 2)
            return false; /* batchnorm's channel axis 1 is not dense's `units` axis */
    } else if (p->op != KILN_OP_CONV2D) {
        return false;
    }
    if (p->precision != bn->precision || !plain_f32(&xv->type) || !plain_f32(&g->values[bn->output].type))
        return false;
    static const char *const roles[] = {"weight", "bias", "running_mean", "running_var"};
    for (int i = 0; i < 4; i++)
        if (!bound(g, kiln_node_param(g, bn, roles[i])))
            return false;
    kiln_id b = kiln_node_param(g, p, "bias");
    if (!bound(g, kiln_node_param(g, p, "weight")) || (b != KILN_NO_ID && !bound(g, b)))
        return false;
    *prod = xv->producer;
    return true;
}

/* A new INLINE f32 param of shape `dims` (rank 1 or the weight's). */
static kiln_id new_param(kiln_graph *g, const char *base, const kiln_shape *shape, const double *src, size_t count,
                         kiln_loc loc)
{
    float *data = kiln_arena_alloc_aligned(&g->arena, count * sizeof(float));
    const char *name = kiln_graph_fresh_name(g, base);
    if (!data || !name)
        return KILN_NO_ID;
    for (size_t i = 0; i < count; i++)
        data[i] = (float)src[i];
    kiln_type t = {.dtype = KILN_F32, .shape = *shape};
    kiln_param prm = {.source = KILN_PARAM_INLINE, .data_dtype = KILN_F32, .data = data};
    return kiln_graph_add_param(g, name, &t, &prm, loc);
}

/* Folds BN node `bi` into node `pi`. Returns KILN_OK, KILN_ERR_OUT_OF_MEMORY
 * (nothing changed), or another status when a param cannot be read. *folded
 * is false when the statistics make the fold impossible (var + eps <= 0). */
static kiln_status fold_one(kiln_graph *g, size_t pi, size_t bi, kiln_id *node_map, kiln_id *value_map,
                            bool *folded)
{
    *folded = false;
    kiln_node *p = &g->nodes[pi], *bn = &g->nodes[bi];
    kiln_id w = kiln_node_param(g, p, "weight"), b = kiln_node_param(g, p, "bias");
    int64_t channels = g->values[w].type.shape.dims[0];
    int64_t wcount = kiln_shape_elements(&g->values[w].type.shape, 1);
    if (channels < 1 || wcount < channels)
        return KILN_OK;
    size_t c = (size_t)channels, per = (size_t)wcount / c, nw = (size_t)wcount;
    double *buf = kiln_malloc(sizeof(double) * (nw + 6 * c));
    if (!buf)
        return KILN_ERR_OUT_OF_MEMORY;
    double *wd = buf, *bias = wd + nw, *gamma = bias + c, *beta = gamma + c, *mean = beta + c, *var = mean + c,
           *scale = var + c;
    kiln_status st = kiln_param_read_f64(g, w, wd);
    if (st == KILN_OK && b != KILN_NO_ID)
        st = kiln_param_read_f64(g, b, bias);
    else
        memset(bias, 0, sizeof(double) * c);
    if (st == KILN_OK)
        st = kiln_param_read_f64(g, kiln_node_param(g, bn, "weight"), gamma);
    if (st == KILN_OK)
        st = kiln_param_read_f64(g, kiln_node_param(g, bn, "bias"), beta);
    if (st == KILN_OK)
        st = kiln_param_read_f64(g, kiln_node_param(g, bn, "running_mean"), mean);
    if (st == KILN_OK)
        st = kiln_param_read_f64(g, kiln_node_param(g, bn, "running_var"), var);
    if (st != KILN_OK) {
        kiln_free(buf);
        return st;
    }
    double eps = bn->attrs[KILN_ATTR_EPS].f;
    for (size_t k = 0; k < c; k++) {
        double denom = var[k] + eps;
        if (!(denom > 0) || !isfinite(denom)) {
            kiln_free(buf);
            return KILN_OK; /* the BN divides by zero or worse: keep it as it is */
        }
        scale[k] = gamma[k] / sqrt(denom);
    }
    for (size_t k = 0; k < c; k++) {
        for (size_t j = 0; j < per; j++)
            wd[k * per + j] *= scale[k];
        bias[k] = (bias[k] - mean[k]) * scale[k] + beta[k];
    }
    for (size_t k = 0; k < nw; k++)
        if (!isfinite((float)wd[k]) || (k < c && !isfinite((float)bias[k]))) {
            kiln_free(buf);
            return KILN_OK; /* out of f32's range: not worth a different result */
        }

    /* New names and params, then the rewiring: nothing changes before every
     * allocation has succeeded. */
    const char *layer = strcmp(p->layer, bn->layer) == 0
                            ? p->layer
                            : kiln_arena_printf(&g->arena, "%s+%s", p->layer, bn->layer);
    char *wname = layer ? kiln_arena_printf(&g->arena, "%s.weight", layer) : NULL;
    char *bname = layer ? kiln_arena_printf(&g->arena, "%s.bias", layer) : NULL;
    kiln_id *ins = kiln_arena_alloc(&g->arena, sizeof(kiln_id) * 3);
    if (!layer || !wname || !bname || !ins) {
        kiln_free(buf);
        return KILN_ERR_OUT_OF_MEMORY;
    }
    kiln_shape bshape = {.rank = 1, .dims = {channels}};
    kiln_shape wshape = g->values[w].type.shape;
    kiln_id nwid = new_param(g, wname, &wshape, wd, nw, p->loc);
    kiln_id nbid = nwid == KILN_NO_ID ? KILN_NO_ID : new_param(g, bname, &bshape, bias, c, p->loc);
    kiln_free(buf);
    if (nbid == KILN_NO_ID)
        return KILN_ERR_OUT_OF_MEMORY; /* a weight param made but unused: dce removes it */

    /* The values array may have moved: take the nodes again. */
    p = &g->nodes[pi];
    bn = &g->nodes[bi];
    ins[0] = p->inputs[0];
    ins[1] = nwid;
    ins[2] = nbid;
    p->inputs = ins;
    p->n_inputs = 3;
    p->layer = layer;
    /* The producer takes over the batchnorm's output value, so its consumers
     * and the model outputs are unchanged; the batchnorm keeps the old one
     * and both go. */
    kiln_id x = p->output, y = bn->output;
    p->output = y;
    g->values[y].producer = (kiln_id)pi;
    bn->output = x;
    g->values[x].producer = (kiln_id)bi;
    node_map[bi] = KILN_NO_ID;
    value_map[x] = KILN_NO_ID;
    *folded = true;
    return KILN_OK;
}

kiln_status kiln_pass_fold_batchnorm(kiln_graph *g, kiln_diag *d)
{
    size_t n_nodes = g->n_nodes;
    uint32_t *uses = kiln_malloc(sizeof *uses * (g->n_values ? g->n_values : 1));
    kiln_id *node_map = kiln_calloc(n_nodes ? n_nodes : 1, sizeof *node_map);
    /* Each fold adds two values: room for all of them up front. */
    size_t cap_values = g->n_values + 2 * n_nodes + 1;
    kiln_id *value_map = kiln_calloc(cap_values, sizeof *value_map);
    kiln_status st = KILN_OK;
    size_t folds = 0;
    if (!uses || !node_map || !value_map) {
        st = KILN_ERR_OUT_OF_MEMORY;
        goto done;
    }
    kiln_graph_count_uses(g, uses);
    for (size_t i = 0; i < n_nodes; i++) {
        kiln_id prod;
        if (g->nodes[i].op != KILN_OP_BATCHNORM || !foldable(g, uses, &g->nodes[i], &prod))
            continue;
        bool folded;
        st = fold_one(g, prod, i, node_map, value_map, &folded);
        if (st != KILN_OK) {
            if (st != KILN_ERR_OUT_OF_MEMORY)
                kiln_diag_error(d, g->nodes[i].loc, "layer '%s': cannot read the parameters to fold: %s",
                                g->nodes[i].layer, kiln_status_string(st));
            break;
        }
        folds += folded;
    }
    if (folds > 0) {
        kiln_status cst = kiln_graph_compact(g, node_map, value_map);
        if (cst != KILN_OK && st == KILN_OK)
            st = cst;
        if (cst == KILN_OK)
            kiln_graph_clear_annotations(g, KILN_ANNOT_PLANS);
        if (cst == KILN_ERR_INTERNAL)
            kiln_diag_error(d, (kiln_loc){0}, "fold_batchnorm: internal error while removing folded nodes");
    }
done:
    if (st == KILN_ERR_OUT_OF_MEMORY)
        kiln_diag_error(d, (kiln_loc){0}, "out of memory in pass fold_batchnorm");
    kiln_free(uses);
    kiln_free(node_map);
    kiln_free(value_map);
    return st;
}
