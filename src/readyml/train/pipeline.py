"""The training pipeline: named steps with declared inputs and outputs, recorded and cached.

A step's *input fingerprint* covers its name and version, the part of the spec it reads and
the fingerprints of the values it consumes. A value's fingerprint is that of its content:
frames by their rows and dtypes, JSON by its canonical text, models by their saved files
(:func:`~readyml.train.fingerprint.hash_model_files`), so a step whose inputs are unchanged
after an upstream step reran is still skipped, and a retrained model that differs is
another model. When a succeeded step with the same input fingerprint exists in the metadata
store and its outputs can be read back (sha256-checked) from the artifact store, the step
is skipped and its outputs reused; ``force=True`` reruns everything. Every run and every step
is recorded with its status, times, fingerprints and error, whatever happens: a step's own
error fails it and ends the run; anything else that ends the run early (Ctrl-C, SIGTERM turned
into ``SystemExit`` by the CLI, a bug outside the steps) marks the step in progress and the
run failed, "interrupted (KeyboardInterrupt) during step 'train'", and is raised again. A
process killed outright (SIGKILL) cannot record anything: its run is settled as abandoned by
the next run of the project on that host
(:meth:`~readyml.registry.MetadataStore.settle_abandoned_runs`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import pandas as pd

from readyml.errors import IntegrityError, PipelineError, ReadymlError
from readyml.flavors import ModelAdapter, load_model
from readyml.registry.reports import put_json_report, run_report_key
from readyml.train.fingerprint import hash_frame, hash_json, hash_model_files
from readyml.types import JSON, Evidence

if TYPE_CHECKING:
    from readyml.config import Project
    from readyml.registry import Registry
    from readyml.train.progress import Reporter

Kind = Literal["frame", "json", "model"]
EVIDENCE_KEY = "_evidence"  # where a step's recorded evidence is kept with its cached outputs
StepStatus = Literal["succeeded", "failed", "skipped"]
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Value:
    """A value passed between steps, with its kind and fingerprint."""

    kind: Kind
    obj: Any
    fingerprint: str


@dataclass
class StepResult:
    """What a step returns: its output objects and a one-line message for the user."""

    values: dict[str, Any]
    message: str = ""
    skipped: bool = False


@dataclass
class RunContext:
    """Everything a step may read: the project, the registry and the run's settings."""

    project: Project
    registry: Registry
    run_id: str
    seed: int
    force: bool = False
    fingerprints: JSON = field(default_factory=dict)
    values: dict[str, Value] = field(default_factory=dict)
    recorded: list[Evidence] = field(default_factory=list)
    saved_files: dict[str, dict[str, bytes]] = field(default_factory=dict)

    def model_files(self, name: str) -> dict[str, bytes]:
        """The saved files of the model value ``name`` (relative name → bytes).

        A model's files are written once per run, when its fingerprint is taken or it is read
        back from the cache, and reused from here (saving a large forest costs hundreds of
        milliseconds).
        """
        value = self.values[name]
        files = self.saved_files.get(value.fingerprint)
        if files is None:
            files = dict(_serialise(value))
            self.saved_files[value.fingerprint] = files
        return files

    def record(self, evidence: Evidence) -> None:
        """Store ML Test Score evidence for the running step.

        The pipeline keeps what a step recorded with its cached outputs and records it again,
        for the new run, when a later run reuses them: the check's result for those exact
        inputs still holds, and the rubric counts repeated automated runs.
        """
        self.registry.store.add_evidence(evidence)
        self.recorded.append(evidence)


class Step(Protocol):
    """A pipeline step. ``params`` returns the spec fields the step depends on."""

    name: ClassVar[str]
    version: ClassVar[int]
    inputs: ClassVar[tuple[str, ...]]
    outputs: ClassVar[dict[str, Kind]]
    cacheable: ClassVar[bool]

    def params(self, ctx: RunContext) -> JSON: ...

    def run(self, ctx: RunContext, inputs: dict[str, Any]) -> StepResult: ...


@dataclass(frozen=True)
class StepRun:
    """How one step went in this run."""

    name: str
    status: StepStatus
    duration_s: float
    input_fingerprint: str
    output_fingerprint: str | None
    message: str
    error: str | None = None
    reused_from_run: str | None = None  # the run whose cached outputs were reused


@dataclass
class RunResult:
    """The outcome of a whole pipeline run."""

    run_id: str
    status: Literal["succeeded", "failed"]
    steps: list[StepRun]
    values: dict[str, Value]
    duration_s: float
    error: ReadymlError | None = None
    report: str | None = None  # the run report's key in the artifact store, if it was kept

    def value(self, name: str) -> Any:
        """The object a step produced under ``name``."""
        return self.values[name].obj


def output_value(kind: Kind, obj: Any, ctx: RunContext) -> Value:
    """A step's output with its content fingerprint.

    A model is saved to be fingerprinted; its files are kept in ``ctx`` for the cache and the
    registry, which then store exactly the bytes that were hashed.
    """
    if kind == "frame":
        return Value(kind, obj, hash_frame(obj))
    if kind == "json":
        return Value(kind, obj, hash_json(obj))
    files = dict(_serialise(Value(kind, obj, "")))
    fingerprint = hash_model_files(files)
    ctx.saved_files[fingerprint] = files
    return Value(kind, obj, fingerprint)


class Pipeline:
    """An ordered list of steps run with caching and records.

    Example:
        >>> pipeline = Pipeline(default_steps())  # doctest: +SKIP
        >>> result = pipeline.run(project, registry=registry, reporter=reporter)  # doctest: +SKIP
    """

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = list(steps)

    def run(
        self,
        project: Project,
        *,
        registry: Registry,
        reporter: Reporter,
        force: bool = False,
        fingerprints: JSON | None = None,
    ) -> RunResult:
        """Run every step in order; stop at the first failure and record it."""
        spec = project.spec
        if registry.store.settle_abandoned_runs(spec.name):
            # A run killed outright may have been killed mid-write: clear old temporaries.
            registry.artifacts.remove_stale_temporaries()
        record = registry.store.start_run(
            spec.name, fingerprints=fingerprints or {}, params={"force": force}
        )
        ctx = RunContext(
            project=project,
            registry=registry,
            run_id=record.id,
            seed=spec.seed,
            force=force,
            fingerprints=fingerprints or {},
        )
        started = time.monotonic()
        values = ctx.values
        runs: list[StepRun] = []
        error: ReadymlError | None = None
        where = "before the first step"
        try:
            reporter.run_started(record.id, [step.name for step in self.steps])
            for step in self.steps:
                where = f"during step '{step.name}'"
                step_run, outputs, error = self._run_step(step, ctx, values, reporter)
                runs.append(step_run)
                values.update(outputs)
                if error is not None:
                    break
            where = "while finishing the run"
            status: Literal["succeeded", "failed"] = "failed" if error else "succeeded"
            registry.store.finish_run(record.id, status=status, error=str(error) if error else None)
        except BaseException as exc:
            _fail_run(registry, record.id, _interruption(exc, where), exc)
            with contextlib.suppress(Exception):  # the run's own error is the one to raise
                _keep_run_report(registry, record.id, runs)
            raise
        duration = time.monotonic() - started
        details: JSON = {
            "steps": {r.name: r.status for r in runs},
            "duration_s": round(duration, 3),
            "error": str(error) if error else None,
        }
        reused = [r.reused_from_run for r in runs if r.reused_from_run is not None]
        if reused and not any(r.status == "succeeded" for r in runs):
            # Nothing computed: the run repeats earlier work and counts as the run that
            # computed its last step (ML Test Score, "repeated" runs), not as another one.
            details["reused_from_run"] = reused[-1]
        # ML Test Score infra-3: the full pipeline ran end to end (or where it broke).
        registry.store.add_evidence(
            Evidence(
                test_id="infra-3",
                passed=error is None,
                automated=True,
                project=spec.name,
                run_id=record.id,
                details=details,
            )
        )
        report = _keep_run_report(registry, record.id, runs)
        result = RunResult(record.id, status, runs, values, duration, error, report)
        reporter.run_finished(result)
        return result

    def _run_step(
        self, step: Step, ctx: RunContext, values: dict[str, Value], reporter: Reporter
    ) -> tuple[StepRun, dict[str, Value], ReadymlError | None]:
        started_at = datetime.now(UTC)
        started = time.monotonic()
        reporter.step_started(step.name)
        input_fp = ""
        outputs: dict[str, Value] = {}
        error: ReadymlError | None = None
        message = ""
        status: StepStatus = "succeeded"
        detail: str | None = None
        reused_from: str | None = None
        ctx.recorded = []
        try:
            input_fp = hash_json(
                {
                    "step": step.name,
                    "version": step.version,
                    "params": step.params(ctx),
                    "inputs": {name: values[name].fingerprint for name in step.inputs},
                }
            )
            cached = None if ctx.force or not step.cacheable else self._cached(step, ctx, input_fp)
            if cached is not None:
                outputs, message, evidence, reused_from = cached
                for record in evidence:
                    ctx.registry.store.add_evidence(record)
                status = "skipped"
            else:
                result = step.run(ctx, {name: values[name].obj for name in step.inputs})
                outputs = {
                    name: output_value(kind, result.values[name], ctx)
                    for name, kind in step.outputs.items()
                }
                message = result.message
                status = "skipped" if result.skipped else "succeeded"
        except ReadymlError as exc:
            error, status, detail = exc, "failed", str(exc)
        except Exception as exc:  # a bug in a step or in user code: keep the traceback
            detail = traceback.format_exc()
            error = PipelineError(f"step '{step.name}' failed: {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            status = "failed"
        except BaseException as exc:  # interrupted (Ctrl-C, SIGTERM): record the step, go on
            self._record_failed_step(step, ctx, reporter, started_at, started, input_fp, exc)
            raise
        output_fp = hash_json({n: v.fingerprint for n, v in outputs.items()}) if outputs else None
        stored_outputs: JSON = {}
        if status == "succeeded" and step.cacheable:
            try:
                stored_outputs = self._store_outputs(step, ctx, input_fp, outputs)
                stored_outputs[EVIDENCE_KEY] = [_evidence_to_json(e) for e in ctx.recorded]
            except ReadymlError as exc:  # the artifact store failed: the run must end failed
                error, status, detail = exc, "failed", str(exc)
                stored_outputs = {}
            except BaseException as exc:
                self._record_failed_step(step, ctx, reporter, started_at, started, input_fp, exc)
                raise
        duration = time.monotonic() - started
        ctx.registry.store.record_step(
            run_id=ctx.run_id,
            name=step.name,
            status=status,
            started_at=started_at,
            ended_at=datetime.now(UTC),
            duration_s=duration,
            input_fingerprint=input_fp,
            output_fingerprint=output_fp,
            outputs=stored_outputs,
            message=message,
            error=detail,
        )
        step_run = StepRun(
            step.name, status, duration, input_fp, output_fp, message, detail, reused_from
        )
        reporter.step_finished(step_run)
        return step_run, outputs, error

    @staticmethod
    def _record_failed_step(
        step: Step,
        ctx: RunContext,
        reporter: Reporter,
        started_at: datetime,
        started: float,
        input_fp: str,
        exc: BaseException,
    ) -> None:
        """Record and report a step that ``exc`` ended early; best effort, since the
        exception on its way out matters more than this record."""
        detail = _interruption(exc, f"during step '{step.name}'")
        duration = time.monotonic() - started
        with contextlib.suppress(Exception):
            ctx.registry.store.record_step(
                run_id=ctx.run_id,
                name=step.name,
                status="failed",
                started_at=started_at,
                ended_at=datetime.now(UTC),
                duration_s=duration,
                input_fingerprint=input_fp,
                error=detail,
            )
        with contextlib.suppress(Exception):
            reporter.step_finished(StepRun(step.name, "failed", duration, input_fp, None, detail))

    def _cache_key(self, ctx: RunContext, step: Step, input_fp: str, name: str) -> str:
        return f"cache/{ctx.project.spec.name}/{step.name}/{input_fp[:32]}/{name}"

    def _store_outputs(
        self, step: Step, ctx: RunContext, input_fp: str, outputs: dict[str, Value]
    ) -> JSON:
        artifacts = ctx.registry.artifacts
        stored: JSON = {}
        for name, value in outputs.items():
            base = self._cache_key(ctx, step, input_fp, name)
            files = []
            saved = ctx.saved_files.get(value.fingerprint) if value.kind == "model" else None
            serialised = list(saved.items()) if saved is not None else _serialise(value)
            for relname, data in serialised:
                info = artifacts.put_bytes(f"{base}/{relname}", data)
                files.append({"name": relname, "key": info.key, "sha256": info.sha256})
            stored[name] = {"kind": value.kind, "fingerprint": value.fingerprint, "files": files}
        return stored

    def _cached(
        self, step: Step, ctx: RunContext, input_fp: str
    ) -> tuple[dict[str, Value], str, list[Evidence], str] | None:
        record = ctx.registry.store.find_cached_step(ctx.project.spec.name, step.name, input_fp)
        if record is None:
            return None
        outputs = {k: v for k, v in record.outputs.items() if k != EVIDENCE_KEY}
        if set(outputs) != set(step.outputs):
            return None
        values: dict[str, Value] = {}
        try:
            for name, meta in outputs.items():
                files = {
                    f["name"]: ctx.registry.artifacts.get_bytes(
                        f["key"],
                        sha256=f["sha256"],
                        label=f"cached output '{name}' of step '{step.name}'",
                    )
                    for f in meta["files"]
                }
                fingerprint = meta["fingerprint"]
                if meta["kind"] == "model":
                    # Taken again from the files: entries cached before models were
                    # fingerprinted by content hold the fingerprint of their producer.
                    fingerprint = hash_model_files(files)
                    ctx.saved_files[fingerprint] = files
                values[name] = Value(
                    meta["kind"],
                    _deserialise(meta["kind"], files, ctx.project.trusted_types()),
                    fingerprint,
                )
        except IntegrityError:
            return None  # a damaged cache entry is recomputed, never trusted
        evidence = [
            _evidence_from_json(item, run_id=ctx.run_id, reused_from=record.run_id)
            for item in record.outputs.get(EVIDENCE_KEY, [])
        ]
        message = f"inputs unchanged since run {record.run_id[:8]}; reused its outputs"
        return values, message, evidence, record.run_id


def _interruption(exc: BaseException, where: str) -> str:
    """How a run or step that ``exc`` ended early is recorded: "interrupted
    (KeyboardInterrupt) during step 'train'", "crashed (RuntimeError: ...) before the first
    step"."""
    lines = str(exc).strip().splitlines()
    what = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    verb = "interrupted" if isinstance(exc, KeyboardInterrupt | SystemExit) else "crashed"
    return f"{verb} ({what}) {where}"


def write_run_report(registry: Registry, run_id: str, steps: Sequence[StepRun]) -> str:
    """Keep the run's report in the artifact store, where its evidence links to: the run as
    recorded, how each step went, and the evidence it recorded. Returns the key.

    Raises:
        RegistryError: The metadata store cannot be read or the artifact store written.
    """
    run = registry.store.get_run(run_id)
    evidence = registry.store.list_evidence(project=run.project, run_id=run_id)
    document: JSON = {
        "kind": "pipeline run",
        **run.to_dict(),
        "steps": [asdict(step) for step in steps],
        "evidence": [
            {"test_id": e.test_id, "passed": e.passed, "artifact": e.artifact, "details": e.details}
            for e in evidence
        ],
    }
    return put_json_report(registry, run_report_key(run_id), document)


def _keep_run_report(registry: Registry, run_id: str, steps: Sequence[StepRun]) -> str | None:
    """:func:`write_run_report`, or ``None`` with a warning: the run is recorded either way,
    and a store that refuses its report must not turn its outcome into another."""
    try:
        return write_run_report(registry, run_id, steps)
    except ReadymlError as exc:
        _log.warning("run %s: its report was not kept (%s)", run_id, exc)
        return None


def _fail_run(registry: Registry, run_id: str, error: str, exc: BaseException) -> None:
    """Mark a run failed on the way out of an exception; should the store fail too, note it
    on the exception (the run is settled as abandoned once this process has ended)."""
    try:
        registry.store.finish_run(run_id, status="failed", error=error)
    except Exception as failure:
        exc.add_note(f"run {run_id} is still recorded as running ({type(failure).__name__})")


def _evidence_to_json(evidence: Evidence) -> JSON:
    return {
        "test_id": evidence.test_id,
        "passed": evidence.passed,
        "automated": evidence.automated,
        "project": evidence.project,
        "details": evidence.details,
        "model_name": evidence.model_name,
        "version": evidence.version,
        "artifact": evidence.artifact,
    }


def _evidence_from_json(item: JSON, *, run_id: str, reused_from: str) -> Evidence:
    details = {**item["details"], "reused_from_run": reused_from}
    fields = {k: v for k, v in item.items() if k != "details"}
    return Evidence(**fields, details=details, run_id=run_id)


def _serialise(value: Value) -> list[tuple[str, bytes]]:
    if value.kind == "frame":
        buffer = BytesIO()
        value.obj.to_parquet(buffer, index=False)
        return [("data.parquet", buffer.getvalue())]
    if value.kind == "json":
        return [("value.json", json.dumps(value.obj, sort_keys=True, default=str).encode())]
    model: ModelAdapter = value.obj
    with tempfile.TemporaryDirectory() as tmp:
        written = model.save(Path(tmp))
        return [(str(p.relative_to(tmp)), p.read_bytes()) for p in sorted(written)]


def _deserialise(kind: Kind, files: dict[str, bytes], trusted_types: tuple[str, ...]) -> Any:
    if kind == "frame":
        return pd.read_parquet(BytesIO(files["data.parquet"]))
    if kind == "json":
        return json.loads(files["value.json"])
    with tempfile.TemporaryDirectory() as tmp:
        for relname, data in files.items():
            path = Path(tmp) / relname
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return load_model(Path(tmp), trusted_types=trusted_types)
