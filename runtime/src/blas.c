/* blas.c: row-major sgemm and thread control on top of OpenBLAS's CBLAS:
 * libkiln_rt_blas, the only part of the runtime that links OpenBLAS. */
#include "kiln/blas.h"

#include <limits.h>

#include <cblas.h>

/* Declared by OpenBLAS's cblas.h; repeated in case another CBLAS header was
 * picked up. Identical redeclarations are fine. */
void openblas_set_num_threads(int num_threads);

static int64_t max1(int64_t v)
{
    return v < 1 ? 1 : v;
}

static int fits_int(int64_t v)
{
    return v <= (int64_t)INT_MAX;
}

/* Portable reference used only for sizes that do not fit CBLAS's int. */
static void sgemm_fallback(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                           float alpha, const float *a, int64_t lda,
                           const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) {
            double acc = 0.0;
            for (int64_t p = 0; p < k; ++p) {
                float av = trans_a ? a[p * lda + i] : a[i * lda + p];
                float bv = trans_b ? b[j * ldb + p] : b[p * ldb + j];
                acc += (double)av * (double)bv;
            }
            float *cij = &c[i * ldc + j];
            *cij = (float)((double)alpha * acc + (beta == 0.0f ? 0.0 : (double)beta * (double)*cij));
        }
    }
}

KILN_RT_API void kiln_rt_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                               float alpha, const float *a, int64_t lda,
                               const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    if (m < 0 || n < 0 || k < 0)
        return;
    if (m == 0 || n == 0)
        return;
    if (c == NULL || ldc < max1(n))
        return;
    if (k > 0 && (a == NULL || b == NULL))
        return;
    if (lda < max1(trans_a ? m : k) || ldb < max1(trans_b ? k : n))
        return;

    if (fits_int(m) && fits_int(n) && fits_int(k) && fits_int(lda) && fits_int(ldb) &&
        fits_int(ldc)) {
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, alpha, a,
                    (int)lda, b, (int)ldb, beta, c, (int)ldc);
    } else {
        sgemm_fallback(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
}

KILN_RT_API void kiln_rt_blas_set_threads(int n)
{
    openblas_set_num_threads(n < 1 ? 1 : n);
}
