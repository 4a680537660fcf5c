"""Saving and loading models: one zip file of JSON and ``.npy`` arrays, no pickle.

Layout of a ``.neurec`` file::

    config.json            {"format": 1, "neurec_version", "model": {...}, "compile": {...},
                            "retired_items": [...] (only when the model has retired items)}
    weights/00000.npy ...  every weight array, in model.weights order
    optimizer/00000.npy .. optimizer state (iterations first), if compiled
    encoders/user.npy      the user encoder's ids in code order, if attached (int64,
    encoders/item.npy      uint64, float64, bool or fixed-width unicode; config.json's
                           "encoders" entry gives its dtype, size and unknown policy)
    seen/indptr.npy        the seen-matrix in CSR (int64 row pointers, int32 item ids),
    seen/indices.npy       if attached; config.json's "seen" entry gives its shape
    index/*.npy            the structure of model.item_index (build_index), if built;
                           config.json's "index" entry gives its kind and settings

Files without the encoders and seen members (written before they existed, or by a model
without them) load as before.

Files are written to a temporary file in the same directory and renamed, so a
crash never leaves a half-written model. Loading checks every name, shape and
dtype and raises ``ValueError`` on a corrupted file.

This module reads and writes files only. It never imports the model modules: it goes
through the models' public methods (``get_config``/``from_config``,
``get_compile_config``/``compile_from_config``, ``weights``) and the optimizer's
(``save_own_variables``/``load_own_variables``), and finds the model class by name in the
registry (``neurec._registry``), as Keras's ``saving_lib`` does.
"""
import io
import json
import os
import re
import warnings
import zipfile
from typing import Dict, List, Optional

import numpy as np

from neurec import distribution
from neurec._atomic import atomic_write
from neurec._filenames import (
    MODEL_SUFFIXES,
    WEIGHTS_SUFFIX,
    check_model_path,
    check_weights_path,
    refuse_hdf5,
    stem,
)
from neurec._registry import get_registered_object
from neurec._version import __version__
from neurec.data.encoders import IdEncoder
from neurec.data.interactions import InteractionMatrix
from neurec.layers.base import expect_weight_shapes

FORMAT = 1
def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def _all_finite(a: np.ndarray) -> bool:
    """No NaN or inf in a float array, without an array-sized temporary (NaN carries
    through min and max)."""
    if a.size == 0 or a.dtype.kind != "f":
        return True
    with np.errstate(invalid="ignore"):
        return bool(np.isfinite(a.min()) and np.isfinite(a.max()))


def _check_finite_state(model, opt_vars: List[np.ndarray], fn: str = "model.save") -> None:
    """Refuse to save NaN/inf weights: such a file could never be loaded back."""
    for layer in model.layers:
        for k, w in enumerate(layer.weights):
            if not _all_finite(w):
                raise ValueError(
                    f"{fn}: weight {k} {w.shape} of layer {layer.name!r} holds NaN or inf "
                    f"({int(np.size(w) - np.isfinite(w).sum())} values): training diverged. Nothing "
                    "was written. Lower the learning rate, add TerminateOnNaN, or save from a "
                    "checkpoint taken before the divergence (ModelCheckpoint(save_best_only=True))")
    for i, v in enumerate(opt_vars):
        if not _all_finite(v):
            raise ValueError(f"model.save: optimizer state array {i} holds NaN or inf (training "
                             "diverged). Nothing was written; recompile to reset the optimizer or "
                             "save from an earlier checkpoint")


def save_model(model, filepath, overwrite: bool = True, include_optimizer: bool = True,
               save_format=None, zipped=None) -> None:
    """Save graph, weights, compile settings and optimizer state to one file (``model.save``).

    The file is a zip of ``config.json`` and ``.npy`` arrays (no pickle), written to a
    temporary file and renamed, so a crash never leaves a half-written model.

    Args:
        model: The model.
        filepath: Path ending in ``.neurec`` or ``.keras`` (the same format).
        overwrite: Replace an existing file (else ``FileExistsError``).
        include_optimizer: Also save the optimizer's state (Keras's legacy HDF5
            argument, honoured here); the compile settings are saved either way.
        save_format: Deprecated in Keras 3: ``'keras'``/``'neurec'`` warn that the name
            decides the format; other values raise.
        zipped: ``None``/``True``; ``False`` (Keras's unzipped directory) raises.

    Raises:
        ValueError: If ``filepath`` does not end in ``.neurec`` or ``.keras`` (the message
            names the file name to use), or for the weights of a diverged model.
        FileExistsError: If it exists and ``overwrite`` is False.

    Example:
        >>> model.save("ncf.neurec")
        >>> model.save("ncf.keras", include_optimizer=False)  # smaller, to serve
    """
    filepath = check_model_path(filepath, "model.save", "; save_weights saves the weights "
                                "alone to a '.weights.npz' file")
    if save_format is not None and save_format is not False:
        if str(save_format).lower() not in ("keras", "neurec"):
            raise ValueError(f"model.save: save_format={save_format!r} is not supported; "
                             "remove it: the file name ('.neurec' or '.keras') sets the format")
        warnings.warn("model.save: save_format is deprecated (as in Keras 3) and has no effect: "
                      "the file name sets the format; remove it", UserWarning, stacklevel=3)
    if zipped is not None and not zipped:
        raise ValueError("model.save: zipped=False is not supported; neurec writes one zip file")
    if getattr(model, "_shards", None) is not None:  # ModelParallel: gather on rank 0
        with model._shards.on_main() as writes:
            if writes:
                save_model(model, filepath, overwrite, include_optimizer)
        return
    if distribution._skips_writes():  # under DataParallel rank 0 writes the one file
        return
    cfg = {"format": FORMAT, "neurec_version": __version__, "model": model.get_config(),
           "compile": model.get_compile_config()}
    opt_vars: List[np.ndarray] = []
    if cfg["compile"] is not None:
        if model.optimizer.built and include_optimizer:  # else created (zeros) on first use
            store: Dict[str, np.ndarray] = {}
            model.optimizer.save_own_variables(store)
            opt_vars = [store[str(i)] for i in range(len(store))]
        cfg["optimizer_variables"] = len(opt_vars)
    retired = model.retired_items
    if retired.size:
        cfg["retired_items"] = retired.tolist()
    weights = model.weights
    _check_finite_state(model, opt_vars)
    extra = _lifecycle_members(model, cfg)
    if getattr(model, "item_index", None) is not None:
        cfg["index"], arrays = model.item_index.to_arrays()
        extra += [(f"index/{name}.npy", a) for name, a in arrays.items()]
    config_bytes = json.dumps(cfg, indent=1).encode("utf-8")
    if len(config_bytes) > MAX_CONFIG_BYTES:
        raise ValueError(f"model.save: the model's config is {len(config_bytes)} bytes, above the "
                         f"{MAX_CONFIG_BYTES}-byte limit load_model enforces; use fewer layers")

    def write_zip(f):
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as z:
            z.writestr("config.json", config_bytes)
            for i, w in enumerate(weights):
                z.writestr(f"weights/{i:05d}.npy", _npy_bytes(w))
            for i, v in enumerate(opt_vars):
                z.writestr(f"optimizer/{i:05d}.npy", _npy_bytes(v))
            for name, a in extra:
                z.writestr(name, _npy_bytes(a))

    atomic_write(filepath, write_zip, overwrite=overwrite)


# -- loading untrusted files ---------------------------------------------------------
# A model file is untrusted input. Loading never runs code (no pickle, no eval): it reads
# JSON and raw .npy arrays, accepts only the members `save` writes (stored, uncompressed,
# each once, with sizes that match their headers) and checks every shape against the
# config before anything is allocated.
MAX_CONFIG_BYTES = 16 * 2**20
MAX_ARRAYS = 100_000
_MEMBER = re.compile(r"(config\.json|(weights|optimizer)/[0-9]{5}\.npy"
                     r"|encoders/(user|item)\.npy|seen/(indptr|indices)\.npy"
                     r"|index/(levels|offsets|neighbors|centroids)\.npy)\Z")
_WEIGHTS_MEMBER = re.compile(r"w[0-9]{5}\.npy\Z")  # save_weights (np.savez) files
_NPY_DTYPES = {np.dtype("<f4"), np.dtype("<f8"), np.dtype("<i8"), np.dtype("<i4")}


class _NpyHeader:
    __slots__ = ("name", "shape", "dtype", "fortran", "offset")

    def __init__(self, name, shape, dtype, fortran, offset):
        self.name, self.shape, self.dtype, self.fortran, self.offset = name, shape, dtype, fortran, offset


def _corrupt(filepath, what: str) -> ValueError:
    return ValueError(f"{filepath} is not a valid neurec model file: {what}. Loading refuses "
                      "corrupted or crafted files; re-save the model with model.save")


def _npy_header(z: zipfile.ZipFile, name: str, filepath, text: bool = False) -> _NpyHeader:
    """Shape and dtype of a stored .npy member, from its header alone (no allocation);
    ``text`` also admits the dtypes of encoder ids (unsigned, bool, unicode)."""
    info = z.getinfo(name)
    try:
        with z.open(info) as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy's literal_eval of a mangled header warns
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            offset = f.tell()
    except Exception as e:  # numpy raises ValueError/SyntaxError/... on a bad header
        raise _corrupt(filepath, f"{name} is not a valid .npy array ({type(e).__name__}: {e})") \
            from None
    if dtype not in _NPY_DTYPES and not (text and _id_dtype(dtype)):
        raise _corrupt(filepath, f"{name} has dtype {dtype}; neurec files hold float32 weights "
                                 "and int64 step counts only")
    count = 1
    for d in shape:
        count *= int(d)
    if info.file_size != offset + count * dtype.itemsize:
        raise _corrupt(filepath, f"{name} declares shape {shape} ({count * dtype.itemsize} bytes) "
                                 f"but holds {info.file_size - offset} bytes of data")
    return _NpyHeader(name, tuple(int(d) for d in shape), dtype, bool(fortran), offset)


def _read_npy(z: zipfile.ZipFile, name: str, filepath="model file",
              text: bool = False) -> np.ndarray:
    try:
        z.getinfo(name)
    except KeyError:
        raise _corrupt(filepath, f"{name} is missing") from None
    h = _npy_header(z, name, filepath, text)
    data = z.read(name)  # size checked against the header: at most the file's size
    a = np.frombuffer(data, dtype=h.dtype, offset=h.offset)
    return a.reshape(h.shape, order="F" if h.fortran else "C")


def _check_members(z: zipfile.ZipFile, filepath, weights_only: bool = False) -> None:
    file_size = os.path.getsize(filepath)
    infos = z.infolist()
    if len(infos) > 2 * MAX_ARRAYS + 1:
        raise _corrupt(filepath, f"it has {len(infos)} members")
    seen = set()
    for info in infos:
        name = info.filename
        shown = name if len(name) <= 80 else name[:80] + "..."
        if not (_WEIGHTS_MEMBER if weights_only else _MEMBER).match(name):
            _explain_foreign(filepath, [i.filename for i in infos], weights_only)
            raise _corrupt(filepath, f"unexpected member {shown!r} (a neurec file holds only "
                                     + ("wNNNNN.npy arrays" if weights_only else
                                        "config.json, weights/NNNNN.npy, optimizer/NNNNN.npy, "
                                        "encoders/*.npy and seen/*.npy")
                                     + ")")
        if name in seen:
            raise _corrupt(filepath, f"member {name!r} appears more than once")
        seen.add(name)
        if info.compress_type != zipfile.ZIP_STORED:
            raise _corrupt(filepath, f"member {name!r} is compressed (method {info.compress_type}); "
                                     "model.save writes stored members only")
        if info.flag_bits & 0x1:
            raise _corrupt(filepath, f"member {name!r} is encrypted")
        if info.file_size != info.compress_size or info.file_size > file_size:
            raise _corrupt(filepath, f"member {name!r} declares {info.file_size} bytes in a "
                                     f"{file_size}-byte file")
    if weights_only:
        return
    if "config.json" not in seen:
        raise ValueError(f"{filepath} is not a neurec model file (no config.json)")
    if z.getinfo("config.json").file_size > MAX_CONFIG_BYTES:
        raise _corrupt(filepath, f"config.json is larger than {MAX_CONFIG_BYTES} bytes")


def _explain_foreign(filepath, names: List[str], weights_only: bool) -> None:
    """A clear ValueError for a valid file of the other kind: a weights file passed to
    load_model, a model file read as weights, a ``.keras`` file Keras wrote."""
    if "model.weights.h5" in names or "metadata.json" in names:
        raise ValueError(f"{filepath} was written by Keras, not neurec: neurec cannot read "
                         "Keras's HDF5 weights; build the model in neurec and copy the weights "
                         "with set_weights(keras_model.get_weights())")
    if not weights_only and names and all(_WEIGHTS_MEMBER.match(n) for n in names):
        raise ValueError(f"{filepath} holds weights alone (a save_weights file), not a model: "
                         f"name it '{stem(os.fspath(filepath))}{WEIGHTS_SUFFIX}', build the "
                         "model with the code that made it and call model.load_weights on it")
    if weights_only and "config.json" in names:
        raise ValueError(f"load_weights: {filepath} is a model file; name it '.neurec' or "
                         "'.keras' to load its weights, or use load_model")


def _open_zip(filepath, weights_only: bool = False) -> zipfile.ZipFile:
    filepath = os.fspath(filepath)
    if not os.path.exists(filepath):
        raise FileNotFoundError(f"No such file: {filepath}")
    try:
        z = zipfile.ZipFile(filepath)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
            NotImplementedError) as e:
        raise ValueError(f"{filepath} is not a valid neurec file (corrupted or truncated zip: {e})") \
            from None
    try:
        _check_members(z, filepath, weights_only)
        bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as e:
        z.close()
        raise ValueError(f"{filepath} is not a valid neurec file (corrupted zip: {e})") from None
    except BaseException:
        z.close()
        raise
    if bad is not None:
        z.close()
        raise ValueError(f"{filepath} is corrupted: member {bad} fails its CRC check")
    return z


def _assign(targets: List[np.ndarray], arrays: List[np.ndarray], what: str,
            names: Optional[List[str]] = None) -> None:
    if len(targets) != len(arrays):
        raise ValueError(f"{what}: expected {len(targets)} arrays, the file has {len(arrays)}")
    for i, (t, a) in enumerate(zip(targets, arrays)):
        label = names[i] if names else f"array {i}"
        if a.shape != t.shape:
            raise ValueError(f"{what}: {label} has shape {a.shape}, the model expects {t.shape}")
        if a.dtype.kind not in "fi" or (t.dtype.kind == "i" and a.dtype.kind != "i"):
            raise ValueError(f"{what}: {label} has dtype {a.dtype}, expected {t.dtype}")
    # cast first (a float64 of 1e39 becomes inf in float32), check, and only then assign:
    # a bad array leaves the model untouched
    cast = []
    for i, (t, a) in enumerate(zip(targets, arrays)):
        with np.errstate(over="ignore"):
            c = a.astype(t.dtype, copy=False)
        if not _all_finite(c):
            label = names[i] if names else f"array {i}"
            raise ValueError(f"{what}: {label} holds NaN or inf values, or values beyond "
                             f"{t.dtype}'s range (a diverged or corrupted model); neurec refuses "
                             "to load non-finite weights")
        cast.append(c)
    for t, c in zip(targets, cast):
        np.copyto(t, c)


def _load_json(z: zipfile.ZipFile, filepath) -> dict:
    try:
        cfg = json.loads(z.read("config.json").decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{filepath}: config.json is corrupted ({e})") from None
    except RecursionError:
        raise ValueError(f"{filepath}: config.json is nested too deeply to be a neurec config "
                         "(corrupted or crafted file)") from None
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT or not isinstance(cfg.get("model"), dict):
        raise ValueError(f"{filepath}: unsupported or missing format version in config.json")
    return cfg


def _stored(z: zipfile.ZipFile, folder: str, filepath) -> List[str]:
    """Names of folder/00000.npy ... in order; they must be numbered 0..n-1."""
    names = sorted(n for n in z.namelist() if n.startswith(folder + "/"))
    for i, n in enumerate(names):
        if n != f"{folder}/{i:05d}.npy":
            raise _corrupt(filepath, f"{folder}/ arrays must be numbered from 00000 without gaps; "
                                     f"found {n!r} at position {i}")
    return names


def _restore_optimizer(z, cfg, model, filepath) -> None:
    n_vars = cfg.get("optimizer_variables", 0)
    names = _stored(z, "optimizer", filepath)
    if isinstance(n_vars, bool) or not isinstance(n_vars, int) or n_vars != len(names):
        raise _corrupt(filepath, f"optimizer_variables={n_vars!r} but the file holds "
                                 f"{len(names)} optimizer arrays")
    if not n_vars:
        return
    model.build_optimizer()
    targets = model.optimizer.variables()
    headers = [_npy_header(z, n, filepath) for n in names]
    if len(headers) != len(targets) or any(h.shape != t.shape for h, t in zip(headers, targets)):
        raise ValueError(f"{filepath}: optimizer state does not match the model (expected "
                         f"{len(targets)} arrays of shapes {[t.shape for t in targets][:6]}...)")
    # optimizer/0000k.npy holds variable k (variable 0: the step count)
    store = {str(k): _read_npy(z, n, filepath) for k, n in enumerate(names)}
    try:
        model.optimizer.load_own_variables(store)
    except ValueError as e:
        raise _corrupt(filepath, f"optimizer state: {e}") from None


# -- encoders and seen-matrix (Model.attach_encoders / attach_seen_matrix) --------------
_ID_TAGS = {"int64": "<i8", "uint64": "<u8", "float64": "<f8", "bool": "|b1"}
_TIME_TAG = re.compile(r"(datetime64|timedelta64)\[(Y|M|W|D|h|m|s|ms|us|ns)\]\Z")


def _id_dtype(dtype: np.dtype) -> bool:
    """The extra dtypes an encoder member may have: uint64, bool, little-endian unicode."""
    return dtype.str in ("<u8", "|b1") or (dtype.str.startswith("<U") and dtype.itemsize > 0)


def _lifecycle_members(model, cfg: dict) -> List[tuple]:
    """``(member name, array)`` of the model's encoders and seen-matrix; their entries are
    added to ``cfg``."""
    out = []
    encoders = {}
    for role in ("user", "item"):
        enc = getattr(model, f"{role}_encoder", None)
        if enc is None:
            continue
        classes = enc.classes_
        kind = classes.dtype.kind
        if kind == "U":
            tag, a = "str", classes.astype(f"<U{max(1, classes.dtype.itemsize // 4)}")
        elif kind in "Mm":
            tag, a = str(classes.dtype), classes.view(np.int64).astype("<i8")
        elif kind in "iufb":
            tag = {"i": "int64", "u": "uint64", "f": "float64", "b": "bool"}[kind]
            a = classes.astype(_ID_TAGS[tag])
        else:
            raise ValueError(f"model.save: the {role} encoder holds ids of mixed types (an object "
                             "array), which a model file cannot store without pickle; encode one "
                             "id type, e.g. log.users.astype(str)")
        encoders[role] = {"unknown": enc.unknown, "dtype": tag, "size": int(a.size)}
        out.append((f"encoders/{role}.npy", a))
    if encoders:
        cfg["encoders"] = encoders
    seen = getattr(model, "seen_matrix", None)
    if seen is not None:
        cfg["seen"] = {"shape": [int(seen.shape[0]), int(seen.shape[1])], "nnz": seen.nnz}
        out.append(("seen/indptr.npy", seen.indptr.astype("<i8")))
        out.append(("seen/indices.npy", seen.indices.astype("<i4")))
    return out


def _count(value, what: str, filepath) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _corrupt(filepath, f"{what} is {value!r}, not a count")
    return value


def _read_encoder(z, role: str, spec, filepath):
    from_cfg = f'config.json\'s encoders entry "{role}"'
    if not isinstance(spec, dict) or set(spec) != {"unknown", "dtype", "size"}:
        raise _corrupt(filepath, f"{from_cfg} must hold exactly unknown, dtype and size")
    tag, size = spec["dtype"], _count(spec["size"], f"{from_cfg} size", filepath)
    if spec["unknown"] not in ("error", "ignore"):
        raise _corrupt(filepath, f"{from_cfg} has unknown={spec['unknown']!r}")
    name = f"encoders/{role}.npy"
    a = _read_npy(z, name, filepath, text=True)
    want = "<U" if tag == "str" else _ID_TAGS.get(tag) or ("<i8" if isinstance(tag, str) and
                                                           _TIME_TAG.match(tag) else None)
    if want is None or not a.dtype.str.startswith(want):
        raise _corrupt(filepath, f"{name} holds {a.dtype} but {from_cfg} says dtype {tag!r}")
    if a.ndim != 1 or a.size != size:
        raise _corrupt(filepath, f"{name} has shape {a.shape}, expected ({size},)")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise _corrupt(filepath, f"{name} holds NaN or inf ids")
    if a.dtype.kind == "U" and a.size and a.view(np.uint32).max() > 0x10FFFF:
        raise _corrupt(filepath, f"{name} holds characters beyond Unicode")
    try:
        return IdEncoder.from_config({"unknown": spec["unknown"], "dtype": tag, "classes": a})
    except (ValueError, TypeError) as e:
        raise _corrupt(filepath, f"{name}: {e}") from None


def _restore_lifecycle(z, cfg: dict, model, filepath) -> None:
    """Attach the encoders and seen-matrix a file holds, each checked against the model."""
    present = {n for n in z.namelist() if n.startswith(("encoders/", "seen/"))}
    encoders = cfg.get("encoders", {})
    seen = cfg.get("seen")
    if not isinstance(encoders, dict) or not set(encoders) <= {"user", "item"}:
        raise _corrupt(filepath, "config.json's encoders entry must map 'user'/'item' to specs")
    expected = {f"encoders/{role}.npy" for role in encoders}
    if seen is not None:
        expected |= {"seen/indptr.npy", "seen/indices.npy"}
    if present != expected:
        raise _corrupt(filepath, f"its encoder and seen-matrix members {sorted(present)} do not "
                                 f"match config.json (expected {sorted(expected)})")
    found = {role: _read_encoder(z, role, spec, filepath) for role, spec in encoders.items()}
    matrix = None
    if seen is not None:
        if not isinstance(seen, dict) or set(seen) != {"shape", "nnz"} or \
                not isinstance(seen["shape"], list) or len(seen["shape"]) != 2:
            raise _corrupt(filepath, "config.json's seen entry must hold shape [rows, cols] and nnz")
        rows, cols = (_count(v, "the seen-matrix's shape", filepath) for v in seen["shape"])
        nnz = _count(seen["nnz"], "the seen-matrix's nnz", filepath)
        indptr = _read_npy(z, "seen/indptr.npy", filepath)
        indices = _read_npy(z, "seen/indices.npy", filepath)
        if indptr.dtype != np.int64 or indptr.shape != (rows + 1,) or \
                indices.dtype.kind != "i" or indices.shape != (nnz,):
            raise _corrupt(filepath, f"the seen-matrix arrays ({indptr.dtype} {indptr.shape}, "
                                     f"{indices.dtype} {indices.shape}) do not fit shape "
                                     f"{[rows, cols]} and nnz {nnz}")
        try:
            matrix = InteractionMatrix(indptr, indices, np.ones(nnz, np.float32), (rows, cols))
        except (ValueError, TypeError) as e:
            raise _corrupt(filepath, f"the seen-matrix: {e}") from None
    try:
        model.attach_encoders(user=found.get("user"), item=found.get("item"))
        if matrix is not None:
            model.attach_seen_matrix(matrix)
    except ValueError as e:
        raise _corrupt(filepath, str(e)) from None


def _restore_retired(cfg, model, filepath) -> None:
    retired = cfg.get("retired_items", [])
    if not isinstance(retired, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i <= 2**62 for i in retired):
        raise _corrupt(filepath, "retired_items must be a list of item ids in [0, 2**62]")
    if retired:
        model.retire_items(np.array(retired, np.int64))


def load_model(filepath, custom_objects: Optional[dict] = None, compile: bool = True,
               safe_mode: bool = True):
    """Load a model saved with ``model.save``.

    The file is untrusted input: loading never runs code (no pickle), accepts only the
    stored (uncompressed) members ``model.save`` writes, each once, and checks every
    array's shape against the config before allocating anything, so a crafted file
    fails with ``ValueError`` instead of crashing or exhausting memory (see the README's
    "Security and robustness").

    Args:
        filepath: Path of a ``.neurec`` or ``.keras`` file written by neurec.
        custom_objects: Mapping of custom layer class names to classes.
        compile: Restore the compile settings and optimizer state.
        safe_mode: Always safe in neurec (nothing in a file is ever run): ``False``
            changes nothing and warns.

    Returns:
        The model, with weights (and optimizer state) restored.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the file is corrupted, crafted or inconsistent (the message names
            the member and what is wrong with it), a weights file (use
            ``model.load_weights``) or a Keras file (HDF5, or a ``.keras`` Keras wrote).

    Example:
        >>> model = neurec.models.load_model("ncf.neurec")
    """
    filepath = os.fspath(filepath)
    refuse_hdf5(filepath, "load_model")
    if filepath.endswith(WEIGHTS_SUFFIX):
        raise ValueError(f"load_model: {filepath!r} holds weights alone (from save_weights); "
                         f"build the model with the code that made it, then call "
                         f"model.load_weights({filepath!r})")
    if not isinstance(safe_mode, (bool, np.bool_)):
        raise TypeError(f"load_model: safe_mode must be True or False, got {safe_mode!r}")
    if not safe_mode:
        warnings.warn("load_model: safe_mode=False has no effect in neurec: loading never runs "
                      "code from a file (no pickle, no lambda layers), so there is nothing "
                      "unsafe to allow", UserWarning, stacklevel=2)
    with _open_zip(filepath) as z:
        cfg = _load_json(z, filepath)
        names = _stored(z, "weights", filepath)
        headers = [_npy_header(z, n, filepath) for n in names]
        with expect_weight_shapes([h.shape for h in headers], os.fspath(filepath)):
            try:
                # Model.from_config builds the class the config names (Model, Sequential)
                model = get_registered_object("Model").from_config(cfg["model"], custom_objects)
            except RecursionError:
                raise ValueError(f"{filepath}: the model graph in config.json is nested too "
                                 "deeply") from None
            except (AttributeError, OverflowError) as e:
                raise ValueError(f"{filepath}: invalid model config ({e!r})") from None
        if len(names) != len(model.weights):
            raise ValueError(f"{filepath}: has {len(names)} weight arrays, the model expects "
                             f"{len(model.weights)}")
        weights = [_read_npy(z, n, filepath) for n in names]
        _assign(model.weights, weights, f"{filepath} weights", names)
        _restore_retired(cfg, model, filepath)
        comp = cfg.get("compile")
        if compile and comp:
            try:
                model.compile_from_config(comp)
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise ValueError(f"{filepath}: invalid compile settings ({e!r})") from None
            _restore_optimizer(z, cfg, model, filepath)
        _restore_lifecycle(z, cfg, model, filepath)
        _restore_index(z, cfg, model, filepath)
    return model


def _restore_index(z, cfg: dict, model, filepath) -> None:
    names = [n for n in z.namelist() if n.startswith("index/")]
    if "index" not in cfg and not names:
        return
    if not isinstance(cfg.get("index"), dict):
        raise _corrupt(filepath, "it has index members without an index entry in config.json")
    try:
        model.restore_item_index(cfg["index"], {n[6:-4]: _read_npy(z, n, filepath) for n in names})
    except ImportError as e:  # the model is usable without it
        warnings.warn(f"load_model: the saved index is skipped: {e}", UserWarning, stacklevel=3)
    except ValueError as e:
        raise _corrupt(filepath, str(e)) from None


def save_weights(model, filepath, overwrite: bool = True) -> None:
    """Save the weights alone to a ``.weights.npz`` file, atomically (``model.save_weights``).

    Raises:
        ValueError: If ``filepath`` does not end in ``.weights.npz`` or Keras's
            ``.weights.h5`` (written in neurec's format, with a note), or for the
            weights of a diverged model.
        FileExistsError: If it exists and ``overwrite`` is False.
    """
    filepath = check_weights_path(filepath, "save_weights", "; model.save(" + repr(
        stem(os.fspath(filepath)) + ".neurec") + ") saves the whole model")
    if getattr(model, "_shards", None) is not None:  # ModelParallel: gather on rank 0
        with model._shards.on_main() as writes:
            if writes:
                save_weights(model, filepath, overwrite)
        return
    if distribution._skips_writes():
        return
    arrays = {f"w{i:05d}": w for i, w in enumerate(model.weights)}
    _check_finite_state(model, [], "save_weights")

    def write_npz(f):
        np.savez(f, **arrays)

    atomic_write(filepath, write_npz, overwrite=overwrite)


def _matching_weights(z, names: List[str], model, filepath, skip_mismatch: bool) -> List[tuple]:
    """``(model weight, member name)`` pairs to load, checked on the members' headers before
    any array is read. Members are the model's weights in order (files hold no names); with
    ``skip_mismatch`` a layer whose stored shapes differ is skipped with a warning (Keras)."""
    headers = [_npy_header(z, n, filepath) for n in names]
    if len(names) != len(model.weights):
        raise ValueError(
            f"{filepath}: holds {len(names)} weight arrays, the model has {len(model.weights)}; "
            "shapes cannot be matched" + (" (neurec weight files hold the arrays in layer "
                                          "order without names, so skip_mismatch=True needs "
                                          "as many arrays as the model)" if skip_mismatch else ""))
    pairs, pos = [], 0
    for k, layer in enumerate(model.layers):
        ws = layer.weights
        got = [h.shape for h in headers[pos:pos + len(ws)]]
        want = [w.shape for w in ws]
        if got != want:
            what = (f"layer #{k} ({layer.name!r}) expects weights of shapes {want}, {filepath} "
                    f"holds shapes {got}")
            if not skip_mismatch:
                raise ValueError(f"{what}: the file's weight shapes do not match the model's "
                                 "(load_weights(..., skip_mismatch=True) skips such layers)")
            warnings.warn(f"load_weights: skipping {what} (skip_mismatch=True)", UserWarning,
                          stacklevel=4)
        else:
            pairs.extend(zip(ws, names[pos:pos + len(ws)]))
        pos += len(ws)
    return pairs


def _holds_config(filepath: str) -> bool:
    """Whether a file of any name is a model zip (else it is read as a weights file)."""
    try:
        with zipfile.ZipFile(filepath) as z:
            return "config.json" in z.namelist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
            NotImplementedError):
        return False  # _open_zip reports it


def load_weights(model, filepath, skip_mismatch: bool = False) -> None:
    """Load weights into ``model`` in place (``model.load_weights``).

    Args:
        model: The model, built as the one that saved the weights.
        filepath: A ``.weights.npz`` file from ``save_weights``, or a ``.neurec``/``.keras``
            model file (its weights only). Another name is read as what it holds.
        skip_mismatch: Skip, with a warning, the layers whose stored weights have other
            shapes (as Keras); the file must still hold as many arrays as the model.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the file is corrupted, a Keras HDF5 file, or its shapes do not
            match (without ``skip_mismatch``); the model is then left unchanged.

    Example:
        >>> model.save_weights("ncf.weights.npz")
        >>> twin = build_model(); twin.load_weights("ncf.weights.npz")
    """
    filepath = os.fspath(filepath)
    if not isinstance(skip_mismatch, (bool, np.bool_)):
        raise TypeError(f"load_weights: skip_mismatch must be True or False, got {skip_mismatch!r}")
    refuse_hdf5(filepath, "load_weights")
    as_model = filepath.endswith(MODEL_SUFFIXES) or (
        not filepath.endswith(WEIGHTS_SUFFIX) and _holds_config(filepath))
    with _open_zip(filepath, weights_only=not as_model) as z:
        if as_model:
            names = _stored(z, "weights", filepath)
        else:
            names = sorted(z.namelist())
            if names != [f"w{i:05d}.npy" for i in range(len(names))]:
                raise _corrupt(filepath, "weight arrays must be numbered w00000.npy, w00001.npy, ...")
        pairs = _matching_weights(z, names, model, filepath, bool(skip_mismatch))
        arrays = [_read_npy(z, n, filepath) for _, n in pairs]
    _assign([w for w, _ in pairs], arrays, filepath, [n for _, n in pairs])
