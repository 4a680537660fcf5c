"""The graph of a functional model, run in NumPy through its layers' ``call_numpy``.

:func:`run_numpy` is the one NumPy definition of a model's outputs: the test oracle
(``neurec._reference``) and the scoring model of ``recommend`` both use it.
"""
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from neurec.layers.base import Node
from neurec.layers.core import Dropout


def run_numpy(model, inputs: Sequence[np.ndarray],
              weights: Optional[Mapping[Tuple[str, int], np.ndarray]] = None,
              nodes: Optional[Sequence[Node]] = None,
              masks: Optional[Mapping[str, np.ndarray]] = None, dtype=np.float64
              ) -> Tuple[Optional[np.ndarray], Dict[int, np.ndarray]]:
    """The model's forward pass in NumPy, layer by layer through ``Layer.call_numpy``.

    Inputs (ids included) and every layer's weights are converted to ``dtype`` (float64
    by default: the precision of the test oracle and of ``recommend``'s precomputed
    tables), so every layer computes in it.

    Args:
        model: A model (its inputs, nodes and output).
        inputs: One array per model input.
        weights: ``{(layer name, weight index): array}`` to use instead of those layers'
            own weights (the reference's finite differences perturb these).
        nodes: Run only these nodes (in model order, closed under their inputs); the
            output is then None unless it was computed.
        masks: ``{Dropout layer name: mask}``: those layers run in training mode with the
            given multipliers (0 or ``1 / (1 - rate)``, of the layer's output shape); every
            other layer runs in inference mode.

    Returns:
        ``(output, values)``: the output array (or None) and every computed tensor's value
        keyed by ``id(tensor)``.
    """
    vals: Dict[int, np.ndarray] = {}
    for t, a in zip(model.inputs, inputs):
        a = np.asarray(a, dtype=dtype)
        vals[id(t)] = a.reshape((a.shape[0],) + t.shape[1:])
    for node in model._nodes_in_order if nodes is None else nodes:
        layer = node.layer
        own = [np.asarray(w, dtype) for w in layer.weights]
        if weights is not None:
            own = [weights.get((layer.name, k), w) for k, w in enumerate(own)]
        xs = [vals[id(t)] for t in node.inputs]
        x = xs if layer._n_inputs is None else xs[0]
        if isinstance(layer, Dropout) and masks is not None and layer.name in masks:
            out = layer.call_numpy(x, training=True, weights=own, mask=masks[layer.name])
        else:
            out = layer.call_numpy(x, weights=own)
        vals[id(node.outputs[0])] = out
    return vals.get(id(model.outputs[0])), vals
