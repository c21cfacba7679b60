/* compiler/codegen/kernels_elementwise.c: the one-input elementwise ops and
 * the binary ops with NumPy broadcasting.
 *
 * kiln_cg_unary_value is the one definition of every unary op (and of the
 * activation epilogues that fusion will apply inside other kernels): it
 * takes and returns an LLVMValueRef that is a scalar or a vector.
 *
 * Unary kernel: a flat vector loop over the elements, chunked into tasks
 * of CHUNK elements, with a masked tail.
 * Binary kernel: the output's axes with size 1 are dropped and adjacent
 * axes merged where both operands are contiguous (or both broadcast) across
 * them; the last remaining axis is the vector loop (each operand either
 * contiguous or a broadcast scalar), the others are rows split into tasks. */
#include "cg.h"

#include <stdio.h>
#include <string.h>

#define CHUNK 16384 /* elements per task */

typedef LLVMValueRef V;

static V clamp_keep_nan(kiln_cg *cg, V x, bool has_lo, double lo, bool has_hi, double hi)
{
    if (has_lo) {
        V l = kiln_cg_fconst(cg, x, lo);
        x = LLVMBuildSelect(cg->b, LLVMBuildFCmp(cg->b, LLVMRealOLT, x, l, ""), l, x, "");
    }
    if (has_hi) {
        V h = kiln_cg_fconst(cg, x, hi);
        x = LLVMBuildSelect(cg->b, LLVMBuildFCmp(cg->b, LLVMRealOGT, x, h, ""), h, x, "");
    }
    return x;
}

V kiln_cg_unary_value(kiln_cg *cg, const kiln_node *n, V x)
{
    LLVMBuilderRef b = cg->b;
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
        V r = clamp_keep_nan(cg, LLVMBuildFAdd(b, x, kiln_cg_fconst(cg, x, 3.0), ""), true, 0.0, true, 6.0);
        return LLVMBuildFDiv(b, r, kiln_cg_fconst(cg, x, 6.0), "hardsigmoid");
    }
    case KILN_OP_EXP:
        return kiln_cg_math(cg, KILN_CG_MATH_EXP, x);
    case KILN_OP_SQRT:
        return kiln_cg_sqrt(cg, x);
    case KILN_OP_NEG:
        return LLVMBuildFNeg(b, x, "neg");
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
    case KILN_OP_ADD: return LLVMBuildFAdd(cg->b, a, b, "add");
    case KILN_OP_SUB: return LLVMBuildFSub(cg->b, a, b, "sub");
    case KILN_OP_MUL: return LLVMBuildFMul(cg->b, a, b, "mul");
    case KILN_OP_DIV: return LLVMBuildFDiv(cg->b, a, b, "div");
    case KILN_OP_MAX: return kiln_cg_fmax_nan(cg, a, b);
    case KILN_OP_MIN: return kiln_cg_fmin_nan(cg, a, b);
    default: break;
    }
    kiln_cg_fail(cg, KILN_ERR_INTERNAL, "%s is not a binary op", kiln_op_name(op));
    return a;
}

/* ---- unary kernel ------------------------------------------------------------- */

typedef struct unary_arg {
    const kiln_node *n;
    V x, y;
} unary_arg;

static void unary_body(kiln_cg *cg, V i, V mask, void *p)
{
    unary_arg *a = p;
    V v = kiln_cg_vload(cg, a->x, i, mask, 0.0);
    kiln_cg_vstore(cg, kiln_cg_unary_value(cg, a->n, v), a->y, i, mask);
}

static kiln_cg_count flat_count(const kiln_cg *cg, kiln_id v, int64_t chunk)
{
    int64_t e = kiln_cg_elems_per_item(cg, v);
    bool batched = kiln_cg_batched(cg, v);
    return (kiln_cg_count){batched ? 0 : e, batched ? e : 0, chunk, 1};
}

kiln_status kiln_cg_emit_unary(kiln_cg *cg, const kiln_node *n)
{
    char kernel[96];
    snprintf(kernel, sizeof kernel, "f32_%s_%s", kiln_op_name(n->op), cg->target->name);
    kiln_cg_task_begin(cg, kernel, n);
    unary_arg a = {n, kiln_cg_value_ptr(cg, n->inputs[0]), kiln_cg_value_ptr(cg, n->output)};
    V lo, hi;
    kiln_cg_task_range(cg, kiln_cg_value_elems(cg, n->output), CHUNK, &lo, &hi);
    kiln_cg_vloop(cg, lo, hi, unary_body, &a);
    kiln_cg_task_end(cg, flat_count(cg, n->output, CHUNK));
    return cg->status;
}

/* ---- binary kernel ------------------------------------------------------------- */

/* One operand of the inner loop: contiguous (vector loads) or broadcast (a
 * scalar splat once per row), or the node's `scalar` constant. */
typedef struct operand {
    V base;     /* float * of the row, set per row */
    bool contiguous;
    V splat;    /* broadcast lanes for this row */
} operand;

typedef struct binary_arg {
    kiln_op op;
    operand a, b;
    V y;
} binary_arg;

static V operand_lanes(kiln_cg *cg, operand *o, V i, V mask)
{
    return o->contiguous ? kiln_cg_vload(cg, o->base, i, mask, 0.0) : o->splat;
}

static void binary_body(kiln_cg *cg, V i, V mask, void *p)
{
    binary_arg *a = p;
    V x = operand_lanes(cg, &a->a, i, mask), y = operand_lanes(cg, &a->b, i, mask);
    kiln_cg_vstore(cg, kiln_cg_binary_value(cg, a->op, x, y), a->y, i, mask);
}

/* Strides (elements) of an operand's dims aligned to the output's rank R;
 * 0 along broadcast axes. */
static void operand_strides(const kiln_shape *s, const kiln_shape *out, int64_t *st)
{
    int R = out->rank;
    int64_t stride = 1;
    for (int i = R - 1; i >= 0; i--) {
        int k = i - (R - s->rank);
        bool batch_axis = k == 0 && s->batched;
        int64_t d = k >= 0 ? (batch_axis ? -1 : s->dims[k]) : 1;
        int64_t od = out->dims[i];
        if (batch_axis)
            st[i] = stride;
        else
            st[i] = (d == 1 && od != 1) ? 0 : stride;
        if (k >= 0 && !batch_axis)
            stride *= d;
    }
}

kiln_status kiln_cg_emit_binary(kiln_cg *cg, const kiln_node *n)
{
    const kiln_shape *out = &kiln_graph_value(cg->g, n->output)->type.shape;
    bool scalar = n->n_inputs == 1;
    bool reverse = kiln_node_has(n, KILN_ATTR_REVERSE) && n->attrs[KILN_ATTR_REVERSE].i;
    int R = out->rank;
    int64_t dims[KILN_MAX_RANK + 1], sa[KILN_MAX_RANK + 1], sb[KILN_MAX_RANK + 1];
    operand_strides(&kiln_graph_value(cg->g, n->inputs[0])->type.shape, out, sa);
    if (!scalar)
        operand_strides(&kiln_graph_value(cg->g, n->inputs[1])->type.shape, out, sb);
    else
        for (int i = 0; i < R; i++)
            sb[i] = 0;

    /* Drop size-1 axes (never the batch), then merge contiguous neighbours;
     * the batch axis stays on its own as the outermost. */
    int r = 0;
    bool batched = out->batched;
    for (int i = 0; i < R; i++) {
        bool batch_axis = i == 0 && batched;
        if (!batch_axis && out->dims[i] == 1)
            continue;
        int64_t d = batch_axis ? -1 : out->dims[i];
        if (r > 0 && !(r == 1 && batched) && sa[r - 1] == sa[i] * d && sb[r - 1] == sb[i] * d) {
            dims[r - 1] *= d;
            sa[r - 1] = sa[i];
            sb[r - 1] = sb[i];
            continue;
        }
        dims[r] = d, sa[r] = sa[i], sb[r] = sb[i];
        r++;
    }
    if (r == 0 || (batched && r == 1)) { /* a single element (per batch item) */
        dims[r] = 1, sa[r] = 0, sb[r] = 0;
        r++;
    }
    const int64_t inner = dims[r - 1];
    int64_t rows_per_item = 1;
    for (int i = batched ? 1 : 0; i < r - 1; i++)
        rows_per_item *= dims[i];
    const int64_t rows_per_task = inner >= CHUNK ? 1 : CHUNK / inner;

    char kernel[96];
    snprintf(kernel, sizeof kernel, "f32_%s_bcast_%s", kiln_op_name(n->op), cg->target->name);
    kiln_cg_task_begin(cg, kernel, n);
    V pa = kiln_cg_value_ptr(cg, n->inputs[0]);
    V pb = scalar ? NULL : kiln_cg_value_ptr(cg, n->inputs[1]);
    V py = kiln_cg_value_ptr(cg, n->output);
    V total_rows = kiln_cg_i64(cg, rows_per_item);
    if (batched)
        total_rows = LLVMBuildMul(cg->b, total_rows, kiln_cg_batch(cg), "rows");
    V lo, hi;
    kiln_cg_task_range(cg, total_rows, rows_per_task, &lo, &hi);
    kiln_cg_loop row;
    V ri = kiln_cg_for_begin(cg, &row, lo, hi, kiln_cg_i64(cg, 1));
    /* Row index -> per-axis indices -> operand offsets. */
    V oa = kiln_cg_i64(cg, 0), ob = kiln_cg_i64(cg, 0), rem = ri;
    for (int i = r - 2; i >= 0; i--) {
        V idx = i == 0 ? rem : kiln_cg_urem(cg, rem, dims[i]);
        if (i > 0)
            rem = kiln_cg_udiv(cg, rem, dims[i]);
        oa = LLVMBuildAdd(cg->b, oa, LLVMBuildMul(cg->b, idx, kiln_cg_i64(cg, sa[i]), ""), "");
        ob = LLVMBuildAdd(cg->b, ob, LLVMBuildMul(cg->b, idx, kiln_cg_i64(cg, sb[i]), ""), "");
    }
    binary_arg arg = {n->op, {0}, {0}, NULL};
    arg.a.base = kiln_cg_gep(cg, pa, oa);
    arg.a.contiguous = sa[r - 1] != 0;
    if (!arg.a.contiguous)
        arg.a.splat = kiln_cg_splat(cg, kiln_cg_load(cg, arg.a.base, kiln_cg_i64(cg, 0)));
    if (scalar) {
        arg.b.contiguous = false;
        arg.b.splat = kiln_cg_splat(cg, kiln_cg_f32(cg, n->attrs[KILN_ATTR_SCALAR].f));
    } else {
        arg.b.base = kiln_cg_gep(cg, pb, ob);
        arg.b.contiguous = sb[r - 1] != 0;
        if (!arg.b.contiguous)
            arg.b.splat = kiln_cg_splat(cg, kiln_cg_load(cg, arg.b.base, kiln_cg_i64(cg, 0)));
    }
    if (reverse) {
        operand t = arg.a;
        arg.a = arg.b;
        arg.b = t;
    }
    arg.y = kiln_cg_gep(cg, py, LLVMBuildMul(cg->b, ri, kiln_cg_i64(cg, inner), ""));
    kiln_cg_vloop(cg, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, inner), binary_body, &arg);
    kiln_cg_for_end(cg, &row);
    int64_t rows_fixed = batched ? 0 : rows_per_item;
    kiln_cg_task_end(cg, (kiln_cg_count){rows_fixed, batched ? rows_per_item : 0, rows_per_task, 1});
    return cg->status;
}
