"""The model's life after the first fit: raw-id encoders, the seen-matrix, daily updates.

A shop's catalogue and customers change every day. ``Lifecycle`` (a base class of
``Model``) keeps with the model what serving and updating it need besides its weights:

* the ``IdEncoder`` of users and of items (``attach_encoders``), so that ``recommend``
  takes raw customer ids and returns raw product ids;
* the seen-matrix (``attach_seen_matrix``): the (user, item) pairs known to have happened
  (usually what the model was trained on), which ``recommend`` excludes by default and
  ``update`` keeps negatives away from;
* ``update``: extend the encoders with a day's new ids, grow the embedding tables, merge
  the day's pairs into the seen-matrix and train a few epochs on them (plus replayed old
  pairs), without retraining from scratch.

``save`` / ``load_model`` keep all three (``neurec/models/saving.py``).
"""
from typing import Any, List, Optional, Tuple

import numpy as np

from neurec import optimizers as optimizers_mod
from neurec.data.encoders import IdEncoder
from neurec.data.interactions import InteractionLog, InteractionMatrix
from neurec.data.sampling import NegativeSampler, as_matrix
from neurec.layers.core import Embedding
from neurec.models import _training

__all__ = ["Lifecycle", "id_tables"]

_LOG_COLUMNS = (("user", "item"), ("user_id", "item_id"))


def id_tables(model, slot: int) -> List[Embedding]:
    """The Embedding layers fed by input ``slot`` of ``model`` (0: user ids, 1: item ids), in
    graph order (``resize_embeddings``'s view of the model); empty when it feeds none."""
    if slot >= len(model.inputs):
        return []
    return model._embeddings_by_input().get(model.input_names[slot], [])


def _table_rows(model, slot: int) -> Optional[int]:
    tables = id_tables(model, slot)
    return min(t.input_dim for t in tables) if tables else None


def _check_encoder(model, enc, slot: int, what: str) -> Optional[IdEncoder]:
    if enc is None:
        return None
    if not isinstance(enc, IdEncoder):
        raise TypeError(f"attach_encoders: {what} must be a neurec.data.IdEncoder, got "
                        f"{type(enc).__name__}")
    rows = _table_rows(model, slot)
    if rows is not None and len(enc) > rows:
        raise ValueError(f"attach_encoders: the {what} encoder knows {len(enc)} ids but the "
                         f"model's {what} table has {rows} rows; codes must fit the table "
                         "(grow it with model.update, or build the model with more rows)")
    return enc.copy()


def _as_log(log: Any) -> InteractionLog:
    if isinstance(log, InteractionLog):
        return log
    columns = getattr(log, "columns", None)
    if columns is not None:
        for ucol, icol in _LOG_COLUMNS:
            if ucol in columns and icol in columns:
                return InteractionLog.from_pandas(log, user_col=ucol, item_col=icol)
        raise ValueError(f"update: the DataFrame has columns {list(columns)[:8]}; expected "
                         "'user' and 'item' (or 'user_id' and 'item_id'). Build the log with "
                         "InteractionLog.from_pandas(df, user_col=..., item_col=...)")
    raise TypeError("update: log must be an InteractionLog or a DataFrame of raw ids, or an "
                    f"encoded (user_ids, item_ids) pair; got {type(log).__name__}")


def _encoded_pair(log: tuple) -> Tuple[np.ndarray, np.ndarray]:
    if len(log) != 2:
        raise ValueError(f"update: an encoded log is a (user_ids, item_ids) pair; got a tuple of "
                         f"{len(log)}")
    out = []
    for a, what in zip(log, ("users", "items")):
        a = np.asarray(a)
        if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
            raise TypeError(f"update: encoded {what} must be a 1-D array of integer codes, got "
                            f"dtype {a.dtype}, shape {a.shape}; pass raw ids as an "
                            "InteractionLog (with encoders attached)")
        a = a.astype(np.int64)
        if a.size and a.min() < 0:
            raise ValueError(f"update: encoded {what} must be >= 0, got {int(a.min())}")
        out.append(a)
    if out[0].size != out[1].size:
        raise ValueError(f"update: users and items differ in length ({out[0].size} and "
                         f"{out[1].size})")
    return out[0], out[1]


def _union(a: InteractionMatrix, b: InteractionMatrix, shape) -> InteractionMatrix:
    """The pairs of ``a`` or ``b`` (values 1) in a matrix of ``shape``."""
    au, ai, _ = a.to_coo()
    bu, bi, _ = b.to_coo()
    return InteractionMatrix.from_arrays(np.concatenate([au, bu]), np.concatenate([ai, bi]),
                                         shape=shape, dedupe="max")


def _check_number(name: str, value: Any, low: float, integer: bool = False):
    ok = (not isinstance(value, bool) and isinstance(value, (int, np.integer)) if integer
          else not isinstance(value, bool) and isinstance(value, (int, float, np.integer,
                                                                  np.floating)))
    if not ok or not np.isfinite(value) or value < low:
        kind = "an integer" if integer else "a finite number"
        raise ValueError(f"update: {name} must be {kind} >= {low}, got {value!r}")
    return int(value) if integer else float(value)


class Lifecycle:
    """Encoders, seen-matrix and ``update``: the part of ``Model`` for a model in service.

    The state lives in three attributes, ``None`` until set (class defaults, so models
    built by any path start without them).
    """

    _user_encoder: Optional[IdEncoder] = None
    _item_encoder: Optional[IdEncoder] = None
    _seen: Optional[InteractionMatrix] = None

    # -- encoders ------------------------------------------------------------------
    def attach_encoders(self, user: Optional[IdEncoder] = None,
                        item: Optional[IdEncoder] = None) -> None:
        """Keep the id encoders with the model: ``recommend`` then speaks raw ids.

        The model keeps a copy of each encoder (``update`` extends its copy, never yours);
        ``save`` writes them into the model file and ``load_model`` restores them.
        ``recommend``'s own ``user_encoder=`` / ``item_encoder=`` arguments still win.

        Args:
            user: The :class:`neurec.data.IdEncoder` of user ids (code ``c`` is row ``c``
                of the user tables), or None to leave the user encoder as it is.
            item: Likewise for item ids.

        Raises:
            TypeError: If an encoder is not an ``IdEncoder``.
            ValueError: If an encoder knows more ids than its embedding table has rows.

        Example:
            >>> log, users, items = InteractionLog.read_csv("sales.csv").encode()
            >>> model = NeuMF(len(users), len(items)); model.attach_encoders(users, items)
            >>> model.recommend(["C000123"], k=10)      # raw product ids back
        """
        self._require_graph()
        u = _check_encoder(self, user, 0, "user")
        i = _check_encoder(self, item, 1, "item")
        if u is not None:
            self._user_encoder = u
        if i is not None:
            self._item_encoder = i

    @property
    def user_encoder(self) -> Optional[IdEncoder]:
        """The model's user :class:`~neurec.data.IdEncoder` (see :meth:`attach_encoders`)."""
        return self._user_encoder

    @property
    def item_encoder(self) -> Optional[IdEncoder]:
        """The model's item :class:`~neurec.data.IdEncoder` (see :meth:`attach_encoders`)."""
        return self._item_encoder

    # -- seen-matrix ---------------------------------------------------------------
    def attach_seen_matrix(self, interactions: Any) -> None:
        """Keep the (user, item) pairs known to have happened, as encoded ids.

        Usually the pairs the model was trained on (``neurec --save-model`` adds the
        held-out ones of its evaluation). ``recommend`` excludes them by default (``exclude=False`` turns that off),
        ``update`` draws negatives outside them and replays old pairs from them, and
        ``save`` writes them into the model file (CSR arrays). Values are dropped: only
        which pairs exist matters.

        Args:
            interactions: An :class:`neurec.data.InteractionMatrix`, a scipy.sparse
                matrix, an encoded :class:`neurec.data.InteractionLog` or a
                ``(user_ids, item_ids)`` pair; ``None`` forgets the matrix.

        Raises:
            TypeError: If ``interactions`` is none of these.
            ValueError: If it has more rows or columns than the model's user or item
                tables, or invalid ids.

        Example:
            >>> model.fit(NegativeSampler(matrix), epochs=10)
            >>> model.attach_seen_matrix(matrix)
            >>> model.recommend([0, 1], k=10)           # bought items are left out
        """
        self._require_graph()
        if interactions is None:
            self._seen = None
            return
        m = as_matrix(interactions)
        for slot, n, what in ((0, m.shape[0], "rows (users)"), (1, m.shape[1], "columns (items)")):
            rows = _table_rows(self, slot)
            if rows is not None and n > rows:
                raise ValueError(f"attach_seen_matrix: the matrix has {n} {what} but the model's "
                                 f"table has {rows}")
        self._seen = InteractionMatrix._trusted(m.indptr, m.indices, np.ones(m.nnz, np.float32),
                                                m.shape)

    @property
    def seen_matrix(self) -> Optional[InteractionMatrix]:
        """The pairs the model was trained on (see :meth:`attach_seen_matrix`), or None."""
        return self._seen

    def _recommend_defaults(self, exclude, user_encoder, item_encoder):
        """``recommend``'s arguments with the model's own encoders and seen-matrix filled in
        where the caller gave none; ``False`` means "none" explicitly."""
        if exclude is None:
            exclude = self._seen
        if user_encoder is None:
            user_encoder = self._user_encoder
        if item_encoder is None:
            item_encoder = self._item_encoder
        return (None if exclude is False else exclude,
                None if user_encoder is False else user_encoder,
                None if item_encoder is False else item_encoder)

    # -- update --------------------------------------------------------------------
    def update(self, log: Any, matrix: Any = None, epochs: int = 1, replay: float = 0.0,
               num_negatives: int = 4, batch_size: int = 256, seed: Optional[int] = None,
               verbose: Any = "auto", callbacks: Any = None):
        """Train on a new day's interactions, new users and items included, without a retrain.

        Steps: extend the encoders with the log's new ids (codes of known ids never
        change), grow the user and item embedding tables to match (new rows drawn from
        each table's initializer; the optimizer's state grows with them), merge the
        log's pairs into the seen-matrix, then train ``epochs`` epochs on the log's pairs
        with fresh negatives that avoid everything each user has seen, old and new,
        mixed with ``replay`` old pairs per new pair so that old users do not drift.
        The compiled optimizer continues where it was (its step counts included).

        Args:
            log: The new interactions: an :class:`neurec.data.InteractionLog` or a pandas
                DataFrame (columns ``user``/``item`` or ``user_id``/``item_id``) of raw
                ids, which needs attached encoders; or an encoded ``(user_ids,
                item_ids)`` pair of codes (codes past the tables grow them; the
                encoders, if any, are left as they are).
            matrix: The encoded pairs the model was trained on (InteractionMatrix,
                scipy.sparse or ``(users, items)`` pair); default the model's
                :attr:`seen_matrix`. One of the two is required.
            epochs: Epochs over the log (and the replayed pairs).
            replay: Old pairs replayed per new pair, drawn once per call uniformly from
                the seen-matrix (``0.5``: half as many old pairs as new ones; at most all
                of them).
            num_negatives: Negatives per positive.
            batch_size: Samples per gradient step.
            seed: Seed of the replay draw, the negatives and the shuffling; default
                drawn from neurec's global RNG (:func:`neurec.utils.set_random_seed`).
            verbose: As for :meth:`fit`.
            callbacks: As for :meth:`fit`.

        Returns:
            The :class:`neurec.callbacks.History` of the epochs.

        Raises:
            RuntimeError: If the model was not compiled.
            TypeError: If ``log`` is of an unsupported type, or encoded ids are not integers.
            ValueError: If raw ids come without attached encoders, there is no seen-matrix
                (neither attached nor ``matrix=``), the log is empty, the model's first two
                inputs are not user and item ids feeding Embedding tables, the optimizer is
                ALS, or an argument is out of range. The model is unchanged when it raises.

        Example:
            >>> model = neurec.models.load_model("shop.neurec")   # encoders + seen-matrix
            >>> day = InteractionLog.read_csv("2024-05-02.csv", user_col="user_id",
            ...                               item_col="item_id")
            >>> model.update(day, epochs=2, replay=0.5)
            >>> model.recommend(["C009999"], k=10)               # a customer new today
            >>> model.save("shop.neurec")
        """
        if not self._compiled:
            raise RuntimeError("update: compile the model first (a loaded model is compiled "
                               "unless loaded with compile=False)")
        if isinstance(self.optimizer, optimizers_mod.ALS):
            raise ValueError("update trains with sampled negatives; a model compiled with ALS "
                             "folds in users with partial_fit_users, or recompile with 'adam'")
        replay = _check_number("replay", replay, 0.0)
        num_negatives = _check_number("num_negatives", num_negatives, 0, integer=True)
        user_tables, item_tables = id_tables(self, 0), id_tables(self, 1)
        if len(self.inputs) != 2 or not user_tables or not item_tables:
            raise ValueError("update needs a model whose two inputs are user ids and item ids, "
                             "each feeding Embedding tables (as the zoo's models)")
        n_users0, n_items0 = _table_rows(self, 0), _table_rows(self, 1)
        old = self._seen if matrix is None else as_matrix(matrix)
        if old is None:
            raise ValueError("update needs the pairs the model was trained on, to keep negatives "
                             "away from them: model.attach_seen_matrix(train_matrix) once (save "
                             "keeps it), or pass matrix=")
        if old.shape[0] > n_users0 or old.shape[1] > n_items0:
            raise ValueError(f"update: matrix has shape {old.shape}, larger than the model's "
                             f"tables ({n_users0} users, {n_items0} items)")
        uenc, ienc = self._user_encoder, self._item_encoder
        if isinstance(log, tuple):
            users, items = _encoded_pair(log)
        else:
            log = _as_log(log)
            if uenc is None or ienc is None:
                raise ValueError("update: the log holds raw ids but the model has no "
                                 f"{'user' if uenc is None else 'item'} encoder; attach them "
                                 "with model.attach_encoders(user=, item=) (save keeps them), "
                                 "or pass an encoded (user_ids, item_ids) pair")
            uenc, ienc = uenc.copy().partial_fit(log.users), ienc.copy().partial_fit(log.items)
            users, items = uenc.transform(log.users), ienc.transform(log.items)
        if users.size == 0:
            raise ValueError("update: the log is empty")
        n_users = max(n_users0, int(users.max()) + 1, len(uenc) if uenc is not None else 0)
        n_items = max(n_items0, int(items.max()) + 1, len(ienc) if ienc is not None else 0)
        shape = (n_users, n_items)
        new = InteractionMatrix.from_arrays(users, items, shape=shape, dedupe="max")
        seen = _union(old, new, shape)
        seed = _training.default_seed() if seed is None else _training.check_seed("update", seed)
        pos_u, pos_i, _ = new.to_coo()
        n_old = min(old.nnz, int(round(replay * new.nnz)))
        if n_old:
            ou, oi, _ = old.to_coo()
            pick = np.sort(np.random.default_rng(seed).choice(old.nnz, n_old, replace=False))
            pos_u, pos_i = np.concatenate([pos_u, ou[pick]]), np.concatenate([pos_i, oi[pick]])
        sampler = NegativeSampler(seen, num_negatives=num_negatives, seed=seed,
                                  positives=(pos_u, pos_i))
        # everything is checked: from here on the model changes
        grow = {t.name: n_users for t in user_tables if t.input_dim < n_users}
        grow.update({t.name: n_items for t in item_tables if t.input_dim < n_items})
        if grow:  # by layer: a table already larger than needed stays as it is
            self.resize_embeddings(grow, seed=seed)
        self._user_encoder, self._item_encoder = uenc, ienc
        self._seen = seen
        return self.fit(sampler, epochs=epochs, batch_size=batch_size, verbose=verbose,
                        seed=seed, callbacks=callbacks)
