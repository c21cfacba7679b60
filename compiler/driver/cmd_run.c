/* compiler/driver/cmd_run.c: `kiln run MODEL --interp --input NAME=FILE.npy …
 * --output DIR`: evaluates a model on NumPy inputs and writes its outputs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "compiler/interp/interp.h"
#include "guard.h"
#include "npy.h"
#include "outputs.h"

static const char help[] =
    "usage: kiln run MODEL --input NAME=FILE.npy ... --output DIR [--interp] [--threads T]\n"
    "                [--passes all|none] [--winograd auto|off|f2|f4] [--layout auto|plain]\n"
    "                [--precision P]\n"
    "                [--calibration FILE|DIR|random] [--calibration-method percentile|minmax]\n"
    "\n"
    "Evaluates MODEL (.yaml or .kir) on the given inputs and writes one\n"
    "DIR/<output name>.npy (float32) per model output. By default the model is\n"
    "compiled for this machine and run in this process (LLVM's JIT; nothing is\n"
    "written but the outputs).\n"
    "\n"
    "  --interp              use the reference interpreter (double precision)\n"
    "  --threads T           threads of the compiled model (default: one per core)\n"
    "  --input NAME=FILE     a float32, C-order .npy file for model input NAME;\n"
    "                        every input must be given; the batch size is the\n"
    "                        first dimension of the inputs\n"
    "  --output DIR          where to write the outputs (created if missing)\n"
    "  --passes all          run the optimization passes before compiling (default;\n"
    "                        'none': compile the model as loaded). The interpreter\n"
    "                        always runs the model as loaded.\n"
    "  --winograd MODE       3x3 stride-1 convolutions: auto (default), off, f2, f4\n"
    "                        (docs/codegen.md)\n"
    "  --precision P         the model's default precision (f32, bf16, f16, int8, auto); a\n"
    "                        layer's own precision: key wins (docs/precision.md)\n"
    "  --calibration DATA    calibration samples (a safetensors file or a folder of\n"
    "                        NAME.npy, one F32 tensor per input, or 'random'), checked against\n"
    "                        the inputs; --precision int8 needs it (docs/precision.md)\n"
    "  --layout auto         (default) channel-blocked activations (nchw8c on AVX2)\n"
    "                        where the layout pass finds they pay (docs/passes.md);\n"
    "                        'plain': NCHW\n";

typedef struct input_arg {
    const char *name;
    const char *path;
} input_arg;

/* Checks an array against a model input's shape; sets *batch from a batched
 * input's first dimension (all batched inputs must agree). */
static int check_input(const kiln_graph *g, kiln_id id, const kiln_npy *arr, const char *path, int64_t *batch)
{
    const kiln_value *v = kiln_graph_value(g, id);
    const kiln_shape *s = &v->type.shape;
    char want[160];
    kiln_shape_format(s, g->batch_name, want, sizeof want);
    bool ok = arr->rank == s->rank;
    for (int i = 0; ok && i < s->rank; i++)
        if (!(i == 0 && s->batched) && arr->dims[i] != s->dims[i])
            ok = false;
    if (ok && s->batched && arr->dims[0] < 1)
        ok = false;
    if (!ok) {
        char have[160] = "[";
        for (int i = 0; i < arr->rank; i++) {
            size_t n = strlen(have);
            snprintf(have + n, sizeof have - n, "%s%lld", i ? "," : "", (long long)arr->dims[i]);
        }
        strncat(have, "]", sizeof have - strlen(have) - 1);
        return kiln_cli_error("run", "%s: input '%s' expects shape %s, the file has %s", path, v->name, want, have);
    }
    if (s->batched) {
        if (*batch > 0 && *batch != arr->dims[0])
            return kiln_cli_error("run", "%s: batch size %lld differs from another input's %lld", path,
                                  (long long)arr->dims[0], (long long)*batch);
        *batch = arr->dims[0];
    }
    return 0;
}

/* DIR/NAME.npy for output `index`; malloc'd, NULL after an error. */
static char *output_path(const kiln_graph *g, size_t index, const char *dir)
{
    const kiln_value *v = kiln_graph_value(g, g->outputs[index]);
    if (strchr(v->name, '/')) {
        kiln_cli_error("run", "output name '%s' cannot be a file name", v->name);
        return NULL;
    }
    size_t plen = strlen(dir) + strlen(v->name) + 8;
    char *path = malloc(plen);
    if (!path)
        kiln_cli_error("run", "out of memory");
    else
        snprintf(path, plen, "%s/%s.npy", dir, v->name);
    return path;
}

/* Writes output `index` (float32, the run's batch) to write_path; messages
 * name path. */
static int write_output(const kiln_graph *g, const float *y, size_t index, int64_t batch, const char *path,
                        const char *write_path)
{
    const kiln_value *v = kiln_graph_value(g, g->outputs[index]);
    if (!y)
        return kiln_cli_error("run", "output '%s' was not computed", v->name);
    int64_t dims[KILN_MAX_RANK];
    const kiln_shape *s = &v->type.shape;
    for (int i = 0; i < s->rank; i++)
        dims[i] = (i == 0 && s->batched) ? batch : s->dims[i];
    char err[512] = "";
    kiln_status st = kiln_npy_write_to(path, write_path, s->rank, dims, y, err, sizeof err);
    if (st != KILN_OK)
        return kiln_cli_error("run", "%s", err[0] ? err : kiln_status_string(st));
    return 0;
}

/* `wrote PATH`; an output of at most 64 elements is shown too, with the
 * largest element of each row: a classifier's answer is visible without
 * reading the file. */
static void print_output(const kiln_graph *g, const float *y, size_t count, size_t index, const char *path)
{
    const kiln_shape *s = &kiln_graph_value(g, g->outputs[index])->type.shape;
    printf("wrote %s", path);
    if (count <= 64 && count > 0) {
        int64_t row = s->dims[s->rank - 1] > 0 ? s->dims[s->rank - 1] : 1;
        for (size_t i = 0; i < count; i++) {
            if (i % (size_t)row == 0)
                printf("\n  [");
            printf("%s%.6g", i % (size_t)row ? ", " : "", (double)y[i]);
            if ((i + 1) % (size_t)row == 0) {
                size_t best = i + 1 - (size_t)row;
                for (size_t k = best; k <= i; k++)
                    if (y[k] > y[best])
                        best = k;
                printf("]  argmax %zu", best - (i + 1 - (size_t)row));
            }
        }
    }
    printf("\n");
}

int kiln_cmd_run(int argc, char **argv)
{
    kiln_args a = {.argc = argc, .argv = argv, .i = 1, .cmd = "run"};
    const char *outdir = NULL;
    bool interp = false;
    kiln_cli_options o;
    kiln_cli_options_init(&o, "run", help,
                          KILN_CLI_TAKES_PASSES | KILN_CLI_TAKES_THREADS | KILN_CLI_TAKES_WINOGRAD | KILN_CLI_TAKES_LAYOUT |
                              KILN_CLI_TAKES_PRECISION | KILN_CLI_TAKES_CALIBRATION);
    input_arg *inputs = calloc((size_t)argc, sizeof *inputs);
    int n_inputs = 0, rc = 2;
    /* The .npy outputs go to temporary files renamed into DIR at the end
     * (outputs.h); none may be an input. */
    kiln_outputs files;
    kiln_outputs_init(&files, "run");
    char **paths = NULL;
    if (!inputs)
        return kiln_cli_error("run", "out of memory");
    for (; a.i < argc; a.i++) {
        const char *v;
        int r = kiln_cli_options_take(&a, &o);
        if (r == KILN_CLI_TAKEN)
            continue;
        if (r != KILN_CLI_OTHER) {
            rc = r;
            goto done;
        }
        if ((r = kiln_args_flag(&a, "--interp"))) {
            if (r < 0)
                goto done;
            interp = true;
            continue;
        }
        if ((r = kiln_args_value(&a, "--input", &v))) {
            if (r < 0)
                goto done;
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || !eq[1]) {
                kiln_cli_usage_error("run", "--input expects NAME=FILE.npy, got '%s'", v);
                goto done;
            }
            inputs[n_inputs].name = strndup(v, (size_t)(eq - v));
            inputs[n_inputs].path = eq + 1;
            if (!inputs[n_inputs].name) {
                rc = kiln_cli_error("run", "out of memory");
                goto done;
            }
            n_inputs++;
            continue;
        }
        if ((r = kiln_args_value(&a, "--output", &outdir))) {
            if (r < 0)
                goto done;
            continue;
        }
        rc = kiln_args_unknown(&a);
        goto done;
    }
    if ((rc = kiln_cli_options_check(&o)) != 0)
        goto done;
    if (!outdir) {
        rc = kiln_cli_usage_error("run", "--output DIR is required");
        goto done;
    }
    /* The interpreter runs the model as loaded; compiled code, optimized. */
    if (interp)
        o.passes = "none";
    if ((rc = kiln_outputs_input(&files, o.model, "the model", KILN_OUT_USAGE)) != 0)
        goto done;
    for (int i = 0; i < n_inputs; i++)
        if ((rc = kiln_outputs_input(&files, inputs[i].path, "an --input file", KILN_OUT_USAGE)) != 0)
            goto done;
    kiln_cli_model cm;
    if ((rc = kiln_cli_model_open(&cm, &o)) != 0)
        goto done;
    rc = 1;
    kiln_graph *g = cm.g;
    for (size_t i = 0; i < g->n_weight_files; i++)
        if (kiln_outputs_input(&files, g->weight_files[i], "a weights file of the model", 0) != 0)
            goto model;
    kiln_npy *arrays = calloc(g->n_inputs ? g->n_inputs : 1, sizeof *arrays);
    kiln_interp *it = NULL;
    int64_t batch = 0;
    if (!arrays) {
        kiln_cli_error("run", "out of memory");
        goto cleanup;
    }
    for (int i = 0; i < n_inputs; i++) {
        kiln_id id = kiln_graph_find_value(g, inputs[i].name);
        size_t k = 0;
        while (k < g->n_inputs && g->inputs[k] != id)
            k++;
        if (id == KILN_NO_ID || k == g->n_inputs) {
            kiln_cli_error("run", "the model has no input named '%s'", inputs[i].name);
            goto cleanup;
        }
        if (arrays[k].data) {
            kiln_cli_error("run", "input '%s' is given twice", inputs[i].name);
            goto cleanup;
        }
        char err[512];
        if (kiln_npy_read(inputs[i].path, &arrays[k], err, sizeof err) != KILN_OK) {
            kiln_cli_error("run", "%s", err);
            goto cleanup;
        }
        if (check_input(g, id, &arrays[k], inputs[i].path, &batch))
            goto cleanup;
    }
    for (size_t k = 0; k < g->n_inputs; k++)
        if (!arrays[k].data) {
            kiln_cli_error("run", "input '%s' is not given (--input %s=FILE.npy)",
                           kiln_graph_value(g, g->inputs[k])->name, kiln_graph_value(g, g->inputs[k])->name);
            goto cleanup;
        }
    if (batch == 0)
        batch = 1;
    if (kiln_cli_budget_workspace(g, "run", batch, interp ? KILN_CLI_EVAL_INTERP : KILN_CLI_EVAL_COMPILED) != 0)
        goto cleanup;
    /* Every output's file is checked and created before the evaluation. */
    if (kiln_outputs_make_dir(&files, outdir) != 0)
        goto cleanup;
    const kiln_out_file **written = calloc(g->n_outputs ? g->n_outputs : 1, sizeof *written);
    paths = calloc(g->n_outputs ? g->n_outputs : 1, sizeof *paths);
    if (!written || !paths) {
        free(written);
        kiln_cli_error("run", "out of memory");
        goto cleanup;
    }
    for (size_t k = 0; k < g->n_outputs; k++)
        if (!(paths[k] = output_path(g, k, outdir)) ||
            kiln_outputs_add(&files, paths[k], "a model output's file", 0, &written[k]) != 0) {
            free(written);
            goto cleanup;
        }
    float **outs = calloc(g->n_outputs ? g->n_outputs : 1, sizeof *outs);
    size_t *counts = calloc(g->n_outputs ? g->n_outputs : 1, sizeof *counts);
    if (!outs || !counts) {
        kiln_cli_error("run", "out of memory");
        goto outputs;
    }
    for (size_t k = 0; k < g->n_outputs; k++) {
        counts[k] = kiln_value_elements(g, g->outputs[k], batch);
        if (!(outs[k] = malloc((counts[k] ? counts[k] : 1) * sizeof(float)))) {
            kiln_cli_error("run", "out of memory");
            goto outputs;
        }
    }
    kiln_cli_stage("run", -1, "inputs read: batch %lld", (long long)batch);
    double t_eval = kiln_cli_seconds();
    if (interp) {
        kiln_status st = kiln_interp_create(g, batch, NULL, &it);
        for (size_t k = 0; st == KILN_OK && k < g->n_inputs; k++)
            st = kiln_interp_set_input(it, k, arrays[k].data);
        if (st != KILN_OK) {
            kiln_cli_error("run", "%s", kiln_status_string(st));
            goto outputs;
        }
        st = kiln_cli_interp_run(it);
        if (st != KILN_OK) {
            kiln_cli_error("run", "evaluation failed: %s", kiln_status_string(st));
            goto outputs;
        }
        for (size_t k = 0; k < g->n_outputs; k++) {
            size_t count = 0;
            const double *y = kiln_interp_output(it, k, &count);
            for (size_t i = 0; y && i < count && i < counts[k]; i++)
                outs[k][i] = (float)y[i];
        }
        kiln_cli_stage("run", kiln_cli_seconds() - t_eval, "reference interpreter");
    } else {
        /* Compiled code, through the JIT. */
        kiln_jit_model jm = {0};
        if (kiln_jit_model_open(&jm, g, "run", &o.cg) != 0)
            goto outputs;
        char why[512] = "";
        kiln_options ko = KILN_OPTIONS_INIT;
        ko.num_threads = (int)o.threads;
        ko.error = why;
        ko.error_size = sizeof why;
        void *inst = NULL;
        const float **ins = calloc(g->n_inputs ? g->n_inputs : 1, sizeof *ins);
        double t_create = kiln_cli_seconds();
        kiln_status st = ins ? jm.e.create(&inst, &ko) : KILN_ERR_OUT_OF_MEMORY;
        for (size_t k = 0; ins && k < g->n_inputs; k++)
            ins[k] = arrays[k].data;
        if (st == KILN_OK) {
            double t_run = kiln_cli_seconds();
            kiln_cli_stage("run", t_run - t_create, "create the instance");
            st = jm.e.run_array(inst, batch, ins, outs);
            if (st != KILN_OK)
                snprintf(why, sizeof why, "%s", jm.e.last_error(inst));
            else
                kiln_cli_stage("run", kiln_cli_seconds() - t_run, "run the compiled model");
        }
        if (inst)
            jm.e.destroy(inst);
        free(ins);
        kiln_jit_model_close(&jm);
        if (st != KILN_OK) {
            kiln_cli_error("run", "running the compiled model failed: %s%s%s", kiln_status_string(st), why[0] ? ": " : "",
                           why);
            goto outputs;
        }
    }
    double t_write = kiln_cli_seconds();
    for (size_t k = 0; k < g->n_outputs; k++)
        if (write_output(g, outs[k], k, batch, paths[k], written[k]->tmp))
            goto outputs;
    /* Devices first, then the report, then the files take their places. */
    if (kiln_outputs_write_devices(&files) != 0)
        goto outputs;
    for (size_t k = 0; k < g->n_outputs; k++)
        print_output(g, outs[k], counts[k], k, paths[k]);
    if (kiln_guard_flush_stdout("run") != 0 || kiln_outputs_commit(&files) != 0)
        goto outputs;
    kiln_cli_stage("run", kiln_cli_seconds() - t_write, "write %zu output%s to %s", g->n_outputs,
                   g->n_outputs == 1 ? "" : "s", outdir);
    rc = 0;
outputs:
    free(written);
    for (size_t k = 0; outs && k < g->n_outputs; k++)
        free(outs[k]);
    free(outs);
    free(counts);
cleanup:
    kiln_interp_destroy(it);
    for (size_t k = 0; arrays && k < g->n_inputs; k++)
        kiln_npy_free(&arrays[k]);
    free(arrays);
    for (size_t k = 0; paths && k < g->n_outputs; k++)
        free(paths[k]);
model:
    kiln_cli_model_close(&cm);
done:
    free(paths);
    kiln_outputs_release(&files);
    for (int i = 0; i < n_inputs; i++)
        free((void *)inputs[i].name);
    free(inputs);
    return rc;
}
