/* compiler/target/rows.c: the target table (target.h): vector width and GEMM
 * tile per instruction set, picked by a triple's architecture and the
 * extensions the code may use, with the blocking sized from the caches.
 * Kernels read these values; adding a target is adding a row (and a rule in
 * pick_row). */
#include "target.h"

#include <string.h>

/* The GEMM micro-kernel keeps mr x nr vector accumulators in registers, plus
 * nr vectors of B and a broadcast of A: AVX2 6 x 2 ymm = 12 of 16 registers
 * (a 6 x 16 tile); AVX-512 14 x 2 zmm = 28 of 32 (14 x 32; the broadcasts of
 * A fold into the FMAs' memory operands); NEON 8 x 3 q = 24 of 32 (8 x 12).
 * kc is set from the L1 data cache (size_row): a kc x (nr * lanes) slice of
 * packed B fills half of it, reused by every row tile (AVX2 with 32 KiB:
 * 256; AVX-512 with 48 KiB: 192).
 * winograd_margin: AUTO takes Winograd when its estimate is under this
 * fraction of the implicit GEMM's (winograd.c). Fitted per row on single
 * layers: 0.9 on AVX2 (Zen 3); 1.0 on AVX-512 (Xeon), where the implicit
 * GEMM's im2col packing costs more on small maps (512 channels at 7x7:
 * F(2x2) 1.54 ms against 2.11, estimated at 0.92 of it). */
static const kiln_target rows[] = {
    /* name      bits  mr  nr   kc  gemv  native masks  winograd */
    {"avx512", 512, 14, 2, 192, 4, true, 1.0, {0}, {0}},
    {"avx2", 256, 6, 2, 256, 4, true, 0.9, {0}, {0}}, /* vmaskmovps */
    {"sse", 128, 4, 2, 256, 4, false, 0.9, {0}, {0}},
    {"neon", 128, 8, 3, 256, 2, false, 0.9, {0}, {0}},
    {"generic", 128, 4, 2, 256, 4, false, 0.9, {0}, {0}},
};

enum { T_AVX512, T_AVX2, T_SSE, T_NEON, T_GENERIC };

/* The row for a triple and the extensions the code may use. */
static const kiln_target *pick_row(const char *triple, const char *features)
{
    bool x86 = strncmp(triple, "x86_64", 6) == 0 || strncmp(triple, "amd64", 5) == 0;
    bool arm64 = strncmp(triple, "aarch64", 7) == 0 || strncmp(triple, "arm64", 5) == 0;
    if (arm64)
        return &rows[T_NEON];
    if (!x86)
        return &rows[T_GENERIC];
    if (kiln_target_list_has(features, "avx512f"))
        return &rows[T_AVX512];
    if (kiln_target_list_has(features, "avx2") && kiln_target_list_has(features, "fma"))
        return &rows[T_AVX2];
    return &rows[T_SSE];
}

void kiln_target_describe(const char *triple, const char *features, const kiln_caches *caches, kiln_target *out)
{
    const kiln_target *row = pick_row(triple, features);
    *out = *row;
    if (caches)
        out->caches = *caches;
    else
        kiln_target_default_caches(row->vector_bits, &out->caches);
    size_t n = strlen(features);
    if (n >= sizeof out->features)
        n = sizeof out->features - 1;
    memcpy(out->features, features, n);
    out->features[n] = '\0';
    int64_t panel_bytes = (int64_t)row->gemm_nr * kiln_target_lanes(row) * 4;
    int64_t kc = (int64_t)out->caches.l1d / 2 / panel_bytes / 16 * 16;
    out->gemm_kc = (int)(kc < 64 ? 64 : kc > 512 ? 512 : kc);
}
