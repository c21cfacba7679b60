/* compiler/interp/interp_convert.c: convert, quantize and dequantize, the
 * IR-only ops that change a value's element type (docs/ir.md "Element
 * types").
 *
 * The interpreter holds every value as doubles whatever its dtype. A value of
 * a narrow type holds exactly the numbers that type can store: a bf16 or f16
 * value holds the f32 of its rounded elements, an i8 or u8 value the
 * integers (not scaled). These kernels are where the rounding happens, by the
 * same bit-exact conversions the weights reader uses (ir/convert.h), so the
 * compiled code must agree with them to the last bit. An f32 operand may hold
 * a double that is not an f32 (the interpreter computes in double), so every
 * kernel first rounds its operand to f32, as the compiled code's store did. */
#include "interp_internal.h"

#include <math.h>
#include <stdlib.h>

#include "ir/convert.h"

kiln_status kiln_interp_convert(const kiln_icall *c)
{
    const kiln_itensor *x = c->in[0];
    kiln_status s = kiln_icall_check_out(c, x->rank, x->dims);
    if (s != KILN_OK)
        return s;
    const kiln_dtype to = c->g->values[c->n->output].type.dtype;
    for (size_t i = 0; i < x->count; i++) {
        const float v = (float)x->data[i];
        switch (to) {
        case KILN_BF16:
            c->out->data[i] = kiln_bf16_to_f32(kiln_f32_to_bf16(v));
            break;
        case KILN_F16:
            c->out->data[i] = kiln_f16_to_f32(kiln_f32_to_f16(v));
            break;
        default: /* f32: the operand's values are already bf16, f16 or f32 numbers */
            c->out->data[i] = v;
            break;
        }
    }
    return KILN_OK;
}

/* round(v), ties to even, for a finite v (nearbyint would depend on the
 * rounding mode). */
static double round_half_even(double v)
{
    double r = floor(v), frac = v - r;
    if (frac > 0.5 || (frac == 0.5 && fmod(r, 2.0) != 0.0))
        r += 1.0;
    return r;
}

/* quantize and dequantize. Per channel (axis given), element i belongs to
 * channel (i / inner) % C, inner the product of the dims after the axis. */
kiln_status kiln_interp_quant(const kiln_icall *c)
{
    const kiln_itensor *x = c->in[0], *scale, *zp = kiln_icall_param(c, "zero_point");
    kiln_status s;
    if ((s = kiln_icall_need_param(c, "scale", &scale)) != KILN_OK ||
        (s = kiln_icall_check_out(c, x->rank, x->dims)) != KILN_OK)
        return s;
    int64_t axis = -1;
    if (kiln_node_has(c->n, KILN_ATTR_AXIS) && (s = kiln_icall_int(c, KILN_ATTR_AXIS, &axis)) != KILN_OK)
        return s;
    if (axis >= x->rank)
        return kiln_icall_fail(c, KILN_ERR_SHAPE, "axis %lld is out of range for rank %d", (long long)axis, x->rank);
    const int64_t C = axis >= 0 ? x->dims[axis] : 1;
    if ((s = kiln_icall_check_param_count(c, "scale", scale, C)) != KILN_OK ||
        (zp && (s = kiln_icall_check_param_count(c, "zero_point", zp, C)) != KILN_OK))
        return s;
    char err[256];
    if (kiln_ir_check_quant(c->g, c->n, err, sizeof err) != 0)
        return kiln_icall_fail(c, KILN_ERR_INVALID_ARGUMENT, "%s", err);
    const bool q = c->n->op == KILN_OP_QUANTIZE;
    const kiln_dtype it = c->g->values[q ? c->n->output : c->n->inputs[0]].type.dtype;
    const double lo = it == KILN_U8 ? 0.0 : -128.0, hi = it == KILN_U8 ? 255.0 : 127.0;
    const size_t inner = axis >= 0 ? kiln_idims_product(x->dims, (int)axis + 1, x->rank) : x->count;
    for (size_t i = 0; i < x->count; i++) {
        const size_t ch = axis >= 0 ? (i / inner) % (size_t)C : 0;
        const double sc = (float)scale->data[ch]; /* scales are f32 */
        const double z = zp ? zp->data[ch] : 0.0;
        if (q) {
            /* x / scale in f32 (the f32 quotient is the double one rounded
             * once more: division rounded to 53 bits then to 24 is the
             * correctly rounded f32 quotient), rounded half to even; NaN
             * quantizes to the zero point; then saturated. */
            const double v = (float)((double)(float)x->data[i] / sc);
            double r = isnan(v) ? 0.0 : isinf(v) ? v : round_half_even(v);
            r += z;
            c->out->data[i] = r < lo ? lo : r > hi ? hi : r;
        } else {
            /* (x - zero_point) is a small integer; its product with an f32
             * scale is exact in double and rounded once to f32. */
            c->out->data[i] = (float)((x->data[i] - z) * sc);
        }
    }
    return KILN_OK;
}
