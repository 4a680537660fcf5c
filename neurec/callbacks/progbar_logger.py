"""`ProgbarLogger`: Keras's progress bar for `fit`, `evaluate` and `predict`."""
from __future__ import annotations

from neurec.callbacks.base import Callback, _print

__all__ = ["ProgbarLogger"]


class ProgbarLogger(Callback):
    """Prints Keras's progress bar and metrics to ``sys.stdout``.

    `fit` adds it unless ``verbose=0``. It reads ``epochs``, ``steps`` and
    ``verbose`` (``1``, ``2`` or ``"auto"`` = 1) from ``params``. Batch logs
    are displayed as given (neurec's batch logs are already running means over
    the epoch); the epoch-end line shows the epoch logs, ``val_*`` included.
    Validation inside `fit` is silent.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0
        self.progbar = None
        self.target: int | None = None
        self.verbose = 1
        self.epochs = 1
        self._called_in_fit = False

    def set_params(self, params):
        super().set_params(params)
        params = params or {}
        verbose = params.get("verbose", 1)
        self.verbose = 1 if verbose == "auto" else verbose
        self.epochs = params.get("epochs", 1) or 1
        self.target = params.get("steps")

    def on_train_begin(self, logs=None):
        self._called_in_fit = True

    def on_test_begin(self, logs=None):
        if not self._called_in_fit:
            self._reset_progbar()
            self._maybe_init_progbar()

    def on_predict_begin(self, logs=None):
        self._reset_progbar()
        self._maybe_init_progbar()

    def on_epoch_begin(self, epoch, logs=None):
        self._reset_progbar()
        self._maybe_init_progbar()
        if self.verbose and self.epochs > 1:
            _print(f"Epoch {epoch + 1}/{self.epochs}")

    def on_train_batch_end(self, batch, logs=None):
        self._update_progbar(batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        if not self._called_in_fit:
            self._update_progbar(batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._update_progbar(batch, None)

    def on_epoch_end(self, epoch, logs=None):
        self._finalize_progbar(logs)

    def on_test_end(self, logs=None):
        if not self._called_in_fit:
            self._finalize_progbar(logs)

    def on_predict_end(self, logs=None):
        self._finalize_progbar(logs)

    def _reset_progbar(self):
        self.seen = 0
        self.progbar = None

    def _maybe_init_progbar(self):
        if self.progbar is None:
            from neurec.utils.progbar import Progbar
            self.progbar = Progbar(target=self.target, verbose=self.verbose,
                                   unit_name="step")

    def _update_progbar(self, batch, logs):
        logs = logs or {}
        self._maybe_init_progbar()
        self.seen = batch + 1
        if self.verbose == 1:
            self.progbar.stateful_metrics.update(logs)
            self.progbar.update(self.seen, list(logs.items()), finalize=False)

    def _finalize_progbar(self, logs):
        logs = logs or {}
        self._maybe_init_progbar()
        if self.target is None:
            self.target = self.seen
            self.progbar.target = self.seen
        self.progbar.update(self.target, list(logs.items()), finalize=True)
