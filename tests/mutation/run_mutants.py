"""A rerunnable mutation check of neurec's test suite.

Each mutant is one textual substitution in one file (Python or C) that plants a bug. The
script copies the repository (tracked and untracked-but-not-ignored files) to a temporary
directory, builds the C extensions there once, checks that every test subset passes
unmutated, then, for each mutant: applies it, rebuilds the extension if a C file changed,
runs the mutant's test subset and records whether some test failed (the mutant is
*killed*) or all passed (it *survived*), and restores the file. The report gives the kill
rate per module and lists every mutant.

It is a tool, not a test: pytest does not collect it. Run from the repository root::

    python tests/mutation/run_mutants.py                 # all mutants, ~10 min on 2 cores
    python tests/mutation/run_mutants.py --list          # the mutants, nothing run
    python tests/mutation/run_mutants.py --only lr-not-passed,auc-flipped
    python tests/mutation/run_mutants.py --markdown out.md

Exit status: 0 if every mutant was killed, 1 if any survived, 2 on a setup error (a
mutant's text not found exactly once, a build failure, or a test subset failing
unmutated).

The mutants marked ``issue`` are the bugs issue 15 planted that the suite used to miss.
The extensions are built with this interpreter's setuptools (``setup.py build_ext``), so it
needs the version ``pyproject.toml`` requires.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import List, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# test subsets
T_GRAD = ["tests/test_gradients.py"]
T_SEM = ["tests/test_training_semantics.py"]
T_MET = ["tests/test_metric_values.py", "tests/test_model_api.py"]
T_API = ["tests/test_public_api.py"]
T_THR = ["tests/test_threads_interrupt.py"]
T_CB = ["tests/test_callbacks.py", "tests/test_training_semantics.py"]
T_PAR = ["tests/test_parity_fixtures.py", "tests/test_optimizers.py"]
T_SAVE = ["tests/test_saving.py", "tests/test_public_api.py"]
T_REC = ["tests/test_recommend.py", "tests/test_public_api.py"]
T_ALS = ["tests/test_als.py"]


@dataclass
class Mutant:
    """One planted bug: replace ``old`` (which must occur exactly once) by ``new``."""

    name: str
    path: str
    old: str
    new: str
    tests: List[str]
    issue: bool = False  # one of the bugs issue 15 lists
    what: str = ""
    result: str = field(default="", compare=False)
    seconds: float = field(default=0.0, compare=False)


M = Mutant
MUTANTS: List[Mutant] = [
    # -- the bugs issue 15 planted (all survived the suite before it) ----------------------
    M("dropout-forward-unscaled", "csrc/src/plan_ops.c",
      "y[b * so + k] = x[b * so + k] * m;", "y[b * so + k] = x[b * so + k] * (m != 0.0f);",
      T_GRAD + T_SEM, True, "Dropout's forward pass drops without scaling by 1/(1-rate)"),
    M("dropout-backward-unscaled", "csrc/src/plan_ops.c",
      "gx[k] += gy[k] * mask[k];", "gx[k] += gy[k] * (mask[k] != 0.0f);",
      T_GRAD, True, "Dropout's backward pass masks without the 1/(1-rate) scale"),
    M("lr-not-passed", "neurec/models/_training.py",
      "                plan.set_optimizer(opt._c_spec())\n", "",
      T_SEM, True, "a learning-rate change after compile never reaches the C optimizer"),
    M("val-split-head", "neurec/models/_training.py",
      "self.validation = ([a[k:] for a in inputs], labels[k:],\n"
      "                                   None if sw is None else sw[k:])\n"
      "                inputs = [a[:k] for a in inputs]\n                labels = labels[:k]",
      "self.validation = ([a[:n - k] for a in inputs], labels[:n - k],\n"
      "                                   None if sw is None else sw[:n - k])\n"
      "                inputs = [a[n - k:] for a in inputs]\n                labels = labels[n - k:]",
      T_SEM + ["tests/test_model_api.py"], True, "validation_split holds out the head"),
    M("stop-ignored", "neurec/models/_training.py",
      "                    model.stop_training = dp.agree(model.stop_training)\n"
      "                if model.stop_training:\n                    break\n",
      "                    model.stop_training = dp.agree(model.stop_training)\n",
      T_SEM, True, "stop_training set mid-epoch waits for the epoch's end"),
    M("hogwild-dropped", "neurec/models/model.py",
      'bool(getattr(self, "hogwild", False))', "False",
      T_SEM, True, "compile(hogwild=True) is silently ignored"),
    M("auc-flipped", "neurec/metrics.py",
      "return float(np.sum(pos * (neg_below + 0.5 * neg)) / (tp * tn))",
      "return 1.0 - float(np.sum(pos * (neg_below + 0.5 * neg)) / (tp * tn))",
      T_MET, True, "AUC returned as 1 - AUC"),
    M("ctrl-c-step-lost", "neurec/models/_training.py",
      "    finally:\n        opt.iterations = int(step[0])\n",
      "    finally:\n        pass\n",
      T_SEM + T_THR, True, "a chunk's steps are lost when KeyboardInterrupt hits as C returns"),
    # -- model.py ------------------------------------------------------------------------
    M("validation-split-wins", "neurec/models/_training.py",
      "        if validation_data is not None:\n            validation_split = 0.0",
      "        if False:\n            validation_split = 0.0",
      T_SEM, what="validation_split used although validation_data is given"),
    M("validation-freq-off-by-one", "neurec/models/_training.py",
      "return (epoch + 1) % int(validation_freq) == 0", "return epoch % int(validation_freq) == 0",
      T_SEM, what="int validation_freq counted from epoch 0"),
    M("validation-freq-list-0-based", "neurec/models/_training.py",
      "return epoch + 1 in validation_freq", "return epoch in validation_freq",
      T_SEM, what="list validation_freq read as 0-based epochs"),
    M("trainable-weights-all", "neurec/models/model.py",
      "for w in layer.trainable_weights]", "for w in layer.weights]",
      T_API, what="Model.trainable_weights includes frozen layers"),
    M("call-ignores-input", "neurec/models/model.py",
      "                             \"supported; build one graph from the layers instead\")\n"
      "        return self.predict(x, verbose=0)",
      "                             \"supported; build one graph from the layers instead\")\n"
      "        return self.predict(x, verbose=0)[::-1]",
      T_API, what="Model.__call__ returns rows in the wrong order"),
    M("penalty-not-in-fit-loss", "neurec/models/_training.py",
      'epoch_logs["loss"] += model._regularization_penalty()', "pass",
      T_MET, what="fit's loss omits the L2 penalty"),
    # -- issue 12: weights, batches from Python, file names, the command line, progress ---
    M("loss-weights-ignored", "csrc/src/plan_loss.c",
      "float ws = c->w ? c->w[s] * scale : scale;", "float ws = scale;",
      ["tests/test_sample_weight.py"], what="the C loss ignores sample weights"),
    M("class-weight-missing-zero", "neurec/models/_weights.py",
      "class_weight.get(int(c), 1.0)", "class_weight.get(int(c), 0.0)",
      ["tests/test_sample_weight.py", "tests/test_keras_api.py"],
      what="a class that class_weight does not name weighs 0 (Keras: 1)"),
    M("larger-batch-joins-run", "neurec/models/_adapters.py",
      "if b.rows > size:  # a larger batch starts the next call",
      "if b.rows > size and False:",
      ["tests/test_data_adapters.py"], what="a larger batch joins a run of smaller ones"),
    M("weights-h5-refused", "neurec/_filenames.py",
      '_MAPPED_WEIGHTS_SUFFIXES = (".weights.h5", ".h5", ".hdf5")',
      '_MAPPED_WEIGHTS_SUFFIXES = (".hdf5",)',
      T_SAVE, what="Keras's '.weights.h5' name is not accepted for weights"),
    M("cli-no-refit", "neurec/cli/train.py",
      "    if model is None or not args.no_refit:", "    if model is None:",
      ["tests/test_cli_train_evaluate.py"], what="neurec train never refits on all the data"),
    M("main-job-excludes-train-only", "neurec/cli/main_job.py",
      "    seen = log.to_matrix(shape=(n_users, n_items), dedupe=\"max\")",
      "    seen = matrix",
      ["tests/test_cli.py"], what="the main job's --output recommends the held-out purchase"),
    M("bar-without-delay", "neurec/utils/progbar.py",
      "WAIT_SECONDS = 2.0", "WAIT_SECONDS = 0.0",
      ["tests/test_progbar.py"], what="progress bars draw at once, not after 2 s"),
    # -- issue 13: the data-parallel exchange, chunked batches -------------------------
    M("chunk-gradients-lost", "csrc/src/plan_run.c",
      "        nr_plan_forward(c, s0, s1);\n",
      "        nr_plan_forward(c, s0, s1);\n        memset(p->tgrad + (size_t)ith * "
      "(size_t)p->dense_total, 0, (size_t)p->dense_total * sizeof(float));\n",
      T_GRAD, what="each chunk of a large batch overwrites the last one's dense gradient"),
    M("rowsum-in-float", "csrc/src/rowsum.c",
      "        double acc[64];", "        float acc[64];",
      ["tests/test_rowsum.py"], what="the exchange sums rows in float, not double"),
    M("rowsum-first-sender-only", "csrc/src/rowsum.c",
      "                next[last[slot]] = i;", "                (void)last;",
      ["tests/test_rowsum.py"], what="a row other ranks also sent keeps only the first's gradient"),
    M("rowsum-index-left-dirty", "csrc/src/rowsum.c",
      "            ws->slot_of[out_ids[k]] = -1;", "            (void)0;",
      ["tests/test_reduce_hook.py"], what="the merge's row index keeps the last batch's slots"),
    M("perm-buckets-unshuffled", "csrc/src/sampler.c",
      "        shuffle(perm + start[b], start[b + 1] - start[b], &own);", "        (void)own;",
      ["tests/test_sampler.py"], what="fit's shuffle leaves each bucket's values in order"),
    M("owners-no-epoch-sync", "neurec/models/_training.py",
      "                dp.sync_state()  # the callbacks may save the optimizer state",
      "                pass", ["tests/test_distributed.py", "tests/test_distributed_resume.py"],
      what="rows updated at their owners: other ranks keep stale optimizer state"),
    M("owners-no-chunk-sync", "neurec/models/_distributed.py",
      "        if self._sync_chunks:\n", "        if False:\n", ["tests/test_distributed.py"],
      what="a mid-epoch checkpoint from rank 0 misses rank 1's rows' optimizer state"),
    M("owners-no-catch-up-after-raise", "neurec/models/_distributed.py",
      "            self.exchange.stale = True  # the last fit raised mid-epoch: catch up first\n"
      "            self.sync_state()\n", "            pass\n", ["tests/test_distributed.py"],
      what="after a fit that raised, rank 0's lagging copies overwrite the owners' state"),
    M("pack-values-first-row", "csrc/py/_grads.c",
      "                memcpy(vals, w->w + part->rows[r] * w->cols, row_bytes);",
      "                memcpy(vals, w->w + part->rows[0] * w->cols, row_bytes);",
      ["tests/test_reduce_hook.py"], what="the new rows a rank sends all carry one row's values"),
    M("pack-rows-last-part-only", "csrc/py/_grads.c",
      "                c[1] += row_bytes * (size_t)part->n_rows;", "                (void)0;",
      ["tests/test_reduce_hook.py"], what="pack_rows overwrites a table's gradients thread by thread"),
    M("steps-norm-ignored", "csrc/src/plan_loss.c",
      "(float)((c->norm > 0 ? c->norm : c->bs) * P)", "(float)(c->bs * P)",
      ["tests/test_routing.py"], what="a rank's share of a batch is a mean over the share"),
    M("route-split-untouched", "csrc/py/_exchange.c",
      "        t[clip_id(id_at(id, wide, o[j]), rows)] = 1;", "        (void)t;",
      ["tests/test_routing.py"], what="the rows a rank trained are not marked for the sync"),
    M("routed-no-chunk-sync", "neurec/models/_distributed.py",
      "        self.sync_routed()\n", "        pass\n", ["tests/test_distributed.py"],
      what="routed rows stay on their owners: the ranks' models part"),
    M("shared-window-own-block-only", "csrc/py/_window.c",
      "                s->offs[r] += h[3 + d * T + j] * s->widths[j];", "                (void)h;",
      ["tests/test_distributed.py"], what="an owner merges every sender's first block"),
    M("window-grads-weighted", "csrc/py/_window.c",
      "s->summed ? (n > 0 ? 1.0 : 0.0) : (double)n / (double)total",
      "(double)n / (double)total",
      ["tests/test_distributed.py"], what="routed ranks' gradients weighted again in the window"),
    M("tagged-split-takes-all", "csrc/py/_exchange.c",
      "if ((long long)(v >> NR_PERM_TAG_SHIFT) == rank)", "if (v || rank >= 0)",
      ["tests/test_routing.py"], what="a tagged shuffle's split ignores the owners it carries"),
    M("tagged-split-unmarked", "csrc/py/_exchange.c",
      "(sown || (tagged && mark)) && j < m", "sown && j < m",
      ["tests/test_routing.py", "tests/test_distributed.py"],
      what="a tagged chunk's trained rows are not marked for the swap when they must be"),
    M("perm-tags-dropped", "csrc/src/sampler.c",
      "return tags ? (int64_t)((uint64_t)i | (uint64_t)tags[i] << NR_PERM_TAG_SHIFT) : i;",
      "(void)tags;\n    return i;",
      ["tests/test_routing.py"], what="the shuffle drops the owners it should carry"),
    M("route-tags-present-unmarked", "csrc/py/_exchange.c",
      "            p[r] = 1;", "            (void)p;",
      ["tests/test_routing.py", "tests/test_distributed.py"],
      what="rows a tagged pass trains are never swapped at the chunks' ends"),
    M("rowsum-unit-copy-any-weight", "csrc/src/rowsum.c",
      "next[j] < 0 && weight_of[j] == 1.0", "next[j] < 0 && weight_of[j] != 0.0",
      ["tests/test_rowsum.py"], what="a row sent once is copied unweighted"),
    M("owner-mask-shifted", "csrc/py/_grads.c",
      "? id & (owners - 1) :", "? (id >> 1) & (owners - 1) :",
      ["tests/test_distributed.py"], what="rows are packed for the wrong owners"),
    M("shared-node-comm-leaked", "neurec/distribution/_shared.py",
      "            self._node.Free()\n", "            pass\n", ["tests/test_distributed.py"],
      what="every fit leaks a communicator: a job runs out after 2048 fits"),
    M("sync-rows-empty-share", "neurec/distribution/_routing.py",
      "reshape(mine.size, w // a.itemsize)", "reshape(mine.size, -1)",
      ["tests/test_distributed.py"], what="a rank with no updated rows cannot take part in the swap"),
    M("routed-grads-weighted", "neurec/distribution/_exchange.py",
      "            return (table[:, 1] > 0).astype(np.float64)",
      "            return table[:, 1] / total",
      ["tests/test_distributed.py"], what="routed ranks' global-batch gradients weighted again"),
    # -- metrics.py ----------------------------------------------------------------------
    M("auc-ties-win", "neurec/metrics.py",
      "np.sum(pos * (neg_below + 0.5 * neg))", "np.sum(pos * (neg_below + neg))",
      T_MET, what="AUC counts tied pairs as wins"),
    M("accuracy-threshold-inclusive", "neurec/metrics.py",
      "return float(np.mean((p > self.threshold)", "return float(np.mean((p >= self.threshold)",
      T_MET, what="evaluate's accuracy counts 0.5 as positive"),
    M("accuracy-logits-no-sigmoid", "neurec/metrics.py",
      "        if self.from_logits:\n            p = 1.0 / (1.0 + np.exp(-p))\n"
      "        return float(np.mean((p > self.threshold)",
      "        return float(np.mean((p > self.threshold)",
      T_MET, what="accuracy thresholds logits at 0.5"),
    M("mse-as-mae", "neurec/metrics.py",
      "    error = staticmethod(np.square)", "    error = staticmethod(np.abs)",
      T_MET, what="evaluate's mse is the mae"),
    M("mae-from-sq-err", "neurec/metrics.py",
      '    stat = "abs_err"', '    stat = "sq_err"',
      T_MET, what="fit's mae is the mse"),
    # -- callbacks/ ----------------------------------------------------------------------
    M("scheduler-not-applied", "neurec/callbacks/learning_rate.py",
      "        optimizer.learning_rate = float(lr)\n", "",
      T_CB, what="LearningRateScheduler computes the rate but never sets it"),
    M("plateau-no-factor", "neurec/callbacks/learning_rate.py",
      "new_lr = max(old_lr * self.factor, self.min_lr)", "new_lr = max(old_lr, self.min_lr)",
      T_CB, what="ReduceLROnPlateau never lowers the rate"),
    M("terminate-on-nan-noop", "neurec/callbacks/terminate_on_nan.py",
      '            _print(f"Batch {batch}: Invalid loss, terminating training")\n'
      "            self.model.stop_training = True",
      '            _print(f"Batch {batch}: Invalid loss, terminating training")',
      T_CB, what="TerminateOnNaN prints but does not stop"),
    M("min-delta-ignored", "neurec/callbacks/monitor.py",
      "return bool(value + self.min_delta < reference)", "return bool(value < reference)",
      T_CB, what="the monitors' shared improvement test ignores min_delta in min mode"),
    # -- initializers.py -----------------------------------------------------------------
    M("glorot-fan-in", "neurec/initializers.py",
      'scale, mode, distribution = 1.0, "fan_avg", "uniform"',
      'scale, mode, distribution = 1.0, "fan_in", "uniform"',
      T_API, what="GlorotUniform scales by fan_in"),
    M("he-normal-scale-1", "neurec/initializers.py",
      'scale, mode, distribution = 2.0, "fan_in", "truncated_normal"',
      'scale, mode, distribution = 1.0, "fan_in", "truncated_normal"',
      T_API, what="HeNormal uses scale 1"),
    M("lecun-normal-fan-out", "neurec/initializers.py",
      'scale, mode, distribution = 1.0, "fan_in", "truncated_normal"',
      'scale, mode, distribution = 1.0, "fan_out", "truncated_normal"',
      T_API, what="LecunNormal scales by fan_out"),
    M("truncated-no-correction", "neurec/initializers.py",
      "std = math.sqrt(var) / 0.87962566103423978", "std = math.sqrt(var)",
      T_API, what="truncated variance-scaling draws lack Keras's 0.8796 correction"),
    M("truncation-at-3-sigma", "neurec/initializers.py",
      "    bad = np.abs(out) > 2.0\n    while bad.any():\n"
      "        out[bad] = g.normal(0.0, 1.0, size=int(bad.sum()))\n        bad = np.abs(out) > 2.0",
      "    bad = np.abs(out) > 3.0\n    while bad.any():\n"
      "        out[bad] = g.normal(0.0, 1.0, size=int(bad.sum()))\n        bad = np.abs(out) > 3.0",
      T_API, what="truncated normals cut at 3 standard deviations"),
    M("fans-swapped", "neurec/initializers.py",
      "        return shape[0], shape[1]", "        return shape[1], shape[0]",
      T_API, what="fan_in and fan_out of 2-D kernels swapped"),
    M("seed-ignored", "neurec/initializers.py",
      "self._rng = None if seed is None else np.random.default_rng(seed)", "self._rng = None",
      T_API, what="initializer seeds ignored (global generator used)"),
    M("uniform-default-range", "neurec/initializers.py",
      "def __init__(self, minval: float = -0.05, maxval: float = 0.05,",
      "def __init__(self, minval: float = -0.1, maxval: float = 0.1,",
      T_API, what="RandomUniform's default range is not Keras's"),
    # -- optimizers.py -------------------------------------------------------------------
    M("adam-default-epsilon", "neurec/optimizers.py",
      "epsilon: float = 1e-7, amsgrad: bool = False", "epsilon: float = 1e-8, amsgrad: bool = False",
      T_API, what="Adam's default epsilon is PyTorch's"),
    M("rmsprop-default-rho", "neurec/optimizers.py",
      "def __init__(self, learning_rate: float = 0.001, rho: float = 0.9,",
      "def __init__(self, learning_rate: float = 0.001, rho: float = 0.99,",
      T_API, what="RMSprop's default rho is PyTorch's"),
    M("sgd-default-lr", "neurec/optimizers.py",
      "def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0,",
      "def __init__(self, learning_rate: float = 0.1, momentum: float = 0.0,",
      T_API, what="SGD's default learning rate"),
    M("adagrad-default-accumulator", "neurec/optimizers.py",
      "initial_accumulator_value: float = 0.1,", "initial_accumulator_value: float = 0.0,",
      T_API, what="Adagrad's default initial accumulator"),
    M("rmsprop-rho-not-passed", "neurec/optimizers.py",
      'rho=getattr(self, "rho", 0.9),', "rho=0.9,",
      T_PAR, what="RMSprop's rho never reaches C"),
    M("adam-beta2-not-passed", "neurec/optimizers.py",
      'beta_2=getattr(self, "beta_2", 0.999),', "beta_2=0.999,",
      T_PAR, what="Adam's beta_2 never reaches C"),
    # -- saving.py / sequential.py / layers ----------------------------------------------
    M("overwrite-ignored", "neurec/models/saving.py",
      "atomic_write(filepath, write_zip, overwrite=overwrite)",
      "atomic_write(filepath, write_zip, overwrite=True)",
      T_SAVE, what="save(overwrite=False) replaces the file"),
    M("weights-overwrite-ignored", "neurec/models/saving.py",
      "atomic_write(filepath, write_npz, overwrite=overwrite)",
      "atomic_write(filepath, write_npz, overwrite=True)",
      T_SAVE, what="save_weights(overwrite=False) replaces the file"),
    M("load-compile-ignored", "neurec/models/saving.py",
      "        if compile and comp:", "        if comp:",
      T_SAVE, what="load_model(compile=False) compiles anyway"),
    M("compile-config-stale-optimizer", "neurec/models/model.py",
      '        config["optimizer"] = optimizers_mod.serialize(self.optimizer)\n', "",
      T_SAVE, what="save writes the optimizer settings of compile time, not the current ones"),
    M("sequential-loads-as-model", "neurec/models/model.py",
      'return target._from_graph(inputs, output, config.get("name"))',
      'return Model._from_graph(inputs, output, config.get("name"))',
      T_SAVE, what="Model.from_config ignores the class the config names"),
    M("optimizer-state-negative-moments", "neurec/optimizers.py",
      "if j in self.nonnegative_slots and c.size and c.min() < 0:", "if False:",
      ["tests/test_hardening.py", "tests/test_optimizers.py"],
      what="load_own_variables accepts negative second moments"),
    M("pop-first", "neurec/models/sequential.py",
      "layer = self._stack.pop()", "layer = self._stack.pop(0)",
      T_API, what="Sequential.pop removes the first layer"),
    M("bias-regularizer-dropped", "neurec/layers/core.py",
      "self.bias_regularizer = regularizers.get(bias_regularizer)", "self.bias_regularizer = None",
      T_API, what="Dense(bias_regularizer=) ignored"),
    M("reference-in-float32", "neurec/models/_functional.py",
      "masks: Optional[Mapping[str, np.ndarray]] = None, dtype=np.float64",
      "masks: Optional[Mapping[str, np.ndarray]] = None, dtype=np.float32",
      T_GRAD + ["tests/test_layers_numpy.py"],
      what="the NumPy reference runs the layers in float32"),
    M("dense-reference-ignores-weights", "neurec/layers/core.py",
      "        w = self.weights if weights is None else list(weights)\n",
      "        w = self.weights\n",
      T_GRAD, what="Dense.call_numpy ignores the weights it is given (finite differences)"),
    M("dropout-rate-zero-in-c", "neurec/layers/core.py",
      "b.op(OP_DROPOUT, out, [b.value(src)], rate=self.rate)",
      "b.op(OP_DROPOUT, out, [b.value(src)], rate=0.0)",
      T_GRAD + T_SEM, what="Dropout lowered to the C plan with rate 0"),
    # -- recommend.py --------------------------------------------------------------------
    M("item-input-ignored", "neurec/models/recommend.py",
      "self.iname = item_input or names[1]", "self.iname = names[1]",
      T_REC, what="recommend(item_input=) ignored"),
    M("scoring-model-input-order", "neurec/models/recommend.py",
      'fast = make_model([nu_in, ni_in], mapped[id(model.outputs[0])], name=model.name + "_scoring")',
      'fast = make_model([nu_in, ni_in] if uslot == 0 else [ni_in, nu_in], '
      'mapped[id(model.outputs[0])], name=model.name + "_scoring")',
      T_REC, what="the bug found by test_recommend_with_named_inputs_in_any_order"),
    # -- C core ----------------------------------------------------------------------------
    M("dropout-mask-per-batch", "csrc/src/plan_ops.c",
      "(uint64_t)sample_of(c, b0 + b));", "(uint64_t)0);",
      T_GRAD, what="one Dropout mask for every sample of a batch"),
    M("gil-held-in-fit", "csrc/py/pools.h",
      "        Py_BEGIN_ALLOW_THREADS                                \\\n"
      "        if (lock_)",
      "        {                                                     \\\n"
      "        if (lock_)",
      T_THR, what="the core's calls (fit, predict, ...) hold the GIL"),
    M("gil-held-in-fit-end", "csrc/py/pools.h",
      "            nr_mutex_unlock(lock_);                           \\\n"
      "        Py_END_ALLOW_THREADS",
      "            nr_mutex_unlock(lock_);                           \\\n"
      "        }",
      [], what="(companion of gil-held-in-fit, applied with it)"),
    M("converter-no-cleanup", "csrc/py/convert.c",
      "    a->array = arr;\n    return Py_CLEANUP_SUPPORTED;", "    a->array = arr;\n    return 1;",
      ["tests/test_evaluation_ranking.py"],
      what="arrays converted before a failing argument are never released (a reference leak)"),
    M("index-error-as-value-error", "csrc/py/convert.c",
      "PyErr_Format(PyExc_IndexError, \"%s: an id is negative or out of range\", what);",
      "PyErr_Format(PyExc_ValueError, \"%s: an id is negative or out of range\", what);",
      T_ALS, what="the status map raises ValueError for an id out of range (one module did)"),
    M("hogwild-never-taken", "csrc/src/plan_run.c",
      "    if (!(p->d.hogwild && p->d.sparse", "    if (!(0 && p->d.sparse",
      T_SEM, what="the C core never takes the Hogwild path"),
    M("hogwild-step-count", "csrc/src/plan_run.c",
      "    *step += done;\n", "    *step += done - (done > 1);\n",
      T_SEM + T_THR, what="Hogwild loses a step per chunk"),
    M("accuracy-threshold-inclusive-c", "csrc/src/plan_loss.c",
      "st->correct += (float)(prob > 0.5f) == t;", "st->correct += (float)(prob >= 0.5f) == t;",
      T_MET, what="fit's accuracy counts 0.5 as positive"),
    M("mae-signed-c", "csrc/src/plan_loss.c",
      "st->abs_err += fabs((double)(pr - t));", "st->abs_err += (double)(pr - t);",
      T_MET, what="fit's mae sums signed errors"),
    M("als-cg-no-warm-start", "csrc/src/als.c",
      "    float *restrict x = a->x + u * d;\n"
      "    const int64_t b0 = a->indptr[u], b1 = a->indptr[u + 1];\n    /* r = b - A x */",
      "    float *restrict x = a->x + u * d;\n"
      "    const int64_t b0 = a->indptr[u], b1 = a->indptr[u + 1];\n"
      "    memset(x, 0, (size_t)d * sizeof *x);",
      T_ALS, what="CG restarts every row from zero (no warm start)"),
    M("als-confidence-no-one", "csrc/src/als.c",
      "const float c = 1.0f + a->alpha * rv;", "const float c = a->alpha * rv;",
      T_ALS, what="Cholesky's confidence is alpha * r (implicit's convention), not 1 + alpha * r"),
    M("als-reg-not-scaled", "csrc/src/als.c",
      "    if (a->nu == 0.0f || a->n_cols == 0)", "    if (1)",
      T_ALS, what="frequency-scaled regularization ignored"),
    M("als-offset-dropped", "csrc/src/als.c",
      "            const double w = (double)c * (1.0 - o) + o;", "            const double w = c;",
      T_ALS, what="the fixed side's bias is ignored in the Cholesky right-hand side"),
    M("als-bias-not-written-back", "neurec/models/_als.py",
      "            p.user_bias.embeddings[:, 0] = self.P[:, f]", "            pass",
      T_ALS, what="the user biases ALS solves never reach the layer"),
    M("als-items-not-solved", "neurec/models/_als.py",
      '            for b, side in enumerate("ui"):', '            for b, side in enumerate("u"):',
      T_ALS, what="an epoch solves the users only"),
]

# applied together (a mutant whose text spans two places)
GROUPS = {"gil-held-in-fit": ["gil-held-in-fit-end"]}


def sh(cmd, cwd, env=None, timeout=None) -> Tuple[int, str]:
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        return -9, f"timeout after {timeout} s: {e}"


def copy_repo(dst: str) -> None:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    for f in files:
        f = f.decode()
        if not f or not os.path.isfile(os.path.join(REPO, f)):
            continue
        os.makedirs(os.path.dirname(os.path.join(dst, f)) or dst, exist_ok=True)
        shutil.copy2(os.path.join(REPO, f), os.path.join(dst, f))


def check_build_env() -> str:
    """Why ``setup.py build_ext`` cannot run in this interpreter ('' if it can): it uses the
    environment's setuptools, not an isolated one, so pyproject's minimum applies here."""
    import re
    with open(os.path.join(REPO, "pyproject.toml")) as f:
        m = re.search(r'"setuptools>=([0-9]+)', f.read())
    try:
        import setuptools
    except ImportError:
        return "setuptools is not installed"
    if m and int(setuptools.__version__.split(".")[0]) < int(m.group(1)):
        return (f"setuptools {setuptools.__version__} is older than pyproject.toml's "
                f"setuptools>={m.group(1)}: pip install 'setuptools>={m.group(1)}'")
    return ""


def build(work: str) -> None:
    env = dict(os.environ, NEUREC_CFLAGS="-O1")  # faster builds; -O1 is appended after -O3
    # --force: mtimes are not trusted (a mutant and its revert can land within one tick)
    rc, out = sh([sys.executable, "setup.py", "-q", "build_ext", "--inplace", "--force"], work, env)
    if rc != 0:
        sys.exit(f"build failed:\n{out[-3000:]}")


def run_tests(work: str, tests: List[str], timeout: float, all_failures: bool = False
              ) -> Tuple[int, str]:
    env = dict(os.environ, PYTHONPATH=work, PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg")
    stop = ["-rf"] if all_failures else ["-x"]
    return sh([sys.executable, "-m", "pytest", "-q", *stop, "-p", "no:cacheprovider", *tests],
              work, env, timeout)


def failed_tests(out: str) -> List[str]:
    return [line.split()[1] for line in out.splitlines() if line.startswith("FAILED ")]


def module_of(m: Mutant) -> str:
    return m.path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", help="comma-separated mutant names")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--markdown", help="also write the report as a Markdown table to this file")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per test run")
    ap.add_argument("--show-killers", action="store_true",
                    help="run each subset to the end and list the tests that fail (slower)")
    args = ap.parse_args(argv)

    companions = {c for cs in GROUPS.values() for c in cs}
    mutants = [m for m in MUTANTS if m.name not in companions]
    if args.only:
        names = set(args.only.split(","))
        unknown = names - {m.name for m in mutants}
        if unknown:
            sys.exit(f"unknown mutants: {sorted(unknown)}")
        mutants = [m for m in mutants if m.name in names]
    by_name = {m.name: m for m in MUTANTS}
    if args.list:
        for m in mutants:
            print(f"{m.name:32s} {m.path:28s} {'issue ' if m.issue else ''}{m.what}")
        return 0

    problem = check_build_env()
    if problem:
        print(f"setup error: {problem}")
        return 2
    start = time.time()
    work = tempfile.mkdtemp(prefix="neurec-mutants-")
    try:
        copy_repo(work)
        # every mutant's text must occur exactly once, or the run is meaningless
        for m in MUTANTS:
            with open(os.path.join(work, m.path)) as f:
                n = f.read().count(m.old)
            if n != 1:
                print(f"setup error: mutant {m.name}: text found {n} times in {m.path}")
                return 2
        build(work)
        subsets = sorted({t for m in mutants for t in m.tests})
        rc, out = run_tests(work, subsets, args.timeout)
        if rc != 0:
            print(f"setup error: the unmutated tests fail:\n{out[-3000:]}")
            return 2
        print(f"baseline: {len(subsets)} test files pass unmutated ({time.time() - start:.0f} s)")
        for m in mutants:
            group = [m] + [by_name[c] for c in GROUPS.get(m.name, [])]
            originals = {}
            for g in group:
                p = os.path.join(work, g.path)
                originals.setdefault(p, open(p).read())
                with open(p) as f:
                    text = f.read()
                with open(p, "w") as f:
                    f.write(text.replace(g.old, g.new, 1))
            c_files = {g.path for g in group if g.path.startswith("csrc/")}
            t0 = time.time()
            try:
                if c_files:
                    build(work)
                rc, out = run_tests(work, m.tests, args.timeout, args.show_killers)
                # pytest: 1 = tests failed (killed); a crash of the interpreter (negative: a
                # signal) or a hang count too; 2-5 (interrupted, internal/usage error, nothing
                # collected) mean the mutant broke the test run itself: an error, not a kill
                if rc == 0:
                    m.result = "SURVIVED"
                elif rc == -9:
                    m.result = "killed (timeout)"
                elif rc == 1 or rc < 0:
                    m.result = "killed"
                else:
                    m.result = f"ERROR (pytest exit {rc})"
                if args.show_killers:
                    m.killers = failed_tests(out)
            finally:
                for p, text in originals.items():
                    with open(p, "w") as f:
                        f.write(text)
                if c_files:
                    build(work)
            m.seconds = time.time() - t0
            print(f"{m.result:9s} {m.name:32s} {m.seconds:5.1f} s", flush=True)
            for t in getattr(m, "killers", []):
                print(f"          {t}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    # report per module
    modules = {}
    for m in mutants:
        k = module_of(m)
        modules.setdefault(k, [0, 0])
        modules[k][1] += 1
        modules[k][0] += m.result.startswith("killed")
    killed = sum(k for k, _ in modules.values())
    lines = ["| module | killed / mutants |", "|---|---|"]
    for k in sorted(modules):
        lines.append(f"| `{k}` | {modules[k][0]} / {modules[k][1]} |")
    lines.append(f"| **total** | **{killed} / {len(mutants)}** |")
    lines += ["", "| mutant | module | bug | result |", "|---|---|---|---|"]
    for m in mutants:
        lines.append(f"| `{m.name}`{' (issue 15)' if m.issue else ''} | `{m.path}` | {m.what} | "
                     f"{m.result} |")
    report = "\n".join(lines)
    print()
    print(report)
    print(f"\n{killed}/{len(mutants)} killed in {time.time() - start:.0f} s")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(report + "\n")
    return 0 if killed == len(mutants) else 1


if __name__ == "__main__":
    sys.exit(main())
