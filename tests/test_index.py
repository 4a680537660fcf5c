"""Model.build_index and recommend(index=): approximate top-K for dot-product models."""
import sys
import zipfile

import numpy as np
import pytest

from neurec.models import MF, NeuMF, load_model
from neurec.models._index import augment_items, augment_users


def _mf(nu, ni, factors=16, seed=0, scale=0.5):
    model = MF(nu, ni, factors=factors)
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w[...] = rng.normal(size=w.shape) * scale
    return model


def _recall(got, want):
    return np.mean([len(set(a[a >= 0]) & set(b[b >= 0])) / max(1, (b >= 0).sum())
                    for a, b in zip(got, want)])


def _planted(nu=200, ni=20000, d=32, per=10, seed=0):
    """Each user has ``per`` items planted near its vector: its exact top ``per``."""
    rng = np.random.default_rng(seed)
    model = MF(nu, ni, factors=d)
    emb = {w.shape: w for w in model.weights}
    users = rng.normal(size=(nu, d)).astype(np.float32)
    users /= np.linalg.norm(users, axis=1, keepdims=True)
    items = rng.normal(size=(ni, d)).astype(np.float32) * 0.3 / np.sqrt(d)
    for u in range(nu):
        items[u * per:(u + 1) * per] = users[u] + rng.normal(size=(per, d)) * 0.05
    for layer in model.layers:
        if getattr(layer, "input_dim", None) == nu and layer.output_dim == d:
            layer.embeddings[...] = users
        elif getattr(layer, "input_dim", None) == ni and layer.output_dim == d:
            layer.embeddings[...] = items
        elif getattr(layer, "input_dim", None) == ni:
            layer.embeddings[...] = rng.normal(size=layer.embeddings.shape) * 0.01
    assert emb  # the model has weights
    return model


def test_augmentation_turns_inner_product_into_l2():
    rng = np.random.default_rng(1)
    q, b, p = rng.normal(size=(50, 6)), rng.normal(size=50), rng.normal(size=(7, 6))
    x = augment_items(q.astype(np.float32), b.astype(np.float32)).astype(np.float64)
    y = augment_users(p.astype(np.float32)).astype(np.float64)
    m2 = (np.einsum("ij,ij->i", q, q) + b * b).max()
    np.testing.assert_allclose(np.einsum("ij,ij->i", x, x), m2, rtol=1e-5)
    d2 = ((y[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    s = p @ q.T + b
    np.testing.assert_allclose(d2, (p * p).sum(1)[:, None] + 1 + m2 - 2 * s, rtol=1e-4, atol=1e-4)
    assert (np.argsort(d2, axis=1)[:, :5] == np.argsort(-s, axis=1)[:, :5]).all()


def test_exact_kind_is_the_fused_exact_path_and_needs_no_library(monkeypatch):
    model = _mf(50, 300)
    monkeypatch.setitem(sys.modules, "faiss", None)  # as if faiss-cpu were not installed
    idx = model.build_index("exact")
    assert model.item_index is idx
    ex = (np.arange(50).repeat(3), np.arange(150) % 300)
    a = model.recommend(np.arange(50), k=7, exclude=ex, verbose=0)
    b = model.recommend(np.arange(50), k=7, exclude=ex, index=idx, verbose=0)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    with pytest.raises(ImportError, match=r'pip install "neurec\[ann\]"'):
        model.build_index("hnsw")


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_planted_neighbours_are_found(kind):
    pytest.importorskip("faiss")
    model = _planted()
    users = np.arange(200)
    exact = model.recommend(users, k=10, exclude=False, verbose=0)[0]
    assert (np.sort(exact, axis=1) == np.arange(2000).reshape(200, 10)).all()  # planted
    settings = {} if kind == "hnsw" else {"nprobe": 64}
    idx = model.build_index(kind, **settings)
    got, scores = model.recommend(users, k=10, exclude=False, index=idx, verbose=0)
    assert _recall(got, exact) >= 0.95
    # the scores are the model's for the returned ids, best first
    np.testing.assert_allclose(scores, model.score_items(users)[users[:, None], got], rtol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()


def test_exclusions_and_retired_items_are_honoured():
    pytest.importorskip("faiss")
    model = _mf(120, 3000, seed=2)
    users = np.arange(120)
    top = model.recommend(users, k=40, exclude=False, verbose=0)[0]
    ex = (np.repeat(users, 30), top[:, :30].ravel())  # each user's 30 best are seen
    retired = np.unique(top[:, 30:33])
    model.retire_items(retired)
    idx = model.build_index("hnsw")
    want = model.recommend(users, k=10, exclude=ex, verbose=0)[0]
    got = model.recommend(users, k=10, exclude=ex, index=idx, verbose=0)[0]
    seen = {(u, i) for u, i in zip(*ex)}
    assert not any((u, i) in seen for u in users for i in got[u])
    assert not np.isin(got, retired).any()
    assert (got >= 0).all() and _recall(got, want) >= 0.95


def test_fetch_grows_until_k_survive_and_pads_past_the_catalogue():
    pytest.importorskip("faiss")
    model = _mf(3, 200, seed=3)
    keep = np.array([5, 17, 99])
    ex = (np.zeros(197, np.int64), np.setdiff1d(np.arange(200), keep))  # user 0: 3 unseen
    model.retire_items([17])
    for kind in ("hnsw", "ivf"):
        idx = model.build_index(kind)
        got = model.recommend([0, 1], k=10, exclude=ex, index=idx, verbose=0)[0]
        want = model.recommend([0, 1], k=10, exclude=ex, verbose=0)[0]
        assert sorted(got[0][got[0] >= 0]) == [5, 99] and (got[0][2:] == -1).all()
        assert _recall(got[1:], want[1:]) >= 0.9 and 17 not in got[1]


def test_index_is_saved_in_the_model_file_and_checked_on_load(tmp_path):
    pytest.importorskip("faiss")
    model = _mf(60, 2000, seed=4)
    users = np.arange(60)
    for kind in ("hnsw", "ivf", "exact"):
        idx = model.build_index(kind)
        want = model.recommend(users, k=10, exclude=False, index=idx, verbose=0)[0]
        path = tmp_path / f"{kind}.neurec"
        model.save(path)
        loaded = load_model(path)
        assert loaded.item_index.kind == kind and loaded.item_index.params == idx.params
        got = loaded.recommend(users, k=10, exclude=False, index=loaded.item_index, verbose=0)[0]
        np.testing.assert_array_equal(got, want)
    # a crafted graph: a neighbour id beyond the catalogue
    model.build_index("hnsw")
    good = tmp_path / "good.neurec"
    model.save(good)
    bad = tmp_path / "bad.neurec"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "index/neighbors.npy":
                arr = np.frombuffer(data[-4:], np.int32).copy()
                arr[0] = 10**6
                data = data[:-4] + arr.tobytes()
            zout.writestr(info, data)
    with pytest.raises(ValueError, match="neighbors"):
        load_model(bad)


def test_a_stale_index_raises():
    pytest.importorskip("faiss")
    model = _mf(20, 500, seed=5)
    idx = model.build_index("hnsw")
    model.get_layer("mf_item_embedding").embeddings[:] += 0.1  # as training would
    with pytest.raises(ValueError, match="build_index again"):
        model.recommend(np.arange(20), k=5, index=idx, verbose=0)


def test_bad_arguments_raise_naming_them(monkeypatch):
    model = _mf(20, 500, seed=6)
    with pytest.raises(ValueError, match="kind"):
        model.build_index("annoy")
    with pytest.raises(ValueError, match="M must"):
        model.build_index("hnsw", M=0)
    with pytest.raises(TypeError, match="nlist"):
        model.build_index("hnsw", nlist=8)
    with pytest.raises(ValueError, match="dot-product"):
        NeuMF(20, 500, factors=4, layers=(8, 4)).build_index("exact")
    with pytest.raises(TypeError, match="index must be"):
        model.recommend([0], k=5, index="hnsw", verbose=0)
    idx = model.build_index("exact")
    with pytest.raises(ValueError, match="items="):
        model.recommend([0], k=5, items=[1, 2, 3], index=idx, verbose=0)
    with pytest.raises(ValueError, match="build_index again"):
        _mf(20, 400).recommend([0], k=5, index=idx, verbose=0)
