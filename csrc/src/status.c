#include "neurec/nr_status.h"

const char *nr_status_str(enum nr_status s)
{
    switch (s) {
    case NR_OK: return "ok";
    case NR_ERR_NOMEM: return "out of memory";
    case NR_ERR_SHAPE: return "shape mismatch";
    case NR_ERR_INDEX: return "index out of range";
    case NR_ERR_VALUE: return "invalid value";
    case NR_ERR_TYPE: return "unsupported dtype";
    case NR_ABORTED: return "aborted";
    }
    return "unknown status";
}
