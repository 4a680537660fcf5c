"""`CSVLogger`: streams epoch results to a CSV file."""
from __future__ import annotations

import csv
import os
from collections.abc import Iterable

import numpy as np

from neurec.callbacks.base import Callback

__all__ = ["CSVLogger"]


class CSVLogger(Callback):
    """Streams epoch results to a CSV file.

    The header is ``epoch`` (0-based, as in Keras) followed by the first
    epoch's log keys in sorted order; later epochs write ``NA`` for a missing
    key. The file is flushed after every epoch.

    Args:
        filename: Path of the CSV file, e.g. ``"run/log.csv"``.
        separator: Field separator.
        append: Append to an existing file (no second header) instead of
            overwriting it.
    """

    def __init__(self, filename: str | os.PathLike, separator: str = ",",
                 append: bool = False) -> None:
        super().__init__()
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError("CSVLogger `separator` must be a single character; "
                             f"received separator={separator!r}.")
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = append
        self.writer = None
        self.keys: list[str] | None = None
        self.append_header = True
        self.csv_file = None

    def on_train_begin(self, logs=None):
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename, encoding="utf-8") as f:
                    self.append_header = not bool(len(f.readline()))
            mode = "a"
        else:
            self.append_header = True
            mode = "w"
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode, newline="", encoding="utf-8")
        self.writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            for name in getattr(self.model, "metrics_names", None) or ():
                if name.startswith("val_") and name not in self.keys:
                    self.keys.append(name)
        if self.writer is None:
            self.writer = csv.writer(self.csv_file, delimiter=self.sep,
                                     lineterminator="\n")
            if self.append_header:
                self.writer.writerow(["epoch", *self.keys])
        self.writer.writerow(
            [epoch, *(_csv_value(logs.get(key, "NA")) for key in self.keys)])
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


def _csv_value(value):
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    if isinstance(value, Iterable):
        return f"[{', '.join(map(str, value))}]"
    return value
