/* tests/onnx/onnx_check.c: ONNX models through `kiln import` and back out
 * of kiln, compared with the outputs their makers computed.
 *
 *   onnx_check conformance DATA_DIR EXPECT [--update] [--only SUBSTRING] [-v]
 *       ONNX's own backend tests (Debian's libonnx-testdata: DATA_DIR/{node,
 *       pytorch-converted,pytorch-operator,simple}/TEST/model.onnx with
 *       test_data_set_N/input_K.pb and output_K.pb). Every input is pinned to
 *       the shape of its test data. Tolerance: |got - want| <= 1e-5 + 1e-4 |want|.
 *   onnx_check cases FIXTURE_DIR EXPECT [--update] [--only SUBSTRING] [-v]
 *       Models with their inputs and expected outputs: FIXTURE_DIR/NAME/
 *       model.onnx, in0.npy ... and out0.npy ..., computed in float64 by
 *       PyTorch (tools/export_torch_onnx.py) or from ONNX's definitions
 *       (tools/gen_onnx_fixtures.py). Inputs stay unpinned: a leading dynamic
 *       dimension is the batch, run at the batch of in0.npy; except where
 *       the case holds a file `pins`, lines NAME=DIMS as `kiln import
 *       --input` takes them (a model that moves its batch off axis 0, which
 *       kiln imports with a fixed batch only). Error measure
 *       (that of `kiln check`): |got - want| / max(|want|, 0.01 max|WANT|),
 *       at most 1e-5 interpreted, 1e-4 compiled.
 *
 * Each model is imported (the library call `kiln import` makes), its YAML
 * and weights written to a temporary directory and loaded by kiln's YAML
 * frontend, run by the reference interpreter, then optimized by the pass
 * pipeline and compiled (JIT, -O1) and run again. The outcome of each test
 * is `pass`, `refused REASON` (the importer's first problem) or a failure
 * (kiln rejected the YAML, a wrong answer, a failed compilation).
 *
 * EXPECT lists one test per line: `NAME pass` or `NAME refused REASON`. The
 * run fails when a test's outcome differs from its line: a test that fails,
 * newly fails, newly passes or is refused for another reason, and a test
 * that the list does not know. --update rewrites EXPECT from this run
 * (after a change that is meant to change it; wrong answers are never
 * written). The report at the end counts the tests by ONNX op: passed,
 * refused and why. A crash is a failure by itself (ctest sees it). */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "compiler/codegen/codegen.h"
#include "compiler/driver/npy.h"
#include "compiler/frontend/frontend.h"
#include "compiler/frontend/onnx/onnx.h"
#include "compiler/interp/interp.h"
#include "compiler/passes/passes.h"
#include "onnx/onnx.pb-c.h"

#define MAX_IO 32

typedef struct tensor {
    int rank;
    int64_t dims[KILN_MAX_RANK];
    float *data;
    size_t count;
} tensor;

static void tensor_free(tensor *t)
{
    free(t->data);
    memset(t, 0, sizeof *t);
}

/* snprintf, for paths and messages that may be cut (they are for reading). */
static void fmt(char *buf, size_t size, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void fmt(char *buf, size_t size, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, size, f, ap);
    va_end(ap);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *data = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (n == cap) {
            cap = cap ? cap * 2 : 65536;
            char *p = realloc(data, cap);
            if (!p) {
                free(data);
                fclose(f);
                return NULL;
            }
            data = p;
        }
        got = fread(data + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    fclose(f);
    *size = n;
    return data;
}

/* A TensorProto file of float32 or float64 data; -1 with a reason otherwise. */
static int read_pb(const char *path, tensor *t, char *why, size_t why_size)
{
    size_t size;
    char *bytes = read_all(path, &size);
    memset(t, 0, sizeof *t);
    if (!bytes) {
        fmt(why, why_size, "cannot read %s", path);
        return -1;
    }
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, size, (const uint8_t *)bytes);
    free(bytes);
    if (!tp) {
        fmt(why, why_size, "%s is not a TensorProto", path);
        return -1;
    }
    int rc = -1;
    size_t count = 1;
    if (tp->n_dims > KILN_MAX_RANK) {
        fmt(why, why_size, "%s has rank %zu", path, tp->n_dims);
        goto done;
    }
    if (tp->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT && tp->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE) {
        fmt(why, why_size, "its test data is not float (ONNX type %d)", tp->data_type);
        goto done;
    }
    t->rank = (int)tp->n_dims;
    for (size_t k = 0; k < tp->n_dims; k++) {
        t->dims[k] = tp->dims[k];
        if (tp->dims[k] < 0 || (tp->dims[k] > 0 && count > ((size_t)1 << 28) / (size_t)tp->dims[k])) {
            fmt(why, why_size, "%s: a shape past 2^28 elements", path);
            goto done;
        }
        count *= (size_t)tp->dims[k];
    }
    t->count = count;
    t->data = malloc((count ? count : 1) * sizeof(float));
    if (!t->data)
        goto done;
    if (count == 0) {
        /* an empty tensor: nothing to copy */
    } else if (tp->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
        if (tp->has_raw_data && tp->raw_data.len == count * 4)
            memcpy(t->data, tp->raw_data.data, count * 4);
        else if (tp->n_float_data == count)
            memcpy(t->data, tp->float_data, count * 4);
        else
            goto bad;
    } else if (tp->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE) {
        for (size_t i = 0; i < count; i++) {
            double v;
            if (tp->has_raw_data && tp->raw_data.len == count * 8)
                memcpy(&v, tp->raw_data.data + 8 * i, 8);
            else if (tp->n_double_data == count)
                v = tp->double_data[i];
            else
                goto bad;
            t->data[i] = (float)v;
        }
    } else {
        fmt(why, why_size, "its test data is not float (ONNX type %d)", tp->data_type);
        goto done;
    }
    rc = 0;
    goto done;
bad:
    fmt(why, why_size, "%s holds no data of its shape", path);
done:
    onnx__tensor_proto__free_unpacked(tp, NULL);
    if (rc != 0)
        tensor_free(t);
    return rc;
}

static int read_npy(const char *path, tensor *t, char *why, size_t why_size)
{
    kiln_npy a;
    memset(t, 0, sizeof *t);
    if (kiln_npy_read(path, &a, why, why_size) != KILN_OK)
        return -1;
    t->rank = a.rank;
    memcpy(t->dims, a.dims, sizeof t->dims);
    t->count = a.count;
    t->data = malloc((a.count ? a.count : 1) * sizeof(float));
    if (t->data && a.count)
        memcpy(t->data, a.data, a.count * sizeof(float));
    kiln_npy_free(&a);
    return t->data ? 0 : -1;
}

/* ---- one test ---------------------------------------------------------------- */

typedef enum outcome { OUT_PASS, OUT_REFUSED, OUT_FAIL } outcome;

typedef struct result {
    outcome out;
    char reason[512]; /* REFUSED: the first problem; FAIL: what went wrong */
    double worst_interp, worst_compiled;
} result;

typedef struct data_set {
    tensor in[MAX_IO], out[MAX_IO];
    size_t n_in, n_out;
} data_set;

static void data_set_free(data_set *s)
{
    for (size_t k = 0; k < s->n_in; k++)
        tensor_free(&s->in[k]);
    for (size_t k = 0; k < s->n_out; k++)
        tensor_free(&s->out[k]);
    s->n_in = s->n_out = 0;
}

typedef struct config {
    bool torch;          /* `cases` (not the conformance suite): the cases' tolerances and batch rules */
    double rtol_interp, rtol_compiled, atol;
    int opt_level;
    bool verbose;
} config;

static void fail(result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(result *r, const char *fmt, ...)
{
    if (r->out == OUT_FAIL)
        return;
    r->out = OUT_FAIL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
}

/* Compares got with want; returns the error measure of the config, or a
 * negative value after fail() when shapes differ. */
static double compare(const config *c, const float *got, size_t n, const tensor *want, double rtol, const char *what,
                      size_t index, result *r)
{
    if (n != want->count) {
        fail(r, "%s output %zu has %zu elements, %zu expected", what, index, n, want->count);
        return -1;
    }
    double maxw = 0, worst = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(want->data[i]) && fabs(want->data[i]) > maxw)
            maxw = fabs(want->data[i]);
    size_t worst_i = 0;
    for (size_t i = 0; i < n; i++) {
        double a = got[i], b = want->data[i], e;
        if (isnan(a) || isnan(b))
            e = isnan(a) && isnan(b) ? 0 : INFINITY;
        else if (isinf(a) || isinf(b))
            e = a == b ? 0 : INFINITY;
        else if (c->torch)
            e = fabs(a - b) / fmax(fmax(fabs(b), 0.01 * maxw), 1e-30);
        else /* as a ratio to the allowed error: <= 1 passes */
            e = fabs(a - b) / (c->atol + rtol * fabs(b)) * rtol;
        if (e > worst) {
            worst = e;
            worst_i = i;
        }
    }
    if (worst > rtol)
        fail(r, "%s output %zu: element %zu is %.9g, expected %.9g (error %.3g > %.3g)", what, index, worst_i,
             (double)got[worst_i], (double)want->data[worst_i], worst, rtol);
    return worst;
}

static int remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char p[4096];
            fmt(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    return rmdir(dir);
}

/* Runs g on every data set: the interpreter on g as loaded, then compiled
 * code after the pass pipeline (which changes g). */
static void run_model(const config *c, kiln_graph *g, data_set *sets, size_t n_sets, result *r)
{
    if (g->n_inputs != sets[0].n_in || g->n_outputs != sets[0].n_out) {
        fail(r, "the model has %zu inputs and %zu outputs, the test data %zu and %zu", g->n_inputs, g->n_outputs,
             sets[0].n_in, sets[0].n_out);
        return;
    }
    bool batched = false;
    for (size_t k = 0; k < g->n_inputs; k++)
        batched = batched || kiln_graph_value(g, g->inputs[k])->type.shape.batched;
    kiln_diag d;
    kiln_diag_init(&d);
    float *outs[MAX_IO] = {0};
    for (size_t s = 0; s < n_sets && r->out != OUT_FAIL; s++) {
        data_set *ds = &sets[s];
        int64_t batch = batched && ds->in[0].rank > 0 ? ds->in[0].dims[0] : 1;
        kiln_interp *it = NULL;
        kiln_status st = kiln_interp_create(g, batch, NULL, &it);
        for (size_t k = 0; st == KILN_OK && k < ds->n_in; k++)
            st = kiln_interp_set_input(it, k, ds->in[k].data);
        if (st == KILN_OK)
            st = kiln_interp_run(it, &d);
        if (st != KILN_OK) {
            fail(r, "the interpreter failed: %s", kiln_status_string(st));
        } else {
            for (size_t k = 0; k < ds->n_out && r->out != OUT_FAIL; k++) {
                size_t count = 0;
                const double *y = kiln_interp_output(it, k, &count);
                float *f = malloc((count ? count : 1) * sizeof *f);
                for (size_t i = 0; f && i < count; i++)
                    f[i] = (float)y[i];
                double e = f ? compare(c, f, count, &ds->out[k], c->rtol_interp, "interpreted", k, r) : -1;
                free(f);
                if (e > r->worst_interp)
                    r->worst_interp = e;
            }
        }
        kiln_interp_destroy(it);
    }
    if (r->out == OUT_FAIL)
        goto done;
    kiln_cg_options o = KILN_CG_OPTIONS_INIT;
    o.opt_level = c->opt_level;
    o.jit = true;
    kiln_pipeline_options po = {.threads_hint = 2, .verify_each = true};
    kiln_target target;
    if (kiln_cg_target_for_options(&o, &target, &d) == KILN_OK) {
        po.target = &target;
        po.layout_block = kiln_target_lanes(&target);
    }
    kiln_status st = kiln_pipeline_run(g, &po, &d);
    if (st != KILN_OK) {
        fail(r, "the passes failed: %s", kiln_status_string(st));
        goto done;
    }
    kiln_cg_module *m = NULL;
    kiln_cg_jit *j = NULL;
    kiln_cg_entry e;
    st = kiln_cg_compile(g, &o, &m, &d);
    if (st == KILN_OK)
        st = kiln_cg_jit_create(m, &j, &d);
    if (st == KILN_OK)
        st = kiln_cg_jit_entry(j, &e, &d);
    if (st != KILN_OK) {
        fail(r, "compiling failed: %s", kiln_status_string(st));
    } else {
        for (size_t s = 0; s < n_sets && r->out != OUT_FAIL; s++) {
            data_set *ds = &sets[s];
            int64_t batch = batched && ds->in[0].rank > 0 ? ds->in[0].dims[0] : 1;
            const float *ins[MAX_IO];
            for (size_t k = 0; k < ds->n_in; k++)
                ins[k] = ds->in[k].data;
            for (size_t k = 0; k < ds->n_out; k++)
                outs[k] = malloc((ds->out[k].count ? ds->out[k].count : 1) * sizeof(float));
            kiln_options ko = KILN_OPTIONS_INIT;
            ko.num_threads = 2;
            void *inst = NULL;
            st = e.create(&inst, &ko);
            if (st == KILN_OK)
                st = e.run_array(inst, batch, ins, outs);
            if (inst)
                e.destroy(inst);
            if (st != KILN_OK)
                fail(r, "the compiled model failed: %s", kiln_status_string(st));
            for (size_t k = 0; k < ds->n_out && r->out != OUT_FAIL; k++) {
                int64_t n = kiln_shape_elements(&kiln_graph_value(g, g->outputs[k])->type.shape, batch);
                double err = compare(c, outs[k], (size_t)(n < 0 ? 0 : n), &ds->out[k], c->rtol_compiled, "compiled", k, r);
                if (err > r->worst_compiled)
                    r->worst_compiled = err;
            }
            for (size_t k = 0; k < ds->n_out; k++) {
                free(outs[k]);
                outs[k] = NULL;
            }
        }
    }
    kiln_cg_jit_destroy(j);
    kiln_cg_module_destroy(m);
done:
    if (r->out == OUT_FAIL && c->verbose)
        kiln_diag_print(&d, stderr);
    kiln_diag_release(&d);
}

/* Imports model_path (with pins), writes it to a temporary directory, loads
 * it with the YAML frontend and runs it on the data sets. */
static void check_model(const config *c, const char *model_path, const kiln_onnx_pin *pins, size_t n_pins,
                        data_set *sets, size_t n_sets, result *r)
{
    size_t size;
    char *bytes = read_all(model_path, &size);
    if (!bytes) {
        fail(r, "cannot read %s", model_path);
        return;
    }
    char base[4096];
    fmt(base, sizeof base, "%s", model_path);
    char *slash = strrchr(base, '/');
    if (slash)
        *slash = '\0';
    kiln_onnx_options opt = {.model_name = "model", .weights_ref = "model.safetensors", .base_dir = base,
                             .pins = pins, .n_pins = n_pins};
    kiln_onnx_result *res = NULL;
    kiln_status st = kiln_onnx_import(bytes, size, &opt, &res);
    free(bytes);
    if (st == KILN_ERR_UNSUPPORTED) {
        r->out = OUT_REFUSED;
        fmt(r->reason, sizeof r->reason, "%s", res->n_problems ? res->problems[0].text : "(no problem listed)");
        kiln_onnx_result_destroy(res);
        return;
    }
    if (st != KILN_OK) {
        fail(r, "the import failed: %s%s%s", kiln_status_string(st), res && res->n_problems ? ": " : "",
             res && res->n_problems ? res->problems[0].text : "");
        kiln_onnx_result_destroy(res);
        return;
    }
    char dir[] = "/tmp/kiln-onnx-XXXXXX";
    if (!mkdtemp(dir)) {
        fail(r, "mkdtemp: %s", strerror(errno));
        kiln_onnx_result_destroy(res);
        return;
    }
    char ypath[4200], wpath[4200];
    fmt(ypath, sizeof ypath, "%s/model.yaml", dir);
    fmt(wpath, sizeof wpath, "%s/model.safetensors", dir);
    FILE *f = fopen(ypath, "w");
    bool ok = f && fwrite(res->yaml, 1, res->yaml_len, f) == res->yaml_len;
    if (f)
        ok = fclose(f) == 0 && ok;
    if (ok && res->n_tensors)
        ok = kiln_onnx_write_weights(res, wpath) == KILN_OK;
    if (!ok)
        fail(r, "cannot write the imported model to %s", dir);
    if (c->verbose)
        fprintf(stderr, "%s", res->yaml);
    kiln_onnx_result_destroy(res);
    kiln_graph *g = NULL;
    kiln_diag d;
    kiln_diag_init(&d);
    if (ok) {
        st = kiln_frontend_load(ypath, &g, &d);
        if (st != KILN_OK || !g) {
            char msg[400] = "";
            if (d.count)
                fmt(msg, sizeof msg, "%s", d.entries[0].message);
            fail(r, "kiln rejected the imported YAML: %s", msg);
        }
    }
    kiln_diag_release(&d);
    if (g)
        run_model(c, g, sets, n_sets, r);
    kiln_graph_destroy(g);
    remove_dir(dir);
}

/* ---- the expectation list ------------------------------------------------------ */

typedef struct entry {
    char *name;
    char *line; /* "pass" or "refused REASON" */
    bool seen;
} entry;

typedef struct expect {
    entry *e;
    size_t n, cap;
} expect;

static int expect_read(const char *path, expect *x)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (!len || line[0] == '#')
            continue;
        char *sp = strchr(line, ' ');
        if (!sp)
            continue;
        *sp = '\0';
        if (x->n == x->cap) {
            x->cap = x->cap ? 2 * x->cap : 256;
            entry *p = realloc(x->e, x->cap * sizeof *p);
            if (!p)
                break;
            x->e = p;
        }
        x->e[x->n++] = (entry){strdup(line), strdup(sp + 1), false};
    }
    fclose(f);
    return 0;
}

static entry *expect_find(expect *x, const char *name)
{
    for (size_t k = 0; k < x->n; k++)
        if (strcmp(x->e[k].name, name) == 0)
            return &x->e[k];
    return NULL;
}

/* ---- the report by op ------------------------------------------------------------- */

typedef struct op_stat {
    char op[64];
    int passed, refused, failed;
    char reasons[4][160];
    int reason_counts[4];
} op_stat;

static op_stat *stats;
static size_t n_stats, cap_stats;

static op_stat *stat_for(const char *op)
{
    for (size_t k = 0; k < n_stats; k++)
        if (strcmp(stats[k].op, op) == 0)
            return &stats[k];
    if (n_stats == cap_stats) {
        cap_stats = cap_stats ? 2 * cap_stats : 128;
        op_stat *p = realloc(stats, cap_stats * sizeof *p);
        if (!p)
            return NULL;
        stats = p;
    }
    op_stat *s = &stats[n_stats++];
    memset(s, 0, sizeof *s);
    fmt(s->op, sizeof s->op, "%s", op);
    return s;
}

/* The op types of a model (at most max, distinct). */
static size_t model_ops(const char *model_path, char ops[][64], size_t max)
{
    size_t size, n = 0;
    char *bytes = read_all(model_path, &size);
    Onnx__ModelProto *m = bytes ? onnx__model_proto__unpack(NULL, size, (const uint8_t *)bytes) : NULL;
    free(bytes);
    if (!m)
        return 0;
    for (size_t k = 0; m->graph && k < m->graph->n_node; k++) {
        const char *t = m->graph->node[k]->op_type ? m->graph->node[k]->op_type : "?";
        bool have = false;
        for (size_t j = 0; j < n; j++)
            have = have || strcmp(ops[j], t) == 0;
        if (!have && n < max)
            fmt(ops[n++], 64, "%s", t);
    }
    onnx__model_proto__free_unpacked(m, NULL);
    return n;
}

/* Counts a test in the report: a pass for each of its ops; a refusal for the
 * op named in the reason ("node 'X' (Op): ..."), or "(model)". */
static void count(const char *model_path, const result *r)
{
    char ops[64][64];
    if (r->out == OUT_REFUSED) {
        const char *open = strstr(r->reason, "' (");
        char op[64] = "(model)";
        const char *why = r->reason;
        if (strncmp(r->reason, "node '", 6) == 0 && open) {
            const char *close = strchr(open + 3, ')');
            if (close && close - (open + 3) < 63)
                fmt(op, sizeof op, "%.*s", (int)(close - (open + 3)), open + 3);
            const char *u = strstr(r->reason, "unsupported: ");
            why = u ? u + 13 : r->reason;
        }
        op_stat *s = stat_for(op);
        if (!s)
            return;
        s->refused++;
        for (int k = 0; k < 4; k++) {
            if (s->reason_counts[k] == 0) {
                fmt(s->reasons[k], sizeof s->reasons[k], "%s", why);
                s->reason_counts[k] = 1;
                return;
            }
            if (strncmp(s->reasons[k], why, sizeof s->reasons[k] - 1) == 0) {
                s->reason_counts[k]++;
                return;
            }
        }
        return;
    }
    size_t n = model_ops(model_path, ops, 64);
    for (size_t k = 0; k < n; k++) {
        op_stat *s = stat_for(ops[k]);
        if (s && r->out == OUT_PASS)
            s->passed++;
        else if (s)
            s->failed++;
    }
}

static int cmp_stat(const void *a, const void *b) { return strcmp(((const op_stat *)a)->op, ((const op_stat *)b)->op); }

static void report(void)
{
    qsort(stats, n_stats, sizeof *stats, cmp_stat);
    printf("\nby op (a passed test counts for each op it uses; a refused one for the op refused):\n");
    printf("%-28s %6s %7s %6s  why refused\n", "op", "passed", "refused", "failed");
    for (size_t k = 0; k < n_stats; k++) {
        op_stat *s = &stats[k];
        printf("%-28s %6d %7d %6d", s->op, s->passed, s->refused, s->failed);
        for (int j = 0; j < 4 && s->reason_counts[j]; j++)
            printf("%s %dx %s", j ? ";" : " ", s->reason_counts[j], s->reasons[j]);
        printf("\n");
    }
}

/* ---- the two kinds of test ---------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted subdirectory names of dir. */
static char **list_dirs(const char *dir, size_t *n)
{
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t cap = 0;
    *n = 0;
    if (!d)
        return NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char p[4096];
        struct stat st;
        fmt(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            char **q = realloc(names, cap * sizeof *q);
            if (!q)
                break;
            names = q;
        }
        names[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, *n, sizeof *names, cmp_str);
    return names;
}

/* The graph inputs of a model that have no initializer, in order. */
static size_t model_inputs(const char *model_path, char names[][256], size_t max)
{
    size_t size, n = 0;
    char *bytes = read_all(model_path, &size);
    Onnx__ModelProto *m = bytes ? onnx__model_proto__unpack(NULL, size, (const uint8_t *)bytes) : NULL;
    free(bytes);
    if (!m)
        return 0;
    for (size_t k = 0; m->graph && k < m->graph->n_input; k++) {
        const char *name = m->graph->input[k]->name ? m->graph->input[k]->name : "";
        bool init = false;
        for (size_t j = 0; j < m->graph->n_initializer; j++)
            init = init || (m->graph->initializer[j]->name && strcmp(m->graph->initializer[j]->name, name) == 0);
        if (!init && n < max)
            fmt(names[n++], 256, "%s", name);
    }
    onnx__model_proto__free_unpacked(m, NULL);
    return n;
}

/* Reads test_data_set_* of an ONNX backend test; 0 sets when the data is not float. */
static size_t conformance_sets(const char *dir, data_set *sets, size_t max, char *why, size_t why_size)
{
    size_t n_dirs, n = 0;
    char **dirs = list_dirs(dir, &n_dirs);
    for (size_t k = 0; k < n_dirs; k++) {
        if (strncmp(dirs[k], "test_data_set_", 14) == 0 && n < max) {
            data_set *s = &sets[n];
            memset(s, 0, sizeof *s);
            bool ok = true;
            for (const char *kind = "input"; ok; kind = kind[0] == 'i' ? "output" : NULL) {
                for (size_t i = 0; i < MAX_IO; i++) {
                    char p[4500];
                    fmt(p, sizeof p, "%s/%s/%s_%zu.pb", dir, dirs[k], kind, i);
                    if (access(p, R_OK) != 0)
                        break;
                    tensor *t = kind[0] == 'i' ? &s->in[s->n_in++] : &s->out[s->n_out++];
                    if (read_pb(p, t, why, why_size) != 0) {
                        ok = false;
                        break;
                    }
                }
                if (kind[0] == 'o')
                    break;
            }
            n++;
            if (!ok) {
                for (size_t j = 0; j < n; j++)
                    data_set_free(&sets[j]);
                n = 0;
                break;
            }
        }
    }
    for (size_t k = 0; k < n_dirs; k++)
        free(dirs[k]);
    free(dirs);
    return n;
}

static void run_conformance_test(const config *c, const char *dir, result *r)
{
    char model[4200];
    fmt(model, sizeof model, "%s/model.onnx", dir);
    data_set sets[8];
    char why[512] = "";
    size_t n_sets = conformance_sets(dir, sets, 8, why, sizeof why);
    char names[MAX_IO][256];
    size_t n_names = model_inputs(model, names, MAX_IO);
    kiln_onnx_pin pins[MAX_IO];
    size_t n_pins = 0;
    for (size_t k = 0; n_sets && k < n_names && k < sets[0].n_in; k++) {
        pins[n_pins] = (kiln_onnx_pin){.name = names[k], .rank = sets[0].in[k].rank};
        memcpy(pins[n_pins].dims, sets[0].in[k].dims, sizeof pins[0].dims);
        n_pins++;
    }
    if (n_sets == 0) {
        /* Not float test data: the import must refuse the model (its
         * inputs or outputs are not float32); say so if it does not. */
        check_model(c, model, NULL, 0, NULL, 0, r);
        if (r->out == OUT_PASS)
            fail(r, "imported, but its test data cannot be read: %s", why);
        return;
    }
    check_model(c, model, pins, n_pins, sets, n_sets, r);
    for (size_t k = 0; k < n_sets; k++)
        data_set_free(&sets[k]);
}

static void run_torch_test(const config *c, const char *dir, result *r)
{
    char model[4200];
    fmt(model, sizeof model, "%s/model.onnx", dir);
    data_set s;
    memset(&s, 0, sizeof s);
    char why[512];
    kiln_onnx_pin pins[MAX_IO];
    char pin_names[MAX_IO][256];
    size_t n_pins = 0;
    for (size_t i = 0; i < MAX_IO; i++) {
        char p[4300];
        fmt(p, sizeof p, "%s/in%zu.npy", dir, i);
        if (access(p, R_OK) != 0)
            break;
        if (read_npy(p, &s.in[s.n_in++], why, sizeof why) != 0) {
            fail(r, "%s", why);
            goto done;
        }
    }
    for (size_t i = 0; i < MAX_IO; i++) {
        char p[4300];
        fmt(p, sizeof p, "%s/out%zu.npy", dir, i);
        if (access(p, R_OK) != 0)
            break;
        if (read_npy(p, &s.out[s.n_out++], why, sizeof why) != 0) {
            fail(r, "%s", why);
            goto done;
        }
    }
    if (s.n_in == 0 || s.n_out == 0) {
        fail(r, "%s has no in0.npy or out0.npy", dir);
        goto done;
    }
    char pin_path[4300], line[512];
    fmt(pin_path, sizeof pin_path, "%s/pins", dir);
    FILE *pf = fopen(pin_path, "r");
    while (pf && n_pins < MAX_IO && fgets(line, sizeof line, pf)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0' || line[0] == '#')
            continue;
        if (kiln_onnx_pin_parse(line, &pins[n_pins], pin_names[n_pins], sizeof pin_names[0], why, sizeof why) != 0) {
            fail(r, "%s: %s", pin_path, why);
            fclose(pf);
            goto done;
        }
        n_pins++;
    }
    if (pf)
        fclose(pf);
    check_model(c, model, n_pins ? pins : NULL, n_pins, &s, 1, r);
done:
    data_set_free(&s);
}

static const char *outcome_line(const result *r, char *buf, size_t size)
{
    if (r->out == OUT_PASS)
        return "pass";
    fmt(buf, size, "%s %s", r->out == OUT_REFUSED ? "refused" : "FAILS", r->reason);
    return buf;
}

int main(int argc, char **argv)
{
    if (argc < 4 || (strcmp(argv[1], "conformance") != 0 && strcmp(argv[1], "cases") != 0)) {
        fprintf(stderr, "usage: %s conformance|cases DIR EXPECT [--update] [--only SUBSTRING] [-v]\n", argv[0]);
        return 2;
    }
    config c = {.torch = strcmp(argv[1], "cases") == 0, .opt_level = 1};
    if (c.torch) {
        c.rtol_interp = 1e-5;
        c.rtol_compiled = 1e-4;
    } else {
        c.rtol_interp = c.rtol_compiled = 1e-4;
        c.atol = 1e-5;
    }
    const char *root = argv[2], *expect_path = argv[3], *only = NULL;
    bool update = false;
    for (int i = 4; i < argc; i++) {
        if (strcmp(argv[i], "--update") == 0)
            update = true;
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "-v") == 0)
            c.verbose = true;
        else {
            fprintf(stderr, "unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    struct stat st;
    if (stat(root, &st) != 0 || !S_ISDIR(st.st_mode)) {
        printf("SKIPPED: %s is not there (%s)\n", root,
               c.torch ? "run tools/export_torch_onnx.py --full" : "install Debian's libonnx-testdata");
        return 77;
    }
    expect x = {0};
    if (expect_read(expect_path, &x) != 0 && !update) {
        fprintf(stderr, "cannot read %s (make it with --update)\n", expect_path);
        return 1;
    }
    static const char *const categories[] = {"node", "pytorch-converted", "pytorch-operator", "simple"};
    size_t n_cat = c.torch ? 1 : 4;
    FILE *out = NULL;
    if (update && !only) {
        out = fopen(expect_path, "w");
        if (!out) {
            fprintf(stderr, "cannot write %s\n", expect_path);
            return 1;
        }
        fprintf(out, "# %s: what `onnx_check %s` must find, one test per line: `NAME pass` or\n"
                     "# `NAME refused REASON` (the importer's first problem). Rewritten by --update.\n",
                strrchr(expect_path, '/') ? strrchr(expect_path, '/') + 1 : expect_path, argv[1]);
    }
    int passed = 0, refused = 0, failed = 0, mismatched = 0, total = 0;
    double t0 = now();
    for (size_t ci = 0; ci < n_cat; ci++) {
        char cat_dir[4096];
        if (c.torch)
            fmt(cat_dir, sizeof cat_dir, "%s", root);
        else
            fmt(cat_dir, sizeof cat_dir, "%s/%s", root, categories[ci]);
        size_t n_tests;
        char **tests = list_dirs(cat_dir, &n_tests);
        for (size_t k = 0; k < n_tests; k++) {
            char name[4200], dir[8400], line[1024];
            if (c.torch)
                fmt(name, sizeof name, "%s", tests[k]);
            else
                fmt(name, sizeof name, "%s/%s", categories[ci], tests[k]);
            fmt(dir, sizeof dir, "%s/%s", cat_dir, tests[k]);
            char model[8500];
            fmt(model, sizeof model, "%s/model.onnx", dir);
            if (access(model, R_OK) != 0 || (only && !strstr(name, only)))
                continue;
            result r = {OUT_PASS, "", 0, 0};
            double t = now();
            if (c.torch)
                run_torch_test(&c, dir, &r);
            else
                run_conformance_test(&c, dir, &r);
            t = now() - t;
            total++;
            passed += r.out == OUT_PASS;
            refused += r.out == OUT_REFUSED;
            failed += r.out == OUT_FAIL;
            count(model, &r);
            const char *got = outcome_line(&r, line, sizeof line);
            entry *e = expect_find(&x, name);
            if (e)
                e->seen = true;
            if (r.out == OUT_FAIL) {
                printf("FAIL %s: %s\n", name, r.reason);
                mismatched++;
            } else if (!e) {
                printf("%s %s: %s (not in %s)\n", update ? "NEW " : "FAIL", name, got, expect_path);
                mismatched += !update;
            } else if (strcmp(e->line, got) != 0) {
                printf("%s %s: %s (expected: %s)\n", update ? "CHANGED" : "FAIL", name, got, e->line);
                mismatched += !update;
            } else if (c.verbose || c.torch) {
                printf("ok   %s: %s", name, got);
                if (r.out == OUT_PASS)
                    printf(" (interpreted %.2g, compiled %.2g)", r.worst_interp, r.worst_compiled);
                printf(" %.2f s\n", t);
            }
            if (out && r.out != OUT_FAIL)
                fprintf(out, "%s %s\n", name, got);
            else if (out)
                fprintf(out, "%s %s\n", name, e ? e->line : "pass");
            fflush(stdout);
        }
        for (size_t k = 0; k < n_tests; k++)
            free(tests[k]);
        free(tests);
    }
    for (size_t k = 0; !only && k < x.n; k++)
        if (!x.e[k].seen) {
            printf("%s %s: listed in %s but not found\n", update ? "GONE" : "FAIL", x.e[k].name, expect_path);
            mismatched += !update;
        }
    if (out)
        fclose(out);
    report();
    printf("\n%d tests: %d passed, %d refused, %d failed; %d differ from %s (%.1f s)\n", total, passed, refused,
           failed, mismatched, expect_path, now() - t0);
    for (size_t k = 0; k < x.n; k++) {
        free(x.e[k].name);
        free(x.e[k].line);
    }
    free(x.e);
    free(stats);
    return mismatched ? 1 : 0;
}
