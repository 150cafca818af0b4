"""The GitHub Actions workflow that ``readyml init --ci github`` writes.

Four gates, in order, each failing the job: the project's own unit tests (feature and model
code under ``tests/``), ``readyml check`` (the pipeline's integration checks on a sample,
recording ML Test Score evidence), ``readyml run`` (train, gate and register: exit 1 when
the gate vetoes), and ``readyml score --fail-under 3``.
"""

from __future__ import annotations

from typing import Any

import yaml

WORKFLOW_PATH = ".github/workflows/readyml.yml"
PYTHON_VERSION = "3.11"
MIN_SCORE = 3


def github_workflow(*, python_version: str = PYTHON_VERSION, min_score: int = MIN_SCORE) -> str:
    """The workflow's YAML text.

    Example:
        >>> "readyml score --fail-under 3" in github_workflow()
        True
    """
    document: dict[str, Any] = {
        "name": "readyml",
        "on": {"push": {"branches": ["main"]}, "pull_request": None},
        "permissions": {"contents": "read"},
        "concurrency": {
            "group": "readyml-${{ github.ref }}",
            "cancel-in-progress": True,
        },
        "jobs": {
            "readyml": {
                "runs-on": "ubuntu-latest",
                "timeout-minutes": 60,
                "steps": [
                    {"uses": "actions/checkout@v4"},
                    # No pip cache: setup-python fails it where the repository has no
                    # requirements.txt or pyproject.toml, as a new readyml project has not.
                    {"uses": "actions/setup-python@v5", "with": {"python-version": python_version}},
                    {
                        "name": "Install",
                        "run": "python -m pip install --upgrade pip\n"
                        "if [ -f requirements.txt ]; then pip install -r requirements.txt; fi\n"
                        "pip install readyml pytest\n",
                    },
                    {
                        "name": "Unit tests of feature and model code",
                        "run": "if [ -d tests ]; then pytest -q tests; "
                        "else echo 'no tests/ folder'; fi\n",
                    },
                    {"name": "Pipeline integration checks", "run": "readyml check"},
                    {"name": "Model gate (train, validate, register)", "run": "readyml run"},
                    {
                        "name": "ML Test Score",
                        "run": f"readyml score --fail-under {min_score}",
                    },
                    {
                        "name": "Keep the reports",
                        "if": "always()",
                        "uses": "actions/upload-artifact@v4",
                        "with": {
                            "name": "readyml-reports",
                            "path": ".readyml/reports/",
                            "if-no-files-found": "ignore",
                        },
                    },
                ],
            }
        },
    }
    return "# Written by readyml init --ci github.\n" + yaml.safe_dump(
        document, sort_keys=False, width=100
    )
