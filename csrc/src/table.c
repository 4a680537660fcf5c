#include "neurec/nr_table.h"

#include <string.h>

/* Copy n elements of size bytes; a zero-length copy touches no pointer (which
 * may be NULL for an empty table). */
static void move_rows(void *dst, const void *src, int64_t n, size_t size)
{
    if (n > 0 && dst != src)
        memmove(dst, src, (size_t)n * size);
}

enum nr_status nr_table_resize(struct nr_table *t, const struct nr_table *to)
{
    if (to->cols != t->cols || to->rows < 0)
        return NR_ERR_SHAPE;
    if ((to->rows > 0 && !to->w) || !to->row_steps != !t->row_steps)
        return NR_ERR_VALUE;
    for (int k = 0; k < NR_TABLE_SLOTS; k++)
        if (!to->slot[k] != !t->slot[k])
            return NR_ERR_VALUE;
    int64_t keep = t->rows < to->rows ? t->rows : to->rows, n = keep * t->cols;
    move_rows(to->w, t->w, n, sizeof(float));
    for (int k = 0; k < NR_TABLE_SLOTS; k++)
        if (to->slot[k])
            move_rows(to->slot[k], t->slot[k], n, sizeof(float));
    if (to->row_steps)
        move_rows(to->row_steps, t->row_steps, keep, sizeof(int64_t));
    *t = *to;
    return NR_OK;
}
