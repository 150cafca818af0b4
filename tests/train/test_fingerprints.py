"""What a run fingerprints: a model by its content, code by every project module it imports,
and what an error while importing the project's code looks like."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from sklearn.ensemble import RandomForestClassifier

from readyml import _project_imports as project_imports
from readyml.config import Project
from readyml.errors import ConfigError
from readyml.flavors.sklearn import SklearnModel
from readyml.registry import Registry
from readyml.train import RunResult, open_project_registry, run_project
from readyml.train.fingerprint import hash_callable_source, hash_model_files, project_modules
from support import IRIS_SPEC, iris_frame, write_project

ENTRY_SPEC = {**IRIS_SPEC, "model": {"entry_point": "train_fn:fit", "params": {}}}
# An entry point whose model depends on a module it imports, and on a file it reads at fit
# (which no fingerprint covers: training that differs for reasons outside the inputs).
TRAIN_FN = """\
from pathlib import Path

import helpers
from sklearn.ensemble import RandomForestClassifier


def fit(X, y, params, seed):
    extra = Path(__file__).with_name("extra_trees.txt")
    n = helpers.N_TREES + (int(extra.read_text()) if extra.exists() else 0)
    return RandomForestClassifier(n_estimators=n, random_state=seed).fit(X, y)
"""


def _entry_project(root: Path, *, trees: int = 5) -> Path:
    (root / "train_fn.py").write_text(TRAIN_FN)
    (root / "helpers.py").write_text(f"N_TREES = {trees}\n")
    return write_project(root, ENTRY_SPEC)


def _run(root: Path, *, force: bool = False) -> tuple[RunResult, Registry]:
    project = Project.load(root)
    registry = open_project_registry(project)
    return run_project(project, registry=registry, force=force), registry


def _statuses(result: RunResult) -> dict[str, str]:
    return {s.name: s.status for s in result.steps}


def _saved(model: SklearnModel) -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        return {p.name: p.read_bytes() for p in model.save(Path(tmp))}


# -- the model fingerprint ----------------------------------------------------------------


def test_a_retrained_model_that_differs_is_registered_as_a_new_version(tmp_path: Path) -> None:
    _entry_project(tmp_path)
    first, registry = _run(tmp_path)
    (tmp_path / "extra_trees.txt").write_text("3")  # the inputs are unchanged
    forced, _ = _run(tmp_path, force=True)
    assert forced.status == "succeeded", forced.error
    assert forced.value("registered") == {"name": "iris", "version": 2, "new": True}
    assert forced.values["model"].fingerprint != first.values["model"].fingerprint
    v2 = registry.get("iris:2")
    assert v2.model_fingerprint == forced.values["model"].fingerprint
    assert v2.metrics == forced.value("metrics")
    # The next run reuses the cached model: the one version 2 holds.
    again, _ = _run(tmp_path)
    assert _statuses(again)["train"] == "skipped"
    assert again.value("registered") == {"name": "iris", "version": 2, "new": False}


def test_an_unchanged_seeded_retrain_is_recognised(tmp_path: Path) -> None:
    _entry_project(tmp_path)
    first, registry = _run(tmp_path)
    forced, _ = _run(tmp_path, force=True)
    assert _statuses(forced)["train"] == "succeeded"
    assert forced.values["model"].fingerprint == first.values["model"].fingerprint
    assert forced.value("registered") == {"name": "iris", "version": 1, "new": False}
    assert [v.version for v in registry.list_versions("iris")] == [1]


def test_model_fingerprint_is_the_content_of_its_saved_files() -> None:
    frame = iris_frame()
    X, y = frame.drop(columns="species"), frame["species"].to_numpy()

    def fitted(n: int) -> SklearnModel:
        estimator = RandomForestClassifier(n_estimators=n, random_state=0)
        return SklearnModel(estimator=estimator).fit(X, y)

    a, b, other = _saved(fitted(4)), _saved(fitted(4)), _saved(fitted(5))
    assert a["model.skops"] != b["model.skops"]  # skops names arrays by id() ...
    assert hash_model_files(a) == hash_model_files(b)  # ... which the fingerprint ignores
    assert hash_model_files(a) != hash_model_files(other)
    assert hash_model_files(a) != hash_model_files({**a, "flavor.json": b"{}"})


# -- the code fingerprint -----------------------------------------------------------------


def test_editing_a_module_the_entry_point_imports_retrains(tmp_path: Path) -> None:
    _entry_project(tmp_path, trees=5)
    first, registry = _run(tmp_path)
    (tmp_path / "helpers.py").write_text("N_TREES = 1\n")
    second, _ = _run(tmp_path)
    assert _statuses(second)["train"] == "succeeded"
    assert second.value("registered")["version"] == 2
    assert registry.get("iris:2").model_fingerprint != first.values["model"].fingerprint
    assert second.value("model").model_.n_estimators == 1  # the edited code ran


def test_code_fingerprint_follows_project_imports_only(tmp_path: Path) -> None:
    root = tmp_path / "project"
    package = root / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "train.py").write_text(
        "from . import helpers\n"
        "from .sub.deep import DEPTH\n"
        "import shared\n"
        "import pandas\n"
        "def fit(X, y, params, seed):\n"
        "    from lazy import LAZY  # imported when called\n"
        "    return helpers, DEPTH, LAZY, shared\n"
    )
    (package / "helpers.py").write_text("A = 1\n")
    (package / "sub").mkdir()
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "deep.py").write_text("DEPTH = 1\n")
    (root / "lazy.py").write_text("LAZY = 1\n")
    (root / "unrelated.py").write_text("X = 1\n")
    # A module outside the project, importable like an installed library.
    outside = tmp_path / "site"
    outside.mkdir()
    (outside / "shared.py").write_text("S = 1\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(outside))
        before = hash_callable_source("pkg.train:fit", root=root)
        files = project_modules(package / "train.py", root=root)
        assert {f.relative_to(root.resolve()).as_posix() for f in files} == {
            "pkg/__init__.py",
            "pkg/train.py",
            "pkg/helpers.py",
            "pkg/sub/__init__.py",
            "pkg/sub/deep.py",
            "lazy.py",
        }
        (root / "unrelated.py").write_text("X = 2\n")
        (outside / "shared.py").write_text("S = 2\n")
        assert hash_callable_source("pkg.train:fit", root=root) == before
        for edited in ("pkg/helpers.py", "pkg/sub/deep.py", "lazy.py", "pkg/__init__.py"):
            (root / edited).write_text((root / edited).read_text() + "# edited\n")
            after = hash_callable_source("pkg.train:fit", root=root)
            assert after != before, edited
            before = after


def test_editing_a_module_a_loader_imports_changes_the_code_fingerprint(tmp_path: Path) -> None:
    (tmp_path / "loader.py").write_text(
        "from rows import ROWS\nfrom support import iris_frame\n"
        "def load():\n    return iris_frame().head(ROWS)\n"
    )
    (tmp_path / "rows.py").write_text("ROWS = 150\n")
    before = hash_callable_source("loader:load", root=tmp_path)
    (tmp_path / "rows.py").write_text("ROWS = 140\n")
    assert hash_callable_source("loader:load", root=tmp_path) != before


def test_each_project_imports_its_own_helpers_and_edits_are_picked_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for root, number in ((first, 1), (second, 2)):
        root.mkdir()
        (root / "uses_helpers.py").write_text("import helpers\nVALUE = helpers.VALUE\n")
        (root / "helpers.py").write_text(f"VALUE = {number}\n")
    # A module the process imported from a virtualenv inside the project is not the project's.
    venv = first / ".venv" / "lib" / "site-packages"
    venv.mkdir(parents=True)
    (venv / "installed_thing.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(venv))
    __import__("installed_thing")

    def value(root: Path) -> int:
        return int(project_imports.import_module(root, "uses_helpers:VALUE").VALUE)

    assert (value(first), value(second), value(first)) == (1, 2, 1)
    (first / "helpers.py").write_text("VALUE = 10\n")
    assert value(first) == 10  # the edited module is imported again, not the cached one
    assert "installed_thing" not in project_imports._project_modules(first.resolve())


# -- errors while importing the project's code ---------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def fit(X, y, params, seed):\n    return 1 +\n", "SyntaxError at train_fn.py:2: "),
        ("x = 1 / 0\n", "ZeroDivisionError at train_fn.py:1: division by zero"),
        ("import helpers\n", "SyntaxError at helpers.py:1: "),
        ("import not_a_module_anywhere\n", "at train_fn.py:1: No module named"),
    ],
)
def test_an_error_importing_the_entry_point_is_one_config_error(
    tmp_path: Path, source: str, expected: str
) -> None:
    write_project(tmp_path, ENTRY_SPEC)
    (tmp_path / "train_fn.py").write_text(source)
    (tmp_path / "helpers.py").write_text("N_TREES = 2 +\n")
    with pytest.raises(ConfigError) as raised:
        _run(tmp_path)
    message = str(raised.value)
    assert "\n" not in message
    assert "cannot import module 'train_fn' named by 'train_fn:fit'" in message
    assert expected in message


def test_an_error_at_the_top_of_a_loader_names_its_line(tmp_path: Path) -> None:
    write_project(tmp_path, {**IRIS_SPEC, "data": {"source": "loader:load"}})
    (tmp_path / "loader.py").write_text("import pandas as pd\nx = 1 / 0\n")
    with pytest.raises(ConfigError, match=r"ZeroDivisionError at loader\.py:2: division by zero"):
        _run(tmp_path)


def test_an_entry_point_returning_an_unfitted_estimator_fails_the_run(tmp_path: Path) -> None:
    write_project(tmp_path, ENTRY_SPEC)
    (tmp_path / "train_fn.py").write_text(
        "from sklearn.linear_model import LogisticRegression\n"
        "def fit(X, y, params, seed):\n    return LogisticRegression()\n"
    )
    result, registry = _run(tmp_path)
    assert result.status == "failed" and _statuses(result)["train"] == "failed"
    assert "expected a fitted estimator, found an unfitted LogisticRegression" in str(result.error)
    assert registry.store.get_run(result.run_id).status == "failed"
