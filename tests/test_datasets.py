"""Tests for neurec.datasets: the synthetic e-commerce purchase log."""
import csv
import dataclasses
import re

import numpy as np
import pytest

from neurec.datasets import EcommerceData, load_purchases, make_purchases
from neurec.datasets import ecommerce as _ecommerce

SMALL = dict(n_users=600, n_items=300, n_categories=8, n_segments=4,
             mean_purchases=12)


@pytest.fixture(scope="module")
def small():
    return make_purchases(**SMALL, seed=3)


@pytest.fixture(scope="module")
def default():
    return load_purchases()


def _fields(data):
    return {f.name: getattr(data, f.name) for f in dataclasses.fields(data)}


def _per_user_order(data):
    # Rows grouped by customer, in time order within a customer.
    return np.lexsort((data.timestamps, data.user_index))


def _chi2(table):
    table = table[:, table.sum(axis=0) > 0]
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    stat = ((table - expected) ** 2 / expected).sum()
    dof = (table.shape[0] - 1) * (table.shape[1] - 1)
    return stat, dof


# ---------------------------------------------------------------- determinism

def test_same_seed_gives_bit_identical_arrays(small):
    again = make_purchases(**SMALL, seed=3)
    for name, value in _fields(small).items():
        other = getattr(again, name)
        assert value.dtype == other.dtype, name
        assert np.array_equal(value, other), name


def test_different_seed_gives_different_data(small):
    other = make_purchases(**SMALL, seed=4)
    assert not np.array_equal(small.item_category, other.item_category)
    n = min(len(small), len(other))
    assert not np.array_equal(small.timestamps[:n], other.timestamps[:n])
    assert not np.array_equal(small.items[:n], other.items[:n])


def test_load_purchases_is_make_purchases_defaults(default):
    ref = make_purchases()
    for name, value in _fields(default).items():
        assert np.array_equal(value, getattr(ref, name)), name
    assert 110_000 < len(default) < 140_000


def test_seed_none_draws_fresh_data():
    a = make_purchases(n_users=50, n_items=40, n_categories=4, seed=None)
    b = make_purchases(n_users=50, n_items=40, n_categories=4, seed=None)
    assert len(a) != len(b) or not np.array_equal(a.timestamps, b.timestamps)


# ----------------------------------------------------------- shapes and types

def test_shapes_and_dtypes(small):
    n = len(small)
    assert n == small.timestamps.shape[0] > 0
    for name in ("users", "items", "timestamps", "quantities", "user_index",
                 "item_index"):
        assert getattr(small, name).shape == (n,), name
    assert small.users.dtype.kind == "U" and small.items.dtype.kind == "U"
    assert small.timestamps.dtype == np.int64
    assert small.quantities.dtype == np.int64
    assert small.user_index.dtype == np.int64
    assert small.item_index.dtype == np.int64
    n_items, n_users = SMALL["n_items"], SMALL["n_users"]
    assert small.item_ids.shape == (n_items,)
    assert small.item_category.shape == (n_items,)
    assert small.item_category.dtype == np.int64
    assert small.item_price.shape == (n_items,)
    assert small.item_price.dtype == np.float64
    assert small.item_price_band.shape == (n_items,)
    assert small.user_ids.shape == (n_users,)
    assert small.user_segment.shape == (n_users,)
    assert small.user_segment.dtype == np.int64
    assert small.category_consumable.shape == (SMALL["n_categories"],)
    assert small.category_complements.shape == (SMALL["n_categories"], 2)


def test_value_ranges(small):
    assert set(np.unique(small.item_category)) == set(range(SMALL["n_categories"]))
    assert small.user_segment.min() >= 0
    assert small.user_segment.max() < SMALL["n_segments"]
    assert set(np.unique(small.item_price_band)) == set(range(5))
    assert np.all(small.item_price > 0)
    assert np.allclose(small.item_price, np.round(small.item_price, 2))
    assert small.quantities.min() >= 1
    assert np.mean(small.quantities == 1) > 0.8
    comp = small.category_complements
    assert np.all(comp != np.arange(comp.shape[0])[:, None])
    # price bands are quintiles within each category
    for c in range(SMALL["n_categories"]):
        in_c = small.item_category == c
        p, b = small.item_price[in_c], small.item_price_band[in_c]
        if b.size >= 5:
            assert p[b == 0].max() <= p[b == 4].min()


def test_raw_ids_match_indices_and_formats(small):
    assert np.array_equal(small.users, small.user_ids[small.user_index])
    assert np.array_equal(small.items, small.item_ids[small.item_index])
    assert all(re.fullmatch(r"C\d{6}", s) for s in small.user_ids)
    assert all(re.fullmatch(r"P\d{5}", s) for s in small.item_ids)
    assert np.unique(small.user_ids).size == small.user_ids.size
    assert np.unique(small.item_ids).size == small.item_ids.size
    assert small.user_ids[123] == "C000123" and small.item_ids[42] == "P00042"


def test_ids_widen_for_large_counts():
    ids = _ecommerce._format_ids("P", 123_457, 5)
    assert ids[0] == "P000000" and ids[-1] == "P123456"


def test_repr_names_sizes(small):
    text = repr(small)
    assert f"n_purchases={len(small)}" in text and "n_users=600" in text


# ------------------------------------------------------ structure and realism

def test_every_user_has_two_distinct_purchases(small, default):
    for data in (small, default):
        n_users = data.user_ids.size
        assert np.bincount(data.user_index, minlength=n_users).min() >= 2
        pairs = np.unique(data.user_index * data.item_ids.size + data.item_index)
        assert np.bincount(pairs // data.item_ids.size, minlength=n_users).min() >= 2


def test_log_sorted_and_user_timestamps_strictly_increasing(default):
    ts = default.timestamps
    assert np.all(np.diff(ts) >= 0)
    order = _per_user_order(default)
    u, t = default.user_index[order], ts[order]
    same = u[1:] == u[:-1]
    assert np.all(np.diff(t)[same] > 0)  # no ties: latest purchase is unique
    start = 1_672_531_200  # 2023-01-01
    assert ts.min() >= start and ts.max() < start + 400 * 86_400
    assert ts.max() - ts.min() > 300 * 86_400


def test_sessions_cluster_purchases_in_time(default):
    order = _per_user_order(default)
    u, t = default.user_index[order], default.timestamps[order]
    gaps = np.diff(t)[u[1:] == u[:-1]]
    # about half the gaps are within a session (minutes), the rest days
    assert 0.3 < np.mean(gaps < 3600) < 0.7
    assert np.median(gaps[gaps >= 3600]) > 86_400


def test_mean_purchases_is_respected():
    data = make_purchases(n_users=3000, n_items=500, n_categories=10,
                          mean_purchases=10, seed=1)
    assert abs(len(data) / 3000 - 10) < 1.0


def test_popularity_is_heavy_tailed(default):
    counts = np.sort(np.bincount(default.item_index,
                                 minlength=default.item_ids.size))[::-1]
    top = counts[: counts.size // 10].sum() / counts.sum()
    assert top > 0.35
    flat = make_purchases(n_users=2000, n_items=1000, zipf_exponent=0.0,
                          taste_strength=0.0, seed=0)
    flat_counts = np.sort(np.bincount(flat.item_index, minlength=1000))[::-1]
    assert flat_counts[:100].sum() / flat_counts.sum() < top


def test_segments_prefer_different_categories(default):
    seg = default.user_segment[default.user_index]
    cat = default.item_category[default.item_index]
    n_seg, n_cat = seg.max() + 1, cat.max() + 1
    table = np.zeros((n_seg, n_cat))
    np.add.at(table, (seg, cat), 1)
    stat, dof = _chi2(table)
    assert stat > dof + 20 * np.sqrt(2 * dof)
    # control: the same statistic on shuffled customer segments is near dof
    rng = np.random.default_rng(0)
    shuffled = rng.permutation(default.user_segment)[default.user_index]
    control = np.zeros((n_seg, n_cat))
    np.add.at(control, (shuffled, cat), 1)
    cstat, _ = _chi2(control)
    assert stat > 20 * cstat


def test_repeats_are_consumables(default):
    key = default.user_index * default.item_ids.size + default.item_index
    uniq, counts = np.unique(key, return_counts=True)
    repeated_items = uniq[counts > 1] % default.item_ids.size
    assert repeated_items.size > 1000
    consumable = default.category_consumable[default.item_category[repeated_items]]
    assert consumable.mean() > 0.9
    bought = default.category_consumable[default.item_category[default.item_index]]
    assert default.quantities[bought].mean() > default.quantities[~bought].mean() + 0.2


def test_next_purchase_follows_complements(default):
    order = _per_user_order(default)
    u = default.user_index[order]
    cat = default.item_category[default.item_index[order]]
    same = u[1:] == u[:-1]
    prev, nxt = cat[:-1][same], cat[1:][same]
    comp = default.category_complements
    hit = (comp[prev] == nxt[:, None]).any(axis=1).mean()
    # control: pair each purchase with a random purchase of the same customer
    rng = np.random.default_rng(0)
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    sizes = np.diff(np.r_[starts, u.size])
    rand = starts[np.repeat(np.arange(starts.size), sizes - 1)]
    rand += (rng.random(rand.size) * np.repeat(sizes, sizes - 1)).astype(np.int64)
    base = (comp[cat[rand]] == nxt[:, None]).any(axis=1).mean()
    assert hit > base + 0.1


def _knn_vs_popularity_hits(data):
    # Recommend 10 unseen products from each customer's first half of
    # purchases, by item co-occurrence and by popularity; count the hits in
    # the second half.
    n_users, n_items = data.user_ids.size, data.item_ids.size
    order = _per_user_order(data)
    u, i = data.user_index[order], data.item_index[order]
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    sizes = np.diff(np.r_[starts, u.size])
    early = (np.arange(u.size) - np.repeat(starts, sizes)) < np.repeat(sizes // 2, sizes)
    first = np.zeros((n_users, n_items))
    first[u[early], i[early]] = 1
    second = np.zeros((n_users, n_items))
    second[u[~early], i[~early]] = 1
    scaled = first / np.sqrt(first.sum(axis=0) + 1)
    sim = scaled.T @ scaled
    np.fill_diagonal(sim, 0)
    rows = np.arange(n_users)[:, None]
    hits = []
    for score in (first @ sim, np.broadcast_to(first.sum(axis=0), first.shape)):
        score = np.where(first > 0, -np.inf, score)
        hits.append(second[rows, np.argsort(-score, axis=1)[:, :10]].sum(axis=1).mean())
    return hits


def test_personal_taste_gives_collaborative_signal():
    # One segment, one category: only personal taste can make co-occurrence
    # beat popularity.
    kw = dict(n_users=500, n_items=300, n_categories=1, n_segments=1,
              mean_purchases=20, p_repeat=0.0, seed=5)
    knn, pop = _knn_vs_popularity_hits(make_purchases(**kw))
    assert knn > 1.2 * pop
    knn0, pop0 = _knn_vs_popularity_hits(make_purchases(**kw, taste_strength=0.0))
    assert knn0 < 1.1 * pop0


def test_drift_moves_category_mix_towards_the_end():
    def late_minus_early(drift):
        data = make_purchases(n_users=1500, n_items=400, n_categories=10,
                              mean_purchases=30, p_repeat=0.0,
                              p_complement=0.0, drift=drift, seed=7)
        order = _per_user_order(data)
        u = data.user_index[order]
        cat = data.item_category[data.item_index[order]]
        starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
        sizes = np.diff(np.r_[starts, u.size])
        last = starts + sizes - 1
        pos = np.arange(u.size) - np.repeat(starts, sizes)
        early = pos < np.repeat((sizes - 1) // 2, sizes)
        same = cat == np.repeat(cat[last], sizes)
        same[last] = False
        owner = np.repeat(np.arange(starts.size), sizes)
        n_early = np.bincount(owner, early, starts.size)
        n_late = np.bincount(owner, ~early, starts.size) - 1
        share_early = np.bincount(owner, same & early, starts.size) / np.maximum(n_early, 1)
        share_late = np.bincount(owner, same & ~early, starts.size) / np.maximum(n_late, 1)
        both = (n_early > 0) & (n_late > 0)
        return np.mean((share_late - share_early)[both])
    drifting, steady = late_minus_early(1.0), late_minus_early(0.0)
    assert drifting > 0.05
    assert abs(steady) < 0.03


def test_small_and_degenerate_sizes():
    data = make_purchases(n_users=1, n_items=2, n_categories=1, n_segments=1,
                          mean_purchases=2, seed=0)
    assert len(data) == 2
    assert set(data.item_index.tolist()) == {0, 1}
    assert data.category_complements.shape == (1, 1)


def test_chunked_simulation_keeps_invariants(monkeypatch):
    monkeypatch.setattr(_ecommerce, "_MAX_SEEN_CELLS", 100 * 50)
    data = make_purchases(n_users=450, n_items=100, n_categories=5,
                          mean_purchases=8, seed=2)   # 5 chunks of 100 users
    pairs = np.unique(data.user_index * 100 + data.item_index)
    assert np.bincount(pairs // 100, minlength=450).min() >= 2
    again = make_purchases(n_users=450, n_items=100, n_categories=5,
                           mean_purchases=8, seed=2)
    assert np.array_equal(data.item_index, again.item_index)


def test_guide_table_draw_equals_inverse_cdf():
    rng = np.random.default_rng(0)
    sizes = np.array([1, 3, 50, 7])
    cat_of = np.repeat(np.arange(4), sizes)
    start = np.r_[0, np.cumsum(sizes)[:-1]]
    rank = np.arange(cat_of.size) - start[cat_of]
    pop = (rank + 1.0) ** -1.2
    within = np.cumsum(pop)
    within -= (within[start] - pop[start])[cat_of]
    within /= within[start + sizes - 1][cat_of]
    within[start + sizes - 1] = 1.0
    table = _ecommerce._guide_table(within, cat_of, sizes)
    cat = rng.integers(0, 4, 20_000)
    u = rng.random(20_000)
    got = _ecommerce._draw_within(within, table, cat, u)
    want = np.searchsorted(cat_of + within, cat + u, side="right")
    assert np.array_equal(got, want)
    assert np.array_equal(cat_of[got], cat)


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("kwargs, name", [
    (dict(n_users=0), "n_users"),
    (dict(n_users=-5), "n_users"),
    (dict(n_items=1), "n_items"),
    (dict(n_categories=0), "n_categories"),
    (dict(n_items=10, n_categories=11), "n_categories"),
    (dict(n_segments=0), "n_segments"),
    (dict(mean_purchases=1.5), "mean_purchases"),
    (dict(mean_purchases=float("nan")), "mean_purchases"),
    (dict(mean_purchases=float("inf")), "mean_purchases"),
    (dict(seed=-1), "seed"),
    (dict(n_days=0), "n_days"),
    (dict(latent_dim=0), "latent_dim"),
    (dict(taste_strength=-1.0), "taste_strength"),
    (dict(zipf_exponent=-0.5), "zipf_exponent"),
    (dict(zipf_exponent=50.0), "zipf_exponent"),
    (dict(mean_purchases=1e12), "n_users \\* mean_purchases"),
    (dict(p_repeat=1.5), "p_repeat"),
    (dict(p_complement=-0.1), "p_complement"),
    (dict(p_repeat=0.6, p_complement=0.6), "p_repeat \\+ p_complement"),
    (dict(drift=2.0), "drift"),
    (dict(consumable_fraction=1.1), "consumable_fraction"),
    (dict(mean_session_length=0.5), "mean_session_length"),
])
def test_bad_values_raise_value_error_naming_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        make_purchases(**kwargs)


@pytest.mark.parametrize("kwargs, name", [
    (dict(n_users=2.5), "n_users"),
    (dict(n_users=True), "n_users"),
    (dict(n_items="100"), "n_items"),
    (dict(seed="0"), "seed"),
    (dict(mean_purchases="25"), "mean_purchases"),
])
def test_bad_types_raise_type_error_naming_argument(kwargs, name):
    with pytest.raises(TypeError, match=f"`{name}`"):
        make_purchases(**kwargs)


def test_numpy_integers_are_accepted():
    data = make_purchases(n_users=np.int64(20), n_items=np.int32(30),
                          n_categories=3, seed=np.uint8(1))
    assert data.user_ids.size == 20 and data.item_ids.size == 30


# ------------------------------------------------------------------- export

def test_to_csv_round_trip_without_pandas(small, tmp_path):
    path = tmp_path / "purchases.csv"
    small.to_csv(path)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["user_id", "item_id", "timestamp", "quantity",
                       "category", "price"]
    body = rows[1:]
    assert len(body) == len(small)
    k = len(small) // 2
    assert body[k][0] == small.users[k] and body[k][1] == small.items[k]
    assert int(body[k][2]) == small.timestamps[k]
    assert int(body[k][3]) == small.quantities[k]
    assert int(body[k][4]) == small.item_category[small.item_index[k]]
    assert float(body[k][5]) == small.item_price[small.item_index[k]]
    assert re.fullmatch(r"\d+\.\d\d", body[k][5])


def test_to_csv_rejects_bad_path(small):
    with pytest.raises(TypeError, match="path"):
        small.to_csv(42)


def test_to_pandas(small, tmp_path):
    pd = pytest.importorskip("pandas")
    df = small.to_pandas()
    assert list(df.columns) == ["user_id", "item_id", "timestamp", "quantity",
                                "category", "price"]
    assert len(df) == len(small)
    assert np.array_equal(df["timestamp"].to_numpy(), small.timestamps)
    assert np.array_equal(df["category"].to_numpy(),
                          small.item_category[small.item_index])
    path = tmp_path / "p.csv"
    small.to_csv(path)
    back = pd.read_csv(path)
    assert list(back.columns) == list(df.columns)
    assert np.array_equal(back["user_id"].to_numpy().astype(str), small.users)
    assert np.allclose(back["price"].to_numpy(), df["price"].to_numpy())


def test_load_purchases_as_frame(default):
    pytest.importorskip("pandas")
    df = load_purchases(as_frame=True)
    assert len(df) == len(default)
    assert np.array_equal(df["item_id"].to_numpy().astype(str), default.items)
    assert isinstance(load_purchases(), EcommerceData)
