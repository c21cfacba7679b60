/* compiler/interp/interp_elementwise.c: the one-input elementwise ops (the
 * ones usable as `activation:`) and the binary ops with NumPy broadcasting,
 * each with its PyTorch definition. NaN propagates as in PyTorch: relu,
 * clip, max and min return NaN for a NaN operand. */
#include "interp_internal.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Unary                                                                     */
/* ------------------------------------------------------------------------ */

/* Attributes a unary op may read. */
typedef struct unary_attrs {
    double alpha, beta;
    bool has_min, has_max;
    double min, max;
} unary_attrs;

typedef double (*unary_fn)(double x, const unary_attrs *a);

static double relu(double x, const unary_attrs *a)
{
    return isnan(x) ? x : x > 0.0 ? x : 0.0;
}

static double relu6(double x, const unary_attrs *a)
{
    return isnan(x) ? x : x < 0.0 ? 0.0 : x > 6.0 ? 6.0 : x;
}

static double sigmoid(double x, const unary_attrs *a) { return 1.0 / (1.0 + exp(-x)); }
static double tanh_(double x, const unary_attrs *a) { return tanh(x); }
static double silu(double x, const unary_attrs *a) { return x / (1.0 + exp(-x)); }
/* torch: x * relu6(x + 3) / 6 and relu6(x + 3) / 6 */
static double hardswish(double x, const unary_attrs *a) { return x * relu6(x + 3.0, a) / 6.0; }
static double hardsigmoid(double x, const unary_attrs *a) { return relu6(x + 3.0, a) / 6.0; }
/* hardsigmoid with other alpha and beta (ONNX's form): clip(alpha x + beta, 0, 1) */
static double hardsigmoid_ab(double x, const unary_attrs *a)
{
    double y = a->alpha * x + a->beta;
    return isnan(y) ? y : y < 0.0 ? 0.0 : y > 1.0 ? 1.0 : y;
}
static double exp_(double x, const unary_attrs *a) { return exp(x); }
static double sqrt_(double x, const unary_attrs *a) { return sqrt(x); }
static double neg(double x, const unary_attrs *a) { return -x; }
static double erf_(double x, const unary_attrs *a) { return erf(x); }
static double abs_(double x, const unary_attrs *a) { return fabs(x); }
static double log_(double x, const unary_attrs *a) { return log(x); }
/* torch.nn.Softplus(beta=1, threshold=20): x above the threshold, else log(1 + e^x) */
static double softplus(double x, const unary_attrs *a) { return x > 20.0 ? x : log1p(exp(x)); }

#define SQRT_HALF 0.70710678118654752440      /* 1/√2 */
#define SQRT_2_OVER_PI 0.79788456080286535588 /* √(2/π) */

/* torch.nn.GELU(approximate='none'): x * Φ(x) = x/2 * (1 + erf(x/√2)) */
static double gelu_erf(double x, const unary_attrs *a) { return 0.5 * x * (1.0 + erf(x * SQRT_HALF)); }

/* torch.nn.GELU(approximate='tanh'): x/2 * (1 + tanh(√(2/π) * (x + 0.044715 x³))) */
static double gelu_tanh(double x, const unary_attrs *a)
{
    return 0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
}

/* torch: x > 0 ? x : alpha * x */
static double leaky_relu(double x, const unary_attrs *a) { return x > 0.0 ? x : a->alpha * x; }
/* torch: x > 0 ? x : alpha * (exp(x) - 1) */
static double elu(double x, const unary_attrs *a) { return x > 0.0 ? x : a->alpha * expm1(x); }

/* torch.clamp: min(max(x, lo), hi), NaN stays NaN. */
static double clip(double x, const unary_attrs *a)
{
    if (isnan(x))
        return x;
    if (a->has_min && x < a->min)
        x = a->min;
    if (a->has_max && x > a->max)
        x = a->max;
    return x;
}

kiln_status kiln_interp_unary(const kiln_icall *c)
{
    const kiln_node *n = c->n;
    const kiln_itensor *x = c->in[0];
    unary_attrs a = {0};
    unary_fn f = NULL;
    kiln_status s;
    switch (n->op) {
    case KILN_OP_RELU: f = relu; break;
    case KILN_OP_RELU6: f = relu6; break;
    case KILN_OP_SIGMOID: f = sigmoid; break;
    case KILN_OP_TANH: f = tanh_; break;
    case KILN_OP_SILU: f = silu; break;
    case KILN_OP_HARDSWISH: f = hardswish; break;
    case KILN_OP_HARDSIGMOID:
        if ((s = kiln_icall_float(c, KILN_ATTR_ALPHA, &a.alpha)) != KILN_OK ||
            (s = kiln_icall_float(c, KILN_ATTR_BETA, &a.beta)) != KILN_OK)
            return s;
        /* PyTorch's defaults: its own formula, relu6(x + 3) / 6 */
        f = a.alpha == 1.0 / 6.0 && a.beta == 0.5 ? hardsigmoid : hardsigmoid_ab;
        break;
    case KILN_OP_EXP: f = exp_; break;
    case KILN_OP_SQRT: f = sqrt_; break;
    case KILN_OP_NEG: f = neg; break;
    case KILN_OP_ERF: f = erf_; break;
    case KILN_OP_ABS: f = abs_; break;
    case KILN_OP_LOG: f = log_; break;
    case KILN_OP_SOFTPLUS: f = softplus; break;
    case KILN_OP_GELU: {
        /* `approximate` is a word: "none" (erf) or "tanh". */
        int64_t approx;
        if ((s = kiln_icall_int(c, KILN_ATTR_APPROXIMATE, &approx)) != KILN_OK)
            return s;
        const char *const *words = kiln_attr_words(KILN_ATTR_APPROXIMATE);
        const char *word = NULL;
        for (int64_t i = 0; words && words[i] && !word; i++)
            if (i == approx)
                word = words[i];
        if (word && strcmp(word, "none") == 0)
            f = gelu_erf;
        else if (word && strcmp(word, "tanh") == 0)
            f = gelu_tanh;
        else
            return kiln_icall_fail(c, KILN_ERR_INTERNAL, "approximate has the unknown word index %lld",
                                   (long long)approx);
        break;
    }
    case KILN_OP_LEAKY_RELU:
    case KILN_OP_ELU:
        if ((s = kiln_icall_float(c, KILN_ATTR_ALPHA, &a.alpha)) != KILN_OK)
            return s;
        f = n->op == KILN_OP_ELU ? elu : leaky_relu;
        break;
    case KILN_OP_CLIP:
        a.has_min = kiln_node_has(n, KILN_ATTR_MIN);
        a.has_max = kiln_node_has(n, KILN_ATTR_MAX);
        a.min = n->attrs[KILN_ATTR_MIN].f;
        a.max = n->attrs[KILN_ATTR_MAX].f;
        f = clip;
        break;
    default:
        return kiln_icall_fail(c, KILN_ERR_INTERNAL, "not a unary op");
    }
    if ((s = kiln_icall_check_out(c, x->rank, x->dims)) != KILN_OK)
        return s;
    for (size_t i = 0; i < x->count; i++)
        c->out->data[i] = f(x->data[i], &a);
    return KILN_OK;
}

/* ------------------------------------------------------------------------ */
/* Binary                                                                    */
/* ------------------------------------------------------------------------ */

typedef double (*binary_fn)(double a, double b);

static double add(double a, double b) { return a + b; }
static double sub(double a, double b) { return a - b; }
static double mul(double a, double b) { return a * b; }
static double div_(double a, double b) { return a / b; }
/* torch.maximum / torch.minimum: NaN if either is NaN. */
static double max_(double a, double b) { return isnan(a) || isnan(b) ? NAN : a > b ? a : b; }
static double min_(double a, double b) { return isnan(a) || isnan(b) ? NAN : a < b ? a : b; }
/* torch.pow: C's pow (a negative base with a fractional exponent is NaN, x^0 is 1) */
static double pow_(double a, double b) { return pow(a, b); }

kiln_status kiln_interp_binary(const kiln_icall *c)
{
    binary_fn f;
    switch (c->n->op) {
    case KILN_OP_ADD: f = add; break;
    case KILN_OP_SUB: f = sub; break;
    case KILN_OP_MUL: f = mul; break;
    case KILN_OP_DIV: f = div_; break;
    case KILN_OP_MAX: f = max_; break;
    case KILN_OP_MIN: f = min_; break;
    case KILN_OP_POW: f = pow_; break;
    default: return kiln_icall_fail(c, KILN_ERR_INTERNAL, "not a binary op");
    }

    /* The operands: two inputs, or one input and the scalar as a rank-0
     * tensor; `reverse` swaps them (s - x, s / x). */
    kiln_itensor scalar = {.rank = 0, .count = 1};
    double scalar_value;
    const kiln_itensor *a = c->in[0], *b;
    if (c->n_in == 2) {
        b = c->in[1];
    } else if (c->n_in == 1) {
        kiln_status s = kiln_icall_float(c, KILN_ATTR_SCALAR, &scalar_value);
        if (s != KILN_OK)
            return s;
        scalar.data = &scalar_value;
        b = &scalar;
    } else {
        return kiln_icall_fail(c, KILN_ERR_INTERNAL, "%u operands", c->n_in);
    }
    if (kiln_icall_bool(c, KILN_ATTR_REVERSE, false)) {
        const kiln_itensor *t = a;
        a = b;
        b = t;
    }

    /* NumPy broadcasting: align the dims at the right; each pair is equal or
     * one of them is 1 (a stride of 0 repeats that operand). */
    const int R = a->rank > b->rank ? a->rank : b->rank;
    int64_t dims[KILN_MAX_RANK], sa[KILN_MAX_RANK], sb[KILN_MAX_RANK];
    int64_t stride_a = 1, stride_b = 1;
    for (int i = R - 1; i >= 0; i--) {
        const int ia = i - (R - a->rank), ib = i - (R - b->rank);
        const int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            char x[128], y[128];
            return kiln_icall_fail(c, KILN_ERR_SHAPE, "cannot broadcast %s with %s",
                                   kiln_idims_format(a->rank, a->dims, x, sizeof x),
                                   kiln_idims_format(b->rank, b->dims, y, sizeof y));
        }
        dims[i] = da == 1 ? db : da;
        sa[i] = da == 1 ? 0 : stride_a;
        sb[i] = db == 1 ? 0 : stride_b;
        stride_a *= da;
        stride_b *= db;
    }
    kiln_status s = kiln_icall_check_out(c, R, dims);
    if (s != KILN_OK)
        return s;

    /* The innermost axis as a strided loop; an odometer over the others. */
    const int64_t inner = R > 0 ? dims[R - 1] : 1;
    const int64_t ia_step = R > 0 ? sa[R - 1] : 0, ib_step = R > 0 ? sb[R - 1] : 0;
    const size_t rows = c->out->count / (size_t)(inner > 0 ? inner : 1);
    int64_t idx[KILN_MAX_RANK] = {0};
    int64_t oa = 0, ob = 0;
    double *o = c->out->data;
    for (size_t r = 0; r < rows; r++, o += inner) {
        for (int64_t j = 0; j < inner; j++)
            o[j] = f(a->data[oa + j * ia_step], b->data[ob + j * ib_step]);
        for (int ax = R - 2; ax >= 0; ax--) {
            oa += sa[ax], ob += sb[ax];
            if (++idx[ax] < dims[ax])
                break;
            oa -= sa[ax] * dims[ax], ob -= sb[ax] * dims[ax];
            idx[ax] = 0;
        }
    }
    return KILN_OK;
}

/* ------------------------------------------------------------------------ */
/* prelu                                                                     */
/* ------------------------------------------------------------------------ */

/* torch.nn.PReLU: x > 0 ? x : w x, w per channel (axis 1) or one for all. */
kiln_status kiln_interp_prelu(const kiln_icall *c)
{
    const kiln_itensor *x = c->in[0], *w;
    kiln_status s;
    if ((s = kiln_icall_need_param(c, "weight", &w)) != KILN_OK ||
        (s = kiln_icall_check_out(c, x->rank, x->dims)) != KILN_OK)
        return s;
    const int64_t C = w->count == 1 ? 1 : (x->rank >= 2 ? x->dims[1] : -1);
    if ((s = kiln_icall_check_param_count(c, "weight", w, C)) != KILN_OK)
        return s;
    const size_t inner = x->rank >= 2 ? kiln_idims_product(x->dims, 2, x->rank) : x->count;
    for (size_t i = 0; i < x->count; i++) {
        const double wv = C == 1 ? w->data[0] : w->data[(i / inner) % (size_t)C];
        const double v = x->data[i];
        c->out->data[i] = v > 0.0 ? v : wv * v;
    }
    return KILN_OK;
}
