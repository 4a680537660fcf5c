"""Core layers: Input, Embedding, Dense, Flatten, Reshape, Activation, Dropout."""
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np

from neurec import _core, activations, initializers, regularizers
from neurec._registry import register_serializable
from neurec.layers.base import KerasTensor, Layer, Node, compute_dtype, format_shape, unique_name

__all__ = ["Input", "InputLayer", "Embedding", "Dense", "Flatten", "Reshape", "Activation", "Dropout"]

# the op kinds of the C plan (csrc/include/neurec/nr_plan.h), declared once in C
# (csrc/include/neurec/nr_names.h)
_OPS = _core.OPS
OP_INPUT, OP_EMBEDDING, OP_DENSE, OP_ACT = _OPS["input"], _OPS["embedding"], _OPS["dense"], _OPS["act"]
OP_DOT, OP_CONCAT, OP_ADD, OP_MUL = _OPS["dot"], _OPS["concat"], _OPS["add"], _OPS["mul"]
OP_DROPOUT, OP_ALIAS, OP_SUB, OP_AVERAGE = (_OPS["dropout"], _OPS["alias"], _OPS["sub"],
                                            _OPS["average"])


def _size(shape) -> int:
    return int(np.prod([d for d in shape[1:]], dtype=np.int64)) if len(shape) > 1 else 1


@register_serializable()
class InputLayer(Layer):
    """The layer behind :func:`Input`; it has no weights."""

    _n_inputs = 0

    def __init__(self, shape=None, batch_size=None, dtype="float32", name=None, **kwargs):
        kwargs.pop("sparse", None)
        kwargs.pop("batch_shape", None)
        super().__init__(name=name or unique_name("input_layer"), **kwargs)
        if shape is None:
            raise ValueError("Input: pass shape=(...), the shape of one sample, e.g. shape=(1,)")
        if isinstance(shape, (int, np.integer)):
            shape = (int(shape),)
        shape = tuple(shape)
        for d in shape:
            if d is None or int(d) < 1:
                raise ValueError(f"Input: every dimension of shape must be a positive integer "
                                 f"(variable sizes are not supported), got shape={shape}")
        try:
            self.input_dtype = str(np.dtype(dtype))
        except TypeError:
            raise ValueError(f"Input: unknown dtype {dtype!r}") from None
        self.shape = tuple(int(d) for d in shape)
        self.built = True
        self.output = KerasTensor((None,) + self.shape, self.input_dtype, name=self.name)
        node = Node(self, [], [self.output])
        self.output.node = node

    def compute_output_shape(self, input_shape):
        return (None,) + self.shape

    def get_config(self):
        return {"name": self.name, "shape": list(self.shape), "dtype": self.input_dtype}

    @classmethod
    def from_config(cls, config):
        return cls(shape=tuple(config["shape"]), dtype=config.get("dtype", "float32"),
                   name=config["name"])


def Input(shape=None, batch_size=None, dtype="float32", name: Optional[str] = None,
          **kwargs) -> KerasTensor:
    """A symbolic model input, as ``keras.Input``.

    Args:
        shape: Shape of one sample, without the batch axis, e.g. ``(1,)``.
        batch_size: Ignored (neurec batches are set by ``fit``/``predict``).
        dtype: Dtype of the data fed to it (ids for an Embedding may be int or float).
        name: Input name; ``fit`` also accepts a dict keyed by it.

    Returns:
        A :class:`KerasTensor` of shape ``(None, *shape)``.

    Raises:
        ValueError: If ``shape`` is missing or has non-positive dimensions.
    """
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name, **kwargs).output


@register_serializable()
class Embedding(Layer):
    """Turns integer ids into dense vectors: a live ``(input_dim, output_dim)`` table.

    Input of shape ``(batch, k)`` gives output ``(batch, k, output_dim)``. Ids
    may be given as integers or as integral floats (Keras casts them); ids
    outside ``[0, input_dim)`` raise ``ValueError`` in ``fit``/``predict``.
    An Embedding must be applied to a model ``Input`` directly.

    Args:
        input_dim: Number of ids (size of the vocabulary).
        output_dim: Size of each vector.
        embeddings_initializer: Keras default ``'uniform'`` (±0.05).
        embeddings_regularizer: An L2 regularizer or ``None``.
        mask_zero: Not supported (must be False).
        weights: Optional initial table, as Keras's ``weights=[table]``.

    Attributes:
        embeddings: The table itself (``float32``, updated in place by ``fit``).
    """

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer="uniform",
                 embeddings_regularizer=None, embeddings_constraint=None, mask_zero: bool = False,
                 weights=None, input_length=None, **kwargs):
        super().__init__(**kwargs)
        for nm, v in (("input_dim", input_dim), ("output_dim", output_dim)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Embedding: {nm} must be a positive integer, got {v!r}")
        if mask_zero:
            raise ValueError("Embedding: mask_zero=True is not supported by neurec")
        if embeddings_constraint is not None:
            raise ValueError("Embedding: embeddings_constraint is not supported by neurec")
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          self.embeddings_initializer, self.embeddings_regularizer)
        self.built = True
        if weights is not None:
            self.set_weights(weights)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def resize(self, input_dim: int, seed: Optional[int] = None,
               initializer: Union[str, Dict[str, Any], "initializers.Initializer", None] = None
               ) -> None:
        """Grow the table to ``input_dim`` rows: the old rows stay, bit for bit.

        The new rows are drawn by the layer's ``embeddings_initializer`` (or ``initializer``)
        as for a table built at the new size. The table is a new array: inside a model, call
        :meth:`neurec.models.Model.resize_embeddings`, which also grows the optimizer's state
        (a model notices a table resized here and rebuilds its plan on next use).

        Args:
            input_dim: The new number of ids, ``>= input_dim`` (equal: nothing changes).
            seed: Seed of the new rows (same seed, same rows); default: the initializer's
                own generator, or neurec's global one (:func:`neurec.utils.set_random_seed`).
            initializer: Initializer of the new rows instead of the layer's, e.g. ``'zeros'``
                (cold items of a hybrid model, scored from their side features alone).

        Returns:
            None. ``embeddings`` and ``input_dim`` describe the grown table.

        Raises:
            ValueError: If ``input_dim`` is not an integer or smaller than the current size
                (tables never shrink).

        Example:
            >>> emb = Embedding(100, 8)
            >>> emb.resize(120, seed=1)       # ids 100..119 get rows of their own
            >>> emb.embeddings.shape
            (120, 8)
        """
        if isinstance(input_dim, bool) or not isinstance(input_dim, (int, np.integer)):
            raise ValueError(f"Embedding {self.name!r}: input_dim must be an integer, got "
                             f"{input_dim!r}")
        n, old = int(input_dim), self.embeddings
        if n < old.shape[0]:
            raise ValueError(f"Embedding {self.name!r} has {old.shape[0]} rows and cannot shrink "
                             f"to {n}: tables only grow (retire items instead of dropping rows)")
        if n == old.shape[0]:
            return
        init = self.embeddings_initializer if initializer is None else initializers.get(initializer)
        new = np.empty((n, old.shape[1]), np.float32)
        new[:old.shape[0]] = old
        new[old.shape[0]:] = initializers.new_rows(init, new.shape, old.shape[0], seed)
        self._weights = [(name, new if w is old else w, reg) for name, w, reg in self._weights]
        self.embeddings = new
        self.input_dim = n

    _takes_ids = True

    def _output_dtype(self, inputs):
        return "float32"

    def call_numpy(self, ids, training=False, weights=None):
        table = self.embeddings if weights is None else weights[0]
        ids = np.asarray(ids)
        if ids.dtype.kind == "f":
            if not np.all(np.isfinite(ids)) or np.any(ids != np.floor(ids)):
                raise ValueError(f"Embedding {self.name!r}: float ids must be integral")
        ids = ids.astype(np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.input_dim):
            raise ValueError(f"Embedding {self.name!r}: ids must be in [0, input_dim={self.input_dim})")
        return table[ids]

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
                "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer)}

    def _lower(self, b, node):
        src = node.inputs[0]
        if not isinstance(src.node.layer, InputLayer):
            raise ValueError(
                f"Embedding {self.name!r} must be applied directly to a model Input (got the output "
                f"of {src.node.layer.name!r}); feed the ids as their own Input")
        m = _size(src.shape)
        out = b.new_value(node.outputs[0], m * self.output_dim)
        b.op(OP_EMBEDDING, out, [b.input_slot(src)], (b.param(self, 0, table=True), -1),
             dims=(m, self.output_dim))
        b.id_checks.append((b.input_slot(src), self))


@register_serializable()
class Dense(Layer):
    """``output = activation(dot(input, kernel) + bias)`` over the last axis.

    Args:
        units: Output size.
        activation: ``None``/``'linear'``, ``'relu'``, ``'sigmoid'``, ``'tanh'``, ``'softmax'``.
        use_bias: Whether to add a bias.
        kernel_initializer: Default ``'glorot_uniform'``.
        bias_initializer: Default ``'zeros'``.
        kernel_regularizer, bias_regularizer: L2 regularizers or ``None``.

    Raises:
        ValueError: At build time if the input's last dimension is unknown.
    """

    def __init__(self, units: int, activation=None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"Dense: units must be a positive integer, got {units!r}")
        if activity_regularizer is not None or kernel_constraint is not None or bias_constraint is not None:
            raise ValueError("Dense: activity regularizers and constraints are not supported by neurec")
        self.units = int(units)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)

    def build(self, input_shape):
        if not isinstance(input_shape, tuple) or len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"Dense {self.name!r}: input must have a known last dimension, "
                             f"got shape {input_shape}")
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units),
                                      self.kernel_initializer, self.kernel_regularizer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.units,), self.bias_initializer,
                                        self.bias_regularizer)
        self.built = True

    def compute_output_shape(self, input_shape):
        if input_shape[-1] != self.kernel.shape[0]:
            raise ValueError(f"Dense {self.name!r} was built for inputs with last dimension "
                             f"{self.kernel.shape[0]}, got shape {format_shape(input_shape)}")
        return tuple(input_shape[:-1]) + (self.units,)

    def call_numpy(self, x, training=False, weights=None):
        w = self.weights if weights is None else list(weights)
        y = np.asarray(x, dtype=compute_dtype(x, *w)) @ w[0]
        if self.use_bias:
            y = y + w[1]
        return self.activation(y)

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer)}

    def _lower(self, b, node):
        src = node.inputs[0]
        rows = _size(src.shape[:-1]) if len(src.shape) > 2 else 1
        k = src.shape[-1]
        act = activations.code(self.activation)
        pre_t = node.outputs[0] if act == 0 else None
        pre = b.new_value(pre_t, rows * self.units)
        w = b.param(self, 0)
        bias = b.param(self, 1) if self.use_bias else -1
        b.op(OP_DENSE, pre, [b.value(src)], (w, bias), dims=(rows, k, self.units))
        if act != 0:
            out = b.new_value(node.outputs[0], rows * self.units)
            b.op(OP_ACT, out, [pre], act=act, dims=(rows, self.units))
            b.logits_of[out] = pre if act == activations.CODES["sigmoid"] else None


@register_serializable()
class Flatten(Layer):
    """Flattens each sample to one axis: ``(batch, a, b) -> (batch, a * b)``. No copy."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], _size(input_shape))

    def call_numpy(self, x, training=False, weights=None):
        x = np.asarray(x)
        return x.reshape(x.shape[0], -1)

    def _lower(self, b, node):
        b.alias(node.outputs[0], node.inputs[0])


@register_serializable()
class Reshape(Layer):
    """Reshapes each sample to ``target_shape`` (one entry may be -1). No copy."""

    def __init__(self, target_shape: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(d) for d in target_shape)
        if sum(d == -1 for d in self.target_shape) > 1 or any(d == 0 or d < -1 for d in self.target_shape):
            raise ValueError(f"Reshape: invalid target_shape {target_shape}")

    def compute_output_shape(self, input_shape):
        n = _size(input_shape)
        known = int(np.prod([d for d in self.target_shape if d != -1]))
        shape = tuple(n // known if d == -1 else d for d in self.target_shape)
        if int(np.prod(shape)) != n:
            raise ValueError(f"Reshape {self.name!r}: cannot reshape {format_shape(input_shape)} "
                             f"to {self.target_shape}")
        return (input_shape[0],) + shape

    def call_numpy(self, x, training=False, weights=None):
        x = np.asarray(x)
        return x.reshape((x.shape[0],) + self.compute_output_shape((None,) + x.shape[1:])[1:])

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}

    def _lower(self, b, node):
        b.alias(node.outputs[0], node.inputs[0])


@register_serializable()
class Activation(Layer):
    """Applies an activation function (``'relu'``, ``'sigmoid'``, ``'tanh'``, ...)."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call_numpy(self, x, training=False, weights=None):
        return self.activation(np.asarray(x, dtype=compute_dtype(x)))

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}

    def _lower(self, b, node):
        src = node.inputs[0]
        n = src.shape[-1] if len(src.shape) > 1 else 1
        size = _size(src.shape)
        out = b.new_value(node.outputs[0], size)
        act = activations.code(self.activation)
        b.op(OP_ACT, out, [b.value(src)], act=act, dims=(size // n, n))
        b.logits_of[out] = b.value(src) if act == activations.CODES["sigmoid"] else None


@register_serializable()
class Dropout(Layer):
    """Zeroes a ``rate`` share of inputs during training, scaling the rest by ``1/(1-rate)``.

    Masks come from a counter-based RNG keyed by (seed, step, sample), so they
    do not depend on the thread count.
    """

    def __init__(self, rate: float, noise_shape=None, seed: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate}")
        if noise_shape is not None:
            raise ValueError("Dropout: noise_shape is not supported by neurec")
        self.rate = float(rate)
        self.seed = seed

    def call_numpy(self, x, training=False, weights=None, mask=None):
        """Inference: ``x``. Training: ``x * mask``, the mask drawn from ``seed`` unless given.

        Args:
            mask: The multipliers of a training step, 0 or ``1 / (1 - rate)`` (the C core's
                masks come from ``neurec._reference.dropout_mask``).
        """
        x = np.asarray(x, dtype=compute_dtype(x))
        if not training or self.rate == 0:
            return x
        if mask is None:
            rng = np.random.default_rng(self.seed)
            mask = np.where(rng.random(x.shape) < self.rate, 0.0, 1.0 / (1.0 - self.rate))
        return x * np.reshape(mask, x.shape).astype(x.dtype)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}

    def _lower(self, b, node):
        src = node.inputs[0]
        out = b.new_value(node.outputs[0], _size(src.shape))
        b.op(OP_DROPOUT, out, [b.value(src)], rate=self.rate)
