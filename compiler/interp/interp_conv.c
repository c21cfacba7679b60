/* compiler/interp/interp_conv.c: conv2d and the pools, as torch.nn.Conv2d,
 * MaxPool2d, AvgPool2d and AdaptiveAvgPool2d(1) compute them, with padding
 * given per side: padding = [top, left, bottom, right]. */
#include "interp_internal.h"

#include "ir/quant.h"

#include <math.h>
#include <stdlib.h>

/* The spatial attributes of a conv or pool. */
typedef struct window {
    int64_t kh, kw;     /* kernel */
    int64_t sh, sw;     /* stride */
    int64_t pt, pl, pb, pr;
    int64_t dh, dw;     /* dilation */
} window;

static kiln_status read_window(const kiln_icall *c, bool has_dilation, window *w)
{
    int64_t stride[2], pad[4], dil[2] = {1, 1};
    kiln_status s;
    if ((s = kiln_icall_ints(c, KILN_ATTR_STRIDE, 2, stride, NULL)) != KILN_OK ||
        (s = kiln_icall_ints(c, KILN_ATTR_PADDING, 4, pad, NULL)) != KILN_OK)
        return s;
    if (has_dilation && (s = kiln_icall_ints(c, KILN_ATTR_DILATION, 2, dil, NULL)) != KILN_OK)
        return s;
    w->sh = stride[0], w->sw = stride[1];
    w->pt = pad[0], w->pl = pad[1], w->pb = pad[2], w->pr = pad[3];
    w->dh = dil[0], w->dw = dil[1];
    if (w->sh < 1 || w->sw < 1 || w->dh < 1 || w->dw < 1)
        return kiln_icall_fail(c, KILN_ERR_SHAPE, "stride [%lld,%lld] and dilation [%lld,%lld] must be positive",
                               (long long)w->sh, (long long)w->sw, (long long)w->dh, (long long)w->dw);
    if (w->pt < 0 || w->pl < 0 || w->pb < 0 || w->pr < 0)
        return kiln_icall_fail(c, KILN_ERR_SHAPE, "padding [%lld,%lld,%lld,%lld] must not be negative",
                               (long long)w->pt, (long long)w->pl, (long long)w->pb, (long long)w->pr);
    return KILN_OK;
}

/* Floor division for a positive divisor. */
static int64_t div_floor(int64_t a, int64_t b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* Output size along one axis (PyTorch's pooling_output_shape with separate
 * padding before and after): the windows that fit in the padded input, and
 * with ceil_mode one more partial window, provided it starts inside the input
 * or the padding before it. 0 or less when not even one window fits. */
static int64_t out_size(int64_t in, int64_t k, int64_t stride, int64_t pad_before, int64_t pad_after,
                        int64_t dilation, bool ceil_mode)
{
    int64_t span = in + pad_before + pad_after - dilation * (k - 1) - 1;
    if (span < 0)
        return 0;
    int64_t out = div_floor(span + (ceil_mode ? stride - 1 : 0), stride) + 1;
    if (ceil_mode && (out - 1) * stride >= in + pad_before)
        out--;
    return out;
}

/* Output height and width of a conv or pool over the last two axes of x;
 * fails when no window fits. */
static kiln_status spatial_out(const kiln_icall *c, const kiln_itensor *x, const window *w, bool ceil_mode,
                               int64_t *oh, int64_t *ow)
{
    int64_t H = x->dims[x->rank - 2], W = x->dims[x->rank - 1];
    *oh = out_size(H, w->kh, w->sh, w->pt, w->pb, w->dh, ceil_mode);
    *ow = out_size(W, w->kw, w->sw, w->pl, w->pr, w->dw, ceil_mode);
    if (*oh < 1 || *ow < 1)
        return kiln_icall_fail(c, KILN_ERR_SHAPE,
                               "kernel [%lld,%lld] with dilation [%lld,%lld] is larger than the padded input "
                               "[%lld,%lld] (padding [%lld,%lld,%lld,%lld])",
                               (long long)w->kh, (long long)w->kw, (long long)w->dh, (long long)w->dw,
                               (long long)H, (long long)W, (long long)w->pt, (long long)w->pl, (long long)w->pb,
                               (long long)w->pr);
    return KILN_OK;
}

/* The range [*lo, *hi) of output positions o < n_out whose input index
 * o * stride + off lies in [0, in). */
static void valid_range(int64_t n_out, int64_t stride, int64_t off, int64_t in, int64_t *lo, int64_t *hi)
{
    *lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
    *hi = in - 1 - off < 0 ? 0 : (in - 1 - off) / stride + 1;
    if (*hi > n_out)
        *hi = n_out;
    if (*lo > *hi)
        *lo = *hi;
}

/* An int8 convolution's operands (ir/quant.h): x quantized with the
 * node's in_scale and in_zero, as qa - za; the filters quantized per
 * output channel, as qw; scale[f] = sa * sw[f]. All malloc'd. */
static kiln_status int8_operands(const kiln_icall *c, const kiln_itensor *x, const kiln_itensor *wt, int64_t F,
                                 double **xq, double **wq, float **scale)
{
    kiln_quant_act qa;
    int qs = kiln_node_in_quant(c->n, &qa);
    if (qs != 0)
        return kiln_icall_fail(c, KILN_ERR_INVALID_ARGUMENT, "int8 needs %s (from --calibration)",
                               qs == -1 ? "the input's in_scale and in_zero" : "a positive in_scale and in_zero in [0, 255]");
    const size_t J = F ? wt->count / (size_t)F : 0;
    *xq = malloc((x->count ? x->count : 1) * sizeof **xq);
    *wq = malloc((wt->count ? wt->count : 1) * sizeof **wq);
    *scale = malloc((size_t)(F ? F : 1) * sizeof **scale);
    float *row = malloc((J ? J : 1) * sizeof *row);
    if (!*xq || !*wq || !*scale || !row) {
        free(row);
        return kiln_icall_fail(c, KILN_ERR_OUT_OF_MEMORY, "out of memory quantizing to int8");
    }
    for (size_t i = 0; i < x->count; i++)
        (*xq)[i] = (double)((int32_t)kiln_quant_act_q(&qa, (float)x->data[i]) - qa.zero);
    for (int64_t f = 0; f < F; f++) {
        for (size_t k = 0; k < J; k++)
            row[k] = (float)wt->data[(size_t)f * J + k];
        const float sw = kiln_quant_weight_scale(row, (int64_t)J, 1);
        (*scale)[f] = kiln_quant_out_scale(qa.scale, sw);
        for (size_t k = 0; k < J; k++)
            (*wq)[(size_t)f * J + k] = kiln_quant_weight_q(row[k], sw);
    }
    free(row);
    return KILN_OK;
}

kiln_status kiln_interp_conv2d(const kiln_icall *c)
{
    kiln_status s;
    const kiln_itensor *x = c->in[0], *wt, *bias = kiln_icall_param(c, "bias");
    int64_t groups;
    window w;
    if ((s = kiln_icall_check_rank(c, 0, 4)) != KILN_OK || (s = kiln_icall_need_param(c, "weight", &wt)) != KILN_OK ||
        (s = kiln_icall_int(c, KILN_ATTR_GROUPS, &groups)) != KILN_OK || (s = read_window(c, true, &w)) != KILN_OK)
        return s;

    const int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    char xs[128], ws[128];
    kiln_idims_format(x->rank, x->dims, xs, sizeof xs);
    kiln_idims_format(wt->rank, wt->dims, ws, sizeof ws);
    if (wt->rank != 4)
        return kiln_icall_fail(c, KILN_ERR_SHAPE, "weight has shape %s; [filters, C/groups, kh, kw] is needed", ws);
    const int64_t F = wt->dims[0], Cg = wt->dims[1];
    w.kh = wt->dims[2], w.kw = wt->dims[3];
    if (groups < 1 || C % groups != 0 || F % groups != 0 || Cg != C / groups)
        return kiln_icall_fail(c, KILN_ERR_SHAPE,
                               "input %s and weight %s do not fit groups=%lld (weight must be [F, C/groups, kh, kw] "
                               "with C and F divisible by groups)",
                               xs, ws, (long long)groups);
    if (bias && (s = kiln_icall_check_param_count(c, "bias", bias, F)) != KILN_OK)
        return s;
    int64_t OH, OW;
    if ((s = spatial_out(c, x, &w, false, &OH, &OW)) != KILN_OK ||
        (s = kiln_icall_check_out(c, 4, (const int64_t[]){N, F, OH, OW})) != KILN_OK)
        return s;

    const int64_t Fg = F / groups;
    /* x and the weights as the layer's precision rounds them; int8: the
     * integers qa - za and qw (their sums stay exact in double: below
     * 2^31), and per filter the multiplier sa * sw */
    const double *xd = NULL, *wd = NULL;
    double *x_owned = NULL, *w_owned = NULL;
    float *q_scale = NULL;
    const bool int8 = c->precision == KILN_PREC_INT8;
    if (int8)
        s = int8_operands(c, x, wt, F, &x_owned, &w_owned, &q_scale);
    else if ((s = kiln_icall_rounded(c, x, false, &xd, &x_owned)) == KILN_OK)
        s = kiln_icall_rounded(c, wt, true, &wd, &w_owned);
    if (s != KILN_OK) {
        free(x_owned);
        free(w_owned);
        free(q_scale);
        return s;
    }
    if (int8)
        xd = x_owned, wd = w_owned;
    for (int64_t n = 0; n < N; n++) {
        for (int64_t f = 0; f < F; f++) {
            double *o = c->out->data + (size_t)((n * F + f) * OH * OW);
            const double b0 = bias && !int8 ? bias->data[f] : 0.0;
            for (int64_t i = 0; i < OH * OW; i++)
                o[i] = b0;
            const int64_t g = f / Fg;
            for (int64_t ci = 0; ci < Cg; ci++) {
                const double *xp = xd + (size_t)((n * C + g * Cg + ci) * H * W);
                const double *wp = wd + (size_t)((f * Cg + ci) * w.kh * w.kw);
                for (int64_t ky = 0; ky < w.kh; ky++) {
                    for (int64_t kx = 0; kx < w.kw; kx++) {
                        const double wv = wp[ky * w.kw + kx];
                        const int64_t offx = kx * w.dw - w.pl;
                        int64_t ox0, ox1;
                        valid_range(OW, w.sw, offx, W, &ox0, &ox1);
                        for (int64_t oy = 0; oy < OH; oy++) {
                            const int64_t iy = oy * w.sh - w.pt + ky * w.dh;
                            if (iy < 0 || iy >= H)
                                continue;
                            const double *xrow = xp + iy * W;
                            double *orow = o + oy * OW;
                            for (int64_t ox = ox0; ox < ox1; ox++)
                                orow[ox] += wv * xrow[ox * w.sw + offx];
                        }
                    }
                }
            }
            /* int8: the exact sum, then the f32 multiply and add of the
             * compiled epilogue (padded taps are skipped here; compiled,
             * they quantize 0.0 to za and add (za - za) qw = 0) */
            for (int64_t i = 0; int8 && i < OH * OW; i++)
                o[i] = kiln_quant_output((int32_t)o[i], q_scale[f], bias ? (float)bias->data[f] : 0.0f);
        }
    }
    free(x_owned);
    free(w_owned);
    free(q_scale);
    return KILN_OK;
}

/* Shared set-up of the two pools: kernel, stride, padding, (dilation), output
 * dims checked against the output type. The pools accept [..., H, W] with
 * any number of leading axes (planes). */
static kiln_status pool_setup(const kiln_icall *c, bool has_dilation, window *w, bool *ceil_mode, int64_t *oh,
                              int64_t *ow)
{
    kiln_status s;
    int64_t kernel[2];
    if ((s = kiln_icall_check_rank(c, 0, -3)) != KILN_OK ||
        (s = kiln_icall_ints(c, KILN_ATTR_KERNEL, 2, kernel, NULL)) != KILN_OK ||
        (s = read_window(c, has_dilation, w)) != KILN_OK)
        return s;
    w->kh = kernel[0], w->kw = kernel[1];
    if (w->kh < 1 || w->kw < 1)
        return kiln_icall_fail(c, KILN_ERR_SHAPE, "kernel [%lld,%lld] must be positive", (long long)w->kh,
                               (long long)w->kw);
    *ceil_mode = kiln_icall_bool(c, KILN_ATTR_CEIL_MODE, false);
    const kiln_itensor *x = c->in[0];
    if ((s = spatial_out(c, x, w, *ceil_mode, oh, ow)) != KILN_OK)
        return s;
    int64_t dims[KILN_MAX_RANK];
    for (int i = 0; i < x->rank - 2; i++)
        dims[i] = x->dims[i];
    dims[x->rank - 2] = *oh;
    dims[x->rank - 1] = *ow;
    return kiln_icall_check_out(c, x->rank, dims);
}

kiln_status kiln_interp_maxpool2d(const kiln_icall *c)
{
    window w;
    bool ceil_mode;
    int64_t OH, OW;
    kiln_status s = pool_setup(c, true, &w, &ceil_mode, &OH, &OW);
    if (s != KILN_OK)
        return s;
    const kiln_itensor *x = c->in[0];
    const int64_t H = x->dims[x->rank - 2], W = x->dims[x->rank - 1];
    const size_t planes = kiln_idims_product(x->dims, 0, x->rank - 2);
    for (size_t p = 0; p < planes; p++) {
        const double *xp = x->data + p * (size_t)(H * W);
        double *o = c->out->data + p * (size_t)(OH * OW);
        for (int64_t oy = 0; oy < OH; oy++) {
            for (int64_t ox = 0; ox < OW; ox++) {
                /* Padding counts as -inf: only cells inside the input compete;
                 * NaN wins, as in PyTorch. */
                double m = -INFINITY;
                for (int64_t ky = 0; ky < w.kh; ky++) {
                    const int64_t iy = oy * w.sh - w.pt + ky * w.dh;
                    if (iy < 0 || iy >= H)
                        continue;
                    for (int64_t kx = 0; kx < w.kw; kx++) {
                        const int64_t ix = ox * w.sw - w.pl + kx * w.dw;
                        if (ix < 0 || ix >= W)
                            continue;
                        const double v = xp[iy * W + ix];
                        if (v > m || isnan(v))
                            m = v;
                    }
                }
                o[oy * OW + ox] = m;
            }
        }
    }
    return KILN_OK;
}

kiln_status kiln_interp_avgpool2d(const kiln_icall *c)
{
    window w;
    bool ceil_mode;
    int64_t OH, OW;
    kiln_status s = pool_setup(c, false, &w, &ceil_mode, &OH, &OW);
    if (s != KILN_OK)
        return s;
    const bool include_pad = kiln_icall_bool(c, KILN_ATTR_COUNT_INCLUDE_PAD, true);
    const kiln_itensor *x = c->in[0];
    const int64_t H = x->dims[x->rank - 2], W = x->dims[x->rank - 1];
    const size_t planes = kiln_idims_product(x->dims, 0, x->rank - 2);
    for (size_t p = 0; p < planes; p++) {
        const double *xp = x->data + p * (size_t)(H * W);
        double *o = c->out->data + p * (size_t)(OH * OW);
        for (int64_t oy = 0; oy < OH; oy++) {
            for (int64_t ox = 0; ox < OW; ox++) {
                /* As PyTorch: the window clipped to the padded input gives the
                 * divisor with count_include_pad (so a ceil_mode window that
                 * hangs past the bottom/right padding counts only what lies
                 * inside it); clipped to the input, it gives the cells summed
                 * and the divisor without. */
                int64_t y0 = oy * w.sh - w.pt, x0 = ox * w.sw - w.pl;
                int64_t y1 = y0 + w.kh, x1 = x0 + w.kw;
                if (y1 > H + w.pb)
                    y1 = H + w.pb;
                if (x1 > W + w.pr)
                    x1 = W + w.pr;
                const int64_t padded_cells = (y1 - y0) * (x1 - x0);
                if (y0 < 0)
                    y0 = 0;
                if (x0 < 0)
                    x0 = 0;
                if (y1 > H)
                    y1 = H;
                if (x1 > W)
                    x1 = W;
                if (y0 >= y1 || x0 >= x1) {
                    o[oy * OW + ox] = 0.0; /* a window of padding only */
                    continue;
                }
                double sum = 0.0;
                for (int64_t iy = y0; iy < y1; iy++)
                    for (int64_t ix = x0; ix < x1; ix++)
                        sum += xp[iy * W + ix];
                const int64_t divisor = include_pad ? padded_cells : (y1 - y0) * (x1 - x0);
                o[oy * OW + ox] = sum / (double)divisor;
            }
        }
    }
    return KILN_OK;
}

kiln_status kiln_interp_global_avgpool(const kiln_icall *c)
{
    kiln_status s;
    const kiln_itensor *x = c->in[0];
    if ((s = kiln_icall_check_rank(c, 0, -3)) != KILN_OK)
        return s;
    int64_t dims[KILN_MAX_RANK];
    for (int i = 0; i < x->rank; i++)
        dims[i] = i < x->rank - 2 ? x->dims[i] : 1;
    if ((s = kiln_icall_check_out(c, x->rank, dims)) != KILN_OK)
        return s;
    const size_t planes = kiln_idims_product(x->dims, 0, x->rank - 2);
    const size_t hw = kiln_idims_product(x->dims, x->rank - 2, x->rank);
    for (size_t p = 0; p < planes; p++) {
        double sum = 0.0;
        for (size_t i = 0; i < hw; i++)
            sum += x->data[p * hw + i];
        c->out->data[p] = sum / (double)hw;
    }
    return KILN_OK;
}

/* torch.nn.ConvTranspose2d: every input element x[n, c, iy, ix] adds
 * x * weight[c, f - g Fg, ky, kx] to y[n, f, iy sh - pt + ky dh, ix sw - pl +
 * kx dw] for the filters f of c's group; padding crops the full result at
 * top/left (pt, pl) and bottom/right, output_padding adds rows and columns
 * at the bottom/right that only the bias reaches beyond the full result.
 * weight is [C, F/groups, kh, kw]. */
kiln_status kiln_interp_conv_transpose2d(const kiln_icall *c)
{
    kiln_status s;
    const kiln_itensor *x = c->in[0], *wt, *bias = kiln_icall_param(c, "bias");
    int64_t groups, op[2];
    window w;
    if ((s = kiln_icall_check_rank(c, 0, 4)) != KILN_OK || (s = kiln_icall_need_param(c, "weight", &wt)) != KILN_OK ||
        (s = kiln_icall_int(c, KILN_ATTR_GROUPS, &groups)) != KILN_OK || (s = read_window(c, true, &w)) != KILN_OK ||
        (s = kiln_icall_ints(c, KILN_ATTR_OUTPUT_PADDING, 2, op, NULL)) != KILN_OK)
        return s;
    const int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    char xs[128], ws[128];
    kiln_idims_format(x->rank, x->dims, xs, sizeof xs);
    kiln_idims_format(wt->rank, wt->dims, ws, sizeof ws);
    if (wt->rank != 4 || groups < 1 || wt->dims[0] != C || C % groups != 0)
        return kiln_icall_fail(c, KILN_ERR_SHAPE,
                               "input %s and weight %s do not fit groups=%lld (weight must be [C, F/groups, kh, kw])",
                               xs, ws, (long long)groups);
    const int64_t Fg = wt->dims[1], F = Fg * groups, Cg = C / groups;
    w.kh = wt->dims[2], w.kw = wt->dims[3];
    if (bias && (s = kiln_icall_check_param_count(c, "bias", bias, F)) != KILN_OK)
        return s;
    const int64_t OH = (H - 1) * w.sh - w.pt - w.pb + w.dh * (w.kh - 1) + op[0] + 1;
    const int64_t OW = (W - 1) * w.sw - w.pl - w.pr + w.dw * (w.kw - 1) + op[1] + 1;
    if (OH < 1 || OW < 1)
        return kiln_icall_fail(c, KILN_ERR_SHAPE, "the padding leaves no output of input %s", xs);
    if ((s = kiln_icall_check_out(c, 4, (const int64_t[]){N, F, OH, OW})) != KILN_OK)
        return s;

    double *y = c->out->data;
    for (int64_t n = 0; n < N; n++)
        for (int64_t f = 0; f < F; f++)
            for (int64_t i = 0; i < OH * OW; i++)
                y[(n * F + f) * OH * OW + i] = bias ? bias->data[f] : 0.0;
    for (int64_t n = 0; n < N; n++) {
        for (int64_t ch = 0; ch < C; ch++) {
            const int64_t g = ch / Cg;
            const double *xp = x->data + (size_t)((n * C + ch) * H * W);
            for (int64_t fl = 0; fl < Fg; fl++) {
                const int64_t f = g * Fg + fl;
                const double *wp = wt->data + (size_t)((ch * Fg + fl) * w.kh * w.kw);
                double *yp = y + (size_t)((n * F + f) * OH * OW);
                for (int64_t iy = 0; iy < H; iy++)
                    for (int64_t ky = 0; ky < w.kh; ky++) {
                        const int64_t oy = iy * w.sh - w.pt + ky * w.dh;
                        if (oy < 0 || oy >= OH)
                            continue;
                        for (int64_t ix = 0; ix < W; ix++)
                            for (int64_t kx = 0; kx < w.kw; kx++) {
                                const int64_t ox = ix * w.sw - w.pl + kx * w.dw;
                                if (ox >= 0 && ox < OW)
                                    yp[oy * OW + ox] += xp[iy * W + ix] * wp[ky * w.kw + kx];
                            }
                    }
            }
        }
    }
    return KILN_OK;
}

/* torch.nn.AdaptiveAvgPool2d: output cell o of an axis averages the input
 * cells [floor(o in / out), ceil((o + 1) in / out)); when out > in the
 * windows overlap and repeat cells. */
kiln_status kiln_interp_adaptive_avgpool2d(const kiln_icall *c)
{
    const kiln_itensor *x = c->in[0];
    int64_t size[2];
    kiln_status s;
    if ((s = kiln_icall_check_rank(c, 0, -2)) != KILN_OK || (s = kiln_icall_ints(c, KILN_ATTR_SIZE, 2, size, NULL)) != KILN_OK)
        return s;
    const int R = x->rank;
    int64_t dims[KILN_MAX_RANK];
    for (int i = 0; i < R; i++)
        dims[i] = i < R - 2 ? x->dims[i] : size[i - (R - 2)];
    if ((s = kiln_icall_check_out(c, R, dims)) != KILN_OK)
        return s;
    const int64_t H = x->dims[R - 2], W = x->dims[R - 1], OH = size[0], OW = size[1];
    const size_t planes = kiln_idims_product(x->dims, 0, R - 2);
    for (size_t p = 0; p < planes; p++) {
        const double *xp = x->data + p * (size_t)(H * W);
        double *o = c->out->data + p * (size_t)(OH * OW);
        for (int64_t oy = 0; oy < OH; oy++) {
            const int64_t y0 = oy * H / OH, y1 = ((oy + 1) * H + OH - 1) / OH;
            for (int64_t ox = 0; ox < OW; ox++) {
                const int64_t x0 = ox * W / OW, x1 = ((ox + 1) * W + OW - 1) / OW;
                double sum = 0.0;
                for (int64_t iy = y0; iy < y1; iy++)
                    for (int64_t ix = x0; ix < x1; ix++)
                        sum += xp[iy * W + ix];
                o[oy * OW + ox] = sum / (double)((y1 - y0) * (x1 - x0));
            }
        }
    }
    return KILN_OK;
}
