/* compiler/driver/cmd_bench.c: `kiln bench MODEL [--batch N] [--threads T]
 * [--iterations K]`: latency (median, p90) and throughput of the compiled
 * model, JIT-compiled for this machine. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const char help[] =
    "usage: kiln bench MODEL [--batch N] [--threads T] [--iterations K] [--warmup W] [-O0..3]\n"
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
    "  -O0 .. -O3       optimization level (default -O2)\n";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
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
    kiln_args a = {argc, argv, 1, "bench"};
    const char *model = NULL, *v;
    int64_t batch = 1, threads = 0, iterations = 100, warmup = 10;
    kiln_cg_options opt = KILN_CG_OPTIONS_INIT;
    for (; a.i < argc; a.i++) {
        int r;
        if (kiln_args_flag(&a, "--help") || kiln_args_flag(&a, "-h")) {
            fputs(help, stdout);
            return 0;
        }
        const char *arg = argv[a.i];
        if (arg[0] == '-' && arg[1] == 'O' && arg[2] >= '0' && arg[2] <= '3' && !arg[3]) {
            opt.opt_level = arg[2] - '0';
            continue;
        }
        struct {
            const char *flag;
            int64_t min, *dst;
        } nums[] = {{"--batch", 1, &batch}, {"--threads", 0, &threads}, {"--iterations", 1, &iterations},
                    {"--warmup", 0, &warmup}};
        bool matched = false;
        for (size_t k = 0; k < sizeof nums / sizeof nums[0] && !matched; k++) {
            if ((r = kiln_args_value(&a, nums[k].flag, &v))) {
                if (r < 0 || kiln_cli_parse_count("bench", nums[k].flag, v, nums[k].min, nums[k].dst))
                    return 2;
                matched = true;
            }
        }
        if (matched)
            continue;
        if (arg[0] == '-' || model)
            return kiln_args_unknown(&a);
        model = arg;
    }
    if (!model)
        return kiln_cli_usage_error("bench", "no model given (see 'kiln bench --help')");
    if (threads > 1024)
        return kiln_cli_usage_error("bench", "--threads must be at most 1024");

    kiln_graph *g = kiln_cli_load_model(model);
    if (!g)
        return 1;
    bool batched = false;
    for (size_t i = 0; i < g->n_inputs; i++)
        batched |= kiln_graph_value(g, g->inputs[i])->type.shape.batched;
    if (!batched && batch != 1) {
        kiln_graph_destroy(g);
        return kiln_cli_usage_error("bench", "the model has fixed shapes: --batch must be 1");
    }
    int rc = 1;
    kiln_jit_model jm = {0};
    void *inst = NULL;
    double *times = malloc((size_t)iterations * sizeof *times);
    float **in = calloc(g->n_inputs + 1, sizeof *in), **out = calloc(g->n_outputs + 1, sizeof *out);
    double t0 = now_s();
    if (!times || !in || !out || kiln_jit_model_open(&jm, g, "bench", &opt) != 0)
        goto done;
    double compile_s = now_s() - t0;
    kiln_options ko = KILN_OPTIONS_INIT;
    ko.num_threads = (int)threads;
    kiln_status st = jm.e.create(&inst, &ko);
    for (size_t k = 0; st == KILN_OK && k < g->n_inputs; k++) {
        size_t n = kiln_value_elements(g, g->inputs[k], batch);
        if (!(in[k] = malloc((n ? n : 1) * sizeof(float))))
            st = KILN_ERR_OUT_OF_MEMORY;
        else
            kiln_fill_random(in[k], n, 7 + k);
    }
    for (size_t k = 0; st == KILN_OK && k < g->n_outputs; k++) {
        size_t n = kiln_value_elements(g, g->outputs[k], batch);
        if (!(out[k] = malloc((n ? n : 1) * sizeof(float))))
            st = KILN_ERR_OUT_OF_MEMORY;
    }
    for (int64_t i = 0; st == KILN_OK && i < warmup; i++)
        st = jm.e.run_array(inst, batch, (const float *const *)in, out);
    for (int64_t i = 0; st == KILN_OK && i < iterations; i++) {
        double s = now_s();
        st = jm.e.run_array(inst, batch, (const float *const *)in, out);
        times[i] = now_s() - s;
    }
    if (st != KILN_OK) {
        kiln_cli_error("bench", "running the compiled model failed: %s", kiln_status_string(st));
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
    rc = 0;
done:
    if (inst)
        jm.e.destroy(inst);
    kiln_jit_model_close(&jm);
    for (size_t k = 0; in && k < g->n_inputs; k++)
        free(in[k]);
    for (size_t k = 0; out && k < g->n_outputs; k++)
        free(out[k]);
    free(in);
    free(out);
    free(times);
    kiln_graph_destroy(g);
    return rc;
}
