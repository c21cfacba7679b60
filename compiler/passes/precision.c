/* compiler/passes/precision.c: the precision of each layer. Today every
 * layer computes in f32 and the pass changes nothing; it holds the place in
 * the pipeline (after layout, before select, so that select can pick
 * kernels by precision) where lowering to bf16, f16 and int8, with convert,
 * quantize and dequantize at region edges, goes. */
#include "passes.h"

kiln_status kiln_pass_precision(kiln_graph *g, kiln_diag *d)
{
    (void)g;
    (void)d;
    return KILN_OK;
}
