"""Every protocol against a real server: V2 (JSON and binary tensors), /predict, /invocations."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson

from .conftest import ROW, Server

FEATURES = list(ROW)
SETOSA = "setosa"


def v2_columns(rows: list[dict[str, float]]) -> dict[str, Any]:
    """A V2 request with one FP64 tensor per feature column."""
    return {
        "id": "req-1",
        "parameters": {"content_type": "pd", "unused": 1},
        "inputs": [
            {
                "name": name,
                "shape": [len(rows)],
                "datatype": "FP64",
                "parameters": {"content_type": "np"},
                "data": [row[name] for row in rows],
            }
            for name in FEATURES
        ],
    }


def test_v2_health_and_metadata(server: Server) -> None:
    with server.client() as client:
        assert client.get("/v2/health/live").json() == {"live": True}
        assert client.get("/v2/health/ready").json() == {"ready": True}
        meta = client.get("/v2").json()
        assert meta["name"] == "readyml"
        assert "binary_tensor_data" in meta["extensions"]
        model = client.get("/v2/models/iris").json()
        assert [i["name"] for i in model["inputs"]] == FEATURES
        assert {o["name"] for o in model["outputs"]} == {"predict", "predict_proba"}
        assert client.get("/v2/models/iris/ready").json() == {"name": "iris", "ready": True}
        version = model["versions"][0]
        assert client.get(f"/v2/models/iris/versions/{version}/ready").status_code == 200
        assert client.get("/v2/models/iris/versions/999/ready").status_code == 404


def test_v2_infer_with_one_tensor_per_column(server: Server) -> None:
    with server.client() as client:
        answer = client.post("/v2/models/iris/infer", json=v2_columns([ROW, ROW]))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model_name"] == "iris" and body["id"] == "req-1"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["predict"]["datatype"] == "BYTES"
    assert outputs["predict"]["data"] == [SETOSA, SETOSA]
    assert outputs["predict_proba"]["shape"] == [2, 3]
    assert abs(sum(outputs["predict_proba"]["data"][:3]) - 1) < 1e-9


def test_v2_infer_with_one_2d_tensor_and_requested_output(server: Server) -> None:
    request = {
        "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [[*ROW.values()]]}],
        "outputs": [{"name": "predict"}],
    }
    with server.client() as client:
        body = client.post("/v2/models/iris/infer", json=request).json()
    assert [o["name"] for o in body["outputs"]] == ["predict"]
    assert body["outputs"][0]["data"] == [SETOSA]


def test_v2_infer_with_binary_tensors_in_and_out(server: Server) -> None:
    values = np.array([list(ROW.values())] * 3, dtype=np.float32)
    raw = values.astype("<f4").tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [3, 4],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    )
    with server.client() as client:
        answer = client.post(
            "/v2/models/iris/infer",
            content=header + raw,
            headers={
                "Inference-Header-Content-Length": str(len(header)),
                "Content-Type": "application/octet-stream",
            },
        )
    assert answer.status_code == 200, answer.text
    length = int(answer.headers["inference-header-content-length"])
    document = orjson.loads(answer.content[:length])
    data = answer.content[length:]
    outputs = document["outputs"]
    labels_size = outputs[0]["parameters"]["binary_data_size"]
    labels, proba = data[:labels_size], data[labels_size:]
    (first,) = struct.unpack_from("<I", labels, 0)
    assert labels[4 : 4 + first].decode() == SETOSA
    matrix = np.frombuffer(proba, dtype="<f8").reshape(outputs[1]["shape"])
    assert np.allclose(matrix.sum(axis=1), 1.0)


def test_v2_binary_bytes_are_read_for_per_column_tensors(server: Server) -> None:
    inputs = []
    chunks = []
    for name in FEATURES:
        raw = np.array([ROW[name]], dtype="<f8").tobytes()
        inputs.append(
            {
                "name": name,
                "shape": [1],
                "datatype": "FP64",
                "parameters": {"binary_data_size": len(raw)},
            }
        )
        chunks.append(raw)
    header = orjson.dumps({"inputs": inputs})
    with server.client() as client:
        answer = client.post(
            "/v2/models/iris/infer",
            content=header + b"".join(chunks),
            headers={"Inference-Header-Content-Length": str(len(header))},
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == [SETOSA]


def test_predict_takes_records_and_answers_probabilities(server: Server) -> None:
    with server.client() as client:
        answer = client.post("/predict", json=[ROW, ROW], headers={"x-request-id": "mine-1"})
    body = answer.json()
    assert answer.headers["x-request-id"] == "mine-1"
    assert body["predictions"] == [SETOSA, SETOSA]
    assert body["classes"] == ["setosa", "versicolor", "virginica"]
    assert len(body["probabilities"]) == 2 and len(body["probabilities"][0]) == 3


def test_invocations_accepts_every_mlflow_format(server: Server) -> None:
    bodies = [
        {"dataframe_split": {"columns": FEATURES, "data": [list(ROW.values())]}},
        {"dataframe_split": {"columns": FEATURES[::-1], "data": [list(ROW.values())[::-1]]}},
        {"dataframe_records": [ROW]},
        {"instances": [ROW]},
        {"instances": [list(ROW.values())]},
        {"inputs": {name: [value] for name, value in ROW.items()}},
        {"inputs": [ROW], "params": {"ignored": True}},
    ]
    with server.client() as client:
        for body in bodies:
            answer = client.post("/invocations", json=body)
            assert answer.status_code == 200, (body, answer.text)
            assert answer.json() == {"predictions": [SETOSA]}
        csv = ",".join(FEATURES) + "\n" + ",".join(str(v) for v in ROW.values()) + "\n"
        answer = client.post("/invocations", content=csv, headers={"Content-Type": "text/csv"})
        assert answer.json() == {"predictions": [SETOSA]}


def test_mlflow_health_and_openapi_document(server: Server) -> None:
    with server.client() as client:
        assert client.get("/ping").status_code == 200
        document = client.get("/openapi.json").json()
    assert "/v2/models/{model_name}/infer" in document["paths"]
    assert "/invocations" in document["paths"] and "/predict" in document["paths"]
    for route in ("/predict", "/invocations"):
        (query,) = document["paths"][route]["parameters"]
        assert query["name"] == "model" and query["in"] == "query"
        assert query["schema"]["enum"] == ["iris"]
    for path in ("deploy", "promote", "rollback"):
        operation = document["paths"][f"/v2/management/{path}"]["post"]
        assert operation["security"] == [{"bearer": []}] and "401" in operation["responses"]
    assert "get" in document["paths"]["/v2/management/rollout"]
    assert "FeedbackRecord" in document["components"]["schemas"]


def test_wrong_method_is_405_with_allow(server: Server) -> None:
    with server.client() as client:
        answer = client.get("/predict")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"
    assert answer.json() == {
        "error": "method: expected POST for /predict, found GET",
        "field": "method",
        "expected": "POST for /predict",
        "found": "GET",
    }


def test_openapi_lists_csv_binary_tensors_and_the_405_and_415_answers(server: Server) -> None:
    with server.client() as client:
        document = client.get("/openapi.json").json()
    paths = document["paths"]
    invocations = paths["/invocations"]["post"]
    assert set(invocations["requestBody"]["content"]) == {"application/json", "text/csv"}
    infer = paths["/v2/models/{model_name}/infer"]["post"]
    assert set(infer["requestBody"]["content"]) == {"application/json", "application/octet-stream"}
    assert set(infer["responses"]["200"]["content"]) == {
        "application/json",
        "application/octet-stream",
    }
    # Described, not a listed parameter: fuzzers would add it to JSON bodies.
    assert "parameters" not in infer and "Inference-Header-Content-Length" in infer["description"]
    for route in ("/predict", "/invocations", "/v2/models/{model_name}/infer"):
        assert "415" in paths[route]["post"]["responses"]
    assert "Allow" in paths["/predict"]["post"]["responses"]["405"]["headers"]
    assert "405" in paths["/v2/health/ready"]["get"]["responses"]
