/* compiler/driver/cli.c: argument scanning and model loading for the
 * subcommands. */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "compiler/frontend/frontend.h"

int kiln_args_value(kiln_args *a, const char *name, const char **value)
{
    const char *arg = a->argv[a->i];
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0)
        return 0;
    if (arg[n] == '=') {
        *value = arg + n + 1;
        return 1;
    }
    if (arg[n] != '\0')
        return 0;
    if (a->i + 1 >= a->argc) {
        kiln_cli_usage_error(a->cmd, "option '%s' needs a value", name);
        return -1;
    }
    *value = a->argv[++a->i];
    return 1;
}

bool kiln_args_flag(const kiln_args *a, const char *name)
{
    return strcmp(a->argv[a->i], name) == 0;
}

int kiln_args_unknown(const kiln_args *a)
{
    const char *arg = a->argv[a->i];
    if (arg[0] == '-' && arg[1])
        return kiln_cli_usage_error(a->cmd, "unknown option '%s' (see 'kiln %s --help')", arg, a->cmd);
    return kiln_cli_usage_error(a->cmd, "unexpected argument '%s' (see 'kiln %s --help')", arg, a->cmd);
}

static void vreport(const char *cmd, const char *fmt, va_list ap)
{
    fprintf(stderr, "kiln %s: error: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int kiln_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(cmd, fmt, ap);
    va_end(ap);
    return 2;
}

int kiln_cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(cmd, fmt, ap);
    va_end(ap);
    return 1;
}

int kiln_cli_parse_count(const char *cmd, const char *flag, const char *text, int64_t min, int64_t *out)
{
    if (kiln_parse_int(text, out) != 0 || *out < min || *out > KILN_MAX_DIM)
        return kiln_cli_usage_error(cmd, "%s expects an integer >= %lld, got '%s'", flag, (long long)min, text);
    return 0;
}

/* --max-elements, taken out of the command line by kiln_cli_take_global_options. */
static int64_t max_elements = KILN_DEFAULT_MAX_ELEMENTS;

int kiln_cli_take_global_options(int *argc, char **argv)
{
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *arg = argv[i], *value = NULL;
        if (strcmp(arg, "--max-elements") == 0) {
            if (i + 1 >= *argc)
                return kiln_cli_usage_error(argv[0], "option '--max-elements' needs a value");
            value = argv[++i];
        } else if (strncmp(arg, "--max-elements=", 15) == 0) {
            value = arg + 15;
        } else {
            argv[out++] = argv[i];
            continue;
        }
        if (kiln_parse_int(value, &max_elements) != 0 || max_elements < 1)
            return kiln_cli_usage_error(argv[0], "--max-elements expects a positive integer, got '%s'", value);
    }
    *argc = out;
    argv[out] = NULL;
    return 0;
}

kiln_graph *kiln_cli_load_model(const char *path)
{
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_graph *g = NULL;
    kiln_frontend_options opt = {.max_elements = max_elements};
    kiln_status st = kiln_frontend_load_opts(path, &opt, &g, &d);
    kiln_diag_print(&d, stderr);
    if (st != KILN_OK || kiln_diag_has_errors(&d)) {
        if (d.count == 0)
            fprintf(stderr, "%s: error: %s\n", path, kiln_status_string(st));
        kiln_graph_destroy(g);
        g = NULL;
    }
    kiln_diag_release(&d);
    return g;
}
