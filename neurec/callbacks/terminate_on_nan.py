"""`TerminateOnNaN`: stops training when the loss becomes NaN or infinite."""
from __future__ import annotations

import numpy as np

from neurec.callbacks.base import Callback, _print

__all__ = ["TerminateOnNaN"]


class TerminateOnNaN(Callback):
    """Stops training when the loss becomes NaN or infinite.

    Checked on every batch-end hook, i.e. once per chunk of batches in neurec
    (the logged loss is a running mean, so a NaN stays visible).
    """

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            _print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True
