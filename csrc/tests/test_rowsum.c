/*
 * test_rowsum.c: standalone tests of nr_rowsum_ws (no Python): a workspace
 * reused from call to call, over the dense row index and the hash of tables
 * too large for it, gives the bits of a fresh nr_rowsum every time, also after
 * a call that stopped on a bad id.
 *
 *   gcc -std=c11 -Wall -Wextra -Werror -fsanitize=address,undefined \
 *       -Icsrc/include csrc/tests/test_rowsum.c csrc/src/rowsum.c -o test_rowsum \
 *       && ./test_rowsum
 *
 * Exits 0 when every check passes, 1 otherwise (failures go to stderr).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "neurec/nr_rowsum.h"

#include "harness.h"

enum { SENDERS = 3, MAX_ROWS = 200, COLS = 5, WIDTH = COLS + 2 };

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

/* A message of SENDERS blocks of distinct ids below id_range (some shared by
 * several senders: a small range), each with COLS float gradients. */
static int64_t make_message(uint32_t *msg, int64_t *offsets, int64_t *counts, int64_t id_range,
                            int64_t base)
{
    int64_t at = 0;
    for (int s = 0; s < SENDERS; s++) {
        const int64_t n = (int64_t)(xorshift64s(&rng_state) % MAX_ROWS);
        offsets[s] = at;
        counts[s] = n;
        for (int64_t r = 0; r < n; r++) {
            int64_t id = base + r * (id_range / MAX_ROWS) +
                         (int64_t)(xorshift64s(&rng_state) % (uint64_t)(id_range / MAX_ROWS));
            memcpy(msg + at + 2 * r, &id, sizeof id);
            for (int c = 0; c < COLS; c++) {
                float g = (float)((int64_t)(xorshift64s(&rng_state) % 2001) - 1000) / 7.0f;
                memcpy(msg + at + 2 * n + r * COLS + c, &g, sizeof g);
            }
        }
        at += n * WIDTH;
    }
    return at;
}

static void test_reused_workspace(int64_t table_rows)
{
    static uint32_t msg[SENDERS * MAX_ROWS * WIDTH];
    static int64_t ids_ws[SENDERS * MAX_ROWS], ids_ref[SENDERS * MAX_ROWS];
    static float g_ws[SENDERS * MAX_ROWS * COLS], g_ref[SENDERS * MAX_ROWS * COLS];
    const double weights[SENDERS] = {0.25, 0.5, 0.125};
    struct nr_rowsum_ws ws = {0};
    for (int call = 0; call < 6; call++) {
        int64_t offsets[SENDERS], counts[SENDERS], n_ws = -1, n_ref = -2;
        const int64_t words = make_message(msg, offsets, counts, 4 * MAX_ROWS, table_rows / 2);
        if (call == 3) { /* a bad id last: the call stops, and must leave ws clean */
            int64_t last = counts[SENDERS - 1] ? counts[SENDERS - 1] : 0;
            if (last) {
                int64_t bad = table_rows;
                memcpy(msg + offsets[SENDERS - 1] + 2 * (last - 1), &bad, sizeof bad);
                CHECK(nr_rowsum_ws(&ws, msg, words, offsets, counts, SENDERS, weights, COLS,
                                   table_rows, ids_ws, g_ws, &n_ws) == NR_ERR_INDEX);
                continue;
            }
        }
        CHECK(nr_rowsum_ws(&ws, msg, words, offsets, counts, SENDERS, weights, COLS, table_rows,
                           ids_ws, g_ws, &n_ws) == NR_OK);
        CHECK(nr_rowsum(msg, words, offsets, counts, SENDERS, weights, COLS, table_rows, ids_ref,
                        g_ref, &n_ref) == NR_OK);
        CHECK(n_ws == n_ref);
        if (n_ws == n_ref && n_ws > 0) {
            CHECK(memcmp(ids_ws, ids_ref, (size_t)n_ws * sizeof *ids_ws) == 0);
            CHECK(memcmp(g_ws, g_ref, (size_t)(n_ws * COLS) * sizeof *g_ws) == 0);
        }
    }
    if (table_rows <= NR_ROWSUM_DENSE_ROWS) { /* the dense index is all -1 again */
        int64_t dirty = 0;
        for (int64_t r = 0; r < ws.slot_rows; r++)
            dirty += ws.slot_of[r] != -1;
        CHECK(dirty == 0 && ws.map_cap == 0);
    } else { /* so is every key of the hash */
        int64_t dirty = 0;
        for (uint64_t h = 0; h < ws.map_cap; h++)
            dirty += ws.keys[h] != -1;
        CHECK(dirty == 0 && ws.map_cap > 0 && ws.slot_rows == 0);
    }
    nr_rowsum_ws_free(&ws);
    CHECK(ws.buf == NULL && ws.keys == NULL && ws.slot_of == NULL);
}

int main(void)
{
    test_reused_workspace(4096);                 /* the dense index */
    test_reused_workspace((int64_t)1 << 40);     /* the hash */
    return nr_test_report("test_rowsum");
}
