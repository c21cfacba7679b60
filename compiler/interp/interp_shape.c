/* compiler/interp/interp_shape.c: ops that move data without arithmetic
 * (concat, flatten, reshape, transpose, pad, identity, dropout, constant) and
 * the mean reduction. */
#include "interp_internal.h"

#include <math.h>
#include <string.h>

/* Copies the operand when the output is the same elements in the same order. */
static void copy_all(const kiln_icall *c, const kiln_itensor *x)
{
    memcpy(c->out->data, x->data, x->count * sizeof(double));
}

/* Normalizes a possibly negative axis for rank `rank`; -1 when out of range. */
static int norm_axis(int64_t axis, int rank)
{
    if (axis < 0)
        axis += rank;
    return axis >= 0 && axis < rank ? (int)axis : -1;
}

/* concat. An operand whose axis 0 is 1 where the others' is larger (an
 * unbatched operand among batched ones, FORMAT.md 1.1) is repeated along it. */
kiln_status kiln_interp_concat(const kiln_icall *c)
{
    int64_t attr_axis;
    kiln_status s;
    if ((s = kiln_icall_int(c, KILN_ATTR_AXIS, &attr_axis)) != KILN_OK)
        return s;
    const kiln_itensor *x0 = c->in[0];
    for (uint32_t i = 1; i < c->n_in; i++)
        if (c->in[i]->rank == x0->rank && x0->rank > 0 && c->in[i]->dims[0] > x0->dims[0])
            x0 = c->in[i]; /* the widest axis 0: the batch */
    const int axis = norm_axis(attr_axis, x0->rank);
    if (axis < 0)
        return kiln_icall_fail(c, KILN_ERR_SHAPE, "axis %lld is out of range for rank %d", (long long)attr_axis,
                               x0->rank);
    int64_t dims[KILN_MAX_RANK];
    memcpy(dims, x0->dims, sizeof dims);
    dims[axis] = 0;
    for (uint32_t i = 0; i < c->n_in; i++) {
        const kiln_itensor *x = c->in[i];
        bool fits = x->rank == x0->rank;
        for (int d = 0; fits && d < x->rank; d++)
            fits = d == axis || x->dims[d] == x0->dims[d] || (d == 0 && x->dims[0] == 1);
        if (!fits) {
            char a[128], b[128];
            return kiln_icall_fail(c, KILN_ERR_SHAPE, "operand %u has shape %s, which does not match %s outside axis %d",
                                   i + 1, kiln_idims_format(x->rank, x->dims, a, sizeof a),
                                   kiln_idims_format(x0->rank, x0->dims, b, sizeof b), axis);
        }
        dims[axis] += x->dims[axis];
    }
    if ((s = kiln_icall_check_out(c, x0->rank, dims)) != KILN_OK)
        return s;

    /* For each index before the axis, the operands' blocks one after another;
     * a repeated operand has fewer such indices and starts over. */
    const size_t outer = kiln_idims_product(dims, 0, axis), inner = kiln_idims_product(dims, axis + 1, x0->rank);
    double *o = c->out->data;
    for (size_t r = 0; r < outer; r++) {
        for (uint32_t i = 0; i < c->n_in; i++) {
            const size_t block = (size_t)c->in[i]->dims[axis] * inner;
            const size_t rows = kiln_idims_product(c->in[i]->dims, 0, axis);
            memcpy(o, c->in[i]->data + (r % rows) * block, block * sizeof(double));
            o += block;
        }
    }
    return KILN_OK;
}

kiln_status kiln_interp_flatten(const kiln_icall *c)
{
    const kiln_itensor *x = c->in[0];
    int64_t attr_axis;
    kiln_status s;
    if ((s = kiln_icall_int(c, KILN_ATTR_AXIS, &attr_axis)) != KILN_OK)
        return s;
    /* dims before axis kept, the rest multiplied into one; a scalar
     * (axis 0) flattens to [1]. */
    const int64_t axis = attr_axis < 0 ? attr_axis + x->rank : attr_axis;
    if (axis < 0 || axis >= x->rank + (x->rank == 0))
        return kiln_icall_fail(c, KILN_ERR_SHAPE, "axis %lld is out of range for rank %d", (long long)attr_axis,
                               x->rank);
    int64_t dims[KILN_MAX_RANK];
    for (int i = 0; i < axis; i++)
        dims[i] = x->dims[i];
    dims[axis] = (int64_t)kiln_idims_product(x->dims, (int)axis, x->rank);
    if ((s = kiln_icall_check_out(c, (int)axis + 1, dims)) != KILN_OK)
        return s;
    copy_all(c, x);
    return KILN_OK;
}

kiln_status kiln_interp_reshape(const kiln_icall *c)
{
    const kiln_itensor *x = c->in[0];
    int64_t shape[KILN_MAX_INTS];
    int rank;
    kiln_status s;
    if ((s = kiln_icall_ints(c, KILN_ATTR_SHAPE, -1, shape, &rank)) != KILN_OK)
        return s;
    if (rank > KILN_MAX_RANK)
        return kiln_icall_fail(c, KILN_ERR_SHAPE, "shape has %d entries, more than %d", rank, KILN_MAX_RANK);
    /* FORMAT.md: 0 copies the input's dim at that index, one -1 is inferred. */
    int64_t dims[KILN_MAX_RANK];
    int infer = -1;
    size_t known = 1;
    for (int i = 0; i < rank; i++) {
        int64_t v = shape[i];
        if (v == 0) {
            if (i >= x->rank)
                return kiln_icall_fail(c, KILN_ERR_SHAPE, "shape entry %d is 0, but the input has rank %d", i,
                                       x->rank);
            v = x->dims[i];
        } else if (v == -1) {
            if (infer >= 0)
                return kiln_icall_fail(c, KILN_ERR_SHAPE, "shape has more than one -1");
            infer = i;
            v = 1;
        } else if (v < 0) {
            return kiln_icall_fail(c, KILN_ERR_SHAPE, "shape entry %d is %lld", i, (long long)v);
        }
        dims[i] = v;
        if (v != 0 && known > SIZE_MAX / (size_t)v)
            return kiln_icall_fail(c, KILN_ERR_SHAPE, "shape has too many elements");
        known *= (size_t)v;
    }
    if (infer >= 0 && known != 0 && x->count % known == 0)
        dims[infer] = (int64_t)(x->count / known);
    if (kiln_idims_product(dims, 0, rank) != x->count) {
        char a[128], b[128];
        return kiln_icall_fail(c, KILN_ERR_SHAPE, "cannot reshape %s to %s",
                               kiln_idims_format(x->rank, x->dims, a, sizeof a),
                               kiln_idims_format(rank, shape, b, sizeof b));
    }
    if ((s = kiln_icall_check_out(c, rank, dims)) != KILN_OK)
        return s;
    copy_all(c, x);
    return KILN_OK;
}

kiln_status kiln_interp_copy(const kiln_icall *c)
{
    kiln_status s = kiln_icall_check_out(c, c->in[0]->rank, c->in[0]->dims);
    if (s == KILN_OK)
        copy_all(c, c->in[0]);
    return s;
}

kiln_status kiln_interp_constant(const kiln_icall *c)
{
    const kiln_itensor *v;
    kiln_status s;
    if ((s = kiln_icall_need_param(c, "value", &v)) != KILN_OK || (s = kiln_icall_check_out(c, v->rank, v->dims)) != KILN_OK)
        return s;
    copy_all(c, v);
    return KILN_OK;
}

kiln_status kiln_interp_transpose(const kiln_icall *c)
{
    const kiln_itensor *x = c->in[0];
    int64_t perm[KILN_MAX_INTS];
    kiln_status s;
    if ((s = kiln_icall_ints(c, KILN_ATTR_PERM, x->rank, perm, NULL)) != KILN_OK)
        return s;
    bool seen[KILN_MAX_RANK] = {false};
    int64_t in_stride[KILN_MAX_RANK], dims[KILN_MAX_RANK], step[KILN_MAX_RANK];
    for (int i = 0; i < x->rank; i++) {
        const int p = norm_axis(perm[i], x->rank);
        if (p < 0 || seen[p])
            return kiln_icall_fail(c, KILN_ERR_SHAPE, "perm is not a permutation of the %d axes", x->rank);
        seen[p] = true;
        perm[i] = p;
    }
    int64_t st = 1;
    for (int i = x->rank - 1; i >= 0; i--) {
        in_stride[i] = st;
        st *= x->dims[i];
    }
    for (int i = 0; i < x->rank; i++) {
        dims[i] = x->dims[perm[i]];
        step[i] = in_stride[perm[i]]; /* moving along output axis i moves along input axis perm[i] */
    }
    if ((s = kiln_icall_check_out(c, x->rank, dims)) != KILN_OK)
        return s;

    /* Walk the output in order; an odometer keeps the input offset. */
    int64_t idx[KILN_MAX_RANK] = {0}, off = 0;
    for (size_t i = 0; i < c->out->count; i++) {
        c->out->data[i] = x->data[off];
        for (int ax = x->rank - 1; ax >= 0; ax--) {
            off += step[ax];
            if (++idx[ax] < dims[ax])
                break;
            off -= step[ax] * dims[ax];
            idx[ax] = 0;
        }
    }
    return KILN_OK;
}

/* mean, reduce_sum, reduce_max, reduce_min over `axes`. The maximum and
 * minimum propagate NaN (torch.amax, torch.amin). */
kiln_status kiln_interp_mean(const kiln_icall *c)
{
    const kiln_itensor *x = c->in[0];
    int64_t axes[KILN_MAX_INTS];
    int n_axes;
    kiln_status s;
    if ((s = kiln_icall_ints(c, KILN_ATTR_AXES, -1, axes, &n_axes)) != KILN_OK)
        return s;
    const bool keepdims = kiln_icall_bool(c, KILN_ATTR_KEEPDIMS, true);
    bool reduce[KILN_MAX_RANK] = {false};
    for (int i = 0; i < n_axes; i++) {
        const int a = norm_axis(axes[i], x->rank);
        if (a < 0 || reduce[a])
            return kiln_icall_fail(c, KILN_ERR_SHAPE, "axes entry %lld is out of range for rank %d or repeated",
                                   (long long)axes[i], x->rank);
        reduce[a] = true;
    }
    int64_t dims[KILN_MAX_RANK];
    int R = 0;
    size_t reduced = 1;
    for (int i = 0; i < x->rank; i++) {
        if (!reduce[i])
            dims[R++] = x->dims[i];
        else if (keepdims)
            dims[R++] = 1;
        if (reduce[i])
            reduced *= (size_t)x->dims[i];
    }
    if ((s = kiln_icall_check_out(c, R, dims)) != KILN_OK)
        return s;

    /* Output strides per input axis (0 along reduced axes): the kept axes in
     * order, whether or not keepdims keeps the reduced ones as 1. */
    int64_t ostride[KILN_MAX_RANK], st = 1;
    for (int i = x->rank - 1; i >= 0; i--) {
        ostride[i] = reduce[i] ? 0 : st;
        if (!reduce[i])
            st *= x->dims[i];
    }
    const kiln_op op = c->n->op;
    const bool is_max = op == KILN_OP_REDUCE_MAX, is_min = op == KILN_OP_REDUCE_MIN;
    double *o = c->out->data;
    for (size_t i = 0; i < c->out->count; i++)
        o[i] = is_max ? -INFINITY : is_min ? INFINITY : 0.0;
    int64_t idx[KILN_MAX_RANK] = {0}, off = 0;
    for (size_t i = 0; i < x->count; i++) {
        const double v = x->data[i];
        if (is_max)
            o[off] = isnan(o[off]) || isnan(v) ? NAN : v > o[off] ? v : o[off];
        else if (is_min)
            o[off] = isnan(o[off]) || isnan(v) ? NAN : v < o[off] ? v : o[off];
        else
            o[off] += v;
        for (int ax = x->rank - 1; ax >= 0; ax--) {
            off += ostride[ax];
            if (++idx[ax] < x->dims[ax])
                break;
            off -= ostride[ax] * x->dims[ax];
            idx[ax] = 0;
        }
    }
    if (op == KILN_OP_MEAN)
        for (size_t i = 0; i < c->out->count; i++)
            o[i] /= (double)reduced;
    return KILN_OK;
}

kiln_status kiln_interp_pad(const kiln_icall *c)
{
    const kiln_itensor *x = c->in[0];
    int64_t pads[4];
    double value;
    kiln_status s;
    if ((s = kiln_icall_check_rank(c, 0, -2)) != KILN_OK || (s = kiln_icall_ints(c, KILN_ATTR_PADS, 4, pads, NULL)) != KILN_OK ||
        (s = kiln_icall_float(c, KILN_ATTR_VALUE, &value)) != KILN_OK)
        return s;
    const int64_t top = pads[0], left = pads[1];
    const int64_t H = x->dims[x->rank - 2], W = x->dims[x->rank - 1];
    const int64_t OH = H + pads[0] + pads[2], OW = W + pads[1] + pads[3];
    if (OH < 0 || OW < 0)
        return kiln_icall_fail(c, KILN_ERR_SHAPE, "pads [%lld,%lld,%lld,%lld] crop more than the input has",
                               (long long)pads[0], (long long)pads[1], (long long)pads[2], (long long)pads[3]);
    int64_t dims[KILN_MAX_RANK];
    memcpy(dims, x->dims, sizeof dims);
    dims[x->rank - 2] = OH;
    dims[x->rank - 1] = OW;
    if ((s = kiln_icall_check_out(c, x->rank, dims)) != KILN_OK)
        return s;

    /* Output (oy, ox) reads input (oy - top, ox - left) when inside it. */
    const size_t planes = kiln_idims_product(x->dims, 0, x->rank - 2);
    for (size_t p = 0; p < planes; p++) {
        const double *xp = x->data + p * (size_t)(H * W);
        double *o = c->out->data + p * (size_t)(OH * OW);
        for (int64_t oy = 0; oy < OH; oy++) {
            const int64_t iy = oy - top;
            for (int64_t ox = 0; ox < OW; ox++) {
                const int64_t ix = ox - left;
                o[oy * OW + ox] = iy >= 0 && iy < H && ix >= 0 && ix < W ? xp[iy * W + ix] : value;
            }
        }
    }
    return KILN_OK;
}

/* slice: x[start:end:step] along one axis (Python's rules, kiln_slice_bounds). */
kiln_status kiln_interp_slice(const kiln_icall *c)
{
    const kiln_itensor *x = c->in[0];
    int64_t attr_axis, start, step, end = 0;
    kiln_status s;
    if ((s = kiln_icall_int(c, KILN_ATTR_AXIS, &attr_axis)) != KILN_OK ||
        (s = kiln_icall_int(c, KILN_ATTR_START, &start)) != KILN_OK ||
        (s = kiln_icall_int(c, KILN_ATTR_STEP, &step)) != KILN_OK)
        return s;
    const bool has_end = kiln_node_has(c->n, KILN_ATTR_END);
    if (has_end && (s = kiln_icall_int(c, KILN_ATTR_END, &end)) != KILN_OK)
        return s;
    const int axis = norm_axis(attr_axis, x->rank);
    if (axis < 0 || step < 1)
        return kiln_icall_fail(c, KILN_ERR_SHAPE, "axis %lld (rank %d) or step %lld out of range",
                               (long long)attr_axis, x->rank, (long long)step);
    int64_t first, count;
    kiln_slice_bounds(x->dims[axis], start, has_end, end, step, &first, &count);
    int64_t dims[KILN_MAX_RANK];
    memcpy(dims, x->dims, sizeof dims);
    dims[axis] = count;
    if ((s = kiln_icall_check_out(c, x->rank, dims)) != KILN_OK)
        return s;
    const size_t outer = kiln_idims_product(x->dims, 0, axis), inner = kiln_idims_product(x->dims, axis + 1, x->rank);
    const size_t D = (size_t)x->dims[axis];
    double *o = c->out->data;
    for (size_t r = 0; r < outer; r++)
        for (int64_t k = 0; k < count; k++, o += inner)
            memcpy(o, x->data + (r * D + (size_t)(first + k * step)) * inner, inner * sizeof(double));
    return KILN_OK;
}

/* expand: NumPy's broadcast_to. The IR's shape holds -1 (KILN_DIM_BATCH)
 * for the batch; the output tensor's dims say what it is this run. */
kiln_status kiln_interp_expand(const kiln_icall *c)
{
    const kiln_itensor *x = c->in[0], *y = c->out;
    int64_t shape[KILN_MAX_INTS];
    int R;
    kiln_status s;
    if ((s = kiln_icall_ints(c, KILN_ATTR_SHAPE, -1, shape, &R)) != KILN_OK)
        return s;
    if (R < x->rank || R > KILN_MAX_RANK || y->rank != R)
        return kiln_icall_fail(c, KILN_ERR_SHAPE, "cannot expand rank %d to rank %d", x->rank, R);
    for (int i = 0; i < R; i++)
        if (shape[i] == KILN_DIM_BATCH)
            shape[i] = y->dims[0]; /* this run's batch */
    if ((s = kiln_icall_check_out(c, R, shape)) != KILN_OK)
        return s;
    int64_t st[KILN_MAX_RANK], stride = 1;
    for (int i = R - 1; i >= 0; i--) {
        const int j = i - (R - x->rank);
        const int64_t d = j >= 0 ? x->dims[j] : 1;
        if (d != 1 && d != y->dims[i]) {
            char a[128], b[128];
            return kiln_icall_fail(c, KILN_ERR_SHAPE, "cannot expand %s to %s",
                                   kiln_idims_format(x->rank, x->dims, a, sizeof a),
                                   kiln_idims_format(R, y->dims, b, sizeof b));
        }
        st[i] = d == 1 ? 0 : stride;
        stride *= d;
    }
    int64_t idx[KILN_MAX_RANK] = {0}, off = 0;
    for (size_t i = 0; i < y->count; i++) {
        y->data[i] = x->data[off];
        for (int ax = R - 1; ax >= 0; ax--) {
            off += st[ax];
            if (++idx[ax] < y->dims[ax])
                break;
            off -= st[ax] * y->dims[ax];
            idx[ax] = 0;
        }
    }
    return KILN_OK;
}
