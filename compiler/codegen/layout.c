/* compiler/codegen/layout.c: the buffer of every value and the workspace
 * layout (see layout.h), and the C spellings of the model's names. */
#include "layout.h"

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

bool kiln_cg_op_is_alias(kiln_op op)
{
    return op == KILN_OP_FLATTEN || op == KILN_OP_RESHAPE || op == KILN_OP_IDENTITY || op == KILN_OP_DROPOUT;
}

void kiln_cg_layout_release(kiln_cg_layout *l)
{
    if (!l)
        return;
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
static kiln_status plan_names(const kiln_graph *g, kiln_cg_layout *l, kiln_diag *d)
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

kiln_status kiln_cg_layout_plan(const kiln_graph *g, bool expose, uint64_t scratch_fixed,
                                uint64_t scratch_per_batch, kiln_cg_layout *out, kiln_diag *d)
{
    kiln_cg_layout l;
    memset(&l, 0, sizeof l);
    memset(out, 0, sizeof *out);
    bool ident = g->name[0] && !(g->name[0] >= '0' && g->name[0] <= '9');
    for (const char *p = g->name; *p; p++)
        ident &= (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_';
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
    if (scratch_fixed > KILN_CG_MAX_SCRATCH || scratch_per_batch > KILN_CG_MAX_SCRATCH) {
        kiln_diag_error(d, (kiln_loc){0}, "model '%s': a kernel's scratch buffer (im2col) would need more than "
                        "%llu bytes", g->name, (unsigned long long)KILN_CG_MAX_SCRATCH);
        return KILN_ERR_UNSUPPORTED;
    }
    l.n_values = g->n_values;
    l.values = calloc(g->n_values ? g->n_values : 1, sizeof *l.values);
    if (!l.values)
        return KILN_ERR_OUT_OF_MEMORY;
    kiln_status st = plan_names(g, &l, d);
    if (st != KILN_OK) {
        kiln_cg_layout_release(&l);
        return st;
    }
    for (size_t i = 0; i < g->n_inputs; i++)
        l.batched |= kiln_graph_value(g, g->inputs[i])->type.shape.batched;

    /* Inputs, parameters, model outputs and aliases first. */
    for (kiln_id v = 0; v < g->n_values; v++) {
        const kiln_value *val = kiln_graph_value(g, v);
        kiln_cg_buffer *b = &l.values[v];
        if (val->type.shape.batched) {
            int64_t e = kiln_shape_elements_per_item(&val->type.shape);
            uint64_t bytes = e < 0 || (uint64_t)e > UINT64_MAX / 4 ? UINT64_MAX : (uint64_t)e * 4u;
            if (bytes > l.max_item_bytes)
                l.max_item_bytes = bytes;
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
    /* Aliases in node order, so an alias of an alias resolves to the root. */
    for (size_t i = 0; !expose && i < g->n_nodes; i++) {
        const kiln_node *n = kiln_graph_node(g, (kiln_id)i);
        kiln_cg_buffer *b = &l.values[n->output];
        if (b->kind != KILN_CG_BUF_NONE || n->n_inputs < 1)
            continue;
        if (kiln_cg_op_is_alias(n->op) || n->op == KILN_OP_CONSTANT)
            *b = l.values[n->inputs[0]];
    }
    /* Workspace: unbatched regions, the fixed scratch, then batched regions. */
    uint64_t fixed = 0, per = 0;
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln_node *n = kiln_graph_node(g, (kiln_id)i);
        const kiln_value *val = kiln_graph_value(g, n->output);
        kiln_cg_buffer *b = &l.values[n->output];
        if (b->kind != KILN_CG_BUF_NONE || val->type.shape.batched)
            continue;
        int64_t e = kiln_shape_elements(&val->type.shape, 1);
        *b = (kiln_cg_buffer){KILN_CG_BUF_WORKSPACE, 0, fixed, 0};
        if (e < 0 || (uint64_t)e > KILN_CG_MAX_SCRATCH / 4 || fixed > KILN_CG_MAX_SCRATCH * 16)
            goto too_large;
        fixed += round_up((uint64_t)e * 4u);
    }
    l.scratch = (kiln_cg_buffer){KILN_CG_BUF_WORKSPACE, 0, fixed, 0};
    l.scratch_fixed_bytes = round_up(scratch_fixed);
    fixed += l.scratch_fixed_bytes;
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln_node *n = kiln_graph_node(g, (kiln_id)i);
        const kiln_value *val = kiln_graph_value(g, n->output);
        kiln_cg_buffer *b = &l.values[n->output];
        if (b->kind != KILN_CG_BUF_NONE)
            continue;
        int64_t e = kiln_shape_elements_per_item(&val->type.shape);
        *b = (kiln_cg_buffer){KILN_CG_BUF_WORKSPACE, 0, fixed, per};
        if (e < 0 || (uint64_t)e > KILN_CG_MAX_SCRATCH / 4 || per > KILN_CG_MAX_SCRATCH * 16)
            goto too_large;
        per += round_up((uint64_t)e * 4u);
    }
    l.scratch_batched = (kiln_cg_buffer){KILN_CG_BUF_WORKSPACE, 0, fixed, per};
    l.scratch_per_batch_bytes = round_up(scratch_per_batch);
    per += l.scratch_per_batch_bytes;
    l.fixed_bytes = fixed;
    l.per_batch_bytes = per;
    *out = l;
    return KILN_OK;
too_large:
    kiln_diag_error(d, (kiln_loc){0}, "model '%s': the workspace would exceed %llu bytes", g->name,
                    (unsigned long long)(KILN_CG_MAX_SCRATCH * 16));
    kiln_cg_layout_release(&l);
    return KILN_ERR_UNSUPPORTED;
}
