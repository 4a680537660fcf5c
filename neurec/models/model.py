"""The functional ``Model``: build a graph of layers, compile, fit, predict, evaluate.

A Model is described in Python and trained in C: ``compile`` lowers the graph
to a plan that the C core runs for whole chunks of batches with the GIL
released, returning to Python only to report progress, run callbacks and let
Ctrl-C through.
"""
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from neurec import losses as losses_mod
from neurec import metrics as metrics_mod
from neurec import optimizers as optimizers_mod
from neurec._registry import get_registered_object, register_serializable
from neurec.layers.base import KerasTensor, Layer
from neurec.models import _adapters, _als, _data, _functional, _keras_api, _training, _weights
from neurec.models import recommend as recommend_mod
from neurec.models._distributed import fit_plan
from neurec.models._distributed import recommend as distributed_recommend
from neurec.models._dp_output import check_gather, recommend_to_file
from neurec.models._dp_predict import DistributedInference
from neurec.models._foldin import FoldIn
from neurec.models._keras_api import KerasAPIMixin
from neurec.models._lifecycle import Lifecycle
from neurec.models._mp_score import ShardScoring
from neurec.models._plan import PLAN_LOCK, lower, plan_is_current, plan_key
from neurec.models._resize import ResizeMixin
from neurec.models._retire import RetireMixin
from neurec.models._retrieval import IndexMixin
from neurec.models._summary import summary_text

__all__ = ["Model"]


@register_serializable()
class Model(ResizeMixin, RetireMixin, IndexMixin, Lifecycle, FoldIn, ShardScoring,
            DistributedInference, KerasAPIMixin):
    """A model: a graph of layers from ``inputs`` to ``outputs`` (Keras functional API).

    Example:
        >>> from neurec.layers import Input, Embedding, Flatten, Dot, Dense
        >>> from neurec.models import Model
        >>> u, i = Input(shape=(1,)), Input(shape=(1,))
        >>> eu = Flatten()(Embedding(100, 8)(u)); ei = Flatten()(Embedding(50, 8)(i))
        >>> model = Model([u, i], Dense(1, activation='sigmoid')(Dot(axes=1)([eu, ei])))
        >>> model.compile(optimizer='adam', loss='binary_crossentropy', metrics=['accuracy'])

    Args:
        inputs: A symbolic tensor from :func:`neurec.layers.Input`, or a list or dict of them.
        outputs: The symbolic output tensor (neurec models have one output).
        name: Model name (default ``'functional'``).

    Raises:
        ValueError: If the graph is disconnected or ``outputs`` is not reachable from ``inputs``.
    """

    def __init__(self, inputs=None, outputs=None, name: Optional[str] = None, **kwargs):
        _keras_api.check_model_kwargs(kwargs)  # Keras's trainable=True only
        self.name = name or "functional"
        self.stop_training = False
        self.history = None
        self.optimizer = None
        self.loss = None
        self.compiled_metrics: List[metrics_mod.Metric] = []
        self._compiled = False
        self._plan = None
        self._builder = None
        self._plan_key: tuple = ()  # see _plan.plan_key
        self._item_popularity = None  # of the last NegativeSampler fit, for recommend
        if inputs is not None or outputs is not None:
            self._init_graph(inputs, outputs)

    # -- graph -------------------------------------------------------------------
    def _init_graph(self, inputs, outputs) -> None:
        inputs, output = _functional.check_endpoints(inputs, outputs)
        self.inputs = inputs
        self.outputs = [output]
        self._nodes_in_order, self._layers = _functional.topological_order(inputs, output)

    @property
    def layers(self) -> List[Layer]:
        """The model's layers, inputs first, in topological order."""
        return list(self._layers)

    @property
    def input_names(self) -> List[str]:
        return [t.node.layer.name for t in self.inputs]

    @property
    def output_names(self) -> List[str]:
        return [self.outputs[0].node.layer.name]

    @property
    def output_shape(self):
        return self.outputs[0].shape

    @property
    def input_shape(self):
        shapes = [t.shape for t in self.inputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output(self):
        return self.outputs[0]

    @property
    def input(self):
        return self.inputs[0] if len(self.inputs) == 1 else self.inputs

    def get_layer(self, name: Optional[str] = None, index: Optional[int] = None) -> Layer:
        """A layer by name or by index in :attr:`layers`.

        Raises:
            ValueError: If no layer matches.
        """
        if index is not None:
            if not -len(self._layers) <= index < len(self._layers):
                raise ValueError(f"index {index} out of range: the model has {len(self._layers)} layers")
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name!r}. Existing layers: {[l.name for l in self._layers]}")

    # -- weights -----------------------------------------------------------------
    @property
    def weights(self) -> List[np.ndarray]:
        """Live weight arrays of every layer, in layer order."""
        if getattr(self, "_shards", None) is not None:  # ModelParallel: gather (every rank)
            self._shards.unshard()
        return [w for layer in self._layers for w in layer.weights]

    @property
    def trainable_weights(self) -> List[np.ndarray]:
        return [w for layer in self._layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self) -> List[np.ndarray]:
        return [w for layer in self._layers for w in layer.non_trainable_weights]

    def get_weights(self) -> List[np.ndarray]:
        """Copies of all weights, in layer order."""
        return [w.copy() for w in self.weights]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Copy ``weights`` into the model's arrays in place.

        Raises:
            ValueError: If the number or shapes of the arrays do not match.
        """
        weights = list(weights)
        if len(weights) != len(self.weights):
            raise ValueError(f"Model {self.name!r} has {len(self.weights)} weight arrays, got {len(weights)}")
        pos = 0
        for layer in self._layers:
            k = len(layer.weights)
            if k:
                layer.set_weights(weights[pos:pos + k])
            pos += k

    def count_params(self) -> int:
        return int(sum(w.size for w in self.weights))

    def _regularization_penalty(self) -> float:
        total = 0.0
        for layer in self._layers:
            for _, w, reg in layer._weights:
                if reg is not None:
                    total += reg(w)
        return total

    # -- compile -----------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None,
                weighted_metrics=None, run_eagerly: bool = False, steps_per_execution: int = 1,
                jit_compile="auto", auto_scale_loss: bool = True, hogwild: bool = False) -> None:
        """Configure the model for training, as ``keras.Model.compile``.

        Args:
            optimizer: Name (``'adam'``, ``'sgd'``, ``'adagrad'``, ``'rmsprop'``, ``'als'``) or
                an :mod:`neurec.optimizers` object. :class:`neurec.optimizers.ALS` (implicit
                alternating least squares) trains dot-product models (``MF``, ``GMF``, a
                ``Dot`` of two embeddings) on an interaction matrix: then ``fit(matrix)``.
            loss: ``'binary_crossentropy'``, ``'mse'``, ``'mae'`` or a :mod:`neurec.losses` object
                (optional with ALS, default ``'mse'``: used by ``evaluate`` only).
            metrics: List of ``'accuracy'``, ``'binary_accuracy'``, ``'auc'``, ``'mse'``, ``'mae'``
                or :mod:`neurec.metrics` objects.
            loss_weights, weighted_metrics: Not supported (one output, unweighted metrics):
                they raise.
            run_eagerly, steps_per_execution, jit_compile: neurec always runs compiled C:
                ``run_eagerly=True``, ``jit_compile=True`` and ``steps_per_execution > 1``
                have no effect and warn once. ``auto_scale_loss``: as in Keras without
                mixed precision, nothing to scale (float32 only).
            hogwild: With sparse embedding updates and several threads, let each thread
                train whole batches on its own and apply every update (embedding rows and
                dense weights) at once, without synchronisation (as word2vec and LightFM do).
                Faster (about 2x on two cores for NeuMF); results then vary from run to run.
                Default False: deterministic for a fixed thread count.

        Raises:
            ValueError: For an unknown optimizer, loss or metric, or ALS on a model that is
                not a dot product.
        """
        self._require_graph()
        if isinstance(optimizer, optimizers_mod.ALS) or (isinstance(optimizer, str) and
                                                          optimizer.lower() == "als"):
            _als.als_parts(self)  # raises, naming the fix, for a model that is not a dot product
            if loss is None:
                loss = "mse"  # for evaluate(); ALS minimises its own weighted squared error
        if loss is None:
            raise ValueError("compile: pass a loss, e.g. loss='binary_crossentropy'")
        _keras_api.check_compile_args(loss_weights, weighted_metrics, run_eagerly,
                                      steps_per_execution, jit_compile)
        self.optimizer = optimizers_mod.get(optimizer)
        self.loss = losses_mod.get(loss)
        if metrics is None:
            metrics = []
        if isinstance(metrics, dict):
            metrics = [m for v in metrics.values() for m in (v if isinstance(v, (list, tuple)) else [v])]
        if not isinstance(metrics, (list, tuple)):
            metrics = [metrics]
        last = self.output_shape[-1] or 1
        self.compiled_metrics = [metrics_mod.get(m, self.loss, last) for m in metrics]
        names = [m.name for m in self.compiled_metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"compile: metric names must be unique, got {names}")
        self.hogwild = bool(hogwild)
        self._compile_config = {
            "hogwild": self.hogwild,
            "optimizer": optimizers_mod.serialize(self.optimizer),
            "loss": losses_mod.serialize(self.loss),
            "metrics": [m if isinstance(m, str) else metrics_mod.serialize(m) for m in metrics],
        }
        self._compiled = True
        self._plan = None

    def get_compile_config(self) -> Optional[Dict[str, Any]]:
        """The settings of the last :meth:`compile` as JSON-serializable data, as in Keras 3.

        The optimizer entry holds its current settings (a learning rate a callback changed
        included). ``None`` if the model is not compiled.
        """
        if not self._compiled:
            return None
        config = dict(self._compile_config)
        config["optimizer"] = optimizers_mod.serialize(self.optimizer)
        return config

    def compile_from_config(self, config: Dict[str, Any]) -> None:
        """Compile with settings from :meth:`get_compile_config`, as in Keras 3.

        Unlike Keras, the optimizer's state is not created here but on first use (see
        :meth:`build_optimizer`).

        Raises:
            KeyError, TypeError, ValueError: For invalid settings.
        """
        self.compile(optimizer=optimizers_mod.get(config["optimizer"]),
                     loss=losses_mod.get(config["loss"]),
                     metrics=[m if isinstance(m, str) else metrics_mod.get(m)
                              for m in config["metrics"]],
                     hogwild=bool(config.get("hogwild", False)))

    def build_optimizer(self) -> None:
        """Create the optimizer's state (slots) for this model's weights now.

        ``fit``, ``predict`` and ``evaluate`` create it on first use, with the C plan;
        ``load_model`` calls this before it restores saved optimizer state into
        ``model.optimizer`` (:meth:`neurec.optimizers.Optimizer.load_own_variables`).

        Raises:
            RuntimeError: If the model was not compiled.
        """
        if not self._compiled:
            raise RuntimeError("build_optimizer: compile the model first")
        self._get_plan()

    @property
    def metrics_names(self) -> List[str]:
        return ["loss"] + [m.name for m in self.compiled_metrics]

    def _require_graph(self):
        if not hasattr(self, "inputs"):
            raise ValueError(f"Model {self.name!r} has no graph yet: call it with inputs and "
                             "outputs, or (Sequential) add an Input first")

    def _get_plan(self):
        if getattr(self, "_shards", None) is not None:  # ModelParallel: gather (every rank)
            self._shards.unshard()
        plan = self._plan
        if plan is not None and plan_is_current(self._builder, self._plan_key):
            return plan
        # Built on first use, and again after a layer's ``trainable`` changed or a table grew
        # (the optimizer keeps its state). Two threads using a fresh model at once (fit in
        # one, predict in another) would both build the optimizer state and the plan; one
        # builds, the other waits and takes it.
        with PLAN_LOCK:
            if self._plan is None or not plan_is_current(self._builder, self._plan_key):
                self._build_plan()
            return self._plan

    def _build_plan(self):
        from neurec import _core
        from neurec.models._plan import Param
        self._require_graph()
        b = lower(self)
        params = []
        opt = self.optimizer if self._compiled else optimizers_mod.SGD()
        loss = self.loss if self._compiled else losses_mod.MeanSquaredError()
        arrays, tables = [], []
        for layer, idx, table in b.params:
            arrays.append(layer._weights[idx][1])
            tables.append(table)
        opt.build(arrays, tables)
        for k, (layer, idx, table) in enumerate(b.params):
            _, w, reg = layer._weights[idx]
            slots = opt._slots[k]
            l2 = float(getattr(reg, "l2", 0.0)) if reg is not None else 0.0
            params.append(Param(weights=w, slots=tuple(slots[:3]), row_steps=slots[3], l2=l2,
                                is_table=bool(table), frozen=not layer.trainable))
        logits = b.logits_of.get(b.output_value)
        logits = -1 if logits is None or not isinstance(loss, losses_mod.BinaryCrossentropy) \
            or loss.from_logits else logits
        plan = _core.Plan(ops=b.ops, value_sizes=b.value_sizes, params=params,
                          n_inputs=len(self.inputs), output=b.output_value, logits=logits,
                          loss=loss.code, optimizer=opt._c_spec(),
                          sparse=bool(opt.sparse_updates),
                          hogwild=bool(getattr(self, "hogwild", False)))
        self._builder = b  # before _plan: a thread that sees the plan also sees its builder
        self._plan_key = plan_key(b)
        self._plan = plan

    # -- training ----------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size: Optional[int] = None, epochs: int = 1,
            verbose: Union[str, int] = "auto", callbacks=None, validation_split: float = 0.0,
            validation_data=None, shuffle: bool = True, class_weight=None, sample_weight=None,
            initial_epoch: int = 0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq: int = 1, seed: Optional[int] = None):
        """Train the model, as ``keras.Model.fit``.

        ``x`` may be an array, a list of arrays (one per input), a dict keyed by
        input name, pandas objects, or a :class:`neurec.data.NegativeSampler`
        (then ``y`` is omitted and every epoch draws fresh negatives in C), or give
        its own batches (``y``, ``batch_size`` omitted): a generator, iterable or list
        of ``(x, y)`` / ``(x, y, sample_weight)`` tuples, or a PyDataset-like object
        (``__len__``, ``__getitem__``, ``on_epoch_end``): the steps of the same arrays.
        With ``optimizer=ALS``, ``x`` is the interaction matrix (an
        :class:`neurec.data.InteractionMatrix` or scipy.sparse matrix), ``y`` is
        omitted, an epoch is one sweep over users then items, and the ``loss``
        logged is the iALS objective divided by the number of interactions.

        Args:
            x: Input data.
            y: Labels, shape ``(n,)``, ``(n, 1)`` or the output's shape.
            batch_size: Samples per gradient step (default 32).
            epochs: Index of the last epoch to train.
            verbose: 0 silent, 1 progress bar, 2 one line per epoch, ``'auto'`` = 1.
            callbacks: List of :class:`neurec.callbacks.Callback`.
            validation_split: Share of the data (taken from the end, before shuffling)
                held out for validation. Ignored when ``validation_data`` is given.
            validation_data: ``(x_val, y_val)`` or ``(x_val, y_val, sample_weight_val)``
                evaluated at the end of each epoch, or batches as ``x`` gives them; it
                overrides ``validation_split`` (as in Keras).
            shuffle: Shuffle the samples every epoch (seeded); the batch order of a list
                of batches or a PyDataset; ignored for generators.
            class_weight: ``{label: weight}`` (Keras 3: the class is ``round(y)``, or
                ``argmax`` of one-hot rows; a class not named weighs 1.0); training
                data only. With a NegativeSampler, labels 1 and 0.
            sample_weight: One finite weight >= 0 per sample, ``(n,)`` or ``(n, 1)``,
                split with the data by ``validation_split``. A batch's loss is
                ``sum w_i * l_i / batch_size`` (Keras's ``"sum_over_batch_size"``);
                metrics are not weighted (as Keras's ``metrics=``). Not with
                ``class_weight`` (as Keras 3), nor with a NegativeSampler (pass
                ``NegativeSampler(weights=)``); batches give theirs as a third element.
            initial_epoch: Epoch to start from (for resuming).
            steps_per_epoch: Batches an epoch takes (default: a pass), continuing the
                pass under way (Keras 3); needed for several epochs of a generator (read
                once; one that runs out stops training). With arrays and no
                ``batch_size``, it sets the batch size to make a pass that long.
            validation_steps: Batches of ``validation_data`` each validation reads, when
                it gives batches (needed for an endless generator); with arrays it raises.
            validation_freq: An int ``k``: validate every ``k`` epochs (after epochs
                ``k, 2k, ...``, 1-based); or a list of the 1-based epochs after which
                to validate (as in Keras).
            validation_batch_size: No effect (warns once).
            seed: Seed of shuffling and dropout; default drawn from neurec's global RNG
                (see :func:`neurec.utils.set_random_seed`). With one thread, the same
                seed and initial weights give bit-identical results.

        Returns:
            A :class:`neurec.callbacks.History`.

        Raises:
            RuntimeError: If the model was not compiled.
            TypeError: If ``epochs``, ``initial_epoch``, ``validation_freq`` or ``seed``
                is not an integer, ``shuffle`` not a bool, or ``x`` of a type not listed.
            ValueError: For invalid data (shapes, lengths, NaN, out-of-range ids) or an
                argument out of range (``validation_freq < 1``, ``verbose`` not in
                ``'auto', 0, 1, 2``, a negative seed), ``y`` / ``batch_size`` with batches;
                for bad weights, ``sample_weight`` with ``class_weight``, or any weight
                with ``optimizer=ALS`` (its confidence comes from the matrix).

        Example:
            >>> model.fit([users, items], labels, sample_weight=quantity, epochs=3)
            >>> model.fit(NegativeSampler(log, weights=log.values), class_weight={0: 1, 1: 2})
        """
        if not self._compiled:
            raise RuntimeError("You must compile the model before training: call "
                               "model.compile(optimizer=..., loss=...) first")
        _keras_api.check_fit_args(None if _adapters.gives_batches("fit", validation_data) else
                                  validation_steps, validation_batch_size)
        if isinstance(self.optimizer, optimizers_mod.ALS):
            if validation_split or validation_data is not None:
                raise ValueError("fit with optimizer=ALS: validation_split/validation_data are "
                                 "not supported; pass a neurec.evaluation.RankingMetrics callback")
            _keras_api.check_als_fit_args(batch_size, sample_weight, class_weight, steps_per_epoch)
            _weights.refuse_for_als(x)
            return _als.fit(self, x, y, epochs=epochs, verbose=verbose, callbacks=callbacks,
                            initial_epoch=initial_epoch)
        opts = _training.fit_options(self._check_batch_size(batch_size), epochs, initial_epoch,
                                     validation_freq, validation_split, shuffle, verbose, seed)
        plan = fit_plan(self)  # ModelParallel: over the working tables
        if opts.seed is None:
            opts = opts._replace(seed=_training.default_seed())
        source = _adapters.fit_source(self, self._builder, x, y, batch_size, opts, steps_per_epoch,
                                      validation_data, validation_steps, sample_weight,
                                      class_weight)
        if source.sampler is not None:  # for recommend(unknown='popular')
            self._item_popularity = source.sampler.item_popularity()
        return _training.run(self, plan, source, opts, callbacks)

    @staticmethod
    def _check_batch_size(batch_size) -> int:
        if batch_size is None:
            return 32
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        return int(batch_size)

    # -- inference ---------------------------------------------------------------
    def predict(self, x, batch_size: Optional[int] = None, verbose: Union[str, int] = "auto",
                steps=None, callbacks=None) -> np.ndarray:
        """Outputs for the samples of ``x``, computed in C across threads.

        Args:
            x: Input data (see :meth:`fit`), or batches (a generator, iterable, list or
                PyDataset) of ``x``, ``(x,)`` or ``(x, y)`` (``y`` is not read).
            batch_size: Samples per batch (default 32): the unit of the progress bar and
                of the callbacks' batch indices; C predicts whole chunks of batches per
                call, so it never changes the outputs or the speed. Not with batches.
            verbose: ``'auto'`` (a bar when the output is interactive), 0 (silent), 1 (a
                bar) or 2 (one line at the end). Nothing is printed for a call shorter
                than two seconds.
            steps: With batches, how many to read (needed for an endless generator);
                with arrays it must be None.
            callbacks: :class:`neurec.callbacks.Callback` objects: ``on_predict_begin``,
                ``on_predict_batch_begin`` / ``on_predict_batch_end`` once per chunk of
                batches (the first and last batch index, the end hook's logs holding the
                chunk's ``"outputs"``) and ``on_predict_end``, as in Keras.

        Under a distribution (call it on every rank) each rank predicts a share of
        ``x`` and every rank gets all of it (``local_data=True``: its own rows).

        Returns:
            A float32 array of shape ``(n,) + output_shape[1:]``.

        Raises:
            ValueError: For invalid inputs (shapes, lengths, NaN, out-of-range ids), an
                invalid ``verbose`` or ``steps``.

        Example:
            >>> scores = model.predict([users, items], verbose=0)
        """
        self._ready_for_inference()  # sharded tables stay sharded (_dp_predict.py)
        if _adapters.input_kind("predict", x) == "batches":
            return _adapters.predict_batches(self, self._builder, x, batch_size, steps, verbose,
                                             callbacks)
        batch_size = self._check_batch_size(batch_size)
        if steps is not None:
            raise ValueError("predict: steps is not supported; predict covers x once")
        inputs = _data.prepare_inputs(self, x, self._builder)
        return self._predict_distributed(inputs, batch_size, verbose, callbacks)

    def predict_on_batch(self, x) -> np.ndarray:
        """Same as :meth:`predict` (silent)."""
        return self.predict(x, verbose=0)

    def __call__(self, x, training: bool = False):
        if training:
            _keras_api.warn_ignored("Model.__call__", "training=True", "it runs inference "
                                    "(Dropout off); train_on_batch takes a training step")
        if isinstance(x, KerasTensor) or (isinstance(x, (list, tuple)) and x and
                                          isinstance(x[0], KerasTensor)):
            raise ValueError("Calling a neurec Model on symbolic tensors (nesting models) is not "
                             "supported; build one graph from the layers instead")
        return self.predict(x, verbose=0)

    # -- recommendation ------------------------------------------------------------
    def recommend(self, users=None, k: int = 10, exclude=None, items=None, user_features=None,
                  item_features=None, user_input: Optional[str] = None,
                  item_input: Optional[str] = None, user_encoder=None, item_encoder=None,
                  unknown: str = "error", histories=None, seed: Optional[int] = None,
                  fold_in_options: Optional[Dict[str, Any]] = None,
                  verbose: Union[str, int] = "auto", output=None, gather: str = "all",
                  index=None, candidates=None, n_candidates: int = 200):
        """The ``k`` best items for each user, scored in C across all cores.

        Works for any model with a user-id input and an item-id input (by default the
        first two inputs). Dot-product models (``MF``, ``GMF``, ``Dot`` of two
        embeddings) take a fused blocked multiply + top-K path; NeuMF and MLP a fused
        tower + top-K path (the generic path's scores and ties); any other model is
        scored over blocks of (user, item) pairs by the compiled plan. Retired items
        (:meth:`retire_items`) are never returned.

        Args:
            users: User ids (indices, or raw ids with ``user_encoder``).
            k: Items per user. If fewer than ``k`` candidates exist in the catalog,
                ``min(k, candidates)`` columns are returned; a user with fewer unseen
                items gets id ``-1`` (``None`` with an encoder) and score ``-inf`` in the
                trailing columns.
            exclude: Items to skip per user (usually the training interactions): a
                ``(user_ids, item_ids)`` pair, a scipy.sparse matrix or a
                :class:`neurec.data.InteractionMatrix`. Default: the model's
                :attr:`seen_matrix` if it has one; ``False`` skips nothing.
            items: Optional candidate items (default: the whole catalog): raw ids when an
                item encoder is in use (raw ids it does not know raise ``ValueError``,
                naming them), else codes.
            user_features, item_features: ``{input_name: array}`` side features indexed
                by user / item id, for hybrid models with extra inputs.
            user_input, item_input: Names of the id inputs when not the first two.
            user_encoder, item_encoder: :class:`neurec.data.IdEncoder` objects: users (and
                ``items=``) are given as raw ids and items are returned as raw ids. Default: the model's
                own (:meth:`attach_encoders`); ``False`` means codes in and out.
            unknown: ``'error'`` (default) raises for users outside the model's id range;
                ``'popular'`` gives each of them the ``k`` most popular candidate items
                (cold start; popularity from the training data of a ``NegativeSampler``
                fit or from ``exclude``), ordered and scored by the model's output for the
                average user (every user table's mean row, as a fold-in with
                ``init='mean'`` starts): scores on the model's scale, best first. With
                ``histories``: ``'error'`` or ``'ignore'`` (skip, with a warning) for
                history items the model does not know.
            histories: Instead of ``users``, users the model has never seen, each given by
                the items they interacted with (a list of item-id lists, raw ids with an
                item encoder, or a sparse matrix with one row per user): they are folded
                in on scratch rows (as
                :meth:`fold_in`, whose settings ``fold_in_options`` takes) and ranked; the
                model is not changed. ``exclude`` is then None (skip each history's items)
                or False (skip nothing). Row ``r`` of the result is history ``r``. Under a
                distribution each rank folds in and ranks a share of them (``gather``).
            seed: Seed of the fold-in with ``histories`` (default: neurec's global RNG).
            verbose: ``'auto'`` (a bar when the output is interactive), 0 (silent), 1 (a
                bar, in users) or 2 (one line at the end); nothing is printed for a call
                shorter than two seconds. With ``histories`` the fold-in has a bar first.
            output: A ``.csv`` or ``.parquet`` path: stream the rows ``user_id, rank,
                item_id, score`` to it block by block (atomically, bounded memory) and
                return a summary instead of the arrays. Under a distribution each rank
                writes its share of ``users`` (its own users with ``local_data=True``) to
                its own file: put ``{rank}`` in the name, e.g. ``"recs-{rank}.csv"``.
            gather: Under a distribution, ``'all'`` (every rank gets the result) or
                ``'main'`` (rank 0 gets it, the others None). With ModelParallel's sharded
                tables every rank ranks every user against its item shard (a collective
                call: the same ``users`` on every rank) and the top-K lists are merged.
            index: An :class:`ItemIndex` of this dot-product model (:meth:`build_index`):
                approximate top-K through it (exclusions and retired items honoured).
            candidates: Two-stage ranking: a dot-product model (through its
                :attr:`item_index` when built, else exact) or ``'popular'`` proposes
                ``n_candidates`` unseen live items per user (default 200, ``>= k``);
                this model re-scores them exactly (NeuMF, MLP, GMF: in the fused C
                scorer) and keeps the ``k`` best. With ``n_candidates`` >= the
                catalogue it equals the exhaustive ranking.

        Returns:
            ``(item_ids, scores)``, arrays of shape ``(len(users), k)``, best first; scores
            are the model's outputs (for the average user in rows of unknown users). Equal
            outputs are ordered by item id, except on the dot-product fast path, where
            outputs that tie in float32 (a saturated sigmoid) are ordered by the exact
            score before the final activation.

        Raises:
            ValueError: For unknown users (with ``unknown='error'``), unknown raw
                ``items``, ``k < 1``, bad ids, an invalid ``verbose``.

        Example:
            >>> ids, scores = model.recommend(["C000123"], k=10, items=["sku-7", "sku-9"])
        """
        if histories is not None:
            if users is not None:
                raise ValueError("recommend: pass users or histories, not both")
            _, _, item_encoder = self._recommend_defaults(False, False, item_encoder)
            return self._recommend_histories(histories, k, exclude, items, item_encoder, unknown,
                                             seed, user_input, item_input, fold_in_options, Model,
                                             verbose, check_gather("recommend", gather))
        if users is None:
            raise ValueError("recommend: pass users (ids the model knows) or histories")
        exclude, user_encoder, item_encoder = self._recommend_defaults(exclude, user_encoder,
                                                                       item_encoder)
        gather = check_gather("recommend", gather)

        def call(share, verbose, gather_to=None):
            return recommend_mod.recommend(
                self, share, k=k, exclude=exclude, items=items, user_features=user_features,
                item_features=item_features, user_input=user_input, item_input=item_input,
                user_encoder=user_encoder, item_encoder=item_encoder, unknown=unknown,
                item_popularity=self._item_popularity, make_model=Model, verbose=verbose,
                index=index, candidates=candidates, n_candidates=n_candidates, gather_to=gather_to)

        if output is not None:  # {"path", "users", "rows", "total_users", "total_rows"}
            return recommend_to_file(call, users, output, verbose, self)
        return distributed_recommend(call, users, verbose, gather, self)  # each rank its share

    def partial_fit_users(self, users, interactions, optimizer=None) -> np.ndarray:
        """Fold in users: solve their vectors exactly with the item side held fixed.

        Each user's vector (and bias, for ``MF(use_bias=True)``) is the exact
        iALS solution for their interactions (one Cholesky row solve, with the
        ALS settings of ``optimizer``, else the model's own ALS optimizer, else
        ``ALS()``'s defaults). Ids beyond the user table grow it through
        :meth:`resize_embeddings` (new rows start at zero; the optimizer keeps
        its state); every other row, the items and the rest of the model stay
        as they are. ``recommend`` serves the new users at once.

        Args:
            users: 1-D array of distinct integer user ids (existing or new).
            interactions: An :class:`neurec.data.InteractionMatrix` or scipy.sparse
                matrix with one row per entry of ``users`` and one column per item.
            optimizer: An :class:`neurec.optimizers.ALS` giving alpha, regularization
                and nu (optional).

        Returns:
            The users' new vectors, float32 ``(len(users), factors)``.

        Raises:
            ValueError: If the model is not a dot product, or users/interactions
                disagree in size or hold invalid values.
            TypeError: If ``interactions`` is not a sparse matrix.

        Example:
            >>> model.compile(optimizer=neurec.optimizers.ALS()); model.fit(train, epochs=10)
            >>> new = InteractionMatrix.from_arrays([0, 0], [3, 7], shape=(1, n_items))
            >>> model.partial_fit_users([n_users], new)    # one new user
            >>> model.recommend([n_users], k=10)
        """
        return _als.partial_fit_users(self, users, interactions, optimizer)

    def score_items(self, users, items=None, user_features=None, item_features=None) -> np.ndarray:
        """Model scores of every item (or ``items``) for each user, shape ``(len(users), n)``."""
        return recommend_mod.score_items(self, users, items, user_features=user_features,
                                         item_features=item_features)

    # -- summary, config, saving -------------------------------------------------
    def summary(self, line_length: Optional[int] = None, positions=None, print_fn=None,
                expand_nested: bool = False, show_trainable: bool = False) -> None:
        """Print a table of layers, output shapes, parameter counts and connections.

        ``positions`` and ``show_trainable=True`` have no effect (they warn once);
        ``expand_nested`` has nothing to expand (neurec models do not nest).
        """
        _keras_api.check_summary_args(positions, show_trainable)
        text = summary_text(self, line_length)
        (print_fn or print)(text)

    def get_config(self) -> Dict[str, Any]:
        """The model's class, name, layers (each with its config) and connections, as
        JSON-serializable data; :meth:`from_config` builds a new model from it.

        Raises:
            ValueError: If the model has no graph yet.
        """
        self._require_graph()
        return _functional.graph_config(self)

    @classmethod
    def from_config(cls, config: Dict[str, Any], custom_objects=None) -> "Model":
        """A new model, with new layers, from the output of :meth:`get_config`.

        The model is of the class the config names when that is a registered model
        class (``Sequential``), else a ``Model``.

        Args:
            config: A model config.
            custom_objects: ``{class name: layer class}`` for layers that are not neurec's.

        Raises:
            ValueError: For an invalid config or an unknown layer class.
        """
        inputs, output = _functional.graph_from_config(config, custom_objects)
        name = config.get("class_name")
        target = get_registered_object(name) if isinstance(name, str) else None
        if not (isinstance(target, type) and issubclass(target, Model)):
            target = Model  # a subclass saved by its name loads as a functional Model
        return target._from_graph(inputs, output, config.get("name"))

    @classmethod
    def _from_graph(cls, inputs: List[KerasTensor], output: KerasTensor,
                    name: Optional[str]) -> "Model":
        return cls(inputs, output, name=name)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"
