/* compiler/driver/precision_auto.c: the search of --precision auto
 * (precision_auto.h). Each configuration is a copy of the model as loaded
 * with its layers' precisions written on the nodes, run through the same
 * passes and code generator as the final object (JIT), and run on every
 * calibration sample. */
#include "precision_auto.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compiler/passes/passes.h"

/* timed runs of the whole calibration set per build, after the one that
 * gives the outputs; the best is kept */
#define TIMED_RUNS 3

int kiln_auto_metric_parse(const char *s, kiln_auto_metric *out)
{
    if (strcmp(s, "maxrel") == 0)
        *out = KILN_AUTO_MAXREL;
    else if (strcmp(s, "top1") == 0)
        *out = KILN_AUTO_TOP1;
    else
        return -1;
    return 0;
}

static bool has_reduced_kernel_op(const kiln_node *n) { return n->op == KILN_OP_DENSE || n->op == KILN_OP_CONV2D; }

typedef struct search {
    const kiln_graph *raw; /* the model as loaded; its precisions untouched until the end */
    const kiln_cli_options *o;
    const kiln_calib *c;
    bool *asks_auto;       /* per raw node */
    size_t n_out;
    size_t *per_out;       /* elements of one sample of each output */
    float **ref;           /* the f32 outputs, samples x per_out */
    float **got;
    kiln_auto_row *rows;
    size_t n_rows;
    kiln_precision *prec;  /* per row: the configuration */
    size_t builds;
} search;

/* Writes configuration s->prec on g (a copy of raw, before the passes). */
static void configure(kiln_graph *g, const search *s)
{
    if (g->precision == KILN_PREC_AUTO)
        g->precision = KILN_PREC_F32;
    for (size_t i = 0; i < g->n_nodes; i++) {
        kiln_node *n = &g->nodes[i];
        if (!s->asks_auto[i])
            continue;
        if (n->precision == KILN_PREC_AUTO)
            n->precision = KILN_PREC_F32; /* its own key said auto: decided here */
        if (!has_reduced_kernel_op(n) || !n->layer)
            continue;
        for (size_t r = 0; r < s->n_rows; r++)
            if (s->prec[r] != KILN_PREC_F32 && strcmp(s->rows[r].layer, n->layer) == 0)
                n->precision = s->prec[r];
    }
}

/* The model with configuration s->prec, after the passes; NULL after an error. */
static kiln_graph *build(const search *s)
{
    kiln_graph *g = kiln_graph_clone(s->raw);
    if (!g) {
        kiln_cli_error(s->o->cmd, "out of memory");
        return NULL;
    }
    configure(g, s);
    size_t n_int8; /* layers with their own `precision: int8` get their quantization as in the object */
    if ((strcmp(s->o->passes, "none") != 0 && kiln_cli_run_passes(g, s->o, true) != 0) ||
        kiln_calib_quantize(g, s->c, s->o->calibration_method, &n_int8, s->o->cmd) != 0) {
        kiln_graph_destroy(g);
        return NULL;
    }
    return g;
}

/* The node of layer `layer` that a reduced precision applies to, or NULL. */
static const kiln_node *layer_node(const kiln_graph *g, const char *layer, size_t *index)
{
    for (size_t i = 0; i < g->n_nodes; i++)
        if (has_reduced_kernel_op(&g->nodes[i]) && g->nodes[i].layer && strcmp(g->nodes[i].layer, layer) == 0) {
            if (index)
                *index = i;
            return &g->nodes[i];
        }
    return NULL;
}

typedef struct profile {
    double last;
    double *sum;
    size_t n;
} profile;

static void profile_hook(void *arg, int64_t step)
{
    profile *p = arg;
    double t = kiln_cli_seconds();
    if (step >= 0 && (size_t)step < p->n)
        p->sum[step] += t - p->last;
    p->last = t;
}

/* Compiles g (JIT), runs it on every sample into out, then times
 * TIMED_RUNS more runs of the whole set (*seconds: the best). With shares,
 * TIMED_RUNS profiled runs give each row's share of the time. 0 or 1. */
static int run(search *s, const kiln_graph *g, float **out, double *seconds, double *shares)
{
    const kiln_calib *c = s->c;
    int64_t max_batch = c->batched ? c->samples : 1;
    if (kiln_cli_budget_workspace(g, s->o->cmd, max_batch, KILN_CLI_EVAL_COMPILED) != 0)
        return 1;
    kiln_jit_model jm = {0};
    kiln_cg_options cg = s->o->cg;
    if (kiln_jit_model_open(&jm, g, s->o->cmd, &cg) != 0)
        return 1;
    s->builds++;
    int rc = 1;
    void *inst = NULL;
    const float **in = calloc(c->n_inputs + 1, sizeof *in);
    float **outp = calloc(s->n_out + 1, sizeof *outp);
    profile prof = {0, NULL, 0};
    char why[512] = "";
    kiln_options ko = KILN_OPTIONS_INIT;
    ko.error = why;
    ko.error_size = sizeof why;
    kiln_status st = in && outp ? jm.e.create(&inst, &ko) : KILN_ERR_OUT_OF_MEMORY;
    double best = INFINITY;
    for (int rep = 0; st == KILN_OK && rep <= TIMED_RUNS + (shares ? TIMED_RUNS : 0); rep++) {
        bool profiled = shares && rep > TIMED_RUNS;
        if (profiled && !prof.sum) {
            prof.n = kiln_cg_step_count(jm.module);
            if (!(prof.sum = calloc(prof.n + 1, sizeof *prof.sum))) {
                st = KILN_ERR_OUT_OF_MEMORY;
                break;
            }
        }
        double t0 = kiln_cli_seconds();
        for (int64_t first = 0; st == KILN_OK && first < c->samples;) {
            int64_t batch = kiln_calib_chunk(c, first, max_batch, in);
            for (size_t k = 0; k < s->n_out; k++)
                outp[k] = out[k] + (size_t)first * s->per_out[k];
            if (profiled) {
                prof.last = kiln_cli_seconds();
                st = jm.e.run_profiled(inst, batch, in, outp, profile_hook, &prof);
            } else {
                st = jm.e.run_array(inst, batch, in, outp);
            }
            first += batch;
        }
        double t = kiln_cli_seconds() - t0;
        if (rep > 0 && !profiled && t < best)
            best = t;
    }
    if (st != KILN_OK) {
        kiln_cli_error(s->o->cmd, "--precision auto: running the model on the calibration data failed: %s%s%s",
                       kiln_status_string(st), why[0] ? ": " : "", inst && !why[0] ? jm.e.last_error(inst) : why);
        goto done;
    }
    *seconds = best;
    if (shares) {
        double total = 0;
        for (size_t k = 0; k < prof.n; k++)
            total += prof.sum[k];
        for (size_t r = 0; r < s->n_rows; r++) {
            size_t at;
            shares[r] = 0;
            if (!layer_node(g, s->rows[r].layer, &at))
                continue;
            for (size_t k = 0; k < prof.n; k++) {
                const kiln_cg_step_info *si = kiln_cg_step_at(jm.module, k);
                if (si->first_node != UINT32_MAX && at >= si->first_node && at <= si->last_node)
                    shares[r] += total > 0 ? prof.sum[k] / total : 0;
            }
        }
    }
    rc = 0;
done:
    if (inst)
        jm.e.destroy(inst);
    kiln_jit_model_close(&jm);
    free(prof.sum);
    free(in);
    free(outp);
    return rc;
}

static double error_of(const search *s, kiln_auto_metric metric)
{
    int64_t samples = s->c->samples;
    if (metric == KILN_AUTO_TOP1) {
        size_t per = s->per_out[0], differ = 0;
        for (int64_t i = 0; i < samples; i++) {
            const float *a = s->got[0] + (size_t)i * per, *b = s->ref[0] + (size_t)i * per;
            size_t ia = 0, ib = 0;
            for (size_t j = 1; j < per; j++) {
                if (a[j] > a[ia] || (isnan(a[j]) && !isnan(a[ia])))
                    ia = j;
                if (b[j] > b[ib])
                    ib = j;
            }
            differ += ia != ib;
        }
        return (double)differ / (double)samples;
    }
    double worst = 0;
    for (size_t k = 0; k < s->n_out; k++) {
        size_t n = (size_t)samples * s->per_out[k];
        double num = 0, den = 0;
        for (size_t i = 0; i < n; i++) {
            double y = s->got[k][i], r = s->ref[k][i];
            /* a non-finite reference must be matched exactly (NaN by NaN) */
            if (!isfinite(r)) {
                if (!(y == r || (isnan(y) && isnan(r))))
                    return INFINITY;
                continue;
            }
            if (!isfinite(y))
                return INFINITY;
            num = fmax(num, fabs(y - r));
            den = fmax(den, fabs(r));
        }
        double e = den > 0 ? num / den : (num > 0 ? INFINITY : 0);
        worst = fmax(worst, e);
    }
    return worst;
}

static int cmp_rows(const void *a, const void *b)
{
    const kiln_auto_row *x = a, *y = b;
    if (x->work != y->work)
        return x->work < y->work ? 1 : -1;
    return 0;
}

static void progress(const char *cmd, size_t step, size_t total, const char *layer, const char *what)
{
    if (!isatty(2))
        return;
    fprintf(stderr, "\r\033[Kkiln %s: --precision auto: %zu/%zu %s %s", cmd, step, total, layer, what);
    fflush(stderr);
}

int kiln_auto_choose(kiln_graph *g, const kiln_cli_options *o, const kiln_calib *c, kiln_auto_metric metric,
                     double tolerance, kiln_auto_result *out)
{
    double t_start = kiln_cli_seconds();
    *out = (kiln_auto_result){.metric = metric, .tolerance = tolerance};
    search s = {.raw = g, .o = o, .c = c, .n_out = g->n_outputs};
    int rc = 1;
    kiln_graph *probe = NULL, *ref = NULL;
    s.asks_auto = calloc(g->n_nodes + 1, sizeof *s.asks_auto);
    s.per_out = calloc(g->n_outputs + 1, sizeof *s.per_out);
    s.ref = calloc(g->n_outputs + 1, sizeof *s.ref);
    s.got = calloc(g->n_outputs + 1, sizeof *s.got);
    s.rows = calloc(g->n_nodes + 1, sizeof *s.rows);
    s.prec = calloc(g->n_nodes + 1, sizeof *s.prec);
    double *shares = calloc(g->n_nodes + 1, sizeof *shares);
    if (!s.asks_auto || !s.per_out || !s.ref || !s.got || !s.rows || !s.prec || !shares)
        goto oom;
    for (size_t k = 0; k < g->n_outputs; k++) {
        const kiln_shape *sh = &kiln_graph_value(g, g->outputs[k])->type.shape;
        int64_t per = sh->batched ? kiln_shape_elements_per_item(sh) : kiln_shape_elements(sh, 1);
        s.per_out[k] = per > 0 ? (size_t)per : 0;
        size_t n = (size_t)c->samples * s.per_out[k];
        if (!(s.ref[k] = malloc((n ? n : 1) * sizeof(float))) || !(s.got[k] = malloc((n ? n : 1) * sizeof(float))))
            goto oom;
    }
    /* Which layers ask for auto; which keep their own key. */
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln_node *n = &g->nodes[i];
        s.asks_auto[i] = kiln_node_precision_asked(g, n) == KILN_PREC_AUTO;
        if (has_reduced_kernel_op(n) && !s.asks_auto[i] && n->precision != KILN_PREC_DEFAULT)
            out->own_key++;
    }
    /* The candidates: every layer asking auto, asked bf16 at once; those the
     * precision pass gives bf16 can take a reduced precision. */
    if (!(probe = kiln_graph_clone(g)))
        goto oom;
    if (probe->precision == KILN_PREC_AUTO)
        probe->precision = KILN_PREC_F32;
    for (size_t i = 0; i < probe->n_nodes; i++)
        if (s.asks_auto[i])
            probe->nodes[i].precision = has_reduced_kernel_op(&probe->nodes[i]) ? KILN_PREC_BF16 : KILN_PREC_F32;
    if (strcmp(o->passes, "none") != 0 && kiln_cli_run_passes(probe, o, true) != 0)
        goto done;
    size_t asking = 0;
    for (size_t i = 0; i < g->n_nodes; i++)
        if (s.asks_auto[i] && has_reduced_kernel_op(&g->nodes[i]))
            asking++;
    for (size_t i = 0; i < probe->n_nodes; i++) {
        const kiln_node *n = &probe->nodes[i];
        if (!n->layer || kiln_node_precision(probe, n) != KILN_PREC_BF16)
            continue;
        bool seen = false;
        for (size_t r = 0; r < s.n_rows && !seen; r++)
            seen = strcmp(s.rows[r].layer, n->layer) == 0;
        if (seen)
            continue;
        /* the name in g's arena (probe dies before the report) */
        const kiln_node *gn = layer_node(g, n->layer, NULL);
        if (!gn)
            continue;
        kiln_auto_row *row = &s.rows[s.n_rows];
        row->layer = gn->layer;
        row->work = kiln_schedule_node_work(probe, n);
        s.prec[s.n_rows++] = KILN_PREC_F32;
    }
    out->not_eligible = asking > s.n_rows ? asking - s.n_rows : 0;
    /* the most work first; equal work keeps the model's order (qsort is not
     * stable: the rows are still in node order, and ties compare by it) */
    for (size_t r = 0; r < s.n_rows; r++)
        s.rows[r].seconds = (double)r; /* the node order, for ties */
    if (s.n_rows > 1)
        qsort(s.rows, s.n_rows, sizeof *s.rows, cmp_rows);
    for (size_t a = 1; a < s.n_rows; a++) /* ties: back into node order (insertion sort on equal work) */
        for (size_t b = a; b > 0 && s.rows[b - 1].work == s.rows[b].work && s.rows[b - 1].seconds > s.rows[b].seconds;
             b--) {
            kiln_auto_row t = s.rows[b];
            s.rows[b] = s.rows[b - 1];
            s.rows[b - 1] = t;
        }

    /* The reference: every layer f32. */
    progress(o->cmd, 0, s.n_rows, "", "the f32 reference");
    if (!(ref = build(&s)) || run(&s, ref, s.ref, &out->f32_seconds, shares) != 0)
        goto done;
    for (size_t r = 0; r < s.n_rows; r++)
        s.rows[r].share = shares[r];
    double cur_err = 0, cur_time = out->f32_seconds;
    static const kiln_precision order[] = {KILN_PREC_BF16, KILN_PREC_F16};
    for (size_t r = 0; r < s.n_rows; r++) {
        kiln_auto_row *row = &s.rows[r];
        size_t w = 0;
        for (size_t q = 0; q < sizeof order / sizeof order[0]; q++) {
            progress(o->cmd, r + 1, s.n_rows, row->layer, kiln_precision_name(order[q]));
            s.prec[r] = order[q];
            kiln_graph *t = build(&s);
            if (!t)
                goto done;
            const kiln_node *n = layer_node(t, row->layer, NULL);
            double secs = 0;
            if (!n || kiln_node_precision(t, n) != order[q]) {
                /* next to this configuration's other layers, the passes did
                 * not give it this precision (a blocked layout) */
                w += (size_t)snprintf(row->tried + w, sizeof row->tried - w, "%s%s n/a", w ? ", " : "",
                                      kiln_precision_name(order[q]));
                kiln_graph_destroy(t);
                s.prec[r] = KILN_PREC_F32;
                continue;
            }
            int bad = run(&s, t, s.got, &secs, NULL);
            kiln_graph_destroy(t);
            if (bad)
                goto done;
            double e = error_of(&s, metric);
            bool keep = e <= tolerance;
            if (w < sizeof row->tried)
                w += (size_t)snprintf(row->tried + w, sizeof row->tried - w, "%s%s %.1e%s", w ? ", " : "",
                                      kiln_precision_name(order[q]), e, keep ? "" : " (over)");
            if (keep) {
                cur_err = e;
                cur_time = secs;
                break;
            }
            s.prec[r] = KILN_PREC_F32;
        }
        row->chosen = s.prec[r];
        row->error = cur_err;
        row->seconds = cur_time;
    }
    if (isatty(2))
        fprintf(stderr, "\r\033[K");
    /* The choice, on the model itself. */
    configure(g, &s);
    out->final_error = cur_err;
    out->rows = s.rows;
    out->n_rows = s.n_rows;
    s.rows = NULL;
    out->builds = s.builds;
    out->search_seconds = kiln_cli_seconds() - t_start;
    rc = 0;
    goto done;
oom:
    kiln_cli_error(o->cmd, "out of memory");
done:
    if (rc != 0 && isatty(2))
        fprintf(stderr, "\r\033[K");
    kiln_graph_destroy(probe);
    kiln_graph_destroy(ref);
    for (size_t k = 0; k < g->n_outputs; k++) {
        if (s.ref)
            free(s.ref[k]);
        if (s.got)
            free(s.got[k]);
    }
    free(s.ref);
    free(s.got);
    free(s.per_out);
    free(s.asks_auto);
    free(s.rows);
    free(s.prec);
    free(shares);
    return rc;
}

void kiln_auto_result_free(kiln_auto_result *r)
{
    free(r->rows);
    *r = (kiln_auto_result){0};
}

static void print_seconds(FILE *f, double s)
{
    if (s >= 1.0)
        fprintf(f, "%.3f s", s);
    else if (s >= 1e-3)
        fprintf(f, "%.3f ms", s * 1e3);
    else
        fprintf(f, "%.1f us", s * 1e6);
}

void kiln_auto_print(const kiln_auto_result *r, const kiln_calib *c, FILE *f)
{
    char data[512];
    kiln_calib_describe(c, data, sizeof data);
    fprintf(f, "  auto      %s <= %g on %s; int8 not tried (auto chooses between bf16 and f16)\n",
            r->metric == KILN_AUTO_MAXREL ? "maxrel" : "top1", r->tolerance, data);
    fprintf(f, "            %zu layer%s tried, the most work first (the schedule's estimate)", r->n_rows,
            r->n_rows == 1 ? "" : "s");
    if (r->own_key)
        fprintf(f, "; %zu keep%s own precision: key", r->own_key, r->own_key == 1 ? "s its" : " their");
    if (r->not_eligible)
        fprintf(f, "; %zu without a bf16/f16 kernel stay%s f32", r->not_eligible, r->not_eligible == 1 ? "s" : "");
    fprintf(f, "\n");
    if (r->n_rows) {
        fprintf(f, "            %-16s %-9s %-36s %8s %6s %8s\n", "layer", "precision", "tried: error", "error",
                "share", "speed-up");
        for (size_t i = 0; i < r->n_rows; i++) {
            const kiln_auto_row *w = &r->rows[i];
            fprintf(f, "            %-16s %-9s %-36s %8.1e %5.1f%% %7.2fx\n", w->layer, kiln_precision_name(w->chosen),
                    w->tried, w->error, 100.0 * w->share, w->seconds > 0 ? r->f32_seconds / w->seconds : 0.0);
        }
    }
    double last = r->n_rows ? r->rows[r->n_rows - 1].seconds : r->f32_seconds;
    size_t lowered = 0;
    for (size_t i = 0; i < r->n_rows; i++)
        lowered += r->rows[i].chosen != KILN_PREC_F32;
    fprintf(f, "            %zu of %zu lowered, error %.1e; the calibration set runs in ", lowered, r->n_rows,
            r->final_error);
    print_seconds(f, last);
    fprintf(f, " (f32 ");
    print_seconds(f, r->f32_seconds);
    fprintf(f, ", best of %d runs each); search %.2f s, %zu JIT builds\n", TIMED_RUNS, r->search_seconds, r->builds);
}
