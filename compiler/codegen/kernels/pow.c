/* compiler/codegen/kernels/pow.c: pow on a scalar or a vector of f32 (the
 * version 1.1 elementwise op that needs more than kernels/math.c's
 * functions: part of it runs in double), branch-free like them, no libm
 * calls.
 *
 *   pow(a, b)   |a| = m 2^e with m in [sqrt(1/2), sqrt(2)): log|a| = e ln2 +
 *               log m, where log m comes from the f32 log (small, so its error
 *               is small in absolute terms) and the rest is done in double:
 *               y = b (e ln2 + log m), y = n ln2 + r, |r| <= ln2/2, then
 *               exp(r) in f32 scaled by 2^n in double and rounded once to
 *               f32 (overflow to inf and gradual underflow come out right).
 *               The error stays about 1e-7 relative times (1 + |b|), where
 *               exp(b log|a|) in f32 alone would lose |b log|a|| ulps. The
 *               special cases are C's (and so PyTorch's): x^0 = 1 and 1^y =
 *               1 even for NaN, a negative base needs an integer exponent
 *               (else NaN) whose parity gives the sign, (-1)^+-inf = 1.
 *               A constant exponent of 0, 1, 2, 3, -1 or 0.5 is a multiply,
 *               a divide or a square root instead (x^2 is then exactly x*x). */
#include "compiler/codegen/cg.h"

#include <math.h>

typedef LLVMValueRef V;

static unsigned lanes(V x)
{
    LLVMTypeRef t = LLVMTypeOf(x);
    return LLVMGetTypeKind(t) == LLVMVectorTypeKind ? LLVMGetVectorSize(t) : 0;
}

/* The double (i64) type with x's lanes. */
static LLVMTypeRef f64_like(kiln_cg *cg, V x)
{
    LLVMTypeRef d = LLVMDoubleTypeInContext(cg->u->ctx);
    return lanes(x) ? LLVMVectorType(d, lanes(x)) : d;
}

static LLVMTypeRef i64_like(kiln_cg *cg, V x)
{
    return lanes(x) ? LLVMVectorType(cg->u->t_i64, lanes(x)) : cg->u->t_i64;
}

static V splat_const(V c, unsigned n)
{
    V l[64];
    for (unsigned i = 0; i < n; i++)
        l[i] = c;
    return n ? LLVMConstVector(l, n) : c;
}

static V dconst(kiln_cg *cg, V like, double v)
{
    return splat_const(LLVMConstReal(LLVMDoubleTypeInContext(cg->u->ctx), v), lanes(like));
}

static V lconst(kiln_cg *cg, V like, int64_t v) { return splat_const(kiln_cg_i64(cg, v), lanes(like)); }

static V c(kiln_cg *cg, V like, double v) { return kiln_cg_fconst(cg, like, v); }
static V sel(kiln_cg *cg, V cond, V a, V b) { return LLVMBuildSelect(cg->u->b, cond, a, b, ""); }
static V fcmp(kiln_cg *cg, LLVMRealPredicate p, V a, V b) { return LLVMBuildFCmp(cg->u->b, p, a, b, ""); }
static V ic(kiln_cg *cg, V like, int64_t v) { return kiln_cg_iconst_like(cg, like, v); }

/* The constant value of every lane of x, when x is a constant splat. */
static bool const_value(V x, double *out)
{
    if (!LLVMIsConstant(x))
        return false;
    unsigned n = lanes(x);
    V e0 = n ? LLVMGetAggregateElement(x, 0) : x;
    if (!e0 || !LLVMIsAConstantFP(e0))
        return false;
    LLVMBool loses;
    double v = LLVMConstRealGetDouble(e0, &loses);
    for (unsigned i = 1; i < n; i++) {
        V ei = LLVMGetAggregateElement(x, i);
        if (!ei || !LLVMIsAConstantFP(ei) || LLVMConstRealGetDouble(ei, &loses) != v)
            return false;
    }
    *out = v;
    return true;
}

/* pow with a constant exponent that has a shorter exact form, or NULL. */
static V pow_special(kiln_cg *cg, V a, double b)
{
    LLVMBuilderRef B = cg->u->b;
    if (b == 0.0)
        return c(cg, a, 1.0);
    if (b == 1.0)
        return a;
    if (b == 2.0)
        return LLVMBuildFMul(B, a, a, "sq");
    if (b == 3.0)
        return LLVMBuildFMul(B, LLVMBuildFMul(B, a, a, ""), a, "cube");
    if (b == -1.0)
        return LLVMBuildFDiv(B, c(cg, a, 1.0), a, "recip");
    if (b == 0.5) /* pow(-0, 0.5) = +0 and pow(-inf, 0.5) = +inf, unlike sqrt */
        return sel(cg, fcmp(cg, LLVMRealOEQ, a, c(cg, a, -INFINITY)), c(cg, a, INFINITY),
                   LLVMBuildFAdd(B, kiln_cg_sqrt(cg, a), c(cg, a, 0.0), "sqrt"));
    return NULL;
}

V kiln_cg_pow(kiln_cg *cg, V a, V b)
{
    LLVMBuilderRef B = cg->u->b;
    double bc;
    if (const_value(b, &bc)) {
        V r = pow_special(cg, a, bc);
        if (r)
            return r;
    }
    LLVMTypeRef dt = f64_like(cg, a), lt = i64_like(cg, a);
    V ax = kiln_cg_fabs(cg, a);

    /* |a| = m 2^e, m in [sqrt(1/2), sqrt(2)); subnormals scaled by 2^23 first */
    V tiny = fcmp(cg, LLVMRealOLT, ax, c(cg, a, 1.17549435e-38));
    V as = sel(cg, tiny, LLVMBuildFMul(B, ax, c(cg, a, 8388608.0), ""), ax);
    V bits = LLVMBuildBitCast(B, as, kiln_cg_int_type_like(cg, a), "");
    V e = LLVMBuildSub(B, LLVMBuildLShr(B, bits, ic(cg, a, 23), ""), ic(cg, a, 127), "");
    e = LLVMBuildSub(B, e, sel(cg, tiny, ic(cg, a, 23), ic(cg, a, 0)), "");
    V m = LLVMBuildBitCast(B, LLVMBuildOr(B, LLVMBuildAnd(B, bits, ic(cg, a, 0x007fffff), ""), ic(cg, a, 0x3f800000), ""),
                           LLVMTypeOf(a), "");
    V big = fcmp(cg, LLVMRealOGE, m, c(cg, a, 1.41421356237309505));
    m = sel(cg, big, LLVMBuildFMul(B, m, c(cg, a, 0.5), ""), m);
    e = LLVMBuildAdd(B, e, sel(cg, big, ic(cg, a, 1), ic(cg, a, 0)), "");
    V lm = kiln_cg_log(cg, m); /* |lm| <= ln(2)/2 */

    /* y = b log|a| in double; log 0 = -inf and log inf = +inf on their own */
    V L = LLVMBuildFAdd(B, LLVMBuildFMul(B, LLVMBuildSIToFP(B, e, dt, ""), dconst(cg, a, M_LN2), ""),
                        LLVMBuildFPExt(B, lm, dt, ""), "log");
    L = sel(cg, fcmp(cg, LLVMRealOEQ, ax, c(cg, a, 0.0)), dconst(cg, a, -INFINITY), L);
    L = sel(cg, fcmp(cg, LLVMRealOEQ, ax, c(cg, a, INFINITY)), dconst(cg, a, INFINITY), L);
    V y = LLVMBuildFMul(B, LLVMBuildFPExt(B, b, dt, ""), L, "y");

    /* exp(y) = 2^n exp(r): n = round(y / ln2), y clamped to [-200, 200]
     * (beyond, the f32 result is 0 or inf either way), r in f32, 2^n and
     * the product in double. n comes out of the low bits of
     * y / ln2 + 1.5 * 2^52 (no double-to-integer conversion, which AVX2
     * lacks for vectors). */
    V yc = sel(cg, fcmp(cg, LLVMRealOLT, y, dconst(cg, a, -200.0)), dconst(cg, a, -200.0), y);
    yc = sel(cg, fcmp(cg, LLVMRealOGT, yc, dconst(cg, a, 200.0)), dconst(cg, a, 200.0), yc);
    yc = sel(cg, fcmp(cg, LLVMRealUNO, yc, yc), dconst(cg, a, 0.0), yc);
    V magic = dconst(cg, a, 6755399441055744.0);
    V t = LLVMBuildFAdd(B, LLVMBuildFMul(B, yc, dconst(cg, a, 1.0 / M_LN2), ""), magic, "");
    V rounded = LLVMBuildFSub(B, t, magic, "");
    V r = LLVMBuildFSub(B, yc, LLVMBuildFMul(B, rounded, dconst(cg, a, M_LN2), ""), "r");
    V p = kiln_cg_exp(cg, LLVMBuildFPTrunc(B, r, LLVMTypeOf(a), ""));
    V n = LLVMBuildSub(B, LLVMBuildBitCast(B, t, lt, ""), LLVMBuildBitCast(B, magic, lt, ""), "n");
    V two_n = LLVMBuildBitCast(B, LLVMBuildShl(B, LLVMBuildAdd(B, n, lconst(cg, a, 1023), ""), lconst(cg, a, 52), ""),
                               dt, "");
    V mag = LLVMBuildFPTrunc(B, LLVMBuildFMul(B, LLVMBuildFPExt(B, p, dt, ""), two_n, ""), LLVMTypeOf(a), "mag");

    /* the sign and the special cases */
    V neg = fcmp(cg, LLVMRealOLT, a, c(cg, a, 0.0));
    V bt = kiln_cg_intrinsic(cg, "llvm.trunc", (LLVMTypeRef[]){LLVMTypeOf(a)}, 1, (V[]){b}, 1);
    V integer = fcmp(cg, LLVMRealOEQ, bt, b);
    V small = fcmp(cg, LLVMRealOLT, kiln_cg_fabs(cg, b), c(cg, a, 16777216.0));
    V bi = LLVMBuildFPToSI(B, sel(cg, small, b, c(cg, a, 0.0)), kiln_cg_int_type_like(cg, a), "");
    V odd = LLVMBuildAnd(B, LLVMBuildAnd(B, small, integer, ""), LLVMBuildTrunc(B, bi, LLVMTypeOf(small), ""), "odd");
    V res = sel(cg, LLVMBuildAnd(B, fcmp(cg, LLVMRealOLT, a, c(cg, a, 0.0)), odd, ""), LLVMBuildFNeg(B, mag, ""), mag);
    /* -0 with an odd exponent keeps its sign too */
    V negzero = LLVMBuildAnd(B, fcmp(cg, LLVMRealOEQ, a, c(cg, a, 0.0)),
                             LLVMBuildICmp(B, LLVMIntSLT, LLVMBuildBitCast(B, a, kiln_cg_int_type_like(cg, a), ""),
                                           ic(cg, a, 0), ""), "");
    res = sel(cg, LLVMBuildAnd(B, negzero, odd, ""), LLVMBuildFNeg(B, mag, ""), res);
    V binf = fcmp(cg, LLVMRealOEQ, kiln_cg_fabs(cg, b), c(cg, a, INFINITY));
    res = sel(cg, LLVMBuildAnd(B, neg, LLVMBuildAnd(B, LLVMBuildNot(B, integer, ""), LLVMBuildNot(B, binf, ""), ""), ""),
              c(cg, a, NAN), res);
    res = sel(cg, LLVMBuildAnd(B, fcmp(cg, LLVMRealOEQ, ax, c(cg, a, 1.0)), binf, ""), c(cg, a, 1.0), res);
    res = sel(cg, LLVMBuildOr(B, fcmp(cg, LLVMRealUNO, a, a), fcmp(cg, LLVMRealUNO, b, b), ""), c(cg, a, NAN), res);
    res = sel(cg, fcmp(cg, LLVMRealOEQ, a, c(cg, a, 1.0)), c(cg, a, 1.0), res);
    return sel(cg, fcmp(cg, LLVMRealOEQ, b, c(cg, a, 0.0)), c(cg, a, 1.0), res);
}
