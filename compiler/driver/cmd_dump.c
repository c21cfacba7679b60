/* compiler/driver/cmd_dump.c: `kiln dump MODEL [--after PASS |
 * --dump-ir=all|after:PASS] [--time-passes] [--threads N] [--layout auto|plain]
 * [--cpu NAME] [--features LIST] [--format text|dot] [-o FILE]`. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "compiler/passes/passes.h"
#include "guard.h"
#include "outputs.h"

static const char help[] =
    "usage: kiln dump MODEL [--after PASS | --dump-ir=all|after:PASS] [--time-passes] [--threads N]\n"
    "                 [--layout auto|plain] [--cpu NAME] [--features LIST] [--format text|dot]\n"
    "                 [--precision P]\n"
    "                  [--calibration FILE|DIR|random] [--calibration-method percentile|minmax]\n"
    "                 [-o FILE]\n"
    "\n"
    "Prints the IR of MODEL (a .yaml model or a .kir IR file): as loaded, or after\n"
    "the optimization passes up to PASS.\n"
    "\n"
    "  --after PASS    run the passes up to and including PASS, then print. In order:\n"
    "                  verify, infer_shapes, fold_batchnorm, fold_constants, dce,\n"
    "                  fuse, layout, precision, select, schedule, memory_plan\n"
    "                  (see docs/passes.md)\n"
    "  --dump-ir=after:PASS  the same as --after PASS\n"
    "  --dump-ir=all   run every pass and print the IR after each, each dump headed\n"
    "                  by a line '# after PASS' (text form; weights paths relative\n"
    "                  to the current directory)\n"
    "  --time-passes   print each pass's time to standard error\n"
    "  --threads N     the thread count the schedule pass plans for (default 8)\n"
    "  --layout auto   (default) the layout pass blocks channels (nchw8c on AVX2)\n"
    "                  where it finds it pays, for this machine; 'plain': it\n"
    "                  changes nothing\n"
    "  --precision P   the model's default precision (f32, bf16, f16, int8, auto); a\n"
    "                  layer's own precision: key wins (docs/precision.md)\n"
    "  --calibration DATA\n"
    "                  run the reference interpreter on calibration samples (a\n"
    "                  safetensors file or a folder of NAME.npy, one F32 tensor per\n"
    "                  input, or 'random') and print the range of every value after\n"
    "                  the IR, as comments (text form only)\n"
    "  --calibration-method M\n"
    "                  the range kept: percentile (default: [-p, p], p the\n"
    "                  99.99% percentile of |x|, cut to [min, max]) or minmax\n"
    "  --cpu NAME      the CPU the passes plan for (channel block, kernels, scratch)\n"
    "                  instead of this machine's: x86-64-v3 (AVX2), x86-64-v4 (AVX-512),\n"
    "                  znver3, sapphirerapids, ...\n"
    "  --features LIST LLVM feature string added to the CPU's (+avx2,-avx512f)\n"
    "  --format text   the IR text form, which 'kiln dump' and 'kiln compile' read back (default)\n"
    "  --format dot    a Graphviz graph (fusion groups drawn as clusters)\n"
    "  -o FILE         write to FILE instead of standard output; weights paths are\n"
    "                  then written relative to FILE's directory, and folded weights\n"
    "                  (after fold_batchnorm) go to FILE.safetensors beside it instead\n"
    "                  of being printed as hex: FILE reads back as long as both stay\n"
    "                  together\n"
    "  -v              print each stage and its time to standard error\n";

/* Whether the graph holds weights the passes computed (printed as hex, or
 * written to the sidecar with -o). */
static bool has_inline_weights(const kiln_graph *g)
{
    for (size_t i = 0; i < g->n_values; i++)
        if (g->values[i].kind == KILN_VALUE_PARAM && g->values[i].param.source == KILN_PARAM_INLINE)
            return true;
    return false;
}

/* Standard output has no place for a sidecar: folded weights are printed as
 * hex there. Say so when that is large. */
static void note_inline_size(const kiln_graph *g)
{
    uint64_t bytes = 0;
    for (size_t i = 0; i < g->n_values; i++) {
        const kiln_value *v = &g->values[i];
        if (v->kind == KILN_VALUE_PARAM && v->param.source == KILN_PARAM_INLINE) {
            int64_t n = kiln_shape_elements(&v->type.shape, 1);
            bytes += n > 0 ? (uint64_t)n * kiln_dtype_size(v->param.data_dtype) : 0;
        }
    }
    if (bytes >= (1u << 20))
        fprintf(stderr, "kiln dump: note: %.1f MiB of folded weights were printed as hex; with -o FILE they go "
                        "to FILE.safetensors instead\n", (double)bytes / (1 << 20));
}

int kiln_cmd_dump(int argc, char **argv)
{
    kiln_args a = {.argc = argc, .argv = argv, .i = 1, .cmd = "dump"};
    const char *format = "text", *output = NULL, *after = NULL, *threads_text = NULL;
    kiln_cli_options o;
    kiln_cli_options_init(&o, "dump", help, KILN_CLI_TAKES_TIME_PASSES | KILN_CLI_TAKES_DUMP_IR | KILN_CLI_TAKES_LAYOUT |
                                                  KILN_CLI_TAKES_CPU | KILN_CLI_TAKES_PRECISION | KILN_CLI_TAKES_CALIBRATION);
    for (; a.i < argc; a.i++) {
        int r = kiln_cli_options_take(&a, &o);
        if (r == KILN_CLI_TAKEN)
            continue;
        if (r != KILN_CLI_OTHER)
            return r;
        if ((r = kiln_args_value(&a, "--format", &format)) || (r = kiln_args_value(&a, "-o", &output)) ||
            (r = kiln_args_value(&a, "--output", &output)) || (r = kiln_args_value(&a, "--after", &after)) ||
            (r = kiln_args_value(&a, "--threads", &threads_text))) {
            if (r < 0)
                return 2;
            continue;
        }
        return kiln_args_unknown(&a);
    }
    if (kiln_cli_options_check(&o))
        return 2;
    bool dot = strcmp(format, "dot") == 0;
    if (!dot && strcmp(format, "text") != 0)
        return kiln_cli_usage_error("dump", "--format must be 'text' or 'dot', got '%s'", format);
    if (after && kiln_cli_check_pass("dump", "--after", after))
        return 2;
    /* --dump-ir=after:PASS is --after PASS; --dump-ir=all prints the IR after
     * every pass instead of once at the end. */
    bool all = o.dump_ir && strcmp(o.dump_ir, "all") == 0;
    if (after && o.dump_ir)
        return kiln_cli_usage_error("dump", "--after and --dump-ir both choose what to print: give one");
    if (all && dot)
        return kiln_cli_usage_error("dump", "--dump-ir=all prints the text form: it cannot be combined with "
                                            "--format dot");
    if (o.calibration && dot)
        return kiln_cli_usage_error("dump", "--calibration prints the ranges as comments of the text form: it "
                                            "cannot be combined with --format dot");
    if (o.dump_ir && !all) {
        after = o.dump_ir;
        o.dump_ir = NULL;
    }
    int64_t threads = KILN_SCHEDULE_DEFAULT_THREADS;
    if (threads_text && kiln_cli_parse_count("dump", "--threads", threads_text, 1, &threads) != 0)
        return 2;
    if (threads > 1024)
        return kiln_cli_usage_error("dump", "--threads must be at most 1024, got %lld", (long long)threads);
    if (o.time_passes && !after && !all)
        fprintf(stderr, "kiln dump: note: no passes run without --after PASS; nothing to time\n");
    if (o.layout_given && !after && !all)
        fprintf(stderr, "kiln dump: note: no passes run without --after PASS; --layout has no effect\n");

    FILE *out = stdout;
    char *dir = NULL, *sidecar = NULL;
    int rc = 0;
    kiln_cli_model cm = {0};
    /* -o FILE is written to a temporary file renamed over FILE at the end
     * (outputs.h); FILE may not be the model. */
    kiln_outputs outs;
    kiln_outputs_init(&outs, "dump");
    const kiln_out_file *out_text = NULL, *out_sidecar = NULL;
    if (output) {
        if ((rc = kiln_outputs_input(&outs, o.model, "the model", KILN_OUT_USAGE)) != 0 ||
            (rc = kiln_outputs_add(&outs, output, "-o", KILN_OUT_USAGE, &out_text)) != 0)
            goto done;
        /* Opened before the passes run only when they write to it (all). */
        if (all && !(out = fopen(out_text->tmp, "w"))) {
            out = stdout;
            rc = kiln_cli_error("dump", "cannot write '%s': %s", output, strerror(errno));
            goto done;
        }
        char *copy = strdup(output);
        dir = copy ? strdup(dirname(copy)) : NULL;
        free(copy);
        if (!dir) {
            rc = kiln_cli_error("dump", "out of memory");
            goto done;
        }
    }
    o.passes = after || all ? "all" : "none";
    o.stop_after = after;
    o.threads = threads;
    o.dump_to = out;
    if ((rc = kiln_cli_model_open(&cm, &o)) != 0)
        goto done;
    for (size_t i = 0; output && i < cm.g->n_weight_files; i++)
        if ((rc = kiln_outputs_input(&outs, cm.g->weight_files[i], "a weights file of the model", 0)) != 0)
            goto done;
    if (!all) {
        /* Folded weights go to FILE.safetensors beside FILE. */
        if (output && !dot && has_inline_weights(cm.g)) {
            size_t n = strlen(output);
            if (out_text->device) {
                rc = kiln_cli_error("dump", "the passes computed weights, which -o FILE writes to FILE.safetensors "
                                            "beside FILE: '%s' is not a regular file (without -o they are printed "
                                            "as hex)", output);
                goto done;
            }
            if (!(sidecar = malloc(n + sizeof ".safetensors"))) {
                rc = kiln_cli_error("dump", "out of memory");
                goto done;
            }
            memcpy(sidecar, output, n);
            memcpy(sidecar + n, ".safetensors", sizeof ".safetensors");
            if ((rc = kiln_outputs_add(&outs, sidecar, "the folded weights' file (-o FILE.safetensors)", 0,
                                       &out_sidecar)) != 0)
                goto done;
        }
        if (output && !(out = fopen(out_text->tmp, "w"))) {
            out = stdout;
            rc = kiln_cli_error("dump", "cannot write '%s': %s", output, strerror(errno));
            goto done;
        }
        double t0 = kiln_cli_seconds();
        kiln_ir_print_options po = {.relative_to = output ? dir : ".", .sidecar_path = sidecar,
                                    .sidecar_write_path = out_sidecar ? out_sidecar->tmp : NULL};
        kiln_status st = dot ? kiln_ir_print_dot(cm.g, out) : kiln_ir_print_opts(cm.g, out, &po);
        if (st == KILN_ERR_IO && sidecar && output && !ferror(out))
            rc = kiln_cli_error("dump", "cannot write '%s': %s", sidecar, strerror(errno ? errno : EIO));
        else if (st == KILN_ERR_IO && output)
            rc = kiln_cli_error("dump", "cannot write '%s': %s", output, strerror(errno ? errno : EIO));
        else if (st == KILN_ERR_IO)
            rc = kiln_guard_flush_stdout("dump") ? 1 : kiln_cli_error("dump", "cannot write to standard output");
        else if (st != KILN_OK)
            rc = kiln_cli_error("dump", "printing the IR failed: %s", kiln_status_string(st));
        else
            kiln_cli_stage("dump", kiln_cli_seconds() - t0, "print %s%s%s", dot ? "DOT" : "text",
                           output ? " to " : "", output ? output : "");
        if (st == KILN_OK && !output && !dot)
            note_inline_size(cm.g);
    }
    /* the ranges of the graph just printed, as comments after it (the text
     * still reads back) */
    if (rc == 0 && o.calibration) {
        kiln_calib_ranges ranges;
        double t0 = kiln_cli_seconds();
        if ((rc = kiln_calib_observe(cm.g, &cm.calib, &ranges, "dump")) == 0) {
            kiln_cli_stage("dump", kiln_cli_seconds() - t0, "calibration ranges (%lld samples)",
                           (long long)cm.calib.samples);
            kiln_calib_ranges_print(cm.g, &cm.calib, &ranges, o.calibration_method, out);
            kiln_calib_ranges_free(&ranges);
        }
    }
done:
    if (out != stdout) {
        int err = ferror(out) ? (errno ? errno : EIO) : 0;
        if (fclose(out) != 0 && !err)
            err = errno ? errno : EIO;
        if (err && rc == 0)
            rc = kiln_cli_error("dump", "cannot write '%s': %s", output, strerror(err));
    }
    if (rc == 0 && output && kiln_outputs_commit(&outs) != 0)
        rc = 1;
    kiln_outputs_release(&outs);
    free(sidecar);
    free(dir);
    kiln_cli_model_close(&cm);
    return rc;
}
