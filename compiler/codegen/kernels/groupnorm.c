/* compiler/codegen/kernels/groupnorm.c: group_norm (torch.nn.GroupNorm) and
 * prelu (torch.nn.PReLU), the per-channel ops of version 1.1.
 *
 * group_norm: a group of one item is Cg = C / groups consecutive channels,
 * so its Cg * inner elements (inner: the axes after the channels) are
 * contiguous. One task handles whole groups: the mean, then the biased
 * variance around it, each summed in blocks of BLOCK elements (a vector
 * accumulator per block, folded by a fixed tree and added in double, so long
 * groups keep their accuracy), then per channel y = x * s + t with s =
 * weight / sqrt(var + eps) and t = bias - mean * s.
 *
 * prelu: rows of `inner` elements, one per (item, channel); y = x > 0 ? x :
 * w x with w the row's channel's weight (or the single weight), splat once
 * per row. */
#include "compiler/codegen/cg.h"

#include <stdio.h>

typedef LLVMValueRef V;

#define CHUNK 16384 /* elements per task, roughly */
#define BLOCK 4096  /* elements summed in f32 before they join the double sum */


typedef struct gn_arg {
    int pass; /* 0: sum, 1: squared deviations, 2: scale and shift */
    V x, y, acc, mean, scale, shift;
} gn_arg;

static void gn_body(kiln_cg *cg, V i, V mask, void *p)
{
    gn_arg *a = p;
    V x = kiln_cg_vload(cg, a->x, i, mask, 0.0);
    if (a->pass == 0) {
        LLVMBuildStore(cg->u->b, LLVMBuildFAdd(cg->u->b, LLVMBuildLoad2(cg->u->b, cg->u->t_vf, a->acc, ""), x, ""), a->acc);
    } else if (a->pass == 1) {
        V d = LLVMBuildFSub(cg->u->b, x, a->mean, "");
        V d2 = LLVMBuildFMul(cg->u->b, d, d, "");
        if (mask)
            d2 = LLVMBuildSelect(cg->u->b, mask, d2, LLVMConstNull(cg->u->t_vf), "");
        LLVMBuildStore(cg->u->b, LLVMBuildFAdd(cg->u->b, LLVMBuildLoad2(cg->u->b, cg->u->t_vf, a->acc, ""), d2, ""), a->acc);
    } else {
        kiln_cg_vstore(cg, kiln_cg_fma(cg, x, a->scale, a->shift), a->y, i, mask);
    }
}

/* The sum over [0, count) of base (pass 0) or of the squared deviations from
 * a->mean (pass 1), as a double. */
static V gn_sum(kiln_cg *cg, gn_arg *a, V base, int64_t count, V dsum)
{
    LLVMTypeRef f64 = LLVMDoubleTypeInContext(cg->u->ctx);
    LLVMBuildStore(cg->u->b, LLVMConstReal(f64, 0.0), dsum);
    kiln_cg_loop l;
    V b0 = kiln_cg_for_begin(cg, &l, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, count), kiln_cg_i64(cg, BLOCK));
    V b1 = kiln_cg_smin(cg, LLVMBuildAdd(cg->u->b, b0, kiln_cg_i64(cg, BLOCK), ""), kiln_cg_i64(cg, count));
    LLVMBuildStore(cg->u->b, LLVMConstNull(cg->u->t_vf), a->acc);
    a->x = kiln_cg_gep(cg, base, b0);
    kiln_cg_vloop(cg, kiln_cg_i64(cg, 0), LLVMBuildSub(cg->u->b, b1, b0, ""), gn_body, a);
    V s = LLVMBuildFPExt(cg->u->b, kiln_cg_reduce_add(cg, LLVMBuildLoad2(cg->u->b, cg->u->t_vf, a->acc, "")), f64, "");
    LLVMBuildStore(cg->u->b, LLVMBuildFAdd(cg->u->b, LLVMBuildLoad2(cg->u->b, f64, dsum, ""), s, ""), dsum);
    kiln_cg_for_end(cg, &l);
    return LLVMBuildLoad2(cg->u->b, f64, dsum, "");
}

kiln_status kiln_cg_emit_group_norm(kiln_cg *cg, const kiln_node *n)
{
    const kiln_shape *xs = &kiln_graph_value(cg->g, n->inputs[0])->type.shape;
    const int64_t groups = n->attrs[KILN_ATTR_GROUPS].i;
    if (xs->rank < 2 || groups < 1 || xs->dims[1] % groups)
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "malformed group_norm");
    kiln_id wid = kiln_node_param(cg->g, n, "weight"), bid = kiln_node_param(cg->g, n, "bias");
    uint64_t w_off = 0, b_off = 0;
    if ((wid != KILN_NO_ID && kiln_cg_blob_param(cg, wid, &w_off) != KILN_OK) ||
        (bid != KILN_NO_ID && kiln_cg_blob_param(cg, bid, &b_off) != KILN_OK))
        return cg->status;
    const int64_t C = xs->dims[1], Cg = C / groups;
    int64_t inner = 1, items = 1;
    for (int i = 2; i < xs->rank; i++)
        inner *= xs->dims[i];
    if (!xs->batched)
        items = xs->dims[0];
    const int64_t count = Cg * inner, rows = items * groups; /* rows: groups per item (or in all) */
    const int64_t per_task = count >= CHUNK ? 1 : CHUNK / count;
    char kernel[96];
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, kiln_cg_node_dtype(cg, n), KILN_CG_ON_TARGET, 0, 0, "group_norm");
    kiln_cg_task_begin(cg, kernel, n);
    V px = kiln_cg_value_ptr(cg, n->inputs[0]), py = kiln_cg_value_ptr(cg, n->output);
    V pw = wid != KILN_NO_ID ? kiln_cg_weights_ptr(cg, w_off) : NULL;
    V pb = bid != KILN_NO_ID ? kiln_cg_weights_ptr(cg, b_off) : NULL;
    V total = kiln_cg_i64(cg, rows);
    if (xs->batched)
        total = LLVMBuildMul(cg->u->b, total, kiln_cg_batch(cg), "");
    V lo, hi;
    kiln_cg_task_range(cg, total, per_task, &lo, &hi);
    gn_arg a = {0};
    a.acc = kiln_cg_alloca(cg, cg->u->t_vf, "acc");
    V dsum = kiln_cg_alloca(cg, LLVMDoubleTypeInContext(cg->u->ctx), "dsum");
    kiln_cg_loop l;
    V r = kiln_cg_for_begin(cg, &l, lo, hi, kiln_cg_i64(cg, 1));
    V xg = kiln_cg_gep(cg, px, kiln_cg_imul(cg, r, count)), yg = kiln_cg_gep(cg, py, kiln_cg_imul(cg, r, count));
    LLVMTypeRef f64 = LLVMDoubleTypeInContext(cg->u->ctx);
    V dcount = LLVMConstReal(f64, (double)count);
    a.pass = 0;
    V mean_d = LLVMBuildFDiv(cg->u->b, gn_sum(cg, &a, xg, count, dsum), dcount, "mean");
    V mean = LLVMBuildFPTrunc(cg->u->b, mean_d, cg->u->t_f32, "");
    a.mean = kiln_cg_splat(cg, mean);
    a.pass = 1;
    V var = LLVMBuildFDiv(cg->u->b, gn_sum(cg, &a, xg, count, dsum), dcount, "var");
    V inv_d = LLVMBuildFDiv(cg->u->b, LLVMConstReal(f64, 1.0),
                            kiln_cg_intrinsic(cg, "llvm.sqrt", &f64, 1,
                                              (V[]){LLVMBuildFAdd(cg->u->b, var, LLVMConstReal(f64, n->attrs[KILN_ATTR_EPS].f), "")},
                                              1),
                            "inv");
    /* per channel of the group: y = x s + t */
    a.pass = 2;
    V g = kiln_cg_urem(cg, r, groups);
    kiln_cg_loop lc;
    V cl = kiln_cg_for_begin(cg, &lc, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, Cg), kiln_cg_i64(cg, 1));
    V ch = LLVMBuildAdd(cg->u->b, kiln_cg_imul(cg, g, Cg), cl, "ch");
    V s = inv_d;
    if (pw)
        s = LLVMBuildFMul(cg->u->b, s, LLVMBuildFPExt(cg->u->b, kiln_cg_load(cg, pw, ch), f64, ""), "");
    V t = LLVMBuildFNeg(cg->u->b, LLVMBuildFMul(cg->u->b, mean_d, s, ""), "");
    if (pb)
        t = LLVMBuildFAdd(cg->u->b, t, LLVMBuildFPExt(cg->u->b, kiln_cg_load(cg, pb, ch), f64, ""), "");
    a.scale = kiln_cg_splat(cg, LLVMBuildFPTrunc(cg->u->b, s, cg->u->t_f32, ""));
    a.shift = kiln_cg_splat(cg, LLVMBuildFPTrunc(cg->u->b, t, cg->u->t_f32, ""));
    a.x = kiln_cg_gep(cg, xg, kiln_cg_imul(cg, cl, inner));
    a.y = kiln_cg_gep(cg, yg, kiln_cg_imul(cg, cl, inner));
    kiln_cg_vloop(cg, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, inner), gn_body, &a);
    kiln_cg_for_end(cg, &lc);
    kiln_cg_for_end(cg, &l);
    kiln_cg_task_end(cg, (kiln_cg_count){xs->batched ? 0 : rows, xs->batched ? rows : 0, per_task, 1, 0});
    return cg->status;
}

/* ---- prelu ---------------------------------------------------------------------------- */

typedef struct prelu_arg {
    V x, y, w;
} prelu_arg;

static void prelu_body(kiln_cg *cg, V i, V mask, void *p)
{
    prelu_arg *a = p;
    V x = kiln_cg_vload(cg, a->x, i, mask, 0.0);
    V pos = LLVMBuildFCmp(cg->u->b, LLVMRealOGT, x, LLVMConstNull(cg->u->t_vf), "");
    kiln_cg_vstore(cg, LLVMBuildSelect(cg->u->b, pos, x, LLVMBuildFMul(cg->u->b, x, a->w, ""), "prelu"), a->y, i, mask);
}

kiln_status kiln_cg_emit_prelu(kiln_cg *cg, const kiln_node *n)
{
    const kiln_shape *xs = &kiln_graph_value(cg->g, n->inputs[0])->type.shape;
    kiln_id wid = kiln_node_param(cg->g, n, "weight");
    uint64_t w_off = 0;
    if (wid == KILN_NO_ID)
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "prelu without its weight");
    if (kiln_cg_blob_param(cg, wid, &w_off) != KILN_OK)
        return cg->status;
    const int64_t nw = kiln_shape_elements(&kiln_graph_value(cg->g, wid)->type.shape, 1);
    /* rows of `inner` elements; the channel of row r is r mod C */
    int64_t inner = 1, rows = 1, C = 1;
    if (nw > 1) {
        C = xs->dims[1];
        for (int i = 2; i < xs->rank; i++)
            inner *= xs->dims[i];
        for (int i = xs->batched ? 1 : 0; i < 2; i++)
            rows *= xs->dims[i];
    } else {
        inner = kiln_shape_elements_per_item(xs); /* one weight: a flat loop per item */
        rows = 1;
    }
    const int64_t per_task = inner >= CHUNK ? 1 : CHUNK / inner;
    char kernel[96];
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, kiln_cg_node_dtype(cg, n), KILN_CG_ON_TARGET, 0, 0, "prelu%s",
                        nw > 1 ? "" : "_single");
    kiln_cg_task_begin(cg, kernel, n);
    V px = kiln_cg_value_ptr(cg, n->inputs[0]), py = kiln_cg_value_ptr(cg, n->output);
    V pw = kiln_cg_weights_ptr(cg, w_off);
    V total = kiln_cg_i64(cg, rows);
    if (xs->batched)
        total = LLVMBuildMul(cg->u->b, total, kiln_cg_batch(cg), "");
    V lo, hi;
    kiln_cg_task_range(cg, total, per_task, &lo, &hi);
    kiln_cg_loop l;
    V r = kiln_cg_for_begin(cg, &l, lo, hi, kiln_cg_i64(cg, 1));
    prelu_arg a = {kiln_cg_gep(cg, px, kiln_cg_imul(cg, r, inner)), kiln_cg_gep(cg, py, kiln_cg_imul(cg, r, inner)),
                   kiln_cg_splat(cg, kiln_cg_load(cg, pw, kiln_cg_urem(cg, r, C)))};
    kiln_cg_vloop(cg, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, inner), prelu_body, &a);
    kiln_cg_for_end(cg, &l);
    kiln_cg_task_end(cg, (kiln_cg_count){xs->batched ? 0 : rows, xs->batched ? rows : 0, per_task, 1, 0});
    return cg->status;
}
