"""Every kind of bad request gets a 4xx JSON answer naming the field, the expected, the found."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from .conftest import ROW, Server
from .test_protocols import v2_columns


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
