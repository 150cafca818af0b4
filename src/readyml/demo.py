"""``readyml demo``: a real project on bundled data, run end to end in one command.

The data is vega_datasets' Seattle weather (1,461 days, 2012–2015, ships inside the package:
no download). The project trains on 2012–2013; the later years are kept as "production"
data, where the labelling of ``weather`` really changes (fog is recorded far more often
from 2014), for the monitoring part of the demo.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from readyml import _console as console
from readyml.config import SPEC_FILE, Project
from readyml.errors import ReadymlError
from readyml.scaffold import GITIGNORE
from readyml.train import check_reproducible, default_reporter, open_project_registry, run_project

TRAIN_END = "2014-01-01"  # rows before this day are the training data; the rest is production

DEMO_SPEC = {
    "name": "seattle-weather",
    "description": "Predict the day's weather (sun, fog, rain, drizzle, snow) from measurements.",
    "seed": 42,
    "data": {"source": "data/weather_2012_2013.csv"},
    "label": "weather",
    "exclude": ["date"],
    "split": {"method": "random", "test_size": 0.25, "stratify": True},
    "model": {
        "flavor": "sklearn",
        "estimator": "sklearn.ensemble.RandomForestClassifier",
        "params": {"n_estimators": 200, "min_samples_leaf": 3, "n_jobs": 1},
    },
    "metrics": {"primary": "accuracy", "others": ["balanced_accuracy", "f1_macro", "log_loss"]},
    "gates": {"rules": [{"metric": "accuracy", "min": 0.5}]},
}


def seattle_weather() -> pd.DataFrame:
    """The bundled Seattle weather data with a ``month`` column derived from the date."""
    from vega_datasets import data

    frame: pd.DataFrame = data.seattle_weather()
    frame["month"] = frame["date"].dt.month
    return frame


def create_demo_project(directory: Path) -> bool:
    """Write the demo project unless it exists; return whether it was created."""
    if (directory / SPEC_FILE).exists():
        return False
    (directory / "data").mkdir(parents=True, exist_ok=True)
    frame = seattle_weather()
    history = frame[frame["date"] < TRAIN_END]
    production = frame[frame["date"] >= TRAIN_END]
    history.to_csv(directory / "data" / "weather_2012_2013.csv", index=False)
    production.to_csv(directory / "data" / "weather_2014_2015.csv", index=False)
    header = "# readyml demo project: Seattle weather (vega_datasets), trained on 2012–2013.\n"
    (directory / SPEC_FILE).write_text(
        header + yaml.safe_dump(DEMO_SPEC, sort_keys=False), encoding="utf-8"
    )
    (directory / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
    return True


def run_demo(directory: Path) -> int:
    """Build (or reuse) the demo project, run the pipeline, check reproducibility, promote.

    Returns the process exit code: 0 when the run succeeded, was reproducible and blessed.
    """
    created = create_demo_project(directory)
    state = "new project" if created else "existing project; unchanged steps are skipped"
    console.stdout.print(f"[bold]readyml demo[/] in {directory} ({state})")
    project = Project.load(directory)
    registry = open_project_registry(project)
    result = run_project(project, registry=registry, reporter=default_reporter())
    if result.error is not None:
        raise result.error
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
    console.key_values(
        "summary",
        [
            ("version", f"{ref} ({version.status}){promoted}"),
            ("metrics", ", ".join(f"{k} {v:.3f}" for k, v in valid.items())),
            ("gate", f"{gate['decision']}: " + "; ".join(r["message"] for r in gate["reasons"])),
            (
                "reproducible",
                f"{reproducibility.passed} "
                f"({reproducibility.identical_predictions:.0%} identical predictions)",
            ),
            (
                "skipped steps",
                ", ".join(s.name for s in result.steps if s.status == "skipped") or "none",
            ),
            ("registry", repr(registry.store)),
            ("artifacts", registry.artifacts.url_for(f"models/{registered['name']}")),
            ("export", result.value("export")["path"]),
        ],
    )
    console.stdout.print("\nnext:")
    for command in (
        f"readyml models show {registered['name']}@champion -p {directory}",
        f"readyml models history {registered['name']} -p {directory}",
        f"readyml run -p {directory} --check-reproducible",
    ):
        console.stdout.print(f"  {command}")
    return 0 if reproducibility.passed and gate["decision"] == "blessed" else 1
