/* compiler/driver/cmd_dump.c: `kiln dump MODEL [--after PASS] [--time-passes]
 * [--threads N] [--format text|dot] [-o FILE]`. */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "compiler/passes/passes.h"

static const char help[] =
    "usage: kiln dump MODEL [--after PASS] [--time-passes] [--threads N] [--format text|dot] [-o FILE]\n"
    "\n"
    "Prints the IR of MODEL (a .yaml model or a .kir IR file): as loaded, or after\n"
    "the optimization passes up to PASS.\n"
    "\n"
    "  --after PASS    run the passes up to and including PASS, then print. In order:\n"
    "                  verify, infer_shapes, fold_batchnorm, fold_constants, dce,\n"
    "                  fuse, memory_plan, schedule (see docs/passes.md)\n"
    "  --time-passes   print each pass's time to standard error\n"
    "  --threads N     the thread count the schedule pass plans for (default 8)\n"
    "  --format text   the IR text form, which 'kiln dump' and 'kiln compile' read back (default)\n"
    "  --format dot    a Graphviz graph\n"
    "  -o FILE         write to FILE instead of standard output; weights paths are\n"
    "                  then written relative to FILE's directory\n";

static int unknown_pass(const char *name)
{
    char list[256];
    size_t w = 0;
    list[0] = 0;
    const char *const *names = kiln_pipeline_pass_names();
    for (size_t i = 0; names[i] && w < sizeof list; i++)
        w += (size_t)snprintf(list + w, sizeof list - w, "%s%s", i ? ", " : "", names[i]);
    return kiln_cli_usage_error("dump", "--after: unknown pass '%s' (the passes, in order: %s)", name, list);
}

int kiln_cmd_dump(int argc, char **argv)
{
    kiln_args a = {argc, argv, 1, "dump"};
    const char *model = NULL, *format = "text", *output = NULL, *after = NULL, *threads_text = NULL;
    bool time_passes = false;
    for (; a.i < argc; a.i++) {
        int r;
        if (kiln_args_flag(&a, "--help") || kiln_args_flag(&a, "-h")) {
            fputs(help, stdout);
            return 0;
        }
        if (kiln_args_flag(&a, "--time-passes")) {
            time_passes = true;
            continue;
        }
        if ((r = kiln_args_value(&a, "--format", &format)) || (r = kiln_args_value(&a, "-o", &output)) ||
            (r = kiln_args_value(&a, "--output", &output)) || (r = kiln_args_value(&a, "--after", &after)) ||
            (r = kiln_args_value(&a, "--threads", &threads_text))) {
            if (r < 0)
                return 2;
            continue;
        }
        if (argv[a.i][0] == '-' || model)
            return kiln_args_unknown(&a);
        model = argv[a.i];
    }
    if (!model)
        return kiln_cli_usage_error("dump", "no model given (see 'kiln dump --help')");
    bool dot = strcmp(format, "dot") == 0;
    if (!dot && strcmp(format, "text") != 0)
        return kiln_cli_usage_error("dump", "--format must be 'text' or 'dot', got '%s'", format);
    if (after && !kiln_pipeline_has_pass(after))
        return unknown_pass(after);
    int64_t threads = 0;
    if (threads_text && kiln_cli_parse_count("dump", "--threads", threads_text, 1, &threads) != 0)
        return 2;
    if (threads > 1024)
        return kiln_cli_usage_error("dump", "--threads must be at most 1024, got %lld", (long long)threads);
    if (time_passes && !after)
        fprintf(stderr, "kiln dump: note: no passes run without --after PASS; nothing to time\n");

    kiln_graph *g = kiln_cli_load_model(model);
    if (!g)
        return 1;
    if (after) {
        kiln_diag d;
        kiln_diag_init(&d);
        /* Dumping is for looking at what the passes did: check after each. */
        kiln_pipeline_options po = {
            .stop_after = after,
            .time_to = time_passes ? stderr : NULL,
            .verify_each = true,
            .threads_hint = (int)threads,
        };
        kiln_status st = kiln_pipeline_run(g, &po, &d);
        kiln_diag_print(&d, stderr);
        kiln_diag_release(&d);
        if (st != KILN_OK) {
            kiln_graph_destroy(g);
            return kiln_cli_error("dump", "the passes failed: %s", kiln_status_string(st));
        }
    }
    FILE *out = stdout;
    char *dir = NULL;
    if (output) {
        out = fopen(output, "w");
        if (!out) {
            kiln_graph_destroy(g);
            return kiln_cli_error("dump", "cannot write '%s': %s", output, strerror(errno));
        }
        char *copy = strdup(output);
        dir = copy ? strdup(dirname(copy)) : NULL;
        free(copy);
    }
    kiln_status st = dot ? kiln_ir_print_dot(g, out) : kiln_ir_print(g, out, output ? dir : ".");
    int rc = 0;
    if (st != KILN_OK)
        rc = kiln_cli_error("dump", "%s", kiln_status_string(st));
    if (out != stdout && fclose(out) != 0)
        rc = kiln_cli_error("dump", "cannot write '%s': %s", output, strerror(errno));
    free(dir);
    kiln_graph_destroy(g);
    return rc;
}
