/* ir/type.c: dtypes, shapes and types. */
#include "type.h"

#include <stdio.h>
#include <string.h>

static const char *const dtype_names[KILN_DTYPE_COUNT] = {
    [KILN_F32] = "f32", [KILN_BF16] = "bf16", [KILN_F16] = "f16", [KILN_I8] = "i8",
    [KILN_U8] = "u8",   [KILN_I32] = "i32",   [KILN_F64] = "f64",
};
static const size_t dtype_sizes[KILN_DTYPE_COUNT] = {
    [KILN_F32] = 4, [KILN_BF16] = 2, [KILN_F16] = 2, [KILN_I8] = 1,
    [KILN_U8] = 1,  [KILN_I32] = 4,  [KILN_F64] = 8,
};

const char *kiln_dtype_name(kiln_dtype t)
{
    return (unsigned)t < KILN_DTYPE_COUNT ? dtype_names[t] : "?";
}

int kiln_dtype_parse(const char *s, kiln_dtype *out)
{
    for (int i = 0; i < KILN_DTYPE_COUNT; i++)
        if (strcmp(s, dtype_names[i]) == 0) {
            *out = (kiln_dtype)i;
            return 0;
        }
    return -1;
}

size_t kiln_dtype_size(kiln_dtype t)
{
    return (unsigned)t < KILN_DTYPE_COUNT ? dtype_sizes[t] : 0;
}

int64_t kiln_shape_elements_per_item(const kiln_shape *s)
{
    int64_t n = 1;
    for (int i = s->batched ? 1 : 0; i < s->rank; i++) {
        if (s->dims[i] < 0 || (s->dims[i] != 0 && n > INT64_MAX / s->dims[i]))
            return -1;
        n *= s->dims[i];
    }
    return n;
}

int64_t kiln_shape_elements(const kiln_shape *s, int64_t batch)
{
    int64_t n = kiln_shape_elements_per_item(s);
    if (n < 0 || !s->batched)
        return n;
    if (batch < 0 || (batch != 0 && n > INT64_MAX / batch))
        return -1;
    return n * batch;
}

bool kiln_shape_equal(const kiln_shape *a, const kiln_shape *b)
{
    if (a->rank != b->rank || a->batched != b->batched)
        return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i])
            return false;
    return true;
}

int64_t kiln_type_storage_elements_per_item(const kiln_type *t)
{
    if (t->layout == KILN_LAYOUT_PLAIN)
        return kiln_shape_elements_per_item(&t->shape);
    if (t->layout != KILN_LAYOUT_NCHWXC || t->shape.rank != 4 || t->block < 1)
        return -1;
    /* The plain count with C rounded up to a whole number of blocks. */
    kiln_shape padded = t->shape;
    int64_t c = padded.dims[1];
    if (c < 1 || c > INT64_MAX - (t->block - 1))
        return -1;
    padded.dims[1] = (c + t->block - 1) / t->block * t->block;
    return kiln_shape_elements_per_item(&padded);
}

int64_t kiln_type_storage_elements(const kiln_type *t, int64_t batch)
{
    int64_t n = kiln_type_storage_elements_per_item(t);
    if (n < 0 || !t->shape.batched)
        return n;
    if (batch < 0 || (batch != 0 && n > INT64_MAX / batch))
        return -1;
    return n * batch;
}

int kiln_type_check_layout(const kiln_type *t, char *err, size_t size)
{
    switch (t->layout) {
    case KILN_LAYOUT_PLAIN:
        if (t->block == 0)
            return 0;
        snprintf(err, size, "a plain type has channel block %d (0 expected)", t->block);
        return -1;
    case KILN_LAYOUT_NCHWXC:
        if (t->block < 1 || t->block > KILN_MAX_BLOCK)
            snprintf(err, size, "channel block %d is outside 1..%d", t->block, KILN_MAX_BLOCK);
        else if (t->shape.rank != 4)
            snprintf(err, size, "a blocked value must have rank 4 [N,C,H,W], not rank %d", t->shape.rank);
        else if (t->dtype != KILN_F32 || t->quantized)
            snprintf(err, size, "a blocked value must be f32, not %s%s", kiln_dtype_name(t->dtype),
                     t->quantized ? " (quantized)" : "");
        else
            return 0;
        return -1;
    }
    snprintf(err, size, "unknown layout %d", (int)t->layout);
    return -1;
}

char *kiln_shape_format(const kiln_shape *s, const char *batch_name, char *buf, size_t size)
{
    size_t n = 0;
    if (size == 0)
        return buf;
    buf[0] = '\0';
#define PUT(...)                                                                    \
    do {                                                                            \
        int w_ = snprintf(buf + n, n < size ? size - n : 0, __VA_ARGS__);           \
        if (w_ > 0)                                                                 \
            n += (size_t)w_;                                                        \
        if (n >= size)                                                              \
            n = size - 1;                                                           \
    } while (0)
    PUT("[");
    for (int i = 0; i < s->rank; i++) {
        if (i)
            PUT(",");
        if (i == 0 && s->batched)
            PUT("%s", batch_name ? batch_name : "batch");
        else
            PUT("%lld", (long long)s->dims[i]);
    }
    PUT("]");
#undef PUT
    return buf;
}

char *kiln_type_format(const kiln_type *t, const char *batch_name, char *buf, size_t size)
{
    char shape[256];
    kiln_shape_format(&t->shape, batch_name, shape, sizeof shape);
    int w = snprintf(buf, size, "%s%s", kiln_dtype_name(t->dtype), shape);
    if (w >= 0 && (size_t)w < size && t->layout == KILN_LAYOUT_NCHWXC)
        w += snprintf(buf + w, size - (size_t)w, " nchw%dc", t->block);
    if (w >= 0 && (size_t)w < size && t->quantized)
        snprintf(buf + w, size - (size_t)w, " q(scale=%.17g, zp=%d)", t->scale, (int)t->zero_point);
    return buf;
}
