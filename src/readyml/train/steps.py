"""The standard pipeline steps: load → privacy → profile → validate → split → review → tune →
train → staleness → evaluate → gate → register → export (privacy, review, tune and staleness
live in their own modules).

Each step is a small object with declared inputs and outputs (see
:class:`readyml.train.pipeline.Step`). Steps read the project spec through ``ctx`` and return
plain values; the pipeline fingerprints, caches and records them.
"""

from __future__ import annotations

import glob
import json
import re
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from readyml import _project_imports as project_imports
from readyml.config import Project, ProjectSpec
from readyml.data import (
    Schema,
    infer_schema,
    load_schema,
    mostly_numeric_text,
    profile_frame,
    validate_frame,
    write_schema,
)
from readyml.data.io import read_table
from readyml.errors import AnomalyError, ConfigError, DataError, FlavorError, RegistryError
from readyml.flavors import ModelAdapter, build_model
from readyml.registry.lineage import LABEL_KEY
from readyml.registry.records import ModelVersion
from readyml.registry.registry import Registry, status_set_by_person
from readyml.registry.requirements import (
    flavor_extras,
    model_flavor,
    model_libraries,
    requirements_text,
    version_pins,
)
from readyml.train.features import (
    check_columns,
    check_task,
    checked_spec,
    resolve_features,
    resolve_task,
    time_values,
)
from readyml.train.fingerprint import hash_callable_source, hash_file, package_versions
from readyml.train.pipeline import Kind, RunContext, StepResult
from readyml.train.production_data import (
    blend_production,
    production_mask,
    production_params,
    production_schema,
    sample_weights,
    without_reserved,
)
from readyml.train.seeds import set_seeds
from readyml.types import JSON, Evidence

SCHEMA_FILE = "schema.yaml"
INPUT_EXAMPLE_ROWS = 5


def data_files(spec: ProjectSpec, root: Path) -> list[Path]:
    """The files a file/glob source names, relative to the project root."""
    pattern = spec.data.source
    path = Path(pattern) if Path(pattern).is_absolute() else root / pattern
    if any(ch in pattern for ch in "*?["):
        matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
        if not matches:
            raise DataError(f"data.source: no file matches '{pattern}'")
        return matches
    if not path.exists():
        raise DataError(f"data.source: file '{pattern}' not found (looked in {root})")
    if path.is_dir():
        raise DataError(
            f"data.source: expected a file or a glob (e.g. '{pattern}/*.parquet'), found the "
            f"folder '{pattern}'"
        )
    return [path]


def import_callable(target: str, *, root: Path, key: str) -> Any:
    """Import ``module:function`` with the project root on ``sys.path``.

    Raises:
        ConfigError: The module cannot be imported (one line naming the file and line of a
            syntax error or of an exception at its top level), or has no such function.
    """
    module_name, _, attr = target.partition(":")
    module = project_imports.import_module(root, target, key=key)
    function = getattr(module, attr, None)
    if not callable(function):
        raise ConfigError(f"{key}: module '{module_name}' has no function '{attr}'")
    return function


def _as_pandas(obj: Any, *, key: str) -> pd.DataFrame:
    frame: Any = obj
    to_pandas = getattr(obj, "to_pandas", None)  # pyarrow.Table, polars.DataFrame
    if not isinstance(obj, pd.DataFrame) and callable(to_pandas):
        frame = to_pandas()
    if not isinstance(frame, pd.DataFrame):
        raise DataError(
            f"{key}: expected the loader to return a data frame, found {type(obj).__name__}"
        )
    return _checked_columns(frame, key=key)


def _checked_columns(frame: pd.DataFrame, *, key: str) -> pd.DataFrame:
    """A loader's frame, unless its column names would break a later step (one line)."""
    if frame.columns.empty:
        raise DataError(f"{key}: expected the loader to return columns, found a frame of none")
    names = list(frame.columns)
    odd = next((name for name in names if not isinstance(name, str)), None)
    if odd is not None:
        raise DataError(
            f"{key}: expected text column names, found {odd!r} ({type(odd).__name__}); "
            "name the loader's columns"
        )
    twice = next((name for index, name in enumerate(names) if name in names[:index]), None)
    if twice is not None:
        raise DataError(f"{key}: expected each column name once, found {twice!r} twice")
    return frame


def _xy(frame: pd.DataFrame, names: list[str], label: str) -> tuple[pd.DataFrame, np.ndarray]:
    return frame[names], frame[label].to_numpy()


class LoadData:
    """Read the data source; check the named columns, the label and the task against it."""

    name: ClassVar[str] = "load"
    version: ClassVar[int] = 3
    inputs: ClassVar[tuple[str, ...]] = ()
    outputs: ClassVar[dict[str, Kind]] = {"data": "frame", "production": "json"}
    cacheable: ClassVar[bool] = True

    def params(self, ctx: RunContext) -> JSON:
        spec, root = ctx.project.spec, ctx.project.root
        production = production_params(ctx.project)
        checks = checked_spec(spec)  # a spec edit reruns the checks, not a cached success
        if spec.data.is_loader:
            # A loader reads the outside world, so its output is never reused from a cache;
            # steps after it are still skipped when the frame it returns is unchanged.
            return {
                "loader": spec.data.source,
                "run": ctx.run_id,
                "production": production,
                "checks": checks,
            }
        files = data_files(spec, root)
        return {
            "files": {
                str(p.relative_to(root) if p.is_relative_to(root) else p): hash_file(p)
                for p in files
            },
            "production": production,
            "checks": checks,
            # Only when declared, so that the fingerprints of existing projects stay put.
            **({"format": spec.data.format} if spec.data.format != "auto" else {}),
        }

    def run(self, ctx: RunContext, inputs: dict[str, Any]) -> StepResult:
        spec, root = ctx.project.spec, ctx.project.root
        if spec.data.is_loader:
            loader = import_callable(spec.data.source, root=root, key="data.source")
            frame = _as_pandas(loader(), key="data.source")
            origin = spec.data.source
        else:
            files = data_files(spec, root)
            frame = pd.concat(
                [read_table(p, format=spec.data.format) for p in files], ignore_index=True
            )
            origin = f"{len(files)} file(s)"
        check_columns(frame, spec)
        if len(frame) == 0:
            raise DataError("data.source: the data has 0 rows")
        if frame[spec.label].isna().any():
            missing = int(frame[spec.label].isna().sum())
            raise DataError(
                f"label: column '{spec.label}' has {missing} missing value(s) of {len(frame)}"
            )
        columns = frame.shape[1]
        frame, production = blend_production(frame, ctx.project)
        check_task(frame, spec)
        if production:
            origin += f" + {production['rows']:,} production examples"
        return StepResult(
            {"data": frame, "production": production},
            f"{len(frame):,} rows × {columns} columns from {origin}",
        )


class ProfileData:
    """Profile every column (counts, ranges, sketches); the reference for drift and skew."""

    name: ClassVar[str] = "profile"
    version: ClassVar[int] = 1
    inputs: ClassVar[tuple[str, ...]] = ("data",)
    outputs: ClassVar[dict[str, Kind]] = {"profile": "json"}
    cacheable: ClassVar[bool] = True

    def params(self, ctx: RunContext) -> JSON:
        return {}

    def run(self, ctx: RunContext, inputs: dict[str, Any]) -> StepResult:
        profile = profile_frame(without_reserved(inputs["data"]))
        return StepResult(
            {"profile": profile.to_dict()}, f"{len(profile.columns)} columns profiled"
        )


def _schema_for(ctx: RunContext, frame: pd.DataFrame) -> Schema:
    """The checked-in schema, or the one inferred from ``frame`` when there is none yet."""
    path = ctx.project.root / SCHEMA_FILE
    if path.exists():
        return load_schema(path)
    return infer_schema(frame, label=ctx.project.spec.label)


class ValidateData:
    """Validate the data against the checked-in schema; fail the run on error anomalies.

    Without a schema file, one is inferred from this data and written for review.
    ML Test Score data-1: feature expectations are captured in a schema.
    """

    name: ClassVar[str] = "validate"
    version: ClassVar[int] = 1
    inputs: ClassVar[tuple[str, ...]] = ("data",)
    outputs: ClassVar[dict[str, Kind]] = {"validation": "json"}
    cacheable: ClassVar[bool] = True

    def params(self, ctx: RunContext) -> JSON:
        # The schema's content, not its file, so that writing the inferred schema on the
        # first run does not make the second run look changed.
        frame = without_reserved(ctx.values["data"].obj)
        return {"schema": _schema_for(ctx, frame).to_dict()}

    def run(self, ctx: RunContext, inputs: dict[str, Any]) -> StepResult:
        spec, data = ctx.project.spec, inputs["data"]
        # Production examples carry only what the server saw (features) and their label.
        production = production_mask(data)
        frame = without_reserved(data)[~production]
        path = ctx.project.root / SCHEMA_FILE
        wrote = ""
        schema = _schema_for(ctx, frame)
        if not path.exists():
            schema = write_schema(schema, path)
            wrote = f"; wrote {SCHEMA_FILE} (review and check it in)"
            wrote += "".join(f"; {note}" for note in mostly_numeric_text(frame, schema))
        report = validate_frame(frame, schema=schema)
        if production.any():
            examples = without_reserved(data)[production]
            examples = examples[[c for c in examples.columns if examples[c].notna().any()]]
            checked = validate_frame(examples, schema=production_schema(schema, examples))
            report.anomalies.extend(
                replace(a, found=f"{a.found} (production examples)") for a in checked.anomalies
            )
        errors = report.errors
        problem = f"data violates {SCHEMA_FILE}: {report.problem}" if errors else ""
        ctx.record(
            Evidence(
                test_id="data-1",
                passed=report.ok,
                automated=True,
                project=spec.name,
                run_id=ctx.run_id,
                details={
                    "schema": SCHEMA_FILE,
                    "features": len(schema.features),
                    "anomalies": len(report.anomalies),
                    "errors": len(errors),
                    **({"reason": problem} if problem else {}),
                },
                artifact=SCHEMA_FILE,  # relative to the project, as every step links it
            )
        )
        if problem:
            raise AnomalyError(problem)
        warnings = len(report.anomalies)
        return StepResult(
            {"validation": report.to_dict()},
            f"{len(schema.features)} features valid, {warnings} warning(s){wrote}",
        )


class SplitData:
    """Split rows into training and validation sets, at random with a seed or by time."""

    name: ClassVar[str] = "split"
    version: ClassVar[int] = 2  # 2: undated production examples train
    inputs: ClassVar[tuple[str, ...]] = ("data",)
    outputs: ClassVar[dict[str, Kind]] = {"train": "frame", "valid": "frame"}
    cacheable: ClassVar[bool] = True

    def params(self, ctx: RunContext) -> JSON:
        spec = ctx.project.spec
        return {
            "split": spec.split.model_dump(mode="json"),
            "seed": spec.seed,
            "label": spec.label,
            "task": spec.task,
        }

    def run(self, ctx: RunContext, inputs: dict[str, Any]) -> StepResult:
        spec, frame = ctx.project.spec, inputs["data"]
        split = spec.split
        if split.method == "time" and split.time_column and split.cutoff is not None:
            column = split.time_column
            times = time_values(frame, column)
            cutoff = pd.Timestamp(split.cutoff)
            if times.dt.tz is not None and cutoff.tz is None:
                cutoff = cutoff.tz_localize(times.dt.tz)
            # Production examples carry only what the server saw: without a time they are
            # training rows, folded in to be learned from.
            undated = (times.isna() & production_mask(frame)).to_numpy()
            is_train = (times < cutoff).to_numpy() | undated
            train, valid = frame[is_train], frame[~is_train]
            how = f"by {column} at {cutoff.date()}"
            if undated.any():
                how += f" ({int(undated.sum()):,} undated production examples in training)"
        else:
            task = resolve_task(frame[spec.label], spec.task)
            labels = frame[spec.label]
            stratify = (
                labels
                if task == "classification" and split.stratify and labels.value_counts().min() >= 2
                else None
            )
            train, valid = train_test_split(
                frame, test_size=split.test_size, random_state=spec.seed, stratify=stratify
            )
            how = f"at random (seed {spec.seed}{', stratified' if stratify is not None else ''})"
        if len(train) == 0 or len(valid) == 0:
            raise DataError(
                f"split: {how} leaves {len(train)} training and {len(valid)} validation rows; "
                "both must be non-empty"
            )
        train, valid = train.reset_index(drop=True), valid.reset_index(drop=True)
        return StepResult(
            {"train": train, "valid": valid}, f"{len(train):,} train / {len(valid):,} valid {how}"
        )


class TrainModel:
    """Fit the model the spec declares, with every seed set."""

    name: ClassVar[str] = "train"
    version: ClassVar[int] = 1
    inputs: ClassVar[tuple[str, ...]] = ("train", "valid")
    outputs: ClassVar[dict[str, Kind]] = {"model": "model"}
    cacheable: ClassVar[bool] = True

    def params(self, ctx: RunContext) -> JSON:
        spec = ctx.project.spec
        code = spec.model.entry_point or (
            spec.model.estimator if spec.model.flavor == "torch" else None
        )
        return {
            "model": spec.model.model_dump(mode="json"),
            "features": [f.model_dump(mode="json") for f in spec.feature_specs() or []],
            "exclude": spec.exclude,
            "label": spec.label,
            "task": spec.task,
            "seed": spec.seed,
            "code": hash_callable_source(code, root=ctx.project.root)
            if code and ":" in code
            else None,
            "packages": package_versions(),
        }

    def run(self, ctx: RunContext, inputs: dict[str, Any]) -> StepResult:
        model, seconds = fit_model(ctx.project, inputs["train"], inputs["valid"])
        return StepResult(
            {"model": model}, f"{type_name(ctx.project.spec)} fitted in {seconds:.2f} s"
        )


def type_name(spec: ProjectSpec) -> str:
    """Short name of the estimator or entry point."""
    target = spec.model.estimator or spec.model.entry_point or "?"
    return target.replace(":", ".").rsplit(".", 1)[-1]


def fit_model(
    project: Project, train: pd.DataFrame, valid: pd.DataFrame
) -> tuple[ModelAdapter, float]:
    """Build and fit the declared model on ``train`` (``valid`` is for early stopping)."""
    spec = project.spec
    for target in (spec.model.entry_point, spec.model.estimator):
        if target and ":" in target:  # entry points and factories live in the project
            project_imports.prepare(project.root, target)
    features = resolve_features(train, spec)
    task = resolve_task(train[spec.label], spec.task)
    set_seeds(spec.seed)
    try:
        model = build_model(
            flavor=spec.model.flavor,
            estimator=spec.model.estimator,
            params=dict(spec.model.params),
            entry_point=spec.model.entry_point,
            task=task,
            categorical=features.categorical,
            numeric=features.numeric,
            seed=spec.seed,
            trusted_types=project.trusted_types(),
        )
    except FlavorError as exc:
        raise ConfigError(str(exc)) from exc
    X, y = _xy(train, features.names, spec.label)
    X_valid, y_valid = _xy(valid, features.names, spec.label)
    started = time.perf_counter()
    weights = sample_weights(train)
    if weights is None:
        model.fit(X, y, X_valid=X_valid, y_valid=y_valid)
    else:
        try:
            model.fit(X, y, X_valid=X_valid, y_valid=y_valid, sample_weight=weights)
        except FlavorError as exc:
            raise ConfigError(f"data.production.weight: {exc}") from exc
    return model, time.perf_counter() - started


def predictions(model: ModelAdapter, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """Predicted labels or values, and class probabilities when the model has them."""
    y_pred = model.predict(X)
    proba = model.predict_proba(X) if model.task == "classification" and model.has_proba else None
    return y_pred, proba


class EvaluateModel:
    """Score the model on the validation split: metrics with a bootstrap interval, slices,
    baselines, importance, feature cost, fairness; merged with staleness and spec review.

    Records ML Test Score evidence model-5 (baselines), data-2 (importance), data-3 (cost).
    """

    name: ClassVar[str] = "evaluate"
    version: ClassVar[int] = 2
    inputs: ClassVar[tuple[str, ...]] = ("model", "train", "valid", "staleness", "review")
    outputs: ClassVar[dict[str, Kind]] = {"metrics": "json"}
    cacheable: ClassVar[bool] = True

    def params(self, ctx: RunContext) -> JSON:
        spec = ctx.project.spec
        return {
            "metrics": spec.metrics.model_dump(mode="json"),
            "slices": [s.model_dump(mode="json") for s in spec.slices],
            "min_slice_size": spec.gates.min_slice_size,
            "fairness": spec.fairness.model_dump(mode="json"),
            "importance": spec.importance.model_dump(mode="json"),
            "label": spec.label,
            "seed": spec.seed,
            "train": TrainModel().params(ctx),  # drop-column importance refits the model
            "production": _production_evaluation(ctx),
        }

    def run(self, ctx: RunContext, inputs: dict[str, Any]) -> StepResult:
        from readyml.train.evaluation_steps import evaluate_step

        return evaluate_step(ctx, inputs)


def _production_evaluation(ctx: RunContext) -> JSON | None:
    """What the production-window report depends on besides the data: window and champion."""
    production = ctx.project.spec.data.production
    if production is None or not production.enabled:
        return None
    try:
        champion = ctx.registry.get(f"{ctx.project.spec.name}@champion").version
    except RegistryError:
        champion = None
    return {"window": production.window, "champion": champion}


class GateModel:
    """Bless or veto the candidate: absolute rules, the champion (overall and per slice),
    baselines, latency, size and fairness. Records evidence infra-4, model-6 and model-7.
    """

    name: ClassVar[str] = "gate"
    version: ClassVar[int] = 4  # 4: a slice rule that judged no slice vetoes
    inputs: ClassVar[tuple[str, ...]] = ("metrics", "valid")
    outputs: ClassVar[dict[str, Kind]] = {"gate": "json"}
    cacheable: ClassVar[bool] = True

    def params(self, ctx: RunContext) -> JSON:
        from readyml.train.evaluation_steps import champion_of

        champion = champion_of(ctx.registry, ctx.project.spec.name)
        model = ctx.values.get("model")
        fingerprint = None if model is None else model.fingerprint
        # The decision depends on the champion, so another champion reruns the gate; the
        # candidate itself as champion is not compared with itself, like no champion.
        compared = champion is not None and champion.model_fingerprint != fingerprint
        return {
            "gates": ctx.project.spec.gates.model_dump(mode="json"),
            "champion": [champion.version, champion.model_fingerprint] if compared else None,
            "model": fingerprint,
        }

    def run(self, ctx: RunContext, inputs: dict[str, Any]) -> StepResult:
        from readyml.train.evaluation_steps import gate_step

        return gate_step(ctx, inputs)


class RegisterModel:
    """Register the candidate as a new version, unless this exact model is registered already.

    "This exact model" is one with the same content fingerprint (its saved files, see
    :func:`~readyml.train.fingerprint.hash_model_files`): a retrained model that differs is a
    new version, whatever produced it. The check is repeated under the registry's lock, so
    two runs registering one model at once make one version.
    """

    name: ClassVar[str] = "register"
    version: ClassVar[int] = 1
    inputs: ClassVar[tuple[str, ...]] = ("model", "metrics", "gate", "train", "data")
    outputs: ClassVar[dict[str, Kind]] = {"registered": "json"}
    cacheable: ClassVar[bool] = False

    def params(self, ctx: RunContext) -> JSON:
        return {"name": ctx.project.spec.name}

    def run(self, ctx: RunContext, inputs: dict[str, Any]) -> StepResult:
        spec, registry = ctx.project.spec, ctx.registry
        fingerprints = ctx.fingerprints
        model_fp = ctx.values["model"].fingerprint
        # A quick look first, to skip uploading the files of a model registered already.
        existing = registry.find_by_fingerprint(spec.name, model_fp)
        gate = inputs["gate"]
        if existing is not None:
            return _registered_before(registry, existing, gate)
        model: ModelAdapter = inputs["model"]
        names = [c["name"] for c in model.signature()["inputs"]]
        example = json.loads(
            inputs["train"][names]
            .head(INPUT_EXAMPLE_ROWS)
            .to_json(orient="records", date_format="iso")
        )
        try:
            champion = registry.get(f"{spec.name}@champion").version
        except RegistryError:
            champion = None
        lineage = {
            "run_id": ctx.run_id,
            "fingerprints": {
                **fingerprints,
                "data": ctx.values["data"].fingerprint,
                "model": model_fp,
            },
            "parent_version": champion,
            "spec_file": str(ctx.project.spec_path.name),
            LABEL_KEY: spec.label,
        }
        production = ctx.values["production"].obj if "production" in ctx.values else None
        if production:
            lineage["production"] = production
        with tempfile.TemporaryDirectory() as tmp:
            files: dict[str, Path] = {}
            for relname, data in ctx.model_files("model").items():
                path = Path(tmp) / relname
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                files[relname] = path
            version = registry.register(
                spec.name,
                files=files,
                model_fingerprint=model_fp,
                lineage=lineage,
                metrics=inputs["metrics"],
                signature=model.signature(),
                input_example=example,
                tags={"flavor": model.flavor, "task": model.task},
                status=gate["decision"],
                gate=gate,
                run_id=ctx.run_id,
                parent_version=champion,
                if_new_fingerprint=True,
            )
        if version.run_id != ctx.run_id:  # another run registered this model meanwhile
            return _registered_before(registry, version, gate)
        return StepResult(
            {"registered": {"name": spec.name, "version": version.version, "new": True}},
            f"{spec.name}:{version.version} ({version.status})",
        )


def _registered_before(registry: Registry, existing: ModelVersion, gate: JSON) -> StepResult:
    """The register step's result for a model that ``existing`` holds already."""
    return StepResult(
        {"registered": {"name": existing.name, "version": existing.version, "new": False}},
        _follow_gate(registry, existing, gate),
        skipped=True,
    )


def _follow_gate(registry: Registry, existing: ModelVersion, gate: JSON) -> str:
    """Apply this run's gate to a model registered before, where it may; say what happened.

    Gate rules changed since the gate's own veto (a typo fixed): the same model blessed now
    is blessed in the registry too. Nothing else changes: a status a person set (veto,
    archive, restore) stays, and a veto of a blessed version leaves it blessed, as it may be
    serving and demoting it is a person's call.
    """
    message = f"this model is already {existing.ref}"
    decision = gate["decision"]
    change = status_set_by_person(existing)
    if change is None and existing.status == "vetoed" and decision == "blessed":
        try:
            registry.set_status(
                existing.name, existing.version, "blessed", gate=gate, if_unchanged=existing
            )
        except RegistryError as exc:  # a person changed it since it was read: theirs stands
            return f"{message}; this run's gate blessed it, but {exc}"
        return f"{message}, vetoed before and blessed by this run's gate"
    status: str = existing.status
    if change is not None:
        status = f"{status} by {change.get('by')}: {change.get('reason')}"
    if existing.status == decision:
        return f"{message} ({status})"
    kept = "a status set by a person stays" if change else "registry status left unchanged"
    return f"{message} ({status}); this run's gate {decision} it, {kept}"


class ExportModel:
    """Write the registered version as a portable folder.

    The folder holds the model files, ``model.json`` (the version's metadata), the input
    example and ``requirements.txt``: what loading the model with readyml's flavors needs
    (``readyml`` with the flavor's extra, its closure and the model's own libraries), pinned
    to the training environment where it recorded them, by the rule ``readyml build`` uses
    (:func:`~readyml.registry.requirements.version_pins`).
    """

    name: ClassVar[str] = "export"
    version: ClassVar[int] = 1
    inputs: ClassVar[tuple[str, ...]] = ("registered",)
    outputs: ClassVar[dict[str, Kind]] = {"export": "json"}
    cacheable: ClassVar[bool] = False

    def params(self, ctx: RunContext) -> JSON:
        return {}

    def run(self, ctx: RunContext, inputs: dict[str, Any]) -> StepResult:
        registered = inputs["registered"]
        out = ctx.project.workspace / "exports" / f"{registered['name']}-v{registered['version']}"
        version = ctx.registry.get(f"{registered['name']}:{registered['version']}")
        if _exported(out, version):
            return StepResult(
                {"export": {"path": str(out)}}, f"already exported to {out}", skipped=True
            )
        staging = out.with_name(out.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        ctx.registry.download(version, staging / "model")
        flavor = model_flavor(ctx.registry, version)
        pins = version_pins(version, model_libraries(flavor), flavor_extras(flavor))
        (staging / "requirements.txt").write_text(requirements_text(pins))
        (staging / "input_example.json").write_text(json.dumps(version.input_example, indent=2))
        (staging / "model.json").write_text(json.dumps(version.to_dict(), indent=2, default=str))
        shutil.rmtree(out, ignore_errors=True)  # a damaged export is replaced whole
        staging.rename(out)  # the folder appears complete or not at all
        return StepResult(
            {"export": {"path": str(out)}}, f"exported to {out.relative_to(ctx.project.root)}"
        )


def _exported(out: Path, version: ModelVersion) -> bool:
    """Whether ``out`` holds a whole export of ``version``: its metadata, requirements pinning
    readyml and every model file at its registered size (a file deleted or cut short by hand,
    or requirements written before they pinned readyml, is exported again)."""
    if not (out / "model.json").is_file() or not _pins_readyml(out / "requirements.txt"):
        return False
    for artifact in version.artifacts:
        path = out / "model" / artifact.name
        if not path.is_file() or path.stat().st_size != artifact.size:
            return False
    return True


def _pins_readyml(path: Path) -> bool:
    """Whether the requirements file ``path`` pins readyml, as exports' do since they are pinned
    by ``readyml build``'s rule (older ones pinned the whole training environment but it)."""
    if not path.is_file():
        return False
    lines = path.read_text().splitlines()
    return any(re.match(r"readyml(\[[^\]]*\])?==", line) for line in lines)


def default_steps() -> list[Any]:
    """The standard pipeline, in order."""
    from readyml.train.evaluation_steps import MeasureStaleness, ReviewSpec, TuneModel
    from readyml.train.privacy_steps import PrivacyControls

    return [
        LoadData(),
        PrivacyControls(),
        ProfileData(),
        ValidateData(),
        SplitData(),
        ReviewSpec(),
        TuneModel(),
        TrainModel(),
        MeasureStaleness(),
        EvaluateModel(),
        GateModel(),
        RegisterModel(),
        ExportModel(),
    ]
