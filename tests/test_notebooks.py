"""The example notebooks: stored outputs that read on GitHub, and a fresh run that works.

The notebooks are committed *with* their outputs (``python notebooks/store_outputs.py``
executes them and stores the result), so they read on GitHub without running anything. The
stored files are checked for completeness (every code cell ran, in order, without errors;
every cell that prints in a fresh run has stored output) and for local paths (no ``/work/``,
``/home/``, ``../`` folders outside the project, ``site-packages``... in any source,
output or metadata).

Each notebook is also executed in a fresh Jupyter kernel (nbclient) on tiny data
(``NEUREC_NB_SMALL=1``, two epochs), from a temporary working directory, with
``NEUREC_MOVIELENS`` unset; the quickstart also finds a MovieLens copy in neurec's cache
(``$NEUREC_HOME``) by itself, and falls back to the synthetic purchase log when MovieLens
cannot be downloaded (a proxy that refuses every connection stands for "offline"). Skipped
when nbformat, nbclient, ipykernel or matplotlib are missing (``pip install -e ".[test]"``
installs them).
"""
import ast
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import neurec
from test_keras_examples import readme_example

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "notebooks" / "01_quickstart.ipynb"
DAILY = ROOT / "notebooks" / "02_daily_update.ipynb"
NOTEBOOKS = [QUICKSTART.name, DAILY.name]
MODELS = ("GMF", "MLP", "NeuMF", "Popularity", "README example")
# paths that exist only on the machine that ran a notebook
LOCAL_PATH = re.compile(r"/work/|/home/|/root\b|/Users/|/tmp/|/var/folders|/private/|/opt/|/usr/|"
                        r"site-packages|\.\./[\w.-]|\b[A-Z]:\\[A-Za-z]")
# a proxy nobody listens on: any download attempt fails at once, as offline
NO_NETWORK = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
              "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}


def _read(path):
    return json.loads(path.read_text(encoding="utf-8"))


def _code_cells(nb):
    cells = nb["cells"] if isinstance(nb, dict) else nb.cells
    return [c for c in cells if c["cell_type"] == "code"]


def _source(cell):
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def _texts(value):
    """Every string inside a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _texts(v)
    elif isinstance(value, list):
        for v in value:
            yield from _texts(v)


def _outputs(nb):
    """All text a run printed or displayed, and the MIME types of rich outputs."""
    texts, mimes = [], set()
    for cell in _code_cells(nb):
        for out in cell.get("outputs", []):
            if out["output_type"] == "stream":
                texts.append(_source({"source": out["text"]}))
            elif out["output_type"] in ("execute_result", "display_data"):
                mimes.update(out.get("data", {}))
                texts.append(_source({"source": out.get("data", {}).get("text/plain", "")}))
    return "".join(texts), mimes


def _table_rows(text):
    """``{model: [HR@10, NDCG@10, MRR, AUC]}`` parsed from the printed HR@10 table."""
    lines = text[text.index("HR@10 table"):].splitlines()
    header = next(i for i, ln in enumerate(lines) if ln.split()[:3] == ["model", "HR@10", "NDCG@10"])
    rows = {}
    for line in lines[header + 1:]:
        m = re.match(r"(.+?)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s", line + " ")
        if not m:
            break
        rows[m.group(1).strip()] = [float(g) for g in m.groups()[1:]]
    return rows


# ---------------------------------------------------------------- the stored files
@pytest.mark.parametrize("name,expected", [
    ("01_quickstart.ipynb", ['EPOCHS = int(os.environ.get("NEUREC_NB_EPOCHS", 10))',
                             "NEUREC_NB_SMALL", "NEUREC_MOVIELENS"]),
    ("02_daily_update.ipynb", ["NEUREC_NB_EPOCHS", "NEUREC_NB_SMALL"])])
def test_notebook_has_parameters_cell(name, expected):
    nb = _read(ROOT / "notebooks" / name)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    params = _source(_code_cells(nb)[0])
    assert all(e in params for e in expected), params
    assert "parameters" in _code_cells(nb)[0].get("metadata", {}).get("tags", [])


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_stored_executed_in_order_without_errors(name):
    cells = _code_cells(_read(ROOT / "notebooks" / name))
    counts = [c.get("execution_count") for c in cells]
    assert counts == list(range(1, len(cells) + 1)), \
        f"store outputs from one top-to-bottom run (python notebooks/store_outputs.py): {counts}"
    printing = [k for k, c in enumerate(cells) if c.get("outputs")]
    assert len(printing) >= len(cells) - 1, f"cells without stored output: {printing}"
    for k, cell in enumerate(cells):
        assert not [o for o in cell.get("outputs", []) if o["output_type"] == "error"], k
        assert "execution" not in cell.get("metadata", {}), "drop nbclient's timestamps"
        for out in cell.get("outputs", []):
            text = "".join(_texts(out.get("text", "")))
            assert "\r" not in text and "\x1b[" not in text, \
                f"cell {k}: progress-bar redraws or colour codes stored"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_names_no_local_path(name):
    nb = _read(ROOT / "notebooks" / name)
    hits = sorted({m.group(0) for t in _texts(nb) if not t.startswith("iVBOR")   # PNG data
                   for m in LOCAL_PATH.finditer(t)})
    assert not hits, f"{name} names local paths: {hits}"


def test_local_path_check_catches_paths():
    for text in ("/work/wt6/x", "../data/ml-100k", "/home/me/data", "/tmp/tmpab12/x.neurec",
                 "/usr/lib/python3/site-packages/neurec", "C:\\Users\\me"):
        assert LOCAL_PATH.search(text), text
    for text in ("~/.cache/neurec", "$NEUREC_HOME", "hr@10", "neumf.neurec", "a/b"):
        assert not LOCAL_PATH.search(text), text


def test_stored_quickstart_shows_the_comparison():
    text, mimes = _outputs(_read(QUICKSTART))
    rows = _table_rows(text)
    assert set(MODELS) <= set(rows), rows
    assert all(0 < v <= 1 for values in rows.values() for v in values), rows
    assert rows["NeuMF"][0] > rows["Popularity"][0]                # stored at full size
    assert "image/png" in mimes and "Total params" in text
    assert "identical scores and recommendations: True" in text
    assert "Epoch 10/10" in text


def test_quickstart_contains_readme_example_verbatim():
    data, model = readme_example()
    assert "from neurec.layers import" in model and "keras.layers" in model
    cells = _code_cells(_read(QUICKSTART))
    sources = [_source(c).strip() for c in cells]
    assert model in sources, "the notebook's README example drifted from README.md"
    # the notebook feeds it its own data: the README's data lines are not run there
    at = sources.index(model)
    assert all(line not in sources[at - 1] for line in data.splitlines() if line.strip())
    assert re.search(r"^users, items, labels = ", sources[at - 1], re.M)


def test_test_extra_installs_what_the_notebooks_import():
    """``pip install -e ".[test]"`` is enough to run the notebooks (and this file)."""
    if sys.version_info < (3, 11):
        pytest.skip("tomllib and sys.stdlib_module_names: Python >= 3.11")
    import tomllib

    pyproject = ROOT / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("pyproject.toml is not next to the tests (installed package)")
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    installed = {re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower()
                 for req in project["dependencies"] + project["optional-dependencies"]["test"]}
    needed = {"nbformat", "nbclient", "ipykernel"}          # the kernel this file runs them in
    for path in (QUICKSTART, DAILY):
        for cell in _code_cells(_read(path)):
            for node in ast.walk(ast.parse(_source(cell))):
                if isinstance(node, ast.Import):
                    needed.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    needed.add(node.module.split(".")[0])
    needed -= set(sys.stdlib_module_names) | {"neurec"}
    assert "matplotlib" in needed and "numpy" in needed       # the parser sees the imports
    missing = sorted(needed - installed)
    assert not missing, f"the notebooks import {missing}: add them to the `test` extra"


# ---------------------------------------------------------------- fresh runs
def _execute(path: Path, tmp_path, monkeypatch, timeout: int, env=None, cells=None):
    """Run the notebook at ``path`` (its first ``cells`` cells) in a fresh kernel in ``tmp_path``."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # The kernel is a fresh process: make it import this checkout's neurec.
    pkg_root = str(Path(neurec.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (pkg_root, os.environ.get("PYTHONPATH", "")) if p))
    monkeypatch.delenv("NEUREC_MOVIELENS", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.setenv("NEUREC_HOME", str(tmp_path / "neurec_home"))   # an empty cache
    for key, value in {"NEUREC_NB_SMALL": "1", "NEUREC_NB_EPOCHS": "2", **NO_NETWORK,
                       **(env or {})}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    nb = nbformat.read(str(path), as_version=4)
    if cells is not None:
        nb.cells = nb.cells[:cells]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"a notebook cell raised:\n{exc}")
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, [f"{e.ename}: {e.evalue}" for e in errors]
    return nb


def _check_stored_cells_print_where_a_run_prints(path, nb):
    stored = _code_cells(_read(path))
    fresh = _code_cells(nb)
    assert [_source(c) for c in stored] == [_source(c) for c in fresh]
    missing = [k for k, (s, f) in enumerate(zip(stored, fresh)) if f.outputs and not s.get("outputs")]
    assert not missing, f"{path.name}: code cells {missing} print in a run but have no stored output"


def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    nb = _execute(QUICKSTART, tmp_path, monkeypatch, timeout=300)
    _check_stored_cells_print_where_a_run_prints(QUICKSTART, nb)
    text, mimes = _outputs(nb)

    assert "Data set used: synthetic purchases" in text
    assert "MovieLens not used: NEUREC_NB_SMALL=1" in text
    assert "Model: " in text and "Total params" in text          # model.summary()
    rows = _table_rows(text)
    assert set(MODELS) <= set(rows), rows
    for name, values in rows.items():
        assert all(0.0 <= v <= 1.0 for v in values), (name, values)
        assert values[1] <= values[0], (name, values)             # NDCG@10 <= HR@10
    assert "last epoch of 2" in text
    assert re.search(r"NeuMF hr@10 per epoch: \[[0-9.]+, [0-9.]+\]", text)
    assert "image/png" in mimes                                   # the HR@10 plot
    assert re.search(r"user C\d{6} \(held-out item: P\d{5}", text)  # raw ids in and out
    assert "identical scores and recommendations: True" in text
    assert not list(tmp_path.glob("*.neurec"))                    # saved to a temp dir, not cwd
    assert not LOCAL_PATH.search(text.replace(str(tmp_path), "")), "a run printed a local path"


def _fake_movielens(folder: Path, n_users=60, n_items=80, per_user=15, seed=0):
    """A tiny ml-100k look-alike: ``u.data`` (tab-separated) and ``u.item`` (titles)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    rows = [f"{u}\t{i}\t{rng.integers(1, 6)}\t{880000000 + 1000 * u + t}"
            for u in range(1, n_users + 1)
            for t, i in enumerate(rng.choice(np.arange(1, n_items + 1), per_user, replace=False))]
    (folder / "u.data").write_text("\n".join(rows) + "\n", encoding="latin-1")
    (folder / "u.item").write_text("".join(f"{i}|Film number {i} (1995)|01-Jan-1995||x|0\n"
                                           for i in range(1, n_items + 1)), encoding="latin-1")


def test_quickstart_finds_movielens_in_neurecs_cache(tmp_path, monkeypatch):
    """With NEUREC_MOVIELENS unset, the default 'ml-100k' is read from $NEUREC_HOME's cache."""
    pytest.importorskip("matplotlib")
    home = tmp_path / "cache"
    _fake_movielens(home / "movielens" / "ml-100k" / "ml-100k")   # as load_movielens extracts
    nb = _execute(QUICKSTART, tmp_path, monkeypatch, timeout=300,
                  env={"NEUREC_NB_SMALL": "0", "NEUREC_HOME": str(home)})
    text, _ = _outputs(nb)
    assert "Data set used: MovieLens (ml-100k, real ratings)" in text, text[:2000]
    assert "MovieLens not used" not in text
    assert "60 users x 80 items" in text
    assert set(MODELS) <= set(_table_rows(text))
    assert re.search(r"user \d+ \(held-out item: \d+ Film number \d+ \(1995\)\):", text)
    assert not list(home.glob("movielens/*.zip"))                  # nothing was downloaded


def test_quickstart_falls_back_to_synthetic_data_offline(tmp_path, monkeypatch):
    """MovieLens neither cached nor downloadable: the data cell says so and uses the shop."""
    data_cell = next(k for k, c in enumerate(_read(QUICKSTART)["cells"])
                     if _source(c).startswith("DATA = None"))
    nb = _execute(QUICKSTART, tmp_path, monkeypatch, timeout=120, cells=data_cell + 1,
                  env={"NEUREC_NB_SMALL": "0"})
    text, _ = _outputs(nb)
    assert re.search(r"MovieLens not used: 'ml-100k' could not be loaded \(Could not download "
                     r"https://\S+ml-100k\.zip", text), text
    assert "Data set used: synthetic purchases (neurec.datasets.make_purchases, 5000 customers)" \
        in text
    assert not LOCAL_PATH.search(text), text                     # the cache path is not printed


def test_daily_update_notebook_executes(tmp_path, monkeypatch):
    """The daily-update story runs on the small purchase log in a fresh kernel (< 20 s)."""
    nb = _execute(DAILY, tmp_path, monkeypatch, timeout=120)
    _check_stored_cells_print_where_a_run_prints(DAILY, nb)
    text, _ = _outputs(nb)
    m = re.search(r"(\d+) new customers, (\d+) new products", text)
    assert m and int(m.group(1)) > 0, text[:2000]
    assert "encoders/user.npy" in text and "seen/indices.npy" in text
    assert re.search(r"customer C\d{6}: \['P\d{5}'", text)              # raw ids in and out
    g = re.search(r"tables grown: ([\d,]+) -> ([\d,]+) customers", text)
    assert g and int(g.group(2).replace(",", "")) - int(g.group(1).replace(",", "")) == \
        int(m.group(1))
    assert "no product a customer bought is recommended: True" in text
    rows = dict(re.findall(r"^(update|retrain)\s+([0-9.]+)\s+[0-9.]+\s+[0-9.]+$", text, re.M))
    assert set(rows) == {"update", "retrain"} and all(0 <= float(v) <= 1 for v in rows.values())
    assert not list(tmp_path.glob("*.neurec"))                       # saved to a temp dir
