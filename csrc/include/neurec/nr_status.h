/*
 * nr_status.h: the status codes every fallible neurec C function returns.
 *
 * The C core never prints and never exits. A function that can fail returns an
 * enum nr_status; the Python binding (csrc/py/) turns it into an exception.
 */
#ifndef NR_STATUS_H
#define NR_STATUS_H

enum nr_status {
    NR_OK = 0,       /* success */
    NR_ERR_NOMEM,    /* an allocation failed; nothing was changed */
    NR_ERR_SHAPE,    /* sizes of arguments disagree */
    NR_ERR_INDEX,    /* an id is negative or past the end of its table */
    NR_ERR_VALUE,    /* a value is out of its domain (NaN label, bad option) */
    NR_ERR_TYPE,     /* an unsupported dtype code */
    NR_ABORTED,      /* stopped early because the abort flag was set */
};

/* A static, human-readable name for s ("ok", "out of memory", ...). Thread-safe. */
const char *nr_status_str(enum nr_status s);

#endif /* NR_STATUS_H */
