"""Tests for neurec.data splits and sample_negatives."""
import numpy as np
import pytest

from neurec.data import (
    InteractionLog,
    InteractionMatrix,
    leave_one_out,
    random_holdout,
    sample_negatives,
    time_split,
)


def pairs(log):
    return list(zip(log.users.tolist(), log.items.tolist()))


def random_log(seed=0, n=4000, n_users=60, n_items=200, with_time=True):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n)
    items = rng.integers(0, n_items, n)
    times = rng.integers(0, 50, n) if with_time else None  # many ties
    return InteractionLog(users, items, times)


# ----------------------------------------------------------- leave_one_out
def test_leave_one_out_hand_built():
    #                 row: 0   1   2   3   4   5   6   7
    log = InteractionLog(users=[0, 0, 0, 1, 1, 2, 1, 0],
                         items=[10, 11, 12, 20, 21, 30, 22, 13],
                         timestamps=[5, 9, 7, 3, 8, 1, 8, 2])
    train, test = leave_one_out(log)
    # user 0: latest is row 1 (t=9); user 1: rows 4 and 6 tie at t=8 -> later row 6;
    # user 2 has a single interaction: train only.
    assert pairs(test) == [(0, 11), (1, 22)]
    assert test.timestamps.tolist() == [9, 8]
    assert pairs(train) == [(0, 10), (0, 12), (1, 20), (1, 21), (2, 30), (0, 13)]  # log order


def test_leave_one_out_properties_on_random_log():
    log = random_log()
    train, test = leave_one_out(log)
    users, counts = np.unique(log.users, return_counts=True)
    assert test.users.tolist() == users[counts >= 2].tolist()  # one per user, sorted
    latest = {}
    for u, t in zip(log.users.tolist(), log.timestamps.tolist()):
        latest[u] = max(latest.get(u, t), t)
    assert all(t == latest[u] for u, t in zip(test.users.tolist(), test.timestamps.tolist()))
    assert not set(pairs(train)) & set(pairs(test))  # no leakage
    assert set(train.users.tolist()) == set(users.tolist())  # every user keeps train rows
    assert len(train) + len(test) <= len(log)


def test_leave_one_out_drops_train_copies_of_the_test_pair():
    log = InteractionLog([0, 0, 0], [5, 6, 5], [1, 2, 3])
    train, test = leave_one_out(log)
    assert pairs(test) == [(0, 5)]
    assert pairs(train) == [(0, 6)]


def test_leave_one_out_without_timestamps_is_seeded():
    log = random_log(with_time=False)
    a_train, a_test = leave_one_out(log, seed=1)
    b_train, b_test = leave_one_out(log, seed=1)
    assert pairs(a_test) == pairs(b_test)
    _, c_test = leave_one_out(log, seed=2)
    assert pairs(a_test) != pairs(c_test)
    assert not set(pairs(a_train)) & set(pairs(a_test))


def test_leave_one_out_accepts_tuples_and_raw_ids():
    train, test = leave_one_out((["b", "a", "b"], ["x", "y", "z"], [1, 2, 3]))
    assert pairs(test) == [("b", "z")] and pairs(train) == [("b", "x"), ("a", "y")]
    with pytest.raises(TypeError, match="InteractionLog"):
        leave_one_out("not a log")


# ---------------------------------------------------------- random_holdout
def test_random_holdout_counts_per_user():
    log = InteractionLog(users=[0] * 10 + [1] * 3 + [2] * 2 + [3], items=list(range(16)))
    train, test = random_holdout(log, test_fraction=0.3, seed=0)
    test_counts = np.bincount(test.users, minlength=4).tolist()
    # round-half-up(0.3 * n), at most n - 1: 10 -> 3, 3 -> 1, 2 -> 1, 1 -> 0
    assert test_counts == [3, 1, 1, 0]
    assert np.bincount(train.users, minlength=4).tolist() == [7, 2, 1, 1]
    assert sorted(pairs(train) + pairs(test)) == sorted(pairs(log))


def test_random_holdout_is_seeded_and_leak_free():
    log = random_log(seed=3)
    a = random_holdout(log, 0.25, seed=7)
    b = random_holdout(log, 0.25, seed=7)
    c = random_holdout(log, 0.25, seed=8)
    assert pairs(a[1]) == pairs(b[1]) and pairs(a[1]) != pairs(c[1])
    assert not set(pairs(a[0])) & set(pairs(a[1]))
    assert set(a[0].users.tolist()) == set(log.users.tolist())
    for bad in (0, 1, -0.1, "0.2"):
        with pytest.raises(ValueError, match="test_fraction"):
            random_holdout(log, bad)


# -------------------------------------------------------------- time_split
def test_time_split_cutoff_and_fraction():
    log = InteractionLog(users=[0, 1, 2, 0, 1, 2], items=[1, 2, 3, 4, 5, 6],
                         timestamps=[10, 20, 30, 40, 40, 60])
    train, test = time_split(log, cutoff=40)
    assert train.timestamps.tolist() == [10, 20, 30]
    assert test.timestamps.tolist() == [40, 40, 60]
    # 1/3 of 6 rows = 2 latest, but the 2nd latest (t=40) ties with another: both go to test
    train, test = time_split(log, test_fraction=1 / 3)
    assert test.timestamps.tolist() == [40, 40, 60] and len(train) == 3
    train, test = time_split(log, test_fraction=0.01)
    assert len(test) == 0 and len(train) == 6
    train, test = time_split(log, cutoff=np.datetime64(50, "s"))
    assert test.timestamps.tolist() == [60]


def test_time_split_drops_repeated_pairs_from_test():
    log = InteractionLog([0, 0, 1], [7, 7, 8], [1, 5, 6])
    train, test = time_split(log, cutoff=5)
    assert pairs(train) == [(0, 7)] and pairs(test) == [(1, 8)]


def test_time_split_errors():
    log = InteractionLog([0], [1], [5])
    with pytest.raises(ValueError, match="exactly one"):
        time_split(log)
    with pytest.raises(ValueError, match="exactly one"):
        time_split(log, cutoff=1, test_fraction=0.5)
    with pytest.raises(ValueError, match="timestamps"):
        time_split(InteractionLog([0], [1]), cutoff=1)


# -------------------------------------------------------- sample_negatives
def test_sample_negatives_avoid_seen_and_excluded_items():
    rng = np.random.default_rng(0)
    n_users, n_items = 40, 300
    users = rng.integers(0, n_users, 3000)
    items = rng.integers(0, n_items, 3000)
    m = InteractionMatrix.from_arrays(users, items, shape=(n_users, n_items))
    seen = set(zip(users.tolist(), items.tolist()))
    query = np.arange(n_users).repeat(3)
    exclude = rng.integers(0, n_items, (query.size, 2))
    neg = sample_negatives(m, query, num_negatives=99, seed=1, exclude_items=exclude)
    assert neg.shape == (query.size, 99) and neg.dtype == np.int64
    for u, row, ex in zip(query.tolist(), neg.tolist(), exclude.tolist()):
        assert len(set(row)) == 99  # distinct
        assert not any((u, i) in seen for i in row)
        assert not set(row) & set(ex)
    again = sample_negatives(m, query, num_negatives=99, seed=1, exclude_items=exclude)
    np.testing.assert_array_equal(neg, again)
    other = sample_negatives(m, query, num_negatives=99, seed=2, exclude_items=exclude)
    assert not np.array_equal(neg, other)


def test_sample_negatives_dense_user_gets_exactly_the_complement():
    n_items = 30
    users = np.r_[np.zeros(25, int), np.ones(2, int)]
    items = np.r_[np.arange(25), [0, 1]]
    m = InteractionMatrix.from_arrays(users, items, shape=(2, n_items))
    neg = sample_negatives(m, [0, 1], num_negatives=4, exclude_items=[29, 29])
    assert sorted(neg[0].tolist()) == [25, 26, 27, 28]
    assert not set(neg[1].tolist()) & {0, 1, 29}
    with pytest.raises(ValueError, match="user 0"):
        sample_negatives(m, [1, 0], num_negatives=5, exclude_items=[29, 29])


@pytest.mark.parametrize("n_items, rows", [(12, 6000), (200, 20000)],
                         ids=["complement-path", "rejection-path"])
def test_sample_negatives_is_roughly_uniform(n_items, rows):
    m = InteractionMatrix.from_arrays([0, 0], [0, 1], shape=(1, n_items))
    neg = sample_negatives(m, np.zeros(rows, dtype=np.int64), num_negatives=3, seed=4)
    counts = np.bincount(neg.ravel(), minlength=n_items)
    assert counts[:2].tolist() == [0, 0]
    expected = rows * 3 / (n_items - 2)
    assert np.all(np.abs(counts[2:] - expected) < 6 * np.sqrt(expected))
    first = np.bincount(neg[:, 0], minlength=n_items)[2:]  # order within a row is random too
    assert np.all(np.abs(first - rows / (n_items - 2)) < 6 * np.sqrt(rows / (n_items - 2)))


def test_sample_negatives_validation():
    m = InteractionMatrix.from_arrays([0], [0], shape=(2, 5))
    with pytest.raises(ValueError, match="out of range"):
        sample_negatives(m, [2], 1)
    with pytest.raises(ValueError, match="exclude_items"):
        sample_negatives(m, [0, 1], 1, exclude_items=[1, 2, 3])
    with pytest.raises(ValueError, match="out of range"):
        sample_negatives(m, [0], 1, exclude_items=[5])
    with pytest.raises(ValueError, match="num_negatives"):
        sample_negatives(m, [0], -1)
    with pytest.raises(TypeError, match="InteractionMatrix"):
        sample_negatives(np.eye(2), [0], 1)
    assert sample_negatives(m, [0, 1], 0).shape == (2, 0)
    assert sample_negatives(m, [], 3).shape == (0, 3)


def test_ncf_protocol_end_to_end():
    log = random_log(seed=9, n=3000, n_users=30, n_items=400)
    train, test = leave_one_out(log)
    m = train.to_matrix(shape=(30, 400))
    neg = sample_negatives(m, test.users, 99, exclude_items=test.items)
    assert not (neg == test.items[:, None]).any()
    assert not m.contains(test.users[:, None], neg).any()
    assert not m.contains(test.users, test.items).any()  # test positives unseen in train
