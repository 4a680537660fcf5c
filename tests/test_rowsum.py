"""``_core.sum_rows``: the merge step of a data-parallel fit's gradient exchange
(csrc/src/rowsum.c), against a NumPy reference, and its argument checks."""
import numpy as np
import pytest

from neurec import _core


def _message(blocks):
    """Each sender's (ids, grads) as the exchange packs them: the ids' 32-bit words, then
    the gradients' bits. Returns (message, offsets, counts)."""
    words, offsets, at = [], [], 0
    for ids, grad in blocks:
        w = np.concatenate([np.asarray(ids, np.int64).view(np.uint32),
                            np.asarray(grad, np.float32).reshape(-1).view(np.uint32)])
        words.append(w)
        offsets.append(at)
        at += w.size
    msg = np.concatenate(words) if words else np.empty(0, np.uint32)
    return (msg.view(np.int32), np.array(offsets, np.int64),
            np.array([len(ids) for ids, _ in blocks], np.int64))


def _reference(blocks, weights, cols):
    """Distinct ids in order of first appearance; each sum in float64 in sender order."""
    order, acc = [], {}
    for (ids, grad), w in zip(blocks, weights):
        for i, g in zip(ids, np.asarray(grad, np.float32).reshape(len(ids), cols)):
            if i not in acc:
                order.append(i)
                acc[i] = w * g.astype(np.float64)
            else:
                acc[i] = acc[i] + w * g.astype(np.float64)
    return (np.array(order, np.int64),
            np.array([acc[i] for i in order], np.float64).reshape(len(order), cols).astype(np.float32))


def _run(blocks, weights, cols, table_rows=1 << 40):
    msg, offsets, counts = _message(blocks)
    total = int(counts.sum())
    ids, grad = np.empty(total, np.int64), np.empty((total, cols), np.float32)
    n = _core.sum_rows(msg, offsets, counts, np.asarray(weights, np.float64), table_rows,
                       ids, grad)
    return ids[:n], grad[:n]


@pytest.mark.parametrize("cols", [0, 1, 8, 63, 64, 65, 130])
@pytest.mark.parametrize("senders", [1, 2, 3, 5])
def test_matches_the_reference(cols, senders):
    rng = np.random.default_rng(cols * 10 + senders)
    blocks = []
    for _ in range(senders):
        n = int(rng.integers(0, 40))
        blocks.append((rng.choice(60, n, replace=False), rng.normal(size=(n, cols)) * 1e3))
    weights = rng.random(senders)
    ids, grad = _run(blocks, weights, cols)
    want_ids, want = _reference(blocks, weights, cols)
    np.testing.assert_array_equal(ids, want_ids)
    assert grad.tobytes() == want.tobytes()  # the same bits, not merely close


def test_unit_weights_copy_rows_sent_once_bit_for_bit():
    """A routed fit's ranks add their gradients unweighted: a row one sender sent is its
    gradient as it is (-0.0, subnormals, infinities too); rows sent twice are summed."""
    special = np.array([-0.0, 1e-42, -np.inf, 3.0e38, 1.0 / 3.0], np.float32)
    blocks = [([4, 9], np.stack([special, special[::-1]])), ([9, 2], np.stack([special, -special]))]
    ids, grad = _run(blocks, [1.0, 1.0], 5)
    want_ids, want = _reference(blocks, [1.0, 1.0], 5)
    np.testing.assert_array_equal(ids, want_ids)
    assert grad.tobytes() == want.tobytes()
    assert grad[0].tobytes() == special.tobytes()


def test_sums_in_sender_order_in_double():
    # 1 + 1e-8 - 1 rounds to 0 in float32 and survives in float64
    blocks = [([7], [[1.0]]), ([7], [[1e-8]]), ([7], [[-1.0]])]
    ids, grad = _run(blocks, [1.0, 1.0, 1.0], 1)
    assert ids.tolist() == [7] and grad[0, 0] == np.float32(1e-8)


def test_special_values_and_empty_senders():
    blocks = [([3, 1], [[np.inf], [1.0]]), ([], np.empty((0, 1))), ([1, 3], [[np.nan], [2.0]])]
    ids, grad = _run(blocks, [0.5, 0.25, 0.25], 1)
    assert ids.tolist() == [3, 1]
    assert grad[0, 0] == np.inf and np.isnan(grad[1, 0])


def test_no_rows():
    ids, grad = _run([([], np.empty((0, 4)))] * 2, [0.5, 0.5], 4)
    assert ids.size == 0 and grad.shape == (0, 4)


def test_bad_arguments():
    msg, offsets, counts = _message([([1, 2], np.ones((2, 3)))])
    ids, grad = np.empty(2, np.int64), np.empty((2, 3), np.float32)
    one = np.ones(1)
    with pytest.raises(IndexError, match="outside \\[0, table_rows = 2\\)"):
        _core.sum_rows(msg, offsets, counts, one, 2, ids, grad)
    bad = _message([([-1, 0], np.ones((2, 3)))])
    with pytest.raises(IndexError, match="row id"):
        _core.sum_rows(bad[0], bad[1], bad[2], one, 10, ids, grad)
    with pytest.raises(ValueError, match="outside message"):
        _core.sum_rows(msg[:-1], offsets, counts, one, 10, ids, grad)
    with pytest.raises(ValueError, match="outside message"):
        _core.sum_rows(msg, offsets + 1, counts, one, 10, ids, grad)
    with pytest.raises(ValueError, match="outside message"):
        _core.sum_rows(msg, offsets, -counts, one, 10, ids, grad)
    with pytest.raises(ValueError, match="one entry per sender"):
        _core.sum_rows(msg, offsets, counts, np.ones(2), 10, ids, grad)
    with pytest.raises(ValueError, match="sum\\(counts\\) = 2 rows"):
        _core.sum_rows(msg, offsets, counts, one, 10, ids[:1], grad[:1])
    with pytest.raises(TypeError, match="out_grad"):
        _core.sum_rows(msg, offsets, counts, one, 10, ids, grad.astype(np.float64))
