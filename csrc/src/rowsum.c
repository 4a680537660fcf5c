#include <stdlib.h>
#include <string.h>

#include "neurec/nr_rowsum.h"

/* An open-addressing hash from row id to its slot in the output, sized to at
 * least twice the rows merged: a probe sequence stays short. */
struct rs_map {
    int64_t *keys; /* -1: free */
    int64_t *slots;
    uint64_t mask;
};

/* The float whose bits word p holds (memcpy: no aliasing of uint32_t as float). */
static inline float rs_float(const uint32_t *p)
{
    float f;
    memcpy(&f, p, sizeof f);
    return f;
}

static uint64_t rs_hash(int64_t id)
{
    uint64_t x = (uint64_t)id * 0x9E3779B97F4A7C15ull;
    return x ^ (x >> 29);
}

/* m over the workspace's hash, grown to at least twice n slots. Every key is
 * -1 between calls (rs_map_clear). Returns 0, or -1 out of memory. */
static int rs_map_reserve(struct nr_rowsum_ws *ws, int64_t n, struct rs_map *m)
{
    uint64_t cap = 16;
    while (cap < 2 * (uint64_t)n)
        cap <<= 1;
    if (cap > ws->map_cap) {
        int64_t *keys = realloc(ws->keys, cap * sizeof *keys);
        if (keys)
            ws->keys = keys;
        int64_t *slots = keys ? realloc(ws->slots, cap * sizeof *slots) : NULL;
        if (slots)
            ws->slots = slots;
        if (!keys || !slots)
            return -1;
        memset(ws->keys, 0xff, cap * sizeof *ws->keys); /* every key -1 */
        ws->map_cap = cap;
    }
    m->keys = ws->keys;
    m->slots = ws->slots;
    m->mask = ws->map_cap - 1;
    return 0;
}

/* The slot of id, or -1 after storing next as its slot. */
static int64_t rs_map_find_or_add(struct rs_map *m, int64_t id, int64_t next)
{
    for (uint64_t h = rs_hash(id) & m->mask;; h = (h + 1) & m->mask) {
        if (m->keys[h] == id)
            return m->slots[h];
        if (m->keys[h] < 0) {
            m->keys[h] = id;
            m->slots[h] = next;
            return -1;
        }
    }
}

/* Every key of m free again: ids are all the keys m holds, each found by
 * walking its probe sequence past any key already freed. */
static void rs_map_clear(struct rs_map *m, const int64_t *ids, int64_t n)
{
    for (int64_t k = 0; k < n; k++) {
        uint64_t h = rs_hash(ids[k]) & m->mask;
        while (m->keys[h] != ids[k])
            h = (h + 1) & m->mask;
        m->keys[h] = -1;
    }
}

/* The workspace's buffers for total rows merged into a table of table_rows
 * rows: the chain links and, when the table is small enough, the dense index
 * (grown with every slot -1). Returns 0, or -1 out of memory. */
static int rs_ws_reserve(struct nr_rowsum_ws *ws, int64_t total, int64_t table_rows, int dense)
{
    const size_t need = (size_t)total * (3 * sizeof(int64_t) + sizeof(uint32_t *) + sizeof(double));
    if (need > ws->buf_bytes) {
        void *b = realloc(ws->buf, need);
        if (!b)
            return -1;
        ws->buf = b;
        ws->buf_bytes = need;
    }
    if (dense && table_rows > ws->slot_rows) {
        int32_t *idx = realloc(ws->slot_of, (size_t)table_rows * sizeof *idx);
        if (!idx)
            return -1;
        memset(idx + ws->slot_rows, 0xff, (size_t)(table_rows - ws->slot_rows) * sizeof *idx);
        ws->slot_of = idx;
        ws->slot_rows = table_rows;
    }
    return 0;
}

void nr_rowsum_ws_free(struct nr_rowsum_ws *ws)
{
    free(ws->slot_of);
    free(ws->keys);
    free(ws->slots);
    free(ws->buf);
    memset(ws, 0, sizeof *ws);
}

/* Pass 1 chains each distinct id's rows in sender order (first[slot] ->
 * next[i] -> ...), finding an id's slot in the dense index or the hash; pass 2
 * sums each chain in double and rounds once, so a row sent once costs one
 * multiply and the output is written once, in order. */
enum nr_status nr_rowsum_ws(struct nr_rowsum_ws *ws, const uint32_t *msg, int64_t msg_words,
                            const int64_t *offsets, const int64_t *counts, int n_senders,
                            const double *weights, int64_t cols, int64_t table_rows,
                            int64_t *out_ids, float *out_grad, int64_t *n_out)
{
    *n_out = 0;
    if (n_senders < 0 || cols < 0)
        return NR_ERR_SHAPE;
    const int64_t width = cols + 2;
    int64_t total = 0;
    for (int s = 0; s < n_senders; s++) {
        if (counts[s] < 0 || offsets[s] < 0 || offsets[s] > msg_words ||
            counts[s] > (msg_words - offsets[s]) / width)
            return NR_ERR_SHAPE;
        total += counts[s];
    }
    if (total == 0)
        return NR_OK;
    struct nr_rowsum_ws local = {0};
    struct rs_map map = {0};
    const int dense = ws && table_rows <= NR_ROWSUM_DENSE_ROWS && total < INT32_MAX;
    if (!ws)
        ws = &local;
    if (rs_ws_reserve(ws, total, table_rows, dense) < 0 ||
        (!dense && rs_map_reserve(ws, total, &map) < 0)) {
        nr_rowsum_ws_free(&local);
        return NR_ERR_NOMEM;
    }
    enum nr_status status = NR_OK;
    int64_t *first = ws->buf, *last = first + total, *next = last + total;
    const uint32_t **row_at = (const uint32_t **)(next + total);
    double *weight_of = (double *)(row_at + total);
    int64_t n = 0, i = 0;
    for (int s = 0; s < n_senders && status == NR_OK; s++) {
        const uint32_t *ids = msg + offsets[s], *grad = ids + 2 * counts[s];
        for (int64_t r = 0; r < counts[s]; r++, i++) {
            int64_t id;
            memcpy(&id, ids + 2 * r, sizeof id);
            if (id < 0 || id >= table_rows) {
                status = NR_ERR_INDEX;
                break;
            }
            row_at[i] = grad + r * cols;
            weight_of[i] = weights[s];
            next[i] = -1;
            int64_t slot;
            if (dense) {
                slot = ws->slot_of[id];
                if (slot < 0)
                    ws->slot_of[id] = (int32_t)n;
            } else {
                slot = rs_map_find_or_add(&map, id, n);
            }
            if (slot < 0) {
                first[n] = last[n] = i;
                out_ids[n++] = id;
            } else {
                next[last[slot]] = i;
                last[slot] = i;
            }
        }
    }
    if (dense) /* the index is all -1 again for the next call */
        for (int64_t k = 0; k < n; k++)
            ws->slot_of[out_ids[k]] = -1;
    else
        rs_map_clear(&map, out_ids, n);
    for (int64_t k = 0; k < n && status == NR_OK; k++) {
        float *out = out_grad + k * cols;
        const int64_t j = first[k];
        const uint32_t *g = row_at[j]; /* float bits */
        if (next[j] < 0 && weight_of[j] == 1.0) { /* sent once, unweighted: g itself */
            memcpy(out, g, sizeof *out * (size_t)cols);
            continue;
        }
        if (next[j] < 0) { /* sent once: w * g rounded once, as the chain's sum would be */
            for (int64_t c = 0; c < cols; c++)
                out[c] = (float)(weight_of[j] * (double)rs_float(g + c));
            continue;
        }
        double acc[64];
        for (int64_t c0 = 0; c0 < cols; c0 += 64) {
            const int64_t m = cols - c0 < 64 ? cols - c0 : 64;
            for (int64_t c = 0; c < m; c++)
                acc[c] = weight_of[j] * (double)rs_float(g + c0 + c);
            for (int64_t t = next[j]; t >= 0; t = next[t]) {
                const uint32_t *h = row_at[t];
                for (int64_t c = 0; c < m; c++)
                    acc[c] += weight_of[t] * (double)rs_float(h + c0 + c);
            }
            for (int64_t c = 0; c < m; c++)
                out[c0 + c] = (float)acc[c];
        }
    }
    if (status == NR_OK)
        *n_out = n;
    nr_rowsum_ws_free(&local);
    return status;
}

enum nr_status nr_rowsum(const uint32_t *msg, int64_t msg_words, const int64_t *offsets,
                         const int64_t *counts, int n_senders, const double *weights, int64_t cols,
                         int64_t table_rows, int64_t *out_ids, float *out_grad, int64_t *n_out)
{
    return nr_rowsum_ws(NULL, msg, msg_words, offsets, counts, n_senders, weights, cols, table_rows,
                        out_ids, out_grad, n_out);
}
