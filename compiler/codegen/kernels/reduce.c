/* compiler/codegen/kernels/reduce.c: reduce_sum, reduce_max, reduce_min over
 * `axes` (keepdims changes only the shape, not the storage).
 *
 * As mean (kernels/shape.c): size-1 axes are dropped and neighbouring axes
 * merged into groups that are all reduced or all kept; one task per batch
 * item (one task without a batch). The output is first filled with the
 * identity (0, -inf, +inf); each row of the last group is then combined into
 * it: a kept last group elementwise with vectors, a reduced last group into
 * a vector accumulator, folded to one value by a fixed tree of halves (so
 * the result does not depend on the thread count). The maximum and minimum
 * propagate NaN, as torch.amax and torch.amin do. */
#include "compiler/codegen/cg.h"

#include <string.h>

#include <math.h>
#include <stdio.h>

typedef LLVMValueRef V;

typedef struct red_arg {
    kiln_op op;
    int pass; /* 0: fill with the identity, 1: combine a row into dst, 2: into the accumulator */
    V src, dst, acc;
} red_arg;

static double identity(kiln_op op) { return op == KILN_OP_REDUCE_MAX ? -INFINITY : op == KILN_OP_REDUCE_MIN ? INFINITY : 0.0; }

static V combine(kiln_cg *cg, kiln_op op, V a, V b)
{
    switch (op) {
    case KILN_OP_REDUCE_MAX:
        return kiln_cg_fmax_nan(cg, a, b);
    case KILN_OP_REDUCE_MIN:
        return kiln_cg_fmin_nan(cg, a, b);
    default:
        return LLVMBuildFAdd(cg->u->b, a, b, "");
    }
}

static void red_body(kiln_cg *cg, V i, V mask, void *p)
{
    red_arg *a = p;
    const double id = identity(a->op);
    if (a->pass == 0) {
        kiln_cg_vstore(cg, kiln_cg_fconst(cg, LLVMGetPoison(cg->u->t_vf), id), a->dst, i, mask);
    } else if (a->pass == 1) {
        V v = combine(cg, a->op, kiln_cg_vload(cg, a->dst, i, mask, id), kiln_cg_vload(cg, a->src, i, mask, id));
        kiln_cg_vstore(cg, v, a->dst, i, mask);
    } else {
        V v = kiln_cg_vload(cg, a->src, i, mask, id); /* the tail's missing lanes: the identity */
        LLVMBuildStore(cg->u->b, combine(cg, a->op, LLVMBuildLoad2(cg->u->b, cg->u->t_vf, a->acc, ""), v), a->acc);
    }
}

/* The lanes of v folded into one by a fixed tree of halves. */
static V fold(kiln_cg *cg, kiln_op op, V v)
{
    unsigned w = (unsigned)cg->vl;
    while (w > 1) {
        unsigned h = w / 2;
        V lo_idx[64], hi_idx[64];
        for (unsigned k = 0; k < h; k++) {
            lo_idx[k] = kiln_cg_i32(cg, (int32_t)k);
            hi_idx[k] = kiln_cg_i32(cg, (int32_t)(h + k));
        }
        V lo = LLVMBuildShuffleVector(cg->u->b, v, LLVMGetPoison(LLVMTypeOf(v)), LLVMConstVector(lo_idx, h), "");
        V hi = LLVMBuildShuffleVector(cg->u->b, v, LLVMGetPoison(LLVMTypeOf(v)), LLVMConstVector(hi_idx, h), "");
        v = combine(cg, op, lo, hi);
        w = h;
    }
    return LLVMBuildExtractElement(cg->u->b, v, kiln_cg_i32(cg, 0), "");
}

/* ---- axis groups, shared with mean (kernels/shape.c) ---------------------------- */

void kiln_cg_axis_groups_of(const kiln_shape *xs, const bool *reduce, kiln_cg_axis_groups *g)
{
    memset(g, 0, sizeof *g);
    int q = 0;
    for (int i = xs->batched ? 1 : 0; i < xs->rank; i++) {
        if (xs->dims[i] == 1)
            continue;
        if (q > 0 && g->red[q - 1] == reduce[i]) {
            g->size[q - 1] *= xs->dims[i];
            continue;
        }
        g->size[q] = xs->dims[i], g->red[q] = reduce[i];
        q++;
    }
    if (q == 0)
        g->size[q] = 1, g->red[q] = false, q++;
    g->q = q;
    g->in_per_item = g->out_per_item = 1;
    for (int i = q - 1; i >= 0; i--) {
        g->out_stride[i] = g->red[i] ? 0 : g->out_per_item;
        if (!g->red[i])
            g->out_per_item *= g->size[i];
        g->in_per_item *= g->size[i];
    }
    g->last = g->size[q - 1];
    g->rows = g->in_per_item / g->last;
}

LLVMValueRef kiln_cg_axis_groups_out_offset(kiln_cg *cg, const kiln_cg_axis_groups *g, LLVMValueRef row)
{
    V off = kiln_cg_i64(cg, 0), rem = row;
    for (int i = g->q - 2; i >= 0; i--) {
        V idx = i == 0 ? rem : kiln_cg_urem(cg, rem, g->size[i]);
        if (i > 0)
            rem = kiln_cg_udiv(cg, rem, g->size[i]);
        if (g->out_stride[i])
            off = kiln_cg_iadd(cg, off, kiln_cg_imul(cg, idx, g->out_stride[i]));
    }
    return off;
}

kiln_status kiln_cg_emit_reduce(kiln_cg *cg, const kiln_node *n)
{
    const kiln_shape *xs = &kiln_graph_value(cg->g, n->inputs[0])->type.shape;
    const kiln_attr *axes = &n->attrs[KILN_ATTR_AXES];
    const int R = xs->rank;
    const bool batched = xs->batched;
    bool reduce[KILN_MAX_RANK] = {false};
    for (int i = 0; i < axes->n; i++) {
        int64_t a = axes->ints[i];
        if (a < 0 || a >= R || (a == 0 && batched))
            return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "%s axis out of range", kiln_op_name(n->op));
        reduce[a] = true;
    }
    kiln_cg_axis_groups ag;
    kiln_cg_axis_groups_of(xs, reduce, &ag);
    const int q = ag.q;
    const bool *red = ag.red;
    const int64_t in_per_item = ag.in_per_item, out_per_item = ag.out_per_item, last = ag.last, rows = ag.rows;

    char kernel[64];
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, kiln_cg_node_dtype(cg, n), KILN_CG_ON_TARGET, 0, 0, "%s",
                        kiln_op_name(n->op));
    kiln_cg_task_begin(cg, kernel, n);
    V item = cg->f.arg_index;
    V px = kiln_cg_gep(cg, kiln_cg_value_ptr(cg, n->inputs[0]), LLVMBuildMul(cg->u->b, item, kiln_cg_i64(cg, in_per_item), ""));
    V py = kiln_cg_gep(cg, kiln_cg_value_ptr(cg, n->output), LLVMBuildMul(cg->u->b, item, kiln_cg_i64(cg, out_per_item), ""));
    V zero = kiln_cg_i64(cg, 0);
    red_arg a = {n->op, 0, NULL, py, NULL};
    kiln_cg_vloop(cg, zero, kiln_cg_i64(cg, out_per_item), red_body, &a);
    if (red[q - 1]) {
        a.acc = kiln_cg_alloca(cg, cg->u->t_vf, "acc");
    }
    kiln_cg_loop l;
    V row = kiln_cg_for_begin(cg, &l, zero, kiln_cg_i64(cg, rows), kiln_cg_i64(cg, 1));
    V off = kiln_cg_axis_groups_out_offset(cg, &ag, row);
    a.src = kiln_cg_gep(cg, px, LLVMBuildMul(cg->u->b, row, kiln_cg_i64(cg, last), ""));
    a.dst = kiln_cg_gep(cg, py, off);
    if (red[q - 1]) {
        a.pass = 2;
        LLVMBuildStore(cg->u->b, kiln_cg_fconst(cg, LLVMGetPoison(cg->u->t_vf), identity(n->op)), a.acc);
        kiln_cg_vloop(cg, zero, kiln_cg_i64(cg, last), red_body, &a);
        V s = fold(cg, n->op, LLVMBuildLoad2(cg->u->b, cg->u->t_vf, a.acc, ""));
        kiln_cg_store(cg, combine(cg, n->op, kiln_cg_load(cg, a.dst, zero), s), a.dst, zero);
    } else {
        a.pass = 1;
        kiln_cg_vloop(cg, zero, kiln_cg_i64(cg, last), red_body, &a);
    }
    kiln_cg_for_end(cg, &l);
    kiln_cg_task_end(cg, (kiln_cg_count){batched ? 0 : 1, batched ? 1 : 0, 1, 1, 0});
    return cg->status;
}
