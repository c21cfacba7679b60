/* kiln_timer: times one kiln-compiled model through its generated C API.
 *
 *   kiln_timer --name NAME [--so LIB.so] --batch N --threads T
 *              [--inputs a.bin,b.bin] [--refs y.bin[,z.bin]] [--tol 1e-3]
 *              [--min-time S] [--min-iters K] [--max-time S] [--warmup-time S]
 *              [--save PREFIX]
 *
 * Opens the shared library (or, without --so, this executable itself, for a
 * timer linked with the model's object and -rdynamic), finds NAME_create,
 * NAME_run, NAME_info and NAME_destroy with dlsym, sizes the inputs and
 * outputs from NAME_info(), reads the inputs (raw little-endian float32),
 * runs the model once and compares every output with its reference
 * (max |y - ref| / max |ref|). Only when all outputs are within the
 * tolerance does it time: warm-up runs, then K timed runs of NAME_run, each
 * timed on its own. Without --inputs the inputs are a fixed pseudo-random
 * pattern; without --refs nothing is checked ("checked": false). When the
 * model calls OpenBLAS (through libkiln_rt_blas), "openblas_core" names the
 * kernels OpenBLAS picked (OPENBLAS_CORETYPE, or the CPU id).
 * --save PREFIX: after the check run, write output k to PREFIX.out<k>.bin
 * (raw float32) and stop without timing (the bench's held-out accuracy).
 * Prints one JSON object on stdout. Exit status 0 also for a mismatch
 * (reported as "valid": false); 1 for any other failure.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kiln/runtime.h>

#define MAX_ARGS 8

typedef kiln_status (*create_fn)(void **out, const kiln_options *opt);
typedef const kiln_model_info *(*info_fn)(void);
typedef void (*destroy_fn)(void *m);
typedef size_t (*wsize_fn)(int64_t batch);

typedef float *F;
typedef kiln_status (*run1)(void *, int64_t, F);
typedef kiln_status (*run2)(void *, int64_t, F, F);
typedef kiln_status (*run3)(void *, int64_t, F, F, F);
typedef kiln_status (*run4)(void *, int64_t, F, F, F, F);
typedef kiln_status (*run5)(void *, int64_t, F, F, F, F, F);
typedef kiln_status (*run6)(void *, int64_t, F, F, F, F, F, F);
typedef kiln_status (*run7)(void *, int64_t, F, F, F, F, F, F, F);
typedef kiln_status (*run8)(void *, int64_t, F, F, F, F, F, F, F, F);

static void *run_sym;
static int n_args;
static float *args[MAX_ARGS];

static kiln_status call_run(void *m, int64_t batch)
{
    float **a = args;
    switch (n_args) {
    case 1: return ((run1)run_sym)(m, batch, a[0]);
    case 2: return ((run2)run_sym)(m, batch, a[0], a[1]);
    case 3: return ((run3)run_sym)(m, batch, a[0], a[1], a[2]);
    case 4: return ((run4)run_sym)(m, batch, a[0], a[1], a[2], a[3]);
    case 5: return ((run5)run_sym)(m, batch, a[0], a[1], a[2], a[3], a[4]);
    case 6: return ((run6)run_sym)(m, batch, a[0], a[1], a[2], a[3], a[4], a[5]);
    case 7: return ((run7)run_sym)(m, batch, a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
    case 8: return ((run8)run_sym)(m, batch, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
    }
    return KILN_ERR_INVALID_ARGUMENT;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fail(const char *fmt, const char *a, const char *b)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, a, b);
    /* JSON-safe enough: the messages below contain no quotes or backslashes
     * except from file names, which we replace. */
    for (char *p = msg; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
            *p = '\'';
    printf("{\"runtime\": \"kiln\", \"valid\": false, \"error\": \"%s\"}\n", msg);
    exit(1);
}

static char *split_next(char **s)
{
    char *p = *s, *c;
    if (!p || !*p)
        return NULL;
    c = strchr(p, ',');
    if (c) {
        *c = 0;
        *s = c + 1;
    } else {
        *s = p + strlen(p);
    }
    return p;
}

static float *read_floats(const char *path, size_t n)
{
    FILE *f = fopen(path, "rb");
    float *p;
    long size;
    if (!f)
        fail("cannot open %s%s", path, "");
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (size < 0 || (size_t)size != n * sizeof(float)) {
        fclose(f);
        fail("%s: size does not match the model (%s)", path, "info dims x batch");
    }
    p = aligned_alloc(64, ((n * sizeof(float)) + 63) / 64 * 64);
    if (!p || fread(p, sizeof(float), n, f) != n)
        fail("cannot read %s%s", path, "");
    fclose(f);
    return p;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *name = NULL, *so = NULL, *inputs = NULL, *refs = NULL, *save = NULL;
    long batch = 1;
    int threads = 1, min_iters = 10;
    double tol = 1e-3, min_time = 0.5, max_time = 5.0, warmup_time = 0.2;
    char sym[512];

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            fail("missing value after %s%s", a, "");
        if (!strcmp(a, "--name")) name = v;
        else if (!strcmp(a, "--so")) so = v;
        else if (!strcmp(a, "--batch")) batch = atol(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--inputs")) inputs = v;
        else if (!strcmp(a, "--refs")) refs = v;
        else if (!strcmp(a, "--tol")) tol = atof(v);
        else if (!strcmp(a, "--min-time")) min_time = atof(v);
        else if (!strcmp(a, "--min-iters")) min_iters = atoi(v);
        else if (!strcmp(a, "--max-time")) max_time = atof(v);
        else if (!strcmp(a, "--warmup-time")) warmup_time = atof(v);
        else if (!strcmp(a, "--save")) save = v;
        else fail("unknown option %s%s", a, "");
        i++;
    }
    if (!name || batch < 1)
        fail("usage: kiln_timer --name NAME [--so LIB] --batch N --threads T [--inputs ...] [--refs ...]%s%s", "", "");

    void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        fail("dlopen: %s%s", dlerror(), "");
#define SYM(var, type, suffix)                                   \
    snprintf(sym, sizeof sym, "%s_" suffix, name);              \
    type var = (type)dlsym(h, sym);                              \
    if (!var)                                                    \
        fail("symbol %s not found%s", sym, "");
    SYM(create, create_fn, "create")
    SYM(info_f, info_fn, "info")
    SYM(destroy, destroy_fn, "destroy")
    snprintf(sym, sizeof sym, "%s_run", name);
    run_sym = dlsym(h, sym);
    if (!run_sym)
        fail("symbol %s not found%s", sym, "");
    snprintf(sym, sizeof sym, "%s_workspace_size", name);
    wsize_fn wsize = (wsize_fn)dlsym(h, sym);
    /* OpenBLAS is loaded (with the model) only if the model calls it;
     * RTLD_NOLOAD never loads it here. */
    char blas_core[64] = "";
    void *blas = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_NOLOAD);
    if (blas) {
        typedef char *(*corename_fn)(void);
        corename_fn corename = (corename_fn)dlsym(blas, "openblas_get_corename");
        const char *c = corename ? corename() : NULL;
        snprintf(blas_core, sizeof blas_core, "%s", c ? c : "");
        dlclose(blas); /* drops only the reference RTLD_NOLOAD took */
    }

    const kiln_model_info *info = info_f();
    n_args = info->num_inputs + info->num_outputs;
    if (n_args < 1 || n_args > MAX_ARGS)
        fail("%s: more than 8 inputs and outputs%s", name, "");

    size_t elems[MAX_ARGS];
    for (int k = 0; k < n_args; k++) {
        const kiln_tensor_info *t = k < info->num_inputs ? &info->inputs[k]
                                                         : &info->outputs[k - info->num_inputs];
        size_t n = 1;
        if (t->dtype != KILN_DTYPE_F32)
            fail("%s: only f32 inputs and outputs are handled%s", t->name, "");
        for (int d = 0; d < t->rank; d++) {
            if (t->dims[d] == -1)
                n *= (size_t)batch;
            else
                n *= (size_t)t->dims[d];
        }
        if (t->rank > 0 && t->dims[0] != -1 && batch != 1)
            fail("%s has fixed shapes: batch must be 1%s", name, "");
        elems[k] = n;
    }

    /* inputs and references */
    char *ins = inputs ? strdup(inputs) : NULL, *rs = refs ? strdup(refs) : NULL, *p;
    float *ref[MAX_ARGS] = {0};
    uint32_t seed = 12345;
    for (int k = 0; k < info->num_inputs; k++) {
        if (!inputs) {
            args[k] = aligned_alloc(64, (elems[k] * sizeof(float) + 63) / 64 * 64);
            for (size_t i = 0; i < elems[k]; i++) {
                seed = seed * 1664525u + 1013904223u;
                args[k][i] = (float)(seed >> 8) / 16777216.0f * 2.0f - 1.0f;
            }
            continue;
        }
        if (!(p = split_next(&ins)))
            fail("fewer --inputs than the model has%s%s", "", "");
        args[k] = read_floats(p, elems[k]);
    }
    for (int k = info->num_inputs; k < n_args; k++) {
        if (refs && !(p = split_next(&rs)))
            fail("fewer --refs than the model has outputs%s%s", "", "");
        if (refs)
            ref[k] = read_floats(p, elems[k]);
        args[k] = aligned_alloc(64, (elems[k] * sizeof(float) + 63) / 64 * 64);
        memset(args[k], 0xff, elems[k] * sizeof(float)); /* NaN: unwritten outputs fail */
    }

    kiln_options opt = KILN_OPTIONS_INIT;
    opt.num_threads = threads;
    void *m = NULL;
    double t0 = now();
    kiln_status st = create((void **)&m, &opt);
    double t_create = now() - t0;
    if (st != KILN_OK)
        fail("%s_create: %s", name, kiln_status_string(st));

    /* check run */
    t0 = now();
    st = call_run(m, batch);
    double t_first = now() - t0;
    if (st != KILN_OK)
        fail("%s_run: %s", name, kiln_status_string(st));
    double max_err = 0;
    for (int k = info->num_inputs; refs && k < n_args; k++) {
        double scale = 0, diff = 0;
        for (size_t i = 0; i < elems[k]; i++) {
            double r = ref[k][i], y = args[k][i];
            if (fabs(r) > scale)
                scale = fabs(r);
            if (!isfinite(y))
                diff = INFINITY;
            else if (fabs(y - r) > diff)
                diff = fabs(y - r);
        }
        double e = diff / (scale > 1e-30 ? scale : 1e-30);
        if (!(e <= max_err))
            max_err = e; /* also NaN */
    }
    size_t ws = wsize ? wsize(batch) : 0;
    printf("{\"runtime\": \"kiln\", \"model\": \"%s\", \"batch\": %ld, \"threads\": %d, "
           "\"create_s\": %.6g, \"first_s\": %.6g, \"max_err\": %.6g, \"weight_bytes\": %zu, "
           "\"workspace_bytes\": %zu, \"workspace_fixed_bytes\": %zu, \"workspace_per_batch_bytes\": %zu, "
           "\"checked\": %s",
           name, batch, threads, t_create, t_first, isfinite(max_err) ? max_err : 1e300,
           info->weight_bytes, ws, info->workspace_fixed_bytes, info->workspace_per_batch_bytes,
           refs ? "true" : "false");
    if (blas_core[0] && !strpbrk(blas_core, "\"\\"))
        printf(", \"openblas_core\": \"%s\"", blas_core);
    if (save) {
        for (int k = info->num_inputs; k < n_args; k++) {
            char path[1024];
            snprintf(path, sizeof path, "%s.out%d.bin", save, k - info->num_inputs);
            FILE *f = fopen(path, "wb");
            if (!f || fwrite(args[k], sizeof(float), elems[k], f) != elems[k] || fclose(f) != 0)
                fail("cannot write %s%s", path, "");
        }
        printf(", \"saved\": true, \"valid\": %s}\n", max_err <= tol ? "true" : "false");
        destroy(m);
        return 0;
    }
    if (!(max_err <= tol)) {
        printf(", \"valid\": false}\n");
        destroy(m);
        return 0;
    }

    /* warm-up: the check run counts; at least 2 runs and warmup_time */
    int warm = 1;
    double t_warm = t_first;
    while (warm < 2 || t_warm < warmup_time) {
        t0 = now();
        call_run(m, batch);
        t_warm += now() - t0;
        warm++;
        if (t_warm > max_time)
            break;
    }
    double est = t_warm / warm;
    long n = (long)ceil(min_time / (est > 1e-9 ? est : 1e-9));
    if (n < min_iters)
        n = min_iters;
    if (n > 1000000)
        n = 1000000;
    double *ts = malloc(sizeof(double) * (size_t)n);
    double total = 0;
    long done = 0;
    while (done < n) {
        t0 = now();
        st = call_run(m, batch);
        double dt = now() - t0;
        if (st != KILN_OK)
            fail("%s_run: %s", name, kiln_status_string(st));
        ts[done++] = dt;
        total += dt;
        if (total >= max_time && done >= 3)
            break;
    }
    qsort(ts, (size_t)done, sizeof(double), cmp_double);
    double med = done % 2 ? ts[done / 2] : 0.5 * (ts[done / 2 - 1] + ts[done / 2]);
    long i90 = (long)ceil(0.9 * (double)done) - 1;
    printf(", \"valid\": true, \"warmup\": %d, \"iters\": %ld, \"median_s\": %.9g, \"p90_s\": %.9g, "
           "\"min_s\": %.9g, \"mean_s\": %.9g, \"items_per_s\": %.9g}\n",
           warm, done, med, ts[i90 < 0 ? 0 : i90], ts[0], total / (double)done, (double)batch / med);
    destroy(m);
    return 0;
}
