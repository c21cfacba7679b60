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

LLVMValueRef kiln_cg_to_f32(kiln_cg *cg, const kiln_cg_vtype *vt, LLVMValueRef x)
{
    if (vt->dtype == KILN_F32)
        return x;
    LLVMTypeRef t = LLVMTypeOf(x);
    LLVMTypeRef f = LLVMGetTypeKind(t) == LLVMVectorTypeKind ? LLVMVectorType(cg->u->t_f32, LLVMGetVectorSize(t))
                                                              : cg->u->t_f32;
    if (vt->is_float)
        return vt->bytes < 4 ? LLVMBuildFPExt(cg->u->b, x, f, "") : LLVMBuildFPTrunc(cg->u->b, x, f, "");
    return vt->is_signed ? LLVMBuildSIToFP(cg->u->b, x, f, "") : LLVMBuildUIToFP(cg->u->b, x, f, "");
}

LLVMValueRef kiln_cg_from_f32(kiln_cg *cg, const kiln_cg_vtype *vt, LLVMValueRef x)
{
    if (vt->dtype == KILN_F32)
        return x;
    LLVMTypeRef t = LLVMTypeOf(x);
    LLVMTypeRef e = LLVMGetTypeKind(t) == LLVMVectorTypeKind ? LLVMVectorType(vt->elem, LLVMGetVectorSize(t))
                                                              : vt->elem;
    if (vt->is_float) /* round to nearest even */
        return vt->bytes < 4 ? LLVMBuildFPTrunc(cg->u->b, x, e, "") : LLVMBuildFPExt(cg->u->b, x, e, "");
    /* integers: round half to even, saturate to the type's range */
    double lo = vt->dtype == KILN_I8 ? -128.0 : vt->dtype == KILN_U8 ? 0.0 : -2147483648.0;
    double hi = vt->dtype == KILN_I8 ? 127.0 : vt->dtype == KILN_U8 ? 255.0 : 2147483520.0;
    LLVMTypeRef types[1] = {t};
    LLVMValueRef r = kiln_cg_intrinsic(cg, "llvm.roundeven", types, 1, &x, 1);
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
