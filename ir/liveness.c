/* ir/liveness.c: steps, live ranges and sizes for memory planning (see
 * liveness.h). */
#include "liveness.h"

#include <string.h>

uint64_t kiln_value_bytes(const kiln_graph *g, kiln_id v)
{
    const kiln_type *t = &g->values[v].type;
    int64_t n = kiln_type_storage_elements_per_item(t); /* blocked: padded to whole blocks */
    uint64_t es = (unsigned)t->dtype < KILN_DTYPE_COUNT ? kiln_dtype_size(t->dtype) : 0;
    if (n < 0 || es == 0 || (uint64_t)n > UINT64_MAX / 2 / es)
        return 0;
    return (uint64_t)n * es;
}

kiln_mem_region kiln_liveness_region(const kiln_graph *g, kiln_id v)
{
    return g->values[v].type.shape.batched ? KILN_MEM_BATCH : KILN_MEM_FIXED;
}

void kiln_liveness_release(kiln_liveness *l)
{
    kiln_free(l->node_step);
    kiln_free(l->needs_memory);
    kiln_free(l->first);
    kiln_free(l->last);
    kiln_free(l->bytes);
    memset(l, 0, sizeof *l);
}

kiln_status kiln_liveness_compute(const kiln_graph *g, kiln_liveness *out)
{
    memset(out, 0, sizeof *out);
    size_t nv = g->n_values ? g->n_values : 1, nn = g->n_nodes ? g->n_nodes : 1;
    out->node_step = kiln_calloc(nn, sizeof *out->node_step);
    out->needs_memory = kiln_calloc(nv, sizeof *out->needs_memory);
    out->first = kiln_calloc(nv, sizeof *out->first);
    out->last = kiln_calloc(nv, sizeof *out->last);
    out->bytes = kiln_calloc(nv, sizeof *out->bytes);
    if (!out->node_step || !out->needs_memory || !out->first || !out->last || !out->bytes) {
        kiln_liveness_release(out);
        return KILN_ERR_OUT_OF_MEMORY;
    }
    uint32_t step = 0;
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln_node *n = &g->nodes[i];
        bool continues = i > 0 && n->group != 0 && g->nodes[i - 1].group == n->group;
        if (i > 0 && !continues)
            step++;
        out->node_step[i] = step;
    }
    out->n_steps = g->n_nodes ? step + 1 : 0;

    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln_node *n = &g->nodes[i];
        bool inside = n->group != 0 && i + 1 < g->n_nodes && g->nodes[i + 1].group == n->group;
        if (n->output < g->n_values && !inside)
            out->needs_memory[n->output] = true;
    }
    for (size_t k = 0; k < g->n_outputs; k++)
        if (g->outputs[k] < g->n_values)
            out->needs_memory[g->outputs[k]] = false;
    for (size_t v = 0; v < g->n_values; v++) {
        if (g->values[v].kind != KILN_VALUE_NODE || g->values[v].producer >= g->n_nodes)
            out->needs_memory[v] = false;
        if (!out->needs_memory[v])
            continue;
        out->first[v] = out->last[v] = out->node_step[g->values[v].producer];
        out->bytes[v] = kiln_value_bytes(g, (kiln_id)v);
        if (out->bytes[v] == 0) {
            kiln_liveness_release(out);
            return KILN_ERR_SHAPE;
        }
    }
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln_node *n = &g->nodes[i];
        for (uint32_t k = 0; k < n->n_inputs; k++) {
            kiln_id v = n->inputs[k];
            if (v < g->n_values && out->needs_memory[v] && out->last[v] < out->node_step[i])
                out->last[v] = out->node_step[i];
        }
    }
    return KILN_OK;
}

kiln_status kiln_liveness_lower_bound(const kiln_graph *g, const kiln_liveness *l, uint64_t *fixed,
                                      uint64_t *batch)
{
    /* Difference arrays: +bytes at the first step, -bytes after the last. */
    uint64_t *delta = kiln_calloc(2 * ((size_t)l->n_steps + 1), sizeof *delta);
    if (!delta)
        return KILN_ERR_OUT_OF_MEMORY;
    uint64_t peak[2] = {0, 0};
    for (int r = 0; r < 2; r++) {
        uint64_t *dr = delta + r * ((size_t)l->n_steps + 1);
        kiln_mem_region region = r ? KILN_MEM_BATCH : KILN_MEM_FIXED;
        for (size_t v = 0; v < g->n_values; v++) {
            if (!l->needs_memory[v] || kiln_liveness_region(g, (kiln_id)v) != region)
                continue;
            dr[l->first[v]] += l->bytes[v];
            dr[l->last[v] + 1] -= l->bytes[v];
        }
        for (size_t i = 0; region == KILN_MEM_FIXED && i < g->n_nodes; i++) {
            uint32_t s = l->node_step[i];
            dr[s] += g->nodes[i].scratch_bytes;
            dr[s + 1] -= g->nodes[i].scratch_bytes;
        }
        uint64_t cur = 0;
        for (uint32_t s = 0; s < l->n_steps; s++) {
            cur += dr[s];
            if (cur > peak[r])
                peak[r] = cur;
        }
    }
    kiln_free(delta);
    *fixed = peak[0];
    *batch = peak[1];
    return KILN_OK;
}
