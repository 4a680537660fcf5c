"""Serializable classes by name, so that loading a model never imports model or layer modules.

A class registers itself when its module is imported (``@register_serializable()`` above
the class); ``load_model`` turns the ``class_name`` of a saved config back into the class
here. This is Keras's ``keras.saving.register_keras_serializable`` and
``get_registered_object``, in small. neurec's own classes are registered under their
plain class names, which is what model files hold.

Example:
    >>> @register_serializable(package="my_layers")
    ... class Scale(neurec.layers.Layer):
    ...     ...
    >>> get_registered_name(Scale)
    'my_layers>Scale'
    >>> get_registered_object('my_layers>Scale') is Scale
    True
"""
from typing import Any, Callable, Dict, Mapping, Optional, TypeVar

__all__ = ["register_serializable", "get_registered_name", "get_registered_object"]

T = TypeVar("T", bound=type)

_BY_NAME: Dict[str, type] = {}
_NAME_OF: Dict[type, str] = {}


def register_serializable(package: str = "neurec",
                          name: Optional[str] = None) -> Callable[[T], T]:
    """A class decorator registering a class under ``package>name`` for loading.

    Args:
        package: The package the class belongs to; neurec's own classes (``'neurec'``)
            are registered under their bare name.
        name: The name to register (default: the class name).

    Returns:
        The decorator, which returns the class unchanged.

    Raises:
        TypeError: If the decorated object is not a class with ``get_config`` and
            ``from_config``.
        ValueError: If another class already holds the name.
    """
    def decorator(cls: T) -> T:
        if not isinstance(cls, type) or not (hasattr(cls, "get_config")
                                             and hasattr(cls, "from_config")):
            raise TypeError(f"register_serializable: {cls!r} must be a class with get_config "
                            "and from_config")
        key = name or cls.__name__
        if package != "neurec":
            key = f"{package}>{key}"
        old = _BY_NAME.get(key)
        # a module imported again (importlib.reload) re-registers its classes: allowed
        if old is not None and old is not cls and (old.__module__, old.__qualname__) != (
                cls.__module__, cls.__qualname__):
            raise ValueError(f"register_serializable: {key!r} is already registered to "
                             f"{old.__module__}.{old.__qualname__}")
        _BY_NAME[key] = cls
        _NAME_OF[cls] = key
        return cls

    return decorator


def get_registered_name(cls: type) -> str:
    """The name ``cls`` is saved under: its registered name, else its class name."""
    return _NAME_OF.get(cls, cls.__name__)


def get_registered_object(name: str,
                          custom_objects: Optional[Mapping[str, Any]] = None) -> Optional[Any]:
    """The class saved as ``name``: from ``custom_objects`` first, then the registry.

    Args:
        name: A ``class_name`` read from a saved config.
        custom_objects: The caller's ``{name: class}`` (``load_model(custom_objects=)``).

    Returns:
        The class, or None if no class goes by that name.
    """
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    return _BY_NAME.get(name)


def resolve(identifier: Any, kind: str, base: type, names: Mapping[str, type],
            classes: Mapping[str, type],
            build: Callable[[type, Dict[str, Any]], Any] = lambda cls, cfg: cls(**cfg),
            hint: str = "") -> Any:
    """The ``get()`` of initializers, optimizers and losses: one rule for all three.

    An instance of ``base`` is returned as is; a string is a lower-case alias from
    ``names`` or a class name from ``classes`` (built with no arguments); a Keras config
    dict ``{"class_name": ..., "config": {...}}`` is built by ``build(cls, config)``.

    Returns:
        The object, or ``None`` when ``identifier`` is none of these (the caller raises
        its own message, saying what it supports).

    Raises:
        ValueError: For an unknown name or class name (the message lists the known ones).
    """
    if isinstance(identifier, base):
        return identifier
    if isinstance(identifier, str):
        cls = names.get(identifier.lower()) or classes.get(identifier)
        if cls is None:
            raise ValueError(f"Unknown {kind} {identifier!r}; expected one of "
                             f"{sorted(names)}{hint}")
        return cls()
    if isinstance(identifier, dict) and "class_name" in identifier:
        cls = classes.get(identifier["class_name"])
        if cls is None:
            raise ValueError(f"Unknown {kind} class {identifier['class_name']!r}; expected one "
                             f"of {sorted(classes)}")
        return build(cls, identifier.get("config", {}))
    return None
