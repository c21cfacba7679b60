/* compiler/frontend/onnx/ops_nn.c: convolution, pooling, normalization,
 * Gemm/MatMul, softmax and reductions as kiln layers. ONNX's 1-D forms on
 * [N, C, L] are written as the 2-D layers over [N, C, 1, L]. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ox.h"

static const char *type_of(const ox_node *n) { return ox_str(n->p->op_type); }
static bool is(const ox_node *n, const char *t) { return strcmp(type_of(n), t) == 0; }

/* A layer's name: a PyTorch module name when there is one, else BASE.suffix
 * (intermediate layers), never an output's reserved name. */
static const char *inner_name(ox_ctx *x, ox_node *n, const char *hint, const char *suffix)
{
    return hint ? ox_claim(x, hint) : ox_sub_name(x, n, suffix);
}

/* A constant input, or a refusal naming its role. */
static ox_tensor *need_const(ox_ctx *x, ox_node *n, size_t i, const char *role)
{
    ox_value *v = i < n->n_in ? n->in[i] : NULL;
    if (!v) {
        ox_refuse(n, x, "its %s is missing", role);
        return NULL;
    }
    if (v->kind != OX_CONST) {
        ox_refuse(n, x, "its %s '%s' is %s, not an initializer: kiln needs parameters to be constants", role, v->name,
                  v->graph_input ? "a graph input" : "computed by the graph");
        return NULL;
    }
    ox_tensor *t = ox_const(x, n, v);
    if (t && !ox_dtype_is_float(t->dtype)) {
        ox_refuse(n, x, "its %s '%s' is %s (parameters are float)", role, v->name, ox_dtype_name(t->dtype));
        return NULL;
    }
    return t;
}

/* The name of a tensor computed from constant v (transposed, scaled, ...):
 * never taken for PyTorch's key of v itself. */
static const char *derived(ox_ctx *x, const ox_value *v, const char *how)
{
    const char *base = v->hint ? v->hint : v->name;
    const char *d = kiln_arena_printf(&x->arena, "%s.%s", base, how);
    if (!d)
        ox_oom(x);
    return d ? d : base;
}

/* The spatial attributes of Conv and the pools, resolved to explicit pads. */
typedef struct window {
    int spatial;              /* 1 or 2 */
    int64_t k[2], s[2], d[2];
    int64_t pb[2], pe[2];     /* padding at the beginning and the end of each axis */
} window;

static int read_window(ox_ctx *x, ox_node *n, int spatial, const int64_t *in, const int64_t *kernel, window *w)
{
    int64_t v[4];
    w->spatial = spatial;
    for (int i = 0; i < spatial; i++) {
        w->k[i] = kernel[i];
        w->s[i] = w->d[i] = 1;
        w->pb[i] = w->pe[i] = 0;
    }
    int c;
    if ((c = ox_attr_ints(x, n, "strides", v, 4)) >= 0) {
        if (c != spatial)
            return ox_refuse(n, x, "strides has %d entries for %d spatial axes", c, spatial);
        memcpy(w->s, v, sizeof(int64_t) * (size_t)spatial);
    }
    if ((c = ox_attr_ints(x, n, "dilations", v, 4)) >= 0) {
        if (c != spatial)
            return ox_refuse(n, x, "dilations has %d entries for %d spatial axes", c, spatial);
        memcpy(w->d, v, sizeof(int64_t) * (size_t)spatial);
    }
    if ((c = ox_attr_ints(x, n, "pads", v, 4)) >= 0) {
        if (c != 2 * spatial)
            return ox_refuse(n, x, "pads has %d entries for %d spatial axes", c, spatial);
        for (int i = 0; i < spatial; i++) {
            w->pb[i] = v[i];
            w->pe[i] = v[i + spatial];
        }
    }
    for (int i = 0; i < spatial; i++)
        if (w->k[i] < 1 || w->s[i] < 1 || w->d[i] < 1 || w->pb[i] < 0 || w->pe[i] < 0 || w->k[i] > KILN_MAX_DIM ||
            w->s[i] > KILN_MAX_DIM || w->d[i] > KILN_MAX_DIM || w->pb[i] > KILN_MAX_DIM || w->pe[i] > KILN_MAX_DIM)
            return ox_refuse(n, x, "kernel, strides and dilations must be positive and pads non-negative");
    const char *ap = ox_attr_s(x, n, "auto_pad", "NOTSET");
    if (n->refused)
        return -1;
    if (strcmp(ap, "NOTSET") == 0)
        return 0;
    if (strcmp(ap, "VALID") == 0) {
        for (int i = 0; i < spatial; i++)
            w->pb[i] = w->pe[i] = 0;
        return 0;
    }
    bool upper = strcmp(ap, "SAME_UPPER") == 0;
    if (!upper && strcmp(ap, "SAME_LOWER") != 0)
        return ox_refuse(n, x, "auto_pad '%s'", ap);
    for (int i = 0; i < spatial; i++) {
        int64_t out = (in[i] + w->s[i] - 1) / w->s[i];
        int64_t total = (out - 1) * w->s[i] + (w->k[i] - 1) * w->d[i] + 1 - in[i];
        if (total < 0)
            total = 0;
        int64_t small = total / 2;
        w->pb[i] = upper ? small : total - small;
        w->pe[i] = total - w->pb[i];
    }
    return 0;
}

/* The window's kiln attributes (2-D; a 1-D window is [1, k] over H = 1). */
static void window_attrs(const window *w, kiln_node *a, bool pool)
{
    int64_t k[2], s[2], d[2], p[4];
    int o = w->spatial == 1 ? 1 : 0;
    k[0] = s[0] = d[0] = 1;
    p[0] = p[2] = 0;
    for (int i = 0; i < w->spatial; i++) {
        k[i + o] = w->k[i];
        s[i + o] = w->s[i];
        d[i + o] = w->d[i];
        p[i + o] = w->pb[i];
        p[i + o + 2] = w->pe[i];
    }
    kiln_node_set_ints(a, KILN_ATTR_KERNEL, k, 2);
    kiln_node_set_ints(a, KILN_ATTR_STRIDE, s, 2);
    kiln_node_set_ints(a, KILN_ATTR_PADDING, p, 4);
    if (!pool || d[0] != 1 || d[1] != 1)
        kiln_node_set_ints(a, KILN_ATTR_DILATION, d, 2);
}

/* For 1-D ops: [N, C, L] -> [N, C, 1, L] before, and back after. */
static kiln_id to_2d(ox_ctx *x, ox_node *n, kiln_id in, const int64_t *xd, bool batched)
{
    int64_t d[4] = {batched ? 0 : xd[0], xd[1], 1, xd[2]};
    return ox_emit_reshape(x, n, in, 4, d, ox_sub_name(x, n, "2d"));
}

static int from_2d(ox_ctx *x, ox_node *n, kiln_id y)
{
    if (y == KILN_NO_ID)
        return -1;
    const kiln_shape *s = ox_kshape(x, y);
    int64_t d[3] = {s->batched ? 0 : s->dims[0], s->dims[1], s->dims[3]};
    kiln_id r = ox_emit_reshape(x, n, y, 3, d, ox_out_name(x, n, 0, NULL));
    if (r == KILN_NO_ID)
        return -1;
    ox_set_dyn(n, 0, r, false);
    return 0;
}

int ox_lower_conv(ox_ctx *x, ox_node *n)
{
    if (n->n_in < 2 || !n->in[0])
        return ox_refuse(n, x, "Conv needs an input and a weight");
    int64_t xd[OX_MAX_RANK];
    bool xb;
    int xr = ox_shape(x, n->in[0], xd, &xb);
    if (xr == 5)
        return ox_refuse(n, x, "a 3-D convolution (kiln has conv2d, and 1-D convolutions as conv2d)");
    if (xr != 3 && xr != 4)
        return ox_refuse(n, x, "a convolution over an input of rank %d", xr);
    int spatial = xr - 2;
    ox_tensor *w = need_const(x, n, 1, "weight");
    if (!w)
        return -1;
    if (w->rank != xr)
        return ox_refuse(n, x, "its weight has rank %d for an input of rank %d", w->rank, xr);
    int64_t group = ox_attr_i(x, n, "group", 1), ks[2];
    if (n->refused)
        return -1;
    if (group < 1 || group > xd[1] || xd[1] != w->dims[1] * group)
        return ox_refuse(n, x, "%lld input channels do not match a weight of %lld channels in %lld groups",
                         (long long)xd[1], (long long)w->dims[1], (long long)group);
    int c = ox_attr_ints(x, n, "kernel_shape", ks, 2);
    for (int i = 0; c >= 0 && i < spatial; i++)
        if (c != spatial || ks[i] != w->dims[2 + i])
            return ox_refuse(n, x, "kernel_shape does not match the weight");
    window win;
    if (read_window(x, n, spatial, xd + 2, w->dims + 2, &win))
        return -1;
    int64_t wd[4] = {w->dims[0], w->dims[1], spatial == 1 ? 1 : w->dims[2], w->dims[spatial == 1 ? 2 : 3]};
    const char *hint = ox_module_hint(x, n->in[1], "weight");
    kiln_id ins[3];
    ins[0] = ox_data(x, n, 0);
    ins[1] = ox_param(x, n, n->in[1], "weight", 4, wd);
    uint32_t n_in = 2;
    if (n->n_in > 2 && n->in[2]) {
        int64_t f = w->dims[0];
        ins[n_in++] = ox_param(x, n, n->in[2], "bias", 1, &f);
    }
    if (n->refused)
        return -1;
    if (spatial == 1)
        ins[0] = to_2d(x, n, ins[0], xd, xb);
    kiln_node a = {0};
    kiln_node_set_int(&a, KILN_ATTR_FILTERS, w->dims[0]);
    kiln_node_set_int(&a, KILN_ATTR_GROUPS, group);
    window_attrs(&win, &a, false);
    if (spatial == 1)
        return from_2d(x, n, ox_emit(x, n, KILN_OP_CONV2D, ins, n_in, &a, inner_name(x, n, hint, "conv")));
    kiln_id y = ox_emit(x, n, KILN_OP_CONV2D, ins, n_in, &a, ox_out_name(x, n, 0, hint));
    if (y == KILN_NO_ID)
        return -1;
    ox_set_dyn(n, 0, y, false);
    return 0;
}

/* ONNX's output size of a pooling window (no correction for a last window
 * that starts in the end padding: PyTorch, hence kiln, drops that one). */
static int64_t onnx_pool_out(int64_t in, const window *w, int i, bool ceil_mode)
{
    int64_t eff = (w->k[i] - 1) * w->d[i] + 1, span = in + w->pb[i] + w->pe[i] - eff;
    if (span < 0)
        return 0;
    return (ceil_mode ? (span + w->s[i] - 1) / w->s[i] : span / w->s[i]) + 1;
}

int ox_lower_pool(ox_ctx *x, ox_node *n)
{
    if (n->n_in < 1 || !n->in[0])
        return ox_refuse(n, x, "its input is missing");
    if (n->n_out > 1 && n->out[1])
        return ox_refuse(n, x, "its Indices output is used");
    int64_t xd[OX_MAX_RANK], ks[2];
    bool xb;
    int xr = ox_shape(x, n->in[0], xd, &xb);
    if (xr == 5)
        return ox_refuse(n, x, "3-D pooling (kiln pools over 2-D, and 1-D as 2-D)");
    if (xr != 3 && xr != 4)
        return ox_refuse(n, x, "pooling over an input of rank %d", xr);
    int spatial = xr - 2;
    int c = ox_attr_ints(x, n, "kernel_shape", ks, 2);
    if (n->refused)
        return -1;
    if (c != spatial)
        return ox_refuse(n, x, "kernel_shape has %d entries for %d spatial axes", c, spatial);
    window win;
    if (read_window(x, n, spatial, xd + 2, ks, &win))
        return -1;
    bool avg = is(n, "AveragePool");
    bool ceil_mode = ox_attr_i(x, n, "ceil_mode", 0) != 0;
    bool cip = ox_attr_i(x, n, "count_include_pad", 0) != 0;
    if (n->refused)
        return -1;
    for (int i = 0; avg && i < spatial; i++)
        if (win.d[i] != 1)
            return ox_refuse(n, x, "average pooling with dilations (kiln's avgpool2d has none)");
    /* kiln's pools (PyTorch's) pad at most half the window; more padding is
     * a pad layer in front: zeros count in the average as ONNX's
     * count_include_pad says, and the lowest float never wins a max. */
    bool wide = false;
    for (int i = 0; i < spatial; i++) {
        int64_t eff = (win.k[i] - 1) * win.d[i] + 1;
        wide = wide || 2 * win.pb[i] > eff || 2 * win.pe[i] > eff;
    }
    if (wide && avg && !cip)
        return ox_refuse(n, x, "average pooling that pads more than half the window without counting the padding");
    window pads = win;
    if (wide)
        for (int i = 0; i < spatial; i++)
            win.pb[i] = win.pe[i] = 0;
    kiln_node a = {0};
    window_attrs(&win, &a, true);
    if (ceil_mode)
        kiln_node_set_bool(&a, KILN_ATTR_CEIL_MODE, true);
    if (avg && !wide)
        kiln_node_set_bool(&a, KILN_ATTR_COUNT_INCLUDE_PAD, cip);
    kiln_id in = ox_data(x, n, 0);
    if (in == KILN_NO_ID)
        return -1;
    if (spatial == 1)
        in = to_2d(x, n, in, xd, xb);
    if (wide) {
        int o = spatial == 1 ? 1 : 0;
        int64_t p4[4] = {0, 0, 0, 0};
        for (int i = 0; i < spatial; i++) {
            p4[i + o] = pads.pb[i];
            p4[i + o + 2] = pads.pe[i];
        }
        kiln_node pa = {0};
        kiln_node_set_ints(&pa, KILN_ATTR_PADS, p4, 4);
        if (!avg)
            kiln_node_set_float(&pa, KILN_ATTR_VALUE, -3.4028234663852886e38);
        in = ox_emit1(x, n, KILN_OP_PAD, in, &pa, ox_sub_name(x, n, "padded"));
    }
    kiln_op op = avg ? KILN_OP_AVGPOOL2D : KILN_OP_MAXPOOL2D;
    const char *name = spatial == 1 ? ox_sub_name(x, n, "pool") : ox_out_name(x, n, 0, NULL);
    kiln_id y = ox_emit1(x, n, op, in, &a, name);
    if (y == KILN_NO_ID)
        return -1;
    const kiln_shape *s = ox_kshape(x, y);
    for (int i = 0; i < spatial; i++) {
        int64_t want = onnx_pool_out(xd[2 + i], &pads, i, ceil_mode), got = s->dims[2 + i + (spatial == 1)];
        if (want != got)
            return ox_refuse(n, x, "with ceil_mode its last window starts in the padding: ONNX gives %lld outputs, "
                                   "PyTorch's rule (kiln's) %lld", (long long)want, (long long)got);
    }
    if (spatial == 1)
        return from_2d(x, n, y);
    ox_set_dyn(n, 0, y, false);
    return 0;
}

int ox_lower_global_pool(ox_ctx *x, ox_node *n)
{
    if (n->n_in < 1 || !n->in[0])
        return ox_refuse(n, x, "its input is missing");
    int64_t xd[OX_MAX_RANK];
    bool xb;
    int xr = ox_shape(x, n->in[0], xd, &xb);
    if (xr < 3)
        return ox_refuse(n, x, "global pooling over an input of rank %d", xr);
    kiln_id in = ox_data(x, n, 0), y;
    if (in == KILN_NO_ID)
        return -1;
    if (is(n, "GlobalAveragePool") && xr == 4) {
        y = ox_emit1(x, n, KILN_OP_GLOBAL_AVGPOOL, in, NULL, ox_out_name(x, n, 0, NULL));
    } else {
        /* the spatial axes, kept as 1 */
        int64_t axes[OX_MAX_RANK];
        for (int k = 2; k < xr; k++)
            axes[k - 2] = k;
        kiln_node a = {0};
        kiln_node_set_ints(&a, KILN_ATTR_AXES, axes, xr - 2);
        y = ox_emit1(x, n, is(n, "GlobalAveragePool") ? KILN_OP_MEAN : KILN_OP_REDUCE_MAX, in, &a,
                     ox_out_name(x, n, 0, NULL));
    }
    if (y == KILN_NO_ID)
        return -1;
    ox_set_dyn(n, 0, y, false);
    return 0;
}

int ox_lower_batchnorm(ox_ctx *x, ox_node *n)
{
    if (n->n_in < 5 || !n->in[0])
        return ox_refuse(n, x, "BatchNormalization takes five inputs");
    for (size_t k = 1; k < n->n_out; k++)
        if (n->out[k])
            return ox_refuse(n, x, "its running statistics outputs are used (training)");
    if (ox_attr_i(x, n, "training_mode", 0))
        return ox_refuse(n, x, "training_mode is 1");
    if (x->opset < 9 && ox_attr_i(x, n, "spatial", 1) == 0)
        return ox_refuse(n, x, "spatial = 0 (per-element statistics)");
    if (x->opset < 7 && ox_attr(n, "is_test") && ox_attr_i(x, n, "is_test", 0) == 0)
        return ox_refuse(n, x, "is_test is 0 (training)");
    double eps = ox_attr_f(x, n, "epsilon", 1e-5);
    int64_t xd[OX_MAX_RANK];
    bool xb;
    int xr = ox_shape(x, n->in[0], xd, &xb);
    if (n->refused)
        return -1;
    if (xr < 2)
        return ox_refuse(n, x, "batch normalization of a rank-%d value", xr);
    static const char *const roles[] = {"weight", "bias", "running_mean", "running_var"};
    kiln_id ins[5];
    ins[0] = ox_data(x, n, 0);
    for (int k = 0; k < 4; k++)
        ins[k + 1] = ox_param(x, n, n->in[k + 1], roles[k], 1, &xd[1]);
    if (n->refused)
        return -1;
    kiln_node a = {0};
    kiln_node_set_float(&a, KILN_ATTR_EPS, (double)(float)eps);
    kiln_id y = ox_emit(x, n, KILN_OP_BATCHNORM, ins, 5, &a, ox_out_name(x, n, 0, ox_module_hint(x, n->in[1], "weight")));
    if (y == KILN_NO_ID)
        return -1;
    ox_set_dyn(n, 0, y, false);
    return 0;
}

/* A normalization parameter of the normalized size `count` (a constant of
 * that many elements, or one broadcast), or zeros/ones when absent. */
static kiln_id norm_param(ox_ctx *x, ox_node *n, ox_value *v, const char *role, int64_t count, double absent)
{
    if (!v) {
        float *data = kiln_arena_alloc_aligned(&x->arena, (size_t)count * sizeof(float));
        if (!data)
            return ox_oom(x), ox_refuse(n, x, "out of memory"), KILN_NO_ID;
        for (int64_t i = 0; i < count; i++)
            data[i] = (float)absent;
        return ox_param_data(x, n, role, 1, &count, data);
    }
    ox_tensor *t = v->kind == OX_CONST ? ox_const(x, n, v) : NULL;
    if (t && t->count == 1 && count != 1) {
        float *data = kiln_arena_alloc_aligned(&x->arena, (size_t)count * sizeof(float));
        if (!data)
            return ox_oom(x), ox_refuse(n, x, "out of memory"), KILN_NO_ID;
        for (int64_t i = 0; i < count; i++)
            data[i] = (float)ox_get_f(t, 0);
        return ox_param_data(x, n, derived(x, v, "expanded"), 1, &count, data);
    }
    return ox_param(x, n, v, role, 1, &count);
}

/* layernorm over the axes from `axis` on of a value of ONNX shape xd/xr, as
 * output 0 of n: reshaped to [..., P] around one layernorm when more than
 * the last axis is normalized. */
static int layernorm_from(ox_ctx *x, ox_node *n, ox_value *xv, int64_t axis, double eps, ox_value *scale,
                          ox_value *bias, const char *hint)
{
    int64_t xd[OX_MAX_RANK];
    bool xb;
    int xr = ox_shape(x, xv, xd, &xb);
    if (axis < 0)
        axis += xr;
    if (axis < 0 || axis >= xr)
        return ox_refuse(n, x, "axis %lld is out of range for rank %d", (long long)axis, xr);
    if (xb && axis == 0)
        return ox_refuse(n, x, "it normalizes over the batch dimension");
    int64_t p = 1;
    for (int k = (int)axis; k < xr; k++)
        p *= xd[k];
    kiln_id ins[3];
    ins[0] = ox_data_value(x, n, xv);
    bool affine = scale || bias;
    uint32_t n_in = 1;
    if (affine) {
        ins[n_in++] = norm_param(x, n, scale, "weight", p, 1.0);
        ins[n_in++] = norm_param(x, n, bias, "bias", p, 0.0);
    }
    if (n->refused || ins[0] == KILN_NO_ID)
        return -1;
    kiln_node a = {0};
    kiln_node_set_float(&a, KILN_ATTR_EPS, (double)(float)eps);
    if (axis == xr - 1) {
        kiln_id y = ox_emit(x, n, KILN_OP_LAYERNORM, ins, n_in, &a, ox_out_name(x, n, 0, hint));
        if (y == KILN_NO_ID)
            return -1;
        ox_set_dyn(n, 0, y, false);
        return 0;
    }
    int64_t flat[OX_MAX_RANK];
    for (int k = 0; k < axis; k++)
        flat[k] = k == 0 && xb ? 0 : xd[k];
    flat[axis] = p;
    ins[0] = ox_emit_reshape(x, n, ins[0], (int)axis + 1, flat, ox_sub_name(x, n, "rows"));
    kiln_id y = ox_emit(x, n, KILN_OP_LAYERNORM, ins, n_in, &a, inner_name(x, n, hint, "norm"));
    if (y == KILN_NO_ID)
        return -1;
    if (xb)
        xd[0] = -1;
    return ox_reshape_to(x, n, 0, y, xr, xd);
}

/* LayerNormalization's Mean and InvStdDev outputs (training uses them; the
 * conformance tests too): mean over the normalized axes, and
 * 1 / sqrt(mean((x - mean)^2) + eps), both keeping the axes. */
static int layernorm_stats(ox_ctx *x, ox_node *n, int64_t axis, double eps)
{
    int64_t xd[OX_MAX_RANK], axes[OX_MAX_RANK];
    bool xb;
    int xr = ox_shape(x, n->in[0], xd, &xb);
    if (axis < 0)
        axis += xr;
    if (axis < 0 || axis >= xr)
        return ox_refuse(n, x, "axis %lld is out of range for rank %d", (long long)axis, xr);
    int na = 0;
    for (int k = (int)axis; k < xr; k++)
        axes[na++] = k;
    kiln_node a = {0};
    kiln_node_set_ints(&a, KILN_ATTR_AXES, axes, na);
    bool want_mean = n->n_out > 1 && n->out[1], want_inv = n->n_out > 2 && n->out[2];
    kiln_id in = ox_data(x, n, 0);
    kiln_id mean = ox_emit1(x, n, KILN_OP_MEAN, in, &a, want_mean ? ox_out_name(x, n, 1, NULL) : ox_sub_name(x, n, "mean"));
    if (mean == KILN_NO_ID)
        return -1;
    if (want_mean)
        ox_set_dyn(n, 1, mean, false);
    if (!want_inv)
        return 0;
    kiln_id ins[2] = {in, mean};
    kiln_id d = ox_emit(x, n, KILN_OP_SUB, ins, 2, NULL, ox_sub_name(x, n, "centered"));
    ins[0] = ins[1] = d;
    kiln_id v = ox_emit(x, n, KILN_OP_MUL, ins, 2, NULL, ox_sub_name(x, n, "squared"));
    v = ox_emit1(x, n, KILN_OP_MEAN, v, &a, ox_sub_name(x, n, "var"));
    v = ox_emit_scalar(x, n, KILN_OP_ADD, v, (double)(float)eps, false, ox_sub_name(x, n, "var_eps"));
    v = ox_emit1(x, n, KILN_OP_SQRT, v, NULL, ox_sub_name(x, n, "std"));
    v = ox_emit_scalar(x, n, KILN_OP_DIV, v, 1.0, true, ox_out_name(x, n, 2, NULL));
    if (v == KILN_NO_ID)
        return -1;
    ox_set_dyn(n, 2, v, false);
    return 0;
}

int ox_lower_layernorm(ox_ctx *x, ox_node *n)
{
    if (n->n_in < 2 || !n->in[0])
        return ox_refuse(n, x, "LayerNormalization needs an input and a scale");
    int64_t axis = ox_attr_i(x, n, "axis", -1);
    double eps = ox_attr_f(x, n, "epsilon", 1e-5);
    if (n->refused)
        return -1;
    ox_value *bias = n->n_in > 2 ? n->in[2] : NULL;
    if (layernorm_from(x, n, n->in[0], axis, eps, n->in[1], bias, ox_module_hint(x, n->in[1], "weight")) != 0)
        return -1;
    if ((n->n_out > 1 && n->out[1]) || (n->n_out > 2 && n->out[2]))
        return layernorm_stats(x, n, axis, eps);
    return 0;
}

/* softmax/log_softmax along one axis of a value, as output 0 of n. */
int ox_lower_softmax(ox_ctx *x, ox_node *n)
{
    if (n->n_in < 1 || !n->in[0])
        return ox_refuse(n, x, "its input is missing");
    int64_t xd[OX_MAX_RANK];
    bool xb;
    int xr = ox_shape(x, n->in[0], xd, &xb);
    kiln_op op = is(n, "Softmax") ? KILN_OP_SOFTMAX : KILN_OP_LOG_SOFTMAX;
    int64_t axis = ox_attr_i(x, n, "axis", x->opset < 13 ? 1 : -1);
    if (n->refused)
        return -1;
    if (xr == 0)
        return ox_refuse(n, x, "softmax of a scalar");
    if (axis < 0)
        axis += xr;
    if (axis < 0 || axis >= xr)
        return ox_refuse(n, x, "axis is out of range for rank %d", xr);
    kiln_id in = ox_data(x, n, 0);
    if (in == KILN_NO_ID)
        return -1;
    kiln_node a = {0};
    if (x->opset >= 13 || axis == xr - 1) {
        kiln_node_set_int(&a, KILN_ATTR_AXIS, axis);
        kiln_id y = ox_emit1(x, n, op, in, &a, ox_out_name(x, n, 0, NULL));
        if (y == KILN_NO_ID)
            return -1;
        ox_set_dyn(n, 0, y, false);
        return 0;
    }
    /* Before opset 13 the input is seen as 2-D [d0*..*d(axis-1), rest]:
     * softmax over everything from `axis` on. */
    if (xb && axis == 0)
        return ox_refuse(n, x, "softmax over every axis including the batch");
    int64_t flat[OX_MAX_RANK], p = 1;
    for (int k = (int)axis; k < xr; k++)
        p *= xd[k];
    for (int k = 0; k < axis; k++)
        flat[k] = k == 0 && xb ? 0 : xd[k];
    flat[axis] = p;
    kiln_id r = ox_emit_reshape(x, n, in, (int)axis + 1, flat, ox_sub_name(x, n, "rows"));
    kiln_node_set_int(&a, KILN_ATTR_AXIS, axis);
    kiln_id y = ox_emit1(x, n, op, r, &a, ox_sub_name(x, n, "rowwise"));
    if (y == KILN_NO_ID)
        return -1;
    if (xb)
        xd[0] = -1;
    return ox_reshape_to(x, n, 0, y, xr, xd);
}

/* ---- Gemm and MatMul ------------------------------------------------------------- */

/* A row-vector bias: a constant whose elements all lie along the last axis
 * (shape [N], [1, N], a scalar): its N values (expanded from one), or NULL. */
static float *row_bias(ox_ctx *x, ox_value *c, int64_t units, double scale)
{
    ox_tensor *t = c && c->kind == OX_CONST ? ox_const(x, NULL, c) : NULL;
    if (!t || !ox_dtype_is_float(t->dtype) || (t->count != units && t->count != 1))
        return NULL;
    for (int k = 0; k + 1 < t->rank; k++)
        if (t->dims[k] != 1)
            return NULL;
    if (t->rank > 0 && t->dims[t->rank - 1] != t->count)
        return NULL;
    float *data = kiln_arena_alloc_aligned(&x->arena, (size_t)units * sizeof(float));
    if (!data) {
        ox_oom(x);
        return NULL;
    }
    for (int64_t i = 0; i < units; i++)
        data[i] = (float)(scale * ox_get_f(t, t->count == 1 ? 0 : i));
    return data;
}

/* The name of a row bias made from constant c: c's own when its values are
 * unchanged (a [N] vector, not scaled). */
static const char *bias_hint(ox_ctx *x, ox_value *c, int64_t units, double scale)
{
    ox_tensor *t = ox_const(x, NULL, c);
    if (t && t->rank == 1 && t->count == units && scale == 1.0)
        return c->hint ? c->hint : c->name;
    return derived(x, c, "row");
}

/* dense: in · Wᵀ (+ bias) with W = (trans ? B : Bᵀ) · alpha, as name. */
static kiln_id dense_of(ox_ctx *x, ox_node *n, kiln_id in, ox_value *bv, bool trans, double alpha, const float *bias,
                        const char *bias_hint, const char *name)
{
    ox_tensor *b = ox_const(x, n, bv);
    if (!b)
        return KILN_NO_ID;
    int64_t k = trans ? b->dims[1] : b->dims[0], units = trans ? b->dims[0] : b->dims[1];
    float *w = kiln_arena_alloc_aligned(&x->arena, (size_t)(k * units) * sizeof(float));
    if (!w)
        return ox_oom(x), ox_refuse(n, x, "out of memory"), KILN_NO_ID;
    for (int64_t u = 0; u < units; u++)
        for (int64_t i = 0; i < k; i++) {
            double v = ox_get_f(b, trans ? u * k + i : i * units + u);
            w[u * k + i] = (float)(alpha == 1.0 ? v : (double)(float)(alpha * v));
        }
    int64_t wd[2] = {units, k};
    kiln_id ins[3] = {in, KILN_NO_ID, KILN_NO_ID};
    uint32_t n_in = 2;
    if (trans && alpha == 1.0)
        ins[1] = ox_param(x, n, bv, "weight", 2, wd);
    else
        ins[1] = ox_param_data(x, n, derived(x, bv, trans ? "scaled" : "transposed"), 2, wd, w);
    if (bias)
        ins[n_in++] = ox_param_data(x, n, bias_hint, 1, &units, bias);
    kiln_node a = {0};
    kiln_node_set_int(&a, KILN_ATTR_UNITS, units);
    return ox_emit(x, n, KILN_OP_DENSE, ins, n_in, &a, name);
}

int ox_lower_gemm(ox_ctx *x, ox_node *n)
{
    if (n->n_in < 2 || !n->in[0] || !n->in[1])
        return ox_refuse(n, x, "Gemm takes A and B");
    double alpha = ox_attr_f(x, n, "alpha", 1.0), beta = ox_attr_f(x, n, "beta", 1.0);
    bool ta = ox_attr_i(x, n, "transA", 0) != 0, tb = ox_attr_i(x, n, "transB", 0) != 0;
    if (n->refused)
        return -1;
    alpha = (double)(float)alpha;
    beta = (double)(float)beta;
    int64_t ad[OX_MAX_RANK], bd[OX_MAX_RANK];
    bool ab, bb;
    int ar = ox_shape(x, n->in[0], ad, &ab), br = ox_shape(x, n->in[1], bd, &bb);
    if (ar != 2 || br != 2)
        return ox_refuse(n, x, "Gemm of ranks %d and %d (both must be 2)", ar, br);
    ox_value *c = n->n_in > 2 && n->in[2] && beta != 0 ? n->in[2] : NULL;
    int64_t units = tb ? bd[0] : bd[1];
    kiln_id a = ox_data(x, n, 0);
    if (a == KILN_NO_ID)
        return -1;
    if (ta) {
        int64_t perm[2] = {1, 0};
        a = ox_emit_transpose(x, n, a, 2, perm, ox_sub_name(x, n, "at"));
    }
    const char *hint = ox_module_hint(x, n->in[1], "weight");
    kiln_id y;
    if (n->in[1]->kind == OX_CONST) {
        float *bias = c ? row_bias(x, c, units, beta) : NULL;
        bool separate = c && !bias;
        y = dense_of(x, n, a, n->in[1], tb, alpha, bias, c ? bias_hint(x, c, units, beta) : NULL,
                     separate ? inner_name(x, n, hint, "mm") : ox_out_name(x, n, 0, hint));
        if (!separate)
            goto done;
    } else {
        kiln_id ins[2] = {a, ox_data(x, n, 1)};
        kiln_node at = {0};
        if (tb)
            kiln_node_set_bool(&at, KILN_ATTR_TRANSPOSE_B, true);
        bool more = alpha != 1.0 || c;
        y = ox_emit(x, n, KILN_OP_MATMUL, ins, 2, &at, more ? ox_sub_name(x, n, "mm") : ox_out_name(x, n, 0, NULL));
        if (alpha != 1.0)
            y = ox_emit_scalar(x, n, KILN_OP_MUL, y, alpha, false,
                               c ? ox_sub_name(x, n, "scaled") : ox_out_name(x, n, 0, NULL));
        if (!c)
            goto done;
    }
    /* + beta * C, C broadcast to [M, N] */
    kiln_id ck = ox_data_value(x, n, c);
    if (ck != KILN_NO_ID && beta != 1.0)
        ck = ox_emit_scalar(x, n, KILN_OP_MUL, ck, beta, false, ox_sub_name(x, n, "c"));
    kiln_id ins[2] = {y, ck};
    y = ox_emit(x, n, KILN_OP_ADD, ins, 2, NULL, ox_out_name(x, n, 0, NULL));
done:
    if (y == KILN_NO_ID)
        return -1;
    ox_set_dyn(n, 0, y, false);
    return 0;
}

/* MatMul, with the bias of a following Add when patterns.c found one (then
 * the result is that Add's output). */
static int matmul(ox_ctx *x, ox_node *n, ox_value *bias, ox_value *result)
{
    if (n->n_in != 2 || !n->in[0] || !n->in[1])
        return ox_refuse(n, x, "MatMul takes two inputs");
    int64_t ad[OX_MAX_RANK], bd[OX_MAX_RANK];
    bool ab, bb;
    int ar = ox_shape(x, n->in[0], ad, &ab), br = ox_shape(x, n->in[1], bd, &bb);
    ox_node out = *n;
    if (result) { /* name and define the Add's output */
        out.out = &result;
        out.n_out = 1;
    }
    kiln_id a = ox_data(x, n, 0), y;
    if (a == KILN_NO_ID)
        return -1;
    if (n->in[1]->kind == OX_CONST && br == 2 && ar >= 2) {
        float *bdata = NULL;
        const char *bhint = NULL, *hint = NULL;
        if (bias) {
            bdata = row_bias(x, bias, bd[1], 1.0);
            bhint = bias_hint(x, bias, bd[1], 1.0);
            hint = ox_module_hint(x, bias, "bias");
        }
        y = dense_of(x, &out, a, n->in[1], false, 1.0, bdata, bhint, ox_out_name(x, &out, 0, hint));
    } else {
        kiln_id ins[2] = {a, ox_data(x, n, 1)};
        y = ox_emit(x, n, KILN_OP_MATMUL, ins, 2, NULL, ox_out_name(x, &out, 0, NULL));
    }
    if (out.refused)
        ox_refuse(n, x, "%s", out.why);
    if (y == KILN_NO_ID)
        return -1;
    if (result) {
        result->kind = OX_DYN;
        result->kv = y;
    } else {
        ox_set_dyn(n, 0, y, ar == 1 && br == 1);
    }
    return 0;
}

int ox_lower_matmul(ox_ctx *x, ox_node *n) { return matmul(x, n, NULL, NULL); }

/* ---- transposed convolution and group normalization --------------------------- */

/* ConvTranspose (1-D as 2-D over H = 1) as conv_transpose2d. ONNX's output
 * along an axis is the full transposed convolution, L = (in - 1)·s +
 * (k - 1)·d + 1 + output_padding, with pads[begin] cut from the front and
 * pads[end] from the back; kiln's padding cuts the same amount from both
 * ends. Unequal pads are the smaller one as kiln's padding, then a slice that
 * cuts the rest. auto_pad SAME_* and output_shape fix the total padding, split
 * as ONNX says (the odd unit at the end for SAME_UPPER, at the front for
 * SAME_LOWER); an output_shape beyond L grows output_padding instead. */
int ox_lower_conv_transpose(ox_ctx *x, ox_node *n)
{
    if (n->n_in < 2 || !n->in[0])
        return ox_refuse(n, x, "ConvTranspose needs an input and a weight");
    int64_t xd[OX_MAX_RANK];
    bool xb;
    int xr = ox_shape(x, n->in[0], xd, &xb);
    if (xr != 3 && xr != 4)
        return ox_refuse(n, x, "a transposed convolution over an input of rank %d (kiln has conv_transpose2d, and "
                               "1-D as 2-D)", xr);
    int spatial = xr - 2;
    ox_tensor *w = need_const(x, n, 1, "weight");
    if (!w)
        return -1;
    if (w->rank != xr)
        return ox_refuse(n, x, "its weight has rank %d for an input of rank %d", w->rank, xr);
    int64_t group = ox_attr_i(x, n, "group", 1);
    int64_t k[2], s[2] = {1, 1}, d[2] = {1, 1}, op[2] = {0, 0}, pb[2] = {0, 0}, pe[2] = {0, 0}, v[4], oshape[2];
    const char *ap = ox_attr_s(x, n, "auto_pad", "NOTSET");
    if (n->refused)
        return -1;
    if (group < 1 || xd[1] != w->dims[0] || xd[1] % group)
        return ox_refuse(n, x, "%lld input channels do not match a weight of %lld channels in %lld groups",
                         (long long)xd[1], (long long)w->dims[0], (long long)group);
    for (int i = 0; i < spatial; i++)
        k[i] = w->dims[2 + i];
    static const char *const lists[] = {"kernel_shape", "strides", "dilations", "output_padding", "pads",
                                        "output_shape"};
    int64_t *dest[] = {k, s, d, op, NULL, oshape};
    bool has_oshape = false;
    for (int l = 0; l < 6; l++) {
        int c = ox_attr_ints(x, n, lists[l], v, 4);
        if (n->refused)
            return -1;
        if (c < 0)
            continue;
        if (c != (l == 4 ? 2 * spatial : spatial))
            return ox_refuse(n, x, "%s has %d entries for %d spatial axes", lists[l], c, spatial);
        for (int i = 0; i < spatial; i++) {
            if (l == 0 && v[i] != k[i])
                return ox_refuse(n, x, "kernel_shape does not match the weight");
            if (l == 4) {
                pb[i] = v[i];
                pe[i] = v[i + spatial];
            } else {
                dest[l][i] = v[i];
            }
        }
        has_oshape = has_oshape || l == 5;
    }
    for (int i = 0; i < spatial; i++)
        if (s[i] < 1 || d[i] < 1 || op[i] < 0 || pb[i] < 0 || pe[i] < 0 || s[i] > KILN_MAX_DIM ||
            d[i] > KILN_MAX_DIM || op[i] > KILN_MAX_DIM || pb[i] > KILN_MAX_DIM || pe[i] > KILN_MAX_DIM)
            return ox_refuse(n, x, "strides and dilations must be positive, pads and output_padding non-negative");
    bool same = strcmp(ap, "SAME_UPPER") == 0 || strcmp(ap, "SAME_LOWER") == 0;
    if (!same && strcmp(ap, "NOTSET") != 0 && strcmp(ap, "VALID") != 0)
        return ox_refuse(n, x, "auto_pad '%s'", ap);
    if (strcmp(ap, "VALID") == 0)
        memset(pb, 0, sizeof pb), memset(pe, 0, sizeof pe);
    int64_t full[2]; /* L per axis */
    for (int i = 0; i < spatial; i++) {
        full[i] = (xd[2 + i] - 1) * s[i] + (k[i] - 1) * d[i] + 1 + op[i];
        if (!has_oshape && !same)
            continue;
        int64_t want = has_oshape ? oshape[i] : xd[2 + i] * s[i], total = full[i] - want;
        if (total < 0) { /* a larger output: the extra rows at the end, as output_padding */
            op[i] -= total;
            full[i] -= total;
            total = 0;
        }
        bool lower = strcmp(ap, "SAME_LOWER") == 0;
        pb[i] = lower ? total - total / 2 : total / 2;
        pe[i] = total - pb[i];
    }
    int64_t kp[2] = {0, 0}, kk[2] = {1, 1}, ks[2] = {1, 1}, kd[2] = {1, 1}, ko[2] = {0, 0};
    int o = spatial == 1 ? 1 : 0;
    for (int i = 0; i < spatial; i++) {
        kp[i + o] = pb[i] < pe[i] ? pb[i] : pe[i];
        kk[i + o] = k[i];
        ks[i + o] = s[i];
        kd[i + o] = d[i];
        ko[i + o] = op[i];
    }
    int64_t wd[4] = {w->dims[0], w->dims[1], spatial == 1 ? 1 : w->dims[2], w->dims[spatial == 1 ? 2 : 3]};
    int64_t filters = w->dims[1] * group;
    const char *hint = ox_module_hint(x, n->in[1], "weight");
    kiln_id ins[3];
    ins[0] = ox_data(x, n, 0);
    ins[1] = ox_param(x, n, n->in[1], "weight", 4, wd);
    uint32_t n_in = 2;
    if (n->n_in > 2 && n->in[2])
        ins[n_in++] = ox_param(x, n, n->in[2], "bias", 1, &filters);
    if (n->refused)
        return -1;
    if (spatial == 1)
        ins[0] = to_2d(x, n, ins[0], xd, xb);
    kiln_node a = {0};
    kiln_node_set_int(&a, KILN_ATTR_FILTERS, filters);
    kiln_node_set_ints(&a, KILN_ATTR_KERNEL, kk, 2);
    kiln_node_set_ints(&a, KILN_ATTR_STRIDE, ks, 2);
    int64_t kp4[4] = {kp[0], kp[1], kp[0], kp[1]}; /* the same at both ends */
    kiln_node_set_ints(&a, KILN_ATTR_PADDING, kp4, 4);
    kiln_node_set_ints(&a, KILN_ATTR_OUTPUT_PADDING, ko, 2);
    kiln_node_set_ints(&a, KILN_ATTR_DILATION, kd, 2);
    kiln_node_set_int(&a, KILN_ATTR_GROUPS, group);
    bool crop = false;
    for (int i = 0; i < spatial; i++)
        crop = crop || pb[i] != pe[i];
    bool last = spatial == 2 && !crop;
    kiln_id y = ox_emit(x, n, KILN_OP_CONV_TRANSPOSE2D, ins, n_in, &a,
                        last ? ox_out_name(x, n, 0, hint) : inner_name(x, n, hint, "deconv"));
    for (int i = 0; i < spatial && y != KILN_NO_ID; i++) {
        if (pb[i] == pe[i])
            continue;
        /* kiln cut kp from both ends of L: cut the rest of pads[begin] from the front and of pads[end] from the back */
        int64_t kl = full[i] - 2 * kp[i + o];
        kiln_node c = {0};
        kiln_node_set_int(&c, KILN_ATTR_AXIS, 2 + i + o);
        kiln_node_set_int(&c, KILN_ATTR_START, pb[i] - kp[i + o]);
        if (pe[i] > kp[i + o]) /* else to the end: the default */
            kiln_node_set_int(&c, KILN_ATTR_END, kl - (pe[i] - kp[i + o]));
        bool done = spatial == 2 && (i == 1 || pb[1] == pe[1]);
        char suffix[32];
        snprintf(suffix, sizeof suffix, "crop%d", i);
        y = ox_emit1(x, n, KILN_OP_SLICE, y, &c, done ? ox_out_name(x, n, 0, NULL) : ox_sub_name(x, n, suffix));
    }
    if (spatial == 1)
        return from_2d(x, n, y);
    if (y == KILN_NO_ID)
        return -1;
    ox_set_dyn(n, 0, y, false);
    return 0;
}

/* InstanceNormalization and GroupNormalization as group_norm (instance
 * normalization is one group per channel). GroupNormalization's scale and
 * bias are per group at opset 18 (repeated here over each group's channels)
 * and per channel since 21. */
int ox_lower_group_norm(ox_ctx *x, ox_node *n)
{
    if (n->n_in < 3 || !n->in[0] || !n->in[1] || !n->in[2])
        return ox_refuse(n, x, "%s takes an input, a scale and a bias", type_of(n));
    int64_t xd[OX_MAX_RANK];
    bool xb;
    int xr = ox_shape(x, n->in[0], xd, &xb);
    bool instance = is(n, "InstanceNormalization");
    double eps = ox_attr_f(x, n, "epsilon", 1e-5);
    int64_t groups = instance ? (xr >= 2 ? xd[1] : 1) : ox_attr_i(x, n, "num_groups", 0);
    if (n->refused)
        return -1;
    if (xr < 3)
        return ox_refuse(n, x, "normalization of a rank-%d value (it needs [N, C, ...])", xr);
    int64_t C = xd[1];
    if (groups < 1 || C % groups)
        return ox_refuse(n, x, "num_groups %lld does not divide the %lld channels", (long long)groups, (long long)C);
    kiln_id ins[3];
    ins[0] = ox_data(x, n, 0);
    static const char *const roles[] = {"weight", "bias"};
    for (int r = 0; r < 2; r++) {
        ox_tensor *t = need_const(x, n, 1 + (size_t)r, r ? "bias" : "scale");
        if (!t)
            return -1;
        if (t->count == C) {
            ins[1 + r] = ox_param(x, n, n->in[1 + r], roles[r], 1, &C);
        } else if (!instance && t->count == groups) {
            float *data = kiln_arena_alloc_aligned(&x->arena, (size_t)C * sizeof(float));
            if (!data)
                return ox_oom(x), ox_refuse(n, x, "out of memory");
            for (int64_t c = 0; c < C; c++)
                data[c] = (float)ox_get_f(t, c / (C / groups));
            ins[1 + r] = ox_param_data(x, n, derived(x, n->in[1 + r], "per_channel"), 1, &C, data);
        } else {
            return ox_refuse(n, x, "its %s has %lld values for %lld channels in %lld groups", r ? "bias" : "scale",
                             (long long)t->count, (long long)C, (long long)groups);
        }
    }
    if (n->refused)
        return -1;
    kiln_node a = {0};
    kiln_node_set_int(&a, KILN_ATTR_GROUPS, groups);
    kiln_node_set_float(&a, KILN_ATTR_EPS, (double)(float)eps);
    kiln_id y = ox_emit(x, n, KILN_OP_GROUP_NORM, ins, 3, &a,
                        ox_out_name(x, n, 0, ox_module_hint(x, n->in[1], "weight")));
    if (y == KILN_NO_ID)
        return -1;
    ox_set_dyn(n, 0, y, false);
    return 0;
}

/* ---- reductions ------------------------------------------------------------------ */

int ox_lower_reduce(ox_ctx *x, ox_node *n)
{
    if (n->n_in < 1 || !n->in[0])
        return ox_refuse(n, x, "its input is missing");
    int64_t xd[OX_MAX_RANK];
    bool xb, reduce[OX_MAX_RANK], all;
    int xr = ox_shape(x, n->in[0], xd, &xb);
    if (ox_reduce_axes(x, n, xr, reduce, &all))
        return -1;
    bool keep = ox_attr_i(x, n, "keepdims", 1) != 0;
    if (n->refused)
        return -1;
    int64_t od[OX_MAX_RANK], axes[OX_MAX_RANK];
    int r = 0, na = 0;
    bool trivial = true; /* every reduced axis has size 1 */
    for (int k = 0; k < xr; k++) {
        if (reduce[k]) {
            axes[na++] = k;
            trivial = trivial && xd[k] == 1;
            if (keep)
                od[r++] = 1;
        } else {
            od[r++] = xd[k];
        }
    }
    kiln_id in = ox_data(x, n, 0);
    if (in == KILN_NO_ID)
        return -1;
    if (na == 0 || trivial) /* nothing to compute: at most a reshape */
        return ox_reshape_to(x, n, 0, in, r, od);
    kiln_op op = is(n, "ReduceMean") ? KILN_OP_MEAN
                 : is(n, "ReduceMax") ? KILN_OP_REDUCE_MAX
                 : is(n, "ReduceMin") ? KILN_OP_REDUCE_MIN
                                      : KILN_OP_REDUCE_SUM;
    /* kiln has no rank-0 values: reducing every axis keeps them (shape [1, ...]),
     * then a reshape makes it ONNX's scalar. */
    bool scalar = r == 0;
    kiln_node a = {0};
    kiln_node_set_ints(&a, KILN_ATTR_AXES, axes, na);
    if (!keep && !scalar)
        kiln_node_set_bool(&a, KILN_ATTR_KEEPDIMS, false);
    kiln_id y = ox_emit1(x, n, op, in, &a, scalar ? ox_sub_name(x, n, "reduced") : ox_out_name(x, n, 0, NULL));
    if (scalar && y != KILN_NO_ID)
        return ox_reshape_to(x, n, 0, y, 0, od);
    if (y == KILN_NO_ID)
        return -1;
    ox_set_dyn(n, 0, y, false);
    return 0;
}

/* ---- patterns ----------------------------------------------------------------------- */

int ox_lower_fused(ox_ctx *x, ox_node *n, const ox_pattern *f)
{
    if (f->kind == OX_PAT_DENSE_BIAS)
        return matmul(x, n, f->bias, f->result);
    /* n is the pattern's last node: its output 0 is the result. */
    if (f->kind == OX_PAT_LAYERNORM)
        return layernorm_from(x, n, f->x, -1, f->eps, f->scale, f->bias,
                              f->scale ? ox_module_hint(x, f->scale, "weight") : NULL);
    kiln_id in = ox_data_value(x, n, f->x);
    if (in == KILN_NO_ID)
        return -1;
    kiln_node a = {0};
    if (f->approximate) {
        a.attrs[KILN_ATTR_APPROXIMATE].i = 1;
        a.attr_set |= 1u << KILN_ATTR_APPROXIMATE;
    }
    kiln_id y = ox_emit1(x, n, KILN_OP_GELU, in, &a, ox_out_name(x, n, 0, NULL));
    if (y == KILN_NO_ID)
        return -1;
    ox_set_dyn(n, 0, y, f->x->scalar0);
    return 0;
}
