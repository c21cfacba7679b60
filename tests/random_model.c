/* tests/random_model.c: see random_model.h.
 *
 * The generator keeps the list of values made so far (model inputs and
 * layer outputs) with their shapes, computed here by the rules of
 * FORMAT.md and ir/ops.c, and a current value that the next layer reads.
 * Each step draws an op among those whose rule the current value can meet;
 * an op that cannot be placed (a kernel larger than the input, a size over
 * the element budget) returns false and another is drawn. */
#include "random_model.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RM_MAX_VALUES 256
#define RM_MAX_RANK 5

typedef struct rm_value {
    char name[24];
    int rank;
    int64_t d[RM_MAX_RANK]; /* d[0] is the batch (1 in a model with fixed shapes) */
    double s;               /* rough magnitude (typical |x|) */
    bool nonneg;            /* every element >= 0 */
    bool pos;               /* every element > 0, and log is safe */
    bool input;             /* a model input */
    bool narrow;            /* spread small against the mean (after sigmoid, + scalar, ...): f32 rounding
                               of the values is then large against their differences, which layernorm
                               and group_norm amplify; they are not applied to such a value */
} rm_value;

typedef struct rm_buf {
    char *p;
    size_t len, cap;
    bool oom;
} rm_buf;

typedef struct rm_state {
    uint64_t rng;
    bool batched;
    int64_t max_elements;
    rm_value v[RM_MAX_VALUES];
    int n, cur;
    int n_layers;
    rm_buf layers;
    bool use_res, use_gate, use_mlp; /* block templates used */
} rm_state;

static void bprintf(rm_buf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = true;
            return;
        }
        if (b->p && b->len + (size_t)k < b->cap) {
            b->len += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + (size_t)k + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

static uint64_t next(rm_state *st)
{
    uint64_t x = (st->rng += 0x9E3779B97F4A7C15ull);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}
static int rnd(rm_state *st, int n) { return n <= 1 ? 0 : (int)(next(st) % (uint64_t)n); }
static bool chance(rm_state *st, int percent) { return rnd(st, 100) < percent; }
static double uniform(rm_state *st, double lo, double hi)
{
    return lo + (hi - lo) * ((double)(next(st) >> 11) / 9007199254740992.0);
}
/* A short decimal that strtod reads back exactly as written. */
static double pick_float(rm_state *st, double lo, double hi) { return round(uniform(st, lo, hi) * 100.0) / 100.0; }

/* Dimensions: 1, primes, the vector widths 8 and 16 and the GEMM tile rows
 * 6 and 14, each +-1. */
static const int64_t dims_list[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 13, 14, 15, 16, 17, 19, 23, 29, 31, 33};
#define N_DIMS ((int)(sizeof dims_list / sizeof dims_list[0]))

static int64_t pick_dim(rm_state *st, int64_t lo, int64_t hi)
{
    for (int tries = 0; tries < 64; tries++) {
        int64_t x = dims_list[rnd(st, N_DIMS)];
        if (x >= lo && x <= hi)
            return x;
    }
    return lo;
}

static int64_t elements(const rm_value *v)
{
    int64_t n = 1;
    for (int i = 1; i < v->rank; i++)
        n *= v->d[i];
    return n;
}

static void write_shape(rm_buf *b, const rm_state *st, const rm_value *v)
{
    bprintf(b, "[");
    for (int i = 0; i < v->rank; i++) {
        if (i == 0 && st->batched)
            bprintf(b, "batch");
        else
            bprintf(b, "%s%lld", i ? ", " : "", (long long)v->d[i]);
    }
    bprintf(b, "]");
}

static rm_value *cur(rm_state *st) { return &st->v[st->cur]; }

/* Starts a layer reading `in` (NULL: the current value, written explicitly
 * all the same, so that the text reads alone): "  - {name: lN, op: OP,
 * input: X". The caller adds attributes and calls end_layer. */
static void begin_layer(rm_state *st, const char *op, const rm_value *in)
{
    bprintf(&st->layers, "  - {name: l%d, op: %s, input: %s", st->n_layers, op, (in ? in : cur(st))->name);
}

/* Ends the layer and makes its output (shape `out`) the current value. */
static void end_layer(rm_state *st, const rm_value *out)
{
    bprintf(&st->layers, "}\n");
    if (st->n >= RM_MAX_VALUES)
        st->n = RM_MAX_VALUES - 1; /* not reached with the layer counts used; keeps the array in bounds */
    rm_value *v = &st->v[st->n];
    *v = *out;
    v->input = false;
    snprintf(v->name, sizeof v->name, "l%d", st->n_layers);
    st->cur = st->n++;
    st->n_layers++;
}

static void attr(rm_state *st, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    bprintf(&st->layers, ", %s", tmp);
}

static void attr_ints(rm_state *st, const char *key, const int64_t *x, int n)
{
    bprintf(&st->layers, ", %s: [", key);
    for (int i = 0; i < n; i++)
        bprintf(&st->layers, "%s%lld", i ? ", " : "", (long long)x[i]);
    bprintf(&st->layers, "]");
}

/* An int or a pair, the pair written as a list or, when equal, sometimes as one int. */
static void attr_pair(rm_state *st, const char *key, const int64_t p[2])
{
    if (p[0] == p[1] && chance(st, 60))
        attr(st, "%s: %lld", key, (long long)p[0]);
    else
        attr_ints(st, key, p, 2);
}

/* ---- one-input elementwise ops ---------------------------------------------------- */

/* The elementwise ops any value may take, with the magnitude and sign after. */
typedef struct unary_op {
    const char *name;
    const char *attrs; /* extra attributes, or "" */
    int kind;          /* 0: s stays, 1: bounded by 1, 2: non-negative, 3: bounded and non-negative,
                          4: positive, |x| stays about the same */
} unary_op;

static const unary_op unary_ops[] = {
    {"relu", "", 2},
    {"relu6", "", 2},
    {"sigmoid", "", 3},
    {"tanh", "", 1},
    {"silu", "", 0},
    {"hardswish", "", 0},
    {"hardsigmoid", "", 3},
    {"hardsigmoid", "alpha: 0.2, beta: 0.5", 3},
    {"neg", "", 0},
    {"gelu", "", 0},
    {"gelu", "approximate: tanh", 0},
    {"leaky_relu", "", 0},
    {"leaky_relu", "alpha: 0.2", 0},
    {"elu", "", 0},
    {"elu", "alpha: 0.5", 0},
    {"clip", "min: -0.5, max: 0.75", 1},
    {"clip", "min: 0", 2},
    {"clip", "max: 0.25", 0},
    {"erf", "", 1},
    {"abs", "", 2},
    {"softplus", "", 4},
    {"identity", "", 0},
    {"dropout", "", 0},
};
#define N_UNARY ((int)(sizeof unary_ops / sizeof unary_ops[0]))

static void apply_unary_kind(rm_value *o, int kind)
{
    switch (kind) {
    case 1: o->s = fmin(o->s, 1.0); o->nonneg = o->pos = false; break;
    case 2: o->nonneg = true; o->pos = false; break;
    case 3: o->s = fmin(o->s, 1.0); o->nonneg = true; o->pos = false; o->narrow = true; break;
    case 4: o->s += 0.7; o->nonneg = true; o->pos = o->s < 8; o->narrow = true; break;
    default: o->nonneg = o->pos = false; break;
    }
}

static bool op_unary(rm_state *st)
{
    const unary_op *u = &unary_ops[rnd(st, N_UNARY)];
    rm_value o = *cur(st);
    begin_layer(st, u->name, NULL);
    if (*u->attrs)
        attr(st, "%s", u->attrs);
    apply_unary_kind(&o, u->kind);
    if (strcmp(u->name, "sigmoid") == 0)
        o.pos = cur(st)->s < 4;
    end_layer(st, &o);
    return true;
}

/* An `activation:` for dense and conv2d: a name or a map with attributes. */
static void attr_activation(rm_state *st, rm_value *o)
{
    if (!chance(st, 45))
        return;
    const unary_op *u = &unary_ops[rnd(st, N_UNARY - 2)]; /* not identity/dropout */
    if (*u->attrs)
        attr(st, "activation: {op: %s, %s}", u->name, u->attrs);
    else
        attr(st, "activation: %s", u->name);
    apply_unary_kind(o, u->kind);
    if (strcmp(u->name, "sigmoid") == 0)
        o->pos = o->s < 4;
}

/* abs, then + c: every element >= c (before log, pow, a tensor divisor). */
static void make_positive(rm_state *st, double c)
{
    rm_value o = *cur(st);
    begin_layer(st, "abs", NULL);
    o.nonneg = true;
    end_layer(st, &o);
    begin_layer(st, "add", NULL);
    attr(st, "scalar: %g", c);
    o.s += c;
    o.pos = true;
    o.narrow = true;
    end_layer(st, &o);
}

/* Keeps magnitudes in a range where every op stays well conditioned. */
static void tame(rm_state *st)
{
    rm_value *v = cur(st);
    if (v->s <= 6.0)
        return;
    rm_value o = *v;
    int k = rnd(st, 3);
    if (k == 0 || v->rank < 2) {
        begin_layer(st, "tanh", NULL);
        o.s = 1.0;
    } else if (k == 1 && v->d[v->rank - 1] >= 2 && !v->narrow) {
        begin_layer(st, "layernorm", NULL);
        o.s = 1.2;
    } else {
        begin_layer(st, "mul", NULL);
        attr(st, "scalar: %g", 1.0 / ceil(v->s));
        o.s = v->s / ceil(v->s);
    }
    o.nonneg = o.pos = false;
    end_layer(st, &o);
}

static bool op_exp(rm_state *st)
{
    if (cur(st)->s > 1.5) {
        rm_value o = *cur(st);
        begin_layer(st, "tanh", NULL);
        o.s = 1.0;
        o.nonneg = o.pos = false;
        end_layer(st, &o);
    }
    rm_value o = *cur(st);
    begin_layer(st, "exp", NULL);
    o.s = exp(2.0 * o.s);
    o.nonneg = true;
    o.pos = true;
    o.narrow = true;
    end_layer(st, &o);
    return true;
}

static bool op_log_sqrt(rm_state *st)
{
    bool is_log = chance(st, 50);
    if (is_log ? !cur(st)->pos : !cur(st)->nonneg)
        make_positive(st, pick_float(st, 0.1, 1.0) + 0.05);
    rm_value o = *cur(st);
    begin_layer(st, is_log ? "log" : "sqrt", NULL);
    o.narrow = true;
    if (is_log) {
        o.s = fabs(log(o.s)) + 1.0;
        o.nonneg = o.pos = false;
    } else {
        o.s = sqrt(o.s);
        o.pos = false;
    }
    end_layer(st, &o);
    return true;
}

/* ---- binary ops ------------------------------------------------------------------- */

static const char *const binary_names[] = {"add", "sub", "mul", "div", "max", "min", "pow"};

/* Whether a and b broadcast (NumPy rules, same rank, batch on axis 0 of both),
 * and the result's shape. */
static bool broadcast(const rm_value *a, const rm_value *b, rm_value *out)
{
    if (a->rank != b->rank)
        return false;
    *out = *a;
    for (int i = 1; i < a->rank; i++) {
        if (a->d[i] != b->d[i] && a->d[i] != 1 && b->d[i] != 1)
            return false;
        out->d[i] = a->d[i] > b->d[i] ? a->d[i] : b->d[i];
    }
    return true;
}

/* An earlier value (not the current one) that broadcasts with the current
 * one into at most max_elements; -1 if none. */
static int pick_partner(rm_state *st, rm_value *out, bool want_pos)
{
    int cand[RM_MAX_VALUES], n = 0;
    for (int i = 0; i < st->n; i++) {
        rm_value o;
        if (i != st->cur && broadcast(cur(st), &st->v[i], &o) && elements(&o) <= st->max_elements &&
            (!want_pos || st->v[i].pos))
            cand[n++] = i;
    }
    if (!n)
        return -1;
    int k = cand[rnd(st, n)];
    broadcast(cur(st), &st->v[k], out);
    return k;
}

static bool op_binary(rm_state *st)
{
    const char *op = binary_names[rnd(st, 7)];
    bool is_div = strcmp(op, "div") == 0, is_pow = strcmp(op, "pow") == 0;
    rm_value o = *cur(st);
    o.nonneg = o.pos = false;
    /* the scalar form */
    if (chance(st, 45)) {
        bool reverse = chance(st, 30);
        if (is_pow) {
            static const double safe_exp[] = {2, 3, 0.5, 1.5, -1, -0.5, 2.5, 0.33, 1, 0};
            if (reverse) { /* c^x, x bounded */
                if (cur(st)->s > 3)
                    return false;
                double c = chance(st, 50) ? 2.0 : 0.5;
                begin_layer(st, "pow", NULL);
                attr(st, "scalar: %g, reverse: true", c);
                o.s = pow(2.0, 2 * cur(st)->s);
                o.nonneg = o.pos = true;
            } else {
                double e = safe_exp[rnd(st, 10)];
                bool integer = e == 2 || e == 3 || e == 1 || e == 0;
                if (!integer && !cur(st)->pos)
                    make_positive(st, 0.25);
                if (cur(st)->s > 4)
                    return false;
                o = *cur(st);
                begin_layer(st, "pow", NULL);
                attr(st, "scalar: %g", e);
                o.s = e == 0 ? 1.0 : pow(o.s + 0.5, fabs(e)) + (e < 0 ? 4.0 : 0.0);
                o.nonneg = e == 2 || (o.pos && !integer) || (cur(st)->nonneg && e != 0);
                o.pos = false;
            }
        } else if (is_div && reverse) { /* c / x: x bounded away from 0 */
            if (!cur(st)->pos)
                make_positive(st, 0.5);
            o = *cur(st);
            begin_layer(st, "div", NULL);
            attr(st, "scalar: %g, reverse: true", pick_float(st, 0.5, 2.0));
            o.s = 4.0;
            o.nonneg = o.pos = false;
        } else {
            double c = is_div ? (chance(st, 50) ? -1 : 1) * pick_float(st, 0.5, 4.0) : pick_float(st, -2.0, 2.0);
            if (c == 0)
                c = 0.5;
            begin_layer(st, op, NULL);
            attr(st, "scalar: %g%s", c, reverse ? ", reverse: true" : "");
            if (strcmp(op, "mul") == 0 || is_div)
                o.s *= is_div ? 1.0 / fabs(c) : fabs(c);
            else
                o.s += fabs(c);
            o.nonneg = o.pos = false;
        }
        o.narrow = o.narrow || strcmp(op, "mul") != 0;
        end_layer(st, &o);
        return true;
    }
    /* two operands: an earlier value, or the current one on both sides */
    bool want_pos = is_div || is_pow;
    int k = pick_partner(st, &o, want_pos);
    if (k < 0 && want_pos)
        return false;
    rm_value a = *cur(st);
    const char *bname = k < 0 ? a.name : st->v[k].name;
    double bs = k < 0 ? a.s : st->v[k].s;
    if (is_pow) {
        /* base positive (made so), exponent the bounded partner: keep it small */
        if (!a.pos)
            make_positive(st, 0.5);
        if (cur(st)->s > 4 || bs > 2.5)
            return false;
        a = *cur(st);
    }
    bool swap = !want_pos && k >= 0 && chance(st, 40);
    bprintf(&st->layers, "  - {name: l%d, op: %s, inputs: [%s, %s]", st->n_layers, op, swap ? bname : a.name,
            swap ? a.name : bname);
    o.nonneg = o.pos = false;
    if (strcmp(op, "mul") == 0)
        o.s = a.s * bs + 0.1;
    else if (is_div)
        o.s = a.s * 2.0 + 0.1;
    else if (is_pow)
        o.s = pow(a.s + 0.5, bs * 3.0) + 1.0;
    else
        o.s = a.s + bs;
    o.narrow = a.narrow || (k >= 0 && st->v[k].narrow) || is_pow || is_div;
    end_layer(st, &o);
    return true;
}

/* ---- contractions ---------------------------------------------------------------- */

static bool op_dense(rm_state *st)
{
    rm_value o = *cur(st);
    if (o.rank < 2)
        return false;
    int64_t units = pick_dim(st, 1, 33);
    o.d[o.rank - 1] = units;
    if (elements(&o) > st->max_elements)
        return false;
    begin_layer(st, "dense", NULL);
    attr(st, "units: %lld", (long long)units);
    bool bias = chance(st, 80);
    if (!bias)
        attr(st, "bias: false");
    o.s = sqrt(o.s * o.s / 3.0 + (bias ? 0.1 : 0.01));
    o.nonneg = o.pos = o.narrow = false;
    attr_activation(st, &o);
    end_layer(st, &o);
    return true;
}

/* Sizes of a sliding window (ir/ops.c window_out); -1 when it does not fit. */
static int64_t window(int64_t in, int64_t k, int64_t s, int64_t d, int64_t p0, int64_t p1, bool ceil_mode)
{
    int64_t eff = (k - 1) * d + 1, padded = in + p0 + p1;
    if (eff > padded)
        return -1;
    int64_t span = padded - eff, o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (o - 1) * s >= in + p0)
        o--;
    return o;
}

/* Padding for a window (k, s, d) on input (h, w): writes the attribute and
 * the four pads. max_each bounds each pad (pools: half the effective
 * kernel); 0 allows any. */
static void pick_padding(rm_state *st, const int64_t in[2], const int64_t k[2], const int64_t s[2], const int64_t d[2],
                         int64_t max_each, bool allow_same, int64_t p[4])
{
    int form = rnd(st, allow_same ? 6 : 4);
    memset(p, 0, 4 * sizeof *p);
    int64_t lim[2];
    for (int i = 0; i < 2; i++) {
        int64_t eff = (k[i] - 1) * d[i] + 1;
        lim[i] = max_each ? eff / 2 : eff / 2 + 1;
    }
    switch (form) {
    case 0: /* default 0 */
        break;
    case 1: { /* int */
        int64_t x = rnd(st, (int)(lim[0] < lim[1] ? lim[0] : lim[1]) + 1);
        p[0] = p[1] = p[2] = p[3] = x;
        attr(st, "padding: %lld", (long long)x);
        break;
    }
    case 2: { /* [ph, pw] */
        int64_t x[2] = {rnd(st, (int)lim[0] + 1), rnd(st, (int)lim[1] + 1)};
        p[0] = p[2] = x[0];
        p[1] = p[3] = x[1];
        attr_ints(st, "padding", x, 2);
        break;
    }
    case 3: { /* [top, left, bottom, right] */
        for (int i = 0; i < 4; i++)
            p[i] = rnd(st, (int)lim[i % 2] + 1);
        attr_ints(st, "padding", p, 4);
        break;
    }
    case 4: /* same */
        for (int i = 0; i < 2; i++) {
            int64_t eff = (k[i] - 1) * d[i] + 1;
            int64_t total = ((in[i] + s[i] - 1) / s[i] - 1) * s[i] + eff - in[i];
            if (total < 0)
                total = 0;
            p[i] = total / 2;
            p[i + 2] = total - total / 2;
        }
        attr(st, "padding: same");
        break;
    default: /* valid */
        attr(st, "padding: valid");
        break;
    }
    (void)max_each;
}

/* The channel groups for C in and F out channels: 1, depthwise (C) or a common divisor. */
static int64_t pick_groups(rm_state *st, int64_t c, int64_t *filters)
{
    int k = rnd(st, 10);
    if (k < 5)
        return 1;
    if (k < 8 && c > 1) { /* depthwise, multiplier 1 or 2 */
        *filters = c * (chance(st, 70) ? 1 : 2);
        return c;
    }
    int64_t divs[32];
    int n = 0;
    for (int64_t g = 2; g < c && n < 32; g++)
        if (c % g == 0)
            divs[n++] = g;
    if (!n)
        return 1;
    int64_t g = divs[rnd(st, n)];
    *filters = g * (1 + rnd(st, 3));
    return g;
}

static bool op_conv2d(rm_state *st)
{
    rm_value *x = cur(st);
    if (x->rank != 4)
        return false;
    rm_value o = *x;
    int64_t in[2] = {x->d[2], x->d[3]}, c = x->d[1];
    static const int64_t ks[] = {1, 1, 2, 3, 3, 3, 5, 7};
    int64_t k[2], s[2], d[2], p[4];
    k[0] = ks[rnd(st, 8)];
    k[1] = chance(st, 75) ? k[0] : ks[rnd(st, 8)];
    s[0] = s[1] = chance(st, 65) ? 1 : 2 + rnd(st, 2);
    if (chance(st, 15))
        s[1] = 1 + rnd(st, 3);
    d[0] = d[1] = chance(st, 80) ? 1 : 2;
    int64_t filters = pick_dim(st, 1, 33);
    int64_t groups = pick_groups(st, c, &filters);
    begin_layer(st, "conv2d", NULL);
    attr(st, "filters: %lld", (long long)filters);
    attr_pair(st, "kernel", k);
    if (s[0] != 1 || s[1] != 1 || chance(st, 10))
        attr_pair(st, "stride", s);
    if (d[0] != 1 || d[1] != 1)
        attr_pair(st, "dilation", d);
    if (groups != 1)
        attr(st, "groups: %lld", (long long)groups);
    pick_padding(st, in, k, s, d, 0, true, p);
    o.d[1] = filters;
    for (int i = 0; i < 2; i++) {
        o.d[2 + i] = window(in[i], k[i], s[i], d[i], p[i], p[i + 2], false);
        if (o.d[2 + i] < 1)
            return false; /* the caller rolls the text back */
    }
    if (elements(&o) > st->max_elements)
        return false;
    bool bias = chance(st, 80);
    if (!bias)
        attr(st, "bias: false");
    o.s = sqrt(o.s * o.s / 3.0 + (bias ? 0.1 : 0.01));
    o.nonneg = o.pos = o.narrow = false;
    attr_activation(st, &o);
    end_layer(st, &o);
    return true;
}

static bool op_conv_transpose2d(rm_state *st)
{
    rm_value *x = cur(st);
    if (x->rank != 4)
        return false;
    rm_value o = *x;
    int64_t c = x->d[1], k[2], s[2], d[2], p[2], op[2];
    k[0] = 1 + rnd(st, 4);
    k[1] = chance(st, 75) ? k[0] : 1 + rnd(st, 4);
    s[0] = s[1] = 1 + rnd(st, 3);
    d[0] = d[1] = chance(st, 80) ? 1 : 2;
    int64_t filters = pick_dim(st, 1, 17);
    int64_t groups = pick_groups(st, c, &filters);
    for (int i = 0; i < 2; i++) {
        int64_t maxop = (s[i] > d[i] ? s[i] : d[i]) - 1;
        op[i] = maxop > 0 && chance(st, 30) ? rnd(st, (int)maxop + 1) : 0;
        p[i] = rnd(st, (int)((d[i] * (k[i] - 1)) / 2) + 1);
        o.d[2 + i] = (x->d[2 + i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1;
        if (o.d[2 + i] < 1 || o.d[2 + i] > 64)
            return false;
    }
    o.d[1] = filters;
    if (elements(&o) > st->max_elements)
        return false;
    begin_layer(st, "conv_transpose2d", NULL);
    attr(st, "filters: %lld", (long long)filters);
    attr_pair(st, "kernel", k);
    if (s[0] != 1 || chance(st, 10))
        attr_pair(st, "stride", s);
    if (d[0] != 1)
        attr_pair(st, "dilation", d);
    if (p[0] || p[1])
        attr_pair(st, "padding", p);
    if (op[0] || op[1])
        attr_pair(st, "output_padding", op);
    if (groups != 1)
        attr(st, "groups: %lld", (long long)groups);
    bool bias = chance(st, 80);
    if (!bias)
        attr(st, "bias: false");
    o.s = sqrt(o.s * o.s / 3.0 + 0.1) * (k[0] * k[1] > s[0] * s[1] ? 1.5 : 1.0);
    o.nonneg = o.pos = o.narrow = false;
    /* conv_transpose2d takes `activation:` too (FORMAT.md 1.1 table) */
    attr_activation(st, &o);
    end_layer(st, &o);
    return true;
}

static bool op_matmul(rm_state *st)
{
    rm_value *x = cur(st);
    if (x->rank < 3)
        return false;
    rm_value o = *x;
    int r = x->rank;
    /* x @ y^T with y an earlier value of the same shape (or x itself) */
    int cand[RM_MAX_VALUES], n = 0;
    for (int i = 0; i < st->n; i++) {
        const rm_value *y = &st->v[i];
        if (y->rank != r)
            continue;
        bool ok = true;
        for (int a = 1; a < r - 2 && ok; a++)
            ok = y->d[a] == x->d[a];
        if (ok && y->d[r - 1] == x->d[r - 1])
            cand[n++] = i;
    }
    const rm_value *y = &st->v[cand[rnd(st, n)]]; /* x itself is a candidate */
    o.d[r - 1] = y->d[r - 2];
    if (elements(&o) > st->max_elements)
        return false;
    bprintf(&st->layers, "  - {name: l%d, op: matmul, inputs: [%s, %s], transpose_b: true", st->n_layers, x->name,
            y->name);
    o.s = x->s * y->s * sqrt((double)x->d[r - 1]) + 0.1;
    o.nonneg = o.pos = false;
    o.narrow = x->narrow || y->narrow;
    end_layer(st, &o);
    tame(st);
    return true;
}

/* ---- windows, pools, resizing ----------------------------------------------------- */

static bool op_pool(rm_state *st)
{
    rm_value *x = cur(st);
    if (x->rank != 4)
        return false;
    bool is_max = chance(st, 50);
    int64_t in[2] = {x->d[2], x->d[3]}, k[2], s[2], d[2] = {1, 1}, p[4];
    k[0] = 1 + rnd(st, 3);
    k[1] = chance(st, 75) ? k[0] : 1 + rnd(st, 3);
    s[0] = k[0];
    s[1] = k[1];
    bool explicit_stride = chance(st, 40);
    if (explicit_stride) {
        s[0] = s[1] = 1 + rnd(st, 2);
    }
    if (is_max && chance(st, 20))
        d[0] = d[1] = 2;
    bool ceil_mode = chance(st, 25);
    rm_value o = *x;
    begin_layer(st, is_max ? "maxpool2d" : "avgpool2d", NULL);
    attr_pair(st, "kernel", k);
    if (explicit_stride)
        attr_pair(st, "stride", s);
    if (d[0] != 1)
        attr_pair(st, "dilation", d);
    pick_padding(st, in, k, s, d, 1, true, p);
    for (int i = 0; i < 4; i++)
        if (p[i] * 2 > (k[i % 2] - 1) * d[i % 2] + 1)
            return false;
    if (ceil_mode)
        attr(st, "ceil_mode: true");
    if (!is_max && chance(st, 40))
        attr(st, "count_include_pad: false");
    for (int i = 0; i < 2; i++)
        if ((o.d[2 + i] = window(in[i], k[i], s[i], d[i], p[i], p[i + 2], ceil_mode)) < 1)
            return false;
    if (!is_max)
        o.nonneg = o.pos = false;
    end_layer(st, &o);
    return true;
}

static bool op_global_pool(rm_state *st)
{
    rm_value *x = cur(st);
    if (x->rank != 4)
        return false;
    rm_value o = *x;
    bool adaptive = chance(st, 60);
    if (adaptive) {
        o.d[2] = pick_dim(st, 1, x->d[2] * 2 < 17 ? x->d[2] * 2 : 17);
        o.d[3] = pick_dim(st, 1, x->d[3] * 2 < 17 ? x->d[3] * 2 : 17);
        if (elements(&o) > st->max_elements)
            return false;
        begin_layer(st, "adaptive_avgpool2d", NULL);
        attr(st, "size: [%lld, %lld]", (long long)o.d[2], (long long)o.d[3]);
    } else {
        o.d[2] = o.d[3] = 1;
        begin_layer(st, "global_avgpool", NULL);
    }
    o.nonneg = x->nonneg;
    o.pos = false;
    end_layer(st, &o);
    return true;
}

static bool op_resize(rm_state *st)
{
    rm_value *x = cur(st);
    if (x->rank < 3)
        return false;
    static const char *const modes[] = {"nearest", "nearest_exact", "bilinear", "bicubic"};
    int mode = rnd(st, 4);
    rm_value o = *x;
    int r = x->rank;
    bool by_scale = chance(st, 50);
    double sc[2] = {0, 0};
    if (by_scale) {
        static const double scales[] = {0.5, 2, 1.5, 0.75, 3, 1, 2.5};
        for (int i = 0; i < 2; i++) {
            sc[i] = scales[rnd(st, 7)];
            o.d[r - 2 + i] = (int64_t)floor((double)x->d[r - 2 + i] * sc[i]);
            if (o.d[r - 2 + i] < 1)
                return false;
        }
    } else {
        o.d[r - 2] = pick_dim(st, 1, 33);
        o.d[r - 1] = pick_dim(st, 1, 33);
    }
    if (elements(&o) > st->max_elements)
        return false;
    begin_layer(st, "resize", NULL);
    if (by_scale)
        attr(st, "scale: [%g, %g]", sc[0], sc[1]);
    else
        attr(st, "size: [%lld, %lld]", (long long)o.d[r - 2], (long long)o.d[r - 1]);
    if (mode || chance(st, 30))
        attr(st, "mode: %s", modes[mode]);
    if (mode >= 2 && chance(st, 40))
        attr(st, "align_corners: true");
    if (mode == 3) { /* bicubic overshoots */
        o.s *= 1.3;
        o.nonneg = o.pos = false;
    }
    end_layer(st, &o);
    return true;
}

/* ---- normalizations ----------------------------------------------------------------- */

static bool op_norm(rm_state *st)
{
    rm_value *x = cur(st);
    if (x->rank < 2)
        return false;
    rm_value o = *x;
    int k = rnd(st, 4);
    int64_t plane = 1;
    for (int i = 2; i < x->rank; i++)
        plane *= x->d[i];
    if (k == 0) {
        begin_layer(st, "batchnorm", NULL);
        if (chance(st, 20))
            attr(st, "eps: 0.001");
        o.s = o.s * 1.5 + 0.3;
    } else if (k == 1) {
        if (x->d[x->rank - 1] < 2 || x->narrow)
            return false;
        begin_layer(st, "layernorm", NULL);
        if (chance(st, 25))
            attr(st, "affine: false");
        o.s = 1.6;
    } else if (k == 2) {
        int64_t c = x->d[1], divs[40];
        int n = 0;
        for (int64_t g = 1; g <= c && n < 40; g++)
            if (c % g == 0 && (c / g) * plane >= 2)
                divs[n++] = g;
        if (!n || x->narrow)
            return false;
        begin_layer(st, "group_norm", NULL);
        attr(st, "groups: %lld", (long long)divs[rnd(st, n)]);
        if (chance(st, 20))
            attr(st, "affine: false");
        o.s = 1.6;
    } else {
        begin_layer(st, "prelu", NULL);
    }
    o.narrow = k == 3 && x->narrow;
    o.nonneg = o.pos = false;
    end_layer(st, &o);
    return true;
}

static bool op_softmax(rm_state *st)
{
    rm_value *x = cur(st);
    if (x->rank < 2)
        return false;
    tame(st);
    x = cur(st);
    rm_value o = *x;
    bool log_form = chance(st, 35);
    int axis = 1 + rnd(st, x->rank - 1);
    begin_layer(st, log_form ? "log_softmax" : "softmax", NULL);
    if (axis != x->rank - 1 || chance(st, 30))
        attr(st, "axis: %d", chance(st, 50) ? axis : axis - x->rank);
    if (log_form) {
        o.s = 2.0 * x->s + log((double)x->d[axis]) + 1;
        o.nonneg = o.pos = false;
    } else {
        o.s = 1.0;
        o.nonneg = true;
        o.pos = false;
    }
    end_layer(st, &o);
    return true;
}

/* ---- moving elements -------------------------------------------------------------- */

static bool op_reduce(rm_state *st)
{
    rm_value *x = cur(st);
    if (x->rank < 2)
        return false;
    static const char *const ops[] = {"mean", "reduce_sum", "reduce_max", "reduce_min"};
    int which = rnd(st, 4);
    int r = x->rank;
    bool axes[RM_MAX_RANK] = {false};
    int n_axes = 0;
    for (int i = 1; i < r; i++)
        if (chance(st, 45)) {
            axes[i] = true;
            n_axes++;
        }
    if (!n_axes) {
        axes[1 + rnd(st, r - 1)] = true;
        n_axes = 1;
    }
    bool keep = chance(st, 60);
    if (!keep && n_axes == r - 1)
        keep = true; /* a batched value keeps at least rank 2: nothing else but the batch would remain */
    rm_value o = *x;
    int64_t reduced = 1;
    begin_layer(st, ops[which], NULL);
    bprintf(&st->layers, ", axes: [");
    int w = 0;
    for (int i = 1; i < r; i++)
        if (axes[i]) {
            bprintf(&st->layers, "%s%d", w++ ? ", " : "", chance(st, 25) ? i - r : i);
            reduced *= x->d[i];
        }
    bprintf(&st->layers, "]");
    if (!keep)
        attr(st, "keepdims: false");
    if (keep) {
        for (int i = 1; i < r; i++)
            if (axes[i])
                o.d[i] = 1;
    } else {
        o.rank = 0;
        for (int i = 0; i < r; i++)
            if (!axes[i])
                o.d[o.rank++] = x->d[i];
    }
    if (which == 1) {
        o.s = x->s * sqrt((double)reduced) + 0.1;
        o.nonneg = x->nonneg;
        o.pos = false;
    } else if (which == 0) {
        o.pos = false;
    }
    end_layer(st, &o);
    if (which == 1)
        tame(st);
    return true;
}

static bool op_slice(rm_state *st)
{
    rm_value *x = cur(st);
    if (x->rank < 2)
        return false;
    int axis = 1 + rnd(st, x->rank - 1);
    int64_t n = x->d[axis];
    int64_t start = rnd(st, (int)n), step = chance(st, 60) ? 1 : 1 + rnd(st, 3);
    int64_t end = start + 1 + rnd(st, (int)(n - start));
    rm_value o = *x;
    o.d[axis] = (end - start + step - 1) / step;
    begin_layer(st, "slice", NULL);
    attr(st, "axis: %d", chance(st, 30) ? axis - x->rank : axis);
    if (start || chance(st, 20))
        attr(st, "start: %lld", (long long)(chance(st, 30) ? start - n : start));
    if (end != n || chance(st, 20))
        attr(st, "end: %lld", (long long)(chance(st, 30) && end < n ? end - n : end));
    if (step != 1)
        attr(st, "step: %lld", (long long)step);
    end_layer(st, &o);
    return true;
}

static bool op_transpose(rm_state *st)
{
    rm_value *x = cur(st);
    if (x->rank < 3)
        return false;
    int r = x->rank;
    int64_t perm[RM_MAX_RANK];
    for (int i = 0; i < r; i++)
        perm[i] = i;
    for (int i = r - 1; i > 1; i--) { /* shuffle 1..r-1 */
        int j = 1 + rnd(st, i);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    rm_value o = *x;
    for (int i = 0; i < r; i++)
        o.d[i] = x->d[perm[i]];
    begin_layer(st, "transpose", NULL);
    attr_ints(st, "perm", perm, r);
    end_layer(st, &o);
    return true;
}

static bool op_reshape(rm_state *st)
{
    rm_value *x = cur(st);
    rm_value o = *x;
    int64_t n = elements(x);
    int k = rnd(st, 3);
    if (k == 0 && x->rank > 2) { /* flatten */
        int axis = 1 + rnd(st, x->rank - 1);
        begin_layer(st, "flatten", NULL);
        if (axis != 1 || chance(st, 20))
            attr(st, "axis: %d", axis);
        o.rank = axis + 1;
        o.d[axis] = 1;
        for (int i = axis; i < x->rank; i++)
            o.d[axis] *= x->d[i];
        end_layer(st, &o);
        return true;
    }
    /* to rank 2, 3 or 4 with a factor of n */
    int64_t divs[64];
    int nd = 0;
    for (int64_t f = 1; f <= n && nd < 64; f++)
        if (n % f == 0)
            divs[nd++] = f;
    int rank = 2 + rnd(st, 3);
    o.rank = rank;
    if (rank == 2) {
        o.d[1] = n;
    } else if (rank == 3) {
        o.d[1] = divs[rnd(st, nd)];
        o.d[2] = n / o.d[1];
    } else {
        o.d[1] = divs[rnd(st, nd)];
        int64_t rest = n / o.d[1];
        int64_t f = 1;
        for (int tries = 0; tries < 20; tries++) {
            int64_t g = divs[rnd(st, nd)];
            if (rest % g == 0) {
                f = g;
                break;
            }
        }
        o.d[2] = f;
        o.d[3] = rest / f;
    }
    begin_layer(st, "reshape", NULL);
    bprintf(&st->layers, ", shape: [0");
    int infer = 1 + rnd(st, rank - 1);
    for (int i = 1; i < rank; i++) {
        if (i == infer && chance(st, 60))
            bprintf(&st->layers, ", -1");
        else if (i < x->rank && o.d[i] == x->d[i] && chance(st, 30))
            bprintf(&st->layers, ", 0");
        else
            bprintf(&st->layers, ", %lld", (long long)o.d[i]);
    }
    bprintf(&st->layers, "]");
    end_layer(st, &o);
    return true;
}

static bool op_pad(rm_state *st)
{
    rm_value *x = cur(st);
    if (x->rank < 3)
        return false;
    int64_t p[4];
    for (int i = 0; i < 4; i++)
        p[i] = rnd(st, 4);
    rm_value o = *x;
    o.d[x->rank - 2] += p[0] + p[2];
    o.d[x->rank - 1] += p[1] + p[3];
    if (elements(&o) > st->max_elements)
        return false;
    begin_layer(st, "pad", NULL);
    attr_ints(st, "pads", p, 4);
    double v = 0;
    if (chance(st, 40)) {
        v = pick_float(st, -1.0, 1.0);
        attr(st, "value: %g", v);
    }
    if (v < 0)
        o.nonneg = false;
    o.pos = false;
    end_layer(st, &o);
    return true;
}

static bool op_concat(rm_state *st)
{
    rm_value *x = cur(st);
    if (x->rank < 2)
        return false;
    int axis = 1 + rnd(st, x->rank - 1);
    int cand[RM_MAX_VALUES], n = 0;
    for (int i = 0; i < st->n; i++) {
        const rm_value *y = &st->v[i];
        bool ok = y->rank == x->rank;
        for (int a = 1; a < x->rank && ok; a++)
            ok = a == axis || y->d[a] == x->d[a];
        if (ok)
            cand[n++] = i;
    }
    int parts = 2 + rnd(st, 2);
    int idx[3];
    rm_value o = *x;
    o.d[axis] = 0;
    for (int j = 0; j < parts; j++) {
        idx[j] = j == 0 ? st->cur : cand[rnd(st, n)];
        o.d[axis] += st->v[idx[j]].d[axis];
        o.s = fmax(o.s, st->v[idx[j]].s);
        o.nonneg &= st->v[idx[j]].nonneg;
        o.pos &= st->v[idx[j]].pos;
        o.narrow |= st->v[idx[j]].narrow;
    }
    if (elements(&o) > st->max_elements)
        return false;
    if (chance(st, 50)) { /* not always first */
        int t = idx[0];
        idx[0] = idx[parts - 1];
        idx[parts - 1] = t;
    }
    bprintf(&st->layers, "  - {name: l%d, op: concat, inputs: [", st->n_layers);
    for (int j = 0; j < parts; j++)
        bprintf(&st->layers, "%s%s", j ? ", " : "", st->v[idx[j]].name);
    bprintf(&st->layers, "]");
    if (axis != 1 || chance(st, 20))
        attr(st, "axis: %d", chance(st, 30) ? axis - x->rank : axis);
    end_layer(st, &o);
    return true;
}

static bool op_expand(rm_state *st)
{
    rm_value *x = cur(st);
    int ones = 0;
    for (int i = 1; i < x->rank; i++)
        ones += x->d[i] == 1;
    if (!ones)
        return false;
    rm_value o = *x;
    for (int i = 1; i < x->rank; i++)
        if (x->d[i] == 1 && chance(st, 70))
            o.d[i] = pick_dim(st, 1, 17);
    if (elements(&o) > st->max_elements)
        return false;
    begin_layer(st, "expand", NULL);
    bprintf(&st->layers, ", shape: ");
    write_shape(&st->layers, st, &o);
    end_layer(st, &o);
    return true;
}

/* ---- blocks ------------------------------------------------------------------------- */

static bool op_block(rm_state *st)
{
    rm_value *x = cur(st);
    rm_value o = *x;
    int k = rnd(st, 3);
    if (k == 0 && x->rank == 4 && x->d[2] >= 1) {
        st->use_res = true;
        bprintf(&st->layers, "  - {name: l%d, use: res, input: %s, with: {ch: %lld}}\n", st->n_layers, x->name,
                (long long)x->d[1]);
        o.s = x->s + 0.8;
        o.nonneg = true;
        o.pos = o.narrow = false;
    } else if (k == 1) {
        st->use_gate = true;
        bprintf(&st->layers, "  - {name: l%d, use: gate, input: %s}\n", st->n_layers, x->name);
        o.nonneg = o.pos = false;
    } else if (x->rank >= 2) {
        st->use_mlp = true;
        int64_t hidden = pick_dim(st, 1, 33);
        o.d[x->rank - 1] = pick_dim(st, 2, 33);
        if (elements(&o) > st->max_elements)
            return false;
        bprintf(&st->layers, "  - {name: l%d, use: mlp, input: %s, with: {hidden: %lld, out: %lld}}\n", st->n_layers,
                x->name, (long long)hidden, (long long)o.d[x->rank - 1]);
        o.s = 0.8;
        o.nonneg = o.pos = o.narrow = false;
    } else {
        return false;
    }
    rm_value *v = &st->v[st->n];
    *v = o;
    v->input = false;
    snprintf(v->name, sizeof v->name, "l%d", st->n_layers);
    st->cur = st->n++;
    st->n_layers++;
    return true;
}

static const char blocks_text[] =
    "  res:\n"
    "    args: {ch: 8}\n"
    "    inputs: [x]\n"
    "    layers:\n"
    "      - {name: conv1, op: conv2d, input: x, filters: $ch, kernel: 3, padding: 1, bias: false}\n"
    "      - {name: bn1, op: batchnorm}\n"
    "      - {name: act, op: relu}\n"
    "      - {name: conv2, op: conv2d, filters: $ch, kernel: 3, padding: same}\n"
    "      - {name: sum, op: add, inputs: [conv2, x]}\n"
    "      - {name: out, op: relu}\n"
    "    output: out\n";
static const char gate_text[] =
    "  gate:\n"
    "    inputs: [x]\n"
    "    layers:\n"
    "      - {name: s, op: sigmoid, input: x}\n"
    "      - {name: m, op: mul, inputs: [s, x]}\n";
static const char mlp_text[] =
    "  mlp:\n"
    "    args: [hidden, out]\n"
    "    inputs: [x]\n"
    "    layers:\n"
    "      - {name: fc1, op: dense, units: $hidden, activation: gelu}\n"
    "      - {name: fc2, op: dense, units: $out}\n"
    "      - {name: ln, op: layernorm, affine: false}\n";

/* ---- the model ---------------------------------------------------------------------- */

typedef bool (*op_fn)(rm_state *st);
typedef struct weighted_op {
    op_fn fn;
    int weight;
} weighted_op;

static const weighted_op ops[] = {
    {op_unary, 10},   {op_exp, 2},       {op_log_sqrt, 3},         {op_binary, 14},  {op_dense, 8},
    {op_conv2d, 14},  {op_conv_transpose2d, 4}, {op_matmul, 3},    {op_pool, 6},     {op_global_pool, 3},
    {op_resize, 4},   {op_norm, 6},      {op_softmax, 3},          {op_reduce, 4},   {op_slice, 4},
    {op_transpose, 3}, {op_reshape, 4},  {op_pad, 3},              {op_concat, 4},   {op_expand, 4},
    {op_block, 3},
};
#define N_OPS ((int)(sizeof ops / sizeof ops[0]))

static void add_input(rm_state *st, const char *name, int rank, const int64_t *d)
{
    rm_value *v = &st->v[st->n];
    memset(v, 0, sizeof *v);
    snprintf(v->name, sizeof v->name, "%s", name);
    v->rank = rank;
    memcpy(v->d, d, (size_t)rank * sizeof *d);
    v->s = 0.6;
    v->input = true;
    st->n++;
}

char *rm_generate(uint64_t seed, const rm_options *opt, int *n_layers)
{
    rm_state *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->rng = seed * 0x2545F4914F6CDD1Dull + 0x1234567ull;
    st->batched = !chance(st, 15);
    st->max_elements = opt && opt->max_elements > 0 ? opt->max_elements : 6144;
    int want = opt && opt->max_layers > 0 ? opt->max_layers : 12;
    want = 2 + rnd(st, want - 1);

    /* the first input: an image [N,C,H,W], a sequence [N,T,F] or a vector [N,F] */
    int kind = rnd(st, 10);
    int64_t d[RM_MAX_RANK] = {1};
    int rank;
    if (kind < 6) {
        rank = 4;
        d[1] = pick_dim(st, 1, 17);
        d[2] = pick_dim(st, 1, 19);
        d[3] = chance(st, 60) ? d[2] : pick_dim(st, 1, 19);
        if (chance(st, 70) && d[2] < 5)
            d[2] = d[3] = pick_dim(st, 5, 17);
    } else if (kind < 9) {
        rank = 3;
        d[1] = pick_dim(st, 1, 17);
        d[2] = pick_dim(st, 1, 33);
    } else {
        rank = 2;
        d[1] = pick_dim(st, 1, 33);
    }
    add_input(st, "x", rank, d);
    rm_value *x0 = &st->v[0];
    while (elements(x0) > st->max_elements / 2)
        x0->d[rank - 1] = (x0->d[rank - 1] + 1) / 2;
    /* sometimes a second input that broadcasts into the first */
    if (chance(st, 25)) {
        int64_t e[RM_MAX_RANK];
        memcpy(e, x0->d, sizeof e);
        for (int i = 1; i < rank; i++)
            if (chance(st, 50))
                e[i] = 1;
        add_input(st, "y", rank, e);
    }
    st->cur = 0;

    int attempts = 0;
    while (st->n_layers < want && attempts++ < 400 && st->n < RM_MAX_VALUES - 8) {
        int total = 0;
        for (int i = 0; i < N_OPS; i++)
            total += ops[i].weight;
        int r = rnd(st, total), i = 0;
        while (r >= ops[i].weight)
            r -= ops[i++].weight;
        /* an op that cannot be placed leaves no text and no value */
        size_t len = st->layers.len;
        int n = st->n, cur_was = st->cur, n_layers_was = st->n_layers;
        bool res = st->use_res, gate = st->use_gate, mlp = st->use_mlp;
        if (!ops[i].fn(st)) {
            st->layers.len = len;
            if (st->layers.p)
                st->layers.p[len] = '\0';
            st->n = n;
            st->cur = cur_was;
            st->n_layers = n_layers_was;
            st->use_res = res;
            st->use_gate = gate;
            st->use_mlp = mlp;
            continue;
        }
        tame(st);
    }
    if (st->n_layers == 0)
        op_unary(st);

    /* outputs: the last layer, and sometimes one or two earlier layers */
    int outs[3] = {st->cur}, n_out = 1;
    for (int k = 0; k < 2; k++)
        if (chance(st, 20)) {
            int j = rnd(st, st->n);
            bool dup = st->v[j].input;
            for (int m = 0; m < n_out; m++)
                dup |= outs[m] == j;
            if (!dup)
                outs[n_out++] = j;
        }

    rm_buf b = {0};
    bprintf(&b, "# random model, seed %llu (tests/random_model.c)\nkiln: 1\nname: rand%llu\ninit: {random: %llu}\n",
            (unsigned long long)seed, (unsigned long long)seed, (unsigned long long)(seed % 100000));
    bprintf(&b, "inputs:\n");
    for (int i = 0; i < st->n && st->v[i].input; i++) {
        bprintf(&b, "  - {name: %s, shape: ", st->v[i].name);
        write_shape(&b, st, &st->v[i]);
        bprintf(&b, "}\n");
    }
    if (n_out > 1 || chance(st, 30)) {
        bprintf(&b, "outputs: [");
        for (int k = 0; k < n_out; k++)
            bprintf(&b, "%s%s", k ? ", " : "", st->v[outs[k]].name);
        bprintf(&b, "]\n");
    }
    if (st->use_res || st->use_gate || st->use_mlp) {
        bprintf(&b, "blocks:\n");
        if (st->use_res)
            bprintf(&b, "%s", blocks_text);
        if (st->use_gate)
            bprintf(&b, "%s", gate_text);
        if (st->use_mlp)
            bprintf(&b, "%s", mlp_text);
    }
    bprintf(&b, "layers:\n%s", st->layers.p ? st->layers.p : "");
    bool oom = b.oom || st->layers.oom;
    if (n_layers)
        *n_layers = st->n_layers;
    free(st->layers.p);
    free(st);
    if (oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
