"""Build and run the C test programs of the core, plainly and under sanitizers.

Every ``csrc/tests/test_*.c`` is a standalone program (no Python) that links
the C core (``csrc/src/*.c``) and exits non-zero when one of its checks fails,
printing which. Each is built twice into ``tmp_path``:

* ``plain``: ``-O2 -Wall -Wextra -Werror``, as a user's compiler would see it;
* ``sanitize``: AddressSanitizer + UndefinedBehaviorSanitizer (with
  LeakSanitizer at exit, so every ``init``/``free`` pair is checked) and
  ``-DNR_NO_MULTIVERSION`` (ifunc dispatch and ASan do not mix).

The core is compiled to objects once per flavour and shared by the programs.
A last test compiles the extension modules' sources (core and ``csrc/py``)
with setup.py's flags plus ``-Werror``.

Skips cleanly when ``gcc`` is missing or the sanitizer runtime cannot build or
run a trivial program.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"
CORE_SOURCES = sorted((CSRC / "src").glob("*.c"))
PY_SOURCES = sorted((CSRC / "py").glob("*.c"))
PROGRAMS = sorted((CSRC / "tests").glob("test_*.c"))
GCC = shutil.which("gcc")

pytestmark = pytest.mark.skipif(GCC is None, reason="gcc is not installed")

COMMON = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-pthread", f"-I{CSRC / 'include'}"]
FLAVOURS = {
    "plain": ["-O2"],
    # float-cast-overflow is not part of -fsanitize=undefined in GCC; it names
    # the NaN -> int conversions that would otherwise surface as wild indices.
    "sanitize": ["-O1", "-g", "-fsanitize=address,undefined,float-cast-overflow",
                 "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-DNR_NO_MULTIVERSION"],
}
# The extension flags of setup.py (CFLAGS and MACROS), plus -Werror and -fPIC.
EXT_FLAGS = ["-O3", "-std=c11", "-Wall", "-Wextra", "-Werror", "-pthread", "-fno-strict-aliasing",
             "-fno-math-errno", "-ffp-contract=fast", "-fPIC", "-DNPY_NO_DEPRECATED_API=NPY_2_0_API_VERSION"]
COMPILE_TIMEOUT = 180
RUN_TIMEOUT = 120
LSAN_UNAVAILABLE = ("LeakSanitizer has encountered a fatal error", "LeakSanitizer does not work under ptrace")


def _env(detect_leaks: bool = True) -> dict:
    env = dict(os.environ)
    # ci/sanitize.sh runs pytest with libasan preloaded: gcc and the programs
    # (which link their own runtime) must start without it.
    env.pop("LD_PRELOAD", None)
    env["ASAN_OPTIONS"] = f"detect_leaks={int(detect_leaks)}:halt_on_error=1:detect_stack_use_after_return=1"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    return env


def _run(cmd: list, timeout: float, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env if env is not None else _env())


def _tail(text: str, n: int = 6000) -> str:
    return text if len(text) <= n else "...\n" + text[-n:]


def _compile_objects(sources: list, flags: list, outdir: Path) -> list:
    """Compile sources to objects in parallel; fail the test with gcc's output."""
    outdir.mkdir(parents=True, exist_ok=True)

    def one(src: Path):
        obj = outdir / (src.stem + ".o")
        return obj, src, _run([GCC, *flags, "-c", src, "-o", obj], COMPILE_TIMEOUT)

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as ex:
        results = list(ex.map(one, sources))
    errors = [f"{src.relative_to(ROOT)}:\n{_tail(r.stdout + r.stderr)}" for _, src, r in results if r.returncode]
    assert not errors, "compilation failed:\n" + "\n".join(errors)
    return [obj for obj, _, _ in results]


@pytest.fixture(scope="module")
def sanitizer_works(tmp_path_factory) -> bool:
    """Whether gcc can build and run an ASan + UBSan program here."""
    d = tmp_path_factory.mktemp("sanitizer_probe")
    src = d / "probe.c"
    src.write_text("#include <stdlib.h>\nint main(void) { char *p = malloc(4); p[0] = 1; "
                   "int r = p[0] - 1; free(p); return r; }\n")
    exe = d / "probe"
    r = _run([GCC, *FLAVOURS["sanitize"], src, "-o", exe], COMPILE_TIMEOUT)
    if r.returncode:
        return False
    r = _run([exe], RUN_TIMEOUT)
    if r.returncode and any(m in r.stderr for m in LSAN_UNAVAILABLE):
        r = _run([exe], RUN_TIMEOUT, _env(detect_leaks=False))
    return r.returncode == 0


@pytest.fixture(scope="module")
def core_objects(tmp_path_factory):
    """Core objects per flavour, compiled on first use."""
    cache: dict = {}

    def get(flavour: str) -> list:
        if flavour not in cache:
            out = tmp_path_factory.mktemp(f"core_{flavour}")
            cache[flavour] = _compile_objects(CORE_SOURCES, COMMON + FLAVOURS[flavour], out)
        return cache[flavour]

    return get


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
@pytest.mark.parametrize("program", PROGRAMS, ids=[p.stem for p in PROGRAMS])
def test_c_program(program: Path, flavour: str, core_objects, sanitizer_works, tmp_path):
    if flavour == "sanitize" and not sanitizer_works:
        pytest.skip("the ASan/UBSan runtime cannot build or run a program here")
    flags = COMMON + FLAVOURS[flavour]
    objs = core_objects(flavour)
    exe = tmp_path / program.stem
    r = _run([GCC, *flags, program, *objs, "-lm", "-o", exe], COMPILE_TIMEOUT)
    assert r.returncode == 0, f"building {program.name} ({flavour}) failed:\n{_tail(r.stderr)}"

    r = _run([exe], RUN_TIMEOUT)
    if flavour == "sanitize" and r.returncode and any(m in r.stderr for m in LSAN_UNAVAILABLE):
        r = _run([exe], RUN_TIMEOUT, _env(detect_leaks=False))
    assert r.returncode == 0, (
        f"{program.name} ({flavour}) exited with {r.returncode}:\n"
        f"--- stdout ---\n{_tail(r.stdout, 2000)}\n--- stderr ---\n{_tail(r.stderr)}")
    assert "FAIL" not in r.stderr, r.stderr


def test_extension_sources_compile_without_warnings(tmp_path):
    numpy = pytest.importorskip("numpy")
    py_include = Path(sysconfig.get_paths()["include"])
    if not (py_include / "Python.h").exists():
        pytest.skip(f"Python headers are not installed ({py_include})")
    assert CORE_SOURCES and PY_SOURCES, "csrc/src or csrc/py has no C sources"
    flags = EXT_FLAGS + [f"-I{CSRC / 'include'}", f"-I{py_include}", f"-I{numpy.get_include()}"]
    objs = _compile_objects(CORE_SOURCES + PY_SOURCES, flags, tmp_path)
    assert all(o.stat().st_size > 0 for o in objs)
