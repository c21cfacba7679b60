/* compiler/passes/pipeline.c: the passes as a plain list, run in order, with
 * the verifier between them when asked, dumps and timing (passes.h). */
#define _POSIX_C_SOURCE 200809L
#include <string.h>
#include <time.h>

#include "passes.h"

typedef kiln_status (*pass_fn)(kiln_graph *g, const kiln_pipeline_options *o, kiln_diag *d);

static kiln_status run_schedule(kiln_graph *g, const kiln_pipeline_options *o, kiln_diag *d)
{
    kiln_schedule_options so = {.threads = o->threads_hint};
    return kiln_pass_schedule(g, &so, d);
}

static kiln_status run_layout(kiln_graph *g, const kiln_pipeline_options *o, kiln_diag *d)
{
    kiln_layout_options lo = {.block = o->layout_block, .target = o->target, .winograd = o->select.winograd};
    return kiln_pass_layout(g, &lo, d);
}

static kiln_status run_select(kiln_graph *g, const kiln_pipeline_options *o, kiln_diag *d)
{
    kiln_select_pass_options so = {.target = o->target, .select = o->select};
    return kiln_pass_select(g, &so, d);
}

#define PLAIN(name)                                                                                   \
    static kiln_status run_##name(kiln_graph *g, const kiln_pipeline_options *o, kiln_diag *d)        \
    {                                                                                                 \
        (void)o;                                                                                      \
        return kiln_pass_##name(g, d);                                                                \
    }
PLAIN(verify)
PLAIN(infer_shapes)
PLAIN(fold_batchnorm)
PLAIN(fold_constants)
PLAIN(dce)
PLAIN(fuse)
PLAIN(precision)

static kiln_status run_memory_plan(kiln_graph *g, const kiln_pipeline_options *o, kiln_diag *d)
{
    return kiln_pass_memory_plan(g, o->target, d);
}
#undef PLAIN

/* The pipeline, in order: one list, from which both tables below come. */
#define KILN_PASSES(X)                                                                                  \
    X(verify) X(infer_shapes) X(fold_batchnorm) X(fold_constants) X(dce) X(fuse) X(layout) X(precision) \
        X(select) X(schedule) X(memory_plan)

static const struct {
    const char *name;
    pass_fn run;
} passes[] = {
#define ENTRY(name) {#name, run_##name},
    KILN_PASSES(ENTRY)
#undef ENTRY
};
#define N_PASSES (sizeof passes / sizeof passes[0])

static const char *const pass_names[] = {
#define NAME(name) #name,
    KILN_PASSES(NAME)
#undef NAME
    NULL};

const char *const *kiln_pipeline_pass_names(void) { return pass_names; }

static int find_pass(const char *name)
{
    for (size_t i = 0; i < N_PASSES; i++)
        if (strcmp(passes[i].name, name) == 0)
            return (int)i;
    return -1;
}

bool kiln_pipeline_has_pass(const char *name) { return name && find_pass(name) >= 0; }

static void unknown_pass(kiln_diag *d, const char *what, const char *name, bool all)
{
    char list[256];
    size_t w = 0;
    list[0] = 0;
    for (size_t i = 0; i < N_PASSES && w < sizeof list; i++)
        w += (size_t)snprintf(list + w, sizeof list - w, "%s%s", i ? ", " : "", passes[i].name);
    kiln_diag_error(d, (kiln_loc){0}, "%s: unknown pass '%s' (the passes, in order: %s%s)", what, name, list,
                    all ? "; or 'all'" : "");
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

kiln_status kiln_pipeline_run(kiln_graph *g, const kiln_pipeline_options *o, kiln_diag *d)
{
    kiln_pipeline_options defaults = {.verify_each = KILN_PIPELINE_VERIFY_DEFAULT};
    if (!o)
        o = &defaults;
    if (!g || !d)
        return KILN_ERR_INVALID_ARGUMENT;
    int last = (int)N_PASSES - 1, dump = -2; /* -1: after every pass */
    if (o->stop_after && (last = find_pass(o->stop_after)) < 0) {
        unknown_pass(d, "stop after", o->stop_after, false);
        return KILN_ERR_INVALID_ARGUMENT;
    }
    if (o->dump_after && strcmp(o->dump_after, "all") == 0)
        dump = -1;
    else if (o->dump_after && (dump = find_pass(o->dump_after)) < 0) {
        unknown_pass(d, "dump after", o->dump_after, true);
        return KILN_ERR_INVALID_ARGUMENT;
    }
    FILE *dump_to = o->dump_to ? o->dump_to : stdout;
    double times[N_PASSES] = {0}, verify_ms = 0;
    kiln_status st = KILN_OK;
    int ran = 0;
    for (int i = 0; i <= last; i++) {
        double t0 = now_ms();
        st = passes[i].run(g, o, d);
        times[i] = now_ms() - t0;
        ran = i + 1;
        if (st != KILN_OK) {
            if (!kiln_diag_has_errors(d))
                kiln_diag_error(d, (kiln_loc){0}, "pass '%s' failed: %s", passes[i].name, kiln_status_string(st));
            break;
        }
        if (o->verify_each && i > 0) { /* pass 0 is the verifier */
            t0 = now_ms();
            kiln_status vst = kiln_ir_verify(g, d);
            verify_ms += now_ms() - t0;
            if (vst != KILN_OK) {
                kiln_diag_error(d, (kiln_loc){0}, "the IR is invalid after pass '%s'", passes[i].name);
                st = vst == KILN_ERR_OUT_OF_MEMORY ? vst : KILN_ERR_INTERNAL;
                break;
            }
        }
        if (dump == -1 || dump == i) {
            if (dump == -1)
                fprintf(dump_to, "# after %s\n", passes[i].name);
            kiln_status pst = kiln_ir_print(g, dump_to, ".");
            if (pst != KILN_OK) {
                kiln_diag_error(d, (kiln_loc){0}, "cannot print the IR after pass '%s': %s", passes[i].name,
                                kiln_status_string(pst));
                st = pst;
                break;
            }
        }
    }
    if (o->time_to) {
        double total = verify_ms;
        fprintf(o->time_to, "kiln: pass times\n");
        for (int i = 0; i < ran; i++) {
            fprintf(o->time_to, "  %-16s %10.3f ms\n", passes[i].name, times[i]);
            total += times[i];
        }
        if (o->verify_each)
            fprintf(o->time_to, "  %-16s %10.3f ms\n", "(verify_each)", verify_ms);
        fprintf(o->time_to, "  %-16s %10.3f ms\n", "total", total);
    }
    return st;
}
