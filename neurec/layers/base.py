"""Layer base class and symbolic tensors (the Keras functional API).

Calling a layer on :class:`KerasTensor` objects records a :class:`Node` in the
graph and returns new symbolic tensors whose shapes were inferred (and checked)
right away. Calling a layer on NumPy arrays runs its NumPy reference
implementation eagerly.
"""
import contextlib
import contextvars
import itertools
import re
from collections import Counter, defaultdict
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from neurec._registry import register_serializable

_NAME_COUNTS: Dict[str, itertools.count] = defaultdict(itertools.count)

# While a model file is loaded: the weight shapes the file holds, and the file's name.
_EXPECTED_SHAPES: contextvars.ContextVar = contextvars.ContextVar("neurec_expected_shapes",
                                                                  default=None)


@contextlib.contextmanager
def expect_weight_shapes(shapes: Iterable[Tuple[int, ...]], source: str) -> Iterator[None]:
    """Only allow weights of these shapes to be created while the context is active.

    ``load_model`` builds the layers of an untrusted config inside this context: each
    ``add_weight`` must match a shape the file actually holds (each stored array once)
    **before** the weight is allocated, so a small file declaring
    ``Embedding(input_dim=10**8)`` fails at once instead of allocating gigabytes.

    Args:
        shapes: The shapes of the stored weight arrays (a multiset).
        source: Name of the file, for error messages.
    """
    token = _EXPECTED_SHAPES.set((Counter(tuple(int(d) for d in s) for s in shapes), source))
    try:
        yield
    finally:
        _EXPECTED_SHAPES.reset(token)


# While model_from_json builds an untrusted config: [parameters still allowed, caller].
_WEIGHT_BUDGET: contextvars.ContextVar = contextvars.ContextVar("neurec_weight_budget",
                                                                default=None)


@contextlib.contextmanager
def limit_weight_elements(limit: int, source: str) -> Iterator[None]:
    """Refuse weights beyond ``limit`` elements in total, before allocating them, while
    the context is active (``model_from_json`` builds an untrusted config inside it)."""
    token = _WEIGHT_BUDGET.set([int(limit), source, int(limit)])
    try:
        yield
    finally:
        _WEIGHT_BUDGET.reset(token)


def _snake(name: str) -> str:
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()


def unique_name(base: str) -> str:
    """``base``, then ``base_1``, ``base_2``... (per process), as Keras names layers."""
    n = next(_NAME_COUNTS[base])
    return base if n == 0 else f"{base}_{n}"


def compute_dtype(*arrays) -> np.dtype:
    """float64 if any of ``arrays`` is float64, else float32: the precision ``call_numpy``
    computes in (float32 as the C core; float64 for the NumPy reference)."""
    return np.dtype(np.float64 if any(np.asarray(a).dtype == np.float64 for a in arrays)
                    else np.float32)


def format_shape(shape: Tuple) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + \
        ("," if len(shape) == 1 else "") + ")"


class KerasTensor:
    """A symbolic tensor: a shape (batch axis first, ``None``), a dtype and the
    node that produced it."""

    def __init__(self, shape: Tuple, dtype: str = "float32", node: "Optional[Node]" = None,
                 index: int = 0, name: Optional[str] = None):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = str(np.dtype(dtype))
        self.node = node
        self.index = index
        self.name = name

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"

    def __array__(self, *a, **k):
        raise TypeError("A symbolic KerasTensor has no value: build a Model and call predict()")


class Node:
    """One call of a layer: its input tensors and output tensors."""

    def __init__(self, layer: "Layer", inputs: List[KerasTensor], outputs: List[KerasTensor]):
        self.layer = layer
        self.inputs = inputs
        self.outputs = outputs
        self.index = len(layer._nodes)
        layer._nodes.append(self)


@register_serializable()
class Layer:
    """Base class of neurec layers, with Keras's names and conventions.

    Subclasses implement ``build(input_shape)``, ``compute_output_shape`` and
    ``call_numpy`` (the NumPy definition of the forward pass), plus ``get_config``.

    Args:
        name: Unique layer name (auto-generated from the class name if omitted).
        trainable: Whether the layer's weights are updated by ``fit``. Set it before
            ``compile`` as in Keras, or at any time: the next ``fit`` picks the change up
            (the model rebuilds its plan; the optimizer keeps its state).
        dtype: Only ``'float32'`` weights are supported.
    """

    _n_inputs: Optional[int] = 1  # None: a list of 2+ tensors
    _takes_ids = False  # inputs are ids: an eager call passes them to call_numpy as they are

    def __init__(self, name: Optional[str] = None, trainable: bool = True, dtype: Any = None,
                 **kwargs):
        # Keras 2 style: Dense(8, input_shape=(4,)) as the first layer of a Sequential
        self._input_shape_arg = kwargs.pop("input_shape", None)
        bis = kwargs.pop("batch_input_shape", None)
        if self._input_shape_arg is None and bis is not None:
            self._input_shape_arg = tuple(bis)[1:]
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected arguments {sorted(kwargs)}")
        if dtype not in (None, "float32", np.float32) and str(dtype) != "float32":
            raise ValueError(f"{type(self).__name__}: only float32 weights are supported, got {dtype}")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        self.name = name or unique_name(_snake(type(self).__name__))
        self.trainable = bool(trainable)
        self.built = False
        self._nodes: List[Node] = []
        self._weights: List[Tuple[str, np.ndarray, Any]] = []  # (name, array, regularizer)

    # -- weights ---------------------------------------------------------------
    def add_weight(self, name: str, shape: Tuple[int, ...], initializer, regularizer=None) -> np.ndarray:
        shape = tuple(int(s) for s in shape)
        expected = _EXPECTED_SHAPES.get()
        if expected is not None:
            counts, source = expected
            if counts[shape] <= 0:
                raise ValueError(
                    f"{source}: layer {self.name!r} ({type(self).__name__}) declares a weight "
                    f"{name!r} of shape {shape}, but the file holds no (further) array of that "
                    "shape: config.json does not match the stored weights (corrupted or crafted "
                    "file; re-save the model)")
            counts[shape] -= 1
        budget = _WEIGHT_BUDGET.get()
        if budget is not None:
            size = int(np.prod(shape, dtype=object)) if shape else 1
            if size > budget[0]:
                raise ValueError(f"{budget[1]}: layer {self.name!r} declares a weight {name!r} of "
                                 f"shape {shape}, beyond the {budget[2]} parameters allowed in "
                                 "all; pass a larger max_params to build it")
            budget[0] -= size
        w = np.ascontiguousarray(initializer(shape, "float32"), dtype=np.float32)
        self._weights.append((name, w, regularizer))
        return w

    @property
    def weights(self) -> List[np.ndarray]:
        """The layer's weight arrays (live: the C core updates them in place)."""
        return [w for _, w, _ in self._weights]

    @property
    def trainable_weights(self) -> List[np.ndarray]:
        return self.weights if self.trainable else []

    @property
    def non_trainable_weights(self) -> List[np.ndarray]:
        return [] if self.trainable else self.weights

    def get_weights(self) -> List[np.ndarray]:
        """Copies of the weights."""
        return [w.copy() for w in self.weights]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Copy ``weights`` into the layer's arrays in place (shapes must match).

        Raises:
            ValueError: On a count or shape mismatch, or non-finite values.
        """
        weights = list(weights)
        if len(weights) != len(self._weights):
            raise ValueError(f"Layer {self.name!r} expects {len(self._weights)} weight arrays, "
                             f"got {len(weights)}")
        for (nm, w, _), new in zip(self._weights, weights):
            new = np.asarray(new)
            if new.shape != w.shape:
                raise ValueError(f"Layer {self.name!r} weight {nm!r} has shape {w.shape}; "
                                 f"got {new.shape}")
            if not np.all(np.isfinite(new)):
                raise ValueError(f"Layer {self.name!r} weight {nm!r}: values must be finite")
        for (_, w, _), new in zip(self._weights, weights):
            np.copyto(w, np.asarray(new, dtype=np.float32))

    def count_params(self) -> int:
        return int(sum(w.size for w in self.weights))

    # -- calling ---------------------------------------------------------------
    def build(self, input_shape) -> None:
        self.built = True

    def compute_output_shape(self, input_shape):
        return input_shape

    def call_numpy(self, inputs, training: bool = False,
                   weights: Optional[Sequence[np.ndarray]] = None):
        """The layer's forward pass in NumPy: the definition of what it computes.

        Calling the layer on arrays runs it; the NumPy reference the C kernels are tested
        against (``neurec._reference``) runs it on float64 weights and inputs.

        Args:
            inputs: An array, or a list of arrays for a merging layer.
            training: Training mode (only Dropout behaves differently).
            weights: Arrays to compute with instead of the layer's own, in the order of
                :attr:`weights` (e.g. float64 copies).

        Returns:
            The output array: float64 when an input or weight is float64, else float32
            (see :func:`compute_dtype`); ids are never converted to floats.
        """
        raise NotImplementedError

    def _check_inputs(self, inputs):
        if self._n_inputs == 1:
            if isinstance(inputs, (list, tuple)):
                if len(inputs) != 1:
                    raise ValueError(f"Layer {self.name!r} ({type(self).__name__}) expects one "
                                     f"input, got a list of {len(inputs)}")
                inputs = inputs[0]
            return inputs
        if not isinstance(inputs, (list, tuple)) or len(inputs) < 2:
            raise ValueError(f"Layer {self.name!r} ({type(self).__name__}) expects a list of at "
                             f"least 2 inputs, got {type(inputs).__name__}")
        return list(inputs)

    def __call__(self, inputs, training: bool = False, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__}.__call__ got unexpected arguments {sorted(kwargs)}")
        inputs = self._check_inputs(inputs)
        flat = inputs if isinstance(inputs, list) else [inputs]
        symbolic = [isinstance(t, KerasTensor) for t in flat]
        if all(symbolic):
            shapes = [t.shape for t in flat] if isinstance(inputs, list) else flat[0].shape
            if not self.built:
                self.build(shapes)
                self.built = True
            out_shape = self.compute_output_shape(shapes)
            out = KerasTensor(out_shape, self._output_dtype(flat), name=None)
            node = Node(self, flat, [out])
            out.node = node
            out.name = f"{self.name}" if node.index == 0 else f"{self.name}_{node.index}"
            return out
        if any(symbolic):
            raise ValueError(f"Layer {self.name!r}: do not mix symbolic tensors and arrays")
        arrays = [np.asarray(a) for a in flat]
        if not self._takes_ids:  # as Keras, floats are cast to the compute dtype, float32
            arrays = [a.astype(np.float32) if a.dtype == np.float64 else a for a in arrays]
        shapes = [(None,) + a.shape[1:] for a in arrays]
        if not self.built:
            self.build(shapes if isinstance(inputs, list) else shapes[0])
            self.built = True
        self.compute_output_shape(shapes if isinstance(inputs, list) else shapes[0])
        return self.call_numpy(arrays if isinstance(inputs, list) else arrays[0], training=training)

    def _output_dtype(self, inputs) -> str:
        return "float32"

    # -- config ----------------------------------------------------------------
    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Layer":
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"
