"""Non-neural baselines with the model interface the evaluation protocols use."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from neurec.evaluation.ranking import _as_ids, _check_k, _to_csr, top_k

__all__ = ["PopularityModel"]


class PopularityModel:
    """Recommends the most popular items (TopPop): the same ranking for all.

    An item's score is the number of distinct users who interacted with it in
    the training data. It plugs into `evaluate_sampled`, `evaluate_full` and
    `RankingMetrics` like a neural model, and is the floor every model should
    clear (TopPop: HR@10 .453 on ML-1M in Dacrema et al. 2019).

    Attributes:
        popularity_: float32 array of shape ``(n_items,)`` after `fit`.

    Example:
        >>> pop = PopularityModel().fit(train_matrix)
        >>> ids, scores = pop.recommend([0, 1], k=10, exclude=train_matrix)
        >>> evaluate_sampled(pop, users, items, negatives)
    """

    def __init__(self) -> None:
        self.popularity_: Optional[np.ndarray] = None

    @property
    def n_items(self) -> int:
        """The catalog size seen in `fit`."""
        return self._fitted().size

    def _fitted(self) -> np.ndarray:
        if self.popularity_ is None:
            raise RuntimeError("PopularityModel is not fitted yet: call fit(interactions) first")
        return self.popularity_

    def fit(self, interactions: Any, n_items: Optional[int] = None) -> PopularityModel:
        """Counts each item's users.

        Args:
            interactions: A ``neurec.data.InteractionMatrix``, a scipy.sparse
                matrix, an ``InteractionLog`` or a ``(users, items)`` tuple of
                id arrays. Repeated (user, item) pairs count once.
            n_items: Catalog size; default the matrix width (tuples: the
                largest item id + 1). Items never seen score 0.

        Returns:
            ``self``.

        Raises:
            TypeError, ValueError: If ``interactions`` is not one of the
                accepted forms or holds invalid ids.
        """
        _, indices, shape = _to_csr(interactions, "interactions")
        width = shape[1] if n_items is None else _check_k(n_items, "n_items")
        if width < shape[1]:
            raise ValueError(f"n_items = {width} is smaller than the {shape[1]} items in "
                             "interactions")
        self.popularity_ = np.bincount(indices, minlength=width).astype(np.float32)
        return self

    def predict(self, x: Any, batch_size: Optional[int] = None, verbose: Any = 0) -> np.ndarray:
        """Scores (user, item) pairs: the item's popularity.

        Args:
            x: ``[user_ids, item_ids]``, two equal-length integer arrays.
            batch_size: Ignored (Keras signature).
            verbose: Ignored (Keras signature).

        Returns:
            float32 array of shape ``(n, 1)``.

        Raises:
            ValueError: If ``x`` is not a pair of equal-length id arrays or an
                item id is outside the catalog.
            RuntimeError: If the model is not fitted.
        """
        pop = self._fitted()
        if not isinstance(x, (list, tuple)) or len(x) != 2:
            raise ValueError("x must be [user_ids, item_ids]")
        users = _as_ids(x[0], "x[0] (user_ids)")
        items = _as_ids(x[1], "x[1] (item_ids)")
        if users.size != items.size:
            raise ValueError(f"user_ids and item_ids must have the same length, got "
                             f"{users.size} and {items.size}")
        if items.size and items.max() >= pop.size:
            raise ValueError(f"item id {int(items.max())} is outside the catalog of "
                             f"{pop.size} items")
        return pop[items].reshape(-1, 1)

    def score_items(self, user_ids: Any) -> np.ndarray:
        """Scores of every item for each user: shape ``(len(user_ids), n_items)``."""
        users = _as_ids(user_ids, "user_ids")
        return np.tile(self._fitted(), (users.size, 1))

    def recommend(self, users: Any, k: int = 10, exclude: Any = None) -> tuple:
        """Top-``k`` items per user, skipping the items in ``exclude``.

        Args:
            users: Integer user ids.
            k: Items per user, >= 1.
            exclude: Items to skip per user (an InteractionMatrix, scipy.sparse
                matrix or ``(users, items)`` tuple; rows are user ids), or None.

        Returns:
            ``(ids, scores)``: int64 and float32 arrays of shape
            ``(len(users), k)``, most popular first (equal popularity: lower id
            first). Users with fewer than ``k`` unseen items are padded with
            id -1 and score -inf.

        Raises:
            TypeError, ValueError: For invalid ids, ``k`` or ``exclude``.
            RuntimeError: If the model is not fitted.
        """
        u = _as_ids(users, "users")
        # One shared score row: the C top-K reads it for every user, no copy.
        return top_k(self._fitted(), k, exclude=exclude, users=u)
