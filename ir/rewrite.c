/* ir/rewrite.c: graph surgery the passes share (see rewrite.h). */
#include "rewrite.h"

#include <stdio.h>
#include <string.h>

void kiln_graph_replace_uses(kiln_graph *g, kiln_id from, kiln_id to)
{
    for (size_t i = 0; i < g->n_nodes; i++) {
        kiln_node *n = &g->nodes[i];
        for (uint32_t k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] == from)
                n->inputs[k] = to;
    }
    for (size_t i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == from)
            g->outputs[i] = to;
}

static bool dropped(const kiln_id *map, size_t i) { return map && map[i] == KILN_NO_ID; }

kiln_status kiln_graph_compact(kiln_graph *g, kiln_id *node_map, kiln_id *value_map)
{
    /* Check every reference before touching anything. */
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln_node *n = &g->nodes[i];
        if (dropped(node_map, i)) {
            if (n->output < g->n_values && !dropped(value_map, n->output))
                return KILN_ERR_INTERNAL; /* a kept value would lose its producer */
            continue;
        }
        if (n->output >= g->n_values || dropped(value_map, n->output))
            return KILN_ERR_INTERNAL;
        for (uint32_t k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= g->n_values || dropped(value_map, n->inputs[k]))
                return KILN_ERR_INTERNAL;
    }
    for (size_t v = 0; v < g->n_values; v++) {
        const kiln_value *val = &g->values[v];
        if (!dropped(value_map, v) && val->kind == KILN_VALUE_NODE &&
            (val->producer >= g->n_nodes || dropped(node_map, val->producer)))
            return KILN_ERR_INTERNAL;
    }
    for (size_t i = 0; i < g->n_inputs; i++)
        if (dropped(value_map, g->inputs[i]))
            return KILN_ERR_INTERNAL;
    for (size_t i = 0; i < g->n_outputs; i++)
        if (dropped(value_map, g->outputs[i]))
            return KILN_ERR_INTERNAL;

    /* New ids, in the maps themselves. */
    size_t nv = 0, nn = 0;
    for (size_t v = 0; v < g->n_values; v++)
        if (value_map)
            value_map[v] = value_map[v] == KILN_NO_ID ? KILN_NO_ID : (kiln_id)nv++;
    for (size_t i = 0; i < g->n_nodes; i++)
        if (node_map)
            node_map[i] = node_map[i] == KILN_NO_ID ? KILN_NO_ID : (kiln_id)nn++;
#define VMAP(v) (value_map ? value_map[v] : (kiln_id)(v))
#define NMAP(i) (node_map ? node_map[i] : (kiln_id)(i))
    for (size_t v = 0; v < g->n_values; v++) {
        if (VMAP(v) == KILN_NO_ID)
            continue;
        kiln_value val = g->values[v];
        if (val.kind == KILN_VALUE_NODE)
            val.producer = NMAP(val.producer);
        g->values[VMAP(v)] = val;
    }
    for (size_t i = 0; i < g->n_nodes; i++) {
        if (NMAP(i) == KILN_NO_ID)
            continue;
        kiln_node n = g->nodes[i];
        for (uint32_t k = 0; k < n.n_inputs; k++)
            n.inputs[k] = VMAP(n.inputs[k]);
        n.output = VMAP(n.output);
        g->nodes[NMAP(i)] = n;
    }
    for (size_t i = 0; i < g->n_inputs; i++)
        g->inputs[i] = VMAP(g->inputs[i]);
    for (size_t i = 0; i < g->n_outputs; i++)
        g->outputs[i] = VMAP(g->outputs[i]);
#undef VMAP
#undef NMAP
    if (value_map)
        g->n_values = nv;
    if (node_map)
        g->n_nodes = nn;
    /* The table is at least as large as before, so this cannot allocate. */
    return kiln_graph_reindex(g);
}

static void reverse_nodes(kiln_node *a, size_t lo, size_t hi) /* [lo, hi) */
{
    while (hi > lo + 1) {
        kiln_node t = a[lo];
        a[lo] = a[hi - 1];
        a[hi - 1] = t;
        lo++;
        hi--;
    }
}

void kiln_graph_move_nodes(kiln_graph *g, size_t first, size_t count, size_t before)
{
    if (count == 0 || first + count >= before || before > g->n_nodes)
        return;
    /* Rotate [first, before) left by count: three reversals. */
    reverse_nodes(g->nodes, first, first + count);
    reverse_nodes(g->nodes, first + count, before);
    reverse_nodes(g->nodes, first, before);
    for (size_t i = first; i < before; i++)
        if (g->nodes[i].output < g->n_values)
            g->values[g->nodes[i].output].producer = (kiln_id)i;
}

kiln_status kiln_graph_rename_value(kiln_graph *g, kiln_id v, const char *name)
{
    if (v >= g->n_values || !name)
        return KILN_ERR_INVALID_ARGUMENT;
    kiln_id other = kiln_graph_find_value(g, name);
    if (other != KILN_NO_ID && other != v)
        return KILN_ERR_INVALID_ARGUMENT;
    const char *copy = kiln_arena_strdup(&g->arena, name);
    if (!copy)
        return KILN_ERR_OUT_OF_MEMORY;
    g->values[v].name = copy;
    return kiln_graph_reindex(g);
}

const char *kiln_graph_fresh_name(kiln_graph *g, const char *base)
{
    if (kiln_graph_find_value(g, base) == KILN_NO_ID)
        return kiln_arena_strdup(&g->arena, base);
    size_t len = strlen(base) + 24;
    char *buf = kiln_arena_alloc(&g->arena, len);
    if (!buf)
        return NULL;
    for (unsigned long i = 1;; i++) {
        snprintf(buf, len, "%s.%lu", base, i);
        if (kiln_graph_find_value(g, buf) == KILN_NO_ID)
            return buf;
    }
}

void kiln_graph_clear_annotations(kiln_graph *g, unsigned what)
{
    for (size_t i = 0; i < g->n_nodes; i++) {
        if (what & KILN_ANNOT_GROUPS)
            g->nodes[i].group = 0;
        if (what & KILN_ANNOT_TASKS)
            g->nodes[i].tasks = 0;
        if (what & KILN_ANNOT_IMPL)
            g->nodes[i].impl = KILN_IMPL_NONE;
    }
    if (what & KILN_ANNOT_TASKS)
        g->sched_threads = 0;
    if (what & KILN_ANNOT_MEMORY) {
        for (size_t i = 0; i < g->n_nodes; i++)
            g->nodes[i].scratch_bytes = g->nodes[i].scratch_offset = 0;
        for (size_t v = 0; v < g->n_values; v++) {
            g->values[v].mem = KILN_MEM_NONE;
            g->values[v].mem_offset = 0;
        }
        g->mem_fixed_bytes = g->mem_batch_bytes = g->mem_lower_bound_bytes = 0;
    }
}
