/* compiler/frontend/onnx/fold.c: ONNX ops evaluated on constants at import
 * time: Constant nodes, shape arithmetic (Shape, Gather, Slice, Concat, Cast,
 * Unsqueeze, ... over the shapes of dynamic values) and subgraphs of
 * initializers (a transposed weight).
 *
 * Integer tensors may carry the symbolic batch size (ox_tensor.sym): Shape of
 * a batched value gives [batch, 3, 224, 224]. It survives the ops that move
 * elements around and the arithmetic that leaves it unchanged (batch * 1,
 * batch + 0); anything that would compute with it refuses the node, since the
 * batch is chosen only when the compiled model runs. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ox.h"

static const char *op_type(const ox_node *n) { return ox_str(n->p->op_type); }
static bool is(const ox_node *n, const char *type) { return strcmp(op_type(n), type) == 0; }

/* All present inputs constant (and decodable)? 1 yes, 0 no, -1 refused. */
static int all_const(ox_ctx *x, ox_node *n)
{
    for (size_t k = 0; k < n->n_in; k++) {
        if (!n->in[k])
            continue;
        if (n->in[k]->kind != OX_CONST)
            return 0;
        if (!ox_const(x, n, n->in[k]))
            return -1;
    }
    return 1;
}

static ox_tensor *in_const(ox_ctx *x, ox_node *n, size_t k) { return k < n->n_in ? ox_const(x, n, n->in[k]) : NULL; }

static int no_sym(ox_ctx *x, ox_node *n, const ox_tensor *t)
{
    if (t && ox_has_sym(t))
        return ox_refuse(n, x, "it computes with the batch size, which kiln chooses only at run time (pin the batch "
                               "with --input NAME=1x...)");
    return 0;
}

/* Normalizes axis a of a rank-r tensor; -1 (refusing n) when out of range. */
static int norm_axis(ox_ctx *x, ox_node *n, int64_t a, int r, int64_t *out)
{
    *out = 0;
    if (a < -r || a >= r || r == 0)
        return ox_refuse(n, x, "axis %lld is out of range for rank %d", (long long)a, r);
    *out = a < 0 ? a + r : a;
    return 0;
}

/* Row-major strides. */
static void strides_of(int rank, const int64_t *dims, int64_t *st)
{
    int64_t s = 1;
    for (int k = rank - 1; k >= 0; k--) {
        st[k] = s;
        s *= dims[k];
    }
}

int ox_broadcast_dims(int ra, const int64_t *a, int rb, const int64_t *b, int64_t *out)
{
    int r = ra > rb ? ra : rb;
    for (int k = 0; k < r; k++) {
        int ia = k - (r - ra), ib = k - (r - rb);
        int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
        if (da == db || db == 1)
            out[k] = da;
        else if (da == 1)
            out[k] = db;
        else
            return -1;
    }
    return r;
}

/* Index into t of output element `flat` of a broadcast result of rank r and dims od. */
static int64_t bcast_index(const ox_tensor *t, int r, const int64_t *od, int64_t flat)
{
    int64_t st[OX_MAX_RANK];
    strides_of(t->rank, t->dims, st);
    int64_t idx = 0;
    for (int k = r - 1; k >= 0; k--) {
        int64_t c = flat % od[k];
        flat /= od[k];
        int kt = k - (r - t->rank);
        if (kt >= 0 && t->dims[kt] != 1)
            idx += c * st[kt];
    }
    return idx;
}

/* ---- Constant -------------------------------------------------------------- */

int ox_fold_constant(ox_ctx *x, ox_node *n)
{
    const Onnx__AttributeProto *a;
    ox_tensor *t = NULL;
    int64_t len;
    if ((a = ox_attr(n, "value"))) {
        if (!a->t)
            return ox_refuse(n, x, "attribute 'value' is not a tensor");
        char why[512];
        t = ox_tensor_decode(x, a->t, why, sizeof why);
        if (!t)
            return ox_refuse(n, x, "its value cannot be read: %s", why);
    } else if ((a = ox_attr(n, "value_float"))) {
        t = ox_tensor_new(x, n, OX_T_FLOAT, 0, NULL);
        if (t)
            ox_set_f(t, 0, ox_attr_f(x, n, "value_float", 0));
    } else if ((a = ox_attr(n, "value_int"))) {
        t = ox_tensor_new(x, n, OX_T_INT64, 0, NULL);
        if (t)
            t->i[0] = ox_attr_i(x, n, "value_int", 0);
    } else if ((a = ox_attr(n, "value_floats"))) {
        len = (int64_t)a->n_floats;
        t = ox_tensor_new(x, n, OX_T_FLOAT, 1, &len);
        for (int64_t k = 0; t && k < len; k++)
            ox_set_f(t, k, a->floats[k]);
    } else if ((a = ox_attr(n, "value_ints"))) {
        len = (int64_t)a->n_ints;
        t = ox_tensor_new(x, n, OX_T_INT64, 1, &len);
        for (int64_t k = 0; t && k < len; k++)
            t->i[k] = a->ints[k];
    } else if (ox_attr(n, "sparse_value")) {
        return ox_refuse(n, x, "sparse constants are not read");
    } else if (ox_attr(n, "value_string") || ox_attr(n, "value_strings")) {
        return ox_refuse(n, x, "string constants have no meaning in kiln");
    } else {
        return ox_refuse(n, x, "it has no value");
    }
    if (!t || n->refused)
        return -1;
    ox_set_const(n, 0, t);
    return 1;
}

/* ---- elementwise ------------------------------------------------------------- */

static double erf_(double v) { return erf(v); }
static double relu_(double v) { return v > 0 ? v : (v == v ? 0.0 : v); }
static double sigmoid_(double v) { return 1.0 / (1.0 + exp(-v)); }
static double recip_(double v) { return 1.0 / v; }
static double neg_(double v) { return -v; }
static double sign_(double v) { return v > 0 ? 1.0 : v < 0 ? -1.0 : v; }
static double round_(double v) { return nearbyint(v); }

typedef double (*unary_fn)(double);

static unary_fn unary_of(const char *t)
{
    static const struct {
        const char *name;
        unary_fn fn;
    } table[] = {{"Neg", neg_},     {"Abs", fabs},     {"Sqrt", sqrt},        {"Exp", exp},         {"Log", log},
                 {"Floor", floor},  {"Ceil", ceil},    {"Round", round_},     {"Relu", relu_},      {"Tanh", tanh},
                 {"Sigmoid", sigmoid_}, {"Erf", erf_}, {"Reciprocal", recip_}, {"Sign", sign_},     {"Sin", sin},
                 {"Cos", cos}};
    for (size_t k = 0; k < sizeof table / sizeof table[0]; k++)
        if (strcmp(table[k].name, t) == 0)
            return table[k].fn;
    return NULL;
}

static ox_tensor *copy_tensor(ox_ctx *x, ox_node *n, const ox_tensor *s, int dtype)
{
    ox_tensor *t = ox_tensor_new(x, n, dtype, s->rank, s->dims);
    if (!t)
        return NULL;
    for (int64_t i = 0; i < s->count; i++) {
        if (ox_dtype_is_int(dtype) && ox_dtype_is_int(s->dtype))
            ox_set_i(t, i, ox_get_i(s, i));
        else
            ox_set_f(t, i, ox_get_f(s, i));
        if (ox_is_sym(s, i) && ox_set_sym(x, t, i) != 0)
            return NULL;
    }
    return t;
}

static int fold_cast(ox_ctx *x, ox_node *n, ox_tensor *s, int to)
{
    if (!ox_dtype_is_float(to) && !ox_dtype_is_int(to))
        return ox_refuse(n, x, "a cast to %s", ox_dtype_name(to));
    if (ox_has_sym(s) && !ox_dtype_is_int(to))
        return no_sym(x, n, s);
    ox_tensor *t = copy_tensor(x, n, s, to);
    if (!t)
        return -1;
    ox_set_const(n, 0, t);
    return 1;
}

/* The symbolic batch through a binary op: 1 (the result is the batch), 2
 * (the result is *known whatever the batch: comparisons, knowing it is at
 * least 1), 0 (no symbol involved), -1 (refused). */
static int sym_binary(ox_ctx *x, ox_node *n, const char *t, bool sa, double a, bool sb, double b, int64_t *known)
{
    if (!sa && !sb)
        return 0;
    if (sa && sb) {
        if (strcmp(t, "Max") == 0 || strcmp(t, "Min") == 0)
            return 1;
        if (strcmp(t, "Equal") == 0 || strcmp(t, "LessOrEqual") == 0 || strcmp(t, "GreaterOrEqual") == 0)
            return *known = 1, 2;
        if (strcmp(t, "Less") == 0 || strcmp(t, "Greater") == 0)
            return *known = 0, 2;
    } else {
        double other = sa ? b : a;
        if ((strcmp(t, "Add") == 0 || strcmp(t, "Sum") == 0) && other == 0)
            return 1;
        if (strcmp(t, "Sub") == 0 && sa && other == 0)
            return 1;
        if (strcmp(t, "Mul") == 0 && other == 1)
            return 1;
        if (strcmp(t, "Div") == 0 && sa && other == 1)
            return 1;
        /* batch >= 1 decides some comparisons with a constant: write them as batch OP c */
        const char *op = t;
        if (sb) { /* c OP batch == batch OP' c */
            if (strcmp(t, "Less") == 0)
                op = "Greater";
            else if (strcmp(t, "Greater") == 0)
                op = "Less";
            else if (strcmp(t, "LessOrEqual") == 0)
                op = "GreaterOrEqual";
            else if (strcmp(t, "GreaterOrEqual") == 0)
                op = "LessOrEqual";
        }
        if (strcmp(op, "Equal") == 0 && other < 1)
            return *known = 0, 2;
        if ((strcmp(op, "Less") == 0 && other <= 1) || (strcmp(op, "LessOrEqual") == 0 && other < 1))
            return *known = 0, 2;
        if ((strcmp(op, "Greater") == 0 && other < 1) || (strcmp(op, "GreaterOrEqual") == 0 && other <= 1))
            return *known = 1, 2;
    }
    return ox_refuse(n, x, "it computes with the batch size (%s), which kiln chooses only at run time (pin the batch "
                           "with --input NAME=1x...)", t);
}

static double binary(const char *t, double a, double b, bool ints, int64_t ia, int64_t ib, int64_t *iout, int fmod_)
{
    *iout = 0;
    if (strcmp(t, "Add") == 0 || strcmp(t, "Sum") == 0) {
        *iout = (int64_t)((uint64_t)ia + (uint64_t)ib);
        return a + b;
    }
    if (strcmp(t, "Sub") == 0) {
        *iout = (int64_t)((uint64_t)ia - (uint64_t)ib);
        return a - b;
    }
    if (strcmp(t, "Mul") == 0) {
        *iout = (int64_t)((uint64_t)ia * (uint64_t)ib);
        return a * b;
    }
    if (strcmp(t, "Div") == 0) {
        *iout = ib == 0 || (ia == INT64_MIN && ib == -1) ? 0 : ia / ib;
        return a / b;
    }
    if (strcmp(t, "Mod") == 0) {
        if (ints) {
            if (ib == 0 || (ia == INT64_MIN && ib == -1))
                *iout = 0;
            else if (fmod_)
                *iout = ia % ib;
            else {
                int64_t r = ia % ib;
                *iout = r != 0 && ((r < 0) != (ib < 0)) ? r + ib : r;
            }
        }
        if (fmod_)
            return fmod(a, b);
        double r = fmod(a, b);
        return r != 0 && ((r < 0) != (b < 0)) ? r + b : r;
    }
    if (strcmp(t, "Pow") == 0) {
        double p = pow(a, b);
        *iout = p != p ? 0 : p >= 9.2e18 ? INT64_MAX : p <= -9.2e18 ? INT64_MIN : (int64_t)p;
        return p;
    }
    if (strcmp(t, "Max") == 0) {
        *iout = ia > ib ? ia : ib;
        return a != a || b != b ? NAN : a > b ? a : b;
    }
    if (strcmp(t, "Min") == 0) {
        *iout = ia < ib ? ia : ib;
        return a != a || b != b ? NAN : a < b ? a : b;
    }
    bool r;
    if (strcmp(t, "Equal") == 0)
        r = ints ? ia == ib : a == b;
    else if (strcmp(t, "Less") == 0)
        r = ints ? ia < ib : a < b;
    else if (strcmp(t, "Greater") == 0)
        r = ints ? ia > ib : a > b;
    else if (strcmp(t, "LessOrEqual") == 0)
        r = ints ? ia <= ib : a <= b;
    else if (strcmp(t, "GreaterOrEqual") == 0)
        r = ints ? ia >= ib : a >= b;
    else if (strcmp(t, "And") == 0)
        r = ia && ib;
    else if (strcmp(t, "Or") == 0)
        r = ia || ib;
    else if (strcmp(t, "Xor") == 0)
        r = (ia != 0) != (ib != 0);
    else
        r = false;
    *iout = r;
    return r;
}

static bool is_comparison(const char *t)
{
    return strcmp(t, "Equal") == 0 || strcmp(t, "Less") == 0 || strcmp(t, "Greater") == 0 ||
           strcmp(t, "LessOrEqual") == 0 || strcmp(t, "GreaterOrEqual") == 0 || strcmp(t, "And") == 0 ||
           strcmp(t, "Or") == 0 || strcmp(t, "Xor") == 0;
}

/* a op b with broadcasting into a new tensor. */
static ox_tensor *fold_binary(ox_ctx *x, ox_node *n, const char *t, const ox_tensor *a, const ox_tensor *b)
{
    int64_t od[OX_MAX_RANK];
    int r = ox_broadcast_dims(a->rank, a->dims, b->rank, b->dims, od);
    if (r < 0) {
        ox_refuse(n, x, "its operands' shapes do not broadcast");
        return NULL;
    }
    bool cmp = is_comparison(t);
    bool ints = ox_dtype_is_int(a->dtype) && ox_dtype_is_int(b->dtype);
    int dtype = cmp ? OX_T_BOOL : a->dtype;
    ox_tensor *o = ox_tensor_new(x, n, dtype, r, od);
    if (!o)
        return NULL;
    int fmod_ = (int)ox_attr_i(x, n, "fmod", 0);
    for (int64_t i = 0; i < o->count; i++) {
        int64_t ka = bcast_index(a, r, od, i), kb = bcast_index(b, r, od, i);
        double fa = ox_get_f(a, ka), fb = ox_get_f(b, kb);
        int64_t known = 0;
        int s = sym_binary(x, n, t, ox_is_sym(a, ka), fa, ox_is_sym(b, kb), fb, &known);
        if (s < 0)
            return NULL;
        if (s == 2) {
            ox_set_i(o, i, known);
            continue;
        }
        if (s == 1) {
            if (ox_set_sym(x, o, i) != 0)
                return NULL;
            ox_set_i(o, i, ox_is_sym(a, ka) ? ox_get_i(a, ka) : ox_get_i(b, kb));
            continue;
        }
        int64_t iv;
        double fv = binary(t, fa, fb, ints, ox_get_i(a, ka), ox_get_i(b, kb), &iv, fmod_);
        if (ints || cmp)
            ox_set_i(o, i, iv);
        else
            ox_set_f(o, i, fv);
    }
    return o;
}

int ox_fold_elementwise(ox_ctx *x, ox_node *n)
{
    int c = all_const(x, n);
    if (c <= 0)
        return c;
    const char *t = op_type(n);
    ox_tensor *a = in_const(x, n, 0);
    if (!a)
        return ox_refuse(n, x, "its first input is missing");
    if (is(n, "Identity") || (is(n, "Dropout") && n->n_out < 2)) {
        ox_alias(n, 0, n->in[0]);
        return 1;
    }
    if (is(n, "Cast"))
        return fold_cast(x, n, a, (int)ox_attr_i(x, n, "to", OX_T_FLOAT));
    if (is(n, "CastLike")) {
        ox_tensor *b = in_const(x, n, 1);
        return b ? fold_cast(x, n, a, b->dtype) : ox_refuse(n, x, "its second input is missing");
    }
    if (is(n, "Not")) {
        ox_tensor *o = copy_tensor(x, n, a, OX_T_BOOL);
        for (int64_t i = 0; o && i < o->count; i++)
            o->i[i] = !o->i[i];
        if (!o)
            return -1;
        ox_set_const(n, 0, o);
        return 1;
    }
    unary_fn fn = unary_of(t);
    if (fn) {
        if (no_sym(x, n, a))
            return -1;
        if (n->n_in != 1)
            return ox_refuse(n, x, "%s takes one input", t);
        ox_tensor *o = ox_tensor_new(x, n, a->dtype, a->rank, a->dims);
        for (int64_t i = 0; o && i < o->count; i++) {
            /* integer negation wraps (INT64_MIN stays), as in two's complement */
            int64_t v = ox_dtype_is_int(a->dtype) ? ox_get_i(a, i) : 0;
            int64_t neg = (int64_t)(UINT64_C(0) - (uint64_t)v);
            if (ox_dtype_is_int(a->dtype) && is(n, "Neg"))
                ox_set_i(o, i, neg);
            else if (ox_dtype_is_int(a->dtype) && is(n, "Abs"))
                ox_set_i(o, i, v < 0 ? neg : v);
            else
                ox_set_f(o, i, fn(ox_get_f(a, i)));
        }
        if (!o)
            return -1;
        ox_set_const(n, 0, o);
        return 1;
    }
    if (is(n, "Where")) {
        ox_tensor *p = a, *u = in_const(x, n, 1), *v = in_const(x, n, 2);
        if (!u || !v)
            return ox_refuse(n, x, "Where takes three inputs");
        if (no_sym(x, n, p))
            return -1;
        int64_t d1[OX_MAX_RANK], od[OX_MAX_RANK];
        int r1 = ox_broadcast_dims(p->rank, p->dims, u->rank, u->dims, d1);
        int r = r1 < 0 ? -1 : ox_broadcast_dims(r1, d1, v->rank, v->dims, od);
        if (r < 0)
            return ox_refuse(n, x, "its operands' shapes do not broadcast");
        ox_tensor *o = ox_tensor_new(x, n, u->dtype, r, od);
        for (int64_t i = 0; o && i < o->count; i++) {
            const ox_tensor *s = ox_get_i(p, bcast_index(p, r, od, i)) ? u : v;
            int64_t k = bcast_index(s, r, od, i);
            if (ox_dtype_is_int(s->dtype))
                ox_set_i(o, i, ox_get_i(s, k));
            else
                ox_set_f(o, i, ox_get_f(s, k));
            if (ox_is_sym(s, k) && ox_set_sym(x, o, i) != 0)
                return -1;
        }
        if (!o)
            return -1;
        ox_set_const(n, 0, o);
        return 1;
    }
    /* Binary and variadic ops. */
    if (n->n_in == 1) {
        if (strcmp(t, "Max") == 0 || strcmp(t, "Min") == 0 || strcmp(t, "Sum") == 0 || strcmp(t, "Mean") == 0) {
            ox_alias(n, 0, n->in[0]);
            return 1;
        }
        return ox_refuse(n, x, "%s takes two inputs", t);
    }
    const char *step = strcmp(t, "Mean") == 0 ? "Sum" : t;
    ox_tensor *acc = a;
    for (size_t k = 1; k < n->n_in; k++) {
        ox_tensor *b = in_const(x, n, k);
        if (!b)
            return ox_refuse(n, x, "input %zu is missing", k);
        if (ox_dtype_is_float(acc->dtype) != ox_dtype_is_float(b->dtype) && strcmp(t, "Pow") != 0)
            return ox_refuse(n, x, "its operands have different types (%s and %s)", ox_dtype_name(acc->dtype),
                             ox_dtype_name(b->dtype));
        acc = fold_binary(x, n, step, acc, b);
        if (!acc)
            return -1;
        if (strcmp(t, "Sum") != 0 && strcmp(t, "Mean") != 0 && strcmp(t, "Max") != 0 && strcmp(t, "Min") != 0 &&
            n->n_in > 2)
            return ox_refuse(n, x, "%s takes two inputs", t);
    }
    if (strcmp(t, "Mean") == 0) {
        if (no_sym(x, n, acc))
            return -1;
        for (int64_t i = 0; i < acc->count; i++)
            ox_set_f(acc, i, ox_get_f(acc, i) / (double)n->n_in);
    }
    ox_set_const(n, 0, acc);
    return 1;
}

/* ---- shape ops ----------------------------------------------------------------- */

/* A tensor with s's elements and new dims (same count). */
static ox_tensor *reshaped(ox_ctx *x, ox_node *n, const ox_tensor *s, int rank, const int64_t *dims)
{
    ox_tensor *t = ox_tensor_new(x, n, s->dtype, rank, dims);
    if (!t)
        return NULL;
    if (t->count != s->count) {
        ox_refuse(n, x, "cannot reshape %lld elements to %lld", (long long)s->count, (long long)t->count);
        return NULL;
    }
    for (int64_t i = 0; i < s->count; i++) {
        if (t->i)
            t->i[i] = ox_get_i(s, i);
        else
            t->f[i] = ox_get_f(s, i);
        if (ox_is_sym(s, i) && ox_set_sym(x, t, i) != 0)
            return NULL;
    }
    return t;
}

/* Copies element src_i of s into element i of t. */
static int copy_elem(ox_ctx *x, ox_tensor *t, int64_t i, const ox_tensor *s, int64_t src_i)
{
    if (t->i)
        t->i[i] = ox_get_i(s, src_i);
    else
        t->f[i] = ox_get_f(s, src_i);
    if (ox_is_sym(s, src_i))
        return ox_set_sym(x, t, i);
    return 0;
}

/* Resolves an ONNX Reshape target (0 copies, -1 infers) against in dims. */
static int reshape_target(ox_ctx *x, ox_node *n, int in_rank, const int64_t *in, int64_t count, int rank,
                          int64_t *dims, bool allowzero)
{
    int infer = -1;
    int64_t known = 1;
    for (int k = 0; k < rank; k++) {
        if (dims[k] == 0 && !allowzero) {
            if (k >= in_rank)
                return ox_refuse(n, x, "shape entry %d copies a dimension the input does not have", k);
            dims[k] = in[k];
        } else if (dims[k] == -1) {
            if (infer >= 0)
                return ox_refuse(n, x, "the shape has two -1 entries");
            infer = k;
            continue;
        } else if (dims[k] < 0) {
            return ox_refuse(n, x, "shape entry %d is %lld", k, (long long)dims[k]);
        }
        if (dims[k] > 0 && known > INT64_MAX / dims[k])
            return ox_refuse(n, x, "the shape overflows");
        known *= dims[k];
    }
    if (infer >= 0) {
        if (known == 0 || count % known != 0)
            return ox_refuse(n, x, "cannot infer the -1 entry: %lld elements into %lld-element slices",
                             (long long)count, (long long)known);
        dims[infer] = count / known;
    } else if (known != count) {
        return ox_refuse(n, x, "cannot reshape %lld elements to %lld", (long long)count, (long long)known);
    }
    return 0;
}

/* Reads axes from the attribute (before `since`) or input 1. */
static int axes_of(ox_ctx *x, ox_node *n, int64_t since, int64_t *axes, int max)
{
    if (x->opset < since)
        return ox_attr_ints(x, n, "axes", axes, max);
    if (n->n_in < 2 || !n->in[1])
        return -1;
    return ox_input_ints(x, n, 1, "axes", axes, max);
}

/* Squeeze/Unsqueeze result dims; rank in *out_rank. */
static int squeeze_dims(ox_ctx *x, ox_node *n, int rank, const int64_t *dims, int *out_rank, int64_t *out)
{
    int64_t axes[OX_MAX_RANK * 2];
    bool squeeze = is(n, "Squeeze");
    *out_rank = 0;
    int na = axes_of(x, n, 13, axes, OX_MAX_RANK * 2);
    if (n->refused)
        return -1;
    if (squeeze) {
        bool drop[OX_MAX_RANK] = {false};
        if (na < 0) {
            for (int k = 0; k < rank; k++)
                drop[k] = dims[k] == 1;
        }
        for (int k = 0; k < na; k++) {
            int64_t a;
            if (norm_axis(x, n, axes[k], rank, &a))
                return -1;
            if (dims[a] != 1)
                return ox_refuse(n, x, "cannot squeeze axis %lld of size %lld", (long long)a, (long long)dims[a]);
            drop[a] = true;
        }
        int r = 0;
        for (int k = 0; k < rank; k++)
            if (!drop[k])
                out[r++] = dims[k];
        *out_rank = r;
        return 0;
    }
    if (na < 0)
        return ox_refuse(n, x, "Unsqueeze needs axes");
    int r = rank + na;
    if (r > OX_MAX_RANK)
        return ox_refuse(n, x, "the result has rank %d (kiln handles up to %d)", r, OX_MAX_RANK);
    bool ins[OX_MAX_RANK] = {false};
    for (int k = 0; k < na; k++) {
        int64_t a;
        if (norm_axis(x, n, axes[k], r, &a))
            return -1;
        if (ins[a])
            return ox_refuse(n, x, "axis %lld is given twice", (long long)a);
        ins[a] = true;
    }
    for (int k = 0, j = 0; k < r; k++)
        out[k] = ins[k] ? 1 : dims[j++];
    *out_rank = r;
    return 0;
}

typedef ox_slice_axis slice_axis;

int ox_slice_params(ox_ctx *x, ox_node *n, int rank, const int64_t *dims, ox_slice_axis *sl)
{
    int64_t starts[OX_MAX_RANK], ends[OX_MAX_RANK], axes[OX_MAX_RANK], steps[OX_MAX_RANK];
    int ns, ne, na = -1, nst = -1;
    if (x->opset < 10) {
        ns = ox_attr_ints(x, n, "starts", starts, OX_MAX_RANK);
        ne = ox_attr_ints(x, n, "ends", ends, OX_MAX_RANK);
        na = ox_attr_ints(x, n, "axes", axes, OX_MAX_RANK);
    } else {
        ns = ox_input_ints(x, n, 1, "starts", starts, OX_MAX_RANK);
        ne = ox_input_ints(x, n, 2, "ends", ends, OX_MAX_RANK);
        if (n->n_in > 3 && n->in[3])
            na = ox_input_ints(x, n, 3, "axes", axes, OX_MAX_RANK);
        if (n->n_in > 4 && n->in[4])
            nst = ox_input_ints(x, n, 4, "steps", steps, OX_MAX_RANK);
    }
    if (n->refused)
        return -1;
    if (ns < 0 || ne != ns || (na >= 0 && na != ns) || (nst >= 0 && nst != ns))
        return ox_refuse(n, x, "its starts, ends, axes and steps differ in length");
    for (int k = 0; k < rank; k++)
        sl[k] = (slice_axis){0, 1, dims[k]};
    bool seen[OX_MAX_RANK] = {false};
    for (int k = 0; k < ns; k++) {
        int64_t a = na >= 0 ? axes[k] : k;
        if (norm_axis(x, n, a, rank, &a))
            return -1;
        if (seen[a])
            return ox_refuse(n, x, "axis %lld is sliced twice", (long long)a);
        seen[a] = true;
        int64_t step = nst >= 0 ? steps[k] : 1, d = dims[a];
        if (step == 0)
            return ox_refuse(n, x, "a slice step is 0");
        int64_t s = starts[k], e = ends[k];
        if (s < 0)
            s = s < -d ? -d : s, s += d;
        if (e < 0)
            e = e < -d ? -d : e, e += d;
        int64_t count;
        if (step > 0) {
            s = s > d ? d : s;
            e = e > d ? d : e;
            count = e > s ? (e - s - 1) / step + 1 : 0;
        } else {
            s = s > d - 1 ? d - 1 : s;
            e = e > d - 1 ? d - 1 : e;
            if (ends[k] < -d)
                e = -1;
            uint64_t back = UINT64_C(0) - (uint64_t)step; /* |step|, also for INT64_MIN */
            count = s > e ? (int64_t)((uint64_t)(s - e - 1) / back) + 1 : 0;
        }
        sl[a] = (slice_axis){s, step, count};
    }
    return 0;
}

/* Gathers: output element i takes source element src(i), with per-axis maps. */
static ox_tensor *gather_axes(ox_ctx *x, ox_node *n, const ox_tensor *s, int rank, const int64_t *od,
                              const slice_axis *sl)
{
    ox_tensor *t = ox_tensor_new(x, n, s->dtype, rank, od);
    if (!t)
        return NULL;
    int64_t st[OX_MAX_RANK];
    strides_of(s->rank, s->dims, st);
    for (int64_t i = 0; i < t->count; i++) {
        int64_t flat = i, src = 0;
        for (int k = rank - 1; k >= 0; k--) {
            int64_t c = flat % od[k];
            flat /= od[k];
            src += (sl[k].start + c * sl[k].step) * st[k];
        }
        if (copy_elem(x, t, i, s, src) != 0)
            return NULL;
    }
    return t;
}

static int fold_concat(ox_ctx *x, ox_node *n)
{
    ox_tensor *a = in_const(x, n, 0);
    int64_t axis;
    if (norm_axis(x, n, ox_attr_i(x, n, "axis", 1), a->rank, &axis))
        return -1;
    int64_t od[OX_MAX_RANK];
    memcpy(od, a->dims, sizeof od);
    od[axis] = 0;
    for (size_t k = 0; k < n->n_in; k++) {
        ox_tensor *b = in_const(x, n, k);
        if (!b || b->rank != a->rank)
            return ox_refuse(n, x, "its inputs differ in rank");
        for (int d = 0; d < a->rank; d++)
            if (d != axis && b->dims[d] != a->dims[d])
                return ox_refuse(n, x, "its inputs differ outside the concatenated axis");
        od[axis] += b->dims[axis];
    }
    ox_tensor *t = ox_tensor_new(x, n, a->dtype, a->rank, od);
    if (!t)
        return -1;
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++)
        outer *= od[d];
    for (int d = (int)axis + 1; d < a->rank; d++)
        inner *= od[d];
    int64_t w = 0;
    for (int64_t o = 0; o < outer; o++)
        for (size_t k = 0; k < n->n_in; k++) {
            ox_tensor *b = in_const(x, n, k);
            int64_t run = b->dims[axis] * inner;
            for (int64_t j = 0; j < run; j++)
                if (copy_elem(x, t, w++, b, o * run + j) != 0)
                    return -1;
        }
    ox_set_const(n, 0, t);
    return 1;
}

static int fold_gather(ox_ctx *x, ox_node *n)
{
    ox_tensor *d = in_const(x, n, 0), *ix = in_const(x, n, 1);
    if (!ix || !ox_dtype_is_int(ix->dtype))
        return ox_refuse(n, x, "its indices are not integers");
    int64_t axis;
    if (norm_axis(x, n, ox_attr_i(x, n, "axis", 0), d->rank, &axis) || no_sym(x, n, ix))
        return -1;
    int r = d->rank - 1 + ix->rank;
    if (r > OX_MAX_RANK)
        return ox_refuse(n, x, "the result has rank %d", r);
    int64_t od[OX_MAX_RANK];
    int w = 0;
    for (int k = 0; k < axis; k++)
        od[w++] = d->dims[k];
    for (int k = 0; k < ix->rank; k++)
        od[w++] = ix->dims[k];
    for (int k = (int)axis + 1; k < d->rank; k++)
        od[w++] = d->dims[k];
    ox_tensor *t = ox_tensor_new(x, n, d->dtype, r, od);
    if (!t)
        return -1;
    int64_t outer = 1, inner = 1, da = d->dims[axis];
    for (int k = 0; k < axis; k++)
        outer *= d->dims[k];
    for (int k = (int)axis + 1; k < d->rank; k++)
        inner *= d->dims[k];
    int64_t i = 0;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < ix->count; j++) {
            int64_t q = ix->i[j];
            if (q < -da || q >= da)
                return ox_refuse(n, x, "index %lld is out of range for a dimension of %lld", (long long)q,
                                 (long long)da);
            if (q < 0)
                q += da;
            for (int64_t k = 0; k < inner; k++)
                if (copy_elem(x, t, i++, d, (o * da + q) * inner + k) != 0)
                    return -1;
        }
    ox_set_const(n, 0, t);
    return 1;
}

int ox_split_sizes(ox_ctx *x, ox_node *n, int rank, const int64_t *dims, int64_t *axis_out, int64_t *sizes)
{
    int64_t axis;
    if (norm_axis(x, n, ox_attr_i(x, n, "axis", 0), rank, &axis))
        return -1;
    *axis_out = axis;
    int ns = -1;
    if (x->opset < 13)
        ns = ox_attr_ints(x, n, "split", sizes, 64);
    else if (n->n_in > 1 && n->in[1])
        ns = ox_input_ints(x, n, 1, "split", sizes, 64);
    if (n->refused)
        return -1;
    size_t parts = n->n_out;
    if (parts == 0 || parts > 64)
        return ox_refuse(n, x, "it has %zu outputs", parts);
    if (ns < 0) {
        int64_t d = dims[axis];
        int64_t num = ox_attr_i(x, n, "num_outputs", (int64_t)parts);
        if (num != (int64_t)parts)
            return ox_refuse(n, x, "num_outputs %lld for %zu outputs", (long long)num, parts);
        int64_t chunk = (d + (int64_t)parts - 1) / (int64_t)parts;
        if (x->opset < 18 && d % (int64_t)parts != 0)
            return ox_refuse(n, x, "%lld does not split in %zu equal parts", (long long)d, parts);
        for (size_t k = 0; k < parts; k++) {
            int64_t left = d - chunk * (int64_t)k;
            sizes[k] = left < chunk ? (left > 0 ? left : 0) : chunk;
        }
        ns = (int)parts;
    }
    if ((size_t)ns != parts)
        return ox_refuse(n, x, "%d split sizes for %zu outputs", ns, parts);
    int64_t total = 0;
    for (int k = 0; k < ns; k++) {
        if (sizes[k] < 0)
            return ox_refuse(n, x, "a negative split size");
        total += sizes[k];
    }
    if (total != dims[axis])
        return ox_refuse(n, x, "the split sizes add up to %lld, not %lld", (long long)total, (long long)dims[axis]);
    return ns;
}

static int fold_split(ox_ctx *x, ox_node *n)
{
    ox_tensor *a = in_const(x, n, 0);
    int64_t axis, sizes[64];
    int ns = ox_split_sizes(x, n, a->rank, a->dims, &axis, sizes);
    if (ns < 0)
        return -1;
    int64_t start = 0;
    for (int k = 0; k < ns; k++) {
        slice_axis sl[OX_MAX_RANK];
        int64_t od[OX_MAX_RANK];
        for (int d = 0; d < a->rank; d++) {
            sl[d] = (slice_axis){0, 1, a->dims[d]};
            od[d] = a->dims[d];
        }
        sl[axis] = (slice_axis){start, 1, sizes[k]};
        od[axis] = sizes[k];
        start += sizes[k];
        ox_tensor *t = gather_axes(x, n, a, a->rank, od, sl);
        if (!t)
            return -1;
        ox_set_const(n, (size_t)k, t);
    }
    return 1;
}

static int fold_shape(ox_ctx *x, ox_node *n)
{
    ox_value *v = n->in[0];
    if (!v || (v->kind != OX_CONST && v->kind != OX_DYN))
        return 0;
    int64_t dims[OX_MAX_RANK];
    bool batched;
    if (v->kind == OX_CONST && !ox_const(x, n, v))
        return -1;
    int r = ox_shape(x, v, dims, &batched);
    if (is(n, "Size")) {
        ox_tensor *t = ox_tensor_new(x, n, OX_T_INT64, 0, NULL);
        if (!t)
            return -1;
        int64_t c = 1;
        for (int k = batched ? 1 : 0; k < r; k++)
            c *= dims[k];
        t->i[0] = c;
        if (batched) {
            if (c != 1)
                return ox_refuse(n, x, "the number of elements depends on the batch size, which kiln chooses only "
                                       "at run time (pin the batch with --input NAME=1x...)");
            if (ox_set_sym(x, t, 0) != 0)
                return -1;
        }
        ox_set_const(n, 0, t);
        return 1;
    }
    int64_t start = ox_attr_i(x, n, "start", 0), end = ox_attr_i(x, n, "end", r);
    start = start < 0 ? start + r : start;
    end = end < 0 ? end + r : end;
    start = start < 0 ? 0 : start > r ? r : start;
    end = end < 0 ? 0 : end > r ? r : end;
    int64_t len = end > start ? end - start : 0;
    ox_tensor *t = ox_tensor_new(x, n, OX_T_INT64, 1, &len);
    if (!t)
        return -1;
    for (int64_t k = 0; k < len; k++) {
        t->i[k] = dims[start + k];
        if (batched && start + k == 0 && ox_set_sym(x, t, k) != 0)
            return -1;
    }
    ox_set_const(n, 0, t);
    return 1;
}

static int fold_range(ox_ctx *x, ox_node *n)
{
    ox_tensor *s = in_const(x, n, 0), *l = in_const(x, n, 1), *d = in_const(x, n, 2);
    if (!s || !l || !d || s->count != 1 || l->count != 1 || d->count != 1)
        return ox_refuse(n, x, "Range takes three scalars");
    if (no_sym(x, n, s) || no_sym(x, n, l) || no_sym(x, n, d))
        return -1;
    double fs = ox_get_f(s, 0), fl = ox_get_f(l, 0), fd = ox_get_f(d, 0);
    if (fd == 0 || !isfinite(fs) || !isfinite(fl) || !isfinite(fd))
        return ox_refuse(n, x, "a Range with step 0 or infinite bounds");
    double cnt = ceil((fl - fs) / fd);
    int64_t count = cnt > 0 ? (cnt > 9e18 ? INT64_MAX : (int64_t)cnt) : 0;
    if (ox_dtype_is_int(s->dtype)) {
        int64_t is = ox_get_i(s, 0), il = ox_get_i(l, 0), id = ox_get_i(d, 0);
        if (id == 0)
            return ox_refuse(n, x, "a Range with step 0");
        double c2 = ceil(((double)il - (double)is) / (double)id);
        count = c2 > 0 ? (c2 > 9e18 ? INT64_MAX : (int64_t)c2) : 0;
    }
    ox_tensor *t = ox_tensor_new(x, n, s->dtype, 1, &count);
    if (!t)
        return -1;
    for (int64_t k = 0; k < count; k++) {
        if (t->i) /* wrapping, like the integers it counts in */
            ox_set_i(t, k, (int64_t)((uint64_t)ox_get_i(s, 0) + (uint64_t)k * (uint64_t)ox_get_i(d, 0)));
        else
            ox_set_f(t, k, fs + (double)k * fd);
    }
    ox_set_const(n, 0, t);
    return 1;
}

int ox_fold_shape_op(ox_ctx *x, ox_node *n)
{
    if (is(n, "Shape") || is(n, "Size"))
        return fold_shape(x, n);
    int c = all_const(x, n);
    if (c <= 0)
        return c;
    ox_tensor *a = in_const(x, n, 0);
    if (!a)
        return ox_refuse(n, x, "its first input is missing");
    if (is(n, "Identity")) {
        ox_alias(n, 0, n->in[0]);
        return 1;
    }
    if (is(n, "Reshape")) {
        int64_t dims[OX_MAX_RANK];
        int r = x->opset < 5 ? ox_attr_ints(x, n, "shape", dims, OX_MAX_RANK)
                             : ox_input_ints(x, n, 1, "shape", dims, OX_MAX_RANK);
        if (r < 0 || reshape_target(x, n, a->rank, a->dims, a->count, r, dims, ox_attr_i(x, n, "allowzero", 0)))
            return -1;
        ox_tensor *t = reshaped(x, n, a, r, dims);
        if (!t)
            return -1;
        ox_set_const(n, 0, t);
        return 1;
    }
    if (is(n, "Flatten")) {
        int64_t axis = ox_attr_i(x, n, "axis", 1);
        if (axis < 0)
            axis += a->rank;
        if (axis < 0 || axis > a->rank)
            return ox_refuse(n, x, "axis %lld is out of range", (long long)axis);
        int64_t d[2] = {1, 1};
        for (int k = 0; k < a->rank; k++)
            d[k < axis ? 0 : 1] *= a->dims[k];
        ox_tensor *t = reshaped(x, n, a, 2, d);
        if (!t)
            return -1;
        ox_set_const(n, 0, t);
        return 1;
    }
    if (is(n, "Squeeze") || is(n, "Unsqueeze")) {
        int64_t dims[OX_MAX_RANK];
        int r;
        if (squeeze_dims(x, n, a->rank, a->dims, &r, dims))
            return -1;
        ox_tensor *t = reshaped(x, n, a, r, dims);
        if (!t)
            return -1;
        ox_set_const(n, 0, t);
        return 1;
    }
    if (is(n, "Concat"))
        return fold_concat(x, n);
    if (is(n, "Gather"))
        return fold_gather(x, n);
    if (is(n, "Split"))
        return fold_split(x, n);
    if (is(n, "Slice")) {
        slice_axis sl[OX_MAX_RANK];
        int64_t od[OX_MAX_RANK];
        if (ox_slice_params(x, n, a->rank, a->dims, sl))
            return -1;
        for (int k = 0; k < a->rank; k++)
            od[k] = sl[k].count;
        ox_tensor *t = gather_axes(x, n, a, a->rank, od, sl);
        if (!t)
            return -1;
        ox_set_const(n, 0, t);
        return 1;
    }
    if (is(n, "Transpose")) {
        int64_t perm[OX_MAX_RANK];
        int np = ox_attr_ints(x, n, "perm", perm, OX_MAX_RANK);
        if (n->refused)
            return -1;
        if (np < 0)
            for (int k = 0; k < a->rank; k++)
                perm[k] = a->rank - 1 - k;
        else if (np != a->rank)
            return ox_refuse(n, x, "perm has %d entries for rank %d", np, a->rank);
        int64_t od[OX_MAX_RANK], st[OX_MAX_RANK];
        strides_of(a->rank, a->dims, st);
        bool seen[OX_MAX_RANK] = {false};
        for (int k = 0; k < a->rank; k++) {
            if (perm[k] < 0 || perm[k] >= a->rank || seen[perm[k]])
                return ox_refuse(n, x, "perm is not a permutation");
            seen[perm[k]] = true;
            od[k] = a->dims[perm[k]];
        }
        ox_tensor *t = ox_tensor_new(x, n, a->dtype, a->rank, od);
        if (!t)
            return -1;
        for (int64_t i = 0; i < t->count; i++) {
            int64_t flat = i, src = 0;
            for (int k = a->rank - 1; k >= 0; k--) {
                src += (flat % od[k]) * st[perm[k]];
                flat /= od[k];
            }
            if (copy_elem(x, t, i, a, src) != 0)
                return -1;
        }
        ox_set_const(n, 0, t);
        return 1;
    }
    if (is(n, "Expand") || is(n, "Tile")) {
        int64_t sh[OX_MAX_RANK], od[OX_MAX_RANK];
        ox_tensor *shape = in_const(x, n, 1);
        if (shape && ox_has_sym(shape))
            return 0; /* a batched result: the lowering says what it needs */
        int ns = ox_input_ints(x, n, 1, is(n, "Tile") ? "repeats" : "shape", sh, OX_MAX_RANK);
        if (ns < 0)
            return -1;
        int r;
        if (is(n, "Expand")) {
            r = ox_broadcast_dims(a->rank, a->dims, ns, sh, od);
            if (r < 0)
                return ox_refuse(n, x, "the shape does not broadcast with the input");
        } else {
            if (ns != a->rank)
                return ox_refuse(n, x, "repeats has %d entries for rank %d", ns, a->rank);
            r = a->rank;
            for (int k = 0; k < r; k++) {
                if (sh[k] < 0 || (sh[k] > 0 && a->dims[k] > x->max_elements / sh[k]))
                    return ox_refuse(n, x, "repeats %lld is out of range", (long long)sh[k]);
                od[k] = a->dims[k] * sh[k];
            }
        }
        ox_tensor *t = ox_tensor_new(x, n, a->dtype, r, od);
        if (!t)
            return -1;
        int64_t st[OX_MAX_RANK];
        strides_of(a->rank, a->dims, st);
        for (int64_t i = 0; i < t->count; i++) {
            int64_t src;
            if (is(n, "Expand")) {
                src = bcast_index(a, r, od, i);
            } else {
                int64_t flat = i;
                src = 0;
                for (int k = r - 1; k >= 0; k--) {
                    src += ((flat % od[k]) % a->dims[k]) * st[k];
                    flat /= od[k];
                }
            }
            if (copy_elem(x, t, i, a, src) != 0)
                return -1;
        }
        ox_set_const(n, 0, t);
        return 1;
    }
    if (is(n, "ConstantOfShape")) {
        int64_t dims[OX_MAX_RANK];
        if (!ox_dtype_is_int(a->dtype) || a->rank != 1)
            return ox_refuse(n, x, "its shape is not a list of integers");
        if (ox_has_sym(a))
            return 0; /* batched: a constant expanded along the batch (the lowering) */
        int r = ox_input_ints(x, n, 0, "shape", dims, OX_MAX_RANK);
        if (r < 0)
            return -1;
        const Onnx__AttributeProto *va = ox_attr(n, "value");
        ox_tensor *v = NULL;
        if (va) {
            char why[256];
            if (!va->t || !(v = ox_tensor_decode(x, va->t, why, sizeof why)) || v->count != 1)
                return ox_refuse(n, x, "its value is not a one-element tensor");
        }
        ox_tensor *t = ox_tensor_new(x, n, v ? v->dtype : OX_T_FLOAT, r, dims);
        if (!t)
            return -1;
        for (int64_t i = 0; v && i < t->count; i++)
            copy_elem(x, t, i, v, 0);
        ox_set_const(n, 0, t);
        return 1;
    }
    if (is(n, "Range"))
        return fold_range(x, n);
    return 0;
}

/* ---- reductions -------------------------------------------------------------------- */

int ox_reduce_axes(ox_ctx *x, ox_node *n, int rank, bool *reduce, bool *all)
{
    int64_t axes[OX_MAX_RANK * 2];
    int64_t since = is(n, "ReduceSum") ? 13 : 18;
    int na = axes_of(x, n, since, axes, OX_MAX_RANK * 2);
    if (n->refused)
        return -1;
    memset(reduce, 0, sizeof(bool) * OX_MAX_RANK);
    *all = false;
    if (na <= 0) {
        if (ox_attr_i(x, n, "noop_with_empty_axes", 0))
            return 0;
        for (int k = 0; k < rank; k++)
            reduce[k] = true;
        *all = true;
        return 0;
    }
    for (int k = 0; k < na; k++) {
        int64_t a;
        if (norm_axis(x, n, axes[k], rank, &a))
            return -1;
        reduce[a] = true;
    }
    return 0;
}

int ox_fold_reduce(ox_ctx *x, ox_node *n)
{
    int c = all_const(x, n);
    if (c <= 0)
        return c;
    ox_tensor *a = in_const(x, n, 0);
    if (!a || no_sym(x, n, a))
        return -1;
    bool reduce[OX_MAX_RANK], all;
    if (ox_reduce_axes(x, n, a->rank, reduce, &all))
        return -1;
    bool keep = ox_attr_i(x, n, "keepdims", 1) != 0;
    int64_t od[OX_MAX_RANK], kd[OX_MAX_RANK];
    int r = 0;
    for (int k = 0; k < a->rank; k++) {
        kd[k] = reduce[k] ? 1 : a->dims[k];
        if (!reduce[k])
            od[r++] = a->dims[k];
        else if (keep)
            od[r++] = 1;
    }
    ox_tensor *t = ox_tensor_new(x, n, a->dtype, r, od);
    if (!t)
        return -1;
    int64_t cnt = a->count ? 1 : 0;
    for (int k = 0; k < a->rank; k++)
        if (reduce[k])
            cnt *= a->dims[k];
    const char *type = op_type(n);
    double *acc = kiln_arena_alloc(&x->arena, sizeof(double) * (size_t)(t->count ? t->count : 1));
    if (!acc)
        return ox_oom(x), -1;
    double init = strcmp(type, "ReduceMax") == 0 ? -INFINITY : strcmp(type, "ReduceMin") == 0 ? INFINITY
                  : strcmp(type, "ReduceProd") == 0 ? 1.0 : 0.0;
    for (int64_t i = 0; i < t->count; i++)
        acc[i] = init;
    int64_t st[OX_MAX_RANK];
    strides_of(a->rank, kd, st);
    for (int64_t i = 0; i < a->count; i++) {
        int64_t flat = i, dst = 0;
        for (int k = a->rank - 1; k >= 0; k--) {
            int64_t cc = flat % a->dims[k];
            flat /= a->dims[k];
            if (!reduce[k])
                dst += cc * st[k];
        }
        double v = ox_get_f(a, i);
        if (strcmp(type, "ReduceMax") == 0)
            acc[dst] = v > acc[dst] || v != v ? v : acc[dst];
        else if (strcmp(type, "ReduceMin") == 0)
            acc[dst] = v < acc[dst] || v != v ? v : acc[dst];
        else if (strcmp(type, "ReduceProd") == 0)
            acc[dst] *= v;
        else
            acc[dst] += v;
    }
    for (int64_t i = 0; i < t->count; i++)
        ox_set_f(t, i, strcmp(type, "ReduceMean") == 0 ? acc[i] / (double)cnt : acc[i]);
    ox_set_const(n, 0, t);
    return 1;
}
