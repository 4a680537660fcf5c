"""The main job: ``python -m neurec`` run in-process through ``neurec.__main__.main``."""
import csv
import os
import re
import stat

import numpy as np
import pytest

from neurec.__main__ import main

SYNTH = ["--users", "300", "--items", "300", "--epochs", "2", "--verbose", "0", "--threads", "2"]


def _metric_lines(out):
    """``{name: (hr, ndcg)}`` from the results table."""
    rows = {}
    for line in out.splitlines():
        m = re.fullmatch(r"(\S+)\s+(\d\.\d{4})\s+(\d\.\d{4})", line.strip())
        if m:
            rows[m.group(1)] = (float(m.group(2)), float(m.group(3)))
    return rows


def _read_recs(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def _check_recs(rows, top, n_users, seen=None):
    by_user = {}
    for user, rank, item, score in rows:
        by_user.setdefault(user, []).append((int(rank), item, float(score)))
    assert len(by_user) == n_users
    for user, recs in by_user.items():
        assert [r for r, _, _ in recs] == list(range(1, len(recs) + 1))
        assert len(recs) == top
        scores = [s for _, _, s in recs]
        assert scores == sorted(scores, reverse=True)
        assert all(0.0 <= s <= 1.0 for s in scores)
        items = [i for _, i, _ in recs]
        assert len(set(items)) == len(items)
        if seen is not None:
            assert not set(items) & seen[user]
    return by_user


# ---------------------------------------------------------------- synthetic data
def test_synthetic_run_prints_metrics_and_writes_csv(tmp_path, capsys):
    out_csv = tmp_path / "recs.csv"
    umask = os.umask(0o022)
    try:
        assert main(SYNTH + ["--output", str(out_csv), "--top", "4", "--show", "2"]) == 0
    finally:
        os.umask(umask)
    out = capsys.readouterr().out
    assert "synthetic purchases" in out
    assert "300 users, 300 items" in out
    assert re.search(r"HR@10\s+NDCG@10", out)
    rows = _metric_lines(out)
    assert set(rows) == {"neumf", "popularity"}
    for hr, ndcg in rows.values():
        assert 0.0 < ndcg <= hr <= 1.0
    assert "top 4 products (not yet bought) for 2 customers:" in out
    shown = re.findall(r"^\s+customer (\S+):$", out, flags=re.M)
    assert len(shown) == 2
    lines = re.findall(r"^\s+(\d)\. (\S+)\s+score (\d\.\d{3})\s+category\s+\d+\s+price\s+[\d.]+$",
                       out, flags=re.M)
    assert [int(r) for r, _, _ in lines] == [1, 2, 3, 4] * 2
    assert "wrote recommendations for 300 users" in out
    header, recs = _read_recs(out_csv)
    assert header == ["user_id", "rank", "item_id", "score"]
    assert len(recs) == 300 * 4
    by_user = _check_recs(recs, 4, 300)
    # the products printed for a customer are the CSV's rows for that customer
    for j, cust in enumerate(shown):
        printed = [item for _, item, _ in lines[4 * j:4 * j + 4]]
        assert printed == [item for _, item, _ in by_user[cust]]
    assert [p.name for p in tmp_path.iterdir()] == ["recs.csv"]  # no temporary file left
    if os.name == "posix":  # made as open() makes a file (through mkstemp it was 0o600)
        assert stat.S_IMODE(out_csv.stat().st_mode) == 0o644


def test_verbose_zero_prints_no_progress(capsys):
    main(SYNTH + ["--model", "mf", "--show", "1", "--top", "2"])
    out = capsys.readouterr().out
    assert "Epoch" not in out and "ETA" not in out
    assert set(_metric_lines(out)) == {"mf", "popularity"}


def test_seeded_runs_repeat(tmp_path, capsys):
    outs = []
    for r in range(2):
        path = tmp_path / f"r{r}.csv"
        main(SYNTH + ["--model", "gmf", "--threads", "1", "--output", str(path)])
        outs.append((_metric_lines(capsys.readouterr().out), path.read_text()))
    assert outs[0] == outs[1]


def test_small_catalog_runs(tmp_path, capsys):
    assert main(["--users", "300", "--items", "120", "--epochs", "2", "--verbose", "0",
                 "--output", str(tmp_path / "recs.csv")]) == 0
    assert "HR@10" in capsys.readouterr().out


# ---------------------------------------------------------------- --data CSV
def _write_log(path, n_users=80, n_items=170, groups=4, seed=0, header="user_id,item_id,timestamp",
               time_col=True):
    """A planted purchase log with string ids.

    Returns ``{user: items seen before the last}`` and the number of distinct items.
    """
    rng = np.random.default_rng(seed)
    ug = rng.integers(0, groups, n_users)
    ig = np.arange(n_items) % groups
    lines = [header]
    seen = {}
    t = 1_600_000_000
    for u in range(n_users):
        n = int(rng.integers(4, 12))
        items = rng.choice(np.flatnonzero(ig == ug[u]), n, replace=False)
        ts = t + rng.permutation(n) * 60
        name = f"cust-{u:03d}"
        last = items[np.argmax(ts)]
        seen[name] = {f"sku-{i}" for i in items if i != last}
        for i, s in zip(items, ts):
            lines.append(f"{name},sku-{i},{s}" if time_col else f"{name},sku-{i}")
    path.write_text("\n".join(lines) + "\n")
    n_distinct = len({line.split(",")[1] for line in lines[1:]})
    return seen, n_distinct


@pytest.mark.parametrize("model", ["neumf", "gmf", "mlp", "mf"])
def test_data_csv_each_model(model, tmp_path, capsys):
    data = tmp_path / "events.csv"
    seen, n_items = _write_log(data)
    out_csv = tmp_path / "recs.csv"
    args = ["--data", str(data), "--model", model, "--epochs", "2", "--verbose", "0",
            "--top", "3", "--output", str(out_csv), "--layers", "16,8"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"data: {data}" in out
    assert f"80 users, {n_items} items" in out
    rows = _metric_lines(out)
    assert set(rows) == {model, "popularity"}
    assert re.search(r"customer cust-\d{3}:", out)
    assert re.search(r"\d\. sku-\d+\s+score \d\.\d{3}$", out, flags=re.M)
    assert "category" not in out                      # no product metadata for user data
    header, recs = _read_recs(out_csv)
    assert header == ["user_id", "rank", "item_id", "score"]
    _check_recs(recs, 3, 80, seen=seen)
    assert all(r[2].startswith("sku-") for r in recs)


def test_data_csv_without_timestamps_and_other_columns(tmp_path, capsys):
    data = tmp_path / "events.tsv"
    _write_log(data, header="customer\tproduct", time_col=False)
    data.write_text(data.read_text().replace(",", "\t"))
    assert main(["--data", str(data), "--sep", "\t", "--user-col", "customer", "--item-col",
                 "product", "--time-col", "", "--model", "gmf", "--epochs", "1",
                 "--verbose", "0"]) == 0
    assert set(_metric_lines(capsys.readouterr().out)) == {"gmf", "popularity"}


def test_csv_without_a_time_column_notes_a_random_holdout(tmp_path, capsys):
    """The default --time-col is 'timestamp' when the header has it; a log without one
    works, with a note that the held-out purchase is drawn at random."""
    data = tmp_path / "events.csv"
    _write_log(data, header="user_id,item_id", time_col=False)
    assert main(["--data", str(data), "--model", "gmf", "--epochs", "1", "--verbose", "0"]) == 0
    out = capsys.readouterr().out
    assert "note: " in out and "random holdout" in out
    assert set(_metric_lines(out)) == {"gmf", "popularity"}


def test_data_csv_learns_planted_structure(tmp_path, capsys):
    data = tmp_path / "events.csv"
    _write_log(data, n_users=300, n_items=200, seed=3)
    main(["--data", str(data), "--model", "gmf", "--epochs", "15", "--lr", "0.01",
          "--verbose", "0", "--threads", "2"])
    rows = _metric_lines(capsys.readouterr().out)
    assert rows["gmf"][0] > rows["popularity"][0] + 0.3


@pytest.mark.parametrize("bad,line,what", [
    ("cust-001,sku-3", 5, "expected 3 fields"),
    ("cust-001,sku-3,1600000000,extra", 5, "expected 3 fields"),
    ("cust-001,sku-3,yesterday", 5, "timestamp"),
    ("cust-001,,1600000000", 5, "expected an id"),
])
def test_malformed_row_names_its_line(tmp_path, capsys, bad, line, what):
    data = tmp_path / "events.csv"
    good = [f"cust-{u:03d},sku-{i},{1600000000 + 60 * i}" for u in range(3) for i in range(1, 40)]
    rows = ["user_id,item_id,timestamp"] + good[:3] + [bad] + good[3:]
    data.write_text("\n".join(rows) + "\n")
    assert main(["--data", str(data), "--epochs", "1", "--verbose", "0"]) == 2
    _one_line_error(capsys, rf"line {line}\b.*{what}")


def _one_line_error(capsys, pattern):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("neurec: error: "), err
    assert re.search(pattern, lines[0]), err
    assert "Traceback" not in err


def test_missing_column_and_file_are_one_line_errors(tmp_path, capsys):
    data = tmp_path / "events.csv"
    _write_log(data)
    assert main(["--data", str(data), "--item-col", "sku", "--verbose", "0"]) == 2
    _one_line_error(capsys, "sku")
    assert main(["--data", str(tmp_path / "nope.csv"), "--verbose", "0"]) == 2
    _one_line_error(capsys, "nope.csv")


def test_bad_option_exits_2_with_one_line(capsys):
    assert main(["--model", "transformer"]) == 2
    _one_line_error(capsys, "invalid choice")
    assert main(["--save-model", "m.pkl"]) == 2
    _one_line_error(capsys, r"--save-model must end in \.neurec")


# ---------------------------------------------------------------- regressions
def test_output_never_recommends_a_bought_item_not_even_the_held_out_one(tmp_path, capsys):
    """Regression: ``--output`` excluded only the training split's items, so each customer's
    latest purchase (held out for the evaluation) could be recommended back to them."""
    data = tmp_path / "events.csv"
    _write_log(data, n_users=120, n_items=60, groups=2, seed=5)
    bought = {}
    for line in data.read_text().splitlines()[1:]:
        user, item, _ = line.split(",")
        bought.setdefault(user, set()).add(item)
    out_csv = tmp_path / "recs.csv"
    saved = tmp_path / "shop.neurec"
    assert main(["--data", str(data), "--model", "gmf", "--epochs", "3", "--lr", "0.01",
                 "--verbose", "0", "--top", "10", "--show", "120", "--output", str(out_csv),
                 "--save-model", str(saved)]) == 0
    out = capsys.readouterr().out
    # the saved model's seen-matrix holds every pair, the held-out ones too
    from neurec.models import load_model
    model = load_model(saved)
    seen = model.seen_matrix
    for u, items in bought.items():
        c = int(model.user_encoder.transform([u])[0])
        row = seen.indices[seen.indptr[c]:seen.indptr[c + 1]]
        assert set(model.item_encoder.inverse_transform(row)) == items, u
    _, recs = _read_recs(out_csv)
    assert {r[0] for r in recs} == set(bought)
    repeats = [(u, i) for u, _, i, _ in recs if i in bought[u]]
    assert not repeats, f"{len(repeats)} recommendations of bought items, e.g. {repeats[:3]}"
    # the products printed per customer obey the same rule
    for cust, block in re.findall(r"^  customer (\S+):\n((?:    .*\n?)*)", out, flags=re.M):
        shown = re.findall(r"^\s+\d+\. (\S+)", block, flags=re.M)
        assert shown and not set(shown) & bought[cust], (cust, shown)
