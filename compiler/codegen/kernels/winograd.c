/* compiler/codegen/kernels/winograd.c: 3x3 stride-1 convolutions by
 * Winograd's minimal filtering, F(m x m, 3 x 3) with m = 4 or 2.
 *
 * An output tile of m x m pixels needs an input tile of a x a (a = m + 2);
 * per tile and channel pair the direct method does 9 m^2 multiplications,
 * Winograd a^2 (36 for 16 outputs: 4x fewer with m = 4, 2.25x with m = 2):
 *
 *   Y = A^T [ sum_c (G g_fc G^T) .* (B^T d_c B) ] A      (Lavin & Gray, 2015)
 *
 * with the points 0, +-1, 1/2, -2 (m = 4) or 0, +-1 (m = 2). The filter
 * transform U = G g G^T is done at compile time (in double), so the weights
 * grow from 9 to a^2 floats per channel pair; for each of the a^2 positions
 * xi, U[xi] is an F x C matrix packed as the GEMM's A. Per batch item and
 * block of tile rows, one task:
 *
 *   1. input transform: V[xi][c][t] = (B^T d B)[xi] for every channel c and
 *      tile t of the block, written straight in the packed-B panel order
 *      of the GEMM ([xi][t / NR][c][t % NR]);
 *   2. a^2 GEMMs M[xi] (F x T) = U[xi] (F x C) V[xi] (C x T): the packed
 *      GEMM of kernels/gemm.c with both operands packed;
 *   3. output transform: Y = A^T M A per tile and filter, then the bias, the
 *      fusion group's epilogue (activation, residual add) and the store.
 *
 * The transforms are vectorized across vl consecutive tiles of one tile row
 * (lanes = tiles): the a x a window of each lane is taken from vl * m + 2
 * contiguous input floats per row (masked loads at the borders, then lane
 * shuffles with stride m), and the m x m outputs of each lane are
 * interleaved back into contiguous output rows. Tile rows are padded to a
 * whole number of vectors (TWp tiles); padded tiles compute harmless values
 * that are never stored. The GEMM columns of a tile row are TWp, or, for
 * F(2x2) on rows of fewer tiles than lanes, just the TW real tiles (plan).
 *
 * V and M of a block live in the workspace: the step has one task per block
 * up to a fixed number K (from the node's schedule), task k of n handling
 * blocks k, k + n, ... (all items), each in its own scratch slot, so the
 * scratch does not grow with the batch and results do not depend on the
 * thread count.
 *
 * Accuracy: the transforms add and scale values by up to 5x (m = 4), so the
 * rounding error of F(4x4, 3x3) is larger than a direct sum's; measured
 * against the double interpreter in tests/codegen and docs/codegen.md. */
#include "compiler/codegen/cg.h"

#include <math.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef LLVMValueRef V;

#define MAX_A 6
#define MAX_LANES 16

/* F(4x4, 3x3) with the points 0, 1, -1, 1/2, -2 and infinity. The usual
 * 0, +-1, +-2 have the same cost; these mixed points halve the worst
 * rounding error in a float32 simulation (2.5x lower max, 1.7x lower mean
 * error over random 128-channel sums), the matrices computed by the
 * Toom-Cook construction. */
static const double BT4[6][6] = {
    {1, -1.5, -2, 1.5, 1, 0}, {0, -1, 0.5, 2.5, 1, 0}, {0, 1, -2.5, 0.5, 1, 0},
    {0, -2, -1, 2, 1, 0},     {0, 0.5, -1, -0.5, 1, 0}, {0, 1, -1.5, -2, 1.5, 1},
};
static const double G4[6][3] = {
    {1, 0, 0},
    {1.0 / 3, 1.0 / 3, 1.0 / 3},
    {-1.0 / 3, 1.0 / 3, -1.0 / 3},
    {-16.0 / 15, -8.0 / 15, -4.0 / 15},
    {1.0 / 15, -2.0 / 15, 4.0 / 15},
    {0, 0, 1},
};
static const double AT4[4][6] = {
    {1, 1, 1, 1, 1, 0}, {0, 1, -1, 0.5, -2, 0}, {0, 1, 1, 0.25, 4, 0}, {0, 1, -1, 0.125, -8, 1},
};
/* F(2x2, 3x3): points 0, 1, -1, infinity. */
static const double BT2[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
static const double G2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
static const double AT2[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};

typedef struct matrices {
    int m, a;
    double bt[MAX_A][MAX_A], g[MAX_A][3], at[MAX_A][MAX_A];
} matrices;

static matrices matrices_for(int m)
{
    matrices x;
    memset(&x, 0, sizeof x);
    x.m = m;
    x.a = m + 2;
    const double *bt = m == 4 ? &BT4[0][0] : &BT2[0][0], *g = m == 4 ? &G4[0][0] : &G2[0][0];
    const double *at = m == 4 ? &AT4[0][0] : &AT2[0][0];
    for (int i = 0; i < x.a; i++) {
        for (int j = 0; j < x.a; j++)
            x.bt[i][j] = bt[i * x.a + j];
        for (int j = 0; j < 3; j++)
            x.g[i][j] = g[i * 3 + j];
    }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < x.a; j++)
            x.at[i][j] = at[i * x.a + j];
    return x;
}

/* ---- the plan (compiler/target/winograd.c) ----------------------------------------- */

typedef kiln_winograd_plan plan;


int kiln_cg_winograd_used(const kiln_cg_module *m, kiln_id node)
{
    if (!m || !m->g || !m->impl || node >= m->g->n_nodes)
        return 0;
    return m->impl[node] == KILN_IMPL_WINOGRAD4 ? 4 : m->impl[node] == KILN_IMPL_WINOGRAD2 ? 2 : 0;
}

static int64_t slots(const kiln_node *n) { return kiln_target_winograd_slots(n); }

/* In how many parts a block's filters may be split: the schedule's threads
 * when the layer has fewer blocks per item than threads and each part keeps
 * at least two row tiles of filters; else 1. */
static int64_t filter_parts(const kiln_cg *cg, const plan *p)
{
    const int64_t threads = cg->g->sched_threads > 0 ? (int64_t)cg->g->sched_threads : 1;
    if (threads < 2 || p->blocks >= threads || p->F < threads * 2 * kiln_cg_gemm_f32(cg)->mr)
        return 1;
    return threads;
}


/* ---- emission helpers ------------------------------------------------------------ */

static V splat_i32(kiln_cg *cg, V scalar, int n)
{
    V v = LLVMBuildInsertElement(cg->u->b, LLVMGetPoison(LLVMVectorType(cg->u->t_i32, (unsigned)n)), scalar,
                                 kiln_cg_i32(cg, 0), "");
    V zero[MAX_LANES] = {0};
    for (int k = 0; k < n; k++)
        zero[k] = kiln_cg_i32(cg, 0);
    return LLVMBuildShuffleVector(cg->u->b, v, LLVMGetPoison(LLVMTypeOf(v)), LLVMConstVector(zero, (unsigned)n), "");
}


/* sum_k coef[k] x[k] (coef[k] == 0 skipped, +-1 as add/sub); x are vectors. */
static V lincomb(kiln_cg *cg, const double *coef, const V *x, int n)
{
    V acc = NULL;
    for (int k = 0; k < n; k++) {
        double c = coef[k];
        if (c == 0)
            continue;
        if (!acc) {
            acc = c == 1 ? x[k] : LLVMBuildFMul(cg->u->b, x[k], kiln_cg_fconst(cg, x[k], c), "");
        } else if (c == 1) {
            acc = LLVMBuildFAdd(cg->u->b, acc, x[k], "");
        } else if (c == -1) {
            acc = LLVMBuildFSub(cg->u->b, acc, x[k], "");
        } else {
            acc = kiln_cg_fma(cg, x[k], kiln_cg_fconst(cg, x[k], c), acc);
        }
    }
    return acc ? acc : LLVMConstNull(cg->u->t_vf);
}

/* The n vectors as one vector of n' * vl lanes (n' the next power of two;
 * the lanes past n * vl are poison). */
static V concat(kiln_cg *cg, const V *v, int n)
{
    V cur[16];
    int count = n, width = cg->vl;
    for (int i = 0; i < n; i++)
        cur[i] = v[i];
    while (count > 1) {
        V idx[2 * MAX_LANES * 8];
        for (int i = 0; i < 2 * width; i++)
            idx[i] = kiln_cg_i32(cg, i);
        V mask = LLVMConstVector(idx, (unsigned)(2 * width));
        int next = 0;
        for (int i = 0; i < count; i += 2) {
            V hi = i + 1 < count ? cur[i + 1] : LLVMGetPoison(LLVMTypeOf(cur[i]));
            cur[next++] = LLVMBuildShuffleVector(cg->u->b, cur[i], hi, mask, "cat");
        }
        count = next;
        width *= 2;
    }
    return cur[0];
}

/* vl lanes of `wide`: lane k is element first + step * k. */
static V pick(kiln_cg *cg, V wide, int first, int step)
{
    V idx[MAX_LANES];
    for (int k = 0; k < cg->vl; k++)
        idx[k] = kiln_cg_i32(cg, first + step * k);
    return LLVMBuildShuffleVector(cg->u->b, wide, LLVMGetPoison(LLVMTypeOf(wide)), LLVMConstVector(idx, (unsigned)cg->vl),
                                  "pick");
}

/* ---- the kernel ------------------------------------------------------------------- */

/* The filter transform: for each position xi, U[xi] = (G g G^T)[xi] as an
 * F x C matrix packed for the GEMM's A. Returns false on failure (reported). */
static bool pack_filters(kiln_cg *cg, const kiln_node *n, const plan *p, const matrices *mx, uint64_t *off,
                         size_t *per_xi)
{
    size_t count;
    float *w = kiln_cg_param_f32(cg, kiln_node_param(cg->g, n, "weight"), &count);
    if (!w)
        return false;
    const int a = mx->a;
    const int64_t FC = p->F * p->C;
    float *u = count == (size_t)(FC * 9) ? malloc((size_t)(a * a) * (size_t)FC * sizeof *u) : NULL;
    if (!u) {
        free(w);
        if (count != (size_t)(FC * 9))
            kiln_cg_fail(cg, KILN_ERR_INTERNAL, "weight size mismatch");
        else
            kiln_cg_fail(cg, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        return false;
    }
    for (int64_t fc = 0; fc < FC; fc++) {
        const float *gk = w + fc * 9;
        double t[MAX_A][3]; /* G g */
        for (int i = 0; i < a; i++)
            for (int j = 0; j < 3; j++)
                t[i][j] = mx->g[i][0] * gk[0 * 3 + j] + mx->g[i][1] * gk[1 * 3 + j] + mx->g[i][2] * gk[2 * 3 + j];
        for (int i = 0; i < a; i++)
            for (int j = 0; j < a; j++)
                u[(size_t)(i * a + j) * (size_t)FC + (size_t)fc] =
                    (float)(t[i][0] * mx->g[j][0] + t[i][1] * mx->g[j][1] + t[i][2] * mx->g[j][2]);
    }
    free(w);
    const kiln_cg_gemm_config *gc = kiln_cg_gemm_f32(cg);
    const size_t bytes = kiln_cg_packed_a_bytes(gc, p->F, p->C);
    *per_xi = bytes / kiln_dtype_size(gc->a);
    unsigned char *dst = kiln_cg_blob_alloc_bytes(cg, bytes * (size_t)(a * a), off);
    if (dst)
        for (int xi = 0; xi < a * a; xi++)
            kiln_cg_pack_a(gc, u + (size_t)xi * (size_t)FC, p->F, p->C, p->C, 1, kiln_cg_gemm_kc(gc, 0),
                           dst + (size_t)xi * bytes);
    free(u);
    return dst != NULL;
}

/* Step 1 for one block: rows [ty0, ty0 + nrows) of the item's tiles, one
 * channel at a time in two passes (few live vectors in each, so nothing
 * spills):
 *   along the rows: each input row the block reads (m * nrows + 2 of them)
 *     becomes a vectors per chunk of vl tiles, h[y][j] = (d_y B)[j], in a
 *     small stack buffer;
 *   down the columns: V[i][j] = (B^T h)[i][j] from a rows of h, stored in
 *     the GEMM's packed-B order. */
static void input_transform(kiln_cg *cg, const plan *p, const matrices *mx, V x_item, V vbuf, V hbuf, V ty0, V nrows)
{
    const int m = p->m, a = p->a, vl = cg->vl;
    const kiln_cg_gemm_config *gc = kiln_cg_gemm_f32(cg);
    const int64_t NR = (int64_t)gc->nr * gc->lanes, HW = p->H * p->W;
    const int nch = (vl * m + a - m + vl - 1) / vl; /* vectors per input row and chunk */
    const int64_t chunks = p->TWp / vl, h_row = (int64_t)a * p->TWp;
    /* The column masks of every chunk and piece, as i32 lanes (-1: inside
     * the input), computed once per block. */
    LLVMTypeRef t_vi32 = LLVMVectorType(cg->u->t_i32, (unsigned)vl);
    V mtab = kiln_cg_alloca(cg, LLVMArrayType2(t_vi32, (uint64_t)(chunks * nch)), "colmasks");
    {
        V idx[MAX_LANES];
        for (int k = 0; k < vl; k++)
            idx[k] = kiln_cg_i32(cg, k);
        V iota = LLVMConstVector(idx, (unsigned)vl);
        kiln_cg_loop lm;
        V qm = kiln_cg_for_begin(cg, &lm, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, chunks), kiln_cg_i64(cg, 1));
        V xm = LLVMBuildSub(cg->u->b, kiln_cg_imul(cg, qm, (int64_t)vl * m), kiln_cg_i64(cg, p->pl), "");
        for (int s = 0; s < nch; s++) {
            V start = LLVMBuildTrunc(cg->u->b, kiln_cg_iadd(cg, xm, kiln_cg_i64(cg, (int64_t)s * vl)), cg->u->t_i32, "");
            V ix = LLVMBuildAdd(cg->u->b, iota, splat_i32(cg, start, vl), "");
            V in = LLVMBuildAnd(cg->u->b, LLVMBuildICmp(cg->u->b, LLVMIntSGE, ix, LLVMConstNull(t_vi32), ""),
                                LLVMBuildICmp(cg->u->b, LLVMIntSLT, ix, splat_i32(cg, kiln_cg_i32(cg, (int32_t)p->W), vl), ""), "");
            V at = LLVMBuildGEP2(cg->u->b, t_vi32, mtab, (V[]){kiln_cg_iadd(cg, kiln_cg_imul(cg, qm, nch), kiln_cg_i64(cg, s))}, 1, "");
            LLVMSetAlignment(LLVMBuildStore(cg->u->b, LLVMBuildSExt(cg->u->b, in, t_vi32, ""), at), 4);
        }
        kiln_cg_for_end(cg, &lm);
    }
    kiln_cg_loop lc, ly, lq, lr, lq2;
    V c = kiln_cg_for_begin(cg, &lc, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, p->C), kiln_cg_i64(cg, 1));
    V plane = kiln_cg_gep(cg, x_item, kiln_cg_imul(cg, c, HW));
    /* along the rows */
    V y0 = LLVMBuildSub(cg->u->b, kiln_cg_imul(cg, ty0, m), kiln_cg_i64(cg, p->pt), "y0");
    V ny = kiln_cg_iadd(cg, kiln_cg_imul(cg, nrows, m), kiln_cg_i64(cg, a - m));
    V yr = kiln_cg_for_begin(cg, &ly, kiln_cg_i64(cg, 0), ny, kiln_cg_i64(cg, 1));
    V iy = kiln_cg_iadd(cg, y0, yr);
    V row_ok = LLVMBuildAnd(cg->u->b, LLVMBuildICmp(cg->u->b, LLVMIntSGE, iy, kiln_cg_i64(cg, 0), ""),
                            LLVMBuildICmp(cg->u->b, LLVMIntSLT, iy, kiln_cg_i64(cg, p->H), ""), "row_ok");
    V hrow = kiln_cg_gep(cg, hbuf, kiln_cg_imul(cg, yr, h_row));
    kiln_cg_if rows_in;
    kiln_cg_if_begin(cg, &rows_in, row_ok);
    V q = kiln_cg_for_begin(cg, &lq, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, chunks), kiln_cg_i64(cg, 1));
    V x0 = LLVMBuildSub(cg->u->b, kiln_cg_imul(cg, q, (int64_t)vl * m), kiln_cg_i64(cg, p->pl), "x0"); /* lane 0's window */
    V src = kiln_cg_gep(cg, plane, kiln_cg_iadd(cg, kiln_cg_imul(cg, iy, p->W), x0));
    V piece[8];
    for (int s = 0; s < nch; s++) {
        V at = LLVMBuildGEP2(cg->u->b, t_vi32, mtab, (V[]){kiln_cg_iadd(cg, kiln_cg_imul(cg, q, nch), kiln_cg_i64(cg, s))}, 1, "");
        V mv = LLVMBuildLoad2(cg->u->b, t_vi32, at, "");
        LLVMSetAlignment(mv, 4);
        V in = LLVMBuildICmp(cg->u->b, LLVMIntSLT, mv, LLVMConstNull(t_vi32), "");
        piece[s] = kiln_cg_vload(cg, src, kiln_cg_i64(cg, (int64_t)s * vl), in, 0.0);
    }
    V wide = concat(cg, piece, nch);
    V d[MAX_A];
    for (int u = 0; u < a; u++)
        d[u] = pick(cg, wide, u, m);
    V hq = kiln_cg_gep(cg, hrow, kiln_cg_imul(cg, q, vl));
    for (int j = 0; j < a; j++)
        kiln_cg_vstore(cg, lincomb(cg, mx->bt[j], d, a), hq, kiln_cg_i64(cg, (int64_t)j * p->TWp), NULL);
    kiln_cg_for_end(cg, &lq);
    kiln_cg_if_else(cg, &rows_in);
    { /* a row in the padding: zeros */
        kiln_cg_loop lz;
        V z = kiln_cg_for_begin(cg, &lz, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, h_row), kiln_cg_i64(cg, vl));
        kiln_cg_vstore(cg, LLVMConstNull(cg->u->t_vf), hrow, z, NULL);
        kiln_cg_for_end(cg, &lz);
    }
    kiln_cg_if_end(cg, &rows_in);
    kiln_cg_for_end(cg, &ly);
    /* down the columns */
    V rr = kiln_cg_for_begin(cg, &lr, kiln_cg_i64(cg, 0), nrows, kiln_cg_i64(cg, 1));
    V h0 = kiln_cg_gep(cg, hbuf, kiln_cg_imul(cg, rr, (int64_t)m * h_row));
    V q2 = kiln_cg_for_begin(cg, &lq2, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, p->TWp), kiln_cg_i64(cg, vl));
    V jcol = kiln_cg_iadd(cg, kiln_cg_imul(cg, rr, p->TWc), q2); /* the block's column: its panel and lane */
    V lanes_kept = p->TWc < vl ? kiln_cg_tail_mask(cg, kiln_cg_i64(cg, p->TWc)) : NULL;
    V dst = kiln_cg_gep(cg, vbuf, kiln_cg_iadd(cg, kiln_cg_iadd(cg, kiln_cg_imul(cg, kiln_cg_udiv(cg, jcol, NR), NR * p->C), kiln_cg_urem(cg, jcol, NR)),
                                        kiln_cg_imul(cg, c, NR)));
    for (int j = 0; j < a; j++) {
        V h[MAX_A];
        for (int r = 0; r < a; r++)
            h[r] = kiln_cg_vload(cg, h0, kiln_cg_iadd(cg, q2, kiln_cg_i64(cg, (int64_t)r * h_row + (int64_t)j * p->TWp)), NULL, 0.0);
        for (int i = 0; i < a; i++)
            kiln_cg_vstore(cg, lincomb(cg, mx->bt[i], h, a), dst, kiln_cg_i64(cg, (int64_t)(i * a + j) * p->v_floats), lanes_kept);
    }
    kiln_cg_for_end(cg, &lq2);
    kiln_cg_for_end(cg, &lr);
    kiln_cg_for_end(cg, &lc);
}

/* Step 3 for one block: Y = A^T M A + bias, the epilogue, the store; one
 * output row of the tiles at a time (its a sums down the columns, then m
 * along the row), so few vectors are live. */
static void output_transform(kiln_cg *cg, const plan *p, const matrices *mx, V mbuf, V y_item, V item, V pbias,
                             V ty0, V nrows, V f0, V f1)
{
    const int m = p->m, a = p->a, vl = cg->vl;
    kiln_cg_loop lf, lr, lq;
    V f = kiln_cg_for_begin(cg, &lf, f0, f1, kiln_cg_i64(cg, 1));
    V offs[KILN_CG_MAX_EPI];
    const kiln_cg_epilogue *epi = cg->f.epi && cg->f.epi->n > 0 ? cg->f.epi : NULL;
    if (epi)
        kiln_cg_epi_row(cg, epi, kiln_cg_iadd(cg, kiln_cg_imul(cg, item, p->F), f), offs);
    V bias = pbias ? kiln_cg_splat(cg, kiln_cg_load(cg, pbias, f)) : NULL;
    V y_plane = kiln_cg_gep(cg, y_item, kiln_cg_imul(cg, f, p->OH * p->OW));
    V m_f = kiln_cg_gep(cg, mbuf, kiln_cg_imul(cg, f, p->cols));
    V rr = kiln_cg_for_begin(cg, &lr, kiln_cg_i64(cg, 0), nrows, kiln_cg_i64(cg, 1));
    V ty = kiln_cg_iadd(cg, ty0, rr);
    V q = kiln_cg_for_begin(cg, &lq, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, p->TWp), kiln_cg_i64(cg, vl));
    V j = kiln_cg_iadd(cg, kiln_cg_imul(cg, rr, p->TWc), q);
    V x0 = kiln_cg_imul(cg, q, m); /* output column of lane 0's tile */
    for (int i = 0; i < m; i++) {
        V oy = kiln_cg_iadd(cg, kiln_cg_imul(cg, ty, m), kiln_cg_i64(cg, i));
        kiln_cg_if in;
        kiln_cg_if_begin(cg, &in, LLVMBuildICmp(cg->u->b, LLVMIntSLT, oy, kiln_cg_i64(cg, p->OH), "row_in"));
        V srow[MAX_A]; /* (A^T M)[i][u] */
        for (int u = 0; u < a; u++) {
            V col[MAX_A];
            for (int r = 0; r < a; r++)
                col[r] = mx->at[i][r] == 0 ? NULL
                                           : kiln_cg_vload(cg, m_f, kiln_cg_iadd(cg, j, kiln_cg_i64(cg, (int64_t)(r * a + u) * p->m_floats)),
                                                           NULL, 0.0);
            srow[u] = lincomb(cg, mx->at[i], col, a);
        }
        V y[MAX_A];
        for (int k = 0; k < m; k++) {
            y[k] = lincomb(cg, mx->at[k], srow, a);
            if (bias)
                y[k] = LLVMBuildFAdd(cg->u->b, y[k], bias, "");
        }
        /* Interleave: output column x0 + lane * m + k holds y[k][lane]. */
        V wide = concat(cg, y, m);
        for (int piece = 0; piece < m; piece++) {
            V idx[MAX_LANES];
            for (int e = 0; e < vl; e++) {
                int pos = piece * vl + e; /* = lane * m + k */
                idx[e] = kiln_cg_i32(cg, (pos % m) * vl + pos / m);
            }
            V v = LLVMBuildShuffleVector(cg->u->b, wide, LLVMGetPoison(LLVMTypeOf(wide)),
                                         LLVMConstVector(idx, (unsigned)vl), "row");
            V x = kiln_cg_iadd(cg, x0, kiln_cg_i64(cg, (int64_t)piece * vl));
            V mask = kiln_cg_tail_mask(cg, LLVMBuildSub(cg->u->b, kiln_cg_i64(cg, p->OW), x, ""));
            V col = kiln_cg_iadd(cg, kiln_cg_imul(cg, oy, p->OW), x);
            if (epi)
                v = kiln_cg_epi_apply(cg, epi, v, offs, col, mask);
            kiln_cg_vstore(cg, v, y_plane, col, mask);
        }
        kiln_cg_if_end(cg, &in);
    }
    kiln_cg_for_end(cg, &lq);
    kiln_cg_for_end(cg, &lr);
    kiln_cg_for_end(cg, &lf);
}

kiln_status kiln_cg_emit_conv2d_winograd(kiln_cg *cg, const kiln_node *n, int m)
{
    plan p;
    if ((m != 2 && m != 4) || !kiln_target_winograd_eligible(cg->g, n) || !kiln_target_winograd_plan(cg->target, cg->g, n, m, &p))
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "conv2d cannot take Winograd F(%dx%d, 3x3)", m, m);
    if (cg->vl > MAX_LANES)
        return kiln_cg_fail(cg, KILN_ERR_UNSUPPORTED, "vectors wider than %d lanes", MAX_LANES);
    const matrices mx = matrices_for(m);
    const int a = mx.a;
    kiln_id bid = kiln_node_param(cg->g, n, "bias");
    uint64_t u_off, b_off = 0;
    size_t per_xi;
    if (bid != KILN_NO_ID && kiln_cg_blob_param(cg, bid, &b_off) != KILN_OK)
        return cg->status;
    if (!pack_filters(cg, n, &p, &mx, &u_off, &per_xi))
        return cg->status;
    const kiln_shape *xs = &kiln_graph_value(cg->g, n->inputs[0])->type.shape;
    const int64_t K = slots(n), items_fixed = xs->batched ? 0 : xs->dims[0];
    char kernel[128], epi[64];
    const kiln_cg_gemm_config *gc = kiln_cg_gemm_f32(cg);
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, kiln_cg_node_dtype(cg, n), KILN_CG_ON_TARGET, gc->mr, gc->nr * gc->lanes,
                        "conv2d_3x3%s%s_winograd%d", bid != KILN_NO_ID ? "_bias" : "",
                        kiln_cg_epi_name(cg->f.epi && cg->f.epi->n > 0 ? cg->f.epi : NULL, epi, sizeof epi), m);
    kiln_cg_task_begin(cg, kernel, n);
    kiln_id out = cg->f.epi && cg->f.epi->n > 0 ? cg->f.epi->out : n->output;
    V px = kiln_cg_value_ptr(cg, n->inputs[0]), py = kiln_cg_value_ptr(cg, out);
    V pu = kiln_cg_weights_ptr(cg, u_off), pbias = bid != KILN_NO_ID ? kiln_cg_weights_ptr(cg, b_off) : NULL;
    if (cg->f.epi && cg->f.epi->n > 0)
        kiln_cg_epi_begin(cg, cg->f.epi);
    V slot = kiln_cg_gep(cg, kiln_cg_scratch_ptr(cg), kiln_cg_imul(cg, cg->f.arg_index, p.slot_floats));
    LLVMTypeRef h_t = LLVMArrayType2(cg->u->t_f32, (uint64_t)p.h_floats);
    V hbuf = kiln_cg_alloca(cg, h_t, "hrows");
    LLVMSetAlignment(hbuf, 64);
    V vbuf = slot, mbuf = kiln_cg_gep(cg, slot, kiln_cg_i64(cg, (int64_t)a * a * p.v_floats));
    V items = xs->batched ? kiln_cg_batch(cg) : kiln_cg_i64(cg, items_fixed);
    V total = kiln_cg_imul(cg, items, p.blocks);
    /* When the step has more tasks than blocks (batch 1 on small maps: one
     * block per item), each block's filters are split in FP parts of whole
     * row tiles, one task each; every part redoes the block's input
     * transform (8/C of its GEMMs' work, by the estimate above). */
    const int64_t FP = filter_parts(cg, &p);
    V fp = kiln_cg_i64(cg, 1), fsize = kiln_cg_i64(cg, p.F);
    if (FP > 1) {
        V split = LLVMBuildICmp(cg->u->b, LLVMIntUGT, cg->f.arg_count, total, "split");
        const int64_t mr = gc->mr, part = ((p.F + FP - 1) / FP + mr - 1) / mr * mr;
        fp = LLVMBuildSelect(cg->u->b, split, kiln_cg_i64(cg, FP), fp, "");
        fsize = LLVMBuildSelect(cg->u->b, split, kiln_cg_i64(cg, part), fsize, "");
    }
    kiln_cg_loop lb, lx;
    V unit = kiln_cg_for_begin(cg, &lb, cg->f.arg_index, LLVMBuildMul(cg->u->b, total, fp, ""), cg->f.arg_count);
    V blk = LLVMBuildUDiv(cg->u->b, unit, fp, "");
    V f0 = LLVMBuildMul(cg->u->b, LLVMBuildURem(cg->u->b, unit, fp, ""), fsize, "");
    V f1 = kiln_cg_smin(cg, LLVMBuildAdd(cg->u->b, f0, fsize, ""), kiln_cg_i64(cg, p.F));
    kiln_cg_if some;
    kiln_cg_if_begin(cg, &some, LLVMBuildICmp(cg->u->b, LLVMIntSLT, f0, f1, "filters"));
    V item = kiln_cg_udiv(cg, blk, p.blocks);
    V ty0 = kiln_cg_imul(cg, kiln_cg_urem(cg, blk, p.blocks), p.rows);
    V nrows = kiln_cg_smin(cg, kiln_cg_i64(cg, p.rows), LLVMBuildSub(cg->u->b, kiln_cg_i64(cg, p.TH), ty0, ""));
    V x_item = kiln_cg_gep(cg, px, kiln_cg_imul(cg, item, p.C * p.H * p.W));
    V y_item = kiln_cg_gep(cg, py, kiln_cg_imul(cg, item, p.F * p.OH * p.OW));

    input_transform(cg, &p, &mx, x_item, vbuf, hbuf, ty0, nrows);

    V xi = kiln_cg_for_begin(cg, &lx, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, (int64_t)a * a), kiln_cg_i64(cg, 1));
    kiln_cg_gemm gm = {
        /* U's panels of mr filters, from filter f0 (a multiple of mr) */
        .a = kiln_cg_gep(cg, pu, kiln_cg_imul(cg, xi, (int64_t)per_xi)),
        .a_row0 = f0,
        .a_rows = (int64_t)per_xi / p.C,
        .b = kiln_cg_gep(cg, vbuf, kiln_cg_imul(cg, xi, p.v_floats)),
        .c = kiln_cg_gep(cg, mbuf, kiln_cg_iadd(cg, kiln_cg_imul(cg, xi, p.m_floats), kiln_cg_imul(cg, f0, p.cols))),
        .a_packed = true,
        .b_packed = true,
        .lda = 0,
        .ldb = 0,
        .ldc = p.cols,
        .m = LLVMBuildSub(cg->u->b, f1, f0, ""),
        .n0 = kiln_cg_i64(cg, 0),
        .n1 = kiln_cg_imul(cg, nrows, p.TWc),
        .k = p.C,
        .n_panels_hint = p.panels,
    };
    kiln_cg_emit_gemm(cg, &gm);
    kiln_cg_for_end(cg, &lx);

    output_transform(cg, &p, &mx, mbuf, y_item, item, pbias, ty0, nrows, f0, f1);
    kiln_cg_if_end(cg, &some);
    kiln_cg_for_end(cg, &lb);
    /* One task per block, at most K (the scratch slots): at batch 1 a layer
     * may have fewer blocks than slots, and empty tasks would let the pool
     * hand every block to one thread in one chunk. */
    kiln_cg_task_end(cg, (kiln_cg_count){xs->batched ? 0 : items_fixed * p.blocks * FP, xs->batched ? p.blocks * FP : 0,
                                         1, 1, K});
    return cg->status;
}
