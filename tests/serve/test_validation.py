"""Every kind of bad request gets a 4xx JSON answer naming the field, the expected, the found."""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from readyml.config import Project
from readyml.flavors.sklearn import SklearnModel
from readyml.train import open_project_registry

from .conftest import ROW, Server, serve_process, train_iris
from .test_protocols import SETOSA, v2_columns


def _without(name: str) -> dict[str, float]:
    return {key: value for key, value in ROW.items() if key != name}


BAD_JSON_BODIES: list[tuple[str, str, Any, int, str | None]] = [
    ("missing feature", "/predict", [_without("petal_width")], 400, "petal_width"),
    ("wrong type", "/predict", [ROW | {"sepal_length": "wide"}], 400, "sepal_length"),
    ("boolean for number", "/predict", [ROW | {"sepal_width": True}], 400, "sepal_width"),
    ("null not allowed", "/predict", [ROW | {"petal_length": None}], 400, "petal_length"),
    ("nested value", "/predict", [ROW | {"petal_length": [1.0]}], 400, "petal_length"),
    ("empty list", "/predict", [], 400, "body"),
    ("not records", "/predict", [1, 2], 400, "row 0"),
    ("string body", "/predict", "hello", 400, "body"),
    ("mlflow no format", "/invocations", {"rows": [ROW]}, 400, "body"),
    ("mlflow two formats", "/invocations", {"instances": [ROW], "inputs": [ROW]}, 400, "body"),
    (
        "mlflow short row",
        "/invocations",
        {"dataframe_split": {"columns": list(ROW), "data": [[1.0]]}},
        400,
        "row 0",
    ),
    (
        "v2 wrong datatype",
        "/v2/models/iris/infer",
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "BYTES", "data": ["a"] * 4}]},
        400,
        "x",
    ),
    (
        "v2 wrong shape",
        "/v2/models/iris/infer",
        {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1.0, 2.0, 3.0]}]},
        400,
        "input",
    ),
    (
        "v2 data and shape disagree",
        "/v2/models/iris/infer",
        {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": [1.0] * 4}]},
        400,
        "x",
    ),
    (
        "v2 unknown datatype",
        "/v2/models/iris/infer",
        {"inputs": [{"name": "x", "shape": [1], "datatype": "FP128", "data": [1.0]}]},
        400,
        "input 'x' datatype",
    ),
    (
        "v2 text in numbers",
        "/v2/models/iris/infer",
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ["a", 1, 2, 3]}]},
        400,
        None,
    ),
    ("v2 no inputs", "/v2/models/iris/infer", {"inputs": []}, 400, "inputs"),
    (
        "mlflow duplicate column",
        "/invocations",
        {"dataframe_split": {"columns": [*ROW, "sepal_length"], "data": [[*ROW.values(), 9.0]]}},
        400,
        "dataframe_split.columns",
    ),
    # A logistic regression computes in float64, but an ONNX export or trees would not.
    ("number past float32", "/predict", [ROW | {"sepal_length": 1e39}], 400, "sepal_length"),
    *[
        (
            f"v2 {name}",
            "/v2/models/iris/infer",
            {"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": data}]},
            400,
            "input 'x' data",
        )
        for name, datatype, shape, data in [
            # numpy alone would read true as 1.0, "0.2" as 0.2, truncate 5.5 and make inf.
            ("boolean in numbers", "FP32", [1, 4], [5.1, 3.5, 1.4, True]),
            ("numeric text in numbers", "FP32", [1, 4], [5.1, 3.5, 1.4, "0.2"]),
            ("fraction for an integer", "INT64", [1, 4], [5.5, 3, 1, 0]),
            ("number past FP32", "FP32", [1, 4], [1e300, 3.5, 1.4, 0.2]),
            ("number past FP16 in rows", "FP16", [1, 4], [[70000, 3.5, 1.4, 0.2]]),
            ("negative unsigned", "UINT8", [1, 4], [5, 3, -1, 0]),
            ("ragged rows", "FP64", [2, 2], [[1.0, 2.0], [3.0]]),
            ("number for BOOL", "BOOL", [1], [1]),
        ]
    ],
    (
        "v2 unknown output",
        "/v2/models/iris/infer",
        v2_columns([ROW]) | {"outputs": [{"name": "logits"}]},
        400,
        "outputs",
    ),
]


@pytest.mark.parametrize(
    ("route", "body", "status", "field"),
    [case[1:] for case in BAD_JSON_BODIES],
    ids=[case[0] for case in BAD_JSON_BODIES],
)
def test_bad_json_request_is_4xx_naming_the_field(
    server: Server, route: str, body: Any, status: int, field: str | None
) -> None:
    with server.client() as client:
        answer = client.post(route, json=body)
    assert answer.status_code == status, answer.text
    content = answer.json()
    assert "error" in content
    if field is not None:
        assert content.get("field") == field or field in content["error"], content


@pytest.mark.parametrize(
    ("route", "content", "headers", "status"),
    [
        ("/predict", b"", {}, 400),
        ("/predict", b"[{", {}, 400),
        ("/predict", b"[NaN]", {}, 400),
        ("/predict", b"x" * 70_000, {}, 413),
        ("/invocations", b"{}", {"Content-Type": "application/xml"}, 415),
        ("/predict", b"\x1f\x8b", {"Content-Encoding": "gzip"}, 415),
        ("/v2/models/iris/infer", b"{}", {"Inference-Header-Content-Length": "99"}, 400),
        ("/v2/models/nope/infer", b"{}", {}, 404),
        ("/predict?model=", b"[{}]", {}, 400),
        ("/invocations?model=nope", b"{}", {"Content-Type": "application/json"}, 404),
        ("/v2/models/../../etc/passwd/infer", b"{}", {}, 404),
    ],
    ids=[
        "empty",
        "bad json",
        "nan literal",
        "oversized",
        "media type",
        "compressed body",
        "binary header",
        "no model",
        "empty model query",
        "unknown model query",
        "traversal",
    ],
)
def test_bad_raw_request_is_4xx(
    server: Server, route: str, content: bytes, headers: dict[str, str], status: int
) -> None:
    with server.client() as client:
        answer = client.post(route, content=content, headers=headers)
    assert answer.status_code == status, answer.text
    assert "error" in answer.json()


def test_errors_without_their_own_details_still_name_field_expected_and_found(
    server: Server,
) -> None:
    with server.client() as client:
        answer = client.post(
            "/invocations", content=b"\xff\xfe", headers={"Content-Type": "text/csv"}
        )
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "body: expected UTF-8 CSV text, found other bytes",
        "field": "body",
        "expected": "UTF-8 CSV text",
        "found": "other bytes",
        # MLflow's own error keys, for its clients
        "error_code": "BAD_REQUEST",
        "message": "body: expected UTF-8 CSV text, found other bytes",
    }


def test_invocations_errors_carry_mlflow_error_codes_by_status(server: Server) -> None:
    with server.client() as client:
        unknown = client.post("/invocations?model=nope", json={"inputs": [[1.0]]})
    assert unknown.status_code == 404
    assert unknown.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_oversized_chunked_body_without_length_is_413(server: Server) -> None:
    chunks = iter([b"x" * 40_000, b"x" * 40_000])  # no Content-Length: sent chunked
    with server.client() as client:
        answer = client.post("/predict", content=chunks)
    assert answer.status_code == 413, answer.text
    assert "at most 65536 bytes" in answer.json()["error"]


def test_nan_in_binary_tensor_is_refused(server: Server) -> None:
    raw = np.array([[np.nan, 1.0, 1.0, 1.0]], dtype="<f8").tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [1, 4],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    )
    with server.client() as client:
        answer = client.post(
            "/v2/models/iris/infer",
            content=header + raw,
            headers={"Inference-Header-Content-Length": str(len(header))},
        )
    assert answer.status_code == 400
    assert answer.json()["field"] == "sepal_length"


def test_an_infinite_value_the_model_fails_on_is_a_400_for_that_request_only(
    server: Server,
) -> None:
    raw = np.array([[np.inf, 3.0, 1.0, 0.2]], dtype="<f8").tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [1, 4],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    )
    with server.client() as client:
        answer = client.post(
            "/v2/models/iris/infer",
            content=header + raw,
            headers={"Inference-Header-Content-Length": str(len(header))},
        )
        # The model fails on it (scikit-learn's finite check); the number is to blame.
        assert answer.status_code == 400, answer.text
        assert answer.json()["field"] == "sepal_length"
        assert answer.json()["found"] == "number inf"
        assert client.post("/predict", json=[ROW]).status_code == 200


# -- a model with int64, float64, bool and string features ---------------------------------

MIXED_ROW = {"age": 30, "income": 1.0, "is_member": True, "city": "paris"}
INT64_RANGE = f"an integer from {-(2**63)} to {2**63 - 1} (int64)"


@pytest.fixture(scope="module")
def mixed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of a model whose features are age:int64, income, is_member:bool, city."""
    root = train_iris(tmp_path_factory.mktemp("mixed-serve"), serving={"access_log": False})
    frame = pd.DataFrame(
        {
            "age": [20, 30, 40, 50, 60, 70],
            "income": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "is_member": [True, False, True, False, True, False],
            "city": ["paris", "rome", "paris", "rome", "paris", "rome"],
        }
    )
    model = SklearnModel(estimator=LogisticRegression()).fit(frame, ["a", "a", "a", "b", "b", "b"])
    registry = open_project_registry(Project.load(root))
    with tempfile.TemporaryDirectory() as tmp:
        written = model.save(Path(tmp))
        registry.register(
            "mixed",
            files={path.name: path for path in written},
            model_fingerprint="mixed-test",
            signature=model.signature(),
            input_example=[MIXED_ROW],
            tags={"flavor": "sklearn"},
            status="blessed",
        )
    registry.promote("mixed:1", who="tests", reason="serve tests")
    with serve_process(root, "-m", "mixed@champion") as started:
        yield started


def _mixed_v2(age: dict[str, Any], binary: bytes = b"") -> tuple[bytes, dict[str, str]]:
    """A V2 body for the mixed model with ``age`` as given, binary data appended."""
    inputs = [
        {"name": "age", **age},
        {"name": "income", "datatype": "FP64", "shape": [1], "data": [1.0]},
        {"name": "is_member", "datatype": "BOOL", "shape": [1], "data": [True]},
        {"name": "city", "datatype": "BYTES", "shape": [1], "data": ["paris"]},
    ]
    header = orjson.dumps({"inputs": inputs})
    if not binary:
        return header, {}
    return header + binary, {"Inference-Header-Content-Length": str(len(header))}


@pytest.mark.parametrize("age", [2**63, 2**64 - 1, 2**64, -(2**63) - 1])
def test_an_integer_past_int64_is_a_400_naming_the_feature_on_every_route(
    mixed_server: Server, age: int
) -> None:
    record = orjson.dumps([MIXED_ROW]).replace(b"30", str(age).encode())
    csv = f"age,income,is_member,city\n{age},1.0,true,paris\n"
    requests = [
        ("/predict", record, {}),
        ("/invocations", b'{"dataframe_records": ' + record + b"}", {}),
        ("/invocations", b'{"inputs": ' + record + b"}", {}),
        ("/invocations", csv.encode(), {"Content-Type": "text/csv"}),
    ]
    with mixed_server.client() as client:
        for route, body, headers in requests:
            answer = client.post(route, content=body, headers=headers)
            assert answer.status_code == 400, (route, answer.text)
            content = answer.json()
            assert content["field"] == "age", content
            assert content["expected"] == INT64_RANGE
            assert content["found"] == f"number {age}"  # as sent, even past 64 bits
        assert client.post("/predict", json=[MIXED_ROW]).status_code == 200
    assert "OverflowError" not in mixed_server.log.read_text(errors="replace")


@pytest.mark.parametrize("value", [2**63, 2**64 - 1])
def test_a_v2_uint64_past_int64_for_an_int64_feature_is_a_400_not_wrapped(
    mixed_server: Server, value: int
) -> None:
    raw = np.array([value], dtype="<u8").tobytes()
    bodies = [
        _mixed_v2({"datatype": "UINT64", "shape": [1], "data": [value]}),
        _mixed_v2({"datatype": "UINT64", "shape": [1], "parameters": {"binary_data_size": 8}}, raw),
    ]
    with mixed_server.client() as client:
        for body, headers in bodies:
            answer = client.post("/v2/models/mixed/infer", content=body, headers=headers)
            assert answer.status_code == 400, answer.text
            content = answer.json()
            assert content["field"] == "age"
            assert content["expected"] == f"integers from {-(2**63)} to {2**63 - 1} (int64)"
            assert content["found"] == f"number {value} (element 0)"
        ok, _ = _mixed_v2({"datatype": "UINT64", "shape": [1], "data": [2**63 - 1]})
        assert client.post("/v2/models/mixed/infer", content=ok).status_code == 200


def test_v2_binary_data_that_does_not_spell_its_datatype_is_a_structured_400(
    mixed_server: Server,
) -> None:
    def city(raw: bytes) -> list[dict[str, Any]]:
        return [
            {"name": "age", "datatype": "INT64", "shape": [1], "data": [30]},
            {"name": "income", "datatype": "FP64", "shape": [1], "data": [1.0]},
            {"name": "is_member", "datatype": "BOOL", "shape": [1], "data": [True]},
            {
                "name": "city",
                "datatype": "BYTES",
                "shape": [1],
                "parameters": {"binary_data_size": len(raw)},
            },
        ]

    member = [
        {"name": "age", "datatype": "INT64", "shape": [1], "data": [30]},
        {"name": "income", "datatype": "FP64", "shape": [1], "data": [1.0]},
        {
            "name": "is_member",
            "datatype": "BOOL",
            "shape": [1],
            "parameters": {"binary_data_size": 1},
        },
        {"name": "city", "datatype": "BYTES", "shape": [1], "data": ["paris"]},
    ]
    cases = [
        (city(struct.pack("<I", 10) + b"abc"), struct.pack("<I", 10) + b"abc", "input 'city' data"),
        (
            city(struct.pack("<I", 2) + b"\xff\xfe"),
            struct.pack("<I", 2) + b"\xff\xfe",
            "input 'city' data",
        ),
        (city(b"\x01\x00"), b"\x01\x00", "input 'city' data"),
        (member, b"\x02", "input 'is_member' data"),
    ]
    with mixed_server.client() as client:
        for inputs, raw, field in cases:
            header = orjson.dumps({"inputs": inputs})
            answer = client.post(
                "/v2/models/mixed/infer",
                content=header + raw,
                headers={"Inference-Header-Content-Length": str(len(header))},
            )
            assert answer.status_code == 400, answer.text
            content = answer.json()
            assert set(content) == {"error", "field", "expected", "found"}, content
            assert content["field"] == field
            assert (
                content["error"]
                == f"{field}: expected {content['expected']}, found {content['found']}"
            )
        header = orjson.dumps({"inputs": member})
        answer = client.post(
            "/v2/models/mixed/infer",
            content=header + b"\x01",
            headers={"Inference-Header-Content-Length": str(len(header))},
        )
        assert answer.status_code == 200, answer.text


def test_v2_data_beside_binary_data_size_is_refused(server: Server) -> None:
    raw = np.array([list(ROW.values())], dtype="<f8").tobytes()
    tensor = {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [list(ROW.values())]}
    header = orjson.dumps({"inputs": [tensor | {"parameters": {"binary_data_size": len(raw)}}]})
    with server.client() as client:
        answer = client.post(
            "/v2/models/iris/infer",
            content=header + raw,
            headers={"Inference-Header-Content-Length": str(len(header))},
        )
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == "input 'x' data"
    assert answer.json()["expected"] == "no data when parameters.binary_data_size is given"


V2_SHAPE_AND_NAME_ERRORS: list[tuple[str, list[dict[str, Any]], str, str]] = [
    (
        "three dimensions",
        [{"name": "x", "shape": [1, 1, 4], "datatype": "FP64", "data": [1.0] * 4}],
        "input 'x' shape",
        "shape [1, 1, 4]",
    ),
    (
        "negative dimension",
        [{"name": "x", "shape": [1, -4], "datatype": "FP64", "data": [1.0] * 4}],
        "input 'x' shape",
        "number -4 at index 1",
    ),
    (
        "fractional dimension",
        [{"name": "x", "shape": [1, 4.5], "datatype": "FP64", "data": [1.0] * 4}],
        "input 'x' shape",
        "number 4.5 at index 1",
    ),
    (
        "name given twice",
        [
            {"name": name, "shape": [1], "datatype": "FP64", "data": [1.0]}
            for name in [*ROW, "sepal_width"]
        ],
        "input 'sepal_width'",
        "given twice",
    ),
]


@pytest.mark.parametrize(
    ("inputs", "field", "found"),
    [case[1:] for case in V2_SHAPE_AND_NAME_ERRORS],
    ids=[case[0] for case in V2_SHAPE_AND_NAME_ERRORS],
)
def test_v2_shape_and_name_errors_say_what_is_wrong(
    server: Server, inputs: list[dict[str, Any]], field: str, found: str
) -> None:
    with server.client() as client:
        answer = client.post("/v2/models/iris/infer", json={"inputs": inputs})
    assert answer.status_code == 400, answer.text
    assert (answer.json()["field"], answer.json()["found"]) == (field, found)


def test_a_long_input_name_is_echoed_cut_short(server: Server) -> None:
    name = "n" * 3000
    tensor = {"name": name, "shape": [1], "datatype": "FP64", "data": ["a"]}
    with server.client() as client:
        answer = client.post("/v2/models/iris/infer", json={"inputs": [tensor]})
    assert answer.status_code == 400
    assert len(answer.text) < 400
    assert answer.json()["field"] == f"input '{'n' * 64}…' data"


def test_nan_is_reported_as_nan_from_binary_fp32_and_csv(server: Server) -> None:
    raw = np.array([np.nan, 3.5, 1.4, 0.2], dtype="<f4").tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [1, 4],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    )
    csv = ",".join(ROW) + "\nNaN,3.5,1.4,0.2\n"
    with server.client() as client:
        binary = client.post(
            "/v2/models/iris/infer",
            content=header + raw,
            headers={"Inference-Header-Content-Length": str(len(header))},
        )
        text = client.post("/invocations", content=csv, headers={"Content-Type": "text/csv"})
    for answer in (binary, text):
        assert answer.status_code == 400, answer.text
        assert (answer.json()["field"], answer.json()["found"]) == ("sepal_length", "NaN")


def test_csv_with_a_byte_order_mark_and_blank_lines_is_read(server: Server) -> None:
    csv = "\ufeff" + ",".join(ROW) + "\n\n" + ",".join(map(str, ROW.values())) + "\n\n"
    with server.client() as client:
        answer = client.post(
            "/invocations", content=csv.encode(), headers={"Content-Type": "text/csv"}
        )
        repeated = client.post(
            "/invocations",
            content="sepal_length,sepal_length\n1,2\n",
            headers={"Content-Type": "text/csv"},
        )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": ["setosa"]}
    assert repeated.status_code == 400
    assert repeated.json()["found"] == "'sepal_length' twice"


def test_a_missing_column_error_reads_as_plural(server: Server) -> None:
    columns = {name: [value] for name, value in ROW.items() if name != "petal_width"}
    with server.client() as client:
        answer = client.post("/invocations", json={"inputs": columns})
    assert answer.status_code == 400
    assert answer.json()["expected"] == "a list of numbers"


def test_a_feature_missing_from_a_later_record_names_the_row(server: Server) -> None:
    with server.client() as client:
        answer = client.post("/predict", json=[ROW, ROW, _without("petal_width")])
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == "petal_width"
    assert answer.json()["error"].startswith("row 2: feature 'petal_width': expected")


def test_csv_numbers_are_read_as_pandas_reads_them(server: Server) -> None:
    header = ",".join(ROW)
    for cell in ("5_1", "\u0665"):  # Python's int() reads both; pandas reads text
        values = [cell, *[str(value) for value in list(ROW.values())[1:]]]
        with server.client() as client:
            answer = client.post(
                "/invocations",
                content=f"{header}\n{','.join(values)}\n".encode(),
                headers={"Content-Type": "text/csv"},
            )
        assert answer.status_code == 400, answer.text
        assert answer.json()["field"] == "sepal_length"


def test_query_parameters_are_percent_decoded_and_version_picks_a_served_one(
    server: Server,
) -> None:
    with server.client() as client:
        assert client.post("/predict?model=ir%69s", json=[ROW]).status_code == 200
        answer = client.post("/predict?model=iris&version=1", json=[ROW])
        assert answer.status_code == 200 and answer.json()["version"] == 1, answer.text
        assert client.post("/predict?version=99", json=[ROW]).status_code == 404
        for bad in ("x", "%C2%B2"):  # "²" is a digit to str.isdigit(), not to int()
            answer = client.post(f"/invocations?version={bad}", json={"instances": [ROW]})
            assert answer.status_code == 400 and answer.json()["field"] == "version"


def test_an_output_s_binary_data_overrides_the_request_s(server: Server) -> None:
    body = v2_columns([ROW]) | {
        "parameters": {"binary_data_output": True},
        "outputs": [
            {"name": "predict", "parameters": {"binary_data": False}},
            {"name": "predict_proba"},
        ],
    }
    with server.client() as client:
        answer = client.post("/v2/models/iris/infer", json=body)
    assert answer.status_code == 200, answer.text
    length = int(answer.headers["inference-header-content-length"])
    labels, proba = orjson.loads(answer.content[:length])["outputs"]
    assert labels["data"] == [SETOSA] and "binary_data_size" not in labels.get("parameters", {})
    assert proba["parameters"]["binary_data_size"] == len(answer.content) - length
