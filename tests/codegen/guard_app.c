/* tests/codegen/guard_app.c: the guard-page check (guard_mem.h) on a model
 * compiled to an object, through its generated header only; built by
 * guard_examples.sh for every example as
 *
 *   cc -DKILN_MODEL=lenet -include lenet.h guard_app.c guard_mem.c lenet.o -lkiln_rt
 *
 * Runs batch 1, 3 and 17 (1 for fixed shapes) on 1 and 2 threads; status 0
 * when every guarded run equals the plain one bit for bit. */
#include <stdio.h>

#include "guard_mem.h"

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define F(s) CAT(KILN_MODEL, s)
#define NIN CAT(KILN_MODEL, _NUM_INPUTS)
#define NOUT CAT(KILN_MODEL, _NUM_OUTPUTS)

#if NIN == 1
#define IN_ARGS in[0]
#elif NIN == 2
#define IN_ARGS in[0], in[1]
#elif NIN == 3
#define IN_ARGS in[0], in[1], in[2]
#elif NIN == 4
#define IN_ARGS in[0], in[1], in[2], in[3]
#else
#error "guard_app handles 1 to 4 inputs"
#endif
#if NOUT == 1
#define OUT_ARGS out[0]
#elif NOUT == 2
#define OUT_ARGS out[0], out[1]
#elif NOUT == 3
#define OUT_ARGS out[0], out[1], out[2]
#elif NOUT == 4
#define OUT_ARGS out[0], out[1], out[2], out[3]
#else
#error "guard_app handles 1 to 4 outputs"
#endif

static kiln_status aot_run(void *ctx, int64_t batch, int threads, void *ws, size_t ws_size, const float *const *in,
                           float *const *out)
{
    (void)ctx;
    kiln_options o = KILN_OPTIONS_INIT;
    o.num_threads = threads;
    o.workspace = ws;
    o.workspace_size = ws_size;
    KILN_MODEL *m = NULL;
    kiln_status st = F(_create)(&m, &o);
    if (st == KILN_OK)
        st = F(_run)(m, batch, IN_ARGS, OUT_ARGS);
    F(_destroy)(m);
    return st;
}

int main(void)
{
    static const int64_t batches[] = {1, 3, 17};
    static const int threads[] = {1, 2};
    const kiln_model_info *info = F(_info)();
    int failures = guard_check_model(info, F(_workspace_size), aot_run, NULL, batches, 3, threads, 2, info->name);
    printf("%s: guard pages, batches 1/3/17, threads 1/2, 3 placements: %d failures\n", info->name, failures);
    return failures ? 1 : 0;
}
