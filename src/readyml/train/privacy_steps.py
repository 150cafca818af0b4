"""Data 5: privacy controls in the pipeline: find personal data, enforce declared handling.

The :class:`PrivacyControls` step runs right after ``load``. It scans every text column (and
integer columns, for card numbers) on a sample of values for three kinds of personal data:

* e-mail addresses;
* phone numbers: 9 to 15 digits with the usual separators, not dates or decimals;
* payment card numbers: 13 to 19 digits that pass the Luhn checksum.

A column counts as personal when at least :data:`MIN_SHARE` of its sampled values match.
Each personal column must declare its handling in ``schema.yaml`` as
``meta.personal_data``: ``drop`` (the column leaves the data before anything else sees it),
``hash`` (values become salted SHA-256 digests, stable across runs so the feature keeps its
meaning), or ``allow`` (kept, a reviewed decision). A personal column without a
declaration fails the run: undeclared personal data never reaches profiles, caches or models.
Columns declared ``drop`` or ``hash`` are handled whether or not the scan finds them.
Either way the step records ML Test Score evidence for ``data-5``.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

import pandas as pd

from readyml.data import load_schema
from readyml.errors import DataError
from readyml.train.features import is_reserved
from readyml.train.pipeline import Kind, RunContext, StepResult
from readyml.types import JSON, Evidence

PersonalKind = Literal["email", "phone", "card"]
Handling = Literal["drop", "hash", "allow"]
HANDLINGS: tuple[Handling, ...] = ("drop", "hash", "allow")
META_KEY = "personal_data"
SCHEMA_FILE = "schema.yaml"
# Values sampled per column (first non-null values after a seeded shuffle).
SAMPLE_VALUES = 2000
# Share of sampled values that must match for a column to count as personal.
MIN_SHARE = 0.01
# Hex digits kept of each salted SHA-256 digest.
HASH_HEX_DIGITS = 16

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONE = re.compile(r"^\+?[\d\s().-]{9,25}$")
_DATE_OR_DECIMAL = re.compile(r"^(\d{4}-\d{2}-\d{2}|[-+]?\d+\.\d+(e[-+]?\d+)?)", re.IGNORECASE)
_CARD = re.compile(r"^[\d\s-]{13,23}$")


def luhn_ok(digits: str) -> bool:
    """Whether a digit string passes the Luhn checksum.

    >>> luhn_ok("4539578763621486"), luhn_ok("4539578763621487")
    (True, False)
    """
    total = 0
    for position, char in enumerate(reversed(digits)):
        number = int(char)
        if position % 2 == 1:
            number = number * 2 - 9 if number > 4 else number * 2
        total += number
    return total % 10 == 0


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def personal_kind(value: str) -> PersonalKind | None:
    """The kind of personal data one value holds, if any.

    >>> personal_kind("ada@example.org"), personal_kind("+44 20 7946 0958")
    ('email', 'phone')
    >>> personal_kind("4539 5787 6362 1486"), personal_kind("2014-01-01 00:00:00")
    ('card', None)
    """
    text = value.strip()
    if _EMAIL.search(text):
        return "email"
    if _DATE_OR_DECIMAL.match(text):
        return None
    digits = _digits(text)
    if _CARD.match(text) and 13 <= len(digits) <= 19 and luhn_ok(digits):
        return "card"
    if _PHONE.match(text) and 9 <= len(digits) <= 15:
        return "phone"
    return None


@dataclass(frozen=True)
class PersonalColumn:
    """A column found to hold personal data."""

    column: str
    kind: PersonalKind
    share: float
    sampled: int


def _sample(series: pd.Series, limit: int) -> list[str]:
    values = series.dropna()
    if len(values) > limit:
        values = values.sample(n=limit, random_state=0)
    return [str(v) for v in values.tolist()]


def scan_frame(
    frame: pd.DataFrame, *, sample: int = SAMPLE_VALUES, min_share: float = MIN_SHARE
) -> list[PersonalColumn]:
    """Columns of ``frame`` that look like e-mail addresses, phone numbers or card numbers.

    >>> frame = pd.DataFrame({"who": ["a@b.io", "c@d.io"], "n": [1.5, 2.5]})
    >>> [(c.column, c.kind, c.share) for c in scan_frame(frame)]
    [('who', 'email', 1.0)]
    """
    found: list[PersonalColumn] = []
    for name in frame.columns:
        series = frame[name]
        textual = pd.api.types.is_string_dtype(series) or series.dtype == object
        if not (textual or pd.api.types.is_integer_dtype(series)):
            continue
        values = _sample(series, sample)
        if not values:
            continue
        counts: dict[PersonalKind, int] = {}
        for value in values:
            kind = personal_kind(value)
            if kind is not None and (textual or kind == "card"):
                counts[kind] = counts.get(kind, 0) + 1
        if not counts:
            continue
        kind, hits = max(counts.items(), key=lambda item: item[1])
        share = hits / len(values)
        if hits >= max(1, math.ceil(min_share * len(values))):
            found.append(PersonalColumn(str(name), kind, round(share, 4), len(values)))
    return found


def declared_handling(meta_by_column: Mapping[str, Mapping[str, Any]]) -> dict[str, Handling]:
    """``meta.personal_data`` per column, validated.

    Raises:
        DataError: A declaration is not drop, hash or allow.
    """
    declared: dict[str, Handling] = {}
    for column, meta in meta_by_column.items():
        value = meta.get(META_KEY)
        if value is None:
            continue
        for handling in HANDLINGS:
            if value == handling:
                declared[column] = handling
                break
        else:
            raise DataError(
                f"{SCHEMA_FILE}: feature '{column}': meta.{META_KEY} expected one of "
                f"{', '.join(HANDLINGS)}, found {value!r}"
            )
    return declared


def hash_value(value: object, salt: str) -> str:
    """A salted, truncated SHA-256 of a value's text."""
    digest = hashlib.sha256(f"{salt}\x00{value}".encode()).hexdigest()
    return digest[:HASH_HEX_DIGITS]


@dataclass
class PrivacyReport:
    """What the scan found and what was done about it."""

    found: list[PersonalColumn]
    declared: dict[str, Handling]
    dropped: list[str]
    hashed: list[str]
    allowed: list[str]
    undeclared: list[str]

    @property
    def passed(self) -> bool:
        """Whether every personal column had a declared handling."""
        return not self.undeclared

    @property
    def problem(self) -> str:
        """The first undeclared personal column in one line; ``""`` when passed."""
        if not self.undeclared:
            return ""
        first = next(c for c in self.found if c.column == self.undeclared[0])
        more = len(self.undeclared) - 1
        others = f" (and {more} more)" if more else ""
        return (
            f"column '{first.column}' holds personal data ({first.kind}, "
            f"{first.share:.0%} of {first.sampled} values){others}; declare "
            f"meta.{META_KEY}: drop, hash or allow for it in {SCHEMA_FILE}"
        )

    def to_dict(self) -> JSON:
        """JSON form."""
        return {
            "found": [asdict(c) for c in self.found],
            "declared": dict(self.declared),
            "dropped": self.dropped,
            "hashed": self.hashed,
            "allowed": self.allowed,
            "undeclared": self.undeclared,
            "passed": self.passed,
        }


def apply_privacy(
    frame: pd.DataFrame,
    declared: Mapping[str, Handling],
    *,
    salt: str,
    protected: Iterable[str] = (),
) -> tuple[pd.DataFrame, PrivacyReport]:
    """Scan ``frame`` and enforce the declared handling; ``protected`` columns are exempt.

    >>> frame = pd.DataFrame({"mail": ["a@b.io", "c@d.io"], "y": [0, 1]})
    >>> out, report = apply_privacy(frame, {"mail": "hash"}, salt="p")
    >>> list(out.columns), report.hashed, out["mail"][0] != "a@b.io"
    (['mail', 'y'], ['mail'], True)
    """
    skip = set(protected)
    found = [c for c in scan_frame(frame) if c.column not in skip]
    out = frame.copy()
    dropped, hashed, allowed = [], [], []
    for column, handling in declared.items():
        if column not in out.columns or column in skip:
            continue
        if handling == "drop":
            out = out.drop(columns=[column])
            dropped.append(column)
        elif handling == "hash":
            out[column] = [
                None if pd.isna(v) else hash_value(v, salt) for v in out[column].tolist()
            ]
            out[column] = out[column].astype("string")
            hashed.append(column)
        else:
            allowed.append(column)
    undeclared = [c.column for c in found if c.column not in declared]
    report = PrivacyReport(found, dict(declared), dropped, hashed, allowed, undeclared)
    return out, report


class PrivacyControls:
    """Find personal data in the loaded data and enforce its declared handling (data-5).

    Insert right after ``LoadData`` in :func:`readyml.train.steps.default_steps`.
    """

    name: ClassVar[str] = "privacy"
    version: ClassVar[int] = 1
    inputs: ClassVar[tuple[str, ...]] = ("data",)
    outputs: ClassVar[dict[str, Kind]] = {"data": "frame", "privacy": "json"}
    cacheable: ClassVar[bool] = True

    def _declared(self, ctx: RunContext) -> dict[str, Handling]:
        path = ctx.project.root / SCHEMA_FILE
        if not path.exists():
            return {}
        schema = load_schema(path)
        return declared_handling({f.name: f.meta for f in schema.features})

    def params(self, ctx: RunContext) -> JSON:
        return {"declared": dict(self._declared(ctx)), "salt": ctx.project.spec.name}

    def run(self, ctx: RunContext, inputs: dict[str, Any]) -> StepResult:
        spec = ctx.project.spec
        frame, report = apply_privacy(
            inputs["data"],
            self._declared(ctx),
            salt=spec.name,
            protected=[spec.label, *(c for c in inputs["data"].columns if is_reserved(c))],
        )
        problem = report.problem
        ctx.record(
            Evidence(
                test_id="data-5",
                passed=report.passed,
                automated=True,
                project=spec.name,
                run_id=ctx.run_id,
                details={**report.to_dict(), **({"reason": problem} if problem else {})},
                artifact=SCHEMA_FILE,
            )
        )
        if problem:
            raise DataError(problem)
        parts = [
            f"{len(report.found)} personal column(s) found",
            *(
                f"{label} {', '.join(cols)}"
                for label, cols in (
                    ("dropped", report.dropped),
                    ("hashed", report.hashed),
                    ("allowed", report.allowed),
                )
                if cols
            ),
        ]
        return StepResult({"data": frame, "privacy": report.to_dict()}, "; ".join(parts))
