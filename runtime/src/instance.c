/* instance.c: the generic model instance behind generated NAME_create,
 * NAME_run and NAME_destroy: the threads a model runs on (its own pool, a
 * shared pool or the application's parallel_for), a workspace (the
 * caller's or grown on demand), the weights (embedded, or a checked mapping
 * of a file), and the message of the last failing call. */
#include "kiln/instance.h"
#include "kiln/runtime.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define KILN_RT_WS_ALIGN 64u
#define KILN_RT_ERROR_BYTES 512

struct kiln_rt_instance {
    const kiln_rt_model_desc *desc; /* borrowed: constant data of the model */
    kiln_rt_pool *pool;             /* owned, or borrowed when shared */
    int shares_pool;
    kiln_parallel_for_fn parallel_for; /* the application's threads (borrowed), or NULL */
    void *parallel_for_arg;
    void *workspace;                /* the caller's, or owned when owns_workspace */
    size_t workspace_size;          /* usable bytes at workspace */
    int owns_workspace;
    const void *weights;            /* embedded, or inside mapping */
    void *mapping;                  /* owned mapping of the weights file, or NULL */
    char error[KILN_RT_ERROR_BYTES]; /* the last failing call's message, or "" */
};

/* The fields of kiln_options this runtime knows, read within opt->size. */
#define KILN_RT_OPTIONS_MIN_SIZE (offsetof(kiln_options, weights_path) + sizeof(const char *))
#define KILN_RT_HAS_FIELD(opt, field) ((opt)->size >= offsetof(kiln_options, field) + sizeof((opt)->field))

static void vformat(char *buf, size_t size, const char *fmt, va_list ap)
{
    if (buf == NULL || size == 0)
        return;
    int n = vsnprintf(buf, size, fmt, ap);
    if (n < 0)
        buf[0] = '\0';
}

static kiln_status fail(kiln_rt_instance *m, kiln_status st, const char *fmt, ...)
    KILN_RT_PRINTF(3, 4);
static kiln_status fail(kiln_rt_instance *m, kiln_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vformat(m->error, sizeof m->error, fmt, ap);
    va_end(ap);
    return st;
}

/* create's failures: the message goes to the caller's buffer, if any. */
typedef struct create_msg {
    char *buf;
    size_t size;
} create_msg;

static kiln_status create_fail(create_msg *cm, kiln_status st, const char *fmt, ...) KILN_RT_PRINTF(3, 4);
static kiln_status create_fail(create_msg *cm, kiln_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vformat(cm->buf, cm->size, fmt, ap);
    va_end(ap);
    return st;
}

/* fixed + batch * per_batch, or SIZE_MAX on overflow. */
static size_t workspace_bytes(const kiln_rt_model_desc *d, int64_t batch)
{
    size_t per = d->workspace_per_batch_bytes;
    if (per != 0 && (uint64_t)batch > SIZE_MAX / per)
        return SIZE_MAX;
    size_t v = (size_t)batch * per;
    if (v > SIZE_MAX - d->workspace_fixed_bytes)
        return SIZE_MAX;
    return v + d->workspace_fixed_bytes;
}

KILN_RT_API size_t kiln_rt_model_workspace_size(const kiln_rt_model_desc *desc, int64_t batch)
{
    if (desc == NULL || batch < 1)
        return 0;
    return workspace_bytes(desc, batch);
}

KILN_RT_API void kiln_rt_instance_destroy(kiln_rt_instance *m)
{
    if (m == NULL)
        return;
    if (!m->shares_pool)
        kiln_rt_pool_destroy(m->pool);
    if (m->owns_workspace)
        kiln_rt_aligned_free(m->workspace);
    kiln_rt_unmap_file(m->mapping);
    free(m);
}

static kiln_status check_options(const kiln_options *opt, const kiln_rt_model_desc *desc, create_msg *cm)
{
    if (opt->size < KILN_RT_OPTIONS_MIN_SIZE)
        return create_fail(cm, KILN_ERR_INVALID_ARGUMENT,
                           "kiln_options.size is %zu: initialise the options with KILN_OPTIONS_INIT", opt->size);
    if (opt->num_threads < 0 || opt->num_threads > 1024)
        return create_fail(cm, KILN_ERR_INVALID_ARGUMENT,
                           "num_threads is %d: give 0 (one thread per core) to 1024", opt->num_threads);
    kiln_rt_pool *pool = KILN_RT_HAS_FIELD(opt, pool) ? opt->pool : NULL;
    kiln_parallel_for_fn pf = KILN_RT_HAS_FIELD(opt, parallel_for) ? opt->parallel_for : NULL;
    if (pool != NULL && pf != NULL)
        return create_fail(cm, KILN_ERR_INVALID_ARGUMENT,
                           "both pool and parallel_for are given: the model runs on one or the other");
    if ((pool != NULL || pf != NULL) && opt->num_threads != 0)
        return create_fail(cm, KILN_ERR_INVALID_ARGUMENT,
                           "num_threads is %d with %s: the threads are the %s's; leave num_threads 0",
                           opt->num_threads, pool ? "a shared pool" : "parallel_for",
                           pool ? "pool" : "application");
    if (opt->workspace != NULL) {
        size_t need = workspace_bytes(desc, 1);
        if ((uintptr_t)opt->workspace % KILN_RT_WS_ALIGN != 0)
            return create_fail(cm, KILN_ERR_WORKSPACE, "the workspace at %p is not 64-byte aligned",
                               opt->workspace);
        if (opt->workspace_size < need)
            return create_fail(cm, KILN_ERR_WORKSPACE,
                               "the workspace holds %zu bytes; model '%s' needs %zu for batch 1",
                               opt->workspace_size, desc->name ? desc->name : "?", need);
    }
    return KILN_OK;
}

KILN_RT_API kiln_status kiln_rt_instance_create(const kiln_rt_model_desc *desc, const kiln_options *opt,
                                                kiln_rt_instance **out)
{
    kiln_options defaults = KILN_OPTIONS_INIT;
    create_msg cm = {NULL, 0};
    kiln_rt_instance *m;
    kiln_status st;

    if (opt != NULL && opt->size >= offsetof(kiln_options, error_size) + sizeof opt->error_size) {
        cm.buf = opt->error;
        cm.size = opt->error != NULL ? opt->error_size : 0;
    }
    if (cm.size > 0)
        cm.buf[0] = '\0';
    if (out == NULL)
        return create_fail(&cm, KILN_ERR_INVALID_ARGUMENT, "out (where the instance goes) is NULL");
    *out = NULL;
    if (desc == NULL || desc->version < 1 || desc->version > KILN_RT_MODEL_DESC_VERSION)
        return create_fail(&cm, KILN_ERR_INVALID_ARGUMENT,
                           "the model's descriptor has version %u; this libkiln_rt %s reads 1 to %u "
                           "(the object was compiled for a newer runtime)",
                           desc ? desc->version : 0u, kiln_version(), KILN_RT_MODEL_DESC_VERSION);
    if (desc->version >= 2) {
        char missing[256];
        if (kiln_rt_cpu_check(desc->required_cpu_features, missing, sizeof missing) != KILN_OK)
            return create_fail(&cm, KILN_ERR_UNSUPPORTED,
                               "this CPU lacks %s, which model '%s' was compiled for (compile it with --cpu "
                               "for this machine, or a portable level such as x86-64-v3)",
                               missing, desc->name ? desc->name : "?");
    }
    if (opt == NULL)
        opt = &defaults;
    if ((st = check_options(opt, desc, &cm)) != KILN_OK)
        return st;

    m = (kiln_rt_instance *)calloc(1, sizeof *m);
    if (m == NULL)
        return create_fail(&cm, KILN_ERR_OUT_OF_MEMORY, "out of memory for the instance");
    m->desc = desc;
    if (opt->workspace != NULL) {
        m->workspace = opt->workspace; /* borrowed: the caller keeps it alive */
        m->workspace_size = opt->workspace_size;
    } else {
        m->owns_workspace = 1;
    }

    if (desc->flags & KILN_RT_MODEL_EXTERNAL_WEIGHTS) {
        const char *path = opt->weights_path != NULL ? opt->weights_path : desc->weights_path;
        if (path == NULL) {
            st = create_fail(&cm, KILN_ERR_WEIGHTS,
                             "model '%s' has external weights but no path: set kiln_options.weights_path",
                             desc->name ? desc->name : "?");
            goto fail;
        }
        /* The mapping is owned by the instance from here on. */
        char why[256];
        st = kiln_rt_map_file_why(path, desc->weight_bytes, desc->weights_checksum, &m->weights, &m->mapping, why,
                                  sizeof why);
        if (st != KILN_OK) {
            create_fail(&cm, st, "weights file '%s': %s", path, why);
            goto fail;
        }
    } else {
        m->weights = desc->weights;
        if (m->weights == NULL && desc->weight_bytes != 0) {
            st = create_fail(&cm, KILN_ERR_WEIGHTS, "model '%s' has no embedded weights (a broken object)",
                             desc->name ? desc->name : "?");
            goto fail;
        }
    }

    if (KILN_RT_HAS_FIELD(opt, parallel_for) && opt->parallel_for != NULL) {
        m->parallel_for = opt->parallel_for;
        m->parallel_for_arg = KILN_RT_HAS_FIELD(opt, parallel_for_arg) ? opt->parallel_for_arg : NULL;
    } else if (KILN_RT_HAS_FIELD(opt, pool) && opt->pool != NULL) {
        m->pool = opt->pool; /* borrowed: the caller keeps it alive */
        m->shares_pool = 1;
    } else {
        st = kiln_rt_pool_create(opt->num_threads, &m->pool);
        if (st != KILN_OK) {
            create_fail(&cm, st, "cannot start the instance's %d worker threads", opt->num_threads);
            goto fail;
        }
    }
    *out = m;
    return KILN_OK;

fail:
    kiln_rt_instance_destroy(m);
    return st;
}

/* Grows an instance-owned workspace to hold `batch`. */
static kiln_status reserve(kiln_rt_instance *m, int64_t batch, size_t need)
{
    if (need <= m->workspace_size)
        return KILN_OK;
    if (!m->owns_workspace)
        return fail(m, KILN_ERR_WORKSPACE,
                    "the workspace given at create holds %zu bytes; batch %lld needs %zu (NAME_workspace_size)",
                    m->workspace_size, (long long)batch, need);
    /* Grow: the old contents are scratch and need not survive. */
    kiln_rt_aligned_free(m->workspace);
    m->workspace = kiln_rt_aligned_alloc(need);
    m->workspace_size = m->workspace != NULL ? need : 0;
    if (m->workspace == NULL)
        return fail(m, KILN_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes of workspace for batch %lld", need,
                    (long long)batch);
    return KILN_OK;
}

KILN_RT_API kiln_status kiln_rt_instance_prepare(kiln_rt_instance *m, int64_t batch, void **workspace,
                                                 const void **weights, kiln_rt_pool **pool)
{
    if (workspace != NULL)
        *workspace = NULL;
    if (weights != NULL)
        *weights = NULL;
    if (pool != NULL)
        *pool = NULL;
    if (m == NULL || workspace == NULL || weights == NULL || pool == NULL || batch < 1)
        return KILN_ERR_INVALID_ARGUMENT;

    size_t need = workspace_bytes(m->desc, batch);
    if (need == SIZE_MAX)
        return KILN_ERR_INVALID_ARGUMENT;
    kiln_status st = reserve(m, batch, need);
    if (st != KILN_OK)
        return st;
    m->error[0] = '\0';
    *workspace = m->workspace;
    *weights = m->weights;
    *pool = m->pool; /* NULL with parallel_for: version 1 objects then run serially */
    return KILN_OK;
}

/* "[1,3,32,32]" (the batch as "batch") into buf. */
static void shape_text(const kiln_tensor_info *t, char *buf, size_t size)
{
    size_t w = 0;
    buf[0] = '\0';
    for (int i = 0; i < t->rank && w + 1 < size; i++) {
        int n = t->dims[i] < 0 ? snprintf(buf + w, size - w, "%sbatch", i ? "," : "[")
                               : snprintf(buf + w, size - w, "%s%lld", i ? "," : "[", (long long)t->dims[i]);
        if (n < 0)
            return;
        w += (size_t)n;
    }
    if (w + 1 < size)
        snprintf(buf + w, size - w, "%s", t->rank ? "]" : "[]");
}

/* Floats of tensor t for a batch (rank-many dims, the batch as -1), or 0 on
 * overflow (beyond max_batch, which was checked before). */
static uint64_t tensor_elements(const kiln_tensor_info *t, int64_t batch)
{
    uint64_t n = 1;
    for (int i = 0; i < t->rank; i++)
        n *= (uint64_t)(t->dims[i] < 0 ? batch : t->dims[i]);
    return n;
}

static kiln_status check_buffers(kiln_rt_instance *m, int64_t batch, const void *const *bufs, const size_t *bytes,
                                 int count, const kiln_tensor_info *infos, const char *kind)
{
    if (bufs == NULL && count > 0)
        return fail(m, KILN_ERR_INVALID_ARGUMENT, "the array of %ss is NULL", kind);
    for (int i = 0; i < count; i++) {
        const char *name = infos ? infos[i].name : "?";
        if (bufs[i] == NULL)
            return fail(m, KILN_ERR_INVALID_ARGUMENT, "%s %d '%s' is NULL", kind, i, name);
        if (bytes == NULL || infos == NULL)
            continue;
        uint64_t need = tensor_elements(&infos[i], batch) * sizeof(float);
        if ((uint64_t)bytes[i] < need) {
            char shape[160];
            shape_text(&infos[i], shape, sizeof shape);
            return fail(m, KILN_ERR_INVALID_ARGUMENT,
                        "%s %d '%s' is %zu bytes; batch %lld of %s needs %llu (%llu floats)", kind, i, name,
                        bytes[i], (long long)batch, shape, (unsigned long long)need,
                        (unsigned long long)(need / sizeof(float)));
        }
    }
    return KILN_OK;
}

KILN_RT_API kiln_status kiln_rt_instance_begin(kiln_rt_instance *m, int64_t batch, const float *const *inputs,
                                               float *const *outputs, const size_t *input_bytes,
                                               const size_t *output_bytes, void **workspace,
                                               const void **weights)
{
    if (workspace != NULL)
        *workspace = NULL;
    if (weights != NULL)
        *weights = NULL;
    if (m == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    if (workspace == NULL || weights == NULL)
        return fail(m, KILN_ERR_INVALID_ARGUMENT, "internal: NULL workspace or weights pointer");
    const kiln_rt_model_desc *d = m->desc;
    const kiln_model_info *info = d->version >= 2 ? d->info : NULL;
    const char *model = d->name ? d->name : "?";
    m->error[0] = '\0';
    if (batch < 1)
        return fail(m, KILN_ERR_INVALID_ARGUMENT, "batch %lld: the batch must be at least 1", (long long)batch);
    if (!(d->flags & KILN_RT_MODEL_BATCHED) && batch != 1) {
        char shape[160] = "";
        if (info && info->num_inputs > 0)
            shape_text(&info->inputs[0], shape, sizeof shape);
        return fail(m, KILN_ERR_INVALID_ARGUMENT, "batch %lld but model '%s' has fixed shapes%s%s%s; run it with batch 1",
                    (long long)batch, model, shape[0] ? " " : "", shape,
                    info && info->num_inputs > 1 ? " (the first input)" : "");
    }
    if (d->version >= 2 && d->max_batch > 0 && batch > d->max_batch)
        return fail(m, KILN_ERR_INVALID_ARGUMENT,
                    "batch %lld is too large: model '%s' runs at most batch %lld (a buffer's byte size must fit "
                    "an int64_t)",
                    (long long)batch, model, (long long)d->max_batch);
    int n_in = info ? info->num_inputs : 0, n_out = info ? info->num_outputs : 0;
    kiln_status st;
    if (info) {
        if ((st = check_buffers(m, batch, (const void *const *)inputs, input_bytes, n_in, info->inputs, "input")) !=
                KILN_OK ||
            (st = check_buffers(m, batch, (const void *const *)outputs, output_bytes, n_out, info->outputs,
                                "output")) != KILN_OK)
            return st;
    } else if (inputs == NULL || outputs == NULL) {
        return fail(m, KILN_ERR_INVALID_ARGUMENT, "the array of %ss is NULL", inputs ? "output" : "input");
    }
    size_t need = workspace_bytes(d, batch);
    if (need == SIZE_MAX)
        return fail(m, KILN_ERR_INVALID_ARGUMENT, "batch %lld: the workspace size overflows size_t", (long long)batch);
    if ((st = reserve(m, batch, need)) != KILN_OK)
        return st;
    *workspace = m->workspace;
    *weights = m->weights;
    return KILN_OK;
}

KILN_RT_API kiln_status kiln_rt_instance_parallel_for(kiln_rt_instance *m, int64_t count, kiln_rt_task_fn fn,
                                                      void *ctx)
{
    if (m == NULL || fn == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    if (count <= 0)
        return KILN_OK;
    if (m->parallel_for != NULL) {
        kiln_status st = m->parallel_for(m->parallel_for_arg, count, fn, ctx);
        if (st != KILN_OK)
            return fail(m, st, "the application's parallel_for failed: %s", kiln_status_string(st));
        return KILN_OK;
    }
    kiln_status st = kiln_rt_parallel_for(m->pool, count, fn, ctx);
    if (st == KILN_ERR_INVALID_ARGUMENT && m->shares_pool) {
        /* The shared pool runs another instance's job (no task of ours ran):
         * this thread runs ours itself. */
        for (int64_t i = 0; i < count; ++i)
            fn(ctx, i, count);
        return KILN_OK;
    }
    if (st != KILN_OK)
        return fail(m, st, "the thread pool refused the job: %s", kiln_status_string(st));
    return KILN_OK;
}

KILN_RT_API const char *kiln_rt_instance_last_error(const kiln_rt_instance *m)
{
    if (m == NULL)
        return "no instance (NULL): create failed, or was not called";
    return m->error;
}
