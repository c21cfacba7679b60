/* compiler/codegen/kernels/resize.c: resize (torch.nn.functional.interpolate
 * on the last two axes: nearest, nearest_exact, bilinear, bicubic).
 *
 * Resizing is separable: output (oy, ox) is sum_a wy[a] sum_b wx[b]
 * x[cy[a], cx[b]] over T taps per axis (1, 2 or 4). The taps and weights of
 * each axis are computed at compile time by kiln_resize_axis (ir/ops.h, the
 * interpreter's own function, so the nearest modes pick exactly the same
 * cells) and stored in the weights blob, tap-major: the T index rows (i32)
 * then the T weight rows (f32) of an axis, each `out` long.
 *
 * Plain layout: a task takes whole output rows; for each it reads the rows'
 * taps (scalars) and runs a vector loop over the output's width: per tap
 * column a vector of indices and of weights (contiguous loads from the
 * tables) and a gather from each tap row. When the width's taps repeat with
 * a period that divides the vector (the usual 2x, 4x upsampling and 2x
 * downsampling: index pattern and weights the same for every full vector,
 * only shifted), the gathers become one or two contiguous loads and a
 * constant shuffle, and the weights constants.
 *
 * Channel-blocked layout (nchw<B>c, B the vector width; ops.def KEEP): the
 * B channels of a pixel are one vector, so every tap is a plain vector load
 * and a multiply-add; no gathers. A decoder's conv -> resize -> conv stays
 * blocked without reorders. The padding lanes stay zero (weighted sums of
 * zeros). */
#include "compiler/codegen/cg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef LLVMValueRef V;

#define CHUNK 16384 /* output elements per task, roughly */

/* An axis's taps: idx/w [T][out] (tap-major), in the blob at `off`. */
typedef struct axis_tab {
    int T;
    int64_t in, out;
    int32_t *idx;
    float *w;
    uint64_t off; /* idx at off, w at off + 4 T out */
} axis_tab;

static int taps_of(kiln_resize_mode m) { return m == KILN_RESIZE_BICUBIC ? 4 : m == KILN_RESIZE_BILINEAR ? 2 : 1; }

static bool build_axis(kiln_cg *cg, const kiln_node *n, int axis, int64_t in, int64_t out, axis_tab *t)
{
    const kiln_resize_mode mode = (kiln_resize_mode)n->attrs[KILN_ATTR_MODE].i;
    const bool has_scale = kiln_node_has(n, KILN_ATTR_SCALE);
    const double scale = has_scale ? n->attrs[KILN_ATTR_SCALE].floats[axis] : 0.0;
    const bool align = n->attrs[KILN_ATTR_ALIGN_CORNERS].i != 0;
    t->T = taps_of(mode);
    t->in = in, t->out = out;
    t->idx = malloc((size_t)(t->T * out) * sizeof *t->idx);
    t->w = malloc((size_t)(t->T * out) * sizeof *t->w);
    if (!t->idx || !t->w) {
        kiln_cg_fail(cg, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        return false;
    }
    for (int64_t o = 0; o < out; o++) {
        int64_t idx[4];
        double w[4];
        kiln_resize_axis(mode, in, out, has_scale, scale, align, o, idx, w);
        for (int k = 0; k < t->T; k++) {
            t->idx[k * out + o] = (int32_t)idx[k];
            t->w[k * out + o] = (float)w[k];
        }
    }
    float *blob = kiln_cg_blob_alloc(cg, (size_t)(2 * t->T * out), &t->off);
    if (!blob)
        return false;
    memcpy(blob, t->idx, (size_t)(t->T * out) * sizeof(int32_t));
    memcpy(blob + t->T * out, t->w, (size_t)(t->T * out) * sizeof(float));
    return true;
}

static void free_axis(axis_tab *t)
{
    free(t->idx);
    free(t->w);
}

/* Table entries at element index i (i64) of tap row k: an index (i64) or a
 * weight (f32); scalar or, with vec, vl consecutive ones. */
static V tab_idx(kiln_cg *cg, const axis_tab *t, int k, V i, V mask, bool vec)
{
    V base = kiln_cg_weights_ptr(cg, t->off);
    V at = LLVMBuildAdd(cg->u->b, i, kiln_cg_i64(cg, (int64_t)k * t->out), "");
    if (!vec) {
        V p = LLVMBuildGEP2(cg->u->b, cg->u->t_i32, base, &at, 1, "");
        return LLVMBuildSExt(cg->u->b, LLVMBuildLoad2(cg->u->b, cg->u->t_i32, p, ""), cg->u->t_i64, "");
    }
    /* the index rows as floats' bits: a masked float load, then reinterpret */
    V v = kiln_cg_vload(cg, base, at, mask, 0.0);
    return LLVMBuildSExt(cg->u->b, LLVMBuildBitCast(cg->u->b, v, cg->u->t_vi32, ""), cg->u->t_vi64, "");
}

static V tab_w(kiln_cg *cg, const axis_tab *t, int k, V i, V mask, bool vec)
{
    V base = kiln_cg_weights_ptr(cg, t->off + (uint64_t)(t->T * t->out) * 4u);
    V at = LLVMBuildAdd(cg->u->b, i, kiln_cg_i64(cg, (int64_t)k * t->out), "");
    return vec ? kiln_cg_vload(cg, base, at, mask, 0.0) : kiln_cg_load(cg, base, at);
}

/* ---- the width's periodic pattern ------------------------------------------------ */

/* Full vector v of the width (output columns [v vl, v vl + vl)) reads, for
 * each tap k, the cells first(v) + rel[k][lane] with weights w[k][lane]:
 * when rel and w are the same for a run of vectors [v0, v1) and first(v) =
 * first0 + v adv along it, with rel < 2 vl, each tap of those vectors is
 * one or two contiguous loads and a constant shuffle. The run is grown from
 * the middle vector: the edges differ (clamped taps) and take the gather. */
typedef struct pattern {
    bool ok;
    int64_t v0, v1, first0, adv;
    int span; /* vectors loaded per tap row: 1 or 2 */
    int32_t rel[4][64];
    float w[4][64];
} pattern;

/* The first cell vector v reads, and whether its taps match p (set from it
 * when `set`). */
static bool match_vector(const axis_tab *t, int vl, int64_t v, pattern *p, bool set, int64_t *first)
{
    int32_t mn = INT32_MAX;
    for (int k = 0; k < t->T; k++)
        for (int l = 0; l < vl; l++)
            if (t->idx[k * t->out + v * vl + l] < mn)
                mn = t->idx[k * t->out + v * vl + l];
    *first = mn;
    for (int k = 0; k < t->T; k++)
        for (int l = 0; l < vl; l++) {
            int32_t r = t->idx[k * t->out + v * vl + l] - mn;
            float w = t->w[k * t->out + v * vl + l];
            if (r >= 2 * vl)
                return false;
            if (set) {
                p->rel[k][l] = r, p->w[k][l] = w;
                if (r >= vl)
                    p->span = 2;
            } else if (p->rel[k][l] != r || memcmp(&p->w[k][l], &w, sizeof w) != 0) {
                return false;
            }
        }
    return true;
}

static void find_pattern(const axis_tab *t, int vl, pattern *p)
{
    memset(p, 0, sizeof *p);
    const int64_t full = t->out / vl;
    if (full < 3 || vl > 64)
        return;
    const int64_t mid = full / 2;
    int64_t fm, fn;
    p->span = 1;
    if (!match_vector(t, vl, mid, p, true, &fm) || !match_vector(t, vl, mid + 1, p, false, &fn))
        return;
    p->adv = fn - fm;
    p->first0 = fm - mid * p->adv;
    p->v0 = mid;
    p->v1 = mid + 2;
    int64_t f;
    while (p->v0 > 0 && match_vector(t, vl, p->v0 - 1, p, false, &f) && f == p->first0 + (p->v0 - 1) * p->adv)
        p->v0--;
    while (p->v1 < full && match_vector(t, vl, p->v1, p, false, &f) && f == p->first0 + p->v1 * p->adv)
        p->v1++;
    /* the loads stay inside the row */
    while (p->v1 > p->v0 && p->first0 + (p->v1 - 1) * p->adv + (int64_t)p->span * vl > t->in)
        p->v1--;
    while (p->v0 < p->v1 && p->first0 + p->v0 * p->adv < 0)
        p->v0++;
    p->ok = p->v1 - p->v0 >= 2;
}

/* ---- plain layout ------------------------------------------------------------------- */

typedef struct plain_arg {
    const axis_tab *tx;
    const pattern *pat;
    int Ty;
    V rows[4], wy[4]; /* the row taps' first elements and weights */
    V y;
} plain_arg;

static V combine_rows(kiln_cg *cg, const plain_arg *a, V *per_row)
{
    V acc = NULL;
    for (int r = 0; r < a->Ty; r++) {
        if (a->Ty == 1)
            return per_row[0];
        V term = LLVMBuildFMul(cg->u->b, per_row[r], kiln_cg_splat(cg, a->wy[r]), "");
        acc = acc ? LLVMBuildFAdd(cg->u->b, acc, term, "") : term;
    }
    return acc;
}

/* A gathered vector: the general case (also the pattern's tail). */
static void plain_gather_body(kiln_cg *cg, V i, V mask, void *p)
{
    plain_arg *a = p;
    const axis_tab *tx = a->tx;
    V idx[4], w[4], per_row[4];
    for (int k = 0; k < tx->T; k++) {
        idx[k] = tab_idx(cg, tx, k, i, mask, true);
        w[k] = tx->T > 1 ? tab_w(cg, tx, k, i, mask, true) : NULL;
    }
    for (int r = 0; r < a->Ty; r++) {
        V acc = NULL;
        for (int k = 0; k < tx->T; k++) {
            V g = kiln_cg_gather(cg, a->rows[r], idx[k], mask, 0.0);
            if (tx->T == 1) {
                acc = g;
                break;
            }
            V term = LLVMBuildFMul(cg->u->b, g, w[k], "");
            acc = acc ? LLVMBuildFAdd(cg->u->b, acc, term, "") : term;
        }
        per_row[r] = acc;
    }
    kiln_cg_vstore(cg, combine_rows(cg, a, per_row), a->y, i, mask);
}

/* A full vector of the periodic pattern: vector v (i64), its first cell. */
static void plain_pattern_vector(kiln_cg *cg, plain_arg *a, V v)
{
    const pattern *pt = a->pat;
    const int vl = cg->vl;
    V first = LLVMBuildAdd(cg->u->b, kiln_cg_i64(cg, pt->first0), LLVMBuildMul(cg->u->b, v, kiln_cg_i64(cg, pt->adv), ""), "");
    V per_row[4];
    for (int r = 0; r < a->Ty; r++) {
        V lo = kiln_cg_vload(cg, a->rows[r], first, NULL, 0.0);
        V hi = pt->span > 1
                   ? kiln_cg_vload(cg, a->rows[r], LLVMBuildAdd(cg->u->b, first, kiln_cg_i64(cg, vl), ""), NULL, 0.0)
                   : LLVMGetPoison(cg->u->t_vf);
        V acc = NULL;
        for (int k = 0; k < a->tx->T; k++) {
            V m[64], wl[64];
            for (int l = 0; l < vl; l++) {
                m[l] = kiln_cg_i32(cg, pt->rel[k][l]);
                wl[l] = LLVMConstReal(cg->u->t_f32, pt->w[k][l]);
            }
            V s = LLVMBuildShuffleVector(cg->u->b, lo, hi, LLVMConstVector(m, (unsigned)vl), "");
            if (a->tx->T == 1) {
                acc = s;
                break;
            }
            V term = LLVMBuildFMul(cg->u->b, s, LLVMConstVector(wl, (unsigned)vl), "");
            acc = acc ? LLVMBuildFAdd(cg->u->b, acc, term, "") : term;
        }
        per_row[r] = acc;
    }
    kiln_cg_vstore(cg, combine_rows(cg, a, per_row), a->y, LLVMBuildMul(cg->u->b, v, kiln_cg_i64(cg, vl), ""), NULL);
}

static kiln_status emit_plain(kiln_cg *cg, const kiln_node *n, const axis_tab *ty, const axis_tab *tx)
{
    const kiln_shape *xs = &kiln_graph_value(cg->g, n->inputs[0])->type.shape;
    const int R = xs->rank;
    const int64_t H = xs->dims[R - 2], W = xs->dims[R - 1], OH = ty->out, OW = tx->out;
    int64_t planes = 1;
    for (int i = xs->batched ? 1 : 0; i < R - 2; i++)
        planes *= xs->dims[i];
    pattern pat;
    find_pattern(tx, cg->vl, &pat);
    const int64_t rows = planes * OH, per_task = OW >= CHUNK ? 1 : CHUNK / OW;
    char kernel[96];
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, kiln_cg_node_dtype(cg, n), KILN_CG_ON_TARGET, 0, 0, "resize_%s%s",
                        kiln_attr_words(KILN_ATTR_MODE)[n->attrs[KILN_ATTR_MODE].i], pat.ok ? "_shuffle" : "_gather");
    kiln_cg_task_begin(cg, kernel, n);
    LLVMBuilderRef b = cg->u->b;
    V px = kiln_cg_value_ptr(cg, n->inputs[0]), py = kiln_cg_value_ptr(cg, n->output);
    V total = kiln_cg_i64(cg, rows);
    if (xs->batched)
        total = LLVMBuildMul(b, total, kiln_cg_batch(cg), "");
    V lo, hi;
    kiln_cg_task_range(cg, total, per_task, &lo, &hi);
    kiln_cg_loop l;
    V r = kiln_cg_for_begin(cg, &l, lo, hi, kiln_cg_i64(cg, 1));
    V plane = kiln_cg_udiv(cg, r, OH), oy = kiln_cg_urem(cg, r, OH);
    V xp = kiln_cg_gep(cg, px, LLVMBuildMul(b, plane, kiln_cg_i64(cg, H * W), ""));
    plain_arg a = {tx, &pat, ty->T, {0}, {0}, kiln_cg_gep(cg, py, LLVMBuildMul(b, r, kiln_cg_i64(cg, OW), ""))};
    for (int k = 0; k < ty->T; k++) {
        a.rows[k] = kiln_cg_gep(cg, xp, LLVMBuildMul(b, tab_idx(cg, ty, k, oy, NULL, false), kiln_cg_i64(cg, W), ""));
        a.wy[k] = ty->T > 1 ? tab_w(cg, ty, k, oy, NULL, false) : NULL;
    }
    if (pat.ok) {
        const int64_t vl = cg->vl;
        if (pat.v0 > 0)
            kiln_cg_vloop(cg, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, pat.v0 * vl), plain_gather_body, &a);
        kiln_cg_loop lv;
        V v = kiln_cg_for_begin(cg, &lv, kiln_cg_i64(cg, pat.v0), kiln_cg_i64(cg, pat.v1), kiln_cg_i64(cg, 1));
        plain_pattern_vector(cg, &a, v);
        kiln_cg_for_end(cg, &lv);
        if (pat.v1 * vl < OW)
            kiln_cg_vloop(cg, kiln_cg_i64(cg, pat.v1 * vl), kiln_cg_i64(cg, OW), plain_gather_body, &a);
    } else {
        kiln_cg_vloop(cg, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, OW), plain_gather_body, &a);
    }
    kiln_cg_for_end(cg, &l);
    kiln_cg_task_end(cg, (kiln_cg_count){xs->batched ? 0 : rows, xs->batched ? rows : 0, per_task, 1, 0});
    return cg->status;
}

/* ---- channel-blocked layout ------------------------------------------------------------ */

static kiln_status emit_blocked(kiln_cg *cg, const kiln_node *n, const axis_tab *ty, const axis_tab *tx)
{
    const kiln_type *xt = &kiln_graph_value(cg->g, n->inputs[0])->type;
    const kiln_shape *xs = &xt->shape;
    const int B = xt->block;
    if (B != cg->vl || xs->rank != 4)
        return kiln_cg_fail(cg, KILN_ERR_UNSUPPORTED, "a blocked resize needs the block to be the vector width");
    const int64_t CB = (xs->dims[1] + B - 1) / B, H = xs->dims[2], W = xs->dims[3], OH = ty->out, OW = tx->out;
    const int64_t planes = (xs->batched ? 1 : xs->dims[0]) * CB, rows = planes * OH;
    const int64_t per_task = OW * B >= CHUNK ? 1 : CHUNK / (OW * B);
    char kernel[96];
    kiln_cg_kernel_name(cg, kernel, sizeof kernel, kiln_cg_node_dtype(cg, n), KILN_CG_ON_TARGET, 0, 0, "resize_%s_nchw%dc",
                        kiln_attr_words(KILN_ATTR_MODE)[n->attrs[KILN_ATTR_MODE].i], B);
    kiln_cg_task_begin(cg, kernel, n);
    LLVMBuilderRef b = cg->u->b;
    V px = kiln_cg_value_ptr(cg, n->inputs[0]), py = kiln_cg_value_ptr(cg, n->output);
    V total = kiln_cg_i64(cg, rows);
    if (xs->batched)
        total = LLVMBuildMul(b, total, kiln_cg_batch(cg), "");
    V lo, hi;
    kiln_cg_task_range(cg, total, per_task, &lo, &hi);
    kiln_cg_loop l, lx;
    V r = kiln_cg_for_begin(cg, &l, lo, hi, kiln_cg_i64(cg, 1));
    V plane = kiln_cg_udiv(cg, r, OH), oy = kiln_cg_urem(cg, r, OH);
    V xp = kiln_cg_gep(cg, px, LLVMBuildMul(b, plane, kiln_cg_i64(cg, H * W * B), ""));
    V yrow = kiln_cg_gep(cg, py, LLVMBuildMul(b, r, kiln_cg_i64(cg, OW * B), ""));
    V rows_p[4], wy[4];
    for (int k = 0; k < ty->T; k++) {
        rows_p[k] = kiln_cg_gep(cg, xp, LLVMBuildMul(b, tab_idx(cg, ty, k, oy, NULL, false), kiln_cg_i64(cg, W * B), ""));
        wy[k] = ty->T > 1 ? kiln_cg_splat(cg, tab_w(cg, ty, k, oy, NULL, false)) : NULL;
    }
    V ox = kiln_cg_for_begin(cg, &lx, kiln_cg_i64(cg, 0), kiln_cg_i64(cg, OW), kiln_cg_i64(cg, 1));
    V cx[4], wx[4];
    for (int k = 0; k < tx->T; k++) {
        cx[k] = LLVMBuildMul(b, tab_idx(cg, tx, k, ox, NULL, false), kiln_cg_i64(cg, B), "");
        wx[k] = tx->T > 1 ? kiln_cg_splat(cg, tab_w(cg, tx, k, ox, NULL, false)) : NULL;
    }
    V acc = NULL;
    for (int a = 0; a < ty->T; a++) {
        V row = NULL;
        for (int k = 0; k < tx->T; k++) {
            V v = kiln_cg_vload(cg, rows_p[a], cx[k], NULL, 0.0);
            if (tx->T == 1) {
                row = v;
                break;
            }
            V t = LLVMBuildFMul(b, v, wx[k], "");
            row = row ? LLVMBuildFAdd(b, row, t, "") : t;
        }
        if (ty->T == 1) {
            acc = row;
            break;
        }
        V t = LLVMBuildFMul(b, row, wy[a], "");
        acc = acc ? LLVMBuildFAdd(b, acc, t, "") : t;
    }
    kiln_cg_vstore(cg, acc, yrow, LLVMBuildMul(b, ox, kiln_cg_i64(cg, B), ""), NULL);
    kiln_cg_for_end(cg, &lx);
    kiln_cg_for_end(cg, &l);
    kiln_cg_task_end(cg, (kiln_cg_count){xs->batched ? 0 : rows, xs->batched ? rows : 0, per_task, 1, 0});
    return cg->status;
}

kiln_status kiln_cg_emit_resize(kiln_cg *cg, const kiln_node *n)
{
    const kiln_type *xt = &kiln_graph_value(cg->g, n->inputs[0])->type;
    const kiln_type *yt = &kiln_graph_value(cg->g, n->output)->type;
    const int R = xt->shape.rank;
    const int64_t mode = n->attrs[KILN_ATTR_MODE].i;
    if (R < 2 || mode < KILN_RESIZE_NEAREST || mode > KILN_RESIZE_BICUBIC || xt->layout != yt->layout)
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "malformed resize");
    axis_tab ty = {0}, tx = {0};
    if (build_axis(cg, n, 0, xt->shape.dims[R - 2], yt->shape.dims[R - 2], &ty) &&
        build_axis(cg, n, 1, xt->shape.dims[R - 1], yt->shape.dims[R - 1], &tx)) {
        if (xt->layout == KILN_LAYOUT_NCHWXC)
            emit_blocked(cg, n, &ty, &tx);
        else
            emit_plain(cg, n, &ty, &tx);
    }
    free_axis(&ty);
    free_axis(&tx);
    return cg->status;
}
