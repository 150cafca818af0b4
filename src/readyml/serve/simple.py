"""The simple protocol: ``POST /predict`` with JSON records, answered with labels and probabilities.

Request: ``[{"feature": value, ...}, ...]`` (or one record as an object). Answer:
``{"model", "version", "predictions": [...], "classes": [...], "probabilities": [[...]]}``;
``classes`` and ``probabilities`` only for classifiers.
"""

from __future__ import annotations

from typing import Any

import orjson

from readyml.predict import InvalidInput, Part, Prediction, Predictor
from readyml.predict.inputs import describe, with_exact_integers
from readyml.serve._http import parse_json


def decode(predictor: Predictor, body: bytes | bytearray) -> tuple[Part, int]:
    """The predictor's input from a records body."""
    document = parse_json(body, expected="a JSON list of records")
    return with_exact_integers(lambda parsed: _records(predictor, parsed), document, body)


def _records(predictor: Predictor, document: Any) -> tuple[Part, int]:
    if type(document) is dict:
        document = [document]
    if type(document) is not list or not document:
        found = "an empty list" if document == [] else describe(document)
        raise InvalidInput(
            f"body: expected a non-empty list of records (objects of feature values), "
            f"found {found}",
            field="body",
            expected="a non-empty list of records",
            found=found,
        )
    return predictor.from_records(document)


def encode(predictor: Predictor, prediction: Prediction, offset: int, rows: int) -> bytes:
    """The answer for one request's rows of a batch."""
    content: dict[str, Any] = {
        "model": predictor.name,
        "version": predictor.version,
        "predictions": prediction.labels_list[offset : offset + rows],
    }
    if prediction.proba is not None and predictor.classes is not None:
        content["classes"] = predictor.classes.tolist()
        content["probabilities"] = prediction.proba[offset : offset + rows]
    return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
