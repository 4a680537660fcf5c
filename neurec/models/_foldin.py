"""Fold-in: user rows for users the model never saw, fitted with every other weight frozen.

A fold-in trains a *scratch* model: the model's own graph, rebuilt from its config, whose
user-id Embedding tables hold one row per new user and whose every other layer borrows
the model's arrays and is frozen (``trainable=False``: the C plan never writes them).
The scratch model is trained by the ordinary C ``fit`` on a
:class:`neurec.data.NegativeSampler` over the histories (negatives avoid each history's
items), with no Python per sample. Dot-product models (``MF``, ``GMF``, a ``Dot`` of two
embeddings) can instead solve each user row exactly against the fixed item side (the
iALS row solve of ``Model.partial_fit_users``, ``_als.solve_user_rows``).

``Model.fold_in`` copies the scratch rows into the model's grown user tables;
``Model.recommend(histories=...)`` ranks with the scratch model and throws it away.
"""
import warnings
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from neurec import distribution, initializers, losses, optimizers
from neurec.data.interactions import InteractionMatrix
from neurec.data.sampling import NegativeSampler
from neurec.layers.core import Embedding
from neurec.models import _als
from neurec.models import recommend as recommend_mod
from neurec.models._dot import dot_parts
from neurec.models._training import check_int, check_seed, default_seed
from neurec.utils import progbar
from neurec.utils.progbar import Progbar, waiting_bar

__all__ = ["FoldIn", "FoldInOptions", "fold_in_options", "histories_matrix", "scratch_model",
           "fit_rows"]

METHODS = ("auto", "sgd", "solve")
INITS = ("random", "mean")


class FoldInOptions(NamedTuple):
    """Checked settings of one fold-in (see ``Model.fold_in``)."""

    method: str              # 'sgd' or 'solve' (after 'auto' is resolved)
    epochs: int
    learning_rate: float
    num_negatives: int
    batch_per_user: int
    init: str
    seed: int


# chosen by measurement (benchmarks/bench_foldin.py, README "Fold-in")
DEFAULTS: Dict[str, Any] = {"epochs": 16, "learning_rate": 0.02, "num_negatives": 4,
                            "batch_per_user": 40, "init": "mean"}
# samples of one fold-in step at most: users are folded in group by group (rows are
# independent: the item side is fixed), so that a step's values (NeuMF: ~2 KB a sample) stay
# in cache: 1,000 users x 20 items on one thread take 0.33 s with steps of 4,096 samples,
# 0.70 s with steps of 12,500 (the same samples and row steps).
MAX_STEP_SAMPLES = 1 << 12


def fold_in_options(method: Any = "auto", epochs: Any = DEFAULTS["epochs"],
                    learning_rate: Any = DEFAULTS["learning_rate"],
                    num_negatives: Any = DEFAULTS["num_negatives"],
                    batch_per_user: Any = DEFAULTS["batch_per_user"],
                    init: Any = DEFAULTS["init"],
                    seed: Any = None) -> FoldInOptions:
    """Check the fold-in settings (``method`` still possibly ``'auto'``).

    Raises:
        TypeError: For non-integer counts or seed.
        ValueError: For values out of range or an unknown method or init.
    """
    if method not in METHODS:
        raise ValueError(f"fold_in: method must be one of {METHODS}, got {method!r}")
    if init not in INITS:
        raise ValueError(f"fold_in: init must be one of {INITS}, got {init!r}")
    epochs = check_int("fold_in", "epochs", epochs, 1, "e.g. epochs=8")
    num_negatives = check_int("fold_in", "num_negatives", num_negatives, 1, "e.g. num_negatives=4")
    batch_per_user = check_int("fold_in", "batch_per_user", batch_per_user, 1,
                               "e.g. batch_per_user=40")
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float, np.number)) \
            or not np.isfinite(learning_rate) or learning_rate <= 0:
        raise ValueError(f"fold_in: learning_rate must be a positive number, got {learning_rate!r}")
    seed = check_seed("fold_in", seed)
    return FoldInOptions(method, epochs, float(learning_rate), num_negatives, batch_per_user, init,
                         0 if seed is None else seed)


# -- histories ---------------------------------------------------------------------------
def histories_matrix(histories: Any, n_items: int, item_encoder=None,
                     unknown: str = "error") -> InteractionMatrix:
    """One row per history, one column per item: the histories as an InteractionMatrix.

    Args:
        histories: A list (or tuple) of item-id sequences; an InteractionMatrix or
            scipy.sparse matrix with one row per history is taken as it is.
        n_items: The catalog size.
        item_encoder: Maps raw item ids to the model's ids (optional).
        unknown: ``'error'``: an item outside the catalog raises; ``'ignore'``: it is
            dropped with a warning.

    Raises:
        TypeError: For a history that is not a sequence of ids.
        ValueError: For no histories, an empty history, or unknown items with
            ``unknown='error'``.
    """
    if unknown not in ("error", "ignore"):
        raise ValueError(f"fold_in: unknown must be 'error' or 'ignore', got {unknown!r}")
    if isinstance(histories, InteractionMatrix) or (hasattr(histories, "tocsr")
                                                    and hasattr(histories, "shape")):
        m = histories if isinstance(histories, InteractionMatrix) \
            else InteractionMatrix.from_scipy(histories)
        if m.shape[1] > n_items:
            raise ValueError(f"fold_in: histories has {m.shape[1]} item columns but the model "
                             f"knows {n_items} items")
        m = InteractionMatrix(m.indptr, m.indices, m.data, (m.shape[0], n_items))
        empty = np.flatnonzero(m.user_counts() == 0)
        if m.shape[0] == 0 or empty.size:
            raise ValueError(_empty_message(empty, m.shape[0]))
        return m
    if isinstance(histories, (str, bytes, dict)) or not isinstance(histories, (list, tuple)):
        raise TypeError("fold_in: histories must be a list of item-id lists (one per new user), "
                        f"an InteractionMatrix or a scipy.sparse matrix; got "
                        f"{type(histories).__name__}")
    if not histories:
        raise ValueError("fold_in: histories is empty: pass one list of items per new user")
    rows: List[np.ndarray] = []
    for r, h in enumerate(histories):
        if isinstance(h, (str, bytes, dict)) or np.ndim(h) != 1:
            raise TypeError(f"fold_in: history {r} must be a 1-D sequence of item ids, got "
                            f"{type(h).__name__}")
        rows.append(np.asarray(h))
    lens = np.array([a.size for a in rows], np.int64)
    flat = np.concatenate(rows) if lens.sum() else np.empty(0, np.int64)
    if item_encoder is not None:
        ids = _encode(item_encoder, flat)
    else:
        if flat.size and (flat.dtype == object or flat.dtype.kind not in "iuf"):
            raise TypeError(f"fold_in: histories must hold integer item ids, got dtype "
                            f"{flat.dtype}; attach an item encoder for raw ids")
        if flat.dtype.kind == "f" and flat.size and np.any(flat != np.trunc(flat)):
            raise TypeError("fold_in: item ids must be whole numbers")
        ids = flat.astype(np.int64)
        ids = np.where((ids >= 0) & (ids < n_items), ids, -1)
    bad = ids < 0
    if bad.any():
        shown = ", ".join(repr(v) for v in flat[bad][:5].tolist())
        if unknown == "error":
            raise ValueError(f"fold_in: {int(bad.sum())} history item(s) are unknown to the "
                             f"model ({shown}); pass unknown='ignore' to skip them")
        warnings.warn(f"fold_in: skipping {int(bad.sum())} unknown history item(s) ({shown})",
                      stacklevel=3)
    users = np.repeat(np.arange(lens.size, dtype=np.int64), lens)
    keep = ~bad
    m = InteractionMatrix.from_arrays(users[keep], ids[keep], shape=(lens.size, n_items),
                                      dedupe="max")
    empty = np.flatnonzero(m.user_counts() == 0)
    if empty.size:
        raise ValueError(_empty_message(empty, lens.size))
    return m


def _encode(enc, raw: np.ndarray) -> np.ndarray:
    if raw.size == 0:
        return np.empty(0, np.int64)
    tmp = type(enc).from_config(enc.get_config())
    tmp.unknown = "ignore"
    return np.asarray(tmp.transform(raw), np.int64)


def _empty_message(empty: np.ndarray, n: int) -> str:
    if n == 0:
        return "fold_in: histories is empty: pass one list of items per new user"
    return (f"fold_in: histories {empty[:5].tolist()} have no (known) items; a user is folded "
            "in from at least one item")


# -- the scratch model -------------------------------------------------------------------
def input_tables(model, u_in) -> List[Embedding]:
    """The Embedding layers that take the ids of input ``u_in`` (as ``resize_embeddings``
    finds them)."""
    return model._embeddings_by_input().get(u_in.node.layer.name, [])


def scratch_model(model, u_in, n_rows: int, init: str, seed: int):
    """A model with ``model``'s graph whose user tables have ``n_rows`` fresh rows and whose
    every other weight is ``model``'s own array, frozen.

    Returns:
        ``(scratch, tables)``: the scratch model and its user tables (trainable).
    """
    own = {l.name for l in input_tables(model, u_in)}
    config = model.get_config()
    for entry in config["layers"]:
        c = entry["config"] = dict(entry["config"])
        if c.get("name") in own:
            c["input_dim"] = int(n_rows)
            c["trainable"] = True
            c["embeddings_initializer"] = "zeros"
        elif "trainable" in c:
            c["trainable"] = False
            for key in c:  # borrowed below: allocate nothing worth drawing
                if key.endswith("_initializer"):
                    c[key] = "zeros"
    scratch = type(model).from_config(config)
    scratch._train_alone = True  # its fit never joins a distribution (_distributed.alone)
    tables = []
    for k, layer in enumerate(scratch.layers):
        src = model.get_layer(layer.name)
        if layer.name in own:
            layer.embeddings[...] = _initial_rows(src, n_rows, init, (seed + 7919 * k) % 2**64)
            tables.append(layer)
        else:
            _borrow(layer, src)
    return scratch, tables


def _initial_rows(src: Embedding, n: int, init: str, seed: int) -> np.ndarray:
    if init == "mean":
        return np.broadcast_to(src.embeddings.mean(axis=0, dtype=np.float64), (n, src.output_dim))
    # the rows a resize of the table would draw for n new ids: same seed, same rows
    return initializers.new_rows(src.embeddings_initializer, (src.input_dim + n, src.output_dim),
                                 src.input_dim, seed)


def _borrow(dst, src) -> None:
    """Make ``dst`` compute with ``src``'s weight arrays (no copy)."""
    new = []
    for (name, w, reg), (_, sw, _) in zip(dst._weights, src._weights):
        for attr, val in list(vars(dst).items()):
            if val is w:
                setattr(dst, attr, sw)
        new.append((name, sw, reg))
    dst._weights = new


# -- fitting -----------------------------------------------------------------------------
def fit_rows(model, scratch, matrix: InteractionMatrix, opts: FoldInOptions,
             progress: Optional[Callable[[int], None]] = None,
             rows: Optional[Tuple[int, int]] = None) -> None:
    """Train the scratch model's user rows on ``matrix`` (the C ``fit``).

    Users are fitted in groups of up to ``MAX_STEP_SAMPLES // batch_per_user``, in their
    order; a group's step takes ``batch_per_user`` samples per user of the group (every
    history's items with fresh negatives, shuffled), so an epoch is about ``(mean history
    length) x (1 + num_negatives) / batch_per_user`` steps, whether a user is folded in
    alone or with thousands of others. ``progress(users done)`` is called after each group.
    ``rows``: fit only the groups within these rows ``[lo, hi)`` (whole groups, see
    :func:`rank_rows`); a group trains the same whoever else is fitted.
    """
    loss = model.loss if model._compiled and not isinstance(model.optimizer, optimizers.ALS) \
        else losses.BinaryCrossentropy()
    # lazy Adam with each row's own step count for the bias correction: a row of a later group
    # starts as the first group's did (the global count would give it steps ~3x as large)
    scratch.compile(optimizer=optimizers.Adam(opts.learning_rate, catch_up=False), loss=loss)
    per_group = max(1, MAX_STEP_SAMPLES // opts.batch_per_user)
    lo, hi = rows if rows is not None else (0, matrix.shape[0])
    for group, start in enumerate(range(0, matrix.shape[0], per_group)):
        stop = min(matrix.shape[0], start + per_group)
        if start < lo or start >= hi:
            continue
        sampler = NegativeSampler(_rows(matrix, start, stop), num_negatives=opts.num_negatives,
                                  seed=(opts.seed + group) % 2**64)
        scratch.fit(sampler, epochs=opts.epochs, batch_size=opts.batch_per_user * (stop - start),
                    verbose=0, seed=(opts.seed + 0x9E37 * group) % 2**64)
        if progress is not None:
            progress(stop)


def _rows(m: InteractionMatrix, start: int, stop: int) -> InteractionMatrix:
    """``m`` with the entries of rows outside ``[start, stop)`` dropped (same shape)."""
    if start == 0 and stop == m.shape[0]:
        return m
    indptr = np.concatenate([np.zeros(start, np.int64),
                             m.indptr[start:stop + 1] - m.indptr[start],
                             np.full(m.shape[0] - stop, m.indptr[stop] - m.indptr[start])])
    lo, hi = m.indptr[start], m.indptr[stop]
    return InteractionMatrix(indptr, m.indices[lo:hi], m.data[lo:hi], m.shape)


def solve_rows(model, scratch, uslot: int, islot: int, matrix: InteractionMatrix,
               rows: Optional[Tuple[int, int]] = None) -> None:
    """Solve the scratch model's user rows exactly (dot-product models only): all of
    them, or ``rows`` ``[lo, hi)`` alone (each row is solved on its own)."""
    parts = dot_parts(scratch, scratch.inputs[uslot], scratch.inputs[islot])
    opt = model.optimizer if isinstance(model.optimizer, optimizers.ALS) else optimizers.ALS()
    lo, hi = rows if rows is not None else (0, matrix.shape[0])
    if hi > lo:
        part = InteractionMatrix(matrix.indptr[lo:hi + 1] - matrix.indptr[lo],
                                 matrix.indices[matrix.indptr[lo]:matrix.indptr[hi]],
                                 matrix.data[matrix.indptr[lo]:matrix.indptr[hi]],
                                 (hi - lo, matrix.shape[1]))
        _als.solve_user_rows(parts, np.arange(lo, hi), part, opt)


def rank_rows(n: int, method: str, opts: FoldInOptions) -> Optional[Tuple[int, int]]:
    """This rank's histories ``[lo, hi)`` of ``n`` under DataParallel with several
    processes (whole fit groups of ``fit_rows`` for ``'sgd'``, contiguous rows for
    ``'solve'``), or None on one process."""
    if distribution.size() < 2 or not isinstance(distribution.distribution(),
                                                 distribution.DataParallel):
        return None
    r, size = distribution.rank(), distribution.size()
    unit = max(1, MAX_STEP_SAMPLES // opts.batch_per_user) if method == "sgd" else 1
    groups = -(-n // unit)
    return min(n, groups * r // size * unit), min(n, groups * (r + 1) // size * unit)


def resolve_method(model, method: str, u_in, i_in) -> str:
    """'auto' as 'solve' or 'sgd'; 'solve' on a model that is not a dot product raises."""
    dot = len(model.inputs) == 2 and dot_parts(model, u_in, i_in) is not None
    if method == "solve" and not dot:
        raise ValueError("fold_in: method='solve' needs a dot-product model (MF, GMF, a Dot of "
                         "two embeddings); use method='sgd'")
    if method == "auto":
        return "solve" if dot and isinstance(model.optimizer, optimizers.ALS) else "sgd"
    return method


def fold_in_scratch(model, histories, uslot: int, islot: int, opts: FoldInOptions,
                    item_encoder=None, unknown: str = "error", bar: Optional[Progbar] = None,
                    split: bool = False) -> Tuple[Any, List[Embedding], InteractionMatrix]:
    """The scratch model with the histories' users fitted (see the module docstring).

    Args:
        uslot, islot: Positions of the user-id and item-id inputs.
        bar: A progress bar, in users (its target is set here), updated between groups.
        split: Under DataParallel with several processes, fit only this rank's rows
            (:func:`rank_rows`, then in ``scratch.fold_in_rows``; None when all).
    """
    u_in, i_in = model.inputs[uslot], model.inputs[islot]
    item_tables = input_tables(model, i_in)
    if not item_tables:
        raise ValueError("fold_in: the model's item input feeds no Embedding")
    n_items = item_tables[-1].input_dim
    matrix = histories_matrix(histories, n_items, item_encoder, unknown)
    if not input_tables(model, u_in):
        raise ValueError("fold_in: the model's user input feeds no Embedding: there are no user "
                         "rows to fit")
    method = resolve_method(model, opts.method, u_in, i_in)
    scratch, tables = scratch_model(model, u_in, matrix.shape[0], opts.init, opts.seed)
    progress = None
    if bar is not None:
        bar.target = matrix.shape[0]

        def progress(done: int) -> None:
            bar.update(done, [("stage", "fold-in")], finalize=False)
    rows = rank_rows(matrix.shape[0], method, opts) if split else None
    scratch.fold_in_rows = rows
    if method == "solve":
        solve_rows(model, scratch, uslot, islot, matrix, rows)
    else:
        fit_rows(model, scratch, matrix, opts, progress, rows)
    if bar is not None:
        bar.update(matrix.shape[0], [("stage", "fold-in")], finalize=True)
    return scratch, tables, matrix


def id_slots(model, user_input: Optional[str], item_input: Optional[str]) -> Tuple[int, int]:
    """Positions of the user-id and item-id inputs of a two-input model.

    Raises:
        ValueError: If the model does not have exactly a user and an item input.
    """
    names = model.input_names
    if len(names) != 2:
        raise ValueError(f"fold_in needs a model whose inputs are a user id and an item id; "
                         f"model {model.name!r} has inputs {names}")
    uname, iname = user_input or names[0], item_input or names[1]
    for nm in (uname, iname):
        if nm not in names:
            raise ValueError(f"fold_in: the model has no input {nm!r} (inputs: {names})")
    if uname == iname:
        raise ValueError(f"fold_in: user_input and item_input are both {uname!r}")
    return names.index(uname), names.index(iname)


class FoldIn:
    """``fold_in`` and ``recommend(histories=...)``: the part of ``Model`` that adds users
    without retraining (see the module docstring)."""

    def fold_in(self, histories: Any, users: Any = None, seed: Optional[int] = None,
                unknown: str = "error", method: str = "auto", epochs: int = DEFAULTS["epochs"],
                learning_rate: float = DEFAULTS["learning_rate"],
                num_negatives: int = DEFAULTS["num_negatives"],
                batch_per_user: int = DEFAULTS["batch_per_user"],
                init: str = DEFAULTS["init"],
                user_input: Optional[str] = None, item_input: Optional[str] = None
                ) -> np.ndarray:
        """Add users the model has never seen, from the items they interacted with.

        The new users get rows of their own in every user-id Embedding table
        (:meth:`resize_embeddings`) fitted to their histories while every other weight
        stays bit for bit as it is. With ``method='sgd'`` a copy of the model's graph
        holding only the new rows is trained by the C ``fit``: Adam, ``epochs`` passes over
        the histories with ``num_negatives`` fresh negatives per item (drawn outside each
        history), in steps of ``batch_per_user`` samples per user, so that a user trains the
        same way whether folded in alone or with thousands of others. With
        ``method='solve'`` (dot-product models: ``MF``, ``GMF``, a ``Dot`` of two
        embeddings) each row is the exact iALS solve against the fixed item side, as
        :meth:`partial_fit_users`. ``'auto'`` solves for a model compiled with
        :class:`neurec.optimizers.ALS` and trains otherwise (on item vectors learned with a
        logistic loss the solve ranks badly).

        With an attached user encoder (:meth:`attach_encoders`) the new users are named by
        raw ids (``users=`` or the keys of a dict) and the encoder learns them; an
        attached item encoder makes the histories raw item ids; an attached seen-matrix
        gains the histories, so ``recommend`` skips them. The optimizer's state grows
        with the tables (new rows start fresh); a later ``fit`` or ``update`` trains the
        new users like the others.

        Args:
            histories: One history per new user: a list of item-id lists, a dict
                ``{raw user id: item ids}``, or an :class:`neurec.data.InteractionMatrix`
                / scipy.sparse matrix with one row per user (encoded item ids).
            users: The new users' raw ids, one per history (needs a user encoder; the
                model refuses users it already knows).
            seed: Seed of the initial rows, the negatives and the order (default: neurec's
                global RNG, :func:`neurec.utils.set_random_seed`). With one thread the same
                seed gives the same rows bit for bit.
            unknown: ``'error'`` raises for history items the model does not know;
                ``'ignore'`` skips them with a warning.
            method: ``'auto'``, ``'sgd'`` or ``'solve'`` (see above).
            epochs, learning_rate, num_negatives, batch_per_user: The training of
                ``method='sgd'`` (defaults measured on ML-1M and generated data, README
                "Fold-in").
            init: Initial rows: ``'random'`` (the table's initializer, seeded) or
                ``'mean'`` (the mean of the existing rows).
            user_input, item_input: Names of the id inputs when not the first two.

        Returns:
            The new users' ids (int64 codes: rows of the user tables), one per history.

        Raises:
            TypeError: For histories that are not lists of ids, or non-integer settings.
            ValueError: For empty histories, unknown items (``unknown='error'``), known or
                repeated users, raw users without a user encoder (or an encoder without
                ``users=``), ``method='solve'`` on a model that is not a dot product, a
                model whose inputs are not a user id and an item id, or settings out of
                range. The model is unchanged when it raises.

        Example:
            >>> model.fit(NegativeSampler(train), epochs=20)
            >>> new = model.fold_in([[3, 17, 42], [5, 8]], seed=0)   # two new users
            >>> model.recommend(new, k=10, exclude=(np.repeat(new, [3, 2]), [3, 17, 42, 5, 8]))
        """
        if isinstance(histories, dict):
            if users is not None:
                raise ValueError("fold_in: pass users= or a dict {user: items}, not both")
            users, histories = list(histories.keys()), list(histories.values())
        uenc = self.user_encoder
        raw = None
        if users is not None:
            if uenc is None:
                raise ValueError("fold_in: users= names new users by raw id, which needs a user "
                                 "encoder: model.attach_encoders(user=encoder) first")
            raw = np.asarray(users)
            if raw.ndim != 1:
                raise ValueError(f"fold_in: users must be 1-D, got shape {raw.shape}")
            known = _encode(uenc, raw) >= 0
            if known.any():
                raise ValueError(f"fold_in: users {raw[known][:5].tolist()} are already in the "
                                 "model; fold_in adds new users (fit or update trains known ones)")
            if np.unique(raw).size != raw.size:
                raise ValueError("fold_in: users holds the same id twice")
        elif uenc is not None:
            raise ValueError("fold_in: the model has a user encoder: pass the new users' raw ids "
                             "(users= or a dict {user: items}) so that it learns them")
        options = dict(method=method, epochs=epochs, learning_rate=learning_rate,
                       num_negatives=num_negatives, batch_per_user=batch_per_user, init=init)
        scratch, tables, matrix = self._fold_in(histories, seed, self.item_encoder, unknown,
                                                user_input, item_input, options)
        n = matrix.shape[0]
        if raw is not None and raw.size != n:
            raise ValueError(f"fold_in: {raw.size} users for {n} histories")
        uslot = id_slots(self, user_input, item_input)[0]
        own = {t.name: t for t in input_tables(self, self.inputs[uslot])}
        rows = min(t.input_dim for t in own.values())
        if raw is not None:
            new_enc = uenc.copy().partial_fit(raw)
            ids = np.asarray(new_enc.transform(raw), np.int64)
        else:
            ids = np.arange(rows, rows + n, dtype=np.int64)
        need = max(rows, int(ids.max()) + 1)
        # everything is checked: from here on the model changes
        if any(t.input_dim < need for t in own.values()):
            self.resize_embeddings({name: need for name in own}, initializer="zeros")
        for t in tables:
            own[t.name].embeddings[ids] = t.embeddings
        if raw is not None:
            self.attach_encoders(user=new_enc)
        seen = self.seen_matrix
        if seen is not None:
            su, si, _ = seen.to_coo()
            hu, hi, _ = matrix.to_coo()
            shape = (max(seen.shape[0], need), max(seen.shape[1], matrix.shape[1]))
            self.attach_seen_matrix(InteractionMatrix.from_arrays(
                np.concatenate([su, ids[hu]]), np.concatenate([si, hi]), shape=shape,
                dedupe="max"))
        return ids

    def _fold_in(self, histories, seed, item_encoder, unknown, user_input, item_input,
                 options: Dict[str, Any], bar: Optional[Progbar] = None, split: bool = False):
        if seed is None:
            seed = default_seed()
            comm = distribution.communicator()
            if split and comm is not None and distribution.size() > 1:
                seed = comm.bcast(seed, root=0)  # every rank fits its rows as one process
        opts = fold_in_options(seed=seed, **options)
        uslot, islot = id_slots(self, user_input, item_input)
        scratch, tables, matrix = fold_in_scratch(self, histories, uslot, islot, opts,
                                                  item_encoder, unknown, bar, split)
        retired = self.retired_items
        if retired.size:
            scratch.retire_items(retired)
        return scratch, tables, matrix

    def _recommend_histories(self, histories, k: int, exclude, items, item_encoder, unknown,
                             seed, user_input, item_input, options, make_model,
                             verbose: Any = "auto", gather: str = "all"):
        """``recommend(histories=...)``: fold in on scratch rows, rank, keep the model as is.

        With ``verbose``, the fold-in and the ranking have a bar each (in users), shown
        once the whole call has run for two seconds. Under DataParallel with several
        processes each rank folds in and ranks its share of the histories (whole fit
        groups: the rows of one process) and the rows are gathered in rank order, on
        every rank (``gather='all'``) or on rank 0 (the others get None); tables sharded
        by ModelParallel are gathered first."""
        start = progbar._clock()
        if getattr(self, "_shards", None) is not None:  # the fold-in reads any item's row
            self._shards.unshard()
        verbose = verbose if distribution.is_main() else 0
        bar = waiting_bar("recommend", verbose, None, unit_name="user")
        if unknown not in ("error", "ignore"):
            raise ValueError(f"recommend with histories: unknown must be 'error' or 'ignore' "
                             f"(what to do with history items the model does not know), got "
                             f"{unknown!r}")
        if options is not None and not isinstance(options, dict):
            raise TypeError(f"recommend: fold_in_options must be a dict of fold_in settings, "
                            f"got {type(options).__name__}")
        scratch, _, matrix = self._fold_in(histories, seed, item_encoder, unknown, user_input,
                                           item_input, options or {}, bar, split=True)
        if exclude is None:
            exclude = matrix
        elif exclude is False:
            exclude = None
        else:
            raise ValueError("recommend with histories: exclude must be None (skip each "
                             "history's items) or False (skip nothing)")
        rows = scratch.fold_in_rows
        lo, hi = rows if rows is not None else (0, matrix.shape[0])
        mine = recommend_mod.recommend(
            scratch, np.arange(lo, hi, dtype=np.int64), k=k, exclude=exclude, items=items,
            item_encoder=item_encoder, make_model=make_model, verbose=verbose,
            since=start) if hi > lo else None
        if rows is None:
            return mine
        comm = distribution.communicator()  # every rank's rows, in rank order
        every = comm.allgather(mine) if gather == "all" else comm.gather(mine, root=0)
        if every is None:
            return None
        parts = [e for e in every if e is not None]
        return tuple(np.concatenate([p[j] for p in parts]) for j in range(2))
