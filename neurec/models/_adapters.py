"""What ``fit``, ``predict`` and ``evaluate`` read: arrays, or batches from Python.

Every kind of input becomes a *source* of chunks for ``_training.run``: a chunk is a run
of consecutive batches trained by one ``plan.fit`` call (GIL released), so callbacks,
the progress bar, ``stop_training`` and Ctrl-C act between chunks as they always did.

- :class:`ArraySource`: arrays or a NegativeSampler (a ``TrainingData``), cut into
  chunks sized to take about ``FIT_CHUNK_SECONDS``.
- :class:`BatchSource`: a generator or any iterable of ``(x, y)`` / ``(x, y,
  sample_weight)`` batches, a list of such batches, or a PyDataset-like object
  (``__len__``, ``__getitem__``, ``on_epoch_end``, as ``keras.utils.PyDataset``).
  Consecutive batches of one size ``B`` (and one smaller batch closing the run) are
  concatenated in NumPy and checked once, then trained by one call with
  ``idx = arange(n)`` and ``batch_size = B``: the C core takes the same steps as with
  arrays, so ``k`` batches of ``B`` and a smaller last one give the bits of
  ``fit(arrays, batch_size=B, shuffle=False)``. A batch of another size starts a new
  call (padding would change the gradients). A chunk gathers batches up to
  ``BATCH_CHUNK_ROWS`` rows, a fixed budget rather than a time: its boundaries, hence
  the rows Dropout's masks are drawn for (a row's position in its call), do not depend
  on timing, and a run repeats bit for bit.

Epochs follow Keras 3. Without ``steps_per_epoch`` an epoch is one pass over the data.
With it, an epoch takes the next ``steps_per_epoch`` batches, continuing the pass under
way; a pass that ends first ends the epoch early, with a warning, and the next epoch
starts a new pass. A generator cannot start over: once it ran out, training stops.
"""
import itertools
import numbers
import warnings
from typing import Callable, Dict, List, NamedTuple, Optional

import numpy as np

from neurec import _core
from neurec.callbacks.callback_list import CallbackList
from neurec.models import _data, _training, _weights
from neurec.utils.progbar import resolve_verbose, waiting_bar

# rows one fit call over batches gathers (fixed, see the module docstring)
BATCH_CHUNK_ROWS = 16384
# rows one predict / evaluate step over batches gathers
PREDICT_CHUNK_ROWS = 65536

_END = object()


class Chunk(NamedTuple):
    """Consecutive batches for one ``plan.fit`` call: rows ``idx`` of the arrays, in
    batches of ``batch_size`` (the last one may be smaller)."""

    inputs: List[np.ndarray]
    labels: np.ndarray
    weights: Optional[np.ndarray]  # float32 (n,), indexed like labels; None: all ones
    idx: np.ndarray
    batch_size: int


# -- what kind of input ------------------------------------------------------------------
def _supported(fn: str) -> str:
    batch = "(x,) or (x, y)" if fn == "predict" else "(x, y) or (x, y, sample_weight)"
    sampler = " a neurec.data.NegativeSampler," if fn == "fit" else ""
    return (f"NumPy arrays (one array, a list of arrays in input order, or a dict by input "
            f"name), pandas objects,{sampler} a generator or iterable yielding {batch} "
            f"batches, a list of such batches, or a PyDataset-like object (__len__, "
            f"__getitem__ returning a batch, on_epoch_end; e.g. keras.utils.PyDataset)")


def _is_pydataset(x) -> bool:
    return (hasattr(x, "__getitem__") and callable(getattr(x, "on_epoch_end", None))
            and (hasattr(x, "__len__") or hasattr(x, "num_batches")))


def _is_batch_list(x) -> bool:
    """A list of batch tuples ``[(x, y), ...]``, not a list of arrays: every item is a
    tuple of 1 to 3 entries whose first entry (the inputs) holds samples, not a scalar."""
    if not isinstance(x, list) or not x:
        return False
    for b in x:
        if not isinstance(b, tuple) or not 1 <= len(b) <= 3:
            return False
        first = b[0]
        if isinstance(first, (numbers.Number, np.generic, str, bytes)) or first is None:
            return False
    return True


def input_kind(fn: str, x, what: str = "x") -> str:
    """``'arrays'`` (also None and NegativeSampler: checked downstream) or ``'batches'``.

    Raises:
        TypeError: For a type neither kind accepts, listing what is supported.
    """
    if x is None or hasattr(x, "_neurec_epoch"):
        return "arrays"
    if isinstance(x, (str, bytes, bytearray, set, frozenset)):
        raise TypeError(f"{fn}: {what} of type {type(x).__name__} is not supported; "
                        f"pass {_supported(fn)}")
    if hasattr(x, "tocsr") or hasattr(x, "to_scipy"):  # scipy.sparse, InteractionMatrix
        hint = ("train on it with neurec.data.NegativeSampler(matrix), or compile with "
                "optimizer='als'") if fn == "fit" else f"pass {_supported(fn)}"
        raise TypeError(f"{fn}: {what} is a sparse matrix ({type(x).__name__}); {hint}")
    if isinstance(x, (np.ndarray, dict, tuple, range, memoryview, numbers.Number, np.generic)) \
            or any(hasattr(x, a) for a in ("__array__", "__array_interface__", "to_numpy")):
        return "arrays"
    if isinstance(x, list):
        return "batches" if _is_batch_list(x) else "arrays"
    if _is_pydataset(x) or hasattr(x, "__iter__"):
        return "batches"
    raise TypeError(f"{fn}: {what} of type {type(x).__name__} is not supported; "
                    f"pass {_supported(fn)}")


def gives_batches(fn: str, x, what: str = "validation_data") -> bool:
    """Whether ``x`` gives batches (see :func:`input_kind`); False for None."""
    return x is not None and input_kind(fn, x, what) == "batches"


def _check_steps(fn: str, name: str, value) -> Optional[int]:
    if value is None:
        return None
    return _training.check_int(fn, name, value, 1, f"pass the number of batches, e.g. {name}=100")


# -- batches from Python -----------------------------------------------------------------
class _Batch(NamedTuple):
    parts: List[np.ndarray]  # one per model input
    y: Optional[np.ndarray]
    w: Optional[np.ndarray]
    rows: int


class Batches:
    """The raw batches of ``x`` (a generator, iterable, list of batches or PyDataset-like
    object), pass after pass, each parsed into NumPy arrays (one batch at a time: Python
    works per batch, never per sample).

    Args:
        model: The model (its inputs name the parts of ``x``).
        x: The input.
        fn, what: ``'fit'`` / ``'evaluate'`` / ``'predict'`` and ``'x'`` /
            ``'validation_data'``, for messages.
        shuffle: Shuffle the batch order of each pass of an indexable input (seeded);
            ignored for generators and other iterables.
    """

    def __init__(self, model, x, fn: str, what: str, shuffle: bool = False):
        self.model, self.x, self.fn, self.what = model, x, fn, what
        self.need_y = fn != "predict"
        self.indexed = isinstance(x, list) or _is_pydataset(x)
        self.one_shot = not self.indexed and hasattr(x, "__next__")  # a generator, iterator
        self.shuffle = bool(shuffle) and self.indexed
        self.length: Optional[int] = None  # batches per pass, when known
        if self.indexed:
            self.length = _num_batches(x, fn, what)
        elif not self.one_shot and hasattr(x, "__len__"):
            self.length = int(len(x))  # e.g. a torch DataLoader
        self._it = None  # the pass under way
        self._pos = 0  # batches read from it
        self._started = False  # a one-shot input has been started
        self._pending: Optional[_Batch] = None  # read ahead, not yet counted
        self._left: Optional[int] = None  # batches the epoch still takes (None: to the pass's end)
        self._read = 0  # batches read this epoch
        self._ever = False  # some batch was ever read
        self._warned = False

    # passes and epochs
    def _new_pass(self, seed: int) -> None:
        x, self._pos = self.x, 0
        if self.one_shot:
            self._it = None if self._started else x
            self._started = True
        elif self.indexed:
            if self.length is None:  # an endless PyDataset
                order = itertools.count()
            elif self.shuffle:
                order = iter(_core.permutation(self.length, seed).tolist())
            else:
                order = iter(range(self.length))
            self._it = (x[i] for i in order)
        else:
            self._it = iter(x)

    def _next_raw(self):
        if self._it is None:
            return _END
        raw = next(self._it, _END)
        if raw is _END:
            self._it = None
        else:
            self._pos += 1
        return raw

    def _training(self) -> bool:
        return self.fn == "fit" and self.what == "x"

    def available(self, seed: int) -> bool:
        """Whether an epoch can begin; False once a generator ran out. A generator or
        iterable is read one batch ahead (a new pass begins if the last one ended).

        Raises:
            ValueError: If the input has no batch at all.
        """
        if self._pending is not None:
            return True
        if self.indexed:
            if self.length == 0:
                raise ValueError(f"{self.fn}: {self.what} has no batches (its length is 0)")
            return True
        if self._it is None:
            self._new_pass(seed)
        raw = self._next_raw()
        if raw is _END and not self.one_shot:  # the last pass ended with the last epoch
            self._new_pass(seed)
            raw = self._next_raw()
        if raw is _END:
            if not self._ever:
                raise ValueError(f"{self.fn}: {self.what} yielded no batches; it must yield at "
                                 f"least one {self._form()} batch")
            if self._training():
                self._warn_ran_out()
            return False
        self._pending = self._parse(raw, 0)
        self._ever = True
        return True

    def begin(self, seed: int, steps: Optional[int]) -> None:
        """Start an epoch of ``steps`` batches (None: a pass) and call ``on_epoch_begin``."""
        self._left, self._read = steps, 0
        if self.indexed:
            hook = getattr(self.x, "on_epoch_begin", None)
            if callable(hook):
                hook()
            if self._it is None or (self.length is not None and self._pos >= self.length):
                self._new_pass(seed)

    def end(self) -> None:
        """The epoch is over: call ``on_epoch_end`` of a PyDataset."""
        hook = getattr(self.x, "on_epoch_end", None) if self.indexed else None
        if callable(hook):
            hook()

    def read(self) -> Optional[_Batch]:
        """The epoch's next batch, or None at its end."""
        if self._left == 0:
            return None
        b, self._pending = self._pending, None
        if b is None:
            raw = self._next_raw()
            if raw is _END:
                if self._left is not None:  # the epoch wanted more
                    self._warn_ran_out()
                return None
            b = self._parse(raw, self._read)
            self._ever = True
        self._read += 1
        if self._left is not None:
            self._left -= 1
        return b

    def unread(self, b: _Batch) -> None:
        """Put ``b``, the last batch read, back: the next chunk starts with it."""
        self._pending = b
        self._read -= 1
        if self._left is not None:
            self._left += 1

    def _warn_ran_out(self) -> None:
        if self._warned:
            return
        self._warned = True
        done, asked = self._read, self._read + (self._left or 0)
        if self._training() and self.one_shot:
            tail = ("training stops. A generator is read once: make it endless (while True: "
                    "...) and pass steps_per_epoch, or pass a list of batches or a PyDataset")
        elif self._training():
            tail = (f"the epoch ends after {done} of its {asked} steps and the next one starts "
                    "a new pass (as in Keras)")
        else:
            tail = f"only {done} of the {asked} steps asked for ran"
        warnings.warn(f"{self.fn}: {self.what} ran out of data; {tail}", stacklevel=5)

    # one batch
    def _form(self) -> str:
        return "(x,) or (x, y)" if self.fn == "predict" else "(x, y) or (x, y, sample_weight)"

    def _parse(self, raw, k: int) -> _Batch:
        try:
            return self._parse_batch(raw)
        except (TypeError, ValueError) as e:
            cls = TypeError if isinstance(e, TypeError) else ValueError
            raise cls(f"{self.fn}: batch {k} of {self.what}: {e}") from None

    def _parse_batch(self, raw) -> _Batch:
        if isinstance(raw, list):
            raw = tuple(raw)  # a torch DataLoader yields lists
        if not isinstance(raw, tuple):
            raw = (raw,)
        if not 1 <= len(raw) <= 3 or raw[0] is None:
            raise ValueError(f"got a tuple of {len(raw)}; yield {self._form()} tuples")
        if isinstance(raw[0], (str, bytes, set, frozenset)):
            raise TypeError(f"inputs of type {type(raw[0]).__name__}; pass {_supported(self.fn)}")
        names = self.model.input_names
        parts = [_data.to_numpy(p, f"input {nm!r}")
                 for nm, p in zip(names, _data.split_inputs(self.model, raw[0]))]
        y = raw[1] if len(raw) > 1 else None
        w = raw[2] if len(raw) > 2 else None
        if self.need_y and y is None:
            raise ValueError("no labels; yield (x, y) or (x, y, sample_weight) tuples")
        if not self.need_y:
            y = w = None  # predict reads the inputs only, as Keras
        y = None if y is None else _data.to_numpy(y, "y")
        w = None if w is None else _data.to_numpy(w, "sample_weight")
        rows = None
        named = [(f"input {nm!r}", p) for nm, p in zip(names, parts)]
        for name, a in named + [("y", y), ("sample_weight", w)]:
            if a is None:
                continue
            if a.ndim == 0:
                raise ValueError(f"{name} must have a batch axis; got a scalar")
            if rows is None:
                rows = a.shape[0]
            elif a.shape[0] != rows:
                raise ValueError(f"{name} has {a.shape[0]} rows, the first input {rows}; every "
                                 "array of a batch has one row per sample")
        if not rows:
            raise ValueError("it is empty (0 samples); yield at least one sample a batch")
        return _Batch(parts, y, w, int(rows))

    def checked(self, batches: List[_Batch], builder, first: int):
        """The batches concatenated and checked once: ``(inputs, labels, weights)``."""
        try:
            parts = [_concat([b.parts[j] for b in batches])
                     for j in range(len(self.model.inputs))]
            inputs = _data.prepare_inputs(self.model, parts, builder)
            if not self.need_y:
                return inputs, None, None
            n = inputs[0].shape[0]
            labels = _data.prepare_labels(_concat([b.y for b in batches]), n,
                                          int(np.prod(self.model.output_shape[1:])))
            has_w = [b.w is not None for b in batches]
            if any(has_w) and not all(has_w):
                raise ValueError("some batches have sample weights and others not; yield "
                                 "them with every batch or with none")
            weights = _weights.check_sample_weight(self.fn, _concat([b.w for b in batches]), n) \
                if all(has_w) else None
        except (TypeError, ValueError) as e:
            cls = TypeError if isinstance(e, TypeError) else ValueError
            raise cls(f"{self.fn}: {self.what}, batches {first}..{first + len(batches) - 1} "
                      f"(their samples numbered from 0): {e}") from None
        return inputs, labels, weights


def _num_batches(x, fn: str, what: str) -> Optional[int]:
    """Batches of a list or PyDataset-like object; None for an endless PyDataset."""
    n = x.num_batches if hasattr(type(x), "num_batches") else len(x)
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"{fn}: {what} has {n!r} batches; its len() (or num_batches) must be "
                         "a count >= 0, or num_batches None for an endless dataset")
    return int(n)


def _concat(arrays: List[np.ndarray]) -> np.ndarray:
    if len(arrays) == 1:
        return arrays[0]
    try:
        return np.concatenate(arrays)
    except ValueError as e:
        raise ValueError(f"the batches do not stack: {e}") from None


# -- fit ---------------------------------------------------------------------------------
class ArraySource:
    """Arrays or a NegativeSampler (a ``TrainingData``) in chunks of batches."""

    def __init__(self, data, batch_size: int, shuffle: bool, steps_per_epoch: Optional[int],
                 validation):
        self.data, self.shuffle, self.steps_per_epoch = data, shuffle, steps_per_epoch
        self.sampler = data.sampler
        n = data.num_samples
        # a batch larger than the data is one batch of all of it: cap it, so the C core's
        # scratch is sized by the data, not by the argument
        self.batch_size = min(batch_size, max(n, 1))
        self.steps = steps_per_epoch or -(-n // self.batch_size)
        self.validation = validation
        self._pass = None  # (inputs, labels, weights, order) of the pass under way
        self._order: Optional[np.ndarray] = None  # the shuffle, rewritten every pass
        self._pos = 0  # rows of the pass already trained
        self._left: Optional[int] = None
        # a data-parallel fit's communicator when its ranks draw the sampler's epochs in
        # shares (DataParallelFit sets it; None: this process draws whole epochs)
        self.draw_comm = None
        # a routed data-parallel fit's sample owners: tagger(inputs) gives the pass's
        # (uint8, one per sample, or None), which its shuffle carries in its values' top
        # byte (_core.permutation's tags: the same order); tagged: whether this pass's do
        self.tagger: Optional[Callable[[List[np.ndarray]], Optional[np.ndarray]]] = None
        self.tagged = False

    def available(self, seed: int) -> bool:
        return True

    def begin_epoch(self, seed: int) -> None:
        if self._pass is None or self.steps_per_epoch is None or \
                self._pos >= self._pass[3].shape[0]:
            parts = self.data.epoch(seed, self.draw_comm)  # fresh negatives from a sampler
            n = parts[1].shape[0]
            tags = self.tagger(parts[0]) if self.shuffle and self.tagger else None
            tags = tags if tags is not None and tags.size == n else None
            if not self.shuffle:
                order = np.arange(n, dtype=np.int64)
            elif self._order is not None and self._order.size == n:  # the last pass is over
                order = _core.permutation(n, seed, out=self._order, tags=tags)
            else:
                order = self._order = _core.permutation(n, seed, tags=tags)
            self.tagged = tags is not None
            self._pass = (parts[0], parts[1], parts[2] if len(parts) > 2 else None, order)
            self._pos = 0
        self._left = self.steps_per_epoch

    def end_epoch(self) -> None:
        pass

    def next_chunk(self, max_batches: int) -> Optional[Chunk]:
        inputs, labels, weights, order = self._pass
        n, bs = order.shape[0], self.batch_size
        if self._left == 0:
            return None
        if self._pos >= n:
            if self._left is not None:
                warnings.warn(f"fit: steps_per_epoch={self.steps_per_epoch} is more than the "
                              f"{-(-n // bs)} batches of the data; the epoch ends after one "
                              f"pass (as in Keras)", stacklevel=3)
            return None
        nb = min(max_batches, -(-(n - self._pos) // bs))
        if self._left is not None:
            nb = min(nb, self._left)
            self._left -= nb
        stop = min(self._pos + nb * bs, n)
        idx = order[self._pos:stop]
        self._pos = stop
        return Chunk(inputs, labels, weights, idx, bs)


class BatchSource:
    """Batches from Python (see :class:`Batches`) in chunks of equal-size batches."""

    sampler = None

    def __init__(self, batches: Batches, builder, steps_per_epoch: Optional[int], validation,
                 class_weight: Optional[Dict[int, float]] = None):
        self.batches, self.builder, self.class_weight = batches, builder, class_weight
        self.steps_per_epoch = steps_per_epoch
        self.steps = steps_per_epoch or batches.length
        self.validation = validation
        self._first = 0  # index in the epoch of the next chunk's first batch

    def available(self, seed: int) -> bool:
        return self.batches.available(seed)

    def begin_epoch(self, seed: int) -> None:
        self.batches.begin(seed, self.steps_per_epoch)
        self._first = 0

    def end_epoch(self) -> None:
        self.batches.end()

    def next_chunk(self, max_batches: int) -> Optional[Chunk]:
        # max_batches (a time budget) is not used: see BATCH_CHUNK_ROWS
        first = self.batches.read()
        if first is None:
            return None
        run, rows, size = [first], first.rows, first.rows
        while rows < BATCH_CHUNK_ROWS:
            b = self.batches.read()
            if b is None:
                break
            if b.rows > size:  # a larger batch starts the next call
                self.batches.unread(b)
                break
            run.append(b)
            rows += b.rows
            if b.rows < size:  # a smaller batch closes the run, as the last batch of arrays
                break
        inputs, labels, weights = self.batches.checked(run, self.builder, self._first)
        if self.class_weight is not None:  # as with arrays: not with the batches' own weights
            weights = _weights.array_weights("fit", weights, self.class_weight, labels)
        self._first += len(run)
        return Chunk(inputs, labels, weights, np.arange(rows, dtype=np.int64), size)


class Validation:
    """What ``fit`` validates on: checked arrays, or batches (``steps`` a time, or a pass)."""

    def __init__(self, arrays=None, batches: Optional[Batches] = None, builder=None,
                 steps: Optional[int] = None):
        self.arrays, self.batches, self.builder, self.steps = arrays, batches, builder, steps

    def evaluate(self, model) -> Dict[str, float]:
        if self.batches is None:
            return model._evaluate_arrays(*self.arrays)
        return _evaluate_batches(model, self.batches, self.builder, self.steps)


def fit_source(model, builder, x, y, batch_size, opts, steps_per_epoch, validation_data,
               validation_steps, sample_weight=None, class_weight=None):
    """The source of chunks ``fit`` trains on (see ``_training.run``).

    Raises:
        TypeError: For an unsupported type of ``x`` or ``validation_data``.
        ValueError: For arguments that do not go with batches from Python (``y``,
            ``batch_size``, ``sample_weight``, ``validation_split``), or a generator that
            cannot last the epochs asked for.
    """
    steps_per_epoch = _check_steps("fit", "steps_per_epoch", steps_per_epoch)
    validation_steps = _check_steps("fit", "validation_steps", validation_steps)
    validation = None
    if validation_data is not None and input_kind("fit", validation_data,
                                                  "validation_data") == "batches":
        vb = Batches(model, validation_data, "fit", "validation_data")
        runs = sum(_training.should_validate(e, opts.validation_freq)
                   for e in range(opts.initial_epoch, opts.epochs))
        if vb.one_shot and validation_steps is None and runs > 1:
            raise ValueError("fit: validation_data is a generator, which can be read once, and "
                             f"{runs} epochs validate: make it endless and pass validation_steps, "
                             "or pass a list of batches, a PyDataset or (x_val, y_val) arrays")
        validation, validation_data = Validation(batches=vb, builder=builder,
                                                 steps=validation_steps), None
    if input_kind("fit", x) == "arrays":
        split = 0.0 if validation is not None else opts.validation_split
        data = _training.TrainingData(model, builder, x, y, split, validation_data,
                                      sample_weight, class_weight)
        if data.validation is not None:
            validation = Validation(arrays=data.validation)
        bs = opts.batch_size
        if batch_size is None and steps_per_epoch is not None:  # Keras: one pass in that many
            bs = -(-data.num_samples // steps_per_epoch)
        return ArraySource(data, bs, opts.shuffle, steps_per_epoch, validation)
    _no_extras("fit", y, batch_size, sample_weight)
    if opts.validation_split:
        raise ValueError("fit: validation_split needs arrays; with batches from a generator or "
                         "PyDataset pass validation_data")
    batches = Batches(model, x, "fit", "x", shuffle=opts.shuffle)
    if batches.one_shot and steps_per_epoch is None and opts.epochs - opts.initial_epoch > 1:
        raise ValueError(f"fit: x is a generator, which can be read once, and epochs={opts.epochs} "
                         "asks for several passes: make it endless (while True: ...) and pass "
                         "steps_per_epoch, or pass a list of batches or a PyDataset")
    if validation_data is not None:
        validation = Validation(arrays=_training.validation_arrays(model, builder, validation_data))
    return BatchSource(batches, builder, steps_per_epoch, validation,
                       _weights.check_class_weight("fit", class_weight))


def _no_extras(fn: str, y, batch_size, sample_weight) -> None:
    for name, value, fix in (("y", y, "the labels"), ("sample_weight", sample_weight, "the sample "
                             "weights"), ("batch_size", batch_size, "the batch sizes")):
        if value is not None:
            raise ValueError(f"{fn}: {name} must not be given when x is a generator, an "
                             f"iterable of batches or a PyDataset: {fix} come from x's batches")


# -- predict, evaluate -------------------------------------------------------------------
def _inference_chunks(batches: Batches, builder, steps: Optional[int]):
    """``(inputs, labels, batches)`` of runs of batches, ``PREDICT_CHUNK_ROWS`` rows or so
    each."""
    if not batches.available(0):
        return
    batches.begin(0, steps)
    try:
        first = 0
        while True:
            run, rows = [], 0
            while rows < PREDICT_CHUNK_ROWS:
                b = batches.read()
                if b is None:
                    break
                run.append(b)
                rows += b.rows
            if not run:
                return
            inputs, labels, weights = batches.checked(run, builder, first)
            first += len(run)
            yield inputs, labels, weights, len(run)
    finally:
        batches.end()


def predict_batches(model, builder, x, batch_size, steps, verbose=0, callbacks=None) -> np.ndarray:
    """``predict`` over batches from Python: the outputs of every batch, concatenated, with
    the bar and the callbacks' predict hooks of ``predict_arrays`` (once per chunk)."""
    _no_extras("predict", None, batch_size, None)
    steps = _check_steps("predict", "steps", steps)
    level = resolve_verbose("predict", verbose)
    batches = Batches(model, x, "predict", "x")
    total = steps or batches.length
    bar = waiting_bar("predict", level, total, unit_name="step")
    cbs = CallbackList(callbacks, model=model, verbose=level, epochs=1,
                       steps=total) if callbacks else None
    if cbs is not None:
        cbs.on_predict_begin()
    outs, done = [], 0
    for inputs, _, _, nb in _inference_chunks(batches, builder, steps):
        if cbs is not None:
            cbs.on_predict_batch_begin(done)
        outs.append(model._predict_arrays(inputs))
        done += nb
        if cbs is not None:
            cbs.on_predict_batch_end(done - 1, {"outputs": outs[-1]})
        bar.update(done, finalize=False)
    if not outs:  # a generator another call already read to its end
        raise ValueError("predict: x has no batches left")
    bar.update(done, finalize=True)
    if cbs is not None:
        cbs.on_predict_end()
    return outs[0] if len(outs) == 1 else np.concatenate(outs)


def _evaluate_batches(model, batches: Batches, builder, steps) -> Dict[str, float]:
    preds, labels, weights = [], [], []
    for inputs, y, w, _ in _inference_chunks(batches, builder, steps):
        preds.append(model._predict_arrays(inputs))
        labels.append(y)
        weights.append(w)
    if not preds:
        raise ValueError(f"{batches.fn}: {batches.what} has no batches left to evaluate on")
    if any(w is None for w in weights) and not all(w is None for w in weights):
        raise ValueError(f"{batches.fn}: {batches.what}: some batches have sample weights and "
                         "others not; yield them with every batch or with none")
    w = None if weights[0] is None else _concat(weights)
    return model._evaluate_predictions(_concat(labels), _concat(preds), w)


def evaluate_batches(model, builder, x, y, batch_size, steps, sample_weight) -> Dict[str, float]:
    """``evaluate`` over batches from Python: loss and metrics over all their samples (the
    batch means weighted by batch size, as Keras)."""
    _no_extras("evaluate", y, batch_size, sample_weight)
    steps = _check_steps("evaluate", "steps", steps)
    return _evaluate_batches(model, Batches(model, x, "evaluate", "x"), builder, steps)
