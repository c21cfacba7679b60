/* compiler/codegen/placement.c: the buffer of every value and the workspace
 * layout (see placement.h), and the C spellings of the model's names. */
#include "placement.h"

#include "ir/liveness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REGION_ALIGN 64u
/* Larger scratch than this is refused (and sizes cannot overflow below it). */
#define KILN_CG_MAX_SCRATCH (UINT64_C(1) << 48)

static uint64_t round_up(uint64_t v) { return (v + REGION_ALIGN - 1) / REGION_ALIGN * REGION_ALIGN; }

void kiln_cg_c_name(const char *name, char *buf, size_t size)
{
    if (size == 0)
        return;
    size_t o = 0;
    if (name[0] >= '0' && name[0] <= '9' && o + 1 < size)
        buf[o++] = '_';
    for (const char *p = name; *p && o + 1 < size; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        buf[o++] = ok ? c : '_';
    }
    buf[o] = '\0';
}

bool kiln_cg_is_keyword(const char *s)
{
    static const char *const words[] = {
        /* C11 and C23 */
        "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum",
        "extern", "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return",
        "short", "signed", "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned", "void",
        "volatile", "while", "bool", "true", "false", "nullptr", "alignas", "alignof", "constexpr",
        "static_assert", "thread_local", "typeof", "typeof_unqual",
        /* C++ */
        "and", "and_eq", "asm", "bitand", "bitor", "catch", "char8_t", "char16_t", "char32_t", "class",
        "compl", "concept", "consteval", "constinit", "const_cast", "co_await", "co_return", "co_yield",
        "decltype", "delete", "dynamic_cast", "explicit", "export", "friend", "mutable", "namespace", "new",
        "noexcept", "not", "not_eq", "operator", "or", "or_eq", "private", "protected", "public",
        "reinterpret_cast", "requires", "static_cast", "template", "this", "throw", "try", "typeid",
        "typename", "using", "virtual", "wchar_t", "xor", "xor_eq",
        /* names the generated header itself uses */
        "int64_t", "size_t", "kiln_status", "kiln_options", "kiln_model_info",
    };
    if (s[0] == '_' && ((s[1] >= 'A' && s[1] <= 'Z') || s[1] == '_'))
        return true; /* reserved identifiers (_Bool, __x) */
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcmp(words[i], s) == 0)
            return true;
    return false;
}

void kiln_cg_placement_release(kiln_cg_placement *l)
{
    if (!l)
        return;
    free(l->node_scratch);
    free(l->values);
    for (int k = 0; k < 2; k++) {
        char **list = k ? l->names.outputs : l->names.inputs;
        size_t n = k ? l->names.n_outputs : l->names.n_inputs;
        for (size_t i = 0; list && i < n; i++)
            free(list[i]);
        free(list);
    }
    memset(l, 0, sizeof *l);
}

/* C spellings of inputs and outputs, with collisions reported. */
static kiln_status plan_names(const kiln_graph *g, kiln_cg_placement *l, kiln_diag *d)
{
    size_t ni = g->n_inputs, no = g->n_outputs;
    l->names.inputs = calloc(ni ? ni : 1, sizeof(char *));
    l->names.outputs = calloc(no ? no : 1, sizeof(char *));
    l->names.n_inputs = ni;
    l->names.n_outputs = no;
    if (!l->names.inputs || !l->names.outputs)
        return KILN_ERR_OUT_OF_MEMORY;
    bool uses_m = false, uses_batch = false;
    for (size_t i = 0; i < ni + no; i++) {
        const kiln_value *v = kiln_graph_value(g, i < ni ? g->inputs[i] : g->outputs[i - ni]);
        size_t len = strlen(v->name) + 3;
        char *c = malloc(len);
        if (!c)
            return KILN_ERR_OUT_OF_MEMORY;
        kiln_cg_c_name(v->name, c, len);
        if (kiln_cg_is_keyword(c))
            strcat(c, "_");
        if (i < ni)
            l->names.inputs[i] = c;
        else
            l->names.outputs[i - ni] = c;
        uses_m |= strcmp(c, "m") == 0;
        uses_batch |= strcmp(c, "batch") == 0;
    }
    snprintf(l->names.model_param, sizeof l->names.model_param, "%s", uses_m ? "kiln_m" : "m");
    snprintf(l->names.batch_param, sizeof l->names.batch_param, "%s", uses_batch ? "kiln_batch" : "batch");

    kiln_status st = KILN_OK;
    for (size_t i = 0; i < ni + no; i++) {
        const char *a = i < ni ? l->names.inputs[i] : l->names.outputs[i - ni];
        for (size_t j = 0; j < i; j++) {
            const char *b = j < ni ? l->names.inputs[j] : l->names.outputs[j - ni];
            if (strcmp(a, b) != 0 || strcmp(a, "kiln_m") == 0)
                continue;
            const char *na = kiln_graph_value(g, i < ni ? g->inputs[i] : g->outputs[i - ni])->name;
            const char *nb = kiln_graph_value(g, j < ni ? g->inputs[j] : g->outputs[j - ni])->name;
            kiln_diag_error(d, (kiln_loc){0},
                            "model '%s': %s '%s' and %s '%s' have the same C name '%s' in the generated API "
                            "(give them names that differ in letters, digits or '_')",
                            g->name, i < ni ? "input" : "output", na, j < ni ? "input" : "output", nb, a);
            st = KILN_ERR_UNSUPPORTED;
        }
        if (strcmp(a, "kiln_m") == 0 || strcmp(a, "kiln_batch") == 0) {
            kiln_diag_error(d, (kiln_loc){0}, "model '%s': the name '%s' is reserved by the generated API",
                            g->name, a);
            st = KILN_ERR_UNSUPPORTED;
        }
    }
    return st;
}

/* Whether value `alias` (an alias of workspace value `root`, its buffer)
 * can share root's planned region: no other value the plan puts in an
 * overlapping place of the same region may be live between root's last use
 * and alias's last use. */
static bool alias_safe(const kiln_graph *g, const kiln_liveness *lv, kiln_id root, uint32_t until)
{
    const kiln_value *r = &g->values[root];
    if (!lv->needs_memory[root] || r->mem == KILN_MEM_NONE)
        return false;
    uint64_t lo = r->mem_offset, hi = r->mem_offset + kiln_mem_align_up(lv->bytes[root]);
    for (size_t v = 0; v < g->n_values; v++) {
        const kiln_value *o = &g->values[v];
        if (v == root || !lv->needs_memory[v] || o->mem != r->mem)
            continue;
        uint64_t olo = o->mem_offset, ohi = o->mem_offset + kiln_mem_align_up(lv->bytes[v]);
        if (ohi <= lo || olo >= hi)
            continue;
        if (lv->first[v] <= until && lv->last[v] >= lv->first[root])
            return false;
    }
    return true;
}

bool kiln_cg_slice_view(const kiln_graph *g, const kiln_node *n, uint64_t *offset_bytes)
{
    if (n->op != KILN_OP_SLICE || n->n_inputs < 1)
        return false;
    const kiln_type *xt = &g->values[n->inputs[0]].type, *yt = &g->values[n->output].type;
    if (xt->shape.batched || xt->layout != KILN_LAYOUT_PLAIN || yt->layout != KILN_LAYOUT_PLAIN ||
        xt->dtype != KILN_F32 || yt->dtype != KILN_F32)
        return false;
    const int64_t axis = n->attrs[KILN_ATTR_AXIS].i, step = n->attrs[KILN_ATTR_STEP].i;
    if (axis < 0 || axis >= xt->shape.rank || step < 1)
        return false;
    int64_t first, count, inner = 1;
    kiln_slice_bounds(xt->shape.dims[axis], n->attrs[KILN_ATTR_START].i, kiln_node_has(n, KILN_ATTR_END),
                      n->attrs[KILN_ATTR_END].i, step, &first, &count);
    if (count < 1 || (step != 1 && count > 1))
        return false;
    for (int64_t i = 0; i < axis; i++)
        if (xt->shape.dims[i] != 1)
            return false;
    for (int i = (int)axis + 1; i < xt->shape.rank; i++)
        inner *= xt->shape.dims[i];
    *offset_bytes = (uint64_t)(first * inner) * kiln_dtype_size(xt->dtype);
    return true;
}

static bool has_plan(const kiln_graph *g)
{
    if (g->mem_fixed_bytes || g->mem_batch_bytes)
        return true;
    for (size_t v = 0; v < g->n_values; v++)
        if (g->values[v].mem != KILN_MEM_NONE)
            return true;
    return false;
}

/* The working state of kiln_cg_place_buffers. */
typedef struct placer {
    const kiln_graph *g;
    kiln_cg_placement l;
    kiln_liveness lv;
    bool plan;              /* the passes' memory plan is followed */
    uint64_t scratch_fixed; /* the shared scratch region: nodes the plan gives no scratch */
    bool *unstored;         /* values a fusion group keeps in registers */
    kiln_id *root;          /* the value whose buffer each value shares (itself: none) */
    bool *alias;
    uint64_t *alias_off;    /* bytes into the root's buffer */
} placer;

static void placer_release(placer *p)
{
    free(p->root);
    free(p->alias);
    free(p->alias_off);
    free(p->unstored);
    kiln_liveness_release(&p->lv);
}

/* The model's name prefixes every generated symbol. */
static kiln_status check_model_name(const kiln_graph *g, kiln_diag *d)
{
    bool ident = g->name[0] && !(g->name[0] >= '0' && g->name[0] <= '9');
    for (const char *c = g->name; *c; c++)
        ident &= (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_';
    if (!ident) {
        kiln_diag_error(d, (kiln_loc){0}, "model name '%s' is not a C identifier: it cannot prefix the generated "
                        "symbols", g->name);
        return KILN_ERR_UNSUPPORTED;
    }
    if (kiln_cg_is_keyword(g->name)) {
        kiln_diag_error(d, (kiln_loc){0}, "model name '%s' is a C keyword or reserved name: it cannot prefix "
                        "the generated symbols", g->name);
        return KILN_ERR_UNSUPPORTED;
    }
    return KILN_OK;
}

/* Kernel scratch: the plan's where it has some, else the shared region
 * (its offset is known once the unbatched values are placed). */
static kiln_status place_scratch(placer *p, const uint64_t *node_scratch, kiln_diag *d)
{
    const kiln_graph *g = p->g;
    for (size_t i = 0; node_scratch && i < g->n_nodes; i++) {
        const kiln_node *n = &g->nodes[i];
        if (node_scratch[i] == 0)
            continue;
        if (node_scratch[i] > p->l.scratch_largest_bytes)
            p->l.scratch_largest_bytes = node_scratch[i];
        if (p->plan && n->scratch_bytes >= node_scratch[i]) {
            p->l.node_scratch[i] = (kiln_cg_buffer){KILN_CG_BUF_WORKSPACE, 0, n->scratch_offset, 0};
            continue;
        }
        if (p->plan && n->scratch_bytes != 0) {
            kiln_diag_error(d, n->loc, "layer '%s' (%s): the memory plan gives its kernel %llu bytes of scratch, "
                            "it needs %llu (a plan made for another target: plan again)",
                            n->layer ? n->layer : "?", kiln_op_name(n->op), (unsigned long long)n->scratch_bytes,
                            (unsigned long long)node_scratch[i]);
            return KILN_ERR_UNSUPPORTED;
        }
        p->l.node_scratch[i].kind = KILN_CG_BUF_NONE;
        if (node_scratch[i] > p->scratch_fixed)
            p->scratch_fixed = node_scratch[i];
    }
    return KILN_OK;
}

/* Inputs, parameters and model outputs live in the caller's buffers and the
 * weights; also the largest batched value per item. */
static void place_model_buffers(placer *p)
{
    const kiln_graph *g = p->g;
    for (kiln_id v = 0; v < g->n_values; v++) {
        const kiln_value *val = kiln_graph_value(g, v);
        kiln_cg_buffer *b = &p->l.values[v];
        if (val->type.shape.batched) {
            uint64_t bytes = kiln_value_bytes(g, v); /* 0: too large */
            if (bytes == 0)
                bytes = UINT64_MAX;
            if (bytes > p->l.max_item_bytes)
                p->l.max_item_bytes = bytes;
        }
        if (val->kind == KILN_VALUE_INPUT) {
            for (uint32_t k = 0; k < g->n_inputs; k++)
                if (g->inputs[k] == v) {
                    *b = (kiln_cg_buffer){KILN_CG_BUF_INPUT, k, 0, 0};
                    break;
                }
        } else if (val->kind == KILN_VALUE_PARAM) {
            *b = (kiln_cg_buffer){KILN_CG_BUF_PARAM, v, 0, 0};
        } else {
            for (uint32_t k = 0; k < g->n_outputs; k++)
                if (g->outputs[k] == v) {
                    *b = (kiln_cg_buffer){KILN_CG_BUF_OUTPUT, k, 0, 0};
                    break;
                }
        }
    }
}

/* Aliases in node order, so an alias of an alias resolves to the root:
 * without a plan every value has its own region, so sharing is always
 * safe; under a plan only where the root's region is not reused while the
 * alias is read (else the alias is a copy into its own region). */
static kiln_status find_aliases(placer *p, bool expose)
{
    const kiln_graph *g = p->g;
    const kiln_liveness *lv = &p->lv;
    uint32_t *last_use = p->plan ? calloc(g->n_values ? g->n_values : 1, sizeof *last_use) : NULL;
    if (p->plan && !last_use)
        return KILN_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; p->plan && i < g->n_nodes; i++)
        for (uint32_t k = 0; k < g->nodes[i].n_inputs; k++)
            last_use[g->nodes[i].inputs[k]] = lv->node_step[i];
    for (kiln_id v = 0; v < g->n_values; v++)
        p->root[v] = v;
    for (size_t i = 0; !expose && i < g->n_nodes; i++) {
        const kiln_node *n = kiln_graph_node(g, (kiln_id)i);
        if (p->l.values[n->output].kind != KILN_CG_BUF_NONE || n->n_inputs < 1 || p->unstored[n->inputs[0]])
            continue;
        /* A slice that is one block of its operand (kiln_cg_slice_view) is a
         * view at an offset, of a workspace value only (the buffers of model
         * inputs, outputs and parameters are not addressed by offset). */
        uint64_t view_off = 0;
        bool slice_view = kiln_cg_slice_view(g, n, &view_off);
        if (!(kiln_op_is_view(n->op) || n->op == KILN_OP_CONSTANT || slice_view))
            continue;
        kiln_id r = p->root[n->inputs[0]];
        if (slice_view && (g->values[r].kind != KILN_VALUE_NODE || p->l.values[r].kind != KILN_CG_BUF_NONE))
            continue;
        if (p->plan && g->values[r].kind == KILN_VALUE_NODE && p->l.values[r].kind == KILN_CG_BUF_NONE) {
            uint32_t until = last_use[n->output] > lv->node_step[i] ? last_use[n->output] : lv->node_step[i];
            if (!alias_safe(g, lv, r, until))
                continue;
            if (last_use[r] < until) /* later aliases of the same root see the longer life */
                last_use[r] = until;
        }
        p->alias[n->output] = true;
        p->root[n->output] = r;
        p->alias_off[n->output] = p->alias_off[n->inputs[0]] + view_off;
    }
    free(last_use);
    return KILN_OK;
}

/* Workspace: unbatched regions (the plan's, then one each for values it has
 * no place for), the shared scratch, then batched regions likewise, which
 * start after all fixed ones. False when it would be too large. */
static bool place_workspace(placer *p, const uint64_t *node_scratch)
{
    const kiln_graph *g = p->g;
    kiln_cg_placement *l = &p->l;
    uint64_t fixed = p->plan ? g->mem_fixed_bytes : 0, per = p->plan ? g->mem_batch_bytes : 0;
    if (fixed > KILN_CG_MAX_SCRATCH * 16 || per > KILN_CG_MAX_SCRATCH * 16)
        return false;
    for (int pass = 0; pass < 2; pass++) {
        bool want_batched = pass == 1;
        for (size_t i = 0; i < g->n_nodes; i++) {
            const kiln_node *n = kiln_graph_node(g, (kiln_id)i);
            const kiln_value *val = kiln_graph_value(g, n->output);
            kiln_cg_buffer *b = &l->values[n->output];
            if (b->kind != KILN_CG_BUF_NONE || p->unstored[n->output] || p->alias[n->output] ||
                val->type.shape.batched != want_batched)
                continue;
            if (p->plan && val->mem != KILN_MEM_NONE && p->lv.needs_memory[n->output]) {
                /* batched: fixed part filled in below */
                *b = (kiln_cg_buffer){KILN_CG_BUF_WORKSPACE, 0, want_batched ? 0 : val->mem_offset,
                                      want_batched ? val->mem_offset : 0};
                continue;
            }
            uint64_t bytes = kiln_value_bytes(g, n->output); /* 0: too large */
            uint64_t *at = want_batched ? &per : &fixed;
            *b = (kiln_cg_buffer){KILN_CG_BUF_WORKSPACE, 0, want_batched ? 0 : *at, want_batched ? *at : 0};
            if (bytes == 0 || bytes > KILN_CG_MAX_SCRATCH || *at > KILN_CG_MAX_SCRATCH * 16)
                return false;
            *at += round_up(bytes);
        }
        if (!want_batched) {
            l->scratch = (kiln_cg_buffer){KILN_CG_BUF_WORKSPACE, 0, fixed, 0};
            fixed += round_up(p->scratch_fixed);
            l->scratch_shared_bytes = round_up(p->scratch_fixed);
            for (size_t i = 0; node_scratch && i < g->n_nodes; i++)
                if (node_scratch[i] != 0 && l->node_scratch[i].kind == KILN_CG_BUF_NONE)
                    l->node_scratch[i] = l->scratch;
        }
    }
    for (kiln_id v = 0; v < g->n_values; v++) {
        kiln_cg_buffer *b = &l->values[v];
        if (b->kind == KILN_CG_BUF_WORKSPACE && kiln_graph_value(g, v)->type.shape.batched &&
            g->values[v].kind == KILN_VALUE_NODE && b->offset == 0)
            b->offset = fixed;
    }
    for (kiln_id v = 0; v < g->n_values; v++)
        if (p->alias[v]) {
            l->values[v] = l->values[p->root[v]];
            l->values[v].offset += p->alias_off[v];
        }
    l->fixed_bytes = fixed;
    l->per_batch_bytes = per;
    return true;
}

kiln_status kiln_cg_place_buffers(const kiln_graph *g, bool expose, const bool *stored, const uint64_t *node_scratch,
                                  kiln_cg_placement *out, kiln_diag *d)
{
    memset(out, 0, sizeof *out);
    kiln_status st = check_model_name(g, d);
    if (st != KILN_OK)
        return st;
    for (size_t i = 0; node_scratch && i < g->n_nodes; i++)
        if (node_scratch[i] > KILN_CG_MAX_SCRATCH) {
            kiln_diag_error(d, (kiln_loc){0}, "model '%s': a kernel's scratch buffer would need more than "
                            "%llu bytes", g->name, (unsigned long long)KILN_CG_MAX_SCRATCH);
            return KILN_ERR_UNSUPPORTED;
        }
    placer p;
    memset(&p, 0, sizeof p);
    p.g = g;
    const size_t nv = g->n_values ? g->n_values : 1;
    p.l.n_values = g->n_values;
    p.l.values = calloc(nv, sizeof *p.l.values);
    p.l.node_scratch = calloc(g->n_nodes ? g->n_nodes : 1, sizeof *p.l.node_scratch);
    p.unstored = calloc(nv, 1);
    p.root = malloc(nv * sizeof *p.root);
    p.alias = calloc(nv, 1);
    p.alias_off = calloc(nv, sizeof *p.alias_off);
    if (!p.l.values || !p.l.node_scratch || !p.unstored || !p.root || !p.alias || !p.alias_off) {
        st = KILN_ERR_OUT_OF_MEMORY;
        goto fail;
    }
    if ((st = plan_names(g, &p.l, d)) != KILN_OK)
        goto fail;
    for (size_t i = 0; i < g->n_inputs; i++)
        p.l.batched |= kiln_graph_value(g, g->inputs[i])->type.shape.batched;
    /* The passes' memory plan, unless every value is exposed. */
    p.plan = !expose && has_plan(g);
    if ((st = place_scratch(&p, node_scratch, d)) != KILN_OK)
        goto fail;
    if (p.plan && (st = kiln_liveness_compute(g, &p.lv)) != KILN_OK) {
        if (st != KILN_ERR_OUT_OF_MEMORY)
            kiln_diag_error(d, (kiln_loc){0}, "model '%s': the memory plan's sizes overflow", g->name);
        goto fail;
    }
    place_model_buffers(&p);
    for (kiln_id v = 0; stored && v < g->n_values; v++)
        p.unstored[v] = !stored[v] && p.l.values[v].kind == KILN_CG_BUF_NONE;
    if ((st = find_aliases(&p, expose)) != KILN_OK)
        goto fail;
    if (!place_workspace(&p, node_scratch)) {
        kiln_diag_error(d, (kiln_loc){0}, "model '%s': the workspace would exceed %llu bytes", g->name,
                        (unsigned long long)(KILN_CG_MAX_SCRATCH * 16));
        st = KILN_ERR_UNSUPPORTED;
        goto fail;
    }
    p.l.planned = p.plan;
    *out = p.l;
    p.l = (kiln_cg_placement){0};
    placer_release(&p);
    return KILN_OK;
fail:
    placer_release(&p);
    kiln_cg_placement_release(&p.l);
    return st;
}
