/* compiler/frontend/onnx/ops_shape.c: ONNX's shape ops on computed values:
 * Reshape, Flatten, Squeeze/Unsqueeze (reshapes), Transpose, Concat, Pad,
 * Expand, Tile, DepthToSpace/SpaceToDepth, Slice/Split/Gather (kiln's
 * `slice`) and Resize. The batch dimension stays axis 0 (FORMAT.md): a
 * reshape that would merge or move it is refused with a hint to pin it. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ox.h"

static const char *type_of(const ox_node *n) { return ox_str(n->p->op_type); }
static bool is(const ox_node *n, const char *t) { return strcmp(type_of(n), t) == 0; }

#define BATCH_HINT "(pin the batch with --input NAME=1x...)"

int ox_reshape_to(ox_ctx *x, ox_node *n, size_t k, kiln_id in, int out_rank, const int64_t *out_dims)
{
    if (in == KILN_NO_ID)
        return -1;
    const kiln_shape *s = ox_kshape(x, in);
    int64_t target[OX_MAX_RANK];
    int tr = out_rank ? out_rank : 1;
    target[0] = 1;
    for (int i = 0; i < out_rank; i++) {
        if (out_dims[i] < 0 && !(i == 0 && s->batched))
            return ox_refuse(n, x, "the result would move or merge the batch dimension " BATCH_HINT);
        target[i] = out_dims[i] < 0 ? 0 : out_dims[i];
    }
    if (s->batched && (out_rank == 0 || out_dims[0] >= 0))
        return ox_refuse(n, x, "the result would merge the batch dimension " BATCH_HINT);
    bool same = s->rank == tr;
    for (int i = 0; same && i < tr; i++)
        same = (i == 0 && s->batched) ? target[0] == 0 : s->dims[i] == target[i];
    if (same) {
        ox_set_dyn(n, k, in, out_rank == 0);
        return 0;
    }
    kiln_id y = ox_emit_reshape(x, n, in, tr, target, ox_out_name(x, n, k, NULL));
    if (y == KILN_NO_ID)
        return -1;
    ox_set_dyn(n, k, y, out_rank == 0);
    return 0;
}

/* The operand's ONNX shape, -1 for the batch; refuses a missing one. */
static int shape_in(ox_ctx *x, ox_node *n, size_t i, int64_t *dims, bool *batched)
{
    if (i >= n->n_in || !n->in[i]) {
        ox_refuse(n, x, "input %zu is missing", i);
        return -1;
    }
    return ox_shape(x, n->in[i], dims, batched);
}

/* One kiln slice: `count` elements of `axis` from `start` every `step`. */
static kiln_id slice1(ox_ctx *x, ox_node *n, kiln_id in, int axis, int64_t start, int64_t step, int64_t count,
                      const char *name)
{
    if (in == KILN_NO_ID)
        return KILN_NO_ID;
    int64_t end = start + (count - 1) * step + 1;
    kiln_node a = {0};
    kiln_node_set_int(&a, KILN_ATTR_AXIS, axis);
    kiln_node_set_int(&a, KILN_ATTR_START, start);
    if (end < ox_kshape(x, in)->dims[axis]) /* else the default: to the end */
        kiln_node_set_int(&a, KILN_ATTR_END, end);
    kiln_node_set_int(&a, KILN_ATTR_STEP, step);
    return ox_emit1(x, n, KILN_OP_SLICE, in, &a, name);
}

/* The ONNX dims of a value with the batch (-1) read as the largest size, so
 * that ONNX's clamping leaves a slice of the whole batch axis whole. */
static void batch_as_max(int r, const int64_t *xd, int64_t *out)
{
    for (int k = 0; k < r; k++)
        out[k] = xd[k] < 0 ? KILN_MAX_DIM : xd[k];
}

int ox_lower_reshape(ox_ctx *x, ox_node *n)
{
    int64_t xd[OX_MAX_RANK];
    bool xb;
    int xr = shape_in(x, n, 0, xd, &xb);
    if (xr < 0)
        return -1;
    int64_t t[OX_MAX_RANK];
    bool sym[OX_MAX_RANK] = {false};
    int tr;
    if (x->opset < 5) {
        tr = ox_attr_ints(x, n, "shape", t, OX_MAX_RANK);
        if (tr < 0 && !n->refused)
            ox_refuse(n, x, "it has no shape");
    } else {
        ox_value *sv = n->n_in > 1 ? n->in[1] : NULL;
        ox_tensor *st = sv && sv->kind == OX_CONST ? ox_const(x, n, sv) : NULL;
        if (!st && !n->refused)
            return ox_refuse(n, x, "its shape is computed at run time (kiln needs it constant)");
        if (!st)
            return -1;
        if (!ox_dtype_is_int(st->dtype) || st->rank != 1 || st->count > OX_MAX_RANK)
            return ox_refuse(n, x, "its shape is not a list of at most %d integers", OX_MAX_RANK);
        tr = (int)st->count;
        for (int i = 0; i < tr; i++) {
            t[i] = st->i[i];
            sym[i] = ox_is_sym(st, i);
        }
    }
    if (n->refused)
        return -1;
    bool allowzero = ox_attr_i(x, n, "allowzero", 0) != 0;
    int64_t per_item = 1, known = 1;
    for (int i = xb ? 1 : 0; i < xr; i++)
        per_item *= xd[i];
    int infer = -1, batch_at = -1;
    for (int i = 0; i < tr; i++) {
        if (sym[i] || (t[i] == 0 && !allowzero && i < xr && xd[i] < 0)) {
            if (batch_at >= 0 || !xb)
                return ox_refuse(n, x, "the target shape uses the batch size twice or for an unbatched value "
                                       BATCH_HINT);
            batch_at = i;
            t[i] = -1;
            continue;
        }
        if (t[i] == 0 && !allowzero) {
            if (i >= xr)
                return ox_refuse(n, x, "shape entry %d copies a dimension the input does not have", i);
            t[i] = xd[i];
        }
        if (t[i] == -1) {
            if (infer >= 0)
                return ox_refuse(n, x, "the shape has two -1 entries");
            infer = i;
            continue;
        }
        if (t[i] < 1)
            return ox_refuse(n, x, "shape entry %d is %lld", i, (long long)t[i]);
        if (t[i] > per_item || known > per_item / t[i])
            return ox_refuse(n, x, "the shape has more elements than the input");
        known *= t[i];
    }
    if (xb && batch_at < 0) {
        /* A -1 in front with the rest equal to one batch item is the batch. */
        if (infer == 0 && known == per_item) {
            batch_at = 0;
            infer = -1;
        } else {
            return ox_refuse(n, x, "the reshape merges the batch dimension with others " BATCH_HINT);
        }
    }
    if (batch_at > 0)
        return ox_refuse(n, x, "the reshape moves the batch dimension off axis 0 " BATCH_HINT);
    if (infer >= 0) {
        if (known == 0 || per_item % known != 0)
            return ox_refuse(n, x, "cannot infer the -1 entry: %lld elements in %lld-element slices",
                             (long long)per_item, (long long)known);
        t[infer] = per_item / known;
    } else if (known != per_item) {
        return ox_refuse(n, x, "cannot reshape %lld elements to %lld", (long long)per_item, (long long)known);
    }
    kiln_id in = ox_data(x, n, 0);
    return ox_reshape_to(x, n, 0, in, tr, t);
}

int ox_lower_flatten(ox_ctx *x, ox_node *n)
{
    int64_t xd[OX_MAX_RANK];
    bool xb;
    int xr = shape_in(x, n, 0, xd, &xb);
    if (xr < 0)
        return -1;
    int64_t axis = ox_attr_i(x, n, "axis", 1);
    if (n->refused)
        return -1;
    if (axis < 0)
        axis += xr;
    if (axis < 0 || axis > xr)
        return ox_refuse(n, x, "axis %lld is out of range for rank %d", (long long)axis, xr);
    int64_t out[2] = {1, 1};
    for (int k = 0; k < xr; k++)
        if (!(xb && k == 0))
            out[k < axis ? 0 : 1] *= xd[k];
    if (xb) {
        if (axis != 1)
            return ox_refuse(n, x, "Flatten at axis %lld merges the batch dimension " BATCH_HINT, (long long)axis);
        out[0] = -1;
    }
    kiln_id in = ox_data(x, n, 0);
    if (in == KILN_NO_ID)
        return -1;
    if (axis == 1 && xr > 2) { /* kiln's flatten says the same, more readably */
        kiln_node a = {0};
        kiln_id y = ox_emit1(x, n, KILN_OP_FLATTEN, in, &a, ox_out_name(x, n, 0, NULL));
        if (y == KILN_NO_ID)
            return -1;
        ox_set_dyn(n, 0, y, false);
        return 0;
    }
    return ox_reshape_to(x, n, 0, in, 2, out);
}

int ox_lower_squeeze(ox_ctx *x, ox_node *n)
{
    int64_t xd[OX_MAX_RANK], axes[OX_MAX_RANK * 2], od[OX_MAX_RANK];
    bool xb;
    int xr = shape_in(x, n, 0, xd, &xb);
    if (xr < 0)
        return -1;
    bool squeeze = is(n, "Squeeze");
    int na;
    if (x->opset < 13)
        na = ox_attr_ints(x, n, "axes", axes, OX_MAX_RANK * 2);
    else
        na = n->n_in > 1 && n->in[1] ? ox_input_ints(x, n, 1, "axes", axes, OX_MAX_RANK * 2) : -1;
    if (n->refused)
        return -1;
    int r = 0;
    if (squeeze) {
        bool drop[OX_MAX_RANK] = {false};
        for (int k = 0; na < 0 && k < xr; k++)
            drop[k] = xd[k] == 1;
        for (int k = 0; k < na; k++) {
            int64_t a = axes[k] < 0 ? axes[k] + xr : axes[k];
            if (a < 0 || a >= xr)
                return ox_refuse(n, x, "axis %lld is out of range", (long long)axes[k]);
            if (xb && a == 0)
                return ox_refuse(n, x, "it squeezes the batch dimension " BATCH_HINT);
            if (xd[a] != 1)
                return ox_refuse(n, x, "axis %lld has size %lld, not 1", (long long)a, (long long)xd[a]);
            drop[a] = true;
        }
        for (int k = 0; k < xr; k++)
            if (!drop[k])
                od[r++] = xd[k];
    } else {
        if (na < 0)
            return ox_refuse(n, x, "Unsqueeze needs axes");
        r = xr + na;
        if (r > OX_MAX_RANK)
            return ox_refuse(n, x, "the result has rank %d (kiln handles up to %d)", r, OX_MAX_RANK);
        bool ins[OX_MAX_RANK] = {false};
        for (int k = 0; k < na; k++) {
            int64_t a = axes[k] < 0 ? axes[k] + r : axes[k];
            if (a < 0 || a >= r || ins[a])
                return ox_refuse(n, x, "axis %lld is out of range or repeated", (long long)axes[k]);
            ins[a] = true;
        }
        if (xb && ins[0])
            return ox_refuse(n, x, "it inserts an axis before the batch dimension " BATCH_HINT);
        for (int k = 0, j = 0; k < r; k++)
            od[k] = ins[k] ? 1 : xd[j++];
    }
    return ox_reshape_to(x, n, 0, ox_data(x, n, 0), r, od);
}

int ox_lower_transpose(ox_ctx *x, ox_node *n)
{
    int64_t xd[OX_MAX_RANK], perm[OX_MAX_RANK];
    bool xb;
    int xr = shape_in(x, n, 0, xd, &xb);
    if (xr < 0)
        return -1;
    int np = ox_attr_ints(x, n, "perm", perm, OX_MAX_RANK);
    if (n->refused)
        return -1;
    if (np < 0) {
        np = xr;
        for (int k = 0; k < xr; k++)
            perm[k] = xr - 1 - k;
    }
    if (np != xr)
        return ox_refuse(n, x, "perm has %d entries for rank %d", np, xr);
    bool identity = true;
    for (int k = 0; k < xr; k++) {
        if (perm[k] < 0)
            perm[k] += xr;
        identity = identity && perm[k] == k;
    }
    if (identity || xr <= 1) {
        ox_alias(n, 0, n->in[0]);
        return 0;
    }
    kiln_id y = ox_emit_transpose(x, n, ox_data(x, n, 0), xr, perm, ox_out_name(x, n, 0, NULL));
    if (y == KILN_NO_ID)
        return -1;
    ox_set_dyn(n, 0, y, false);
    return 0;
}

int ox_lower_concat(ox_ctx *x, ox_node *n)
{
    int64_t xd[OX_MAX_RANK];
    bool xb;
    if (n->n_in == 0 || !n->in[0])
        return ox_refuse(n, x, "it has no inputs");
    int xr = shape_in(x, n, 0, xd, &xb);
    int64_t axis = ox_attr_i(x, n, "axis", x->opset < 4 ? 1 : INT64_MIN);
    if (n->refused)
        return -1;
    if (axis == INT64_MIN)
        return ox_refuse(n, x, "it has no axis");
    if (axis < 0)
        axis += xr;
    if (axis < 0 || axis >= xr)
        return ox_refuse(n, x, "axis is out of range for rank %d", xr);
    kiln_id ins[64];
    uint32_t count = 0;
    ox_value *only = NULL;
    for (size_t k = 0; k < n->n_in; k++) {
        int64_t d[OX_MAX_RANK];
        bool b;
        if (!n->in[k])
            return ox_refuse(n, x, "input %zu is missing", k);
        int r = ox_shape(x, n->in[k], d, &b);
        if (r == xr && d[axis] == 0)
            continue; /* an empty operand adds nothing */
        if (count == 64)
            return ox_refuse(n, x, "more than 64 operands");
        only = n->in[k];
        ins[count++] = ox_data(x, n, k);
    }
    if (count == 0)
        return ox_refuse(n, x, "every operand is empty");
    if (count == 1) {
        ox_alias(n, 0, only);
        return 0;
    }
    kiln_node a = {0};
    kiln_node_set_int(&a, KILN_ATTR_AXIS, axis);
    kiln_id y = ox_emit(x, n, KILN_OP_CONCAT, ins, count, &a, ox_out_name(x, n, 0, NULL));
    if (y == KILN_NO_ID)
        return -1;
    ox_set_dyn(n, 0, y, false);
    return 0;
}

static int pad_layer(ox_ctx *x, ox_node *n, int xr, bool xb, const int64_t *full, double value, bool inner,
                     kiln_id *y);

int ox_lower_pad(ox_ctx *x, ox_node *n)
{
    int64_t xd[OX_MAX_RANK], pads[2 * OX_MAX_RANK], axes[OX_MAX_RANK];
    bool xb;
    int xr = shape_in(x, n, 0, xd, &xb);
    if (xr < 0)
        return -1;
    const char *mode = ox_attr_s(x, n, "mode", "constant");
    double value = 0;
    int np, na = -1;
    if (x->opset < 11) {
        np = ox_attr_ints(x, n, x->opset < 2 ? "paddings" : "pads", pads, 2 * OX_MAX_RANK);
        value = ox_attr_f(x, n, "value", 0.0);
    } else {
        np = ox_input_ints(x, n, 1, "pads", pads, 2 * OX_MAX_RANK);
        if (n->n_in > 2 && n->in[2] && !ox_const_scalar(x, n->in[2], &value))
            return ox_refuse(n, x, "its constant_value is not a constant scalar");
        if (n->n_in > 3 && n->in[3])
            na = ox_input_ints(x, n, 3, "axes", axes, OX_MAX_RANK);
    }
    if (n->refused)
        return -1;
    if (strcmp(mode, "constant") != 0)
        return ox_refuse(n, x, "mode '%s' (kiln's pad pads with a constant)", mode);
    int64_t full[2 * OX_MAX_RANK] = {0};
    if (na < 0) {
        if (np != 2 * xr)
            return ox_refuse(n, x, "%d pads for rank %d", np, xr);
        memcpy(full, pads, sizeof(int64_t) * (size_t)np);
    } else {
        if (np != 2 * na)
            return ox_refuse(n, x, "%d pads for %d axes", np, na);
        for (int k = 0; k < na; k++) {
            int64_t a = axes[k] < 0 ? axes[k] + xr : axes[k];
            if (a < 0 || a >= xr)
                return ox_refuse(n, x, "axis %lld is out of range", (long long)axes[k]);
            full[a] = pads[k];
            full[a + xr] = pads[k + na];
        }
    }
    /* negative pads crop: a slice after the padding */
    bool pads_any = false, crops_any = false;
    int64_t crop[2 * OX_MAX_RANK];
    for (int k = 0; k < 2 * xr; k++) {
        crop[k] = full[k] < 0 ? -full[k] : 0;
        full[k] = full[k] < 0 ? 0 : full[k];
        pads_any = pads_any || full[k] != 0;
        crops_any = crops_any || crop[k] != 0;
    }
    if (!pads_any && !crops_any) {
        ox_alias(n, 0, n->in[0]);
        return 0;
    }
    kiln_id y = ox_data(x, n, 0);
    if (pads_any && pad_layer(x, n, xr, xb, full, value, crops_any, &y))
        return -1;
    for (int k = 0; k < xr && crops_any; k++) {
        if (!crop[k] && !crop[k + xr])
            continue;
        int64_t d = xd[k] + full[k] + full[k + xr], count = d - crop[k] - crop[k + xr];
        if (xd[k] < 0)
            return ox_refuse(n, x, "it crops the batch dimension " BATCH_HINT);
        if (count < 1)
            return ox_refuse(n, x, "its negative pads remove all of axis %d", k);
        bool last = true;
        for (int j = k + 1; j < xr; j++)
            last = last && !crop[j] && !crop[j + xr];
        char suffix[32];
        snprintf(suffix, sizeof suffix, "crop%d", k);
        y = slice1(x, n, y, k, crop[k], 1, count, last ? ox_out_name(x, n, 0, NULL) : ox_sub_name(x, n, suffix));
        if (y == KILN_NO_ID)
            return -1;
    }
    ox_set_dyn(n, 0, y, false);
    return 0;
}

/* kiln's pad over the last two axes, padding `full` (ONNX's order: every
 * axis's begin, then every axis's end, none negative); the output is n's
 * unless a crop follows. */
static int pad_layer(ox_ctx *x, ox_node *n, int xr, bool xb, const int64_t *full, double value, bool inner,
                     kiln_id *y)
{
    for (int k = 0; k < xr - 2; k++)
        if (full[k] || full[k + xr])
            return ox_refuse(n, x, "it pads axis %d (kiln's pad pads the last two axes)", k);
    if (xr < 2 || (xb && xr < 3))
        return ox_refuse(n, x, "it pads the last axes of a rank-%d value (kiln's pad pads the last two axes, "
                               "after the batch)", xr);
    if (!(value == value) || value > 3.4e38 || value < -3.4e38)
        return ox_refuse(n, x, "the pad value %g cannot be written in a kiln model", value);
    int64_t p4[4] = {full[xr - 2], full[xr - 1], full[2 * xr - 2], full[2 * xr - 1]};
    kiln_node a = {0};
    kiln_node_set_ints(&a, KILN_ATTR_PADS, p4, 4);
    if (value != 0)
        kiln_node_set_float(&a, KILN_ATTR_VALUE, (double)(float)value);
    *y = ox_emit1(x, n, KILN_OP_PAD, *y, &a, inner ? ox_sub_name(x, n, "padded") : ox_out_name(x, n, 0, NULL));
    return *y == KILN_NO_ID ? -1 : 0;
}

/* Expand: NumPy's broadcast to a shape, as kiln's expand. The shape may hold
 * the batch size (shape arithmetic on a batched value): on an unbatched
 * operand that repeats it along the batch, which kiln's expand writes as the
 * batch's name in entry 0. */
int ox_lower_expand(ox_ctx *x, ox_node *n)
{
    int64_t xd[OX_MAX_RANK], od[OX_MAX_RANK], t[OX_MAX_RANK], xk[OX_MAX_RANK];
    bool xb;
    int xr = shape_in(x, n, 0, xd, &xb);
    if (xr < 0)
        return -1;
    ox_value *sv = n->n_in > 1 ? n->in[1] : NULL;
    ox_tensor *st = sv && sv->kind == OX_CONST ? ox_const(x, n, sv) : NULL;
    if (!st)
        return n->refused ? -1 : ox_refuse(n, x, "its shape is computed at run time (kiln needs it constant)");
    if (!ox_dtype_is_int(st->dtype) || st->rank != 1 || st->count > OX_MAX_RANK)
        return ox_refuse(n, x, "its shape is not a list of at most %d integers", OX_MAX_RANK);
    int tr = (int)st->count, sym_at = -1;
    for (int k = 0; k < tr; k++) {
        t[k] = st->i[k];
        if (ox_is_sym(st, k)) {
            sym_at = k;
            t[k] = 1;
        } else if (t[k] < 1 || t[k] > KILN_MAX_DIM) {
            return ox_refuse(n, x, "shape entry %d is %lld", k, (long long)t[k]);
        }
    }
    /* Broadcast with the batch as 1 on both sides, then put it back. */
    memcpy(xk, xd, sizeof xk);
    if (xb)
        xk[0] = 1;
    int r = ox_broadcast_dims(xr, xk, tr, t, od);
    if (r < 0)
        return ox_refuse(n, x, "the shape does not broadcast with the input");
    if (sym_at >= 0 && sym_at + (r - tr) != 0)
        return ox_refuse(n, x, "the batch size would be axis %d of the result " BATCH_HINT, sym_at + (r - tr));
    if (xb && r != xr)
        return ox_refuse(n, x, "the expanded value would move the batch dimension off axis 0 " BATCH_HINT);
    if (xb || sym_at >= 0)
        od[0] = KILN_DIM_BATCH;
    bool same = r == xr;
    for (int k = 0; same && k < r; k++)
        same = od[k] == (xd[k] < 0 ? KILN_DIM_BATCH : xd[k]);
    if (same) {
        ox_alias(n, 0, n->in[0]);
        return 0;
    }
    kiln_node a = {0};
    kiln_node_set_ints(&a, KILN_ATTR_SHAPE, od, r);
    kiln_id y = ox_emit1(x, n, KILN_OP_EXPAND, ox_data(x, n, 0), &a, ox_out_name(x, n, 0, NULL));
    if (y == KILN_NO_ID)
        return -1;
    ox_set_dyn(n, 0, y, false);
    return 0;
}

/* ConstantOfShape of a shape that holds the batch size: the value as a
 * constant of shape [1, d1, ...], expanded along the batch (float values
 * only: kiln computes nothing else). */
int ox_lower_constant_of_shape(ox_ctx *x, ox_node *n)
{
    ox_tensor *st = n->n_in > 0 && n->in[0] ? ox_const(x, n, n->in[0]) : NULL;
    if (!st)
        return n->refused ? -1 : ox_refuse(n, x, "its shape is computed at run time (kiln needs it constant)");
    int r = (int)st->count;
    if (r < 1 || r > OX_MAX_RANK)
        return ox_refuse(n, x, "a shape of %d entries", r);
    int64_t cd[OX_MAX_RANK], od[OX_MAX_RANK], count = 1;
    for (int k = 0; k < r; k++) {
        bool sym = ox_is_sym(st, k);
        if (sym && k != 0)
            return ox_refuse(n, x, "the batch size would be axis %d of the result " BATCH_HINT, k);
        od[k] = sym ? KILN_DIM_BATCH : st->i[k];
        cd[k] = sym ? 1 : st->i[k];
        if (cd[k] < 1 || cd[k] > KILN_MAX_DIM || count > x->max_elements / cd[k])
            return ox_refuse(n, x, "shape entry %d is %lld", k, (long long)st->i[k]);
        count *= cd[k];
    }
    double value = 0;
    const Onnx__AttributeProto *va = ox_attr(n, "value");
    if (va) {
        char why[256];
        ox_tensor *v = va->t ? ox_tensor_decode(x, va->t, why, sizeof why) : NULL;
        if (!v || v->count != 1)
            return ox_refuse(n, x, "its value is not a one-element tensor");
        if (!ox_dtype_is_float(v->dtype))
            return ox_refuse(n, x, "it makes %s values along the batch (kiln's values are float32)",
                             ox_dtype_name(v->dtype));
        value = ox_get_f(v, 0);
    }
    float *data = kiln_arena_alloc_aligned(&x->arena, (size_t)count * sizeof(float));
    if (!data)
        return ox_oom(x), ox_refuse(n, x, "out of memory");
    for (int64_t i = 0; i < count; i++)
        data[i] = (float)value;
    kiln_id p = ox_param_data(x, n, "value", r, cd, data);
    kiln_id c = ox_emit(x, n, KILN_OP_CONSTANT, &p, 1, NULL, ox_sub_name(x, n, "value"));
    kiln_node a = {0};
    kiln_node_set_ints(&a, KILN_ATTR_SHAPE, od, r);
    kiln_id y = ox_emit1(x, n, KILN_OP_EXPAND, c, &a, ox_out_name(x, n, 0, NULL));
    if (y == KILN_NO_ID)
        return -1;
    ox_set_dyn(n, 0, y, false);
    return 0;
}

/* Tile: each repeated axis is a concat of copies. */
int ox_lower_tile(ox_ctx *x, ox_node *n)
{
    int64_t xd[OX_MAX_RANK], rep[OX_MAX_RANK];
    bool xb;
    int xr = shape_in(x, n, 0, xd, &xb);
    if (xr < 0)
        return -1;
    int nr = ox_input_ints(x, n, 1, "repeats", rep, OX_MAX_RANK);
    if (nr < 0)
        return -1;
    if (nr != xr)
        return ox_refuse(n, x, "%d repeats for rank %d", nr, xr);
    int last = -1;
    for (int k = 0; k < xr; k++) {
        if (rep[k] < 1 || rep[k] > 64)
            return ox_refuse(n, x, "repeats %lld (kiln writes 1 to 64 copies)", (long long)rep[k]);
        if (rep[k] > 1)
            last = k;
    }
    if (last < 0) {
        ox_alias(n, 0, n->in[0]);
        return 0;
    }
    if (xb && rep[0] > 1)
        return ox_refuse(n, x, "it repeats the batch dimension " BATCH_HINT);
    kiln_id y = ox_data(x, n, 0);
    for (int k = 0; k <= last && y != KILN_NO_ID; k++) {
        if (rep[k] == 1)
            continue;
        kiln_id ins[64];
        for (int64_t c = 0; c < rep[k]; c++)
            ins[c] = y;
        kiln_node a = {0};
        kiln_node_set_int(&a, KILN_ATTR_AXIS, k);
        char suffix[32];
        snprintf(suffix, sizeof suffix, "axis%d", k);
        y = ox_emit(x, n, KILN_OP_CONCAT, ins, (uint32_t)rep[k], &a,
                    k == last ? ox_out_name(x, n, 0, NULL) : ox_sub_name(x, n, suffix));
    }
    if (y == KILN_NO_ID)
        return -1;
    ox_set_dyn(n, 0, y, false);
    return 0;
}

/* DepthToSpace and SpaceToDepth: reshape, transpose, reshape. */
int ox_lower_depth_space(ox_ctx *x, ox_node *n)
{
    int64_t xd[OX_MAX_RANK];
    bool xb;
    int xr = shape_in(x, n, 0, xd, &xb);
    if (xr < 0)
        return -1;
    int64_t b = ox_attr_i(x, n, "blocksize", 0);
    const char *mode = ox_attr_s(x, n, "mode", "DCR");
    if (n->refused)
        return -1;
    if (xr != 4)
        return ox_refuse(n, x, "an input of rank %d (it needs [N, C, H, W])", xr);
    if (b < 1 || b > 4096)
        return ox_refuse(n, x, "blocksize %lld", (long long)b);
    int64_t N = xb ? 0 : xd[0], C = xd[1], H = xd[2], W = xd[3];
    int64_t s1[6], perm[6], s2[4];
    if (is(n, "DepthToSpace")) {
        if (C % (b * b))
            return ox_refuse(n, x, "%lld channels are not a multiple of blocksize^2", (long long)C);
        int64_t c = C / (b * b);
        if (strcmp(mode, "DCR") == 0) {
            memcpy(s1, (int64_t[]){N, b, b, c, H, W}, sizeof s1);
            memcpy(perm, (int64_t[]){0, 3, 4, 1, 5, 2}, sizeof perm);
        } else if (strcmp(mode, "CRD") == 0) {
            memcpy(s1, (int64_t[]){N, c, b, b, H, W}, sizeof s1);
            memcpy(perm, (int64_t[]){0, 1, 4, 2, 5, 3}, sizeof perm);
        } else {
            return ox_refuse(n, x, "mode '%s'", mode);
        }
        memcpy(s2, (int64_t[]){N, c, H * b, W * b}, sizeof s2);
    } else {
        if (H % b || W % b)
            return ox_refuse(n, x, "%lldx%lld is not a multiple of the blocksize", (long long)H, (long long)W);
        memcpy(s1, (int64_t[]){N, C, H / b, b, W / b, b}, sizeof s1);
        memcpy(perm, (int64_t[]){0, 3, 5, 1, 2, 4}, sizeof perm);
        memcpy(s2, (int64_t[]){N, C * b * b, H / b, W / b}, sizeof s2);
    }
    kiln_id y = ox_emit_reshape(x, n, ox_data(x, n, 0), 6, s1, ox_sub_name(x, n, "blocks"));
    y = ox_emit_transpose(x, n, y, 6, perm, ox_sub_name(x, n, "moved"));
    y = ox_emit_reshape(x, n, y, 4, s2, ox_out_name(x, n, 0, NULL));
    if (y == KILN_NO_ID)
        return -1;
    ox_set_dyn(n, 0, y, false);
    return 0;
}

/* Slice: one kiln slice per axis it changes (kiln's slice takes one axis and
 * steps forward). */
static int lower_slice(ox_ctx *x, ox_node *n, int xr, const int64_t *xd)
{
    int64_t dims[OX_MAX_RANK];
    ox_slice_axis sl[OX_MAX_RANK];
    batch_as_max(xr, xd, dims);
    if (ox_slice_params(x, n, xr, dims, sl))
        return -1;
    int last = -1;
    for (int k = 0; k < xr; k++) {
        if (sl[k].step == 1 && sl[k].start == 0 && sl[k].count == dims[k])
            continue; /* the whole axis */
        if (xd[k] < 0)
            return ox_refuse(n, x, "it slices the batch dimension " BATCH_HINT);
        if (sl[k].step < 0)
            return ox_refuse(n, x, "step %lld on axis %d (kiln's slice steps forward)", (long long)sl[k].step, k);
        if (sl[k].count < 1)
            return ox_refuse(n, x, "it selects nothing on axis %d (kiln's values are not empty)", k);
        last = k;
    }
    if (last < 0) {
        ox_alias(n, 0, n->in[0]);
        return 0;
    }
    kiln_id y = ox_data(x, n, 0);
    for (int k = 0; k <= last && y != KILN_NO_ID; k++) {
        if (sl[k].step == 1 && sl[k].start == 0 && sl[k].count == dims[k])
            continue;
        char suffix[32];
        snprintf(suffix, sizeof suffix, "axis%d", k);
        y = slice1(x, n, y, k, sl[k].start, sl[k].step, sl[k].count,
                   k == last ? ox_out_name(x, n, 0, NULL) : ox_sub_name(x, n, suffix));
    }
    if (y == KILN_NO_ID)
        return -1;
    ox_set_dyn(n, 0, y, false);
    return 0;
}

/* Split: one slice per output. */
static int lower_split(ox_ctx *x, ox_node *n, int xr, const int64_t *xd)
{
    int64_t axis, sizes[64];
    int ns = ox_split_sizes(x, n, xr, xd, &axis, sizes);
    if (ns < 0)
        return -1;
    if (xd[axis] < 0)
        return ox_refuse(n, x, "it splits the batch dimension " BATCH_HINT);
    kiln_id in = ox_data(x, n, 0);
    if (in == KILN_NO_ID)
        return -1;
    int64_t start = 0;
    for (int k = 0; k < ns; k++) {
        if (sizes[k] == 0)
            return ox_refuse(n, x, "output %d is empty (kiln's values are not empty)", k);
        if (n->out[k]) {
            kiln_id y = slice1(x, n, in, (int)axis, start, 1, sizes[k], ox_out_name(x, n, (size_t)k, NULL));
            if (y == KILN_NO_ID)
                return -1;
            ox_set_dyn(n, (size_t)k, y, false);
        }
        start += sizes[k];
    }
    return 0;
}

/* Gather with constant indices: the runs of indices that step evenly are
 * slices, concatenated when there are several; a scalar index then drops
 * the axis (a reshape). */
static int lower_gather(ox_ctx *x, ox_node *n, int xr, const int64_t *xd)
{
    int64_t axis = ox_attr_i(x, n, "axis", 0);
    if (n->refused)
        return -1;
    if (axis < -xr || axis >= xr)
        return ox_refuse(n, x, "axis %lld is out of range for rank %d", (long long)axis, xr);
    if (axis < 0)
        axis += xr;
    ox_value *iv = n->n_in > 1 ? n->in[1] : NULL;
    if (!iv || iv->kind != OX_CONST)
        return ox_refuse(n, x, "its indices are computed at run time (kiln's slice needs them constant)");
    ox_tensor *it = ox_const(x, n, iv);
    if (!it)
        return -1;
    if (!ox_dtype_is_int(it->dtype) || ox_has_sym(it))
        return ox_refuse(n, x, "its indices are not constant integers");
    if (it->rank > 1)
        return ox_refuse(n, x, "its indices have rank %d (kiln's slices take one index or a list of them)", it->rank);
    if (it->count < 1)
        return ox_refuse(n, x, "it gathers nothing (kiln's values are not empty)");
    if (xd[axis] < 0)
        return ox_refuse(n, x, "it gathers along the batch dimension " BATCH_HINT);
    int64_t d = xd[axis];
    kiln_id in = ox_data(x, n, 0);
    if (in == KILN_NO_ID)
        return -1;
    bool whole = it->rank == 1 && it->count == d;
    for (int64_t i = 0; i < it->count; i++) {
        int64_t k = ox_get_i(it, i);
        if (k < -d || k >= d)
            return ox_refuse(n, x, "index %lld is out of range for size %lld", (long long)k, (long long)d);
        whole = whole && (k < 0 ? k + d : k) == i;
    }
    if (whole) { /* every index in order: the operand itself */
        ox_alias(n, 0, n->in[0]);
        return 0;
    }
    kiln_id parts[64];
    uint32_t np = 0;
    for (int64_t i = 0; i < it->count;) {
        int64_t first = ox_get_i(it, i);
        first = first < 0 ? first + d : first;
        /* extend the run while the indices step evenly forward */
        int64_t step = 1, count = 1;
        while (i + count < it->count) {
            int64_t nx = ox_get_i(it, i + count);
            nx = nx < 0 ? nx + d : nx;
            int64_t want = count == 1 ? nx - first : step;
            if (want < 1 || nx != first + count * want || nx >= d)
                break;
            step = want;
            count++;
        }
        if (np == 64)
            return ox_refuse(n, x, "its indices make more than 64 pieces");
        parts[np++] = slice1(x, n, in, (int)axis, first, step, count,
                             it->rank == 1 && count == it->count ? ox_out_name(x, n, 0, NULL)
                                                                   : ox_sub_name(x, n, "piece"));
        i += count;
    }
    kiln_id y = parts[0];
    if (np > 1) {
        kiln_node a = {0};
        kiln_node_set_int(&a, KILN_ATTR_AXIS, axis);
        y = ox_emit(x, n, KILN_OP_CONCAT, parts, np, &a, ox_out_name(x, n, 0, NULL));
    }
    if (y == KILN_NO_ID)
        return -1;
    if (it->rank == 1) {
        ox_set_dyn(n, 0, y, false);
        return 0;
    }
    int64_t od[OX_MAX_RANK];
    int r = 0;
    for (int k = 0; k < xr; k++)
        if (k != axis)
            od[r++] = xd[k];
    return ox_reshape_to(x, n, 0, y, r, od);
}

/* Slice, Split and Gather of a computed value: kiln's slice. */
int ox_lower_slice_like(ox_ctx *x, ox_node *n)
{
    if (n->n_in < 1 || !n->in[0])
        return ox_refuse(n, x, "its input is missing");
    if (is(n, "Split") && n->n_out == 1) {
        ox_alias(n, 0, n->in[0]);
        return 0;
    }
    int64_t xd[OX_MAX_RANK];
    bool xb;
    int xr = shape_in(x, n, 0, xd, &xb);
    if (xr < 1)
        return xr < 0 ? -1 : ox_refuse(n, x, "its input is a scalar");
    if (is(n, "Slice"))
        return lower_slice(x, n, xr, xd);
    if (is(n, "Split"))
        return lower_split(x, n, xr, xd);
    return lower_gather(x, n, xr, xd);
}

/* Resize and Upsample as kiln's resize, which is PyTorch's interpolate on
 * the last two axes: nearest (ONNX's asymmetric coordinates with floor),
 * nearest_exact (half_pixel with round_prefer_ceil), bilinear and bicubic
 * (cubic coefficient -0.75, the outside included) with half_pixel /
 * pytorch_half_pixel coordinates or align_corners. Every other combination
 * is refused for what it is. */
int ox_lower_resize(ox_ctx *x, ox_node *n)
{
    int64_t xd[OX_MAX_RANK];
    bool xb;
    int xr = shape_in(x, n, 0, xd, &xb);
    if (xr < 0)
        return -1;
    bool upsample = is(n, "Upsample");
    const char *mode = ox_attr_s(x, n, "mode", "nearest");
    const char *ctm = ox_attr_s(x, n, "coordinate_transformation_mode",
                                upsample || x->opset < 11 ? "asymmetric" : "half_pixel");
    const char *nearest = ox_attr_s(x, n, "nearest_mode", "round_prefer_floor");
    double coeff = ox_attr_f(x, n, "cubic_coeff_a", -0.75);
    int64_t exclude = ox_attr_i(x, n, "exclude_outside", 0), antialias = ox_attr_i(x, n, "antialias", 0);
    const char *policy = ox_attr_s(x, n, "keep_aspect_ratio_policy", "stretch");
    if (n->refused)
        return -1;
    if (xr != 4)
        return ox_refuse(n, x, "a resize of a rank-%d value (kiln's resize works on [N, C, H, W])", xr);
    if (antialias)
        return ox_refuse(n, x, "an antialiased resize (kiln's resize has none)");
    if (strcmp(policy, "stretch") != 0)
        return ox_refuse(n, x, "keep_aspect_ratio_policy '%s'", policy);
    if (strcmp(ctm, "tf_crop_and_resize") == 0)
        return ox_refuse(n, x, "coordinate_transformation_mode 'tf_crop_and_resize' (kiln's resize has no crop)");
    /* the mode kiln's resize would use */
    bool half = strcmp(ctm, "half_pixel") == 0 || strcmp(ctm, "pytorch_half_pixel") == 0;
    bool corners = strcmp(ctm, "align_corners") == 0;
    if (strcmp(mode, "nearest") == 0) {
        bool torch_nearest = strcmp(ctm, "asymmetric") == 0 && (strcmp(nearest, "floor") == 0 || upsample ||
                                                                 x->opset < 11);
        bool exact = half && strcmp(nearest, "round_prefer_ceil") == 0;
        if (!torch_nearest && !exact)
            return ox_refuse(n, x, "nearest with coordinates '%s' and rounding '%s' (kiln's resize has PyTorch's "
                                   "nearest: asymmetric and floor, and nearest-exact: half_pixel and round_prefer_ceil)",
                             ctm, nearest);
    } else if (strcmp(mode, "linear") == 0 || strcmp(mode, "bilinear") == 0) {
        if (!half && !corners)
            return ox_refuse(n, x, "linear with coordinates '%s' (kiln's bilinear is half_pixel or align_corners)", ctm);
    } else if (strcmp(mode, "cubic") == 0) {
        if (!half && !corners)
            return ox_refuse(n, x, "cubic with coordinates '%s' (kiln's bicubic is half_pixel or align_corners)", ctm);
        if ((float)coeff != -0.75f || exclude)
            return ox_refuse(n, x, "cubic with coefficient %g%s (kiln's bicubic is PyTorch's: -0.75, outside "
                                   "included)", coeff, exclude ? " excluding the outside" : "");
    } else {
        return ox_refuse(n, x, "mode '%s'", mode);
    }
    /* the target: scales or sizes, constant, changing H and W only */
    size_t si = upsample ? 1 : x->opset < 11 ? 1 : 2, zi = 3;
    ox_value *sv = si < n->n_in ? n->in[si] : NULL, *zv = !upsample && x->opset >= 11 && zi < n->n_in ? n->in[zi] : NULL;
    ox_tensor *st = sv && sv->kind == OX_CONST ? ox_const(x, n, sv) : NULL;
    ox_tensor *zt = zv && zv->kind == OX_CONST ? ox_const(x, n, zv) : NULL;
    if (n->refused)
        return -1;
    if (st && st->count == 0)
        st = NULL;
    if (zt && zt->count == 0)
        zt = NULL;
    double scales[4] = {1, 1, 1, 1};
    if (upsample && x->opset < 9 && !sv) {
        const Onnx__AttributeProto *a = ox_attr(n, "scales");
        if (!a || a->n_floats != 4)
            return ox_refuse(n, x, "its scales are missing or not four");
        for (int k = 0; k < 4; k++)
            scales[k] = a->floats[k];
    } else if (st) {
        if (!ox_dtype_is_float(st->dtype) || st->count != 4)
            return ox_refuse(n, x, "its scales are not four numbers");
        for (int k = 0; k < 4; k++)
            scales[k] = ox_get_f(st, k);
    } else if (zt) {
        if (!ox_dtype_is_int(zt->dtype) || zt->count != 4)
            return ox_refuse(n, x, "its sizes are not four integers");
        for (int k = 0; k < 4; k++) {
            if (ox_is_sym(zt, k) && !(k == 0 && xb))
                return ox_refuse(n, x, "its sizes use the batch size off axis 0");
            /* the batch (symbolic, or the input's own) keeps its size */
            scales[k] = ox_is_sym(zt, k) ? 1.0 : (double)zt->i[k] / (double)(xd[k] < 0 ? 1 : xd[k]);
        }
    } else if ((sv && sv->kind != OX_CONST) || (zv && zv->kind != OX_CONST)) {
        return ox_refuse(n, x, "its scales or sizes are computed at run time (kiln needs them constant)");
    } else {
        return ox_refuse(n, x, "it has neither scales nor sizes");
    }
    if (scales[0] != 1 || scales[1] != 1)
        return ox_refuse(n, x, "it resizes the batch or channel axis (kiln's resize works on H and W)");
    for (int k = 2; k < 4; k++) {
        double out = zt ? (double)zt->i[k] : floor((double)xd[k] * scales[k]);
        /* ONNX's align_corners divides by in·scale, PyTorch's by the output size: equal only when in·scale is whole */
        if (corners && !zt && out != (double)xd[k] * scales[k])
            return ox_refuse(n, x, "align_corners with scale %g on axis %d of size %lld: the scaled size %g is not "
                                   "whole (ONNX's coordinates then use it unrounded, kiln's resize the output size)",
                             scales[k], k, (long long)xd[k], (double)xd[k] * scales[k]);
        /* pytorch_half_pixel samples index 0 for an output of one; PyTorch itself (kiln) the centre */
        if (strcmp(ctm, "pytorch_half_pixel") == 0 && out == 1 && xd[k] > 1)
            return ox_refuse(n, x, "pytorch_half_pixel with an output size of 1 on axis %d (ONNX samples index 0 "
                                   "there, kiln's resize the centre, as PyTorch does)", k);
    }
    kiln_node a = {0};
    if (zt) {
        int64_t size[2] = {zt->i[2], zt->i[3]};
        kiln_node_set_ints(&a, KILN_ATTR_SIZE, size, 2);
    } else {
        kiln_node_set_floats(&a, KILN_ATTR_SCALE, scales + 2, 2);
    }
    kiln_resize_mode km = strcmp(mode, "nearest") != 0 ? (strcmp(mode, "cubic") == 0 ? KILN_RESIZE_BICUBIC
                                                                                      : KILN_RESIZE_BILINEAR)
                          : half ? KILN_RESIZE_NEAREST_EXACT
                                 : KILN_RESIZE_NEAREST;
    a.attrs[KILN_ATTR_MODE].i = km;
    a.attr_set |= UINT64_C(1) << KILN_ATTR_MODE;
    if (corners)
        kiln_node_set_bool(&a, KILN_ATTR_ALIGN_CORNERS, true);
    kiln_id y = ox_emit1(x, n, KILN_OP_RESIZE, ox_data(x, n, 0), &a, ox_out_name(x, n, 0, NULL));
    if (y == KILN_NO_ID)
        return -1;
    ox_set_dyn(n, 0, y, false);
    return 0;
}
