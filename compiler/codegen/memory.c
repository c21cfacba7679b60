/* compiler/codegen/memory.c: element types and memory access. Every load
 * and store a kernel emits goes through here, typed by a kiln_cg_vtype (the
 * dtype's LLVM element type, its size and alignment, the vector of vl lanes
 * of it). The f32 entry points (kiln_cg_vload, ...) are the typed ones with
 * the f32 vector type; a kernel of another dtype asks kiln_cg_vtype_of. */
#include "cg.h"

#include <string.h>

void kiln_cg_vtypes_init(kiln_cg *cg, LLVMContextRef ctx, kiln_cg_vtype *vt)
{
    for (int d = 0; d < KILN_DTYPE_COUNT; d++) {
        LLVMTypeRef elem;
        bool is_float = true;
        switch ((kiln_dtype)d) {
        case KILN_F32:
            elem = LLVMFloatTypeInContext(ctx);
            break;
        case KILN_BF16:
            elem = LLVMBFloatTypeInContext(ctx);
            break;
        case KILN_F16:
            elem = LLVMHalfTypeInContext(ctx);
            break;
        case KILN_F64:
            elem = LLVMDoubleTypeInContext(ctx);
            break;
        case KILN_I8:
        case KILN_U8:
            elem = LLVMInt8TypeInContext(ctx);
            is_float = false;
            break;
        default: /* KILN_I32 */
            elem = LLVMInt32TypeInContext(ctx);
            is_float = false;
            break;
        }
        vt[d] = (kiln_cg_vtype){
            .dtype = (kiln_dtype)d,
            .elem = elem,
            .vec = LLVMVectorType(elem, (unsigned)cg->vl),
            .lanes = cg->vl,
            .bytes = (int)kiln_dtype_size((kiln_dtype)d),
            .is_float = is_float,
            .is_signed = d != KILN_U8,
        };
    }
}

const kiln_cg_vtype *kiln_cg_vtype_of(const kiln_cg *cg, kiln_dtype dt)
{
    return &cg->u->vt[(unsigned)dt < KILN_DTYPE_COUNT ? dt : KILN_F32];
}

LLVMValueRef kiln_cg_const_t(kiln_cg *cg, const kiln_cg_vtype *vt, double v, bool vector)
{
    LLVMValueRef c = vt->is_float ? LLVMConstReal(vt->elem, v)
                                  : LLVMConstInt(vt->elem, (unsigned long long)(long long)v, vt->is_signed);
    if (!vector)
        return c;
    LLVMValueRef lanes[64];
    for (int i = 0; i < vt->lanes; i++)
        lanes[i] = c;
    (void)cg;
    return LLVMConstVector(lanes, (unsigned)vt->lanes);
}

/* ---- typed access ------------------------------------------------------------ */

LLVMValueRef kiln_cg_gep_t(kiln_cg *cg, const kiln_cg_vtype *vt, LLVMValueRef base, LLVMValueRef index)
{
    return LLVMBuildGEP2(cg->u->b, vt->elem, base, &index, 1, "");
}

LLVMValueRef kiln_cg_load_t(kiln_cg *cg, const kiln_cg_vtype *vt, LLVMValueRef base, LLVMValueRef index)
{
    LLVMValueRef v = LLVMBuildLoad2(cg->u->b, vt->elem, kiln_cg_gep_t(cg, vt, base, index), "");
    LLVMSetAlignment(v, (unsigned)vt->bytes);
    return v;
}

void kiln_cg_store_t(kiln_cg *cg, const kiln_cg_vtype *vt, LLVMValueRef v, LLVMValueRef base, LLVMValueRef index)
{
    LLVMValueRef s = LLVMBuildStore(cg->u->b, v, kiln_cg_gep_t(cg, vt, base, index));
    LLVMSetAlignment(s, (unsigned)vt->bytes);
}

LLVMValueRef kiln_cg_vload_t(kiln_cg *cg, const kiln_cg_vtype *vt, LLVMValueRef base, LLVMValueRef index,
                             LLVMValueRef mask, double passthru)
{
    LLVMValueRef p = kiln_cg_gep_t(cg, vt, base, index);
    if (!mask) {
        LLVMValueRef v = LLVMBuildLoad2(cg->u->b, vt->vec, p, "");
        LLVMSetAlignment(v, (unsigned)vt->bytes);
        return v;
    }
    LLVMTypeRef types[2] = {vt->vec, cg->u->t_ptr};
    LLVMValueRef args[4] = {p, kiln_cg_i32(cg, vt->bytes), mask, kiln_cg_const_t(cg, vt, passthru, true)};
    return kiln_cg_intrinsic(cg, "llvm.masked.load", types, 2, args, 4);
}

void kiln_cg_vstore_t(kiln_cg *cg, const kiln_cg_vtype *vt, LLVMValueRef v, LLVMValueRef base, LLVMValueRef index,
                      LLVMValueRef mask)
{
    LLVMValueRef p = kiln_cg_gep_t(cg, vt, base, index);
    if (!mask) {
        LLVMValueRef s = LLVMBuildStore(cg->u->b, v, p);
        LLVMSetAlignment(s, (unsigned)vt->bytes);
        return;
    }
    LLVMTypeRef types[2] = {vt->vec, cg->u->t_ptr};
    LLVMValueRef args[4] = {v, p, kiln_cg_i32(cg, vt->bytes), mask};
    kiln_cg_intrinsic(cg, "llvm.masked.store", types, 2, args, 4);
}

LLVMValueRef kiln_cg_gather_t(kiln_cg *cg, const kiln_cg_vtype *vt, LLVMValueRef base, LLVMValueRef idx,
                              LLVMValueRef mask, double passthru)
{
    LLVMValueRef ptrs = LLVMBuildGEP2(cg->u->b, vt->elem, base, &idx, 1, "ptrs");
    LLVMTypeRef types[2] = {vt->vec, LLVMVectorType(cg->u->t_ptr, (unsigned)vt->lanes)};
    if (!mask) {
        LLVMValueRef ones[64];
        for (int i = 0; i < vt->lanes; i++)
            ones[i] = LLVMConstInt(cg->u->t_i1, 1, 0);
        mask = LLVMConstVector(ones, (unsigned)vt->lanes);
    }
    LLVMValueRef args[4] = {ptrs, kiln_cg_i32(cg, vt->bytes), mask, kiln_cg_const_t(cg, vt, passthru, true)};
    return kiln_cg_intrinsic(cg, "llvm.masked.gather", types, 2, args, 4);
}

/* ---- conversions ---------------------------------------------------------------- */

/* The conversions between f32 and the narrow float types are written with
 * integer operations on the bits, as ir/convert.c does them, except for f16
 * where the target has conversion instructions (F16C, AArch64): LLVM lowers
 * fpext/fptrunc of bfloat and half to library calls elsewhere
 * (__truncsfbf2, __extendhfsf2), which a JIT-compiled or freestanding
 * object may not find, and AVX512-BF16's vcvtneps2bf16 flushes subnormals.
 * Every path rounds to nearest even and keeps NaN a NaN. */

/* An i32 constant shaped like x (an i32 scalar or vector). */
static LLVMValueRef i32_like(kiln_cg *cg, LLVMValueRef x, uint32_t v)
{
    LLVMValueRef c = LLVMConstInt(cg->u->t_i32, v, 0);
    LLVMTypeRef t = LLVMTypeOf(x);
    if (LLVMGetTypeKind(t) != LLVMVectorTypeKind)
        return c;
    LLVMValueRef lanes[64];
    unsigned n = LLVMGetVectorSize(t);
    for (unsigned i = 0; i < n; i++)
        lanes[i] = c;
    return LLVMConstVector(lanes, n);
}

/* The type t (a scalar or vector type) with element type elem. */
static LLVMTypeRef with_elem(LLVMTypeRef t, LLVMTypeRef elem)
{
    return LLVMGetTypeKind(t) == LLVMVectorTypeKind ? LLVMVectorType(elem, LLVMGetVectorSize(t)) : elem;
}

static bool has_f16_instructions(const kiln_cg *cg)
{
    return cg->target && (kiln_target_list_has(cg->target->features, "f16c") || strcmp(cg->target->name, "neon") == 0);
}

/* bf16 or f16 bits (i16, widened to i32) to the f32 with the same value. */
static LLVMValueRef narrow_bits_to_f32(kiln_cg *cg, kiln_dtype dt, LLVMValueRef h)
{
    LLVMBuilderRef b = cg->u->b;
    LLVMTypeRef tf = with_elem(LLVMTypeOf(h), cg->u->t_f32);
    if (dt == KILN_BF16)
        return LLVMBuildBitCast(b, LLVMBuildShl(b, h, i32_like(cg, h, 16), ""), tf, "");
    LLVMValueRef sign = LLVMBuildShl(b, LLVMBuildAnd(b, h, i32_like(cg, h, 0x8000), ""), i32_like(cg, h, 16), "");
    LLVMValueRef exp = LLVMBuildAnd(b, LLVMBuildLShr(b, h, i32_like(cg, h, 10), ""), i32_like(cg, h, 0x1f), "");
    LLVMValueRef man = LLVMBuildAnd(b, h, i32_like(cg, h, 0x3ff), "");
    LLVMValueRef man23 = LLVMBuildShl(b, man, i32_like(cg, h, 13), "");
    /* normal: rebias the exponent (15 -> 127) */
    LLVMValueRef normal = LLVMBuildOr(
        b, LLVMBuildShl(b, LLVMBuildAdd(b, exp, i32_like(cg, h, 112), ""), i32_like(cg, h, 23), ""), man23, "");
    /* infinity, NaN: the payload kept */
    LLVMValueRef special = LLVMBuildOr(b, man23, i32_like(cg, h, 0x7f800000), "");
    /* zero, subnormal: man * 2^-24, exact in f32 */
    LLVMValueRef mf = LLVMBuildUIToFP(b, man, tf, "");
    LLVMValueRef sub = LLVMBuildFMul(b, mf, kiln_cg_fconst(cg, mf, 0x1p-24), "");
    sub = LLVMBuildBitCast(b, sub, LLVMTypeOf(h), "");
    LLVMValueRef r = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntEQ, exp, i32_like(cg, h, 31), ""), special, normal, "");
    r = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntEQ, exp, i32_like(cg, h, 0), ""), sub, r, "");
    return LLVMBuildBitCast(b, LLVMBuildOr(b, r, sign, ""), tf, "");
}

/* f32 to bf16 or f16 bits (in i32 lanes), rounded to nearest even. */
static LLVMValueRef f32_to_narrow_bits(kiln_cg *cg, kiln_dtype dt, LLVMValueRef x)
{
    LLVMBuilderRef b = cg->u->b;
    LLVMTypeRef ti = with_elem(LLVMTypeOf(x), cg->u->t_i32);
    LLVMValueRef u = LLVMBuildBitCast(b, x, ti, "");
    LLVMValueRef a = LLVMBuildAnd(b, u, i32_like(cg, u, 0x7fffffff), "");
    LLVMValueRef nan = LLVMBuildICmp(b, LLVMIntUGT, a, i32_like(cg, u, 0x7f800000), "");
    if (dt == KILN_BF16) {
        /* NaN: quiet, sign and top payload kept; else add half an ulp minus
         * one, plus the kept lsb (ties to even), and keep the top half */
        LLVMValueRef hi = LLVMBuildLShr(b, u, i32_like(cg, u, 16), "");
        LLVMValueRef qnan = LLVMBuildOr(b, hi, i32_like(cg, u, 0x40), "");
        LLVMValueRef bias = LLVMBuildAdd(b, i32_like(cg, u, 0x7fff), LLVMBuildAnd(b, hi, i32_like(cg, u, 1), ""), "");
        LLVMValueRef r = LLVMBuildLShr(b, LLVMBuildAdd(b, u, bias, ""), i32_like(cg, u, 16), "");
        return LLVMBuildSelect(b, nan, qnan, r, "");
    }
    LLVMValueRef sign = LLVMBuildAnd(b, LLVMBuildLShr(b, u, i32_like(cg, u, 16), ""), i32_like(cg, u, 0x8000), "");
    LLVMValueRef qnan = LLVMBuildOr(
        b, i32_like(cg, u, 0x7e00), LLVMBuildAnd(b, LLVMBuildLShr(b, a, i32_like(cg, u, 13), ""), i32_like(cg, u, 0x3ff), ""),
        "");
    /* >= 65520 rounds to infinity */
    LLVMValueRef inf = LLVMBuildICmp(b, LLVMIntUGE, a, i32_like(cg, u, 0x477ff000), "");
    /* normal: rebias (127 -> 15) and round 13 bits away; a carry into the
     * exponent is the right result */
    LLVMValueRef bias = LLVMBuildAdd(
        b, i32_like(cg, u, 0xfff), LLVMBuildAnd(b, LLVMBuildLShr(b, a, i32_like(cg, u, 13), ""), i32_like(cg, u, 1), ""), "");
    LLVMValueRef normal = LLVMBuildLShr(b, LLVMBuildAdd(b, LLVMBuildSub(b, a, i32_like(cg, u, 0x38000000), ""), bias, ""),
                                        i32_like(cg, u, 13), "");
    /* below 2^-14: |x| + 0.5 rounds |x| to a multiple of 2^-24 (the f16
     * subnormal step) with ties to even; its low bits count the steps */
    LLVMValueRef ax = LLVMBuildBitCast(b, a, LLVMTypeOf(x), "");
    LLVMValueRef sum = LLVMBuildFAdd(b, ax, kiln_cg_fconst(cg, ax, 0.5), "");
    LLVMValueRef sub = LLVMBuildSub(b, LLVMBuildBitCast(b, sum, ti, ""), i32_like(cg, u, 0x3f000000), "");
    LLVMValueRef r = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntULT, a, i32_like(cg, u, 0x38800000), ""), sub, normal, "");
    r = LLVMBuildSelect(b, inf, i32_like(cg, u, 0x7c00), r, "");
    r = LLVMBuildSelect(b, nan, qnan, r, "");
    return LLVMBuildOr(b, r, sign, "");
}

LLVMValueRef kiln_cg_to_f32(kiln_cg *cg, const kiln_cg_vtype *vt, LLVMValueRef x)
{
    if (vt->dtype == KILN_F32)
        return x;
    LLVMTypeRef t = LLVMTypeOf(x);
    LLVMTypeRef f = with_elem(t, cg->u->t_f32);
    if (vt->dtype == KILN_F64)
        return LLVMBuildFPTrunc(cg->u->b, x, f, "");
    if (vt->dtype == KILN_F16 && has_f16_instructions(cg))
        return LLVMBuildFPExt(cg->u->b, x, f, "");
    if (vt->dtype == KILN_BF16 || vt->dtype == KILN_F16) {
        LLVMValueRef h = LLVMBuildBitCast(cg->u->b, x, with_elem(t, LLVMInt16TypeInContext(cg->u->ctx)), "");
        return narrow_bits_to_f32(cg, vt->dtype, LLVMBuildZExt(cg->u->b, h, with_elem(t, cg->u->t_i32), ""));
    }
    return vt->is_signed ? LLVMBuildSIToFP(cg->u->b, x, f, "") : LLVMBuildUIToFP(cg->u->b, x, f, "");
}

LLVMValueRef kiln_cg_from_f32(kiln_cg *cg, const kiln_cg_vtype *vt, LLVMValueRef x)
{
    if (vt->dtype == KILN_F32)
        return x;
    LLVMTypeRef t = LLVMTypeOf(x);
    LLVMTypeRef e = with_elem(t, vt->elem);
    if (vt->dtype == KILN_F64)
        return LLVMBuildFPExt(cg->u->b, x, e, "");
    if (vt->dtype == KILN_F16 && has_f16_instructions(cg))
        return LLVMBuildFPTrunc(cg->u->b, x, e, ""); /* round to nearest even */
    if (vt->dtype == KILN_BF16 || vt->dtype == KILN_F16) {
        LLVMValueRef bits = f32_to_narrow_bits(cg, vt->dtype, x);
        bits = LLVMBuildTrunc(cg->u->b, bits, with_elem(t, LLVMInt16TypeInContext(cg->u->ctx)), "");
        return LLVMBuildBitCast(cg->u->b, bits, e, "");
    }
    /* integers: NaN becomes 0, then round half to even, saturate to the
     * type's range (fptosi of NaN or of a value out of range is poison) */
    double lo = vt->dtype == KILN_I8 ? -128.0 : vt->dtype == KILN_U8 ? 0.0 : -2147483648.0;
    double hi = vt->dtype == KILN_I8 ? 127.0 : vt->dtype == KILN_U8 ? 255.0 : 2147483520.0;
    LLVMTypeRef types[1] = {t};
    LLVMValueRef r = LLVMBuildSelect(cg->u->b, kiln_cg_is_nan(cg, x), kiln_cg_fconst(cg, x, 0.0), x, "");
    r = kiln_cg_intrinsic(cg, "llvm.roundeven", types, 1, &r, 1);
    r = kiln_cg_fmax_nan(cg, r, kiln_cg_fconst(cg, r, lo));
    r = kiln_cg_fmin_nan(cg, r, kiln_cg_fconst(cg, r, hi));
    return vt->is_signed ? LLVMBuildFPToSI(cg->u->b, r, e, "") : LLVMBuildFPToUI(cg->u->b, r, e, "");
}

/* ---- f32 ------------------------------------------------------------------------- */

LLVMValueRef kiln_cg_gep(kiln_cg *cg, LLVMValueRef base, LLVMValueRef index)
{
    return kiln_cg_gep_t(cg, &cg->u->vt[KILN_F32], base, index);
}

LLVMValueRef kiln_cg_load(kiln_cg *cg, LLVMValueRef base, LLVMValueRef index)
{
    return kiln_cg_load_t(cg, &cg->u->vt[KILN_F32], base, index);
}

void kiln_cg_store(kiln_cg *cg, LLVMValueRef v, LLVMValueRef base, LLVMValueRef index)
{
    kiln_cg_store_t(cg, &cg->u->vt[KILN_F32], v, base, index);
}

LLVMValueRef kiln_cg_vload(kiln_cg *cg, LLVMValueRef base, LLVMValueRef index, LLVMValueRef mask, double passthru)
{
    return kiln_cg_vload_t(cg, &cg->u->vt[KILN_F32], base, index, mask, passthru);
}

void kiln_cg_vstore(kiln_cg *cg, LLVMValueRef v, LLVMValueRef base, LLVMValueRef index, LLVMValueRef mask)
{
    kiln_cg_vstore_t(cg, &cg->u->vt[KILN_F32], v, base, index, mask);
}

LLVMValueRef kiln_cg_gather(kiln_cg *cg, LLVMValueRef base, LLVMValueRef idx, LLVMValueRef mask, double passthru)
{
    return kiln_cg_gather_t(cg, &cg->u->vt[KILN_F32], base, idx, mask, passthru);
}
