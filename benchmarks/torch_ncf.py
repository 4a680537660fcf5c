"""PyTorch reference implementation of the NCF models (GMF, MLP, NeuMF) and a logistic MF.

Faithful to the NCF authors' Keras code (hexiangnan/neural_collaborative_filtering, files GMF.py,
MLP.py, NeuMF.py), which is the baseline neurec is measured against:

- Embeddings: N(0, 0.01) (Keras 1 ``initializations.normal(scale=0.01)``), dense gradients, so
  ``torch.optim.Adam`` updates (and decays the moments of) every row of every table on every
  step, as Keras/Theano dense Adam does. That is the cost neurec's lazy row-wise Adam avoids.
- GMF: user * item (elementwise, factor 8) -> Dense(1, sigmoid).
- MLP: concat(user 32, item 32) -> Dense(32, relu) -> Dense(16, relu) -> Dense(8, relu)
  -> Dense(1, sigmoid). ``layers=(64, 32, 16, 8)``: layers[0] is the concatenated embedding width.
- NeuMF: concat(GMF product (8), MLP tower output (8)) -> Dense(1, sigmoid); separate embedding
  tables for the two branches.
- MF: dot(user, item) + user bias + item bias + global bias -> sigmoid (Rendle et al. 2020).

Initialisation of Dense layers (our choice, documented): hidden Dense layers use Keras'
``glorot_uniform`` weights and zero bias (what the NCF code gets from Keras defaults). The final
prediction layer uses ``glorot_uniform`` too by default (Keras' default, which neurec's builders
use); the NCF code itself asks for ``init='lecun_uniform'`` (Keras 1: U(+-sqrt(3 / fan_in))),
available as ``final_init="lecun_uniform"``. Biases start at zero.

Every ``forward`` returns logits; the sigmoid is fused into the loss
(``BCEWithLogitsLoss``), which equals Keras' sigmoid + binary cross-entropy except for Keras'
clipping of probabilities to [1e-7, 1 - 1e-7].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

_INITS = ("glorot_uniform", "lecun_uniform")


def _init_dense(layer: nn.Linear, init: str) -> None:
    """Keras-style init of a Linear layer in place: glorot_uniform or lecun_uniform, zero bias."""
    fan_out, fan_in = layer.weight.shape
    if init == "glorot_uniform":
        bound = math.sqrt(6.0 / (fan_in + fan_out))
    elif init == "lecun_uniform":
        bound = math.sqrt(3.0 / fan_in)
    else:
        raise ValueError(f"init must be one of {_INITS}, got {init!r}.")
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound)
        layer.bias.zero_()


def _embedding(num: int, dim: int, std: float, sparse: bool = False) -> nn.Embedding:
    emb = nn.Embedding(num, dim, sparse=sparse)
    nn.init.normal_(emb.weight, mean=0.0, std=std)
    return emb


def _check_sizes(n_users: int, n_items: int, **dims: int) -> None:
    if n_users < 1 or n_items < 1:
        raise ValueError(f"n_users and n_items must be >= 1, got {n_users} and {n_items}.")
    for name, value in dims.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}.")


def _check_layers(layers: Sequence[int]) -> tuple[int, ...]:
    layers = tuple(int(x) for x in layers)
    if len(layers) < 1 or any(x < 1 for x in layers) or layers[0] % 2:
        raise ValueError(
            f"layers must be positive widths with an even first entry (the concatenation of two "
            f"equal embeddings), e.g. (64, 32, 16, 8); got {layers}."
        )
    return layers


class GMF(nn.Module):
    """Generalized matrix factorization: Dense(1, sigmoid) on the elementwise product.

    Args:
        n_users: user id count.
        n_items: item id count.
        factors: embedding width (NCF default 8).
        init_std: std of the normal embedding init (NCF: 0.01).
        final_init: ``"glorot_uniform"`` (Keras default) or ``"lecun_uniform"`` (NCF code).
        sparse: sparse embedding gradients (for ``torch.optim.SparseAdam``); default dense.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        factors: int = 8,
        init_std: float = 0.01,
        final_init: str = "glorot_uniform",
        sparse: bool = False,
    ) -> None:
        super().__init__()
        _check_sizes(n_users, n_items, factors=factors)
        self.user_embedding = _embedding(n_users, factors, init_std, sparse)
        self.item_embedding = _embedding(n_items, factors, init_std, sparse)
        self.prediction = nn.Linear(factors, 1)
        _init_dense(self.prediction, final_init)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Returns logits of shape ``(batch,)``."""
        x = self.user_embedding(users) * self.item_embedding(items)
        return self.prediction(x).squeeze(-1)


class MLP(nn.Module):
    """NCF multi-layer perceptron on concatenated user/item embeddings.

    Args:
        n_users: user id count.
        n_items: item id count.
        layers: ``layers[0]`` is the width of the concatenated embeddings (each ``layers[0]/2``),
            then one ReLU Dense per further entry (NCF default ``(64, 32, 16, 8)``).
        init_std: std of the normal embedding init.
        final_init: init of the prediction layer (see module docstring).
        sparse: sparse embedding gradients (for ``torch.optim.SparseAdam``); default dense.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        layers: Sequence[int] = (64, 32, 16, 8),
        init_std: float = 0.01,
        final_init: str = "glorot_uniform",
        sparse: bool = False,
    ) -> None:
        super().__init__()
        layers = _check_layers(layers)
        _check_sizes(n_users, n_items)
        self.user_embedding = _embedding(n_users, layers[0] // 2, init_std, sparse)
        self.item_embedding = _embedding(n_items, layers[0] // 2, init_std, sparse)
        self.tower = _tower(layers)
        self.prediction = nn.Linear(layers[-1], 1)
        _init_dense(self.prediction, final_init)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Returns logits of shape ``(batch,)``."""
        x = torch.cat([self.user_embedding(users), self.item_embedding(items)], dim=-1)
        return self.prediction(self.tower(x)).squeeze(-1)


def _tower(layers: tuple[int, ...]) -> nn.Sequential:
    mods: list[nn.Module] = []
    for fan_in, fan_out in zip(layers[:-1], layers[1:]):
        lin = nn.Linear(fan_in, fan_out)
        _init_dense(lin, "glorot_uniform")
        mods += [lin, nn.ReLU()]
    return nn.Sequential(*mods)


class NeuMF(nn.Module):
    """Neural matrix factorization: GMF branch and MLP branch concatenated into Dense(1, sigmoid).

    Args:
        n_users: user id count.
        n_items: item id count.
        factors: GMF embedding width (NCF default 8).
        layers: MLP tower (NCF default ``(64, 32, 16, 8)``).
        init_std: std of the normal embedding init.
        final_init: init of the prediction layer (see module docstring).
        sparse: sparse embedding gradients (for ``torch.optim.SparseAdam``); default dense.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        factors: int = 8,
        layers: Sequence[int] = (64, 32, 16, 8),
        init_std: float = 0.01,
        final_init: str = "glorot_uniform",
        sparse: bool = False,
    ) -> None:
        super().__init__()
        layers = _check_layers(layers)
        _check_sizes(n_users, n_items, factors=factors)
        self.mf_user_embedding = _embedding(n_users, factors, init_std, sparse)
        self.mf_item_embedding = _embedding(n_items, factors, init_std, sparse)
        self.mlp_user_embedding = _embedding(n_users, layers[0] // 2, init_std, sparse)
        self.mlp_item_embedding = _embedding(n_items, layers[0] // 2, init_std, sparse)
        self.tower = _tower(layers)
        self.prediction = nn.Linear(factors + layers[-1], 1)
        _init_dense(self.prediction, final_init)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Returns logits of shape ``(batch,)``."""
        mf = self.mf_user_embedding(users) * self.mf_item_embedding(items)
        mlp = self.tower(
            torch.cat([self.mlp_user_embedding(users), self.mlp_item_embedding(items)], dim=-1)
        )
        return self.prediction(torch.cat([mf, mlp], dim=-1)).squeeze(-1)


class MF(nn.Module):
    """Logistic matrix factorization with biases: sigmoid(p_u . q_i + b_u + b_i + b).

    Args:
        n_users: user id count.
        n_items: item id count.
        factors: embedding width.
        init_std: std of the normal embedding init (biases start at zero).
        sparse: sparse embedding gradients (for ``torch.optim.SparseAdam``); default dense.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        factors: int = 32,
        init_std: float = 0.01,
        sparse: bool = False,
    ) -> None:
        super().__init__()
        _check_sizes(n_users, n_items, factors=factors)
        self.user_embedding = _embedding(n_users, factors, init_std, sparse)
        self.item_embedding = _embedding(n_items, factors, init_std, sparse)
        self.user_bias = nn.Embedding(n_users, 1, sparse=sparse)
        self.item_bias = nn.Embedding(n_items, 1, sparse=sparse)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)
        self.global_bias = nn.Parameter(torch.zeros(()))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Returns logits of shape ``(batch,)``."""
        dot = (self.user_embedding(users) * self.item_embedding(items)).sum(-1)
        return (
            dot
            + self.user_bias(users).squeeze(-1)
            + self.item_bias(items).squeeze(-1)
            + self.global_bias
        )

    def l2_rows(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Per-example squared norm of the parameters the example touches, shape ``(batch,)``."""
        return (
            (self.user_embedding(users) ** 2).sum(-1)
            + (self.item_embedding(items) ** 2).sum(-1)
            + self.user_bias(users).squeeze(-1) ** 2
            + self.item_bias(items).squeeze(-1) ** 2
        )


def build_model(
    name: str,
    n_users: int,
    n_items: int,
    factors: int | None = None,
    layers: Sequence[int] = (64, 32, 16, 8),
    init_std: float = 0.01,
    final_init: str = "glorot_uniform",
    sparse: bool = False,
) -> nn.Module:
    """Builds one of the models by name.

    Args:
        name: ``"gmf"``, ``"mlp"``, ``"neumf"`` or ``"mf"``.
        n_users: user id count.
        n_items: item id count.
        factors: embedding width of GMF / NeuMF's GMF branch (default 8) or MF (default 32);
            ignored by MLP.
        layers: MLP tower for ``"mlp"`` and ``"neumf"``.
        init_std: std of the normal embedding init.
        final_init: prediction-layer init (``"glorot_uniform"`` or ``"lecun_uniform"``).
        sparse: sparse embedding gradients (pair with ``torch.optim.SparseAdam``).

    Returns:
        The ``nn.Module``; its ``forward(users, items)`` returns logits.

    Raises:
        ValueError: on an unknown name or bad sizes.
    """
    if final_init not in _INITS:
        raise ValueError(f"final_init must be one of {_INITS}, got {final_init!r}.")
    name = name.lower()
    if name == "gmf":
        return GMF(n_users, n_items, factors or 8, init_std, final_init, sparse)
    if name == "mlp":
        return MLP(n_users, n_items, layers, init_std, final_init, sparse)
    if name == "neumf":
        return NeuMF(n_users, n_items, factors or 8, layers, init_std, final_init, sparse)
    if name == "mf":
        return MF(n_users, n_items, factors or 32, init_std, sparse)
    raise ValueError(f"model must be one of 'gmf', 'mlp', 'neumf', 'mf'; got {name!r}.")
