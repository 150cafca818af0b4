"""The public names of readyml.data are pinned, and its doctests run."""

from __future__ import annotations

import doctest
import importlib

import pytest

import readyml.data

MODULES = ["drift", "files", "io", "profile", "schema", "validate"]


def test_all_is_sorted_and_pinned() -> None:
    assert readyml.data.__all__ == sorted(readyml.data.__all__, key=lambda n: (n.upper() != n, n))
    for name in readyml.data.__all__:
        assert hasattr(readyml.data, name)
    assert {"detect_drift", "refresh_schema"} <= set(readyml.data.__all__)
    assert len(readyml.data.__all__) == 33


@pytest.mark.parametrize("module", MODULES)
def test_doctests_pass(module: str) -> None:
    result = doctest.testmod(importlib.import_module(f"readyml.data.{module}"))
    assert result.failed == 0
