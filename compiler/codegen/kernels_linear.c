/* compiler/codegen/kernels_linear.c: the GEMM emitter and the ops built on
 * it (dense, matmul; conv2d uses it too).
 *
 * GEMM: C[i, j] = sum_k A[i, k] B[k, j] (+ bias), vectorized along j. The
 * register tile is gemm_mr rows x gemm_nr vectors (from the target table):
 * for each k, gemm_nr vectors of B are loaded once and multiplied with
 * gemm_mr broadcast scalars of A into gemm_mr * gemm_nr accumulators (fused
 * multiply-add). Row remainders use a 1-row tile, column remainders single
 * vectors and one masked vector. The accumulators are stack slots that
 * LLVM's SROA turns into registers; the sum over k runs in blocks of 64
 * added to C.
 *
 * dense: y = x W^T + b. W is packed at compile time as W^T ([in, units],
 * row-major) so that B rows are contiguous; bias per column.
 * matmul: the leading axes broadcast (strides 0), one GEMM per matrix, or
 * with transpose_b on a run-time B (attention scores) a dot-product kernel
 * vectorized along k; a constant B is transposed at compile time instead.
 *
 * Tasks: (matrix, row block, column block), so the same split serves batch 1
 * (column blocks) and large batches (row blocks). */
#include "cg.h"

#include <stdio.h>
#include <stdlib.h>

typedef LLVMValueRef V;

#define MAX_MR 8
#define MAX_NR 4

static V mul64(kiln_cg *cg, V a, int64_t b) { return LLVMBuildMul(cg->b, a, kiln_cg_i64(cg, b), ""); }
static V add64(kiln_cg *cg, V a, V b) { return LLVMBuildAdd(cg->b, a, b, ""); }

/* One register tile: rows [i, i + mr), vectors at columns j, j + vl, ...
 * (nr of them); `mask` applies to the last vector (NULL = full). The sum
 * over k runs in blocks of KBLOCK: each block accumulates from zero in
 * registers and is then added to C (the first block stores acc + bias).
 * This keeps the f32 rounding error of long sums (k = 4608 in a 3x3x512
 * convolution) about sqrt(k / KBLOCK) times smaller than one running sum,
 * without holding a second set of accumulators in registers. */
#define KBLOCK 64

static void tile_store(kiln_cg *cg, const kiln_cg_gemm *p, V i, int mr, V j, int nr, V mask, V acc[][MAX_NR],
                       bool add_to_c)
{
    for (int r = 0; r < mr; r++) {
        V row = add64(cg, i, kiln_cg_i64(cg, r));
        V bias_row = NULL;
        if (!add_to_c && p->bias && p->bias_per_row)
            bias_row = kiln_cg_splat(cg, kiln_cg_load(cg, p->bias, row));
        V crow = kiln_cg_gep(cg, p->c, mul64(cg, row, p->ldc));
        for (int v = 0; v < nr; v++) {
            V col = add64(cg, j, kiln_cg_i64(cg, (int64_t)v * cg->vl));
            V m = v == nr - 1 ? mask : NULL;
            V val = LLVMBuildLoad2(cg->b, cg->t_vf, acc[r][v], "");
            if (add_to_c)
                val = LLVMBuildFAdd(cg->b, kiln_cg_vload(cg, crow, col, m, 0.0), val, "");
            else if (p->bias)
                val = LLVMBuildFAdd(cg->b, val, bias_row ? bias_row : kiln_cg_vload(cg, p->bias, col, m, 0.0), "");
            kiln_cg_vstore(cg, val, crow, col, m);
        }
    }
}

static void gemm_tile(kiln_cg *cg, const kiln_cg_gemm *p, V i, int mr, V j, int nr, V mask)
{
    V acc[MAX_MR][MAX_NR];
    const bool blocked = p->k > KBLOCK;
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nr; v++)
            acc[r][v] = kiln_cg_alloca(cg, cg->t_vf, "acc");
    V arow[MAX_MR];
    for (int r = 0; r < mr; r++)
        arow[r] = kiln_cg_gep(cg, p->a, mul64(cg, add64(cg, i, kiln_cg_i64(cg, r)), p->lda));
    kiln_cg_loop kbl, kl;
    V k0 = kiln_cg_i64(cg, 0), k1 = kiln_cg_i64(cg, p->k);
    if (blocked) {
        k0 = kiln_cg_for_begin(cg, &kbl, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, p->k), kiln_cg_i64(cg, KBLOCK));
        k1 = kiln_cg_smin(cg, add64(cg, k0, kiln_cg_i64(cg, KBLOCK)), kiln_cg_i64(cg, p->k));
    }
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nr; v++)
            LLVMBuildStore(cg->b, LLVMConstNull(cg->t_vf), acc[r][v]);
    V k = kiln_cg_for_begin(cg, &kl, k0, k1, kiln_cg_i64(cg, 1));
    V brow = kiln_cg_gep(cg, p->b, mul64(cg, k, p->ldb));
    V bv[MAX_NR];
    for (int v = 0; v < nr; v++)
        bv[v] = kiln_cg_vload(cg, brow, add64(cg, j, kiln_cg_i64(cg, (int64_t)v * cg->vl)), v == nr - 1 ? mask : NULL,
                              0.0);
    for (int r = 0; r < mr; r++) {
        V av = kiln_cg_splat(cg, kiln_cg_load(cg, arow[r], k));
        for (int v = 0; v < nr; v++) {
            V cur = LLVMBuildLoad2(cg->b, cg->t_vf, acc[r][v], "");
            LLVMBuildStore(cg->b, kiln_cg_fma(cg, av, bv[v], cur), acc[r][v]);
        }
    }
    kiln_cg_for_end(cg, &kl);
    if (blocked) {
        kiln_cg_if f;
        kiln_cg_if_begin(cg, &f, LLVMBuildICmp(cg->b, LLVMIntEQ, k0, kiln_cg_i64(cg, 0), ""));
        tile_store(cg, p, i, mr, j, nr, mask, acc, false);
        kiln_cg_if_else(cg, &f);
        tile_store(cg, p, i, mr, j, nr, mask, acc, true);
        kiln_cg_if_end(cg, &f);
        kiln_cg_for_end(cg, &kbl);
    } else {
        tile_store(cg, p, i, mr, j, nr, mask, acc, false);
    }
}

/* Rows [i, i + mr) across the column range. */
static void gemm_rows(kiln_cg *cg, const kiln_cg_gemm *p, V i, int mr)
{
    const int nr = cg->target->gemm_nr;
    const int64_t w = (int64_t)nr * cg->vl;
    V span = LLVMBuildSub(cg->b, p->n1, p->n0, "");
    V tiles_end = add64(cg, p->n0, mul64(cg, kiln_cg_udiv(cg, span, w), w));
    V vecs_end = add64(cg, p->n0, mul64(cg, kiln_cg_udiv(cg, span, cg->vl), cg->vl));
    kiln_cg_loop l;
    V j = kiln_cg_for_begin(cg, &l, p->n0, tiles_end, kiln_cg_i64(cg, w));
    gemm_tile(cg, p, i, mr, j, nr, NULL);
    kiln_cg_for_end(cg, &l);
    if (nr > 1) {
        j = kiln_cg_for_begin(cg, &l, tiles_end, vecs_end, kiln_cg_i64(cg, cg->vl));
        gemm_tile(cg, p, i, mr, j, 1, NULL);
        kiln_cg_for_end(cg, &l);
    }
    kiln_cg_if f;
    kiln_cg_if_begin(cg, &f, LLVMBuildICmp(cg->b, LLVMIntSLT, vecs_end, p->n1, ""));
    gemm_tile(cg, p, i, mr, vecs_end, 1, kiln_cg_tail_mask(cg, LLVMBuildSub(cg->b, p->n1, vecs_end, "")));
    kiln_cg_if_end(cg, &f);
}

void kiln_cg_emit_gemm(kiln_cg *cg, const kiln_cg_gemm *p)
{
    int mr = cg->target->gemm_mr;
    if (mr > MAX_MR)
        mr = MAX_MR;
    V full = mul64(cg, kiln_cg_udiv(cg, p->m, mr), mr);
    kiln_cg_loop l;
    V i = kiln_cg_for_begin(cg, &l, kiln_cg_i64(cg, 0), full, kiln_cg_i64(cg, mr));
    gemm_rows(cg, p, i, mr);
    kiln_cg_for_end(cg, &l);
    i = kiln_cg_for_begin(cg, &l, full, p->m, kiln_cg_i64(cg, 1));
    gemm_rows(cg, p, i, 1);
    kiln_cg_for_end(cg, &l);
}

/* Row and column blocks of a task. */
typedef struct blocking {
    int64_t mb, nb, n_col_blocks;
} blocking;

static blocking block_sizes(const kiln_cg *cg, int64_t n)
{
    blocking bl;
    int mr = cg->target->gemm_mr > MAX_MR ? MAX_MR : cg->target->gemm_mr;
    bl.mb = (int64_t)mr * 8;
    bl.nb = (int64_t)cg->target->gemm_nr * cg->vl * 4;
    bl.n_col_blocks = (n + bl.nb - 1) / bl.nb;
    return bl;
}

/* ---- dense ---------------------------------------------------------------------- */

kiln_status kiln_cg_emit_dense(kiln_cg *cg, const kiln_node *n)
{
    const kiln_value *x = kiln_graph_value(cg->g, n->inputs[0]);
    kiln_id wid = kiln_node_param(cg->g, n, "weight"), bid = kiln_node_param(cg->g, n, "bias");
    if (wid == KILN_NO_ID)
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "dense without a weight");
    const kiln_shape *xs = &x->type.shape;
    const int64_t K = xs->dims[xs->rank - 1];
    const int64_t N = kiln_graph_value(cg->g, n->output)->type.shape.dims[xs->rank - 1];

    /* Pack W [N, K] as W^T [K, N]: the layout the kernel reads. */
    size_t count;
    float *w = kiln_cg_param_f32(cg, wid, &count);
    if (!w)
        return cg->status;
    if (count != (size_t)(N * K)) {
        free(w);
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "weight has %zu elements, not %lld", count, (long long)(N * K));
    }
    uint64_t w_off, b_off = 0;
    float *packed = kiln_cg_blob_alloc(cg, count, &w_off);
    if (packed)
        for (int64_t r = 0; r < N; r++)
            for (int64_t k = 0; k < K; k++)
                packed[k * N + r] = w[r * K + k];
    free(w);
    if (!packed || (bid != KILN_NO_ID && kiln_cg_blob_param(cg, bid, &b_off) != KILN_OK))
        return cg->status;

    int64_t rows = 1; /* per batch item, or in total */
    for (int i = xs->batched ? 1 : 0; i < xs->rank - 1; i++)
        rows *= xs->dims[i];
    blocking bl = block_sizes(cg, N);

    char kernel[96];
    snprintf(kernel, sizeof kernel, "f32_dense%s_%s_%dx%d", bid != KILN_NO_ID ? "_bias" : "", cg->target->name,
             cg->target->gemm_mr, cg->target->gemm_nr * cg->vl);
    kiln_cg_task_begin(cg, kernel, n);
    V m_total = kiln_cg_i64(cg, rows);
    if (xs->batched)
        m_total = LLVMBuildMul(cg->b, m_total, kiln_cg_batch(cg), "m");
    V cb = kiln_cg_urem(cg, cg->arg_index, bl.n_col_blocks), rb = kiln_cg_udiv(cg, cg->arg_index, bl.n_col_blocks);
    V r0 = mul64(cg, rb, bl.mb);
    V r1 = kiln_cg_smin(cg, add64(cg, r0, kiln_cg_i64(cg, bl.mb)), m_total);
    V c0 = mul64(cg, cb, bl.nb);
    V c1 = kiln_cg_smin(cg, add64(cg, c0, kiln_cg_i64(cg, bl.nb)), kiln_cg_i64(cg, N));
    kiln_cg_gemm p = {
        .a = kiln_cg_gep(cg, kiln_cg_value_ptr(cg, n->inputs[0]), mul64(cg, r0, K)),
        .b = kiln_cg_weights_ptr(cg, w_off),
        .c = kiln_cg_gep(cg, kiln_cg_value_ptr(cg, n->output), mul64(cg, r0, N)),
        .m = LLVMBuildSub(cg->b, r1, r0, ""),
        .n0 = c0,
        .n1 = c1,
        .k = K,
        .lda = K,
        .ldb = N,
        .ldc = N,
        .bias = bid != KILN_NO_ID ? kiln_cg_weights_ptr(cg, b_off) : NULL,
        .bias_per_row = false,
    };
    kiln_cg_emit_gemm(cg, &p);
    kiln_cg_task_end(cg, (kiln_cg_count){xs->batched ? 0 : rows, xs->batched ? rows : 0, bl.mb, bl.n_col_blocks});
    return cg->status;
}

/* ---- matmul ---------------------------------------------------------------------- */

typedef struct dot_arg {
    V a, b, acc;
} dot_arg;

static void dot_body(kiln_cg *cg, V k, V mask, void *p)
{
    dot_arg *d = p;
    V x = kiln_cg_vload(cg, d->a, k, mask, 0.0), y = kiln_cg_vload(cg, d->b, k, mask, 0.0);
    V cur = LLVMBuildLoad2(cg->b, cg->t_vf, d->acc, "");
    LLVMBuildStore(cg->b, kiln_cg_fma(cg, x, y, cur), d->acc);
}

/* C[i, j] = dot(A row i, B row j) for rows [0, m) and columns [n0, n1). */
static void emit_dot(kiln_cg *cg, V a, V b, V c, V m, V n0, V n1, int64_t K, int64_t ldc)
{
    kiln_cg_loop li, lj;
    V i = kiln_cg_for_begin(cg, &li, kiln_cg_i64(cg, 0), m, kiln_cg_i64(cg, 1));
    V j = kiln_cg_for_begin(cg, &lj, n0, n1, kiln_cg_i64(cg, 1));
    dot_arg d = {kiln_cg_gep(cg, a, mul64(cg, i, K)), kiln_cg_gep(cg, b, mul64(cg, j, K)),
                 kiln_cg_alloca(cg, cg->t_vf, "dot")};
    LLVMBuildStore(cg->b, LLVMConstNull(cg->t_vf), d.acc);
    kiln_cg_vloop(cg, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, K), dot_body, &d);
    V sum = kiln_cg_reduce_add(cg, LLVMBuildLoad2(cg->b, cg->t_vf, d.acc, ""));
    kiln_cg_store(cg, sum, c, add64(cg, mul64(cg, i, ldc), j));
    kiln_cg_for_end(cg, &lj);
    kiln_cg_for_end(cg, &li);
}

kiln_status kiln_cg_emit_matmul(kiln_cg *cg, const kiln_node *n)
{
    const kiln_shape *as = &kiln_graph_value(cg->g, n->inputs[0])->type.shape;
    const kiln_shape *bs = &kiln_graph_value(cg->g, n->inputs[1])->type.shape;
    const bool tb = n->attrs[KILN_ATTR_TRANSPOSE_B].i != 0;
    const bool a_vec = as->rank == 1, b_vec = bs->rank == 1;
    const bool m_is_batch = as->batched && as->rank == 2; /* [batch, K] @ [K, N] */
    const int ra = a_vec ? 0 : as->rank - 2, rb = b_vec ? 0 : bs->rank - 2;
    const int64_t M = a_vec ? 1 : as->dims[as->rank - 2], K = as->dims[as->rank - 1];
    int64_t N;
    if (b_vec)
        N = 1;
    else
        N = tb ? bs->dims[bs->rank - 2] : bs->dims[bs->rank - 1];

    /* Leading axes, broadcast; strides count whole matrices; axis 0 may be
     * the batch (then it is the outermost and not a constant). */
    const int RL = ra > rb ? ra : rb;
    int64_t lead[KILN_MAX_RANK], sa[KILN_MAX_RANK], sb[KILN_MAX_RANK];
    bool lead_batch = false;
    int64_t st_a = 1, st_b = 1;
    for (int i = RL - 1; i >= 0; i--) {
        int ia = i - (RL - ra), ib = i - (RL - rb);
        bool ba = ia == 0 && as->batched, bb = ib == 0 && bs->batched;
        int64_t da = ia >= 0 ? (ba ? -1 : as->dims[ia]) : 1, db = ib >= 0 ? (bb ? -1 : bs->dims[ib]) : 1;
        if (ba || bb) {
            lead_batch = true;
            lead[i] = -1;
            sa[i] = ba ? st_a : 0;
            sb[i] = bb ? st_b : 0;
        } else {
            lead[i] = da == 1 ? db : da;
            sa[i] = da == 1 && db != 1 ? 0 : st_a;
            sb[i] = db == 1 && da != 1 ? 0 : st_b;
        }
        if (!ba)
            st_a *= da;
        if (!bb)
            st_b *= db;
    }
    int64_t mats_per_item = 1;
    for (int i = lead_batch ? 1 : 0; i < RL; i++)
        mats_per_item *= lead[i];

    /* B as the GEMM reads it: [K, N] row-major. transpose_b on a constant is
     * done here, once; on a run-time value the dot kernel reads [N, K]. */
    const kiln_cg_buffer *bbuf = &cg->layout->values[n->inputs[1]];
    bool b_const = bbuf->kind == KILN_CG_BUF_PARAM;
    bool use_dot = (tb && !b_const) || b_vec;
    bool packed_b = tb && b_const && !b_vec;
    uint64_t b_off = 0;
    if (packed_b) {
        size_t count;
        float *w = kiln_cg_param_f32(cg, bbuf->index, &count);
        if (!w)
            return cg->status;
        size_t mats = count / (size_t)(N * K);
        float *p = kiln_cg_blob_alloc(cg, count, &b_off);
        if (p)
            for (size_t q = 0; q < mats; q++)
                for (int64_t r = 0; r < N; r++)
                    for (int64_t k = 0; k < K; k++)
                        p[q * (size_t)(N * K) + (size_t)(k * N + r)] = w[q * (size_t)(N * K) + (size_t)(r * K + k)];
        free(w);
        if (!p)
            return cg->status;
    }

    blocking bl = block_sizes(cg, N);
    const int64_t m_blocks = m_is_batch ? 0 : (M + bl.mb - 1) / bl.mb;
    char kernel[96];
    snprintf(kernel, sizeof kernel, "f32_matmul%s_%s", use_dot ? "_dot" : "", cg->target->name);
    kiln_cg_task_begin(cg, kernel, n);
    V pa = kiln_cg_value_ptr(cg, n->inputs[0]);
    V pb = packed_b ? kiln_cg_weights_ptr(cg, b_off) : kiln_cg_value_ptr(cg, n->inputs[1]);
    V pc = kiln_cg_value_ptr(cg, n->output);

    V t = cg->arg_index;
    V cb = kiln_cg_urem(cg, t, bl.n_col_blocks);
    t = kiln_cg_udiv(cg, t, bl.n_col_blocks);
    V rbk, mat;
    V m_rows = m_is_batch ? kiln_cg_batch(cg) : kiln_cg_i64(cg, M);
    if (m_is_batch) {
        rbk = t;
        mat = kiln_cg_i64(cg, 0);
    } else {
        rbk = kiln_cg_urem(cg, t, m_blocks);
        mat = kiln_cg_udiv(cg, t, m_blocks);
    }
    /* Matrix index -> offsets of A and B (in matrices). */
    V oa = kiln_cg_i64(cg, 0), ob = kiln_cg_i64(cg, 0), rem = mat;
    for (int i = RL - 1; i >= 0; i--) {
        V idx = i == 0 ? rem : kiln_cg_urem(cg, rem, lead[i]);
        if (i > 0)
            rem = kiln_cg_udiv(cg, rem, lead[i]);
        oa = add64(cg, oa, mul64(cg, idx, sa[i]));
        ob = add64(cg, ob, mul64(cg, idx, sb[i]));
    }
    V r0 = mul64(cg, rbk, bl.mb);
    V r1 = kiln_cg_smin(cg, add64(cg, r0, kiln_cg_i64(cg, bl.mb)), m_rows);
    V c0 = mul64(cg, cb, bl.nb);
    V c1 = kiln_cg_smin(cg, add64(cg, c0, kiln_cg_i64(cg, bl.nb)), kiln_cg_i64(cg, N));
    V a = kiln_cg_gep(cg, pa, add64(cg, mul64(cg, oa, M * K), mul64(cg, r0, K)));
    V b = kiln_cg_gep(cg, pb, mul64(cg, ob, K * N));
    V cc = kiln_cg_gep(cg, pc, add64(cg, mul64(cg, mat, M * N), mul64(cg, r0, N)));
    V m = LLVMBuildSub(cg->b, r1, r0, "");
    if (use_dot) {
        emit_dot(cg, a, b, cc, m, c0, c1, K, N);
    } else {
        kiln_cg_gemm p = {.a = a, .b = b, .c = cc, .m = m, .n0 = c0, .n1 = c1, .k = K, .lda = K, .ldb = N, .ldc = N};
        kiln_cg_emit_gemm(cg, &p);
    }
    kiln_cg_count count;
    if (m_is_batch)
        count = (kiln_cg_count){0, 1, bl.mb, bl.n_col_blocks};
    else if (lead_batch)
        count = (kiln_cg_count){0, mats_per_item * m_blocks * bl.n_col_blocks, 1, 1};
    else
        count = (kiln_cg_count){mats_per_item * m_blocks * bl.n_col_blocks, 0, 1, 1};
    kiln_cg_task_end(cg, count);
    return cg->status;
}
