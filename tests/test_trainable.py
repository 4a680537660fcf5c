"""Layer freezing in the C core: ``layer.trainable = False`` keeps a layer's weights fixed."""
import numpy as np
import pytest

from neurec import optimizers
from neurec.data import InteractionMatrix, NegativeSampler
from neurec.models import NeuMF

NU, NI = 25, 18


def _sampler():
    rng = np.random.default_rng(0)
    m = InteractionMatrix.from_arrays(rng.integers(0, NU, 150), rng.integers(0, NI, 150),
                                      shape=(NU, NI), dedupe="max")
    return NegativeSampler(m, num_negatives=2, seed=1)


def _fit(model, epochs=1):
    model.fit(_sampler(), epochs=epochs, batch_size=16, verbose=0, seed=2)


def _snapshot(model):
    return {layer.name: [w.copy() for w in layer.weights] for layer in model.layers if layer.weights}


def _changed(model, before):
    return {name for name, ws in before.items()
            if any(not np.array_equal(a, b) for a, b in zip(ws, model.get_layer(name).weights))}


OPTIMIZERS = {
    "adam-sparse": lambda: optimizers.Adam(0.01),
    "adam-dense": lambda: optimizers.Adam(0.01, sparse_updates=False),
    "sgd-dense": lambda: optimizers.SGD(0.1, momentum=0.9, sparse_updates=False),
    "rmsprop-sparse": lambda: optimizers.RMSprop(0.01),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("hogwild", [False, True])
def test_a_frozen_dense_layer_keeps_its_kernel_and_bias(name, hogwild):
    model = NeuMF(NU, NI, factors=4, layers=[8, 4])
    model.get_layer("layer1").trainable = False          # Keras semantics: before compile
    model.compile(optimizer=OPTIMIZERS[name](), loss="binary_crossentropy", hogwild=hogwild)
    before = _snapshot(model)
    _fit(model, epochs=2)
    changed = _changed(model, before)
    assert "layer1" not in changed
    assert changed == set(before) - {"layer1"}            # every other layer trained
    assert [w.shape for w in model.get_layer("layer1").non_trainable_weights] == [(8, 4), (4,)]


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_changing_trainable_after_a_fit_takes_effect_in_the_next_fit(name):
    model = NeuMF(NU, NI, factors=4, layers=[8, 4])
    model.compile(optimizer=OPTIMIZERS[name](), loss="binary_crossentropy")
    _fit(model)
    for nm in ("layer1", "prediction", "gmf_item_embedding"):
        model.get_layer(nm).trainable = False                # no recompile needed
    before = _snapshot(model)
    state = [v.copy() for v in model.optimizer.variables()]
    _fit(model)
    changed = _changed(model, before)
    assert changed == set(before) - {"layer1", "prediction", "gmf_item_embedding"}
    assert model.optimizer.iterations > int(state[0][0])   # the optimizer state carried over
    model.get_layer("layer1").trainable = True              # and back
    before = _snapshot(model)
    _fit(model)
    assert "layer1" in _changed(model, before) and "prediction" not in _changed(model, before)


def test_refreezing_does_not_rebuild_an_unchanged_plan():
    model = NeuMF(NU, NI, factors=4, layers=[8, 4])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    _fit(model)
    plan = model._plan
    model.get_layer("layer1").trainable = True               # unchanged value
    model.predict([np.array([0]), np.array([0])])
    assert model._plan is plan
    model.get_layer("layer1").trainable = False
    model.predict([np.array([0]), np.array([0])])
    assert model._plan is not plan
