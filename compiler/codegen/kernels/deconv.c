/* compiler/codegen/kernels/deconv.c: conv_transpose2d
 * (torch.nn.ConvTranspose2d), as stride-1 correlations through the packed
 * GEMM.
 *
 * Output row oy = iy sh - pt + ky dh receives input row iy through kernel row
 * ky. Split the output by phase, oy = ry + sh qy with ry in [0, sh) (likewise
 * ox = rx + sw qx): the rows of one phase are reached only through the taps
 * ky with (ry + pt - ky dh) divisible by sh, each from input row
 * iy = qy + (ry + pt - ky dh) / sh. So each phase (ry, rx) is an ordinary
 * stride-1 correlation over its taps,
 *
 *   Y[f][qy, qx] = bias[f] + sum_{c, (ky, kx) of the phase}
 *                    W[c][f][ky, kx] x[c][qy + dy(ky), qx + dx(kx)]
 *
 * (x outside the input is 0), computed as a GEMM per group: A = the phase's
 * weights [Fg, Cg taps] packed at compile time, B = its im2col columns, built
 * one kc x NR panel at a time from the input (contiguous loads inside an
 * input row, masked at its ends) and never stored.
 *
 * Stride 1: one phase, whose columns are the output pixels in order: the
 * GEMM writes the output with the bias and the fusion group's epilogue in
 * registers, like conv2d. Other strides: one step per phase; a task computes
 * a block of filters x columns into its scratch slot (bias added) and stores
 * it to the output's phase positions (a scatter with stride sw along x, or
 * plain stores when sw is 1); a phase without taps stores the bias. The
 * epilogue, if any, is one more step over the output in place. The stores
 * go to the group's stored value (the last member's), whose shape is the
 * node's.
 *
 * Layout: plain only (ops.def PLAIN): the layout pass puts reorders around
 * it when its neighbours are blocked. */
#include "compiler/codegen/cg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef LLVMValueRef V;


/* ---- the plan -------------------------------------------------------------------- */

typedef struct dims {
    int64_t C, H, W, F, OH, OW, groups, Cg, Fg, kh, kw, sh, sw, pt, pl, dh, dw;
} dims;

/* One phase: its taps and their input offsets, its output grid. */
typedef struct phase {
    int64_t ry, rx, QH, QW;
    int ny, nx;
    int64_t ky[KILN_CG_MAX_TAPS], kx[KILN_CG_MAX_TAPS], dy[KILN_CG_MAX_TAPS], dx[KILN_CG_MAX_TAPS];
} phase;

static void plan_phase(const dims *d, int64_t ry, int64_t rx, phase *p)
{
    memset(p, 0, sizeof *p);
    p->ry = ry, p->rx = rx;
    p->QH = d->OH > ry ? (d->OH - ry + d->sh - 1) / d->sh : 0;
    p->QW = d->OW > rx ? (d->OW - rx + d->sw - 1) / d->sw : 0;
    for (int64_t k = 0; k < d->kh && p->ny < KILN_CG_MAX_TAPS; k++) {
        int64_t t = ry + d->pt - k * d->dh;
        if (((t % d->sh) + d->sh) % d->sh == 0) {
            p->ky[p->ny] = k, p->dy[p->ny] = t / d->sh;
            p->ny++;
        }
    }
    for (int64_t k = 0; k < d->kw && p->nx < KILN_CG_MAX_TAPS; k++) {
        int64_t t = rx + d->pl - k * d->dw;
        if (((t % d->sw) + d->sw) % d->sw == 0) {
            p->kx[p->nx] = k, p->dx[p->nx] = t / d->sw;
            p->nx++;
        }
    }
}

static bool read_dims(kiln_cg *cg, const kiln_node *n, dims *d)
{
    const kiln_shape *xs = &kiln_graph_value(cg->g, n->inputs[0])->type.shape;
    const kiln_shape *ys = &kiln_graph_value(cg->g, n->output)->type.shape;
    kiln_id wid = kiln_node_param(cg->g, n, "weight");
    if (xs->rank != 4 || ys->rank != 4 || wid == KILN_NO_ID)
        return false;
    const kiln_shape *ws = &kiln_graph_value(cg->g, wid)->type.shape;
    const kiln_attr *s = &n->attrs[KILN_ATTR_STRIDE], *p = &n->attrs[KILN_ATTR_PADDING], *dl = &n->attrs[KILN_ATTR_DILATION];
    if (ws->rank != 4 || s->n < 2 || p->n < 4 || dl->n < 2)
        return false;
    *d = (dims){xs->dims[1], xs->dims[2], xs->dims[3], ys->dims[1], ys->dims[2], ys->dims[3],
                n->attrs[KILN_ATTR_GROUPS].i, 0, 0, ws->dims[2], ws->dims[3], s->ints[0], s->ints[1],
                p->ints[0], p->ints[1], dl->ints[0], dl->ints[1]};
    if (d->groups < 1 || d->C % d->groups || d->F % d->groups)
        return false;
    d->Cg = d->C / d->groups, d->Fg = d->F / d->groups;
    return true;
}

/* K blocks of whole input channels (the pack routine's unit). */
static int64_t phase_kc(const kiln_cg_gemm_config *gc, int64_t taps)
{
    return taps <= gc->kc ? gc->kc / taps * taps : taps;
}

/* ---- B: a phase's im2col panel ----------------------------------------------------- */

typedef struct pack_arg {
    const dims *d;
    const phase *p;
    V x; /* the first input channel of the item's group */
} pack_arg;

static V lanes_i64(kiln_cg *cg, int64_t v) { return kiln_cg_splat(cg, kiln_cg_i64(cg, v)); }

static V in_range(kiln_cg *cg, V v, int64_t hi)
{
    return LLVMBuildAnd(cg->u->b, LLVMBuildICmp(cg->u->b, LLVMIntSGE, v, LLVMConstNull(cg->u->t_vi64), ""),
                        LLVMBuildICmp(cg->u->b, LLVMIntSLT, v, lanes_i64(cg, hi), ""), "");
}

/* dst[(k - k0) NR + col] = B[k][j + col], k = c taps + t over whole channels
 * [k0 / taps, k1 / taps); B[k][q] = x[c][qy + dy][qx + dx] or 0. */
static void deconv_pack_b(kiln_cg *cg, void *arg, V dst, V j, V ncols, V k0, V k1)
{
    pack_arg *a = arg;
    const dims *d = a->d;
    const phase *p = a->p;
    const int64_t NR = (int64_t)cg->target->gemm_nr * cg->vl, HW = d->H * d->W, taps = (int64_t)p->ny * p->nx;
    V c0 = kiln_cg_udiv(cg, k0, taps), c1 = kiln_cg_udiv(cg, k1, taps);
    V lane = kiln_cg_iota64(cg);
    kiln_cg_loop lv;
    V v = kiln_cg_for_begin(cg, &lv, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, cg->target->gemm_nr), kiln_cg_i64(cg, 1));
    V vcol = kiln_cg_imul(cg, v, cg->vl);
    V q0 = kiln_cg_iadd(cg, j, vcol);
    V qy0 = kiln_cg_udiv(cg, q0, p->QW), qx0 = kiln_cg_urem(cg, q0, p->QW);
    V nvalid = LLVMBuildSub(cg->u->b, ncols, vcol, "");
    /* one grid row and every lane valid: per tap a contiguous (masked at
     * the input row's ends) load; else per-lane rows and columns */
    V single = LLVMBuildAnd(cg->u->b, LLVMBuildICmp(cg->u->b, LLVMIntSLE, kiln_cg_iadd(cg, qx0, kiln_cg_i64(cg, cg->vl)), kiln_cg_i64(cg, p->QW), ""),
                            LLVMBuildICmp(cg->u->b, LLVMIntSGE, nvalid, kiln_cg_i64(cg, cg->vl), ""), "");
    V dst_v = kiln_cg_gep(cg, dst, vcol);
    kiln_cg_if f;
    kiln_cg_if_begin(cg, &f, single);
    for (int ty = 0; ty < p->ny; ty++) {
        V iy = kiln_cg_iadd(cg, qy0, kiln_cg_i64(cg, p->dy[ty]));
        V row_ok = LLVMBuildAnd(cg->u->b, LLVMBuildICmp(cg->u->b, LLVMIntSGE, iy, kiln_cg_i64(cg, 0), ""),
                                LLVMBuildICmp(cg->u->b, LLVMIntSLT, iy, kiln_cg_i64(cg, d->H), ""), "");
        for (int tx = 0; tx < p->nx; tx++) {
            const int64_t t = (int64_t)ty * p->nx + tx;
            V ix0 = kiln_cg_iadd(cg, qx0, kiln_cg_i64(cg, p->dx[tx]));
            V m = LLVMBuildAnd(cg->u->b, kiln_cg_splat(cg, row_ok),
                               in_range(cg, LLVMBuildAdd(cg->u->b, kiln_cg_splat(cg, ix0), lane, ""), d->W), "");
            V at = kiln_cg_gep(cg, a->x, kiln_cg_iadd(cg, kiln_cg_imul(cg, iy, d->W), ix0));
            V tdst = kiln_cg_gep(cg, dst_v, kiln_cg_i64(cg, t * NR));
            kiln_cg_loop lc;
            V ci = kiln_cg_for_begin(cg, &lc, c0, c1, kiln_cg_i64(cg, 1));
            V val = kiln_cg_vload(cg, at, kiln_cg_imul(cg, ci, HW), m, 0.0);
            kiln_cg_vstore(cg, val, tdst, kiln_cg_imul(cg, LLVMBuildSub(cg->u->b, ci, c0, ""), taps * NR), NULL);
            kiln_cg_for_end(cg, &lc);
        }
    }
    kiln_cg_if_else(cg, &f);
    {
        V q = LLVMBuildAdd(cg->u->b, kiln_cg_splat(cg, q0), lane, "");
        V valid = LLVMBuildICmp(cg->u->b, LLVMIntSLT, lane, kiln_cg_splat(cg, nvalid), "");
        V qy = LLVMBuildUDiv(cg->u->b, q, lanes_i64(cg, p->QW), ""), qx = LLVMBuildURem(cg->u->b, q, lanes_i64(cg, p->QW), "");
        for (int ty = 0; ty < p->ny; ty++)
            for (int tx = 0; tx < p->nx; tx++) {
                const int64_t t = (int64_t)ty * p->nx + tx;
                V iy = LLVMBuildAdd(cg->u->b, qy, lanes_i64(cg, p->dy[ty]), "");
                V ix = LLVMBuildAdd(cg->u->b, qx, lanes_i64(cg, p->dx[tx]), "");
                V m = LLVMBuildAnd(cg->u->b, LLVMBuildAnd(cg->u->b, in_range(cg, iy, d->H), in_range(cg, ix, d->W), ""), valid, "");
                V idx = LLVMBuildAdd(cg->u->b, LLVMBuildMul(cg->u->b, iy, lanes_i64(cg, d->W), ""), ix, "");
                idx = LLVMBuildSelect(cg->u->b, m, idx, LLVMConstNull(cg->u->t_vi64), "");
                V tdst = kiln_cg_gep(cg, dst_v, kiln_cg_i64(cg, t * NR));
                kiln_cg_loop lc;
                V ci = kiln_cg_for_begin(cg, &lc, c0, c1, kiln_cg_i64(cg, 1));
                V val = kiln_cg_gather(cg, kiln_cg_gep(cg, a->x, kiln_cg_imul(cg, ci, HW)), idx, m, 0.0);
                kiln_cg_vstore(cg, val, tdst, kiln_cg_imul(cg, LLVMBuildSub(cg->u->b, ci, c0, ""), taps * NR), NULL);
                kiln_cg_for_end(cg, &lc);
            }
    }
    kiln_cg_if_end(cg, &f);
    kiln_cg_for_end(cg, &lv);
}

/* The phase's A for every group: [Fg, Cg taps] packed (k = c taps + t). */
static bool pack_phase_weights(kiln_cg *cg, const dims *d, const phase *p, const float *w, uint64_t *off,
                               size_t *per_group)
{
    const int64_t taps = (int64_t)p->ny * p->nx, K = d->Cg * taps;
    const kiln_cg_gemm_config *gc = kiln_cg_gemm_f32(cg);
    const size_t group_bytes = kiln_cg_packed_a_bytes(gc, d->Fg, K);
    *per_group = group_bytes / kiln_dtype_size(gc->a);
    float *dense = malloc((size_t)(d->Fg * K) * sizeof *dense);
    unsigned char *blob = dense ? kiln_cg_blob_alloc_bytes(cg, group_bytes * (size_t)d->groups, off) : NULL;
    if (!blob) {
        free(dense);
        if (cg->status == KILN_OK)
            kiln_cg_fail(cg, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        return false;
    }
    for (int64_t g = 0; g < d->groups; g++) {
        for (int64_t f = 0; f < d->Fg; f++)
            for (int64_t c = 0; c < d->Cg; c++)
                for (int ty = 0; ty < p->ny; ty++)
                    for (int tx = 0; tx < p->nx; tx++) {
                        /* weight [C, Fg, kh, kw] */
                        const int64_t src = (((g * d->Cg + c) * d->Fg + f) * d->kh + p->ky[ty]) * d->kw + p->kx[tx];
                        dense[f * K + c * taps + (int64_t)ty * p->nx + tx] = w[src];
                    }
        kiln_cg_pack_a(gc, dense, d->Fg, K, K, 1, phase_kc(gc, taps), blob + (size_t)g * group_bytes);
    }
    free(dense);
    return true;
}

/* ---- stride 1: the GEMM straight into the output ------------------------------------- */

static kiln_status emit_stride1(kiln_cg *cg, const kiln_node *n, const dims *d, const float *w, kiln_id stored,
                                bool bias, uint64_t b_off)
{
    phase p;
    plan_phase(d, 0, 0, &p);
    const int64_t taps = (int64_t)p.ny * p.nx, K = d->Cg * taps, P = d->OH * d->OW;
    uint64_t w_off;
    size_t per_group;
    if (!pack_phase_weights(cg, d, &p, w, &w_off, &per_group))
        return cg->status;
    const kiln_shape *xs = &kiln_graph_value(cg->g, n->inputs[0])->type.shape;
    const kiln_cg_epilogue *epi = cg->f.epi && cg->f.epi->n > 0 ? cg->f.epi : NULL;
    int64_t mb, nb;
    const kiln_cg_gemm_config *gc = kiln_cg_gemm_f32(cg);
    kiln_cg_gemm_blocking(cg, gc, d->Fg, P, K, n->tasks, false, 2.0, &mb, &nb);
    const int64_t m_blocks = (d->Fg + mb - 1) / mb, n_blocks = (P + nb - 1) / nb;
    const int64_t per_item = d->groups * m_blocks * n_blocks, items = xs->batched ? 1 : xs->dims[0];
    char kernel[128], en[64];
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, kiln_cg_node_dtype(cg, n), KILN_CG_ON_TARGET, gc->mr,
                        gc->nr * gc->lanes, "conv_transpose2d%s%s_igemm", bias ? "_bias" : "",
                        kiln_cg_epi_name(epi, en, sizeof en));
    kiln_cg_task_begin(cg, kernel, n);
    V px = kiln_cg_value_ptr(cg, n->inputs[0]), py = kiln_cg_value_ptr(cg, stored);
    V t = cg->f.arg_index;
    V cb = kiln_cg_urem(cg, t, n_blocks);
    t = kiln_cg_udiv(cg, t, n_blocks);
    V rb = kiln_cg_urem(cg, t, m_blocks), gi = kiln_cg_udiv(cg, t, m_blocks), g = kiln_cg_urem(cg, gi, d->groups);
    V r0 = kiln_cg_imul(cg, rb, mb), r1 = kiln_cg_smin(cg, kiln_cg_iadd(cg, r0, kiln_cg_i64(cg, mb)), kiln_cg_i64(cg, d->Fg));
    V c0 = kiln_cg_imul(cg, cb, nb), c1 = kiln_cg_smin(cg, kiln_cg_iadd(cg, c0, kiln_cg_i64(cg, nb)), kiln_cg_i64(cg, P));
    V frow = kiln_cg_iadd(cg, kiln_cg_imul(cg, g, d->Fg), r0);
    V out_ch = kiln_cg_iadd(cg, kiln_cg_imul(cg, kiln_cg_udiv(cg, gi, d->groups), d->F), frow);
    pack_arg pa = {d, &p, kiln_cg_gep(cg, px, kiln_cg_imul(cg, gi, d->Cg * d->H * d->W))};
    kiln_cg_gemm gm = {
        .a = kiln_cg_gep(cg, kiln_cg_weights_ptr(cg, w_off), kiln_cg_imul(cg, g, (int64_t)per_group)),
        .a_row0 = r0,
        .a_rows = (int64_t)per_group / K,
        .b = pa.x,
        .c = kiln_cg_gep(cg, py, kiln_cg_imul(cg, out_ch, P)),
        .a_packed = true,
        .ldc = P,
        .m = LLVMBuildSub(cg->u->b, r1, r0, ""),
        .n0 = c0,
        .n1 = c1,
        .k = K,
        .bias = bias ? kiln_cg_gep(cg, kiln_cg_weights_ptr(cg, b_off), frow) : NULL,
        .bias_per_row = true,
        .epi = epi,
        .epi_row0 = out_ch,
        .kc = phase_kc(kiln_cg_gemm_f32(cg), taps),
        .pack_b = deconv_pack_b,
        .pack_arg = &pa,
    };
    kiln_cg_emit_gemm(cg, &gm);
    kiln_cg_task_end(cg, (kiln_cg_count){xs->batched ? 0 : per_item * items, xs->batched ? per_item : 0, 1, 1, 0});
    return cg->status;
}

/* ---- other strides: a step per phase, then the epilogue -------------------------------- */

typedef struct scatter_arg {
    V src, dst;  /* src: the tile row at the grid row's first column; dst: the output at it */
    int64_t sw;
    V value;     /* a phase without taps: the bias (src NULL) */
} scatter_arg;

static void scatter_body(kiln_cg *cg, V i, V mask, void *arg)
{
    scatter_arg *a = arg;
    V v = a->src ? kiln_cg_vload(cg, a->src, i, mask, 0.0) : a->value;
    if (a->sw == 1) {
        kiln_cg_vstore(cg, v, a->dst, i, mask);
        return;
    }
    V idx = LLVMBuildMul(cg->u->b, LLVMBuildAdd(cg->u->b, kiln_cg_splat(cg, i), kiln_cg_iota64(cg), ""),
                         lanes_i64(cg, a->sw), "");
    V ptrs = LLVMBuildGEP2(cg->u->b, cg->u->t_f32, a->dst, &idx, 1, "");
    if (!mask) {
        V ones[64];
        for (int l = 0; l < cg->vl; l++)
            ones[l] = LLVMConstInt(cg->u->t_i1, 1, 0);
        mask = LLVMConstVector(ones, (unsigned)cg->vl);
    }
    LLVMTypeRef types[2] = {cg->u->t_vf, LLVMVectorType(cg->u->t_ptr, (unsigned)cg->vl)};
    kiln_cg_intrinsic(cg, "llvm.masked.scatter", types, 2, (V[]){v, ptrs, kiln_cg_i32(cg, 4), mask}, 4);
}

static kiln_status emit_phase(kiln_cg *cg, const kiln_node *n, const dims *d, const phase *p, const float *w,
                              kiln_id stored, bool bias, uint64_t b_off)
{
    if (p->QH < 1 || p->QW < 1)
        return KILN_OK; /* an output smaller than the stride: no pixel of this phase */
    const kiln_shape *xs = &kiln_graph_value(cg->g, n->inputs[0])->type.shape;
    const int64_t taps = (int64_t)p->ny * p->nx, K = d->Cg * taps, P = p->QH * p->QW, OP = d->OH * d->OW;
    uint64_t w_off = 0;
    size_t per_group = 0;
    if (taps > 0 && !pack_phase_weights(cg, d, p, w, &w_off, &per_group))
        return cg->status;
    int64_t mb, nb;
    kiln_target_deconv_block(cg->target, d->Fg, &mb, &nb);
    const int64_t m_blocks = (d->Fg + mb - 1) / mb, n_blocks = (P + nb - 1) / nb;
    const int64_t per_item = d->groups * m_blocks * n_blocks, items = xs->batched ? 1 : xs->dims[0];
    const int64_t K_slots = kiln_target_deconv_slots(n);
    char kernel[128];
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, kiln_cg_node_dtype(cg, n), KILN_CG_ON_ANY, 0, 0,
                        "conv_transpose2d%s_phase%lldx%lld_%s", bias ? "_bias" : "", (long long)p->ry,
                        (long long)p->rx, taps ? "igemm" : "fill");
    kiln_cg_task_begin(cg, kernel, n);
    V px = kiln_cg_value_ptr(cg, n->inputs[0]), py = kiln_cg_value_ptr(cg, stored);
    V units = kiln_cg_i64(cg, per_item * items);
    if (xs->batched)
        units = LLVMBuildMul(cg->u->b, units, kiln_cg_batch(cg), "");
    V slot = kiln_cg_gep(cg, kiln_cg_scratch_ptr(cg), kiln_cg_imul(cg, cg->f.arg_index, mb * nb));
    V pbias = bias ? kiln_cg_weights_ptr(cg, b_off) : NULL;
    kiln_cg_loop lu;
    V u = kiln_cg_for_begin(cg, &lu, cg->f.arg_index, units, cg->f.arg_count);
    V cb = kiln_cg_urem(cg, u, n_blocks), t = kiln_cg_udiv(cg, u, n_blocks);
    V rb = kiln_cg_urem(cg, t, m_blocks), gi = kiln_cg_udiv(cg, t, m_blocks), g = kiln_cg_urem(cg, gi, d->groups);
    V r0 = kiln_cg_imul(cg, rb, mb), r1 = kiln_cg_smin(cg, kiln_cg_iadd(cg, r0, kiln_cg_i64(cg, mb)), kiln_cg_i64(cg, d->Fg));
    V c0 = kiln_cg_imul(cg, cb, nb), c1 = kiln_cg_smin(cg, kiln_cg_iadd(cg, c0, kiln_cg_i64(cg, nb)), kiln_cg_i64(cg, P));
    V frow = kiln_cg_iadd(cg, kiln_cg_imul(cg, g, d->Fg), r0);
    V out_ch = kiln_cg_iadd(cg, kiln_cg_imul(cg, kiln_cg_udiv(cg, gi, d->groups), d->F), frow);
    pack_arg pa = {d, p, kiln_cg_gep(cg, px, kiln_cg_imul(cg, gi, d->Cg * d->H * d->W))};
    if (taps > 0) {
        kiln_cg_gemm gm = {
            .a = kiln_cg_gep(cg, kiln_cg_weights_ptr(cg, w_off), kiln_cg_imul(cg, g, (int64_t)per_group)),
            .a_row0 = r0,
            .a_rows = (int64_t)per_group / K,
            .b = pa.x,
            .c = kiln_cg_gep(cg, slot, LLVMBuildNeg(cg->u->b, c0, "")), /* column j at slot + j - c0 */
            .a_packed = true,
            .ldc = nb,
            .m = LLVMBuildSub(cg->u->b, r1, r0, ""),
            .n0 = c0,
            .n1 = c1,
            .k = K,
            .bias = bias ? kiln_cg_gep(cg, pbias, frow) : NULL,
            .bias_per_row = true,
            .kc = phase_kc(kiln_cg_gemm_f32(cg), taps),
            .pack_b = deconv_pack_b,
            .pack_arg = &pa,
        };
        kiln_cg_emit_gemm(cg, &gm);
    }
    /* the tile to the phase's pixels: per filter, per grid row the tile touches */
    kiln_cg_loop lf, lq;
    V fi = kiln_cg_for_begin(cg, &lf, kiln_cg_i64(cg, 0), LLVMBuildSub(cg->u->b, r1, r0, ""), kiln_cg_i64(cg, 1));
    V yplane = kiln_cg_gep(cg, py, kiln_cg_imul(cg, kiln_cg_iadd(cg, out_ch, fi), OP));
    V value = NULL;
    if (!taps)
        value = kiln_cg_splat(cg, bias ? kiln_cg_load(cg, pbias, kiln_cg_iadd(cg, frow, fi)) : kiln_cg_f32(cg, 0.0));
    V qy_lo = kiln_cg_udiv(cg, c0, p->QW), qy_hi = kiln_cg_udiv(cg, LLVMBuildSub(cg->u->b, c1, kiln_cg_i64(cg, 1), ""), p->QW);
    V qy = kiln_cg_for_begin(cg, &lq, qy_lo, kiln_cg_iadd(cg, qy_hi, kiln_cg_i64(cg, 1)), kiln_cg_i64(cg, 1));
    V rowq = kiln_cg_imul(cg, qy, p->QW);
    V qx0 = kiln_cg_smax(cg, LLVMBuildSub(cg->u->b, c0, rowq, ""), kiln_cg_i64(cg, 0));
    V qx1 = kiln_cg_smin(cg, LLVMBuildSub(cg->u->b, c1, rowq, ""), kiln_cg_i64(cg, p->QW));
    V oy = kiln_cg_iadd(cg, kiln_cg_imul(cg, qy, d->sh), kiln_cg_i64(cg, p->ry));
    scatter_arg sa = {
        taps ? kiln_cg_gep(cg, slot, kiln_cg_iadd(cg, kiln_cg_imul(cg, fi, nb), LLVMBuildSub(cg->u->b, kiln_cg_iadd(cg, rowq, qx0), c0, ""))) : NULL,
        kiln_cg_gep(cg, yplane, kiln_cg_iadd(cg, kiln_cg_imul(cg, oy, d->OW), kiln_cg_iadd(cg, kiln_cg_imul(cg, qx0, d->sw), kiln_cg_i64(cg, p->rx)))),
        d->sw, value};
    kiln_cg_vloop(cg, kiln_cg_i64(cg, 0), LLVMBuildSub(cg->u->b, qx1, qx0, ""), scatter_body, &sa);
    kiln_cg_for_end(cg, &lq);
    kiln_cg_for_end(cg, &lf);
    kiln_cg_for_end(cg, &lu);
    kiln_cg_task_end(cg, (kiln_cg_count){xs->batched ? 0 : per_item * items, xs->batched ? per_item : 0, 1, 1, K_slots});
    return cg->status;
}

/* The fusion group's members over the stored output, in place. */
typedef struct epi_arg {
    V y, *offs;
} epi_arg;

static void epi_body(kiln_cg *cg, V i, V mask, void *arg)
{
    epi_arg *a = arg;
    V v = kiln_cg_vload(cg, a->y, i, mask, 0.0);
    kiln_cg_vstore(cg, kiln_cg_epi_apply(cg, cg->f.epi, v, a->offs, i, mask), a->y, i, mask);
}

static kiln_status emit_epilogue(kiln_cg *cg, const kiln_node *n, const dims *d, kiln_id stored)
{
    const kiln_shape *xs = &kiln_graph_value(cg->g, n->inputs[0])->type.shape;
    const int64_t P = d->OH * d->OW, rows = (xs->batched ? 1 : xs->dims[0]) * d->F;
    const int64_t per_task = P >= 16384 ? 1 : 16384 / P;
    char kernel[128], en[64];
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, kiln_cg_node_dtype(cg, n), KILN_CG_ON_TARGET, 0, 0,
                        "conv_transpose2d_epilogue%s", kiln_cg_epi_name(cg->f.epi, en, sizeof en));
    kiln_cg_task_begin(cg, kernel, n);
    kiln_cg_epi_begin(cg, cg->f.epi);
    V py = kiln_cg_value_ptr(cg, stored);
    V total = kiln_cg_i64(cg, rows);
    if (xs->batched)
        total = LLVMBuildMul(cg->u->b, total, kiln_cg_batch(cg), "");
    V lo, hi;
    kiln_cg_task_range(cg, total, per_task, &lo, &hi);
    kiln_cg_loop l;
    V r = kiln_cg_for_begin(cg, &l, lo, hi, kiln_cg_i64(cg, 1));
    V offs[KILN_CG_MAX_EPI];
    kiln_cg_epi_row(cg, cg->f.epi, r, offs);
    epi_arg a = {kiln_cg_gep(cg, py, kiln_cg_imul(cg, r, P)), offs};
    kiln_cg_vloop(cg, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, P), epi_body, &a);
    kiln_cg_for_end(cg, &l);
    kiln_cg_task_end(cg, (kiln_cg_count){xs->batched ? 0 : rows, xs->batched ? rows : 0, per_task, 1, 0});
    return cg->status;
}

kiln_status kiln_cg_emit_conv_transpose2d(kiln_cg *cg, const kiln_node *n)
{
    dims d;
    if (!read_dims(cg, n, &d))
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "malformed conv_transpose2d");
    if (d.kh > KILN_CG_MAX_TAPS || d.kw > KILN_CG_MAX_TAPS)
        return kiln_cg_fail(cg, KILN_ERR_UNSUPPORTED, "kernels larger than %dx%d are not supported",
                            KILN_CG_MAX_TAPS, KILN_CG_MAX_TAPS);
    if (kiln_graph_value(cg->g, n->inputs[0])->type.layout != KILN_LAYOUT_PLAIN ||
        kiln_graph_value(cg->g, n->output)->type.layout != KILN_LAYOUT_PLAIN)
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "conv_transpose2d reads and writes the plain layout only");
    kiln_id wid = kiln_node_param(cg->g, n, "weight"), bid = kiln_node_param(cg->g, n, "bias");
    uint64_t b_off = 0;
    if (bid != KILN_NO_ID && kiln_cg_blob_param(cg, bid, &b_off) != KILN_OK)
        return cg->status;
    size_t count;
    float *w = kiln_cg_param_f32(cg, wid, &count);
    if (!w)
        return cg->status;
    if (count != (size_t)(d.C * d.Fg * d.kh * d.kw)) {
        free(w);
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "weight size mismatch");
    }
    const kiln_id stored = cg->f.epi && cg->f.epi->n > 0 ? cg->f.epi->out : n->output;
    if (d.sh == 1 && d.sw == 1) {
        emit_stride1(cg, n, &d, w, stored, bid != KILN_NO_ID, b_off);
    } else {
        for (int64_t ry = 0; ry < d.sh && cg->status == KILN_OK; ry++)
            for (int64_t rx = 0; rx < d.sw && cg->status == KILN_OK; rx++) {
                phase p;
                plan_phase(&d, ry, rx, &p);
                emit_phase(cg, n, &d, &p, w, stored, bid != KILN_NO_ID, b_off);
            }
        if (cg->status == KILN_OK && cg->f.epi && cg->f.epi->n > 0)
            emit_epilogue(cg, n, &d, stored);
    }
    free(w);
    return cg->status;
}
