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
 * f32: one FMA per (row, vector) and k; A and B packed as f32. */
#include "cg.h"

#include <string.h>

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

/* ---- the table -------------------------------------------------------------------- */

void kiln_cg_gemm_configs_init(const kiln_target *t, kiln_cg_gemm_config *out)
{
    const int lanes = t->vector_bits / 32;
    out[KILN_CG_GEMM_F32] = (kiln_cg_gemm_config){
        .id = KILN_CG_GEMM_F32,
        .name = "f32",
        .a = KILN_F32,
        .b = KILN_F32,
        .acc = KILN_F32,
        .mr = t->gemm_mr > KILN_CG_GEMM_MAX_MR ? KILN_CG_GEMM_MAX_MR : t->gemm_mr,
        .nr = t->gemm_nr > KILN_CG_GEMM_MAX_NV ? KILN_CG_GEMM_MAX_NV : t->gemm_nr,
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
    return (size_t)((n + nr - 1) / nr * k * nr) * kiln_dtype_size(c->b);
}

void kiln_cg_pack_b(const kiln_cg_gemm_config *c, const float *src, int64_t k, int64_t n, int64_t rs, int64_t cs,
                    void *dst)
{
    c->pack_b(c, src, k, n, rs, cs, dst);
}

size_t kiln_cg_packed_a_bytes(const kiln_cg_gemm_config *c, int64_t m, int64_t k)
{
    return (size_t)((m + c->mr - 1) / c->mr * k * c->mr) * kiln_dtype_size(c->a);
}

void kiln_cg_pack_a(const kiln_cg_gemm_config *c, const float *src, int64_t m, int64_t k, int64_t rs, int64_t cs,
                    int64_t kc, void *dst)
{
    c->pack_a(c, src, m, k, rs, cs, kc, dst);
}

int64_t kiln_cg_gemm_kc(const kiln_cg_gemm_config *c, int64_t kc) { return kc > 0 ? kc : c->kc; }
