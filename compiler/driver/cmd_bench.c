/* compiler/driver/cmd_bench.c: `kiln bench MODEL [--batch N] [--threads T]
 * [--iterations K] [--per-layer]`: latency (median, p90) and throughput of
 * the compiled model, JIT-compiled for this machine; with --per-layer, the
 * time of each kernel (a fusion group: the layers it covers joined by '+'),
 * measured by a hook the run function calls between steps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char help[] =
    "usage: kiln bench MODEL [--batch N] [--threads T] [--iterations K] [--warmup W] [--per-layer]\n"
    "                  [--passes all|none] [-O0..3] [--winograd auto|off|f2|f4] [--layout auto|plain]\n"
    "                  [--cpu NAME] [--features LIST] [--precision P]\n"
    "                  [--calibration FILE|DIR|random] [--calibration-method percentile|minmax]\n"
    "\n"
    "Compiles MODEL for this machine (the code `kiln compile` would emit for\n"
    "the host), runs it W times to warm up, then K timed times on random\n"
    "inputs, and prints the latency of one run (median, p90, min) and the\n"
    "throughput (batch items per second at the median).\n"
    "\n"
    "  --batch N        batch size (default 1)\n"
    "  --threads T      threads (default 0: one per core)\n"
    "  --iterations K   timed runs (default 100)\n"
    "  --warmup W       untimed runs first (default 10)\n"
    "  --per-layer      also time each kernel (a fused group of layers) and print\n"
    "                   its mean time and share of the total, slowest first\n"
    "  --passes all     run the optimization passes first (default; 'none': compile\n"
    "                   the model as loaded, one kernel per layer)\n"
    "  -O0 .. -O3       optimization level (default -O2)\n"
    "  --winograd MODE  3x3 stride-1 convolutions: auto (default: Winograd F(4x4) or\n"
    "                   F(2x2) where it pays, docs/codegen.md), off, f2, f4 (force)\n"
    "  --layout auto    (default) channel-blocked activations (nchw8c on AVX2) where the\n"
    "                   layout pass finds they pay (docs/passes.md); 'plain': NCHW\n"
    "  --precision P    the model's default precision (f32, bf16, f16, int8, auto); a\n"
    "                   layer's own precision: key wins (docs/precision.md)\n"
    "  --calibration DATA\n"
    "                   calibration samples (a safetensors file or a folder of\n"
    "                   NAME.npy, one F32 tensor per input, or 'random'), checked against\n"
    "                   the inputs; --precision int8 needs it (docs/precision.md)\n"
    "  --cpu NAME       compile for this CPU instead of the host's (x86-64-v3: the AVX2\n"
    "                   code on an AVX-512 machine); this machine must have its features\n"
    "  --features LIST  LLVM feature string added to the CPU's (+avx2,-avx512f)\n";

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* --per-layer: the time since the previous step, summed per step. */
typedef struct profile {
    double last;
    double *sum;
    int64_t n_steps;
} profile;

static void profile_hook(void *arg, int64_t step)
{
    profile *p = arg;
    double t = kiln_cli_seconds();
    if (step >= 0 && step < p->n_steps)
        p->sum[step] += t - p->last;
    p->last = t;
}

typedef struct layer_row {
    double time;
    char label[160];
    int n_steps;           /* kernels (steps) of the row: im2col + GEMM */
    char kernel[3][80];
    double step_time[3];
} layer_row;

static int cmp_row(const void *a, const void *b)
{
    double x = ((const layer_row *)a)->time, y = ((const layer_row *)b)->time;
    return (x < y) - (x > y);
}

/* "kiln.f32_relu_avx2.fc1" -> "f32_relu_avx2" */
static void kernel_name(const char *fn, char *buf, size_t size)
{
    const char *k = strncmp(fn, "kiln.", 5) == 0 ? fn + 5 : fn;
    const char *dot = strchr(k, '.');
    size_t n = dot ? (size_t)(dot - k) : strlen(k);
    if (n >= size)
        n = size - 1;
    memcpy(buf, k, n);
    buf[n] = '\0';
}

/* Rows of consecutive steps computing the same nodes (im2col + GEMM). */
static void print_layers(const kiln_graph *g, const kiln_cg_module *m, const profile *p, int64_t iterations)
{
    size_t n = kiln_cg_step_count(m), rows = 0;
    layer_row *r = calloc(n ? n : 1, sizeof *r);
    if (!r)
        return;
    double total = 0;
    for (size_t k = 0; k < n; k++) {
        const kiln_cg_step_info *s = kiln_cg_step_at(m, k);
        double t = p->sum[k] / (double)iterations;
        total += t;
        char kn[80];
        kernel_name(s->kernel, kn, sizeof kn);
        const kiln_cg_step_info *prev = k ? kiln_cg_step_at(m, k - 1) : NULL;
        if (prev && s->first_node != UINT32_MAX && prev->first_node == s->first_node &&
            prev->last_node == s->last_node && r[rows - 1].n_steps < 3) {
            layer_row *row = &r[rows - 1];
            snprintf(row->kernel[row->n_steps], sizeof row->kernel[0], "%s", kn);
            row->step_time[row->n_steps++] = t;
            row->time += t;
            continue;
        }
        layer_row *row = &r[rows++];
        row->time = t;
        row->n_steps = 1;
        row->step_time[0] = t;
        snprintf(row->kernel[0], sizeof row->kernel[0], "%s", kn);
        if (s->first_node == UINT32_MAX) {
            snprintf(row->label, sizeof row->label, "(output copy)");
            continue;
        }
        size_t w = 0;
        const char *last = NULL;
        for (uint32_t i = s->first_node; i <= s->last_node && i < g->n_nodes && w < sizeof row->label; i++) {
            const kiln_node *nd = kiln_graph_node(g, i);
            const char *name = nd->layer ? nd->layer : kiln_graph_value(g, nd->output)->name;
            if (last && strcmp(last, name) == 0)
                continue;
            w += (size_t)snprintf(row->label + w, sizeof row->label - w, "%s%s", last ? "+" : "", name);
            last = name;
        }
    }
    qsort(r, rows, sizeof *r, cmp_row);
    printf("  per layer (mean of %lld runs; %zu kernels):\n", (long long)iterations, rows);
    printf("    %-32s %10s %7s  %s\n", "layers", "time", "share", "kernel");
    for (size_t k = 0; k < rows; k++) {
        char t[32];
        if (r[k].time >= 1e-3)
            snprintf(t, sizeof t, "%.3f ms", r[k].time * 1e3);
        else
            snprintf(t, sizeof t, "%.1f us", r[k].time * 1e6);
        printf("    %-32s %10s %6.1f%%  ", r[k].label, t, total > 0 ? 100.0 * r[k].time / total : 0.0);
        for (int q = 0; q < r[k].n_steps; q++) {
            if (r[k].n_steps > 1)
                printf("%s%s (%.0f%%)", q ? " + " : "", r[k].kernel[q],
                       r[k].time > 0 ? 100.0 * r[k].step_time[q] / r[k].time : 0.0);
            else
                printf("%s", r[k].kernel[q]);
        }
        printf("\n");
    }
    free(r);
}

static void print_time(const char *label, double s)
{
    if (s >= 1.0)
        printf("  %-8s %10.3f s\n", label, s);
    else if (s >= 1e-3)
        printf("  %-8s %10.3f ms\n", label, s * 1e3);
    else
        printf("  %-8s %10.3f us\n", label, s * 1e6);
}

int kiln_cmd_bench(int argc, char **argv)
{
    kiln_args a = {.argc = argc, .argv = argv, .i = 1, .cmd = "bench"};
    const char *v;
    int64_t iterations = 100, warmup = 10;
    bool per_layer = false;
    kiln_cli_options o;
    kiln_cli_options_init(&o, "bench", help,
                          KILN_CLI_TAKES_OPT_LEVEL | KILN_CLI_TAKES_WINOGRAD | KILN_CLI_TAKES_LAYOUT | KILN_CLI_TAKES_PASSES |
                              KILN_CLI_TAKES_CPU | KILN_CLI_TAKES_PRECISION | KILN_CLI_TAKES_CALIBRATION |
                              KILN_CLI_TAKES_THREADS | KILN_CLI_TAKES_BATCH);
    for (; a.i < argc; a.i++) {
        int r = kiln_cli_options_take(&a, &o);
        if (r == KILN_CLI_TAKEN)
            continue;
        if (r != KILN_CLI_OTHER)
            return r;
        if ((r = kiln_args_flag(&a, "--per-layer"))) {
            if (r < 0)
                return 2;
            per_layer = true;
            continue;
        }
        if ((r = kiln_args_value(&a, "--iterations", &v))) {
            if (r < 0 || kiln_cli_parse_count("bench", "--iterations", v, 1, &iterations))
                return 2;
            continue;
        }
        if ((r = kiln_args_value(&a, "--warmup", &v))) {
            if (r < 0 || kiln_cli_parse_count("bench", "--warmup", v, 0, &warmup))
                return 2;
            continue;
        }
        return kiln_args_unknown(&a);
    }
    if (kiln_cli_options_check(&o))
        return 2;

    kiln_cli_model cm;
    int rc = kiln_cli_model_open(&cm, &o);
    if (rc != 0)
        return rc;
    rc = 1;
    const kiln_graph *g = cm.g;
    const int64_t batch = o.batch, threads = o.threads;
    kiln_jit_model jm = {0};
    void *inst = NULL;
    profile prof = {0, NULL, 0};
    kiln_cli_buffers io = {0};
    double *times = malloc((size_t)iterations * sizeof *times);
    double t0 = kiln_cli_seconds();
    if (!times || kiln_cli_budget_workspace(g, "bench", batch, KILN_CLI_EVAL_COMPILED) != 0 ||
        kiln_jit_model_open(&jm, g, "bench", &o.cg) != 0)
        goto done;
    double compile_s = cm.passes_s + (kiln_cli_seconds() - t0);
    char why[512] = "";
    kiln_options ko = KILN_OPTIONS_INIT;
    ko.num_threads = (int)threads;
    ko.error = why;
    ko.error_size = sizeof why;
    kiln_status st = jm.e.create(&inst, &ko);
    if (st == KILN_OK)
        st = kiln_cli_buffers_alloc(&io, g, batch, 7);
    double t_warm = kiln_cli_seconds();
    for (int64_t i = 0; st == KILN_OK && i < warmup; i++)
        st = jm.e.run_array(inst, batch, (const float *const *)io.in, io.out);
    double t_timed = kiln_cli_seconds();
    if (st == KILN_OK)
        kiln_cli_stage("bench", t_timed - t_warm, "%lld warm-up runs", (long long)warmup);
    for (int64_t i = 0; st == KILN_OK && i < iterations; i++) {
        double s = kiln_cli_seconds();
        st = jm.e.run_array(inst, batch, (const float *const *)io.in, io.out);
        times[i] = kiln_cli_seconds() - s;
    }
    if (st == KILN_OK)
        kiln_cli_stage("bench", kiln_cli_seconds() - t_timed, "%lld timed runs", (long long)iterations);
    if (st != KILN_OK && inst && !why[0])
        snprintf(why, sizeof why, "%s", jm.e.last_error(inst));
    if (st == KILN_OK && per_layer) {
        prof.n_steps = (int64_t)kiln_cg_step_count(jm.module);
        prof.sum = calloc((size_t)prof.n_steps + 1, sizeof *prof.sum);
        if (!prof.sum)
            st = KILN_ERR_OUT_OF_MEMORY;
        for (int64_t i = 0; st == KILN_OK && i < iterations; i++) {
            prof.last = kiln_cli_seconds();
            st = jm.e.run_profiled(inst, batch, (const float *const *)io.in, io.out, profile_hook, &prof);
        }
    }
    if (st != KILN_OK) {
        kiln_cli_error("bench", "running the compiled model failed: %s%s%s", kiln_status_string(st),
                       why[0] ? ": " : "", why);
        goto done;
    }
    qsort(times, (size_t)iterations, sizeof *times, cmp_double);
    double median = times[iterations / 2];
    double p90 = times[(iterations * 9) / 10 < iterations ? (iterations * 9) / 10 : iterations - 1];
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    printf("model %s: batch %lld, %lld thread%s, %lld iterations (after %lld warm-up)\n", g->name,
           (long long)batch, (long long)(threads ? threads : cores), (threads ? threads : cores) == 1 ? "" : "s",
           (long long)iterations, (long long)warmup);
    printf("  target   %s\n", kiln_cg_target_description(jm.module));
    print_time("compile", compile_s);
    print_time("median", median);
    print_time("p90", p90);
    print_time("min", times[0]);
    printf("  throughput %.1f items/s\n", (double)batch / median);
    if (per_layer)
        print_layers(g, jm.module, &prof, iterations);
    rc = 0;
done:
    if (inst)
        jm.e.destroy(inst);
    kiln_jit_model_close(&jm);
    kiln_cli_buffers_free(&io);
    free(times);
    free(prof.sum);
    kiln_cli_model_close(&cm);
    return rc;
}
