"""Top-K recommendation and full-catalog scoring for (user, item) models.

``Model.recommend`` scores every candidate item for each user and keeps the
``k`` best, skipping items the user has already seen:

* **Fast path.** When the model's score is a monotone function of a dot product
  ``f(u) . g(i) + b(i)`` (``MF``, ``GMF``, or a Keras graph ``Dot`` of two
  ``Flatten(Embedding(...))``, optionally plus id biases and a final
  sigmoid/``Dense(1)``), item vectors are streamed in cache-sized blocks
  through a fused multiply + top-K heap in C, across all cores.
* **Fused NCF path.** NeuMF and MLP (a tower over hoisted user and item tables,
  GMF's product, a ``Dense(1)`` prediction layer) are scored with the top-K in one
  C call (``_fused.py``); same scores and ties as the generic path. Two-stage
  ``candidates=`` re-ranks each user's own candidates the same way.
* **Generic path.** Any other model (hybrid models with side features, other
  graphs) is scored in C over blocks of (user, item) pairs with the
  compiled plan, then the top-K is selected in C.

Returned scores are always the model's own outputs for the chosen items.
"""
import gc
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from neurec import _core, activations, distribution
from neurec.data.encoders import IdEncoder
from neurec.evaluation.ranking import _core as rank_core
from neurec.evaluation.ranking import _num_threads as num_threads
from neurec.evaluation.ranking import _to_csr, top_k
from neurec.layers.core import Activation, Dense, Embedding, Flatten, Input, Reshape
from neurec.layers.merging import Add, Concatenate
from neurec.models import _retrieval
from neurec.models._chunks import run_chunked
from neurec.models._dot import dot_structure
from neurec.models._functional import run_numpy
from neurec.models._fused import ncf_parts
from neurec.utils.progbar import waiting_bar

__all__ = ["recommend", "score_items"]

_PAIRS_PER_BLOCK = 1 << 20
_COLLECT_BYTES = 16 << 20  # a hoisted scoring model this big is freed at the end of the call


def _as_ids(values: Any, name: str, fractional: type = ValueError) -> np.ndarray:
    """int64 ids from integers or whole-number floats; fractional ids raise ``fractional``
    (they must never be truncated to another id)."""
    a = np.asarray(values)
    if a.dtype == object or a.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be integer ids, got dtype {a.dtype}; map raw ids with an "
                        "IdEncoder first")
    a = a.ravel()
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.trunc(a)) | (np.abs(a) >= 2.0**63)
        if bad.any():
            raise fractional(f"{name} must be integer ids (whole numbers), got {a[bad][0]!r}; "
                             "truncating it would silently score another id")
    elif a.dtype == np.uint64 and a.size and a.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name}: id {a.max()} does not fit in int64; ids are 0..n-1")
    return a.astype(np.int64, copy=False)  # ids already int64: no copy


class _Roles:
    """Which model input carries users, items and side features."""

    def __init__(self, model, user_input, item_input, user_features, item_features):
        names = model.input_names
        if len(names) < 2:
            raise ValueError("recommend needs a model with a user input and an item input")
        self.uname = user_input or names[0]
        self.iname = item_input or names[1]
        for nm in (self.uname, self.iname):
            if nm not in names:
                raise ValueError(f"the model has no input {nm!r} (inputs: {names})")
        self.user_features = {k: np.asarray(v) for k, v in (user_features or {}).items()}
        self.item_features = {k: np.asarray(v) for k, v in (item_features or {}).items()}
        self.names = names
        for k in list(self.user_features) + list(self.item_features):
            if k not in names:
                raise ValueError(f"feature {k!r} is not a model input (inputs: {names})")
        for nm in names:
            if nm not in (self.uname, self.iname) and nm not in self.user_features \
                    and nm not in self.item_features:
                raise ValueError(f"model input {nm!r} is a side feature: pass its values per user in "
                                 f"user_features={{{nm!r}: array}} or per item in item_features=")
        self.u_in = model.inputs[names.index(self.uname)]
        self.i_in = model.inputs[names.index(self.iname)]
        self.n_users = self._table_size(model, self.u_in)
        self.n_items = self._table_size(model, self.i_in)
        if self.n_items is None:
            for v in self.item_features.values():
                self.n_items = v.shape[0]
        if self.n_items is None:
            raise ValueError(f"cannot tell the number of items: input {self.iname!r} feeds no Embedding")
        for k, v in self.item_features.items():
            if v.ndim == 0 or v.shape[0] < self.n_items:
                raise ValueError(f"item_features[{k!r}] has {v.shape[0] if v.ndim else 0} rows but the "
                                 f"catalog has {self.n_items} items: give one row per item id")
        for k, v in self.user_features.items():
            if v.ndim == 0 or (self.n_users is not None and v.shape[0] < self.n_users):
                raise ValueError(f"user_features[{k!r}] has {v.shape[0] if v.ndim else 0} rows but there "
                                 f"are {self.n_users} users: give one row per user id")

    @staticmethod
    def _table_size(model, tensor):
        for node in model._nodes_in_order:
            if isinstance(node.layer, Embedding) and node.inputs[0] is tensor:
                return node.layer.input_dim
        return None

    def pair_inputs(self, users, items):
        out = []
        for nm in self.names:
            if nm == self.uname:
                out.append(users.reshape(-1, 1))
            elif nm == self.iname:
                out.append(items.reshape(-1, 1))
            elif nm in self.user_features:
                out.append(self.user_features[nm][users])
            else:
                out.append(self.item_features[nm][items])
        return out


def hoisted_pair_model(model, roles, make_model: Callable, users: Optional[np.ndarray] = None):
    """A faster model for scoring many (user, item) pairs, or None.

    Every tensor that depends on the user id alone is computed once per user,
    every one that depends on the item id alone once per item, and both are
    looked up per pair from tables (Embedding layers holding the precomputed
    values). A ``Dense`` over ``Concatenate([user parts, item parts])`` (NCF's MLP
    tower input) is split: ``x_u W_u`` becomes a user table and ``x_i W_i + b`` an
    item table, so a pair costs an addition instead of the widest matrix product.
    Precomputation runs in float64 (the layers' ``call_numpy``): scores agree with
    ``predict`` to ~1e-6, and ``recommend`` reports ``predict``'s exact values.

    Args:
        model: The model.
        roles: Its user and item inputs.
        make_model: ``make_model(inputs, output, name=)`` builds the faster model
            (``neurec.models.Model``; passed in, so this module needs no model class).
        users: The user ids the faster model will score, or None for all: its user id
            ``j`` is then ``users[j]``, and only their user-side values are computed (a
            call for a block of users costs that block, not the whole user table).
    """
    if len(roles.names) != 2 or roles.n_users is None:
        return None
    u_in, i_in = roles.u_in, roles.i_in
    side = {id(u_in): "u", id(i_in): "i"}
    for node in model._nodes_in_order:
        sides = {side[id(t)] for t in node.inputs}
        side[id(node.outputs[0])] = sides.pop() if len(sides) == 1 else "p"
    if side[id(model.outputs[0])] != "p":
        return None
    # precompute every user-only and item-only tensor
    ni = roles.n_items
    users = (np.arange(roles.n_users, dtype=np.int64) if users is None
             else np.asarray(users, dtype=np.int64)).reshape(-1, 1)
    nu = users.shape[0]
    items = np.arange(ni, dtype=np.int64).reshape(-1, 1)
    uslot, islot = model.inputs.index(u_in), model.inputs.index(i_in)

    def values(ids, slot, s_, gather=False):
        # only the nodes on one side: the pair part of the model is not run
        nodes = [n for n in model._nodes_in_order if side[id(n.outputs[0])] == s_]
        over = None
        tabled = {id(n.layer) for n in nodes if model.inputs[slot] in n.inputs}
        if gather and all(isinstance(n.layer, Embedding) and n.inputs == [model.inputs[slot]]
                          for n in nodes if id(n.layer) in tabled):
            # the rows asked for stand in for the tables read by the id input: a block of
            # users costs the block, not the user tables converted to float64 (2x their size)
            uniq, ids = np.unique(ids, return_inverse=True)
            over = {(n.layer.name, 0): np.asarray(n.layer.embeddings[uniq], np.float64)
                    for n in nodes if id(n.layer) in tabled}
            ids = ids.reshape(-1, 1)
        xs = [None, None]
        xs[slot] = ids
        xs[1 - slot] = np.zeros((ids.shape[0], 1), np.int64)
        return run_numpy(model, xs, nodes=nodes, weights=over)[1]

    uvals = values(users, uslot, "u", gather=users.shape[0] < roles.n_users)
    ivals = values(items, islot, "i")
    nu_in = Input(shape=(1,), dtype="int64")
    ni_in = Input(shape=(1,), dtype="int64")
    mapped = {}
    tables = []

    def lookup(table, shape, user_side):
        table = np.ascontiguousarray(table.reshape(table.shape[0], -1), np.float32)
        emb = Embedding(table.shape[0], table.shape[1], embeddings_initializer="zeros")
        emb.embeddings[...] = table
        tables.append(emb)
        out = Flatten()(emb(nu_in if user_side else ni_in))
        return out if len(shape) == 2 else Reshape(shape[1:])(out)

    def get(t):
        if id(t) in mapped:
            return mapped[id(t)]
        s_ = side[id(t)]
        if s_ == "p":
            raise KeyError
        mapped[id(t)] = lookup((uvals if s_ == "u" else ivals)[id(t)], t.shape, s_ == "u")
        return mapped[id(t)]

    split = 0
    for node in model._nodes_in_order:
        out = node.outputs[0]
        if side[id(out)] != "p":
            continue
        layer = node.layer
        src = node.inputs[0] if node.inputs else None
        cat = src.node.layer if src is not None else None
        if isinstance(layer, Dense) and isinstance(cat, Concatenate) and len(src.shape) == 2 \
                and side[id(src)] == "p" and all(side[id(t)] in "ui" for t in src.node.inputs):
            w = layer.kernel.astype(np.float64)
            zu = np.zeros((nu, layer.units))
            zi = np.zeros((ni, layer.units)) + (layer.bias if layer.use_bias else 0.0)
            row = 0
            for part in src.node.inputs:
                width = part.shape[-1]
                if side[id(part)] == "u":
                    zu += uvals[id(part)].reshape(nu, -1) @ w[row:row + width]
                else:
                    zi += ivals[id(part)].reshape(ni, -1) @ w[row:row + width]
                row += width
            z = Add()([lookup(zu, (None, layer.units), True), lookup(zi, (None, layer.units), False)])
            act = activations.serialize(layer.activation)
            mapped[id(out)] = Activation(act)(z) if act != "linear" else z
            split += 1
            continue
        try:
            ins = [get(t) for t in node.inputs]
        except KeyError:
            return None
        clone = type(layer).from_config({k: v for k, v in layer.get_config().items() if k != "name"})
        res = clone(ins if layer._n_inputs is None else ins[0])
        if layer.weights:
            clone.set_weights(layer.get_weights())
        mapped[id(out)] = res
    if not split:
        return None  # nothing expensive to hoist: the plain model is as fast
    # user ids first, whatever the model's order: the caller scores through default roles
    fast = make_model([nu_in, ni_in], mapped[id(model.outputs[0])], name=model.name + "_scoring")
    return fast


def _pairs_scores(model, roles, users, items):
    with distribution._local():  # this rank's pairs (recommend splits its own work)
        out = model.predict(roles.pair_inputs(users, items), verbose=0)
    out = out.reshape(out.shape[0], -1)
    if out.shape[1] != 1:
        raise ValueError(f"recommend needs a model with one score per (user, item); the output "
                         f"shape is {model.output_shape}")
    return out[:, 0]


def _score_blocks(scorer, roles, users, cols):
    """Yield ``(start, users_block, scores)`` with ``scores`` of shape
    ``(len(users_block), len(cols))``, in blocks of about ``_PAIRS_PER_BLOCK`` pairs."""
    per = max(1, _PAIRS_PER_BLOCK // max(cols.size, 1))
    tiled = np.tile(cols, min(per, users.size))
    for s in range(0, users.size, per):
        ub = users[s:s + per]
        scores = _pairs_scores(scorer, roles, np.repeat(ub, cols.size), tiled[:ub.size * cols.size])
        yield s, ub, scores.reshape(ub.size, cols.size)


def score_items(model, users, items=None, user_input=None, item_input=None, user_features=None,
                item_features=None) -> np.ndarray:
    """Scores of every item (or of ``items``) for each user: ``(len(users), n_items)`` float32."""
    roles = _Roles(model, user_input, item_input, user_features, item_features)
    users = _as_ids(users, "users")
    cand = np.arange(roles.n_items, dtype=np.int64) if items is None else _as_ids(items, "items")
    out = np.empty((users.size, cand.size), np.float32)
    for s, ub, block in _score_blocks(model, roles, users, cand):
        out[s:s + ub.size] = block
    return out


def recommend(model, users, k: int = 10, exclude: Any = None, items: Any = None,
              user_features: Optional[Dict[str, Any]] = None,
              item_features: Optional[Dict[str, Any]] = None, user_input: Optional[str] = None,
              item_input: Optional[str] = None, user_encoder=None, item_encoder=None,
              unknown: str = "error", item_popularity: Optional[np.ndarray] = None,
              make_model: Optional[Callable] = None, verbose: Any = 0,
              since: Optional[float] = None, index=None, candidates=None,
              n_candidates: int = 200, gather_to: Optional[int] = None
              ) -> Tuple[np.ndarray, np.ndarray]:
    """``Model.recommend`` (see there), for ``model``.

    Args:
        item_popularity: Interaction counts per item for ``unknown='popular'`` (else
            counted from ``exclude``).
        make_model: Builds the faster scoring model of :func:`hoisted_pair_model`
            (``neurec.models.Model``); without it, models that are not dot products are
            scored as they are (same results, slower).
        verbose: The progress bar (:func:`neurec.utils.progbar.waiting_bar`), in users,
            updated between chunks of users; default silent.
        since: When the caller's call started (progbar clock), if earlier than this one.
        index, candidates, n_candidates: Approximate and two-stage retrieval (_retrieval.py).
        gather_to: With tables sharded by ``ModelParallel`` (a collective call: every rank
            passes the same users), the rank that gets the results, or None for every
            rank (the others get ``-1`` / ``-inf`` rows for known users); see
            ``_mp_score.py``.
    """
    bar = waiting_bar("recommend", verbose, None, unit_name="user", since=since)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if unknown not in ("error", "popular"):
        raise ValueError(f"unknown must be 'error' or 'popular', got {unknown!r}")
    roles = _Roles(model, user_input, item_input, user_features, item_features)
    raw_users = np.asarray(users).ravel()
    if raw_users.size == 0:
        raise ValueError("users is empty: pass at least one user id")
    if user_encoder is not None:
        try:
            u = np.asarray(user_encoder.transform(raw_users), dtype=np.int64)
        except ValueError:
            if unknown == "error":
                raise
            u = _transform_ignore(user_encoder, raw_users)
    else:
        if raw_users.dtype == object or raw_users.dtype.kind not in "iuf":
            raise TypeError("users must be integer ids (pass user_encoder= for raw ids)")
        u = _as_ids(raw_users, "users", fractional=TypeError)
    bar.target = u.size
    n_users = roles.n_users if roles.n_users is not None else int(u.max()) + 1
    known = (u >= 0) & (u < n_users)
    if not known.all() and unknown == "error":
        bad = raw_users[~known][:5].tolist()
        raise ValueError(f"unknown users {bad}: ids must be in [0, {n_users}); pass unknown='popular' "
                         "to recommend popular items to new users")
    n_items = roles.n_items
    if items is not None:
        cand = np.unique(_candidate_ids(items, item_encoder))
        if cand.size == 0 or cand.min() < 0 or cand.max() >= n_items:
            raise ValueError(f"items must be a non-empty set of ids in [0, {n_items}); add items "
                             "to the model with model.resize_embeddings")
    else:
        cand = None
    retired = _retired_in(model, n_items)
    if retired is not None and cand is not None:
        cand = np.setdiff1d(cand, retired, assume_unique=True)
    n_cand = (n_items - (0 if retired is None else retired.size)) if cand is None else cand.size
    if n_cand == 0:
        raise ValueError("every candidate item is retired (model.retire_items): there is "
                         "nothing to recommend; unretire_items brings items back")
    kk = min(int(k), n_cand)
    indptr = indices = None
    if exclude is not None:
        indptr, indices, shape = _to_csr(exclude, "exclude", n_cols=n_items)
        if shape[1] > n_items:
            raise ValueError(f"exclude has {shape[1]} items but the model knows {n_items}")
        if indptr.size - 1 < n_users:  # users without any row in exclude have nothing to skip
            indptr = np.concatenate([indptr, np.full(n_users + 1 - indptr.size, indptr[-1], np.int64)])
    ids = np.full((u.size, kk), -1, np.int64)
    scores = np.full((u.size, kk), -np.inf, np.float32)
    uk = np.flatnonzero(known)
    ku = u[uk]
    sharded = None  # ModelParallel: each rank ranks its item shard (_mp_score.py)
    if getattr(model, "_shards", None) is not None:
        sharded = model._shard_scorer(roles, retrieval=index is not None or
                                      candidates is not None)
    via = None  # ids through an index or a retriever (_retrieval.py)
    if index is not None or candidates is not None:
        via = _retrieval.topk(model, n_items, ku, kk, cand, indptr, indices, retired, index,
                              candidates, n_candidates, item_popularity,
                              _PairScorer(model, roles, ku, make_model))
        if via is not None:
            ids[uk] = via
    progress = lambda e: bar.update(e, finalize=False)  # noqa: E731
    if sharded is not None and uk.size:  # the owners' scores of the chosen items
        ids[uk], scores[uk] = sharded.topk(ku, kk, cand, retired, indptr, indices, make_model,
                                           progress, gather_to)
    elif via is None and uk.size:
        ids[uk] = rank_known(model, roles, ku, kk, cand, retired, indptr, indices, make_model,
                             progress=progress)[0]
    # exact model scores of the chosen items
    valid = ids[uk] >= 0
    if sharded is None and uk.size and valid.any():
        rr = np.repeat(ku, kk).reshape(ku.size, kk)[valid]
        sc = _pairs_scores(model, roles, rr, ids[uk][valid])
        sub = scores[uk]
        sub[valid] = sc
        scores[uk] = sub
    unk = np.flatnonzero(~known)
    if unk.size:
        row_ids, row_scores = _unknown_user_row(
            model, roles, kk, cand, retired, indptr, indices, item_popularity,
            average_user_scores if sharded is None else sharded.average_user_scores)
        ids[unk] = row_ids
        scores[unk] = row_scores
    bar.update(u.size, finalize=True)
    if item_encoder is not None:
        out = np.empty(ids.shape, dtype=object)
        ok = ids >= 0
        out[ok] = item_encoder.inverse_transform(ids[ok])
        out[~ok] = None
        return out, scores
    return ids, scores


def rank_known(model, roles, ku: np.ndarray, kk: int, cand: Optional[np.ndarray],
               retired: Optional[np.ndarray], indptr: Optional[np.ndarray],
               indices: Optional[np.ndarray], make_model: Optional[Callable],
               progress: Optional[Callable[[int], None]] = None
               ) -> Tuple[np.ndarray, np.ndarray]:
    """The ``kk`` best candidates of users ``ku`` (ids the model knows), exhaustively: the
    dot-product, fused NCF or generic path (see the module docstring).

    Args:
        cand: Sorted candidate ids (None: the catalogue), retired ones already removed.
        retired: Sorted retired ids (None: none).
        indptr, indices: CSR of items to skip, one row per user id (rows ``ku``).
        progress: Called with the number of users done, between C calls.

    Returns:
        ``(ids, ranking scores)`` of shape ``(len(ku), kk)``, best first (``-1`` /
        ``-inf`` past the candidates): the scores the top-K compared, equal ones ordered
        by id (on the dot-product path the exact score before the final activation, with
        the sign of the monotone steps; else the scoring model's outputs).
    """
    progress = progress or (lambda done: None)
    oid = np.full((ku.size, kk), -1, np.int64)
    osc = np.full((ku.size, kk), -np.inf, np.float32)
    if not ku.size:
        return oid, osc
    build = None
    if cand is None and len(roles.names) == 2:
        build = dot_structure(model, roles.u_in, roles.i_in)
    vecs = build(ku) if build is not None else None
    if vecs is not None:
        uv, iv, ib = vecs
        if retired is not None:  # a NaN score never enters the C top-K
            ib = np.zeros(iv.shape[0], np.float32) if ib is None else ib.copy()
            ib[retired] = np.nan
        rows = ku.copy()

        def score(s, e):  # users [s, e): short C calls so that Ctrl-C gets through
            _core.score_topk(uv[s:e], iv, ib, kk,
                             indptr, indices if indptr is not None else None,
                             rows[s:e] if indptr is not None else None, oid[s:e], osc[s:e])
            progress(e)

        per_user = max(1, iv.shape[0] * iv.shape[1])
        min_users = 64 * num_threads()
        run_chunked(score, ku.size, first=max(min_users, (1 << 26) // per_user),
                    minimum=min_users)
        return oid, osc
    fast = hoisted_pair_model(model, roles, make_model, users=ku) \
        if make_model is not None else None
    try:
        return _rank_pairs(model, roles, fast, ku, kk, cand, retired, indptr, indices, oid,
                           osc, progress)
    finally:
        if fast is not None and sum(w.nbytes for w in fast.weights) >= _COLLECT_BYTES:
            # the hoisted model's tables are the catalogue's size and, as every graph, it
            # holds reference cycles: free it now, or a loop of calls (the blocks of
            # recommend(output=)) keeps several until the collector runs (+30 MiB a block
            # at 100K items, up to 4 at once)
            fast = None
            gc.collect()


def _rank_pairs(model, roles, fast, ku, kk, cand, retired, indptr, indices, oid, osc,
                progress) -> Tuple[np.ndarray, np.ndarray]:
    """:func:`rank_known` past the dot-product path: fused NCF or generic, through the
    hoisted scoring model ``fast`` when there is one."""
    n_items = roles.n_items
    scorer, sroles, su = model, roles, ku  # su: the scorer's ids of the users ku
    if fast is not None:  # its user j is ku[j]
        scorer, sroles = fast, _Roles(fast, None, None, None, None)
        su = np.arange(ku.size, dtype=np.int64)
    if cand is None and retired is not None:
        cand = np.setdiff1d(np.arange(n_items, dtype=np.int64), retired, assume_unique=True)
    cols = np.arange(n_items, dtype=np.int64) if cand is None else cand
    if cols.size == 0:  # no candidate (a shard of ModelParallel may hold none)
        return oid, osc
    b_indptr, b_indices = indptr, indices
    if cand is not None and indptr is not None:
        # exclusions in candidate positions: blocks stay (users x candidates), and
        # positions sort like the (sorted) candidate ids, so ties break the same way
        pos = np.searchsorted(cand, indices)
        hit = cand[np.minimum(pos, cand.size - 1)] == indices
        row_of = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
        b_indptr = np.zeros_like(indptr)
        np.cumsum(np.bincount(row_of[hit], minlength=indptr.size - 1), out=b_indptr[1:])
        b_indices = pos[hit].astype(np.int32)
    fused = ncf_parts(scorer, sroles.u_in, sroles.i_in) if len(sroles.names) == 2 else None
    if fused is not None:  # NeuMF / MLP: tower, GMF and top-K fused in C (_fused.py)
        return fused.topk(su, kk, cand, b_indptr, b_indices, ku, progress=progress)
    for s, ub, block in _score_blocks(scorer, sroles, su, cols):
        # exclude was converted and checked once above; the C top-K reads it as is
        rows = ku[s:s + ub.size]
        bi, bs = rank_core().topk_rows(block, kk, indptr=b_indptr, indices=b_indices,
                                      row_users=rows if indptr is not None else None,
                                      n_threads=num_threads())
        if cand is not None:
            bi = np.where(bi >= 0, cand[np.maximum(bi, 0)], -1)
        oid[s:s + ub.size], osc[s:s + ub.size] = bi, bs
        progress(s + ub.size)
    return oid, osc


class _PairScorer:
    """The model's scores for users ``ku`` (two-stage re-ranking): ``scorer(j, items)``
    scores the pairs ``(ku[j], items)``, through the hoisted scoring model when there is
    one (built on first use); :meth:`topk` ranks per-user candidates in the fused C scorer
    when the model has its shape (NeuMF / MLP), as the exhaustive path does."""

    def __init__(self, model, roles, ku: np.ndarray, make_model: Optional[Callable]):
        self._args = model, roles, ku, make_model
        self._built = False

    def _build(self) -> None:
        if self._built:
            return
        model, roles, ku, make_model = self._args
        fast = hoisted_pair_model(model, roles, make_model, users=ku) \
            if make_model is not None else None
        if fast is not None:  # its user j is ku[j]
            self._scorer, self._roles = fast, _Roles(fast, None, None, None, None)
            self._su = None
        else:
            self._scorer, self._roles, self._su = model, roles, ku
        sr = self._roles
        self._fused = ncf_parts(self._scorer, sr.u_in, sr.i_in) if len(sr.names) == 2 else None
        self._built = True

    def __call__(self, j: np.ndarray, items: np.ndarray) -> np.ndarray:
        self._build()
        users = j if self._su is None else self._su[j]
        return _pairs_scores(self._scorer, self._roles, users, items)

    def topk(self, j: np.ndarray, items: np.ndarray, k: int) -> Optional[np.ndarray]:
        """The ``k`` best ids of each row of ``items`` (ascending, ``-1`` padded) for users
        ``ku[j]`` through the fused C scorer, or None for a model it does not run."""
        self._build()
        if self._fused is None:
            return None
        users = j if self._su is None else self._su[j]
        return self._fused.topk_per_user(users, items, k)[0]


def _candidate_ids(items: Any, item_encoder) -> np.ndarray:
    """Codes of the candidate ``items``: raw ids through ``item_encoder`` when there is one.

    Raises:
        ValueError: For raw ids the encoder does not know (naming up to five of them).
    """
    if item_encoder is None:
        return _as_ids(items, "items")
    raw = np.asarray(items).ravel()
    if raw.size == 0:
        return np.empty(0, np.int64)
    try:
        codes = np.asarray(item_encoder.transform(raw), dtype=np.int64)
    except ValueError:  # unknown ids: find them all (a copy of the encoder: error path only)
        codes = _transform_ignore(item_encoder, raw)
    bad = codes < 0
    if bad.any():
        raise ValueError(f"items: {int(bad.sum())} raw item id(s) are unknown to the item "
                         f"encoder ({', '.join(repr(v) for v in raw[bad][:5].tolist())}); a model "
                         "scores only items it knows (model.update adds new ones): drop them from "
                         "items=, or pass item_encoder=False to give codes")
    return codes


def _unknown_user_row(model, roles, kk: int, cand, retired, indptr, indices, item_popularity,
                      average: Optional[Callable] = None) -> Tuple[np.ndarray, np.ndarray]:
    """The recommendations of every unknown user (``unknown='popular'``): the ``kk`` most
    popular candidates, best first by the model's score for the average user
    (``average(model, roles, items)``, default :func:`average_user_scores`).

    Returns:
        ``(ids, scores)`` of shape ``(kk,)``: ``-1`` / ``-inf`` past the candidates.

    Raises:
        ValueError: If no popularity is known, or the model cannot score an average user.
    """
    n_items = roles.n_items
    pop = item_popularity
    if pop is None and indptr is not None:
        pop = np.bincount(indices, minlength=n_items).astype(np.float32)
    if pop is None:
        raise ValueError("unknown='popular' needs item popularity: pass exclude= (the training "
                         "interactions) or train with a NegativeSampler")
    pop = np.asarray(pop, np.float32)
    if pop.size < n_items:  # items added since (resize_embeddings): no interactions yet
        pop = np.concatenate([pop, np.zeros(n_items - pop.size, np.float32)])
    if cand is not None:
        mask = np.full(n_items, np.nan, np.float32)
        mask[cand] = pop[cand]
        pop = mask
    elif retired is not None:
        pop = pop.copy()
        pop[retired] = np.nan
    ids = top_k(pop, kk)[0][0]  # popularity first, ties by the lower id
    scores = np.full(kk, -np.inf, np.float32)
    ok = ids >= 0
    sc = (average or average_user_scores)(model, roles, ids[ok])
    order = np.argsort(-sc, kind="stable")  # equal scores keep the popularity order
    ids[:sc.size], scores[:sc.size] = ids[ok][order], sc[order]
    return ids, scores


def average_user_scores(model, roles, items: np.ndarray) -> np.ndarray:
    """The model's outputs for ``items`` and the average user: every Embedding table fed by
    the user ids replaced by its mean row (as a folded-in user's rows start with
    ``init='mean'``), float user side features by their mean. Computed in float64 through
    the layers' NumPy forward, returned as float32.

    Raises:
        ValueError: If the user input feeds no Embedding, or a user side feature is not a
            float array (a mean of category ids is not a category).
    """
    weights = {}
    for node in model._nodes_in_order:
        if isinstance(node.layer, Embedding) and node.inputs[0] is roles.u_in:
            weights[(node.layer.name, 0)] = node.layer.embeddings.mean(axis=0, dtype=np.float64,
                                                                       keepdims=True)
    if not weights:
        raise ValueError(f"unknown='popular': input {roles.uname!r} feeds no Embedding, so the "
                         "model has no average user to score the popular items with")
    n = items.size
    xs = []
    for nm in roles.names:
        if nm == roles.uname:
            xs.append(np.zeros((n, 1), np.int64))
        elif nm == roles.iname:
            xs.append(items.reshape(-1, 1))
        elif nm in roles.user_features:
            f = roles.user_features[nm]
            if f.dtype.kind != "f":
                raise ValueError(f"unknown='popular': user feature {nm!r} holds {f.dtype} values; "
                                 "an unknown user is scored with the mean features, which needs "
                                 "float features")
            xs.append(np.broadcast_to(f.mean(axis=0), (n,) + f.shape[1:]))
        else:
            xs.append(roles.item_features[nm][items])
    out, _ = run_numpy(model, xs, weights=weights)
    return np.asarray(out, np.float64).reshape(n, -1)[:, 0].astype(np.float32)


def _retired_in(model, n_items: int) -> Optional[np.ndarray]:
    """The model's retired items within the catalog (sorted), or None."""
    retired = getattr(model, "retired_items", None)
    if retired is None:
        return None
    retired = retired[retired < n_items]
    return retired if retired.size else None


def _transform_ignore(enc, raw):
    tmp = IdEncoder.from_config(enc.get_config())
    tmp.unknown = "ignore"
    return np.asarray(tmp.transform(raw), dtype=np.int64)
