"""Pin the public names of readyml.registry."""

from __future__ import annotations

import doctest

import pytest

import readyml.registry
import readyml.registry.registry


def test_all_is_sorted_and_importable() -> None:
    names = readyml.registry.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    assert names == [
        "CHAMPION",
        "AliasEvent",
        "ArtifactInfo",
        "ArtifactStore",
        "MetadataStore",
        "ModelSummary",
        "ModelVersion",
        "Registry",
        "RunOwner",
        "RunRecord",
        "StatusEvent",
        "StepRecord",
        "onnx_version_for",
        "open_registry",
    ]
    for name in names:
        assert hasattr(readyml.registry, name)


def test_registry_doctests_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("READYML_STORE_URL", "READYML_ARTIFACTS_URL"):
        monkeypatch.delenv(name, raising=False)
    result = doctest.testmod(readyml.registry.registry)
    assert (result.failed, result.attempted > 0) == (0, True)
