"""Columns the loop's files hold besides the model's data, and how a clashing name is stored.

A review set has :data:`LEAD_COLUMNS`, the features, then :data:`TAIL_COLUMNS`; a production
dataset has :data:`PROVENANCE`, the features and the label. A feature (or label) named like
one of these is stored as ``feature:NAME`` (:func:`stored_name`), so the loop's own columns
never overwrite the data and a reviewer still finds ``label`` where the README says.
"""

from __future__ import annotations

from typing import Final

LEAD_COLUMNS: Final = ("example_id", "reason", "detail", "request_id", "model", "version", "ts")
TAIL_COLUMNS: Final = ("prediction", "confidence", "label")
# Where each example came from; the rest of a dataset's columns are features and the label.
PROVENANCE: Final = (
    "example_id",
    "request_id",
    "model",
    "version",
    "ts",
    "reason",
    "review_set",
    "labelled_at",
)
FEATURE_PREFIX: Final = "feature:"
RESERVED: Final = frozenset((*LEAD_COLUMNS, *TAIL_COLUMNS, *PROVENANCE))


def stored_name(column: str) -> str:
    """The name data column ``column`` has in a review set or production dataset.

    A name that starts with the prefix is prefixed too, so no two columns share a name.

    >>> stored_name("sepal_length"), stored_name("reason"), stored_name("feature:x")
    ('sepal_length', 'feature:reason', 'feature:feature:x')
    """
    clashes = column in RESERVED or column.startswith(FEATURE_PREFIX)
    return f"{FEATURE_PREFIX}{column}" if clashes else column


def stored_label(label: str) -> str:
    """The name the label column has in a production dataset, beside :data:`PROVENANCE` only.

    Unlike a feature it may be called ``label`` (review sets' own column is not in a dataset),
    as datasets written before features were ever renamed call it.

    >>> stored_label("label"), stored_label("species"), stored_label("ts")
    ('label', 'species', 'feature:ts')
    """
    clashes = label in PROVENANCE or label.startswith(FEATURE_PREFIX)
    return f"{FEATURE_PREFIX}{label}" if clashes else label
