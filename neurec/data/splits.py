"""Train/test splits of interaction logs and fixed negative samples for evaluation.

Every split takes an `InteractionLog` (or a tuple ``(users, items[,
timestamps[, values]])``) and returns ``(train_log, test_log)``. Ids may be raw
or encoded. No (user, item) pair ever appears in both parts: for
`leave_one_out` and `random_holdout`, train rows repeating a test pair are
dropped; for `time_split`, test rows repeating a train pair are dropped.
Call `InteractionLog.to_implicit` first to collapse repeats yourself.

The NCF protocol (He et al., 2017)::

    train, test = leave_one_out(log)
    matrix = train.to_matrix(shape=(n_users, n_items))
    negatives = sample_negatives(matrix, test.users, 99, exclude_items=test.items)
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from neurec.data._arrays import _group_codes, _pair_keys
from neurec.data.interactions import InteractionLog, InteractionMatrix

__all__ = ["leave_one_out", "random_holdout", "time_split", "sample_negatives"]


def _as_log(log: Any) -> InteractionLog:
    if isinstance(log, InteractionLog):
        return log
    if isinstance(log, (tuple, list)) and 2 <= len(log) <= 4:
        return InteractionLog.from_arrays(*log)
    raise TypeError("`log` must be an InteractionLog or a tuple (users, items[, timestamps"
                    f"[, values]]); got {type(log).__name__}.")


def _drop_shared_pairs(log: InteractionLog, keep_mask: np.ndarray, other_mask: np.ndarray,
                       ucode: Optional[np.ndarray] = None) -> np.ndarray:
    """Clear ``keep_mask`` rows whose (user, item) pair also occurs under ``other_mask``
    (``ucode``: the caller's ``_group_codes(log.users)[0]``, if it has them)."""
    if not other_mask.any():
        return keep_mask
    keys = _pair_keys(log.users, log.items, ucode)
    return keep_mask & ~np.isin(keys, keys[other_mask])


def leave_one_out(log: Any, seed: int = 0) -> Tuple[InteractionLog, InteractionLog]:
    """Hold out each user's latest interaction: the NCF evaluation protocol.

    The test row of a user is the one with the largest timestamp; among rows
    sharing that timestamp, the one **later in the log** wins. Without
    timestamps a random row per user is held out (drawn with ``seed``). Users
    with a single interaction stay in train only and have no test row. Train
    rows with the same (user, item) pair as their user's test row are dropped.

    Args:
        log: An InteractionLog or a tuple ``(users, items[, timestamps])``.
        seed: Seed of the random choice, used only when there are no timestamps.

    Returns:
        ``(train_log, test_log)``: train rows keep their log order; the test
        log has one row per user (with two or more interactions), ordered by user id.

    Raises:
        TypeError: If ``log`` is not a log or a tuple of arrays.

    Example:
        >>> from neurec.data import InteractionLog, leave_one_out
        >>> log = InteractionLog.from_arrays(["ann", "ann", "bob", "bob", "bob"],
        ...                                  ["tea", "mug", "tea", "pen", "ink"],
        ...                                  timestamps=[1, 2, 1, 3, 2])
        >>> train, test = leave_one_out(log)
        >>> list(zip(test.users.tolist(), test.items.tolist()))   # each user's latest
        [('ann', 'mug'), ('bob', 'pen')]
        >>> train.items.tolist()
        ['tea', 'tea', 'ink']
    """
    log = _as_log(log)
    n = len(log)
    if n == 0:
        return log._take(np.arange(0)), log._take(np.arange(0))
    ucode, _ = _group_codes(log.users)
    rows = np.arange(n)
    if log.timestamps is None:
        order = np.lexsort((np.random.default_rng(seed).permutation(n), ucode))
    else:
        order = np.lexsort((rows, log.timestamps, ucode))
    su = ucode[order]
    is_last = np.r_[su[1:] != su[:-1], True]
    is_first = np.r_[True, su[1:] != su[:-1]]
    test_rows = order[is_last & ~is_first]  # groups of size >= 2, sorted by user
    test_mask = np.zeros(n, dtype=bool)
    test_mask[test_rows] = True
    train_mask = _drop_shared_pairs(log, ~test_mask, test_mask, ucode)
    return log._take(np.flatnonzero(train_mask)), log._take(test_rows)


def random_holdout(log: Any, test_fraction: float = 0.2,
                   seed: int = 0) -> Tuple[InteractionLog, InteractionLog]:
    """Hold out a random share of each user's interactions.

    A user with ``n`` interactions gets ``round(test_fraction * n)`` test rows
    (halves round up), at most ``n - 1``, so every user keeps at least one
    training row; users with a single interaction stay in train only.

    Args:
        log: An InteractionLog or a tuple ``(users, items[, timestamps])``.
        test_fraction: Share of each user's rows to hold out, in (0, 1).
        seed: Seed of the random choice.

    Returns:
        ``(train_log, test_log)``, both in log order.

    Raises:
        ValueError: If ``test_fraction`` is not in (0, 1).

    Example:
        >>> from neurec.data import InteractionLog, random_holdout
        >>> log = InteractionLog.from_arrays(["ann", "ann", "bob", "bob", "bob"],
        ...                                  ["tea", "mug", "tea", "pen", "ink"])
        >>> train, test = random_holdout(log, test_fraction=0.5, seed=0)
        >>> len(train), len(test)             # ann 1 of 2, bob round(1.5) = 2 of 3 held out
        (2, 3)
    """
    log = _as_log(log)
    if not (isinstance(test_fraction, (int, float, np.floating)) and 0 < test_fraction < 1):
        raise ValueError(f"`test_fraction` must be a number in (0, 1); got {test_fraction!r}.")
    n = len(log)
    if n == 0:
        return log._take(np.arange(0)), log._take(np.arange(0))
    ucode, n_groups = _group_codes(log.users)
    counts = np.bincount(ucode, minlength=n_groups)
    n_test = np.minimum(np.floor(test_fraction * counts + 0.5).astype(np.int64),
                        np.maximum(counts - 1, 0))
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(n), ucode))
    su = ucode[order]
    group_start = np.cumsum(counts) - counts
    rank = np.arange(n) - group_start[su]
    test_mask = np.zeros(n, dtype=bool)
    test_mask[order[rank < n_test[su]]] = True
    train_mask = _drop_shared_pairs(log, ~test_mask, test_mask, ucode)
    return log._take(np.flatnonzero(train_mask)), log._take(np.flatnonzero(test_mask))


def time_split(log: Any, cutoff: Optional[Any] = None,
               test_fraction: Optional[float] = None) -> Tuple[InteractionLog, InteractionLog]:
    """Split globally by time: everything at or after a cutoff is test.

    Give exactly one of ``cutoff`` and ``test_fraction``. With
    ``test_fraction``, the cutoff is the timestamp of the
    ``round(test_fraction * n)``-th latest row; rows tied with it also go to
    test, so the test share can be slightly larger. Test rows repeating a
    (user, item) pair seen in train are dropped. Test users or items absent
    from train (cold start) are kept: filter them if your model cannot score them.

    Args:
        log: An InteractionLog (or tuple) with timestamps.
        cutoff: Timestamp (int, same unit as the log, or ``np.datetime64``);
            rows with ``timestamp >= cutoff`` are test.
        test_fraction: Share of rows to put in test, in (0, 1).

    Returns:
        ``(train_log, test_log)``, both in log order.

    Raises:
        ValueError: If the log has no timestamps, or not exactly one of
            ``cutoff`` / ``test_fraction`` is given, or ``test_fraction`` is
            not in (0, 1).

    Example:
        >>> from neurec.data import InteractionLog, time_split
        >>> log = InteractionLog.from_arrays(["ann", "ann", "bob", "bob", "bob"],
        ...                                  ["tea", "mug", "tea", "pen", "ink"],
        ...                                  timestamps=[1, 2, 1, 3, 2])
        >>> train, test = time_split(log, cutoff=2)
        >>> train.items.tolist(), test.items.tolist()
        (['tea', 'tea'], ['mug', 'pen', 'ink'])
    """
    log = _as_log(log)
    if log.timestamps is None:
        raise ValueError("time_split needs a log with timestamps; use random_holdout for a "
                         "log without them.")
    if (cutoff is None) == (test_fraction is None):
        raise ValueError("Pass exactly one of `cutoff` and `test_fraction`.")
    ts = log.timestamps
    n = len(log)
    if cutoff is not None:
        if isinstance(cutoff, np.datetime64):
            cutoff = cutoff.astype("datetime64[s]").astype(np.int64)
        try:
            cutoff = int(cutoff)
        except (TypeError, ValueError):
            raise TypeError(f"`cutoff` must be an integer timestamp or np.datetime64; got "
                            f"{cutoff!r}.") from None
        test_mask = ts >= cutoff
    else:
        if not (isinstance(test_fraction, (int, float, np.floating)) and 0 < test_fraction < 1):
            raise ValueError(f"`test_fraction` must be a number in (0, 1); got "
                             f"{test_fraction!r}.")
        k = int(np.floor(test_fraction * n + 0.5))
        if k == 0:
            test_mask = np.zeros(n, dtype=bool)
        else:
            threshold = np.partition(ts, n - k)[n - k]
            test_mask = ts >= threshold
    train_mask = ~test_mask
    test_mask = _drop_shared_pairs(log, test_mask, train_mask)
    return log._take(np.flatnonzero(train_mask)), log._take(np.flatnonzero(test_mask))


def sample_negatives(train_matrix: InteractionMatrix, users: Any, num_negatives: int = 99,
                     seed: int = 0, exclude_items: Any = None) -> np.ndarray:
    """Draw distinct items each user has not interacted with, uniformly.

    Row ``r`` of the result holds ``num_negatives`` distinct items outside
    ``train_matrix.user_items(users[r])`` and outside ``exclude_items[r]``,
    in random order. Sampling is vectorised rejection sampling; users who
    have seen most of the catalogue are sampled from their complement
    directly. The same inputs and seed give the same result.

    Args:
        train_matrix: The interactions to avoid (an InteractionMatrix).
        users: 1-D integer user ids, one row of output each.
        num_negatives: Negatives per row.
        seed: Seed of the random generator.
        exclude_items: Optional extra items to avoid per row, shape ``(n,)`` or
            ``(n, k)``; typically the held-out test items.

    Returns:
        An int64 array of shape ``(len(users), num_negatives)``.

    Raises:
        ValueError: If a user has fewer allowed items than ``num_negatives``
            (the message names the user), or ids are out of range.
        TypeError: If ``train_matrix`` is not an InteractionMatrix.

    Example:
        >>> from neurec.data import InteractionMatrix, sample_negatives
        >>> seen = InteractionMatrix.from_arrays([0, 0, 1], [0, 1, 2], shape=(2, 6))
        >>> negatives = sample_negatives(seen, [0, 1], num_negatives=3, seed=0)
        >>> negatives.shape
        (2, 3)
        >>> bool(seen.contains([[0], [1]], negatives).any())     # none was seen
        False
    """
    if not isinstance(train_matrix, InteractionMatrix):
        raise TypeError("`train_matrix` must be an InteractionMatrix; build one with "
                        "InteractionMatrix.from_arrays or InteractionMatrix.from_scipy.")
    if isinstance(num_negatives, bool) or not isinstance(num_negatives, (int, np.integer)) \
            or num_negatives < 0:
        raise ValueError(f"`num_negatives` must be a non-negative integer; got "
                         f"{num_negatives!r}.")
    k = int(num_negatives)
    n_users, n_items = train_matrix.shape
    users = np.asarray(users)
    if users.ndim != 1:
        raise ValueError(f"`users` must be 1-D; got shape {users.shape}.")
    if users.size and users.dtype.kind not in "iu":
        raise TypeError(f"`users` must be integer ids; got dtype {users.dtype}.")
    users = users.astype(np.int64)
    n = users.size
    if n and (users.min() < 0 or users.max() >= n_users):
        bad = int(users[(users < 0) | (users >= n_users)][0])
        raise ValueError(f"`users` has id {bad}, out of range for {n_users} users.")
    excl = _exclusion_keys(train_matrix, users, exclude_items)
    out = np.empty((n, k), dtype=np.int64)
    if n == 0 or k == 0:
        return out
    # Exact number of items each row may draw from.
    extra = np.bincount(excl // max(n_items, 1), minlength=n)
    allowed = n_items - train_matrix.user_counts()[users] - extra
    short = allowed < k
    if short.any():
        r = int(np.argmax(short))
        raise ValueError(f"user {int(users[r])} (row {r}) has only {int(allowed[r])} items it "
                         f"has not interacted with (and not excluded), fewer than "
                         f"num_negatives={k}. Lower num_negatives or drop such users.")
    rng = np.random.default_rng(seed)
    dense = allowed < 2 * k + 16  # users who saw most of the catalogue: sample the complement
    _complement_sample(train_matrix, users, excl, k, rng, np.flatnonzero(dense), out)
    todo = np.flatnonzero(~dense)
    a = allowed[todo].astype(np.float64)
    p = a / n_items  # chance that a draw is allowed
    need = k + k * (k - 1) / (2 * a)  # allowed draws for k distinct ones, on average
    draws = np.ceil(need / p + 3 * np.sqrt(need * (1 - p)) / p + 3 * np.sqrt(need - k)
                    + 1).astype(np.int64)
    while todo.size:
        todo, draws = _rejection_round(train_matrix, users, excl, k, rng, todo, draws, out)
    return out


def _exclusion_keys(matrix: InteractionMatrix, users: np.ndarray,
                    exclude_items: Any) -> np.ndarray:
    """Sorted unique ``row * n_items + item`` of excluded items not already seen."""
    n_items = matrix.shape[1]
    if exclude_items is None:
        return np.empty(0, dtype=np.int64)
    ex = np.asarray(exclude_items)
    if ex.ndim == 1:
        ex = ex[:, None]
    if ex.ndim != 2 or ex.shape[0] != users.size:
        raise ValueError(f"`exclude_items` must have shape (len(users),) or (len(users), k) = "
                         f"({users.size}, k); got {np.shape(exclude_items)}.")
    if ex.size and ex.dtype.kind not in "iu":
        raise TypeError(f"`exclude_items` must be integer ids; got dtype {ex.dtype}.")
    ex = ex.astype(np.int64)
    if ex.size and (ex.min() < 0 or ex.max() >= n_items):
        bad = int(ex[(ex < 0) | (ex >= n_items)][0])
        raise ValueError(f"`exclude_items` has item {bad}, out of range for {n_items} items.")
    if ex.size == 0:
        return np.empty(0, dtype=np.int64)
    rows = np.broadcast_to(np.arange(users.size)[:, None], ex.shape)
    fresh = ~matrix.contains(users[:, None], ex)
    return np.unique(rows[fresh] * n_items + ex[fresh])


def _complement_sample(matrix, users, excl, k, rng, rows, out):
    """Fill ``out[rows]`` by ranking random priorities over each row's allowed items.

    The k allowed items of smallest priority are a uniform random k-subset, and
    sorting them by priority puts them in random order. Rows are processed in
    blocks of about 4M cells.
    """
    n_items = matrix.shape[1]
    block = max(1, (1 << 22) // max(n_items, 1))
    for lo in range(0, rows.size, block):
        r = rows[lo:lo + block]
        u = users[r]
        mask = np.ones((r.size, n_items), dtype=bool)
        starts = matrix.indptr[u]
        lens = matrix.indptr[u + 1] - starts
        pos = np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(lens.sum())
        mask[np.repeat(np.arange(r.size), lens), matrix.indices[pos]] = False
        if excl.size:
            local = np.full(users.size, -1, dtype=np.int64)
            local[r] = np.arange(r.size)
            mine = local[excl // n_items]
            hit = mine >= 0
            mask[mine[hit], excl[hit] % n_items] = False
        priority = rng.random((r.size, n_items))
        priority[~mask] = 2.0  # above every allowed item
        chosen = np.argpartition(priority, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(priority, chosen, axis=1), axis=1)
        out[r] = np.take_along_axis(chosen, order, axis=1)


def _rejection_round(matrix, users, excl, k, rng, todo, draws, out):
    """Fill the rows ``todo`` of ``out`` that get k distinct allowed items out of ``draws``
    uniform draws each; return the rows still to do and their next number of draws.

    Each row keeps its first k distinct allowed draws, in draw order: a uniform
    random k-subset of the allowed items, in random order.
    """
    n_items = matrix.shape[1]
    row = np.repeat(todo, draws)  # ascending
    cand = rng.integers(0, n_items, size=row.size, dtype=np.int64)
    ok = ~matrix.contains(users[row], cand)
    if excl.size:
        key = row * n_items + cand
        pos = np.minimum(np.searchsorted(excl, key), excl.size - 1)
        ok &= excl[pos] != key
    idx = np.flatnonzero(ok)
    r = row[idx]
    counts = np.bincount(r, minlength=users.size)
    rank = np.arange(idx.size) - (np.cumsum(counts) - counts)[r]
    take = (rank < k) & (counts >= k)[r]
    block = cand[idx[take]].reshape(-1, k)  # first k allowed draws of each full row
    block_rows = r[take][::k]
    ordered = np.sort(block, axis=1)
    repeats = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
    out[block_rows[~repeats]] = block[~repeats]
    done = np.zeros(users.size, dtype=bool)
    done[block_rows[~repeats]] = True
    if repeats.any():  # rows whose first k draws repeat an item: keep first occurrences
        redo = np.zeros(users.size, dtype=bool)
        redo[block_rows[repeats]] = True
        sub = idx[redo[r]]
        _, first = np.unique(row[sub] * n_items + cand[sub], return_index=True)
        sub = np.sort(sub[first])
        rs = row[sub]
        counts = np.bincount(rs, minlength=users.size)
        rank = np.arange(sub.size) - (np.cumsum(counts) - counts)[rs]
        take = (rank < k) & (counts >= k)[rs]
        out[rs[take], rank[take]] = cand[sub[take]]
        done[rs[take]] = True
    failed = ~done[todo]
    return todo[failed], draws[failed] * 2
