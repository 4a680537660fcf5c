"""The example notebooks run top to bottom and show what they promise.

``notebooks/01_quickstart.ipynb`` is executed in a fresh Jupyter kernel
(nbclient) on tiny synthetic data (``NEUREC_NB_SMALL=1``, two epochs), from a
temporary working directory, with ``NEUREC_MOVIELENS`` unset. Skipped when
nbformat, nbclient, ipykernel or matplotlib are missing (``pip install -e
".[test]"`` installs them).
"""
import json
import os
import re
from pathlib import Path

import pytest

import neurec

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "notebooks" / "01_quickstart.ipynb"
MODELS = ("GMF", "MLP", "NeuMF", "Popularity", "README example")


def _code_sources(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [c for c in nb["cells"] if c["cell_type"] == "code"], nb


def _source(cell):
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def _readme_example():
    """The first ```python block of README.md (the NCF example)."""
    readme = ROOT / "README.md"
    if not readme.is_file():
        pytest.skip("README.md is not next to the tests (installed package)")
    m = re.search(r"```python\n(.*?)```", readme.read_text(encoding="utf-8"), re.S)
    assert m, "README.md has no ```python block"
    return m.group(1).strip()


@pytest.mark.parametrize("name,expected", [
    ("01_quickstart.ipynb", ['EPOCHS = int(os.environ.get("NEUREC_NB_EPOCHS", 10))',
                             "NEUREC_NB_SMALL", "NEUREC_MOVIELENS"]),
    ("02_daily_update.ipynb", ["NEUREC_NB_EPOCHS", "NEUREC_NB_SMALL"])])
def test_notebook_is_committed_without_outputs_and_has_parameters(name, expected):
    cells, nb = _code_sources(ROOT / "notebooks" / name)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    for cell in cells:
        assert cell.get("outputs", []) == [] and cell.get("execution_count") is None, \
            "commit notebooks without outputs (clear them before committing)"
    params = _source(cells[0])
    assert all(e in params for e in expected), params
    assert "parameters" in cells[0].get("metadata", {}).get("tags", [])


def test_quickstart_contains_readme_example_verbatim():
    example = _readme_example()
    assert "from neurec.layers import" in example and "keras.layers" in example
    sources = [_source(c).strip() for c in _code_sources(QUICKSTART)[0]]
    assert example in sources, "the notebook's NCF example drifted from README.md"


def _outputs(nb):
    """All text a run printed or displayed, and the MIME types of rich outputs."""
    texts, mimes = [], set()
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                texts.append(out.text)
            elif out.output_type in ("execute_result", "display_data"):
                mimes.update(out.get("data", {}))
                texts.append(out.get("data", {}).get("text/plain", ""))
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


def _execute(path: Path, tmp_path, monkeypatch, timeout: int):
    """Run the notebook at ``path`` in a fresh kernel, small and fast, in ``tmp_path``."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # The kernel is a fresh process: make it import this checkout's neurec.
    pkg_root = str(Path(neurec.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (pkg_root, os.environ.get("PYTHONPATH", "")) if p))
    monkeypatch.setenv("NEUREC_NB_SMALL", "1")
    monkeypatch.setenv("NEUREC_NB_EPOCHS", "2")
    monkeypatch.delenv("NEUREC_MOVIELENS", raising=False)
    monkeypatch.chdir(tmp_path)
    nb = nbformat.read(str(path), as_version=4)
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"a notebook cell raised:\n{exc}")
    return nb


def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    nb = _execute(QUICKSTART, tmp_path, monkeypatch, timeout=300)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, [f"{e.ename}: {e.evalue}" for e in errors]
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


DAILY = ROOT / "notebooks" / "02_daily_update.ipynb"


def test_daily_update_notebook_executes(tmp_path, monkeypatch):
    """The daily-update story runs on the small purchase log in a fresh kernel (< 20 s)."""
    nb = _execute(DAILY, tmp_path, monkeypatch, timeout=120)
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
