"""Probes that exercise a project end to end in a throwaway copy (Data 6, Infra 2, Infra 3).

* **Infra 3**, the full pipeline integration test: copy the project to a temporary folder,
  replace its data by a seeded sample of :attr:`ScoreSpec.sample_rows` rows, and run the
  whole pipeline there against a temporary registry.
* **Data 6**, new features can be added quickly: the same, plus one new feature derived
  from an existing numeric column (added to the data, to the declared feature list if there
  is one, and to the copied ``schema.yaml``), with no code change; it passes when the run
  succeeds and the new version's signature includes the new feature.
* **Infra 2**, the model specification is unit tested: build the model from the spec, fit it
  on a small sample, and check the answers: one prediction per row, labels from the
  training labels, probabilities that sum to one, and identical predictions after a
  save/load round trip.

The real registry receives only the evidence; models trained by probes stay in the copy.
Running the pipeline belongs to the training system, which sits beside this package, so the
caller passes it in (``readyml check`` passes :func:`readyml.train.run_project` and
:func:`readyml.train.steps.fit_model`).
"""

from __future__ import annotations

import glob
import importlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import yaml

from readyml import _project_imports as project_imports
from readyml.config import SPEC_FILE, WORKSPACE_DIR, Project
from readyml.data import infer_schema, load_schema, read_table, write_schema
from readyml.errors import ConfigError, DataError, ReadymlError
from readyml.flavors import ModelAdapter, load_model
from readyml.registry import Registry, open_registry
from readyml.types import JSON

SCHEMA_FILE = "schema.yaml"
PROBE_FEATURE = "readyml_probe_feature"
SAMPLE_FILE = "readyml_sample.csv"
# Folders never copied into a probe's project copy.
_SKIP_DIRS = {WORKSPACE_DIR, ".git", ".venv", "__pycache__", ".pytest_cache", "node_modules"}
# Largest project file copied into a probe (data is resampled, not copied), in bytes.
_MAX_COPY_BYTES = 20_000_000


class RunOutcome(Protocol):
    """What a pipeline run reports back (:class:`readyml.train.RunResult` fits)."""

    @property
    def status(self) -> str: ...

    @property
    def error(self) -> Exception | None: ...

    @property
    def run_id(self) -> str: ...


class PipelineRunner(Protocol):
    """Runs a project's pipeline (:func:`readyml.train.run_project` fits)."""

    def __call__(self, project: Project, *, registry: Registry) -> RunOutcome: ...


class ModelFitter(Protocol):
    """Fits the spec's model (:func:`readyml.train.steps.fit_model` fits)."""

    def __call__(
        self, project: Project, train: pd.DataFrame, valid: pd.DataFrame
    ) -> tuple[ModelAdapter, float]: ...


def load_project_data(project: Project) -> pd.DataFrame:
    """The project's data, read the way the pipeline reads it (files, glob or loader).

    Raises:
        DataError: No file matches, or the loader does not return a frame.
        ConfigError: The loader cannot be imported.
    """
    spec, root = project.spec, project.root
    source = spec.data.source
    if spec.data.is_loader:
        module_name, _, attr = source.partition(":")
        project_imports.prepare(root, source)
        try:
            loader = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"data.source: cannot import {source!r} ({exc})") from exc
        frame = loader()
        to_pandas = getattr(frame, "to_pandas", None)
        if callable(to_pandas):
            frame = to_pandas()
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"data.source: {source!r} returned {type(frame).__name__}, not a frame")
        return frame
    path = Path(source) if Path(source).is_absolute() else root / source
    files = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
    if not files:
        raise DataError(f"data.source: no file matches '{source}'")
    return pd.concat([read_table(p, format=spec.data.format) for p in files], ignore_index=True)


def sample_frame(frame: pd.DataFrame, rows: int, label: str, seed: int) -> pd.DataFrame:
    """Up to ``rows`` rows, keeping at least two of each label value where possible."""
    if len(frame) <= rows:
        return frame.reset_index(drop=True)
    sampled = frame.sample(n=rows, random_state=seed)
    keep = [sampled]
    if label in frame.columns and not pd.api.types.is_float_dtype(frame[label]):
        for _value, group in frame.groupby(label, dropna=True):
            if group.index.isin(sampled.index).sum() < 2:
                keep.append(group.head(2))
    combined = pd.concat(keep)
    return combined[~combined.index.duplicated()].reset_index(drop=True)


def _copy_project(project: Project, target: Path) -> None:
    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = {n for n in names if n in _SKIP_DIRS}
        for name in names:
            path = Path(directory) / name
            if path.is_file() and path.stat().st_size > _MAX_COPY_BYTES:
                skipped.add(name)
        return skipped

    shutil.copytree(project.root, target, ignore=ignore, dirs_exist_ok=True)


@contextmanager
def project_copy(
    project: Project, frame: pd.DataFrame, *, extra_feature: str | None = None
) -> Iterator[tuple[Project, Registry]]:
    """A copy of the project on ``frame`` (CSV), with its own registry; removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="readyml-probe-") as tmp:
        root = Path(tmp) / "project"
        _copy_project(project, root)
        frame.to_csv(root / SAMPLE_FILE, index=False)
        raw: JSON = yaml.safe_load((project.spec_path).read_text(encoding="utf-8"))
        raw["data"] = {"source": SAMPLE_FILE, "format": "csv"}
        if extra_feature is not None and raw.get("features") is not None:
            raw["features"] = [*raw["features"], extra_feature]
        (root / SPEC_FILE).write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
        if extra_feature is not None and (root / SCHEMA_FILE).exists():
            # The copied schema gains the new feature, as a person would add it.
            inferred = infer_schema(frame[[extra_feature]])
            schema = load_schema(root / SCHEMA_FILE)
            schema.features.extend(f for f in inferred.features if schema.feature(f.name) is None)
            write_schema(schema, root / SCHEMA_FILE, overwrite=True)
        copy = Project.load(root)
        # Explicit URLs: READYML_STORE_URL must not send a probe into the shared registry.
        workspace = root / WORKSPACE_DIR
        registry = open_registry(
            workspace,
            store_url=f"sqlite:///{workspace / 'readyml.db'}",
            artifacts_url=str(workspace / "artifacts"),
        )
        try:
            yield copy, registry
        finally:
            registry.store.close()


def derived_feature(frame: pd.DataFrame, label: str, exclude: list[str]) -> tuple[str, pd.Series]:
    """A new numeric feature derived from the first numeric feature column.

    Raises:
        DataError: The data has no numeric feature to derive from.
    """
    for column in frame.columns:
        name = str(column)
        if name in (label, *exclude) or not pd.api.types.is_numeric_dtype(frame[column]):
            continue
        if pd.api.types.is_bool_dtype(frame[column]):
            continue
        values = frame[column].astype("float64")
        return name, (values - values.mean()) ** 2
    raise DataError("new-feature probe: the data has no numeric feature to derive one from")


def _failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def probe_pipeline(project: Project, runner: PipelineRunner) -> tuple[bool, JSON]:
    """Infra 3: run the whole pipeline on a sample in a copy; return (passed, details)."""
    spec = project.spec
    started = time.monotonic()
    frame = sample_frame(load_project_data(project), spec.score.sample_rows, spec.label, spec.seed)
    with project_copy(project, frame) as (copy, registry):
        try:
            outcome = runner(copy, registry=registry)
        except ReadymlError as exc:
            return False, {"rows": len(frame), "error": _failure(exc)}
        steps = [s.name for s in registry.store.steps_for_run(outcome.run_id)]
    return outcome.error is None, {
        "rows": len(frame),
        "status": outcome.status,
        "steps": steps,
        "error": None if outcome.error is None else str(outcome.error),
        "duration_s": round(time.monotonic() - started, 3),
    }


def probe_new_feature(project: Project, runner: PipelineRunner) -> tuple[bool, JSON]:
    """Data 6: add a derived feature in a copy and train it end to end with no code change."""
    spec = project.spec
    started = time.monotonic()
    frame = sample_frame(load_project_data(project), spec.score.sample_rows, spec.label, spec.seed)
    source, values = derived_feature(frame, spec.label, list(spec.exclude))
    frame = frame.assign(**{PROBE_FEATURE: values})
    details: JSON = {"feature": PROBE_FEATURE, "derived_from": source, "rows": len(frame)}
    with project_copy(project, frame, extra_feature=PROBE_FEATURE) as (copy, registry):
        try:
            outcome = runner(copy, registry=registry)
        except ReadymlError as exc:
            return False, {**details, "error": _failure(exc)}
        details["status"] = outcome.status
        if outcome.error is not None:
            return False, {**details, "error": str(outcome.error)}
        versions = registry.list_versions(copy.spec.name)
        inputs = [c["name"] for c in versions[-1].signature.get("inputs", [])] if versions else []
    details["in_signature"] = PROBE_FEATURE in inputs
    details["duration_s"] = round(time.monotonic() - started, 3)
    return bool(details["in_signature"]), details


def _check(condition: bool, message: str, problems: list[str]) -> None:
    if not condition:
        problems.append(message)


def unit_test_model_spec(
    project: Project, fit: ModelFitter, *, rows: int = 200
) -> tuple[bool, JSON]:
    """Infra 2: build and fit the spec's model on a small sample and check its behaviour."""
    spec = project.spec
    frame = sample_frame(load_project_data(project), rows, spec.label, spec.seed)
    half = max(1, len(frame) // 2)
    train, valid = (
        frame.iloc[:half].reset_index(drop=True),
        frame.iloc[half:].reset_index(drop=True),
    )
    if len(valid) == 0:
        valid = train
    problems: list[str] = []
    try:
        model, seconds = fit(project, train, valid)
    except ReadymlError as exc:
        return False, {"rows": len(frame), "error": _failure(exc)}
    names = [c["name"] for c in model.signature().get("inputs", [])]
    X = valid[names]
    predicted = np.asarray(model.predict(X))
    _check(len(predicted) == len(X), f"{len(predicted)} predictions for {len(X)} rows", problems)
    checks = ["builds and fits from the spec", "one prediction per row"]
    if model.task == "classification":
        known = set(train[spec.label].tolist())
        unknown = sorted({str(v) for v in predicted.tolist()} - {str(v) for v in known})
        _check(not unknown, f"predicted labels never seen in training: {unknown[:5]}", problems)
        checks.append("labels come from the training labels")
        if model.has_proba:
            proba = np.asarray(model.predict_proba(X))
            _check(
                bool(np.allclose(proba.sum(axis=1), 1.0, atol=1e-6)),
                "class probabilities do not sum to 1",
                problems,
            )
            checks.append("probabilities sum to 1")
    else:
        _check(
            bool(np.all(np.isfinite(predicted.astype(float)))), "non-finite predictions", problems
        )
        checks.append("predictions are finite")
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp))
        reloaded = load_model(Path(tmp), trusted_types=project.trusted_types())
        again = np.asarray(reloaded.predict(X))
    _check(
        bool(np.array_equal(predicted.astype(str), again.astype(str))),
        "predictions change after a save/load round trip",
        problems,
    )
    checks.append("save/load round trip predicts identically")
    details: dict[str, Any] = {
        "rows": len(frame),
        "fit_s": round(seconds, 3),
        "checks": checks,
        "problems": problems,
    }
    return not problems, details
