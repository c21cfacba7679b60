/* compiler/codegen/kernels/conv.c: conv2d, the pools and global average
 * pooling, over NCHW with padding given per side [top, left, bottom, right].
 *
 * conv2d takes one of four paths:
 *   - C/groups == 1 (depthwise, or with a channel multiplier): a direct
 *     kernel; each output row is a vector loop along x, each window tap one
 *     vector load of input lanes;
 *   - 3x3 stride 1 with one group, when kiln_cg_winograd_tile picks it:
 *     Winograd F(4x4) or F(2x2) (kernels/winograd.c);
 *   - a 1x1 kernel with stride 1 and no padding: the packed GEMM straight on
 *     the input (out[f, p] = W[f, c] x[c, p] per group and batch item);
 *   - anything else: implicit GEMM: the GEMM's B is the im2col matrix (rows
 *     j = (c, ky, kx), columns the output pixels, zero in the padding),
 *     computed one panel at a time from the input and never stored.
 * For both GEMM paths the weights are A, packed at compile time in panels of
 * gemm_mr output channels ([F/mr][C/groups * kh * kw][mr] per group); the
 * bias is per row, and the fusion group's members run in the GEMM's epilogue
 * (the view: rows = (item, channel), columns = pixels).
 *
 * Window loads: where every lane of an output vector reads inside the input
 * row (the interior), the taps are plain vector loads (stride 1) or two loads
 * and an even-lane shuffle (stride 2); only vectors at the borders use loads
 * under a bounds mask (a masked contiguous load for stride 1, a masked gather
 * otherwise), so every stride, dilation and asymmetric padding takes the
 * same code.
 *
 * Pools: per output row a vector loop along x with the same window loads;
 * max pooling pads with -inf (NaN wins, as in PyTorch), average pooling
 * divides by the window clipped to the padded input (count_include_pad) or
 * to the input, per lane. */
#include "compiler/codegen/cg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/quant.h"

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


static kiln_id stored_value(kiln_cg *cg, const kiln_node *n)
{
    return cg->f.epi && cg->f.epi->n > 0 ? cg->f.epi->out : n->output;
}

static const kiln_cg_epilogue *epilogue(kiln_cg *cg) { return cg->f.epi && cg->f.epi->n > 0 ? cg->f.epi : NULL; }

/* The lanes of the output vector at ox0 read input columns (ox0 + lane) *
 * sw + off of a row. Outside the interior (borders, a row's last vector)
 * they are loaded under masks of the columns inside [0, W): stride 1 one
 * masked load, stride 2 two masked loads and an even-lane shuffle, other
 * strides a masked gather. The masks depend on the column offset only, so
 * the kernels compute them once per kx, not once per tap. */
typedef struct window_mask {
    V m0, m1; /* stride 1: the load's lanes (also under `valid`); 2: the two loads' */
    V idx;    /* other strides: the gather's lane offsets from the row */
} window_mask;

/* Lanes start + lane (i64 scalar start) inside [0, W), compared in i32
 * lanes when the row is short enough (one compare per half, not four). */
static V lanes_inside(kiln_cg *cg, V start, int64_t W)
{
    if (W < ((int64_t)1 << 30)) {
        LLVMTypeRef t = LLVMVectorType(cg->u->t_i32, (unsigned)cg->vl);
        V lo = kiln_cg_smax(cg, kiln_cg_smin(cg, start, kiln_cg_i64(cg, (int64_t)1 << 30)), kiln_cg_i64(cg, -((int64_t)1 << 30)));
        V s32 = LLVMBuildTrunc(cg->u->b, lo, cg->u->t_i32, "");
        V idx[64], zero[64];
        for (int i = 0; i < cg->vl; i++) {
            idx[i] = kiln_cg_i32(cg, i);
            zero[i] = kiln_cg_i32(cg, 0);
        }
        V v = LLVMBuildInsertElement(cg->u->b, LLVMGetPoison(t), s32, kiln_cg_i32(cg, 0), "");
        v = LLVMBuildShuffleVector(cg->u->b, v, LLVMGetPoison(t), LLVMConstVector(zero, (unsigned)cg->vl), "");
        V x = LLVMBuildAdd(cg->u->b, v, LLVMConstVector(idx, (unsigned)cg->vl), "");
        V wv = LLVMBuildShuffleVector(
            cg->u->b, LLVMBuildInsertElement(cg->u->b, LLVMGetPoison(t), kiln_cg_i32(cg, (int32_t)W), kiln_cg_i32(cg, 0), ""),
            LLVMGetPoison(t), LLVMConstVector(zero, (unsigned)cg->vl), "");
        return LLVMBuildAnd(cg->u->b, LLVMBuildICmp(cg->u->b, LLVMIntSGE, x, LLVMConstNull(t), ""),
                            LLVMBuildICmp(cg->u->b, LLVMIntSLT, x, wv, ""), "inside");
    }
    V x = LLVMBuildAdd(cg->u->b, kiln_cg_splat(cg, start), kiln_cg_iota64(cg), "");
    return LLVMBuildAnd(cg->u->b, LLVMBuildICmp(cg->u->b, LLVMIntSGE, x, LLVMConstNull(cg->u->t_vi64), ""),
                        LLVMBuildICmp(cg->u->b, LLVMIntSLT, x, kiln_cg_splat(cg, kiln_cg_i64(cg, W)), ""), "inside");
}

static window_mask window_mask_at(kiln_cg *cg, V ox0, int64_t sw, V off, int64_t W, V valid)
{
    window_mask m = {NULL, NULL, NULL};
    V start = LLVMBuildAdd(cg->u->b, sw == 1 ? ox0 : LLVMBuildMul(cg->u->b, ox0, kiln_cg_i64(cg, sw), ""), off, "");
    if (sw == 1) {
        m.m0 = kiln_cg_mask_and(cg, lanes_inside(cg, start, W), valid);
    } else if (sw == 2) {
        /* lanes past the valid outputs may read inside the row: harmless, their results are not stored */
        m.m0 = lanes_inside(cg, start, W);
        m.m1 = lanes_inside(cg, LLVMBuildAdd(cg->u->b, start, kiln_cg_i64(cg, cg->vl), ""), W);
    } else {
        V ox = LLVMBuildAdd(cg->u->b, kiln_cg_splat(cg, ox0), kiln_cg_iota64(cg), "");
        V ix = LLVMBuildAdd(cg->u->b, LLVMBuildMul(cg->u->b, ox, kiln_cg_splat(cg, kiln_cg_i64(cg, sw)), ""),
                            kiln_cg_splat(cg, off), "ix");
        V inb = LLVMBuildAnd(cg->u->b, LLVMBuildICmp(cg->u->b, LLVMIntSGE, ix, LLVMConstNull(cg->u->t_vi64), ""),
                             LLVMBuildICmp(cg->u->b, LLVMIntSLT, ix, kiln_cg_splat(cg, kiln_cg_i64(cg, W)), ""), "inb");
        m.m0 = kiln_cg_mask_and(cg, inb, valid);
        m.idx = ix;
    }
    return m;
}

static V even_lanes(kiln_cg *cg, V lo, V hi);

static V window_load(kiln_cg *cg, V row, V ox0, int64_t sw, V off, const window_mask *m, double passthru)
{
    if (sw == 1)
        return kiln_cg_vload(cg, row, LLVMBuildAdd(cg->u->b, ox0, off, ""), m->m0, passthru);
    if (sw == 2) {
        V start = LLVMBuildAdd(cg->u->b, LLVMBuildMul(cg->u->b, ox0, kiln_cg_i64(cg, 2), ""), off, "");
        return even_lanes(cg, kiln_cg_vload(cg, row, start, m->m0, passthru),
                          kiln_cg_vload(cg, row, LLVMBuildAdd(cg->u->b, start, kiln_cg_i64(cg, cg->vl), ""), m->m1, passthru));
    }
    return kiln_cg_gather(cg, row, m->idx, m->m0, passthru);
}

/* The same lanes in the interior: every lane inside the row, and sw * vl
 * elements from ox0 * sw + off readable. */
static V window_fast(kiln_cg *cg, V row, V ox0, int64_t sw, V off)
{
    V start = kiln_cg_iadd(cg, kiln_cg_imul(cg, ox0, sw), off);
    if (sw == 1)
        return kiln_cg_vload(cg, row, start, NULL, 0.0);
    if (sw == 2) {
        V lo = kiln_cg_vload(cg, row, start, NULL, 0.0);
        V hi = kiln_cg_vload(cg, row, kiln_cg_iadd(cg, start, kiln_cg_i64(cg, cg->vl)), NULL, 0.0);
        V idx[64];
        for (int i = 0; i < cg->vl; i++)
            idx[i] = kiln_cg_i32(cg, 2 * i);
        return LLVMBuildShuffleVector(cg->u->b, lo, hi, LLVMConstVector(idx, (unsigned)cg->vl), "even");
    }
    V ox = LLVMBuildAdd(cg->u->b, kiln_cg_splat(cg, ox0), kiln_cg_iota64(cg), "");
    V ix = LLVMBuildAdd(cg->u->b, LLVMBuildMul(cg->u->b, ox, kiln_cg_splat(cg, kiln_cg_i64(cg, sw)), ""),
                        kiln_cg_splat(cg, off), "ix");
    return kiln_cg_gather(cg, row, ix, NULL, 0.0);
}

/* The output vectors (ox0 multiples of vl) whose taps at x offsets
 * [off_min, off_max] all take window_fast: ox0 in [*lo, *hi]. */
static void interior(const kiln_cg *cg, int64_t W, int64_t sw, int64_t off_min, int64_t off_max, int64_t *lo,
                     int64_t *hi)
{
    *lo = off_min >= 0 ? 0 : (-off_min + sw - 1) / sw;
    int64_t room = W - off_max - sw * cg->vl; /* ox0 * sw <= room */
    *hi = room < 0 ? -1 : room / sw;
}

/* A loop over one output row's vectors: body(ox0, NULL, true) in the
 * interior [fast_lo, fast_hi], body(ox0, mask, false) elsewhere. */
typedef void (*row_body)(kiln_cg *cg, V ox0, V mask, bool fast, void *arg);

static void row_loop(kiln_cg *cg, int64_t OW, int64_t fast_lo, int64_t fast_hi, row_body body, void *arg)
{
    kiln_cg_loop l;
    V ox0 = kiln_cg_for_begin(cg, &l, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, OW), kiln_cg_i64(cg, cg->vl));
    V left = LLVMBuildSub(cg->u->b, kiln_cg_i64(cg, OW), ox0, "");
    if (fast_lo <= fast_hi && fast_lo < OW) {
        V fast = LLVMBuildAnd(cg->u->b, LLVMBuildICmp(cg->u->b, LLVMIntSGE, left, kiln_cg_i64(cg, cg->vl), ""),
                              LLVMBuildAnd(cg->u->b, LLVMBuildICmp(cg->u->b, LLVMIntSGE, ox0, kiln_cg_i64(cg, fast_lo), ""),
                                           LLVMBuildICmp(cg->u->b, LLVMIntSLE, ox0, kiln_cg_i64(cg, fast_hi), ""), ""),
                              "interior");
        kiln_cg_if f;
        kiln_cg_if_begin(cg, &f, fast);
        body(cg, ox0, NULL, true, arg);
        kiln_cg_if_else(cg, &f);
        body(cg, ox0, kiln_cg_tail_mask(cg, left), false, arg);
        kiln_cg_if_end(cg, &f);
    } else {
        body(cg, ox0, kiln_cg_tail_mask(cg, left), false, arg);
    }
    kiln_cg_for_end(cg, &l);
}

/* Splits `planes` (per batch item or total) of `plane_elems` outputs into
 * tasks of at most about CHUNK outputs, and into at least the schedule's
 * count of node n (a multiple of its threads, as the planes allow), so that
 * a small layer at batch 1 still uses the threads; returns the count and
 * sets the planes per task. */
static kiln_cg_count plane_tasks(const kiln_cg *cg, const kiln_node *n, bool batched, int64_t planes,
                                 int64_t plane_elems, int64_t *per_task)
{
    *per_task = plane_elems >= CHUNK ? 1 : CHUNK / plane_elems;
    int64_t t = n->tasks < planes ? (int64_t)n->tasks : planes;
    int64_t threads = cg->g->sched_threads ? (int64_t)cg->g->sched_threads : t;
    if (t > threads)
        t -= t % threads;
    if (t > 1 && (planes + t - 1) / t < *per_task)
        *per_task = (planes + t - 1) / t;
    return (kiln_cg_count){batched ? 0 : planes, batched ? planes : 0, *per_task, 1, 0};
}

/* ---- conv2d: direct kernel for C/groups == 1 ----------------------------------- */

/* Filters computed together over one input plane: each input vector loaded
 * for a tap feeds that many FMAs (a one-channel image into 6 filters, as in
 * LeNet's first layer: 6x fewer loads and border masks than filter by
 * filter). A divisor of the filters per group, so every block is whole. */
#define DIRECT_MAX_FILTERS 8

static int64_t direct_filters(int64_t Fg)
{
    for (int64_t fb = Fg < DIRECT_MAX_FILTERS ? Fg : DIRECT_MAX_FILTERS; fb > 1; fb--)
        if (Fg % fb == 0)
            return fb;
    return 1;
}

typedef struct direct_arg {
    const window *w;
    int64_t nf;                            /* filters of the block */
    V x_plane;                             /* the group's input plane */
    V w_f[DIRECT_MAX_FILTERS];             /* each filter's kh * kw weights */
    V bias_f[DIRECT_MAX_FILTERS];          /* bias scalars or NULL */
    V y_plane[DIRECT_MAX_FILTERS];         /* each filter's output plane */
    V *wv;                                 /* one filter: its taps as splat vectors (loaded once per plane) */
    V oy, col0;                            /* output row; its first pixel (the epilogue's column) */
    V offs[DIRECT_MAX_FILTERS][KILN_CG_MAX_EPI]; /* the epilogue's row offsets, per filter */
    int64_t H, W;
} direct_arg;

static void direct_body(kiln_cg *cg, V ox0, V mask, bool fast, void *p)
{
    direct_arg *a = p;
    const window *w = a->w;
    /* One partial sum per kernel row and filter: chains of kw FMAs, not kh * kw. */
    V total[DIRECT_MAX_FILTERS] = {NULL};
    window_mask wm[KILN_CG_MAX_TAPS];
    const bool hoist = w->kw <= KILN_CG_MAX_TAPS; /* else a mask per tap */
    for (int64_t kx = 0; !fast && hoist && kx < w->kw; kx++)
        wm[kx] = window_mask_at(cg, ox0, w->sw, kiln_cg_i64(cg, kx * w->dw - w->pl), a->W, mask);
    for (int64_t ky = 0; ky < w->kh; ky++) {
        V iy = kiln_cg_iadd(cg, kiln_cg_imul(cg, a->oy, w->sh), kiln_cg_i64(cg, ky * w->dh - w->pt));
        V in = LLVMBuildAnd(cg->u->b, LLVMBuildICmp(cg->u->b, LLVMIntSGE, iy, kiln_cg_i64(cg, 0), ""),
                            LLVMBuildICmp(cg->u->b, LLVMIntSLT, iy, kiln_cg_i64(cg, a->H), ""), "");
        LLVMBasicBlockRef before = LLVMGetInsertBlock(cg->u->b);
        kiln_cg_if f;
        kiln_cg_if_begin(cg, &f, in);
        V row = kiln_cg_gep(cg, a->x_plane, kiln_cg_imul(cg, iy, a->W));
        V sum[DIRECT_MAX_FILTERS];
        for (int64_t i = 0; i < a->nf; i++)
            sum[i] = LLVMConstNull(cg->u->t_vf);
        for (int64_t kx = 0; kx < w->kw; kx++) {
            V off = kiln_cg_i64(cg, kx * w->dw - w->pl);
            window_mask here = fast || hoist ? (window_mask){NULL, NULL, NULL} : window_mask_at(cg, ox0, w->sw, off, a->W, mask);
            V v = fast ? window_fast(cg, row, ox0, w->sw, off) : window_load(cg, row, ox0, w->sw, off, hoist ? &wm[kx] : &here, 0.0);
            V tap = kiln_cg_i64(cg, ky * w->kw + kx);
            for (int64_t i = 0; i < a->nf; i++) {
                V wt = a->wv ? a->wv[ky * w->kw + kx] : kiln_cg_splat(cg, kiln_cg_load(cg, a->w_f[i], tap));
                sum[i] = kiln_cg_fma(cg, wt, v, sum[i]);
            }
        }
        LLVMBasicBlockRef then_end = LLVMGetInsertBlock(cg->u->b);
        kiln_cg_if_end(cg, &f);
        /* the row's sums, or 0 where the row lies in the padding */
        V zero = LLVMConstNull(cg->u->t_vf), phi[DIRECT_MAX_FILTERS];
        for (int64_t i = 0; i < a->nf; i++) { /* the phis first: they head the join block */
            phi[i] = LLVMBuildPhi(cg->u->b, cg->u->t_vf, "rowsum");
            LLVMAddIncoming(phi[i], &sum[i], &then_end, 1);
            LLVMAddIncoming(phi[i], &zero, &before, 1); /* the join is the else block */
        }
        for (int64_t i = 0; i < a->nf; i++)
            total[i] = total[i] ? LLVMBuildFAdd(cg->u->b, total[i], phi[i], "") : phi[i];
    }
    for (int64_t i = 0; i < a->nf; i++) {
        V val = a->bias_f[i] ? LLVMBuildFAdd(cg->u->b, total[i], kiln_cg_splat(cg, a->bias_f[i]), "") : total[i];
        if (epilogue(cg))
            val = kiln_cg_epi_apply(cg, cg->f.epi, val, a->offs[i], kiln_cg_iadd(cg, a->col0, ox0), mask);
        kiln_cg_vstore(cg, val, kiln_cg_gep(cg, a->y_plane[i], a->col0), ox0, mask);
    }
}

static kiln_status conv_direct(kiln_cg *cg, const kiln_node *n, const window *w, uint64_t w_off, bool has_bias,
                               uint64_t b_off)
{
    const kiln_shape *xs = &kiln_graph_value(cg->g, n->inputs[0])->type.shape;
    const kiln_shape *ys = &kiln_graph_value(cg->g, n->output)->type.shape;
    const int64_t C = xs->dims[1], H = xs->dims[2], W = xs->dims[3];
    const int64_t F = ys->dims[1], OH = ys->dims[2], OW = ys->dims[3];
    const int64_t groups = n->attrs[KILN_ATTR_GROUPS].i, Fg = F / groups, nf = direct_filters(Fg);
    /* A unit of work: nf filters of one group of one item. */
    const int64_t units_per_item = F / nf;
    int64_t per_task;
    kiln_cg_count count = plane_tasks(cg, n, xs->batched, xs->batched ? units_per_item : units_per_item * ys->dims[0],
                                      nf * OH * OW, &per_task);
    int64_t fast_lo, fast_hi;
    interior(cg, W, w->sw, -w->pl, (w->kw - 1) * w->dw - w->pl, &fast_lo, &fast_hi);
    char kernel[128], epi[64];
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, kiln_cg_node_dtype(cg, n), KILN_CG_ON_TARGET, 0, 0, "conv2d_dw%s%s", has_bias ? "_bias" : "",
                        kiln_cg_epi_name(epilogue(cg), epi, sizeof epi));
    kiln_cg_task_begin(cg, kernel, n);
    V px = kiln_cg_value_ptr(cg, n->inputs[0]), py = kiln_cg_value_ptr(cg, stored_value(cg, n));
    V pw = kiln_cg_weights_ptr(cg, w_off), pbias = has_bias ? kiln_cg_weights_ptr(cg, b_off) : NULL;
    if (epilogue(cg))
        kiln_cg_epi_begin(cg, cg->f.epi);
    V lo, hi;
    V total = LLVMBuildUDiv(cg->u->b, kiln_cg_value_elems(cg, n->output), kiln_cg_i64(cg, nf * OH * OW), "units");
    kiln_cg_task_range(cg, total, per_task, &lo, &hi);
    kiln_cg_loop lp, ly;
    V unit = kiln_cg_for_begin(cg, &lp, lo, hi, kiln_cg_i64(cg, 1));
    V plane0 = kiln_cg_imul(cg, unit, nf); /* the block's first output plane: item * F + its first filter */
    V f0 = kiln_cg_urem(cg, plane0, F), nb = kiln_cg_udiv(cg, plane0, F);
    V ch = kiln_cg_udiv(cg, f0, Fg);
    direct_arg a = {.w = w, .nf = nf, .H = H, .W = W};
    a.x_plane = kiln_cg_gep(cg, px, kiln_cg_imul(cg, kiln_cg_iadd(cg, kiln_cg_imul(cg, nb, C), ch), H * W));
    for (int64_t i = 0; i < nf; i++) {
        V plane = kiln_cg_iadd(cg, plane0, kiln_cg_i64(cg, i)), f = kiln_cg_iadd(cg, f0, kiln_cg_i64(cg, i));
        a.w_f[i] = kiln_cg_gep(cg, pw, kiln_cg_imul(cg, f, w->kh * w->kw));
        a.bias_f[i] = pbias ? kiln_cg_load(cg, pbias, f) : NULL;
        a.y_plane[i] = kiln_cg_gep(cg, py, kiln_cg_imul(cg, plane, OH * OW));
        if (epilogue(cg))
            kiln_cg_epi_row(cg, cg->f.epi, plane, a.offs[i]); /* the view's rows are the planes */
    }
    V wv[64];
    if (nf == 1 && w->kh * w->kw <= 64) { /* registers (or one spill slot each) rather than a load per tap and pixel */
        for (int64_t t = 0; t < w->kh * w->kw; t++)
            wv[t] = kiln_cg_splat(cg, kiln_cg_load(cg, a.w_f[0], kiln_cg_i64(cg, t)));
        a.wv = wv;
    }
    a.oy = kiln_cg_for_begin(cg, &ly, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, OH), kiln_cg_i64(cg, 1));
    a.col0 = kiln_cg_imul(cg, a.oy, OW);
    row_loop(cg, OW, fast_lo, fast_hi, direct_body, &a);
    kiln_cg_for_end(cg, &ly);
    kiln_cg_for_end(cg, &lp);
    kiln_cg_task_end(cg, count);
    return cg->status;
}

/* ---- conv2d: implicit GEMM ------------------------------------------------------------ */

/* The GEMM's B for a convolution is the im2col matrix, B[k][p] with k = (c,
 * ky, kx) and p the output pixel (oy, ox): the input at (c, oy * sh + ky *
 * dh - pt, ox * sw + kx * dw - pl), or 0 in the padding. It is never stored:
 * the GEMM asks for one kc x NR panel at a time (K blocks are whole input
 * channels) and this packs it from the input. Per vector of the panel:
 *   - inside one output row and the window's interior (the common case):
 *     plain vector loads (stride 1), two loads and an even-lane shuffle
 *     (stride 2), or a gather (other strides);
 *   - inside one output row at a border: the same under a bounds mask;
 *   - across output rows (outputs narrower than a vector): a gather with
 *     per-lane rows and columns. */
typedef struct conv_pack {
    const kiln_cg_gemm_config *gc;
    const window *w;
    int64_t H, W, OW, khw;
    V x; /* the first input plane of this item's group (set in the task) */
} conv_pack;

static V lanes_i64(kiln_cg *cg, int64_t v) { return kiln_cg_splat(cg, kiln_cg_i64(cg, v)); }

static V in_range(kiln_cg *cg, V v, int64_t hi) /* 0 <= v < hi, vector i64 */
{
    return LLVMBuildAnd(cg->u->b, LLVMBuildICmp(cg->u->b, LLVMIntSGE, v, LLVMConstNull(cg->u->t_vi64), ""),
                        LLVMBuildICmp(cg->u->b, LLVMIntSLT, v, lanes_i64(cg, hi), ""), "");
}

static V even_lanes(kiln_cg *cg, V lo, V hi)
{
    V idx[64];
    for (int i = 0; i < cg->vl; i++)
        idx[i] = kiln_cg_i32(cg, 2 * i);
    return LLVMBuildShuffleVector(cg->u->b, lo, hi, LLVMConstVector(idx, (unsigned)cg->vl), "even");
}

/* A loop-invariant base pointer of a channel loop, as an opaque value: its
 * address (divisions and remainders of the pixel index) is a large SCEV
 * expression, and LLVM's loop strength reduction rewrote it for every load
 * of the loop (a third of the backend's time on ResNet-18). Frozen, LSR
 * sees only the loop's own strides; the code is the same (a freeze of a
 * pointer is no instruction). */
static V opaque(kiln_cg *cg, V p) { return LLVMBuildFreeze(cg->u->b, p, "base"); }

static void conv_pack_b(kiln_cg *cg, void *arg, V dst, V j, V ncols, V k0, V k1)
{
    conv_pack *c = arg;
    const window *w = c->w;
    const kiln_cg_gemm_config *gc = c->gc;
    const int64_t NR = (int64_t)gc->nr * gc->lanes, HW = c->H * c->W;
    int64_t fast_lo, fast_hi;
    interior(cg, c->W, w->sw, -w->pl, (w->kw - 1) * w->dw - w->pl, &fast_lo, &fast_hi);
    V c0 = kiln_cg_udiv(cg, k0, c->khw), c1 = kiln_cg_udiv(cg, k1, c->khw);
    const int64_t segs = (cg->vl - 1 + c->OW - 1) / c->OW + 1; /* output rows a vector can touch */
    kiln_cg_loop lv;
    V v = kiln_cg_for_begin(cg, &lv, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, gc->nr), kiln_cg_i64(cg, 1));
    V vcol = kiln_cg_imul(cg, v, cg->vl);
    V p0 = kiln_cg_iadd(cg, j, vcol);
    V oy0 = kiln_cg_udiv(cg, p0, c->OW), ox0 = kiln_cg_urem(cg, p0, c->OW);
    V nvalid = LLVMBuildSub(cg->u->b, ncols, vcol, "");
    V single = LLVMBuildAnd(cg->u->b, LLVMBuildICmp(cg->u->b, LLVMIntSLE, kiln_cg_iadd(cg, ox0, kiln_cg_i64(cg, cg->vl)),
                                                 kiln_cg_i64(cg, c->OW), ""),
                            LLVMBuildICmp(cg->u->b, LLVMIntSGE, nvalid, kiln_cg_i64(cg, cg->vl), ""), "one_row");
    V iy0 = LLVMBuildSub(cg->u->b, kiln_cg_imul(cg, oy0, w->sh), kiln_cg_i64(cg, w->pt), ""); /* input row of ky = 0 */
    V ix0 = LLVMBuildSub(cg->u->b, kiln_cg_imul(cg, ox0, w->sw), kiln_cg_i64(cg, w->pl), "");  /* input column of kx = 0 */
    V xin = LLVMBuildAnd(cg->u->b, LLVMBuildICmp(cg->u->b, LLVMIntSGE, ox0, kiln_cg_i64(cg, fast_lo), ""),
                         LLVMBuildICmp(cg->u->b, LLVMIntSLE, ox0, kiln_cg_i64(cg, fast_hi), ""), "");
    V yin = LLVMBuildAnd(cg->u->b, LLVMBuildICmp(cg->u->b, LLVMIntSGE, iy0, kiln_cg_i64(cg, 0), ""),
                         LLVMBuildICmp(cg->u->b, LLVMIntSLT, kiln_cg_iadd(cg, iy0, kiln_cg_i64(cg, (w->kh - 1) * w->dh)),
                                       kiln_cg_i64(cg, c->H), ""), "");
    V fast = LLVMBuildAnd(cg->u->b, single, LLVMBuildAnd(cg->u->b, xin, yin, ""), "interior");
    V dst_v = kiln_cg_gep(cg, dst, vcol);
    V origin = kiln_cg_iadd(cg, kiln_cg_imul(cg, iy0, c->W), ix0); /* tap (0, 0) of lane 0 */
    kiln_cg_if f_fast;
    kiln_cg_if_begin(cg, &f_fast, fast);
    {
        /* The interior: every tap a plain load at a constant offset. */
        kiln_cg_loop lc;
        V base = opaque(cg, kiln_cg_gep(cg, c->x, origin)), dbase = opaque(cg, dst_v);
        V ci = kiln_cg_for_begin(cg, &lc, c0, c1, kiln_cg_i64(cg, 1));
        V plane = kiln_cg_gep(cg, base, kiln_cg_imul(cg, ci, HW));
        V row = kiln_cg_gep(cg, dbase, kiln_cg_imul(cg, LLVMBuildSub(cg->u->b, ci, c0, ""), c->khw * NR));
        for (int64_t ky = 0; ky < w->kh; ky++)
            for (int64_t kx = 0; kx < w->kw; kx++) {
                V val = window_fast(cg, plane, kiln_cg_i64(cg, 0), w->sw, kiln_cg_i64(cg, ky * w->dh * c->W + kx * w->dw));
                kiln_cg_vstore(cg, val, row, kiln_cg_i64(cg, (ky * w->kw + kx) * NR), NULL);
            }
        kiln_cg_for_end(cg, &lc);
    }
    kiln_cg_if_else(cg, &f_fast);
    {
        /* Borders and vectors across output rows: one tap at a time (a
         * runtime loop, so the code does not grow with the kernel), its
         * masks computed once for all channels. */
        V lane = kiln_cg_iota64(cg);
        V valid = LLVMBuildICmp(cg->u->b, LLVMIntSLT, lane, kiln_cg_splat(cg, nvalid), "");
        V pl = LLVMBuildAdd(cg->u->b, kiln_cg_splat(cg, p0), lane, "");
        V oy = LLVMBuildUDiv(cg->u->b, pl, lanes_i64(cg, c->OW), ""), ox = LLVMBuildURem(cg->u->b, pl, lanes_i64(cg, c->OW), "");
        kiln_cg_loop lt;
        V t = kiln_cg_for_begin(cg, &lt, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, c->khw), kiln_cg_i64(cg, 1));
        V ky = kiln_cg_udiv(cg, t, w->kw), kx = kiln_cg_urem(cg, t, w->kw);
        V dy = kiln_cg_imul(cg, ky, w->dh), dx = kiln_cg_imul(cg, kx, w->dw);
        V tdst = opaque(cg, kiln_cg_gep(cg, dst_v, kiln_cg_imul(cg, t, NR)));
        kiln_cg_if f_single;
        kiln_cg_if_begin(cg, &f_single, single);
        {
            /* One output row at a border: a bounds mask (a row in the
             * padding: no lane); stride 2: two masked loads and a shuffle;
             * other strides: a masked gather. */
            V iy = kiln_cg_iadd(cg, iy0, dy), start = kiln_cg_iadd(cg, ix0, dx); /* row, column of lane 0 */
            V row_ok = kiln_cg_splat(cg, LLVMBuildAnd(cg->u->b, LLVMBuildICmp(cg->u->b, LLVMIntSGE, iy, kiln_cg_i64(cg, 0), ""),
                                                      LLVMBuildICmp(cg->u->b, LLVMIntSLT, iy, kiln_cg_i64(cg, c->H), ""), ""));
            V s0 = LLVMBuildAdd(cg->u->b, kiln_cg_splat(cg, start), lane, "");
            V m0 = NULL, m1 = NULL, idx = NULL;
            if (w->sw <= 2) {
                m0 = LLVMBuildAnd(cg->u->b, row_ok, in_range(cg, s0, c->W), "");
                if (w->sw == 2)
                    m1 = LLVMBuildAnd(cg->u->b, row_ok, in_range(cg, LLVMBuildAdd(cg->u->b, s0, lanes_i64(cg, cg->vl), ""), c->W), "");
            } else {
                V ix = LLVMBuildAdd(cg->u->b, kiln_cg_splat(cg, start), LLVMBuildMul(cg->u->b, lane, lanes_i64(cg, w->sw), ""), "");
                m0 = LLVMBuildAnd(cg->u->b, row_ok, in_range(cg, ix, c->W), "");
                idx = LLVMBuildSelect(cg->u->b, m0, LLVMBuildMul(cg->u->b, lane, lanes_i64(cg, w->sw), ""), LLVMConstNull(cg->u->t_vi64), "");
            }
            V at = opaque(cg, kiln_cg_gep(cg, c->x, kiln_cg_iadd(cg, kiln_cg_imul(cg, iy, c->W), start)));
            kiln_cg_loop lc;
            V ci = kiln_cg_for_begin(cg, &lc, c0, c1, kiln_cg_i64(cg, 1));
            V src = kiln_cg_gep(cg, at, kiln_cg_imul(cg, ci, HW));
            V val;
            if (idx)
                val = kiln_cg_gather(cg, src, idx, m0, 0.0);
            else if (m1)
                val = even_lanes(cg, kiln_cg_vload(cg, src, kiln_cg_i64(cg, 0), m0, 0.0),
                                 kiln_cg_vload(cg, src, kiln_cg_i64(cg, cg->vl), m1, 0.0));
            else
                val = kiln_cg_vload(cg, src, kiln_cg_i64(cg, 0), m0, 0.0);
            kiln_cg_vstore(cg, val, tdst, kiln_cg_imul(cg, LLVMBuildSub(cg->u->b, ci, c0, ""), c->khw * NR), NULL);
            kiln_cg_for_end(cg, &lc);
        }
        kiln_cg_if_else(cg, &f_single);
        {
            /* Across output rows: per-lane rows and columns. Stride 1 with
             * a few rows touched: one masked load per row (its lanes are
             * contiguous), blended; otherwise a gather. */
            V iy = LLVMBuildAdd(cg->u->b, LLVMBuildMul(cg->u->b, oy, lanes_i64(cg, w->sh), ""),
                                LLVMBuildSub(cg->u->b, kiln_cg_splat(cg, dy), lanes_i64(cg, w->pt), ""), "");
            V ix = LLVMBuildAdd(cg->u->b, LLVMBuildMul(cg->u->b, ox, lanes_i64(cg, w->sw), ""),
                                LLVMBuildSub(cg->u->b, kiln_cg_splat(cg, dx), lanes_i64(cg, w->pl), ""), "");
            V m = LLVMBuildAnd(cg->u->b, LLVMBuildAnd(cg->u->b, in_range(cg, iy, c->H), in_range(cg, ix, c->W), ""), valid, "");
            if (w->sw == 1 && segs <= 4) {
                V in_q[4], at_q[4];
                for (int64_t q = 0; q < segs; q++) {
                    V lx = LLVMBuildAdd(cg->u->b, kiln_cg_splat(cg, LLVMBuildSub(cg->u->b, ox0, kiln_cg_i64(cg, q * c->OW), "")), lane, "");
                    in_q[q] = LLVMBuildAnd(cg->u->b, in_range(cg, lx, c->OW), m, "");
                    /* where lane 0 would read in row q: lane l then reads at_q + l */
                    at_q[q] = opaque(cg, kiln_cg_gep(cg, c->x, kiln_cg_iadd(cg, kiln_cg_imul(cg, kiln_cg_iadd(cg, iy0, kiln_cg_iadd(cg, dy, kiln_cg_i64(cg, q * w->sh))), c->W),
                                    kiln_cg_iadd(cg, LLVMBuildSub(cg->u->b, ix0, kiln_cg_i64(cg, q * c->OW), ""), dx))));
                }
                kiln_cg_loop lc;
                V ci = kiln_cg_for_begin(cg, &lc, c0, c1, kiln_cg_i64(cg, 1));
                V plane_off = kiln_cg_imul(cg, ci, HW);
                V val = NULL;
                for (int64_t q = 0; q < segs; q++) {
                    V part = kiln_cg_vload(cg, at_q[q], plane_off, in_q[q], 0.0);
                    val = val ? LLVMBuildSelect(cg->u->b, in_q[q], part, val, "") : part;
                }
                kiln_cg_vstore(cg, val, tdst, kiln_cg_imul(cg, LLVMBuildSub(cg->u->b, ci, c0, ""), c->khw * NR), NULL);
                kiln_cg_for_end(cg, &lc);
            } else {
                V at = LLVMBuildAdd(cg->u->b, LLVMBuildMul(cg->u->b, iy, lanes_i64(cg, c->W), ""), ix, "");
                at = LLVMBuildSelect(cg->u->b, m, at, LLVMConstNull(cg->u->t_vi64), ""); /* masked lanes read 0 */
                kiln_cg_loop lc;
                V ci = kiln_cg_for_begin(cg, &lc, c0, c1, kiln_cg_i64(cg, 1));
                V val = kiln_cg_gather(cg, kiln_cg_gep(cg, c->x, kiln_cg_imul(cg, ci, HW)), at, m, 0.0);
                kiln_cg_vstore(cg, val, tdst, kiln_cg_imul(cg, LLVMBuildSub(cg->u->b, ci, c0, ""), c->khw * NR), NULL);
                kiln_cg_for_end(cg, &lc);
            }
        }
        kiln_cg_if_end(cg, &f_single);
        kiln_cg_for_end(cg, &lt);
    }
    kiln_cg_if_end(cg, &f_fast);
    kiln_cg_for_end(cg, &lv);
}

/* An int8 convolution's per-filter data in the blob, after its packed s8
 * filters (int8_pack_a): the f32 multiplier sa * sw, the int32 term za *
 * (the sum of the filter's quantized weights) and the f32 bias (zeros
 * without one), F of each. The input's zero point multiplies every
 * weight, padding included: a padded input element is 0.0, which
 * quantizes to exactly za, so its term cancels as the interpreter's
 * skipped taps do. */
static kiln_status conv_int8_params(kiln_cg *cg, const kiln_node *n, const float *wt, kiln_id bid,
                                    const kiln_quant_act *qa, int64_t F, int64_t J, uint64_t *q_off)
{
    size_t bcount = 0;
    float *bias = bid != KILN_NO_ID ? kiln_cg_param_f32(cg, bid, &bcount) : NULL;
    if (bid != KILN_NO_ID && !bias)
        return cg->status;
    unsigned char *q = kiln_cg_blob_alloc_bytes(cg, 12 * (size_t)F, q_off);
    for (int64_t f = 0; q && f < F; f++) {
        const float sw = kiln_quant_weight_scale(wt + f * J, J, 1), s = kiln_quant_out_scale(qa->scale, sw);
        int64_t sum = 0;
        for (int64_t k = 0; k < J; k++)
            sum += kiln_quant_weight_q(wt[f * J + k], sw);
        const int32_t comp = (int32_t)(qa->zero * sum); /* J <= 65535: fits (ir/quant.h) */
        const float b = bias && (size_t)f < bcount ? bias[f] : 0.0f;
        memcpy(q + 4 * f, &s, 4);
        memcpy(q + 4 * (F + f), &comp, 4);
        memcpy(q + 4 * (2 * F + f), &b, 4);
    }
    (void)n;
    free(bias);
    return cg->status;
}

static bool is_one_by_one(const window *w)
{
    return w->kh == 1 && w->kw == 1 && w->sh == 1 && w->sw == 1 && !w->pt && !w->pl && !w->pb && !w->pr;
}

/* A 1x1 convolution (one group, stride 1, no padding) through OpenBLAS: per
 * task, out[f, p] = W[f, c] x[c, p] for a block of channels and pixels. */
static kiln_status conv_1x1_blas(kiln_cg *cg, const kiln_node *n, kiln_id wid, kiln_id bid, uint64_t b_off)
{
    const kiln_shape *xs = &kiln_graph_value(cg->g, n->inputs[0])->type.shape;
    const kiln_shape *ys = &kiln_graph_value(cg->g, n->output)->type.shape;
    const int64_t C = xs->dims[1], F = ys->dims[1], P = ys->dims[2] * ys->dims[3];
    uint64_t w_off;
    if (kiln_cg_blob_param(cg, wid, &w_off) != KILN_OK)
        return cg->status;
    int64_t mb, nb;
    kiln_cg_blas_blocking(cg, P, n->tasks, &mb, &nb);
    mb = F;
    const int64_t m_blocks = (F + mb - 1) / mb, n_blocks = (P + nb - 1) / nb, per_item = m_blocks * n_blocks;
    char kernel[128], epi[64];
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, kiln_cg_node_dtype(cg, n), KILN_CG_ON_OPENBLAS, 0, 0, "conv2d_1x1%s%s",
                        bid != KILN_NO_ID ? "_bias" : "", kiln_cg_epi_name(epilogue(cg), epi, sizeof epi));
    kiln_cg_task_begin(cg, kernel, n);
    V px = kiln_cg_value_ptr(cg, n->inputs[0]), py = kiln_cg_value_ptr(cg, stored_value(cg, n));
    V t = cg->f.arg_index;
    V cb = kiln_cg_urem(cg, t, n_blocks);
    t = kiln_cg_udiv(cg, t, n_blocks);
    V rb = kiln_cg_urem(cg, t, m_blocks), item = kiln_cg_udiv(cg, t, m_blocks);
    V r0 = kiln_cg_imul(cg, rb, mb), r1 = kiln_cg_smin(cg, kiln_cg_iadd(cg, r0, kiln_cg_i64(cg, mb)), kiln_cg_i64(cg, F));
    V c0 = kiln_cg_imul(cg, cb, nb), c1 = kiln_cg_smin(cg, kiln_cg_iadd(cg, c0, kiln_cg_i64(cg, nb)), kiln_cg_i64(cg, P));
    V out_ch = kiln_cg_iadd(cg, kiln_cg_imul(cg, item, F), r0);
    kiln_cg_blas_call c = {
        .trans_b = false,
        .m = LLVMBuildSub(cg->u->b, r1, r0, ""),
        .n = LLVMBuildSub(cg->u->b, c1, c0, ""),
        .k = C,
        .a = kiln_cg_gep(cg, kiln_cg_weights_ptr(cg, w_off), kiln_cg_imul(cg, r0, C)),
        .b = kiln_cg_gep(cg, px, kiln_cg_iadd(cg, kiln_cg_imul(cg, item, C * P), c0)),
        .c = kiln_cg_gep(cg, py, kiln_cg_iadd(cg, kiln_cg_imul(cg, out_ch, P), c0)),
        .lda = C,
        .ldb = P,
        .ldc = P,
        .bias = bid != KILN_NO_ID ? kiln_cg_gep(cg, kiln_cg_weights_ptr(cg, b_off), r0) : NULL,
        .bias_per_row = true,
        .epi = epilogue(cg),
        .epi_row0 = out_ch,
        .epi_col0 = c0,
    };
    kiln_cg_emit_blas(cg, &c);
    const int64_t items = xs->batched ? 1 : xs->dims[0];
    kiln_cg_task_end(cg, (kiln_cg_count){xs->batched ? 0 : per_item * items, xs->batched ? per_item : 0, 1, 1, 0});
    return cg->status;
}

kiln_status kiln_cg_emit_conv2d(kiln_cg *cg, const kiln_node *n)
{
    const kiln_impl impl = kiln_cg_impl_of(cg, n);
    if (impl == KILN_IMPL_BLOCKED)
        return kiln_cg_emit_blocked(cg, n);
    const kiln_shape *xs = &kiln_graph_value(cg->g, n->inputs[0])->type.shape;
    const kiln_shape *ys = &kiln_graph_value(cg->g, n->output)->type.shape;
    kiln_id wid = kiln_node_param(cg->g, n, "weight"), bid = kiln_node_param(cg->g, n, "bias");
    if (xs->rank != 4 || ys->rank != 4 || wid == KILN_NO_ID || !window_ok(n))
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "malformed conv2d");
    const kiln_shape *wsh = &kiln_graph_value(cg->g, wid)->type.shape;
    const int64_t H = xs->dims[2], W = xs->dims[3];
    const int64_t F = ys->dims[1], OH = ys->dims[2], OW = ys->dims[3], P = OH * OW;
    const int64_t groups = n->attrs[KILN_ATTR_GROUPS].i, Cg = wsh->dims[1], kh = wsh->dims[2], kw = wsh->dims[3];
    const int64_t Fg = F / groups, J = Cg * kh * kw;
    window w = read_window(n, kh, kw, true);
    if (impl == KILN_IMPL_WINOGRAD2 || impl == KILN_IMPL_WINOGRAD4)
        return kiln_cg_emit_conv2d_winograd(cg, n, impl == KILN_IMPL_WINOGRAD4 ? 4 : 2);
    uint64_t w_off, b_off = 0;
    if (bid != KILN_NO_ID && kiln_cg_blob_param(cg, bid, &b_off) != KILN_OK)
        return cg->status;
    if (impl == KILN_IMPL_DIRECT) {
        if (kiln_cg_blob_param(cg, wid, &w_off) != KILN_OK)
            return cg->status;
        return conv_direct(cg, n, &w, w_off, bid != KILN_NO_ID, b_off);
    }
    const bool one_by_one = is_one_by_one(&w);
    if (one_by_one && kiln_cg_gemm_pick(cg, n) == KILN_CG_GEMM_BLAS)
        return conv_1x1_blas(cg, n, wid, bid, b_off);
    /* A: the weights [F, J], packed per group in panels of mr channels. */
    size_t count;
    float *wt = kiln_cg_param_f32(cg, wid, &count);
    if (!wt)
        return cg->status;
    const int64_t khw = kh * kw;
    /* bf16 / f16 weights (the layer's precision): the weights are A */
    const kiln_cg_gemm_config *gc = kiln_cg_gemm_for_node(cg, n, true);
    /* K blocks of whole input channels, and whole k_pack groups (bf16: the
     * blocks but the last are even); A is packed for them */
    const int64_t unit = khw % gc->k_pack ? khw * gc->k_pack : khw;
    const int64_t kc = unit <= gc->kc ? gc->kc / unit * unit : unit;
    const size_t group_bytes = kiln_cg_packed_a_bytes(gc, Fg, J), per_group = group_bytes / kiln_dtype_size(gc->a);
    const bool int8 = gc->acc == KILN_I32;
    kiln_quant_act qa = {0};
    int qs = int8 ? kiln_node_in_quant(n, &qa) : 0;
    if (qs != 0) {
        free(wt);
        return kiln_cg_fail(cg, KILN_ERR_INVALID_ARGUMENT, "layer '%s': an int8 convolution needs %s in_scale and in_zero "
                            "(from --calibration, docs/precision.md)", n->layer ? n->layer : "?",
                            qs == -1 ? "its input's quantization:" : "a positive f32 in_scale and in_zero in [0, 255]:");
    }
    unsigned char *packed =
        count == (size_t)(F * J) ? kiln_cg_blob_alloc_bytes(cg, group_bytes * (size_t)groups, &w_off) : NULL;
    if (packed)
        for (int64_t g = 0; g < groups; g++)
            kiln_cg_pack_a(gc, wt + g * Fg * J, Fg, J, J, 1, kc, packed + (size_t)g * group_bytes);
    uint64_t q_off = 0;
    if (packed && int8 && conv_int8_params(cg, n, wt, bid, &qa, F, J, &q_off) != KILN_OK)
        packed = NULL;
    free(wt);
    if (!packed)
        return cg->status != KILN_OK ? cg->status : kiln_cg_fail(cg, KILN_ERR_INTERNAL, "weight size mismatch");

    if (w.kh > KILN_CG_MAX_TAPS || w.kw > KILN_CG_MAX_TAPS)
        return kiln_cg_fail(cg, KILN_ERR_UNSUPPORTED, "kernels larger than %dx%d are not supported",
                            KILN_CG_MAX_TAPS, KILN_CG_MAX_TAPS);

    /* GEMM per (item, group): out[g*Fg + f][p] = W[g*Fg + f][j] col[g][j][p]. */
    int64_t mb, nb;
    kiln_cg_gemm_blocking(cg, gc, Fg, P, J, n->tasks, false, one_by_one ? 1.0 : 2.0, &mb, &nb);
    const int64_t m_blocks = (Fg + mb - 1) / mb, n_blocks = (P + nb - 1) / nb;
    const int64_t per_item = groups * m_blocks * n_blocks;
    const int64_t items = xs->batched ? 1 : xs->dims[0];
    char kernel[128], epi[64];
    kiln_cg_gemm_kernel_name(cg, kernel, sizeof kernel, gc, "conv2d%s%s%s_%s", one_by_one ? "_1x1" : "",
                             bid != KILN_NO_ID ? "_bias" : "", kiln_cg_epi_name(epilogue(cg), epi, sizeof epi),
                             one_by_one ? "gemm" : "igemm");
    kiln_cg_task_begin(cg, kernel, n);
    V px = kiln_cg_value_ptr(cg, n->inputs[0]), py = kiln_cg_value_ptr(cg, stored_value(cg, n));
    V t = cg->f.arg_index;
    V cb = kiln_cg_urem(cg, t, n_blocks);
    t = kiln_cg_udiv(cg, t, n_blocks);
    V rb = kiln_cg_urem(cg, t, m_blocks);
    V gi = kiln_cg_udiv(cg, t, m_blocks); /* item * groups + g */
    V g = kiln_cg_urem(cg, gi, groups);
    V r0 = kiln_cg_imul(cg, rb, mb), r1 = kiln_cg_smin(cg, kiln_cg_iadd(cg, r0, kiln_cg_i64(cg, mb)), kiln_cg_i64(cg, Fg));
    V c0 = kiln_cg_imul(cg, cb, nb), c1 = kiln_cg_smin(cg, kiln_cg_iadd(cg, c0, kiln_cg_i64(cg, nb)), kiln_cg_i64(cg, P));
    V frow = kiln_cg_iadd(cg, kiln_cg_imul(cg, g, Fg), r0); /* first output channel of the block */
    V bmat = kiln_cg_gep(cg, px, kiln_cg_imul(cg, gi, Cg * H * W)); /* x[item][g*Cg..]: [Cg, H*W] for 1x1 */
    conv_pack pack = {gc, &w, H, W, OW, khw, bmat};
    /* item * F + frow = (gi / groups) * F + frow: the output row, and the view row */
    V out_ch = kiln_cg_iadd(cg, kiln_cg_imul(cg, kiln_cg_udiv(cg, gi, groups), F), frow);
    V agroup = kiln_cg_gep_t(cg, kiln_cg_vtype_of(cg, gc->a), kiln_cg_weights_ptr(cg, w_off),
                             kiln_cg_imul(cg, g, (int64_t)per_group));
    kiln_cg_gemm p = {
        .cfg = gc,
        .a = agroup,
        .a_row0 = r0,
        .a_rows = (Fg + gc->mr - 1) / gc->mr * gc->mr,
        .b = bmat,
        .c = kiln_cg_gep(cg, py, kiln_cg_imul(cg, out_ch, P)),
        .a_packed = true,
        .b_packed = false,
        .b_padded = false,
        .lda = 0,
        .ldb = P,
        .ldc = P,
        .m = LLVMBuildSub(cg->u->b, r1, r0, ""),
        .n0 = c0,
        .n1 = c1,
        .k = J,
        .bias = bid != KILN_NO_ID ? kiln_cg_gep(cg, kiln_cg_weights_ptr(cg, b_off), frow) : NULL,
        .bias_per_row = true,
        .epi = epilogue(cg),
        .epi_row0 = out_ch,
        .kc = kc,
        .pack_b = one_by_one ? NULL : conv_pack_b,
        .pack_arg = &pack,
    };
    if (int8) { /* conv_int8_params' layout, per output channel from frow */
        p.a_inv_scale = qa.inv_scale;
        p.a_zero = qa.zero;
        p.q_scale = kiln_cg_gep(cg, kiln_cg_weights_ptr(cg, q_off), frow);
        p.q_comp = kiln_cg_gep_t(cg, kiln_cg_vtype_of(cg, KILN_I32), kiln_cg_weights_ptr(cg, q_off + 4 * (uint64_t)F), frow);
        p.bias = kiln_cg_gep(cg, kiln_cg_weights_ptr(cg, q_off + 8 * (uint64_t)F), frow);
    }
    kiln_cg_emit_gemm(cg, &p);
    kiln_cg_task_end(cg, (kiln_cg_count){xs->batched ? 0 : per_item * items, xs->batched ? per_item : 0, 1, 1, 0});
    return cg->status;
}

/* ---- pools ------------------------------------------------------------------------------ */

typedef struct pool_arg {
    const window *w;
    bool max, include_pad;
    V x_plane, y_row, oy;
    int64_t H, W;
} pool_arg;

static void pool_body(kiln_cg *cg, V ox0, V mask, bool fast, void *p)
{
    pool_arg *a = p;
    const window *w = a->w;
    V acc = kiln_cg_alloca(cg, cg->u->t_vf, "acc");
    LLVMBuildStore(cg->u->b, kiln_cg_fconst(cg, LLVMGetPoison(cg->u->t_vf), a->max ? -INFINITY : 0.0), acc);
    window_mask wm[KILN_CG_MAX_TAPS];
    const bool hoist = w->kw <= KILN_CG_MAX_TAPS; /* else a mask per tap */
    for (int64_t kx = 0; !fast && hoist && kx < w->kw; kx++)
        wm[kx] = window_mask_at(cg, ox0, w->sw, kiln_cg_i64(cg, kx * w->dw - w->pl), a->W, mask);
    for (int64_t ky = 0; ky < w->kh; ky++) {
        V iy = kiln_cg_iadd(cg, kiln_cg_imul(cg, a->oy, w->sh), kiln_cg_i64(cg, ky * w->dh - w->pt));
        V in = LLVMBuildAnd(cg->u->b, LLVMBuildICmp(cg->u->b, LLVMIntSGE, iy, kiln_cg_i64(cg, 0), ""),
                            LLVMBuildICmp(cg->u->b, LLVMIntSLT, iy, kiln_cg_i64(cg, a->H), ""), "");
        kiln_cg_if f;
        kiln_cg_if_begin(cg, &f, in);
        V row = kiln_cg_gep(cg, a->x_plane, kiln_cg_imul(cg, iy, a->W));
        for (int64_t kx = 0; kx < w->kw; kx++) {
            V off = kiln_cg_i64(cg, kx * w->dw - w->pl);
            window_mask here = fast || hoist ? (window_mask){NULL, NULL, NULL} : window_mask_at(cg, ox0, w->sw, off, a->W, mask);
            V v = fast ? window_fast(cg, row, ox0, w->sw, off)
                       : window_load(cg, row, ox0, w->sw, off, hoist ? &wm[kx] : &here, a->max ? -INFINITY : 0.0);
            V cur = LLVMBuildLoad2(cg->u->b, cg->u->t_vf, acc, "");
            V next;
            if (a->max) {
                V take = LLVMBuildOr(cg->u->b, LLVMBuildFCmp(cg->u->b, LLVMRealOGT, v, cur, ""), kiln_cg_is_nan(cg, v), "");
                next = LLVMBuildSelect(cg->u->b, take, v, cur, "");
            } else {
                next = LLVMBuildFAdd(cg->u->b, cur, v, "");
            }
            LLVMBuildStore(cg->u->b, next, acc);
        }
        kiln_cg_if_end(cg, &f);
    }
    V r = LLVMBuildLoad2(cg->u->b, cg->u->t_vf, acc, "");
    if (!a->max) {
        /* Divisor per lane: the window clipped to the padded input, or to the input. */
        V y0 = kiln_cg_iadd(cg, kiln_cg_imul(cg, a->oy, w->sh), kiln_cg_i64(cg, -w->pt));
        V y1 = kiln_cg_smin(cg, kiln_cg_iadd(cg, y0, kiln_cg_i64(cg, w->kh)), kiln_cg_i64(cg, a->H + w->pb));
        V y0c = kiln_cg_smax(cg, y0, kiln_cg_i64(cg, 0)), y1c = kiln_cg_smin(cg, y1, kiln_cg_i64(cg, a->H));
        V ox = LLVMBuildAdd(cg->u->b, kiln_cg_splat(cg, ox0), kiln_cg_iota64(cg), "");
        V x0 = LLVMBuildAdd(cg->u->b, LLVMBuildMul(cg->u->b, ox, kiln_cg_splat(cg, kiln_cg_i64(cg, w->sw)), ""),
                            kiln_cg_splat(cg, kiln_cg_i64(cg, -w->pl)), "");
        V x1 = LLVMBuildAdd(cg->u->b, x0, kiln_cg_splat(cg, kiln_cg_i64(cg, w->kw)), "");
        V lim = kiln_cg_splat(cg, kiln_cg_i64(cg, a->W + w->pr));
        x1 = LLVMBuildSelect(cg->u->b, LLVMBuildICmp(cg->u->b, LLVMIntSLT, x1, lim, ""), x1, lim, "");
        V zero = LLVMConstNull(cg->u->t_vi64), wv = kiln_cg_splat(cg, kiln_cg_i64(cg, a->W));
        V x0c = LLVMBuildSelect(cg->u->b, LLVMBuildICmp(cg->u->b, LLVMIntSGT, x0, zero, ""), x0, zero, "");
        V x1c = LLVMBuildSelect(cg->u->b, LLVMBuildICmp(cg->u->b, LLVMIntSLT, x1, wv, ""), x1, wv, "");
        V wy = LLVMBuildSub(cg->u->b, y1c, y0c, ""), wx = LLVMBuildSub(cg->u->b, x1c, x0c, "");
        V cells = LLVMBuildMul(cg->u->b, kiln_cg_splat(cg, wy), wx, "");
        V divisor = a->include_pad ? LLVMBuildMul(cg->u->b, kiln_cg_splat(cg, LLVMBuildSub(cg->u->b, y1, y0, "")),
                                                  LLVMBuildSub(cg->u->b, x1, x0, ""), "")
                                   : cells;
        V df = LLVMBuildSIToFP(cg->u->b, divisor, cg->u->t_vf, "");
        V empty = LLVMBuildOr(cg->u->b, kiln_cg_splat(cg, LLVMBuildICmp(cg->u->b, LLVMIntSLE, wy, kiln_cg_i64(cg, 0), "")),
                              LLVMBuildICmp(cg->u->b, LLVMIntSLE, wx, zero, ""), "");
        r = LLVMBuildSelect(cg->u->b, empty, LLVMConstNull(cg->u->t_vf), LLVMBuildFDiv(cg->u->b, r, df, ""), "avg");
    }
    kiln_cg_vstore(cg, r, a->y_row, ox0, mask);
}

kiln_status kiln_cg_emit_pool(kiln_cg *cg, const kiln_node *n)
{
    if (kiln_cg_blocked_node(cg->g, n))
        return kiln_cg_emit_blocked(cg, n);
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
    kiln_cg_count count = plane_tasks(cg, n, xs->batched, planes, OH * OW, &per_task);
    char kernel[96];
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, kiln_cg_node_dtype(cg, n), KILN_CG_ON_TARGET, 0, 0, "%s", kiln_op_name(n->op));
    kiln_cg_task_begin(cg, kernel, n);
    V px = kiln_cg_value_ptr(cg, n->inputs[0]), py = kiln_cg_value_ptr(cg, n->output);
    V total = kiln_cg_i64(cg, planes);
    if (xs->batched)
        total = LLVMBuildMul(cg->u->b, total, kiln_cg_batch(cg), "");
    V lo, hi;
    kiln_cg_task_range(cg, total, per_task, &lo, &hi);
    kiln_cg_loop lp, ly;
    V plane = kiln_cg_for_begin(cg, &lp, lo, hi, kiln_cg_i64(cg, 1));
    pool_arg a = {&w, max, !max && n->attrs[KILN_ATTR_COUNT_INCLUDE_PAD].i != 0,
                  kiln_cg_gep(cg, px, kiln_cg_imul(cg, plane, H * W)), NULL, NULL, H, W};
    V y_plane = kiln_cg_gep(cg, py, kiln_cg_imul(cg, plane, OH * OW));
    a.oy = kiln_cg_for_begin(cg, &ly, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, OH), kiln_cg_i64(cg, 1));
    a.y_row = kiln_cg_gep(cg, y_plane, kiln_cg_imul(cg, a.oy, OW));
    int64_t fast_lo, fast_hi;
    interior(cg, W, w.sw, -w.pl, (w.kw - 1) * w.dw - w.pl, &fast_lo, &fast_hi);
    row_loop(cg, OW, fast_lo, fast_hi, pool_body, &a);
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
    LLVMBuildStore(cg->u->b, LLVMBuildFAdd(cg->u->b, LLVMBuildLoad2(cg->u->b, cg->u->t_vf, a->acc, ""), v, ""), a->acc);
}

kiln_status kiln_cg_emit_global_avgpool(kiln_cg *cg, const kiln_node *n)
{
    if (kiln_cg_blocked_node(cg->g, n))
        return kiln_cg_emit_blocked(cg, n);
    const kiln_shape *xs = &kiln_graph_value(cg->g, n->inputs[0])->type.shape;
    if (xs->rank < 3)
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "malformed global_avgpool");
    const int64_t HW = xs->dims[xs->rank - 2] * xs->dims[xs->rank - 1];
    int64_t planes = 1;
    for (int i = xs->batched ? 1 : 0; i < xs->rank - 2; i++)
        planes *= xs->dims[i];
    int64_t per_task;
    kiln_cg_count count = plane_tasks(cg, n, xs->batched, planes, HW, &per_task);
    char kernel[96];
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, kiln_cg_node_dtype(cg, n), KILN_CG_ON_TARGET, 0, 0, "global_avgpool");
    kiln_cg_task_begin(cg, kernel, n);
    V px = kiln_cg_value_ptr(cg, n->inputs[0]), py = kiln_cg_value_ptr(cg, n->output);
    V total = kiln_cg_i64(cg, planes);
    if (xs->batched)
        total = LLVMBuildMul(cg->u->b, total, kiln_cg_batch(cg), "");
    V lo, hi;
    kiln_cg_task_range(cg, total, per_task, &lo, &hi);
    kiln_cg_loop lp;
    V plane = kiln_cg_for_begin(cg, &lp, lo, hi, kiln_cg_i64(cg, 1));
    sum_arg a = {kiln_cg_gep(cg, px, kiln_cg_imul(cg, plane, HW)), kiln_cg_alloca(cg, cg->u->t_vf, "acc")};
    LLVMBuildStore(cg->u->b, LLVMConstNull(cg->u->t_vf), a.acc);
    kiln_cg_vloop(cg, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, HW), sum_body, &a);
    V s = kiln_cg_reduce_add(cg, LLVMBuildLoad2(cg->u->b, cg->u->t_vf, a.acc, ""));
    kiln_cg_store(cg, LLVMBuildFDiv(cg->u->b, s, kiln_cg_f32(cg, (double)HW), ""), py, plane);
    kiln_cg_for_end(cg, &lp);
    kiln_cg_task_end(cg, count);
    return cg->status;
}
