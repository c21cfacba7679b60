/* pool.c: the thread pool behind kiln_rt_parallel_for.
 *
 * Design
 * ------
 * One job at a time. The driving thread ("caller") splits [0, count) into
 * chunks, publishes the job (fn, ctx, count, chunk) in atomic fields, sets
 * `pending` to the number of chunks and `next` to (generation + 1, chunks),
 * then bumps `generation` (a seq_cst RMW, hence a release). Everybody, caller
 * included, claims chunks by a compare-and-swap on `next`, which holds the
 * job's generation in its high half and the chunks still unclaimed in its low
 * half: a claim succeeds only while the generation matches and a chunk is
 * left. Whoever runs chunks subtracts them from `pending` (release); the
 * caller returns once `pending` is 0 (acquire), which makes every task's
 * effects visible to it.
 *
 * The job is over when its chunks are done, not when every worker has seen
 * it: a worker that is still parked, being woken, or descheduled by another
 * process when the job starts does not hold the caller up. It finds the job
 * exhausted when it arrives (the low half of `next` is 0, or the generation
 * has moved on) and goes back to waiting. This matters on a machine with as
 * many cores as threads: waking a parked worker takes tens of microseconds in
 * a VM, and a worker that shares its core with another process may not run
 * for a whole time slice; the caller meanwhile runs the chunks itself.
 *
 * Why a late worker never runs a task with another job's fields: it reads
 * the fields after acquiring the generation it saw, and uses them only after
 * a claim on `next` with that generation succeeded. A successful claim means
 * that job still had a chunk left, so it was not over, so the caller had not
 * yet begun writing the next job's fields (it does so only after `pending`
 * reached 0, which needs this worker's chunk); and the worker's reads happen
 * before its release on `pending`. Reads by a worker whose claim then fails
 * may see a mix of two jobs; the fields are atomics so that this is not a
 * data race, and the values are thrown away.
 *
 * Spreading (Linux). A new thread starts on its creator's CPU, and a thread
 * that spins on a flag keeps running in short bursts, so the scheduler
 * considers it cache-hot and may never move it: on the project's 2-vCPU VM
 * the worker of a 2-thread pool stayed on the caller's vCPU in most runs,
 * sharing one CPU with it while the other idled. So every thread records the
 * CPU it last took part in a job on (cpu_of), and a worker that finds itself
 * on the caller's CPU, or on that of a worker with a lower index, moves away:
 * it narrows its own affinity to the CPUs it was allowed at creation minus
 * those the other threads were last seen on (the kernel migrates it at
 * once), then restores it, so that the scheduler stays free to move it later
 * (onto the caller's CPU while the caller sleeps, say, when another process
 * holds the worker's). It only does so when the pool has no more threads than
 * allowed CPUs (otherwise sharing is unavoidable), and at most once per
 * KILN_RT_MOVE_NS. The caller's affinity is never touched.
 * -DKILN_RT_POOL_NO_SPREAD turns this off.
 *
 * Waiting is spin-then-park on both sides: spin with a pause instruction for
 * up to KILN_RT_SPIN_NS (yielding the CPU between batches), then sleep on a
 * futex (Linux) or a condition variable (elsewhere, or with
 * -DKILN_RT_POOL_NO_FUTEX). A worker parks on its own word (`state`:
 * RUNNING, PARKED, or WAKING once a caller has claimed the wake-up), the
 * caller on `pending`. Lost wake-ups are excluded by a Dekker-style
 * handshake on seq_cst atomics: the sleeper announces itself (sleepers and
 * state PARKED / caller_waiting) and re-checks the generation or `pending`;
 * the waker changes that and then checks for sleepers. With a single total
 * order over those operations at least one side sees the other, and the
 * kernel's compare-and-sleep closes the remaining window. A woken worker can
 * take tens of microseconds to run in a VM; as its state is then WAKING, the
 * jobs posted meanwhile do not pay for more wake-up calls.
 */
#define _GNU_SOURCE
#include "kiln/runtime.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#if defined(__linux__) && !defined(KILN_RT_POOL_NO_FUTEX)
#  define KILN_RT_USE_FUTEX 1
#  include <linux/futex.h>
#  include <sys/syscall.h>
#else
#  define KILN_RT_USE_FUTEX 0
#endif
#if defined(__linux__) && !defined(KILN_RT_POOL_NO_SPREAD)
#  define KILN_RT_SPREAD 1
#else
#  define KILN_RT_SPREAD 0
#endif

#define KILN_RT_CACHE_LINE 64
#define KILN_RT_MAX_THREADS 1024
/* How long a waiting thread spins before it parks. */
#define KILN_RT_SPIN_NS 50000
/* Pause instructions per spin batch. After each batch the spinner reads the
 * clock and yields the CPU: on a quiet machine sched_yield returns at once
 * (back-to-back jobs are picked up within the first batch, before any system
 * call), while on a loaded or oversubscribed one it lets the thread we are
 * waiting for run when the scheduler put it on our CPU. Measured on a loaded
 * 2-CPU box, this halved the time of small jobs compared with pure spinning. */
#define KILN_RT_SPIN_BATCH 64
/* A worker changes its affinity at most this often (see Spreading). */
#define KILN_RT_MOVE_NS 1000000

struct kiln_rt_pool {
    /* Written by the caller only. */
    _Alignas(KILN_RT_CACHE_LINE) _Atomic uint32_t generation; /* futex word */
    _Atomic int shutdown;
    _Atomic int busy; /* a parallel_for is in progress */
    /* The job; atomics because a late worker may read them while the caller
     * writes the next job's (see the design notes). */
    _Atomic(kiln_rt_task_fn) fn;
    _Atomic(void *) ctx;
    _Atomic int64_t count;
    _Atomic uint64_t chunk;
    _Atomic uint32_t chunks;

    /* Claimed by everybody: generation << 32 | chunks not yet claimed. */
    _Alignas(KILN_RT_CACHE_LINE) _Atomic uint64_t next;

    /* Chunks not yet finished, waited on by the caller. */
    _Alignas(KILN_RT_CACHE_LINE) _Atomic uint32_t pending; /* futex word */
    _Atomic int caller_waiting;

    /* Workers parked, or woken but not yet running. */
    _Alignas(KILN_RT_CACHE_LINE) _Atomic int sleepers;

    /* Per thread (0: the caller, i: worker i): the CPU it last took part in
     * a job on, or -1. Written only when it changes. */
    _Alignas(KILN_RT_CACHE_LINE) _Atomic int *cpu_of;

    /* Immutable after creation. */
    _Alignas(KILN_RT_CACHE_LINE) int nthreads;
    int started;       /* threads successfully started */
    bool spread;       /* workers move off CPUs other pool threads use */
    pthread_t *threads;
    struct worker *workers; /* nthreads - 1 */
#if KILN_RT_SPREAD
    cpu_set_t allowed; /* the creating thread's CPUs */
#endif
#if !KILN_RT_USE_FUTEX
    pthread_mutex_t mu;
    pthread_cond_t cv;
#endif
};

/* A worker thread: its parking word and its argument. */
enum { KILN_RT_RUNNING, KILN_RT_PARKED, KILN_RT_WAKING };
struct worker {
    _Alignas(KILN_RT_CACHE_LINE) _Atomic uint32_t state; /* futex word */
    kiln_rt_pool *p;
    int index;            /* 1 .. nthreads - 1 */
    int64_t last_move_ns; /* when it last changed its affinity (its own) */
};

/* ---- low-level helpers ------------------------------------------------- */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        return 1;
    return n > KILN_RT_MAX_THREADS ? KILN_RT_MAX_THREADS : (int)n;
}

/* Sleeps while *word == expected (may return spuriously). */
static void park(kiln_rt_pool *p, _Atomic uint32_t *word, uint32_t expected)
{
#if KILN_RT_USE_FUTEX
    (void)p;
    /* EAGAIN (value already changed) and EINTR both just return. */
    syscall(SYS_futex, (uintptr_t)word, (long)FUTEX_WAIT_PRIVATE, (long)expected, NULL, NULL, 0L);
#else
    pthread_mutex_lock(&p->mu);
    while (atomic_load_explicit(word, memory_order_seq_cst) == expected)
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
#endif
}

/* Wakes threads parked on word (after it was changed). */
static void unpark(kiln_rt_pool *p, _Atomic uint32_t *word, int how_many)
{
#if KILN_RT_USE_FUTEX
    (void)p;
    syscall(SYS_futex, (uintptr_t)word, (long)FUTEX_WAKE_PRIVATE, (long)how_many, NULL, NULL, 0L);
#else
    (void)word;
    (void)how_many;
    /* Taking the mutex orders the change of *word before a parker's re-check. */
    pthread_mutex_lock(&p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_cond_broadcast(&p->cv);
#endif
}

/* Spins, for at most KILN_RT_SPIN_NS, until *word differs from value
 * (until_equal false) or equals it (until_equal true). Returns the last value
 * read (acquire). */
static uint32_t spin(_Atomic uint32_t *word, uint32_t value, bool until_equal)
{
    uint32_t v = atomic_load_explicit(word, memory_order_acquire);
    if ((v == value) == until_equal)
        return v;
    const int64_t deadline = now_ns() + KILN_RT_SPIN_NS;
    for (;;) {
        for (int i = 0; i < KILN_RT_SPIN_BATCH; ++i) {
            cpu_relax();
            v = atomic_load_explicit(word, memory_order_acquire);
            if ((v == value) == until_equal)
                return v;
        }
        sched_yield();
        if (now_ns() >= deadline)
            return v;
    }
}

/* ---- job execution ------------------------------------------------------ */

/* Claims a chunk of job `gen`: its index, or -1 when none is left (or the
 * pool has moved on to a later job). */
static int64_t claim(kiln_rt_pool *p, uint32_t gen, uint32_t chunks)
{
    uint64_t cur = atomic_load_explicit(&p->next, memory_order_relaxed);
    for (;;) {
        uint32_t left = (uint32_t)cur;
        if ((uint32_t)(cur >> 32) != gen || left == 0)
            return -1;
        if (atomic_compare_exchange_weak_explicit(&p->next, &cur, cur - 1, memory_order_relaxed,
                                                  memory_order_relaxed))
            return (int64_t)(chunks - left);
    }
}

/* Runs chunks of job `gen` until none is left; returns how many it ran. The
 * job's fields are read once, before the first claim (see the design notes
 * for why they are the job's own when a claim succeeds). */
static uint32_t run_chunks(kiln_rt_pool *p, uint32_t gen)
{
    const kiln_rt_task_fn fn = atomic_load_explicit(&p->fn, memory_order_relaxed);
    void *const ctx = atomic_load_explicit(&p->ctx, memory_order_relaxed);
    const int64_t count = atomic_load_explicit(&p->count, memory_order_relaxed);
    const uint64_t chunk = atomic_load_explicit(&p->chunk, memory_order_relaxed);
    const uint32_t chunks = atomic_load_explicit(&p->chunks, memory_order_relaxed);
    uint32_t ran = 0;
    int64_t c;

    while ((c = claim(p, gen, chunks)) >= 0) {
        uint64_t begin = (uint64_t)c * chunk;
        uint64_t end = (uint64_t)count - begin < chunk ? (uint64_t)count : begin + chunk;
        for (uint64_t i = begin; i < end; ++i)
            fn(ctx, (int64_t)i, count);
        ran++;
    }
    return ran;
}

/* Worker side: waits for a generation other than seen and returns it. */
static uint32_t wait_for_job(struct worker *w, uint32_t seen)
{
    kiln_rt_pool *p = w->p;
    uint32_t g = spin(&p->generation, seen, false);
    while (g == seen) {
        atomic_fetch_add_explicit(&p->sleepers, 1, memory_order_seq_cst);
        atomic_store_explicit(&w->state, KILN_RT_PARKED, memory_order_seq_cst);
        g = atomic_load_explicit(&p->generation, memory_order_seq_cst);
        if (g == seen)
            park(p, &w->state, KILN_RT_PARKED);
        atomic_store_explicit(&w->state, KILN_RT_RUNNING, memory_order_relaxed);
        atomic_fetch_sub_explicit(&p->sleepers, 1, memory_order_relaxed);
        g = atomic_load_explicit(&p->generation, memory_order_acquire);
    }
    return g;
}

/* Caller side, after bumping the generation: wakes up to `n` parked workers
 * (the lowest-numbered first), each once until it parks again. */
static void wake_workers(kiln_rt_pool *p, int n)
{
    if (atomic_load_explicit(&p->sleepers, memory_order_seq_cst) == 0)
        return;
    for (int i = 0; i < p->started && n > 0; ++i) {
        uint32_t parked = KILN_RT_PARKED;
        if (atomic_compare_exchange_strong_explicit(&p->workers[i].state, &parked, KILN_RT_WAKING,
                                                    memory_order_seq_cst, memory_order_seq_cst)) {
            unpark(p, &p->workers[i].state, 1);
            n--;
        }
    }
}

/* Records the CPU thread `index` runs on. */
static int note_cpu(kiln_rt_pool *p, int index)
{
#if KILN_RT_SPREAD
    int cpu = sched_getcpu();
    if (cpu != atomic_load_explicit(&p->cpu_of[index], memory_order_relaxed))
        atomic_store_explicit(&p->cpu_of[index], cpu, memory_order_relaxed);
    return cpu;
#else
    (void)p;
    (void)index;
    return -1;
#endif
}

/* Worker side of spreading (see the design notes): moves off a CPU that the
 * caller, or a worker with a lower index, was last seen on. */
static void spread(struct worker *w)
{
#if KILN_RT_SPREAD
    kiln_rt_pool *p = w->p;
    if (!p->spread)
        return;
    int cpu = note_cpu(p, w->index);
    if (cpu < 0)
        return;
    bool shared = false;
    for (int i = 0; i < w->index && !shared; ++i)
        shared = atomic_load_explicit(&p->cpu_of[i], memory_order_relaxed) == cpu;
    if (!shared)
        return;
    int64_t now = now_ns();
    if (w->last_move_ns != 0 && now - w->last_move_ns < KILN_RT_MOVE_NS)
        return;
    w->last_move_ns = now;
    cpu_set_t set = p->allowed;
    for (int i = 0; i < p->nthreads; ++i) {
        int other = atomic_load_explicit(&p->cpu_of[i], memory_order_relaxed);
        if (i != w->index && other >= 0 && other < CPU_SETSIZE)
            CPU_CLR(other, &set);
    }
    /* Best effort: narrowing the mask makes the kernel move this thread now;
     * restoring it right away leaves the thread where it is but free to go
     * anywhere later, e.g. to the caller's CPU while the caller sleeps. */
    if (CPU_COUNT(&set) > 0 && sched_setaffinity(0, sizeof set, &set) == 0)
        sched_setaffinity(0, sizeof p->allowed, &p->allowed);
#else
    (void)w;
#endif
}

static void *worker_main(void *arg)
{
    struct worker *w = (struct worker *)arg;
    kiln_rt_pool *p = w->p;
    uint32_t seen = 0; /* generation is 0 when the pool starts */

    for (;;) {
        seen = wait_for_job(w, seen);
        if (atomic_load_explicit(&p->shutdown, memory_order_relaxed))
            return NULL;
        spread(w);
        uint32_t ran = run_chunks(p, seen);
        /* Release this worker's tasks to the caller; the last one out wakes it. */
        if (ran != 0 && atomic_fetch_sub_explicit(&p->pending, ran, memory_order_seq_cst) == ran &&
            atomic_load_explicit(&p->caller_waiting, memory_order_seq_cst))
            unpark(p, &p->pending, 1);
    }
}

/* Caller side: waits until every chunk of the current job has finished. */
static void wait_for_chunks(kiln_rt_pool *p)
{
    uint32_t v = spin(&p->pending, 0, true);
    if (v == 0)
        return;
    atomic_store_explicit(&p->caller_waiting, 1, memory_order_seq_cst);
    for (;;) {
        v = atomic_load_explicit(&p->pending, memory_order_seq_cst);
        if (v == 0)
            break;
        park(p, &p->pending, v);
    }
    atomic_store_explicit(&p->caller_waiting, 0, memory_order_relaxed);
}

/* ---- public API ---------------------------------------------------------- */

static void stop_workers(kiln_rt_pool *p)
{
    atomic_store_explicit(&p->shutdown, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_seq_cst);
    wake_workers(p, INT_MAX);
    for (int i = 0; i < p->started; ++i)
        pthread_join(p->threads[i], NULL);
    p->started = 0;
}

static void free_pool(kiln_rt_pool *p)
{
#if !KILN_RT_USE_FUTEX
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
#endif
    free(p->threads);
    kiln_rt_aligned_free(p->workers);
    free((void *)p->cpu_of);
    kiln_rt_aligned_free(p);
}

KILN_RT_API kiln_status kiln_rt_pool_create(int num_threads, kiln_rt_pool **out)
{
    kiln_rt_pool *p;
    sigset_t block, old;
    int n, cpus, err = 0;

    if (out == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (num_threads < 0 || num_threads > KILN_RT_MAX_THREADS)
        return KILN_ERR_INVALID_ARGUMENT;
    cpus = online_cpus();
    n = num_threads == 0 ? cpus : num_threads;

    p = (kiln_rt_pool *)kiln_rt_aligned_alloc(sizeof *p);
    if (p == NULL)
        return KILN_ERR_OUT_OF_MEMORY;
    atomic_init(&p->generation, 0);
    atomic_init(&p->shutdown, 0);
    atomic_init(&p->busy, 0);
    atomic_init(&p->fn, NULL);
    atomic_init(&p->ctx, NULL);
    atomic_init(&p->count, 0);
    atomic_init(&p->chunk, 1);
    atomic_init(&p->chunks, 0);
    atomic_init(&p->next, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->caller_waiting, 0);
    atomic_init(&p->sleepers, 0);
    p->cpu_of = NULL;
    p->nthreads = n;
    p->started = 0;
    p->spread = false;
    p->threads = NULL;
    p->workers = NULL;
#if !KILN_RT_USE_FUTEX
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        kiln_rt_aligned_free(p);
        return KILN_ERR_OUT_OF_MEMORY;
    }
    if (pthread_cond_init(&p->cv, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        kiln_rt_aligned_free(p);
        return KILN_ERR_OUT_OF_MEMORY;
    }
#endif

    if (n > 1) {
        p->threads = (pthread_t *)calloc((size_t)(n - 1), sizeof *p->threads);
        p->workers = (struct worker *)kiln_rt_aligned_alloc((size_t)(n - 1) * sizeof *p->workers);
        p->cpu_of = (_Atomic int *)calloc((size_t)n, sizeof *p->cpu_of);
        if (p->threads == NULL || p->workers == NULL || p->cpu_of == NULL) {
            free_pool(p);
            return KILN_ERR_OUT_OF_MEMORY;
        }
        for (int i = 0; i < n; ++i)
            atomic_init(&p->cpu_of[i], -1);
        for (int i = 0; i < n - 1; ++i) {
            atomic_init(&p->workers[i].state, KILN_RT_RUNNING);
            p->workers[i].p = p;
            p->workers[i].index = i + 1;
            p->workers[i].last_move_ns = 0;
        }
#if KILN_RT_SPREAD
        CPU_ZERO(&p->allowed);
        p->spread = sched_getaffinity(0, sizeof p->allowed, &p->allowed) == 0 && n <= CPU_COUNT(&p->allowed);
#endif
        /* Workers inherit a mask blocking asynchronous signals, so that they
         * are delivered to application threads. Synchronous ones (faults)
         * stay unblocked: blocking them would kill the process without
         * running handlers such as the sanitizers'. */
        sigfillset(&block);
        sigdelset(&block, SIGSEGV);
        sigdelset(&block, SIGBUS);
        sigdelset(&block, SIGFPE);
        sigdelset(&block, SIGILL);
        sigdelset(&block, SIGTRAP);
        sigdelset(&block, SIGABRT);
        sigdelset(&block, SIGSYS);
        pthread_sigmask(SIG_SETMASK, &block, &old);
        for (int i = 0; i < n - 1; ++i) {
            err = pthread_create(&p->threads[i], NULL, worker_main, &p->workers[i]);
            if (err != 0)
                break;
            p->started++;
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (err != 0) {
            stop_workers(p);
            free_pool(p);
            return KILN_ERR_THREAD;
        }
    }
    *out = p;
    return KILN_OK;
}

KILN_RT_API void kiln_rt_pool_destroy(kiln_rt_pool *p)
{
    if (p == NULL)
        return;
    stop_workers(p);
    free_pool(p);
}

KILN_RT_API int kiln_rt_pool_size(const kiln_rt_pool *p)
{
    return p == NULL ? 1 : p->nthreads;
}

KILN_RT_API kiln_status kiln_rt_parallel_for(kiln_rt_pool *p, int64_t count, kiln_rt_task_fn fn,
                                             void *ctx)
{
    if (fn == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    if (count <= 0)
        return KILN_OK;
    if (p == NULL) {
        for (int64_t i = 0; i < count; ++i)
            fn(ctx, i, count);
        return KILN_OK;
    }
    if (atomic_exchange_explicit(&p->busy, 1, memory_order_acquire))
        return KILN_ERR_INVALID_ARGUMENT;
    if (p->nthreads == 1 || count == 1) {
        for (int64_t i = 0; i < count; ++i)
            fn(ctx, i, count);
    } else {
        /* A few chunks per worker: coarse enough to keep the shared counter
         * cool, fine enough to balance uneven tasks (and at most 2^31). */
        uint64_t chunk = (uint64_t)count / ((uint64_t)p->nthreads * 4u);
        if (chunk == 0)
            chunk = 1;
        if ((uint64_t)count / chunk >= (UINT64_C(1) << 31))
            chunk = (uint64_t)count / (UINT64_C(1) << 30);
        const uint32_t chunks = (uint32_t)(((uint64_t)count + chunk - 1) / chunk);
        const uint32_t gen = atomic_load_explicit(&p->generation, memory_order_relaxed) + 1;
        if (p->spread)
            note_cpu(p, 0);
        /* The previous job is over (pending reached 0, acquire): no claim of it
         * can succeed any more, so its fields may be overwritten. */
        atomic_store_explicit(&p->fn, fn, memory_order_relaxed);
        atomic_store_explicit(&p->ctx, ctx, memory_order_relaxed);
        atomic_store_explicit(&p->count, count, memory_order_relaxed);
        atomic_store_explicit(&p->chunk, chunk, memory_order_relaxed);
        atomic_store_explicit(&p->chunks, chunks, memory_order_relaxed);
        atomic_store_explicit(&p->pending, chunks, memory_order_relaxed);
        atomic_store_explicit(&p->next, (uint64_t)gen << 32 | chunks, memory_order_relaxed);
        /* Publishes the stores above to workers that acquire generation. */
        atomic_fetch_add_explicit(&p->generation, 1, memory_order_seq_cst);
        /* Wake no more workers than there are chunks for besides ours. */
        wake_workers(p, chunks - 1 < (uint32_t)p->started ? (int)(chunks - 1) : p->started);
        uint32_t ran = run_chunks(p, gen);
        if (atomic_fetch_sub_explicit(&p->pending, ran, memory_order_acq_rel) != ran)
            wait_for_chunks(p);
    }
    atomic_store_explicit(&p->busy, 0, memory_order_release);
    return KILN_OK;
}
