"""neurec: neural recommender models with a Keras-style API and a fast C core.

Write the Keras functional code you know, with ``keras`` replaced by ``neurec``
in the imports::

    from neurec.layers import Input, Embedding, Flatten, Dot, Dense
    from neurec.models import Model

Subpackages (``neurec.layers``, ``neurec.models``, ``neurec.data``,
``neurec.evaluation``, ...) are imported on first use, so ``import neurec`` is
cheap.
"""
import importlib as _importlib

from neurec._config import check_simd_env as _check_simd_env
from neurec._config import show_config
from neurec._version import __version__

_SUBMODULES = (
    "layers", "models", "optimizers", "losses", "metrics", "callbacks",
    "initializers", "regularizers", "activations", "utils", "data",
    "evaluation", "datasets", "distribution",
)

__all__ = ["__version__", "set_num_threads", "get_num_threads", "show_config", *_SUBMODULES]


def set_num_threads(n: int) -> None:
    """Set the number of threads the C core uses for fit, predict and recommend.

    Args:
        n: A positive number of threads. ``NEUREC_NUM_THREADS`` sets the
            initial value; the default is the number of CPU cores.

    Raises:
        ValueError: If ``n`` is not a positive integer.
    """
    from neurec import _threads
    _threads.set_num_threads(n)


def get_num_threads() -> int:
    """Return the number of threads the C core uses."""
    from neurec import _threads
    return _threads.get_num_threads()


_check_simd_env()


def __getattr__(name):
    if name in _SUBMODULES:
        return _importlib.import_module(f"neurec.{name}")
    raise AttributeError(f"module 'neurec' has no attribute {name!r}")
