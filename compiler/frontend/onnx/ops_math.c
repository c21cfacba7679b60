/* compiler/frontend/onnx/ops_math.c: elementwise ONNX ops as kiln layers.
 * Where kiln has the op it is used; where an exact composition of kiln ops
 * exists it is written out (Softsign = x / (1 + |x|), Selu = gamma * elu(x),
 * PRelu with a slope kiln's prelu cannot take = relu(x) + slope * min(x, 0));
 * docs/import.md lists each. */
#include <math.h>
#include <string.h>

#include "ox.h"

static const char *type_of(const ox_node *n) { return ox_str(n->p->op_type); }
static bool is(const ox_node *n, const char *t) { return strcmp(type_of(n), t) == 0; }

/* An operand as seen by the binary helpers: a kiln value and its ONNX rank,
 * or a constant value. */
typedef struct operand {
    ox_value *v;   /* NULL: a kiln value made here (kv, rank) */
    kiln_id kv;
    int rank;
} operand;

static operand from_value(ox_ctx *x, ox_value *v)
{
    int64_t dims[OX_MAX_RANK];
    bool b;
    operand o = {v, KILN_NO_ID, v ? ox_shape(x, v, dims, &b) : 0};
    return o;
}

static operand from_kiln(kiln_id kv, int rank) { return (operand){NULL, kv, rank}; }

static kiln_id operand_kv(ox_ctx *x, ox_node *n, const operand *o)
{
    return o->v ? ox_data_value(x, n, o->v) : o->kv;
}

/* A constant operand of one element whose rank does not exceed the other's:
 * the binary op keeps the other operand's shape, so kiln's `scalar:` form
 * says the same. */
static bool scalar_of(ox_ctx *x, const operand *c, const operand *other, double *s)
{
    return c->v && c->v->kind == OX_CONST && c->rank <= other->rank && ox_const_scalar(x, c->v, s);
}

/* a op b; ops whose operand order matters use `reverse` for a scalar left side. */
static kiln_id binary(ox_ctx *x, ox_node *n, kiln_op op, const operand *a, const operand *b, const char *name)
{
    double s;
    if (scalar_of(x, b, a, &s))
        return ox_emit_scalar(x, n, op, operand_kv(x, n, a), s, false, name);
    if (scalar_of(x, a, b, &s))
        return ox_emit_scalar(x, n, op, operand_kv(x, n, b), s,
                              op == KILN_OP_SUB || op == KILN_OP_DIV || op == KILN_OP_POW, name);
    kiln_id ins[2] = {operand_kv(x, n, a), operand_kv(x, n, b)};
    return ox_emit(x, n, op, ins, 2, NULL, name);
}

static bool is_scalar0(ox_ctx *x, ox_value *v)
{
    int64_t d[OX_MAX_RANK];
    bool b;
    return v && ox_shape(x, v, d, &b) == 0;
}

static kiln_op binary_op(const char *t)
{
    if (strcmp(t, "Add") == 0 || strcmp(t, "Sum") == 0 || strcmp(t, "Mean") == 0)
        return KILN_OP_ADD;
    if (strcmp(t, "Sub") == 0)
        return KILN_OP_SUB;
    if (strcmp(t, "Mul") == 0)
        return KILN_OP_MUL;
    if (strcmp(t, "Div") == 0)
        return KILN_OP_DIV;
    if (strcmp(t, "Max") == 0)
        return KILN_OP_MAX;
    return KILN_OP_MIN;
}

int ox_lower_binary(ox_ctx *x, ox_node *n)
{
    if (n->n_in != 2 || !n->in[0] || !n->in[1])
        return ox_refuse(n, x, "%s takes two inputs", type_of(n));
    operand a = from_value(x, n->in[0]), b = from_value(x, n->in[1]);
    if (x->opset < 7 && ox_attr_i(x, n, "broadcast", 0)) {
        /* The old broadcast: b's dims line up with a's from `axis` on. */
        int64_t ad[OX_MAX_RANK], bd[OX_MAX_RANK], nd[OX_MAX_RANK];
        bool ab, bb;
        int ra = ox_shape(x, n->in[0], ad, &ab), rb = ox_shape(x, n->in[1], bd, &bb);
        int64_t axis = ox_attr_i(x, n, "axis", ra - rb);
        if (axis < 0 || axis + rb > ra)
            return ox_refuse(n, x, "the legacy broadcast axis %lld does not fit", (long long)axis);
        for (int k = 0; k < ra; k++)
            nd[k] = k >= axis && k < axis + rb ? bd[k - axis] : 1;
        if (ra != rb && axis + rb != ra) {
            kiln_id bk = ox_data_value(x, n, n->in[1]);
            if (bk == KILN_NO_ID)
                return -1;
            if (bb)
                return ox_refuse(n, x, "a legacy broadcast of a batched operand");
            bk = ox_emit_reshape(x, n, bk, ra, nd, ox_sub_name(x, n, "aligned"));
            b = from_kiln(bk, ra);
        }
    }
    if (n->refused)
        return -1;
    kiln_id y = binary(x, n, binary_op(type_of(n)), &a, &b, ox_out_name(x, n, 0, NULL));
    if (y == KILN_NO_ID)
        return -1;
    ox_set_dyn(n, 0, y, is_scalar0(x, n->in[0]) && is_scalar0(x, n->in[1]));
    return 0;
}

int ox_lower_variadic(ox_ctx *x, ox_node *n)
{
    if (n->n_in == 0 || !n->in[0])
        return ox_refuse(n, x, "it has no inputs");
    for (size_t k = 0; k < n->n_in; k++)
        if (!n->in[k])
            return ox_refuse(n, x, "input %zu is missing", k);
    if (n->n_in == 1) {
        ox_alias(n, 0, n->in[0]);
        return 0;
    }
    kiln_op op = binary_op(type_of(n));
    bool mean = is(n, "Mean"), s0 = true;
    operand acc = from_value(x, n->in[0]);
    for (size_t k = 0; k < n->n_in; k++)
        s0 = s0 && is_scalar0(x, n->in[k]);
    for (size_t k = 1; k < n->n_in; k++) {
        operand b = from_value(x, n->in[k]);
        bool last = k + 1 == n->n_in && !mean;
        char suffix[32];
        snprintf(suffix, sizeof suffix, "%zu", k);
        const char *name = last ? ox_out_name(x, n, 0, NULL) : ox_sub_name(x, n, suffix);
        kiln_id y = binary(x, n, op, &acc, &b, name);
        if (y == KILN_NO_ID)
            return -1;
        acc = from_kiln(y, acc.rank > b.rank ? acc.rank : b.rank);
    }
    kiln_id y = acc.kv;
    if (mean)
        y = ox_emit_scalar(x, n, KILN_OP_DIV, y, (double)n->n_in, false, ox_out_name(x, n, 0, NULL));
    if (y == KILN_NO_ID)
        return -1;
    ox_set_dyn(n, 0, y, s0);
    return 0;
}

/* x^e: the exponents that kiln's cheaper ops compute exactly (x·x for 2, a
 * sqrt for 0.5, ...) as those, any other as kiln's pow (a constant exponent
 * of one element as its scalar, else two operands with broadcasting). */
int ox_lower_pow(ox_ctx *x, ox_node *n)
{
    if (n->n_in != 2 || !n->in[0] || !n->in[1])
        return ox_refuse(n, x, "Pow takes two inputs");
    operand a = from_value(x, n->in[0]), b = from_value(x, n->in[1]);
    bool s0 = is_scalar0(x, n->in[0]) && is_scalar0(x, n->in[1]);
    double e;
    if (!scalar_of(x, &b, &a, &e) || n->in[0]->kind == OX_CONST) {
        kiln_id y = binary(x, n, KILN_OP_POW, &a, &b, ox_out_name(x, n, 0, NULL));
        if (y == KILN_NO_ID)
            return -1;
        ox_set_dyn(n, 0, y, s0);
        return 0;
    }
    kiln_id in = ox_data(x, n, 0), y;
    if (in == KILN_NO_ID)
        return -1;
    if (e == 1) {
        ox_alias(n, 0, n->in[0]);
        return 0;
    } else if (e == 2) {
        kiln_id ins[2] = {in, in};
        y = ox_emit(x, n, KILN_OP_MUL, ins, 2, NULL, ox_out_name(x, n, 0, NULL));
    } else if (e == 0.5) {
        y = ox_emit1(x, n, KILN_OP_SQRT, in, NULL, ox_out_name(x, n, 0, NULL));
    } else if (e == -1) {
        y = ox_emit_scalar(x, n, KILN_OP_DIV, in, 1.0, true, ox_out_name(x, n, 0, NULL));
    } else {
        y = ox_emit_scalar(x, n, KILN_OP_POW, in, e, false, ox_out_name(x, n, 0, NULL));
    }
    if (y == KILN_NO_ID)
        return -1;
    ox_set_dyn(n, 0, y, s0);
    return 0;
}

int ox_lower_unary(ox_ctx *x, ox_node *n)
{
    if (n->n_in < 1 || !n->in[0])
        return ox_refuse(n, x, "its input is missing");
    kiln_id in = ox_data(x, n, 0);
    if (in == KILN_NO_ID)
        return -1;
    bool s0 = is_scalar0(x, n->in[0]);
    static const struct {
        const char *type;
        kiln_op op;
    } simple[] = {{"Relu", KILN_OP_RELU},   {"Sigmoid", KILN_OP_SIGMOID}, {"Tanh", KILN_OP_TANH},
                  {"Exp", KILN_OP_EXP},     {"Sqrt", KILN_OP_SQRT},       {"Neg", KILN_OP_NEG},
                  {"HardSwish", KILN_OP_HARDSWISH}, {"Abs", KILN_OP_ABS}, {"Erf", KILN_OP_ERF},
                  {"Log", KILN_OP_LOG},     {"Softplus", KILN_OP_SOFTPLUS}};
    kiln_id y = KILN_NO_ID;
    kiln_node a = {0};
    for (size_t k = 0; k < sizeof simple / sizeof simple[0]; k++)
        if (is(n, simple[k].type)) {
            y = ox_emit1(x, n, simple[k].op, in, NULL, ox_out_name(x, n, 0, NULL));
            goto done;
        }
    if (is(n, "Elu") || is(n, "LeakyRelu") || is(n, "Celu")) {
        double alpha = ox_attr_f(x, n, "alpha", is(n, "LeakyRelu") ? 0.01 : 1.0);
        if (n->refused)
            return -1;
        if (is(n, "Celu") && alpha != 1.0)
            return ox_refuse(n, x, "Celu with alpha %g (kiln has elu, which is Celu with alpha 1)", alpha);
        kiln_node_set_float(&a, KILN_ATTR_ALPHA, (double)(float)alpha);
        y = ox_emit1(x, n, is(n, "LeakyRelu") ? KILN_OP_LEAKY_RELU : KILN_OP_ELU, in, &a, ox_out_name(x, n, 0, NULL));
    } else if (is(n, "HardSigmoid")) {
        /* kiln's hardsigmoid takes ONNX's alpha and beta (its defaults are PyTorch's) */
        double alpha = ox_attr_f(x, n, "alpha", 0.2), beta = ox_attr_f(x, n, "beta", 0.5);
        if (n->refused)
            return -1;
        kiln_node_set_float(&a, KILN_ATTR_ALPHA, (double)(float)alpha);
        kiln_node_set_float(&a, KILN_ATTR_BETA, (double)(float)beta);
        y = ox_emit1(x, n, KILN_OP_HARDSIGMOID, in, &a, ox_out_name(x, n, 0, NULL));
    } else if (is(n, "Selu")) {
        double alpha = ox_attr_f(x, n, "alpha", 1.67326319217681884765625);
        double gamma = ox_attr_f(x, n, "gamma", 1.05070102214813232421875);
        if (n->refused)
            return -1;
        kiln_node_set_float(&a, KILN_ATTR_ALPHA, (double)(float)alpha);
        kiln_id t = ox_emit1(x, n, KILN_OP_ELU, in, &a, ox_sub_name(x, n, "elu"));
        y = ox_emit_scalar(x, n, KILN_OP_MUL, t, (double)(float)gamma, false, ox_out_name(x, n, 0, NULL));
    } else if (is(n, "Softsign")) {
        /* x / (1 + |x|) */
        kiln_id ins[2] = {in, ox_emit1(x, n, KILN_OP_ABS, in, NULL, ox_sub_name(x, n, "abs"))};
        ins[1] = ox_emit_scalar(x, n, KILN_OP_ADD, ins[1], 1.0, false, ox_sub_name(x, n, "den"));
        y = ox_emit(x, n, KILN_OP_DIV, ins, 2, NULL, ox_out_name(x, n, 0, NULL));
    } else if (is(n, "Reciprocal")) {
        y = ox_emit_scalar(x, n, KILN_OP_DIV, in, 1.0, true, ox_out_name(x, n, 0, NULL));
    } else if (is(n, "Gelu")) {
        const char *approx = ox_attr_s(x, n, "approximate", "none");
        if (n->refused)
            return -1;
        if (strcmp(approx, "none") != 0 && strcmp(approx, "tanh") != 0)
            return ox_refuse(n, x, "approximate '%s'", approx);
        a.attrs[KILN_ATTR_APPROXIMATE].i = strcmp(approx, "tanh") == 0;
        a.attr_set |= 1u << KILN_ATTR_APPROXIMATE;
        y = ox_emit1(x, n, KILN_OP_GELU, in, &a, ox_out_name(x, n, 0, NULL));
    } else {
        return ox_refuse(n, x, "kiln has no operation that computes ONNX's %s", type_of(n));
    }
done:
    if (y == KILN_NO_ID)
        return -1;
    ox_set_dyn(n, 0, y, s0);
    return 0;
}

/* The slope of PRelu as kiln's prelu takes it: constant, and one value or
 * one per channel of axis 1 (ONNX's [C, 1, ..., 1], lined up at the right).
 * Before opset 7 a [C] slope also meant one per channel. */
static bool prelu_slope(ox_ctx *x, ox_node *n, int xr, const int64_t *xd, int64_t *count)
{
    ox_value *v = n->in[1];
    ox_tensor *t = v->kind == OX_CONST ? ox_const(x, NULL, v) : NULL;
    if (!t || !ox_dtype_is_float(t->dtype) || t->rank > xr)
        return false;
    *count = t->count;
    if (t->count == 1)
        return true;
    if (xr < 2 || t->count != xd[1])
        return false;
    if (x->opset < 7 && t->rank == 1)
        return true;
    int at = xr - t->rank; /* x's axis of the slope's axis 0 */
    for (int k = 0; k < t->rank; k++)
        if (t->dims[k] != (k + at == 1 ? xd[1] : 1))
            return false;
    return at <= 1;
}

/* PRelu: kiln's prelu when the slope is one of its shapes; otherwise
 * relu(x) + slope * min(x, 0), exact for every x (one of the two terms is
 * zero). */
int ox_lower_prelu(ox_ctx *x, ox_node *n)
{
    if (n->n_in != 2 || !n->in[0] || !n->in[1])
        return ox_refuse(n, x, "PRelu takes two inputs");
    kiln_id in = ox_data(x, n, 0);
    if (in == KILN_NO_ID)
        return -1;
    int64_t xd[OX_MAX_RANK], sd[OX_MAX_RANK];
    bool xb, sb;
    int xr = ox_shape(x, n->in[0], xd, &xb), sr = ox_shape(x, n->in[1], sd, &sb);
    int64_t count;
    if (prelu_slope(x, n, xr, xd, &count)) {
        kiln_id ins[2] = {in, ox_param(x, n, n->in[1], "weight", 1, &count)};
        kiln_id y = ox_emit(x, n, KILN_OP_PRELU, ins, 2, NULL, ox_out_name(x, n, 0, ox_module_hint(x, n->in[1], "weight")));
        if (y == KILN_NO_ID)
            return -1;
        ox_set_dyn(n, 0, y, xr == 0);
        return 0;
    }
    operand slope = from_value(x, n->in[1]);
    kiln_id pos = ox_emit1(x, n, KILN_OP_RELU, in, NULL, ox_sub_name(x, n, "pos"));
    kiln_id neg = ox_emit_scalar(x, n, KILN_OP_MIN, in, 0.0, false, ox_sub_name(x, n, "neg"));
    if (x->opset < 7 && sr == 1 && xr > 2 && sd[0] == xd[1] && sd[0] != 1) {
        /* Before opset 7 a [C] slope meant one slope per channel. */
        int64_t nd[OX_MAX_RANK];
        for (int k = 0; k < xr - 1; k++)
            nd[k] = k == 0 ? sd[0] : 1;
        kiln_id sk = ox_data(x, n, 1);
        if (sk == KILN_NO_ID)
            return -1;
        slope = from_kiln(ox_emit_reshape(x, n, sk, xr - 1, nd, ox_sub_name(x, n, "slope")), xr - 1);
    }
    operand m = from_kiln(neg, xr);
    kiln_id scaled = binary(x, n, KILN_OP_MUL, &m, &slope, ox_sub_name(x, n, "scaled"));
    kiln_id ins[2] = {pos, scaled};
    kiln_id y = ox_emit(x, n, KILN_OP_ADD, ins, 2, NULL, ox_out_name(x, n, 0, NULL));
    if (y == KILN_NO_ID)
        return -1;
    ox_set_dyn(n, 0, y, xr == 0);
    return 0;
}

static int clip_bound(ox_ctx *x, ox_node *n, size_t i, const char *what, double *out)
{
    if (i >= n->n_in || !n->in[i])
        return 0;
    if (!ox_const_scalar(x, n->in[i], out))
        return ox_refuse(n, x, "its %s '%s' is not a constant scalar", what, n->in[i]->name);
    return 0;
}

static bool computed_bound(ox_ctx *x, ox_node *n, size_t i)
{
    int64_t d[OX_MAX_RANK];
    bool b;
    return i < n->n_in && n->in[i] && n->in[i]->kind == OX_DYN && ox_shape(x, n->in[i], d, &b) == 0;
}

/* Clip with bounds computed at run time (rank-0 values): min(max(x, lo), hi),
 * which is also ONNX's answer when lo > hi. */
static int clip_computed(ox_ctx *x, ox_node *n)
{
    operand v = from_value(x, n->in[0]);
    bool has_hi = n->n_in > 2 && n->in[2];
    if (n->n_in > 1 && n->in[1]) {
        operand lo = from_value(x, n->in[1]);
        kiln_id y = binary(x, n, KILN_OP_MAX, &v, &lo, has_hi ? ox_sub_name(x, n, "low") : ox_out_name(x, n, 0, NULL));
        v = from_kiln(y, v.rank);
    }
    if (has_hi) {
        operand hi = from_value(x, n->in[2]);
        v = from_kiln(binary(x, n, KILN_OP_MIN, &v, &hi, ox_out_name(x, n, 0, NULL)), v.rank);
    }
    if (v.kv == KILN_NO_ID)
        return -1;
    ox_set_dyn(n, 0, v.kv, is_scalar0(x, n->in[0]));
    return 0;
}

int ox_lower_clip(ox_ctx *x, ox_node *n)
{
    double lo = -INFINITY, hi = INFINITY;
    if (n->n_in < 1 || !n->in[0])
        return ox_refuse(n, x, "its input is missing");
    if (x->opset >= 11 && (computed_bound(x, n, 1) || computed_bound(x, n, 2)))
        return clip_computed(x, n);
    if (x->opset < 11) {
        lo = ox_attr_f(x, n, "min", -INFINITY);
        hi = ox_attr_f(x, n, "max", INFINITY);
    } else if (clip_bound(x, n, 1, "min", &lo) || clip_bound(x, n, 2, "max", &hi)) {
        return -1;
    }
    if (n->refused)
        return -1;
    if (lo != lo || hi != hi)
        return ox_refuse(n, x, "a NaN bound");
    if (lo > hi)
        return ox_refuse(n, x, "min %g is above max %g", lo, hi);
    kiln_id in = ox_data(x, n, 0), y;
    if (in == KILN_NO_ID)
        return -1;
    bool s0 = is_scalar0(x, n->in[0]);
    bool has_lo = lo > -3.4028234663852886e38, has_hi = hi < 3.4028234663852886e38;
    if (!has_lo && !has_hi) {
        ox_alias(n, 0, n->in[0]);
        return 0;
    }
    kiln_node a = {0};
    if (lo == 0 && !has_hi) {
        y = ox_emit1(x, n, KILN_OP_RELU, in, NULL, ox_out_name(x, n, 0, NULL));
    } else if (lo == 0 && hi == 6) {
        y = ox_emit1(x, n, KILN_OP_RELU6, in, NULL, ox_out_name(x, n, 0, NULL));
    } else {
        if (has_lo)
            kiln_node_set_float(&a, KILN_ATTR_MIN, (double)(float)lo);
        if (has_hi)
            kiln_node_set_float(&a, KILN_ATTR_MAX, (double)(float)hi);
        y = ox_emit1(x, n, KILN_OP_CLIP, in, &a, ox_out_name(x, n, 0, NULL));
    }
    if (y == KILN_NO_ID)
        return -1;
    ox_set_dyn(n, 0, y, s0);
    return 0;
}

/* Identity, and Dropout at inference. */
int ox_lower_pass(ox_ctx *x, ox_node *n)
{
    if (n->n_in < 1 || !n->in[0])
        return ox_refuse(n, x, "its input is missing");
    if (is(n, "Dropout")) {
        if (n->n_out > 1 && n->out[1])
            return ox_refuse(n, x, "its mask output is used (training)");
        if (x->opset < 7 && ox_attr_i(x, n, "is_test", 0) == 0 && ox_attr(n, "is_test"))
            return ox_refuse(n, x, "is_test is 0 (training)");
        if (n->n_in > 2 && n->in[2]) {
            double mode;
            if (!ox_const_scalar(x, n->in[2], &mode))
                return ox_refuse(n, x, "its training_mode is computed at run time");
            if (mode != 0)
                return ox_refuse(n, x, "training_mode is true");
        }
    }
    ox_alias(n, 0, n->in[0]);
    return 0;
}

int ox_lower_cast(ox_ctx *x, ox_node *n)
{
    if (n->n_in < 1 || !n->in[0])
        return ox_refuse(n, x, "its input is missing");
    int to = OX_T_FLOAT;
    if (is(n, "Cast")) {
        to = (int)ox_attr_i(x, n, "to", OX_T_UNDEFINED);
    } else if (n->n_in > 1 && n->in[1] && n->in[1]->kind == OX_CONST) {
        ox_tensor *t = ox_const(x, n, n->in[1]);
        if (!t)
            return -1;
        to = t->dtype;
    }
    if (n->refused)
        return -1;
    /* kiln computes in float32: a cast to float32 or float64 changes nothing it can express. */
    if (to != OX_T_FLOAT && to != OX_T_DOUBLE)
        return ox_refuse(n, x, "it casts a computed value to %s (kiln computes in float32)", ox_dtype_name(to));
    if (n->in[0]->kind == OX_CONST)
        return ox_refuse(n, x, "a cast of a constant that could not be folded");
    ox_alias(n, 0, n->in[0]);
    return 0;
}
