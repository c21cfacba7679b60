/* compiler/codegen/kernels_conv.c: conv2d, the pools and global average
 * pooling, over NCHW with padding given per side [top, left, bottom, right].
 *
 * conv2d takes one of three paths:
 *   - C/groups == 1 (depthwise, or with a channel multiplier): a direct
 *     kernel, each output row a vector loop along x with the window's input
 *     lanes loaded under a bounds mask (padding reads as 0);
 *   - a 1x1 kernel with stride 1 and no padding: a GEMM straight on the input
 *     (out[f, p] = W[f, c] x[c, p] per group and batch item);
 *   - anything else: im2col into the shared scratch (one step: rows j = (c,
 *     ky, kx), columns the output pixels, zero where the window lies in the
 *     padding), then the GEMM (a second step). Weights are read as
 *     [F, C/groups * kh * kw], PyTorch's own layout; bias per GEMM row.
 * The window loads use a masked contiguous load for stride 1 and a masked
 * gather otherwise, so every stride, dilation and asymmetric padding takes
 * the same code.
 *
 * Pools: per output row a vector loop along x; max pooling pads with -inf
 * (NaN wins, as in PyTorch), average pooling divides by the window clipped
 * to the padded input (count_include_pad) or to the input, per lane. */
#include "cg.h"

#include <math.h>
#include <stdio.h>

typedef LLVMValueRef V;

#define CHUNK 16384 /* output elements per task, roughly */

typedef struct window {
    int64_t kh, kw, sh, sw, pt, pl, pb, pr, dh, dw;
} window;

static window read_window(const kiln_node *n, int64_t kh, int64_t kw, bool dilation)
{
    const kiln_attr *s = &n->attrs[KILN_ATTR_STRIDE], *p = &n->attrs[KILN_ATTR_PADDING];
    window w = {kh, kw, s->ints[0], s->ints[1], p->ints[0], p->ints[1], p->ints[2], p->ints[3], 1, 1};
    if (dilation && kiln_node_has(n, KILN_ATTR_DILATION)) {
        w.dh = n->attrs[KILN_ATTR_DILATION].ints[0];
        w.dw = n->attrs[KILN_ATTR_DILATION].ints[1];
    }
    return w;
}

static bool window_ok(const kiln_node *n)
{
    return n->attrs[KILN_ATTR_STRIDE].n >= 2 && n->attrs[KILN_ATTR_PADDING].n >= 4 &&
           (!kiln_node_has(n, KILN_ATTR_DILATION) || n->attrs[KILN_ATTR_DILATION].n >= 2);
}

static V mul64(kiln_cg *cg, V a, int64_t b) { return LLVMBuildMul(cg->b, a, kiln_cg_i64(cg, b), ""); }
static V add64(kiln_cg *cg, V a, V b) { return LLVMBuildAdd(cg->b, a, b, ""); }

/* Input lanes row[ix], ix = (ox0 + lane) * sw + off, where 0 <= ix < W and
 * the lane is in `valid`; passthru elsewhere. */
static V window_load(kiln_cg *cg, V row, V ox0, int64_t sw, V off, int64_t W, V valid, double passthru)
{
    V ox = LLVMBuildAdd(cg->b, kiln_cg_splat(cg, ox0), kiln_cg_iota64(cg), "");
    V ix = LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, ox, kiln_cg_splat(cg, kiln_cg_i64(cg, sw)), ""),
                        kiln_cg_splat(cg, off), "ix");
    V inb = LLVMBuildAnd(cg->b, LLVMBuildICmp(cg->b, LLVMIntSGE, ix, LLVMConstNull(cg->t_vi64), ""),
                         LLVMBuildICmp(cg->b, LLVMIntSLT, ix, kiln_cg_splat(cg, kiln_cg_i64(cg, W)), ""), "inb");
    V mask = kiln_cg_mask_and(cg, inb, valid);
    if (sw == 1)
        return kiln_cg_vload(cg, row, add64(cg, ox0, off), mask, passthru);
    return kiln_cg_gather(cg, row, ix, mask, passthru);
}

/* Splits `planes` (per batch item or total) of `plane_elems` outputs into
 * tasks; returns the count and sets the planes per task. */
static kiln_cg_count plane_tasks(bool batched, int64_t planes, int64_t plane_elems, int64_t *per_task)
{
    *per_task = plane_elems >= CHUNK ? 1 : CHUNK / plane_elems;
    return (kiln_cg_count){batched ? 0 : planes, batched ? planes : 0, *per_task, 1};
}

/* ---- conv2d: direct kernel for C/groups == 1 ----------------------------------- */

typedef struct direct_arg {
    const window *w;
    V x_plane, y_row, w_f, bias_f; /* weights of this filter, bias scalar or NULL */
    V oy;
    int64_t H, W;
} direct_arg;

static void direct_body(kiln_cg *cg, V ox0, V mask, void *p)
{
    direct_arg *a = p;
    const window *w = a->w;
    V acc = kiln_cg_alloca(cg, cg->t_vf, "acc");
    LLVMBuildStore(cg->b, a->bias_f ? kiln_cg_splat(cg, a->bias_f) : LLVMConstNull(cg->t_vf), acc);
    for (int64_t ky = 0; ky < w->kh; ky++) {
        V iy = add64(cg, mul64(cg, a->oy, w->sh), kiln_cg_i64(cg, ky * w->dh - w->pt));
        V in = LLVMBuildAnd(cg->b, LLVMBuildICmp(cg->b, LLVMIntSGE, iy, kiln_cg_i64(cg, 0), ""),
                            LLVMBuildICmp(cg->b, LLVMIntSLT, iy, kiln_cg_i64(cg, a->H), ""), "");
        kiln_cg_if f;
        kiln_cg_if_begin(cg, &f, in);
        V row = kiln_cg_gep(cg, a->x_plane, mul64(cg, iy, a->W));
        for (int64_t kx = 0; kx < w->kw; kx++) {
            V v = window_load(cg, row, ox0, w->sw, kiln_cg_i64(cg, kx * w->dw - w->pl), a->W, mask, 0.0);
            V wt = kiln_cg_splat(cg, kiln_cg_load(cg, a->w_f, kiln_cg_i64(cg, ky * w->kw + kx)));
            V cur = LLVMBuildLoad2(cg->b, cg->t_vf, acc, "");
            LLVMBuildStore(cg->b, kiln_cg_fma(cg, wt, v, cur), acc);
        }
        kiln_cg_if_end(cg, &f);
    }
    kiln_cg_vstore(cg, LLVMBuildLoad2(cg->b, cg->t_vf, acc, ""), a->y_row, ox0, mask);
}

static kiln_status conv_direct(kiln_cg *cg, const kiln_node *n, const window *w, uint64_t w_off, bool has_bias,
                               uint64_t b_off)
{
    const kiln_shape *xs = &kiln_graph_value(cg->g, n->inputs[0])->type.shape;
    const kiln_shape *ys = &kiln_graph_value(cg->g, n->output)->type.shape;
    const int64_t C = xs->dims[1], H = xs->dims[2], W = xs->dims[3];
    const int64_t F = ys->dims[1], OH = ys->dims[2], OW = ys->dims[3];
    const int64_t groups = n->attrs[KILN_ATTR_GROUPS].i, Fg = F / groups;
    int64_t per_task;
    kiln_cg_count count = plane_tasks(xs->batched, xs->batched ? F : F * ys->dims[0], OH * OW, &per_task);
    char kernel[96];
    snprintf(kernel, sizeof kernel, "f32_conv2d_dw%s_%s", has_bias ? "_bias" : "", cg->target->name);
    kiln_cg_task_begin(cg, kernel, n);
    V px = kiln_cg_value_ptr(cg, n->inputs[0]), py = kiln_cg_value_ptr(cg, n->output);
    V pw = kiln_cg_weights_ptr(cg, w_off), pbias = has_bias ? kiln_cg_weights_ptr(cg, b_off) : NULL;
    V lo, hi;
    V total = LLVMBuildUDiv(cg->b, kiln_cg_value_elems(cg, n->output), kiln_cg_i64(cg, OH * OW), "planes");
    kiln_cg_task_range(cg, total, per_task, &lo, &hi);
    kiln_cg_loop lp, ly;
    V plane = kiln_cg_for_begin(cg, &lp, lo, hi, kiln_cg_i64(cg, 1));
    V f = kiln_cg_urem(cg, plane, F), nb = kiln_cg_udiv(cg, plane, F);
    V ch = kiln_cg_udiv(cg, f, Fg);
    direct_arg a = {w, kiln_cg_gep(cg, px, mul64(cg, add64(cg, mul64(cg, nb, C), ch), H * W)), NULL,
                    kiln_cg_gep(cg, pw, mul64(cg, f, w->kh * w->kw)), pbias ? kiln_cg_load(cg, pbias, f) : NULL,
                    NULL, H, W};
    V y_plane = kiln_cg_gep(cg, py, mul64(cg, plane, OH * OW));
    a.oy = kiln_cg_for_begin(cg, &ly, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, OH), kiln_cg_i64(cg, 1));
    a.y_row = kiln_cg_gep(cg, y_plane, mul64(cg, a.oy, OW));
    kiln_cg_vloop(cg, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, OW), direct_body, &a);
    kiln_cg_for_end(cg, &ly);
    kiln_cg_for_end(cg, &lp);
    kiln_cg_task_end(cg, count);
    return cg->status;
}

/* ---- conv2d: im2col ---------------------------------------------------------------- */

typedef struct im2col_arg {
    const window *w;
    V x_row, col_row, valid_row; /* valid_row: i1, the input row exists */
    V off;
    int64_t W;
} im2col_arg;

static void im2col_body(kiln_cg *cg, V ox0, V mask, void *p)
{
    im2col_arg *a = p;
    V v = window_load(cg, a->x_row, ox0, a->w->sw, a->off, a->W, mask, 0.0);
    kiln_cg_vstore(cg, v, a->col_row, ox0, mask);
}

static void zero_body(kiln_cg *cg, V i, V mask, void *p)
{
    kiln_cg_vstore(cg, LLVMConstNull(cg->t_vf), (V)p, i, mask);
}

static int64_t im2col_rows_per_task(int64_t J, int64_t P)
{
    int64_t r = P >= CHUNK ? 1 : CHUNK / P;
    return r > J ? J : r;
}

static void emit_im2col(kiln_cg *cg, const kiln_node *n, const window *w, int64_t J)
{
    const kiln_shape *xs = &kiln_graph_value(cg->g, n->inputs[0])->type.shape;
    const kiln_shape *ys = &kiln_graph_value(cg->g, n->output)->type.shape;
    const int64_t C = xs->dims[1], H = xs->dims[2], W = xs->dims[3], OH = ys->dims[2], OW = ys->dims[3];
    const int64_t groups = n->attrs[KILN_ATTR_GROUPS].i, Cg = C / groups, P = OH * OW;
    const int64_t rows = groups * J; /* per batch item: all groups' rows */
    const int64_t per_task = im2col_rows_per_task(J, P);
    const bool batched = xs->batched;
    const int64_t items = batched ? 1 : ys->dims[0];

    char kernel[96];
    snprintf(kernel, sizeof kernel, "f32_im2col_%s", cg->target->name);
    kiln_cg_task_begin(cg, kernel, n);
    V px = kiln_cg_value_ptr(cg, n->inputs[0]);
    V col = kiln_cg_scratch_ptr(cg, batched);
    V total = kiln_cg_i64(cg, rows * items);
    if (batched)
        total = LLVMBuildMul(cg->b, total, kiln_cg_batch(cg), "");
    V lo, hi;
    kiln_cg_task_range(cg, total, per_task, &lo, &hi);
    kiln_cg_loop lr, ly;
    V r = kiln_cg_for_begin(cg, &lr, lo, hi, kiln_cg_i64(cg, 1)); /* r = (item * groups + g) * J + j */
    V j = kiln_cg_urem(cg, r, J), gi = kiln_cg_udiv(cg, r, J); /* gi = item * groups + g */
    V kx = kiln_cg_urem(cg, j, w->kw), t = kiln_cg_udiv(cg, j, w->kw);
    V ky = kiln_cg_urem(cg, t, w->kh), ci = kiln_cg_udiv(cg, t, w->kh);
    /* input channel = g * Cg + ci, in item: (gi / groups) * C + (gi % groups) * Cg + ci = gi * Cg + ci */
    V x_plane = kiln_cg_gep(cg, px, mul64(cg, add64(cg, mul64(cg, gi, Cg), ci), H * W));
    V col_row0 = kiln_cg_gep(cg, col, mul64(cg, r, P));
    V off = LLVMBuildSub(cg->b, mul64(cg, kx, w->dw), kiln_cg_i64(cg, w->pl), "");
    V oy = kiln_cg_for_begin(cg, &ly, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, OH), kiln_cg_i64(cg, 1));
    V iy = add64(cg, mul64(cg, oy, w->sh), LLVMBuildSub(cg->b, mul64(cg, ky, w->dh), kiln_cg_i64(cg, w->pt), ""));
    V in = LLVMBuildAnd(cg->b, LLVMBuildICmp(cg->b, LLVMIntSGE, iy, kiln_cg_i64(cg, 0), ""),
                        LLVMBuildICmp(cg->b, LLVMIntSLT, iy, kiln_cg_i64(cg, H), ""), "");
    V col_row = kiln_cg_gep(cg, col_row0, mul64(cg, oy, OW));
    kiln_cg_if f;
    kiln_cg_if_begin(cg, &f, in);
    im2col_arg a = {w, kiln_cg_gep(cg, x_plane, mul64(cg, iy, W)), col_row, NULL, off, W};
    kiln_cg_vloop(cg, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, OW), im2col_body, &a);
    kiln_cg_if_else(cg, &f);
    kiln_cg_vloop(cg, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, OW), zero_body, col_row);
    kiln_cg_if_end(cg, &f);
    kiln_cg_for_end(cg, &ly);
    kiln_cg_for_end(cg, &lr);
    kiln_cg_task_end(cg, (kiln_cg_count){batched ? 0 : rows * items, batched ? rows : 0, per_task, 1});
    (void)Cg;
}

void kiln_cg_conv2d_scratch(const kiln_graph *g, const kiln_node *n, const kiln_cg_target *t, uint64_t *fixed,
                            uint64_t *per_batch)
{
    *fixed = *per_batch = 0;
    const kiln_shape *xs = &kiln_graph_value(g, n->inputs[0])->type.shape;
    const kiln_shape *ys = &kiln_graph_value(g, n->output)->type.shape;
    kiln_id wid = kiln_node_param(g, n, "weight");
    if (xs->rank != 4 || ys->rank != 4 || wid == KILN_NO_ID || !window_ok(n))
        return;
    const kiln_shape *ws = &kiln_graph_value(g, wid)->type.shape;
    const int64_t groups = n->attrs[KILN_ATTR_GROUPS].i, Cg = ws->dims[1], kh = ws->dims[2], kw = ws->dims[3];
    window w = read_window(n, kh, kw, true);
    bool one_by_one = kh == 1 && kw == 1 && w.sh == 1 && w.sw == 1 && !w.pt && !w.pl && !w.pb && !w.pr;
    if (Cg == 1 || one_by_one)
        return;
    /* groups * (Cg kh kw) * (OH OW) floats per item; saturates (layout.c refuses it). */
    uint64_t bytes = 4u;
    const uint64_t f[6] = {(uint64_t)groups, (uint64_t)Cg, (uint64_t)kh, (uint64_t)kw, (uint64_t)ys->dims[2],
                           (uint64_t)ys->dims[3]};
    for (int i = 0; i < 6; i++)
        if (__builtin_mul_overflow(bytes, f[i], &bytes))
            bytes = UINT64_MAX;
    if (xs->batched)
        *per_batch = bytes;
    else if (__builtin_mul_overflow(bytes, (uint64_t)xs->dims[0], fixed))
        *fixed = UINT64_MAX;
}

kiln_status kiln_cg_emit_conv2d(kiln_cg *cg, const kiln_node *n)
{
    const kiln_shape *xs = &kiln_graph_value(cg->g, n->inputs[0])->type.shape;
    const kiln_shape *ys = &kiln_graph_value(cg->g, n->output)->type.shape;
    kiln_id wid = kiln_node_param(cg->g, n, "weight"), bid = kiln_node_param(cg->g, n, "bias");
    if (xs->rank != 4 || ys->rank != 4 || wid == KILN_NO_ID || !window_ok(n))
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "malformed conv2d");
    const kiln_shape *wsh = &kiln_graph_value(cg->g, wid)->type.shape;
    const int64_t C = xs->dims[1], H = xs->dims[2], W = xs->dims[3];
    const int64_t F = ys->dims[1], OH = ys->dims[2], OW = ys->dims[3], P = OH * OW;
    const int64_t groups = n->attrs[KILN_ATTR_GROUPS].i, Cg = wsh->dims[1], kh = wsh->dims[2], kw = wsh->dims[3];
    const int64_t Fg = F / groups, J = Cg * kh * kw;
    window w = read_window(n, kh, kw, true);
    uint64_t w_off, b_off = 0;
    if (kiln_cg_blob_param(cg, wid, &w_off) != KILN_OK ||
        (bid != KILN_NO_ID && kiln_cg_blob_param(cg, bid, &b_off) != KILN_OK))
        return cg->status;
    if (Cg == 1)
        return conv_direct(cg, n, &w, w_off, bid != KILN_NO_ID, b_off);

    bool one_by_one = kh == 1 && kw == 1 && w.sh == 1 && w.sw == 1 && !w.pt && !w.pl && !w.pb && !w.pr;
    if (!one_by_one)
        emit_im2col(cg, n, &w, J);

    /* GEMM per (item, group): out[g*Fg + f][p] = W[g*Fg + f][j] col[g][j][p]. */
    const int64_t mb = (int64_t)cg->target->gemm_mr * 8, nb = (int64_t)cg->target->gemm_nr * cg->vl * 8;
    const int64_t m_blocks = (Fg + mb - 1) / mb, n_blocks = (P + nb - 1) / nb;
    const int64_t per_item = groups * m_blocks * n_blocks;
    const int64_t items = xs->batched ? 1 : xs->dims[0];
    char kernel[96];
    snprintf(kernel, sizeof kernel, "f32_conv2d%s%s_gemm_%s", one_by_one ? "_1x1" : "", bid != KILN_NO_ID ? "_bias" : "",
             cg->target->name);
    kiln_cg_task_begin(cg, kernel, n);
    V px = kiln_cg_value_ptr(cg, n->inputs[0]), py = kiln_cg_value_ptr(cg, n->output);
    V col = one_by_one ? NULL : kiln_cg_scratch_ptr(cg, xs->batched);
    V t = cg->arg_index;
    V cb = kiln_cg_urem(cg, t, n_blocks);
    t = kiln_cg_udiv(cg, t, n_blocks);
    V rb = kiln_cg_urem(cg, t, m_blocks);
    V gi = kiln_cg_udiv(cg, t, m_blocks); /* item * groups + g */
    V g = kiln_cg_urem(cg, gi, groups);
    V r0 = mul64(cg, rb, mb), r1 = kiln_cg_smin(cg, add64(cg, r0, kiln_cg_i64(cg, mb)), kiln_cg_i64(cg, Fg));
    V c0 = mul64(cg, cb, nb), c1 = kiln_cg_smin(cg, add64(cg, c0, kiln_cg_i64(cg, nb)), kiln_cg_i64(cg, P));
    V frow = add64(cg, mul64(cg, g, Fg), r0); /* first output channel of the block */
    V bmat = one_by_one ? kiln_cg_gep(cg, px, mul64(cg, gi, Cg * H * W)) /* x[item][g*Cg..] as [Cg, H*W] */
                        : kiln_cg_gep(cg, col, mul64(cg, gi, J * P));
    /* item * F + frow = (gi / groups) * F + frow */
    V out_ch = add64(cg, mul64(cg, kiln_cg_udiv(cg, gi, groups), F), frow);
    kiln_cg_gemm p = {
        .a = kiln_cg_gep(cg, kiln_cg_weights_ptr(cg, w_off), mul64(cg, frow, J)),
        .b = bmat,
        .c = kiln_cg_gep(cg, py, mul64(cg, out_ch, P)),
        .m = LLVMBuildSub(cg->b, r1, r0, ""),
        .n0 = c0,
        .n1 = c1,
        .k = J,
        .lda = J,
        .ldb = P,
        .ldc = P,
        .bias = bid != KILN_NO_ID ? kiln_cg_gep(cg, kiln_cg_weights_ptr(cg, b_off), frow) : NULL,
        .bias_per_row = true,
    };
    kiln_cg_emit_gemm(cg, &p);
    kiln_cg_task_end(cg, (kiln_cg_count){xs->batched ? 0 : per_item * items, xs->batched ? per_item : 0, 1, 1});
    (void)C;
    return cg->status;
}

/* ---- pools ------------------------------------------------------------------------------ */

typedef struct pool_arg {
    const window *w;
    bool max, include_pad;
    V x_plane, y_row, oy;
    int64_t H, W;
} pool_arg;

static void pool_body(kiln_cg *cg, V ox0, V mask, void *p)
{
    pool_arg *a = p;
    const window *w = a->w;
    V acc = kiln_cg_alloca(cg, cg->t_vf, "acc");
    LLVMBuildStore(cg->b, kiln_cg_fconst(cg, LLVMGetPoison(cg->t_vf), a->max ? -INFINITY : 0.0), acc);
    for (int64_t ky = 0; ky < w->kh; ky++) {
        V iy = add64(cg, mul64(cg, a->oy, w->sh), kiln_cg_i64(cg, ky * w->dh - w->pt));
        V in = LLVMBuildAnd(cg->b, LLVMBuildICmp(cg->b, LLVMIntSGE, iy, kiln_cg_i64(cg, 0), ""),
                            LLVMBuildICmp(cg->b, LLVMIntSLT, iy, kiln_cg_i64(cg, a->H), ""), "");
        kiln_cg_if f;
        kiln_cg_if_begin(cg, &f, in);
        V row = kiln_cg_gep(cg, a->x_plane, mul64(cg, iy, a->W));
        for (int64_t kx = 0; kx < w->kw; kx++) {
            V off = kiln_cg_i64(cg, kx * w->dw - w->pl);
            V v = window_load(cg, row, ox0, w->sw, off, a->W, mask, a->max ? -INFINITY : 0.0);
            V cur = LLVMBuildLoad2(cg->b, cg->t_vf, acc, "");
            V next;
            if (a->max) {
                V take = LLVMBuildOr(cg->b, LLVMBuildFCmp(cg->b, LLVMRealOGT, v, cur, ""), kiln_cg_is_nan(cg, v), "");
                next = LLVMBuildSelect(cg->b, take, v, cur, "");
            } else {
                next = LLVMBuildFAdd(cg->b, cur, v, "");
            }
            LLVMBuildStore(cg->b, next, acc);
        }
        kiln_cg_if_end(cg, &f);
    }
    V r = LLVMBuildLoad2(cg->b, cg->t_vf, acc, "");
    if (!a->max) {
        /* Divisor per lane: the window clipped to the padded input, or to the input. */
        V y0 = add64(cg, mul64(cg, a->oy, w->sh), kiln_cg_i64(cg, -w->pt));
        V y1 = kiln_cg_smin(cg, add64(cg, y0, kiln_cg_i64(cg, w->kh)), kiln_cg_i64(cg, a->H + w->pb));
        V y0c = kiln_cg_smax(cg, y0, kiln_cg_i64(cg, 0)), y1c = kiln_cg_smin(cg, y1, kiln_cg_i64(cg, a->H));
        V ox = LLVMBuildAdd(cg->b, kiln_cg_splat(cg, ox0), kiln_cg_iota64(cg), "");
        V x0 = LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, ox, kiln_cg_splat(cg, kiln_cg_i64(cg, w->sw)), ""),
                            kiln_cg_splat(cg, kiln_cg_i64(cg, -w->pl)), "");
        V x1 = LLVMBuildAdd(cg->b, x0, kiln_cg_splat(cg, kiln_cg_i64(cg, w->kw)), "");
        V lim = kiln_cg_splat(cg, kiln_cg_i64(cg, a->W + w->pr));
        x1 = LLVMBuildSelect(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, x1, lim, ""), x1, lim, "");
        V zero = LLVMConstNull(cg->t_vi64), wv = kiln_cg_splat(cg, kiln_cg_i64(cg, a->W));
        V x0c = LLVMBuildSelect(cg->b, LLVMBuildICmp(cg->b, LLVMIntSGT, x0, zero, ""), x0, zero, "");
        V x1c = LLVMBuildSelect(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, x1, wv, ""), x1, wv, "");
        V wy = LLVMBuildSub(cg->b, y1c, y0c, ""), wx = LLVMBuildSub(cg->b, x1c, x0c, "");
        V cells = LLVMBuildMul(cg->b, kiln_cg_splat(cg, wy), wx, "");
        V divisor = a->include_pad ? LLVMBuildMul(cg->b, kiln_cg_splat(cg, LLVMBuildSub(cg->b, y1, y0, "")),
                                                  LLVMBuildSub(cg->b, x1, x0, ""), "")
                                   : cells;
        V df = LLVMBuildSIToFP(cg->b, divisor, cg->t_vf, "");
        V empty = LLVMBuildOr(cg->b, kiln_cg_splat(cg, LLVMBuildICmp(cg->b, LLVMIntSLE, wy, kiln_cg_i64(cg, 0), "")),
                              LLVMBuildICmp(cg->b, LLVMIntSLE, wx, zero, ""), "");
        r = LLVMBuildSelect(cg->b, empty, LLVMConstNull(cg->t_vf), LLVMBuildFDiv(cg->b, r, df, ""), "avg");
    }
    kiln_cg_vstore(cg, r, a->y_row, ox0, mask);
}

kiln_status kiln_cg_emit_pool(kiln_cg *cg, const kiln_node *n)
{
    const kiln_shape *xs = &kiln_graph_value(cg->g, n->inputs[0])->type.shape;
    const kiln_shape *ys = &kiln_graph_value(cg->g, n->output)->type.shape;
    const kiln_attr *k = &n->attrs[KILN_ATTR_KERNEL];
    if (xs->rank != 4 || ys->rank != 4 || k->n < 2 || !window_ok(n))
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "malformed pool");
    const bool max = n->op == KILN_OP_MAXPOOL2D;
    window w = read_window(n, k->ints[0], k->ints[1], max);
    const int64_t H = xs->dims[2], W = xs->dims[3], OH = ys->dims[2], OW = ys->dims[3];
    const int64_t planes = xs->batched ? xs->dims[1] : xs->dims[0] * xs->dims[1];
    int64_t per_task;
    kiln_cg_count count = plane_tasks(xs->batched, planes, OH * OW, &per_task);
    char kernel[96];
    snprintf(kernel, sizeof kernel, "f32_%s_%s", kiln_op_name(n->op), cg->target->name);
    kiln_cg_task_begin(cg, kernel, n);
    V px = kiln_cg_value_ptr(cg, n->inputs[0]), py = kiln_cg_value_ptr(cg, n->output);
    V total = kiln_cg_i64(cg, planes);
    if (xs->batched)
        total = LLVMBuildMul(cg->b, total, kiln_cg_batch(cg), "");
    V lo, hi;
    kiln_cg_task_range(cg, total, per_task, &lo, &hi);
    kiln_cg_loop lp, ly;
    V plane = kiln_cg_for_begin(cg, &lp, lo, hi, kiln_cg_i64(cg, 1));
    pool_arg a = {&w, max, !max && n->attrs[KILN_ATTR_COUNT_INCLUDE_PAD].i != 0,
                  kiln_cg_gep(cg, px, mul64(cg, plane, H * W)), NULL, NULL, H, W};
    V y_plane = kiln_cg_gep(cg, py, mul64(cg, plane, OH * OW));
    a.oy = kiln_cg_for_begin(cg, &ly, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, OH), kiln_cg_i64(cg, 1));
    a.y_row = kiln_cg_gep(cg, y_plane, mul64(cg, a.oy, OW));
    kiln_cg_vloop(cg, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, OW), pool_body, &a);
    kiln_cg_for_end(cg, &ly);
    kiln_cg_for_end(cg, &lp);
    kiln_cg_task_end(cg, count);
    return cg->status;
}

/* ---- global average pooling ------------------------------------------------------------- */

typedef struct sum_arg {
    V x, acc;
} sum_arg;

static void sum_body(kiln_cg *cg, V i, V mask, void *p)
{
    sum_arg *a = p;
    V v = kiln_cg_vload(cg, a->x, i, mask, 0.0);
    LLVMBuildStore(cg->b, LLVMBuildFAdd(cg->b, LLVMBuildLoad2(cg->b, cg->t_vf, a->acc, ""), v, ""), a->acc);
}

kiln_status kiln_cg_emit_global_avgpool(kiln_cg *cg, const kiln_node *n)
{
    const kiln_shape *xs = &kiln_graph_value(cg->g, n->inputs[0])->type.shape;
    if (xs->rank < 3)
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "malformed global_avgpool");
    const int64_t HW = xs->dims[xs->rank - 2] * xs->dims[xs->rank - 1];
    int64_t planes = 1;
    for (int i = xs->batched ? 1 : 0; i < xs->rank - 2; i++)
        planes *= xs->dims[i];
    int64_t per_task;
    kiln_cg_count count = plane_tasks(xs->batched, planes, HW, &per_task);
    char kernel[96];
    snprintf(kernel, sizeof kernel, "f32_global_avgpool_%s", cg->target->name);
    kiln_cg_task_begin(cg, kernel, n);
    V px = kiln_cg_value_ptr(cg, n->inputs[0]), py = kiln_cg_value_ptr(cg, n->output);
    V total = kiln_cg_i64(cg, planes);
    if (xs->batched)
        total = LLVMBuildMul(cg->b, total, kiln_cg_batch(cg), "");
    V lo, hi;
    kiln_cg_task_range(cg, total, per_task, &lo, &hi);
    kiln_cg_loop lp;
    V plane = kiln_cg_for_begin(cg, &lp, lo, hi, kiln_cg_i64(cg, 1));
    sum_arg a = {kiln_cg_gep(cg, px, mul64(cg, plane, HW)), kiln_cg_alloca(cg, cg->t_vf, "acc")};
    LLVMBuildStore(cg->b, LLVMConstNull(cg->t_vf), a.acc);
    kiln_cg_vloop(cg, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, HW), sum_body, &a);
    V s = kiln_cg_reduce_add(cg, LLVMBuildLoad2(cg->b, cg->t_vf, a.acc, ""));
    kiln_cg_store(cg, LLVMBuildFDiv(cg->b, s, kiln_cg_f32(cg, (double)HW), ""), py, plane);
    kiln_cg_for_end(cg, &lp);
    kiln_cg_task_end(cg, count);
    return cg->status;
}
