/* compiler/interp/interp_resize.c: resize, as torch.nn.functional.interpolate
 * computes it on the last two axes (modes nearest, nearest_exact, bilinear,
 * bicubic; antialias off).
 *
 * Each output axis is worked out on its own: for every output index, the
 * input indices it reads and their weights (kiln_resize_axis, ir/ops.h: the
 * code generator builds its tables with the same function). The result is
 * interpolated along x in each input row read, then along y, as PyTorch's
 * kernels do. */
#include "interp_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The number of taps a mode reads along an axis. */
static int taps(kiln_resize_mode mode)
{
    return mode == KILN_RESIZE_BICUBIC ? 4 : mode == KILN_RESIZE_BILINEAR ? 2 : 1;
}

kiln_status kiln_interp_resize(const kiln_icall *c)
{
    const kiln_itensor *x = c->in[0];
    const kiln_node *n = c->n;
    kiln_status s;
    int64_t mode_i;
    if ((s = kiln_icall_check_rank(c, 0, -2)) != KILN_OK || (s = kiln_icall_int(c, KILN_ATTR_MODE, &mode_i)) != KILN_OK)
        return s;
    if (mode_i < KILN_RESIZE_NEAREST || mode_i > KILN_RESIZE_BICUBIC)
        return kiln_icall_fail(c, KILN_ERR_INTERNAL, "mode has the unknown word index %lld", (long long)mode_i);
    const kiln_resize_mode mode = (kiln_resize_mode)mode_i;
    const bool align = kiln_icall_bool(c, KILN_ATTR_ALIGN_CORNERS, false);
    const bool has_size = kiln_node_has(n, KILN_ATTR_SIZE), has_scale = kiln_node_has(n, KILN_ATTR_SCALE);
    if (has_size == has_scale || (has_size && n->attrs[KILN_ATTR_SIZE].n != 2) ||
        (has_scale && n->attrs[KILN_ATTR_SCALE].n != 2))
        return kiln_icall_fail(c, KILN_ERR_INTERNAL, "resize needs exactly one of size [h, w] and scale [sh, sw]");
    const int R = x->rank;
    int64_t dims[KILN_MAX_RANK];
    memcpy(dims, x->dims, sizeof dims);
    double scale[2] = {0.0, 0.0};
    for (int i = 0; i < 2; i++) {
        if (has_size) {
            dims[R - 2 + i] = n->attrs[KILN_ATTR_SIZE].ints[i];
        } else {
            scale[i] = n->attrs[KILN_ATTR_SCALE].floats[i];
            dims[R - 2 + i] = (int64_t)floor((double)x->dims[R - 2 + i] * scale[i]);
        }
    }
    if ((s = kiln_icall_check_out(c, R, dims)) != KILN_OK)
        return s;

    const int64_t H = x->dims[R - 2], W = x->dims[R - 1], OH = dims[R - 2], OW = dims[R - 1];
    const int t = taps(mode);
    /* the column taps once for all rows */
    int64_t (*cx)[4] = malloc((size_t)OW * sizeof *cx);
    double (*wx)[4] = malloc((size_t)OW * sizeof *wx);
    if (!cx || !wx) {
        free(cx);
        free(wx);
        return kiln_icall_fail(c, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int64_t ox = 0; ox < OW; ox++)
        kiln_resize_axis(mode, W, OW, has_scale, scale[1], align, ox, cx[ox], wx[ox]);
    const size_t planes = kiln_idims_product(x->dims, 0, R - 2);
    for (size_t p = 0; p < planes; p++) {
        const double *xp = x->data + p * (size_t)(H * W);
        double *o = c->out->data + p * (size_t)(OH * OW);
        for (int64_t oy = 0; oy < OH; oy++) {
            int64_t cy[4];
            double wy[4];
            kiln_resize_axis(mode, H, OH, has_scale, scale[0], align, oy, cy, wy);
            if (t == 1) { /* nearest: a copy of the element, bit for bit */
                for (int64_t ox = 0; ox < OW; ox++)
                    o[oy * OW + ox] = xp[cy[0] * W + cx[ox][0]];
                continue;
            }
            for (int64_t ox = 0; ox < OW; ox++) {
                /* along x in each row read, then along y */
                double v = 0.0;
                for (int a = 0; a < t; a++) {
                    double row = 0.0;
                    for (int b = 0; b < t; b++)
                        row += wx[ox][b] * xp[cy[a] * W + cx[ox][b]];
                    v += wy[a] * row;
                }
                o[oy * OW + ox] = v;
            }
        }
    }
    free(cx);
    free(wx);
    return KILN_OK;
}
