"""The registry that turns a saved ``class_name`` back into a class (``neurec._registry``)."""
import pytest

import neurec.layers as L
from neurec import _registry
from neurec._registry import get_registered_name, get_registered_object, register_serializable
from neurec.models import Model, Sequential


def test_every_layer_and_model_class_is_registered_under_its_name():
    layer_classes = [getattr(L, n) for n in L.__all__
                     if isinstance(getattr(L, n), type) and issubclass(getattr(L, n), L.Layer)]
    for cls in layer_classes + [Model, Sequential]:
        assert get_registered_name(cls) == cls.__name__
        assert get_registered_object(cls.__name__) is cls
    assert get_registered_object("KerasTensor") is None  # not serializable


def test_custom_objects_come_first_and_unregistered_classes_keep_their_name():
    class Dense(L.Dense):
        pass

    assert get_registered_object("Dense", {"Dense": Dense}) is Dense
    assert get_registered_object("Dense") is L.Dense
    assert get_registered_name(Dense) == "Dense"
    assert get_registered_object("NoSuchLayer") is None


def test_register_under_a_package(monkeypatch):
    monkeypatch.setattr(_registry, "_BY_NAME", dict(_registry._BY_NAME))
    monkeypatch.setattr(_registry, "_NAME_OF", dict(_registry._NAME_OF))

    @register_serializable(package="mine")
    class Scale(L.Layer):
        pass

    assert get_registered_name(Scale) == "mine>Scale"
    assert get_registered_object("mine>Scale") is Scale
    assert get_registered_object("Scale") is None

    with pytest.raises(ValueError, match="already registered"):
        @register_serializable(package="mine", name="Scale")
        class Other(L.Layer):
            pass

    with pytest.raises(TypeError, match="get_config"):
        register_serializable()(lambda: None)
