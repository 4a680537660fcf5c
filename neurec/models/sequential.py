"""``Sequential``: a linear stack of layers."""
from typing import List, Optional

from neurec._registry import register_serializable
from neurec.layers.base import KerasTensor, Layer
from neurec.layers.core import Input, InputLayer
from neurec.models._data import to_numpy
from neurec.models.model import Model

__all__ = ["Sequential"]


@register_serializable()
class Sequential(Model):
    """A stack of layers, each feeding the next, as ``keras.Sequential``.

    Start it with ``Input(shape=...)`` (or let the first ``fit``/``predict`` infer
    the input shape from the data).

    Args:
        layers: Optional list of layers (the first may be an ``Input`` tensor).
        name: Model name (default ``'sequential'``).
    """

    def __init__(self, layers: Optional[List] = None, name: Optional[str] = None, **kwargs):
        super().__init__(name=name or "sequential", **kwargs)
        self._stack: List[Layer] = []
        self._input_tensor: Optional[KerasTensor] = None
        for layer in layers or []:
            self.add(layer, rebuild=False)
        if self._input_tensor is not None:
            self._rebuild()

    def add(self, layer, rebuild: bool = True) -> None:
        """Append a layer (or an ``Input`` tensor / ``InputLayer`` as the first element).

        Raises:
            ValueError: If an input is added after other layers, or the layer is not a Layer.
        """
        if isinstance(layer, KerasTensor):
            if self._stack or self._input_tensor is not None:
                raise ValueError("Sequential: an Input must come first")
            self._input_tensor = layer
            return
        if isinstance(layer, InputLayer):
            if self._stack or self._input_tensor is not None:
                raise ValueError("Sequential: an Input must come first")
            self._input_tensor = layer.output
            return
        if not isinstance(layer, Layer):
            raise ValueError(f"Sequential.add expects a Layer, got {type(layer).__name__}")
        if not self._stack and self._input_tensor is None and \
                getattr(layer, "_input_shape_arg", None) is not None:
            self._input_tensor = Input(shape=tuple(layer._input_shape_arg))
        self._stack.append(layer)
        if rebuild and self._input_tensor is not None:
            self._rebuild()

    def pop(self) -> Layer:
        """Remove and return the last layer."""
        if not self._stack:
            raise ValueError("Sequential.pop: there are no layers")
        layer = self._stack.pop()
        if self._input_tensor is not None and self._stack:
            self._rebuild()
        return layer

    def _rebuild(self) -> None:
        t = self._input_tensor
        for layer in self._stack:
            t = layer(t)
        if self._stack:
            self._init_graph([self._input_tensor], t)
            self._plan = None

    def _ensure_built(self, x) -> None:
        if hasattr(self, "inputs"):
            return
        if not self._stack:
            raise ValueError("Sequential model has no layers")
        a = to_numpy(x[0] if isinstance(x, (list, tuple)) else x, "x")
        shape = a.shape[1:] or (1,)
        dtype = "int64" if a.dtype.kind in "iu" else "float32"
        self._input_tensor = Input(shape=shape, dtype=dtype)
        self._rebuild()

    @classmethod
    def _from_graph(cls, inputs: List[KerasTensor], output: KerasTensor,
                    name: Optional[str]) -> "Sequential":
        """The Sequential of a config's graph (see :meth:`Model.from_config`)."""
        model = cls(name=name)
        model._input_tensor = inputs[0]
        model._init_graph(inputs, output)
        model._stack = [n.layer for n in model._nodes_in_order]
        return model

    def compile(self, *args, **kwargs):
        self._pending_compile = (args, kwargs)
        if hasattr(self, "inputs"):
            return super().compile(*args, **kwargs)

    def _maybe_finish(self, x):
        if not hasattr(self, "inputs"):
            self._ensure_built(x)
            if getattr(self, "_pending_compile", None):
                a, k = self._pending_compile
                Model.compile(self, *a, **k)

    def fit(self, x=None, y=None, **kwargs):
        self._maybe_finish(x)
        return super().fit(x, y, **kwargs)

    def predict(self, x, **kwargs):
        self._maybe_finish(x)
        return super().predict(x, **kwargs)

    def evaluate(self, x=None, y=None, **kwargs):
        self._maybe_finish(x)
        return super().evaluate(x, y, **kwargs)

    @property
    def layers(self):
        if hasattr(self, "_layers"):
            return [l for l in self._layers if not isinstance(l, InputLayer)]
        return list(self._stack)
