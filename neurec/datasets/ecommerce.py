"""A seeded synthetic e-commerce purchase log with learnable structure.

``make_purchases`` simulates an online shop: a catalogue of products in
categories, customers in segments, and a year of purchases grouped into
shopping sessions. It needs nothing but NumPy, takes well under a second for
the default 125,000 purchases, and returns bit-identical arrays for the same
seed and NumPy version (it draws from ``numpy.random.default_rng(seed)``).
It exists so that neurec can ship a realistic default data set: the licensed
public ones cannot be redistributed.

The generative story
--------------------
Catalogue.
    Category shares are drawn from a Dirichlet(2) and every category gets at
    least one of the ``n_items`` products. Inside a category, products have a
    Zipf-like popularity ``(rank + 1) ** -zipf_exponent``, so a few best
    sellers carry most of the sales. A ``consumable_fraction`` of categories
    are consumables (coffee, shampoo, ink): cheaper, bought in larger
    quantities and replenished. Prices are log-normal around a per-category
    level and end in ``.99``; ``item_price_band`` (0..4) is the price quintile
    of a product *within its category*, from budget (0) to premium (4). Each
    category has ``min(2, n_categories - 1)`` complementary categories
    (phone -> case, charger), in ``category_complements``. Every product has a
    hidden taste vector of ``latent_dim`` standard normals.

Customers.
    Customers fall into ``n_segments`` segments (sizes drawn from a
    Dirichlet(5)). A segment has a category mix drawn from a Dirichlet
    centred on the category shares (concentration 0.5 per category, so
    segments differ clearly), a preferred price band, and a mean taste
    vector. A customer's own category mix is a Dirichlet draw around the
    segment's (concentration 2), and their taste vector is 10 % segment,
    90 % personal (shares of variance): the personal part is the
    collaborative signal that segment averages cannot see. Tastes in
    categories drift: each customer also has a second, late category mix
    (drawn like the first) that their purchases move towards over their
    history, reaching weight ``drift`` at the last purchase. The number of
    purchases per customer is ``2 + Poisson(Gamma(1, mean_purchases - 2))``:
    at least two, heavy-tailed, with mean ``mean_purchases``.

A purchase, step by step (vectorised over all customers at once).
    1. Session: the first purchase opens a session; each later one opens a
       new session with probability ``1 / mean_session_length``.
    2. Intent, from one uniform draw ``r``:
       * replenish (``r < p_repeat``, from the third purchase on, if a
         consumable was bought in an earlier session): buy the most recent
         such consumable again;
       * complement (next ``p_complement`` of the range, from the second
         purchase on): shop in a category complementary to the previous
         purchase's;
       * otherwise browse: pick a category from the customer's own mix
         (early or late, see ``drift``).
    3. Choice (complement and browse): the customer looks at 32 products of
       the category, listed with probability proportional to
       ``sqrt(popularity)``, and buys one with probability proportional to
       ``sqrt(popularity) * exp(taste_strength * <u, v> / sqrt(latent_dim)
       - 0.5 * (price_band - segment_band) ** 2)`` (u, v: customer and
       product taste vectors). Products they already bought are skipped (if
       all 32 were, a random other product is bought). So purchases follow
       popularity x category mix x personal taste x price fit, and the latest
       purchase depends on the earlier ones, which makes leave-one-out by
       latest timestamp a meaningful task.
    4. Quantity: ``1 + Poisson(0.5)`` for consumables, ``1 + Poisson(0.05)``
       otherwise (mostly 1).

Time.
    Each customer is active for 25-100 % of the ``n_days`` window, starting
    at a random day; sessions fall on uniform days in that span at a
    time of day drawn from an evening / lunchtime / anytime mixture; items
    in a session are 20 s plus an exponential (mean 150 s) apart. A
    customer's timestamps are strictly increasing in purchase order (no
    ties), starting 2023-01-01T00:00:00Z. The log is sorted by timestamp.

Guarantees: every customer has at least two purchases of at least two
distinct products, so leave-one-out always leaves a training item.
"""
from __future__ import annotations

import dataclasses
import numbers
import os
from typing import TYPE_CHECKING, Optional, Union

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["EcommerceData", "make_purchases", "load_purchases"]

_START_TIME = 1_672_531_200          # 2023-01-01T00:00:00Z
_DAY = 86_400
_N_PRICE_BANDS = 5
_N_COMPLEMENTS = 2
_N_CANDIDATES = 32                    # products seen before buying one
_SEGMENT_CONCENTRATION = 0.5          # per category; lower = more distinct segments
_USER_CONCENTRATION = 2.0             # higher = customers closer to their segment
_SEGMENT_TASTE_SHARE = 0.1            # share of taste variance common to a segment
_PRICE_SENSITIVITY = 0.5
_BROWSE_POWER = 0.5                   # listing order ~ popularity ** this
_ACTIVITY_SHAPE = 1.0                 # Gamma shape of purchases per customer
_MAX_PURCHASES = 1e9                  # memory guard (~100 bytes per purchase)
_MAX_SEEN_CELLS = 1 << 24             # bound on the customers x products "bought" mask


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class EcommerceData:
    """A purchase log with product and customer metadata.

    One row per purchase, sorted by timestamp. ``users[k]`` equals
    ``user_ids[user_index[k]]`` and ``items[k]`` equals
    ``item_ids[item_index[k]]``.

    Attributes:
        users: ``(n_purchases,)`` str, customer id of each purchase
            (``'C000123'``).
        items: ``(n_purchases,)`` str, product id (``'P00042'``).
        timestamps: ``(n_purchases,)`` int64 unix seconds.
        quantities: ``(n_purchases,)`` int64, units bought (>= 1, mostly 1).
        user_index: ``(n_purchases,)`` int64 row of the customer in
            ``user_ids``.
        item_index: ``(n_purchases,)`` int64 row of the product in
            ``item_ids``.
        item_ids: ``(n_items,)`` str product ids.
        item_category: ``(n_items,)`` int64 category in
            ``[0, n_categories)``.
        item_price: ``(n_items,)`` float64 unit price.
        item_price_band: ``(n_items,)`` int64 price quintile within the
            category, 0 (budget) to 4 (premium).
        user_ids: ``(n_users,)`` str customer ids.
        user_segment: ``(n_users,)`` int64 segment in ``[0, n_segments)``.
        category_consumable: ``(n_categories,)`` bool, replenished
            categories.
        category_complements: ``(n_categories, k)`` int64 complementary
            categories of each category.
    """

    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray
    quantities: np.ndarray
    user_index: np.ndarray
    item_index: np.ndarray
    item_ids: np.ndarray
    item_category: np.ndarray
    item_price: np.ndarray
    item_price_band: np.ndarray
    user_ids: np.ndarray
    user_segment: np.ndarray
    category_consumable: np.ndarray
    category_complements: np.ndarray

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])

    def __repr__(self) -> str:
        return (f"EcommerceData(n_purchases={len(self)}, "
                f"n_users={self.user_ids.shape[0]}, "
                f"n_items={self.item_ids.shape[0]}, "
                f"n_categories={self.category_consumable.shape[0]}, "
                f"n_segments={int(self.user_segment.max()) + 1})")

    def _columns(self) -> dict:
        return {
            "user_id": self.users,
            "item_id": self.items,
            "timestamp": self.timestamps,
            "quantity": self.quantities,
            "category": self.item_category[self.item_index],
            "price": self.item_price[self.item_index],
        }

    def to_pandas(self) -> pd.DataFrame:
        """Return the purchase log as a pandas DataFrame.

        Returns:
            A DataFrame with one row per purchase and the columns
            ``user_id, item_id, timestamp, quantity, category, price``.

        Raises:
            ImportError: If pandas is not installed
                (``pip install neurec[pandas]``).
        """
        try:
            import pandas as pd
        except ImportError as e:  # pragma: no cover - depends on environment
            raise ImportError(
                "EcommerceData.to_pandas() needs pandas; install it with "
                "`pip install pandas` (or `pip install neurec[pandas]`).") from e
        return pd.DataFrame(self._columns())

    def to_csv(self, path: Union[str, os.PathLike]) -> None:
        """Write the purchase log as a CSV file with a header row.

        The columns are those of ``to_pandas()``; prices have two decimals.
        pandas is not needed.

        Args:
            path: Destination file; it is overwritten if it exists.

        Raises:
            TypeError: If ``path`` is not a str or path-like object.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"to_csv: `path` must be a str or os.PathLike, "
                            f"got {type(path).__name__}.")
        cols = self._columns()
        text = [cols["user_id"].tolist(), cols["item_id"].tolist(),
                cols["timestamp"].astype(str).tolist(),
                cols["quantity"].astype(str).tolist(),
                cols["category"].astype(str).tolist(),
                np.char.mod("%.2f", cols["price"]).tolist()]
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(",".join(cols) + "\n")
            if len(self):
                f.write("\n".join(map(",".join, zip(*text))))
                f.write("\n")


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"make_purchases: `{name}` must be an integer, "
                        f"got {type(value).__name__} {value!r}.")
    if value < low:
        raise ValueError(f"make_purchases: `{name}` must be >= {low}, "
                         f"got {value}.")
    return int(value)


def _check_float(name: str, value, low: float, high: float = np.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"make_purchases: `{name}` must be a number, "
                        f"got {type(value).__name__} {value!r}.")
    value = float(value)
    if not (np.isfinite(value) and low <= value <= high):
        rng = f"in [{low}, {high}]" if np.isfinite(high) else f">= {low} and finite"
        raise ValueError(f"make_purchases: `{name}` must be {rng}, got {value}.")
    return value


def _format_ids(prefix: str, n: int, min_width: int) -> np.ndarray:
    width = max(min_width, len(str(n - 1)))
    return np.char.add(prefix, np.char.zfill(np.arange(n).astype(str), width))


def _rowwise_choice(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    # Inverse-CDF draw per row; cdf rows are cumulative probabilities.
    out = (cdf < u[:, None]).sum(axis=1)
    return np.minimum(out, cdf.shape[1] - 1)


def _dirichlet_around(rng, mean: np.ndarray, concentration: float) -> np.ndarray:
    # One Dirichlet(concentration * mean[k]) draw per row; a row whose gamma
    # draws all underflow to 0 falls back to its mean.
    g = rng.gamma(concentration * mean)
    total = g.sum(axis=1, keepdims=True)
    return np.where(total > 0, g / np.where(total > 0, total, 1.0), mean)


def _guide_table(within: np.ndarray, cat_of: np.ndarray, sizes: np.ndarray):
    # Chen & Asau guide table: one searchsorted now, about one comparison per
    # draw later (a plain searchsorted per draw is several times slower).
    # `within` is each category's CDF, ending at exactly 1.0.
    n_bins = 2 * sizes
    bin_start = np.concatenate(([0], np.cumsum(n_bins)[:-1]))
    bin_cat = np.repeat(np.arange(sizes.shape[0]), n_bins)
    level = (np.arange(bin_cat.shape[0]) - bin_start[bin_cat]) / n_bins[bin_cat]
    guide = np.searchsorted(cat_of + within, bin_cat + level, side="right")
    return guide, bin_start, n_bins


def _draw_within(within, table, cat: np.ndarray, u: np.ndarray) -> np.ndarray:
    # Inverse-CDF draw of one product of category cat[k] at quantile u[k].
    guide, bin_start, n_bins = table
    g = np.minimum((u * n_bins[cat]).astype(np.int64), n_bins[cat] - 1)
    j = guide[bin_start[cat] + g]
    todo = np.flatnonzero(within[j] <= u)
    while todo.size:   # a few passes: each bin spans about half a product
        j[todo] += 1
        todo = todo[within[j[todo]] <= u[todo]]
    return j


def make_purchases(n_users: int = 5000,
                   n_items: int = 2000,
                   n_categories: int = 20,
                   n_segments: int = 8,
                   mean_purchases: float = 25,
                   seed: Optional[int] = 0,
                   *,
                   n_days: int = 365,
                   latent_dim: int = 8,
                   taste_strength: float = 2.5,
                   zipf_exponent: float = 1.0,
                   p_repeat: float = 0.15,
                   p_complement: float = 0.25,
                   drift: float = 0.5,
                   consumable_fraction: float = 0.3,
                   mean_session_length: float = 2.0) -> EcommerceData:
    """Generate a synthetic e-commerce purchase log.

    The generative story is in the module docstring. About
    ``n_users * mean_purchases`` purchases are generated.

    Args:
        n_users: Number of customers (>= 1).
        n_items: Number of products (>= 2 and >= ``n_categories``).
        n_categories: Number of product categories (>= 1).
        n_segments: Number of customer segments (>= 1).
        mean_purchases: Mean purchases per customer (>= 2; every customer
            has at least 2; ``n_users * mean_purchases <= 1e9``).
        seed: Seed of ``numpy.random.default_rng``; the same seed gives
            bit-identical arrays. ``None`` draws fresh entropy.
        n_days: Length of the time window in days (>= 1).
        latent_dim: Size of the hidden taste vectors (>= 1).
        taste_strength: Weight of personal/segment taste in product choice
            (>= 0); 0 leaves popularity, category mix and price only.
        zipf_exponent: Exponent of within-category popularity (in
            [0, 10]); 0 is uniform, larger is more concentrated.
        p_repeat: Probability that a purchase replenishes an earlier
            consumable (in [0, 1]).
        p_complement: Probability that a purchase is in a category
            complementary to the previous one (in [0, 1];
            ``p_repeat + p_complement <= 1``).
        drift: How far a customer's category mix moves from their early
            mix to a second, late mix over their history (in [0, 1]); the
            last purchase draws its category from the late mix with
            probability ``drift``.
        consumable_fraction: Expected share of consumable categories
            (in [0, 1]).
        mean_session_length: Mean purchases per shopping session (>= 1).

    Returns:
        An ``EcommerceData`` with the log sorted by timestamp.

    Raises:
        ValueError: If an argument is out of range; the message names it.
        TypeError: If an argument has the wrong type.

    Example:
        >>> from neurec.datasets import make_purchases
        >>> shop = make_purchases(n_users=100, n_items=200, seed=0)
        >>> shop.user_ids.shape, shop.item_ids.shape
        ((100,), (200,))
        >>> shop.users[0] == shop.user_ids[shop.user_index[0]]    # raw id and 0..n-1 index
        True
        >>> bool((shop.timestamps[1:] >= shop.timestamps[:-1]).all())   # sorted by time
        True
    """
    data, _ = _simulate(n_users, n_items, n_categories, n_segments,
                        mean_purchases, seed, n_days=n_days,
                        latent_dim=latent_dim, taste_strength=taste_strength,
                        zipf_exponent=zipf_exponent, p_repeat=p_repeat,
                        p_complement=p_complement, drift=drift,
                        consumable_fraction=consumable_fraction,
                        mean_session_length=mean_session_length)
    return data


def load_purchases(*, as_frame: bool = False):
    """Return neurec's default synthetic purchase log.

    It is ``make_purchases()`` with its defaults: 5,000 customers, 2,000
    products in 20 categories, 8 segments, about 125,000 purchases over
    2023, seed 0. It is generated on each call (well under a second).

    Args:
        as_frame: If True, return ``make_purchases().to_pandas()`` instead
            (needs pandas).

    Returns:
        An ``EcommerceData``, or a pandas DataFrame if ``as_frame``.

    Example:
        >>> from neurec.datasets import load_purchases
        >>> shop = load_purchases()
        >>> shop.user_ids.shape, shop.item_ids.shape, shop.users[0][0], shop.items[0][0]
        ((5000,), (2000,), 'C', 'P')
    """
    data = make_purchases()
    return data.to_pandas() if as_frame else data


def _simulate(n_users, n_items, n_categories, n_segments, mean_purchases,
              seed, *, n_days, latent_dim, taste_strength, zipf_exponent,
              p_repeat, p_complement, drift, consumable_fraction,
              mean_session_length):
    """Run the simulation; return ``(EcommerceData, truth)``.

    ``truth`` holds the hidden parameters (in internal product order, with
    ``item_perm`` mapping internal to public product rows) for analyses that
    need an oracle.
    """
    n_users = _check_int("n_users", n_users, 1)
    n_items = _check_int("n_items", n_items, 2)
    n_categories = _check_int("n_categories", n_categories, 1)
    n_segments = _check_int("n_segments", n_segments, 1)
    if n_categories > n_items:
        raise ValueError(f"make_purchases: `n_categories` ({n_categories}) "
                         f"must be <= `n_items` ({n_items}): every category "
                         f"needs a product.")
    mean_purchases = _check_float("mean_purchases", mean_purchases, 2.0)
    if n_users * mean_purchases > _MAX_PURCHASES:
        raise ValueError(f"make_purchases: `n_users * mean_purchases` must be "
                         f"<= {_MAX_PURCHASES:.0e}, got {n_users} * "
                         f"{mean_purchases}; lower `mean_purchases` or "
                         f"`n_users`.")
    if seed is not None:
        seed = _check_int("seed", seed, 0)
    n_days = _check_int("n_days", n_days, 1)
    d = _check_int("latent_dim", latent_dim, 1)
    taste_strength = _check_float("taste_strength", taste_strength, 0.0)
    zipf_exponent = _check_float("zipf_exponent", zipf_exponent, 0.0, 10.0)
    p_repeat = _check_float("p_repeat", p_repeat, 0.0, 1.0)
    p_complement = _check_float("p_complement", p_complement, 0.0, 1.0)
    if p_repeat + p_complement > 1.0:
        raise ValueError(f"make_purchases: `p_repeat + p_complement` must be "
                         f"<= 1, got {p_repeat} + {p_complement}.")
    drift = _check_float("drift", drift, 0.0, 1.0)
    consumable_fraction = _check_float("consumable_fraction",
                                       consumable_fraction, 0.0, 1.0)
    mean_session_length = _check_float("mean_session_length",
                                       mean_session_length, 1.0)

    rng = np.random.default_rng(seed)
    C, S = n_categories, n_segments

    # ---- catalogue, internal order: by category, then by popularity rank
    cat_share = rng.dirichlet(np.full(C, 2.0))
    sizes = 1 + rng.multinomial(n_items - C, cat_share)
    cat_start = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    cat_end = cat_start + sizes
    cat_of = np.repeat(np.arange(C), sizes)
    rank = np.arange(n_items) - cat_start[cat_of]
    pop = (rank + 1.0) ** -zipf_exponent
    shown = pop ** _BROWSE_POWER     # the shop's listing: popularity, flattened
    log_rest = (1.0 - _BROWSE_POWER) * np.log(pop)   # the rest, in the choice
    within = np.cumsum(shown)
    within -= (within[cat_start] - shown[cat_start])[cat_of]
    within /= within[cat_end - 1][cat_of]
    within[cat_end - 1] = 1.0
    table = _guide_table(within, cat_of, sizes)

    consumable = rng.random(C) < consumable_fraction
    log_level = rng.normal(np.log(30.0), 0.8, C) - 1.0 * consumable
    log_price = log_level[cat_of] + rng.normal(0.0, 0.45, n_items)
    price = np.round(np.maximum(np.ceil(np.exp(log_price)) - 0.01, 0.99), 2)
    by_price = np.lexsort((price, cat_of))
    pos_in_cat = np.empty(n_items, np.int64)
    pos_in_cat[by_price] = np.arange(n_items) - cat_start[cat_of[by_price]]
    band = (pos_in_cat * _N_PRICE_BANDS) // sizes[cat_of]

    n_comp = min(_N_COMPLEMENTS, C - 1)
    if n_comp > 0:
        keys = rng.random((C, C))
        np.fill_diagonal(keys, 2.0)
        complements = np.argsort(keys, axis=1, kind="stable")[:, :n_comp]
    else:
        complements = np.zeros((C, 1), np.int64)
    complements = complements.astype(np.int64)
    item_vec = rng.standard_normal((n_items, d))

    # ---- customers
    seg_share = rng.dirichlet(np.full(S, 5.0))
    segment = np.minimum(np.searchsorted(np.cumsum(seg_share), rng.random(n_users),
                                         side="right"), S - 1)
    seg_mix = rng.dirichlet(np.maximum(_SEGMENT_CONCENTRATION * C * cat_share,
                                       1e-3), size=S)
    user_mix = _dirichlet_around(rng, seg_mix[segment], _USER_CONCENTRATION)
    late_mix = _dirichlet_around(rng, seg_mix[segment], _USER_CONCENTRATION)
    user_cdf = np.cumsum(user_mix, axis=1)
    late_cdf = np.cumsum(late_mix, axis=1)
    seg_band = rng.uniform(0.0, _N_PRICE_BANDS - 1.0, S)
    seg_taste = rng.standard_normal((S, d))
    user_vec = (np.sqrt(_SEGMENT_TASTE_SHARE) * seg_taste[segment]
                + np.sqrt(1.0 - _SEGMENT_TASTE_SHARE)
                * rng.standard_normal((n_users, d)))
    extra = rng.poisson(rng.gamma(_ACTIVITY_SHAPE,
                                  (mean_purchases - 2.0) / _ACTIVITY_SHAPE,
                                  n_users))
    counts = 2 + extra.astype(np.int64)

    # ---- purchases, user-major in `order` (most active first), time-ordered
    order = np.argsort(-counts, kind="stable")
    lens = counts[order]
    offsets = np.concatenate(([0], np.cumsum(lens)[:-1]))
    n_total = int(lens.sum())
    seq_item = np.empty(n_total, np.int64)
    seq_new = np.empty(n_total, bool)
    seq_mode = np.empty(n_total, np.int8)    # 0 browse, 1 complement, 2 repeat
    scale = taste_strength / np.sqrt(d)
    chunk = max(1, _MAX_SEEN_CELLS // n_items)
    for a in range(0, n_users, chunk):
        b = min(a + chunk, n_users)
        users = order[a:b]
        clens = lens[a:b]
        n = b - a
        seen = np.zeros((n, n_items), bool)
        prev_item = np.full(n, -1, np.int64)
        avail = np.full(n, -1, np.int64)     # consumable from an earlier session
        pending = np.full(n, -1, np.int64)   # consumable from this session
        active = np.searchsorted(-clens, -np.arange(clens[0]), side="left")
        for t, m in enumerate(active.tolist()):
            u = users[:m]
            rows = np.arange(m)
            new = (np.ones(m, bool) if t == 0
                   else rng.random(m) < 1.0 / mean_session_length)
            moved = new & (pending[:m] >= 0)
            avail[:m][moved] = pending[:m][moved]
            pending[:m][new] = -1

            r = rng.random(m)
            repeat = (r < p_repeat) & (avail[:m] >= 0) & (t >= 2)
            comp = ((r >= p_repeat) & (r < p_repeat + p_complement)
                    & (t >= 1))
            late = rng.random(m) < drift * t / np.maximum(clens[:m] - 1, 1)
            cat = _rowwise_choice(np.where(late[:, None], late_cdf[u], user_cdf[u]),
                                  rng.random(m))
            prev_cat = cat_of[np.maximum(prev_item[:m], 0)]
            comp_cat = complements[prev_cat, rng.integers(0, complements.shape[1], m)]
            cat = np.where(comp, comp_cat, cat)

            cand = _draw_within(within, table, np.repeat(cat, _N_CANDIDATES),
                                rng.random(m * _N_CANDIDATES))
            cand = cand.reshape(m, _N_CANDIDATES)
            score = scale * np.einsum("md,mkd->mk", user_vec[u], item_vec[cand])
            score += log_rest[cand]
            score -= _PRICE_SENSITIVITY * (band[cand]
                                           - seg_band[segment[u]][:, None]) ** 2
            score -= np.log(rng.standard_exponential(score.shape))  # Gumbel noise
            was_seen = seen[rows[:, None], cand]
            score[was_seen] = -np.inf
            item = cand[rows, np.argmax(score, axis=1)]
            fallback = (prev_item[:m] + 1 + rng.integers(0, n_items - 1, m)) % n_items
            item = np.where(was_seen.all(axis=1), fallback, item)
            item = np.where(repeat, avail[:m], item)

            idx = offsets[a:a + m] + t
            seq_item[idx] = item
            seq_new[idx] = new
            seq_mode[idx] = np.where(repeat, 2, np.where(comp, 1, 0))
            seen[rows, item] = True
            prev_item[:m] = item
            is_cons = consumable[cat_of[item]]
            pending[:m][is_cons] = item[is_cons]

    quantity = 1 + rng.poisson(np.where(consumable[cat_of[seq_item]], 0.5, 0.05))

    # ---- timestamps: sessions on days inside each customer's active span
    rank_row = np.repeat(np.arange(n_users), lens)
    life = n_days * rng.uniform(0.25, 1.0, n_users)
    begin = rng.uniform(0.0, n_days - life)
    sess_id = np.cumsum(seq_new) - 1
    owner = rank_row[seq_new]
    n_sess = owner.shape[0]
    day = np.floor(begin[owner] + life[owner] * rng.random(n_sess)).astype(np.int64)
    kind = rng.random(n_sess)
    hour = np.where(kind < 0.6, rng.normal(20.5, 2.0, n_sess),
                    np.where(kind < 0.9, rng.normal(12.5, 1.5, n_sess),
                             rng.uniform(0.0, 24.0, n_sess)))
    tod = np.floor(np.mod(hour, 24.0) * 3600.0).astype(np.int64)
    span = (n_days + 1) * _DAY
    sess_time = np.sort(owner * span + day * _DAY + tod) - owner * span
    gap = 20 + np.floor(rng.exponential(150.0, n_total)).astype(np.int64)
    gap[seq_new] = 0
    csum = np.cumsum(gap)
    ts = sess_time[sess_id] + csum - csum[seq_new][sess_id]
    # Strictly increasing within a customer: a long session can overrun
    # the start of the next one.
    pos = np.arange(n_total, dtype=np.int64)
    big = np.int64(1) << 40
    shifted = np.maximum.accumulate(ts - pos + rank_row * big)
    ts = shifted - rank_row * big + pos + _START_TIME

    # ---- public order: products shuffled, log sorted by time
    item_perm = rng.permutation(n_items)        # internal -> public row
    user_of_row = order[rank_row]
    log = np.lexsort((pos, user_of_row, ts))
    item_index = item_perm[seq_item[log]]
    user_index = user_of_row[log].astype(np.int64)

    item_ids = _format_ids("P", n_items, 5)
    user_ids = _format_ids("C", n_users, 6)
    pub_cat = np.empty(n_items, np.int64)
    pub_cat[item_perm] = cat_of
    pub_price = np.empty(n_items, np.float64)
    pub_price[item_perm] = price
    pub_band = np.empty(n_items, np.int64)
    pub_band[item_perm] = band

    data = EcommerceData(
        users=user_ids[user_index], items=item_ids[item_index],
        timestamps=ts[log].astype(np.int64),
        quantities=quantity[log].astype(np.int64),
        user_index=user_index, item_index=item_index.astype(np.int64),
        item_ids=item_ids, item_category=pub_cat, item_price=pub_price,
        item_price_band=pub_band, user_ids=user_ids,
        user_segment=segment.astype(np.int64),
        category_consumable=consumable, category_complements=complements)
    truth = dict(item_perm=item_perm, pop=pop, cat_of=cat_of, band=band,
                 item_vec=item_vec, user_vec=user_vec, user_mix=user_mix,
                 late_mix=late_mix, seg_mix=seg_mix, seg_band=seg_band, scale=scale,
                 mode=seq_mode[log], counts=counts)
    return data, truth
