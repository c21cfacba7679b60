/* compiler/codegen/cg.h: what the code generator's files share (internal;
 * the only header in kiln that includes llvm-c/ besides the .c files of
 * this folder).
 *
 * How a graph becomes code (docs/codegen.md):
 *   compile.c   checks the graph, sets up the target machine (target.c), plans
 *               the buffers (placement.c), then asks each node's kernel emitter
 *               (kernels/table.c: one table indexed by kiln_op) for its steps;
 *   a step      is one task function `void f(ptr ctx, i64 index, i64 count)`
 *               plus the number of tasks as a function of the batch; the
 *               run function (entry.c) calls kiln_rt_parallel_for(pool,
 *               count, f, &ctx) for each step in order;
 *   module.c    holds the helpers every emitter uses: types, constants,
 *               vector loads/stores with masks, loops, reductions;
 *   weights.c   packs parameters into one blob in the layout the kernels
 *               read, embedded in the object or written to a file.
 * Elementwise code is written once on LLVMValueRefs that may be scalars or
 * vectors (LLVM's arithmetic is type-polymorphic): kiln_cg_unary_value and
 * the math functions work on either. */
#ifndef KILN_CODEGEN_CG_H
#define KILN_CODEGEN_CG_H

#include <llvm-c/Core.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <stdbool.h>
#include <stdint.h>

#include "codegen.h"
#include "placement.h"

#if defined(__GNUC__) || defined(__clang__)
#define KILN_CG_HIDDEN __attribute__((visibility("hidden")))
#else
#define KILN_CG_HIDDEN
#endif

/* ---- target.c: the target table and the target machine ----------------- */


typedef struct kiln_cg_machine {
    LLVMTargetMachineRef tm;       /* owned */
    kiln_target row;               /* the target (compiler/target/): the table's row sized for the CPU */
    const kiln_target *target;     /* &row */
    char *triple, *cpu, *features; /* malloc'd */
    int opt_level;
    bool host;                     /* triple is the host's */
    bool elf;                      /* objects are ELF64 little-endian (elf.c can merge the units') */
    char description[384];
} kiln_cg_machine;

KILN_CG_HIDDEN kiln_status kiln_cg_machine_create(const kiln_cg_options *opt, kiln_cg_machine *out, kiln_diag *d);
/* Another target machine like m's (the JIT takes ownership of one). */
KILN_CG_HIDDEN LLVMTargetMachineRef kiln_cg_machine_clone_tm(const kiln_cg_machine *m);
KILN_CG_HIDDEN void kiln_cg_machine_release(kiln_cg_machine *m);
/* The target opt (NULL: the host) selects, without a target machine:
 * false if the names cannot be resolved. */
KILN_CG_HIDDEN bool kiln_cg_target_for(const kiln_cg_options *opt, kiln_target *out);

/* ---- weights.c: the weights blob ----------------------------------------- */

typedef struct kiln_cg_blob {
    unsigned char *data; /* 64-byte aligned pieces, f32 little-endian */
    size_t size, cap;
    uint64_t *param_offset; /* by value id: plain copy of a parameter, or UINT64_MAX */
    size_t n_values;
    /* the bytes each precision's layers stored (alignment padding included;
     * bytes stored outside any layer count as f32): the compile report */
    size_t precision_bytes[KILN_PREC_COUNT];
} kiln_cg_blob;

/* ---- the code generator's state ----------------------------------------- */

/* A vector type of one element type: what a kernel of that dtype loads,
 * computes on and stores (memory.c). Every dtype has vl lanes, the f32
 * vector's count: a bf16 or int8 vector is then a part of a register, which
 * is what a kernel converting to f32 per vector wants; a kernel that packs
 * two or four narrow elements per 32-bit lane (dot-product instructions)
 * builds its wider vectors from elem. */
typedef struct kiln_cg_vtype {
    kiln_dtype dtype;
    LLVMTypeRef elem; /* float, bfloat, half, double, i8 (i8 and u8), i32 */
    LLVMTypeRef vec;  /* <lanes x elem> */
    int lanes;
    int bytes;        /* element size, also the alignment of its accesses */
    bool is_float;
    bool is_signed;   /* integers: i8, i32 (u8 is not) */
} kiln_cg_vtype;

typedef struct kiln_cg_epilogue kiln_cg_epilogue; /* fusion.c, below */
typedef struct kiln_cg kiln_cg;

/* gemm_config.c: how the packed GEMM multiplies one combination of element
 * types on the target (see there): f32; f16 weights as B (dense) or as A
 * (conv2d), the other operand f32; bf16 operands in pairs of k; int8. */
enum {
    KILN_CG_GEMM_F32,
    KILN_CG_GEMM_F16W_B,
    KILN_CG_GEMM_F16W_A,
    KILN_CG_GEMM_BF16,
    KILN_CG_GEMM_INT8,    /* u8 activations (A) x s8 weights (B), int32 sums: dense */
    KILN_CG_GEMM_INT8_WA, /* s8 weights (A) x u8 activations (B): conv2d */
    KILN_CG_GEMM_CONFIGS
};
#define KILN_CG_GEMM_MAX_MR 16
#define KILN_CG_GEMM_MAX_NV 16 /* vectors of one tile: nr, or nr * gemv_panels */
typedef struct kiln_cg_gemm_config kiln_cg_gemm_config;
struct kiln_cg_gemm_config {
    int id;              /* KILN_CG_GEMM_* */
    const char *name;    /* in micro-kernel names; NULL: the target has no such GEMM */
    kiln_dtype a, b, acc;
    int mr, nr;          /* the register tile: mr rows x nr vectors of `lanes` accumulators */
    int kc;              /* K block (a kc x panel slice of B fills half of L1) */
    int k_pack;          /* consecutive k values one multiply-add consumes (packed together) */
    int lanes;           /* accumulator lanes per vector */
    int gemv_panels;     /* one-row GEMMs: panels streamed at once */
    bool f16c;           /* f16: the target converts halves in hardware (F16C) */
    bool dot;            /* bf16, int8: the multiply-add is a dot-product instruction (vdpbf16ps, vpdpbusd) */
    /* the micro-kernel's inner step: row r's A at p + off broadcast; one
     * vector of B at p + off (k_pack rows of it interleaved); acc + a * b */
    LLVMValueRef (*load_a)(kiln_cg *cg, const kiln_cg_gemm_config *c, LLVMValueRef p, LLVMValueRef off);
    LLVMValueRef (*load_b)(kiln_cg *cg, const kiln_cg_gemm_config *c, LLVMValueRef p, LLVMValueRef off);
    LLVMValueRef (*madd)(kiln_cg *cg, const kiln_cg_gemm_config *c, LLVMValueRef a, LLVMValueRef b,
                         LLVMValueRef acc);
    /* packing f32 sources at compile time (kiln_cg_pack_a / _b below) */
    void (*pack_a)(const kiln_cg_gemm_config *c, const float *src, int64_t m, int64_t k, int64_t rs, int64_t cs,
                   int64_t kc, void *dst);
    void (*pack_b)(const kiln_cg_gemm_config *c, const float *src, int64_t k, int64_t n, int64_t rs, int64_t cs,
                   void *dst);
};
KILN_CG_HIDDEN void kiln_cg_gemm_configs_init(const kiln_target *t, kiln_cg_gemm_config *out);
/* The configuration for A and B of these types on cg's target, or NULL. */
KILN_CG_HIDDEN const kiln_cg_gemm_config *kiln_cg_gemm_config_for(const kiln_cg *cg, kiln_dtype a, kiln_dtype b);
KILN_CG_HIDDEN const kiln_cg_gemm_config *kiln_cg_gemm_f32(const kiln_cg *cg);
/* The configuration node n computes with (by kiln_node_precision): f16
 * or int8 weights on A (weights_are_a: conv2d) or B (dense). */
KILN_CG_HIDDEN const kiln_cg_gemm_config *kiln_cg_gemm_for_node(const kiln_cg *cg, const kiln_node *n,
                                                                bool weights_are_a);
/* The element type a kernel computing with c is named after (kernel names):
 * f32, f16 (f16 weights), bf16, or i8 (int8: the names say int8). */
KILN_CG_HIDDEN kiln_dtype kiln_cg_gemm_dtype(const kiln_cg_gemm_config *c);
/* k rounded up to whole k_pack groups (the packed K of a panel). */
KILN_CG_HIDDEN int64_t kiln_cg_gemm_kpad(const kiln_cg_gemm_config *c, int64_t k);

/* Code generation units. The kernels of a model are spread over a few LLVM
 * modules, each in its own context, which LLVM optimizes and compiles to
 * machine code on threads of their own (compile.c, emit.c); elf.c merges
 * their objects into one. What one unit uses from another (the run function
 * in unit 0 calling tasks, a shared micro-kernel) is a hidden global,
 * declared where it is used; the merge turns it back into a local symbol.
 * With one unit (the JIT, the math kernels) everything is private as
 * before. */
#define KILN_CG_MAX_UNITS 4

typedef struct kiln_cg_unit {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMTypeRef t_void, t_i1, t_i8, t_i32, t_i64, t_f32, t_ptr;
    LLVMTypeRef t_vf, t_vi32, t_vi64, t_vmask; /* vectors of vl lanes */
    LLVMTypeRef t_ctx;  /* the tasks' context: {i64 batch, ptr ws, ptr weights, ptr inputs, ptr outputs} */
    LLVMTypeRef t_task; /* void (ptr, i64, i64) */
    kiln_cg_vtype vt[KILN_DTYPE_COUNT]; /* by dtype; vt[KILN_F32].vec is t_vf */
    /* kernels/gemm.c: micro-kernels by configuration, kind, rows, vectors (defined or declared here) */
    LLVMValueRef ukernels[KILN_CG_GEMM_CONFIGS][3][KILN_CG_GEMM_MAX_MR + 1][KILN_CG_GEMM_MAX_NV + 1];
    size_t insts;                     /* instructions emitted into it: the balance between units */
} kiln_cg_unit;

/* Number of tasks of a step: ceil((fixed + batch * per_batch) / div) * mult,
 * at most max (0: no cap). */
typedef struct kiln_cg_count {
    int64_t fixed, per_batch, div, mult, max;
} kiln_cg_count;

typedef struct kiln_cg_step {
    LLVMValueRef fn; /* void (ptr ctx, i64 index, i64 count) */
    kiln_cg_count count;
    uint32_t first_node, last_node; /* the nodes it computes (a fusion group) */
} kiln_cg_step;

/* The code generator's state, by lifetime:
 *   kiln_cg           the module being built: the graph and its plans, the
 *                     target, the weights, the steps, the units;
 *   kiln_cg_unit (u)  the LLVM module, context, builder and types that code
 *                     is being emitted into (compile.c spreads the kernels
 *                     over units; each has its own context);
 *   kiln_cg_function  the task function being emitted (f): its arguments
 *                     and the context fields loaded in its entry, the node
 *                     and epilogue it computes. An emitter that builds a
 *                     helper function in the middle of a task (a micro-
 *                     kernel) saves f, starts the helper, and restores f. */
typedef struct kiln_cg_function {
    LLVMValueRef fn;
    LLVMBasicBlockRef entry;
    LLVMValueRef arg_ctx, arg_index, arg_count;
    LLVMValueRef c_batch, c_ws, c_weights, c_inputs, c_outputs;
    const kiln_node *node; /* for messages; NULL outside a node */
    kiln_cg_epilogue *epi; /* the fused members of the node being emitted (n == 0: none) */
} kiln_cg_function;

struct kiln_cg {
    const kiln_graph *g; /* NULL when building math kernels only */
    kiln_cg_options opt;
    kiln_diag *d;
    const kiln_cg_machine *machine;
    const kiln_target *target;
    kiln_cg_placement *layout;
    kiln_cg_blob *blob;
    const char *prefix; /* the model's name: prefix of exported symbols */
    int vl;             /* f32 lanes per vector */
    const bool *fused;     /* per node: runs inside the kernel of the node before it */
    const kiln_impl *impl; /* per node: how it is computed (the IR's, or the target's rules) */
    bool uses_blas;        /* a kernel calls kiln_rt_sgemm: NAME_create sets OpenBLAS to one thread */
    kiln_cg_gemm_config gemm[KILN_CG_GEMM_CONFIGS]; /* the target's GEMM configurations (by KILN_CG_GEMM_*) */

    kiln_cg_unit units[KILN_CG_MAX_UNITS];
    int n_units, unit;
    kiln_cg_unit *u; /* &units[unit]: where code goes */
    /* 1 + the unit defining each micro-kernel, 0: none yet */
    int8_t ukernel_home[KILN_CG_GEMM_CONFIGS][3][KILN_CG_GEMM_MAX_MR + 1][KILN_CG_GEMM_MAX_NV + 1];

    kiln_cg_function f; /* the task being emitted */

    kiln_cg_step *steps;
    size_t n_steps, cap_steps;
    kiln_status status; /* the first error */
};

/* Reports an error at the current node ("layer 'L' (op): ...") and records
 * the first status. Returns st. */
KILN_CG_HIDDEN kiln_status kiln_cg_fail(kiln_cg *cg, kiln_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- module.c: module, types, helpers ------------------------------------ */

/* Creates a module (in ctx) with the machine's triple and data layout, its
 * builder and the common types, as the next unit, and selects it. */
KILN_CG_HIDDEN kiln_status kiln_cg_module_begin(kiln_cg *cg, LLVMContextRef ctx, const char *name);
/* Makes unit u's context, module, builder and types cg's. */
KILN_CG_HIDDEN void kiln_cg_unit_select(kiln_cg *cg, int u);
/* The linkage of a function other units may use: private with one unit,
 * else external with hidden visibility. */
KILN_CG_HIDDEN void kiln_cg_shared_linkage(kiln_cg *cg, LLVMValueRef fn);
/* Adds fn's instructions to the current unit's count. */
KILN_CG_HIDDEN void kiln_cg_unit_count(kiln_cg *cg, LLVMValueRef fn);
/* A declaration in unit u of a function defined in another unit: `name`,
 * fn_type (a type of u's context); external, hidden, nounwind. */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_declare_in(kiln_cg *cg, int u, const char *name, LLVMTypeRef fn_type);
/* Marks a function: nounwind, the target's vector width legal. */
KILN_CG_HIDDEN void kiln_cg_function_attrs(kiln_cg *cg, LLVMValueRef fn);

/* Starts task function "kiln.<kernel>.<layer>" (private) for node n (may be
 * NULL); the builder is placed in its entry block. */
KILN_CG_HIDDEN void kiln_cg_task_begin(kiln_cg *cg, const char *kernel, const kiln_node *n);
/* Ends it (ret void) and appends it as a step with `count` tasks. */
KILN_CG_HIDDEN void kiln_cg_task_end(kiln_cg *cg, kiln_cg_count count);

/* Inside a task: the batch, a value's first element (float *), the current
 * node's kernel scratch (its place in the memory plan, else the shared
 * region), a place in the weights, a value's element count for this batch. */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_batch(kiln_cg *cg);
KILN_CG_HIDDEN LLVMValueRef kiln_cg_buffer_ptr(kiln_cg *cg, const kiln_cg_buffer *buf);
KILN_CG_HIDDEN LLVMValueRef kiln_cg_value_ptr(kiln_cg *cg, kiln_id v);
KILN_CG_HIDDEN LLVMValueRef kiln_cg_scratch_ptr(kiln_cg *cg);
KILN_CG_HIDDEN LLVMValueRef kiln_cg_weights_ptr(kiln_cg *cg, uint64_t offset);
KILN_CG_HIDDEN LLVMValueRef kiln_cg_value_elems(kiln_cg *cg, kiln_id v);
/* Elements of v stored per batch item (batched) or in total (unbatched). */
KILN_CG_HIDDEN int64_t kiln_cg_elems_per_item(const kiln_cg *cg, kiln_id v);
KILN_CG_HIDDEN bool kiln_cg_batched(const kiln_cg *cg, kiln_id v);

/* Constants. */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_i64(kiln_cg *cg, int64_t v);
/* i64 index arithmetic: a * b for a constant b (a itself when b is 1), a + b. */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_imul(kiln_cg *cg, LLVMValueRef a, int64_t b);
KILN_CG_HIDDEN LLVMValueRef kiln_cg_iadd(kiln_cg *cg, LLVMValueRef a, LLVMValueRef b);
KILN_CG_HIDDEN LLVMValueRef kiln_cg_i32(kiln_cg *cg, int32_t v);
KILN_CG_HIDDEN LLVMValueRef kiln_cg_f32(kiln_cg *cg, double v);
/* A float constant of like's type (scalar or vector). */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_fconst(kiln_cg *cg, LLVMValueRef like, double v);
/* An i32 constant/vector matching the float type of like (for bit tricks). */
KILN_CG_HIDDEN LLVMTypeRef kiln_cg_int_type_like(kiln_cg *cg, LLVMValueRef like);
KILN_CG_HIDDEN LLVMValueRef kiln_cg_iconst_like(kiln_cg *cg, LLVMValueRef like, int64_t v);
/* Vector of vl copies of a scalar. */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_splat(kiln_cg *cg, LLVMValueRef scalar);
/* <0, 1, ..., vl-1> as i64 lanes. */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_iota64(kiln_cg *cg);

/* Arithmetic helpers that work on scalars or vectors alike. */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_fma(kiln_cg *cg, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c); /* a*b+c */
/* A hint that the cache line at ptr is about to be written (no effect on results). */
KILN_CG_HIDDEN void kiln_cg_prefetch_write(kiln_cg *cg, LLVMValueRef ptr);
KILN_CG_HIDDEN LLVMValueRef kiln_cg_fabs(kiln_cg *cg, LLVMValueRef x);
KILN_CG_HIDDEN LLVMValueRef kiln_cg_sqrt(kiln_cg *cg, LLVMValueRef x);
KILN_CG_HIDDEN LLVMValueRef kiln_cg_copysign(kiln_cg *cg, LLVMValueRef mag, LLVMValueRef sign);
/* a > b ? a : b with NaN in either giving NaN (torch.maximum); likewise min. */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_fmax_nan(kiln_cg *cg, LLVMValueRef a, LLVMValueRef b);
KILN_CG_HIDDEN LLVMValueRef kiln_cg_fmin_nan(kiln_cg *cg, LLVMValueRef a, LLVMValueRef b);
/* Clamp x to [lo, hi] keeping NaN (compare and select). */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_clamp(kiln_cg *cg, LLVMValueRef x, double lo, double hi);
KILN_CG_HIDDEN LLVMValueRef kiln_cg_is_nan(kiln_cg *cg, LLVMValueRef x);
/* Horizontal sum / max of a vector (a fixed tree of shuffles: deterministic). */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_reduce_add(kiln_cg *cg, LLVMValueRef v);
KILN_CG_HIDDEN LLVMValueRef kiln_cg_reduce_max(kiln_cg *cg, LLVMValueRef v);
/* Integer min/max of i64 scalars. */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_smin(kiln_cg *cg, LLVMValueRef a, LLVMValueRef b);
KILN_CG_HIDDEN LLVMValueRef kiln_cg_smax(kiln_cg *cg, LLVMValueRef a, LLVMValueRef b);
/* Calls intrinsic `name` overloaded on types[0..n_types). */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_intrinsic(kiln_cg *cg, const char *name, LLVMTypeRef *types, unsigned n_types,
                                              LLVMValueRef *args, unsigned n_args);

/* memory.c: element types and memory access. Indices are i64 elements of
 * the access's type; mask NULL = all lanes; alignment is the element's size
 * (user buffers are only element-aligned). */
KILN_CG_HIDDEN void kiln_cg_vtypes_init(kiln_cg *cg, LLVMContextRef ctx, kiln_cg_vtype *vt);
KILN_CG_HIDDEN const kiln_cg_vtype *kiln_cg_vtype_of(const kiln_cg *cg, kiln_dtype dt);
/* A constant v of vt's element type, or a vector of them. */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_const_t(kiln_cg *cg, const kiln_cg_vtype *vt, double v, bool vector);
KILN_CG_HIDDEN LLVMValueRef kiln_cg_gep_t(kiln_cg *cg, const kiln_cg_vtype *vt, LLVMValueRef base,
                                          LLVMValueRef index);
KILN_CG_HIDDEN LLVMValueRef kiln_cg_load_t(kiln_cg *cg, const kiln_cg_vtype *vt, LLVMValueRef base,
                                           LLVMValueRef index);
KILN_CG_HIDDEN void kiln_cg_store_t(kiln_cg *cg, const kiln_cg_vtype *vt, LLVMValueRef v, LLVMValueRef base,
                                    LLVMValueRef index);
KILN_CG_HIDDEN LLVMValueRef kiln_cg_vload_t(kiln_cg *cg, const kiln_cg_vtype *vt, LLVMValueRef base,
                                            LLVMValueRef index, LLVMValueRef mask, double passthru);
KILN_CG_HIDDEN void kiln_cg_vstore_t(kiln_cg *cg, const kiln_cg_vtype *vt, LLVMValueRef v, LLVMValueRef base,
                                     LLVMValueRef index, LLVMValueRef mask);
KILN_CG_HIDDEN LLVMValueRef kiln_cg_gather_t(kiln_cg *cg, const kiln_cg_vtype *vt, LLVMValueRef base,
                                             LLVMValueRef idx, LLVMValueRef mask, double passthru);
/* x (scalar or vector of vt's elements) to f32 and back, bit for bit as
 * ir/convert.c does for floats. From f32: floats round to nearest even (NaN
 * stays NaN, f16 overflows to infinity); integers round half to even and
 * saturate, NaN becomes 0. */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_to_f32(kiln_cg *cg, const kiln_cg_vtype *vt, LLVMValueRef x);
KILN_CG_HIDDEN LLVMValueRef kiln_cg_from_f32(kiln_cg *cg, const kiln_cg_vtype *vt, LLVMValueRef x);
/* The f32 forms (pointers are float *). */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_gep(kiln_cg *cg, LLVMValueRef base, LLVMValueRef index);
KILN_CG_HIDDEN LLVMValueRef kiln_cg_load(kiln_cg *cg, LLVMValueRef base, LLVMValueRef index); /* scalar */
KILN_CG_HIDDEN void kiln_cg_store(kiln_cg *cg, LLVMValueRef v, LLVMValueRef base, LLVMValueRef index);
KILN_CG_HIDDEN LLVMValueRef kiln_cg_vload(kiln_cg *cg, LLVMValueRef base, LLVMValueRef index, LLVMValueRef mask,
                                          double passthru);
KILN_CG_HIDDEN void kiln_cg_vstore(kiln_cg *cg, LLVMValueRef v, LLVMValueRef base, LLVMValueRef index,
                                   LLVMValueRef mask);
/* Lanes base[idx[i]] where mask (NULL = all); passthru elsewhere. idx: i64 lanes. */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_gather(kiln_cg *cg, LLVMValueRef base, LLVMValueRef idx, LLVMValueRef mask,
                                           double passthru);
/* Lanes i < n (n: i64 scalar). */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_tail_mask(kiln_cg *cg, LLVMValueRef n);
/* a & b where either may be NULL (all lanes). */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_mask_and(kiln_cg *cg, LLVMValueRef a, LLVMValueRef b);
/* memcpy of n_bytes (i64) between buffers aligned to `align` bytes. */
KILN_CG_HIDDEN void kiln_cg_memcpy(kiln_cg *cg, LLVMValueRef dst, LLVMValueRef src, LLVMValueRef n_bytes,
                                   unsigned align);
/* A stack slot in the function's entry block. */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_alloca(kiln_cg *cg, LLVMTypeRef t, const char *name);

/* Control flow. */
typedef struct kiln_cg_loop {
    LLVMBasicBlockRef header, body, exit;
    LLVMValueRef i, step, phi;
    /* LLVM may unroll the loop by a run-time trip count (set between begin
     * and end). Off by default ("llvm.loop.unroll.runtime.disable"): runtime
     * unrolling of the many cold loops (packing, borders, flushes) made
     * ResNet-18's backend 2.4x slower (LSR, ISel) with no measurable
     * difference in run time; the micro-kernels' k loops turn it on.
     * Unrolling by a constant trip count is unaffected. */
    bool runtime_unroll;
    /* Unroll by exactly this many (0: LLVM decides). A loop whose body has
     * many independent loads (a blocked convolution's channels) fully
     * unrolled lets the scheduler hoist every load ahead of the arithmetic
     * and spill them all. */
    int unroll_count;
} kiln_cg_loop;
/* for (i = start; i < end; i += step) -- i64; the builder is in the body. */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_for_begin(kiln_cg *cg, kiln_cg_loop *l, LLVMValueRef start, LLVMValueRef end,
                                              LLVMValueRef step);
KILN_CG_HIDDEN void kiln_cg_for_end(kiln_cg *cg, kiln_cg_loop *l);

typedef struct kiln_cg_if {
    LLVMBasicBlockRef then_bb, else_bb, merge;
} kiln_cg_if;
KILN_CG_HIDDEN void kiln_cg_if_begin(kiln_cg *cg, kiln_cg_if *f, LLVMValueRef cond);
KILN_CG_HIDDEN void kiln_cg_if_else(kiln_cg *cg, kiln_cg_if *f);
KILN_CG_HIDDEN void kiln_cg_if_end(kiln_cg *cg, kiln_cg_if *f);

/* A vector loop over [lo, hi) (i64): body(i, NULL) for each full vector at i,
 * then body(i, mask) once for the tail when there is one. */
typedef void (*kiln_cg_vbody)(kiln_cg *cg, LLVMValueRef i, LLVMValueRef mask, void *arg);
KILN_CG_HIDDEN void kiln_cg_vloop(kiln_cg *cg, LLVMValueRef lo, LLVMValueRef hi, kiln_cg_vbody body, void *arg);

/* Split of `total` items into tasks of `chunk`: [*lo, *hi) for this task. */
KILN_CG_HIDDEN void kiln_cg_task_range(kiln_cg *cg, LLVMValueRef total, int64_t chunk, LLVMValueRef *lo,
                                       LLVMValueRef *hi);
/* i64 a / b and a % b for a constant b > 0 (a >= 0). */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_udiv(kiln_cg *cg, LLVMValueRef a, int64_t b);
KILN_CG_HIDDEN LLVMValueRef kiln_cg_urem(kiln_cg *cg, LLVMValueRef a, int64_t b);

/* ---- weights.c ------------------------------------------------------------ */

/* `bytes` zeroed bytes in the blob (64-byte aligned); *offset = their byte
 * offset. NULL when out of memory (cg->status set). Valid until the next
 * alloc. kiln_cg_blob_alloc: `count` floats. */
KILN_CG_HIDDEN void *kiln_cg_blob_alloc_bytes(kiln_cg *cg, size_t bytes, uint64_t *offset);
KILN_CG_HIDDEN float *kiln_cg_blob_alloc(kiln_cg *cg, size_t count, uint64_t *offset);
/* A plain f32 copy of parameter v (added once). */
KILN_CG_HIDDEN kiln_status kiln_cg_blob_param(kiln_cg *cg, kiln_id v, uint64_t *offset);
/* Parameter v's data as f32 (malloc'd, caller frees); NULL on failure (reported). */
KILN_CG_HIDDEN float *kiln_cg_param_f32(kiln_cg *cg, kiln_id v, size_t *count);
KILN_CG_HIDDEN void kiln_cg_blob_release(kiln_cg_blob *b);
/* The embedded weights global (private, constant, 64-byte aligned), or a null
 * pointer constant when the blob is empty. With several units only declared
 * (hidden): the object gets the bytes from elf.c, the joined module from
 * kiln_cg_blob_define. */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_blob_global(kiln_cg *cg);
/* Gives the declared weights global gv its initializer (the blob's bytes)
 * and private linkage. */
KILN_CG_HIDDEN void kiln_cg_blob_define(LLVMContextRef ctx, LLVMValueRef gv, const kiln_cg_blob *b);
/* The weights global's name: "<model>.weights". */
KILN_CG_HIDDEN void kiln_cg_blob_name(const char *model, char *buf, size_t size);
KILN_CG_HIDDEN uint64_t kiln_cg_blob_checksum(const kiln_cg_blob *b);

/* ---- the kernels ---------------------------------------------------------- */

typedef struct kiln_cg_kernel {
    /* Emits the node's steps (none for aliases). */
    kiln_status (*emit)(kiln_cg *cg, const kiln_node *n);
    /* The element types its emitter reads and writes besides f32 (bit
     * KILN_CG_DTYPE(dt) for each); 0: f32 only. compile.c accepts a value of
     * another type only when its producer's and every reader's kernel list it. */
    unsigned dtypes;
} kiln_cg_kernel;
#define KILN_CG_DTYPE(dt) (1u << (dt))

/* kernels/table.c: the entry of an op (empty for an unknown op). */
KILN_CG_HIDDEN const kiln_cg_kernel *kiln_cg_kernel_for(kiln_op op);

/* A kernel's name (for task functions, --per-layer and the report), built
 * one way for every kernel: "<dtype>_<body>[_<where>][_<rows>x<cols>]",
 * e.g. f32_conv2d_1x1_bias_relu_gemm_avx512_14x32: the element type, the
 * op with its variant and fused epilogue (body, printf-style), where it
 * runs (the target's row name, or openblas), and the register tile (rows
 * 0: none). */
typedef enum kiln_cg_where { KILN_CG_ON_TARGET, KILN_CG_ON_OPENBLAS, KILN_CG_ON_ANY } kiln_cg_where;
KILN_CG_HIDDEN const char *kiln_cg_kernel_name(const kiln_cg *cg, char *buf, size_t size, kiln_dtype dtype,
                                               kiln_cg_where where, int tile_rows, int tile_cols, const char *body,
                                               ...) __attribute__((format(printf, 8, 9)));
/* The same for a kernel on the packed GEMM of configuration c: the prefix
 * says what it computes in (f32, f16, bf16, int8), the tile is c's. */
KILN_CG_HIDDEN const char *kiln_cg_gemm_kernel_name(const kiln_cg *cg, char *buf, size_t size,
                                                    const kiln_cg_gemm_config *c, const char *body, ...)
    __attribute__((format(printf, 5, 6)));
/* The element type node n computes in (its output's). */
static inline kiln_dtype kiln_cg_node_dtype(const kiln_cg *cg, const kiln_node *n)
{
    return cg->g->values[n->output].type.dtype;
}

/* kernels/elementwise.c */
KILN_CG_HIDDEN kiln_status kiln_cg_emit_unary(kiln_cg *cg, const kiln_node *n);
KILN_CG_HIDDEN kiln_status kiln_cg_emit_binary(kiln_cg *cg, const kiln_node *n);
/* The unary op of n (and its attributes) applied to x, a scalar or vector. */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_unary_value(kiln_cg *cg, const kiln_node *n, LLVMValueRef x);
KILN_CG_HIDDEN LLVMValueRef kiln_cg_binary_value(kiln_cg *cg, kiln_op op, LLVMValueRef a, LLVMValueRef b);

/* kernels/math.c: scalar or vector f32 in, same type out. */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_math(kiln_cg *cg, kiln_cg_math_fn fn, LLVMValueRef x);
/* log for x > 0 (also +inf, 0 and NaN): used by log_softmax and pow. */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_log(kiln_cg *cg, LLVMValueRef x);
/* exp (used by pow). */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_exp(kiln_cg *cg, LLVMValueRef x);
/* A function `void name(const float *x, float *y, i64 n)` applying fn. */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_emit_math_kernel(kiln_cg *cg, kiln_cg_math_fn fn, const char *name);

/* kernels/pow.c: a^b (C's special cases), scalar or vector f32. */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_pow(kiln_cg *cg, LLVMValueRef a, LLVMValueRef b);

/* fusion.c: fusion groups (kiln_node.group) as the code generator runs them.
 * A group's anchor (conv2d, dense, matmul, or an elementwise op) is emitted
 * with the group's later members as its epilogue: applied to the anchor's
 * results in registers, before the one store. */
#define KILN_CG_MAX_EPI KILN_TARGET_MAX_EPI

typedef struct kiln_cg_epi_op {
    const kiln_node *n;  /* the member */
    bool binary;         /* else a one-input op */
    bool scalar;         /* binary with the node's `scalar` as the other operand */
    bool chained_second; /* the running value is the op's second operand */
    kiln_id other;       /* binary, not scalar: the other operand */
    /* The other operand in the anchor output's 2-D view [rows, cols]: element
     * (row, col) is at row_offset(row) + col * col_stride, where row_offset
     * decomposes row over row_dims (outermost first; the outermost may be the
     * batch, whose size is not needed) with row_strides. */
    int n_row_dims;
    int64_t row_dims[KILN_MAX_RANK], row_strides[KILN_MAX_RANK];
    int64_t col_stride; /* 1 or 0 (broadcast along the columns) */
    LLVMValueRef base;  /* inside the task: the operand's first element */
} kiln_cg_epi_op;

struct kiln_cg_epilogue {
    int n;
    kiln_cg_epi_op ops[KILN_CG_MAX_EPI];
    kiln_id out;        /* the value the kernel stores: the last member's output */
    int view_split;     /* the 2-D view: rows are the output's axes [0, split) */
};

/* The fusion plan (compile.c, before the layout): fused[i] is true when node
 * i runs inside the kernel of the node before it (its group's anchor or an
 * earlier member). Members the code generator cannot apply in registers
 * start a kernel of their own; their operand is then stored. */
KILN_CG_HIDDEN kiln_status kiln_cg_fusion_plan(const kiln_graph *g, bool *fused, kiln_diag *d);
/* The 2-D view of an anchor's output that its epilogue uses: rows are the
 * axes before `split`. -1 when the op takes no epilogue. */
KILN_CG_HIDDEN int kiln_cg_epi_view_split(const kiln_graph *g, const kiln_node *anchor);
/* Builds the epilogue of the anchor at node index i (members: the fused
 * nodes after it). */
KILN_CG_HIDDEN void kiln_cg_epi_build(kiln_cg *cg, size_t i, kiln_cg_epilogue *e);
/* Inside a task: sets each binary op's base pointer. */
KILN_CG_HIDDEN void kiln_cg_epi_begin(kiln_cg *cg, kiln_cg_epilogue *e);
/* The offsets of row `row` (i64, in the view) for each op (offs[KILN_CG_MAX_EPI]). */
KILN_CG_HIDDEN void kiln_cg_epi_row(kiln_cg *cg, const kiln_cg_epilogue *e, LLVMValueRef row, LLVMValueRef *offs);
/* Applies the epilogue to val (a vector at view column col, lanes under
 * mask; or a scalar: mask NULL) with the row offsets from kiln_cg_epi_row. */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_epi_apply(kiln_cg *cg, const kiln_cg_epilogue *e, LLVMValueRef val,
                                              const LLVMValueRef *offs, LLVMValueRef col, LLVMValueRef mask);
/* "relu", "add_relu", ... for kernel names (into buf). */
KILN_CG_HIDDEN const char *kiln_cg_epi_name(const kiln_cg_epilogue *e, char *buf, size_t size);
/* Strides (elements) of shape s's axes aligned to out's rank; 0 along
 * broadcast axes; the batch axis of a batched s has the stride of one item. */
KILN_CG_HIDDEN void kiln_cg_bcast_strides(const kiln_shape *s, const kiln_shape *out, int64_t *st);

/* kernels/gemm.c: the packed GEMM.
 *
 *   C[i, j] = epilogue(bias + sum_k A[i, k] B[k, j]),  i in [0, m), j in [n0, n1)
 *
 * A is row-major (lda) or packed at compile time in panels of gemm_mr rows,
 * K-block-major: for each K block of kc, [ceil(M / mr)][kcb][mr] (kcb: the
 * block's length), zero-padded, so that the row tiles of one K block are
 * one stream (kiln_cg_pack_a; a_row0 and a_rows locate a task's rows); B is
 * row-major (ldb) or packed in panels of NR = gemm_nr * lanes columns
 * ([ceil(N / NR)][K][NR], zero-padded; `b` at column 0, n0 a multiple of
 * NR). The sum over k runs in blocks of gemm_kc added to C; the epilogue is
 * applied when the last block is added. A configuration with k_pack > 1
 * (bf16) packs k in groups: [..][K / k_pack][mr or NR][k_pack], K padded to
 * whole groups, K blocks a multiple of k_pack; its A, when row-major (f32
 * activations), is converted by the row-copy path, and a row-major or
 * implicit B is packed in f32 and converted per panel. C, bias and the
 * epilogue are f32 in every configuration. */
typedef struct kiln_cg_gemm {
    const kiln_cg_gemm_config *cfg; /* the element types' configuration; NULL: f32 */
    LLVMValueRef a, b, c;
    bool a_packed, b_packed;
    LLVMValueRef a_row0;    /* packed A: the first row (a multiple of mr) of the matrix at `a`; NULL: 0 */
    int64_t a_rows;         /* packed A: the matrix's rows padded to mr */
    bool b_padded;          /* row-major B readable up to a whole panel past n1 (no masked loads) */
    int64_t lda, ldb, ldc;
    LLVMValueRef m, n0, n1; /* i64 */
    int64_t k;
    LLVMValueRef bias;      /* float * or NULL: bias[i] (per row) or bias[j] */
    bool bias_per_row;
    const kiln_cg_epilogue *epi; /* NULL or no ops: none */
    LLVMValueRef epi_row0;       /* the view row of C's row 0 */
    int64_t kc;                  /* K block; 0: the target's gemm_kc (packed A must be packed with this kc) */
    int64_t n_panels_hint;       /* panels per call (n1 - n0 over NR), roughly */
    /* Implicit B (convolutions): fills dst[(k - k0) * NR + c] with B[k][j + c]
     * for k in [k0, k1) and c < NR (0 for c >= ncols) instead of reading b. */
    void (*pack_b)(kiln_cg *cg, void *arg, LLVMValueRef dst, LLVMValueRef j, LLVMValueRef ncols, LLVMValueRef k0,
                   LLVMValueRef k1);
    void *pack_arg;
    /* int8 (a configuration of int32 sums): the activations' quantization
     * (ir/quant.h: 1 / sa and za), applied where A is copied; per output
     * channel, as the bias (bias_per_row), the int32 term za * colsum(w)
     * (q_comp) and the f32 multiplier sa * sw (q_scale). bias is needed. */
    float a_inv_scale;
    int32_t a_zero;
    LLVMValueRef q_comp, q_scale;
} kiln_cg_gemm;
KILN_CG_HIDDEN void kiln_cg_emit_gemm(kiln_cg *cg, const kiln_cg_gemm *p);
/* gemm_config.c: packs a K x N matrix B (element (k, n) at src[k * rs + n *
 * cs]) into panels of NR = nr * lanes columns in c's B type: dst has
 * kiln_cg_packed_b_bytes bytes. */
KILN_CG_HIDDEN size_t kiln_cg_packed_b_bytes(const kiln_cg_gemm_config *c, int64_t k, int64_t n);
KILN_CG_HIDDEN void kiln_cg_pack_b(const kiln_cg_gemm_config *c, const float *src, int64_t k, int64_t n, int64_t rs,
                                   int64_t cs, void *dst);
/* Likewise an M x K matrix A (element (m, k) at src[m * rs + k * cs]) in
 * panels of mr rows, K-block-major for K blocks of kc (the kc the GEMM
 * runs with: kiln_cg_gemm_kc of its kiln_cg_gemm.kc). */
KILN_CG_HIDDEN size_t kiln_cg_packed_a_bytes(const kiln_cg_gemm_config *c, int64_t m, int64_t k);
KILN_CG_HIDDEN void kiln_cg_pack_a(const kiln_cg_gemm_config *c, const float *src, int64_t m, int64_t k, int64_t rs,
                                   int64_t cs, int64_t kc, void *dst);
/* The K block a GEMM with kiln_cg_gemm.kc = kc runs with. */
KILN_CG_HIDDEN int64_t kiln_cg_gemm_kc(const kiln_cg_gemm_config *c, int64_t kc);
/* Task blocking for an M x N x K GEMM: rows per task (a multiple of mr) and
 * columns per task (a multiple of NR) for about `tasks` tasks (0: 16).
 * rows_grow: M is m times the batch and A is row-major with K columns (then
 * rows per task are fixed, unbounded when A's rows are copied, and the
 * columns are split); b_cost: the cost of reading one element of B relative
 * to one of A. */
KILN_CG_HIDDEN void kiln_cg_gemm_blocking(const kiln_cg *cg, const kiln_cg_gemm_config *c, int64_t m, int64_t n,
                                          int64_t k, uint32_t tasks, bool rows_grow, double b_cost, int64_t *mb,
                                          int64_t *nb);

/* The implementation node n is compiled with (cg->impl). */
static inline kiln_impl kiln_cg_impl_of(const kiln_cg *cg, const kiln_node *n) { return cg->impl[n - cg->g->nodes]; }

/* kernels/linear.c: which implementation node n gets (records it), and the
 * BLAS path's call: C[m x n] = A[m x k] op(B) (row-major, leading dims)
 * followed by bias and the epilogue over the block (rows from row0 in the
 * view, columns [c0, c0 + n) of C). */
KILN_CG_HIDDEN kiln_cg_gemm_impl kiln_cg_gemm_pick(kiln_cg *cg, const kiln_node *n);
typedef struct kiln_cg_blas_call {
    bool trans_b;
    LLVMValueRef m, n;  /* i64 */
    int64_t k;
    LLVMValueRef a, b, c; /* at the block's first element */
    int64_t lda, ldb, ldc;
    LLVMValueRef bias;  /* at the block's first row (per row) or column (per column), or NULL */
    bool bias_per_row;
    const kiln_cg_epilogue *epi;
    LLVMValueRef epi_row0, epi_col0;
} kiln_cg_blas_call;
KILN_CG_HIDDEN void kiln_cg_emit_blas(kiln_cg *cg, const kiln_cg_blas_call *c);
/* Blocks of the BLAS path: all rows, the columns in `tasks` blocks (0: 4). */
KILN_CG_HIDDEN void kiln_cg_blas_blocking(const kiln_cg *cg, int64_t n, uint32_t tasks, int64_t *mb, int64_t *nb);

/* kernels/winograd.c: F(m x m, 3 x 3) (the geometry: compiler/target/). */
KILN_CG_HIDDEN kiln_status kiln_cg_emit_conv2d_winograd(kiln_cg *cg, const kiln_node *n, int m);

/* kernels/linear.c */
KILN_CG_HIDDEN kiln_status kiln_cg_emit_dense(kiln_cg *cg, const kiln_node *n);
KILN_CG_HIDDEN kiln_status kiln_cg_emit_matmul(kiln_cg *cg, const kiln_node *n);

/* kernels/conv.c */
KILN_CG_HIDDEN kiln_status kiln_cg_emit_conv2d(kiln_cg *cg, const kiln_node *n);
#define KILN_CG_MAX_TAPS 32 /* largest kernel height / width of the GEMM path */
KILN_CG_HIDDEN kiln_status kiln_cg_emit_pool(kiln_cg *cg, const kiln_node *n);
KILN_CG_HIDDEN kiln_status kiln_cg_emit_global_avgpool(kiln_cg *cg, const kiln_node *n);

/* kernels/blocked.c: the kernels of nodes that read or write a channel-
 * blocked value (conv2d, depthwise conv2d, the pools, global_avgpool), and
 * reorder. kiln_cg_blocked_node tells which nodes go there. */
KILN_CG_HIDDEN bool kiln_cg_blocked_node(const kiln_graph *g, const kiln_node *n);
KILN_CG_HIDDEN kiln_status kiln_cg_emit_blocked(kiln_cg *cg, const kiln_node *n);
KILN_CG_HIDDEN kiln_status kiln_cg_emit_reorder(kiln_cg *cg, const kiln_node *n);

/* kernels/reduce.c: the axes of a reduction (reduce_*, mean) merged into
 * groups of neighbours that are all reduced or all kept (size-1 axes and
 * the batch left out), so the kernel loops over rows of the last group. */
typedef struct kiln_cg_axis_groups {
    int q;                                  /* groups */
    int64_t size[KILN_MAX_RANK + 1];        /* elements of each group */
    bool red[KILN_MAX_RANK + 1];            /* whether it is reduced */
    int64_t out_stride[KILN_MAX_RANK + 1];  /* its stride in the output (0: reduced) */
    int64_t in_per_item, out_per_item;      /* elements per batch item */
    int64_t last, rows;                     /* the last group's size, and the rows before it */
} kiln_cg_axis_groups;
KILN_CG_HIDDEN void kiln_cg_axis_groups_of(const kiln_shape *xs, const bool *reduce, kiln_cg_axis_groups *g);
/* The output offset of input row `row` (the rows before the last group). */
KILN_CG_HIDDEN LLVMValueRef kiln_cg_axis_groups_out_offset(kiln_cg *cg, const kiln_cg_axis_groups *g,
                                                           LLVMValueRef row);

/* Version 1.1 kernels, one file each (kernels/slice.c: slice and expand;
 * kernels/reduce.c; kernels/resize.c; kernels/deconv.c; kernels/adaptive.c;
 * kernels/groupnorm.c: group_norm and prelu). */
KILN_CG_HIDDEN kiln_status kiln_cg_emit_slice(kiln_cg *cg, const kiln_node *n);
KILN_CG_HIDDEN kiln_status kiln_cg_emit_expand(kiln_cg *cg, const kiln_node *n);
KILN_CG_HIDDEN kiln_status kiln_cg_emit_reduce(kiln_cg *cg, const kiln_node *n);
KILN_CG_HIDDEN kiln_status kiln_cg_emit_resize(kiln_cg *cg, const kiln_node *n);
KILN_CG_HIDDEN kiln_status kiln_cg_emit_conv_transpose2d(kiln_cg *cg, const kiln_node *n);
KILN_CG_HIDDEN kiln_status kiln_cg_emit_adaptive_avgpool2d(kiln_cg *cg, const kiln_node *n);
KILN_CG_HIDDEN kiln_status kiln_cg_emit_group_norm(kiln_cg *cg, const kiln_node *n);
KILN_CG_HIDDEN kiln_status kiln_cg_emit_prelu(kiln_cg *cg, const kiln_node *n);
/* kernels/convert.c: convert, quantize and dequantize (one emitter). */
KILN_CG_HIDDEN kiln_status kiln_cg_emit_convert(kiln_cg *cg, const kiln_node *n);

/* kernels/norm.c */
KILN_CG_HIDDEN kiln_status kiln_cg_emit_batchnorm(kiln_cg *cg, const kiln_node *n);
KILN_CG_HIDDEN kiln_status kiln_cg_emit_layernorm(kiln_cg *cg, const kiln_node *n);
KILN_CG_HIDDEN kiln_status kiln_cg_emit_softmax(kiln_cg *cg, const kiln_node *n);

/* kernels/shape.c */
KILN_CG_HIDDEN kiln_status kiln_cg_emit_alias(kiln_cg *cg, const kiln_node *n); /* copy unless aliased */
KILN_CG_HIDDEN kiln_status kiln_cg_emit_concat(kiln_cg *cg, const kiln_node *n);
KILN_CG_HIDDEN kiln_status kiln_cg_emit_transpose(kiln_cg *cg, const kiln_node *n);
KILN_CG_HIDDEN kiln_status kiln_cg_emit_mean(kiln_cg *cg, const kiln_node *n);
KILN_CG_HIDDEN kiln_status kiln_cg_emit_pad(kiln_cg *cg, const kiln_node *n);
/* Copies value `src` to model output `k` (the output's own buffer). */
KILN_CG_HIDDEN kiln_status kiln_cg_emit_output_copy(kiln_cg *cg, kiln_id src, uint32_t k);

/* ---- entry.c: the exported functions -------------------------------------- */
KILN_CG_HIDDEN kiln_status kiln_cg_emit_entry(kiln_cg *cg, LLVMValueRef weights_global, uint64_t checksum);

/* ---- the module handed to the driver -------------------------------------- */

struct kiln_cg_module {
    const kiln_graph *g;
    kiln_cg_options opt;           /* strings copied below */
    char *weights_path, *cc, *rt_libdir;
    kiln_cg_machine machine;
    LLVMOrcThreadSafeContextRef tsctx; /* jit: owns ctx */
    LLVMContextRef ctx;            /* owned unless tsctx */
    LLVMModuleRef mod;             /* owned; NULL once given to the JIT */
    kiln_cg_placement layout;
    kiln_cg_blob blob;
    uint64_t checksum;
    bool code_emitted;
    bool *fused;                   /* the fusion plan, per node */
    kiln_impl *impl;               /* per node: the implementation each node is compiled with */
    uint64_t code_bytes, data_bytes; /* the emitted object's sections (0 before emitting one) */
    kiln_cg_step_info *steps;      /* what each step of the run function computes */
    size_t n_steps;
    /* units 1.. (unit 0 is ctx, mod and machine.tm above): owned */
    int n_units_wanted;            /* the units the module is emitted into (1 for the JIT; contexts 1.. below) */
    int n_units;
    LLVMContextRef unit_ctx[KILN_CG_MAX_UNITS];
    LLVMModuleRef unit_mod[KILN_CG_MAX_UNITS];
    LLVMTargetMachineRef unit_tm[KILN_CG_MAX_UNITS];
    int n_units_built;             /* n_units before any join (the report) */
    double t_ir, t_optimize, t_machine; /* seconds: the report's phases */
};

/* compile.c: a monotonic clock (seconds). */
KILN_CG_HIDDEN double kiln_cg_now(void);
/* compile.c: verifies the module (every unit) and runs LLVM's default<On>
 * pipeline, the units in parallel. */
KILN_CG_HIDDEN kiln_status kiln_cg_optimize(kiln_cg_module *m, kiln_diag *d);
/* Unit u's module and target machine (u = 0: m->mod, m->machine.tm). */
KILN_CG_HIDDEN LLVMModuleRef kiln_cg_unit_module(const kiln_cg_module *m, int u);
KILN_CG_HIDDEN LLVMTargetMachineRef kiln_cg_unit_tm(const kiln_cg_module *m, int u);
/* Runs job(arg, u) for u in [0, n) on n threads (the caller's among them)
 * and returns the first failure. */
KILN_CG_HIDDEN kiln_status kiln_cg_parallel(int n, kiln_status (*job)(void *arg, int u), void *arg);
/* Links units 1.. into unit 0 (through bitcode: they live in other
 * contexts), makes the shared functions private again and defines the
 * embedded weights: one module, as a single-unit compile gives. */
KILN_CG_HIDDEN kiln_status kiln_cg_join_units(kiln_cg_module *m, kiln_diag *d);

/* ---- elf.c: one relocatable object from several ----------------------------- */

typedef struct kiln_cg_elf_part {
    const void *data;
    size_t size;
} kiln_cg_elf_part;

/* Raw bytes as a read-only section defining a local symbol. */
typedef struct kiln_cg_elf_blob {
    const char *section, *symbol;
    const void *data;
    uint64_t size, align;
} kiln_cg_elf_blob;

/* Merges the parts (ELF64 little-endian relocatable objects, RELA) and the
 * blob (may be NULL) into one object (*out: malloc'd). Hidden global
 * definitions become locals, references to them resolve. Anything it does
 * not handle: KILN_ERR_UNSUPPORTED with the reason in why. */
KILN_CG_HIDDEN kiln_status kiln_cg_elf_merge(const kiln_cg_elf_part *parts, size_t n_parts,
                                             const kiln_cg_elf_blob *blob, unsigned char **out, size_t *out_size,
                                             char *why, size_t why_size);

/* emit.c: writes the object to memory (machine code). */
KILN_CG_HIDDEN kiln_status kiln_cg_emit_memory(kiln_cg_module *m, bool assembly, LLVMMemoryBufferRef *out,
                                               kiln_diag *d);

#endif
