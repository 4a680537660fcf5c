"""File names of models and weights: one rule for ``model.save``, ``save_weights``,
``load_model``, ``load_weights`` and ``ModelCheckpoint``.

=========================  ===========================================================
name                       meaning
=========================  ===========================================================
``*.neurec``, ``*.keras``  a whole model (one zip of JSON and ``.npy`` arrays, the same
                           format under both names): ``model.save``, ``load_model``,
                           ``ModelCheckpoint``; ``load_weights`` reads its weights
``*.weights.npz``          the weights alone: ``save_weights``, ``load_weights``,
                           ``ModelCheckpoint(save_weights_only=True)``
``*.weights.h5``, ``*.h5``  Keras's HDF5 formats, which neurec neither writes nor reads:
                           every function raises, naming the neurec file to use
=========================  ===========================================================

Every other name raises when writing, naming the file to use. This module imports nothing
of neurec, so the callbacks can check a name when a ``ModelCheckpoint`` is made.
"""
import os

__all__ = ["MODEL_SUFFIXES", "WEIGHTS_SUFFIX", "check_model_path", "check_weights_path",
           "refuse_hdf5", "stem"]

MODEL_SUFFIXES = (".neurec", ".keras")
WEIGHTS_SUFFIX = ".weights.npz"
# Keras's HDF5 names (legacy models, weights, sharded weights' index): neurec reads and
# writes none of them, and says which name to use instead
_KERAS_WEIGHTS_SUFFIXES = (".weights.h5", ".weights.json")
_HDF5_SUFFIXES = (".h5", ".hdf5")
_SUFFIXES = (WEIGHTS_SUFFIX,) + _KERAS_WEIGHTS_SUFFIXES + MODEL_SUFFIXES + _HDF5_SUFFIXES + (".npz",)


def stem(filepath: str) -> str:
    """``filepath`` without the suffix of a model or weights file, to suggest a name."""
    for suffix in _SUFFIXES:
        if filepath.endswith(suffix):
            return filepath[:-len(suffix)]
    root, ext = os.path.splitext(filepath)
    return root if ext and "{" not in ext and "}" not in ext else filepath


def check_model_path(filepath, fn: str = "model.save", weights_hint: str = "") -> str:
    """``filepath`` as a string if it names a whole-model file (``.neurec`` or ``.keras``).

    Args:
        filepath: A path (str or os.PathLike).
        fn: The caller, for the message.
        weights_hint: Said after a weights file name, e.g. how to save weights instead.

    Raises:
        ValueError: Naming ``filepath`` and the name to use instead.
    """
    filepath = os.fspath(filepath)
    if filepath.endswith(MODEL_SUFFIXES):
        return filepath
    base = stem(filepath)
    if filepath.endswith((WEIGHTS_SUFFIX,) + _KERAS_WEIGHTS_SUFFIXES):
        raise ValueError(f"{fn}: {filepath!r} names a weights file; a whole model is saved to "
                         f"'{base}.neurec' (or '{base}.keras'){weights_hint}")
    if filepath.endswith(_HDF5_SUFFIXES):
        raise ValueError(f"{fn}: {filepath!r}: neurec does not write Keras's legacy HDF5 format; "
                         f"use '{base}.neurec' or '{base}.keras' (a zip of JSON and .npy arrays)")
    raise ValueError(f"{fn}: the file name must end in '.neurec' or '.keras', got {filepath!r}; "
                     f"e.g. '{base}.neurec'")


def check_weights_path(filepath, fn: str = "save_weights", model_hint: str = "") -> str:
    """``filepath`` as a string if it names a weights file (``.weights.npz``).

    Keras's ``.weights.h5`` (HDF5) maps to neurec's ``.weights.npz`` (NumPy arrays in a
    zip): the error names the ``.weights.npz`` file to use.

    Args:
        filepath: A path (str or os.PathLike).
        fn: The caller, for the message.
        model_hint: Said after a model file name, e.g. how to save the model instead.

    Raises:
        ValueError: Naming ``filepath`` and the name to use instead.
    """
    filepath = os.fspath(filepath)
    if filepath.endswith(WEIGHTS_SUFFIX):
        return filepath
    base = stem(filepath)
    if filepath.endswith(_KERAS_WEIGHTS_SUFFIXES + _HDF5_SUFFIXES):
        raise ValueError(f"{fn}: {filepath!r}: neurec stores weights in NumPy's .npz format, "
                         f"not Keras's HDF5 '.weights.h5'; use '{base}{WEIGHTS_SUFFIX}'")
    if filepath.endswith(MODEL_SUFFIXES):
        raise ValueError(f"{fn}: {filepath!r} names a whole-model file; the weights alone go "
                         f"to '{base}{WEIGHTS_SUFFIX}'{model_hint}")
    raise ValueError(f"{fn}: the file name must end in '{WEIGHTS_SUFFIX}', got {filepath!r}; "
                     f"e.g. '{base}{WEIGHTS_SUFFIX}'")


def refuse_hdf5(filepath: str, fn: str) -> None:
    """Loading a Keras HDF5 file: a ValueError saying what neurec reads instead."""
    if filepath.endswith(_KERAS_WEIGHTS_SUFFIXES + _HDF5_SUFFIXES):
        raise ValueError(f"{fn}: {filepath!r}: neurec cannot read Keras's HDF5 files; it reads "
                         f"'{WEIGHTS_SUFFIX}' files from save_weights and '.neurec'/'.keras' "
                         "files from model.save (to move weights from Keras, build the model in "
                         "neurec and call set_weights with keras_model.get_weights())")
