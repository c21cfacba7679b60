/* tests/codegen/guard_mem.h: buffers against PROT_NONE pages, and the
 * check that a compiled model reads and writes only inside its buffers
 * (docs/testing.md, "Guard pages"). Used by the JIT test on random models
 * (test_guard_pages.c) and by the application built for every example
 * (guard_app.c, guard_examples.sh). Needs only libc and <kiln/runtime.h>.
 *
 * Placements (docs/generated-api.md promises float alignment for inputs
 * and outputs, 64 bytes for a caller's workspace):
 *   GUARD_END         the buffer's last byte is just before a PROT_NONE page
 *                     (a workspace: its start rounded down to 64 bytes, so
 *                     it ends within 63 bytes of the guard)
 *   GUARD_START       the buffer starts just after a PROT_NONE page
 *   GUARD_START_PLUS4 4 bytes after it: inputs and outputs only (a workspace
 *                     so placed must be refused with KILN_ERR_WORKSPACE)
 * Inputs are also made read-only while the model runs (they are only read). */
#ifndef KILN_TEST_GUARD_MEM_H
#define KILN_TEST_GUARD_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kiln/runtime.h>

typedef enum guard_place { GUARD_END, GUARD_START, GUARD_START_PLUS4, GUARD_N_PLACES } guard_place;

typedef struct guard_buf {
    void *map;
    size_t map_size;
    void *p; /* the buffer */
    size_t bytes;
} guard_buf;

/* 0 on success; -1 (printed) when mmap fails. */
int guard_alloc(guard_buf *b, size_t bytes, guard_place place, size_t align);
/* The buffer's pages read-only (true) or writable again. */
void guard_readonly(guard_buf *b, bool ro);
void guard_free(guard_buf *b);
const char *guard_place_name(guard_place p);

/* One run of the model on `threads` threads: creates an instance (with the
 * caller's workspace ws of ws_size bytes, or its own when ws is NULL), runs
 * batch items, destroys it. The status of create (when it fails) or run. */
typedef kiln_status (*guard_run_fn)(void *ctx, int64_t batch, int threads, void *ws, size_t ws_size,
                                    const float *const *in, float *const *out);

/* For each batch and thread count: a run with malloc'd buffers and the
 * instance's own workspace, then a run per placement with every input,
 * output and the workspace guarded, whose outputs must be bitwise equal;
 * and a workspace 4 bytes off its alignment must be refused. Returns the
 * number of failures (each printed with `label`). An unbatched model runs
 * at batch 1 only. */
int guard_check_model(const kiln_model_info *info, size_t (*ws_size)(int64_t), guard_run_fn run, void *ctx,
                      const int64_t *batches, int n_batches, const int *threads, int n_threads, const char *label);

#endif
