"""``neurec train`` and ``neurec evaluate`` end to end on a generated purchase log, and what
every subcommand shares: one-line errors with exit status 2, ``--help`` with defaults,
``--threads``.

The log is ``neurec.datasets.make_purchases`` written to a CSV (``EcommerceData.to_csv``),
so the held-out item of each customer is their last purchase.
"""
import contextlib
import io
import os
import re
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import neurec
from neurec.cli import main
from neurec.data import InteractionLog, leave_one_out
from neurec.datasets import make_purchases
from neurec.evaluation import evaluate_full
from neurec.models import load_model

ROW = re.compile(r"^\s+(full-ranking|sampled-\d+)\s+(\S+)\s+(\d\.\d{4})\s+(\d\.\d{4})"
                 r"\s+(\d\.\d{4})\s+(\d\.\d{4})$", re.M)
FAST = ["--epochs", "2", "--verbose", "0", "--threads", "2"]


def cli(*args):
    """``neurec ARGS`` in this process: ``(status, stdout, stderr)``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in args])
    return rc, out.getvalue(), err.getvalue()


def neurec_process(*args, cwd):
    """``python -m neurec ARGS`` in a fresh process, this checkout's neurec first."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(neurec.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
    return subprocess.run([sys.executable, "-m", "neurec", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def metric_rows(out):
    """``{(protocol, model): (hr, ndcg, mrr, auc)}`` of the evaluation table."""
    return {(m.group(1), m.group(2)): tuple(float(m.group(k)) for k in range(3, 7))
            for m in ROW.finditer(out)}


def assert_one_line_error(rc, out, err, prog, match):
    assert rc == 2, (out, err)
    assert err.count("\n") == 1 and err.startswith(f"{prog}: error: "), err
    assert "Traceback" not in err
    assert match in err, err


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shop")
    d = make_purchases(n_users=300, n_items=600, n_categories=8, seed=3)
    path = folder / "log.csv"
    d.to_csv(path)
    return SimpleNamespace(folder=folder, log=path, data=d)


@pytest.fixture(scope="module")
def evaluated(shop):
    """A NeuMF trained with --no-refit: the saved model is the one that was evaluated."""
    path = shop.folder / "evaluated.neurec"
    rc, out, err = cli("train", "--data", shop.log, "--save", path, "--no-refit", *FAST)
    assert rc == 0, err
    return SimpleNamespace(path=path, out=out)


# ---------------------------------------------------------------- train
def test_train_reports_each_protocol_and_saves_a_served_model(shop, evaluated):
    out = evaluated.out
    d = shop.data
    assert "split: 300 held-out purchases (each customer's latest)" in out
    rows = metric_rows(out)
    assert set(rows) == {(p, m) for p in ("full-ranking", "sampled-99")
                         for m in ("neumf", "popularity")}
    for hr, ndcg, mrr, auc in rows.values():
        assert 0 < ndcg <= hr <= 1 and 0 < mrr <= 1 and 0 < auc < 1
    for m in ("neumf", "popularity"):
        # the 99 sampled items are a subset of the full ranking's candidates
        assert rows["sampled-99", m][0] >= rows["full-ranking", m][0]
    assert "full-ranking: each held-out item ranked among all" in out
    assert "sampled-99: each held-out item ranked among 99 random items" in out
    assert "left out" not in out and "too small" not in out  # every customer is in both
    assert "refitting" not in out
    model = load_model(evaluated.path)
    assert set(model.user_encoder.classes_) == set(d.users)
    assert set(model.item_encoder.classes_) == set(d.items)
    pairs = set(zip(d.users.tolist(), d.items.tolist()))
    assert model.seen_matrix.nnz == len(pairs)
    last = {u: i for u, i in zip(d.users, d.items)}  # the log is sorted by time
    u = model.user_encoder.transform(list(last))
    i = model.item_encoder.transform(list(last.values()))
    assert model.seen_matrix.contains(u, i).all()  # the held-out purchases too
    # the printed full-ranking row is evaluate_full of the saved (evaluated) model
    log, _, _ = InteractionLog.from_arrays(d.users, d.items, timestamps=d.timestamps) \
        .to_implicit(dedupe="latest").encode(model.user_encoder, model.item_encoder)
    train, test = leave_one_out(log)
    res = evaluate_full(model, test.users, test.items,
                        train.to_matrix(shape=model.seen_matrix.shape, dedupe="max"), k=10)
    assert rows["full-ranking", "neumf"] == pytest.approx(
        (res["hr@10"], res["ndcg@10"], res["mrr"], res["auc"]), abs=5e-5)


def test_refit_is_a_fresh_model_trained_on_all_the_data(shop, tmp_path):
    args = ["--model", "mf", "--epochs", "2", "--verbose", "0", "--threads", "1"]
    runs = {}
    for name, extra in (("refit", []), ("no-refit", ["--no-refit"]),
                        ("all", ["--protocol", "none"])):
        rc, out, err = cli("train", "--data", shop.log, "--save", tmp_path / f"{name}.neurec",
                           *args, *extra)
        assert rc == 0, err
        runs[name] = (out, load_model(tmp_path / f"{name}.neurec"))
    assert "refitting on all" in runs["refit"][0] and "refitting" not in runs["all"][0]
    assert metric_rows(runs["refit"][0]) == metric_rows(runs["no-refit"][0])
    assert metric_rows(runs["all"][0]) == {}
    w = {name: m.get_weights() for name, (_, m) in runs.items()}
    assert all(np.array_equal(a, b) for a, b in zip(w["refit"], w["all"]))
    assert not all(np.array_equal(a, b) for a, b in zip(w["refit"], w["no-refit"]))


def test_csv_without_a_time_column_holds_out_at_random_with_a_note(shop, tmp_path):
    d = shop.data
    plain = tmp_path / "plain.csv"
    plain.write_text("user_id,item_id\n" + "".join(f"{u},{i}\n" for u, i in zip(d.users, d.items)))
    rc, out, err = cli("train", "--data", plain, "--save", tmp_path / "p.neurec", "--model",
                       "gmf", *FAST)
    assert rc == 0, err
    assert re.search(r"^note: .*has no 'timestamp' column.*drawn at random \(random holdout\)",
                     out, re.M)
    assert "300 held-out purchases (one random purchase per customer)" in out
    assert ("full-ranking", "gmf") in metric_rows(out)
    # --time-col '' on a log that has one: the same, said so
    rc, out, err = cli("train", "--data", shop.log, "--time-col", "", "--save",
                       tmp_path / "q.neurec", "--model", "gmf", *FAST)
    assert rc == 0 and "note: --time-col '': no timestamps" in out
    rc, out, err = cli("train", "--data", plain, "--time-col", "when", "--save",
                       tmp_path / "r.neurec", *FAST)
    assert_one_line_error(rc, out, err, "neurec train", "--time-col 'when' is not a column")


# ---------------------------------------------------------------- evaluate
@pytest.fixture(scope="module")
def split_files(shop):
    """train.csv without each customer's last purchase, test.csv with it (plus a new
    customer and a new product), and a model trained on train.csv."""
    d = shop.data
    last = {}
    for k, u in enumerate(d.users.tolist()):
        last[u] = k
    held = np.zeros(len(d.users), bool)
    held[list(last.values())] = True
    lines = shop.log.read_text().splitlines()
    train, test = shop.folder / "train.csv", shop.folder / "test.csv"
    train.write_text("\n".join([lines[0]] + [x for x, h in zip(lines[1:], held) if not h]) + "\n")
    extra = ["C999999,P00001,1700000000,1,0,1.00", f"{d.users[0]},P99999,1700000000,1,0,1.00"]
    test.write_text("\n".join([lines[0]] + [x for x, h in zip(lines[1:], held) if h] + extra)
                    + "\n")
    model = shop.folder / "train.neurec"
    rc, _, err = cli("train", "--data", train, "--save", model, "--protocol", "none", "--model",
                     "gmf", *FAST)
    assert rc == 0, err
    return SimpleNamespace(train=train, test=test, model=model, held=held)


def test_evaluate_labels_protocols_and_skips_unknown_ids(shop, split_files):
    rc, out, err = cli("evaluate", "--model", split_files.model, "--data", split_files.test,
                       "--threads", "2")
    assert rc == 0, err
    model = load_model(split_files.model)
    d = shop.data
    held_users, held_items = d.users[split_files.held], d.items[split_files.held]
    new_items = set(held_items) - set(d.items[~split_files.held])  # first bought last
    ok = ~np.isin(held_items, list(new_items))
    assert f"note: {(~ok).sum() + 2} pairs skipped: 1 customers and {len(new_items) + 1} " \
        "products of --data are unknown" in out
    assert f"metrics at k=10 on {ok.sum()} held-out pairs of {ok.sum()} customers" in out
    rows = metric_rows(out)
    assert set(rows) == {(p, m) for p in ("full-ranking", "sampled-99")
                         for m in ("gmf", "popularity")}
    users = model.user_encoder.transform(held_users[ok])
    items = model.item_encoder.transform(held_items[ok])
    res = evaluate_full(model, None, (users, items), model.seen_matrix, k=10)
    assert rows["full-ranking", "gmf"] == pytest.approx(
        (res["hr@10"], res["ndcg@10"], res["mrr"], res["auc"]), abs=5e-5)
    # repeat purchases in the test file are in the seen-matrix: said so
    repeats = int(model.seen_matrix.contains(users, items).sum())
    assert repeats > 0 and f"note: {repeats:,} of the {ok.sum()} pairs are already in" in out
    rc, out, _ = cli("evaluate", "--model", split_files.model, "--data", split_files.test,
                     "--protocol", "sampled", "--eval-negatives", "20", "--k", "5")
    assert rc == 0 and {p for p, _ in metric_rows(out)} == {"sampled-20"}
    assert "HR@5" in out


def test_sampled_protocol_leaves_out_customers_with_too_few_unbought_items(split_files):
    model = load_model(split_files.model)
    bought = model.seen_matrix.user_counts()
    n_items = len(model.item_encoder)
    n = int(n_items - np.median(bought))  # about half the customers have fewer unbought items
    rc, out, _ = cli("evaluate", "--model", split_files.model, "--data", split_files.test,
                     "--protocol", "sampled", "--eval-negatives", n)
    assert rc == 0
    assert re.search(rf"sampled-{n}: \d+ of the \d+ held-out items left out", out)
    rc, out, _ = cli("evaluate", "--model", split_files.model, "--data", split_files.test,
                     "--protocol", "sampled", "--eval-negatives", n_items)
    (tag, _), = {key for key in metric_rows(out) if key[1] == "gmf"}
    assert int(tag.split("-")[1]) < n_items and "too small for" in out


def test_evaluate_with_no_known_pair_is_an_error(split_files, tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("user_id,item_id\nX1,Y1\nX2,Y2\n")
    rc, out, err = cli("evaluate", "--model", split_files.model, "--data", other)
    assert_one_line_error(rc, out, err, "neurec evaluate", "no pair of --data")


# ---------------------------------------------------------------- shared behaviour
def test_errors_are_one_line_with_status_2(shop, evaluated, tmp_path):
    bare = tmp_path / "bare.neurec"
    m = neurec.models.MF(5, 4, factors=2)
    m.compile(optimizer="adam", loss="binary_crossentropy")
    m.save(bare)
    junk = tmp_path / "junk.neurec"
    junk.write_bytes(b"not a zip file")
    empty = tmp_path / "empty.csv"
    empty.write_text("user_id,item_id\n")
    bad_row = tmp_path / "bad.csv"
    bad_row.write_text("user_id,item_id\na,b\nc\n")
    log, model = shop.log, evaluated.path
    cases = [
        ("train", ["--data", tmp_path / "nope.csv", "--save", tmp_path / "x.neurec"],
         "No such file"),
        ("train", ["--data", log, "--save", tmp_path / "x.zip"], "--save must end in .neurec"),
        ("train", ["--data", log, "--save", tmp_path / "x.neurec", "--item-col", "sku"],
         "--item-col 'sku' is not a column"),
        ("train", ["--data", empty, "--save", tmp_path / "x.neurec"], "no interactions"),
        ("train", ["--data", bad_row, "--save", tmp_path / "x.neurec"], "line 3"),
        ("train", ["--data", log, "--save", tmp_path / "x.neurec", "--epochs", "0"],
         "argument --epochs: must be > 0"),
        ("train", ["--data", log, "--save", tmp_path / "x.neurec", "--layers", "8,x"],
         "argument --layers"),
        ("train", ["--data", log], "required: --save"),
        ("train", ["--data", log, "--save", tmp_path / "x.neurec", "--model", "gpt"],
         "invalid choice: 'gpt'"),
        ("evaluate", ["--model", tmp_path / "nope.neurec", "--data", log], "No such file"),
        ("evaluate", ["--model", junk, "--data", log], "not a valid neurec"),
        ("evaluate", ["--model", bare, "--data", log], "holds no id encoders"),
        ("evaluate", ["--model", model, "--data", log, "--user-col", "who"],
         "--user-col 'who' is not a column"),
        ("evaluate", ["--model", model, "--data", log, "--k", "ten"], "expected an integer"),
        ("recommend", ["--model", model, "--all", "--output", tmp_path / "r.txt"],
         "--output must end in .csv or .parquet"),
        ("recommend", ["--model", model, "--output", tmp_path / "r.csv"],
         "one of the arguments --users --all is required"),
        ("recommend", ["--model", model, "--all", "--users", log, "--output", tmp_path / "r.csv"],
         "not allowed with argument"),
        ("recommend", ["--model", tmp_path / "m.neurec", "--all", "--output", tmp_path / "r.csv"],
         "No such file"),
        ("recommend", ["--model", bare, "--all", "--output", tmp_path / "r.csv"],
         "holds no id encoders"),
        ("recommend", ["--model", model, "--users", tmp_path / "u.csv", "--output",
                       tmp_path / "r.csv"], "No such file: --users"),
        ("recommend", ["--model", model, "--all", "--k", "0", "--output", tmp_path / "r.csv"],
         "argument --k: must be > 0"),
        ("update", ["--model", model, "--data", log, "--output", tmp_path / "o.zip"],
         "must end in .neurec"),
    ]
    for sub, args, match in cases:
        rc, out, err = cli(sub, *args)
        assert_one_line_error(rc, out, err, f"neurec {sub}", match)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "bare.neurec", "empty.csv",
                                                          "junk.neurec"]


def test_errors_print_no_traceback_from_the_shell(shop, tmp_path):
    r = neurec_process("recommend", "--model", tmp_path / "missing.neurec", "--all", "--output",
                       tmp_path / "r.csv", cwd=tmp_path)
    assert_one_line_error(r.returncode, r.stdout, r.stderr, "neurec recommend", "No such file")
    r = neurec_process("train", "--data", shop.log, "--save", tmp_path / "m.neurec", "--sep",
                       ";;", cwd=tmp_path)
    assert_one_line_error(r.returncode, r.stdout, r.stderr, "neurec train", "--sep must be one")


@pytest.mark.parametrize("sub", ["main_job", "train", "recommend", "evaluate", "update"])
def test_help_gives_every_option_a_sentence_and_its_default(sub):
    import argparse
    import importlib
    parser = importlib.import_module(f"neurec.cli.{sub}").parser()
    args = ("--help",) if sub == "main_job" else (sub, "--help")
    rc, out, err = cli(*args)
    usage = "usage: neurec" + ("" if sub == "main_job" else f" {sub}")
    assert rc == 0 and out.startswith(usage) and not err
    text = " ".join(out.split())
    options = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    assert "--threads" in {a.option_strings[0] for a in options}
    grouped = {a for g in parser._mutually_exclusive_groups for a in g._group_actions}
    for a in options:
        flag = a.option_strings[0]
        assert a.help and a.help[0].isupper() and a.help.rstrip(")").endswith("."), flag
        if a.required or a in grouped or isinstance(a, argparse._StoreTrueAction):
            continue
        assert "default" in a.help, flag
        if a.default is not None:
            shown = ",".join(map(str, a.default)) if isinstance(a.default, tuple) else a.default
            assert re.search(rf"\(default '?{re.escape(str(shown))}'?[,).]", text), (flag, shown)


def test_main_help_names_the_subcommands():
    rc, out, _ = cli("--help")
    assert rc == 0
    text = " ".join(out.split())
    for sub in ("neurec train", "neurec recommend", "neurec evaluate", "neurec update"):
        assert sub in text


def test_threads_last_for_the_command_only(shop, evaluated, tmp_path):
    before = neurec.get_num_threads()
    other = 1 if before != 1 else 2
    rc, _, err = cli("recommend", "--model", evaluated.path, "--all", "--output",
                     tmp_path / "r.csv", "--threads", other, "--verbose", "0")
    assert rc == 0, err
    assert neurec.get_num_threads() == before
