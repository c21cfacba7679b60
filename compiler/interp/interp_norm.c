/* compiler/interp/interp_norm.c: normalizations. batchnorm is inference
 * batch norm over axis 1 (running statistics), layernorm normalizes over the
 * last axis with the biased variance (torch.nn.LayerNorm), softmax and
 * log_softmax subtract the maximum first. */
#include "interp_internal.h"

#include <math.h>

kiln_status kiln_interp_batchnorm(const kiln_icall *c)
{
    static const char *const roles[4] = {"weight", "bias", "running_mean", "running_var"};
    const kiln_itensor *x = c->in[0], *p[4];
    double eps;
    kiln_status s;
    if ((s = kiln_icall_check_rank(c, 0, -2)) != KILN_OK || (s = kiln_icall_float(c, KILN_ATTR_EPS, &eps)) != KILN_OK)
        return s;
    const int64_t C = x->dims[1];
    for (int i = 0; i < 4; i++)
        if ((s = kiln_icall_need_param(c, roles[i], &p[i])) != KILN_OK ||
            (s = kiln_icall_check_param_count(c, roles[i], p[i], C)) != KILN_OK)
            return s;
    if ((s = kiln_icall_check_out(c, x->rank, x->dims)) != KILN_OK)
        return s;

    /* y = (x - mean) / sqrt(var + eps) * weight + bias, per channel */
    const double *weight = p[0]->data, *bias = p[1]->data, *mean = p[2]->data, *var = p[3]->data;
    const size_t N = (size_t)x->dims[0], inner = kiln_idims_product(x->dims, 2, x->rank);
    for (size_t n = 0; n < N; n++) {
        for (int64_t ch = 0; ch < C; ch++) {
            const double scale = weight[ch] / sqrt(var[ch] + eps);
            const size_t base = (n * (size_t)C + (size_t)ch) * inner;
            for (size_t i = 0; i < inner; i++)
                c->out->data[base + i] = (x->data[base + i] - mean[ch]) * scale + bias[ch];
        }
    }
    return KILN_OK;
}

kiln_status kiln_interp_layernorm(const kiln_icall *c)
{
    const kiln_itensor *x = c->in[0];
    const kiln_itensor *weight = kiln_icall_param(c, "weight"), *bias = kiln_icall_param(c, "bias");
    double eps;
    kiln_status s;
    if ((s = kiln_icall_check_rank(c, 0, -1)) != KILN_OK || (s = kiln_icall_float(c, KILN_ATTR_EPS, &eps)) != KILN_OK)
        return s;
    const int64_t D = x->dims[x->rank - 1];
    if ((weight && (s = kiln_icall_check_param_count(c, "weight", weight, D)) != KILN_OK) ||
        (bias && (s = kiln_icall_check_param_count(c, "bias", bias, D)) != KILN_OK) ||
        (s = kiln_icall_check_out(c, x->rank, x->dims)) != KILN_OK)
        return s;

    const size_t rows = kiln_idims_product(x->dims, 0, x->rank - 1);
    for (size_t r = 0; r < rows; r++) {
        const double *xr = x->data + r * (size_t)D;
        double *yr = c->out->data + r * (size_t)D;
        double mean = 0.0, var = 0.0;
        for (int64_t i = 0; i < D; i++)
            mean += xr[i];
        mean /= (double)D;
        for (int64_t i = 0; i < D; i++)
            var += (xr[i] - mean) * (xr[i] - mean);
        var /= (double)D; /* biased, as PyTorch */
        const double inv = 1.0 / sqrt(var + eps);
        for (int64_t i = 0; i < D; i++) {
            double y = (xr[i] - mean) * inv;
            if (weight)
                y *= weight->data[i];
            if (bias)
                y += bias->data[i];
            yr[i] = y;
        }
    }
    return KILN_OK;
}

/* softmax and log_softmax along `axis`. */
kiln_status kiln_interp_softmax(const kiln_icall *c)
{
    const kiln_itensor *x = c->in[0];
    int64_t axis;
    kiln_status s;
    if ((s = kiln_icall_int(c, KILN_ATTR_AXIS, &axis)) != KILN_OK)
        return s;
    if (axis < 0)
        axis += x->rank;
    if (axis < 0 || axis >= x->rank)
        return kiln_icall_fail(c, KILN_ERR_SHAPE, "axis %lld is out of range for rank %d",
                               (long long)c->n->attrs[KILN_ATTR_AXIS].i, x->rank);
    if ((s = kiln_icall_check_out(c, x->rank, x->dims)) != KILN_OK)
        return s;
    const bool log_form = c->n->op == KILN_OP_LOG_SOFTMAX;
    const size_t outer = kiln_idims_product(x->dims, 0, (int)axis), L = (size_t)x->dims[axis];
    const size_t inner = kiln_idims_product(x->dims, (int)axis + 1, x->rank);
    for (size_t o = 0; o < outer; o++) {
        for (size_t i = 0; i < inner; i++) {
            const double *xp = x->data + o * L * inner + i;
            double *yp = c->out->data + o * L * inner + i;
            double m = -INFINITY;
            for (size_t j = 0; j < L; j++)
                if (xp[j * inner] > m || isnan(xp[j * inner]))
                    m = xp[j * inner];
            double sum = 0.0;
            for (size_t j = 0; j < L; j++)
                sum += exp(xp[j * inner] - m);
            if (log_form) {
                const double lse = log(sum);
                for (size_t j = 0; j < L; j++)
                    yp[j * inner] = xp[j * inner] - m - lse;
            } else {
                for (size_t j = 0; j < L; j++)
                    yp[j * inner] = exp(xp[j * inner] - m) / sum;
            }
        }
    }
    return KILN_OK;
}

/* torch.nn.GroupNorm: the channels (axis 1) in `groups` groups; each group of
 * each item is normalized over its channels and every later axis with the
 * biased variance, then scaled and shifted per channel when affine. */
kiln_status kiln_interp_group_norm(const kiln_icall *c)
{
    const kiln_itensor *x = c->in[0];
    const kiln_itensor *weight = kiln_icall_param(c, "weight"), *bias = kiln_icall_param(c, "bias");
    double eps;
    int64_t groups;
    kiln_status s;
    if ((s = kiln_icall_check_rank(c, 0, -2)) != KILN_OK || (s = kiln_icall_float(c, KILN_ATTR_EPS, &eps)) != KILN_OK ||
        (s = kiln_icall_int(c, KILN_ATTR_GROUPS, &groups)) != KILN_OK)
        return s;
    const int64_t N = x->dims[0], C = x->dims[1];
    if (groups < 1 || C % groups != 0)
        return kiln_icall_fail(c, KILN_ERR_SHAPE, "groups (%lld) must divide the channels (%lld)", (long long)groups,
                               (long long)C);
    if ((weight && (s = kiln_icall_check_param_count(c, "weight", weight, C)) != KILN_OK) ||
        (bias && (s = kiln_icall_check_param_count(c, "bias", bias, C)) != KILN_OK) ||
        (s = kiln_icall_check_out(c, x->rank, x->dims)) != KILN_OK)
        return s;
    const size_t inner = kiln_idims_product(x->dims, 2, x->rank), Cg = (size_t)(C / groups);
    const size_t count = Cg * inner;
    for (int64_t n = 0; n < N; n++) {
        for (int64_t g = 0; g < groups; g++) {
            const size_t base = ((size_t)n * (size_t)C + (size_t)g * Cg) * inner;
            const double *xg = x->data + base;
            double mean = 0.0, var = 0.0;
            for (size_t i = 0; i < count; i++)
                mean += xg[i];
            mean /= (double)count;
            for (size_t i = 0; i < count; i++)
                var += (xg[i] - mean) * (xg[i] - mean);
            var /= (double)count;
            const double inv = 1.0 / sqrt(var + eps);
            for (size_t i = 0; i < count; i++) {
                const size_t ch = (size_t)g * Cg + i / inner;
                double y = (xg[i] - mean) * inv;
                if (weight)
                    y *= weight->data[ch];
                if (bias)
                    y += bias->data[ch];
                c->out->data[base + i] = y;
            }
        }
    }
    return KILN_OK;
}
