"""``fit`` / ``predict`` / ``evaluate`` on batches from Python: generators, iterables and
lists of ``(x, y)`` batches, PyDataset-like objects.

The oracle is the array path: the same batches in the same order, as arrays with
``shuffle=False``, must give the same bits (one thread), since the C core is handed the
same steps. ``steps_per_epoch`` and running out of data follow Keras 3, checked through
how many batches a generator gave up and how many optimizer steps were taken.
"""
import itertools
import warnings

import numpy as np
import pytest

from graphs import data_for, dropout_tower
from graphs import interactions as data
from neurec import callbacks
from neurec.layers import Dense, Embedding, Flatten, Input, Multiply
from neurec.models import Model, _adapters, _training

N, B = 1000, 64  # 15 batches of 64 and one of 40
STEPS = -(-N // B)


def gmf(seed=1):
    import neurec
    neurec.utils.set_random_seed(seed)
    u, i = Input(shape=(1,), name="user"), Input(shape=(1,), name="item")
    g = Multiply()([Flatten()(Embedding(30, 8, name="users")(u)),
                    Flatten()(Embedding(20, 8, name="items")(i))])
    model = Model([u, i], Dense(1, activation="sigmoid", name="out")(g))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy", "auc"])
    return model


def arrays(n=N, seed=0):
    u, i, y = data(n, seed=seed)
    return [u, i], y


def batch_list(x, y, size=B):
    return [((x[0][s:s + size], x[1][s:s + size]), y[s:s + size]) for s in range(0, len(y), size)]


def endless(x, y, size=B):
    """Passes over the batches, forever, and a counter of the batches given."""
    given = itertools.count()

    def gen():
        while True:
            for b in batch_list(x, y, size):
                next(given)
                yield b
    return gen(), given


def same_weights(a, b):
    return all(np.array_equal(p, q) for p, q in zip(a.get_weights(), b.get_weights()))


def trained_on_arrays(epochs=1, **kw):
    x, y = arrays()
    model = gmf()
    h = model.fit(x, y, batch_size=B, epochs=epochs, shuffle=False, verbose=0, seed=5, **kw)
    return model, h


class Dataset:
    """A PyDataset-like object (``__len__``, ``__getitem__``, ``on_epoch_end``)."""

    def __init__(self, x, y, size=B):
        self.x, self.y, self.size = x, y, size
        self.begins = self.ends = 0
        self.asked = []

    def __len__(self):
        return -(-len(self.y) // self.size)

    def __getitem__(self, k):
        self.asked.append(k)
        s = slice(k * self.size, (k + 1) * self.size)
        return (self.x[0][s], self.x[1][s]), self.y[s]

    def on_epoch_begin(self):
        self.begins += 1

    def on_epoch_end(self):
        self.ends += 1


# -- the same bits as arrays ------------------------------------------------------------------
def test_finite_generator_trains_as_arrays(one_thread):
    want, hw = trained_on_arrays()
    x, y = arrays()
    model = gmf()
    h = model.fit((b for b in batch_list(x, y)), verbose=0, seed=5)
    assert same_weights(model, want)
    assert h.history == hw.history
    assert model.optimizer.iterations == STEPS


def test_list_of_batches_trains_as_arrays_every_epoch(one_thread):
    want, hw = trained_on_arrays(epochs=3)
    x, y = arrays()
    model = gmf()
    h = model.fit(batch_list(x, y), epochs=3, shuffle=False, verbose=0, seed=5)
    assert same_weights(model, want)
    assert h.history == hw.history


def test_pydataset_trains_as_arrays_and_gets_its_epoch_hooks(one_thread):
    want, _ = trained_on_arrays(epochs=3)
    x, y = arrays()
    ds = Dataset(x, y)
    model = gmf()
    model.fit(ds, epochs=3, shuffle=False, verbose=0, seed=5)
    assert same_weights(model, want)
    assert ds.begins == 3 and ds.ends == 3
    assert ds.asked == list(range(STEPS)) * 3
    # steps_per_epoch = a pass: each epoch is a pass, the next one starts at batch 0
    ds2 = Dataset(x, y)
    again = gmf()
    again.fit(ds2, epochs=3, steps_per_epoch=STEPS, shuffle=False, verbose=0, seed=5)
    assert same_weights(again, want) and ds2.asked == ds.asked


def test_pydataset_with_fewer_steps_per_epoch_continues_its_pass(one_thread):
    """As Keras 3: epochs of 5 batches walk through the 16 of a pass; the 4th epoch finds 1
    left, ends early with a warning, and the 5th starts a new pass."""
    x, y = arrays()
    ds = Dataset(x, y)
    model = gmf()
    with pytest.warns(UserWarning, match="epoch ends after 1 of its 5 steps"):
        h = model.fit(ds, epochs=5, steps_per_epoch=5, shuffle=False, verbose=0, seed=5)
    assert ds.asked == list(range(16)) + list(range(5))
    assert h.epoch == [0, 1, 2, 3, 4] and ds.ends == 5
    assert model.optimizer.iterations == 21


def test_endless_generator_with_steps_per_epoch_is_read_continuously(one_thread):
    """Each epoch takes the next steps_per_epoch batches: 3 epochs of 5 batches are the
    first 15 batches, and the generator gave exactly those."""
    x, y = arrays()
    gen, given = endless(x, y)
    model = gmf()
    h = model.fit(gen, epochs=3, steps_per_epoch=5, verbose=0, seed=5)
    assert len(h.epoch) == 3 and model.optimizer.iterations == 15
    assert next(given) == 15  # nothing read ahead or skipped
    want = gmf()
    want.fit([x[0][:15 * B], x[1][:15 * B]], y[:15 * B], batch_size=B, shuffle=False, verbose=0,
             seed=5)
    assert same_weights(model, want)


def test_endless_generator_over_whole_passes_matches_arrays(one_thread):
    want, hw = trained_on_arrays(epochs=2)
    x, y = arrays()
    gen, _ = endless(x, y)
    model = gmf()
    h = model.fit(gen, epochs=2, steps_per_epoch=STEPS, verbose=0, seed=5)
    assert same_weights(model, want)
    assert h.history == hw.history


def test_arrays_with_steps_per_epoch_continue_the_pass(one_thread):
    """As Keras 3: with arrays, steps_per_epoch takes that many batches per epoch from the
    pass under way."""
    x, y = arrays()
    model = gmf()
    model.fit(x, y, batch_size=B, epochs=3, steps_per_epoch=5, shuffle=False, verbose=0, seed=5)
    want = gmf()
    want.fit([x[0][:15 * B], x[1][:15 * B]], y[:15 * B], batch_size=B, shuffle=False, verbose=0,
             seed=5)
    assert same_weights(model, want)
    # without batch_size, steps_per_epoch sets it: one pass in that many batches
    a, b = gmf(), gmf()
    a.fit(x, y, steps_per_epoch=4, shuffle=False, verbose=0, seed=5)
    b.fit(x, y, batch_size=250, shuffle=False, verbose=0, seed=5)
    assert same_weights(a, b) and a.optimizer.iterations == 4


def test_arrays_with_more_steps_than_batches_end_the_epoch_with_a_warning(one_thread):
    want, _ = trained_on_arrays(epochs=2)
    x, y = arrays()
    model = gmf()
    with pytest.warns(UserWarning, match="one pass"):
        model.fit(x, y, batch_size=B, epochs=2, steps_per_epoch=STEPS + 3, shuffle=False,
                  verbose=0, seed=5)
    assert same_weights(model, want)


def test_batches_of_varying_size_train_as_one_fit_per_batch(one_thread):
    """Sizes 32, 32, 64, 64, 16, 10, 50: runs of equal size (closed by a smaller batch) are
    one C call each; the result is each batch trained in turn as its own step."""
    x, y = arrays(268)
    sizes = [32, 32, 64, 64, 16, 10, 50]
    cuts = np.cumsum([0] + sizes)
    batches = [((x[0][a:b], x[1][a:b]), y[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
    model = gmf()
    model.fit(iter(batches), verbose=0, seed=5)
    want = gmf()
    for (xb, yb) in batches:
        want.fit(list(xb), yb, batch_size=len(yb), shuffle=False, verbose=0, seed=5)
    assert model.optimizer.iterations == len(sizes)
    assert same_weights(model, want)


def test_chunks_are_runs_of_equal_batches_closed_by_a_smaller_one():
    x, y = arrays(268)
    model = gmf()
    model._get_plan()
    sizes = [32, 32, 64, 64, 16, 10, 50]
    cuts = np.cumsum([0] + sizes)
    src = _adapters.BatchSource(_adapters.Batches(model, [((x[0][a:b], x[1][a:b]), y[a:b])
                                                          for a, b in zip(cuts[:-1], cuts[1:])],
                                                  "fit", "x"), model._builder, None, None)
    assert src.available(0)
    src.begin_epoch(0)
    got = []
    while (c := src.next_chunk(1)) is not None:  # max_batches is not used: no time budget
        got.append((len(c.idx), c.batch_size))
    assert got == [(64, 32), (144, 64), (10, 10), (50, 50)]


def test_dropout_with_batches_does_not_depend_on_timing(one_thread, monkeypatch):
    """Chunk boundaries (which set the rows Dropout draws masks for) come from a row
    budget, not from how long the last call took: two runs give the same bits even when
    the time-based chunk size changes between them."""
    def train():
        import neurec
        neurec.utils.set_random_seed(2)
        model = dropout_tower()
        model.compile(optimizer="adam", loss="binary_crossentropy")
        xs = data_for(model, 700, seed=3)
        ys = np.random.default_rng(1).integers(0, 2, 700).astype(np.float32)
        model.fit(batch_list(xs, ys, 32), epochs=2, shuffle=False, verbose=0, seed=7)
        return model

    monkeypatch.setattr(_adapters, "BATCH_CHUNK_ROWS", 200)  # several chunks an epoch
    a = train()
    monkeypatch.setattr(_training, "next_chunk", lambda *args: 1)
    b = train()
    assert same_weights(a, b)


def test_shuffle_orders_the_batches_of_a_list_and_is_ignored_by_generators(one_thread):
    x, y = arrays()
    runs = []
    for shuffle, seed in [(False, 5), (True, 5), (True, 5), (True, 6)]:
        model = gmf()
        model.fit(batch_list(x, y), shuffle=shuffle, verbose=0, seed=seed)
        runs.append(model)
    assert not same_weights(runs[0], runs[1])
    assert same_weights(runs[1], runs[2]) and not same_weights(runs[1], runs[3])
    g = gmf()
    g.fit(iter(batch_list(x, y)), shuffle=True, verbose=0, seed=5)
    assert same_weights(g, runs[0])


def test_a_reiterable_is_read_again_every_epoch(one_thread):
    """An iterable that is not an iterator (a torch DataLoader, say) starts over each epoch;
    batches that are array-likes (``__array__``, as CPU tensors) are read as arrays."""
    class Tensor:
        def __init__(self, a):
            self.a = a

        def __array__(self, dtype=None, copy=None):
            return self.a

    class Loader:
        def __init__(self, batches):
            self.batches = batches

        def __len__(self):
            return len(self.batches)

        def __iter__(self):
            return iter([[Tensor(np.stack(xb, axis=1)), Tensor(yb)] for xb, yb in self.batches])

    u = Input(shape=(2,), name="pair")
    model_in = Flatten()(Embedding(30, 4)(u))
    want = Model(u, Dense(1, activation="sigmoid")(model_in))
    want.compile(optimizer="adam", loss="binary_crossentropy")
    got = Model.from_config(want.get_config())
    got.compile(optimizer="adam", loss="binary_crossentropy")
    got.set_weights(want.get_weights())
    x, y = arrays()
    steps = []
    cb = callbacks.LambdaCallback(on_train_begin=lambda logs: steps.append(cb.params["steps"]))
    got.fit(Loader(batch_list(x, y)), epochs=2, verbose=0, seed=5, callbacks=[cb])
    want.fit(np.stack(x, axis=1), y, batch_size=B, epochs=2, shuffle=False, verbose=0, seed=5)
    assert same_weights(got, want)
    assert steps == [STEPS]
    # with steps_per_epoch a pass: the pass that ended with epoch 1 is followed by a new one
    got.fit(Loader(batch_list(x, y)), epochs=2, steps_per_epoch=STEPS, verbose=0, seed=5)
    want.fit(np.stack(x, axis=1), y, batch_size=B, epochs=2, shuffle=False, verbose=0, seed=5)
    assert same_weights(got, want)


# -- running out, stopping ---------------------------------------------------------------------
def test_a_finite_generator_shorter_than_the_epochs_stops_training_with_a_warning(one_thread):
    x, y = arrays()
    gen = iter(batch_list(x, y)[:7])
    model = gmf()
    with pytest.warns(UserWarning, match="ran out of data; training stops"):
        h = model.fit(gen, epochs=4, steps_per_epoch=5, verbose=0, seed=5)
    assert h.epoch == [0, 1]  # 5 batches, then the 2 left
    assert model.optimizer.iterations == 7


def test_a_generator_running_out_at_an_epoch_boundary_stops_before_the_next_epoch(one_thread):
    x, y = arrays()
    begun = []
    model = gmf()
    with pytest.warns(UserWarning, match="ran out of data"):
        h = model.fit(iter(batch_list(x, y)[:10]), epochs=4, steps_per_epoch=5, verbose=0,
                      callbacks=[callbacks.LambdaCallback(
                          on_epoch_begin=lambda e, logs: begun.append(e))])
    assert begun == [0, 1] and h.epoch == [0, 1]
    assert model.optimizer.iterations == 10


def test_a_generator_without_steps_per_epoch_for_several_epochs_is_refused():
    x, y = arrays()
    gen, given = endless(x, y)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        gmf().fit(gen, epochs=2, verbose=0)
    assert next(given) == 0  # refused before reading it


def test_an_empty_generator_is_refused():
    with pytest.raises(ValueError, match="no batches"):
        gmf().fit(iter([]), verbose=0)
    with pytest.raises(ValueError, match="no batches"):
        gmf().predict(iter([]))


def test_stop_training_mid_epoch_with_a_generator(one_thread, monkeypatch):
    monkeypatch.setattr(_adapters, "BATCH_CHUNK_ROWS", 3 * B)  # chunks of 3 batches
    x, y = arrays()
    gen, given = endless(x, y)
    model = gmf()
    seen = []

    def stop(batch, logs):
        seen.append(batch)
        if batch >= 5:
            model.stop_training = True

    h = model.fit(gen, epochs=3, steps_per_epoch=STEPS, verbose=0,
                  callbacks=[callbacks.LambdaCallback(on_train_batch_end=stop)])
    assert seen == [2, 5] and h.epoch == [0]
    assert model.optimizer.iterations == 6 and next(given) == 6


class InterruptingPlan:
    """The ``at``-th fit call trains its chunk, then raises KeyboardInterrupt (a Ctrl-C
    during a chunk lands as C returns)."""

    def __init__(self, plan, at):
        self._plan, self._at, self.calls, self.batches = plan, at, 0, 0

    def fit(self, inputs, y, idx, batch_size, step, seed, weights=None):
        out = self._plan.fit(inputs, y, idx, batch_size, step, seed, weights=weights)
        self.calls += 1
        self.batches += -(-len(idx) // batch_size)
        if self.calls == self._at:
            raise KeyboardInterrupt
        return out

    def __getattr__(self, name):
        return getattr(self._plan, name)


def test_ctrl_c_with_a_generator_keeps_the_step_count(monkeypatch):
    monkeypatch.setattr(_adapters, "BATCH_CHUNK_ROWS", 2 * B)
    x, y = arrays()
    model = gmf()
    wrapper = InterruptingPlan(model._get_plan(), 3)
    model._plan = wrapper
    with pytest.raises(KeyboardInterrupt):
        model.fit(endless(x, y)[0], epochs=2, steps_per_epoch=STEPS, verbose=0)
    assert wrapper.calls == 3 and model.optimizer.iterations == wrapper.batches == 6


# -- predict, evaluate, validation -------------------------------------------------------------
@pytest.mark.parametrize("form", ["x", "(x,)", "(x, y)", "list", "dataset"])
def test_predict_on_batches_is_predict_on_arrays(form):
    model, _ = trained_on_arrays()
    x, y = arrays(900, seed=4)
    bl = batch_list(x, y, 100)
    # a batch's tuple is (x, y, ...): a bare x of several inputs is a dict
    source = {"x": ({"user": xb[0], "item": xb[1]} for xb, _ in bl),
              "(x,)": ((xb,) for xb, _ in bl), "(x, y)": iter(bl),
              "list": [(xb,) for xb, _ in bl], "dataset": Dataset(x, y, 100)}[form]
    out = model.predict(source)
    assert out.shape == (900, 1)
    assert np.array_equal(out, model.predict(x))


def test_predict_on_batches_calls_the_predict_hooks(monkeypatch):
    monkeypatch.setattr(_adapters, "PREDICT_CHUNK_ROWS", 250)  # chunks of 3 batches of 100
    model, _ = trained_on_arrays()
    x, y = arrays(900, seed=4)
    calls = []
    cb = callbacks.LambdaCallback(
        on_predict_begin=lambda logs: calls.append(("begin", cb.params["steps"])),
        on_predict_batch_begin=lambda b, logs: calls.append(("b", b)),
        on_predict_batch_end=lambda b, logs: calls.append(("e", b, logs["outputs"].shape[0])),
        on_predict_end=lambda logs: calls.append(("end",)))
    out = model.predict(Dataset(x, y, 100), callbacks=[cb], verbose=0)
    assert calls == [("begin", 9), ("b", 0), ("e", 2, 300), ("b", 3), ("e", 5, 300), ("b", 6),
                     ("e", 8, 300), ("end",)]
    assert np.array_equal(out, model.predict(x, verbose=0))


def test_predict_steps_reads_that_many_batches_of_an_endless_generator():
    model, _ = trained_on_arrays()
    x, y = arrays()
    gen, given = endless(x, y)
    out = model.predict(gen, steps=3)
    assert np.array_equal(out, model.predict([x[0][:3 * B], x[1][:3 * B]]))
    assert next(given) == 3


@pytest.mark.parametrize("form", ["generator", "list", "dataset"])
def test_evaluate_on_batches_is_evaluate_on_arrays(form):
    model, _ = trained_on_arrays()
    x, y = arrays(900, seed=4)
    source = {"generator": iter(batch_list(x, y, 100)), "list": batch_list(x, y, 100),
              "dataset": Dataset(x, y, 100)}[form]
    got = model.evaluate(source, return_dict=True)
    want = model.evaluate(x, y, return_dict=True)
    assert got == want and set(got) == {"loss", "accuracy", "auc"}


def test_evaluate_steps_on_an_endless_generator():
    model, _ = trained_on_arrays()
    x, y = arrays()
    got = model.evaluate(endless(x, y)[0], steps=4, return_dict=True)
    want = model.evaluate([x[0][:4 * B], x[1][:4 * B]], y[:4 * B], return_dict=True)
    assert got == want


def test_validation_data_from_an_endless_generator_with_validation_steps():
    x, y = arrays()
    xv, yv = arrays(300, seed=9)
    seen = []
    model = gmf()
    cb = callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(
        (logs["val_loss"], model.evaluate(xv, yv, return_dict=True)["loss"])))
    vgen, vgiven = endless(xv, yv, 100)
    h = model.fit(x, y, batch_size=B, epochs=3, verbose=0, validation_data=vgen,
                  validation_steps=3, callbacks=[cb])
    assert [a for a, _ in seen] == [b for _, b in seen] == h.history["val_loss"]
    assert "val_auc" in h.history and next(vgiven) == 9
    # and from arrays, for the same model and data: the same logs
    arr = gmf()
    ha = arr.fit(x, y, batch_size=B, epochs=3, verbose=0, validation_data=(xv, yv))
    assert ha.history == h.history


def test_validation_data_as_a_pydataset_and_a_generator_training_set(one_thread):
    x, y = arrays()
    xv, yv = arrays(300, seed=9)
    ds = Dataset(xv, yv, 100)
    model = gmf()
    h = model.fit(endless(x, y)[0], epochs=2, steps_per_epoch=STEPS, validation_data=ds,
                  verbose=0, seed=5)
    want = gmf()
    hw = want.fit(x, y, batch_size=B, epochs=2, shuffle=False, validation_data=(xv, yv),
                  verbose=0, seed=5)
    assert h.history == hw.history and same_weights(model, want)
    assert ds.ends == 2 and ds.asked == [0, 1, 2] * 2


def test_a_one_shot_validation_generator_for_several_validations_is_refused():
    x, y = arrays()
    xv, yv = arrays(300, seed=9)
    with pytest.raises(ValueError, match="validation_steps"):
        gmf().fit(x, y, epochs=2, verbose=0, validation_data=iter(batch_list(xv, yv)))
    h = gmf().fit(x, y, epochs=2, verbose=0, validation_data=iter(batch_list(xv, yv)),
                  validation_freq=2)  # one validation: fine
    assert len(h.history["val_loss"]) == 1


def test_a_validation_generator_running_out_validates_on_what_it_gave_then_raises():
    x, y = arrays()
    xv, yv = arrays(300, seed=9)
    seen = []
    model = gmf()
    cb = callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(
        (logs["val_loss"], model.evaluate([xv[0][200:], xv[1][200:]], yv[200:])[0]) if e == 1
        else None))
    with pytest.warns(UserWarning, match="only 1 of the 2 steps"):
        model.fit(x, y, epochs=2, verbose=0, validation_steps=2, callbacks=[cb],
                  validation_data=iter(batch_list(xv, yv, 100)))
    assert seen[-1][0] == seen[-1][1]  # epoch 2 validated on the one batch left
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no batches left"):
        gmf().fit(x, y, epochs=3, verbose=0, validation_steps=2,
                  validation_data=iter(batch_list(xv, yv, 100)))  # nothing for epoch 3


# -- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [{1, 2}, "users.csv", frozenset(), object(), b"raw"])
def test_unsupported_types_raise_type_error_listing_what_is_supported(bad):
    model = gmf()
    for call in (lambda: model.fit(bad, verbose=0), lambda: model.predict(bad),
                 lambda: model.evaluate(bad)):
        with pytest.raises(TypeError, match="generator.*PyDataset"):
            call()


def test_a_sparse_matrix_points_to_the_sampler():
    import scipy.sparse as sp

    from neurec.data import InteractionMatrix
    model = gmf()
    for m in (sp.csr_matrix(np.eye(20)), InteractionMatrix.from_arrays([0, 1], [2, 3],
                                                                       shape=(30, 20))):
        with pytest.raises(TypeError, match="NegativeSampler"):
            model.fit(m, verbose=0)
        with pytest.raises(TypeError, match="sparse matrix"):
            model.predict(m)


def test_arguments_that_belong_to_the_batches_are_refused_with_a_generator():
    x, y = arrays()
    model = gmf()
    for kw, match in [({"batch_size": 32}, "batch_size"), ({"y": y}, "y must not"),
                      ({"validation_split": 0.1}, "validation_split")]:
        with pytest.raises(ValueError, match=match):
            model.fit(iter(batch_list(x, y)), verbose=0, **kw)
    with pytest.raises(ValueError, match="batch_size"):
        model.predict(iter(batch_list(x, y)), batch_size=32)
    with pytest.raises(ValueError, match="batch_size"):
        model.evaluate(iter(batch_list(x, y)), batch_size=32)
    with pytest.raises(ValueError, match="steps_per_epoch must be >= 1"):
        model.fit(iter(batch_list(x, y)), steps_per_epoch=0, verbose=0)


def test_bad_batches_are_named():
    x, y = arrays()
    model = gmf()
    bl = batch_list(x, y)
    bad_rows = bl[:2] + [((x[0][:10], x[1][:10]), y[:9])]
    with pytest.raises(ValueError, match="batch 2 of x: y has 9 rows"):
        model.fit(iter(bad_rows), verbose=0)
    with pytest.raises(ValueError, match="batch 0 of x: no labels"):
        model.fit(iter([(xb,) for xb, _ in bl]), verbose=0)
    with pytest.raises(TypeError, match="batch 0 of x: inputs of type str"):
        model.predict(iter(["abc"]))
    out_of_range = bl[:3] + [((x[0][:5] + 100, x[1][:5]), y[:5])]
    with pytest.raises(ValueError, match="batches 0..3.*outside"):
        model.fit(iter(out_of_range), verbose=0)
    mixed = [bl[0], bl[1] + (np.ones(B, np.float32),)]
    with pytest.raises(ValueError, match="sample weights"):
        model.fit(iter(mixed), verbose=0)
    with pytest.raises(ValueError, match="tuple of 4"):
        model.fit(iter([bl[0] + (None, None)]), verbose=0)


def test_a_list_of_arrays_is_still_arrays():
    """Only a list of batch tuples is batches: lists of arrays or of id tuples are not."""
    x, y = arrays()
    assert _adapters.input_kind("fit", x) == "arrays"
    assert _adapters.input_kind("predict", [(1, 2, 3), (4, 5, 6)]) == "arrays"
    assert _adapters.input_kind("fit", batch_list(x, y)) == "batches"
    model, _ = trained_on_arrays()
    assert np.array_equal(model.predict([(1, 2, 3), (4, 5, 6)]),
                          model.predict([np.array([1, 2, 3]), np.array([4, 5, 6])]))


def test_batches_with_sample_weights_train_as_weighted_arrays(one_thread):
    x, y = arrays()
    w = np.random.default_rng(3).uniform(0.0, 2.0, N).astype(np.float32)
    model = gmf()
    model.fit(iter([b + (w[k * B:(k + 1) * B],) for k, b in enumerate(batch_list(x, y))]),
              verbose=0, seed=5)
    want = gmf()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want.fit(x, y, sample_weight=w, batch_size=B, shuffle=False, verbose=0, seed=5)
    assert same_weights(model, want)


def test_batches_take_class_weight_and_weighted_evaluate_as_arrays(one_thread):
    x, y = arrays()
    model = gmf()
    model.fit(iter(batch_list(x, y)), class_weight={0: 0.5, 1: 3.0}, verbose=0, seed=5)
    want = gmf()
    want.fit(x, y, class_weight={0: 0.5, 1: 3.0}, batch_size=B, shuffle=False, verbose=0, seed=5)
    assert same_weights(model, want)
    w = np.random.default_rng(4).uniform(0.0, 2.0, N).astype(np.float32)
    with pytest.raises(ValueError, match="not both"):
        gmf().fit(iter([b + (w[k * B:(k + 1) * B],) for k, b in enumerate(batch_list(x, y))]),
                  class_weight={1: 2.0}, verbose=0)
    weighted = [b + (w[k * B:(k + 1) * B],) for k, b in enumerate(batch_list(x, y))]
    got = model.evaluate(weighted, return_dict=True, verbose=0)
    assert got == model.evaluate(x, y, sample_weight=w, return_dict=True, verbose=0)
    assert got["loss"] != model.evaluate(x, y, return_dict=True, verbose=0)["loss"]
