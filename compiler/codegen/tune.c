/* compiler/codegen/tune.c: kiln compile --tune. For each layer that has two
 * implementations (the generated packed GEMM and OpenBLAS sgemm: dense and
 * 1x1 convolutions), the layer alone is JIT-compiled both ways and timed on
 * this machine at the given batch and thread count; the faster is used. The
 * layer's graph is built anew: its data operands become model inputs, its
 * parameters are borrowed (their data stays the caller's graph's). */
#define _POSIX_C_SOURCE 200809L
#include "cg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KILN_MAX_INPUTS_TUNE 8 /* operands of a dense or conv2d node, with room */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The node alone as a graph; NULL when out of memory or on a shape error. */
static kiln_graph *single_node(const kiln_graph *g, const kiln_node *n)
{
    kiln_graph *t = kiln_graph_create("kiln_tune");
    if (!t)
        return NULL;
    t->batch_name = g->batch_name;
    kiln_id in[KILN_MAX_INPUTS_TUNE];
    if (n->n_inputs > KILN_MAX_INPUTS_TUNE)
        goto fail;
    uint32_t data = kiln_node_data_inputs(g, n);
    for (uint32_t k = 0; k < n->n_inputs; k++) {
        const kiln_value *v = &g->values[n->inputs[k]];
        char name[32];
        snprintf(name, sizeof name, "%s%u", k < data ? "x" : "p", k);
        if (k < data && v->kind != KILN_VALUE_PARAM) {
            in[k] = kiln_graph_add_input(t, name, &v->type, (kiln_loc){0});
        } else {
            kiln_param p = v->param;
            if (v->kind != KILN_VALUE_PARAM || !kiln_param_readable(v))
                goto fail;
            if (p.data)
                p.source = KILN_PARAM_INLINE; /* borrowed: g outlives t */
            else
                p.key = p.key ? p.key : v->name; /* RANDOM, generated when read: the same values under any name */
            in[k] = kiln_graph_add_param(t, name, &v->type, &p, (kiln_loc){0});
        }
        if (in[k] == KILN_NO_ID)
            goto fail;
    }
    kiln_id id = kiln_graph_add_node(t, n->op, in, n->n_inputs, "y", n->layer, (kiln_loc){0});
    if (id == KILN_NO_ID)
        goto fail;
    kiln_node *tn = kiln_graph_node(t, id);
    for (int a = 0; a < KILN_ATTR_COUNT; a++)
        if (kiln_node_has(n, (kiln_attr_id)a))
            kiln_node_set_attr(tn, (kiln_attr_id)a, &n->attrs[a]);
    char err[256];
    if (kiln_ir_infer_node(t, id, err, sizeof err) != KILN_OK ||
        kiln_graph_add_output(t, kiln_graph_node(t, id)->output) != KILN_OK)
        goto fail;
    return t;
fail:
    kiln_graph_destroy(t);
    return NULL;
}

static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Median seconds of one run of graph t compiled with `impl`; < 0 on failure. */
static double time_impl(const kiln_graph *t, const kiln_cg_options *base, kiln_cg_gemm_impl impl, int64_t batch,
                        int threads, int iterations, kiln_diag *d)
{
    kiln_cg_options o = *base;
    o.jit = true;
    o.expose_values = false;
    o.gemm_impl = &impl; /* t has one node */
    kiln_cg_module *m = NULL;
    kiln_cg_jit *j = NULL;
    kiln_cg_entry e;
    void *inst = NULL;
    double result = -1.0;
    float *bufs[KILN_MAX_INPUTS_TUNE + 1] = {NULL};
    double *times = malloc((size_t)iterations * sizeof *times);
    if (!times || kiln_cg_compile(t, &o, &m, d) != KILN_OK || kiln_cg_jit_create(m, &j, d) != KILN_OK ||
        kiln_cg_jit_entry(j, &e, d) != KILN_OK)
        goto done;
    kiln_options ko = KILN_OPTIONS_INIT;
    ko.num_threads = threads;
    if (e.create(&inst, &ko) != KILN_OK)
        goto done;
    size_t n_in = t->n_inputs;
    uint64_t seed = 12345;
    for (size_t k = 0; k <= n_in; k++) {
        kiln_id v = k < n_in ? t->inputs[k] : t->outputs[0];
        int64_t n = kiln_shape_elements(&t->values[v].type.shape, batch);
        if (n < 0 || !(bufs[k] = malloc((size_t)(n ? n : 1) * sizeof(float))))
            goto done;
        for (int64_t i = 0; i < n; i++)
            bufs[k][i] = (float)((double)(mix(&seed) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
    float *out = bufs[n_in];
    for (int i = 0; i < 3; i++)
        if (e.run_array(inst, batch, (const float *const *)bufs, &out) != KILN_OK)
            goto done;
    for (int i = 0; i < iterations; i++) {
        double s = now_s();
        if (e.run_array(inst, batch, (const float *const *)bufs, &out) != KILN_OK)
            goto done;
        times[i] = now_s() - s;
    }
    qsort(times, (size_t)iterations, sizeof *times, cmp_double);
    result = times[iterations / 2];
done:
    if (inst)
        e.destroy(inst);
    kiln_cg_jit_destroy(j);
    kiln_cg_module_destroy(m);
    for (size_t k = 0; k <= KILN_MAX_INPUTS_TUNE; k++)
        free(bufs[k]);
    free(times);
    return result;
}

kiln_status kiln_cg_tune(const kiln_graph *g, const kiln_cg_options *opt, int64_t batch, int threads, int iterations,
                         kiln_cg_gemm_impl *choice, double *t_generated, double *t_blas, kiln_diag *d)
{
    if (!g || !choice || !d || batch < 1 || iterations < 1)
        return KILN_ERR_INVALID_ARGUMENT;
    kiln_cg_options base = KILN_CG_OPTIONS_INIT;
    if (opt)
        base = *opt;
    bool batched = false;
    for (size_t i = 0; i < g->n_inputs; i++)
        batched |= g->values[g->inputs[i]].type.shape.batched;
    if (!batched)
        batch = 1;
    for (size_t i = 0; i < g->n_nodes; i++) {
        choice[i] = KILN_CG_GEMM_AUTO;
        if (t_generated)
            t_generated[i] = 0;
        if (t_blas)
            t_blas[i] = 0;
        const kiln_node *n = &g->nodes[i];
        if (!kiln_cg_gemm_candidate(g, n))
            continue;
        kiln_graph *t = single_node(g, n);
        if (!t) {
            kiln_diag_error(d, n->loc, "tune: layer '%s': cannot build it alone", n->layer ? n->layer : "?");
            return KILN_ERR_INTERNAL;
        }
        double tg = time_impl(t, &base, KILN_CG_GEMM_GENERATED, batch, threads, iterations, d);
        double tb = time_impl(t, &base, KILN_CG_GEMM_BLAS, batch, threads, iterations, d);
        kiln_graph_destroy(t);
        if (tg < 0 || tb < 0)
            return kiln_diag_has_errors(d) ? KILN_ERR_INTERNAL : KILN_ERR_OUT_OF_MEMORY;
        choice[i] = tb < tg ? KILN_CG_GEMM_BLAS : KILN_CG_GEMM_GENERATED;
        if (t_generated)
            t_generated[i] = tg;
        if (t_blas)
            t_blas[i] = tb;
    }
    return KILN_OK;
}
