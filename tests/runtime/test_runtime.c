/* test_runtime.c: CUnit tests for libkiln_rt (kiln/runtime.h).
 *
 * Exit status is non-zero when any assertion fails. CUnit is not
 * thread-safe, so tasks running on pool workers never call CU_ASSERT; they
 * record into atomics that the main thread checks afterwards. */
#define _POSIX_C_SOURCE 200809L
#include "kiln/runtime.h"
#include "kiln/blas.h"

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers --------------------------------------------------------------- */

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int is_aligned64(const void *p)
{
    return ((uintptr_t)p & 63u) == 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* ---- status ------------------------------------------------------------------ */

static void test_status_strings(void)
{
    CU_ASSERT_STRING_EQUAL(kiln_status_string(KILN_OK), "ok");
    for (int i = 0; i < (int)KILN_STATUS_COUNT; ++i) {
        const char *s = kiln_status_string((kiln_status)i);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT(strlen(s) > 0);
        CU_ASSERT_STRING_NOT_EQUAL(s, "unknown status");
        for (int j = 0; j < i; ++j)
            CU_ASSERT_STRING_NOT_EQUAL(s, kiln_status_string((kiln_status)j));
    }
    CU_ASSERT_STRING_EQUAL(kiln_status_string(KILN_STATUS_COUNT), "unknown status");
    CU_ASSERT_STRING_EQUAL(kiln_status_string((kiln_status)-1), "unknown status");
    CU_ASSERT_STRING_EQUAL(kiln_status_string((kiln_status)1000), "unknown status");
}

/* ---- memory -------------------------------------------------------------------- */

static void test_aligned_alloc(void)
{
    static const size_t sizes[] = {0, 1, 7, 63, 64, 65, 1000, 4096, 1u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i) {
        unsigned char *p = (unsigned char *)kiln_rt_aligned_alloc(sizes[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        CU_ASSERT(is_aligned64(p));
        memset(p, 0xab, sizes[i]); /* the whole block is writable */
        kiln_rt_aligned_free(p);
    }
    void *a = kiln_rt_aligned_alloc(0), *b = kiln_rt_aligned_alloc(0);
    CU_ASSERT_PTR_NOT_NULL(a);
    CU_ASSERT_PTR_NOT_NULL(b);
    CU_ASSERT_PTR_NOT_EQUAL(a, b);
    kiln_rt_aligned_free(a);
    kiln_rt_aligned_free(b);
    CU_ASSERT_PTR_NULL(kiln_rt_aligned_alloc(SIZE_MAX));
    CU_ASSERT_PTR_NULL(kiln_rt_aligned_alloc(SIZE_MAX - 10));
    kiln_rt_aligned_free(NULL);
}

static void test_arena(void)
{
    unsigned char *buf = (unsigned char *)kiln_rt_aligned_alloc(512);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    kiln_rt_arena a;

    kiln_rt_arena_init(&a, buf, 256);
    CU_ASSERT_PTR_EQUAL(a.base, buf);
    CU_ASSERT_EQUAL(a.size, 256);
    CU_ASSERT_EQUAL(a.used, 0);
    void *p1 = kiln_rt_arena_alloc(&a, 10);
    void *p2 = kiln_rt_arena_alloc(&a, 64);
    void *p3 = kiln_rt_arena_alloc(&a, 64);
    CU_ASSERT_PTR_EQUAL(p1, buf);
    CU_ASSERT_PTR_EQUAL(p2, buf + 64);
    CU_ASSERT_PTR_EQUAL(p3, buf + 128);
    CU_ASSERT_EQUAL(a.used, 192);
    /* 64 bytes are left: 65 does not fit, 64 does, then nothing does. */
    CU_ASSERT_PTR_NULL(kiln_rt_arena_alloc(&a, 65));
    CU_ASSERT_EQUAL(a.used, 192);
    void *p4 = kiln_rt_arena_alloc(&a, 64);
    CU_ASSERT_PTR_EQUAL(p4, buf + 192);
    CU_ASSERT_EQUAL(a.used, 256);
    CU_ASSERT_PTR_NULL(kiln_rt_arena_alloc(&a, 1));
    CU_ASSERT_PTR_NULL(kiln_rt_arena_alloc(&a, SIZE_MAX));
    /* Reset by the caller. */
    a.used = 0;
    CU_ASSERT_PTR_EQUAL(kiln_rt_arena_alloc(&a, 256), buf);

    /* Misaligned base: results are still 64-aligned and inside the buffer. */
    kiln_rt_arena_init(&a, buf + 1, 200);
    void *q1 = kiln_rt_arena_alloc(&a, 1);
    CU_ASSERT_PTR_EQUAL(q1, buf + 64);
    void *q2 = kiln_rt_arena_alloc(&a, 0);
    CU_ASSERT(is_aligned64(q2));
    CU_ASSERT_PTR_EQUAL(q2, buf + 128);
    void *q3 = kiln_rt_arena_alloc(&a, 0);
    CU_ASSERT_PTR_EQUAL(q3, buf + 128); /* size 0 consumes nothing past alignment */
    CU_ASSERT_PTR_NULL(kiln_rt_arena_alloc(&a, 100)); /* 128 + 100 > 201 */
    void *q4 = kiln_rt_arena_alloc(&a, 73);           /* exactly up to buf + 201 */
    CU_ASSERT_PTR_EQUAL(q4, buf + 128);
    CU_ASSERT_EQUAL(a.used, 200);
    CU_ASSERT_PTR_NULL(kiln_rt_arena_alloc(&a, 0)); /* no aligned address left */

    /* Degenerate arenas. */
    kiln_rt_arena_init(&a, NULL, 100);
    CU_ASSERT_EQUAL(a.size, 0);
    CU_ASSERT_PTR_NULL(kiln_rt_arena_alloc(&a, 1));
    kiln_rt_arena_init(&a, buf, 0);
    CU_ASSERT_PTR_NULL(kiln_rt_arena_alloc(&a, 1));
    CU_ASSERT_PTR_EQUAL(kiln_rt_arena_alloc(&a, 0), buf);
    kiln_rt_arena_init(NULL, buf, 10);
    CU_ASSERT_PTR_NULL(kiln_rt_arena_alloc(NULL, 1));

    kiln_rt_aligned_free(buf);
}

/* ---- thread pool -------------------------------------------------------------- */

typedef struct hit_ctx {
    _Atomic int *hits;       /* per index */
    int *plain;              /* per index, written without atomics */
    int64_t expected_count;
    _Atomic int bad;         /* wrong count or index out of range */
} hit_ctx;

static void hit_task(void *ctx, int64_t index, int64_t count)
{
    hit_ctx *h = (hit_ctx *)ctx;
    if (count != h->expected_count || index < 0 || index >= count) {
        atomic_fetch_add(&h->bad, 1);
        return;
    }
    atomic_fetch_add_explicit(&h->hits[index], 1, memory_order_relaxed);
    h->plain[index] = (int)index + 1;
}

/* Runs one parallel_for and checks every index ran exactly once. */
static void check_parallel_for(kiln_rt_pool *pool, int64_t count)
{
    size_t n = count > 0 ? (size_t)count : 1;
    hit_ctx h;
    h.hits = (_Atomic int *)calloc(n, sizeof *h.hits);
    h.plain = (int *)calloc(n, sizeof *h.plain);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h.hits);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h.plain);
    h.expected_count = count;
    atomic_init(&h.bad, 0);

    CU_ASSERT_EQUAL(kiln_rt_parallel_for(pool, count, hit_task, &h), KILN_OK);
    CU_ASSERT_EQUAL(atomic_load(&h.bad), 0);
    int ok = 1;
    for (int64_t i = 0; i < count; ++i) {
        if (atomic_load_explicit(&h.hits[i], memory_order_relaxed) != 1 ||
            h.plain[i] != (int)i + 1)
            ok = 0;
    }
    CU_ASSERT(ok);
    if (!ok)
        fprintf(stderr, "parallel_for: pool size %d, count %lld: an index did not run once\n",
                kiln_rt_pool_size(pool), (long long)count);
    free(h.hits);
    free(h.plain);
}

static void test_parallel_for_counts(void)
{
    static const int64_t counts[] = {0, 1, 2, 3, 17, 1000};
    static const int threads[] = {1, 2, 3, 4};
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; ++t) {
        kiln_rt_pool *pool = NULL;
        CU_ASSERT_EQUAL_FATAL(kiln_rt_pool_create(threads[t], &pool), KILN_OK);
        CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
        CU_ASSERT_EQUAL(kiln_rt_pool_size(pool), threads[t]);
        for (int rep = 0; rep < 3; ++rep)
            for (size_t c = 0; c < sizeof counts / sizeof counts[0]; ++c)
                check_parallel_for(pool, counts[c]);
        kiln_rt_pool_destroy(pool);
    }
    /* No pool: serial on the caller. */
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; ++c)
        check_parallel_for(NULL, counts[c]);
    /* Negative count is a no-op too. */
    check_parallel_for(NULL, -5);
    kiln_rt_pool *pool = NULL;
    CU_ASSERT_EQUAL_FATAL(kiln_rt_pool_create(2, &pool), KILN_OK);
    check_parallel_for(pool, -5);
    kiln_rt_pool_destroy(pool);
}

static void test_pool_default_size(void)
{
    kiln_rt_pool *pool = NULL;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    CU_ASSERT_EQUAL_FATAL(kiln_rt_pool_create(0, &pool), KILN_OK);
    CU_ASSERT_EQUAL(kiln_rt_pool_size(pool), cpus < 1 ? 1 : (int)cpus);
    check_parallel_for(pool, 100);
    kiln_rt_pool_destroy(pool);
}

typedef struct order_ctx {
    int64_t next;
    int in_order;
} order_ctx;

static void order_task(void *ctx, int64_t index, int64_t count)
{
    order_ctx *o = (order_ctx *)ctx;
    (void)count;
    if (index != o->next)
        o->in_order = 0;
    o->next++;
}

static void test_parallel_for_serial_order(void)
{
    order_ctx o = {0, 1};
    CU_ASSERT_EQUAL(kiln_rt_parallel_for(NULL, 50, order_task, &o), KILN_OK);
    CU_ASSERT_EQUAL(o.next, 50);
    CU_ASSERT(o.in_order);
    /* A one-thread pool runs on the caller, in order, too. */
    kiln_rt_pool *pool = NULL;
    CU_ASSERT_EQUAL_FATAL(kiln_rt_pool_create(1, &pool), KILN_OK);
    o.next = 0;
    o.in_order = 1;
    CU_ASSERT_EQUAL(kiln_rt_parallel_for(pool, 50, order_task, &o), KILN_OK);
    CU_ASSERT_EQUAL(o.next, 50);
    CU_ASSERT(o.in_order);
    kiln_rt_pool_destroy(pool);
}

typedef struct sum_ctx {
    _Atomic int64_t sum;
} sum_ctx;

static void sum_task(void *ctx, int64_t index, int64_t count)
{
    (void)count;
    atomic_fetch_add_explicit(&((sum_ctx *)ctx)->sum, index + 1, memory_order_relaxed);
}

static void empty_task(void *ctx, int64_t index, int64_t count)
{
    (void)ctx;
    (void)index;
    (void)count;
}

/* Tasks that only finish once all of them have started: proves the pool
 * really runs them on different threads at once. */
typedef struct rendezvous_ctx {
    _Atomic int arrived;
    _Atomic int timed_out;
    int64_t expected;
} rendezvous_ctx;

static void rendezvous_task(void *ctx, int64_t index, int64_t count)
{
    rendezvous_ctx *r = (rendezvous_ctx *)ctx;
    (void)index;
    (void)count;
    atomic_fetch_add(&r->arrived, 1);
    const int64_t deadline = mono_ns() + 5000000000LL;
    while (atomic_load(&r->arrived) < r->expected) {
        if (mono_ns() > deadline) {
            atomic_store(&r->timed_out, 1);
            return;
        }
        sched_yield();
    }
}

static void test_parallel_for_concurrency(void)
{
    static const int threads[] = {2, 3, 4};
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; ++t) {
        kiln_rt_pool *pool = NULL;
        CU_ASSERT_EQUAL_FATAL(kiln_rt_pool_create(threads[t], &pool), KILN_OK);
        for (int rep = 0; rep < 20; ++rep) {
            rendezvous_ctx r;
            atomic_init(&r.arrived, 0);
            atomic_init(&r.timed_out, 0);
            r.expected = threads[t];
            if (rep % 5 == 4)
                sleep_ms(5); /* also from parked workers */
            CU_ASSERT_EQUAL(kiln_rt_parallel_for(pool, threads[t], rendezvous_task, &r), KILN_OK);
            CU_ASSERT_EQUAL(atomic_load(&r.timed_out), 0);
        }
        kiln_rt_pool_destroy(pool);
    }
}

/* 10k back-to-back jobs: no deadlock, no lost index. With 2 threads the
 * median round trip of an empty job is printed. */
static void test_parallel_for_rapid(void)
{
    enum { CALLS = 10000 };
    static const int threads[] = {2, 3, 4};
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; ++t) {
        kiln_rt_pool *pool = NULL;
        CU_ASSERT_EQUAL_FATAL(kiln_rt_pool_create(threads[t], &pool), KILN_OK);
        sum_ctx s;
        atomic_init(&s.sum, 0);
        int failures = 0;
        for (int i = 0; i < CALLS; ++i) {
            int64_t count = 1 + i % 7;
            if (kiln_rt_parallel_for(pool, count, sum_task, &s) != KILN_OK)
                failures++;
        }
        int64_t expected = 0;
        for (int i = 0; i < CALLS; ++i) {
            int64_t count = 1 + i % 7;
            expected += count * (count + 1) / 2;
        }
        CU_ASSERT_EQUAL(failures, 0);
        CU_ASSERT_EQUAL(atomic_load(&s.sum), expected);

        if (threads[t] == 2) {
            int64_t *lat = (int64_t *)malloc(CALLS * sizeof *lat);
            CU_ASSERT_PTR_NOT_NULL_FATAL(lat);
            for (int i = 0; i < CALLS; ++i) {
                int64_t t0 = mono_ns();
                kiln_rt_parallel_for(pool, 2, empty_task, NULL);
                lat[i] = mono_ns() - t0;
            }
            qsort(lat, CALLS, sizeof *lat, cmp_i64);
            printf("\n    [latency] empty parallel_for, 2 threads, count 2, %d calls: "
                   "median %.2f us, p90 %.2f us, p99 %.2f us, max %.2f us\n",
                   CALLS, lat[CALLS / 2] / 1e3, lat[CALLS * 9 / 10] / 1e3,
                   lat[CALLS * 99 / 100] / 1e3, lat[CALLS - 1] / 1e3);
            /* Generous bound: only catches a pool that parks on every job. */
            CU_ASSERT(lat[CALLS / 2] < 1000000);
            free(lat);
        }
        kiln_rt_pool_destroy(pool);
    }
}

/* Jobs back to back whose fn, ctx and count change every time, on pools with
 * up to 8 threads (more than the CPUs of a small machine), with pauses that
 * let the workers park. Workers then often arrive after the job they were
 * woken for is over, or while the caller sets up the next one: a job ends
 * when its chunks are done, not when every worker has seen it. Such a late
 * worker must never run a task: every task checks that its job is the one
 * in progress and has its count. */
typedef struct job_ctx {
    _Atomic int live; /* 1 while its parallel_for runs */
    int64_t count;
    _Atomic int hits[64];
    _Atomic int stale; /* tasks that ran outside their job or with a wrong count */
} job_ctx;

static void job_check(job_ctx *c, int64_t index, int64_t count)
{
    if (!atomic_load(&c->live) || count != c->count || index < 0 || index >= count)
        atomic_fetch_add(&c->stale, 1);
    else
        atomic_fetch_add_explicit(&c->hits[index], 1, memory_order_relaxed);
}

static void job_task_a(void *ctx, int64_t index, int64_t count) { job_check((job_ctx *)ctx, index, count); }

static void job_task_b(void *ctx, int64_t index, int64_t count)
{
    job_check((job_ctx *)ctx, index, count);
    for (volatile int spin = 0; spin < 200; spin = spin + 1) {
    } /* a little work, so that workers catch some chunks */
}

static void test_parallel_for_late_workers(void)
{
    static const int threads[] = {2, 3, 8};
    static job_ctx jobs[3];
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; ++t) {
        kiln_rt_pool *pool = NULL;
        CU_ASSERT_EQUAL_FATAL(kiln_rt_pool_create(threads[t], &pool), KILN_OK);
        int stale = 0, wrong = 0, failures = 0;
        for (int i = 0; i < 6000; ++i) {
            job_ctx *c = &jobs[i % 3];
            c->count = 1 + (i * 7) % 64;
            for (int k = 0; k < 64; ++k)
                atomic_store_explicit(&c->hits[k], 0, memory_order_relaxed);
            atomic_store(&c->stale, 0);
            atomic_store(&c->live, 1);
            if (kiln_rt_parallel_for(pool, c->count, i % 2 ? job_task_a : job_task_b, c) != KILN_OK)
                failures++;
            atomic_store(&c->live, 0);
            stale += atomic_load(&c->stale);
            for (int64_t k = 0; k < c->count; ++k)
                if (atomic_load_explicit(&c->hits[k], memory_order_relaxed) != 1)
                    wrong++;
            if (i % 1000 == 999)
                sleep_ms(2); /* the workers park; the next jobs wake them */
        }
        /* Late workers may still be looking at the last job: stale tasks would show up now. */
        sleep_ms(5);
        for (int j = 0; j < 3; ++j)
            stale += atomic_load(&jobs[j].stale);
        CU_ASSERT_EQUAL(failures, 0);
        CU_ASSERT_EQUAL(stale, 0);
        CU_ASSERT_EQUAL(wrong, 0);
        if (stale || wrong)
            fprintf(stderr, "late workers, pool of %d: %d stale tasks, %d indices not run once\n", threads[t], stale,
                    wrong);
        kiln_rt_pool_destroy(pool);
    }
}

static void test_pool_destroy_idle(void)
{
    kiln_rt_pool *pool = NULL;
    /* Never used. */
    CU_ASSERT_EQUAL_FATAL(kiln_rt_pool_create(4, &pool), KILN_OK);
    kiln_rt_pool_destroy(pool);
    /* Used, then destroyed while workers still spin. */
    CU_ASSERT_EQUAL_FATAL(kiln_rt_pool_create(3, &pool), KILN_OK);
    check_parallel_for(pool, 10);
    kiln_rt_pool_destroy(pool);
    /* Used, then destroyed after workers parked. */
    CU_ASSERT_EQUAL_FATAL(kiln_rt_pool_create(3, &pool), KILN_OK);
    check_parallel_for(pool, 10);
    sleep_ms(50);
    check_parallel_for(pool, 10); /* wakes parked workers */
    sleep_ms(50);
    kiln_rt_pool_destroy(pool);
    /* Many short-lived pools. */
    for (int i = 0; i < 50; ++i) {
        CU_ASSERT_EQUAL_FATAL(kiln_rt_pool_create(1 + i % 4, &pool), KILN_OK);
        if (i % 2)
            check_parallel_for(pool, 5);
        kiln_rt_pool_destroy(pool);
    }
    kiln_rt_pool_destroy(NULL);
}

static void test_pool_idle_cpu(void)
{
    kiln_rt_pool *pool = NULL;
    CU_ASSERT_EQUAL_FATAL(kiln_rt_pool_create(4, &pool), KILN_OK);
    for (int i = 0; i < 100; ++i)
        check_parallel_for(pool, 8);
    /* Let the workers finish spinning and park, then measure a quiet period. */
    sleep_ms(20);
    int64_t c0 = cpu_ns(), w0 = mono_ns();
    sleep_ms(200);
    int64_t c1 = cpu_ns(), w1 = mono_ns();
    double cpu_ms = (double)(c1 - c0) / 1e6, wall_ms = (double)(w1 - w0) / 1e6;
    printf("\n    [idle] pool of 4: %.3f ms CPU over %.1f ms wall\n", cpu_ms, wall_ms);
    CU_ASSERT(cpu_ms < 10.0);
    /* Still works after parking. */
    check_parallel_for(pool, 8);
    kiln_rt_pool_destroy(pool);
}

typedef struct nested_ctx {
    kiln_rt_pool *pool;
    _Atomic int nested_status_sum; /* sum of statuses from nested calls */
    _Atomic int nested_calls;
} nested_ctx;

static void nested_task(void *ctx, int64_t index, int64_t count)
{
    nested_ctx *n = (nested_ctx *)ctx;
    (void)index;
    (void)count;
    kiln_status st = kiln_rt_parallel_for(n->pool, 4, empty_task, NULL);
    atomic_fetch_add(&n->nested_status_sum, (int)st);
    atomic_fetch_add(&n->nested_calls, 1);
}

static void test_parallel_for_nested_rejected(void)
{
    static const int threads[] = {1, 2, 4};
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; ++t) {
        nested_ctx n;
        CU_ASSERT_EQUAL_FATAL(kiln_rt_pool_create(threads[t], &n.pool), KILN_OK);
        atomic_init(&n.nested_status_sum, 0);
        atomic_init(&n.nested_calls, 0);
        CU_ASSERT_EQUAL(kiln_rt_parallel_for(n.pool, 6, nested_task, &n), KILN_OK);
        CU_ASSERT_EQUAL(atomic_load(&n.nested_calls), 6);
        CU_ASSERT_EQUAL(atomic_load(&n.nested_status_sum), 6 * (int)KILN_ERR_INVALID_ARGUMENT);
        /* The pool is usable afterwards. */
        check_parallel_for(n.pool, 33);
        kiln_rt_pool_destroy(n.pool);
    }
}

/* Two pools driven from two threads at once stay independent. */
typedef struct driver_arg {
    kiln_rt_pool *pool;
    int ok;
} driver_arg;

static void *driver_main(void *arg)
{
    driver_arg *d = (driver_arg *)arg;
    sum_ctx s;
    atomic_init(&s.sum, 0);
    d->ok = 1;
    for (int i = 0; i < 2000; ++i)
        if (kiln_rt_parallel_for(d->pool, 10, sum_task, &s) != KILN_OK)
            d->ok = 0;
    if (atomic_load(&s.sum) != 2000 * 55)
        d->ok = 0;
    return NULL;
}

static void test_two_pools_concurrently(void)
{
    driver_arg d[2];
    pthread_t th[2];
    for (int i = 0; i < 2; ++i) {
        CU_ASSERT_EQUAL_FATAL(kiln_rt_pool_create(2, &d[i].pool), KILN_OK);
        d[i].ok = 0;
    }
    for (int i = 0; i < 2; ++i)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, driver_main, &d[i]), 0);
    for (int i = 0; i < 2; ++i) {
        pthread_join(th[i], NULL);
        CU_ASSERT(d[i].ok);
        kiln_rt_pool_destroy(d[i].pool);
    }
}

/* ---- BLAS ------------------------------------------------------------------------ */

static float frand(unsigned *state)
{
    *state = *state * 1664525u + 1013904223u;
    return (float)((*state >> 8) & 0xffff) / 32768.0f - 1.0f;
}

/* Reference C = alpha op(A) op(B) + beta C in double; also returns, per
 * element, the magnitude scale used for the relative tolerance. */
static void ref_sgemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                      const float *b, int ldb, float beta, const float *c0, int ldc,
                      double *ref, double *scale)
{
    for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) {
            double acc = 0, mag = 0;
            for (int p = 0; p < k; ++p) {
                double av = ta ? a[p * lda + i] : a[i * lda + p];
                double bv = tb ? b[j * ldb + p] : b[p * ldb + j];
                acc += av * bv;
                mag += fabs(av * bv);
            }
            double cv = beta == 0.0f ? 0.0 : (double)beta * c0[i * ldc + j];
            ref[i * n + j] = alpha * acc + cv;
            scale[i * n + j] = fabs((double)alpha) * mag + fabs(cv);
        }
}

static int check_sgemm_case(int ta, int tb, int m, int n, int k, int pad, float alpha, float beta,
                            unsigned seed)
{
    /* BLAS wants leading dimensions >= 1 even for empty matrices. */
    int lda = ((ta ? m : k) > 0 ? (ta ? m : k) : 1) + pad;
    int ldb = ((tb ? k : n) > 0 ? (tb ? k : n) : 1) + pad;
    int ldc = n + pad;
    int arows = ta ? k : m, brows = tb ? n : k;
    size_t asz = (size_t)arows * (size_t)lda + 1, bsz = (size_t)brows * (size_t)ldb + 1,
           csz = (size_t)m * (size_t)ldc + 1;
    float *a = (float *)malloc(asz * sizeof *a), *b = (float *)malloc(bsz * sizeof *b);
    float *c = (float *)malloc(csz * sizeof *c), *c0 = (float *)malloc(csz * sizeof *c0);
    double *ref = (double *)malloc((size_t)m * (size_t)n * sizeof *ref);
    double *scale = (double *)malloc((size_t)m * (size_t)n * sizeof *scale);
    int ok = 1;
    if (!a || !b || !c || !c0 || !ref || !scale) {
        ok = 0;
        goto done;
    }
    for (size_t i = 0; i < asz; ++i) a[i] = frand(&seed);
    for (size_t i = 0; i < bsz; ++i) b[i] = frand(&seed);
    for (size_t i = 0; i < csz; ++i)
        c0[i] = beta == 0.0f ? NAN : frand(&seed); /* beta 0 must not read C */
    memcpy(c, c0, csz * sizeof *c);
    ref_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c0, ldc, ref, scale);
    kiln_rt_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    for (int i = 0; i < m && ok; ++i) {
        for (int j = 0; j < ldc && ok; ++j) {
            if (j < n) {
                double got = c[i * ldc + j], want = ref[i * n + j];
                double tol = 1e-4 * (scale[i * n + j] > 1.0 ? scale[i * n + j] : 1.0);
                if (!(fabs(got - want) <= tol)) {
                    fprintf(stderr, "sgemm ta=%d tb=%d m=%d n=%d k=%d pad=%d: C[%d][%d]=%g want %g\n",
                            ta, tb, m, n, k, pad, i, j, got, want);
                    ok = 0;
                }
            } else if (memcmp(&c[i * ldc + j], &c0[i * ldc + j], sizeof *c) != 0) {
                fprintf(stderr, "sgemm wrote padding C[%d][%d]\n", i, j);
                ok = 0;
            }
        }
    }
done:
    free(a);
    free(b);
    free(c);
    free(c0);
    free(ref);
    free(scale);
    return ok;
}

static void test_sgemm(void)
{
    static const int shapes[][3] = {{1, 1, 1},   {1, 7, 3},    {5, 1, 9},    {3, 5, 7},
                                    {17, 33, 9}, {64, 64, 64}, {100, 1, 50}, {31, 45, 129},
                                    {2, 3, 0}};
    unsigned seed = 12345;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s)
        for (int ta = 0; ta < 2; ++ta)
            for (int tb = 0; tb < 2; ++tb)
                for (int pad = 0; pad < 2; ++pad) {
                    CU_ASSERT(check_sgemm_case(ta, tb, shapes[s][0], shapes[s][1], shapes[s][2],
                                               pad * 3, 1.0f, 0.0f, seed++));
                    CU_ASSERT(check_sgemm_case(ta, tb, shapes[s][0], shapes[s][1], shapes[s][2],
                                               pad * 5, 1.5f, 0.5f, seed++));
                    CU_ASSERT(check_sgemm_case(ta, tb, shapes[s][0], shapes[s][1], shapes[s][2],
                                               pad, -0.25f, 1.0f, seed++));
                }
}

static void test_sgemm_invalid_is_noop(void)
{
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 0, 0, 1}, c[4] = {9, 9, 9, 9};
    kiln_rt_sgemm(0, 0, -1, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
    kiln_rt_sgemm(0, 0, 2, 2, 2, 1.0f, NULL, 2, b, 2, 0.0f, c, 2);
    kiln_rt_sgemm(0, 0, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, NULL, 2);
    kiln_rt_sgemm(0, 0, 2, 2, 2, 1.0f, a, 1, b, 2, 0.0f, c, 2); /* lda < k */
    kiln_rt_sgemm(0, 0, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 1); /* ldc < n */
    kiln_rt_sgemm(0, 0, 0, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2); /* m == 0 */
    for (int i = 0; i < 4; ++i)
        CU_ASSERT_EQUAL(c[i], 9.0f);
    kiln_rt_sgemm(0, 0, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2); /* valid: C = A */
    for (int i = 0; i < 4; ++i)
        CU_ASSERT_EQUAL(c[i], a[i]);
}

/* Row blocks of one GEMM computed from pool tasks, as generated kernels do. */
typedef struct gemm_rows_ctx {
    int m, n, k, rows_per_task;
    const float *a, *b;
    float *c;
} gemm_rows_ctx;

static void gemm_rows_task(void *ctx, int64_t index, int64_t count)
{
    gemm_rows_ctx *g = (gemm_rows_ctx *)ctx;
    (void)count;
    int r0 = (int)index * g->rows_per_task;
    int rows = g->m - r0 < g->rows_per_task ? g->m - r0 : g->rows_per_task;
    kiln_rt_sgemm(0, 0, rows, g->n, g->k, 1.0f, g->a + (size_t)r0 * g->k, g->k, g->b, g->n, 0.0f,
                  g->c + (size_t)r0 * g->n, g->n);
}

static void test_sgemm_in_pool(void)
{
    enum { M = 96, N = 40, K = 70 };
    static float a[M * K], b[K * N], c[M * N], c_serial[M * N];
    unsigned seed = 777;
    for (int i = 0; i < M * K; ++i) a[i] = frand(&seed);
    for (int i = 0; i < K * N; ++i) b[i] = frand(&seed);
    kiln_rt_sgemm(0, 0, M, N, K, 1.0f, a, K, b, N, 0.0f, c_serial, N);

    kiln_rt_pool *pool = NULL;
    CU_ASSERT_EQUAL_FATAL(kiln_rt_pool_create(3, &pool), KILN_OK);
    gemm_rows_ctx g = {M, N, K, 16, a, b, c};
    int64_t tasks = (M + g.rows_per_task - 1) / g.rows_per_task;
    for (int rep = 0; rep < 20; ++rep) {
        memset(c, 0, sizeof c);
        CU_ASSERT_EQUAL(kiln_rt_parallel_for(pool, tasks, gemm_rows_task, &g), KILN_OK);
        int ok = 1;
        for (int i = 0; i < M * N; ++i)
            if (fabsf(c[i] - c_serial[i]) > 1e-4f * (1.0f + fabsf(c_serial[i])))
                ok = 0;
        CU_ASSERT(ok);
    }
    kiln_rt_pool_destroy(pool);
}

/* ---- external weights -------------------------------------------------------- */

static char tmp_dir[256];

static int make_tmp_dir(void)
{
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    snprintf(tmp_dir, sizeof tmp_dir, "%s/kiln_rt_test_XXXXXX", base);
    return mkdtemp(tmp_dir) != NULL ? 0 : -1;
}

static void write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    if (size > 0)
        CU_ASSERT_EQUAL(fwrite(data, 1, size, f), size);
    CU_ASSERT_EQUAL(fclose(f), 0);
}

static void test_checksum_vectors(void)
{
    CU_ASSERT_EQUAL(kiln_rt_checksum("", 0), UINT64_C(0xcbf29ce484222325));
    CU_ASSERT_EQUAL(kiln_rt_checksum(NULL, 0), UINT64_C(0xcbf29ce484222325));
    CU_ASSERT_EQUAL(kiln_rt_checksum(NULL, 10), UINT64_C(0xcbf29ce484222325));
    CU_ASSERT_EQUAL(kiln_rt_checksum("a", 1), UINT64_C(0xaf63dc4c8601ec8c));
    CU_ASSERT_EQUAL(kiln_rt_checksum("foobar", 6), UINT64_C(0x85944171f73967e8));
}

static void test_map_file(void)
{
    char path[512], missing[512];
    enum { SIZE = 100003 };
    unsigned char *content = (unsigned char *)malloc(SIZE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(content);
    for (int i = 0; i < SIZE; ++i)
        content[i] = (unsigned char)(i * 31 + (i >> 8));
    snprintf(path, sizeof path, "%s/weights.bin", tmp_dir);
    snprintf(missing, sizeof missing, "%s/does_not_exist.bin", tmp_dir);
    write_file(path, content, SIZE);
    uint64_t sum = kiln_rt_checksum(content, SIZE);

    const void *data = (const void *)1;
    void *handle = (void *)1;
    /* Success. */
    CU_ASSERT_EQUAL_FATAL(kiln_rt_map_file(path, SIZE, sum, &data, &handle), KILN_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    CU_ASSERT_PTR_NOT_NULL(handle);
    CU_ASSERT_EQUAL(memcmp(data, content, SIZE), 0);
    kiln_rt_unmap_file(handle);

    /* Missing file. */
    data = (const void *)1;
    handle = (void *)1;
    CU_ASSERT_EQUAL(kiln_rt_map_file(missing, SIZE, sum, &data, &handle), KILN_ERR_IO);
    CU_ASSERT_PTR_NULL(data);
    CU_ASSERT_PTR_NULL(handle);
    /* A directory is not a weights file. */
    CU_ASSERT_EQUAL(kiln_rt_map_file(tmp_dir, 0, 0, &data, &handle), KILN_ERR_IO);
    /* Nor is a FIFO, refused at once: opening it must not wait for a writer
     * (the alarm fails the test instead of letting it hang). */
    char fifo[512];
    snprintf(fifo, sizeof fifo, "%s/weights.fifo", tmp_dir);
    CU_ASSERT_EQUAL_FATAL(mkfifo(fifo, 0600), 0);
    alarm(20);
    CU_ASSERT_EQUAL(kiln_rt_map_file(fifo, 0, 0, &data, &handle), KILN_ERR_IO);
    alarm(0);
    unlink(fifo);
    /* Size mismatch, both ways. */
    CU_ASSERT_EQUAL(kiln_rt_map_file(path, SIZE - 1, sum, &data, &handle), KILN_ERR_WEIGHTS);
    CU_ASSERT_EQUAL(kiln_rt_map_file(path, SIZE + 1, sum, &data, &handle), KILN_ERR_WEIGHTS);
    CU_ASSERT_PTR_NULL(data);
    CU_ASSERT_PTR_NULL(handle);
    /* Checksum mismatch. */
    CU_ASSERT_EQUAL(kiln_rt_map_file(path, SIZE, sum ^ 1, &data, &handle), KILN_ERR_WEIGHTS);
    CU_ASSERT_PTR_NULL(data);
    CU_ASSERT_PTR_NULL(handle);
    /* One flipped byte in the file is detected. */
    content[SIZE / 2] ^= 0x40;
    write_file(path, content, SIZE);
    CU_ASSERT_EQUAL(kiln_rt_map_file(path, SIZE, sum, &data, &handle), KILN_ERR_WEIGHTS);
    CU_ASSERT_EQUAL(kiln_rt_map_file(path, SIZE, kiln_rt_checksum(content, SIZE), &data, &handle),
                    KILN_OK);
    kiln_rt_unmap_file(handle);

    /* Empty file. */
    write_file(path, NULL, 0);
    CU_ASSERT_EQUAL(kiln_rt_map_file(path, 0, kiln_rt_checksum(NULL, 0), &data, &handle), KILN_OK);
    CU_ASSERT_PTR_NOT_NULL(data);
    CU_ASSERT_PTR_NOT_NULL(handle);
    kiln_rt_unmap_file(handle);

    kiln_rt_unmap_file(NULL);
    remove(path);
    free(content);
}

/* ---- NULL / invalid arguments ------------------------------------------------- */

static void test_null_arguments(void)
{
    kiln_rt_pool *pool = (kiln_rt_pool *)1;
    const void *data = NULL;
    void *handle = NULL;

    CU_ASSERT_EQUAL(kiln_rt_pool_create(1, NULL), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_EQUAL(kiln_rt_pool_create(-1, &pool), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_PTR_NULL(pool);
    CU_ASSERT_EQUAL(kiln_rt_pool_create(100000, &pool), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_PTR_NULL(pool);
    CU_ASSERT_EQUAL(kiln_rt_pool_size(NULL), 1);
    CU_ASSERT_EQUAL(kiln_rt_parallel_for(NULL, 10, NULL, NULL), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_EQUAL_FATAL(kiln_rt_pool_create(2, &pool), KILN_OK);
    CU_ASSERT_EQUAL(kiln_rt_parallel_for(pool, 10, NULL, NULL), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_EQUAL(kiln_rt_parallel_for(pool, 0, NULL, NULL), KILN_ERR_INVALID_ARGUMENT);
    kiln_rt_pool_destroy(pool);

    CU_ASSERT_EQUAL(kiln_rt_map_file(NULL, 0, 0, &data, &handle), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_EQUAL(kiln_rt_map_file("x", 0, 0, NULL, &handle), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_PTR_NULL(handle);
    CU_ASSERT_EQUAL(kiln_rt_map_file("x", 0, 0, &data, NULL), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_PTR_NULL(data);

    kiln_rt_pool_destroy(NULL);
    kiln_rt_unmap_file(NULL);
    kiln_rt_aligned_free(NULL);
    kiln_rt_arena_init(NULL, NULL, 0);
    CU_ASSERT_PTR_NULL(kiln_rt_arena_alloc(NULL, 0));
}

/* Compile-time check of the public types and the options initialiser. */
static void test_public_types(void)
{
    kiln_options o = KILN_OPTIONS_INIT;
    CU_ASSERT_EQUAL(o.num_threads, 0);
    CU_ASSERT_PTR_NULL(o.workspace);
    CU_ASSERT_EQUAL(o.workspace_size, 0);
    CU_ASSERT_PTR_NULL(o.weights_path);
    static const int64_t dims[2] = {-1, 3};
    kiln_tensor_info ti = {"in:0", "in_0", KILN_DTYPE_F32, 2, dims};
    static const kiln_layer_info li = {"fc", "dense", "bf16"};
    kiln_model_info mi = {"m", "d", 1, &ti, 1, &ti, 0, 0, 0, 1, &li};
    CU_ASSERT_EQUAL(mi.inputs[0].dims[0], -1);
    CU_ASSERT_EQUAL(KILN_DTYPE_F32, 0);
    CU_ASSERT_EQUAL(KILN_DTYPE_I32, 5);
}

/* ---- model instances (kiln/instance.h) ----------------------------------------- */

/* A model described by hand, as generated code describes itself: one
 * batched input [batch,2,3], one output [batch,4], a small workspace. */
static const int64_t inst_in_dims[3] = {-1, 2, 3};
static const int64_t inst_out_dims[2] = {-1, 4};
static const kiln_tensor_info inst_inputs[1] = {{"image", "image", KILN_DTYPE_F32, 3, inst_in_dims}};
static const kiln_tensor_info inst_outputs[1] = {{"logits", "logits", KILN_DTYPE_F32, 2, inst_out_dims}};
static const kiln_model_info inst_info = {"tiny", "", 1, inst_inputs, 1, inst_outputs, 0, 64, 128, 0, NULL};
static const int64_t fixed_dims[4] = {1, 3, 32, 32};
static const kiln_tensor_info fixed_inputs[1] = {{"image", "image", KILN_DTYPE_F32, 4, fixed_dims}};
static const kiln_model_info fixed_info = {"tinyres", "", 1, fixed_inputs, 1, inst_outputs, 0, 64, 0, 0, NULL};

static kiln_rt_model_desc inst_desc(int batched, const kiln_model_info *info)
{
    kiln_rt_model_desc d;
    memset(&d, 0, sizeof d);
    d.version = KILN_RT_MODEL_DESC_VERSION;
    d.flags = batched ? KILN_RT_MODEL_BATCHED : 0;
    d.name = info->name;
    d.workspace_fixed_bytes = 64;
    d.workspace_per_batch_bytes = batched ? 128 : 0;
    d.info = info;
    d.max_batch = 1000;
    return d;
}

static void test_version(void)
{
    CU_ASSERT_STRING_EQUAL(kiln_version(), KILN_VERSION_STRING);
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", KILN_VERSION_MAJOR, KILN_VERSION_MINOR, KILN_VERSION_PATCH);
    CU_ASSERT_STRING_EQUAL(kiln_version(), expect);
}

/* Every failing call explains itself: create through opt->error, a run
 * through kiln_rt_instance_last_error. */
static void test_instance_messages(void)
{
    kiln_rt_model_desc d = inst_desc(1, &inst_info);
    kiln_rt_instance *m = NULL;
    char why[256];
    kiln_options o = KILN_OPTIONS_INIT;
    CU_ASSERT_EQUAL(o.size, sizeof(kiln_options));
    o.error = why;
    o.error_size = sizeof why;
    o.num_threads = -2;
    CU_ASSERT_EQUAL(kiln_rt_instance_create(&d, &o, &m), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_PTR_NULL(m);
    CU_ASSERT(strstr(why, "num_threads is -2") != NULL);
    /* Options that were not initialised with KILN_OPTIONS_INIT. */
    kiln_options raw;
    memset(&raw, 0, sizeof raw);
    raw.error = why;
    raw.error_size = sizeof why;
    CU_ASSERT_EQUAL(kiln_rt_instance_create(&d, &raw, &m), KILN_ERR_INVALID_ARGUMENT);
    /* size 0: error_size lies beyond it, so nothing may be written there */
    CU_ASSERT(strstr(why, "num_threads is -2") != NULL);
    /* An older caller's struct (only the first five fields) works. */
    kiln_options old = KILN_OPTIONS_INIT;
    old.size = offsetof(kiln_options, weights_path) + sizeof(const char *);
    old.pool = (kiln_rt_pool *)(uintptr_t)1; /* beyond its size: must not be read */
    CU_ASSERT_EQUAL_FATAL(kiln_rt_instance_create(&d, &old, &m), KILN_OK);
    kiln_rt_instance_destroy(m);
    m = NULL;
    /* Misaligned and too small workspaces. */
    o.num_threads = 1;
    unsigned char *ws = kiln_rt_aligned_alloc(4096);
    o.workspace = ws + 8;
    o.workspace_size = 1000;
    CU_ASSERT_EQUAL(kiln_rt_instance_create(&d, &o, &m), KILN_ERR_WORKSPACE);
    CU_ASSERT(strstr(why, "not 64-byte aligned") != NULL);
    o.workspace = ws;
    o.workspace_size = 100;
    CU_ASSERT_EQUAL(kiln_rt_instance_create(&d, &o, &m), KILN_ERR_WORKSPACE);
    CU_ASSERT(strstr(why, "holds 100 bytes") != NULL && strstr(why, "needs 192") != NULL);
    o.workspace_size = 64 + 3 * 128;
    CU_ASSERT_EQUAL_FATAL(kiln_rt_instance_create(&d, &o, &m), KILN_OK);
    CU_ASSERT_STRING_EQUAL(why, "");

    float in[4 * 6], out[4 * 4];
    const float *ins[1] = {in};
    float *outs[1] = {out};
    size_t in_bytes[1] = {sizeof in}, out_bytes[1] = {sizeof out};
    void *wsp;
    const void *wts;
    CU_ASSERT_EQUAL(kiln_rt_instance_begin(m, 3, ins, outs, in_bytes, out_bytes, &wsp, &wts), KILN_OK);
    CU_ASSERT_PTR_EQUAL(wsp, ws);
    CU_ASSERT_STRING_EQUAL(kiln_rt_instance_last_error(m), "");
    CU_ASSERT_EQUAL(kiln_rt_instance_begin(m, 0, ins, outs, NULL, NULL, &wsp, &wts), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT(strstr(kiln_rt_instance_last_error(m), "batch 0") != NULL);
    CU_ASSERT_PTR_NULL(wsp);
    /* the caller's workspace holds batch 3, not 4 */
    CU_ASSERT_EQUAL(kiln_rt_instance_begin(m, 4, ins, outs, NULL, NULL, &wsp, &wts), KILN_ERR_WORKSPACE);
    CU_ASSERT(strstr(kiln_rt_instance_last_error(m), "batch 4 needs 576") != NULL);
    CU_ASSERT_EQUAL(kiln_rt_instance_begin(m, 1001, ins, outs, NULL, NULL, &wsp, &wts), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT(strstr(kiln_rt_instance_last_error(m), "too large") != NULL);
    const float *no_in[1] = {NULL};
    CU_ASSERT_EQUAL(kiln_rt_instance_begin(m, 1, no_in, outs, NULL, NULL, &wsp, &wts), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_STRING_EQUAL(kiln_rt_instance_last_error(m), "input 0 'image' is NULL");
    CU_ASSERT_EQUAL(kiln_rt_instance_begin(m, 1, ins, NULL, NULL, NULL, &wsp, &wts), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_STRING_EQUAL(kiln_rt_instance_last_error(m), "the array of outputs is NULL");
    /* Checked sizes: the output of batch 3 needs 48 bytes. */
    out_bytes[0] = 47;
    CU_ASSERT_EQUAL(kiln_rt_instance_begin(m, 3, ins, outs, in_bytes, out_bytes, &wsp, &wts),
                    KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_STRING_EQUAL(kiln_rt_instance_last_error(m),
                           "output 0 'logits' is 47 bytes; batch 3 of [batch,4] needs 48 (12 floats)");
    out_bytes[0] = 48;
    CU_ASSERT_EQUAL(kiln_rt_instance_begin(m, 3, ins, outs, in_bytes, out_bytes, &wsp, &wts), KILN_OK);
    CU_ASSERT_STRING_EQUAL(kiln_rt_instance_last_error(m), "");
    kiln_rt_instance_destroy(m);
    kiln_rt_aligned_free(ws);
    CU_ASSERT(strlen(kiln_rt_instance_last_error(NULL)) > 0);
    CU_ASSERT_EQUAL(kiln_rt_instance_begin(NULL, 1, ins, outs, NULL, NULL, &wsp, &wts), KILN_ERR_INVALID_ARGUMENT);

    /* Fixed shapes: the example. */
    kiln_rt_model_desc f = inst_desc(0, &fixed_info);
    CU_ASSERT_EQUAL_FATAL(kiln_rt_instance_create(&f, NULL, &m), KILN_OK);
    CU_ASSERT_EQUAL(kiln_rt_instance_begin(m, 4, ins, outs, NULL, NULL, &wsp, &wts), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT_STRING_EQUAL(kiln_rt_instance_last_error(m),
                           "batch 4 but model 'tinyres' has fixed shapes [1,3,32,32]; run it with batch 1");
    CU_ASSERT_EQUAL(kiln_rt_instance_begin(m, 1, ins, outs, NULL, NULL, &wsp, &wts), KILN_OK);
    kiln_rt_instance_destroy(m);

    /* A descriptor from a newer kiln. */
    kiln_rt_model_desc newer = inst_desc(1, &inst_info);
    newer.version = KILN_RT_MODEL_DESC_VERSION + 1;
    CU_ASSERT_EQUAL(kiln_rt_instance_create(&newer, &o, &m), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT(strstr(why, "newer runtime") != NULL);
}

static void test_instance_weights_messages(void)
{
    char path[512], why[300];
    snprintf(path, sizeof path, "%s/inst.weights", tmp_dir);
    unsigned char bytes[100];
    for (int i = 0; i < 100; i++)
        bytes[i] = (unsigned char)i;
    write_file(path, bytes, sizeof bytes);
    kiln_rt_model_desc d = inst_desc(1, &inst_info);
    d.flags |= KILN_RT_MODEL_EXTERNAL_WEIGHTS;
    d.weight_bytes = 100;
    d.weights_checksum = kiln_rt_checksum(bytes, 100);
    d.weights_path = path;
    kiln_options o = KILN_OPTIONS_INIT;
    o.num_threads = 1;
    o.error = why;
    o.error_size = sizeof why;
    kiln_rt_instance *m = NULL;
    CU_ASSERT_EQUAL_FATAL(kiln_rt_instance_create(&d, &o, &m), KILN_OK);
    kiln_rt_instance_destroy(m);
    d.weight_bytes = 99;
    CU_ASSERT_EQUAL(kiln_rt_instance_create(&d, &o, &m), KILN_ERR_WEIGHTS);
    CU_ASSERT(strstr(why, "is 100 bytes, the model was compiled with 99") != NULL);
    d.weight_bytes = 100;
    d.weights_checksum ^= 1;
    CU_ASSERT_EQUAL(kiln_rt_instance_create(&d, &o, &m), KILN_ERR_WEIGHTS);
    CU_ASSERT(strstr(why, "checksum") != NULL);
    o.weights_path = "/nonexistent/kiln.weights";
    CU_ASSERT_EQUAL(kiln_rt_instance_create(&d, &o, &m), KILN_ERR_IO);
    CU_ASSERT_STRING_EQUAL(why, "weights file '/nonexistent/kiln.weights': no such file");
    /* a buffer of one byte gets the empty string, never an overflow */
    o.error_size = 1;
    CU_ASSERT_EQUAL(kiln_rt_instance_create(&d, &o, &m), KILN_ERR_IO);
    CU_ASSERT_EQUAL(why[0], '\0');
    remove(path);
}

/* Task counter for the threading tests. */
typedef struct hits {
    _Atomic int64_t sum;
    _Atomic int calls;
} hits;

static void count_task(void *ctx, int64_t i, int64_t count)
{
    hits *h = (hits *)ctx;
    atomic_fetch_add(&h->sum, i + 1);
    atomic_fetch_add(&h->calls, 1);
    (void)count;
}

/* The application's own parallel_for: runs the tasks on two threads. */
typedef struct app_pf {
    _Atomic int jobs;
    kiln_status result;
} app_pf;

typedef struct app_half {
    kiln_rt_task_fn task;
    void *ctx;
    int64_t lo, hi, count;
} app_half;

static void *app_half_run(void *p)
{
    app_half *h = (app_half *)p;
    for (int64_t i = h->lo; i < h->hi; i++)
        h->task(h->ctx, i, h->count);
    return NULL;
}

static kiln_status app_parallel_for(void *arg, int64_t count, kiln_rt_task_fn task, void *task_ctx)
{
    app_pf *a = (app_pf *)arg;
    atomic_fetch_add(&a->jobs, 1);
    if (a->result != KILN_OK)
        return a->result;
    app_half h[2] = {{task, task_ctx, 0, count / 2, count}, {task, task_ctx, count / 2, count, count}};
    pthread_t t;
    if (pthread_create(&t, NULL, app_half_run, &h[1]) != 0)
        return KILN_ERR_THREAD;
    app_half_run(&h[0]);
    pthread_join(t, NULL);
    return KILN_OK;
}

static void test_instance_threads(void)
{
    kiln_rt_model_desc d = inst_desc(1, &inst_info);
    kiln_rt_instance *m = NULL;
    char why[256];
    kiln_options o = KILN_OPTIONS_INIT;
    o.error = why;
    o.error_size = sizeof why;

    /* The application's threads. */
    app_pf app = {0, KILN_OK};
    o.parallel_for = app_parallel_for;
    o.parallel_for_arg = &app;
    o.num_threads = 2;
    CU_ASSERT_EQUAL(kiln_rt_instance_create(&d, &o, &m), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT(strstr(why, "leave num_threads 0") != NULL);
    o.num_threads = 0;
    CU_ASSERT_EQUAL_FATAL(kiln_rt_instance_create(&d, &o, &m), KILN_OK);
    hits h = {0, 0};
    CU_ASSERT_EQUAL(kiln_rt_instance_parallel_for(m, 100, count_task, &h), KILN_OK);
    CU_ASSERT_EQUAL(atomic_load(&h.sum), 5050);
    CU_ASSERT_EQUAL(atomic_load(&h.calls), 100);
    CU_ASSERT_EQUAL(atomic_load(&app.jobs), 1);
    app.result = KILN_ERR_THREAD;
    CU_ASSERT_EQUAL(kiln_rt_instance_parallel_for(m, 10, count_task, &h), KILN_ERR_THREAD);
    CU_ASSERT(strstr(kiln_rt_instance_last_error(m), "application's parallel_for failed") != NULL);
    kiln_rt_instance_destroy(m);

    /* A shared pool; both given is an error. */
    kiln_rt_pool *pool = NULL;
    CU_ASSERT_EQUAL_FATAL(kiln_rt_pool_create(2, &pool), KILN_OK);
    o.pool = pool;
    CU_ASSERT_EQUAL(kiln_rt_instance_create(&d, &o, &m), KILN_ERR_INVALID_ARGUMENT);
    CU_ASSERT(strstr(why, "both pool and parallel_for") != NULL);
    o.parallel_for = NULL;
    kiln_rt_instance *a = NULL, *b = NULL;
    CU_ASSERT_EQUAL_FATAL(kiln_rt_instance_create(&d, &o, &a), KILN_OK);
    CU_ASSERT_EQUAL_FATAL(kiln_rt_instance_create(&d, &o, &b), KILN_OK);
    hits ha = {0, 0}, hb = {0, 0};
    CU_ASSERT_EQUAL(kiln_rt_instance_parallel_for(a, 64, count_task, &ha), KILN_OK);
    CU_ASSERT_EQUAL(kiln_rt_instance_parallel_for(b, 64, count_task, &hb), KILN_OK);
    CU_ASSERT_EQUAL(atomic_load(&ha.sum), 64 * 65 / 2);
    CU_ASSERT_EQUAL(atomic_load(&hb.sum), 64 * 65 / 2);
    kiln_rt_instance_destroy(a); /* does not stop the shared pool */
    CU_ASSERT_EQUAL(kiln_rt_parallel_for(pool, 8, count_task, &hb), KILN_OK);
    kiln_rt_instance_destroy(b);
    kiln_rt_pool_destroy(pool);
}

/* Two instances on one shared pool, run from two threads at once: the one
 * that finds the pool busy runs its tasks itself; every task runs once. */
typedef struct shared_job {
    kiln_rt_instance *m;
    hits h;
    int rounds;
    kiln_status st;
} shared_job;

static void slow_task(void *ctx, int64_t i, int64_t count)
{
    hits *h = (hits *)ctx;
    volatile double x = 0;
    for (int k = 0; k < 2000; k++)
        x += (double)k * 1e-9;
    atomic_fetch_add(&h->sum, i + 1);
    atomic_fetch_add(&h->calls, 1);
    (void)count;
}

static void *shared_worker(void *p)
{
    shared_job *j = (shared_job *)p;
    for (int r = 0; r < j->rounds && j->st == KILN_OK; r++)
        j->st = kiln_rt_instance_parallel_for(j->m, 37, slow_task, &j->h);
    return NULL;
}

static void test_instance_shared_pool_concurrent(void)
{
    kiln_rt_model_desc d = inst_desc(1, &inst_info);
    kiln_rt_pool *pool = NULL;
    CU_ASSERT_EQUAL_FATAL(kiln_rt_pool_create(2, &pool), KILN_OK);
    kiln_options o = KILN_OPTIONS_INIT;
    o.pool = pool;
    static shared_job jobs[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].rounds = 200;
        CU_ASSERT_EQUAL_FATAL(kiln_rt_instance_create(&d, &o, &jobs[i].m), KILN_OK);
    }
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, shared_worker, &jobs[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL(jobs[i].st, KILN_OK);
        CU_ASSERT_EQUAL(atomic_load(&jobs[i].h.calls), 200 * 37);
        CU_ASSERT_EQUAL(atomic_load(&jobs[i].h.sum), 200 * (37 * 38 / 2));
        kiln_rt_instance_destroy(jobs[i].m);
    }
    kiln_rt_pool_destroy(pool);
}

/* ---- main --------------------------------------------------------------------- */

static int suite_init(void)
{
    return make_tmp_dir();
}

static int suite_clean(void)
{
    return rmdir(tmp_dir) == 0 ? 0 : -1;
}

/* Descriptor versions: 1 (before the CPU check) and 2 are accepted, a newer
 * one refused; version 2's required extensions are checked. */
static void test_instance_versions(void)
{
    kiln_rt_model_desc d;
    memset(&d, 0, sizeof d);
    d.name = "versions";
    d.workspace_fixed_bytes = 64;
    kiln_options o = KILN_OPTIONS_INIT;
    o.num_threads = 1;
    kiln_rt_instance *m = NULL;
    for (uint32_t v = 1; v <= KILN_RT_MODEL_DESC_VERSION; v++) {
        d.version = v;
        CU_ASSERT(kiln_rt_instance_create(&d, &o, &m) == KILN_OK);
        kiln_rt_instance_destroy(m);
    }
    d.version = KILN_RT_MODEL_DESC_VERSION + 1;
    m = (kiln_rt_instance *)1;
    CU_ASSERT(kiln_rt_instance_create(&d, &o, &m) == KILN_ERR_INVALID_ARGUMENT && m == NULL);
    d.version = 2;
    d.required_cpu_features = "sse3,no-such-extension";
    m = (kiln_rt_instance *)1;
    CU_ASSERT(kiln_rt_instance_create(&d, &o, &m) == KILN_ERR_UNSUPPORTED && m == NULL);
    d.version = 1; /* a version-1 descriptor has no such field: not read */
    CU_ASSERT(kiln_rt_instance_create(&d, &o, &m) == KILN_OK);
    kiln_rt_instance_destroy(m);
}

int main(void)
{
    static const struct {
        const char *name;
        CU_TestFunc fn;
    } tests[] = {
        {"status strings", test_status_strings},
        {"public types", test_public_types},
        {"aligned alloc", test_aligned_alloc},
        {"arena", test_arena},
        {"parallel_for counts x pool sizes", test_parallel_for_counts},
        {"pool default size", test_pool_default_size},
        {"parallel_for serial order", test_parallel_for_serial_order},
        {"parallel_for runs tasks concurrently", test_parallel_for_concurrency},
        {"parallel_for 10k rapid calls", test_parallel_for_rapid},
        {"late workers run no stale task", test_parallel_for_late_workers},
        {"pool destroy while idle", test_pool_destroy_idle},
        {"idle pool burns no CPU", test_pool_idle_cpu},
        {"nested parallel_for rejected", test_parallel_for_nested_rejected},
        {"two pools from two threads", test_two_pools_concurrently},
        {"sgemm vs naive", test_sgemm},
        {"sgemm invalid args no-op", test_sgemm_invalid_is_noop},
        {"sgemm inside pool tasks", test_sgemm_in_pool},
        {"checksum vectors", test_checksum_vectors},
        {"map_file", test_map_file},
        {"NULL arguments", test_null_arguments},
        {"instance descriptor versions", test_instance_versions},
        {"version", test_version},
        {"instance messages", test_instance_messages},
        {"instance weights messages", test_instance_weights_messages},
        {"instance threads: app parallel_for, shared pool", test_instance_threads},
        {"shared pool from two threads", test_instance_shared_pool_concurrent},
    };

    /* OpenBLAS runs single-threaded under the pool (see kiln/blas.h); this
     * also keeps its own threads from spinning during the idle-CPU test. */
    kiln_rt_blas_set_threads(1);

    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite suite = CU_add_suite("runtime", suite_init, suite_clean);
    if (suite == NULL) {
        CU_cleanup_registry();
        return 2;
    }
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; ++i) {
        if (CU_add_test(suite, tests[i].name, tests[i].fn) == NULL) {
            CU_cleanup_registry();
            return 2;
        }
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_ErrorCode err = CU_basic_run_tests();
    unsigned failures = CU_get_number_of_failures();
    unsigned suite_failures = CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return (err != CUE_SUCCESS || failures != 0 || suite_failures != 0) ? 1 : 0;
}
