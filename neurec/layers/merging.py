"""Merging layers: Dot, Concatenate, Multiply, Add, Subtract, Average."""
from typing import Sequence, Tuple, Union

import numpy as np

from neurec._registry import register_serializable
from neurec.layers.base import Layer, compute_dtype, format_shape
from neurec.layers.core import OP_ADD, OP_AVERAGE, OP_CONCAT, OP_DOT, OP_MUL, OP_SUB, _size

__all__ = ["Dot", "Concatenate", "Multiply", "Add", "Subtract", "Average"]


def _floats(xs):
    """The inputs as arrays of one float dtype (see :func:`compute_dtype`)."""
    dtype = compute_dtype(*xs)
    return [np.asarray(x, dtype=dtype) for x in xs]


class _Merge(Layer):
    _n_inputs = None
    _op = OP_ADD

    def compute_output_shape(self, input_shapes):
        first = tuple(input_shapes[0])
        for s in input_shapes[1:]:
            if tuple(s) != first:
                raise ValueError(
                    f"{type(self).__name__} {self.name!r}: all inputs must have the same shape; got "
                    + " and ".join(format_shape(tuple(x)) for x in input_shapes))
        return first

    def _lower(self, b, node):
        out = b.new_value(node.outputs[0], _size(node.outputs[0].shape))
        b.op(self._op, out, [b.value(t) for t in node.inputs])


@register_serializable()
class Add(_Merge):
    """Elementwise sum of a list of same-shape inputs."""
    _op = OP_ADD

    def call_numpy(self, xs, training=False, weights=None):
        return np.sum(np.stack(_floats(xs)), axis=0)


@register_serializable()
class Multiply(_Merge):
    """Elementwise product of a list of same-shape inputs (GMF's interaction)."""
    _op = OP_MUL

    def call_numpy(self, xs, training=False, weights=None):
        xs = _floats(xs)
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


@register_serializable()
class Subtract(_Merge):
    """``inputs[0] - inputs[1]``."""
    _op = OP_SUB

    def _check_inputs(self, inputs):
        inputs = super()._check_inputs(inputs)
        if len(inputs) != 2:
            raise ValueError(f"Subtract {self.name!r} expects exactly 2 inputs, got {len(inputs)}")
        return inputs

    def call_numpy(self, xs, training=False, weights=None):
        x, y = _floats(xs)
        return x - y


@register_serializable()
class Average(_Merge):
    """Elementwise mean of a list of same-shape inputs."""
    _op = OP_AVERAGE

    def call_numpy(self, xs, training=False, weights=None):
        return np.mean(np.stack(_floats(xs)), axis=0)


@register_serializable()
class Concatenate(Layer):
    """Concatenates a list of inputs along ``axis`` (default -1, the last).

    Raises:
        ValueError: If the inputs differ on any axis but ``axis`` (both shapes named).
    """

    _n_inputs = None

    def __init__(self, axis: int = -1, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def _axis(self, rank: int) -> int:
        ax = self.axis + rank if self.axis < 0 else self.axis
        if not 1 <= ax < rank:
            raise ValueError(f"Concatenate {self.name!r}: axis={self.axis} is invalid for inputs "
                             f"of rank {rank} (the batch axis 0 cannot be concatenated)")
        return ax

    def compute_output_shape(self, input_shapes):
        shapes = [tuple(s) for s in input_shapes]
        rank = len(shapes[0])
        if any(len(s) != rank for s in shapes):
            raise ValueError(f"Concatenate {self.name!r}: inputs must have the same rank; got "
                             + " and ".join(format_shape(s) for s in shapes))
        ax = self._axis(rank)
        for s in shapes[1:]:
            if s[:ax] + s[ax + 1:] != shapes[0][:ax] + shapes[0][ax + 1:]:
                raise ValueError(
                    f"Concatenate {self.name!r}: inputs must match except on axis {self.axis}; got "
                    f"{format_shape(shapes[0])} and {format_shape(s)}")
        return shapes[0][:ax] + (sum(s[ax] for s in shapes),) + shapes[0][ax + 1:]

    def call_numpy(self, xs, training=False, weights=None):
        xs = _floats(xs)
        return np.concatenate(xs, axis=self._axis(xs[0].ndim))

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}

    def _lower(self, b, node):
        shape = node.inputs[0].shape
        ax = self._axis(len(shape))
        outer = int(np.prod(shape[1:ax])) if ax > 1 else 1
        out = b.new_value(node.outputs[0], _size(node.outputs[0].shape))
        b.op(OP_CONCAT, out, [b.value(t) for t in node.inputs], dims=(outer,))


@register_serializable()
class Dot(Layer):
    """Batch dot product of two tensors along ``axes``, as ``keras.layers.Dot``.

    For inputs ``(batch, d)`` and ``(batch, d)`` with ``axes=1`` the output is
    ``(batch, 1)``. For ``(batch, k, d)`` inputs with ``axes=1`` it is
    ``(batch, d, d)`` (the contracted axis disappears from both).

    Args:
        axes: An int, or a pair ``(axis_of_x, axis_of_y)``; negative axes count from the end.
        normalize: L2-normalise both inputs along the contracted axes first
            (the output is then a cosine similarity).

    Raises:
        ValueError: If the contracted dimensions differ (both shapes named), or an input
            has rank other than 2 or 3.
    """

    _n_inputs = None

    def __init__(self, axes: Union[int, Sequence[int]], normalize: bool = False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axes, (list, tuple)):
            if len(axes) != 2:
                raise ValueError(f"Dot: axes must be an int or a pair, got {axes!r}")
            self.axes = (int(axes[0]), int(axes[1]))
        else:
            self.axes = int(axes)
        self.normalize = bool(normalize)

    def _check_inputs(self, inputs):
        inputs = super()._check_inputs(inputs)
        if len(inputs) != 2:
            raise ValueError(f"Dot {self.name!r} expects exactly 2 inputs, got {len(inputs)}")
        return inputs

    def _resolved(self, sx: Tuple, sy: Tuple):
        for s in (sx, sy):
            if len(s) not in (2, 3):
                raise ValueError(f"Dot {self.name!r}: inputs must have rank 2 or 3 (batch "
                                 f"included); got {format_shape(sx)} and {format_shape(sy)}")
        ax, ay = self.axes if isinstance(self.axes, tuple) else (self.axes, self.axes)
        ax = ax + len(sx) if ax < 0 else ax
        ay = ay + len(sy) if ay < 0 else ay
        if not (1 <= ax < len(sx) and 1 <= ay < len(sy)):
            raise ValueError(f"Dot {self.name!r}: axes={self.axes} out of range for "
                             f"{format_shape(sx)} and {format_shape(sy)}")
        if sx[ax] != sy[ay]:
            raise ValueError(
                f"Dot {self.name!r}: contracted dimensions differ: {format_shape(sx)} axis {ax} "
                f"has size {sx[ax]} but {format_shape(sy)} axis {ay} has size {sy[ay]}")
        return ax, ay

    def compute_output_shape(self, input_shapes):
        sx, sy = tuple(input_shapes[0]), tuple(input_shapes[1])
        ax, ay = self._resolved(sx, sy)
        free = [d for i, d in enumerate(sx) if i not in (0, ax)] + \
               [d for i, d in enumerate(sy) if i not in (0, ay)]
        return (sx[0],) + (tuple(free) if free else (1,))

    def call_numpy(self, xs, training=False, weights=None):
        x, y = _floats(xs)
        ax, ay = self._resolved((None,) + x.shape[1:], (None,) + y.shape[1:])
        if self.normalize:
            x = x / np.maximum(np.linalg.norm(x, axis=ax, keepdims=True), 1e-12)
            y = y / np.maximum(np.linalg.norm(y, axis=ay, keepdims=True), 1e-12)
        xm = np.moveaxis(x, ax, 1).reshape(x.shape[0], x.shape[ax], -1)
        ym = np.moveaxis(y, ay, 1).reshape(y.shape[0], y.shape[ay], -1)
        out = np.einsum("bci,bcj->bij", xm, ym)
        shape = self.compute_output_shape([(None,) + x.shape[1:], (None,) + y.shape[1:]])
        return out.reshape((x.shape[0],) + shape[1:])

    def get_config(self):
        axes = list(self.axes) if isinstance(self.axes, tuple) else self.axes
        return {**super().get_config(), "axes": axes, "normalize": self.normalize}

    def _lower(self, b, node):
        sx, sy = node.inputs[0].shape, node.inputs[1].shape
        ax, ay = self._resolved(sx, sy)

        def per_sample(s, a):
            # a rank-2 tensor (batch, d) is a d x 1 matrix contracted on its rows
            if len(s) == 2:
                return s[1], 1, 0
            return s[1], s[2], a - 1

        xr, xc, cx = per_sample(sx, ax)
        yr, yc, cy = per_sample(sy, ay)
        out = b.new_value(node.outputs[0], _size(node.outputs[0].shape))
        b.op(OP_DOT, out, [b.value(node.inputs[0]), b.value(node.inputs[1])],
             flag=int(self.normalize), dims=(xr, xc, yr, yc, cx, cy))
