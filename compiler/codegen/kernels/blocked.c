/* compiler/codegen/kernels/blocked.c: kernels over the channel-blocked
 * layout nchw<B>c that the layout pass (compiler/passes/layout.c) gives the
 * activations between convolutions. A blocked value [N, C, H, W] is stored
 * as [N][ceil(C / B)][H][W][B], B the target's f32 lanes, so one vector is
 * the B channels of one pixel; lanes past C are zero.
 *
 *   convolution (one group): a direct kernel that keeps a tile of R pixels x
 *       NB channel blocks of the output in registers (the GEMM micro-kernel's
 *       gemm_mr x gemm_nr) and, per input channel, multiplies a broadcast of
 *       each pixel's input by NB weight vectors. The pixels of a tile are
 *       consecutive in the output plane (a tile may span rows), so a 1x1
 *       convolution has no border at all. Weights are packed at compile time
 *       as [output block group][tap][input channel][NB * B]. The input is
 *       blocked or plain (read as blocks of one channel). Tiles with a tap in
 *       the padding take a second copy of the loop that loads from a safe
 *       address and selects 0. Bias, the fused epilogue and the store happen
 *       in registers, one whole vector per pixel and block.
 *   depthwise convolution and the pools: channels in lanes, so every tap is
 *       one vector load (any stride) and one FMA (max, add); R pixels of a
 *       row at a time in the interior, one pixel with clipped tap ranges at
 *       the borders.
 *   global average pooling: a vector sum per (item, block), written plain.
 *   reorder: between layouts (plain and blocked, or two blocks), a scalar
 *       loop over the destination; the layout pass puts them only at the
 *       edges of blocked regions.
 * Where C is not a multiple of B, kernels whose epilogue could turn the
 * zero padding lanes into something else select 0 there before storing. */
#include "compiler/codegen/cg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef LLVMValueRef V;

#define MAX_R 16
#define MAX_NB 4
/* Output pixels per work unit of a convolution (times R). */
#define UNIT_TILES 8
/* Multiply-adds a task should hold at least, when the layer has that many. */
#define TASK_WORK (INT64_C(1) << 18)

static V addc(kiln_cg *cg, V a, int64_t b) { return b == 0 ? a : LLVMBuildAdd(cg->u->b, a, kiln_cg_i64(cg, b), ""); }
static V slt(kiln_cg *cg, V a, int64_t b) { return LLVMBuildICmp(cg->u->b, LLVMIntSLT, a, kiln_cg_i64(cg, b), ""); }
static V sge(kiln_cg *cg, V a, int64_t b) { return LLVMBuildICmp(cg->u->b, LLVMIntSGE, a, kiln_cg_i64(cg, b), ""); }
static V and1(kiln_cg *cg, V a, V b) { return a ? (b ? LLVMBuildAnd(cg->u->b, a, b, "") : a) : b; }

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

static const kiln_type *type_of(const kiln_cg *cg, kiln_id v) { return &kiln_graph_value(cg->g, v)->type; }

static bool is_blocked(const kiln_type *t) { return t->layout == KILN_LAYOUT_NCHWXC; }

/* Channel block of a value as the kernels read it: 1 for plain. */
static int64_t block_of(const kiln_type *t) { return is_blocked(t) ? t->block : 1; }

static const kiln_cg_epilogue *epilogue(kiln_cg *cg) { return cg->f.epi && cg->f.epi->n > 0 ? cg->f.epi : NULL; }

static kiln_id stored_value(kiln_cg *cg, const kiln_node *n)
{
    return cg->f.epi && cg->f.epi->n > 0 ? cg->f.epi->out : n->output;
}

static V total_units(kiln_cg *cg, const kiln_shape *s, int64_t per_item)
{
    return s->batched ? LLVMBuildMul(cg->u->b, kiln_cg_i64(cg, per_item), kiln_cg_batch(cg), "units") : kiln_cg_i64(cg, per_item * s->dims[0]);
}

/* Units per task: at least TASK_WORK multiply-adds each where the layer has
 * that many, and at least the schedule's task count at batch 1. */
static int64_t units_per_task(const kiln_cg *cg, const kiln_node *n, int64_t units, int64_t unit_work)
{
    int64_t t = n->tasks > 0 ? (int64_t)n->tasks : 1;
    int64_t threads = cg->g->sched_threads ? (int64_t)cg->g->sched_threads : t;
    if (t > threads)
        t -= t % threads;
    int64_t even = ceil_div(units, t < units ? t : units);
    int64_t enough = unit_work > 0 ? ceil_div(TASK_WORK, unit_work) : units;
    int64_t per = enough < even ? even : enough;
    if (per > even && t > 1)
        per = even; /* the threads first */
    return per < 1 ? 1 : per;
}

static kiln_cg_count unit_count(const kiln_shape *s, int64_t per_item, int64_t per_task)
{
    return (kiln_cg_count){s->batched ? 0 : per_item * s->dims[0], s->batched ? per_item : 0, per_task, 1, 0};
}

/* Lanes at or past `valid` (a constant < vl) of the last block: the padding. */
static V pad_lanes(kiln_cg *cg, int64_t valid)
{
    V lanes[64];
    for (int l = 0; l < cg->vl; l++)
        lanes[l] = LLVMConstInt(cg->u->t_i1, l >= valid, 0);
    return LLVMConstVector(lanes, (unsigned)cg->vl);
}

/* The epilogue applied to vector v stored at element index idx of a blocked
 * value (every binary member reads the same index of its same-shaped,
 * same-layout operand). */
static V apply_epilogue(kiln_cg *cg, V v, V idx)
{
    const kiln_cg_epilogue *e = epilogue(cg);
    if (!e)
        return v;
    V offs[KILN_CG_MAX_EPI];
    for (int k = 0; k < e->n; k++)
        offs[k] = idx;
    return kiln_cg_epi_apply(cg, e, v, offs, kiln_cg_i64(cg, 0), NULL);
}

/* An i1 vector of vl copies of b. */
static V splat_bool(kiln_cg *cg, V b)
{
    LLVMTypeRef t = LLVMVectorType(cg->u->t_i1, (unsigned)cg->vl);
    V v = LLVMBuildInsertElement(cg->u->b, LLVMGetPoison(t), b, kiln_cg_i32(cg, 0), "");
    V zero[64];
    for (int l = 0; l < cg->vl; l++)
        zero[l] = kiln_cg_i32(cg, 0);
    return LLVMBuildShuffleVector(cg->u->b, v, LLVMGetPoison(t), LLVMConstVector(zero, (unsigned)cg->vl), "");
}

/* 0 in the padding lanes when the last block is partial and `is_last` (i1,
 * or NULL: always the last block). */
static V zero_padding(kiln_cg *cg, V v, int64_t C, V is_last)
{
    int64_t tail = C % cg->vl;
    if (tail == 0)
        return v;
    V pad = pad_lanes(cg, tail);
    if (is_last)
        pad = LLVMBuildAnd(cg->u->b, pad, splat_bool(cg, is_last), "");
    return LLVMBuildSelect(cg->u->b, pad, LLVMConstNull(cg->u->t_vf), v, "");
}

static void emit_accumulators(kiln_cg *cg, V *acc, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        acc[i] = kiln_cg_alloca(cg, cg->u->t_vf, name);
}

static V get(kiln_cg *cg, V slot) { return LLVMBuildLoad2(cg->u->b, cg->u->t_vf, slot, ""); }
static void put(kiln_cg *cg, V slot, V v) { LLVMBuildStore(cg->u->b, v, slot); }

/* ---- convolution with one group ----------------------------------------------------- */

typedef struct conv_geom {
    int64_t C, H, W, bi, CBi;     /* input: channels, size, block (1: plain), blocks */
    int64_t F, OH, OW, P, OCB;    /* output: channels, size, pixels, blocks */
    int64_t kh, kw, sh, sw, pt, pl, dh, dw;
    int64_t NB, OCG, NBt, R;      /* blocks per group, groups, blocks of the last group, tile pixels */
    int64_t group_floats;         /* packed weights per group */
    bool check;                   /* some tap can fall in the padding */
} conv_geom;

typedef struct conv_ctx {
    const conv_geom *g;
    V x_item, y, w_group, bias; /* input of this item, output base, packed weights of the group, bias or NULL */
    V item, ocg;                /* i64 */
    int64_t bias_off;
} conv_ctx;

/* One tile: rc pixels from p (i64) times nb blocks. checked: taps may be in
 * the padding. */
static void conv_tile(kiln_cg *cg, const conv_ctx *c, V p, int rc, int nb, bool checked, V *acc)
{
    const conv_geom *g = c->g;
    const int64_t B = cg->vl;
    /* bias (or zero) into the accumulators */
    for (int j = 0; j < nb; j++) {
        V init = LLVMConstNull(cg->u->t_vf);
        if (c->bias)
            init = kiln_cg_vload(cg, c->bias, kiln_cg_imul(cg, kiln_cg_iadd(cg, kiln_cg_imul(cg, c->ocg, g->NB), kiln_cg_i64(cg, j)), B), NULL, 0.0);
        for (int r = 0; r < rc; r++)
            put(cg, acc[r * nb + j], init);
    }
    /* pixel coordinates (a pointwise convolution reads pixel p itself) */
    V iy0[MAX_R], ix0[MAX_R];
    const bool pointwise = g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && !g->check && g->OW == g->W;
    for (int r = 0; r < rc && !pointwise; r++) {
        V pr = addc(cg, p, r);
        V oy = kiln_cg_udiv(cg, pr, g->OW), ox = kiln_cg_urem(cg, pr, g->OW);
        iy0[r] = addc(cg, kiln_cg_imul(cg, oy, g->sh), -g->pt);
        ix0[r] = addc(cg, kiln_cg_imul(cg, ox, g->sw), -g->pl);
    }
    const int64_t taps = g->kh * g->kw;
    kiln_cg_loop lt;
    V t = taps == 1 ? kiln_cg_i64(cg, 0) : kiln_cg_for_begin(cg, &lt, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, taps), kiln_cg_i64(cg, 1));
    V ky = g->kw == 1 ? t : kiln_cg_udiv(cg, t, g->kw), kx = g->kw == 1 ? kiln_cg_i64(cg, 0) : kiln_cg_urem(cg, t, g->kw);
    V ptr[MAX_R], valid[MAX_R];
    /* pointwise: one base pointer, the pixels at constant offsets from it
     * (a pointer per pixel took a register each, and spilled) */
    V pbase = pointwise ? LLVMBuildFreeze(cg->u->b, kiln_cg_gep(cg, c->x_item, kiln_cg_imul(cg, p, g->bi)), "xp") : NULL;
    for (int r = 0; r < rc; r++) {
        if (pointwise) {
            ptr[r] = kiln_cg_gep(cg, pbase, kiln_cg_i64(cg, r * g->bi));
            valid[r] = NULL;
            continue;
        }
        V iy = kiln_cg_iadd(cg, iy0[r], kiln_cg_imul(cg, ky, g->dh)), ix = kiln_cg_iadd(cg, ix0[r], kiln_cg_imul(cg, kx, g->dw));
        V off = kiln_cg_imul(cg, kiln_cg_iadd(cg, kiln_cg_imul(cg, iy, g->W), ix), g->bi);
        valid[r] = NULL;
        if (checked) {
            valid[r] = and1(cg, and1(cg, sge(cg, iy, 0), slt(cg, iy, g->H)), and1(cg, sge(cg, ix, 0), slt(cg, ix, g->W)));
            off = LLVMBuildSelect(cg->u->b, valid[r], off, kiln_cg_i64(cg, 0), "");
        }
        ptr[r] = LLVMBuildFreeze(cg->u->b, kiln_cg_gep(cg, c->x_item, off), "xp");
    }
    const int64_t icp = g->CBi * g->bi; /* packed input channels */
    V wt = kiln_cg_gep(cg, c->w_group, kiln_cg_imul(cg, t, icp * nb * B));
    /* Channels: blocks of bi, and the channels of a block as a loop of one
     * channel per step (unrolled by 2). Written out whole, a block's 16
     * steps let the scheduler hoist all 32 weight loads ahead of the
     * multiply-adds and spill them (MobileNetV2's 1x1 layers at 7x7: 61
     * GFLOP/s, 28 spilled vectors per block). */
    kiln_cg_loop lc, ll;
    V cb = kiln_cg_for_begin(cg, &lc, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, g->CBi), kiln_cg_i64(cg, 1));
    lc.runtime_unroll = g->bi == 1; /* plain input: one channel per iteration */
    V xoff = kiln_cg_imul(cg, cb, g->H * g->W * g->bi);
    V wc = kiln_cg_gep(cg, wt, kiln_cg_imul(cg, cb, g->bi * nb * B));
    V l = g->bi == 1 ? kiln_cg_i64(cg, 0) : kiln_cg_for_begin(cg, &ll, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, g->bi), kiln_cg_i64(cg, 1));
    V a[MAX_R * MAX_NB];
    for (int k = 0; k < rc * nb; k++)
        a[k] = get(cg, acc[k]);
    V wl = kiln_cg_gep(cg, wc, kiln_cg_imul(cg, l, nb * B)), xl = kiln_cg_iadd(cg, xoff, l);
    V wv[MAX_NB];
    for (int j = 0; j < nb; j++)
        wv[j] = kiln_cg_vload(cg, wl, kiln_cg_i64(cg, j * B), NULL, 0.0);
    for (int r = 0; r < rc; r++) {
        V s = kiln_cg_load(cg, ptr[r], xl);
        if (valid[r])
            s = LLVMBuildSelect(cg->u->b, valid[r], s, kiln_cg_f32(cg, 0.0), "");
        V x = kiln_cg_splat(cg, s);
        for (int j = 0; j < nb; j++)
            a[r * nb + j] = kiln_cg_fma(cg, x, wv[j], a[r * nb + j]);
    }
    for (int k = 0; k < rc * nb; k++)
        put(cg, acc[k], a[k]);
    if (g->bi > 1) {
        ll.unroll_count = 2;
        kiln_cg_for_end(cg, &ll);
    }
    kiln_cg_for_end(cg, &lc);
    if (taps != 1)
        kiln_cg_for_end(cg, &lt);
}

/* Epilogue and stores of a tile. last_group: i1, the group holding the last
 * (maybe partial) block, or NULL when nb is the last group's own count. */
static void conv_store(kiln_cg *cg, const conv_ctx *c, V p, int rc, int nb, V *acc, bool is_last_group)
{
    const conv_geom *g = c->g;
    const int64_t B = cg->vl;
    for (int j = 0; j < nb; j++) {
        V ob = kiln_cg_iadd(cg, kiln_cg_imul(cg, c->ocg, g->NB), kiln_cg_i64(cg, j));
        V plane = kiln_cg_imul(cg, kiln_cg_iadd(cg, kiln_cg_imul(cg, c->item, g->OCB), ob), g->P);
        bool maybe_last = is_last_group && j == nb - 1;
        for (int r = 0; r < rc; r++) {
            V idx = kiln_cg_imul(cg, kiln_cg_iadd(cg, plane, addc(cg, p, r)), B);
            V v = apply_epilogue(cg, get(cg, acc[r * nb + j]), idx);
            if (maybe_last && epilogue(cg))
                v = zero_padding(cg, v, g->F, NULL);
            kiln_cg_vstore(cg, v, c->y, idx, NULL);
        }
    }
}

/* Tiles of rc pixels over [p0, p1) (whole tiles only: the caller sizes it). */
static void conv_tiles(kiln_cg *cg, const conv_ctx *c, V p0, V p1, int rc, int nb, bool last_group, V *acc)
{
    const conv_geom *g = c->g;
    kiln_cg_loop lp;
    V p = kiln_cg_for_begin(cg, &lp, p0, p1, kiln_cg_i64(cg, rc));
    if (g->check) {
        /* interior: every pixel's window inside the input */
        V in = NULL;
        for (int r = 0; r < rc; r++) {
            V pr = addc(cg, p, r);
            V oy = kiln_cg_udiv(cg, pr, g->OW), ox = kiln_cg_urem(cg, pr, g->OW);
            V iy = addc(cg, kiln_cg_imul(cg, oy, g->sh), -g->pt), ix = addc(cg, kiln_cg_imul(cg, ox, g->sw), -g->pl);
            in = and1(cg, in, and1(cg, and1(cg, sge(cg, iy, 0), slt(cg, addc(cg, iy, (g->kh - 1) * g->dh), g->H)),
                                   and1(cg, sge(cg, ix, 0), slt(cg, addc(cg, ix, (g->kw - 1) * g->dw), g->W))));
        }
        kiln_cg_if f;
        kiln_cg_if_begin(cg, &f, in);
        conv_tile(cg, c, p, rc, nb, false, acc);
        kiln_cg_if_else(cg, &f);
        conv_tile(cg, c, p, rc, nb, true, acc);
        kiln_cg_if_end(cg, &f);
    } else {
        conv_tile(cg, c, p, rc, nb, false, acc);
    }
    conv_store(cg, c, p, rc, nb, acc, last_group);
    kiln_cg_for_end(cg, &lp);
}

/* The pixels [p0, p1) of one group: whole tiles of R, then (R >= 4) one
 * tile of R / 2 if that many are left, then single pixels. Each tile reads
 * the group's whole weight slice, so a remainder of single pixels costs as
 * much as a whole tile per pixel: a 7x7 map is 3 tiles of 14 and one of 7
 * on AVX-512 instead of 3 and 7 singles (measured: ~15% on MobileNetV2's
 * 1x1 layers at 7x7, Xeon). */
static void conv_group(kiln_cg *cg, const conv_ctx *c, V p0, V p1, int nb, bool last_group, V *acc)
{
    const conv_geom *g = c->g;
    V n = LLVMBuildSub(cg->u->b, p1, p0, "");
    V whole = kiln_cg_iadd(cg, p0, kiln_cg_imul(cg, kiln_cg_udiv(cg, n, g->R), g->R));
    conv_tiles(cg, c, p0, whole, (int)g->R, nb, last_group, acc);
    if (g->R >= 4) {
        const int64_t half = g->R / 2;
        V left = LLVMBuildSub(cg->u->b, p1, whole, "");
        V half_end = LLVMBuildSelect(cg->u->b, LLVMBuildICmp(cg->u->b, LLVMIntSGE, left, kiln_cg_i64(cg, half), ""),
                                     addc(cg, whole, half), whole, "");
        conv_tiles(cg, c, whole, half_end, (int)half, nb, last_group, acc);
        whole = half_end;
    }
    if (g->R > 1)
        conv_tiles(cg, c, whole, p1, 1, nb, last_group, acc);
}

static float *pack_conv_weights(kiln_cg *cg, const float *w, const conv_geom *g, uint64_t *off)
{
    const int64_t B = cg->vl, taps = g->kh * g->kw, icp = g->CBi * g->bi;
    float *dst = kiln_cg_blob_alloc(cg, (size_t)(g->group_floats * g->OCG), off);
    if (!dst)
        return NULL;
    for (int64_t grp = 0; grp < g->OCG; grp++) {
        const int64_t nb = grp == g->OCG - 1 ? g->NBt : g->NB;
        float *gw = dst + grp * g->group_floats;
        for (int64_t t = 0; t < taps; t++)
            for (int64_t ic = 0; ic < icp; ic++)
                for (int64_t j = 0; j < nb; j++)
                    for (int64_t l = 0; l < B; l++) {
                        int64_t f = (grp * g->NB + j) * B + l;
                        float v = 0.0f;
                        if (f < g->F && ic < g->C)
                            v = w[((f * g->C + ic) * g->kh + t / g->kw) * g->kw + t % g->kw];
                        gw[((t * icp + ic) * nb + j) * B + l] = v;
                    }
    }
    return dst;
}

/* A copy of a per-channel vector (the bias) padded with zeros to whole blocks. */
static kiln_status pack_padded(kiln_cg *cg, kiln_id v, int64_t C, uint64_t *off)
{
    size_t count;
    float *src = kiln_cg_param_f32(cg, v, &count);
    if (!src)
        return cg->status;
    float *dst = count == (size_t)C ? kiln_cg_blob_alloc(cg, (size_t)(ceil_div(C, cg->vl) * cg->vl), off) : NULL;
    if (dst)
        for (int64_t i = 0; i < ceil_div(C, cg->vl) * cg->vl; i++)
            dst[i] = i < C ? src[i] : 0.0f;
    free(src);
    if (!dst)
        return cg->status != KILN_OK ? cg->status : kiln_cg_fail(cg, KILN_ERR_INTERNAL, "bias size mismatch");
    return KILN_OK;
}

static void read_window(const kiln_node *n, int64_t *sh, int64_t *sw, int64_t *pt, int64_t *pl, int64_t *dh,
                        int64_t *dw)
{
    const kiln_attr *s = &n->attrs[KILN_ATTR_STRIDE], *p = &n->attrs[KILN_ATTR_PADDING];
    *sh = s->ints[0];
    *sw = s->ints[1];
    *pt = p->ints[0];
    *pl = p->ints[1];
    *dh = *dw = 1;
    if (kiln_node_has(n, KILN_ATTR_DILATION) && n->attrs[KILN_ATTR_DILATION].n >= 2) {
        *dh = n->attrs[KILN_ATTR_DILATION].ints[0];
        *dw = n->attrs[KILN_ATTR_DILATION].ints[1];
    }
}

static kiln_status conv_blocked(kiln_cg *cg, const kiln_node *n, kiln_id wid, kiln_id bid)
{
    const kiln_type *xt = type_of(cg, n->inputs[0]), *yt = type_of(cg, n->output);
    const kiln_shape *xs = &xt->shape, *ys = &yt->shape, *wsh = &type_of(cg, wid)->shape;
    conv_geom g = {0};
    g.C = xs->dims[1];
    g.H = xs->dims[2];
    g.W = xs->dims[3];
    g.bi = block_of(xt);
    g.CBi = ceil_div(g.C, g.bi);
    g.F = ys->dims[1];
    g.OH = ys->dims[2];
    g.OW = ys->dims[3];
    g.P = g.OH * g.OW;
    g.OCB = ceil_div(g.F, cg->vl);
    g.kh = wsh->dims[2];
    g.kw = wsh->dims[3];
    read_window(n, &g.sh, &g.sw, &g.pt, &g.pl, &g.dh, &g.dw);
    g.NB = cg->target->gemm_nr < g.OCB ? cg->target->gemm_nr : g.OCB;
    if (g.NB > MAX_NB)
        g.NB = MAX_NB;
    g.OCG = ceil_div(g.OCB, g.NB);
    g.NBt = g.OCB - (g.OCG - 1) * g.NB;
    g.R = cg->target->gemm_mr < MAX_R ? cg->target->gemm_mr : MAX_R;
    g.group_floats = g.kh * g.kw * g.CBi * g.bi * g.NB * cg->vl;
    g.check = g.pt > 0 || g.pl > 0 || (g.OH - 1) * g.sh + (g.kh - 1) * g.dh >= g.H ||
              (g.OW - 1) * g.sw + (g.kw - 1) * g.dw >= g.W;

    size_t count;
    float *w = kiln_cg_param_f32(cg, wid, &count);
    if (!w)
        return cg->status;
    uint64_t w_off = 0, b_off = 0;
    float *packed = count == (size_t)(g.F * g.C * g.kh * g.kw) ? pack_conv_weights(cg, w, &g, &w_off) : NULL;
    free(w);
    if (!packed)
        return cg->status != KILN_OK ? cg->status : kiln_cg_fail(cg, KILN_ERR_INTERNAL, "weight size mismatch");
    if (bid != KILN_NO_ID && pack_padded(cg, bid, g.F, &b_off) != KILN_OK)
        return cg->status;

    /* Work units: (item, group, run of UNIT_TILES tiles). */
    const int64_t unit_px = UNIT_TILES * g.R, runs = ceil_div(g.P, unit_px);
    const int64_t per_item = g.OCG * runs;
    const int64_t per_task = units_per_task(cg, n, per_item * (xs->batched ? 1 : xs->dims[0]),
                                            unit_px * g.NB * cg->vl * g.kh * g.kw * g.CBi * g.bi);
    char kernel[128], epi[64];
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, kiln_cg_node_dtype(cg, n), KILN_CG_ON_TARGET, (int)g.R, (int)(g.NB * cg->vl), "conv2d_%s%s%s",
                        g.bi == 1 ? "plain_to_" : "", "blocked", kiln_cg_epi_name(epilogue(cg), epi, sizeof epi));
    kiln_cg_task_begin(cg, kernel, n);
    V px = kiln_cg_value_ptr(cg, n->inputs[0]), py = kiln_cg_value_ptr(cg, stored_value(cg, n));
    V pw = kiln_cg_weights_ptr(cg, w_off);
    if (epilogue(cg))
        kiln_cg_epi_begin(cg, cg->f.epi);
    V acc[MAX_R * MAX_NB];
    emit_accumulators(cg, acc, (int)(g.R * g.NB), "acc");
    V lo, hi;
    kiln_cg_task_range(cg, total_units(cg, xs, per_item), per_task, &lo, &hi);
    kiln_cg_loop lu;
    V u = kiln_cg_for_begin(cg, &lu, lo, hi, kiln_cg_i64(cg, 1));
    conv_ctx c = {&g, NULL, py, NULL, bid != KILN_NO_ID ? kiln_cg_weights_ptr(cg, b_off) : NULL, NULL, NULL, 0};
    c.item = kiln_cg_udiv(cg, u, per_item);
    V rest = kiln_cg_urem(cg, u, per_item);
    c.ocg = kiln_cg_udiv(cg, rest, runs);
    V run = kiln_cg_urem(cg, rest, runs);
    c.x_item = kiln_cg_gep(cg, px, kiln_cg_imul(cg, c.item, g.CBi * g.H * g.W * g.bi));
    c.w_group = kiln_cg_gep(cg, pw, kiln_cg_imul(cg, c.ocg, g.group_floats));
    V p0 = kiln_cg_imul(cg, run, unit_px);
    V p1 = kiln_cg_smin(cg, addc(cg, p0, unit_px), kiln_cg_i64(cg, g.P));
    if (g.NBt != g.NB) {
        kiln_cg_if f;
        kiln_cg_if_begin(cg, &f, LLVMBuildICmp(cg->u->b, LLVMIntEQ, c.ocg, kiln_cg_i64(cg, g.OCG - 1), ""));
        conv_group(cg, &c, p0, p1, (int)g.NBt, true, acc);
        kiln_cg_if_else(cg, &f);
        conv_group(cg, &c, p0, p1, (int)g.NB, false, acc);
        kiln_cg_if_end(cg, &f);
    } else if (g.F % cg->vl != 0 && epilogue(cg) && g.OCG > 1) {
        kiln_cg_if f;
        kiln_cg_if_begin(cg, &f, LLVMBuildICmp(cg->u->b, LLVMIntEQ, c.ocg, kiln_cg_i64(cg, g.OCG - 1), ""));
        conv_group(cg, &c, p0, p1, (int)g.NB, true, acc);
        kiln_cg_if_else(cg, &f);
        conv_group(cg, &c, p0, p1, (int)g.NB, false, acc);
        kiln_cg_if_end(cg, &f);
    } else {
        conv_group(cg, &c, p0, p1, (int)g.NB, g.OCG == 1, acc);
    }
    kiln_cg_for_end(cg, &lu);
    kiln_cg_task_end(cg, unit_count(xs, per_item, per_task));
    return cg->status;
}

/* ---- depthwise convolution and pools: channels in lanes ------------------------------- */

typedef enum window_kind { WIN_DEPTHWISE, WIN_MAX, WIN_AVG } window_kind;

typedef struct win_geom {
    window_kind kind;
    int64_t C, CB, H, W, OH, OW, kh, kw, sh, sw, pt, pl, pb, pr, dh, dw;
    int64_t R;
    bool include_pad;
} win_geom;

typedef struct win_ctx {
    const win_geom *g;
    V x_plane, y_row, w_block, bias; /* weights: [kh * kw][B] of this block; bias vector or NULL */
    V oy, ky0, ky1, plane_index;     /* the output row; its valid kernel rows; (item * CB + cb) */
    V is_last;                       /* i1: the last channel block */
} win_ctx;

static V win_combine(kiln_cg *cg, window_kind k, V acc, V x, V w)
{
    if (k == WIN_DEPTHWISE)
        return kiln_cg_fma(cg, w, x, acc);
    if (k == WIN_AVG)
        return LLVMBuildFAdd(cg->u->b, acc, x, "");
    V take = LLVMBuildOr(cg->u->b, LLVMBuildFCmp(cg->u->b, LLVMRealOGT, x, acc, ""), kiln_cg_is_nan(cg, x), "");
    return LLVMBuildSelect(cg->u->b, take, x, acc, "");
}

static V win_init(kiln_cg *cg, const win_ctx *c)
{
    if (c->g->kind == WIN_MAX)
        return kiln_cg_fconst(cg, LLVMGetPoison(cg->u->t_vf), -INFINITY);
    if (c->g->kind == WIN_DEPTHWISE && c->bias)
        return c->bias;
    return LLVMConstNull(cg->u->t_vf);
}

/* Finishes pixel ox (i64) with sum/max v: the average's divisor, the
 * depthwise epilogue, padding lanes, the store. kx0/kx1: the pixel's valid
 * kernel columns. */
static void win_finish(kiln_cg *cg, const win_ctx *c, V ox, V v, V kx0, V kx1)
{
    const win_geom *g = c->g;
    if (g->kind == WIN_AVG) {
        V y0 = addc(cg, kiln_cg_imul(cg, c->oy, g->sh), -g->pt), x0 = addc(cg, kiln_cg_imul(cg, ox, g->sw), -g->pl);
        V cells;
        if (g->include_pad) {
            V y1 = kiln_cg_smin(cg, addc(cg, y0, g->kh), kiln_cg_i64(cg, g->H + g->pb));
            V x1 = kiln_cg_smin(cg, addc(cg, x0, g->kw), kiln_cg_i64(cg, g->W + g->pr));
            cells = LLVMBuildMul(cg->u->b, LLVMBuildSub(cg->u->b, y1, y0, ""), LLVMBuildSub(cg->u->b, x1, x0, ""), "");
        } else {
            cells = LLVMBuildMul(cg->u->b, LLVMBuildSub(cg->u->b, c->ky1, c->ky0, ""), LLVMBuildSub(cg->u->b, kx1, kx0, ""), "");
        }
        V empty = LLVMBuildICmp(cg->u->b, LLVMIntSLE, cells, kiln_cg_i64(cg, 0), "");
        V d = kiln_cg_splat(cg, LLVMBuildSIToFP(cg->u->b, cells, cg->u->t_f32, ""));
        v = LLVMBuildSelect(cg->u->b, empty, LLVMConstNull(cg->u->t_vf), LLVMBuildFDiv(cg->u->b, v, d, ""), "avg");
    }
    V idx = kiln_cg_imul(cg, kiln_cg_iadd(cg, kiln_cg_imul(cg, c->plane_index, g->OH * g->OW), kiln_cg_iadd(cg, kiln_cg_imul(cg, c->oy, g->OW), ox)), cg->vl);
    if (g->kind == WIN_DEPTHWISE && epilogue(cg)) {
        v = apply_epilogue(cg, v, idx);
        v = zero_padding(cg, v, g->C, c->is_last);
    }
    kiln_cg_vstore(cg, v, c->y_row, kiln_cg_imul(cg, ox, cg->vl), NULL);
}

/* rc pixels from ox whose kernel columns are all inside the row. */
static void win_fast(kiln_cg *cg, const win_ctx *c, V ox, int rc)
{
    const win_geom *g = c->g;
    V acc[MAX_R];
    V init = win_init(cg, c);
    emit_accumulators(cg, acc, rc, "wacc");
    for (int r = 0; r < rc; r++)
        put(cg, acc[r], init);
    kiln_cg_loop ly;
    V ky = kiln_cg_for_begin(cg, &ly, c->ky0, c->ky1, kiln_cg_i64(cg, 1));
    V iy = kiln_cg_iadd(cg, addc(cg, kiln_cg_imul(cg, c->oy, g->sh), -g->pt), kiln_cg_imul(cg, ky, g->dh));
    V row = kiln_cg_gep(cg, c->x_plane, kiln_cg_imul(cg, iy, g->W * cg->vl));
    V a[MAX_R];
    for (int r = 0; r < rc; r++)
        a[r] = get(cg, acc[r]);
    for (int64_t kx = 0; kx < g->kw; kx++) {
        V w = g->kind == WIN_DEPTHWISE
                  ? kiln_cg_vload(cg, c->w_block, kiln_cg_imul(cg, addc(cg, kiln_cg_imul(cg, ky, g->kw), kx), cg->vl), NULL, 0.0)
                  : NULL;
        for (int r = 0; r < rc; r++) {
            V ix = addc(cg, kiln_cg_imul(cg, addc(cg, ox, r), g->sw), kx * g->dw - g->pl);
            V x = kiln_cg_vload(cg, row, kiln_cg_imul(cg, ix, cg->vl), NULL, 0.0);
            a[r] = win_combine(cg, g->kind, a[r], x, w);
        }
    }
    for (int r = 0; r < rc; r++)
        put(cg, acc[r], a[r]);
    kiln_cg_for_end(cg, &ly);
    for (int r = 0; r < rc; r++)
        win_finish(cg, c, addc(cg, ox, r), get(cg, acc[r]), kiln_cg_i64(cg, 0), kiln_cg_i64(cg, g->kw));
}

/* One pixel at a border: its kernel columns clipped to the row. */
static void win_border(kiln_cg *cg, const win_ctx *c, V ox)
{
    const win_geom *g = c->g;
    V x0 = addc(cg, kiln_cg_imul(cg, ox, g->sw), -g->pl);
    /* kx in [kx0, kx1): 0 <= x0 + kx * dw < W */
    V kx0 = kiln_cg_i64(cg, 0), kx1 = kiln_cg_i64(cg, g->kw);
    V neg = LLVMBuildSub(cg->u->b, kiln_cg_i64(cg, 0), x0, "");
    kx0 = kiln_cg_smax(cg, kx0, kiln_cg_udiv(cg, kiln_cg_smax(cg, addc(cg, neg, g->dw - 1), kiln_cg_i64(cg, 0)), g->dw));
    V room = LLVMBuildSub(cg->u->b, kiln_cg_i64(cg, g->W - 1), x0, ""); /* kx * dw <= room */
    V hi = LLVMBuildSelect(cg->u->b, slt(cg, room, 0), kiln_cg_i64(cg, 0), addc(cg, kiln_cg_udiv(cg, kiln_cg_smax(cg, room, kiln_cg_i64(cg, 0)), g->dw), 1), "");
    kx1 = kiln_cg_smin(cg, kx1, hi);
    kx1 = kiln_cg_smax(cg, kx1, kx0);
    V acc = kiln_cg_alloca(cg, cg->u->t_vf, "bacc");
    put(cg, acc, win_init(cg, c));
    kiln_cg_loop ly, lx;
    V ky = kiln_cg_for_begin(cg, &ly, c->ky0, c->ky1, kiln_cg_i64(cg, 1));
    V iy = kiln_cg_iadd(cg, addc(cg, kiln_cg_imul(cg, c->oy, g->sh), -g->pt), kiln_cg_imul(cg, ky, g->dh));
    V row = kiln_cg_gep(cg, c->x_plane, kiln_cg_imul(cg, iy, g->W * cg->vl));
    V kx = kiln_cg_for_begin(cg, &lx, kx0, kx1, kiln_cg_i64(cg, 1));
    V ix = kiln_cg_iadd(cg, x0, kiln_cg_imul(cg, kx, g->dw));
    V x = kiln_cg_vload(cg, row, kiln_cg_imul(cg, ix, cg->vl), NULL, 0.0);
    V w = g->kind == WIN_DEPTHWISE
              ? kiln_cg_vload(cg, c->w_block, kiln_cg_imul(cg, kiln_cg_iadd(cg, kiln_cg_imul(cg, ky, g->kw), kx), cg->vl), NULL, 0.0)
              : NULL;
    put(cg, acc, win_combine(cg, g->kind, get(cg, acc), x, w));
    kiln_cg_for_end(cg, &lx);
    kiln_cg_for_end(cg, &ly);
    win_finish(cg, c, ox, get(cg, acc), kx0, kx1);
}

static void win_border_range(kiln_cg *cg, const win_ctx *c, int64_t lo, int64_t hi)
{
    if (lo >= hi)
        return;
    kiln_cg_loop l;
    V ox = kiln_cg_for_begin(cg, &l, kiln_cg_i64(cg, lo), kiln_cg_i64(cg, hi), kiln_cg_i64(cg, 1));
    win_border(cg, c, ox);
    kiln_cg_for_end(cg, &l);
}

static kiln_status window_blocked(kiln_cg *cg, const kiln_node *n, window_kind kind, kiln_id wid, kiln_id bid)
{
    const kiln_type *xt = type_of(cg, n->inputs[0]), *yt = type_of(cg, n->output);
    const kiln_shape *xs = &xt->shape, *ys = &yt->shape;
    win_geom g = {0};
    g.kind = kind;
    g.C = xs->dims[1];
    g.CB = ceil_div(g.C, cg->vl);
    g.H = xs->dims[2];
    g.W = xs->dims[3];
    g.OH = ys->dims[2];
    g.OW = ys->dims[3];
    if (kind == WIN_DEPTHWISE) {
        const kiln_shape *wsh = &type_of(cg, wid)->shape;
        g.kh = wsh->dims[2];
        g.kw = wsh->dims[3];
    } else {
        g.kh = n->attrs[KILN_ATTR_KERNEL].ints[0];
        g.kw = n->attrs[KILN_ATTR_KERNEL].ints[1];
    }
    read_window(n, &g.sh, &g.sw, &g.pt, &g.pl, &g.dh, &g.dw);
    if (kind == WIN_AVG)
        g.dh = g.dw = 1;
    g.pb = n->attrs[KILN_ATTR_PADDING].ints[2];
    g.pr = n->attrs[KILN_ATTR_PADDING].ints[3];
    g.include_pad = kind == WIN_AVG && n->attrs[KILN_ATTR_COUNT_INCLUDE_PAD].i != 0;
    g.R = kind == WIN_DEPTHWISE ? 4 : 4;

    uint64_t w_off = 0, b_off = 0;
    if (kind == WIN_DEPTHWISE) {
        size_t count;
        float *w = kiln_cg_param_f32(cg, wid, &count);
        if (!w)
            return cg->status;
        const int64_t taps = g.kh * g.kw;
        float *dst = count == (size_t)(g.C * taps) ? kiln_cg_blob_alloc(cg, (size_t)(g.CB * taps * cg->vl), &w_off) : NULL;
        if (dst)
            for (int64_t cb = 0; cb < g.CB; cb++)
                for (int64_t t = 0; t < taps; t++)
                    for (int64_t l = 0; l < cg->vl; l++) {
                        int64_t ch = cb * cg->vl + l;
                        dst[(cb * taps + t) * cg->vl + l] = ch < g.C ? w[ch * taps + t] : 0.0f;
                    }
        free(w);
        if (!dst)
            return cg->status != KILN_OK ? cg->status : kiln_cg_fail(cg, KILN_ERR_INTERNAL, "weight size mismatch");
        if (bid != KILN_NO_ID && pack_padded(cg, bid, g.C, &b_off) != KILN_OK)
            return cg->status;
    }
    /* Interior columns: every kernel column inside the row. */
    int64_t lo = g.pl > 0 ? ceil_div(g.pl, g.sw) : 0;
    int64_t room = g.W - 1 + g.pl - (g.kw - 1) * g.dw; /* ox * sw <= room */
    int64_t hi = room < 0 ? 0 : room / g.sw + 1;     /* exclusive */
    if (hi > g.OW)
        hi = g.OW;
    if (lo > hi)
        lo = hi = g.OW;

    const int64_t per_item = g.CB * g.OH;
    const int64_t per_task = units_per_task(cg, n, per_item * (xs->batched ? 1 : xs->dims[0]), g.OW * g.kh * g.kw * cg->vl);
    char kernel[128], epi[64];
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, kiln_cg_node_dtype(cg, n), KILN_CG_ON_TARGET, 0, 0, "%s_blocked%s",
                        kind == WIN_DEPTHWISE ? "conv2d_dw" : kiln_op_name(n->op),
                        kiln_cg_epi_name(kind == WIN_DEPTHWISE ? epilogue(cg) : NULL, epi, sizeof epi));
    kiln_cg_task_begin(cg, kernel, n);
    V px = kiln_cg_value_ptr(cg, n->inputs[0]);
    V py = kiln_cg_value_ptr(cg, kind == WIN_DEPTHWISE ? stored_value(cg, n) : n->output);
    if (kind == WIN_DEPTHWISE && epilogue(cg))
        kiln_cg_epi_begin(cg, cg->f.epi);
    V lo_u, hi_u;
    kiln_cg_task_range(cg, total_units(cg, xs, per_item), per_task, &lo_u, &hi_u);
    kiln_cg_loop lu;
    V u = kiln_cg_for_begin(cg, &lu, lo_u, hi_u, kiln_cg_i64(cg, 1));
    win_ctx c = {&g, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    c.plane_index = kiln_cg_udiv(cg, u, g.OH); /* item * CB + cb */
    c.oy = kiln_cg_urem(cg, u, g.OH);
    V cb = kiln_cg_urem(cg, c.plane_index, g.CB);
    c.is_last = LLVMBuildICmp(cg->u->b, LLVMIntEQ, cb, kiln_cg_i64(cg, g.CB - 1), "");
    c.x_plane = kiln_cg_gep(cg, px, kiln_cg_imul(cg, c.plane_index, g.H * g.W * cg->vl));
    c.y_row = kiln_cg_gep(cg, py, kiln_cg_imul(cg, u, g.OW * cg->vl));
    if (kind == WIN_DEPTHWISE) {
        c.w_block = kiln_cg_gep(cg, kiln_cg_weights_ptr(cg, w_off), kiln_cg_imul(cg, cb, g.kh * g.kw * cg->vl));
        if (bid != KILN_NO_ID)
            c.bias = kiln_cg_vload(cg, kiln_cg_weights_ptr(cg, b_off), kiln_cg_imul(cg, cb, cg->vl), NULL, 0.0);
    }
    /* valid kernel rows: 0 <= oy * sh - pt + ky * dh < H */
    V y0 = addc(cg, kiln_cg_imul(cg, c.oy, g.sh), -g.pt);
    V neg = LLVMBuildSub(cg->u->b, kiln_cg_i64(cg, 0), y0, "");
    c.ky0 = kiln_cg_udiv(cg, kiln_cg_smax(cg, addc(cg, neg, g.dh - 1), kiln_cg_i64(cg, 0)), g.dh);
    V room_y = LLVMBuildSub(cg->u->b, kiln_cg_i64(cg, g.H - 1), y0, "");
    V kyh = LLVMBuildSelect(cg->u->b, slt(cg, room_y, 0), kiln_cg_i64(cg, 0),
                            addc(cg, kiln_cg_udiv(cg, kiln_cg_smax(cg, room_y, kiln_cg_i64(cg, 0)), g.dh), 1), "");
    c.ky1 = kiln_cg_smax(cg, kiln_cg_smin(cg, kyh, kiln_cg_i64(cg, g.kh)), c.ky0);
    win_border_range(cg, &c, 0, lo);
    if (hi > lo) {
        const int64_t whole = lo + (hi - lo) / g.R * g.R;
        if (whole > lo) {
            kiln_cg_loop lx;
            V ox = kiln_cg_for_begin(cg, &lx, kiln_cg_i64(cg, lo), kiln_cg_i64(cg, whole), kiln_cg_i64(cg, g.R));
            win_fast(cg, &c, ox, (int)g.R);
            kiln_cg_for_end(cg, &lx);
        }
        if (hi > whole) {
            kiln_cg_loop lx;
            V ox = kiln_cg_for_begin(cg, &lx, kiln_cg_i64(cg, whole), kiln_cg_i64(cg, hi), kiln_cg_i64(cg, 1));
            win_fast(cg, &c, ox, 1);
            kiln_cg_for_end(cg, &lx);
        }
    }
    win_border_range(cg, &c, hi > lo ? hi : lo, g.OW);
    kiln_cg_for_end(cg, &lu);
    kiln_cg_task_end(cg, unit_count(xs, per_item, per_task));
    return cg->status;
}

/* ---- global average pooling of a blocked input ------------------------------------------ */

static kiln_status global_avgpool_blocked(kiln_cg *cg, const kiln_node *n)
{
    const kiln_shape *xs = &type_of(cg, n->inputs[0])->shape;
    const int64_t C = xs->dims[1], CB = ceil_div(C, cg->vl), HW = xs->dims[2] * xs->dims[3];
    const int64_t per_task = units_per_task(cg, n, CB * (xs->batched ? 1 : xs->dims[0]), HW * cg->vl);
    char kernel[96];
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, kiln_cg_node_dtype(cg, n), KILN_CG_ON_TARGET, 0, 0, "global_avgpool_blocked");
    kiln_cg_task_begin(cg, kernel, n);
    V px = kiln_cg_value_ptr(cg, n->inputs[0]), py = kiln_cg_value_ptr(cg, n->output);
    V lo, hi;
    kiln_cg_task_range(cg, total_units(cg, xs, CB), per_task, &lo, &hi);
    kiln_cg_loop lu, lp;
    V u = kiln_cg_for_begin(cg, &lu, lo, hi, kiln_cg_i64(cg, 1));
    V item = kiln_cg_udiv(cg, u, CB), cb = kiln_cg_urem(cg, u, CB);
    V plane = kiln_cg_gep(cg, px, kiln_cg_imul(cg, u, HW * cg->vl));
    V acc[4];
    emit_accumulators(cg, acc, 4, "gacc");
    for (int k = 0; k < 4; k++)
        put(cg, acc[k], LLVMConstNull(cg->u->t_vf));
    const int64_t whole = HW / 4 * 4;
    if (whole > 0) {
        V p = kiln_cg_for_begin(cg, &lp, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, whole), kiln_cg_i64(cg, 4));
        for (int k = 0; k < 4; k++)
            put(cg, acc[k], LLVMBuildFAdd(cg->u->b, get(cg, acc[k]), kiln_cg_vload(cg, plane, kiln_cg_imul(cg, addc(cg, p, k), cg->vl), NULL, 0.0), ""));
        kiln_cg_for_end(cg, &lp);
    }
    for (int64_t p = whole; p < HW; p++)
        put(cg, acc[p - whole], LLVMBuildFAdd(cg->u->b, get(cg, acc[p - whole]), kiln_cg_vload(cg, plane, kiln_cg_i64(cg, p * cg->vl), NULL, 0.0), ""));
    V s = LLVMBuildFAdd(cg->u->b, LLVMBuildFAdd(cg->u->b, get(cg, acc[0]), get(cg, acc[1]), ""),
                        LLVMBuildFAdd(cg->u->b, get(cg, acc[2]), get(cg, acc[3]), ""), "");
    s = LLVMBuildFDiv(cg->u->b, s, kiln_cg_splat(cg, kiln_cg_f32(cg, (double)HW)), "mean");
    V c0 = kiln_cg_imul(cg, cb, cg->vl);
    V mask = C % cg->vl ? kiln_cg_tail_mask(cg, LLVMBuildSub(cg->u->b, kiln_cg_i64(cg, C), c0, "")) : NULL;
    kiln_cg_vstore(cg, s, py, kiln_cg_iadd(cg, kiln_cg_imul(cg, item, C), c0), mask);
    kiln_cg_for_end(cg, &lu);
    kiln_cg_task_end(cg, unit_count(xs, CB, per_task));
    return cg->status;
}

/* ---- reorder --------------------------------------------------------------------------------- */

/* Element (c, h, w) of one item of a value with channel block b (1: plain). */
static V element_index(kiln_cg *cg, V c, V hw, int64_t b, int64_t HW)
{
    if (b == 1)
        return kiln_cg_iadd(cg, kiln_cg_imul(cg, c, HW), hw);
    return kiln_cg_iadd(cg, kiln_cg_imul(cg, kiln_cg_iadd(cg, kiln_cg_imul(cg, kiln_cg_udiv(cg, c, b), HW), hw), b), kiln_cg_urem(cg, c, b));
}

kiln_status kiln_cg_emit_reorder(kiln_cg *cg, const kiln_node *n)
{
    const kiln_type *xt = type_of(cg, n->inputs[0]), *yt = type_of(cg, n->output);
    const kiln_shape *s = &yt->shape;
    if (s->rank != 4 || !kiln_shape_equal(&xt->shape, s))
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "malformed reorder");
    const int64_t C = s->dims[1], HW = s->dims[2] * s->dims[3];
    const int64_t bx = block_of(xt), by = block_of(yt);
    const int64_t CBy = ceil_div(C, by), CBx = ceil_div(C, bx);
    /* units: (item, destination block); each writes HW * by elements */
    const int64_t per_task = units_per_task(cg, n, CBy * (s->batched ? 1 : s->dims[0]), HW * by);
    char kernel[96];
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, kiln_cg_node_dtype(cg, n), KILN_CG_ON_TARGET, 0, 0, "reorder_%lld_to_%lld", (long long)bx,
                        (long long)by);
    kiln_cg_task_begin(cg, kernel, n);
    V px = kiln_cg_value_ptr(cg, n->inputs[0]), py = kiln_cg_value_ptr(cg, n->output);
    V lo, hi;
    kiln_cg_task_range(cg, total_units(cg, s, CBy), per_task, &lo, &hi);
    kiln_cg_loop lu, lp;
    V u = kiln_cg_for_begin(cg, &lu, lo, hi, kiln_cg_i64(cg, 1));
    V item = kiln_cg_udiv(cg, u, CBy), cb = kiln_cg_urem(cg, u, CBy);
    V x_item = kiln_cg_gep(cg, px, kiln_cg_imul(cg, item, CBx * bx * HW));
    V y_block = kiln_cg_gep(cg, py, kiln_cg_imul(cg, u, HW * by));
    V hw = kiln_cg_for_begin(cg, &lp, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, HW), kiln_cg_i64(cg, 1));
    for (int64_t l = 0; l < by; l++) {
        V c = addc(cg, kiln_cg_imul(cg, cb, by), l);
        V inside = slt(cg, c, C);
        V safe = LLVMBuildSelect(cg->u->b, inside, c, kiln_cg_i64(cg, 0), "");
        V v = kiln_cg_load(cg, x_item, element_index(cg, safe, hw, bx, HW));
        v = LLVMBuildSelect(cg->u->b, inside, v, kiln_cg_f32(cg, 0.0), "");
        kiln_cg_store(cg, v, y_block, by == 1 ? hw : addc(cg, kiln_cg_imul(cg, hw, by), l));
    }
    kiln_cg_for_end(cg, &lp);
    kiln_cg_for_end(cg, &lu);
    kiln_cg_task_end(cg, unit_count(s, CBy, per_task));
    return cg->status;
}

/* ---- dispatch ------------------------------------------------------------------------------ */

bool kiln_cg_blocked_node(const kiln_graph *g, const kiln_node *n)
{
    if (n->n_inputs < 1)
        return false;
    return g->values[n->inputs[0]].type.layout == KILN_LAYOUT_NCHWXC ||
           g->values[n->output].type.layout == KILN_LAYOUT_NCHWXC;
}

kiln_status kiln_cg_emit_blocked(kiln_cg *cg, const kiln_node *n)
{
    const kiln_type *xt = type_of(cg, n->inputs[0]), *yt = type_of(cg, n->output);
    if (xt->shape.rank != 4 || (n->op != KILN_OP_GLOBAL_AVGPOOL && yt->shape.rank != 4))
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "a blocked value of rank other than 4");
    switch (n->op) {
    case KILN_OP_CONV2D: {
        kiln_id wid = kiln_node_param(cg->g, n, "weight"), bid = kiln_node_param(cg->g, n, "bias");
        if (wid == KILN_NO_ID || !is_blocked(yt))
            return kiln_cg_fail(cg, KILN_ERR_UNSUPPORTED, "a convolution from a blocked input must write a blocked output");
        const int64_t groups = n->attrs[KILN_ATTR_GROUPS].i, C = xt->shape.dims[1], F = yt->shape.dims[1];
        if (groups == 1)
            return conv_blocked(cg, n, wid, bid);
        if (groups == C && F == C && is_blocked(xt))
            return window_blocked(cg, n, WIN_DEPTHWISE, wid, bid);
        return kiln_cg_fail(cg, KILN_ERR_UNSUPPORTED,
                            "a blocked convolution needs one group, or a depthwise one with a blocked input");
    }
    case KILN_OP_MAXPOOL2D:
    case KILN_OP_AVGPOOL2D:
        if (!is_blocked(xt) || !is_blocked(yt))
            return kiln_cg_fail(cg, KILN_ERR_UNSUPPORTED, "a pool reads and writes the same layout");
        return window_blocked(cg, n, n->op == KILN_OP_MAXPOOL2D ? WIN_MAX : WIN_AVG, KILN_NO_ID, KILN_NO_ID);
    case KILN_OP_GLOBAL_AVGPOOL:
        if (is_blocked(yt))
            return kiln_cg_fail(cg, KILN_ERR_UNSUPPORTED, "global_avgpool writes the plain layout");
        return global_avgpool_blocked(cg, n);
    default:
        return kiln_cg_fail(cg, KILN_ERR_UNSUPPORTED, "%s has no kernel for blocked values", kiln_op_name(n->op));
    }
}
