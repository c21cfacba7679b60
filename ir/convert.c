/* ir/convert.c: dtype conversions (see convert.h). Bit manipulation only, so
 * the results are the same on every machine whatever its rounding mode. */
#include "convert.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float kiln_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24, exact in f32 */
        float v = (float)man * 0x1p-24f;
        return f32_from_bits(f32_bits(v) | sign);
    }
    if (exp == 31) /* infinity or NaN, payload kept */
        return f32_from_bits(sign | 0x7f800000u | (man << 13));
    return f32_from_bits(sign | ((exp + 112u) << 23) | (man << 13));
}

float kiln_bf16_to_f32(uint16_t b)
{
    return f32_from_bits((uint32_t)b << 16);
}

uint16_t kiln_f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;
    if (x > 0x7f800000u) /* NaN: quiet, top payload bits kept */
        return (uint16_t)(sign | 0x7e00u | ((x >> 13) & 0x3ffu));
    if (x >= 0x477ff000u) /* >= 65520 rounds to infinity (and infinity itself) */
        return (uint16_t)(sign | 0x7c00u);
    if (x < 0x38800000u) {
        /* below the smallest normal f16 (2^-14): an f16 subnormal or zero,
         * round(value * 2^24) with ties to even. */
        uint32_t e = x >> 23;
        if (e == 0) /* f32 subnormals are far below 2^-25 */
            return sign;
        uint32_t man = (x & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e; /* >= 14 */
        if (shift > 24)
            return sign;
        uint32_t q = man >> shift;
        uint32_t r = man & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1u);
        if (r > half || (r == half && (q & 1u)))
            q++;
        return (uint16_t)(sign | q);
    }
    /* normal: rebias the exponent (127 -> 15) and round 13 mantissa bits away;
     * a carry into the exponent is the correct result. */
    uint32_t q = (x - 0x38000000u) >> 13;
    uint32_t r = x & 0x1fffu;
    if (r > 0x1000u || (r == 0x1000u && (q & 1u)))
        q++;
    return (uint16_t)(sign | q);
}

uint16_t kiln_f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) /* NaN: quiet, sign and top payload kept */
        return (uint16_t)((x >> 16) | 0x0040u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

#define CONVERT_LOOP(T, expr)                                 \
    do {                                                      \
        const unsigned char *p_ = (const unsigned char *)data; \
        for (size_t i_ = 0; i_ < count; i_++) {               \
            T v_;                                             \
            memcpy(&v_, p_ + i_ * sizeof(T), sizeof(T));      \
            dst[i_] = (expr);                                 \
        }                                                     \
    } while (0)

void kiln_dtype_to_f32(kiln_dtype src, const void *data, size_t count, float *dst)
{
    if (count == 0)
        return;
    switch (src) {
    case KILN_F32:
        memcpy(dst, data, count * sizeof(float));
        return;
    case KILN_F64:
        CONVERT_LOOP(double, (float)v_);
        return;
    case KILN_F16:
        CONVERT_LOOP(uint16_t, kiln_f16_to_f32(v_));
        return;
    case KILN_BF16:
        CONVERT_LOOP(uint16_t, kiln_bf16_to_f32(v_));
        return;
    case KILN_I8:
        CONVERT_LOOP(int8_t, (float)v_);
        return;
    case KILN_U8:
        CONVERT_LOOP(uint8_t, (float)v_);
        return;
    case KILN_I32:
        CONVERT_LOOP(int32_t, (float)v_);
        return;
    case KILN_DTYPE_COUNT:
        break;
    }
    for (size_t i = 0; i < count; i++)
        dst[i] = NAN;
}

void kiln_dtype_to_f64(kiln_dtype src, const void *data, size_t count, double *dst)
{
    if (count == 0)
        return;
    switch (src) {
    case KILN_F64:
        memcpy(dst, data, count * sizeof(double));
        return;
    case KILN_F32:
        CONVERT_LOOP(float, (double)v_);
        return;
    case KILN_F16:
        CONVERT_LOOP(uint16_t, (double)kiln_f16_to_f32(v_));
        return;
    case KILN_BF16:
        CONVERT_LOOP(uint16_t, (double)kiln_bf16_to_f32(v_));
        return;
    case KILN_I8:
        CONVERT_LOOP(int8_t, (double)v_);
        return;
    case KILN_U8:
        CONVERT_LOOP(uint8_t, (double)v_);
        return;
    case KILN_I32:
        CONVERT_LOOP(int32_t, (double)v_);
        return;
    case KILN_DTYPE_COUNT:
        break;
    }
    for (size_t i = 0; i < count; i++)
        dst[i] = NAN;
}

/* ---- layouts ------------------------------------------------------------ */

/* The loop bounds of a blocked type: n items of cb channel blocks of hw
 * pixels of `block` lanes, c real channels. False when t is plain or its
 * counts are invalid. */
typedef struct blocked_dims {
    size_t n, c, cb, hw, block;
} blocked_dims;

static bool layout_dims(const kiln_type *t, int64_t batch, blocked_dims *b)
{
    if (t->layout != KILN_LAYOUT_NCHWXC || kiln_type_storage_elements(t, batch) < 0 ||
        kiln_shape_elements(&t->shape, batch) < 0)
        return false;
    const int64_t *d = t->shape.dims;
    b->n = (size_t)(t->shape.batched ? batch : d[0]);
    b->c = (size_t)d[1];
    b->block = (size_t)t->block;
    b->cb = (b->c + b->block - 1) / b->block;
    b->hw = (size_t)d[2] * (size_t)d[3];
    return true;
}

static void plain_copy(const kiln_type *t, int64_t batch, const float *src, float *dst)
{
    int64_t count = t->layout == KILN_LAYOUT_PLAIN ? kiln_shape_elements(&t->shape, batch) : -1;
    if (count > 0)
        memcpy(dst, src, (size_t)count * sizeof(float));
}

void kiln_layout_to_plain(const kiln_type *t, int64_t batch, const float *blocked, float *plain)
{
    blocked_dims b;
    if (!layout_dims(t, batch, &b)) {
        plain_copy(t, batch, blocked, plain);
        return;
    }
    for (size_t n = 0; n < b.n; n++)
        for (size_t c = 0; c < b.c; c++) {
            const float *src = blocked + ((n * b.cb + c / b.block) * b.hw) * b.block + c % b.block;
            float *dst = plain + (n * b.c + c) * b.hw;
            for (size_t s = 0; s < b.hw; s++)
                dst[s] = src[s * b.block];
        }
}

void kiln_layout_from_plain(const kiln_type *t, int64_t batch, const float *plain, float *blocked)
{
    blocked_dims b;
    if (!layout_dims(t, batch, &b)) {
        plain_copy(t, batch, plain, blocked);
        return;
    }
    for (size_t n = 0; n < b.n; n++)
        for (size_t k = 0; k < b.cb; k++)
            for (size_t s = 0; s < b.hw; s++) {
                float *dst = blocked + ((n * b.cb + k) * b.hw + s) * b.block;
                for (size_t l = 0; l < b.block; l++) {
                    size_t c = k * b.block + l;
                    dst[l] = c < b.c ? plain[(n * b.c + c) * b.hw + s] : 0.0f;
                }
            }
}
