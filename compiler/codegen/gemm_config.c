/* compiler/codegen/gemm_config.c: the GEMM configurations, one per (A, B,
 * accumulator) element types a target computes (the shape of XNNPACK's
 * gemm-config). A configuration holds what differs between them: the
 * register tile and K block, how many consecutive k values one multiply-add
 * consumes (k_pack), the packing of constant operands into the weights
 * blob, and the three steps of the micro-kernel's inner loop (broadcast a
 * row's A, load a vector of B, multiply-add into an accumulator). Everything
 * else (the loop nest, tiles, flushes, epilogues: kernels/gemm.c) is shared,
 * so a bf16 or int8 GEMM is a new entry here, not a copy of the GEMM.
 *
 * f32: one FMA per (row, vector) and k; A and B packed as f32.
 * f16 weights (two rows: the weights are B for dense, packed A for conv2d):
 *     the weights stored as IEEE half, converted to f32 when loaded
 *     (vcvtph2ps), the other operand and the sums f32.
 * bf16: both operands bf16 in pairs of k (k_pack 2), f32 sums: vdpbf16ps
 *     with AVX512-BF16, else each half widened to f32 and two FMAs. The
 *     activations are rounded to bf16 (to nearest even) by the GEMM where it
 *     copies them (kernels/gemm.c).
 * int8: u8 activations times s8 weights in quads of k (k_pack 4), exact
 *     int32 sums (ir/quant.h has the scheme): vpdpbusd with AVX512-VNNI or
 *     AVX-VNNI, else the bytes widened to i16 and vpmaddwd (AVX2, AVX-512BW),
 *     else plain IR (sext/zext, mul, add) that every target compiles. The
 *     weights are quantized here as they are packed; the activations by the
 *     GEMM where it copies them or builds its panels (kernels/gemm.c). Two
 *     rows, as for f16: the weights are B for dense, packed A for conv2d. */
#include "cg.h"

#include <string.h>

#include "ir/convert.h"
#include "ir/quant.h"

/* ---- f32 ------------------------------------------------------------------------ */

static LLVMValueRef f32_load_a(kiln_cg *cg, const kiln_cg_gemm_config *c, LLVMValueRef p, LLVMValueRef off)
{
    (void)c;
    return kiln_cg_splat(cg, kiln_cg_load(cg, p, off));
}

static LLVMValueRef f32_load_b(kiln_cg *cg, const kiln_cg_gemm_config *c, LLVMValueRef p, LLVMValueRef off)
{
    (void)c;
    return kiln_cg_vload(cg, p, off, NULL, 0.0);
}

static LLVMValueRef f32_madd(kiln_cg *cg, const kiln_cg_gemm_config *c, LLVMValueRef a, LLVMValueRef b,
                             LLVMValueRef acc)
{
    (void)c;
    return kiln_cg_fma(cg, a, b, acc);
}

static void f32_pack_b(const kiln_cg_gemm_config *c, const float *src, int64_t k, int64_t n, int64_t rs, int64_t cs,
                       void *out)
{
    float *dst = out;
    int64_t nr = (int64_t)c->nr * c->lanes, panels = (n + nr - 1) / nr;
    for (int64_t p = 0; p < panels; p++)
        for (int64_t kk = 0; kk < k; kk++)
            for (int64_t j = 0; j < nr; j++) {
                int64_t col = p * nr + j;
                dst[(p * k + kk) * nr + j] = col < n ? src[kk * rs + col * cs] : 0.0f;
            }
}

static void f32_pack_a(const kiln_cg_gemm_config *c, const float *src, int64_t m, int64_t k, int64_t rs, int64_t cs,
                       int64_t kc, void *out)
{
    float *dst = out;
    int64_t mr = c->mr, panels = (m + mr - 1) / mr;
    for (int64_t k0 = 0; k0 < k; k0 += kc) {
        int64_t kcb = k - k0 < kc ? k - k0 : kc;
        float *block = dst + k0 * panels * mr;
        for (int64_t p = 0; p < panels; p++)
            for (int64_t kk = 0; kk < kcb; kk++)
                for (int64_t r = 0; r < mr; r++) {
                    int64_t row = p * mr + r;
                    block[(p * kcb + kk) * mr + r] = row < m ? src[row * rs + (k0 + kk) * cs] : 0.0f;
                }
    }
}

/* ---- f16 weights ---------------------------------------------------------------- */

/* IEEE half to f32 on vectors or scalars of i16 bits: F16C's vcvtph2ps
 * where the target has it (an fpext LLVM lowers to it), else integer code
 * (without F16C, LLVM would call __extendhfsf2 per element): the half's
 * exponent and mantissa moved into an f32 and scaled by 2^112, which is
 * exact for normal and subnormal halves alike; infinities and NaNs get the
 * f32 exponent of all ones. */
static LLVMValueRef f16_bits_to_f32(kiln_cg *cg, const kiln_cg_gemm_config *c, LLVMValueRef h)
{
    LLVMBuilderRef b = cg->u->b;
    LLVMTypeRef t = LLVMTypeOf(h);
    bool vec = LLVMGetTypeKind(t) == LLVMVectorTypeKind;
    unsigned n = vec ? LLVMGetVectorSize(t) : 0;
    LLVMTypeRef f = vec ? LLVMVectorType(cg->u->t_f32, n) : cg->u->t_f32;
    if (c->f16c) {
        LLVMTypeRef ht = vec ? LLVMVectorType(cg->u->vt[KILN_F16].elem, n) : cg->u->vt[KILN_F16].elem;
        return LLVMBuildFPExt(b, LLVMBuildBitCast(b, h, ht, ""), f, "");
    }
    LLVMTypeRef it = vec ? LLVMVectorType(cg->u->t_i32, n) : cg->u->t_i32;
#define IC(v) (vec ? kiln_cg_iconst_like(cg, LLVMGetPoison(f), (v)) : LLVMConstInt(cg->u->t_i32, (unsigned long long)(v), 0))
    LLVMValueRef w = LLVMBuildZExt(b, h, it, "");
    LLVMValueRef em = LLVMBuildAnd(b, w, IC(0x7fff), "");
    LLVMValueRef sign = LLVMBuildShl(b, LLVMBuildAnd(b, w, IC(0x8000), ""), IC(16), "");
    LLVMValueRef shifted = LLVMBuildShl(b, em, IC(13), "");
    LLVMValueRef scaled = LLVMBuildFMul(b, LLVMBuildBitCast(b, shifted, f, ""),
                                        vec ? kiln_cg_fconst(cg, LLVMGetPoison(f), 0x1p112) : LLVMConstReal(cg->u->t_f32, 0x1p112), "");
    LLVMValueRef special = LLVMBuildICmp(b, LLVMIntUGE, em, IC(0x7c00), "");
    LLVMValueRef bits = LLVMBuildSelect(b, special, LLVMBuildOr(b, shifted, IC(0x7f800000), ""),
                                        LLVMBuildBitCast(b, scaled, it, ""), "");
#undef IC
    return LLVMBuildBitCast(b, LLVMBuildOr(b, bits, sign, ""), f, "");
}

/* A f32, B f16 (dense: the weights are B): B's vector converted as loaded. */
static LLVMValueRef f16w_load_b(kiln_cg *cg, const kiln_cg_gemm_config *c, LLVMValueRef p, LLVMValueRef off)
{
    LLVMTypeRef it = LLVMVectorType(LLVMInt16TypeInContext(cg->u->ctx), (unsigned)c->lanes);
    LLVMValueRef v = LLVMBuildLoad2(cg->u->b, it, kiln_cg_gep_t(cg, &cg->u->vt[KILN_F16], p, off), "");
    LLVMSetAlignment(v, 2);
    return f16_bits_to_f32(cg, c, v);
}

/* A f16 (conv2d: the weights are packed A), B f32: a row's half broadcast,
 * then converted (vpbroadcastw + vcvtph2ps). */
static LLVMValueRef f16w_load_a(kiln_cg *cg, const kiln_cg_gemm_config *c, LLVMValueRef p, LLVMValueRef off)
{
    LLVMTypeRef i16 = LLVMInt16TypeInContext(cg->u->ctx);
    LLVMValueRef v = LLVMBuildLoad2(cg->u->b, i16, kiln_cg_gep_t(cg, &cg->u->vt[KILN_F16], p, off), "");
    LLVMSetAlignment(v, 2);
    return f16_bits_to_f32(cg, c, kiln_cg_splat(cg, v));
}

static void f16_pack_b(const kiln_cg_gemm_config *c, const float *src, int64_t k, int64_t n, int64_t rs, int64_t cs,
                       void *out)
{
    uint16_t *dst = out;
    int64_t nr = (int64_t)c->nr * c->lanes, panels = (n + nr - 1) / nr;
    for (int64_t p = 0; p < panels; p++)
        for (int64_t kk = 0; kk < k; kk++)
            for (int64_t j = 0; j < nr; j++) {
                int64_t col = p * nr + j;
                dst[(p * k + kk) * nr + j] = col < n ? kiln_f32_to_f16(src[kk * rs + col * cs]) : 0;
            }
}

static void f16_pack_a(const kiln_cg_gemm_config *c, const float *src, int64_t m, int64_t k, int64_t rs, int64_t cs,
                       int64_t kc, void *out)
{
    uint16_t *dst = out;
    int64_t mr = c->mr, panels = (m + mr - 1) / mr;
    for (int64_t k0 = 0; k0 < k; k0 += kc) {
        int64_t kcb = k - k0 < kc ? k - k0 : kc;
        uint16_t *block = dst + k0 * panels * mr;
        for (int64_t p = 0; p < panels; p++)
            for (int64_t kk = 0; kk < kcb; kk++)
                for (int64_t r = 0; r < mr; r++) {
                    int64_t row = p * mr + r;
                    block[(p * kcb + kk) * mr + r] = row < m ? kiln_f32_to_f16(src[row * rs + (k0 + kk) * cs]) : 0;
                }
    }
}

/* ---- bf16 ------------------------------------------------------------------------- */

/* Both operands bf16 in pairs: k and k + 1 side by side for each row of A
 * and each column of B, so one 32-bit lane holds what one lane of
 * vdpbf16ps multiplies (acc[j] += a[2j] b[2j] + a[2j+1] b[2j+1]). A row's
 * pair is broadcast as an i32; B's vector is `lanes` pairs. Odd K ends
 * with a pair whose second value is zero. */
static LLVMValueRef bf16_load_a(kiln_cg *cg, const kiln_cg_gemm_config *c, LLVMValueRef p, LLVMValueRef off)
{
    (void)c;
    LLVMValueRef v = LLVMBuildLoad2(cg->u->b, cg->u->t_i32, kiln_cg_gep_t(cg, &cg->u->vt[KILN_BF16], p, off), "");
    LLVMSetAlignment(v, 4);
    return kiln_cg_splat(cg, v);
}

static LLVMValueRef bf16_load_b(kiln_cg *cg, const kiln_cg_gemm_config *c, LLVMValueRef p, LLVMValueRef off)
{
    LLVMValueRef v = LLVMBuildLoad2(cg->u->b, LLVMVectorType(cg->u->t_i32, (unsigned)c->lanes),
                                    kiln_cg_gep_t(cg, &cg->u->vt[KILN_BF16], p, off), "");
    LLVMSetAlignment(v, 4);
    return v;
}

/* AVX512-BF16: one vdpbf16ps (512- or 256-bit) per (row, vector) and pair. */
static LLVMValueRef bf16_madd_dp(kiln_cg *cg, const kiln_cg_gemm_config *c, LLVMValueRef a, LLVMValueRef b,
                                 LLVMValueRef acc)
{
    LLVMTypeRef pairs = LLVMVectorType(cg->u->vt[KILN_BF16].elem, (unsigned)(2 * c->lanes));
    LLVMValueRef args[3] = {acc, LLVMBuildBitCast(cg->u->b, a, pairs, ""), LLVMBuildBitCast(cg->u->b, b, pairs, "")};
    return kiln_cg_intrinsic(cg, c->lanes == 16 ? "llvm.x86.avx512bf16.dpbf16ps.512" : "llvm.x86.avx512bf16.dpbf16ps.256",
                             NULL, 0, args, 3);
}

/* Without it: each half of a pair widened to f32 (a bf16 is the top half of
 * an f32: shift left by 16, or mask the low half off) and two FMAs, the
 * second value of the pair first as vdpbf16ps does. */
static LLVMValueRef bf16_madd_widen(kiln_cg *cg, const kiln_cg_gemm_config *c, LLVMValueRef a, LLVMValueRef b,
                                    LLVMValueRef acc)
{
    (void)c;
    LLVMBuilderRef bl = cg->u->b;
    LLVMTypeRef f = LLVMTypeOf(acc);
    LLVMValueRef sixteen = kiln_cg_iconst_like(cg, acc, 16), top = kiln_cg_iconst_like(cg, acc, (int64_t)0xffff0000u);
    LLVMValueRef a_hi = LLVMBuildBitCast(bl, LLVMBuildAnd(bl, a, top, ""), f, "");
    LLVMValueRef b_hi = LLVMBuildBitCast(bl, LLVMBuildAnd(bl, b, top, ""), f, "");
    LLVMValueRef a_lo = LLVMBuildBitCast(bl, LLVMBuildShl(bl, a, sixteen, ""), f, "");
    LLVMValueRef b_lo = LLVMBuildBitCast(bl, LLVMBuildShl(bl, b, sixteen, ""), f, "");
    return kiln_cg_fma(cg, a_lo, b_lo, kiln_cg_fma(cg, a_hi, b_hi, acc));
}

static void bf16_pack_b(const kiln_cg_gemm_config *c, const float *src, int64_t k, int64_t n, int64_t rs, int64_t cs,
                        void *out)
{
    uint16_t *dst = out;
    int64_t nr = (int64_t)c->nr * c->lanes, panels = (n + nr - 1) / nr, kp = kiln_cg_gemm_kpad(c, k);
    for (int64_t p = 0; p < panels; p++)
        for (int64_t kk = 0; kk < k; kk++)
            for (int64_t j = 0; j < nr; j++) {
                int64_t col = p * nr + j;
                dst[(p * kp + kk / 2 * 2) * nr + 2 * j + kk % 2] = col < n ? kiln_f32_to_bf16(src[kk * rs + col * cs]) : 0;
            }
}

static void bf16_pack_a(const kiln_cg_gemm_config *c, const float *src, int64_t m, int64_t k, int64_t rs, int64_t cs,
                        int64_t kc, void *out)
{
    uint16_t *dst = out;
    int64_t mr = c->mr, panels = (m + mr - 1) / mr;
    for (int64_t k0 = 0; k0 < k; k0 += kc) { /* kc is even: every block but the last is whole pairs */
        int64_t kcb = k - k0 < kc ? k - k0 : kc, kcp = kiln_cg_gemm_kpad(c, kcb);
        uint16_t *block = dst + k0 * panels * mr;
        for (int64_t p = 0; p < panels; p++)
            for (int64_t kk = 0; kk < kcb; kk++)
                for (int64_t r = 0; r < mr; r++) {
                    int64_t row = p * mr + r;
                    block[(p * kcp + kk / 2 * 2) * mr + 2 * r + kk % 2] =
                        row < m ? kiln_f32_to_bf16(src[row * rs + (k0 + kk) * cs]) : 0;
                }
    }
}

/* ---- int8 ------------------------------------------------------------------------- */

/* Both operands in quads: k .. k + 3 side by side for each row of A and each
 * column of B, one 32-bit lane per quad, so that a lane of vpdpbusd sums
 * the four products of one (row, column). A row's quad is broadcast as an
 * i32; B's vector is `lanes` quads. K ends with zero bytes up to a whole
 * quad (the weights' zeros make the padding's products zero whatever the
 * activations hold there). */
static LLVMValueRef int8_load_a(kiln_cg *cg, const kiln_cg_gemm_config *c, LLVMValueRef p, LLVMValueRef off)
{
    LLVMValueRef v = LLVMBuildLoad2(cg->u->b, cg->u->t_i32, kiln_cg_gep_t(cg, &cg->u->vt[c->a], p, off), "");
    LLVMSetAlignment(v, 1);
    return kiln_cg_splat(cg, v);
}

static LLVMValueRef int8_load_b(kiln_cg *cg, const kiln_cg_gemm_config *c, LLVMValueRef p, LLVMValueRef off)
{
    LLVMValueRef v = LLVMBuildLoad2(cg->u->b, LLVMVectorType(cg->u->t_i32, (unsigned)c->lanes),
                                    kiln_cg_gep_t(cg, &cg->u->vt[c->b], p, off), "");
    LLVMSetAlignment(v, 1);
    return v;
}

/* The operand of u8 quads (the activations) and of s8 quads (the weights):
 * dense has the activations in A, a convolution in B. */
static void int8_operands(const kiln_cg_gemm_config *c, LLVMValueRef a, LLVMValueRef b, LLVMValueRef *u,
                          LLVMValueRef *s)
{
    *u = c->a == KILN_U8 ? a : b;
    *s = c->a == KILN_U8 ? b : a;
}

/* VNNI: one vpdpbusd per (row, vector) and quad. Its first multiplicand is
 * read as unsigned bytes, its second as signed; no saturation (vpdpbusds
 * would saturate). */
static LLVMValueRef int8_madd_vnni(kiln_cg *cg, const kiln_cg_gemm_config *c, LLVMValueRef a, LLVMValueRef b,
                                   LLVMValueRef acc)
{
    LLVMValueRef u, s;
    int8_operands(c, a, b, &u, &s);
    LLVMValueRef args[3] = {acc, u, s};
    return kiln_cg_intrinsic(cg, c->lanes == 16 ? "llvm.x86.avx512.vpdpbusd.512" : "llvm.x86.avx512.vpdpbusd.256",
                             NULL, 0, args, 3);
}

/* Without VNNI: each quad split into its even and odd bytes, widened in
 * place to i16 lanes (zero-extended for u8, sign-extended for s8), and two
 * vpmaddwd: each adds two products of at most 255 * 128 into an i32 lane,
 * which cannot saturate (vpmaddubsw, summing into i16, could). */
static LLVMValueRef int8_madd_pmaddwd(kiln_cg *cg, const kiln_cg_gemm_config *c, LLVMValueRef a, LLVMValueRef b,
                                      LLVMValueRef acc)
{
    LLVMBuilderRef bl = cg->u->b;
    LLVMValueRef u, s;
    int8_operands(c, a, b, &u, &s);
    const unsigned n16 = (unsigned)(2 * c->lanes);
    LLVMTypeRef i16 = LLVMInt16TypeInContext(cg->u->ctx), v16 = LLVMVectorType(i16, n16);
    LLVMValueRef u16 = LLVMBuildBitCast(bl, u, v16, ""), s16 = LLVMBuildBitCast(bl, s, v16, "");
    LLVMValueRef lanes[64];
    for (unsigned i = 0; i < n16; i++)
        lanes[i] = LLVMConstInt(i16, 8, 0);
    LLVMValueRef eight = LLVMConstVector(lanes, n16);
    for (unsigned i = 0; i < n16; i++)
        lanes[i] = LLVMConstInt(i16, 0xff, 0);
    LLVMValueRef low = LLVMConstVector(lanes, n16);
    LLVMValueRef u_even = LLVMBuildAnd(bl, u16, low, ""), u_odd = LLVMBuildLShr(bl, u16, eight, "");
    LLVMValueRef s_even = LLVMBuildAShr(bl, LLVMBuildShl(bl, s16, eight, ""), eight, "");
    LLVMValueRef s_odd = LLVMBuildAShr(bl, s16, eight, "");
    const char *name = c->lanes == 16 ? "llvm.x86.avx512.pmaddw.d.512" : "llvm.x86.avx2.pmadd.wd";
    LLVMValueRef even[2] = {u_even, s_even}, odd[2] = {u_odd, s_odd};
    LLVMValueRef sum = LLVMBuildAdd(bl, kiln_cg_intrinsic(cg, name, NULL, 0, even, 2),
                                    kiln_cg_intrinsic(cg, name, NULL, 0, odd, 2), "");
    return LLVMBuildAdd(bl, acc, sum, "");
}

/* Anything else: the four bytes of each lane extended to i32 by shifts,
 * multiplied and added (LLVM picks the target's instructions). */
static LLVMValueRef int8_madd_generic(kiln_cg *cg, const kiln_cg_gemm_config *c, LLVMValueRef a, LLVMValueRef b,
                                      LLVMValueRef acc)
{
    LLVMBuilderRef bl = cg->u->b;
    LLVMValueRef u, s;
    int8_operands(c, a, b, &u, &s);
    LLVMValueRef low = kiln_cg_iconst_like(cg, LLVMGetPoison(LLVMVectorType(cg->u->t_f32, (unsigned)c->lanes)), 0xff);
    for (int j = 0; j < 4; j++) {
        LLVMValueRef like = LLVMGetPoison(LLVMVectorType(cg->u->t_f32, (unsigned)c->lanes));
        LLVMValueRef uj = LLVMBuildAnd(bl, j ? LLVMBuildLShr(bl, u, kiln_cg_iconst_like(cg, like, 8 * j), "") : u, low, "");
        LLVMValueRef sj = LLVMBuildAShr(bl, LLVMBuildShl(bl, s, kiln_cg_iconst_like(cg, like, 24 - 8 * j), ""),
                                        kiln_cg_iconst_like(cg, like, 24), "");
        acc = LLVMBuildAdd(bl, acc, LLVMBuildMul(bl, uj, sj, ""), "");
    }
    return acc;
}

/* B (dense: W^T, column n = output channel n) quantized per column with
 * ir/quant.h's scale of that column, in quads of k. */
static void int8_pack_b(const kiln_cg_gemm_config *c, const float *src, int64_t k, int64_t n, int64_t rs, int64_t cs,
                        void *out)
{
    int8_t *dst = out;
    int64_t nr = (int64_t)c->nr * c->lanes, panels = (n + nr - 1) / nr, kp = kiln_cg_gemm_kpad(c, k);
    for (int64_t col = 0; col < n; col++) {
        const float sw = kiln_quant_weight_scale(src + col * cs, k, rs);
        int64_t p = col / nr, j = col % nr;
        for (int64_t kk = 0; kk < k; kk++)
            dst[(p * kp + kk / 4 * 4) * nr + 4 * j + kk % 4] = kiln_quant_weight_q(src[kk * rs + col * cs], sw);
    }
    (void)panels; /* the padding (columns past n, k past K) stays zero: the blob is zeroed */
}

/* A (conv2d: the filters [F, K], row m = output channel m) quantized per
 * row with its own scale, in panels of mr rows and quads of k, per K block
 * (each block padded to whole quads: the GEMM steps through a block's
 * quads, kc is a multiple of 4). */
static void int8_pack_a(const kiln_cg_gemm_config *c, const float *src, int64_t m, int64_t k, int64_t rs, int64_t cs,
                        int64_t kc, void *out)
{
    int8_t *dst = out;
    int64_t mr = c->mr, panels = (m + mr - 1) / mr;
    for (int64_t row = 0; row < m; row++) {
        const float sw = kiln_quant_weight_scale(src + row * rs, k, cs);
        const int64_t p = row / mr, r = row % mr;
        for (int64_t k0 = 0; k0 < k; k0 += kc) {
            int64_t kcb = k - k0 < kc ? k - k0 : kc, kcp = kiln_cg_gemm_kpad(c, kcb);
            int8_t *block = dst + k0 * panels * mr;
            for (int64_t kk = 0; kk < kcb; kk++)
                block[(p * kcp + kk / 4 * 4) * mr + 4 * r + kk % 4] = kiln_quant_weight_q(src[row * rs + (k0 + kk) * cs], sw);
        }
    }
}

/* ---- the table -------------------------------------------------------------------- */

void kiln_cg_gemm_configs_init(const kiln_target *t, kiln_cg_gemm_config *out)
{
    const int lanes = t->vector_bits / 32;
    const int regs = t->vector_bits == 512 ? 32 : 16;
    const int mr = t->gemm_mr > KILN_CG_GEMM_MAX_MR ? KILN_CG_GEMM_MAX_MR : t->gemm_mr;
    const int nr = t->gemm_nr > KILN_CG_GEMM_MAX_NV ? KILN_CG_GEMM_MAX_NV : t->gemm_nr;
    const bool x86 = strcmp(t->name, "avx512") == 0 || strcmp(t->name, "avx2") == 0 || strcmp(t->name, "sse") == 0;
    const bool f16c = x86 && kiln_target_list_has(t->features, "f16c");
    const bool dpbf16 = x86 && kiln_target_list_has(t->features, "avx512bf16") &&
                        (lanes == 16 || (lanes == 8 && kiln_target_list_has(t->features, "avx512vl")));
    out[KILN_CG_GEMM_F32] = (kiln_cg_gemm_config){
        .id = KILN_CG_GEMM_F32,
        .name = "f32",
        .a = KILN_F32,
        .b = KILN_F32,
        .acc = KILN_F32,
        .mr = mr,
        .nr = nr,
        .kc = t->gemm_kc,
        .k_pack = 1,
        .lanes = lanes,
        .gemv_panels = t->gemv_panels,
        .load_a = f32_load_a,
        .load_b = f32_load_b,
        .madd = f32_madd,
        .pack_a = f32_pack_a,
        .pack_b = f32_pack_b,
    };
    /* f16 weights: half the bytes of B (or A), converted as loaded: one more
     * instruction per vector of weights, the tile of f32 */
    kiln_cg_gemm_config f16b = out[KILN_CG_GEMM_F32];
    f16b.id = KILN_CG_GEMM_F16W_B;
    f16b.name = "f32f16w";
    f16b.b = KILN_F16;
    f16b.f16c = f16c;
    f16b.load_b = f16w_load_b;
    f16b.pack_b = f16_pack_b;
    out[KILN_CG_GEMM_F16W_B] = f16b;
    kiln_cg_gemm_config f16a = out[KILN_CG_GEMM_F32];
    f16a.id = KILN_CG_GEMM_F16W_A;
    f16a.name = "f16wf32";
    f16a.a = KILN_F16;
    f16a.f16c = f16c;
    f16a.load_a = f16w_load_a;
    f16a.pack_a = f16_pack_a;
    out[KILN_CG_GEMM_F16W_A] = f16a;
    /* bf16: pairs of k, kc even. The widening fallback holds both halves of
     * a row's pair and of each B vector in registers: fewer rows, so the
     * tile still fits the register file (AVX2: 4 x 2, AVX-512: 12 x 2). */
    kiln_cg_gemm_config bf = out[KILN_CG_GEMM_F32];
    bf.id = KILN_CG_GEMM_BF16;
    bf.name = dpbf16 ? "bf16dp" : "bf16";
    bf.a = bf.b = KILN_BF16;
    bf.k_pack = 2;
    bf.kc = t->gemm_kc / 2 * 2;
    bf.dot = dpbf16;
    if (!dpbf16) {
        int fit = (regs - 3 * nr - 2) / nr;
        bf.mr = fit < 1 ? 1 : fit < mr ? fit : mr;
    }
    bf.load_a = bf16_load_a;
    bf.load_b = bf16_load_b;
    bf.madd = dpbf16 ? bf16_madd_dp : bf16_madd_widen;
    bf.pack_a = bf16_pack_a;
    bf.pack_b = bf16_pack_b;
    out[KILN_CG_GEMM_BF16] = bf;
    /* int8: quads of k, int32 sums. VNNI keeps the f32 tile (one
     * instruction per accumulator and quad); the widening forms hold the
     * even and odd halves of the B vectors and of a row's quad, like bf16's
     * fallback, so fewer rows. Dense: A the activations (u8), B the
     * weights (s8). */
    const bool vnni = x86 && ((lanes == 16 && kiln_target_list_has(t->features, "avx512vnni")) ||
                              (lanes == 8 && (kiln_target_list_has(t->features, "avxvnni") ||
                                              (kiln_target_list_has(t->features, "avx512vnni") &&
                                               kiln_target_list_has(t->features, "avx512vl")))));
    const bool pmaddwd = x86 && !vnni && ((lanes == 8 && kiln_target_list_has(t->features, "avx2")) ||
                                          (lanes == 16 && kiln_target_list_has(t->features, "avx512bw")));
    kiln_cg_gemm_config q = out[KILN_CG_GEMM_F32];
    q.id = KILN_CG_GEMM_INT8;
    q.name = vnni ? "int8vnni" : pmaddwd ? "int8pmaddwd" : "int8";
    q.a = KILN_U8;
    q.b = KILN_I8;
    q.acc = KILN_I32;
    q.k_pack = 4;
    /* kc sizes a kc x panel slice of B to half of L1 in f32: in bytes, four
     * times as many k of s8 weights fit. Dense layers' K blocks (the copy
     * path's, twice kc) are then 4x longer: fewer passes over C's int32
     * partial sums (measured on the AVX-512 host: 256 x 4096 x 4096 in
     * 43 ms with the f32 kc, 15 ms with this one). */
    q.kc = t->gemm_kc * 4;
    q.dot = vnni;
    if (!vnni) {
        int fit = (regs - 3 * nr - 2) / nr;
        q.mr = fit < 1 ? 1 : fit < mr ? fit : mr;
    }
    q.load_a = int8_load_a;
    q.load_b = int8_load_b;
    q.madd = vnni ? int8_madd_vnni : pmaddwd ? int8_madd_pmaddwd : int8_madd_generic;
    q.pack_a = NULL;
    q.pack_b = int8_pack_b;
    out[KILN_CG_GEMM_INT8] = q;
    /* conv2d: the filters are A (s8, packed), the im2col panels B (u8,
     * quantized as the GEMM builds them) */
    q.id = KILN_CG_GEMM_INT8_WA;
    q.name = vnni ? "int8vnniwa" : pmaddwd ? "int8pmaddwdwa" : "int8wa";
    q.a = KILN_I8;
    q.b = KILN_U8;
    q.kc = t->gemm_kc / 4 * 4; /* B's panels are built in f32 first: the f32 kc */
    q.pack_a = int8_pack_a;
    q.pack_b = NULL;
    out[KILN_CG_GEMM_INT8_WA] = q;
}

const kiln_cg_gemm_config *kiln_cg_gemm_config_for(const kiln_cg *cg, kiln_dtype a, kiln_dtype b)
{
    for (int i = 0; i < KILN_CG_GEMM_CONFIGS; i++) {
        const kiln_cg_gemm_config *c = &cg->gemm[i];
        if (c->name && c->a == a && c->b == b)
            return c;
    }
    return NULL;
}

const kiln_cg_gemm_config *kiln_cg_gemm_f32(const kiln_cg *cg) { return &cg->gemm[KILN_CG_GEMM_F32]; }

/* ---- packing ---------------------------------------------------------------------- */

size_t kiln_cg_packed_b_bytes(const kiln_cg_gemm_config *c, int64_t k, int64_t n)
{
    int64_t nr = (int64_t)c->nr * c->lanes;
    return (size_t)((n + nr - 1) / nr * kiln_cg_gemm_kpad(c, k) * nr) * kiln_dtype_size(c->b);
}

void kiln_cg_pack_b(const kiln_cg_gemm_config *c, const float *src, int64_t k, int64_t n, int64_t rs, int64_t cs,
                    void *dst)
{
    c->pack_b(c, src, k, n, rs, cs, dst);
}

size_t kiln_cg_packed_a_bytes(const kiln_cg_gemm_config *c, int64_t m, int64_t k)
{
    return (size_t)((m + c->mr - 1) / c->mr * kiln_cg_gemm_kpad(c, k) * c->mr) * kiln_dtype_size(c->a);
}

void kiln_cg_pack_a(const kiln_cg_gemm_config *c, const float *src, int64_t m, int64_t k, int64_t rs, int64_t cs,
                    int64_t kc, void *dst)
{
    c->pack_a(c, src, m, k, rs, cs, kc, dst);
}

int64_t kiln_cg_gemm_kc(const kiln_cg_gemm_config *c, int64_t kc) { return kc > 0 ? kc : c->kc; }

int64_t kiln_cg_gemm_kpad(const kiln_cg_gemm_config *c, int64_t k) { return (k + c->k_pack - 1) / c->k_pack * c->k_pack; }

const kiln_cg_gemm_config *kiln_cg_gemm_for_node(const kiln_cg *cg, const kiln_node *n, bool weights_are_a)
{
    switch (kiln_node_precision(cg->g, n)) {
    case KILN_PREC_BF16:
        return &cg->gemm[KILN_CG_GEMM_BF16];
    case KILN_PREC_F16:
        return &cg->gemm[weights_are_a ? KILN_CG_GEMM_F16W_A : KILN_CG_GEMM_F16W_B];
    case KILN_PREC_INT8:
        return &cg->gemm[weights_are_a ? KILN_CG_GEMM_INT8_WA : KILN_CG_GEMM_INT8];
    default:
        return &cg->gemm[KILN_CG_GEMM_F32];
    }
}

kiln_dtype kiln_cg_gemm_dtype(const kiln_cg_gemm_config *c)
{
    if (c->acc == KILN_I32)
        return KILN_I8;
    return c->a == KILN_BF16 ? KILN_BF16 : c->a == KILN_F16 || c->b == KILN_F16 ? KILN_F16 : KILN_F32;
}
