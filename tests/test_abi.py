"""The one declared ABI between Python and C (csrc/include/neurec/nr_names.h).

The C core exports its enum values by name (``neurec._core.OPS``, ``ACTIVATIONS``,
``LOSSES``, ``OPTIMIZERS``, ``STATUSES``); Python takes every code from there. These tests
check the exports against the C headers' own text and scan the package for a code written
by hand.
"""
from __future__ import annotations

import re
from pathlib import Path

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
