/* compiler/passes/select.c: records each node's implementation in the IR
 * (kiln_node.impl: gemm, igemm, winograd2/4, direct, blocked, blas, dot), by
 * the target's rules (compiler/target/select.c). The code generator obeys
 * what is written, so `kiln dump --after select` shows which kernel each
 * layer gets, and a .kir with implementations (edited, or saved after
 * `kiln compile --tune`) compiles to exactly them: the pass keeps an
 * implementation already written on a node when it can compute the node on
 * this target, and reports one that cannot (with the node's place in the
 * file). Without a target the pass changes nothing. */
#include "passes.h"

kiln_status kiln_pass_select(kiln_graph *g, const kiln_select_pass_options *o, kiln_diag *d)
{
    if (!o || !o->target)
        return KILN_OK;
    kiln_status st = KILN_OK;
    for (size_t i = 0; i < g->n_nodes; i++) {
        kiln_node *n = &g->nodes[i];
        if (n->impl == KILN_IMPL_NONE) {
            n->impl = kiln_target_select(o->target, g, n, &o->select);
            continue;
        }
        char why[256];
        if (!kiln_target_impl_applies(o->target, g, n, n->impl, why, sizeof why)) {
            kiln_diag_error(d, n->loc, "layer '%s' (%s): the IR asks for implementation '%s', which cannot "
                            "compute it on this target: %s", n->layer ? n->layer : "?", kiln_op_name(n->op),
                            kiln_impl_name(n->impl), why);
            st = KILN_ERR_UNSUPPORTED;
        }
    }
    return st;
}
