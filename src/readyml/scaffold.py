"""``readyml init``: write a commented starter project."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from readyml.config import SPEC_FILE, WORKSPACE_DIR
from readyml.errors import ConfigError

GITIGNORE = f"{WORKSPACE_DIR}/\n__pycache__/\n"


def starter_spec() -> str:
    """The commented ``readyml.yaml`` that ``readyml init`` writes."""
    return resources.files("readyml").joinpath("templates", SPEC_FILE).read_text(encoding="utf-8")


# A model name the registry takes (as ``ProjectSpec.name``).
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
TEMPLATE_NAME = "my-model"  # the name in the template, replaced by the project's


def model_name_for(directory: Path) -> str:
    """A model name from the project folder's name: ``Churn Model/`` gives ``Churn-Model``.

    Named after its folder, a project does not share a name with every other starter in a
    shared registry (a PostgreSQL store would merge their versions under ``my-model``).
    Characters a model name cannot hold become ``-``; a folder name with no letter or digit
    gives ``my-model``.
    """
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", directory.resolve().name)
    name = re.sub(r"^[^A-Za-z0-9]+", "", name)[:128]
    return name if MODEL_NAME.match(name) else TEMPLATE_NAME


# CI systems ``readyml init --ci`` can write a workflow for.
CI_SYSTEMS = ("github",)


def init_project(
    directory: Path, *, force: bool = False, ci: str | None = None, name: str | None = None
) -> list[Path]:
    """Create ``directory`` with a starter ``readyml.yaml``, a ``data/`` folder and a .gitignore.

    The model is called ``name``, by default after the folder (:func:`model_name_for`).
    With ``ci="github"``, also a GitHub Actions workflow (``.github/workflows/readyml.yml``).
    Refuses to overwrite an existing spec unless ``force``; a bad name, a path that is not a
    folder, or one that cannot be written, is a ConfigError.
    """
    if ci is not None and ci not in CI_SYSTEMS:
        raise ConfigError(f"--ci: expected one of {list(CI_SYSTEMS)}, found {ci!r}")
    if name is not None and not MODEL_NAME.match(name):
        raise ConfigError(
            "--name: expected a model name (a letter or digit, then up to 127 letters, digits, "
            f"'_', '.' or '-'), found {name!r}"
        )
    if directory.exists() and not directory.is_dir():
        raise ConfigError(
            f"directory '{directory}': expected a folder (new or existing), found a file"
        )
    try:
        return _write_project(directory, force=force, ci=ci, name=name)
    except OSError as exc:
        raise ConfigError(
            f"directory '{directory}': cannot create the project there "
            f"({exc.strerror or exc}: '{exc.filename}')"
        ) from exc


def _write_project(directory: Path, *, force: bool, ci: str | None, name: str | None) -> list[Path]:
    spec_path = directory / SPEC_FILE
    if spec_path.exists() and not force:
        raise ConfigError(f"'{spec_path}' already exists; pass --force to overwrite it")
    (directory / "data").mkdir(parents=True, exist_ok=True)
    spec = starter_spec().replace(
        f"\nname: {TEMPLATE_NAME}\n", f"\nname: {name or model_name_for(directory)}\n", 1
    )
    spec_path.write_text(spec, encoding="utf-8")
    written = [spec_path]
    gitignore = directory / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text(GITIGNORE, encoding="utf-8")
        written.append(gitignore)
    elif _add_ignored(gitignore):
        written.append(gitignore)
    if ci == "github":
        from readyml.deploy.ci import WORKFLOW_PATH, github_workflow

        workflow = directory / WORKFLOW_PATH
        if workflow.exists() and not force:
            raise ConfigError(f"'{workflow}' already exists; pass --force to overwrite it")
        workflow.parent.mkdir(parents=True, exist_ok=True)
        workflow.write_text(github_workflow(), encoding="utf-8")
        written.append(workflow)
    return written


def _add_ignored(gitignore: Path) -> bool:
    """Append the lines of :data:`GITIGNORE` an existing ``.gitignore`` lacks (the workspace
    holds the metadata store and model artifacts, which belong in no commit)."""
    text = gitignore.read_text(encoding="utf-8", errors="replace")
    present = {line.strip() for line in text.splitlines()}
    missing = [line for line in GITIGNORE.splitlines() if line not in present]
    if not missing:
        return False
    joined = "" if not text or text.endswith("\n") else "\n"
    gitignore.write_text(text + joined + "\n".join(missing) + "\n", encoding="utf-8")
    return True
