/* compiler/interp/interp.c: the interpreter's driver. Evaluates the nodes in
 * node order (the graph keeps them topologically sorted), reads parameters on
 * demand, frees every value after its last use unless asked to keep it, and
 * dispatches each node to its kernel through one table indexed by kiln_op. */
#include "interp_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct kiln_interp {
    const kiln_graph *g;
    int64_t batch;
    bool keep_all;
    bool f32;                      /* options.f32: every layer computes f32 */
    kiln_itensor *values;          /* by value id */
    uint32_t *uses;                /* node operands referring to each value */
    uint32_t *left;                /* uses left in the current run */
    bool *keep;                    /* model inputs and outputs: never freed by a run */
    bool *input_set;               /* by input index */
    const kiln_itensor **operands; /* scratch for a node's data operands */
};

/* One kernel per op, in ops.def order. */
static const kiln_interp_kernel kernels[] = {
    [KILN_OP_DENSE] = kiln_interp_dense,
    [KILN_OP_CONV2D] = kiln_interp_conv2d,
    [KILN_OP_MAXPOOL2D] = kiln_interp_maxpool2d,
    [KILN_OP_AVGPOOL2D] = kiln_interp_avgpool2d,
    [KILN_OP_GLOBAL_AVGPOOL] = kiln_interp_global_avgpool,
    [KILN_OP_BATCHNORM] = kiln_interp_batchnorm,
    [KILN_OP_LAYERNORM] = kiln_interp_layernorm,
    [KILN_OP_RELU] = kiln_interp_unary,
    [KILN_OP_RELU6] = kiln_interp_unary,
    [KILN_OP_SIGMOID] = kiln_interp_unary,
    [KILN_OP_TANH] = kiln_interp_unary,
    [KILN_OP_SILU] = kiln_interp_unary,
    [KILN_OP_HARDSWISH] = kiln_interp_unary,
    [KILN_OP_HARDSIGMOID] = kiln_interp_unary,
    [KILN_OP_EXP] = kiln_interp_unary,
    [KILN_OP_SQRT] = kiln_interp_unary,
    [KILN_OP_NEG] = kiln_interp_unary,
    [KILN_OP_GELU] = kiln_interp_unary,
    [KILN_OP_LEAKY_RELU] = kiln_interp_unary,
    [KILN_OP_ELU] = kiln_interp_unary,
    [KILN_OP_CLIP] = kiln_interp_unary,
    [KILN_OP_SOFTMAX] = kiln_interp_softmax,
    [KILN_OP_LOG_SOFTMAX] = kiln_interp_softmax,
    [KILN_OP_ADD] = kiln_interp_binary,
    [KILN_OP_SUB] = kiln_interp_binary,
    [KILN_OP_MUL] = kiln_interp_binary,
    [KILN_OP_DIV] = kiln_interp_binary,
    [KILN_OP_MAX] = kiln_interp_binary,
    [KILN_OP_MIN] = kiln_interp_binary,
    [KILN_OP_MATMUL] = kiln_interp_matmul,
    [KILN_OP_CONCAT] = kiln_interp_concat,
    [KILN_OP_FLATTEN] = kiln_interp_flatten,
    [KILN_OP_RESHAPE] = kiln_interp_reshape,
    [KILN_OP_TRANSPOSE] = kiln_interp_transpose,
    [KILN_OP_MEAN] = kiln_interp_mean,
    [KILN_OP_PAD] = kiln_interp_pad,
    [KILN_OP_IDENTITY] = kiln_interp_copy,
    [KILN_OP_DROPOUT] = kiln_interp_copy,
    [KILN_OP_REORDER] = kiln_interp_copy, /* layouts are storage: the logical values pass unchanged */
    [KILN_OP_CONSTANT] = kiln_interp_constant,
    [KILN_OP_SLICE] = kiln_interp_slice,
    [KILN_OP_EXPAND] = kiln_interp_expand,
    [KILN_OP_RESIZE] = kiln_interp_resize,
    [KILN_OP_CONV_TRANSPOSE2D] = kiln_interp_conv_transpose2d,
    [KILN_OP_ADAPTIVE_AVGPOOL2D] = kiln_interp_adaptive_avgpool2d,
    [KILN_OP_GROUP_NORM] = kiln_interp_group_norm,
    [KILN_OP_PRELU] = kiln_interp_prelu,
    [KILN_OP_POW] = kiln_interp_binary,
    [KILN_OP_REDUCE_SUM] = kiln_interp_mean,
    [KILN_OP_REDUCE_MAX] = kiln_interp_mean,
    [KILN_OP_REDUCE_MIN] = kiln_interp_mean,
    [KILN_OP_ERF] = kiln_interp_unary,
    [KILN_OP_ABS] = kiln_interp_unary,
    [KILN_OP_LOG] = kiln_interp_unary,
    [KILN_OP_SOFTPLUS] = kiln_interp_unary,
    [KILN_OP_CONVERT] = kiln_interp_convert,
    [KILN_OP_QUANTIZE] = kiln_interp_quant,
    [KILN_OP_DEQUANTIZE] = kiln_interp_quant,
};
_Static_assert(sizeof kernels / sizeof kernels[0] == KILN_OP_COUNT,
               "the interpreter needs one kernel per op of ir/ops.def");

bool kiln_interp_supports(kiln_op op) { return (unsigned)op < KILN_OP_COUNT && kernels[op] != NULL; }

/* ------------------------------------------------------------------------ */
/* Helpers shared with the kernels                                           */
/* ------------------------------------------------------------------------ */

static const char *node_layer(const kiln_graph *g, const kiln_node *n)
{
    if (n->layer)
        return n->layer;
    if (n->output < g->n_values && g->values[n->output].name)
        return g->values[n->output].name;
    return "?";
}

static const char *batch_name(const kiln_graph *g) { return g->batch_name ? g->batch_name : "batch"; }

static const char *value_name(const kiln_graph *g, kiln_id v)
{
    return v < g->n_values && g->values[v].name ? g->values[v].name : "?";
}

static kiln_status node_vfail(const kiln_graph *g, const kiln_node *n, kiln_diag *d, kiln_status status,
                              const char *fmt, va_list ap)
{
    if (d) {
        char msg[768];
        vsnprintf(msg, sizeof msg, fmt, ap);
        kiln_diag_error(d, n->loc, "layer '%s' (%s): %s", node_layer(g, n),
                        (unsigned)n->op < KILN_OP_COUNT ? kiln_op_name(n->op) : "?", msg);
    }
    return status;
}

static kiln_status node_fail(const kiln_graph *g, const kiln_node *n, kiln_diag *d, kiln_status status,
                             const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static kiln_status node_fail(const kiln_graph *g, const kiln_node *n, kiln_diag *d, kiln_status status,
                             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    status = node_vfail(g, n, d, status, fmt, ap);
    va_end(ap);
    return status;
}

kiln_status kiln_icall_fail(const kiln_icall *c, kiln_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    status = node_vfail(c->g, c->n, c->d, status, fmt, ap);
    va_end(ap);
    return status;
}

const kiln_itensor *kiln_icall_param(const kiln_icall *c, const char *role)
{
    kiln_id id = kiln_node_param(c->g, c->n, role);
    if (id == KILN_NO_ID || id >= c->g->n_values || !c->values[id].data)
        return NULL;
    return &c->values[id];
}

kiln_status kiln_icall_need_param(const kiln_icall *c, const char *role, const kiln_itensor **out)
{
    *out = kiln_icall_param(c, role);
    if (!*out)
        return kiln_icall_fail(c, KILN_ERR_INTERNAL, "parameter '%s' is missing", role);
    return KILN_OK;
}

char *kiln_idims_format(int rank, const int64_t *dims, char *buf, size_t size)
{
    size_t len = 0;
    if (size == 0)
        return buf;
    buf[0] = '\0';
    len += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < rank && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%lld", i ? "," : "", (long long)dims[i]);
    if (len < size)
        snprintf(buf + len, size - len, "]");
    return buf;
}

size_t kiln_idims_product(const int64_t *dims, int from, int to)
{
    size_t p = 1;
    for (int i = from; i < to; i++)
        p *= (size_t)dims[i];
    return p;
}

kiln_status kiln_icall_check_out(const kiln_icall *c, int rank, const int64_t *dims)
{
    bool same = c->out->rank == rank;
    for (int i = 0; same && i < rank; i++)
        same = c->out->dims[i] == dims[i];
    if (same)
        return KILN_OK;
    char want[128], have[128];
    return kiln_icall_fail(c, KILN_ERR_INTERNAL,
                           "the output value '%s' has shape %s, but the op's rule gives %s",
                           value_name(c->g, c->n->output),
                           kiln_idims_format(c->out->rank, c->out->dims, have, sizeof have),
                           kiln_idims_format(rank, dims, want, sizeof want));
}

kiln_status kiln_icall_check_rank(const kiln_icall *c, uint32_t i, int rank)
{
    const kiln_itensor *t = c->in[i];
    if (rank >= 0 ? t->rank == rank : t->rank >= -rank)
        return KILN_OK;
    char buf[128];
    return kiln_icall_fail(c, KILN_ERR_SHAPE, "operand %u has shape %s; rank %s%d is needed", i + 1,
                           kiln_idims_format(t->rank, t->dims, buf, sizeof buf), rank >= 0 ? "" : "at least ",
                           rank >= 0 ? rank : -rank);
}

kiln_status kiln_icall_check_param_count(const kiln_icall *c, const char *role, const kiln_itensor *p,
                                         int64_t count)
{
    if (count >= 0 && p->count == (uint64_t)count)
        return KILN_OK;
    char buf[128];
    return kiln_icall_fail(c, KILN_ERR_SHAPE, "parameter '%s' has shape %s; %lld elements are needed", role,
                           kiln_idims_format(p->rank, p->dims, buf, sizeof buf), (long long)count);
}

static kiln_status attr_missing(const kiln_icall *c, kiln_attr_id id, const char *why)
{
    return kiln_icall_fail(c, KILN_ERR_INTERNAL, "attribute '%s' %s", kiln_attr_defs[id].name, why);
}

kiln_status kiln_icall_int(const kiln_icall *c, kiln_attr_id id, int64_t *out)
{
    if (!kiln_node_has(c->n, id))
        return attr_missing(c, id, "is missing");
    *out = c->n->attrs[id].i;
    return KILN_OK;
}

kiln_status kiln_icall_float(const kiln_icall *c, kiln_attr_id id, double *out)
{
    if (!kiln_node_has(c->n, id))
        return attr_missing(c, id, "is missing");
    *out = c->n->attrs[id].f;
    return KILN_OK;
}

bool kiln_icall_bool(const kiln_icall *c, kiln_attr_id id, bool dflt)
{
    return kiln_node_has(c->n, id) ? c->n->attrs[id].i != 0 : dflt;
}

kiln_status kiln_icall_ints(const kiln_icall *c, kiln_attr_id id, int count, int64_t *out, int *n)
{
    if (!kiln_node_has(c->n, id))
        return attr_missing(c, id, "is missing");
    const kiln_attr *a = &c->n->attrs[id];
    if (a->n < 0 || a->n > KILN_MAX_INTS || (count >= 0 && a->n != count)) {
        char why[64];
        if (count >= 0)
            snprintf(why, sizeof why, "has %d entries; %d are needed", a->n, count);
        else
            snprintf(why, sizeof why, "has %d entries; at most %d are allowed", a->n, KILN_MAX_INTS);
        return attr_missing(c, id, why);
    }
    memcpy(out, a->ints, (size_t)a->n * sizeof *out);
    if (n)
        *n = a->n;
    return KILN_OK;
}

/* ------------------------------------------------------------------------ */
/* Values                                                                    */
/* ------------------------------------------------------------------------ */

/* The concrete shape of value v for this batch: rank, dims and element
 * count, with the count checked to fit a buffer of doubles. Returns -1 with a
 * message in err when the shape is not concrete or too large. */
static int value_shape(const kiln_interp *it, kiln_id v, kiln_itensor *t, char *err, size_t err_size)
{
    const kiln_shape *s = &it->g->values[v].type.shape;
    if (s->rank < 0 || s->rank > KILN_MAX_RANK) {
        snprintf(err, err_size, "value '%s' has rank %d", value_name(it->g, v), s->rank);
        return -1;
    }
    t->rank = s->rank;
    size_t count = 1;
    for (int i = 0; i < s->rank; i++) {
        int64_t dim = s->dims[i];
        if (i == 0 && dim == KILN_DIM_BATCH)
            dim = it->batch;
        if (dim < 0) {
            snprintf(err, err_size, "value '%s' has no concrete dimension %d", value_name(it->g, v), i);
            return -1;
        }
        if (dim != 0 && count > SIZE_MAX / sizeof(double) / (uint64_t)dim) {
            char buf[128];
            snprintf(err, err_size, "value '%s' of shape %s with batch %lld has too many elements",
                     value_name(it->g, v), kiln_shape_format(s, batch_name(it->g), buf, sizeof buf),
                     (long long)it->batch);
            return -1;
        }
        t->dims[i] = dim;
        count *= (size_t)dim;
    }
    t->count = count;
    return 0;
}

static void value_free(kiln_interp *it, kiln_id v)
{
    kiln_free(it->values[v].data);
    it->values[v].data = NULL;
}

/* Allocates the buffer of a value whose shape is set (never NULL for 0 elements). */
static double *value_alloc(kiln_itensor *t)
{
    t->data = kiln_malloc((t->count ? t->count : 1) * sizeof(double));
    return t->data;
}

kiln_status kiln_interp_create(const kiln_graph *g, int64_t batch, const kiln_interp_options *opt,
                               kiln_interp **out)
{
    if (!out)
        return KILN_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!g || batch < 1)
        return KILN_ERR_INVALID_ARGUMENT;

    kiln_interp *it = kiln_calloc(1, sizeof *it);
    if (!it)
        return KILN_ERR_OUT_OF_MEMORY;
    it->g = g;
    it->batch = batch;
    it->keep_all = opt && opt->keep_all;
    it->f32 = opt && opt->f32;
    size_t nv = g->n_values ? g->n_values : 1;
    size_t max_operands = 1;
    for (size_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].n_inputs > max_operands)
            max_operands = g->nodes[i].n_inputs;
    it->values = kiln_calloc(nv, sizeof *it->values);
    it->uses = kiln_calloc(nv, sizeof *it->uses);
    it->left = kiln_calloc(nv, sizeof *it->left);
    it->keep = kiln_calloc(nv, sizeof *it->keep);
    it->input_set = kiln_calloc(g->n_inputs ? g->n_inputs : 1, sizeof *it->input_set);
    it->operands = kiln_calloc(max_operands, sizeof *it->operands);
    if (!it->values || !it->uses || !it->left || !it->keep || !it->input_set || !it->operands) {
        kiln_interp_destroy(it);
        return KILN_ERR_OUT_OF_MEMORY;
    }
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln_node *n = &g->nodes[i];
        for (uint32_t j = 0; j < n->n_inputs; j++)
            if (n->inputs[j] < g->n_values)
                it->uses[n->inputs[j]]++;
    }
    for (size_t i = 0; i < g->n_inputs; i++)
        if (g->inputs[i] < g->n_values)
            it->keep[g->inputs[i]] = true;
    for (size_t i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] < g->n_values)
            it->keep[g->outputs[i]] = true;
    *out = it;
    return KILN_OK;
}

void kiln_interp_destroy(kiln_interp *it)
{
    if (!it)
        return;
    if (it->values)
        for (size_t v = 0; v < it->g->n_values; v++)
            kiln_free(it->values[v].data);
    kiln_free(it->values);
    kiln_free(it->uses);
    kiln_free(it->left);
    kiln_free(it->keep);
    kiln_free(it->input_set);
    kiln_free(it->operands);
    kiln_free(it);
}

static kiln_status set_input(kiln_interp *it, size_t input_index, const float *f32, const double *f64)
{
    if (!it || (!f32 && !f64) || input_index >= it->g->n_inputs)
        return KILN_ERR_INVALID_ARGUMENT;
    kiln_id v = it->g->inputs[input_index];
    if (v >= it->g->n_values)
        return KILN_ERR_INTERNAL;
    kiln_itensor *t = &it->values[v];
    char err[512];
    value_free(it, v);
    it->input_set[input_index] = false;
    if (value_shape(it, v, t, err, sizeof err) != 0)
        return KILN_ERR_SHAPE;
    if (!value_alloc(t))
        return KILN_ERR_OUT_OF_MEMORY;
    if (f64) {
        memcpy(t->data, f64, t->count * sizeof(double));
    } else {
        for (size_t i = 0; i < t->count; i++)
            t->data[i] = f32[i];
    }
    it->input_set[input_index] = true;
    return KILN_OK;
}

kiln_status kiln_interp_set_input(kiln_interp *it, size_t input_index, const float *data)
{
    return set_input(it, input_index, data, NULL);
}

kiln_status kiln_interp_set_input_f64(kiln_interp *it, size_t input_index, const double *data)
{
    return set_input(it, input_index, NULL, data);
}

const double *kiln_interp_value(const kiln_interp *it, kiln_id value, size_t *count)
{
    if (count)
        *count = 0;
    if (!it || value >= it->g->n_values || !it->values[value].data)
        return NULL;
    if (count)
        *count = it->values[value].count;
    return it->values[value].data;
}

const double *kiln_interp_output(const kiln_interp *it, size_t output_index, size_t *count)
{
    if (count)
        *count = 0;
    if (!it || output_index >= it->g->n_outputs)
        return NULL;
    return kiln_interp_value(it, it->g->outputs[output_index], count);
}

/* ------------------------------------------------------------------------ */
/* Running                                                                   */
/* ------------------------------------------------------------------------ */

/* Reads parameter v into its buffer, or returns an error with a message. */
static kiln_status load_param(kiln_interp *it, kiln_id v, char *err, size_t err_size)
{
    const kiln_graph *g = it->g;
    kiln_itensor *t = &it->values[v];
    if (value_shape(it, v, t, err, err_size) != 0)
        return KILN_ERR_SHAPE;
    if (!value_alloc(t)) {
        snprintf(err, err_size, "parameter '%s': out of memory (%zu elements)", value_name(g, v), t->count);
        return KILN_ERR_OUT_OF_MEMORY;
    }
    kiln_status s = kiln_param_read_f64(g, v, t->data);
    if (s != KILN_OK) {
        value_free(it, v);
        const kiln_param *p = &g->values[v].param;
        if (p->source == KILN_PARAM_FILE && p->file < g->n_weight_files)
            snprintf(err, err_size, "cannot read parameter '%s' (key '%s' of %s)", value_name(g, v),
                     p->key ? p->key : "?", g->weight_files[p->file]);
        else
            snprintf(err, err_size, "cannot read parameter '%s'%s", value_name(g, v),
                     p->data ? "" : ": its data is not bound (weights not loaded)");
    }
    return s;
}

/* Makes operand v of node n available: parameters are read on first use. */
static kiln_status ensure_operand(kiln_interp *it, const kiln_node *n, kiln_id v, kiln_diag *d)
{
    const kiln_graph *g = it->g;
    kiln_itensor *t = &it->values[v];
    if (t->data)
        return KILN_OK;
    const kiln_value *val = &g->values[v];
    char err[512];
    switch (val->kind) {
    case KILN_VALUE_INPUT:
        return node_fail(g, n, d, KILN_ERR_INVALID_ARGUMENT, "model input '%s' is not set", value_name(g, v));
    case KILN_VALUE_NODE:
        return node_fail(g, n, d, KILN_ERR_INTERNAL, "operand '%s' is used before the node computing it",
                         value_name(g, v));
    case KILN_VALUE_PARAM:
        break;
    default:
        return node_fail(g, n, d, KILN_ERR_INTERNAL, "operand '%s' is of unknown kind %d", value_name(g, v),
                         (int)val->kind);
    }
    kiln_status s = load_param(it, v, err, sizeof err);
    if (s != KILN_OK)
        return node_fail(g, n, d, s, "%s", err);
    return KILN_OK;
}

/* Called when node n no longer needs operand v. */
static void release_operand(kiln_interp *it, kiln_id v)
{
    if (it->left[v] > 0)
        it->left[v]--;
    if (it->left[v] == 0 && !it->keep_all && !it->keep[v])
        value_free(it, v);
}

static kiln_status eval_node(kiln_interp *it, const kiln_node *n, kiln_diag *d)
{
    const kiln_graph *g = it->g;
    kiln_status s;
    if ((unsigned)n->op >= KILN_OP_COUNT)
        return node_fail(g, n, d, KILN_ERR_INTERNAL, "unknown op %d", (int)n->op);
    if (!kernels[n->op])
        return node_fail(g, n, d, KILN_ERR_UNSUPPORTED, "the reference interpreter has no kernel for this op");
    /* The kernels rely on the op's arity (the verifier's rule). */
    const kiln_op_def *def = kiln_op_get(n->op);
    uint32_t n_data = kiln_node_data_inputs(g, n);
    if (n_data > n->n_inputs || n_data < (uint32_t)def->min_inputs ||
        (def->max_inputs >= 0 && n_data > (uint32_t)def->max_inputs))
        return node_fail(g, n, d, KILN_ERR_INTERNAL, "%u data operands; the op takes %d to %d", n_data,
                         def->min_inputs, def->max_inputs);

    for (uint32_t j = 0; j < n->n_inputs; j++) {
        kiln_id v = n->inputs[j];
        if (v == KILN_NO_ID && j >= n_data)
            continue; /* an absent optional parameter */
        if (v >= g->n_values)
            return node_fail(g, n, d, KILN_ERR_INTERNAL, "operand %u refers to no value", j + 1);
        if ((s = ensure_operand(it, n, v, d)) != KILN_OK)
            return s;
        if (j < n_data)
            it->operands[j] = &it->values[v];
    }

    kiln_id o = n->output;
    if (o >= g->n_values)
        return node_fail(g, n, d, KILN_ERR_INTERNAL, "the output refers to no value");
    kiln_itensor *out = &it->values[o];
    value_free(it, o);
    char err[512];
    if (value_shape(it, o, out, err, sizeof err) != 0)
        return node_fail(g, n, d, KILN_ERR_SHAPE, "%s", err);
    if (!value_alloc(out))
        return node_fail(g, n, d, KILN_ERR_OUT_OF_MEMORY, "out of memory for the output (%zu elements)",
                         out->count);

    kiln_icall call = {
        .g = g, .n = n, .d = d, .in = it->operands, .n_in = n_data, .out = out, .values = it->values,
        .precision = it->f32 ? KILN_PREC_F32 : kiln_node_precision(g, n),
    };
    s = kernels[n->op](&call);
    if (s != KILN_OK) {
        value_free(it, o);
        return s;
    }

    for (uint32_t j = 0; j < n->n_inputs; j++)
        if (n->inputs[j] < g->n_values)
            release_operand(it, n->inputs[j]);
    if (it->uses[o] == 0 && !it->keep_all && !it->keep[o])
        value_free(it, o); /* dead: nothing reads it */
    return KILN_OK;
}

kiln_status kiln_interp_run(kiln_interp *it, kiln_diag *d)
{
    if (!it)
        return KILN_ERR_INVALID_ARGUMENT;
    const kiln_graph *g = it->g;

    /* Discard the previous run's results; the inputs stay. */
    for (size_t v = 0; v < g->n_values; v++)
        if (g->values[v].kind != KILN_VALUE_INPUT)
            value_free(it, (kiln_id)v);
    memcpy(it->left, it->uses, g->n_values * sizeof *it->left);

    kiln_status s = KILN_OK;
    for (size_t i = 0; i < g->n_inputs; i++) {
        if (it->input_set[i])
            continue;
        kiln_id v = g->inputs[i];
        if (d)
            kiln_diag_error(d, v < g->n_values ? g->values[v].loc : (kiln_loc){0},
                            "model input '%s' is not set (kiln_interp_set_input)", value_name(g, v));
        s = KILN_ERR_INVALID_ARGUMENT;
    }
    if (s != KILN_OK)
        return s;

    for (size_t i = 0; i < g->n_nodes; i++)
        if ((s = eval_node(it, &g->nodes[i], d)) != KILN_OK)
            return s;

    for (size_t i = 0; i < g->n_outputs; i++) {
        kiln_id v = g->outputs[i];
        if (v < g->n_values && g->values[v].kind == KILN_VALUE_PARAM && !it->values[v].data) {
            /* A parameter given straight as a model output. */
            char err[512];
            if ((s = load_param(it, v, err, sizeof err)) != KILN_OK) {
                if (d)
                    kiln_diag_error(d, g->values[v].loc, "model output %s", err);
                return s;
            }
        }
        if (v >= g->n_values || !it->values[v].data) {
            if (d)
                kiln_diag_error(d, v < g->n_values ? g->values[v].loc : (kiln_loc){0},
                                "model output '%s' was not computed", value_name(g, v));
            return KILN_ERR_INTERNAL;
        }
    }
    return KILN_OK;
}
