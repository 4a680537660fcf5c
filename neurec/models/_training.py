"""``Model.fit`` with a gradient optimizer: argument checks, training data, the epoch loop.

The loop hands the C core chunks of batches (one ``plan.fit`` call, GIL released) from a
source (``_adapters``: about ``FIT_CHUNK_SECONDS`` of arrays, or runs of batches from
Python); between chunks it reports progress, runs callbacks, honours
``model.stop_training`` and lets Ctrl-C through. The optimizer's step count lives
in a one-element array the C core advances in place, so a chunk's steps are never lost.
"""
import numbers
import time
from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Union

import numpy as np

from neurec.callbacks import CallbackList, History
from neurec.initializers import _global_rng
from neurec.models import _data, _dp_local, _weights
from neurec.models._chunks import FIT_CHUNK_SECONDS, next_chunk

ValidationFreq = Union[int, List[int]]


# -- arguments ---------------------------------------------------------------------------
def check_int(fn: str, name: str, value: Any, minimum: int, hint: str) -> int:
    """``value`` as an int >= minimum; TypeError/ValueError naming the argument otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{fn}: {name} must be an integer, got {value!r}; {hint}")
    if value < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value!r}; {hint}")
    return int(value)


def check_verbose(fn: str, verbose: Any) -> int:
    if verbose == "auto" and isinstance(verbose, str):
        return 1
    if isinstance(verbose, (bool, np.bool_)):  # Keras accepts verbose=True/False
        return int(verbose)
    if not isinstance(verbose, (int, np.integer)) or verbose not in (0, 1, 2):
        raise ValueError(f"{fn}: verbose must be 'auto', 0 (silent), 1 (progress bar) or 2 (one "
                         f"line per epoch), got {verbose!r}")
    return int(verbose)


def check_seed(fn: str, seed: Any) -> Optional[int]:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{fn}: seed must be an integer in [0, 2**64) or None, got {seed!r}; "
                        "pass e.g. seed=42")
    if not 0 <= int(seed) < 2**64:
        raise ValueError(f"{fn}: seed must be in [0, 2**64), got {seed!r}; pass e.g. seed=42")
    return int(seed)


class FitOptions(NamedTuple):
    """``fit``'s arguments, checked (see :func:`fit_options`)."""

    batch_size: int
    epochs: int
    initial_epoch: int
    validation_freq: ValidationFreq
    validation_split: float
    shuffle: bool
    verbose: int
    seed: Optional[int]  # None: draw one with default_seed()


def default_seed() -> int:
    """A seed from neurec's global RNG (see :func:`neurec.utils.set_random_seed`)."""
    return int(_global_rng().integers(0, 2**63 - 1))


def fit_options(batch_size: int, epochs: Any, initial_epoch: Any, validation_freq: Any,
                validation_split: Any, shuffle: Any, verbose: Any, seed: Any) -> FitOptions:
    """Check ``fit``'s arguments (Keras semantics).

    Raises:
        TypeError: If ``epochs``, ``initial_epoch``, ``validation_freq`` or ``seed`` is not
            an integer, or ``shuffle`` not a bool.
        ValueError: If an argument is out of range.
    """
    # Keras semantics: epochs is the index of the last epoch, an int (2.7 must not run 2)
    epochs = check_int("fit", "epochs", epochs, 0, "pass a whole number of epochs, e.g. epochs=3")
    initial_epoch = check_int("fit", "initial_epoch", initial_epoch, 0,
                              "pass the index of the first epoch to run, e.g. initial_epoch=0")
    hint_freq = "validate every k epochs (k >= 1, e.g. validation_freq=1) or after the " \
                "1-based epochs of a list (e.g. validation_freq=[1, 5, 10])"
    if isinstance(validation_freq, (list, tuple, set, range)):
        validation_freq = [check_int("fit", "validation_freq", e, 1, hint_freq)
                           for e in validation_freq]
    else:
        validation_freq = check_int("fit", "validation_freq", validation_freq, 1, hint_freq)
    if isinstance(validation_split, bool) or not isinstance(validation_split, numbers.Real) \
            or not 0.0 <= float(validation_split) < 1.0:
        raise ValueError(f"fit: validation_split must be a number in [0, 1), got "
                         f"{validation_split!r}; e.g. validation_split=0.1")
    if not isinstance(shuffle, (bool, np.bool_)) and not (
            isinstance(shuffle, (int, np.integer)) and shuffle in (0, 1)):
        raise TypeError(f"fit: shuffle must be True or False, got {shuffle!r}")
    verbose = check_verbose("fit", verbose)
    seed = check_seed("fit", seed)
    return FitOptions(batch_size, epochs, initial_epoch, validation_freq,
                      float(validation_split), bool(shuffle), verbose, seed)


# -- data --------------------------------------------------------------------------------
class TrainingData:
    """What ``fit`` trains on: checked arrays, or a NegativeSampler drawing every epoch.

    Args:
        model: The model; ``builder`` its plan's builder (the id checks of its inputs).
        x, y: ``fit``'s data (``x`` a sampler and ``y`` None, or inputs and labels).
        validation_split: Share of the arrays held out from the end (0 with a sampler);
            ``sample_weight`` is split with the data (Keras).
        validation_data: ``(x_val, y_val)`` or ``(x_val, y_val, sample_weight_val)``; it
            overrides ``validation_split`` (Keras).
        sample_weight: Per-sample loss weights of the arrays, or None (not with a sampler:
            its per-positive weights are ``NegativeSampler(weights=)``).
        class_weight: ``{label: weight}`` (1.0 for a label it does not name), or None;
            not with ``sample_weight`` (as Keras 3); multiplies a sampler's weights.
            Training data only, as in Keras.

    Attributes:
        sampler: The NegativeSampler, or None.
        num_samples: Samples per epoch.
        weights: Float32 loss weight per training sample (with a sampler: per row of an
            epoch, the same every epoch), or None.
        validation: ``(inputs, labels, weights or None)`` to validate on, or None.

    Raises:
        TypeError: For weights that are not numbers, or a malformed ``class_weight``.
        ValueError: For invalid data or weights, a label without a class weight, or a split
            that leaves either side empty.
    """

    def __init__(self, model, builder, x, y, validation_split: float, validation_data,
                 sample_weight=None, class_weight=None):
        self.model, self.builder = model, builder
        out_size = int(np.prod(model.output_shape[1:]))
        if validation_data is not None:
            validation_split = 0.0  # Keras: validation_data overrides validation_split
        self.sampler = x if hasattr(x, "_neurec_epoch") else None
        self.validation: Optional[Tuple[List[np.ndarray], np.ndarray, Optional[np.ndarray]]] = None
        if self.sampler is not None:
            class_weight = _weights.check_class_weight("fit", class_weight)
            if y is not None:
                raise ValueError("fit: y must be None when x is a NegativeSampler (it makes the labels)")
            if validation_split:
                raise ValueError("fit: validation_split is not supported with a NegativeSampler; "
                                 "pass validation_data or a ranking callback")
            if sample_weight is not None:
                raise ValueError("fit: sample_weight must be None when x is a NegativeSampler (its "
                                 "rows change every epoch); pass one weight per positive as "
                                 "NegativeSampler(..., weights=...)")
            self._roles = self.sampler._check_model(model, builder.id_checks)
            self.inputs = self.labels = None
            self.num_samples = self.sampler.num_samples
            self.weights = _weights.sampler_weights(self.sampler, class_weight)
        else:
            inputs = _data.prepare_inputs(model, x, builder)
            n = inputs[0].shape[0]
            labels = _data.prepare_labels(y, n, out_size)
            _weights.refuse_both("fit", sample_weight, class_weight)
            sw = _weights.check_sample_weight("fit", sample_weight, n)
            if validation_split:
                k = int(n * (1.0 - float(validation_split)))
                if k <= 0 or k >= n:
                    raise ValueError(f"validation_split={validation_split} leaves no training or no "
                                     f"validation samples out of {n}")
                # the tail of arrays already checked: no second validation
                self.validation = ([a[k:] for a in inputs], labels[k:],
                                   None if sw is None else sw[k:])
                inputs = [a[:k] for a in inputs]
                labels = labels[:k]
                sw = None if sw is None else sw[:k]
                n = k
            self.inputs, self.labels, self.num_samples = inputs, labels, n
            # class weights weigh the training part only (as Keras: validation keeps its
            # sample weights)
            self.weights = sw if class_weight is None else _weights.array_weights(
                "fit", None, class_weight, labels)
        if validation_data is not None:
            self.validation = validation_arrays(model, builder, validation_data)

    def epoch(self, epoch_seed: int, comm=None
              ) -> Tuple[List[np.ndarray], np.ndarray, Optional[np.ndarray]]:
        """The ``(inputs, labels, weights)`` of one epoch: fresh negatives from a sampler
        (whose rows keep their layout, so the weights are the same every epoch), drawn in
        shares by the ranks of ``comm`` when given (every rank holds the same sampler)."""
        if self.sampler is None:
            return self.inputs, self.labels, self.weights
        inputs, labels = self.sampler._neurec_epoch(
            epoch_seed, self.model, self._roles,
            lambda a: _data.prepare_inputs(self.model, a, self.builder), comm=comm)
        return inputs, labels, self.weights


def validation_arrays(model, builder, validation_data
                      ) -> Tuple[List[np.ndarray], np.ndarray, Optional[np.ndarray]]:
    """``validation_data`` ``(x_val, y_val[, sample_weight_val])`` as checked
    ``(inputs, labels, weights)`` arrays (``weights`` None without the third)."""
    if not isinstance(validation_data, (list, tuple)) or len(validation_data) not in (2, 3):
        raise ValueError("validation_data must be a tuple (x_val, y_val) or (x_val, y_val, "
                         "sample_weight_val), a generator or list of such batches, or a "
                         "PyDataset")
    vx = _data.prepare_inputs(model, validation_data[0], builder)
    vy = _data.prepare_labels(validation_data[1], vx[0].shape[0],
                              int(np.prod(model.output_shape[1:])))
    vw = _weights.check_sample_weight("fit", validation_data[2], vx[0].shape[0],
                                      "validation_data's sample_weight") \
        if len(validation_data) == 3 else None
    return vx, vy, vw


# -- the loop ----------------------------------------------------------------------------
def run(model, plan, source, opts: FitOptions, callbacks) -> Optional[History]:
    """Train ``model`` through its C ``plan`` for ``opts.initial_epoch .. opts.epochs - 1``.

    Args:
        source: Where the batches come from (``models._adapters``: arrays or a
            NegativeSampler, or a generator / PyDataset): ``steps`` (batches per epoch,
            None if unknown), ``validation`` (None or an object whose ``evaluate(model)``
            gives the ``val_`` logs), ``available(seed)`` (False once a generator ran out:
            training stops), ``begin_epoch(seed)``, ``next_chunk(max_batches)`` (a
            ``Chunk`` of consecutive batches for one ``plan.fit`` call, None at the epoch's
            end) and ``end_epoch()``.

    Returns:
        The model's History.
    """
    dp = _dp_local.begin(model, plan, source, opts, callbacks)
    if dp is not None:  # several processes under DataParallel
        opts, callbacks, source = dp.opts, dp.callbacks, dp.source
    model.stop_training = False
    cbs = CallbackList(callbacks, add_history=True, add_progbar=opts.verbose != 0, model=model,
                       verbose=opts.verbose, epochs=opts.epochs, steps=source.steps)
    opt = model.optimizer
    step = np.array([int(opt.iterations)], dtype=np.int64)  # advanced in place by C
    cbs.on_train_begin()
    logs: Dict[str, float] = {}
    chunk = 16
    finished = False
    try:
        for epoch in range(opts.initial_epoch, opts.epochs):
            epoch_seed = (opts.seed * 1000003 + epoch) % (2**64)
            if not source.available(epoch_seed):  # a generator ran out (the source warned)
                break
            cbs.on_epoch_begin(epoch)
            source.begin_epoch(epoch_seed)
            totals = None
            batch = 0
            while True:
                part = source.next_chunk(chunk)
                if part is None:
                    break
                inputs, labels, weights, idx, batch_size = part
                nb = -(-idx.shape[0] // batch_size)
                cbs.on_train_batch_begin(batch)
                plan.set_optimizer(opt._c_spec())
                t0 = time.perf_counter()
                fit = plan.fit if dp is None else dp.fit
                st = fit(inputs, labels, idx, batch_size, step, epoch_seed, weights=weights)
                dt = time.perf_counter() - t0
                opt.iterations = int(step[0])
                chunk = next_chunk(nb, dt, FIT_CHUNK_SECONDS, 1, 4096)
                if dp is not None:  # every rank's statistics; one chunk size for all
                    st, chunk = dp.merge(st, chunk)
                totals = st if totals is None else merge_stats(totals, st)
                batch += nb
                logs = logs_from_stats(model, totals)
                cbs.on_train_batch_end(batch - 1, logs)
                if dp is not None:
                    model.stop_training = dp.agree(model.stop_training)
                if model.stop_training:
                    break
            source.end_epoch()
            epoch_logs = logs_from_stats(model, totals) if totals is not None else {}
            if "loss" in epoch_logs:
                epoch_logs["loss"] += model._regularization_penalty() if dp is None else \
                    dp.penalty()
            if source.validation is not None and should_validate(epoch, opts.validation_freq):
                vres = source.validation.evaluate(model) if dp is None else \
                    dp.validation(lambda: source.validation.evaluate(model))
                epoch_logs.update({"val_" + k: v for k, v in vres.items()})
            if dp is not None:
                dp.sync_state()  # the callbacks may save the optimizer state
            cbs.on_epoch_end(epoch, epoch_logs)
            logs = epoch_logs
            if dp is not None:
                model.stop_training = dp.agree(model.stop_training)
            if model.stop_training:
                break
        finished = True
    finally:
        opt.iterations = int(step[0])
        if dp is not None:
            dp.end(failed=not finished)
    cbs.on_train_end(logs)
    return model.history if model.history is not None else next(
        (c for c in cbs.callbacks if isinstance(c, History)), None)


def logs_from_stats(model, st) -> Dict[str, float]:
    """The loss and metrics of the C core's running sums."""
    logs = {"loss": st["loss_sum"] / max(st["samples"], 1.0)}
    for m in model.compiled_metrics:
        logs[m.name] = float(m.from_stats(st))
    return logs


def should_validate(epoch: int, validation_freq: ValidationFreq) -> bool:
    """Keras's rule: an int ``k`` validates after every ``k``-th epoch, a list after
    the 1-based epochs it names."""
    if isinstance(validation_freq, (list, tuple, set, range)):
        return epoch + 1 in validation_freq
    return (epoch + 1) % int(validation_freq) == 0


def merge_stats(a, b):
    out = {}
    for k, v in a.items():
        out[k] = v + b[k]
    return out
