/* tests/codegen/cg_util.c: see cg_util.h. */
#include "cg_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compiler/interp/interp.h"

static uint64_t splitmix(uint64_t *s)
{
    uint64_t x = (*s += 0x9E3779B97F4A7C15ull);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

void tg_fill(float *x, size_t n, uint64_t seed, double lo, double hi)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(lo + (hi - lo) * ((double)(splitmix(&s) >> 11) / 9007199254740992.0));
}

kiln_graph *tg_new(const char *name)
{
    kiln_graph *g = kiln_graph_create(name);
    if (g)
        g->batch_name = kiln_arena_strdup(&g->arena, "batch");
    return g;
}

static kiln_type f32_type(int rank, const int64_t *dims)
{
    kiln_type t;
    memset(&t, 0, sizeof t);
    t.dtype = KILN_F32;
    t.shape.rank = rank;
    for (int i = 0; i < rank; i++)
        t.shape.dims[i] = dims[i] < 0 ? KILN_DIM_BATCH : dims[i];
    t.shape.batched = rank > 0 && dims[0] < 0;
    return t;
}

kiln_id tg_input(kiln_graph *g, const char *name, int rank, const int64_t *dims)
{
    kiln_type t = f32_type(rank, dims);
    return kiln_graph_add_input(g, name, &t, (kiln_loc){0});
}

kiln_id tg_param(kiln_graph *g, const char *name, int rank, const int64_t *dims, double lo, double hi)
{
    kiln_type t = f32_type(rank, dims);
    int64_t n = kiln_shape_elements(&t.shape, 1);
    float *data = kiln_arena_alloc_aligned(&g->arena, (size_t)(n ? n : 1) * sizeof(float));
    if (!data)
        return KILN_NO_ID;
    uint64_t seed = 1469598103934665603ull;
    for (const char *p = name; *p; p++)
        seed = (seed ^ (unsigned char)*p) * 1099511628211ull;
    tg_fill(data, (size_t)n, seed, lo, hi);
    kiln_param p;
    memset(&p, 0, sizeof p);
    p.source = KILN_PARAM_INLINE;
    p.data_dtype = KILN_F32;
    p.data = data;
    return kiln_graph_add_param(g, name, &t, &p, (kiln_loc){0});
}

static kiln_id last_node = KILN_NO_ID;

kiln_id tg_node(kiln_graph *g, kiln_op op, const kiln_id *inputs, uint32_t n_inputs, const char *out)
{
    for (uint32_t i = 0; i < n_inputs; i++)
        if (inputs[i] == KILN_NO_ID)
            return KILN_NO_ID;
    last_node = kiln_graph_add_node(g, op, inputs, n_inputs, out, out, (kiln_loc){0});
    return last_node == KILN_NO_ID ? KILN_NO_ID : kiln_graph_node(g, last_node)->output;
}

kiln_node *tg_last(kiln_graph *g) { return kiln_graph_node(g, last_node); }

bool tg_finish(kiln_graph *g)
{
    kiln_node_apply_defaults(tg_last(g));
    char err[512];
    if (kiln_ir_infer_node(g, last_node, err, sizeof err) != KILN_OK) {
        fprintf(stderr, "tg_finish: %s: %s\n", tg_last(g)->layer, err);
        return false;
    }
    return true;
}

void tg_output(kiln_graph *g, kiln_id v) { kiln_graph_add_output(g, v); }

/* ---- target rows ------------------------------------------------------------------- */

#if defined(__x86_64__)
static tg_target rows[] = {
    {"avx512", "x86-64-v4", 16, false},
    {"avx2", "x86-64-v3", 8, false},
    {"sse", "x86-64-v2", 4, false},
};
#elif defined(__aarch64__)
static tg_target rows[] = {{"neon", NULL, 4, true}};
#else
static tg_target rows[] = {{"generic", NULL, 4, true}};
#endif
#define N_ROWS ((int)(sizeof rows / sizeof rows[0]))

static int current = -1;              /* the selected row, -1: none (the host) */
static bool rows_ready;
static int ran[N_ROWS], compiled[N_ROWS]; /* checks per row, for the summary */

/* Which rows the host executes, and which one is its own (the host CPU). */
static void rows_init(void)
{
    if (rows_ready)
        return;
    rows_ready = true;
#if defined(__x86_64__)
    __builtin_cpu_init();
    rows[0].runnable = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                       __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
                       __builtin_cpu_supports("avx512vl");
    rows[1].runnable = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                       __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("f16c");
    rows[2].runnable = __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("popcnt");
    /* KILN_TEST_COMPILE_ONLY=avx512,avx2 treats those rows as not
     * executable (to exercise the compile-only path on any host). */
    const char *only = getenv("KILN_TEST_COMPILE_ONLY");
    for (int i = 0; only && i < N_ROWS; i++) {
        size_t n = strlen(rows[i].name);
        for (const char *p = strstr(only, rows[i].name); p; p = strstr(p + 1, rows[i].name))
            if ((p == only || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
                rows[i].runnable = false;
    }
    /* The host's own row is the one `kiln compile` picks without --cpu. */
    int host_lanes = kiln_cg_layout_block(NULL);
    for (int i = 0; i < N_ROWS; i++)
        if (rows[i].runnable && rows[i].lanes == host_lanes) {
            rows[i].cpu = NULL;
            break;
        }
#endif
}

int tg_target_count(void) { return N_ROWS; }

const tg_target *tg_target_at(int i)
{
    rows_init();
    return i >= 0 && i < N_ROWS ? &rows[i] : NULL;
}

const tg_target *tg_current_target(void) { return current >= 0 ? tg_target_at(current) : NULL; }

kiln_cg_options tg_target_options(void)
{
    kiln_cg_options o = KILN_CG_OPTIONS_INIT;
    const tg_target *t = tg_current_target();
    if (t)
        o.cpu = t->cpu;
    return o;
}

static void summary(void)
{
    char done[256] = "", only[256] = "";
    for (int i = 0; i < N_ROWS; i++) {
        char *dst = ran[i] ? done : compiled[i] ? only : NULL;
        if (!dst)
            continue;
        size_t len = strlen(dst);
        snprintf(dst + len, 256 - len, "%s%s (%s)", len ? ", " : "", rows[i].name,
                 rows[i].cpu ? rows[i].cpu : "host cpu");
    }
    printf("\ntargets run and compared with the interpreter: %s\ntargets compiled only (not executable here): %s\n",
           *done ? done : "none", *only ? only : "none");
}

static int select_row(int i)
{
    rows_init();
    if (i >= N_ROWS)
        return 1;
    current = i;
    return 0;
}
static int select_row0(void) { return select_row(0); }
static int select_row1(void) { return select_row(1); }
static int select_row2(void) { return select_row(2); }
static int select_row3(void) { return select_row(3); }
static int select_none(void)
{
    current = -1;
    return 0;
}

void tg_add_suites(const char *name, void (*add)(CU_pSuite s))
{
    static int (*const init[])(void) = {select_row0, select_row1, select_row2, select_row3};
    _Static_assert(N_ROWS <= (int)(sizeof init / sizeof init[0]), "a selector per target row");
    static bool registered;
    rows_init();
    if (!registered && atexit(summary) == 0)
        registered = true;
    for (int i = 0; i < N_ROWS; i++) {
        char title[128];
        snprintf(title, sizeof title, "%s [%s%s]", name, rows[i].name, rows[i].runnable ? "" : ", compile only");
        CU_pSuite s = CU_add_suite(title, init[i], select_none);
        if (s)
            add(s);
    }
}

/* Compiles g for a row the host cannot run: the whole pipeline to an
 * object (LLVM verifies and lowers every kernel). 0 on success, -1 after
 * printing the failure. */
static double compile_only(const kiln_graph *g, const kiln_cg_options *o)
{
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_cg_module *m = NULL;
    char path[] = "/tmp/kiln_tg_XXXXXX";
    int fd = mkstemp(path);
    double r = 0.0;
    if (fd < 0 || kiln_cg_compile(g, o, &m, &d) != KILN_OK || kiln_cg_emit(m, KILN_CG_EMIT_OBJ, path, &d) != KILN_OK) {
        fprintf(stderr, "model '%s': compilation for %s failed\n", g->name, o->cpu ? o->cpu : "the host");
        kiln_diag_print(&d, stderr);
        r = -1.0;
    }
    if (fd >= 0) {
        close(fd);
        unlink(path);
    }
    kiln_cg_module_destroy(m);
    kiln_diag_release(&d);
    return r;
}

static const float *input_values;
static size_t n_input_values;

void tg_set_input_values(const float *v, size_t n)
{
    input_values = n ? v : NULL;
    n_input_values = v ? n : 0;
}

double tg_check_default(const kiln_graph *g)
{
    static const int64_t batches[] = {1, 3, 17};
    static const int threads[] = {1, 2, 3};
    return tg_check(g, NULL, batches, 3, threads, 3);
}

static size_t elems(const kiln_graph *g, kiln_id v, int64_t batch)
{
    int64_t n = kiln_shape_elements(&kiln_graph_value(g, v)->type.shape, batch);
    return n < 0 ? 0 : (size_t)n;
}

static bool exact_mode;

void tg_set_exact(bool on) { exact_mode = on; }

/* Units in the last place between two floats (their bits as a monotone
 * integer line); 0 when equal (+0 and -0 are equal). */
static double ulps_apart(float a, float b)
{
    if (a == b)
        return 0.0;
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    int64_t la = ia < 0 ? (int64_t)INT32_MIN - ia : ia, lb = ib < 0 ? (int64_t)INT32_MIN - ib : ib;
    return (double)(la > lb ? la - lb : lb - la);
}

double tg_check(const kiln_graph *g, const kiln_cg_options *opt, const int64_t *batches, int n_batches,
                const int *threads, int n_threads)
{
    return tg_check_ref(g, g, opt, batches, n_batches, threads, n_threads, 1e-2, 1e-4);
}

double tg_check_ref(const kiln_graph *g, const kiln_graph *ref_graph, const kiln_cg_options *opt,
                    const int64_t *batches, int n_batches, const int *threads, int n_threads, double floor,
                    double report_above)
{
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_cg_options o = KILN_CG_OPTIONS_INIT;
    if (opt)
        o = *opt;
    const tg_target *row = tg_current_target();
    if (row && !o.cpu && !o.triple && !o.features)
        o.cpu = row->cpu;
    if (row && !row->runnable) {
        compiled[current]++;
        return compile_only(g, &o);
    }
    if (row)
        ran[current]++;
    o.jit = true;
    kiln_cg_module *m = NULL;
    kiln_cg_jit *j = NULL;
    kiln_cg_entry e;
    double worst = 0.0;
    bool batched = false;
    for (size_t i = 0; i < g->n_inputs; i++)
        batched |= kiln_graph_value(g, g->inputs[i])->type.shape.batched;
    if (kiln_cg_compile(g, &o, &m, &d) != KILN_OK || kiln_cg_jit_create(m, &j, &d) != KILN_OK ||
        kiln_cg_jit_entry(j, &e, &d) != KILN_OK) {
        fprintf(stderr, "model '%s': compilation failed\n", g->name);
        kiln_diag_print(&d, stderr);
        worst = -1.0;
        goto done;
    }
    for (int bi = 0; bi < n_batches && worst >= 0; bi++) {
        int64_t batch = batched ? batches[bi] : 1;
        if (!batched && bi > 0)
            break;
        float **in = calloc(g->n_inputs + 1, sizeof *in);
        float **out = calloc(g->n_outputs + 1, sizeof *out), **first = calloc(g->n_outputs + 1, sizeof *first);
        kiln_interp *it = NULL;
        kiln_interp_create(ref_graph, batch, NULL, &it);
        for (size_t i = 0; i < g->n_inputs; i++) {
            size_t n = elems(g, g->inputs[i], batch);
            in[i] = malloc((n ? n : 1) * sizeof(float));
            tg_fill(in[i], n, 1000u * (uint64_t)batch + i, -2.0, 2.0);
            for (size_t k = 0; input_values && k < n; k++)
                in[i][k] = input_values[(k + 7u * (size_t)batch) % n_input_values];
            kiln_interp_set_input(it, i, in[i]);
        }
        kiln_diag_release(&d);
        kiln_diag_init(&d);
        if (kiln_interp_run(it, &d) != KILN_OK) {
            fprintf(stderr, "model '%s': the interpreter failed\n", g->name);
            kiln_diag_print(&d, stderr);
            worst = -1.0;
        }
        for (size_t k = 0; k < g->n_outputs; k++) {
            size_t n = elems(g, g->outputs[k], batch);
            out[k] = malloc((n ? n : 1) * sizeof(float));
            first[k] = malloc((n ? n : 1) * sizeof(float));
        }
        for (int ti = 0; ti < n_threads && worst >= 0; ti++) {
            kiln_options ko = KILN_OPTIONS_INIT;
            ko.num_threads = threads[ti];
            void *inst = NULL;
            kiln_status st = e.create(&inst, &ko);
            for (size_t k = 0; k < g->n_outputs; k++) {
                size_t n = elems(g, g->outputs[k], batch);
                for (size_t i = 0; i < n; i++)
                    out[k][i] = NAN;
            }
            if (st == KILN_OK)
                st = e.run_array(inst, batch, (const float *const *)in, out);
            e.destroy(inst);
            if (st != KILN_OK) {
                fprintf(stderr, "model '%s': run failed (batch %lld, %d threads): %s\n", g->name, (long long)batch,
                        threads[ti], kiln_status_string(st));
                worst = -1.0;
                break;
            }
            for (size_t k = 0; k < g->n_outputs; k++) {
                size_t n = elems(g, g->outputs[k], batch), count = 0;
                const double *ref = kiln_interp_output(it, k, &count);
                if (!ref || count != n) {
                    fprintf(stderr, "model '%s': output %zu: no reference\n", g->name, k);
                    worst = -1.0;
                    break;
                }
                double maxref = 0.0;
                for (size_t i = 0; i < n; i++)
                    if (isfinite(ref[i]) && fabs(ref[i]) > maxref)
                        maxref = fabs(ref[i]);
                for (size_t i = 0; i < n; i++) {
                    double a = out[k][i], b = ref[i], err;
                    if (isnan(b) || isnan(a))
                        err = isnan(a) && isnan(b) ? 0.0 : INFINITY;
                    else if (exact_mode)
                        err = ulps_apart((float)a, (float)b);
                    else if (isinf(b) || isinf(a))
                        err = a == b ? 0.0 : INFINITY;
                    else {
                        double scale = fmax(fmax(fabs(b), floor * maxref), 1e-30);
                        err = fabs(a - b) / scale;
                    }
                    if (err > worst) {
                        if (err > report_above)
                            fprintf(stderr, "model '%s': output %zu[%zu] (batch %lld, %d threads): %.9g vs %.9g\n",
                                    g->name, k, i, (long long)batch, threads[ti], a, b);
                        worst = err;
                    }
                }
                if (ti == 0)
                    memcpy(first[k], out[k], n * sizeof(float));
                else if (memcmp(first[k], out[k], n * sizeof(float)) != 0) {
                    fprintf(stderr, "model '%s': output %zu differs between %d and %d threads\n", g->name, k,
                            threads[0], threads[ti]);
                    worst = INFINITY;
                }
            }
        }
        kiln_interp_destroy(it);
        for (size_t i = 0; i < g->n_inputs; i++)
            free(in[i]);
        for (size_t k = 0; k < g->n_outputs; k++) {
            free(out[k]);
            free(first[k]);
        }
        free(in);
        free(out);
        free(first);
    }
done:
    kiln_cg_jit_destroy(j);
    kiln_cg_module_destroy(m);
    kiln_diag_release(&d);
    return worst;
}
