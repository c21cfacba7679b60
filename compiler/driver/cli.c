/* compiler/driver/cli.c: argument scanning, the options the subcommands
 * share, and model loading (frontend, then the pass pipeline). */
#include "cli.h"

#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "compiler/frontend/frontend.h"
#include "compiler/passes/passes.h"

/* The spelling options are recorded under: the long forms of short ones. */
static const char *canonical(const char *name)
{
    if (strcmp(name, "--output") == 0)
        return "-o";
    if (strcmp(name, "--verbose") == 0)
        return "-v";
    return name;
}

int kiln_args_once(kiln_args *a, const char *name)
{
    const char *c = canonical(name);
    if (strcmp(c, "--input") == 0)
        return 0; /* one per model input */
    for (int k = 0; k < a->n_seen; k++)
        if (strcmp(a->seen[k], c) == 0) {
            kiln_cli_usage_error(a->cmd, "option '%s' is given twice (each option once: a second value would "
                                         "silently replace the first)", name);
            return -1;
        }
    if (a->n_seen < (int)(sizeof a->seen / sizeof a->seen[0]))
        a->seen[a->n_seen++] = c;
    return 0;
}

int kiln_args_value(kiln_args *a, const char *name, const char **value)
{
    const char *arg = a->argv[a->i];
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0)
        return 0;
    if (arg[n] == '=') {
        *value = arg + n + 1;
        return kiln_args_once(a, name) < 0 ? -1 : 1;
    }
    if (arg[n] != '\0')
        return 0;
    if (a->i + 1 >= a->argc) {
        kiln_cli_usage_error(a->cmd, "option '%s' needs a value", name);
        return -1;
    }
    *value = a->argv[++a->i];
    return kiln_args_once(a, name) < 0 ? -1 : 1;
}

int kiln_args_flag(kiln_args *a, const char *name)
{
    if (strcmp(a->argv[a->i], name) != 0)
        return 0;
    return kiln_args_once(a, name) < 0 ? -1 : 1;
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

/* The options every command takes, taken out of the command line by
 * kiln_cli_take_global_options (the process's settings: one command runs). */
static int64_t max_elements = KILN_DEFAULT_MAX_ELEMENTS;
static bool verbose = false;
static bool allow_nonfinite = false;

/* A byte count: digits, then optionally K, M, G or T (powers of 1024),
 * optionally followed by "iB" or "B" ("512M", "4GiB", "1000000"). */
static int parse_bytes(const char *text, uint64_t *out)
{
    const char *p = text;
    uint64_t v = 0;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    unsigned shift = 0;
    switch (*p) {
    case 'k': case 'K': shift = 10; p++; break;
    case 'm': case 'M': shift = 20; p++; break;
    case 'g': case 'G': shift = 30; p++; break;
    case 't': case 'T': shift = 40; p++; break;
    default: break;
    }
    if (shift && strcmp(p, "iB") == 0)
        p += 2;
    else if (strcmp(p, "B") == 0)
        p++;
    if (*p || v < 1 || v > (UINT64_MAX >> shift))
        return -1;
    *out = v << shift;
    return 0;
}

int kiln_cli_take_global_options(int *argc, char **argv)
{
    static const char *const names[] = {"--max-elements", "--max-weights-bytes", "--max-workspace-bytes"};
    enum { N_VALUED = sizeof names / sizeof names[0] };
    bool seen[N_VALUED + 2] = {false}; /* the valued ones, -v, --allow-nonfinite */
    uint64_t weights = KILN_CLI_DEFAULT_MAX_WEIGHTS_BYTES, workspace = KILN_CLI_DEFAULT_MAX_WORKSPACE_BYTES;
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *arg = argv[i], *value = NULL;
        int which = -1;
        if (strcmp(arg, "-v") == 0 || strcmp(arg, "--verbose") == 0) {
            which = N_VALUED;
            verbose = true;
        } else if (strcmp(arg, "--allow-nonfinite") == 0) {
            which = N_VALUED + 1;
            allow_nonfinite = true;
        } else {
            for (int k = 0; k < N_VALUED && which < 0; k++) {
                size_t n = strlen(names[k]);
                if (strcmp(arg, names[k]) == 0) {
                    if (i + 1 >= *argc)
                        return kiln_cli_usage_error(argv[0], "option '%s' needs a value", names[k]);
                    value = argv[++i];
                    which = k;
                } else if (strncmp(arg, names[k], n) == 0 && arg[n] == '=') {
                    value = arg + n + 1;
                    which = k;
                }
            }
        }
        if (which < 0) {
            argv[out++] = argv[i];
            continue;
        }
        if (seen[which])
            return kiln_cli_usage_error(argv[0], "option '%s' is given twice (each option once: a second value "
                                                 "would silently replace the first)",
                                        which < N_VALUED ? names[which] : arg);
        seen[which] = true;
        if (which == 0 && (kiln_parse_int(value, &max_elements) != 0 || max_elements < 1))
            return kiln_cli_usage_error(argv[0], "--max-elements expects a positive integer, got '%s'", value);
        if ((which == 1 || which == 2) && parse_bytes(value, which == 1 ? &weights : &workspace) != 0)
            return kiln_cli_usage_error(argv[0], "%s expects a positive number of bytes (e.g. 8G, 512MiB, 1000000), "
                                                 "got '%s'", names[which], value);
    }
    kiln_cli_set_budgets(weights, workspace);
    *argc = out;
    argv[out] = NULL;
    return 0;
}

bool kiln_cli_allow_nonfinite(void) { return allow_nonfinite; }

double kiln_cli_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

bool kiln_cli_verbose(void) { return verbose; }

void kiln_cli_stage(const char *cmd, double seconds, const char *fmt, ...)
{
    if (!verbose)
        return;
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (seconds < 0)
        fprintf(stderr, "kiln %s: %s\n", cmd, what);
    else
        fprintf(stderr, "kiln %s: %-52s %10.3f ms\n", cmd, what, seconds * 1e3);
}

#ifndef KILN_RT_INSTALL_LIBDIR_REL
#define KILN_RT_INSTALL_LIBDIR_REL "../lib"
#endif
#ifndef KILN_RT_BUILD_LIBDIR_REL
#define KILN_RT_BUILD_LIBDIR_REL "../runtime"
#endif

const char *kiln_cli_rt_libdir(void)
{
    static char dir[PATH_MAX];
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return NULL;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    static const char *const rel[] = {KILN_RT_INSTALL_LIBDIR_REL, KILN_RT_BUILD_LIBDIR_REL};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        char candidate[PATH_MAX + 64], lib[PATH_MAX + 96];
        snprintf(candidate, sizeof candidate, "%s/%s", exe, rel[i]);
        snprintf(lib, sizeof lib, "%s/libkiln_rt.so", candidate);
        if (access(lib, R_OK) == 0 && realpath(candidate, dir))
            return dir;
    }
    return NULL;
}

/* "verify, infer_shapes, ..., schedule" */
static void pass_list(char *buf, size_t size)
{
    size_t w = 0;
    buf[0] = '\0';
    const char *const *names = kiln_pipeline_pass_names();
    for (size_t i = 0; names[i] && w < size; i++)
        w += (size_t)snprintf(buf + w, size - w, "%s%s", i ? ", " : "", names[i]);
}

int kiln_cli_check_pass(const char *cmd, const char *flag, const char *name)
{
    if (kiln_pipeline_has_pass(name))
        return 0;
    char list[256];
    pass_list(list, sizeof list);
    return kiln_cli_usage_error(cmd, "%s: unknown pass '%s' (the passes, in order: %s)", flag, name, list);
}

/* --dump-ir=all or --dump-ir=after:PASS: *out is "all" or PASS. */
static int parse_dump_ir(const char *cmd, const char *text, const char **out)
{
    if (strcmp(text, "all") == 0) {
        *out = text;
        return 0;
    }
    if (strncmp(text, "after:", 6) != 0) {
        char list[256];
        pass_list(list, sizeof list);
        return kiln_cli_usage_error(cmd, "--dump-ir expects 'all' or 'after:PASS', got '%s' (the passes, in order: %s)",
                                    text, list);
    }
    *out = text + 6;
    return kiln_cli_check_pass(cmd, "--dump-ir", *out);
}

void kiln_cli_options_init(kiln_cli_options *o, const char *cmd, const char *help, unsigned takes)
{
    /* Every command but dump (without passes) reads the weights' values. */
    *o = (kiln_cli_options){
        .cmd = cmd, .help = help, .takes = takes, .cg = KILN_CG_OPTIONS_INIT, .passes = "all", .batch = 1,
        .layout = "auto", .needs_weights = strcmp(cmd, "dump") != 0};
}

int kiln_cli_options_take(kiln_args *a, kiln_cli_options *o)
{
    const char *arg = a->argv[a->i], *v;
    int r;
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
        fputs(o->help, stdout);
        return 0;
    }
    if (arg[0] != '-') {
        if (o->model)
            return kiln_args_unknown(a);
        o->model = arg;
        return KILN_CLI_TAKEN;
    }
    if ((o->takes & KILN_CLI_TAKES_OPT_LEVEL) && arg[1] == 'O' && arg[2] >= '0' && arg[2] <= '3' && !arg[3]) {
        if (kiln_args_once(a, "-O") < 0)
            return 2;
        o->cg.opt_level = arg[2] - '0';
        return KILN_CLI_TAKEN;
    }
    if ((o->takes & KILN_CLI_TAKES_PASSES) && (r = kiln_args_value(a, "--passes", &o->passes))) {
        if (r < 0)
            return 2;
        if (strcmp(o->passes, "all") != 0 && strcmp(o->passes, "none") != 0)
            return kiln_cli_usage_error(o->cmd, "--passes must be 'all' or 'none', got '%s'", o->passes);
        return KILN_CLI_TAKEN;
    }
    if ((o->takes & KILN_CLI_TAKES_THREADS) && (r = kiln_args_value(a, "--threads", &v)))
        return r < 0 || kiln_cli_parse_count(o->cmd, "--threads", v, 0, &o->threads) ? 2 : KILN_CLI_TAKEN;
    if ((o->takes & KILN_CLI_TAKES_BATCH) && (r = kiln_args_value(a, "--batch", &v)))
        return r < 0 || kiln_cli_parse_count(o->cmd, "--batch", v, 1, &o->batch) ? 2 : KILN_CLI_TAKEN;
    if ((o->takes & KILN_CLI_TAKES_TIME_PASSES) && (r = kiln_args_flag(a, "--time-passes"))) {
        o->time_passes = true;
        return r < 0 ? 2 : KILN_CLI_TAKEN;
    }
    if ((o->takes & KILN_CLI_TAKES_WINOGRAD) && (r = kiln_args_value(a, "--winograd", &v))) {
        static const char *const names[] = {"auto", "off", "f2", "f4"};
        static const kiln_winograd_mode modes[] = {KILN_WINOGRAD_AUTO, KILN_WINOGRAD_OFF, KILN_WINOGRAD_F2,
                                                 KILN_WINOGRAD_F4};
        if (r < 0)
            return 2;
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
            if (strcmp(v, names[k]) == 0) {
                o->cg.winograd = modes[k];
                return KILN_CLI_TAKEN;
            }
        return kiln_cli_usage_error(o->cmd, "--winograd must be auto, off, f2 or f4, got '%s'", v);
    }
    if ((o->takes & KILN_CLI_TAKES_PRECISION) && (r = kiln_args_value(a, "--precision", &o->precision)))
        return r < 0 ? 2 : KILN_CLI_TAKEN;
    if ((o->takes & KILN_CLI_TAKES_CALIBRATION) && (r = kiln_args_value(a, "--calibration-method", &v))) {
        if (r < 0)
            return 2;
        if (kiln_calib_method_parse(v, &o->calibration_method) != 0)
            return kiln_cli_usage_error(o->cmd, "--calibration-method must be 'percentile' or 'minmax', got '%s'", v);
        o->calibration_method_given = true;
        return KILN_CLI_TAKEN;
    }
    if ((o->takes & KILN_CLI_TAKES_CALIBRATION) && (r = kiln_args_value(a, "--calibration", &o->calibration))) {
        if (r < 0)
            return 2;
        if (!*o->calibration)
            return kiln_cli_usage_error(o->cmd, "--calibration needs a file, a folder or 'random'");
        return KILN_CLI_TAKEN;
    }
    if ((o->takes & KILN_CLI_TAKES_LAYOUT) && (r = kiln_args_value(a, "--layout", &v))) {
        if (r < 0)
            return 2;
        if (strcmp(v, "auto") != 0 && strcmp(v, "plain") != 0)
            return kiln_cli_usage_error(o->cmd, "--layout must be 'auto' or 'plain', got '%s'", v);
        o->layout = v;
        o->layout_given = true;
        return KILN_CLI_TAKEN;
    }
    if ((o->takes & KILN_CLI_TAKES_CPU) &&
        ((r = kiln_args_value(a, "--cpu", &o->cg.cpu)) || (r = kiln_args_value(a, "--features", &o->cg.features))))
        return r < 0 ? 2 : KILN_CLI_TAKEN;
    if ((o->takes & KILN_CLI_TAKES_DUMP_IR) && (r = kiln_args_value(a, "--dump-ir", &v)))
        return r < 0 || parse_dump_ir(o->cmd, v, &o->dump_ir) ? 2 : KILN_CLI_TAKEN;
    return KILN_CLI_OTHER;
}

int kiln_cli_options_check(const kiln_cli_options *o)
{
    if (!o->model)
        return kiln_cli_usage_error(o->cmd, "no model given (see 'kiln %s --help')", o->cmd);
    if (o->threads > 1024)
        return kiln_cli_usage_error(o->cmd, "--threads must be at most 1024");
    if (o->dump_ir && strcmp(o->passes, "none") == 0)
        return kiln_cli_usage_error(o->cmd, "--dump-ir shows what the passes do: it cannot be combined with "
                                            "--passes none");
    if (o->precision && strcmp(o->precision, "int8") == 0 && !o->calibration &&
        (o->takes & KILN_CLI_TAKES_CALIBRATION))
        return kiln_cli_usage_error(o->cmd, "int8 needs calibration data: --calibration FILE, or --calibration random");
    if (o->calibration_method_given && !o->calibration)
        return kiln_cli_usage_error(o->cmd, "--calibration-method needs --calibration");
    return 0;
}

/* `kiln CMD` before a diagnostic that has no file (an out-of-memory in a
 * pass, a code generation failure). */
static void print_diags(const kiln_diag *d, const char *cmd)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "kiln %s", cmd);
    kiln_diag_print_prefixed(d, stderr, prefix);
}

static kiln_graph *load_graph(const char *path, const char *cmd)
{
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_graph *g = NULL;
    kiln_frontend_options opt = {.max_elements = max_elements, .allow_nonfinite = allow_nonfinite};
    kiln_status st = kiln_frontend_load_opts(path, &opt, &g, &d);
    print_diags(&d, cmd);
    if (st != KILN_OK || kiln_diag_has_errors(&d)) {
        if (d.count == 0)
            fprintf(stderr, "%s: error: %s\n", path, kiln_status_string(st));
        kiln_graph_destroy(g);
        g = NULL;
    }
    kiln_diag_release(&d);
    return g;
}

static bool has_batched_input(const kiln_graph *g)
{
    for (size_t i = 0; i < g->n_inputs; i++)
        if (kiln_graph_value(g, g->inputs[i])->type.shape.batched)
            return true;
    return false;
}

int kiln_cli_run_passes(kiln_graph *g, const kiln_cli_options *o, bool quiet)
{
    int64_t threads = o->threads;
    if (threads <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores > 0 ? cores : 1;
    }
    kiln_diag d;
    kiln_diag_init(&d);
    /* Dumps are for looking at what the passes did: check the IR after each. */
    kiln_pipeline_options po = {
        .stop_after = o->stop_after,
        .dump_after = quiet ? NULL : o->dump_ir,
        .dump_to = o->dump_to ? o->dump_to : stderr,
        .time_to = !quiet && (o->time_passes || verbose) ? stderr : NULL,
        .verify_each = KILN_PIPELINE_VERIFY_DEFAULT || o->stop_after != NULL || o->dump_ir != NULL,
        .threads_hint = (int)threads,
    };
    /* The target the passes plan for: the one the code generator will
     * compile for (its names resolved as kiln compile resolves them). */
    kiln_target target;
    kiln_status st = kiln_cg_target_for_options(&o->cg, &target, &d);
    if (st != KILN_OK) {
        kiln_diag_print(&d, stderr);
        kiln_diag_release(&d);
        return kiln_cli_error(o->cmd, "the target: %s", kiln_status_string(st));
    }
    po.target = &target;
    po.select.winograd = o->cg.winograd;
    po.select.prefer = o->prefer;
    if (strcmp(o->layout, "auto") == 0) {
        po.layout_block = po.target ? kiln_target_lanes(po.target) : 0;
        if (po.layout_block == 0 && !quiet)
            fprintf(stderr, "kiln %s: note: no channel block is known for this target: --layout auto keeps every "
                            "value plain\n", o->cmd);
    }
    st = kiln_pipeline_run(g, &po, &d);
    if (!quiet || st != KILN_OK)
        print_diags(&d, o->cmd);
    kiln_diag_release(&d);
    if (st != KILN_OK)
        return kiln_cli_error(o->cmd, "optimizing '%s' failed: %s", g->name, kiln_status_string(st));
    return 0;
}

static bool is_identifier(const char *s)
{
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

/* --name and --precision: what the command line changes in the model. */
static int apply_overrides(kiln_graph *g, const kiln_cli_options *o)
{
    if (o->name) {
        if (!is_identifier(o->name))
            return kiln_cli_usage_error(o->cmd, "--name must be a C identifier ([A-Za-z_][A-Za-z0-9_]*), got '%s'",
                                        o->name);
        char *copy = kiln_arena_strdup(&g->arena, o->name);
        if (!copy)
            return kiln_cli_error(o->cmd, "out of memory");
        g->name = copy;
    }
    if (o->precision && kiln_precision_parse(o->precision, &g->precision) != 0)
        return kiln_cli_usage_error(o->cmd, "--precision must be one of f32, bf16, f16, int8, auto, got '%s'",
                                    o->precision);
    return 0;
}

int kiln_cli_model_load(kiln_cli_model *m, const kiln_cli_options *o)
{
    *m = (kiln_cli_model){0};
    double t0 = kiln_cli_seconds();
    kiln_graph *g = load_graph(o->model, o->cmd);
    if (!g)
        return 1;
    double t1 = kiln_cli_seconds();
    kiln_cli_stage(o->cmd, t1 - t0, "load %s (%zu nodes, %zu weights files)", o->model, g->n_nodes,
                   g->n_weight_files);
    int rc = apply_overrides(g, o);
    bool passes = strcmp(o->passes, "none") != 0;
    if (rc != 0)
        ;
    else if (o->batch != 1 && !has_batched_input(g))
        rc = kiln_cli_usage_error(o->cmd, "the model has fixed shapes: --batch must be 1");
    else if ((o->needs_weights || passes || o->calibration) && kiln_cli_budget_weights(g, o->cmd) != 0)
        rc = 1; /* before the passes: folding reads the weights */
    else if (o->calibration) {
        double t2 = kiln_cli_seconds();
        rc = kiln_calib_load(&m->calib, o->calibration, g, o->cmd);
        if (rc == 0)
            kiln_cli_stage(o->cmd, kiln_cli_seconds() - t2, "calibration data %s (%lld samples)", o->calibration,
                           (long long)m->calib.samples);
    }
    if (rc != 0) {
        kiln_graph_destroy(g);
        return rc;
    }
    m->g = g;
    m->load_s = t1 - t0;
    return 0;
}

int kiln_cli_model_passes(kiln_cli_model *m, const kiln_cli_options *o)
{
    const bool none = strcmp(o->passes, "none") == 0;
    double t0 = kiln_cli_seconds();
    int rc = none ? 0 : kiln_cli_run_passes(m->g, o, false);
    double t1 = kiln_cli_seconds();
    if (rc == 0) /* int8 layers: their inputs' quantization, from the calibration data */
        rc = kiln_calib_quantize(m->g, &m->calib, o->calibration_method, &m->int8_layers, o->cmd);
    if (rc != 0) {
        kiln_cli_model_close(m);
        return rc;
    }
    if (none)
        return 0;
    m->passes_s = t1 - t0;
    kiln_cli_stage(o->cmd, m->passes_s, "passes%s%s", o->stop_after ? " up to " : "",
                   o->stop_after ? o->stop_after : "");
    return 0;
}

int kiln_cli_model_open(kiln_cli_model *m, const kiln_cli_options *o)
{
    int rc = kiln_cli_model_load(m, o);
    return rc != 0 ? rc : kiln_cli_model_passes(m, o);
}

void kiln_cli_model_close(kiln_cli_model *m)
{
    kiln_graph_destroy(m->g);
    m->g = NULL;
    kiln_calib_free(&m->calib);
}
