#!/usr/bin/env bash
# Run neurec's test suite against the extension module built with AddressSanitizer
# and UndefinedBehaviorSanitizer, or (SANITIZER=thread) ThreadSanitizer.
#
#   .ci/sanitize.sh                 # the default selection (see below)
#   .ci/sanitize.sh tests/test_saving.py -k roundtrip   # any pytest arguments
#   SANITIZER=thread .ci/sanitize.sh                    # TSan: the threaded tests
#
# The repository is copied (tracked and untracked-but-not-ignored files, so no
# build/ or *.so) to a temporary directory, the module is built in place
# there with the sanitizer flags, and pytest runs from that copy with the ASan
# and UBSan runtimes preloaded into the interpreter (Python itself is not
# instrumented; ASan must still be the first library loaded). Leak detection
# is off: the interpreter's own allocations at exit would drown the report.
# The C test programs get their own sanitizer builds with leak detection in
# tests/test_c_programs.py.
#
# Under TSan, Hogwild's intended races are suppressed by name
# (csrc/tests/tsan.supp); NumPy and Python are not instrumented, so only the
# core's own memory accesses are checked (against each other and against the
# locks and atomics every library shares through the preloaded runtime).
#
# Environment: PYTHON (default python3), CC (default gcc), SANITIZER (address,
# the default, or thread), KEEP=1 keeps the temporary copy for inspection.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
# the interpreter itself, not a wrapper script (pyenv's shims are bash, and a
# sanitizer runtime preloaded into bash may crash it)
PYTHON="$("$PYTHON" -c 'import sys; print(sys.executable)')"
CC="${CC:-gcc}"
SANITIZER="${SANITIZER:-address}"
start=$SECONDS

WORK="$(mktemp -d "${TMPDIR:-/tmp}/neurec-sanitize.XXXXXX")"
if [[ "${KEEP:-0}" == 1 ]]; then
    echo "sanitize: keeping $WORK"
else
    trap 'rm -rf "$WORK"' EXIT
fi
SRC="$WORK/neurec"
mkdir -p "$SRC"

# --- copy the repository ----------------------------------------------------
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # tracked files plus new files not yet committed, minus ignored ones and
    # files deleted in the working tree
    (cd "$REPO" && git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [[ -f "$f" ]] && printf '%s\0' "$f"; done |
        tar --null -T - -cf -) | tar -C "$SRC" -xf -
else
    tar -C "$REPO" --exclude=./.git --exclude=./build --exclude='*.so' --exclude='*.o' \
        --exclude='__pycache__' --exclude='*.egg-info' -cf - . | tar -C "$SRC" -xf -
fi

# --- build the extension module with the sanitizers ------------------------
case "$SANITIZER" in
address)
    RUNTIMES=("$("$CC" -print-file-name=libasan.so)" "$("$CC" -print-file-name=libubsan.so)")
    # float-cast-overflow is not part of GCC's -fsanitize=undefined; it names
    # NaN/huge float -> int conversions (for example a NaN prediction turned
    # into a histogram bin) instead of letting them become wild indices.
    SAN_CFLAGS="-fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=undefined,float-cast-overflow -fno-omit-frame-pointer"
    SAN_LDFLAGS="-fsanitize=address,undefined"
    SAN_SYMBOL="__asan_init"
    ;;
thread)
    RUNTIMES=("$("$CC" -print-file-name=libtsan.so)")
    SAN_CFLAGS="-fsanitize=thread -fno-omit-frame-pointer -g"
    SAN_LDFLAGS="-fsanitize=thread"
    SAN_SYMBOL="__tsan_init"
    ;;
*)
    echo "sanitize: SANITIZER must be address or thread, not '$SANITIZER'" >&2
    exit 2
    ;;
esac
for lib in "${RUNTIMES[@]}"; do
    if [[ "$lib" != /* || ! -e "$lib" ]]; then
        echo "sanitize: $CC has no sanitizer runtime ($lib); install lib${SANITIZER:0:1}san" >&2
        exit 2
    fi
done

# setup.py's metadata (an SPDX license string) needs setuptools >= 77
"$PYTHON" -m pip install -q "setuptools>=77" >/dev/null
echo "sanitize: building in $SRC"
(
    cd "$SRC"
    CC="$CC" NEUREC_CFLAGS="$SAN_CFLAGS" NEUREC_LDFLAGS="$SAN_LDFLAGS" \
        "$PYTHON" setup.py -q build_ext --inplace --parallel 2 >"$WORK/build.log" 2>&1
) || { cat "$WORK/build.log" >&2; echo "sanitize: build failed" >&2; exit 1; }
build_done=$SECONDS

export LD_PRELOAD="${RUNTIMES[*]}"
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:report_signal_unsafe=0:suppressions=$SRC/csrc/tests/tsan.supp"
export PYTHONPATH="$SRC${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
export MPLBACKEND=Agg

cd "$SRC"
# make sure the sanitized module is the one imported
"$PYTHON" - "$SRC" "$SAN_SYMBOL" <<'PY'
import sys
import neurec._core as m
src, symbol = sys.argv[1], sys.argv[2].encode()
assert m.__file__.startswith(src), f"{m.__name__} imported from {m.__file__}, not {src}"
with open(m.__file__, "rb") as f:
    assert symbol in f.read(), f"{m.__file__} is not built with the sanitizer ({symbol})"
print("sanitize: importing", m.__file__)
PY

if [[ $# -gt 0 ]]; then
    args=("$@")
elif [[ "$SANITIZER" == thread ]]; then
    # the tests whose C calls run on several threads at once: the stress test
    # (fit, predict, recommend, save/load, set_num_threads together), calls on
    # one model from several threads, set_num_threads racing predict. Not the
    # fork tests (TSan cannot start threads in the child of a multi-threaded
    # process); the rest of the threaded tests pass too but take ~9 minutes.
    # Also the ranking functions on the shared pools from two threads.
    export NEUREC_STRESS_SECONDS="${NEUREC_STRESS_SECONDS:-4}"
    args=(tests/test_thread_stress.py tests/test_platform.py tests/test_evaluation_ranking.py
          -k "everything_at_once or racing or one_model_from_two or shared_pools")
else
    # Excluded:
    # - notebook: runs the notebooks in separate Jupyter kernel processes,
    #   slow to start with the runtime preloaded; the notebooks call the same C
    #   paths as the unit tests;
    # - torch: parity tests whose other side is PyTorch's native code, which is
    #   not built for ASan and slow under it;
    # - download: needs the network;
    # - tests/test_c_programs.py: builds its own ASan/UBSan binaries (with leak
    #   detection); running gcc under the preloaded runtime only slows it.
    # (The Ctrl-C tests are event-driven, not timed, so they run here too.)
    args=(tests/ -k "not notebook and not torch and not download"
          --ignore=tests/test_c_programs.py)
fi
status=0
"$PYTHON" -m pytest -q -x -p no:cacheprovider "${args[@]}" || status=$?
echo "sanitize: build $((build_done - start)) s, tests $((SECONDS - build_done)) s, total $((SECONDS - start)) s"
exit $status
