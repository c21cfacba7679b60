/* compiler/frontend/onnx/ops.c: the ONNX ops the importer knows, one row
 * each: the attributes it understands, how it folds on constants, how it
 * is written in kiln layers, or why it cannot be (the reason kiln has no
 * equivalent). An op missing here is refused as one kiln has no operation
 * for. docs/import.md has the same list for readers. */
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
    {"Relu", LEGACY, EW, ox_lower_unary, NULL},
    {"Sigmoid", LEGACY, EW, ox_lower_unary, NULL},
    {"Tanh", LEGACY, EW, ox_lower_unary, NULL},
    {"Exp", LEGACY, EW, ox_lower_unary, NULL},
    {"Sqrt", LEGACY, EW, ox_lower_unary, NULL},
    {"Neg", LEGACY, EW, ox_lower_unary, NULL},
    {"Abs", LEGACY, EW, ox_lower_unary, NULL},
    {"Reciprocal", LEGACY, EW, ox_lower_unary, NULL},
    {"Elu", "alpha," LEGACY, NULL, ox_lower_unary, NULL},
    {"LeakyRelu", "alpha," LEGACY, NULL, ox_lower_unary, NULL},
    {"Celu", "alpha", NULL, ox_lower_unary, NULL},
    {"Selu", "alpha,gamma," LEGACY, NULL, ox_lower_unary, NULL},
    {"HardSigmoid", "alpha,beta," LEGACY, NULL, ox_lower_unary, NULL},
    {"HardSwish", "", NULL, ox_lower_unary, NULL},
    {"Softsign", "", NULL, ox_lower_unary, NULL},
    {"Gelu", "approximate", NULL, ox_lower_unary, NULL},
    {"PRelu", LEGACY, NULL, ox_lower_prelu, NULL},
    {"Clip", "min,max," LEGACY, NULL, ox_lower_clip, NULL},
    {"Erf", "", EW, ox_lower_unary, NULL},
    {"Log", LEGACY, EW, ox_lower_unary, NULL},
    {"Softplus", "", NULL, ox_lower_unary, NULL},
    {"Floor", LEGACY, EW, NULL, NULL},
    {"Ceil", LEGACY, EW, NULL, NULL},
    {"Round", "", EW, NULL, NULL},
    {"Sign", "", EW, NULL, NULL},
    {"Sin", "", EW, NULL, NULL},
    {"Cos", "", EW, NULL, NULL},
    {"Identity", "", EW, ox_lower_pass, NULL},
    {"Dropout", "ratio,seed,is_test," LEGACY, EW, ox_lower_pass, NULL},
    {"Cast", "to,saturate", EW, ox_lower_cast, NULL},
    {"CastLike", "saturate", EW, ox_lower_cast, NULL},
    /* elementwise, two or more operands */
    {"Add", "broadcast,axis," LEGACY, EW, ox_lower_binary, NULL},
    {"Sub", "broadcast,axis," LEGACY, EW, ox_lower_binary, NULL},
    {"Mul", "broadcast,axis," LEGACY, EW, ox_lower_binary, NULL},
    {"Div", "broadcast,axis," LEGACY, EW, ox_lower_binary, NULL},
    {"Pow", "broadcast,axis", EW, ox_lower_pow, NULL},
    {"Max", LEGACY, EW, ox_lower_variadic, NULL},
    {"Min", LEGACY, EW, ox_lower_variadic, NULL},
    {"Sum", LEGACY, EW, ox_lower_variadic, NULL},
    {"Mean", LEGACY, EW, ox_lower_variadic, NULL},
    {"Mod", "fmod", EW, NULL, NULL},
    {"Equal", "broadcast,axis", EW, NULL, "it computes booleans, which kiln does not have"},
    {"Less", "broadcast,axis", EW, NULL, "it computes booleans, which kiln does not have"},
    {"Greater", "broadcast,axis", EW, NULL, "it computes booleans, which kiln does not have"},
    {"LessOrEqual", "", EW, NULL, "it computes booleans, which kiln does not have"},
    {"GreaterOrEqual", "", EW, NULL, "it computes booleans, which kiln does not have"},
    {"And", "broadcast,axis", EW, NULL, "it computes booleans, which kiln does not have"},
    {"Or", "broadcast,axis", EW, NULL, "it computes booleans, which kiln does not have"},
    {"Xor", "broadcast,axis", EW, NULL, "it computes booleans, which kiln does not have"},
    {"Not", "", EW, NULL, "it computes booleans, which kiln does not have"},
    {"Where", "", EW, NULL, "it selects by a boolean condition, which kiln does not have"},
    /* layers */
    {"Conv", "auto_pad,dilations,group,kernel_shape,pads,strides", NULL, ox_lower_conv, NULL},
    {"MaxPool", POOL_ATTRS, NULL, ox_lower_pool, NULL},
    {"AveragePool", POOL_ATTRS ",count_include_pad", NULL, ox_lower_pool, NULL},
    {"GlobalAveragePool", "", NULL, ox_lower_global_pool, NULL},
    {"GlobalMaxPool", "", NULL, ox_lower_global_pool, NULL},
    {"BatchNormalization", "epsilon,momentum,spatial,is_test,training_mode," LEGACY, NULL, ox_lower_batchnorm,
     NULL},
    {"LayerNormalization", "axis,epsilon,stash_type", NULL, ox_lower_layernorm, NULL},
    {"Gemm", "alpha,beta,transA,transB,broadcast", NULL, ox_lower_gemm, NULL},
    {"MatMul", "", NULL, ox_lower_matmul, NULL},
    {"Softmax", "axis", NULL, ox_lower_softmax, NULL},
    {"LogSoftmax", "axis", NULL, ox_lower_softmax, NULL},
    {"ReduceMean", REDUCE_ATTRS, RD, ox_lower_reduce, NULL},
    {"ReduceSum", REDUCE_ATTRS, RD, ox_lower_reduce, NULL},
    {"ReduceMax", REDUCE_ATTRS, RD, ox_lower_reduce, NULL},
    {"ReduceMin", REDUCE_ATTRS, RD, ox_lower_reduce, NULL},
    {"ReduceProd", REDUCE_ATTRS, RD, NULL, NULL},
    {"InstanceNormalization", "epsilon", NULL, ox_lower_group_norm, NULL},
    {"GroupNormalization", "epsilon,num_groups,stash_type", NULL, ox_lower_group_norm, NULL},
    {"ConvTranspose", "auto_pad,dilations,group,kernel_shape,output_padding,output_shape,pads,strides", NULL,
     ox_lower_conv_transpose, NULL},
    {"Resize", "antialias,axes,coordinate_transformation_mode,cubic_coeff_a,exclude_outside,extrapolation_value,"
               "keep_aspect_ratio_policy,mode,nearest_mode",
     NULL, ox_lower_resize, NULL},
    {"Upsample", "mode,scales", NULL, ox_lower_resize, NULL},
    {"ArgMax", "axis,keepdims,select_last_index", NULL, NULL,
     "it computes integer indices (kiln's values are float32)"},
    {"ArgMin", "axis,keepdims,select_last_index", NULL, NULL,
     "it computes integer indices (kiln's values are float32)"},
    /* shapes */
    {"Shape", "start,end", SH, NULL, NULL},
    {"Size", "", SH, NULL, NULL},
    {"Constant", "value,value_float,value_floats,value_int,value_ints,value_string,value_strings,sparse_value",
     ox_fold_constant, NULL, NULL},
    {"ConstantOfShape", "value", SH, ox_lower_constant_of_shape, NULL},
    {"Range", "", SH, NULL, NULL},
    {"Reshape", "allowzero,shape," LEGACY, SH, ox_lower_reshape, NULL},
    {"Flatten", "axis", SH, ox_lower_flatten, NULL},
    {"Squeeze", "axes", SH, ox_lower_squeeze, NULL},
    {"Unsqueeze", "axes", SH, ox_lower_squeeze, NULL},
    {"Transpose", "perm", SH, ox_lower_transpose, NULL},
    {"Concat", "axis", SH, ox_lower_concat, NULL},
    {"Pad", "mode,pads,paddings,value", NULL, ox_lower_pad, NULL},
    {"Expand", "", SH, ox_lower_expand, NULL},
    {"Tile", "", SH, ox_lower_tile, NULL},
    {"DepthToSpace", "blocksize,mode", NULL, ox_lower_depth_space, NULL},
    {"SpaceToDepth", "blocksize", NULL, ox_lower_depth_space, NULL},
    {"Slice", "starts,ends,axes", SH, ox_lower_slice_like, NULL},
    {"Split", "axis,split,num_outputs", SH, ox_lower_slice_like, NULL},
    {"Gather", "axis", SH, ox_lower_slice_like, NULL},
    /* what kiln's model cannot hold */
    {"If", "then_branch,else_branch", NULL, NULL, "control flow (If, Loop, Scan) is not supported"},
    {"Loop", "body", NULL, NULL, "control flow (If, Loop, Scan) is not supported"},
    {"Scan", "body,num_scan_inputs,scan_input_axes,scan_input_directions,scan_output_axes,scan_output_directions",
     NULL, NULL, "control flow (If, Loop, Scan) is not supported"},
    {"SequenceConstruct", "", NULL, NULL, "sequences are not supported (kiln's values are tensors)"},
    {"SequenceEmpty", "dtype", NULL, NULL, "sequences are not supported (kiln's values are tensors)"},
    {"SequenceAt", "", NULL, NULL, "sequences are not supported (kiln's values are tensors)"},
    {"SequenceInsert", "", NULL, NULL, "sequences are not supported (kiln's values are tensors)"},
    {"SequenceErase", "", NULL, NULL, "sequences are not supported (kiln's values are tensors)"},
    {"SequenceLength", "", NULL, NULL, "sequences are not supported (kiln's values are tensors)"},
    {"SplitToSequence", "axis,keepdims", NULL, NULL, "sequences are not supported (kiln's values are tensors)"},
    {"ConcatFromSequence", "axis,new_axis", NULL, NULL,
     "sequences are not supported (kiln's values are tensors)"},
    {"RandomUniformLike", "dtype,high,low,seed", NULL, NULL, "random numbers are not supported"},
    {"RandomNormalLike", "dtype,mean,scale,seed", NULL, NULL, "random numbers are not supported"},
    {"RandomUniform", "dtype,high,low,seed,shape", NULL, NULL, "random numbers are not supported"},
    {"RandomNormal", "dtype,mean,scale,seed,shape", NULL, NULL, "random numbers are not supported"},
    {"Bernoulli", "dtype,seed", NULL, NULL, "random numbers are not supported"},
};

const ox_op *ox_op_find(const char *type)
{
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        if (strcmp(ops[k].type, type) == 0)
            return &ops[k];
    return NULL;
}
