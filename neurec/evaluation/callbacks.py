"""A Keras-style callback that logs ranking metrics at the end of epochs."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, Union

from neurec.callbacks import Callback
from neurec.evaluation.protocols import _check_batch_size, _FullTask, _SampledTask
from neurec.evaluation.ranking import _check_k

__all__ = ["RankingMetrics"]


class RankingMetrics(Callback):
    """Computes HR@K, NDCG@K, MRR and AUC every ``every`` epochs during `fit`.

    With ``negatives`` it runs the sampled NCF protocol (`evaluate_sampled`),
    otherwise full ranking against ``train_matrix`` (`evaluate_full`). The
    results are written into the epoch's ``logs`` as ``prefix + name``
    (``'val_hr@10'``, ``'val_ndcg@10'``, ...), so `History` records them and
    ``EarlyStopping(monitor='val_ndcg@10')`` can watch them: list this
    callback *before* the callbacks that read its keys. Inputs are validated
    once, here; each evaluation then only scores.

    On epochs that are skipped (``every > 1``) no key is written, as with
    Keras's ``validation_freq``.

    Args:
        users: Integer user ids to evaluate.
        pos_items: Each user's held-out item(s); see `evaluate_full` for the
            several-items-per-user forms.
        negatives: Shape ``(n_users, n_neg)`` sampled negatives, or ``None``
            for full ranking.
        train_matrix: Items to exclude in full ranking (required then).
        k: Cutoff, or a sequence of cutoffs.
        prefix: Prepended to every key, e.g. ``'val_'``.
        every: Evaluate on epochs ``every - 1, 2 * every - 1, ...`` (0-based).
        batch_size: Passed to ``model.predict``.
        n_items: Catalog size for full ranking (default ``train_matrix.shape[1]``;
            required when ``train_matrix`` is a ``(users, items)`` tuple).

    Raises:
        ValueError: If both or neither of ``negatives`` and ``train_matrix``
            are given, ``every < 1``, or the evaluation data is invalid.
        TypeError: If ``prefix`` is not a string or ids are not integers.

    Example:
        >>> model.fit(x, y, epochs=20, callbacks=[
        ...     RankingMetrics(ds.test_users, ds.test_items, ds.test_negatives,
        ...                    prefix="val_"),
        ...     EarlyStopping(monitor="val_ndcg@10", patience=3)])
        >>> model.history.history["val_hr@10"]
    """

    def __init__(self, users: Any, pos_items: Any, negatives: Any = None,
                 train_matrix: Any = None, k: Union[int, Sequence] = 10, prefix: str = "",
                 every: int = 1, batch_size: Optional[int] = 4096,
                 n_items: Optional[int] = None) -> None:
        super().__init__()
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a string, got {type(prefix).__name__}")
        if negatives is not None and train_matrix is not None:
            raise ValueError("pass negatives= (sampled protocol) or train_matrix= (full "
                             "ranking), not both")
        if negatives is None and train_matrix is None:
            raise ValueError("pass negatives= for the sampled protocol or train_matrix= for "
                             "full ranking")
        self.prefix = prefix
        self.every = _check_k(every, "every")
        self.batch_size = _check_batch_size(batch_size)
        if negatives is not None:
            self._task: Any = _SampledTask(users, pos_items, negatives, k)
        else:
            self._task = _FullTask(users, pos_items, train_matrix, k, n_items)

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        """Evaluates ``self.model`` and writes the metrics into ``logs``."""
        if (epoch + 1) % self.every:
            return
        results = self._task.run(self.model, self.batch_size)
        if logs is not None:
            for name, value in results.items():
                logs[self.prefix + name] = value
