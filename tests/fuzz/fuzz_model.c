/* tests/fuzz/fuzz_model.c: loading, interpreting and comparing the models of
 * the fuzz targets (fuzz_model.h). */
#define _GNU_SOURCE
#include "fuzz_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compiler/frontend/frontend.h"
#include "ir/diag.h"

/* This process's directory for the weights, made once. */
static const char *fuzz_dir(void)
{
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/kiln-fuzz-%ld-XXXXXX", (long)getpid());
        if (!mkdtemp(dir))
            abort();
    }
    return dir;
}

kiln_graph *fuzz_load(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    size_t yaml_len = size;
    const uint8_t *mark = memmem(data, size, FUZZ_WEIGHTS_MARK, strlen(FUZZ_WEIGHTS_MARK));
    char path[128], wpath[128];
    snprintf(path, sizeof path, "%s/model.yaml", fuzz_dir());
    snprintf(wpath, sizeof wpath, "%s/w.safetensors", fuzz_dir());
    unlink(wpath);
    if (mark) {
        yaml_len = (size_t)(mark - data);
        const uint8_t *w = mark + strlen(FUZZ_WEIGHTS_MARK);
        FILE *f = fopen(wpath, "wb");
        if (!f)
            abort();
        fwrite(w, 1, size - (size_t)(w - data), f);
        fclose(f);
    }
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_graph *g = NULL;
    kiln_frontend_options opt = {.max_elements = FUZZ_MAX_ELEMENTS};
    kiln_status s = kiln_frontend_load_yaml_text_opts(text, yaml_len, path, &opt, &g, &d);
    if (s != KILN_OK) {
        if (g != NULL || !kiln_diag_has_errors(&d))
            abort(); /* refused without saying why */
        kiln_diag_release(&d);
        return NULL;
    }
    if (g == NULL || kiln_diag_has_errors(&d))
        abort(); /* accepted with an error */
    kiln_diag_release(&d);
    kiln_diag v;
    kiln_diag_init(&v);
    if (kiln_ir_verify(g, &v) != KILN_OK) {
        kiln_diag_print(&v, stderr);
        abort(); /* the frontend built an invalid graph */
    }
    kiln_diag_release(&v);
    return g;
}

void fuzz_fill(float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15u + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 4.0 - 2.0);
    }
}

size_t fuzz_elements(const kiln_graph *g, kiln_id v, int64_t batch)
{
    int64_t n = kiln_shape_elements(&kiln_graph_value(g, v)->type.shape, batch);
    return n > 0 ? (size_t)n : 0;
}

kiln_interp *fuzz_interpret(const kiln_graph *g, int64_t batch, uint64_t seed, bool keep_all)
{
    kiln_interp *it = NULL;
    kiln_interp_options opt = {.keep_all = keep_all};
    if (kiln_interp_create(g, batch, &opt, &it) != KILN_OK)
        return NULL;
    for (size_t i = 0; i < g->n_inputs; i++) {
        size_t n = fuzz_elements(g, g->inputs[i], batch);
        float *x = malloc((n ? n : 1) * sizeof *x);
        if (!x) {
            kiln_interp_destroy(it);
            return NULL;
        }
        fuzz_fill(x, n, seed + i);
        kiln_status st = kiln_interp_set_input(it, i, x);
        free(x);
        if (st != KILN_OK) {
            kiln_interp_destroy(it);
            return NULL;
        }
    }
    if (kiln_interp_run(it, NULL) != KILN_OK) {
        kiln_interp_destroy(it);
        return NULL;
    }
    return it;
}

double fuzz_magnitude(const kiln_graph *g, const kiln_interp *it)
{
    double m = 0.0;
    for (kiln_id v = 0; v < g->n_values; v++) {
        size_t n = 0;
        const double *x = kiln_interp_value(it, v, &n);
        for (size_t i = 0; x && i < n; i++) {
            if (!isfinite(x[i]))
                return INFINITY;
            if (fabs(x[i]) > m)
                m = fabs(x[i]);
        }
    }
    return m;
}

int fuzz_close(const char *what, const double *ref, const double *got, size_t n, double rel, double abs_tol,
               double limit)
{
    double scale = 0.0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(ref[i]) && fabs(ref[i]) <= limit && fabs(ref[i]) > scale)
            scale = fabs(ref[i]);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(ref[i]) || fabs(ref[i]) > limit)
            continue;
        if (isnan(got[i]) || fabs(got[i] - ref[i]) > rel * scale + abs_tol) {
            fprintf(stderr, "%s: element %zu is %.9g, the reference %.9g (scale %.3g)\n", what, i, got[i], ref[i],
                    scale);
            return 0;
        }
    }
    return 1;
}
