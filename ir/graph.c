/* ir/graph.c: building, copying and querying graphs. */
#include "graph.h"
#include "quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert.h"

static const char *const precision_names[KILN_PREC_COUNT] = {
    [KILN_PREC_DEFAULT] = "default", [KILN_PREC_F32] = "f32",   [KILN_PREC_BF16] = "bf16",
    [KILN_PREC_F16] = "f16",         [KILN_PREC_INT8] = "int8", [KILN_PREC_AUTO] = "auto",
};

static const char *const impl_names[KILN_IMPL_COUNT] = {"none", "gemm", "igemm", "winograd2", "winograd4",
                                                         "direct", "blocked", "blas", "dot"};

const char *kiln_impl_name(kiln_impl i) { return (unsigned)i < KILN_IMPL_COUNT ? impl_names[i] : "?"; }

int kiln_impl_lookup(const char *name, kiln_impl *out)
{
    for (int i = 1; i < KILN_IMPL_COUNT; i++)
        if (strcmp(impl_names[i], name) == 0) {
            *out = (kiln_impl)i;
            return 0;
        }
    return -1;
}

const char *kiln_precision_name(kiln_precision p)
{
    return (unsigned)p < KILN_PREC_COUNT ? precision_names[p] : "?";
}

int kiln_precision_parse(const char *s, kiln_precision *out)
{
    for (int i = KILN_PREC_F32; i < KILN_PREC_COUNT; i++)
        if (strcmp(s, precision_names[i]) == 0) {
            *out = (kiln_precision)i;
            return 0;
        }
    return -1;
}

kiln_graph *kiln_graph_create(const char *name)
{
    kiln_graph *g = kiln_calloc(1, sizeof *g);
    if (!g)
        return NULL;
    kiln_arena_init(&g->arena);
    g->max_elements = KILN_DEFAULT_MAX_ELEMENTS;
    g->name = kiln_arena_strdup(&g->arena, name ? name : "model");
    if (!g->name) {
        kiln_graph_destroy(g);
        return NULL;
    }
    return g;
}

void kiln_graph_destroy(kiln_graph *g)
{
    if (!g)
        return;
    for (size_t i = g->n_resources; i-- > 0;)
        g->resources[i].release(g->resources[i].p);
    kiln_free(g->resources);
    kiln_free(g->values);
    kiln_free(g->nodes);
    kiln_free(g->inputs);
    kiln_free(g->outputs);
    kiln_free(g->weight_files);
    kiln_free(g->name_index);
    kiln_arena_release(&g->arena);
    kiln_free(g);
}

kiln_status kiln_graph_add_resource(kiln_graph *g, void (*release)(void *), void *p)
{
    if (kiln_grow((void **)&g->resources, &g->cap_resources, g->n_resources + 1, sizeof *g->resources))
        return KILN_ERR_OUT_OF_MEMORY;
    g->resources[g->n_resources++] = (kiln_resource){release, p};
    return KILN_OK;
}

/* ---- the name index ---------------------------------------------------- */

static uint64_t hash_name(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static int index_insert(kiln_id *table, size_t cap, const kiln_value *values, kiln_id id)
{
    size_t mask = cap - 1, i = hash_name(values[id].name) & mask;
    while (table[i] != KILN_NO_ID)
        i = (i + 1) & mask;
    table[i] = id;
    return 0;
}

static int index_reserve(kiln_graph *g, size_t count)
{
    if (count * 2 <= g->name_index_cap)
        return 0;
    size_t cap = g->name_index_cap ? g->name_index_cap : 64;
    while (cap < count * 2)
        cap *= 2;
    kiln_id *t = kiln_malloc(cap * sizeof *t);
    if (!t)
        return -1;
    for (size_t i = 0; i < cap; i++)
        t[i] = KILN_NO_ID;
    for (size_t v = 0; v < g->n_values; v++)
        index_insert(t, cap, g->values, (kiln_id)v);
    kiln_free(g->name_index);
    g->name_index = t;
    g->name_index_cap = cap;
    return 0;
}

kiln_status kiln_graph_reindex(kiln_graph *g)
{
    if (index_reserve(g, g->n_values))
        return KILN_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; i < g->name_index_cap; i++)
        g->name_index[i] = KILN_NO_ID;
    for (size_t v = 0; v < g->n_values; v++)
        if (g->values[v].name)
            index_insert(g->name_index, g->name_index_cap, g->values, (kiln_id)v);
    return KILN_OK;
}

kiln_id kiln_graph_find_value(const kiln_graph *g, const char *name)
{
    if (!g->name_index_cap || !name)
        return KILN_NO_ID;
    size_t mask = g->name_index_cap - 1, i = hash_name(name) & mask;
    while (g->name_index[i] != KILN_NO_ID) {
        if (strcmp(g->values[g->name_index[i]].name, name) == 0)
            return g->name_index[i];
        i = (i + 1) & mask;
    }
    return KILN_NO_ID;
}

/* ---- builders ---------------------------------------------------------- */

static kiln_id add_value(kiln_graph *g, const char *name, kiln_value_kind kind, kiln_loc loc)
{
    if (!name || kiln_graph_find_value(g, name) != KILN_NO_ID || g->n_values >= KILN_NO_ID - 1)
        return KILN_NO_ID;
    if (index_reserve(g, g->n_values + 1) ||
        kiln_grow((void **)&g->values, &g->cap_values, g->n_values + 1, sizeof *g->values))
        return KILN_NO_ID;
    kiln_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->name = kiln_arena_strdup(&g->arena, name);
    if (!v->name)
        return KILN_NO_ID;
    v->kind = kind;
    v->producer = KILN_NO_ID;
    v->loc = loc;
    kiln_id id = (kiln_id)g->n_values++;
    index_insert(g->name_index, g->name_index_cap, g->values, id);
    return id;
}

kiln_id kiln_graph_add_input(kiln_graph *g, const char *name, const kiln_type *type, kiln_loc loc)
{
    if (kiln_grow((void **)&g->inputs, &g->cap_inputs, g->n_inputs + 1, sizeof *g->inputs))
        return KILN_NO_ID;
    kiln_id id = add_value(g, name, KILN_VALUE_INPUT, loc);
    if (id == KILN_NO_ID)
        return id;
    g->values[id].type = *type;
    g->inputs[g->n_inputs++] = id;
    return id;
}

kiln_id kiln_graph_add_param(kiln_graph *g, const char *name, const kiln_type *type, const kiln_param *param,
                             kiln_loc loc)
{
    const char *key = NULL;
    if (param->key && !(key = kiln_arena_strdup(&g->arena, param->key)))
        return KILN_NO_ID;
    kiln_id id = add_value(g, name, KILN_VALUE_PARAM, loc);
    if (id == KILN_NO_ID)
        return id;
    kiln_value *v = &g->values[id];
    v->type = *type;
    v->param = *param;
    v->param.key = key;
    return id;
}

kiln_id kiln_graph_add_node(kiln_graph *g, kiln_op op, const kiln_id *inputs, uint32_t n_inputs,
                            const char *out_name, const char *layer, kiln_loc loc)
{
    if ((unsigned)op >= KILN_OP_COUNT || g->n_nodes >= KILN_NO_ID - 1)
        return KILN_NO_ID;
    if (kiln_grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof *g->nodes))
        return KILN_NO_ID;
    kiln_id *ins = kiln_arena_alloc(&g->arena, sizeof(kiln_id) * (n_inputs ? n_inputs : 1));
    const char *lay = kiln_arena_strdup(&g->arena, layer ? layer : out_name);
    if (!ins || !lay)
        return KILN_NO_ID;
    kiln_id out = add_value(g, out_name, KILN_VALUE_NODE, loc);
    if (out == KILN_NO_ID)
        return KILN_NO_ID;
    if (n_inputs)
        memcpy(ins, inputs, sizeof(kiln_id) * n_inputs);
    kiln_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->layer = lay;
    n->inputs = ins;
    n->n_inputs = n_inputs;
    n->output = out;
    n->loc = loc;
    g->values[out].producer = (kiln_id)g->n_nodes;
    g->values[out].type.dtype = KILN_F32;
    return (kiln_id)g->n_nodes++;
}

kiln_status kiln_graph_add_output(kiln_graph *g, kiln_id value)
{
    if (value >= g->n_values)
        return KILN_ERR_INVALID_ARGUMENT;
    if (kiln_grow((void **)&g->outputs, &g->cap_outputs, g->n_outputs + 1, sizeof *g->outputs))
        return KILN_ERR_OUT_OF_MEMORY;
    g->outputs[g->n_outputs++] = value;
    return KILN_OK;
}

int kiln_graph_add_weight_file(kiln_graph *g, const char *path)
{
    for (size_t i = 0; i < g->n_weight_files; i++)
        if (strcmp(g->weight_files[i], path) == 0)
            return (int)i;
    if (kiln_grow((void **)&g->weight_files, &g->cap_weight_files, g->n_weight_files + 1,
                  sizeof *g->weight_files))
        return -1;
    const char *p = kiln_arena_strdup(&g->arena, path);
    if (!p)
        return -1;
    g->weight_files[g->n_weight_files] = p;
    return (int)g->n_weight_files++;
}

kiln_graph *kiln_graph_clone(const kiln_graph *g)
{
    kiln_graph *c = kiln_calloc(1, sizeof *c);
    if (!c)
        return NULL;
    *c = *g;
    kiln_arena_init(&c->arena);
    c->values = NULL, c->nodes = NULL, c->inputs = NULL, c->outputs = NULL, c->weight_files = NULL;
    c->resources = NULL, c->name_index = NULL;
    c->cap_values = c->cap_nodes = c->cap_inputs = c->cap_outputs = c->cap_weight_files = 0;
    c->n_resources = c->cap_resources = c->name_index_cap = 0;
#define COPY(field, n, cap)                                                                  \
    do {                                                                                     \
        if (g->n && kiln_grow((void **)&c->field, &c->cap, g->n, sizeof *c->field))          \
            goto fail;                                                                       \
        if (g->n)                                                                            \
            memcpy(c->field, g->field, g->n * sizeof *c->field);                             \
    } while (0)
    COPY(values, n_values, cap_values);
    COPY(nodes, n_nodes, cap_nodes);
    COPY(inputs, n_inputs, cap_inputs);
    COPY(outputs, n_outputs, cap_outputs);
    COPY(weight_files, n_weight_files, cap_weight_files);
#undef COPY
    /* Operand lists are per node: copy them so passes can edit the clone. */
    for (size_t i = 0; i < c->n_nodes; i++) {
        kiln_node *n = &c->nodes[i];
        kiln_id *ins = kiln_arena_alloc(&c->arena, sizeof(kiln_id) * (n->n_inputs ? n->n_inputs : 1));
        if (!ins)
            goto fail;
        memcpy(ins, g->nodes[i].inputs, sizeof(kiln_id) * n->n_inputs);
        n->inputs = ins;
    }
    if (index_reserve(c, c->n_values))
        goto fail;
    return c;
fail:
    kiln_graph_destroy(c);
    return NULL;
}

/* ---- nodes ------------------------------------------------------------- */

uint32_t kiln_node_data_inputs(const kiln_graph *g, const kiln_node *n)
{
    const kiln_op_def *d = kiln_op_get(n->op);
    if (!d->params[0] || d->max_inputs < 0)
        return n->n_inputs;
    return n->n_inputs < (uint32_t)d->max_inputs ? n->n_inputs : (uint32_t)d->max_inputs;
}

kiln_id kiln_node_param(const kiln_graph *g, const kiln_node *n, const char *role)
{
    int i = kiln_op_param_index(n->op, role);
    if (i < 0)
        return KILN_NO_ID;
    uint32_t at = (uint32_t)kiln_op_get(n->op)->max_inputs + (uint32_t)i;
    return at < n->n_inputs ? n->inputs[at] : KILN_NO_ID;
}

kiln_precision kiln_node_precision_asked(const kiln_graph *g, const kiln_node *n)
{
    kiln_precision p = n->precision != KILN_PREC_DEFAULT ? n->precision : g->precision;
    return p == KILN_PREC_DEFAULT ? KILN_PREC_F32 : p;
}

bool kiln_node_precision_eligible(const kiln_graph *g, const kiln_node *n)
{
    kiln_id w = kiln_node_param(g, n, "weight");
    if (w == KILN_NO_ID || w >= g->n_values || g->values[w].kind != KILN_VALUE_PARAM)
        return false;
    if (n->op == KILN_OP_DENSE)
        return g->values[w].type.shape.rank == 2;
    if (n->op != KILN_OP_CONV2D || n->n_inputs < 1)
        return false;
    /* the GEMM paths: more than one input channel per group, plain NCHW
     * (depthwise convolutions and blocked values have kernels of their own) */
    const kiln_shape *ws = &g->values[w].type.shape;
    return ws->rank == 4 && ws->dims[1] > 1 && g->values[n->inputs[0]].type.layout == KILN_LAYOUT_PLAIN &&
           g->values[n->output].type.layout == KILN_LAYOUT_PLAIN;
}

const char *kiln_node_int8_unsupported(const kiln_graph *g, const kiln_node *n)
{
    if (!kiln_node_precision_eligible(g, n))
        return "";
    /* the exact int32 sums bound the reduction (ir/quant.h): in * kh * kw */
    const kiln_shape *ws = &g->values[kiln_node_param(g, n, "weight")].type.shape;
    int64_t k = 1;
    for (int i = 1; i < ws->rank; i++)
        k *= ws->dims[i];
    if (k > KILN_QUANT_MAX_K)
        return "needs a reduction of at most 65535 products (exact int32 sums)";
    return NULL;
}

int kiln_node_in_quant(const kiln_node *n, kiln_quant_act *out)
{
    if (!kiln_node_has(n, KILN_ATTR_IN_SCALE) || !kiln_node_has(n, KILN_ATTR_IN_ZERO))
        return -1;
    return kiln_quant_act_make(n->attrs[KILN_ATTR_IN_SCALE].f, n->attrs[KILN_ATTR_IN_ZERO].i, out) ? 0 : -2;
}

kiln_precision kiln_node_precision(const kiln_graph *g, const kiln_node *n)
{
    kiln_precision p = kiln_node_precision_asked(g, n);
    if ((p == KILN_PREC_BF16 || p == KILN_PREC_F16) && kiln_node_precision_eligible(g, n))
        return p;
    if (p == KILN_PREC_INT8 && kiln_node_int8_unsupported(g, n) == NULL)
        return p;
    return KILN_PREC_F32;
}

void kiln_node_set_attr(kiln_node *n, kiln_attr_id id, const kiln_attr *v)
{
    n->attrs[id] = *v;
    n->attr_set |= (uint64_t)1 << id;
}

void kiln_node_set_int(kiln_node *n, kiln_attr_id id, int64_t v)
{
    kiln_attr a = {.i = v};
    kiln_node_set_attr(n, id, &a);
}

void kiln_node_set_float(kiln_node *n, kiln_attr_id id, double v)
{
    kiln_attr a = {.f = v};
    kiln_node_set_attr(n, id, &a);
}

void kiln_node_set_bool(kiln_node *n, kiln_attr_id id, bool v)
{
    kiln_attr a = {.i = v ? 1 : 0};
    kiln_node_set_attr(n, id, &a);
}

void kiln_node_set_ints(kiln_node *n, kiln_attr_id id, const int64_t *v, int count)
{
    kiln_attr a = {.n = count > KILN_MAX_INTS ? KILN_MAX_INTS : count};
    memcpy(a.ints, v, sizeof(int64_t) * (size_t)a.n);
    kiln_node_set_attr(n, id, &a);
}

void kiln_node_set_floats(kiln_node *n, kiln_attr_id id, const double *v, int count)
{
    kiln_attr a = {.n = count > KILN_MAX_INTS ? KILN_MAX_INTS : count};
    memcpy(a.floats, v, sizeof(double) * (size_t)a.n);
    kiln_node_set_attr(n, id, &a);
}

/* How many entries a list attribute of this op has when given as one integer. */
static int list_length(kiln_attr_id id)
{
    return id == KILN_ATTR_PADDING || id == KILN_ATTR_PADS ? 4 : 2;
}

void kiln_node_apply_defaults(kiln_node *n)
{
    const kiln_op_def *d = kiln_op_get(n->op);
    for (int i = 0; i < d->n_attrs; i++) {
        const kiln_op_attr *a = &d->attrs[i];
        if (kiln_node_has(n, a->id))
            continue;
        if (a->use == KILN_USE_DEFAULT) {
            kiln_attr v;
            char err[64];
            if (kiln_attr_from_text(a->id, a->default_text, list_length(a->id), &v, err, sizeof err) == 0)
                kiln_node_set_attr(n, a->id, &v);
        }
    }
    for (int i = 0; i < d->n_attrs; i++) { /* after the plain defaults: a source may be one */
        const kiln_op_attr *a = &d->attrs[i];
        if (a->use == KILN_USE_FROM && !kiln_node_has(n, a->id) && kiln_node_has(n, a->from))
            kiln_node_set_attr(n, a->id, &n->attrs[a->from]);
    }
}

/* Checks what the shape rules take for granted: operand ids, arity, required
 * attributes, list lengths. */
static int check_node_form(const kiln_graph *g, const kiln_node *n, char *err, size_t size)
{
    const kiln_op_def *d = kiln_op_get(n->op);
    for (uint32_t i = 0; i < n->n_inputs; i++)
        if (n->inputs[i] >= g->n_values) {
            snprintf(err, size, "operand %u refers to no value", i + 1);
            return -1;
        }
    int n_params = 0;
    while (n_params < KILN_MAX_OP_PARAMS && d->params[n_params])
        n_params++;
    uint32_t data = kiln_node_data_inputs(g, n);
    uint32_t params = n->n_inputs - data;
    if (data < (uint32_t)d->min_inputs || (d->max_inputs >= 0 && data > (uint32_t)d->max_inputs) ||
        (d->max_inputs < 0 && data < 1)) {
        if (d->max_inputs < 0)
            snprintf(err, size, "%s takes at least %d operand(s), got %u", d->name, d->min_inputs, data);
        else if (d->min_inputs == d->max_inputs)
            snprintf(err, size, "%s takes %d operand(s), got %u", d->name, d->min_inputs, data);
        else
            snprintf(err, size, "%s takes %d to %d operands, got %u", d->name, d->min_inputs, d->max_inputs, data);
        return -1;
    }
    if ((int)params < d->min_params || (int)params > n_params ||
        (n->op == KILN_OP_LAYERNORM && params == 1)) {
        snprintf(err, size, "%s has %u parameter operand(s); it takes %d to %d", d->name, params, d->min_params,
                 n_params);
        return -1;
    }
    for (uint32_t i = data; i < n->n_inputs; i++)
        if (g->values[n->inputs[i]].kind != KILN_VALUE_PARAM) {
            snprintf(err, size, "operand %u of %s must be a parameter (%s)", i + 1, d->name,
                     d->params[i - data]);
            return -1;
        }
    for (int i = 0; i < KILN_ATTR_COUNT; i++)
        if (kiln_node_has(n, (kiln_attr_id)i) && !kiln_op_find_attr(n->op, (kiln_attr_id)i)) {
            snprintf(err, size, "%s takes no attribute '%s'", d->name, kiln_attr_defs[i].name);
            return -1;
        }
    for (int i = 0; i < d->n_attrs; i++) {
        const kiln_op_attr *a = &d->attrs[i];
        if (a->use != KILN_USE_OPTIONAL && !kiln_node_has(n, a->id)) {
            snprintf(err, size, "%s needs attribute '%s'", d->name, kiln_attr_defs[a->id].name);
            return -1;
        }
        kiln_attr_type at = kiln_attr_defs[a->id].type;
        if ((at == KILN_ATTR_T_INTS || at == KILN_ATTR_T_FLOATS) && kiln_node_has(n, a->id)) {
            int want = a->id == KILN_ATTR_KERNEL || a->id == KILN_ATTR_STRIDE || a->id == KILN_ATTR_DILATION ||
                               a->id == KILN_ATTR_SIZE || a->id == KILN_ATTR_SCALE ||
                               a->id == KILN_ATTR_OUTPUT_PADDING
                           ? 2
                       : a->id == KILN_ATTR_PADDING || a->id == KILN_ATTR_PADS ? 4
                                                                               : 0;
            if (want && n->attrs[a->id].n != want) {
                snprintf(err, size, "attribute '%s' needs %d %s, has %d", kiln_attr_defs[a->id].name, want,
                         at == KILN_ATTR_T_INTS ? "integers" : "numbers", n->attrs[a->id].n);
                return -1;
            }
        }
        if (kiln_attr_defs[a->id].type == KILN_ATTR_T_WORD && kiln_node_has(n, a->id)) {
            const char *const *w = kiln_attr_words(a->id);
            int count = 0;
            while (w && w[count])
                count++;
            if (n->attrs[a->id].i < 0 || n->attrs[a->id].i >= count) {
                snprintf(err, size, "attribute '%s' has no word %lld", kiln_attr_defs[a->id].name,
                         (long long)n->attrs[a->id].i);
                return -1;
            }
        }
    }
    return 0;
}

static kiln_status node_type(const kiln_graph *g, const kiln_node *n, const kiln_op_def *d, const kiln_type **types,
                             kiln_type *out, char *err, size_t err_size);

kiln_status kiln_ir_node_type(const kiln_graph *g, const kiln_node *n, kiln_type *out, char *err, size_t err_size)
{
    if ((unsigned)n->op >= KILN_OP_COUNT) {
        snprintf(err, err_size, "unknown op %d", (int)n->op);
        return KILN_ERR_INVALID_ARGUMENT;
    }
    if (check_node_form(g, n, err, err_size))
        return KILN_ERR_SHAPE;
    const kiln_op_def *d = kiln_op_get(n->op);
    const kiln_type *few[16];
    const kiln_type **types = n->n_inputs <= 16 ? few : malloc(sizeof *types * n->n_inputs);
    if (!types) {
        snprintf(err, err_size, "out of memory");
        return KILN_ERR_OUT_OF_MEMORY;
    }
    for (uint32_t i = 0; i < n->n_inputs; i++)
        types[i] = &g->values[n->inputs[i]].type;
    kiln_status st = node_type(g, n, d, types, out, err, err_size);
    if (types != few)
        free(types);
    return st;
}

/* The shape rule, then the parameters' shapes against the op's. */
static kiln_status node_type(const kiln_graph *g, const kiln_node *n, const kiln_op_def *d, const kiln_type **types,
                             kiln_type *out, char *err, size_t err_size)
{
    kiln_infer_in in = {n->op, types, kiln_node_data_inputs(g, n), n->n_inputs, n->attrs, n->attr_set,
                        g->batch_name, g->max_elements};
    memset(out, 0, sizeof *out);
    if (d->infer(&in, out, err, err_size))
        return KILN_ERR_SHAPE;
    if (d->param_shapes && in.n_inputs > in.n_data) {
        kiln_shape want[KILN_MAX_OP_PARAMS];
        memset(want, 0, sizeof want);
        if (d->param_shapes(&in, want, err, err_size))
            return KILN_ERR_SHAPE;
        for (uint32_t i = in.n_data; i < in.n_inputs; i++) {
            const kiln_value *p = &g->values[n->inputs[i]];
            const kiln_shape *w = &want[i - in.n_data];
            if (w->rank == 0 || kiln_shape_equal(&p->type.shape, w))
                continue;
            if ((d->flags & KILN_OPF_PARAM_ONE) && !p->type.shape.batched && p->type.shape.rank == 1 &&
                p->type.shape.dims[0] == 1)
                continue; /* one value for every channel */
            char a[128], b[128];
            snprintf(err, err_size, "parameter '%s' (%s) must have shape %s, has %s", d->params[i - in.n_data],
                     p->param.key ? p->param.key : p->name, kiln_shape_format(w, g->batch_name, a, sizeof a),
                     kiln_shape_format(&p->type.shape, g->batch_name, b, sizeof b));
            return KILN_ERR_SHAPE;
        }
    }
    return KILN_OK;
}

/* Axes count from the end when negative (FORMAT.md); the IR stores them
 * counted from the front, so every consumer sees one form. Out-of-range axes
 * are left for the shape rule to report. */
static void canonicalize_axes(const kiln_graph *g, kiln_node *n)
{
    if (n->n_inputs < 1 || n->inputs[0] >= g->n_values)
        return;
    int rank = g->values[n->inputs[0]].type.shape.rank;
    if (kiln_node_has(n, KILN_ATTR_AXIS) && n->attrs[KILN_ATTR_AXIS].i < 0 && n->attrs[KILN_ATTR_AXIS].i >= -rank)
        n->attrs[KILN_ATTR_AXIS].i += rank;
    static const kiln_attr_id lists[] = {KILN_ATTR_AXES, KILN_ATTR_PERM};
    for (size_t k = 0; k < sizeof lists / sizeof lists[0]; k++) {
        if (!kiln_node_has(n, lists[k]))
            continue;
        kiln_attr *a = &n->attrs[lists[k]];
        for (int i = 0; i < a->n; i++)
            if (a->ints[i] < 0 && a->ints[i] >= -rank)
                a->ints[i] += rank;
    }
}

kiln_status kiln_ir_infer_node(kiln_graph *g, kiln_id node, char *err, size_t err_size)
{
    if (node >= g->n_nodes)
        return KILN_ERR_INVALID_ARGUMENT;
    canonicalize_axes(g, &g->nodes[node]);
    kiln_type t;
    kiln_status st = kiln_ir_node_type(g, &g->nodes[node], &t, err, err_size);
    if (st == KILN_OK)
        g->values[g->nodes[node].output].type = t;
    return st;
}

void kiln_graph_count_uses(const kiln_graph *g, uint32_t *counts)
{
    memset(counts, 0, sizeof(uint32_t) * g->n_values);
    for (size_t i = 0; i < g->n_nodes; i++)
        for (uint32_t j = 0; j < g->nodes[i].n_inputs; j++)
            if (g->nodes[i].inputs[j] < g->n_values)
                counts[g->nodes[i].inputs[j]]++;
    for (size_t i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] < g->n_values)
            counts[g->outputs[i]]++;
}

/* ---- parameter data ---------------------------------------------------- */

bool kiln_param_readable(const kiln_value *v)
{
    return v->kind == KILN_VALUE_PARAM && (v->param.data != NULL || v->param.source == KILN_PARAM_RANDOM);
}

/* *lazy: a RANDOM parameter without bound data, generated when read. */
static kiln_status param_source(const kiln_graph *g, kiln_id value, size_t *count, bool *lazy)
{
    if (value >= g->n_values || g->values[value].kind != KILN_VALUE_PARAM)
        return KILN_ERR_INVALID_ARGUMENT;
    const kiln_value *v = &g->values[value];
    if (!kiln_param_readable(v))
        return KILN_ERR_WEIGHTS;
    int64_t n = kiln_shape_elements(&v->type.shape, 1);
    if (n < 0)
        return KILN_ERR_SHAPE;
    *count = (size_t)n;
    *lazy = v->param.data == NULL;
    return KILN_OK;
}

static void random_at(const kiln_value *v, size_t first, float *dst, size_t count);

kiln_status kiln_param_read_f64(const kiln_graph *g, kiln_id value, double *dst)
{
    size_t n;
    bool lazy;
    kiln_status st = param_source(g, value, &n, &lazy);
    if (st != KILN_OK)
        return st;
    if (!lazy) {
        kiln_dtype_to_f64(g->values[value].param.data_dtype, g->values[value].param.data, n, dst);
        return KILN_OK;
    }
    float chunk[1024];
    for (size_t i = 0; i < n; i += sizeof chunk / sizeof chunk[0]) {
        size_t m = n - i < sizeof chunk / sizeof chunk[0] ? n - i : sizeof chunk / sizeof chunk[0];
        random_at(&g->values[value], i, chunk, m);
        for (size_t k = 0; k < m; k++)
            dst[i + k] = chunk[k];
    }
    return KILN_OK;
}

kiln_status kiln_param_read_f32(const kiln_graph *g, kiln_id value, float *dst)
{
    size_t n;
    bool lazy;
    kiln_status st = param_source(g, value, &n, &lazy);
    if (st != KILN_OK)
        return st;
    if (lazy)
        random_at(&g->values[value], 0, dst, n);
    else
        kiln_dtype_to_f32(g->values[value].param.data_dtype, g->values[value].param.data, n, dst);
    return KILN_OK;
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Elements first .. first+count-1 of the documented random tensor. */
static void random_range(uint64_t seed, const char *key, double lo, double hi, size_t first, float *dst,
                         size_t count)
{
    uint64_t k = hash_name(key ? key : "");
    for (size_t i = 0; i < count; i++) {
        uint64_t r = splitmix64(seed ^ k ^ ((uint64_t)(first + i) * 0x9E3779B97F4A7C15ull));
        double u = (double)(r >> 11) * (1.0 / 9007199254740992.0);
        dst[i] = (float)(lo + (hi - lo) * u);
    }
}

void kiln_param_random(uint64_t seed, const char *key, double lo, double hi, float *dst, size_t count)
{
    random_range(seed, key, lo, hi, 0, dst, count);
}

static void random_at(const kiln_value *v, size_t first, float *dst, size_t count)
{
    random_range(v->param.seed, v->param.key ? v->param.key : v->name, v->param.lo, v->param.hi, first, dst,
                 count);
}
