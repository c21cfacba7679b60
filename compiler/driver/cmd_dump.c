/* compiler/driver/cmd_dump.c: `kiln dump MODEL [--format text|dot] [-o FILE]`. */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char help[] =
    "usage: kiln dump MODEL [--format text|dot] [-o FILE]\n"
    "\n"
    "Prints the IR of MODEL (a .yaml model or a .kir IR file).\n"
    "\n"
    "  --format text   the IR text form, which 'kiln dump' and 'kiln compile' read back (default)\n"
    "  --format dot    a Graphviz graph\n"
    "  -o FILE         write to FILE instead of standard output; weights paths are\n"
    "                  then written relative to FILE's directory\n";

int kiln_cmd_dump(int argc, char **argv)
{
    kiln_args a = {argc, argv, 1, "dump"};
    const char *model = NULL, *format = "text", *output = NULL;
    for (; a.i < argc; a.i++) {
        int r;
        if (kiln_args_flag(&a, "--help") || kiln_args_flag(&a, "-h")) {
            fputs(help, stdout);
            return 0;
        }
        if ((r = kiln_args_value(&a, "--format", &format)) || (r = kiln_args_value(&a, "-o", &output)) ||
            (r = kiln_args_value(&a, "--output", &output))) {
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

    kiln_graph *g = kiln_cli_load_model(model);
    if (!g)
        return 1;
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
