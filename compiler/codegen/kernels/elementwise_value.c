/* compiler/codegen/kernels/elementwise_value.c: what every elementwise op
 * computes, on one LLVMValueRef that is a scalar or a vector of f32.
 *
 * kiln_cg_unary_value and kiln_cg_binary_value are the one definition of
 * each op: the elementwise kernel (kernels/elementwise.c) applies them in its
 * loop, and fusion (fusion.c) applies the same ones as epilogues inside
 * other kernels (activations after a GEMM, a residual add), so a fused op
 * computes exactly what it computes alone. */
#include "compiler/codegen/cg.h"

#include <string.h>

typedef LLVMValueRef V;

static V clamp_keep_nan(kiln_cg *cg, V x, bool has_lo, double lo, bool has_hi, double hi)
{
    if (has_lo) {
        V l = kiln_cg_fconst(cg, x, lo);
        x = LLVMBuildSelect(cg->u->b, LLVMBuildFCmp(cg->u->b, LLVMRealOLT, x, l, ""), l, x, "");
    }
    if (has_hi) {
        V h = kiln_cg_fconst(cg, x, hi);
        x = LLVMBuildSelect(cg->u->b, LLVMBuildFCmp(cg->u->b, LLVMRealOGT, x, h, ""), h, x, "");
    }
    return x;
}

V kiln_cg_unary_value(kiln_cg *cg, const kiln_node *n, V x)
{
    LLVMBuilderRef b = cg->u->b;
    switch (n->op) {
    case KILN_OP_RELU: /* NaN stays NaN, as in PyTorch */
        return clamp_keep_nan(cg, x, true, 0.0, false, 0.0);
    case KILN_OP_RELU6:
        return clamp_keep_nan(cg, x, true, 0.0, true, 6.0);
    case KILN_OP_SIGMOID:
        return kiln_cg_math(cg, KILN_CG_MATH_SIGMOID, x);
    case KILN_OP_TANH:
        return kiln_cg_math(cg, KILN_CG_MATH_TANH, x);
    case KILN_OP_SILU:
        return kiln_cg_math(cg, KILN_CG_MATH_SILU, x);
    case KILN_OP_HARDSWISH: {
        V r = clamp_keep_nan(cg, LLVMBuildFAdd(b, x, kiln_cg_fconst(cg, x, 3.0), ""), true, 0.0, true, 6.0);
        return LLVMBuildFDiv(b, LLVMBuildFMul(b, x, r, ""), kiln_cg_fconst(cg, x, 6.0), "hardswish");
    }
    case KILN_OP_HARDSIGMOID: {
        double alpha = n->attrs[KILN_ATTR_ALPHA].f, beta = n->attrs[KILN_ATTR_BETA].f;
        if (kiln_node_has(n, KILN_ATTR_ALPHA) && (alpha != 1.0 / 6.0 || beta != 0.5)) /* clip(alpha x + beta, 0, 1) */
            return clamp_keep_nan(cg, kiln_cg_fma(cg, x, kiln_cg_fconst(cg, x, alpha), kiln_cg_fconst(cg, x, beta)),
                                  true, 0.0, true, 1.0);
        V r = clamp_keep_nan(cg, LLVMBuildFAdd(b, x, kiln_cg_fconst(cg, x, 3.0), ""), true, 0.0, true, 6.0);
        return LLVMBuildFDiv(b, r, kiln_cg_fconst(cg, x, 6.0), "hardsigmoid");
    }
    case KILN_OP_EXP:
        return kiln_cg_math(cg, KILN_CG_MATH_EXP, x);
    case KILN_OP_SQRT:
        return kiln_cg_sqrt(cg, x);
    case KILN_OP_NEG:
        return LLVMBuildFNeg(b, x, "neg");
    case KILN_OP_ERF:
        return kiln_cg_math(cg, KILN_CG_MATH_ERF, x);
    case KILN_OP_ABS:
        return kiln_cg_fabs(cg, x);
    case KILN_OP_LOG:
        return kiln_cg_log(cg, x);
    case KILN_OP_SOFTPLUS:
        return kiln_cg_math(cg, KILN_CG_MATH_SOFTPLUS, x);
    case KILN_OP_GELU: {
        const char *const *words = kiln_attr_words(KILN_ATTR_APPROXIMATE);
        int64_t w = n->attrs[KILN_ATTR_APPROXIMATE].i;
        bool tanh_form = w == 1 && words && words[0] && words[1] && strcmp(words[1], "tanh") == 0;
        return kiln_cg_math(cg, tanh_form ? KILN_CG_MATH_GELU_TANH : KILN_CG_MATH_GELU, x);
    }
    case KILN_OP_LEAKY_RELU: {
        V pos = LLVMBuildFCmp(b, LLVMRealOGT, x, kiln_cg_fconst(cg, x, 0.0), "");
        V neg = LLVMBuildFMul(b, x, kiln_cg_fconst(cg, x, n->attrs[KILN_ATTR_ALPHA].f), "");
        return LLVMBuildSelect(b, pos, x, neg, "leaky_relu");
    }
    case KILN_OP_ELU: {
        V pos = LLVMBuildFCmp(b, LLVMRealOGT, x, kiln_cg_fconst(cg, x, 0.0), "");
        V neg = LLVMBuildFMul(b, kiln_cg_math(cg, KILN_CG_MATH_EXPM1, x),
                              kiln_cg_fconst(cg, x, n->attrs[KILN_ATTR_ALPHA].f), "");
        return LLVMBuildSelect(b, pos, x, neg, "elu");
    }
    case KILN_OP_CLIP:
        return clamp_keep_nan(cg, x, kiln_node_has(n, KILN_ATTR_MIN), n->attrs[KILN_ATTR_MIN].f,
                              kiln_node_has(n, KILN_ATTR_MAX), n->attrs[KILN_ATTR_MAX].f);
    case KILN_OP_IDENTITY:
    case KILN_OP_DROPOUT:
        return x;
    default:
        break;
    }
    kiln_cg_fail(cg, KILN_ERR_INTERNAL, "%s is not a unary elementwise op", kiln_op_name(n->op));
    return x;
}

V kiln_cg_binary_value(kiln_cg *cg, kiln_op op, V a, V b)
{
    switch (op) {
    case KILN_OP_ADD: return LLVMBuildFAdd(cg->u->b, a, b, "add");
    case KILN_OP_SUB: return LLVMBuildFSub(cg->u->b, a, b, "sub");
    case KILN_OP_MUL: return LLVMBuildFMul(cg->u->b, a, b, "mul");
    case KILN_OP_DIV: return LLVMBuildFDiv(cg->u->b, a, b, "div");
    case KILN_OP_MAX: return kiln_cg_fmax_nan(cg, a, b);
    case KILN_OP_MIN: return kiln_cg_fmin_nan(cg, a, b);
    case KILN_OP_POW: return kiln_cg_pow(cg, a, b);
    default: break;
    }
    kiln_cg_fail(cg, KILN_ERR_INTERNAL, "%s is not a binary op", kiln_op_name(op));
    return a;
}
