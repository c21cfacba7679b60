/* compiler/driver/calib_ranges.c: the range of every value of a model over
 * calibration data, from the reference interpreter: min and max, and a
 * percentile of |x| read from a histogram.
 *
 * The histogram has logarithmic bins: 32 per octave from 2^-64 to 2^64 (each
 * bin 1/32 of an octave wide: a percentile is exact to within 2.2%), one bin
 * below for |x| < 2^-64 (zeros) and one above. Its counts are integers, so
 * the result does not depend on how the samples are split into runs. The
 * percentile is the upper edge of the bin where the count reaches
 * KILN_CALIB_PERCENTILE_Q % of the elements, cut to max |x|. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "calibration.h"
#include "cli.h"
#include "compiler/interp/interp.h"

#define EMIN (-64)
#define OCTAVES 128
#define SUB 32
#define NBINS (1 + OCTAVES * SUB + 1)
/* samples per interpreter run when the model is batched */
#define CHUNK 16

int kiln_calib_method_parse(const char *s, kiln_calib_method *out)
{
    if (strcmp(s, "percentile") == 0)
        *out = KILN_CALIB_PERCENTILE;
    else if (strcmp(s, "minmax") == 0)
        *out = KILN_CALIB_MINMAX;
    else
        return -1;
    return 0;
}

static size_t bin_of(double a)
{
    if (!(a >= ldexp(1.0, EMIN)))
        return 0;
    int e;
    double m = frexp(a, &e); /* a = m 2^e, m in [0.5, 1): a in octave e - 1 */
    long o = (long)(e - 1) - EMIN;
    if (o >= OCTAVES)
        return NBINS - 1;
    long s = (long)((m - 0.5) * 2 * SUB);
    if (s >= SUB)
        s = SUB - 1;
    return 1 + (size_t)o * SUB + (size_t)s;
}

static double bin_top(size_t b)
{
    if (b == 0)
        return ldexp(1.0, EMIN);
    if (b >= NBINS - 1)
        return INFINITY;
    size_t o = (b - 1) / SUB, s = (b - 1) % SUB;
    return ldexp(1.0 + (double)(s + 1) / SUB, (int)o + EMIN);
}

typedef struct acc {
    double min, max;
    uint64_t count, nonfinite;
    uint64_t *hist;
} acc;

static void add(acc *a, const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) {
            a->nonfinite++;
            continue;
        }
        if (a->count == 0 || x[i] < a->min)
            a->min = x[i];
        if (a->count == 0 || x[i] > a->max)
            a->max = x[i];
        a->count++;
        a->hist[bin_of(fabs(x[i]))]++;
    }
}

static double percentile(const acc *a)
{
    double absmax = fmax(fabs(a->min), fabs(a->max));
    if (a->count == 0)
        return 0;
    uint64_t need = (uint64_t)ceil(KILN_CALIB_PERCENTILE_Q / 100.0 * (double)a->count), seen = 0;
    if (need < 1)
        need = 1;
    for (size_t b = 0; b < NBINS; b++) {
        seen += a->hist[b];
        if (seen >= need)
            return fmin(bin_top(b), absmax);
    }
    return absmax;
}

int kiln_calib_observe(const kiln_graph *g, const kiln_calib *c, kiln_calib_ranges *out, const char *cmd)
{
    *out = (kiln_calib_ranges){.samples = c->samples};
    size_t n = g->n_inputs + g->n_nodes;
    acc *accs = calloc(n + 1, sizeof *accs);
    const float **in = calloc(g->n_inputs + 1, sizeof *in);
    out->r = calloc(n + 1, sizeof *out->r);
    int rc = 1;
    kiln_interp *it = NULL;
    if (!accs || !in || !out->r)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        out->r[i].value = i < g->n_inputs ? g->inputs[i] : g->nodes[i - g->n_inputs].output;
        if (!(accs[i].hist = calloc(NBINS, sizeof *accs[i].hist)))
            goto oom;
    }
    int64_t it_batch = 0;
    for (int64_t first = 0; first < c->samples;) {
        int64_t batch = kiln_calib_chunk(c, first, CHUNK, in);
        if (batch != it_batch) {
            kiln_interp_destroy(it);
            it = NULL;
            kiln_interp_options io = {.keep_all = true};
            if (kiln_interp_create(g, batch, &io, &it) != KILN_OK)
                goto oom;
            it_batch = batch;
        }
        for (size_t k = 0; k < g->n_inputs; k++)
            if (kiln_interp_set_input(it, k, in[k]) != KILN_OK)
                goto oom;
        kiln_status st = kiln_cli_interp_run(it);
        if (st != KILN_OK) {
            kiln_cli_error(cmd, "the interpreter failed on the calibration samples: %s", kiln_status_string(st));
            goto fail;
        }
        for (size_t i = 0; i < n; i++) {
            size_t count = 0;
            const double *x = kiln_interp_value(it, out->r[i].value, &count);
            if (x)
                add(&accs[i], x, count);
        }
        first += batch;
    }
    for (size_t i = 0; i < n; i++) {
        kiln_calib_range *r = &out->r[i];
        r->min = accs[i].min;
        r->max = accs[i].max;
        r->count = accs[i].count;
        r->nonfinite = accs[i].nonfinite;
        r->pct = percentile(&accs[i]);
    }
    out->n = n;
    rc = 0;
    goto fail;
oom:
    kiln_cli_error(cmd, "out of memory observing the calibration ranges");
fail:
    kiln_interp_destroy(it);
    for (size_t i = 0; accs && i < n; i++)
        free(accs[i].hist);
    free(accs);
    free(in);
    if (rc != 0)
        kiln_calib_ranges_free(out);
    return rc;
}

void kiln_calib_ranges_free(kiln_calib_ranges *r)
{
    free(r->r);
    *r = (kiln_calib_ranges){0};
}

void kiln_calib_range_pick(const kiln_calib_range *r, kiln_calib_method m, double *lo, double *hi)
{
    *lo = r->min;
    *hi = r->max;
    if (m == KILN_CALIB_PERCENTILE) {
        *lo = fmax(*lo, -r->pct);
        *hi = fmin(*hi, r->pct);
    }
}

void kiln_calib_ranges_print(const kiln_graph *g, const kiln_calib *c, const kiln_calib_ranges *r,
                             kiln_calib_method m, FILE *f)
{
    char what[512];
    kiln_calib_describe(c, what, sizeof what);
    fprintf(f, "# calibration: %s; %zu values observed by the reference interpreter\n", what, r->n);
    if (m == KILN_CALIB_PERCENTILE)
        fprintf(f, "# range kept (--calibration-method percentile): [-p, p] cut to [min, max], p = the %g%% "
                   "percentile of |x|\n", KILN_CALIB_PERCENTILE_Q);
    else
        fprintf(f, "# range kept (--calibration-method minmax): [min, max]\n");
    fprintf(f, "# int8 layers take their input's scale and zero point from the range kept (in_scale, in_zero)\n");
    fprintf(f, "# %-28s %12s %12s %12s  %s\n", "value", "min", "max", "|x| p99.99", "range");
    for (size_t i = 0; i < r->n; i++) {
        const kiln_calib_range *x = &r->r[i];
        double lo, hi;
        kiln_calib_range_pick(x, m, &lo, &hi);
        fprintf(f, "# %-28s %12.5g %12.5g %12.5g  [%.5g, %.5g]", kiln_graph_value(g, x->value)->name, x->min,
                x->max, x->pct, lo, hi);
        if (x->nonfinite)
            fprintf(f, "  (%llu NaN or infinite elements left out)", (unsigned long long)x->nonfinite);
        fputc('\n', f);
    }
}
