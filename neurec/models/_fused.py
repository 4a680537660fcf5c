"""The fused NeuMF / MLP scorer of ``recommend``: tower, GMF and top-K in one C call.

``recommend`` scores a model that is not a dot product through its hoisted pair model
(:func:`neurec.models.recommend.hoisted_pair_model`: the tower's first Dense split into a
user table and an item table). When that model has the common NCF shape,

    Dense(1, act)(Concatenate([tower, Multiply([p_u, q_i]), user / item vectors]))
    tower = Dense* (Activation(Add([zu_u, zi_i])))

(the parts in any order, each optional but at least one; every user- or item-side input
a ``Flatten(Embedding(id))``), :func:`ncf_parts` returns its pieces and
:meth:`NcfParts.topk` ranks the candidates of each user in C (``_core.ncf_topk``,
``csrc/include/neurec/nr_score_ncf.h``): items in cache-sized blocks, the tower as small
matrix products over SIMD lanes of items, a per-user heap fused in;
:meth:`NcfParts.topk_per_user` does the same for each user's own candidates (the
re-ranking of two-stage recommend, ``_core.ncf_topk_per_user``). Scores are the
generic path's bit for bit at the same SIMD level (the same sums in the same order), so
top-K ids and their tie order are the same too. Any other graph gives None and the
generic path (the compiled plan over pair blocks, then ``topk_rows``) runs.
"""
from typing import Callable, NamedTuple, Optional, Tuple

import numpy as np

from neurec import _core, activations
from neurec.evaluation.ranking import _num_threads as num_threads
from neurec.layers.core import Activation, Dense, Dropout, Embedding, Flatten
from neurec.layers.merging import Add, Concatenate, Multiply
from neurec.models._chunks import run_chunked

__all__ = ["NcfParts", "ncf_parts"]

# Private switch: tests turn it off to compare with the generic path.
ENABLED = True
_ACTS = ("linear", "relu", "sigmoid", "tanh")
_PARTS = dict(_core.NCF_PARTS)


class _Layer(NamedTuple):
    kernel: np.ndarray          # (n_in, n_out) float32
    bias: Optional[np.ndarray]  # (n_out,) float32 or None
    act: int                    # activation code


class _Part(NamedTuple):
    kind: int                   # _core.NCF_PARTS code
    user: Optional[np.ndarray]  # (n_users, width) float32 or None
    item: Optional[np.ndarray]  # (n_items, width) float32 or None


class _Model(NamedTuple):
    """The descriptor ``_core.ncf_topk`` reads by field name."""
    zu: Optional[np.ndarray]
    zi: Optional[np.ndarray]
    act0: int
    layers: Tuple[_Layer, ...]
    parts: Tuple[_Part, ...]
    pred_w: Optional[np.ndarray]
    pred_b: float
    out_act: int


class NcfParts:
    """A NeuMF / MLP model in the form the fused C scorer runs.

    Attributes:
        n_items: Rows of the item tables (the catalogue).
        tower_flops_per_pair: 2 x the multiply-adds of the tower's Dense layers after the
            hoisted one, per (user, item) pair (benchmarks report GFLOP/s of these).
        flops_per_pair: The same with the hoisted layer's addition and the prediction layer
            (chunk sizing).
    """

    def __init__(self, desc: _Model, n_items: int):
        self._desc = desc
        self.n_items = n_items
        tower = sum(2 * ly.kernel.size for ly in desc.layers)
        width0 = 0 if desc.zu is None else desc.zu.shape[1]
        d = 0 if desc.pred_w is None else desc.pred_w.size
        self.tower_flops_per_pair = tower
        self.flops_per_pair = tower + 2 * width0 + 2 * d

    def topk(self, users: np.ndarray, k: int, items: Optional[np.ndarray] = None,
             indptr: Optional[np.ndarray] = None, indices: Optional[np.ndarray] = None,
             rows: Optional[np.ndarray] = None,
             progress: Optional[Callable[[int], None]] = None) -> Tuple[np.ndarray, np.ndarray]:
        """The ``k`` best candidates of each user, in C across all cores.

        Args:
            users: int64 user ids.
            k: Entries per user (>= 1).
            items: Candidate item ids, sorted and distinct (default: every item).
            indptr, indices: CSR of candidates to skip, as positions in ``items`` (item ids
                without ``items``), ascending per row.
            rows: The CSR row of each user (``-1``: none).
            progress: Called with the number of users done after each C call.

        Returns:
            ``(ids, scores)`` of shape ``(len(users), k)``: item ids (-1 past the end) and
            the model's outputs (-inf past the end), best first, equal scores by id.
        """
        users = np.ascontiguousarray(users, np.int64)
        n = users.size
        ids = np.empty((n, k), np.int64)
        scores = np.empty((n, k), np.float32)
        n_cand = self.n_items if items is None else items.size
        if indptr is None:
            indices = rows = None

        def run(s: int, e: int) -> None:  # short C calls, so that Ctrl-C gets through
            _core.ncf_topk(self._desc, users[s:e], k, ids[s:e], scores[s:e], items=items,
                           indptr=indptr, indices=indices,
                           rows=None if rows is None else rows[s:e])
            if progress is not None:
                progress(e)

        per_user = max(1, n_cand * self.flops_per_pair)
        min_users = 16 * num_threads()
        run_chunked(run, n, first=max(min_users, (1 << 29) // per_user), minimum=min_users)
        return ids, scores

    def topk_per_user(self, users: np.ndarray, items: np.ndarray, k: int,
                      indptr: Optional[np.ndarray] = None, indices: Optional[np.ndarray] = None,
                      rows: Optional[np.ndarray] = None,
                      progress: Optional[Callable[[int], None]] = None
                      ) -> Tuple[np.ndarray, np.ndarray]:
        """The ``k`` best of each user's own candidates, in C across all cores: the
        re-ranking stage of two-stage recommend (``_core.ncf_topk_per_user``).

        Scores, ranking and ties are :meth:`topk`'s with the user's row as the candidate
        set (bit for bit).

        Args:
            users: int64 user ids.
            items: int64 ``(len(users), n)``: row ``r`` the candidate item ids of
                ``users[r]``, ascending apart from ``-1`` entries (padding, anywhere).
            k: Entries per user (>= 1).
            indptr, indices: CSR of items to skip (item ids, ascending per row).
            rows: The CSR row of each user (``-1``: none).
            progress: Called with the number of users done after each C call.

        Returns:
            ``(ids, scores)`` of shape ``(len(users), k)``: item ids (-1 past the user's
            candidates) and the model's outputs (-inf there), best first, equal scores by
            the lower id.

        Raises:
            IndexError: For ids out of range. ValueError: for a row that is not ascending,
            or shapes that do not match (messages name the argument).

        Example:
            >>> cands = np.sort(retriever.recommend(users, k=200)[0], axis=1)
            >>> ids, scores = parts.topk_per_user(users, cands, k=10)
        """
        users = np.ascontiguousarray(users, np.int64)
        items = np.ascontiguousarray(items, np.int64)
        n = users.size
        ids = np.empty((n, k), np.int64)
        scores = np.empty((n, k), np.float32)
        if indptr is None:
            indices = rows = None

        def run(s: int, e: int) -> None:  # short C calls, so that Ctrl-C gets through
            _core.ncf_topk_per_user(self._desc, users[s:e], items[s:e], k, ids[s:e], scores[s:e],
                                    indptr=indptr, indices=indices,
                                    rows=None if rows is None else rows[s:e])
            if progress is not None:
                progress(e)

        per_user = max(1, items.shape[-1] * self.flops_per_pair)
        min_users = 16 * num_threads()
        run_chunked(run, n, first=max(min_users, (1 << 29) // per_user), minimum=min_users)
        return ids, scores


def _act(fn) -> Optional[str]:
    name = activations.serialize(fn)
    return name if name in _ACTS else None


def _through_dropout(t):
    while isinstance(t.node.layer, Dropout):  # the identity when scoring
        t = t.node.inputs[0]
    return t


def _lookup(t, u_in, i_in) -> Optional[Tuple[str, np.ndarray]]:
    """``('u' | 'i', table)`` when ``t`` is ``Flatten(Embedding(user or item input))``."""
    t = _through_dropout(t)
    if not isinstance(t.node.layer, Flatten) or len(t.shape) != 2:
        return None
    src = t.node.inputs[0]
    emb = src.node.layer
    if not isinstance(emb, Embedding) or len(src.shape) != 3 or src.shape[1] != 1:
        return None
    ids = src.node.inputs[0]
    if ids is not u_in and ids is not i_in:
        return None
    return ("u" if ids is u_in else "i"), np.ascontiguousarray(emb.embeddings, np.float32)


def _pair(t, layer_type, u_in, i_in) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """``(user table, item table)`` when ``t`` is ``layer_type([user lookup, item lookup])``."""
    node = t.node
    if not isinstance(node.layer, layer_type) or len(node.inputs) != 2 or len(t.shape) != 2:
        return None
    sides = [_lookup(x, u_in, i_in) for x in node.inputs]
    if None in sides or {s for s, _ in sides} != {"u", "i"}:
        return None
    tables = dict(sides)
    if tables["u"].shape[1] != tables["i"].shape[1]:
        return None
    return tables["u"], tables["i"]


def _tower(t, u_in, i_in):
    """``(zu, zi, act0, layers)`` of ``Dense*(Activation(Add([zu_u, zi_i])))``, or None."""
    layers, pending = [], "linear"  # pending: an Activation above the layer met next
    while True:
        node, layer = t.node, t.node.layer
        if isinstance(layer, Dropout):
            t = node.inputs[0]
        elif isinstance(layer, Activation):
            act = _act(layer.activation)
            if act is None or pending != "linear":
                return None
            pending, t = act, node.inputs[0]
        elif isinstance(layer, Dense):
            act = _act(layer.activation)
            if act is None or len(node.inputs[0].shape) != 2 or layer.units < 2 \
                    or (act != "linear" and pending != "linear"):
                return None  # a 1-unit Dense sums in nr_dot's order: not a tower layer here
            act = act if pending == "linear" else pending
            bias = np.ascontiguousarray(layer.bias, np.float32) if layer.use_bias else None
            layers.append(_Layer(np.ascontiguousarray(layer.kernel, np.float32), bias,
                                 activations.CODES[act]))
            pending, t = "linear", node.inputs[0]
        else:
            tables = _pair(t, Add, u_in, i_in)
            if tables is None:
                return None
            return tables[0], tables[1], pending, tuple(reversed(layers))


def _segments(t) -> list:
    """The inputs of (nested) last-axis Concatenates of 2-D tensors, in order."""
    t = _through_dropout(t)
    layer = t.node.layer
    if isinstance(layer, Concatenate) and len(t.shape) == 2 and layer.axis in (-1, 1):
        return [s for x in t.node.inputs for s in _segments(x)]
    return [t]


def ncf_parts(model, u_in, i_in) -> Optional[NcfParts]:
    """The fused scorer's form of a model, or None when its graph is not the common NCF
    shape (see the module docstring) or the scorer is off.

    Args:
        model: A model with one ``(None, 1)`` output; usually the hoisted pair model.
        u_in, i_in: Its user-id and item-id inputs.

    Returns:
        An :class:`NcfParts` borrowing the model's weights (no copy), or None.

    Example:
        >>> parts = ncf_parts(fast, fast.inputs[0], fast.inputs[1])
        >>> ids, scores = parts.topk(np.arange(n_users), k=10)
    """
    if not ENABLED or len(model.outputs) != 1 or model.outputs[0].shape != (None, 1):
        return None
    t, out_act = model.outputs[0], "linear"
    while isinstance(t.node.layer, (Activation, Dropout)):
        if isinstance(t.node.layer, Activation):
            act = _act(t.node.layer.activation)
            if act is None or (act != "linear" and out_act != "linear"):
                return None
            out_act = act if act != "linear" else out_act
        t = t.node.inputs[0]
    code = activations.CODES
    layer = t.node.layer
    tower = None
    parts = []
    pred_w, pred_b = None, 0.0
    if isinstance(layer, Dense) and layer.units == 1 and len(t.node.inputs[0].shape) == 2:
        act = _act(layer.activation)
        if act is None or (act != "linear" and out_act != "linear"):
            return None
        out_act = act if act != "linear" else out_act
        pred_w = np.ascontiguousarray(layer.kernel[:, 0], np.float32)
        pred_b = float(layer.bias[0]) if layer.use_bias else 0.0
        for seg in _segments(t.node.inputs[0]):
            side = _lookup(seg, u_in, i_in)
            product = _pair(_through_dropout(seg), Multiply, u_in, i_in) if side is None else None
            if side is not None:
                kind = "user" if side[0] == "u" else "item"
                parts.append(_Part(_PARTS[kind], *((side[1], None) if kind == "user"
                                                    else (None, side[1]))))
            elif product is not None:
                parts.append(_Part(_PARTS["product"], *product))
            elif tower is None:
                tower = _tower(seg, u_in, i_in)
                if tower is None:
                    return None
                parts.append(_Part(_PARTS["tower"], None, None))
            else:
                return None
    else:  # no prediction layer: a 1-wide hoisted layer (an MLP whose only Dense was split)
        tower = _tower(t, u_in, i_in)
        if tower is None or tower[3] or tower[0].shape[1] != 1 \
                or (tower[2] != "linear" and out_act != "linear"):
            return None
        out_act = tower[2] if tower[2] != "linear" else out_act
        tower = (tower[0], tower[1], "linear", ())
    zu, zi, act0, layers = tower if tower is not None else (None, None, "linear", ())
    users = [x for x in [zu] + [p.user for p in parts] if x is not None]
    items = [x for x in [zi] + [p.item for p in parts] if x is not None]
    if not users or not items or len({x.shape[0] for x in users}) != 1 \
            or len({x.shape[0] for x in items}) != 1:
        return None
    desc = _Model(zu, zi, code[act0], layers, tuple(parts), pred_w, pred_b, code[out_act])
    return NcfParts(desc, items[0].shape[0])
