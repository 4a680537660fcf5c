"""Fold-in of unseen users (``Model.fold_in``, ``recommend(histories=...)``,
``neurec/models/_foldin.py``): reproducible, leaves everything else alone, learns the
users' tastes, and the closed form is the iALS row solve."""
import numpy as np
import pytest

import neurec
from neurec.data import IdEncoder, InteractionMatrix, NegativeSampler
from neurec.layers import Dense, Embedding, Flatten, Input, Multiply
from neurec.models import GMF, MF, Model, NeuMF, _foldin, load_model
from neurec.optimizers import ALS

NU, NI, GROUPS = 240, 120, 8


def planted(n_users=NU, seed=0, per_user=12):
    """Users in GROUPS taste groups: 90 % of a user's items come from their group's items
    (item i is in group i % GROUPS), drawn with a Zipf-like popularity inside the group;
    the rest uniformly. Returns (users, items, user groups)."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, GROUPS, n_users)
    per_group = NI // GROUPS
    pop = 1.0 / np.arange(1, per_group + 1) ** 0.5
    pop /= pop.sum()
    users, items = [], []
    for u in range(n_users):
        own = rng.choice(per_group, per_user, replace=False, p=pop) * GROUPS + group[u]
        other = rng.integers(0, NI, per_user)
        pick = np.where(rng.random(per_user) < 0.9, own, other)
        pick = np.unique(pick)
        users.append(np.full(pick.size, u))
        items.append(pick)
    return np.concatenate(users), np.concatenate(items), group


def trained(build, epochs=6, seed=0):
    u, i, _ = planted(seed=seed)
    model = build()
    model.compile(optimizer=neurec.optimizers.Adam(0.01), loss="binary_crossentropy")
    model.fit(NegativeSampler((u, i), n_users=NU, n_items=NI, seed=seed), epochs=epochs,
              batch_size=64, verbose=0, seed=seed)
    return model


def new_users(n=40, seed=7):
    """Histories of n new users and one held-out item each (from their group)."""
    u, i, group = planted(n_users=n, seed=seed, per_user=10)
    hist, test = [], []
    for r in range(n):
        items = i[u == r]
        own = items[items % GROUPS == group[r]]
        held = own[-1] if own.size else items[-1]
        hist.append([int(x) for x in items if x != held])
        test.append(int(held))
    return hist, np.array(test)


BUILDERS = {
    "neumf": lambda: NeuMF(NU, NI, factors=8, layers=(16, 8)),
    "gmf": lambda: GMF(NU, NI, factors=8),
    "mf": lambda: MF(NU, NI, factors=8),
}


@pytest.fixture(scope="module")
def models():
    neurec.utils.set_random_seed(0)
    return {name: trained(b) for name, b in BUILDERS.items()}


def _state(model):
    return [w.copy() for w in model.weights] + [
        s.copy() for slots in model.optimizer._slots for s in slots if s is not None]


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_same_seed_same_recommendations(models, name, one_thread):
    hist, _ = new_users()
    a = models[name].recommend(histories=hist, k=10, seed=3)
    b = models[name].recommend(histories=hist, k=10, seed=3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    c = models[name].recommend(histories=hist, k=10, seed=4)
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_recommend_histories_leaves_model_unchanged(models, name):
    model = models[name]
    model.predict([np.zeros(1, np.int64), np.zeros(1, np.int64)])  # the plan exists
    before = _state(model)
    iterations = model.optimizer.iterations
    model.recommend(histories=new_users()[0], k=5, seed=0)
    after = _state(model)
    assert len(before) == len(after)
    for x, y in zip(before, after):
        np.testing.assert_array_equal(x, y)
    assert model.optimizer.iterations == iterations
    assert model.get_layer(model.layers[2].name).input_dim in (NU, NI)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_history_items_are_excluded(models, name):
    hist, _ = new_users()
    ids, _ = models[name].recommend(histories=hist, k=10, seed=0)
    for r, h in enumerate(hist):
        assert not set(ids[r].tolist()) & set(h)
    ids, _ = models[name].recommend(histories=hist, k=NI, seed=0, exclude=False)
    assert ids.shape == (len(hist), NI) and (ids >= 0).all()


def _hit_rate(ids, test):
    return float(np.mean([t in row for row, t in zip(ids.tolist(), test.tolist())]))


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_folded_in_users_beat_popularity(models, name):
    hist, test = new_users()
    ids, _ = models[name].recommend(histories=hist, k=10, seed=0)
    u, i, _ = planted()
    pop = np.bincount(i, minlength=NI).astype(float)
    pop_ids = [[j for j in np.argsort(-pop, kind="stable") if j not in h][:10] for h in hist]
    hr, hr_pop = _hit_rate(ids, test), _hit_rate(np.array(pop_ids), test)
    assert hr > hr_pop + 0.5, (hr, hr_pop)  # about 0.85-0.9 against 0.05


def test_solve_equals_partial_fit_users():
    u, i, _ = planted()
    model = MF(NU, NI, factors=6)
    model.compile(optimizer=ALS(regularization=1.0, alpha=4.0))
    model.fit(InteractionMatrix.from_arrays(u, i, shape=(NU, NI)), epochs=3, verbose=0)
    hist, _ = new_users(5)
    via_recommend = model.recommend(histories=hist, k=10)  # 'auto': the solve for ALS models
    m = InteractionMatrix.from_arrays(np.repeat(np.arange(5), [len(h) for h in hist]),
                                      np.concatenate(hist), shape=(5, NI))
    vec = model.partial_fit_users(np.arange(NU, NU + 5), m)
    ids, scores = model.recommend(np.arange(NU, NU + 5), k=10, exclude=(
        np.repeat(np.arange(NU, NU + 5), [len(h) for h in hist]), np.concatenate(hist)))
    np.testing.assert_array_equal(via_recommend[0], ids)
    np.testing.assert_array_equal(via_recommend[1], scores)
    assert vec.shape == (5, 6)


def _gmf_graph(h):
    """A GMF whose Dense(1) weights h differ from 1 (trained with SGD, not ALS)."""
    u, i = Input((1,), name="user"), Input((1,), name="item")
    p = Flatten()(Embedding(NU, 4, name="pu")(u))
    q = Flatten()(Embedding(NI, 4, name="qi")(i))
    out = Dense(1, activation="sigmoid", name="h")(Multiply()([p, q]))
    model = Model([u, i], out)
    model.get_layer("h").kernel[:, 0] = h
    return model


def test_solve_of_gmf_weighs_items_by_h():
    """score = h . (p * q) = p . (h * q): the solve's item side is h * q."""
    model = _gmf_graph(np.array([2.0, -1.0, 0.5, 3.0], np.float32))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    hist, _ = new_users(3)
    ids, _ = model.recommend(histories=hist, k=5, seed=0, fold_in_options={"method": "solve"})
    ref = _gmf_graph(np.ones(4, np.float32))
    ref.set_weights(model.get_weights())
    ref.get_layer("qi").embeddings[...] *= model.get_layer("h").kernel[:, 0]
    ref.get_layer("h").kernel[...] = 1.0
    ref.compile(optimizer="adam", loss="binary_crossentropy")
    ref_ids, _ = ref.recommend(histories=hist, k=5, seed=0, fold_in_options={"method": "solve"})
    np.testing.assert_array_equal(ids, ref_ids)


# -- errors --------------------------------------------------------------------------
def test_unknown_items_error_or_skip(models):
    model = models["mf"]
    with pytest.raises(ValueError, match="unknown.*unknown='ignore'"):
        model.recommend(histories=[[1, 2], [3, NI + 5]], k=3)
    with pytest.raises(ValueError, match="unknown"):
        model.recommend(histories=[[-1, 2]], k=3)
    with pytest.warns(UserWarning, match="skipping 1 unknown"):
        a = model.recommend(histories=[[1, 2], [3, NI + 5]], k=3, unknown="ignore", seed=0)
    b = model.recommend(histories=[[1, 2], [3]], k=3, seed=0)
    np.testing.assert_array_equal(a[0], b[0])
    with pytest.raises(ValueError, match="unknown must be 'error' or 'ignore'"):
        model.recommend(histories=[[1]], unknown="popular")


def test_empty_histories_raise(models):
    model = models["gmf"]
    with pytest.raises(ValueError, match="histories is empty"):
        model.recommend(histories=[], k=3)
    with pytest.raises(ValueError, match=r"histories \[1\] have no"):
        model.recommend(histories=[[1], []], k=3)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no \\(known\\) items"):
        model.recommend(histories=[[NI + 1]], k=3, unknown="ignore")


def test_wrong_types_raise(models):
    model = models["gmf"]
    for bad in ("abc", 5, {1: [2]}, np.array([1, 2])):
        with pytest.raises(TypeError, match="histories must be a list"):
            model.recommend(histories=bad, k=3)
    with pytest.raises(TypeError, match="history 0 must be a 1-D"):
        model.recommend(histories=[[[1, 2]]], k=3)
    with pytest.raises(TypeError, match="integer item ids"):
        model.recommend(histories=[["a", "b"]], k=3)
    with pytest.raises(TypeError, match="whole numbers"):
        model.recommend(histories=[[1.5]], k=3)
    with pytest.raises(ValueError, match="users or histories, not both"):
        model.recommend([0], histories=[[1]])
    with pytest.raises(ValueError, match="exclude must be None"):
        model.recommend(histories=[[1]], exclude=[[1]])
    with pytest.raises(ValueError, match="method must be one of"):
        model.recommend(histories=[[1]], fold_in_options={"method": "magic"})
    with pytest.raises(ValueError, match="method='solve' needs a dot-product"):
        models["neumf"].recommend(histories=[[1]], fold_in_options={"method": "solve"})
    with pytest.raises(TypeError, match="epochs must be an integer"):
        model.recommend(histories=[[1]], fold_in_options={"epochs": 2.5})


def test_sparse_matrix_histories(models):
    hist, _ = new_users(6)
    m = InteractionMatrix.from_arrays(np.repeat(np.arange(6), [len(h) for h in hist]),
                                      np.concatenate(hist), shape=(6, NI))
    a = models["neumf"].recommend(histories=hist, k=4, seed=1)
    b = models["neumf"].recommend(histories=m, k=4, seed=1)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


# -- fold_in: persistent -------------------------------------------------------------
def _fresh(name):
    neurec.utils.set_random_seed(0)
    return trained(BUILDERS[name], epochs=2)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_fold_in_changes_nothing_else(name):
    model = _fresh(name)
    before = {l.name: [w.copy() for w in l.weights] for l in model.layers}
    slots = [s.copy() for sl in model.optimizer._slots for s in sl if s is not None]
    hist, _ = new_users(5)
    ids = model.fold_in(hist, seed=1)
    np.testing.assert_array_equal(ids, np.arange(NU, NU + 5))
    for layer in model.layers:
        for old, new in zip(before[layer.name], layer.weights):
            if old.shape == new.shape:
                np.testing.assert_array_equal(old, new)
            else:  # a user table: its old rows stay, five new ones follow
                assert new.shape == (NU + 5,) + old.shape[1:]
                np.testing.assert_array_equal(old, new[:NU])
                assert np.any(new[NU:] != 0)
    grown = [s for sl in model.optimizer._slots for s in sl if s is not None]
    for old, new in zip(slots, grown):  # old rows keep their state (resize_embeddings)
        np.testing.assert_array_equal(old, new[:old.shape[0]])


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_fold_in_serves_what_recommend_histories_gives(name, one_thread):
    model = _fresh(name)
    hist, _ = new_users(6)
    want = model.recommend(histories=hist, k=8, seed=5)
    ids = model.fold_in(hist, seed=5)
    got = model.recommend(ids, k=8, exclude=(np.repeat(ids, [len(h) for h in hist]),
                                             np.concatenate(hist)))
    np.testing.assert_array_equal(want[0], got[0])
    np.testing.assert_allclose(want[1], got[1], rtol=1e-6)
    model.fit(NegativeSampler((np.repeat(ids, 2), np.tile([1, 2], ids.size)),
                              n_users=NU + 6, n_items=NI), epochs=1, verbose=0, seed=0)


def test_fold_in_same_seed_same_rows(one_thread):
    rows = []
    for _ in range(2):
        model = _fresh("neumf")
        model.fold_in(new_users(4)[0], seed=9)
        rows.append([l.embeddings[NU:].copy() for l in model.layers
                     if isinstance(l, Embedding) and l.input_dim == NU + 4])
    assert len(rows[0]) == 2  # NeuMF's GMF and MLP user tables
    for a, b in zip(*rows):
        np.testing.assert_array_equal(a, b)


def test_fold_in_raw_ids_encoders_and_seen_matrix(tmp_path):
    model = _fresh("mf")
    users = IdEncoder().fit([f"u{k}" for k in range(NU)])
    items = IdEncoder().fit([f"i{k}" for k in range(NI)])
    model.attach_encoders(user=users, item=items)
    u, i, _ = planted()
    model.attach_seen_matrix((u, i))
    hist, _ = new_users(3)
    raw = {f"new{r}": [f"i{x}" for x in h] for r, h in enumerate(hist)}
    ids = model.fold_in(raw, seed=0)
    np.testing.assert_array_equal(ids, [NU, NU + 1, NU + 2])
    assert model.user_encoder.transform(["new0", "new2"]).tolist() == [NU, NU + 2]
    assert model.seen_matrix.shape[0] == NU + 3
    assert sorted(model.seen_matrix.user_items(NU + 1).tolist()) == sorted(set(hist[1]))
    got, _ = model.recommend(["new1"], k=5)
    assert not set(got[0].tolist()) & {f"i{x}" for x in hist[1]}  # the seen-matrix default
    path = str(tmp_path / "m.neurec")
    model.save(path)
    again = load_model(path)
    np.testing.assert_array_equal(again.recommend(["new1"], k=5)[0], got)
    direct, _ = model.recommend(histories=[raw["new1"]], k=5, seed=0)
    assert direct.dtype == object and direct[0, 0].startswith("i")


def test_fold_in_errors_leave_model_unchanged():
    model = _fresh("gmf")
    before = [w.copy() for w in model.weights]
    with pytest.raises(ValueError, match="needs a user encoder"):
        model.fold_in([[1, 2]], users=["x"])
    with pytest.raises(ValueError, match="users= or a dict"):
        model.fold_in({"x": [1]}, users=["x"])
    model.attach_encoders(user=IdEncoder().fit(np.arange(NU)))
    with pytest.raises(ValueError, match="pass the new users' raw ids"):
        model.fold_in([[1, 2]])
    with pytest.raises(ValueError, match=r"users \[3\] are already in the model"):
        model.fold_in({3: [1, 2]})
    with pytest.raises(ValueError, match="same id twice"):
        model.fold_in([[1], [2]], users=[NU + 1, NU + 1])
    with pytest.raises(ValueError, match="2 users for 1 histories"):
        model.fold_in([[1]], users=[NU + 1, NU + 2])
    with pytest.raises(ValueError, match="unknown"):
        model.fold_in({NU + 1: [NI + 3]})
    for old, new in zip(before, model.weights):
        np.testing.assert_array_equal(old, new)
    assert len(model.user_encoder) == NU


# -- the C core skips a frozen parameter's gradient ------------------------------------
@pytest.mark.parametrize("sparse", [True, False])
def test_frozen_layers_give_the_same_embedding_step(sparse, one_thread):
    """The plan computes no gradient for a frozen weight (fold-in's frozen tower); the
    gradient through it is unchanged: one step of a model with its Dense layers and item
    table frozen moves the user rows exactly as one step of the same model with
    everything trainable."""
    u, i, _ = planted()
    x = [u[:200].reshape(-1, 1), i[:200].reshape(-1, 1)]
    y = (np.arange(200) % 2).astype(np.float32).reshape(-1, 1)
    rows = []
    for freeze in (False, True):
        neurec.utils.set_random_seed(3)
        model = NeuMF(NU, NI, factors=4, layers=(16, 8))
        for layer in model.layers:
            if freeze and layer.weights and "user" not in layer.name:
                layer.trainable = False
        model.compile(optimizer=neurec.optimizers.Adam(0.01, sparse_updates=sparse),
                      loss="binary_crossentropy")
        before = [w.copy() for w in model.weights]
        start = model.get_layer("gmf_user_embedding").embeddings.copy()
        model.fit(x, y, batch_size=200, epochs=1, verbose=0, shuffle=False, seed=0)
        rows.append([model.get_layer(n).embeddings.copy()
                     for n in ("gmf_user_embedding", "mlp_user_embedding")])
        if freeze:
            for layer, w0 in zip([l for l in model.layers for _ in l.weights], before):
                if "user" not in layer.name:
                    assert any(np.array_equal(w0, w) for w in layer.weights)
    for a, b in zip(*rows):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(rows[1][0], start)


# -- steps of batch_per_user samples per user: alone or in a group, the same training -----
def test_alone_or_together_the_same_quality(models):
    hist, test = new_users()
    together, _ = models["neumf"].recommend(histories=hist, k=10, seed=0)
    alone = np.vstack([models["neumf"].recommend(histories=[h], k=10, seed=0)[0] for h in hist])
    assert abs(_hit_rate(together, test) - _hit_rate(alone, test)) <= 0.1
    assert _hit_rate(alone, test) > 0.6


def test_users_in_groups_when_a_step_would_be_too_large(models, monkeypatch):
    """Past MAX_STEP_SAMPLES samples a step, users are fitted group by group; each group
    sees only its own rows' samples, in steps of batch_per_user samples per user."""
    hist, test = new_users()
    monkeypatch.setattr(_foldin, "MAX_STEP_SAMPLES", 200)  # 5 users a group (40 samples each)
    seen, batches = [], []
    fit = Model.fit

    def spy(self, x, *args, **kwargs):
        seen.append(np.flatnonzero(x.matrix.user_counts()))
        batches.append(kwargs["batch_size"])
        return fit(self, x, *args, **kwargs)

    monkeypatch.setattr(Model, "fit", spy)
    ids, _ = models["neumf"].recommend(histories=hist, k=10, seed=0)
    assert [len(s) for s in seen] == [5] * 8 and batches == [200] * 8
    np.testing.assert_array_equal(np.concatenate(seen), np.arange(len(hist)))
    assert _hit_rate(ids, test) > 0.6


def test_rows_of_a_group():
    m = InteractionMatrix.from_arrays([0, 1, 1, 2, 3], [4, 0, 5, 2, 1], shape=(4, 6))
    part = _foldin._rows(m, 1, 3)
    assert part.shape == (4, 6)
    assert part.user_counts().tolist() == [0, 2, 1, 0]
    assert part.user_items(1).tolist() == [0, 5] and part.user_items(2).tolist() == [2]


def test_a_later_group_trains_as_the_first(models, monkeypatch, one_thread):
    """Regression: groups share one optimizer, whose global step count grows group by group;
    with it as Adam's bias correction a later group's rows took larger first steps (row norms
    +14 % from the first six users to the last six of twelve identical histories)."""
    monkeypatch.setattr(_foldin, "MAX_STEP_SAMPLES", 40)  # one user a group
    model = _fresh("neumf")
    model.fold_in([new_users()[0][0]] * 12, seed=0)
    norms = np.linalg.norm(model.get_layer("gmf_user_embedding").embeddings[NU:], axis=1)
    assert abs(norms[6:].mean() / norms[:6].mean() - 1) < 0.06, norms
