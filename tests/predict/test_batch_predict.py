"""Batch prediction in-process: streaming output equal to the server's answers; bad input."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from readyml.cli import app
from readyml.config import Project
from readyml.flavors.sklearn import SklearnModel
from readyml.predict import Predictor
from readyml.predict.batch import BatchPrediction, load_predictor
from readyml.registry import open_registry
from support import iris_frame

runner = CliRunner()
IRIS_CLASSES = ["setosa", "versicolor", "virginica"]


@pytest.fixture(scope="module")
def iris_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from serve.conftest import train_iris

    return train_iris(tmp_path_factory.mktemp("iris-batch"))


def iris_input(path: Path, copies: int = 7, row_group_rows: int = 200) -> pd.DataFrame:
    """Iris features repeated ``copies`` times, with an ``id`` column, written to ``path``."""
    frame = pd.concat([iris_frame().drop(columns=["species"])] * copies, ignore_index=True)
    frame.insert(0, "id", [f"r{i}" for i in range(len(frame))])
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_rows)
    return frame


def server_answers(predictor: Predictor, records: Sequence[Any]) -> tuple[list[Any], Any]:
    """Labels and probabilities as the server computes them for JSON records."""
    part, _ = predictor.from_records(records)
    prediction = predictor.predict_parts([part])
    return prediction.labels_list, prediction.proba


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def batch_predict(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["batch-predict", *args])
    return result.exit_code, result.stdout, result.stderr


def test_batch_predict_streams_the_servers_answers_in_input_order(
    iris_root: Path, tmp_path: Path
) -> None:
    frame = iris_input(tmp_path / "in.parquet")
    out = tmp_path / "out" / "scored.parquet"
    code, stdout, stderr = batch_predict(
        "iris@champion",
        str(tmp_path / "in.parquet"),
        "--out",
        str(out),
        "-p",
        str(iris_root),
        "--batch-rows",
        "128",
        "--keep",
        "id",
        "--row-id",
        "--engine",
        "local",
    )
    assert code == 0, stderr
    assert f"{len(frame):,} rows scored with iris:1 on local" in stdout
    scored = pq.read_table(out)
    assert scored.column_names == [
        "row_id",
        "id",
        "prediction",
        *[f"proba_{c}" for c in IRIS_CLASSES],
    ]
    assert scored.column("row_id").to_pylist() == list(range(len(frame)))
    assert scored.column("id").to_pylist() == frame["id"].tolist()
    predictor = load_predictor(iris_root, "iris:1")
    records = frame.drop(columns=["id"]).to_dict(orient="records")
    labels, proba = server_answers(predictor, records)
    assert scored.column("prediction").to_pylist() == labels
    ours = np.column_stack([scored.column(f"proba_{c}").to_numpy() for c in IRIS_CLASSES])
    assert np.array_equal(ours, proba)
    assert [p.name for p in out.parent.iterdir()] == ["scored.parquet"]  # no temporary left


def test_batch_predict_types_mixed_columns_as_the_server_does(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    rows = 600
    frame = pd.DataFrame(
        {
            "amount": rng.normal(size=rows),
            "visits": rng.integers(0, 20, size=rows),
            "plan": rng.choice(["basic", "pro", "team"], size=rows),
            "active": rng.random(rows) > 0.5,
        }
    )
    label = np.where(frame["amount"] + (frame["plan"] == "pro") > 0.5, "churn", "stay")
    root = _register(tmp_path / "project", frame, label, categorical=["plan"])
    source = tmp_path / "mixed.parquet"
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.set_column(2, "plan", table.column("plan").dictionary_encode())
    pq.write_table(table, source, row_group_size=100)
    result = BatchPrediction(engine="local", batch_rows=70).run(
        Project.load(root), "mixed@champion", source, tmp_path / "out.parquet"
    )
    assert (result.rows, result.engine, result.model) == (rows, "local", "mixed:1")
    predictor = load_predictor(root, "mixed:1")
    assert predictor.layout == "mixed"
    records = [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in record.items()}
        for record in frame.to_dict(orient="records")
    ]
    labels, proba = server_answers(predictor, records)
    scored = pq.read_table(tmp_path / "out.parquet")
    assert scored.column("prediction").to_pylist() == labels
    assert np.array_equal(scored.column("proba_churn").to_numpy(), proba[:, 0])


def _register(root: Path, frame: pd.DataFrame, label: Any, *, categorical: list[str]) -> Path:
    root.mkdir(parents=True)
    spec = {
        "name": "mixed",
        "data": {"source": "data.csv"},
        "label": "y",
        "model": {"flavor": "sklearn", "estimator": "sklearn.linear_model.LogisticRegression"},
    }
    (root / "readyml.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    numeric = [c for c in frame.columns if c not in categorical]
    model = SklearnModel(
        estimator=LogisticRegression(max_iter=500), categorical=categorical, numeric=numeric
    ).fit(frame, label)
    registry = open_registry(Project.load(root).workspace)
    with tempfile.TemporaryDirectory() as tmp:
        written = model.save(Path(tmp))
        registry.register(
            "mixed",
            files={path.name: path for path in written},
            model_fingerprint="mixed-test",
            signature=model.signature(),
            status="blessed",
        )
    registry.promote("mixed:1", who="tests", reason="batch tests")
    return root


def _write(path: Path, columns: dict[str, pa.Array]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def _iris_columns(rows: int = 10) -> dict[str, pa.Array]:
    frame = iris_frame().head(rows)
    return {name: pa.array(frame[name].to_numpy()) for name in frame.columns if name != "species"}


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing file", "expected a Parquet file, found no such file"),
        ("not parquet", "expected a Parquet file, found"),
        ("missing column", "column 'petal_width': expected the model's feature"),
        ("wrong type", "column 'sepal_length': expected a numeric column"),
        (
            "null",
            "column 'sepal_width': expected no nulls (the schema does not allow them), found 1",
        ),
        ("nan", "column 'petal_length': expected a number, found null (row 7)"),
        ("keep missing", "--keep 'customer': expected a column of the input"),
        ("bad option", "--batch-rows: expected at least 1, found 0"),
    ],
)
def test_batch_predict_refuses_bad_input_in_one_line(
    iris_root: Path, tmp_path: Path, case: str, expected: str
) -> None:
    columns = _iris_columns()
    source = tmp_path / "in.parquet"
    extra: list[str] = []
    if case == "not parquet":
        source.write_text("a,b\n1,2\n", encoding="utf-8")
    elif case == "missing column":
        del columns["petal_width"]
    elif case == "wrong type":
        columns["sepal_length"] = pa.array([str(v) for v in range(10)])
    elif case == "null":
        columns["sepal_width"] = pa.array([1.0, None, *[1.0] * 8])
    elif case == "nan":  # a NaN value, not a null: only the batch check sees it
        values = np.ones(10)
        values[7] = np.nan
        columns["petal_length"] = pa.array(values, from_pandas=False)
    elif case == "keep missing":
        extra = ["--keep", "customer"]
    elif case == "bad option":
        extra = ["--batch-rows", "0"]
    if case not in ("missing file", "not parquet"):
        _write(source, columns)
    out = tmp_path / "out.parquet"
    code, _, stderr = batch_predict(
        "iris@champion", str(source), "--out", str(out), "-p", str(iris_root), *extra
    )
    assert code == 2
    assert expected in one_error_line(stderr)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_batch_predict_on_ray_without_ray_names_the_extra(
    iris_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if not installed
    source = _write(tmp_path / "in.parquet", _iris_columns())
    code, _, stderr = batch_predict(
        "iris@champion",
        str(source),
        "--out",
        str(tmp_path / "o.parquet"),
        "-p",
        str(iris_root),
        "--engine",
        "ray",
    )
    assert code == 2
    assert "pip install 'readyml[ray]'" in one_error_line(stderr)


def test_auto_engine_uses_ray_only_for_a_cluster_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert BatchPrediction()._engine() == "local"
    assert BatchPrediction(ray_address="auto")._engine() == "ray"
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    assert BatchPrediction()._engine() == "ray"
    assert BatchPrediction(engine="local")._engine() == "local"
