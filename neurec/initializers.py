"""Weight initializers with Keras names, arguments and defaults.

Random initializers draw from NumPy's PCG64. Without an explicit ``seed`` they
draw from neurec's global generator, which :func:`neurec.utils.set_random_seed`
resets, so a seeded script builds identical weights every run.
"""
import copy
import math
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np

from neurec._registry import resolve

__all__ = [
    "Initializer", "Zeros", "Ones", "Constant", "RandomUniform", "RandomNormal",
    "TruncatedNormal", "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal",
    "LecunUniform", "LecunNormal", "get", "serialize",
]

_GLOBAL = {"rng": np.random.default_rng()}


def _global_rng() -> np.random.Generator:
    return _GLOBAL["rng"]


def _reseed(seed: Optional[int]) -> None:
    _GLOBAL["rng"] = np.random.default_rng(seed)


def _fans(shape: Sequence[int]):
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Base class: ``init(shape, dtype='float32') -> np.ndarray``."""

    def __init__(self, seed: Optional[int] = None):
        self.seed = seed
        self._rng = None if seed is None else np.random.default_rng(seed)

    def _gen(self) -> np.random.Generator:
        return self._rng if self._rng is not None else _global_rng()

    def __call__(self, shape, dtype="float32") -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> Dict[str, Any]:
        return {"seed": self.seed}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_config()})"


class Zeros(Initializer):
    """All zeros."""

    def __init__(self):
        super().__init__(None)

    def __call__(self, shape, dtype="float32"):
        return np.zeros(shape, dtype=dtype)

    def get_config(self):
        return {}


class Ones(Initializer):
    """All ones."""

    def __init__(self):
        super().__init__(None)

    def __call__(self, shape, dtype="float32"):
        return np.ones(shape, dtype=dtype)

    def get_config(self):
        return {}


class Constant(Initializer):
    """All equal to ``value``."""

    def __init__(self, value: float = 0.0):
        super().__init__(None)
        self.value = float(value)

    def __call__(self, shape, dtype="float32"):
        return np.full(shape, self.value, dtype=dtype)

    def get_config(self):
        return {"value": self.value}


class RandomUniform(Initializer):
    """Uniform in ``[minval, maxval)`` (Keras defaults -0.05, 0.05)."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: Optional[int] = None):
        super().__init__(seed)
        if not maxval > minval:
            raise ValueError(f"RandomUniform: maxval ({maxval}) must be > minval ({minval})")
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, shape, dtype="float32"):
        return self._gen().uniform(self.minval, self.maxval, size=shape).astype(dtype)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class RandomNormal(Initializer):
    """Normal with ``mean`` and ``stddev`` (Keras defaults 0.0, 0.05)."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: Optional[int] = None):
        super().__init__(seed)
        if stddev < 0:
            raise ValueError(f"RandomNormal: stddev must be >= 0, got {stddev}")
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape, dtype="float32"):
        return self._gen().normal(self.mean, self.stddev, size=shape).astype(dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


def _truncated_standard_normal(g: np.random.Generator, shape) -> np.ndarray:
    """Standard normal draws with values beyond two standard deviations redrawn."""
    out = g.normal(0.0, 1.0, size=shape)
    bad = np.abs(out) > 2.0
    while bad.any():
        out[bad] = g.normal(0.0, 1.0, size=int(bad.sum()))
        bad = np.abs(out) > 2.0
    return out


class TruncatedNormal(RandomNormal):
    """Normal truncated to two standard deviations (values beyond are redrawn)."""

    def __call__(self, shape, dtype="float32"):
        out = _truncated_standard_normal(self._gen(), shape)
        return (self.mean + self.stddev * out).astype(dtype)


class _VarianceScaling(Initializer):
    scale = 1.0
    mode = "fan_in"
    distribution = "uniform"

    def __call__(self, shape, dtype="float32"):
        return self._draw(shape, shape, dtype)

    def _draw(self, shape, fan_shape, dtype="float32"):
        """Draws of ``shape`` scaled for a weight of ``fan_shape``."""
        fan_in, fan_out = _fans(tuple(fan_shape))
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        var = self.scale / max(1.0, n)
        g = self._gen()
        if self.distribution == "uniform":
            lim = math.sqrt(3.0 * var)
            return g.uniform(-lim, lim, size=shape).astype(dtype)
        std = math.sqrt(var) / 0.87962566103423978
        return (std * _truncated_standard_normal(g, shape)).astype(dtype)


class GlorotUniform(_VarianceScaling):
    """Uniform in ``±sqrt(6 / (fan_in + fan_out))`` (Keras's Dense default)."""
    scale, mode, distribution = 1.0, "fan_avg", "uniform"


class GlorotNormal(_VarianceScaling):
    """Truncated normal with stddev ``sqrt(2 / (fan_in + fan_out))``."""
    scale, mode, distribution = 1.0, "fan_avg", "truncated_normal"


class HeUniform(_VarianceScaling):
    """Uniform in ``±sqrt(6 / fan_in)``."""
    scale, mode, distribution = 2.0, "fan_in", "uniform"


class HeNormal(_VarianceScaling):
    """Truncated normal with stddev ``sqrt(2 / fan_in)``."""
    scale, mode, distribution = 2.0, "fan_in", "truncated_normal"


class LecunUniform(_VarianceScaling):
    """Uniform in ``±sqrt(3 / fan_in)``."""
    scale, mode, distribution = 1.0, "fan_in", "uniform"


class LecunNormal(_VarianceScaling):
    """Truncated normal with stddev ``sqrt(1 / fan_in)``."""
    scale, mode, distribution = 1.0, "fan_in", "truncated_normal"


_ALIASES = {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "uniform": RandomUniform,
    "random_uniform": RandomUniform, "normal": RandomNormal, "random_normal": RandomNormal,
    "truncated_normal": TruncatedNormal, "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal, "he_uniform": HeUniform, "he_normal": HeNormal,
    "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal,
}
_CLASSES = {c.__name__: c for c in set(_ALIASES.values())}


def get(identifier: Union[str, dict, Initializer]) -> Initializer:
    """Resolve a Keras initializer name (``'glorot_uniform'``), config dict or object.

    Raises:
        ValueError: For an unknown name.
    """
    out = resolve(identifier, "initializer", Initializer, _ALIASES, _CLASSES)
    if out is not None:
        return out
    raise ValueError(f"Could not interpret initializer {identifier!r}")


def new_rows(init: Initializer, shape: Sequence[int], first: int, seed: Optional[int] = None,
             dtype: str = "float32") -> np.ndarray:
    """Rows ``first:`` of a table of ``shape`` as ``init`` draws them (a grown table's new rows).

    Variance-scaling initializers take their scale from the whole ``shape`` (the rows are
    drawn as for a table built at that size). With ``seed`` the draws come from a fresh
    generator of that seed (same seed, same rows); else from ``init``'s own generator.

    Args:
        init: The initializer.
        shape: Shape of the whole (grown) table.
        first: The first new row (the old number of rows).
        seed: Seed of a fresh generator, or None.
        dtype: Dtype of the result.

    Returns:
        An array of shape ``(shape[0] - first,) + shape[1:]``.

    Raises:
        ValueError: If ``first`` is not in ``[0, shape[0]]``.
    """
    shape = tuple(int(d) for d in shape)
    if not 0 <= first <= shape[0]:
        raise ValueError(f"new_rows: first={first} is outside [0, {shape[0]}]")
    if seed is not None:
        init = copy.copy(init)
        init._rng = np.random.default_rng(seed)
    part = (shape[0] - first,) + shape[1:]
    if isinstance(init, _VarianceScaling):
        return init._draw(part, shape, dtype)
    return init(part, dtype)


def serialize(init: Initializer) -> dict:
    return {"class_name": type(init).__name__, "config": init.get_config()}
