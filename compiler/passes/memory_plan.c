/* compiler/passes/memory_plan.c: offsets in the workspace arena.
 *
 * Liveness comes from ir/liveness.h (a fusion group is one step; values
 * inside a group, model inputs/outputs and params need no workspace). Each
 * region (FIXED: unbatched values, BATCH: batched values, sizes per batch
 * item) is planned on its own, by the greedy-by-size algorithm on the
 * interval graph (TFLite's "greedy by size"; Pisarchyk & Lee, "Efficient
 * memory management for deep neural net inference", 2020):
 *
 *   sort the values by size, largest first (ties: earlier first step, then
 *   lower id, so the plan is deterministic);
 *   for each value, take the already placed values whose live ranges meet
 *   its own, in offset order, and put it in the smallest gap between them
 *   that holds it (best fit), or after the last of them when none does.
 *
 * A kernel's scratch (Winograd's transformed tiles: kiln_target_scratch of
 * the node's implementation on the target) is one more item of the fixed
 * region, live at its node's step only, so it shares space with values that
 * are dead by then, and the plan in the IR is the whole workspace the
 * compiled code uses. Sizes are rounded up to 64 bytes so every offset
 * stays 64-byte aligned.
 * The lower bound of a region is the most bytes (unaligned) of its values
 * live at any one step: no plan can use less. g->mem_lower_bound_bytes is the
 * sum over the two regions (their total at batch 1). */
#include <stdlib.h>
#include <string.h>

#include "ir/liveness.h"
#include "ir/rewrite.h"
#include "passes.h"

typedef struct item {
    kiln_id v;
    uint64_t size; /* aligned */
    uint32_t first, last;
    uint64_t offset;
} item;

static int by_size(const void *a, const void *b)
{
    const item *x = a, *y = b;
    if (x->size != y->size)
        return x->size > y->size ? -1 : 1;
    if (x->first != y->first)
        return x->first < y->first ? -1 : 1;
    return x->v < y->v ? -1 : x->v > y->v;
}

static int by_offset(const void *a, const void *b)
{
    const item *x = *(const item *const *)a, *y = *(const item *const *)b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return x->v < y->v ? -1 : x->v > y->v;
}

/* Places items[0..n) (sorted by size); returns the region's size. `scratch`
 * holds n pointers. */
static uint64_t place(item *items, size_t n, const item **scratch)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        item *it = &items[i];
        size_t m = 0;
        for (size_t j = 0; j < i; j++)
            if (items[j].first <= it->last && it->first <= items[j].last)
                scratch[m++] = &items[j];
        qsort(scratch, m, sizeof *scratch, by_offset);
        uint64_t at = 0, best = UINT64_MAX, best_gap = UINT64_MAX;
        for (size_t j = 0; j < m; j++) {
            const item *o = scratch[j];
            if (o->offset > at) {
                uint64_t gap = o->offset - at;
                if (gap >= it->size && gap < best_gap) {
                    best = at;
                    best_gap = gap;
                }
            }
            if (o->offset + o->size > at)
                at = o->offset + o->size;
        }
        it->offset = best != UINT64_MAX ? best : at;
        if (it->offset + it->size > total)
            total = it->offset + it->size;
    }
    return total;
}

kiln_status kiln_pass_memory_plan(kiln_graph *g, const kiln_target *t, kiln_diag *d)
{
    kiln_graph_clear_annotations(g, KILN_ANNOT_MEMORY);
    for (size_t i = 0; t && i < g->n_nodes; i++)
        g->nodes[i].scratch_bytes = kiln_target_scratch(t, g, &g->nodes[i], g->nodes[i].impl);
    kiln_liveness lv;
    kiln_status st = kiln_liveness_compute(g, &lv);
    if (st != KILN_OK) {
        kiln_diag_error(d, (kiln_loc){0}, st == KILN_ERR_OUT_OF_MEMORY ? "out of memory in pass memory_plan"
                                                                        : "memory_plan: a value's size overflows");
        return st;
    }
    size_t nv = g->n_values + g->n_nodes + 1; /* values, then the nodes' scratch */
    item *items = kiln_malloc(sizeof *items * nv);
    const item **scratch = kiln_malloc(sizeof *scratch * nv);
    if (!items || !scratch) {
        kiln_diag_error(d, (kiln_loc){0}, "out of memory in pass memory_plan");
        st = KILN_ERR_OUT_OF_MEMORY;
        goto done;
    }
    uint64_t region_size[2];
    for (int r = 0; r < 2; r++) {
        kiln_mem_region region = r ? KILN_MEM_BATCH : KILN_MEM_FIXED;
        size_t n = 0;
        for (size_t v = 0; v < g->n_values; v++)
            if (lv.needs_memory[v] && kiln_liveness_region(g, (kiln_id)v) == region)
                items[n++] = (item){(kiln_id)v, kiln_mem_align_up(lv.bytes[v]), lv.first[v], lv.last[v], 0};
        for (size_t i = 0; region == KILN_MEM_FIXED && i < g->n_nodes; i++)
            if (g->nodes[i].scratch_bytes)
                items[n++] = (item){(kiln_id)(g->n_values + i), kiln_mem_align_up(g->nodes[i].scratch_bytes),
                                    lv.node_step[i], lv.node_step[i], 0};
        qsort(items, n, sizeof *items, by_size);
        region_size[r] = place(items, n, scratch);
        for (size_t k = 0; k < n; k++) {
            if (items[k].v >= g->n_values) {
                g->nodes[items[k].v - g->n_values].scratch_offset = items[k].offset;
                continue;
            }
            g->values[items[k].v].mem = region;
            g->values[items[k].v].mem_offset = items[k].offset;
        }
    }
    uint64_t lb_fixed, lb_batch;
    if (kiln_liveness_lower_bound(g, &lv, &lb_fixed, &lb_batch) != KILN_OK) {
        kiln_graph_clear_annotations(g, KILN_ANNOT_MEMORY);
        kiln_diag_error(d, (kiln_loc){0}, "out of memory in pass memory_plan");
        st = KILN_ERR_OUT_OF_MEMORY;
        goto done;
    }
    g->mem_fixed_bytes = region_size[0];
    g->mem_batch_bytes = region_size[1];
    g->mem_lower_bound_bytes = lb_fixed + lb_batch;
done:
    kiln_free(items);
    kiln_free(scratch);
    kiln_liveness_release(&lv);
    return st;
}
