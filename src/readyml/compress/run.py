"""Compress a registered version: every result is a new version with lineage, gated and measured.

:func:`compress_version` takes a parent version, the splits it was trained and validated on,
and the methods asked for (:class:`Methods`). For each result it

1. measures parity with the parent on the validation split (an export must stay within
   :data:`~readyml.compress.parity.EXPORT_TOLERANCE` or it fails);
2. measures size on disk, parameters and single-thread latency at batch 1 and 64;
3. evaluates quality overall, per slice and per sensitive group, and runs every rule of the
   project's model gate (:mod:`readyml.compress.gating`) with the parent in the champion's
   seat: a ``champion`` rule allowing ``max_quality_loss`` (absolute, on the primary metric,
   overall and per slice);
4. registers the result as a new version of the same model, with ``parent_version`` and the
   method in its lineage, and the gate's decision as its status (``vetoed`` when it lost too
   much). A result whose bytes a version made from the same parent already holds is not
   registered nor judged again: the report shows that version with its registry status.

The parent's row and every result's row form a :class:`CompressionReport`, written as JSON and
as a self-contained HTML table.
"""

from __future__ import annotations

import functools
import hashlib
import math
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from readyml.compress import parity as parity_checks
from readyml.compress.distill import StudentSpec, distill
from readyml.compress.export import export_onnx, to_ort
from readyml.compress.gating import gate_spec, refit_baselines, serving, with_baselines
from readyml.compress.measure import latency_ms, parameters, size_bytes
from readyml.compress.quantize import CALIBRATION_ROWS, Mode, quantize_onnx, quantized_nodes
from readyml.compress.report import CompressionReport, Row
from readyml.config import FairnessSpec, GatesSpec, SliceSpec
from readyml.errors import ConfigError, FlavorError
from readyml.evaluate import compute_metrics, primary_metric
from readyml.evaluate.fairness import evaluate_fairness
from readyml.evaluate.gate import Decision, gate
from readyml.evaluate.slices import evaluate_slices
from readyml.flavors import ModelAdapter, load_model
from readyml.flavors.onnx import OnnxModel
from readyml.registry import ModelVersion, Registry
from readyml.registry.lineage import COMPRESSION_KEY, LABEL_KEY
from readyml.types import JSON

# Default largest loss of the primary metric allowed against the parent (absolute: 0.01 is one
# accuracy point).
MAX_QUALITY_LOSS = 0.01
# Default loss allowed on one slice: slices are small (30 rows: one row is 3.3 points).
MAX_SLICE_LOSS = 0.05
# Lineage key holding what was done.
METHOD_KEY = COMPRESSION_KEY
# Lineage key: the compress call that registered a version (tells its own registration from
# a version another call registered first with the same bytes).
INVOCATION_KEY = "compress_invocation"
ORT_FILE = "model.ort"
# --quantize values: ONNX Runtime int8 (after an ONNX export), torch's own dynamic int8.
ONNX_INT8 = "int8"
TORCH_INT8 = "torch-int8"
QUANTIZE_CHOICES = (None, ONNX_INT8, TORCH_INT8)


@dataclass(frozen=True)
class Splits:
    """The rows compression needs: training (calibration, fine-tuning) and validation.

    The optional fields are what the project's gate reads beyond the model inputs, as
    :func:`readyml.compress.splits.version_splits` fills them from the parent's run.
    """

    X_train: Any
    y_train: Any
    X_valid: Any
    y_valid: Any
    slices: list[SliceSpec] = field(default_factory=list)
    seed: int = 0  # the project's: the baselines are fitted as the training run fitted them
    valid_frame: pd.DataFrame | None = None  # every validation column (sensitive attributes)
    fairness: FairnessSpec | None = None
    label: str | None = None


@dataclass(frozen=True)
class Methods:
    """What to produce from the parent; each field set adds one or more versions."""

    format: str | None = None  # "onnx" or "ort"
    quantize: str | None = None  # "int8" (ONNX Runtime) or "torch-int8" (torch dynamic)
    static: bool = False
    calibration: int = CALIBRATION_ROWS
    prune: float | None = None
    structured: bool = False
    fine_tune_epochs: int = 0
    distill: str | None = None
    temperature: float = 2.0
    soft_weight: float = 0.7
    distill_epochs: int = 30

    def check(self) -> Methods:
        """Raise ``ConfigError`` for a value the CLI should not have let through."""
        if self.format not in (None, "onnx", "ort"):
            raise ConfigError(f"--format: expected 'onnx' or 'ort', found {self.format!r}")
        if self.quantize not in QUANTIZE_CHOICES:
            raise ConfigError(
                f"--quantize: expected one of {list(QUANTIZE_CHOICES[1:])}, found {self.quantize!r}"
            )
        if self.quantize == TORCH_INT8 and self.static:
            raise ConfigError(
                "--static: torch's int8 quantization here is dynamic only; use --quantize int8 "
                "--static for calibrated int8 through ONNX Runtime"
            )
        if self.static and self.quantize != ONNX_INT8:  # torch-int8 is refused above
            raise ConfigError("--static: expected with --quantize int8, found no --quantize")
        if (self.structured or self.fine_tune_epochs > 0) and self.prune is None:
            option = "--structured" if self.structured else "--fine-tune"
            raise ConfigError(f"{option}: expected with --prune SPARSITY, found no --prune")
        if self.calibration < 1:
            raise ConfigError(f"--calibration: expected at least 1 row, found {self.calibration}")
        if self.prune is not None and not 0.0 < self.prune < 1.0:
            raise ConfigError(f"--prune: expected a sparsity in (0, 1), found {self.prune}")
        if self.fine_tune_epochs < 0:
            raise ConfigError(
                f"--fine-tune: expected 0 or more epochs, found {self.fine_tune_epochs}"
            )
        if not (math.isfinite(self.temperature) and self.temperature > 0.0):
            raise ConfigError(
                f"--temperature: expected a finite number > 0, found {self.temperature}"
            )
        if not 0.0 <= self.soft_weight <= 1.0:
            raise ConfigError(
                f"--soft-weight: expected a weight in [0, 1], found {self.soft_weight}"
            )
        if self.distill is not None:
            StudentSpec.parse(self.distill)
        if not any((self.format, self.quantize, self.prune is not None, self.distill)):
            raise ConfigError(
                "compress: expected at least one of --format, --quantize, --prune, --distill"
            )
        return self


def _fingerprint(files: dict[str, Path]) -> str:
    digest = hashlib.sha256()
    for name, path in sorted(files.items()):
        digest.update(name.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def evaluate(
    model: ModelAdapter, splits: Splits, *, primary: str | None = None, min_slice_size: int = 30
) -> JSON:
    """Quality on the validation split, overall, per slice (declared, category, label) and,
    when ``splits`` declares sensitive attributes, per group."""
    X, y = splits.X_valid, np.asarray(splits.y_valid)
    y_pred = np.asarray(model.predict(X))
    proba = model.predict_proba(X) if model.task == "classification" and model.has_proba else None
    classes = np.asarray(model.classes_) if proba is not None else None
    metrics = compute_metrics(model.task, y, y_pred, proba, classes)
    frame = X.reset_index(drop=True) if isinstance(X, pd.DataFrame) else pd.DataFrame()
    features = list(frame.columns)
    if model.task == "classification":
        frame = frame.assign(label=pd.Series(y).astype(str).to_numpy())
        features.append("label")
    slices = evaluate_slices(
        frame,
        task=model.task,
        y_true=y,
        y_pred=y_pred,
        proba=proba,
        classes=classes,
        declared=splits.slices,
        features=features,
        min_size=min_slice_size,
    )
    result: JSON = {
        "task": model.task,
        "primary": primary_metric(model.task, primary),
        "valid": metrics,
        "n_valid": len(y),
        "slices": [s.to_dict() for s in slices],
    }
    fairness = splits.fairness
    if fairness is not None and fairness.sensitive and splits.valid_frame is not None:
        result["fairness"] = evaluate_fairness(
            splits.valid_frame.reset_index(drop=True),
            task=model.task,
            y_true=y,
            y_pred=y_pred,
            attributes=fairness.sensitive,
            primary=str(result["primary"]),
            min_group_size=fairness.min_group_size,
            proba=proba,
            classes=classes,
        )
    return result


def _torch_option(methods: Methods) -> str | None:
    """The first option asking for work a quantized torch module cannot take."""
    if methods.prune is not None:
        return "--prune"
    if methods.format is not None:
        return f"--format {methods.format}"
    return "--quantize int8" if methods.quantize == ONNX_INT8 else None


def _refuse_quantized(base: ModelAdapter, methods: Methods, parent: ModelVersion) -> None:
    """Refuse, before any work, to quantize, prune or export a parent already quantized."""
    float_parent = (
        "parent"
        if parent.parent_version is None
        else f"parent {parent.name}:{parent.parent_version}"
    )
    quantization = getattr(base, "quantization_", None)
    option = _torch_option(methods)
    if quantization is not None and option is not None:
        raise FlavorError(
            f"{option}: expected a float torch version, found {parent.ref} already "
            f"quantized ({quantization}); compress its float {float_parent} instead"
        )
    graph = base.path if isinstance(base, OnnxModel) else None
    nodes = [] if graph is None else quantized_nodes(Path(graph))
    if nodes and methods.quantize == ONNX_INT8:
        raise FlavorError(
            f"--quantize int8: expected a float ONNX version, found {parent.ref} already "
            f"quantized ({', '.join(nodes)} nodes); quantize its float {float_parent} instead"
        )


def _row(
    ref: str,
    method: str,
    model: ModelAdapter,
    files: list[Path],
    splits: Splits,
    timed: Path | None,
) -> Row:
    return Row(
        ref=ref,
        method=method,
        flavor=model.flavor,
        size_bytes=size_bytes(files),
        parameters=parameters(model),
        latency_ms=latency_ms(model, splits.X_valid, path=timed),
    )


def compress_version(
    registry: Registry,
    ref: str,
    splits: Splits,
    methods: Methods,
    *,
    gates: GatesSpec | None = None,
    primary: str | None = None,
    max_quality_loss: float = MAX_QUALITY_LOSS,
    max_slice_loss: float = MAX_SLICE_LOSS,
    out: Path | None = None,
    allow_pickle: bool = False,
    trusted_types: Sequence[str] = (),
) -> CompressionReport:
    """Produce, gate, measure and register every result of ``methods`` applied to ``ref``.

    Args:
        registry: Where the parent is and the results go.
        ref: The parent: ``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS``.
        splits: Training and validation rows of the parent's run.
        methods: What to produce.
        gates: The project's gate spec (its absolute rules also apply).
        primary: The primary metric (task default when ``None``).
        max_quality_loss: Largest absolute loss of the primary metric against the parent
            before the gate vetoes.
        max_slice_loss: The same on every judged slice.
        out: Folder for ``compression.json`` and ``compression.html``; not written when None.
        allow_pickle: Allow loading a parent saved with joblib.
        trusted_types: The project's ``model.trusted_types`` (classes a scikit-learn parent's
            skops file may hold beyond the reviewed allow-list).

    Returns:
        The report; each result's row carries its registered version and the gate decision.
    """
    methods.check()
    parent = registry.get(ref)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        parent_dir = registry.download(parent, workdir / "parent")
        base = load_model(parent_dir, allow_pickle=allow_pickle, trusted_types=trusted_types)
        _refuse_quantized(base, methods, parent)
        spec = gates or GatesSpec()
        base_eval = evaluate(base, splits, primary=primary, min_slice_size=spec.min_slice_size)
        parent_files = [parent_dir / a.name for a in parent.artifacts]
        row = _row(parent.ref, "parent", base, parent_files, splits, None)
        row.quality = base_eval
        judge = _Judge(
            registry=registry,
            base=base,
            base_eval=base_eval,
            spec=gate_spec(spec, str(base_eval["primary"]), max_quality_loss, max_slice_loss),
            splits=splits,
            root=parent,
            base_latency_ms=row.latency_ms,
            baselines=_baselines(base, splits) if spec.beat_baselines is not None else None,
        )
        report = CompressionReport(parent=parent.ref, rows=[row])
        _produce(judge, methods, workdir, report)
    if out is not None:
        report.write(out)
    return report


def _baselines(base: ModelAdapter, splits: Splits) -> JSON:
    X_train, y_train, X_valid, y_valid = (
        splits.X_train,
        splits.y_train,
        splits.X_valid,
        splits.y_valid,
    )
    return refit_baselines(base.task, X_train, y_train, X_valid, y_valid, seed=splits.seed)


def _classes(model: ModelAdapter) -> list[Any] | None:
    return np.asarray(model.classes_).tolist() if model.task == "classification" else None


def _saved(model: ModelAdapter, directory: Path) -> dict[str, Path]:
    return {path.name: path for path in model.save(directory)}


def _onnx_adapter(base: ModelAdapter, path: Path) -> OnnxModel:
    return OnnxModel(
        path=path, task=base.task, classes=_classes(base), features=base.signature()["inputs"]
    ).open()


@dataclass
class _Judge:
    """Evaluates, gates, measures and registers each result against the same parent."""

    registry: Registry
    base: ModelAdapter
    base_eval: JSON
    spec: GatesSpec
    splits: Splits
    root: ModelVersion
    # The parent's latency measured in this run, kept with every result so that a runtime
    # choosing between them compares numbers taken on the same machine at the same time.
    base_latency_ms: dict[str, float]
    # Fitted once on the parent's rows when the project's gate asks to beat them.
    baselines: JSON | None = None
    invocation: str = field(default_factory=lambda: uuid.uuid4().hex)

    def add(
        self,
        model: ModelAdapter,
        method: JSON,
        files: dict[str, Path],
        *,
        parent: ModelVersion | _Result,
        export: bool = False,
        timed: Path | None = None,
        size_of: list[Path] | None = None,
    ) -> _Result:
        """Check parity, evaluate, gate and measure one result; nothing is registered yet."""
        tolerance = parity_checks.EXPORT_TOLERANCE if export else None
        minimum = parity_checks.EXPORT_MIN_IDENTICAL if export else None
        agreement = parity_checks.compare(
            self.base, model, self.splits.X_valid, tolerance=tolerance, min_identical=minimum
        )
        if export:
            parity_checks.require(agreement, what=f"{method['name']} export of {self.root.ref}")
        measured_files = size_of if size_of is not None else list(files.values())
        row = _row("", str(method["name"]), model, measured_files, self.splits, timed)
        quality = evaluate(
            model,
            self.splits,
            primary=str(self.base_eval["primary"]),
            min_slice_size=self.spec.min_slice_size,
        )
        evidence = {
            **with_baselines(quality, self.baselines),
            "serving": serving(model, self.splits.X_valid, row.size_bytes),
        }
        decision = gate(
            evidence,
            self.spec,
            champion={"version": self.root.version, "metrics": self.base_eval},
        )
        decision_dict = {**decision.to_dict(), "note": f"compared with parent {self.root.ref}"}
        measured = {
            "size_bytes": row.size_bytes,
            "parameters": row.parameters,
            "latency_ms": row.latency_ms,
            "base_latency_ms": self.base_latency_ms,
        }
        row.quality = evidence
        row.parity = agreement.to_dict()
        row.gate = decision_dict
        row.details = method
        return _Result(
            model=model,
            method=method,
            files=files,
            parent=parent,
            row=row,
            metrics={**evidence, "compression": measured},
            status=decision.decision,
        )

    def _made_before(
        self, parent: ModelVersion, fingerprint: str, method: str
    ) -> ModelVersion | None:
        """A version already made from ``parent`` that this result repeats, if any.

        The same bytes from the same parent is the same result. An ORT file is a pure
        conversion of its ONNX parent, but ONNX Runtime lays out its flatbuffer in a different
        order each time, so any ORT version of the same parent counts as the same.
        """
        same = self.registry.find_by_fingerprint(parent.name, fingerprint)
        if same is not None and same.parent_version == parent.version:
            return same
        if method == "ort":
            for version in reversed(self.registry.list_versions(parent.name)):
                if (
                    version.parent_version == parent.version
                    and version.tags.get("compression") == "ort"
                ):
                    return version
        return None

    def register(self, report: CompressionReport, result: _Result) -> ModelVersion:
        """Register a judged result (after its parent) and add its row to the report."""
        parent = result.parent if isinstance(result.parent, ModelVersion) else result.parent.version
        if parent is None:
            raise RuntimeError("compress: a result was registered before its parent")
        method, row = result.method, result.row
        fingerprint = _fingerprint(result.files)
        existing = self._made_before(parent, fingerprint, str(method["name"]))
        if existing is not None:
            return self._reuse(report, result, existing, parent)
        lineage = {
            **{k: v for k, v in self.root.lineage.items() if k in ("fingerprints", "run_id")},
            **self._label(),
            "parent_version": parent.version,
            "base": self.root.ref,
            METHOD_KEY: {**method, "parity": row.parity},
            INVOCATION_KEY: self.invocation,
        }
        register = functools.partial(
            self.registry.register,
            parent.name,
            files=result.files,
            model_fingerprint=fingerprint,
            lineage=lineage,
            metrics=result.metrics,
            signature=result.model.signature(),
            input_example=list(self.root.input_example),
            tags={
                "flavor": result.model.flavor,
                "task": result.model.task,
                "compression": method["name"],
            },
            status=result.status,
            gate=row.gate,
            run_id=self.root.run_id,
            parent_version=parent.version,
            description=f"{method['name']} of {self.root.ref}",
        )
        # Checked again under the model's lock: a version of the same bytes registered since
        # the check above (another compress call of this parent) is reused, not repeated.
        # ORT's bytes differ from one conversion to the next: not covered.
        version = register(if_new_fingerprint=method["name"] != "ort")
        if version.lineage.get(INVOCATION_KEY) != self.invocation:
            if version.parent_version == parent.version:
                return self._reuse(report, result, version, parent)
            version = register()  # the same bytes from another parent: a version of its own
        result.version = version
        row.ref = version.ref
        row.parent = parent.ref
        report.rows.append(row)
        return version

    def _label(self) -> JSON:
        label = self.splits.label or self.root.lineage.get(LABEL_KEY)
        return {} if label is None else {LABEL_KEY: label}

    def _reuse(
        self,
        report: CompressionReport,
        result: _Result,
        existing: ModelVersion,
        parent: ModelVersion,
    ) -> ModelVersion:
        """Report ``existing``, a version this result repeats, instead of a new one.

        With the registry's status, not this call's verdict: the version is not judged
        again, and the report and exit code must say what ``models show`` says.
        """
        result.version = existing
        row = result.row
        row.ref, row.parent = existing.ref, parent.ref
        row.details["already_registered"] = True
        row.gate = {
            **(existing.gate or {}),
            "decision": existing.status,
            "note": f"already registered as {existing.ref} ({existing.status}); not judged again",
        }
        report.rows.append(row)
        return existing


@dataclass
class _Result:
    """One result, judged and measured; registered only once every method asked for worked."""

    model: ModelAdapter
    method: JSON
    files: dict[str, Path]
    parent: ModelVersion | _Result
    row: Row
    metrics: JSON
    status: Decision
    version: ModelVersion | None = None


def _produce(judge: _Judge, methods: Methods, workdir: Path, report: CompressionReport) -> None:
    """Produce and judge every result, then register them: a method that fails leaves none."""
    base, splits, parent = judge.base, judge.splits, judge.root
    results: list[_Result] = []
    if methods.quantize == TORCH_INT8:
        from readyml.compress.torch_quantize import describe, quantize_torch_dynamic

        dynamic = quantize_torch_dynamic(base)
        # Judged as loaded back from its saved files: what is measured is what ships.
        files = _saved(dynamic, workdir / "torch-int8")
        results.append(
            judge.add(load_model(workdir / "torch-int8"), describe(dynamic), files, parent=parent)
        )
    if methods.format is not None or methods.quantize == ONNX_INT8:
        _onnx_methods(judge, methods, workdir, results)
    if methods.prune is not None:
        from readyml.compress.prune import prune_structured, prune_unstructured, sparsity_of

        prune = prune_structured if methods.structured else prune_unstructured
        pruned = prune(
            base,
            methods.prune,
            X=splits.X_train,
            y=splits.y_train,
            fine_tune_epochs=methods.fine_tune_epochs,
        )
        kind = "structured" if methods.structured else "unstructured"
        method = {
            "name": f"prune-{kind}",
            "target_sparsity": methods.prune,
            "weight_sparsity": sparsity_of(pruned.module_),
            "fine_tune_epochs": methods.fine_tune_epochs,
        }
        results.append(
            judge.add(pruned, method, _saved(pruned, workdir / f"prune-{kind}"), parent=parent)
        )
    if methods.distill is not None:
        student = distill(
            base,
            StudentSpec.parse(methods.distill),
            splits.X_train,
            splits.y_train,
            X_valid=splits.X_valid,
            y_valid=splits.y_valid,
            temperature=methods.temperature,
            soft_weight=methods.soft_weight,
            epochs=methods.distill_epochs,
        )
        method = {
            "name": "distill",
            "student": methods.distill,
            "temperature": methods.temperature,
            "soft_weight": methods.soft_weight,
            "teacher": parent.ref,
        }
        results.append(
            judge.add(student, method, _saved(student, workdir / "distill"), parent=parent)
        )
    for result in results:  # in order: an ONNX export before the versions made from it
        judge.register(report, result)


def _onnx_methods(judge: _Judge, methods: Methods, workdir: Path, results: list[_Result]) -> None:
    """The ONNX export (unless the parent is ONNX already), its ORT file and its int8 forms."""
    base, splits, parent = judge.base, judge.splits, judge.root
    onnx_version: ModelVersion | _Result = parent
    parent_file = base.path if isinstance(base, OnnxModel) else None
    if parent_file is not None:
        if methods.format == "onnx":
            raise ConfigError(
                f"--format onnx: expected a version that is not ONNX yet, found {parent.ref} "
                "(flavor onnx); --format ort and --quantize int8 take it as it is"
            )
        onnx_path = Path(parent_file)
    else:
        onnx_path = workdir / "onnx" / "model.onnx"
        export_onnx(base, workdir / "export.onnx").save(workdir / "onnx")
    # Quantized before anything is registered: a graph with nothing to quantize (a
    # forest) fails here, not after its export became a version.
    quantized = None
    if methods.quantize == ONNX_INT8:
        mode: Mode = "static" if methods.static else "dynamic"
        quantized = quantize_onnx(
            onnx_path,
            workdir / "int8.onnx",
            mode=mode,
            calibration=splits.X_train,
            calibration_rows=methods.calibration,
            sample=splits.X_valid,
        )
    if parent_file is None:
        files = {p.name: p for p in (workdir / "onnx").iterdir()}
        onnx_version = judge.add(
            load_model(workdir / "onnx"),
            {"name": "onnx", "opset": "default"},
            files,
            parent=parent,
            export=True,
        )
        results.append(onnx_version)
    if methods.format == "ort":
        ort_path = to_ort(onnx_path, workdir / "ort-file" / ORT_FILE)
        files = _saved(_onnx_adapter(base, onnx_path), workdir / "ort")
        files[ORT_FILE] = ort_path
        results.append(
            judge.add(
                _onnx_adapter(base, ort_path),
                {"name": "ort", "file": ORT_FILE},
                files,
                parent=onnx_version,
                export=True,
                timed=ort_path,
                size_of=[ort_path],
            )
        )
    if quantized is not None:
        mode = quantized.mode
        files = _saved(_onnx_adapter(base, quantized.path), workdir / f"int8-{mode}")
        results.append(
            judge.add(
                load_model(workdir / f"int8-{mode}"),
                {"name": f"int8-{mode}", **quantized.to_dict()},
                files,
                parent=onnx_version,
            )
        )
