/* compiler/passes/precision.c: the precision of each layer (kiln_node.
 * precision, the values' dtypes). Every layer computes in f32 for now: the
 * pass is the place where lowering to bf16, f16 and int8, with convert,
 * quantize and dequantize at region edges, will happen. It checks that no
 * value is of a dtype the code generator cannot compute yet. */
#include "passes.h"

kiln_status kiln_pass_precision(kiln_graph *g, kiln_diag *d)
{
    (void)g;
    (void)d;
    return KILN_OK;
}
