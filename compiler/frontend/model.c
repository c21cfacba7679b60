/* compiler/frontend/model.c: a model's top-level keys (FORMAT.md "Top-level
 * keys"): version, name, weights, init, precision, inputs, outputs; then the
 * blocks and layers through blocks.c and layers.c. */
#include <stdio.h>
#include <string.h>

#include "fe.h"
#include "weights.h"

static const char *const top_keys[] = {"kiln",   "name",   "description", "weights", "init",
                                       "precision", "inputs", "outputs",  "blocks",  "layers", NULL};

static bool in_list(const char *const *list, const char *s)
{
    for (; *list; ++list) {
        if (strcmp(*list, s) == 0)
            return true;
    }
    return false;
}

static const char *scalar_or_kind(const kiln_yaml_node *n)
{
    return n->kind == KILN_YAML_SCALAR ? n->text : kiln_yaml_kind_name(n->kind);
}

static kiln_loc graph_loc(const kiln_fe *fe, kiln_loc loc)
{
    loc.file = fe->gfile;
    return loc;
}

static bool read_version(kiln_fe *fe, kiln_yaml_node *v)
{
    int64_t version;
    if (v->kind != KILN_YAML_SCALAR || kiln_parse_int(v->text, &version) != 0) {
        kiln_fe_error(fe, KILN_ERR_PARSE, v->loc, "'kiln' is the format version, an integer (write 'kiln: 1'), got '%s'",
                      scalar_or_kind(v));
        return false;
    }
    if (version != 1) {
        kiln_fe_error(fe, KILN_ERR_UNSUPPORTED, v->loc,
                      "format version %lld is not supported: this kiln reads version 1", (long long)version);
        return false;
    }
    return true;
}

static void read_init(kiln_fe *fe, kiln_yaml_node *v)
{
    if (v->kind != KILN_YAML_MAP) {
        kiln_fe_error(fe, KILN_ERR_PARSE, v->loc, "'init' must be a mapping {random: SEED}");
        return;
    }
    for (size_t i = 0; i < v->count; ++i) {
        if (strcmp(v->pairs[i].key->text, "random") != 0)
            kiln_fe_error(fe, KILN_ERR_PARSE, v->pairs[i].key->loc, "unknown key '%s' in 'init' (it takes random)",
                          v->pairs[i].key->text);
    }
    const kiln_yaml_pair *p = kiln_yaml_get_pair(v, "random");
    if (p == NULL) {
        kiln_fe_error(fe, KILN_ERR_PARSE, v->loc, "'init' needs 'random: SEED'");
        return;
    }
    int64_t seed;
    if (p->value->kind != KILN_YAML_SCALAR || kiln_parse_int(p->value->text, &seed) != 0 || seed < 0) {
        kiln_fe_error(fe, KILN_ERR_PARSE, p->value->loc, "the random seed must be a non-negative integer, got '%s'",
                      scalar_or_kind(p->value));
        return;
    }
    fe->has_init = true;
    fe->seed = (uint64_t)seed;
}

static void read_weights(kiln_fe *fe, kiln_yaml_node *v)
{
    kiln_graph *g = fe->g;
    size_t n = v->kind == KILN_YAML_SEQ ? v->count : 1;
    kiln_yaml_node **entries = v->kind == KILN_YAML_SEQ ? v->items : &v;
    kiln_yaml_node **where = kiln_arena_alloc(&fe->arena, (n ? n : 1) * sizeof *where);
    if (where == NULL) {
        kiln_fe_oom(fe);
        return;
    }
    if (v->kind == KILN_YAML_MAP || kiln_yaml_is_null(v)) {
        kiln_fe_error(fe, KILN_ERR_PARSE, v->loc, "'weights' must be a file name or a list of file names");
        return;
    }
    for (size_t i = 0; i < n; ++i) {
        kiln_yaml_node *e = entries[i];
        if (e->kind != KILN_YAML_SCALAR || e->len == 0) {
            kiln_fe_error(fe, KILN_ERR_PARSE, e->loc, "a weights file name must be a non-empty string");
            return;
        }
        const char *path = e->text[0] == '/' ? e->text : kiln_arena_printf(&fe->arena, "%s%s", fe->dir, e->text);
        int index = path ? kiln_graph_add_weight_file(g, path) : -1;
        if (index < 0) {
            kiln_fe_oom(fe);
            return;
        }
        where[index] = e;
    }
    kiln_status st = kiln_weights_open(g, fe->d);
    if (st == KILN_OK)
        return;
    if (st == KILN_ERR_OUT_OF_MEMORY) {
        kiln_fe_oom(fe);
        return;
    }
    fe->weights_failed = true;
    if (fe->status == KILN_OK)
        fe->status = st;
    for (size_t i = 0; i < g->n_weight_files; ++i) {
        if (kiln_weights_file(g, (uint32_t)i) == NULL)
            kiln_fe_error(fe, st, where[i]->loc, "weights file '%s' could not be loaded (see its error)",
                          g->weight_files[i]);
    }
}

/* One model input {name, shape, dtype}. */
static void read_input(kiln_fe *fe, kiln_yaml_node *in, size_t index)
{
    static const char *const keys[] = {"name", "shape", "dtype", NULL};
    kiln_graph *g = fe->g;
    fe->input_values[index] = KILN_NO_ID;
    if (in->kind != KILN_YAML_MAP) {
        kiln_fe_error(fe, KILN_ERR_PARSE, in->loc, "an input must be a mapping {name, shape, dtype}, not %s",
                      kiln_yaml_kind_name(in->kind));
        return;
    }
    bool ok = true;
    for (size_t i = 0; i < in->count; ++i) {
        if (!in_list(keys, in->pairs[i].key->text)) {
            kiln_fe_error(fe, KILN_ERR_PARSE, in->pairs[i].key->loc,
                          "unknown key '%s' in an input (it takes name, shape, dtype)", in->pairs[i].key->text);
            ok = false;
        }
    }
    kiln_yaml_node *name = kiln_yaml_get(in, "name"), *shape = kiln_yaml_get(in, "shape");
    kiln_yaml_node *dtype = kiln_yaml_get(in, "dtype");
    if (name == NULL || shape == NULL) {
        kiln_fe_error(fe, KILN_ERR_PARSE, in->loc, "this input has no '%s'", name ? "shape" : "name");
        return;
    }
    if (name->kind != KILN_YAML_SCALAR || !kiln_fe_is_layer_name(name->text)) {
        kiln_fe_error(fe, KILN_ERR_PARSE, name->loc, "input name '%s' may only contain letters, digits, '_' and '.'",
                      scalar_or_kind(name));
        return;
    }
    const kiln_fe_binding *first = kiln_strmap_get(&fe->top, name->text);
    if (first) {
        kiln_fe_error(fe, KILN_ERR_PARSE, name->loc, "duplicate input name '%s' (first defined at line %u)",
                      name->text, first->loc.line);
        return;
    }
    /* Bound even when broken, so the layers that read it stay silent. */
    kiln_fe_binding *b = kiln_arena_alloc(&fe->arena, sizeof *b);
    if (b == NULL) {
        kiln_fe_oom(fe);
        return;
    }
    b->ref.kind = KILN_FE_REF_INPUT;
    b->ref.index = (uint32_t)index;
    b->loc = name->loc;
    b->is_input = true;
    if (kiln_strmap_put(&fe->top, name->text, b) != 0 || kiln_strmap_put(&fe->reserved, name->text, b) != 0) {
        kiln_fe_oom(fe);
        return;
    }

    kiln_type type;
    memset(&type, 0, sizeof type);
    type.dtype = KILN_F32;
    if (dtype) {
        kiln_dtype dt;
        if (dtype->kind != KILN_YAML_SCALAR || kiln_dtype_parse(dtype->text, &dt) != 0) {
            kiln_fe_error(fe, KILN_ERR_PARSE, dtype->loc, "unknown dtype '%s' (inputs are f32)", scalar_or_kind(dtype));
            ok = false;
        } else if (dt != KILN_F32) {
            kiln_fe_error(fe, KILN_ERR_UNSUPPORTED, dtype->loc,
                          "input dtype %s is not supported: inputs are f32 in format version 1", dtype->text);
            ok = false;
        }
    }
    if (shape->kind != KILN_YAML_SEQ || shape->count == 0 || shape->count > KILN_MAX_RANK) {
        kiln_fe_error(fe, KILN_ERR_PARSE, shape->loc, "an input's shape must be a list of 1 to %d dimensions",
                      KILN_MAX_RANK);
        return;
    }
    type.shape.rank = (int)shape->count;
    for (size_t i = 0; i < shape->count; ++i) {
        kiln_yaml_node *e = shape->items[i];
        int64_t v;
        if (e->kind == KILN_YAML_SCALAR && kiln_parse_int(e->text, &v) == 0) {
            if (v < 1 || v > KILN_MAX_DIM) {
                kiln_fe_error(fe, KILN_ERR_SHAPE, e->loc, "dimension %zu of input '%s' is %lld, outside 1..2147483647",
                              i, name->text, (long long)v);
                ok = false;
            }
            type.shape.dims[i] = v;
            continue;
        }
        if (i == 0 && e->kind == KILN_YAML_SCALAR && kiln_fe_is_identifier(e->text)) {
            if (g->batch_name && strcmp(g->batch_name, e->text) != 0) {
                kiln_fe_error(fe, KILN_ERR_PARSE, e->loc,
                              "input '%s' calls the batch dimension '%s', but an earlier input calls it '%s'; all "
                              "inputs must use the same name",
                              name->text, e->text, g->batch_name);
                ok = false;
            } else if (g->batch_name == NULL) {
                g->batch_name = kiln_arena_strdup(&g->arena, e->text);
                if (g->batch_name == NULL) {
                    kiln_fe_oom(fe);
                    return;
                }
            }
            type.shape.batched = true;
            type.shape.dims[0] = KILN_DIM_BATCH;
            continue;
        }
        if (i == 0)
            kiln_fe_error(fe, KILN_ERR_PARSE, e->loc,
                          "dimension 0 of input '%s' must be a positive integer or a name (the batch), got '%s'",
                          name->text, scalar_or_kind(e));
        else
            kiln_fe_error(fe, KILN_ERR_PARSE, e->loc, "dimension %zu of input '%s' must be a positive integer, got '%s'",
                          i, name->text, scalar_or_kind(e));
        ok = false;
    }
    if (!ok)
        return;
    int64_t count = kiln_shape_elements_per_item(&type.shape);
    int64_t limit = g->max_elements > 0 ? g->max_elements : KILN_DEFAULT_MAX_ELEMENTS;
    if (count < 0 || count > limit) {
        kiln_fe_error(fe, KILN_ERR_SHAPE, shape->loc, "input '%s' has more than %lld elements%s", name->text,
                      (long long)limit, type.shape.batched ? " per batch item" : "");
        return;
    }
    kiln_id id = kiln_graph_add_input(g, name->text, &type, graph_loc(fe, name->loc));
    if (id == KILN_NO_ID) {
        kiln_fe_oom(fe);
        return;
    }
    fe->input_values[index] = id;
}

static void read_inputs(kiln_fe *fe, kiln_yaml_node *inputs)
{
    if (inputs->kind != KILN_YAML_SEQ || inputs->count == 0) {
        kiln_fe_error(fe, KILN_ERR_PARSE, inputs->loc, "'inputs' must be a non-empty list of {name, shape, dtype}");
        return;
    }
    fe->input_values = kiln_arena_alloc(&fe->arena, inputs->count * sizeof *fe->input_values);
    if (fe->input_values == NULL) {
        kiln_fe_oom(fe);
        return;
    }
    fe->n_inputs = inputs->count;
    for (size_t i = 0; i < inputs->count && !fe->oom; ++i)
        read_input(fe, inputs->items[i], i);
}

static kiln_id ref_value(const kiln_fe *fe, kiln_fe_ref r)
{
    if (r.kind == KILN_FE_REF_INPUT)
        return r.index < fe->n_inputs ? fe->input_values[r.index] : KILN_NO_ID;
    if (r.kind == KILN_FE_REF_LAYER)
        return r.index < fe->n_layers ? fe->layers[r.index].value : KILN_NO_ID;
    return KILN_NO_ID;
}

/* The C spelling of a value name (FORMAT.md "Generated names"). */
static const char *c_name(kiln_fe *fe, const char *name)
{
    size_t len = strlen(name);
    char *s = kiln_arena_alloc(&fe->arena, len + 2);
    if (s == NULL)
        return NULL;
    size_t j = 0;
    if (name[0] >= '0' && name[0] <= '9')
        s[j++] = '_';
    for (size_t i = 0; i < len; ++i) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        s[j++] = ok ? c : '_';
    }
    s[j] = '\0';
    return s;
}

typedef struct api_name {
    const char *kind; /* "input" / "output" */
    const char *name;
    kiln_loc loc;
} api_name;

static void check_api_name(kiln_fe *fe, kiln_strmap *seen, const char *kind, const char *name, kiln_loc loc)
{
    const char *c = c_name(fe, name);
    api_name *a = kiln_arena_alloc(&fe->arena, sizeof *a);
    if (c == NULL || a == NULL) {
        kiln_fe_oom(fe);
        return;
    }
    const api_name *first = kiln_strmap_get(seen, c);
    if (first) {
        kiln_fe_error(fe, KILN_ERR_PARSE, loc,
                      "%s '%s' and %s '%s' (line %u) have the same name '%s' in the generated C API", kind, name,
                      first->kind, first->name, first->loc.line, c);
        return;
    }
    a->kind = kind;
    a->name = name;
    a->loc = loc;
    if (kiln_strmap_put(seen, c, a) != 0)
        kiln_fe_oom(fe);
}

static void add_output(kiln_fe *fe, kiln_strmap *seen, const char *name, kiln_fe_ref ref, kiln_loc loc)
{
    kiln_id v = ref_value(fe, ref);
    if (v == KILN_NO_ID)
        return; /* its layer failed and said so */
    if (kiln_graph_add_output(fe->g, v) != KILN_OK) {
        kiln_fe_oom(fe);
        return;
    }
    check_api_name(fe, seen, "output", name, loc);
}

static void read_outputs(kiln_fe *fe, kiln_yaml_node *outputs, kiln_strmap *seen)
{
    if (outputs == NULL) {
        if (fe->last.kind == KILN_FE_REF_LAYER)
            add_output(fe, seen, fe->layers[fe->last.index].value_name, fe->last, fe->last_loc);
        else if (fe->last.kind == KILN_FE_REF_INPUT && ref_value(fe, fe->last) != KILN_NO_ID)
            add_output(fe, seen, fe->g->values[ref_value(fe, fe->last)].name, fe->last, fe->last_loc);
        return;
    }
    size_t n = outputs->kind == KILN_YAML_SEQ ? outputs->count : 1;
    kiln_yaml_node **items = outputs->kind == KILN_YAML_SEQ ? outputs->items : &outputs;
    if (outputs->kind == KILN_YAML_MAP || n == 0 || kiln_yaml_is_null(outputs)) {
        kiln_fe_error(fe, KILN_ERR_PARSE, outputs->loc, "'outputs' must be a non-empty list of names");
        return;
    }
    kiln_strmap listed;
    kiln_strmap_init(&listed, &fe->arena);
    for (size_t i = 0; i < n && !fe->oom; ++i) {
        kiln_yaml_node *e = items[i];
        if (e->kind != KILN_YAML_SCALAR) {
            kiln_fe_error(fe, KILN_ERR_PARSE, e->loc, "an output is the name of a layer, not %s",
                          kiln_yaml_kind_name(e->kind));
            continue;
        }
        const kiln_yaml_node *twice = kiln_strmap_get(&listed, e->text);
        if (twice) {
            kiln_fe_error(fe, KILN_ERR_PARSE, e->loc, "output '%s' is listed twice", e->text);
            continue;
        }
        if (kiln_strmap_put(&listed, e->text, e) != 0) {
            kiln_fe_oom(fe);
            return;
        }
        const kiln_fe_binding *b = kiln_strmap_get(&fe->top, e->text);
        if (b == NULL) {
            kiln_fe_error(fe, KILN_ERR_PARSE, e->loc,
                          "output '%s' is not defined (outputs name model inputs or top-level layers; a layer "
                          "inside a block instance I is only visible as I)",
                          e->text);
            continue;
        }
        add_output(fe, seen, e->text, b->ref, e->loc);
    }
}

kiln_status kiln_fe_load_model(kiln_fe *fe, kiln_yaml_node *root)
{
    kiln_loc start = {fe->file, 1, 1};
    if (root == NULL || kiln_yaml_is_null(root)) {
        kiln_fe_error(fe, KILN_ERR_PARSE, start, "the file holds no model (it starts with 'kiln: 1')");
        return fe->status;
    }
    if (root->kind != KILN_YAML_MAP) {
        kiln_fe_error(fe, KILN_ERR_PARSE, root->loc,
                      "a model is a mapping with kiln, name, inputs and layers, not %s", kiln_yaml_kind_name(root->kind));
        return fe->status;
    }
    for (size_t i = 0; i < root->count; ++i) {
        const kiln_yaml_node *k = root->pairs[i].key;
        if (!in_list(top_keys, k->text))
            kiln_fe_error(fe, KILN_ERR_PARSE, k->loc,
                          "unknown top-level key '%s' (a model has kiln, name, description, weights, init, "
                          "precision, inputs, outputs, blocks, layers)",
                          k->text);
    }
    static const char *const required[] = {"kiln", "name", "inputs", "layers"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; ++i) {
        if (kiln_yaml_get(root, required[i]) == NULL) {
            kiln_fe_error(fe, KILN_ERR_PARSE, root->loc, "the model has no '%s'%s", required[i],
                          i == 0 ? " (the format version: write 'kiln: 1')" : "");
        }
    }
    kiln_yaml_node *version = kiln_yaml_get(root, "kiln");
    if (version && !read_version(fe, version))
        return fe->status; /* another version: nothing else can be trusted */

    const char *name = "model";
    kiln_yaml_node *nn = kiln_yaml_get(root, "name");
    if (nn) {
        if (nn->kind != KILN_YAML_SCALAR || !kiln_fe_is_identifier(nn->text))
            kiln_fe_error(fe, KILN_ERR_PARSE, nn->loc,
                          "model name '%s' must be a C identifier ([A-Za-z_][A-Za-z0-9_]*): it prefixes the "
                          "generated symbols",
                          scalar_or_kind(nn));
        else
            name = nn->text;
    }
    fe->g = kiln_graph_create(name);
    if (fe->g == NULL) {
        kiln_fe_oom(fe);
        return fe->status;
    }
    kiln_graph *g = fe->g;
    if (fe->max_elements > 0)
        g->max_elements = fe->max_elements;
    fe->gfile = kiln_arena_strdup(&g->arena, fe->file);
    if (fe->gfile == NULL) {
        kiln_fe_oom(fe);
        return fe->status;
    }

    kiln_yaml_node *v;
    if ((v = kiln_yaml_get(root, "description")) != NULL) {
        if (v->kind != KILN_YAML_SCALAR || kiln_yaml_is_null(v))
            kiln_fe_error(fe, KILN_ERR_PARSE, v->loc, "'description' must be text");
        else if ((g->description = kiln_arena_strdup(&g->arena, v->text)) == NULL)
            kiln_fe_oom(fe);
    }
    if ((v = kiln_yaml_get(root, "precision")) != NULL) {
        if (v->kind != KILN_YAML_SCALAR || kiln_precision_parse(v->text, &g->precision) != 0)
            kiln_fe_error(fe, KILN_ERR_PARSE, v->loc, "'precision' must be one of f32, bf16, f16, int8, auto, got '%s'",
                          scalar_or_kind(v));
    }
    if ((v = kiln_yaml_get(root, "init")) != NULL)
        read_init(fe, v);
    if ((v = kiln_yaml_get(root, "weights")) != NULL)
        read_weights(fe, v);
    if ((v = kiln_yaml_get(root, "inputs")) != NULL && !fe->oom)
        read_inputs(fe, v);
    if (!fe->oom)
        kiln_fe_blocks_read(fe, kiln_yaml_get(root, "blocks"));

    kiln_yaml_node *layers = kiln_yaml_get(root, "layers");
    if (layers && (layers->kind != KILN_YAML_SEQ || layers->count == 0)) {
        kiln_fe_error(fe, KILN_ERR_PARSE, layers->loc, "'layers' must be a non-empty list");
        layers = NULL;
    }
    if (layers && !fe->oom) {
        kiln_fe_expand(fe, layers);
        for (size_t i = 0; i < fe->n_layers && !fe->oom; ++i)
            kiln_fe_lower(fe, i);
    }

    kiln_strmap seen;
    kiln_strmap_init(&seen, &fe->arena);
    for (size_t i = 0; i < fe->n_inputs && !fe->oom; ++i) {
        kiln_id id = fe->input_values[i];
        if (id != KILN_NO_ID)
            check_api_name(fe, &seen, "input", g->values[id].name, g->values[id].loc);
    }
    if (layers && !fe->oom)
        read_outputs(fe, kiln_yaml_get(root, "outputs"), &seen);
    if (fe->status == KILN_OK && g->n_outputs == 0)
        kiln_fe_error(fe, KILN_ERR_PARSE, root->loc, "the model has no outputs");
    return fe->status;
}
