/* compiler/frontend/layers.c: one flat layer -> IR nodes.
 *
 * Attribute names, types and defaults come from the op table (ir/ops.h); this
 * file adds what the format has beyond the IR: the `padding` forms (`same`
 * resolved against the input's size), negative axes, reshape's `0` and `-1`,
 * `bias: false`, `affine: false`, `activation:` (a second node), `params:`. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe.h"

static const char *const common_keys[] = {"name", "op", "input", "inputs", "params", "precision", NULL};

static bool in_list(const char *const *list, const char *s)
{
    for (; *list; ++list) {
        if (strcmp(*list, s) == 0)
            return true;
    }
    return false;
}

bool kiln_fe_op_takes_key(kiln_op op, const char *key)
{
    kiln_attr_id id;
    if (kiln_attr_lookup(key, &id) == 0 && kiln_op_find_attr(op, id))
        return true;
    if (strcmp(key, "bias") == 0 || strcmp(key, "activation") == 0)
        return op == KILN_OP_DENSE || op == KILN_OP_CONV2D || op == KILN_OP_CONV_TRANSPOSE2D;
    if (strcmp(key, "affine") == 0)
        return op == KILN_OP_LAYERNORM || op == KILN_OP_GROUP_NORM;
    return false;
}

void kiln_fe_op_keys(kiln_op op, char *buf, size_t size)
{
    const kiln_op_def *d = kiln_op_get(op);
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < d->n_attrs && n + 1 < size; ++i)
        n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? ", " : "", kiln_attr_defs[d->attrs[i].id].name);
    if (op == KILN_OP_DENSE || op == KILN_OP_CONV2D || op == KILN_OP_CONV_TRANSPOSE2D) {
        if (n + 1 < size)
            n += (size_t)snprintf(buf + n, size - n, "%sbias, activation", n ? ", " : "");
    }
    if ((op == KILN_OP_LAYERNORM || op == KILN_OP_GROUP_NORM) && n + 1 < size)
        n += (size_t)snprintf(buf + n, size - n, "%saffine", n ? ", " : "");
    if (n == 0)
        snprintf(buf, size, "no attributes");
}

bool kiln_fe_check_op_keys(kiln_fe *fe, kiln_yaml_node *map, kiln_op op, const kiln_fe_layer *L)
{
    bool ok = true;
    for (size_t i = 0; i < map->count; ++i) {
        kiln_yaml_node *k = map->pairs[i].key;
        if (in_list(common_keys, k->text) || kiln_fe_op_takes_key(op, k->text))
            continue;
        char keys[256];
        kiln_fe_op_keys(op, keys, sizeof keys);
        if (L)
            kiln_fe_layer_error(fe, L, k, KILN_ERR_PARSE, "unknown key '%s' (%s takes %s)", k->text,
                                kiln_op_name(op), keys);
        else
            kiln_fe_error(fe, KILN_ERR_PARSE, k->loc, "unknown key '%s' in a %s layer (%s takes %s)", k->text,
                          kiln_op_name(op), kiln_op_name(op), keys);
        ok = false;
    }
    return ok;
}

/* ---- reading attributes ------------------------------------------------- */

typedef struct lctx {
    kiln_fe *fe;
    kiln_fe_layer *L;
    const char *what; /* "" or "activation 'relu': " */
} lctx;

/* An error about the layer being lowered (prefixed by c->what). */
static void lerr(const lctx *c, const kiln_yaml_node *at, kiln_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void lerr(const lctx *c, const kiln_yaml_node *at, kiln_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *msg = kiln_diag_vformat(c->fe->d, fmt, ap); /* whole: the reporter shortens long names */
    va_end(ap);
    if (!msg)
        msg = "(out of memory)";
    kiln_fe_layer_error(c->fe, c->L, at, st, "%s%s", c->what, msg);
}

static const char *type_words(kiln_attr_type t)
{
    switch (t) {
    case KILN_ATTR_T_INT:
        return "an integer";
    case KILN_ATTR_T_FLOAT:
        return "a number";
    case KILN_ATTR_T_BOOL:
        return "true or false";
    case KILN_ATTR_T_INTS:
        return "an integer or a list of integers";
    case KILN_ATTR_T_FLOATS:
        return "a number or a list of numbers";
    case KILN_ATTR_T_WORD:
        return "a word";
    }
    return "a value";
}

/* Reads attribute `id` from node v (resolved, its env `env`). INTS given as one
 * integer repeat `expand` times; lists keep their length. */
static bool read_attr(lctx *c, kiln_attr_id id, kiln_yaml_node *v, const kiln_fe_env *env, int expand, kiln_attr *out)
{
    const kiln_attr_def *def = &kiln_attr_defs[id];
    const bool list = def->type == KILN_ATTR_T_INTS || def->type == KILN_ATTR_T_FLOATS;
    char err[256];
    if (v->kind == KILN_YAML_SCALAR && !(list && v->text[0] == '[')) {
        if (kiln_attr_from_text(id, v->text, expand, out, err, sizeof err) != 0) {
            lerr(c, v, KILN_ERR_PARSE, "%s", err);
            return false;
        }
        return true;
    }
    if (!list || v->kind != KILN_YAML_SEQ) {
        lerr(c, v, KILN_ERR_PARSE, "'%s' expects %s, not %s", def->name, type_words(def->type),
             v->kind == KILN_YAML_SCALAR ? "this text" : kiln_yaml_kind_name(v->kind));
        return false;
    }
    if (v->count > KILN_MAX_INTS) {
        lerr(c, v, KILN_ERR_PARSE, "'%s' has %zu entries; at most %d are allowed", def->name, v->count, KILN_MAX_INTS);
        return false;
    }
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < v->count; ++i) {
        kiln_yaml_node *e = kiln_fe_resolve(v->items[i], env, NULL);
        if (def->type == KILN_ATTR_T_FLOATS) {
            if (e->kind != KILN_YAML_SCALAR || kiln_parse_float(e->text, &out->floats[i]) != 0) {
                lerr(c, e, KILN_ERR_PARSE, "'%s' expects a list of finite numbers; entry %zu is '%s'", def->name,
                     i + 1, e->kind == KILN_YAML_SCALAR ? e->text : kiln_yaml_kind_name(e->kind));
                return false;
            }
            continue;
        }
        if (e->kind != KILN_YAML_SCALAR || kiln_parse_int(e->text, &out->ints[i]) != 0) {
            lerr(c, e, KILN_ERR_PARSE, "'%s' expects a list of integers; entry %zu is '%s'", def->name, i + 1,
                 e->kind == KILN_YAML_SCALAR ? e->text : kiln_yaml_kind_name(e->kind));
            return false;
        }
    }
    out->n = (int)v->count;
    return true;
}

static bool check_range(lctx *c, kiln_yaml_node *at, const char *name, const kiln_attr *a, int n_want, int64_t lo)
{
    if (n_want && a->n != n_want) {
        lerr(c, at, KILN_ERR_PARSE, "'%s' takes one integer or a list of %d, got %d entries", name, n_want, a->n);
        return false;
    }
    for (int i = 0; i < a->n; ++i) {
        if (a->ints[i] < lo || a->ints[i] > KILN_MAX_DIM) {
            lerr(c, at, KILN_ERR_PARSE, "'%s' entries must be in %lld..2147483647, got %lld", name, (long long)lo,
                 (long long)a->ints[i]);
            return false;
        }
    }
    return true;
}

/* `padding`: an int, [ph, pw], [top, left, bottom, right], `same` or `valid`. */
static bool read_padding(lctx *c, kiln_yaml_node *v, const kiln_fe_env *env, kiln_attr *out, bool *same)
{
    *same = false;
    memset(out, 0, sizeof *out);
    out->n = 4;
    if (v->kind == KILN_YAML_SCALAR && strcmp(v->text, "same") == 0) {
        *same = true;
        return true;
    }
    if (v->kind == KILN_YAML_SCALAR && strcmp(v->text, "valid") == 0)
        return true;
    kiln_attr a;
    if (v->kind == KILN_YAML_SCALAR) {
        int64_t p;
        if (kiln_parse_int(v->text, &p) != 0) {
            lerr(c, v, KILN_ERR_PARSE,
                 "'padding' expects an integer, [ph, pw], [top, left, bottom, right], same or valid; got '%s'",
                 v->text);
            return false;
        }
        a.n = 1;
        a.ints[0] = p;
    } else if (!read_attr(c, KILN_ATTR_PADDING, v, env, 0, &a)) {
        return false;
    }
    if (a.n != 1 && a.n != 2 && a.n != 4) {
        lerr(c, v, KILN_ERR_PARSE, "'padding' takes 1, 2 or 4 integers, got %d", a.n);
        return false;
    }
    for (int i = 0; i < a.n; ++i) {
        if (a.ints[i] < 0 || a.ints[i] > KILN_MAX_DIM) {
            lerr(c, v, KILN_ERR_PARSE, "'padding' entries must be in 0..2147483647, got %lld", (long long)a.ints[i]);
            return false;
        }
    }
    for (int i = 0; i < 4; ++i)
        out->ints[i] = a.n == 1 ? a.ints[0] : a.n == 2 ? a.ints[i % 2] : a.ints[i];
    return true;
}

/* conv_transpose2d's `padding`: an int or [ph, pw] (FORMAT.md), as the IR's
 * [top, left, bottom, right]. */
static bool read_deconv_padding(lctx *c, kiln_yaml_node *v, const kiln_fe_env *env, kiln_attr *out)
{
    kiln_attr a;
    if (v->kind == KILN_YAML_SCALAR && v->text[0] != '[' && kiln_parse_int(v->text, &a.ints[0]) != 0) {
        lerr(c, v, KILN_ERR_PARSE, "'padding' of conv_transpose2d is an integer or [ph, pw]; got '%s'", v->text);
        return false;
    }
    if (!read_attr(c, KILN_ATTR_PADDING, v, env, 1, &a))
        return false;
    if (a.n != 1 && a.n != 2) {
        lerr(c, v, KILN_ERR_PARSE, "'padding' of conv_transpose2d is an integer or [ph, pw], got %d entries", a.n);
        return false;
    }
    if (!check_range(c, v, "padding", &a, 0, 0))
        return false;
    memset(out, 0, sizeof *out);
    out->n = 4;
    for (int i = 0; i < 4; ++i)
        out->ints[i] = a.ints[a.n == 1 ? 0 : i % 2];
    return true;
}

/* expand's `shape`: sizes, or the batch's name (-1, KILN_DIM_BATCH, in the IR). */
static bool read_expand_shape(lctx *c, kiln_yaml_node *v, const kiln_fe_env *env, kiln_attr *out)
{
    const char *batch = c->fe->g->batch_name;
    if (v->kind != KILN_YAML_SEQ || v->count == 0) {
        lerr(c, v, KILN_ERR_PARSE, "'shape' expects a non-empty list of sizes%s%s", batch ? " or " : "",
             batch ? batch : "");
        return false;
    }
    if (v->count > KILN_MAX_RANK) {
        lerr(c, v, KILN_ERR_PARSE, "'shape' has %zu entries; at most %d are allowed", v->count, KILN_MAX_RANK);
        return false;
    }
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < v->count; ++i) {
        kiln_yaml_node *e = kiln_fe_resolve(v->items[i], env, NULL);
        int64_t d;
        if (e->kind == KILN_YAML_SCALAR && batch && strcmp(e->text, batch) == 0) {
            d = KILN_DIM_BATCH;
        } else if (e->kind != KILN_YAML_SCALAR || kiln_parse_int(e->text, &d) != 0 || d < 1 || d > KILN_MAX_DIM) {
            if (batch)
                lerr(c, e, KILN_ERR_PARSE, "'shape' entry %zu is '%s'; entries are sizes in 1..2147483647 or the "
                     "batch dimension's name '%s'", i + 1, e->kind == KILN_YAML_SCALAR ? e->text : kiln_yaml_kind_name(e->kind),
                     batch);
            else
                lerr(c, e, KILN_ERR_PARSE, "'shape' entry %zu is '%s'; entries are sizes in 1..2147483647 (the "
                     "model has no batch dimension)", i + 1,
                     e->kind == KILN_YAML_SCALAR ? e->text : kiln_yaml_kind_name(e->kind));
            return false;
        }
        out->ints[out->n++] = d;
    }
    return true;
}

/* The attributes of op `op` given in mapping `map` (env `env`) into proto.
 * Padding is read into *pad_same/proto; reshape's shape stays raw. */
static bool read_attrs(lctx *c, kiln_op op, kiln_yaml_node *map, const kiln_fe_env *env, kiln_node *proto,
                       bool *pad_same)
{
    const kiln_op_def *d = kiln_op_get(op);
    bool ok = true;
    *pad_same = false;
    for (int i = 0; i < d->n_attrs; ++i) {
        kiln_attr_id id = d->attrs[i].id;
        const char *name = kiln_attr_defs[id].name;
        const kiln_fe_env *venv;
        kiln_yaml_node *v = kiln_fe_resolve(kiln_yaml_get(map, name), env, &venv);
        if (v == NULL) {
            if (d->attrs[i].use == KILN_USE_REQUIRED) {
                kiln_fe_layer_error(c->fe, c->L, map, KILN_ERR_PARSE, "%smissing required attribute '%s'", c->what,
                                    name);
                ok = false;
            }
            continue;
        }
        kiln_attr a;
        switch (id) {
        case KILN_ATTR_PADDING:
            if (op == KILN_OP_CONV_TRANSPOSE2D ? !read_deconv_padding(c, v, venv, &a)
                                               : !read_padding(c, v, venv, &a, pad_same)) {
                ok = false;
                continue;
            }
            break;
        case KILN_ATTR_OUTPUT_PADDING:
        case KILN_ATTR_SIZE:
            if (!read_attr(c, id, v, venv, 2, &a) || !check_range(c, v, name, &a, 2, id == KILN_ATTR_SIZE ? 1 : 0)) {
                ok = false;
                continue;
            }
            break;
        case KILN_ATTR_SCALE:
            if (!read_attr(c, id, v, venv, 2, &a)) {
                ok = false;
                continue;
            }
            if (a.n != 2) {
                lerr(c, v, KILN_ERR_PARSE, "'scale' takes one number or a list of 2, got %d entries", a.n);
                ok = false;
                continue;
            }
            if (!(a.floats[0] > 0) || !(a.floats[1] > 0)) {
                lerr(c, v, KILN_ERR_PARSE, "'scale' entries must be positive, got [%g, %g]", a.floats[0], a.floats[1]);
                ok = false;
                continue;
            }
            break;
        case KILN_ATTR_KERNEL:
        case KILN_ATTR_STRIDE:
        case KILN_ATTR_DILATION:
            if (!read_attr(c, id, v, venv, 2, &a) || !check_range(c, v, name, &a, 2, 1)) {
                ok = false;
                continue;
            }
            break;
        case KILN_ATTR_SHAPE:
        case KILN_ATTR_PERM:
        case KILN_ATTR_PADS:
            if (op == KILN_OP_EXPAND) {
                if (!read_expand_shape(c, v, venv, &a)) {
                    ok = false;
                    continue;
                }
                break;
            }
            if (v->kind != KILN_YAML_SEQ) {
                lerr(c, v, KILN_ERR_PARSE, "'%s' expects a list of integers", name);
                ok = false;
                continue;
            }
            if (!read_attr(c, id, v, venv, 0, &a) || (id == KILN_ATTR_PADS && !check_range(c, v, name, &a, 4, 0))) {
                ok = false;
                continue;
            }
            if (a.n == 0) {
                lerr(c, v, KILN_ERR_PARSE, "'%s' is empty", name);
                ok = false;
                continue;
            }
            break;
        default:
            if (!read_attr(c, id, v, venv, 0, &a)) {
                ok = false;
                continue;
            }
            if ((id == KILN_ATTR_UNITS || id == KILN_ATTR_FILTERS || id == KILN_ATTR_GROUPS) &&
                (a.i < 1 || a.i > KILN_MAX_DIM)) {
                lerr(c, v, KILN_ERR_PARSE, "'%s' must be in 1..2147483647, got %lld", name, (long long)a.i);
                ok = false;
                continue;
            }
            if (id == KILN_ATTR_AXES && a.n == 0) {
                lerr(c, v, KILN_ERR_PARSE, "'%s' is empty", name);
                ok = false;
                continue;
            }
            break;
        }
        kiln_node_set_attr(proto, id, &a);
    }
    return ok;
}

/* A `bias:` / `affine:` switch. */
static bool read_switch(lctx *c, const char *key, bool *out)
{
    kiln_yaml_node *v = kiln_fe_layer_get(c->L, key, NULL);
    *out = true;
    if (v == NULL)
        return true;
    if (v->kind != KILN_YAML_SCALAR || kiln_parse_bool(v->text, out) != 0) {
        lerr(c, v, KILN_ERR_PARSE, "'%s' expects true or false, got '%s'", key,
             v->kind == KILN_YAML_SCALAR ? v->text : kiln_yaml_kind_name(v->kind));
        return false;
    }
    return true;
}

/* ---- shapes the frontend resolves --------------------------------------- */

static int64_t same_total(int64_t in, int64_t k, int64_t s, int64_t d)
{
    int64_t keff = (k - 1) * d + 1;
    int64_t out = (in + s - 1) / s;
    int64_t total = (out - 1) * s + keff - in;
    return total > 0 ? total : 0;
}

static void resolve_same(kiln_node *n, const kiln_type *x)
{
    if (x->shape.rank != 4)
        return; /* the shape rule says what is wrong with the input */
    const int64_t *k = n->attrs[KILN_ATTR_KERNEL].ints, *s = n->attrs[KILN_ATTR_STRIDE].ints;
    int64_t one[2] = {1, 1};
    const int64_t *d = kiln_node_has(n, KILN_ATTR_DILATION) ? n->attrs[KILN_ATTR_DILATION].ints : one;
    int64_t pad[4];
    for (int i = 0; i < 2; ++i) {
        int64_t total = same_total(x->shape.dims[2 + i], k[i], s[i], d[i]);
        pad[i] = total / 2;
        pad[i + 2] = total - total / 2;
    }
    kiln_node_set_ints(n, KILN_ATTR_PADDING, pad, 4);
}

/* Negative axes count from the end. */
static bool normalize_axis(lctx *c, const char *name, int64_t *a, int rank)
{
    if (*a < 0) {
        if (*a < -(int64_t)rank) {
            lerr(c, NULL, KILN_ERR_SHAPE, "'%s' %lld is out of range for an input of rank %d", name, (long long)*a,
                 rank);
            return false;
        }
        *a += rank;
    }
    return true;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* reshape: `0` copies the input's dim, one `-1` is inferred; the IR keeps
 * entry 0 as 0 when the input is batched (the batch flows through). */
static bool resolve_reshape(lctx *c, kiln_node *n, const kiln_type *x, const char *buf_a)
{
    kiln_attr *a = &n->attrs[KILN_ATTR_SHAPE];
    const kiln_shape *s = &x->shape;
    char xs[160];
    kiln_shape_format(s, c->fe->g->batch_name, xs, sizeof xs);
    int neg = -1;
    int64_t known = 1;
    if (s->batched && a->ints[0] != 0) {
        lerr(c, NULL, KILN_ERR_SHAPE,
             "reshape's first entry must be 0 (copy the batch dimension) for %s, got %lld", xs, (long long)a->ints[0]);
        return false;
    }
    for (int i = 0; i < a->n; ++i) {
        int64_t v = a->ints[i];
        if (v < -1) {
            lerr(c, NULL, KILN_ERR_SHAPE, "reshape entry %d is %lld; entries are sizes, 0 (copy) or -1 (inferred)",
                 i, (long long)v);
            return false;
        }
        if (v == -1) {
            if (neg >= 0) {
                lerr(c, NULL, KILN_ERR_SHAPE, "reshape has more than one -1 entry (%d and %d)", neg, i);
                return false;
            }
            neg = i;
            continue;
        }
        if (v == 0) {
            if (i >= s->rank) {
                lerr(c, NULL, KILN_ERR_SHAPE, "reshape entry %d is 0 (copy), but the input %s has rank %d", i, xs,
                     s->rank);
                return false;
            }
            if (i == 0 && s->batched)
                continue;
            v = a->ints[i] = s->dims[i];
        }
        if (known > INT64_MAX / v) {
            lerr(c, NULL, KILN_ERR_SHAPE, "reshape to %s: the element count overflows", buf_a);
            return false;
        }
        known *= v;
    }
    int64_t total = kiln_shape_elements_per_item(s);
    const char *per = s->batched ? " per batch item" : "";
    if (neg >= 0) {
        if (total < 0 || total % known != 0) {
            lerr(c, NULL, KILN_ERR_SHAPE, "cannot reshape %s (%lld elements%s) to %s: %lld is not a multiple of %lld",
                 xs, (long long)total, per, buf_a, (long long)total, (long long)known);
            return false;
        }
        a->ints[neg] = total / known;
    } else if (known != total) {
        lerr(c, NULL, KILN_ERR_SHAPE, "cannot reshape %s (%lld elements%s) to %s (%lld elements)", xs,
             (long long)total, per, buf_a, (long long)known);
        return false;
    }
    return true;
}

static void format_ints(const kiln_attr *a, char *buf, size_t size)
{
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < a->n && n < size; ++i)
        n += (size_t)snprintf(buf + n, size - n, "%s%lld", i ? ", " : "", (long long)a->ints[i]);
    if (n < size)
        snprintf(buf + n, size - n, "]");
}

/* Axis rules that need the input's rank. */
static bool resolve_axes(lctx *c, kiln_node *n, const kiln_type *x)
{
    int rank = x->shape.rank;
    switch (n->op) {
    case KILN_OP_SOFTMAX:
    case KILN_OP_LOG_SOFTMAX:
    case KILN_OP_CONCAT:
    case KILN_OP_FLATTEN:
    case KILN_OP_SLICE:
        return normalize_axis(c, "axis", &n->attrs[KILN_ATTR_AXIS].i, rank);
    case KILN_OP_MEAN:
    case KILN_OP_REDUCE_SUM:
    case KILN_OP_REDUCE_MAX:
    case KILN_OP_REDUCE_MIN: {
        kiln_attr *a = &n->attrs[KILN_ATTR_AXES];
        for (int i = 0; i < a->n; ++i) {
            if (!normalize_axis(c, "axes", &a->ints[i], rank))
                return false;
        }
        qsort(a->ints, (size_t)a->n, sizeof a->ints[0], cmp_i64);
        return true;
    }
    case KILN_OP_TRANSPOSE: {
        kiln_attr *a = &n->attrs[KILN_ATTR_PERM];
        for (int i = 0; i < a->n; ++i) {
            if (!normalize_axis(c, "perm", &a->ints[i], rank))
                return false;
        }
        if (x->shape.batched && a->n > 0 && a->ints[0] != 0) {
            lerr(c, NULL, KILN_ERR_SHAPE, "transpose's perm must start with 0: the batch dimension stays on axis 0");
            return false;
        }
        return true;
    }
    case KILN_OP_RESHAPE: {
        char buf[160];
        format_ints(&n->attrs[KILN_ATTR_SHAPE], buf, sizeof buf);
        return resolve_reshape(c, n, x, buf);
    }
    default:
        return true;
    }
}

/* What a layer with parameters needs of its input before the parameters'
 * shapes can be worked out (the shape rule says the same, later). */
static bool check_param_input(lctx *c, const kiln_node *n, const kiln_type *x)
{
    char xs[160];
    const kiln_shape *s = &x->shape;
    kiln_shape_format(s, c->fe->g->batch_name, xs, sizeof xs);
    switch (n->op) {
    case KILN_OP_DENSE:
        if (s->rank < 2) {
            lerr(c, NULL, KILN_ERR_SHAPE, "dense needs an input of rank >= 2, got %s", xs);
            return false;
        }
        return true;
    case KILN_OP_CONV2D: {
        if (s->rank != 4) {
            lerr(c, NULL, KILN_ERR_SHAPE, "conv2d needs an input of rank 4 [N,C,H,W], got %s", xs);
            return false;
        }
        int64_t groups = n->attrs[KILN_ATTR_GROUPS].i;
        if (s->dims[1] % groups != 0) {
            lerr(c, NULL, KILN_ERR_SHAPE, "groups (%lld) must divide the input channels (%lld) of %s", (long long)groups,
                 (long long)s->dims[1], xs);
            return false;
        }
        return true;
    }
    case KILN_OP_BATCHNORM:
        if (s->rank < 2) {
            lerr(c, NULL, KILN_ERR_SHAPE, "batchnorm needs an input of rank >= 2 (channels on axis 1), got %s", xs);
            return false;
        }
        return true;
    case KILN_OP_LAYERNORM:
        if (s->rank < 1 || (s->batched && s->rank == 1)) {
            lerr(c, NULL, KILN_ERR_SHAPE, "layernorm cannot normalize over the batch dimension of %s", xs);
            return false;
        }
        return true;
    case KILN_OP_CONV_TRANSPOSE2D: {
        if (s->rank != 4) {
            lerr(c, NULL, KILN_ERR_SHAPE, "conv_transpose2d needs an input of rank 4 [N,C,H,W], got %s", xs);
            return false;
        }
        int64_t groups = n->attrs[KILN_ATTR_GROUPS].i;
        if (s->dims[1] % groups != 0) {
            lerr(c, NULL, KILN_ERR_SHAPE, "groups (%lld) must divide the input channels (%lld) of %s", (long long)groups,
                 (long long)s->dims[1], xs);
            return false;
        }
        return true;
    }
    case KILN_OP_GROUP_NORM:
        if (s->rank < 2) {
            lerr(c, NULL, KILN_ERR_SHAPE, "group_norm needs an input of rank >= 2 (channels on axis 1), got %s", xs);
            return false;
        }
        return true;
    default:
        return true;
    }
}

/* ---- activation --------------------------------------------------------- */

static bool read_activation(lctx *c, kiln_op *act, kiln_node *proto, bool *present)
{
    const kiln_fe_env *env;
    kiln_yaml_node *v = kiln_fe_layer_get(c->L, "activation", &env);
    *present = false;
    if (v == NULL)
        return true;
    kiln_yaml_node *opn = v;
    const kiln_fe_env *openv = env;
    if (v->kind == KILN_YAML_MAP) {
        opn = kiln_fe_resolve(kiln_yaml_get(v, "op"), env, &openv);
        if (opn == NULL) {
            lerr(c, v, KILN_ERR_PARSE, "an activation given as a mapping needs 'op'");
            return false;
        }
    }
    if (opn->kind != KILN_YAML_SCALAR) {
        lerr(c, opn, KILN_ERR_PARSE, "'activation' must be an op name or a mapping {op: NAME, ...}, not %s",
             kiln_yaml_kind_name(opn->kind));
        return false;
    }
    if (v->kind == KILN_YAML_SCALAR && strcmp(opn->text, "none") == 0)
        return true;
    if (kiln_fe_lookup_op(opn->text, act) != 0) {
        lerr(c, opn, KILN_ERR_PARSE, "unknown activation op '%s'", opn->text);
        return false;
    }
    if (!kiln_op_is_unary(*act)) {
        lerr(c, opn, KILN_ERR_PARSE, "'%s' cannot be an activation: only one-input elementwise ops can", opn->text);
        return false;
    }
    memset(proto, 0, sizeof *proto);
    proto->op = *act;
    bool ok = true;
    if (v->kind == KILN_YAML_MAP) {
        for (size_t i = 0; i < v->count; ++i) {
            kiln_yaml_node *k = v->pairs[i].key;
            kiln_attr_id id;
            if (strcmp(k->text, "op") == 0)
                continue;
            if (kiln_attr_lookup(k->text, &id) != 0 || !kiln_op_find_attr(*act, id)) {
                char keys[256];
                kiln_fe_op_keys(*act, keys, sizeof keys);
                lerr(c, k, KILN_ERR_PARSE, "unknown key '%s' in activation '%s' (it takes %s)", k->text, opn->text,
                     keys);
                ok = false;
            }
        }
        lctx sub = *c;
        char what[64];
        snprintf(what, sizeof what, "activation '%s': ", opn->text);
        sub.what = what;
        bool same;
        if (!read_attrs(&sub, *act, v, env, proto, &same))
            ok = false;
    }
    kiln_node_apply_defaults(proto);
    *present = ok;
    return ok;
}

/* ---- the layer ---------------------------------------------------------- */

static kiln_loc graph_loc(const kiln_fe *fe, kiln_loc loc)
{
    loc.file = fe->gfile;
    return loc;
}

/* Adds a node, copies the prototype's attributes and precision, runs its shape rule. */
static kiln_id add_node(lctx *c, const kiln_node *proto, const kiln_id *ins, uint32_t n, const char *out_name,
                        kiln_precision precision, const char *what)
{
    kiln_fe *fe = c->fe;
    kiln_graph *g = fe->g;
    kiln_loc loc = graph_loc(fe, kiln_fe_layer_loc(c->L, NULL));
    kiln_id id = kiln_graph_add_node(g, proto->op, ins, n, out_name, c->L->name, loc);
    if (id == KILN_NO_ID) {
        if (kiln_graph_find_value(g, out_name) != KILN_NO_ID)
            lerr(c, NULL, KILN_ERR_INTERNAL, "internal error: the value name '%s' is taken", out_name);
        else
            kiln_fe_oom(fe);
        return KILN_NO_ID;
    }
    kiln_node *node = kiln_graph_node(g, id);
    node->attr_set = proto->attr_set;
    memcpy(node->attrs, proto->attrs, sizeof node->attrs);
    node->precision = precision;
    char err[512];
    if (kiln_ir_infer_node(g, id, err, sizeof err) != KILN_OK) {
        lerr(c, NULL, KILN_ERR_SHAPE, "%s%s", what, err);
        return KILN_NO_ID;
    }
    return id;
}

static kiln_id operand_value(const kiln_fe *fe, kiln_fe_ref r)
{
    switch (r.kind) {
    case KILN_FE_REF_INPUT:
        return r.index < fe->n_inputs ? fe->input_values[r.index] : KILN_NO_ID;
    case KILN_FE_REF_LAYER:
        return r.index < fe->n_layers ? fe->layers[r.index].value : KILN_NO_ID;
    default:
        return KILN_NO_ID;
    }
}

void kiln_fe_lower(kiln_fe *fe, size_t index)
{
    kiln_fe_layer *L = &fe->layers[index];
    kiln_graph *g = fe->g;
    lctx c = {fe, L, ""};
    L->value = KILN_NO_ID;
    if (L->value_name == NULL)
        return;
    const kiln_op_def *def = kiln_op_get(L->op);

    /* Data operands: silent when one of them failed (already reported). */
    kiln_id *ins = kiln_arena_alloc(&fe->arena, (L->n_operands + KILN_MAX_OP_PARAMS) * sizeof *ins);
    if (ins == NULL) {
        kiln_fe_oom(fe);
        return;
    }
    for (uint32_t i = 0; i < L->n_operands; ++i) {
        ins[i] = operand_value(fe, L->operands[i]);
        if (ins[i] == KILN_NO_ID)
            return;
    }

    kiln_precision precision = L->precision;
    kiln_yaml_node *pn = kiln_fe_layer_get(L, "precision", NULL);
    if (pn && (pn->kind != KILN_YAML_SCALAR || kiln_precision_parse(pn->text, &precision) != 0)) {
        lerr(&c, pn, KILN_ERR_PARSE, "'precision' must be one of f32, bf16, f16, int8, auto, got '%s'",
             pn->kind == KILN_YAML_SCALAR ? pn->text : kiln_yaml_kind_name(pn->kind));
        return;
    }

    /* Attributes. */
    kiln_node proto;
    memset(&proto, 0, sizeof proto);
    proto.op = L->op;
    bool same = false, ok = read_attrs(&c, L->op, L->map, L->env, &proto, &same);
    bool bias = true, affine = true;
    if (kiln_fe_op_takes_key(L->op, "bias") && !read_switch(&c, "bias", &bias))
        ok = false;
    if (kiln_fe_op_takes_key(L->op, "affine") && !read_switch(&c, "affine", &affine))
        ok = false;
    kiln_op act = KILN_OP_RELU;
    kiln_node act_proto;
    bool has_act = false;
    if (kiln_fe_op_takes_key(L->op, "activation") && !read_activation(&c, &act, &act_proto, &has_act))
        ok = false;

    /* Operand forms. */
    uint32_t n = L->n_operands;
    if (kiln_op_is_binary(L->op)) {
        bool scalar = kiln_node_has(&proto, KILN_ATTR_SCALAR);
        if (n == 2 && scalar) {
            lerr(&c, NULL, KILN_ERR_PARSE,
                 "give two operands (inputs: [a, b]) or one operand and 'scalar', not both");
            ok = false;
        } else if (n == 1 && !scalar) {
            lerr(&c, NULL, KILN_ERR_PARSE, "%s needs two operands (inputs: [a, b]) or one operand and 'scalar'",
                 def->name);
            ok = false;
        } else if (n > 2) {
            lerr(&c, NULL, KILN_ERR_PARSE, "%s takes 2 operands, got %u", def->name, n);
            ok = false;
        }
    } else if (n < (uint32_t)def->min_inputs || (def->max_inputs >= 0 && n > (uint32_t)def->max_inputs)) {
        if (def->min_inputs == def->max_inputs)
            lerr(&c, NULL, KILN_ERR_PARSE, "%s takes %d operand(s), got %u%s", def->name, def->min_inputs, n,
                 def->min_inputs == 2 ? " (inputs: [a, b])" : "");
        else
            lerr(&c, NULL, KILN_ERR_PARSE, "%s takes at least %d operand(s), got %u", def->name, def->min_inputs, n);
        ok = false;
    }
    if (!ok)
        return;
    kiln_node_apply_defaults(&proto);

    /* What the frontend resolves against the input. */
    kiln_type x_type; /* a copy: adding values moves g->values */
    if (n)
        x_type = g->values[ins[0]].type;
    const kiln_type *x = n ? &x_type : NULL;
    if (x) {
        if (same)
            resolve_same(&proto, x);
        if (!resolve_axes(&c, &proto, x) || !check_param_input(&c, &proto, x))
            return;
    }

    /* Parameters. */
    bool roles[KILN_MAX_OP_PARAMS] = {false};
    int n_roles = 0;
    while (n_roles < KILN_MAX_OP_PARAMS && def->params[n_roles]) {
        const char *r = def->params[n_roles];
        roles[n_roles] = !((!bias && strcmp(r, "bias") == 0) ||
                           (!affine && (strcmp(r, "weight") == 0 || strcmp(r, "bias") == 0)));
        n_roles++;
    }
    uint32_t n_params = 0;
    bool fatal = false;
    if (n_roles > 0) {
        kiln_fe_bind_params(fe, L, &proto, x, roles, ins + n, &n_params, &fatal);
        if (fatal || fe->oom)
            return;
    }

    /* The node, and the activation after it. */
    const char *out_name = L->value_name;
    if (has_act) {
        out_name = kiln_arena_printf(&fe->arena, "%s:pre", L->value_name);
        if (out_name == NULL) {
            kiln_fe_oom(fe);
            return;
        }
    }
    kiln_id id = add_node(&c, &proto, ins, n + n_params, out_name, precision, "");
    if (id == KILN_NO_ID)
        return;
    if (has_act) {
        kiln_id pre = g->nodes[id].output;
        char what[64];
        snprintf(what, sizeof what, "activation '%s': ", kiln_op_name(act));
        id = add_node(&c, &act_proto, &pre, 1, L->value_name, precision, what);
        if (id == KILN_NO_ID)
            return;
    }
    L->value = g->nodes[id].output;
}
