/* compiler/codegen/kernels/slice.c: slice and expand, both a copy whose
 * source element is an affine function of the output's index:
 *
 *   y[i0, ..., ir] = x[base + i0 st0 + ... + ir str]
 *
 * (slice: the operand's strides, the sliced axis's times `step`, base at the
 * first index taken; expand: stride 0 along the repeated axes). The output's
 * axes of size 1 are dropped and neighbours merged where the source stays
 * contiguous across them (the batch axis stays alone, outermost); the last
 * remaining axis is the vector loop, read as whole vectors (stride 1), one
 * splat (stride 0: a repeated row) or a gather (a slice with a step along
 * the last axis); the other axes are rows split into tasks of about CHUNK
 * elements.
 *
 * A slice whose result is one contiguous block of its operand is a view
 * (kiln_cg_slice_view, placement.c gives it its operand's buffer at an offset)
 * and emits no code. */
#include "compiler/codegen/cg.h"

#include <stdio.h>
#include <string.h>

typedef LLVMValueRef V;

#define CHUNK 16384 /* elements per task */

typedef struct copy_arg {
    V src, dst;
    int64_t stride;
} copy_arg;

static void copy_body(kiln_cg *cg, V i, V mask, void *p)
{
    copy_arg *a = p;
    V v;
    if (a->stride == 1) {
        v = kiln_cg_vload(cg, a->src, i, mask, 0.0);
    } else if (a->stride == 0) {
        v = kiln_cg_splat(cg, kiln_cg_load(cg, a->src, kiln_cg_i64(cg, 0)));
    } else {
        V idx = LLVMBuildAdd(cg->u->b, kiln_cg_splat(cg, i), kiln_cg_iota64(cg), "");
        idx = LLVMBuildMul(cg->u->b, idx, kiln_cg_splat(cg, kiln_cg_i64(cg, a->stride)), "");
        v = kiln_cg_gather(cg, a->src, idx, mask, 0.0);
    }
    kiln_cg_vstore(cg, v, a->dst, i, mask);
}

/* y = x[base + sum idx st] over y's shape `ys` (st: per axis of ys, the
 * batch axis's stride included). */
static kiln_status emit_affine_copy(kiln_cg *cg, const kiln_node *n, const char *what, kiln_id x, int64_t base,
                                    const int64_t *st_in)
{
    const kiln_shape *ys = &kiln_graph_value(cg->g, n->output)->type.shape;
    const bool batched = ys->batched;
    const int R = ys->rank;
    int64_t dims[KILN_MAX_RANK + 1], st[KILN_MAX_RANK + 1];
    int r = 0;
    for (int i = 0; i < R; i++) {
        const bool batch_axis = i == 0 && batched;
        const int64_t d = batch_axis ? -1 : ys->dims[i];
        if (!batch_axis && d == 1)
            continue;
        if (r > 0 && !(r == 1 && batched) && st[r - 1] == st_in[i] * d) {
            dims[r - 1] *= d;
            st[r - 1] = st_in[i];
            continue;
        }
        dims[r] = d, st[r] = st_in[i];
        r++;
    }
    if (r == 0 || (batched && r == 1)) { /* one element (per item) */
        dims[r] = 1, st[r] = 1;
        r++;
    }
    const int64_t inner = dims[r - 1], inner_st = st[r - 1];
    int64_t rows_per_item = 1;
    for (int i = batched ? 1 : 0; i < r - 1; i++)
        rows_per_item *= dims[i];
    const int64_t per_task = inner >= CHUNK ? 1 : CHUNK / inner;
    char kernel[96];
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, kiln_cg_node_dtype(cg, n), KILN_CG_ON_TARGET, 0, 0, "%s%s", what,
                        inner_st == 1 ? "" : inner_st == 0 ? "_splat" : "_gather");
    kiln_cg_task_begin(cg, kernel, n);
    V px = kiln_cg_gep(cg, kiln_cg_value_ptr(cg, x), kiln_cg_i64(cg, base)), py = kiln_cg_value_ptr(cg, n->output);
    V total = kiln_cg_i64(cg, rows_per_item);
    if (batched)
        total = LLVMBuildMul(cg->u->b, total, kiln_cg_batch(cg), "rows");
    V lo, hi;
    kiln_cg_task_range(cg, total, per_task, &lo, &hi);
    kiln_cg_loop l;
    V row = kiln_cg_for_begin(cg, &l, lo, hi, kiln_cg_i64(cg, 1));
    V off = kiln_cg_i64(cg, 0), rem = row;
    for (int i = r - 2; i >= 0; i--) {
        V idx = i == 0 ? rem : kiln_cg_urem(cg, rem, dims[i]);
        if (i > 0)
            rem = kiln_cg_udiv(cg, rem, dims[i]);
        if (st[i])
            off = LLVMBuildAdd(cg->u->b, off, LLVMBuildMul(cg->u->b, idx, kiln_cg_i64(cg, st[i]), ""), "");
    }
    copy_arg a = {kiln_cg_gep(cg, px, off), kiln_cg_gep(cg, py, LLVMBuildMul(cg->u->b, row, kiln_cg_i64(cg, inner), "")),
                  inner_st};
    kiln_cg_vloop(cg, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, inner), copy_body, &a);
    kiln_cg_for_end(cg, &l);
    kiln_cg_task_end(cg, (kiln_cg_count){batched ? 0 : rows_per_item, batched ? rows_per_item : 0, per_task, 1, 0});
    return cg->status;
}

/* Dense strides of shape s (the batch axis: one item's elements). */
static void dense_strides(const kiln_shape *s, int64_t *st)
{
    int64_t acc = 1;
    for (int i = s->rank - 1; i >= 0; i--) {
        st[i] = acc;
        if (!(i == 0 && s->batched))
            acc *= s->dims[i];
    }
}

kiln_status kiln_cg_emit_slice(kiln_cg *cg, const kiln_node *n)
{
    const kiln_shape *xs = &kiln_graph_value(cg->g, n->inputs[0])->type.shape;
    const int64_t axis = n->attrs[KILN_ATTR_AXIS].i, step = n->attrs[KILN_ATTR_STEP].i;
    if (axis < 0 || axis >= xs->rank || step < 1)
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "malformed slice");
    uint64_t view_bytes;
    if (kiln_cg_slice_view(cg->g, n, &view_bytes)) {
        const kiln_cg_buffer *src = &cg->layout->values[n->inputs[0]], *dst = &cg->layout->values[n->output];
        if (src->kind == dst->kind && src->index == dst->index && src->per_batch == dst->per_batch &&
            dst->offset == src->offset + view_bytes)
            return KILN_OK; /* a view: no code */
    }
    int64_t first, count;
    kiln_slice_bounds(xs->dims[axis], n->attrs[KILN_ATTR_START].i, kiln_node_has(n, KILN_ATTR_END),
                      n->attrs[KILN_ATTR_END].i, step, &first, &count);
    int64_t st[KILN_MAX_RANK];
    dense_strides(xs, st);
    const int64_t base = first * st[axis];
    st[axis] *= step;
    return emit_affine_copy(cg, n, "slice", n->inputs[0], base, st);
}

kiln_status kiln_cg_emit_expand(kiln_cg *cg, const kiln_node *n)
{
    const kiln_shape *xs = &kiln_graph_value(cg->g, n->inputs[0])->type.shape;
    const kiln_shape *ys = &kiln_graph_value(cg->g, n->output)->type.shape;
    if (ys->rank < xs->rank)
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "malformed expand");
    int64_t xst[KILN_MAX_RANK], st[KILN_MAX_RANK];
    dense_strides(xs, xst);
    for (int i = 0; i < ys->rank; i++) {
        const int j = i - (ys->rank - xs->rank);
        const bool keeps = j >= 0 && ((j == 0 && xs->batched) || xs->dims[j] != 1);
        st[i] = keeps ? xst[j] : 0; /* a size-1 axis (or a new one) repeats */
    }
    return emit_affine_copy(cg, n, "expand", n->inputs[0], 0, st);
}
