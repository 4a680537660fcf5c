"""Build and run the C test programs of the core on every toolchain at hand.

Every ``csrc/tests/test_*.c`` is a standalone program (no Python) that links
the C core (``csrc/src/*.c``) and exits non-zero when one of its checks fails,
printing which; ``test_core`` runs its kernel checks at every SIMD level the
CPU supports. Each program is built with ``-Wall -Wextra -Werror`` by every
toolchain found here (CI installs them all; each one missing is skipped):

* ``gcc``: ``-O2``, as a user's compiler would see it;
* ``sanitize``: gcc with AddressSanitizer + UndefinedBehaviorSanitizer (with
  LeakSanitizer at exit, so every ``init``/``free`` pair is checked), every
  SIMD level included;
* ``tsan``: gcc with ThreadSanitizer (the pool, the threaded plans, sampler
  and scorer; Hogwild's intentional races are suppressed by name);
* ``portable``: gcc without the 128-bit integer and without SIMD clones, as a
  32-bit target or an unknown compiler builds it;
* ``clang`` and ``gcc-11``: the other compilers of a user's machine;
* ``musl``: gcc against musl libc (Alpine, musllinux wheels; no GNU ifunc);
* ``i386``: the i686 cross gcc (32-bit x86 with x87 float math), run natively;
* ``mingw``: MinGW-w64 for Windows x86-64 (Win32 threads), run under Wine;
* ``clang-mingw``: clang targeting Windows x86-64 (the compiler of the Windows
  wheels, there as clang-cl), on MinGW-w64's headers, run under Wine;
* ``aarch64``: the aarch64 cross gcc (NEON baseline), run under qemu-user.

The core is compiled to objects once per toolchain and shared by the programs.
The last tests compile the extension module's sources (core and ``csrc/py``)
with setup.py's flags plus ``-Werror`` with each native compiler.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"
CORE_SOURCES = sorted((CSRC / "src").glob("*.c"))
PY_SOURCES = sorted((CSRC / "py").glob("*.c"))
PROGRAMS = sorted((CSRC / "tests").glob("test_*.c"))
TSAN_SUPPRESSIONS = CSRC / "tests" / "tsan.supp"

COMMON = ["-std=c11", "-Wall", "-Wextra", "-Werror", f"-I{CSRC / 'include'}"]
# float-cast-overflow is not part of -fsanitize=undefined in GCC; it names the NaN -> int
# conversions that would otherwise surface as wild indices.
SANITIZE = ["-O1", "-g", "-fsanitize=address,undefined,float-cast-overflow",
            "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


@dataclass(frozen=True)
class Toolchain:
    """A compiler, its flags, and how to run what it builds."""
    cc: str
    flags: tuple = ()
    libs: tuple = ("-lm", "-pthread")
    runner: tuple = ()          # e.g. ("wine",): the programs run under it
    exe_suffix: str = ""
    needs: tuple = ()           # other executables that must exist (the runner)
    env: dict = field(default_factory=dict, hash=False)


def _mingw_libgcc_dir() -> str:
    """Where MinGW-w64's libgcc lives (clang targeting MinGW does not find it by itself)."""
    gcc = shutil.which("x86_64-w64-mingw32-gcc")
    if gcc is None:
        return "."
    out = subprocess.run([gcc, "-print-libgcc-file-name"], capture_output=True, text=True)
    return str(Path(out.stdout.strip()).parent) if out.returncode == 0 else "."


TOOLCHAINS = {
    "gcc": Toolchain("gcc", ("-O2", "-pthread")),
    "sanitize": Toolchain("gcc", (*SANITIZE, "-pthread")),
    "tsan": Toolchain("gcc", ("-O1", "-g", "-fsanitize=thread", "-pthread"),
                      env={"TSAN_OPTIONS": f"halt_on_error=1:second_deadlock_stack=1:"
                                           f"suppressions={TSAN_SUPPRESSIONS}"}),
    "portable": Toolchain("gcc", ("-O2", "-pthread", "-DNR_NO_INT128", "-DNR_NO_MULTIVERSION")),
    "clang": Toolchain("clang", ("-O2", "-pthread")),
    "gcc-11": Toolchain("gcc-11", ("-O2", "-pthread")),
    "musl": Toolchain("musl-gcc", ("-O2", "-pthread")),
    # x87 float math (FLT_EVAL_METHOD 2), 32-bit size_t and pointers, no __int128
    # (the i686 cross gcc: Debian's gcc-multilib would remove the aarch64 cross compiler; the
    # programs run natively through the cross libc's loader)
    "i386": Toolchain("i686-linux-gnu-gcc", ("-O2", "-pthread", "-Wno-psabi"),
                      runner=("/usr/i686-linux-gnu/lib/ld-linux.so.2", "--library-path",
                              "/usr/i686-linux-gnu/lib"),
                      needs=("/usr/i686-linux-gnu/lib/ld-linux.so.2",)),
    "mingw": Toolchain("x86_64-w64-mingw32-gcc", ("-O2",), libs=(), runner=("wine",),
                       exe_suffix=".exe", needs=("wine",), env={"WINEDEBUG": "-all"}),
    # clang for Windows (as clang-cl compiles the wheels), on MinGW-w64's headers and libraries
    "clang-mingw": Toolchain("clang", ("--target=x86_64-w64-mingw32", "-O2"),
                             libs=(f"-L{_mingw_libgcc_dir()}",), runner=("wine",), exe_suffix=".exe",
                             needs=("wine", "x86_64-w64-mingw32-gcc"), env={"WINEDEBUG": "-all"}),
    "aarch64": Toolchain("aarch64-linux-gnu-gcc", ("-O2", "-pthread"),
                         runner=("qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"),
                         needs=("qemu-aarch64",)),
}
COMPILE_TIMEOUT = 300
RUN_TIMEOUT = 300
LSAN_UNAVAILABLE = ("LeakSanitizer has encountered a fatal error", "LeakSanitizer does not work under ptrace")
# The extension flags of setup.py (GNU_CFLAGS and MACROS), plus -Werror and -fPIC.
EXT_FLAGS = ["-O3", "-std=c11", "-Wall", "-Wextra", "-Werror", "-Werror=implicit-function-declaration",
             "-pthread", "-fno-strict-aliasing", "-fno-math-errno", "-ffp-contract=fast", "-fPIC",
             "-DNPY_NO_DEPRECATED_API=NPY_2_0_API_VERSION"]


def _missing(tc: Toolchain) -> str | None:
    for exe in (tc.cc, *tc.needs):
        if (not Path(exe).exists()) if os.path.isabs(exe) else shutil.which(exe) is None:
            return f"{exe} is not installed"
    return None


def _env(detect_leaks: bool = True) -> dict:
    env = dict(os.environ)
    # .ci/sanitize.sh runs pytest with libasan preloaded: gcc and the programs
    # (which link their own runtime) must start without it.
    env.pop("LD_PRELOAD", None)
    # No detect_stack_use_after_return: ASan's fake stack frames are only 32-byte aligned, and
    # GCC spills AVX-512 registers with aligned 64-byte moves (vmovaps), which then fault.
    env["ASAN_OPTIONS"] = f"detect_leaks={int(detect_leaks)}:halt_on_error=1"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    return env


def _run(cmd: list, timeout: float, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env if env is not None else _env())


def _tail(text: str, n: int = 6000) -> str:
    return text if len(text) <= n else "...\n" + text[-n:]


def _compile_objects(sources: list, flags: list, outdir: Path, cc: str = "gcc") -> list:
    """Compile sources to objects in parallel; fail the test with the compiler's output."""
    outdir.mkdir(parents=True, exist_ok=True)

    def one(src: Path):
        obj = outdir / (src.stem + ".o")
        return obj, src, _run([cc, *flags, "-c", src, "-o", obj], COMPILE_TIMEOUT)

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as ex:
        results = list(ex.map(one, sources))
    errors = [f"{src.relative_to(ROOT)}:\n{_tail(r.stdout + r.stderr)}"
              for _, src, r in results if r.returncode]
    assert not errors, "compilation failed:\n" + "\n".join(errors)
    return [obj for obj, _, _ in results]


@pytest.fixture(scope="module")
def sanitizer_works(tmp_path_factory):
    """Whether gcc can build and run an ASan + UBSan (or TSan) program here."""
    cache: dict = {}

    def works(name: str) -> bool:
        if name not in cache:
            d = tmp_path_factory.mktemp(f"probe_{name}")
            src = d / "probe.c"
            src.write_text("#include <stdlib.h>\nint main(void) { char *p = malloc(4); p[0] = 1; "
                           "int r = p[0] - 1; free(p); return r; }\n")
            exe = d / "probe"
            tc = TOOLCHAINS[name]
            r = _run([tc.cc, *tc.flags, src, "-o", exe], COMPILE_TIMEOUT)
            ok = r.returncode == 0
            if ok:
                r = _run([exe], RUN_TIMEOUT, {**_env(), **tc.env})
                if r.returncode and any(m in r.stderr for m in LSAN_UNAVAILABLE):
                    r = _run([exe], RUN_TIMEOUT, _env(detect_leaks=False))
                ok = r.returncode == 0
            cache[name] = ok
        return cache[name]

    return works


@pytest.fixture(scope="module")
def core_objects(tmp_path_factory):
    """Core objects per toolchain, compiled on first use."""
    cache: dict = {}

    def get(name: str) -> list:
        if name not in cache:
            tc = TOOLCHAINS[name]
            out = tmp_path_factory.mktemp(f"core_{name}")
            cache[name] = _compile_objects(CORE_SOURCES, COMMON + list(tc.flags), out, tc.cc)
        return cache[name]

    return get


@pytest.mark.parametrize("toolchain", sorted(TOOLCHAINS))
@pytest.mark.parametrize("program", PROGRAMS, ids=[p.stem for p in PROGRAMS])
def test_c_program(program: Path, toolchain: str, core_objects, sanitizer_works, tmp_path):
    tc = TOOLCHAINS[toolchain]
    missing = _missing(tc)
    if missing:
        pytest.skip(missing)
    if toolchain in ("sanitize", "tsan") and not sanitizer_works(toolchain):
        pytest.skip(f"the {toolchain} runtime cannot build or run a program here")
    flags = COMMON + list(tc.flags)
    objs = core_objects(toolchain)
    exe = tmp_path / (program.stem + tc.exe_suffix)
    r = _run([tc.cc, *flags, program, *objs, *tc.libs, "-o", exe], COMPILE_TIMEOUT)
    assert r.returncode == 0, f"building {program.name} ({toolchain}) failed:\n{_tail(r.stderr)}"

    env = {**_env(), **tc.env}
    r = _run([*tc.runner, exe], RUN_TIMEOUT, env)
    if toolchain == "sanitize" and r.returncode and any(m in r.stderr for m in LSAN_UNAVAILABLE):
        r = _run([*tc.runner, exe], RUN_TIMEOUT, {**_env(detect_leaks=False), **tc.env})
    assert r.returncode == 0, (
        f"{program.name} ({toolchain}) exited with {r.returncode}:\n"
        f"--- stdout ---\n{_tail(r.stdout, 2000)}\n--- stderr ---\n{_tail(r.stderr)}")
    assert "FAIL" not in r.stderr, r.stderr
    assert "passed" in r.stdout, r.stdout


@pytest.mark.parametrize("cc", ["gcc", "clang", "gcc-11"])
def test_extension_sources_compile_without_warnings(cc: str, tmp_path):
    numpy = pytest.importorskip("numpy")
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} is not installed")
    py_include = Path(sysconfig.get_paths()["include"])
    if not (py_include / "Python.h").exists():
        pytest.skip(f"Python headers are not installed ({py_include})")
    assert CORE_SOURCES and PY_SOURCES, "csrc/src or csrc/py has no C sources"
    flags = EXT_FLAGS + [f"-I{CSRC / 'include'}", f"-I{py_include}", f"-I{numpy.get_include()}"]
    objs = _compile_objects(CORE_SOURCES + PY_SOURCES, flags, tmp_path, cc)
    assert all(o.stat().st_size > 0 for o in objs)
