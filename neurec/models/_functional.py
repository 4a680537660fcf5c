"""The graph of a functional model: checks and order, config, and its NumPy forward pass.

A model is a graph of :class:`neurec.layers.base.Node` objects from its inputs to its
output. This module holds what only depends on that graph:

* :func:`check_endpoints` and :func:`topological_order`, used by ``Model.__init__``;
* :func:`graph_config` and :func:`graph_from_config`, the graph half of
  ``Model.get_config`` / ``Model.from_config`` (Keras's ``functional_from_config``);
* :func:`run_numpy`, the forward pass through each layer's ``call_numpy``: the one NumPy
  definition of the model's outputs, which the test oracle (``neurec._reference``) and the
  scoring model of ``recommend`` both use.
"""
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from neurec._registry import get_registered_name, get_registered_object
from neurec.layers.base import KerasTensor, Layer, Node
from neurec.layers.core import Dropout, InputLayer


def check_endpoints(inputs, outputs) -> Tuple[List[KerasTensor], KerasTensor]:
    """The model's input tensors as a list and its one output tensor.

    Raises:
        TypeError: If an input or the output is not a symbolic tensor.
        ValueError: If there is not exactly one output, or an input is not an ``Input()``.
    """
    if isinstance(inputs, dict):
        inputs = list(inputs.values())
    if isinstance(inputs, KerasTensor):
        inputs = [inputs]
    if isinstance(outputs, (list, tuple)):
        if len(outputs) != 1:
            raise ValueError(f"neurec models have exactly one output, got {len(outputs)}")
        outputs = outputs[0]
    if isinstance(outputs, dict):
        raise ValueError("neurec models have exactly one output; pass the tensor itself")
    inputs = list(inputs or [])
    for t in inputs + [outputs]:
        if not isinstance(t, KerasTensor):
            raise TypeError(f"Model inputs and outputs must be symbolic tensors (from Input and "
                            f"layer calls), got {type(t).__name__}")
    for t in inputs:
        if not isinstance(t.node.layer, InputLayer):
            raise ValueError(f"Model input {t.name!r} is not an Input(): pass the tensors "
                             "returned by neurec.layers.Input")
    return inputs, outputs


def topological_order(inputs: List[KerasTensor],
                      output: KerasTensor) -> Tuple[List[Node], List[Layer]]:
    """The nodes from ``inputs`` to ``output`` in an order where each follows its inputs,
    and the layers (input layers first, then in node order, each once).

    Raises:
        ValueError: If ``output`` needs an ``Input`` that is not in ``inputs`` (a
            disconnected graph), the graph has a cycle, or two layers share a name.
    """
    input_ids = {id(t) for t in inputs}
    order: List[Node] = []
    seen = set()

    def visit(t: KerasTensor, path: tuple):
        node = t.node
        if id(node) in seen:
            return
        if isinstance(node.layer, InputLayer):
            if id(t) not in input_ids:
                raise ValueError(
                    f"Graph disconnected: output {output.name!r} needs Input {t.name!r}, which is "
                    f"not in the model's inputs {[x.name for x in inputs]}")
            seen.add(id(node))
            return
        if id(node) in path:
            raise ValueError("The graph has a cycle")
        for parent in node.inputs:
            visit(parent, path + (id(node),))
        seen.add(id(node))
        order.append(node)

    visit(output, ())
    layers = [t.node.layer for t in inputs]
    for node in order:
        if node.layer not in layers:
            layers.append(node.layer)
    names = [l.name for l in layers]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"Layer names must be unique within a model; repeated: {sorted(dup)}")
    return order, layers


# -- config ------------------------------------------------------------------------------
def graph_config(model) -> Dict[str, Any]:
    """The layers and connections of ``model`` as JSON-serializable data.

    Nodes refer to their inputs as ``[layer name, node index, tensor index]``.
    """
    node_ids: Dict[int, tuple] = {}
    counts: Dict[str, int] = {}
    for t in model.inputs:
        node_ids[id(t.node)] = (t.node.layer.name, 0)
    nodes = []
    for node in model._nodes_in_order:
        k = counts.get(node.layer.name, 0)
        counts[node.layer.name] = k + 1
        node_ids[id(node)] = (node.layer.name, k)
        nodes.append({"layer": node.layer.name,
                      "inbound": [list(node_ids[id(t.node)]) + [t.index] for t in node.inputs]})
    out = model.outputs[0]
    return {
        "class_name": get_registered_name(type(model)),
        "name": model.name,
        "layers": [{"class_name": get_registered_name(type(l)), "config": l.get_config()}
                   for l in model._layers],
        "nodes": nodes,
        "input_layers": [[t.node.layer.name, 0, 0] for t in model.inputs],
        "output_layers": [list(node_ids[id(out.node)]) + [out.index]],
    }


def _layer_class(name: Any, custom_objects: Optional[Mapping[str, Any]]) -> type:
    cls = get_registered_object(name, custom_objects) if isinstance(name, str) else None
    # a file may only name the caller's custom objects or registered layers (not models)
    if cls is None or (not (custom_objects and name in custom_objects)
                       and not (isinstance(cls, type) and issubclass(cls, Layer))):
        raise ValueError(f"unknown layer class {name!r} (pass it in custom_objects)")
    return cls


def graph_from_config(config: Mapping[str, Any], custom_objects: Optional[Mapping[str, Any]] = None
                      ) -> Tuple[List[KerasTensor], KerasTensor]:
    """New layers from ``config`` (see :func:`graph_config`), called on each other as the
    config says; returns the input tensors and the output tensor.

    Raises:
        ValueError: For an unknown layer class or an inconsistent config.
    """
    try:
        layers = {}
        for entry in config["layers"]:
            cls = _layer_class(entry["class_name"], custom_objects)
            layer = cls.from_config(dict(entry["config"]))
            layers[layer.name] = layer
        produced: Dict[tuple, KerasTensor] = {}
        for name, layer in layers.items():
            if isinstance(layer, InputLayer):
                produced[(name, 0)] = layer.output
        counts: Dict[str, int] = {}
        for node in config["nodes"]:
            layer = layers[node["layer"]]
            ins = [produced[(lname, nidx)] for lname, nidx, _ in node["inbound"]]
            out = layer(ins if len(ins) > 1 or layer._n_inputs is None else ins[0])
            k = counts.get(layer.name, 0)
            counts[layer.name] = k + 1
            produced[(layer.name, k)] = out
        inputs = [produced[(n, i)] for n, i, _ in config["input_layers"]]
        output = produced[tuple(config["output_layers"][0][:2])]
    except (KeyError, TypeError, IndexError) as e:
        raise ValueError(f"invalid model config: {e!r}") from None
    return inputs, output


# -- NumPy forward pass ------------------------------------------------------------------
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
        # an overridden weight is used as given, and its own never converted (a gathered
        # slice of a big table stands in for the whole table)
        own = [weights[(layer.name, k)] if weights is not None and (layer.name, k) in weights
               else np.asarray(w, dtype) for k, w in enumerate(layer.weights)]
        xs = [vals[id(t)] for t in node.inputs]
        x = xs if layer._n_inputs is None else xs[0]
        if isinstance(layer, Dropout) and masks is not None and layer.name in masks:
            out = layer.call_numpy(x, training=True, weights=own, mask=masks[layer.name])
        else:
            out = layer.call_numpy(x, weights=own)
        vals[id(node.outputs[0])] = out
    return vals.get(id(model.outputs[0])), vals
