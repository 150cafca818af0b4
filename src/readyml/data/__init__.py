"""Data: reading tables, mergeable profiles, the feature schema, validation and drift.

Entry points: :func:`read_table` / :func:`read_arrow`, :func:`profile_frame`,
:func:`infer_schema` / :func:`write_schema` / :func:`load_schema`, :func:`validate_frame` and
:func:`detect_drift`. Profiling and validation take a pandas frame or an Arrow table;
:func:`profile_file` and :func:`validate_file` take files, and read Parquet a column at a time.
"""

from __future__ import annotations

from readyml.data.drift import (
    KS,
    METHODS,
    PSI,
    ChiSquare,
    DriftMethod,
    DriftReport,
    DriftResult,
    JensenShannon,
    LInfinity,
    Wasserstein,
    choose_method,
    detect_drift,
)
from readyml.data.files import profile_file, validate_file
from readyml.data.io import read_arrow, read_table
from readyml.data.profile import ColumnProfile, Profile, profile_column, profile_frame
from readyml.data.schema import (
    FeatureSchema,
    Schema,
    infer_schema,
    load_schema,
    mostly_numeric_text,
    refresh_schema,
    write_schema,
)
from readyml.data.validate import (
    Anomaly,
    ValidationOptions,
    ValidationReport,
    raise_for_errors,
    record_validation_evidence,
    validate_frame,
)

__all__ = [
    "KS",
    "METHODS",
    "PSI",
    "Anomaly",
    "ChiSquare",
    "ColumnProfile",
    "DriftMethod",
    "DriftReport",
    "DriftResult",
    "FeatureSchema",
    "JensenShannon",
    "LInfinity",
    "Profile",
    "Schema",
    "ValidationOptions",
    "ValidationReport",
    "Wasserstein",
    "choose_method",
    "detect_drift",
    "infer_schema",
    "load_schema",
    "mostly_numeric_text",
    "profile_column",
    "profile_file",
    "profile_frame",
    "raise_for_errors",
    "read_arrow",
    "read_table",
    "record_validation_evidence",
    "refresh_schema",
    "validate_file",
    "validate_frame",
    "write_schema",
]
