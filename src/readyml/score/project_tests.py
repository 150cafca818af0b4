"""Data 7 and Infra 2: run the project's own unit tests of its feature and model code.

A project's code lives next to readyml.yaml: the feature code (the ``data.source`` loader's
module, a ``features.py`` or ``features/`` package, or ``score.feature_modules``) and the
model code (``model.entry_point``'s module, or a torch factory's). Its tests live in
``score.tests_dir`` (``tests/``). A test file *covers* a module when it imports it.

Each run is a fresh ``python -m pytest`` subprocess in the project folder, so the project's
imports and fixtures behave as in its own CI; with ``coverage`` installed it runs under
``coverage run --source=MODULES`` and the line coverage of each module is recorded too.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import asdict, dataclass, field
from pathlib import Path

from readyml.config import Project
from readyml.types import JSON

# Longest a project's test run may take, in seconds.
TEST_TIMEOUT_S = 600.0
# Characters of pytest output kept in the evidence when a run fails.
OUTPUT_KEPT = 2000


def _local_module(root: Path, target: str | None) -> str | None:
    if not target or ":" not in target:
        return None
    top = target.split(":", 1)[0].split(".", 1)[0]
    if (root / f"{top}.py").exists() or (root / top / "__init__.py").exists():
        return target.split(":", 1)[0]
    return None


def feature_modules(project: Project) -> list[str]:
    """Project modules that compute features: configured, or detected."""
    configured = project.spec.score.feature_modules
    if configured is not None:
        return list(configured)
    root, spec = project.root, project.spec
    found: list[str] = []
    loader = _local_module(root, spec.data.source) if spec.data.is_loader else None
    if loader:
        found.append(loader)
    if (root / "features.py").exists() or (root / "features" / "__init__.py").exists():
        found.append("features")
    return list(dict.fromkeys(found))


def model_modules(project: Project) -> list[str]:
    """Project modules that hold model code (entry point, torch factory)."""
    spec = project.spec
    found = [
        _local_module(project.root, spec.model.entry_point),
        _local_module(project.root, spec.model.estimator),
    ]
    return list(dict.fromkeys(m for m in found if m))


def _imports(text: str, module: str) -> bool:
    escaped = re.escape(module)
    pattern = rf"^\s*(from\s+{escaped}(\.|\s)|import\s+{escaped}(\.|\s|$|,))"
    return re.search(pattern, text, flags=re.MULTILINE) is not None


def covering_tests(project: Project, modules: list[str]) -> dict[str, list[Path]]:
    """For each module, the test files under ``score.tests_dir`` that import it."""
    tests_dir = project.root / project.spec.score.tests_dir
    files = sorted(tests_dir.rglob("test_*.py")) if tests_dir.is_dir() else []
    texts = {path: path.read_text(encoding="utf-8", errors="replace") for path in files}
    return {module: [p for p, t in texts.items() if _imports(t, module)] for module in modules}


@dataclass
class ProjectTestRun:
    """The outcome of one pytest run of project tests."""

    files: list[str]
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    exit_code: int = 0
    coverage: dict[str, float] = field(default_factory=dict)
    output: str = ""

    @property
    def passed(self) -> bool:
        """Whether pytest exited cleanly and ran at least one test."""
        return self.exit_code == 0 and self.tests - self.skipped > 0

    def to_dict(self) -> JSON:
        """JSON form."""
        return asdict(self)


def _junit_counts(path: Path, run: ProjectTestRun) -> None:
    if not path.exists():
        return
    root = ElementTree.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    for suite in suites:
        run.tests += int(suite.get("tests", 0))
        run.failures += int(suite.get("failures", 0))
        run.errors += int(suite.get("errors", 0))
        run.skipped += int(suite.get("skipped", 0))


def run_pytest(
    project: Project, files: list[Path], *, modules: list[str], timeout_s: float = TEST_TIMEOUT_S
) -> ProjectTestRun:
    """Run ``files`` with pytest in a subprocess in the project folder."""
    root = project.root
    run = ProjectTestRun(files=[str(p.relative_to(root)) for p in files])
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        pytest_args = [
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            f"--rootdir={root}",
            *run.files,
        ]
        with_coverage = bool(modules) and importlib.util.find_spec("coverage") is not None
        data_file = Path(tmp) / ".coverage"
        if with_coverage:
            command = [
                sys.executable,
                "-m",
                "coverage",
                "run",
                f"--data-file={data_file}",
                f"--source={','.join(modules)}",
                *pytest_args,
            ]
        else:
            command = [sys.executable, *pytest_args]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
        }
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        try:
            done = subprocess.run(
                command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout_s
            )
        except subprocess.TimeoutExpired:
            run.exit_code = -1
            run.output = f"pytest did not finish within {timeout_s:g} s"
            return run
        run.exit_code = done.returncode
        if done.returncode != 0:
            run.output = (done.stdout + done.stderr)[-OUTPUT_KEPT:]
        _junit_counts(junit, run)
        if with_coverage:
            report = Path(tmp) / "coverage.json"
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "coverage",
                    "json",
                    f"--data-file={data_file}",
                    "-o",
                    str(report),
                ],
                cwd=root,
                env=env,
                capture_output=True,
                timeout=timeout_s,
            )
            if report.exists():
                run.coverage = _module_coverage(json.loads(report.read_text()), root, modules)
    return run


def _module_coverage(report: JSON, root: Path, modules: list[str]) -> dict[str, float]:
    coverage: dict[str, float] = {}
    files = report.get("files", {})
    for module in modules:
        prefix = module.replace(".", "/")
        covered = total = 0
        for name, data in files.items():
            relative = Path(name).resolve()
            if relative.is_relative_to(root):
                relative = relative.relative_to(root)
            text = str(relative)
            if text == f"{prefix}.py" or text.startswith(f"{prefix}/"):
                covered += int(data["summary"]["covered_lines"])
                total += int(data["summary"]["num_statements"])
        if total:
            coverage[module] = round(covered / total, 4)
    return coverage


def check_tested_code(project: Project, modules: list[str], *, what: str) -> tuple[bool, JSON]:
    """Check that every module has tests that import it, and run them; (passed, details)."""
    if not modules:
        return True, {
            "modules": [],
            "note": f"the project has no {what} code of its own: nothing to test",
        }
    covering = covering_tests(project, modules)
    untested = [m for m, files in covering.items() if not files]
    files = sorted({p for paths in covering.values() for p in paths})
    details: JSON = {
        "modules": modules,
        "tests_dir": project.spec.score.tests_dir,
        "untested": untested,
    }
    if not files:
        details["error"] = f"no test under {project.spec.score.tests_dir}/ imports {modules}"
        return False, details
    run = run_pytest(project, files, modules=modules)
    details["run"] = run.to_dict()
    return run.passed and not untested, details
