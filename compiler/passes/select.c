/* compiler/passes/select.c: records each node's implementation in the IR
 * (kiln_node.impl: gemm, igemm, winograd2/4, direct, blocked, blas, dot), by
 * the target's rules (compiler/target/select.c). The code generator obeys
 * what is written, so `kiln dump --after select` shows which kernel each
 * layer gets, and a .kir with implementations (edited, or saved after
 * `kiln compile --tune`) compiles to exactly them. Without a target the
 * pass changes nothing. */
#include "passes.h"

kiln_status kiln_pass_select(kiln_graph *g, const kiln_select_pass_options *o, kiln_diag *d)
{
    (void)d;
    if (!o || !o->target)
        return KILN_OK;
    for (size_t i = 0; i < g->n_nodes; i++)
        g->nodes[i].impl = kiln_target_select(o->target, g, &g->nodes[i], &o->select);
    return KILN_OK;
}
