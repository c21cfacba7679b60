/* compiler/frontend/onnx/tensor.c: constant tensors: TensorProto decoding and
 * element access. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "ir/convert.h"
#include "ox.h"

bool ox_dtype_is_float(int dtype)
{
    return dtype == OX_T_FLOAT || dtype == OX_T_DOUBLE || dtype == OX_T_FLOAT16 || dtype == OX_T_BFLOAT16;
}

bool ox_dtype_is_int(int dtype)
{
    switch (dtype) {
    case OX_T_UINT8: case OX_T_INT8: case OX_T_UINT16: case OX_T_INT16: case OX_T_INT32: case OX_T_INT64:
    case OX_T_BOOL: case OX_T_UINT32: case OX_T_UINT64:
        return true;
    default:
        return false;
    }
}

const char *ox_dtype_name(int dtype)
{
    static const char *const names[] = {"undefined", "float32", "uint8", "int8", "uint16", "int16", "int32",
                                        "int64", "string", "bool", "float16", "float64", "uint32", "uint64",
                                        "complex64", "complex128", "bfloat16", "float8e4m3fn", "float8e4m3fnuz",
                                        "float8e5m2", "float8e5m2fnuz", "uint4", "int4"};
    if (dtype >= 0 && (size_t)dtype < sizeof names / sizeof names[0])
        return names[dtype];
    return "an unknown type";
}

/* Bytes per element in raw_data; 0 for types kiln does not decode. */
static size_t dtype_size(int dtype)
{
    switch (dtype) {
    case OX_T_UINT8: case OX_T_INT8: case OX_T_BOOL:
        return 1;
    case OX_T_UINT16: case OX_T_INT16: case OX_T_FLOAT16: case OX_T_BFLOAT16:
        return 2;
    case OX_T_FLOAT: case OX_T_INT32: case OX_T_UINT32:
        return 4;
    case OX_T_DOUBLE: case OX_T_INT64: case OX_T_UINT64:
        return 8;
    default:
        return 0;
    }
}

/* Wraps an integer to its dtype, as a cast in C would. */
static int64_t wrap_int(int dtype, int64_t v)
{
    switch (dtype) {
    case OX_T_BOOL: return v != 0;
    case OX_T_UINT8: return (uint8_t)v;
    case OX_T_INT8: return (int8_t)v;
    case OX_T_UINT16: return (uint16_t)v;
    case OX_T_INT16: return (int16_t)v;
    case OX_T_INT32: return (int32_t)v;
    case OX_T_UINT32: return (uint32_t)v;
    default: return v;
    }
}

static double round_float(int dtype, double v)
{
    switch (dtype) {
    case OX_T_FLOAT: return (double)(float)v;
    case OX_T_FLOAT16: return (double)kiln_f16_to_f32(kiln_f32_to_f16((float)v));
    case OX_T_BFLOAT16: return (double)kiln_bf16_to_f32(kiln_f32_to_bf16((float)v));
    default: return v;
    }
}

ox_tensor *ox_tensor_new(ox_ctx *x, ox_node *n, int dtype, int rank, const int64_t *dims)
{
    if (rank < 0 || rank > OX_MAX_RANK) {
        if (n)
            ox_refuse(n, x, "a tensor of rank %d (kiln handles rank 0 to %d)", rank, OX_MAX_RANK);
        return NULL;
    }
    int64_t count = 1;
    for (int k = 0; k < rank; k++) {
        if (dims[k] < 0 || (dims[k] > 0 && count > x->max_elements / dims[k])) {
            if (n)
                ox_refuse(n, x, "a constant of more than %lld elements", (long long)x->max_elements);
            return NULL;
        }
        count *= dims[k];
    }
    if (count > x->max_elements) {
        if (n)
            ox_refuse(n, x, "a constant of more than %lld elements", (long long)x->max_elements);
        return NULL;
    }
    ox_tensor *t = kiln_arena_alloc(&x->arena, sizeof *t);
    if (!t) {
        ox_oom(x);
        return NULL;
    }
    t->dtype = dtype;
    t->rank = rank;
    if (rank)
        memcpy(t->dims, dims, sizeof(int64_t) * (size_t)rank);
    t->count = count;
    size_t bytes = (size_t)(count ? count : 1) * 8;
    if (ox_dtype_is_float(dtype))
        t->f = kiln_arena_alloc_aligned(&x->arena, bytes);
    else
        t->i = kiln_arena_alloc_aligned(&x->arena, bytes);
    if (!t->f && !t->i) {
        ox_oom(x);
        return NULL;
    }
    return t;
}

double ox_get_f(const ox_tensor *t, int64_t i)
{
    if (t->f32)
        return (double)t->f32[i];
    if (t->f)
        return t->f[i];
    return (double)t->i[i];
}

int64_t ox_get_i(const ox_tensor *t, int64_t i)
{
    if (t->i)
        return t->i[i];
    double v = ox_get_f(t, i);
    if (!(v >= -9.2e18 && v <= 9.2e18))
        return v > 0 ? INT64_MAX : INT64_MIN;
    return (int64_t)v;
}

bool ox_is_sym(const ox_tensor *t, int64_t i) { return t->sym && t->sym[i]; }

bool ox_has_sym(const ox_tensor *t)
{
    for (int64_t i = 0; t->sym && i < t->count; i++)
        if (t->sym[i])
            return true;
    return false;
}

void ox_set_f(ox_tensor *t, int64_t i, double v)
{
    if (t->f) {
        t->f[i] = round_float(t->dtype, v);
    } else if (t->f32) {
        t->f32[i] = (float)v;
    } else {
        int64_t w;
        if (isnan(v))
            w = 0;
        else if (v >= 9.2e18)
            w = INT64_MAX;
        else if (v <= -9.2e18)
            w = INT64_MIN;
        else
            w = (int64_t)v;
        t->i[i] = wrap_int(t->dtype, w);
    }
}

void ox_set_i(ox_tensor *t, int64_t i, int64_t v)
{
    if (t->i)
        t->i[i] = wrap_int(t->dtype, v);
    else
        ox_set_f(t, i, (double)v);
}

int ox_set_sym(ox_ctx *x, ox_tensor *t, int64_t i)
{
    if (!t->sym) {
        t->sym = kiln_arena_alloc(&x->arena, (size_t)(t->count ? t->count : 1));
        if (!t->sym) {
            ox_oom(x);
            return -1;
        }
    }
    t->sym[i] = 1;
    return 0;
}

float *ox_tensor_to_f32(ox_ctx *x, const ox_tensor *t)
{
    if (t->f32)
        return t->f32;
    float *out = kiln_arena_alloc_aligned(&x->arena, (size_t)(t->count ? t->count : 1) * sizeof(float));
    if (!out) {
        ox_oom(x);
        return NULL;
    }
    for (int64_t i = 0; i < t->count; i++)
        out[i] = (float)ox_get_f(t, i);
    return out;
}

/* ---- decoding ------------------------------------------------------------ */

/* Reads external data: the bytes [offset, offset + want) of the file named by
 * the tensor's `location`, relative to opt->base_dir. */
static void *read_external(ox_ctx *x, const Onnx__TensorProto *tp, size_t want, char *why, size_t why_size)
{
    const char *location = NULL;
    int64_t offset = 0, length = -1;
    for (size_t k = 0; k < tp->n_external_data; k++) {
        const Onnx__StringStringEntryProto *e = tp->external_data[k];
        const char *key = ox_str(e->key), *value = ox_str(e->value);
        char *end;
        if (strcmp(key, "location") == 0) {
            location = value;
        } else if (strcmp(key, "offset") == 0 || strcmp(key, "length") == 0) {
            long long v = strtoll(value, &end, 10);
            if (*value == '\0' || *end || v < 0) {
                snprintf(why, why_size, "its external data has a bad %s '%.40s'", key, value);
                return NULL;
            }
            *(strcmp(key, "offset") == 0 ? &offset : &length) = v;
        }
    }
    if (!location || !*location) {
        snprintf(why, why_size, "its external data names no file");
        return NULL;
    }
    if (location[0] == '/' || strstr(location, "..")) {
        snprintf(why, why_size, "its external data file '%.200s' is not a path inside the model's directory",
                 location);
        return NULL;
    }
    if (!x->opt->base_dir) {
        snprintf(why, why_size, "its data is in the external file '%.200s', which is not available here", location);
        return NULL;
    }
    if (length >= 0 && (uint64_t)length != want) {
        snprintf(why, why_size, "its external data is %lld bytes, the tensor needs %zu", (long long)length, want);
        return NULL;
    }
    char *path = kiln_arena_printf(&x->arena, "%s/%s", x->opt->base_dir, location);
    void *buf = kiln_arena_alloc_aligned(&x->arena, want ? want : 1);
    if (!path || !buf) {
        ox_oom(x);
        snprintf(why, why_size, "out of memory");
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, why_size, "its external data file '%.200s' is missing", location);
        return NULL;
    }
    bool ok = fseeko(f, (off_t)offset, SEEK_SET) == 0 && fread(buf, 1, want, f) == want;
    fclose(f);
    if (!ok) {
        snprintf(why, why_size, "its external data file '%.200s' is shorter than offset %lld + %zu bytes", location,
                 (long long)offset, want);
        return NULL;
    }
    return buf;
}

/* Decodes count little-endian elements of `dtype` at raw into t. */
static void decode_raw(ox_tensor *t, const uint8_t *raw)
{
    for (int64_t i = 0; i < t->count; i++) {
        const uint8_t *p = raw + (size_t)i * dtype_size(t->dtype);
        uint16_t u16;
        uint32_t u32;
        uint64_t u64;
        switch (t->dtype) {
        case OX_T_FLOAT: memcpy(&t->f32[i], p, 4); break;
        case OX_T_DOUBLE: memcpy(&t->f[i], p, 8); break;
        case OX_T_FLOAT16: memcpy(&u16, p, 2); t->f[i] = kiln_f16_to_f32(u16); break;
        case OX_T_BFLOAT16: memcpy(&u16, p, 2); t->f[i] = kiln_bf16_to_f32(u16); break;
        case OX_T_BOOL: t->i[i] = p[0] != 0; break;
        case OX_T_UINT8: t->i[i] = p[0]; break;
        case OX_T_INT8: t->i[i] = (int8_t)p[0]; break;
        case OX_T_UINT16: memcpy(&u16, p, 2); t->i[i] = u16; break;
        case OX_T_INT16: memcpy(&u16, p, 2); t->i[i] = (int16_t)u16; break;
        case OX_T_INT32: memcpy(&u32, p, 4); t->i[i] = (int32_t)u32; break;
        case OX_T_UINT32: memcpy(&u32, p, 4); t->i[i] = u32; break;
        case OX_T_INT64: memcpy(&u64, p, 8); t->i[i] = (int64_t)u64; break;
        case OX_T_UINT64: memcpy(&u64, p, 8); t->i[i] = (int64_t)u64; break;
        default: break;
        }
    }
}

ox_tensor *ox_tensor_decode(ox_ctx *x, const Onnx__TensorProto *tp, char *why, size_t why_size)
{
    int dtype = tp->has_data_type ? tp->data_type : OX_T_UNDEFINED;
    size_t esize = dtype_size(dtype);
    if (esize == 0) {
        snprintf(why, why_size, "its type %s is not one kiln reads", ox_dtype_name(dtype));
        return NULL;
    }
    if (tp->n_dims > OX_MAX_RANK) {
        snprintf(why, why_size, "it has rank %zu (kiln handles rank 0 to %d)", tp->n_dims, OX_MAX_RANK);
        return NULL;
    }
    if (tp->segment) {
        snprintf(why, why_size, "it is stored in segments");
        return NULL;
    }
    int64_t count = 1;
    for (size_t k = 0; k < tp->n_dims; k++) {
        int64_t d = tp->dims[k];
        if (d < 0 || (d > 0 && count > x->max_elements / d)) {
            snprintf(why, why_size, "its shape is negative or has more than %lld elements", (long long)x->max_elements);
            return NULL;
        }
        count *= d;
    }
    ox_tensor *t = kiln_arena_alloc(&x->arena, sizeof *t);
    if (!t) {
        ox_oom(x);
        snprintf(why, why_size, "out of memory");
        return NULL;
    }
    t->dtype = dtype;
    t->rank = (int)tp->n_dims;
    for (int k = 0; k < t->rank; k++)
        t->dims[k] = tp->dims[k];
    t->count = count;
    size_t slots = (size_t)(count ? count : 1);
    if (dtype == OX_T_FLOAT)
        t->f32 = kiln_arena_alloc_aligned(&x->arena, slots * sizeof(float));
    else if (ox_dtype_is_float(dtype))
        t->f = kiln_arena_alloc_aligned(&x->arena, slots * sizeof(double));
    else
        t->i = kiln_arena_alloc_aligned(&x->arena, slots * sizeof(int64_t));
    if (!t->f32 && !t->f && !t->i) {
        ox_oom(x);
        snprintf(why, why_size, "out of memory");
        return NULL;
    }
    size_t want = (size_t)count * esize;
    bool external = tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    if (external) {
        const void *raw = read_external(x, tp, want, why, why_size);
        if (!raw)
            return NULL;
        decode_raw(t, raw);
        return t;
    }
    if (tp->has_raw_data && (tp->raw_data.len > 0 || count == 0)) {
        if (tp->raw_data.len != want) {
            snprintf(why, why_size, "its raw data is %zu bytes for %lld elements of %s", tp->raw_data.len,
                     (long long)count, ox_dtype_name(dtype));
            return NULL;
        }
        decode_raw(t, tp->raw_data.data);
        return t;
    }
    size_t have;
    switch (dtype) {
    case OX_T_FLOAT: have = tp->n_float_data; break;
    case OX_T_DOUBLE: have = tp->n_double_data; break;
    case OX_T_INT64: have = tp->n_int64_data; break;
    case OX_T_UINT32: case OX_T_UINT64: have = tp->n_uint64_data; break;
    default: have = tp->n_int32_data; break;
    }
    if (have != (size_t)count) {
        snprintf(why, why_size, "it holds %zu values for %lld elements", have, (long long)count);
        return NULL;
    }
    for (int64_t i = 0; i < count; i++) {
        switch (dtype) {
        case OX_T_FLOAT: t->f32[i] = tp->float_data[i]; break;
        case OX_T_DOUBLE: t->f[i] = tp->double_data[i]; break;
        case OX_T_FLOAT16: t->f[i] = kiln_f16_to_f32((uint16_t)tp->int32_data[i]); break;
        case OX_T_BFLOAT16: t->f[i] = kiln_bf16_to_f32((uint16_t)tp->int32_data[i]); break;
        case OX_T_INT64: t->i[i] = tp->int64_data[i]; break;
        case OX_T_UINT32: case OX_T_UINT64: t->i[i] = wrap_int(dtype, (int64_t)tp->uint64_data[i]); break;
        default: t->i[i] = wrap_int(dtype, tp->int32_data[i]); break;
        }
    }
    return t;
}
