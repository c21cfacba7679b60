/* compiler/target/deconv.c: the blocks a strided conv_transpose2d is
 * computed in on a target, and the scratch they need (target.h). A stride-1
 * conv_transpose2d writes its output directly and needs none. The algorithm
 * is described at the top of codegen/kernels/deconv.c. */
#include "target.h"

int64_t kiln_target_deconv_slots(const kiln_node *n) { return n->tasks > 0 ? (int64_t)n->tasks : 8; }

void kiln_target_deconv_block(const kiln_target *t, int64_t filters_per_group, int64_t *rows, int64_t *cols)
{
    *rows = filters_per_group < 256 ? filters_per_group : 256;
    *cols = (int64_t)t->gemm_nr * kiln_target_lanes(t) * 4;
}

uint64_t kiln_target_deconv_scratch(const kiln_target *t, const kiln_graph *g, const kiln_node *n)
{
    const kiln_shape *ys = &kiln_graph_value(g, n->output)->type.shape;
    const kiln_attr *s = &n->attrs[KILN_ATTR_STRIDE];
    const int64_t groups = n->attrs[KILN_ATTR_GROUPS].i > 0 ? n->attrs[KILN_ATTR_GROUPS].i : 1;
    if (n->op != KILN_OP_CONV_TRANSPOSE2D || ys->rank != 4 || s->n < 2 || (s->ints[0] == 1 && s->ints[1] == 1))
        return 0;
    int64_t rows, cols;
    kiln_target_deconv_block(t, ys->dims[1] / groups, &rows, &cols);
    return (uint64_t)kiln_target_deconv_slots(n) * (uint64_t)(rows * cols) * sizeof(float); /* f32 sums */
}
