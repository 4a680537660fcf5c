"""Saving and loading models: one zip file of JSON and ``.npy`` arrays, no pickle.

Layout of a ``.neurec`` file::

    config.json            {"format": 1, "neurec_version", "model": {...}, "compile": {...}}
    weights/00000.npy ...  every weight array, in model.weights order
    optimizer/00000.npy .. optimizer state (iterations first), if compiled

Files are written to a temporary file in the same directory and renamed, so a
crash never leaves a half-written model. Loading checks every name, shape and
dtype and raises ``ValueError`` on a corrupted file.
"""
import io
import json
import os
import tempfile
import zipfile
from typing import Any, Dict, List, Optional

import numpy as np

from neurec.layers.base import KerasTensor

FORMAT = 1
MODEL_SUFFIXES = (".neurec", ".keras")
WEIGHTS_SUFFIX = ".weights.npz"


def _layer_classes(custom_objects=None) -> Dict[str, type]:
    import neurec.layers as L
    classes = {name: getattr(L, name) for name in L.__all__ if isinstance(getattr(L, name), type)}
    classes.update(custom_objects or {})
    return classes


def functional_config(model) -> Dict[str, Any]:
    node_ids: Dict[int, tuple] = {}
    counts: Dict[str, int] = {}
    for t in model.inputs:
        node_ids[id(t.node)] = (t.node.layer.name, 0)
    nodes = []
    for node in model._nodes_in_order:
        k = counts.get(node.layer.name, 0)
        counts[node.layer.name] = k + 1
        node_ids[id(node)] = (node.layer.name, k)
        nodes.append({"layer": node.layer.name,
                      "inbound": [list(node_ids[id(t.node)]) + [t.index] for t in node.inputs]})
    out = model.outputs[0]
    return {
        "class_name": type(model).__name__,
        "name": model.name,
        "layers": [{"class_name": type(l).__name__, "config": l.get_config()} for l in model._layers],
        "nodes": nodes,
        "input_layers": [[t.node.layer.name, 0, 0] for t in model.inputs],
        "output_layers": [list(node_ids[id(out.node)]) + [out.index]],
    }


def functional_from_config(config: Dict[str, Any], custom_objects=None):
    from neurec.layers.core import InputLayer
    from neurec.models.model import Model
    from neurec.models.sequential import Sequential
    classes = _layer_classes(custom_objects)
    try:
        layers = {}
        for entry in config["layers"]:
            cls = classes.get(entry["class_name"])
            if cls is None:
                raise ValueError(f"unknown layer class {entry['class_name']!r} (pass it in "
                                 "custom_objects)")
            layer = cls.from_config(dict(entry["config"]))
            layers[layer.name] = layer
        produced: Dict[tuple, KerasTensor] = {}
        for name, layer in layers.items():
            if isinstance(layer, InputLayer):
                produced[(name, 0)] = layer.output
        counts: Dict[str, int] = {}
        for node in config["nodes"]:
            layer = layers[node["layer"]]
            ins = [produced[(lname, nidx)] for lname, nidx, _ in node["inbound"]]
            out = layer(ins if len(ins) > 1 or layer._n_inputs is None else ins[0])
            k = counts.get(layer.name, 0)
            counts[layer.name] = k + 1
            produced[(layer.name, k)] = out
        inputs = [produced[(n, i)] for n, i, _ in config["input_layers"]]
        outputs = produced[tuple(config["output_layers"][0][:2])]
    except (KeyError, TypeError, IndexError) as e:
        raise ValueError(f"invalid model config: {e!r}") from None
    if config.get("class_name") == "Sequential":
        model = Sequential(name=config.get("name"))
        model._input_tensor = inputs[0]
        model._init_graph(inputs, outputs)
        model._stack = [n.layer for n in model._nodes_in_order]
        return model
    return Model(inputs, outputs, name=config.get("name"))


def _atomic_write(path: str, write_fn, overwrite: bool) -> None:
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".neurec-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def save_model(model, filepath, overwrite: bool = True) -> None:
    filepath = os.fspath(filepath)
    if not filepath.endswith(MODEL_SUFFIXES):
        raise ValueError(f"model.save: the file name must end in '.neurec' (or '.keras'), got "
                         f"{filepath!r}; use save_weights for '{WEIGHTS_SUFFIX}'")
    model._require_graph()
    cfg = {"format": FORMAT, "neurec_version": _version(), "model": functional_config(model),
           "compile": None}
    opt_vars: List[np.ndarray] = []
    if model._compiled:
        cfg["compile"] = model._compile_config
        cfg["compile"]["optimizer"]["config"] = model.optimizer.get_config()
        if model._plan is not None or model.optimizer._slots:
            opt_vars = model.optimizer.variables()
        cfg["optimizer_variables"] = len(opt_vars)
    weights = model.weights

    def write(f):
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as z:
            z.writestr("config.json", json.dumps(cfg, indent=1))
            for i, w in enumerate(weights):
                z.writestr(f"weights/{i:05d}.npy", _npy_bytes(w))
            for i, v in enumerate(opt_vars):
                z.writestr(f"optimizer/{i:05d}.npy", _npy_bytes(v))

    _atomic_write(filepath, write, overwrite)


def _version() -> str:
    import neurec
    return neurec.__version__


def _read_npy(z: zipfile.ZipFile, name: str) -> np.ndarray:
    try:
        data = z.read(name)
    except KeyError:
        raise ValueError(f"corrupted neurec file: {name} is missing") from None
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as e:
        raise ValueError(f"corrupted neurec file: {name} is not a valid .npy array ({e})") from None


def _open_zip(filepath) -> zipfile.ZipFile:
    filepath = os.fspath(filepath)
    if not os.path.exists(filepath):
        raise FileNotFoundError(f"No such file: {filepath}")
    try:
        z = zipfile.ZipFile(filepath)
        bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ValueError(f"{filepath} is not a valid neurec file (corrupted or truncated zip: {e})") from None
    if bad is not None:
        z.close()
        raise ValueError(f"{filepath} is corrupted: member {bad} fails its CRC check")
    return z


def _assign(targets: List[np.ndarray], arrays: List[np.ndarray], what: str) -> None:
    if len(targets) != len(arrays):
        raise ValueError(f"{what}: expected {len(targets)} arrays, the file has {len(arrays)}")
    for i, (t, a) in enumerate(zip(targets, arrays)):
        if a.shape != t.shape:
            raise ValueError(f"{what}: array {i} has shape {a.shape}, the model expects {t.shape}")
        if a.dtype.kind not in "fi" or not np.all(np.isfinite(a)):
            raise ValueError(f"{what}: array {i} has invalid dtype {a.dtype} or non-finite values")
    for t, a in zip(targets, arrays):
        np.copyto(t, a.astype(t.dtype, copy=False))


def load_model(filepath, custom_objects: Optional[dict] = None, compile: bool = True, safe_mode=True):
    """Load a model saved with ``model.save``.

    Args:
        filepath: Path of a ``.neurec`` file.
        custom_objects: Mapping of custom layer class names to classes.
        compile: Restore the compile settings and optimizer state.

    Returns:
        The model, with weights (and optimizer state) restored.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the file is corrupted or inconsistent.
    """
    with _open_zip(filepath) as z:
        try:
            cfg = json.loads(z.read("config.json").decode("utf-8"))
        except KeyError:
            raise ValueError(f"{filepath} is not a neurec model file (no config.json)") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{filepath}: config.json is corrupted ({e})") from None
        if not isinstance(cfg, dict) or cfg.get("format") != FORMAT or "model" not in cfg:
            raise ValueError(f"{filepath}: unsupported or missing format version")
        model = functional_from_config(cfg["model"], custom_objects)
        weights = [_read_npy(z, f"weights/{i:05d}.npy") for i in range(len(model.weights))]
        extra = [n for n in z.namelist() if n.startswith("weights/")]
        if len(extra) != len(weights):
            raise ValueError(f"{filepath}: has {len(extra)} weight arrays, the model expects {len(weights)}")
        _assign(model.weights, weights, f"{filepath} weights")
        comp = cfg.get("compile")
        if compile and comp:
            from neurec import losses, metrics, optimizers
            try:
                model.compile(optimizer=optimizers.get(comp["optimizer"]),
                              loss=losses.get(comp["loss"]),
                              metrics=[m if isinstance(m, str) else metrics.get(m) for m in comp["metrics"]],
                              hogwild=bool(comp.get("hogwild", False)))
            except (KeyError, TypeError) as e:
                raise ValueError(f"{filepath}: invalid compile settings ({e!r})") from None
            n_vars = int(cfg.get("optimizer_variables", 0))
            if n_vars:
                model._get_plan()
                targets = model.optimizer.variables()
                arrays = [_read_npy(z, f"optimizer/{i:05d}.npy") for i in range(n_vars)]
                if len(arrays) != len(targets) or arrays[0].shape != (1,):
                    raise ValueError(f"{filepath}: optimizer state does not match the model")
                model.optimizer.iterations = int(arrays[0][0])
                live = [a for s in model.optimizer._slots for a in s if a is not None]
                _assign(live, arrays[1:], f"{filepath} optimizer state")
    return model


def save_weights(model, filepath, overwrite: bool = True) -> None:
    filepath = os.fspath(filepath)
    if not filepath.endswith(WEIGHTS_SUFFIX):
        raise ValueError(f"save_weights: the file name must end in '{WEIGHTS_SUFFIX}', got {filepath!r}")
    arrays = {f"w{i:05d}": w for i, w in enumerate(model.weights)}

    def write(f):
        np.savez(f, **arrays)

    _atomic_write(filepath, write, overwrite)


def load_weights(model, filepath) -> None:
    filepath = os.fspath(filepath)
    if filepath.endswith(MODEL_SUFFIXES):
        with _open_zip(filepath) as z:
            arrays = [_read_npy(z, f"weights/{i:05d}.npy") for i in range(len(model.weights))]
        _assign(model.weights, arrays, filepath)
        return
    z = _open_zip(filepath)
    z.close()
    try:
        with np.load(filepath, allow_pickle=False) as data:
            keys = sorted(data.files)
            arrays = [data[k] for k in keys]
    except Exception as e:
        raise ValueError(f"{filepath} is not a valid weights file ({e})") from None
    _assign(model.weights, arrays, filepath)
