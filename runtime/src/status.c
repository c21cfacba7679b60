/* status.c: human-readable strings for kiln_status. */
#include "kiln/runtime.h"

KILN_RT_API const char *kiln_status_string(kiln_status status)
{
    switch (status) {
    case KILN_OK: return "ok";
    case KILN_ERR_INVALID_ARGUMENT: return "invalid argument";
    case KILN_ERR_OUT_OF_MEMORY: return "out of memory";
    case KILN_ERR_IO: return "I/O error";
    case KILN_ERR_PARSE: return "parse error";
    case KILN_ERR_SHAPE: return "shape mismatch";
    case KILN_ERR_WEIGHTS: return "bad or missing weights";
    case KILN_ERR_UNSUPPORTED: return "unsupported";
    case KILN_ERR_WORKSPACE: return "workspace too small or misaligned";
    case KILN_ERR_THREAD: return "thread could not be started";
    case KILN_ERR_INTERNAL: return "internal error";
    case KILN_STATUS_COUNT: break;
    }
    return "unknown status";
}

KILN_RT_API const char *kiln_version(void)
{
    return KILN_VERSION_STRING;
}
