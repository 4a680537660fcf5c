"""Approximate retrieval for dot-product models: ``Model.build_index`` and ``recommend(index=)``.

A model whose score is a monotone function of ``s(u, i) = p_u . q_i + b_i (+ c(u))``
(``MF``, ``GMF``, a ``Dot`` of two embeddings: :func:`neurec.models._dot.dot_structure`)
ranks items by maximum inner product (MIPS); the per-user term ``c(u)`` changes no user's
order. Each kind searches the space that measured best for it:

* **HNSW** searches inner products directly (a graph built under the inner product, as
  ip-NSW, Morozov & Babenko, NeurIPS 2018): items ``x_i = [q_i, b_i]``, queries
  ``y_u = [p_u, 1]``, so ``y_u . x_i = s(u, i)``. The standard reduction to L2 below
  builds a graph whose edges follow the extra coordinate rather than the direction when the
  item norms vary (popularity lives in the norm of trained embeddings): on a clustered
  1M-item catalogue it found 34% of the exact top 10 at ``ef_search`` 128, the graph under
  the inner product 99.7% at 32 (``benchmarks/bench_retrieval.py``).
* **IVF** clusters the L2-augmented vectors (Bachrach et al., RecSys 2014): with
  ``M^2 = max_i (|q_i|^2 + b_i^2)``,

      x_i = [q_i, b_i, sqrt(M^2 - |q_i|^2 - b_i^2)]     every |x_i|^2 = M^2
      y_u = [p_u, 1, 0]
      |y_u - x_i|^2 = |p_u|^2 + 1 + M^2 - 2 s(u, i)

  so a user's nearest items are its best. k-means cells of these vectors are balanced;
  cells under the inner product gather around the longest vectors and cost more per probe.

Search over-fetches: each user asks for ``k`` + its excluded items, the results are
filtered (exclusions, retired items: the latter also through the library's ID filter),
re-scored exactly in NumPy and sorted (equal scores by the lower id); a user left with
fewer than ``k`` asks again for twice as many. A user whose fetch passes
``1 / EXACT_SHARE`` of the catalogue (a heavy user with many excluded items, or a small
catalogue) is ranked exactly by the fused C scorer instead: a graph search that deep costs
more than the scan. The library is ``faiss-cpu`` (the ``neurec[ann]`` extra), imported on
first use; it runs on ``neurec.get_num_threads()`` threads.

Saved with the model (``saving.py``): the kind, its settings, the space it searches, a
fingerprint of the item side and the structure alone (the HNSW graph, the IVF centroids),
as plain arrays checked on load; the vectors are rebuilt from the model's weights. Nothing
is unpickled and no library blob is parsed.
"""
import contextlib
import warnings
import zlib
from typing import Any, Dict, Iterator, Optional, Tuple

import numpy as np

__all__ = ["ItemIndex", "build_index", "INSTALL_HINT", "KINDS", "SEARCH_SETTINGS"]

KINDS = ("exact", "hnsw", "ivf")
INSTALL_HINT = 'pip install "neurec[ann]"'
# defaults measured on a clustered 1M-item catalogue and on ml-1m (bench_retrieval.py)
_DEFAULTS = {"exact": {}, "hnsw": {"M": 32, "ef_construction": 200, "ef_search": 32},
             "ivf": {"nlist": 0, "nprobe": 0}}  # 0: chosen from the catalogue size
SEARCH_SETTINGS = {"exact": (), "hnsw": ("ef_search",), "ivf": ("nprobe",)}  # set_search
_SPACE = {"exact": "inner_product", "hnsw": "inner_product", "ivf": "l2_augmented"}
EXACT_SHARE = 32      # a user fetching more than 1/32 of the catalogue is ranked exactly
_MAX_PARAM = 1 << 20
_ADD_CHUNK = 1 << 15  # items per library call while building: Ctrl-C gets through
_GATHER = 1 << 22     # floats gathered per re-scoring block
_EXACT_FLOPS = 1 << 26  # multiply-adds per exact C call (Ctrl-C gets through between them)
_IVF_NPROBE = 32        # cells scanned by default
_IVF_TRAIN_PER_CELL = 64  # k-means training vectors per cell (faiss warns below 39)


def _faiss(kind: str):
    try:
        import faiss
    except ImportError:
        raise ImportError(f"build_index(kind={kind!r}) needs the faiss-cpu library: "
                          f"{INSTALL_HINT} (kind='exact' needs nothing)") from None
    return faiss


def augment_items(iv: np.ndarray, ib: Optional[np.ndarray]) -> np.ndarray:
    """``x_i = [q_i, b_i, sqrt(M^2 - |q_i|^2 - b_i^2)]`` (float32, computed in float64)."""
    n = iv.shape[0]
    b = np.zeros(n) if ib is None else ib.astype(np.float64)
    norms = np.einsum("ij,ij->i", iv, iv, dtype=np.float64) + b * b
    out = np.empty((n, iv.shape[1] + 2), np.float32)
    out[:, :-2] = iv
    out[:, -2] = b
    out[:, -1] = np.sqrt(np.maximum(norms.max(initial=0.0) - norms, 0.0))
    return out


def augment_users(uv: np.ndarray) -> np.ndarray:
    """``y_u = [p_u, 1, 0]`` (float32)."""
    out = np.zeros((uv.shape[0], uv.shape[1] + 2), np.float32)
    out[:, :-2] = uv
    out[:, -2] = 1.0
    return out


def ip_items(iv: np.ndarray, ib: Optional[np.ndarray]) -> np.ndarray:
    """``x_i = [q_i, b_i]`` (float32): the items of an inner-product index."""
    out = np.zeros((iv.shape[0], iv.shape[1] + 1), np.float32)
    out[:, :-1] = iv
    if ib is not None:
        out[:, -1] = ib
    return out


def ip_users(uv: np.ndarray) -> np.ndarray:
    """``y_u = [p_u, 1]`` (float32): ``y_u . x_i = p_u . q_i + b_i``."""
    out = np.ones((uv.shape[0], uv.shape[1] + 1), np.float32)
    out[:, :-1] = uv
    return out


@contextlib.contextmanager
def _threads(faiss) -> Iterator[None]:
    """faiss's OpenMP threads = ``neurec.get_num_threads()`` for the call."""
    from neurec import _threads as nthreads
    old = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(int(nthreads.get_num_threads()))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(old)


def _check_param(name: str, v: Any, fn: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= _MAX_PARAM:
        raise ValueError(f"{fn}: {name} must be an integer in [1, {_MAX_PARAM}], got {v!r}")
    return int(v)


def fingerprint(iv: np.ndarray, ib: Optional[np.ndarray]) -> int:
    """A CRC of (up to) 4096 evenly spaced item rows and every bias: training after
    ``build_index`` changes it, so a stale index is refused instead of silently used."""
    n = iv.shape[0]
    rows = np.unique(np.linspace(0, n - 1, min(n, 4096)).astype(np.int64))
    crc = zlib.crc32(np.ascontiguousarray(iv[rows], np.float32).tobytes())
    crc = zlib.crc32(np.asarray([n, iv.shape[1]], np.int64).tobytes(), crc)
    if ib is not None:
        crc = zlib.crc32(np.ascontiguousarray(ib, np.float32).tobytes(), crc)
    return int(crc)


def _params(kind: str, given: Dict[str, Any], n: int) -> Dict[str, int]:
    out = dict(_DEFAULTS[kind])
    for name, v in given.items():
        if name not in out:
            raise TypeError(f"build_index(kind={kind!r}) got an unknown setting {name!r}; its "
                            f"settings are {sorted(out) or 'none'}")
        out[name] = _check_param(name, v, "build_index")
    if kind == "ivf":
        if not out["nlist"]:
            out["nlist"] = int(min(max(1, n // 39), max(1, 4 * round(np.sqrt(n)))))
        out["nlist"] = min(out["nlist"], n)
        if not out["nprobe"]:
            out["nprobe"] = _IVF_NPROBE
        out["nprobe"] = min(out["nprobe"], out["nlist"])
    return out


class ItemIndex:
    """A nearest-neighbour index over a dot-product model's items (``Model.build_index``).

    Attributes:
        kind: ``'exact'``, ``'hnsw'`` or ``'ivf'``.
        n_items, dim: Its catalogue size and the model's factors.
        params: Its settings (``M``, ``ef_construction``, ``ef_search``; ``nlist``,
            ``nprobe``). The search-time ones change through :meth:`set_search`.
    """

    def __init__(self, kind: str, n_items: int, dim: int, params: Dict[str, int], crc: int,
                 index=None, keep=None):
        self.kind, self.n_items, self.dim = kind, n_items, dim
        self.params, self._crc, self._index = params, crc, index
        self._keep = keep  # an IVF quantizer: alive as long as its index

    def __repr__(self):
        return f"<ItemIndex kind={self.kind} n_items={self.n_items} {self.params}>"

    def check(self, iv: np.ndarray, ib: Optional[np.ndarray]) -> None:
        """Raise ValueError unless the index was built from these item vectors."""
        if iv.shape != (self.n_items, self.dim) or fingerprint(iv, ib) != self._crc:
            raise ValueError(f"index: this {self.kind} index was built for other item vectors "
                             f"({self.n_items} items x {self.dim}; the model now has "
                             f"{iv.shape[0]} x {iv.shape[1]}, or was trained since): call "
                             "model.build_index again")

    def set_search(self, **settings: int) -> "ItemIndex":
        """Trade recall for speed without rebuilding: ``ef_search`` (HNSW: candidates kept
        while walking the graph) or ``nprobe`` (IVF: cells scanned, at most ``nlist``).
        Larger is slower and finds more of the exact top-K. Saved with the model.

        Args:
            **settings: ``ef_search=`` for ``'hnsw'``, ``nprobe=`` for ``'ivf'``: integers
                in [1, 2**20].

        Returns:
            This index.

        Raises:
            TypeError: For a setting this kind has not.
            ValueError: For a value that is not a positive integer.

        Example:
            >>> idx = model.build_index("hnsw")
            >>> idx.set_search(ef_search=256)          # more recall, slower queries
            >>> ids, scores = model.recommend(users, k=10, index=idx)
        """
        allowed = SEARCH_SETTINGS[self.kind]
        for name in settings:
            if name not in allowed:
                raise TypeError(f"set_search: a {self.kind} index has the search settings "
                                f"{list(allowed) or 'none'}, not {name!r}")
        for name, v in settings.items():
            v = _check_param(name, v, "set_search")
            self.params[name] = min(v, self.params["nlist"]) if name == "nprobe" else v
        return self

    # -- search ---------------------------------------------------------------------
    def _search(self, faiss, q: np.ndarray, f: int, depth: int, sel) -> np.ndarray:
        """The ``f`` nearest of each query; ``depth`` = ``f`` / the fetch of a user without
        exclusions: a deeper fetch walks a wider graph / scans more cells."""
        if self.kind == "hnsw":
            sp = faiss.SearchParametersHNSW(efSearch=max(self.params["ef_search"], f), sel=sel)
        else:
            nprobe = min(self.params["nlist"], self.params["nprobe"] * depth)
            sp = faiss.SearchParametersIVF(nprobe=nprobe, sel=sel)
        return self._index.search(q, f, params=sp)[1]

    def _exact(self, out, g, uv, iv, ib, k, indptr, indices, rows, retired) -> None:
        """Rank users ``g`` exactly with the fused C scorer (exclusions, retired items)."""
        from neurec import _core
        if retired is not None:  # a NaN score never enters the C top-K
            ib = np.zeros(iv.shape[0], np.float32) if ib is None else ib.copy()
            ib[retired] = np.nan
        per = max(1, _EXACT_FLOPS // max(1, iv.size))
        for s in range(0, g.size, per):
            u = g[s:s + per]
            oid = np.empty((u.size, k), np.int64)
            osc = np.empty((u.size, k), np.float32)
            _core.score_topk(np.ascontiguousarray(uv[u]), iv, ib, k, indptr,
                             indices if indptr is not None else None,
                             np.ascontiguousarray(rows[u]) if indptr is not None else None,
                             oid, osc)
            out[u] = oid

    def topk(self, uv: np.ndarray, iv: np.ndarray, ib: Optional[np.ndarray], k: int,
             indptr: Optional[np.ndarray], indices: Optional[np.ndarray], rows: np.ndarray,
             retired: Optional[np.ndarray]) -> np.ndarray:
        """The ``k`` best items of each user (rows of ``uv``), ``-1`` past the available.

        Args:
            uv, iv, ib: ``dot_structure``'s user vectors, item vectors and item bias.
            k: Items per user.
            indptr, indices: CSR of excluded items (or None); ``rows[j]``: user j's row.
            retired: Sorted retired item ids, or None.
        """
        faiss = _faiss(self.kind)
        n, ni = uv.shape[0], self.n_items
        dead = np.zeros(ni, bool)
        sel = None
        if retired is not None:
            dead[retired] = True
            sel = faiss.IDSelectorNot(faiss.IDSelectorBatch(retired))
        if indptr is not None:
            starts, stops = indptr[rows], indptr[rows + 1]
            n_ex = stops - starts
        else:
            starts = stops = n_ex = np.zeros(n, np.int64)
        # items a user can still get: the live ones it has not seen
        ex_live = np.zeros(n, np.int64)
        if indptr is not None and n_ex.any():
            flat, owner = _rows_flat(indices, starts, n_ex)
            ex_live = np.bincount(owner, weights=~dead[flat], minlength=n).astype(np.int64)
        want = np.minimum(k, ni - int(dead.sum()) - ex_live)
        fetch = np.minimum(ni, k + n_ex)
        out = np.full((n, k), -1, np.int64)
        todo = np.arange(n)
        q_all = ip_users(uv) if self.kind == "hnsw" else augment_users(uv)
        deepest = max(k, ni // EXACT_SHARE)
        base = 1 << int(np.ceil(np.log2(k)))  # the fetch of a user without exclusions
        with _threads(faiss):
            while todo.size:
                # a graph search this deep visits more items than the scan scores, and a
                # fetch that keeps coming back short ends here too: rank them exactly
                deep = fetch[todo] > deepest
                if deep.any():
                    self._exact(out, todo[deep], uv, iv, ib, k, indptr, indices, rows, retired)
                    todo = todo[~deep]
                again = []
                f_of = 1 << np.ceil(np.log2(np.maximum(fetch[todo], 1))).astype(np.int64)
                for f in np.unique(f_of):
                    grp = todo[f_of == f]
                    f = int(min(f, ni))
                    per = max(1, _GATHER // (f * (self.dim + 1)))
                    for s in range(0, grp.size, per):
                        g = grp[s:s + per]
                        res = self._search(faiss, q_all[g], f, max(1, f // base), sel)
                        ids, got = self._rank(res, uv[g], iv, ib, dead, indptr, indices,
                                              rows[g], k)
                        out[g] = ids
                        short = got < want[g]
                        if short.any():
                            again.append(g[short])
                            fetch[g[short]] = 2 * f
                todo = np.concatenate(again) if again else np.empty(0, np.int64)
        return out

    @staticmethod
    def _rank(res, uv, iv, ib, dead, indptr, indices, rows, k) -> Tuple[np.ndarray, np.ndarray]:
        """Filter fetched ids ``res`` (-1: none), re-score them exactly, keep ``k`` per row
        (best first, equal scores by id). Returns ``(ids, how many survived)``."""
        b, f = res.shape
        ok = res >= 0
        safe = np.where(ok, res, 0)
        ok &= ~dead[safe]
        if indptr is not None:
            starts, n_ex = indptr[rows], indptr[rows + 1] - indptr[rows]
            if n_ex.any():
                flat, owner = _rows_flat(indices, starts, n_ex)
                ni = dead.size
                ex_keys = np.unique(owner * ni + flat)
                keys = np.arange(b, dtype=np.int64)[:, None] * ni + safe
                ok &= ~np.isin(keys, ex_keys, assume_unique=False)
        sc = np.einsum("bfd,bd->bf", iv[safe], uv, dtype=np.float32)
        if ib is not None:
            sc += ib[safe]
        sc = np.where(ok, sc, -np.inf)
        order = np.lexsort((safe, -sc), axis=-1)[:, :k]
        ids = np.take_along_axis(np.where(ok, safe, -1), order, axis=1)
        ids[np.take_along_axis(sc, order, axis=1) == -np.inf] = -1
        if ids.shape[1] < k:
            ids = np.concatenate([ids, np.full((b, k - ids.shape[1]), -1, np.int64)], axis=1)
        return ids, ok.sum(axis=1)

    # -- saving ------------------------------------------------------------------------
    def to_arrays(self) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
        """``(spec, arrays)``: JSON-able settings and the structure as plain arrays."""
        spec = {"kind": self.kind, "n_items": self.n_items, "dim": self.dim,
                "space": _SPACE[self.kind], "params": dict(self.params),
                "fingerprint": self._crc}
        arrays: Dict[str, np.ndarray] = {}
        if self.kind == "hnsw":
            faiss = _faiss(self.kind)
            h = self._index.hnsw
            spec["entry_point"], spec["max_level"] = int(h.entry_point), int(h.max_level)
            arrays = {"levels": faiss.vector_to_array(h.levels).astype("<i4"),
                      "offsets": faiss.vector_to_array(h.offsets).astype("<i8"),
                      "neighbors": faiss.vector_to_array(h.neighbors).astype("<i4")}
        elif self.kind == "ivf":
            faiss = _faiss(self.kind)
            arrays = {"centroids": self._index.quantizer.reconstruct_n(0, self.params["nlist"])}
        return spec, arrays


def _rows_flat(indices, starts, counts) -> Tuple[np.ndarray, np.ndarray]:
    """The entries of CSR rows (given by starts and counts), and the row of each."""
    owner = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    pos = np.arange(owner.size, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return indices[np.repeat(starts, counts) + pos].astype(np.int64), owner


def build_index(iv: np.ndarray, ib: Optional[np.ndarray], kind: str, **params) -> ItemIndex:
    """An :class:`ItemIndex` over item vectors ``iv`` and bias ``ib`` (``dot_structure``'s).

    Raises:
        ValueError: For an unknown kind or a bad setting (naming it).
        ImportError: For 'hnsw' / 'ivf' without faiss-cpu (naming the extra to install).
    """
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValueError(f"build_index: kind must be one of {KINDS}, got {kind!r}")
    n, d = iv.shape
    p = _params(kind, params, n)
    crc = fingerprint(iv, ib)
    if kind == "exact":
        return ItemIndex(kind, n, d, p, crc)
    faiss = _faiss(kind)
    quantizer = None
    with _threads(faiss):
        if kind == "hnsw":
            x = ip_items(iv, ib)
            index = faiss.IndexHNSWFlat(d + 1, p["M"], faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = p["ef_construction"]
        else:
            x = augment_items(iv, ib)
            quantizer = faiss.IndexFlatL2(d + 2)
            index = faiss.IndexIVFFlat(quantizer, d + 2, p["nlist"])
            m = _IVF_TRAIN_PER_CELL * p["nlist"]
            index.train(x if n <= m else x[np.random.default_rng(0).choice(n, m, replace=False)])
        for s in range(0, n, _ADD_CHUNK):
            index.add(x[s:s + _ADD_CHUNK])
    return ItemIndex(kind, n, d, p, crc, index, quantizer)


def _bad(what: str) -> ValueError:
    return ValueError(f"the saved index is invalid: {what}")


def _int(spec: Dict[str, Any], key: str, lo: int, hi: int) -> int:
    v = spec.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise _bad(f"{key} is {v!r}, not an integer in [{lo}, {hi}]")
    return v


def restore_index(spec: Any, arrays: Dict[str, np.ndarray], iv: np.ndarray,
                  ib: Optional[np.ndarray]) -> Optional[ItemIndex]:
    """The index ``to_arrays`` described, over the model's item vectors; every field and
    array is checked first (a model file is untrusted). An HNSW graph of an earlier
    neurec (over the L2-augmented vectors, no ``space``) is skipped with a warning: None.

    Raises:
        ValueError: For anything inconsistent (naming it), or item vectors other than
            those the index was built from.
        ImportError: For an HNSW / IVF index without faiss-cpu.
    """
    if not isinstance(spec, dict) or spec.get("kind") not in KINDS:
        raise _bad(f"kind must be one of {KINDS}")
    kind = spec["kind"]
    if spec.get("space") is None and kind == "hnsw":  # an earlier neurec's L2 graph
        warnings.warn("load_model: the saved hnsw index is skipped: an earlier neurec built it "
                      "over L2-augmented vectors, which miss much of the top-K on large "
                      "catalogues; call model.build_index('hnsw') again", UserWarning,
                      stacklevel=4)
        return None
    if spec.get("space", _SPACE[kind]) != _SPACE[kind]:
        raise _bad(f"a {kind} index searches the space {_SPACE[kind]!r}, not "
                   f"{spec.get('space')!r}")
    n, d = _int(spec, "n_items", 1, 1 << 40), _int(spec, "dim", 1, 1 << 20)
    crc = _int(spec, "fingerprint", 0, (1 << 32) - 1)
    params = spec.get("params")
    if not isinstance(params, dict) or set(params) != set(_DEFAULTS[kind]):
        raise _bad(f"params must hold exactly {sorted(_DEFAULTS[kind])}")
    p = {key: _int(params, key, 1, _MAX_PARAM) for key in params}
    want = {"hnsw": {"levels", "offsets", "neighbors"}, "ivf": {"centroids"}, "exact": set()}[kind]
    if set(arrays) != want:
        raise _bad(f"a {kind} index has the arrays {sorted(want)}, the file {sorted(arrays)}")
    if iv.shape != (n, d):
        raise _bad(f"it indexes {n} items x {d}, the model has {iv.shape[0]} x {iv.shape[1]}")
    if fingerprint(iv, ib) != crc:
        raise _bad("it was built from other item vectors than the saved weights")
    if kind == "exact":
        return ItemIndex(kind, n, d, p, crc)
    faiss = _faiss(kind)
    if kind == "ivf":
        x = augment_items(iv, ib)
        if p["nprobe"] > p["nlist"] or p["nlist"] > n:
            raise _bad("nprobe must be <= nlist <= n_items")
        c = arrays["centroids"]
        if c.dtype != np.float32 or c.shape != (p["nlist"], d + 2) or not np.isfinite(c).all():
            raise _bad(f"centroids must be finite float32 ({p['nlist']}, {d + 2})")
        quantizer = faiss.IndexFlatL2(d + 2)
        quantizer.add(np.ascontiguousarray(c))
        index = faiss.IndexIVFFlat(quantizer, d + 2, p["nlist"])
        index.is_trained = True
    else:
        x = ip_items(iv, ib)
        index = faiss.IndexHNSWFlat(d + 1, p["M"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = p["ef_construction"]
        h = index.hnsw
        cum = faiss.vector_to_array(h.cum_nneighbor_per_level).astype(np.int64)
        levels, offsets, nb = arrays["levels"], arrays["offsets"], arrays["neighbors"]
        top = _int(spec, "max_level", 0, cum.size - 2)
        entry = _int(spec, "entry_point", 0, n - 1)
        if levels.dtype != np.int32 or levels.shape != (n,) or levels.min() < 1 or \
                levels.max() != top + 1 or levels[entry] != top + 1:
            raise _bad(f"levels must be int32 ({n},) in [1, max_level + 1], the entry point's "
                       "the highest")
        if offsets.dtype != np.int64 or offsets.shape != (n + 1,) or offsets[0] != 0 or \
                not np.array_equal(np.diff(offsets), cum[levels]):
            raise _bad(f"offsets must be int64 ({n + 1},), from 0, {p['M']}-neighbour slots "
                       "per level")
        if nb.dtype != np.int32 or nb.shape != (int(offsets[-1]),) or \
                (nb.size and (nb.min() < -1 or nb.max() >= n)):
            raise _bad(f"neighbors must be int32 ({int(offsets[-1])},) ids in [-1, {n})")
        faiss.copy_array_to_vector(np.ascontiguousarray(levels), h.levels)
        faiss.copy_array_to_vector(offsets.astype(np.uint64), h.offsets)
        faiss.copy_array_to_vector(np.ascontiguousarray(nb), h.neighbors)
        h.entry_point, h.max_level = entry, top
        storage = faiss.downcast_index(index.storage)
        for s in range(0, n, _ADD_CHUNK):
            storage.add(x[s:s + _ADD_CHUNK])
        index.ntotal = n
        return ItemIndex(kind, n, d, p, crc, index)
    for s in range(0, n, _ADD_CHUNK):
        index.add(x[s:s + _ADD_CHUNK])
    return ItemIndex(kind, n, d, p, crc, index, quantizer)
