"""``readyml demo``: a real project on bundled data, run end to end in one command.

The data is vega_datasets' Seattle weather (1,461 days, 2012–2015, ships inside the package:
no download). The project trains on 2012–2013; the later years are kept as "production"
data, where the labelling of ``weather`` really changes (fog is recorded far more often
from 2014), for the monitoring part of the demo.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from readyml import _console as console
from readyml import _project_imports as project_imports
from readyml.compress import Methods, compress_version, onnx_version_for
from readyml.compress.demo import compress_demo
from readyml.compress.splits import version_splits
from readyml.config import SPEC_FILE, Project
from readyml.data import Schema, infer_schema, write_schema
from readyml.errors import ConfigError, ReadymlError
from readyml.feedback.demo import feedback_demo
from readyml.monitor import monitor_demo, record_feedback
from readyml.registry import Registry
from readyml.scaffold import GITIGNORE
from readyml.score import score_project
from readyml.score.checks import run_checks
from readyml.serve.canary_demo import DEMO_ROLLOUT, canary_demo
from readyml.train import (
    SilentReporter,
    check_reproducible,
    default_reporter,
    open_project_registry,
    run_project,
)
from readyml.train.steps import SCHEMA_FILE, fit_model

# What the demo's stand-in reviewer labels: the recent failures, and a larger random control
# group than the default (labels are free here; they are not for a real team).
CAPTURE_BUDGET = {"misprediction": 100, "random": 150}
TRAIN_END = "2014-01-01"  # rows before this day are the training data; the rest is production
# Written into a folder by a complete demo build: only such a folder is reused.
DEMO_MARKER = ".readyml-demo"

DEMO_SPEC = {
    "name": "seattle-weather",
    "description": "Predict the day's weather (sun, fog, rain, drizzle, snow) from measurements.",
    "seed": 42,
    # Labelled production examples (readyml review import) join the training data; evaluation
    # reports the newest ones apart (docs/feedback-loop.md).
    "data": {"source": "features:load", "production": {"weight": 1.0, "window": "30d"}},
    "label": "weather",
    "exclude": ["date"],
    "split": {"method": "random", "test_size": 0.25, "stratify": True},
    "model": {
        "flavor": "sklearn",
        "estimator": "sklearn.ensemble.RandomForestClassifier",
        "params": {"n_estimators": 200, "min_samples_leaf": 3, "n_jobs": 1},
    },
    "metrics": {"primary": "accuracy", "others": ["balanced_accuracy", "f1_macro", "log_loss"]},
    "slices": [
        {"name": "dry days", "column": "precipitation", "max": 0.1},
        {"name": "wet days", "column": "precipitation", "min": 0.1},
        {"name": "winter", "column": "month", "values": [12, 1, 2]},
        {"name": "summer", "column": "month", "values": [6, 7, 8]},
        {"name": "month", "column": "month"},
    ],
    "gates": {
        "rules": [{"metric": "accuracy", "min": 0.5}, {"metric": "roc_auc", "min": 0.75}],
        # Slices hold ~50 validation rows (one example is 2 %): judge them with a wider margin.
        "champion": {
            "max_regression": 0.005,
            "relative": True,
            "slices": True,
            "max_slice_regression": 0.05,
        },
        # About 270 validation rows resolve accuracy to a few points: a candidate within two
        # points of the linear baseline is not called worse (model-5 evidence stays strict).
        "beat_baselines": {"margin": -0.02},
        "max_latency_ms": 250.0,
        "max_size_mb": 100.0,
        "fairness": [{"metric": "accuracy_difference", "max": 0.35, "attribute": "season"}],
        "min_slice_size": 30,
    },
    # Weather has no people: "season" stands in for a sensitive attribute to show model-7.
    "fairness": {
        "sensitive": [
            {
                "name": "season",
                "column": "month",
                "groups": {
                    "winter": [12, 1, 2],
                    "spring": [3, 4, 5],
                    "summer": [6, 7, 8],
                    "autumn": [9, 10, 11],
                },
            }
        ],
    },
    "staleness": {"time_column": "date", "windows": 3, "tolerance": 0.03},
    # Short canary steps so that the demo's rollouts take seconds, not the default minutes.
    "serving": {"rollout": DEMO_ROLLOUT},
    # A drift or quality alert retrains the model and canaries the result, at most once an
    # hour. A retrain on drifted data is meant to change its answers: its canary allows more
    # prediction divergence (0.5) than a routine rollout (0.1); errors, latency and NaN/inf
    # are judged as strictly.
    # The training code path recomputes served features by request id (monitor-3).
    "monitoring": {
        "skew": {"offline_features": "features:served_features"},
        "on_alert": {
            "checks": ["skew", "quality"],
            "cooldown": "1h",
            "rollout": {"max_divergence": 0.5},
        },
    },
    "tuning": {
        "n_trials": 3,
        "timeout_s": 30,
        "cv": 2,
        "in_pipeline": True,
        "space": {
            "n_estimators": {"type": "int", "low": 25, "high": 100, "step": 25},
            "min_samples_leaf": {"type": "int", "low": 1, "high": 8},
            "max_features": {"type": "categorical", "choices": ["sqrt", 1.0]},
        },
    },
}


# The demo's feature owner, recorded in schema.yaml's meta for the meta-level rules (data-4).
FEATURE_OWNER = "demo-team"
FEATURE_DESCRIPTIONS = {
    "date": "day of the measurement",
    "precipitation": "rain and snow that day, in mm",
    "temp_max": "highest temperature that day, in °C",
    "temp_min": "lowest temperature that day, in °C",
    "wind": "mean wind speed that day, in m/s",
    "month": "calendar month of the day (derived in features.py)",
    "temp_range": "temp_max minus temp_min, in °C (derived in features.py)",
    "weather": "observed weather: sun, fog, rain, drizzle or snow (the label)",
}


def seattle_weather() -> pd.DataFrame:
    """The bundled Seattle weather data, as vega_datasets ships it."""
    from vega_datasets import data

    frame: pd.DataFrame = data.seattle_weather()
    return frame


def _template(name: str) -> str:
    return resources.files("readyml").joinpath("templates", "demo", name).read_text("utf-8")


def create_demo_project(directory: Path) -> bool:
    """Write the demo project unless it exists; return whether it was created.

    The project holds the raw data (2012–2013 for training, 2014–2015 as production traffic),
    its feature code with unit tests, the spec, and a reviewed schema with feature owners.
    It is built in a staging folder beside ``directory`` and moved into place when complete,
    so an interrupted build leaves nothing that a later call would take for the project.

    Raises:
        ConfigError: ``directory`` is a file, another project, or a non-empty folder.
    """
    if not _must_build(directory):
        return False
    staging = directory.resolve().with_name(f".{directory.resolve().name}.partial")
    shutil.rmtree(staging, ignore_errors=True)  # what a killed build left
    staging.mkdir(parents=True)
    try:
        _write_project(staging)
        if directory.exists():  # an empty folder, perhaps the working directory: fill it
            entries = sorted(staging.iterdir(), key=lambda p: p.name == DEMO_MARKER)
            for entry in entries:  # the marker last: without it, nothing is reused
                entry.rename(directory / entry.name)
            staging.rmdir()
        else:
            staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return True


def _must_build(directory: Path) -> bool:
    """Whether the demo must be built in ``directory``: False when it holds a built demo."""
    if (directory / DEMO_MARKER).is_file():
        return False
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"demo --dir: expected a folder, found a file: {directory}")
    if (directory / SPEC_FILE).exists():
        raise ConfigError(
            f"demo --dir: expected a new folder or one the demo built, found another project "
            f"({directory / SPEC_FILE}, no {DEMO_MARKER}); choose another --dir"
        )
    # The demo commits everything in its folder to a new git repository: never a user's files.
    if directory.exists() and any(directory.iterdir()):
        raise ConfigError(
            f"demo --dir: expected a new or empty folder, found {directory} with files in it; "
            "choose another --dir"
        )
    return True


def _write_project(directory: Path) -> None:
    """Write the demo project, its marker included, into the empty ``directory``; commit it."""
    (directory / "data").mkdir()
    (directory / "tests").mkdir()
    frame = seattle_weather()
    history = frame[frame["date"] < TRAIN_END]
    production = frame[frame["date"] >= TRAIN_END]
    history.to_csv(directory / "data" / "weather_2012_2013.csv", index=False)
    production.to_csv(directory / "data" / "weather_2014_2015.csv", index=False)
    (directory / "features.py").write_text(_template("features.py"), encoding="utf-8")
    (directory / "tests" / "test_features.py").write_text(
        _template("test_features.py"), encoding="utf-8"
    )
    header = "# readyml demo project: Seattle weather (vega_datasets), trained on 2012–2013.\n"
    (directory / SPEC_FILE).write_text(
        header + yaml.safe_dump(DEMO_SPEC, sort_keys=False), encoding="utf-8"
    )
    (directory / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
    _write_reviewed_schema(directory)
    (directory / DEMO_MARKER).write_text(
        "Built by 'readyml demo': it reuses this folder; delete the folder to rebuild it.\n",
        encoding="utf-8",
    )
    _check_in(directory)


def _check_in(directory: Path, message: str = "Demo project", *, init: bool = True) -> None:
    """Commit the project, as a team would (ML Test Score model-1); ``init`` creates the repo.

    Skipped, and model-1 then honestly fails, when git is not installed.
    """
    git = shutil.which("git")
    if git is None or (not init and not (directory / ".git").exists()):
        return
    identity = ["-c", "user.name=readyml demo", "-c", "user.email=demo@readyml.invalid"]
    steps = [["add", "-A"], [*identity, "commit", "-q", "-m", message]]
    for args in [["init", "-q"], *steps] if init else steps:
        subprocess.run([git, "-C", str(directory), *args], check=True, capture_output=True)


def _project_features(directory: Path) -> Any:
    """The demo project's own ``features`` module (the training code path)."""
    project_imports.prepare(directory, "features:load")
    import importlib

    return importlib.import_module("features")


def _write_reviewed_schema(directory: Path) -> None:
    """Infer schema.yaml from the training data and add what a reviewer would: owners, texts."""
    frame = _project_features(directory).load()
    schema = infer_schema(frame, label=str(DEMO_SPEC["label"])).to_dict()
    for feature in schema["features"]:
        feature["description"] = FEATURE_DESCRIPTIONS.get(feature["name"], "")
        feature["meta"] = {**feature.get("meta", {}), "owner": FEATURE_OWNER}
    write_schema(Schema.from_dict(schema), directory / SCHEMA_FILE, overwrite=True)


def production_frame(project: Project) -> pd.DataFrame:
    """The 2014–2015 rows with features computed by the project's own feature code."""
    features = _project_features(project.root)
    frame: pd.DataFrame = features.add_features(
        pd.read_csv(project.root / "data" / "weather_2014_2015.csv")
    )
    return frame


def production_rows(project: Project) -> tuple[list[dict[str, Any]], list[str]]:
    """The 2014–2015 rows as the model's inputs, and their labels."""
    frame = production_frame(project)
    champion = open_project_registry(project).get(f"{project.spec.name}@champion")
    names = [c["name"] for c in champion.signature["inputs"]]
    rows = json.loads(frame[names].to_json(orient="records"))
    return rows, [str(label) for label in frame[str(DEMO_SPEC["label"])]]


def _step(title: str) -> None:
    console.stdout.print(f"\n[bold cyan]── {title}[/]")


def run_demo(directory: Path, *, with_torch: bool | None = None) -> int:
    """Build (or reuse) the demo project and take it from data to a monitored service.

    Train (twice: the second run reuses every unchanged step), check reproducibility, promote,
    run readyml's automated checks, serve the champion and replay 2014–2015 through it, feed
    back the labels, monitor, compress, and score the project.

    Returns the process exit code: 0 when the run succeeded, was reproducible and blessed.
    """
    created = create_demo_project(directory)
    state = "new project" if created else "existing project; unchanged steps are skipped"
    console.stdout.print(f"[bold]readyml demo[/] in {directory} ({state})")
    project = Project.load(directory)
    registry = open_project_registry(project)

    _step("train: the pipeline")
    result = run_project(project, registry=registry, reporter=default_reporter())
    if result.error is not None:
        raise result.error
    _step("train again: unchanged steps are skipped")
    again = run_project(project, registry=registry, reporter=default_reporter())
    if again.error is not None:
        raise again.error
    registered = result.value("registered")
    metrics = result.value("metrics")
    gate = result.value("gate")
    reproducibility = check_reproducible(project, result, registry=registry)
    ref = f"{registered['name']}:{registered['version']}"
    promoted = ""
    if gate["decision"] == "blessed":
        try:
            champion = registry.get(f"{registered['name']}@champion").version
        except ReadymlError:
            champion = None
        if champion != registered["version"]:
            registry.promote(ref, who="readyml-demo", reason="demo: first blessed version")
            promoted = " → promoted to champion"
    version = registry.get(ref)
    valid = metrics["valid"]
    _step("summary")
    console.key_values(
        "model",
        [
            ("version", f"{ref} ({version.status}){promoted}"),
            ("metrics", ", ".join(f"{k} {v:.3f}" for k, v in valid.items() if v == v)),
            ("gate", f"{gate['decision']}: " + "; ".join(r["message"] for r in gate["reasons"])),
            (
                "reproducible",
                f"{reproducibility.passed} "
                f"({reproducibility.identical_predictions:.0%} identical predictions)",
            ),
            (
                "second run",
                f"{sum(s.status == 'skipped' for s in again.steps)} of {len(again.steps)} "
                "steps skipped",
            ),
            ("registry", repr(registry.store)),
            ("artifacts", registry.artifacts.url_for(f"models/{registered['name']}")),
            ("export", result.value("export")["path"]),
        ],
    )
    if gate["decision"] != "blessed":
        return 1

    _step("check: readyml's automated ML Test Score checks")
    checks = run_checks(project, registry, runner=run_project, fit=fit_model)
    console.table(
        None,
        ["test", "passed", "summary"],
        [[c.test_id, "yes" if c.passed else "no", c.summary] for c in checks],
    )

    _step("serve: the champion answers each protocol, then 2014–2015 is replayed through it")
    rows, labels = production_rows(project)
    prefix = f"prod-{again.run_id[:8]}"  # request ids unique to this demo run
    results, replayed = serve_demo(project, registry, replay_rows=rows, id_prefix=prefix)
    print_served(results)
    console.stdout.print(f"  replayed {len(replayed):,} production rows through /predict")

    _step("monitor: labels arrive later and are fed back; the monitor runs every check")
    by_id = dict(zip([f"{prefix}-{i:06d}" for i in range(len(labels))], labels, strict=True))
    fed = record_feedback(
        project.workspace, [{"request_id": rid, "label": by_id[rid]} for rid in replayed]
    )
    console.stdout.print(
        f"  fed back {fed.new + fed.relabelled:,} labels ({fed.unknown} unknown ids)"
    )
    monitor_report, monitor_html = monitor_demo(project, registry)

    _step("feedback loop: capture what failed, label it, retrain on the alert, canary the result")
    feedback_demo(
        project,
        registry,
        monitor_report.alerts,
        labels=by_id,
        traffic_rows=rows,
        traffic_labels=labels,
        runner=run_project,
        reporter=default_reporter(),
        budget=CAPTURE_BUDGET,
        commit=lambda message: _check_in(directory, message, init=False),
    )

    _step("monitor again: the champion after the loop, on the traffic it served")
    monitor_report, monitor_html = monitor_demo(project, registry)  # the summary's: the latest

    _step("deploy: the champion's ONNX form goes through the gate, then a canary rollout")
    _onnx_canary(project, registry)

    if with_torch if with_torch is not None else _torch_available():
        _step("compress: a digits CNN exported to ONNX, quantized, pruned and distilled")
        summary = compress_demo(project.workspace, registry)
        header, *body = summary["table"]
        keep = [i for i, h in enumerate(header) if h in SHOWN_COMPRESSION_COLUMNS]
        console.table(
            None, [str(header[i]) for i in keep], [[row[i] for i in keep] for row in body]
        )
        console.stdout.print(f"  report: {summary['report']['html']}")

    _step("check again: after the loop, the pipeline reproduces and the checks still pass")
    rerun = run_project(project, registry=registry, reporter=SilentReporter())
    if rerun.error is None:
        again_reproducible = check_reproducible(project, rerun, registry=registry)
        console.stdout.print(
            f"  reproducible: {again_reproducible.passed} "
            f"({again_reproducible.identical_predictions:.0%} identical predictions)"
        )
    checks = run_checks(project, registry, runner=run_project, fit=fit_model)
    failed = [c.test_id for c in checks if not c.passed]
    console.stdout.print(
        f"  {len(checks) - len(failed)} of {len(checks)} checks passed"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )

    _step("score: the ML Test Score from the evidence recorded above")
    score = score_project(project, registry)
    console.stdout.print(
        f"  ML Test Score {score.final:g} ({score.band}); sections: "
        + ", ".join(f"{k} {v:g}" for k, v in score.sections.items())
    )
    console.stdout.print(f"  monitoring report: {monitor_html}")
    console.stdout.print(
        f"  {len(monitor_report.alerts)} alert(s) open; see 'readyml score -p {directory}' "
        "for how to earn the missing points"
    )
    console.stdout.print("\nnext:")
    for command in (
        f"readyml serve -p {directory} --port 8080",
        f"readyml evaluate {registered['name']}@champion -p {directory}",
        f"readyml monitor -p {directory} --report",
        f"readyml score -p {directory}",
        f"readyml models history {registered['name']} -p {directory}",
    ):
        console.stdout.print(f"  {command}")
    return 0 if reproducibility.passed else 1


# Columns of the compression table the demo prints (the HTML report has them all).
SHOWN_COMPRESSION_COLUMNS = (
    "method",
    "size KB",
    "parameters",
    "ms @1",
    "ms @64",
    "accuracy",
    "gate",
)


def _onnx_canary(project: Project, registry: Registry) -> None:
    """Export the champion to ONNX (parity-checked, gated) and roll it out by canary.

    Runs once per project: a champion that already is, or has, an ONNX form is left alone.
    """
    champion = registry.get(f"{project.spec.name}@champion")
    if champion.tags.get("flavor") == "onnx" or onnx_version_for(registry, champion) is not None:
        console.stdout.print("  the champion's ONNX form exists already; nothing to roll out")
        return
    report = compress_version(
        registry,
        champion.ref,
        version_splits(registry, champion, project.spec),
        Methods(format="onnx").check(),
        gates=project.spec.gates,
        primary=project.spec.metrics.primary,
        trusted_types=project.trusted_types(),
    )
    candidate = report.rows[-1]
    console.stdout.print(f"  registered {candidate.ref} ({candidate.method}, {candidate.decision})")
    if candidate.decision != "blessed":
        return
    summary = canary_demo(project, registry, drill=True)
    for decision in summary["decisions"]:
        console.stdout.print(
            f"  {decision['action']:<9} at {decision['weight']:>3}%  {decision['reason']}"
        )
    console.stdout.print(
        f"  rollout of {summary['model']}:{summary['candidate_version']} ended "
        f"{summary['state']} after {summary['requests']:,} requests"
    )
    drill = summary.get("drill")
    if drill:
        console.stdout.print(
            f"  rollback drill: v{drill['from_version']} → v{drill['to_version']} served in "
            f"{drill['seconds'] * 1000:.0f} ms, then v{drill['from_version']} promoted again"
        )


def _torch_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def serve_demo(
    project: Project, registry: Registry, **kwargs: Any
) -> tuple[list[tuple[str, Any, Any]], list[str]]:
    """Serve the champion as a real process, ask it by each protocol, replay rows.

    See :func:`readyml.serve.demo.serve_demo`.
    """
    from readyml.serve.demo import serve_demo as serve_and_ask

    return serve_and_ask(project, registry, **kwargs)


def print_served(results: list[tuple[str, Any, Any]]) -> None:
    """Print the demo server's answers, one short line per protocol."""
    for protocol, _, answer in results:
        shown = json.dumps(answer, default=str)
        console.stdout.print(f"  {protocol:<20} → {shown[:110]}{'…' if len(shown) > 110 else ''}")
