/* ir/quant.c: the int8 scheme's scalar steps (ir/quant.h). */
#include "quant.h"

#include <float.h>
#include <math.h>

void kiln_quant_act_from_range(double lo, double hi, float *scale, int32_t *zero)
{
    if (!(lo <= 0.0)) /* also NaN */
        lo = 0.0;
    if (!(hi >= 0.0))
        hi = 0.0;
    float s = (float)((hi - lo) / 255.0);
    if (!(s >= FLT_MIN) || !isfinite(s)) {
        *scale = 1.0f;
        *zero = 0;
        return;
    }
    double z = nearbyint(-lo / (double)s);
    *scale = s;
    *zero = z < 0.0 ? 0 : z > 255.0 ? 255 : (int32_t)z;
}

bool kiln_quant_act_make(double scale, int64_t zero, kiln_quant_act *out)
{
    float s = (float)scale;
    if (!(s >= FLT_MIN) || !isfinite(s) || zero < 0 || zero > 255)
        return false;
    *out = (kiln_quant_act){s, 1.0f / s, (int32_t)zero};
    return true;
}

float kiln_quant_weight_scale(const float *w, int64_t k, int64_t stride)
{
    float m = 0.0f;
    for (int64_t i = 0; i < k; i++) {
        float a = fabsf(w[i * stride]);
        if (a > m)
            m = a;
    }
    float s = m / 127.0f;
    return m > 0.0f && isfinite(m) && s >= FLT_MIN ? s : 1.0f;
}

int8_t kiln_quant_weight_q(float w, float sw)
{
    float v = w / sw;
    v = v > -127.0f ? v : -127.0f; /* NaN becomes -127, then 0 below */
    if (isnan(w))
        v = 0.0f;
    v = v < 127.0f ? v : 127.0f;
    return (int8_t)nearbyintf(v);
}

float kiln_quant_out_scale(float sa, float sw) { return sa * sw; }

float kiln_quant_output(int32_t sum, float s, float bias)
{
    /* the product of two floats is exact in double: rounding it to float is
     * the f32 multiply, and no compiler can fuse it with the add below */
    float p = (float)((double)(float)sum * (double)s);
    return p + bias;
}
