"""Build script for neurec's C core.

The extension modules are compiled from ``csrc/``:

* ``neurec._core``: the plan executor, kernels, optimizers, sampler, top-K and
  thread pool (``csrc/src/*.c``) plus the only Python binding file that drives
  training (``csrc/py/_core.c``).
* ``neurec._rank``: ranking metrics and top-K selection (``csrc/py/_rank.c``).

Environment variables:

* ``NEUREC_CFLAGS``: extra compiler flags, appended (for example ``-Werror`` in
  CI, or ``-fsanitize=address,undefined -fno-omit-frame-pointer``).
* ``NEUREC_LDFLAGS``: extra linker flags, appended.

No ``-march=native`` and no ``-ffast-math`` (only ``-fno-math-errno``: C never reads
``errno``, and without it GCC cannot vectorize ``sqrtf``): wider SIMD is selected at run time
through GCC function multi-versioning (see ``csrc/include/neurec/nr_simd.h``).
"""
import glob
import os
import shlex
import sys

import numpy as np
from setuptools import Extension, setup

CFLAGS = ["-O3", "-std=c11", "-Wall", "-Wextra", "-pthread", "-fno-strict-aliasing",
          "-fno-math-errno", "-ffp-contract=fast"]
LDFLAGS = ["-pthread"]
if sys.platform == "darwin":
    CFLAGS.remove("-pthread")
CFLAGS += shlex.split(os.environ.get("NEUREC_CFLAGS", ""))
LDFLAGS += shlex.split(os.environ.get("NEUREC_LDFLAGS", ""))

INCLUDE = ["csrc/include", np.get_include()]
MACROS = [("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")]

core_sources = sorted(glob.glob("csrc/src/*.c")) + ["csrc/py/_core.c"]
rank_sources = ["csrc/py/_rank.c", "csrc/src/rank.c", "csrc/src/topk.c"]

extensions = [
    Extension("neurec._core", core_sources, include_dirs=INCLUDE, define_macros=MACROS,
              extra_compile_args=CFLAGS, extra_link_args=LDFLAGS, libraries=["m"]),
    Extension("neurec._rank", rank_sources, include_dirs=INCLUDE, define_macros=MACROS,
              extra_compile_args=CFLAGS, extra_link_args=LDFLAGS, libraries=["m"]),
]

# NEUREC_BUILD_ONLY=_rank builds one module alone (used while developing).
only = os.environ.get("NEUREC_BUILD_ONLY")
if only:
    extensions = [e for e in extensions if e.name.split(".")[-1] == only]

setup(ext_modules=extensions)
