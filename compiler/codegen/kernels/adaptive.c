/* compiler/codegen/kernels/adaptive.c: adaptive_avgpool2d
 * (torch.nn.AdaptiveAvgPool2d) on the last two axes.
 *
 * Output cell o of an axis of `out` cells over `in` averages the input cells
 * [floor(o in / out), ceil((o + 1) in / out)), computed at run time with
 * integer arithmetic (the windows differ from cell to cell, and overlap when
 * out does not divide in or out > in). A task takes whole output rows; each
 * output cell sums its window's rows with vectors across the window's width
 * (masked at its end), folds the vector by a fixed tree and divides by the
 * window's cell count. The usual sizes (global pooling, 7 x 7 heads, the
 * 1/2/3/6 pyramid of segmentation models) have small outputs, where this
 * reads every input cell about once. */
#include "compiler/codegen/cg.h"

#include <stdio.h>

typedef LLVMValueRef V;

#define CHUNK 16384 /* input cells per task, roughly */

typedef struct ap_arg {
    V row, acc;
} ap_arg;

static void ap_body(kiln_cg *cg, V i, V mask, void *p)
{
    ap_arg *a = p;
    V x = kiln_cg_vload(cg, a->row, i, mask, 0.0);
    LLVMBuildStore(cg->u->b, LLVMBuildFAdd(cg->u->b, LLVMBuildLoad2(cg->u->b, cg->u->t_vf, a->acc, ""), x, ""), a->acc);
}

kiln_status kiln_cg_emit_adaptive_avgpool2d(kiln_cg *cg, const kiln_node *n)
{
    const kiln_shape *xs = &kiln_graph_value(cg->g, n->inputs[0])->type.shape;
    const kiln_attr *size = &n->attrs[KILN_ATTR_SIZE];
    const int R = xs->rank;
    if (R < 2 || size->n != 2)
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "malformed adaptive_avgpool2d");
    const int64_t H = xs->dims[R - 2], W = xs->dims[R - 1], OH = size->ints[0], OW = size->ints[1];
    int64_t planes = 1;
    for (int i = xs->batched ? 1 : 0; i < R - 2; i++)
        planes *= xs->dims[i];
    const int64_t rows = planes * OH; /* output rows per item (or in all) */
    const int64_t row_cost = ((H + OH - 1) / OH + 1) * W;
    const int64_t per_task = row_cost >= CHUNK ? 1 : CHUNK / row_cost;
    char kernel[96];
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, kiln_cg_node_dtype(cg, n), KILN_CG_ON_TARGET, 0, 0, "adaptive_avgpool2d");
    kiln_cg_task_begin(cg, kernel, n);
    LLVMBuilderRef b = cg->u->b;
    V px = kiln_cg_value_ptr(cg, n->inputs[0]), py = kiln_cg_value_ptr(cg, n->output);
    V total = kiln_cg_i64(cg, rows);
    if (xs->batched)
        total = LLVMBuildMul(b, total, kiln_cg_batch(cg), "");
    V lo, hi;
    kiln_cg_task_range(cg, total, per_task, &lo, &hi);
    ap_arg a = {NULL, kiln_cg_alloca(cg, cg->u->t_vf, "acc")};
    kiln_cg_loop lr, lx, ly;
    V r = kiln_cg_for_begin(cg, &lr, lo, hi, kiln_cg_i64(cg, 1));
    V plane = kiln_cg_udiv(cg, r, OH), oy = kiln_cg_urem(cg, r, OH);
    V xp = kiln_cg_gep(cg, px, LLVMBuildMul(b, plane, kiln_cg_i64(cg, H * W), ""));
    V yrow = kiln_cg_gep(cg, py, LLVMBuildMul(b, r, kiln_cg_i64(cg, OW), ""));
    /* [y0, y1) = [floor(oy H / OH), ceil((oy + 1) H / OH)) */
    V y0 = kiln_cg_udiv(cg, LLVMBuildMul(b, oy, kiln_cg_i64(cg, H), ""), OH);
    V y1 = kiln_cg_udiv(cg, LLVMBuildAdd(b, LLVMBuildMul(b, oy, kiln_cg_i64(cg, H), ""), kiln_cg_i64(cg, H + OH - 1), ""), OH);
    V ox = kiln_cg_for_begin(cg, &lx, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, OW), kiln_cg_i64(cg, 1));
    V x0 = kiln_cg_udiv(cg, LLVMBuildMul(b, ox, kiln_cg_i64(cg, W), ""), OW);
    V x1 = kiln_cg_udiv(cg, LLVMBuildAdd(b, LLVMBuildMul(b, ox, kiln_cg_i64(cg, W), ""), kiln_cg_i64(cg, W + OW - 1), ""), OW);
    LLVMBuildStore(b, LLVMConstNull(cg->u->t_vf), a.acc);
    V iy = kiln_cg_for_begin(cg, &ly, y0, y1, kiln_cg_i64(cg, 1));
    a.row = kiln_cg_gep(cg, xp, LLVMBuildAdd(b, LLVMBuildMul(b, iy, kiln_cg_i64(cg, W), ""), x0, ""));
    kiln_cg_vloop(cg, kiln_cg_i64(cg, 0), LLVMBuildSub(b, x1, x0, ""), ap_body, &a);
    kiln_cg_for_end(cg, &ly);
    V cells = LLVMBuildMul(b, LLVMBuildSub(b, y1, y0, ""), LLVMBuildSub(b, x1, x0, ""), "cells");
    V sum = kiln_cg_reduce_add(cg, LLVMBuildLoad2(b, cg->u->t_vf, a.acc, ""));
    kiln_cg_store(cg, LLVMBuildFDiv(b, sum, LLVMBuildSIToFP(b, cells, cg->u->t_f32, ""), "avg"), yrow, ox);
    kiln_cg_for_end(cg, &lx);
    kiln_cg_for_end(cg, &lr);
    kiln_cg_task_end(cg, (kiln_cg_count){xs->batched ? 0 : rows, xs->batched ? rows : 0, per_task, 1, 0});
    return cg->status;
}
