"""OpenAPI paths and schemas of the management routes (rollouts) and feedback labels.

Kept apart from :mod:`readyml.serve.openapi` so that the prediction document stays readable;
:func:`readyml.serve.openapi.build_openapi` merges both.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> Schema:
    return _json(_ref("Error"), description)


_STATUSES = {
    "400": "The body is not the JSON object this route reads.",
    "401": "A bearer token is needed and none (or a wrong one) came.",
    "404": "No such model, or no registry to deploy from.",
    "409": "The change conflicts with the rollout in progress.",
    "413": "The body is larger than the server's limit.",
    "422": "The candidate failed infra validation; it never served.",
}


def _errors(*codes: str) -> Schema:
    return {code: _error(_STATUSES[code]) for code in codes}


def _management(summary: str, request: str | None, *codes: str) -> Schema:
    operation: Schema = {
        "summary": summary,
        "security": [{"bearer": []}],
        "responses": {"200": _json(_ref("RolloutAnswer"), "The rollout's state.")}
        | _errors(*codes),
    }
    if request is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(request)}},
        }
    return operation


def management_paths() -> Schema:
    """The ``/v2/management/*`` and ``/v2/feedback`` path items."""
    return {
        "/v2/management/deploy": {
            "post": _management(
                "Deploy a registered version: infra validation, then canary, shadow or direct",
                "DeployRequest",
                "400",
                "401",
                "404",
                "409",
                "413",
                "422",
            )
        },
        "/v2/management/promote": {
            "post": _management(
                "Promote the candidate of the running rollout to champion",
                "ModelChange",
                "400",
                "401",
                "404",
                "409",
                "413",
            )
        },
        "/v2/management/rollback": {
            "post": _management(
                "Abort the running rollout, or serve the registry's champion again",
                "RollbackRequest",
                "400",
                "401",
                "404",
                "409",
                "413",
            )
        },
        "/v2/management/rollout": {
            "get": {
                "summary": "The state, step, window and decisions of every rollout",
                "security": [{"bearer": []}],
                "responses": {
                    "200": _json(_ref("RolloutStatus"), "The rollouts."),
                    **_errors("401", "404"),
                },
            }
        },
        "/v2/feedback": {
            "post": {
                "summary": "Record ground-truth labels for logged requests, by request id "
                "(the bearer token is needed when the server has one)",
                "security": [{"bearer": []}, {}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [
                                    {"type": "array", "items": _ref("FeedbackRecord")},
                                    {"type": "object"},
                                ]
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(_ref("FeedbackResult"), "What was recorded and what was not."),
                    "400": _error("The body is not JSON records."),
                    **_errors("401"),
                    "413": _error("The body is larger than 16 MiB."),
                },
            }
        },
    }


def management_schemas() -> Schema:
    """Component schemas the management and feedback paths refer to."""
    model = {"type": "string", "description": "The served model's name."}
    return {
        "DeployRequest": {
            "type": "object",
            "properties": {
                "model": model,
                "version": {"type": "integer", "minimum": 1},
                "mode": {"type": "string", "enum": ["canary", "shadow", "direct"]},
                "rollout": {
                    "type": "object",
                    "description": "Overrides of the spec's serving.rollout for this rollout.",
                },
            },
            "required": ["model", "version"],
        },
        "ModelChange": {
            "type": "object",
            "properties": {"model": model, "reason": {"type": "string"}},
            "required": ["model"],
        },
        "RollbackRequest": {
            "type": "object",
            "properties": {
                "model": model,
                "reason": {"type": "string"},
                "reload": {"type": "boolean", "description": "Serve the champion again."},
            },
            "required": ["model"],
        },
        "RolloutAnswer": {"type": "object", "additionalProperties": True},
        "RolloutStatus": {
            "type": "object",
            "properties": {"rollouts": {"type": "array", "items": {"type": "object"}}},
            "required": ["rollouts"],
        },
        # No type and nothing required: a bad record is counted as rejected in a 200
        # answer, so that one wrong record never loses the rest of its batch.
        "FeedbackRecord": {
            "description": (
                "A label for one logged request: request_id and label are needed, ts (when "
                "the outcome happened) is optional; other records are rejected."
            ),
            "properties": {
                "request_id": {"description": "The id the server answered with (text)."},
                "label": {"description": "The true outcome (text or number)."},
                "ts": {
                    "description": (
                        "When the outcome happened: ISO 8601 text or Unix seconds, from 1970 "
                        "up to a day after the label is received (default: when received)."
                    )
                },
            },
        },
        "FeedbackResult": {
            "type": "object",
            "properties": {
                "received": {"type": "integer"},
                "new": {"type": "integer"},
                "relabelled": {"type": "integer"},
                "duplicates_ignored": {"type": "integer"},
                "rejected": {"type": "integer"},
                "recorded": {
                    "type": "integer",
                    "description": "Labels written: new + relabelled (kept for older clients).",
                },
                "unknown": {"type": "integer"},
                "unknown_ids": {"type": "array", "items": {"type": "string"}},
                "errors": {"type": "array", "items": {"type": "string"}},
            },
        },
    }
