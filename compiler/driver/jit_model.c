/* compiler/driver/jit_model.c: what kiln run, check and bench share: a model
 * compiled by the code generator and loaded into this process through the
 * JIT, the reference interpreter, and buffers with deterministic random
 * inputs. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

int kiln_jit_model_open(kiln_jit_model *jm, const kiln_graph *g, const char *cmd, const kiln_cg_options *opt)
{
    kiln_diag d;
    kiln_diag_init(&d);
    jm->module = NULL;
    jm->jit = NULL;
    kiln_cg_options o = KILN_CG_OPTIONS_INIT;
    if (opt)
        o = *opt;
    o.jit = true;
    double t0 = kiln_cli_seconds();
    kiln_status st = kiln_cg_compile(g, &o, &jm->module, &d);
    double t1 = kiln_cli_seconds();
    if (st == KILN_OK) {
        kiln_cli_stage(cmd, t1 - t0, "code generation (LLVM IR, optimization)");
        st = kiln_cg_jit_create(jm->module, &jm->jit, &d);
    }
    if (st == KILN_OK)
        st = kiln_cg_jit_entry(jm->jit, &jm->e, &d);
    if (st == KILN_OK)
        kiln_cli_stage(cmd, kiln_cli_seconds() - t1, "JIT: machine code for %s", kiln_cg_target_description(jm->module));
    char prefix[64];
    snprintf(prefix, sizeof prefix, "kiln %s", cmd);
    kiln_diag_print_prefixed(&d, stderr, prefix);
    kiln_diag_release(&d);
    if (st != KILN_OK) {
        kiln_jit_model_close(jm);
        return kiln_cli_error(cmd, "compiling '%s' failed: %s", g->name, kiln_status_string(st));
    }
    return 0;
}

void kiln_jit_model_close(kiln_jit_model *jm)
{
    kiln_cg_jit_destroy(jm->jit);
    kiln_cg_module_destroy(jm->module);
    jm->jit = NULL;
    jm->module = NULL;
}

kiln_status kiln_cli_interp_run(kiln_interp *it)
{
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_status st = kiln_interp_run(it, &d);
    kiln_diag_print(&d, stderr);
    kiln_diag_release(&d);
    return st;
}

void kiln_fill_random(float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        x[i] = (float)(2.0 * ((double)(z >> 11) / 9007199254740992.0) - 1.0);
    }
}

size_t kiln_value_elements(const kiln_graph *g, kiln_id v, int64_t batch)
{
    int64_t n = kiln_shape_elements(&kiln_graph_value(g, v)->type.shape, batch);
    return n < 0 ? 0 : (size_t)n;
}

kiln_status kiln_cli_buffers_alloc(kiln_cli_buffers *b, const kiln_graph *g, int64_t batch, uint64_t seed)
{
    *b = (kiln_cli_buffers){0};
    b->in = calloc(g->n_inputs + 1, sizeof *b->in);
    b->out = calloc(g->n_outputs + 1, sizeof *b->out);
    if (!b->in || !b->out)
        return KILN_ERR_OUT_OF_MEMORY;
    for (; b->n_in < g->n_inputs; b->n_in++) {
        size_t n = kiln_value_elements(g, g->inputs[b->n_in], batch);
        if (!(b->in[b->n_in] = malloc((n ? n : 1) * sizeof(float))))
            return KILN_ERR_OUT_OF_MEMORY;
        kiln_fill_random(b->in[b->n_in], n, seed + b->n_in);
    }
    for (; b->n_out < g->n_outputs; b->n_out++) {
        size_t n = kiln_value_elements(g, g->outputs[b->n_out], batch);
        if (!(b->out[b->n_out] = malloc((n ? n : 1) * sizeof(float))))
            return KILN_ERR_OUT_OF_MEMORY;
    }
    return KILN_OK;
}

void kiln_cli_buffers_free(kiln_cli_buffers *b)
{
    for (size_t k = 0; b->in && k < b->n_in; k++)
        free(b->in[k]);
    for (size_t k = 0; b->out && k < b->n_out; k++)
        free(b->out[k]);
    free(b->in);
    free(b->out);
    *b = (kiln_cli_buffers){0};
}
