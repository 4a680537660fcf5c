"""Lowering of a functional graph to the C core's plan (see csrc/include/neurec/nr_plan.h).

The plan's descriptors are named tuples that the C binding (``csrc/py/_plan.c``) reads by
field name, never by position: :class:`Op` (one ``struct nr_op``), :class:`Param` (one
``struct nr_param``) and ``neurec.optimizers.OptimizerSpec`` (``struct nr_optim``).
"""
import threading
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from neurec.layers.core import OP_INPUT, _size

# serialises building and dropping models' plans (rare and quick; see Model._get_plan)
PLAN_LOCK = threading.RLock()


class Op(NamedTuple):
    """One op of the plan (``struct nr_op``)."""

    kind: int                   # an OP_* code (neurec._core.OPS)
    out: int                    # value id written
    inputs: Tuple[int, ...]     # value ids read (INPUT, EMBEDDING: an input slot)
    params: Tuple[int, int]     # parameter ids, -1 when absent
    act: int                    # activation code, for ACT
    flag: int                   # DOT: normalize
    dims: Tuple[int, ...]       # up to 6 kind-specific sizes (the rest are 0)
    rate: float                 # DROPOUT rate


class Param(NamedTuple):
    """One parameter the plan borrows (``struct nr_param``): C updates the arrays in place."""

    weights: np.ndarray              # float32, C-contiguous, writeable
    slots: Tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]
    row_steps: Optional[np.ndarray]  # int64 per-row step counts (lazy Adam on tables)
    l2: float                        # L2 penalty factor
    is_table: bool                   # an embedding table (sparse gradients)
    frozen: bool                     # never updated (a non-trainable layer's weight)


class PlanBuilder:
    """Collects values, ops and parameters while layers lower their nodes."""

    def __init__(self, model):
        self.model = model
        self.value_sizes: List[int] = []
        self.ops: List[Op] = []
        self.tensor_value: Dict[int, int] = {}
        self.input_slots: Dict[int, int] = {id(t): i for i, t in enumerate(model.inputs)}
        self.params: List[Tuple] = []  # (layer, weight index, is_table)
        self.param_index: Dict[Tuple[int, int], int] = {}
        self.logits_of: Dict[int, Optional[int]] = {}
        self.id_checks: List[Tuple[int, object]] = []  # (input slot, Embedding layer)

    def new_value(self, tensor, size: int) -> int:
        v = len(self.value_sizes)
        self.value_sizes.append(int(size))
        if tensor is not None:
            self.tensor_value[id(tensor)] = v
        return v

    def input_slot(self, tensor) -> int:
        try:
            return self.input_slots[id(tensor)]
        except KeyError:
            raise ValueError(f"Tensor {tensor.name!r} is not an input of model "
                             f"{self.model.name!r}") from None

    def value(self, tensor) -> int:
        """The value id holding ``tensor`` (an INPUT op reads model inputs as floats)."""
        key = id(tensor)
        if key in self.tensor_value:
            return self.tensor_value[key]
        if key in self.input_slots:
            v = self.new_value(tensor, _size(tensor.shape))
            self.op(OP_INPUT, v, [self.input_slots[key]], dims=(_size(tensor.shape),))
            return v
        raise ValueError(f"Tensor {tensor.name!r} used before it was computed")

    def alias(self, out_tensor, in_tensor) -> None:
        from neurec.layers.core import OP_ALIAS
        src = self.value(in_tensor)
        v = self.new_value(out_tensor, self.value_sizes[src])
        self.op(OP_ALIAS, v, [src])
        if src in self.logits_of:
            self.logits_of[v] = self.logits_of[src]

    def param(self, layer, index: int, table: bool = False) -> int:
        key = (id(layer), index)
        if key not in self.param_index:
            self.param_index[key] = len(self.params)
            self.params.append((layer, index, table))
        return self.param_index[key]

    def op(self, kind: int, out: int, ins: List[int], params=(-1, -1), act: int = 0,
           flag: int = 0, dims=(), rate: float = 0.0) -> None:
        self.ops.append(Op(kind=int(kind), out=int(out), inputs=tuple(int(i) for i in ins),
                           params=(int(params[0]), int(params[1])), act=int(act),
                           flag=int(flag), dims=tuple(int(d) for d in dims), rate=float(rate)))


def plan_key(builder: PlanBuilder) -> Tuple:
    """What a plan was built from and can go stale by: each parameter's array (an Embedding
    grown by ``resize`` holds a new one) and whether its layer is trainable."""
    return tuple((layer._weights[idx][1], bool(layer.trainable)) for layer, idx, _ in builder.params)


def plan_is_current(builder: Optional[PlanBuilder], key: Tuple) -> bool:
    """Whether ``key`` (:func:`plan_key` at build time) still describes the model."""
    if builder is None or len(key) != len(builder.params):
        return False
    for (layer, idx, _), (w, trainable) in zip(builder.params, key):
        if layer._weights[idx][1] is not w or bool(layer.trainable) != trainable:
            return False
    return True


def lower(model) -> PlanBuilder:
    """Lower ``model``'s nodes, in topological order, into a PlanBuilder."""
    b = PlanBuilder(model)
    for node in model._nodes_in_order:
        layer = node.layer
        if not hasattr(layer, "_lower"):
            raise ValueError(f"Layer {layer.name!r} ({type(layer).__name__}) cannot run in "
                             "neurec's C core")
        layer._lower(b, node)
    b.output_value = b.value(model.outputs[0])
    return b
