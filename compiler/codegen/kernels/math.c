/* compiler/codegen/kernels/math.c: vectorized approximations of the
 * transcendental functions, emitted as straight-line LLVM IR on a scalar or
 * a vector of f32 (no libm calls in generated code). Every one is branch-free:
 * the ranges are computed side by side and chosen with selects. Measured
 * error bounds: docs/codegen.md (tests/codegen/test_math.c checks them).
 *
 *   exp     Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, Cephes' degree-6
 *           polynomial, 2^n applied in two halves so that gradual underflow
 *           and overflow to +inf come out right.
 *   expm1   the same reduction; 2^n expm1(r) + (2^n - 1) with expm1(r) =
 *           r + r^2/2 + r^3 Q(r) (minimax, degree 4): no cancellation near 0
 *           (elu, tanh).
 *   log     Cephes' logf: x = m 2^e, m in [sqrt(1/2), sqrt(2)), degree-9
 *           polynomial in m - 1 (log_softmax).
 *   tanh    -expm1(-2|x|) / (2 + expm1(-2|x|)) with the sign of x.
 *   sigmoid exp(-|x|) = e; (x >= 0 ? 1 : e) / (1 + e).
 *   erf     |x| < 0.5: x P(x^2) (minimax on [0, 1], degree 6 in x^2); else
 *           1 - erfc(|x|) with erfc(z) = t P(t) exp(-z^2), t = 1/(1 + z/2)
 *           (minimax, degree 9, z in [0.5, 12]) and z^2 split exactly with
 *           an FMA.
 *   gelu    x/2 (1 + erf(x/sqrt 2)), where 1 + erf(y) for y < -0.5 is
 *           erfc(-y) computed directly (no cancellation for x << 0).
 *   gelu (tanh form) x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3):
 *           the same value as x/2 (1 + tanh u) without its cancellation; 2u
 *           in double, split into two floats for the exponential.
 *   silu    x sigmoid(x). */
#include "compiler/codegen/cg.h"

#include <math.h>

#define LOG2E 1.44269504088896341
#define SQRT_HALF 0.70710678118654752440
#define SQRT_2_OVER_PI 0.79788456080286535588

typedef LLVMValueRef V;

static V c(kiln_cg *cg, V like, double v) { return kiln_cg_fconst(cg, like, v); }
static V add(kiln_cg *cg, V a, V b) { return LLVMBuildFAdd(cg->u->b, a, b, ""); }
static V sub(kiln_cg *cg, V a, V b) { return LLVMBuildFSub(cg->u->b, a, b, ""); }
static V mul(kiln_cg *cg, V a, V b) { return LLVMBuildFMul(cg->u->b, a, b, ""); }
static V vdiv(kiln_cg *cg, V a, V b) { return LLVMBuildFDiv(cg->u->b, a, b, ""); }
static V sel(kiln_cg *cg, V cond, V a, V b) { return LLVMBuildSelect(cg->u->b, cond, a, b, ""); }
static V lt(kiln_cg *cg, V a, V b) { return LLVMBuildFCmp(cg->u->b, LLVMRealOLT, a, b, ""); }

/* Horner: coef[0] x^(n-1) + ... + coef[n-1]. */
static V horner(kiln_cg *cg, V x, const double *coef, int n)
{
    V acc = c(cg, x, coef[0]);
    for (int i = 1; i < n; i++)
        acc = kiln_cg_fma(cg, acc, x, c(cg, x, coef[i]));
    return acc;
}

static V as_int(kiln_cg *cg, V x) { return LLVMBuildBitCast(cg->u->b, x, kiln_cg_int_type_like(cg, x), ""); }
static V as_float(kiln_cg *cg, V i, V like) { return LLVMBuildBitCast(cg->u->b, i, LLVMTypeOf(like), ""); }
static V ic(kiln_cg *cg, V like, int64_t v) { return kiln_cg_iconst_like(cg, like, v); }

/* 2^n for an integer n in [-150, 129] given as i32 lanes, as two factors. */
static V scale_pow2(kiln_cg *cg, V p, V n, V like)
{
    V n1 = LLVMBuildAShr(cg->u->b, n, ic(cg, like, 1), "");
    V n2 = LLVMBuildSub(cg->u->b, n, n1, "");
    V s1 = as_float(cg, LLVMBuildShl(cg->u->b, LLVMBuildAdd(cg->u->b, n1, ic(cg, like, 127), ""), ic(cg, like, 23), ""), like);
    V s2 = as_float(cg, LLVMBuildShl(cg->u->b, LLVMBuildAdd(cg->u->b, n2, ic(cg, like, 127), ""), ic(cg, like, 23), ""), like);
    return mul(cg, mul(cg, p, s1), s2);
}

/* The common range reduction of exp and expm1: x = n ln2 + r, |r| <= ln2/2,
 * with x clamped to [-104, 89] (NaN replaced by 0: the callers put it back). */
typedef struct exp_parts {
    V nan, xc, ni, r;
} exp_parts;

static exp_parts exp_reduce(kiln_cg *cg, V x)
{
    exp_parts e;
    e.nan = kiln_cg_is_nan(cg, x);
    /* Below -104 the result is 0, above 89 +inf. */
    e.xc = sel(cg, e.nan, c(cg, x, 0.0), kiln_cg_clamp(cg, x, -104.0, 89.0));
    /* n = round(x log2 e) by the 1.5 * 2^23 trick: t's low mantissa bits hold n. */
    V magic = c(cg, x, 12582912.0);
    V t = kiln_cg_fma(cg, e.xc, c(cg, x, LOG2E), magic);
    V nf = sub(cg, t, magic);
    e.ni = LLVMBuildSub(cg->u->b, as_int(cg, t), as_int(cg, magic), "n");
    /* Cody-Waite: ln2 = 0.693359375 (exact in 9 bits) - 2.12194440e-4. */
    V r = kiln_cg_fma(cg, nf, c(cg, x, -0.693359375), e.xc);
    e.r = kiln_cg_fma(cg, nf, c(cg, x, 2.12194440e-4), r);
    return e;
}

static V m_exp(kiln_cg *cg, V x)
{
    static const double p[6] = {1.9875691500E-4, 1.3981999507E-3, 8.3334519073E-3,
                                4.1665795894E-2, 1.6666665459E-1, 5.0000001201E-1};
    exp_parts e = exp_reduce(cg, x);
    V q = horner(cg, e.r, p, 6);
    V poly = add(cg, add(cg, mul(cg, q, mul(cg, e.r, e.r)), e.r), c(cg, x, 1.0));
    return sel(cg, e.nan, x, scale_pow2(cg, poly, e.ni, x));
}

/* expm1(x) = 2^n expm1(r) + (2^n - 1): 2^n - 1 is exact for the n where it
 * matters, and the multiply by 2^n is exact, so one rounding remains. */
static V m_expm1(kiln_cg *cg, V x)
{
    static const double q[5] = {0.00019882696363485993, 0.0013926181810489343, 0.0083333208883550469,
                                0.041666554627878083, 0.16666666666666667};
    exp_parts e = exp_reduce(cg, x);
    V r = e.r;
    V pm1 = kiln_cg_fma(cg, mul(cg, r, r), kiln_cg_fma(cg, r, horner(cg, r, q, 5), c(cg, x, 0.5)), r);
    V t = scale_pow2(cg, c(cg, x, 1.0), e.ni, x);
    V y = kiln_cg_fma(cg, t, pm1, sub(cg, t, c(cg, x, 1.0)));
    y = sel(cg, LLVMBuildFCmp(cg->u->b, LLVMRealOGT, x, c(cg, x, 88.72283935546875), ""), c(cg, x, INFINITY), y);
    return sel(cg, e.nan, x, y);
}

static V m_log(kiln_cg *cg, V x)
{
    static const double p[9] = {7.0376836292E-2, -1.1514610310E-1, 1.1676998740E-1, -1.2420140846E-1,
                                1.4249322787E-1, -1.6668057665E-1, 2.0000714765E-1, -2.4999993993E-1,
                                3.3333331174E-1};
    V tiny = lt(cg, x, c(cg, x, 1.17549435e-38));
    V xs = sel(cg, tiny, mul(cg, x, c(cg, x, 8388608.0)), x);
    V bits = as_int(cg, xs);
    V e = LLVMBuildSub(cg->u->b, LLVMBuildLShr(cg->u->b, bits, ic(cg, x, 23), ""), ic(cg, x, 126), "");
    e = LLVMBuildSub(cg->u->b, e, sel(cg, tiny, ic(cg, x, 23), ic(cg, x, 0)), "");
    V m = as_float(cg, LLVMBuildOr(cg->u->b, LLVMBuildAnd(cg->u->b, bits, ic(cg, x, 0x007fffff), ""), ic(cg, x, 0x3f000000), ""),
                   x);
    V below = lt(cg, m, c(cg, x, 0.707106781186547524));
    e = LLVMBuildSub(cg->u->b, e, sel(cg, below, ic(cg, x, 1), ic(cg, x, 0)), "");
    m = sel(cg, below, sub(cg, add(cg, m, m), c(cg, x, 1.0)), sub(cg, m, c(cg, x, 1.0)));
    V z = mul(cg, m, m);
    V y = mul(cg, mul(cg, horner(cg, m, p, 9), m), z);
    V ef = LLVMBuildSIToFP(cg->u->b, e, LLVMTypeOf(x), "");
    y = kiln_cg_fma(cg, ef, c(cg, x, -2.12194440e-4), y);
    y = kiln_cg_fma(cg, z, c(cg, x, -0.5), y);
    V r = kiln_cg_fma(cg, ef, c(cg, x, 0.693359375), add(cg, m, y));
    r = sel(cg, LLVMBuildFCmp(cg->u->b, LLVMRealOEQ, x, c(cg, x, INFINITY), ""), x, r);
    r = sel(cg, LLVMBuildFCmp(cg->u->b, LLVMRealOEQ, x, c(cg, x, 0.0), ""), c(cg, x, -INFINITY), r);
    return sel(cg, LLVMBuildFCmp(cg->u->b, LLVMRealULT, x, c(cg, x, 0.0), ""), c(cg, x, NAN), r);
}

static V m_tanh(kiln_cg *cg, V x)
{
    V t = m_expm1(cg, mul(cg, kiln_cg_fabs(cg, x), c(cg, x, -2.0)));
    V y = vdiv(cg, LLVMBuildFNeg(cg->u->b, t, ""), add(cg, t, c(cg, x, 2.0)));
    return kiln_cg_copysign(cg, y, x);
}

static V m_sigmoid(kiln_cg *cg, V x)
{
    V e = m_exp(cg, LLVMBuildFNeg(cg->u->b, kiln_cg_fabs(cg, x), ""));
    V num = sel(cg, LLVMBuildFCmp(cg->u->b, LLVMRealOGE, x, c(cg, x, 0.0), ""), c(cg, x, 1.0), e);
    return vdiv(cg, num, add(cg, c(cg, x, 1.0), e));
}

/* erf(x) / x for |x| < 1, as a polynomial in x^2. */
static V erf_small(kiln_cg *cg, V x2)
{
    static const double p[7] = {7.8758750626854883e-5, -0.00080168642871658695, 0.005189087423433974,
                                -0.026854212010626412, 0.11283594715160218,    -0.37612626666720331,
                                1.1283791658483509};
    return horner(cg, x2, p, 7);
}

/* erfc(z) for z >= 0.5, given z^2 = hi + lo exactly (hi <= 200). */
static V erfc_tail(kiln_cg *cg, V z, V hi, V lo)
{
    static const double p[10] = {-0.032967157574249221, 0.079193362621371623, 0.037702267745276659,
                                 -0.24252998561607122,  0.13097848241810177,  0.028389912605701778,
                                 0.19008176835858642,   0.24476766495043103,  0.2822660209347443,
                                 0.28208878091834572};
    V zc = kiln_cg_clamp(cg, z, 0.5, 12.0);
    V t = vdiv(cg, c(cg, z, 1.0), kiln_cg_fma(cg, zc, c(cg, z, 0.5), c(cg, z, 1.0)));
    V r = mul(cg, t, horner(cg, t, p, 10));
    /* exp(-(hi + lo)) = exp(-hi) (1 - lo) to first order; |lo| <= ulp(hi)/2. */
    V e = mul(cg, m_exp(cg, LLVMBuildFNeg(cg->u->b, hi, "")), sub(cg, c(cg, z, 1.0), lo));
    return mul(cg, r, e);
}

/* s^2 = hi + lo exactly, for s clamped to [-20, 20] (beyond, erfc is 0). */
static void square_split(kiln_cg *cg, V s, V *hi, V *lo)
{
    V sc = kiln_cg_clamp(cg, s, -20.0, 20.0);
    *hi = mul(cg, sc, sc);
    *lo = kiln_cg_fma(cg, sc, sc, LLVMBuildFNeg(cg->u->b, *hi, ""));
}

static V m_erf(kiln_cg *cg, V x)
{
    V a = kiln_cg_fabs(cg, x);
    V small = mul(cg, x, erf_small(cg, mul(cg, x, x)));
    V hi, lo;
    square_split(cg, x, &hi, &lo);
    V tail = kiln_cg_copysign(cg, sub(cg, c(cg, x, 1.0), erfc_tail(cg, a, hi, lo)), x);
    return sel(cg, lt(cg, a, c(cg, x, 0.5)), small, tail);
}

static V m_gelu(kiln_cg *cg, V x)
{
    V y = mul(cg, x, c(cg, x, SQRT_HALF));
    V a = kiln_cg_fabs(cg, y);
    /* y^2 = x^2 / 2 = hi + lo exactly. */
    V hi, lo;
    square_split(cg, x, &hi, &lo);
    hi = mul(cg, hi, c(cg, x, 0.5));
    lo = mul(cg, lo, c(cg, x, 0.5));
    /* 1 + erf(y): erfc(-y) below -0.5 (no cancellation), the series up to 1,
     * 2 - erfc(y) above. */
    V small = kiln_cg_fma(cg, y, erf_small(cg, mul(cg, y, y)), c(cg, x, 1.0));
    V tail = erfc_tail(cg, a, hi, lo);
    V onep = sel(cg, lt(cg, y, c(cg, x, -0.5)), tail,
                 sel(cg, lt(cg, y, c(cg, x, 1.0)), small, sub(cg, c(cg, x, 2.0), tail)));
    return mul(cg, mul(cg, x, c(cg, x, 0.5)), onep);
}

/* x sigmoid(v), v = 2 sqrt(2/pi) (x + 0.044715 x^3). The function is
 * ill-conditioned for x << 0 (|x f'/f| ~ 17 at x = -4), so v is computed in
 * double and split into hi + lo; exp(-|v|) = exp(-|hi|) (1 -+ lo). */
static V m_gelu_tanh(kiln_cg *cg, V x)
{
    unsigned n = LLVMGetTypeKind(LLVMTypeOf(x)) == LLVMVectorTypeKind ? LLVMGetVectorSize(LLVMTypeOf(x)) : 0;
    LLVMTypeRef f64 = LLVMDoubleTypeInContext(cg->u->ctx), dt = n ? LLVMVectorType(f64, n) : f64;
    LLVMValueRef dc[3];
    double dv[3] = {2.0 * SQRT_2_OVER_PI, 0.044715, 1.0};
    for (int i = 0; i < 3; i++) {
        LLVMValueRef k = LLVMConstReal(f64, dv[i]), lanes[64];
        for (unsigned j = 0; j < n; j++)
            lanes[j] = k;
        dc[i] = n ? LLVMConstVector(lanes, n) : k;
    }
    V xd = LLVMBuildFPExt(cg->u->b, kiln_cg_clamp(cg, x, -100.0, 100.0), dt, "");
    V inner = kiln_cg_fma(cg, LLVMBuildFMul(cg->u->b, xd, xd, ""), dc[1], dc[2]);
    V v = LLVMBuildFMul(cg->u->b, LLVMBuildFMul(cg->u->b, xd, dc[0], ""), inner, "v");
    V hi = LLVMBuildFPTrunc(cg->u->b, v, LLVMTypeOf(x), "");
    V lo = LLVMBuildFPTrunc(cg->u->b, LLVMBuildFSub(cg->u->b, v, LLVMBuildFPExt(cg->u->b, hi, dt, ""), ""), LLVMTypeOf(x), "");
    V pos = LLVMBuildFCmp(cg->u->b, LLVMRealOGE, hi, c(cg, x, 0.0), "");
    V slo = sel(cg, pos, lo, LLVMBuildFNeg(cg->u->b, lo, ""));
    V e = mul(cg, m_exp(cg, LLVMBuildFNeg(cg->u->b, kiln_cg_fabs(cg, hi), "")), sub(cg, c(cg, x, 1.0), slo));
    V num = sel(cg, pos, c(cg, x, 1.0), e);
    return mul(cg, x, vdiv(cg, num, add(cg, c(cg, x, 1.0), e)));
}

/* softplus: torch.nn.Softplus (beta 1, threshold 20): x above 20, else
 * max(x, 0) + log1p(exp(-|x|)), log1p(u) = log(w) - ((w - 1) - u) / w with
 * w = 1 + u rounded (exact for the tiny u where w = 1, so softplus(x) =
 * exp(x) far below 0). */
static V m_softplus(kiln_cg *cg, V x)
{
    V u = m_exp(cg, LLVMBuildFNeg(cg->u->b, kiln_cg_fabs(cg, x), "")); /* (0, 1] */
    V w = add(cg, u, c(cg, x, 1.0));
    V corr = vdiv(cg, sub(cg, sub(cg, w, c(cg, x, 1.0)), u), w);
    V l1p = sub(cg, m_log(cg, w), corr);
    V pos = sel(cg, LLVMBuildFCmp(cg->u->b, LLVMRealOGT, x, c(cg, x, 0.0), ""), x, c(cg, x, 0.0));
    return sel(cg, LLVMBuildFCmp(cg->u->b, LLVMRealOGT, x, c(cg, x, 20.0), ""), x, add(cg, pos, l1p));
}

V kiln_cg_log(kiln_cg *cg, V x) { return m_log(cg, x); }

V kiln_cg_exp(kiln_cg *cg, V x) { return m_exp(cg, x); }

V kiln_cg_math(kiln_cg *cg, kiln_cg_math_fn fn, V x)
{
    switch (fn) {
    case KILN_CG_MATH_EXP: return m_exp(cg, x);
    case KILN_CG_MATH_EXPM1: return m_expm1(cg, x);
    case KILN_CG_MATH_LOG: return m_log(cg, x);
    case KILN_CG_MATH_TANH: return m_tanh(cg, x);
    case KILN_CG_MATH_SIGMOID: return m_sigmoid(cg, x);
    case KILN_CG_MATH_ERF: return m_erf(cg, x);
    case KILN_CG_MATH_GELU: return m_gelu(cg, x);
    case KILN_CG_MATH_GELU_TANH: return m_gelu_tanh(cg, x);
    case KILN_CG_MATH_SILU: return mul(cg, x, m_sigmoid(cg, x));
    case KILN_CG_MATH_SOFTPLUS: return m_softplus(cg, x);
    case KILN_CG_MATH_COUNT: break;
    }
    kiln_cg_fail(cg, KILN_ERR_INTERNAL, "unknown math function %d", (int)fn);
    return x;
}

/* ---- stand-alone kernels for the accuracy tests ----------------------------- */

typedef struct math_arg {
    kiln_cg_math_fn fn;
    V x, y;
} math_arg;

static void math_body(kiln_cg *cg, V i, V mask, void *p)
{
    math_arg *a = p;
    V v = kiln_cg_vload(cg, a->x, i, mask, 0.0);
    kiln_cg_vstore(cg, kiln_cg_math(cg, a->fn, v), a->y, i, mask);
}

V kiln_cg_emit_math_kernel(kiln_cg *cg, kiln_cg_math_fn fn, const char *name)
{
    LLVMTypeRef params[3] = {cg->u->t_ptr, cg->u->t_ptr, cg->u->t_i64};
    LLVMTypeRef ft = LLVMFunctionType(cg->u->t_void, params, 3, 0);
    cg->f.fn = LLVMAddFunction(cg->u->mod, name, ft);
    kiln_cg_function_attrs(cg, cg->f.fn);
    cg->f.entry = LLVMAppendBasicBlockInContext(cg->u->ctx, cg->f.fn, "entry");
    LLVMPositionBuilderAtEnd(cg->u->b, cg->f.entry);
    math_arg a = {fn, LLVMGetParam(cg->f.fn, 0), LLVMGetParam(cg->f.fn, 1)};
    kiln_cg_vloop(cg, kiln_cg_i64(cg, 0), LLVMGetParam(cg->f.fn, 2), math_body, &a);
    LLVMBuildRetVoid(cg->u->b);
    return cg->f.fn;
}
