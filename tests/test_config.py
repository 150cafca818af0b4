from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from readyml.config import Project, parse_spec
from readyml.errors import ConfigError
from readyml.scaffold import init_project
from support import IRIS_SPEC, write_project


def test_minimal_spec_fills_defaults() -> None:
    spec = parse_spec(IRIS_SPEC)
    assert spec.split.method == "random"
    assert spec.seed == 7
    assert spec.gates.rules[0].metric == "accuracy"
    assert spec.feature_specs() is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lable": "x"}, "unknown key 'lable'"),
        (
            {"model": {"flavor": "sklearn", "estimator": "a.B", "parms": {}}},
            "unknown key 'model.parms'",
        ),
        ({"seed": "abc"}, "seed: "),
        ({"split": {"method": "shuffle"}}, "split.method"),
        ({"split": {"method": "time"}}, "split.method 'time' needs split.time_column"),
        ({"split": {"test_size": 1.5}}, "split.test_size"),
        (
            {"model": {"flavor": "sklearn"}},
            "give exactly one of model.estimator or model.entry_point",
        ),
        ({"model": {"entry_point": "nocolon"}}, "expected 'module:function'"),
        ({"metrics": {"primary": "acuracy"}}, "unknown metric 'acuracy'"),
        ({"gates": {"rules": [{"metric": "accuracy"}]}}, "give min, max or both"),
        ({"name": "bad name!"}, "name: "),
        ({"serving": {"device": "gpu"}}, "serving.device"),
        (
            {"serving": {"request_log": {"compression": "brotli"}}},
            "serving.request_log.compression",
        ),
    ],
)
def test_bad_spec_gives_one_line_naming_the_key(change: dict[str, object], message: str) -> None:
    raw = {**IRIS_SPEC, **change}
    with pytest.raises(ConfigError) as info:
        parse_spec(raw)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_missing_required_key_is_named() -> None:
    raw = {k: v for k, v in IRIS_SPEC.items() if k != "label"}
    with pytest.raises(ConfigError, match="missing required key 'label'"):
        parse_spec(raw)


def test_load_reports_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        Project.load(tmp_path)
    (tmp_path / "readyml.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        Project.load(tmp_path)
    (tmp_path / "readyml.yaml").write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        Project.load(tmp_path)


def test_loader_source_is_recognised() -> None:
    spec = parse_spec({**IRIS_SPEC, "data": {"source": "features:load"}})
    assert spec.data.is_loader
    assert not parse_spec(IRIS_SPEC).data.is_loader


def test_init_writes_a_spec_that_validates(tmp_path: Path) -> None:
    written = init_project(tmp_path / "new")
    assert (tmp_path / "new" / "readyml.yaml") in written
    raw = yaml.safe_load((tmp_path / "new" / "readyml.yaml").read_text())
    assert parse_spec(raw).name == "my-model"
    with pytest.raises(ConfigError, match="already exists"):
        init_project(tmp_path / "new")


def test_project_load_resolves_root(tmp_path: Path) -> None:
    write_project(tmp_path)
    project = Project.load(tmp_path / "readyml.yaml")
    assert project.root == tmp_path.resolve()
    assert project.workspace == tmp_path.resolve() / ".readyml"
