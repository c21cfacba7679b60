/* compiler/codegen/builder.c: the helpers every kernel emitter builds its
 * IR with: errors (kiln_cg_fail), constants and splats, intrinsics, NaN-
 * propagating min/max, reductions, integer helpers, masks, loops and
 * conditionals, the vector loop with a masked tail. They depend on the
 * current unit's types and function state only, never on a module's
 * layout, so every file of the code generator may use them. */
#include "cg.h"

#include <llvm-c/DebugInfo.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

kiln_status kiln_cg_fail(kiln_cg *cg, kiln_status st, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (cg->f.node)
        kiln_diag_error(cg->d, cg->f.node->loc, "layer '%s' (%s): %s", cg->f.node->layer ? cg->f.node->layer : "?",
                        kiln_op_name(cg->f.node->op), msg);
    else
        kiln_diag_error(cg->d, (kiln_loc){0}, "code generation: %s", msg);
    if (cg->status == KILN_OK)
        cg->status = st;
    return st;
}

/* ---- constants ------------------------------------------------------------ */

LLVMValueRef kiln_cg_i64(kiln_cg *cg, int64_t v) { return LLVMConstInt(cg->u->t_i64, (unsigned long long)v, 1); }
LLVMValueRef kiln_cg_imul(kiln_cg *cg, LLVMValueRef a, int64_t b)
{
    return b == 1 ? a : LLVMBuildMul(cg->u->b, a, kiln_cg_i64(cg, b), "");
}
LLVMValueRef kiln_cg_iadd(kiln_cg *cg, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildAdd(cg->u->b, a, b, ""); }
LLVMValueRef kiln_cg_i32(kiln_cg *cg, int32_t v) { return LLVMConstInt(cg->u->t_i32, (unsigned long long)(int64_t)v, 1); }
LLVMValueRef kiln_cg_f32(kiln_cg *cg, double v) { return LLVMConstReal(cg->u->t_f32, v); }

static unsigned lanes_of(LLVMValueRef like)
{
    LLVMTypeRef t = LLVMTypeOf(like);
    return LLVMGetTypeKind(t) == LLVMVectorTypeKind ? LLVMGetVectorSize(t) : 0;
}

static LLVMValueRef const_splat(LLVMValueRef c, unsigned n)
{
    LLVMValueRef lanes[64];
    for (unsigned i = 0; i < n; i++)
        lanes[i] = c;
    return LLVMConstVector(lanes, n);
}

LLVMValueRef kiln_cg_fconst(kiln_cg *cg, LLVMValueRef like, double v)
{
    unsigned n = lanes_of(like);
    LLVMValueRef c = LLVMConstReal(cg->u->t_f32, v);
    return n ? const_splat(c, n) : c;
}

LLVMTypeRef kiln_cg_int_type_like(kiln_cg *cg, LLVMValueRef like)
{
    unsigned n = lanes_of(like);
    return n ? LLVMVectorType(cg->u->t_i32, n) : cg->u->t_i32;
}

LLVMValueRef kiln_cg_iconst_like(kiln_cg *cg, LLVMValueRef like, int64_t v)
{
    unsigned n = lanes_of(like);
    LLVMValueRef c = LLVMConstInt(cg->u->t_i32, (unsigned long long)v, 1);
    return n ? const_splat(c, n) : c;
}

LLVMValueRef kiln_cg_splat(kiln_cg *cg, LLVMValueRef scalar)
{
    if (LLVMIsConstant(scalar))
        return const_splat(scalar, (unsigned)cg->vl);
    LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(scalar), (unsigned)cg->vl);
    LLVMValueRef v = LLVMBuildInsertElement(cg->u->b, LLVMGetPoison(vt), scalar, kiln_cg_i32(cg, 0), "");
    LLVMValueRef zero = LLVMConstNull(cg->u->t_vi32);
    return LLVMBuildShuffleVector(cg->u->b, v, LLVMGetPoison(vt), zero, "splat");
}

LLVMValueRef kiln_cg_iota64(kiln_cg *cg)
{
    LLVMValueRef lanes[64];
    for (int i = 0; i < cg->vl; i++)
        lanes[i] = kiln_cg_i64(cg, i);
    return LLVMConstVector(lanes, (unsigned)cg->vl);
}

/* ---- arithmetic ------------------------------------------------------------ */

LLVMValueRef kiln_cg_intrinsic(kiln_cg *cg, const char *name, LLVMTypeRef *types, unsigned n_types,
                               LLVMValueRef *args, unsigned n_args)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    if (id == 0) {
        kiln_cg_fail(cg, KILN_ERR_INTERNAL, "LLVM has no intrinsic %s", name);
        return LLVMGetPoison(n_types ? types[0] : cg->u->t_f32);
    }
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(cg->u->mod, id, types, n_types);
    LLVMTypeRef ft = LLVMIntrinsicGetType(cg->u->ctx, id, types, n_types);
    return LLVMBuildCall2(cg->u->b, ft, fn, args, n_args, "");
}

static LLVMValueRef unary_intrinsic(kiln_cg *cg, const char *name, LLVMValueRef x)
{
    LLVMTypeRef t = LLVMTypeOf(x);
    return kiln_cg_intrinsic(cg, name, &t, 1, &x, 1);
}

LLVMValueRef kiln_cg_fma(kiln_cg *cg, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c)
{
    /* fmuladd: fused where the target has FMA, never a libm call. */
    LLVMTypeRef t = LLVMTypeOf(a);
    LLVMValueRef args[3] = {a, b, c};
    return kiln_cg_intrinsic(cg, "llvm.fmuladd", &t, 1, args, 3);
}

void kiln_cg_prefetch_write(kiln_cg *cg, LLVMValueRef ptr)
{
    /* llvm.prefetch(ptr, rw = write, locality = keep in all levels, data) */
    LLVMTypeRef t = cg->u->t_ptr;
    LLVMValueRef args[4] = {ptr, LLVMConstInt(cg->u->t_i32, 1, 0), LLVMConstInt(cg->u->t_i32, 3, 0),
                            LLVMConstInt(cg->u->t_i32, 1, 0)};
    kiln_cg_intrinsic(cg, "llvm.prefetch", &t, 1, args, 4);
}

LLVMValueRef kiln_cg_fabs(kiln_cg *cg, LLVMValueRef x) { return unary_intrinsic(cg, "llvm.fabs", x); }
LLVMValueRef kiln_cg_sqrt(kiln_cg *cg, LLVMValueRef x) { return unary_intrinsic(cg, "llvm.sqrt", x); }

LLVMValueRef kiln_cg_copysign(kiln_cg *cg, LLVMValueRef mag, LLVMValueRef sign)
{
    LLVMTypeRef t = LLVMTypeOf(mag);
    LLVMValueRef args[2] = {mag, sign};
    return kiln_cg_intrinsic(cg, "llvm.copysign", &t, 1, args, 2);
}

LLVMValueRef kiln_cg_is_nan(kiln_cg *cg, LLVMValueRef x) { return LLVMBuildFCmp(cg->u->b, LLVMRealUNO, x, x, "isnan"); }

LLVMValueRef kiln_cg_fmax_nan(kiln_cg *cg, LLVMValueRef a, LLVMValueRef b)
{
    LLVMValueRef r = LLVMBuildSelect(cg->u->b, LLVMBuildFCmp(cg->u->b, LLVMRealOGT, a, b, ""), a, b, "");
    return LLVMBuildSelect(cg->u->b, LLVMBuildFCmp(cg->u->b, LLVMRealUNO, a, b, ""), LLVMBuildFAdd(cg->u->b, a, b, ""), r,
                           "max");
}

LLVMValueRef kiln_cg_fmin_nan(kiln_cg *cg, LLVMValueRef a, LLVMValueRef b)
{
    LLVMValueRef r = LLVMBuildSelect(cg->u->b, LLVMBuildFCmp(cg->u->b, LLVMRealOLT, a, b, ""), a, b, "");
    return LLVMBuildSelect(cg->u->b, LLVMBuildFCmp(cg->u->b, LLVMRealUNO, a, b, ""), LLVMBuildFAdd(cg->u->b, a, b, ""), r,
                           "min");
}

LLVMValueRef kiln_cg_clamp(kiln_cg *cg, LLVMValueRef x, double lo, double hi)
{
    LLVMValueRef l = kiln_cg_fconst(cg, x, lo), h = kiln_cg_fconst(cg, x, hi);
    x = LLVMBuildSelect(cg->u->b, LLVMBuildFCmp(cg->u->b, LLVMRealOLT, x, l, ""), l, x, "");
    return LLVMBuildSelect(cg->u->b, LLVMBuildFCmp(cg->u->b, LLVMRealOGT, x, h, ""), h, x, "clamp");
}

static LLVMValueRef half_shuffle(kiln_cg *cg, LLVMValueRef v, unsigned width, unsigned from)
{
    LLVMValueRef idx[64];
    for (unsigned i = 0; i < width; i++)
        idx[i] = kiln_cg_i32(cg, (int32_t)(from + i));
    return LLVMBuildShuffleVector(cg->u->b, v, LLVMGetPoison(LLVMTypeOf(v)), LLVMConstVector(idx, width), "");
}

static LLVMValueRef reduce(kiln_cg *cg, LLVMValueRef v, bool max)
{
    unsigned w = lanes_of(v);
    while (w > 1) {
        unsigned h = w / 2;
        LLVMValueRef lo = half_shuffle(cg, v, h, 0), hi = half_shuffle(cg, v, h, h);
        v = max ? LLVMBuildSelect(cg->u->b, LLVMBuildFCmp(cg->u->b, LLVMRealOGT, hi, lo, ""), hi, lo, "")
                : LLVMBuildFAdd(cg->u->b, lo, hi, "");
        w = h;
    }
    return LLVMBuildExtractElement(cg->u->b, v, kiln_cg_i32(cg, 0), max ? "hmax" : "hsum");
}

LLVMValueRef kiln_cg_reduce_add(kiln_cg *cg, LLVMValueRef v) { return reduce(cg, v, false); }
LLVMValueRef kiln_cg_reduce_max(kiln_cg *cg, LLVMValueRef v) { return reduce(cg, v, true); }

LLVMValueRef kiln_cg_smin(kiln_cg *cg, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildSelect(cg->u->b, LLVMBuildICmp(cg->u->b, LLVMIntSLT, a, b, ""), a, b, "");
}

LLVMValueRef kiln_cg_smax(kiln_cg *cg, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildSelect(cg->u->b, LLVMBuildICmp(cg->u->b, LLVMIntSGT, a, b, ""), a, b, "");
}

LLVMValueRef kiln_cg_udiv(kiln_cg *cg, LLVMValueRef a, int64_t b)
{
    return b == 1 ? a : LLVMBuildUDiv(cg->u->b, a, kiln_cg_i64(cg, b), "");
}

LLVMValueRef kiln_cg_urem(kiln_cg *cg, LLVMValueRef a, int64_t b)
{
    return b == 1 ? kiln_cg_i64(cg, 0) : LLVMBuildURem(cg->u->b, a, kiln_cg_i64(cg, b), "");
}

/* ---- memory (typed access: memory.c) ---------------------------------------- */

LLVMValueRef kiln_cg_tail_mask(kiln_cg *cg, LLVMValueRef n)
{
    return LLVMBuildICmp(cg->u->b, LLVMIntSLT, kiln_cg_iota64(cg), kiln_cg_splat(cg, n), "tail");
}

LLVMValueRef kiln_cg_mask_and(kiln_cg *cg, LLVMValueRef a, LLVMValueRef b)
{
    if (!a)
        return b;
    if (!b)
        return a;
    return LLVMBuildAnd(cg->u->b, a, b, "");
}

void kiln_cg_memcpy(kiln_cg *cg, LLVMValueRef dst, LLVMValueRef src, LLVMValueRef n_bytes, unsigned align)
{
    LLVMBuildMemCpy(cg->u->b, dst, align, src, align, n_bytes);
}

LLVMValueRef kiln_cg_alloca(kiln_cg *cg, LLVMTypeRef t, const char *name)
{
    LLVMBuilderRef b = LLVMCreateBuilderInContext(cg->u->ctx);
    LLVMBasicBlockRef entry = LLVMGetEntryBasicBlock(cg->f.fn);
    LLVMValueRef first = LLVMGetFirstInstruction(entry);
    if (first)
        LLVMPositionBuilderBefore(b, first);
    else
        LLVMPositionBuilderAtEnd(b, entry);
    LLVMValueRef a = LLVMBuildAlloca(b, t, name);
    LLVMDisposeBuilder(b);
    return a;
}

/* ---- control flow ------------------------------------------------------------ */

LLVMValueRef kiln_cg_for_begin(kiln_cg *cg, kiln_cg_loop *l, LLVMValueRef start, LLVMValueRef end, LLVMValueRef step)
{
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(cg->u->b);
    l->header = LLVMAppendBasicBlockInContext(cg->u->ctx, cg->f.fn, "loop");
    l->body = LLVMAppendBasicBlockInContext(cg->u->ctx, cg->f.fn, "body");
    l->exit = LLVMAppendBasicBlockInContext(cg->u->ctx, cg->f.fn, "done");
    l->step = step;
    LLVMBuildBr(cg->u->b, l->header);
    LLVMPositionBuilderAtEnd(cg->u->b, l->header);
    l->phi = LLVMBuildPhi(cg->u->b, cg->u->t_i64, "i");
    LLVMAddIncoming(l->phi, &start, &pre, 1);
    LLVMBuildCondBr(cg->u->b, LLVMBuildICmp(cg->u->b, LLVMIntSLT, l->phi, end, ""), l->body, l->exit);
    LLVMPositionBuilderAtEnd(cg->u->b, l->body);
    l->i = l->phi;
    l->runtime_unroll = false;
    l->unroll_count = 0;
    return l->phi;
}

/* The loop's id with "llvm.loop.unroll.runtime.disable": a node whose first
 * operand is itself (LLVM's loop metadata); made self-referential by
 * replacing a temporary node, which also makes it distinct. */
/* The loop's metadata: no runtime unrolling (unless asked for), and an
 * unroll count when one is set. */
static LLVMValueRef loop_metadata(kiln_cg *cg, const kiln_cg_loop *l)
{
    LLVMMetadataRef ops[3];
    unsigned n = 1;
    if (!l->runtime_unroll) {
        static const char key[] = "llvm.loop.unroll.runtime.disable";
        LLVMMetadataRef opt = LLVMMDStringInContext2(cg->u->ctx, key, sizeof key - 1);
        ops[n++] = LLVMMDNodeInContext2(cg->u->ctx, &opt, 1);
    }
    if (l->unroll_count > 0) {
        static const char key[] = "llvm.loop.unroll.count";
        LLVMMetadataRef pair[2] = {LLVMMDStringInContext2(cg->u->ctx, key, sizeof key - 1),
                                   LLVMValueAsMetadata(LLVMConstInt(cg->u->t_i32, (unsigned)l->unroll_count, 0))};
        ops[n++] = LLVMMDNodeInContext2(cg->u->ctx, pair, 2);
    }
    LLVMMetadataRef tmp = LLVMTemporaryMDNode(cg->u->ctx, NULL, 0);
    ops[0] = tmp;
    LLVMMetadataRef id = LLVMMDNodeInContext2(cg->u->ctx, ops, n);
    LLVMMetadataReplaceAllUsesWith(tmp, id); /* frees tmp */
    return LLVMMetadataAsValue(cg->u->ctx, id);
}

void kiln_cg_for_end(kiln_cg *cg, kiln_cg_loop *l)
{
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(cg->u->b);
    LLVMValueRef next = LLVMBuildAdd(cg->u->b, l->phi, l->step, "next");
    LLVMValueRef br = LLVMBuildBr(cg->u->b, l->header);
    if (!l->runtime_unroll || l->unroll_count > 0) {
        static const char kind[] = "llvm.loop";
        LLVMSetMetadata(br, LLVMGetMDKindIDInContext(cg->u->ctx, kind, sizeof kind - 1), loop_metadata(cg, l));
    }
    LLVMAddIncoming(l->phi, &next, &latch, 1);
    LLVMPositionBuilderAtEnd(cg->u->b, l->exit);
}

void kiln_cg_if_begin(kiln_cg *cg, kiln_cg_if *f, LLVMValueRef cond)
{
    f->then_bb = LLVMAppendBasicBlockInContext(cg->u->ctx, cg->f.fn, "then");
    f->else_bb = LLVMAppendBasicBlockInContext(cg->u->ctx, cg->f.fn, "else");
    f->merge = NULL;
    LLVMBuildCondBr(cg->u->b, cond, f->then_bb, f->else_bb);
    LLVMPositionBuilderAtEnd(cg->u->b, f->then_bb);
}

void kiln_cg_if_else(kiln_cg *cg, kiln_cg_if *f)
{
    f->merge = LLVMAppendBasicBlockInContext(cg->u->ctx, cg->f.fn, "endif");
    LLVMBuildBr(cg->u->b, f->merge);
    LLVMPositionBuilderAtEnd(cg->u->b, f->else_bb);
}

void kiln_cg_if_end(kiln_cg *cg, kiln_cg_if *f)
{
    if (!f->merge) { /* no else branch: the else block is the join */
        LLVMBuildBr(cg->u->b, f->else_bb);
        LLVMPositionBuilderAtEnd(cg->u->b, f->else_bb);
        return;
    }
    LLVMBuildBr(cg->u->b, f->merge);
    LLVMPositionBuilderAtEnd(cg->u->b, f->merge);
}

void kiln_cg_vloop(kiln_cg *cg, LLVMValueRef lo, LLVMValueRef hi, kiln_cg_vbody body, void *arg)
{
    LLVMValueRef n = kiln_cg_smax(cg, LLVMBuildSub(cg->u->b, hi, lo, ""), kiln_cg_i64(cg, 0));
    LLVMValueRef full = LLVMBuildAdd(cg->u->b, lo, LLVMBuildMul(cg->u->b, kiln_cg_udiv(cg, n, cg->vl), kiln_cg_i64(cg, cg->vl), ""),
                                     "full");
    kiln_cg_loop l;
    LLVMValueRef i = kiln_cg_for_begin(cg, &l, lo, full, kiln_cg_i64(cg, cg->vl));
    body(cg, i, NULL, arg);
    kiln_cg_for_end(cg, &l);
    kiln_cg_if f;
    kiln_cg_if_begin(cg, &f, LLVMBuildICmp(cg->u->b, LLVMIntSLT, full, hi, ""));
    body(cg, full, kiln_cg_tail_mask(cg, LLVMBuildSub(cg->u->b, hi, full, "")), arg);
    kiln_cg_if_end(cg, &f);
}
