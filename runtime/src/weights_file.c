/* weights_file.c: read-only mapping and FNV-1a checking of external weight
 * files. */
#define _POSIX_C_SOURCE 200809L
#include "kiln/runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define FNV64_OFFSET_BASIS UINT64_C(14695981039346656037)
#define FNV64_PRIME UINT64_C(1099511628211)

/* What kiln_rt_map_file hands out as the opaque handle. */
typedef struct kiln_rt_mapping {
    void *addr;  /* NULL for an empty file */
    size_t size;
} kiln_rt_mapping;

KILN_RT_API uint64_t kiln_rt_checksum(const void *data, size_t size)
{
    const unsigned char *p = (const unsigned char *)data;
    uint64_t h = FNV64_OFFSET_BASIS;
    if (p == NULL)
        return h;
    for (size_t i = 0; i < size; ++i) {
        h ^= p[i];
        h *= FNV64_PRIME;
    }
    return h;
}

KILN_RT_API kiln_status kiln_rt_map_file(const char *path, size_t expected_size,
                                         uint64_t expected_checksum, const void **data,
                                         void **handle)
{
    struct stat st;
    kiln_rt_mapping *m;
    void *addr = NULL;
    int fd;

    if (data != NULL)
        *data = NULL;
    if (handle != NULL)
        *handle = NULL;
    if (path == NULL || data == NULL || handle == NULL)
        return KILN_ERR_INVALID_ARGUMENT;

    do {
        fd = open(path, O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return KILN_ERR_IO;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return KILN_ERR_IO;
    }
    if (st.st_size < 0 || (uintmax_t)st.st_size != (uintmax_t)expected_size) {
        close(fd);
        return KILN_ERR_WEIGHTS;
    }
    if (expected_size > 0) {
        addr = mmap(NULL, expected_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (addr == MAP_FAILED) {
            close(fd);
            return KILN_ERR_IO;
        }
    }
    close(fd); /* the mapping keeps the file referenced */

    if (addr != NULL)
        (void)posix_madvise(addr, expected_size, POSIX_MADV_SEQUENTIAL);
    if (kiln_rt_checksum(addr, expected_size) != expected_checksum) {
        if (addr != NULL)
            munmap(addr, expected_size);
        return KILN_ERR_WEIGHTS;
    }
    if (addr != NULL)
        (void)posix_madvise(addr, expected_size, POSIX_MADV_NORMAL);

    m = (kiln_rt_mapping *)malloc(sizeof *m);
    if (m == NULL) {
        if (addr != NULL)
            munmap(addr, expected_size);
        return KILN_ERR_OUT_OF_MEMORY;
    }
    m->addr = addr;
    m->size = expected_size;
    /* An empty file has no mapping; hand out a valid non-NULL pointer to zero
     * readable bytes instead. */
    *data = addr != NULL ? (const void *)addr : (const void *)m;
    *handle = m;
    return KILN_OK;
}

KILN_RT_API void kiln_rt_unmap_file(void *handle)
{
    kiln_rt_mapping *m = (kiln_rt_mapping *)handle;
    if (m == NULL)
        return;
    if (m->addr != NULL)
        munmap(m->addr, m->size);
    free(m);
}
