/* compiler/passes/passes.h: the optimization passes and the pipeline that
 * runs them (docs/passes.md).
 *
 * One pass per file, each `kiln_status kiln_pass_<name>(kiln_graph *g,
 * kiln_diag *d)`; layout, select, schedule and memory_plan also take their
 * options (below), which the pipeline fills from kiln_pipeline_options. A pass edits `g` in
 * place, reports problems to `d` at the nodes' locations, and returns
 * KILN_OK or the status of the first problem. Out of memory, a pass returns
 * KILN_ERR_OUT_OF_MEMORY and leaves a graph that still verifies (possibly
 * with only part of its work done) and that kiln_graph_destroy frees.
 *
 * The pipeline, in order:
 *
 *   verify          kiln_ir_verify: the input is sound
 *   infer_shapes    every node's output type from its op's shape rule
 *   fold_batchnorm  batchnorm folded into the conv2d/dense before it
 *   fold_constants  identity/dropout and other no-op nodes removed
 *   dce             nodes and params no model output depends on removed
 *   fuse            fusion groups marked (kiln_node.group)
 *   layout          channel-blocked values and reorders (kiln_type.layout),
 *                   groups made again
 *   precision       the precision each node computes in (kiln_node.precision)
 *   select          each node's implementation (kiln_node.impl)
 *   schedule        tasks per kernel (kiln_node.tasks)
 *   memory_plan     workspace offsets (kiln_value.mem, kiln_graph.mem_*),
 *                   kernels' scratch included (kiln_node.scratch_*)
 *
 * The schedule runs before the memory plan (ARCHITECTURE.md lists them the
 * other way round): a kernel's scratch (Winograd's slots) depends on its
 * task count, and the plan must hold the scratch that runs.
 *
 * Usage (what `kiln dump --after PASS` and `kiln compile --dump-ir` do):
 *
 *   kiln_pipeline_options o = {.stop_after = "fuse", .verify_each = true};
 *   kiln_status st = kiln_pipeline_run(g, &o, &diag);
 *   if (st == KILN_OK) kiln_ir_print(g, stdout, ".");
 *
 * Threads: a pass touches only its graph; different graphs can be compiled
 * on different threads at once. */
#ifndef KILN_PASSES_PASSES_H
#define KILN_PASSES_PASSES_H

#include <stdbool.h>
#include <stdio.h>

#include "compiler/target/target.h"
#include "ir/diag.h"
#include "ir/graph.h"
#include "kiln/status.h"

/* ---- the passes ---------------------------------------------------------- */

/* kiln_ir_verify, as a pass. */
kiln_status kiln_pass_verify(kiln_graph *g, kiln_diag *d);

/* Reruns every node's shape rule in order and stores the result (negative
 * axes become non-negative). The dtype, layout and quantization already on a
 * value stay: they are decisions of passes, not of shape rules (shapes are
 * logical in every layout). KILN_ERR_SHAPE names the layer. */
kiln_status kiln_pass_infer_shapes(kiln_graph *g, kiln_diag *d);

/* batchnorm(conv2d(x)) and batchnorm(dense(x)) (dense of rank-2 output, where
 * the channel axis 1 is `units`) become one conv2d/dense with new weight and
 * bias params (INLINE f32, computed in double:
 *     s = gamma / sqrt(var + eps);  W' = W * s (per output channel);
 *     b' = (b - mean) * s + beta), when the producer's output is read by the
 * batchnorm only and is no model output, every param's data is bound, types
 * are plain f32, and both nodes have the same precision. The fused node takes
 * the batchnorm's output value (its name, so consumers and model outputs are
 * unchanged) and the layer "PRODUCER+BN" (e.g. "conv1+bn1"). The old params
 * stay for dce. */
kiln_status kiln_pass_fold_batchnorm(kiln_graph *g, kiln_diag *d);

/* Removes nodes that compute nothing, rewiring their uses to their operand:
 * identity, dropout, reshape/flatten to the same shape, transpose by the
 * identity permutation, mul or div by scalar 1, sub of scalar 0. When the
 * removed node's output is a model output, its operand (a node output that is
 * not itself a model output) takes its name; otherwise the node stays.
 * `constant` nodes stay. */
kiln_status kiln_pass_fold_constants(kiln_graph *g, kiln_diag *d);

/* Removes every node no model output depends on and every param no
 * remaining node reads, renumbering values and nodes. Model inputs stay. */
kiln_status kiln_pass_dce(kiln_graph *g, kiln_diag *d);

/* Marks fusion groups (kiln_node.group, the rules in ir/graph.h): an anchor
 * (conv2d, dense, matmul or an elementwise op) followed by elementwise
 * members, each reading the previous member's output, which nothing else
 * reads and which is no model output; a binary member's other operand comes
 * from outside the group and broadcasts into the member's output without
 * growing it. To make a chain consecutive the pass may move the chain built
 * so far down to just before its next member (the nodes in between do not
 * read it). Groups are numbered 1, 2, ... in node order; previous groups are
 * replaced and any memory plan dropped. */
kiln_status kiln_pass_fuse(kiln_graph *g, kiln_diag *d);

/* The layout pass's options. */
typedef struct kiln_layout_options {
    int block; /* the channel block B of nchw<B>c, 1..KILN_MAX_BLOCK; 0: the pass changes nothing */
    /* Which convolutions the blocked layout may hold: the target's rule
     * (kiln_target_conv_blocks, under `winograd`); NULL: every one the
     * blocked kernels compute (tests). */
    const kiln_target *target;
    kiln_winograd_mode winograd;
} kiln_layout_options;

/* Blocks channels (nchw<B>c) in the regions where blocked kernels pay and
 * inserts one `reorder` to plain per blocked value that a plain reader needs
 * (named "<value>.plain", right after its producer); then recomputes the
 * fusion groups (kiln_pass_fuse), dropping any plan. The policy is in
 * layout.c's head comment and docs/passes.md. Any earlier layout decision is
 * undone first, so the pass is idempotent. o == NULL or o->block == 0: the
 * graph is not touched. KILN_ERR_INVALID_ARGUMENT for a block outside
 * 0..KILN_MAX_BLOCK. */
kiln_status kiln_pass_layout(kiln_graph *g, const kiln_layout_options *o, kiln_diag *d);

/* Plans the workspace: every value that needs memory (ir/liveness.h), and
 * every node's kernel scratch on target t (NULL: none planned), gets a
 * region (FIXED when unbatched, BATCH when batched, sizes per batch item)
 * and a 64-byte aligned offset; values whose live ranges do not meet share
 * space. Greedy by size: largest first, each at the best-fitting gap among
 * the already placed values it is live with. Sets g->mem_fixed_bytes,
 * g->mem_batch_bytes and g->mem_lower_bound_bytes: for each region the most
 * bytes of its values live at one step (no plan can do with less), summed
 * over the two regions (so it compares with fixed + batch at batch 1). */
kiln_status kiln_pass_memory_plan(kiln_graph *g, const kiln_target *t, kiln_diag *d);

/* Precision: every layer computes in f32 for now (the pass is where bf16,
 * f16 and int8 lowering will happen). */
kiln_status kiln_pass_precision(kiln_graph *g, kiln_diag *d);

typedef struct kiln_select_pass_options {
    const kiln_target *target; /* NULL: the pass changes nothing */
    kiln_select_options select;
} kiln_select_pass_options;

/* Sets kiln_node.impl of every node by the target's rules (KILN_IMPL_NONE
 * for ops with one implementation). */
kiln_status kiln_pass_select(kiln_graph *g, const kiln_select_pass_options *o, kiln_diag *d);

typedef struct kiln_schedule_options {
    int threads; /* the thread count to plan for; <= 0: KILN_SCHEDULE_DEFAULT_THREADS */
} kiln_schedule_options;
#define KILN_SCHEDULE_DEFAULT_THREADS 8

/* Sets kiln_node.tasks: a node's (or fusion group's) work W, estimated in
 * flop-like units per batch item, gives tasks = clamp(ceil(W / 2^17), 1,
 * 4 * threads), also at most one task per 256 output elements; small kernels
 * run serially (tasks 1). Every member of a group gets the group's count.
 * Deterministic: depends on the graph and `threads` only. `o` may be NULL. */
kiln_status kiln_pass_schedule(kiln_graph *g, const kiln_schedule_options *o, kiln_diag *d);
/* The schedule's estimate of node n's work per batch item (flop-like units,
 * the table at the top of schedule.c); also what --precision auto orders
 * layers by. */
double kiln_schedule_node_work(const kiln_graph *g, const kiln_node *n);

/* ---- the pipeline --------------------------------------------------------- */

typedef struct kiln_pipeline_options {
    const char *stop_after; /* the last pass to run, or NULL: all of them */
    const char *dump_after; /* print the IR after this pass, after "all" of them, or NULL */
    FILE *dump_to;          /* where dumps go (NULL: stdout); each dump of "all" starts with "# after PASS" */
    FILE *time_to;          /* --time-passes: a table of per-pass times goes here, or NULL */
    bool verify_each;       /* kiln_ir_verify after every pass (tests, debug builds) */
    int threads_hint;       /* the schedule's thread count (kiln_schedule_options.threads) */
    /* The target the passes plan for (layout, select, the memory plan's
     * scratch); NULL: no layout change, no implementation recorded. */
    const kiln_target *target;
    /* The layout pass's channel block: 0 (the default) keeps every value
     * plain; the driver gives the target's lanes (--layout auto). */
    int layout_block;
    kiln_select_options select; /* the Winograd mode and --tune's preferences */
} kiln_pipeline_options;

/* Verification after each pass is on by default in debug builds. */
#ifdef NDEBUG
#define KILN_PIPELINE_VERIFY_DEFAULT false
#else
#define KILN_PIPELINE_VERIFY_DEFAULT true
#endif

/* Runs the passes in order on g, up to and including o->stop_after (o may be
 * NULL: everything, no dumps, no timing, verify_each by default). A pass name
 * that is not in the list (stop_after, dump_after other than "all") is
 * reported to d with the list of valid names before anything runs:
 * KILN_ERR_INVALID_ARGUMENT. A failing pass stops the pipeline with its
 * status; a failed verification after pass P reports "the IR is invalid
 * after pass 'P'" and returns KILN_ERR_INTERNAL. Dumps go to o->dump_to as
 * the IR text form (weights paths relative to the current directory). */
kiln_status kiln_pipeline_run(kiln_graph *g, const kiln_pipeline_options *o, kiln_diag *d);

/* The pass names in pipeline order, NULL-terminated. */
const char *const *kiln_pipeline_pass_names(void);

/* True when `name` is a pass of the pipeline. */
bool kiln_pipeline_has_pass(const char *name);

#endif
