"""Retired items: ``Model.retire_items``, ``Model.unretire_items``, ``Model.retired_items``.

An item leaves the catalog (sold out, withdrawn) without leaving the model: its rows stay
(ids keep their meaning, the item can come back), but ``recommend`` never returns it, on
every path (the dot-product fast path gives it a NaN bias, which the C top-K skips; the
generic path and ``items=`` drop it from the candidates; the cold-start popularity path
masks it). The set is part of the model: ``save`` writes it and ``load_model`` restores it.
"""
from typing import Any, Optional

import numpy as np

__all__ = ["RetireMixin"]

_MAX_ID = 2**62


def _item_ids(ids: Any, fn: str) -> np.ndarray:
    """Sorted distinct int64 item ids from ``ids``; ValueError/TypeError otherwise."""
    a = np.asarray(ids)
    if a.dtype == object or a.dtype.kind not in "iuf":
        raise TypeError(f"{fn}: ids must be integer item ids, got dtype {a.dtype}; map raw ids "
                        "with the item IdEncoder's transform first")
    a = a.ravel()
    if a.dtype.kind == "f" and a.size and not np.all(np.isfinite(a) & (a == np.trunc(a))):
        raise ValueError(f"{fn}: ids must be whole numbers")
    if a.size and (a.min() < 0 or a.max() > _MAX_ID):
        raise ValueError(f"{fn}: item ids must be in [0, 2**62], got {a.min()}..{a.max()}")
    return np.unique(a.astype(np.int64))


class RetireMixin:
    """Retiring items from recommendation (a base class of :class:`neurec.models.Model`)."""

    _retired: Optional[np.ndarray] = None  # sorted distinct int64 ids, or None

    @property
    def retired_items(self) -> np.ndarray:
        """The retired item ids: a sorted int64 array (a copy; empty when none).

        Example:
            >>> model.retire_items([9, 4]); model.retired_items
            array([4, 9])
        """
        return np.empty(0, np.int64) if self._retired is None else self._retired.copy()

    def retire_items(self, ids: Any) -> None:
        """Never recommend these items again; their rows and everything else stay.

        ``recommend`` skips them on every path (any model, ``items=`` candidate lists,
        ``unknown='popular'``); ``predict``, ``score_items`` and ``fit`` still see them
        (training on their past interactions keeps the other rows right). The set is saved
        with the model. Retiring a retired item, or an id beyond the item table (it applies
        once the table grows), is allowed. :meth:`unretire_items` undoes it.

        Args:
            ids: Item ids (indices, as ``recommend`` returns them).

        Returns:
            None.

        Raises:
            TypeError: If ``ids`` are not integers.
            ValueError: For negative or fractional ids.

        Example:
            >>> model.retire_items([3, 17])          # sold out
            >>> ids, _ = model.recommend([0], k=10)  # never 3 or 17
            >>> model.unretire_items([3])            # back in stock
        """
        new = _item_ids(ids, "retire_items")
        if new.size:
            old = self._retired
            self._retired = new if old is None else np.union1d(old, new)

    def unretire_items(self, ids: Any = None) -> None:
        """Make retired items recommendable again.

        Args:
            ids: Item ids to bring back (ids that are not retired are ignored); ``None``:
                all of them.

        Returns:
            None.

        Raises:
            TypeError: If ``ids`` are not integers.
            ValueError: For negative or fractional ids.

        Example:
            >>> model.retire_items([3, 17])
            >>> model.unretire_items([3])
            >>> model.retired_items
            array([17])
        """
        if ids is None:
            self._retired = None
            return
        back = _item_ids(ids, "unretire_items")
        if self._retired is not None:
            keep = np.setdiff1d(self._retired, back, assume_unique=True)
            self._retired = keep if keep.size else None
