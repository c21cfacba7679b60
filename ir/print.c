/* ir/print.c: the IR text form, writer side. The grammar is in docs/ir.md;
 * ir/parse.c reads exactly what this file writes, and parse(print(g)) prints
 * byte for byte like g. */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "graph.h"

typedef struct printer {
    const kiln_graph *g;
    FILE *out;
    bool bad; /* something in g cannot be written so that it reads back */
    bool oom;
    /* Inline data goes to a sidecar safetensors file: `file sidecar "key"`. */
    bool sidecar;
    uint32_t sidecar_file; /* its index among the weights lines */
} printer;

/* ---- strings and names -------------------------------------------------- */

/* A double-quoted string with C escapes. Bytes >= 0x80 are written as they are
 * (UTF-8 passes through); every other byte that is not printable is escaped. */
static void put_quoted(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *c = (const unsigned char *)s; *c != 0; c++) {
        switch (*c) {
        case '\\': fputs("\\\\", out); break;
        case '"': fputs("\\\"", out); break;
        case '\n': fputs("\\n", out); break;
        case '\t': fputs("\\t", out); break;
        case '\r': fputs("\\r", out); break;
        default:
            if (*c < 0x20 || *c == 0x7f)
                fprintf(out, "\\x%02x", *c);
            else
                fputc(*c, out);
        }
    }
    fputc('"', out);
}

static bool is_bare_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.';
}

/* `%name` when the name is [A-Za-z0-9_.]+, else `%"..."`. */
static void put_name(FILE *out, const char *name)
{
    bool bare = name[0] != 0;
    for (const unsigned char *c = (const unsigned char *)name; *c != 0 && bare; c++)
        bare = is_bare_char(*c);
    fputc('%', out);
    if (bare)
        fputs(name, out);
    else
        put_quoted(out, name);
}

static void put_value(printer *p, kiln_id id)
{
    if (id >= p->g->n_values || p->g->values[id].name == NULL) {
        /* Reads back as an undefined name, so the damage shows. */
        fprintf(p->out, "%%\"<bad value id %" PRIu32 ">\"", id);
        p->bad = true;
        return;
    }
    put_name(p->out, p->g->values[id].name);
}

/* Floats: "%.17g" reads back bit-exactly through strtod. inf and nan have no
 * text form (FORMAT.md refuses them). */
static void put_double(printer *p, double v)
{
    if (!isfinite(v))
        p->bad = true;
    fprintf(p->out, "%.17g", v);
}

static bool is_c_identifier(const char *s)
{
    if (s == NULL || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return false;
    for (s++; *s != 0; s++)
        if (!is_bare_char((unsigned char)*s) || *s == '.')
            return false;
    return true;
}

/* ---- types -------------------------------------------------------------- */

/* dtype[dims] [nchw<B>c] [q(scale=S, zp=Z)] */
static void put_type(printer *p, const kiln_type *t)
{
    FILE *out = p->out;
    const char *dt = (unsigned)t->dtype < KILN_DTYPE_COUNT ? kiln_dtype_name(t->dtype) : NULL;
    if (dt == NULL) {
        dt = "?";
        p->bad = true;
    }
    fputs(dt, out);
    fputc('[', out);
    int rank = t->shape.rank;
    if (rank < 0 || rank > KILN_MAX_RANK) {
        rank = rank < 0 ? 0 : KILN_MAX_RANK;
        p->bad = true;
    }
    for (int i = 0; i < rank; i++) {
        if (i > 0)
            fputc(',', out);
        if (i == 0 && t->shape.batched) {
            /* FORMAT.md lets the batch be any name: quote what is not an identifier. */
            const char *bn = p->g->batch_name != NULL ? p->g->batch_name : "batch";
            if (is_c_identifier(bn))
                fputs(bn, out);
            else
                put_quoted(out, bn);
        } else {
            if (t->shape.dims[i] < 0 || t->shape.dims[i] > KILN_MAX_DIM)
                p->bad = true;
            fprintf(out, "%" PRId64, t->shape.dims[i]);
        }
    }
    fputc(']', out);
    if (t->layout == KILN_LAYOUT_NCHWXC) {
        if (t->block <= 0)
            p->bad = true;
        fprintf(out, " nchw%dc", t->block);
    } else if (t->layout != KILN_LAYOUT_PLAIN) {
        p->bad = true;
    }
    if (t->quantized) {
        fputs(" q(scale=", out);
        put_double(p, t->scale);
        fprintf(out, ", zp=%" PRId32 ")", t->zero_point);
    }
}

/* ---- attributes --------------------------------------------------------- */

static void put_attr(printer *p, kiln_attr_id id, const kiln_attr *a)
{
    FILE *out = p->out;
    const kiln_attr_def *def = &kiln_attr_defs[id];
    fputs(def->name, out);
    fputc('=', out);
    switch (def->type) {
    case KILN_ATTR_T_INT:
        fprintf(out, "%" PRId64, a->i);
        break;
    case KILN_ATTR_T_FLOAT:
        put_double(p, a->f);
        break;
    case KILN_ATTR_T_BOOL:
        fputs(a->i ? "true" : "false", out);
        break;
    case KILN_ATTR_T_INTS: {
        int n = a->n;
        if (n < 0 || n > KILN_MAX_INTS) {
            n = n < 0 ? 0 : KILN_MAX_INTS;
            p->bad = true;
        }
        fputc('[', out);
        for (int i = 0; i < n; i++)
            fprintf(out, i > 0 ? ",%" PRId64 : "%" PRId64, a->ints[i]);
        fputc(']', out);
        break;
    }
    case KILN_ATTR_T_FLOATS: {
        int n = a->n;
        if (n < 0 || n > KILN_MAX_INTS) {
            n = n < 0 ? 0 : KILN_MAX_INTS;
            p->bad = true;
        }
        fputc('[', out);
        for (int i = 0; i < n; i++) {
            if (i > 0)
                fputc(',', out);
            put_double(p, a->floats[i]);
        }
        fputc(']', out);
        break;
    }
    case KILN_ATTR_T_WORD: {
        const char *const *words = kiln_attr_words(id);
        int64_t count = 0;
        while (words != NULL && words[count] != NULL)
            count++;
        if (a->i >= 0 && a->i < count) {
            fputs(words[a->i], out);
        } else {
            fputs("?", out);
            p->bad = true;
        }
        break;
    }
    }
}

/* ---- paths -------------------------------------------------------------- */

/* A path split into components, resolved lexically: "." and empty components
 * dropped, ".." cancelling the component before it (kept at the front of a
 * relative path, dropped at the root of an absolute one). */
typedef struct path_parts {
    char *buf;
    char **part;
    size_t n;
    bool absolute;
} path_parts;

static void parts_free(path_parts *pp)
{
    kiln_free(pp->buf);
    kiln_free(pp->part);
    memset(pp, 0, sizeof *pp);
}

/* prefix (may be NULL) + "/" + path. Returns -1 when out of memory. */
static int parts_split(path_parts *pp, const char *prefix, const char *path)
{
    size_t lp = prefix != NULL ? strlen(prefix) : 0, l = strlen(path);
    memset(pp, 0, sizeof *pp);
    pp->buf = kiln_malloc(lp + l + 2);
    if (pp->buf == NULL)
        return -1;
    if (prefix != NULL) {
        memcpy(pp->buf, prefix, lp);
        pp->buf[lp] = '/';
        memcpy(pp->buf + lp + 1, path, l + 1);
    } else {
        memcpy(pp->buf, path, l + 1);
    }
    size_t cap = 1;
    for (const char *c = pp->buf; *c != 0; c++)
        cap += *c == '/';
    pp->part = kiln_malloc(cap * sizeof *pp->part);
    if (pp->part == NULL) {
        parts_free(pp);
        return -1;
    }
    pp->absolute = pp->buf[0] == '/';
    char *save = pp->buf;
    for (char *c = pp->buf;; c++) {
        if (*c != '/' && *c != 0)
            continue;
        bool end = *c == 0;
        *c = 0;
        if (save[0] == 0 || strcmp(save, ".") == 0) {
            /* nothing */
        } else if (strcmp(save, "..") == 0) {
            if (pp->n > 0 && strcmp(pp->part[pp->n - 1], "..") != 0)
                pp->n--;
            else if (!pp->absolute)
                pp->part[pp->n++] = save;
        } else {
            pp->part[pp->n++] = save;
        }
        if (end)
            break;
        save = c + 1;
    }
    return 0;
}

/* `path` relative to the directory `base`, written to out. Both are resolved
 * lexically (no symbolic links are followed); when only one of them is
 * absolute, or `base` climbs above the current directory, both are made
 * absolute with getcwd. Falls back to `path` as stored when that fails. */
static int put_relative_path(FILE *out, const char *path, const char *base)
{
    path_parts a, b;
    char cwd[4096];
    int rc = -1;
    if (base[0] == 0)
        base = ".";
    if (parts_split(&a, NULL, path) < 0)
        return -1;
    if (parts_split(&b, NULL, base) < 0) {
        parts_free(&a);
        return -1;
    }
    bool need_abs = a.absolute != b.absolute || (!b.absolute && b.n > 0 && strcmp(b.part[0], "..") == 0);
    if (need_abs) {
        if (getcwd(cwd, sizeof cwd) == NULL || cwd[0] != '/') {
            put_quoted(out, path);
            rc = 0;
            goto done;
        }
        if (!a.absolute) {
            parts_free(&a);
            if (parts_split(&a, cwd, path) < 0)
                goto done;
        }
        if (!b.absolute) {
            parts_free(&b);
            if (parts_split(&b, cwd, base) < 0)
                goto done;
        }
    }
    /* Relative `path` that climbs out where `base` does not: "../x" from "d"
     * is "../../x"; the loop below handles it because neither starts with a
     * common "..". */
    size_t common = 0;
    while (common < a.n && common < b.n && strcmp(a.part[common], b.part[common]) == 0)
        common++;
    size_t len = 0;
    for (size_t i = common; i < b.n; i++)
        len += 3;
    for (size_t i = common; i < a.n; i++)
        len += strlen(a.part[i]) + 1;
    char *rel = kiln_malloc(len + 2);
    if (rel == NULL)
        goto done;
    char *w = rel;
    for (size_t i = common; i < b.n; i++) {
        memcpy(w, "../", 3);
        w += 3;
    }
    for (size_t i = common; i < a.n; i++) {
        size_t l = strlen(a.part[i]);
        memcpy(w, a.part[i], l);
        w += l;
        *w++ = '/';
    }
    if (w == rel)
        *w++ = '.';
    else
        w--; /* the last '/' */
    *w = 0;
    put_quoted(out, rel);
    kiln_free(rel);
    rc = 0;
done:
    parts_free(&a);
    parts_free(&b);
    return rc;
}

/* ---- params and nodes --------------------------------------------------- */

static void put_inline_data(printer *p, const kiln_value *v)
{
    FILE *out = p->out;
    const kiln_param *prm = &v->param;
    size_t esize = 0;
    switch (prm->data_dtype) {
    case KILN_F32: esize = 4; break;
    case KILN_F64: esize = 8; break;
    case KILN_F16:
    case KILN_BF16: esize = 2; break;
    default:
        p->bad = true;
        fputs("data ? []", out);
        return;
    }
    fprintf(out, "data %s [", kiln_dtype_name(prm->data_dtype));
    int64_t count = kiln_shape_elements(&v->type.shape, 1);
    if (prm->data == NULL || count < 0) {
        p->bad = true;
        fputc(']', out);
        return;
    }
    const unsigned char *data = prm->data;
    bool wrap = count > 8;
    for (int64_t i = 0; i < count; i++) {
        if (wrap && i % 8 == 0)
            fputs(i > 0 ? ",\n    " : "\n    ", out);
        else if (i > 0)
            fputs(", ", out);
        const unsigned char *e = data + (size_t)i * esize;
        if (esize == 2) {
            uint16_t x;
            memcpy(&x, e, 2);
            fprintf(out, "0x%04" PRIx16, x);
        } else if (esize == 4) {
            uint32_t x;
            memcpy(&x, e, 4);
            fprintf(out, "0x%08" PRIx32, x);
        } else {
            uint64_t x;
            memcpy(&x, e, 8);
            fprintf(out, "0x%016" PRIx64, x);
        }
    }
    fputs(wrap ? "\n  ]" : "]", out);
}

static void put_param(printer *p, const kiln_value *v)
{
    FILE *out = p->out;
    const kiln_param *prm = &v->param;
    if (v->mem != KILN_MEM_NONE)
        p->bad = true; /* params are never planned: the text has no place for it */
    fputs("  param ", out);
    put_name(out, v->name);
    fputs(": ", out);
    put_type(p, &v->type);
    fputs(" = ", out);
    switch (prm->source) {
    case KILN_PARAM_FILE:
        if (prm->file >= p->g->n_weight_files)
            p->bad = true;
        fprintf(out, "file %" PRIu32 " ", prm->file);
        put_quoted(out, prm->key != NULL ? prm->key : "");
        break;
    case KILN_PARAM_RANDOM:
        fprintf(out, "random %" PRIu64 " ", prm->seed);
        put_double(p, prm->lo);
        fputc(' ', out);
        put_double(p, prm->hi);
        break;
    case KILN_PARAM_INLINE:
        if (p->sidecar) {
            fprintf(out, "file %" PRIu32 " ", p->sidecar_file);
            put_quoted(out, v->name);
        } else {
            put_inline_data(p, v);
        }
        break;
    default:
        fputs("?", out);
        p->bad = true;
    }
    fputc('\n', out);
}

static void put_node(printer *p, const kiln_node *n)
{
    FILE *out = p->out;
    const kiln_graph *g = p->g;
    fputs("  ", out);
    put_value(p, n->output);
    fputs(" = ", out);
    if ((unsigned)n->op >= KILN_OP_COUNT) {
        fputs("?()", out);
        p->bad = true;
        fputc('\n', out);
        return;
    }
    fputs(kiln_op_name(n->op), out);
    fputc('(', out);
    for (uint32_t i = 0; i < n->n_inputs; i++) {
        if (i > 0)
            fputs(", ", out);
        put_value(p, n->inputs[i]);
    }
    fputc(')', out);
    const kiln_op_def *def = kiln_op_get(n->op);
    bool first = true;
    for (int i = 0; i < def->n_attrs; i++) {
        kiln_attr_id id = def->attrs[i].id;
        if (!kiln_node_has(n, id))
            continue;
        fputs(first ? " {" : ", ", out);
        first = false;
        put_attr(p, id, &n->attrs[id]);
    }
    if (!first)
        fputc('}', out);
    fputs(" : ", out);
    if (n->output < g->n_values)
        put_type(p, &g->values[n->output].type);
    else
        fputs("?[]", out);
    fputs(" layer ", out);
    put_quoted(out, n->layer != NULL ? n->layer : "");
    if (n->precision != KILN_PREC_DEFAULT) {
        const char *pn = (unsigned)n->precision < KILN_PREC_COUNT ? kiln_precision_name(n->precision) : NULL;
        if (pn == NULL) {
            pn = "?";
            p->bad = true;
        }
        fprintf(out, " precision %s", pn);
    }
    /* The passes' annotations, each only when set. */
    if (n->group != 0)
        fprintf(out, " group %" PRIu32, n->group);
    if (n->impl != KILN_IMPL_NONE) {
        if ((unsigned)n->impl >= KILN_IMPL_COUNT)
            p->bad = true;
        fprintf(out, " impl %s", kiln_impl_name(n->impl));
    }
    if (n->tasks != 0)
        fprintf(out, " tasks %" PRIu32, n->tasks);
    if (n->scratch_bytes != 0)
        fprintf(out, " scratch %" PRIu64 " at %" PRIu64, n->scratch_bytes, n->scratch_offset);
    if (n->output < g->n_values && g->values[n->output].mem != KILN_MEM_NONE) {
        const kiln_value *v = &g->values[n->output];
        const char *rn = v->mem == KILN_MEM_FIXED ? "fixed" : v->mem == KILN_MEM_BATCH ? "batch" : NULL;
        if (rn == NULL) {
            rn = "?";
            p->bad = true;
        }
        fprintf(out, " mem %s %" PRIu64, rn, v->mem_offset);
    }
    fputc('\n', out);
}

/* ---- the graph ---------------------------------------------------------- */

/* ---- the sidecar: inline data as safetensors ------------------------------ */

static const char *safetensors_dtype(kiln_dtype t)
{
    switch (t) {
    case KILN_F32: return "F32";
    case KILN_F64: return "F64";
    case KILN_F16: return "F16";
    case KILN_BF16: return "BF16";
    default: return NULL;
    }
}

static bool has_inline_data(const kiln_graph *g)
{
    for (size_t i = 0; i < g->n_values; i++)
        if (g->values[i].kind == KILN_VALUE_PARAM && g->values[i].param.source == KILN_PARAM_INLINE)
            return true;
    return false;
}

/* A JSON string (the key): quotes, backslashes and control bytes escaped. */
static void put_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\')
            fprintf(f, "\\%c", *c);
        else if (*c < 0x20)
            fprintf(f, "\\u%04x", *c);
        else
            fputc(*c, f);
    }
    fputc('"', f);
}

/* Writes every parameter with inline data to `path` as safetensors: the key
 * is the value's name, the dtype and bytes are the data's own. */
static kiln_status write_sidecar(const kiln_graph *g, const char *path)
{
    char *json = NULL;
    size_t json_len = 0;
    FILE *hdr = open_memstream(&json, &json_len); /* the JSON header, measured before it is written */
    if (hdr == NULL)
        return KILN_ERR_OUT_OF_MEMORY;
    uint64_t offset = 0;
    bool first = true, bad = false;
    fputc('{', hdr);
    for (size_t i = 0; i < g->n_values; i++) {
        const kiln_value *v = &g->values[i];
        if (v->kind != KILN_VALUE_PARAM || v->param.source != KILN_PARAM_INLINE)
            continue;
        const char *dt = safetensors_dtype(v->param.data_dtype);
        int64_t count = kiln_shape_elements(&v->type.shape, 1);
        if (dt == NULL || count < 0 || v->param.data == NULL || v->type.shape.batched) {
            bad = true;
            continue;
        }
        uint64_t bytes = (uint64_t)count * kiln_dtype_size(v->param.data_dtype);
        if (!first)
            fputc(',', hdr);
        first = false;
        put_json_string(hdr, v->name);
        fprintf(hdr, ":{\"dtype\":\"%s\",\"shape\":[", dt);
        for (int k = 0; k < v->type.shape.rank; k++)
            fprintf(hdr, "%s%" PRId64, k ? "," : "", v->type.shape.dims[k]);
        fprintf(hdr, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", offset, offset + bytes);
        offset += bytes;
    }
    fputc('}', hdr);
    bool hdr_failed = ferror(hdr) != 0;
    if (fclose(hdr) != 0 || hdr_failed || bad || json == NULL) {
        free(json);
        return bad ? KILN_ERR_INVALID_ARGUMENT : KILN_ERR_OUT_OF_MEMORY;
    }
    /* header padded with spaces to a multiple of 8 bytes */
    uint64_t padded = ((uint64_t)json_len + 7) & ~(uint64_t)7;
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        free(json);
        return KILN_ERR_IO;
    }
    unsigned char le[8];
    for (int k = 0; k < 8; k++)
        le[k] = (unsigned char)(padded >> (8 * k));
    fwrite(le, 1, 8, f);
    fwrite(json, 1, json_len, f);
    free(json);
    for (uint64_t k = (uint64_t)json_len; k < padded; k++)
        fputc(' ', f);
    for (size_t i = 0; i < g->n_values; i++) {
        const kiln_value *v = &g->values[i];
        if (v->kind != KILN_VALUE_PARAM || v->param.source != KILN_PARAM_INLINE)
            continue;
        size_t bytes = (size_t)kiln_shape_elements(&v->type.shape, 1) * kiln_dtype_size(v->param.data_dtype);
        if (bytes > 0)
            fwrite(v->param.data, 1, bytes, f);
    }
    bool failed = ferror(f) != 0;
    if (fclose(f) != 0 || failed)
        return KILN_ERR_IO; /* never remove(path): the caller owns it */
    return KILN_OK;
}

kiln_status kiln_ir_print(const kiln_graph *g, FILE *out, const char *relative_to)
{
    kiln_ir_print_options o = {.relative_to = relative_to};
    return kiln_ir_print_opts(g, out, &o);
}

kiln_status kiln_ir_print_opts(const kiln_graph *g, FILE *out, const kiln_ir_print_options *o)
{
    const char *relative_to = o ? o->relative_to : NULL;
    const char *sidecar_path = o ? o->sidecar_path : NULL;
    if (g == NULL || out == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    if (sidecar_path != NULL && has_inline_data(g)) {
        kiln_status st = write_sidecar(g, o->sidecar_write_path ? o->sidecar_write_path : sidecar_path);
        if (st != KILN_OK)
            return st;
    } else {
        sidecar_path = NULL;
    }
    printer p = {.g = g, .out = out, .sidecar = sidecar_path != NULL, .sidecar_file = (uint32_t)g->n_weight_files};

    fputs("kiln 1\ngraph @", out);
    if (is_c_identifier(g->name)) {
        fputs(g->name, out);
    } else {
        put_quoted(out, g->name != NULL ? g->name : "");
        p.bad = true;
    }
    fputc('(', out);
    for (size_t i = 0; i < g->n_inputs; i++) {
        kiln_id id = g->inputs[i];
        if (i > 0)
            fputs(", ", out);
        put_value(&p, id);
        fputs(": ", out);
        if (id < g->n_values)
            put_type(&p, &g->values[id].type);
        else
            fputs("?[]", out);
    }
    fputs(") -> (", out);
    for (size_t i = 0; i < g->n_outputs; i++) {
        if (i > 0)
            fputs(", ", out);
        put_value(&p, g->outputs[i]);
    }
    fputs(") {\n", out);

    if (g->description != NULL) {
        fputs("  description ", out);
        put_quoted(out, g->description);
        fputc('\n', out);
    }
    if (g->precision != KILN_PREC_DEFAULT && g->precision != KILN_PREC_F32) {
        const char *pn = (unsigned)g->precision < KILN_PREC_COUNT ? kiln_precision_name(g->precision) : NULL;
        if (pn == NULL) {
            pn = "?";
            p.bad = true;
        }
        fprintf(out, "  precision %s\n", pn);
    }
    if (g->max_elements != KILN_DEFAULT_MAX_ELEMENTS) {
        if (g->max_elements < 0)
            p.bad = true;
        fprintf(out, "  max_elements %" PRId64 "\n", g->max_elements);
    }
    if (g->sched_threads != 0)
        fprintf(out, "  schedule threads %" PRIu32 "\n", g->sched_threads);
    if (g->mem_fixed_bytes != 0 || g->mem_batch_bytes != 0 || g->mem_lower_bound_bytes != 0)
        fprintf(out, "  memory fixed %" PRIu64 " batch %" PRIu64 " lower_bound %" PRIu64 "\n", g->mem_fixed_bytes,
                g->mem_batch_bytes, g->mem_lower_bound_bytes);
    for (size_t i = 0; i < g->n_weight_files; i++) {
        const char *path = g->weight_files[i] != NULL ? g->weight_files[i] : "";
        fputs("  weights ", out);
        if (relative_to == NULL || path[0] == 0)
            put_quoted(out, path);
        else if (put_relative_path(out, path, relative_to) < 0)
            p.oom = true;
        fputc('\n', out);
    }
    if (p.sidecar) {
        fputs("  weights ", out);
        if (relative_to == NULL)
            put_quoted(out, sidecar_path);
        else if (put_relative_path(out, sidecar_path, relative_to) < 0)
            p.oom = true;
        fputc('\n', out);
    }
    for (size_t i = 0; i < g->n_values; i++)
        if (g->values[i].kind == KILN_VALUE_PARAM)
            put_param(&p, &g->values[i]);
    for (size_t i = 0; i < g->n_nodes; i++)
        put_node(&p, &g->nodes[i]);
    fputs("}\n", out);

    if (fflush(out) != 0 || ferror(out))
        return KILN_ERR_IO;
    if (p.oom)
        return KILN_ERR_OUT_OF_MEMORY;
    return p.bad ? KILN_ERR_INVALID_ARGUMENT : KILN_OK;
}
