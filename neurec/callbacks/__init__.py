"""Keras-style callbacks: hooks into ``Model.fit``, ``evaluate`` and ``predict``.

Code written for ``keras.callbacks`` runs unchanged with ``neurec.callbacks``::

    from neurec.callbacks import EarlyStopping, ModelCheckpoint
    model.fit(x, y, epochs=20, validation_data=(xv, yv),
              callbacks=[EarlyStopping(patience=2, restore_best_weights=True),
                         ModelCheckpoint("best.neurec", save_best_only=True)])

Batch hooks and chunks:
    neurec's C core trains a *chunk* of batches (about 0.1-0.5 s of work)
    before it returns to Python, so batch hooks run once per chunk, not once
    per batch: ``on_train_batch_begin(batch)`` receives the index of the first
    batch of the chunk and ``on_train_batch_end(batch, logs)`` the index of the
    last one, with ``logs`` holding running means over the epoch so far.
    Consecutive indices can therefore jump by many batches; the callbacks here
    account for that (progress bar, ``ModelCheckpoint(save_freq=int)``).
    Setting ``model.stop_training = True`` from a batch hook takes effect at
    the end of the current chunk.

Monitored quantities and ``mode="auto"``:
    A monitor whose name (without a ``val_`` prefix) contains ``acc``,
    ``auc``, ``hr@``, ``ndcg``, ``mrr``, ``precision`` or ``recall``, or is
    ``map``/``map@K``, is maximised; every other quantity (``loss``, ``mse``,
    ...) is minimised. `EarlyStopping`, `ModelCheckpoint` and
    `ReduceLROnPlateau` share one improvement test, that of their base class
    `neurec.callbacks.monitor.MonitorCallback`.
"""
from neurec.callbacks.base import Callback, History
from neurec.callbacks.callback_list import CallbackList
from neurec.callbacks.csv_logger import CSVLogger
from neurec.callbacks.early_stopping import EarlyStopping
from neurec.callbacks.lambda_callback import LambdaCallback
from neurec.callbacks.learning_rate import LearningRateScheduler, ReduceLROnPlateau
from neurec.callbacks.model_checkpoint import ModelCheckpoint
from neurec.callbacks.progbar_logger import ProgbarLogger
from neurec.callbacks.terminate_on_nan import TerminateOnNaN

__all__ = [
    "Callback", "CallbackList", "History", "ProgbarLogger", "EarlyStopping",
    "ModelCheckpoint", "CSVLogger", "LambdaCallback", "LearningRateScheduler",
    "ReduceLROnPlateau", "TerminateOnNaN",
]
