/* compiler/frontend/onnx/ops.c: the ONNX ops the importer knows, one row
 * each: the attributes it understands, how it folds on constants, how it
 * is written in kiln layers, or why it cannot be (a kiln op of format 1.1
 * it waits for, or the reason kiln has no equivalent). An op missing here is
 * refused as one kiln has no operation for. docs/import.md has the same
 * list for readers. `needs` with a `lower` function: the function writes
 * the cases kiln can already express (a slice that keeps everything), the
 * rest wait for that op. */
#include <string.h>

#include "ox.h"

#define LEGACY "consumed_inputs"
#define EW ox_fold_elementwise
#define SH ox_fold_shape_op
#define RD ox_fold_reduce
#define REDUCE_ATTRS "axes,keepdims,noop_with_empty_axes"
#define POOL_ATTRS "auto_pad,ceil_mode,dilations,kernel_shape,pads,storage_order,strides"

static const ox_op ops[] = {
    /* elementwise, one operand */
    {"Relu", LEGACY, EW, ox_lower_unary, NULL, NULL},
    {"Sigmoid", LEGACY, EW, ox_lower_unary, NULL, NULL},
    {"Tanh", LEGACY, EW, ox_lower_unary, NULL, NULL},
    {"Exp", LEGACY, EW, ox_lower_unary, NULL, NULL},
    {"Sqrt", LEGACY, EW, ox_lower_unary, NULL, NULL},
    {"Neg", LEGACY, EW, ox_lower_unary, NULL, NULL},
    {"Abs", LEGACY, EW, ox_lower_unary, NULL, NULL},
    {"Reciprocal", LEGACY, EW, ox_lower_unary, NULL, NULL},
    {"Elu", "alpha," LEGACY, NULL, ox_lower_unary, NULL, NULL},
    {"LeakyRelu", "alpha," LEGACY, NULL, ox_lower_unary, NULL, NULL},
    {"Celu", "alpha", NULL, ox_lower_unary, NULL, NULL},
    {"Selu", "alpha,gamma," LEGACY, NULL, ox_lower_unary, NULL, NULL},
    {"HardSigmoid", "alpha,beta," LEGACY, NULL, ox_lower_unary, NULL, NULL},
    {"HardSwish", "", NULL, ox_lower_unary, NULL, NULL},
    {"Softsign", "", NULL, ox_lower_unary, NULL, NULL},
    {"Gelu", "approximate", NULL, ox_lower_unary, NULL, NULL},
    {"PRelu", LEGACY, NULL, ox_lower_prelu, NULL, NULL},
    {"Clip", "min,max," LEGACY, NULL, ox_lower_clip, NULL, NULL},
    {"Erf", "", EW, NULL, "erf", NULL},
    {"Log", LEGACY, EW, NULL, "log", NULL},
    {"Softplus", "", NULL, NULL, "softplus", NULL},
    {"Floor", LEGACY, EW, NULL, NULL, NULL},
    {"Ceil", LEGACY, EW, NULL, NULL, NULL},
    {"Round", "", EW, NULL, NULL, NULL},
    {"Sign", "", EW, NULL, NULL, NULL},
    {"Sin", "", EW, NULL, NULL, NULL},
    {"Cos", "", EW, NULL, NULL, NULL},
    {"Identity", "", EW, ox_lower_pass, NULL, NULL},
    {"Dropout", "ratio,seed,is_test," LEGACY, EW, ox_lower_pass, NULL, NULL},
    {"Cast", "to,saturate", EW, ox_lower_cast, NULL, NULL},
    {"CastLike", "saturate", EW, ox_lower_cast, NULL, NULL},
    /* elementwise, two or more operands */
    {"Add", "broadcast,axis," LEGACY, EW, ox_lower_binary, NULL, NULL},
    {"Sub", "broadcast,axis," LEGACY, EW, ox_lower_binary, NULL, NULL},
    {"Mul", "broadcast,axis," LEGACY, EW, ox_lower_binary, NULL, NULL},
    {"Div", "broadcast,axis," LEGACY, EW, ox_lower_binary, NULL, NULL},
    {"Pow", "broadcast,axis", EW, ox_lower_pow, NULL, NULL},
    {"Max", LEGACY, EW, ox_lower_variadic, NULL, NULL},
    {"Min", LEGACY, EW, ox_lower_variadic, NULL, NULL},
    {"Sum", LEGACY, EW, ox_lower_variadic, NULL, NULL},
    {"Mean", LEGACY, EW, ox_lower_variadic, NULL, NULL},
    {"Mod", "fmod", EW, NULL, NULL, NULL},
    {"Equal", "broadcast,axis", EW, NULL, NULL, "it computes booleans, which kiln does not have"},
    {"Less", "broadcast,axis", EW, NULL, NULL, "it computes booleans, which kiln does not have"},
    {"Greater", "broadcast,axis", EW, NULL, NULL, "it computes booleans, which kiln does not have"},
    {"LessOrEqual", "", EW, NULL, NULL, "it computes booleans, which kiln does not have"},
    {"GreaterOrEqual", "", EW, NULL, NULL, "it computes booleans, which kiln does not have"},
    {"And", "broadcast,axis", EW, NULL, NULL, "it computes booleans, which kiln does not have"},
    {"Or", "broadcast,axis", EW, NULL, NULL, "it computes booleans, which kiln does not have"},
    {"Xor", "broadcast,axis", EW, NULL, NULL, "it computes booleans, which kiln does not have"},
    {"Not", "", EW, NULL, NULL, "it computes booleans, which kiln does not have"},
    {"Where", "", EW, NULL, NULL, "it selects by a boolean condition, which kiln does not have"},
    /* layers */
    {"Conv", "auto_pad,dilations,group,kernel_shape,pads,strides", NULL, ox_lower_conv, NULL, NULL},
    {"MaxPool", POOL_ATTRS, NULL, ox_lower_pool, NULL, NULL},
    {"AveragePool", POOL_ATTRS ",count_include_pad", NULL, ox_lower_pool, NULL, NULL},
    {"GlobalAveragePool", "", NULL, ox_lower_global_pool, NULL, NULL},
    {"GlobalMaxPool", "", NULL, ox_lower_global_pool, NULL, NULL},
    {"BatchNormalization", "epsilon,momentum,spatial,is_test,training_mode," LEGACY, NULL, ox_lower_batchnorm, NULL,
     NULL},
    {"LayerNormalization", "axis,epsilon,stash_type", NULL, ox_lower_layernorm, NULL, NULL},
    {"Gemm", "alpha,beta,transA,transB,broadcast", NULL, ox_lower_gemm, NULL, NULL},
    {"MatMul", "", NULL, ox_lower_matmul, NULL, NULL},
    {"Softmax", "axis", NULL, ox_lower_softmax, NULL, NULL},
    {"LogSoftmax", "axis", NULL, ox_lower_softmax, NULL, NULL},
    {"ReduceMean", REDUCE_ATTRS, RD, ox_lower_reduce, NULL, NULL},
    {"ReduceSum", REDUCE_ATTRS, RD, ox_lower_reduce, NULL, NULL},
    {"ReduceMax", REDUCE_ATTRS, RD, ox_lower_reduce, NULL, NULL},
    {"ReduceMin", REDUCE_ATTRS, RD, ox_lower_reduce, NULL, NULL},
    {"ReduceProd", REDUCE_ATTRS, RD, NULL, NULL, NULL},
    {"InstanceNormalization", "epsilon", NULL, NULL, "group_norm", NULL},
    {"GroupNormalization", "epsilon,num_groups,stash_type", NULL, NULL, "group_norm", NULL},
    {"ConvTranspose", "auto_pad,dilations,group,kernel_shape,output_padding,output_shape,pads,strides", NULL, NULL,
     "conv_transpose2d", NULL},
    {"Resize", "antialias,axes,coordinate_transformation_mode,cubic_coeff_a,exclude_outside,extrapolation_value,"
               "keep_aspect_ratio_policy,mode,nearest_mode",
     NULL, ox_lower_resize, NULL, NULL},
    {"Upsample", "mode,scales", NULL, ox_lower_resize, NULL, NULL},
    {"ArgMax", "axis,keepdims,select_last_index", NULL, NULL, NULL,
     "it computes integer indices (kiln's values are float32)"},
    {"ArgMin", "axis,keepdims,select_last_index", NULL, NULL, NULL,
     "it computes integer indices (kiln's values are float32)"},
    /* shapes */
    {"Shape", "start,end", SH, NULL, NULL, NULL},
    {"Size", "", SH, NULL, NULL, NULL},
    {"Constant", "value,value_float,value_floats,value_int,value_ints,value_string,value_strings,sparse_value",
     ox_fold_constant, NULL, NULL, NULL},
    {"ConstantOfShape", "value", SH, NULL, NULL, NULL},
    {"Range", "", SH, NULL, NULL, NULL},
    {"Reshape", "allowzero,shape," LEGACY, SH, ox_lower_reshape, NULL, NULL},
    {"Flatten", "axis", SH, ox_lower_flatten, NULL, NULL},
    {"Squeeze", "axes", SH, ox_lower_squeeze, NULL, NULL},
    {"Unsqueeze", "axes", SH, ox_lower_squeeze, NULL, NULL},
    {"Transpose", "perm", SH, ox_lower_transpose, NULL, NULL},
    {"Concat", "axis", SH, ox_lower_concat, NULL, NULL},
    {"Pad", "mode,pads,paddings,value", NULL, ox_lower_pad, NULL, NULL},
    {"Expand", "", SH, ox_lower_expand, NULL, NULL},
    {"Tile", "", SH, ox_lower_tile, NULL, NULL},
    {"DepthToSpace", "blocksize,mode", NULL, ox_lower_depth_space, NULL, NULL},
    {"SpaceToDepth", "blocksize", NULL, ox_lower_depth_space, NULL, NULL},
    {"Slice", "starts,ends,axes", SH, ox_lower_slice_like, "slice", NULL},
    {"Split", "axis,split,num_outputs", SH, ox_lower_slice_like, "slice", NULL},
    {"Gather", "axis", SH, ox_lower_slice_like, "slice", NULL},
    /* what kiln's model cannot hold */
    {"If", "then_branch,else_branch", NULL, NULL, NULL, "control flow (If, Loop, Scan) is not supported"},
    {"Loop", "body", NULL, NULL, NULL, "control flow (If, Loop, Scan) is not supported"},
    {"Scan", "body,num_scan_inputs,scan_input_axes,scan_input_directions,scan_output_axes,scan_output_directions",
     NULL, NULL, NULL, "control flow (If, Loop, Scan) is not supported"},
    {"SequenceConstruct", "", NULL, NULL, NULL, "sequences are not supported (kiln's values are tensors)"},
    {"SequenceEmpty", "dtype", NULL, NULL, NULL, "sequences are not supported (kiln's values are tensors)"},
    {"SequenceAt", "", NULL, NULL, NULL, "sequences are not supported (kiln's values are tensors)"},
    {"SequenceInsert", "", NULL, NULL, NULL, "sequences are not supported (kiln's values are tensors)"},
    {"SequenceErase", "", NULL, NULL, NULL, "sequences are not supported (kiln's values are tensors)"},
    {"SequenceLength", "", NULL, NULL, NULL, "sequences are not supported (kiln's values are tensors)"},
    {"SplitToSequence", "axis,keepdims", NULL, NULL, NULL, "sequences are not supported (kiln's values are tensors)"},
    {"ConcatFromSequence", "axis,new_axis", NULL, NULL, NULL,
     "sequences are not supported (kiln's values are tensors)"},
    {"RandomUniformLike", "dtype,high,low,seed", NULL, NULL, NULL, "random numbers are not supported"},
    {"RandomNormalLike", "dtype,mean,scale,seed", NULL, NULL, NULL, "random numbers are not supported"},
    {"RandomUniform", "dtype,high,low,seed,shape", NULL, NULL, NULL, "random numbers are not supported"},
    {"RandomNormal", "dtype,mean,scale,seed,shape", NULL, NULL, NULL, "random numbers are not supported"},
    {"Bernoulli", "dtype,seed", NULL, NULL, NULL, "random numbers are not supported"},
};

const ox_op *ox_op_find(const char *type)
{
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        if (strcmp(ops[k].type, type) == 0)
            return &ops[k];
    return NULL;
}
