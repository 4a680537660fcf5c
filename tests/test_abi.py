"""The one declared ABI between Python and C (csrc/include/neurec/nr_names.h).

The C core exports its enum values by name (``neurec._core.OPS``, ``ACTIVATIONS``,
``LOSSES``, ``OPTIMIZERS``, ``STATUSES``); Python takes every code from there. These tests
check the exports against the C headers' own text and scan the package for a code written
by hand.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from neurec import _core, activations, losses, optimizers
from neurec.layers import core as layers_core

ROOT = Path(__file__).resolve().parents[1]
HEADERS = ROOT / "csrc" / "include" / "neurec"


def _c_enum(header: str, enum: str) -> dict[str, int]:
    """NAME -> value of `enum <enum> { NAME = value, ... }` in a header."""
    text = re.sub(r"/\*.*?\*/", "", (HEADERS / header).read_text(), flags=re.S)
    body = re.search(r"enum " + enum + r"\s*\{(.*?)\};", text, re.S)
    assert body, f"enum {enum} not found in {header}"
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"(NR_\w+)\s*=\s*(\d+)", body.group(1))}


@pytest.mark.parametrize("export, header, enum, prefix", [
    ("OPS", "nr_plan.h", "nr_op_kind", "NR_OP_"),
    ("ACTIVATIONS", "nr_kernels.h", "nr_act", "NR_ACT_"),
    ("LOSSES", "nr_plan.h", "nr_loss", "NR_LOSS_"),
    ("OPTIMIZERS", "nr_optim.h", "nr_optim_kind", "NR_OPTIM_"),
])
def test_exported_names_match_the_c_enums(export, header, enum, prefix):
    exported = getattr(_core, export)
    c_values = _c_enum(header, enum)
    assert sorted(exported.values()) == list(range(len(exported)))
    assert {prefix + name.upper(): value for name, value in exported.items()} == c_values


def test_statuses_are_exported_in_order():
    # nr_status.h numbers only its first value: the rest count up from it
    text = re.sub(r"/\*.*?\*/", "", (HEADERS / "nr_status.h").read_text(), flags=re.S)
    names = re.findall(r"\b(NR_[A-Z_]+)\b(?:\s*=\s*0)?\s*,", re.search(
        r"enum nr_status\s*\{(.*?)\};", text, re.S).group(1))
    assert sorted(_core.STATUSES.values()) == list(range(len(names)))
    assert _core.STATUSES["ok"] == 0 and _core.STATUSES["aborted"] == names.index("NR_ABORTED")


def test_python_codes_come_from_the_c_exports():
    ops = {name: getattr(layers_core, "OP_" + name.upper()) for name in _core.OPS}
    assert ops == _core.OPS
    assert activations.CODES == _core.ACTIVATIONS
    assert losses.BinaryCrossentropy().code == _core.LOSSES["bce"]
    assert losses.BinaryCrossentropy(from_logits=True).code == _core.LOSSES["bce_logits"]
    assert losses.MeanSquaredError().code == _core.LOSSES["mse"]
    assert losses.MeanAbsoluteError().code == _core.LOSSES["mae"]
    for cls, name in [(optimizers.SGD, "sgd"), (optimizers.Adam, "adam"),
                      (optimizers.Adagrad, "adagrad"), (optimizers.RMSprop, "rmsprop")]:
        assert cls.kind == _core.OPTIMIZERS[name]


HAND_WRITTEN = [
    re.compile(r"^\s*OP_[A-Z_]+(\s*,\s*\\?\s*OP_[A-Z_]+)*\s*=\s*(\d|range\()", re.M),
    re.compile(r"^\s*(code|kind)\s*=\s*\d", re.M),
    re.compile(r"\bCODES\s*=\s*\{"),
]


def test_no_c_enum_value_is_written_in_python_by_hand():
    offenders = []
    for path in (ROOT / "neurec").rglob("*.py"):
        text = path.read_text()
        for pattern in HAND_WRITTEN:
            for m in pattern.finditer(text):
                line = text[:m.start()].count("\n") + 1
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {m.group(0).strip()}")
    assert not offenders, "C enum values written by hand:\n" + "\n".join(offenders)


# ---- plan descriptors: keyword arguments and named fields, never positional tuples ------------

def _plan_kwargs(monkeypatch) -> dict:
    """The keyword arguments Model._build_plan passes to _core.Plan (for a small GMF)."""
    from neurec.models import GMF
    seen = {}
    real = _core.Plan

    def record(*args, **kw):
        assert not args, "Plan must be called with keyword arguments only"
        seen.update(kw)
        return real(**kw)

    monkeypatch.setattr(_core, "Plan", record)
    m = GMF(20, 15, factors=4)
    m.compile(optimizer="adam", loss="binary_crossentropy")
    m._get_plan()
    monkeypatch.setattr(_core, "Plan", real)
    return seen


def _predict(plan, n=7):
    ids = [np.arange(n, dtype=np.int64).reshape(n, 1) % 15, np.arange(n, dtype=np.int64)[::-1]
           .reshape(n, 1).copy() % 15]
    out = np.zeros((n, 1), np.float32)
    plan.predict(ids, out)
    return out


def test_model_passes_named_descriptors(monkeypatch):
    from neurec.models._plan import Op, Param
    kw = _plan_kwargs(monkeypatch)
    assert kw["ops"] and all(type(op) is Op for op in kw["ops"])
    assert kw["params"] and all(type(p) is Param for p in kw["params"])
    assert type(kw["optimizer"]) is optimizers.OptimizerSpec


def test_plan_rejects_positional_arguments_and_plain_tuples(monkeypatch):
    kw = _plan_kwargs(monkeypatch)
    with pytest.raises(TypeError, match="keyword arguments only"):
        _core.Plan(*kw.values())
    for name, bad in [("ops", [tuple(kw["ops"][0])] + kw["ops"][1:]),
                      ("params", [tuple(kw["params"][0])] + kw["params"][1:]),
                      ("optimizer", tuple(kw["optimizer"]))]:
        with pytest.raises(TypeError, match="by field name"):
            _core.Plan(**dict(kw, **{name: bad}))
    plan = _core.Plan(**kw)
    with pytest.raises(TypeError, match="by field name"):
        plan.set_optimizer(tuple(kw["optimizer"]))
    with pytest.raises(TypeError, match="'learning_rate' must be a float"):
        plan.set_optimizer(kw["optimizer"]._replace(learning_rate="fast"))


def test_descriptor_fields_are_read_by_name_not_order(monkeypatch):
    from types import SimpleNamespace
    kw = _plan_kwargs(monkeypatch)

    def shuffled(t):  # the same fields, in reverse order, in a type that is not a tuple
        return SimpleNamespace(**dict(reversed(list(t._asdict().items()))))

    same = _core.Plan(**dict(kw, ops=[shuffled(op) for op in kw["ops"]],
                             params=[shuffled(p) for p in kw["params"]],
                             optimizer=shuffled(kw["optimizer"])))
    np.testing.assert_array_equal(_predict(same), _predict(_core.Plan(**kw)))


@pytest.mark.parametrize("reader, fields", [
    ("read_op", "neurec.models._plan.Op"),
    ("read_param", "neurec.models._plan.Param"),
    ("read_optim", "neurec.optimizers.OptimizerSpec"),
])
def test_c_reads_exactly_the_declared_fields(reader, fields):
    import importlib
    module, cls = fields.rsplit(".", 1)
    declared = set(getattr(importlib.import_module(module), cls)._fields)
    text = (ROOT / "csrc" / "py" / "_plan.c").read_text()
    body = re.search(r"\nstatic int " + reader + r"\(.*?\n\}\n", text, re.S)
    assert body, f"{reader} not found in csrc/py/_plan.c"
    read = set(re.findall(r"\b(?:w|what), \"(\w+)\"", body.group(0)))
    assert read == declared
