"""Model 2: offline metric versus online quality over versions."""

from __future__ import annotations

from pathlib import Path

import pytest

from readyml.registry import Registry
from readyml.score.correlation import correlation_evidence, offline_online_correlation
from readyml.types import Evidence


def register(registry: Registry, tmp_path: Path, offline: float) -> int:
    model_file = tmp_path / "model.bin"
    model_file.write_bytes(str(offline).encode())
    version = registry.register(
        "m",
        files={"model.bin": model_file},
        model_fingerprint=f"fp-{offline}",
        metrics={"primary": "accuracy", "valid": {"accuracy": offline}},
    )
    return version.version


def online(registry: Registry, version: int, value: float, *, nested: bool = False) -> None:
    details: dict[str, object] = (
        {"metrics": {"accuracy": value}} if nested else {"metric": "accuracy", "measured": value}
    )
    registry.add_evidence(
        Evidence("monitor-7", True, True, "p", details=details, model_name="m", version=version)
    )


def test_too_few_versions_is_reported_honestly(registry: Registry, tmp_path: Path) -> None:
    v1 = register(registry, tmp_path, 0.7)
    register(registry, tmp_path, 0.8)
    online(registry, v1, 0.65)
    report = offline_online_correlation(registry, "p", "m")
    assert not report.passed
    assert report.reason.startswith("not enough versions: 1 of 3 have both")
    evidence = correlation_evidence("p", report)
    assert evidence.test_id == "model-2" and not evidence.passed


def test_no_versions_at_all(registry: Registry) -> None:
    report = offline_online_correlation(registry, "p", "m")
    assert report.reason.startswith("not enough versions: 0 of 3")


@pytest.mark.parametrize(
    ("online_values", "passed"),
    [([0.60, 0.70, 0.80], True), ([0.80, 0.70, 0.60], False)],
)
def test_correlation_over_versions(
    registry: Registry, tmp_path: Path, online_values: list[float], passed: bool
) -> None:
    for offline, value in zip([0.7, 0.75, 0.9], online_values, strict=True):
        version = register(registry, tmp_path, offline)
        online(registry, version, value - 0.3)  # an older record, superseded
        online(registry, version, value, nested=version == 2)
    report = offline_online_correlation(registry, "p", "m")
    assert [p.online for p in report.points] == online_values
    assert report.passed is passed
    assert report.spearman == pytest.approx(1.0 if passed else -1.0)
