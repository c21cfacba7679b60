/* ir/verify.c: the IR's invariants, checked after every pass in tests and
 * debug builds. Reports every broken invariant it finds, not only the first. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "liveness.h"

static void node_error(kiln_diag *d, const kiln_graph *g, size_t i, const char *msg)
{
    const kiln_node *n = &g->nodes[i];
    kiln_diag_error(d, n->loc, "IR node %zu (%s, layer '%s'): %s", i, kiln_op_name(n->op),
                    n->layer ? n->layer : "?", msg);
}

static void check_values(const kiln_graph *g, kiln_diag *d)
{
    for (size_t i = 0; i < g->n_values; i++) {
        const kiln_value *v = &g->values[i];
        if (!v->name) {
            kiln_diag_error(d, v->loc, "IR value %zu has no name", i);
            continue;
        }
        if (kiln_graph_find_value(g, v->name) != i)
            kiln_diag_error(d, v->loc, "IR value '%s' is not unique or not indexed", v->name);
        const kiln_shape *s = &v->type.shape;
        if (s->rank < 0 || s->rank > KILN_MAX_RANK) {
            kiln_diag_error(d, v->loc, "IR value '%s' has rank %d", v->name, s->rank);
            continue;
        }
        if (s->batched && (s->rank < 1 || s->dims[0] != KILN_DIM_BATCH || !g->batch_name))
            kiln_diag_error(d, v->loc, "IR value '%s' is batched but its axis 0 is not the batch", v->name);
        for (int k = s->batched ? 1 : 0; k < s->rank; k++)
            if (s->dims[k] < 1 || s->dims[k] > KILN_MAX_DIM)
                kiln_diag_error(d, v->loc, "IR value '%s' has dimension %d = %lld", v->name, k,
                                (long long)s->dims[k]);
        if ((unsigned)v->type.dtype >= KILN_DTYPE_COUNT)
            kiln_diag_error(d, v->loc, "IR value '%s' has an unknown dtype", v->name);
        char err[160];
        if (kiln_type_check_layout(&v->type, err, sizeof err) != 0)
            kiln_diag_error(d, v->loc, "IR value '%s': %s", v->name, err);
        else if (v->type.layout != KILN_LAYOUT_PLAIN && v->kind != KILN_VALUE_NODE)
            kiln_diag_error(d, v->loc, "IR %s '%s' is blocked (nchw%dc): model inputs and params are plain",
                            v->kind == KILN_VALUE_INPUT ? "input" : "parameter", v->name, v->type.block);
        switch (v->kind) {
        case KILN_VALUE_NODE:
            if (v->producer >= g->n_nodes || g->nodes[v->producer].output != i)
                kiln_diag_error(d, v->loc, "IR value '%s' has no producing node", v->name);
            break;
        case KILN_VALUE_PARAM:
            if (v->producer != KILN_NO_ID)
                kiln_diag_error(d, v->loc, "IR parameter '%s' has a producer", v->name);
            if (v->type.shape.batched)
                kiln_diag_error(d, v->loc, "IR parameter '%s' cannot have a batch dimension", v->name);
            if (v->param.source == KILN_PARAM_FILE && v->param.file >= g->n_weight_files)
                kiln_diag_error(d, v->loc, "IR parameter '%s' names weights file %u of %zu", v->name,
                                v->param.file, g->n_weight_files);
            break;
        case KILN_VALUE_INPUT: {
            bool listed = false;
            for (size_t k = 0; k < g->n_inputs; k++)
                listed |= g->inputs[k] == i;
            if (!listed)
                kiln_diag_error(d, v->loc, "IR input '%s' is not a model input", v->name);
            break;
        }
        }
    }
}

static void check_nodes(const kiln_graph *g, kiln_diag *d)
{
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln_node *n = &g->nodes[i];
        char err[512];
        if ((unsigned)n->op >= KILN_OP_COUNT) {
            node_error(d, g, i, "unknown op");
            continue;
        }
        if (n->output >= g->n_values || g->values[n->output].producer != i) {
            node_error(d, g, i, "its output value does not point back at it");
            continue;
        }
        bool ordered = true;
        for (uint32_t k = 0; k < n->n_inputs; k++) {
            kiln_id in = n->inputs[k];
            if (in >= g->n_values) {
                node_error(d, g, i, "an operand refers to no value");
                ordered = false;
                break;
            }
            const kiln_value *v = &g->values[in];
            if (v->kind == KILN_VALUE_NODE && v->producer >= i) {
                snprintf(err, sizeof err, "operand '%s' is produced later (not topological)", v->name);
                node_error(d, g, i, err);
                ordered = false;
            }
        }
        if (!ordered)
            continue;
        kiln_type want;
        if (kiln_ir_node_type(g, n, &want, err, sizeof err) != KILN_OK) {
            node_error(d, g, i, err);
            continue;
        }
        /* Every shape is logical, blocked or not. */
        const kiln_type *have = &g->values[n->output].type;
        if (!kiln_shape_equal(&want.shape, &have->shape)) {
            char a[160], b[160];
            snprintf(err, sizeof err, "output is %s but the shape rule gives %s",
                     kiln_type_format(have, g->batch_name, a, sizeof a),
                     kiln_type_format(&want, g->batch_name, b, sizeof b));
            node_error(d, g, i, err);
            continue;
        }
        if ((kiln_op_get(n->op)->flags & KILN_OPF_SETS_DTYPE) && want.dtype != have->dtype) {
            snprintf(err, sizeof err, "output is %s but %s makes %s", kiln_dtype_name(have->dtype),
                     kiln_op_name(n->op), kiln_dtype_name(want.dtype));
            node_error(d, g, i, err);
            continue;
        }
        if (kiln_ir_check_quant(g, n, err, sizeof err) != 0) {
            node_error(d, g, i, err);
            continue;
        }
        bool types_ok = kiln_type_check_layout(have, err, sizeof err) == 0;
        for (uint32_t k = 0; k < n->n_inputs && types_ok; k++)
            types_ok = kiln_type_check_layout(&g->values[n->inputs[k]].type, err, sizeof err) == 0;
        if (types_ok && kiln_ir_check_node_layout(g, n, err, sizeof err) != 0)
            node_error(d, g, i, err); /* (ill-formed types are reported with the values) */
    }
}

/* ---- quantization parameters ----------------------------------------------- */

int kiln_ir_check_quant(const kiln_graph *g, const kiln_node *n, char *err, size_t err_size)
{
    if (n->op != KILN_OP_QUANTIZE && n->op != KILN_OP_DEQUANTIZE)
        return 0;
    bool q = n->op == KILN_OP_QUANTIZE;
    /* the integer side: quantize's output, dequantize's operand */
    const kiln_type *it = &g->values[q ? n->output : n->inputs[0]].type;
    double lo = it->dtype == KILN_U8 ? 0 : -128, hi = it->dtype == KILN_U8 ? 255 : 127;
    kiln_id sid = kiln_node_param(g, n, "scale"), zid = kiln_node_param(g, n, "zero_point");
    const kiln_value *sv = sid != KILN_NO_ID ? &g->values[sid] : NULL;
    const kiln_value *zv = zid != KILN_NO_ID ? &g->values[zid] : NULL;
    if (!sv || !kiln_param_readable(sv) || (zv && !kiln_param_readable(zv)))
        return 0; /* data not bound yet: the compiler and the interpreter check it when they read it */
    int64_t c = kiln_shape_elements(&sv->type.shape, 1);
    if (c < 1 || (zv && kiln_shape_elements(&zv->type.shape, 1) != c))
        return 0; /* the shapes are the shape rule's to report */
    double *buf = malloc(sizeof(double) * 2 * (size_t)c);
    if (!buf) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    double *scale = buf, *zp = buf + c;
    int rc = 0;
    if (kiln_param_read_f64(g, sid, scale) != KILN_OK || (zv && kiln_param_read_f64(g, zid, zp) != KILN_OK)) {
        free(buf);
        return 0;
    }
    for (int64_t k = 0; k < c && rc == 0; k++) {
        float s = (float)scale[k]; /* scales are f32 (docs/ir.md) */
        double z = zv ? zp[k] : 0.0;
        if (!(s > 0.0f) || isinf(s)) {
            snprintf(err, err_size, "scale %lld is %g: scales must be positive and finite as f32", (long long)k,
                     scale[k]);
            rc = -1;
        } else if (!(z >= lo && z <= hi) || z != floor(z)) {
            snprintf(err, err_size, "zero_point %lld is %g: it must be an integer in %s's range %g..%g", (long long)k,
                     z, kiln_dtype_name(it->dtype), lo, hi);
            rc = -1;
        }
    }
    /* The type's q(scale, zp) echoes a per-tensor node's parameters. */
    if (rc == 0 && it->quantized) {
        if (kiln_node_has(n, KILN_ATTR_AXIS)) {
            snprintf(err, err_size, "the %s value is per channel (axis %lld): its type carries no q(scale, zp), the "
                     "node's parameters hold the scales", kiln_dtype_name(it->dtype),
                     (long long)n->attrs[KILN_ATTR_AXIS].i);
            rc = -1;
        } else if (it->scale != (double)(float)scale[0] || it->zero_point != (zv ? zp[0] : 0.0)) {
            snprintf(err, err_size, "the type says q(scale=%.9g, zp=%d) but the parameters are scale %.9g, "
                     "zero_point %g", it->scale, (int)it->zero_point, (double)(float)scale[0], zv ? zp[0] : 0.0);
            rc = -1;
        }
    }
    free(buf);
    return rc;
}

/* ---- layouts ------------------------------------------------------------- */

static bool is_blocked(const kiln_type *t) { return t->layout != KILN_LAYOUT_PLAIN; }
static bool same_layout(const kiln_type *a, const kiln_type *b)
{
    return a->layout == b->layout && a->block == b->block;
}

static const char *layout_text(const kiln_type *t, char *buf, size_t size)
{
    if (t->layout == KILN_LAYOUT_PLAIN)
        snprintf(buf, size, "plain");
    else
        snprintf(buf, size, "nchw%dc", t->block);
    return buf;
}

int kiln_ir_check_node_layout(const kiln_graph *g, const kiln_node *n, char *err, size_t err_size)
{
    const kiln_type *out = &g->values[n->output].type;
    uint32_t data = kiln_node_data_inputs(g, n);
    bool any = is_blocked(out);
    for (uint32_t k = 0; k < data; k++)
        any |= is_blocked(&g->values[n->inputs[k]].type);
    if (!any)
        return 0;
    char a[32], b[32];
    switch (kiln_op_facts_of(n->op)->layout) {
    case KILN_LAYR_CONV:    /* any layout in, any out: the kernel reads and writes both */
    case KILN_LAYR_CONVERT: /* its purpose */
        return 0;
    case KILN_LAYR_READ_ANY:
        if (!is_blocked(out))
            return 0;
        snprintf(err, err_size, "%s reads any layout but writes a plain output, not %s", kiln_op_name(n->op),
                 layout_text(out, a, sizeof a));
        return -1;
    case KILN_LAYR_PLAIN:
        for (uint32_t k = 0; k < data; k++) {
            const kiln_value *v = &g->values[n->inputs[k]];
            if (is_blocked(&v->type)) {
                snprintf(err, err_size, "%s reads the plain layout only, but operand '%s' is %s (a reorder must "
                         "convert it)", kiln_op_name(n->op), v->name, layout_text(&v->type, a, sizeof a));
                return -1;
            }
        }
        snprintf(err, err_size, "%s writes the plain layout only, not %s", kiln_op_name(n->op),
                 layout_text(out, a, sizeof a));
        return -1;
    case KILN_LAYR_KEEP:
        break;
    }
    /* pools and elementwise ops keep their operands' layout; a binary op
     * with a blocked value does not broadcast */
    for (uint32_t k = 0; k < data; k++) {
        const kiln_value *v = &g->values[n->inputs[k]];
        if (!same_layout(&v->type, out)) {
            snprintf(err, err_size, "%s keeps its operands' layout, but operand '%s' is %s and the output %s",
                     kiln_op_name(n->op), v->name, layout_text(&v->type, a, sizeof a), layout_text(out, b, sizeof b));
            return -1;
        }
        if (kiln_op_is_binary(n->op) && data == 2 && !kiln_shape_equal(&v->type.shape, &out->shape)) {
            char s1[128], s2[128];
            snprintf(err, err_size, "%s on blocked values does not broadcast: operand '%s' is %s, the output %s",
                     kiln_op_name(n->op), v->name, kiln_shape_format(&v->type.shape, g->batch_name, s1, sizeof s1),
                     kiln_shape_format(&out->shape, g->batch_name, s2, sizeof s2));
            return -1;
        }
    }
    return 0;
}

/* ---- fusion groups (kiln_node.group) ----------------------------------- */

/* The chain rule of graph.h, for the member at node i (not the first of its
 * group, which starts at node `start`). */
static void check_member(const kiln_graph *g, const uint32_t *uses, size_t start, size_t i, kiln_diag *d)
{
    const kiln_node *n = &g->nodes[i];
    char err[512];
    if (!kiln_op_is_elementwise(n->op)) {
        snprintf(err, sizeof err, "fusion group %u: %s cannot follow another member (only one-input or binary "
                 "elementwise ops can)", n->group, kiln_op_name(n->op));
        node_error(d, g, i, err);
        return;
    }
    kiln_id prev = g->nodes[i - 1].output;
    const kiln_value *pv = &g->values[prev];
    uint32_t data = kiln_node_data_inputs(g, n), found = 0;
    for (uint32_t k = 0; k < data; k++)
        found += n->inputs[k] == prev;
    if (found != 1 || uses[prev] != 1) {
        snprintf(err, sizeof err,
                 "fusion group %u: '%s', the previous member's output, must be read once, by this node only "
                 "(it is read %u time(s) here and %u time(s) in all, model outputs included)",
                 n->group, pv->name, found, uses[prev]);
        node_error(d, g, i, err);
        return;
    }
    const kiln_type *out = &g->values[n->output].type;
    if (!kiln_shape_equal(&out->shape, &pv->type.shape)) {
        snprintf(err, sizeof err, "fusion group %u: the output's shape differs from the chained value '%s' "
                 "(the other operand must broadcast into it)", n->group, pv->name);
        node_error(d, g, i, err);
        return;
    }
    for (uint32_t k = 0; k < data; k++) {
        const kiln_value *o = &g->values[n->inputs[k]];
        if (n->inputs[k] != prev && o->kind == KILN_VALUE_NODE && o->producer >= start && o->producer < i) {
            snprintf(err, sizeof err, "fusion group %u: operand '%s' comes from inside the group", n->group,
                     o->name);
            node_error(d, g, i, err);
        }
    }
}

static kiln_status check_groups(const kiln_graph *g, kiln_diag *d)
{
    uint32_t *uses = kiln_malloc(sizeof *uses * (g->n_values ? g->n_values : 1));
    if (!uses) {
        kiln_diag_error(d, (kiln_loc){0}, "out of memory while verifying the IR");
        return KILN_ERR_OUT_OF_MEMORY;
    }
    kiln_graph_count_uses(g, uses);
    uint32_t last_group = 0;
    size_t start = 0;
    char err[256];
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln_node *n = &g->nodes[i];
        if (n->group == 0)
            continue;
        bool first = i == 0 || g->nodes[i - 1].group != n->group;
        if (first) {
            start = i;
            if (n->group <= last_group) {
                snprintf(err, sizeof err, "fusion group %u: group numbers must increase along the nodes, and "
                         "a group's members be consecutive (the previous group is %u)", n->group, last_group);
                node_error(d, g, i, err);
            }
            last_group = n->group;
            if (!kiln_op_can_anchor(n->op)) {
                snprintf(err, sizeof err, "fusion group %u cannot start with %s (only conv2d, dense, matmul "
                         "or an elementwise op)", n->group, kiln_op_name(n->op));
                node_error(d, g, i, err);
            }
            continue;
        }
        check_member(g, uses, start, i, d);
        if (n->tasks != g->nodes[start].tasks) {
            snprintf(err, sizeof err, "fusion group %u: tasks %u differ from the group's first node's (%u)",
                     n->group, n->tasks, g->nodes[start].tasks);
            node_error(d, g, i, err);
        }
    }
    kiln_free(uses);
    return KILN_OK;
}

/* ---- the memory plan (kiln_value.mem) ------------------------------------ */

typedef struct placed {
    uint64_t offset, end;
    uint32_t first, last;
    kiln_id v;
} placed;

static int by_offset(const void *a, const void *b)
{
    const placed *x = a, *y = b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return x->v < y->v ? -1 : x->v > y->v;
}

static const char *region_name(kiln_mem_region r) { return r == KILN_MEM_BATCH ? "batch" : "fixed"; }

/* What a placed item is called in messages: a value, or (ids past the
 * values) a node's scratch. */
static void item_name(const kiln_graph *g, kiln_id v, char *buf, size_t size)
{
    if (v < g->n_values)
        snprintf(buf, size, "'%s'", g->values[v].name);
    else
        snprintf(buf, size, "the scratch of IR node %zu (layer '%s')", (size_t)(v - g->n_values),
                 g->nodes[v - g->n_values].layer ? g->nodes[v - g->n_values].layer : "?");
}

static kiln_status check_memory(const kiln_graph *g, kiln_diag *d)
{
    bool planned = g->mem_fixed_bytes || g->mem_batch_bytes || g->mem_lower_bound_bytes;
    for (size_t v = 0; v < g->n_values && !planned; v++)
        planned = g->values[v].mem != KILN_MEM_NONE;
    for (size_t i = 0; i < g->n_nodes && !planned; i++)
        planned = g->nodes[i].scratch_bytes != 0;
    if (!planned)
        return KILN_OK;
    kiln_liveness lv;
    kiln_status st = kiln_liveness_compute(g, &lv);
    if (st == KILN_ERR_OUT_OF_MEMORY) {
        kiln_diag_error(d, (kiln_loc){0}, "out of memory while verifying the IR");
        return st;
    }
    if (st != KILN_OK) {
        kiln_diag_error(d, (kiln_loc){0}, "IR memory plan: a value's size overflows");
        return KILN_OK;
    }
    placed *items = kiln_malloc(sizeof *items * (g->n_values + g->n_nodes + 1));
    if (!items) {
        kiln_liveness_release(&lv);
        kiln_diag_error(d, (kiln_loc){0}, "out of memory while verifying the IR");
        return KILN_ERR_OUT_OF_MEMORY;
    }
    size_t n_items[2] = {0, 0};
    placed *list[2] = {items, NULL};
    /* two passes over the values: fixed region first, then batch, in one array */
    for (int r = 0; r < 2; r++) {
        kiln_mem_region region = r ? KILN_MEM_BATCH : KILN_MEM_FIXED;
        uint64_t size = r ? g->mem_batch_bytes : g->mem_fixed_bytes;
        if (r)
            list[1] = items + n_items[0];
        for (size_t v = 0; v < g->n_values; v++) {
            const kiln_value *val = &g->values[v];
            bool needs = lv.needs_memory[v];
            if (r == 0) { /* report each value once */
                if (val->mem != KILN_MEM_NONE && !needs)
                    kiln_diag_error(d, val->loc, "IR value '%s' has workspace memory but needs none (a model input "
                                    "or output, a param, or a value inside a fusion group)", val->name);
                else if (needs && val->mem == KILN_MEM_NONE)
                    kiln_diag_error(d, val->loc, "IR value '%s' needs workspace memory but the plan gives it none",
                                    val->name);
                else if (needs && val->mem != kiln_liveness_region(g, (kiln_id)v))
                    kiln_diag_error(d, val->loc, "IR value '%s' is %s but planned in the %s region", val->name,
                                    val->type.shape.batched ? "batched" : "not batched",
                                    val->mem == KILN_MEM_BATCH ? "batch"
                                    : val->mem == KILN_MEM_FIXED ? "fixed" : "unknown");
            }
            if (!needs || val->mem != region)
                continue;
            uint64_t bytes = lv.bytes[v];
            if (val->mem_offset % KILN_MEM_ALIGN != 0)
                kiln_diag_error(d, val->loc, "IR value '%s': offset %llu is not a multiple of %d", val->name,
                                (unsigned long long)val->mem_offset, KILN_MEM_ALIGN);
            if (val->mem_offset > size || bytes > size - val->mem_offset)
                kiln_diag_error(d, val->loc, "IR value '%s': [%llu, %llu) lies outside the %s region (%llu bytes)",
                                val->name, (unsigned long long)val->mem_offset,
                                (unsigned long long)(val->mem_offset + bytes), region_name(region),
                                (unsigned long long)size);
            placed *p = &list[r][n_items[r]++];
            *p = (placed){val->mem_offset, val->mem_offset + bytes, lv.first[v], lv.last[v], (kiln_id)v};
        }
        for (size_t i = 0; region == KILN_MEM_FIXED && i < g->n_nodes; i++) {
            const kiln_node *n = &g->nodes[i];
            if (n->scratch_bytes == 0)
                continue;
            if (n->scratch_offset % KILN_MEM_ALIGN != 0 || n->scratch_offset > size ||
                n->scratch_bytes > size - n->scratch_offset)
                kiln_diag_error(d, n->loc, "IR node %zu (layer '%s'): its scratch [%llu, %llu) is not a 64-byte "
                                "aligned range of the fixed region (%llu bytes)", i, n->layer ? n->layer : "?",
                                (unsigned long long)n->scratch_offset,
                                (unsigned long long)(n->scratch_offset + n->scratch_bytes), (unsigned long long)size);
            placed *p = &list[r][n_items[r]++];
            *p = (placed){n->scratch_offset, n->scratch_offset + n->scratch_bytes, lv.node_step[i], lv.node_step[i],
                          (kiln_id)(g->n_values + i)};
        }
        qsort(list[r], n_items[r], sizeof *items, by_offset);
        for (size_t a = 0; a < n_items[r]; a++) {
            for (size_t b = a + 1; b < n_items[r] && list[r][b].offset < list[r][a].end; b++) {
                const placed *x = &list[r][a], *y = &list[r][b];
                if (x->first <= y->last && y->first <= x->last) {
                    char xn[160], yn[160];
                    item_name(g, x->v, xn, sizeof xn);
                    item_name(g, y->v, yn, sizeof yn);
                    kiln_loc loc = y->v < g->n_values ? g->values[y->v].loc : g->nodes[y->v - g->n_values].loc;
                    kiln_diag_error(d, loc, "IR %s and %s are live at the same time and overlap in the %s region",
                                    xn, yn, region_name(region));
                }
            }
        }
    }
    /* The lower bound: the sum over the regions of the most bytes live at one step. */
    uint64_t lb_fixed = 0, lb_batch = 0;
    if (kiln_liveness_lower_bound(g, &lv, &lb_fixed, &lb_batch) != KILN_OK) {
        kiln_free(items);
        kiln_liveness_release(&lv);
        kiln_diag_error(d, (kiln_loc){0}, "out of memory while verifying the IR");
        return KILN_ERR_OUT_OF_MEMORY;
    }
    if (lb_fixed + lb_batch != g->mem_lower_bound_bytes)
        kiln_diag_error(d, (kiln_loc){0}, "IR memory plan: lower_bound is %llu but the values live at once need "
                        "%llu bytes (fixed %llu + batch %llu)", (unsigned long long)g->mem_lower_bound_bytes,
                        (unsigned long long)(lb_fixed + lb_batch), (unsigned long long)lb_fixed,
                        (unsigned long long)lb_batch);
    kiln_free(items);
    kiln_liveness_release(&lv);
    return KILN_OK;
}

kiln_status kiln_ir_verify_annotations(const kiln_graph *g, kiln_diag *d)
{
    size_t before = d->errors;
    kiln_status st = check_groups(g, d);
    if (st == KILN_OK && d->errors == before)
        st = check_memory(g, d);
    if (st != KILN_OK)
        return st;
    return d->errors > before ? KILN_ERR_INTERNAL : KILN_OK;
}

kiln_status kiln_ir_verify(const kiln_graph *g, kiln_diag *d)
{
    size_t before = d->errors;
    if (!g->name || !g->name[0])
        kiln_diag_error(d, (kiln_loc){0}, "IR graph has no name");
    check_values(g, d);
    check_nodes(g, d);
    for (size_t i = 0; i < g->n_inputs; i++)
        if (g->inputs[i] >= g->n_values || g->values[g->inputs[i]].kind != KILN_VALUE_INPUT)
            kiln_diag_error(d, (kiln_loc){0}, "IR graph input %zu is not an input value", i);
    if (g->n_outputs == 0)
        kiln_diag_error(d, (kiln_loc){0}, "IR graph '%s' has no outputs", g->name ? g->name : "?");
    for (size_t i = 0; i < g->n_outputs; i++) {
        if (g->outputs[i] >= g->n_values)
            kiln_diag_error(d, (kiln_loc){0}, "IR graph output %zu refers to no value", i);
        else if (g->values[g->outputs[i]].type.layout != KILN_LAYOUT_PLAIN)
            kiln_diag_error(d, g->values[g->outputs[i]].loc, "IR graph output '%s' is blocked (nchw%dc): model "
                            "outputs are plain (the caller's memory)", g->values[g->outputs[i]].name,
                            g->values[g->outputs[i]].type.block);
    }
    /* The passes' annotations, once the structure they describe is sound. */
    if (d->errors == before && kiln_ir_verify_annotations(g, d) == KILN_ERR_OUT_OF_MEMORY)
        return KILN_ERR_OUT_OF_MEMORY;
    return d->errors > before ? KILN_ERR_INTERNAL : KILN_OK;
}
