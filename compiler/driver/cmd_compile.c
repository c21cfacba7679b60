/* compiler/driver/cmd_compile.c: `kiln compile MODEL -o OUT [--header H]
 * [--emit KIND] [--target T] [--cpu C] [-O0..3] [--weights embed|external]
 * [--name PREFIX] [--depfile FILE] [--dump-ir=all|after:PASS] [--time-passes]`
 * and the compile report. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "compiler/passes/passes.h"
#include "guard.h"
#include "outputs.h"
#include "precision_auto.h"

static const char help[] =
    "usage: kiln compile MODEL -o OUTPUT [--header FILE.h] [--emit obj|asm|llvm|bc|lib|so]\n"
    "                    [--target TRIPLE] [--cpu NAME] [--features LIST] [-O0|-O1|-O2|-O3]\n"
    "                    [--weights embed|external] [--weights-path PATH] [--passes all|none]\n"
    "                    [--threads T] [--tune] [--tune-batch N] [--dump-ir=all|after:PASS]\n"
    "                    [--time-passes] [--winograd auto|off|f2|f4] [--layout auto|plain] [--jobs J]\n"
    "                    [--name PREFIX] [--precision P] [--depfile FILE] [--rpath DIR] [-v]\n"
    "                    [--calibration FILE|DIR|random] [--calibration-method percentile|minmax]\n"
    "                    [--tolerance X] [--metric maxrel|top1]\n"
    "\n"
    "Compiles MODEL (.yaml or .kir) to native code for the model's C API\n"
    "(NAME_create, NAME_run, NAME_run_checked, NAME_last_error, NAME_workspace_size,\n"
    "NAME_info, NAME_destroy). The same command writes the same object on any\n"
    "machine, except that the default CPU is this machine's (--cpu to choose).\n"
    "\n"
    "  -o OUTPUT           the file to write\n"
    "  --header FILE.h     also write the C header of the generated API\n"
    "  --name PREFIX       the symbol prefix (PREFIX_create, ...; default: the model's\n"
    "                      name), also the name in NAME_info()\n"
    "  --precision P       the model's default precision: f32, bf16, f16, int8, auto\n"
    "                      (replaces the YAML's top-level precision: key; a layer's own\n"
    "                      key wins; bf16 and f16 apply to dense and convolution layers,\n"
    "                      int8 to dense layers: docs/precision.md)\n"
    "  --calibration DATA  calibration samples: a safetensors file, or a folder of\n"
    "                      NAME.npy, holding one F32 tensor per model input named as\n"
    "                      the input, [samples, the input's shape without its batch\n"
    "                      axis]; or 'random' (32 samples uniform in [-1, 1)). Needed\n"
    "                      by int8 (each int8 layer's input range gives its scale\n"
    "                      and zero point) and auto\n"
    "  --calibration-method M  the range kept per value: percentile (default: the\n"
    "                      99.99% percentile of |x|) or minmax\n"
    "  --tolerance X       --precision auto: the largest error accepted on the\n"
    "                      calibration data against kiln's f32 build (needed)\n"
    "  --metric M          --precision auto: maxrel (default: max |y - y_f32| over\n"
    "                      max |y_f32|, per output) or top1 (the fraction of samples\n"
    "                      whose argmax of the first output changes)\n"
    "  --depfile FILE      also write a Makefile-syntax dependency file: OUTPUT depends\n"
    "                      on MODEL and every file kiln read for it (weights); for\n"
    "                      build systems (CMake's DEPFILE, make's include)\n"
    "  --emit KIND         obj (default), asm, llvm (IR text), bc (bitcode), lib (a\n"
    "                      static archive), so (a shared library linked by `cc -shared`\n"
    "                      against the libkiln_rt next to kiln, SONAME the file's name);\n"
    "                      without --emit, an OUTPUT ending in .s, .ll, .bc, .a or .so\n"
    "                      selects the kind\n"
    "  --rpath DIR         --emit so: record DIR as the library's run path (default: none)\n"
    "  --target TRIPLE     e.g. aarch64-linux-gnu (default: the host)\n"
    "  --cpu NAME          e.g. x86-64-v3 (AVX2+FMA, portable), x86-64-v4 (AVX-512),\n"
    "                      x86-64-v2 (SSE4.2), znver4, skylake-avx512, cortex-a76\n"
    "                      (default: this machine's CPU with its features, named in\n"
    "                      the report; 'generic' for another target)\n"
    "  --features LIST     LLVM feature string, e.g. +avx2,+fma (default: the CPU's)\n"
    "  -O0 .. -O3          optimization level (default -O2)\n"
    "  --winograd MODE     3x3 stride-1 convolutions: auto (default: Winograd F(4x4) or\n"
    "                      F(2x2) where the estimate says it pays), off (implicit GEMM\n"
    "                      everywhere: the direct sum's rounding), f2 / f4 (force)\n"
    "  --layout auto       (default) channel-blocked activations (nchw<B>c, B = the f32\n"
    "                      vector lanes of the target: 8 on AVX2, 16 on AVX-512) where\n"
    "                      the layout pass finds they pay (docs/passes.md); 'plain':\n"
    "                      every activation in NCHW\n"
    "  --weights embed     weights in the object's read-only data (default)\n"
    "  --weights external  weights in OUTPUT with its extension replaced by .weights;\n"
    "                      NAME_create maps that file (checking size and checksum)\n"
    "  --weights-path PATH the path NAME_create maps by default (external weights;\n"
    "                      default: the absolute path of the file written)\n"
    "  --passes all        run the optimization passes first (default): batch norm\n"
    "                      folding, dead code, fusion, memory plan, schedule;\n"
    "                      'none' compiles the model as loaded\n"
    "  --threads T         the thread count the schedule plans each kernel's tasks for\n"
    "                      (default 8, whatever this machine has; the number of threads\n"
    "                      that run them is chosen when the model runs), and the one\n"
    "                      --tune measures with (default: one per core)\n"
    "  --tune              for each dense and 1x1 convolution layer, time the generated\n"
    "                      GEMM and OpenBLAS sgemm on this machine and keep the faster\n"
    "                      (the host target only; without it a fixed heuristic picks)\n"
    "  --tune-batch N      the batch size --tune measures at (default 1)\n"
    "  --dump-ir=after:PASS  print the IR text after pass PASS to standard error (what\n"
    "                      'kiln dump --after PASS' prints). The passes, in order: verify,\n"
    "                      infer_shapes, fold_batchnorm, fold_constants, dce, fuse,\n"
    "                      layout, precision, select, schedule, memory_plan\n"
    "  --dump-ir=all       print the IR after every pass, each headed by '# after PASS'\n"
    "  --time-passes       print to standard error the time of each pass, then of\n"
    "                      loading, tuning, code generation and emission\n"
    "  --jobs J            LLVM optimizes and compiles the model as J modules on J\n"
    "                      threads (1 to 4, default 2; the object depends on J, not on\n"
    "                      the machine)\n"
    "  -v                  print each stage and its time to standard error\n";

static int parse_emit(const char *s, kiln_cg_emit_kind *out)
{
    static const struct {
        const char *name;
        kiln_cg_emit_kind kind;
    } kinds[] = {{"obj", KILN_CG_EMIT_OBJ}, {"asm", KILN_CG_EMIT_ASM}, {"llvm", KILN_CG_EMIT_LLVM},
                 {"bc", KILN_CG_EMIT_BC},   {"lib", KILN_CG_EMIT_LIB}, {"so", KILN_CG_EMIT_SO}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kinds[i].name, s) == 0) {
            *out = kinds[i].kind;
            return 0;
        }
    return -1;
}

static kiln_cg_emit_kind kind_from_name(const char *path)
{
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash))
        return KILN_CG_EMIT_OBJ;
    if (strcmp(dot, ".s") == 0 || strcmp(dot, ".S") == 0)
        return KILN_CG_EMIT_ASM;
    if (strcmp(dot, ".ll") == 0)
        return KILN_CG_EMIT_LLVM;
    if (strcmp(dot, ".bc") == 0)
        return KILN_CG_EMIT_BC;
    if (strcmp(dot, ".a") == 0)
        return KILN_CG_EMIT_LIB;
    if (strcmp(dot, ".so") == 0)
        return KILN_CG_EMIT_SO;
    return KILN_CG_EMIT_OBJ;
}

/* OUTPUT with its extension (if any) replaced by .weights. */
static char *weights_file_name(const char *out)
{
    const char *dot = strrchr(out, '.'), *slash = strrchr(out, '/');
    size_t stem = (dot && (!slash || dot > slash) && dot != out && (!slash || dot > slash + 1)) ? (size_t)(dot - out)
                                                                                                 : strlen(out);
    char *p = malloc(stem + 9);
    if (p) {
        memcpy(p, out, stem);
        memcpy(p + stem, ".weights", 9);
    }
    return p;
}

/* An absolute spelling of path (its directory must exist). */
static char *absolute_path(const char *path)
{
    char *copy = strdup(path), *copy2 = strdup(path);
    char *res = NULL;
    if (copy && copy2) {
        char dir[PATH_MAX];
        if (realpath(dirname(copy), dir)) {
            const char *base = basename(copy2);
            size_t n = strlen(dir) + strlen(base) + 2;
            res = malloc(n);
            if (res)
                snprintf(res, n, "%s/%s", dir, base);
        }
    }
    free(copy);
    free(copy2);
    return res;
}

static void human(size_t bytes, char *buf, size_t size)
{
    if (bytes >= (size_t)10 << 20)
        snprintf(buf, size, "%.1f MiB", (double)bytes / (1 << 20));
    else if (bytes >= (size_t)10 << 10)
        snprintf(buf, size, "%.1f KiB", (double)bytes / (1 << 10));
    else
        snprintf(buf, size, "%zu B", bytes);
}

/* --time-passes: what follows the passes' own table. */
static void print_times(const kiln_cli_model *cm, bool tune, double tuning, double codegen, double emission)
{
    fprintf(stderr, "kiln: compile times\n");
    fprintf(stderr, "  %-16s %10.3f ms\n", "loading", cm->load_s * 1e3);
    fprintf(stderr, "  %-16s %10.3f ms\n", "passes", cm->passes_s * 1e3);
    if (tune)
        fprintf(stderr, "  %-16s %10.3f ms\n", "tuning", tuning * 1e3);
    fprintf(stderr, "  %-16s %10.3f ms\n", "code generation", codegen * 1e3);
    fprintf(stderr, "  %-16s %10.3f ms\n", "emission", emission * 1e3);
    fprintf(stderr, "  %-16s %10.3f ms\n", "total", (cm->load_s + cm->passes_s + tuning + codegen + emission) * 1e3);
}

/* Writes `path` into a Makefile rule: spaces and '#' escaped with a
 * backslash, '$' doubled. */
static void put_make_path(FILE *f, const char *path)
{
    for (const char *p = path; *p; p++) {
        if (*p == ' ' || *p == '#' || *p == '\\')
            fputc('\\', f);
        else if (*p == '$')
            fputc('$', f);
        fputc(*p, f);
    }
}

/* --depfile: `OUTPUT: MODEL WEIGHTS...` (every file the frontend read),
 * written to write_path. */
static int write_depfile(const char *path, const char *write_path, const char *output, const kiln_graph *g,
                         const char *model)
{
    FILE *f = fopen(write_path, "w");
    if (!f)
        return kiln_cli_error("compile", "cannot write the dependency file '%s': %s", path, strerror(errno));
    put_make_path(f, output);
    fputs(":", f);
    fputs(" \\\n  ", f);
    put_make_path(f, model);
    for (size_t i = 0; i < g->n_weight_files; i++) {
        if (!g->weight_files[i] || !*g->weight_files[i])
            continue;
        fputs(" \\\n  ", f);
        put_make_path(f, g->weight_files[i]);
    }
    fputs("\n", f);
    int err = ferror(f) ? (errno ? errno : EIO) : 0;
    if (fclose(f) != 0 && !err)
        err = errno ? errno : EIO;
    if (err)
        return kiln_cli_error("compile", "cannot write the dependency file '%s': %s", path, strerror(err));
    return 0;
}

/* The report's lines about portability: where the CPU came from, how the
 * tasks were planned, and which libraries the object needs. */
/* Under the weights line, when any layer stores a reduced precision: the
 * bytes per precision ("int8 2.8 MiB, f32 52.0 KiB"). */
static void print_weight_precisions(const kiln_cg_module *m)
{
    size_t by[KILN_PREC_COUNT];
    kiln_cg_weight_bytes_by_precision(m, by);
    bool reduced = false;
    for (int p = 0; p < KILN_PREC_COUNT; p++)
        reduced |= p != KILN_PREC_F32 && by[p] > 0;
    if (!reduced)
        return;
    static const kiln_precision order[] = {KILN_PREC_INT8, KILN_PREC_F16, KILN_PREC_BF16, KILN_PREC_F32};
    char line[256] = "";
    size_t w = 0;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        if (!by[order[i]])
            continue;
        char h[32];
        human(by[order[i]], h, sizeof h);
        w += (size_t)snprintf(line + w, w < sizeof line ? sizeof line - w : 0, "%s%s %s", w ? ", " : "",
                              kiln_precision_name(order[i]), h);
    }
    printf("            by precision: %s\n", line);
}

static void print_portability(const kiln_cg_module *m, const kiln_cg_options *opt, int64_t threads, bool threads_given,
                              const kiln_graph *g)
{
    if (!opt->cpu && !opt->triple)
        printf("  cpu       this machine's (the default): the object needs a CPU with the same features;\n"
               "            --cpu x86-64-v2, x86-64-v3 or x86-64-v4 gives portable code\n");
    printf("  threads   tasks planned for %lld threads%s; the pool's size is chosen at run time\n", (long long)threads,
           threads_given ? " (--threads)" : " (the default, whatever this machine has)");
    if (kiln_cg_uses_blas(m)) {
        printf("  links     libkiln_rt and libkiln_rt_blas (OpenBLAS sgemm in");
        int shown = 0;
        for (size_t i = 0; i < g->n_nodes; i++)
            if (kiln_cg_gemm_used(m, (kiln_id)i) == KILN_CG_GEMM_BLAS) {
                const kiln_node *n = kiln_graph_node(g, (kiln_id)i);
                if (shown < 4)
                    printf("%s%s", shown ? ", " : " ", n->layer ? n->layer : "?");
                shown++;
            }
        if (shown > 4)
            printf(" and %d more", shown - 4);
        printf("): pkg-config kiln-rt-blas, CMake kiln::runtime_blas\n");
    } else {
        printf("  links     libkiln_rt only (no OpenBLAS): pkg-config kiln-rt, CMake kiln::runtime\n");
    }
}

int kiln_cmd_compile(int argc, char **argv)
{
    kiln_args a = {.argc = argc, .argv = argv, .i = 1, .cmd = "compile"};
    const char *output = NULL, *header = NULL, *emit = NULL, *weights = "embed";
    const char *weights_path = NULL, *tune_batch_text = NULL, *jobs_text = NULL, *depfile = NULL;
    const char *tolerance_text = NULL, *metric_text = NULL;
    bool tune = false, threads_given = false;
    kiln_cli_options o;
    kiln_cli_options_init(&o, "compile", help,
                          KILN_CLI_TAKES_OPT_LEVEL | KILN_CLI_TAKES_WINOGRAD | KILN_CLI_TAKES_LAYOUT | KILN_CLI_TAKES_PASSES |
                              KILN_CLI_TAKES_THREADS | KILN_CLI_TAKES_TIME_PASSES | KILN_CLI_TAKES_DUMP_IR |
                              KILN_CLI_TAKES_PRECISION | KILN_CLI_TAKES_CALIBRATION);
    kiln_cg_options *opt = &o.cg;
    for (; a.i < argc; a.i++) {
        bool threads_arg = strncmp(argv[a.i], "--threads", 9) == 0;
        int r = kiln_cli_options_take(&a, &o);
        if (r == KILN_CLI_TAKEN) {
            threads_given |= threads_arg;
            continue;
        }
        if (r != KILN_CLI_OTHER)
            return r;
        if ((r = kiln_args_flag(&a, "--tune"))) {
            if (r < 0)
                return 2;
            tune = true;
            continue;
        }
        if ((r = kiln_args_value(&a, "-o", &output)) || (r = kiln_args_value(&a, "--output", &output)) ||
            (r = kiln_args_value(&a, "--header", &header)) || (r = kiln_args_value(&a, "--emit", &emit)) ||
            (r = kiln_args_value(&a, "--target", &opt->triple)) || (r = kiln_args_value(&a, "--cpu", &opt->cpu)) ||
            (r = kiln_args_value(&a, "--features", &opt->features)) ||
            (r = kiln_args_value(&a, "--weights-path", &weights_path)) ||
            (r = kiln_args_value(&a, "--weights", &weights)) ||
            (r = kiln_args_value(&a, "--tune-batch", &tune_batch_text)) ||
            (r = kiln_args_value(&a, "--jobs", &jobs_text)) || (r = kiln_args_value(&a, "--name", &o.name)) ||
            (r = kiln_args_value(&a, "--depfile", &depfile)) || (r = kiln_args_value(&a, "--rpath", &opt->rpath)) ||
            (r = kiln_args_value(&a, "--tolerance", &tolerance_text)) ||
            (r = kiln_args_value(&a, "--metric", &metric_text))) {
            if (r < 0)
                return 2;
            continue;
        }
        return kiln_args_unknown(&a);
    }
    if (kiln_cli_options_check(&o))
        return 2;
    if (!output)
        return kiln_cli_usage_error("compile", "-o OUTPUT is required");
    if (!*output)
        return kiln_cli_usage_error("compile", "-o needs a file name");
    if (depfile && !*depfile)
        return kiln_cli_usage_error("compile", "--depfile needs a file name");
    kiln_cg_emit_kind kind = kind_from_name(output);
    if (emit && parse_emit(emit, &kind) != 0)
        return kiln_cli_usage_error("compile", "--emit must be obj, asm, llvm, bc, lib or so, got '%s'", emit);
    if (opt->rpath && kind != KILN_CG_EMIT_SO)
        return kiln_cli_usage_error("compile", "--rpath is for --emit so");
    bool external = strcmp(weights, "external") == 0;
    if (!external && strcmp(weights, "embed") != 0)
        return kiln_cli_usage_error("compile", "--weights must be embed or external, got '%s'", weights);
    if (weights_path && !external)
        return kiln_cli_usage_error("compile", "--weights-path needs --weights external");
    int64_t jobs = 0;
    if (jobs_text && kiln_cli_parse_count("compile", "--jobs", jobs_text, 1, &jobs))
        return 2;
    if (jobs > 4)
        return kiln_cli_usage_error("compile", "--jobs must be at most 4");
    opt->jobs = (int)jobs;
    int64_t tune_batch = 1;
    if (tune_batch_text && kiln_cli_parse_count("compile", "--tune-batch", tune_batch_text, 1, &tune_batch))
        return 2;
    if (tune_batch_text && !tune)
        return kiln_cli_usage_error("compile", "--tune-batch needs --tune");
    /* --precision auto: calibration data and a tolerance, both needed */
    double tolerance = 0;
    kiln_auto_metric metric = KILN_AUTO_MAXREL;
    if (tolerance_text && (kiln_parse_float(tolerance_text, &tolerance) != 0 || !(tolerance >= 0)))
        return kiln_cli_usage_error("compile", "--tolerance expects a number >= 0, got '%s'", tolerance_text);
    if (metric_text && kiln_auto_metric_parse(metric_text, &metric) != 0)
        return kiln_cli_usage_error("compile", "--metric must be 'maxrel' or 'top1', got '%s'", metric_text);
    if (o.precision && strcmp(o.precision, "auto") == 0 && (!o.calibration || !tolerance_text))
        return kiln_cli_usage_error("compile", "--precision auto needs --calibration FILE (or --calibration random) "
                                               "and --tolerance X");
    if (o.precision && strcmp(o.precision, "auto") != 0 && (tolerance_text || metric_text))
        return kiln_cli_usage_error("compile", "%s is for --precision auto", tolerance_text ? "--tolerance"
                                                                                          : "--metric");
    if (o.precision && strcmp(o.precision, "auto") == 0 && opt->triple)
        return kiln_cli_usage_error("compile", "--precision auto measures on this machine: it cannot be combined "
                                               "with --target");
    if (tune && (opt->triple || opt->cpu || opt->features))
        return kiln_cli_usage_error("compile", "--tune measures on this machine: it cannot be combined with "
                                               "--target, --cpu or --features");
    /* The schedule plans for a fixed thread count unless told otherwise: the
     * object must not depend on the machine that compiles it. --tune still
     * measures with this machine's threads. */
    int64_t tune_threads = o.threads;
    if (o.threads == 0)
        o.threads = KILN_SCHEDULE_DEFAULT_THREADS;

    double t_start = kiln_cli_seconds();
    /* Every output is checked and gets its temporary file before any work:
     * none may be the model or another output (outputs.h). */
    kiln_outputs outs;
    kiln_outputs_init(&outs, "compile");
    const kiln_out_file *out_obj = NULL, *out_header = NULL, *out_weights = NULL, *out_dep = NULL;
    char *wfile = NULL, *wabs = NULL;
    int rc = kiln_outputs_input(&outs, o.model, "the model", KILN_OUT_USAGE);
    if (rc == 0)
        rc = kiln_outputs_add(&outs, output, "-o", KILN_OUT_USAGE | (kind == KILN_CG_EMIT_SO ? KILN_OUT_EXECUTABLE : 0),
                              &out_obj);
    if (rc == 0 && external) {
        if (out_obj->device)
            rc = kiln_cli_usage_error("compile", "--weights external writes OUTPUT's .weights file beside OUTPUT: "
                                                 "-o '%s' must then be a regular file", output);
        else if (!(wfile = weights_file_name(output)))
            rc = kiln_cli_error("compile", "out of memory");
        else
            rc = kiln_outputs_add(&outs, wfile, "the weights file (--weights external)", KILN_OUT_USAGE, &out_weights);
    }
    if (rc == 0 && header)
        rc = kiln_outputs_add(&outs, header, "--header", KILN_OUT_USAGE, &out_header);
    if (rc == 0 && depfile)
        rc = kiln_outputs_add(&outs, depfile, "--depfile", KILN_OUT_USAGE, &out_dep);
    kiln_cli_model cm = {0};
    kiln_auto_result autores = {0};
    bool searched = false, wants_int8 = false;
    if (rc == 0)
        rc = kiln_cli_model_load(&cm, &o);
    if (rc == 0) {
        /* what the layers ask, before anything is decided */
        bool wants_auto = false;
        for (size_t i = 0; i < cm.g->n_nodes; i++) {
            const kiln_node *n = &cm.g->nodes[i];
            kiln_precision p = kiln_node_precision_asked(cm.g, n);
            wants_auto |= p == KILN_PREC_AUTO && kiln_node_precision_eligible(cm.g, n);
            wants_int8 |= p == KILN_PREC_INT8 && kiln_node_precision_eligible(cm.g, n);
        }
        if ((tolerance_text || metric_text) && !wants_auto && !o.precision)
            rc = kiln_cli_usage_error("compile", "%s is for --precision auto (no layer of the model asks for it)",
                                      tolerance_text ? "--tolerance" : "--metric");
        else if (wants_auto && tolerance_text && o.calibration) {
            if (opt->triple) {
                rc = kiln_cli_usage_error("compile", "--precision auto measures on this machine: it cannot be "
                                                     "combined with --target");
            } else {
                double t0 = kiln_cli_seconds();
                rc = kiln_auto_choose(cm.g, &o, &cm.calib, metric, tolerance, &autores);
                searched = rc == 0;
                kiln_cli_stage("compile", kiln_cli_seconds() - t0, "precision auto (%zu JIT builds)",
                               autores.builds);
            }
        }
        if (rc != 0)
            kiln_cli_model_close(&cm);
    }
    if (rc == 0)
        rc = kiln_cli_model_passes(&cm, &o);
    if (rc != 0) {
        kiln_auto_result_free(&autores);
        kiln_outputs_release(&outs);
        free(wfile);
        return rc;
    }
    (void)wants_int8; /* the int8 layers' quantization is set by kiln_cli_model_passes (calib_quant.c) */
    rc = 1;
    const kiln_graph *g = cm.g;
    kiln_cg_module *m = NULL;
    kiln_cg_gemm_impl *choice = NULL;
    double *t_gen = NULL, *t_blas = NULL;
    kiln_diag d;
    kiln_diag_init(&d);
    for (size_t i = 0; i < g->n_weight_files; i++)
        if (kiln_outputs_input(&outs, g->weight_files[i], "a weights file of the model", 0) != 0)
            goto done;
    if (external) {
        wabs = !weights_path ? absolute_path(wfile) : NULL;
        if (!weights_path && !wabs) {
            kiln_cli_error("compile", "cannot resolve the weights file for '%s'", output);
            goto done;
        }
        opt->weights = KILN_CG_WEIGHTS_EXTERNAL;
        opt->weights_path = weights_path ? weights_path : wabs;
    }
    if (kind == KILN_CG_EMIT_SO)
        opt->rt_libdir = kiln_cli_rt_libdir();
    double t_passes = kiln_cli_seconds();
    kiln_status st = KILN_OK;
    choice = calloc(g->n_nodes ? g->n_nodes : 1, sizeof *choice);
    t_gen = calloc(g->n_nodes ? g->n_nodes : 1, sizeof *t_gen);
    t_blas = calloc(g->n_nodes ? g->n_nodes : 1, sizeof *t_blas);
    if (!choice || !t_gen || !t_blas) {
        kiln_cli_error("compile", "out of memory");
        goto done;
    }
    if (tune && kiln_cli_budget_workspace(g, "compile", tune_batch, KILN_CLI_EVAL_COMPILED) != 0)
        goto done;
    if (tune) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        st = kiln_cg_tune(g, opt, tune_batch, tune_threads ? (int)tune_threads : (int)(cores > 0 ? cores : 1), 15,
                          choice, t_gen, t_blas, &d);
        /* The measurement is the select pass's decision for these layers:
         * written into the IR (a dump after compile keeps it). */
        for (size_t i = 0; st == KILN_OK && i < g->n_nodes; i++)
            if (choice[i] != KILN_CG_GEMM_AUTO)
                cm.g->nodes[i].impl = choice[i] == KILN_CG_GEMM_BLAS ? KILN_IMPL_BLAS : KILN_IMPL_GEMM;
        kiln_cli_stage("compile", kiln_cli_seconds() - t_passes, "tune");
    }
    double t_tuned = kiln_cli_seconds();
    if (st == KILN_OK)
        st = kiln_cg_compile(g, opt, &m, &d);
    double t_codegen = kiln_cli_seconds();
    if (st == KILN_OK)
        kiln_cli_stage("compile", t_codegen - t_tuned, "code generation (LLVM IR, optimization)");
    if (st == KILN_OK)
        st = kiln_cg_emit_to(m, kind, output, out_obj->tmp, &d);
    double t_emitted = kiln_cli_seconds();
    if (st == KILN_OK)
        kiln_cli_stage("compile", t_emitted - t_codegen, "emit %s", output);
    if (st == KILN_OK && header) {
        st = kiln_cg_write_header_to(m, header, out_header->tmp, &d);
        if (st == KILN_OK)
            kiln_cli_stage("compile", kiln_cli_seconds() - t_emitted, "header %s", header);
    }
    if (st == KILN_OK && external) {
        double t0 = kiln_cli_seconds();
        st = kiln_cg_write_weights_to(m, wfile, out_weights->tmp, &d);
        if (st == KILN_OK)
            kiln_cli_stage("compile", kiln_cli_seconds() - t0, "weights %s", wfile);
    }
    /* Messages without a place (a write error) read `kiln compile: error:
     * cannot write 'x.o': REASON`; the status alone only when none says
     * more. */
    kiln_diag_print_prefixed(&d, stderr, "kiln compile");
    if (st != KILN_OK) {
        if (!kiln_diag_has_errors(&d))
            kiln_cli_error("compile", "compiling '%s' failed: %s", o.model, kiln_status_string(st));
        goto done;
    }
    if (depfile) {
        double t0 = kiln_cli_seconds();
        if (write_depfile(depfile, out_dep->tmp, output, g, o.model) != 0)
            goto done;
        kiln_cli_stage("compile", kiln_cli_seconds() - t0, "dependency file %s", depfile);
    }
    /* A device output (/dev/null, a FIFO) is written before the report says
     * so; regular files are renamed into place after it. */
    if (kiln_outputs_write_devices(&outs) != 0)
        goto done;
    double t_end = kiln_cli_seconds();
    if (o.time_passes)
        print_times(&cm, tune, t_tuned - t_passes, t_codegen - t_tuned, t_end - t_codegen);
    kiln_cg_report rep;
    kiln_cg_get_report(m, &rep);
    char w[32], f[32], p[32], code[32], lb[32], total[32];
    human(rep.weight_bytes, w, sizeof w);
    human(rep.workspace_fixed, f, sizeof f);
    human(rep.workspace_per_batch, p, sizeof p);
    human(rep.code_bytes, code, sizeof code);
    human(rep.lower_bound_bytes, lb, sizeof lb);
    human(rep.code_bytes + rep.data_bytes, total, sizeof total);
    static const char *const kind_names[] = {"obj", "asm", "llvm", "bc", "lib", "so"};
    printf("wrote %s (%s)%s%s%s%s\n  target    %s\n", output, kind_names[kind], header ? ", " : "", header ? header : "",
           external ? ", " : "", external ? wfile : "", kiln_cg_target_description(m));
    const char *required = kiln_cg_required_features(m);
    printf("  requires  %s (NAME_create checks the CPU)\n", *required ? required : "no extension beyond the baseline");
    print_portability(m, opt, o.threads, threads_given, g);
    printf("  compile   %.2f s (loading %.2f s, passes %.2f s, %scode generation and emission %.2f s)\n",
           t_end - t_start, cm.load_s, cm.passes_s, tune ? "tuning " : "", t_end - t_tuned);
    if (tune)
        printf("            tuning took %.2f s\n", t_tuned - t_passes);
    char units[48] = "one module";
    if (rep.units > 1)
        snprintf(units, sizeof units, "%d modules on %d threads", rep.units, rep.units);
    printf("            code generation: LLVM IR %.2f s, LLVM optimization %.2f s, machine code %.2f s (%s)\n",
           rep.time_ir, rep.time_optimize, rep.time_machine_code, units);
    if (rep.code_bytes || rep.data_bytes) {
        char data[32];
        human(rep.data_bytes, data, sizeof data);
        printf("  object    %s: code %s, data %s%s\n", total, code, data,
               external ? "" : " (the embedded weights and the model's constants)");
    }
    printf("  weights   %s %s%s\n", w, external ? "in " : "embedded", external ? wfile : "");
    print_weight_precisions(m);
    printf("  kernels   %zu (%zu layers run fused inside another's kernel)\n", rep.steps, rep.fused_nodes);
    if (cm.calib.samples) {
        char data[512];
        kiln_calib_describe(&cm.calib, data, sizeof data);
        if (cm.int8_layers)
            printf("  calibration %s: the input ranges (%s) of %zu int8 layer%s\n", data,
                   o.calibration_method == KILN_CALIB_MINMAX ? "minmax" : "percentile", cm.int8_layers,
                   cm.int8_layers == 1 ? "" : "s");
        else if (searched)
            printf("  calibration %s: read by --precision auto\n", data);
        else
            printf("  calibration %s: checked against the inputs; not used (no layer asks for int8 or auto)\n",
                   data);
    }
    if (searched)
        kiln_auto_print(&autores, &cm.calib, stdout);
    /* what the layers compute in (the rule the code generator obeys: docs/precision.md) */
    size_t by_prec[KILN_PREC_COUNT] = {0};
    for (size_t i = 0; i < g->n_nodes; i++)
        by_prec[kiln_node_precision(g, &g->nodes[i])]++;
    if (by_prec[KILN_PREC_BF16] || by_prec[KILN_PREC_F16] || by_prec[KILN_PREC_INT8]) {
        printf("  precision");
        const kiln_precision shown[3] = {KILN_PREC_INT8, KILN_PREC_BF16, KILN_PREC_F16};
        const char *what[3] = {"int8 (s8 weights, u8 inputs, int32 sums)", "bf16 (weights and products)",
                               "f16 (weights)"};
        bool first = true;
        for (int k = 0; k < 3; k++)
            if (by_prec[shown[k]]) {
                printf("%s %s: %zu layer%s", first ? "" : ";", what[k], by_prec[shown[k]],
                       by_prec[shown[k]] == 1 ? "" : "s");
                first = false;
            }
        printf("; every other node f32\n");
    }
    if (by_prec[KILN_PREC_INT8]) { /* where each int8 layer's input quantization came from */
        printf("  int8      the inputs' scale and zero point:\n");
        kiln_calib_quant_print(g, stdout, "            ");
    }
    /* which GEMM each dense / 1x1 convolution layer got */
    bool header_done = false;
    for (size_t i = 0; i < g->n_nodes; i++) {
        kiln_cg_gemm_impl used = kiln_cg_gemm_used(m, (kiln_id)i);
        if (used == KILN_CG_GEMM_AUTO)
            continue;
        if (!header_done)
            printf("  gemm      %s\n", tune ? "measured at --tune-batch (median of 15 runs each):" : "chosen by the heuristic "
                                                                                             "(--tune measures):");
        header_done = true;
        const kiln_node *n = kiln_graph_node(g, (kiln_id)i);
        if (tune && t_gen[i] > 0)
            printf("            %-28s %-9s (generated %.3f ms, OpenBLAS %.3f ms)\n", n->layer ? n->layer : "?",
                   used == KILN_CG_GEMM_BLAS ? "OpenBLAS" : "generated", t_gen[i] * 1e3, t_blas[i] * 1e3);
        else
            printf("            %-28s %s\n", n->layer ? n->layer : "?", used == KILN_CG_GEMM_BLAS ? "OpenBLAS" : "generated");
    }
    printf("  workspace %s + batch x %s", f, p);
    if (rep.planned && rep.lower_bound_bytes) {
        /* what the plan placed (values and kernel scratch) against its lower bound */
        size_t at1 = rep.workspace_fixed + rep.workspace_per_batch - rep.scratch_shared;
        printf(" (memory plan; values and scratch at batch 1: %.1f%% of the lower bound %s)",
               100.0 * (double)at1 / (double)rep.lower_bound_bytes, lb);
    }
    printf("\n");
    if (rep.scratch_largest) {
        char sl[32], ss[32];
        human(rep.scratch_largest, sl, sizeof sl);
        human(rep.scratch_shared, ss, sizeof ss);
        if (rep.scratch_shared)
            printf("  scratch   %s for the largest kernel (Winograd transforms); a shared %s region outside the "
                   "plan\n", sl, ss);
        else
            printf("  scratch   %s for the largest kernel (Winograd transforms), placed by the memory plan\n", sl);
    }
    /* The report is out: now, and only now, the outputs replace what was there. */
    if (kiln_guard_flush_stdout("compile") != 0 || kiln_outputs_commit(&outs) != 0)
        goto done;
    rc = 0;
done:
    kiln_auto_result_free(&autores);
    kiln_outputs_release(&outs);
    kiln_diag_release(&d);
    kiln_cg_module_destroy(m);
    free(choice);
    free(t_gen);
    free(t_blas);
    free(wfile);
    free(wabs);
    kiln_cli_model_close(&cm);
    return rc;
}
