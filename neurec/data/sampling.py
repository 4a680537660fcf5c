"""``NegativeSampler``: implicit-feedback training data with fresh negatives every epoch.

Pass it to ``model.fit`` in place of ``x, y``. Each epoch the C core writes,
for every observed (user, item) pair, the positive (label 1) followed by
``num_negatives`` items the user has not interacted with (label 0), drawn
uniformly or in proportion to ``popularity ** alpha``; rejection against the
user's sorted CSR row, with no Python per sample. ``fit`` then shuffles and
trains on them as usual. Optional per-positive weights (``weights=``) scale each
positive's loss; its negatives weigh 1.
"""
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from neurec import _core
from neurec.data._arrays import _check_range, _int_ids
from neurec.data.interactions import InteractionLog, InteractionMatrix

__all__ = ["NegativeSampler"]


def as_matrix(interactions: Any, n_users: Optional[int] = None,
              n_items: Optional[int] = None) -> InteractionMatrix:
    """An InteractionMatrix from a matrix, a scipy.sparse matrix, a log or a (users, items) pair."""
    if isinstance(interactions, InteractionMatrix):
        return interactions
    if isinstance(interactions, InteractionLog):
        users, items = interactions.users, interactions.items
    elif isinstance(interactions, tuple) and len(interactions) == 2:
        users, items = interactions
    elif hasattr(interactions, "tocsr"):
        return InteractionMatrix.from_scipy(interactions)
    else:
        raise TypeError("interactions must be an InteractionMatrix, a scipy.sparse matrix, an "
                        "InteractionLog or a (user_ids, item_ids) pair of arrays; got "
                        f"{type(interactions).__name__}")
    users = np.asarray(users)
    items = np.asarray(items)
    shape = None
    if n_users is not None or n_items is not None:
        shape = (int(n_users if n_users is not None else users.max() + 1),
                 int(n_items if n_items is not None else items.max() + 1))
    return InteractionMatrix.from_arrays(users, items, shape=shape, dedupe="max")


def _positives(positives: Any, matrix: InteractionMatrix) -> Tuple[np.ndarray, np.ndarray]:
    """The ``(users, items)`` of ``positives`` as int64 arrays, each pair checked to be in
    ``matrix`` (so a negative never equals a positive of the same user)."""
    if not (isinstance(positives, tuple) and len(positives) == 2):
        raise TypeError("positives must be a (user_ids, item_ids) pair of arrays, got "
                        f"{type(positives).__name__}")
    users = _int_ids(positives[0], "positives users")
    items = _int_ids(positives[1], "positives items")
    if users.size != items.size or users.size == 0:
        raise ValueError(f"positives must be two non-empty arrays of one length, got "
                         f"{users.size} users and {items.size} items")
    n_users, n_items = matrix.shape
    _check_range(users, n_users, "positives users", "users")
    _check_range(items, n_items, "positives items", "items")
    inside = matrix.contains(users, items)
    if not inside.all():
        k = int(np.argmin(inside))
        raise ValueError(f"positives holds the pair (user {users[k]}, item {items[k]}), which is "
                         "not in interactions: negatives could not avoid it")
    return users, items


def _positive_weights(weights: Any, interactions: Any, matrix: InteractionMatrix,
                      positives: Any) -> np.ndarray:
    """One float32 weight per positive, in the sampler's order of positives.

    Aligned with ``positives`` when given; else with the rows of a log or of a
    ``(users, items)`` pair (a pair's duplicate rows summed); else with the matrix's
    stored entries in CSR order.
    """
    w = np.asarray(weights.to_numpy() if hasattr(weights, "to_numpy") else weights)
    if w.dtype == object or w.dtype.kind not in "biuf" or w.ndim != 1:
        raise ValueError(f"weights must be a 1-D array of numbers (one per positive), got "
                         f"{'dtype ' + str(w.dtype) if w.ndim == 1 else f'shape {w.shape}'}")
    bad = ~(np.isfinite(w) & (w >= 0))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"weights must be finite and >= 0, got {float(w[k])!r} at position {k}; "
                         "a weight of 0 leaves a positive out")
    rows = None
    if positives is not None:
        want, what = len(positives[0]), "positives"
    elif isinstance(interactions, (InteractionLog, tuple)):
        rows = ((interactions.users, interactions.items)
                if isinstance(interactions, InteractionLog) else interactions)
        want, what = len(rows[0]), "rows of interactions"
    else:
        want, what = matrix.nnz, "stored interactions of the matrix (CSR order)"
    if w.size != want:
        raise ValueError(f"weights has {w.size} values but there are {want} {what}; give one "
                         "weight per positive")
    if rows is not None:  # onto the matrix's CSR order, repeated pairs summed
        w = InteractionMatrix.from_arrays(np.asarray(rows[0]), np.asarray(rows[1]), w,
                                          shape=matrix.shape, dedupe="sum").data
    return np.ascontiguousarray(w, dtype=np.float32)


class NegativeSampler:
    """Training data for implicit feedback: positives plus fresh negatives each epoch.

    Args:
        interactions: Observed (user, item) pairs: an :class:`InteractionMatrix`, a
            scipy.sparse matrix, an :class:`InteractionLog` or a ``(users, items)`` pair.
            Duplicate pairs count once.
        num_negatives: Negatives per positive (NCF uses 4).
        distribution: ``'uniform'`` or ``'popularity'`` (items drawn in proportion to
            ``count ** alpha``, as word2vec does with 0.75).
        alpha: Exponent of popularity sampling.
        seed: Base seed; the epoch's seed from ``fit`` is mixed in, so epochs differ
            and runs repeat.
        n_users, n_items: Table sizes when ``interactions`` does not imply them.
        user_input, item_input: Names of the model inputs that take user and item ids
            (default: the model's first and second inputs).
        user_features, item_features: Dicts ``{input_name: array}`` of per-user / per-item
            side features (row ``u`` describes user ``u``), gathered for every sample.
        positives: Optional ``(users, items)`` pair: train on these pairs only (each one
            must be in ``interactions``; a pair given twice is trained on twice), while
            negatives still avoid every pair of ``interactions``. ``Model.update`` trains
            on a day's log plus replayed old pairs this way. Default: every pair of
            ``interactions``.
        weights: Optional confidence of each positive (finite, >= 0): its loss is scaled
            by it, and its negatives keep weight 1.0 (as ``fit(sample_weight=)``, Keras's
            ``"sum_over_batch_size"``). One value per pair of ``positives`` when given;
            else one per row of an :class:`InteractionLog` or ``(users, items)`` pair
            (e.g. ``log.values``: quantity, price, or a recency decay computed from
            ``log.timestamps``), repeated pairs getting the sum of their rows' weights;
            else one per stored entry of a matrix, in CSR order (``matrix.data``).
            ``fit(class_weight={0: w0, 1: w1})`` multiplies these (label 1) and the
            negatives' 1.0 (label 0). Not used by ``optimizer=ALS``.

    Raises:
        ValueError: If there are no interactions, ``num_negatives`` is negative, ``alpha``
            is NaN, infinite or negative, a user has interacted with every item (no
            negative can be drawn), ``positives`` is empty or holds a pair that is not
            in ``interactions``, or ``weights`` has the wrong length or a negative, NaN
            or infinite value.

    Example:
        >>> import numpy as np
        >>> from neurec.data import InteractionLog, NegativeSampler
        >>> log = InteractionLog([0, 0, 1, 2], [1, 2, 0, 1], timestamps=[10, 50, 90, 100])
        >>> recency = 0.5 ** ((100 - log.timestamps) / 30.0)  # half-life of 30 time units
        >>> sampler = NegativeSampler(log, num_negatives=1, seed=0, weights=recency)
        >>> sampler.num_samples
        8
    """

    def __init__(self, interactions: Any, num_negatives: int = 4, distribution: str = "uniform",
                 alpha: float = 0.75, seed: Optional[int] = None, n_users: Optional[int] = None,
                 n_items: Optional[int] = None, user_input: Optional[str] = None,
                 item_input: Optional[str] = None,
                 user_features: Optional[Dict[str, Any]] = None,
                 item_features: Optional[Dict[str, Any]] = None, positives: Any = None,
                 weights: Any = None):
        if isinstance(num_negatives, bool) or not isinstance(num_negatives, (int, np.integer)) \
                or num_negatives < 0:
            raise ValueError(f"num_negatives must be an integer >= 0, got {num_negatives!r}")
        if distribution not in ("uniform", "popularity"):
            raise ValueError(f"distribution must be 'uniform' or 'popularity', got {distribution!r}")
        self.matrix = as_matrix(interactions, n_users, n_items)
        if self.matrix.nnz == 0:
            raise ValueError("interactions is empty: there are no positives to train on")
        self.num_negatives = int(num_negatives)
        self.distribution = distribution
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)) \
                or not np.isfinite(alpha) or alpha < 0:
            raise ValueError(f"alpha must be a finite number >= 0 (0 = uniform, 0.75 = word2vec's "
                             f"choice, 1 = proportional to popularity), got {alpha!r}")
        self.alpha = float(alpha)
        self.seed = seed
        n_items_ = self.matrix.shape[1]
        counts = self.matrix.user_counts()
        if self.num_negatives and np.any(counts >= n_items_):
            bad = np.flatnonzero(counts >= n_items_)[:5].tolist()
            raise ValueError(f"users {bad} have interacted with every item, so no negative can be "
                             "drawn for them; drop them or use num_negatives=0")
        if positives is None:
            users, items, _ = self.matrix.to_coo()
        else:
            users, items = _positives(positives, self.matrix)
        self._pos_users = np.ascontiguousarray(users, dtype=np.int64)
        self._pos_items = np.ascontiguousarray(items, dtype=np.int64)
        self._pos_weights = None if weights is None else _positive_weights(
            weights, interactions, self.matrix, positives)
        self._indptr = np.ascontiguousarray(self.matrix.indptr, dtype=np.int64)
        self._indices = np.ascontiguousarray(self.matrix.indices, dtype=np.int32)
        self._cdf = None
        if distribution == "popularity":
            w = self.matrix.item_counts().astype(np.float64) ** self.alpha
            if w.sum() <= 0:
                raise ValueError("popularity sampling needs at least one item with interactions")
            self._cdf = np.ascontiguousarray(np.cumsum(w))
        self.user_input, self.item_input = user_input, item_input
        self.user_features = {k: np.asarray(v) for k, v in (user_features or {}).items()}
        self.item_features = {k: np.asarray(v) for k, v in (item_features or {}).items()}
        for what, feats, n in (("user_features", self.user_features, self.matrix.shape[0]),
                               ("item_features", self.item_features, self.matrix.shape[1])):
            for k, v in feats.items():
                if v.ndim == 0 or v.shape[0] < n:
                    raise ValueError(f"{what}[{k!r}] has {v.shape[0] if v.ndim else 0} rows but there "
                                     f"are {n} ids: give one row per id")
        n = self.num_samples
        self._u = np.empty(n, np.int64)
        self._i = np.empty(n, np.int64)
        self._y = np.empty(n, np.float32)
        # whether self._u and self._y hold an epoch: their values depend on the
        # positives alone (each positive's user, then 1 and zeros), never on the seed
        self._fixed_drawn = False

    @property
    def num_samples(self) -> int:
        """Samples per epoch: positives times ``1 + num_negatives``."""
        return int(self._pos_users.size * (1 + self.num_negatives))

    def item_popularity(self) -> np.ndarray:
        """Interaction count of every item."""
        return self.matrix.item_counts()

    def sample(self, seed: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One epoch of ``(users, items, labels)`` arrays (fresh arrays)."""
        u = np.empty(self.num_samples, np.int64)
        i = np.empty(self.num_samples, np.int64)
        y = np.empty(self.num_samples, np.float32)
        self._draw(seed, u, i, y)
        return u, i, y

    def _epoch_labels(self) -> np.ndarray:
        """The labels of every epoch's rows: positive ``k`` at row ``k * (1 + num_negatives)``
        (label 1), its negatives after it (label 0)."""
        y = np.zeros(self.num_samples, np.float32)
        y[::1 + self.num_negatives] = 1.0
        return y

    def _epoch_weights(self) -> Optional[np.ndarray]:
        """Each row's weight (the positive's, 1.0 for negatives), the same every epoch;
        None without ``weights``."""
        if self._pos_weights is None:
            return None
        w = np.ones(self.num_samples, np.float32)
        w[::1 + self.num_negatives] = self._pos_weights
        return w

    def _mixed_seed(self, seed: int) -> int:
        """The C sampler's seed for an epoch's ``seed``: mixed with the sampler's own."""
        return (int(seed) ^ (0 if self.seed is None else int(self.seed) * 0x9E3779B97F4A7C15)) % 2**64

    def _draw(self, seed: int, u: np.ndarray, i: np.ndarray, y: np.ndarray, comm=None) -> None:
        """Fill ``u, i, y`` with one epoch drawn in C for ``seed`` mixed with the sampler's
        seed; with ``comm`` (a data-parallel fit's ranks, each holding this sampler) each
        rank draws a share of it and receives the rest: the same bits."""
        mixed = self._mixed_seed(seed)

        def draw(first: int, stop: int) -> None:
            _core.sample_epoch(self._indptr, self._indices, self.matrix.shape[1],
                               self._pos_users, self._pos_items, self.num_negatives, self._cdf,
                               mixed, u, i, y, first, stop)

        if comm is None:
            draw(0, self._pos_users.size)
        else:  # the users and labels of the others' shares are known: they need not travel
            from neurec.distribution._epoch import draw_shared
            known = u is self._u and y is self._y and self._fixed_drawn
            known = all(comm.allgather(known))  # every rank sends the same arrays
            draw_shared(comm, self._pos_users.size, 1 + self.num_negatives, draw,
                        (i,) if known else (u, i, y))
        if u is self._u and y is self._y:
            self._fixed_drawn = True

    # -- the hand-off to Model.fit: everything passes through arguments ----------------
    def _check_model(self, model, id_checks: Sequence[Tuple[int, Any]]
                     ) -> List[Tuple[str, Optional[np.ndarray]]]:
        """The role of each input of ``model``, checked against the model.

        Args:
            model: The model ``fit`` trains (its input names).
            id_checks: ``(input slot, Embedding layer)`` pairs: the tables the ids of each
                input index.

        Returns:
            One ``(role, table)`` per input: ``('user', None)``, ``('item', None)``,
            ``('user_feature', values)`` or ``('item_feature', values)``.

        Raises:
            ValueError: If an input has no role, or the sampler's ids do not fit a table.
        """
        names = model.input_names
        uname = self.user_input or names[0]
        iname = self.item_input or (names[1] if len(names) > 1 else None)
        for nm in (uname, iname):
            if nm not in names:
                raise ValueError(f"NegativeSampler: the model has no input {nm!r} (inputs: {names})")
        roles: List[Tuple[str, Optional[np.ndarray]]] = []
        for nm in names:
            if nm == uname:
                roles.append(("user", None))
            elif nm == iname:
                roles.append(("item", None))
            elif nm in self.user_features:
                roles.append(("user_feature", self.user_features[nm]))
            elif nm in self.item_features:
                roles.append(("item_feature", self.item_features[nm]))
            else:
                raise ValueError(f"NegativeSampler: model input {nm!r} is neither the user nor the "
                                 "item input; pass its per-user or per-item values in "
                                 "user_features= or item_features=")
        n_users, n_items = self.matrix.shape
        for slot, layer in id_checks:
            role = roles[slot][0]
            size = n_users if role == "user" else n_items if role == "item" else None
            if size is not None and size > layer.input_dim:
                raise ValueError(f"NegativeSampler has {size} {role}s but Embedding {layer.name!r} "
                                 f"has input_dim={layer.input_dim}")
        return roles

    def _neurec_epoch(self, seed: int, model, roles: Sequence[Tuple[str, Optional[np.ndarray]]],
                      prepare: Optional[Callable[[List[np.ndarray]], List[np.ndarray]]] = None,
                      comm=None) -> Tuple[List[np.ndarray], np.ndarray]:
        """One epoch of ``(inputs, labels)`` for ``model``, drawn in C for ``seed``.

        The arrays are the sampler's buffers, overwritten by the next epoch.

        Args:
            seed: The epoch's seed.
            model: The model (the shapes of its inputs).
            roles: The inputs' roles, from :meth:`_check_model`.
            prepare: Checks and converts the inputs when side features were gathered
                (``fit`` passes its input validation); ids drawn here need no check.
            comm: Under a data-parallel fit whose ranks hold the same sampler, their
                communicator: each rank draws a share of the epoch.
        """
        self._draw(seed, self._u, self._i, self._y, comm)
        arrays = []
        for (role, feats), t in zip(roles, model.inputs):
            shape = (-1,) + tuple(t.shape[1:])
            if role == "user":
                arrays.append(self._u.reshape(shape))
            elif role == "item":
                arrays.append(self._i.reshape(shape))
            else:
                src = self._u if role == "user_feature" else self._i
                arrays.append(np.ascontiguousarray(feats[src]).reshape(shape))
        if prepare is not None and any(r[0].endswith("feature") for r in roles):
            arrays = prepare(arrays)
        return arrays, self._y.reshape(-1, 1)

    def __repr__(self):
        weighted = ", weighted" if self._pos_weights is not None else ""
        return (f"NegativeSampler(positives={self._pos_users.size}, num_negatives={self.num_negatives}, "
                f"distribution={self.distribution!r}, shape={self.matrix.shape}{weighted})")
