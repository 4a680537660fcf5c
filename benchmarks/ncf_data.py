"""Reader for NCF-format files, vectorised negative sampling and sampled / full-ranking evaluation.

Framework-free (NumPy only) so that every benchmark (PyTorch, Keras, neurec) shares the exact
same data, sampler and metric code. Nothing here copies data anywhere: files are read in place
from the data directory (default ``/work/shared/data`` or ``$NEUREC_DATA``).

File format (see docs/PROTOCOL.md):
    PREFIX.train.rating, PREFIX.test.rating: ``user<TAB>item<TAB>rating[<TAB>timestamp]``, ids
    from 0.
    PREFIX.test.negative: ``(user,item)<TAB>neg_1<TAB>...<TAB>neg_n``.

Metric rule (the tie rule of docs/PROTOCOL.md): the rank of the test item is the number of
candidates with a *strictly higher* score, so ties go in favour of the test item. HR@K = [rank < K];
NDCG@K = 1 / log2(rank + 2) if rank < K else 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

DEFAULT_DATA_DIR = os.environ.get("NEUREC_DATA", "/work/shared/data")

#: Short dataset names -> (folder, file prefix) under the data directory.
DATASETS = {
    "ml-100k": ("ml-100k-ncf", "ml-100k"),
    "ml-1m": ("ncf-ml-1m", "ml-1m"),
    "sports": ("amazon-sports-ncf", "sports"),
    "beauty": ("amazon-beauty-ncf", "beauty"),
}

ScoreFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class NCFData:
    """One NCF leave-one-out split held as NumPy arrays.

    Attributes:
        n_users: number of user ids (max id + 1 over all three files).
        n_items: number of item ids (max id + 1 over all three files).
        train_users, train_items: int64 arrays of the unique training positives (rating > 0),
            sorted by user then item.
        train_keys: sorted int64 array ``user * n_items + item`` of the training positives,
            used for vectorised membership tests.
        indptr: int64 CSR row pointer of the training matrix (``n_users + 1`` entries).
        test_users, test_items: int64 arrays, one held-out item per test row.
        test_negatives: int64 array ``(n_test, n_neg)`` of the fixed sampled negatives.
    """

    n_users: int
    n_items: int
    train_users: np.ndarray
    train_items: np.ndarray
    train_keys: np.ndarray
    indptr: np.ndarray
    test_users: np.ndarray
    test_items: np.ndarray
    test_negatives: np.ndarray

    @property
    def num_train(self) -> int:
        """Number of training positives."""
        return int(self.train_users.shape[0])

    def train_matrix(self):
        """The training positives as a ``neurec.data.InteractionMatrix``."""
        from neurec.data import InteractionMatrix

        return InteractionMatrix.from_arrays(
            self.train_users, self.train_items, shape=(self.n_users, self.n_items)
        )


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------


def _read_table(path: str) -> np.ndarray:
    """Reads a TAB-separated numeric file with a constant column count into float64 (n, cols)."""
    with open(path) as f:
        text = f.read()
    first = text.split("\n", 1)[0]
    if not first.strip():
        raise ValueError(f"file {path!r} is empty; expected NCF rows 'user<TAB>item<TAB>rating'.")
    ncol = len(first.split("\t"))
    flat = np.array(text.split(), dtype=np.float64)
    if flat.size % ncol:
        raise ValueError(
            f"file {path!r} has rows with different column counts (first row has {ncol}); "
            "expected every row to have the same number of TAB-separated fields."
        )
    return flat.reshape(-1, ncol)


def _read_negatives(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reads a ``.test.negative`` file into (users, items, negatives)."""
    with open(path) as f:
        text = f.read()
    first = text.split("\n", 1)[0]
    if not first.startswith("("):
        raise ValueError(
            f"file {path!r} does not look like an NCF negative file: rows must start with "
            "'(user,item)' followed by TAB-separated negative item ids."
        )
    ncol = len(first.split("\t")) + 1  # "(u,i)" holds two numbers
    flat = np.array(
        text.replace("(", " ").replace(")", " ").replace(",", " ").split(), dtype=np.int64
    )
    if flat.size % ncol:
        raise ValueError(
            f"file {path!r} has rows with different numbers of negatives; expected the same "
            f"count on every row ({ncol - 2} on the first)."
        )
    table = flat.reshape(-1, ncol)
    return table[:, 0], table[:, 1], table[:, 2:]


def resolve_prefix(dataset: str, data_dir: str | None = None) -> str:
    """Returns the file prefix of a named dataset (or passes a path prefix through).

    Args:
        dataset: a short name from ``DATASETS`` (``"ml-100k"``, ``"ml-1m"``, ``"sports"``,
            ``"beauty"``) or a path prefix such that ``PREFIX.train.rating`` exists.
        data_dir: folder holding the split folders; defaults to ``$NEUREC_DATA`` or
            ``/work/shared/data``.

    Returns:
        The path prefix.

    Raises:
        ValueError: if the name is unknown and is not an existing path prefix.
    """
    if dataset in DATASETS:
        folder, prefix = DATASETS[dataset]
        return os.path.join(data_dir or DEFAULT_DATA_DIR, folder, prefix)
    if os.path.exists(dataset + ".train.rating"):
        return dataset
    raise ValueError(
        f"dataset={dataset!r} is neither one of {sorted(DATASETS)} nor a path prefix with a "
        "'.train.rating' file; pass a known name or an existing prefix."
    )


def load_ncf(prefix: str) -> NCFData:
    """Loads an NCF leave-one-out split.

    Args:
        prefix: path prefix; reads ``prefix.train.rating``, ``prefix.test.rating`` and
            ``prefix.test.negative``.

    Returns:
        An ``NCFData``. Training rows with rating <= 0 are dropped and duplicate (user, item)
        pairs are kept once, as the NCF reference code does (it stores a DOK matrix).

    Raises:
        FileNotFoundError: if one of the three files is missing.
        ValueError: if a file is malformed, ids are negative, or the test rows and the negative
            rows disagree.
    """
    train = _read_table(prefix + ".train.rating")
    test = _read_table(prefix + ".test.rating")
    neg_users, neg_items, negatives = _read_negatives(prefix + ".test.negative")
    if train.shape[1] < 3 or test.shape[1] < 2:
        raise ValueError(
            f"{prefix}.train.rating needs at least 3 columns (user, item, rating) and "
            f"{prefix}.test.rating at least 2; got {train.shape[1]} and {test.shape[1]}."
        )
    train = train[train[:, 2] > 0]
    tu, ti = train[:, 0].astype(np.int64), train[:, 1].astype(np.int64)
    su, si = test[:, 0].astype(np.int64), test[:, 1].astype(np.int64)
    if len(su) != len(neg_users) or not (
        np.array_equal(su, neg_users) and np.array_equal(si, neg_items)
    ):
        raise ValueError(
            f"{prefix}.test.rating and {prefix}.test.negative must list the same (user, item) "
            "pairs in the same order."
        )
    for name, arr in (
        ("train users", tu),
        ("train items", ti),
        ("test users", su),
        ("test items", si),
        ("negatives", negatives),
    ):
        if arr.size and arr.min() < 0:
            raise ValueError(f"{name} in {prefix}.* contain negative ids; ids must start at 0.")
    n_users = int(max(tu.max(initial=-1), su.max(initial=-1))) + 1
    n_items = int(max(ti.max(initial=-1), si.max(initial=-1), negatives.max(initial=-1))) + 1
    keys = np.unique(tu * n_items + ti)
    tu, ti = keys // n_items, keys % n_items
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(tu, minlength=n_users), out=indptr[1:])
    return NCFData(
        n_users=n_users,
        n_items=n_items,
        train_users=tu,
        train_items=ti,
        train_keys=keys,
        indptr=indptr,
        test_users=su,
        test_items=si,
        test_negatives=negatives,
    )


def load_dataset(dataset: str, data_dir: str | None = None) -> NCFData:
    """Loads a dataset by short name or prefix (see ``resolve_prefix`` and ``load_ncf``)."""
    return load_ncf(resolve_prefix(dataset, data_dir))


# ----------------------------------------------------------------------------------------------
# Negative sampling
# ----------------------------------------------------------------------------------------------


def sample_negatives(
    users: np.ndarray,
    n_items: int,
    train_keys: np.ndarray,
    rng: np.random.Generator,
    max_rounds: int = 1000,
) -> np.ndarray:
    """Draws one uniform negative item per entry of ``users`` by vectorised rejection.

    Every round draws candidates for all still-rejected entries at once and rejects those that
    are training positives of their user (membership through ``np.searchsorted`` on the sorted
    ``train_keys``). The loop is over rounds, not samples: each round shrinks the rejected set
    by a factor of roughly (user degree / n_items).

    Args:
        users: int64 user ids, one negative is drawn per entry.
        n_items: size of the item catalog.
        train_keys: sorted int64 ``user * n_items + item`` keys of the training positives.
        rng: NumPy generator (the only source of randomness).
        max_rounds: safety bound on rejection rounds.

    Returns:
        int64 array of item ids, same shape as ``users``, none of them a training positive.

    Raises:
        ValueError: if ``n_items`` < 1 or rejection does not finish in ``max_rounds`` (a user
            who interacted with (nearly) every item).
    """
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}.")
    users = np.asarray(users, dtype=np.int64)
    items = rng.integers(0, n_items, size=users.shape, dtype=np.int64)
    todo = np.arange(users.size)
    flat_u, flat_i = users.reshape(-1), items.reshape(-1)
    for _ in range(max_rounds):
        keys = flat_u[todo] * n_items + flat_i[todo]
        pos = np.searchsorted(train_keys, keys)
        pos[pos == train_keys.size] = 0
        hit = train_keys[pos] == keys if train_keys.size else np.zeros(keys.shape, bool)
        todo = todo[hit]
        if todo.size == 0:
            return items
        flat_i[todo] = rng.integers(0, n_items, size=todo.size, dtype=np.int64)
    raise ValueError(
        f"negative sampling did not finish after max_rounds={max_rounds}: some users have "
        "interacted with (almost) every item; drop those users or raise max_rounds."
    )


def make_epoch(
    data: NCFData, num_neg: int, rng: np.random.Generator, shuffle: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Builds one epoch of training pairs: every positive plus ``num_neg`` fresh negatives.

    Args:
        data: the split.
        num_neg: negatives per positive (>= 0).
        rng: NumPy generator used for sampling and shuffling.
        shuffle: shuffle the rows (as Keras ``fit(shuffle=True)`` does in the NCF code).

    Returns:
        ``(users, items, labels)``: int64, int64, float32 arrays of length
        ``num_train * (1 + num_neg)``.

    Raises:
        ValueError: if ``num_neg`` is negative.
    """
    if num_neg < 0:
        raise ValueError(f"num_neg must be >= 0, got {num_neg}.")
    neg_users = np.repeat(data.train_users, num_neg)
    neg_items = sample_negatives(neg_users, data.n_items, data.train_keys, rng)
    users = np.concatenate([data.train_users, neg_users])
    items = np.concatenate([data.train_items, neg_items])
    labels = np.zeros(users.size, dtype=np.float32)
    labels[: data.num_train] = 1.0
    if shuffle:
        perm = rng.permutation(users.size)
        users, items, labels = users[perm], items[perm], labels[perm]
    return users, items, labels


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------


def rank_metrics(ranks: np.ndarray, k: int = 10) -> tuple[float, float]:
    """HR@K and NDCG@K from 0-based ranks of the test items.

    Args:
        ranks: int array, rank of each test item (number of candidates scored strictly higher).
        k: cut-off.

    Returns:
        ``(hr, ndcg)`` averaged over all rows.
    """
    ranks = np.asarray(ranks)
    if ranks.size == 0:
        raise ValueError("ranks is empty; need at least one test row.")
    hit = ranks < k
    ndcg = np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0)
    return float(hit.mean()), float(ndcg.mean())


def sampled_ranks(pos_scores: np.ndarray, neg_scores: np.ndarray) -> np.ndarray:
    """Rank of each positive among its negatives: count of negatives with a strictly higher score.

    Args:
        pos_scores: shape ``(n,)``.
        neg_scores: shape ``(n, m)``.

    Returns:
        int64 array of shape ``(n,)`` with values in ``[0, m]``.
    """
    pos_scores = np.asarray(pos_scores)
    neg_scores = np.asarray(neg_scores)
    if neg_scores.ndim != 2 or pos_scores.shape != (neg_scores.shape[0],):
        raise ValueError(
            f"pos_scores must have shape (n,) and neg_scores (n, m); got {pos_scores.shape} "
            f"and {neg_scores.shape}."
        )
    return (neg_scores > pos_scores[:, None]).sum(axis=1).astype(np.int64)


def evaluate_sampled(
    score_fn: ScoreFn, data: NCFData, k: int = 10, max_rows: int | None = None
) -> tuple[float, float]:
    """Sampled protocol: each test item is ranked among its fixed sampled negatives.

    Args:
        score_fn: ``score_fn(users, items) -> scores`` on flat int64 arrays; returns a float
            array of the same length (any monotone score: logits or probabilities).
        data: the split.
        k: cut-off for HR@K / NDCG@K.
        max_rows: evaluate only the first ``max_rows`` test rows (smoke runs).

    Returns:
        ``(hr, ndcg)``.
    """
    n = data.test_users.size if max_rows is None else min(max_rows, data.test_users.size)
    negs = data.test_negatives[:n]
    cand = np.concatenate([data.test_items[:n, None], negs], axis=1)
    users = np.repeat(data.test_users[:n], cand.shape[1])
    scores = np.asarray(score_fn(users, cand.reshape(-1))).reshape(cand.shape)
    if not np.all(np.isfinite(scores)):
        raise ValueError("score_fn returned non-finite scores; the model has diverged.")
    return rank_metrics(sampled_ranks(scores[:, 0], scores[:, 1:]), k)


def evaluate_full(
    score_fn: ScoreFn, data: NCFData, k: int = 10, users_per_block: int = 256
) -> tuple[float, float]:
    """Full-ranking protocol: each test item is ranked among all items the user has not trained on.

    Training positives of the user are excluded from the candidates; the rank is the number
    of remaining items with a strictly higher score than the test item.

    Args:
        score_fn: as in ``evaluate_sampled``.
        data: the split.
        k: cut-off.
        users_per_block: test rows scored per call of ``score_fn``
            (``users_per_block * n_items`` pairs).

    Returns:
        ``(hr, ndcg)``.
    """
    n, m = data.test_users.size, data.n_items
    ranks = np.empty(n, dtype=np.int64)
    all_items = np.arange(m, dtype=np.int64)
    for s in range(0, n, users_per_block):
        e = min(n, s + users_per_block)
        u = data.test_users[s:e]
        scores = np.asarray(
            score_fn(np.repeat(u, m), np.tile(all_items, e - s)), dtype=np.float64
        ).reshape(e - s, m)
        # Mask the user's training items (CSR rows) with -inf.
        starts, stops = data.indptr[u], data.indptr[u + 1]
        lens = stops - starts
        rows = np.repeat(np.arange(e - s), lens)
        idx = np.repeat(starts - np.cumsum(lens) + lens, lens) + np.arange(lens.sum())
        scores[rows, data.train_items[idx]] = -np.inf
        pos = scores[np.arange(e - s), data.test_items[s:e]]
        ranks[s:e] = (scores > pos[:, None]).sum(axis=1)
    return rank_metrics(ranks, k)
