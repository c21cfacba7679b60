/* compiler/driver/cli.h: what the subcommands share: argument scanning, model
 * loading with diagnostics, and the subcommand entry points. */
#ifndef KILN_DRIVER_CLI_H
#define KILN_DRIVER_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "ir/graph.h"

/* A cursor over argv. Options are `--name VALUE` or `--name=VALUE`. */
typedef struct kiln_args {
    int argc;
    char **argv;
    int i;
    const char *cmd; /* subcommand, for messages */
} kiln_args;

/* True when argv[i] is the flag `name` (`--name` or `--name=...`); *value gets
 * the value (the next argument, or the text after '='). Reports a missing
 * value and returns -1 then. */
int kiln_args_value(kiln_args *a, const char *name, const char **value);
/* True when argv[i] is the switch `name` exactly. */
bool kiln_args_flag(const kiln_args *a, const char *name);
/* Reports an unknown option or a surplus argument; always returns 2. */
int kiln_args_unknown(const kiln_args *a);
/* Prints `kiln CMD: error: ...` and returns 2 (usage errors). */
int kiln_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints `kiln CMD: error: ...` and returns 1 (run-time errors). */
int kiln_cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses a positive integer option value. */
int kiln_cli_parse_count(const char *cmd, const char *flag, const char *text, int64_t min, int64_t *out);

/* Loads a .yaml or .kir model; prints every diagnostic to stderr. NULL on failure. */
kiln_graph *kiln_cli_load_model(const char *path);

int kiln_cmd_dump(int argc, char **argv);
int kiln_cmd_run(int argc, char **argv);

#endif
