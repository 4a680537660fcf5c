"""Execute the example notebooks and store their outputs, so they read on GitHub.

    pip install -e ".[test]"
    python notebooks/store_outputs.py                       # both notebooks
    python notebooks/store_outputs.py 02_daily_update.ipynb

Each notebook runs top to bottom in a fresh Jupyter kernel (nbclient), from a temporary
working directory, with this checkout's neurec first on the kernel's ``PYTHONPATH`` and the
settings in ``SETTINGS`` (the quickstart on the synthetic purchase log, so the stored outputs
are the same on every machine, network or not). Then the per-cell execution timestamps are
dropped, progress-bar redraws are reduced to their last state, and the file is refused if a
source or output names a local path (``/work/``, ``/home/``, ``/tmp/``, ``site-packages``,
...): tests/test_notebooks.py checks the same.
"""
import os
import re
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NOTEBOOKS = ("01_quickstart.ipynb", "02_daily_update.ipynb")
SETTINGS = {
    "01_quickstart.ipynb": {"NEUREC_MOVIELENS": "", "NEUREC_NB_EPOCHS": "10"},
    "02_daily_update.ipynb": {"NEUREC_NB_EPOCHS": "5"},
}
# absolute or relative paths that only exist on the machine that ran the notebook
LOCAL_PATH = re.compile(r"(/work/|/home/|/root/|/Users/|/tmp/|/private/|/opt/|/usr/|"
                        r"site-packages|\.\./[\w.-]|\b[A-Z]:\\[A-Za-z])")


def local_paths(nb) -> list:
    """The sources and outputs of ``nb`` (a notebook node) that name a local path."""
    hits = []
    for k, cell in enumerate(nb.cells):
        texts = [cell.source]
        for out in cell.get("outputs", []):
            texts += [out.get("text", ""), out.get("evalue", ""), *out.get("traceback", [])]
            texts += [v for m, v in out.get("data", {}).items() if m.startswith("text/")]
        texts.append(str(cell.get("metadata", {})))
        hits += [f"cell {k}: {m.group(0)!r}" for t in texts for m in LOCAL_PATH.finditer(
            t if isinstance(t, str) else "".join(t))]
    return hits + [f"notebook metadata: {m.group(0)!r}"
                   for m in LOCAL_PATH.finditer(str(nb.metadata))]


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def tidy_streams(cell) -> None:
    """Merge a cell's consecutive stream outputs and keep what a terminal would show.

    A progress bar redraws its line with ``\\r``: only the text after a line's last ``\\r``
    stays, and colour codes are dropped, so the stored text reads the same on any viewer.
    """
    merged = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream" and merged and merged[-1].output_type == "stream" \
                and merged[-1].name == out.name:
            merged[-1].text += out.text
        else:
            merged.append(out)
    for out in merged:
        if out.output_type == "stream":
            lines = ANSI.sub("", out.text).split("\n")
            out.text = "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1].rstrip()
                                 for line in lines)
    cell.outputs = merged


def store(name: str, timeout: int = 900) -> None:
    import nbclient
    import nbformat

    path = HERE / name
    nb = nbformat.read(str(path), as_version=4)
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                         if p),
           "NEUREC_NB_SMALL": "0", **SETTINGS.get(name, {})}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with tempfile.TemporaryDirectory() as work:
            nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                    record_timing=False,
                                    resources={"metadata": {"path": work}}).execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            tidy_streams(cell)
    nb.metadata["language_info"] = {"name": "python"}
    bad = local_paths(nb)
    if bad:
        raise SystemExit(f"{name}: local paths in the outputs, not stored: {bad}")
    nbformat.validate(nb)
    nbformat.write(nb, str(path))
    print(f"{name}: outputs stored ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    for name in sys.argv[1:] or NOTEBOOKS:
        store(os.path.basename(name))
