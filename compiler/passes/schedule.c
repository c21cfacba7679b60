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

static double elementwise_cost(kiln_op op)
{
    switch (op) {
    case KILN_OP_EXP:
    case KILN_OP_TANH:
    case KILN_OP_SIGMOID:
    case KILN_OP_SILU:
    case KILN_OP_GELU:
    case KILN_OP_ELU:
        return 16;
    case KILN_OP_SQRT:
    case KILN_OP_DIV:
    case KILN_OP_HARDSWISH:
    case KILN_OP_HARDSIGMOID:
        return 4;
    default:
        return 1;
    }
}

static double node_work(const kiln_graph *g, const kiln_node *n)
{
    double out = elements(g, n->output);
    double in = n->n_inputs > 0 ? elements(g, n->inputs[0]) : out;
    const kiln_shape *s0 = n->n_inputs > 0 ? &g->values[n->inputs[0]].type.shape : NULL;
    unsigned f = kiln_op_get(n->op)->flags;
    switch (n->op) {
    case KILN_OP_CONV2D: {
        double c = s0 && s0->rank == 4 ? (double)s0->dims[1] : 1;
        double groups = n->attrs[KILN_ATTR_GROUPS].i > 0 ? (double)n->attrs[KILN_ATTR_GROUPS].i : 1;
        const int64_t *k = n->attrs[KILN_ATTR_KERNEL].ints;
        return 2 * out * (c / groups) * (double)k[0] * (double)k[1];
    }
    case KILN_OP_DENSE:
        return 2 * out * (s0 && s0->rank > 0 ? (double)s0->dims[s0->rank - 1] : 1);
    case KILN_OP_MATMUL:
        /* K: the last axis of a (a 1-D a is all K) */
        return 2 * out * (s0 && s0->rank > 0 ? (double)s0->dims[s0->rank - 1] : 1);
    case KILN_OP_MAXPOOL2D:
    case KILN_OP_AVGPOOL2D: {
        const int64_t *k = n->attrs[KILN_ATTR_KERNEL].ints;
        return out * (double)k[0] * (double)k[1];
    }
    case KILN_OP_GLOBAL_AVGPOOL:
    case KILN_OP_MEAN:
        return in;
    case KILN_OP_SOFTMAX:
    case KILN_OP_LOG_SOFTMAX:
    case KILN_OP_LAYERNORM:
    case KILN_OP_BATCHNORM:
        return 16 * out;
    default:
        if (f & (KILN_OPF_UNARY | KILN_OPF_BINARY))
            return out * elementwise_cost(n->op);
        return out; /* data movement */
    }
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
            work += node_work(g, &g->nodes[k]);
        uint32_t t = tasks_for(work, elements(g, g->nodes[end - 1].output), threads);
        for (size_t k = i; k < end; k++)
            g->nodes[k].tasks = t;
        i = end;
    }
    return KILN_OK;
}
