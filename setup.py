"""Build script for neurec's C core.

One extension module, ``neurec._core``, is compiled from ``csrc/``, every source once: the
C core (``csrc/src/*.c``: plan executor, kernels, optimizers, sampler, scoring, iALS,
ranking metrics, top-K, SIMD dispatch, thread pool) and its Python binding
(``csrc/py/*.c``: one argument dialect and one thread-pool cache for training,
recommendation and evaluation alike).

Compilers: GCC >= 9 and clang on Linux/macOS (glibc and musl), MinGW-w64 GCC, and
clang-cl on Windows (MSVC's ``cl.exe`` lacks the vector extensions the kernels are written
in: when setuptools picks MSVC, the build switches to ``clang-cl.exe``, which ships with
Visual Studio's "C++ Clang tools for Windows" component or LLVM, found on ``PATH`` or by
``NEUREC_CLANG_CL``).

Environment variables:

* ``NEUREC_CFLAGS``: extra compiler flags, appended (for example ``-Werror`` in
  CI, or ``-fsanitize=address,undefined -fno-omit-frame-pointer``).
* ``NEUREC_LDFLAGS``: extra linker flags, appended.

No ``-march=native`` and no ``-ffast-math`` (only ``-fno-math-errno``: C never reads
``errno``, and without it GCC cannot vectorize ``sqrtf``): the kernels are compiled once per
SIMD level with ``__attribute__((target(...)))`` and chosen at run time (see
``csrc/include/neurec/nr_simd.h``).
"""
import glob
import os
import shlex
import shutil
import sys

import numpy as np
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# GCC and clang (also MinGW-w64): C11, warnings, and no implicit declarations ever (a
# missing prototype compiles to a call through int and fails only at import).
GNU_CFLAGS = ["-O3", "-std=c11", "-Wall", "-Wextra", "-Werror=implicit-function-declaration",
              "-fno-strict-aliasing", "-fno-math-errno", "-ffp-contract=fast"]
# clang-cl: the same, spelled through /clang: where the MSVC driver has no equivalent.
CLANG_CL_CFLAGS = ["/O2", "/clang:-O3", "/clang:-std=c11", "/W3",
                   "/clang:-Werror=implicit-function-declaration", "/clang:-fno-strict-aliasing",
                   "/clang:-fno-math-errno", "/clang:-ffp-contract=fast",
                   "-D_CRT_SECURE_NO_WARNINGS"]

INCLUDE = ["csrc/include", np.get_include()]
MACROS = [("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")]

sources = sorted(glob.glob("csrc/src/*.c")) + sorted(glob.glob("csrc/py/*.c"))


def _find_clang_cl():
    """clang-cl.exe from NEUREC_CLANG_CL, PATH, or Visual Studio's LLVM component."""
    explicit = os.environ.get("NEUREC_CLANG_CL")
    if explicit:
        return explicit
    found = shutil.which("clang-cl")
    if found:
        return found
    roots = [os.environ.get("ProgramFiles", r"C:\Program Files"),
             os.environ.get("ProgramFiles(x86)", r"C:\Program Files (x86)")]
    patterns = [os.path.join(r, "Microsoft Visual Studio", "*", "*", "VC", "Tools", "Llvm", "x64",
                             "bin", "clang-cl.exe") for r in roots]
    patterns.append(os.path.join(roots[0], "LLVM", "bin", "clang-cl.exe"))
    for pattern in patterns:
        hits = sorted(glob.glob(pattern))
        if hits:
            return hits[-1]
    return None


class BuildExt(build_ext):
    """Compiler-specific flags; on Windows, clang-cl in place of cl.exe."""

    def build_extensions(self):
        cc = self.compiler
        extra_c = shlex.split(os.environ.get("NEUREC_CFLAGS", ""))
        extra_l = shlex.split(os.environ.get("NEUREC_LDFLAGS", ""))
        if cc.compiler_type == "msvc":
            clang_cl = _find_clang_cl()
            if not clang_cl:
                raise RuntimeError(
                    "neurec's C core needs clang-cl on Windows (MSVC's cl.exe has no vector "
                    "extensions): install Visual Studio's 'C++ Clang tools for Windows' component "
                    "or LLVM, or set NEUREC_CLANG_CL to clang-cl.exe; or build with MinGW-w64")
            if not getattr(cc, "initialized", False):
                cc.initialize()
            cc.cc = clang_cl
            cflags, ldflags, libraries = CLANG_CL_CFLAGS, [], []
        else:
            cflags, ldflags, libraries = list(GNU_CFLAGS), [], ["m"]
            if sys.platform not in ("win32", "cygwin", "darwin"):
                cflags.append("-pthread")
                ldflags.append("-pthread")
        for ext in self.extensions:
            ext.extra_compile_args = cflags + extra_c
            ext.extra_link_args = ldflags + extra_l
            ext.libraries = libraries
        super().build_extensions()


extensions = [
    Extension("neurec._core", sources, include_dirs=INCLUDE, define_macros=MACROS,
              depends=sorted(glob.glob("csrc/include/neurec/*.h") + glob.glob("csrc/py/*.h"))),
]

setup(ext_modules=extensions, cmdclass={"build_ext": BuildExt})
