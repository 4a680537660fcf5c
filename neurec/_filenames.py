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
``*.weights.h5``, ``*.h5``  Keras's weights names: accepted for the weights alone, so Keras
                           code runs unchanged, with a note (a ``UserWarning``) that the
                           file holds neurec's weights format (NumPy arrays in a zip), not
                           HDF5; ``load_weights`` reads it back under the same name. A
                           whole model is never written under them.
=========================  ===========================================================

Every other name raises when writing, naming the file to use. Loading reads what a file
holds, whatever its name; a real HDF5 file (Keras wrote it) is refused by its signature.
This module imports nothing of neurec, so the callbacks can check a name when a
``ModelCheckpoint`` is made.
"""
import os
import warnings

__all__ = ["MODEL_SUFFIXES", "WEIGHTS_SUFFIX", "check_model_path", "check_weights_path",
           "refuse_hdf5", "stem"]

MODEL_SUFFIXES = (".neurec", ".keras")
WEIGHTS_SUFFIX = ".weights.npz"
# Keras's HDF5 names (legacy models, weights, sharded weights' index): neurec reads and
# writes none of them, and says which name to use instead
_KERAS_WEIGHTS_SUFFIXES = (".weights.h5", ".weights.json")
_HDF5_SUFFIXES = (".h5", ".hdf5")
# Keras weights names written in neurec's format, with a note (Keras code runs unchanged)
_MAPPED_WEIGHTS_SUFFIXES = (".weights.h5", ".h5", ".hdf5")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
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
    """``filepath`` as a string if it names a weights file.

    ``.weights.npz`` is neurec's own name. Keras's ``.weights.h5`` (and ``.h5``,
    ``.hdf5``) are accepted too, with a ``UserWarning`` saying that the file holds
    neurec's weights format (NumPy arrays in a zip), not HDF5: Keras code runs
    unchanged, and ``load_weights`` reads the file back under the same name.

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
    if filepath.endswith(_MAPPED_WEIGHTS_SUFFIXES):
        warnings.warn(f"{fn}: {filepath!r} is written in neurec's weights format (NumPy arrays "
                      f"in a zip, as '{base}{WEIGHTS_SUFFIX}' would be), not HDF5: neurec's "
                      "load_weights reads it, h5py and Keras cannot", UserWarning, stacklevel=3)
        return filepath
    if filepath.endswith(_KERAS_WEIGHTS_SUFFIXES):
        raise ValueError(f"{fn}: {filepath!r}: neurec does not write Keras's sharded weights "
                         f"index; use '{base}{WEIGHTS_SUFFIX}'")
    if filepath.endswith(MODEL_SUFFIXES):
        raise ValueError(f"{fn}: {filepath!r} names a whole-model file; the weights alone go "
                         f"to '{base}{WEIGHTS_SUFFIX}'{model_hint}")
    raise ValueError(f"{fn}: the file name must end in '{WEIGHTS_SUFFIX}' (or Keras's "
                     f"'.weights.h5'), got {filepath!r}; e.g. '{base}{WEIGHTS_SUFFIX}'")


def refuse_hdf5(filepath: str, fn: str) -> None:
    """Loading a real HDF5 file (Keras wrote it): a ValueError saying what neurec reads.

    The file's first bytes decide, not its name: neurec writes ``.weights.h5`` names in
    its own format. A missing or unreadable file is left to the caller's open.
    """
    try:
        with open(filepath, "rb") as f:
            head = f.read(len(_HDF5_SIGNATURE))
    except OSError:
        return
    if head == _HDF5_SIGNATURE:
        raise ValueError(f"{fn}: {filepath!r} is an HDF5 file (Keras's format), which neurec "
                         f"cannot read; it reads files written by its save_weights "
                         f"('{WEIGHTS_SUFFIX}' or '.weights.h5' names) and model.save "
                         "('.neurec'/'.keras'); to move weights from Keras, build the model "
                         "in neurec and call set_weights with keras_model.get_weights()")
