/* ir/rewrite.h: graph surgery the passes share. Values and nodes are arrays
 * indexed by id (graph.h); these helpers keep the ids, the producers, the
 * graph's input/output lists and the name index consistent while passes
 * rewire, rename, reorder and remove things.
 *
 * The usual shape of a pass that removes things: mark what goes in two id
 * maps (one per node, one per value), rewire uses with
 * kiln_graph_replace_uses while the old ids are still valid, then call
 * kiln_graph_compact once at the end. */
#ifndef KILN_IR_REWRITE_H
#define KILN_IR_REWRITE_H

#include <stdbool.h>
#include <stddef.h>

#include "graph.h"

/* Every operand of every node and every model output that refers to value
 * `from` refers to `to` afterwards. No allocation. */
void kiln_graph_replace_uses(kiln_graph *g, kiln_id from, kiln_id to);

/* Removes nodes and values, renumbering what stays in its order, and
 * rebuilds the name index (so a name may be handed from a removed value to a
 * kept one before compacting). On entry node_map[i] == KILN_NO_ID marks node i
 * for removal, any other entry keeps it; the same for value_map (either may
 * be NULL: keep them all). On return each kept entry holds the new id.
 * Checks first that nothing kept refers to something removed: a kept node's
 * operand or output, a kept value's producer, a model input or output; such
 * a reference is KILN_ERR_INTERNAL and the graph is unchanged. Allocates
 * nothing, so it cannot fail for memory: a pass can make its changes, then
 * compact, and never be left half way. */
kiln_status kiln_graph_compact(kiln_graph *g, kiln_id *node_map, kiln_id *value_map);

/* Moves nodes [first, first + count) so that they sit, in the same order,
 * immediately before the node now at index `before` (first + count <=
 * before <= n_nodes); the nodes in between move up. Producers are updated.
 * The caller guarantees the order stays topological (no node in between uses
 * an output of the moved ones). No allocation. */
void kiln_graph_move_nodes(kiln_graph *g, size_t first, size_t count, size_t before);

/* Renames value v (the name is copied into the graph's arena) and rebuilds
 * the index. KILN_ERR_INVALID_ARGUMENT when another value has that name. */
kiln_status kiln_graph_rename_value(kiln_graph *g, kiln_id v, const char *name);

/* A name no value has: `base` itself when free, else base.1, base.2, ...
 * In the graph's arena; NULL when out of memory. */
const char *kiln_graph_fresh_name(kiln_graph *g, const char *base);

/* Annotations that later passes compute from the graph's structure. A pass
 * that changes the structure drops the ones it invalidates: groups, tasks
 * and the memory plan (KILN_ANNOT_PLANS) whenever nodes come, go or move.
 * A node's implementation belongs to the node and survives that (removing
 * or folding other nodes does not change what computes it); the select pass
 * checks it still applies. */
enum {
    KILN_ANNOT_GROUPS = 1u << 0, /* kiln_node.group */
    KILN_ANNOT_TASKS = 1u << 1,  /* kiln_node.tasks */
    KILN_ANNOT_MEMORY = 1u << 2, /* kiln_value.mem/mem_offset, kiln_node.scratch_*, kiln_graph.mem_* */
    KILN_ANNOT_IMPL = 1u << 3,   /* kiln_node.impl */
    KILN_ANNOT_PLANS = 7u, /* groups, tasks, memory */
    KILN_ANNOT_ALL = 15u,
};
void kiln_graph_clear_annotations(kiln_graph *g, unsigned what);

#endif
