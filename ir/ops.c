/* ir/ops.c: the op table: every op's operands, parameters, attributes with
 * their defaults, and its shape rule. */
#include "ops.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static const char *const approximate_words[] = {"none", "tanh", NULL};
/* resize's modes, in kiln_resize_mode order. */
static const char *const mode_words[] = {"nearest", "nearest_exact", "bilinear", "bicubic", NULL};
/* convert's and quantize's target dtypes (each op's shape rule takes its own
 * part of the list); kiln_attr_to_dtype maps a word to its dtype. */
static const char *const to_words[] = {"f32", "bf16", "f16", "i8", "u8", NULL};
static const kiln_dtype to_dtypes[] = {KILN_F32, KILN_BF16, KILN_F16, KILN_I8, KILN_U8};

#define T_INT KILN_ATTR_T_INT
#define T_FLOAT KILN_ATTR_T_FLOAT
#define T_BOOL KILN_ATTR_T_BOOL
#define T_INTS KILN_ATTR_T_INTS
#define T_WORD KILN_ATTR_T_WORD
#define T_FLOATS KILN_ATTR_T_FLOATS

const kiln_attr_def kiln_attr_defs[KILN_ATTR_COUNT] = {
#define KILN_ATTR(id, name, type) [KILN_ATTR_##id] = {name, T_##type},
#include "attrs.def"
#undef KILN_ATTR
};

/* The word lists, attached here so attrs.def stays one line per attribute. */
static const char *const *attr_words(kiln_attr_id id)
{
    switch (id) {
    case KILN_ATTR_APPROXIMATE:
        return approximate_words;
    case KILN_ATTR_MODE:
        return mode_words;
    case KILN_ATTR_TO:
        return to_words;
    default:
        return NULL;
    }
}

/* ---- shape rules ------------------------------------------------------- */

static int fail(char *err, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
    return -1;
}

#define IN(io, i) ((io)->inputs[i])

static const char *shp(const kiln_infer_in *io, const kiln_shape *s, char *buf, size_t size)
{
    return kiln_shape_format(s, io->batch_name, buf, size);
}

/* Checks dims and element count of an inferred shape against the limits. */
static int check_limits(const kiln_infer_in *io, const kiln_shape *s, char *err, size_t size)
{
    for (int i = s->batched ? 1 : 0; i < s->rank; i++)
        if (s->dims[i] < 1 || s->dims[i] > KILN_MAX_DIM)
            return fail(err, size, "dimension %d of the result is %lld, outside 1..2147483647", i,
                        (long long)s->dims[i]);
    int64_t n = kiln_shape_elements_per_item(s);
    int64_t limit = io->max_elements > 0 ? io->max_elements : KILN_DEFAULT_MAX_ELEMENTS;
    if (n < 0 || n > limit)
        return fail(err, size, "the result has more than %lld elements per batch item",
                    (long long)limit);
    return 0;
}

static kiln_type same_as(const kiln_type *t)
{
    kiln_type out = *t;
    out.layout = KILN_LAYOUT_PLAIN;
    out.block = 0;
    return out;
}

/* shapes[i] = a shape of rank r with the given dims. */
static void set_shape(kiln_shape *s, int rank, const int64_t *dims)
{
    memset(s, 0, sizeof *s);
    s->rank = rank;
    memcpy(s->dims, dims, sizeof(int64_t) * (size_t)rank);
}

static int infer_dense(const kiln_infer_in *io, kiln_type *out, char *err, size_t size)
{
    const kiln_type *x = IN(io, 0);
    char a[128];
    if (x->shape.rank < 2)
        return fail(err, size, "dense needs an input of rank >= 2, got %s", shp(io, &x->shape, a, sizeof a));
    if (x->shape.batched && x->shape.rank == 1)
        return fail(err, size, "dense cannot contract over the batch dimension");
    int64_t units = io->attrs[KILN_ATTR_UNITS].i;
    if (units < 1 || units > KILN_MAX_DIM)
        return fail(err, size, "units must be in 1..2147483647, got %lld", (long long)units);
    *out = same_as(x);
    out->shape.dims[out->shape.rank - 1] = units;
    return check_limits(io, &out->shape, err, size);
}

/* Output size of a sliding window along one axis, PyTorch's rule. Returns -1
 * (with a message) when the window does not fit. */
static int window_out(int64_t in, int64_t k, int64_t s, int64_t d, int64_t p0, int64_t p1, bool ceil_mode,
                      const char *axis, int64_t *out, char *err, size_t size)
{
    if (k < 1 || s < 1 || d < 1 || p0 < 0 || p1 < 0)
        return fail(err, size, "kernel, stride and dilation must be >= 1 and padding >= 0 (%s axis)", axis);
    if (k > KILN_MAX_DIM || s > KILN_MAX_DIM || d > KILN_MAX_DIM || p0 > KILN_MAX_DIM || p1 > KILN_MAX_DIM)
        return fail(err, size, "kernel, stride, dilation or padding too large (%s axis)", axis);
    int64_t eff = (k - 1) * d + 1;
    int64_t padded = in + p0 + p1;
    if (eff > padded)
        return fail(err, size,
                    "the effective kernel (%lld) is larger than the padded input (%lld) along the %s axis",
                    (long long)eff, (long long)padded, axis);
    int64_t span = padded - eff;
    int64_t o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    /* PyTorch: in ceil mode the last window must start inside the input or the left padding. */
    if (ceil_mode && (o - 1) * s >= in + p0)
        o--;
    *out = o;
    return 0;
}

static int infer_conv2d(const kiln_infer_in *io, kiln_type *out, char *err, size_t size)
{
    const kiln_type *x = IN(io, 0);
    char a[128];
    if (x->shape.rank != 4)
        return fail(err, size, "conv2d needs an input of rank 4 [N,C,H,W], got %s", shp(io, &x->shape, a, sizeof a));
    const int64_t *k = io->attrs[KILN_ATTR_KERNEL].ints, *s = io->attrs[KILN_ATTR_STRIDE].ints,
                  *p = io->attrs[KILN_ATTR_PADDING].ints, *d = io->attrs[KILN_ATTR_DILATION].ints;
    int64_t groups = io->attrs[KILN_ATTR_GROUPS].i, filters = io->attrs[KILN_ATTR_FILTERS].i;
    int64_t c = x->shape.dims[1];
    if (groups < 1 || c % groups != 0)
        return fail(err, size, "groups (%lld) must divide the input channels (%lld)", (long long)groups, (long long)c);
    if (filters < 1 || filters > KILN_MAX_DIM || filters % groups != 0)
        return fail(err, size, "filters (%lld) must be positive and divisible by groups (%lld)",
                    (long long)filters, (long long)groups);
    int64_t oh, ow;
    if (window_out(x->shape.dims[2], k[0], s[0], d[0], p[0], p[2], false, "height", &oh, err, size) ||
        window_out(x->shape.dims[3], k[1], s[1], d[1], p[1], p[3], false, "width", &ow, err, size))
        return -1;
    *out = same_as(x);
    out->shape.dims[1] = filters;
    out->shape.dims[2] = oh;
    out->shape.dims[3] = ow;
    return check_limits(io, &out->shape, err, size);
}

static int infer_pool(const kiln_infer_in *io, kiln_type *out, char *err, size_t size)
{
    const kiln_type *x = IN(io, 0);
    char a[128];
    if (x->shape.rank != 4)
        return fail(err, size, "%s needs an input of rank 4 [N,C,H,W], got %s", kiln_op_name(io->op),
                    shp(io, &x->shape, a, sizeof a));
    const int64_t *k = io->attrs[KILN_ATTR_KERNEL].ints, *s = io->attrs[KILN_ATTR_STRIDE].ints,
                  *p = io->attrs[KILN_ATTR_PADDING].ints;
    int64_t one[2] = {1, 1};
    const int64_t *d = kiln_infer_has(io, KILN_ATTR_DILATION) ? io->attrs[KILN_ATTR_DILATION].ints : one;
    bool ceil_mode = io->attrs[KILN_ATTR_CEIL_MODE].i != 0;
    for (int i = 0; i < 2; i++) {
        if (k[i] < 1 || d[i] < 1 || k[i] > KILN_MAX_DIM || d[i] > KILN_MAX_DIM || p[i] < 0 || p[i + 2] < 0 ||
            p[i] > KILN_MAX_DIM || p[i + 2] > KILN_MAX_DIM || s[i] < 1 || s[i] > KILN_MAX_DIM)
            return fail(err, size, "kernel, stride and dilation must be in 1..2147483647 and padding in 0..2147483647");
        int64_t eff = (k[i] - 1) * d[i] + 1;
        if (p[i] * 2 > eff || p[i + 2] * 2 > eff)
            return fail(err, size, "padding (%lld, %lld) must be at most half the effective kernel (%lld)",
                        (long long)p[i], (long long)p[i + 2], (long long)eff);
    }
    int64_t oh, ow;
    if (window_out(x->shape.dims[2], k[0], s[0], d[0], p[0], p[2], ceil_mode, "height", &oh, err, size) ||
        window_out(x->shape.dims[3], k[1], s[1], d[1], p[1], p[3], ceil_mode, "width", &ow, err, size))
        return -1;
    *out = same_as(x);
    out->shape.dims[2] = oh;
    out->shape.dims[3] = ow;
    return check_limits(io, &out->shape, err, size);
}

static int infer_global_avgpool(const kiln_infer_in *io, kiln_type *out, char *err, size_t size)
{
    const kiln_type *x = IN(io, 0);
    char a[128];
    if (x->shape.rank != 4)
        return fail(err, size, "global_avgpool needs an input of rank 4 [N,C,H,W], got %s",
                    shp(io, &x->shape, a, sizeof a));
    *out = same_as(x);
    out->shape.dims[2] = out->shape.dims[3] = 1;
    return 0;
}

static int infer_batchnorm(const kiln_infer_in *io, kiln_type *out, char *err, size_t size)
{
    const kiln_type *x = IN(io, 0);
    char a[128];
    if (x->shape.rank < 2)
        return fail(err, size, "batchnorm needs an input of rank >= 2 (channels on axis 1), got %s",
                    shp(io, &x->shape, a, sizeof a));
    if (!(io->attrs[KILN_ATTR_EPS].f >= 0))
        return fail(err, size, "eps must be >= 0");
    *out = same_as(x);
    return 0;
}

static int infer_layernorm(const kiln_infer_in *io, kiln_type *out, char *err, size_t size)
{
    const kiln_type *x = IN(io, 0);
    if (x->shape.rank < 1 || (x->shape.batched && x->shape.rank == 1))
        return fail(err, size, "layernorm cannot normalize over the batch dimension");
    if (!(io->attrs[KILN_ATTR_EPS].f >= 0))
        return fail(err, size, "eps must be >= 0");
    *out = same_as(x);
    return 0;
}

static int infer_unary(const kiln_infer_in *io, kiln_type *out, char *err, size_t size)
{
    if (io->op == KILN_OP_CLIP) {
        bool lo = kiln_infer_has(io, KILN_ATTR_MIN), hi = kiln_infer_has(io, KILN_ATTR_MAX);
        if (!lo && !hi)
            return fail(err, size, "clip needs 'min', 'max' or both");
        if (lo && hi && io->attrs[KILN_ATTR_MIN].f > io->attrs[KILN_ATTR_MAX].f)
            return fail(err, size, "clip: min (%g) is greater than max (%g)", io->attrs[KILN_ATTR_MIN].f,
                        io->attrs[KILN_ATTR_MAX].f);
    }
    *out = same_as(IN(io, 0));
    return 0;
}

static int check_axis(const kiln_infer_in *io, const kiln_shape *s, int64_t axis, const char *what, char *err,
                      size_t size)
{
    if (axis < 0 || axis >= s->rank)
        return fail(err, size, "%s %lld is out of range for rank %d", what, (long long)axis, s->rank);
    if (axis == 0 && s->batched)
        return fail(err, size, "%s 0 is the batch dimension, which cannot be %s", what,
                    strcmp(what, "axis") == 0 ? "reduced or normalized" : "used here");
    return 0;
}

static int infer_softmax(const kiln_infer_in *io, kiln_type *out, char *err, size_t size)
{
    const kiln_type *x = IN(io, 0);
    if (check_axis(io, &x->shape, io->attrs[KILN_ATTR_AXIS].i, "axis", err, size))
        return -1;
    *out = same_as(x);
    return 0;
}

/* NumPy broadcasting of a and b into out. The batch dimension may broadcast
 * against 1 only, and must land on axis 0 of the result. */
static int broadcast(const kiln_infer_in *io, const kiln_shape *a, const kiln_shape *b, kiln_shape *out, char *err,
                     size_t size)
{
    char x[128], y[128];
    int rank = a->rank > b->rank ? a->rank : b->rank;
    kiln_shape r = {.rank = rank};
    for (int i = 0; i < rank; i++) {
        int ia = i - (rank - a->rank), ib = i - (rank - b->rank);
        bool ba = ia == 0 && a->batched, bb = ib == 0 && b->batched;
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (ba || bb) {
            if ((ba && !bb && db != 1) || (bb && !ba && da != 1))
                return fail(err, size, "cannot broadcast %s with %s: the batch dimension meets a fixed size",
                            shp(io, a, x, sizeof x), shp(io, b, y, sizeof y));
            if (i != 0)
                return fail(err, size, "cannot broadcast %s with %s: the batch dimension would move off axis 0",
                            shp(io, a, x, sizeof x), shp(io, b, y, sizeof y));
            r.batched = true;
            r.dims[i] = KILN_DIM_BATCH;
        } else if (da == db || db == 1) {
            r.dims[i] = da;
        } else if (da == 1) {
            r.dims[i] = db;
        } else {
            return fail(err, size, "cannot broadcast %s with %s: dimension %d is %lld vs %lld",
                        shp(io, a, x, sizeof x), shp(io, b, y, sizeof y), i, (long long)da, (long long)db);
        }
    }
    *out = r;
    return 0;
}

static int infer_binary(const kiln_infer_in *io, kiln_type *out, char *err, size_t size)
{
    bool scalar = kiln_infer_has(io, KILN_ATTR_SCALAR);
    if (scalar != (io->n_data == 1))
        return fail(err, size, "%s takes two inputs, or one input and 'scalar'", kiln_op_name(io->op));
    if (kiln_infer_has(io, KILN_ATTR_REVERSE) && io->attrs[KILN_ATTR_REVERSE].i && !scalar)
        return fail(err, size, "'reverse' applies only to the one-input form with 'scalar'");
    const kiln_type *a = IN(io, 0);
    *out = same_as(a);
    if (scalar)
        return 0;
    if (broadcast(io, &a->shape, &IN(io, 1)->shape, &out->shape, err, size))
        return -1;
    return check_limits(io, &out->shape, err, size);
}

static int infer_matmul(const kiln_infer_in *io, kiln_type *out, char *err, size_t size)
{
    const kiln_shape *a = &IN(io, 0)->shape, *b = &IN(io, 1)->shape;
    bool tb = io->attrs[KILN_ATTR_TRANSPOSE_B].i != 0;
    char x[128], y[128];
    if (a->rank < 1 || b->rank < 1)
        return fail(err, size, "matmul needs operands of rank >= 1");
    /* Promote 1-D operands as torch.matmul does. */
    kiln_shape pa = *a, pb = *b;
    bool a_vec = a->rank == 1, b_vec = b->rank == 1;
    if (a_vec) {
        if (a->batched)
            return fail(err, size, "matmul cannot contract over the batch dimension");
        pa.rank = 2, pa.dims[0] = 1, pa.dims[1] = a->dims[0];
    }
    if (b_vec) {
        if (b->batched)
            return fail(err, size, "matmul cannot contract over the batch dimension");
        pb.rank = 2;
        if (tb)
            pb.dims[0] = 1, pb.dims[1] = b->dims[0];
        else
            pb.dims[0] = b->dims[0], pb.dims[1] = 1;
    }
    int64_t m = pa.dims[pa.rank - 2], k = pa.dims[pa.rank - 1];
    int64_t kb = tb ? pb.dims[pb.rank - 1] : pb.dims[pb.rank - 2];
    int64_t nn = tb ? pb.dims[pb.rank - 2] : pb.dims[pb.rank - 1];
    /* The batch may be the rows of a 2-D `a` ([batch, k] @ [k, n]) or a
     * leading dimension of either operand; never a contracted or column axis. */
    bool a_batch_in_mat = pa.batched && pa.rank == 2;
    if (pb.batched && pb.rank == 2)
        return fail(err, size, "matmul of %s and %s would contract over or move the batch dimension",
                    shp(io, a, x, sizeof x), shp(io, b, y, sizeof y));
    if (k != kb)
        return fail(err, size, "matmul of %s and %s: inner dimensions %lld and %lld differ%s",
                    shp(io, a, x, sizeof x), shp(io, b, y, sizeof y), (long long)k, (long long)kb,
                    tb ? " (transpose_b)" : "");
    /* Broadcast the leading (batch-of-matrices) dimensions. */
    kiln_shape ba = {.rank = pa.rank - 2, .batched = pa.batched && pa.rank > 2};
    kiln_shape bb = {.rank = pb.rank - 2, .batched = pb.batched && pb.rank > 2};
    memcpy(ba.dims, pa.dims, sizeof(int64_t) * (size_t)ba.rank);
    memcpy(bb.dims, pb.dims, sizeof(int64_t) * (size_t)bb.rank);
    kiln_shape lead;
    if (broadcast(io, &ba, &bb, &lead, err, size))
        return -1;
    if (a_batch_in_mat && lead.rank > 0)
        return fail(err, size, "matmul of %s and %s would move the batch dimension off axis 0",
                    shp(io, a, x, sizeof x), shp(io, b, y, sizeof y));
    kiln_shape r = lead;
    if (r.rank + 2 > KILN_MAX_RANK)
        return fail(err, size, "matmul result rank exceeds %d", KILN_MAX_RANK);
    r.dims[r.rank++] = m;
    r.dims[r.rank++] = nn;
    if (a_batch_in_mat)
        r.batched = true;
    if (a_vec) { /* drop the promoted row */
        r.dims[r.rank - 2] = r.dims[r.rank - 1];
        r.rank--;
    }
    if (b_vec)
        r.rank--;
    if (r.batched && r.rank == 0)
        return fail(err, size, "matmul result lost the batch dimension");
    *out = same_as(IN(io, 0));
    out->shape = r;
    return check_limits(io, &out->shape, err, size);
}

/* concat: operands equal outside `axis`. When some are batched, an operand
 * without the batch whose axis 0 is 1 is repeated along it (FORMAT.md 1.1). */
static int infer_concat(const kiln_infer_in *io, kiln_type *out, char *err, size_t size)
{
    int64_t axis = io->attrs[KILN_ATTR_AXIS].i;
    char x[128], y[128];
    uint32_t ref = 0; /* the first batched operand, else the first */
    for (uint32_t i = 0; i < io->n_data; i++)
        if (IN(io, i)->shape.batched) {
            ref = i;
            break;
        }
    const kiln_shape *s0 = &IN(io, ref)->shape;
    if (axis < 0 || axis >= s0->rank)
        return fail(err, size, "axis %lld is out of range for rank %d", (long long)axis, s0->rank);
    if (axis == 0 && s0->batched)
        return fail(err, size, "cannot concatenate along axis 0, the batch dimension");
    kiln_shape r = *s0;
    r.dims[axis] = 0;
    for (uint32_t i = 0; i < io->n_data; i++) {
        const kiln_shape *s = &IN(io, i)->shape;
        bool repeated = s0->batched && !s->batched; /* expanded along the batch */
        bool same = s->rank == s0->rank;
        for (int d = 0; same && d < s->rank; d++)
            if (d != axis && !(d == 0 && s0->batched) && s->dims[d] != s0->dims[d])
                same = false;
        if (!same)
            return fail(err, size, "input %u has shape %s, which does not match %s outside axis %lld", i + 1,
                        shp(io, s, x, sizeof x), shp(io, s0, y, sizeof y), (long long)axis);
        if (repeated && s->dims[0] != 1)
            return fail(err, size, "input %u has shape %s without the batch dimension: to be repeated along the "
                        "batch of %s its axis 0 must be 1, not %lld", i + 1, shp(io, s, x, sizeof x),
                        shp(io, s0, y, sizeof y), (long long)s->dims[0]);
        r.dims[axis] += s->dims[axis];
        if (r.dims[axis] > KILN_MAX_DIM)
            return fail(err, size, "the concatenated axis exceeds 2147483647");
    }
    *out = same_as(IN(io, ref));
    out->shape = r;
    return check_limits(io, &out->shape, err, size);
}

static int infer_flatten(const kiln_infer_in *io, kiln_type *out, char *err, size_t size)
{
    const kiln_shape *s = &IN(io, 0)->shape;
    int64_t axis = io->attrs[KILN_ATTR_AXIS].i;
    if (axis < 0 || axis >= s->rank + (s->rank == 0))
        return fail(err, size, "axis %lld is out of range for rank %d", (long long)axis, s->rank);
    if (axis == 0 && s->batched)
        return fail(err, size, "flatten needs axis >= 1: the batch dimension is never merged");
    kiln_shape r = {.rank = (int)axis + 1, .batched = s->batched};
    memcpy(r.dims, s->dims, sizeof(int64_t) * (size_t)axis);
    int64_t p = 1;
    for (int i = (int)axis; i < s->rank; i++) {
        if (s->dims[i] < 1 || p > INT64_MAX / s->dims[i])
            return fail(err, size, "flattened size overflows");
        p *= s->dims[i];
    }
    r.dims[axis] = p;
    *out = same_as(IN(io, 0));
    out->shape = r;
    return check_limits(io, &out->shape, err, size);
}

static int infer_reshape(const kiln_infer_in *io, kiln_type *out, char *err, size_t size)
{
    const kiln_shape *s = &IN(io, 0)->shape;
    const kiln_attr *a = &io->attrs[KILN_ATTR_SHAPE];
    char x[128];
    if (a->n < 1 || a->n > KILN_MAX_RANK)
        return fail(err, size, "shape must have 1 to %d entries", KILN_MAX_RANK);
    if (s->batched && a->ints[0] != 0)
        return fail(err, size, "the first entry of shape must be 0: the batch dimension stays on axis 0");
    kiln_shape r = {.rank = a->n, .batched = s->batched && a->ints[0] == 0};
    for (int i = 0; i < a->n; i++) {
        int64_t v = a->ints[i];
        if (i == 0 && v == 0) {
            if (s->rank < 1)
                return fail(err, size, "shape entry 0 copies a dimension the input does not have");
            r.dims[0] = s->dims[0];
        } else if (v < 1 || v > KILN_MAX_DIM) {
            return fail(err, size, "shape entry %d is %lld; the IR needs resolved positive sizes", i, (long long)v);
        } else {
            r.dims[i] = v;
        }
    }
    int64_t have = kiln_shape_elements_per_item(s), want = kiln_shape_elements_per_item(&r);
    if (!s->batched && r.batched)
        r.batched = false;
    if (have != want || (r.batched != s->batched))
        return fail(err, size, "cannot reshape %s (%lld elements) to %lld elements", shp(io, s, x, sizeof x),
                    (long long)have, (long long)want);
    *out = same_as(IN(io, 0));
    out->shape = r;
    return check_limits(io, &out->shape, err, size);
}

static int infer_transpose(const kiln_infer_in *io, kiln_type *out, char *err, size_t size)
{
    const kiln_shape *s = &IN(io, 0)->shape;
    const kiln_attr *p = &io->attrs[KILN_ATTR_PERM];
    if (p->n != s->rank)
        return fail(err, size, "perm has %d entries for an input of rank %d", p->n, s->rank);
    bool seen[KILN_MAX_RANK] = {false};
    kiln_shape r = *s;
    for (int i = 0; i < p->n; i++) {
        if (p->ints[i] < 0 || p->ints[i] >= s->rank || seen[p->ints[i]])
            return fail(err, size, "perm is not a permutation of 0..%d", s->rank - 1);
        seen[p->ints[i]] = true;
        r.dims[i] = s->dims[p->ints[i]];
    }
    if (s->batched && p->ints[0] != 0)
        return fail(err, size, "perm must start with 0: the batch dimension stays on axis 0");
    *out = same_as(IN(io, 0));
    out->shape = r;
    return 0;
}

static int infer_mean(const kiln_infer_in *io, kiln_type *out, char *err, size_t size)
{
    const kiln_shape *s = &IN(io, 0)->shape;
    const kiln_attr *a = &io->attrs[KILN_ATTR_AXES];
    bool keep = io->attrs[KILN_ATTR_KEEPDIMS].i != 0;
    if (a->n < 1)
        return fail(err, size, "axes must name at least one axis");
    bool reduce[KILN_MAX_RANK] = {false};
    for (int i = 0; i < a->n; i++) {
        if (check_axis(io, s, a->ints[i], "axis", err, size))
            return -1;
        if (reduce[a->ints[i]])
            return fail(err, size, "axis %lld is listed twice", (long long)a->ints[i]);
        reduce[a->ints[i]] = true;
    }
    kiln_shape r = {.batched = s->batched};
    for (int i = 0; i < s->rank; i++) {
        if (!reduce[i])
            r.dims[r.rank++] = s->dims[i];
        else if (keep)
            r.dims[r.rank++] = 1;
    }
    *out = same_as(IN(io, 0));
    out->shape = r;
    return 0;
}

static int infer_pad(const kiln_infer_in *io, kiln_type *out, char *err, size_t size)
{
    const kiln_shape *s = &IN(io, 0)->shape;
    const kiln_attr *p = &io->attrs[KILN_ATTR_PADS];
    if (p->n != 4)
        return fail(err, size, "pads must be [top, left, bottom, right]");
    if (s->rank < 2 || (s->batched && s->rank < 3))
        return fail(err, size, "pad works on the last two axes, which must not include the batch");
    kiln_shape r = *s;
    for (int i = 0; i < 4; i++)
        if (p->ints[i] < 0 || p->ints[i] > KILN_MAX_DIM)
            return fail(err, size, "pads must be non-negative");
    r.dims[r.rank - 2] += p->ints[0] + p->ints[2];
    r.dims[r.rank - 1] += p->ints[1] + p->ints[3];
    *out = same_as(IN(io, 0));
    out->shape = r;
    return check_limits(io, &out->shape, err, size);
}

static int infer_same(const kiln_infer_in *io, kiln_type *out, char *err, size_t size)
{
    *out = same_as(IN(io, 0));
    return 0;
}

static int infer_constant(const kiln_infer_in *io, kiln_type *out, char *err, size_t size)
{
    *out = same_as(IN(io, 0)); /* the graph checks that the operand is a parameter */
    return 0;
}

/* ---- version 1.1 ---------------------------------------------------------- */

void kiln_slice_bounds(int64_t dim, int64_t start, bool has_end, int64_t end, int64_t step, int64_t *first,
                       int64_t *count)
{
    /* Python's x[start:end:step] for step >= 1: negative bounds count from
     * the end, then both are clamped to [0, dim]. */
    if (start < 0)
        start = start < -dim ? 0 : start + dim;
    if (start > dim)
        start = dim;
    if (!has_end)
        end = dim;
    else if (end < 0)
        end = end < -dim ? 0 : end + dim;
    if (end > dim)
        end = dim;
    *first = start;
    *count = end > start && step >= 1 ? (end - start - 1) / step + 1 : 0;
}

static int infer_slice(const kiln_infer_in *io, kiln_type *out, char *err, size_t size)
{
    const kiln_shape *s = &IN(io, 0)->shape;
    int64_t axis = io->attrs[KILN_ATTR_AXIS].i, step = io->attrs[KILN_ATTR_STEP].i;
    int64_t start = io->attrs[KILN_ATTR_START].i, end = io->attrs[KILN_ATTR_END].i;
    bool has_end = kiln_infer_has(io, KILN_ATTR_END);
    char x[128];
    if (axis < 0 || axis >= s->rank)
        return fail(err, size, "axis %lld is out of range for %s", (long long)axis, shp(io, s, x, sizeof x));
    if (axis == 0 && s->batched)
        return fail(err, size, "slice cannot slice axis 0 of %s: it is the batch dimension", shp(io, s, x, sizeof x));
    if (step < 1)
        return fail(err, size, "step must be >= 1, got %lld", (long long)step);
    int64_t first, count;
    kiln_slice_bounds(s->dims[axis], start, has_end, end, step, &first, &count);
    if (count < 1) {
        char e[32] = "";
        if (has_end)
            snprintf(e, sizeof e, "%lld", (long long)end);
        return fail(err, size, "slice [%lld:%s:%lld] of axis %lld of %s selects no element", (long long)start, e,
                    (long long)step, (long long)axis, shp(io, s, x, sizeof x));
    }
    *out = same_as(IN(io, 0));
    out->shape.dims[axis] = count;
    return 0;
}

static int infer_expand(const kiln_infer_in *io, kiln_type *out, char *err, size_t size)
{
    const kiln_shape *s = &IN(io, 0)->shape;
    const kiln_attr *a = &io->attrs[KILN_ATTR_SHAPE];
    char x[128];
    if (a->n < 1 || a->n > KILN_MAX_RANK)
        return fail(err, size, "shape must have 1 to %d entries", KILN_MAX_RANK);
    if (a->n < s->rank)
        return fail(err, size, "cannot expand %s to %d dimensions: the shape has fewer entries than the operand",
                    shp(io, s, x, sizeof x), a->n);
    if (s->batched && a->n != s->rank)
        return fail(err, size, "cannot expand %s to %d dimensions: the batch dimension would move off axis 0",
                    shp(io, s, x, sizeof x), a->n);
    kiln_shape r = {.rank = a->n};
    for (int i = 0; i < a->n; i++) {
        int j = i - (a->n - s->rank); /* the operand's axis, or < 0 for a new leading one */
        int64_t want = a->ints[i];
        bool from_batch = j == 0 && s->batched;
        int64_t have = j < 0 ? 1 : s->dims[j];
        if (want == KILN_DIM_BATCH) {
            if (i != 0)
                return fail(err, size, "shape entry %d is the batch, which only entry 0 can be", i);
            if (!from_batch && have != 1)
                return fail(err, size, "cannot expand dimension %d of %s (size %lld) along the batch: only a "
                            "dimension of size 1 can be repeated", j, shp(io, s, x, sizeof x), (long long)have);
            r.batched = true;
            r.dims[0] = KILN_DIM_BATCH;
            continue;
        }
        if (want < 1 || want > KILN_MAX_DIM)
            return fail(err, size, "shape entry %d is %lld; entries are sizes in 1..2147483647 or the batch", i,
                        (long long)want);
        if (from_batch)
            return fail(err, size, "cannot expand %s to a fixed size %lld along axis 0: the batch dimension stays "
                        "the batch (write the batch's name there)", shp(io, s, x, sizeof x), (long long)want);
        if (have != want && have != 1)
            return fail(err, size, "cannot expand dimension %d of %s (size %lld) to %lld: only a dimension of "
                        "size 1 can be repeated", j, shp(io, s, x, sizeof x), (long long)have, (long long)want);
        r.dims[i] = want;
    }
    *out = same_as(IN(io, 0));
    out->shape = r;
    return check_limits(io, &out->shape, err, size);
}

/* The last two axes of an op that works per plane (resize, adaptive_avgpool2d). */
static int check_planes(const kiln_infer_in *io, const kiln_shape *s, char *err, size_t size)
{
    char x[128];
    if (s->rank < 2 || (s->batched && s->rank < 3))
        return fail(err, size, "%s works on the last two axes, which must not include the batch; %s has too few",
                    kiln_op_name(io->op), shp(io, s, x, sizeof x));
    return 0;
}

double kiln_resize_ratio(int64_t in, int64_t out, bool has_scale, double scale, bool align_corners)
{
    if (align_corners)
        return out > 1 ? (double)(in - 1) / (double)(out - 1) : 0.0;
    return has_scale && scale > 0 ? 1.0 / scale : (double)in / (double)out;
}

static int64_t clamp_index(int64_t i, int64_t n) { return i < 0 ? 0 : i >= n ? n - 1 : i; }

/* PyTorch's cubic convolution kernel with A = -0.75: for |x| <= 1 and for
 * 1 < |x| < 2. */
static double cubic_near(double x, double A) { return ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0; }
static double cubic_far(double x, double A) { return ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A; }

void kiln_resize_axis(kiln_resize_mode mode, int64_t in, int64_t out, bool has_scale, double scale,
                      bool align_corners, int64_t o, int64_t idx[4], double w[4])
{
    for (int k = 0; k < 4; k++)
        idx[k] = 0, w[k] = 0.0;
    switch (mode) {
    case KILN_RESIZE_NEAREST:
    case KILN_RESIZE_NEAREST_EXACT: {
        /* PyTorch: a float scale, 1 / scale (when given) or in / out. */
        float fs = has_scale && scale > 0 ? (float)(1.0 / scale) : (float)in / (float)out;
        int64_t src;
        if (mode == KILN_RESIZE_NEAREST) {
            src = (int64_t)floorf((float)o * fs);
        } else {
            src = (int64_t)floorf((float)(((double)o + 0.5) * (double)fs));
        }
        idx[0] = src < in - 1 ? src : in - 1;
        w[0] = 1.0;
        return;
    }
    case KILN_RESIZE_BILINEAR:
    case KILN_RESIZE_BICUBIC:
        break;
    }
    const double ratio = kiln_resize_ratio(in, out, has_scale, scale, align_corners);
    double src = align_corners ? ratio * (double)o : ratio * ((double)o + 0.5) - 0.5;
    if (mode == KILN_RESIZE_BILINEAR) {
        if (src < 0.0)
            src = 0.0;
        int64_t i0 = (int64_t)src; /* src >= 0: the floor */
        if (i0 > in - 1)
            i0 = in - 1;
        const double l1 = src - (double)i0;
        idx[0] = i0;
        idx[1] = i0 < in - 1 ? i0 + 1 : i0;
        w[0] = 1.0 - l1;
        w[1] = l1;
        return;
    }
    /* bicubic: four taps around floor(src), clamped to the input */
    const double fl = floor(src), t = src - fl;
    const int64_t i0 = (int64_t)fl;
    const double A = -0.75;
    w[0] = cubic_far(t + 1.0, A);
    w[1] = cubic_near(t, A);
    w[2] = cubic_near(1.0 - t, A);
    w[3] = cubic_far(2.0 - t, A);
    for (int k = 0; k < 4; k++)
        idx[k] = clamp_index(i0 - 1 + k, in);
}

static int infer_resize(const kiln_infer_in *io, kiln_type *out, char *err, size_t size)
{
    const kiln_shape *s = &IN(io, 0)->shape;
    bool has_size = kiln_infer_has(io, KILN_ATTR_SIZE), has_scale = kiln_infer_has(io, KILN_ATTR_SCALE);
    if (check_planes(io, s, err, size))
        return -1;
    if (has_size == has_scale)
        return fail(err, size, "resize takes exactly one of 'size' and 'scale'%s",
                    has_size ? ", not both" : "");
    int64_t mode = io->attrs[KILN_ATTR_MODE].i;
    if (io->attrs[KILN_ATTR_ALIGN_CORNERS].i && mode != KILN_RESIZE_BILINEAR && mode != KILN_RESIZE_BICUBIC)
        return fail(err, size, "align_corners applies to the bilinear and bicubic modes only, not %s",
                    mode >= 0 && mode <= KILN_RESIZE_BICUBIC ? mode_words[mode] : "?");
    kiln_shape r = *s;
    for (int i = 0; i < 2; i++) {
        int64_t in = s->dims[s->rank - 2 + i], o;
        const char *axis = i ? "width" : "height";
        if (has_size) {
            if (io->attrs[KILN_ATTR_SIZE].n != 2)
                return fail(err, size, "size must be [h, w]");
            o = io->attrs[KILN_ATTR_SIZE].ints[i];
            if (o < 1 || o > KILN_MAX_DIM)
                return fail(err, size, "size entries must be in 1..2147483647, got %lld", (long long)o);
        } else {
            if (io->attrs[KILN_ATTR_SCALE].n != 2)
                return fail(err, size, "scale must be [sh, sw]");
            double f = io->attrs[KILN_ATTR_SCALE].floats[i];
            if (!(f > 0) || !isfinite(f))
                return fail(err, size, "scale entries must be positive, got %g", f);
            double d = floor((double)in * f);
            if (d < 1 || d > (double)KILN_MAX_DIM)
                return fail(err, size, "the %s %lld scaled by %g gives %.0f, outside 1..2147483647", axis,
                            (long long)in, f, d);
            o = (int64_t)d;
        }
        r.dims[s->rank - 2 + i] = o;
    }
    *out = same_as(IN(io, 0));
    out->shape = r;
    return check_limits(io, &out->shape, err, size);
}

static int infer_conv_transpose2d(const kiln_infer_in *io, kiln_type *out, char *err, size_t size)
{
    const kiln_type *x = IN(io, 0);
    char a[128];
    if (x->shape.rank != 4)
        return fail(err, size, "conv_transpose2d needs an input of rank 4 [N,C,H,W], got %s",
                    shp(io, &x->shape, a, sizeof a));
    const int64_t *k = io->attrs[KILN_ATTR_KERNEL].ints, *s = io->attrs[KILN_ATTR_STRIDE].ints,
                  *p = io->attrs[KILN_ATTR_PADDING].ints, *d = io->attrs[KILN_ATTR_DILATION].ints,
                  *op = io->attrs[KILN_ATTR_OUTPUT_PADDING].ints;
    int64_t groups = io->attrs[KILN_ATTR_GROUPS].i, filters = io->attrs[KILN_ATTR_FILTERS].i;
    int64_t c = x->shape.dims[1];
    if (groups < 1 || c % groups != 0)
        return fail(err, size, "groups (%lld) must divide the input channels (%lld)", (long long)groups, (long long)c);
    if (filters < 1 || filters > KILN_MAX_DIM || filters % groups != 0)
        return fail(err, size, "filters (%lld) must be positive and divisible by groups (%lld)",
                    (long long)filters, (long long)groups);
    *out = same_as(x);
    out->shape.dims[1] = filters;
    for (int i = 0; i < 2; i++) {
        const char *axis = i ? "width" : "height";
        if (k[i] < 1 || s[i] < 1 || d[i] < 1 || k[i] > KILN_MAX_DIM || s[i] > KILN_MAX_DIM || d[i] > KILN_MAX_DIM)
            return fail(err, size, "kernel, stride and dilation must be in 1..2147483647 (%s axis)", axis);
        if (p[i] < 0 || p[i + 2] < 0 || p[i] > KILN_MAX_DIM || p[i + 2] > KILN_MAX_DIM || op[i] < 0)
            return fail(err, size, "padding and output_padding must be >= 0 (%s axis)", axis);
        if (op[i] >= s[i] && op[i] >= d[i])
            return fail(err, size, "output_padding (%lld) must be smaller than the stride (%lld) or the dilation "
                        "(%lld) along the %s axis", (long long)op[i], (long long)s[i], (long long)d[i], axis);
        /* (in - 1) * stride - pads + dilation * (kernel - 1) + output_padding + 1 */
        int64_t in = x->shape.dims[2 + i];
        int64_t full = (in - 1) * s[i] + d[i] * (k[i] - 1) + 1 + op[i];
        int64_t o = full - p[i] - p[i + 2];
        if (o < 1)
            return fail(err, size, "the padding (%lld + %lld) removes the whole output along the %s axis (%lld "
                        "before padding)", (long long)p[i], (long long)p[i + 2], axis, (long long)full);
        if (o > KILN_MAX_DIM)
            return fail(err, size, "the output's %s would be %lld, more than 2147483647", axis, (long long)o);
        out->shape.dims[2 + i] = o;
    }
    return check_limits(io, &out->shape, err, size);
}

static int infer_adaptive_avgpool2d(const kiln_infer_in *io, kiln_type *out, char *err, size_t size)
{
    const kiln_shape *s = &IN(io, 0)->shape;
    const kiln_attr *a = &io->attrs[KILN_ATTR_SIZE];
    if (check_planes(io, s, err, size))
        return -1;
    if (a->n != 2)
        return fail(err, size, "size must be [h, w]");
    kiln_shape r = *s;
    for (int i = 0; i < 2; i++) {
        if (a->ints[i] < 1 || a->ints[i] > KILN_MAX_DIM)
            return fail(err, size, "size entries must be in 1..2147483647, got %lld", (long long)a->ints[i]);
        r.dims[s->rank - 2 + i] = a->ints[i];
    }
    *out = same_as(IN(io, 0));
    out->shape = r;
    return check_limits(io, &out->shape, err, size);
}

static int infer_group_norm(const kiln_infer_in *io, kiln_type *out, char *err, size_t size)
{
    const kiln_shape *s = &IN(io, 0)->shape;
    char x[128];
    int64_t groups = io->attrs[KILN_ATTR_GROUPS].i;
    if (s->rank < 2)
        return fail(err, size, "group_norm needs an input of rank >= 2 (channels on axis 1), got %s",
                    shp(io, s, x, sizeof x));
    if (groups < 1 || s->dims[1] % groups != 0)
        return fail(err, size, "groups (%lld) must divide the channels (%lld) of %s", (long long)groups,
                    (long long)s->dims[1], shp(io, s, x, sizeof x));
    if (!(io->attrs[KILN_ATTR_EPS].f >= 0))
        return fail(err, size, "eps must be >= 0");
    *out = same_as(IN(io, 0));
    return 0;
}

static int infer_prelu(const kiln_infer_in *io, kiln_type *out, char *err, size_t size)
{
    const kiln_shape *s = &IN(io, 0)->shape;
    char x[128], y[128];
    if (io->n_inputs > io->n_data) { /* the weight: one value, or one per channel (axis 1) */
        const kiln_shape *w = &IN(io, io->n_data)->shape;
        int64_t n = kiln_shape_elements_per_item(w);
        bool per_channel = s->rank >= 2 && w->rank == 1 && w->dims[0] == s->dims[1];
        if (!(w->rank == 1 && n == 1) && !per_channel)
            return fail(err, size, "the weight %s must have shape [1] or [C] with C = %s of %s",
                        shp(io, w, y, sizeof y), s->rank >= 2 ? "axis 1" : "the channels (axis 1, missing)",
                        shp(io, s, x, sizeof x));
    }
    *out = same_as(IN(io, 0));
    return 0;
}

/* ---- element types (IR only) ------------------------------------------- */

kiln_dtype kiln_attr_to_dtype(int64_t i)
{
    return i >= 0 && i < (int64_t)(sizeof to_dtypes / sizeof to_dtypes[0]) ? to_dtypes[i] : KILN_DTYPE_COUNT;
}

static bool is_float_storage(kiln_dtype t) { return t == KILN_F32 || t == KILN_BF16 || t == KILN_F16; }

/* convert: the same values in another float type (rounded to nearest even
 * when narrowing). */
static int infer_convert(const kiln_infer_in *io, kiln_type *out, char *err, size_t size)
{
    const kiln_type *x = IN(io, 0);
    kiln_dtype to = kiln_attr_to_dtype(io->attrs[KILN_ATTR_TO].i);
    if (!is_float_storage(x->dtype) || x->quantized)
        return fail(err, size, "convert reads f32, bf16 or f16, not %s%s (dequantize reads i8 and u8)",
                    kiln_dtype_name(x->dtype), x->quantized ? " (quantized)" : "");
    if (!is_float_storage(to))
        return fail(err, size, "convert makes f32, bf16 or f16, not %s (quantize makes i8 and u8)",
                    kiln_dtype_name(to));
    *out = same_as(x);
    out->dtype = to;
    return 0;
}

/* quantize (f32 -> i8/u8) and dequantize (i8/u8 -> f32): the operand's type,
 * `axis` (per channel) when given, and the parameters' element type (their
 * shapes are params_quant's). */
static int infer_quant(const kiln_infer_in *io, kiln_type *out, char *err, size_t size)
{
    const kiln_type *x = IN(io, 0);
    const char *name = kiln_op_name(io->op);
    char a[128];
    bool q = io->op == KILN_OP_QUANTIZE;
    kiln_dtype to = q ? kiln_attr_to_dtype(io->attrs[KILN_ATTR_TO].i) : KILN_F32;
    if (q && (x->dtype != KILN_F32 || x->quantized))
        return fail(err, size, "quantize reads f32, not %s%s", kiln_dtype_name(x->dtype),
                    x->quantized ? " (quantized)" : "");
    if (q && to != KILN_I8 && to != KILN_U8)
        return fail(err, size, "quantize makes i8 or u8, not %s (convert makes float types)", kiln_dtype_name(to));
    if (!q && x->dtype != KILN_I8 && x->dtype != KILN_U8)
        return fail(err, size, "dequantize reads i8 or u8, not %s", kiln_dtype_name(x->dtype));
    if (kiln_infer_has(io, KILN_ATTR_AXIS)) {
        int64_t axis = io->attrs[KILN_ATTR_AXIS].i;
        if (axis < 0 || axis >= x->shape.rank)
            return fail(err, size, "axis %lld is out of range for %s", (long long)axis, shp(io, &x->shape, a, sizeof a));
        if (axis == 0 && x->shape.batched)
            return fail(err, size, "axis 0 of %s is the batch dimension: %s scales per channel of a fixed axis",
                        shp(io, &x->shape, a, sizeof a), name);
    }
    for (uint32_t i = io->n_data; i < io->n_inputs; i++)
        if (IN(io, i)->dtype != KILN_F32)
            return fail(err, size, "the %s parameter of %s must be f32, not %s",
                        i == io->n_data ? "scale" : "zero_point", name, kiln_dtype_name(IN(io, i)->dtype));
    *out = same_as(x);
    out->dtype = to;
    out->quantized = false; /* the type text may echo a per-tensor scale (docs/ir.md) */
    out->scale = 0;
    out->zero_point = 0;
    return 0;
}

/* ---- parameter shapes (valid attributes: the shape rule ran first) ------ */

/* quantize, dequantize: scale and zero_point are [1] (per tensor) or [C],
 * C the size of `axis` (per channel). */
static int params_quant(const kiln_infer_in *io, kiln_shape *shapes, char *err, size_t size)
{
    const kiln_shape *x = &IN(io, 0)->shape;
    int64_t c = 1;
    if (kiln_infer_has(io, KILN_ATTR_AXIS)) {
        int64_t axis = io->attrs[KILN_ATTR_AXIS].i;
        if (axis < 0 || axis >= x->rank)
            return fail(err, size, "axis %lld is out of range for rank %d", (long long)axis, x->rank);
        c = x->dims[axis];
    }
    set_shape(&shapes[0], 1, &c);
    set_shape(&shapes[1], 1, &c);
    return 0;
}

static int params_dense(const kiln_infer_in *io, kiln_shape *shapes, char *err, size_t size)
{
    const kiln_shape *x = &IN(io, 0)->shape;
    int64_t units = io->attrs[KILN_ATTR_UNITS].i;
    if (x->rank < 1)
        return fail(err, size, "dense needs an input of rank >= 1");
    set_shape(&shapes[0], 2, (const int64_t[]){units, x->dims[x->rank - 1]});
    set_shape(&shapes[1], 1, (const int64_t[]){units});
    return 0;
}

static int params_conv2d(const kiln_infer_in *io, kiln_shape *shapes, char *err, size_t size)
{
    const kiln_shape *x = &IN(io, 0)->shape;
    const int64_t *k = io->attrs[KILN_ATTR_KERNEL].ints;
    int64_t groups = io->attrs[KILN_ATTR_GROUPS].i, filters = io->attrs[KILN_ATTR_FILTERS].i;
    if (x->rank != 4 || groups < 1)
        return fail(err, size, "conv2d needs an input of rank 4 and groups >= 1");
    set_shape(&shapes[0], 4, (const int64_t[]){filters, x->dims[1] / groups, k[0], k[1]});
    set_shape(&shapes[1], 1, (const int64_t[]){filters});
    return 0;
}

static int params_conv_transpose2d(const kiln_infer_in *io, kiln_shape *shapes, char *err, size_t size)
{
    const kiln_shape *x = &IN(io, 0)->shape;
    const int64_t *k = io->attrs[KILN_ATTR_KERNEL].ints;
    int64_t groups = io->attrs[KILN_ATTR_GROUPS].i, filters = io->attrs[KILN_ATTR_FILTERS].i;
    if (x->rank != 4 || groups < 1)
        return fail(err, size, "conv_transpose2d needs an input of rank 4 and groups >= 1");
    set_shape(&shapes[0], 4, (const int64_t[]){x->dims[1], filters / groups, k[0], k[1]});
    set_shape(&shapes[1], 1, (const int64_t[]){filters});
    return 0;
}

/* prelu: one weight per channel (axis 1), or [1] (KILN_OPF_PARAM_ONE) for
 * an input without channels. */
static int params_prelu(const kiln_infer_in *io, kiln_shape *shapes, char *err, size_t size)
{
    const kiln_shape *x = &IN(io, 0)->shape;
    set_shape(&shapes[0], 1, x->rank >= 2 ? &x->dims[1] : (const int64_t[]){1});
    return 0;
}

/* Every role a vector over axis 1 (channels). */
static int params_channels(const kiln_infer_in *io, kiln_shape *shapes, char *err, size_t size)
{
    if (IN(io, 0)->shape.rank < 2)
        return fail(err, size, "the channels are axis 1 of an input of rank >= 2");
    for (int i = 0; i < KILN_MAX_OP_PARAMS; i++)
        set_shape(&shapes[i], 1, &IN(io, 0)->shape.dims[1]);
    return 0;
}

/* Every role a vector over the last axis. */
static int params_last_axis(const kiln_infer_in *io, kiln_shape *shapes, char *err, size_t size)
{
    const kiln_shape *x = &IN(io, 0)->shape;
    if (x->rank < 1)
        return fail(err, size, "the input has no last axis");
    for (int i = 0; i < KILN_MAX_OP_PARAMS; i++)
        set_shape(&shapes[i], 1, &x->dims[x->rank - 1]);
    return 0;
}

/* ---- the table --------------------------------------------------------- */

#define A(id, use, text) {KILN_ATTR_##id, KILN_USE_##use, text, 0}
#define FROM(id, src) {KILN_ATTR_##id, KILN_USE_FROM, NULL, KILN_ATTR_##src}
#define UNARY(ID, nm) [KILN_OP_##ID] = {nm, 1, 1, {0}, 0, {{0}}, 0, 0, infer_unary, NULL}
#define BINARY(ID, nm)                                                                           \
    [KILN_OP_##ID] = {nm, 1, 2, {0}, 0, {A(SCALAR, OPTIONAL, NULL), A(REVERSE, DEFAULT, "false")}, 2, \
                      0, infer_binary, NULL}

const kiln_op_facts kiln_op_fact_table[KILN_OP_COUNT] = {
#define KILN_OP(id, name, pattern, layout, cost) \
    [KILN_OP_##id] = {KILN_PAT_##pattern, KILN_LAYR_##layout, KILN_COST_##cost},
#include "ops.def"
#undef KILN_OP
};

const kiln_op_def kiln_op_defs[KILN_OP_COUNT] = {
    [KILN_OP_DENSE] = {"dense", 1, 1, {"weight", "bias"}, 1,
                       {A(UNITS, REQUIRED, NULL), A(IN_SCALE, OPTIONAL, NULL), A(IN_ZERO, OPTIONAL, NULL)}, 3, 0, infer_dense,
                       params_dense},
    [KILN_OP_CONV2D] = {"conv2d", 1, 1, {"weight", "bias"}, 1,
                        {A(FILTERS, REQUIRED, NULL), A(KERNEL, REQUIRED, NULL), A(STRIDE, DEFAULT, "1"),
                         A(PADDING, DEFAULT, "0"), A(DILATION, DEFAULT, "1"), A(GROUPS, DEFAULT, "1"),
                         A(IN_SCALE, OPTIONAL, NULL), A(IN_ZERO, OPTIONAL, NULL)},
                        8, 0, infer_conv2d, params_conv2d},
    [KILN_OP_MAXPOOL2D] = {"maxpool2d", 1, 1, {0}, 0,
                           {A(KERNEL, REQUIRED, NULL), FROM(STRIDE, KERNEL), A(PADDING, DEFAULT, "0"),
                            A(DILATION, DEFAULT, "1"), A(CEIL_MODE, DEFAULT, "false")},
                           5, 0, infer_pool, NULL},
    [KILN_OP_AVGPOOL2D] = {"avgpool2d", 1, 1, {0}, 0,
                           {A(KERNEL, REQUIRED, NULL), FROM(STRIDE, KERNEL), A(PADDING, DEFAULT, "0"),
                            A(CEIL_MODE, DEFAULT, "false"), A(COUNT_INCLUDE_PAD, DEFAULT, "true")},
                           5, 0, infer_pool, NULL},
    [KILN_OP_GLOBAL_AVGPOOL] = {"global_avgpool", 1, 1, {0}, 0, {{0}}, 0, 0, infer_global_avgpool, NULL},
    [KILN_OP_BATCHNORM] = {"batchnorm", 1, 1, {"weight", "bias", "running_mean", "running_var"}, 4,
                           {A(EPS, DEFAULT, "1e-5")}, 1, 0, infer_batchnorm, params_channels},
    [KILN_OP_LAYERNORM] = {"layernorm", 1, 1, {"weight", "bias"}, 0, {A(EPS, DEFAULT, "1e-5")}, 1, 0,
                           infer_layernorm, params_last_axis},
    UNARY(RELU, "relu"),
    UNARY(RELU6, "relu6"),
    UNARY(SIGMOID, "sigmoid"),
    UNARY(TANH, "tanh"),
    UNARY(SILU, "silu"),
    UNARY(HARDSWISH, "hardswish"),
    /* alpha 1/6 (the double nearest it) and beta 0.5 are PyTorch's */
    [KILN_OP_HARDSIGMOID] = {"hardsigmoid", 1, 1, {0}, 0,
                             {A(ALPHA, DEFAULT, "0.16666666666666666"), A(BETA, DEFAULT, "0.5")}, 2, 0, infer_unary,
                             NULL},
    UNARY(EXP, "exp"),
    UNARY(SQRT, "sqrt"),
    UNARY(NEG, "neg"),
    [KILN_OP_GELU] = {"gelu", 1, 1, {0}, 0, {A(APPROXIMATE, DEFAULT, "none")}, 1, 0, infer_unary, NULL},
    [KILN_OP_LEAKY_RELU] = {"leaky_relu", 1, 1, {0}, 0, {A(ALPHA, DEFAULT, "0.01")}, 1, 0, infer_unary, NULL},
    [KILN_OP_ELU] = {"elu", 1, 1, {0}, 0, {A(ALPHA, DEFAULT, "1.0")}, 1, 0, infer_unary, NULL},
    [KILN_OP_CLIP] = {"clip", 1, 1, {0}, 0, {A(MIN, OPTIONAL, NULL), A(MAX, OPTIONAL, NULL)}, 2, 0, infer_unary,
                      NULL},
    [KILN_OP_SOFTMAX] = {"softmax", 1, 1, {0}, 0, {A(AXIS, DEFAULT, "-1")}, 1, 0, infer_softmax, NULL},
    [KILN_OP_LOG_SOFTMAX] = {"log_softmax", 1, 1, {0}, 0, {A(AXIS, DEFAULT, "-1")}, 1, 0, infer_softmax, NULL},
    BINARY(ADD, "add"),
    BINARY(SUB, "sub"),
    BINARY(MUL, "mul"),
    BINARY(DIV, "div"),
    BINARY(MAX, "max"),
    BINARY(MIN, "min"),
    [KILN_OP_MATMUL] = {"matmul", 2, 2, {0}, 0, {A(TRANSPOSE_B, DEFAULT, "false")}, 1, 0, infer_matmul, NULL},
    [KILN_OP_CONCAT] = {"concat", 1, -1, {0}, 0, {A(AXIS, DEFAULT, "1")}, 1, 0, infer_concat, NULL},
    [KILN_OP_FLATTEN] = {"flatten", 1, 1, {0}, 0, {A(AXIS, DEFAULT, "1")}, 1, 0, infer_flatten, NULL},
    [KILN_OP_RESHAPE] = {"reshape", 1, 1, {0}, 0, {A(SHAPE, REQUIRED, NULL)}, 1, 0, infer_reshape, NULL},
    [KILN_OP_TRANSPOSE] = {"transpose", 1, 1, {0}, 0, {A(PERM, REQUIRED, NULL)}, 1, 0, infer_transpose, NULL},
    [KILN_OP_MEAN] = {"mean", 1, 1, {0}, 0, {A(AXES, REQUIRED, NULL), A(KEEPDIMS, DEFAULT, "true")}, 2, 0,
                      infer_mean, NULL},
    [KILN_OP_PAD] = {"pad", 1, 1, {0}, 0, {A(PADS, REQUIRED, NULL), A(VALUE, DEFAULT, "0")}, 2, 0, infer_pad, NULL},
    [KILN_OP_IDENTITY] = {"identity", 1, 1, {0}, 0, {{0}}, 0, KILN_OPF_PASS, infer_same, NULL},
    [KILN_OP_DROPOUT] = {"dropout", 1, 1, {0}, 0, {{0}}, 0, KILN_OPF_PASS, infer_same, NULL},
    /* The layout pass's conversion between layouts: the logical values pass
     * unchanged, only their storage differs (not KILN_OPF_PASS: removing it
     * would change what its readers find in memory). */
    [KILN_OP_REORDER] = {"reorder", 1, 1, {0}, 0, {{0}}, 0, KILN_OPF_IR_ONLY, infer_same, NULL},
    [KILN_OP_CONSTANT] = {"constant", 0, 0, {"value"}, 1, {{0}}, 0, KILN_OPF_NO_DATA, infer_constant, NULL},
    /* version 1.1 */
    [KILN_OP_SLICE] = {"slice", 1, 1, {0}, 0,
                       {A(AXIS, REQUIRED, NULL), A(START, DEFAULT, "0"), A(END, OPTIONAL, NULL),
                        A(STEP, DEFAULT, "1")},
                       4, 0, infer_slice, NULL},
    [KILN_OP_EXPAND] = {"expand", 1, 1, {0}, 0, {A(SHAPE, REQUIRED, NULL)}, 1, 0, infer_expand, NULL},
    [KILN_OP_RESIZE] = {"resize", 1, 1, {0}, 0,
                        {A(SIZE, OPTIONAL, NULL), A(SCALE, OPTIONAL, NULL), A(MODE, DEFAULT, "nearest"),
                         A(ALIGN_CORNERS, DEFAULT, "false")},
                        4, 0, infer_resize, NULL},
    [KILN_OP_CONV_TRANSPOSE2D] = {"conv_transpose2d", 1, 1, {"weight", "bias"}, 1,
                                  {A(FILTERS, REQUIRED, NULL), A(KERNEL, REQUIRED, NULL), A(STRIDE, DEFAULT, "1"),
                                   A(PADDING, DEFAULT, "0"), A(OUTPUT_PADDING, DEFAULT, "0"),
                                   A(DILATION, DEFAULT, "1"), A(GROUPS, DEFAULT, "1")},
                                  7, 0, infer_conv_transpose2d, params_conv_transpose2d},
    [KILN_OP_ADAPTIVE_AVGPOOL2D] = {"adaptive_avgpool2d", 1, 1, {0}, 0, {A(SIZE, REQUIRED, NULL)}, 1, 0,
                                    infer_adaptive_avgpool2d, NULL},
    [KILN_OP_GROUP_NORM] = {"group_norm", 1, 1, {"weight", "bias"}, 0,
                            {A(GROUPS, REQUIRED, NULL), A(EPS, DEFAULT, "1e-5")}, 2, 0, infer_group_norm,
                            params_channels},
    [KILN_OP_PRELU] = {"prelu", 1, 1, {"weight"}, 1, {{0}}, 0, KILN_OPF_PARAM_ONE, infer_prelu, params_prelu},
    BINARY(POW, "pow"),
    [KILN_OP_REDUCE_SUM] = {"reduce_sum", 1, 1, {0}, 0, {A(AXES, REQUIRED, NULL), A(KEEPDIMS, DEFAULT, "true")}, 2,
                            0, infer_mean, NULL},
    [KILN_OP_REDUCE_MAX] = {"reduce_max", 1, 1, {0}, 0, {A(AXES, REQUIRED, NULL), A(KEEPDIMS, DEFAULT, "true")}, 2,
                            0, infer_mean, NULL},
    [KILN_OP_REDUCE_MIN] = {"reduce_min", 1, 1, {0}, 0, {A(AXES, REQUIRED, NULL), A(KEEPDIMS, DEFAULT, "true")}, 2,
                            0, infer_mean, NULL},
    UNARY(ERF, "erf"),
    UNARY(ABS, "abs"),
    UNARY(LOG, "log"),
    UNARY(SOFTPLUS, "softplus"),
    /* IR only: element types (docs/ir.md "Element types") */
    [KILN_OP_CONVERT] = {"convert", 1, 1, {0}, 0, {A(TO, REQUIRED, NULL)}, 1, KILN_OPF_IR_ONLY | KILN_OPF_SETS_DTYPE,
                         infer_convert, NULL},
    [KILN_OP_QUANTIZE] = {"quantize", 1, 1, {"scale", "zero_point"}, 1,
                          {A(TO, REQUIRED, NULL), A(AXIS, OPTIONAL, NULL)}, 2,
                          KILN_OPF_IR_ONLY | KILN_OPF_SETS_DTYPE, infer_quant, params_quant},
    [KILN_OP_DEQUANTIZE] = {"dequantize", 1, 1, {"scale", "zero_point"}, 1, {A(AXIS, OPTIONAL, NULL)}, 1,
                            KILN_OPF_IR_ONLY | KILN_OPF_SETS_DTYPE, infer_quant, params_quant},
};

_Static_assert(sizeof kiln_op_defs / sizeof kiln_op_defs[0] == KILN_OP_COUNT, "one definition per op");
_Static_assert(sizeof kiln_op_fact_table / sizeof kiln_op_fact_table[0] == KILN_OP_COUNT, "facts per op");
_Static_assert(KILN_ATTR_COUNT <= 64, "attr_set is a 64-bit mask");

const char *kiln_op_name(kiln_op op)
{
    return (unsigned)op < KILN_OP_COUNT ? kiln_op_defs[op].name : "?";
}

int kiln_op_lookup(const char *name, kiln_op *out)
{
    for (int i = 0; i < KILN_OP_COUNT; i++)
        if (strcmp(kiln_op_defs[i].name, name) == 0) {
            *out = (kiln_op)i;
            return 0;
        }
    return -1;
}

int kiln_attr_lookup(const char *name, kiln_attr_id *out)
{
    for (int i = 0; i < KILN_ATTR_COUNT; i++)
        if (strcmp(kiln_attr_defs[i].name, name) == 0) {
            *out = (kiln_attr_id)i;
            return 0;
        }
    return -1;
}

const kiln_op_attr *kiln_op_find_attr(kiln_op op, kiln_attr_id id)
{
    const kiln_op_def *d = &kiln_op_defs[op];
    for (int i = 0; i < d->n_attrs; i++)
        if (d->attrs[i].id == id)
            return &d->attrs[i];
    return NULL;
}

int kiln_op_param_index(kiln_op op, const char *role)
{
    const kiln_op_def *d = &kiln_op_defs[op];
    for (int i = 0; i < KILN_MAX_OP_PARAMS && d->params[i]; i++)
        if (strcmp(d->params[i], role) == 0)
            return i;
    return -1;
}

bool kiln_op_param_shapes(kiln_op op, const kiln_type *const *data, uint32_t n_data, const kiln_attr *attrs,
                          uint64_t attr_set, kiln_shape shapes[KILN_MAX_OP_PARAMS])
{
    const kiln_op_def *d = &kiln_op_defs[op];
    memset(shapes, 0, sizeof(kiln_shape) * KILN_MAX_OP_PARAMS);
    if (!d->param_shapes || n_data < 1)
        return false;
    kiln_infer_in in = {op, data, n_data, n_data, attrs, attr_set, NULL, 0};
    char err[128];
    return d->param_shapes(&in, shapes, err, sizeof err) == 0;
}

/* ---- scalars ----------------------------------------------------------- */

int kiln_parse_int(const char *s, int64_t *out)
{
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    if (*p < '0' || *p > '9')
        return -1;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9')
            return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE || *end)
        return -1;
    *out = v;
    return 0;
}

int kiln_parse_float(const char *s, double *out)
{
    if (!*s)
        return -1;
    for (const char *q = s; *q; q++) /* strtod's hex, inf and nan are not numbers here */
        if (*q == 'x' || *q == 'X' || *q == 'n' || *q == 'N' || *q == 'i' || *q == 'I' || *q == ' ' ||
            *q == '\t' || *q == '\n')
            return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (*end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

int kiln_parse_bool(const char *s, bool *out)
{
    if (strcmp(s, "true") == 0)
        return *out = true, 0;
    if (strcmp(s, "false") == 0)
        return *out = false, 0;
    return -1;
}

/* One number of a FLOATS or INTS attribute, the whole of `tok`, into slot i. */
static int list_number(bool floats, const char *tok, kiln_attr *v, int i)
{
    if (floats)
        return kiln_parse_float(tok, &v->floats[i]);
    int64_t x;
    if (kiln_parse_int(tok, &x))
        return -1;
    v->ints[i] = x;
    return 0;
}

/* FLOATS and INTS: a list written inline ("[1, 2]"), or one number that
 * stands for `expand` equal ones (at least one). */
static int number_list(const kiln_attr_def *def, bool floats, const char *text, int expand, kiln_attr *v, char *err,
                       size_t err_size)
{
    const char *what = floats ? "numbers" : "integers";
    if (text[0] != '[') {
        if (list_number(floats, text, v, 0))
            return floats ? fail(err, err_size, "'%s' expects a finite number or a list of them, got '%s'", def->name, text)
                          : fail(err, err_size, "'%s' expects an integer or a list of integers, got '%s'", def->name, text);
        int count = expand > 0 ? expand : 1;
        if (count > KILN_MAX_INTS)
            count = KILN_MAX_INTS;
        for (int i = 1; i < count; i++) {
            v->floats[i] = v->floats[0];
            v->ints[i] = v->ints[0];
        }
        v->n = count;
        return 0;
    }
    const char *p = text + 1;
    while (*p == ' ')
        p++;
    while (*p && *p != ']') {
        char num[64];
        size_t len = 0;
        while (p[len] && p[len] != ',' && p[len] != ']' && p[len] != ' ')
            len++;
        if (len == 0 || len >= sizeof num || v->n >= KILN_MAX_INTS)
            return fail(err, err_size, "'%s' expects a list of at most %d %s", def->name, KILN_MAX_INTS, what);
        memcpy(num, p, len);
        num[len] = '\0';
        if (list_number(floats, num, v, v->n))
            return fail(err, err_size, "'%s' expects a list of %s, got '%s'", def->name,
                        floats ? "finite numbers" : "integers", num);
        v->n++;
        p += len;
        while (*p == ' ')
            p++;
        if (*p == ',')
            p++;
        while (*p == ' ')
            p++;
    }
    if (*p != ']' || p[1])
        return fail(err, err_size, "'%s' expects a list of %s, got '%s'", def->name, what, text);
    return 0;
}

int kiln_attr_from_text(kiln_attr_id id, const char *text, int expand, kiln_attr *out, char *err,
                        size_t err_size)
{
    const kiln_attr_def *def = &kiln_attr_defs[id];
    kiln_attr v;
    memset(&v, 0, sizeof v);
    bool b;
    switch (def->type) {
    case KILN_ATTR_T_INT:
        if (kiln_parse_int(text, &v.i))
            return fail(err, err_size, "'%s' expects an integer, got '%s'", def->name, text);
        break;
    case KILN_ATTR_T_FLOAT:
        if (kiln_parse_float(text, &v.f))
            return fail(err, err_size, "'%s' expects a finite number, got '%s'", def->name, text);
        break;
    case KILN_ATTR_T_BOOL:
        if (kiln_parse_bool(text, &b))
            return fail(err, err_size, "'%s' expects true or false, got '%s'", def->name, text);
        v.i = b;
        break;
    case KILN_ATTR_T_WORD: {
        const char *const *w = attr_words(id);
        int i = 0;
        for (; w && w[i]; i++)
            if (strcmp(w[i], text) == 0)
                break;
        if (!w || !w[i]) {
            char list[160];
            size_t len = 0;
            list[0] = '\0';
            for (int k = 0; w && w[k] && len < sizeof list; k++)
                len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", k ? ", " : "", w[k]);
            return fail(err, err_size, "'%s' must be one of: %s; got '%s'", def->name, list, text);
        }
        v.i = i;
        break;
    }
    case KILN_ATTR_T_FLOATS:
    case KILN_ATTR_T_INTS:
        if (number_list(def, def->type == KILN_ATTR_T_FLOATS, text, expand, &v, err, err_size))
            return -1;
        break;
    }
    *out = v;
    return 0;
}

const char *const *kiln_attr_words(kiln_attr_id id) { return attr_words(id); }
