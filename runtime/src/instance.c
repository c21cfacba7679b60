/* instance.c: the generic model instance behind generated NAME_create,
 * NAME_run and NAME_destroy: a pool, a workspace (the caller's or grown on
 * demand) and the weights (embedded, or a checked mapping of a file). */
#include "kiln/instance.h"
#include "kiln/runtime.h"

#include <stdint.h>
#include <stdlib.h>

#define KILN_RT_WS_ALIGN 64u

struct kiln_rt_instance {
    const kiln_rt_model_desc *desc; /* borrowed: constant data of the model */
    kiln_rt_pool *pool;             /* owned */
    void *workspace;                /* the caller's, or owned when owns_workspace */
    size_t workspace_size;          /* usable bytes at workspace */
    int owns_workspace;
    const void *weights;            /* embedded, or inside mapping */
    void *mapping;                  /* owned mapping of the weights file, or NULL */
};

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
    kiln_rt_pool_destroy(m->pool);
    if (m->owns_workspace)
        kiln_rt_aligned_free(m->workspace);
    kiln_rt_unmap_file(m->mapping);
    free(m);
}

KILN_RT_API kiln_status kiln_rt_instance_create(const kiln_rt_model_desc *desc, const kiln_options *opt,
                                                kiln_rt_instance **out)
{
    kiln_options defaults = KILN_OPTIONS_INIT;
    kiln_rt_instance *m;
    kiln_status st;

    if (out == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (desc == NULL || desc->version < 1 || desc->version > KILN_RT_MODEL_DESC_VERSION)
        return KILN_ERR_INVALID_ARGUMENT;
    if (desc->version >= 2 && kiln_rt_cpu_check(desc->required_cpu_features, NULL, 0) != KILN_OK)
        return KILN_ERR_UNSUPPORTED;
    if (opt == NULL)
        opt = &defaults;
    if (opt->num_threads < 0)
        return KILN_ERR_INVALID_ARGUMENT;
    if (opt->workspace != NULL) {
        size_t need = workspace_bytes(desc, 1);
        if ((uintptr_t)opt->workspace % KILN_RT_WS_ALIGN != 0 || opt->workspace_size < need)
            return KILN_ERR_WORKSPACE;
    }

    m = (kiln_rt_instance *)calloc(1, sizeof *m);
    if (m == NULL)
        return KILN_ERR_OUT_OF_MEMORY;
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
            st = KILN_ERR_WEIGHTS;
            goto fail;
        }
        /* The mapping is owned by the instance from here on. */
        st = kiln_rt_map_file(path, desc->weight_bytes, desc->weights_checksum, &m->weights, &m->mapping);
        if (st != KILN_OK)
            goto fail;
    } else {
        m->weights = desc->weights;
        if (m->weights == NULL && desc->weight_bytes != 0) {
            st = KILN_ERR_WEIGHTS;
            goto fail;
        }
    }

    st = kiln_rt_pool_create(opt->num_threads, &m->pool);
    if (st != KILN_OK)
        goto fail;
    *out = m;
    return KILN_OK;

fail:
    kiln_rt_instance_destroy(m);
    return st;
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
    if (need > m->workspace_size) {
        if (!m->owns_workspace)
            return KILN_ERR_WORKSPACE;
        /* Grow: the old contents are scratch and need not survive. */
        kiln_rt_aligned_free(m->workspace);
        m->workspace = kiln_rt_aligned_alloc(need);
        m->workspace_size = m->workspace != NULL ? need : 0;
        if (m->workspace == NULL)
            return KILN_ERR_OUT_OF_MEMORY;
    }
    *workspace = m->workspace;
    *weights = m->weights;
    *pool = m->pool;
    return KILN_OK;
}
