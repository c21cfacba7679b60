/* compiler/driver/calibration.c: reads --calibration data (a safetensors
 * file, a folder of NAME.npy files, or `random`) and checks it against the
 * model's inputs. Every problem is reported, not only the first. */
#include "calibration.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "compiler/frontend/safetensors.h"
#include "npy.h"

static void report(const char *where, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(const char *where, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: error: ", where);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* One sample of input v: its shape without the batch axis, or all of it. */
static void sample_shape(const kiln_graph *g, kiln_id v, int *rank, int64_t *dims)
{
    const kiln_shape *s = &kiln_graph_value(g, v)->type.shape;
    int from = s->batched ? 1 : 0;
    *rank = s->rank - from;
    for (int i = from; i < s->rank; i++)
        dims[i - from] = s->dims[i];
}

/* "[samples,1,28,28]" (want) or "[16,1,28,27]" (got) */
static void format_dims(char *buf, size_t size, const char *first, int rank, const int64_t *dims)
{
    size_t w = (size_t)snprintf(buf, size, "[%s", first ? first : "");
    for (int i = 0; i < rank && w < size; i++)
        w += (size_t)snprintf(buf + w, size - w, "%s%lld", (i || first) ? "," : "", (long long)dims[i]);
    if (w < size)
        snprintf(buf + w, size - w, "]");
}

static int input_index(const kiln_graph *g, const char *name)
{
    for (size_t k = 0; k < g->n_inputs; k++)
        if (strcmp(kiln_graph_value(g, g->inputs[k])->name, name) == 0)
            return (int)k;
    return -1;
}

static void input_list(const kiln_graph *g, char *buf, size_t size)
{
    size_t w = 0;
    buf[0] = '\0';
    for (size_t k = 0; k < g->n_inputs && w < size; k++)
        w += (size_t)snprintf(buf + w, size - w, "%s%s", k ? ", " : "", kiln_graph_value(g, g->inputs[k])->name);
}

/* Checks one tensor (rank, dims, the element type already known F32) for
 * input k; records its sample count. 0 or 1 (reported). */
static int check_tensor(const kiln_graph *g, size_t k, const char *where, const char *what, int rank,
                        const int64_t *dims, int64_t *samples)
{
    int srank;
    int64_t sdims[KILN_MAX_RANK];
    sample_shape(g, g->inputs[k], &srank, sdims);
    const kiln_value *v = kiln_graph_value(g, g->inputs[k]);
    bool ok = rank == srank + 1 && rank <= KILN_MAX_RANK;
    for (int i = 0; ok && i < srank; i++)
        ok = dims[i + 1] == sdims[i];
    if (!ok) {
        char want[160], got[160], type[160];
        format_dims(want, sizeof want, "samples", srank, sdims);
        format_dims(got, sizeof got, NULL, rank < KILN_MAX_RANK ? rank : KILN_MAX_RANK, dims);
        kiln_shape_format(&v->type.shape, g->batch_name, type, sizeof type);
        report(where, "%s has shape %s: input '%s' (f32%s) needs %s (the first axis counts the samples)", what, got,
               v->name, type, want);
        return 1;
    }
    if (dims[0] < 1) {
        report(where, "%s has no samples (its first axis is 0)", what);
        return 1;
    }
    *samples = dims[0];
    return 0;
}

/* Calibration data must be finite: a NaN or an infinity would make every
 * range and every error measured on it meaningless (a NaN error compares
 * as within any budget). Reports the first bad element as sample and index
 * within the sample. */
static int check_finite(const char *where, const char *what, const float *x, int64_t samples, size_t per_sample)
{
    size_t n = (size_t)samples * per_sample;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            report(where, "%s holds %s at sample %zu, element %zu: calibration data must be finite", what,
                   isnan(x[i]) ? "NaN" : x[i] > 0 ? "+inf" : "-inf", per_sample ? i / per_sample : 0,
                   per_sample ? i % per_sample : 0);
            return 1;
        }
    return 0;
}

static int alloc_tables(kiln_calib *c, const kiln_graph *g)
{
    c->n_inputs = g->n_inputs;
    c->data = calloc(g->n_inputs + 1, sizeof *c->data);
    c->per_sample = calloc(g->n_inputs + 1, sizeof *c->per_sample);
    if (!c->data || !c->per_sample)
        return -1;
    for (size_t k = 0; k < g->n_inputs; k++) {
        int rank;
        int64_t dims[KILN_MAX_RANK], n = 1;
        sample_shape(g, g->inputs[k], &rank, dims);
        for (int i = 0; i < rank; i++)
            n *= dims[i];
        c->per_sample[k] = (size_t)n;
    }
    return 0;
}

/* After every tensor was checked: inputs without data, differing counts. */
static int check_counts(const kiln_graph *g, const char *where, const int64_t *samples, const bool *found,
                        const char *unit)
{
    int bad = 0;
    for (size_t k = 0; k < g->n_inputs; k++)
        if (!found[k]) {
            int srank;
            int64_t sdims[KILN_MAX_RANK];
            char want[160];
            sample_shape(g, g->inputs[k], &srank, sdims);
            format_dims(want, sizeof want, "samples", srank, sdims);
            const char *name = kiln_graph_value(g, g->inputs[k])->name;
            if (strcmp(unit, "npy") == 0)
                report(where, "no %s.npy for input '%s': expected F32 %s", name, name, want);
            else
                report(where, "no tensor for input '%s': expected F32 %s", name, want);
            bad = 1;
        }
    size_t first = g->n_inputs;
    for (size_t k = 0; k < g->n_inputs; k++) {
        if (samples[k] <= 0)
            continue;
        if (first == g->n_inputs) {
            first = k;
            continue;
        }
        if (samples[k] != samples[first]) {
            report(where, "input '%s' has %lld samples, '%s' has %lld: every input needs the same number",
                   kiln_graph_value(g, g->inputs[k])->name, (long long)samples[k],
                   kiln_graph_value(g, g->inputs[first])->name, (long long)samples[first]);
            bad = 1;
        }
    }
    return bad;
}

static int load_safetensors(kiln_calib *c, const char *path, const kiln_graph *g, int64_t *samples, bool *found)
{
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_st_file *f = NULL;
    kiln_status st = kiln_st_open(path, &f, &d);
    kiln_diag_print(&d, stderr);
    kiln_diag_release(&d);
    if (st != KILN_OK)
        return 1;
    int bad = 0;
    char inputs[512];
    input_list(g, inputs, sizeof inputs);
    for (size_t i = 0; i < kiln_st_count(f); i++) {
        const kiln_st_tensor *t = kiln_st_at(f, i);
        char what[320];
        snprintf(what, sizeof what, "tensor '%s'", t->name);
        int k = input_index(g, t->name);
        if (k < 0) {
            report(path, "tensor '%s' is not an input of model '%s' (its inputs: %s)", t->name, g->name, inputs);
            bad = 1;
            continue;
        }
        found[k] = true;
        if (strcmp(t->dtype_name, "F32") != 0) {
            report(path, "tensor '%s' is %s: calibration data must be F32", t->name, t->dtype_name);
            bad = 1;
            continue;
        }
        if (check_tensor(g, (size_t)k, path, what, t->rank, t->dims, &samples[k]) != 0) {
            bad = 1;
            continue;
        }
        size_t n = (size_t)samples[k] * c->per_sample[k];
        if (!(c->data[k] = malloc((n ? n : 1) * sizeof(float)))) {
            report(path, "out of memory for tensor '%s'", t->name);
            bad = 1;
            continue;
        }
        if (n)
            memcpy(c->data[k], t->data, n * sizeof(float)); /* the mapping is not aligned */
        bad |= check_finite(path, what, c->data[k], samples[k], c->per_sample[k]);
    }
    kiln_st_close(f);
    return bad | check_counts(g, path, samples, found, "tensor");
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int load_folder(kiln_calib *c, const char *dir, const kiln_graph *g, int64_t *samples, bool *found)
{
    DIR *dp = opendir(dir);
    if (!dp) {
        report(dir, "cannot read the folder");
        return 1;
    }
    /* the folder's NAME.npy files, sorted: the messages do not depend on
     * the order readdir returns */
    char **names = NULL;
    size_t n = 0, cap = 0;
    int bad = 0;
    for (struct dirent *e; (e = readdir(dp));) {
        size_t len = strlen(e->d_name);
        if (len <= 4 || strcmp(e->d_name + len - 4, ".npy") != 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **p = realloc(names, cap * sizeof *names);
            if (!p) {
                bad = 1;
                break;
            }
            names = p;
        }
        if (!(names[n] = strdup(e->d_name))) {
            bad = 1;
            break;
        }
        n++;
    }
    closedir(dp);
    if (bad) {
        report(dir, "out of memory");
        goto done;
    }
    if (n > 1)
        qsort(names, n, sizeof *names, cmp_str);
    char inputs[512];
    input_list(g, inputs, sizeof inputs);
    for (size_t i = 0; i < n; i++) {
        char path[4096], err[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        names[i][strlen(names[i]) - 4] = '\0';
        int k = input_index(g, names[i]);
        if (k < 0) {
            report(path, "'%s' is not an input of model '%s' (its inputs: %s)", names[i], g->name, inputs);
            bad = 1;
            continue;
        }
        found[k] = true;
        kiln_npy a;
        if (kiln_npy_read(path, &a, err, sizeof err) != KILN_OK) {
            fprintf(stderr, "%s\n", err);
            bad = 1;
            continue;
        }
        if (a.from_f64) {
            report(path, "the array is float64 ('<f8'): calibration data must be float32 ('<f4')");
            bad = 1;
        } else if (check_tensor(g, (size_t)k, path, "the array", a.rank, a.dims, &samples[k]) != 0) {
            bad = 1;
        } else {
            c->data[k] = a.data; /* ownership moves to c */
            a.data = NULL;
            bad |= check_finite(path, "the array", c->data[k], samples[k], c->per_sample[k]);
        }
        kiln_npy_free(&a);
    }
    bad |= check_counts(g, dir, samples, found, "npy");
done:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return bad;
}

static bool all_batched(const kiln_graph *g)
{
    for (size_t k = 0; k < g->n_inputs; k++)
        if (!kiln_graph_value(g, g->inputs[k])->type.shape.batched)
            return false;
    for (size_t k = 0; k < g->n_outputs; k++)
        if (!kiln_graph_value(g, g->outputs[k])->type.shape.batched)
            return false;
    return true;
}

int kiln_calib_load(kiln_calib *c, const char *source, const kiln_graph *g, const char *cmd)
{
    *c = (kiln_calib){.source = source, .random = strcmp(source, "random") == 0};
    int64_t *samples = calloc(g->n_inputs + 1, sizeof *samples);
    bool *found = calloc(g->n_inputs + 1, sizeof *found);
    int bad = 0;
    if (!samples || !found || alloc_tables(c, g) != 0) {
        bad = kiln_cli_error(cmd, "out of memory");
        goto done;
    }
    if (c->random) {
        c->samples = KILN_CALIB_RANDOM_SAMPLES;
        for (size_t k = 0; k < g->n_inputs && !bad; k++) {
            size_t n = (size_t)c->samples * c->per_sample[k];
            if (!(c->data[k] = malloc((n ? n : 1) * sizeof(float))))
                bad = kiln_cli_error(cmd, "out of memory");
            else
                kiln_fill_random(c->data[k], n, KILN_CALIB_RANDOM_SEED + k);
        }
        goto done;
    }
    struct stat sb;
    if (stat(source, &sb) != 0) {
        bad = kiln_cli_error(cmd, "cannot read the calibration data '%s': %s", source, strerror(errno));
        goto done;
    }
    c->folder = S_ISDIR(sb.st_mode);
    bad = c->folder ? load_folder(c, source, g, samples, found) : load_safetensors(c, source, g, samples, found);
    for (size_t k = 0; !bad && k < g->n_inputs; k++)
        c->samples = samples[k];
    if (!bad && g->n_inputs == 0)
        bad = kiln_cli_error(cmd, "model '%s' has no inputs to calibrate", g->name);
done:
    free(samples);
    free(found);
    c->batched = all_batched(g);
    if (bad)
        kiln_calib_free(c);
    return bad ? 1 : 0;
}

void kiln_calib_free(kiln_calib *c)
{
    for (size_t k = 0; c->data && k < c->n_inputs; k++)
        free(c->data[k]);
    free(c->data);
    free(c->per_sample);
    *c = (kiln_calib){0};
}

void kiln_calib_describe(const kiln_calib *c, char *buf, size_t size)
{
    if (c->random)
        snprintf(buf, size, "%lld random samples (uniform in [-1, 1), seed %u)", (long long)c->samples,
                 KILN_CALIB_RANDOM_SEED);
    else
        snprintf(buf, size, "%lld sample%s from %s", (long long)c->samples, c->samples == 1 ? "" : "s", c->source);
}

int64_t kiln_calib_chunk(const kiln_calib *c, int64_t first, int64_t max_batch, const float **in)
{
    int64_t n = c->batched ? c->samples - first : 1;
    if (n > max_batch)
        n = max_batch;
    for (size_t k = 0; k < c->n_inputs; k++)
        in[k] = c->data[k] + (size_t)first * c->per_sample[k];
    return n;
}
