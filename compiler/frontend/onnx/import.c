/* compiler/frontend/onnx/import.c: the import: opsets, graph inputs and pins,
 * initializers, the order of the nodes, one lowering per node, the outputs,
 * and the problems found on the way (docs/import.md). */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/frontend/safetensors.h"
#include "ox.h"

/* ---- problems ---------------------------------------------------------------- */

static void add_problem(ox_ctx *x, kiln_onnx_problem_kind kind, const char *fmt, va_list ap)
{
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
    char *text = kiln_arena_strdup(&x->arena, buf);
    if (!text || kiln_grow((void **)&x->problems, &x->cap_problems, x->n_problems + 1, sizeof *x->problems) != 0) {
        x->oom = true;
        return;
    }
    x->problems[x->n_problems++] = (kiln_onnx_problem){kind, text};
}

void ox_problem(ox_ctx *x, kiln_onnx_problem_kind kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_problem(x, kind, fmt, ap);
    va_end(ap);
}

void ox_oom(ox_ctx *x) { x->oom = true; }

int ox_refuse(ox_node *n, ox_ctx *x, const char *fmt, ...)
{
    if (n->refused)
        return -1;
    char buf[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    n->why = kiln_arena_strdup(&x->arena, buf);
    if (!n->why) {
        x->oom = true;
        n->why = "out of memory";
    }
    n->refused = true;
    return -1;
}

/* ---- attributes ------------------------------------------------------------------ */

const Onnx__AttributeProto *ox_attr(const ox_node *n, const char *name)
{
    for (size_t k = 0; k < n->p->n_attribute; k++)
        if (n->p->attribute[k]->name && strcmp(n->p->attribute[k]->name, name) == 0)
            return n->p->attribute[k];
    return NULL;
}

static int attr_type(const Onnx__AttributeProto *a)
{
    if (a->has_type)
        return (int)a->type;
    /* Before IR version 2 the type was implied by the field present. */
    if (a->has_f)
        return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    if (a->has_i)
        return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    if (a->has_s)
        return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
    if (a->t)
        return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
    if (a->n_ints)
        return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    if (a->n_floats)
        return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
    return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED;
}

int64_t ox_attr_i(ox_ctx *x, ox_node *n, const char *name, int64_t def)
{
    const Onnx__AttributeProto *a = ox_attr(n, name);
    if (!a)
        return def;
    if (attr_type(a) != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT) {
        ox_refuse(n, x, "attribute '%s' is not an integer", name);
        return def;
    }
    return a->i;
}

double ox_attr_f(ox_ctx *x, ox_node *n, const char *name, double def)
{
    const Onnx__AttributeProto *a = ox_attr(n, name);
    if (!a)
        return def;
    int t = attr_type(a);
    if (t == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT)
        return (double)a->f;
    if (t == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT)
        return (double)a->i;
    ox_refuse(n, x, "attribute '%s' is not a number", name);
    return def;
}

const char *ox_attr_s(ox_ctx *x, ox_node *n, const char *name, const char *def)
{
    const Onnx__AttributeProto *a = ox_attr(n, name);
    if (!a)
        return def;
    if (attr_type(a) != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING || (a->s.len && memchr(a->s.data, 0, a->s.len))) {
        ox_refuse(n, x, "attribute '%s' is not a string", name);
        return def;
    }
    char *s = kiln_arena_strndup(&x->arena, a->s.len ? (const char *)a->s.data : "", a->s.len);
    if (!s) {
        ox_oom(x);
        return def;
    }
    return s;
}

int ox_attr_ints(ox_ctx *x, ox_node *n, const char *name, int64_t *out, int max)
{
    const Onnx__AttributeProto *a = ox_attr(n, name);
    if (!a)
        return -1;
    int t = attr_type(a);
    if (t == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT) { /* some exporters write one int */
        out[0] = a->i;
        return 1;
    }
    if (t != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS) {
        ox_refuse(n, x, "attribute '%s' is not a list of integers", name);
        return -1;
    }
    if (a->n_ints > (size_t)max) {
        ox_refuse(n, x, "attribute '%s' has %zu entries (at most %d handled)", name, a->n_ints, max);
        return -1;
    }
    for (size_t k = 0; k < a->n_ints; k++)
        out[k] = a->ints[k];
    return (int)a->n_ints;
}

/* ---- values ------------------------------------------------------------------------ */

static ox_value *value_get(ox_ctx *x, const char *name) { return kiln_strmap_get(&x->values, name); }

static ox_value *value_make(ox_ctx *x, const char *name)
{
    ox_value *v = value_get(x, name);
    if (v)
        return v;
    v = kiln_arena_alloc(&x->arena, sizeof *v);
    char *copy = kiln_arena_strdup(&x->arena, name);
    if (!v || !copy || kiln_strmap_put(&x->values, copy, v) != 0) {
        ox_oom(x);
        return NULL;
    }
    v->name = copy;
    v->kv = KILN_NO_ID;
    v->param = KILN_NO_ID;
    v->producer = -1;
    return v;
}

ox_tensor *ox_const(ox_ctx *x, ox_node *n, ox_value *v)
{
    if (!v || v->kind != OX_CONST)
        return NULL;
    if (!v->c && v->tp) {
        char why[512];
        v->c = ox_tensor_decode(x, v->tp, why, sizeof why);
        if (!v->c) {
            if (n)
                ox_refuse(n, x, "initializer '%s' cannot be read: %s", v->name, why);
            return NULL;
        }
    }
    return v->c;
}

bool ox_const_scalar(ox_ctx *x, ox_value *v, double *out)
{
    ox_tensor *t = ox_const(x, NULL, v);
    if (!t || t->count != 1 || ox_has_sym(t))
        return false;
    *out = ox_get_f(t, 0);
    return true;
}

int ox_input_ints(ox_ctx *x, ox_node *n, size_t i, const char *what, int64_t *out, int max)
{
    ox_value *v = i < n->n_in ? n->in[i] : NULL;
    if (!v)
        return ox_refuse(n, x, "its %s is missing", what);
    if (v->kind != OX_CONST)
        return ox_refuse(n, x, "its %s '%s' is computed at run time (kiln needs it constant)", what, v->name);
    ox_tensor *t = ox_const(x, n, v);
    if (!t)
        return -1;
    if (!ox_dtype_is_int(t->dtype))
        return ox_refuse(n, x, "its %s '%s' is %s, not integers", what, v->name, ox_dtype_name(t->dtype));
    if (t->rank > 1)
        return ox_refuse(n, x, "its %s '%s' has rank %d, not 1", what, v->name, t->rank);
    if (t->count > max)
        return ox_refuse(n, x, "its %s '%s' has %lld entries (at most %d handled)", what, v->name,
                         (long long)t->count, max);
    if (ox_has_sym(t))
        return ox_refuse(n, x, "its %s '%s' depends on the batch size (pin the batch with --input)", what, v->name);
    for (int64_t k = 0; k < t->count; k++)
        out[k] = t->i[k];
    return (int)t->count;
}

void ox_set_const(ox_node *n, size_t k, ox_tensor *t)
{
    if (k < n->n_out && n->out[k]) {
        n->out[k]->kind = OX_CONST;
        n->out[k]->c = t;
        n->out[k]->hint = n->out[k]->name;
    }
}

void ox_set_dyn(ox_node *n, size_t k, kiln_id kv, bool scalar0)
{
    if (k < n->n_out && n->out[k]) {
        n->out[k]->kind = OX_DYN;
        n->out[k]->kv = kv;
        n->out[k]->scalar0 = scalar0;
    }
}

void ox_alias(ox_node *n, size_t k, const ox_value *v)
{
    if (k >= n->n_out || !n->out[k] || !v)
        return;
    ox_value *o = n->out[k];
    o->kind = v->kind;
    o->c = v->c;
    o->tp = v->tp;
    o->hint = v->hint;
    o->kv = v->kv;
    o->param = v->param;
    o->scalar0 = v->scalar0;
}

int ox_shape(ox_ctx *x, ox_value *v, int64_t *dims, bool *batched)
{
    *batched = false;
    if (v->kind == OX_CONST) {
        ox_tensor *t = ox_const(x, NULL, v);
        if (!t)
            return 0;
        for (int k = 0; k < t->rank; k++)
            dims[k] = t->dims[k];
        return t->rank;
    }
    if (v->kind != OX_DYN || v->scalar0)
        return 0;
    const kiln_shape *s = ox_kshape(x, v->kv);
    for (int k = 0; k < s->rank; k++)
        dims[k] = s->dims[k];
    *batched = s->batched;
    if (s->batched)
        dims[0] = -1;
    return s->rank;
}

/* ---- pins ----------------------------------------------------------------------------- */

int kiln_onnx_pin_parse(const char *text, kiln_onnx_pin *pin, char *buf, size_t buf_size, char *err, size_t err_size)
{
    memset(pin, 0, sizeof *pin);
    const char *eq = strrchr(text, '=');
    if (!eq || eq == text) {
        snprintf(err, err_size, "--input expects NAME=D0xD1x... (NAME= for a rank-0 input), got '%s'", text);
        return -1;
    }
    size_t len = (size_t)(eq - text);
    if (len + 1 > buf_size) {
        snprintf(err, err_size, "--input: the name is too long");
        return -1;
    }
    memcpy(buf, text, len);
    buf[len] = '\0';
    pin->name = buf;
    const char *p = eq + 1;
    while (*p) {
        if (pin->rank == KILN_MAX_RANK) {
            snprintf(err, err_size, "--input %s: more than %d dimensions", text, KILN_MAX_RANK);
            return -1;
        }
        char *end;
        if (*p < '0' || *p > '9') {
            snprintf(err, err_size, "--input %s: dimensions are positive integers separated by 'x'", text);
            return -1;
        }
        long long d = strtoll(p, &end, 10);
        if (d < 1 || d > KILN_MAX_DIM || (*end && *end != 'x') || (*end == 'x' && !end[1])) {
            snprintf(err, err_size, "--input %s: dimensions are positive integers separated by 'x'", text);
            return -1;
        }
        pin->dims[pin->rank++] = d;
        p = *end ? end + 1 : end;
    }
    return 0;
}

/* ---- graph inputs ---------------------------------------------------------------------- */

typedef struct input_info {
    const Onnx__ValueInfoProto *vi;
    ox_value *v;
    int rank;
    int64_t dims[OX_MAX_RANK]; /* -1: dynamic */
    const char *dim_names[OX_MAX_RANK];
    bool pinned;
} input_info;

/* Reads input k's type; false after reporting a problem. */
static bool read_input_type(ox_ctx *x, const Onnx__ValueInfoProto *vi, input_info *in)
{
    const char *name = ox_str(vi->name);
    const Onnx__TypeProto *tp = vi->type;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type) {
        ox_problem(x, KILN_ONNX_REFUSED, "input '%s': unsupported: it is not a tensor (kiln's inputs are float32 tensors)",
                   name);
        return false;
    }
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    int et = tt->has_elem_type ? tt->elem_type : 0;
    if (et != OX_T_FLOAT) {
        ox_problem(x, KILN_ONNX_REFUSED, "input '%s': unsupported: it is %s (kiln's inputs are float32)", name,
                   ox_dtype_name(et));
        return false;
    }
    in->rank = -1;
    if (tt->shape) {
        if (tt->shape->n_dim > OX_MAX_RANK) {
            ox_problem(x, KILN_ONNX_REFUSED, "input '%s': unsupported: it has rank %zu (kiln handles 0 to %d)", name,
                       tt->shape->n_dim, OX_MAX_RANK);
            return false;
        }
        in->rank = (int)tt->shape->n_dim;
        for (int k = 0; k < in->rank; k++) {
            const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[k];
            in->dims[k] = -1;
            in->dim_names[k] = NULL;
            if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
                if (d->dim_value < 1 || d->dim_value > KILN_MAX_DIM) {
                    ox_problem(x, KILN_ONNX_REFUSED, "input '%s': unsupported: dimension %d is %lld (kiln needs 1 to %lld)",
                               name, k, (long long)d->dim_value, (long long)KILN_MAX_DIM);
                    return false;
                }
                in->dims[k] = d->dim_value;
            } else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && d->dim_param &&
                       d->dim_param[0]) {
                in->dim_names[k] = d->dim_param;
            }
        }
    }
    return true;
}

static void format_dims(char *buf, size_t size, int rank, const int64_t *dims)
{
    size_t w = 0;
    buf[0] = '\0';
    for (int k = 0; k < rank && w < size; k++)
        w += (size_t)snprintf(buf + w, size - w, "%s%lld", k ? "x" : "", (long long)dims[k]);
}

/* Applies the pins, decides the batch, and adds the kiln inputs. */
static void make_inputs(ox_ctx *x, input_info *ins, size_t n_ins)
{
    const kiln_onnx_options *o = x->opt;
    for (size_t p = 0; p < o->n_pins; p++) {
        const kiln_onnx_pin *pin = &o->pins[p];
        size_t k = 0;
        while (k < n_ins && strcmp(ox_str(ins[k].vi->name), pin->name) != 0)
            k++;
        if (k == n_ins) {
            ox_value *v = value_get(x, pin->name);
            ox_problem(x, KILN_ONNX_ERROR, "error: --input %s: the model has no input of that name%s", pin->name,
                       v && v->kind == OX_CONST ? " (it is an initializer)" : "");
            continue;
        }
        input_info *in = &ins[k];
        if (!in->v) /* its type was refused */
            continue;
        if (in->pinned) {
            ox_problem(x, KILN_ONNX_ERROR, "error: --input %s is given twice", pin->name);
            continue;
        }
        in->pinned = true;
        if (in->rank >= 0 && in->rank != pin->rank) {
            ox_problem(x, KILN_ONNX_ERROR, "error: --input %s: the input has rank %d, the pin gives %d dimensions",
                       pin->name, in->rank, pin->rank);
            continue;
        }
        for (int d = 0; in->rank >= 0 && d < pin->rank; d++)
            if (in->dims[d] > 0 && in->dims[d] != pin->dims[d]) {
                char want[200], got[200];
                format_dims(want, sizeof want, in->rank, in->dims);
                format_dims(got, sizeof got, pin->rank, pin->dims);
                ox_problem(x, KILN_ONNX_ERROR,
                           "error: --input %s=%s: dimension %d of the input is %lld in the model, not %lld", pin->name,
                           got, d, (long long)in->dims[d], (long long)pin->dims[d]);
                break;
            }
        in->rank = pin->rank;
        memcpy(in->dims, pin->dims, sizeof(int64_t) * (size_t)pin->rank);
    }
    /* The leading dynamic dimension of every input is one symbolic batch. */
    const char *batch_param = NULL, *batch_input = NULL;
    bool batched = false;
    for (size_t k = 0; k < n_ins; k++) {
        input_info *in = &ins[k];
        if (!in->v)
            continue;
        const char *name = ox_str(in->vi->name);
        if (in->rank < 0) {
            ox_problem(x, KILN_ONNX_ERROR, "error: input '%s' has no shape in the model: give it with --input %s=D0xD1x...",
                       name, name);
            in->v = NULL;
            continue;
        }
        for (int d = 1; d < in->rank; d++)
            if (in->dims[d] < 0) {
                ox_problem(x, KILN_ONNX_ERROR,
                           "error: input '%s': dimension %d%s%s%s is dynamic: pin it with --input %s=D0xD1x... "
                           "(only a leading dynamic dimension becomes the batch)",
                           name, d, in->dim_names[d] ? " ('" : "", in->dim_names[d] ? in->dim_names[d] : "",
                           in->dim_names[d] ? "')" : "", name);
                in->v = NULL;
                break;
            }
        if (!in->v || in->rank == 0 || in->dims[0] > 0)
            continue;
        if (batched && batch_param && in->dim_names[0] && strcmp(batch_param, in->dim_names[0]) != 0) {
            ox_problem(x, KILN_ONNX_ERROR,
                       "error: inputs '%s' and '%s' have different dynamic leading dimensions ('%s' and '%s'); kiln "
                       "has one batch: pin one of them with --input",
                       batch_input, name, batch_param, in->dim_names[0]);
            in->v = NULL;
            continue;
        }
        if (!batch_param && in->dim_names[0]) {
            batch_param = in->dim_names[0];
            batch_input = name;
        }
        if (!batch_input)
            batch_input = name;
        batched = true;
    }
    if (batched)
        x->g->batch_name = kiln_arena_strdup(&x->g->arena, "batch");
    for (size_t k = 0; k < n_ins; k++) {
        input_info *in = &ins[k];
        if (!in->v)
            continue;
        kiln_type t;
        memset(&t, 0, sizeof t);
        t.dtype = KILN_F32;
        t.shape.rank = in->rank ? in->rank : 1;
        t.shape.dims[0] = 1;
        for (int d = 0; d < in->rank; d++)
            t.shape.dims[d] = in->dims[d] < 0 ? KILN_DIM_BATCH : in->dims[d];
        t.shape.batched = in->rank > 0 && in->dims[0] < 0;
        int64_t per_item = kiln_shape_elements_per_item(&t.shape);
        if (per_item < 0 || per_item > x->g->max_elements) {
            ox_problem(x, KILN_ONNX_REFUSED, "input '%s': unsupported: more than %lld elements", ox_str(in->vi->name),
                       (long long)x->g->max_elements);
            in->v->kind = OX_BAD;
            continue;
        }
        const char *kname = ox_claim_io(x, ox_sanitize(x, ox_str(in->vi->name)));
        kiln_id id = kiln_graph_add_input(x->g, kname, &t, (kiln_loc){0});
        if (id == KILN_NO_ID) {
            ox_oom(x);
            continue;
        }
        in->v->kind = OX_DYN;
        in->v->kv = id;
        in->v->scalar0 = in->rank == 0;
    }
}

/* ---- the nodes -------------------------------------------------------------------------- */

static const char *node_label(const Onnx__NodeProto *p, size_t index, char *buf, size_t size)
{
    if (p->name && p->name[0])
        return p->name;
    for (size_t k = 0; k < p->n_output; k++)
        if (p->output[k] && p->output[k][0])
            return p->output[k];
    snprintf(buf, size, "#%zu", index);
    return buf;
}

static bool default_domain(const char *d) { return !d || !d[0] || strcmp(d, "ai.onnx") == 0; }

/* Orders the nodes the graph outputs need: the file's order when it is a
 * valid one (a reader recognizes the model), else a depth-first order. */
static int order_nodes(ox_ctx *x)
{
    const Onnx__GraphProto *gp = x->graph;
    size_t n = gp->n_node;
    int *state = kiln_calloc(n ? n : 1, sizeof *state); /* 0 unseen, 1 open, 2 done */
    size_t *stack = kiln_calloc(n ? n : 1, sizeof *stack), *next = kiln_calloc(n ? n : 1, sizeof *next);
    x->nodes = kiln_arena_alloc(&x->arena, (n ? n : 1) * sizeof *x->nodes);
    bool *live = kiln_calloc(n ? n : 1, sizeof *live);
    int rc = 0;
    if (!state || !stack || !next || !x->nodes || !live) {
        ox_oom(x);
        rc = -1;
        goto done;
    }
    /* Producers. */
    for (size_t i = 0; i < n; i++) {
        const Onnx__NodeProto *p = gp->node[i];
        for (size_t k = 0; k < p->n_output; k++) {
            const char *o = p->output[k];
            if (!o || !o[0])
                continue;
            ox_value *v = value_make(x, o);
            if (!v) {
                rc = -1;
                goto done;
            }
            if (v->producer >= 0 || v->kind != OX_NONE || v->graph_input) {
                char buf[32];
                ox_problem(x, KILN_ONNX_REFUSED, "node '%s' (%s): unsupported: its output '%s' is also %s",
                           node_label(p, i, buf, sizeof buf), ox_str(p->op_type), o,
                           v->producer >= 0 ? "produced by another node" : "a graph input or an initializer");
                rc = -1;
                continue;
            }
            v->producer = (int)i;
        }
    }
    if (rc)
        goto done;
    /* Liveness from the outputs, depth first with an explicit stack. */
    size_t order_n = 0, sp = 0;
    bool file_order_ok = true;
    for (size_t o = 0; o < gp->n_output; o++) {
        ox_value *v = value_get(x, ox_str(gp->output[o]->name));
        if (!v || v->producer < 0)
            continue;
        if (state[v->producer])
            continue;
        stack[sp++] = (size_t)v->producer;
        state[v->producer] = 1;
        next[v->producer] = 0;
        while (sp > 0) {
            size_t i = stack[sp - 1];
            const Onnx__NodeProto *p = gp->node[i];
            if (next[i] < p->n_input) {
                const char *in = p->input[next[i]++];
                ox_value *u = in && in[0] ? value_get(x, in) : NULL;
                if (!u || u->producer < 0)
                    continue;
                if ((size_t)u->producer > i)
                    file_order_ok = false;
                if (state[u->producer] == 1) {
                    char buf[32];
                    ox_problem(x, KILN_ONNX_REFUSED, "node '%s' (%s): unsupported: it is part of a cycle",
                               node_label(p, i, buf, sizeof buf), ox_str(p->op_type));
                    rc = -1;
                    goto done;
                }
                if (state[u->producer] == 0) {
                    state[u->producer] = 1;
                    next[u->producer] = 0;
                    stack[sp++] = (size_t)u->producer;
                }
                continue;
            }
            state[i] = 2;
            live[i] = true;
            x->nodes[order_n++] = p;
            sp--;
        }
    }
    if (file_order_ok) {
        order_n = 0;
        for (size_t i = 0; i < n; i++)
            if (live[i])
                x->nodes[order_n++] = gp->node[i];
    }
    x->n_nodes = order_n;
    /* The index of each live node in x->nodes, and the uses of each value. */
    for (size_t j = 0; j < order_n; j++) {
        const Onnx__NodeProto *p = x->nodes[j];
        for (size_t k = 0; k < p->n_output; k++) {
            ox_value *v = p->output[k] && p->output[k][0] ? value_get(x, p->output[k]) : NULL;
            if (v)
                v->producer = (int)j;
        }
        for (size_t k = 0; k < p->n_input; k++) {
            ox_value *v = p->input[k] && p->input[k][0] ? value_get(x, p->input[k]) : NULL;
            if (v)
                v->n_uses++;
        }
    }
done:
    kiln_free(state);
    kiln_free(stack);
    kiln_free(next);
    kiln_free(live);
    return rc;
}

/* Whether `name` is in the comma-separated list. */
static bool in_list(const char *list, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t l = comma ? (size_t)(comma - p) : strlen(p);
        if (l == len && strncmp(p, name, len) == 0)
            return true;
        p = comma ? comma + 1 : NULL;
    }
    return false;
}

static void report(ox_ctx *x, ox_node *n)
{
    ox_problem(x, KILN_ONNX_REFUSED, "node '%s' (%s): unsupported: %s", n->label, ox_str(n->p->op_type),
               n->why ? n->why : "(no reason given)");
}

/* Whether n's outputs would be constants: its operands all are (or would
 * have been), or it is Shape/Size, which folds whatever its operand. */
static bool would_be_const(const ox_node *n)
{
    const char *t = ox_str(n->p->op_type);
    if (strcmp(t, "Shape") == 0 || strcmp(t, "Size") == 0)
        return true;
    for (size_t k = 0; k < n->n_in; k++) {
        const ox_value *v = n->in[k];
        if (v && (v->kind == OX_DYN || (v->kind == OX_BAD && !v->bad_const) || v->graph_input))
            return false;
    }
    return true;
}

static void mark_outputs_bad(ox_node *n)
{
    bool c = would_be_const(n);
    for (size_t k = 0; k < n->n_out; k++)
        if (n->out[k] && n->out[k]->kind == OX_NONE) {
            n->out[k]->kind = OX_BAD;
            n->out[k]->bad_const = c;
        }
}

bool ox_node_at(ox_ctx *x, int j, ox_node *n)
{
    const Onnx__NodeProto *p = x->nodes[j];
    char buf[32];
    memset(n, 0, sizeof *n);
    n->p = p;
    n->index = j;
    n->label = kiln_arena_strdup(&x->arena, node_label(p, (size_t)j, buf, sizeof buf));
    n->base = ox_node_name(x, p);
    if (!n->base)
        n->base = ox_sanitize(x, p->n_output && p->output[0] ? p->output[0] : "");
    n->in = kiln_arena_alloc(&x->arena, (p->n_input + 1) * sizeof *n->in);
    n->out = kiln_arena_alloc(&x->arena, (p->n_output + 1) * sizeof *n->out);
    if (!n->label || !n->in || !n->out) {
        ox_oom(x);
        return false;
    }
    n->n_in = p->n_input;
    n->n_out = p->n_output;
    for (size_t k = 0; k < p->n_output; k++)
        n->out[k] = p->output[k] && p->output[k][0] ? value_get(x, p->output[k]) : NULL;
    for (size_t k = 0; k < p->n_input; k++)
        n->in[k] = p->input[k] && p->input[k][0] ? value_get(x, p->input[k]) : NULL;
    return true;
}

/* Lowers live node j. Constant nodes are evaluated first, in a pass of
 * their own (constants_only), so that patterns can read their values. */
static void lower_node(ox_ctx *x, size_t j, bool constants_only)
{
    const Onnx__NodeProto *p = x->nodes[j];
    bool is_constant = p->op_type && strcmp(p->op_type, "Constant") == 0 && default_domain(p->domain);
    if (is_constant != constants_only)
        return;
    ox_node n;
    if (!ox_node_at(x, (int)j, &n))
        return;
    bool poisoned = false;
    for (size_t k = 0; k < p->n_input; k++) {
        const char *name = p->input[k];
        if (!name || !name[0])
            continue;
        ox_value *v = n.in[k];
        if (!v || (v->kind == OX_NONE && v->producer < 0)) {
            ox_refuse(&n, x, "it reads '%s', which no node, graph input or initializer defines", name);
            continue;
        }
        if (v->kind == OX_BAD)
            poisoned = true;
    }
    const ox_op *op = NULL;
    if (!default_domain(p->domain))
        ox_refuse(&n, x, "operator domain '%s' is not supported (only ONNX's default domain is)", p->domain);
    else if (!(op = ox_op_find(ox_str(p->op_type))))
        ox_refuse(&n, x, "kiln has no operation that computes ONNX's %s", ox_str(p->op_type));
    else if (!op->fold && !op->lower && op->none)
        ox_refuse(&n, x, "%s", op->none);
    for (size_t k = 0; op && !n.refused && k < p->n_attribute; k++) {
        const Onnx__AttributeProto *a = p->attribute[k];
        if (a->ref_attr_name && a->ref_attr_name[0])
            ox_refuse(&n, x, "attribute '%s' refers to a function's attribute", ox_str(a->name));
        else if (!in_list(op->attrs, ox_str(a->name)))
            ox_refuse(&n, x, "attribute '%s' is not supported", ox_str(a->name));
    }
    if (!n.refused && poisoned) {
        /* Its operand's problem was reported. An op kiln can only fold is
         * refused all the same (a computed operand cannot be folded); the
         * rest stay silent. */
        if (would_be_const(&n))
            ;
        else if (!op->lower && op->none)
            ox_refuse(&n, x, "%s", op->none);
        else if (!op->lower)
            ox_refuse(&n, x, "kiln has no operation that computes ONNX's %s", ox_str(p->op_type));
        if (n.refused)
            report(x, &n);
        mark_outputs_bad(&n);
        return;
    }
    int r = 0;
    ox_pattern *pt = x->pattern ? x->pattern[j] : NULL;
    if (pt && pt->active && (int)j == pt->head && !n.refused && !ox_pattern_check(x, pt))
        pt->active = false;
    bool emitted = false;
    if (n.refused) {
        r = -1;
    } else if (pt && pt->active && (int)j != pt->emit) {
        return; /* computed by the pattern's layer */
    } else if (pt && pt->active) {
        r = ox_lower_fused(x, &n, pt);
        emitted = true;
    } else {
        r = op->fold ? op->fold(x, &n) : 0;
        if (r == 0) {
            if (op->lower)
                r = op->lower(x, &n);
            else if (op->none)
                r = ox_refuse(&n, x, "%s", op->none);
            else
                r = ox_refuse(&n, x, "kiln has no operation that computes ONNX's %s", ox_str(p->op_type));
        } else if (r == 1) {
            r = 0;
        }
    }
    if (r == 0 && !n.refused && !emitted) {
        for (size_t k = 0; k < n.n_out; k++)
            if (n.out[k] && n.out[k]->kind == OX_NONE) {
                ox_refuse(&n, x, "output %zu ('%s') is not computed by kiln's lowering of %s", k, n.out[k]->name,
                          ox_str(p->op_type));
                break;
            }
    }
    if (n.refused || r != 0) {
        if (!n.refused)
            ox_refuse(&n, x, "(no reason given)");
        report(x, &n);
        mark_outputs_bad(&n);
        if (pt && pt->active && pt->result && pt->result->kind == OX_NONE)
            pt->result->kind = OX_BAD;
    }
}

/* ---- outputs ------------------------------------------------------------------------------ */

static void make_outputs(ox_ctx *x)
{
    const Onnx__GraphProto *gp = x->graph;
    for (size_t o = 0; o < gp->n_output; o++) {
        const char *name = ox_str(gp->output[o]->name);
        ox_value *v = value_get(x, name);
        ox_node n = {.p = NULL, .label = name, .base = "out"};
        const char *kname = v && v->out_name ? v->out_name : NULL;
        if (!v || v->kind == OX_NONE) {
            ox_problem(x, KILN_ONNX_REFUSED, "output '%s': unsupported: no node computes it", name);
            continue;
        }
        if (v->kind == OX_BAD)
            continue; /* its producer's problem was reported */
        kiln_id id = KILN_NO_ID;
        if (v->kind == OX_CONST) {
            /* a constant output: a `constant` layer under the output's name */
            ox_tensor *t = ox_const(x, &n, v);
            int64_t one = 1;
            if (t && !ox_dtype_is_float(t->dtype))
                ox_refuse(&n, x, "it is %s (kiln's outputs are float32)", ox_dtype_name(t->dtype));
            else if (t && t->count == 0)
                ox_refuse(&n, x, "it is an empty tensor");
            else if (t) {
                kiln_id p = t->rank == 0 ? ox_param(x, &n, v, "value", 1, &one)
                                         : ox_param(x, &n, v, "value", t->rank, t->dims);
                id = ox_emit(x, &n, KILN_OP_CONSTANT, &p, 1, NULL,
                             kname ? kname : ox_claim_io(x, ox_sanitize(x, name)));
            }
        } else {
            id = v->kv;
            const kiln_value *kv = kiln_graph_value(x->g, id);
            bool mine = kname == NULL && kv->kind == KILN_VALUE_NODE;
            for (size_t k = 0; mine && k < x->g->n_outputs; k++)
                if (x->g->outputs[k] == id)
                    mine = false;
            if (!mine) {
                n.base = kname ? kname : "out";
                id = ox_emit1(x, &n, KILN_OP_IDENTITY, id, NULL, kname ? kname : ox_claim_io(x, ox_sanitize(x, name)));
            }
        }
        if (n.refused) {
            ox_problem(x, KILN_ONNX_REFUSED, "output '%s': unsupported: %s", name, n.why);
            continue;
        }
        if (id != KILN_NO_ID && kiln_graph_add_output(x->g, id) != KILN_OK)
            ox_oom(x);
    }
}

/* ---- the import ------------------------------------------------------------------------------ */

struct kiln_onnx_result_impl {
    kiln_onnx_result r;
    kiln_arena arena;
};

static kiln_status import(ox_ctx *x, const void *bytes, size_t size, kiln_onnx_result *r)
{
    char why[512];
    bool oom = false;
    ox_model *om = ox_model_unpack(bytes, size, &oom, why, sizeof why);
    if (!om) {
        if (oom)
            return KILN_ERR_OUT_OF_MEMORY;
        ox_problem(x, KILN_ONNX_REFUSED, "unsupported: %s", why);
        return KILN_ERR_UNSUPPORTED;
    }
    kiln_status st = KILN_OK;
    const Onnx__ModelProto *m = ox_model_proto(om);
    x->opset = -1;
    for (size_t k = 0; k < m->n_opset_import; k++)
        if (default_domain(m->opset_import[k]->domain) && m->opset_import[k]->has_version)
            x->opset = m->opset_import[k]->version;
    r->opset = x->opset;
    if (!m->graph) {
        ox_problem(x, KILN_ONNX_REFUSED, "unsupported: the model has no graph");
        st = KILN_ERR_UNSUPPORTED;
        goto done;
    }
    if (x->opset < 0) {
        /* Without ONNX's own operator set, only nodes of other domains can
         * be there: each is refused for its domain. */
        for (size_t k = 0; m->graph && k < m->graph->n_node; k++)
            if (default_domain(m->graph->node[k]->domain)) {
                ox_problem(x, KILN_ONNX_REFUSED,
                           "unsupported: the model imports no version of the default ONNX operator set");
                st = KILN_ERR_UNSUPPORTED;
                goto done;
            }
        x->opset = 1;
    }
    if (x->opset < 1 || x->opset > 21) {
        ox_problem(x, KILN_ONNX_REFUSED, "unsupported: operator set version %lld (kiln reads 1 to 21)",
                   (long long)x->opset);
        st = KILN_ERR_UNSUPPORTED;
        goto done;
    }
    const Onnx__GraphProto *gp = x->graph = m->graph;
    r->n_nodes = gp->n_node;
    x->g = kiln_graph_create(x->opt->model_name ? x->opt->model_name : "model");
    if (!x->g) {
        st = KILN_ERR_OUT_OF_MEMORY;
        goto done;
    }
    x->g->max_elements = KILN_DEFAULT_MAX_ELEMENTS;
    /* Initializers. */
    for (size_t k = 0; k < gp->n_initializer; k++) {
        const Onnx__TensorProto *tp = gp->initializer[k];
        const char *name = ox_str(tp->name);
        ox_value *v = value_make(x, name);
        if (!v)
            goto done;
        if (v->kind != OX_NONE) {
            ox_problem(x, KILN_ONNX_REFUSED, "initializer '%s': unsupported: the name is given twice", name);
            continue;
        }
        v->kind = OX_CONST;
        v->tp = tp;
        v->hint = v->name;
    }
    for (size_t k = 0; k < gp->n_sparse_initializer; k++) {
        const Onnx__SparseTensorProto *sp = gp->sparse_initializer[k];
        const char *name = sp->values ? ox_str(sp->values->name) : "";
        ox_value *v = value_make(x, name);
        if (!v)
            goto done;
        v->kind = OX_BAD;
        ox_problem(x, KILN_ONNX_REFUSED, "initializer '%s': unsupported: sparse tensors are not read", name);
    }
    /* Inputs: those without an initializer are the model's. */
    input_info *ins = kiln_arena_alloc(&x->arena, (gp->n_input + 1) * sizeof *ins);
    if (!ins) {
        ox_oom(x);
        goto done;
    }
    size_t n_ins = 0;
    for (size_t k = 0; k < gp->n_input; k++) {
        const Onnx__ValueInfoProto *vi = gp->input[k];
        ox_value *v = value_make(x, ox_str(vi->name));
        if (!v)
            goto done;
        if (v->kind == OX_CONST || v->kind == OX_BAD)
            continue; /* an initializer listed as an input (IR version < 4) */
        if (v->graph_input) {
            ox_problem(x, KILN_ONNX_REFUSED, "input '%s': unsupported: it is listed twice", ox_str(vi->name));
            continue;
        }
        v->graph_input = true;
        input_info *in = &ins[n_ins++];
        in->vi = vi;
        if (read_input_type(x, vi, in))
            in->v = v;
        else
            v->kind = OX_BAD;
    }
    /* Outputs keep their names, in order, unique in their C spelling. */
    for (size_t k = 0; k < gp->n_output; k++) {
        ox_value *v = value_make(x, ox_str(gp->output[k]->name));
        if (!v)
            goto done;
        if (v->is_output)
            continue; /* listed twice: the first keeps the name */
        v->is_output = true;
    }
    if (n_ins == 0)
        ox_problem(x, KILN_ONNX_REFUSED, "unsupported: the model has no inputs (a kiln model has at least one)");
    make_inputs(x, ins, n_ins);
    for (size_t k = 0; k < gp->n_output; k++) {
        ox_value *v = value_get(x, ox_str(gp->output[k]->name));
        if (v && v->is_output && !v->out_name)
            v->out_name = ox_claim_io(x, ox_sanitize(x, ox_str(gp->output[k]->name)));
    }
    if (x->oom || order_nodes(x) != 0)
        goto done;
    ox_count_scopes(x);
    x->pattern = kiln_arena_alloc(&x->arena, (x->n_nodes + 1) * sizeof *x->pattern);
    if (!x->pattern) {
        ox_oom(x);
        goto done;
    }
    for (size_t j = 0; j < x->n_nodes && !x->oom; j++)
        lower_node(x, j, true);
    ox_find_patterns(x);
    for (size_t j = 0; j < x->n_nodes && !x->oom; j++)
        lower_node(x, j, false);
    if (!x->oom)
        make_outputs(x);
    if (!x->oom && x->n_problems == 0 && x->g->n_nodes == 0)
        ox_problem(x, KILN_ONNX_REFUSED, "unsupported: the model computes nothing");
    if (!x->oom && x->n_problems == 0)
        st = ox_write_yaml(x, r);
done:
    ox_model_free(om);
    if (x->oom)
        return KILN_ERR_OUT_OF_MEMORY;
    if (st != KILN_OK)
        return st;
    for (size_t k = 0; k < x->n_problems; k++)
        if (x->problems[k].kind == KILN_ONNX_ERROR)
            return KILN_ERR_INVALID_ARGUMENT;
    return x->n_problems ? KILN_ERR_UNSUPPORTED : KILN_OK;
}

kiln_status kiln_onnx_import(const void *bytes, size_t size, const kiln_onnx_options *opt, kiln_onnx_result **out)
{
    *out = NULL;
    kiln_onnx_options defaults = {0};
    struct kiln_onnx_result_impl *impl = kiln_calloc(1, sizeof *impl);
    if (!impl)
        return KILN_ERR_OUT_OF_MEMORY;
    ox_ctx x;
    memset(&x, 0, sizeof x);
    kiln_arena_init(&x.arena);
    x.opt = opt ? opt : &defaults;
    x.max_elements = x.opt->max_elements > 0 ? x.opt->max_elements : OX_DEFAULT_MAX_ELEMENTS;
    kiln_strmap_init(&x.values, &x.arena);
    kiln_strmap_init(&x.names, &x.arena);
    kiln_strmap_init(&x.cnames, &x.arena);
    kiln_strmap_init(&x.scopes, &x.arena);
    kiln_strmap_init(&x.suffixes, &x.arena);
    kiln_status st = import(&x, bytes, size, &impl->r);
    /* The result keeps the arena (YAML, tensors, problem texts). */
    impl->arena = x.arena;
    impl->r.problems = x.problems;
    impl->r.n_problems = x.n_problems;
    kiln_graph_destroy(x.g);
    kiln_free(x.explicit_attrs);
    if (st == KILN_ERR_OUT_OF_MEMORY) {
        kiln_onnx_result_destroy(&impl->r);
        return st;
    }
    *out = &impl->r;
    return st;
}

void kiln_onnx_result_destroy(kiln_onnx_result *r)
{
    if (!r)
        return;
    struct kiln_onnx_result_impl *impl = (struct kiln_onnx_result_impl *)r;
    kiln_free((void *)impl->r.problems);
    kiln_arena_release(&impl->arena);
    kiln_free(impl);
}

kiln_status kiln_onnx_write_weights(const kiln_onnx_result *r, const char *path)
{
    size_t n = r->n_tensors;
    const char **names = kiln_calloc(n ? n : 1, sizeof *names);
    int *ranks = kiln_calloc(n ? n : 1, sizeof *ranks);
    const int64_t **dims = kiln_calloc(n ? n : 1, sizeof *dims);
    const float **data = kiln_calloc(n ? n : 1, sizeof *data);
    kiln_status st = KILN_ERR_OUT_OF_MEMORY;
    if (names && ranks && dims && data) {
        for (size_t k = 0; k < n; k++) {
            names[k] = r->tensors[k].key;
            ranks[k] = r->tensors[k].rank;
            dims[k] = r->tensors[k].dims;
            data[k] = r->tensors[k].data;
        }
        st = kiln_st_write_f32(path, n, names, ranks, dims, data);
    }
    kiln_free(names);
    kiln_free(ranks);
    kiln_free(dims);
    kiln_free(data);
    return st;
}
