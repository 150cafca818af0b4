"""Pin the public names of readyml.registry."""

from __future__ import annotations

import readyml.registry


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
        "RunRecord",
        "StepRecord",
        "open_registry",
    ]
    for name in names:
        assert hasattr(readyml.registry, name)
