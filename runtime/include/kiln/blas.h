/* kiln/blas.h: the BLAS glue, in its own library, libkiln_rt_blas (CMake:
 * kiln::runtime_blas; pkg-config: kiln-rt-blas), which links OpenBLAS.
 * libkiln_rt itself does not depend on OpenBLAS: only a model whose kernels
 * call sgemm needs libkiln_rt_blas (its compile report and its header,
 * NAME_NEEDS_BLAS, say so). Generated code declares these functions itself;
 * include this header to call them directly.
 *
 * Self-contained C99; usable from C++. */
#ifndef KILN_BLAS_H
#define KILN_BLAS_H

#include <stdint.h>

#include "kiln/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* C = alpha * op(A) * op(B) + beta * C, all row-major (wraps cblas_sgemm).
 * op(A) is m x k: A is m x k (trans_a == 0) or k x m (trans_a != 0), with
 * leading dimension lda; likewise op(B) is k x n and C is m x n. As in BLAS,
 * beta == 0 overwrites C without reading it.
 * Arguments are not validated beyond this: negative sizes, leading
 * dimensions that are too small, or NULL matrices make the call a no-op
 * (C untouched) rather than an error. a, b, c are borrowed; c must not
 * overlap a or b.
 * Thread-safe for distinct c. Generated kernels call this from inside
 * kiln_rt_parallel_for tasks, so OpenBLAS must not start threads of its own:
 * call kiln_rt_blas_set_threads(1) before running kernels on a pool (the
 * runtime never does this by itself; see kiln_rt_blas_set_threads). Sizes
 * above INT_MAX are handled by a slow portable fallback. */
KILN_RT_API void kiln_rt_sgemm(int trans_a, int trans_b,
                               int64_t m, int64_t n, int64_t k,
                               float alpha, const float *a, int64_t lda,
                               const float *b, int64_t ldb,
                               float beta, float *c, int64_t ldc);

/* Sets the number of threads OpenBLAS uses internally
 * (openblas_set_num_threads); n < 1 is treated as 1. This is OpenBLAS's
 * process-wide setting, not state of the runtime: it affects every user of
 * OpenBLAS in the process. Do not call it while an sgemm is running. */
KILN_RT_API void kiln_rt_blas_set_threads(int n);

#ifdef __cplusplus
}
#endif

#endif /* KILN_BLAS_H */
