"""The shape of the source tree: file sizes, a self-contained project, one version.

These read the files beside ``tests/`` (the repository or the unpacked sdist), not the
installed package.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

import neurec

ROOT = Path(__file__).resolve().parents[1]

# One concern per file: C sources of the core (csrc/src, csrc/py, csrc/include; not the test
# programs in csrc/tests) up to C_MAX_LINES lines, modules of the package up to PY_MAX_LINES.
C_MAX_LINES = 900
PY_MAX_LINES = 700

# What a user gets (the sdist's package, C core, notebooks and documents) may not point outside
# the repository: nobody who installs neurec has the folder it was developed beside.
SHIPPED = ["neurec", "csrc", "notebooks", "docs", "README.md", "setup.py", "pyproject.toml"]
OUTSIDE = re.compile(r"\.\./shared\b|/work/shared\b")
TEXT_SUFFIXES = {".py", ".c", ".h", ".md", ".ipynb", ".toml", ".txt", ".supp", ".cfg", ".in"}


def _rel(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


def _lines(p: Path) -> int:
    return len(p.read_text(encoding="utf-8").splitlines())


def _text_files(names):
    for name in names:
        p = ROOT / name
        assert p.exists(), f"{name} is missing from the tree"
        files = [p] if p.is_file() else sorted(p.rglob("*"))
        for f in files:
            if f.is_file() and f.suffix in TEXT_SUFFIXES and "__pycache__" not in f.parts:
                yield f


def test_no_file_over_its_size_limit():
    c_sources = [
        p
        for d in ("csrc/src", "csrc/py", "csrc/include")
        for p in (ROOT / d).rglob("*")
        if p.suffix in (".c", ".h")
    ]
    py_modules = list((ROOT / "neurec").rglob("*.py"))
    assert len(c_sources) > 10 and len(py_modules) > 10  # the globs found the tree
    sizes = {_rel(p): _lines(p) for p in c_sources + py_modules}
    over = {
        f: n for f, n in sizes.items()
        if n > (C_MAX_LINES if f.startswith("csrc/") else PY_MAX_LINES)
    }
    assert not over, f"over the limit ({C_MAX_LINES} lines of C, {PY_MAX_LINES} of Python): {over}"


def test_shipped_files_point_nowhere_outside_the_repository():
    hits = []
    for f in _text_files(SHIPPED):
        for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{_rel(f)}:{i}: {line.strip()[:120]}")
    assert not hits, "references to a folder users do not have:\n" + "\n".join(hits)


def test_cited_documents_live_in_docs():
    assert (ROOT / "docs" / "PROTOCOL.md").is_file() and (ROOT / "docs" / "STYLE.md").is_file()
    # every mention of a project document names it by its path in the repository
    bare = re.compile(r"(?<![\w/(])(PROTOCOL|STYLE|DESIGN)\.md")  # "(": a link target in docs/
    sources = [*SHIPPED, "benchmarks", "tests"]
    hits = [
        f"{_rel(f)}:{i}"
        for f in _text_files(sources)
        if f.name != "test_tree.py"
        for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1)
        if bare.search(line)
    ]
    assert not hits, "cite the documents as docs/<NAME>.md: " + ", ".join(hits)
    # relative Markdown links resolve (results/ is not in the sdist: links into it only count
    # where it exists)
    link = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
    broken = []
    for md in [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        ROOT / "benchmarks" / "README.md",
    ]:
        if not md.is_file():
            continue
        for target in link.findall(md.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue
            path = (md.parent / target).resolve()
            if "results" in path.parts and not (ROOT / "benchmarks" / "results").is_dir():
                continue
            if not path.exists():
                broken.append(f"{_rel(md)} -> {target}")
    assert not broken, f"broken links: {broken}"


def test_the_version_is_defined_once():
    # neurec/_version.py is the one place (a leaf module: the build and neurec read it) ...
    assigned = [
        f"{_rel(p)}:{i}"
        for p in sorted((ROOT / "neurec").rglob("*.py"))
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if re.match(r"\s*__version__\s*[:=]", line)
    ]
    assert len(assigned) == 1 and assigned[0].startswith("neurec/_version.py:"), assigned
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]|rc)?\d*(\.dev\d+)?", neurec.__version__)
    # ... the build reads it from there (setup.py passes no version) ...
    assert not re.search(r"\bversion\s*=", (ROOT / "setup.py").read_text(encoding="utf-8"))
    if sys.version_info >= (3, 11):
        import tomllib

        with open(ROOT / "pyproject.toml", "rb") as f:
            pyproject = tomllib.load(f)
        assert "version" not in pyproject["project"]
        assert "version" in pyproject["project"]["dynamic"]
        assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {
            "attr": "neurec._version.__version__"
        }
    # ... no other shipped file spells it out ...
    spelled = [
        _rel(f)
        for f in _text_files(SHIPPED)
        if f != ROOT / "neurec" / "_version.py"
        and re.search(
            rf"(?<![\d.]){re.escape(neurec.__version__)}(?![\d.])", f.read_text(encoding="utf-8")
        )
    ]
    assert not spelled, f"the version {neurec.__version__} is written out in {spelled}"
    # ... and the installed metadata agrees (reinstall after changing it)
    from importlib import metadata

    try:
        installed = metadata.version("neurec")
    except metadata.PackageNotFoundError:
        pytest.skip("neurec is not installed (no metadata to compare)")
    assert installed == neurec.__version__
