"""Growing a trained model's embedding tables: ``Model.resize_embeddings``.

New users and items get rows of their own while everything learned so far stays as it
is: each grown :class:`neurec.layers.Embedding` keeps its rows bit for bit and draws the
new ones with its initializer (``Embedding.resize``); the optimizer keeps its state
(Adam's moments, per-row step counts, accumulators) and gives the new rows a fresh
table's state (``Optimizer.build``); the plan is rebuilt around the new arrays. Python
owns every array, so growing is allocate, copy and rebuild: the C core is not involved.
"""
import zlib
from typing import Any, Dict, List, Mapping, Optional, Union

import numpy as np

from neurec import initializers
from neurec.layers.core import Embedding, InputLayer
from neurec.models._plan import PLAN_LOCK

__all__ = ["ResizeMixin"]


def _layer_seed(seed: Optional[int], name: str) -> Optional[int]:
    """A seed of its own for each table (tables of equal shapes must not get equal rows),
    fixed by the caller's seed and the layer's name."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"resize_embeddings: seed must be a non-negative integer or None, "
                         f"got {seed!r}")
    ss = np.random.SeedSequence(int(seed), spawn_key=(zlib.crc32(name.encode("utf-8")),))
    return int(ss.generate_state(1, np.uint64)[0])


class ResizeMixin:
    """``Model.resize_embeddings`` (a base class of :class:`neurec.models.Model`)."""

    def _embeddings_by_input(self) -> Dict[str, List[Embedding]]:
        """``{input name: [Embedding layers fed by it]}``, in graph order."""
        out: Dict[str, List[Embedding]] = {}
        for node in self._nodes_in_order:
            if isinstance(node.layer, Embedding):
                src = node.inputs[0].node.layer
                if isinstance(src, InputLayer):
                    layers = out.setdefault(src.name, [])
                    if node.layer not in layers:
                        layers.append(node.layer)
        return out

    def resize_embeddings(self, sizes: Mapping[str, int], seed: Optional[int] = None,
                          initializer: Union[str, Dict[str, Any], "initializers.Initializer",
                                             None] = None) -> None:
        """Grow embedding tables for new ids (new users, new items), keeping what was learned.

        Every grown table keeps its rows bit for bit and the optimizer keeps their state
        (Adam's moments and per-row step counts, Adagrad's and RMSprop's accumulators);
        the new rows are drawn by each layer's initializer, as in a table built at the new
        size, and start with a fresh table's optimizer state: a later ``fit`` continues
        exactly as a model built at the larger size with the same rows and state would.
        Ids below the old sizes keep their meaning. Call it between calls, not while
        another thread fits or predicts with the model.

        Args:
            sizes: ``{key: new number of ids}``. A key is a model input's name (every
                Embedding fed by that input grows: NeuMF's GMF and MLP user tables for
                ``'user'``) or an Embedding layer's name. The zoo models' inputs are named
                ``'user'`` and ``'item'``. A size equal to the current one changes nothing.
            seed: Seed of the new rows: the same seed gives the same rows (each table
                draws its own stream from the seed and its layer's name). Default: the
                initializers' own generators (neurec's global one unless seeded).
            initializer: Initializer of the new rows instead of each layer's own, e.g.
                ``'zeros'``: a cold item of a model with item side features is then scored
                from its features alone until ``fit`` trains its row.

        Returns:
            None. The model's Embedding layers hold the new tables.

        Raises:
            TypeError: If ``sizes`` is not a mapping.
            ValueError: For an unknown key (the message lists the valid ones), a size that
                is not an integer or is smaller than the current table (tables never
                shrink: the message names the layer and both sizes), or two keys asking
                the same table for different sizes.

        Example:
            >>> model = neurec.models.NeuMF(n_users, n_items)
            >>> model.compile(optimizer="adam", loss="binary_crossentropy")
            >>> model.fit(sampler, epochs=5)
            >>> model.resize_embeddings({"user": n_users + 100, "item": n_items + 20}, seed=7)
            >>> model.fit(new_sampler, epochs=1)   # Adam continues with its state
        """
        self._require_graph()
        if not isinstance(sizes, Mapping):
            raise TypeError(f"resize_embeddings: sizes must be a dict {{input or Embedding name: "
                            f"size}}, got {type(sizes).__name__}")
        by_input = self._embeddings_by_input()
        by_name = {layer.name: layer for layer in self._layers if isinstance(layer, Embedding)}
        plan: Dict[str, int] = {}
        layers: Dict[str, Embedding] = {}
        for key, size in sizes.items():
            if key in by_input:
                targets = by_input[key]
            elif key in by_name:
                targets = [by_name[key]]
            else:
                raise ValueError(f"resize_embeddings: {key!r} is neither an input that feeds an "
                                 f"Embedding ({sorted(by_input)}) nor an Embedding layer "
                                 f"({sorted(by_name)}) of model {self.name!r}")
            if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
                raise ValueError(f"resize_embeddings: the size for {key!r} must be an integer, "
                                 f"got {size!r}")
            for layer in targets:
                if plan.get(layer.name, int(size)) != int(size):
                    raise ValueError(f"resize_embeddings: Embedding {layer.name!r} is asked for "
                                     f"{plan[layer.name]} and {int(size)} rows")
                if int(size) < layer.input_dim:
                    raise ValueError(f"resize_embeddings: Embedding {layer.name!r} has "
                                     f"{layer.input_dim} rows and cannot shrink to {int(size)} "
                                     "(tables only grow; retire items instead)")
                plan[layer.name], layers[layer.name] = int(size), layer
        seeds = {name: _layer_seed(seed, name) for name in plan}
        if initializer is not None:
            initializer = initializers.get(initializer)
        opt = self.optimizer if self._compiled else None
        with PLAN_LOCK:
            for name, size in plan.items():
                layers[name].resize(size, seed=seeds[name], initializer=initializer)
            self._plan = None
            if opt is not None and opt.built:
                # the optimizer's state grows now, so that save() writes state of the new
                # shapes even before the next fit
                self._get_plan()
