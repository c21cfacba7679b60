/* ir/convert.h: element conversions between the storage dtypes of tensor data
 * (weights read from files, folded constants) and f32/f64. libc only.
 *
 * Source data may be unaligned (safetensors does not align tensors): every
 * element is read with memcpy. Data is little-endian, as in safetensors files
 * and on every target kiln builds for. */
#ifndef KILN_IR_CONVERT_H
#define KILN_IR_CONVERT_H

#include <stddef.h>
#include <stdint.h>

#include "type.h"

/* Scalar conversions. The widening ones are exact: f16 subnormals, infinities
 * and NaNs (sign and payload kept) map to the same f32 value. */
float kiln_f16_to_f32(uint16_t h);
float kiln_bf16_to_f32(uint16_t b);
/* Narrowing: round to nearest, ties to even. Values too large for f16 become
 * infinity, values too small become (signed) zero or an f16 subnormal. NaN stays
 * NaN (quiet, sign and top payload bits kept). */
uint16_t kiln_f32_to_f16(float f);
uint16_t kiln_f32_to_bf16(float f);

/* Bulk conversion of `count` elements of dtype `src` at `data` into dst.
 * F32, F64, F16 and BF16 are converted as floats (F64 -> f32 rounds to nearest;
 * out of range becomes infinity). I8, U8 and I32 are converted as plain
 * integers (no quantization scale applied). Any other value of `src` fills dst
 * with NaN. data and dst must not overlap; count 0 does nothing. */
void kiln_dtype_to_f32(kiln_dtype src, const void *data, size_t count, float *dst);
void kiln_dtype_to_f64(kiln_dtype src, const void *data, size_t count, double *dst);

#endif
