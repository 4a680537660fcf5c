"""``Model.predict``'s loop: C calls over chunks of batches, with its bar and callbacks.

The C plan predicts a chunk of samples per call (about ``CHUNK_SECONDS`` of work, the GIL
released); between chunks Python updates the progress bar, runs the callbacks' predict
hooks and lets Ctrl-C through. Nothing runs per sample or per batch in Python.
"""
from typing import Any, List, Optional

import numpy as np

from neurec.callbacks.callback_list import CallbackList
from neurec.models._chunks import run_chunked
from neurec.utils.progbar import resolve_verbose, waiting_bar

__all__ = ["predict_arrays"]

# rows of the first C call and fewest rows of any call (as run_chunked's defaults)
_FIRST_ROWS, _MIN_ROWS = 8192, 1024


def predict_arrays(model, inputs: List[np.ndarray], batch_size: int = 32, verbose: Any = 0,
                   callbacks: Any = None, first_batch: int = 0) -> np.ndarray:
    """The model's outputs for ``inputs`` (checked, contiguous arrays).

    Samples are cut into ``ceil(n / batch_size)`` batches, as in Keras, and each C call
    predicts a whole number of them (a chunk). With ``callbacks``, ``on_predict_begin``,
    then for each chunk ``on_predict_batch_begin(first batch)`` and
    ``on_predict_batch_end(last batch, {"outputs": the chunk's outputs})``, then
    ``on_predict_end`` are called, as Keras calls them per batch. The batching never
    changes the outputs (each sample is predicted on its own).

    Args:
        model: The model (its plan is built on first use).
        inputs: One array per model input, ``n`` rows each.
        batch_size: Samples per batch (the unit of the bar and of the batch hooks).
        verbose: ``"auto"``, 0, 1 or 2: the bar of :func:`neurec.utils.progbar.waiting_bar`
            (nothing drawn for a call shorter than two seconds).
        callbacks: A list of :class:`neurec.callbacks.Callback` (or None).
        first_batch: The index the hooks give the first batch (a rank's share of a
            distributed ``predict`` starts past the other ranks' batches).

    Returns:
        A float32 array of shape ``(n,) + output_shape[1:]``.

    Raises:
        ValueError: For an invalid ``verbose``.
        TypeError: For callbacks that are not Callback instances.
    """
    level = resolve_verbose("predict", verbose)
    plan = model._get_plan()
    n = inputs[0].shape[0]
    out = np.empty((n,) + tuple(model.output_shape[1:]), dtype=np.float32)
    if level == 0 and not callbacks:  # the internal path: no Python between chunks
        run_chunked(lambda s, e: plan.predict([a[s:e] for a in inputs], out[s:e]), n)
        return out
    steps = -(-n // batch_size)
    bar = waiting_bar("predict", level, steps, unit_name="step")
    cbs: Optional[CallbackList] = None
    if callbacks:
        cbs = CallbackList(callbacks, model=model, verbose=level, epochs=1, steps=steps)
        cbs.on_predict_begin()

    def chunk(b0: int, b1: int) -> None:  # batches [b0, b1)
        s, e = b0 * batch_size, min(n, b1 * batch_size)
        if cbs is not None:
            cbs.on_predict_batch_begin(first_batch + b0)
        plan.predict([a[s:e] for a in inputs], out[s:e])
        if cbs is not None:
            cbs.on_predict_batch_end(first_batch + b1 - 1, {"outputs": out[s:e]})
        bar.update(b1, finalize=False)

    run_chunked(chunk, steps, first=max(1, _FIRST_ROWS // batch_size),
                minimum=max(1, _MIN_ROWS // batch_size))
    bar.update(steps, finalize=True)
    if cbs is not None:
        cbs.on_predict_end()
    return out
