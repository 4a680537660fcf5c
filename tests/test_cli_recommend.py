"""``neurec recommend`` end to end: a model trained by ``neurec train`` on a generated
purchase log (``make_purchases`` written to a CSV), recommendations written to CSV and
Parquet, raw ids in and out, exclusions, unknown customers, streaming and atomic writes.
"""
import csv
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import neurec
from neurec.datasets import make_purchases
from neurec.models import Model, load_model
from test_cli_train_evaluate import assert_one_line_error, cli, neurec_process

K = 5


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A NeuMF trained with --no-refit, so each customer's last purchase (the held-out item)
    was never learned: only the seen-matrix keeps it out of the recommendations."""
    folder = tmp_path_factory.mktemp("recommend")
    d = make_purchases(n_users=250, n_items=120, n_categories=5, seed=7)
    log = folder / "log.csv"
    d.to_csv(log)
    model = folder / "shop.neurec"
    rc, _, err = cli("train", "--data", log, "--save", model, "--no-refit", "--epochs", "3",
                     "--verbose", "0", "--threads", "2", "--protocol", "none")
    assert rc == 0, err
    bought = {}
    for u, i in zip(d.users.tolist(), d.items.tolist()):
        bought.setdefault(u, set()).add(i)
    last = dict(zip(d.users.tolist(), d.items.tolist()))  # the log is sorted by time
    return SimpleNamespace(folder=folder, log=log, model=model, data=d, bought=bought, last=last)


def read_recs(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["user_id", "rank", "item_id", "score"]
    by_user = {}
    for user, rank, item, score in rows[1:]:
        by_user.setdefault(user, []).append((int(rank), item, float(score)))
    for recs in by_user.values():
        assert [r for r, _, _ in recs] == list(range(1, len(recs) + 1))
        assert len({i for _, i, _ in recs}) == len(recs)
    return by_user


def api_recs(model, users, k, **kw):
    """``{user: [(rank, item, score)]}`` from ``Model.recommend`` with raw ids."""
    ids, scores = model.recommend(np.asarray(users), k=k, **kw)
    return {str(u): [(j + 1, str(ids[r, j]), round(float(scores[r, j]), 6))
                     for j in range(ids.shape[1]) if ids[r, j] is not None]
            for r, u in enumerate(users)}


def test_all_never_recommends_a_bought_item_not_even_the_last_one(shop, tmp_path):
    out = tmp_path / "recs.csv"
    rc, stdout, err = cli("recommend", "--model", shop.model, "--all", "--k", K, "--output", out,
                          "--threads", "2")
    assert rc == 0, err
    assert "everything each customer bought left out" in stdout
    assert f"wrote {250 * K:,} recommendations for 250 customers to {out}" in stdout
    by_user = read_recs(out)
    assert set(by_user) == set(shop.bought)
    for user, recs in by_user.items():
        items = {i for _, i, _ in recs}
        assert len(recs) == K and not items & shop.bought[user], user
        scores = [s for _, _, s in recs]
        assert scores == sorted(scores, reverse=True)
    # the model does rank customers' held-out last purchases highly: without the seen-matrix
    # some would come back (the bug the exclusion prevents)
    model = load_model(shop.model)
    users = sorted(shop.bought)
    free = api_recs(model, users, K, exclude=False)
    assert sum(shop.last[u] in {i for _, i, _ in free[u]} for u in users) > 0
    # and the file is Model.recommend's answer (the seen-matrix excluded), in raw ids
    assert {u: [(r, i, round(s, 6)) for r, i, s in v] for u, v in by_user.items()} == \
        api_recs(model, users, K)


def test_allow_repeats_recommends_bought_items_again(shop, tmp_path):
    out = tmp_path / "repeats.csv"
    rc, stdout, err = cli("recommend", "--model", shop.model, "--all", "--k", K, "--output", out,
                          "--allow-repeats", "--verbose", "0")
    assert rc == 0, err
    assert "repeat purchases allowed" in stdout
    by_user = read_recs(out)
    repeats = sum(len({i for _, i, _ in recs} & shop.bought[u]) for u, recs in by_user.items())
    assert repeats > 0
    model = load_model(shop.model)
    users = sorted(shop.bought)
    assert {u: [(r, i, round(s, 6)) for r, i, s in v] for u, v in by_user.items()} == \
        api_recs(model, users, K, exclude=False)


def test_users_file_with_raw_string_ids(shop, tmp_path):
    users = sorted(shop.bought)[:4]
    path = tmp_path / "users.csv"
    path.write_text("segment,user_id\n" + "".join(f"a,{u}\n" for u in users + users[:2]))
    out = tmp_path / "some.csv"
    rc, stdout, err = cli("recommend", "--model", shop.model, "--users", path, "--k", 3,
                          "--output", out, "--verbose", "0")
    assert rc == 0, err
    assert "note: 2 duplicate ids in --users" in stdout
    by_user = read_recs(out)
    assert list(by_user) == users  # in the file's order, each once
    assert by_user == api_recs(load_model(shop.model), users, 3)


def test_unknown_users_are_an_error_listing_them_or_get_popular_items(shop, tmp_path):
    known = sorted(shop.bought)[:2]
    path = tmp_path / "users.csv"
    path.write_text("user_id\n" + f"{known[0]}\nNEW-1\n{known[1]}\nNEW-2\n")
    out = tmp_path / "r.csv"
    rc, stdout, err = cli("recommend", "--model", shop.model, "--users", path, "--output", out)
    assert_one_line_error(rc, stdout, err, "neurec recommend",
                          "2 of the 4 customers of --users")
    assert "'NEW-1', 'NEW-2'" in err and "--unknown popular" in err
    assert not out.exists()
    rc, stdout, err = cli("recommend", "--model", shop.model, "--users", path, "--output", out,
                          "--unknown", "popular", "--k", 4, "--verbose", "0")
    assert rc == 0, err
    assert "note: 2 customers of --users are unknown to the model ('NEW-1', 'NEW-2')" in stdout
    by_user = read_recs(out)
    assert list(by_user) == [known[0], "NEW-1", known[1], "NEW-2"]
    buyers = {}
    for items in shop.bought.values():
        for i in items:
            buyers[i] = buyers.get(i, 0) + 1
    top = sorted(buyers.items(), key=lambda kv: -kv[1])[:4]
    model = load_model(shop.model)
    cold = model.recommend(np.array([len(model.user_encoder)]), k=4, exclude=model.seen_matrix,
                           unknown="popular", user_encoder=False, verbose=0)
    for new in ("NEW-1", "NEW-2"):
        recs = by_user[new]
        assert {i for _, i, _ in recs} <= set(buyers)
        assert min(buyers[i] for _, i, _ in recs) >= top[-1][1]
        # scores on the model's scale (a sigmoid's), as Model.recommend gives, never counts
        scores = [s for _, _, s in recs]
        assert all(0.0 < s < 1.0 for s in scores) and scores == sorted(scores, reverse=True)
        assert [i for _, i, _ in recs] == list(cold[0][0])
        np.testing.assert_allclose(scores, cold[1][0], rtol=1e-6)
    assert by_user[known[0]] == api_recs(load_model(shop.model), [known[0]], 4)[known[0]]


def test_integer_ids_from_a_users_file(tmp_path):
    rng = np.random.default_rng(0)
    users = rng.integers(1000, 1060, 900)
    items = rng.integers(7, 67, 900)
    log = tmp_path / "log.csv"
    log.write_text("customer;sku\n" + "".join(f"{u};{i}\n" for u, i in zip(users, items)))
    model = tmp_path / "m.neurec"
    rc, _, err = cli("train", "--data", log, "--sep", ";", "--user-col", "customer", "--item-col",
                     "sku", "--save", model, "--model", "mf", "--epochs", "1", "--verbose", "0",
                     "--protocol", "none")
    assert rc == 0, err
    assert load_model(model).user_encoder.classes_.dtype.kind == "i"
    ulist = tmp_path / "u.csv"
    ulist.write_text("customer\n1003\n01001\n")  # the text of a number matches the number
    out = tmp_path / "r.csv"
    rc, _, err = cli("recommend", "--model", model, "--users", ulist, "--user-col", "customer",
                     "--output", out, "--k", 3)
    assert rc == 0, err
    by_user = read_recs(out)
    assert list(by_user) == ["1003", "1001"]
    bought = {(str(u), str(i)) for u, i in zip(users, items)}
    assert not any((u, i) in bought for u, recs in by_user.items() for _, i, _ in recs)
    ulist.write_text("customer\n1003\nabc\n")
    rc, stdout, err = cli("recommend", "--model", model, "--users", ulist, "--user-col",
                          "customer", "--output", out, "--k", 3)
    assert_one_line_error(rc, stdout, err, "neurec recommend", "'abc'")


def test_parquet_output_matches_the_csv(shop, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    csv_out, pq_out = tmp_path / "r.csv", tmp_path / "r.parquet"
    for out in (csv_out, pq_out):
        rc, _, err = cli("recommend", "--model", shop.model, "--all", "--k", K, "--output", out,
                         "--verbose", "0", "--block-users", 40)
        assert rc == 0, err
    table = pq.read_table(pq_out)
    assert table.schema.names == ["user_id", "rank", "item_id", "score"]
    assert table.schema.field("user_id").type == pa.string()
    assert table.schema.field("rank").type == pa.int32()
    assert table.schema.field("score").type == pa.float32()
    cols = table.to_pydict()
    with open(csv_out, newline="") as f:
        rows = list(csv.reader(f))[1:]
    assert cols["user_id"] == [r[0] for r in rows] and cols["item_id"] == [r[2] for r in rows]
    assert cols["rank"] == [int(r[1]) for r in rows]
    np.testing.assert_allclose(cols["score"], [float(r[3]) for r in rows], atol=5e-7)


def test_parquet_without_pyarrow_is_a_one_line_error(shop, tmp_path):
    out = tmp_path / "r.parquet"
    code = ("import sys; sys.modules['pyarrow'] = None  # as if not installed\n"
            "from neurec.cli import main\n"
            f"sys.exit(main(['recommend', '--model', {str(shop.model)!r}, '--all', '--output', "
            f"{str(out)!r}]))")
    root = os.path.dirname(os.path.dirname(os.path.abspath(neurec.__file__)))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       cwd=tmp_path, env={**os.environ, "PYTHONPATH": root})
    assert_one_line_error(r.returncode, r.stdout, r.stderr, "neurec recommend",
                          "pip install pyarrow")
    assert not out.exists() and r.stdout == ""  # refused before the model was loaded


def test_all_streams_blocks_through_one_atomic_write(shop, tmp_path, monkeypatch):
    calls = []
    original = Model.recommend

    def spy(self, users=None, *args, **kwargs):
        calls.append(len(users))
        return original(self, users, *args, **kwargs)

    monkeypatch.setattr(Model, "recommend", spy)
    whole, blocks = tmp_path / "whole.csv", tmp_path / "blocks.csv"
    rc, _, err = cli("recommend", "--model", shop.model, "--all", "--k", K, "--output", whole,
                     "--verbose", "0")
    assert rc == 0, err
    assert calls == [250]
    calls.clear()
    rc, stdout, err = cli("recommend", "--model", shop.model, "--all", "--k", K, "--output",
                          blocks, "--block-users", 60)
    assert rc == 0, err
    assert calls == [60, 60, 60, 60, 10]
    assert "250/250" in stdout  # the progress bar, between blocks
    assert whole.read_bytes() == blocks.read_bytes()
    # a failure in the fourth block: no file, no temporary file, an old file intact
    blocks.write_text("old\n")

    def failing(self, users=None, *args, **kwargs):
        if len(calls) == 3:
            raise RuntimeError("disk on fire")
        calls.append(len(users))
        return original(self, users, *args, **kwargs)

    calls.clear()
    monkeypatch.setattr(Model, "recommend", failing)
    rc, stdout, err = cli("recommend", "--model", shop.model, "--all", "--output", blocks,
                          "--block-users", 60, "--verbose", "0")
    assert_one_line_error(rc, stdout, err, "neurec recommend", "disk on fire")
    assert blocks.read_text() == "old\n"

    def interrupted(self, users=None, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Model, "recommend", interrupted)
    rc, stdout, err = cli("recommend", "--model", shop.model, "--all", "--output", blocks,
                          "--verbose", "0")
    assert rc == 130 and err.strip() == "neurec recommend: interrupted; nothing was written"
    assert blocks.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocks.csv", "whole.csv"]


def test_model_without_a_seen_matrix_needs_allow_repeats(shop, tmp_path):
    model = load_model(shop.model)
    model.attach_seen_matrix(None)
    bare = tmp_path / "noseen.neurec"
    model.save(bare)
    out = tmp_path / "r.csv"
    rc, stdout, err = cli("recommend", "--model", bare, "--all", "--output", out)
    assert_one_line_error(rc, stdout, err, "neurec recommend", "holds no seen-matrix")
    rc, _, err = cli("recommend", "--model", bare, "--all", "--output", out, "--allow-repeats",
                     "--verbose", "0")
    assert rc == 0 and out.exists(), err


def test_recommend_from_the_shell(shop, tmp_path):
    """The installed command as a user runs it, bar and all, in a fresh process."""
    out = tmp_path / "recs.csv"
    r = neurec_process("recommend", "--model", shop.model, "--all", "--k", 2, "--output", out,
                       "--threads", 1, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "" and "250/250" in r.stdout
    assert len(read_recs(out)) == 250
