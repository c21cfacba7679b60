/* tests/codegen/test_guard_pages.c: random models (tests/random_model.h)
 * through the pass pipeline (layout auto, as kiln compile) and the JIT,
 * each run with every input, output and the caller's workspace against
 * PROT_NONE pages (guard_mem.h) at batch 1, 3 and 17 on 1 and 2 threads;
 * the outputs must equal a run with ordinary buffers bit for bit. A read or
 * write outside a buffer ends the test with SIGSEGV, after the line naming
 * the seed. The examples get the same check as objects (guard_examples.sh).
 *
 *   test_guard_pages [--seeds N] [--start S]      default: seeds 1..40 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/codegen/codegen.h"
#include "compiler/frontend/frontend.h"
#include "compiler/passes/passes.h"
#include "guard_mem.h"
#include "tests/random_model.h"

typedef struct jit_ctx {
    kiln_cg_entry e;
} jit_ctx;

static kiln_status jit_run(void *ctx, int64_t batch, int threads, void *ws, size_t ws_size, const float *const *in,
                           float *const *out)
{
    jit_ctx *c = ctx;
    kiln_options o = KILN_OPTIONS_INIT;
    o.num_threads = threads;
    o.workspace = ws;
    o.workspace_size = ws_size;
    void *m = NULL;
    kiln_status st = c->e.create(&m, &o);
    if (st == KILN_OK)
        st = c->e.run_array(m, batch, in, out);
    c->e.destroy(m);
    return st;
}

int main(int argc, char **argv)
{
    unsigned long long start = 1, count = 40;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc)
            count = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--start") == 0 && i + 1 < argc)
            start = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: %s [--seeds N] [--start S]\n", argv[0]);
            return 2;
        }
    }
    static const int64_t batches[] = {1, 3, 17};
    static const int threads[] = {1, 2};
    int failures = 0;
    for (unsigned long long s = start; s < start + count; s++) {
        char label[64];
        snprintf(label, sizeof label, "random model seed %llu", s);
        printf("%s\n", label);
        fflush(stdout);
        char *text = rm_generate(s, NULL, NULL);
        kiln_diag d;
        kiln_diag_init(&d);
        kiln_graph *g = NULL;
        kiln_cg_module *m = NULL;
        kiln_cg_jit *j = NULL;
        jit_ctx c;
        kiln_cg_options o = KILN_CG_OPTIONS_INIT;
        o.jit = true;
        kiln_target target;
        bool ok = text && kiln_frontend_load_yaml_text(text, strlen(text), "guard.yaml", &g, &d) == KILN_OK &&
                  kiln_cg_target_for_options(&o, &target, &d) == KILN_OK;
        if (ok) {
            kiln_pipeline_options po = {.threads_hint = 4, .target = &target, .layout_block = kiln_target_lanes(&target)};
            ok = kiln_pipeline_run(g, &po, &d) == KILN_OK && kiln_cg_compile(g, &o, &m, &d) == KILN_OK &&
                 kiln_cg_jit_create(m, &j, &d) == KILN_OK && kiln_cg_jit_entry(j, &c.e, &d) == KILN_OK;
        }
        if (!ok) {
            fprintf(stderr, "%s: could not be compiled\n", label);
            kiln_diag_print(&d, stderr);
            failures++;
        } else {
            failures += guard_check_model(c.e.info(), c.e.workspace_size, jit_run, &c, batches, 3, threads, 2, label);
        }
        kiln_cg_jit_destroy(j);
        kiln_cg_module_destroy(m);
        kiln_graph_destroy(g);
        kiln_diag_release(&d);
        free(text);
    }
    printf("guard pages: %llu random models, batches 1/3/17, threads 1/2, 3 placements: %d failures\n", count,
           failures);
    return failures ? 1 : 0;
}
