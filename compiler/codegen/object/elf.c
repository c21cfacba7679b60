/* compiler/codegen/object/elf.c: merging relocatable ELF objects into one, as
 * `ld -r` would, for the objects of a module compiled in parallel (one per
 * code generation unit) and the raw bytes of the embedded weights.
 *
 * The sections of every input are kept as they are, one after the other
 * (several .text sections in one object are as valid as -ffunction-sections
 * makes them), so no offset inside a section changes: relocations only get
 * their symbol and section indices renumbered. Symbols:
 *   - locals stay locals (their section renumbered);
 *   - a defined global with hidden visibility is kiln's glue between units
 *     (a task or micro-kernel defined in one unit, called from another): it
 *     becomes a local, and the other inputs' undefined references to it
 *     resolve to it, so the object exports exactly what a single-module
 *     object did;
 *   - other defined globals (the model's API) stay global; undefined
 *     globals (the runtime, memcpy) appear once each.
 * The weights are one more read-only section (SHF_ALLOC, 64-byte aligned)
 * with a local symbol for them: LLVM never copies or prints them.
 *
 * Only what LLVM emits for kiln is handled: ELF64 little-endian, RELA
 * relocations, no section groups. Anything else is KILN_ERR_UNSUPPORTED and
 * the caller compiles the module whole instead. No LLVM here. */
#include "compiler/codegen/cg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    EHDR_SIZE = 64,
    SHDR_SIZE = 64,
    SYM_SIZE = 24,
    RELA_SIZE = 24,
    SHT_SYMTAB = 2,
    SHT_STRTAB = 3,
    SHT_RELA = 4,
    SHT_NOBITS = 8,
    SHT_REL = 9,
    SHT_GROUP = 17,
    SHT_SYMTAB_SHNDX = 18,
    SHF_ALLOC = 0x2,
    SHF_LINK_ORDER = 0x80,
    SHF_GROUP = 0x200,
    STB_LOCAL = 0,
    STV_HIDDEN = 2,
    STT_OBJECT = 1,
    SHN_LORESERVE = 0xff00,
    SHN_XINDEX = 0xffff,
};
#define SHT_LLVM_ADDRSIG 0x6fff4c03u /* an optional hint for identical code folding: dropped */

static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const unsigned char *p) { return (uint32_t)rd16(p) | (uint32_t)rd16(p + 2) << 16; }
static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr16(unsigned char *p, uint16_t v) { p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8); }
static void wr32(unsigned char *p, uint32_t v) { wr16(p, (uint16_t)v), wr16(p + 2, (uint16_t)(v >> 16)); }
static void wr64(unsigned char *p, uint64_t v) { wr32(p, (uint32_t)v), wr32(p + 4, (uint32_t)(v >> 32)); }

/* A section of the output. */
typedef struct out_sec {
    uint32_t name; /* offset in the string table */
    uint32_t type, link, info;
    uint64_t flags, align, entsize, size;
    const unsigned char *data; /* NULL: NOBITS, or filled in by the writer */
    unsigned char *owned;      /* rewritten relocations */
    uint64_t offset;           /* in the output file */
} out_sec;

/* A symbol of the output (fields as in Elf64_Sym). */
typedef struct out_sym {
    uint32_t name;
    unsigned char info, other;
    uint16_t shndx;
    uint64_t value, size;
} out_sym;

typedef struct input {
    const unsigned char *p;
    size_t size;
    const unsigned char *sh; /* section headers */
    uint16_t shnum;
    uint32_t symtab, nsyms;
    const unsigned char *syms, *strs;
    size_t strs_size;
    uint32_t *sec_map; /* input section -> output section (0: none) */
    uint32_t *sym_map; /* input symbol -> output symbol */
} input;

typedef struct merger {
    input *in;
    size_t n_in;
    out_sec *secs;
    size_t n_secs, cap_secs;
    out_sym *syms;
    size_t n_syms, cap_syms;
    char *str; /* the one string table (section and symbol names) */
    size_t n_str, cap_str;
    /* defined symbols by name: open addressing, indices into syms (0: empty) */
    uint32_t *table;
    size_t table_size;
    char *why;
    size_t why_size;
    bool oom;
} merger;

static kiln_status unsupported(merger *mg, const char *what, size_t part)
{
    if (mg->why && mg->why_size)
        snprintf(mg->why, mg->why_size, "object %zu: %s", part, what);
    return KILN_ERR_UNSUPPORTED;
}

static void *grow(merger *mg, void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    size_t cap2 = *cap ? *cap : 64;
    while (cap2 < need)
        cap2 *= 2;
    void *q = realloc(p, cap2 * elem);
    if (!q) {
        mg->oom = true;
        return NULL;
    }
    *cap = cap2;
    return q;
}

static uint32_t add_str(merger *mg, const char *s, size_t len)
{
    char *p = grow(mg, mg->str, &mg->cap_str, mg->n_str + len + 1, 1);
    if (!p)
        return 0;
    mg->str = p;
    uint32_t at = (uint32_t)mg->n_str;
    memcpy(p + at, s, len);
    p[at + len] = '\0';
    mg->n_str += len + 1;
    return at;
}

static out_sec *add_sec(merger *mg)
{
    out_sec *s = grow(mg, mg->secs, &mg->cap_secs, mg->n_secs + 1, sizeof *s);
    if (!s)
        return NULL;
    mg->secs = s;
    s += mg->n_secs++;
    memset(s, 0, sizeof *s);
    return s;
}

static uint32_t add_sym(merger *mg, out_sym sym)
{
    out_sym *s = grow(mg, mg->syms, &mg->cap_syms, mg->n_syms + 1, sizeof *s);
    if (!s)
        return 0;
    mg->syms = s;
    s[mg->n_syms] = sym;
    return (uint32_t)mg->n_syms++;
}

static const char *sym_name(const merger *mg, uint32_t i) { return mg->str + mg->syms[i].name; }

static size_t hash_name(const char *s)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
    return (size_t)h;
}

/* The slot of name in the table (an empty one when absent). */
static uint32_t *lookup(merger *mg, const char *name)
{
    size_t mask = mg->table_size - 1;
    for (size_t i = hash_name(name) & mask;; i = (i + 1) & mask)
        if (!mg->table[i] || strcmp(sym_name(mg, mg->table[i]), name) == 0)
            return &mg->table[i];
}

/* Checks one input and finds its symbol table. */
static kiln_status parse(merger *mg, size_t k, const kiln_cg_elf_part *part, uint16_t machine)
{
    input *in = &mg->in[k];
    const unsigned char *p = part->data;
    in->p = p;
    in->size = part->size;
    if (part->size < EHDR_SIZE || memcmp(p, "\177ELF", 4) != 0)
        return unsupported(mg, "not an ELF object", k);
    if (p[4] != 2 || p[5] != 1)
        return unsupported(mg, "not ELF64 little-endian", k);
    if (rd16(p + 16) != 1 /* ET_REL */ || rd16(p + 18) != machine)
        return unsupported(mg, "not a relocatable object for the same machine", k);
    uint64_t shoff = rd64(p + 40);
    in->shnum = rd16(p + 60);
    if (rd16(p + 58) != SHDR_SIZE || in->shnum == 0 || shoff > part->size ||
        (part->size - shoff) / SHDR_SIZE < in->shnum)
        return unsupported(mg, "bad section header table", k);
    in->sh = p + shoff;
    in->symtab = 0;
    for (uint32_t i = 1; i < in->shnum; i++) {
        const unsigned char *s = in->sh + (size_t)i * SHDR_SIZE;
        uint32_t type = rd32(s + 4);
        uint64_t off = rd64(s + 24), size = rd64(s + 32);
        if (type != SHT_NOBITS && (off > part->size || size > part->size - off))
            return unsupported(mg, "a section outside the file", k);
        if (type == SHT_SYMTAB) {
            if (in->symtab || rd64(s + 56) != SYM_SIZE)
                return unsupported(mg, "bad symbol table", k);
            in->symtab = i;
        }
    }
    if (!in->symtab)
        return unsupported(mg, "no symbol table", k);
    const unsigned char *st = in->sh + (size_t)in->symtab * SHDR_SIZE;
    uint32_t strndx = rd32(st + 40);
    if (strndx == 0 || strndx >= in->shnum || rd32(in->sh + (size_t)strndx * SHDR_SIZE + 4) != SHT_STRTAB)
        return unsupported(mg, "bad string table", k);
    in->syms = p + rd64(st + 24);
    in->nsyms = (uint32_t)(rd64(st + 32) / SYM_SIZE);
    const unsigned char *ss = in->sh + (size_t)strndx * SHDR_SIZE;
    in->strs = p + rd64(ss + 24);
    in->strs_size = rd64(ss + 32);
    if (in->strs_size == 0 || in->strs[in->strs_size - 1] != '\0')
        return unsupported(mg, "bad string table", k);
    in->sec_map = calloc(in->shnum, sizeof *in->sec_map);
    in->sym_map = calloc(in->nsyms ? in->nsyms : 1, sizeof *in->sym_map);
    if (!in->sec_map || !in->sym_map)
        return KILN_ERR_OUT_OF_MEMORY;
    return KILN_OK;
}

static const char *in_str(const input *in, uint32_t off) { return off < in->strs_size ? (const char *)in->strs + off : ""; }

/* Input k's sections (but its symbol and string tables) as output sections,
 * their relocations after them. */
static kiln_status copy_sections(merger *mg, size_t k)
{
    input *in = &mg->in[k];
    uint16_t shstrndx = rd16(in->p + 62);
    if (shstrndx == 0 || shstrndx >= in->shnum)
        return unsupported(mg, "no section names", k);
    const unsigned char *ns = in->sh + (size_t)shstrndx * SHDR_SIZE;
    const char *names = (const char *)in->p + rd64(ns + 24);
    uint64_t names_size = rd64(ns + 32);
    if (names_size == 0 || names[names_size - 1] != '\0')
        return unsupported(mg, "bad section names", k);
    for (int pass = 0; pass < 2; pass++) /* sections, then their relocations */
        for (uint32_t i = 1; i < in->shnum; i++) {
            const unsigned char *s = in->sh + (size_t)i * SHDR_SIZE;
            uint32_t type = rd32(s + 4), name = rd32(s);
            uint64_t flags = rd64(s + 8);
            if (type == SHT_SYMTAB || type == SHT_STRTAB || type == SHT_LLVM_ADDRSIG)
                continue;
            if (type == SHT_REL || type == SHT_GROUP || type == SHT_SYMTAB_SHNDX || (flags & SHF_GROUP))
                return unsupported(mg, "REL relocations or section groups", k);
            if ((type == SHT_RELA) != (pass == 1))
                continue;
            uint32_t link = rd32(s + 40), info = rd32(s + 44);
            if (type == SHT_RELA) {
                if (link != in->symtab || info == 0 || info >= in->shnum)
                    return unsupported(mg, "bad relocation section", k);
                if (!in->sec_map[info])
                    continue; /* relocates a dropped section */
            } else if (link && !(flags & SHF_LINK_ORDER)) {
                return unsupported(mg, "a section linked to another", k);
            }
            out_sec *o = add_sec(mg);
            if (!o)
                return KILN_ERR_OUT_OF_MEMORY;
            const char *nm = name < names_size ? names + name : "";
            o->name = add_str(mg, nm, strlen(nm));
            o->type = type;
            o->flags = flags;
            o->link = link; /* renumbered below */
            o->info = info;
            o->align = rd64(s + 48);
            o->entsize = rd64(s + 56);
            o->size = rd64(s + 32);
            o->data = type == SHT_NOBITS ? NULL : in->p + rd64(s + 24);
            in->sec_map[i] = (uint32_t)(mg->n_secs - 1);
            if (type == SHT_RELA && (o->size % RELA_SIZE || o->entsize != RELA_SIZE))
                return unsupported(mg, "bad relocation section", k);
        }
    return mg->oom ? KILN_ERR_OUT_OF_MEMORY : KILN_OK;
}

static kiln_status map_shndx(merger *mg, size_t k, uint16_t shndx, uint16_t *out)
{
    const input *in = &mg->in[k];
    if (shndx == 0 || (shndx >= SHN_LORESERVE && shndx != SHN_XINDEX)) {
        *out = shndx; /* undefined, absolute, common */
        return KILN_OK;
    }
    if (shndx == SHN_XINDEX || shndx >= in->shnum || !in->sec_map[shndx] || mg->n_secs >= SHN_LORESERVE)
        return unsupported(mg, "a symbol in a section the merge cannot place", k);
    *out = (uint16_t)in->sec_map[shndx];
    return KILN_OK;
}

/* Symbol j of input k as an output symbol (name added to the string table). */
static kiln_status in_sym(merger *mg, size_t k, uint32_t j, out_sym *o)
{
    const input *in = &mg->in[k];
    const unsigned char *s = in->syms + (size_t)j * SYM_SIZE;
    const char *name = in_str(in, rd32(s));
    o->name = *name ? add_str(mg, name, strlen(name)) : 0;
    o->info = s[4];
    o->other = s[5];
    o->value = rd64(s + 8);
    o->size = rd64(s + 16);
    return map_shndx(mg, k, rd16(s + 6), &o->shndx);
}

/* Records the definition of the symbol at index i under its name. */
static kiln_status define(merger *mg, uint32_t i, size_t k)
{
    uint32_t *slot = lookup(mg, sym_name(mg, i));
    if (*slot)
        return unsupported(mg, "a symbol defined twice", k);
    *slot = i;
    return KILN_OK;
}

static kiln_status merge_symbols(merger *mg, const kiln_cg_elf_blob *blob, uint32_t blob_sec, uint32_t *first_global)
{
    size_t total = 1;
    for (size_t k = 0; k < mg->n_in; k++)
        total += mg->in[k].nsyms;
    mg->table_size = 64;
    while (mg->table_size < 2 * total + 2)
        mg->table_size *= 2;
    mg->table = calloc(mg->table_size, sizeof *mg->table);
    if (!mg->table)
        return KILN_ERR_OUT_OF_MEMORY;
    add_sym(mg, (out_sym){0});
    kiln_status st;
    /* Locals first (ELF wants them before the globals): the inputs' locals
     * and the hidden definitions, which become locals. */
    for (size_t k = 0; k < mg->n_in; k++) {
        input *in = &mg->in[k];
        for (uint32_t j = 1; j < in->nsyms; j++) {
            const unsigned char *s = in->syms + (size_t)j * SYM_SIZE;
            bool local = s[4] >> 4 == STB_LOCAL, defined = rd16(s + 6) != 0;
            bool hidden = (s[5] & 3) == STV_HIDDEN;
            if (!local && !(defined && hidden))
                continue;
            out_sym o;
            if ((st = in_sym(mg, k, j, &o)) != KILN_OK)
                return st;
            if (!local) {
                o.info = (unsigned char)(STB_LOCAL << 4 | (o.info & 0xf));
                o.other = (unsigned char)(o.other & ~3); /* default visibility */
            }
            in->sym_map[j] = add_sym(mg, o);
            if (!local && (st = define(mg, in->sym_map[j], k)) != KILN_OK)
                return st;
        }
    }
    if (blob) {
        out_sym o = {add_str(mg, blob->symbol, strlen(blob->symbol)), (unsigned char)(STB_LOCAL << 4 | STT_OBJECT), 0,
                     (uint16_t)blob_sec, 0, blob->size};
        if ((st = define(mg, add_sym(mg, o), mg->n_in)) != KILN_OK)
            return st;
    }
    *first_global = (uint32_t)mg->n_syms;
    /* Defined globals, then each undefined name once (or resolved to a
     * definition). */
    for (int pass = 0; pass < 2; pass++)
        for (size_t k = 0; k < mg->n_in; k++) {
            input *in = &mg->in[k];
            for (uint32_t j = 1; j < in->nsyms; j++) {
                const unsigned char *s = in->syms + (size_t)j * SYM_SIZE;
                bool defined = rd16(s + 6) != 0;
                if (s[4] >> 4 == STB_LOCAL || (defined && (s[5] & 3) == STV_HIDDEN) || defined != (pass == 0))
                    continue;
                if (pass == 1) {
                    uint32_t *slot = lookup(mg, in_str(in, rd32(s)));
                    if (*slot) {
                        in->sym_map[j] = *slot;
                        continue;
                    }
                }
                out_sym o;
                if ((st = in_sym(mg, k, j, &o)) != KILN_OK)
                    return st;
                in->sym_map[j] = add_sym(mg, o);
                if ((st = define(mg, in->sym_map[j], k)) != KILN_OK)
                    return st;
            }
        }
    return mg->oom ? KILN_ERR_OUT_OF_MEMORY : KILN_OK;
}

/* Rewrites the relocations' symbol indices. */
static kiln_status relocate(merger *mg, size_t k)
{
    const input *in = &mg->in[k];
    for (uint32_t i = 1; i < in->shnum; i++) {
        uint32_t o = in->sec_map[i];
        if (!o || mg->secs[o].type != SHT_RELA)
            continue;
        out_sec *s = &mg->secs[o];
        s->owned = malloc(s->size ? s->size : 1);
        if (!s->owned)
            return KILN_ERR_OUT_OF_MEMORY;
        memcpy(s->owned, s->data, s->size);
        s->data = s->owned;
        for (uint64_t off = 0; off < s->size; off += RELA_SIZE) {
            uint64_t rinfo = rd64(s->owned + off + 8);
            uint32_t sym = (uint32_t)(rinfo >> 32);
            if (sym >= in->nsyms || (sym && !in->sym_map[sym]))
                return unsupported(mg, "a relocation against an unknown symbol", k);
            wr64(s->owned + off + 8, (uint64_t)in->sym_map[sym] << 32 | (rinfo & 0xffffffffu));
        }
        s->info = in->sec_map[s->info];
    }
    /* SHF_LINK_ORDER sections point at another section */
    for (uint32_t i = 1; i < in->shnum; i++) {
        uint32_t o = in->sec_map[i];
        if (o && mg->secs[o].type != SHT_RELA && mg->secs[o].link) {
            uint32_t l = mg->secs[o].link;
            if (l >= in->shnum || !in->sec_map[l])
                return unsupported(mg, "a section linked to a dropped one", k);
            mg->secs[o].link = in->sec_map[l];
        }
    }
    return KILN_OK;
}

static uint64_t align_up(uint64_t v, uint64_t a) { return a > 1 ? (v + a - 1) / a * a : v; }

kiln_status kiln_cg_elf_merge(const kiln_cg_elf_part *parts, size_t n_parts, const kiln_cg_elf_blob *blob,
                              unsigned char **out, size_t *out_size, char *why, size_t why_size)
{
    *out = NULL;
    *out_size = 0;
    if (why && why_size)
        why[0] = '\0';
    if (n_parts == 0)
        return KILN_ERR_INVALID_ARGUMENT;
    merger mg = {0};
    mg.why = why;
    mg.why_size = why_size;
    mg.in = calloc(n_parts, sizeof *mg.in);
    mg.n_in = n_parts;
    kiln_status st = mg.in ? KILN_OK : KILN_ERR_OUT_OF_MEMORY;
    uint16_t machine = parts[0].size >= EHDR_SIZE ? rd16((const unsigned char *)parts[0].data + 18) : 0;
    for (size_t k = 0; k < n_parts && st == KILN_OK; k++)
        st = parse(&mg, k, &parts[k], machine);
    if (st == KILN_OK) {
        add_sec(&mg); /* the null section */
        add_str(&mg, "", 0);
    }
    for (size_t k = 0; k < n_parts && st == KILN_OK; k++)
        st = copy_sections(&mg, k);
    uint32_t blob_sec = 0, first_global = 0;
    if (st == KILN_OK && blob) {
        out_sec *o = add_sec(&mg);
        if (!o) {
            st = KILN_ERR_OUT_OF_MEMORY;
        } else {
            o->name = add_str(&mg, blob->section, strlen(blob->section));
            o->type = 1; /* SHT_PROGBITS */
            o->flags = SHF_ALLOC;
            o->align = blob->align;
            o->size = blob->size;
            o->data = blob->data;
            blob_sec = (uint32_t)(mg.n_secs - 1);
        }
    }
    if (st == KILN_OK && mg.n_secs + 2 >= SHN_LORESERVE)
        st = unsupported(&mg, "too many sections", 0);
    if (st == KILN_OK)
        st = merge_symbols(&mg, blob, blob_sec, &first_global);
    for (size_t k = 0; k < n_parts && st == KILN_OK; k++)
        st = relocate(&mg, k);
    /* .symtab and .strtab: the last two sections. */
    out_sec *symtab = st == KILN_OK ? add_sec(&mg) : NULL;
    out_sec *strtab = symtab ? add_sec(&mg) : NULL;
    if (st == KILN_OK && (!strtab || mg.oom))
        st = KILN_ERR_OUT_OF_MEMORY;
    unsigned char *buf = NULL;
    size_t size = 0;
    if (st == KILN_OK) {
        symtab = &mg.secs[mg.n_secs - 2];
        strtab = &mg.secs[mg.n_secs - 1];
        uint32_t symtab_idx = (uint32_t)(mg.n_secs - 2), strtab_idx = (uint32_t)(mg.n_secs - 1);
        symtab->name = add_str(&mg, ".symtab", 7);
        strtab->name = add_str(&mg, ".strtab", 7);
        symtab->type = SHT_SYMTAB;
        symtab->link = strtab_idx;
        symtab->info = first_global;
        symtab->align = 8;
        symtab->entsize = SYM_SIZE;
        symtab->size = (uint64_t)mg.n_syms * SYM_SIZE;
        strtab->type = SHT_STRTAB;
        strtab->align = 1;
        for (size_t i = 1; i < mg.n_secs; i++)
            if (mg.secs[i].type == SHT_RELA)
                mg.secs[i].link = symtab_idx;
        strtab->size = mg.n_str; /* no string added after this */
        /* layout: header, sections, section header table */
        uint64_t off = EHDR_SIZE;
        for (size_t i = 1; i < mg.n_secs; i++) {
            out_sec *s = &mg.secs[i];
            off = align_up(off, s->align);
            s->offset = off;
            if (s->type != SHT_NOBITS)
                off += s->size;
        }
        uint64_t shoff = align_up(off, 8);
        size = (size_t)(shoff + (uint64_t)mg.n_secs * SHDR_SIZE);
        buf = mg.oom ? NULL : calloc(1, size);
        if (!buf)
            st = KILN_ERR_OUT_OF_MEMORY;
        if (buf) {
            memcpy(buf, parts[0].data, 16); /* e_ident */
            wr16(buf + 16, 1);
            wr16(buf + 18, machine);
            wr32(buf + 20, 1);
            wr64(buf + 40, shoff);
            wr32(buf + 48, rd32((const unsigned char *)parts[0].data + 48)); /* e_flags */
            wr16(buf + 52, EHDR_SIZE);
            wr16(buf + 58, SHDR_SIZE);
            wr16(buf + 60, (uint16_t)mg.n_secs);
            wr16(buf + 62, (uint16_t)strtab_idx);
            for (size_t i = 0; i < mg.n_syms; i++) {
                unsigned char *p = buf + symtab->offset + i * SYM_SIZE;
                const out_sym *y = &mg.syms[i];
                wr32(p, y->name);
                p[4] = y->info;
                p[5] = y->other;
                wr16(p + 6, y->shndx);
                wr64(p + 8, y->value);
                wr64(p + 16, y->size);
            }
            memcpy(buf + strtab->offset, mg.str, mg.n_str);
            for (size_t i = 1; i < mg.n_secs; i++) {
                const out_sec *s = &mg.secs[i];
                if (s->data && s->size)
                    memcpy(buf + s->offset, s->data, s->size);
                unsigned char *h = buf + shoff + i * SHDR_SIZE;
                wr32(h, s->name);
                wr32(h + 4, s->type);
                wr64(h + 8, s->flags);
                wr64(h + 24, s->offset);
                wr64(h + 32, s->size);
                wr32(h + 40, s->link);
                wr32(h + 44, s->info);
                wr64(h + 48, s->align);
                wr64(h + 56, s->entsize);
            }
        }
    }
    for (size_t k = 0; mg.in && k < n_parts; k++) {
        free(mg.in[k].sec_map);
        free(mg.in[k].sym_map);
    }
    for (size_t i = 0; i < mg.n_secs; i++)
        free(mg.secs[i].owned);
    free(mg.in);
    free(mg.secs);
    free(mg.syms);
    free(mg.str);
    free(mg.table);
    if (st != KILN_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    *out_size = size;
    return KILN_OK;
}
