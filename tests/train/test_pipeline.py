from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from readyml.config import Project
from readyml.errors import AliasError, DataError, RegistryError
from readyml.flavors import ModelAdapter, load_model
from readyml.registry import Registry
from readyml.train import RunResult, check_reproducible, open_project_registry, run_project
from readyml.train import run as run_module
from readyml.train.fingerprint import environment
from readyml.train.run import ReproducibilityReport
from readyml.train.steps import fit_model
from readyml.types import VersionStatus
from support import IRIS_SPEC, iris_frame, write_project


def _run(root: Path, *, force: bool = False) -> tuple[RunResult, Registry]:
    project = Project.load(root)
    registry = open_project_registry(project)
    return run_project(project, registry=registry, force=force), registry


def _statuses(result: RunResult) -> dict[str, str]:
    return {s.name: s.status for s in result.steps}


def test_first_run_trains_registers_and_records_everything(tmp_path: Path) -> None:
    write_project(tmp_path)
    result, registry = _run(tmp_path)
    assert result.status == "succeeded", result.error
    assert set(_statuses(result).values()) == {"succeeded"}
    version = registry.get("iris:1")
    assert version.status == "blessed"
    assert version.metrics["valid"]["accuracy"] > 0.8
    assert [c["name"] for c in version.signature["inputs"]] == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    ]
    assert len(version.input_example) == 5 and "species" not in version.input_example[0]
    assert version.lineage["fingerprints"]["data"] and version.lineage["fingerprints"]["config"]
    assert (tmp_path / "schema.yaml").exists()
    assert (tmp_path / ".readyml" / "exports" / "iris-v1" / "model.json").exists()
    steps = registry.store.steps_for_run(result.run_id)
    assert [s.name for s in steps] == [
        "load",
        "privacy",
        "profile",
        "validate",
        "split",
        "review",
        "tune",
        "train",
        "staleness",
        "evaluate",
        "gate",
        "register",
        "export",
    ]
    assert all(s.input_fingerprint and s.duration_s >= 0 for s in steps)
    evidence = {e.test_id: e for e in registry.store.list_evidence(project="iris")}
    assert evidence["infra-3"].passed and evidence["data-1"].passed


def test_second_run_skips_unchanged_steps(tmp_path: Path) -> None:
    write_project(tmp_path)
    first, registry = _run(tmp_path)
    second, _ = _run(tmp_path)
    assert set(_statuses(second).values()) == {"skipped"}
    assert second.value("registered") == {"name": "iris", "version": 1, "new": False}
    assert second.value("metrics") == first.value("metrics")
    assert [v.version for v in registry.list_versions("iris")] == [1]


def test_force_reruns_every_step_without_duplicating_the_version(tmp_path: Path) -> None:
    write_project(tmp_path)
    _run(tmp_path)
    forced, registry = _run(tmp_path, force=True)
    statuses = _statuses(forced)
    assert statuses["train"] == "succeeded" and statuses["load"] == "succeeded"
    assert statuses["register"] == "skipped"
    assert [v.version for v in registry.list_versions("iris")] == [1]


def test_changed_model_params_rerun_only_from_train(tmp_path: Path) -> None:
    write_project(tmp_path)
    _run(tmp_path)
    spec = {**IRIS_SPEC, "model": {**IRIS_SPEC["model"], "params": {"max_iter": 500, "C": 0.5}}}
    (tmp_path / "readyml.yaml").write_text(yaml.safe_dump(spec))
    result, registry = _run(tmp_path)
    statuses = _statuses(result)
    unchanged = ("load", "privacy", "profile", "validate", "split")
    assert [statuses[s] for s in unchanged] == ["skipped"] * len(unchanged)
    assert statuses["train"] == "succeeded" and statuses["register"] == "succeeded"
    assert registry.get("iris").version == 2


def test_changed_data_reruns_from_load(tmp_path: Path) -> None:
    write_project(tmp_path)
    _run(tmp_path)
    frame = iris_frame()
    frame.loc[0, "sepal_length"] = 5.0 if frame.loc[0, "sepal_length"] != 5.0 else 5.2
    frame.to_csv(tmp_path / "data" / "iris.csv", index=False)
    result, _ = _run(tmp_path)
    assert _statuses(result)["load"] == "succeeded"
    assert _statuses(result)["split"] == "succeeded"


def test_vetoed_candidate_is_registered_but_never_champion(tmp_path: Path) -> None:
    write_project(
        tmp_path, {**IRIS_SPEC, "gates": {"rules": [{"metric": "accuracy", "min": 0.999}]}}
    )
    result, registry = _run(tmp_path)
    assert result.value("gate")["decision"] == "vetoed"
    version = registry.get("iris:1")
    assert version.status == "vetoed"
    with pytest.raises(AliasError, match="vetoed"):
        registry.promote("iris:1", who="test", reason="try anyway")


def _register_message(result: RunResult) -> str:
    [register] = [s for s in result.steps if s.name == "register"]
    return register.message


@pytest.mark.parametrize("status", ["vetoed", "archived"])
def test_a_status_a_person_set_outlasts_a_rerun_whose_gate_blesses_the_model(
    tmp_path: Path, status: VersionStatus
) -> None:
    write_project(tmp_path)
    _, registry = _run(tmp_path)
    registry.set_status("iris", 1, status, who="ana", reason="leaks the label")
    again, registry = _run(tmp_path)
    assert again.value("gate")["decision"] == "blessed"
    assert _register_message(again) == (
        f"this model is already iris:1 ({status} by ana: leaks the label); this run's gate "
        "blessed it, a status set by a person stays"
    )
    version = registry.get("iris:1")
    assert version.status == status and version.tags["status_change"]["by"] == "ana"
    with pytest.raises(AliasError, match=rf"found it {status} \(by ana: leaks the label\)$"):
        registry.promote("iris:1", who="test", reason="run --promote")


def test_fixed_rules_do_not_lift_a_person_s_veto_of_a_gate_vetoed_model(tmp_path: Path) -> None:
    """The gate lifts only its own veto (tests/train/test_register.py); a person's stays."""
    strict = {**IRIS_SPEC, "gates": {"rules": [{"metric": "log_loss", "max": 0.0}]}}
    write_project(tmp_path, strict)
    _, registry = _run(tmp_path)
    assert registry.get("iris:1").status == "vetoed"
    # A person vetoes the gate-vetoed version too (readyml models veto records it so).
    registry.set_status("iris", 1, "vetoed", who="ana", reason="leaks the label")
    write_project(tmp_path)
    fixed, registry = _run(tmp_path)
    assert fixed.value("gate")["decision"] == "blessed"
    assert fixed.value("registered") == {"name": "iris", "version": 1, "new": False}
    assert registry.get("iris:1").status == "vetoed"
    assert "a status set by a person stays" in _register_message(fixed)


def test_a_stricter_gate_says_it_left_a_blessed_version_unchanged(tmp_path: Path) -> None:
    write_project(tmp_path)
    _, registry = _run(tmp_path)
    write_project(tmp_path, {**IRIS_SPEC, "gates": {"rules": [{"metric": "log_loss", "max": 0.0}]}})
    stricter, registry = _run(tmp_path)
    assert stricter.value("gate")["decision"] == "vetoed"
    assert _register_message(stricter) == (
        "this model is already iris:1 (blessed); this run's gate vetoed it, registry status "
        "left unchanged"
    )
    assert registry.get("iris:1").status == "blessed"


def test_unknown_label_column_fails_the_run_with_the_column_named(tmp_path: Path) -> None:
    write_project(tmp_path, {**IRIS_SPEC, "label": "specie"})
    result, registry = _run(tmp_path)
    assert result.status == "failed"
    assert isinstance(result.error, DataError)
    assert "label: column 'specie' not in the data" in str(result.error)
    run = registry.store.get_run(result.run_id)
    assert run.status == "failed" and "specie" in (run.error or "")
    assert _statuses(result) == {"load": "failed"}


def test_data_violating_the_checked_in_schema_fails_validate(tmp_path: Path) -> None:
    write_project(tmp_path)
    _run(tmp_path)
    frame = iris_frame()
    frame["petal_length"] = frame["petal_length"].astype(str)
    frame.loc[3, "petal_length"] = "n/a"
    frame.to_csv(tmp_path / "data" / "iris.csv", index=False)
    result, registry = _run(tmp_path)
    assert result.status == "failed"
    assert _statuses(result)["validate"] == "failed"
    assert str(result.error) == (
        "data violates schema.yaml: column 'petal_length': nan_or_inf: expected no nulls "
        "(nullable: false), found 1 null of 150 rows (0.7%)"
    )
    evidence = registry.store.list_evidence(project="iris", test_id="data-1")
    assert [e.passed for e in evidence] == [True, False]
    assert "reason" not in evidence[0].details
    assert evidence[1].details["reason"] == str(result.error)


def test_time_split_and_loader_source(tmp_path: Path) -> None:
    (tmp_path / "loader.py").write_text(
        "import pandas as pd\n"
        "from support import iris_frame\n"
        "def load():\n"
        "    frame = iris_frame()\n"
        "    frame['day'] = pd.date_range('2024-01-01', periods=len(frame), freq='D')\n"
        "    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True)\n"
    )
    spec = {
        **IRIS_SPEC,
        "data": {"source": "loader:load"},
        "split": {"method": "time", "time_column": "day", "cutoff": "2024-04-15"},
        "gates": {"rules": []},
    }
    write_project(tmp_path, spec)
    result, _ = _run(tmp_path)
    assert result.status == "succeeded", result.error
    train, valid = result.value("train"), result.value("valid")
    assert train["day"].max() < valid["day"].min()
    again, _ = _run(tmp_path)
    assert _statuses(again)["load"] == "succeeded"  # a loader is always read again
    assert _statuses(again)["split"] == "skipped"  # ... but its unchanged output is reused


def test_entry_point_model(tmp_path: Path) -> None:
    (tmp_path / "train_fn.py").write_text(
        "from sklearn.tree import DecisionTreeClassifier\n"
        "def fit(X, y, params, seed):\n"
        "    return DecisionTreeClassifier(random_state=seed, **params).fit(X, y)\n"
    )
    spec = {**IRIS_SPEC, "model": {"entry_point": "train_fn:fit", "params": {"max_depth": 3}}}
    write_project(tmp_path, spec)
    result, registry = _run(tmp_path)
    assert result.status == "succeeded", result.error
    assert registry.get("iris:1").tags["flavor"] == "sklearn"


def test_reproducibility_check_records_infra_1(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        {
            **IRIS_SPEC,
            "model": {
                "estimator": "sklearn.ensemble.RandomForestClassifier",
                "params": {"n_estimators": 20},
            },
        },
    )
    project = Project.load(tmp_path)
    registry = open_project_registry(project)
    result = run_project(project, registry=registry)
    report = check_reproducible(project, result, registry=registry)
    assert report.passed and report.deterministic
    assert report.identical_predictions == 1.0 and report.max_abs_difference == 0.0
    evidence = registry.store.list_evidence(project="iris", test_id="infra-1")
    assert evidence and evidence[-1].passed


def test_a_failed_reproducibility_check_says_what_differed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(tmp_path)
    project = Project.load(tmp_path)
    registry = open_project_registry(project)
    result = run_project(project, registry=registry)

    def on_half(
        project: Project, train: pd.DataFrame, valid: pd.DataFrame
    ) -> tuple[ModelAdapter, float]:
        return fit_model(project, train.iloc[::2], valid)

    # The second training sees other rows: the stand-in for a nondeterministic trainer.
    monkeypatch.setattr(run_module, "fit_model", on_half)
    report = check_reproducible(project, result, registry=registry)
    assert not report.passed
    (evidence,) = registry.store.list_evidence(project="iris", test_id="infra-1")
    assert not evidence.passed and evidence.details["reason"] == report.reason
    assert report.reason.startswith(
        "retrained on the same inputs: expected identical predictions (sklearn is deterministic)"
    )


def test_reproducibility_reason_names_the_expectation_and_the_difference() -> None:
    report = ReproducibilityReport("sklearn", True, 150, 146 / 150, 0.0421, 0.0, False)
    assert report.reason == (
        "retrained on the same inputs: expected identical predictions (sklearn is "
        "deterministic), found 146 of 150 identical"
    )
    assert report.to_dict()["reason"] == report.reason
    report = ReproducibilityReport("sklearn", True, 150, 1.0, 1e-7, 0.0, False)
    assert report.reason == (
        "retrained on the same inputs: expected identical predictions (sklearn is "
        "deterministic), found identical labels but values differing by up to 1e-07"
    )
    report = ReproducibilityReport("torch", False, 40, 1.0, 3e-4, 1e-6, False)
    assert report.reason == (
        "retrained on the same inputs: expected torch predictions within 1e-06 of each "
        "other, found a largest difference of 0.0003 (40 of 40 identical)"
    )
    passed = ReproducibilityReport("torch", False, 40, 1.0, 0.0, 1e-6, True)
    assert passed.reason == "" and "reason" not in passed.to_dict()


def test_damaged_cache_entry_is_recomputed(tmp_path: Path) -> None:
    write_project(tmp_path)
    _run(tmp_path)
    cache = tmp_path / ".readyml" / "artifacts" / "cache" / "iris" / "train"
    for path in cache.rglob("*"):
        if path.is_file():
            path.write_bytes(b"tampered")
    result, _ = _run(tmp_path)
    assert _statuses(result)["train"] == "succeeded"
    assert _statuses(result)["evaluate"] == "skipped"


def test_an_artifact_store_failing_on_a_cached_output_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(tmp_path)
    project = Project.load(tmp_path)
    registry = open_project_registry(project)

    def down(key: str, data: bytes) -> None:
        raise RegistryError(f"artifact store: cannot write {key!r} (the service is down)")

    monkeypatch.setattr(registry.artifacts, "put_bytes", down)
    result = run_project(project, registry=registry)
    assert result.status == "failed" and isinstance(result.error, RegistryError)
    assert _statuses(result) == {"load": "failed"}
    assert registry.store.get_run(result.run_id).status == "failed"


@pytest.mark.parametrize(
    ("body", "found"),
    [
        ("frame.columns = [*frame.columns[:-1], 'sepal_length']", "'sepal_length' twice"),
        ("frame.columns = range(len(frame.columns))", "found 0 (int)"),
        ("frame = frame.iloc[:, :0]", "found a frame of none"),
    ],
    ids=["duplicate", "integer", "no columns"],
)
def test_a_loader_s_bad_column_names_are_one_line(tmp_path: Path, body: str, found: str) -> None:
    (tmp_path / "loader.py").write_text(
        "from support import iris_frame\n"
        "def load():\n"
        "    frame = iris_frame()\n"
        f"    {body}\n"
        "    return frame\n"
    )
    write_project(tmp_path, {**IRIS_SPEC, "data": {"source": "loader:load"}})
    result, _ = _run(tmp_path)
    assert result.status == "failed"
    error = str(result.error)
    assert error.startswith("data.source: expected") and found in error, error


def test_a_damaged_export_is_made_again(tmp_path: Path) -> None:
    write_project(tmp_path)
    assert _run(tmp_path)[0].status == "succeeded"
    export = tmp_path / ".readyml" / "exports" / "iris-v1"
    (model_file,) = [p for p in (export / "model").iterdir() if p.suffix == ".skops"]
    for damage in (model_file, export / "model.json"):
        damage.unlink()
        result, _ = _run(tmp_path)
        assert result.status == "succeeded", result.error
        assert _statuses(result)["export"] == "succeeded"
        assert model_file.is_file() and (export / "model.json").is_file()
    assert [p.name for p in export.parent.iterdir()] == ["iris-v1"]
    # Requirements written before exports pinned readyml (the whole environment) are replaced.
    (export / "requirements.txt").write_text("torch==2.13.0+cpu\n")
    result, _ = _run(tmp_path)
    assert _statuses(result)["export"] == "succeeded"
    assert (export / "requirements.txt").read_text().startswith("readyml==")
    assert _statuses(_run(tmp_path)[0])["export"] == "skipped"


def test_export_requirements_pin_what_loading_the_model_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    numpy = importlib.metadata.version("numpy")
    trained_here = environment

    def beside_torch() -> dict[str, Any]:
        # Trained where torch's CPU build (a local label) and an MKL numpy build were installed.
        env = trained_here()
        env["packages"] = {**env["packages"], "torch": "2.13.0+cpu", "numpy": f"{numpy}+mkl"}
        return env

    monkeypatch.setattr(run_module, "environment", beside_torch)
    write_project(tmp_path)
    assert _run(tmp_path)[0].status == "succeeded"
    export = tmp_path / ".readyml" / "exports" / "iris-v1"
    text = (export / "requirements.txt").read_text()
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    # The scikit-learn flavor needs no extra: readyml itself loads the export.
    assert lines[0] == f"readyml=={importlib.metadata.version('readyml')}"
    pinned = dict(line.split("==") for line in lines)
    assert {"scikit-learn", "skops", "numpy", "pandas", "pyyaml"} <= set(pinned)
    assert not {"torch", "xgboost-cpu", "lightgbm", "onnx", "onnxruntime"} & set(pinned), text
    assert pinned["numpy"] == numpy
    assert f"# numpy: trained with {numpy}+mkl, a local build (+mkl)" in text
    for line in lines:  # every pin is one a default package index serves
        (specifier,) = Requirement(line).specifier
        assert specifier.operator == "==" and Version(specifier.version).local is None, line
    assert "://" not in text, text
    example = pd.DataFrame(json.loads((export / "input_example.json").read_text()))
    assert len(load_model(export / "model").predict(example)) == len(example)
