/* compiler/passes/verify.c: the verifier as the pipeline's first pass: the
 * input (from the frontend or a .kir file) is sound before anything edits it. */
#include "passes.h"

kiln_status kiln_pass_verify(kiln_graph *g, kiln_diag *d) { return kiln_ir_verify(g, d); }
