"""Manual attestations: a checked-in YAML file where people record tests they ran by hand.

The ML Test Score gives half a point for a test "executed manually, with the results
documented and distributed". An attestation is that record: which test, who ran it, when,
what was done, and where the results are (a link people can follow). It lives in the
project (``attestations.yaml`` by default, ``score.attestations`` in readyml.yaml) so that it
goes through code review like any other change, and it counts only while younger than
``score.attestation_max_age_days``.

The file is a YAML list; :func:`append_attestation` appends text, so comments survive::

    - test: model-1
      by: Ada Lovelace
      date: 2026-11-20
      note: Reviewed the model spec change in the pull request
      link: https://git.example.org/ml/weather/pull/12
      result: passed
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import yaml

from readyml.errors import ConfigError
from readyml.types import Evidence, is_test_id

ATTESTATIONS_FILE = "attestations.yaml"
_KEYS = ("test", "by", "date", "note", "link", "result")
_RESULTS = ("passed", "failed")
_HEADER = (
    "# Manual ML Test Score attestations: half a point each while fresh.\n"
    "# Append with: readyml attest TEST_ID --by NAME --note WHAT --link WHERE_THE_RESULTS_ARE\n"
)


@dataclass(frozen=True)
class Attestation:
    """One manual test run, documented.

    >>> a = Attestation("model-1", "Ada", datetime(2026, 1, 2, tzinfo=UTC), "reviewed", "PR 12")
    >>> a.to_evidence("weather").automated
    False
    """

    test_id: str
    by: str
    at: datetime
    note: str
    link: str
    passed: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The YAML form (``date`` as ISO 8601)."""
        when: date | datetime = self.at
        if self.at.time() == time(0) and self.at.tzinfo is not None:
            when = self.at.date()
        return {
            "test": self.test_id,
            "by": self.by,
            "date": when.isoformat(),
            "note": self.note,
            "link": self.link,
            "result": "passed" if self.passed else "failed",
        }

    def to_evidence(self, project: str, *, source: str = ATTESTATIONS_FILE) -> Evidence:
        """This attestation as manual evidence for ``project``."""
        return Evidence(
            test_id=self.test_id,
            passed=self.passed,
            automated=False,
            project=project,
            details={"source": source, "by": self.by, "note": self.note, "link": self.link},
            artifact=self.link,
            created_at=self.at,
        )


def _when(value: object, where: str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=UTC)
    if isinstance(value, str):
        try:
            return _when(datetime.fromisoformat(value), where)
        except ValueError:
            pass
    raise ConfigError(f"{where}.date: expected a date such as 2026-11-20, found {value!r}")


def _text(item: Mapping[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value.strip():
        shown = "nothing" if value is None else repr(value)
        raise ConfigError(f"{where}.{key}: expected a non-empty string, found {shown}")
    return value.strip()


def parse_attestation(
    item: object, where: str = "attestation", *, now: datetime | None = None
) -> Attestation:
    """Validate one attestation mapping.

    Raises:
        ConfigError: A key is missing, unknown or malformed, the test id is not a rubric
            test, or the date is in the future.
    """
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where}: expected a mapping with keys {', '.join(_KEYS)}")
    unknown = sorted(str(k) for k in item if k not in _KEYS)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key; expected {', '.join(_KEYS)}")
    test_id = _text(item, "test", where)
    if not is_test_id(test_id):
        raise ConfigError(
            f"{where}.test: expected a rubric test id such as model-1, found {test_id!r}"
        )
    if "date" not in item:
        raise ConfigError(f"{where}.date: required key not found")
    at = _when(item["date"], where)
    if at > (now or datetime.now(UTC)):
        raise ConfigError(f"{where}.date: expected a date not in the future, found {at.date()}")
    result = item.get("result", "passed")
    if result not in _RESULTS:
        raise ConfigError(f"{where}.result: expected 'passed' or 'failed', found {result!r}")
    return Attestation(
        test_id=test_id,
        by=_text(item, "by", where),
        at=at,
        note=_text(item, "note", where),
        link=_text(item, "link", where),
        passed=result == "passed",
    )


def load_attestations(path: str | Path, *, now: datetime | None = None) -> list[Attestation]:
    """Read and validate an attestations file; a missing file holds none.

    Raises:
        ConfigError: The file is not YAML, not a list, or an entry is invalid; the message
            names the entry (``attestations.yaml[2].link: ...``).
    """
    target = Path(path)
    if not target.exists():
        return []
    try:
        text = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{target.name}: expected a UTF-8 YAML file, cannot read it ({exc})"
        ) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{target.name}: not valid YAML{line}") from exc
    except ValueError as exc:  # a date-like scalar that is no date, such as 2026-13-01
        raise ConfigError(
            f"{target.name}: expected dates such as 2026-11-20, found an impossible one ({exc})"
        ) from exc
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(
            f"{target.name}: expected a list of attestations, found {type(raw).__name__}"
        )
    return [parse_attestation(item, f"{target.name}[{i}]", now=now) for i, item in enumerate(raw)]


def append_attestation(path: str | Path, attestation: Attestation) -> Path:
    """Append one attestation to the file (created with a header when missing).

    The existing file is validated first, and text is appended rather than the file
    rewritten, so people's comments and layout stay as they were.

    Raises:
        ConfigError: The existing file is invalid (fix it first).
    """
    target = Path(path)
    present = load_attestations(target)
    parse_attestation(attestation.to_dict(), "new attestation")
    block = yaml.safe_dump([attestation.to_dict()], sort_keys=False, allow_unicode=True)
    existing = target.read_text(encoding="utf-8") if target.exists() else _HEADER
    if existing and not existing.endswith("\n"):
        existing += "\n"
    text = existing + block
    try:
        appended = yaml.safe_load(text)
    except yaml.YAMLError:
        appended = None
    if not isinstance(appended, list) or len(appended) != len(present) + 1:
        # A flow-style list ("[]") cannot be appended to as text: write it out again.
        items = [a.to_dict() for a in [*present, attestation]]
        text = _HEADER + yaml.safe_dump(items, sort_keys=False, allow_unicode=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(target)
    return target
