/* compiler/frontend/fe.c: the frontend's shared helpers: error reporting,
 * name rules and `$arg` resolution. */
#include "fe.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void record(kiln_fe *fe, kiln_status st)
{
    if (fe->status == KILN_OK)
        fe->status = st;
}

void kiln_fe_error(kiln_fe *fe, kiln_status st, kiln_loc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kiln_diag_verror(fe->d, loc, fmt, ap);
    va_end(ap);
    record(fe, st);
}

void kiln_fe_oom(kiln_fe *fe)
{
    if (!fe->oom) {
        kiln_loc loc = {fe->file, 0, 0};
        kiln_diag_error(fe->d, loc, "out of memory");
    }
    fe->oom = true;
    fe->status = KILN_ERR_OUT_OF_MEMORY;
}

kiln_loc kiln_fe_layer_loc(const kiln_fe_layer *L, const kiln_yaml_node *at)
{
    if (L->block)
        return L->instance_loc;
    return at ? at->loc : L->map->loc;
}

void kiln_fe_layer_error(kiln_fe *fe, const kiln_fe_layer *L, const kiln_yaml_node *at, kiln_status st,
                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *msg = kiln_diag_vformat(fe->d, fmt, ap); /* whole: the reporter shortens long names */
    va_end(ap);
    if (!msg)
        msg = "(out of memory)";
    kiln_loc loc = kiln_fe_layer_loc(L, at);
    if (L->block) {
        kiln_diag_error(fe->d, loc, "in block '%s' layer '%s' (instance '%s'): %s", L->block, L->local_name,
                        L->instance, msg);
        kiln_diag_note(fe->d, L->map->loc, "layer '%s' of block '%s' is defined here", L->local_name, L->block);
    }
    else if (L->use)
        kiln_diag_error(fe->d, loc, "layer '%s' (block '%s'): %s", L->name, L->use, msg);
    else
        kiln_diag_error(fe->d, loc, "layer '%s' (%s): %s", L->name, kiln_op_name(L->op), msg);
    record(fe, st);
}

bool kiln_fe_is_layer_name(const char *s)
{
    if (s == NULL || *s == '\0')
        return false;
    for (; *s; ++s) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.'))
            return false;
    }
    return true;
}

bool kiln_fe_is_identifier(const char *s)
{
    if (s == NULL || *s == '\0' || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; ++s) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

bool kiln_fe_is_arg_ref(const kiln_yaml_node *n, const char **name_out, size_t *len_out)
{
    if (n == NULL || n->kind != KILN_YAML_SCALAR || n->len < 2 || n->text[0] != '$' ||
        !kiln_fe_is_identifier(n->text + 1))
        return false;
    if (name_out)
        *name_out = n->text + 1;
    if (len_out)
        *len_out = n->len - 1;
    return true;
}

kiln_yaml_node *kiln_fe_resolve(kiln_yaml_node *n, const kiln_fe_env *env, const kiln_fe_env **out_env)
{
    const char *name;
    if (env != NULL && kiln_fe_is_arg_ref(n, &name, NULL)) {
        for (size_t i = 0; i < env->count; ++i) {
            if (strcmp(env->args[i].name, name) == 0) {
                if (out_env)
                    *out_env = env->args[i].env;
                return env->args[i].node;
            }
        }
    }
    if (out_env)
        *out_env = env;
    return n;
}

/* Edit distance, capped: enough to suggest an op for a typo. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 32 || lb > 32)
        return 99;
    size_t row[33];
    for (size_t j = 0; j <= lb; ++j)
        row[j] = j;
    for (size_t i = 1; i <= la; ++i) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; ++j) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

int kiln_fe_lookup_op(const char *name, kiln_op *out)
{
    kiln_op op;
    if (kiln_op_lookup(name, &op) != 0 || (kiln_op_get(op)->flags & KILN_OPF_IR_ONLY))
        return -1;
    *out = op;
    return 0;
}

bool kiln_fe_op_is_ir_only(const char *name)
{
    kiln_op op;
    return kiln_op_lookup(name, &op) == 0 && (kiln_op_get(op)->flags & KILN_OPF_IR_ONLY);
}

const char *kiln_fe_suggest_op(const char *name)
{
    const char *best = NULL;
    size_t best_d = 3;
    for (int i = 0; i < KILN_OP_COUNT; ++i) {
        if (kiln_op_get((kiln_op)i)->flags & KILN_OPF_IR_ONLY)
            continue;
        size_t d = distance(name, kiln_op_name((kiln_op)i));
        if (d < best_d) {
            best_d = d;
            best = kiln_op_name((kiln_op)i);
        }
    }
    return best;
}
