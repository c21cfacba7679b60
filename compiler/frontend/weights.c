/* compiler/frontend/weights.c: opening a graph's weights files and binding
 * PARAM values to their tensors (see weights.h). */
#include "weights.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ir/arena.h"
#include "ir/convert.h"

#define WEIGHTS_MAGIC 0x6b77736eu /* identifies our container in g->weights */
#define MAX_DUPLICATES_SHOWN 5

enum { FILE_UNTRIED, FILE_OPEN, FILE_FAILED };

typedef struct weights_slot {
    kiln_st_file *file; /* FILE_OPEN: owned by the container */
    int state;
} weights_slot;

typedef struct weights_set {
    uint32_t magic;
    weights_slot *slots; /* parallel to g->weight_files */
    size_t n, cap;
    kiln_status status;  /* first lasting error (a file failed, a duplicate key) */
} weights_set;

static void weights_release(void *p)
{
    weights_set *w = p;
    for (size_t i = 0; i < w->n; i++)
        kiln_st_close(w->slots[i].file);
    kiln_free(w->slots);
    kiln_free(w);
}

static weights_set *weights_get(const kiln_graph *g)
{
    weights_set *w = g->weights;
    return w && w->magic == WEIGHTS_MAGIC ? w : NULL;
}

static const char *file_name(const kiln_graph *g, size_t i)
{
    return i < g->n_weight_files && g->weight_files[i] ? g->weight_files[i] : "?";
}

static void format_dims(const int64_t *dims, int rank, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    n += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < rank && i < KILN_MAX_RANK && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%lld", i ? "," : "", (long long)dims[i]);
    if (rank > KILN_MAX_RANK && n < size)
        n += (size_t)snprintf(buf + n, size - n, ",...");
    if (n < size)
        snprintf(buf + n, size - n, "]");
}

/* Reports keys of file `i` that are also in an earlier-opened file. */
static kiln_status check_duplicates(const kiln_graph *g, weights_set *w, size_t i, kiln_diag *d)
{
    kiln_status status = KILN_OK;
    const kiln_st_file *f = w->slots[i].file;
    for (size_t j = 0; j < w->n; j++) {
        if (j == i || w->slots[j].state != FILE_OPEN)
            continue;
        size_t shown = 0, more = 0;
        for (size_t k = 0; k < kiln_st_count(f); k++) {
            const kiln_st_tensor *t = kiln_st_at(f, k);
            if (!kiln_st_find(w->slots[j].file, t->name))
                continue;
            status = KILN_ERR_WEIGHTS;
            if (shown < MAX_DUPLICATES_SHOWN) {
                kiln_diag_error(d, (kiln_loc){file_name(g, i), 0, 0},
                                "tensor '%s' is in two weights files, %s and %s", t->name,
                                file_name(g, j), file_name(g, i));
                shown++;
            } else {
                more++;
            }
        }
        if (more)
            kiln_diag_error(d, (kiln_loc){file_name(g, i), 0, 0},
                            "... and %zu more tensors are in both %s and %s", more,
                            file_name(g, j), file_name(g, i));
    }
    return status;
}

/* Opens what is not open yet; returns the first error (this call's or an
 * earlier one's) and the container in *out (NULL when out of memory). */
static kiln_status weights_open(kiln_graph *g, kiln_diag *d, weights_set **out)
{
    weights_set *w = weights_get(g);
    *out = NULL;
    if (!w && g->weights) {
        kiln_diag_error(d, (kiln_loc){0}, "internal error: graph->weights holds something else");
        return KILN_ERR_INTERNAL;
    }
    if (!w) {
        w = kiln_calloc(1, sizeof *w);
        if (!w || kiln_graph_add_resource(g, weights_release, w) != KILN_OK) {
            kiln_free(w);
            kiln_diag_error(d, (kiln_loc){0}, "out of memory opening the weights files");
            return KILN_ERR_OUT_OF_MEMORY;
        }
        /* ownership: the graph releases w (kiln_graph_destroy) */
        w->magic = WEIGHTS_MAGIC;
        g->weights = w;
    }
    if (g->n_weight_files > w->n) {
        if (kiln_grow((void **)&w->slots, &w->cap, g->n_weight_files, sizeof *w->slots) != 0) {
            kiln_diag_error(d, (kiln_loc){0}, "out of memory opening the weights files");
            *out = w;
            return KILN_ERR_OUT_OF_MEMORY;
        }
        memset(w->slots + w->n, 0, (g->n_weight_files - w->n) * sizeof *w->slots);
        w->n = g->n_weight_files;
    }
    kiln_status call_status = KILN_OK;
    for (size_t i = 0; i < w->n; i++) {
        weights_slot *s = &w->slots[i];
        if (s->state != FILE_UNTRIED)
            continue;
        kiln_status st = kiln_st_open(file_name(g, i), &s->file, d);
        if (st == KILN_ERR_OUT_OF_MEMORY) {
            /* not marked failed, not sticky: a later call retries */
            if (call_status == KILN_OK)
                call_status = st;
            continue;
        }
        if (st != KILN_OK) {
            s->state = FILE_FAILED;
            if (w->status == KILN_OK)
                w->status = st;
            continue;
        }
        s->state = FILE_OPEN;
        st = check_duplicates(g, w, i, d);
        if (st != KILN_OK && w->status == KILN_OK)
            w->status = st;
    }
    *out = w;
    return w->status != KILN_OK ? w->status : call_status;
}

kiln_status kiln_weights_open(kiln_graph *g, kiln_diag *d)
{
    weights_set *w;
    return weights_open(g, d, &w);
}

const kiln_st_file *kiln_weights_file(const kiln_graph *g, uint32_t index)
{
    const weights_set *w = weights_get(g);
    if (!w || index >= w->n || w->slots[index].state != FILE_OPEN)
        return NULL;
    return w->slots[index].file;
}

const kiln_st_tensor *kiln_weights_find(const kiln_graph *g, const char *key, uint32_t *file_index)
{
    const weights_set *w = weights_get(g);
    if (!w || !key)
        return NULL;
    for (size_t i = 0; i < w->n; i++) {
        if (w->slots[i].state != FILE_OPEN)
            continue;
        const kiln_st_tensor *t = kiln_st_find(w->slots[i].file, key);
        if (t) {
            if (file_index)
                *file_index = (uint32_t)i;
            return t;
        }
    }
    return NULL;
}

/* A RANDOM parameter is checked here and generated when it is read
 * (kiln_param_read_f32/f64): nothing is allocated for it, so a model of
 * random weights can be loaded and dumped whatever their size. */
static kiln_status bind_random(kiln_graph *g, kiln_value *v, kiln_diag *d)
{
    (void)g;
    if (v->param.data)
        return KILN_OK;
    if (v->type.shape.batched) {
        kiln_diag_error(d, v->loc, "parameter '%s' has a batch dimension", v->name);
        return KILN_ERR_SHAPE;
    }
    int64_t n = kiln_shape_elements(&v->type.shape, 1);
    if (n < 0 || (uint64_t)n > SIZE_MAX / sizeof(double)) {
        kiln_diag_error(d, v->loc, "parameter '%s' is too large", v->name);
        return KILN_ERR_SHAPE;
    }
    if (!(v->param.lo <= v->param.hi) || !isfinite(v->param.lo) || !isfinite(v->param.hi)) {
        kiln_diag_error(d, v->loc, "parameter '%s': the random range [%g, %g] is not a finite range with low <= high",
                        v->name, v->param.lo, v->param.hi);
        return KILN_ERR_INVALID_ARGUMENT;
    }
    v->param.data_dtype = KILN_F32;
    return KILN_OK;
}

/* *silent_file: set to the failed file's index when the parameter cannot be
 * bound because its file failed to open (no message added). */
static kiln_status bind_value(kiln_graph *g, kiln_id id, kiln_diag *d, uint32_t *silent_file)
{
    *silent_file = KILN_WEIGHTS_ANY_FILE;
    if (id >= g->n_values || g->values[id].kind != KILN_VALUE_PARAM) {
        kiln_diag_error(d, (kiln_loc){0}, "internal error: value %u is not a parameter", (unsigned)id);
        return KILN_ERR_INVALID_ARGUMENT;
    }
    kiln_value *v = &g->values[id];
    switch (v->param.source) {
    case KILN_PARAM_INLINE:
        return KILN_OK;
    case KILN_PARAM_RANDOM:
        return bind_random(g, v, d);
    case KILN_PARAM_FILE:
        break;
    default:
        kiln_diag_error(d, v->loc, "internal error: parameter '%s' has an unknown source", v->name);
        return KILN_ERR_INTERNAL;
    }

    const char *key = v->param.key;
    if (!key) {
        kiln_diag_error(d, v->loc, "internal error: parameter '%s' has no weights key", v->name);
        return KILN_ERR_INTERNAL;
    }
    if (g->n_weight_files == 0) {
        kiln_diag_error(d, v->loc, "weights '%s': the model has no weights file", key);
        return KILN_ERR_WEIGHTS;
    }
    weights_set *w;
    weights_open(g, d, &w); /* its errors are the files' own; here only this value matters */
    if (!w || w->n < g->n_weight_files)
        return KILN_ERR_OUT_OF_MEMORY;

    const kiln_st_tensor *t = NULL;
    uint32_t fi = v->param.file;
    if (fi == KILN_WEIGHTS_ANY_FILE) {
        t = kiln_weights_find(g, key, &fi);
        if (!t) {
            for (size_t i = 0; i < w->n; i++) {
                if (w->slots[i].state != FILE_OPEN) {
                    *silent_file = (uint32_t)i;
                    return w->slots[i].state == FILE_FAILED ? KILN_ERR_WEIGHTS : KILN_ERR_OUT_OF_MEMORY;
                }
            }
            if (g->n_weight_files == 1)
                kiln_diag_error(d, v->loc, "weights '%s' not found in %s", key, file_name(g, 0));
            else
                kiln_diag_error(d, v->loc, "weights '%s' not found in any of the %zu weights files (%s, ...)",
                                key, g->n_weight_files, file_name(g, 0));
            return KILN_ERR_WEIGHTS;
        }
    } else {
        if (fi >= g->n_weight_files) {
            kiln_diag_error(d, v->loc, "internal error: parameter '%s' refers to weights file %u of %zu",
                            v->name, (unsigned)fi, g->n_weight_files);
            return KILN_ERR_INTERNAL;
        }
        if (w->slots[fi].state != FILE_OPEN) {
            *silent_file = fi;
            return w->slots[fi].state == FILE_FAILED ? KILN_ERR_WEIGHTS : KILN_ERR_OUT_OF_MEMORY;
        }
        t = kiln_st_find(w->slots[fi].file, key);
        if (!t) {
            kiln_diag_error(d, v->loc, "weights '%s' not found in %s", key, file_name(g, fi));
            return KILN_ERR_WEIGHTS;
        }
    }

    const char *fname = file_name(g, fi);
    if (t->dtype == KILN_DTYPE_COUNT) {
        kiln_diag_error(d, v->loc, "tensor '%s' in %s has dtype %s; kiln reads F32, F16, BF16, F64",
                        key, fname, t->dtype_name);
        return KILN_ERR_UNSUPPORTED;
    }
    if (t->rank > KILN_MAX_RANK) {
        kiln_diag_error(d, v->loc, "tensor '%s' in %s has rank %d; kiln reads tensors of rank up to %d",
                        key, fname, t->rank, KILN_MAX_RANK);
        return KILN_ERR_UNSUPPORTED;
    }
    const kiln_shape *want = &v->type.shape;
    int same = !want->batched && want->rank == t->rank;
    for (int i = 0; same && i < t->rank; i++)
        same = want->dims[i] == t->dims[i];
    if (!same) {
        char expected[256], found[256];
        kiln_shape_format(want, g->batch_name, expected, sizeof expected);
        format_dims(t->dims, t->rank, found, sizeof found);
        kiln_diag_error(d, v->loc, "weights '%s' in %s: expected %s, found %s", key, fname, expected,
                        found);
        return KILN_ERR_WEIGHTS;
    }
    v->param.file = fi;
    v->param.data_dtype = t->dtype;
    v->param.data = t->data;
    return KILN_OK;
}

kiln_status kiln_weights_bind_value(kiln_graph *g, kiln_id value, kiln_diag *d)
{
    uint32_t silent;
    return bind_value(g, value, d, &silent);
}

kiln_status kiln_weights_bind(kiln_graph *g, kiln_diag *d)
{
    weights_set *w;
    kiln_status status = weights_open(g, d, &w);
    /* one note per failed file, at the first parameter that reads it */
    unsigned char *noted = g->n_weight_files ? kiln_calloc(g->n_weight_files, 1) : NULL;
    for (size_t i = 0; i < g->n_values; i++) {
        if (g->values[i].kind != KILN_VALUE_PARAM)
            continue;
        uint32_t silent;
        kiln_status st = bind_value(g, (kiln_id)i, d, &silent);
        if (st != KILN_OK && status == KILN_OK)
            status = st;
        if (silent < g->n_weight_files && noted && !noted[silent] && w && silent < w->n &&
            w->slots[silent].state == FILE_FAILED) {
            noted[silent] = 1;
            kiln_diag_note(d, g->values[i].loc, "weights '%s' are read from %s, which could not be loaded",
                           g->values[i].param.key ? g->values[i].param.key : g->values[i].name,
                           file_name(g, silent));
        }
    }
    kiln_free(noted);
    return status;
}

/* The multi-index of flat element `i` of shape s: "[1,0,2]". */
static void element_index(const kiln_shape *s, uint64_t i, char *buf, size_t size)
{
    int64_t idx[KILN_MAX_RANK];
    for (int k = s->rank - 1; k >= 0; k--) {
        uint64_t dim = s->dims[k] > 0 ? (uint64_t)s->dims[k] : 1;
        idx[k] = (int64_t)(i % dim);
        i /= dim;
    }
    format_dims(idx, s->rank, buf, size);
}

/* The first element of v that is not finite, or (F64 data) that lies
 * beyond the range of f32; *value gets it. false when every one is fine. */
static bool first_bad(const kiln_value *v, uint64_t *at, double *value, bool *overflow)
{
    int64_t n = kiln_shape_elements(&v->type.shape, 1);
    size_t esize = kiln_dtype_size(v->param.data_dtype);
    const unsigned char *bytes = v->param.data;
    double chunk[1024];
    for (int64_t i = 0; i < n; i += 1024) {
        size_t m = (size_t)(n - i < 1024 ? n - i : 1024);
        kiln_dtype_to_f64(v->param.data_dtype, bytes + (size_t)i * esize, m, chunk);
        for (size_t k = 0; k < m; k++) {
            double x = chunk[k];
            /* 0x1.ffffffp127: halfway between FLT_MAX and the next power of
             * two; from there on, narrowing to f32 rounds to infinity. */
            bool over = v->param.data_dtype == KILN_F64 && isfinite(x) && fabs(x) >= 0x1.ffffffp127;
            if (!isfinite(x) || over) {
                *at = (uint64_t)i + k;
                *value = x;
                *overflow = over;
                return true;
            }
        }
    }
    return false;
}

kiln_status kiln_weights_check_values(const kiln_graph *g, kiln_diag *d)
{
    kiln_status status = KILN_OK;
    for (size_t i = 0; i < g->n_values; i++) {
        const kiln_value *v = &g->values[i];
        if (v->kind != KILN_VALUE_PARAM || !v->param.data || v->param.source == KILN_PARAM_RANDOM ||
            kiln_shape_elements(&v->type.shape, 1) < 0)
            continue;
        uint64_t at;
        double x;
        bool overflow;
        if (!first_bad(v, &at, &x, &overflow))
            continue;
        char where[600], index[256], what[64];
        if (v->param.source == KILN_PARAM_FILE)
            snprintf(where, sizeof where, "weights '%s' in %s", v->param.key ? v->param.key : v->name,
                     file_name(g, v->param.file));
        else
            snprintf(where, sizeof where, "parameter '%s' (data in the IR text)", v->name);
        element_index(&v->type.shape, at, index, sizeof index);
        if (isnan(x))
            snprintf(what, sizeof what, "NaN");
        else
            snprintf(what, sizeof what, "%s%s", x < 0 ? "-" : "", isinf(x) ? "infinity" : "");
        if (overflow)
            kiln_diag_error(d, v->loc, "%s: element %s (index %llu) is %.9g, beyond the range of f32 (largest "
                            "3.4028235e+38): it would become infinite when kiln narrows the F64 tensor to f32 "
                            "(--allow-nonfinite accepts it)", where, index, (unsigned long long)at, x);
        else
            kiln_diag_error(d, v->loc, "%s: element %s (index %llu) is %s; kiln refuses weights that are not "
                            "finite (--allow-nonfinite accepts them)", where, index, (unsigned long long)at, what);
        status = KILN_ERR_WEIGHTS;
    }
    return status;
}
