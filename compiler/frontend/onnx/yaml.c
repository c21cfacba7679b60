/* compiler/frontend/onnx/yaml.c: the scratch graph as a model in FORMAT.md,
 * written the way a person would: one flow-style layer per line, operands
 * only where a layer does not read the previous one, attributes only where
 * they differ from the defaults, `activation:` folded into the dense or
 * conv2d layer it follows, and weights keys `LAYER.ROLE` (so no `params:`)
 * except for a tensor that several layers share. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ox.h"

typedef struct buf {
    char *p;
    size_t n, cap;
    bool oom;
} buf;

static void put(buf *b, const char *s, size_t len)
{
    if (b->oom)
        return;
    if (kiln_grow((void **)&b->p, &b->cap, b->n + len + 1, 1) != 0) {
        b->oom = true;
        return;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }

static void printf_(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void printf_(buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (len < 0)
        return;
    if ((size_t)len < sizeof tmp) {
        put(b, tmp, (size_t)len);
        return;
    }
    char *big = kiln_malloc((size_t)len + 1);
    if (!big) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)len + 1, fmt, ap);
    va_end(ap);
    put(b, big, (size_t)len);
    kiln_free(big);
}

/* A name as a YAML scalar: plain, unless YAML would read it as null. */
static void name_(buf *b, const char *s)
{
    if (strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0)
        printf_(b, "\"%s\"", s);
    else
        puts_(b, s);
}

/* A file path as a YAML scalar: plain when it is made of safe characters,
 * else double-quoted with escapes. */
static void path_(buf *b, const char *s)
{
    bool plain = *s != '\0';
    for (const char *p = s; *p && plain; p++)
        plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
                *p == '.' || *p == '/' || *p == '-';
    if (plain && strcmp(s, "null") != 0 && strcmp(s, "Null") != 0 && strcmp(s, "NULL") != 0) {
        puts_(b, s);
        return;
    }
    puts_(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf_(b, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            printf_(b, "\\x%02x", *p);
        else
            put(b, (const char *)p, 1);
    }
    puts_(b, "\"");
}

/* The shortest decimal that reads back as v (as the float v is, when it is one). */
static void number(buf *b, double v)
{
    char s[40];
    bool is_float = (double)(float)v == v;
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(s, sizeof s, "%.*g", prec, v);
        double back = strtod(s, NULL);
        if (is_float ? (float)back == (float)v : back == v)
            break;
    }
    puts_(b, s);
}

static void ints(buf *b, const int64_t *v, int n)
{
    puts_(b, "[");
    for (int i = 0; i < n; i++)
        printf_(b, "%s%lld", i ? ", " : "", (long long)v[i]);
    puts_(b, "]");
}

static bool attr_equal(kiln_attr_type t, const kiln_attr *a, const kiln_attr *b)
{
    switch (t) {
    case KILN_ATTR_T_FLOAT: /* as the ONNX float it came from */
        return (float)a->f == (float)b->f;
    case KILN_ATTR_T_INTS:
        if (a->n != b->n) {
            /* "1" stands for [1, 1]: compare entry by entry with the single value repeated */
            const kiln_attr *one = a->n == 1 ? a : b->n == 1 ? b : NULL, *many = one == a ? b : a;
            if (!one)
                return false;
            for (int i = 0; i < many->n; i++)
                if (many->ints[i] != one->ints[0])
                    return false;
            return true;
        }
        for (int i = 0; i < a->n; i++)
            if (a->ints[i] != b->ints[i])
                return false;
        return true;
    case KILN_ATTR_T_FLOATS:
        if (a->n != b->n)
            return false;
        for (int i = 0; i < a->n; i++)
            if ((float)a->floats[i] != (float)b->floats[i])
                return false;
        return true;
    default:
        return a->i == b->i;
    }
}

/* An attribute value in YAML. */
static void attr_value(buf *b, kiln_attr_id id, const kiln_attr *a)
{
    const kiln_attr_def *d = &kiln_attr_defs[id];
    switch (d->type) {
    case KILN_ATTR_T_INT:
        printf_(b, "%lld", (long long)a->i);
        break;
    case KILN_ATTR_T_FLOAT:
        number(b, a->f);
        break;
    case KILN_ATTR_T_BOOL:
        puts_(b, a->i ? "true" : "false");
        break;
    case KILN_ATTR_T_WORD: {
        const char *const *w = kiln_attr_words(id);
        puts_(b, w ? w[a->i] : "?");
        break;
    }
    case KILN_ATTR_T_INTS: {
        bool spatial = id == KILN_ATTR_KERNEL || id == KILN_ATTR_STRIDE || id == KILN_ATTR_DILATION ||
                       id == KILN_ATTR_PADDING;
        if (spatial && a->n == 2 && a->ints[0] == a->ints[1]) {
            printf_(b, "%lld", (long long)a->ints[0]);
        } else if (id == KILN_ATTR_PADDING && a->n == 4 && a->ints[0] == a->ints[2] && a->ints[1] == a->ints[3]) {
            if (a->ints[0] == a->ints[1])
                printf_(b, "%lld", (long long)a->ints[0]);
            else
                ints(b, a->ints, 2);
        } else {
            ints(b, a->ints, a->n);
        }
        break;
    }
    case KILN_ATTR_T_FLOATS:
        puts_(b, "[");
        for (int i = 0; i < a->n; i++) {
            if (i)
                puts_(b, ", ");
            number(b, a->floats[i]);
        }
        puts_(b, "]");
        break;
    }
}

/* The attributes the importer wrote on node n that differ from the op's defaults. */
static void attrs_(buf *b, const kiln_node *n, uint32_t written)
{
    const kiln_op_def *def = kiln_op_get(n->op);
    for (int k = 0; k < def->n_attrs; k++) {
        const kiln_op_attr *oa = &def->attrs[k];
        if (!((written >> oa->id) & 1u))
            continue;
        const kiln_attr *a = &n->attrs[oa->id];
        kiln_attr dflt;
        char err[128];
        if (oa->use == KILN_USE_DEFAULT && kiln_attr_from_text(oa->id, oa->default_text, 0, &dflt, err, sizeof err) == 0 &&
            attr_equal(kiln_attr_defs[oa->id].type, a, &dflt))
            continue;
        if (oa->use == KILN_USE_FROM && attr_equal(kiln_attr_defs[oa->id].type, a, &n->attrs[oa->from]))
            continue;
        printf_(b, ", %s: ", kiln_attr_defs[oa->id].name);
        attr_value(b, oa->id, a);
    }
}

/* Whether an attribute of node n would be printed (the op has any to show). */
static bool shows_attrs(const kiln_node *n, uint32_t written)
{
    buf tmp = {0};
    attrs_(&tmp, n, written);
    bool any = tmp.n > 0;
    kiln_free(tmp.p);
    return any;
}

/* Whether an initializer's name can be a tensor's key for role `role`: a
 * PyTorch state_dict key (`features.0.weight`) for that role. */
static bool hint_for(const char *hint, const char *role)
{
    size_t len = strlen(hint), rl = strlen(role);
    if (len <= rl + 1 || hint[len - rl - 1] != '.' || strcmp(hint + len - rl, role) != 0 || hint[0] == '.')
        return false;
    for (const char *p = hint; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '.'))
            return false;
    return true;
}

kiln_status ox_write_yaml(ox_ctx *x, kiln_onnx_result *r)
{
    kiln_graph *g = x->g;
    size_t nv = g->n_values, nn = g->n_nodes;
    uint32_t *uses = kiln_calloc(nv ? nv : 1, sizeof *uses);
    const char **pname = kiln_calloc(nv ? nv : 1, sizeof *pname);  /* printed name of each value */
    int *merged = kiln_calloc(nn ? nn : 1, sizeof *merged);        /* node -> activation node + 1 */
    bool *skip = kiln_calloc(nn ? nn : 1, sizeof *skip);
    const char **key = kiln_calloc(nv ? nv : 1, sizeof *key);      /* param -> shared key, or NULL */
    uint32_t *puses = kiln_calloc(nv ? nv : 1, sizeof *puses);     /* param -> uses as a parameter */
    kiln_onnx_tensor *tensors = kiln_arena_alloc(&x->arena, (nv ? nv : 1) * sizeof *tensors);
    bool *emitted = kiln_calloc(nv ? nv : 1, sizeof *emitted);
    kiln_strmap keys;
    kiln_strmap_init(&keys, &x->arena);
    buf b = {0};
    kiln_status st = KILN_OK;
    const char **dflt = NULL;
    if (!uses || !pname || !merged || !skip || !key || !puses || !tensors || !emitted) {
        st = KILN_ERR_OUT_OF_MEMORY;
        goto done;
    }
    kiln_graph_count_uses(g, uses);
    bool *is_out = (bool *)emitted; /* reused below; first: graph outputs */
    for (size_t k = 0; k < g->n_outputs; k++)
        is_out[g->outputs[k]] = true;
    for (size_t v = 0; v < nv; v++)
        pname[v] = g->values[v].name;
    /* dense/conv2d followed by its only reader, a one-operand elementwise op */
    for (size_t i = 0; i + 1 < nn; i++) {
        const kiln_node *n = &g->nodes[i];
        if ((n->op != KILN_OP_DENSE && n->op != KILN_OP_CONV2D) || uses[n->output] != 1 || is_out[n->output])
            continue;
        for (size_t j = i + 1; j < nn; j++) {
            const kiln_node *m = &g->nodes[j];
            if (m->n_inputs == 1 && m->inputs[0] == n->output) {
                if (kiln_op_is_unary(m->op) && !skip[j]) {
                    merged[i] = (int)j + 1;
                    skip[j] = true;
                    if (is_out[m->output])
                        pname[n->output] = pname[m->output];
                    else
                        pname[m->output] = pname[n->output];
                }
                break;
            }
        }
    }
    memset(emitted, 0, sizeof *emitted * (nv ? nv : 1));
    /* Parameter keys. A tensor one layer reads is LAYER.ROLE, or the
     * initializer's own name when that is a PyTorch state_dict key for the
     * same role (`fc.weight` read by the layer `logits`); a tensor several
     * layers share gets its initializer's name. Either way unique. */
    dflt = kiln_calloc(nv ? nv : 1, sizeof *dflt); /* param -> LAYER.ROLE of its one reader */
    if (!dflt) {
        st = KILN_ERR_OUT_OF_MEMORY;
        goto done;
    }
    for (size_t i = 0; i < nn; i++) {
        const kiln_node *n = &g->nodes[i];
        for (uint32_t k = kiln_node_data_inputs(g, n); k < n->n_inputs; k++)
            puses[n->inputs[k]]++;
    }
    for (int pass = 0; pass < 3 && st == KILN_OK; pass++) {
        for (size_t i = 0; i < nn && st == KILN_OK; i++) {
            const kiln_node *n = &g->nodes[i];
            uint32_t nd = kiln_node_data_inputs(g, n);
            for (uint32_t k = nd; k < n->n_inputs && st == KILN_OK; k++) {
                kiln_id p = n->inputs[k];
                const char *role = kiln_op_get(n->op)->params[k - nd];
                const char *hint = g->values[p].param.key;
                bool usable = hint && hint_for(hint, role);
                if (puses[p] != 1 || (pass == 0) == usable || (pass == 2))
                    continue;
                /* pass 0: tensors without a usable hint take LAYER.ROLE; pass 1: hinted ones */
                /* (strings of the scratch graph die with it: the result's keys live in x's arena) */
                char *d = kiln_arena_printf(&x->arena, "%s.%s", pname[n->output], role);
                const char *want[3] = {usable ? kiln_arena_strdup(&x->arena, hint) : NULL, d, d};
                for (int w = 0; w < 3 && !key[p]; w++) {
                    if (!want[w])
                        continue;
                    const char *cand = w < 2 ? want[w] : NULL;
                    for (unsigned u = 2; !cand; u++) {
                        char *c = kiln_arena_printf(&x->arena, "%s_%u", d, u);
                        if (!c || !kiln_strmap_get(&keys, c))
                            cand = c;
                    }
                    if (!cand || !d) {
                        st = KILN_ERR_OUT_OF_MEMORY;
                        break;
                    }
                    if (kiln_strmap_get(&keys, cand))
                        continue;
                    if (kiln_strmap_put(&keys, cand, (void *)1) != 0) {
                        st = KILN_ERR_OUT_OF_MEMORY;
                        break;
                    }
                    key[p] = cand;
                    dflt[p] = d;
                }
            }
        }
    }
    for (size_t v = 0; v < nv && st == KILN_OK; v++) {
        if (g->values[v].kind != KILN_VALUE_PARAM || puses[v] < 2)
            continue;
        const char *want = ox_sanitize(x, g->values[v].param.key ? g->values[v].param.key : "param");
        for (unsigned k = 1;; k++) {
            char *cand = k == 1 ? kiln_arena_strdup(&x->arena, want) : kiln_arena_printf(&x->arena, "%s_%u", want, k);
            if (!cand) {
                st = KILN_ERR_OUT_OF_MEMORY;
                break;
            }
            if (kiln_strmap_get(&keys, cand))
                continue;
            if (kiln_strmap_put(&keys, cand, (void *)1) != 0) {
                st = KILN_ERR_OUT_OF_MEMORY;
                break;
            }
            key[v] = cand;
            break;
        }
    }
    if (st != KILN_OK)
        goto done;
    /* the text */
    const kiln_onnx_options *o = x->opt;
    puts_(&b, "# Imported by `kiln import`");
    if (o->source_name) {
        puts_(&b, " from ");
        for (const char *p = o->source_name; *p; p++)
            if ((unsigned char)*p >= 0x20 && *p != 0x7f)
                put(&b, p, 1);
    }
    printf_(&b, " (ONNX operator set %lld).\n", (long long)x->opset);
    printf_(&b, "kiln: 1\nname: %s\n", g->name);
    size_t n_tensors = 0;
    for (size_t i = 0; i < nn; i++)
        for (uint32_t k = kiln_node_data_inputs(g, &g->nodes[i]); k < g->nodes[i].n_inputs; k++)
            n_tensors++;
    if (n_tensors) {
        puts_(&b, "weights: ");
        path_(&b, o->weights_ref ? o->weights_ref : "weights.safetensors");
        puts_(&b, "\n");
    }
    puts_(&b, "inputs:\n");
    for (size_t k = 0; k < g->n_inputs; k++) {
        const kiln_value *v = &g->values[g->inputs[k]];
        puts_(&b, "  - {name: ");
        name_(&b, v->name);
        puts_(&b, ", shape: [");
        for (int d = 0; d < v->type.shape.rank; d++) {
            if (d == 0 && v->type.shape.batched)
                puts_(&b, "batch");
            else
                printf_(&b, "%s%lld", d ? ", " : "", (long long)v->type.shape.dims[d]);
        }
        puts_(&b, "]}\n");
    }
    puts_(&b, "outputs: [");
    for (size_t k = 0; k < g->n_outputs; k++) {
        puts_(&b, k ? ", " : "");
        name_(&b, pname[g->outputs[k]]);
    }
    puts_(&b, "]\nlayers:\n");
    kiln_id previous = g->n_inputs ? g->inputs[0] : KILN_NO_ID;
    size_t n_layers = 0;
    for (size_t i = 0; i < nn; i++) {
        if (skip[i])
            continue;
        const kiln_node *n = &g->nodes[i];
        const kiln_node *act = merged[i] ? &g->nodes[merged[i] - 1] : NULL;
        kiln_id value = act ? act->output : n->output;
        const char *layer = pname[value];
        uint32_t nd = kiln_node_data_inputs(g, n);
        puts_(&b, "  - {name: ");
        name_(&b, layer);
        printf_(&b, ", op: %s", kiln_op_name(n->op));
        if (nd == 1 && n->inputs[0] != previous) {
            puts_(&b, ", input: ");
            name_(&b, pname[n->inputs[0]]);
        } else if (nd > 1) {
            puts_(&b, ", inputs: [");
            for (uint32_t k = 0; k < nd; k++) {
                puts_(&b, k ? ", " : "");
                name_(&b, pname[n->inputs[k]]);
            }
            puts_(&b, "]");
        }
        attrs_(&b, n, x->explicit_attrs[i]);
        const kiln_op_def *def = kiln_op_get(n->op);
        if ((n->op == KILN_OP_DENSE || n->op == KILN_OP_CONV2D) && kiln_node_param(g, n, "bias") == KILN_NO_ID)
            puts_(&b, ", bias: false");
        if (n->op == KILN_OP_LAYERNORM && kiln_node_param(g, n, "weight") == KILN_NO_ID)
            puts_(&b, ", affine: false");
        if (act) {
            size_t ai = (size_t)(act - g->nodes);
            if (shows_attrs(act, x->explicit_attrs[ai])) {
                printf_(&b, ", activation: {op: %s", kiln_op_name(act->op));
                attrs_(&b, act, x->explicit_attrs[ai]);
                puts_(&b, "}");
            } else {
                printf_(&b, ", activation: %s", kiln_op_name(act->op));
            }
        }
        bool named = false;
        for (uint32_t k = nd; k < n->n_inputs; k++)
            named = named || !dflt[n->inputs[k]] || strcmp(key[n->inputs[k]], dflt[n->inputs[k]]) != 0;
        if (named) {
            puts_(&b, ", params: {");
            bool first = true;
            for (uint32_t k = nd; k < n->n_inputs; k++) {
                kiln_id p = n->inputs[k];
                if (dflt[p] && strcmp(key[p], dflt[p]) == 0)
                    continue;
                printf_(&b, "%s%s: ", first ? "" : ", ", def->params[k - nd]);
                name_(&b, key[n->inputs[k]]);
                first = false;
            }
            puts_(&b, "}");
        }
        puts_(&b, "}\n");
        n_layers++;
        previous = value;
        /* the tensors, in the order the layers first read them */
        for (uint32_t k = nd; k < n->n_inputs; k++) {
            kiln_id p = n->inputs[k];
            if (emitted[p])
                continue;
            emitted[p] = true;
            const kiln_value *pv = &g->values[p];
            kiln_onnx_tensor *t = &tensors[r->n_tensors++];
            t->key = key[p];
            t->rank = pv->type.shape.rank;
            memcpy(t->dims, pv->type.shape.dims, sizeof t->dims);
            t->data = pv->param.data;
            if (!t->key) {
                st = KILN_ERR_OUT_OF_MEMORY;
                goto done;
            }
        }
    }
    if (b.oom) {
        st = KILN_ERR_OUT_OF_MEMORY;
        goto done;
    }
    char *text = kiln_arena_strndup(&x->arena, b.p ? b.p : "", b.n);
    if (!text) {
        st = KILN_ERR_OUT_OF_MEMORY;
        goto done;
    }
    r->yaml = text;
    r->yaml_len = b.n;
    r->tensors = tensors;
    r->n_layers = n_layers;
    kiln_free(dflt);
    dflt = NULL;
done:
    if (st != KILN_OK)
        r->n_tensors = 0;
    kiln_free(b.p);
    kiln_free(uses);
    kiln_free(pname);
    kiln_free(merged);
    kiln_free(skip);
    kiln_free(key);
    kiln_free(puses);
    kiln_free(emitted);
    kiln_free(dflt);
    return st;
}
