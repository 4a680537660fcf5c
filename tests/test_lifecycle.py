"""The model after its first fit: encoders and seen-matrix kept with it, saved and loaded,
and ``update`` with a new day's log (``neurec/models/_lifecycle.py``)."""
import json
import zipfile

import numpy as np
import pytest

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
    assert list(ids[0]) == list(popular)


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
