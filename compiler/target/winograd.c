/* compiler/target/winograd.c: which 3x3 convolutions Winograd's F(m x m,
 * 3 x 3) computes on a target, the geometry of its blocks (the code
 * generator's kernels/winograd.c emits them) and its scratch (target.h).
 * The algorithm is described at the top of kernels/winograd.c. */
#include "target.h"

#include <math.h>
#include <string.h>

#define MAX_SLOT_FLOATS ((int64_t)1 << 24) /* 64 MiB of scratch per task at most, else the implicit GEMM */
#define MAX_H_FLOATS 16384 /* 64 KiB of stack for the row pass (images up to ~2700 wide) */

/* Whether n is a convolution Winograd computes: one group, 3x3, stride 1,
 * no dilation, NCHW f32 with known sizes. */
bool kiln_target_winograd_eligible(const kiln_graph *g, const kiln_node *n)
{
    if (n->op != KILN_OP_CONV2D || n->n_inputs < 2)
        return false;
    const kiln_shape *xs = &kiln_graph_value(g, n->inputs[0])->type.shape;
    const kiln_shape *ys = &kiln_graph_value(g, n->output)->type.shape;
    if (xs->rank != 4 || ys->rank != 4 || n->attrs[KILN_ATTR_GROUPS].i != 1)
        return false;
    if (kiln_graph_value(g, n->inputs[0])->type.layout != KILN_LAYOUT_PLAIN ||
        kiln_graph_value(g, n->output)->type.layout != KILN_LAYOUT_PLAIN)
        return false; /* the transforms read and write NCHW */
    const kiln_attr *k = &n->attrs[KILN_ATTR_KERNEL], *s = &n->attrs[KILN_ATTR_STRIDE];
    if (k->n < 2 || k->ints[0] != 3 || k->ints[1] != 3 || s->n < 2 || s->ints[0] != 1 || s->ints[1] != 1)
        return false;
    if (kiln_node_has(n, KILN_ATTR_DILATION)) {
        const kiln_attr *d = &n->attrs[KILN_ATTR_DILATION];
        if (d->n < 2 || d->ints[0] != 1 || d->ints[1] != 1)
            return false;
    }
    if (n->attrs[KILN_ATTR_PADDING].n < 4)
        return false;
    for (int i = 1; i < 4; i++)
        if (xs->dims[i] < 1 || ys->dims[i] < 1)
            return false;
    return true;
}

bool kiln_target_winograd_plan(const kiln_target *t, const kiln_graph *g, const kiln_node *n, int m,
                                kiln_winograd_plan *p)
{
    const kiln_shape *xs = &kiln_graph_value(g, n->inputs[0])->type.shape;
    const kiln_shape *ys = &kiln_graph_value(g, n->output)->type.shape;
    const int vl = kiln_target_lanes(t);
    const int64_t NR = (int64_t)t->gemm_nr * vl;
    memset(p, 0, sizeof *p);
    p->m = m;
    p->a = m + 2;
    p->C = xs->dims[1];
    p->H = xs->dims[2];
    p->W = xs->dims[3];
    p->F = ys->dims[1];
    p->OH = ys->dims[2];
    p->OW = ys->dims[3];
    p->pt = n->attrs[KILN_ATTR_PADDING].ints[0];
    p->pl = n->attrs[KILN_ATTR_PADDING].ints[1];
    p->TH = (p->OH + m - 1) / m;
    p->TW = (p->OW + m - 1) / m;
    p->TWp = (p->TW + vl - 1) / vl * vl;
    /* F(2x2): a tile row of fewer tiles than lanes (planes under 2 vl wide:
     * ResNet's 8x8 and 7x7 maps) takes only TW GEMM columns, not a padded
     * vector's: the transforms still work on whole vectors, but store only
     * TW lanes and read the next row's columns in the others (never
     * stored). Needs TW to divide NR, so a row's columns never straddle two
     * panels. Measured per layer (AVX2, batch 1, best of 5): 512 channels
     * at 7x7 2.3 ms against 3.9 for the implicit GEMM (ResNet-18's last
     * stage: 13% of the model at batch 1). Only over 128 channels or more:
     * on 64 at 8x8 it won alone (41 us against 52) but only tied in
     * ResNet-20, where the weights come from L3 and the transforms weigh
     * 8 (1/C + 1/F) = 25% of the GEMMs. F(4x4) keeps padded rows:
     * compacted, its transforms (a stride-4 lane shuffle over half-empty
     * vectors) cost more than the estimate below says (32 channels at 16x16:
     * 41 us against F(2x2)'s 36), though it won on 256 channels at 14x14
     * (1.18 ms against 1.51). */
    p->TWc = m == 2 && p->C >= 128 && p->F >= 128 && p->TW < vl && NR % p->TW == 0 ? p->TW : p->TWp;
    /* Blocks of about 64 GEMM columns: wide enough for the micro-kernel,
     * small enough that V and M of a block stay near the L2; and at least
     * two per item while a block still fills a panel. */
    p->rows = 64 / p->TWc;
    int64_t half = (p->TH + 1) / 2, fill = (NR + p->TWc - 1) / p->TWc;
    if (p->rows > half) /* two blocks, for two threads at batch 1, unless they would leave panels half empty */
        p->rows = half * p->TWc >= NR ? half : (fill < p->TH ? fill : p->TH);
    if (p->rows < 1)
        p->rows = 1;
    p->blocks = (p->TH + p->rows - 1) / p->rows;
    p->cols = p->rows * p->TWc;
    p->panels = (p->cols + NR - 1) / NR;
    /* One cache line more than the data: the a^2 positions, read or written
     * together, then fall into different L1 sets (at a multiple of 4 KiB
     * apart they would all take one set). */
    p->v_floats = p->panels * NR * p->C + 16;
    p->m_floats = p->F * p->cols + 16;
    p->slot_floats = ((int64_t)p->a * p->a * (p->v_floats + p->m_floats) + 15) / 16 * 16;
    p->h_floats = (p->rows * m + p->a - m) * p->a * p->TWp;
    return p->slot_floats <= MAX_SLOT_FLOATS && p->h_floats <= MAX_H_FLOATS;
}

int kiln_target_winograd_choice(const kiln_target *t, const kiln_graph *g, const kiln_node *n,
                                kiln_winograd_mode mode)
{
    kiln_winograd_plan p4, p2;
    if (mode == KILN_WINOGRAD_OFF || !kiln_target_winograd_eligible(g, n))
        return 0;
    const bool ok4 = kiln_target_winograd_plan(t, g, n, 4, &p4), ok2 = kiln_target_winograd_plan(t, g, n, 2, &p2);
    if (mode == KILN_WINOGRAD_F2)
        return ok2 ? 2 : 0;
    if (mode == KILN_WINOGRAD_F4)
        return ok4 ? 4 : 0;
    /* AUTO (docs/codegen.md): the GEMMs' multiplications, a^2 per GEMM
     * column computed (whole panels of every block), against 9 per column
     * the implicit GEMM computes; the transforms cost about 8 (1/C + 1/F)
     * of the GEMMs (fitted to single layers on AVX2, 16 to 512 channels);
     * Winograd when the estimate is under the target's margin of the
     * implicit GEMM's (0.9 on AVX2, 1.0 on AVX-512). */
    const double C = (double)p4.C, F = (double)p4.F;
    const double overhead = 1.0 + 8.0 * (1.0 / C + 1.0 / F);
    const double NR = (double)t->gemm_nr * kiln_target_lanes(t);
    /* the implicit GEMM computes whole panels of pixels too (49 pixels take
     * 64 columns on AVX-512 and on AVX2) */
    const double igemm_cols = ceil((double)p4.OH * (double)p4.OW / NR) * NR;
    double best = t->winograd_margin * 9.0 * igemm_cols;
    int tile = 0;
    if (ok4 && 36.0 * (double)(p4.blocks * p4.panels) * NR * overhead < best) {
        best = 36.0 * (double)(p4.blocks * p4.panels) * NR * overhead;
        tile = 4;
    }
    if (ok2 && 16.0 * (double)(p2.blocks * p2.panels) * NR * overhead < best)
        tile = 2;
    return tile;
}

/* Tasks of the step, each with its scratch slot: half the schedule's count
 * (which plans up to four tasks per thread; a block is long enough that two
 * per thread balance the load), 4 without a schedule. */
int64_t kiln_target_winograd_slots(const kiln_node *n) { return n->tasks > 0 ? ((int64_t)n->tasks + 1) / 2 : 4; }

uint64_t kiln_target_winograd_scratch(const kiln_target *t, const kiln_graph *g, const kiln_node *n, int m)
{
    kiln_winograd_plan p;
    if (!m || !kiln_target_winograd_plan(t, g, n, m, &p))
        return 0;
    return (uint64_t)kiln_target_winograd_slots(n) * (uint64_t)p.slot_floats * sizeof(float);
}
