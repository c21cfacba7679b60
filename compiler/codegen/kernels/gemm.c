/* compiler/codegen/kernels/gemm.c: the packed GEMM that dense, matmul and
 * conv2d share (cg.h, kiln_cg_gemm), and the packing of its operands.
 *
 * Register blocking. The micro-kernel computes a tile of mr rows x nv
 * vectors: for each k it loads nv vectors of B once, broadcasts mr scalars
 * of A, and does mr * nv fused multiply-adds into accumulators that stay in
 * registers (the target table sizes the tile to the register file: 6 x 2
 * ymm on AVX2, 14 x 2 zmm on AVX-512, 8 x 3 q on NEON). One variant exists
 * per row count 1..mr (a switch picks it for the last rows), so a batch of 3
 * reads B once, not three times.
 *
 * Packing. Weights are packed at compile time into exactly the order the
 * micro-kernel reads them: B (dense weights, constant matmul operands) as
 * panels of NR = nr * lanes columns, [N/NR][K][NR], so each k step is nr
 * consecutive vector loads; A (convolution weights) as panels of mr rows,
 * [M/mr][K][mr], so each k step reads mr consecutive scalars. Panels are
 * zero-padded: the micro-kernel always computes whole panels and only the
 * store is masked.
 *
 * Cache blocking. The loop nest, inside one task (a block of rows and
 * columns), is BLIS's: for each K block of kc (the kc x NR slice of B stays
 * in L1), for each panel of columns, for each tile of rows (the task's rows
 * x kc of A stay in L2). Partial sums of each K block are added to C; the
 * first block adds the bias, the last applies the epilogue (the fusion
 * group's members: activations, residual adds) before its store. Summing in
 * blocks also keeps the rounding error of long sums small (k = 4608 in a
 * 3x3x512 convolution): each block is a short sum.
 *
 * One row (batch 1 dense: a matrix-vector product, memory bound): the
 * kernel streams gemv_panels panels at once (8 accumulators on AVX2), so the
 * loads of B run at full width with enough independent FMA chains to reach
 * memory bandwidth.
 *
 * The micro-kernels are private functions shared by every GEMM of the module
 * (one per tile shape); they leave the tile's sums in a small stack buffer.
 * Whole tiles (mr rows, a full panel) are then added to C or finished with
 * the epilogue by unrolled code; partial tiles (the last rows or columns) by
 * one generic flush loop with masks, generated once per GEMM.
 *
 * Element types. A GEMM configuration (gemm_config.c) says what A and B
 * hold and how one k step loads and multiplies them; this file is the same
 * for all. bf16 (k_pack 2) reads k in pairs: the k loop counts pairs, packed
 * panels hold K rounded up to even, a row-major f32 A is rounded to bf16 as
 * the copy path copies its row tiles (so bf16 always takes that path), and a
 * B that is copied or computed per panel is built in f32 and converted to
 * pairs (b_to_pairs). */
#include "compiler/codegen/cg.h"

#include <stdio.h>
#include <string.h>

typedef LLVMValueRef V;

#define MAX_MR KILN_CG_GEMM_MAX_MR
#define MAX_NV KILN_CG_GEMM_MAX_NV



/* ---- task blocking ------------------------------------------------------------ */

/* Rows of A this far apart alias in L1 (a multiple of 4 KiB) or touch a page
 * each: the GEMM copies its row tiles (see kiln_cg_emit_gemm). */
static bool a_rows_far(int64_t lda) { return lda % 1024 == 0 || lda >= 2048; }

void kiln_cg_gemm_blocking(const kiln_cg *cg, const kiln_cg_gemm_config *c, int64_t m, int64_t n, int64_t k,
                           uint32_t tasks, bool rows_grow, double b_cost, int64_t *mb, int64_t *nb)
{
    const int64_t mr = c->mr, nr = (int64_t)c->nr * c->lanes;
    /* Rows per task: the task's rows x kc of A stay in L2 (240 rows of 256
     * floats). When A's row tiles are copied (rows of the batch, far apart)
     * A leaves L2 alone: then one row block takes every row, so B, often
     * far larger than A, is read once (measured: 4% on a 256 x 4096 x 4096
     * dense layer against two row blocks of 240 and 16). */
    const int64_t rows_max = rows_grow && a_rows_far(k) ? (int64_t)1 << 24 : 240;
    const int64_t panels = (n + nr - 1) / nr, MB_MAX = mr * (rows_max / mr > 0 ? rows_max / mr : 1);
    if (m < 1)
        m = 1;
    if (k < 1)
        k = 1;
    /* The threads the schedule planned for, and the most tasks it allows
     * (without a schedule: 4 threads, 16 tasks). The kernel can use at most
     * `width` threads at once. */
    const int64_t threads = cg->g && cg->g->sched_threads ? (int64_t)cg->g->sched_threads : 4;
    const int64_t want = tasks ? (int64_t)tasks : 4 * threads;
    const int64_t width = want < threads ? want : threads;
    /* Costs in cycles, roughly: the multiply-adds at 16 per cycle; every row
     * block reads (packs) the B of its columns, every column block the A of
     * its rows (0.4 cycles per element from L3 or memory; b_cost more for an
     * implicit B); each task costs a few thousand cycles to start. Tasks are
     * claimed dynamically by `width` threads, so a kernel of n equal tasks
     * takes ceil(n / width) tasks' time (and at least its biggest task's):
     * the blocking minimizes that, plus a tenth of the total work per thread
     * so that, of two equally fast blockings, the one that spends less CPU
     * (fewer, larger tasks) wins. No more tasks than `want`, unless the row
     * blocks alone need more. When the rows grow with the batch (dense) row
     * blocks are the largest the caches like and only the columns are chosen
     * here. */
    const int64_t tiles = (m + mr - 1) / mr;
    int64_t best_mb = MB_MAX, best_ppb = panels;
    double best_cost = -1;
    /* For each number of row blocks its most even split (the fewest rows),
     * likewise for the columns. */
    int64_t prev_r = -1;
    for (int64_t tb = rows_grow ? MB_MAX / mr : 1; tb <= (rows_grow ? MB_MAX / mr : tiles); tb++) {
        int64_t rows = tb * mr;
        if (rows > MB_MAX)
            break;
        int64_t r_eff = rows_grow ? 1 : (m + rows - 1) / rows;
        if (r_eff == prev_r)
            continue;
        prev_r = r_eff;
        int64_t used = m < rows ? m : rows, prev_c = -1;
        for (int64_t ppb = 1; ppb <= panels; ppb++) {
            int64_t c_eff = (panels + ppb - 1) / ppb;
            if (c_eff == prev_c)
                continue;
            prev_c = c_eff;
            int64_t n_tasks = r_eff * c_eff;
            if (n_tasks > want && (c_eff > 1 || rows < MB_MAX))
                continue;
            int64_t cols = ppb * nr < n ? ppb * nr : n;
            double total = (double)m * (double)n * (double)k / 16.0 +
                           0.4 * ((double)r_eff * (double)n * (double)k * b_cost + (double)c_eff * (double)m * (double)k) +
                           2000.0 * (double)n_tasks;
            double biggest = (double)used * (double)cols * (double)k / 16.0 +
                             0.4 * ((double)cols * (double)k * b_cost + (double)used * (double)k) + 2000.0;
            double rounds = (double)((n_tasks + width - 1) / width);
            double span = rounds * total / (double)n_tasks;
            if (span < biggest)
                span = biggest;
            double cost = span + 0.1 * total / (double)width;
            if (best_cost < 0 || cost < best_cost) {
                best_cost = cost;
                best_mb = rows;
                best_ppb = ppb;
            }
        }
    }
    if (m == 1 && c->gemv_panels > 1 && panels >= c->gemv_panels)
        best_ppb = (best_ppb + c->gemv_panels - 1) / c->gemv_panels * c->gemv_panels;
    if (best_ppb > panels)
        best_ppb = panels;
    *mb = best_mb;
    *nb = best_ppb * nr;
}

/* ---- the micro-kernel ------------------------------------------------------------ */

typedef struct gemm_ctx {
    const kiln_cg_gemm *p;
    const kiln_cg_gemm_config *c;
    const kiln_cg_vtype *ta, *tb; /* A's and B's element types */
    int mr, nr, nr_cols, kc;
    LLVMTypeRef buf_t;
    V buf; /* [MAX_MR * MAX_NV] vectors */
} gemm_ctx;

static V buf_slot(kiln_cg *cg, gemm_ctx *x, V r, int v)
{
    V idx[2] = {kiln_cg_i64(cg, 0), kiln_cg_iadd(cg, kiln_cg_imul(cg, r, MAX_NV), kiln_cg_i64(cg, v))};
    return LLVMBuildGEP2(cg->u->b, x->buf_t, x->buf, idx, 2, "");
}

/* Rows [i, i + mr) x nv vectors of one panel (or, nv > nr: of consecutive
 * panels, the one-row kernel), over k in [k0, k1). The sums go to the tile
 * buffer. */
/* How the micro-kernel reads A:
 *   UK_ROWS    row-major, rows rs apart (a run-time argument), k steps of 1;
 *   UK_PACKED  packed panels, k steps of mr, prefetched a few KiB ahead;
 *   UK_COPY    the copy of a row tile that the copy-A path makes, rows a
 *              compile-time constant copy_ld() apart: every broadcast is
 *              then an offset from one pointer (with a run-time stride LLVM
 *              keeps a register per row, and the k loop spends about a
 *              dozen integer operations on addresses), and packed B, which
 *              streams from L2 there, is prefetched a few KiB ahead. */
enum { UK_ROWS, UK_PACKED, UK_COPY, UK_KINDS };

/* The copy-A path's K block (twice the target's: the copy sits in L1, B
 * streams from L2) and its copy's row stride (kc + 16 floats, so that rows
 * do not alias in L1). */
static int64_t copy_kc(const kiln_cg_gemm_config *c) { return 2 * (int64_t)c->kc; }
static int64_t copy_ld(const kiln_cg_gemm_config *c) { return copy_kc(c) + 16; }

/* Where the micro-kernel reads A for one K block [k0, k1): row r, column k0
 * + k at base + r * rs + k * ks. */
typedef struct a_access {
    V base;
    int64_t rs, ks;
    int kind;
} a_access;

/* Where it reads B: vector v at k is at base + (v / nr) * panel + (v % nr) * lanes + k * ks. */
typedef struct b_access {
    V base;
    int64_t panel, ks;
} b_access;

/* Where a tile's sums go: the tile buffer (flush() then finishes them), or,
 * for a K block that is not the last and a full panel, straight into C
 * (bias on the first block, else added to C's partial sums). */
typedef struct direct_out {
    V i, j, first; /* NULL i: to the tile buffer */
    bool final;    /* the last K block: apply the epilogue */
} direct_out;

/* A hint that the line at ptr will be read soon (no effect on results). */
static void prefetch_read(kiln_cg *cg, V ptr)
{
    LLVMTypeRef t = cg->u->t_ptr;
    V args[4] = {ptr, LLVMConstInt(cg->u->t_i32, 0, 0), LLVMConstInt(cg->u->t_i32, 3, 0), LLVMConstInt(cg->u->t_i32, 1, 0)};
    kiln_cg_intrinsic(cg, "llvm.prefetch", &t, 1, args, 4);
}

/* How far ahead (bytes) UK_COPY kernels prefetch packed B, and UK_PACKED
 * kernels packed A. Packed A streams from L2 or L3 (a layer's weights are
 * read once per column panel); the hardware prefetchers did not keep up on
 * the AVX-512 host: ResNet-18 at batch 1 took 25.5 ms without, 22.0 with
 * (2 to 6 KiB measured alike; 1 KiB and 12 KiB less), and its AVX2 code on
 * the same host 33.0 -> 27.3 ms. */
#define COPY_B_PREFETCH 2048
#define PACKED_A_PREFETCH 4096

/* The micro-kernels, shared by every GEMM of the module (private, not
 * inlined: one copy per shape instead of one per layer):
 *
 *   void kiln.ukernel.<config>_<mr>x<nv>_<kind>_<target>(ptr a, i64 rs, ptr b, i64 panel, i64 n, ptr out)
 *
 * sums over k in [0, n): A row r at a + r * rs + k * ks (ks = mr for packed
 * A, 1 for row-major A; UK_COPY ignores rs for its constant), B vector v at
 * b + (v / nr) * panel + (v % nr) * lanes + k * NR; writes the mr x nv
 * vector sums to out[r * MAX_NV + v]. */
static V ukernel(kiln_cg *cg, gemm_ctx *x, int mr, int nv, int kind)
{
    const kiln_cg_gemm_config *c = x->c;
    V *slot = &cg->units[cg->unit].ukernels[c->id][kind][mr][nv];
    if (*slot)
        return *slot;
    static const char *const kind_names[UK_KINDS] = {"arows", "apacked", "acopy"};
    char name[96];
    snprintf(name, sizeof name, "kiln.ukernel.%s_%dx%d_%s_%s", c->name, mr, nv * c->lanes, kind_names[kind],
             cg->target->name);
    LLVMTypeRef params[6] = {cg->u->t_ptr, cg->u->t_i64, cg->u->t_ptr, cg->u->t_i64, cg->u->t_i64, cg->u->t_ptr};
    LLVMTypeRef ft = LLVMFunctionType(cg->u->t_void, params, 6, 0);
    int8_t *home = &cg->ukernel_home[c->id][kind][mr][nv];
    if (*home) /* another unit has it: one copy per module, not per unit */
        return *slot = kiln_cg_declare_in(cg, cg->unit, name, ft);
    *home = (int8_t)(cg->unit + 1);
    V fn = LLVMAddFunction(cg->u->mod, name, ft);
    kiln_cg_shared_linkage(cg, fn);
    kiln_cg_function_attrs(cg, fn);
    unsigned noinline = LLVMGetEnumAttributeKindForName("noinline", 8);
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(cg->u->ctx, noinline, 0));
    /* the builder moves into the new function and back */
    LLVMBasicBlockRef saved_bb = LLVMGetInsertBlock(cg->u->b);
    const kiln_cg_function saved = cg->f;
    cg->f.fn = fn;
    cg->f.entry = LLVMAppendBasicBlockInContext(cg->u->ctx, fn, "entry");
    LLVMPositionBuilderAtEnd(cg->u->b, cg->f.entry);
    V a = LLVMGetParam(fn, 0), rs = LLVMGetParam(fn, 1), b = LLVMGetParam(fn, 2), panel = LLVMGetParam(fn, 3);
    V n = LLVMGetParam(fn, 4), out = LLVMGetParam(fn, 5);
    /* k_pack consecutive k values per step: A's row r holds them together
     * (packed A: [k / kp][mr][kp]), B's vector v likewise per column */
    const int kp = c->k_pack, a_bytes = x->ta->bytes, b_bytes = x->tb->bytes;
    const LLVMTypeRef acc_t = cg->u->vt[c->acc].vec;
    V acc[MAX_MR][MAX_NV], ap[MAX_MR], bp[MAX_NV];
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++) {
            acc[r][v] = kiln_cg_alloca(cg, acc_t, "acc");
            LLVMBuildStore(cg->u->b, LLVMConstNull(acc_t), acc[r][v]);
        }
    for (int r = 0; r < mr; r++)
        ap[r] = kind == UK_PACKED ? kiln_cg_gep_t(cg, x->ta, a, kiln_cg_i64(cg, (int64_t)r * kp))
                : kind == UK_COPY ? kiln_cg_gep_t(cg, x->ta, a, kiln_cg_i64(cg, r * copy_ld(c)))
                                  : kiln_cg_gep_t(cg, x->ta, a, kiln_cg_imul(cg, rs, r));
    for (int v = 0; v < nv; v++)
        bp[v] = kiln_cg_gep_t(cg, x->tb, b, kiln_cg_iadd(cg, v >= x->nr ? kiln_cg_imul(cg, panel, v / x->nr) : kiln_cg_i64(cg, 0),
                                                   kiln_cg_i64(cg, (int64_t)(v % x->nr) * c->lanes * kp)));
    kiln_cg_loop l;
    V k = kiln_cg_for_begin(cg, &l, kiln_cg_i64(cg, 0), n, kiln_cg_i64(cg, 1)); /* k steps of kp values */
    V bv[MAX_NV];
    V bo = kiln_cg_imul(cg, k, (int64_t)x->nr_cols * kp), ao = kiln_cg_imul(cg, k, kind == UK_PACKED ? (int64_t)x->mr * kp : kp);
    if (kind == UK_PACKED) /* one line per k step covers the mr x kp elements it reads */
        prefetch_read(cg, kiln_cg_gep_t(cg, x->ta, ap[0], kiln_cg_iadd(cg, ao, kiln_cg_i64(cg, PACKED_A_PREFETCH / a_bytes))));
    if (kind == UK_COPY) /* one line per 64 bytes of the k step's B */
        for (int64_t off = 0; off < (int64_t)nv * c->lanes * kp * b_bytes; off += 64)
            prefetch_read(cg,
                          kiln_cg_gep_t(cg, x->tb, bp[0], kiln_cg_iadd(cg, bo, kiln_cg_i64(cg, (COPY_B_PREFETCH + off) / b_bytes))));
    for (int v = 0; v < nv; v++)
        bv[v] = c->load_b(cg, c, bp[v], bo);
    for (int r = 0; r < mr; r++) {
        V av = c->load_a(cg, c, ap[r], ao);
        for (int v = 0; v < nv; v++) {
            V cur = LLVMBuildLoad2(cg->u->b, acc_t, acc[r][v], "");
            LLVMBuildStore(cg->u->b, c->madd(cg, c, av, bv[v], cur), acc[r][v]);
        }
    }
    l.runtime_unroll = true; /* the hot loop: LLVM unrolls it by 2-4 */
    kiln_cg_for_end(cg, &l);
    LLVMTypeRef buf_t = LLVMArrayType2(acc_t, (uint64_t)MAX_MR * MAX_NV);
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++) {
            V idx[2] = {kiln_cg_i64(cg, 0), kiln_cg_i64(cg, r * MAX_NV + v)};
            LLVMBuildStore(cg->u->b, LLVMBuildLoad2(cg->u->b, acc_t, acc[r][v], ""),
                           LLVMBuildGEP2(cg->u->b, buf_t, out, idx, 2, ""));
        }
    LLVMBuildRetVoid(cg->u->b);
    kiln_cg_unit_count(cg, fn);
    cg->f = saved;
    LLVMPositionBuilderAtEnd(cg->u->b, saved_bb);
    *slot = fn;
    return fn;
}

/* The value of C's row `row` (at crow), columns col .. col + lanes (mask:
 * the valid ones; NULL all) from one vector of sums in the tile buffer (at
 * slot), for a K block that is the first or not (first: i1) and the last
 * or not (final); offs: the epilogue's row offsets when it applies.
 *
 * f32: the first block starts from the bias, later ones from C's partial
 * sums; the last applies the epilogue.
 * int8: the sums are int32 and stay exact across K blocks: between blocks
 * C's memory holds them as int32 bits (its own f32 values are written only
 * by the last block, and no one reads C before the GEMM ends). The last
 * block subtracts the zero point's term za * colsum(w) (q_comp), converts,
 * multiplies by the channel's sa * sw (q_scale) and adds the bias, as
 * ir/quant.h's kiln_quant_output does, then applies the epilogue. */
static void store_sums(kiln_cg *cg, gemm_ctx *x, V slot, V crow, V row, V col, V mask, V first, bool final,
                       const V *offs)
{
    const kiln_cg_gemm *p = x->p;
    LLVMBuilderRef b = cg->u->b;
    const bool first_always = LLVMIsConstant(first) && LLVMConstIntGetZExtValue(first);
    if (x->c->acc == KILN_I32) {
        const kiln_cg_vtype *ti = kiln_cg_vtype_of(cg, KILN_I32);
        V sum = LLVMBuildLoad2(b, ti->vec, slot, "");
        if (!first_always)
            sum = LLVMBuildAdd(b, sum,
                               LLVMBuildSelect(b, first, LLVMConstNull(ti->vec), kiln_cg_vload_t(cg, ti, crow, col, mask, 0.0), ""),
                               "");
        if (!final) {
            kiln_cg_vstore_t(cg, ti, sum, crow, col, mask);
            return;
        }
        V comp, scale, bias;
        if (p->bias_per_row) {
            comp = kiln_cg_splat(cg, kiln_cg_load_t(cg, ti, p->q_comp, row));
            scale = kiln_cg_splat(cg, kiln_cg_load(cg, p->q_scale, row));
            bias = kiln_cg_splat(cg, kiln_cg_load(cg, p->bias, row));
        } else {
            comp = kiln_cg_vload_t(cg, ti, p->q_comp, col, mask, 0.0);
            scale = kiln_cg_vload(cg, p->q_scale, col, mask, 0.0);
            bias = kiln_cg_vload(cg, p->bias, col, mask, 0.0);
        }
        sum = LLVMBuildSub(b, sum, comp, ""); /* wraps like the hardware: exact when the result fits (ir/quant.h) */
        V val = LLVMBuildFAdd(b, LLVMBuildFMul(b, LLVMBuildSIToFP(b, sum, cg->u->t_vf, ""), scale, ""), bias, "");
        if (offs)
            val = kiln_cg_epi_apply(cg, p->epi, val, offs, col, mask);
        kiln_cg_vstore(cg, val, crow, col, mask);
        return;
    }
    V init = LLVMConstNull(cg->u->t_vf);
    if (p->bias)
        init = p->bias_per_row ? kiln_cg_splat(cg, kiln_cg_load(cg, p->bias, row)) : kiln_cg_vload(cg, p->bias, col, mask, 0.0);
    if (!first_always)
        init = LLVMBuildSelect(b, first, init, kiln_cg_vload(cg, crow, col, mask, 0.0), "");
    V val = LLVMBuildFAdd(b, init, LLVMBuildLoad2(b, cg->u->t_vf, slot, ""), "");
    if (offs)
        val = kiln_cg_epi_apply(cg, p->epi, val, offs, col, mask);
    kiln_cg_vstore(cg, val, crow, col, mask);
}

static void tile(kiln_cg *cg, gemm_ctx *x, a_access A, int mr, b_access B, int nv, V k0, V k1, direct_out out)
{
    V fn = ukernel(cg, x, mr, nv, A.kind);
    V steps = LLVMBuildSub(cg->u->b, k1, k0, ""); /* k_pack values per step, the last group zero-padded */
    if (x->c->k_pack > 1)
        steps = kiln_cg_udiv(cg, kiln_cg_iadd(cg, steps, kiln_cg_i64(cg, x->c->k_pack - 1)), x->c->k_pack);
    V args[6] = {A.base, kiln_cg_i64(cg, A.rs), kiln_cg_gep_t(cg, x->tb, B.base, kiln_cg_imul(cg, k0, B.ks)),
                 kiln_cg_i64(cg, B.panel), steps, x->buf};
    LLVMBuildCall2(cg->u->b, LLVMGlobalGetValueType(fn), fn, args, 6, "");
    if (!out.i)
        return;
    V acc[MAX_MR][MAX_NV];
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++)
            acc[r][v] = buf_slot(cg, x, kiln_cg_i64(cg, r), v);
    const kiln_cg_gemm *p = x->p;
    const bool epi = out.final && p->epi && p->epi->n > 0;
    for (int r = 0; r < mr; r++) {
        V row = kiln_cg_iadd(cg, out.i, kiln_cg_i64(cg, r));
        V crow = kiln_cg_gep(cg, p->c, kiln_cg_imul(cg, row, p->ldc));
        V offs[KILN_CG_MAX_EPI];
        if (epi)
            kiln_cg_epi_row(cg, p->epi, kiln_cg_iadd(cg, p->epi_row0, row), offs);
        for (int v = 0; v < nv; v++) {
            V col = kiln_cg_iadd(cg, out.j, kiln_cg_i64(cg, (int64_t)v * x->c->lanes));
            store_sums(cg, x, acc[r][v], crow, row, col, NULL, out.first, out.final, epi ? offs : NULL);
        }
    }
}

/* Packed B (the weights) from the panel of column j. */
static b_access b_packed_at(kiln_cg *cg, gemm_ctx *x, V j)
{
    const kiln_cg_gemm *p = x->p;
    V panel = kiln_cg_udiv(cg, j, x->nr_cols);
    const int64_t panel_elems = kiln_cg_gemm_kpad(x->c, p->k) * x->nr_cols;
    return (b_access){kiln_cg_gep_t(cg, x->tb, p->b, kiln_cg_imul(cg, panel, panel_elems)), panel_elems, x->nr_cols};
}

/* f32 to bf16 bits (i16, scalar or vector), rounded to nearest even: the
 * f32's bits plus 0x7fff plus the lowest bit kept, the top half taken; a
 * NaN keeps its top half with the quiet bit set (the sum could carry it
 * into an infinity). Integer code, the same on every target (LLVM's own
 * fptrunc to bfloat is a library call without AVX512-BF16). */
static V bf16_bits(kiln_cg *cg, V f)
{
    LLVMBuilderRef b = cg->u->b;
    LLVMTypeRef it = kiln_cg_int_type_like(cg, f), t = LLVMTypeOf(f);
    LLVMTypeRef i16 = LLVMInt16TypeInContext(cg->u->ctx);
    LLVMTypeRef ht = LLVMGetTypeKind(t) == LLVMVectorTypeKind ? LLVMVectorType(i16, LLVMGetVectorSize(t)) : i16;
    V bits = LLVMBuildBitCast(b, f, it, "");
    V odd = LLVMBuildAnd(b, LLVMBuildLShr(b, bits, kiln_cg_iconst_like(cg, f, 16), ""), kiln_cg_iconst_like(cg, f, 1), "");
    V rounded = LLVMBuildAdd(b, bits, LLVMBuildAdd(b, odd, kiln_cg_iconst_like(cg, f, 0x7fff), ""), "");
    V nan = LLVMBuildOr(b, bits, kiln_cg_iconst_like(cg, f, 0x400000), "");
    V pick = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealUNO, f, f, ""), nan, rounded, "");
    return LLVMBuildTrunc(b, LLVMBuildLShr(b, pick, kiln_cg_iconst_like(cg, f, 16), ""), ht, "bf16");
}

/* f32 activations (scalar or vector) to u8 with the GEMM's scale and zero
 * point: the steps of ir/quant.h's kiln_quant_act_q, one for one, so that
 * the interpreter gets the same bytes: x * (1 / sa) (one f32 multiply),
 * clamped to [-za, 255 - za] by compare and select (NaN to -za), rounded
 * to nearest even by adding and subtracting 1.5 * 2^23 (exact for |v| <=
 * 2^22, and the same on every target), then + za. */
static V quant_u8(kiln_cg *cg, const kiln_cg_gemm *p, V f)
{
    LLVMBuilderRef b = cg->u->b;
    LLVMTypeRef t = LLVMTypeOf(f);
    const bool vec = LLVMGetTypeKind(t) == LLVMVectorTypeKind;
    LLVMTypeRef i8 = LLVMInt8TypeInContext(cg->u->ctx);
    LLVMTypeRef bt = vec ? LLVMVectorType(i8, LLVMGetVectorSize(t)) : i8;
    V lo = kiln_cg_fconst(cg, f, (double)(float)-p->a_zero), hi = kiln_cg_fconst(cg, f, (double)(float)(255 - p->a_zero));
    V magic = kiln_cg_fconst(cg, f, 0x1.8p23);
    V v = LLVMBuildFMul(b, f, kiln_cg_fconst(cg, f, (double)p->a_inv_scale), "");
    v = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOGT, v, lo, ""), v, lo, "");
    v = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOLT, v, hi, ""), v, hi, "");
    v = LLVMBuildFSub(b, LLVMBuildFAdd(b, v, magic, ""), magic, "");
    V q = LLVMBuildAdd(b, LLVMBuildFPToSI(b, v, kiln_cg_int_type_like(cg, f), ""), kiln_cg_iconst_like(cg, f, p->a_zero), "");
    return LLVMBuildTrunc(b, q, bt, "u8");
}

/* Converts rows [0, k1 - k0) of the f32 panel buffer sbuf ([kc + 1][NR])
 * to the configuration's bf16 pairs in bbuf ([kc / 2][NR][2]): rows 2q and
 * 2q + 1 interleaved lane by lane; an odd last row is paired with zero. */
static void b_to_pairs(kiln_cg *cg, gemm_ctx *x, V sbuf, V bbuf, V k0, V k1)
{
    const int L = x->c->lanes;
    const int64_t NR = x->nr_cols;
    LLVMTypeRef i16 = LLVMInt16TypeInContext(cg->u->ctx);
    V len = LLVMBuildSub(cg->u->b, k1, k0, "");
    V zrow = kiln_cg_gep(cg, sbuf, kiln_cg_imul(cg, len, NR));
    for (int v = 0; v < x->nr; v++)
        kiln_cg_vstore(cg, LLVMConstNull(cg->u->t_vf), zrow, kiln_cg_i64(cg, (int64_t)v * L), NULL);
    V idx[128];
    for (int l = 0; l < L; l++) {
        idx[2 * l] = kiln_cg_i32(cg, l);
        idx[2 * l + 1] = kiln_cg_i32(cg, L + l);
    }
    V inter = LLVMConstVector(idx, (unsigned)(2 * L));
    kiln_cg_loop l;
    V pairs = kiln_cg_udiv(cg, kiln_cg_iadd(cg, len, kiln_cg_i64(cg, 1)), 2);
    V q = kiln_cg_for_begin(cg, &l, kiln_cg_i64(cg, 0), pairs, kiln_cg_i64(cg, 1));
    V lo_row = kiln_cg_gep(cg, sbuf, kiln_cg_imul(cg, q, 2 * NR));
    V dst = kiln_cg_gep_t(cg, x->tb, bbuf, kiln_cg_imul(cg, q, 2 * NR));
    for (int v = 0; v < x->nr; v++) {
        V lo = bf16_bits(cg, kiln_cg_vload(cg, lo_row, kiln_cg_i64(cg, (int64_t)v * L), NULL, 0.0));
        V hi = bf16_bits(cg, kiln_cg_vload(cg, lo_row, kiln_cg_i64(cg, NR + (int64_t)v * L), NULL, 0.0));
        V st = LLVMBuildStore(cg->u->b, LLVMBuildShuffleVector(cg->u->b, lo, hi, inter, "pairs"),
                              kiln_cg_gep_t(cg, x->tb, dst, kiln_cg_i64(cg, (int64_t)v * 2 * L)));
        LLVMSetAlignment(st, 4);
    }
    (void)i16;
    kiln_cg_for_end(cg, &l);
}

/* int8: quantizes rows [0, k1 - k0) of the f32 panel buffer sbuf ([kc +
 * 3][NR]) to u8 (quant_u8: the layer's input quantization) in the
 * configuration's quads in bbuf ([kc / 4][NR][4]): rows 4q .. 4q + 3
 * interleaved lane by lane. The rows past the block up to a whole quad
 * are quantized zeros (their filter weights are zero: any value would do,
 * but a defined one keeps the results reproducible). */
static void b_to_quads(kiln_cg *cg, gemm_ctx *x, V sbuf, V bbuf, V k0, V k1)
{
    const int L = x->c->lanes;
    const int64_t NR = x->nr_cols;
    LLVMBuilderRef b = cg->u->b;
    V len = LLVMBuildSub(b, k1, k0, "");
    for (int z = 0; z < 3; z++) {
        V zrow = kiln_cg_gep(cg, sbuf, kiln_cg_imul(cg, kiln_cg_iadd(cg, len, kiln_cg_i64(cg, z)), NR));
        for (int v = 0; v < x->nr; v++)
            kiln_cg_vstore(cg, LLVMConstNull(cg->u->t_vf), zrow, kiln_cg_i64(cg, (int64_t)v * L), NULL);
    }
    /* two rounds of interleaving: bytes of rows (0, 1) and (2, 3), then
     * those pairs as 16-bit units */
    V idx[128];
    for (int l = 0; l < L; l++) {
        idx[2 * l] = kiln_cg_i32(cg, l);
        idx[2 * l + 1] = kiln_cg_i32(cg, L + l);
    }
    V inter8 = LLVMConstVector(idx, (unsigned)(2 * L));
    LLVMTypeRef v16 = LLVMVectorType(LLVMInt16TypeInContext(cg->u->ctx), (unsigned)L);
    kiln_cg_loop l;
    V quads = kiln_cg_udiv(cg, kiln_cg_iadd(cg, len, kiln_cg_i64(cg, 3)), 4);
    V q = kiln_cg_for_begin(cg, &l, kiln_cg_i64(cg, 0), quads, kiln_cg_i64(cg, 1));
    V row0 = kiln_cg_gep(cg, sbuf, kiln_cg_imul(cg, q, 4 * NR));
    V dst = kiln_cg_gep_t(cg, x->tb, bbuf, kiln_cg_imul(cg, q, 4 * NR));
    for (int v = 0; v < x->nr; v++) {
        V r[4];
        for (int i = 0; i < 4; i++)
            r[i] = quant_u8(cg, x->p, kiln_cg_vload(cg, row0, kiln_cg_i64(cg, i * NR + (int64_t)v * L), NULL, 0.0));
        V p01 = LLVMBuildBitCast(b, LLVMBuildShuffleVector(b, r[0], r[1], inter8, ""), v16, "");
        V p23 = LLVMBuildBitCast(b, LLVMBuildShuffleVector(b, r[2], r[3], inter8, ""), v16, "");
        V st = LLVMBuildStore(b, LLVMBuildShuffleVector(b, p01, p23, inter8, "quads"),
                              kiln_cg_gep_t(cg, x->tb, dst, kiln_cg_i64(cg, (int64_t)v * 4 * L)));
        LLVMSetAlignment(st, 1);
    }
    kiln_cg_for_end(cg, &l);
}

/* An f32 panel in sbuf to the configuration's B type in bbuf. */
static void b_convert(kiln_cg *cg, gemm_ctx *x, V sbuf, V bbuf, V k0, V k1)
{
    if (x->c->k_pack == 4)
        b_to_quads(cg, x, sbuf, bbuf, k0, k1);
    else
        b_to_pairs(cg, x, sbuf, bbuf, k0, k1);
}

/* Copies the kc x NR slice of a row-major B at column j (ncols valid) into
 * the contiguous panel buffer, zero beyond ncols: the micro-kernel then reads
 * one stream, and kc rows far apart in memory (im2col rows, an input's
 * planes) are touched once per panel instead of once per row tile. B is
 * f32 (an activation); a configuration of bf16 B copies it to the f32
 * buffer sbuf first and converts from there into bbuf. */
static b_access b_copy(kiln_cg *cg, gemm_ctx *x, V bbuf, V sbuf, V j, V ncols, V k0, V k1)
{
    const kiln_cg_vtype *tf = kiln_cg_vtype_of(cg, KILN_F32);
    V fbuf = sbuf ? sbuf : bbuf;
    const kiln_cg_gemm *p = x->p;
    V full = LLVMBuildICmp(cg->u->b, LLVMIntSGE, ncols, kiln_cg_i64(cg, x->nr_cols), "");
    if (p->b_padded)
        full = LLVMConstInt(cg->u->t_i1, 1, 0);
    kiln_cg_if f;
    kiln_cg_if_begin(cg, &f, full);
    for (int masked = 0; masked < 2; masked++) {
        if (masked)
            kiln_cg_if_else(cg, &f);
        V masks[MAX_NV] = {NULL};
        for (int v = 0; masked && v < x->nr; v++)
            masks[v] = kiln_cg_tail_mask(cg, LLVMBuildSub(cg->u->b, ncols, kiln_cg_i64(cg, (int64_t)v * x->c->lanes), ""));
        kiln_cg_loop l;
        V k = kiln_cg_for_begin(cg, &l, k0, k1, kiln_cg_i64(cg, 1));
        V src = kiln_cg_gep_t(cg, tf, p->b, kiln_cg_iadd(cg, kiln_cg_imul(cg, k, p->ldb), j));
        V dst = kiln_cg_gep_t(cg, tf, fbuf, kiln_cg_imul(cg, LLVMBuildSub(cg->u->b, k, k0, ""), x->nr_cols));
        for (int v = 0; v < x->nr; v++) {
            V idx = kiln_cg_i64(cg, (int64_t)v * x->c->lanes);
            kiln_cg_vstore_t(cg, tf, kiln_cg_vload_t(cg, tf, src, idx, masks[v], 0.0), dst, idx, NULL);
        }
        kiln_cg_for_end(cg, &l);
    }
    kiln_cg_if_end(cg, &f);
    if (sbuf)
        b_convert(cg, x, sbuf, bbuf, k0, k1);
    return (b_access){kiln_cg_gep_t(cg, x->tb, bbuf, LLVMBuildNeg(cg->u->b, kiln_cg_imul(cg, k0, x->nr_cols), "")), 0,
                      x->nr_cols};
}

/* A as it is in memory for the row tile at i and the K block [k0, k1).
 * Packed A is K-block-major (kiln_cg_pack_a): the block's panels follow one
 * another, kcb = k1 - k0 steps of mr floats each, so consecutive row tiles
 * read one stream. */
static a_access a_direct(kiln_cg *cg, gemm_ctx *x, V i, V k0, V k1)
{
    const kiln_cg_gemm *p = x->p;
    if (p->a_packed) { /* i is a multiple of mr */
        V row = p->a_row0 ? kiln_cg_iadd(cg, p->a_row0, i) : i;
        V kcb = LLVMBuildSub(cg->u->b, k1, k0, ""); /* the block's length, in whole k_pack groups */
        if (x->c->k_pack > 1)
            kcb = kiln_cg_imul(cg, kiln_cg_udiv(cg, kiln_cg_iadd(cg, kcb, kiln_cg_i64(cg, x->c->k_pack - 1)), x->c->k_pack),
                               x->c->k_pack);
        V at = kiln_cg_iadd(cg, kiln_cg_imul(cg, k0, p->a_rows), LLVMBuildMul(cg->u->b, row, kcb, ""));
        return (a_access){kiln_cg_gep_t(cg, x->ta, p->a, at), 1, x->mr, UK_PACKED};
    }
    return (a_access){kiln_cg_gep(cg, p->a, kiln_cg_iadd(cg, kiln_cg_imul(cg, i, p->lda), k0)), p->lda, 1, UK_ROWS};
}

/* Stores rows [i, i + mr) x nv vectors from column j (ncols of them valid)
 * from the tile buffer: + bias (first K block) or + C (later blocks), then
 * the epilogue (final: the last K block). */
static void flush_rows(kiln_cg *cg, gemm_ctx *x, V i, V mr, V j, V ncols, int nv, V first, bool final, bool masked)
{
    const kiln_cg_gemm *p = x->p;
    const bool epi = final && p->epi && p->epi->n > 0;
    kiln_cg_loop l;
    V r = kiln_cg_for_begin(cg, &l, kiln_cg_i64(cg, 0), mr, kiln_cg_i64(cg, 1));
    V row = kiln_cg_iadd(cg, i, r);
    V crow = kiln_cg_gep(cg, p->c, kiln_cg_imul(cg, row, p->ldc));
    V offs[KILN_CG_MAX_EPI];
    if (epi)
        kiln_cg_epi_row(cg, p->epi, kiln_cg_iadd(cg, p->epi_row0, row), offs);
    for (int v = 0; v < nv; v++) {
        const int64_t lanes = x->c->lanes;
        V col = kiln_cg_iadd(cg, j, kiln_cg_i64(cg, (int64_t)v * lanes));
        V mask = masked ? kiln_cg_tail_mask(cg, LLVMBuildSub(cg->u->b, ncols, kiln_cg_i64(cg, (int64_t)v * lanes), "")) : NULL;
        store_sums(cg, x, buf_slot(cg, x, r, v), crow, row, col, mask, first, final, epi ? offs : NULL);
    }
    kiln_cg_for_end(cg, &l);
}

static void flush(kiln_cg *cg, gemm_ctx *x, V i, V mr, V j, V ncols, int nv, V first, V last)
{
    kiln_cg_if full, fin;
    kiln_cg_if_begin(cg, &full, LLVMBuildICmp(cg->u->b, LLVMIntSGE, ncols, kiln_cg_i64(cg, (int64_t)nv * x->c->lanes), ""));
    for (int masked = 0; masked < 2; masked++) {
        if (masked)
            kiln_cg_if_else(cg, &full);
        if (LLVMIsConstant(last) && LLVMConstIntGetZExtValue(last)) {
            flush_rows(cg, x, i, mr, j, ncols, nv, first, true, masked);
        } else {
            kiln_cg_if_begin(cg, &fin, last);
            flush_rows(cg, x, i, mr, j, ncols, nv, first, true, masked);
            kiln_cg_if_else(cg, &fin);
            flush_rows(cg, x, i, mr, j, ncols, nv, first, false, masked);
            kiln_cg_if_end(cg, &fin);
        }
    }
    kiln_cg_if_end(cg, &full);
}

/* One row tile (rows [i, i + mr), A read through A) times one panel B: a
 * switch over the row count picks the variant. */
static void tile_switch(kiln_cg *cg, gemm_ctx *x, V mr, a_access A, b_access B, V ncols, V k0, V k1, direct_out out)
{
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(cg->u->ctx, cg->f.fn, "tile.done");
    LLVMValueRef sw = LLVMBuildSwitch(cg->u->b, mr, done, (unsigned)x->mr);
    for (int t = 1; t <= x->mr; t++) {
        LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(cg->u->ctx, cg->f.fn, "tile");
        LLVMAddCase(sw, LLVMConstInt(cg->u->t_i64, (unsigned long long)t, 0), bb);
        LLVMPositionBuilderAtEnd(cg->u->b, bb);
        if (x->nr > 1 && !out.i) { /* a last panel of one vector's columns or fewer: half the work */
            kiln_cg_if f;
            kiln_cg_if_begin(cg, &f, LLVMBuildICmp(cg->u->b, LLVMIntSLE, ncols, kiln_cg_i64(cg, x->c->lanes), ""));
            tile(cg, x, A, t, B, 1, k0, k1, out);
            kiln_cg_if_else(cg, &f);
            tile(cg, x, A, t, B, x->nr, k0, k1, out);
            kiln_cg_if_end(cg, &f);
        } else {
            tile(cg, x, A, t, B, x->nr, k0, k1, out);
        }
        LLVMBuildBr(cg->u->b, done);
    }
    LLVMPositionBuilderAtEnd(cg->u->b, done);
}

/* A whole tile (mr rows, a full panel) straight to C with the epilogue. */
static void tile_full_final(kiln_cg *cg, gemm_ctx *x, V i, a_access A, b_access B, V j, V k0, V k1, V first)
{
    tile(cg, x, A, x->mr, B, x->nr, k0, k1, (direct_out){i, j, first, true});
}

static void tile_panel(kiln_cg *cg, gemm_ctx *x, V i, V mr, a_access A, b_access B, V j, V ncols, V k0, V k1,
                       V first, V last)
{
    /* C's tile is read (later K blocks) and written after the sums: ask for
     * its lines now, so that the misses overlap the micro-kernel (measured:
     * 5% on a 256 x 4096 x 4096 dense layer, whose C does not fit in L2). */
    V last_row = LLVMBuildSub(cg->u->b, mr, kiln_cg_i64(cg, 1), "");
    for (int r = 0; r < x->mr; r++) {
        V row = kiln_cg_iadd(cg, i, kiln_cg_smin(cg, kiln_cg_i64(cg, r), last_row));
        kiln_cg_prefetch_write(cg, kiln_cg_gep(cg, x->p->c, kiln_cg_iadd(cg, kiln_cg_imul(cg, row, x->p->ldc), j)));
    }
    V full = LLVMBuildICmp(cg->u->b, LLVMIntSGE, ncols, kiln_cg_i64(cg, x->nr_cols), "");
    V whole = LLVMBuildAnd(cg->u->b, full, LLVMBuildICmp(cg->u->b, LLVMIntEQ, mr, kiln_cg_i64(cg, x->mr), ""), "whole");
    kiln_cg_if f, g;
    const bool one_block = LLVMIsConstant(last) && LLVMConstIntGetZExtValue(last);
    if (!one_block) { /* earlier K blocks of full panels: partial sums to C from registers */
        kiln_cg_if_begin(cg, &g, LLVMBuildAnd(cg->u->b, LLVMBuildNot(cg->u->b, last, ""), full, ""));
        tile_switch(cg, x, mr, A, B, ncols, k0, k1, (direct_out){i, j, first, false});
        kiln_cg_if_else(cg, &g);
    }
    kiln_cg_if_begin(cg, &f, whole);
    tile_full_final(cg, x, i, A, B, j, k0, k1, first);
    kiln_cg_if_else(cg, &f);
    tile_switch(cg, x, mr, A, B, ncols, k0, k1, (direct_out){0});
    flush(cg, x, i, mr, j, ncols, x->nr, first, last);
    kiln_cg_if_end(cg, &f);
    if (!one_block)
        kiln_cg_if_end(cg, &g);
}

/* The K blocks of x.kc: begins the loop (when there is more than one block)
 * and sets k0, k1 and the first / last flags (constants for one block). */
typedef struct k_blocks {
    kiln_cg_loop l;
    bool blocked;
    V k0, k1, first, last;
} k_blocks;

static void k_blocks_begin(kiln_cg *cg, const gemm_ctx *x, k_blocks *kb)
{
    const kiln_cg_gemm *p = x->p;
    kb->k0 = kiln_cg_i64(cg, 0);
    kb->k1 = kiln_cg_i64(cg, p->k);
    kb->first = kb->last = LLVMConstInt(cg->u->t_i1, 1, 0);
    kb->blocked = p->k > x->kc;
    if (kb->blocked) {
        kb->k0 = kiln_cg_for_begin(cg, &kb->l, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, p->k), kiln_cg_i64(cg, x->kc));
        kb->k1 = kiln_cg_smin(cg, kiln_cg_iadd(cg, kb->k0, kiln_cg_i64(cg, x->kc)), kiln_cg_i64(cg, p->k));
        kb->first = LLVMBuildICmp(cg->u->b, LLVMIntEQ, kb->k0, kiln_cg_i64(cg, 0), "first");
        kb->last = LLVMBuildICmp(cg->u->b, LLVMIntEQ, kb->k1, kiln_cg_i64(cg, p->k), "last");
    }
}

static void k_blocks_end(kiln_cg *cg, k_blocks *kb)
{
    if (kb->blocked)
        kiln_cg_for_end(cg, &kb->l);
}

/* The general loop nest: K blocks outer, then (one row: wide tiles over
 * whole groups of panels first) panels, then row tiles. */
static void gemm_panels(kiln_cg *cg, gemm_ctx *x)
{
    const kiln_cg_gemm *p = x->p;
    int wide = x->c->gemv_panels * x->nr;
    if (wide > MAX_NV)
        wide = x->c->gemv_panels > 1 ? (MAX_NV / x->nr) * x->nr : x->nr;
    k_blocks kb;
    k_blocks_begin(cg, x, &kb);
    V k0 = kb.k0, k1 = kb.k1, first = kb.first, last = kb.last;
    /* One row: wide tiles over whole groups of panels first. */
    V j_start = p->n0;
    if (wide > x->nr && p->b_packed && !p->pack_b) {
        const int64_t w = (int64_t)wide * x->c->lanes;
        V span = LLVMBuildSub(cg->u->b, p->n1, p->n0, "");
        V wide_end = kiln_cg_iadd(cg, p->n0, kiln_cg_imul(cg, kiln_cg_udiv(cg, span, w), w));
        V one_row = LLVMBuildICmp(cg->u->b, LLVMIntEQ, p->m, kiln_cg_i64(cg, 1), "");
        j_start = LLVMBuildSelect(cg->u->b, one_row, wide_end, p->n0, "");
        kiln_cg_loop wl;
        V j = kiln_cg_for_begin(cg, &wl, p->n0, j_start, kiln_cg_i64(cg, w));
        tile(cg, x, a_direct(cg, x, kiln_cg_i64(cg, 0), k0, k1), 1, b_packed_at(cg, x, j), wide, k0, k1, (direct_out){0});
        flush(cg, x, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, 1), j, kiln_cg_i64(cg, w), wide, first, last);
        kiln_cg_for_end(cg, &wl);
    }
    /* Panels outer: a kc x NR slice of B stays in L1 for every row tile
     * (copied or computed there first when B is not packed). */
    V bbuf = NULL, sbuf = NULL;
    if (!p->b_packed || p->pack_b) {
        bbuf = kiln_cg_alloca(cg, LLVMArrayType2(x->tb->elem, (uint64_t)x->kc * (uint64_t)x->nr_cols), "bpanel");
        LLVMSetAlignment(bbuf, 64);
        if (x->tb->dtype != KILN_F32) { /* B computed or copied in f32 first, then converted (or quantized) */
            sbuf = kiln_cg_alloca(cg, LLVMArrayType2(cg->u->t_f32, (uint64_t)(x->kc + x->c->k_pack - 1) * (uint64_t)x->nr_cols),
                                  "bf32");
            LLVMSetAlignment(sbuf, 64);
        }
    }
    kiln_cg_loop il, jl;
    V j = kiln_cg_for_begin(cg, &jl, j_start, p->n1, kiln_cg_i64(cg, x->nr_cols));
    V ncols = kiln_cg_smin(cg, LLVMBuildSub(cg->u->b, p->n1, j, ""), kiln_cg_i64(cg, x->nr_cols));
    b_access B;
    if (p->pack_b) {
        p->pack_b(cg, p->pack_arg, sbuf ? sbuf : bbuf, j, ncols, k0, k1);
        if (sbuf)
            b_convert(cg, x, sbuf, bbuf, k0, k1);
        B = (b_access){kiln_cg_gep_t(cg, x->tb, bbuf, LLVMBuildNeg(cg->u->b, kiln_cg_imul(cg, k0, x->nr_cols), "")), 0,
                       x->nr_cols};
    } else {
        B = p->b_packed ? b_packed_at(cg, x, j) : b_copy(cg, x, bbuf, sbuf, j, ncols, k0, k1);
    }
    V i = kiln_cg_for_begin(cg, &il, kiln_cg_i64(cg, 0), p->m, kiln_cg_i64(cg, x->mr));
    V mr = kiln_cg_smin(cg, LLVMBuildSub(cg->u->b, p->m, i, ""), kiln_cg_i64(cg, x->mr));
    tile_panel(cg, x, i, mr, a_direct(cg, x, i, k0, k1), B, j, ncols, k0, k1, first, last);
    kiln_cg_for_end(cg, &il);
    kiln_cg_for_end(cg, &jl);
    k_blocks_end(cg, &kb);
}

/* Row-major A whose rows are far apart, packed B (dense layers at large
 * batches). BLIS's loop order with A's row tiles copied:
 *   column blocks: the kc x nb slice of packed B fills half of L2, so every
 *       row tile reads it from L2 instead of L3 or memory (with all of N in
 *       one block, a 4096-column layer re-read a 6 MiB slice per row tile);
 *       the block's C stays in L2 across the K blocks;
 *     K blocks of copy_kc (twice the target's kc: the copy sits in L1 and
 *       B streams from L2, so half the passes over C);
 *       row tiles: the tile's rows of this K block are copied to a
 *           contiguous buffer, copy_ld() floats apart (rows of A are often
 *           4 KiB multiples apart, which alias in L1 and touch a page per
 *           row); UK_COPY micro-kernels read it with constant offsets;
 *         panels of the column block. */
static void gemm_copy_a(kiln_cg *cg, gemm_ctx *x)
{
    const kiln_cg_gemm *p = x->p;
    const kiln_cg_vtype *ta = x->ta;
    int64_t nb = (int64_t)cg->target->caches.l2 / 2 / (x->kc * x->tb->bytes) / x->nr_cols * x->nr_cols;
    if (nb < x->nr_cols)
        nb = x->nr_cols;
    const int64_t lda_c = copy_ld(x->c), vl = ta->lanes;
    LLVMTypeRef abuf_t = LLVMArrayType2(ta->elem, (uint64_t)x->mr * (uint64_t)lda_c);
    V abuf = kiln_cg_alloca(cg, abuf_t, "atile");
    LLVMSetAlignment(abuf, 64);
    kiln_cg_loop cl, il, jl;
    V jc = kiln_cg_for_begin(cg, &cl, p->n0, p->n1, kiln_cg_i64(cg, nb));
    V jc_end = kiln_cg_smin(cg, kiln_cg_iadd(cg, jc, kiln_cg_i64(cg, nb)), p->n1);
    k_blocks kb;
    k_blocks_begin(cg, x, &kb);
    V i = kiln_cg_for_begin(cg, &il, kiln_cg_i64(cg, 0), p->m, kiln_cg_i64(cg, x->mr));
    V mr = kiln_cg_smin(cg, LLVMBuildSub(cg->u->b, p->m, i, ""), kiln_cg_i64(cg, x->mr));
    kiln_cg_loop rl, el;
    V r = kiln_cg_for_begin(cg, &rl, kiln_cg_i64(cg, 0), mr, kiln_cg_i64(cg, 1));
    /* A is f32 (an activation); a bf16 configuration rounds it to bf16 here,
     * once per row tile and K block, and pads an odd block with a zero; an
     * int8 one quantizes it to u8 and pads the block to whole quads */
    const bool to_bf16 = ta->dtype == KILN_BF16, to_u8 = ta->dtype == KILN_U8;
    V src = kiln_cg_gep(cg, p->a, kiln_cg_iadd(cg, kiln_cg_imul(cg, kiln_cg_iadd(cg, i, r), p->lda), kb.k0));
    V dst = kiln_cg_gep_t(cg, ta, abuf, kiln_cg_imul(cg, r, lda_c));
    V len = LLVMBuildSub(cg->u->b, kb.k1, kb.k0, "");
    V vend = kiln_cg_imul(cg, kiln_cg_udiv(cg, len, vl), vl);
    V c = kiln_cg_for_begin(cg, &el, kiln_cg_i64(cg, 0), vend, kiln_cg_i64(cg, vl));
    if (to_u8) {
        LLVMSetAlignment(LLVMBuildStore(cg->u->b, quant_u8(cg, p, kiln_cg_vload(cg, src, c, NULL, 0.0)),
                                        kiln_cg_gep_t(cg, ta, dst, c)),
                         1);
    } else if (to_bf16) {
        V st = LLVMBuildStore(cg->u->b, bf16_bits(cg, kiln_cg_vload(cg, src, c, NULL, 0.0)), kiln_cg_gep_t(cg, ta, dst, c));
        LLVMSetAlignment(st, 2);
    } else {
        kiln_cg_vstore_t(cg, ta, kiln_cg_vload_t(cg, ta, src, c, NULL, 0.0), dst, c, NULL);
    }
    kiln_cg_for_end(cg, &el);
    c = kiln_cg_for_begin(cg, &el, vend, len, kiln_cg_i64(cg, 1));
    if (to_u8)
        LLVMSetAlignment(LLVMBuildStore(cg->u->b, quant_u8(cg, p, kiln_cg_load(cg, src, c)), kiln_cg_gep_t(cg, ta, dst, c)), 1);
    else if (to_bf16)
        LLVMSetAlignment(LLVMBuildStore(cg->u->b, bf16_bits(cg, kiln_cg_load(cg, src, c)), kiln_cg_gep_t(cg, ta, dst, c)), 2);
    else
        kiln_cg_store_t(cg, ta, kiln_cg_load_t(cg, ta, src, c), dst, c);
    kiln_cg_for_end(cg, &el);
    if (x->c->k_pack == 2) /* the odd block's pair: (last, 0) */
        LLVMSetAlignment(LLVMBuildStore(cg->u->b, LLVMConstNull(LLVMInt16TypeInContext(cg->u->ctx)),
                                        kiln_cg_gep_t(cg, ta, dst, len)), 2);
    if (x->c->k_pack == 4) /* the last quad's missing bytes: zero (the buffer has 16 bytes of room) */
        LLVMSetAlignment(LLVMBuildStore(cg->u->b, LLVMConstNull(cg->u->t_i32), kiln_cg_gep_t(cg, ta, dst, len)), 1);
    kiln_cg_for_end(cg, &rl);
    a_access A = {abuf, lda_c, 1, UK_COPY};
    V j = kiln_cg_for_begin(cg, &jl, jc, jc_end, kiln_cg_i64(cg, x->nr_cols));
    V ncols = kiln_cg_smin(cg, LLVMBuildSub(cg->u->b, p->n1, j, ""), kiln_cg_i64(cg, x->nr_cols));
    tile_panel(cg, x, i, mr, A, b_packed_at(cg, x, j), j, ncols, kb.k0, kb.k1, kb.first, kb.last);
    kiln_cg_for_end(cg, &jl);
    kiln_cg_for_end(cg, &il);
    k_blocks_end(cg, &kb);
    kiln_cg_for_end(cg, &cl);
}

void kiln_cg_emit_gemm(kiln_cg *cg, const kiln_cg_gemm *p)
{
    const kiln_cg_gemm_config *c = p->cfg ? p->cfg : kiln_cg_gemm_f32(cg);
    gemm_ctx x = {p, c, kiln_cg_vtype_of(cg, c->a), kiln_cg_vtype_of(cg, c->b), c->mr, c->nr, c->nr * c->lanes,
                  p->kc > 0 ? (int)p->kc : c->kc, NULL, NULL};
    x.buf_t = LLVMArrayType2(cg->u->vt[c->acc].vec, (uint64_t)MAX_MR * MAX_NV);
    x.buf = kiln_cg_alloca(cg, x.buf_t, "tile");
    if (p->epi && p->epi->n > 0)
        kiln_cg_epi_begin(cg, (kiln_cg_epilogue *)p->epi);

    /* Copying A's row tiles pays when its rows alias in L1 (a stride of a
     * multiple of 4 KiB) or are far apart, and many panels reuse each copy;
     * one row (batch 1) keeps the general nest and its wide tiles. */
    const bool copy_a = !p->a_packed && p->b_packed && !p->pack_b && p->n_panels_hint >= 4 &&
                        a_rows_far(p->lda) && p->kc <= 0;
    if (!p->a_packed && x.ta->dtype != KILN_F32) {
        /* A row-major activation in a configuration of bf16 A: only the
         * copy path converts it (every row count, one row included) */
        if (!p->b_packed || p->pack_b || p->kc > 0) {
            kiln_cg_fail(cg, KILN_ERR_INTERNAL, "a %s GEMM needs packed B to convert A", c->name);
            return;
        }
        x.kc = (int)copy_kc(c);
        gemm_copy_a(cg, &x);
        return;
    }
    if (!copy_a) {
        gemm_panels(cg, &x);
        return;
    }
    kiln_cg_if one;
    kiln_cg_if_begin(cg, &one, LLVMBuildICmp(cg->u->b, LLVMIntEQ, p->m, kiln_cg_i64(cg, 1), ""));
    gemm_panels(cg, &x);
    kiln_cg_if_else(cg, &one);
    x.kc = (int)copy_kc(c);
    gemm_copy_a(cg, &x);
    kiln_cg_if_end(cg, &one);
}
