"""Capture: select production examples from the request log for a person to label.

Each logged row of the window is matched against the reasons of
:data:`~readyml.feedback.review_sets.REASONS` (see :mod:`readyml.feedback._reasons` for the
rules); the reasons then take their rows in that order, each up to its budget, so an example
matching several is selected once, under the first, and its ``detail`` names the others.
``random`` comes last: a seeded uniform sample of the rows still left, the control group that
shows what the targeted reasons miss. Rows already in any review set of the workspace are
never selected again (:func:`~readyml.feedback.review_sets.captured_ids`), nor are rows a
production dataset holds (:func:`~readyml.feedback.production.labelled_ids`), should their
review set have been deleted.

The log holds only answered requests: a request the server rejected (bad types, missing
features) is not there, so ``schema_violation`` finds the rows that were served although
outside the checked-in schema (out of range, an unlisted category, a null where not
nullable). Rows of every version in the window are judged against one reference version
(the champion unless another is named): its training profile, schema and validation split.

A window with no rows, or whose rows were all captured before, gives a result with zero
examples and writes no set; a model with no request log at all is a :class:`DataError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from readyml.config import Project, SliceSpec
from readyml.errors import ConfigError, DataError
from readyml.feedback import _reasons as reasons
from readyml.feedback._columns import stored_name
from readyml.feedback.production import labelled_ids
from readyml.feedback.review_sets import (
    REASONS,
    ReviewSetManifest,
    captured_ids,
    example_id,
    new_set_id,
    write_review_set,
)
from readyml.monitor.inputs import Reference, load_reference, log_files, logs_root, read_traffic
from readyml.registry import Registry
from readyml.types import JSON, ModelRef

# Examples per reason when the budget does not say; the control group is smaller.
DEFAULT_BUDGET: Final = {
    "misprediction": 50,
    "low_confidence": 50,
    "drift": 50,
    "rare_slice": 50,
    "schema_violation": 50,
    "random": 20,
}


@dataclass
class CaptureResult:
    """What one capture selected and where it wrote the review set.

    ``set_id`` and ``path`` are ``None`` when nothing was selected (no set is written).
    ``counts``: examples selected per reason; ``matched``: rows of the window each reason
    matched, before budgets and priorities, leaving out rows already captured (``random``:
    the rows left to sample from); ``already_captured``: rows of the window skipped because
    an earlier review set holds them.
    """

    set_id: str | None
    path: Path | None
    model: str
    reference_version: int
    since: datetime | None
    until: datetime | None
    counts: dict[str, int]
    matched: dict[str, int]
    rows_scanned: int
    already_captured: int
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Examples selected, all reasons together."""
        return sum(self.counts.values())

    def to_dict(self) -> JSON:
        """A JSON-ready dict."""
        return {
            "set_id": self.set_id,
            "path": str(self.path) if self.path is not None else None,
            "model": self.model,
            "reference_version": self.reference_version,
            "since": _iso(self.since),
            "until": _iso(self.until),
            "total": self.total,
            "counts": dict(self.counts),
            "matched": dict(self.matched),
            "rows_scanned": self.rows_scanned,
            "already_captured": self.already_captured,
            "notes": list(self.notes),
        }


def resolve_budget(budget: Mapping[str, int] | None) -> dict[str, int]:
    """:data:`DEFAULT_BUDGET` with ``budget``'s counts over it (0 turns a reason off).

    Raises:
        ConfigError: an unknown reason, or a count that is not a whole number >= 0.

    >>> resolve_budget({"random": 5})["random"], resolve_budget(None)["drift"]
    (5, 50)
    """
    resolved = dict(DEFAULT_BUDGET)
    for reason, count in (budget or {}).items():
        if reason not in REASONS:
            raise ConfigError(
                f"capture budget: expected a reason among {', '.join(REASONS)}, found {reason!r}"
            )
        if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 0:
            raise ConfigError(
                f"capture budget: {reason}: expected a whole number >= 0, found {count!r}"
            )
        resolved[reason] = int(count)
    return resolved


class Capture:
    """Select logged examples for review, reason by reason, within a budget.

    Args:
        budget: examples per reason (see :func:`resolve_budget`).
        confidence_below: a classification whose top probability is under this is
            ``low_confidence``.
        rare_share: a value or slice with a smaller training share is rare (``rare_slice``),
            and a value of a drifted feature with a smaller share is out (``drift``).
        drift_method: drift test, as ``monitoring.skew.drift_method``.
        drift_thresholds: thresholds by drift method, as ``monitoring.skew.drift_thresholds``.
        slices: the project's declared slices.
        seed: seed of the ``random`` sample.

    Example:
        >>> Capture(budget={"random": 5}, seed=1).seed
        1
    """

    def __init__(
        self,
        *,
        budget: Mapping[str, int] | None = None,
        confidence_below: float = 0.6,
        rare_share: float = 0.02,
        drift_method: str = "auto",
        drift_thresholds: Mapping[str, float] | None = None,
        slices: Sequence[SliceSpec] = (),
        seed: int = 42,
    ) -> None:
        self.budget = budget
        self.confidence_below = confidence_below
        self.rare_share = rare_share
        self.drift_method = drift_method
        self.drift_thresholds = drift_thresholds
        self.slices = slices
        self.seed = seed

    def run(
        self,
        workspace: Path,
        reference: Reference,
        *,
        version: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        now: datetime | None = None,
    ) -> CaptureResult:
        """Select from the log of ``reference.model`` (``version``, or all) in
        ``[since, until)`` and write the review set under ``workspace``.

        Raises:
            ConfigError: a bad budget, threshold or time window.
            DataError: the model has no request log at all.
        """
        budget = resolve_budget(self.budget)
        self._check(since, until)
        since, until = _utc(since), _utc(until)
        now = _utc(now) or datetime.now(UTC)
        model = reference.model
        if not log_files(workspace, model, version):
            raise DataError(
                f"request log of model {model!r}: expected Parquet files under "
                f"{logs_root(workspace) / f'model={model}'}, found none; serve the model "
                "or replay traffic first"
            )
        traffic = read_traffic(
            workspace, model, version=version, since=since, until=until, with_row=True
        )
        result = CaptureResult(
            set_id=None,
            path=None,
            model=model,
            reference_version=reference.version,
            since=since,
            until=until,
            counts=dict.fromkeys(REASONS, 0),
            matched=dict.fromkeys(REASONS, 0),
            rows_scanned=len(traffic),
            already_captured=0,
        )
        if traffic.empty:
            result.notes.append("no logged rows in the window")
            return result
        # By identity, not arrival: concurrent requests arrive in any order, and ties in a
        # reason's key (equal confidences) must break the same way on the same log.
        traffic = traffic.sort_values(["request_id", "row"], kind="stable")
        traffic = traffic.reset_index(drop=True)
        pairs = zip(traffic["request_id"], traffic["row"], strict=True)
        ids = pd.Series([example_id(str(r), int(i)) for r, i in pairs])
        seen = ids.isin(captured_ids(workspace) | labelled_ids(workspace)).to_numpy()
        result.already_captured = int(seen.sum())
        available = ~seen & ~ids.duplicated().to_numpy()
        top = reasons.confidence(traffic, reference.task)
        matches = self._match(traffic, reference, top)
        for found in matches.values():
            result.notes += found.notes
        for reason, found in matches.items():
            result.matched[reason] = int(np.count_nonzero(~seen & found.matched))
        picks, remaining = _select(matches, available, budget, self.seed)
        result.matched["random"] = remaining
        for _, reason in picks:
            result.counts[reason] += 1
        if not picks:
            result.notes.append(
                "nothing selected: every row of the window is in an earlier review set"
                if result.already_captured == result.rows_scanned
                else "nothing selected: no row matched a reason with a budget left"
            )
            return result
        examples = self._examples(traffic, ids, reference, top, picks, matches, remaining)
        manifest = ReviewSetManifest(
            id=new_set_id(now),
            created=now.isoformat(),
            model=model,
            since=_iso(since),
            until=_iso(until),
            budget=budget,
            counts=dict(result.counts),
            features=list(reference.features),
            label=reference.label,
            task=reference.task,
            classes=list(reference.classes) if reference.classes is not None else None,
            details={
                "reference": f"{model}:{reference.version}",
                "version": version,
                "rows_scanned": result.rows_scanned,
                "already_captured": result.already_captured,
                "matched": dict(result.matched),
                "confidence_below": self.confidence_below,
                "rare_share": self.rare_share,
                "seed": self.seed,
                **{k: v for found in matches.values() for k, v in found.info.items()},
                "notes": list(result.notes),
            },
        )
        result.set_id = manifest.id
        result.path = write_review_set(workspace, manifest, examples)
        return result

    def _check(self, since: datetime | None, until: datetime | None) -> None:
        if not 0.0 < self.confidence_below <= 1.0:
            raise ConfigError(
                f"capture confidence_below: expected a probability in (0, 1], "
                f"found {self.confidence_below!r}"
            )
        if not 0.0 <= self.rare_share <= 1.0:
            raise ConfigError(
                f"capture rare_share: expected a share in [0, 1], found {self.rare_share!r}"
            )
        start, end = _utc(since), _utc(until)
        if start is not None and end is not None and start >= end:
            raise ConfigError(
                f"capture window: expected since before until, found {start.isoformat()} "
                f"to {end.isoformat()}"
            )

    def _match(
        self, traffic: pd.DataFrame, reference: Reference, top: NDArray[np.float64]
    ) -> dict[str, reasons.Matches]:
        """The rows each targeted reason matches, in priority order."""
        return {
            "misprediction": reasons.mispredictions(traffic, reference, top),
            "low_confidence": reasons.low_confidence(
                traffic, reference, top, self.confidence_below
            ),
            "drift": reasons.drift(
                traffic,
                reference,
                method=self.drift_method,
                thresholds=self.drift_thresholds,
                rare_share=self.rare_share,
            ),
            "rare_slice": reasons.rare_slices(
                traffic, reference, rare_share=self.rare_share, slices=self.slices
            ),
            "schema_violation": reasons.schema_violations(traffic, reference),
        }

    def _examples(
        self,
        traffic: pd.DataFrame,
        ids: pd.Series,
        reference: Reference,
        top: NDArray[np.float64],
        picks: list[tuple[int, str]],
        matches: Mapping[str, reasons.Matches],
        remaining: int,
    ) -> pd.DataFrame:
        """The review-set rows of the picks: lead columns, features, tail columns."""
        rows = [i for i, _ in picks]
        details = []
        for i, reason in picks:
            found = matches.get(reason)
            text = (
                found.detail[i]
                if found is not None
                else f"uniform sample of {remaining} remaining rows (seed {self.seed})"
            )
            also = [r for r, other in matches.items() if r != reason and other.matched[i]]
            details.append(f"{text}; also {', '.join(also)}" if also else text)
        chosen = traffic.iloc[rows].reset_index(drop=True)
        frame = pd.DataFrame(
            {
                "example_id": ids.iloc[rows].to_numpy(),
                "reason": [reason for _, reason in picks],
                "detail": details,
                "request_id": chosen["request_id"].astype(str).to_numpy(),
                "model": chosen["model"].astype(str).to_numpy(),
                "version": chosen["version"].to_numpy(),
                "ts": [pd.Timestamp(t).isoformat() for t in chosen["ts"]],
            }
        )
        for name in reference.features:  # a feature named like a column here is renamed
            column = stored_name(name)
            frame[column] = chosen[name].to_numpy() if name in chosen.columns else None
        frame["prediction"] = chosen["prediction"].to_numpy()
        confidence = top[rows]
        frame["confidence"] = pd.Series(
            [None if np.isnan(c) else round(float(c), 6) for c in confidence], dtype=object
        )
        frame["label"] = None
        return frame


def capture(
    project: Project,
    registry: Registry,
    *,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    budget: Mapping[str, int] | None = None,
    confidence_below: float = 0.6,
    rare_share: float = 0.02,
    seed: int | None = None,
    now: datetime | None = None,
) -> CaptureResult:
    """Select examples of ``project``'s served traffic for review and write a review set.

    Args:
        project: the project (its workspace holds the request log and the review sets).
        registry: the project's registry, for the reference version.
        model: ``NAME`` or ``NAME@ALIAS`` (every version's traffic, judged against the
            champion or the alias), or ``NAME:V`` (that version's traffic and reference);
            default the project's name.
        since: first instant of the window (inclusive; naive times are UTC).
        until: end of the window (exclusive).
        budget: examples per reason over :data:`DEFAULT_BUDGET`.
        confidence_below: top probability under which a classification is uncertain.
        rare_share: training share under which a value or slice is rare.
        seed: seed of the random sample (default the project's ``seed``).
        now: the set's creation time (default now).

    Returns:
        What was selected; ``path`` is the review set's folder, ``None`` if none.

    Raises:
        ConfigError: a bad budget, threshold, model reference or window.
        RegistryError: the reference version does not exist.
        DataError: the model has no request log.

    Example:
        >>> result = capture(project, registry, budget={"random": 10})  # doctest: +SKIP
        >>> result.counts["random"]  # doctest: +SKIP
        10
    """
    resolve_budget(budget)
    try:
        ref = ModelRef.parse(model or project.spec.name)
    except ValueError as exc:
        raise ConfigError(f"capture model: {exc}") from None
    target = str(ref) if ref.version is not None or ref.alias is not None else f"{ref}@champion"
    reference = load_reference(project, registry, registry.get(target))
    skew = project.spec.monitoring.skew
    runner = Capture(
        budget=budget,
        confidence_below=confidence_below,
        rare_share=rare_share,
        drift_method=skew.drift_method,
        drift_thresholds=skew.drift_thresholds,
        slices=project.spec.slices,
        seed=project.spec.seed if seed is None else seed,
    )
    return runner.run(
        project.workspace, reference, version=ref.version, since=since, until=until, now=now
    )


def _select(
    matches: Mapping[str, reasons.Matches],
    available: NDArray[np.bool_],
    budget: Mapping[str, int],
    seed: int,
) -> tuple[list[tuple[int, str]], int]:
    """The ``(row, reason)`` picks, reason by reason in priority order, then the random
    sample of the rows left; and how many rows were left to sample from."""
    available = available.copy()
    picks: list[tuple[int, str]] = []
    for reason, found in matches.items():
        candidates = np.flatnonzero(available & found.matched)
        order = candidates[np.argsort(found.key[candidates], kind="stable")]
        chosen = order[: budget[reason]]
        available[chosen] = False
        picks += [(int(i), reason) for i in chosen]
    remaining = np.flatnonzero(available)
    rng = np.random.default_rng(seed)
    sample = rng.choice(remaining, size=min(budget["random"], len(remaining)), replace=False)
    picks += [(int(i), "random") for i in np.sort(sample)]
    return picks, len(remaining)


def _utc(stamp: datetime | None) -> datetime | None:
    """``stamp`` as an aware time (naive times are UTC)."""
    if stamp is None:
        return None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp


def _iso(stamp: datetime | None) -> str | None:
    return stamp.isoformat() if stamp is not None else None
