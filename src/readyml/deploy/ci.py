"""The GitHub Actions workflow that ``readyml init --ci github`` writes.

Four gates, in order, each failing the job: the project's own unit tests (feature and model
code under ``tests/``), ``readyml run`` (train, gate and register: exit 1 when the gate
vetoes), ``readyml check`` (the pipeline's integration checks on a sample, recording ML Test
Score evidence; it explains the version the run registered), and ``readyml score
--fail-under 3``.

The registry is the team's shared one when the repository has the secrets
``READYML_STORE_URL`` and ``READYML_ARTIFACTS_URL`` (``.readyml/`` is not committed). Without
them each job starts from an empty local registry, which never holds production evidence: the
checks that need it (model-2) are skipped and the score is reported, not gated, since its
monitoring section can only be earned in production.
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
                # The team's shared registry, when the repository has these secrets.
                "env": {
                    "READYML_STORE_URL": "${{ secrets.READYML_STORE_URL }}",
                    "READYML_ARTIFACTS_URL": "${{ secrets.READYML_ARTIFACTS_URL }}",
                },
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
                    {"name": "Model gate (train, validate, register)", "run": "readyml run"},
                    {
                        "name": "Pipeline integration checks",
                        "run": 'if [ -n "$READYML_STORE_URL" ]; then readyml check; '
                        "else readyml check --skip model-2; fi\n",
                    },
                    {
                        "name": "ML Test Score",
                        "run": 'if [ -n "$READYML_STORE_URL" ]; then '
                        f"readyml score --fail-under {min_score}; "
                        "else readyml score; echo 'not gated: no shared registry "
                        "(READYML_STORE_URL), so no production evidence'; fi\n",
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
