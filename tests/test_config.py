from __future__ import annotations

from datetime import date, datetime
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
        (
            {"model": {"estimator": "sklearn.tree.DecisionTreeClassifier", "entry_point": "a:b"}},
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
    (tmp_path / "readyml.yaml").write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ConfigError, match="expected UTF-8 text, found a byte 0xff"):
        Project.load(tmp_path)
    (tmp_path / "readyml.yaml").unlink()
    (tmp_path / "readyml.yaml").mkdir()
    with pytest.raises(ConfigError, match="expected a file, found a folder"):
        Project.load(tmp_path)


def test_loader_source_is_recognised() -> None:
    spec = parse_spec({**IRIS_SPEC, "data": {"source": "features:load"}})
    assert spec.data.is_loader
    assert not parse_spec(IRIS_SPEC).data.is_loader


def test_init_writes_a_spec_that_validates(tmp_path: Path) -> None:
    written = init_project(tmp_path / "new")
    assert (tmp_path / "new" / "readyml.yaml") in written
    raw = yaml.safe_load((tmp_path / "new" / "readyml.yaml").read_text())
    assert parse_spec(raw).name == "new"  # the model is named after its folder
    with pytest.raises(ConfigError, match="already exists"):
        init_project(tmp_path / "new")


@pytest.mark.parametrize(
    ("folder", "name"),
    [("Churn Model", "Churn-Model"), ("_v2 (copy)", "v2-copy-"), ("___", "my-model")],
)
def test_init_names_the_model_after_a_folder_whatever_its_name(
    tmp_path: Path, folder: str, name: str
) -> None:
    init_project(tmp_path / folder)
    raw = yaml.safe_load((tmp_path / folder / "readyml.yaml").read_text())
    assert parse_spec(raw).name == name


def test_init_takes_a_model_name_and_refuses_a_bad_one(tmp_path: Path) -> None:
    init_project(tmp_path / "a", name="churn.v2")
    assert "\nname: churn.v2\n" in (tmp_path / "a" / "readyml.yaml").read_text()
    with pytest.raises(ConfigError, match=r"--name: expected a model name .* found 'a/b'"):
        init_project(tmp_path / "b", name="a/b")
    assert not (tmp_path / "b").exists()


def test_a_key_given_twice_is_named_with_its_lines(tmp_path: Path) -> None:
    write_project(tmp_path)
    spec = tmp_path / "readyml.yaml"
    spec.write_text(spec.read_text() + "name: other\n")
    with pytest.raises(ConfigError) as info:
        Project.load(tmp_path)
    assert str(info.value).startswith(
        "readyml.yaml: expected each key once in a mapping, found 'name' at lines 1 and "
    )


def test_init_adds_the_workspace_to_an_existing_gitignore(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("*.log")
    written = init_project(tmp_path)
    assert tmp_path / ".gitignore" in written
    assert (tmp_path / ".gitignore").read_text() == "*.log\n.readyml/\n__pycache__/\n"
    again = tmp_path / "again"
    again.mkdir()
    (again / ".gitignore").write_text(".readyml/\n__pycache__/\n")
    assert again / ".gitignore" not in init_project(again)


def test_project_load_resolves_root(tmp_path: Path) -> None:
    write_project(tmp_path)
    project = Project.load(tmp_path / "readyml.yaml")
    assert project.root == tmp_path.resolve()
    assert project.workspace == tmp_path.resolve() / ".readyml"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"features": ["sepal_length", "species"]},
            "features: 'species' is the label; a model cannot take its own label as input",
        ),
        (
            {"features": ["sepal_length", {"name": "species", "type": "float"}]},
            "features: 'species' is the label; a model cannot take its own label as input",
        ),
        (
            {"gates": {"rules": [{"metric": "acc", "min": 0.5}]}},
            "gates.rules[0].metric: unknown metric 'acc'; expected one of ['accuracy', ",
        ),
        (
            {"gates": {"champion": {"metric": "acc"}}},
            "gates.champion.metric: unknown metric 'acc'; expected one of ['accuracy', ",
        ),
        (
            {"task": "regression"},
            "gates.rules[0].metric: expected a regression metric among "
            "['mae', 'rmse', 'r2', 'mape'], found 'accuracy'",
        ),
        (
            {"task": "classification", "metrics": {"primary": "rmse"}},
            "metrics.primary: expected a classification metric among ['accuracy', ",
        ),
        (
            {"task": "classification", "metrics": {"others": ["accuracy", "rmse"]}},
            "metrics.others[1]: expected a classification metric among ['accuracy', ",
        ),
        ({"seed": -1}, "seed: expected 0 <= seed < 2**32, found -1"),
        ({"seed": True}, "seed: input should be a valid integer, found True"),
        ({"seed": 5_000_000_000}, "seed: expected 0 <= seed < 2**32, found 5000000000"),
        (
            {"features": [{"name": "sepal_length", "type": "floaty"}]},
            "features[0].type: input should be 'float', 'int', 'bool', 'category', 'string' "
            "or 'datetime', found 'floaty'",
        ),
        ({"features": [{"name": "a", "typ": "float"}]}, "unknown key 'features[0].typ'"),
        ({"features": [{"type": "float"}]}, "missing required key 'features[0].name'"),
        (
            {"features": ["a", 5]},
            "features[1]: expected a column name or a mapping with name and type, found 5",
        ),
        (
            {"split": {"method": "time", "time_column": "day", "cutoff": "yesterday"}},
            "split.cutoff: expected a date (YYYY-MM-DD) or datetime, found 'yesterday'",
        ),
        (
            {"slices": [{"name": "s", "column": "c", "values": [[1]]}]},
            "slices[0].values[0]: expected a string, an integer, a number or a boolean, found [1]",
        ),
        (
            {"monitoring": {"staleness": {"max_model_age": "3 days"}}},
            "monitoring.staleness.max_model_age: expected a duration such as 90s, 5m, 1h, 7d, "
            "found '3 days'",
        ),
        (
            {"monitoring": {"lookback": "7x"}},
            "monitoring.lookback: expected a duration such as 90s, 5m, 1h, 7d, found '7x'",
        ),
        (
            {"monitoring": {"on_alert": {"cooldown": "soon"}}},
            "monitoring.on_alert.cooldown: expected a duration",
        ),
        (
            {"gates": {"rules": [{"metric": "accuracy", "min": 0.9, "max": 0.1}]}},
            "gates.rules[0]: expected min <= max, found min 0.9 > max 0.1 (no value could pass)",
        ),
        (
            {"monitoring": {"on_alert": "retrain"}},
            "monitoring.on_alert: expected a mapping of keys, found 'retrain'",
        ),
        (
            {"monitoring": {"on_alert": {"rollout": {"stepz": [1]}}}},
            "unknown key 'monitoring.on_alert.rollout.stepz'",
        ),
        (
            {"monitoring": {"on_alert": {"server_url": "localhost:1"}}},
            "monitoring.on_alert.server_url: expected an http:// or https:// URL",
        ),
        ({"split": {"test_size": "0.25"}}, "split.test_size: input should be a valid number"),
        ({"split": {"stratify": "yes"}}, "split.stratify: input should be a valid boolean"),
        (
            {"split": {"method": "random", "cutoff": "2024-01-01"}},
            "split.cutoff: expected only with split.method 'time', found it with 'random'",
        ),
        (
            {"gates": {"rules": [{"metric": "accuracy", "min": 1.5}]}},
            "gates.rules[0]: expected a bound within accuracy's range [0, 1], found min 1.5 "
            "(no value could pass)",
        ),
        (
            {"gates": {"rules": [{"metric": "rmse", "max": -1}]}},
            "gates.rules[0]: expected a bound within rmse's range [0, inf], found max -1",
        ),
        (
            {"slices": [{"name": "s", "column": "c", "min": 5, "max": -5}]},
            "slices[0]: expected min < max (min inclusive, max exclusive), found min 5 and max -5",
        ),
        (
            {"slices": [{"name": "a", "column": "c"}, {"name": "a", "column": "d"}]},
            "slices: expected unique names, found 'a' repeated",
        ),
        (
            {"gates": {"rules": [{"metric": "accuracy", "min": 0.5, "slice": "nosuch"}]}},
            "gates.rules[0].slice: expected a declared slice among [] or 'column=value', "
            "found 'nosuch'",
        ),
        (
            {"gates": {"fairness": [{"metric": "accuracy_difference", "max": 0.1}]}},
            "gates.fairness[0]: expected fairness.sensitive to declare attributes, found none",
        ),
        (
            {
                "gates": {"fairness": [{"metric": "bogus", "max": 0.1}]},
                "fairness": {"sensitive": [{"name": "site"}]},
            },
            "gates.fairness[0].metric: expected demographic_parity_difference or "
            "equalized_odds_difference or <metric>_difference, found 'bogus'",
        ),
        (
            {
                "gates": {
                    "fairness": [{"metric": "accuracy_difference", "max": 0.1, "attribute": "x"}]
                },
                "fairness": {"sensitive": [{"name": "site"}]},
            },
            "gates.fairness[0].attribute: expected one of fairness.sensitive ['site'], found 'x'",
        ),
        (
            {
                "metrics": {"primary": "f1_macro"},
                "gates": {"fairness": [{"metric": "accuracy_difference", "max": 0.1}]},
                "fairness": {"sensitive": [{"name": "site"}]},
            },
            "gates.fairness[0].metric: expected f1_macro_difference (the primary metric's gap)",
        ),
        (
            {"score": {"repeat_runs": 1}},
            "score.repeat_runs: input should be greater than or equal to 2, found 1",
        ),
        (
            {"score": {"max_age_days": {"monitor": float("inf")}}},
            "score.max_age_days.monitor: expected more than 0 and at most 36500, found inf",
        ),
        (
            {"score": {"max_age_days": {"monitor-4": float("nan")}}},
            "score.max_age_days.monitor-4: expected more than 0 and at most 36500, found nan",
        ),
        ({"features": []}, "features: expected at least one, found none"),
        (
            {"model": {**IRIS_SPEC["model"], "trusted_types": ["my models.Clf"]}},
            "model.trusted_types[0]: expected a class path such as mymodels.MyClassifier, "
            "found 'my models.Clf'",
        ),
    ],
)
def test_bad_spec_message_names_the_key_expected_and_found(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_spec({**IRIS_SPEC, **change})
    assert str(info.value).startswith(f"readyml.yaml: {message}")
    assert "\n" not in str(info.value)


def test_cutoff_takes_a_date_or_a_datetime() -> None:
    split = {"method": "time", "time_column": "day"}
    spec = parse_spec({**IRIS_SPEC, "split": {**split, "cutoff": "2024-04-15"}})
    assert spec.split.cutoff == date(2024, 4, 15)
    spec = parse_spec({**IRIS_SPEC, "split": {**split, "cutoff": "2024-04-15T06:30:00"}})
    assert spec.split.cutoff == datetime(2024, 4, 15, 6, 30)
    spec = parse_spec({**IRIS_SPEC, "split": {**split, "cutoff": date(2024, 4, 15)}})
    assert spec.split.cutoff == date(2024, 4, 15)


def test_gate_rules_may_name_a_value_slice_and_the_primary_gap() -> None:
    spec = parse_spec(
        {
            **IRIS_SPEC,
            "slices": [{"name": "site", "column": "site"}],
            "gates": {
                "rules": [
                    {"metric": "accuracy", "min": 0.5, "slice": "site"},
                    {"metric": "accuracy", "min": 0.5, "slice": "site=north"},
                ],
                "fairness": [
                    {"metric": "accuracy_difference", "max": 0.2},
                    {"metric": "demographic_parity_difference", "max": 0.2, "attribute": "site"},
                ],
            },
            "fairness": {"sensitive": [{"name": "site"}]},
        }
    )
    assert [rule.slice for rule in spec.gates.rules] == ["site", "site=north"]


def test_seed_bounds_are_accepted() -> None:
    assert parse_spec({**IRIS_SPEC, "seed": 0}).seed == 0
    assert parse_spec({**IRIS_SPEC, "seed": 2**32 - 1}).seed == 2**32 - 1


def test_init_into_a_file_or_an_unwritable_path_is_a_config_error(tmp_path: Path) -> None:
    file = tmp_path / "wine.csv"
    file.write_text("a,b\n1,2\n")
    with pytest.raises(ConfigError) as info:
        init_project(file)
    assert (
        str(info.value) == f"directory '{file}': expected a folder (new or existing), found a file"
    )
    with pytest.raises(ConfigError, match=r"cannot create the project there \(Not a directory"):
        init_project(file / "sub")


def test_trusted_types_take_the_estimator_s_module_colon_class_form() -> None:
    model = {**IRIS_SPEC["model"], "trusted_types": ["mymodels:MyClf", "pkg.mod.Other"]}
    spec = parse_spec({**IRIS_SPEC, "model": model})
    assert spec.model.trusted_types == ["mymodels.MyClf", "pkg.mod.Other"]


@pytest.mark.parametrize("flavor", ["xgboost", "lightgbm", "torch"])
def test_a_flavor_with_a_default_estimator_needs_none(flavor: str) -> None:
    # As the flavor's error for another library's estimator advises.
    assert parse_spec({**IRIS_SPEC, "model": {"flavor": flavor}}).model.estimator is None
