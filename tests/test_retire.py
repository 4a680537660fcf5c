"""Retired items: never recommended again, on every path; saved with the model."""
import json
import zipfile

import numpy as np
import pytest

from neurec.data import InteractionMatrix, NegativeSampler
from neurec.layers import Concatenate, Dense, Embedding, Flatten, Input
from neurec.models import GMF, MF, Model, NeuMF, load_model

NU, NI = 30, 24


def _train():
    rng = np.random.default_rng(0)
    return InteractionMatrix.from_arrays(rng.integers(0, NU, 200), rng.integers(0, NI, 200),
                                         shape=(NU, NI), dedupe="max")


def _hybrid(nu, ni):
    u, i = Input(shape=(1,), name="user"), Input(shape=(1,), name="item")
    f = Input(shape=(2,), name="item_tags")
    eu = Flatten()(Embedding(nu, 4)(u))
    ei = Flatten()(Embedding(ni, 4)(i))
    h = Dense(6, activation="relu")(Concatenate()([eu, ei, f]))
    return Model([u, i, f], Dense(1, activation="sigmoid")(h))


TAGS = np.random.default_rng(1).random((NI, 2)).astype(np.float32)
MODELS = {  # name: (builder, recommend kwargs)
    "mf-fused": (lambda: MF(NU, NI, factors=4, use_bias=True), {}),
    "gmf-fused": (lambda: GMF(NU, NI, factors=4), {}),
    "neumf-hoisted": (lambda: NeuMF(NU, NI, factors=4, layers=[8, 4]), {}),
    "hybrid-generic": (lambda: _hybrid(NU, NI), {"item_features": {"item_tags": TAGS}}),
}


def _trained(name):
    make, kw = MODELS[name]
    model = make()
    model.compile(optimizer="adam", loss="binary_crossentropy")
    feats = kw.get("item_features")
    model.fit(NegativeSampler(_train(), num_negatives=2, seed=0, item_features=feats), epochs=2,
              verbose=0, seed=1)
    return model, kw


def _excluding_for_everyone(train, items):
    """``train`` plus ``items`` for every user: what retiring them must be equivalent to."""
    u, i, _ = train.to_coo()
    uu = np.concatenate([u, np.repeat(np.arange(NU), len(items))])
    ii = np.concatenate([i, np.tile(items, NU)])
    return InteractionMatrix.from_arrays(uu, ii, shape=(NU, NI), dedupe="max")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_retired_items_are_never_recommended_on_any_path(name):
    model, kw = _trained(name)
    train = _train()
    users = np.arange(NU)
    top, _ = model.recommend(users, k=5, exclude=train, **kw)
    gone = np.unique(top[:, :2])[:6]                   # items that were at the top
    want_ids, want_scores = model.recommend(users, k=8, exclude=_excluding_for_everyone(train, gone),
                                            **kw)
    model.retire_items(gone)
    ids, scores = model.recommend(users, k=8, exclude=train, **kw)
    assert not np.isin(ids, gone).any()
    np.testing.assert_array_equal(ids, want_ids)      # retiring == excluding for every user
    np.testing.assert_array_equal(scores, want_scores)
    ids, _ = model.recommend(users, k=8, **kw)         # without exclude
    assert not np.isin(ids, gone).any()
    # items= candidate lists
    cand = np.concatenate([gone[:3], np.setdiff1d(np.arange(NI), gone)[:4]])
    ids, _ = model.recommend(users, k=NI, items=cand, **kw)
    assert ids.shape == (NU, 4) and not np.isin(ids, gone).any()
    # cold-start popularity
    pop, _ = model.recommend([NU + 3], k=NI, unknown="popular", **kw)
    assert pop.shape == (1, NI - gone.size) and not np.isin(pop, gone).any()
    pop, _ = model.recommend([NU + 3], k=3, items=cand, unknown="popular", **kw)
    assert not np.isin(pop, gone).any()
    # the whole catalog minus retired: k columns at most, -1 where a user runs out
    ids, scores = model.recommend(users, k=NI, exclude=train, **kw)
    assert ids.shape == (NU, NI - gone.size)
    seen = np.diff(train.indptr)
    for u in users:
        left = NI - gone.size - np.setdiff1d(train.user_items(u), gone).size
        assert (ids[u] >= 0).sum() == left and (ids[u, left:] == -1).all()
        assert np.isneginf(scores[u, left:]).all()
    assert seen.sum() == train.nnz
    # predict and score_items still see retired items
    s = model.score_items([0], items=gone, **({"item_features": kw["item_features"]} if kw else {}))
    assert np.isfinite(s).all()


def test_retire_and_unretire():
    model, _ = _trained("gmf-fused")
    assert model.retired_items.dtype == np.int64 and model.retired_items.size == 0
    model.retire_items([5, 3, 5])
    model.retire_items(np.array([7.0]))
    np.testing.assert_array_equal(model.retired_items, [3, 5, 7])
    model.retired_items[0] = 99                       # a copy
    np.testing.assert_array_equal(model.retired_items, [3, 5, 7])
    model.unretire_items([5, 11])                    # 11 was not retired: ignored
    np.testing.assert_array_equal(model.retired_items, [3, 7])
    ids, _ = model.recommend([0], k=NI)
    assert 5 in ids and 3 not in ids
    model.unretire_items()
    assert model.retired_items.size == 0
    with pytest.raises(ValueError, match=r"\[0, 2\*\*62\]"):
        model.retire_items([-1])
    with pytest.raises(ValueError, match="whole"):
        model.retire_items([1.5])
    with pytest.raises(TypeError, match="IdEncoder"):
        model.retire_items(["a"])
    model.retire_items(np.arange(NI))
    with pytest.raises(ValueError, match="every candidate item is retired"):
        model.recommend([0], k=3)
    with pytest.raises(ValueError, match="every candidate item is retired"):
        model.recommend([0], k=3, items=[1, 2])


def test_an_id_beyond_the_table_is_retired_once_the_table_grows():
    model, _ = _trained("mf-fused")
    model.retire_items([NI + 1])
    assert model.recommend([0], k=NI)[0].shape == (1, NI)   # nothing to skip yet
    model.resize_embeddings({"item": NI + 2}, seed=0)
    ids, _ = model.recommend([0], k=NI + 2)
    assert ids.shape == (1, NI + 1) and NI + 1 not in ids and NI in ids


def test_retired_items_are_saved_and_loaded(tmp_path):
    model, _ = _trained("neumf-hoisted")
    plain = tmp_path / "plain.neurec"
    model.save(plain)
    with zipfile.ZipFile(plain) as z:                 # files without retired items: as before
        assert "retired_items" not in json.loads(z.read("config.json"))
    model.retire_items([2, 9])
    path = tmp_path / "retired.neurec"
    model.save(path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.retired_items, [2, 9])
    np.testing.assert_array_equal(loaded.recommend(np.arange(NU), k=10)[0],
                                  model.recommend(np.arange(NU), k=10)[0])
    assert load_model(plain).retired_items.size == 0
    # a crafted entry is refused
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    for bad in (["x"], [-1], [True], 5, [2**63]):
        cfg = json.loads(members["config.json"])
        cfg["retired_items"] = bad
        out = tmp_path / "bad.neurec"
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
            for n, data in members.items():
                z.writestr(n, json.dumps(cfg) if n == "config.json" else data)
        with pytest.raises(ValueError, match="retired_items"):
            load_model(out)


def test_new_items_of_an_id_only_model_wait_retired_until_trained():
    """The documented recipe: an id-only model has nothing to score a new item from, so
    it is held back until fit has trained its row."""
    model, _ = _trained("gmf-fused")
    model.resize_embeddings({"item": NI + 2}, seed=0)
    new = [NI, NI + 1]
    model.retire_items(new)
    assert not np.isin(model.recommend(np.arange(NU), k=NI + 2)[0], new).any()
    log = InteractionMatrix.from_arrays([0, 1, 2, 3], [NI, NI, NI + 1, NI + 1], shape=(NU, NI + 2))
    model.fit(NegativeSampler(log, num_negatives=1, seed=0), epochs=1, verbose=0)
    model.unretire_items(new)
    ids, _ = model.recommend(np.arange(NU), k=NI + 2)
    assert np.isin(new, ids).all()
