"""The training system: a pipeline of named, recorded, cached steps, and reproducibility checks."""

from readyml.train.pipeline import Pipeline, RunContext, RunResult, StepResult, StepRun, Value
from readyml.train.progress import (
    JsonLinesReporter,
    Reporter,
    RichReporter,
    SilentReporter,
    default_reporter,
)
from readyml.train.run import (
    ReproducibilityReport,
    check_reproducible,
    open_project_registry,
    run_fingerprints,
    run_project,
)
from readyml.train.steps import default_steps

__all__ = [
    "JsonLinesReporter",
    "Pipeline",
    "Reporter",
    "ReproducibilityReport",
    "RichReporter",
    "RunContext",
    "RunResult",
    "SilentReporter",
    "StepResult",
    "StepRun",
    "Value",
    "check_reproducible",
    "default_reporter",
    "default_steps",
    "open_project_registry",
    "run_fingerprints",
    "run_project",
]
