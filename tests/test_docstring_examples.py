"""Docstring examples outside the model zoo run as printed (the zoo's: tests/test_zoo.py).

Each example is run by doctest in an empty namespace, so it imports what it uses and a
reader can copy it alone; its printed results (split contents, shapes, checks) must match.
"""
import doctest
import importlib
import inspect

import pytest

RUNNABLE = {
    "neurec.data.splits": ["leave_one_out", "random_holdout", "time_split", "sample_negatives"],
    "neurec.datasets.ecommerce": ["make_purchases", "load_purchases"],
}
CASES = [(module, name) for module, names in RUNNABLE.items() for name in names]


@pytest.mark.parametrize("module,name", CASES, ids=[n for _, n in CASES])
def test_docstring_example_runs_as_printed(module, name):
    obj = getattr(importlib.import_module(module), name)
    assert "\nExample:\n" in inspect.getdoc(obj), f"{name} has no Example: section"
    (test,) = doctest.DocTestFinder(recurse=False).find(obj, name, globs={})
    assert sum(bool(e.want) for e in test.examples) >= 1, f"{name}'s example shows no result"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
    assert any(f"import {name}" in e.source or f", {name}" in e.source for e in test.examples), \
        f"{name}'s example does not import {name}"
