/* compiler/frontend/onnx/proto.c: bytes -> onnx.ModelProto.
 *
 * protobuf-c unpacks nested messages by recursion and allocates as it goes.
 * Before handing it the bytes, a walk over the wire format (guided by the
 * generated descriptors, so only message fields are entered) checks that
 * every field is well formed and that messages nest at most OX_MAX_DEPTH
 * deep: a file of nested attribute graphs cannot exhaust the stack. The
 * unpacking then allocates through a budget (a multiple of the input size):
 * repeated fields can make the tree larger than the file, not without bound. */
#include <stdio.h>
#include <string.h>

#include "ox.h"

struct ox_model {
    ProtobufCAllocator alloc;
    size_t used, budget;
    bool oom, over_budget;
    Onnx__ModelProto *m;
};

/* Each block carries its size in front, for the budget. */
typedef union block_head {
    size_t size;
    max_align_t align;
} block_head;

static void *budget_alloc(void *data, size_t size)
{
    ox_model *om = data;
    if (size > om->budget - om->used || size > SIZE_MAX - sizeof(block_head)) {
        om->over_budget = true;
        return NULL;
    }
    block_head *h = kiln_malloc(sizeof *h + size);
    if (!h) {
        om->oom = true;
        return NULL;
    }
    h->size = size;
    om->used += size;
    return h + 1;
}

static void budget_free(void *data, void *p)
{
    ox_model *om = data;
    if (!p)
        return;
    block_head *h = (block_head *)p - 1;
    om->used -= h->size;
    kiln_free(h);
}

/* A varint at p[*pos..n); -1 when truncated or longer than 10 bytes. */
static int read_varint(const uint8_t *p, size_t n, size_t *pos, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (*pos >= n)
            return -1;
        uint8_t b = p[(*pos)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

static int walk(const uint8_t *p, size_t n, const ProtobufCMessageDescriptor *desc, int depth, char *why,
                size_t why_size)
{
    if (depth > OX_MAX_DEPTH) {
        snprintf(why, why_size, "messages nested more than %d deep", OX_MAX_DEPTH);
        return -1;
    }
    size_t pos = 0;
    while (pos < n) {
        size_t at = pos;
        uint64_t tag, v;
        if (read_varint(p, n, &pos, &tag) != 0 || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff) {
            snprintf(why, why_size, "a malformed field tag at byte %zu of a %s", at, desc->short_name);
            return -1;
        }
        switch (tag & 7) {
        case 0:
            if (read_varint(p, n, &pos, &v) != 0)
                goto truncated;
            break;
        case 1:
            if (n - pos < 8)
                goto truncated;
            pos += 8;
            break;
        case 5:
            if (n - pos < 4)
                goto truncated;
            pos += 4;
            break;
        case 2: {
            if (read_varint(p, n, &pos, &v) != 0 || v > n - pos)
                goto truncated;
            const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(desc, (unsigned)(tag >> 3));
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                walk(p + pos, (size_t)v, f->descriptor, depth + 1, why, why_size) != 0)
                return -1;
            pos += (size_t)v;
            break;
        }
        default:
            snprintf(why, why_size, "wire type %u (field %llu of a %s) is not used by ONNX", (unsigned)(tag & 7),
                     (unsigned long long)(tag >> 3), desc->short_name);
            return -1;
        }
        continue;
    truncated:
        snprintf(why, why_size, "field %llu of a %s is truncated", (unsigned long long)(tag >> 3), desc->short_name);
        return -1;
    }
    return 0;
}

ox_model *ox_model_unpack(const void *bytes, size_t size, bool *oom, char *why, size_t why_size)
{
    *oom = false;
    if (size == 0) {
        snprintf(why, why_size, "the file is empty");
        return NULL;
    }
    if (walk(bytes, size, &onnx__model_proto__descriptor, 1, why, why_size) != 0)
        return NULL;
    ox_model *om = kiln_calloc(1, sizeof *om);
    if (!om) {
        *oom = true;
        return NULL;
    }
    om->alloc = (ProtobufCAllocator){budget_alloc, budget_free, om};
    /* Every element of a packed repeated field takes at least one byte of
     * the file and at most 8 bytes in memory (plus the pointer arrays). */
    om->budget = size > SIZE_MAX / 32 ? SIZE_MAX : size * 24 + (64u << 20);
    om->m = onnx__model_proto__unpack(&om->alloc, size, bytes);
    if (!om->m) {
        if (om->oom) {
            *oom = true;
            snprintf(why, why_size, "out of memory");
        } else if (om->over_budget) {
            snprintf(why, why_size, "the model needs more memory than its size justifies");
        } else {
            snprintf(why, why_size, "not a valid ONNX protobuf (a field has the wrong type or a required "
                                    "length is wrong)");
        }
        kiln_free(om);
        return NULL;
    }
    return om;
}

const Onnx__ModelProto *ox_model_proto(const ox_model *m) { return m->m; }

void ox_model_free(ox_model *m)
{
    if (!m)
        return;
    if (m->m)
        onnx__model_proto__free_unpacked(m->m, &m->alloc);
    kiln_free(m);
}
