"""compress_version: every result is a registered, gated, measured version with lineage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from readyml.compress import Methods, Splits, compress_version, onnx_version_for
from readyml.compress.demo import register_trained
from readyml.compress.run import ORT_FILE
from readyml.errors import ConfigError, FlavorError
from readyml.flavors import load_model
from readyml.registry import ModelVersion, Registry


def _torch_parent(registry: Registry, splits: Splits, hidden: list[int]) -> ModelVersion:
    from readyml.flavors.torch import TorchModel

    model = TorchModel(factory_params={"hidden": hidden}, epochs=30, lr=1e-2, seed=0)
    model.fit(splits.X_train, splits.y_train)
    return register_trained(registry, "iris", model, splits)


def _sklearn_parent(registry: Registry, splits: Splits) -> ModelVersion:
    from sklearn.ensemble import RandomForestClassifier

    from readyml.flavors.sklearn import SklearnModel

    model = SklearnModel(estimator=RandomForestClassifier(n_estimators=20, random_state=0))
    return register_trained(registry, "iris", model.fit(splits.X_train, splits.y_train), splits)


def _size(version: ModelVersion, name: str) -> int:
    return next(a.size for a in version.artifacts if a.name == name)


def test_ort_round_trip_registers_onnx_and_ort_versions(
    registry: Registry, iris_splits: Splits, tmp_path: Path
) -> None:
    parent = _sklearn_parent(registry, iris_splits)
    report = compress_version(
        registry, parent.ref, iris_splits, Methods(format="ort"), out=tmp_path / "report"
    )
    onnx_row, ort_row = report.rows[1:]
    assert (onnx_row.method, ort_row.method) == ("onnx", "ort")
    assert ort_row.parity is not None and ort_row.parity["identical"] == 1.0
    ort_version = registry.get(ort_row.ref)
    onnx_version = registry.get(onnx_row.ref)
    assert ort_version.parent_version == onnx_version.version
    assert onnx_version.lineage["compression"]["parity"]["passed"]
    files = registry.download(ort_version, tmp_path / "ort")
    from readyml.flavors.onnx import OnnxModel

    mobile = OnnxModel(
        path=files / ORT_FILE, task="classification", classes=["setosa", "versicolor", "virginica"]
    )
    expected = load_model(registry.download(parent, tmp_path / "parent")).predict(
        iris_splits.X_valid
    )
    assert mobile.predict(iris_splits.X_valid).tolist() == expected.tolist()
    assert onnx_version_for(registry, parent) == onnx_version
    written = json.loads((tmp_path / "report" / "compression.json").read_text())
    assert [row["method"] for row in written["rows"]] == ["parent", "onnx", "ort"]
    assert "<table>" in (tmp_path / "report" / "compression.html").read_text()


def test_a_repeated_export_names_the_version_already_registered(
    registry: Registry, iris_splits: Splits
) -> None:
    parent = _sklearn_parent(registry, iris_splits)
    first = compress_version(registry, parent.ref, iris_splits, Methods(format="ort"))
    again = compress_version(registry, parent.ref, iris_splits, Methods(format="ort"))
    assert [r.ref for r in again.rows] == [r.ref for r in first.rows]
    assert [r.details.get("already_registered") for r in again.rows[1:]] == [True, True]
    assert registry.list_versions("iris")[-1].version == 3  # parent, onnx, ort: no copies
    assert again.table()[2][0].endswith("(existing)")


def test_a_result_registered_meanwhile_by_another_call_is_reused(
    registry: Registry, iris_splits: Splits, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two calls racing: both pass the first check, the registry's locked check keeps one."""
    from readyml.compress.run import INVOCATION_KEY, _Judge

    parent = _sklearn_parent(registry, iris_splits)
    first = compress_version(registry, parent.ref, iris_splits, Methods(format="onnx"))
    monkeypatch.setattr(_Judge, "_made_before", lambda *args: None)  # as if checked earlier
    again = compress_version(registry, parent.ref, iris_splits, Methods(format="onnx"))
    assert again.rows[1].ref == first.rows[1].ref and again.rows[1].details["already_registered"]
    versions = registry.list_versions("iris")
    assert [v.version for v in versions] == [1, 2]  # parent and one ONNX export, no copy
    assert versions[1].lineage[INVOCATION_KEY]  # the call that registered it


def test_static_int8_quantization_shrinks_the_file(registry: Registry, iris_splits: Splits) -> None:
    parent = _torch_parent(registry, iris_splits, [128, 128])
    report = compress_version(
        registry,
        parent.ref,
        iris_splits,
        Methods(quantize="int8", static=True, calibration=64),
        max_quality_loss=0.1,
    )
    onnx_row, int8_row = report.rows[1:]
    assert int8_row.method == "int8-static"
    assert int8_row.size_bytes * 2.5 < onnx_row.size_bytes
    version = registry.get(int8_row.ref)
    assert version.lineage["compression"]["op_types"]
    assert version.parent_version == registry.get(onnx_row.ref).version


def test_an_onnx_version_is_quantized_as_it_is(registry: Registry, iris_splits: Splits) -> None:
    parent = _torch_parent(registry, iris_splits, [128, 128])
    exported = compress_version(registry, parent.ref, iris_splits, Methods(format="onnx"))
    onnx_ref = exported.rows[1].ref
    report = compress_version(
        registry, onnx_ref, iris_splits, Methods(quantize="int8"), max_quality_loss=0.1
    )
    assert [row.method for row in report.rows] == ["parent", "int8-dynamic"]
    quantized = registry.get(report.rows[1].ref)
    assert quantized.parent_version == registry.get(onnx_ref).version
    assert report.rows[1].size_bytes < report.rows[0].size_bytes


def test_structured_pruning_shrinks_the_saved_model_and_loads(
    registry: Registry, iris_splits: Splits, tmp_path: Path
) -> None:
    parent = _torch_parent(registry, iris_splits, [64, 64])
    report = compress_version(
        registry,
        parent.ref,
        iris_splits,
        Methods(prune=0.5, structured=True, fine_tune_epochs=5),
        max_quality_loss=0.2,
        max_slice_loss=0.5,
    )
    row = report.rows[1]
    assert row.size_bytes * 2 < report.rows[0].size_bytes
    assert row.parameters is not None and report.rows[0].parameters is not None
    assert row.parameters * 2.5 < report.rows[0].parameters
    pruned = load_model(registry.download(registry.get(row.ref), tmp_path / "pruned"))
    assert pruned.predict(iris_splits.X_valid).shape == (50,)


def test_unstructured_pruning_reaches_the_sparsity(registry: Registry, iris_splits: Splits) -> None:
    parent = _torch_parent(registry, iris_splits, [32])
    report = compress_version(
        registry, parent.ref, iris_splits, Methods(prune=0.6), max_quality_loss=1.0
    )
    assert report.rows[1].details["weight_sparsity"] == pytest.approx(0.6, abs=0.01)


@pytest.mark.parametrize("student", ["tree:3", "mlp:8"])
def test_distilled_student_is_registered_with_the_teacher_as_parent(
    registry: Registry, iris_splits: Splits, student: str
) -> None:
    teacher = _sklearn_parent(registry, iris_splits)
    report = compress_version(
        registry,
        teacher.ref,
        iris_splits,
        Methods(distill=student, distill_epochs=10),
        max_quality_loss=1.0,
        max_slice_loss=1.0,
    )
    version = registry.get(report.rows[1].ref)
    assert version.parent_version == teacher.version
    assert version.lineage["compression"]["name"] == "distill"
    assert version.lineage["compression"]["teacher"] == teacher.ref
    assert version.status == "blessed"


def test_gate_vetoes_a_version_that_lost_too_much_quality(
    registry: Registry, iris_splits: Splits
) -> None:
    parent = _torch_parent(registry, iris_splits, [32])
    report = compress_version(
        registry, parent.ref, iris_splits, Methods(prune=0.97), max_quality_loss=0.0
    )
    row = report.rows[1]
    assert row.decision == "vetoed"
    assert report.vetoed == [row]
    assert registry.get(row.ref).status == "vetoed"


def test_quantizing_a_tree_ensemble_is_refused(registry: Registry, iris_splits: Splits) -> None:
    parent = _sklearn_parent(registry, iris_splits)
    with pytest.raises(FlavorError, match="nothing to quantize"):
        compress_version(registry, parent.ref, iris_splits, Methods(quantize="int8"))
    # Refused before its ONNX export was registered: nothing is left half done.
    assert registry.get("iris").version == parent.version


def test_no_method_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="at least one"):
        Methods().check()


@pytest.mark.parametrize(
    ("methods", "message"),
    [
        (Methods(format="onnx", calibration=0), "--calibration: expected at least 1 row, found 0"),
        (Methods(prune=1.5), r"--prune: expected a sparsity in \(0, 1\), found 1.5"),
        (Methods(prune=0.5, fine_tune_epochs=-1), "--fine-tune: expected 0 or more epochs"),
        (
            Methods(distill="mlp", temperature=0.0),
            "--temperature: expected a finite number > 0, found 0.0",
        ),
        (
            Methods(distill="mlp", temperature=float("inf")),
            "expected a finite number > 0, found inf",
        ),
        (
            Methods(distill="mlp", temperature=float("nan")),
            "expected a finite number > 0, found nan",
        ),
        (Methods(distill="mlp", soft_weight=2.0), r"--soft-weight: expected a weight in \[0, 1\]"),
        (Methods(distill="foo:3"), r"--distill: expected 'mlp\[:W,W\]', .* found 'foo:3'"),
        (Methods(distill="mlp:a"), "--distill 'mlp:a': expected integers after ':'"),
        (
            Methods(format="onnx", static=True),
            "--static: expected with --quantize int8, found no --quantize",
        ),
        (Methods(format="onnx", structured=True), "--structured: expected with --prune"),
        (Methods(distill="mlp", fine_tune_epochs=3), "--fine-tune: expected with --prune"),
        (Methods(distill="mlp:0"), r"--distill 'mlp:0': expected sizes of 1 or more, found \[0\]"),
        (Methods(distill="mlp:8,-3"), r"--distill 'mlp:8,-3': expected sizes of 1 or more"),
        (Methods(distill="tree:0"), r"--distill 'tree:0': expected sizes of 1 or more"),
        (Methods(distill="no_such_module:make"), "--distill 'no_such_module:make': cannot import"),
        (Methods(distill="readyml.flavors.torch:nope"), "no such function in module"),
    ],
)
def test_bad_method_values_are_config_errors_before_any_work(
    methods: Methods, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        methods.check()


def test_labels_survive_as_strings(registry: Registry, iris_splits: Splits) -> None:
    parent = _torch_parent(registry, iris_splits, [8])
    report = compress_version(registry, parent.ref, iris_splits, Methods(format="onnx"))
    assert report.rows[1].quality["valid"]["accuracy"] == pytest.approx(
        report.rows[0].quality["valid"]["accuracy"]
    )
    assert np.isfinite(report.rows[1].latency_ms["64"])


@pytest.mark.parametrize(
    ("student", "found"),
    [
        ("readyml.examples.digits:cnn", "ValueError: cnn: expected 8×8 images"),  # iris columns
        ("sklearn.tree:DecisionTreeClassifier", "TypeError"),  # not a factory
    ],
)
def test_a_student_factory_that_does_not_fit_is_a_flavor_error(
    registry: Registry, iris_splits: Splits, student: str, found: str
) -> None:
    teacher = _sklearn_parent(registry, iris_splits)
    with pytest.raises(
        FlavorError, match=rf"--distill '{student}': expected a torch factory.*{found}"
    ):
        compress_version(registry, teacher.ref, iris_splits, Methods(distill=student))
    assert registry.get("iris").version == teacher.version


def test_a_method_failing_after_others_worked_registers_nothing(
    registry: Registry, iris_splits: Splits
) -> None:
    parent = _torch_parent(registry, iris_splits, [8])
    methods = Methods(
        format="ort", quantize="torch-int8", prune=0.5, distill="readyml.examples.digits:cnn"
    )
    with pytest.raises(FlavorError, match="--distill"):
        compress_version(registry, parent.ref, iris_splits, methods)
    # The ONNX, ORT, torch int8 and pruned results were made, but none became a version.
    assert registry.get("iris").version == parent.version
