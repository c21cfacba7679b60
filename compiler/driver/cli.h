/* compiler/driver/cli.h: what the subcommands share: argument scanning, model
 * loading with diagnostics, and the subcommand entry points. */
#ifndef KILN_DRIVER_CLI_H
#define KILN_DRIVER_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "calibration.h"
#include "compiler/codegen/codegen.h"
#include "compiler/interp/interp.h"
#include "ir/graph.h"

/* A cursor over argv. Options are `--name VALUE` or `--name=VALUE`. Each
 * option may be given once (a second -o, --emit or --tune is a usage error,
 * never a silent choice of the last); only --input repeats. */
typedef struct kiln_args {
    int argc;
    char **argv;
    int i;
    const char *cmd; /* subcommand, for messages */
    const char *seen[64]; /* the options met so far (their canonical spelling) */
    int n_seen;
} kiln_args;

/* 1 when argv[i] is the flag `name` (`--name` or `--name=...`); *value gets
 * the value (the next argument, or the text after '='). Reports a missing
 * value, or an option given before (also as another spelling: -o and
 * --output), and returns -1 then. 0 when argv[i] is another argument. */
int kiln_args_value(kiln_args *a, const char *name, const char **value);
/* 1 when argv[i] is the switch `name` exactly; -1 after reporting that it
 * was given before; 0 otherwise. */
int kiln_args_flag(kiln_args *a, const char *name);
/* Records option `name` as given; 0, or -1 after reporting that it was
 * given before. */
int kiln_args_once(kiln_args *a, const char *name);
/* Reports an unknown option or a surplus argument; always returns 2. */
int kiln_args_unknown(const kiln_args *a);
/* Prints `kiln CMD: error: ...` and returns 2 (usage errors). */
int kiln_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints `kiln CMD: error: ...` and returns 1 (run-time errors). */
int kiln_cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses a positive integer option value. */
int kiln_cli_parse_count(const char *cmd, const char *flag, const char *text, int64_t min, int64_t *out);
/* 0 when `name` is a pass of the pipeline; otherwise 2 after a usage error
 * `FLAG: unknown pass 'NAME'` that lists the passes. */
int kiln_cli_check_pass(const char *cmd, const char *flag, const char *name);
/* A monotonic clock, in seconds. */
double kiln_cli_seconds(void);
/* -v / --verbose (any command): each stage and its time to stderr. */
bool kiln_cli_verbose(void);
/* --allow-nonfinite (any command): weights may hold NaN and infinities. */
bool kiln_cli_allow_nonfinite(void);
/* With -v: prints `kiln CMD: WHAT    T ms` to stderr (seconds < 0: no time). */
void kiln_cli_stage(const char *cmd, double seconds, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The directory of the shared libkiln_rt that belongs to this kiln: the
 * install's libdir next to bin/, or the build tree's runtime/ (both relative
 * to the executable); NULL when neither holds libkiln_rt.so. Static buffer. */
const char *kiln_cli_rt_libdir(void);

/* Removes the options every command takes from argv[1..]: --max-elements N
 * (the per-tensor element limit, default 2^32), --max-weights-bytes N and
 * --max-workspace-bytes N (the budgets below), --allow-nonfinite (NaN and
 * infinity in weights are accepted), -v / --verbose. Returns 0, or 2 after
 * a usage error. argv[0] names the command in messages. */
int kiln_cli_take_global_options(int *argc, char **argv);

/* ---- budgets (budget.c) ---------------------------------------------------------- */

/* The defaults of --max-weights-bytes and --max-workspace-bytes. */
#define KILN_CLI_DEFAULT_MAX_WEIGHTS_BYTES ((uint64_t)4 << 30)
#define KILN_CLI_DEFAULT_MAX_WORKSPACE_BYTES ((uint64_t)4 << 30)
void kiln_cli_set_budgets(uint64_t weights, uint64_t workspace);
/* "16.0 GiB", "1536 B". */
void kiln_cli_format_bytes(uint64_t bytes, char *buf, size_t size);
/* 0 when the parameters of g (as f32, 4 bytes per element) fit the weights
 * budget; otherwise 1 after an error at the largest parameter. Checked
 * before any weight is read or generated. */
int kiln_cli_budget_weights(const kiln_graph *g, const char *cmd);
/* How a command evaluates a model, for the workspace budget. */
typedef enum kiln_cli_eval {
    KILN_CLI_EVAL_COMPILED, /* compiled code (run, bench, compile --tune): the memory plan, inputs, outputs */
    KILN_CLI_EVAL_INTERP,   /* the interpreter: every value, 8 bytes per element */
    KILN_CLI_EVAL_CHECK,    /* kiln check: every value compiled (4) and interpreted (8) */
} kiln_cli_eval;
/* 0 when evaluating g at `batch` as `how` says fits the workspace budget;
 * otherwise 1 after an error at the largest value. */
int kiln_cli_budget_workspace(const kiln_graph *g, const char *cmd, int64_t batch, kiln_cli_eval how);

/* Which of the shared options a command takes (kiln_cli_options.takes). */
enum {
    KILN_CLI_TAKES_OPT_LEVEL = 1u << 0,   /* -O0 .. -O3: cg.opt_level */
    KILN_CLI_TAKES_PASSES = 1u << 1,      /* --passes all|none */
    KILN_CLI_TAKES_THREADS = 1u << 2,     /* --threads T (>= 0, at most 1024) */
    KILN_CLI_TAKES_BATCH = 1u << 3,       /* --batch N (>= 1) */
    KILN_CLI_TAKES_TIME_PASSES = 1u << 4, /* --time-passes */
    KILN_CLI_TAKES_DUMP_IR = 1u << 5,     /* --dump-ir=all|after:PASS */
    KILN_CLI_TAKES_WINOGRAD = 1u << 6,    /* --winograd auto|off|f2|f4: cg.winograd */
    KILN_CLI_TAKES_LAYOUT = 1u << 7,      /* --layout auto|plain: the layout pass */
    KILN_CLI_TAKES_CPU = 1u << 8,         /* --cpu NAME, --features LIST (JIT: this machine must have them) */
    KILN_CLI_TAKES_PRECISION = 1u << 9,   /* --precision P: the model's default precision */
    /* --calibration FILE|DIR|random, --calibration-method minmax|percentile:
     * the data is read and checked against the model's inputs when the model
     * is opened (kiln_cli_model.calib); --precision int8 needs it */
    KILN_CLI_TAKES_CALIBRATION = 1u << 10,
};

/* The options the commands share, and what kiln_cli_model_open does with
 * the model: which passes run, dumps and timing, the batch to check. */
typedef struct kiln_cli_options {
    const char *cmd;        /* the command, for messages */
    const char *help;       /* printed by --help */
    unsigned takes;         /* KILN_CLI_TAKES_*: what kiln_cli_options_take accepts */
    const char *model;      /* MODEL, the one argument that is not an option */
    kiln_cg_options cg;     /* code generation; -O sets cg.opt_level */
    const kiln_impl *prefer; /* the select pass's preferences per node (--tune), or NULL */
    const char *passes;     /* "all" (default) or "none": skip the passes */
    int64_t threads;        /* the thread count the schedule plans for; 0 (default): one per core */
    int64_t batch;          /* the batch the model will run at (default 1; fixed shapes need 1) */
    const char *dump_ir;    /* --dump-ir: "all", the PASS of after:PASS, or NULL */
    /* --layout: "plain" (default: every value plain) or "auto" (the layout
     * pass blocks channels by the target's lanes, and asks the target which
     * convolutions may be blocked: kiln_target_conv_blocks) */
    const char *layout;
    bool layout_given;      /* --layout was on the command line */
    bool time_passes;       /* the time of each pass to stderr */
    const char *name;       /* kiln compile --name: replaces the model's name (the symbol prefix), or NULL */
    const char *precision;  /* --precision: replaces the model's default precision (a layer's own key wins), or NULL */
    const char *calibration; /* --calibration: a safetensors file, a folder of NAME.npy, "random", or NULL */
    kiln_calib_method calibration_method; /* --calibration-method (default percentile) */
    bool calibration_method_given;
    /* Set by the command itself, never from the command line: */
    const char *stop_after; /* the last pass to run (kiln dump --after); NULL: all of them */
    bool needs_weights;     /* the command reads the weights' values (checked against the weights budget) */
    FILE *dump_to;          /* where --dump-ir writes the IR; NULL: stderr */
} kiln_cli_options;

/* Defaults: the code generator's options, --passes all, one thread per core,
 * batch 1, no dumps. `cmd` and `help` are borrowed. */
void kiln_cli_options_init(kiln_cli_options *o, const char *cmd, const char *help, unsigned takes);

/* kiln_cli_options_take: argv[a->i] was stored in o; go on with the next one. */
#define KILN_CLI_TAKEN (-1)
/* kiln_cli_options_take: argv[a->i] is none of the shared arguments. */
#define KILN_CLI_OTHER (-2)
/* Takes argv[a->i] when it is --help, MODEL, or one of the shared options
 * o->takes (advancing past a separate value): KILN_CLI_TAKEN, or
 * KILN_CLI_OTHER. Otherwise the command is over, with the exit status
 * returned: 0 after printing o->help, 2 after a usage error (a missing or bad
 * value, an unknown pass, a second MODEL). Scan a command line with
 *
 *     for (; a.i < argc; a.i++) {
 *         int r = kiln_cli_options_take(&a, &o);
 *         if (r == KILN_CLI_TAKEN) continue;
 *         if (r != KILN_CLI_OTHER) return r;
 *         ... the command's own options, else: return kiln_args_unknown(&a);
 *     }
 */
int kiln_cli_options_take(kiln_args *a, kiln_cli_options *o);
/* What can be checked only when every option is read (a MODEL is given,
 * --threads at most 1024, --dump-ir needs the passes): 0, or 2 after a
 * usage error. */
int kiln_cli_options_check(const kiln_cli_options *o);

/* A model loaded for a command; the graph is owned. */
typedef struct kiln_cli_model {
    kiln_graph *g;
    kiln_calib calib;  /* o->calibration, read and checked (samples 0: none given) */
    double load_s;   /* seconds reading it (frontend) */
    double passes_s; /* seconds in the pass pipeline */
    size_t int8_layers; /* nodes computing int8 (their in_scale / in_zero set from calib) */
} kiln_cli_model;

/* Loads the .yaml or .kir model o->model (with the --max-elements limit),
 * refuses o->batch > 1 when no input is batched, then runs the passes as o
 * says (o->passes, stop_after, threads, dump_ir, time_passes, layout with
 * o->cg's target); prints every
 * diagnostic to stderr. Returns 0; 1 when the model is invalid or a pass
 * failed, 2 for the batch (a usage error), after reporting it; m->g is then
 * NULL. */
int kiln_cli_model_open(kiln_cli_model *m, const kiln_cli_options *o);
/* kiln_cli_model_open in two steps: load (the model, the command line's
 * overrides, the batch and weights checks, the calibration data), then the
 * passes on m->g. kiln compile --precision auto chooses between them. Both
 * return as kiln_cli_model_open does; on failure m is closed. */
int kiln_cli_model_load(kiln_cli_model *m, const kiln_cli_options *o);
int kiln_cli_model_passes(kiln_cli_model *m, const kiln_cli_options *o);
/* The passes as o says, on any graph; `quiet`: no dumps, no times, and the
 * diagnostics printed only when a pass fails (the trials of --precision
 * auto). 0, or 1 after reporting. */
int kiln_cli_run_passes(kiln_graph *g, const kiln_cli_options *o, bool quiet);
void kiln_cli_model_close(kiln_cli_model *m);

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

/* Buffers for one run of g at a batch: every input filled by
 * kiln_fill_random (input k from seed + k), the outputs uninitialized. */
typedef struct kiln_cli_buffers {
    float **in, **out;
    size_t n_in, n_out;
} kiln_cli_buffers;

/* KILN_OK or KILN_ERR_OUT_OF_MEMORY; free b with kiln_cli_buffers_free either way. */
kiln_status kiln_cli_buffers_alloc(kiln_cli_buffers *b, const kiln_graph *g, int64_t batch, uint64_t seed);
void kiln_cli_buffers_free(kiln_cli_buffers *b);

/* kiln_interp_run, its diagnostics printed to stderr. */
kiln_status kiln_cli_interp_run(kiln_interp *it);
/* Uniform values in [-1, 1) from a seed (the same on every machine). */
void kiln_fill_random(float *x, size_t n, uint64_t seed);
/* Elements of value v for a batch (0 on overflow). */
size_t kiln_value_elements(const kiln_graph *g, kiln_id v, int64_t batch);

int kiln_cmd_dump(int argc, char **argv);
int kiln_cmd_run(int argc, char **argv);
int kiln_cmd_compile(int argc, char **argv);
int kiln_cmd_check(int argc, char **argv);
int kiln_cmd_bench(int argc, char **argv);
int kiln_cmd_import(int argc, char **argv);

#endif
