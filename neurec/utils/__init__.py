"""Utilities: seeding and the progress bar."""
from typing import Optional

from neurec.utils.progbar import Progbar

__all__ = ["set_random_seed", "Progbar"]


def set_random_seed(seed: Optional[int]) -> None:
    """Seed neurec's global random generator (weight initializers and the default
    ``fit`` seed), like ``keras.utils.set_random_seed``.

    With one thread, the same seed gives bit-identical training runs.

    Args:
        seed: A non-negative integer, or None for fresh entropy.

    Raises:
        ValueError: If ``seed`` is negative or not an integer.
    """
    import numpy as np

    from neurec.initializers import _reseed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    _reseed(seed)
