/* compiler/codegen/kernels/shape.c: ops that move data (flatten, reshape,
 * identity, dropout and constant as aliases or copies; concat, transpose,
 * pad) and the mean reduction.
 *
 * transpose and mean first drop size-1 axes and merge neighbouring axes that
 * stay contiguous (transpose: consecutive in the permutation; mean: both
 * reduced or both kept), so common cases become long contiguous rows. */
#include "compiler/codegen/cg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef LLVMValueRef V;

#define CHUNK 16384
#define COPY_CHUNK (1 << 18) /* elements per copy task */

static int64_t rows_per_task(int64_t row) { return row >= CHUNK ? 1 : CHUNK / (row > 0 ? row : 1); }

static bool same_buffer(const kiln_cg_buffer *a, const kiln_cg_buffer *b)
{
    return a->kind == b->kind && a->index == b->index && a->offset == b->offset && a->per_batch == b->per_batch;
}

/* dst[0..elems) = src[0..elems) of dtype dt, elems per batch item when
 * batched; body: the kernel's name without the dtype. */
static kiln_status emit_copy(kiln_cg *cg, const kiln_node *n, kiln_dtype dt, const char *body,
                             const kiln_cg_buffer *src, const kiln_cg_buffer *dst, int64_t elems, bool batched)
{
    char kernel[64];
    const kiln_cg_vtype *vt = kiln_cg_vtype_of(cg, dt);
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, dt, KILN_CG_ON_ANY, 0, 0, "%s", body);
    kiln_cg_task_begin(cg, kernel, n);
    V ps = kiln_cg_buffer_ptr(cg, src), pd = kiln_cg_buffer_ptr(cg, dst);
    V total = kiln_cg_i64(cg, elems);
    if (batched)
        total = LLVMBuildMul(cg->u->b, total, kiln_cg_batch(cg), "");
    V lo, hi;
    kiln_cg_task_range(cg, total, COPY_CHUNK, &lo, &hi);
    kiln_cg_memcpy(cg, kiln_cg_gep_t(cg, vt, pd, lo), kiln_cg_gep_t(cg, vt, ps, lo),
                   kiln_cg_imul(cg, LLVMBuildSub(cg->u->b, hi, lo, ""), vt->bytes), (unsigned)vt->bytes);
    kiln_cg_task_end(cg, (kiln_cg_count){batched ? 0 : elems, batched ? elems : 0, COPY_CHUNK, 1, 0});
    return cg->status;
}

kiln_status kiln_cg_emit_alias(kiln_cg *cg, const kiln_node *n)
{
    if (n->n_inputs < 1)
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "%s without an operand", kiln_op_name(n->op));
    const kiln_cg_buffer *src = &cg->layout->values[n->inputs[0]], *dst = &cg->layout->values[n->output];
    if (same_buffer(src, dst))
        return KILN_OK; /* an alias: no code */
    return emit_copy(cg, n, kiln_cg_node_dtype(cg, n), "copy", src, dst, kiln_cg_elems_per_item(cg, n->output),
                     kiln_cg_batched(cg, n->output));
}

kiln_status kiln_cg_emit_output_copy(kiln_cg *cg, kiln_id src, uint32_t k)
{
    kiln_cg_buffer dst = {KILN_CG_BUF_OUTPUT, k, 0, 0};
    cg->f.node = NULL;
    return emit_copy(cg, NULL, cg->g->values[src].type.dtype, "copy_output", &cg->layout->values[src], &dst,
                     kiln_cg_elems_per_item(cg, src), kiln_cg_batched(cg, src));
}

/* ---- concat -------------------------------------------------------------------------- */

kiln_status kiln_cg_emit_concat(kiln_cg *cg, const kiln_node *n)
{
    const kiln_shape *ys = &kiln_graph_value(cg->g, n->output)->type.shape;
    int64_t axis = n->attrs[KILN_ATTR_AXIS].i;
    if (axis < 0)
        axis += ys->rank;
    if (axis < 0 || axis >= ys->rank)
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "concat axis out of range");
    int64_t outer = 1, inner = 1;
    for (int i = ys->batched ? 1 : 0; i < axis; i++)
        outer *= ys->dims[i];
    for (int i = (int)axis + 1; i < ys->rank; i++)
        inner *= ys->dims[i];
    const int64_t row = ys->dims[axis] * inner, per_task = rows_per_task(row);
    char kernel[64];
    const kiln_cg_vtype *vt = kiln_cg_vtype_of(cg, kiln_cg_node_dtype(cg, n));
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, vt->dtype, KILN_CG_ON_ANY, 0, 0, "concat");
    kiln_cg_task_begin(cg, kernel, n);
    V py = kiln_cg_value_ptr(cg, n->output);
    V total = kiln_cg_i64(cg, outer);
    if (ys->batched)
        total = LLVMBuildMul(cg->u->b, total, kiln_cg_batch(cg), "");
    V lo, hi;
    kiln_cg_task_range(cg, total, per_task, &lo, &hi);
    uint32_t n_in = n->n_inputs;
    V *in = malloc((n_in ? n_in : 1) * sizeof *in);
    if (!in)
        return kiln_cg_fail(cg, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    for (uint32_t i = 0; i < n_in; i++)
        in[i] = kiln_cg_value_ptr(cg, n->inputs[i]);
    kiln_cg_loop l;
    V r = kiln_cg_for_begin(cg, &l, lo, hi, kiln_cg_i64(cg, 1));
    int64_t off = 0;
    for (uint32_t i = 0; i < n_in; i++) {
        const kiln_shape *is = &kiln_graph_value(cg->g, n->inputs[i])->type.shape;
        int64_t block = is->dims[axis] * inner;
        /* an operand without the batch (FORMAT.md 1.1) repeats for every item */
        V src_row = ys->batched && !is->batched ? kiln_cg_urem(cg, r, outer) : r;
        V dst = kiln_cg_gep_t(cg, vt, py, kiln_cg_iadd(cg, kiln_cg_imul(cg, r, row), kiln_cg_i64(cg, off)));
        kiln_cg_memcpy(cg, dst, kiln_cg_gep_t(cg, vt, in[i], kiln_cg_imul(cg, src_row, block)),
                       kiln_cg_i64(cg, block * vt->bytes), (unsigned)vt->bytes);
        off += block;
    }
    kiln_cg_for_end(cg, &l);
    free(in);
    kiln_cg_task_end(cg, (kiln_cg_count){ys->batched ? 0 : outer, ys->batched ? outer : 0, per_task, 1, 0});
    return cg->status;
}

/* ---- transpose --------------------------------------------------------------------------- */

typedef struct tr_arg {
    V src, dst;
    int64_t stride;
} tr_arg;

static void tr_body(kiln_cg *cg, V i, V mask, void *p)
{
    tr_arg *a = p;
    V v;
    if (a->stride == 1) {
        v = kiln_cg_vload(cg, a->src, i, mask, 0.0);
    } else {
        V idx = LLVMBuildAdd(cg->u->b, kiln_cg_splat(cg, i), kiln_cg_iota64(cg), "");
        idx = LLVMBuildMul(cg->u->b, idx, kiln_cg_splat(cg, kiln_cg_i64(cg, a->stride)), "");
        v = kiln_cg_gather(cg, a->src, idx, mask, 0.0);
    }
    kiln_cg_vstore(cg, v, a->dst, i, mask);
}

kiln_status kiln_cg_emit_transpose(kiln_cg *cg, const kiln_node *n)
{
    const kiln_shape *xs = &kiln_graph_value(cg->g, n->inputs[0])->type.shape;
    const kiln_attr *perm = &n->attrs[KILN_ATTR_PERM];
    const int R = xs->rank;
    if (perm->n != R)
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "perm has %d entries for rank %d", perm->n, R);
    const bool batched = xs->batched;
    int64_t in_stride[KILN_MAX_RANK], st = 1;
    for (int i = R - 1; i >= 0; i--) {
        in_stride[i] = st;
        if (!(i == 0 && batched))
            st *= xs->dims[i];
    }
    /* Output axes: size and input stride; drop size 1, merge consecutive. */
    int64_t dims[KILN_MAX_RANK + 1], strides[KILN_MAX_RANK + 1];
    int64_t src_axis[KILN_MAX_RANK + 1];
    int r = 0;
    for (int i = 0; i < R; i++) {
        int64_t p = perm->ints[i];
        if (p < 0)
            p += R;
        if (p < 0 || p >= R)
            return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "perm entry out of range");
        bool batch_axis = i == 0 && batched;
        int64_t d = batch_axis ? -1 : xs->dims[p];
        if (!batch_axis && d == 1)
            continue;
        if (r > 0 && !(r == 1 && batched) && src_axis[r - 1] + 1 == p) {
            dims[r - 1] *= d;
            strides[r - 1] = in_stride[p];
            src_axis[r - 1] = p;
            continue;
        }
        dims[r] = d, strides[r] = in_stride[p], src_axis[r] = p;
        r++;
    }
    if (r == 0 || (batched && r == 1)) {
        dims[r] = 1, strides[r] = 1, src_axis[r] = R;
        r++;
    }
    const int64_t inner = dims[r - 1], inner_stride = strides[r - 1];
    int64_t rows = 1;
    for (int i = batched ? 1 : 0; i < r - 1; i++)
        rows *= dims[i];
    const int64_t per_task = rows_per_task(inner);
    char kernel[64];
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, kiln_cg_node_dtype(cg, n), KILN_CG_ON_TARGET, 0, 0, "transpose%s",
                        inner_stride == 1 ? "" : "_gather");
    kiln_cg_task_begin(cg, kernel, n);
    V px = kiln_cg_value_ptr(cg, n->inputs[0]), py = kiln_cg_value_ptr(cg, n->output);
    V total = kiln_cg_i64(cg, rows);
    if (batched)
        total = LLVMBuildMul(cg->u->b, total, kiln_cg_batch(cg), "");
    V lo, hi;
    kiln_cg_task_range(cg, total, per_task, &lo, &hi);
    kiln_cg_loop l;
    V row = kiln_cg_for_begin(cg, &l, lo, hi, kiln_cg_i64(cg, 1));
    V off = kiln_cg_i64(cg, 0), rem = row;
    for (int i = r - 2; i >= 0; i--) {
        V idx = i == 0 ? rem : kiln_cg_urem(cg, rem, dims[i]);
        if (i > 0)
            rem = kiln_cg_udiv(cg, rem, dims[i]);
        off = kiln_cg_iadd(cg, off, kiln_cg_imul(cg, idx, strides[i]));
    }
    tr_arg a = {kiln_cg_gep(cg, px, off), kiln_cg_gep(cg, py, kiln_cg_imul(cg, row, inner)), inner_stride};
    kiln_cg_vloop(cg, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, inner), tr_body, &a);
    kiln_cg_for_end(cg, &l);
    kiln_cg_task_end(cg, (kiln_cg_count){batched ? 0 : rows, batched ? rows : 0, per_task, 1, 0});
    return cg->status;
}

/* ---- mean ------------------------------------------------------------------------------------ */

typedef struct mean_arg {
    int pass; /* 0: zero the output, 1: add a row into it, 2: sum a row, 3: divide */
    V src, dst, acc, divisor;
} mean_arg;

static void mean_body(kiln_cg *cg, V i, V mask, void *p)
{
    mean_arg *a = p;
    if (a->pass == 0) {
        kiln_cg_vstore(cg, LLVMConstNull(cg->u->t_vf), a->dst, i, mask);
    } else if (a->pass == 1) {
        V s = LLVMBuildFAdd(cg->u->b, kiln_cg_vload(cg, a->dst, i, mask, 0.0), kiln_cg_vload(cg, a->src, i, mask, 0.0), "");
        kiln_cg_vstore(cg, s, a->dst, i, mask);
    } else if (a->pass == 2) {
        V v = kiln_cg_vload(cg, a->src, i, mask, 0.0);
        LLVMBuildStore(cg->u->b, LLVMBuildFAdd(cg->u->b, LLVMBuildLoad2(cg->u->b, cg->u->t_vf, a->acc, ""), v, ""), a->acc);
    } else {
        kiln_cg_vstore(cg, LLVMBuildFDiv(cg->u->b, kiln_cg_vload(cg, a->dst, i, mask, 0.0), a->divisor, ""), a->dst, i,
                       mask);
    }
}

kiln_status kiln_cg_emit_mean(kiln_cg *cg, const kiln_node *n)
{
    const kiln_shape *xs = &kiln_graph_value(cg->g, n->inputs[0])->type.shape;
    const kiln_attr *axes = &n->attrs[KILN_ATTR_AXES];
    const int R = xs->rank;
    const bool batched = xs->batched;
    bool reduce[KILN_MAX_RANK] = {false};
    int64_t count = 1;
    for (int i = 0; i < axes->n; i++) {
        int64_t a = axes->ints[i] < 0 ? axes->ints[i] + R : axes->ints[i];
        if (a < 0 || a >= R || (a == 0 && batched))
            return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "mean axis out of range");
        reduce[a] = true;
    }
    for (int i = 0; i < R; i++)
        if (reduce[i])
            count *= xs->dims[i];
    kiln_cg_axis_groups ag;
    kiln_cg_axis_groups_of(xs, reduce, &ag);
    const int q = ag.q;
    const bool *red = ag.red;
    const int64_t in_per_item = ag.in_per_item, out_per_item = ag.out_per_item, last = ag.last, rows = ag.rows;
    const int64_t items = batched ? 1 : 1; /* one task per batch item, or one task */

    char kernel[64];
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, kiln_cg_node_dtype(cg, n), KILN_CG_ON_TARGET, 0, 0, "mean");
    kiln_cg_task_begin(cg, kernel, n);
    V item = cg->f.arg_index;
    V px = kiln_cg_gep(cg, kiln_cg_value_ptr(cg, n->inputs[0]), kiln_cg_imul(cg, item, in_per_item));
    V py = kiln_cg_gep(cg, kiln_cg_value_ptr(cg, n->output), kiln_cg_imul(cg, item, out_per_item));
    V zero = kiln_cg_i64(cg, 0);
    mean_arg a = {0, NULL, py, NULL, NULL};
    kiln_cg_vloop(cg, zero, kiln_cg_i64(cg, out_per_item), mean_body, &a);
    kiln_cg_loop l;
    V row = kiln_cg_for_begin(cg, &l, zero, kiln_cg_i64(cg, rows), kiln_cg_i64(cg, 1));
    V off = kiln_cg_axis_groups_out_offset(cg, &ag, row);
    a.src = kiln_cg_gep(cg, px, kiln_cg_imul(cg, row, last));
    a.dst = kiln_cg_gep(cg, py, off);
    if (red[q - 1]) {
        a.pass = 2;
        a.acc = kiln_cg_alloca(cg, cg->u->t_vf, "acc");
        LLVMBuildStore(cg->u->b, LLVMConstNull(cg->u->t_vf), a.acc);
        kiln_cg_vloop(cg, zero, kiln_cg_i64(cg, last), mean_body, &a);
        V s = kiln_cg_reduce_add(cg, LLVMBuildLoad2(cg->u->b, cg->u->t_vf, a.acc, ""));
        kiln_cg_store(cg, LLVMBuildFAdd(cg->u->b, kiln_cg_load(cg, a.dst, zero), s, ""), a.dst, zero);
    } else {
        a.pass = 1;
        kiln_cg_vloop(cg, zero, kiln_cg_i64(cg, last), mean_body, &a);
    }
    kiln_cg_for_end(cg, &l);
    a.pass = 3;
    a.dst = py;
    a.divisor = kiln_cg_splat(cg, kiln_cg_f32(cg, (double)count));
    kiln_cg_vloop(cg, zero, kiln_cg_i64(cg, out_per_item), mean_body, &a);
    kiln_cg_task_end(cg, (kiln_cg_count){batched ? 0 : items, batched ? 1 : 0, 1, 1, 0});
    return cg->status;
}

/* ---- pad ---------------------------------------------------------------------------------------- */

typedef struct pad_arg {
    V x_row, y_row;
    int64_t left, W;
    double value;
} pad_arg;

static void pad_body(kiln_cg *cg, V ox0, V mask, void *p)
{
    pad_arg *a = p;
    V ox = LLVMBuildAdd(cg->u->b, kiln_cg_splat(cg, ox0), kiln_cg_iota64(cg), "");
    V ix = LLVMBuildSub(cg->u->b, ox, kiln_cg_splat(cg, kiln_cg_i64(cg, a->left)), "");
    V inb = LLVMBuildAnd(cg->u->b, LLVMBuildICmp(cg->u->b, LLVMIntSGE, ix, LLVMConstNull(cg->u->t_vi64), ""),
                         LLVMBuildICmp(cg->u->b, LLVMIntSLT, ix, kiln_cg_splat(cg, kiln_cg_i64(cg, a->W)), ""), "");
    V v = kiln_cg_vload(cg, a->x_row, LLVMBuildSub(cg->u->b, ox0, kiln_cg_i64(cg, a->left), ""),
                        kiln_cg_mask_and(cg, inb, mask), a->value);
    kiln_cg_vstore(cg, v, a->y_row, ox0, mask);
}

static void fill_body(kiln_cg *cg, V i, V mask, void *p)
{
    pad_arg *a = p;
    kiln_cg_vstore(cg, kiln_cg_fconst(cg, LLVMGetPoison(cg->u->t_vf), a->value), a->y_row, i, mask);
}

kiln_status kiln_cg_emit_pad(kiln_cg *cg, const kiln_node *n)
{
    const kiln_shape *xs = &kiln_graph_value(cg->g, n->inputs[0])->type.shape;
    const kiln_shape *ys = &kiln_graph_value(cg->g, n->output)->type.shape;
    const kiln_attr *pads = &n->attrs[KILN_ATTR_PADS];
    if (xs->rank < 2 || pads->n != 4)
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "malformed pad");
    const int R = xs->rank;
    const int64_t H = xs->dims[R - 2], W = xs->dims[R - 1], OH = ys->dims[R - 2], OW = ys->dims[R - 1];
    const int64_t top = pads->ints[0], left = pads->ints[1];
    int64_t planes = 1;
    for (int i = xs->batched ? 1 : 0; i < R - 2; i++)
        planes *= xs->dims[i];
    const int64_t per_task = rows_per_task(OH * OW);
    char kernel[64];
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, kiln_cg_node_dtype(cg, n), KILN_CG_ON_TARGET, 0, 0, "pad");
    kiln_cg_task_begin(cg, kernel, n);
    V px = kiln_cg_value_ptr(cg, n->inputs[0]), py = kiln_cg_value_ptr(cg, n->output);
    V total = kiln_cg_i64(cg, planes);
    if (xs->batched)
        total = LLVMBuildMul(cg->u->b, total, kiln_cg_batch(cg), "");
    V lo, hi;
    kiln_cg_task_range(cg, total, per_task, &lo, &hi);
    kiln_cg_loop lp, ly;
    V plane = kiln_cg_for_begin(cg, &lp, lo, hi, kiln_cg_i64(cg, 1));
    V x_plane = kiln_cg_gep(cg, px, kiln_cg_imul(cg, plane, H * W)), y_plane = kiln_cg_gep(cg, py, kiln_cg_imul(cg, plane, OH * OW));
    V oy = kiln_cg_for_begin(cg, &ly, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, OH), kiln_cg_i64(cg, 1));
    V iy = LLVMBuildSub(cg->u->b, oy, kiln_cg_i64(cg, top), "");
    pad_arg a = {kiln_cg_gep(cg, x_plane, kiln_cg_imul(cg, iy, W)), kiln_cg_gep(cg, y_plane, kiln_cg_imul(cg, oy, OW)), left, W,
                 n->attrs[KILN_ATTR_VALUE].f};
    V in = LLVMBuildAnd(cg->u->b, LLVMBuildICmp(cg->u->b, LLVMIntSGE, iy, kiln_cg_i64(cg, 0), ""),
                        LLVMBuildICmp(cg->u->b, LLVMIntSLT, iy, kiln_cg_i64(cg, H), ""), "");
    kiln_cg_if f;
    kiln_cg_if_begin(cg, &f, in);
    kiln_cg_vloop(cg, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, OW), pad_body, &a);
    kiln_cg_if_else(cg, &f);
    kiln_cg_vloop(cg, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, OW), fill_body, &a);
    kiln_cg_if_end(cg, &f);
    kiln_cg_for_end(cg, &ly);
    kiln_cg_for_end(cg, &lp);
    kiln_cg_task_end(cg, (kiln_cg_count){xs->batched ? 0 : planes, xs->batched ? planes : 0, per_task, 1, 0});
    return cg->status;
}
