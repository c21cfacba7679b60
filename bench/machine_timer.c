/* machine_timer: the machine's own limits, for reading the other figures.
 *
 *   machine_timer bandwidth [--mib 512] [--threads T] [--reps 5]
 *   machine_timer fma [--threads T] [--seconds 0.3]
 *
 * bandwidth: sums a 512 MiB float array (written first, so its pages are
 *   resident) with T threads, each over its own contiguous part (read as 8
 *   interleaved streams), several times; prints the best pass in GB/s
 *   (10^9 bytes read per second), as STREAM does. A pass lasts from the
 *   first thread's start to the last thread's end, each timed by the thread
 *   itself.
 * fma: each of T threads runs a loop of independent fused multiply-adds on
 *   vector registers (12 accumulators: enough to cover FMA latency x
 *   throughput on current x86 cores), the widest vectors the compiler
 *   targets (-march=native: AVX-512, AVX2+FMA, or plain C); prints the
 *   GFLOP/s (2 flops per lane per FMA), the best of a few runs.
 *
 * Prints one JSON object. Build with -O2 -march=native -pthread.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#define VEC __m512
#define LANES 16
#define VSET1 _mm512_set1_ps
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VADD _mm512_add_ps
#define VLOAD _mm512_loadu_ps
#define ISA "avx512"
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define VEC __m256
#define LANES 8
#define VSET1 _mm256_set1_ps
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VADD _mm256_add_ps
#define VLOAD _mm256_loadu_ps
#define ISA "avx2+fma"
#else
typedef float vf4 __attribute__((vector_size(16)));
#define VEC vf4
#define LANES 4
static inline vf4 vset1(float x) { vf4 v = {x, x, x, x}; return v; }
static inline vf4 vload(const float *p) { vf4 v; memcpy(&v, p, sizeof v); return v; }
#define VSET1 vset1
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VADD(a, b) ((a) + (b))
#define VLOAD vload
#define ISA "generic-128"
#endif

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float hsum(VEC v)
{
    float t[LANES];
    memcpy(t, &v, sizeof t);
    float s = 0;
    for (int i = 0; i < LANES; i++)
        s += t[i];
    return s;
}

/* ---------------------------------------------------------------- bandwidth */

typedef struct {
    const float *p;
    size_t n;
    float sum;
    double t0, t1;
    pthread_barrier_t *bar;
} bw_task;

/* Sums n floats as 8 interleaved streams (8 contiguous sub-ranges read side
 * by side): more memory-level parallelism than one stream, as a matrix-vector
 * product reading several rows at once has. */
#define STREAMS 8
static float read_sum(const float *p, size_t n)
{
    size_t m = n / STREAMS / (2 * LANES) * (2 * LANES), i;
    VEC a[STREAMS];
    for (int j = 0; j < STREAMS; j++)
        a[j] = VSET1(0);
    for (i = 0; i < m; i += 2 * LANES) {
        for (int j = 0; j < STREAMS; j++)
            a[j] = VADD(a[j], VADD(VLOAD(p + (size_t)j * m + i), VLOAD(p + (size_t)j * m + i + LANES)));
    }
    VEC v = a[0];
    for (int j = 1; j < STREAMS; j++)
        v = VADD(v, a[j]);
    float s = hsum(v);
    for (i = m * STREAMS; i < n; i++)
        s += p[i];
    return s;
}

static void *bw_worker(void *arg)
{
    bw_task *t = arg;
    pthread_barrier_wait(t->bar);
    t->t0 = now();
    t->sum = read_sum(t->p, t->n);
    t->t1 = now();
    return NULL;
}

static int bandwidth(size_t mib, int threads, int reps)
{
    size_t n = mib * 1024 * 1024 / sizeof(float);
    float *p = aligned_alloc(4096, n * sizeof(float));
    if (!p) {
        printf("{\"error\": \"out of memory\"}\n");
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(i & 1023) * 1e-3f;
    double best = 0, check = 0;
    for (int r = 0; r < reps; r++) {
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, (unsigned)threads);
        pthread_t th[64];
        bw_task tk[64];
        size_t chunk = (n / (size_t)threads) & ~(size_t)63;
        for (int t = 0; t < threads; t++) {
            tk[t].p = p + (size_t)t * chunk;
            tk[t].n = t == threads - 1 ? n - (size_t)t * chunk : chunk;
            tk[t].bar = &bar;
            pthread_create(&th[t], NULL, bw_worker, &tk[t]);
        }
        /* the pass lasts from the first worker's start to the last one's end */
        double t0 = 0, t1 = 0;
        for (int t = 0; t < threads; t++) {
            pthread_join(th[t], NULL);
            check += tk[t].sum;
            if (t == 0 || tk[t].t0 < t0)
                t0 = tk[t].t0;
            if (t == 0 || tk[t].t1 > t1)
                t1 = tk[t].t1;
        }
        double dt = t1 - t0;
        pthread_barrier_destroy(&bar);
        double gbs = (double)(n * sizeof(float)) / dt / 1e9;
        if (gbs > best)
            best = gbs;
    }
    printf("{\"kind\": \"bandwidth\", \"isa\": \"%s\", \"mib\": %zu, \"threads\": %d, \"reps\": %d, "
           "\"gb_per_s\": %.4g, \"checksum\": %.6g}\n", ISA, mib, threads, reps, best, check);
    free(p);
    return 0;
}

/* ---------------------------------------------------------------- FMA peak */

typedef struct {
    double seconds;
    double flops;
    double elapsed;
    float sum;
    pthread_barrier_t *bar;
} fma_task;

#define NACC 12

static void *fma_worker(void *arg)
{
    fma_task *t = arg;
    VEC acc[NACC];
    const VEC b = VSET1(0.999999f), c = VSET1(1e-7f);
    for (int i = 0; i < NACC; i++)
        acc[i] = VSET1((float)i);
    pthread_barrier_wait(t->bar);
    double t0 = now(), dt;
    long iters = 0;
    do {
        for (int k = 0; k < 10000; k++) {
#pragma GCC unroll 12
            for (int i = 0; i < NACC; i++)
                acc[i] = VFMA(acc[i], b, c);
        }
        iters += 10000;
        dt = now() - t0;
    } while (dt < t->seconds);
    VEC s = acc[0];
    for (int i = 1; i < NACC; i++)
        s = VADD(s, acc[i]);
    t->sum = hsum(s);
    t->elapsed = dt;
    t->flops = (double)iters * NACC * LANES * 2.0;
    return NULL;
}

static int fma_peak(int threads, double seconds)
{
    double best = 0, check = 0;
    for (int r = 0; r < 3; r++) {
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, (unsigned)threads);
        pthread_t th[64];
        fma_task tk[64];
        for (int t = 0; t < threads; t++) {
            tk[t].seconds = seconds;
            tk[t].bar = &bar;
            pthread_create(&th[t], NULL, fma_worker, &tk[t]);
        }
        double flops = 0, el = 0;
        for (int t = 0; t < threads; t++) {
            pthread_join(th[t], NULL);
            flops += tk[t].flops;
            if (tk[t].elapsed > el)
                el = tk[t].elapsed;
            check += tk[t].sum;
        }
        pthread_barrier_destroy(&bar);
        if (flops / el / 1e9 > best)
            best = flops / el / 1e9;
    }
    printf("{\"kind\": \"fma\", \"isa\": \"%s\", \"lanes\": %d, \"threads\": %d, \"gflops\": %.4g, "
           "\"checksum\": %.6g}\n", ISA, LANES, threads, best, check);
    return 0;
}

int main(int argc, char **argv)
{
    int threads = 1, reps = 5;
    size_t mib = 512;
    double seconds = 0.3;
    if (argc < 2) {
        fprintf(stderr, "usage: machine_timer bandwidth|fma [--threads T] [--mib N] [--reps R] [--seconds S]\n");
        return 2;
    }
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--mib")) mib = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
    }
    if (threads < 1 || threads > 64)
        threads = 1;
    if (!strcmp(argv[1], "bandwidth"))
        return bandwidth(mib, threads, reps);
    if (!strcmp(argv[1], "fma"))
        return fma_peak(threads, seconds);
    fprintf(stderr, "unknown mode %s\n", argv[1]);
    return 2;
}
