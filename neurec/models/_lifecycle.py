"""The model's life after the first fit: raw-id encoders, the seen-matrix, daily updates.

A shop's catalogue and customers change every day. ``Lifecycle`` (a base class of
``Model``) keeps with the model what serving and updating it need besides its weights:

* the ``IdEncoder`` of users and of items (``attach_encoders``), so that ``recommend``
  takes raw customer ids and returns raw product ids;
* the seen-matrix (``attach_seen_matrix``): the (user, item) pairs the model was trained
  on, which ``recommend`` excludes by default and ``update`` keeps negatives away from;
* ``update``: extend the encoders with a day's new ids, grow the embedding tables, merge
  the day's pairs into the seen-matrix and train a few epochs on them (plus replayed old
  pairs), without retraining from scratch.

``save`` / ``load_model`` keep all three (``neurec/models/saving.py``).
"""
from typing import Any, List, Optional

import numpy as np

from neurec.data.encoders import IdEncoder
from neurec.data.interactions import InteractionMatrix
from neurec.data.sampling import as_matrix
from neurec.layers.core import Embedding

__all__ = ["Lifecycle", "id_tables"]

def id_tables(model, slot: int) -> List[Embedding]:
    """The Embedding layers fed directly by input ``slot`` of ``model`` (0: user ids, 1: item
    ids), in graph order; empty when the input feeds no Embedding."""
    if slot >= len(model.inputs):
        return []
    t = model.inputs[slot]
    return [n.layer for n in model._nodes_in_order
            if isinstance(n.layer, Embedding) and n.inputs and n.inputs[0] is t]


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
        """Keep the (user, item) pairs the model was trained on, as encoded ids.

        ``recommend`` excludes them by default (``exclude=False`` turns that off),
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
