/* compiler/passes/schedule.c: how many parallel_for tasks each kernel splits
 * into (kiln_node.tasks).
 *
 * A kernel's work W is estimated per batch item in flop-like units:
 *
 *   conv2d        2 * out_elements * (C / groups) * kh * kw
 *   dense         2 * out_elements * in_features
 *   matmul        2 * out_elements * K
 *   pools         out_elements * kh * kw (global_avgpool: in_elements)
 *   elementwise   out_elements * cost: 1 for cheap ops (add, relu, clip, ...),
 *                 4 for sqrt/div/hardswish/hardsigmoid, 16 for
 *                 exp/tanh/sigmoid/silu/gelu/elu
 *   softmax, log_softmax, layernorm, batchnorm   16 * elements
 *   mean          in_elements;  data movement (reshape, transpose, concat,
 *                 pad, flatten, identity, constant) out_elements
 *
 * and a fusion group's W is the sum over its members. Then
 *
 *   tasks = clamp(ceil(W / GRAIN), 1, 4 * threads), GRAIN = 2^17,
 *   and at most out_elements / 64 (a task writes at least 64 elements),
 *
 * so a kernel below ~130k operations (a few microseconds of GEMM on one
 * core, where a second thread would gain less than starting it costs) runs
 * serially, and a big one may split into up to four tasks per thread. The
 * GEMM kernels (conv2d, dense, matmul) read the count as an upper bound; they
 * also get the thread count (g->sched_threads) and pick the blocking that
 * finishes first on that many threads: equal tasks, as few as that allows.
 * (The other kernels split by fixed sizes of their own.) Every member of a group
 * gets the group's count. The estimate is for one batch item: a larger batch
 * only makes every kernel bigger, so the serial/parallel decision stays
 * right, and the code generator may split the batch further. */
#include <math.h>

#include "passes.h"

#define GRAIN 131072.0       /* work units per task */
#define MIN_TASK_ELEMENTS 64 /* output elements per task, at least */

static double elements(const kiln_graph *g, kiln_id v)
{
    int64_t n = kiln_shape_elements_per_item(&g->values[v].type.shape);
    return n < 0 ? 0 : (double)n;
}

/* The contraction length of a CONTRACT op: the product of the weight's
 * dimensions after the first (dense [units, in]: in; conv2d [F, C/groups,
 * kh, kw]: C/groups kh kw), or the last axis of the first operand (matmul). */
static double contraction(const kiln_graph *g, const kiln_node *n)
{
    kiln_id w = kiln_node_param(g, n, "weight");
    if (w != KILN_NO_ID) {
        const kiln_shape *ws = &g->values[w].type.shape;
        double k = 1;
        for (int i = 1; i < ws->rank; i++)
            k *= (double)ws->dims[i];
        return k;
    }
    const kiln_shape *s0 = n->n_inputs > 0 ? &g->values[n->inputs[0]].type.shape : NULL;
    return s0 && s0->rank > 0 ? (double)s0->dims[s0->rank - 1] : 1;
}

/* The work of one node, by its op's cost class (ops.def). */
double kiln_schedule_node_work(const kiln_graph *g, const kiln_node *n)
{
    double out = elements(g, n->output);
    double in = n->n_inputs > 0 ? elements(g, n->inputs[0]) : out;
    switch (kiln_op_facts_of(n->op)->cost) {
    case KILN_COST_CONTRACT:
        return 2 * out * contraction(g, n);
    case KILN_COST_WINDOW: {
        const int64_t *k = n->attrs[KILN_ATTR_KERNEL].ints;
        return out * (double)k[0] * (double)k[1];
    }
    case KILN_COST_REDUCE:
        return in;
    case KILN_COST_NORM:
    case KILN_COST_TRANSCENDENTAL:
        return 16 * out;
    case KILN_COST_MEDIUM:
        return 4 * out;
    case KILN_COST_CHEAP:
    case KILN_COST_MOVE:
        return out;
    }
    return out;
}

static uint32_t tasks_for(double work, double out_elements, int threads)
{
    double t = ceil(work / GRAIN);
    double by_size = floor(out_elements / MIN_TASK_ELEMENTS);
    if (t > by_size)
        t = by_size;
    if (t > 4.0 * threads)
        t = 4.0 * threads;
    return t < 1 ? 1 : (uint32_t)t;
}

kiln_status kiln_pass_schedule(kiln_graph *g, const kiln_schedule_options *o, kiln_diag *d)
{
    int threads = o && o->threads > 0 ? o->threads : KILN_SCHEDULE_DEFAULT_THREADS;
    if (threads > 1024)
        threads = 1024;
    g->sched_threads = (uint32_t)threads;
    for (size_t i = 0; i < g->n_nodes;) {
        /* One kernel: a node, or a whole fusion group. */
        size_t end = i + 1;
        while (g->nodes[i].group != 0 && end < g->n_nodes && g->nodes[end].group == g->nodes[i].group)
            end++;
        double work = 0;
        for (size_t k = i; k < end; k++)
            work += kiln_schedule_node_work(g, &g->nodes[k]);
        uint32_t t = tasks_for(work, elements(g, g->nodes[end - 1].output), threads);
        for (size_t k = i; k < end; k++)
            g->nodes[k].tasks = t;
        i = end;
    }
    return KILN_OK;
}
