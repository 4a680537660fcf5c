"""Optimizers with Keras names, arguments, defaults and update formulas.

The update runs in C (``csrc/src/optim.c``). Optimizer state ("slots") is
NumPy arrays owned by the optimizer, one set per trainable weight, updated in
place.

Embedding tables get **sparse updates** by default: a batch updates only the
rows it touched, so the cost of a step grows with the batch, not with the
catalog. Dense Adam would also keep moving untouched rows (their moments decay
and keep pushing); with ``catch_up=True`` (the default) a row that comes back
after ``s`` skipped steps first gets those steps' effect in closed form
(``m * sum (b1/sqrt(b2))^j / (sqrt(v) + eps)``, ``m *= b1^s``, ``v *= b2^s``), which
matches dense Adam's accuracy at lazy cost. ``catch_up=False`` is plain lazy
Adam with per-row step counts (TensorFlow's LazyAdam). ``sparse_updates=False``
updates every row every step and reproduces Keras and PyTorch exactly.
"""
import numbers
from typing import Any, Dict, List, Mapping, MutableMapping, NamedTuple, Union

import numpy as np

from neurec import _core
from neurec._registry import resolve

__all__ = ["Optimizer", "SGD", "Adam", "Adagrad", "RMSprop", "ALS", "get", "serialize"]


def _positive(name: str, value: float, cls: str, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise ValueError(f"{cls}: {name} must be a {'non-negative' if allow_zero else 'positive'} "
                         f"finite number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{cls}: {name} must be a {'non-negative' if allow_zero else 'positive'} "
                         f"finite number, got {value}")
    return value


# Steps one optimizer may count: far beyond any training run, far below 2^63 so that
# the C core's step arithmetic (t + batches of a call) can never wrap around.
MAX_ITERATIONS = 2**62


def check_iterations(value: Any, what: str = "iterations") -> int:
    """``value`` as a step count in ``[0, MAX_ITERATIONS]``.

    Raises:
        TypeError: If ``value`` is not an integer.
        ValueError: If it is out of range.
    """
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{what} must be an integer step count, got {value!r}; "
                        "set it to 0 to restart Adam's bias correction")
    value = int(value)
    if not 0 <= value <= MAX_ITERATIONS:
        raise ValueError(f"{what} must be in [0, 2**62], got {value}; a negative or huge step "
                         "count would corrupt the optimizer (reset it to 0)")
    return value


class OptimizerSpec(NamedTuple):
    """An optimizer's settings as the C core reads them, by field name (``struct nr_optim``)."""

    kind: int              # neurec._core.OPTIMIZERS code
    learning_rate: float
    beta_1: float          # Adam
    beta_2: float          # Adam
    epsilon: float         # Adam, Adagrad, RMSprop
    momentum: float        # SGD, RMSprop
    rho: float             # RMSprop
    nesterov: bool         # SGD
    centered: bool         # RMSprop
    amsgrad: bool          # Adam
    catch_up: bool         # lazy rows: apply the skipped steps' decay in closed form


class Optimizer:
    """Base class of neurec optimizers.

    Attributes:
        learning_rate: A finite float >= 0; callbacks such as
            ``LearningRateScheduler`` set it between epochs (NaN, inf or a
            negative rate raise ``ValueError``).
        iterations: Number of update steps taken, an int in ``[0, 2**62]``
            (anything else raises ``TypeError``/``ValueError``).
        sparse_updates: Whether embedding tables get lazy row updates.
    """

    kind = -1
    n_slots = 0
    _built = False
    # slots that hold sums of squares (checked >= 0 when a model file is loaded)
    nonnegative_slots: tuple = ()

    def __init__(self, learning_rate: float, name: str, sparse_updates: bool = True,
                 catch_up: bool = True, **kwargs):
        for bad in ("clipnorm", "clipvalue", "global_clipnorm", "weight_decay", "use_ema"):
            if kwargs.pop(bad, None) not in (None, False):
                raise ValueError(f"{type(self).__name__}: argument {bad!r} is not supported by "
                                 "neurec's C optimizers; use an L2 regularizer instead of weight_decay")
        kwargs.pop("loss_scale_factor", None)
        kwargs.pop("gradient_accumulation_steps", None)
        kwargs.pop("ema_momentum", None)
        kwargs.pop("ema_overwrite_frequency", None)
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected arguments {sorted(kwargs)}")
        self.learning_rate = learning_rate
        self.name = name
        self.sparse_updates = bool(sparse_updates)
        self.catch_up = bool(catch_up)
        self.iterations = 0
        self._slots: List[tuple] = []

    # Both enter the C core's arithmetic (Adam's bias-correction tables are indexed by the
    # step), so they are checked where they are set, whoever sets them.
    @property
    def learning_rate(self) -> float:
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        # 0 is allowed (a schedule may freeze training, as in Keras); NaN, inf and < 0 are not
        self._learning_rate = _positive("learning_rate", value, type(self).__name__,
                                        allow_zero=True)

    @property
    def iterations(self) -> int:
        return self._iterations

    @iterations.setter
    def iterations(self, value: int) -> None:
        self._iterations = check_iterations(value, f"{type(self).__name__}.iterations")

    # -- state ---------------------------------------------------------------
    def _slot_init(self, i: int) -> float:
        return 0.0

    @property
    def built(self) -> bool:
        """Whether the state (slots) exists: a model builds it on its first fit, predict or
        evaluate (see :meth:`neurec.models.Model.build_optimizer`)."""
        return self._built

    def build(self, weights: List[np.ndarray], tables: List[bool]) -> None:
        """Create zeroed slots for ``weights``; ``tables[k]`` says whether weight ``k`` is an
        embedding table (lazy row updates, per-row step counts).

        Slots that already match (same shapes, same tables) are kept, so recompiling with the
        same optimizer object continues from its state. A table that grew (more rows, same
        width: ``Model.resize_embeddings``) keeps its rows' state bit for bit; its new rows
        start as a fresh table's do (initial slot values, per-row step count 0).
        """
        tables = [bool(t) for t in tables]
        if self._state_grows(weights, tables):
            self._slots = [self._grown(s, w) for s, w in zip(self._slots, weights)]
        elif not self._state_fits(weights, tables):
            self._slots = []
            for w, is_table in zip(weights, tables):
                slots = [np.full(w.shape, self._slot_init(i), dtype=np.float32)
                         if self._uses_slot(i) else None for i in range(3)]
                steps = np.zeros(w.shape[0], dtype=np.int64) if is_table else None
                self._slots.append((*slots, steps))
        self._built = True

    def _state_fits(self, weights: List[np.ndarray], tables: List[bool]) -> bool:
        if len(self._slots) != len(weights):
            return False
        for s, w, is_table in zip(self._slots, weights, tables):
            if any(a is not None and a.shape != w.shape for a in s[:3]):
                return False
            if (s[3] is not None) != is_table or (is_table and s[3].shape != (w.shape[0],)):
                return False
        return True

    def _state_grows(self, weights: List[np.ndarray], tables: List[bool]) -> bool:
        """Whether the state fits ``weights`` but for tables that gained rows."""
        if len(self._slots) != len(weights):
            return False
        grew = False
        for s, w, is_table in zip(self._slots, weights, tables):
            if (s[3] is not None) != is_table:
                return False
            if not is_table or s[3].shape[0] == w.shape[0]:
                if any(a is not None and a.shape != w.shape for a in s[:3]):
                    return False
                continue
            rows = s[3].shape[0]
            if rows > w.shape[0] or any(a is not None and a.shape != (rows,) + w.shape[1:]
                                        for a in s[:3]):
                return False
            grew = True
        return grew

    def _grown(self, slots: tuple, w: np.ndarray) -> tuple:
        """``slots`` of a table, with rows for ``w``'s new ids appended (fresh state)."""
        steps = slots[3]
        if steps is None or steps.shape[0] == w.shape[0]:
            return slots
        out = []
        for i, a in enumerate(slots[:3]):
            if a is not None:
                b = np.full(w.shape, self._slot_init(i), dtype=np.float32)
                b[:a.shape[0]] = a
                a = b
            out.append(a)
        # 0: the row never took a step. Lazy Adam (catch_up=False) counts a row's own steps
        # for its bias correction, so its first step is step 1 of fresh moments; catch-up
        # skips a row whose last step is 0 (nothing to decay: its slots hold initial values)
        new_steps = np.zeros(w.shape[0], np.int64)
        new_steps[:steps.shape[0]] = steps
        return (*out, new_steps)

    def _uses_slot(self, i: int) -> bool:
        return i < self.n_slots

    def variables(self) -> List[np.ndarray]:
        """All state arrays in a fixed order: the step count ``[iterations]`` (int64), then
        per weight its slots and, for an embedding table, its per-row step counts (int64).

        The slot arrays are the live state, not copies.
        """
        out = [np.array([self.iterations], dtype=np.int64)]
        for s in self._slots:
            out.extend(a for a in s if a is not None)
        return out

    def save_own_variables(self, store: MutableMapping[str, np.ndarray]) -> None:
        """Put :meth:`variables` into ``store`` under the keys ``'0'``, ``'1'``, ...

        Example:
            >>> store = {}
            >>> model.optimizer.save_own_variables(store)
            >>> model2.optimizer.load_own_variables(store)   # a model of the same shapes
        """
        for i, v in enumerate(self.variables()):
            store[str(i)] = v

    def load_own_variables(self, store: Mapping[str, np.ndarray]) -> None:
        """Restore the state :meth:`save_own_variables` stored, in place.

        Every value is checked before any is assigned: on error the state is unchanged.

        Args:
            store: Arrays under the keys ``'0'``, ``'1'``, ... in :meth:`variables` order.

        Raises:
            ValueError: If the optimizer is not built yet, the number or a shape of the arrays
                differs from :meth:`variables`, the step count or per-row step counts are not
                integers in ``[0, 2**62]``, second moments are negative, or a value is NaN,
                inf or beyond float32's range.
        """
        what = type(self).__name__
        if not self.built:
            raise ValueError(f"{what}.load_own_variables: the optimizer has no state yet; build "
                             "it for its model first (model.build_optimizer())")
        targets = self.variables()
        keys = [str(i) for i in range(len(targets))]
        if sorted(store) != sorted(keys):
            raise ValueError(f"{what}.load_own_variables: expected {len(targets)} arrays (keys "
                             f"'0'...'{len(targets) - 1}'), got {len(store)}")
        values = [np.asarray(store[k]) for k in keys]
        for k, t, v in zip(keys, targets, values):
            if v.shape != t.shape:
                raise ValueError(f"optimizer variable {k} has shape {v.shape}, the model's "
                                 f"optimizer state has {t.shape}")
        it = values[0]
        if it.dtype.kind not in "iu":
            raise ValueError(f"optimizer iterations (variable 0) has dtype {it.dtype}; a step "
                             "count is an integer")
        iterations = check_iterations(int(it[0]), "optimizer iterations")
        cast, k = [], 1
        for slots in self._slots:
            for j, target in enumerate(slots):
                if target is None:
                    continue
                cast.append(self._checked_slot(values[k], target, j, k))
                k += 1
        for t, c in zip(targets[1:], cast):
            np.copyto(t, c)
        self.iterations = iterations

    def _checked_slot(self, value: np.ndarray, target: np.ndarray, j: int, k: int) -> np.ndarray:
        """``value`` as the dtype of slot ``j`` (``target``), checked; raises ValueError."""
        if j == 3:
            # per-row step counts: integers in [0, 2**62]. Not bounded by `iterations`:
            # resetting iterations to 0 (or saving while another thread fits) leaves rows
            # whose last step is "in the future", which the C core handles (no catch-up)
            if value.dtype.kind not in "iu" or (value.size and (
                    value.min() < 0 or value.max() > MAX_ITERATIONS)):
                raise ValueError(f"optimizer variable {k} holds per-row step counts outside "
                                 f"[0, 2**62] or of dtype {value.dtype}")
            return value.astype(np.int64, copy=False)
        if value.dtype.kind not in "fiu":
            raise ValueError(f"optimizer variable {k} has dtype {value.dtype}, expected "
                             f"{target.dtype}")
        with np.errstate(over="ignore"):  # a float64 of 1e39 becomes inf: refused below
            c = value.astype(target.dtype, copy=False)
        if c.size and not (np.isfinite(c.min()) and np.isfinite(c.max())):
            raise ValueError(f"optimizer variable {k} holds NaN or inf values, or values beyond "
                             f"{target.dtype}'s range (a diverged or corrupted state)")
        if j in self.nonnegative_slots and c.size and c.min() < 0:
            raise ValueError(f"optimizer variable {k} holds negative second-moment values (a sum "
                             "of squares is never negative)")
        return c

    def _c_spec(self) -> "OptimizerSpec":
        """The settings the C core reads (by field name) when a plan is built or updated."""
        return OptimizerSpec(
            kind=self.kind, learning_rate=self.learning_rate,
            beta_1=getattr(self, "beta_1", 0.9), beta_2=getattr(self, "beta_2", 0.999),
            epsilon=getattr(self, "epsilon", 1e-7), momentum=getattr(self, "momentum", 0.0),
            rho=getattr(self, "rho", 0.9), nesterov=bool(getattr(self, "nesterov", False)),
            centered=bool(getattr(self, "centered", False)),
            amsgrad=bool(getattr(self, "amsgrad", False)), catch_up=self.catch_up)

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name, "learning_rate": self.learning_rate,
                "sparse_updates": self.sparse_updates, "catch_up": self.catch_up}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Optimizer":
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}({self.get_config()})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    ``v = momentum * v - lr * g; w += v`` (Nesterov: ``w += momentum * v - lr * g``).

    Args:
        learning_rate: Step size (default 0.01).
        momentum: In ``[0, 1)``.
        nesterov: Use Nesterov momentum.
        sparse_updates: Lazy updates of embedding rows (default True).
    """

    kind = _core.OPTIMIZERS["sgd"]

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 name: str = "SGD", sparse_updates: bool = True, catch_up: bool = True, **kwargs):
        super().__init__(learning_rate, name, sparse_updates, catch_up, **kwargs)
        self.momentum = float(momentum)
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {momentum}")
        self.nesterov = bool(nesterov)

    @property
    def n_slots(self):
        return 1 if self.momentum > 0 else 0

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam (Kingma & Ba), Keras formula: ``w -= lr_t * m / (sqrt(v) + epsilon)``.

    Args:
        learning_rate: Step size (default 0.001).
        beta_1, beta_2: Decay rates of the moment estimates.
        epsilon: Added to ``sqrt(v)`` (Keras default 1e-7; PyTorch uses 1e-8).
        amsgrad: Use the AMSGrad variant.
        sparse_updates: Update only the embedding rows a batch touched (default);
            ``False`` updates every row every step exactly like Keras/PyTorch.
        catch_up: With sparse updates, apply the skipped steps' moment decay in
            closed form when a row comes back (default; close to dense Adam);
            ``False``: plain lazy Adam with per-row step counts.
    """

    kind = _core.OPTIMIZERS["adam"]
    nonnegative_slots = (1, 2)

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, name: str = "adam",
                 sparse_updates: bool = True, catch_up: bool = True, **kwargs):
        super().__init__(learning_rate, name, sparse_updates, catch_up, **kwargs)
        for nm, b in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= float(b) < 1.0:
                raise ValueError(f"Adam: {nm} must be in [0, 1), got {b}")
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.epsilon = _positive("epsilon", epsilon, "Adam", allow_zero=True)
        self.amsgrad = bool(amsgrad)

    @property
    def n_slots(self):
        return 3 if self.amsgrad else 2

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class Adagrad(Optimizer):
    """Adagrad: ``acc += g^2; w -= lr * g / sqrt(acc + epsilon)``.

    Args:
        learning_rate: Step size (default 0.001).
        initial_accumulator_value: Starting value of the accumulators (0.1).
        epsilon: Added inside the square root (1e-7).
    """

    kind = _core.OPTIMIZERS["adagrad"]
    n_slots = 1
    nonnegative_slots = (0,)

    def __init__(self, learning_rate: float = 0.001, initial_accumulator_value: float = 0.1,
                 epsilon: float = 1e-7, name: str = "adagrad", sparse_updates: bool = True,
                 catch_up: bool = True, **kwargs):
        super().__init__(learning_rate, name, sparse_updates, catch_up, **kwargs)
        self.initial_accumulator_value = _positive(
            "initial_accumulator_value", initial_accumulator_value, "Adagrad", allow_zero=True)
        self.epsilon = _positive("epsilon", epsilon, "Adagrad", allow_zero=True)

    def _slot_init(self, i):
        return self.initial_accumulator_value

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class RMSprop(Optimizer):
    """RMSprop: ``v = rho v + (1 - rho) g^2; w -= lr g / sqrt(v + epsilon)``.

    Args:
        learning_rate: Step size (default 0.001).
        rho: Decay of the squared-gradient average (0.9).
        momentum: Momentum on the increments (0.0).
        epsilon: Added inside the square root (1e-7).
        centered: Normalise by the centred second moment.
    """

    kind = _core.OPTIMIZERS["rmsprop"]
    nonnegative_slots = (0,)

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, name: str = "rmsprop",
                 sparse_updates: bool = True, catch_up: bool = True, **kwargs):
        super().__init__(learning_rate, name, sparse_updates, catch_up, **kwargs)
        if not 0.0 <= float(rho) < 1.0:
            raise ValueError(f"RMSprop: rho must be in [0, 1), got {rho}")
        if not 0.0 <= float(momentum) < 1.0:
            raise ValueError(f"RMSprop: momentum must be in [0, 1), got {momentum}")
        self.rho, self.momentum = float(rho), float(momentum)
        self.epsilon = _positive("epsilon", epsilon, "RMSprop", allow_zero=True)
        self.centered = bool(centered)

    def _uses_slot(self, i):
        return i == 0 or (i == 1 and self.momentum > 0) or (i == 2 and self.centered)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


class ALS(Optimizer):
    """Implicit-feedback alternating least squares (iALS) for dot-product models.

    Not a gradient method: ``fit`` alternates exact (or conjugate-gradient)
    least-squares solves of every user row and every item row of the
    embedding tables, in C across all threads (``csrc/src/als.c``). It
    minimises, over every (user, item) cell,

        ``sum c_ui (p_ui - s_ui)^2 + sum_u lambda_u |x_u|^2 + sum_i lambda_i |y_i|^2``

    where ``s_ui`` is the model's score before its output activation
    (``p_u . q_i (+ b_u + b_i)``), ``p_ui = 1`` and ``c_ui = 1 + alpha * r_ui``
    for the interactions ``r_ui`` of the training matrix, ``p_ui = 0`` and
    ``c_ui = 1`` elsewhere (Hu, Koren and Volinsky 2008), and the
    frequency-scaled regularization (Rendle et al. 2021) is

        ``lambda_u = regularization * (1 + alpha * sum_i r_ui / n_items)^nu``

    (likewise for items over users): ``nu = 0`` gives every row the same
    penalty. Biases (``MF(use_bias=True)``) are fitted with the standard
    augmentation: the user row is ``[p_u, b_u]`` against item rows
    ``[q_i, 1]`` with ``b_i`` as a fixed offset, and symmetrically. Dense
    layers on top of the score (MF's and GMF's ``prediction``) are set to the
    identity scale (kernel 1, bias 0) when training starts, so ``predict``
    returns ``sigmoid(s_ui)`` and ``recommend`` ranks by ``s_ui``.

    Each row is solved independently of the others and of the thread that
    solves it: the factors are bit-identical for any thread count (for a given
    SIMD level), and a fit is reproducible from the same initial weights.

    The defaults (alpha 8, regularization 30, nu 1, 64 factors in the model) are the best of
    ``benchmarks/bench_time_to_quality.py``'s grid on ML-1M and ml-100k (HR@10 .72 on ML-1M's
    NCF split); the best regularization grows with the data's density and catalog size, so
    tune it (and alpha) on a validation split for other data.

    Args:
        alpha: Confidence slope (``c = 1 + alpha * r``), >= 0.
        regularization: L2 penalty ``lambda`` (> 0 for a well-posed solve).
        nu: Frequency exponent of the regularization (0: constant), >= 0.
        solver: ``'cg'`` (default: ``cg_steps`` conjugate-gradient steps from
            the current value, as implicit's ``cg_steps``) or ``'cholesky'``
            (exact, float64). Measured on ML-1M (``bench_als_solvers.py``, 2
            threads, three runs): CG is 1.8-2.5x, 5.7-6.6x and 9-15x faster per
            sweep at 64, 128 and 256 factors, to within 0.006 HR@10 after 8
            sweeps; at 32 factors Cholesky took 0.7-1.8x CG's time and is exact.
        cg_steps: Conjugate-gradient steps per row and sweep (>= 1).
        name: Optimizer name.

    Raises:
        ValueError: For a negative or non-finite argument or an unknown solver.

    Example:
        >>> model = neurec.models.MF(n_users, n_items, factors=64, use_bias=False)
        >>> model.compile(optimizer=neurec.optimizers.ALS(alpha=8.0, regularization=30.0, nu=1.0))
        >>> model.fit(train_matrix, epochs=10)        # an InteractionMatrix or scipy.sparse
        >>> model.recommend([0, 1], k=10, exclude=train_matrix)
    """

    # never reaches the C optimizers: ALS models are trained by neurec.models._als
    kind = _core.OPTIMIZERS["sgd"]
    n_slots = 0
    SOLVERS = ("cg", "cholesky")

    def __init__(self, alpha: float = 8.0, regularization: float = 30.0, nu: float = 1.0,
                 solver: str = "cg", cg_steps: int = 3, name: str = "als", **kwargs):
        if kwargs:
            raise TypeError(f"ALS got unexpected arguments {sorted(kwargs)} (ALS has no learning "
                            "rate: it solves least-squares problems exactly or by CG)")
        self.alpha = _positive("alpha", alpha, "ALS", allow_zero=True)
        self.regularization = _positive("regularization", regularization, "ALS", allow_zero=True)
        self.nu = _positive("nu", nu, "ALS", allow_zero=True)
        if solver not in self.SOLVERS:
            raise ValueError(f"ALS: solver must be one of {self.SOLVERS}, got {solver!r}")
        self.solver = solver
        if isinstance(cg_steps, bool) or not isinstance(cg_steps, (int, np.integer)) or cg_steps < 1:
            raise ValueError(f"ALS: cg_steps must be a positive integer, got {cg_steps!r}")
        self.cg_steps = int(cg_steps)
        self.name = name
        self.learning_rate = 0.0
        self.sparse_updates = True
        self.catch_up = False
        self.iterations = 0
        self._slots = []

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name, "alpha": self.alpha, "regularization": self.regularization,
                "nu": self.nu, "solver": self.solver, "cg_steps": self.cg_steps}


_BY_NAME = {"sgd": SGD, "adam": Adam, "adagrad": Adagrad, "rmsprop": RMSprop, "als": ALS}
_CLASSES = {c.__name__: c for c in (SGD, Adam, Adagrad, RMSprop, ALS)}


def get(identifier: Union[str, Optimizer, dict]) -> Optimizer:
    """Resolve ``'adam'``, ``'sgd'``, ``'adagrad'``, ``'rmsprop'``, ``'als'``, a config or an object.

    Raises:
        ValueError: For an unknown optimizer.
    """
    out = resolve(identifier, "optimizer", Optimizer, _BY_NAME, _CLASSES,
                  build=lambda cls, cfg: cls.from_config(cfg),
                  hint=" or a neurec.optimizers.Optimizer object")
    if out is not None:
        return out
    raise ValueError(f"Could not interpret optimizer {identifier!r}")


def serialize(o: Optimizer) -> dict:
    return {"class_name": type(o).__name__, "config": o.get_config()}
