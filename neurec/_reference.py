"""Pure-NumPy reference of the C core (float64): forward, backward, optimizers.

This is the oracle every C kernel is tested against (each op's parity test). It is
deliberately simple and slow: whole-batch NumPy with no fusion, no sparse
tricks and no threads.

The forward pass is the layers' own definition, ``Layer.call_numpy``, run on float64
weights and inputs (:func:`forward`); this module adds what the layers do not define:
the backward pass, the losses, the C core's Dropout masks and the optimizer updates. It
is a test oracle: library code never imports it.
"""
from typing import Dict, List, Optional, Tuple

import numpy as np

from neurec import activations
from neurec.layers import core, merging
from neurec.models._functional import run_numpy

# ---------------------------------------------------------------------------
# activations (their forward pass is neurec.activations)


def act_backward(name: str, y: np.ndarray, gy: np.ndarray) -> np.ndarray:
    if name == "linear":
        return gy
    if name == "relu":
        return gy * (y > 0)
    if name == "sigmoid":
        return gy * y * (1 - y)
    if name == "tanh":
        return gy * (1 - y * y)
    if name == "softmax":
        return y * (gy - (gy * y).sum(axis=-1, keepdims=True))
    raise ValueError(name)


# ---------------------------------------------------------------------------
# losses (mean over every output value and sample; with sample weights w, Keras's
# "sum_over_batch_size": sum_i w_i * (mean loss of sample i) / n)


def _per_sample_weights(sample_weight, n: int, width: int) -> np.ndarray:
    """Weights as an (n, 1) float64 column (ones without weights), for (n, width) losses."""
    if sample_weight is None:
        return np.ones((n, 1))
    return np.asarray(sample_weight, dtype=np.float64).reshape(n, 1)


def loss_value(loss, y: np.ndarray, p: np.ndarray, sample_weight=None) -> float:
    t = np.broadcast_to(y.reshape(y.shape[0], -1), p.reshape(p.shape[0], -1).shape)
    p = p.reshape(p.shape[0], -1)
    name = type(loss).__name__
    if name == "BinaryCrossentropy":
        if loss.from_logits:
            e = np.maximum(p, 0) - p * t + np.log1p(np.exp(-np.abs(p)))
        else:
            e = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    elif name == "MeanSquaredError":
        e = (p - t) ** 2
    else:
        e = np.abs(p - t)
    if sample_weight is None:
        return float(e.mean())
    return float((e * _per_sample_weights(sample_weight, *e.shape)).mean())


def loss_grad(loss, y: np.ndarray, p: np.ndarray, sample_weight=None) -> np.ndarray:
    shape = p.shape
    p2 = p.reshape(p.shape[0], -1)
    t = np.broadcast_to(y.reshape(y.shape[0], -1), p2.shape)
    name = type(loss).__name__
    if name == "BinaryCrossentropy":
        g = (1 / (1 + np.exp(-p2)) - t) if loss.from_logits else (p2 - t) / (p2 * (1 - p2))
    elif name == "MeanSquaredError":
        g = 2 * (p2 - t)
    else:
        g = np.sign(p2 - t)
    if sample_weight is not None:
        g = g * _per_sample_weights(sample_weight, *p2.shape)
    return (g / p2.size).reshape(shape)


# ---------------------------------------------------------------------------
# dropout masks: the C core's counter-based RNG (csrc/src/rng.c, plan.c), re-implemented

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    z = x
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x, z ^ (z >> np.uint64(31))


def _rotl(x: np.ndarray, k: int) -> np.ndarray:
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


def dropout_mask(rate: float, seed: int, step: int, op_index: int, samples: np.ndarray,
                 width: int) -> np.ndarray:
    """The mask the C core applies in a training step: 0 or ``1 / (1 - rate)``.

    Mirrors ``NR_OP_DROPOUT`` in ``csrc/src/plan.c``: sample ``s`` of the batch at
    global step ``step`` (1-based) draws ``width`` uniforms from xoshiro256**
    seeded with ``(seed ^ (step << 20) ^ op_index, s)`` through splitmix64, and
    drops an element when its uniform (24 random bits) is below ``rate``.

    Args:
        rate: The layer's rate, in ``(0, 1)``.
        seed: The epoch seed the C core was given.
        step: The optimizer step of the batch (``iterations + 1`` for the first).
        op_index: Position of the Dropout op in the compiled plan.
        samples: Row indices of the batch's samples in the training arrays.
        width: Values per sample of the layer's output.

    Returns:
        A float64 array of shape ``(len(samples), width)``.
    """
    with np.errstate(over="ignore"):
        key = (np.uint64(seed % 2**64) ^ (np.uint64(step % 2**44) << np.uint64(20))
               ^ np.uint64(op_index))
        x = key ^ (np.asarray(samples, dtype=np.uint64) * np.uint64(0xD1B54A32D192ED03))
        s = []
        for _ in range(4):
            x, z = _splitmix64(x)
            s.append(z)
        u = np.empty((len(x), width), dtype=np.float32)
        for k in range(width):
            u[:, k] = (_rotl(s[1] * np.uint64(5), 7) * np.uint64(9) >> np.uint64(40)).astype(
                np.float32) * np.float32(1.0 / 16777216.0)
            t = s[1] << np.uint64(17)
            s[2] ^= s[0]
            s[3] ^= s[1]
            s[1] ^= s[2]
            s[0] ^= s[3]
            s[2] ^= t
            s[3] = _rotl(s[3], 45)
    return np.where(u < np.float32(rate), 0.0, 1.0 / (1.0 - rate))


# ---------------------------------------------------------------------------
# graph


def _dot_mats(layer, x, y):
    ax, ay = layer._resolved((None,) + x.shape[1:], (None,) + y.shape[1:])
    xm = np.moveaxis(x, ax, 1).reshape(x.shape[0], x.shape[ax], -1)
    ym = np.moveaxis(y, ay, 1).reshape(y.shape[0], y.shape[ay], -1)
    return ax, ay, xm, ym


def _unmat(gm, like, axis):
    moved = np.moveaxis(like, axis, 1)
    return np.moveaxis(gm.reshape(moved.shape), 1, axis)


def _w(params, layer, k):
    if params is not None and (layer.name, k) in params:
        return params[(layer.name, k)]
    return layer.weights[k].astype(np.float64)


def forward(model, inputs: List[np.ndarray], params=None, nodes=None,
            masks=None) -> Tuple[Optional[np.ndarray], Dict[int, np.ndarray]]:
    """Forward pass in float64; returns (output, values by tensor id).

    Inference mode unless ``masks`` maps Dropout layer names to training masks
    (arrays of the layer's output shape, 0 or ``1 / (1 - rate)``, e.g. from
    :func:`dropout_mask`), which then multiply those layers' inputs.
    ``params`` optionally maps (layer name, weight index) to float64 arrays used
    instead of the layer's own weights (for finite differences in float64).
    ``nodes`` restricts the pass to those nodes (in model order, closed under
    their inputs); the output is then None unless it was computed.

    This is :func:`neurec.models._functional.run_numpy`: each layer's ``call_numpy``.
    """
    return run_numpy(model, inputs, weights=params, nodes=nodes, masks=masks)


def gradients(model, inputs: List[np.ndarray], y: np.ndarray, loss, params=None,
              masks=None, sample_weight=None) -> Tuple[float, Dict]:
    """Loss and gradients of every weight, keyed by (layer name, weight index).

    ``masks``: Dropout training masks by layer name, as in :func:`forward`.
    ``sample_weight``: per-sample loss weights (Keras's ``"sum_over_batch_size"``).
    """
    out, vals = forward(model, inputs, params, masks=masks)
    grads: Dict[Tuple[str, int], np.ndarray] = {}
    g: Dict[int, np.ndarray] = {id(model.outputs[0]): loss_grad(loss, y.astype(np.float64), out,
                                                                sample_weight)}

    def add(t, v):
        g[id(t)] = g[id(t)] + v if id(t) in g else v

    for node in reversed(model._nodes_in_order):
        layer = node.layer
        gy = g.get(id(node.outputs[0]))
        if gy is None:
            continue
        xs = [vals[id(t)] for t in node.inputs]
        if isinstance(layer, core.Embedding):
            G = np.zeros(layer.embeddings.shape)
            ids = xs[0].astype(np.int64).ravel()
            np.add.at(G, ids, gy.reshape(-1, layer.output_dim))
            grads[(layer.name, 0)] = grads.get((layer.name, 0), 0) + G
        elif isinstance(layer, core.Dense):
            y_out = vals[id(node.outputs[0])]
            gz = act_backward(activations.serialize(layer.activation), y_out, gy)
            x2 = xs[0].reshape(-1, xs[0].shape[-1])
            g2 = gz.reshape(-1, layer.units)
            grads[(layer.name, 0)] = grads.get((layer.name, 0), 0) + x2.T @ g2
            if layer.use_bias:
                grads[(layer.name, 1)] = grads.get((layer.name, 1), 0) + g2.sum(axis=0)
            add(node.inputs[0], gz @ _w(params, layer, 0).T)
        elif isinstance(layer, core.Activation):
            add(node.inputs[0], act_backward(activations.serialize(layer.activation),
                                             vals[id(node.outputs[0])], gy))
        elif isinstance(layer, (core.Flatten, core.Reshape)):
            add(node.inputs[0], gy.reshape(xs[0].shape))
        elif isinstance(layer, core.Dropout):
            if masks is not None and layer.name in masks:
                gy = gy * np.reshape(masks[layer.name], gy.shape)
            add(node.inputs[0], gy)
        elif isinstance(layer, merging.Dot):
            x, y2 = xs
            ax, ay, xm, ym = _dot_mats(layer, x, y2)
            gm = gy.reshape(x.shape[0], xm.shape[2], ym.shape[2])
            if layer.normalize:
                nx = np.linalg.norm(xm, axis=1, keepdims=True)
                ny = np.linalg.norm(ym, axis=1, keepdims=True)
                ux, uy = xm / nx, ym / ny
                gux = np.einsum("bij,bcj->bci", gm, uy)
                guy = np.einsum("bij,bci->bcj", gm, ux)
                gxm = (gux - ux * (ux * gux).sum(axis=1, keepdims=True)) / nx
                gym = (guy - uy * (uy * guy).sum(axis=1, keepdims=True)) / ny
            else:
                gxm = np.einsum("bij,bcj->bci", gm, ym)
                gym = np.einsum("bij,bci->bcj", gm, xm)
            add(node.inputs[0], _unmat(gxm, x, ax))
            add(node.inputs[1], _unmat(gym, y2, ay))
        elif isinstance(layer, merging.Concatenate):
            ax = layer._axis(xs[0].ndim)
            cuts = np.cumsum([a.shape[ax] for a in xs])[:-1]
            for t, part in zip(node.inputs, np.split(gy, cuts, axis=ax)):
                add(t, part)
        elif isinstance(layer, merging.Multiply):
            for k, t in enumerate(node.inputs):
                others = [xs[j] for j in range(len(xs)) if j != k]
                add(t, gy * np.prod(np.stack(others), axis=0))
        elif isinstance(layer, merging.Add):
            for t in node.inputs:
                add(t, gy)
        elif isinstance(layer, merging.Subtract):
            add(node.inputs[0], gy)
            add(node.inputs[1], -gy)
        elif isinstance(layer, merging.Average):
            for t in node.inputs:
                add(t, gy / len(xs))
    return loss_value(loss, y.astype(np.float64), out, sample_weight), grads


# ---------------------------------------------------------------------------
# optimizers (one step on a whole array; Keras formulas)


def optimizer_step(opt, w: np.ndarray, g: np.ndarray, state: dict, t: int, l2: float = 0.0):
    """Apply one update to ``w`` (float64, in place) given gradient ``g``."""
    g = g + 2 * l2 * w
    lr = opt.learning_rate
    kind = type(opt).__name__
    if kind == "SGD":
        if opt.momentum == 0:
            w -= lr * g
        else:
            v = state.setdefault("v", np.zeros_like(w))
            v[...] = opt.momentum * v - lr * g
            w += opt.momentum * v - lr * g if opt.nesterov else v
    elif kind == "Adam":
        m = state.setdefault("m", np.zeros_like(w))
        v = state.setdefault("v", np.zeros_like(w))
        m += (g - m) * (1 - opt.beta_1)
        v += (g * g - v) * (1 - opt.beta_2)
        alpha = lr * np.sqrt(1 - opt.beta_2 ** t) / (1 - opt.beta_1 ** t)
        if opt.amsgrad:
            vh = state.setdefault("vh", np.zeros_like(w))
            np.maximum(vh, v, out=vh)
            w -= alpha * m / (np.sqrt(vh) + opt.epsilon)
        else:
            w -= alpha * m / (np.sqrt(v) + opt.epsilon)
    elif kind == "Adagrad":
        a = state.setdefault("a", np.full_like(w, opt.initial_accumulator_value))
        a += g * g
        w -= lr * g / np.sqrt(a + opt.epsilon)
    elif kind == "RMSprop":
        v = state.setdefault("v", np.zeros_like(w))
        v[...] = opt.rho * v + (1 - opt.rho) * g * g
        denom = v
        if opt.centered:
            mg = state.setdefault("mg", np.zeros_like(w))
            mg[...] = opt.rho * mg + (1 - opt.rho) * g
            denom = v - mg * mg
        inc = lr * g / np.sqrt(denom + opt.epsilon)
        if opt.momentum > 0:
            mom = state.setdefault("mom", np.zeros_like(w))
            mom[...] = opt.momentum * mom + inc
            w -= mom
        else:
            w -= inc
    else:
        raise TypeError(kind)


def _catch_up(opt, w, state, s, t):
    kind = type(opt).__name__
    if kind == "Adam":
        r = opt.beta_1 if opt.amsgrad else opt.beta_1 / np.sqrt(opt.beta_2)
        geo = sum(r ** j for j in range(1, s + 1))
        alpha = opt.learning_rate * np.sqrt(1 - opt.beta_2 ** t) / (1 - opt.beta_1 ** t)
        den = np.sqrt(state["vh"] if opt.amsgrad else state["v"]) + opt.epsilon
        w -= alpha * geo * state["m"] / den
        state["m"] *= opt.beta_1 ** s
        state["v"] *= opt.beta_2 ** s
    elif kind == "SGD" and opt.momentum > 0:
        geo = sum(opt.momentum ** j for j in range(1, s + 1))
        w += (opt.momentum * geo if opt.nesterov else geo) * state["v"]
        state["v"] *= opt.momentum ** s
    elif kind == "RMSprop":
        state["v"] *= opt.rho ** s
        if opt.centered:
            state["mg"] *= opt.rho ** s
        if opt.momentum > 0:
            w -= sum(opt.momentum ** j for j in range(1, s + 1)) * state["mom"]
            state["mom"] *= opt.momentum ** s


def optimizer_step_rows(opt, w: np.ndarray, g: np.ndarray, rows: np.ndarray, state: dict,
                        row_steps: np.ndarray, l2: float = 0.0, t: int = 0):
    """Lazy update of the distinct ``rows`` of table ``w`` at global step ``t``.

    With ``opt.catch_up`` a row skipped for ``s`` steps first gets their decay in
    closed form and ``row_steps`` holds each row's last step; otherwise
    ``row_steps`` counts each row's own updates (Adam's bias correction).
    """
    for r in np.unique(rows):
        row_state = {k: v[r].copy() for k, v in state.items()}
        wr = w[r].copy()
        if opt.catch_up:
            last = int(row_steps[r])
            if last > 0 and t - last > 1:
                _catch_up(opt, wr, row_state, t - last - 1, t)
            row_steps[r] = t
            tr = t
        else:
            row_steps[r] += 1
            tr = int(row_steps[r])
        optimizer_step(opt, wr, g[r], row_state, tr, l2)
        w[r] = wr
        for k, v in row_state.items():
            if k not in state:
                state[k] = np.full_like(w, opt.initial_accumulator_value) if k == "a" else np.zeros_like(w)
            state[k][r] = v
