/* compiler/driver/jit_model.c: what kiln run, check and bench share: a model
 * compiled by the code generator and loaded into this process through the
 * JIT, and deterministic random inputs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "compiler/passes/passes.h"

int kiln_cli_check_passes(const char *cmd, const char *passes)
{
    if (strcmp(passes, "all") != 0 && strcmp(passes, "none") != 0)
        return kiln_cli_usage_error(cmd, "--passes must be 'all' or 'none', got '%s'", passes);
    return 0;
}

int kiln_cli_optimize(kiln_graph *g, const char *cmd, const char *passes, int64_t threads)
{
    if (passes && strcmp(passes, "none") == 0)
        return 0;
    if (threads <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores > 0 ? cores : 1;
    }
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_pipeline_options o = {.verify_each = KILN_PIPELINE_VERIFY_DEFAULT, .threads_hint = (int)threads};
    kiln_status st = kiln_pipeline_run(g, &o, &d);
    kiln_diag_print(&d, stderr);
    kiln_diag_release(&d);
    if (st != KILN_OK)
        return kiln_cli_error(cmd, "optimizing '%s' failed: %s", g->name, kiln_status_string(st));
    return 0;
}

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
    kiln_status st = kiln_cg_compile(g, &o, &jm->module, &d);
    if (st == KILN_OK)
        st = kiln_cg_jit_create(jm->module, &jm->jit, &d);
    if (st == KILN_OK)
        st = kiln_cg_jit_entry(jm->jit, &jm->e, &d);
    kiln_diag_print(&d, stderr);
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
