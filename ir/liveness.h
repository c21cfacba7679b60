/* ir/liveness.h: the memory plan's view of a graph: steps, live ranges and
 * sizes. The memory planner (compiler/passes/memory_plan.c) places values with
 * it and the verifier (ir/verify.c) checks plans with it, so both agree on
 * what "live at the same time" means.
 *
 * Steps. The nodes run in order; a fusion group (kiln_node.group) runs as one
 * kernel, so all of its members share one step. Step numbers start at 0.
 *
 * Which values need workspace memory: node outputs that are not model outputs
 * (those are the caller's memory) and are not produced inside a fusion group
 * (a member other than the group's last: the next member reads it from
 * registers). Model inputs and params never do.
 *
 * A value that needs memory is live from the step of its producer to the
 * last step that reads it (its producer's step when nothing reads it): both
 * ends included, so a kernel's inputs and output never share memory.
 *
 * A node's scratch (kiln_node.scratch_bytes, set by the memory plan from the
 * target) lives in the fixed region at the node's step only. */
#ifndef KILN_IR_LIVENESS_H
#define KILN_IR_LIVENESS_H

#include <stdbool.h>
#include <stdint.h>

#include "graph.h"

#define KILN_MEM_ALIGN 64 /* every planned offset is a multiple of this */

typedef struct kiln_liveness {
    uint32_t n_steps;
    uint32_t *node_step; /* per node */
    bool *needs_memory;  /* per value */
    uint32_t *first;     /* per value needing memory: producing step */
    uint32_t *last;      /* per value needing memory: last reading step */
    uint64_t *bytes;     /* per value needing memory: bytes (per batch item when batched) */
} kiln_liveness;

/* Computes the above for g (ids in range and nodes in topological order are
 * assumed: run after kiln_ir_verify's structural checks). Returns
 * KILN_ERR_SHAPE when a value's size overflows, KILN_ERR_OUT_OF_MEMORY. On
 * failure nothing needs releasing. */
kiln_status kiln_liveness_compute(const kiln_graph *g, kiln_liveness *out);
void kiln_liveness_release(kiln_liveness *l);

/* The least memory any plan needs, per region: the most bytes (unaligned)
 * of that region's values (and scratch) live at one step. kiln_graph.mem_lower_bound_bytes
 * is their sum (the two regions at batch 1). KILN_ERR_OUT_OF_MEMORY. */
kiln_status kiln_liveness_lower_bound(const kiln_graph *g, const kiln_liveness *l, uint64_t *fixed,
                                      uint64_t *batch);

/* The region a value that needs memory belongs to: BATCH when batched. */
kiln_mem_region kiln_liveness_region(const kiln_graph *g, kiln_id v);

/* Bytes of a value's storage (kiln_type_storage_elements_per_item: a blocked
 * value counts its padding lanes): per batch item when batched; 0 on overflow. */
uint64_t kiln_value_bytes(const kiln_graph *g, kiln_id v);

static inline uint64_t kiln_mem_align_up(uint64_t x)
{
    return (x + (KILN_MEM_ALIGN - 1)) & ~(uint64_t)(KILN_MEM_ALIGN - 1);
}

#endif
