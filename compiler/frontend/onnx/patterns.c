/* compiler/frontend/onnx/patterns.c: computations that exporters write out in
 * primitive ONNX ops, recognized as the one kiln layer they compute:
 *
 *   GELU        x * 0.5 * (1 + erf(x / sqrt(2)))          -> gelu
 *               x * 0.5 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
 *                                                         -> gelu, approximate tanh
 *               (and the orders of the products PyTorch and others use)
 *   LayerNorm   d = x - mean(x); d / sqrt(mean(d^2) + eps) [* gamma + beta]
 *               over the last axis                          -> layernorm
 *   MatMul+Add  x @ W + b with constant W [K, N] and b [N]  -> dense with bias
 *
 * A match needs every intermediate value read only inside the pattern (and
 * not a graph output). Constants are those of initializers and Constant
 * nodes (evaluated before this pass). What depends on shapes (the axis of
 * the reductions, the operand ranks) is checked when the pattern's first node
 * is reached (ox_pattern_check); a pattern that fails there is lowered node
 * by node. */
#define _XOPEN_SOURCE 700 /* M_PI */
#include <math.h>
#include <string.h>

#include "ox.h"

static const Onnx__NodeProto *node(ox_ctx *x, int j) { return x->nodes[j]; }

static bool op_is(ox_ctx *x, int j, const char *type)
{
    const Onnx__NodeProto *p = node(x, j);
    return j >= 0 && p->op_type && strcmp(p->op_type, type) == 0 &&
           (!p->domain || !p->domain[0] || strcmp(p->domain, "ai.onnx") == 0);
}

static ox_value *lookup(ox_ctx *x, const char *name)
{
    return name && name[0] ? kiln_strmap_get(&x->values, name) : NULL;
}

static ox_value *in(ox_ctx *x, int j, size_t k)
{
    const Onnx__NodeProto *p = node(x, j);
    return k < p->n_input ? lookup(x, p->input[k]) : NULL;
}

static ox_value *out(ox_ctx *x, int j)
{
    const Onnx__NodeProto *p = node(x, j);
    return p->n_output >= 1 ? lookup(x, p->output[0]) : NULL;
}

static int n_inputs(ox_ctx *x, int j) { return (int)node(x, j)->n_input; }

/* The one node that reads v (v read once, not a graph output), or -1. */
static int only_user(const ox_value *v)
{
    return v && v->n_uses == 1 && !v->is_output && v->users ? v->users[0] : -1;
}

/* For a two-input node: the operand that is not v (v itself when both are). */
static ox_value *other(ox_ctx *x, int j, const ox_value *v)
{
    if (n_inputs(x, j) != 2)
        return NULL;
    ox_value *a = in(x, j, 0), *b = in(x, j, 1);
    return a == v ? b : b == v ? a : NULL;
}

static bool const_near(ox_ctx *x, ox_value *v, double target, double tol)
{
    double c;
    return v && v->kind == OX_CONST && ox_const_scalar(x, v, &c) && fabs(c - target) <= tol * fabs(target);
}

static void add_member(ox_pattern *p, int j)
{
    if (p->n_members < OX_PAT_MAX_MEMBERS)
        p->members[p->n_members++] = j;
}

/* Registers p if none of its members is in another pattern. */
static void commit(ox_ctx *x, const ox_pattern *p)
{
    for (int k = 0; k < p->n_members; k++)
        if (x->pattern[p->members[k]])
            return;
    ox_pattern *q = kiln_arena_alloc(&x->arena, sizeof *q);
    if (!q) {
        ox_oom(x);
        return;
    }
    *q = *p;
    q->active = true;
    q->head = p->members[0];
    for (int k = 0; k < p->n_members; k++) {
        if (p->members[k] < q->head)
            q->head = p->members[k];
        x->pattern[p->members[k]] = q;
    }
}

/* ---- GELU ------------------------------------------------------------------- */

/* The part both GELU forms share, from the Erf or Tanh node `core` on:
 * (1 + core) multiplied by x and by 0.5, in any of the orders exporters
 * write. Completes and registers p. */
static void gelu_tail(ox_ctx *x, int core, ox_value *xv, ox_pattern *p)
{
    int a = only_user(out(x, core));
    if (!op_is(x, a, "Add") || !const_near(x, other(x, a, out(x, core)), 1.0, 1e-6))
        return;
    ox_value *ao = out(x, a);
    int m1 = only_user(ao);
    if (!op_is(x, m1, "Mul"))
        return;
    ox_value *q = other(x, m1, ao);
    add_member(p, core);
    add_member(p, a);
    add_member(p, m1);
    if (q == xv || const_near(x, q, 0.5, 1e-6)) {
        /* (x * (1 + core)) * 0.5, or x * ((1 + core) * 0.5) */
        int m2 = only_user(out(x, m1));
        ox_value *want = q == xv ? NULL : xv;
        ox_value *r = m2 >= 0 ? other(x, m2, out(x, m1)) : NULL;
        if (!op_is(x, m2, "Mul") || !r || (want ? r != want : !const_near(x, r, 0.5, 1e-6)))
            return;
        add_member(p, m2);
        p->emit = m2;
    } else {
        /* (x * 0.5) * (1 + core) */
        int h = q ? q->producer : -1;
        if (!op_is(x, h, "Mul") || only_user(q) != m1 || !const_near(x, other(x, h, xv), 0.5, 1e-6))
            return;
        add_member(p, h);
        p->emit = m1;
    }
    p->x = xv;
    p->result = out(x, p->emit);
    commit(x, p);
}

/* x * 0.5 * (1 + erf(x / sqrt(2))) */
static void match_gelu(ox_ctx *x, int e)
{
    ox_pattern p = {.kind = OX_PAT_GELU};
    ox_value *u = in(x, e, 0);
    if (!u || only_user(u) != e || u->producer < 0)
        return;
    int pu = u->producer;
    ox_value *xv = NULL;
    if (op_is(x, pu, "Div") && const_near(x, in(x, pu, 1), sqrt(2.0), 1e-5))
        xv = in(x, pu, 0);
    else if (op_is(x, pu, "Mul") && const_near(x, in(x, pu, 1), sqrt(0.5), 1e-5))
        xv = in(x, pu, 0);
    else if (op_is(x, pu, "Mul") && const_near(x, in(x, pu, 0), sqrt(0.5), 1e-5))
        xv = in(x, pu, 1);
    if (!xv || xv->kind == OX_CONST)
        return;
    add_member(&p, pu);
    gelu_tail(x, e, xv, &p);
}

/* x * 0.5 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))), x^3 as Pow(x, 3),
 * x * (x * x) or (x * x) * x */
static void match_gelu_tanh(ox_ctx *x, int t)
{
    ox_pattern p = {.kind = OX_PAT_GELU, .approximate = 1};
    ox_value *u = in(x, t, 0);
    int sc = u && only_user(u) == t ? u->producer : -1;
    if (!op_is(x, sc, "Mul"))
        return;
    ox_value *inner = const_near(x, in(x, sc, 1), sqrt(2.0 / M_PI), 1e-5)   ? in(x, sc, 0)
                      : const_near(x, in(x, sc, 0), sqrt(2.0 / M_PI), 1e-5) ? in(x, sc, 1)
                                                                             : NULL;
    int ad = inner && only_user(inner) == sc ? inner->producer : -1;
    if (!op_is(x, ad, "Add"))
        return;
    /* one operand of the Add is x, the other 0.044715 * x^3 */
    for (int side = 0; side < 2; side++) {
        ox_value *xv = in(x, ad, (size_t)side), *cube_scaled = in(x, ad, (size_t)(1 - side));
        int cm = cube_scaled && only_user(cube_scaled) == ad ? cube_scaled->producer : -1;
        if (!xv || xv->kind == OX_CONST || !op_is(x, cm, "Mul"))
            continue;
        ox_value *cube = const_near(x, in(x, cm, 1), 0.044715, 1e-5)   ? in(x, cm, 0)
                         : const_near(x, in(x, cm, 0), 0.044715, 1e-5) ? in(x, cm, 1)
                                                                        : NULL;
        int c3 = cube && only_user(cube) == cm ? cube->producer : -1;
        int sq = -1;
        if (op_is(x, c3, "Pow") && in(x, c3, 0) == xv && const_near(x, in(x, c3, 1), 3.0, 0)) {
            /* x^3 directly */
        } else if (op_is(x, c3, "Mul") && (in(x, c3, 0) == xv || in(x, c3, 1) == xv)) {
            ox_value *s2 = other(x, c3, xv);
            sq = s2 && only_user(s2) == c3 ? s2->producer : -1;
            if (!op_is(x, sq, "Mul") || in(x, sq, 0) != xv || in(x, sq, 1) != xv)
                continue;
        } else {
            continue;
        }
        if (sq >= 0)
            add_member(&p, sq);
        add_member(&p, c3);
        add_member(&p, cm);
        add_member(&p, ad);
        add_member(&p, sc);
        gelu_tail(x, t, xv, &p);
        return;
    }
}

/* ---- LayerNorm ---------------------------------------------------------------- */

static void match_layernorm(ox_ctx *x, int m1)
{
    ox_pattern p = {.kind = OX_PAT_LAYERNORM, .reduce_node = m1};
    ox_value *xv = in(x, m1, 0), *mo = out(x, m1);
    if (!xv || xv->kind == OX_CONST)
        return;
    int s = only_user(mo);
    if (!op_is(x, s, "Sub") || in(x, s, 0) != xv || in(x, s, 1) != mo)
        return;
    ox_value *d = out(x, s);
    if (!d || d->is_output || !d->users || (d->n_uses != 2 && d->n_uses != 3))
        return;
    int sq = -1, dv = -1;
    for (int k = 0; k < d->n_uses; k++) {
        int j = d->users[k];
        if (op_is(x, j, "Pow") && in(x, j, 0) == d && const_near(x, in(x, j, 1), 2.0, 0))
            sq = j;
        else if (op_is(x, j, "Mul") && in(x, j, 0) == d && in(x, j, 1) == d)
            sq = j;
        else if (op_is(x, j, "Div") && in(x, j, 0) == d)
            dv = j;
        else
            return;
    }
    if (sq < 0 || dv < 0 || d->n_uses != (op_is(x, sq, "Mul") ? 3 : 2))
        return;
    int m2 = only_user(out(x, sq));
    if (!op_is(x, m2, "ReduceMean") || in(x, m2, 0) != out(x, sq))
        return;
    int ad = only_user(out(x, m2));
    ox_value *eps = ad >= 0 ? other(x, ad, out(x, m2)) : NULL;
    if (!op_is(x, ad, "Add") || !eps || eps->kind != OX_CONST || !ox_const_scalar(x, eps, &p.eps))
        return;
    int sr = only_user(out(x, ad));
    if (!op_is(x, sr, "Sqrt") || only_user(out(x, sr)) != dv || in(x, dv, 1) != out(x, sr))
        return;
    int members[] = {m1, s, sq, m2, ad, sr, dv};
    for (size_t k = 0; k < sizeof members / sizeof members[0]; k++)
        add_member(&p, members[k]);
    p.emit = dv;
    /* the affine part, when there is one */
    int g = only_user(out(x, dv));
    ox_value *gamma = g >= 0 ? other(x, g, out(x, dv)) : NULL;
    if (op_is(x, g, "Mul") && gamma && gamma->kind == OX_CONST && gamma != out(x, dv)) {
        add_member(&p, g);
        p.emit = g;
        p.scale = gamma;
        int b = only_user(out(x, g));
        ox_value *beta = b >= 0 ? other(x, b, out(x, g)) : NULL;
        if (op_is(x, b, "Add") && beta && beta->kind == OX_CONST && beta != out(x, g)) {
            add_member(&p, b);
            p.emit = b;
            p.bias = beta;
        }
    }
    p.x = xv;
    p.result = out(x, p.emit);
    commit(x, &p);
}

/* ---- MatMul + Add --------------------------------------------------------------- */

static void match_dense_bias(ox_ctx *x, int mm)
{
    ox_pattern p = {.kind = OX_PAT_DENSE_BIAS};
    ox_value *b = in(x, mm, 1), *mo = out(x, mm);
    if (!b || b->kind != OX_CONST || n_inputs(x, mm) != 2)
        return;
    int ad = only_user(mo);
    ox_value *c = ad >= 0 ? other(x, ad, mo) : NULL;
    if (!op_is(x, ad, "Add") || !c || c->kind != OX_CONST || c == mo)
        return;
    add_member(&p, mm);
    add_member(&p, ad);
    p.emit = mm;
    p.bias = c;
    p.result = out(x, ad);
    commit(x, &p);
}

void ox_find_patterns(ox_ctx *x)
{
    /* who reads each value */
    for (size_t j = 0; j < x->n_nodes; j++) {
        const Onnx__NodeProto *p = x->nodes[j];
        for (size_t k = 0; k < p->n_input; k++) {
            ox_value *v = lookup(x, p->input[k]);
            if (!v || v->users)
                continue;
            v->users = kiln_arena_alloc(&x->arena, sizeof(int) * (size_t)(v->n_uses ? v->n_uses : 1));
            if (!v->users) {
                ox_oom(x);
                return;
            }
            v->n_uses = 0; /* recounted below, as the list fills */
        }
    }
    for (size_t j = 0; j < x->n_nodes; j++) {
        const Onnx__NodeProto *p = x->nodes[j];
        for (size_t k = 0; k < p->n_input; k++) {
            ox_value *v = lookup(x, p->input[k]);
            if (v)
                v->users[v->n_uses++] = (int)j;
        }
    }
    for (size_t j = 0; j < x->n_nodes; j++) {
        int i = (int)j;
        if (op_is(x, i, "Erf") && n_inputs(x, i) == 1)
            match_gelu(x, i);
        else if (op_is(x, i, "Tanh") && n_inputs(x, i) == 1)
            match_gelu_tanh(x, i);
        else if (op_is(x, i, "ReduceMean"))
            match_layernorm(x, i);
        else if (op_is(x, i, "MatMul"))
            match_dense_bias(x, i);
    }
}

/* ---- checks at the head ------------------------------------------------------------ */

/* The ReduceMean node j reduces exactly the last axis of a rank-r value, keeping it. */
static bool reduces_last(ox_ctx *x, int j, int r)
{
    ox_node n;
    bool reduce[OX_MAX_RANK], all;
    if (!ox_node_at(x, j, &n) || r < 1 || ox_reduce_axes(x, &n, r, reduce, &all) != 0 || n.refused)
        return false;
    for (int k = 0; k < r; k++)
        if (reduce[k] != (k == r - 1))
            return false;
    return ox_attr_i(x, &n, "keepdims", 1) == 1 && !n.refused;
}

/* A constant holding one value per element of the last axis (of size d), or one value. */
static bool per_last_axis(ox_ctx *x, ox_value *v, int64_t d)
{
    ox_tensor *t = v ? ox_const(x, NULL, v) : NULL;
    if (!t || !ox_dtype_is_float(t->dtype))
        return false;
    if (t->count == 1)
        return true;
    for (int k = 0; k + 1 < t->rank; k++)
        if (t->dims[k] != 1)
            return false;
    return t->rank >= 1 && t->dims[t->rank - 1] == d && t->count == d;
}

bool ox_pattern_check(ox_ctx *x, ox_pattern *p)
{
    int64_t dims[OX_MAX_RANK];
    bool batched;
    if (p->kind == OX_PAT_GELU)
        return p->x->kind == OX_DYN || p->x->kind == OX_CONST;
    if (p->kind == OX_PAT_LAYERNORM) {
        if (p->x->kind != OX_DYN)
            return false;
        int r = ox_shape(x, p->x, dims, &batched);
        int m2 = -1;
        for (int k = 0; k < p->n_members; k++)
            if (p->members[k] != p->reduce_node && op_is(x, p->members[k], "ReduceMean"))
                m2 = p->members[k];
        if (r < 1 || (batched && r == 1) || !reduces_last(x, p->reduce_node, r) || m2 < 0 || !reduces_last(x, m2, r))
            return false;
        if ((p->scale && !per_last_axis(x, p->scale, dims[r - 1])) || (p->bias && !per_last_axis(x, p->bias, dims[r - 1])))
            return false;
        return p->eps >= 0;
    }
    /* DENSE_BIAS: the MatMul is written as dense. */
    int mm = p->emit;
    ox_value *a = in(x, mm, 0), *b = in(x, mm, 1);
    ox_tensor *bt = ox_const(x, NULL, b);
    if (!a || (a->kind != OX_DYN && a->kind != OX_CONST) || !bt || bt->rank != 2 || !ox_dtype_is_float(bt->dtype))
        return false;
    int r = ox_shape(x, a, dims, &batched);
    if (r < 2 || dims[r - 1] != bt->dims[0])
        return false;
    /* the Add must not broadcast the result further */
    ox_tensor *c = ox_const(x, NULL, p->bias);
    return c && c->rank <= r && per_last_axis(x, p->bias, bt->dims[1]);
}
