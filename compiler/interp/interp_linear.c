/* compiler/interp/interp_linear.c: dense (torch.nn.Linear over the last
 * axis) and matmul (torch.matmul: 1-D operands promoted and the promoted axis
 * dropped again, leading dims broadcast). */
#include "interp_internal.h"

#include <stdlib.h>

#include "ir/convert.h"
#include "ir/quant.h"

kiln_status kiln_icall_rounded(const kiln_icall *c, const kiln_itensor *t, bool weight, const double **out,
                               double **owned)
{
    kiln_precision p = c->precision;
    *out = t->data;
    *owned = NULL;
    if (p == KILN_PREC_F32 || p == KILN_PREC_INT8 || (p == KILN_PREC_F16 && !weight))
        return KILN_OK; /* int8: the layer quantizes (interp_int8) */
    double *r = malloc((t->count ? t->count : 1) * sizeof *r);
    if (!r)
        return kiln_icall_fail(c, KILN_ERR_OUT_OF_MEMORY, "out of memory rounding to %s", kiln_precision_name(p));
    for (size_t i = 0; i < t->count; i++) {
        float f = (float)t->data[i];
        r[i] = p == KILN_PREC_F16 ? kiln_f16_to_f32(kiln_f32_to_f16(f)) : kiln_bf16_to_f32(kiln_f32_to_bf16(f));
    }
    *out = r;
    *owned = r;
    return KILN_OK;
}

/* An int8 dense layer as the compiled one computes it (ir/quant.h): the
 * weights quantized per output channel and the input per tensor with the
 * node's in_scale and in_zero, the exact integer sum of (qa - za) * qw,
 * then the f32 multiply by sa * sw and the f32 add of the bias. The result
 * is an f32 value, the one the compiled layer stores before its fused
 * epilogue. */
static kiln_status int8_dense(const kiln_icall *c, const kiln_itensor *x, const kiln_itensor *w,
                              const kiln_itensor *bias, size_t rows, int64_t K, int64_t N)
{
    kiln_quant_act qa;
    int qs = kiln_node_in_quant(c->n, &qa);
    if (qs != 0)
        return kiln_icall_fail(c, KILN_ERR_INVALID_ARGUMENT, "int8 needs %s (from --calibration)",
                               qs == -1 ? "the input's in_scale and in_zero" : "a positive in_scale and in_zero in [0, 255]");
    float *wf = malloc((size_t)(N * K) * sizeof *wf + 1);
    float *s = malloc((size_t)N * sizeof *s + 1);
    int8_t *wq = malloc((size_t)(N * K) + 1);
    uint8_t *xq = malloc((size_t)K + 1);
    if (!wf || !s || !wq || !xq) {
        free(wf), free(s), free(wq), free(xq);
        return kiln_icall_fail(c, KILN_ERR_OUT_OF_MEMORY, "out of memory quantizing to int8");
    }
    for (size_t i = 0; i < (size_t)(N * K); i++)
        wf[i] = (float)w->data[i];
    for (int64_t n = 0; n < N; n++) {
        const float sw = kiln_quant_weight_scale(wf + n * K, K, 1);
        s[n] = kiln_quant_out_scale(qa.scale, sw);
        for (int64_t k = 0; k < K; k++)
            wq[n * K + k] = kiln_quant_weight_q(wf[n * K + k], sw);
    }
    for (size_t r = 0; r < rows; r++) {
        for (int64_t k = 0; k < K; k++)
            xq[k] = kiln_quant_act_q(&qa, (float)x->data[r * (size_t)K + (size_t)k]);
        for (int64_t n = 0; n < N; n++) {
            int64_t sum = 0;
            for (int64_t k = 0; k < K; k++)
                sum += (int64_t)(xq[k] - qa.zero) * wq[n * K + k];
            float b = bias ? (float)bias->data[n] : 0.0f;
            c->out->data[r * (size_t)N + (size_t)n] = kiln_quant_output((int32_t)sum, s[n], b);
        }
    }
    free(wf), free(s), free(wq), free(xq);
    return KILN_OK;
}

kiln_status kiln_interp_dense(const kiln_icall *c)
{
    kiln_status s;
    const kiln_itensor *x = c->in[0], *w, *bias = kiln_icall_param(c, "bias");
    if ((s = kiln_icall_check_rank(c, 0, -2)) != KILN_OK || (s = kiln_icall_need_param(c, "weight", &w)) != KILN_OK)
        return s;
    const int64_t K = x->dims[x->rank - 1];
    if (w->rank != 2 || w->dims[1] != K) {
        char xs[128], ws[128];
        return kiln_icall_fail(c, KILN_ERR_SHAPE, "weight has shape %s; [units, %lld] is needed for input %s",
                               kiln_idims_format(w->rank, w->dims, ws, sizeof ws), (long long)K,
                               kiln_idims_format(x->rank, x->dims, xs, sizeof xs));
    }
    const int64_t N = w->dims[0];
    if (bias && (s = kiln_icall_check_param_count(c, "bias", bias, N)) != KILN_OK)
        return s;
    int64_t dims[KILN_MAX_RANK];
    for (int i = 0; i < x->rank; i++)
        dims[i] = x->dims[i];
    dims[x->rank - 1] = N;
    if ((s = kiln_icall_check_out(c, x->rank, dims)) != KILN_OK)
        return s;

    if (c->precision == KILN_PREC_INT8)
        return int8_dense(c, x, w, bias, (size_t)kiln_idims_product(x->dims, 0, x->rank - 1), K, N);

    /* y[r, n] = sum_k x[r, k] * W[n, k] + b[n] (x and W as the layer's precision rounds them) */
    const double *xd, *wd;
    double *x_owned, *w_owned = NULL;
    if ((s = kiln_icall_rounded(c, x, false, &xd, &x_owned)) != KILN_OK ||
        (s = kiln_icall_rounded(c, w, true, &wd, &w_owned)) != KILN_OK) {
        free(x_owned);
        return s;
    }
    const size_t rows = kiln_idims_product(x->dims, 0, x->rank - 1);
    for (size_t r = 0; r < rows; r++) {
        const double *xr = xd + r * (size_t)K;
        double *yr = c->out->data + r * (size_t)N;
        for (int64_t n = 0; n < N; n++) {
            const double *wr = wd + (size_t)(n * K);
            double sum = 0.0;
            for (int64_t k = 0; k < K; k++)
                sum += xr[k] * wr[k];
            yr[n] = sum + (bias ? bias->data[n] : 0.0);
        }
    }
    free(x_owned);
    free(w_owned);
    return KILN_OK;
}

kiln_status kiln_interp_matmul(const kiln_icall *c)
{
    if (c->n_in != 2)
        return kiln_icall_fail(c, KILN_ERR_INTERNAL, "%u operands", c->n_in);
    const kiln_itensor *a = c->in[0], *b = c->in[1];
    const bool tb = kiln_icall_bool(c, KILN_ATTR_TRANSPOSE_B, false);
    char as[128], bs[128];
    kiln_idims_format(a->rank, a->dims, as, sizeof as);
    kiln_idims_format(b->rank, b->dims, bs, sizeof bs);
    if (a->rank < 1 || b->rank < 1)
        return kiln_icall_fail(c, KILN_ERR_SHAPE, "matmul of %s and %s: operands need rank >= 1", as, bs);

    /* a as [..., M, K]; a vector is [1, K] (its M dropped from the result).
     * b as [..., K, N], or [..., N, K] with transpose_b; a vector is [K, 1]
     * either way (its N dropped). */
    const bool a_vec = a->rank == 1, b_vec = b->rank == 1;
    const int ra = a_vec ? 0 : a->rank - 2, rb = b_vec ? 0 : b->rank - 2; /* leading dims */
    const int64_t M = a_vec ? 1 : a->dims[a->rank - 2], K = a->dims[a->rank - 1];
    int64_t Kb, N;
    if (b_vec)
        Kb = b->dims[0], N = 1;
    else if (tb)
        N = b->dims[b->rank - 2], Kb = b->dims[b->rank - 1];
    else
        Kb = b->dims[b->rank - 2], N = b->dims[b->rank - 1];
    if (K != Kb)
        return kiln_icall_fail(c, KILN_ERR_SHAPE, "matmul of %s and %s%s: inner dimensions %lld and %lld differ",
                               as, bs, tb ? " (transpose_b)" : "", (long long)K, (long long)Kb);

    /* Broadcast the leading dims; strides count whole matrices. */
    const int RL = ra > rb ? ra : rb;
    int64_t lead[KILN_MAX_RANK], sa[KILN_MAX_RANK], sb[KILN_MAX_RANK];
    int64_t stride_a = 1, stride_b = 1;
    for (int i = RL - 1; i >= 0; i--) {
        const int ia = i - (RL - ra), ib = i - (RL - rb);
        const int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return kiln_icall_fail(c, KILN_ERR_SHAPE, "matmul of %s and %s: leading dims do not broadcast", as,
                                   bs);
        lead[i] = da == 1 ? db : da;
        sa[i] = da == 1 ? 0 : stride_a;
        sb[i] = db == 1 ? 0 : stride_b;
        stride_a *= da;
        stride_b *= db;
    }
    if (RL + 2 > KILN_MAX_RANK)
        return kiln_icall_fail(c, KILN_ERR_SHAPE, "matmul of %s and %s: result rank too large", as, bs);
    int64_t dims[KILN_MAX_RANK];
    int R = 0;
    for (int i = 0; i < RL; i++)
        dims[R++] = lead[i];
    if (!a_vec)
        dims[R++] = M;
    if (!b_vec)
        dims[R++] = N;
    kiln_status s = kiln_icall_check_out(c, R, dims);
    if (s != KILN_OK)
        return s;

    const size_t batches = kiln_idims_product(lead, 0, RL);
    int64_t idx[KILN_MAX_RANK] = {0};
    int64_t ma = 0, mb = 0; /* matrix index into a and b */
    for (size_t l = 0; l < batches; l++) {
        const double *A = a->data + (size_t)(ma * M * K);
        const double *B = b->data + (size_t)(mb * K * N);
        double *O = c->out->data + l * (size_t)(M * N);
        for (int64_t m = 0; m < M; m++) {
            const double *arow = A + m * K;
            double *orow = O + m * N;
            if (tb || b_vec) {
                /* B is [N, K] (a vector b is [1, K]): dot products of rows. */
                for (int64_t n = 0; n < N; n++) {
                    double sum = 0.0;
                    for (int64_t k = 0; k < K; k++)
                        sum += arow[k] * B[n * K + k];
                    orow[n] = sum;
                }
            } else {
                for (int64_t n = 0; n < N; n++)
                    orow[n] = 0.0;
                for (int64_t k = 0; k < K; k++) {
                    const double av = arow[k];
                    const double *brow = B + k * N;
                    for (int64_t n = 0; n < N; n++)
                        orow[n] += av * brow[n];
                }
            }
        }
        for (int ax = RL - 1; ax >= 0; ax--) {
            ma += sa[ax], mb += sb[ax];
            if (++idx[ax] < lead[ax])
                break;
            ma -= sa[ax] * lead[ax], mb -= sb[ax] * lead[ax];
            idx[ax] = 0;
        }
    }
    return KILN_OK;
}
