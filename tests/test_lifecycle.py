"""The model after its first fit: encoders and seen-matrix kept with it, saved and loaded,
and ``update`` with a new day's log (``neurec/models/_lifecycle.py``)."""
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import neurec
from neurec.data import IdEncoder, InteractionLog, InteractionMatrix, NegativeSampler
from neurec.datasets import make_purchases
from neurec.models import MF, NeuMF, load_model


def _shop(n_users=120, n_items=80, seed=0):
    """A small purchase log: the encoded log, its encoders, the seen-matrix."""
    d = make_purchases(n_users=n_users, n_items=n_items, seed=seed)
    log = InteractionLog.from_arrays(d.users, d.items, timestamps=d.timestamps)
    log, ue, ie = log.to_implicit().encode()
    return log, ue, ie, log.to_matrix(shape=(len(ue), len(ie)), dedupe="max")


@pytest.fixture(scope="module")
def shop():
    return _shop()


def _trained(shop, make=NeuMF, attach=True, epochs=1):
    log, ue, ie, m = shop
    model = make(len(ue), len(ie))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(NegativeSampler(m, seed=0), epochs=epochs, batch_size=256, verbose=0, seed=0)
    if attach:
        model.attach_encoders(user=ue, item=ie)
        model.attach_seen_matrix(m)
    return model


# ------------------------------------------------------------------ encoders attached
def test_attached_encoders_give_raw_ids_in_and_out(shop):
    log, ue, ie, m = shop
    model = _trained(shop)
    raw = ue.classes_[[0, 5, 9]]
    ids, scores = model.recommend(raw, k=4)
    ref_ids, ref_scores = model.recommend([0, 5, 9], k=4, exclude=m, user_encoder=False,
                                          item_encoder=False)
    assert ids.dtype == object and ids.shape == (3, 4)
    np.testing.assert_array_equal(ids, ie.inverse_transform(ref_ids))
    np.testing.assert_array_equal(scores, ref_scores)


def test_attach_keeps_a_copy_and_checks_sizes(shop):
    log, ue, ie, m = shop
    model = _trained(shop, attach=False)
    assert model.user_encoder is None and model.item_encoder is None and model.seen_matrix is None
    mine = ue.copy()
    model.attach_encoders(user=mine)
    mine.partial_fit(["somebody new"])
    assert len(model.user_encoder) == len(ue) and model.item_encoder is None
    with pytest.raises(TypeError, match="IdEncoder"):
        model.attach_encoders(item=list(ie.classes_))
    with pytest.raises(ValueError, match="table has"):
        model.attach_encoders(user=mine)  # one id more than the table's rows
    with pytest.raises(ValueError, match="table has"):
        model.attach_seen_matrix(InteractionMatrix.from_arrays([0], [len(ie)]))


def test_explicit_arguments_win_and_false_turns_defaults_off(shop):
    log, ue, ie, m = shop
    model = _trained(shop)
    other = IdEncoder().fit(np.arange(len(ue)) * 10)    # integer raw ids, same codes
    a, _ = model.recommend([0, 10], k=3, user_encoder=other, item_encoder=False)
    b, _ = model.recommend([0, 1], k=3, exclude=m, user_encoder=False, item_encoder=False)
    np.testing.assert_array_equal(a, b)
    seen_row = m.user_items(0)
    top_all, _ = model.recommend([0], k=len(ie), exclude=False, user_encoder=False,
                                 item_encoder=False)
    assert set(seen_row) <= set(top_all[0])              # nothing excluded
    top, _ = model.recommend([0], k=len(ie), user_encoder=False, item_encoder=False)
    assert not set(seen_row) & set(top[0][top[0] >= 0])  # the seen-matrix by default


def test_unknown_raw_ids_follow_unknown(shop):
    log, ue, ie, m = shop
    model = _trained(shop)
    with pytest.raises(ValueError, match="not seen during fit"):
        model.recommend(["nobody"], k=3)
    ids, scores = model.recommend(["nobody", ue.classes_[0]], k=3, unknown="popular")
    popular = ie.inverse_transform(np.argsort(-m.item_counts(), kind="stable")[:3])
    assert sorted(ids[0]) == sorted(popular)    # best first by the model's average user
    assert np.all((scores[0] > 0) & (scores[0] < 1)) and np.all(np.diff(scores[0]) <= 0)


# ------------------------------------------------------------------ saving
def test_save_load_round_trips_raw_id_recommendations(shop, tmp_path):
    log, ue, ie, m = shop
    model = _trained(shop)
    path = tmp_path / "shop.neurec"
    model.save(path)
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        cfg = json.loads(z.read("config.json"))
    assert {"encoders/user.npy", "encoders/item.npy", "seen/indptr.npy", "seen/indices.npy"} <= names
    assert cfg["encoders"]["user"] == {"unknown": "error", "dtype": "str", "size": len(ue)}
    assert cfg["seen"] == {"shape": list(m.shape), "nnz": m.nnz}
    loaded = load_model(path)
    raw = ue.classes_[:20]
    for a, b in zip(model.recommend(raw, k=10), loaded.recommend(raw, k=10)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.seen_matrix.indptr, m.indptr)
    np.testing.assert_array_equal(loaded.seen_matrix.indices, m.indices)
    np.testing.assert_array_equal(loaded.item_encoder.classes_, ie.classes_)
    assert load_model(path, compile=False).user_encoder is not None


@pytest.mark.parametrize("ids", [np.arange(5, dtype=np.int64) * 7 + 10**12,
                                 np.array([2**63 + 1, 3, 2**64 - 1, 4, 5], dtype=np.uint64),
                                 np.array([1.5, 2.0, -3.25, 4.0, 8.5]),
                                 np.array(["é", "日本", "a" * 40, "", "x"]),
                                 np.arange(5).astype("datetime64[s]")])
def test_every_id_type_round_trips(ids, tmp_path):
    model = MF(5, 4, factors=2)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.attach_encoders(user=IdEncoder(unknown="ignore").fit(ids))
    model.save(tmp_path / "m.neurec")
    enc = load_model(tmp_path / "m.neurec").user_encoder
    assert enc.unknown == "ignore" and enc.classes_.dtype == IdEncoder().fit(ids).classes_.dtype
    np.testing.assert_array_equal(enc.classes_, ids)
    np.testing.assert_array_equal(enc.transform(ids[::-1]), np.arange(5)[::-1])


def test_a_file_without_encoders_has_no_new_members(tmp_path):
    model = MF(5, 4, factors=2)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.save(tmp_path / "m.neurec")
    with zipfile.ZipFile(tmp_path / "m.neurec") as z:
        assert not [n for n in z.namelist() if n.startswith(("encoders/", "seen/"))]
        assert "encoders" not in json.loads(z.read("config.json"))
    loaded = load_model(tmp_path / "m.neurec")
    assert loaded.user_encoder is None and loaded.seen_matrix is None


def test_mixed_type_ids_are_refused_at_save(tmp_path):
    model = MF(5, 4, factors=2)
    model.attach_encoders(item=IdEncoder().fit(np.array([1, "a", 2], dtype=object)))
    with pytest.raises(ValueError, match="mixed types"):
        model.save(tmp_path / "m.neurec")
    assert not (tmp_path / "m.neurec").exists()


def _rewrite(src, dst, change):
    """Copy a model file, letting ``change(name, bytes) -> bytes | None`` edit or drop members
    (and returning extra members from ``change(None, None)``)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info.filename, data)
        for name, data in (change(None, None) or {}).items():
            zout.writestr(name, data)


def _npy(a):
    import io
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=True)  # a crafted file may hold a pickle
    return buf.getvalue()


def _config_edit(fn):
    def change(name, data):
        if name != "config.json":
            return data
        cfg = json.loads(data)
        fn(cfg)
        return json.dumps(cfg)
    return change


def _member(name, array):
    return lambda n, d: _npy(array) if n == name else d


@pytest.mark.parametrize("change,match", [
    (_member("encoders/user.npy", np.array(["a", "b", "a"] + ["c"] * 3)), "same id more than once"),
    (_member("encoders/user.npy", np.arange(6, dtype=np.int64)), "says dtype 'str'"),
    (_member("encoders/user.npy", np.array(["a", "b"])), r"expected \(6,\)"),
    (_member("encoders/user.npy", np.array(["a"] * 6, dtype=object)), "not a valid .npy|dtype"),
    (_member("encoders/item.npy", np.array([0.5, np.nan, 2.0, 3.0, 4.0])), "NaN or inf"),
    (_member("seen/indices.npy", np.array([9, 1, 2], dtype=np.int32)), "seen-matrix"),
    (_member("seen/indptr.npy", np.array([0, 2, 1, 3, 3, 3, 3], dtype=np.int64)), "seen-matrix"),
    (_config_edit(lambda c: c["encoders"]["user"].update(size=7)), r"expected \(7,\)"),
    (_config_edit(lambda c: c["encoders"]["user"].update(unknown="guess")), "unknown='guess'"),
    (_config_edit(lambda c: c["encoders"]["user"].update(dtype="V8")), "says dtype 'V8'"),
    (_config_edit(lambda c: c["encoders"]["user"].update(extra=1)), "exactly unknown"),
    (_config_edit(lambda c: c["encoders"].pop("item")), "do not match config.json"),
    (_config_edit(lambda c: c.pop("seen")), "do not match config.json"),
    (_config_edit(lambda c: c["seen"].update(shape=[6, -1])), "not a count"),
    (_config_edit(lambda c: c["seen"].update(nnz=2)), "do not fit shape"),
    (lambda n, d: None if n == "seen/indices.npy" else d, "do not match config.json"),
    (lambda n, d: {"seen/other.npy": b""} if n is None else d, "unexpected member"),
])
def test_crafted_encoder_and_seen_members_are_refused(change, match, tmp_path):
    model = MF(6, 5, factors=2)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.attach_encoders(user=IdEncoder().fit(list("uvwxyz")),
                          item=IdEncoder().fit(np.arange(5) + 0.5))
    model.attach_seen_matrix(InteractionMatrix.from_arrays([0, 0, 2], [1, 3, 4], shape=(6, 5)))
    model.save(tmp_path / "good.neurec")
    _rewrite(tmp_path / "good.neurec", tmp_path / "bad.neurec", change)
    with pytest.raises(ValueError, match=match):
        load_model(tmp_path / "bad.neurec")


def test_an_encoder_larger_than_its_table_is_refused(tmp_path):
    model = MF(6, 5, factors=2)
    model.attach_encoders(user=IdEncoder().fit(list("uvwxyz")))
    model.save(tmp_path / "good.neurec")

    def change(name, data):
        if name == "encoders/user.npy":
            return _npy(np.array(list("uvwxyzq")))
        return _config_edit(lambda c: c["encoders"]["user"].update(size=7))(name, data)

    _rewrite(tmp_path / "good.neurec", tmp_path / "bad.neurec", change)
    with pytest.raises(ValueError, match="knows 7 ids but the model's user table has 6 rows"):
        load_model(tmp_path / "bad.neurec")


# ------------------------------------------------------------------ the sampler's positives
def test_sampler_trains_on_given_positives_and_avoids_all_seen():
    m = InteractionMatrix.from_arrays([0, 0, 0, 1, 1], [0, 1, 2, 0, 3], shape=(2, 6))
    s = NegativeSampler(m, num_negatives=3, seed=1, positives=([0, 1, 1], [2, 3, 3]))
    assert s.num_samples == 3 * 4
    for seed in range(20):
        u, i, y = s.sample(seed)
        np.testing.assert_array_equal(u[y == 1], [0, 1, 1])
        np.testing.assert_array_equal(i[y == 1], [2, 3, 3])
        assert not m.contains(u[y == 0], i[y == 0]).any()
    with pytest.raises(ValueError, match="not in interactions"):
        NegativeSampler(m, positives=([0], [4]))
    with pytest.raises(ValueError, match="out of range"):
        NegativeSampler(m, positives=([2], [0]))
    with pytest.raises(ValueError, match="non-empty"):
        NegativeSampler(m, positives=([], []))
    with pytest.raises(TypeError, match="pair"):
        NegativeSampler(m, positives=[[0], [2]])


# ------------------------------------------------------------------ update
def _spy_sampler(monkeypatch):
    """Record every NegativeSampler that update builds."""
    from neurec.models import _lifecycle
    made = []

    class Spy(NegativeSampler):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

    monkeypatch.setattr(_lifecycle, "NegativeSampler", Spy)
    return made


def test_update_on_known_ids_merges_and_trains(shop, monkeypatch):
    log, ue, ie, m = shop
    model = _trained(shop)
    made = _spy_sampler(monkeypatch)
    before = [w.copy() for w in model.weights]
    # three known customers buy products they had not bought
    users = np.array([0, 1, 2])
    items = np.array([np.setdiff1d(np.arange(len(ie)), m.user_items(int(u)))[0] for u in users])
    day = InteractionLog.from_arrays(ue.inverse_transform(users), ie.inverse_transform(items))
    hist = model.update(day, epochs=2, num_negatives=3, seed=5, verbose=0)
    assert len(hist.history["loss"]) == 2
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.weights))
    seen = model.seen_matrix
    assert seen.nnz == m.nnz + 3 and seen.contains(users, items).all()
    assert len(model.user_encoder) == len(ue) and len(model.item_encoder) == len(ie)
    (s,) = made
    assert s.num_samples == 3 * 4                       # no replay: the day's pairs only
    for seed in range(5):                               # negatives avoid old and new pairs
        u, i, y = s.sample(seed)
        assert not seen.contains(u[y == 0], i[y == 0]).any()
    rec, _ = model.recommend(ue.inverse_transform(users), k=len(ie) - 40)
    for r, it in enumerate(items):                       # bought today: not recommended
        assert ie.inverse_transform([it])[0] not in set(rec[r])


def test_update_replays_old_pairs(shop, monkeypatch):
    log, ue, ie, m = shop
    model = _trained(shop, attach=False)
    made = _spy_sampler(monkeypatch)
    users, items = np.array([0, 1, 2, 3]), np.array([0, 1, 2, 3])
    fresh = ~m.contains(users, items)
    model.update((users, items), matrix=m, replay=2.5, num_negatives=1, seed=1, verbose=0)
    n_new = 4
    assert made[0].num_samples == (n_new + 10) * 2
    pos_u, pos_i = made[0]._pos_users, made[0]._pos_items
    np.testing.assert_array_equal(pos_u[:n_new], users)
    assert m.contains(pos_u[n_new:], pos_i[n_new:]).all()          # replayed: old pairs
    assert len(set(zip(pos_u[n_new:], pos_i[n_new:]))) == 10        # without repeats
    assert model.seen_matrix.nnz == m.nnz + int(fresh.sum())
    assert model.user_encoder is None                                # encoded: none made
    model.update((users, items), replay=1e9, num_negatives=1, seed=1, verbose=0)
    assert made[1]._pos_users.size == n_new + m.nnz + int(fresh.sum())   # at most all


def test_update_grows_tables_and_encoders_for_new_users_and_items(shop, tmp_path):
    log, ue, ie, m = shop
    model = _trained(shop)
    old_rows = [w.copy() for w in model.get_layer("gmf_user_embedding").get_weights()]
    a, b = ue.classes_[4], ue.classes_[9]
    day = InteractionLog.from_arrays(["N1", "N1", "N2", a, b, "N1"],
                                     ["X1", ie.classes_[0], "X2", "X1", ie.classes_[3], "X1"])
    model.update(day, epochs=2, replay=0.5, seed=3, verbose=0)
    nu, ni = len(ue) + 2, len(ie) + 2
    for name in ("gmf_user_embedding", "mlp_user_embedding"):
        assert model.get_layer(name).input_dim == nu
    for name in ("gmf_item_embedding", "mlp_item_embedding"):
        assert model.get_layer(name).input_dim == ni
    # old codes keep their meaning; the new ids come after them in order of appearance
    np.testing.assert_array_equal(model.user_encoder.classes_[:len(ue)], ue.classes_)
    assert list(model.user_encoder.classes_[len(ue):]) == ["N1", "N2"]
    assert list(model.item_encoder.classes_[len(ie):]) == ["X1", "X2"]
    assert len(shop[1]) == len(ue) == 120 and "N1" not in set(ue.classes_)  # the caller's: as was
    assert old_rows[0].shape == (len(ue), 8)
    seen = model.seen_matrix
    assert seen.shape == (nu, ni) and seen.nnz == m.nnz + 5 - int(m.contains(9, 3))
    pairs = [("N1", "X1"), ("N1", ie.classes_[0]), ("N2", "X2"), (a, "X1"), (b, ie.classes_[3])]
    assert seen.contains(model.user_encoder.transform([p[0] for p in pairs]),
                         model.item_encoder.transform([p[1] for p in pairs])).all()
    ids, scores = model.recommend(["N1", "N2", a], k=ni)        # the whole unseen catalogue
    assert np.isfinite(scores[scores > -np.inf]).all()
    assert not {"X1", ie.classes_[0]} & set(ids[0]) and "X2" not in set(ids[1])
    assert "X1" not in set(ids[2]) and "X2" in set(ids[0])      # new items are recommended
    assert len([i for i in ids[0] if i is not None]) == ni - 2
    # and it all survives a save / load, ready for tomorrow's update
    model.save(tmp_path / "day1.neurec")
    again = load_model(tmp_path / "day1.neurec")
    np.testing.assert_array_equal(again.recommend(["N1"], k=5)[0], model.recommend(["N1"], k=5)[0])
    again.update(InteractionLog.from_arrays(["N3"], ["X1"]), seed=0, verbose=0)
    assert len(again.user_encoder) == nu + 1 and again.seen_matrix.shape == (nu + 1, ni)


def test_update_with_encoded_codes_grows_past_the_tables(shop):
    log, ue, ie, m = shop
    model = _trained(shop, attach=False)
    users, items = np.array([len(ue) + 4, 0]), np.array([1, len(ie)])
    model.update((users, items), matrix=m, seed=0, verbose=0)
    assert model.get_layer("gmf_user_embedding").input_dim == len(ue) + 5
    assert model.get_layer("gmf_item_embedding").input_dim == len(ie) + 1
    assert model.seen_matrix.shape == (len(ue) + 5, len(ie) + 1)
    ids, _ = model.recommend([len(ue) + 4], k=3)
    assert 1 not in ids[0]


def test_update_errors_leave_the_model_unchanged(shop):
    log, ue, ie, m = shop
    model = _trained(shop, attach=False)
    day = InteractionLog.from_arrays(ue.classes_[:2], ie.classes_[:2])
    weights = [w.copy() for w in model.weights]
    with pytest.raises(ValueError, match="no user encoder"):
        model.update(day, matrix=m)
    with pytest.raises(ValueError, match="attach_seen_matrix"):
        model.update((np.array([0]), np.array([1])))
    model.attach_encoders(user=ue, item=ie)
    model.attach_seen_matrix(m)
    for bad, err, match in [
            ([[0], [1]], TypeError, "InteractionLog"),
            ((np.array([0.5]), np.array([1])), TypeError, "integer codes"),
            ((np.array([0, 1]), np.array([1])), ValueError, "differ in length"),
            ((np.array([-1]), np.array([1])), ValueError, ">= 0"),
            ((np.array([], np.int64), np.array([], np.int64)), ValueError, "empty")]:
        with pytest.raises(err, match=match):
            model.update(bad)
    pd = pytest.importorskip("pandas")
    with pytest.raises(ValueError, match="expected 'user' and 'item'"):
        model.update(pd.DataFrame({"customer": ["x"], "sku": ["y"]}))
    for kw, match in [({"replay": -0.5}, "replay"), ({"replay": float("nan")}, "replay"),
                      ({"num_negatives": 1.5}, "num_negatives"),
                      ({"matrix": InteractionMatrix.from_arrays([0], [0], shape=(999, 5))},
                       "larger than")]:
        with pytest.raises(ValueError, match=match):
            model.update(day, **kw)
    with pytest.raises(ValueError, match="ALS"):
        als = MF(len(ue), len(ie), factors=4)
        als.compile(optimizer="als")
        als.update((np.array([0]), np.array([1])), matrix=m)
    with pytest.raises(RuntimeError, match="compile"):
        MF(len(ue), len(ie), factors=4).update((np.array([0]), np.array([1])), matrix=m)
    for a, b in zip(weights, model.weights):
        np.testing.assert_array_equal(a, b)
    assert model.seen_matrix.nnz == m.nnz and len(model.user_encoder) == len(ue)


def test_update_takes_a_dataframe_of_raw_ids(shop):
    pd = pytest.importorskip("pandas")
    log, ue, ie, m = shop
    model = _trained(shop)
    df = pd.DataFrame({"user_id": ue.classes_[:3], "item_id": ie.classes_[5:8]})
    model.update(df, seed=0, verbose=0)
    assert model.seen_matrix.contains([0, 1, 2], [5, 6, 7]).all()


# ------------------------------------------------------------------ the command line
def _neurec(*args, cwd):
    """Run ``python -m neurec ARGS`` in a fresh process, this checkout's neurec first."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(neurec.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
    return subprocess.run([sys.executable, "-m", "neurec", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _write_csv(path, users, items):
    path.write_text("user_id,item_id\n" + "".join(f"{u},{i}\n" for u, i in zip(users, items)))


def test_cli_train_saves_and_update_grows_the_model(tmp_path):
    first = tmp_path / "shop.neurec"
    r = _neurec("--users", 200, "--items", 150, "--epochs", 1, "--verbose", 0, "--threads", 1,
                "--model", "gmf", "--save-model", first, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"saved the model with its encoders and seen-matrix to {first}" in r.stdout
    model = load_model(first)
    n_users, n_items = len(model.user_encoder), len(model.item_encoder)
    seen = model.seen_matrix
    old_user, old_item = model.user_encoder.classes_[3], model.item_encoder.classes_[7]
    day = tmp_path / "day.csv"
    _write_csv(day, ["NEW-1", "NEW-1", "NEW-2", old_user], ["SKU-X", old_item, "SKU-X", "SKU-Y"])
    second = tmp_path / "shop2.neurec"
    r = _neurec("update", "--model", first, "--data", day, "--output", second, "--epochs", 2,
                "--replay", 0.5, "--verbose", 0, "--threads", 1, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "4 interactions, 2 new users, 2 new items" in r.stdout
    assert f"{n_users:,} -> {n_users + 2:,} users, {n_items:,} -> {n_items + 2:,} items" in r.stdout
    updated = load_model(second)
    assert updated.get_layer("gmf_user_embedding").input_dim == n_users + 2
    assert updated.get_layer("gmf_item_embedding").input_dim == n_items + 2
    assert updated.seen_matrix.nnz == seen.nnz + 4
    ids, scores = updated.recommend(["NEW-1", "NEW-2", old_user], k=5)
    assert not {"SKU-X", old_item} & set(ids[0]) and "SKU-X" not in set(ids[1])
    assert "SKU-Y" not in set(ids[2]) and np.isfinite(scores).all()


def test_cli_update_errors_are_one_line_with_status_2(tmp_path):
    bare = tmp_path / "bare.neurec"
    m = MF(5, 4, factors=2)
    m.compile(optimizer="adam", loss="binary_crossentropy")
    m.save(bare)
    day = tmp_path / "day.csv"
    _write_csv(day, ["a"], ["b"])
    junk = tmp_path / "junk.neurec"
    junk.write_bytes(b"not a zip")
    cases = [
        (["--model", bare, "--data", day, "--output", tmp_path / "o.neurec"], "no id encoders"),
        (["--model", junk, "--data", day, "--output", tmp_path / "o.neurec"], "not a valid"),
        (["--model", tmp_path / "nope.neurec", "--data", day, "--output", tmp_path / "o.neurec"],
         "No such file"),
        (["--model", bare, "--data", day, "--output", tmp_path / "o.zip"], "must end in .neurec"),
    ]
    for args, match in cases:
        r = _neurec("update", *args, cwd=tmp_path)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("neurec update: error: ")
        assert match in r.stderr, r.stderr
    assert not (tmp_path / "o.neurec").exists()
    r = _neurec("update", "--help", cwd=tmp_path)
    assert r.returncode == 0 and "(default 1)" in r.stdout and "--replay" in r.stdout
    assert "neurec update" in _neurec("--help", cwd=tmp_path).stdout
