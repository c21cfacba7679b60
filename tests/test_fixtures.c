/* tests/test_fixtures.c: the reference interpreter against PyTorch.
 *
 * Each case in tests/fixtures/torch (written by tools/gen_fixtures.py) is a
 * model.yaml with its weights, inputs in0.npy, in1.npy, ... and PyTorch's
 * outputs out0.npy, out1.npy, ... (computed in float64, stored as float32).
 * For every case named in the MANIFEST this loads the model with the YAML
 * frontend, runs the interpreter on the inputs and compares every output
 * element:
 *
 *     |got - want| <= 1e-5 * max(1, |want|)
 *
 * (the interpreter computes in double; the stored expectation is the exact
 * result rounded to float32, so an agreeing interpreter is within 2^-24
 * relative; 1e-5 leaves room for summation order only, not for a wrong
 * semantic). It also checks the number of outputs and their shapes. A
 * failure names the case, the output, the worst element (its index in the
 * output's shape), the value computed and the value expected.
 *
 * One CUnit test per case, registered from the MANIFEST at run time.
 *
 * Usage: test_fixtures [FIXTURE_DIR [CASE ...]]  (default KILN_FIXTURE_DIR;
 * naming cases runs only those).
 *
 * Links: kiln_frontend, kiln_interp, kiln_ir, the source
 * compiler/driver/npy.c (the driver is an executable, not a library), cunit,
 * m. Include path: the source root. Exits non-zero when a test fails or the
 * manifest cannot be read. */
#define _POSIX_C_SOURCE 200809L

#include <CUnit/Basic.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compiler/driver/npy.h"
#include "compiler/frontend/frontend.h"
#include "compiler/interp/interp.h"
#include "ir/diag.h"
#include "ir/graph.h"

#ifndef KILN_FIXTURE_DIR
#define KILN_FIXTURE_DIR "tests/fixtures/torch"
#endif

/* The tolerance: |got - want| <= FIXTURE_RTOL * max(1, |want|). */
#define FIXTURE_RTOL 1e-5

#define MAX_CASES 1000 /* one thunk per case below; more cases share one test */
#define MAX_PATH 4096

static const char *fixture_dir = KILN_FIXTURE_DIR;
static char **case_names;
static size_t n_cases;

/* ---- failures ----------------------------------------------------------- */

/* Records a failed assertion with a formatted message (CUnit copies it) and
 * prints it to stderr as it happens. */
static void fail(const char *case_name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(const char *case_name, const char *fmt, ...)
{
    char msg[1024];
    int n = snprintf(msg, sizeof msg, "%s: ", case_name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n  FAIL %s\n", msg);
    CU_assertImplementation(CU_FALSE, __LINE__, msg, __FILE__, "", CU_FALSE);
}

static void print_diag(const char *case_name, const kiln_diag *d)
{
    if (d->count == 0)
        return;
    fprintf(stderr, "\n  diagnostics for %s:\n", case_name);
    kiln_diag_print(d, stderr);
}

/* "[2,3,4]" */
static const char *dims_text(char *buf, size_t size, int rank, const int64_t *dims)
{
    size_t n = 0;
    n += (size_t)snprintf(buf + n, size - n, "[");
    for (int i = 0; i < rank && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%lld", i ? "," : "", (long long)dims[i]);
    if (n < size)
        snprintf(buf + n, size - n, "]");
    return buf;
}

/* The multi-index of flat element `flat` in a C-order array: "[1,0,2]". */
static const char *index_text(char *buf, size_t size, int rank, const int64_t *dims, size_t flat)
{
    int64_t idx[KILN_MAX_RANK] = {0};
    for (int i = rank - 1; i >= 0; i--) {
        if (dims[i] > 0) {
            idx[i] = (int64_t)(flat % (size_t)dims[i]);
            flat /= (size_t)dims[i];
        }
    }
    return dims_text(buf, size, rank, idx);
}

static int file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* ---- one case ------------------------------------------------------------ */

/* Compares output `oi` of the run with outN.npy. */
static void check_output(const char *name, const kiln_graph *g, const kiln_interp *it, size_t oi,
                         int64_t batch, const char dir[MAX_PATH])
{
    char path[MAX_PATH + 32], err[512], a[128], b[128];
    const kiln_value *v = kiln_graph_value(g, g->outputs[oi]);
    snprintf(path, sizeof path, "%s/out%zu.npy", dir, oi);
    kiln_npy want;
    if (kiln_npy_read(path, &want, err, sizeof err) != KILN_OK) {
        fail(name, "output %zu '%s': %s", oi, v->name, err);
        return;
    }

    /* shape: the value's type with the batch filled in */
    const kiln_shape *s = &v->type.shape;
    int64_t dims[KILN_MAX_RANK];
    for (int i = 0; i < s->rank; i++)
        dims[i] = (s->batched && i == 0) ? batch : s->dims[i];
    int same = s->rank == want.rank;
    for (int i = 0; same && i < s->rank; i++)
        same = dims[i] == want.dims[i];
    if (!same) {
        fail(name, "output %zu '%s': shape %s, PyTorch's is %s", oi, v->name,
             dims_text(a, sizeof a, s->rank, dims), dims_text(b, sizeof b, want.rank, want.dims));
        kiln_npy_free(&want);
        return;
    }

    size_t count = 0;
    const double *got = kiln_interp_output(it, oi, &count);
    if (!got || count != want.count) {
        fail(name, "output %zu '%s': %zu elements computed, %zu expected", oi, v->name, got ? count : 0,
             want.count);
        kiln_npy_free(&want);
        return;
    }

    size_t worst = 0, bad = 0;
    double worst_err = -1.0;
    for (size_t i = 0; i < count; i++) {
        double w = (double)want.data[i];
        double e = fabs(got[i] - w) / fmax(1.0, fabs(w));
        if (!(e <= FIXTURE_RTOL))
            bad++;
        if (!(e <= worst_err)) { /* NaN counts as worst */
            worst_err = e;
            worst = i;
        }
    }
    if (bad) {
        fail(name,
             "output %zu '%s' %s: %zu of %zu elements off; worst at %s: got %.9g, expected %.9g "
             "(error %.3g of max(1,|expected|), tolerance %g)",
             oi, v->name, dims_text(a, sizeof a, want.rank, want.dims), bad, count,
             index_text(b, sizeof b, want.rank, want.dims, worst), got[worst], (double)want.data[worst],
             worst_err, FIXTURE_RTOL);
    } else {
        CU_PASS("output matches PyTorch");
    }
    kiln_npy_free(&want);
}

static void run_case(const char *name)
{
    char dir[MAX_PATH], path[MAX_PATH + 32], err[512], a[128], b[128];
    snprintf(dir, sizeof dir, "%s/%s", fixture_dir, name);
    snprintf(path, sizeof path, "%s/model.yaml", dir);

    kiln_diag d;
    kiln_diag_init(&d);
    kiln_graph *g = NULL;
    kiln_interp *it = NULL;
    kiln_npy *inputs = NULL;
    size_t n_inputs = 0;

    kiln_status st = kiln_frontend_load(path, &g, &d);
    if (st != KILN_OK || !g || kiln_diag_has_errors(&d)) {
        print_diag(name, &d);
        fail(name, "loading %s failed: %s", path, kiln_status_string(st));
        goto done;
    }

    /* inputs: in0.npy ... in order; the batch is dim 0 of the batched ones */
    n_inputs = g->n_inputs;
    inputs = calloc(n_inputs ? n_inputs : 1, sizeof *inputs);
    if (!inputs) {
        fail(name, "out of memory");
        goto done;
    }
    int64_t batch = 1;
    for (size_t i = 0; i < n_inputs; i++) {
        snprintf(path, sizeof path, "%s/in%zu.npy", dir, i);
        if (kiln_npy_read(path, &inputs[i], err, sizeof err) != KILN_OK) {
            fail(name, "input %zu: %s", i, err);
            goto done;
        }
        const kiln_shape *s = &kiln_graph_value(g, g->inputs[i])->type.shape;
        if (s->batched && inputs[i].rank > 0)
            batch = inputs[i].dims[0];
    }
    snprintf(path, sizeof path, "%s/in%zu.npy", dir, n_inputs);
    if (file_exists(path)) {
        fail(name, "the model has %zu inputs but %s exists", n_inputs, path);
        goto done;
    }
    for (size_t i = 0; i < n_inputs; i++) {
        const kiln_value *v = kiln_graph_value(g, g->inputs[i]);
        int64_t want = kiln_shape_elements(&v->type.shape, batch);
        if (want < 0 || (size_t)want != inputs[i].count) {
            fail(name, "input %zu '%s' is %s in the file, %lld elements, the model needs %s for batch %lld", i,
                 v->name, dims_text(a, sizeof a, inputs[i].rank, inputs[i].dims), (long long)inputs[i].count,
                 kiln_shape_format(&v->type.shape, g->batch_name, b, sizeof b), (long long)batch);
            goto done;
        }
    }

    st = kiln_interp_create(g, batch, NULL, &it);
    if (st != KILN_OK) {
        fail(name, "kiln_interp_create: %s", kiln_status_string(st));
        goto done;
    }
    for (size_t i = 0; i < n_inputs; i++) {
        st = kiln_interp_set_input(it, i, inputs[i].data);
        if (st != KILN_OK) {
            fail(name, "kiln_interp_set_input(%zu): %s", i, kiln_status_string(st));
            goto done;
        }
    }
    st = kiln_interp_run(it, &d);
    if (st != KILN_OK || kiln_diag_has_errors(&d)) {
        print_diag(name, &d);
        fail(name, "kiln_interp_run: %s", kiln_status_string(st));
        goto done;
    }

    /* outputs: exactly out0.npy ... out<n-1>.npy */
    snprintf(path, sizeof path, "%s/out%zu.npy", dir, g->n_outputs);
    if (file_exists(path))
        fail(name, "the model has %zu outputs but %s exists", g->n_outputs, path);
    for (size_t oi = 0; oi < g->n_outputs; oi++)
        check_output(name, g, it, oi, batch, dir);

done:
    kiln_interp_destroy(it);
    for (size_t i = 0; inputs && i < n_inputs; i++)
        kiln_npy_free(&inputs[i]);
    free(inputs);
    kiln_graph_destroy(g);
    kiln_diag_release(&d);
}

/* ---- registration: one test function per case ---------------------------- */

/* CUnit test functions take no argument, so case i gets its own thunk. */
#define THUNK(a, b, c) \
    static void case_##a##b##c(void) { run_case(case_names[(a) * 100 + (b) * 10 + (c)]); }
#define THUNK10(a, b) \
    THUNK(a, b, 0) THUNK(a, b, 1) THUNK(a, b, 2) THUNK(a, b, 3) THUNK(a, b, 4) \
    THUNK(a, b, 5) THUNK(a, b, 6) THUNK(a, b, 7) THUNK(a, b, 8) THUNK(a, b, 9)
#define THUNK100(a) \
    THUNK10(a, 0) THUNK10(a, 1) THUNK10(a, 2) THUNK10(a, 3) THUNK10(a, 4) \
    THUNK10(a, 5) THUNK10(a, 6) THUNK10(a, 7) THUNK10(a, 8) THUNK10(a, 9)
THUNK100(0) THUNK100(1) THUNK100(2) THUNK100(3) THUNK100(4)
THUNK100(5) THUNK100(6) THUNK100(7) THUNK100(8) THUNK100(9)

#define REF(a, b, c) case_##a##b##c,
#define REF10(a, b) \
    REF(a, b, 0) REF(a, b, 1) REF(a, b, 2) REF(a, b, 3) REF(a, b, 4) \
    REF(a, b, 5) REF(a, b, 6) REF(a, b, 7) REF(a, b, 8) REF(a, b, 9)
#define REF100(a) \
    REF10(a, 0) REF10(a, 1) REF10(a, 2) REF10(a, 3) REF10(a, 4) \
    REF10(a, 5) REF10(a, 6) REF10(a, 7) REF10(a, 8) REF10(a, 9)
static const CU_TestFunc thunks[MAX_CASES] = {
    REF100(0) REF100(1) REF100(2) REF100(3) REF100(4)
    REF100(5) REF100(6) REF100(7) REF100(8) REF100(9)
};

/* Cases past MAX_CASES run together in one test. */
static void overflow_cases(void)
{
    for (size_t i = MAX_CASES; i < n_cases; i++)
        run_case(case_names[i]);
}

/* Reads the MANIFEST: one case name per line; blank lines and # comments
 * are skipped. Returns 0, or -1 with a message printed. */
static int read_manifest(int argc, char **argv)
{
    char path[MAX_PATH], line[512];
    snprintf(path, sizeof path, "%s/MANIFEST", fixture_dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "test_fixtures: cannot open %s\n", path);
        return -1;
    }
    size_t cap = 0;
    while (fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\r\n");
        line[n] = '\0';
        if (n == 0 || line[0] == '#')
            continue;
        int wanted = argc <= 0;
        for (int i = 0; i < argc && !wanted; i++)
            wanted = strcmp(argv[i], line) == 0;
        if (!wanted)
            continue;
        if (n_cases == cap) {
            cap = cap ? 2 * cap : 256;
            char **p = realloc(case_names, cap * sizeof *p);
            if (!p) {
                fclose(f);
                return -1;
            }
            case_names = p;
        }
        case_names[n_cases] = strdup(line);
        if (!case_names[n_cases]) {
            fclose(f);
            return -1;
        }
        n_cases++;
    }
    fclose(f);
    if (n_cases == 0) {
        fprintf(stderr, "test_fixtures: no cases to run from %s\n", path);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        fixture_dir = argv[1];
    if (read_manifest(argc > 2 ? argc - 2 : 0, argv + 2) != 0)
        return 1;
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite suite = CU_add_suite("torch_fixtures", NULL, NULL);
    int ok = suite != NULL;
    for (size_t i = 0; ok && i < n_cases && i < MAX_CASES; i++)
        ok = CU_add_test(suite, case_names[i], thunks[i]) != NULL;
    if (ok && n_cases > MAX_CASES)
        ok = CU_add_test(suite, "cases past the first 1000", overflow_cases) != NULL;
    unsigned failed = 1;
    int cu_error = 0;
    if (ok) {
        CU_basic_set_mode(CU_BRM_VERBOSE);
        CU_basic_run_tests();
        failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
        fprintf(stderr, "\ntest_fixtures: %zu cases from %s, %u failures\n", n_cases, fixture_dir,
                CU_get_number_of_tests_failed());
    }
    cu_error = CU_get_error() != CUE_SUCCESS;
    CU_cleanup_registry();
    for (size_t i = 0; i < n_cases; i++)
        free(case_names[i]);
    free(case_names);
    return failed || cu_error ? 1 : 0;
}
