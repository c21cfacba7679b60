/* tests/codegen/guard_mem.c: see guard_mem.h. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS under -std=c99 (guard_examples.sh also passes it: -include comes first) */
#endif
#include "guard_mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static size_t page_size(void)
{
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096;
}

const char *guard_place_name(guard_place p)
{
    return p == GUARD_END ? "ending at a guard page" : p == GUARD_START ? "starting at a guard page"
                                                                         : "4 bytes after a guard page";
}

int guard_alloc(guard_buf *b, size_t bytes, guard_place place, size_t align)
{
    size_t page = page_size();
    size_t body = (bytes + 4 + page - 1) / page * page; /* room for the +4 placement */
    if (body == 0)
        body = page;
    memset(b, 0, sizeof *b);
    b->map_size = body + 2 * page;
    b->map = mmap(NULL, b->map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b->map == MAP_FAILED) {
        perror("guard_alloc: mmap");
        b->map = NULL;
        return -1;
    }
    char *lo = (char *)b->map, *first = lo + page, *after = first + body;
    if (mprotect(lo, page, PROT_NONE) != 0 || mprotect(after, page, PROT_NONE) != 0) {
        perror("guard_alloc: mprotect");
        munmap(b->map, b->map_size);
        b->map = NULL;
        return -1;
    }
    if (place == GUARD_END) {
        uintptr_t p = (uintptr_t)(after - bytes);
        if (align > 1)
            p -= p % align;
        b->p = (void *)p;
    } else {
        b->p = first + (place == GUARD_START_PLUS4 ? 4 : 0);
    }
    b->bytes = bytes;
    return 0;
}

void guard_readonly(guard_buf *b, bool ro)
{
    size_t page = page_size();
    if (b->map)
        mprotect((char *)b->map + page, b->map_size - 2 * page, ro ? PROT_READ : PROT_READ | PROT_WRITE);
}

void guard_free(guard_buf *b)
{
    if (b->map)
        munmap(b->map, b->map_size);
    memset(b, 0, sizeof *b);
}

static size_t tensor_elements(const kiln_tensor_info *t, int64_t batch)
{
    size_t n = 1;
    for (int i = 0; i < t->rank; i++)
        n *= (size_t)(t->dims[i] < 0 ? batch : t->dims[i]);
    return n;
}

static void fill(float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(s >> 11) / 4503599627370496.0 - 1.0);
    }
}

/* One batch and thread count: a reference run, then each placement. */
static int check_one(const kiln_model_info *info, size_t (*ws_size)(int64_t), guard_run_fn run, void *ctx,
                     int64_t batch, int threads, const char *label)
{
    int nin = info->num_inputs, nout = info->num_outputs, failures = 0;
    float **in = calloc((size_t)nin + 1, sizeof *in), **ref = calloc((size_t)nout + 1, sizeof *ref);
    float **gin = calloc((size_t)nin + 1, sizeof *gin), **gout = calloc((size_t)nout + 1, sizeof *gout);
    guard_buf *bin = calloc((size_t)nin + 1, sizeof *bin), *bout = calloc((size_t)nout + 1, sizeof *bout), ws;
    memset(&ws, 0, sizeof ws);
    if (!in || !ref || !gin || !gout || !bin || !bout) {
        fprintf(stderr, "%s: out of memory\n", label);
        failures++;
        goto done;
    }
    for (int k = 0; k < nin; k++) {
        size_t n = tensor_elements(&info->inputs[k], batch);
        in[k] = malloc((n ? n : 1) * sizeof(float));
        if (!in[k]) {
            failures++;
            goto done;
        }
        fill(in[k], n, 977u * (uint64_t)batch + (uint64_t)k);
    }
    for (int k = 0; k < nout; k++)
        ref[k] = malloc((tensor_elements(&info->outputs[k], batch) + 1) * sizeof(float));
    kiln_status st = run(ctx, batch, threads, NULL, 0, (const float *const *)in, ref);
    if (st != KILN_OK) {
        fprintf(stderr, "%s: batch %lld, %d threads: the plain run failed: %s\n", label, (long long)batch, threads,
                kiln_status_string(st));
        failures++;
        goto done;
    }
    size_t wbytes = ws_size(batch);
    for (int place = 0; place < GUARD_N_PLACES; place++) {
        bool ok = true;
        for (int k = 0; k < nin && ok; k++) {
            size_t n = tensor_elements(&info->inputs[k], batch);
            ok = guard_alloc(&bin[k], n * sizeof(float), (guard_place)place, 0) == 0;
            if (ok) {
                gin[k] = bin[k].p;
                memcpy(gin[k], in[k], n * sizeof(float));
                guard_readonly(&bin[k], true);
            }
        }
        for (int k = 0; k < nout && ok; k++) {
            size_t n = tensor_elements(&info->outputs[k], batch);
            ok = guard_alloc(&bout[k], n * sizeof(float), (guard_place)place, 0) == 0;
            if (ok) {
                gout[k] = bout[k].p;
                memset(gout[k], 0xff, n * sizeof(float)); /* NaN: an element never written shows */
            }
        }
        /* The workspace keeps its promised 64-byte alignment; 4 bytes off it
         * must be refused. */
        guard_place wplace = place == GUARD_START_PLUS4 ? GUARD_START : (guard_place)place;
        if (ok && wbytes)
            ok = guard_alloc(&ws, wbytes, wplace, 64) == 0;
        if (!ok) {
            failures++;
        } else {
            st = run(ctx, batch, threads, wbytes ? ws.p : NULL, wbytes, (const float *const *)gin, gout);
            if (st != KILN_OK) {
                fprintf(stderr, "%s: batch %lld, %d threads, buffers %s: run failed: %s\n", label, (long long)batch,
                        threads, guard_place_name((guard_place)place), kiln_status_string(st));
                failures++;
            }
            for (int k = 0; k < nout && st == KILN_OK; k++) {
                size_t n = tensor_elements(&info->outputs[k], batch);
                if (memcmp(gout[k], ref[k], n * sizeof(float)) != 0) {
                    size_t i = 0;
                    while (i < n && memcmp(&gout[k][i], &ref[k][i], sizeof(float)) == 0)
                        i++;
                    fprintf(stderr,
                            "%s: batch %lld, %d threads, buffers %s: output '%s' differs from the plain run at "
                            "element %zu: %.9g vs %.9g\n",
                            label, (long long)batch, threads, guard_place_name((guard_place)place),
                            info->outputs[k].name, i, (double)gout[k][i], (double)ref[k][i]);
                    failures++;
                }
            }
            if (place == GUARD_START_PLUS4 && wbytes) {
                st = run(ctx, batch, threads, (char *)ws.p + 4, wbytes - 4, (const float *const *)gin, gout);
                if (st != KILN_ERR_WORKSPACE) {
                    fprintf(stderr, "%s: a workspace 4 bytes off its alignment gave %s, not KILN_ERR_WORKSPACE\n",
                            label, kiln_status_string(st));
                    failures++;
                }
            }
        }
        for (int k = 0; k < nin; k++)
            guard_free(&bin[k]);
        for (int k = 0; k < nout; k++)
            guard_free(&bout[k]);
        guard_free(&ws);
    }
done:
    for (int k = 0; in && k < nin; k++)
        free(in[k]);
    for (int k = 0; ref && k < nout; k++)
        free(ref[k]);
    free(in);
    free(ref);
    free(gin);
    free(gout);
    free(bin);
    free(bout);
    return failures;
}

int guard_check_model(const kiln_model_info *info, size_t (*ws_size)(int64_t), guard_run_fn run, void *ctx,
                      const int64_t *batches, int n_batches, const int *threads, int n_threads, const char *label)
{
    bool batched = false;
    for (int k = 0; k < info->num_inputs; k++)
        batched |= info->inputs[k].rank > 0 && info->inputs[k].dims[0] < 0;
    int failures = 0;
    for (int b = 0; b < n_batches; b++) {
        if (!batched && batches[b] != 1)
            continue;
        for (int t = 0; t < n_threads; t++)
            failures += check_one(info, ws_size, run, ctx, batches[b], threads[t], label);
    }
    return failures;
}
