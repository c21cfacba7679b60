/* tests/codegen/cg_util.c: see cg_util.h. */
#include "cg_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/interp/interp.h"

static uint64_t splitmix(uint64_t *s)
{
    uint64_t x = (*s += 0x9E3779B97F4A7C15ull);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

void tg_fill(float *x, size_t n, uint64_t seed, double lo, double hi)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(lo + (hi - lo) * ((double)(splitmix(&s) >> 11) / 9007199254740992.0));
}

kiln_graph *tg_new(const char *name)
{
    kiln_graph *g = kiln_graph_create(name);
    if (g)
        g->batch_name = kiln_arena_strdup(&g->arena, "batch");
    return g;
}

static kiln_type f32_type(int rank, const int64_t *dims)
{
    kiln_type t;
    memset(&t, 0, sizeof t);
    t.dtype = KILN_F32;
    t.shape.rank = rank;
    for (int i = 0; i < rank; i++)
        t.shape.dims[i] = dims[i] < 0 ? KILN_DIM_BATCH : dims[i];
    t.shape.batched = rank > 0 && dims[0] < 0;
    return t;
}

kiln_id tg_input(kiln_graph *g, const char *name, int rank, const int64_t *dims)
{
    kiln_type t = f32_type(rank, dims);
    return kiln_graph_add_input(g, name, &t, (kiln_loc){0});
}

kiln_id tg_param(kiln_graph *g, const char *name, int rank, const int64_t *dims, double lo, double hi)
{
    kiln_type t = f32_type(rank, dims);
    int64_t n = kiln_shape_elements(&t.shape, 1);
    float *data = kiln_arena_alloc_aligned(&g->arena, (size_t)(n ? n : 1) * sizeof(float));
    if (!data)
        return KILN_NO_ID;
    uint64_t seed = 1469598103934665603ull;
    for (const char *p = name; *p; p++)
        seed = (seed ^ (unsigned char)*p) * 1099511628211ull;
    tg_fill(data, (size_t)n, seed, lo, hi);
    kiln_param p;
    memset(&p, 0, sizeof p);
    p.source = KILN_PARAM_INLINE;
    p.data_dtype = KILN_F32;
    p.data = data;
    return kiln_graph_add_param(g, name, &t, &p, (kiln_loc){0});
}

static kiln_id last_node = KILN_NO_ID;

kiln_id tg_node(kiln_graph *g, kiln_op op, const kiln_id *inputs, uint32_t n_inputs, const char *out)
{
    for (uint32_t i = 0; i < n_inputs; i++)
        if (inputs[i] == KILN_NO_ID)
            return KILN_NO_ID;
    last_node = kiln_graph_add_node(g, op, inputs, n_inputs, out, out, (kiln_loc){0});
    return last_node == KILN_NO_ID ? KILN_NO_ID : kiln_graph_node(g, last_node)->output;
}

kiln_node *tg_last(kiln_graph *g) { return kiln_graph_node(g, last_node); }

bool tg_finish(kiln_graph *g)
{
    kiln_node_apply_defaults(tg_last(g));
    char err[512];
    if (kiln_ir_infer_node(g, last_node, err, sizeof err) != KILN_OK) {
        fprintf(stderr, "tg_finish: %s: %s\n", tg_last(g)->layer, err);
        return false;
    }
    return true;
}

void tg_output(kiln_graph *g, kiln_id v) { kiln_graph_add_output(g, v); }

double tg_check_default(const kiln_graph *g)
{
    static const int64_t batches[] = {1, 3, 17};
    static const int threads[] = {1, 2, 3};
    return tg_check(g, NULL, batches, 3, threads, 3);
}

static size_t elems(const kiln_graph *g, kiln_id v, int64_t batch)
{
    int64_t n = kiln_shape_elements(&kiln_graph_value(g, v)->type.shape, batch);
    return n < 0 ? 0 : (size_t)n;
}

double tg_check(const kiln_graph *g, const kiln_cg_options *opt, const int64_t *batches, int n_batches,
                const int *threads, int n_threads)
{
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_cg_options o = KILN_CG_OPTIONS_INIT;
    if (opt)
        o = *opt;
    o.jit = true;
    kiln_cg_module *m = NULL;
    kiln_cg_jit *j = NULL;
    kiln_cg_entry e;
    double worst = 0.0;
    bool batched = false;
    for (size_t i = 0; i < g->n_inputs; i++)
        batched |= kiln_graph_value(g, g->inputs[i])->type.shape.batched;
    if (kiln_cg_compile(g, &o, &m, &d) != KILN_OK || kiln_cg_jit_create(m, &j, &d) != KILN_OK ||
        kiln_cg_jit_entry(j, &e, &d) != KILN_OK) {
        fprintf(stderr, "model '%s': compilation failed\n", g->name);
        kiln_diag_print(&d, stderr);
        worst = -1.0;
        goto done;
    }
    for (int bi = 0; bi < n_batches && worst >= 0; bi++) {
        int64_t batch = batched ? batches[bi] : 1;
        if (!batched && bi > 0)
            break;
        float **in = calloc(g->n_inputs + 1, sizeof *in);
        float **out = calloc(g->n_outputs + 1, sizeof *out), **first = calloc(g->n_outputs + 1, sizeof *first);
        kiln_interp *it = NULL;
        kiln_interp_create(g, batch, NULL, &it);
        for (size_t i = 0; i < g->n_inputs; i++) {
            size_t n = elems(g, g->inputs[i], batch);
            in[i] = malloc((n ? n : 1) * sizeof(float));
            tg_fill(in[i], n, 1000u * (uint64_t)batch + i, -2.0, 2.0);
            kiln_interp_set_input(it, i, in[i]);
        }
        kiln_diag_release(&d);
        kiln_diag_init(&d);
        if (kiln_interp_run(it, &d) != KILN_OK) {
            fprintf(stderr, "model '%s': the interpreter failed\n", g->name);
            kiln_diag_print(&d, stderr);
            worst = -1.0;
        }
        for (size_t k = 0; k < g->n_outputs; k++) {
            size_t n = elems(g, g->outputs[k], batch);
            out[k] = malloc((n ? n : 1) * sizeof(float));
            first[k] = malloc((n ? n : 1) * sizeof(float));
        }
        for (int ti = 0; ti < n_threads && worst >= 0; ti++) {
            kiln_options ko = KILN_OPTIONS_INIT;
            ko.num_threads = threads[ti];
            void *inst = NULL;
            kiln_status st = e.create(&inst, &ko);
            for (size_t k = 0; k < g->n_outputs; k++) {
                size_t n = elems(g, g->outputs[k], batch);
                for (size_t i = 0; i < n; i++)
                    out[k][i] = NAN;
            }
            if (st == KILN_OK)
                st = e.run_array(inst, batch, (const float *const *)in, out);
            e.destroy(inst);
            if (st != KILN_OK) {
                fprintf(stderr, "model '%s': run failed (batch %lld, %d threads): %s\n", g->name, (long long)batch,
                        threads[ti], kiln_status_string(st));
                worst = -1.0;
                break;
            }
            for (size_t k = 0; k < g->n_outputs; k++) {
                size_t n = elems(g, g->outputs[k], batch), count = 0;
                const double *ref = kiln_interp_output(it, k, &count);
                if (!ref || count != n) {
                    fprintf(stderr, "model '%s': output %zu: no reference\n", g->name, k);
                    worst = -1.0;
                    break;
                }
                double maxref = 0.0;
                for (size_t i = 0; i < n; i++)
                    if (isfinite(ref[i]) && fabs(ref[i]) > maxref)
                        maxref = fabs(ref[i]);
                for (size_t i = 0; i < n; i++) {
                    double a = out[k][i], b = ref[i], err;
                    if (isnan(b) || isnan(a))
                        err = isnan(a) && isnan(b) ? 0.0 : INFINITY;
                    else if (isinf(b) || isinf(a))
                        err = a == b ? 0.0 : INFINITY;
                    else {
                        double scale = fmax(fmax(fabs(b), 1e-2 * maxref), 1e-30);
                        err = fabs(a - b) / scale;
                    }
                    if (err > worst) {
                        if (err > 1e-4)
                            fprintf(stderr, "model '%s': output %zu[%zu] (batch %lld, %d threads): %.9g vs %.9g\n",
                                    g->name, k, i, (long long)batch, threads[ti], a, b);
                        worst = err;
                    }
                }
                if (ti == 0)
                    memcpy(first[k], out[k], n * sizeof(float));
                else if (memcmp(first[k], out[k], n * sizeof(float)) != 0) {
                    fprintf(stderr, "model '%s': output %zu differs between %d and %d threads\n", g->name, k,
                            threads[0], threads[ti]);
                    worst = INFINITY;
                }
            }
        }
        kiln_interp_destroy(it);
        for (size_t i = 0; i < g->n_inputs; i++)
            free(in[i]);
        for (size_t k = 0; k < g->n_outputs; k++) {
            free(out[k]);
            free(first[k]);
        }
        free(in);
        free(out);
        free(first);
    }
done:
    kiln_cg_jit_destroy(j);
    kiln_cg_module_destroy(m);
    kiln_diag_release(&d);
    return worst;
}
