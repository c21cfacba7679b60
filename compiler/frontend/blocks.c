/* compiler/frontend/blocks.c: block templates and the expansion of the
 * model's layers into a flat list (FORMAT.md "Blocks").
 *
 * Templates are read and checked once (their keys, layer names, `$arg`
 * references, block recursion), reporting at the offending node. Expansion
 * then walks the layer lists: each scope sees only its own inputs and earlier
 * layers, an instance `I` of a template adds its layers as `I.L`, and the
 * instance's output value takes the name `I`. Whatever failed is bound to an
 * error reference, so the layers that read it stay silent. */
#include <stdio.h>
#include <string.h>

#include "fe.h"

/* A model naming an op that only compiler passes make (reorder, convert, ...). */
#define IR_ONLY_MESSAGE "op '%s' is made by the compiler's passes (IR only, docs/ir.md), not a model op"

typedef struct block {
    const char *name;
    kiln_yaml_node *node;      /* the template's mapping */
    kiln_yaml_node *key;       /* its name in `blocks:` */
    kiln_fe_arg *args;         /* node NULL: required */
    size_t n_args;
    const char **inputs;
    size_t n_inputs;
    kiln_strmap input_names;   /* name -> kiln_fe_binding (ref NONE) */
    kiln_yaml_node *layers;    /* a non-empty list */
    kiln_yaml_node *output;    /* a scalar, or NULL: the last layer */
    kiln_strmap names;         /* layer name -> its `name` scalar */
    bool bad;                  /* broken: instances expand to nothing, silently */
    int visit;                 /* recursion check: 0 new, 1 on the path, 2 done */
    bool active;               /* being expanded (recursion through `use: $arg`) */
} block;

typedef struct scope {
    kiln_strmap visible;       /* name -> kiln_fe_binding */
    const kiln_strmap *all;    /* every layer name of the list -> its `name` scalar */
    kiln_fe_ref prev;
    const char *prefix;        /* "" at top level, "I." inside instance I */
    const kiln_fe_env *env;
    const block *t;            /* the template; NULL at top level */
    const char *instance;
    kiln_loc instance_loc;
    kiln_precision precision;
    int depth;
} scope;

static const char *const instance_keys[] = {"name", "use", "input", "inputs", "with", "precision", NULL};

static bool in_list(const char *const *list, const char *s)
{
    for (; *list; ++list) {
        if (strcmp(*list, s) == 0)
            return true;
    }
    return false;
}

static kiln_fe_binding *new_binding(kiln_fe *fe, kiln_fe_ref ref, kiln_loc loc, bool is_input)
{
    kiln_fe_binding *b = kiln_arena_alloc(&fe->arena, sizeof *b);
    if (b == NULL) {
        kiln_fe_oom(fe);
        return NULL;
    }
    b->ref = ref;
    b->loc = loc;
    b->is_input = is_input;
    return b;
}

static void put(kiln_fe *fe, kiln_strmap *m, const char *key, void *value)
{
    if (value == NULL || kiln_strmap_put(m, key, value) != 0)
        kiln_fe_oom(fe);
}

static kiln_fe_ref ref_of(kiln_fe_ref_kind kind, uint32_t index)
{
    kiln_fe_ref r = {kind, index};
    return r;
}

static const kiln_fe_arg *find_arg(const block *b, const char *name)
{
    for (size_t i = 0; i < b->n_args; ++i) {
        if (strcmp(b->args[i].name, name) == 0)
            return &b->args[i];
    }
    return NULL;
}

static void arg_names(const block *b, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < b->n_args && n + 1 < size; ++i)
        n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? ", " : "", b->args[i].name);
    if (b->n_args == 0)
        snprintf(buf, size, "none");
}

/* ---- reading a template ------------------------------------------------- */

static bool read_args(kiln_fe *fe, block *b, kiln_yaml_node *args)
{
    if (args == NULL)
        return true;
    size_t n = args->kind == KILN_YAML_SCALAR ? 0 : args->count;
    if (n > KILN_FE_MAX_ARGS) {
        kiln_fe_error(fe, KILN_ERR_PARSE, args->loc, "block '%s' has %zu arguments; at most %d are allowed", b->name,
                      n, KILN_FE_MAX_ARGS);
        return false;
    }
    if (args->kind == KILN_YAML_SCALAR) {
        kiln_fe_error(fe, KILN_ERR_PARSE, args->loc,
                      "block '%s': 'args' must be a mapping of names to defaults, or a list of names", b->name);
        return false;
    }
    b->args = n ? kiln_arena_alloc(&fe->arena, n * sizeof *b->args) : NULL;
    if (n && b->args == NULL) {
        kiln_fe_oom(fe);
        return false;
    }
    bool ok = true;
    for (size_t i = 0; i < n; ++i) {
        kiln_yaml_node *name = args->kind == KILN_YAML_MAP ? args->pairs[i].key : args->items[i];
        kiln_yaml_node *def = args->kind == KILN_YAML_MAP ? args->pairs[i].value : NULL;
        if (name->kind != KILN_YAML_SCALAR || !kiln_fe_is_identifier(name->text)) {
            kiln_fe_error(fe, KILN_ERR_PARSE, name->loc,
                          "block '%s': argument names are identifiers ([A-Za-z_][A-Za-z0-9_]*), got '%s'",
                          b->name, name->kind == KILN_YAML_SCALAR ? name->text : kiln_yaml_kind_name(name->kind));
            ok = false;
            continue;
        }
        if (find_arg(b, name->text)) {
            kiln_fe_error(fe, KILN_ERR_PARSE, name->loc, "block '%s': argument '%s' is listed twice", b->name,
                          name->text);
            ok = false;
            continue;
        }
        kiln_fe_arg *a = &b->args[b->n_args++];
        a->name = name->text;
        a->node = def && !kiln_yaml_is_null(def) ? def : NULL;
        a->env = NULL;
    }
    return ok;
}

static bool read_inputs(kiln_fe *fe, block *b, kiln_yaml_node *inputs)
{
    kiln_strmap_init(&b->input_names, &fe->arena);
    if (inputs == NULL)
        return true;
    if (inputs->kind != KILN_YAML_SEQ) {
        kiln_fe_error(fe, KILN_ERR_PARSE, inputs->loc, "block '%s': 'inputs' must be a list of names", b->name);
        return false;
    }
    b->inputs = inputs->count ? kiln_arena_alloc(&fe->arena, inputs->count * sizeof *b->inputs) : NULL;
    if (inputs->count && b->inputs == NULL) {
        kiln_fe_oom(fe);
        return false;
    }
    bool ok = true;
    for (size_t i = 0; i < inputs->count; ++i) {
        kiln_yaml_node *n = inputs->items[i];
        if (n->kind != KILN_YAML_SCALAR || !kiln_fe_is_layer_name(n->text)) {
            kiln_fe_error(fe, KILN_ERR_PARSE, n->loc,
                          "block '%s': an input name may only contain letters, digits, '_' and '.'", b->name);
            ok = false;
            continue;
        }
        kiln_fe_binding *first = kiln_strmap_get(&b->input_names, n->text);
        if (first) {
            kiln_fe_error(fe, KILN_ERR_PARSE, n->loc, "block '%s': input '%s' is listed twice", b->name, n->text);
            ok = false;
            continue;
        }
        b->inputs[b->n_inputs++] = n->text;
        put(fe, &b->input_names, n->text, new_binding(fe, ref_of(KILN_FE_REF_NONE, 0), n->loc, true));
    }
    return ok;
}

static block *read_block(kiln_fe *fe, kiln_yaml_node *key, kiln_yaml_node *t)
{
    static const char *const keys[] = {"args", "inputs", "layers", "output", NULL};
    block *b = kiln_arena_alloc(&fe->arena, sizeof *b);
    if (b == NULL) {
        kiln_fe_oom(fe);
        return NULL;
    }
    b->name = key->text;
    b->key = key;
    b->node = t;
    kiln_strmap_init(&b->names, &fe->arena);
    kiln_strmap_init(&b->input_names, &fe->arena);
    if (!kiln_fe_is_layer_name(key->text)) {
        kiln_fe_error(fe, KILN_ERR_PARSE, key->loc,
                      "block name '%s' may only contain letters, digits, '_' and '.'", key->text);
        b->bad = true;
    }
    if (t->kind != KILN_YAML_MAP) {
        kiln_fe_error(fe, KILN_ERR_PARSE, t->loc, "block '%s' must be a mapping with 'layers' (and 'args', "
                      "'inputs', 'output')", b->name);
        b->bad = true;
        return b;
    }
    for (size_t i = 0; i < t->count; ++i) {
        const kiln_yaml_node *k = t->pairs[i].key;
        if (!in_list(keys, k->text)) {
            kiln_fe_error(fe, KILN_ERR_PARSE, k->loc,
                          "unknown key '%s' in block '%s' (a block has args, inputs, layers, output)", k->text,
                          b->name);
            b->bad = true;
        }
    }
    if (!read_args(fe, b, kiln_yaml_get(t, "args")))
        b->bad = true;
    if (!read_inputs(fe, b, kiln_yaml_get(t, "inputs")))
        b->bad = true;
    b->layers = kiln_yaml_get(t, "layers");
    if (b->layers == NULL) {
        kiln_fe_error(fe, KILN_ERR_PARSE, t->loc, "block '%s' has no 'layers'", b->name);
        b->bad = true;
    } else if (b->layers->kind != KILN_YAML_SEQ || b->layers->count == 0) {
        kiln_fe_error(fe, KILN_ERR_PARSE, b->layers->loc, "block '%s': 'layers' must be a non-empty list",
                      b->name);
        b->bad = true;
        b->layers = NULL;
    }
    b->output = kiln_yaml_get(t, "output");
    if (b->output && (b->output->kind != KILN_YAML_SCALAR || !kiln_fe_is_layer_name(b->output->text))) {
        kiln_fe_error(fe, KILN_ERR_PARSE, b->output->loc, "block '%s': 'output' must be the name of a layer",
                      b->name);
        b->bad = true;
        b->output = NULL;
    }
    return b;
}

/* ---- static checks of a layer list -------------------------------------- */

/* Every `$name` among the values under n must be an argument of b. */
static bool check_refs(kiln_fe *fe, kiln_yaml_node *n, const block *b)
{
    const char *name;
    switch (n->kind) {
    case KILN_YAML_SCALAR:
        if (kiln_fe_is_arg_ref(n, &name, NULL) && !find_arg(b, name)) {
            if (!(n->flags & KILN_YAML_REPORTED)) {
                char list[256];
                arg_names(b, list, sizeof list);
                kiln_fe_error(fe, KILN_ERR_PARSE, n->loc, "block '%s' has no argument '%s' (its arguments: %s)",
                              b->name, name, list);
                n->flags |= KILN_YAML_REPORTED;
            }
            return false;
        }
        return true;
    case KILN_YAML_SEQ: {
        bool ok = true;
        for (size_t i = 0; i < n->count; ++i)
            ok &= check_refs(fe, n->items[i], b);
        return ok;
    }
    case KILN_YAML_MAP: {
        bool ok = true;
        for (size_t i = 0; i < n->count; ++i)
            ok &= check_refs(fe, n->pairs[i].value, b);
        return ok;
    }
    }
    return true;
}

/* `with:` of an instance of b: known argument names, every required one
 * given. Reported at the nodes, or for L (when non-NULL) at L's place. */
static bool check_with(kiln_fe *fe, kiln_yaml_node *map, const block *b, const kiln_fe_layer *L)
{
    kiln_yaml_node *with = kiln_yaml_get(map, "with");
    bool ok = true;
    char list[256];
    arg_names(b, list, sizeof list);
    if (with && with->kind != KILN_YAML_MAP) {
        if (L)
            kiln_fe_layer_error(fe, L, with, KILN_ERR_PARSE, "'with' must be a mapping of argument values");
        else
            kiln_fe_error(fe, KILN_ERR_PARSE, with->loc, "'with' must be a mapping of argument values");
        return false;
    }
    if (with && with->kind == KILN_YAML_MAP) {
        for (size_t i = 0; i < with->count; ++i) {
            const kiln_yaml_node *k = with->pairs[i].key;
            if (!find_arg(b, k->text)) {
                if (L)
                    kiln_fe_layer_error(fe, L, k, KILN_ERR_PARSE, "block '%s' has no argument '%s' (its arguments: %s)",
                                        b->name, k->text, list);
                else
                    kiln_fe_error(fe, KILN_ERR_PARSE, k->loc, "block '%s' has no argument '%s' (its arguments: %s)",
                                  b->name, k->text, list);
                ok = false;
            }
        }
    }
    for (size_t i = 0; i < b->n_args; ++i) {
        if (b->args[i].node == NULL && kiln_yaml_get(with, b->args[i].name) == NULL) {
            if (L)
                kiln_fe_layer_error(fe, L, NULL, KILN_ERR_PARSE,
                                    "block '%s' needs argument '%s' in 'with:' (it has no default)", b->name,
                                    b->args[i].name);
            else
                kiln_fe_error(fe, KILN_ERR_PARSE, map->loc,
                              "block '%s' needs argument '%s' in 'with:' (it has no default)", b->name,
                              b->args[i].name);
            ok = false;
        }
    }
    return ok;
}

static bool check_instance_keys(kiln_fe *fe, kiln_yaml_node *map)
{
    bool ok = true;
    for (size_t i = 0; i < map->count; ++i) {
        kiln_yaml_node *k = map->pairs[i].key;
        if (!in_list(instance_keys, k->text)) {
            kiln_fe_error(fe, KILN_ERR_PARSE, k->loc,
                          "unknown key '%s' in block instance (it takes name, use, input, inputs, with, precision)",
                          k->text);
            ok = false;
        }
    }
    return ok;
}

/* Checks one layer of a list (top level: t NULL). Marks it KILN_YAML_BAD when
 * it cannot be expanded; every problem is reported at its node. */
static void check_layer(kiln_fe *fe, kiln_yaml_node *item, kiln_strmap *names, const kiln_strmap *inputs,
                        const block *t)
{
    if (item->kind != KILN_YAML_MAP) {
        kiln_fe_error(fe, KILN_ERR_PARSE, item->loc, "a layer must be a mapping ({name: ..., op: ...}), not %s",
                      kiln_yaml_kind_name(item->kind));
        item->flags |= KILN_YAML_BAD;
        return;
    }
    bool bad = false;
    const kiln_yaml_pair *np = kiln_yaml_get_pair(item, "name");
    if (np == NULL) {
        kiln_fe_error(fe, KILN_ERR_PARSE, item->loc, "this layer has no 'name'");
        bad = true;
    } else if (np->value->kind != KILN_YAML_SCALAR || !kiln_fe_is_layer_name(np->value->text)) {
        kiln_fe_error(fe, KILN_ERR_PARSE, np->value->loc,
                      "layer name '%s' may only contain letters, digits, '_' and '.'%s",
                      np->value->kind == KILN_YAML_SCALAR ? np->value->text : "(not a scalar)",
                      kiln_fe_is_arg_ref(np->value, NULL, NULL) ? " (layer names cannot be block arguments)" : "");
        bad = true;
    } else {
        const char *name = np->value->text;
        const kiln_yaml_node *first = kiln_strmap_get(names, name);
        const kiln_fe_binding *in = kiln_strmap_get(inputs, name);
        if (first) {
            kiln_fe_error(fe, KILN_ERR_PARSE, np->value->loc, "duplicate layer name '%s' (first defined at line %u)",
                          name, first->loc.line);
            bad = true;
        } else {
            put(fe, names, name, np->value);
        }
        if (in) {
            kiln_fe_error(fe, KILN_ERR_PARSE, np->value->loc,
                          "layer name '%s' is already the name of an input (line %u)", name, in->loc.line);
            bad = true;
        }
    }
    const kiln_yaml_pair *op = kiln_yaml_get_pair(item, "op");
    const kiln_yaml_pair *use = kiln_yaml_get_pair(item, "use");
    if (op && use) {
        kiln_fe_error(fe, KILN_ERR_PARSE, use->key->loc, "a layer has either 'op' or 'use', not both");
        bad = true;
    } else if (!op && !use) {
        kiln_fe_error(fe, KILN_ERR_PARSE, item->loc, "this layer needs 'op' (an operation) or 'use' (a block)");
        bad = true;
    } else if (op) {
        kiln_yaml_node *v = op->value;
        kiln_op o;
        if (t && kiln_fe_is_arg_ref(v, NULL, NULL)) {
            /* checked per instance, once the op is known */
        } else if (v->kind != KILN_YAML_SCALAR) {
            kiln_fe_error(fe, KILN_ERR_PARSE, v->loc, "'op' must be the name of an op, not %s",
                          kiln_yaml_kind_name(v->kind));
            bad = true;
        } else if (kiln_fe_lookup_op(v->text, &o) != 0 && kiln_fe_op_is_ir_only(v->text)) {
            kiln_fe_error(fe, KILN_ERR_PARSE, v->loc, IR_ONLY_MESSAGE, v->text);
            bad = true;
        } else if (kiln_fe_lookup_op(v->text, &o) != 0) {
            const char *hint = kiln_fe_suggest_op(v->text);
            kiln_fe_error(fe, KILN_ERR_PARSE, v->loc, "unknown op '%s'%s%s%s", v->text, hint ? " (did you mean '" : "",
                          hint ? hint : "", hint ? "'?)" : "");
            bad = true;
        } else if (!kiln_fe_check_op_keys(fe, item, o, NULL)) {
            bad = true;
        }
    } else {
        kiln_yaml_node *v = use->value;
        if (!check_instance_keys(fe, item))
            bad = true;
        if (t && kiln_fe_is_arg_ref(v, NULL, NULL)) {
            /* checked per instance */
        } else if (v->kind != KILN_YAML_SCALAR) {
            kiln_fe_error(fe, KILN_ERR_PARSE, v->loc, "'use' must be the name of a block, not %s",
                          kiln_yaml_kind_name(v->kind));
            bad = true;
        } else {
            const block *b = kiln_strmap_get(&fe->blocks, v->text);
            if (b == NULL) {
                kiln_fe_error(fe, KILN_ERR_PARSE, v->loc, "unknown block '%s'", v->text);
                bad = true;
            } else if (!check_with(fe, item, b, NULL)) {
                bad = true;
            }
        }
    }
    if (t && !check_refs(fe, item, t))
        bad = true;
    if (bad)
        item->flags |= KILN_YAML_BAD;
}

static void check_list(kiln_fe *fe, kiln_yaml_node *layers, kiln_strmap *names, const kiln_strmap *inputs,
                       const block *t)
{
    for (size_t i = 0; i < layers->count && !fe->oom; ++i)
        check_layer(fe, layers->items[i], names, inputs, t);
}

/* ---- recursion ---------------------------------------------------------- */

static void check_recursion(kiln_fe *fe, block *b, block **path, int depth)
{
    b->visit = 1;
    path[depth] = b;
    for (size_t i = 0; b->layers && i < b->layers->count; ++i) {
        kiln_yaml_node *item = b->layers->items[i];
        kiln_yaml_node *use = kiln_yaml_get(item, "use");
        if (use == NULL || use->kind != KILN_YAML_SCALAR || (item->flags & KILN_YAML_BAD))
            continue;
        block *u = kiln_strmap_get(&fe->blocks, use->text);
        if (u == NULL)
            continue;
        if (u->visit == 0 && depth + 1 >= KILN_FE_MAX_BLOCK_DEPTH) {
            kiln_fe_error(fe, KILN_ERR_PARSE, use->loc, "blocks nested more than %d deep", KILN_FE_MAX_BLOCK_DEPTH);
            item->flags |= KILN_YAML_BAD;
            b->bad = true;
        } else if (u->visit == 1) {
            char chain[512];
            size_t n = 0;
            int from = depth;
            while (from > 0 && path[from] != u)
                from--;
            for (int k = from; k <= depth && n + 1 < sizeof chain; ++k)
                n += (size_t)snprintf(chain + n, sizeof chain - n, "%s -> ", path[k]->name);
            if (n + 1 < sizeof chain)
                snprintf(chain + n, sizeof chain - n, "%s", u->name);
            kiln_fe_error(fe, KILN_ERR_PARSE, use->loc, "block recursion: %s", chain);
            item->flags |= KILN_YAML_BAD;
            b->bad = true;
        } else if (u->visit == 0) {
            check_recursion(fe, u, path, depth + 1);
        }
    }
    b->visit = 2;
}

void kiln_fe_blocks_read(kiln_fe *fe, kiln_yaml_node *blocks)
{
    if (blocks == NULL)
        return;
    if (blocks->kind != KILN_YAML_MAP) {
        kiln_fe_error(fe, KILN_ERR_PARSE, blocks->loc, "'blocks' must be a mapping of block names to templates");
        return;
    }
    block **all = kiln_arena_alloc(&fe->arena, (blocks->count + 1) * sizeof *all);
    if (all == NULL) {
        kiln_fe_oom(fe);
        return;
    }
    for (size_t i = 0; i < blocks->count && !fe->oom; ++i) {
        all[i] = read_block(fe, blocks->pairs[i].key, blocks->pairs[i].value);
        if (all[i])
            put(fe, &fe->blocks, all[i]->name, all[i]);
    }
    if (fe->oom)
        return;
    for (size_t i = 0; i < blocks->count && !fe->oom; ++i) {
        block *b = all[i];
        if (b->layers)
            check_list(fe, b->layers, &b->names, &b->input_names, b);
        if (b->output && !kiln_strmap_get(&b->names, b->output->text) &&
            !kiln_strmap_get(&b->input_names, b->output->text)) {
            kiln_fe_error(fe, KILN_ERR_PARSE, b->output->loc, "block '%s': output '%s' is not one of its layers",
                          b->name, b->output->text);
            b->bad = true;
        }
    }
    /* The recursion path is at most the number of blocks long. */
    block **path = kiln_arena_alloc(&fe->arena, (blocks->count + 1) * sizeof *path);
    if (path == NULL) {
        kiln_fe_oom(fe);
        return;
    }
    for (size_t i = 0; i < blocks->count; ++i) {
        if (all[i]->visit == 0)
            check_recursion(fe, all[i], path, 0);
    }
}

/* ---- expansion ---------------------------------------------------------- */

static kiln_fe_ref expand_list(kiln_fe *fe, scope *s, kiln_yaml_node *layers);

static kiln_fe_ref lookup(kiln_fe *fe, scope *s, const kiln_fe_layer *L, const char *self, kiln_yaml_node *n)
{
    if (n == NULL || n->kind != KILN_YAML_SCALAR) {
        kiln_fe_layer_error(fe, L, n, KILN_ERR_PARSE, "an operand must be the name of a layer or an input, not %s",
                            n ? kiln_yaml_kind_name(n->kind) : "nothing");
        return ref_of(KILN_FE_REF_ERROR, 0);
    }
    const kiln_fe_binding *b = kiln_strmap_get(&s->visible, n->text);
    if (b)
        return b->ref;
    const kiln_yaml_node *later = kiln_strmap_get(s->all, n->text);
    if (strcmp(n->text, self) == 0)
        kiln_fe_layer_error(fe, L, n, KILN_ERR_PARSE, "reads '%s', which is itself", n->text);
    else if (later)
        kiln_fe_layer_error(fe, L, n, KILN_ERR_PARSE,
                            "reads '%s', which is defined later (line %u); a layer may only read names defined "
                            "before it",
                            n->text, later->loc.line);
    else if (s->t)
        kiln_fe_layer_error(fe, L, n, KILN_ERR_PARSE,
                            "reads '%s', which is not defined before it (inside a block only its inputs and "
                            "earlier layers are visible)",
                            n->text);
    else
        kiln_fe_layer_error(fe, L, n, KILN_ERR_PARSE, "reads '%s', which is not defined before it", n->text);
    return ref_of(KILN_FE_REF_ERROR, 0);
}

/* The data operands of a layer: `input`, `inputs`, or the previous output. */
static bool operands(kiln_fe *fe, scope *s, const kiln_fe_layer *L, const char *self, bool want_default,
                     kiln_fe_ref **out, uint32_t *n_out)
{
    const kiln_yaml_pair *one = kiln_yaml_get_pair(L->map, "input");
    const kiln_yaml_pair *many = kiln_yaml_get_pair(L->map, "inputs");
    *out = NULL;
    *n_out = 0;
    if (one && many) {
        kiln_fe_layer_error(fe, L, many->key, KILN_ERR_PARSE, "give 'input' or 'inputs', not both");
        return false;
    }
    if (one) {
        kiln_yaml_node *v = kiln_fe_resolve(one->value, L->env, NULL);
        if (v->kind != KILN_YAML_SCALAR) {
            kiln_fe_layer_error(fe, L, v, KILN_ERR_PARSE, "'input' is one name (use 'inputs' for a list)");
            return false;
        }
        kiln_fe_ref *r = kiln_arena_alloc(&fe->arena, sizeof *r);
        if (r == NULL) {
            kiln_fe_oom(fe);
            return false;
        }
        *r = lookup(fe, s, L, self, v);
        *out = r;
        *n_out = 1;
        return true;
    }
    if (many) {
        const kiln_fe_env *env;
        kiln_yaml_node *v = kiln_fe_resolve(many->value, L->env, &env);
        if (v->kind != KILN_YAML_SEQ || v->count == 0) {
            kiln_fe_layer_error(fe, L, v, KILN_ERR_PARSE, "'inputs' must be a non-empty list of names");
            return false;
        }
        if (v->count > 65536) {
            kiln_fe_layer_error(fe, L, v, KILN_ERR_PARSE, "more than 65536 inputs");
            return false;
        }
        fe->operand_refs += v->count;
        if (fe->operand_refs > KILN_FE_MAX_OPERANDS) {
            if (!fe->too_many)
                kiln_fe_layer_error(fe, L, v, KILN_ERR_PARSE,
                                    "the model expands to more than %d operand references; refused",
                                    KILN_FE_MAX_OPERANDS);
            fe->too_many = true;
            return false;
        }
        kiln_fe_ref *r = kiln_arena_alloc(&fe->arena, v->count * sizeof *r);
        if (r == NULL) {
            kiln_fe_oom(fe);
            return false;
        }
        for (size_t i = 0; i < v->count; ++i)
            r[i] = lookup(fe, s, L, self, kiln_fe_resolve(v->items[i], env, NULL));
        *out = r;
        *n_out = (uint32_t)v->count;
        return true;
    }
    if (!want_default)
        return true;
    if (s->prev.kind == KILN_FE_REF_NONE) {
        kiln_fe_layer_error(fe, L, NULL, KILN_ERR_PARSE, "has no input: give 'input' or 'inputs'%s",
                            s->t ? " (the block has no inputs)" : "");
        return false;
    }
    kiln_fe_ref *r = kiln_arena_alloc(&fe->arena, sizeof *r);
    if (r == NULL) {
        kiln_fe_oom(fe);
        return false;
    }
    *r = s->prev;
    *out = r;
    *n_out = 1;
    return true;
}

static kiln_fe_ref push_layer(kiln_fe *fe, const kiln_fe_layer *L)
{

    if (kiln_grow((void **)&fe->layers, &fe->cap_layers, fe->n_layers + 1, sizeof *fe->layers) != 0) {
        kiln_fe_oom(fe);
        return ref_of(KILN_FE_REF_ERROR, 0);
    }
    fe->layers[fe->n_layers] = *L;
    fe->layers[fe->n_layers].value = KILN_NO_ID;
    return ref_of(KILN_FE_REF_LAYER, (uint32_t)fe->n_layers++);
}

static kiln_fe_ref expand_op(kiln_fe *fe, scope *s, kiln_fe_layer *L, const char *local)
{
    kiln_yaml_node *raw = kiln_yaml_get(L->map, "op");
    kiln_yaml_node *v = kiln_fe_resolve(raw, L->env, NULL);
    bool dynamic = v != raw;
    if (v->kind != KILN_YAML_SCALAR) {
        kiln_fe_layer_error(fe, L, v, KILN_ERR_PARSE, "'op' must be the name of an op, not %s",
                            kiln_yaml_kind_name(v->kind));
        return ref_of(KILN_FE_REF_ERROR, 0);
    }
    if (kiln_fe_lookup_op(v->text, &L->op) != 0 && kiln_fe_op_is_ir_only(v->text)) {
        kiln_fe_layer_error(fe, L, v, KILN_ERR_PARSE, IR_ONLY_MESSAGE, v->text);
        return ref_of(KILN_FE_REF_ERROR, 0);
    }
    if (kiln_fe_lookup_op(v->text, &L->op) != 0) {
        const char *hint = kiln_fe_suggest_op(v->text);
        kiln_fe_layer_error(fe, L, v, KILN_ERR_PARSE, "unknown op '%s'%s%s%s", v->text,
                            hint ? " (did you mean '" : "", hint ? hint : "", hint ? "'?)" : "");
        return ref_of(KILN_FE_REF_ERROR, 0);
    }
    if (dynamic && !kiln_fe_check_op_keys(fe, L->map, L->op, L))
        return ref_of(KILN_FE_REF_ERROR, 0);
    bool no_data = (kiln_op_get(L->op)->flags & KILN_OPF_NO_DATA) != 0;
    if (no_data) {
        const kiln_yaml_pair *p = kiln_yaml_get_pair(L->map, "input");
        if (!p)
            p = kiln_yaml_get_pair(L->map, "inputs");
        if (p) {
            kiln_fe_layer_error(fe, L, p->key, KILN_ERR_PARSE, "%s takes no operand", kiln_op_name(L->op));
            return ref_of(KILN_FE_REF_ERROR, 0);
        }
    }
    if (!operands(fe, s, L, local, !no_data, &L->operands, &L->n_operands))
        return ref_of(KILN_FE_REF_ERROR, 0);
    L->precision = s->precision;
    return push_layer(fe, L);
}

static kiln_fe_ref expand_instance(kiln_fe *fe, scope *s, kiln_fe_layer *L, const char *local)
{
    kiln_yaml_node *raw = kiln_yaml_get(L->map, "use");
    kiln_yaml_node *v = kiln_fe_resolve(raw, L->env, NULL);
    bool dynamic = v != raw;
    kiln_fe_ref error = ref_of(KILN_FE_REF_ERROR, 0);
    L->use = "?";
    if (v->kind != KILN_YAML_SCALAR) {
        kiln_fe_layer_error(fe, L, v, KILN_ERR_PARSE, "'use' must be the name of a block, not %s",
                            kiln_yaml_kind_name(v->kind));
        return error;
    }
    block *b = kiln_strmap_get(&fe->blocks, v->text);
    L->use = v->text;
    if (b == NULL) {
        kiln_fe_layer_error(fe, L, v, KILN_ERR_PARSE, "unknown block '%s'", v->text);
        return error;
    }
    if (b->bad || b->layers == NULL)
        return error;
    if (b->active) {
        kiln_fe_layer_error(fe, L, v, KILN_ERR_PARSE, "block recursion: '%s' is already being expanded", b->name);
        return error;
    }
    if (s->depth >= KILN_FE_MAX_BLOCK_DEPTH) {
        kiln_fe_layer_error(fe, L, v, KILN_ERR_PARSE, "blocks nested more than %d deep", KILN_FE_MAX_BLOCK_DEPTH);
        return error;
    }
    if (dynamic && !check_with(fe, L->map, b, L))
        return error;

    kiln_fe_ref *refs;
    uint32_t n;
    if (!operands(fe, s, L, local, b->n_inputs > 0, &refs, &n))
        return error;
    if (n != b->n_inputs) {
        kiln_fe_layer_error(fe, L, NULL, KILN_ERR_PARSE, "block '%s' takes %zu input(s), got %u", b->name,
                            b->n_inputs, n);
        return error;
    }

    /* Arguments: `with:` values resolve in the instance's own scope. */
    kiln_fe_env *env = kiln_arena_alloc(&fe->arena, sizeof *env);
    kiln_fe_arg *args = b->n_args ? kiln_arena_alloc(&fe->arena, b->n_args * sizeof *args) : NULL;
    if (env == NULL || (b->n_args && args == NULL)) {
        kiln_fe_oom(fe);
        return error;
    }
    kiln_yaml_node *with = kiln_yaml_get(L->map, "with");
    for (size_t i = 0; i < b->n_args; ++i) {
        kiln_yaml_node *given = kiln_yaml_get(with, b->args[i].name);
        args[i].name = b->args[i].name;
        if (given) {
            args[i].node = kiln_fe_resolve(given, L->env, &args[i].env);
        } else {
            args[i].node = b->args[i].node;
            args[i].env = NULL;
        }
    }
    env->args = args;
    env->count = b->n_args;

    kiln_precision precision = s->precision;
    kiln_yaml_node *p = kiln_fe_layer_get(L, "precision", NULL);
    if (p && (p->kind != KILN_YAML_SCALAR || kiln_precision_parse(p->text, &precision) != 0)) {
        kiln_fe_layer_error(fe, L, p, KILN_ERR_PARSE, "'precision' must be one of f32, bf16, f16, int8, auto");
        return error;
    }

    scope c;
    kiln_strmap_init(&c.visible, &fe->arena);
    for (size_t i = 0; i < b->n_inputs; ++i) {
        const kiln_fe_binding *in = kiln_strmap_get(&b->input_names, b->inputs[i]);
        put(fe, &c.visible, b->inputs[i], new_binding(fe, refs[i], in ? in->loc : L->map->loc, true));
    }
    c.all = &b->names;
    c.prev = n ? refs[0] : ref_of(KILN_FE_REF_NONE, 0);
    c.prefix = kiln_arena_printf(&fe->arena, "%s.", L->name);
    c.env = env;
    c.t = b;
    c.instance = L->name;
    c.instance_loc = s->t ? s->instance_loc : L->map->loc;
    c.precision = precision;
    c.depth = s->depth + 1;
    if (c.prefix == NULL || fe->oom) {
        kiln_fe_oom(fe);
        return error;
    }
    size_t first = fe->n_layers;
    b->active = true;
    kiln_fe_ref out = expand_list(fe, &c, b->layers);
    b->active = false;
    if (b->output) {
        const kiln_fe_binding *o = kiln_strmap_get(&c.visible, b->output->text);
        out = o ? o->ref : error;
    }
    /* The instance's output value is called by the instance's name. A block
     * whose output is one of its inputs gets an identity node for it. */
    if (out.kind == KILN_FE_REF_LAYER && out.index >= first) {
        fe->layers[out.index].value_name = L->name;
    } else if (out.kind == KILN_FE_REF_INPUT || out.kind == KILN_FE_REF_LAYER) {
        kiln_fe_layer id = *L;
        id.use = NULL;
        id.op = KILN_OP_IDENTITY;
        id.operands = kiln_arena_alloc(&fe->arena, sizeof *id.operands);
        if (id.operands == NULL) {
            kiln_fe_oom(fe);
            return error;
        }
        id.operands[0] = out;
        id.n_operands = 1;
        id.precision = precision;
        out = push_layer(fe, &id);
    }
    return out;
}

static kiln_fe_ref expand_list(kiln_fe *fe, scope *s, kiln_yaml_node *layers)
{
    for (size_t i = 0; i < layers->count; ++i) {
        kiln_yaml_node *item = layers->items[i];
        if (fe->oom || fe->too_many)
            return ref_of(KILN_FE_REF_ERROR, 0);
        if (++fe->expanded > KILN_FE_MAX_LAYERS) {
            kiln_fe_error(fe, KILN_ERR_PARSE, s->t ? s->instance_loc : item->loc,
                          "the model expands to more than %d layers; refused", KILN_FE_MAX_LAYERS);
            fe->too_many = true;
            return ref_of(KILN_FE_REF_ERROR, 0);
        }
        kiln_yaml_node *name = kiln_yaml_get(item, "name");
        bool named = name && name->kind == KILN_YAML_SCALAR && kiln_fe_is_layer_name(name->text);
        if (item->flags & KILN_YAML_BAD) {
            if (named && !kiln_strmap_get(&s->visible, name->text))
                put(fe, &s->visible, name->text,
                    new_binding(fe, ref_of(KILN_FE_REF_ERROR, 0), name->loc, false));
            s->prev = ref_of(KILN_FE_REF_ERROR, 0);
            continue;
        }
        kiln_fe_layer L;
        memset(&L, 0, sizeof L);
        L.map = item;
        L.env = s->env;
        L.name = s->t ? kiln_arena_printf(&fe->arena, "%s%s", s->prefix, name->text) : name->text;
        if (L.name == NULL) {
            kiln_fe_oom(fe);
            return ref_of(KILN_FE_REF_ERROR, 0);
        }
        L.value_name = L.name;
        L.precision = s->precision;
        if (s->t) {
            L.block = s->t->name;
            L.local_name = name->text;
            L.instance = s->instance;
            L.instance_loc = s->instance_loc;
        }
        kiln_fe_ref r = kiln_yaml_get(item, "use") ? expand_instance(fe, s, &L, name->text)
                                                   : expand_op(fe, s, &L, name->text);
        put(fe, &s->visible, name->text, new_binding(fe, r, name->loc, false));
        s->prev = r;
    }
    return s->prev;
}

/* Every layer's output value needs a name of its own. */
static void reserve_names(kiln_fe *fe)
{
    for (size_t i = 0; i < fe->n_layers && !fe->oom; ++i) {
        kiln_fe_layer *L = &fe->layers[i];
        const kiln_fe_binding *other = kiln_strmap_get(&fe->reserved, L->value_name);
        if (other) {
            const char *what = other->is_input ? "model input" : "the output of layer";
            const char *oname = other->is_input ? L->value_name : fe->layers[other->ref.index].name;
            kiln_fe_layer_error(fe, L, NULL, KILN_ERR_PARSE,
                                "its output would be named '%s', which is already %s '%s' (line %u)", L->value_name,
                                what, oname, other->loc.line);
            L->value_name = NULL; /* lowering skips it */
            continue;
        }
        kiln_loc loc = kiln_fe_layer_loc(L, NULL);
        put(fe, &fe->reserved, L->value_name, new_binding(fe, ref_of(KILN_FE_REF_LAYER, (uint32_t)i), loc, false));
        if (kiln_yaml_get(L->map, "activation")) {
            const char *pre = kiln_arena_printf(&fe->arena, "%s:pre", L->value_name);
            if (pre == NULL)
                kiln_fe_oom(fe);
            else
                put(fe, &fe->reserved, pre, new_binding(fe, ref_of(KILN_FE_REF_LAYER, (uint32_t)i), loc, false));
        }
    }
}

void kiln_fe_expand(kiln_fe *fe, kiln_yaml_node *layers)
{
    kiln_strmap names;
    kiln_strmap_init(&names, &fe->arena);
    check_list(fe, layers, &names, &fe->top, NULL);
    if (fe->oom)
        return;
    scope s;
    s.visible = fe->top;
    s.all = &names;
    s.prev = fe->n_inputs ? ref_of(KILN_FE_REF_INPUT, 0) : ref_of(KILN_FE_REF_ERROR, 0);
    s.prefix = "";
    s.env = NULL;
    s.t = NULL;
    s.instance = NULL;
    memset(&s.instance_loc, 0, sizeof s.instance_loc);
    s.precision = KILN_PREC_DEFAULT;
    s.depth = 0;
    fe->last = expand_list(fe, &s, layers);
    fe->last_loc = layers->count ? layers->items[layers->count - 1]->loc : layers->loc;
    fe->top = s.visible;
    reserve_names(fe);
}
