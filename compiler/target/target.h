/* compiler/target/target.h: what kiln knows about processors without LLVM:
 * the instruction-set extensions a CPU name implies, the extensions a
 * compiled model requires of the CPU it runs on, and cache sizes (of a named
 * CPU, or read from the host). The passes and the code generator read this;
 * only compiler/codegen/ turns it into an LLVM target machine.
 *
 * Feature names are LLVM's ("avx2", "avx512f", "amx-tile"); lists are
 * comma-separated without signs ("avx,avx2,fma"); a feature *string* is
 * LLVM's "+a,-b" form. */
#ifndef KILN_TARGET_H
#define KILN_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir/graph.h"

/* Cache sizes in bytes: per core for L1 data and L2, the whole L3. */
typedef struct kiln_caches {
    uint32_t l1d, l2;
    uint64_t l3;
    const char *source; /* where they come from: "host", "cpu table", "default" (static text) */
} kiln_caches;

/* What the kernels may depend on about a target, as values (rows.c):
 * kernels read a kiln_target; nothing else in the code generator tests for
 * an instruction set. */
typedef struct kiln_target {
    const char *name;       /* the row: "avx512", "avx2", "sse", "neon", "generic" */
    int vector_bits;        /* width of the f32 vectors the kernels use */
    int gemm_mr;            /* GEMM micro-kernel: rows ... */
    int gemm_nr;            /* ... times vectors; one packed B panel is gemm_nr vectors wide */
    int gemm_kc;            /* K block: a kc x panel slice of B fills half of L1 (from the caches) */
    int gemv_panels;        /* panels the one-row (batch 1) kernel streams at once */
    bool native_masks;      /* masked loads/stores are single instructions */
    double winograd_margin; /* AUTO picks Winograd under this fraction of the implicit GEMM's estimate */
    kiln_caches caches;     /* of the CPU compiled for (the host's, the table's, or defaults) */
    char features[512];     /* the extensions the code may use (NAME_create checks them) */
} kiln_target;

/* f32 lanes of the target's vectors: the channel block of the blocked layout. */
static inline int kiln_target_lanes(const kiln_target *t) { return t->vector_bits / 32; }

/* The target for a triple (its architecture) whose code may use the
 * extensions in `features` (a list), with its blocking sized for `caches`
 * (NULL: conservative defaults for its vector width). */
void kiln_target_describe(const char *triple, const char *features, const kiln_caches *caches, kiln_target *out);

/* The extensions an x86-64 CPU name implies (as LLVM sees them), or NULL
 * for a name this table does not hold ("generic", another architecture). */
const char *kiln_target_cpu_features(const char *cpu);

/* The extensions code for (implied list, feature string) may use: the
 * implied list with the string's +name / -name applied in order, filtered to
 * the extensions a kernel can contain. Written to out (always terminated;
 * false if it did not fit). */
bool kiln_target_effective_features(const char *implied, const char *feature_string, char *out, size_t size);

/* Whether a list holds `name`. */
bool kiln_target_list_has(const char *list, const char *name);

/* The extensions kiln checks at run time (NULL-terminated): every name
 * kiln_target_effective_features can return. */
const char *const *kiln_target_checkable_features(void);

/* Cache sizes of a named CPU from kiln's table; false when the table does
 * not know it. */
bool kiln_target_cpu_caches(const char *cpu, kiln_caches *out);
/* Cache sizes of the machine this runs on (Linux sysfs); false when they
 * cannot be read. */
bool kiln_target_host_caches(kiln_caches *out);
/* Conservative sizes for a target whose CPU is not known, by the width of
 * its vectors. */
void kiln_target_default_caches(int vector_bits, kiln_caches *out);

/* ---- Winograd (winograd.c) ----------------------------------------------- */

/* Which 3x3 stride-1 convolutions use Winograd's F(m x m, 3 x 3). */
typedef enum kiln_winograd_mode {
    KILN_WINOGRAD_AUTO, /* the documented heuristic (docs/codegen.md): F(4x4) on wide layers */
    KILN_WINOGRAD_OFF,  /* none: implicit GEMM (the direct sum's rounding) */
    KILN_WINOGRAD_F2,   /* every eligible layer, F(2x2, 3x3) */
    KILN_WINOGRAD_F4,   /* every eligible layer, F(4x4, 3x3) */
} kiln_winograd_mode;

/* The geometry of a Winograd convolution's blocks on a target. */
typedef struct kiln_winograd_plan {
    int m, a;
    int64_t C, H, W, F, OH, OW, pt, pl;
    int64_t TH, TW, TWp;  /* tile rows, tiles per row, padded to whole vectors */
    int64_t TWc;          /* GEMM columns per tile row: TWp, or TW when a row is under one vector */
    int64_t rows;         /* tile rows per block */
    int64_t blocks;       /* blocks per item */
    int64_t cols;         /* GEMM columns of a block: rows * TWc */
    int64_t panels;       /* packed-B panels of a block */
    int64_t v_floats;     /* V of one position: panels * NR * C, + 16 */
    int64_t m_floats;     /* M of one position: F * cols, + 16 */
    int64_t slot_floats;  /* one task's scratch: a^2 (V + M), rounded to 16 */
    int64_t h_floats;     /* the input rows of a block transformed along x (stack) */
} kiln_winograd_plan;

/* Whether Winograd can compute conv2d n: one group, 3x3, stride 1, no
 * dilation, plain f32 with known sizes. */
bool kiln_target_winograd_eligible(const kiln_graph *g, const kiln_node *n);
/* The plan of F(m x m) for n on t; false when its scratch would be too large. */
bool kiln_target_winograd_plan(const kiln_target *t, const kiln_graph *g, const kiln_node *n, int m,
                               kiln_winograd_plan *p);
/* The tile m (4 or 2) Winograd computes n with under `mode`, 0: not Winograd. */
int kiln_target_winograd_choice(const kiln_target *t, const kiln_graph *g, const kiln_node *n,
                                kiln_winograd_mode mode);
/* The step's tasks, each with its scratch slot (from the schedule's count). */
int64_t kiln_target_winograd_slots(const kiln_node *n);
/* Scratch bytes of F(m x m) on n (0 when m is 0 or has no plan). */
uint64_t kiln_target_winograd_scratch(const kiln_target *t, const kiln_graph *g, const kiln_node *n, int m);

/* ---- conv_transpose2d (deconv.c) ------------------------------------------ */

/* The tasks of a strided conv_transpose2d step, each with a scratch slot. */
int64_t kiln_target_deconv_slots(const kiln_node *n);
/* The block of output channels x columns one task computes. */
void kiln_target_deconv_block(const kiln_target *t, int64_t filters_per_group, int64_t *rows, int64_t *cols);
/* Scratch bytes of conv_transpose2d n (0 at stride 1 and for other ops). */
uint64_t kiln_target_deconv_scratch(const kiln_target *t, const kiln_graph *g, const kiln_node *n);

/* ---- fusion (fusion.c): what the code generator applies in registers ------ */

#define KILN_TARGET_MAX_EPI 16 /* members after a group's anchor, at most */

/* A fused member as the anchor's kernel applies it. */
typedef struct kiln_epi_member {
    bool binary;         /* else a one-input op */
    bool scalar;         /* binary with the node's `scalar` as the other operand */
    bool chained_second; /* the running value is the op's second operand */
    kiln_id other;       /* binary, not scalar: the other operand */
    /* The other operand in the anchor output's 2-D view [rows, cols]: element
     * (row, col) is at row_offset(row) + col * col_stride, where row_offset
     * decomposes row over row_dims (outermost first; the outermost may be the
     * batch, -1) with row_strides. An elementwise anchor reads it at the
     * element's own index (n_row_dims 0). */
    int n_row_dims;
    int64_t row_dims[KILN_MAX_RANK], row_strides[KILN_MAX_RANK];
    int64_t col_stride; /* 1 or 0 (broadcast along the columns) */
} kiln_epi_member;

/* The 2-D view of an anchor's output that its epilogue uses: rows are the
 * axes before the returned split; -1 when the op takes no epilogue in a view
 * (an elementwise anchor takes any member). */
int kiln_target_epi_view_split(const kiln_graph *g, const kiln_node *anchor);
/* Whether member (reading prev, the previous member's output) can follow
 * the group anchored at anchor, and how (out). */
bool kiln_target_epi_member(const kiln_graph *g, const kiln_node *anchor, const kiln_node *member, kiln_id prev,
                            kiln_epi_member *out);
/* Strides (elements) of shape s's axes aligned to out's rank; 0 along
 * broadcast axes; the batch axis of a batched s has the stride of one item. */
void kiln_target_bcast_strides(const kiln_shape *s, const kiln_shape *out, int64_t *st);

/* ---- implementations (select.c) --------------------------------------------- */

typedef struct kiln_select_options {
    kiln_winograd_mode winograd;
    /* Per node (g->n_nodes entries; borrowed), or NULL: KILN_IMPL_BLAS or
     * KILN_IMPL_GEMM where a layer has both (kiln compile --tune measured
     * them), KILN_IMPL_NONE: the heuristic. */
    const kiln_impl *prefer;
} kiln_select_options;

/* The implementation of node n of g on t (KILN_IMPL_NONE for ops with only
 * one). The select pass writes it into the IR; the code generator computes
 * the same for a node without one. o may be NULL (AUTO, no preferences). */
kiln_impl kiln_target_select(const kiln_target *t, const kiln_graph *g, const kiln_node *n,
                             const kiln_select_options *o);
/* Whether n has both the generated GEMM and OpenBLAS (dense with a weight,
 * a 1x1 stride-1 unpadded conv2d of one group). */
bool kiln_target_gemm_candidate(const kiln_graph *g, const kiln_node *n);
/* Whether the blocked layout may hold conv2d n's output (its kernels pay
 * there): depthwise, 1x1 and few-channel convolutions that Winograd does
 * not take; dilation 1. The layout pass asks this. */
bool kiln_target_conv_blocks(const kiln_target *t, const kiln_graph *g, const kiln_node *n, kiln_winograd_mode mode);
/* Whether implementation impl can compute n on t; else why (a message). */
bool kiln_target_impl_applies(const kiln_target *t, const kiln_graph *g, const kiln_node *n, kiln_impl impl,
                              char *why, size_t size);
/* The scratch bytes node n's kernel needs with implementation impl (fixed:
 * it does not grow with the batch). */
uint64_t kiln_target_scratch(const kiln_target *t, const kiln_graph *g, const kiln_node *n, kiln_impl impl);

#endif
