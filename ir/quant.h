/* ir/quant.h: the arithmetic of int8 layers, defined once (libc only).
 *
 * The code generator quantizes weights with these functions at compile time,
 * emits the same float steps for the activations and the epilogue as LLVM
 * IR, and the reference interpreter calls them to emulate the layer; so a
 * compiled int8 layer and the interpreter compute identical bits
 * (docs/precision.md, "int8").
 *
 *   weights      s8, symmetric, one scale per output channel:
 *                sw = max|w| / 127 (1 when the channel is all zero), q = w / sw
 *                rounded to nearest even, in [-127, 127]
 *   activations  u8, asymmetric, one scale and zero point per tensor, from
 *                the calibration range widened to include 0:
 *                sa = (hi - lo) / 255, za = round(-lo / sa) in [0, 255];
 *                q = clamp(round_even(x * (1 / sa)) + za, 0, 255)
 *   sums         exact in int32: sum_k (qa - za) qw = sum_k qa qw - za colsum(qw)
 *   output       y = (float)sum * (sa * sw) + bias, a multiply then an add
 *                (never fused: an FMA would round once where this rounds twice)
 */
#ifndef KILN_IR_QUANT_H
#define KILN_IR_QUANT_H

#include <stdbool.h>
#include <stdint.h>

/* The longest reduction an int8 layer takes: 255 * 127 * K stays below 2^31. */
#define KILN_QUANT_MAX_K 65535

/* An activation's quantization: the scale and zero point the IR stores
 * (in_scale, in_zero) and the reciprocal every element is multiplied by. */
typedef struct kiln_quant_act {
    float scale, inv_scale;
    int32_t zero;
} kiln_quant_act;

/* The scale and zero point of a calibration range [lo, hi] (lo <= hi; the
 * range is first widened to include 0). A degenerate range (all zeros, or
 * so narrow that the scale would not be a normal f32) gets scale 1. */
void kiln_quant_act_from_range(double lo, double hi, float *scale, int32_t *zero);
/* The parameters as the kernels use them; false when scale is not a
 * positive normal finite f32 or zero is outside [0, 255]. */
bool kiln_quant_act_make(double scale, int64_t zero, kiln_quant_act *out);
/* x quantized: clamp(round_even(x * inv_scale) + zero, 0, 255), NaN to 0.
 * The code generator emits exactly these f32 steps (kernels/gemm.c). */
static inline uint8_t kiln_quant_act_q(const kiln_quant_act *a, float x)
{
    const float lo = (float)-a->zero, hi = (float)(255 - a->zero);
    float v = x * a->inv_scale;
    v = v > lo ? v : lo; /* NaN compares false: it becomes lo */
    v = v < hi ? v : hi;
    /* round to nearest even: |v| <= 255, so v + 1.5 * 2^23 has a unit ulp */
    v = (v + 0x1.8p23f) - 0x1.8p23f;
    return (uint8_t)((int32_t)v + a->zero);
}

/* The scale of one output channel's k weights w[0], w[stride], ...: max|w|
 * / 127, or 1 when they are all zero (or not finite). */
float kiln_quant_weight_scale(const float *w, int64_t k, int64_t stride);
/* w / sw rounded to nearest even, in [-127, 127] (NaN to 0). */
int8_t kiln_quant_weight_q(float w, float sw);
/* The output channel's multiplier sa * sw (one f32 rounding). */
float kiln_quant_out_scale(float sa, float sw);
/* The output before the fused epilogue: (float)sum * s, rounded, plus bias,
 * rounded (the kernels emit fmul then fadd). */
float kiln_quant_output(int32_t sum, float s, float bias);

#endif
