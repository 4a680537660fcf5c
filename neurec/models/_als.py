"""iALS training of dot-product models: the engine behind ``optimizers.ALS``.

``Model.fit`` hands over here when the model was compiled with
:class:`neurec.optimizers.ALS`. Python prepares the two CSR views of the
interaction matrix (users x items and items x users) and the augmented factor
tables once per fit; each half-sweep is a Gramian (``_core.als_gram``) and
chunks of row solves (``_core.als_solve``) run in C with the GIL released, so
Ctrl-C and callbacks get control between chunks (about every 0.2 s).

Bias augmentation (``MF(use_bias=True)``): with ``f`` factors, user rows are
``[p_u, b_u]`` and item rows ``[q_i, b_i]``. Solving users, the item side is
``[q_i, 1]`` with ``b_i`` as a fixed per-column offset; solving items, the user
side is ``[p_u, 1]`` with offset ``b_u``. A model with only one of the two
biases augments only that side.
"""
from typing import Any, Dict, Optional

import numpy as np

from neurec import _core, optimizers
from neurec.callbacks import CallbackList, History
from neurec.data.interactions import InteractionMatrix
from neurec.models._chunks import FIT_CHUNK_SECONDS, run_chunked
from neurec.models._dot import DotParts, dot_parts

_SOLVERS = {"cg": 0, "cholesky": 1}


def als_parts(model) -> DotParts:
    """The dot-product layers of ``model`` that ALS trains.

    Raises:
        ValueError: If the model's score is not ``monotone(p_u . q_i (+ biases))``.
    """
    names = model.input_names
    parts = None
    if len(names) == 2:
        parts = dot_parts(model, model.inputs[0], model.inputs[1])
    if parts is None:
        raise ValueError(
            f"optimizer=ALS needs a dot-product model whose score is user_vector . item_vector "
            f"(+ biases), such as neurec.models.MF, GMF, or Dot(axes=1)([Flatten(Embedding(users)), "
            f"Flatten(Embedding(items))]) with inputs [user, item]; model {model.name!r} is not "
            f"one. Train it with optimizer='adam' and a NegativeSampler, or start it from iALS "
            f"factors with neurec.models.from_ials")
    return parts


def as_interaction_matrix(x: Any, parts: DotParts, what: str = "x"):
    """``x`` as an InteractionMatrix no larger than the model's tables."""
    if hasattr(x, "_neurec_epoch") and hasattr(x, "matrix"):  # a NegativeSampler
        x = x.matrix
    if isinstance(x, InteractionMatrix):
        m = x
    elif hasattr(x, "tocsr") and hasattr(x, "shape"):
        m = InteractionMatrix.from_scipy(x)
    else:
        raise TypeError(
            f"fit with optimizer=ALS trains on the whole interaction matrix: pass {what}= an "
            f"InteractionMatrix (e.g. InteractionMatrix.from_arrays(user_ids, item_ids)) or a "
            f"scipy.sparse matrix of shape (n_users, n_items), not {type(x).__name__}; y must be "
            f"None (ALS needs no labels or sampled negatives)")
    nu, ni = parts.user.input_dim, parts.item.input_dim
    if m.shape[0] > nu or m.shape[1] > ni:
        raise ValueError(f"{what} has shape {m.shape} but the model's tables hold {nu} users and "
                         f"{ni} items: build the model with n_users >= {m.shape[0]} and "
                         f"n_items >= {m.shape[1]}")
    if m.data.size and (not np.all(np.isfinite(m.data)) or m.data.min() < 0):
        raise ValueError(f"{what}: interaction values must be finite and >= 0 (they set the "
                         "confidence 1 + alpha * r)")
    return m


def _csr(m, n_rows: int):
    """(indptr int64 of n_rows + 1, indices int32, values float32 or None) of m."""
    indptr = np.ascontiguousarray(m.indptr, np.int64)
    indices = np.ascontiguousarray(m.indices, np.int32)
    values = np.ascontiguousarray(m.data, np.float32)
    keep = values != 0
    if not keep.all():  # stored zeros are not interactions (p_ui = 1 only where r_ui > 0)
        rows = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))[keep]
        indptr = np.zeros(indptr.size, np.int64)
        np.cumsum(np.bincount(rows, minlength=indptr.size - 1), out=indptr[1:])
        indices, values = np.ascontiguousarray(indices[keep]), np.ascontiguousarray(values[keep])
    if indptr.size - 1 < n_rows:
        indptr = np.concatenate([indptr, np.full(n_rows + 1 - indptr.size, indptr[-1], np.int64)])
    if values.size and np.all(values == 1.0):
        values = None
    return indptr, indices, values


def _transpose(indptr, indices, values, n_cols: int):
    rows = np.repeat(np.arange(indptr.size - 1, dtype=np.int32), np.diff(indptr))
    order = np.argsort(indices, kind="stable")
    t_indptr = np.zeros(n_cols + 1, np.int64)
    np.cumsum(np.bincount(indices, minlength=n_cols), out=t_indptr[1:])
    t_values = None if values is None else np.ascontiguousarray(values[order])
    return t_indptr, np.ascontiguousarray(rows[order]), t_values


class ALSTrainer:
    """Factor tables and CSR views of one ALS fit (internal)."""

    def __init__(self, model, parts: DotParts, matrix, opt):
        self.model, self.parts, self.opt = model, parts, opt
        self.nu, self.ni = parts.user.input_dim, parts.item.input_dim
        self.f = parts.user.output_dim
        self.ub = parts.user_bias is not None
        self.ib = parts.item_bias is not None
        self.u_csr = _csr(matrix, self.nu)
        self.i_csr = _transpose(*self.u_csr, self.ni)
        self.nnz = int(self.u_csr[1].size)  # stored zeros dropped
        self._prepare_layers()
        # P = [p, b_u?], Q = [q, b_i?]: the rows solved (the embeddings themselves when
        # there is no bias to append)
        self.P = self._gather(parts.user, parts.user_bias)
        self.Q = self._gather(parts.item, parts.item_bias)
        self._cached: Dict[str, list] = {}

    def _prepare_layers(self) -> None:
        p = self.parts
        for d in list(p.steps) + ([p.gmf_dense] if p.gmf_dense is not None else []):
            d.kernel[...] = 1.0
            if getattr(d, "use_bias", False):
                d.bias[...] = 0.0
        # the plan (for predict, and the optimizer state save() writes) borrows these arrays
        self.model._get_plan()

    @staticmethod
    def _gather(emb, bias):
        if bias is None:
            return emb.embeddings  # solved in place
        return np.ascontiguousarray(np.hstack([emb.embeddings, bias.embeddings]), np.float32)

    def write_back(self) -> None:
        """Copy the augmented tables into the model's layers (no-op without biases)."""
        p, f = self.parts, self.f
        if self.ub:
            p.user.embeddings[...] = self.P[:, :f]
            p.user_bias.embeddings[:, 0] = self.P[:, f]
        if self.ib:
            p.item.embeddings[...] = self.Q[:, :f]
            p.item_bias.embeddings[:, 0] = self.Q[:, f]

    def _fixed(self, side: str):
        """(Y, offset) of the side held fixed while ``side`` ('u' or 'i') is solved."""
        f = self.f
        if side == "u":  # solve [p, b_u] against [q, 1] with offset b_i
            y = self.Q[:, :f]
            if self.ub:
                y = np.hstack([y, np.ones((self.ni, 1), np.float32)])
            off = self.Q[:, f] if self.ib else None
        else:
            y = self.P[:, :f]
            if self.ib:
                y = np.hstack([y, np.ones((self.nu, 1), np.float32)])
            off = self.P[:, f] if self.ub else None
        y = np.ascontiguousarray(y, np.float32)
        off = None if off is None else np.ascontiguousarray(off, np.float32)
        return y, off

    def _args(self, side: str, x, solver: Optional[int] = None, csr=None, gram: bool = True):
        y, off = self._fixed(side)
        d = y.shape[1]
        g = np.zeros((d, d), np.float32)
        yo = np.zeros(d, np.float32) if off is not None else None
        if gram:  # (not needed for the regularization term alone)
            _core.als_gram(y, off, g, yo)
        if csr is None:
            csr = self.u_csr if side == "u" else self.i_csr
        indptr, indices, values = csr
        o = self.opt
        return [indptr, indices, values, x, y, off, g, yo, float(o.alpha),
                float(o.regularization), float(o.nu),
                _SOLVERS[o.solver] if solver is None else solver, int(o.cg_steps)]

    def half_sweep(self, side: str, on_chunk=None) -> None:
        x = self.P if side == "u" else self.Q
        n = x.shape[0]
        # the users' system at the current items was already formed for the objective
        args = self._cached.pop(side, None) or self._args(side, x)

        def solve(r0: int, r1: int) -> None:
            _core.als_solve(*args, r0, r1)
            if on_chunk is not None:
                on_chunk()

        # C calls of about FIT_CHUNK_SECONDS, so Ctrl-C gets through between them
        run_chunked(solve, n, target_seconds=FIT_CHUNK_SECONDS, first=4096, minimum=64)

    def objective(self) -> float:
        """The full iALS objective at the current factors."""
        ua = self._args("u", self.P)
        ia = self._args("i", self.Q, gram=False)
        loss = _core.als_loss(*ua, 0, self.nu, True) + _core.als_loss(*ia, 0, self.ni, False)
        self._cached["u"] = ua  # valid until the items move: the next user half-sweep uses it
        return loss


def fit(model, x, y=None, epochs: int = 1, verbose="auto", callbacks=None,
        initial_epoch: int = 0):
    """``Model.fit`` for a model compiled with ``optimizers.ALS`` (see there)."""
    parts = als_parts(model)
    matrix = as_interaction_matrix(x, parts)
    if y is not None:
        raise ValueError("fit with optimizer=ALS takes no labels: pass y=None and the interaction "
                         "matrix as x (ALS weighs every unobserved cell, no negatives are sampled)")
    epochs = int(epochs)
    if epochs < 0 or int(initial_epoch) < 0:
        raise ValueError(f"epochs and initial_epoch must be >= 0, got {epochs}, {initial_epoch}")
    verbose = 1 if verbose == "auto" else int(verbose)
    tr = ALSTrainer(model, parts, matrix, model.optimizer)
    model.stop_training = False
    cbs = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=model,
                       verbose=verbose, epochs=epochs, steps=2)
    opt = model.optimizer
    logs: Dict[str, float] = {}
    cbs.on_train_begin()
    try:
        for epoch in range(int(initial_epoch), epochs):
            cbs.on_epoch_begin(epoch)
            for b, side in enumerate("ui"):
                cbs.on_train_batch_begin(b)
                tr.half_sweep(side)
                cbs.on_train_batch_end(b, {})
            opt.iterations += 1
            tr.write_back()
            epoch_logs = {"loss": tr.objective() / max(tr.nnz, 1)}
            cbs.on_epoch_end(epoch, epoch_logs)
            logs = epoch_logs
            if model.stop_training:
                break
    finally:
        tr.write_back()
    cbs.on_train_end(logs)
    return model.history if model.history is not None else next(
        (c for c in cbs.callbacks if isinstance(c, History)), None)


def partial_fit_users(model, users, interactions, opt=None) -> np.ndarray:
    """Solve the rows of ``users`` exactly against the fixed item side (see
    :meth:`neurec.models.Model.partial_fit_users`)."""
    parts = als_parts(model)
    if opt is None:
        opt = model.optimizer if isinstance(model.optimizer, optimizers.ALS) else optimizers.ALS()
    users = np.asarray(users)
    if users.ndim != 1 or users.size == 0 or users.dtype.kind not in "iu":
        raise ValueError("partial_fit_users: users must be a non-empty 1-D array of integer ids")
    users = users.astype(np.int64)
    if users.min() < 0:
        raise ValueError("partial_fit_users: user ids must be >= 0")
    if np.unique(users).size != users.size:
        raise ValueError("partial_fit_users: users must be distinct (one row of interactions each)")
    if isinstance(interactions, InteractionMatrix):
        m = interactions
    elif hasattr(interactions, "tocsr") and hasattr(interactions, "shape"):
        m = InteractionMatrix.from_scipy(interactions)
    else:
        raise TypeError("partial_fit_users: interactions must be an InteractionMatrix or a "
                        "scipy.sparse matrix with one row per entry of users and one column per "
                        f"item, got {type(interactions).__name__}")
    if m.shape[0] != users.size or m.shape[1] > parts.item.input_dim:
        raise ValueError(f"partial_fit_users: interactions has shape {m.shape}; expected "
                         f"({users.size}, <= {parts.item.input_dim}): one row per user")
    if m.data.size and (not np.all(np.isfinite(m.data)) or m.data.min() < 0):
        raise ValueError("partial_fit_users: interaction values must be finite and >= 0")
    need = int(users.max()) + 1
    if need > parts.user.input_dim:
        # new users' rows start at zero (an unsolved user scores 0, as one without
        # interactions solves to); the optimizer keeps every other row's state
        model.resize_embeddings({e.name: need for e in (parts.user, parts.user_bias)
                                 if e is not None}, initializer="zeros")
    return solve_user_rows(parts, users, m, opt)


def solve_user_rows(parts: DotParts, users: np.ndarray, m, opt) -> np.ndarray:
    """Solve the user rows ``users`` (and their biases) for the rows of ``m``, the item side
    fixed, and write them into the user tables; returns the vectors, ``(len(users), f)``.

    The item side is what multiplies the user vector in the score: ``q_i``, or ``h * q_i``
    for GMF's ``Dense(1)`` with kernel ``h`` (1 after an ALS fit, so the same rows).
    """
    tr = ALSTrainer.__new__(ALSTrainer)  # the item side only: no full matrix to index
    tr.parts, tr.opt = parts, opt
    tr.nu, tr.ni, tr.f = parts.user.input_dim, parts.item.input_dim, parts.user.output_dim
    tr.ub, tr.ib = parts.user_bias is not None, parts.item_bias is not None
    tr.Q = ALSTrainer._gather(parts.item, parts.item_bias)
    if parts.gmf_dense is not None and np.any(parts.gmf_dense.kernel != 1.0):
        tr.Q = tr.Q.copy() if tr.Q is parts.item.embeddings else tr.Q
        tr.Q[:, :tr.f] *= parts.gmf_dense.kernel[:, 0]
    x = np.zeros((users.size, tr.f + (1 if tr.ub else 0)), np.float32)
    args = tr._args("u", x, solver=_SOLVERS["cholesky"], csr=_csr(m, users.size))
    _core.als_solve(*args, 0, users.size)
    parts.user.embeddings[users] = x[:, :tr.f]
    if tr.ub:
        parts.user_bias.embeddings[users, 0] = x[:, tr.f]
    return x[:, :tr.f].copy()

