/* compiler/codegen/kernels/linear.c: dense and matmul on the packed GEMM
 * (kernels/gemm.c).
 *
 * dense: y = x W^T + b over the last axis. W [units, in] is packed at compile
 * time as B = W^T in panels of NR columns; x is A, row-major; bias per
 * column. Rows are the batch times the other leading axes. The layer's
 * precision picks the GEMM configuration: f16 weights (B in half), bf16
 * (B in pairs of k, x rounded to bf16 as the GEMM copies its rows), or int8
 * (B quantized to s8 in quads of k, x quantized to u8 as the GEMM copies
 * its rows, int32 sums, per-channel scale and bias in the epilogue).
 * matmul: the leading axes broadcast (strides 0), one GEMM per matrix. A
 * constant B is packed at compile time (transposed first with transpose_b);
 * a run-time B is read row-major; with transpose_b on a run-time B
 * (attention scores) or a 1-D B, a dot-product kernel vectorized along k.
 *
 * Tasks: (matrix, row block, column block), so the same split serves batch 1
 * (column blocks) and large batches (row blocks). The fusion group's members
 * (cg->f.epi) run in the GEMM's epilogue: the view's rows are the output's
 * leading axes, its columns the last axis. */
#include "compiler/codegen/cg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/quant.h"

typedef LLVMValueRef V;


/* The value a kernel stores: its fusion group's last member's output. */
static kiln_id stored_value(kiln_cg *cg, const kiln_node *n)
{
    return cg->f.epi && cg->f.epi->n > 0 ? cg->f.epi->out : n->output;
}

static const kiln_cg_epilogue *epilogue(kiln_cg *cg) { return cg->f.epi && cg->f.epi->n > 0 ? cg->f.epi : NULL; }

/* ---- the OpenBLAS candidate -------------------------------------------------------- */

bool kiln_cg_gemm_candidate(const kiln_graph *g, const kiln_node *n) { return kiln_target_gemm_candidate(g, n); }

/* The implementation the node was compiled with decides (compile.c: the
 * IR's, or the target's rules). */
kiln_cg_gemm_impl kiln_cg_gemm_pick(kiln_cg *cg, const kiln_node *n)
{
    if (kiln_cg_impl_of(cg, n) != KILN_IMPL_BLAS)
        return KILN_CG_GEMM_GENERATED;
    cg->uses_blas = true;
    return KILN_CG_GEMM_BLAS;
}

void kiln_cg_blas_blocking(const kiln_cg *cg, int64_t n, uint32_t tasks, int64_t *mb, int64_t *nb)
{
    (void)cg;
    int64_t want = tasks ? (int64_t)tasks : 4;
    int64_t cols = (n + want - 1) / want;
    cols = (cols + 63) / 64 * 64;
    *mb = (int64_t)1 << 30; /* every row in one call */
    *nb = cols < n ? cols : n;
}

typedef struct blas_epi_arg {
    const kiln_cg_blas_call *c;
    V crow, bias_row, col_bias;
    V *offs;
} blas_epi_arg;

static void blas_epi_body(kiln_cg *cg, V j, V mask, void *p)
{
    blas_epi_arg *a = p;
    const kiln_cg_blas_call *c = a->c;
    V val = kiln_cg_vload(cg, a->crow, j, mask, 0.0);
    if (a->bias_row)
        val = LLVMBuildFAdd(cg->u->b, val, a->bias_row, "");
    else if (c->bias)
        val = LLVMBuildFAdd(cg->u->b, val, kiln_cg_vload(cg, c->bias, j, mask, 0.0), "");
    if (c->epi)
        val = kiln_cg_epi_apply(cg, c->epi, val, a->offs, kiln_cg_iadd(cg, c->epi_col0, j), mask);
    kiln_cg_vstore(cg, val, a->crow, j, mask);
}

void kiln_cg_emit_blas(kiln_cg *cg, const kiln_cg_blas_call *c)
{
    LLVMTypeRef P = cg->u->t_ptr, I32 = cg->u->t_i32, I64 = cg->u->t_i64, F = cg->u->t_f32;
    LLVMTypeRef params[13] = {I32, I32, I64, I64, I64, F, P, I64, P, I64, F, P, I64};
    LLVMTypeRef ft = LLVMFunctionType(cg->u->t_void, params, 13, 0);
    V fn = LLVMGetNamedFunction(cg->u->mod, "kiln_rt_sgemm");
    if (!fn) {
        fn = LLVMAddFunction(cg->u->mod, "kiln_rt_sgemm", ft);
        LLVMSetLinkage(fn, LLVMExternalLinkage);
    }
    V args[13] = {kiln_cg_i32(cg, 0), kiln_cg_i32(cg, c->trans_b ? 1 : 0), c->m, c->n, kiln_cg_i64(cg, c->k),
                  kiln_cg_f32(cg, 1.0), c->a, kiln_cg_i64(cg, c->lda), c->b, kiln_cg_i64(cg, c->ldb),
                  kiln_cg_f32(cg, 0.0), c->c, kiln_cg_i64(cg, c->ldc)};
    LLVMBuildCall2(cg->u->b, ft, fn, args, 13, "");
    if (!c->bias && !c->epi)
        return;
    /* bias and the epilogue over the block, while it is in cache */
    if (c->epi)
        kiln_cg_epi_begin(cg, (kiln_cg_epilogue *)c->epi);
    kiln_cg_loop l;
    V r = kiln_cg_for_begin(cg, &l, kiln_cg_i64(cg, 0), c->m, kiln_cg_i64(cg, 1));
    V offs[KILN_CG_MAX_EPI];
    if (c->epi)
        kiln_cg_epi_row(cg, c->epi, kiln_cg_iadd(cg, c->epi_row0, r), offs);
    blas_epi_arg a = {c, kiln_cg_gep(cg, c->c, kiln_cg_imul(cg, r, c->ldc)),
                      c->bias && c->bias_per_row ? kiln_cg_splat(cg, kiln_cg_load(cg, c->bias, r)) : NULL, NULL, offs};
    kiln_cg_vloop(cg, kiln_cg_i64(cg, 0), c->n, blas_epi_body, &a);
    kiln_cg_for_end(cg, &l);
}

/* ---- dense ---------------------------------------------------------------------- */

/* An int8 layer's weights in the blob: W quantized and packed as B (s8,
 * quads of k: int8_pack_b), then, per output channel, the f32 multiplier
 * sa * sw, the int32 term za * colsum(q) that removes the activations' zero
 * point, and the f32 bias (zeros without one: the epilogue always adds it,
 * as ir/quant.h's kiln_quant_output does). */
static kiln_status int8_params(kiln_cg *cg, const kiln_node *n, kiln_id wid, kiln_id bid, const kiln_quant_act *qa,
                               int64_t K, int64_t N, uint64_t *w_off, uint64_t *q_off)
{
    const kiln_cg_gemm_config *gc = kiln_cg_gemm_for_node(cg, n, false);
    size_t count, bcount = 0;
    float *w = kiln_cg_param_f32(cg, wid, &count), *bias = NULL;
    if (!w)
        return cg->status;
    if (count != (size_t)(N * K)) {
        free(w);
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "weight has %zu elements, not %lld", count, (long long)(N * K));
    }
    if (bid != KILN_NO_ID && !(bias = kiln_cg_param_f32(cg, bid, &bcount))) {
        free(w);
        return cg->status;
    }
    int8_t *packed = kiln_cg_blob_alloc_bytes(cg, kiln_cg_packed_b_bytes(gc, K, N), w_off);
    if (packed)
        kiln_cg_pack_b(gc, w, K, N, 1, K, packed);
    unsigned char *q = packed ? kiln_cg_blob_alloc_bytes(cg, 12 * (size_t)N, q_off) : NULL;
    for (int64_t c = 0; q && c < N; c++) {
        const float sw = kiln_quant_weight_scale(w + c * K, K, 1), s = kiln_quant_out_scale(qa->scale, sw);
        int64_t colsum = 0;
        for (int64_t k = 0; k < K; k++)
            colsum += kiln_quant_weight_q(w[c * K + k], sw);
        const int32_t comp = (int32_t)(qa->zero * colsum); /* |za colsum| <= 255 * 127 * 65535 < 2^31 */
        const float b = bias && (size_t)c < bcount ? bias[c] : 0.0f;
        memcpy(q + 4 * c, &s, 4);
        memcpy(q + 4 * (N + c), &comp, 4);
        memcpy(q + 4 * (2 * N + c), &b, 4);
    }
    free(w);
    free(bias);
    return cg->status;
}

kiln_status kiln_cg_emit_dense(kiln_cg *cg, const kiln_node *n)
{
    const kiln_value *x = kiln_graph_value(cg->g, n->inputs[0]);
    kiln_id wid = kiln_node_param(cg->g, n, "weight"), bid = kiln_node_param(cg->g, n, "bias");
    if (wid == KILN_NO_ID)
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "dense without a weight");
    const kiln_shape *xs = &x->type.shape;
    const int64_t K = xs->dims[xs->rank - 1];
    const int64_t N = kiln_graph_value(cg->g, n->output)->type.shape.dims[xs->rank - 1];

    const bool blas = kiln_cg_gemm_pick(cg, n) == KILN_CG_GEMM_BLAS;
    /* bf16 / f16 weights (the layer's precision): the weights are B */
    const kiln_cg_gemm_config *gc = kiln_cg_gemm_for_node(cg, n, false);
    if (blas && gc->id != KILN_CG_GEMM_F32)
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "OpenBLAS computes f32 only, the layer %s",
                            kiln_precision_name(kiln_node_precision(cg->g, n)));
    uint64_t w_off, b_off = 0, q_off = 0;
    kiln_quant_act qa = {0};
    const bool int8 = gc->acc == KILN_I32;
    if (int8) {
        int qs = kiln_node_in_quant(n, &qa);
        if (qs != 0)
            return kiln_cg_fail(cg, KILN_ERR_INVALID_ARGUMENT, "layer '%s': an int8 dense layer needs %s in_scale and in_zero "
                                "(from --calibration, docs/precision.md)", n->layer ? n->layer : "?",
                                qs == -1 ? "its input's quantization:" : "a positive f32 in_scale and in_zero in [0, 255]:");
        if (int8_params(cg, n, wid, bid, &qa, K, N, &w_off, &q_off) != KILN_OK)
            return cg->status;
    } else if (blas) { /* sgemm reads W [N, K] as it is (op(B) = W^T) */
        if (kiln_cg_blob_param(cg, wid, &w_off) != KILN_OK)
            return cg->status;
    } else {
        /* Pack W [N, K] as B = W^T in panels: the layout the kernel reads. */
        size_t count;
        float *w = kiln_cg_param_f32(cg, wid, &count);
        if (!w)
            return cg->status;
        if (count != (size_t)(N * K)) {
            free(w);
            return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "weight has %zu elements, not %lld", count, (long long)(N * K));
        }
        void *packed = kiln_cg_blob_alloc_bytes(cg, kiln_cg_packed_b_bytes(gc, K, N), &w_off);
        if (packed)
            kiln_cg_pack_b(gc, w, K, N, 1, K, packed);
        free(w);
        if (!packed)
            return cg->status;
    }
    if (!int8 && bid != KILN_NO_ID && kiln_cg_blob_param(cg, bid, &b_off) != KILN_OK)
        return cg->status;

    int64_t rows = 1; /* per batch item, or in total */
    for (int i = xs->batched ? 1 : 0; i < xs->rank - 1; i++)
        rows *= xs->dims[i];
    int64_t mb, nb;
    if (blas) /* few large calls: sgemm packs its operands on every call */
        kiln_cg_blas_blocking(cg, N, n->tasks, &mb, &nb);
    else
        kiln_cg_gemm_blocking(cg, gc, rows, N, K, n->tasks, xs->batched, 1.0, &mb, &nb);
    const int64_t n_col_blocks = (N + nb - 1) / nb;

    char kernel[128], epi[64];
    if (blas)
        kiln_cg_kernel_name(cg, kernel, sizeof kernel, kiln_cg_node_dtype(cg, n), KILN_CG_ON_OPENBLAS, 0, 0, "dense%s%s",
                            bid != KILN_NO_ID ? "_bias" : "", kiln_cg_epi_name(epilogue(cg), epi, sizeof epi));
    else
        kiln_cg_gemm_kernel_name(cg, kernel, sizeof kernel, gc, "dense%s%s", bid != KILN_NO_ID ? "_bias" : "",
                                 kiln_cg_epi_name(epilogue(cg), epi, sizeof epi));
    kiln_cg_task_begin(cg, kernel, n);
    V m_total = kiln_cg_i64(cg, rows);
    if (xs->batched)
        m_total = LLVMBuildMul(cg->u->b, m_total, kiln_cg_batch(cg), "m");
    V cb = kiln_cg_urem(cg, cg->f.arg_index, n_col_blocks), rb = kiln_cg_udiv(cg, cg->f.arg_index, n_col_blocks);
    V r0 = kiln_cg_imul(cg, rb, mb);
    V r1 = kiln_cg_smin(cg, kiln_cg_iadd(cg, r0, kiln_cg_i64(cg, mb)), m_total);
    V c0 = kiln_cg_imul(cg, cb, nb);
    V c1 = kiln_cg_smin(cg, kiln_cg_iadd(cg, c0, kiln_cg_i64(cg, nb)), kiln_cg_i64(cg, N));
    if (blas) {
        kiln_cg_blas_call c = {
            .trans_b = true,
            .m = LLVMBuildSub(cg->u->b, r1, r0, ""),
            .n = LLVMBuildSub(cg->u->b, c1, c0, ""),
            .k = K,
            .a = kiln_cg_gep(cg, kiln_cg_value_ptr(cg, n->inputs[0]), kiln_cg_imul(cg, r0, K)),
            .b = kiln_cg_gep(cg, kiln_cg_weights_ptr(cg, w_off), kiln_cg_imul(cg, c0, K)),
            .c = kiln_cg_gep(cg, kiln_cg_value_ptr(cg, stored_value(cg, n)), kiln_cg_iadd(cg, kiln_cg_imul(cg, r0, N), c0)),
            .lda = K,
            .ldb = K,
            .ldc = N,
            .bias = bid != KILN_NO_ID ? kiln_cg_gep(cg, kiln_cg_weights_ptr(cg, b_off), c0) : NULL,
            .bias_per_row = false,
            .epi = epilogue(cg),
            .epi_row0 = r0,
            .epi_col0 = c0,
        };
        kiln_cg_emit_blas(cg, &c);
        kiln_cg_task_end(cg, (kiln_cg_count){xs->batched ? 0 : rows, xs->batched ? rows : 0, mb, n_col_blocks, 0});
        return cg->status;
    }
    kiln_cg_gemm p = {
        .cfg = gc,
        .a = kiln_cg_gep(cg, kiln_cg_value_ptr(cg, n->inputs[0]), kiln_cg_imul(cg, r0, K)),
        .b = kiln_cg_weights_ptr(cg, w_off),
        .c = kiln_cg_gep(cg, kiln_cg_value_ptr(cg, stored_value(cg, n)), kiln_cg_imul(cg, r0, N)),
        .a_packed = false,
        .b_packed = true,
        .lda = K,
        .ldb = 0,
        .ldc = N,
        .m = LLVMBuildSub(cg->u->b, r1, r0, ""),
        .n0 = c0,
        .n1 = c1,
        .k = K,
        .bias = bid != KILN_NO_ID ? kiln_cg_weights_ptr(cg, b_off) : NULL,
        .bias_per_row = false,
        .epi = epilogue(cg),
        .epi_row0 = r0,
        .n_panels_hint = nb / ((int64_t)gc->nr * gc->lanes),
    };
    if (int8) { /* int8_params' layout: scales, compensation, bias */
        p.a_inv_scale = qa.inv_scale;
        p.a_zero = qa.zero;
        p.q_scale = kiln_cg_weights_ptr(cg, q_off);
        p.q_comp = kiln_cg_weights_ptr(cg, q_off + 4 * (uint64_t)N);
        p.bias = kiln_cg_weights_ptr(cg, q_off + 8 * (uint64_t)N);
    }
    kiln_cg_emit_gemm(cg, &p);
    kiln_cg_task_end(cg, (kiln_cg_count){xs->batched ? 0 : rows, xs->batched ? rows : 0, mb, n_col_blocks, 0});
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
    V cur = LLVMBuildLoad2(cg->u->b, cg->u->t_vf, d->acc, "");
    LLVMBuildStore(cg->u->b, kiln_cg_fma(cg, x, y, cur), d->acc);
}

/* C[i, j] = dot(A row i, B row j) for rows [0, m) and columns [n0, n1), then
 * the epilogue (view row row0 + i). */
static void emit_dot(kiln_cg *cg, V a, V b, V c, V m, V n0, V n1, int64_t K, int64_t ldc, V row0)
{
    const kiln_cg_epilogue *epi = epilogue(cg);
    if (epi)
        kiln_cg_epi_begin(cg, cg->f.epi);
    kiln_cg_loop li, lj;
    V i = kiln_cg_for_begin(cg, &li, kiln_cg_i64(cg, 0), m, kiln_cg_i64(cg, 1));
    V offs[KILN_CG_MAX_EPI];
    if (epi)
        kiln_cg_epi_row(cg, epi, kiln_cg_iadd(cg, row0, i), offs);
    V j = kiln_cg_for_begin(cg, &lj, n0, n1, kiln_cg_i64(cg, 1));
    dot_arg d = {kiln_cg_gep(cg, a, kiln_cg_imul(cg, i, K)), kiln_cg_gep(cg, b, kiln_cg_imul(cg, j, K)),
                 kiln_cg_alloca(cg, cg->u->t_vf, "dot")};
    LLVMBuildStore(cg->u->b, LLVMConstNull(cg->u->t_vf), d.acc);
    kiln_cg_vloop(cg, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, K), dot_body, &d);
    V sum = kiln_cg_reduce_add(cg, LLVMBuildLoad2(cg->u->b, cg->u->t_vf, d.acc, ""));
    if (epi)
        sum = kiln_cg_epi_apply(cg, epi, sum, offs, j, NULL);
    kiln_cg_store(cg, sum, c, kiln_cg_iadd(cg, kiln_cg_imul(cg, i, ldc), j));
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
    bool use_dot = kiln_cg_impl_of(cg, n) == KILN_IMPL_DOT;
    if (!use_dot && (b_vec || (tb && !b_const)))
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "gemm needs a B of rank >= 2, constant when transposed");
    bool packed_b = b_const && !b_vec && !use_dot;
    uint64_t b_off = 0;
    const kiln_cg_gemm_config *gc = kiln_cg_gemm_f32(cg);
    size_t per_mat = kiln_cg_packed_b_bytes(gc, K, N);
    if (packed_b) {
        size_t count;
        float *w = kiln_cg_param_f32(cg, bbuf->index, &count);
        if (!w)
            return cg->status;
        size_t mats = count / (size_t)(N * K);
        unsigned char *p = kiln_cg_blob_alloc_bytes(cg, per_mat * (mats ? mats : 1), &b_off);
        if (p)
            for (size_t q = 0; q < mats; q++) /* tb: w is [N, K]; else [K, N] */
                kiln_cg_pack_b(gc, w + q * (size_t)(N * K), K, N, tb ? 1 : N, tb ? K : 1, p + q * per_mat);
        free(w);
        if (!p)
            return cg->status;
    }

    int64_t mb, nb;
    kiln_cg_gemm_blocking(cg, gc, m_is_batch ? 1 : M, N, K, n->tasks, m_is_batch, 1.0, &mb, &nb);
    const int64_t n_col_blocks = (N + nb - 1) / nb;
    const int64_t m_blocks = m_is_batch ? 0 : (M + mb - 1) / mb;
    char kernel[128], epi[64];
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, kiln_cg_node_dtype(cg, n), KILN_CG_ON_TARGET, 0, 0, "matmul%s%s", use_dot ? "_dot" : "",
                        kiln_cg_epi_name(epilogue(cg), epi, sizeof epi));
    kiln_cg_task_begin(cg, kernel, n);
    V pa = kiln_cg_value_ptr(cg, n->inputs[0]);
    V pb = packed_b ? kiln_cg_weights_ptr(cg, b_off) : kiln_cg_value_ptr(cg, n->inputs[1]);
    V pc = kiln_cg_value_ptr(cg, stored_value(cg, n));

    V t = cg->f.arg_index;
    V cb = kiln_cg_urem(cg, t, n_col_blocks);
    t = kiln_cg_udiv(cg, t, n_col_blocks);
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
        oa = kiln_cg_iadd(cg, oa, kiln_cg_imul(cg, idx, sa[i]));
        ob = kiln_cg_iadd(cg, ob, kiln_cg_imul(cg, idx, sb[i]));
    }
    V r0 = kiln_cg_imul(cg, rbk, mb);
    V r1 = kiln_cg_smin(cg, kiln_cg_iadd(cg, r0, kiln_cg_i64(cg, mb)), m_rows);
    V c0 = kiln_cg_imul(cg, cb, nb);
    V c1 = kiln_cg_smin(cg, kiln_cg_iadd(cg, c0, kiln_cg_i64(cg, nb)), kiln_cg_i64(cg, N));
    const int64_t Mm = m_is_batch ? 0 : M; /* rows of one matrix (the batch is not one) */
    V a = kiln_cg_gep(cg, pa, kiln_cg_iadd(cg, kiln_cg_imul(cg, oa, Mm * K), kiln_cg_imul(cg, r0, K)));
    V b = kiln_cg_gep(cg, pb, kiln_cg_imul(cg, ob, packed_b ? (int64_t)(per_mat / kiln_dtype_size(gc->b)) : K * N));
    V cc = kiln_cg_gep(cg, pc, kiln_cg_iadd(cg, kiln_cg_imul(cg, mat, Mm * N), kiln_cg_imul(cg, r0, N)));
    V m = LLVMBuildSub(cg->u->b, r1, r0, "");
    V row0 = kiln_cg_iadd(cg, kiln_cg_imul(cg, mat, Mm), r0); /* the epilogue's view row of C's row 0 */
    if (use_dot) {
        emit_dot(cg, a, b, cc, m, c0, c1, K, N, row0);
    } else {
        kiln_cg_gemm p = {.a = a, .b = b, .c = cc, .a_packed = false, .b_packed = packed_b, .lda = K,
                          .ldb = N, .ldc = N, .m = m, .n0 = c0, .n1 = c1, .k = K, .epi = epilogue(cg),
                          .epi_row0 = row0, .n_panels_hint = nb / ((int64_t)gc->nr * gc->lanes)};
        kiln_cg_emit_gemm(cg, &p);
    }
    kiln_cg_count count;
    if (m_is_batch)
        count = (kiln_cg_count){0, 1, mb, n_col_blocks, 0};
    else if (lead_batch)
        count = (kiln_cg_count){0, mats_per_item * m_blocks * n_col_blocks, 1, 1, 0};
    else
        count = (kiln_cg_count){mats_per_item * m_blocks * n_col_blocks, 0, 1, 1, 0};
    kiln_cg_task_end(cg, count);
    return cg->status;
}
