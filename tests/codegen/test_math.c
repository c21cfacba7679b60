/* tests/codegen/test_math.c: accuracy of the vectorized transcendental
 * functions (kernels/math.c) over a dense sweep of f32 inputs, against libm
 * in double precision. The bounds asserted here are the ones stated in
 * docs/codegen.md.
 *
 * The sweep visits every STEP-th float of each domain (ordered by value);
 * KILN_MATH_STEP=1 in the environment sweeps every float (slow: minutes),
 * which is how the numbers in the docs were measured. Errors are reported in
 * units in the last place of the exact result (ulp of the f32 nearest to the
 * double reference) and as relative error. */
#include <CUnit/Basic.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/codegen/codegen.h"

static kiln_cg_math_kernel fns[KILN_CG_MATH_COUNT];
static kiln_cg_jit *jit;
static int64_t step = 61;

static double ref_exp(double x) { return exp(x); }
static double ref_expm1(double x) { return expm1(x); }
static double ref_log(double x) { return log(x); }
static double ref_tanh(double x) { return tanh(x); }
static double ref_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static double ref_erf(double x) { return erf(x); }
static double ref_gelu(double x) { return 0.5 * x * erfc(-x * 0.70710678118654752440); }
static double ref_gelu_tanh(double x)
{
    double u = 0.79788456080286535588 * (x + 0.044715 * x * x * x);
    return x / (1.0 + exp(-2.0 * u)); /* = x/2 (1 + tanh u), without its cancellation */
}
static double ref_silu(double x) { return x / (1.0 + exp(-x)); }
static double ref_softplus(double x) { return x > 20.0 ? x : log1p(exp(x)); }

typedef struct fn_case {
    kiln_cg_math_fn fn;
    const char *name;
    double (*ref)(double);
    float lo, hi;       /* domain swept (results normal floats) */
    double max_ulp;     /* asserted bounds */
    double max_rel;
} fn_case;

static const fn_case cases[] = {
    {KILN_CG_MATH_EXP, "exp", ref_exp, -87.3f, 88.7f, 1.5, 1.5e-7},
    {KILN_CG_MATH_EXPM1, "expm1", ref_expm1, -88.0f, 88.7f, 2.0, 2.0e-7},
    {KILN_CG_MATH_LOG, "log", ref_log, FLT_MIN, FLT_MAX, 1.5, 1.5e-7},
    {KILN_CG_MATH_TANH, "tanh", ref_tanh, -20.0f, 20.0f, 3.5, 3.0e-7},
    {KILN_CG_MATH_SIGMOID, "sigmoid", ref_sigmoid, -87.0f, 88.0f, 3.5, 3.0e-7},
    {KILN_CG_MATH_ERF, "erf", ref_erf, -10.0f, 10.0f, 4.0, 4.5e-7},
    {KILN_CG_MATH_GELU, "gelu", ref_gelu, -12.0f, 30.0f, 8.0, 6.0e-7},
    {KILN_CG_MATH_GELU_TANH, "gelu_tanh", ref_gelu_tanh, -9.0f, 30.0f, 6.0, 6.0e-7},
    {KILN_CG_MATH_SILU, "silu", ref_silu, -87.0f, 88.0f, 4.0, 3.5e-7},
    {KILN_CG_MATH_SOFTPLUS, "softplus", ref_softplus, -87.0f, 88.0f, 2.5, 2.0e-7},
};

/* Floats ordered by value as integers, and back. */
static int64_t ord(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return (u & 0x80000000u) ? -(int64_t)(u & 0x7fffffffu) : (int64_t)u;
}

static float unord(int64_t k)
{
    uint32_t u = k < 0 ? (uint32_t)(-k) | 0x80000000u : (uint32_t)k;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ulp of the float nearest to r (r finite, nonzero). */
static double ulp_of(double r)
{
    float f = (float)fabs(r);
    if (f < FLT_MIN)
        return ldexp(1.0, -149);
    int e;
    frexpf(f, &e);
    return ldexp(1.0, e - 24);
}

#define CHUNK (1 << 20)

static void sweep(const fn_case *c, double *worst_ulp, double *worst_rel, float *at)
{
    float *x = malloc(CHUNK * sizeof *x), *y = malloc(CHUNK * sizeof *y);
    *worst_ulp = *worst_rel = 0.0;
    *at = 0.0f;
    int64_t k = ord(c->lo), end = ord(c->hi);
    while (k <= end) {
        int n = 0;
        for (; n < CHUNK && k <= end; n++, k += step)
            x[n] = unord(k);
        if (n < CHUNK && x[n - 1] != c->hi)
            x[n++] = c->hi; /* the end point too */
        fns[c->fn](x, y, n);
        for (int i = 0; i < n; i++) {
            double r = c->ref((double)x[i]);
            if (r == 0.0 || !isfinite(r) || fabs(r) < FLT_MIN || fabs(r) > FLT_MAX)
                continue;
            double e = fabs((double)y[i] - r);
            double u = e / ulp_of(r), rel = e / fabs(r);
            if (u > *worst_ulp) {
                *worst_ulp = u;
                *at = x[i];
            }
            if (rel > *worst_rel)
                *worst_rel = rel;
        }
    }
    free(x);
    free(y);
}

static void test_accuracy(void)
{
    printf("\n    %-10s %-26s %10s %12s  (every %lld-th float)\n", "function", "domain", "max ulp", "max rel",
           (long long)step);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const fn_case *c = &cases[i];
        double u, r;
        float at;
        sweep(c, &u, &r, &at);
        char dom[64];
        snprintf(dom, sizeof dom, "[%g, %g]", (double)c->lo, (double)c->hi);
        printf("    %-10s %-26s %10.3f %12.3g  (worst at %.9g)\n", c->name, dom, u, r, (double)at);
        CU_ASSERT(u <= c->max_ulp);
        CU_ASSERT(r <= c->max_rel);
    }
}

/* Special values and the ends of the ranges. */
static void test_special(void)
{
    float x[16] = {INFINITY, -INFINITY, NAN, 0.0f, -0.0f, 100.0f, -100.0f, 88.8f, -104.0f, 1e-30f, -1e-30f, 1e-40f};
    float y[16];
    fns[KILN_CG_MATH_EXP](x, y, 12);
    CU_ASSERT(y[0] == INFINITY && y[1] == 0.0f && isnan(y[2]) && y[3] == 1.0f && y[4] == 1.0f);
    CU_ASSERT(y[5] == INFINITY && (double)y[6] > 3.6e-44 && (double)y[6] < 3.9e-44 && y[7] == INFINITY && y[8] == 0.0f && y[9] == 1.0f);
    fns[KILN_CG_MATH_TANH](x, y, 12);
    CU_ASSERT(y[0] == 1.0f && y[1] == -1.0f && isnan(y[2]) && y[3] == 0.0f && signbit(y[4]));
    CU_ASSERT(y[5] == 1.0f && y[6] == -1.0f && y[9] == 1e-30f && y[10] == -1e-30f);
    fns[KILN_CG_MATH_SIGMOID](x, y, 12);
    CU_ASSERT(y[0] == 1.0f && y[1] == 0.0f && isnan(y[2]) && y[3] == 0.5f && y[5] == 1.0f && y[6] < 1e-40f);
    fns[KILN_CG_MATH_LOG](x, y, 12);
    CU_ASSERT(y[0] == INFINITY && isnan(y[1]) && isnan(y[2]) && y[3] == -INFINITY && y[4] == -INFINITY);
    CU_ASSERT(fabs(y[11] - log(1e-40)) < 1e-5 && isnan(y[6]));
    fns[KILN_CG_MATH_ERF](x, y, 12);
    CU_ASSERT(y[0] == 1.0f && y[1] == -1.0f && isnan(y[2]) && y[3] == 0.0f && y[5] == 1.0f && y[6] == -1.0f);
    fns[KILN_CG_MATH_GELU](x, y, 12);
    CU_ASSERT(y[0] == INFINITY && isnan(y[2]) && y[3] == 0.0f && y[5] == 100.0f && y[6] == -0.0f);
    fns[KILN_CG_MATH_SOFTPLUS](x, y, 12);
    CU_ASSERT(y[0] == INFINITY && y[1] == 0.0f && isnan(y[2]) && fabs(y[3] - log(2.0)) < 1e-7 && y[5] == 100.0f);
    CU_ASSERT(fabs((double)y[6] - exp(-100.0)) < 1e-45 && y[7] == 88.8f && y[9] == (float)log(2.0));
    fns[KILN_CG_MATH_EXPM1](x, y, 12);
    CU_ASSERT(y[0] == INFINITY && y[1] == -1.0f && isnan(y[2]) && y[3] == 0.0f && y[9] == 1e-30f);
    /* Lengths around the vector width: the masked tail. */
    for (int n = 1; n <= 35; n++) {
        float a[40], b[40];
        for (int i = 0; i < 40; i++)
            a[i] = 0.1f * (float)i, b[i] = -7.0f;
        fns[KILN_CG_MATH_EXP](a, b, n);
        for (int i = 0; i < 40; i++)
            CU_ASSERT(i < n ? fabs(b[i] - exp(a[i])) <= 1e-6 * exp(a[i]) : b[i] == -7.0f);
    }
}

int main(void)
{
    const char *s = getenv("KILN_MATH_STEP");
    if (s && atoll(s) > 0)
        step = atoll(s);
    kiln_diag d;
    kiln_diag_init(&d);
    if (kiln_cg_math_jit(NULL, &jit, fns, &d) != KILN_OK) {
        kiln_diag_print(&d, stderr);
        kiln_diag_release(&d);
        return 1;
    }
    kiln_diag_release(&d);
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite suite = CU_add_suite("codegen_math", NULL, NULL);
    CU_add_test(suite, "accuracy", test_accuracy);
    CU_add_test(suite, "special", test_special);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    kiln_cg_jit_destroy(jit);
    return failed ? 1 : 0;
}
