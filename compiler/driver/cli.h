/* compiler/driver/cli.h: what the subcommands share: argument scanning, model
 * loading with diagnostics, and the subcommand entry points. */
#ifndef KILN_DRIVER_CLI_H
#define KILN_DRIVER_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "compiler/codegen/codegen.h"
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

/* Removes the options every command takes (--max-elements N: the per-tensor
 * element limit, default 2^32) from argv[1..]; returns 0, or 2 after a usage
 * error. argv[0] names the command in messages. */
int kiln_cli_take_global_options(int *argc, char **argv);
/* Loads a .yaml or .kir model; prints every diagnostic to stderr. NULL on failure. */
kiln_graph *kiln_cli_load_model(const char *path);

/* A model compiled for the JIT (jit_model.c): kiln run, check and bench. */
typedef struct kiln_jit_model {
    kiln_cg_module *module;
    kiln_cg_jit *jit;
    kiln_cg_entry e;
} kiln_jit_model;

/* Compiles g (opt may be NULL; jit is set) and loads it; prints diagnostics.
 * Returns 0, or 1 after reporting the error as `kiln CMD: error: ...`. */
int kiln_jit_model_open(kiln_jit_model *jm, const kiln_graph *g, const char *cmd, const kiln_cg_options *opt);
void kiln_jit_model_close(kiln_jit_model *jm);
/* Runs the optimization passes (compiler/passes: folding, fusion, memory
 * plan, schedule for `threads` threads, 0 = one per core) on g before code
 * generation; prints diagnostics. `passes` is "all" or "none" (skip them).
 * Returns 0, or 1 after reporting the error as `kiln CMD: error: ...`. */
int kiln_cli_optimize(kiln_graph *g, const char *cmd, const char *passes, int64_t threads);
/* Checks a --passes value: 0, or 2 after a usage error. */
int kiln_cli_check_passes(const char *cmd, const char *passes);
/* Uniform values in [-1, 1) from a seed (the same on every machine). */
void kiln_fill_random(float *x, size_t n, uint64_t seed);
/* Elements of value v for a batch (0 on overflow). */
size_t kiln_value_elements(const kiln_graph *g, kiln_id v, int64_t batch);

int kiln_cmd_dump(int argc, char **argv);
int kiln_cmd_run(int argc, char **argv);
int kiln_cmd_compile(int argc, char **argv);
int kiln_cmd_check(int argc, char **argv);
int kiln_cmd_bench(int argc, char **argv);

#endif
