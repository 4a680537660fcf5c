"""`ModelCheckpoint`: saves the model or its weights during training."""
from __future__ import annotations

import numbers
import os
import warnings

from neurec._filenames import check_model_path, check_weights_path, stem
from neurec.callbacks.base import _print
from neurec.callbacks.monitor import MonitorCallback

__all__ = ["ModelCheckpoint"]


class ModelCheckpoint(MonitorCallback):
    """Saves the model or its weights during training.

    Args:
        filepath: Path to write, formatted with ``epoch`` (1-based), ``batch``
            (1-based, with integer ``save_freq``) and the logs, e.g.
            ``"ckpt/{epoch:02d}-{val_loss:.2f}.neurec"``. Must end in
            ``.neurec`` or ``.keras`` (the whole model, `Model.save`; the
            same format under both names) or, with ``save_weights_only=True``,
            in ``.weights.npz`` (`Model.save_weights`; Keras's
            ``.weights.h5`` is written in neurec's weights format, with a note).
            Missing directories are created.
        monitor: Quantity compared when ``save_best_only=True``.
        verbose: ``1`` prints a message for each save decision.
        save_best_only: Save only when ``monitor`` improves on the best value
            so far. (If ``monitor`` is missing from the logs, a warning is
            issued and the model is saved, as in Keras 3.)
        save_weights_only: Save only the weights.
        mode: ``"min"``, ``"max"`` or ``"auto"``.
        save_freq: ``"epoch"`` to save after every epoch, or an int ``N`` to
            save each time the count of training batches crosses a multiple of
            ``N`` (checked once per chunk of batches).
        initial_value_threshold: Initial "best" value for
            ``save_best_only=True``.

    Raises:
        ValueError: If ``filepath`` has the wrong suffix (the message names
            the one to use) or ``save_freq`` is neither ``"epoch"`` nor a
            positive int.
        KeyError: At save time, if ``filepath`` names a key absent from the
            logs.
    """

    _missing_monitor_warning = "Can save best model only with {monitor} available."

    def __init__(
        self,
        filepath: str | os.PathLike,
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: str = "auto",
        save_freq: str | int = "epoch",
        initial_value_threshold: float | None = None,
    ) -> None:
        filepath = os.fspath(filepath)
        super().__init__(monitor, mode, baseline=initial_value_threshold)
        self.filepath = filepath
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        if save_freq != "epoch" and (
                not isinstance(save_freq, numbers.Integral)
                or isinstance(save_freq, bool) or save_freq < 1):
            raise ValueError(
                f"Unrecognized save_freq: {save_freq!r}. Expected save_freq "
                "are 'epoch' or positive integer values (a number of batches).")
        self.save_freq = save_freq
        # the rules of save / save_weights (neurec._filenames), checked now, not after an epoch
        if save_weights_only:
            check_weights_path(filepath, "ModelCheckpoint(save_weights_only=True)",
                               ", or pass save_weights_only=False to save the whole model")
        else:
            check_model_path(filepath, "ModelCheckpoint", ", or pass save_weights_only=True "
                             f"with '{stem(filepath)}.weights.npz' to save the weights alone")
        self._current_epoch = 0
        self._batches_seen = 0
        self._last_batch_seen = -1

    def on_train_begin(self, logs=None):
        if self.best is None:
            self.best = self._worst()
        self._batches_seen = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch
        self._last_batch_seen = -1

    def on_train_batch_end(self, batch, logs=None):
        if self._should_save_on_batch(batch):
            self._save_model(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save_model(epoch, None, logs)

    def _should_save_on_batch(self, batch: int) -> bool:
        if self.save_freq == "epoch":
            return False
        if batch <= self._last_batch_seen:  # a new epoch without on_epoch_begin
            self._last_batch_seen = -1
        before = self._batches_seen
        self._batches_seen += batch - self._last_batch_seen
        self._last_batch_seen = batch
        return self._batches_seen // self.save_freq > before // self.save_freq

    def _should_save_model(self, epoch, logs, filepath) -> bool:
        if not self.save_best_only:
            if self.verbose > 0:
                _print(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        current = self.get_monitor_value(logs)
        if current is None:
            return True
        if self.best is None:
            self.best = self._worst()
        best_str = f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                _print(f"\nEpoch {epoch + 1}: {self.monitor} improved from "
                       f"{best_str} to {current:.5f}, saving model to {filepath}")
            self.best = current
            return True
        if self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve "
                   f"from {best_str}")
        return False

    def _save_model(self, epoch, batch, logs):
        logs = logs or {}
        filepath = self._get_file_path(epoch, batch, logs)
        if not self._should_save_model(epoch, logs, filepath):
            return
        if os.path.isdir(filepath):
            raise IsADirectoryError(
                "Please specify a non-directory filepath for ModelCheckpoint. "
                f"Filepath used is an existing directory: {filepath}")
        dirname = os.path.dirname(filepath)
        if dirname:
            os.makedirs(dirname, exist_ok=True)
        if self.save_weights_only:
            with warnings.catch_warnings():  # the note on a '.weights.h5' name came at __init__
                warnings.simplefilter("ignore", UserWarning)
                self.model.save_weights(filepath)
        else:
            self.model.save(filepath)

    def _get_file_path(self, epoch, batch, logs) -> str:
        fields = dict(logs)
        fields["epoch"] = epoch + 1
        if batch is not None and "batch" not in logs:
            fields["batch"] = batch + 1
        try:
            return self.filepath.format(**fields)
        except KeyError as e:
            raise KeyError(
                f'Failed to format this callback filepath: "{self.filepath}". '
                f"Reason: {e} is not in the logs; available keys: "
                f"{', '.join(sorted(fields))}.") from None
