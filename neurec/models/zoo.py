"""The NCF model zoo (He et al., WWW 2017) and the MF baseline (Rendle et al., 2020).

Each builder returns an ordinary :class:`neurec.models.Model` with inputs
``[user_ids, item_ids]`` (shape ``(1,)`` each), so compile, fit, predict,
summary, save and recommend all work. Defaults follow the paper's Keras code:
embeddings ``N(0, 0.01)``, hidden layers ReLU, the prediction layer
``Dense(1, sigmoid)`` with ``lecun_uniform`` weights.

Every builder's docstring has an example that runs as printed on a small
synthetic shop (``tests/test_zoo.py`` runs them)::

    from neurec.data import NegativeSampler
    from neurec.datasets import make_purchases
    from neurec.models import NeuMF

    shop = make_purchases(n_users=100, n_items=200)      # ids 0..n-1 in user_index, item_index
    sampler = NegativeSampler((shop.user_index, shop.item_index))   # 4 fresh negatives an epoch
    model = NeuMF(n_users=100, n_items=200)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    history = model.fit(sampler, epochs=2, batch_size=256)
    ids, scores = model.recommend([0, 1], k=5, exclude=sampler.matrix)
"""
from typing import Optional, Sequence

import numpy as np

from neurec import initializers
from neurec.layers import Add, Concatenate, Dense, Dot, Embedding, Flatten, Input, Multiply
from neurec.models._als import als_parts
from neurec.models.model import Model
from neurec.regularizers import L2

__all__ = ["GMF", "MLP", "NeuMF", "MF", "neumf_from_pretrained", "from_ials"]


def _check(n_users, n_items):
    for nm, v in (("n_users", n_users), ("n_items", n_items)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{nm} must be a positive integer, got {v!r}")


def _reg(x):
    return L2(x) if x else None


def _inputs():
    return Input(shape=(1,), dtype="int64", name="user"), Input(shape=(1,), dtype="int64", name="item")


def _emb(n, d, name, reg, stddev=0.01):
    return Embedding(n, d, embeddings_initializer=initializers.RandomNormal(0.0, stddev),
                     embeddings_regularizer=_reg(reg), name=name)


def GMF(n_users: int, n_items: int, factors: int = 8, reg: float = 0.0,
        name: str = "gmf") -> Model:
    """Generalized Matrix Factorization: ``sigmoid(h . (p_u * q_i))``.

    Args:
        n_users, n_items: Sizes of the id ranges (ids are ``0..n-1``).
        factors: Embedding size (the paper's "predictive factors", default 8).
        reg: L2 penalty on the embeddings.
        name: Model name.

    Returns:
        A Model with inputs ``[user, item]`` and output ``(None, 1)``.

    Raises:
        ValueError: If ``n_users`` or ``n_items`` is not a positive integer.

    Example:
        >>> from neurec.data import NegativeSampler
        >>> from neurec.datasets import make_purchases
        >>> from neurec.models import GMF
        >>> shop = make_purchases(n_users=100, n_items=200)   # ids in user_index, item_index
        >>> model = GMF(n_users=100, n_items=200, factors=8)
        >>> model.count_params()                               # (100 + 200) * 8 + 8 + 1
        2409
        >>> model.compile(optimizer="adam", loss="binary_crossentropy")
        >>> history = model.fit(NegativeSampler((shop.user_index, shop.item_index)),
        ...                     epochs=2, batch_size=256, verbose=0)
        >>> model.predict([[0, 1], [5, 7]], verbose=0).shape   # users 0, 1 with items 5, 7
        (2, 1)
    """
    _check(n_users, n_items)
    u, i = _inputs()
    g = _gmf(u, i, n_users, n_items, factors, reg)
    out = Dense(1, activation="sigmoid", kernel_initializer="lecun_uniform", name="prediction")(g)
    return Model([u, i], out, name=name)


def _gmf(u, i, n_users, n_items, factors, reg):
    """GMF's element-wise product of the user and item embeddings (layer names shared by GMF,
    NeuMF and ``neumf_from_pretrained``)."""
    pu = Flatten(name="gmf_user_flat")(_emb(n_users, factors, "gmf_user_embedding", reg)(u))
    qi = Flatten(name="gmf_item_flat")(_emb(n_items, factors, "gmf_item_embedding", reg)(i))
    return Multiply(name="gmf_product")([pu, qi])


def _tower(u, i, n_users, n_items, layers, reg_layers):
    layers = tuple(int(x) for x in layers)
    if len(layers) < 1 or layers[0] % 2 or any(x < 1 for x in layers):
        raise ValueError(f"layers must be positive sizes with an even first entry, got {layers}")
    reg_layers = tuple(reg_layers) if reg_layers is not None else (0.0,) * len(layers)
    if len(reg_layers) != len(layers):
        raise ValueError("reg_layers must have one entry per layer")
    half = layers[0] // 2
    mu = Flatten(name="mlp_user_flat")(_emb(n_users, half, "mlp_user_embedding", reg_layers[0])(u))
    mi = Flatten(name="mlp_item_flat")(_emb(n_items, half, "mlp_item_embedding", reg_layers[0])(i))
    h = Concatenate(name="mlp_concat")([mu, mi])
    for k, units in enumerate(layers[1:], start=1):
        h = Dense(units, activation="relu", kernel_regularizer=_reg(reg_layers[k]), name=f"layer{k}")(h)
    return h


def MLP(n_users: int, n_items: int, layers: Sequence[int] = (64, 32, 16, 8),
        reg_layers: Optional[Sequence[float]] = None, name: str = "mlp") -> Model:
    """Multi-Layer Perceptron over concatenated user and item embeddings.

    Args:
        n_users, n_items: Sizes of the id ranges (ids are ``0..n-1``).
        layers: Tower sizes; ``layers[0]`` is the concatenated embedding size (each
            embedding is ``layers[0] // 2`` wide), the rest are ReLU layers.
        reg_layers: L2 penalty per entry of ``layers``.
        name: Model name.

    Returns:
        A Model with inputs ``[user, item]`` and output ``(None, 1)``.

    Raises:
        ValueError: If ``n_users`` or ``n_items`` is not a positive integer, ``layers``
            is empty, has a size below 1 or an odd first size, or ``reg_layers`` has
            another length than ``layers``.

    Example:
        >>> from neurec.data import NegativeSampler
        >>> from neurec.datasets import make_purchases
        >>> from neurec.models import MLP
        >>> shop = make_purchases(n_users=100, n_items=200)
        >>> model = MLP(n_users=100, n_items=200, layers=(32, 16, 8))
        >>> [layer.units for layer in model.layers if hasattr(layer, "units")]
        [16, 8, 1]
        >>> model.compile(optimizer="adam", loss="binary_crossentropy")
        >>> history = model.fit(NegativeSampler((shop.user_index, shop.item_index)),
        ...                     epochs=2, batch_size=256, verbose=0)
        >>> ids, scores = model.recommend([0, 1], k=5)         # top 5 items of users 0 and 1
        >>> ids.shape, scores.shape
        ((2, 5), (2, 5))
    """
    _check(n_users, n_items)
    u, i = _inputs()
    h = _tower(u, i, n_users, n_items, layers, reg_layers)
    out = Dense(1, activation="sigmoid", kernel_initializer="lecun_uniform", name="prediction")(h)
    return Model([u, i], out, name=name)


def NeuMF(n_users: int, n_items: int, factors: int = 8, layers: Sequence[int] = (64, 32, 16, 8),
          reg_mf: float = 0.0, reg_layers: Optional[Sequence[float]] = None,
          name: str = "neumf") -> Model:
    """Neural Matrix Factorization: GMF and MLP side by side, fused by ``Dense(1, sigmoid)``.

    Args:
        n_users, n_items: Sizes of the id ranges (ids are ``0..n-1``).
        factors: GMF embedding size.
        layers: MLP tower (see :func:`MLP`).
        reg_mf: L2 penalty on the GMF embeddings.
        reg_layers: L2 penalty per MLP layer.
        name: Model name.

    Returns:
        A Model with inputs ``[user, item]`` and output ``(None, 1)``.

    Raises:
        ValueError: As :func:`GMF` and :func:`MLP`.

    Example:
        >>> from neurec.data import NegativeSampler
        >>> from neurec.datasets import make_purchases
        >>> from neurec.models import NeuMF
        >>> shop = make_purchases(n_users=100, n_items=200)
        >>> sampler = NegativeSampler((shop.user_index, shop.item_index), num_negatives=4)
        >>> model = NeuMF(n_users=100, n_items=200, factors=8, layers=(32, 16, 8))
        >>> model.output_shape
        (None, 1)
        >>> model.compile(optimizer="adam", loss="binary_crossentropy")
        >>> history = model.fit(sampler, epochs=2, batch_size=256, verbose=0)
        >>> ids, scores = model.recommend([0, 1], k=5, exclude=sampler.matrix)
        >>> bool(sampler.matrix.contains(0, ids[0]).any())      # none bought by user 0
        False
    """
    _check(n_users, n_items)
    u, i = _inputs()
    g = _gmf(u, i, n_users, n_items, factors, reg_mf)
    h = _tower(u, i, n_users, n_items, layers, reg_layers)
    out = Dense(1, activation="sigmoid", kernel_initializer="lecun_uniform", name="prediction")(
        Concatenate(name="neumf_concat")([g, h]))
    return Model([u, i], out, name=name)


def neumf_from_pretrained(gmf: Model, mlp: Model, alpha: float = 0.5, name: str = "neumf") -> Model:
    """A NeuMF initialised from trained GMF and MLP models (the paper's pretraining).

    Embeddings and hidden layers are copied; the prediction layer is
    ``[alpha * h_gmf, (1 - alpha) * h_mlp]`` with bias ``alpha * b_gmf + (1 - alpha) * b_mlp``.

    Args:
        gmf: A :func:`GMF` model (trained).
        mlp: An :func:`MLP` model (trained) with the same ``n_users`` and ``n_items``.
        alpha: Weight of GMF in the merged prediction layer, in ``[0, 1]`` (the paper: 0.5).
        name: Model name.

    Returns:
        An uncompiled NeuMF with GMF's factors and MLP's tower; compile it (the paper
        fine-tunes with SGD) and fit.

    Raises:
        ValueError: If the models' sizes do not fit together or alpha is outside [0, 1].

    Example:
        >>> from neurec.data import NegativeSampler
        >>> from neurec.datasets import make_purchases
        >>> from neurec.models import GMF, MLP, neumf_from_pretrained
        >>> shop = make_purchases(n_users=100, n_items=200)
        >>> sampler = NegativeSampler((shop.user_index, shop.item_index))
        >>> gmf, mlp = GMF(100, 200, factors=8), MLP(100, 200, layers=(32, 16, 8))
        >>> for m in (gmf, mlp):
        ...     m.compile(optimizer="adam", loss="binary_crossentropy")
        ...     _ = m.fit(sampler, epochs=2, batch_size=256, verbose=0)
        >>> model = neumf_from_pretrained(gmf, mlp, alpha=0.5)
        >>> model.get_layer("prediction").kernel.shape          # 8 GMF + 8 MLP inputs
        (16, 1)
        >>> model.compile(optimizer="sgd", loss="binary_crossentropy")
        >>> history = model.fit(sampler, epochs=1, batch_size=256, verbose=0)
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    ge = gmf.get_layer("gmf_user_embedding").embeddings
    me = mlp.get_layer("mlp_user_embedding").embeddings
    n_items = gmf.get_layer("gmf_item_embedding").input_dim
    if me.shape[0] != ge.shape[0] or mlp.get_layer("mlp_item_embedding").input_dim != n_items:
        raise ValueError("GMF and MLP must have the same n_users and n_items")
    sizes = [me.shape[1] * 2] + [l.units for l in mlp.layers if l.name.startswith("layer")]
    model = NeuMF(ge.shape[0], n_items, factors=ge.shape[1], layers=sizes, name=name)
    for layer in gmf.layers + mlp.layers:
        if layer.name != "prediction" and layer.weights:
            model.get_layer(layer.name).set_weights(layer.get_weights())
    gk, gb = gmf.get_layer("prediction").get_weights()
    mk, mb = mlp.get_layer("prediction").get_weights()
    model.get_layer("prediction").set_weights(
        [np.concatenate([alpha * gk, (1 - alpha) * mk]), alpha * gb + (1 - alpha) * mb])
    return model


def MF(n_users: int, n_items: int, factors: int = 64, use_bias: bool = True,
       reg: float = 0.0, init_stddev: float = 0.01, name: str = "mf") -> Model:
    """Dot-product matrix factorization with user, item and global biases.

    ``score = sigmoid(w * (p_u . q_i + b_u + b_i) + b)`` trained with logistic loss: the
    strong baseline of Rendle et al. (2020). ``recommend`` uses the blocked
    dot-product fast path for it.

    Args:
        n_users, n_items: Sizes of the id ranges (ids are ``0..n-1``).
        factors: Embedding size.
        use_bias: Learn per-user and per-item biases.
        reg: L2 penalty on embeddings and biases.
        init_stddev: Standard deviation of the embedding initialisation (0.01; 0.1 trained
            worse in every benchmark setting).
        name: Model name.

    Returns:
        A Model with inputs ``[user, item]`` and output ``(None, 1)``.

    Raises:
        ValueError: If ``n_users`` or ``n_items`` is not a positive integer.

    Example:
        >>> from neurec.data import NegativeSampler
        >>> from neurec.datasets import make_purchases
        >>> from neurec.models import MF
        >>> shop = make_purchases(n_users=100, n_items=200)
        >>> model = MF(n_users=100, n_items=200, factors=16)
        >>> model.count_params()                  # (100 + 200) * (16 + 1) + 1 + 1
        5102
        >>> model.compile(optimizer="adam", loss="binary_crossentropy")
        >>> history = model.fit(NegativeSampler((shop.user_index, shop.item_index)),
        ...                     epochs=2, batch_size=256, verbose=0)
        >>> model.predict([[0, 1], [5, 7]], verbose=0).shape   # users 0, 1 with items 5, 7
        (2, 1)
    """
    _check(n_users, n_items)
    u, i = _inputs()
    pu = Flatten(name="mf_user_flat")(_emb(n_users, factors, "mf_user_embedding", reg, init_stddev)(u))
    qi = Flatten(name="mf_item_flat")(_emb(n_items, factors, "mf_item_embedding", reg, init_stddev)(i))
    s = Dot(axes=1, name="mf_dot")([pu, qi])
    if use_bias:
        bu = Flatten(name="mf_user_bias_flat")(Embedding(n_users, 1, embeddings_initializer="zeros",
                                                         embeddings_regularizer=_reg(reg),
                                                         name="mf_user_bias")(u))
        bi = Flatten(name="mf_item_bias_flat")(Embedding(n_items, 1, embeddings_initializer="zeros",
                                                         embeddings_regularizer=_reg(reg),
                                                         name="mf_item_bias")(i))
        s = Add(name="mf_sum")([s, bu, bi])
    out = Dense(1, activation="sigmoid", kernel_initializer="ones", name="prediction")(s)
    return Model([u, i], out, name=name)


def from_ials(als_model: Model, architecture: str = "neumf", layers: Sequence[int] = (64, 32, 16, 8),
              scale: float = 1.0, name: Optional[str] = None) -> Model:
    """A GMF, MLP or NeuMF whose embeddings start from iALS factors (NCF pretraining, with iALS).

    The NCF paper pretrains NeuMF from trained GMF and MLP models
    (:func:`neumf_from_pretrained`); iALS factors are a faster and stronger start.
    The user/item factors ``p_u, q_i`` of ``als_model`` (a dot-product model trained
    with :class:`neurec.optimizers.ALS`) initialise GMF's embeddings, and their
    first ``layers[0] // 2`` columns MLP's (zero-padded when the tower is wider);
    GMF's prediction weights are ``scale`` (so its logit starts as
    ``scale * p_u . q_i``). Fine-tune the result with Adam and a NegativeSampler.

    Args:
        als_model: A trained dot-product model (``MF``, ``GMF``, a ``Dot`` graph).
        architecture: ``'neumf'``, ``'gmf'`` or ``'mlp'``.
        layers: The MLP tower (``'mlp'`` and ``'neumf'``).
        scale: Initial weight of each factor product in GMF's prediction layer
            (NeuMF's GMF half gets ``scale``, its MLP half starts at ``lecun_uniform``).
        name: Model name (default: the architecture).

    Returns:
        An uncompiled Model with inputs ``[user, item]``.

    Raises:
        ValueError: If ``als_model`` is not a dot-product model or ``architecture`` is unknown.

    Example:
        >>> from neurec.data import NegativeSampler
        >>> from neurec.datasets import make_purchases
        >>> from neurec.models import MF, from_ials
        >>> from neurec.optimizers import ALS
        >>> shop = make_purchases(n_users=100, n_items=200)
        >>> sampler = NegativeSampler((shop.user_index, shop.item_index))
        >>> mf = MF(n_users=100, n_items=200, factors=16, use_bias=False)
        >>> mf.compile(optimizer=ALS(alpha=8, regularization=30, nu=1))
        >>> _ = mf.fit(sampler.matrix, epochs=4, verbose=0)   # iALS on the purchase matrix
        >>> model = from_ials(mf, "neumf", layers=(32, 16, 8))
        >>> model.get_layer("gmf_user_embedding").input_dim, model.output_shape
        (100, (None, 1))
        >>> model.compile(optimizer="adam", loss="binary_crossentropy")
        >>> history = model.fit(sampler, epochs=1, batch_size=256, verbose=0)
    """
    if architecture not in ("neumf", "gmf", "mlp"):
        raise ValueError(f"architecture must be 'neumf', 'gmf' or 'mlp', got {architecture!r}")
    parts = als_parts(als_model)
    p, q = parts.user.embeddings, parts.item.embeddings
    nu_, ni_, f = p.shape[0], q.shape[0], p.shape[1]
    name = name or architecture
    if architecture == "gmf":
        model = GMF(nu_, ni_, factors=f, name=name)
    elif architecture == "mlp":
        model = MLP(nu_, ni_, layers=layers, name=name)
    else:
        model = NeuMF(nu_, ni_, factors=f, layers=layers, name=name)
    if architecture in ("gmf", "neumf"):
        model.get_layer("gmf_user_embedding").embeddings[...] = p
        model.get_layer("gmf_item_embedding").embeddings[...] = q
    if architecture in ("mlp", "neumf"):
        half = model.get_layer("mlp_user_embedding").output_dim
        k = min(half, f)
        for lname, src in (("mlp_user_embedding", p), ("mlp_item_embedding", q)):
            e = model.get_layer(lname).embeddings
            e[...] = 0.0
            e[:, :k] = src[:, :k]
    pred = model.get_layer("prediction")
    if architecture == "gmf":
        pred.kernel[...] = scale
        pred.bias[...] = 0.0
    elif architecture == "neumf":
        pred.kernel[:f] = scale
    return model
