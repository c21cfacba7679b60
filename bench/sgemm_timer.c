/* sgemm_timer: OpenBLAS sgemm on a dense layer's shapes.
 *
 *   sgemm_timer --m M --n N --k K --threads T [--min-time S] [--min-iters K] [--max-time S]
 *   sgemm_timer --info
 *
 * Computes Y[M,N] = X[M,K] * W[N,K]^T (row-major; W stored as a dense layer's
 * weight [units, in], so the call is cblas_sgemm(RowMajor, NoTrans, Trans)),
 * the same product as kiln's dense layer without its bias. Threads:
 * openblas_set_num_threads(T) (OPENBLAS_NUM_THREADS should say the same).
 * Warm-up, then timed calls, each timed on its own; prints one JSON object
 * with the median time, GFLOP/s = 2*M*N*K / median, and the core whose
 * kernels OpenBLAS runs ("core": picked from the CPU id when the library
 * loads, or named by OPENBLAS_CORETYPE).
 *
 * --info only prints {"core": ..., "config": ...}, what OpenBLAS runs in
 * this environment, and times nothing.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* From OpenBLAS's cblas.h, declared here so that no header path is needed. */
enum { CblasRowMajor = 101 };
enum { CblasNoTrans = 111, CblasTrans = 112 };
void cblas_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc);
void openblas_set_num_threads(int n);
int openblas_get_num_threads(void);
char *openblas_get_config(void);
char *openblas_get_corename(void);

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* s as the contents of a JSON string: quotes and backslashes become '. */
static const char *json_safe(const char *s, char *buf, size_t size)
{
    snprintf(buf, size, "%s", s ? s : "");
    for (char *p = buf; *p; p++)
        if (*p == '"' || *p == '\\')
            *p = '\'';
    return buf;
}

int main(int argc, char **argv)
{
    char conf[256], core[64];
    if (argc == 2 && !strcmp(argv[1], "--info")) {
        printf("{\"runtime\": \"openblas\", \"core\": \"%s\", \"config\": \"%s\"}\n",
               json_safe(openblas_get_corename(), core, sizeof core),
               json_safe(openblas_get_config(), conf, sizeof conf));
        return 0;
    }
    int m = 1, n = 4096, k = 4096, threads = 1, min_iters = 10;
    double min_time = 0.5, max_time = 5.0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--m")) m = atoi(v);
        else if (!strcmp(a, "--n")) n = atoi(v);
        else if (!strcmp(a, "--k")) k = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--min-time")) min_time = atof(v);
        else if (!strcmp(a, "--min-iters")) min_iters = atoi(v);
        else if (!strcmp(a, "--max-time")) max_time = atof(v);
    }
    openblas_set_num_threads(threads);
    float *x = aligned_alloc(64, sizeof(float) * (size_t)m * k + 64);
    float *w = aligned_alloc(64, sizeof(float) * (size_t)n * k + 64);
    float *y = aligned_alloc(64, sizeof(float) * (size_t)m * n + 64);
    for (size_t i = 0; i < (size_t)m * k; i++)
        x[i] = (float)((i * 7) % 13) * 0.01f - 0.06f;
    for (size_t i = 0; i < (size_t)n * k; i++)
        w[i] = (float)((i * 11) % 17) * 0.01f - 0.08f;

#define CALL() cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, w, k, 0.0f, y, n)
    double t0 = now(), warm = 0;
    int nw = 0;
    while (nw < 2 || warm < 0.2) {
        t0 = now();
        CALL();
        warm += now() - t0;
        nw++;
        if (warm > max_time)
            break;
    }
    double est = warm / nw;
    long iters = (long)ceil(min_time / (est > 1e-9 ? est : 1e-9));
    if (iters < min_iters)
        iters = min_iters;
    if (iters > 1000000)
        iters = 1000000;
    double *ts = malloc(sizeof(double) * (size_t)iters), total = 0;
    long done = 0;
    while (done < iters) {
        t0 = now();
        CALL();
        double dt = now() - t0;
        ts[done++] = dt;
        total += dt;
        if (total >= max_time && done >= 3)
            break;
    }
    qsort(ts, (size_t)done, sizeof(double), cmp_double);
    double med = done % 2 ? ts[done / 2] : 0.5 * (ts[done / 2 - 1] + ts[done / 2]);
    long i90 = (long)ceil(0.9 * (double)done) - 1;
    double flops = 2.0 * m * (double)n * k;
    printf("{\"runtime\": \"openblas\", \"m\": %d, \"n\": %d, \"k\": %d, \"threads\": %d, "
           "\"threads_seen\": %d, \"core\": \"%s\", \"config\": \"%s\", \"iters\": %ld, \"median_s\": %.9g, "
           "\"p90_s\": %.9g, \"min_s\": %.9g, \"gflops\": %.6g, \"checksum\": %.6g}\n",
           m, n, k, threads, openblas_get_num_threads(), json_safe(openblas_get_corename(), core, sizeof core),
           json_safe(openblas_get_config(), conf, sizeof conf), done, med, ts[i90 < 0 ? 0 : i90], ts[0],
           flops / med / 1e9, (double)y[0] + y[(size_t)m * n - 1]);
    return 0;
}
