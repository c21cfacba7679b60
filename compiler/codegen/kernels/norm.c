/* compiler/codegen/kernels/norm.c: batchnorm, layernorm, softmax and
 * log_softmax.
 *
 * batchnorm is folded at compile time into y = x * scale + shift per channel
 * (scale = weight / sqrt(var + eps), shift = bias - mean * scale, computed in
 * double): the blob holds [scale(C), shift(C)]. The kernel runs along the
 * spatial plane of each channel, or along the channels when there is no
 * plane (rank 2).
 * layernorm: per row of the last axis, mean and the biased variance in two
 * vector passes, then (x - mean) / sqrt(var + eps) * weight + bias.
 * softmax over `axis`: max, sum of exp(x - max) (stored), then the division;
 * along the axis when it is the last (horizontal reductions), across the
 * trailing axes otherwise (one vector of independent rows per step). */
#include "compiler/codegen/cg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef LLVMValueRef V;

#define CHUNK 16384

static V ld(kiln_cg *cg, V p) { return LLVMBuildLoad2(cg->u->b, cg->u->t_vf, p, ""); }
static void st(kiln_cg *cg, V v, V p) { LLVMBuildStore(cg->u->b, v, p); }

static int64_t rows_per_task(int64_t row_elems) { return row_elems >= CHUNK ? 1 : CHUNK / row_elems; }

/* ---- batchnorm ------------------------------------------------------------------- */

typedef struct affine_arg {
    V x, y;
    V scale, shift;   /* vectors (plane form) or NULL */
    V pscale, pshift; /* pointers (channel form) or NULL */
} affine_arg;

static void affine_body(kiln_cg *cg, V i, V mask, void *p)
{
    affine_arg *a = p;
    V s = a->pscale ? kiln_cg_vload(cg, a->pscale, i, mask, 0.0) : a->scale;
    V t = a->pshift ? kiln_cg_vload(cg, a->pshift, i, mask, 0.0) : a->shift;
    V x = kiln_cg_vload(cg, a->x, i, mask, 0.0);
    kiln_cg_vstore(cg, kiln_cg_fma(cg, x, s, t), a->y, i, mask);
}

kiln_status kiln_cg_emit_batchnorm(kiln_cg *cg, const kiln_node *n)
{
    static const char *const roles[4] = {"weight", "bias", "running_mean", "running_var"};
    const kiln_shape *xs = &kiln_graph_value(cg->g, n->inputs[0])->type.shape;
    if (xs->rank < 2)
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "malformed batchnorm");
    const int64_t C = xs->dims[1];
    float *p[4] = {NULL, NULL, NULL, NULL};
    size_t count = 0;
    for (int i = 0; i < 4; i++) {
        kiln_id id = kiln_node_param(cg->g, n, roles[i]);
        if (id == KILN_NO_ID) {
            kiln_cg_fail(cg, KILN_ERR_INTERNAL, "batchnorm without %s", roles[i]);
            break;
        }
        if (!(p[i] = kiln_cg_param_f32(cg, id, &count)) || count != (size_t)C) {
            if (p[i])
                kiln_cg_fail(cg, KILN_ERR_INTERNAL, "%s has %zu elements, not %lld", roles[i], count, (long long)C);
            break;
        }
    }
    uint64_t off = 0;
    float *blob = cg->status == KILN_OK ? kiln_cg_blob_alloc(cg, (size_t)(2 * C), &off) : NULL;
    if (blob) {
        const double eps = n->attrs[KILN_ATTR_EPS].f;
        for (int64_t c = 0; c < C; c++) {
            double scale = (double)p[0][c] / sqrt((double)p[3][c] + eps);
            blob[c] = (float)scale;
            blob[C + c] = (float)((double)p[1][c] - (double)p[2][c] * scale);
        }
    }
    for (int i = 0; i < 4; i++)
        free(p[i]);
    if (!blob)
        return cg->status;

    int64_t inner = 1;
    for (int i = 2; i < xs->rank; i++)
        inner *= xs->dims[i];
    const bool batched = xs->batched;
    const int64_t items = batched ? 1 : xs->dims[0];
    char kernel[96];
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, kiln_cg_node_dtype(cg, n), KILN_CG_ON_TARGET, 0, 0, "batchnorm");
    kiln_cg_task_begin(cg, kernel, n);
    V px = kiln_cg_value_ptr(cg, n->inputs[0]), py = kiln_cg_value_ptr(cg, n->output);
    V pscale = kiln_cg_weights_ptr(cg, off), pshift = kiln_cg_weights_ptr(cg, off + (uint64_t)C * 4u);
    int64_t unit = inner == 1 ? C : inner;          /* elements per row */
    int64_t rows = inner == 1 ? items : items * C; /* rows per batch item or in total */
    int64_t per_task = rows_per_task(unit);
    V total = kiln_cg_i64(cg, rows);
    if (batched)
        total = LLVMBuildMul(cg->u->b, total, kiln_cg_batch(cg), "");
    V lo, hi;
    kiln_cg_task_range(cg, total, per_task, &lo, &hi);
    kiln_cg_loop l;
    V r = kiln_cg_for_begin(cg, &l, lo, hi, kiln_cg_i64(cg, 1));
    affine_arg a = {kiln_cg_gep(cg, px, kiln_cg_imul(cg, r, unit)), kiln_cg_gep(cg, py, kiln_cg_imul(cg, r, unit)), NULL, NULL,
                    NULL, NULL};
    if (inner == 1) {
        a.pscale = pscale;
        a.pshift = pshift;
    } else {
        V c = kiln_cg_urem(cg, r, C);
        a.scale = kiln_cg_splat(cg, kiln_cg_load(cg, pscale, c));
        a.shift = kiln_cg_splat(cg, kiln_cg_load(cg, pshift, c));
    }
    kiln_cg_vloop(cg, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, unit), affine_body, &a);
    kiln_cg_for_end(cg, &l);
    kiln_cg_task_end(cg, (kiln_cg_count){batched ? 0 : rows, batched ? rows : 0, per_task, 1, 0});
    return cg->status;
}

/* ---- layernorm --------------------------------------------------------------------- */

typedef struct ln_arg {
    int pass; /* 0: sum, 1: squared deviations, 2: write */
    V x, y, acc, mean, inv, w, b;
} ln_arg;

static void ln_body(kiln_cg *cg, V i, V mask, void *p)
{
    ln_arg *a = p;
    V x = kiln_cg_vload(cg, a->x, i, mask, 0.0);
    if (a->pass == 0) {
        st(cg, LLVMBuildFAdd(cg->u->b, ld(cg, a->acc), x, ""), a->acc);
    } else if (a->pass == 1) {
        V d = LLVMBuildFSub(cg->u->b, x, a->mean, "");
        V d2 = LLVMBuildFMul(cg->u->b, d, d, "");
        if (mask)
            d2 = LLVMBuildSelect(cg->u->b, mask, d2, LLVMConstNull(cg->u->t_vf), "");
        st(cg, LLVMBuildFAdd(cg->u->b, ld(cg, a->acc), d2, ""), a->acc);
    } else {
        V y = LLVMBuildFMul(cg->u->b, LLVMBuildFSub(cg->u->b, x, a->mean, ""), a->inv, "");
        if (a->w)
            y = LLVMBuildFMul(cg->u->b, y, kiln_cg_vload(cg, a->w, i, mask, 0.0), "");
        if (a->b)
            y = LLVMBuildFAdd(cg->u->b, y, kiln_cg_vload(cg, a->b, i, mask, 0.0), "");
        kiln_cg_vstore(cg, y, a->y, i, mask);
    }
}

kiln_status kiln_cg_emit_layernorm(kiln_cg *cg, const kiln_node *n)
{
    const kiln_shape *xs = &kiln_graph_value(cg->g, n->inputs[0])->type.shape;
    if (xs->rank < 1)
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "malformed layernorm");
    kiln_id wid = kiln_node_param(cg->g, n, "weight"), bid = kiln_node_param(cg->g, n, "bias");
    uint64_t w_off = 0, b_off = 0;
    if ((wid != KILN_NO_ID && kiln_cg_blob_param(cg, wid, &w_off) != KILN_OK) ||
        (bid != KILN_NO_ID && kiln_cg_blob_param(cg, bid, &b_off) != KILN_OK))
        return cg->status;
    const int64_t D = xs->dims[xs->rank - 1];
    int64_t rows = 1;
    for (int i = xs->batched ? 1 : 0; i < xs->rank - 1; i++)
        rows *= xs->dims[i];
    const int64_t per_task = rows_per_task(D);
    char kernel[96];
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, kiln_cg_node_dtype(cg, n), KILN_CG_ON_TARGET, 0, 0, "layernorm");
    kiln_cg_task_begin(cg, kernel, n);
    V px = kiln_cg_value_ptr(cg, n->inputs[0]), py = kiln_cg_value_ptr(cg, n->output);
    V total = kiln_cg_i64(cg, rows);
    if (xs->batched)
        total = LLVMBuildMul(cg->u->b, total, kiln_cg_batch(cg), "");
    V lo, hi;
    kiln_cg_task_range(cg, total, per_task, &lo, &hi);
    kiln_cg_loop l;
    V r = kiln_cg_for_begin(cg, &l, lo, hi, kiln_cg_i64(cg, 1));
    ln_arg a = {0, kiln_cg_gep(cg, px, kiln_cg_imul(cg, r, D)), kiln_cg_gep(cg, py, kiln_cg_imul(cg, r, D)),
                kiln_cg_alloca(cg, cg->u->t_vf, "acc"), NULL, NULL,
                wid != KILN_NO_ID ? kiln_cg_weights_ptr(cg, w_off) : NULL,
                bid != KILN_NO_ID ? kiln_cg_weights_ptr(cg, b_off) : NULL};
    V zero = kiln_cg_i64(cg, 0), d = kiln_cg_i64(cg, D), fd = kiln_cg_f32(cg, (double)D);
    st(cg, LLVMConstNull(cg->u->t_vf), a.acc);
    kiln_cg_vloop(cg, zero, d, ln_body, &a);
    V mean = LLVMBuildFDiv(cg->u->b, kiln_cg_reduce_add(cg, ld(cg, a.acc)), fd, "mean");
    a.mean = kiln_cg_splat(cg, mean);
    a.pass = 1;
    st(cg, LLVMConstNull(cg->u->t_vf), a.acc);
    kiln_cg_vloop(cg, zero, d, ln_body, &a);
    V var = LLVMBuildFDiv(cg->u->b, kiln_cg_reduce_add(cg, ld(cg, a.acc)), fd, "var");
    V inv = LLVMBuildFDiv(cg->u->b, kiln_cg_f32(cg, 1.0),
                          kiln_cg_sqrt(cg, LLVMBuildFAdd(cg->u->b, var, kiln_cg_f32(cg, n->attrs[KILN_ATTR_EPS].f), "")),
                          "inv");
    a.inv = kiln_cg_splat(cg, inv);
    a.pass = 2;
    kiln_cg_vloop(cg, zero, d, ln_body, &a);
    kiln_cg_for_end(cg, &l);
    kiln_cg_task_end(cg, (kiln_cg_count){xs->batched ? 0 : rows, xs->batched ? rows : 0, per_task, 1, 0});
    return cg->status;
}

/* ---- softmax / log_softmax ---------------------------------------------------------- */

/* Along the last axis: a row of L contiguous elements. */
typedef struct row_arg {
    int pass; /* 0: max, 1: exp and sum, 2: write */
    bool log_form;
    V x, y, acc, m, scale; /* scale: 1/sum splat (softmax) or lse splat (log) */
} row_arg;

static void row_body(kiln_cg *cg, V i, V mask, void *p)
{
    row_arg *a = p;
    if (a->pass == 0) {
        V x = kiln_cg_vload(cg, a->x, i, mask, -INFINITY);
        V cur = ld(cg, a->acc);
        st(cg, LLVMBuildSelect(cg->u->b, LLVMBuildFCmp(cg->u->b, LLVMRealOGT, x, cur, ""), x, cur, ""), a->acc);
    } else if (a->pass == 1) {
        V x = kiln_cg_vload(cg, a->x, i, mask, 0.0);
        V d = LLVMBuildFSub(cg->u->b, x, a->m, "");
        if (a->log_form) {
            V e = kiln_cg_math(cg, KILN_CG_MATH_EXP, d);
            if (mask)
                e = LLVMBuildSelect(cg->u->b, mask, e, LLVMConstNull(cg->u->t_vf), "");
            st(cg, LLVMBuildFAdd(cg->u->b, ld(cg, a->acc), e, ""), a->acc);
        } else {
            V e = kiln_cg_math(cg, KILN_CG_MATH_EXP, d);
            kiln_cg_vstore(cg, e, a->y, i, mask);
            if (mask)
                e = LLVMBuildSelect(cg->u->b, mask, e, LLVMConstNull(cg->u->t_vf), "");
            st(cg, LLVMBuildFAdd(cg->u->b, ld(cg, a->acc), e, ""), a->acc);
        }
    } else if (a->log_form) {
        V x = kiln_cg_vload(cg, a->x, i, mask, 0.0);
        kiln_cg_vstore(cg, LLVMBuildFSub(cg->u->b, LLVMBuildFSub(cg->u->b, x, a->m, ""), a->scale, ""), a->y, i, mask);
    } else {
        V e = kiln_cg_vload(cg, a->y, i, mask, 0.0);
        kiln_cg_vstore(cg, LLVMBuildFDiv(cg->u->b, e, a->scale, ""), a->y, i, mask);
    }
}

/* Across trailing axes: lanes are `inner` independent rows, stride inner. */
typedef struct col_arg {
    bool log_form;
    int64_t L, inner;
    V x, y;
} col_arg;

static void col_body(kiln_cg *cg, V i, V mask, void *p)
{
    col_arg *a = p;
    V m = kiln_cg_alloca(cg, cg->u->t_vf, "m"), s = kiln_cg_alloca(cg, cg->u->t_vf, "s");
    st(cg, kiln_cg_fconst(cg, LLVMGetPoison(cg->u->t_vf), -INFINITY), m);
    st(cg, LLVMConstNull(cg->u->t_vf), s);
    kiln_cg_loop l;
    V j = kiln_cg_for_begin(cg, &l, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, a->L), kiln_cg_i64(cg, 1));
    V off = LLVMBuildAdd(cg->u->b, kiln_cg_imul(cg, j, a->inner), i, "");
    V x = kiln_cg_vload(cg, a->x, off, mask, -INFINITY);
    V cur = ld(cg, m);
    st(cg, LLVMBuildSelect(cg->u->b, LLVMBuildFCmp(cg->u->b, LLVMRealOGT, x, cur, ""), x, cur, ""), m);
    kiln_cg_for_end(cg, &l);
    V mv = ld(cg, m);
    j = kiln_cg_for_begin(cg, &l, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, a->L), kiln_cg_i64(cg, 1));
    off = LLVMBuildAdd(cg->u->b, kiln_cg_imul(cg, j, a->inner), i, "");
    x = kiln_cg_vload(cg, a->x, off, mask, 0.0);
    V e = kiln_cg_math(cg, KILN_CG_MATH_EXP, LLVMBuildFSub(cg->u->b, x, mv, ""));
    if (!a->log_form)
        kiln_cg_vstore(cg, e, a->y, off, mask);
    st(cg, LLVMBuildFAdd(cg->u->b, ld(cg, s), e, ""), s);
    kiln_cg_for_end(cg, &l);
    V sv = ld(cg, s);
    V lse = a->log_form ? kiln_cg_log(cg, sv) : NULL;
    j = kiln_cg_for_begin(cg, &l, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, a->L), kiln_cg_i64(cg, 1));
    off = LLVMBuildAdd(cg->u->b, kiln_cg_imul(cg, j, a->inner), i, "");
    if (a->log_form) {
        x = kiln_cg_vload(cg, a->x, off, mask, 0.0);
        kiln_cg_vstore(cg, LLVMBuildFSub(cg->u->b, LLVMBuildFSub(cg->u->b, x, mv, ""), lse, ""), a->y, off, mask);
    } else {
        e = kiln_cg_vload(cg, a->y, off, mask, 0.0);
        kiln_cg_vstore(cg, LLVMBuildFDiv(cg->u->b, e, sv, ""), a->y, off, mask);
    }
    kiln_cg_for_end(cg, &l);
}

kiln_status kiln_cg_emit_softmax(kiln_cg *cg, const kiln_node *n)
{
    const kiln_shape *xs = &kiln_graph_value(cg->g, n->inputs[0])->type.shape;
    int64_t axis = n->attrs[KILN_ATTR_AXIS].i;
    if (axis < 0)
        axis += xs->rank;
    if (axis < 0 || axis >= xs->rank || (axis == 0 && xs->batched))
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "softmax axis %lld out of range", (long long)axis);
    const bool log_form = n->op == KILN_OP_LOG_SOFTMAX;
    int64_t outer = 1, inner = 1;
    for (int i = xs->batched ? 1 : 0; i < axis; i++)
        outer *= xs->dims[i];
    for (int i = (int)axis + 1; i < xs->rank; i++)
        inner *= xs->dims[i];
    const int64_t L = xs->dims[axis];
    const int64_t per_task = rows_per_task(L * inner);
    char kernel[96];
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, kiln_cg_node_dtype(cg, n), KILN_CG_ON_TARGET, 0, 0, "%s%s", kiln_op_name(n->op),
                        inner == 1 ? "" : "_strided");
    kiln_cg_task_begin(cg, kernel, n);
    V px = kiln_cg_value_ptr(cg, n->inputs[0]), py = kiln_cg_value_ptr(cg, n->output);
    V total = kiln_cg_i64(cg, outer);
    if (xs->batched)
        total = LLVMBuildMul(cg->u->b, total, kiln_cg_batch(cg), "");
    V lo, hi;
    kiln_cg_task_range(cg, total, per_task, &lo, &hi);
    kiln_cg_loop l;
    V r = kiln_cg_for_begin(cg, &l, lo, hi, kiln_cg_i64(cg, 1));
    V x = kiln_cg_gep(cg, px, kiln_cg_imul(cg, r, L * inner)), y = kiln_cg_gep(cg, py, kiln_cg_imul(cg, r, L * inner));
    V zero = kiln_cg_i64(cg, 0);
    if (inner == 1) {
        row_arg a = {0, log_form, x, y, kiln_cg_alloca(cg, cg->u->t_vf, "acc"), NULL, NULL};
        V len = kiln_cg_i64(cg, L);
        st(cg, kiln_cg_fconst(cg, LLVMGetPoison(cg->u->t_vf), -INFINITY), a.acc);
        kiln_cg_vloop(cg, zero, len, row_body, &a);
        a.m = kiln_cg_splat(cg, kiln_cg_reduce_max(cg, ld(cg, a.acc)));
        a.pass = 1;
        st(cg, LLVMConstNull(cg->u->t_vf), a.acc);
        kiln_cg_vloop(cg, zero, len, row_body, &a);
        V sum = kiln_cg_reduce_add(cg, ld(cg, a.acc));
        a.scale = kiln_cg_splat(cg, log_form ? kiln_cg_log(cg, sum) : sum);
        a.pass = 2;
        kiln_cg_vloop(cg, zero, len, row_body, &a);
    } else {
        col_arg a = {log_form, L, inner, x, y};
        kiln_cg_vloop(cg, zero, kiln_cg_i64(cg, inner), col_body, &a);
    }
    kiln_cg_for_end(cg, &l);
    kiln_cg_task_end(cg, (kiln_cg_count){xs->batched ? 0 : outer, xs->batched ? outer : 0, per_task, 1, 0});
    return cg->status;
}
