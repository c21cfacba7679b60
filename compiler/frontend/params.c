/* compiler/frontend/params.c: a layer's parameters -> PARAM values.
 *
 * The key of role R of layer L is `L.R` unless `params: {R: KEY}` says
 * otherwise. A key found in the weights becomes a FILE parameter; a missing
 * one becomes a RANDOM parameter under `init: {random: SEED}` (ranges in
 * docs/format.md), else an error naming the key. One key read by several
 * layers is one value. Problems are reported at the layer; the parameter
 * still gets a value of the shape the layer needs, so the rest of the model
 * is checked too. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fe.h"
#include "weights.h"

typedef struct param_entry {
    kiln_id value;
    const kiln_fe_layer *first; /* the first layer that read it */
} param_entry;

static bool taken(const kiln_fe *fe, const char *name)
{
    return kiln_graph_find_value(fe->g, name) != KILN_NO_ID || kiln_strmap_get(&fe->reserved, name) != NULL;
}

/* The value name of a parameter: its key, or key#1, key#2, ... when a layer
 * or another value has that name. */
static const char *fresh_name(kiln_fe *fe, const char *key)
{
    if (!taken(fe, key))
        return key;
    for (unsigned k = 1;; ++k) {
        const char *cand = kiln_arena_printf(&fe->arena, "%s#%u", key, k);
        if (cand == NULL || !taken(fe, cand))
            return cand;
    }
}

/* The shape the layer needs for parameter role i (the op table's
 * param_shapes); false when it has none fixed (constant's value). */
static bool needed_shape(const kiln_node *n, const kiln_type *x, int i, kiln_shape *out)
{
    kiln_shape all[KILN_MAX_OP_PARAMS];
    memset(out, 0, sizeof *out);
    if (!kiln_op_param_shapes(n->op, &x, 1, n->attrs, n->attr_set, all) || all[i].rank == 0)
        return false;
    *out = all[i];
    return true;
}

/* The uniform range of `init: {random: SEED}` for a role (docs/format.md). */
static void random_range(const kiln_node *n, const kiln_type *x, const char *role, double *lo, double *hi)
{
    if (n->op == KILN_OP_DENSE || n->op == KILN_OP_CONV2D || n->op == KILN_OP_CONV_TRANSPOSE2D) {
        kiln_shape w;
        needed_shape(n, x, kiln_op_param_index(n->op, "weight"), &w);
        double fan_in = 1;
        for (int i = 1; i < w.rank; ++i)
            fan_in *= (double)w.dims[i];
        double bound = 1.0 / sqrt(fan_in);
        *lo = -bound;
        *hi = bound;
        return;
    }
    if (strcmp(role, "weight") == 0 || strcmp(role, "running_var") == 0) {
        *lo = 0.5;
        *hi = 1.5;
    } else {
        *lo = -0.1;
        *hi = 0.1;
    }
}

static void files_list(const kiln_graph *g, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < g->n_weight_files && n + 1 < size; ++i)
        n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? ", " : "", g->weight_files[i]);
}

/* The key of every present role (params: overrides checked here). */
static bool read_keys(kiln_fe *fe, const kiln_fe_layer *L, const bool *roles, const char **keys)
{
    const kiln_op_def *def = kiln_op_get(L->op);
    const kiln_fe_env *env;
    kiln_yaml_node *p = kiln_fe_layer_get(L, "params", &env);
    bool ok = true;
    for (int i = 0; i < KILN_MAX_OP_PARAMS && def->params[i]; ++i)
        keys[i] = NULL;
    if (p) {
        if (p->kind != KILN_YAML_MAP) {
            kiln_fe_layer_error(fe, L, p, KILN_ERR_PARSE, "'params' must be a mapping {ROLE: KEY}");
            return false;
        }
        for (size_t j = 0; j < p->count; ++j) {
            kiln_yaml_node *k = p->pairs[j].key;
            int i = kiln_op_param_index(L->op, k->text);
            if (i < 0) {
                char list[128];
                size_t n = 0;
                list[0] = '\0';
                for (int r = 0; r < KILN_MAX_OP_PARAMS && def->params[r] && n + 1 < sizeof list; ++r)
                    n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", r ? ", " : "", def->params[r]);
                kiln_fe_layer_error(fe, L, k, KILN_ERR_PARSE, "%s has no parameter '%s' (its parameters: %s)",
                                    def->name, k->text, n ? list : "none");
                ok = false;
                continue;
            }
            if (!roles[i]) {
                kiln_fe_layer_error(fe, L, k, KILN_ERR_PARSE, "'params' gives '%s', which this layer does not have%s",
                                    k->text, strcmp(k->text, "bias") == 0 && L->op != KILN_OP_LAYERNORM
                                                 ? " (bias: false)"
                                                 : " (affine: false)");
                ok = false;
                continue;
            }
            kiln_yaml_node *v = kiln_fe_resolve(p->pairs[j].value, env, NULL);
            if (v->kind != KILN_YAML_SCALAR || v->len == 0 || kiln_yaml_is_null(v)) {
                kiln_fe_layer_error(fe, L, v, KILN_ERR_PARSE, "the key of parameter '%s' must be a non-empty string",
                                    k->text);
                ok = false;
                continue;
            }
            keys[i] = v->text;
        }
    }
    for (int i = 0; i < KILN_MAX_OP_PARAMS && def->params[i]; ++i) {
        if (roles[i] && keys[i] == NULL) {
            keys[i] = kiln_arena_printf(&fe->arena, "%s.%s", L->name, def->params[i]);
            if (keys[i] == NULL) {
                kiln_fe_oom(fe);
                return false;
            }
        }
    }
    return ok;
}

bool kiln_fe_bind_params(kiln_fe *fe, const kiln_fe_layer *L, const kiln_node *proto, const kiln_type *x,
                         const bool *roles, kiln_id *ids, uint32_t *n_ids, bool *fatal)
{
    kiln_graph *g = fe->g;
    const kiln_op_def *def = kiln_op_get(L->op);
    const char *keys[KILN_MAX_OP_PARAMS];
    char a[160], b[160];
    bool ok = true, mismatch = false;
    char missing[512];
    size_t n_missing = 0, missing_len = 0;
    missing[0] = '\0';
    *n_ids = 0;
    *fatal = false;
    if (!read_keys(fe, L, roles, keys)) {
        *fatal = true;
        return false;
    }
    kiln_loc loc = kiln_fe_layer_loc(L, NULL);
    loc.file = fe->gfile;
    int64_t limit = g->max_elements > 0 ? g->max_elements : KILN_DEFAULT_MAX_ELEMENTS;

    for (int i = 0; i < KILN_MAX_OP_PARAMS && def->params[i]; ++i) {
        if (!roles[i])
            continue;
        const char *role = def->params[i], *key = keys[i];
        kiln_type type;
        memset(&type, 0, sizeof type);
        type.dtype = KILN_F32;
        bool fixed = x != NULL && needed_shape(proto, x, i, &type.shape);
        if (fixed) {
            int64_t count = kiln_shape_elements_per_item(&type.shape);
            if (count < 0 || count > limit) {
                kiln_fe_layer_error(fe, L, NULL, KILN_ERR_SHAPE,
                                    "parameter '%s' (%s) would have more than %lld elements", role, key,
                                    (long long)limit);
                *fatal = true;
                return false;
            }
        }

        param_entry *e = kiln_strmap_get(&fe->params, key);
        if (e) { /* shared */
            const kiln_shape *have = &g->values[e->value].type.shape;
            bool one = (def->flags & KILN_OPF_PARAM_ONE) && have->rank == 1 && have->dims[0] == 1;
            if (fixed && !kiln_shape_equal(have, &type.shape) && !one) {
                kiln_fe_layer_error(fe, L, NULL, KILN_ERR_WEIGHTS,
                                    "parameter '%s' reads '%s' as %s, but layer '%s' (line %u) reads it as %s", role,
                                    key, kiln_shape_format(&type.shape, NULL, a, sizeof a), e->first->name,
                                    kiln_fe_layer_loc(e->first, NULL).line, kiln_shape_format(have, NULL, b, sizeof b));
                ok = false;
                mismatch = true;
            }
            ids[(*n_ids)++] = e->value;
            continue;
        }

        kiln_param param;
        memset(&param, 0, sizeof param);
        param.key = key;
        uint32_t file = 0;
        const kiln_st_tensor *t = kiln_weights_find(g, key, &file);
        bool bind = true;
        if (t) {
            param.source = KILN_PARAM_FILE;
            param.file = file;
            if (fixed && (def->flags & KILN_OPF_PARAM_ONE) && t->rank == 1 && t->dims[0] == 1) {
                type.shape.rank = 1; /* one value for every channel (prelu's [1]) */
                type.shape.dims[0] = 1;
            }
            if (!fixed) { /* constant: the tensor's own shape */
                if (!t->supported) {
                    kiln_fe_layer_error(fe, L, NULL, KILN_ERR_WEIGHTS,
                                        "tensor '%s' in %s has dtype %s and rank %d; kiln reads F32, F16, BF16, F64 "
                                        "of rank up to %d",
                                        key, g->weight_files[file], t->dtype_name, t->rank, KILN_MAX_RANK);
                    *fatal = true;
                    return false;
                }
                type.shape.rank = t->rank;
                memcpy(type.shape.dims, t->dims, sizeof(int64_t) * (size_t)t->rank);
                int64_t count = kiln_shape_elements_per_item(&type.shape);
                for (int k = 0; k < t->rank; ++k) {
                    if (t->dims[k] < 1 || t->dims[k] > KILN_MAX_DIM)
                        count = -1;
                }
                if (count < 0 || count > limit) {
                    kiln_fe_layer_error(fe, L, NULL, KILN_ERR_SHAPE,
                                        "tensor '%s' in %s has a dimension outside 1..2147483647 or more than %lld "
                                        "elements",
                                        key, g->weight_files[file], (long long)limit);
                    *fatal = true;
                    return false;
                }
            }
        } else if (fe->has_init && fixed) {
            param.source = KILN_PARAM_RANDOM;
            param.seed = fe->seed;
            random_range(proto, x, role, &param.lo, &param.hi);
        } else {
            /* Missing: reported (unless a weights file failed to open, which
             * says it all), and stood in for by an unbound value. */
            param.source = KILN_PARAM_FILE;
            param.file = KILN_WEIGHTS_ANY_FILE;
            bind = false;
            ok = false;
            if (!fixed) { /* constant: without the tensor there is no shape */
                char files[256];
                files_list(g, files, sizeof files);
                if (fe->has_init)
                    kiln_fe_layer_error(fe, L, NULL, KILN_ERR_WEIGHTS,
                                        "weights '%s' not found%s%s; a constant cannot come from init: random (its "
                                        "shape is only known from the weights)",
                                        key, g->n_weight_files ? " in " : "", files);
                else if (!fe->weights_failed)
                    kiln_fe_layer_error(fe, L, NULL, KILN_ERR_WEIGHTS, "weights '%s' not found%s%s", key,
                                        g->n_weight_files ? " in " : ": the model has no 'weights:' file",
                                        files);
                *fatal = true;
                return false;
            }
            if (!fe->weights_failed && missing_len + 1 < sizeof missing) {
                missing_len += (size_t)snprintf(missing + missing_len, sizeof missing - missing_len, "%s'%s'",
                                                n_missing ? ", " : "", key);
                n_missing++;
            }
        }
        const char *name = fresh_name(fe, key);
        kiln_id id = name ? kiln_graph_add_param(g, name, &type, &param, loc) : KILN_NO_ID;
        e = kiln_arena_alloc(&fe->arena, sizeof *e);
        if (id == KILN_NO_ID || e == NULL || kiln_strmap_put(&fe->params, key, e) != 0) {
            kiln_fe_oom(fe);
            *fatal = true;
            return false;
        }
        e->value = id;
        e->first = L;
        if (bind) {
            kiln_status st = kiln_weights_bind_value(g, id, fe->d);
            if (st != KILN_OK) {
                if (fe->status == KILN_OK)
                    fe->status = st;
                if (st == KILN_ERR_OUT_OF_MEMORY)
                    fe->oom = true;
                ok = false;
            }
        }
        ids[(*n_ids)++] = id;
    }
    if (n_missing) {
        char files[256];
        files_list(g, files, sizeof files);
        if (g->n_weight_files)
            kiln_fe_layer_error(fe, L, NULL, KILN_ERR_WEIGHTS, "weights %s not found in %s", missing, files);
        else
            kiln_fe_layer_error(fe, L, NULL, KILN_ERR_WEIGHTS,
                                "weights %s not found: the model has no 'weights:' file and no "
                                "'init: {random: SEED}'",
                                missing);
    }
    if (mismatch)
        *fatal = true;
    return ok;
}
