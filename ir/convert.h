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

/* Layout conversions of f32 tensor data (ir/type.h describes the blocked
 * layout). `t` is the value's type and `batch` the run-time batch (ignored
 * when the shape is unbatched). kiln_layout_to_plain gathers the logical
 * elements of a value stored in t's layout into dense C order (padding lanes
 * are skipped); kiln_layout_from_plain scatters them back and writes zeros
 * into the padding lanes. For a plain type both copy the elements. The
 * buffers hold kiln_type_storage_elements(t, batch) (the `blocked` side) and
 * kiln_shape_elements(&t->shape, batch) (the plain side) floats and must not
 * overlap. A type whose counts are invalid (-1) or a negative batch: nothing
 * is written. */
void kiln_layout_to_plain(const kiln_type *t, int64_t batch, const float *blocked, float *plain);
void kiln_layout_from_plain(const kiln_type *t, int64_t batch, const float *plain, float *blocked);

#endif
