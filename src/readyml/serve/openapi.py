"""The OpenAPI 3.0 document of a running server, built from the models it serves.

Record and column schemas name each served feature with its JSON type, and the path
parameters list the loaded models, so that the document is exact enough for generated
clients and for schemathesis to fuzz the server with it.
"""

from __future__ import annotations

from typing import Any

from readyml import __version__
from readyml.serve.deployment import ModelTable
from readyml.serve.openapi_management import management_paths, management_schemas
from readyml.serve.v2 import DATATYPES

_JSON_TYPES = {
    "number": "number",
    "integer": "integer",
    "boolean": "boolean",
    "string": "string",
    "datetime": "string",
}
_ERROR_STATUSES = {
    "400": "The request is malformed or does not match the model's signature.",
    "401": "A bearer token is needed and none (or a wrong one) came.",
    "404": "No such model or version is loaded.",
    "405": "The path takes other methods; Allow lists them.",
    "409": "The call conflicts with what is served (e.g. pinning the current version).",
    "413": "The body is larger than the server's limit.",
    "415": "The content type is not one this route reads, or the body is compressed.",
    "422": "The model could not predict this input.",
    "503": "The server is overloaded; retry after Retry-After seconds.",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR_HEADERS = {"405": "Allow", "503": "Retry-After"}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: _error(code) for code in codes}


def _error(code: str) -> dict[str, Any]:
    response = _json_body(_ref("Error"), _ERROR_STATUSES[code])
    header = _ERROR_HEADERS.get(code)
    if header is not None:
        kind = "integer" if code == "503" else "string"
        response["headers"] = {header: {"schema": {"type": kind}}}
    return response


def _with_405(paths: dict[str, Any]) -> dict[str, Any]:
    """Every operation of ``paths`` documents the 405 its path answers other methods with."""
    for item in paths.values():
        for method, operation in item.items():
            if method != "parameters":
                operation["responses"].setdefault("405", _error("405"))
    return paths


def build_openapi(table: ModelTable, *, protect_predict: bool) -> dict[str, Any]:
    """The OpenAPI document for the models in ``table``."""
    names = table.names() or ["none"]
    versions = sorted({d.version_label for d in table}) or ["0"]
    default = table.default_or_none()
    record: dict[str, Any] = {"type": "object"}
    columns: dict[str, Any] = {"type": "object"}
    if default is not None and default.predictor.layout != "tensor":
        properties = {}
        column_properties = {}
        for feature in default.predictor.features:
            kind: Any = _JSON_TYPES[feature.kind]
            value: dict[str, Any] = {"type": kind}
            if feature.nullable and feature.kind != "integer":
                value["nullable"] = True
            if feature.kind == "datetime":
                value["format"] = "date-time"
            properties[feature.name] = value
            column_properties[feature.name] = {"type": "array", "items": value, "minItems": 1}
        required = [f.name for f in default.predictor.features]
        record = {"type": "object", "properties": properties, "required": required}
        columns = {"type": "object", "properties": column_properties, "required": required}
    security: list[dict[str, list[str]]] = [{"bearer": []}]
    predict_security = security if protect_predict else []
    model_param = {
        "name": "model_name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": names},
    }
    model_query = {
        "name": "model",
        "in": "query",
        "required": False,
        "description": "The loaded model to ask (default: the first one served).",
        "schema": {"type": "string", "enum": names},
    }
    version_param = {
        "name": "model_version",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": versions},
    }
    binary = {"schema": {"type": "string", "format": "binary"}}
    header_length = {"Inference-Header-Content-Length": {"schema": {"type": "integer"}}}
    infer = {
        "summary": "Open Inference Protocol: infer",
        "description": (
            "JSON tensors, or (binary tensor data extension, application/octet-stream) a JSON "
            "header of Inference-Header-Content-Length bytes followed by the raw tensors, each "
            "input giving its size in parameters.binary_data_size (and no data). The answer "
            "is binary the same way when an output asks for it (parameters.binary_data, or "
            "binary_data_output for all)."
        ),
        # Inference-Header-Content-Length is described, not listed as a parameter: listed,
        # fuzzers add it to JSON bodies, which then stop at it and never reach the tensor checks.
        "security": predict_security,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _ref("InferRequest")},
                "application/octet-stream": binary,
            },
        },
        "responses": {
            "200": {
                "description": "The outputs: JSON, or a JSON header and binary outputs.",
                "headers": header_length,
                "content": {
                    "application/json": {"schema": _ref("InferResponse")},
                    "application/octet-stream": binary,
                },
            },
            **_errors("400", "401", "404", "413", "415", "422", "503"),
        },
    }
    ready = {
        "summary": "Open Inference Protocol: model ready",
        "responses": {
            "200": _json_body(_ref("ModelReady"), "The model is ready."),
            **_errors("404"),
        },
    }
    metadata = {
        "summary": "Open Inference Protocol: model metadata",
        "responses": {
            "200": _json_body(_ref("ModelMetadata"), "The model's inputs and outputs."),
            **_errors("404"),
        },
    }
    repository_model = {
        "security": security,
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": _ref("RepositoryRequest")}},
        },
        "responses": {
            "200": _json_body({"type": "object"}, "Done."),
            **_errors("400", "401", "404", "409", "413", "415"),
            "503": _json_body(
                _ref("Error"),
                "With several workers: one failed the change or did not make it in time (the "
                "change stays recorded and it keeps trying).",
            ),
        },
    }
    paths: dict[str, Any] = {
        "/v2": {
            "get": {
                "summary": "Open Inference Protocol: server metadata",
                "responses": {"200": _json_body(_ref("ServerMetadata"), "Server metadata.")},
            }
        },
        "/v2/health/live": {
            "get": {
                "summary": "Open Inference Protocol: server live",
                "responses": {"200": _json_body(_ref("Live"), "The server is live.")},
            }
        },
        "/v2/health/ready": {
            "get": {
                "summary": "Open Inference Protocol: server ready",
                "responses": {
                    "200": _json_body(_ref("Ready"), "The server is ready."),
                    **_errors("503"),
                },
            }
        },
        "/v2/models/{model_name}": {"parameters": [model_param], "get": metadata},
        "/v2/models/{model_name}/versions/{model_version}": {
            "parameters": [model_param, version_param],
            "get": metadata,
        },
        "/v2/models/{model_name}/ready": {"parameters": [model_param], "get": ready},
        "/v2/models/{model_name}/versions/{model_version}/ready": {
            "parameters": [model_param, version_param],
            "get": ready,
        },
        "/v2/models/{model_name}/infer": {"parameters": [model_param], "post": infer},
        "/v2/models/{model_name}/versions/{model_version}/infer": {
            "parameters": [model_param, version_param],
            "post": infer,
        },
        "/v2/repository/index": {
            "post": {
                "summary": "Model repository extension: list the registry's models",
                "security": security,
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref("RepositoryIndexRequest")}},
                },
                "responses": {
                    "200": _json_body(
                        {"type": "array", "items": _ref("RepositoryModel")}, "Models."
                    ),
                    **_errors("400", "401", "413", "415"),
                },
            }
        },
        "/v2/repository/models/{model_name}/load": {
            "parameters": [
                {
                    "name": "model_name",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"},
                }
            ],
            "post": {"summary": "Model repository extension: load"} | repository_model,
        },
        "/v2/repository/models/{model_name}/unload": {
            "parameters": [model_param],
            "post": {"summary": "Model repository extension: unload"} | repository_model,
        },
        "/predict": {
            "parameters": [model_query],
            "post": {
                "summary": "Predict JSON records with the default model, or ?model=NAME",
                "security": predict_security,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [
                                    {"type": "array", "items": record, "minItems": 1},
                                    record,
                                ]
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json_body(_ref("PredictResponse"), "Predictions."),
                    **_errors("400", "401", "404", "413", "415", "422", "503"),
                },
            },
        },
        "/invocations": {
            "parameters": [model_query],
            "post": {
                "summary": "MLflow scoring protocol with the default model, or ?model=NAME",
                "description": (
                    "dataframe_split, dataframe_records, instances or inputs as JSON; "
                    "text/csv with a header row of feature names is read too."
                ),
                "security": predict_security,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _mlflow_request(record, columns)},
                        "text/csv": {"schema": {"type": "string"}},
                    },
                },
                "responses": {
                    "200": _json_body(
                        {
                            "type": "object",
                            "properties": {"predictions": {"type": "array"}},
                            "required": ["predictions"],
                        },
                        "Predictions.",
                    ),
                    **_errors("400", "401", "404", "413", "415", "422", "503"),
                },
            },
        },
        "/ping": {"get": {"summary": "MLflow health check", "responses": _health()}},
        "/health": {"get": {"summary": "MLflow health check", "responses": _health()}},
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Metrics in Prometheus' text format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "readyml model server",
            "version": __version__,
            "description": (
                "Open Inference Protocol (V2), MLflow /invocations, /predict, rollout "
                "management and feedback labels."
            ),
        },
        "paths": _with_405(paths) | management_paths(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": _schemas() | management_schemas(),
        },
    }


def _health() -> dict[str, Any]:
    return {
        "200": _json_body(
            {"type": "object", "properties": {"status": {"type": "string"}}}, "Healthy."
        )
    }


def _mlflow_request(record: dict[str, Any], columns: dict[str, Any]) -> dict[str, Any]:
    records = {"type": "array", "items": record, "minItems": 1}
    return {
        "oneOf": [
            {
                "type": "object",
                "properties": {
                    "dataframe_split": {
                        "type": "object",
                        "properties": {
                            "columns": {"type": "array", "items": {"type": "string"}},
                            "data": {
                                "type": "array",
                                "items": {"type": "array"},
                                "minItems": 1,
                            },
                        },
                        "required": ["columns", "data"],
                    }
                },
                "required": ["dataframe_split"],
            },
            {
                "type": "object",
                "properties": {"dataframe_records": records},
                "required": ["dataframe_records"],
            },
            {
                "type": "object",
                "properties": {"instances": records},
                "required": ["instances"],
            },
            {"type": "object", "properties": {"inputs": columns}, "required": ["inputs"]},
        ]
    }


def _schemas() -> dict[str, Any]:
    tensor = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
            "datatype": {"type": "string", "enum": sorted(DATATYPES)},
            "parameters": {"type": "object"},
            "data": {"type": "array"},
        },
        "required": ["name", "shape", "datatype"],
    }
    return {
        "Error": {
            "type": "object",
            "properties": {
                "error": {"type": "string"},
                "field": {"type": "string"},
                "expected": {"type": "string"},
                "found": {"type": "string"},
            },
            "required": ["error"],
        },
        "Live": {
            "type": "object",
            "properties": {"live": {"type": "boolean"}},
            "required": ["live"],
        },
        "Ready": {
            "type": "object",
            "properties": {"ready": {"type": "boolean"}},
            "required": ["ready"],
        },
        "ModelReady": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
            "required": ["name", "ready"],
        },
        "ServerMetadata": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "extensions": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["name", "version", "extensions"],
        },
        "TensorMetadata": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "datatype": {"type": "string"},
                "shape": {"type": "array", "items": {"type": "integer"}},
            },
            "required": ["name", "datatype", "shape"],
        },
        "ModelMetadata": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "versions": {"type": "array", "items": {"type": "string"}},
                "platform": {"type": "string"},
                "inputs": {"type": "array", "items": _ref("TensorMetadata")},
                "outputs": {"type": "array", "items": _ref("TensorMetadata")},
                "parameters": {"type": "object"},
            },
            "required": ["name", "platform", "inputs", "outputs"],
        },
        "RequestInput": tensor,
        "RequestOutput": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}},
            "required": ["name"],
        },
        "InferRequest": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "parameters": {"type": "object"},
                "inputs": {"type": "array", "items": _ref("RequestInput"), "minItems": 1},
                "outputs": {"type": "array", "items": _ref("RequestOutput")},
            },
            "required": ["inputs"],
        },
        "ResponseOutput": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "shape": {"type": "array", "items": {"type": "integer"}},
                "datatype": {"type": "string"},
                "parameters": {"type": "object"},
                "data": {"type": "array"},
            },
            "required": ["name", "shape", "datatype"],
        },
        "InferResponse": {
            "type": "object",
            "properties": {
                "model_name": {"type": "string"},
                "model_version": {"type": "string"},
                "id": {"type": "string"},
                "parameters": {"type": "object"},
                "outputs": {"type": "array", "items": _ref("ResponseOutput")},
            },
            "required": ["model_name", "outputs"],
        },
        "PredictResponse": {
            "type": "object",
            "properties": {
                "model": {"type": "string"},
                "version": {"type": "integer"},
                "predictions": {"type": "array"},
                "classes": {"type": "array"},
                "probabilities": {"type": "array", "items": {"type": "array"}},
            },
            "required": ["model", "version", "predictions"],
        },
        "RepositoryIndexRequest": {
            "type": "object",
            "properties": {"ready": {"type": "boolean"}},
        },
        "RepositoryModel": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "state": {"type": "string"},
                "reason": {"type": "string"},
            },
            "required": ["name", "state"],
        },
        "RepositoryRequest": {
            "type": "object",
            "properties": {
                "parameters": {
                    "type": "object",
                    "properties": {
                        "version": {
                            "oneOf": [{"type": "string"}, {"type": "integer"}],
                            "description": "Load: the version to serve (else the alias, else "
                            "the champion). Unload: the pinned version to stop serving (else "
                            "every version).",
                        },
                        "alias": {"type": "string"},
                        "pin": {
                            "type": "boolean",
                            "description": "Load: serve the version beside the current one, "
                            "at /v2/models/{model_name}/versions/{model_version} only.",
                        },
                    },
                }
            },
        },
    }
