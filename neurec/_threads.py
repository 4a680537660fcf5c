"""Thread-count control for the C core (``NEUREC_NUM_THREADS`` sets the default)."""
import numbers


def set_num_threads(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive integer, got {n!r}")
    from neurec import _core
    _core.set_num_threads(int(n))


def get_num_threads() -> int:
    from neurec import _core
    return int(_core.get_num_threads())
