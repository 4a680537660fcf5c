"""``neurec.show_config``: how this build of neurec was compiled and what it runs on."""
from __future__ import annotations

import os
import platform
import sys
from typing import Any

_LEVEL_NAMES = ("baseline", "sse2", "neon", "generic", "avx2", "avx512")


def _config() -> dict[str, Any]:
    import numpy as np

    from neurec import _core
    from neurec._version import __version__
    info = _core.build_info()
    return {
        "neurec": {"version": __version__, "path": os.path.dirname(os.path.abspath(__file__))},
        "build": {"compiler": info["compiler"], "numpy_runtime": np.__version__},
        "machine": {"system": platform.system(), "arch": platform.machine(),
                    "python": platform.python_version(), "cpu_count": info["cpu_count"]},
        "simd": {"compiled": info["simd_compiled"], "supported": info["simd_supported"],
                 "level": info["simd_level"], "NEUREC_SIMD": os.environ.get("NEUREC_SIMD")},
        "threads": {"num_threads": int(_core.get_num_threads()),
                    "NEUREC_NUM_THREADS": os.environ.get("NEUREC_NUM_THREADS")},
    }


def show_config(mode: str = "stdout") -> dict[str, Any] | None:
    """Show the compiler, the SIMD kernels in use and the thread count of this build.

    Modelled on ``numpy.show_config``. The kernels are compiled for several instruction-set
    levels (``sse2``/``neon`` baseline, ``avx2``, ``avx512``) and the best one the CPU
    supports is chosen at import; ``NEUREC_SIMD=avx2`` (or ``baseline``) caps it.

    Args:
        mode: ``"stdout"`` prints a readable report; ``"dicts"`` returns it as nested dicts
            instead.

    Returns:
        ``None`` with ``mode="stdout"``; the report with ``mode="dicts"``.

    Raises:
        ValueError: If ``mode`` is neither ``"stdout"`` nor ``"dicts"``.

    Example:

    >>> import neurec
    >>> neurec.show_config(mode="dicts")["simd"]["level"] in ("sse2", "neon", "generic",
    ...                                                      "avx2", "avx512")
    True
    """
    if mode not in ("stdout", "dicts"):
        raise ValueError(f"show_config: mode must be 'stdout' or 'dicts', got {mode!r}")
    cfg = _config()
    if mode == "dicts":
        return cfg
    for section, values in cfg.items():
        print(f"{section}:")
        for key, value in values.items():
            if isinstance(value, list):
                value = ", ".join(value)
            print(f"  {key}: {value}")
    sys.stdout.flush()
    return None


def check_simd_env() -> None:
    """Warn once at import when ``NEUREC_SIMD`` names no known level (it is then ignored)."""
    value = os.environ.get("NEUREC_SIMD")
    if value and value.strip().lower() not in _LEVEL_NAMES:
        import warnings
        warnings.warn(f"NEUREC_SIMD={value!r} is not a SIMD level and is ignored; use "
                      "'avx512', 'avx2' or 'baseline' (also spelled 'sse2', 'neon', 'generic')",
                      RuntimeWarning, stacklevel=3)
