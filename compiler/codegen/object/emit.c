/* compiler/codegen/object/emit.c: writing a compiled module: object file, assembly,
 * LLVM IR text, bitcode, a static archive (the ar format written here: a
 * GNU symbol table, an optional long-name table and the object), or a shared
 * library (the system C compiler links the object with -shared and
 * -lkiln_rt). The machine code of several units is generated on one thread
 * each and the objects merged with the weights (elf.c); other outputs first
 * join the units into one module. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "compiler/codegen/cg.h"

#include <errno.h>
#include <llvm-c/BitWriter.h>
#include <llvm-c/Object.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Writes size bytes to write_path; a failure is reported naming `name` (the
 * output as the user knows it) and the system's reason. Nothing is removed:
 * the caller owns write_path (kiln compile: a temporary file). */
static kiln_status write_file(const char *name, const char *write_path, const void *data, size_t size,
                              kiln_diag *d)
{
    FILE *f = fopen(write_path, "wb");
    if (!f) {
        kiln_diag_error(d, (kiln_loc){0}, "cannot write '%s': %s", name, strerror(errno));
        return KILN_ERR_IO;
    }
    size_t n = size ? fwrite(data, 1, size, f) : 0;
    int err = n != size ? errno : 0;
    if (fclose(f) != 0 && err == 0)
        err = errno ? errno : EIO;
    if (n != size && err == 0)
        err = EIO;
    if (err) {
        kiln_diag_error(d, (kiln_loc){0}, "cannot write '%s': %s", name, strerror(err));
        return KILN_ERR_IO;
    }
    return KILN_OK;
}

kiln_status kiln_cg_emit_memory(kiln_cg_module *m, bool assembly, LLVMMemoryBufferRef *out, kiln_diag *d)
{
    *out = NULL;
    if (!m->mod) {
        kiln_diag_error(d, (kiln_loc){0}, "the module was handed to the JIT and cannot be emitted");
        return KILN_ERR_INVALID_ARGUMENT;
    }
    if (m->code_emitted) {
        kiln_diag_error(d, (kiln_loc){0}, "machine code can be emitted once per compiled module");
        return KILN_ERR_INVALID_ARGUMENT;
    }
    m->code_emitted = true;
    char *err = NULL;
    double t0 = kiln_cg_now();
    if (LLVMTargetMachineEmitToMemoryBuffer(m->machine.tm, m->mod, assembly ? LLVMAssemblyFile : LLVMObjectFile, &err,
                                            out)) {
        kiln_diag_error(d, (kiln_loc){0}, "LLVM code generation failed: %s", err ? err : "?");
        LLVMDisposeMessage(err);
        *out = NULL;
        return KILN_ERR_INTERNAL;
    }
    LLVMDisposeMessage(err);
    m->t_machine = kiln_cg_now() - t0;
    return KILN_OK;
}

/* ---- code generation units in parallel ------------------------------------------- */

typedef struct units_job {
    kiln_cg_module *m;
    LLVMMemoryBufferRef obj[KILN_CG_MAX_UNITS];
    char *err[KILN_CG_MAX_UNITS];
} units_job;

static kiln_status emit_unit(void *arg, int u)
{
    units_job *job = arg;
    if (LLVMTargetMachineEmitToMemoryBuffer(kiln_cg_unit_tm(job->m, u), kiln_cg_unit_module(job->m, u), LLVMObjectFile,
                                            &job->err[u], &job->obj[u])) {
        job->obj[u] = NULL;
        return KILN_ERR_INTERNAL;
    }
    return KILN_OK;
}

/* Each unit's object on its own thread, then one object of them and the
 * embedded weights (elf.c). *out: malloc'd. */
static kiln_status emit_units(kiln_cg_module *m, unsigned char **out, size_t *size, kiln_diag *d)
{
    if (m->code_emitted) {
        kiln_diag_error(d, (kiln_loc){0}, "machine code can be emitted once per compiled module");
        return KILN_ERR_INVALID_ARGUMENT;
    }
    m->code_emitted = true;
    units_job job = {m, {NULL}, {NULL}};
    double t0 = kiln_cg_now();
    kiln_status st = kiln_cg_parallel(m->n_units, emit_unit, &job);
    for (int u = 0; u < m->n_units; u++)
        if (job.err[u] || (st != KILN_OK && !job.obj[u])) {
            kiln_diag_error(d, (kiln_loc){0}, "LLVM code generation failed: %s", job.err[u] ? job.err[u] : "?");
            LLVMDisposeMessage(job.err[u]);
        }
    if (st == KILN_OK) {
        kiln_cg_elf_part parts[KILN_CG_MAX_UNITS];
        for (int u = 0; u < m->n_units; u++)
            parts[u] = (kiln_cg_elf_part){LLVMGetBufferStart(job.obj[u]), LLVMGetBufferSize(job.obj[u])};
        char name[160], why[200];
        kiln_cg_blob_name(m->g->name, name, sizeof name);
        kiln_cg_elf_blob blob = {".rodata.kiln.weights", name, m->blob.data, m->blob.size, 64};
        bool embed = m->opt.weights == KILN_CG_WEIGHTS_EMBED && m->blob.size > 0;
        st = kiln_cg_elf_merge(parts, (size_t)m->n_units, embed ? &blob : NULL, out, size, why, sizeof why);
        if (st == KILN_ERR_OUT_OF_MEMORY)
            kiln_diag_error(d, (kiln_loc){0}, "out of memory merging the objects");
        else if (st != KILN_OK)
            kiln_diag_error(d, (kiln_loc){0}, "internal error: cannot merge the units' objects: %s", why);
        if (st != KILN_OK)
            st = st == KILN_ERR_OUT_OF_MEMORY ? st : KILN_ERR_INTERNAL;
    }
    m->t_machine = kiln_cg_now() - t0;
    for (int u = 0; u < m->n_units; u++)
        if (job.obj[u])
            LLVMDisposeMemoryBuffer(job.obj[u]);
    return st;
}

/* The object's section sizes for the compile report: executable sections
 * are code, the others that take space in memory are data (the embedded
 * weights among them). A failure to read the object leaves them 0. */
static void measure_sections(kiln_cg_module *m, LLVMMemoryBufferRef mb)
{
    m->code_bytes = m->data_bytes = 0;
    char *err = NULL;
    LLVMBinaryRef bin = LLVMCreateBinary(mb, m->ctx, &err); /* borrows mb */
    if (!bin) {
        LLVMDisposeMessage(err);
        return;
    }
    LLVMSectionIteratorRef it = LLVMObjectFileCopySectionIterator(bin);
    for (; it && !LLVMObjectFileIsSectionIteratorAtEnd(bin, it); LLVMMoveToNextSection(it)) {
        const char *name = LLVMGetSectionName(it);
        uint64_t size = LLVMGetSectionSize(it);
        if (!name)
            continue;
        if (strncmp(name, ".text", 5) == 0 || strncmp(name, "__text", 6) == 0)
            m->code_bytes += size;
        else if (strncmp(name, ".rodata", 7) == 0 || strncmp(name, ".lrodata", 8) == 0 ||
                 strncmp(name, ".data", 5) == 0 || strncmp(name, ".ldata", 6) == 0 ||
                 strncmp(name, "__const", 7) == 0)
            m->data_bytes += size;
    }
    if (it)
        LLVMDisposeSectionIterator(it);
    LLVMDisposeBinary(bin);
}

/* ---- ar archives -------------------------------------------------------------- */

typedef struct buf {
    unsigned char *p;
    size_t n, cap;
    bool oom;
} buf;

static void put(buf *b, const void *data, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n)
            cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void put_be32(buf *b, uint32_t v)
{
    unsigned char c[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8), (unsigned char)v};
    put(b, c, 4);
}

/* A 60-byte member header: name, mtime 0, uid 0, gid 0, mode 644, size. */
static void put_header(buf *b, const char *name, size_t size)
{
    char h[61];
    snprintf(h, sizeof h, "%-16s%-12s%-6s%-6s%-8s%-10zu`\n", name, "0", "0", "0", "644", size);
    put(b, h, 60);
}

static size_t even(size_t n) { return n + (n & 1); }

static kiln_status write_archive(kiln_cg_module *m, const char *path, const char *write_path, const void *obj,
                                 size_t obj_size, kiln_diag *d)
{
    /* what entry.c exports (JIT builds are never archived) */
    static const char *const suffixes[] = {"_create",         "_run",  "_run_checked", "_last_error",
                                           "_workspace_size", "_info", "_destroy"};
    const size_t n_syms = sizeof suffixes / sizeof suffixes[0];
    const char *name = m->g->name;
    char member[300];
    snprintf(member, sizeof member, "%s.o/", name);
    bool long_name = strlen(member) > 16;

    size_t names_size = 0;
    for (size_t i = 0; i < n_syms; i++)
        names_size += strlen(name) + strlen(suffixes[i]) + 1;
    size_t symtab_size = 4 + 4 * n_syms + names_size;
    size_t obj_header = 8 + 60 + even(symtab_size);
    if (long_name)
        obj_header += 60 + even(strlen(member) + 1);

    buf b = {0};
    put(&b, "!<arch>\n", 8);
    put_header(&b, "/", symtab_size);
    put_be32(&b, (uint32_t)n_syms);
    for (size_t i = 0; i < n_syms; i++)
        put_be32(&b, (uint32_t)obj_header);
    for (size_t i = 0; i < n_syms; i++) {
        put(&b, name, strlen(name));
        put(&b, suffixes[i], strlen(suffixes[i]) + 1);
    }
    if (symtab_size & 1)
        put(&b, "\n", 1);
    if (long_name) {
        size_t len = strlen(member);
        put_header(&b, "//", len + 1);
        put(&b, member, len);
        put(&b, "\n", 1);
        if ((len + 1) & 1)
            put(&b, "\n", 1);
        put_header(&b, "/0", obj_size);
    } else {
        put_header(&b, member, obj_size);
    }
    put(&b, obj, obj_size);
    if (obj_size & 1)
        put(&b, "\n", 1);
    kiln_status st;
    if (b.oom || obj_header > UINT32_MAX) {
        kiln_diag_error(d, (kiln_loc){0}, "cannot build the archive '%s': out of memory", path);
        st = KILN_ERR_OUT_OF_MEMORY;
    } else {
        st = write_file(path, write_path, b.p, b.n, d);
    }
    free(b.p);
    return st;
}

/* ---- shared libraries --------------------------------------------------------------- */

/* The shared library `name` (libkiln_rt.so, libkiln_rt_blas.so) for the link
 * line: its path in rt_libdir, or `-l:name` (the linker's search path) when
 * there is no rt_libdir. A missing file is an error: the static library
 * must never be linked into a shared model in its place. */
static kiln_status rt_library(const kiln_cg_module *m, const char *name, char *buf, size_t size, kiln_diag *d)
{
    if (!m->rt_libdir) {
        snprintf(buf, size, "-l:%s", name);
        return KILN_OK;
    }
    snprintf(buf, size, "%s/%s", m->rt_libdir, name);
    if (access(buf, R_OK) != 0) {
        kiln_diag_error(d, (kiln_loc){0}, "cannot link a shared model: '%s' is missing (build or install the shared "
                        "runtime)", buf);
        return KILN_ERR_IO;
    }
    return KILN_OK;
}

static kiln_status link_shared(kiln_cg_module *m, const char *path, const char *write_path, const void *obj,
                               size_t obj_size, kiln_diag *d)
{
    bool blas = kiln_cg_uses_blas(m);
    char rt[4200], rt_blas[4200], soname[4200], rpath_flag[4200];
    kiln_status st = rt_library(m, "libkiln_rt.so", rt, sizeof rt, d);
    if (st == KILN_OK && blas)
        st = rt_library(m, "libkiln_rt_blas.so", rt_blas, sizeof rt_blas, d);
    if (st != KILN_OK)
        return st;
    const char *tmpdir = getenv("TMPDIR");
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/kiln-XXXXXX.o", tmpdir && *tmpdir ? tmpdir : "/tmp");
    int fd = mkstemps(tmp, 2);
    if (fd < 0) {
        kiln_diag_error(d, (kiln_loc){0}, "cannot create a temporary object file: %s", strerror(errno));
        return KILN_ERR_IO;
    }
    close(fd);
    st = write_file(tmp, tmp, obj, obj_size, d);
    if (st != KILN_OK) {
        remove(tmp); /* our own temporary object */
        return st;
    }
    const char *cc = m->cc ? m->cc : getenv("CC");
    if (!cc || !*cc)
        cc = "cc";
    const char *base = strrchr(path, '/');
    snprintf(soname, sizeof soname, "-Wl,-soname,%s", base ? base + 1 : path);
    char *argv[16];
    int argc = 0;
    argv[argc++] = (char *)cc;
    argv[argc++] = "-shared";
    argv[argc++] = soname;
    argv[argc++] = "-o";
    argv[argc++] = (char *)write_path;
    argv[argc++] = tmp;
    if (blas)
        argv[argc++] = rt_blas;
    argv[argc++] = rt;
    if (m->opt.rpath) {
        snprintf(rpath_flag, sizeof rpath_flag, "-Wl,-rpath,%s", m->opt.rpath);
        argv[argc++] = rpath_flag;
    }
    argv[argc] = NULL;
    pid_t pid;
    int rc = posix_spawnp(&pid, cc, NULL, NULL, argv, environ);
    int status = 0;
    if (rc != 0) {
        kiln_diag_error(d, (kiln_loc){0}, "cannot run '%s' to link '%s': %s", cc, path, strerror(rc));
        st = KILN_ERR_IO;
    } else if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        kiln_diag_error(d, (kiln_loc){0}, "'%s -shared -o %s ... %s' failed%s", cc, path, rt,
                        m->rt_libdir ? "" : " (is libkiln_rt.so on the linker's search path?)");
        st = KILN_ERR_IO;
    }
    remove(tmp);
    return st;
}

kiln_status kiln_cg_emit(kiln_cg_module *m, kiln_cg_emit_kind kind, const char *path, kiln_diag *d)
{
    return kiln_cg_emit_to(m, kind, path, path, d);
}

kiln_status kiln_cg_emit_to(kiln_cg_module *m, kiln_cg_emit_kind kind, const char *path, const char *write_path,
                            kiln_diag *d)
{
    if (!m || !path || !write_path || !d)
        return KILN_ERR_INVALID_ARGUMENT;
    if (!m->mod) {
        kiln_diag_error(d, (kiln_loc){0}, "the module was handed to the JIT and cannot be emitted");
        return KILN_ERR_INVALID_ARGUMENT;
    }
    kiln_status st;
    bool code = kind != KILN_CG_EMIT_LLVM && kind != KILN_CG_EMIT_BC;
    if (code && m->code_emitted) {
        kiln_diag_error(d, (kiln_loc){0}, "machine code can be emitted once per compiled module");
        return KILN_ERR_INVALID_ARGUMENT;
    }
    /* Several units: each compiled on its own thread and the objects merged
     * (ELF), else first linked into one module. */
    bool units = m->n_units > 1 && code && kind != KILN_CG_EMIT_ASM && m->machine.elf;
    if (m->n_units > 1 && !units && (st = kiln_cg_join_units(m, d)) != KILN_OK)
        return st;
    switch (kind) {
    case KILN_CG_EMIT_LLVM: {
        /* Printed to memory, written here: LLVM's own file streams end the
         * process on a write error (a full disk). */
        char *text = LLVMPrintModuleToString(m->mod); /* ours: LLVMDisposeMessage */
        if (!text) {
            kiln_diag_error(d, (kiln_loc){0}, "out of memory printing the LLVM IR of '%s'", path);
            return KILN_ERR_OUT_OF_MEMORY;
        }
        st = write_file(path, write_path, text, strlen(text), d);
        LLVMDisposeMessage(text);
        return st;
    }
    case KILN_CG_EMIT_BC: {
        LLVMMemoryBufferRef bc = LLVMWriteBitcodeToMemoryBuffer(m->mod); /* ours */
        if (!bc) {
            kiln_diag_error(d, (kiln_loc){0}, "out of memory writing the bitcode of '%s'", path);
            return KILN_ERR_OUT_OF_MEMORY;
        }
        st = write_file(path, write_path, LLVMGetBufferStart(bc), LLVMGetBufferSize(bc), d);
        LLVMDisposeMemoryBuffer(bc);
        return st;
    }
    case KILN_CG_EMIT_OBJ:
    case KILN_CG_EMIT_ASM:
    case KILN_CG_EMIT_LIB:
    case KILN_CG_EMIT_SO:
        break;
    default:
        return KILN_ERR_INVALID_ARGUMENT;
    }
    if (kind == KILN_CG_EMIT_SO && !m->machine.host && !m->cc) {
        kiln_diag_error(d, (kiln_loc){0}, "--emit so links with the host's C compiler and runtime; for target '%s' "
                        "emit obj or lib and link it with that target's toolchain and libkiln_rt",
                        m->machine.triple);
        return KILN_ERR_UNSUPPORTED;
    }
    LLVMMemoryBufferRef mb;
    unsigned char *merged = NULL;
    size_t merged_size = 0;
    if (units) {
        if ((st = emit_units(m, &merged, &merged_size, d)) != KILN_OK)
            return st;
        /* a view of the merged object (not copied) */
        mb = LLVMCreateMemoryBufferWithMemoryRange((const char *)merged, merged_size, "kiln.o", 0);
    } else if ((st = kiln_cg_emit_memory(m, kind == KILN_CG_EMIT_ASM, &mb, d)) != KILN_OK) {
        return st;
    }
    const char *data = LLVMGetBufferStart(mb);
    size_t size = LLVMGetBufferSize(mb);
    if (kind != KILN_CG_EMIT_ASM)
        measure_sections(m, mb);
    switch (kind) {
    case KILN_CG_EMIT_LIB: st = write_archive(m, path, write_path, data, size, d); break;
    case KILN_CG_EMIT_SO: st = link_shared(m, path, write_path, data, size, d); break;
    default: st = write_file(path, write_path, data, size, d); break;
    }
    LLVMDisposeMemoryBuffer(mb);
    free(merged);
    return st;
}

kiln_status kiln_cg_write_weights(const kiln_cg_module *m, const char *path, kiln_diag *d)
{
    return kiln_cg_write_weights_to(m, path, path, d);
}

kiln_status kiln_cg_write_weights_to(const kiln_cg_module *m, const char *path, const char *write_path,
                                     kiln_diag *d)
{
    if (!m || !path || !write_path || !d)
        return KILN_ERR_INVALID_ARGUMENT;
    if (m->opt.weights != KILN_CG_WEIGHTS_EXTERNAL) {
        kiln_diag_error(d, (kiln_loc){0}, "the model was compiled with embedded weights");
        return KILN_ERR_INVALID_ARGUMENT;
    }
    return write_file(path, write_path, m->blob.data, m->blob.size, d);
}

/* Whether function `name` is called in the module (a declaration LLVM kept,
 * with a use). */
static bool module_calls(LLVMModuleRef mod, const char *name)
{
    LLVMValueRef f = mod ? LLVMGetNamedFunction(mod, name) : NULL;
    return f && LLVMGetFirstUse(f) != NULL;
}

bool kiln_cg_uses_blas(const kiln_cg_module *m)
{
    if (!m)
        return false;
    /* The code itself decides: a call of the BLAS glue in any unit. */
    if (m->mod) {
        if (module_calls(m->mod, "kiln_rt_sgemm"))
            return true;
        for (int u = 1; u < m->n_units; u++)
            if (module_calls(m->unit_mod[u], "kiln_rt_sgemm"))
                return true;
        return false;
    }
    /* Given to the JIT: what the kernels chose. */
    for (size_t i = 0; m->g && m->impl && i < m->g->n_nodes; i++)
        if (m->impl[i] == KILN_IMPL_BLAS)
            return true;
    return false;
}
