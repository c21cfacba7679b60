/* compiler/codegen/weights.c: the weights blob. Kernels pack the parameters
 * they read into it, at compile time, in exactly the layout their code
 * reads (a dense weight transposed to [in, units], batch norm folded into a
 * scale and a shift, ...); plain parameters are copied once. Every piece is
 * 64-byte aligned, in the element type its kernel reads (f32, or the f16 /
 * bf16 panels a GEMM configuration packs, kiln_cg_gemm_config). The blob is embedded (in an object of several
 * units, elf.c writes it as a section of its own; otherwise one private
 * constant, 64-byte aligned) or written to a file that NAME_create maps and
 * checks (size and FNV-1a checksum). */
#include "cg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOB_ALIGN 64u

void *kiln_cg_blob_alloc_bytes(kiln_cg *cg, size_t bytes, uint64_t *offset)
{
    kiln_cg_blob *b = cg->blob;
    size_t start = (b->size + BLOB_ALIGN - 1) / BLOB_ALIGN * BLOB_ALIGN;
    if (bytes > SIZE_MAX - start) {
        kiln_cg_fail(cg, KILN_ERR_OUT_OF_MEMORY, "the weights are too large");
        return NULL;
    }
    size_t end = start + bytes;
    if (end > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < end)
            cap = cap > SIZE_MAX / 2 ? end : cap * 2;
        unsigned char *p = realloc(b->data, cap);
        if (!p) {
            kiln_cg_fail(cg, KILN_ERR_OUT_OF_MEMORY, "out of memory for %zu bytes of weights", end);
            return NULL;
        }
        b->data = p;
        b->cap = cap;
    }
    memset(b->data + b->size, 0, end - b->size);
    b->precision_bytes[cg->f.node ? kiln_node_precision(cg->g, cg->f.node) : KILN_PREC_F32] += end - b->size;
    b->size = end;
    *offset = start;
    return b->data + start;
}

float *kiln_cg_blob_alloc(kiln_cg *cg, size_t count, uint64_t *offset)
{
    if (count > SIZE_MAX / sizeof(float)) {
        kiln_cg_fail(cg, KILN_ERR_OUT_OF_MEMORY, "the weights are too large");
        return NULL;
    }
    return kiln_cg_blob_alloc_bytes(cg, count * sizeof(float), offset);
}

float *kiln_cg_param_f32(kiln_cg *cg, kiln_id v, size_t *count)
{
    const kiln_value *val = kiln_graph_value(cg->g, v);
    int64_t n = kiln_shape_elements(&val->type.shape, 1);
    if (val->kind != KILN_VALUE_PARAM || n < 0) {
        kiln_cg_fail(cg, KILN_ERR_INTERNAL, "'%s' is not a parameter", val->name);
        return NULL;
    }
    float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
    if (!f) {
        kiln_cg_fail(cg, KILN_ERR_OUT_OF_MEMORY, "out of memory reading parameter '%s'", val->name);
        return NULL;
    }
    kiln_status st = kiln_param_read_f32(cg->g, v, f);
    if (st != KILN_OK) {
        free(f);
        kiln_cg_fail(cg, st == KILN_ERR_WEIGHTS ? KILN_ERR_WEIGHTS : st, "parameter '%s'%s%s%s has no data",
                     val->name, val->param.key ? " (key '" : "", val->param.key ? val->param.key : "",
                     val->param.key ? "')" : "");
        return NULL;
    }
    *count = (size_t)n;
    return f;
}

kiln_status kiln_cg_blob_param(kiln_cg *cg, kiln_id v, uint64_t *offset)
{
    kiln_cg_blob *b = cg->blob;
    if (!b->param_offset) {
        b->n_values = cg->g->n_values;
        b->param_offset = malloc((b->n_values ? b->n_values : 1) * sizeof *b->param_offset);
        if (!b->param_offset)
            return kiln_cg_fail(cg, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        for (size_t i = 0; i < b->n_values; i++)
            b->param_offset[i] = UINT64_MAX;
    }
    if (v >= b->n_values)
        return kiln_cg_fail(cg, KILN_ERR_INTERNAL, "parameter id %u out of range", v);
    if (b->param_offset[v] != UINT64_MAX) {
        *offset = b->param_offset[v];
        return KILN_OK;
    }
    size_t n;
    float *f = kiln_cg_param_f32(cg, v, &n);
    if (!f)
        return cg->status;
    float *dst = kiln_cg_blob_alloc(cg, n, offset);
    if (dst)
        memcpy(dst, f, n * sizeof *f);
    free(f);
    if (!dst)
        return cg->status;
    b->param_offset[v] = *offset;
    return KILN_OK;
}

void kiln_cg_blob_release(kiln_cg_blob *b)
{
    if (!b)
        return;
    free(b->data);
    free(b->param_offset);
    memset(b, 0, sizeof *b);
}

uint64_t kiln_cg_blob_checksum(const kiln_cg_blob *b)
{
    /* FNV-1a 64, as kiln_rt_checksum computes it. */
    uint64_t h = UINT64_C(14695981039346656037);
    for (size_t i = 0; i < b->size; i++) {
        h ^= b->data[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

void kiln_cg_blob_name(const char *model, char *buf, size_t size) { snprintf(buf, size, "%s.weights", model); }

void kiln_cg_blob_define(LLVMContextRef ctx, LLVMValueRef gv, const kiln_cg_blob *b)
{
    /* The bytes are copied into LLVM's constant (a ConstantDataArray). */
    LLVMSetInitializer(gv, LLVMConstStringInContext2(ctx, (const char *)b->data, b->size, 1));
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    LLVMSetVisibility(gv, LLVMDefaultVisibility);
    LLVMSetUnnamedAddr(gv, 1);
}

LLVMValueRef kiln_cg_blob_global(kiln_cg *cg)
{
    kiln_cg_blob *b = cg->blob;
    if (b->size == 0)
        return LLVMConstNull(cg->u->t_ptr);
    char name[160];
    kiln_cg_blob_name(cg->prefix, name, sizeof name);
    LLVMValueRef gv = LLVMAddGlobal(cg->u->mod, LLVMArrayType2(cg->u->t_i8, b->size), name);
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetAlignment(gv, 64);
    if (cg->n_units > 1) {
        /* Declared only: ResNet-18's 46 MB through LLVM's constants, its
         * object writer and memory buffers took 0.3-0.5 s; elf.c writes
         * the bytes as they are. */
        LLVMSetLinkage(gv, LLVMExternalLinkage);
        LLVMSetVisibility(gv, LLVMHiddenVisibility);
        return gv;
    }
    kiln_cg_blob_define(cg->u->ctx, gv, b);
    return gv;
}
