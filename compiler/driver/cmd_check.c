/* compiler/driver/cmd_check.c: `kiln check MODEL [--batch N] [--tolerance X]`:
 * compiles the model (JIT) with every value kept in the workspace, runs it
 * and the reference interpreter on the same random inputs, and prints each
 * layer's error. A blocked value (nchw<B>c) is compared after converting its
 * storage to the logical NCHW tensor the interpreter computes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "compiler/interp/interp.h"
#include "ir/convert.h"

static const char help[] =
    "usage: kiln check MODEL [--batch N] [--tolerance X] [--threads T] [--seed S] [--passes all|none] [-O0..3]\n"
    "                  [--winograd auto|off|f2|f4] [--layout auto|plain]\n"
    "                  [--cpu NAME] [--features LIST] [--precision P]\n"
    "                  [--calibration FILE|DIR|random] [--calibration-method percentile|minmax]\n"
    "\n"
    "Compiles MODEL for this machine, runs it and the reference interpreter on\n"
    "the same random inputs (uniform in [-1, 1), a fixed seed) and prints, for\n"
    "every layer, the largest absolute and relative error of the compiled\n"
    "result. The relative error of an element is |a - b| / max(|b|, 0.01 max|B|)\n"
    "where b is the interpreter's value and B the whole tensor (elements far\n"
    "below the tensor's scale are compared at 1%% of it). Exits with status 1\n"
    "and names the first layer whose relative error exceeds the tolerance.\n"
    "A layer in bf16, f16 or int8 is compared with the interpreter computing\n"
    "as that layer does (its rounding emulated); a column 'vs f32' then adds\n"
    "max |a - f| / max |F| against the model computed in f32: what the\n"
    "reduced precision costs, layer by layer.\n"
    "\n"
    "  --batch N        batch size (default 1)\n"
    "  --tolerance X    largest relative error accepted (default 1e-4; 5e-4 when a\n"
    "                   layer uses Winograd F(4x4), see --winograd)\n"
    "  --threads T      threads of the compiled model (default: one per core)\n"
    "  --seed S         seed of the random inputs (default 1)\n"
    "  --passes all     run the optimization passes first (default; both the compiled\n"
    "                   model and the interpreter then see the optimized graph, and\n"
    "                   values a fusion group keeps in registers show as 'fused')\n"
    "  -O0 .. -O3       optimization level (default -O2)\n"
    "  --winograd MODE  3x3 stride-1 convolutions: auto (default: Winograd F(4x4) or\n"
    "                   F(2x2) where it pays, docs/codegen.md), off, f2, f4 (force)\n"
    "  --layout auto    (default) channel-blocked activations (nchw8c on AVX2) where the\n"
    "                   layout pass finds they pay (docs/passes.md); 'plain': NCHW.\n"
    "  --precision P    the model's default precision (f32, bf16, f16, int8, auto); a\n"
    "                   layer's own precision: key wins (docs/precision.md)\n"
    "  --calibration DATA\n"
    "                   calibration samples (a safetensors file or a folder of\n"
    "                   NAME.npy, one F32 tensor per input, or 'random'), checked against\n"
    "                   the inputs; --precision int8 needs it (docs/precision.md)\n"
    "  --cpu NAME       compile for this CPU instead of the host's (x86-64-v3: the AVX2\n"
    "                   code on an AVX-512 machine); this machine must have its features\n"
    "  --features LIST  LLVM feature string added to the CPU's (+avx2,-avx512f)\n"
    "                   A blocked value is converted to NCHW before it is compared\n";

typedef struct errors {
    double abs, rel;
    bool bad; /* NaN/inf where the reference has none, or the reverse */
} errors;

/* max |a - b| / max |b| over the finite elements (the --metric maxrel of
 * docs/precision.md): what a reduced precision costs a layer's output. */
static double rel_to_largest(const float *a, const double *b, size_t n)
{
    double maxref = 0.0, d = 0.0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(b[i]) && isfinite(a[i])) {
            maxref = fmax(maxref, fabs(b[i]));
            d = fmax(d, fabs(a[i] - b[i]));
        }
    return maxref > 0 ? d / maxref : d;
}

static errors compare(const float *a, const double *b, size_t n)
{
    errors e = {0.0, 0.0, false};
    double maxref = 0.0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(b[i]) && fabs(b[i]) > maxref)
            maxref = fabs(b[i]);
    for (size_t i = 0; i < n; i++) {
        double x = a[i], y = b[i];
        if (!isfinite(x) || !isfinite(y)) {
            if (!(isnan(x) && isnan(y)) && x != y)
                e.bad = true;
            continue;
        }
        double d = fabs(x - y), scale = fmax(fmax(fabs(y), 0.01 * maxref), 1e-30);
        if (d > e.abs)
            e.abs = d;
        if (d / scale > e.rel)
            e.rel = d / scale;
    }
    return e;
}

int kiln_cmd_check(int argc, char **argv)
{
    kiln_args a = {.argc = argc, .argv = argv, .i = 1, .cmd = "check"};
    const char *v;
    int64_t seed = 1;
    double tolerance = 1e-4;
    bool tolerance_given = false;
    kiln_cli_options o;
    kiln_cli_options_init(&o, "check", help,
                          KILN_CLI_TAKES_OPT_LEVEL | KILN_CLI_TAKES_WINOGRAD | KILN_CLI_TAKES_LAYOUT | KILN_CLI_TAKES_PASSES |
                              KILN_CLI_TAKES_CPU | KILN_CLI_TAKES_PRECISION | KILN_CLI_TAKES_CALIBRATION |
                              KILN_CLI_TAKES_THREADS | KILN_CLI_TAKES_BATCH);
    for (; a.i < argc; a.i++) {
        int r = kiln_cli_options_take(&a, &o);
        if (r == KILN_CLI_TAKEN)
            continue;
        if (r != KILN_CLI_OTHER)
            return r;
        if ((r = kiln_args_value(&a, "--seed", &v))) {
            if (r < 0 || kiln_cli_parse_count("check", "--seed", v, 0, &seed))
                return 2;
            continue;
        }
        if ((r = kiln_args_value(&a, "--tolerance", &v))) {
            if (r < 0)
                return 2;
            if (kiln_parse_float(v, &tolerance) != 0 || !(tolerance >= 0))
                return kiln_cli_usage_error("check", "--tolerance expects a number >= 0, got '%s'", v);
            tolerance_given = true;
            continue;
        }
        return kiln_args_unknown(&a);
    }
    if (kiln_cli_options_check(&o))
        return 2;

    kiln_cli_model cm;
    int rc = kiln_cli_model_open(&cm, &o);
    if (rc != 0)
        return rc;
    rc = 1;
    const kiln_graph *g = cm.g;
    const int64_t batch = o.batch;
    kiln_jit_model jm = {0};
    void *inst = NULL, *ws = NULL;
    kiln_interp *it = NULL, *it_f32 = NULL;
    kiln_cli_buffers io = {0};
    float *plain = NULL; /* a blocked value, converted to NCHW */
    o.cg.expose_values = true;
    if (kiln_cli_budget_workspace(g, "check", batch, KILN_CLI_EVAL_CHECK) != 0 ||
        kiln_jit_model_open(&jm, g, "check", &o.cg) != 0)
        goto done;
    /* Winograd F(4x4) rounds more than a direct sum (docs/codegen.md: up to
     * ~2e-4 on its own, and later layers inherit it): the default tolerance
     * is then 5e-4. */
    bool f4 = false;
    for (size_t i = 0; i < g->n_nodes; i++)
        f4 |= kiln_cg_winograd_used(jm.module, (kiln_id)i) == 4;
    if (f4 && !tolerance_given) {
        tolerance = 5e-4;
        printf("note: Winograd F(4x4) layers: default tolerance 5e-4 (--winograd off checks the direct sums at 1e-4)\n");
    }

    /* The caller's workspace: the values are read back from it. */
    size_t ws_size = jm.e.workspace_size(batch);
    ws = kiln_rt_aligned_alloc(ws_size);
    if (!ws) {
        kiln_cli_error("check", "out of memory for a workspace of %zu bytes", ws_size);
        goto done;
    }
    char why[512] = "";
    kiln_options ko = KILN_OPTIONS_INIT;
    ko.num_threads = (int)o.threads;
    ko.workspace = ws;
    ko.workspace_size = ws_size;
    ko.error = why;
    ko.error_size = sizeof why;
    double t_run = kiln_cli_seconds();
    kiln_status st = jm.e.create(&inst, &ko);
    kiln_interp_options iopt = {.keep_all = true};
    if (st == KILN_OK)
        st = kiln_interp_create(g, batch, &iopt, &it);
    if (st == KILN_OK)
        st = kiln_cli_buffers_alloc(&io, g, batch, (uint64_t)seed * 1000003u);
    for (size_t k = 0; st == KILN_OK && k < g->n_inputs; k++)
        st = kiln_interp_set_input(it, k, io.in[k]);
    if (st == KILN_OK) {
        st = jm.e.run_array(inst, batch, (const float *const *)io.in, io.out);
        if (st != KILN_OK)
            snprintf(why, sizeof why, "%s", jm.e.last_error(inst));
    }
    if (st != KILN_OK) {
        kiln_cli_error("check", "running the compiled model failed: %s%s%s", kiln_status_string(st),
                       why[0] ? ": " : "", why);
        goto done;
    }
    double t_interp = kiln_cli_seconds();
    kiln_cli_stage("check", t_interp - t_run, "run the compiled model, batch %lld", (long long)batch);
    st = kiln_cli_interp_run(it);
    if (st != KILN_OK) {
        kiln_cli_error("check", "the interpreter failed: %s", kiln_status_string(st));
        goto done;
    }
    kiln_cli_stage("check", kiln_cli_seconds() - t_interp, "reference interpreter, batch %lld", (long long)batch);
    /* Layers in a reduced precision: the interpreter above emulates it (the
     * tolerance applies to that comparison); a second run computes the
     * whole model in f32, so each row also shows what the precision costs. */
    bool reduced = false;
    for (size_t i = 0; i < g->n_nodes; i++)
        reduced |= kiln_node_precision(g, &g->nodes[i]) != KILN_PREC_F32;
    if (reduced) {
        kiln_interp_options fopt = {.keep_all = true, .f32 = true};
        st = kiln_interp_create(g, batch, &fopt, &it_f32);
        for (size_t k = 0; st == KILN_OK && k < g->n_inputs; k++)
            st = kiln_interp_set_input(it_f32, k, io.in[k]);
        if (st == KILN_OK)
            st = kiln_cli_interp_run(it_f32);
        if (st != KILN_OK) {
            kiln_cli_error("check", "the interpreter in f32 failed: %s", kiln_status_string(st));
            goto done;
        }
    }

    printf("model %s, batch %lld, target %s\n", g->name, (long long)batch, kiln_cg_target_description(jm.module));
    if (reduced)
        printf("max rel err: against the interpreter computing each layer's precision; vs f32: max |a - f| / max "
               "|F| against the model computed in f32\n");
    printf("%-24s %-14s %-24s %12s %12s%s\n", "layer", "op", "value", "max abs err", "max rel err",
           reduced ? "       vs f32" : "");
    const kiln_node *first_bad = NULL;
    char first_label[256] = "";
    double first_rel = 0.0;
    double worst = 0.0;
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln_node *n = kiln_graph_node(g, (kiln_id)i);
        const kiln_value *val = kiln_graph_value(g, n->output);
        kiln_cg_buffer b = {KILN_CG_BUF_NONE, 0, 0, 0};
        size_t count = 0;
        const double *ref = kiln_interp_value(it, n->output, &count);
        const float *got = NULL;
        if (kiln_cg_value_buffer(jm.module, n->output, &b) == KILN_OK) {
            if (b.kind == KILN_CG_BUF_INPUT)
                got = io.in[b.index];
            else if (b.kind == KILN_CG_BUF_OUTPUT)
                got = io.out[b.index];
            else if (b.kind == KILN_CG_BUF_WORKSPACE)
                got = (const float *)(const void *)((const char *)ws + b.offset + (uint64_t)batch * b.per_batch);
        }
        const char *layer = n->layer ? n->layer : val->name;
        /* The last member of a fused group stands for the group: its layers
         * joined by '+', the anchor's op. */
        char group_label[256];
        const kiln_node *anchor = n;
        if (n->group && i > 0 && g->nodes[i - 1].group == n->group && b.kind != KILN_CG_BUF_NONE) {
            size_t s = i;
            while (s > 0 && g->nodes[s - 1].group == n->group)
                s--;
            size_t w = 0;
            group_label[0] = '\0';
            const char *prev = NULL;
            for (size_t k = s; k <= i && w < sizeof group_label; k++) {
                const kiln_node *m = kiln_graph_node(g, (kiln_id)k);
                const char *name = m->layer ? m->layer : kiln_graph_value(g, m->output)->name;
                if (prev && strcmp(prev, name) == 0)
                    continue; /* an `activation:` has its layer's name */
                w += (size_t)snprintf(group_label + w, sizeof group_label - w, "%s%s", prev ? "+" : "", name);
                prev = name;
            }
            layer = group_label;
            anchor = kiln_graph_node(g, (kiln_id)s);
        }
        if (ref && !got && b.kind == KILN_CG_BUF_NONE && i + 1 < g->n_nodes && g->nodes[i + 1].group &&
            g->nodes[i + 1].group == n->group) {
            printf("%-24s %-14s %-24s %12s %12s%s\n", layer, kiln_op_name(n->op), val->name, "(fused)", "",
                   reduced ? "             " : "");
            continue;
        }
        if (!ref || !got || count != kiln_value_elements(g, n->output, batch)) {
            printf("%-24s %-14s %-24s %12s %12s\n", layer, kiln_op_name(n->op), val->name, "-", "-");
            continue;
        }
        if (val->type.layout != KILN_LAYOUT_PLAIN || val->type.dtype != KILN_F32) {
            /* the buffer is the value's storage: whole channel blocks, or
             * elements of another type (bf16, f16; i8 and u8 as the integers
             * the interpreter holds too) */
            float *p = realloc(plain, count * sizeof *plain);
            if (!p) {
                kiln_cli_error("check", "out of memory converting '%s' to NCHW", val->name);
                goto done;
            }
            plain = p;
            if (val->type.dtype != KILN_F32)
                kiln_dtype_to_f32(val->type.dtype, got, count, plain);
            else
                kiln_layout_to_plain(&val->type, batch, got, plain);
            got = plain;
        }
        errors e = compare(got, ref, count);
        char vs_f32[32] = "";
        if (reduced) {
            size_t count32 = 0;
            const double *ref32 = kiln_interp_value(it_f32, n->output, &count32);
            if (ref32 && count32 == count)
                snprintf(vs_f32, sizeof vs_f32, " %12.3g", rel_to_largest(got, ref32, count));
            else
                snprintf(vs_f32, sizeof vs_f32, " %12s", "-");
        }
        printf("%-24s %-14s %-24s %12.3g %12.3g%s%s\n", layer, kiln_op_name(anchor->op), val->name, e.abs, e.rel,
               vs_f32, e.bad ? "  (NaN/inf mismatch)" : e.rel > tolerance ? "  <-- over tolerance" : "");
        if (e.rel > worst)
            worst = e.rel;
        if (!first_bad && (e.bad || e.rel > tolerance)) {
            first_bad = anchor;
            first_rel = e.bad ? INFINITY : e.rel;
            snprintf(first_label, sizeof first_label, "%s", layer);
        }
    }
    if (first_bad) {
        kiln_cli_error("check", "layer '%s' (%s) is the first over the tolerance: relative error %.3g > %g",
                       first_label, kiln_op_name(first_bad->op), first_rel, tolerance);
        goto done;
    }
    printf("ok: every layer within %g (largest relative error %.3g)\n", tolerance, worst);
    rc = 0;
done:
    if (inst)
        jm.e.destroy(inst);
    kiln_jit_model_close(&jm);
    kiln_rt_aligned_free(ws);
    kiln_interp_destroy(it);
    kiln_interp_destroy(it_f32);
    kiln_cli_buffers_free(&io);
    free(plain);
    kiln_cli_model_close(&cm);
    return rc;
}
