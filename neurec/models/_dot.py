"""Dot-product models: is a model's score a monotone function of ``p_u . q_i (+ biases)``?

``recommend`` takes a fused blocked multiply + top-K path for such models, and
``optimizers.ALS`` trains only them; both read the layers found here.
"""
from typing import Optional

import numpy as np

from neurec import activations
from neurec.layers.core import Activation, Dense, Embedding, Flatten
from neurec.layers.merging import Add, Dot, Multiply

__all__ = ["DotParts", "dot_parts", "dot_structure"]


def _producer(t):
    return t.node.layer, t.node


def _emb_of(t, input_tensor):
    """If ``t`` is Flatten(Embedding(input_tensor)) return the Embedding layer."""
    layer, node = _producer(t)
    if not isinstance(layer, Flatten):
        return None
    src = node.inputs[0]
    emb, en = _producer(src)
    if isinstance(emb, Embedding) and en.inputs[0] is input_tensor and input_tensor.shape == (None, 1):
        return emb
    return None


class DotParts:
    """The layers of a model whose score is ``monotone(p_u . q_i (+ b_u) (+ b_i))``.

    Attributes:
        user, item: The user and item ``Embedding`` layers of the product.
        user_bias, item_bias: ``Embedding(n, 1)`` bias layers or None.
        gmf_dense: GMF's ``Dense(1)`` over ``Multiply([p_u, q_i])`` (its kernel weights
            the factors), or None for a ``Dot``.
        steps: ``Dense(1)`` layers applied to the scalar score, outermost first.
    """

    def __init__(self, user, item, user_bias, item_bias, gmf_dense, steps):
        self.user, self.item = user, item
        self.user_bias, self.item_bias = user_bias, item_bias
        self.gmf_dense, self.steps = gmf_dense, steps


def dot_parts(model, u_in, i_in) -> Optional[DotParts]:
    """The :class:`DotParts` of ``model`` with user input ``u_in`` and item input
    ``i_in``, or None when its score is not a monotone function of a dot product."""
    t = model.outputs[0]
    steps = []  # monotone transforms applied on top of the scalar, outermost first
    while True:
        layer, node = _producer(t)
        src = node.inputs[0] if node.inputs else None
        if isinstance(layer, Activation) and activations.serialize(layer.activation) in (
                "sigmoid", "tanh", "linear") and t.shape == (None, 1):
            t = src
            continue
        if isinstance(layer, Dense) and layer.units == 1 and src is not None and src.shape == (None, 1) \
                and activations.serialize(layer.activation) in ("sigmoid", "tanh", "linear"):
            steps.append(layer)
            t = src
            continue
        break
    layer, node = _producer(t)
    gmf_dense = None
    if isinstance(layer, Dense) and layer.units == 1 and activations.serialize(layer.activation) in (
            "sigmoid", "tanh", "linear"):
        inner, inode = _producer(node.inputs[0])
        if isinstance(inner, Multiply) and len(inode.inputs) == 2:
            gmf_dense = layer
            t = node.inputs[0]
            layer, node = inner, inode
    terms = node.inputs if isinstance(layer, Add) else [t]
    dot = None
    ubias = ibias = None
    for term in terms:
        tl, tn = _producer(term)
        if isinstance(tl, (Dot, Multiply)) and len(tn.inputs) == 2 and dot is None:
            if isinstance(tl, Dot) and (tl.normalize or term.shape != (None, 1)):
                return None
            if isinstance(tl, Multiply) and gmf_dense is None:
                return None
            a, b = tn.inputs
            eu, ei = _emb_of(a, u_in), _emb_of(b, i_in)
            if eu is None or ei is None:
                eu, ei = _emb_of(b, u_in), _emb_of(a, i_in)
            if eu is None or ei is None or eu.output_dim != ei.output_dim:
                return None
            dot = (eu, ei)
        elif term.shape == (None, 1) and _emb_of(term, u_in) is not None and ubias is None:
            ubias = _emb_of(term, u_in)
        elif term.shape == (None, 1) and _emb_of(term, i_in) is not None and ibias is None:
            ibias = _emb_of(term, i_in)
        else:
            return None
    if dot is None:
        return None
    return DotParts(dot[0], dot[1], ubias, ibias, gmf_dense, steps)


def dot_structure(model, u_in, i_in):
    """Describe ``model`` as ``score = monotone(user_vec(u) . item_vec(i) + item_bias(i) + c(u))``.

    Returns a function of user ids giving ``(user_vecs of those users, item_vecs,
    item_bias)`` for the current weights (or None when a scale is zero), or None when
    the model is not of that form.
    """
    parts = dot_parts(model, u_in, i_in)
    if parts is None:
        return None
    eu, ei, ibias, gmf_dense, steps = parts.user, parts.item, parts.item_bias, parts.gmf_dense, \
        parts.steps

    def build(users):
        sign = 1.0
        for d in steps:
            w = float(d.kernel[0, 0])
            if w == 0.0:
                return None
            sign *= np.sign(w)
        uv = eu.embeddings[users].astype(np.float32, copy=False)  # the rows asked for, a copy
        if gmf_dense is not None:
            uv *= gmf_dense.kernel[:, 0][None, :]
        uv *= sign
        bias = None if ibias is None else np.ascontiguousarray(sign * ibias.embeddings[:, 0], np.float32)
        return np.ascontiguousarray(uv), np.ascontiguousarray(ei.embeddings), bias

    return build
