/* compiler/frontend/onnx/emit.c: the kiln side of the import: names, layers
 * and parameters.
 *
 * Layers are added to a scratch IR graph as they are written, each checked
 * by kiln's own shape rule (ir/ops.c): what the importer writes is what the
 * YAML frontend will accept, and a layer kiln refuses refuses the ONNX node
 * with the rule's message. yaml.c prints the graph at the end. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ox.h"

/* ---- names ---------------------------------------------------------------- */

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
}

char *ox_sanitize(ox_ctx *x, const char *s)
{
    size_t len = strlen(s);
    char *out = kiln_arena_alloc(&x->arena, len + 2);
    if (!out) {
        ox_oom(x);
        return (char *)"v";
    }
    size_t w = 0;
    bool replaced = false; /* the last character written stands for others */
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (name_char(c)) {
            out[w++] = c;
            replaced = false;
            continue;
        }
        char r = c == '/' ? '.' : '_';
        if (replaced || (w > 0 && out[w - 1] == r))
            continue;
        out[w++] = r;
        replaced = true;
    }
    while (w > 0 && out[w - 1] == '.')
        w--;
    size_t start = 0;
    while (start < w && out[start] == '.')
        start++;
    if (start == w) {
        strcpy(out, "v");
        return out;
    }
    memmove(out, out + start, w - start);
    out[w - start] = '\0';
    return out;
}

static bool taken(ox_ctx *x, const char *name) { return kiln_strmap_get(&x->names, name) != NULL; }

static int put(ox_ctx *x, kiln_strmap *m, const char *key)
{
    if (kiln_strmap_put(m, key, (void *)1) != 0) {
        ox_oom(x);
        return -1;
    }
    return 0;
}

/* The spelling of a name in the generated C API (FORMAT.md "Generated names"). */
static char *c_spelling(ox_ctx *x, const char *name)
{
    char *c = kiln_arena_printf(&x->arena, "_%s", name);
    if (!c)
        return NULL;
    for (char *p = c + 1; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_')
            *p = '_';
    return isdigit((unsigned char)c[1]) ? c : c + 1;
}

/* `want`, else `want_2`, `want_3`, ...: the first free one (also in its C
 * spelling for io). The last suffix tried for each `want` is remembered, so
 * a thousand nodes of one name do not cost a million lookups. */
static const char *first_free(ox_ctx *x, const char *want, bool io)
{
    uintptr_t last = (uintptr_t)kiln_strmap_get(&x->suffixes, want);
    for (unsigned k = last > 1 ? (unsigned)last + 1 : 1;; k++) {
        char *name = k == 1 ? kiln_arena_strdup(&x->arena, want) : kiln_arena_printf(&x->arena, "%s_%u", want, k);
        char *c = name && io ? c_spelling(x, name) : NULL;
        if (!name || (io && !c)) {
            ox_oom(x);
            return "v";
        }
        if (taken(x, name) || (io && kiln_strmap_get(&x->cnames, c)))
            continue;
        if (put(x, &x->names, name) != 0 || (io && put(x, &x->cnames, c) != 0))
            return "v";
        if (k > 1) {
            char *key = kiln_arena_strdup(&x->arena, want);
            if (!key || kiln_strmap_put(&x->suffixes, key, (void *)(uintptr_t)k) != 0)
                ox_oom(x);
        }
        return name;
    }
}

const char *ox_claim(ox_ctx *x, const char *want) { return first_free(x, want, false); }

const char *ox_claim_io(ox_ctx *x, const char *want) { return first_free(x, want, true); }

/* The scope of a PyTorch node name: everything before its last '/'. */
static char *scope_of(ox_ctx *x, const char *name)
{
    const char *slash = strrchr(name, '/');
    if (name[0] != '/' || !slash || slash == name)
        return NULL;
    return kiln_arena_strndup(&x->arena, name, (size_t)(slash - name));
}

void ox_count_scopes(ox_ctx *x)
{
    for (size_t j = 0; j < x->graph->n_node; j++) {
        const char *name = x->graph->node[j]->name;
        char *scope = name ? scope_of(x, name) : NULL;
        if (!scope)
            continue;
        uintptr_t c = (uintptr_t)kiln_strmap_get(&x->scopes, scope);
        if (kiln_strmap_put(&x->scopes, scope, (void *)(c + 1)) != 0) {
            ox_oom(x);
            return;
        }
    }
}

const char *ox_node_name(ox_ctx *x, const Onnx__NodeProto *p)
{
    const char *name = p->name;
    if (!name || !name[0])
        return NULL;
    char *scope = scope_of(x, name);
    if (!scope)
        return ox_sanitize(x, name);
    /* "/features/features.1/block/block.0" is the module features.1.block.0:
     * a component that extends the one before it by ".N" adds only ".N". */
    size_t len = strlen(name);
    char *path = kiln_arena_alloc(&x->arena, len + 2);
    if (!path) {
        ox_oom(x);
        return "v";
    }
    path[0] = '\0';
    const char *prev = NULL;
    size_t prev_len = 0;
    for (const char *c = scope + 1; *c;) {
        const char *end = strchr(c, '/');
        size_t clen = end ? (size_t)(end - c) : strlen(c);
        if (clen) {
            const char *part = c;
            size_t plen = clen;
            if (prev && clen > prev_len + 1 && strncmp(c, prev, prev_len) == 0 && c[prev_len] == '.') {
                part = c + prev_len + 1;
                plen = clen - prev_len - 1;
            }
            if (path[0])
                strcat(path, ".");
            strncat(path, part, plen);
            prev = c;
            prev_len = clen;
        }
        c = end ? end + 1 : c + clen;
    }
    uintptr_t count = (uintptr_t)kiln_strmap_get(&x->scopes, scope);
    const char *op = strrchr(name, '/') + 1;
    if (!path[0])
        return ox_sanitize(x, op);
    if (count > 1 || !*op) {
        char *both = kiln_arena_printf(&x->arena, "%s.%s", path, op);
        return both ? ox_sanitize(x, both) : "v";
    }
    return ox_sanitize(x, path);
}

static const char *node_own_name(ox_ctx *x, ox_node *n, size_t k)
{
    const char *own = k == 0 ? ox_node_name(x, n->p) : NULL;
    if (own)
        return own;
    return ox_sanitize(x, n->out[k] ? n->out[k]->name : n->base);
}

const char *ox_out_name(ox_ctx *x, ox_node *n, size_t k, const char *hint)
{
    ox_value *v = k < n->n_out ? n->out[k] : NULL;
    if (v && v->is_output && v->out_name) {
        const char *name = v->out_name;
        v->out_name = NULL; /* one layer takes it; a second would get a name of its own */
        return name;
    }
    return ox_claim(x, hint ? hint : node_own_name(x, n, k));
}

const char *ox_sub_name(ox_ctx *x, ox_node *n, const char *suffix)
{
    char *want = kiln_arena_printf(&x->arena, "%s.%s", n->base, suffix);
    if (!want) {
        ox_oom(x);
        return "v";
    }
    return ox_claim(x, want);
}

const char *ox_module_hint(ox_ctx *x, const ox_value *v, const char *role)
{
    if (!v || !v->hint)
        return NULL;
    size_t len = strlen(v->hint), rl = strlen(role);
    if (len <= rl + 1 || v->hint[len - rl - 1] != '.' || strcmp(v->hint + len - rl, role) != 0)
        return NULL;
    char *prefix = kiln_arena_strndup(&x->arena, v->hint, len - rl - 1);
    if (!prefix) {
        ox_oom(x);
        return NULL;
    }
    for (const char *p = prefix; *p; p++)
        if (!name_char(*p))
            return NULL; /* not a PyTorch module path */
    return taken(x, prefix) ? NULL : prefix;
}

/* ---- layers ----------------------------------------------------------------- */

const kiln_shape *ox_kshape(ox_ctx *x, kiln_id v) { return &kiln_graph_value(x->g, v)->type.shape; }

kiln_id ox_emit(ox_ctx *x, ox_node *n, kiln_op op, const kiln_id *ins, uint32_t n_in, const kiln_node *attrs,
                const char *name)
{
    for (uint32_t i = 0; i < n_in; i++)
        if (ins[i] == KILN_NO_ID)
            return KILN_NO_ID; /* an operand already failed (and said why) */
    kiln_node tmp;
    memset(&tmp, 0, sizeof tmp);
    if (attrs) {
        tmp.attr_set = attrs->attr_set;
        memcpy(tmp.attrs, attrs->attrs, sizeof tmp.attrs);
    }
    tmp.op = op;
    tmp.inputs = (kiln_id *)ins;
    tmp.n_inputs = n_in;
    uint64_t written = tmp.attr_set;
    for (int id = 0; id < KILN_ATTR_COUNT; id++)
        if (((written >> id) & 1u) && kiln_attr_defs[id].type == KILN_ATTR_T_FLOAT && !isfinite(tmp.attrs[id].f)) {
            ox_refuse(n, x, "its %s %g cannot be written in a kiln model (only finite numbers)",
                      kiln_attr_defs[id].name, tmp.attrs[id].f);
            return KILN_NO_ID;
        }
    kiln_node_apply_defaults(&tmp);
    kiln_type type;
    char err[512];
    if (kiln_ir_node_type(x->g, &tmp, &type, err, sizeof err) != KILN_OK) {
        /* a rule about the batch: the model computes with its batch size */
        ox_refuse(n, x, "kiln's %s cannot take it: %s%s", kiln_op_name(op), err,
                  strstr(err, "batch") ? " (pin the batch with --input to import the model with a fixed batch)" : "");
        return KILN_NO_ID;
    }
    kiln_id id = kiln_graph_add_node(x->g, op, ins, n_in, name, name, (kiln_loc){0});
    if (id == KILN_NO_ID ||
        kiln_grow((void **)&x->explicit_attrs, &x->cap_explicit, (size_t)id + 1, sizeof *x->explicit_attrs) != 0) {
        ox_oom(x);
        ox_refuse(n, x, "out of memory");
        return KILN_NO_ID;
    }
    kiln_node *node = kiln_graph_node(x->g, id);
    node->attr_set = tmp.attr_set;
    memcpy(node->attrs, tmp.attrs, sizeof tmp.attrs);
    kiln_graph_value(x->g, node->output)->type = type;
    x->explicit_attrs[id] = written;
    return node->output;
}

kiln_id ox_emit1(ox_ctx *x, ox_node *n, kiln_op op, kiln_id in, const kiln_node *attrs, const char *name)
{
    return ox_emit(x, n, op, &in, 1, attrs, name);
}

kiln_id ox_emit_scalar(ox_ctx *x, ox_node *n, kiln_op op, kiln_id in, double s, bool reverse, const char *name)
{
    if (!(s == s) || s > 1.7e308 || s < -1.7e308) /* NaN and infinities cannot be written */
        return ox_refuse(n, x, "its constant %g cannot be written in a kiln model (only finite numbers)", s),
               KILN_NO_ID;
    kiln_node a = {0};
    kiln_node_set_float(&a, KILN_ATTR_SCALAR, s);
    if (reverse)
        kiln_node_set_bool(&a, KILN_ATTR_REVERSE, true);
    return ox_emit1(x, n, op, in, &a, name);
}

kiln_id ox_emit_reshape(ox_ctx *x, ox_node *n, kiln_id in, int rank, const int64_t *dims, const char *name)
{
    kiln_node a = {0};
    kiln_node_set_ints(&a, KILN_ATTR_SHAPE, dims, rank);
    return ox_emit1(x, n, KILN_OP_RESHAPE, in, &a, name);
}

kiln_id ox_emit_transpose(ox_ctx *x, ox_node *n, kiln_id in, int rank, const int64_t *perm, const char *name)
{
    kiln_node a = {0};
    kiln_node_set_ints(&a, KILN_ATTR_PERM, perm, rank);
    return ox_emit1(x, n, KILN_OP_TRANSPOSE, in, &a, name);
}

/* ---- parameters and constants --------------------------------------------- */

kiln_id ox_param_data(ox_ctx *x, ox_node *n, const char *hint, int rank, const int64_t *dims, const float *data)
{
    kiln_type t;
    memset(&t, 0, sizeof t);
    t.dtype = KILN_F32;
    t.shape.rank = rank;
    for (int k = 0; k < rank; k++)
        t.shape.dims[k] = dims[k];
    kiln_param p;
    memset(&p, 0, sizeof p);
    p.source = KILN_PARAM_INLINE;
    p.data_dtype = KILN_F32;
    p.data = data;
    p.key = hint ? kiln_arena_strdup(&x->g->arena, hint) : NULL;
    char internal[32];
    snprintf(internal, sizeof internal, "#p%zu", x->g->n_values);
    kiln_id id = kiln_graph_add_param(x->g, internal, &t, &p, (kiln_loc){0});
    if (id == KILN_NO_ID) {
        ox_oom(x);
        ox_refuse(n, x, "out of memory");
    }
    return id;
}

kiln_id ox_param(ox_ctx *x, ox_node *n, ox_value *v, const char *role, int rank, const int64_t *dims)
{
    if (!v) {
        ox_refuse(n, x, "its %s is missing", role);
        return KILN_NO_ID;
    }
    if (v->kind != OX_CONST) {
        ox_refuse(n, x, "its %s '%s' is %s, not an initializer: kiln needs parameters to be constants", role,
                  v->name, v->graph_input ? "a graph input" : "computed by the graph");
        return KILN_NO_ID;
    }
    ox_tensor *t = ox_const(x, n, v);
    if (!t)
        return KILN_NO_ID;
    if (!ox_dtype_is_float(t->dtype)) {
        ox_refuse(n, x, "its %s '%s' is %s (parameters are float)", role, v->name, ox_dtype_name(t->dtype));
        return KILN_NO_ID;
    }
    int64_t count = 1;
    for (int k = 0; k < rank; k++)
        count *= dims[k];
    if (count != t->count) {
        ox_refuse(n, x, "its %s '%s' has %lld elements, %lld expected", role, v->name, (long long)t->count,
                  (long long)count);
        return KILN_NO_ID;
    }
    if (v->param != KILN_NO_ID) {
        const kiln_shape *s = ox_kshape(x, v->param);
        bool same = s->rank == rank;
        for (int k = 0; same && k < rank; k++)
            same = s->dims[k] == dims[k];
        if (same)
            return v->param;
    }
    float *data = ox_tensor_to_f32(x, t);
    if (!data)
        return ox_refuse(n, x, "out of memory"), KILN_NO_ID;
    kiln_id id = ox_param_data(x, n, v->hint ? v->hint : v->name, rank, dims, data);
    if (v->param == KILN_NO_ID)
        v->param = id;
    return id;
}

kiln_id ox_data_value(ox_ctx *x, ox_node *n, ox_value *v)
{
    if (!v) {
        ox_refuse(n, x, "a required input is missing");
        return KILN_NO_ID;
    }
    if (v->kind == OX_DYN)
        return v->kv;
    if (v->kind != OX_CONST) {
        ox_refuse(n, x, "reads '%s' before it is computed", v->name);
        return KILN_NO_ID;
    }
    if (v->kv != KILN_NO_ID)
        return v->kv;
    ox_tensor *t = ox_const(x, n, v);
    if (!t)
        return KILN_NO_ID;
    if (!ox_dtype_is_float(t->dtype)) {
        ox_refuse(n, x, "its operand '%s' is %s: kiln computes in float32", v->name, ox_dtype_name(t->dtype));
        return KILN_NO_ID;
    }
    if (ox_has_sym(t) || t->count == 0) {
        ox_refuse(n, x, "its operand '%s' is an empty constant", v->name);
        return KILN_NO_ID;
    }
    int64_t one = 1;
    kiln_id p = t->rank == 0 ? ox_param(x, n, v, "value", 1, &one) : ox_param(x, n, v, "value", t->rank, t->dims);
    const char *name = ox_claim(x, ox_sanitize(x, v->hint ? v->hint : v->name));
    v->kv = ox_emit(x, n, KILN_OP_CONSTANT, &p, 1, NULL, name);
    return v->kv;
}

kiln_id ox_data(ox_ctx *x, ox_node *n, size_t i)
{
    return ox_data_value(x, n, i < n->n_in ? n->in[i] : NULL);
}
