/*
 * nr_rowsum.h: the sum of sparse gradient rows sent by several processes, the
 * merge step of a data-parallel fit's gradient exchange
 * (neurec/distribution/_exchange.py).
 *
 * Every process sends the rows of an embedding table that its slice of the
 * batch touched as 32-bit words: the n row ids (int64, in the machine's byte
 * order: 2n words), then their n x cols gradients' float32 bits. Every process then
 * merges the same gathered bytes with the same code, so every process gets the
 * same bits: each distinct id once, in order of first appearance (sender 0's
 * rows first), its gradient sum_s weights[s] * g_s accumulated in double in
 * sender order and rounded to float once.
 *
 * Thread safety: no shared state; distinct calls may run at the same time.
 */
#ifndef NR_ROWSUM_H
#define NR_ROWSUM_H

#include <stddef.h>
#include <stdint.h>

#include "neurec/nr_status.h"

/* Merge n_senders blocks of msg (msg_words 32-bit words): sender s's block
 * starts at word offsets[s] and holds counts[s] rows (counts[s] * (cols + 2)
 * words: the ids, then the gradients). Writes
 * the distinct ids to out_ids and their summed gradients to out_grad
 * (row-major, n_out x cols); both must hold sum(counts) rows. Returns NR_OK,
 * NR_ERR_SHAPE for a block outside msg or a negative count, NR_ERR_INDEX for
 * an id outside [0, table_rows) (nothing useful is then in the outputs), or
 * NR_ERR_NOMEM. */
enum nr_status nr_rowsum(const uint32_t *msg, int64_t msg_words, const int64_t *offsets,
                         const int64_t *counts, int n_senders, const double *weights, int64_t cols,
                         int64_t table_rows, int64_t *out_ids, float *out_grad, int64_t *n_out);

/* Scratch that nr_rowsum_ws reuses from call to call (zero-initialise it; one
 * thread at a time): the chain buffers and, for tables of at most
 * NR_ROWSUM_DENSE_ROWS rows, an index from row id to output slot (4 bytes per
 * row of the largest table merged, all -1 between calls) in place of a hash. */
struct nr_rowsum_ws {
    int32_t *slot_of;
    int64_t slot_rows;
    int64_t *keys, *slots; /* the hash of larger tables: every key -1 between calls */
    uint64_t map_cap;
    void *buf;
    size_t buf_bytes;
};

#define NR_ROWSUM_DENSE_ROWS ((int64_t)1 << 25)

/* nr_rowsum with ws's scratch (ws NULL: nr_rowsum itself). Same results. */
enum nr_status nr_rowsum_ws(struct nr_rowsum_ws *ws, const uint32_t *msg, int64_t msg_words,
                            const int64_t *offsets, const int64_t *counts, int n_senders,
                            const double *weights, int64_t cols, int64_t table_rows,
                            int64_t *out_ids, float *out_grad, int64_t *n_out);

/* Free ws's buffers (it is zero again, ready for reuse). */
void nr_rowsum_ws_free(struct nr_rowsum_ws *ws);

#endif /* NR_ROWSUM_H */
