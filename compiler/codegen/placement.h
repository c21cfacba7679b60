/* compiler/codegen/placement.h: where every value lives while a compiled model
 * runs: the caller's input and output buffers, the weights, or a region of
 * the workspace. This is the one place that computes workspace offsets; the
 * kernels only ask for a value's buffer. No LLVM here.
 *
 * The workspace is `fixed_bytes` of regions for unbatched values and the
 * kernels' scratch, followed by the regions of batched values, each
 * `batch * per-item bytes` long:
 *
 *   region address = workspace + offset + batch * per_batch
 *
 * with every region 64-byte aligned (per-item sizes are rounded up to 64
 * bytes). The offsets come from the passes' memory plan when there is one. */
#ifndef KILN_CODEGEN_LAYOUT_H
#define KILN_CODEGEN_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codegen.h"
#include "ir/diag.h"
#include "ir/graph.h"

/* Our own parameter names in NAME_run, renamed when a model value takes them. */
typedef struct kiln_cg_names {
    char **inputs;       /* C spellings, in model order */
    char **outputs;
    size_t n_inputs, n_outputs;
    char model_param[32]; /* "m", or "kiln_m" when a value is called m */
    char batch_param[32]; /* "batch", or "kiln_batch" */
} kiln_cg_names;

typedef struct kiln_cg_placement {
    size_t n_values;
    kiln_cg_buffer *values;      /* by value id */
    uint64_t fixed_bytes;        /* workspace = fixed_bytes + batch * per_batch_bytes */
    uint64_t per_batch_bytes;
    kiln_cg_buffer *node_scratch; /* by node: its kernel's scratch (WORKSPACE) when it needs any */
    kiln_cg_buffer scratch;      /* the scratch shared by the kernels the plan gives none */
    uint64_t scratch_shared_bytes; /* its size (0: every kernel's scratch is in the plan) */
    uint64_t scratch_largest_bytes; /* the most scratch one kernel needs */
    uint64_t max_item_bytes;     /* largest bytes per batch item of any batched value */
    bool batched;                /* the model has a symbolic batch */
    bool planned;                /* offsets from the passes' memory plan */
    kiln_cg_names names;
} kiln_cg_placement;

/* Plans the buffers of g. stored[v] (NULL: all true) is false for values a
 * fusion group keeps in registers: they get no buffer. With a memory plan
 * (compiler/passes/memory_plan.c: kiln_value.mem, kiln_node.scratch_*,
 * kiln_graph.mem_*) the workspace regions and kernel scratch are the plan's
 * offsets, and nothing is placed beyond the plan (a value or a scratch the
 * plan has no place for, in a graph planned without the target, gets a
 * region after it). Without one, every value has its own region and the
 * kernels share one scratch region. An alias shares its operand's buffer
 * (under a plan only when no other value reuses that memory while the alias
 * is read). node_scratch[i]: the scratch node i's kernel needs (bytes;
 * NULL: none does); a plan that gives a node less is an error.
 * expose: no plan and no aliases; every stored node output not written to a
 * model output gets its own workspace region (kiln check reads them back).
 * Errors (colliding C names, a model name that is a C keyword) go to d. */
kiln_status kiln_cg_place_buffers(const kiln_graph *g, bool expose, const bool *stored, const uint64_t *node_scratch,
                                kiln_cg_placement *out, kiln_diag *d);
void kiln_cg_placement_release(kiln_cg_placement *l);

/* Whether slice node n is a view: its result is one contiguous block of its
 * (unbatched, plain) operand, starting *offset_bytes into it: every axis
 * before the sliced one has size 1, and the step is 1 (or one element is
 * taken). The buffer plan then gives it its operand's buffer at that offset
 * (when the operand lives in the workspace) and the kernel emits no code. A
 * batched operand is never viewed: a batch item of the slice would have to
 * start where the operand's item does, but the code reads every value as
 * dense items one after another. */
bool kiln_cg_slice_view(const kiln_graph *g, const kiln_node *n, uint64_t *offset_bytes);

/* True for a C or C++ keyword (which cannot name a parameter). */
bool kiln_cg_is_keyword(const char *s);

#endif
