"""How a run reports progress: rich on a terminal, JSON lines when not on one."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from rich.console import Console
from rich.status import Status

if TYPE_CHECKING:
    from readyml.train.pipeline import RunResult, StepRun

_SYMBOL = {"succeeded": "[green]✓[/]", "skipped": "[cyan]↷[/]", "failed": "[red]✗[/]"}


class Reporter(Protocol):
    """Receives pipeline events."""

    def run_started(self, run_id: str, steps: list[str]) -> None: ...

    def step_started(self, name: str) -> None: ...

    def step_finished(self, step: StepRun) -> None: ...

    def run_finished(self, result: RunResult) -> None: ...


class RichReporter:
    """A spinner while a step runs, then one line per step."""

    def __init__(self, *, console: Console | None = None) -> None:
        self.console = console if console is not None else Console(stderr=True)
        self._status: Status | None = None

    def run_started(self, run_id: str, steps: list[str]) -> None:
        self.console.print(f"[bold]run[/] {run_id[:8]}  ({' → '.join(steps)})")

    def step_started(self, name: str) -> None:
        self._status = self.console.status(f"{name} …")
        self._status.start()

    def step_finished(self, step: StepRun) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
        line = f"  {_SYMBOL[step.status]} {step.name:<9} {step.duration_s:7.2f} s  {step.message}"
        self.console.print(line, highlight=False)

    def run_finished(self, result: RunResult) -> None:
        colour = "green" if result.status == "succeeded" else "red"
        self.console.print(f"[{colour}]{result.status}[/] in {result.duration_s:.2f} s")


class JsonLinesReporter:
    """One JSON object per event, for logs and machines."""

    def __init__(self, *, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr

    def _emit(self, event: str, **fields: Any) -> None:
        record = {"ts": round(time.time(), 3), "event": event, **fields}
        self.stream.write(json.dumps(record, default=str) + "\n")
        self.stream.flush()

    def run_started(self, run_id: str, steps: list[str]) -> None:
        self._emit("run_started", run_id=run_id, steps=steps)

    def step_started(self, name: str) -> None:
        self._emit("step_started", step=name)

    def step_finished(self, step: StepRun) -> None:
        fields: dict[str, Any] = {"error": step.error} if step.error else {}
        self._emit(
            "step_finished",
            step=step.name,
            status=step.status,
            duration_s=round(step.duration_s, 4),
            message=step.message,
            input_fingerprint=step.input_fingerprint,
            **fields,
        )

    def run_finished(self, result: RunResult) -> None:
        self._emit(
            "run_finished",
            run_id=result.run_id,
            status=result.status,
            duration_s=round(result.duration_s, 4),
            error=str(result.error) if result.error else None,
        )


class SilentReporter:
    """Reports nothing (library use and tests)."""

    def run_started(self, run_id: str, steps: list[str]) -> None:
        return None

    def step_started(self, name: str) -> None:
        return None

    def step_finished(self, step: StepRun) -> None:
        return None

    def run_finished(self, result: RunResult) -> None:
        return None


def default_reporter() -> Reporter:
    """Rich on a terminal, JSON lines otherwise."""
    return RichReporter() if sys.stderr.isatty() else JsonLinesReporter()
