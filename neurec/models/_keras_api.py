"""Keras APIs of ``Model`` beyond fit/predict/evaluate, and Keras's arguments neurec cannot use.

* :class:`KerasAPIMixin` (a base class of :class:`neurec.models.Model`):
  ``train_on_batch``, ``test_on_batch``, ``save``/``save_weights``/``load_weights``
  (the file formats are in ``saving.py``) and ``to_json``, as in Keras 3, and
  :func:`model_from_json`, its inverse.
* The rule for an argument Keras has and neurec cannot honour: it works, or warns once
  per process (:func:`warn_ignored`, a ``UserWarning`` naming the argument and why it has
  no effect), or raises (naming the argument and the fix). Never silently accepted.
"""
import json
import numbers
import warnings
from typing import Any, Dict, Optional, Set, Tuple, Union

import numpy as np

from neurec import optimizers as optimizers_mod
from neurec._registry import get_registered_object
from neurec.callbacks import CallbackList
from neurec.layers.base import limit_weight_elements
from neurec.models import _adapters, _data, _distributed, _dp_output, _training, _weights, saving

__all__ = ["KerasAPIMixin", "model_from_json", "warn_ignored"]

_WARNED: Set[Tuple[str, str]] = set()  # (function, argument) already warned about


def warn_ignored(fn: str, arg: str, why: str, stacklevel: int = 3) -> None:
    """Warn once per process that ``fn``'s argument ``arg`` has no effect in neurec."""
    if (fn, arg) in _WARNED:
        return
    _WARNED.add((fn, arg))
    warnings.warn(f"{fn}: {arg} has no effect in neurec: {why}", UserWarning,
                  stacklevel=stacklevel)


# -- arguments of Model's methods ---------------------------------------------------------
def check_model_kwargs(kwargs: Dict[str, Any]) -> None:
    """``Model(**kwargs)``: Keras's ``trainable`` (True only) and nothing else."""
    if not kwargs.pop("trainable", True):
        raise ValueError("Model(trainable=False) is not supported: freeze layers one by one "
                         "(layer.trainable = False for each layer of model.layers)")
    if kwargs:
        raise TypeError(f"Model got unexpected arguments {sorted(kwargs)}")


def check_compile_args(loss_weights, weighted_metrics, run_eagerly, steps_per_execution,
                       jit_compile) -> None:
    """``compile``'s Keras arguments that neurec's C training has no use for.

    Raises:
        ValueError: For ``loss_weights``, ``weighted_metrics`` or a bad
            ``steps_per_execution``.
    """
    if loss_weights is not None or weighted_metrics:
        raise ValueError("compile: loss_weights and weighted_metrics are not supported (neurec "
                         "models have one output, and compile's metrics are unweighted); drop "
                         "them (scale the learning rate instead of the loss)")
    if run_eagerly:
        warn_ignored("compile", "run_eagerly=True", "training always runs in compiled C "
                     "(there is no eager mode); debug with predict and the layers' NumPy "
                     "forward, layer(numpy_array)", 4)
    if jit_compile is True:
        warn_ignored("compile", "jit_compile=True", "the C core is compiled ahead of time "
                     "(there is no XLA)", 4)
    if isinstance(steps_per_execution, bool) or not isinstance(
            steps_per_execution, numbers.Integral) or steps_per_execution < 1:
        raise ValueError(f"compile: steps_per_execution must be a positive integer, got "
                         f"{steps_per_execution!r}")
    if steps_per_execution != 1:
        warn_ignored("compile", "steps_per_execution", "fit already runs chunks of batches "
                     "(about 0.2 s each) in one C call, calling batch callbacks between "
                     "chunks", 4)


def check_fit_args(validation_steps, validation_batch_size) -> None:
    """``fit``'s validation arguments that neurec cannot honour."""
    if validation_steps is not None:
        raise ValueError("fit: validation_steps is not supported: validation covers all of "
                         "validation_data once; pass a slice of it, validation_data="
                         "(x_val[:k], y_val[:k])")
    if validation_batch_size is not None:
        _training.check_int("fit", "validation_batch_size", validation_batch_size, 1,
                            "or leave it None")
        warn_ignored("fit", "validation_batch_size", "validation runs in C in blocks it "
                     "chooses; the validation metrics do not depend on a batch size", 4)


def check_als_fit_args(batch_size, sample_weight, class_weight, steps_per_epoch) -> None:
    """``fit``'s arguments that ALS (``optimizer=ALS``) has no use for."""
    if sample_weight is not None or class_weight is not None:
        raise ValueError("fit with optimizer=ALS: sample_weight and class_weight are not "
                         "supported; ALS weighs each interaction by 1 + alpha * value: put the "
                         "weights in the interaction matrix's values")
    if steps_per_epoch is not None:
        raise ValueError("fit with optimizer=ALS: steps_per_epoch is not supported; an epoch "
                         "is one sweep over all users then all items")
    if batch_size is not None:
        warn_ignored("fit", "batch_size with optimizer=ALS", "each ALS sweep solves every "
                     "user (then item) row exactly; there are no batches", 4)


def check_evaluate_steps(steps) -> None:
    if steps is not None:
        raise ValueError("evaluate: steps is not supported: neurec evaluates all of x in one "
                         "pass; slice x and y to evaluate fewer samples")


def check_summary_args(positions, show_trainable) -> None:
    if positions is not None:
        warn_ignored("summary", "positions", "the columns' widths follow line_length", 4)
    if show_trainable:
        warn_ignored("summary", "show_trainable=True", "see the table's 'Trainable params' "
                     "line, or [l.name for l in model.layers if not l.trainable]", 4)


def _result(logs: Dict[str, float], return_dict: bool):
    """Keras's return value: a dict, the loss alone, or ``[loss, *metrics]``."""
    logs = {k: float(v) for k, v in logs.items()}
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


class KerasAPIMixin:
    """``train_on_batch``, ``test_on_batch``, ``save``, ``save_weights``, ``load_weights``,
    ``to_json`` (a base class of ``Model``)."""

    def _batch_data(self, fn: str, x, y):
        if not self._compiled:
            raise RuntimeError(f"{fn}: compile the model first, model.compile(optimizer=..., "
                               "loss=...)")
        if hasattr(x, "_neurec_epoch"):
            raise TypeError(f"{fn} takes arrays; a NegativeSampler draws whole epochs: use "
                            "fit(sampler, epochs=1)")
        plan = self._get_plan()
        inputs = _data.prepare_inputs(self, x, self._builder)
        labels = _data.prepare_labels(y, inputs[0].shape[0], int(np.prod(self.output_shape[1:])))
        return plan, inputs, labels

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None,
                       return_dict: bool = False):
        """One gradient step on the whole batch ``(x, y)``, as ``keras.Model.train_on_batch``.

        The step is the one ``fit`` takes on a batch: repeating ``train_on_batch`` over
        the consecutive batches of an array gives the weights of
        ``fit(shuffle=False, batch_size=B, epochs=1)`` (bit-for-bit with one thread).
        ``optimizer.iterations`` advances by one. Dropout draws a fresh mask (seeded from
        neurec's global RNG, :func:`neurec.utils.set_random_seed`).

        Args:
            x: Input data (as :meth:`fit`: arrays, a list, a dict by input name, a
                DataFrame with a column per input).
            y: Labels, one per sample.
            sample_weight: Optional weights, one per sample (finite, >= 0): the loss is
                ``sum(w * loss) / n``, as in Keras.
            class_weight: Optional ``{class index: weight}``; each sample weighs its
                class's weight (1 for classes not listed). Not with ``sample_weight``.
            return_dict: Return ``{name: value}`` instead of a list.

        Returns:
            The batch's loss (regularization included) and metrics, computed with the
            weights before the step as Keras does: the loss alone if the model has no
            metrics, else ``[loss, *metrics]`` (order of :attr:`metrics_names`); a dict
            with ``return_dict=True``.

        Raises:
            RuntimeError: If the model was not compiled.
            ValueError: For invalid data or weights, ALS models (use ``fit``), both
                ``sample_weight`` and ``class_weight``, or several processes under
                :class:`neurec.distribution.DataParallel` (use ``fit``).

        Example:
            >>> for start in range(0, n, 256):
            ...     loss, acc = model.train_on_batch([users[start:start + 256],
            ...                                       items[start:start + 256]],
            ...                                      labels[start:start + 256])
        """
        if isinstance(self.optimizer, optimizers_mod.ALS):
            raise ValueError("train_on_batch: optimizer=ALS takes no gradient steps; "
                             "fit(matrix, epochs=1) runs one ALS sweep")
        if _distributed.active():  # each process would step alone: the weights would part
            raise ValueError("train_on_batch is not supported under DataParallel with several "
                             "processes; use fit(x, y, batch_size=len(y), epochs=1, "
                             "shuffle=False), which takes the same step on the global batch")
        plan, inputs, labels = self._batch_data("train_on_batch", x, y)
        weights = _weights.array_weights("train_on_batch", sample_weight, class_weight, labels)
        n = labels.shape[0]
        penalty = self._regularization_penalty()  # of the weights the loss is computed with
        opt = self.optimizer
        step = np.array([int(opt.iterations)], dtype=np.int64)  # advanced in place by C
        idx = np.arange(n, dtype=np.int64)
        seed = _training.default_seed()
        plan.set_optimizer(opt._c_spec())
        try:
            st = plan.fit(inputs, labels, idx, n, step, seed, weights=weights)
        finally:
            opt.iterations = int(step[0])
        logs = _training.logs_from_stats(self, st)
        logs["loss"] += penalty
        return _result(logs, return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict: bool = False):
        """Loss and metrics on one batch, without training, as ``keras.Model.test_on_batch``.

        Args:
            x: Input data (as :meth:`fit`).
            y: Labels, one per sample.
            sample_weight: Optional weights, one per sample: the loss becomes
                ``sum(w * loss) / n``; the compiled metrics stay unweighted (Keras weighs
                only ``weighted_metrics``, which neurec does not have).
            return_dict: Return ``{name: value}`` instead of a list.

        Returns:
            As :meth:`evaluate` on the same data: the loss (regularization included)
            alone if the model has no metrics, else ``[loss, *metrics]``; a dict with
            ``return_dict=True``.

        Raises:
            RuntimeError: If the model was not compiled.
            ValueError: For invalid data or weights.

        Example:
            >>> model.test_on_batch([users[:256], items[:256]], labels[:256],
            ...                     return_dict=True)
            {'loss': 0.52, 'accuracy': 0.74}
        """
        _, inputs, labels = self._batch_data("test_on_batch", x, y)
        weights = _weights.check_sample_weight("test_on_batch", sample_weight, labels.shape[0])
        if weights is None:
            return _result(self._evaluate_arrays(inputs, labels), return_dict)
        pred = self._predict_arrays(inputs)
        per_sample = self.loss.per_sample(labels, pred)
        logs = {"loss": float(np.mean(per_sample * weights)) + self._regularization_penalty()}
        for m in self.compiled_metrics:
            logs[m.name] = float(m.from_arrays(labels, pred))
        return _result(logs, return_dict)

    def _evaluate_arrays(self, inputs, labels, weights=None) -> Dict[str, float]:
        return self._evaluate_predictions(labels, self._predict_arrays(inputs), weights)

    def _evaluate_predictions(self, labels, pred, weights=None,
                              penalty: Optional[float] = None) -> Dict[str, float]:
        if penalty is None:  # sharded tables: summed over the ranks (a collective call)
            shards = getattr(self, "_shards", None)
            penalty = self._regularization_penalty() if shards is None else shards.penalty()
        res = {"loss": self.loss(labels, pred, weights) + penalty}
        for m in self.compiled_metrics:
            res[m.name] = float(m.from_arrays(labels, pred))  # unweighted, as Keras's metrics=
        return res

    def evaluate(self, x=None, y=None, batch_size: Optional[int] = None,
                 verbose: Union[str, int] = "auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict: bool = False, gather: str = "all"):
        """Loss and metrics on ``(x, y)``, as ``keras.Model.evaluate``.

        All of ``x`` is evaluated in one C pass (``batch_size`` only checked: the result
        does not depend on it); ``callbacks`` get the test hooks (``on_test_begin``, one
        test batch, ``on_test_end``); ``steps`` raises (slice ``x`` instead). ``x`` may
        also give ``(x, y)`` batches as in :meth:`fit` (then ``y`` and ``batch_size`` are
        omitted and ``steps`` counts batches): the results of their samples as arrays.

        Args:
            sample_weight: Optional weight >= 0 per sample, shape ``(n,)`` or ``(n, 1)``:
                the loss is ``sum w_i * l_i / n`` (Keras); metrics are not weighted.
            gather: Under ``DataParallel`` with several processes, arrays are split
                across the ranks (each predicts a share of the rows; with
                ``local_data=True`` each passes its own rows and the result is over
                their union): ``'all'`` returns the result on every rank, ``'main'`` on
                rank 0 (the others get None). Tables sharded by ModelParallel stay
                sharded: each rank fetches the rows its share reads.

        Returns:
            The loss alone if there are no metrics, else ``[loss, *metrics]``; or a dict
            with ``return_dict=True``.

        Raises:
            RuntimeError: If the model was not compiled.
            ValueError: For invalid data or sample weights.
        """
        if not self._compiled:
            raise RuntimeError("You must compile the model before evaluating it")
        verbose_level = _training.check_verbose("evaluate", verbose)
        self._check_batch_size(batch_size)
        self._ready_for_inference()  # sharded tables stay sharded (_dp_predict.py)
        if _adapters.input_kind("evaluate", x) == "batches":
            res = self._with_test_callbacks(callbacks, lambda: _adapters.evaluate_batches(
                self, self._builder, x, y, batch_size, steps, sample_weight))
        else:
            check_evaluate_steps(steps)
            inputs = _data.prepare_inputs(self, x, self._builder)
            labels = _data.prepare_labels(y, inputs[0].shape[0], int(np.prod(self.output_shape[1:])))
            weights = _weights.check_sample_weight("evaluate", sample_weight, labels.shape[0])
            gather = _dp_output.check_gather("evaluate", gather)
            res = self._with_test_callbacks(callbacks, lambda: self._evaluate_arrays(
                inputs, labels, weights) if not _distributed.active() else
                _dp_output.split_evaluate(self, inputs, labels, weights, gather))
            if res is None:  # gather="main", a rank other than 0
                return None
        if verbose_level > 0 and verbose != "auto":
            print(" - ".join(f"{k}: {v:.4f}" for k, v in res.items()))
        if return_dict:
            return res
        vals = list(res.values())
        return vals[0] if len(vals) == 1 else vals

    def _with_test_callbacks(self, callbacks, compute):
        """``compute()`` (evaluate's logs) inside the test hooks of ``callbacks``, as
        Keras's evaluate calls them (one batch)."""
        if callbacks is None:
            return compute()
        cbs = CallbackList(callbacks, model=self, verbose=0, epochs=1, steps=1)
        cbs.on_test_begin()
        cbs.on_test_batch_begin(0)
        logs = compute()
        cbs.on_test_batch_end(0, logs)
        cbs.on_test_end(dict(logs))
        return logs

    def save(self, filepath, overwrite: bool = True, **kwargs) -> None:
        """Save graph, weights, compile settings and optimizer state to one ``.neurec``
        (or ``.keras``: the same format) file, atomically; no pickle. ``kwargs``:
        ``include_optimizer``, ``save_format``, ``zipped`` (:func:`neurec.models.saving.save_model`).

        Raises:
            ValueError: If ``filepath`` does not end in ``.neurec`` or ``.keras`` (the
                message names the file to use: Keras's ``.h5`` is not written).
            FileExistsError: If it exists and ``overwrite`` is False.

        Example:
            >>> model.save("ncf.keras"); same = neurec.models.load_model("ncf.keras")
        """
        saving.save_model(self, filepath, overwrite=overwrite, **kwargs)

    def save_weights(self, filepath, overwrite: bool = True) -> None:
        """Save the weights alone to a ``.weights.npz`` file (atomically). Keras's
        ``.weights.h5`` name works too: the file holds neurec's format (not HDF5), with a
        ``UserWarning`` saying so, and ``load_weights`` reads it back.

        Raises:
            ValueError: For another name (the message names the file to use).
            FileExistsError: If it exists and ``overwrite`` is False.

        Example:
            >>> model.save_weights("ncf.weights.npz"); twin.load_weights("ncf.weights.npz")
        """
        saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath, skip_mismatch: bool = False) -> None:
        """Load weights from :meth:`save_weights` or a ``.neurec``/``.keras`` model file,
        in place; with ``skip_mismatch=True`` layers whose stored shapes differ are
        skipped with a warning (as Keras). See :func:`neurec.models.saving.load_weights`.

        Raises:
            ValueError: If the file is corrupted, HDF5, or its shapes do not match.
        """
        saving.load_weights(self, filepath, skip_mismatch=skip_mismatch)

    def to_json(self, **kwargs) -> str:
        """The model's architecture (:meth:`get_config`) as a JSON string, as
        ``keras.Model.to_json``; :func:`neurec.models.model_from_json` builds a new
        model from it (fresh weights: copy them with ``set_weights``).

        Args:
            **kwargs: Passed to ``json.dumps`` (e.g. ``indent=2``).

        Returns:
            A JSON string.

        Example:
            >>> text = model.to_json()
            >>> twin = neurec.models.model_from_json(text)
            >>> twin.set_weights(model.get_weights())
        """
        return json.dumps(self.get_config(), **kwargs)


def model_from_json(json_string, custom_objects: Optional[dict] = None,
                    max_params: int = 2**30):
    """A new model from the JSON of :meth:`Model.to_json` (architecture only), as
    ``keras.models.model_from_json``.

    The weights are freshly initialized: copy them with ``set_weights`` (or
    ``load_weights``). The string is untrusted input: it is parsed as JSON only (never
    evaluated), its layers must be neurec's or in ``custom_objects``, and no weight is
    allocated beyond ``max_params`` parameters in total.

    Args:
        json_string: The JSON text (str or bytes).
        custom_objects: ``{class name: layer class}`` for layers that are not neurec's.
        max_params: Largest number of parameters the model may declare (default 2**30,
            4 GiB of float32); raise it to build a larger model.

    Returns:
        A new, uncompiled model.

    Raises:
        ValueError: If the string is not JSON, not a neurec model's config, or declares
            more than ``max_params`` parameters.

    Example:
        >>> text = model.to_json()
        >>> twin = neurec.models.model_from_json(text)
        >>> twin.set_weights(model.get_weights())
    """
    if not isinstance(json_string, (str, bytes, bytearray)):
        raise TypeError(f"model_from_json: json_string must be a str, got "
                        f"{type(json_string).__name__}")
    shown = repr(json_string[:60]) + ("..." if len(json_string) > 60 else "")
    try:
        config = json.loads(json_string)
    except (ValueError, UnicodeDecodeError) as e:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"model_from_json: json_string {shown} is not valid JSON ({e}); pass "
                         "the text of model.to_json()") from None
    except RecursionError:
        raise ValueError(f"model_from_json: json_string {shown} is nested too deeply to be a "
                         "model config") from None
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ValueError(f"model_from_json: json_string {shown} is JSON but not a neurec model "
                         "config (a dict with 'layers'); pass the text of model.to_json()")
    with limit_weight_elements(max_params, "model_from_json"):
        try:
            return get_registered_object("Model").from_config(config, custom_objects)
        except RecursionError:
            raise ValueError("model_from_json: the model graph is nested too deeply") from None
        except (AttributeError, OverflowError, TypeError, KeyError) as e:
            raise ValueError(f"model_from_json: invalid model config ({e!r})") from None
