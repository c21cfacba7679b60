/* tests/test_passes.c: the optimization passes (compiler/passes/).
 *
 * - golden: every tests/golden/passes/NAME.after-PASS.kir is the dump of
 *   NAME.yaml (or NAME.kir) after the pipeline up to PASS; the runner loads
 *   the input, runs the pipeline to PASS with verification after each pass,
 *   prints (weights paths relative to the golden directory) and compares.
 *   Set KILN_UPDATE_GOLDEN=1 to rewrite the expected files instead. Each
 *   expected file must also read back and print identically.
 * - models: every example model and every fixture of tests/fixtures/torch
 *   (MANIFEST) runs in the reference interpreter before and after the whole
 *   pipeline on the same pseudo-random inputs; the outputs must agree to
 *   1e-5 of max(1, |reference|) (batchnorm folding rounds the new weights to
 *   f32). The structural change is asserted (examples: no batchnorm left,
 *   fusion groups made, node count down) and the memory plan is checked by
 *   an independent checker: every value that needs memory has it, aligned,
 *   inside its region, no two values live at once overlap, and the planned
 *   size is at most 1.1x the lower bound (examples). A table of the figures
 *   is printed.
 *   Both run twice: all plain, and with the layout pass blocking by 8.
 * - the plan and groups survive print/parse, and the pipeline run again on
 *   its own output changes nothing (plain and blocked).
 * - the layout pass on hand-written graphs (MobileNetV2-, LeNet- and
 *   ResNet-like, model outputs, branches): which values are blocked, where
 *   the reorders go; each result verifies, round-trips, is unchanged by a
 *   second run and computes the same outputs in the interpreter.
 * - the verifier and the reader reject broken groups and plans.
 * - the pipeline API: pass names, stop/dump/time options, unknown names.
 * - allocation failures: the N-th allocation fails (once, or from then on)
 *   for every N through the pipeline on small models (also with the layout
 *   pass): a clean error, a graph that still verifies, no leak (run under
 *   ASan).
 *
 * Usage: test_passes [-v] (KILN_TEST_DIR, KILN_SOURCE_DIR, KILN_FIXTURE_DIR
 * are compiled in). */
#define _POSIX_C_SOURCE 200809L

#include <CUnit/Basic.h>
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/frontend/frontend.h"
#include "compiler/frontend/weights.h"
#include "compiler/interp/interp.h"
#include "compiler/passes/passes.h"
#include "ir/arena.h"
#include "ir/diag.h"
#include "ir/graph.h"

#ifndef KILN_TEST_DIR
#define KILN_TEST_DIR "tests"
#endif
#ifndef KILN_SOURCE_DIR
#define KILN_SOURCE_DIR "."
#endif
#ifndef KILN_FIXTURE_DIR
#define KILN_FIXTURE_DIR KILN_TEST_DIR "/fixtures/torch"
#endif

#define GOLDEN_DIR KILN_TEST_DIR "/golden/passes"
#define RTOL 1e-5          /* |after - before| <= RTOL * max(1, |before|) */
#define MAX_PLAN_RATIO 1.1 /* planned <= this * lower bound, for the examples */

static int verbose;

/* ---- helpers -------------------------------------------------------------- */

static void fail(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(const char *what, const char *fmt, ...)
{
    char msg[2048];
    int n = snprintf(msg, sizeof msg, "%s: ", what);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n  FAIL %s\n", msg);
    CU_assertImplementation(CU_FALSE, __LINE__, msg, __FILE__, "", CU_FALSE);
}

static kiln_graph *load(const char *path)
{
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_graph *g = NULL;
    kiln_status st = kiln_frontend_load(path, &g, &d);
    if (st != KILN_OK || kiln_diag_has_errors(&d)) {
        kiln_diag_print(&d, stderr);
        fail(path, "cannot load: %s", kiln_status_string(st));
        kiln_graph_destroy(g);
        g = NULL;
    }
    kiln_diag_release(&d);
    return g;
}

/* The IR text of g (malloc'd), or NULL. */
static char *print_graph(const kiln_graph *g, const char *relative_to, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f)
        return NULL;
    kiln_status st = kiln_ir_print(g, f, relative_to);
    fclose(f);
    if (st != KILN_OK) {
        free(buf);
        return NULL;
    }
    if (len)
        *len = n;
    return buf;
}

static char *read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = (n + 65536 + 1) * 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, 65536, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}

/* The pipeline up to stop_after (NULL: all), verifying after each pass, with
 * the layout pass blocking channels by layout_block (0: plain). */
/* An AVX2 target (compiler/target/): its rule keeps 3x3 convolutions over
 * more than 4 channels plain (kiln_target_conv_blocks). */
static const kiln_target *avx2_target(void)
{
    static kiln_target t;
    if (!t.name)
        kiln_target_describe("x86_64-linux-gnu", "avx,avx2,fma", NULL, &t);
    return &t;
}

/* The pipeline up to stop_after with the layout pass blocking by layout_block
 * and, when target is given, the target's rules (layout, select, scratch). */
static kiln_status run_pipeline_target(kiln_graph *g, const char *stop_after, int layout_block,
                                       const kiln_target *target, const char *what)
{
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_pipeline_options o = {
        .stop_after = stop_after, .verify_each = true, .layout_block = layout_block, .target = target};
    kiln_status st = kiln_pipeline_run(g, &o, &d);
    if (st != KILN_OK || kiln_diag_has_errors(&d)) {
        kiln_diag_print(&d, stderr);
        fail(what, "pipeline: %s", kiln_status_string(st));
        if (st == KILN_OK)
            st = KILN_ERR_INTERNAL;
    }
    kiln_diag_release(&d);
    return st;
}

static kiln_status run_pipeline_layout(kiln_graph *g, const char *stop_after, int layout_block, const char *what)
{
    return run_pipeline_target(g, stop_after, layout_block, NULL, what);
}

static kiln_status run_pipeline(kiln_graph *g, const char *stop_after, const char *what)
{
    return run_pipeline_layout(g, stop_after, 0, what);
}

static size_t count_op(const kiln_graph *g, kiln_op op)
{
    size_t n = 0;
    for (size_t i = 0; i < g->n_nodes; i++)
        n += g->nodes[i].op == op;
    return n;
}

static size_t count_groups(const kiln_graph *g)
{
    size_t n = 0;
    for (size_t i = 0; i < g->n_nodes; i++)
        n += g->nodes[i].group != 0 && (i == 0 || g->nodes[i - 1].group != g->nodes[i].group);
    return n;
}

/* The first line where a and b differ, for messages. */
static void first_difference(const char *a, const char *b, char *out, size_t size)
{
    size_t line = 1;
    const char *la = a, *lb = b;
    while (*a && *a == *b) {
        if (*a == '\n') {
            line++;
            la = a + 1;
            lb = b + 1;
        }
        a++, b++;
    }
    int wa = (int)strcspn(la, "\n"), wb = (int)strcspn(lb, "\n");
    snprintf(out, size, "line %zu:\n    got:  %.*s\n    want: %.*s", line, wa > 300 ? 300 : wa, la,
             wb > 300 ? 300 : wb, lb);
}

/* ---- an independent memory plan checker ----------------------------------- */

typedef struct plan_figures {
    uint64_t planned, lower_bound;
    size_t planned_values;
    size_t scratch_nodes; /* nodes whose kernel scratch the plan placed */
} plan_figures;

/* Checks the plan of g from first principles (not through ir/liveness.c):
 * which values need memory, their live steps, alignment, bounds, overlaps.
 * Returns the number of problems (each reported). */
static int check_plan(const kiln_graph *g, const char *what, plan_figures *fig)
{
    size_t nv = g->n_values, nn = g->n_nodes;
    uint32_t *step = calloc(nn + 1, sizeof *step), *first = calloc(nv + 1, sizeof *first),
             *last = calloc(nv + 1, sizeof *last);
    uint64_t *bytes = calloc(nv + 1, sizeof *bytes);
    char *needs = calloc(nv + 1, 1), *is_out = calloc(nv + 1, 1);
    int problems = 0;
    CU_ASSERT_FATAL(step && first && last && bytes && needs && is_out);
    uint32_t s = 0;
    for (size_t i = 0; i < nn; i++) {
        if (i > 0 && !(g->nodes[i].group && g->nodes[i].group == g->nodes[i - 1].group))
            s++;
        step[i] = s;
    }
    uint32_t n_steps = nn ? s + 1 : 0;
    for (size_t k = 0; k < g->n_outputs; k++)
        is_out[g->outputs[k]] = 1;
    for (size_t i = 0; i < nn; i++) {
        const kiln_node *n = &g->nodes[i];
        kiln_id v = n->output;
        bool internal = n->group && i + 1 < nn && g->nodes[i + 1].group == n->group;
        needs[v] = !is_out[v] && !internal;
        first[v] = last[v] = step[i];
        const kiln_type *t = &g->values[v].type;
        bytes[v] = (uint64_t)kiln_shape_elements_per_item(&t->shape) * kiln_dtype_size(t->dtype);
        if (t->layout == KILN_LAYOUT_NCHWXC) { /* whole channel blocks are stored */
            uint64_t c = (uint64_t)t->shape.dims[1], b = (uint64_t)t->block;
            bytes[v] = bytes[v] / c * ((c + b - 1) / b * b);
        }
    }
    for (size_t i = 0; i < nn; i++)
        for (uint32_t k = 0; k < g->nodes[i].n_inputs; k++) {
            kiln_id v = g->nodes[i].inputs[k];
            if (g->values[v].kind == KILN_VALUE_NODE && last[v] < step[i])
                last[v] = step[i];
        }
    /* every value: planned exactly when it needs memory, in its region, aligned, inside */
    for (size_t v = 0; v < nv; v++) {
        const kiln_value *val = &g->values[v];
        kiln_mem_region want = !needs[v] ? KILN_MEM_NONE
                               : val->type.shape.batched ? KILN_MEM_BATCH
                                                         : KILN_MEM_FIXED;
        if (val->mem != want) {
            fail(what, "value '%s': region %d, expected %d", val->name, (int)val->mem, (int)want);
            problems++;
            continue;
        }
        if (want == KILN_MEM_NONE)
            continue;
        uint64_t size = want == KILN_MEM_BATCH ? g->mem_batch_bytes : g->mem_fixed_bytes;
        if (val->mem_offset % 64 != 0 || val->mem_offset + bytes[v] > size) {
            fail(what, "value '%s': [%llu, %llu) misaligned or outside its region of %llu bytes", val->name,
                 (unsigned long long)val->mem_offset, (unsigned long long)(val->mem_offset + bytes[v]),
                 (unsigned long long)size);
            problems++;
        }
    }
    /* every pair live at once: disjoint bytes */
    for (size_t a = 0; a < nv; a++) {
        const kiln_value *va = &g->values[a];
        if (va->mem == KILN_MEM_NONE)
            continue;
        for (size_t b = a + 1; b < nv; b++) {
            const kiln_value *vb = &g->values[b];
            if (vb->mem != va->mem || first[a] > last[b] || first[b] > last[a])
                continue;
            if (va->mem_offset < vb->mem_offset + bytes[b] && vb->mem_offset < va->mem_offset + bytes[a]) {
                fail(what, "'%s' [%llu,+%llu) and '%s' [%llu,+%llu) are live at once and overlap", va->name,
                     (unsigned long long)va->mem_offset, (unsigned long long)bytes[a], vb->name,
                     (unsigned long long)vb->mem_offset, (unsigned long long)bytes[b]);
                problems++;
            }
        }
    }
    /* kernel scratch: a fixed-region item live at its node's step, apart
     * from the fixed values and the other scratch live then */
    for (size_t i = 0; i < nn; i++) {
        const kiln_node *n = &g->nodes[i];
        if (n->scratch_bytes == 0)
            continue;
        uint64_t at = n->scratch_offset, end = at + n->scratch_bytes;
        if (at % 64 != 0 || end > g->mem_fixed_bytes) {
            fail(what, "node %zu: scratch [%llu, %llu) misaligned or outside the fixed region of %llu bytes", i,
                 (unsigned long long)at, (unsigned long long)end, (unsigned long long)g->mem_fixed_bytes);
            problems++;
        }
        for (size_t v = 0; v < nv; v++)
            if (g->values[v].mem == KILN_MEM_FIXED && first[v] <= step[i] && step[i] <= last[v] &&
                g->values[v].mem_offset < end && at < g->values[v].mem_offset + bytes[v]) {
                fail(what, "node %zu: scratch overlaps '%s', live at its step", i, g->values[v].name);
                problems++;
            }
        for (size_t j = i + 1; j < nn; j++)
            if (g->nodes[j].scratch_bytes && step[j] == step[i] && g->nodes[j].scratch_offset < end &&
                at < g->nodes[j].scratch_offset + g->nodes[j].scratch_bytes) {
                fail(what, "nodes %zu and %zu: scratch overlaps in one step", i, j);
                problems++;
            }
    }
    /* the lower bound, per region (scratch in the fixed one), summed */
    uint64_t lb = 0;
    for (int r = KILN_MEM_FIXED; r <= KILN_MEM_BATCH; r++) {
        uint64_t peak = 0;
        for (uint32_t t = 0; t < n_steps; t++) {
            uint64_t live = 0;
            for (size_t v = 0; v < nv; v++)
                if (g->values[v].mem == (kiln_mem_region)r && first[v] <= t && t <= last[v])
                    live += bytes[v];
            for (size_t i = 0; r == KILN_MEM_FIXED && i < nn; i++)
                if (step[i] == t)
                    live += g->nodes[i].scratch_bytes;
            if (live > peak)
                peak = live;
        }
        lb += peak;
    }
    if (lb != g->mem_lower_bound_bytes) {
        fail(what, "lower bound %llu, recomputed %llu", (unsigned long long)g->mem_lower_bound_bytes,
             (unsigned long long)lb);
        problems++;
    }
    if (fig) {
        fig->planned = g->mem_fixed_bytes + g->mem_batch_bytes;
        fig->lower_bound = lb;
        fig->planned_values = 0;
        fig->scratch_nodes = 0;
        for (size_t v = 0; v < nv; v++)
            fig->planned_values += g->values[v].mem != KILN_MEM_NONE;
        for (size_t i = 0; i < nn; i++)
            fig->scratch_nodes += g->nodes[i].scratch_bytes != 0;
    }
    free(step);
    free(first);
    free(last);
    free(bytes);
    free(needs);
    free(is_out);
    return problems;
}

/* ---- golden files ---------------------------------------------------------- */

static void test_golden(void)
{
    DIR *dir = opendir(GOLDEN_DIR);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    bool update = getenv("KILN_UPDATE_GOLDEN") && strcmp(getenv("KILN_UPDATE_GOLDEN"), "0") != 0;
    size_t checked = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        const char *name = e->d_name, *at = strstr(name, ".after-");
        size_t len = strlen(name);
        if (!at || len < 4 || strcmp(name + len - 4, ".kir") != 0)
            continue;
        char base[256], pass[64], expected_path[1024], input[1024];
        snprintf(base, sizeof base, "%.*s", (int)(at - name), name);
        snprintf(pass, sizeof pass, "%.*s", (int)(name + len - 4 - (at + 7)), at + 7);
        snprintf(expected_path, sizeof expected_path, "%s/%s", GOLDEN_DIR, name);
        snprintf(input, sizeof input, "%s/%s.yaml", GOLDEN_DIR, base);
        FILE *probe = fopen(input, "r");
        if (probe)
            fclose(probe);
        else
            snprintf(input, sizeof input, "%s/%s.kir", GOLDEN_DIR, base);
        checked++;
        /* "# test: layout_block N" in the input: the layout pass blocks by N */
        int layout_block = 0;
        char *src = read_text(input, NULL);
        const char *directive = src ? strstr(src, "# test: layout_block ") : NULL;
        if (directive)
            layout_block = atoi(directive + strlen("# test: layout_block "));
        /* "# test: target avx2": the passes plan for an AVX2 target */
        const kiln_target *target = src && strstr(src, "# test: target avx2") ? avx2_target() : NULL;
        free(src);
        kiln_graph *g = load(input);
        if (!g)
            continue;
        if (run_pipeline_target(g, pass, layout_block, target, name) != KILN_OK) {
            kiln_graph_destroy(g);
            continue;
        }
        plan_figures fig;
        if (g->mem_lower_bound_bytes)
            check_plan(g, name, &fig);
        size_t got_len = 0;
        char *got = print_graph(g, GOLDEN_DIR, &got_len);
        kiln_graph_destroy(g);
        if (!got) {
            fail(name, "cannot print the graph");
            continue;
        }
        if (update) {
            FILE *f = fopen(expected_path, "wb");
            CU_ASSERT_PTR_NOT_NULL(f);
            if (f) {
                fwrite(got, 1, got_len, f);
                fclose(f);
                printf("\n  updated %s", name);
            }
            free(got);
            continue;
        }
        size_t want_len = 0;
        char *want = read_text(expected_path, &want_len);
        if (!want) {
            fail(name, "cannot read %s", expected_path);
        } else if (strcmp(got, want) != 0) {
            char diff[1024];
            first_difference(got, want, diff, sizeof diff);
            fail(name, "the dump after %s differs from the golden file (KILN_UPDATE_GOLDEN=1 rewrites it), %s",
                 pass, diff);
        } else {
            /* the golden text reads back and prints the same */
            kiln_diag d;
            kiln_diag_init(&d);
            kiln_graph *back = NULL;
            kiln_status st = kiln_ir_parse(want, want_len, expected_path, &back, &d);
            if (st != KILN_OK) {
                kiln_diag_print(&d, stderr);
                fail(name, "the golden file does not read back: %s", kiln_status_string(st));
            } else {
                char *again = print_graph(back, GOLDEN_DIR, NULL);
                if (!again || strcmp(again, want) != 0)
                    fail(name, "the golden file does not print back identically");
                free(again);
            }
            kiln_graph_destroy(back);
            kiln_diag_release(&d);
        }
        free(want);
        free(got);
    }
    closedir(dir);
    CU_ASSERT(checked >= 6);
}

/* ---- models before and after ----------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = (*s += 0x9E3779B97F4A7C15ull);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Runs g in the interpreter on inputs from `seed`; returns it (caller
 * destroys) or NULL after reporting. */
static kiln_interp *interpret(const kiln_graph *g, int64_t batch, uint64_t seed, const char *what)
{
    kiln_interp *it = NULL;
    kiln_status st = kiln_interp_create(g, batch, NULL, &it);
    if (st != KILN_OK) {
        fail(what, "kiln_interp_create: %s", kiln_status_string(st));
        return NULL;
    }
    for (size_t i = 0; i < g->n_inputs; i++) {
        int64_t n = kiln_shape_elements(&g->values[g->inputs[i]].type.shape, batch);
        double *x = malloc(sizeof *x * (size_t)(n > 0 ? n : 1));
        CU_ASSERT_FATAL(x != NULL);
        uint64_t s = seed + i;
        for (int64_t k = 0; k < n; k++)
            x[k] = (double)(rng_next(&s) >> 11) / 9007199254740992.0 * 2.0 - 1.0;
        st = kiln_interp_set_input_f64(it, i, x);
        free(x);
        if (st != KILN_OK) {
            fail(what, "kiln_interp_set_input: %s", kiln_status_string(st));
            kiln_interp_destroy(it);
            return NULL;
        }
    }
    kiln_diag d;
    kiln_diag_init(&d);
    st = kiln_interp_run(it, &d);
    if (st != KILN_OK) {
        kiln_diag_print(&d, stderr);
        fail(what, "kiln_interp_run: %s", kiln_status_string(st));
        kiln_interp_destroy(it);
        it = NULL;
    }
    kiln_diag_release(&d);
    return it;
}

/* The worst error of `after` against `before` over every output, in units of
 * max(1, |before|); NaN or inf on one side only counts as infinite. */
static double compare_outputs(const kiln_graph *g, const kiln_interp *before, const kiln_interp *after,
                              const char *what)
{
    double worst = 0;
    for (size_t o = 0; o < g->n_outputs; o++) {
        size_t na = 0, nb = 0;
        const double *a = kiln_interp_output(before, o, &na), *b = kiln_interp_output(after, o, &nb);
        if (!a || !b || na != nb) {
            fail(what, "output %zu: %zu elements before, %zu after", o, na, nb);
            return INFINITY;
        }
        for (size_t i = 0; i < na; i++) {
            if (isnan(a[i]) && isnan(b[i]))
                continue;
            if (isinf(a[i]) || isinf(b[i])) {
                if (a[i] != b[i])
                    worst = INFINITY;
                continue;
            }
            double e = fabs(b[i] - a[i]) / fmax(1.0, fabs(a[i]));
            if (!(e <= worst))
                worst = isnan(e) ? INFINITY : e;
        }
    }
    return worst;
}

typedef struct model_report {
    size_t nodes_before, nodes_after, bn_before, bn_after, groups;
    size_t blocked, reorders; /* with a layout block */
    plan_figures fig;
    double error;
} model_report;

static size_t count_blocked(const kiln_graph *g);

static bool check_model(const char *path, const char *what, int64_t batch, int layout_block,
                        const kiln_target *target, model_report *r)
{
    memset(r, 0, sizeof *r);
    kiln_graph *g = load(path);
    if (!g)
        return false;
    kiln_graph *c = kiln_graph_clone(g);
    CU_ASSERT_FATAL(c != NULL);
    bool ok = run_pipeline_target(c, NULL, layout_block, target, what) == KILN_OK;
    if (ok) {
        r->reorders = count_op(c, KILN_OP_REORDER);
        r->blocked = count_blocked(c);
        r->nodes_before = g->n_nodes;
        r->nodes_after = c->n_nodes - r->reorders; /* the reorders are the only nodes a pass adds */
        r->bn_before = count_op(g, KILN_OP_BATCHNORM);
        r->bn_after = count_op(c, KILN_OP_BATCHNORM);
        r->groups = count_groups(c);
        ok = check_plan(c, what, &r->fig) == 0;
        if (r->nodes_after > r->nodes_before) {
            fail(what, "the pipeline added nodes other than reorders: %zu -> %zu", r->nodes_before, r->nodes_after);
            ok = false;
        }
        for (size_t i = 0; i < c->n_nodes; i++)
            if (c->nodes[i].tasks == 0) {
                fail(what, "node %zu is not scheduled", i);
                ok = false;
                break;
            }
    }
    if (ok) {
        kiln_interp *before = interpret(g, batch, 42, what), *after = before ? interpret(c, batch, 42, what) : NULL;
        if (before && after) {
            r->error = compare_outputs(g, before, after, what);
            if (!(r->error <= RTOL)) {
                fail(what, "outputs differ after the pipeline: worst error %.3g of max(1,|x|) (tolerance %g)",
                     r->error, RTOL);
                ok = false;
            }
        } else {
            ok = false;
        }
        kiln_interp_destroy(before);
        kiln_interp_destroy(after);
    }
    kiln_graph_destroy(c); /* before g: the clone shares g's strings */
    kiln_graph_destroy(g);
    return ok;
}

static const struct {
    const char *name;
    int64_t batch;
} examples[] = {
    {"digits", 2}, {"lenet", 2}, {"mlp", 3}, {"resnet20", 2}, {"transformer", 2}, {"mobilenetv2", 1}, {"resnet18", 1},
};

static void test_examples(void)
{
    /* Each example through the whole pipeline: keeping every value plain;
     * blocking channels by 8 with no target (no conv kept plain: every
     * blocked kernel the policy allows); for the AVX2 target as kiln compile
     * runs it (its layout rules, implementations, Winograd scratch). */
    for (int config = 0; config < 3; config++) {
        const int layout_block = config ? 8 : 0;
        const kiln_target *target = config == 2 ? avx2_target() : NULL;
        const char *label = config == 0 ? "example" : config == 1 ? "nchw8c" : "avx2";
        printf("\n  %-12s %13s %9s %7s %12s %12s %7s %9s %8s %8s %7s\n", label, "nodes", "bn", "groups",
               "planned", "lower_bound", "ratio", "max_err", "blocked", "reorders", "scratch");
        for (size_t i = 0; i < sizeof examples / sizeof examples[0]; i++) {
            char path[1024], what[64];
            const char *name = examples[i].name;
            snprintf(path, sizeof path, "%s/examples/%s/%s.yaml", KILN_SOURCE_DIR, name, name);
            snprintf(what, sizeof what, "%s%s%s", name, config ? " " : "", config ? label : "");
            model_report r;
            if (!check_model(path, what, examples[i].batch, layout_block, target, &r))
                continue;
            double ratio = r.fig.lower_bound ? (double)r.fig.planned / (double)r.fig.lower_bound : 1.0;
            printf("  %-12s %6zu->%-6zu %3zu->%-3zu %7zu %12llu %12llu %7.4f %9.2g %8zu %8zu %7zu\n", name,
                   r.nodes_before, r.nodes_after, r.bn_before, r.bn_after, r.groups,
                   (unsigned long long)r.fig.planned, (unsigned long long)r.fig.lower_bound, ratio, r.error,
                   r.blocked, r.reorders, r.fig.scratch_nodes);
            if (r.bn_after != 0)
                fail(what, "%zu batchnorm nodes left (of %zu)", r.bn_after, r.bn_before);
            if (r.groups == 0)
                fail(what, "no fusion groups");
            if (r.nodes_after + r.bn_before > r.nodes_before)
                fail(what, "%zu nodes after the pipeline, %zu before, %zu of them batchnorms", r.nodes_after,
                     r.nodes_before, r.bn_before);
            if (ratio > MAX_PLAN_RATIO)
                fail(what, "planned %llu bytes, %.3fx the lower bound %llu (limit %.2fx)",
                     (unsigned long long)r.fig.planned, ratio, (unsigned long long)r.fig.lower_bound,
                     MAX_PLAN_RATIO);
            if (!layout_block && r.blocked + r.reorders)
                fail(what, "%zu blocked values, %zu reorders without a layout block", r.blocked, r.reorders);
            /* the models with a global_avgpool head have a blocked body */
            bool gap_head = !strcmp(name, "resnet20") || !strcmp(name, "mobilenetv2") || !strcmp(name, "resnet18");
            if (config == 1 && gap_head && r.blocked == 0)
                fail(what, "nothing blocked");
            /* the ResNets' wide 3x3 layers run on Winograd for AVX2 */
            bool resnet = !strcmp(name, "resnet20") || !strcmp(name, "resnet18");
            if ((target && resnet) != (r.fig.scratch_nodes > 0))
                fail(what, "%zu nodes with planned scratch", r.fig.scratch_nodes);
        }
    }
    fflush(stdout);
}

static void test_fixtures(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/MANIFEST", KILN_FIXTURE_DIR);
    FILE *f = fopen(path, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    char line[512];
    size_t cases = 0, passed = 0, folded = 0, fused = 0, blocked = 0, reorders = 0;
    double worst = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0] || line[0] == '#')
            continue;
        snprintf(path, sizeof path, "%s/%s/model.yaml", KILN_FIXTURE_DIR, line);
        model_report r;
        cases++;
        if (check_model(path, line, 2, 0, NULL, &r) && check_model(path, line, 2, 8, NULL, &r)) {
            passed++;
            folded += r.bn_before - r.bn_after;
            fused += r.groups;
            blocked += r.blocked > 0;
            reorders += r.reorders;
            if (r.error > worst)
                worst = r.error;
            if (verbose)
                printf("\n  %-32s nodes %zu->%zu groups %zu err %.2g", line, r.nodes_before, r.nodes_after,
                       r.groups, r.error);
        }
    }
    fclose(f);
    printf("\n  fixtures: %zu of %zu agree before/after the pipeline, plain and nchw8c (worst error %.2g); %zu "
           "batchnorms folded, %zu fusion groups; nchw8c: %zu fixtures with blocked values, %zu reorders\n",
           passed, cases, worst, folded, fused, blocked, reorders);
    CU_ASSERT(cases > 100);
}

/* ---- round trip and idempotence ------------------------------------------- */

static void test_rerun(void)
{
    for (size_t k = 0; k < 2 * sizeof examples / sizeof examples[0]; k++) {
        size_t i = k % (sizeof examples / sizeof examples[0]);
        int layout_block = k < sizeof examples / sizeof examples[0] ? 0 : 8;
        char path[1024], name[64];
        snprintf(name, sizeof name, "%s%s", examples[i].name, layout_block ? " (nchw8c)" : "");
        if (strcmp(examples[i].name, "resnet18") == 0 || strcmp(examples[i].name, "mobilenetv2") == 0)
            continue; /* their folded weights make hundreds of MB of text: the others cover it */
        snprintf(path, sizeof path, "%s/examples/%s/%s.yaml", KILN_SOURCE_DIR, examples[i].name, examples[i].name);
        kiln_graph *g = load(path);
        if (!g)
            continue;
        size_t len = 0;
        char *first = run_pipeline_layout(g, NULL, layout_block, name) == KILN_OK ? print_graph(g, ".", &len) : NULL;
        kiln_graph_destroy(g);
        if (!first) {
            fail(name, "no dump");
            continue;
        }
        /* parse (weights stay unbound: no pass after fold_batchnorm reads them) and run again */
        kiln_diag d;
        kiln_diag_init(&d);
        kiln_graph *back = NULL;
        kiln_status st = kiln_ir_parse(first, len, "rerun.kir", &back, &d);
        if (st != KILN_OK) {
            kiln_diag_print(&d, stderr);
            fail(name, "the dump after the pipeline does not read back: %s", kiln_status_string(st));
        } else {
            char *same = print_graph(back, ".", NULL);
            if (!same || strcmp(same, first) != 0)
                fail(name, "the dump after the pipeline does not print back identically");
            free(same);
            if (run_pipeline_layout(back, NULL, layout_block, name) == KILN_OK) {
                char *again = print_graph(back, ".", NULL);
                if (!again || strcmp(again, first) != 0) {
                    char diff[1024];
                    first_difference(again ? again : "", first, diff, sizeof diff);
                    fail(name, "running the pipeline on its own output changes it: %s", diff);
                }
                free(again);
            }
        }
        kiln_graph_destroy(back);
        kiln_diag_release(&d);
        free(first);
    }
}

/* ---- the layout pass --------------------------------------------------------- */

/* IR text with random params (no weights files): the pass and the
 * interpreter need no files. */
static kiln_graph *parse_text(const char *text, const char *what)
{
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_graph *g = NULL;
    if (kiln_ir_parse(text, strlen(text), "layout.kir", &g, &d) != KILN_OK) {
        kiln_diag_print(&d, stderr);
        fail(what, "the test graph does not parse");
    } else if (kiln_weights_bind(g, &d) != KILN_OK) { /* random params: the interpreter reads them */
        kiln_diag_print(&d, stderr);
        fail(what, "the test graph's params do not bind");
        kiln_graph_destroy(g);
        g = NULL;
    }
    kiln_diag_release(&d);
    return g;
}


/* The pipeline up to layout with these layout options (verify after each pass). */
static kiln_status run_to_layout(kiln_graph *g, int block, const kiln_target *target, const char *what)
{
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_pipeline_options o = {.stop_after = "layout", .verify_each = true, .layout_block = block, .target = target};
    kiln_status st = kiln_pipeline_run(g, &o, &d);
    if (st != KILN_OK || kiln_diag_has_errors(&d)) {
        kiln_diag_print(&d, stderr);
        fail(what, "pipeline to layout: %s", kiln_status_string(st));
        if (st == KILN_OK)
            st = KILN_ERR_INTERNAL;
    }
    kiln_diag_release(&d);
    return st;
}

static kiln_layout layout_of(const kiln_graph *g, const char *name, int *block)
{
    kiln_id v = kiln_graph_find_value(g, name);
    CU_ASSERT_FATAL(v != KILN_NO_ID);
    if (block)
        *block = g->values[v].type.block;
    return g->values[v].type.layout;
}

static size_t count_blocked(const kiln_graph *g)
{
    size_t n = 0;
    for (size_t v = 0; v < g->n_values; v++)
        n += g->values[v].type.layout != KILN_LAYOUT_PLAIN;
    return n;
}

/* What must hold after any layout run: the IR verifies (the pipeline did
 * that), the text round-trips, the pass run again changes nothing, and the
 * interpreter computes the same outputs as on `before`. */
static void check_layout_run(const kiln_graph *before, kiln_graph *g, int block, const kiln_target *target,
                             const char *what)
{
    size_t len = 0;
    char *text = print_graph(g, ".", &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_graph *back = NULL;
    if (kiln_ir_parse(text, len, "layout.kir", &back, &d) != KILN_OK) {
        kiln_diag_print(&d, stderr);
        fail(what, "the dump after layout does not read back");
    } else {
        char *again = print_graph(back, ".", NULL);
        if (!again || strcmp(again, text) != 0)
            fail(what, "the dump after layout does not print back identically");
        free(again);
        /* the pass on its own output (and the whole front of the pipeline) */
        if (run_to_layout(back, block, target, what) == KILN_OK) {
            again = print_graph(back, ".", NULL);
            if (!again || strcmp(again, text) != 0) {
                char diff[1024];
                first_difference(again ? again : "", text, diff, sizeof diff);
                fail(what, "the layout pass run again changes the graph: %s", diff);
            }
            free(again);
        }
    }
    kiln_graph_destroy(back);
    kiln_diag_release(&d);
    free(text);
    kiln_interp *a = interpret(before, 2, 7, what), *b = a ? interpret(g, 2, 7, what) : NULL;
    if (a && b) {
        double err = compare_outputs(before, a, b, what);
        if (!(err == 0))
            fail(what, "the outputs change with the layout: worst error %.3g", err);
    }
    kiln_interp_destroy(a);
    kiln_interp_destroy(b);
}

/* Runs text through the pipeline to layout; returns the graph (and checks
 * it with check_layout_run). The caller destroys it. */
static kiln_graph *layout_case(const char *text, int block, const kiln_target *target, const char *what)
{
    kiln_graph *g = parse_text(text, what);
    if (!g)
        return NULL;
    kiln_graph *before = kiln_graph_clone(g);
    CU_ASSERT_FATAL(before != NULL);
    if (run_to_layout(g, block, target, what) != KILN_OK) {
        kiln_graph_destroy(before);
        kiln_graph_destroy(g);
        return NULL;
    }
    check_layout_run(before, g, block, target, what);
    kiln_graph_destroy(before);
    return g;
}

/* The print of text after the pipeline to layout with block 0: what "the
 * pass changes nothing" compares with. */
static char *plain_print(const char *text, const kiln_target *target, const char *what)
{
    kiln_graph *g = parse_text(text, what);
    if (!g)
        return NULL;
    char *out = run_to_layout(g, 0, target, what) == KILN_OK ? print_graph(g, ".", NULL) : NULL;
    kiln_graph_destroy(g);
    return out;
}

static char *golden_text(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", GOLDEN_DIR, name);
    char *t = read_text(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    return t;
}

/* MobileNetV2-like (tests/golden/passes/layout.kir): everything from the
 * first conv to the residual add is blocked, global_avgpool reads it blocked;
 * one reorder for the mean's plain read. */
static void test_layout_mobilenet(void)
{
    char *text = golden_text("layout.kir");
    static const char *const blocked[] = {"stem", "stem.act", "dw1", "dw1.act", "pw1", "exp",
                                          "exp.act", "dw2", "dw2.act", "pw2", "res"};
    static const char *const plain[] = {"image", "pool", "flat", "logits", "stats", "pw1.plain"};
    static const int blocks[] = {8, 16, 4, 1};
    for (size_t k = 0; k < sizeof blocks / sizeof blocks[0]; k++) {
        char what[64];
        snprintf(what, sizeof what, "mobilenet-like, block %d", blocks[k]);
        kiln_graph *g = layout_case(text, blocks[k], NULL, what);
        if (!g)
            continue;
        for (size_t i = 0; i < sizeof blocked / sizeof blocked[0]; i++) {
            int b = 0;
            if (layout_of(g, blocked[i], &b) != KILN_LAYOUT_NCHWXC || b != blocks[k])
                fail(what, "'%s' is not nchw%dc", blocked[i], blocks[k]);
        }
        for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
            if (layout_of(g, plain[i], NULL) != KILN_LAYOUT_PLAIN)
                fail(what, "'%s' is not plain", plain[i]);
        CU_ASSERT_EQUAL(count_blocked(g), sizeof blocked / sizeof blocked[0]);
        CU_ASSERT_EQUAL(count_op(g, KILN_OP_REORDER), 1);
        /* the reorder: right after pw1, with its layer, read by the mean only */
        kiln_id r = kiln_graph_find_value(g, "pw1.plain"), pw1 = kiln_graph_find_value(g, "pw1");
        const kiln_node *rn = &g->nodes[g->values[r].producer];
        CU_ASSERT(rn->op == KILN_OP_REORDER && rn->inputs[0] == pw1);
        CU_ASSERT_EQUAL(g->values[r].producer, g->values[pw1].producer + 1);
        CU_ASSERT_STRING_EQUAL(rn->layer, "pw1");
        const kiln_node *mean = &g->nodes[g->values[kiln_graph_find_value(g, "stats")].producer];
        const kiln_node *res = &g->nodes[g->values[kiln_graph_find_value(g, "res")].producer];
        CU_ASSERT(mean->inputs[0] == r);
        CU_ASSERT(res->inputs[1] == pw1); /* the add reads it blocked */
        CU_ASSERT(count_groups(g) >= 4);
        kiln_graph_destroy(g);
    }
    /* without the mean, no reorder at all */
    char *cut = strdup(text);
    CU_ASSERT_FATAL(cut != NULL);
    char *stats = strstr(cut, "  %stats = mean");
    CU_ASSERT_FATAL(stats != NULL);
    strcpy(stats, "}\n");
    char *outs = strstr(cut, "-> (%logits, %stats)");
    CU_ASSERT_FATAL(outs != NULL);
    memcpy(outs, "-> (%logits)        ", strlen("-> (%logits, %stats)"));
    kiln_graph *g = layout_case(cut, 8, NULL, "mobilenet-like without the mean");
    if (g) {
        CU_ASSERT_EQUAL(count_blocked(g), sizeof blocked / sizeof blocked[0]);
        CU_ASSERT_EQUAL(count_op(g, KILN_OP_REORDER), 0);
        kiln_graph_destroy(g);
    }
    /* block 0: exactly what the pipeline makes without the pass */
    kiln_graph *g0 = parse_text(text, "block 0");
    char *fused = NULL;
    if (g0 && run_pipeline(g0, "fuse", "block 0") == KILN_OK)
        fused = print_graph(g0, ".", NULL);
    char *zero = plain_print(text, NULL, "block 0");
    CU_ASSERT(fused && zero && strcmp(fused, zero) == 0);
    free(fused);
    free(zero);
    kiln_graph_destroy(g0);
    free(cut);
    free(text);
}

/* LeNet-like: conv -> maxpool -> conv -> maxpool -> flatten -> dense. By hand:
 * every conv and pool is a candidate, but pool2's only reader is flatten,
 * which does not read blocked values (rule b): pool2 goes plain; then conv2's
 * only reader is a pool with a plain output, so conv2 goes, then pool1 (read
 * by conv2, now plain), then conv1. Nothing stays blocked, no reorder, and
 * the graph is what the pipeline makes without the pass. */
static const char lenet_kir[] =
    "kiln 1\n"
    "graph @lenet(%image: f32[batch,1,28,28]) -> (%logits) {\n"
    "  param %c1.w: f32[6,1,5,5] = random 1 -0.5 0.5\n"
    "  param %c2.w: f32[16,6,5,5] = random 2 -0.5 0.5\n"
    "  param %fc.w: f32[10,256] = random 3 -0.1 0.1\n"
    "  %c1 = conv2d(%image, %c1.w) {filters=6, kernel=[5,5]} : f32[batch,6,24,24]\n"
    "  %r1 = relu(%c1) : f32[batch,6,24,24]\n"
    "  %p1 = maxpool2d(%r1) {kernel=[2,2]} : f32[batch,6,12,12]\n"
    "  %c2 = conv2d(%p1, %c2.w) {filters=16, kernel=[5,5]} : f32[batch,16,8,8]\n"
    "  %r2 = relu(%c2) : f32[batch,16,8,8]\n"
    "  %p2 = maxpool2d(%r2) {kernel=[2,2]} : f32[batch,16,4,4]\n"
    "  %flat = flatten(%p2) : f32[batch,256]\n"
    "  %logits = dense(%flat, %fc.w) {units=10} : f32[batch,10]\n"
    "}\n";

static void test_layout_lenet(void)
{
    kiln_graph *g = layout_case(lenet_kir, 8, NULL, "lenet-like");
    char *plain = plain_print(lenet_kir, NULL, "lenet-like");
    if (g && plain) {
        CU_ASSERT_EQUAL(count_blocked(g), 0);
        CU_ASSERT_EQUAL(count_op(g, KILN_OP_REORDER), 0);
        char *got = print_graph(g, ".", NULL);
        CU_ASSERT(got && strcmp(got, plain) == 0);
        free(got);
    }
    free(plain);
    kiln_graph_destroy(g);
    /* The same chain ending in global_avgpool instead of flatten is blocked
     * from end to end: every reader then uses its operand blocked. */
    char gap[sizeof lenet_kir + 256];
    const char *f = strstr(lenet_kir, "  %flat = flatten(%p2) : f32[batch,256]\n");
    CU_ASSERT_FATAL(f != NULL);
    snprintf(gap, sizeof gap, "%.*s%s", (int)(f - lenet_kir), lenet_kir,
             "  %gap = global_avgpool(%p2) : f32[batch,16,1,1]\n"
             "  %flat = flatten(%gap) : f32[batch,16]\n"
             "  param %fc2.w: f32[10,16] = random 3 -0.1 0.1\n"
             "  %logits = dense(%flat, %fc2.w) {units=10} : f32[batch,10]\n"
             "}\n");
    g = layout_case(gap, 8, NULL, "lenet-like with global_avgpool");
    if (g) {
        static const char *const blocked[] = {"c1", "r1", "p1", "c2", "r2", "p2"};
        for (size_t i = 0; i < sizeof blocked / sizeof blocked[0]; i++)
            if (layout_of(g, blocked[i], NULL) != KILN_LAYOUT_NCHWXC)
                fail("lenet-like with global_avgpool", "'%s' is not blocked", blocked[i]);
        CU_ASSERT_EQUAL(count_blocked(g), 6);
        CU_ASSERT_EQUAL(count_op(g, KILN_OP_REORDER), 0);
        kiln_graph_destroy(g);
    }
}

/* ResNet-like basic block with a 1x1 projection shortcut; the AVX2 target's
 * rule keeps the 3x3 convs over 16 and 32 channels plain. Rule a then
 * unblocks the relus and the add (plain operands), rule b the 1x1 conv (its
 * only reader, the add, is plain) and then the stem (its readers are plain):
 * nothing is blocked, no reorder, the graph is unchanged. */
static const char resnet_kir[] =
    "kiln 1\n"
    "graph @resnet(%image: f32[batch,3,16,16]) -> (%logits) {\n"
    "  param %stem.w: f32[16,3,3,3] = random 1 -0.5 0.5\n"
    "  param %a.w: f32[32,16,3,3] = random 2 -0.5 0.5\n"
    "  param %b.w: f32[32,32,3,3] = random 3 -0.5 0.5\n"
    "  param %proj.w: f32[32,16,1,1] = random 4 -0.5 0.5\n"
    "  param %fc.w: f32[10,32] = random 5 -0.5 0.5\n"
    "  %stem = conv2d(%image, %stem.w) {filters=16, kernel=[3,3], padding=[1,1,1,1]} : f32[batch,16,16,16]\n"
    "  %stem.act = relu(%stem) : f32[batch,16,16,16]\n"
    "  %a = conv2d(%stem.act, %a.w) {filters=32, kernel=[3,3], stride=[2,2], padding=[1,1,1,1]} : "
    "f32[batch,32,8,8]\n"
    "  %a.act = relu(%a) : f32[batch,32,8,8]\n"
    "  %b = conv2d(%a.act, %b.w) {filters=32, kernel=[3,3], padding=[1,1,1,1]} : f32[batch,32,8,8]\n"
    "  %proj = conv2d(%stem.act, %proj.w) {filters=32, kernel=[1,1], stride=[2,2]} : f32[batch,32,8,8]\n"
    "  %sum = add(%b, %proj) : f32[batch,32,8,8]\n"
    "  %out = relu(%sum) : f32[batch,32,8,8]\n"
    "  %pool = global_avgpool(%out) : f32[batch,32,1,1]\n"
    "  %flat = flatten(%pool) : f32[batch,32]\n"
    "  %logits = dense(%flat, %fc.w) {units=10} : f32[batch,10]\n"
    "}\n";

/* A decoder: resize keeps its operand's layout (ops.def KEEP), so conv ->
 * resize -> conv -> global_avgpool stays blocked with no reorder. */
static const char decoder_kir[] =
    "kiln 1\n"
    "graph @decoder(%image: f32[batch,3,8,8]) -> (%flat) {\n"
    "  param %c1.w: f32[16,3,3,3] = random 1 -0.5 0.5\n"
    "  param %c2.w: f32[12,16,1,1] = random 2 -0.5 0.5\n"
    "  %c1 = conv2d(%image, %c1.w) {filters=16, kernel=[3,3], padding=[1,1,1,1]} : f32[batch,16,8,8]\n"
    "  %r1 = relu(%c1) : f32[batch,16,8,8]\n"
    "  %up = resize(%r1) {scale=[2,2], mode=bilinear} : f32[batch,16,16,16]\n"
    "  %c2 = conv2d(%up, %c2.w) {filters=12, kernel=[1,1]} : f32[batch,12,16,16]\n"
    "  %gap = global_avgpool(%c2) : f32[batch,12,1,1]\n"
    "  %flat = flatten(%gap) : f32[batch,12]\n"
    "}\n";

/* conv_transpose2d reads and writes plain (PLAIN): what reaches it only
 * through blocked-keeping ops stays plain (a conv whose output is plain
 * reads plain, rule b), and the conv after it reads its plain output and
 * writes blocked for global_avgpool. */
static const char deconv_kir[] =
    "kiln 1\n"
    "graph @deconv(%image: f32[batch,3,8,8]) -> (%flat) {\n"
    "  param %c1.w: f32[16,3,3,3] = random 1 -0.5 0.5\n"
    "  param %dc.w: f32[16,8,4,4] = random 3 -0.5 0.5\n"
    "  param %c3.w: f32[16,8,1,1] = random 4 -0.5 0.5\n"
    "  %c1 = conv2d(%image, %c1.w) {filters=16, kernel=[3,3], padding=[1,1,1,1]} : f32[batch,16,8,8]\n"
    "  %r1 = relu(%c1) : f32[batch,16,8,8]\n"
    "  %up = resize(%r1) {scale=[2,2], mode=nearest} : f32[batch,16,16,16]\n"
    "  %dc = conv_transpose2d(%up, %dc.w) {filters=8, kernel=[4,4], stride=[2,2], padding=[1,1,1,1]} : "
    "f32[batch,8,32,32]\n"
    "  %c3 = conv2d(%dc, %c3.w) {filters=16, kernel=[1,1]} : f32[batch,16,32,32]\n"
    "  %gap = global_avgpool(%c3) : f32[batch,16,1,1]\n"
    "  %flat = flatten(%gap) : f32[batch,16]\n"
    "}\n";

static void test_layout_decoder(void)
{
    kiln_graph *g = layout_case(decoder_kir, 8, NULL, "decoder");
    if (!g)
        return;
    static const char *const blocked[] = {"c1", "r1", "up", "c2"};
    for (size_t i = 0; i < sizeof blocked / sizeof blocked[0]; i++)
        if (layout_of(g, blocked[i], NULL) != KILN_LAYOUT_NCHWXC)
            fail("decoder", "'%s' is not blocked", blocked[i]);
    CU_ASSERT_EQUAL(count_blocked(g), 4);
    CU_ASSERT_EQUAL(count_op(g, KILN_OP_REORDER), 0);
    kiln_graph_destroy(g);

    g = layout_case(deconv_kir, 8, NULL, "deconv");
    if (!g)
        return;
    CU_ASSERT_EQUAL(layout_of(g, "c3", NULL), KILN_LAYOUT_NCHWXC);
    CU_ASSERT_EQUAL(layout_of(g, "dc", NULL), KILN_LAYOUT_PLAIN);
    CU_ASSERT_EQUAL(layout_of(g, "up", NULL), KILN_LAYOUT_PLAIN);
    CU_ASSERT_EQUAL(count_blocked(g), 1);
    CU_ASSERT_EQUAL(count_op(g, KILN_OP_REORDER), 0);
    kiln_graph_destroy(g);

    /* resize of a plain value (the model input) stays plain (rule a), the
     * conv after it reads plain and writes blocked for global_avgpool */
    static const char input_kir[] =
        "kiln 1\n"
        "graph @up(%image: f32[batch,3,8,8]) -> (%flat) {\n"
        "  param %c.w: f32[16,3,1,1] = random 2 -0.5 0.5\n"
        "  %up = resize(%image) {size=[16,16], mode=nearest} : f32[batch,3,16,16]\n"
        "  %c = conv2d(%up, %c.w) {filters=16, kernel=[1,1]} : f32[batch,16,16,16]\n"
        "  %gap = global_avgpool(%c) : f32[batch,16,1,1]\n"
        "  %flat = flatten(%gap) : f32[batch,16]\n"
        "}\n";
    g = layout_case(input_kir, 8, NULL, "resize of the input");
    if (!g)
        return;
    CU_ASSERT_EQUAL(layout_of(g, "up", NULL), KILN_LAYOUT_PLAIN);
    CU_ASSERT_EQUAL(layout_of(g, "c", NULL), KILN_LAYOUT_NCHWXC);
    CU_ASSERT_EQUAL(count_op(g, KILN_OP_REORDER), 0);
    kiln_graph_destroy(g);
}

static void test_layout_resnet_keeps_plain(void)
{
    kiln_graph *g = layout_case(resnet_kir, 8, avx2_target(), "resnet-like, 3x3 convs plain");
    char *plain = plain_print(resnet_kir, avx2_target(), "resnet-like");
    if (g && plain) {
        CU_ASSERT_EQUAL(count_blocked(g), 0);
        CU_ASSERT_EQUAL(count_op(g, KILN_OP_REORDER), 0);
        char *got = print_graph(g, ".", NULL);
        CU_ASSERT(got && strcmp(got, plain) == 0);
        free(got);
    }
    free(plain);
    kiln_graph_destroy(g);
    /* Without a target every convolution the blocked kernels compute may be
     * blocked, and the same block is blocked from the stem to the
     * global_avgpool: the target's rule is what keeps it plain. */
    g = layout_case(resnet_kir, 8, NULL, "resnet-like, no target");
    if (g) {
        CU_ASSERT_EQUAL(count_blocked(g), 8);
        CU_ASSERT_EQUAL(layout_of(g, "out", NULL), KILN_LAYOUT_NCHWXC);
        CU_ASSERT_EQUAL(layout_of(g, "pool", NULL), KILN_LAYOUT_PLAIN);
        CU_ASSERT_EQUAL(count_op(g, KILN_OP_REORDER), 0);
        kiln_graph_destroy(g);
    }
}

/* A conv whose output is a model output stays plain, and so does the relu
 * reading it (rule a); the groups-1 conv after them is blocked and reads
 * its plain operand directly (no reorder). */
static const char output_kir[] =
    "kiln 1\n"
    "graph @outs(%x: f32[batch,4,8,8]) -> (%c1, %logits) {\n"
    "  param %c1.w: f32[8,4,1,1] = random 1 -0.5 0.5\n"
    "  param %c2.w: f32[8,8,3,3] = random 2 -0.5 0.5\n"
    "  %c1 = conv2d(%x, %c1.w) {filters=8, kernel=[1,1]} : f32[batch,8,8,8]\n"
    "  %r1 = relu(%c1) : f32[batch,8,8,8]\n"
    "  %c2 = conv2d(%r1, %c2.w) {filters=8, kernel=[3,3], padding=[1,1,1,1]} : f32[batch,8,8,8]\n"
    "  %pool = global_avgpool(%c2) : f32[batch,8,1,1]\n"
    "  %logits = flatten(%pool) : f32[batch,8]\n"
    "}\n";

/* Branches: a blocked value read by two plain readers and one blocked one
 * gets one reorder shared by both; a name already taken gets a suffix; a
 * broadcasting add and a dilated conv are never blocked. */
static const char branch_kir[] =
    "kiln 1\n"
    "graph @branch(%x: f32[batch,3,8,8]) -> (%logits, %soft, %cat, %wide) {\n"
    "  param %c1.w: f32[10,3,3,3] = random 1 -0.5 0.5\n"
    "  param %c2.w: f32[10,10,1,1] = random 2 -0.5 0.5\n"
    "  param %dil.w: f32[10,10,3,3] = random 3 -0.5 0.5\n"
    "  param %bias: f32[10,1,1] = random 4 -0.5 0.5\n"
    "  %c1 = conv2d(%x, %c1.w) {filters=10, kernel=[3,3], padding=[1,1,1,1]} : f32[batch,10,8,8]\n"
    "  %r1 = relu(%c1) : f32[batch,10,8,8]\n"
    "  %\"r1.plain\" = sigmoid(%x) : f32[batch,3,8,8]\n"
    "  %c2 = conv2d(%r1, %c2.w) {filters=10, kernel=[1,1]} : f32[batch,10,8,8]\n"
    "  %pool = global_avgpool(%c2) : f32[batch,10,1,1]\n"
    "  %logits = flatten(%pool) : f32[batch,10]\n"
    "  %soft = softmax(%r1) {axis=1} : f32[batch,10,8,8]\n"
    "  %cat = concat(%r1, %\"r1.plain\") {axis=1} : f32[batch,13,8,8]\n"
    "  %dil = conv2d(%r1, %dil.w) {filters=10, kernel=[3,3], padding=[2,2,2,2], dilation=[2,2]} : "
    "f32[batch,10,8,8]\n"
    "  %wide = add(%dil, %bias) : f32[batch,10,8,8]\n"
    "}\n";

/* The one-operand (scalar) form of a binary op is elementwise like a unary
 * op: it keeps a region blocked. */
static const char scalar_kir[] =
    "kiln 1\n"
    "graph @scalar(%x: f32[batch,5,6,6]) -> (%y) {\n"
    "  param %c1.w: f32[5,5,1,1] = random 1 -0.5 0.5\n"
    "  param %c2.w: f32[5,5,1,1] = random 2 -0.5 0.5\n"
    "  %c1 = conv2d(%x, %c1.w) {filters=5, kernel=[1,1]} : f32[batch,5,6,6]\n"
    "  %half = mul(%c1) {scalar=0.5} : f32[batch,5,6,6]\n"
    "  %c2 = conv2d(%half, %c2.w) {filters=5, kernel=[1,1]} : f32[batch,5,6,6]\n"
    "  %pool = global_avgpool(%c2) : f32[batch,5,1,1]\n"
    "  %y = flatten(%pool) : f32[batch,5]\n"
    "}\n";

static void test_layout_outputs_and_branches(void)
{
    kiln_graph *sg = layout_case(scalar_kir, 8, NULL, "scalar mul");
    if (sg) {
        CU_ASSERT_EQUAL(layout_of(sg, "half", NULL), KILN_LAYOUT_NCHWXC);
        CU_ASSERT_EQUAL(count_blocked(sg), 3);
        CU_ASSERT_EQUAL(count_op(sg, KILN_OP_REORDER), 0);
        kiln_graph_destroy(sg);
    }

    kiln_graph *g = layout_case(output_kir, 8, NULL, "conv as a model output");
    if (g) {
        CU_ASSERT_EQUAL(layout_of(g, "c1", NULL), KILN_LAYOUT_PLAIN);
        CU_ASSERT_EQUAL(layout_of(g, "r1", NULL), KILN_LAYOUT_PLAIN);
        CU_ASSERT_EQUAL(layout_of(g, "c2", NULL), KILN_LAYOUT_NCHWXC);
        CU_ASSERT_EQUAL(count_blocked(g), 1);
        CU_ASSERT_EQUAL(count_op(g, KILN_OP_REORDER), 0);
        kiln_graph_destroy(g);
    }
    g = layout_case(branch_kir, 8, NULL, "branches");
    if (g) {
        CU_ASSERT_EQUAL(layout_of(g, "c1", NULL), KILN_LAYOUT_NCHWXC);
        CU_ASSERT_EQUAL(layout_of(g, "r1", NULL), KILN_LAYOUT_NCHWXC);
        CU_ASSERT_EQUAL(layout_of(g, "c2", NULL), KILN_LAYOUT_NCHWXC);
        CU_ASSERT_EQUAL(layout_of(g, "dil", NULL), KILN_LAYOUT_PLAIN);
        CU_ASSERT_EQUAL(layout_of(g, "wide", NULL), KILN_LAYOUT_PLAIN);
        CU_ASSERT_EQUAL(count_blocked(g), 3);
        CU_ASSERT_EQUAL(count_op(g, KILN_OP_REORDER), 1);
        kiln_id r = kiln_graph_find_value(g, "r1.plain.1"), r1 = kiln_graph_find_value(g, "r1");
        CU_ASSERT_FATAL(r != KILN_NO_ID);
        CU_ASSERT_EQUAL(g->values[r].producer, g->values[r1].producer + 1);
        CU_ASSERT_STRING_EQUAL(g->nodes[g->values[r].producer].layer, "r1");
        /* softmax, concat and the dilated conv read the reorder; c2 reads r1 */
        static const char *const plain_readers[] = {"soft", "cat", "dil"};
        for (size_t i = 0; i < 3; i++) {
            const kiln_node *n = &g->nodes[g->values[kiln_graph_find_value(g, plain_readers[i])].producer];
            CU_ASSERT(n->inputs[0] == r);
        }
        CU_ASSERT(g->nodes[g->values[kiln_graph_find_value(g, "c2")].producer].inputs[0] == r1);
        kiln_graph_destroy(g);
    }
    /* a block outside 0..64 is refused before anything changes */
    g = parse_text(branch_kir, "bad block");
    if (g) {
        kiln_diag d;
        kiln_diag_init(&d);
        kiln_layout_options lo = {.block = 65};
        CU_ASSERT_EQUAL(kiln_pass_layout(g, &lo, &d), KILN_ERR_INVALID_ARGUMENT);
        CU_ASSERT(d.count == 1 && strstr(d.entries[0].message, "channel block 65 is outside 1..64"));
        lo.block = -1;
        CU_ASSERT_EQUAL(kiln_pass_layout(g, &lo, &d), KILN_ERR_INVALID_ARGUMENT);
        CU_ASSERT_EQUAL(count_blocked(g), 0);
        CU_ASSERT_EQUAL(kiln_pass_layout(g, NULL, &d), KILN_OK);
        kiln_diag_release(&d);
        kiln_graph_destroy(g);
    }
}

/* ---- implementations written in the IR ------------------------------------ */

/* A dump edited by hand: the wide 3x3 convolution (Winograd by the AVX2
 * rules) asks for the implicit GEMM, the 1x1 one (blocked by the rules)
 * for the packed GEMM; a batchnorm makes fold_batchnorm change the
 * structure under them. */
static const char written_kir[] =
    "kiln 1\n"
    "graph @written(%x: f32[batch,64,28,28]) -> (%out) {\n"
    "  param %wide.w: f32[64,64,3,3] = random 1 -0.1 0.1\n"
    "  param %bn.scale: f32[64] = random 2 0.5 1.5\n"
    "  param %bn.bias: f32[64] = random 3 -0.1 0.1\n"
    "  param %bn.mean: f32[64] = random 4 -0.1 0.1\n"
    "  param %bn.var: f32[64] = random 5 0.5 1.5\n"
    "  param %pw.w: f32[32,64,1,1] = random 6 -0.1 0.1\n"
    "  %wide = conv2d(%x, %wide.w) {filters=64, kernel=[3,3], padding=[1,1,1,1]} : f32[batch,64,28,28] impl igemm\n"
    "  %bn = batchnorm(%wide, %bn.scale, %bn.bias, %bn.mean, %bn.var) : f32[batch,64,28,28]\n"
    "  %r = relu(%bn) : f32[batch,64,28,28]\n"
    "  %pw = conv2d(%r, %pw.w) {filters=32, kernel=[1,1]} : f32[batch,32,28,28] impl @@@@@@\n"
    "  %pool = global_avgpool(%pw) : f32[batch,32,1,1]\n"
    "  %out = flatten(%pool) : f32[batch,32]\n"
    "}\n";

/* written_kir with the 1x1 convolution's implementation (six letters) */
static void written_text(char *text, const char *impl)
{
    strcpy(text, written_kir);
    memcpy(strstr(text, "@@@@@@"), impl, 6);
}

static void test_written_impls(void)
{
    char text[sizeof written_kir];
    written_text(text, "gemm  ");
    kiln_graph *g = parse_text(text, "written impls");
    if (g && run_pipeline_target(g, NULL, 8, avx2_target(), "written impls") == KILN_OK) {
        const kiln_node *pw = &g->nodes[g->values[kiln_graph_find_value(g, "pw")].producer];
        const kiln_node *wide = &g->nodes[g->values[pw->inputs[0]].producer];
        if (wide->op != KILN_OP_CONV2D) /* the relu may run fused after it */
            wide = &g->nodes[g->values[wide->inputs[0]].producer];
        CU_ASSERT_EQUAL(count_op(g, KILN_OP_BATCHNORM), 0);
        CU_ASSERT_EQUAL(wide->op, KILN_OP_CONV2D);
        CU_ASSERT_EQUAL(wide->impl, KILN_IMPL_IGEMM);
        CU_ASSERT_EQUAL(pw->impl, KILN_IMPL_GEMM);
        CU_ASSERT_EQUAL(count_blocked(g), 0);
        CU_ASSERT_EQUAL(count_op(g, KILN_OP_REORDER), 0);
    }
    kiln_graph_destroy(g);
    /* the same graph without the written choices: the rules pick Winograd
     * and block the 1x1 convolution (so the test above can fail) */
    g = parse_text(text, "rules' impls");
    if (g) {
        for (size_t i = 0; i < g->n_nodes; i++)
            g->nodes[i].impl = KILN_IMPL_NONE;
        if (run_pipeline_target(g, NULL, 8, avx2_target(), "rules' impls") == KILN_OK) {
            const kiln_node *pw = &g->nodes[g->values[kiln_graph_find_value(g, "pw")].producer];
            CU_ASSERT_EQUAL(pw->impl, KILN_IMPL_BLOCKED);
            CU_ASSERT(count_blocked(g) > 0);
        }
    }
    kiln_graph_destroy(g);
    /* one that cannot compute its node: an error at the node's line */
    written_text(text, "direct");
    g = parse_text(text, "impossible impl");
    if (g) {
        kiln_diag d;
        kiln_diag_init(&d);
        kiln_pipeline_options o = {.verify_each = true, .layout_block = 8, .target = avx2_target()};
        CU_ASSERT_EQUAL(kiln_pipeline_run(g, &o, &d), KILN_ERR_UNSUPPORTED);
        if (getenv("KILN_TEST_VERBOSE"))
            kiln_diag_print(&d, stderr);
        CU_ASSERT(d.count >= 1 && d.entries[0].loc.line == 12 &&
                  strstr(d.entries[0].message, "asks for implementation 'direct'"));
        kiln_diag_release(&d);
        kiln_graph_destroy(g);
    }
}

/* ---- the verifier and the reader on broken annotations ---------------------- */

static const char chain_kir[] = "kiln 1\n"
                                "graph @t(%%x: f32[batch,4]) -> (%%c, %%d) {\n"
                                "  %%a = relu(%%x) : f32[batch,4] layer \"a\"%s\n"
                                "  %%b = neg(%%a) : f32[batch,4] layer \"b\"%s\n"
                                "  %%c = exp(%%b) : f32[batch,4] layer \"c\"%s\n"
                                "  %%d = tanh(%%x) : f32[batch,4] layer \"d\"%s\n"
                                "}\n";

/* Parses chain_kir with the four node suffixes; returns the status, and the
 * diagnostics' text in msg. */
static kiln_status parse_chain(const char *s0, const char *s1, const char *s2, const char *s3, const char *head,
                               char *msg, size_t size)
{
    char text[2048], body[2048];
    snprintf(body, sizeof body, chain_kir, s0, s1, s2, s3);
    if (head) { /* a graph statement after the '{' line */
        const char *brace = strchr(body, '{');
        size_t at = (size_t)(strchr(brace, '\n') - body) + 1;
        snprintf(text, sizeof text, "%.*s  %s\n%s", (int)at, body, head, body + at);
    } else {
        snprintf(text, sizeof text, "%s", body);
    }
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_graph *g = NULL;
    kiln_status st = kiln_ir_parse(text, strlen(text), "t.kir", &g, &d);
    msg[0] = 0;
    size_t w = 0;
    for (size_t i = 0; i < d.count && w < size; i++)
        w += (size_t)snprintf(msg + w, size - w, "%u: %s\n", d.entries[i].loc.line, d.entries[i].message);
    kiln_graph_destroy(g);
    kiln_diag_release(&d);
    return st;
}

static void expect_parse(kiln_status want, const char *needle, const char *s0, const char *s1, const char *s2,
                         const char *s3, const char *head)
{
    char msg[4096];
    kiln_status st = parse_chain(s0, s1, s2, s3, head, msg, sizeof msg);
    if (st != want || (needle && !strstr(msg, needle)))
        fail("annotations", "suffixes [%s|%s|%s|%s] head [%s]: status %s, want %s%s%s; messages:\n%s", s0, s1, s2,
             s3, head ? head : "", kiln_status_string(st), kiln_status_string(want), needle ? " with " : "",
             needle ? needle : "", msg);
}

static void test_annotations(void)
{
    /* fine: a group of three, a plan */
    expect_parse(KILN_OK, NULL, " group 1 tasks 2", " group 1 tasks 2", " group 1 tasks 2", " tasks 1", NULL);
    expect_parse(KILN_OK, NULL, " group 1", " group 1", "", "", NULL);
    /* a group with a hole, and numbers out of order */
    expect_parse(KILN_ERR_PARSE, "5: IR node 2 (exp, layer 'c'): fusion group 1: group numbers must increase",
                 " group 1", "", " group 1", "", NULL);
    expect_parse(KILN_ERR_PARSE, "group numbers must increase", " group 2", " group 2", " group 1", " group 1",
                 NULL);
    /* d does not read c: it cannot follow it */
    expect_parse(KILN_ERR_PARSE, "the previous member's output, must be read once", "", "", " group 1",
                 " group 1", NULL);
    /* tasks differ inside a group */
    expect_parse(KILN_ERR_PARSE, "tasks 3 differ", " group 1 tasks 2", " group 1 tasks 3", "", "", NULL);
    /* a model output cannot be chained: c is one */
    {
        char text[] = "kiln 1\ngraph @t(%x: f32[batch,4]) -> (%a, %b) {\n"
                      "  %a = relu(%x) : f32[batch,4] layer \"a\" group 1\n"
                      "  %b = neg(%a) : f32[batch,4] layer \"b\" group 1\n}\n";
        kiln_diag d;
        kiln_diag_init(&d);
        kiln_graph *g = NULL;
        CU_ASSERT_EQUAL(kiln_ir_parse(text, strlen(text), "t.kir", &g, &d), KILN_ERR_PARSE);
        kiln_graph_destroy(g);
        kiln_diag_release(&d);
    }
    /* memory: a, b live at once (a is read by b), each 16 bytes per item */
    const char *plan = "memory fixed 0 batch 128 lower_bound 32";
    expect_parse(KILN_OK, NULL, " mem batch 0", " mem batch 64", "", " ", plan);
    expect_parse(KILN_ERR_PARSE, "'a' and 'b' are live at the same time and overlap", " mem batch 0",
                 " mem batch 0", "", "", plan);
    expect_parse(KILN_ERR_PARSE, "not a multiple of 64", " mem batch 0", " mem batch 32", "", "", plan);
    expect_parse(KILN_ERR_PARSE, "outside the batch region", " mem batch 0", " mem batch 128", "", "", plan);
    expect_parse(KILN_ERR_PARSE, "needs workspace memory but the plan gives it none", " mem batch 0", "", "", "",
                 plan);
    expect_parse(KILN_ERR_PARSE, "has workspace memory but needs none", " mem batch 0", " mem batch 64",
                 " mem batch 0", "", plan);
    expect_parse(KILN_ERR_PARSE, "is batched but planned in the fixed region", " mem fixed 0", " mem batch 64", "",
                 "", plan);
    expect_parse(KILN_ERR_PARSE, "lower_bound is 31", " mem batch 0", " mem batch 64", "", "",
                 "memory fixed 0 batch 128 lower_bound 31");
    /* inside a group, a needs no memory: b alone is planned */
    expect_parse(KILN_OK, NULL, " group 1", " group 1 mem batch 0", "", "",
                 "memory fixed 0 batch 64 lower_bound 16");
    expect_parse(KILN_ERR_PARSE, "has workspace memory but needs none", " group 1 mem batch 0",
                 " group 1 mem batch 64", "", "", "memory fixed 0 batch 128 lower_bound 16");
    /* syntax */
    expect_parse(KILN_ERR_PARSE, "'group' must be in 1..", " group 0", "", "", "", NULL);
    expect_parse(KILN_ERR_PARSE, "expected 'fixed' or 'batch' after 'mem'", " mem heap 0", "", "", "", NULL);
    expect_parse(KILN_ERR_PARSE, "expected 'lower_bound'", "", "", "", "", "memory fixed 0 batch 0");
}

static void test_verify_after_edit(void)
{
    /* The verifier catches a plan broken behind the planner's back. */
    char path[1024];
    snprintf(path, sizeof path, "%s/examples/resnet20/resnet20.yaml", KILN_SOURCE_DIR);
    kiln_graph *g = load(path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    CU_ASSERT_EQUAL_FATAL(run_pipeline(g, NULL, "resnet20"), KILN_OK);
    kiln_diag d;
    kiln_diag_init(&d);
    CU_ASSERT_EQUAL(kiln_ir_verify(g, &d), KILN_OK);
    /* two values that are live at once, at one offset */
    kiln_id a = KILN_NO_ID, b = KILN_NO_ID;
    for (size_t i = 0; i + 1 < g->n_nodes && b == KILN_NO_ID; i++) {
        const kiln_node *n = &g->nodes[i];
        for (uint32_t k = 0; k < n->n_inputs; k++) {
            kiln_id in = n->inputs[k];
            if (g->values[in].mem == KILN_MEM_BATCH && g->values[n->output].mem == KILN_MEM_BATCH) {
                a = in;
                b = n->output;
                break;
            }
        }
    }
    CU_ASSERT_FATAL(b != KILN_NO_ID);
    uint64_t saved = g->values[b].mem_offset;
    g->values[b].mem_offset = g->values[a].mem_offset;
    CU_ASSERT_EQUAL(kiln_ir_verify(g, &d), KILN_ERR_INTERNAL);
    CU_ASSERT(d.count > 0 && strstr(d.entries[d.count - 1].message, "overlap") != NULL);
    g->values[b].mem_offset = saved;
    /* a group whose chained value gets a second reader */
    size_t member = 0;
    for (size_t i = 1; i < g->n_nodes && !member; i++)
        if (g->nodes[i].group && g->nodes[i].group == g->nodes[i - 1].group)
            member = i;
    CU_ASSERT_FATAL(member > 0);
    kiln_diag_release(&d);
    kiln_diag_init(&d);
    CU_ASSERT_EQUAL(kiln_graph_add_output(g, g->nodes[member - 1].output), KILN_OK);
    CU_ASSERT_EQUAL(kiln_ir_verify(g, &d), KILN_ERR_INTERNAL);
    kiln_diag_release(&d);
    kiln_graph_destroy(g);
}

/* ---- the pipeline API --------------------------------------------------------- */

static void test_pipeline_api(void)
{
    const char *const *names = kiln_pipeline_pass_names();
    static const char *const want[] = {"verify", "infer_shapes", "fold_batchnorm", "fold_constants",
                                       "dce",    "fuse",         "layout",         "precision",
                                       "select", "schedule",     "memory_plan"};
    size_t n = 0;
    while (names[n])
        n++;
    CU_ASSERT_EQUAL(n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < n && i < sizeof want / sizeof want[0]; i++)
        CU_ASSERT_STRING_EQUAL(names[i], want[i]);
    CU_ASSERT(kiln_pipeline_has_pass("fuse"));
    CU_ASSERT(!kiln_pipeline_has_pass("fusion"));

    char path[1024];
    snprintf(path, sizeof path, "%s/examples/digits/digits.yaml", KILN_SOURCE_DIR);
    kiln_graph *g = load(path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    kiln_diag d;
    kiln_diag_init(&d);
    /* unknown names: nothing runs, the message lists the passes */
    kiln_pipeline_options bad = {.stop_after = "fusion"};
    CU_ASSERT_EQUAL(kiln_pipeline_run(g, &bad, &d), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT(d.count == 1 && strstr(d.entries[0].message, "unknown pass 'fusion'") &&
              strstr(d.entries[0].message, "verify, infer_shapes, fold_batchnorm, fold_constants, dce, fuse, "
                                           "layout, precision, select, schedule, memory_plan"));
    bad = (kiln_pipeline_options){.dump_after = "nope"};
    CU_ASSERT_EQUAL(kiln_pipeline_run(g, &bad, &d), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_EQUAL(count_op(g, KILN_OP_BATCHNORM), 1);
    kiln_diag_release(&d);
    kiln_diag_init(&d);

    /* stop after fold_batchnorm, dumping after every pass, timing */
    char *dump = NULL, *times = NULL;
    size_t dump_len = 0, times_len = 0;
    FILE *df = open_memstream(&dump, &dump_len), *tf = open_memstream(&times, &times_len);
    CU_ASSERT_FATAL(df && tf);
    kiln_pipeline_options o = {.stop_after = "fold_batchnorm", .dump_after = "all", .dump_to = df,
                               .time_to = tf, .verify_each = true};
    CU_ASSERT_EQUAL(kiln_pipeline_run(g, &o, &d), KILN_OK);
    fclose(df);
    fclose(tf);
    CU_ASSERT(strstr(dump, "# after verify\nkiln 1\n") == dump);
    CU_ASSERT(strstr(dump, "# after infer_shapes\n") != NULL);
    CU_ASSERT(strstr(dump, "# after fold_batchnorm\n") != NULL);
    CU_ASSERT(strstr(dump, "# after dce") == NULL);
    CU_ASSERT(strstr(times, "fold_batchnorm") && strstr(times, "total") && !strstr(times, "fuse"));
    CU_ASSERT_EQUAL(count_op(g, KILN_OP_BATCHNORM), 0);
    CU_ASSERT_EQUAL(count_op(g, KILN_OP_DROPOUT), 1);
    CU_ASSERT_EQUAL(count_groups(g), 0);
    free(dump);
    free(times);

    /* the rest, dumping after one pass only */
    dump = NULL;
    df = open_memstream(&dump, &dump_len);
    o = (kiln_pipeline_options){.dump_after = "fuse", .dump_to = df, .verify_each = true};
    CU_ASSERT_EQUAL(kiln_pipeline_run(g, &o, &d), KILN_OK);
    fclose(df);
    CU_ASSERT(strncmp(dump, "kiln 1\n", 7) == 0 && strstr(dump, " group 1") && !strstr(dump, " mem batch"));
    CU_ASSERT(g->mem_lower_bound_bytes > 0 && count_groups(g) > 0 && count_op(g, KILN_OP_DROPOUT) == 0);
    free(dump);
    CU_ASSERT_EQUAL(d.errors, 0);
    kiln_diag_release(&d);
    kiln_graph_destroy(g);
}

/* ---- allocation failures --------------------------------------------------------- */

static void sweep(const char *model, int sticky, int layout_block)
{
    char path[1024];
    if (strchr(model, '/')) /* "./NAME.kir": a file of the golden directory */
        snprintf(path, sizeof path, "%s/%s", GOLDEN_DIR, model);
    else
        snprintf(path, sizeof path, "%s/examples/%s/%s.yaml", KILN_SOURCE_DIR, model, model);
    kiln_graph *g = load(path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    size_t failures = 0;
    for (long n = 1; n < 100000; n++) {
        kiln_graph *c = kiln_graph_clone(g);
        CU_ASSERT_FATAL(c != NULL);
        kiln_diag d;
        kiln_diag_init(&d);
        kiln_pipeline_options o = {.verify_each = true, .layout_block = layout_block};
        kiln_alloc_fail_after(n, sticky);
        kiln_status st = kiln_pipeline_run(c, &o, &d);
        long used = kiln_alloc_count();
        kiln_alloc_fail_after(0, 0);
        bool hit = used >= n;
        char what[64];
        snprintf(what, sizeof what, "%s%s, allocation %ld%s", model, layout_block ? " (nchw8c)" : "", n,
                 sticky ? " and after" : "");
        if (!hit) {
            if (st != KILN_OK)
                fail(what, "no allocation failed but the pipeline returned %s", kiln_status_string(st));
            kiln_diag_release(&d);
            kiln_graph_destroy(c);
            break;
        }
        failures++;
        if (st == KILN_OK)
            fail(what, "an allocation failed but the pipeline succeeded");
        else if (!kiln_diag_has_errors(&d))
            fail(what, "the pipeline returned %s without a diagnostic", kiln_status_string(st));
        if (st != KILN_OK && st != KILN_ERR_OUT_OF_MEMORY)
            fail(what, "status %s, expected out of memory", kiln_status_string(st));
        /* what is left is still a valid graph */
        kiln_diag vd;
        kiln_diag_init(&vd);
        if (kiln_ir_verify(c, &vd) != KILN_OK) {
            kiln_diag_print(&vd, stderr);
            fail(what, "the graph left behind does not verify");
        }
        kiln_diag_release(&vd);
        kiln_diag_release(&d);
        kiln_graph_destroy(c);
    }
    CU_ASSERT(failures > 10);
    if (verbose)
        printf("\n  %s: %zu allocation points%s", model, failures, sticky ? " (sticky)" : "");
    kiln_graph_destroy(g);
}

static void test_alloc_failures(void)
{
    sweep("digits", 0, 0);
    sweep("digits", 1, 0);
    sweep("resnet20", 1, 0);
    /* the layout pass: resnet20 has a blocked body, layout.kir a reorder;
     * its dump after layout makes the pass undo its own work first */
    sweep("resnet20", 1, 8);
    sweep("./layout.kir", 0, 8);
    sweep("./layout.kir", 1, 8);
    sweep("./layout.after-layout.kir", 0, 8);
}

/* ---- main -------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-v") == 0)
            verbose = 1;
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("passes", NULL, NULL);
    if (!s || !CU_add_test(s, "golden dumps after each pass", test_golden) ||
        !CU_add_test(s, "pipeline API: names, stop, dump, time", test_pipeline_api) ||
        !CU_add_test(s, "annotations: the reader and verifier reject broken ones", test_annotations) ||
        !CU_add_test(s, "verifier: a plan or group broken after the passes", test_verify_after_edit) ||
        !CU_add_test(s, "examples: same outputs, structure, memory plan", test_examples) ||
        !CU_add_test(s, "fixtures: same outputs, memory plan", test_fixtures) ||
        !CU_add_test(s, "print/parse round trip; the pipeline on its own output", test_rerun) ||
        !CU_add_test(s, "layout: a MobileNetV2-like block", test_layout_mobilenet) ||
        !CU_add_test(s, "layout: a LeNet-like chain", test_layout_lenet) ||
        !CU_add_test(s, "layout: a decoder (resize, conv_transpose2d)", test_layout_decoder) ||
        !CU_add_test(s, "layout: a ResNet-like block with 3x3 convs kept plain", test_layout_resnet_keeps_plain) ||
        !CU_add_test(s, "layout: model outputs, branches, shared reorders", test_layout_outputs_and_branches) ||
        !CU_add_test(s, "select: implementations written in the IR", test_written_impls) ||
        !CU_add_test(s, "allocation failures through the pipeline", test_alloc_failures)) {
        CU_cleanup_registry();
        return 1;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
