/* compiler/driver/budget.c: the memory a command may use for a model's
 * weights and for evaluating it, checked from the shapes before anything is
 * allocated (docs/cli.md, "Limits"). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static uint64_t max_weights = KILN_CLI_DEFAULT_MAX_WEIGHTS_BYTES;
static uint64_t max_workspace = KILN_CLI_DEFAULT_MAX_WORKSPACE_BYTES;

void kiln_cli_set_budgets(uint64_t weights, uint64_t workspace)
{
    max_weights = weights;
    max_workspace = workspace;
}

static uint64_t add_sat(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

static uint64_t mul_sat(uint64_t a, uint64_t b) { return b && a > UINT64_MAX / b ? UINT64_MAX : a * b; }

/* Bytes of `elements` at `size` each; the largest figure when the shape
 * arithmetic overflows (such a value fits no budget). */
static uint64_t value_bytes(const kiln_value *v, int64_t batch, uint64_t size)
{
    int64_t n = kiln_shape_elements(&v->type.shape, batch);
    return n < 0 ? UINT64_MAX : mul_sat((uint64_t)n, size);
}

void kiln_cli_format_bytes(uint64_t bytes, char *buf, size_t size)
{
    if (bytes == UINT64_MAX)
        snprintf(buf, size, "more than 16 EiB");
    else if (bytes >= ((uint64_t)1 << 30))
        snprintf(buf, size, "%.1f GiB", (double)bytes / (double)((uint64_t)1 << 30));
    else if (bytes >= ((uint64_t)1 << 20))
        snprintf(buf, size, "%.1f MiB", (double)bytes / (double)(1 << 20));
    else if (bytes >= ((uint64_t)1 << 10))
        snprintf(buf, size, "%.1f KiB", (double)bytes / 1024.0);
    else
        snprintf(buf, size, "%" PRIu64 " B", bytes);
}

/* `FILE:LINE:COL: error: ...` at loc when it has a file, else `kiln CMD:
 * error: ...`; the source line follows as for any diagnostic. */
static int report(const char *cmd, kiln_loc loc, const char *msg)
{
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_diag_error(&d, loc, "%s", msg);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "kiln %s", cmd);
    kiln_diag_print_prefixed(&d, stderr, prefix);
    kiln_diag_release(&d);
    return 1;
}

int kiln_cli_budget_weights(const kiln_graph *g, const char *cmd)
{
    uint64_t total = 0, largest = 0;
    const kiln_value *big = NULL;
    for (size_t i = 0; i < g->n_values; i++) {
        const kiln_value *v = &g->values[i];
        if (v->kind != KILN_VALUE_PARAM)
            continue;
        uint64_t b = value_bytes(v, 1, 4);
        total = add_sat(total, b);
        if (!big || b > largest) {
            big = v;
            largest = b;
        }
    }
    if (total <= max_weights)
        return 0;
    char t[48], l[48], m[48], shape[160], msg[1024];
    kiln_cli_format_bytes(total, t, sizeof t);
    kiln_cli_format_bytes(largest, l, sizeof l);
    kiln_cli_format_bytes(max_weights, m, sizeof m);
    kiln_type_format(&big->type, g->batch_name, shape, sizeof shape);
    snprintf(msg, sizeof msg,
             "the model's weights take %s (as f32), more than the weights budget of %s; the largest is '%s' %s, "
             "%s (raise the budget with --max-weights-bytes)", t, m, big->name, shape, l);
    return report(cmd, big->loc, msg);
}

int kiln_cli_budget_workspace(const kiln_graph *g, const char *cmd, int64_t batch, kiln_cli_eval how)
{
    /* Every value that is not a parameter: what the interpreter holds (in
     * double), and what kiln check's compiled code keeps (each value in a
     * region of its own). Compiled code that follows the memory plan needs
     * the plan's workspace and the inputs and outputs only. */
    uint64_t all = 0, largest = 0, io = 0;
    const kiln_value *big = NULL;
    for (size_t i = 0; i < g->n_values; i++) {
        const kiln_value *v = &g->values[i];
        if (v->kind == KILN_VALUE_PARAM)
            continue;
        uint64_t b = value_bytes(v, batch, 4);
        all = add_sat(all, b);
        if (!big || b > largest) {
            big = v;
            largest = b;
        }
    }
    for (size_t i = 0; i < g->n_inputs; i++)
        io = add_sat(io, value_bytes(&g->values[g->inputs[i]], batch, 4));
    for (size_t i = 0; i < g->n_outputs; i++)
        io = add_sat(io, value_bytes(&g->values[g->outputs[i]], batch, 4));
    bool planned = g->mem_fixed_bytes != 0 || g->mem_batch_bytes != 0;
    uint64_t need;
    const char *what;
    switch (how) {
    case KILN_CLI_EVAL_INTERP:
        need = mul_sat(all, 2);
        what = "every value of the model in double precision (the reference interpreter)";
        break;
    case KILN_CLI_EVAL_CHECK:
        need = mul_sat(all, 3);
        what = "every value of the model, compiled (f32) and in the interpreter (double)";
        break;
    case KILN_CLI_EVAL_COMPILED:
    default:
        if (planned) {
            need = add_sat(add_sat(g->mem_fixed_bytes, mul_sat(g->mem_batch_bytes, (uint64_t)batch)), io);
            what = "the compiled model's workspace (memory plan) with its inputs and outputs";
        } else {
            need = all;
            what = "every value of the compiled model (no memory plan)";
        }
        break;
    }
    if (need <= max_workspace)
        return 0;
    char n[48], l[48], m[48], shape[160], msg[1024];
    if (!big) { /* a model without a value: only a plan can be that large */
        kiln_cli_format_bytes(need, n, sizeof n);
        kiln_cli_format_bytes(max_workspace, m, sizeof m);
        snprintf(msg, sizeof msg, "evaluating the model takes %s (%s), more than the workspace budget of %s (raise "
                 "the budget with --max-workspace-bytes)", n, what, m);
        return report(cmd, (kiln_loc){0}, msg);
    }
    kiln_cli_format_bytes(need, n, sizeof n);
    kiln_cli_format_bytes(largest, l, sizeof l);
    kiln_cli_format_bytes(max_workspace, m, sizeof m);
    kiln_type_format(&big->type, g->batch_name, shape, sizeof shape);
    snprintf(msg, sizeof msg,
             "evaluating the model at batch %" PRId64 " takes %s (%s), more than the workspace budget of %s; the "
             "largest value is '%s' %s, %s at this batch (raise the budget with --max-workspace-bytes)",
             batch, n, what, m, big->name, shape, l);
    return report(cmd, big->loc, msg);
}
