/* compiler/codegen/codegen.h: the code generator, as the driver and the tests
 * see it. No LLVM type appears here: only compiler/codegen/ knows LLVM.
 *
 *   kiln_cg_options o = KILN_CG_OPTIONS_INIT;
 *   kiln_cg_module *m;
 *   kiln_cg_compile(g, &o, &m, &diag);              IR graph -> LLVM module
 *   kiln_cg_emit(m, KILN_CG_EMIT_OBJ, "lenet.o", &diag);
 *   kiln_cg_write_header(m, "lenet.h", &diag);
 *   kiln_cg_module_destroy(m);
 *
 * or, to run the compiled code in this process (kiln run / check / bench):
 *
 *   o.jit = true;  kiln_cg_compile(g, &o, &m, &diag);
 *   kiln_cg_jit *j;  kiln_cg_jit_create(m, &j, &diag);
 *   kiln_cg_entry e; kiln_cg_jit_entry(j, &e);      e.create(), e.run(), ...
 *   kiln_cg_jit_destroy(j); kiln_cg_module_destroy(m);
 *
 * Ownership: a module borrows the graph it was compiled from (the graph must
 * outlive it and stay unchanged). Threads: one thread per module / JIT at a
 * time; the JIT'd model functions follow the generated API's rules
 * (docs/generated-api.md). */
#ifndef KILN_CODEGEN_H
#define KILN_CODEGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compiler/target/target.h"
#include "ir/diag.h"
#include "ir/graph.h"
#include "kiln/runtime.h"
#include "kiln/status.h"

typedef enum kiln_cg_emit_kind {
    KILN_CG_EMIT_OBJ,  /* a relocatable object file */
    KILN_CG_EMIT_ASM,  /* target assembly */
    KILN_CG_EMIT_LLVM, /* LLVM IR text (.ll) */
    KILN_CG_EMIT_BC,   /* LLVM bitcode */
    KILN_CG_EMIT_LIB,  /* a static archive (ar) holding the object */
    KILN_CG_EMIT_SO,   /* a shared library: the object linked by `cc -shared` with -lkiln_rt */
} kiln_cg_emit_kind;

typedef enum kiln_cg_weights_mode {
    KILN_CG_WEIGHTS_EMBED,    /* in the object's read-only data */
    KILN_CG_WEIGHTS_EXTERNAL, /* in a separate file (kiln_cg_write_weights), mapped by NAME_create */
} kiln_cg_weights_mode;

/* How a GEMM-shaped layer (dense, 1x1 convolution) is computed. */
typedef enum kiln_cg_gemm_impl {
    KILN_CG_GEMM_AUTO,      /* the documented heuristic (docs/codegen.md, "Performance") */
    KILN_CG_GEMM_GENERATED, /* the generated packed GEMM */
    KILN_CG_GEMM_BLAS,      /* OpenBLAS sgemm (kiln_rt_sgemm) per task block, then the epilogue */
} kiln_cg_gemm_impl;


typedef struct kiln_cg_options {
    const char *triple;       /* target triple; NULL = the host's */
    const char *cpu;          /* NULL = the host CPU for the host triple, "generic" otherwise */
    const char *features;     /* NULL = the host's features when cpu and triple are the host's, else "" */
    int opt_level;            /* 0..3 (LLVM's default<On> pipeline and codegen level) */
    kiln_cg_weights_mode weights;
    const char *weights_path; /* EXTERNAL: the path NAME_create maps by default */
    bool expose_values;       /* every node output gets its own workspace region (kiln check) */
    bool jit;                 /* build for kiln_cg_jit_create (host only; exports NAME_run_array) */
    const char *cc;           /* EMIT_SO: the C compiler driver; NULL = $CC or "cc" */
    const char *rt_libdir;    /* EMIT_SO: directory of libkiln_rt.so (and libkiln_rt_blas.so); NULL = the
                                 linker's search path */
    const kiln_cg_gemm_impl *gemm_impl; /* per node (g->n_nodes entries; borrowed), or NULL: all AUTO */
    kiln_winograd_mode winograd;
    int jobs;                 /* not jit: LLVM modules (1..4; 0: 2) optimized and compiled on as many
                                 threads, then one object (docs/codegen.md "Compile time") */
    const char *rpath;        /* EMIT_SO: a run path to record in the library; NULL = none */
} kiln_cg_options;

#define KILN_CG_OPTIONS_INIT                                                                                      \
    {NULL, NULL, NULL, 2, KILN_CG_WEIGHTS_EMBED, NULL, false, false, NULL, NULL, NULL, KILN_WINOGRAD_AUTO, 0, NULL}

typedef struct kiln_cg_module kiln_cg_module;

/* The target (compiler/target/) that opt's triple, CPU and features name
 * (NULL: the host), resolved as kiln_cg_compile resolves them: the passes
 * plan for it (layout, select, scratch). An unknown triple, CPU or feature
 * is reported to d as kiln_cg_compile reports it (KILN_ERR_INVALID_ARGUMENT
 * or KILN_ERR_UNSUPPORTED). */
kiln_status kiln_cg_target_for_options(const kiln_cg_options *opt, kiln_target *out, kiln_diag *d);
/* The channel block of the blocked layout on opt's target: its f32 lanes
 * (16 AVX-512, 8 AVX2, 4 SSE, NEON and generic); 0 when unresolved. */
int kiln_cg_layout_block(const kiln_cg_options *opt);

/* Compiles graph g to an optimized, verified LLVM module. Every problem is
 * reported to d (which must not be NULL) and returned as a status:
 * KILN_ERR_UNSUPPORTED (a dtype, layout or target this code generator does
 * not handle), KILN_ERR_INTERNAL (an IR that fails verification, an LLVM
 * failure), KILN_ERR_WEIGHTS (parameters without data), KILN_ERR_OUT_OF_MEMORY.
 * *out is NULL on failure. */
kiln_status kiln_cg_compile(const kiln_graph *g, const kiln_cg_options *opt, kiln_cg_module **out,
                            kiln_diag *d);
void kiln_cg_module_destroy(kiln_cg_module *m);

/* Writes the module as `kind` to path. Machine code (OBJ, ASM, LIB, SO) can
 * be emitted once per module (LLVM's code generator changes the module).
 * SO runs `cc -shared` (see opt->cc, rt_libdir, rpath) and needs the host
 * target (or opt->cc): SONAME the file name of path, linked against the
 * shared libkiln_rt (never the static one), and libkiln_rt_blas when the
 * code calls sgemm. */
kiln_status kiln_cg_emit(kiln_cg_module *m, kiln_cg_emit_kind kind, const char *path, kiln_diag *d);
/* The generated C header (docs/generated-api.md). */
kiln_status kiln_cg_write_header(const kiln_cg_module *m, const char *path, kiln_diag *d);
/* The external weights file (KILN_CG_WEIGHTS_EXTERNAL): exactly the bytes
 * whose size and checksum the module records. */
kiln_status kiln_cg_write_weights(const kiln_cg_module *m, const char *path, kiln_diag *d);
/* The three writers above never remove a file, also when they fail (a
 * partial file may stay where the write failed). Their _to forms write to
 * `write_path` while messages, and a shared library's SONAME, name `path`:
 * kiln compile writes each output to a temporary file beside it and renames
 * it over `path` once every output is written. A write error names `path`
 * and the system's reason. */
kiln_status kiln_cg_emit_to(kiln_cg_module *m, kiln_cg_emit_kind kind, const char *path, const char *write_path,
                            kiln_diag *d);
kiln_status kiln_cg_write_header_to(const kiln_cg_module *m, const char *path, const char *write_path,
                                    kiln_diag *d);
kiln_status kiln_cg_write_weights_to(const kiln_cg_module *m, const char *path, const char *write_path,
                                     kiln_diag *d);

/* Where a value lives while the compiled model runs. */
typedef enum kiln_cg_buffer_kind {
    KILN_CG_BUF_NONE,      /* not materialized (an unused parameter) */
    KILN_CG_BUF_INPUT,     /* the caller's input `index` */
    KILN_CG_BUF_OUTPUT,    /* the caller's output `index` */
    KILN_CG_BUF_WORKSPACE, /* workspace + offset + batch * per_batch */
    KILN_CG_BUF_PARAM,     /* the weights of parameter value `index` */
} kiln_cg_buffer_kind;

typedef struct kiln_cg_buffer {
    kiln_cg_buffer_kind kind;
    uint32_t index;
    uint64_t offset;    /* bytes */
    uint64_t per_batch; /* bytes per batch item added to offset */
} kiln_cg_buffer;

/* The buffer of value v (an alias shares its operand's buffer unless the
 * module was compiled with expose_values). */
kiln_status kiln_cg_value_buffer(const kiln_cg_module *m, kiln_id v, kiln_cg_buffer *out);
/* The steps of the run function, in order: each is one kernel (one
 * parallel_for), computing nodes [first_node, last_node] of the graph (a
 * fusion group; UINT32_MAX: the copy of a model output). kernel is the task
 * function's name ("kiln.f32_conv2d_bias_relu_gemm_avx2_6x16.conv1"). */
typedef struct kiln_cg_step_info {
    uint32_t first_node, last_node;
    char *kernel;
} kiln_cg_step_info;
size_t kiln_cg_step_count(const kiln_cg_module *m);
const kiln_cg_step_info *kiln_cg_step_at(const kiln_cg_module *m, size_t k);

/* The implementation node `node` got: GENERATED or BLAS for the layers that
 * have both (dense, 1x1 convolutions), AUTO for every other node. */
kiln_cg_gemm_impl kiln_cg_gemm_used(const kiln_cg_module *m, kiln_id node);
/* The Winograd tile (4 or 2) node `node` is computed with, or 0 (not a
 * Winograd convolution). */
int kiln_cg_winograd_used(const kiln_cg_module *m, kiln_id node);
/* The implementation node `node` was compiled with (KILN_IMPL_NONE for ops
 * with one). */
kiln_impl kiln_cg_impl_used(const kiln_cg_module *m, kiln_id node);
/* Whether node n of g can take either implementation. */
bool kiln_cg_gemm_candidate(const kiln_graph *g, const kiln_node *n);

/* kiln compile --tune: for every candidate node of g, JIT-compiles the node
 * alone (its data inputs as model inputs, its parameters) with each
 * implementation, times `iterations` runs at `batch` on `threads` threads
 * (median), and stores the faster in choice[node] (g->n_nodes entries;
 * AUTO for other nodes) and the medians in t_generated / t_blas (seconds; 0
 * for other nodes; either may be NULL). Host only. */
kiln_status kiln_cg_tune(const kiln_graph *g, const kiln_cg_options *opt, int64_t batch, int threads, int iterations,
                         kiln_cg_gemm_impl *choice, double *t_generated, double *t_blas, kiln_diag *d);

/* The footprint the module records (bytes). */
void kiln_cg_footprint(const kiln_cg_module *m, size_t *workspace_fixed, size_t *workspace_per_batch,
                       size_t *weights);
/* The weights' bytes by the precision of the layer that stores them
 * (out[KILN_PREC_F32] also holds what no layer owns); they sum to the
 * footprint's weights. */
void kiln_cg_weight_bytes_by_precision(const kiln_cg_module *m, size_t out[KILN_PREC_COUNT]);
/* What `kiln compile` reports. code_bytes / data_bytes: the object's
 * executable and read-only/data sections (embedded weights are data), known
 * once an object, archive or shared library was emitted (else 0).
 * planned: the workspace offsets came from the memory plan; then
 * lower_bound_bytes is the plan's lower bound (the most bytes live at once,
 * batch 1) to compare with the workspace at batch 1. */
typedef struct kiln_cg_report {
    size_t code_bytes, data_bytes, weight_bytes;
    size_t workspace_fixed, workspace_per_batch;
    bool planned;
    size_t lower_bound_bytes;
    /* kernels' scratch (Winograd transforms): the most one kernel needs, and
     * the part of the workspace outside the memory plan that kernels share
     * (0 when the plan placed every kernel's scratch) */
    size_t scratch_largest, scratch_shared;
    size_t steps, fused_nodes; /* kernels in the run function; nodes run inside another's kernel */
    /* where the code generator's time went (seconds): building the LLVM IR
     * (and packing the weights), LLVM's optimization pipeline, machine code
     * (0 before an object, archive, library or assembly was emitted), with
     * `units` modules on as many threads */
    double time_ir, time_optimize, time_machine_code;
    int units;
} kiln_cg_report;
void kiln_cg_get_report(const kiln_cg_module *m, kiln_cg_report *out);

/* Whether the module's code calls the BLAS glue (kiln_rt_sgemm): then the
 * object needs libkiln_rt_blas (and OpenBLAS) besides libkiln_rt. */
bool kiln_cg_uses_blas(const kiln_cg_module *m);

/* "x86_64-pc-linux-gnu, cpu znver4, avx512 (16 x f32), caches ..." (for reports). */
const char *kiln_cg_target_description(const kiln_cg_module *m);
/* The instruction-set extensions the code may use, comma-separated (LLVM's
 * names; "" for none): NAME_create returns KILN_ERR_UNSUPPORTED on a CPU
 * without one of them. */
const char *kiln_cg_required_features(const kiln_cg_module *m);

/* ---- running compiled code in this process (ORC LLJIT) ------------------- */

/* The model's functions, typed generically: `m` is a NAME*. run_array takes
 * the inputs and outputs as arrays in model order (what NAME_run takes as
 * separate arguments). */
/* Called by run_profiled after each step k (kiln_cg_step) has finished. */
typedef void (*kiln_cg_profile_fn)(void *arg, int64_t step);

typedef struct kiln_cg_entry {
    kiln_status (*create)(void **out, const kiln_options *opt);
    kiln_status (*run_array)(void *m, int64_t batch, const float *const *inputs, float *const *outputs);
    /* run_array, calling hook(arg, k) after each step k (kiln bench --per-layer). */
    kiln_status (*run_profiled)(void *m, int64_t batch, const float *const *inputs, float *const *outputs,
                                kiln_cg_profile_fn hook, void *arg);
    size_t (*workspace_size)(int64_t batch);
    const kiln_model_info *(*info)(void);
    void (*destroy)(void *m);
    /* NAME_last_error, and NAME_run_checked with the buffers and their sizes
     * (bytes) in arrays. */
    const char *(*last_error)(const void *m);
    kiln_status (*run_checked_array)(void *m, int64_t batch, const float *const *inputs, const size_t *input_bytes,
                                     float *const *outputs, const size_t *output_bytes);
} kiln_cg_entry;

typedef struct kiln_cg_jit kiln_cg_jit;

/* Compiles module m (built with opt.jit) to machine code in this process.
 * Takes the LLVM module out of m: m can no longer be emitted, but its layout
 * queries keep working. Runtime symbols (kiln_rt_*) resolve to this
 * process's libkiln_rt, libc symbols through the process's symbol table. */
kiln_status kiln_cg_jit_create(kiln_cg_module *m, kiln_cg_jit **out, kiln_diag *d);
kiln_status kiln_cg_jit_entry(kiln_cg_jit *j, kiln_cg_entry *out, kiln_diag *d);
void kiln_cg_jit_destroy(kiln_cg_jit *j);

/* ---- the vectorized math functions, for their accuracy tests ------------- */

typedef enum kiln_cg_math_fn {
    KILN_CG_MATH_EXP,
    KILN_CG_MATH_EXPM1,
    KILN_CG_MATH_LOG,
    KILN_CG_MATH_TANH,
    KILN_CG_MATH_SIGMOID,
    KILN_CG_MATH_ERF,
    KILN_CG_MATH_GELU,      /* x/2 (1 + erf(x/sqrt 2)) */
    KILN_CG_MATH_GELU_TANH, /* the tanh approximation of GELU */
    KILN_CG_MATH_SILU,
    KILN_CG_MATH_SOFTPLUS,  /* torch.nn.Softplus (beta 1, threshold 20) */
    KILN_CG_MATH_COUNT
} kiln_cg_math_fn;

/* y[i] = fn(x[i]) for i < n, through exactly the code the kernels use. */
typedef void (*kiln_cg_math_kernel)(const float *x, float *y, int64_t n);

/* JIT-compiles every math function for the host (opt_level as the options;
 * NULL = defaults) and returns them by kiln_cg_math_fn. */
kiln_status kiln_cg_math_jit(const kiln_cg_options *opt, kiln_cg_jit **out,
                             kiln_cg_math_kernel fns[KILN_CG_MATH_COUNT], kiln_diag *d);

/* Whether the code generator has a kernel emitter for op (every op of
 * ir/ops.def should: tests/codegen/test_codegen_ops.c checks it). */
bool kiln_cg_supports(kiln_op op);

/* The C spelling of a value name (FORMAT.md "Generated names"), into buf
 * (always NUL-terminated). */
void kiln_cg_c_name(const char *name, char *buf, size_t size);

#endif
