"""The model gate: bless or veto a candidate, with reasons that name metric, slice, threshold
and value (ML Test Score infra-4: model quality is validated before it is served).

The gate reads an evaluation (see :func:`readyml.evaluate.evaluate_model`) and, when there is
one, the current champion's. Rule kinds, each declared under ``gates:`` in readyml.yaml:

* ``rules`` — absolute thresholds on a metric, overall or on a declared slice;
* ``champion`` — no more than ``max_regression`` worse than the champion, overall and on every
  slice both judged (a first model, or a champion that is this same model, is not compared);
* ``beat_baselines`` — better than the dummy and linear baselines by ``margin``;
* ``max_latency_ms`` / ``max_size_mb`` — single-row p95 latency and serialized size;
* ``fairness`` — upper bounds on disparities across the groups of a sensitive attribute.

A slice too small to judge yields a reason with ``judged: false``; it neither passes nor
fails silently. A rule on a declared slice none of whose slices could be judged fails: it
would otherwise bless what it was declared to veto. The candidate is blessed when every
judged reason passed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from readyml.config import GateRule, GatesSpec
from readyml.evaluate.metrics import better

Decision = Literal["blessed", "vetoed"]
# Slack for float comparisons of metrics that are equal up to rounding.
_TOLERANCE = 1e-12


@dataclass(frozen=True)
class Reason:
    """One rule's outcome; ``message`` names the metric, slice, threshold and value."""

    rule: str
    metric: str
    value: float | None
    threshold: float | None
    passed: bool
    message: str
    kind: str = "absolute"
    slice: str | None = None
    judged: bool = True

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict and every reason behind it."""

    decision: Decision
    reasons: list[Reason] = field(default_factory=list)
    champion: int | None = None
    compared_with_champion: bool = False
    note: str = ""

    @property
    def blessed(self) -> bool:
        """Whether the candidate may be promoted."""
        return self.decision == "blessed"

    @property
    def failed(self) -> list[Reason]:
        """The judged reasons that failed."""
        return [r for r in self.reasons if r.judged and not r.passed]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form, as stored with the registry version."""
        return {
            "decision": self.decision,
            "reasons": [asdict(r) for r in self.reasons],
            "failed": [r.message for r in self.failed],
            "champion": self.champion,
            "compared_with_champion": self.compared_with_champion,
            "note": self.note,
        }


def _finite(value: Any) -> float | None:
    if isinstance(value, int | float) and math.isfinite(float(value)):
        return float(value)
    return None


def _where(slice_name: str | None) -> str:
    return f" on slice '{slice_name}'" if slice_name else ""


def _absolute(rule: GateRule, metrics: dict[str, Any], slice_name: str | None) -> list[Reason]:
    value = _finite(metrics.get(rule.metric))
    reasons = []
    for bound, threshold, op in (("min", rule.min, ">="), ("max", rule.max, "<=")):
        if threshold is None:
            continue
        name = f"{rule.metric} {op} {threshold:g}"
        where = _where(slice_name)
        if value is None:
            message = f"{name}{where}: metric '{rule.metric}' was not computed"
            reasons.append(
                Reason(name, rule.metric, None, threshold, False, message, "absolute", slice_name)
            )
            continue
        ok = value >= threshold if bound == "min" else value <= threshold
        message = f"{name}{where} {'passed' if ok else 'failed'}: {rule.metric} = {value:.4f}"
        reasons.append(
            Reason(name, rule.metric, value, threshold, ok, message, "absolute", slice_name)
        )
    return reasons


def judge(metrics: dict[str, Any], rules: list[GateRule]) -> GateDecision:
    """Apply absolute rules to overall metrics only; bless when every rule passes.

    >>> from readyml.config import GateRule
    >>> judge({"accuracy": 0.7}, [GateRule(metric="accuracy", min=0.8)]).decision
    'vetoed'
    """
    reasons = [reason for rule in rules for reason in _absolute(rule, metrics, None)]
    return _decide(reasons)


def _decide(reasons: list[Reason], **extra: Any) -> GateDecision:
    decision: Decision = "blessed" if all(r.passed for r in reasons if r.judged) else "vetoed"
    return GateDecision(decision=decision, reasons=reasons, **extra)


def _slices(evaluation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in evaluation.get("slices") or []}


def _rule_label(rule: GateRule) -> str:
    """``accuracy >= 0.8`` (and ``<=`` its max): the rule as its reasons name it."""
    bounds = [(">=", rule.min), ("<=", rule.max)]
    return " and ".join(f"{rule.metric} {op} {v:g}" for op, v in bounds if v is not None)


def _slice_rules(rule: GateRule, evaluation: dict[str, Any]) -> list[Reason]:
    """The rule on the named slice, or on every slice a per-value or cross slice made."""
    slices = _slices(evaluation)
    name = str(rule.slice)
    found = (
        [slices[name]]
        if name in slices
        else [s for s in slices.values() if s.get("source") == name and s.get("kind") == "declared"]
    )
    if not found:
        message = f"{rule.metric} on slice '{name}': no such slice was evaluated"
        return [Reason(f"slice {name}", rule.metric, None, None, False, message, "absolute", name)]
    label = _rule_label(rule)
    unjudged = [each for each in found if not each.get("judged", True)]
    if len(unjudged) == len(found):
        # Fail closed: a rule that judged no slice would bless the model it was declared to veto.
        why = "; ".join(f"'{s['name']}' {s.get('reason') or 'not judged'}" for s in unjudged[:3])
        more = f"; and {len(unjudged) - 3} more" if len(unjudged) > 3 else ""
        message = (
            f"{label} on slice '{name}' failed: not judged, too few validation rows "
            f"({why}{more}); add validation rows or lower gates.min_slice_size"
        )
        return [Reason(f"slice {name}", rule.metric, None, None, False, message, "absolute", name)]
    reasons: list[Reason] = []
    for each in found:
        if not each.get("judged", True):
            message = (
                f"{label} not applied to slice '{each['name']}', {each.get('reason')} "
                f"(applied to the other slices of '{name}')"
            )
            reasons.append(
                Reason(
                    f"slice {each['name']}",
                    rule.metric,
                    None,
                    None,
                    True,
                    message,
                    "absolute",
                    each["name"],
                    False,
                )
            )
            continue
        reasons.extend(_absolute(rule, each.get("metrics") or {}, each["name"]))
    return reasons


def _regression_reason(
    metric: str,
    mine: float | None,
    theirs: float | None,
    *,
    allowed_fraction: float,
    relative: bool,
    champion: int | None,
    slice_name: str | None,
) -> Reason:
    kind = "champion-slice" if slice_name else "champion"
    where = _where(slice_name)
    rule = f"{metric} within {allowed_fraction:g}{' (relative)' if relative else ''} of champion"
    if mine is None or theirs is None:
        message = f"{metric}{where}: cannot compare with champion v{champion} (not computed)"
        return Reason(rule, metric, mine, None, False, message, kind, slice_name)
    allowed = allowed_fraction * abs(theirs) if relative else allowed_fraction
    worse_by = better(metric, theirs, mine)
    ok = worse_by <= allowed + _TOLERANCE
    verdict = "passed" if ok else "failed"
    message = (
        f"{metric}{where} vs champion v{champion} {verdict}: {mine:.4f} against {theirs:.4f} "
        f"(worse by {max(worse_by, 0.0):.4f}, allowed {allowed:.4f})"
    )
    return Reason(rule, metric, mine, allowed, ok, message, kind, slice_name)


def _champion_rules(
    evaluation: dict[str, Any], spec: GatesSpec, champion: dict[str, Any]
) -> list[Reason]:
    rule = spec.champion
    if rule is None:
        return []
    metric = rule.metric or str(evaluation.get("primary"))
    theirs_eval = champion.get("metrics") or {}
    version = champion.get("version")
    # Measured on the same rows as the champion (rows neither trained on), when available.
    evaluation = champion.get("candidate") or evaluation
    reasons = [
        _regression_reason(
            metric,
            _finite((evaluation.get("valid") or {}).get(metric)),
            _finite((theirs_eval.get("valid") or {}).get(metric)),
            allowed_fraction=rule.max_regression,
            relative=rule.relative,
            champion=version,
            slice_name=None,
        )
    ]
    if not rule.slices:
        return reasons
    allowed = rule.max_slice_regression
    allowed = rule.max_regression if allowed is None else allowed
    theirs_slices = _slices(theirs_eval)
    for name, mine in _slices(evaluation).items():
        theirs = theirs_slices.get(name)
        if theirs is None:
            continue
        if not (mine.get("judged") and theirs.get("judged")):
            size = min(mine.get("size", 0), theirs.get("size", 0))
            message = f"slice '{name}' not compared with champion: too small to judge ({size} rows)"
            reasons.append(
                Reason(
                    "slice size", metric, None, None, True, message, "champion-slice", name, False
                )
            )
            continue
        reasons.append(
            _regression_reason(
                metric,
                _finite((mine.get("metrics") or {}).get(metric)),
                _finite((theirs.get("metrics") or {}).get(metric)),
                allowed_fraction=allowed,
                relative=rule.relative,
                champion=version,
                slice_name=name,
            )
        )
    return reasons


def _baseline_rules(evaluation: dict[str, Any], spec: GatesSpec) -> list[Reason]:
    rule = spec.beat_baselines
    if rule is None:
        return []
    metric = str(evaluation.get("primary"))
    mine = _finite((evaluation.get("valid") or {}).get(metric))
    baselines = evaluation.get("baselines") or {}
    reasons = []
    for name in rule.baselines:
        theirs = _finite(((baselines.get(name) or {}).get("metrics") or {}).get(metric))
        label = f"beats {name} baseline by > {rule.margin:g}"
        if mine is None or theirs is None:
            message = f"{label}: {metric} of the {name} baseline was not computed"
            reasons.append(Reason(label, metric, mine, rule.margin, False, message, "baseline"))
            continue
        margin = better(metric, mine, theirs)
        ok = margin > rule.margin
        message = (
            f"{metric} {'beats' if ok else 'does not beat'} the {name} baseline by more than "
            f"{rule.margin:g}: {mine:.4f} against {theirs:.4f} (margin {margin:+.4f})"
        )
        reasons.append(Reason(label, metric, margin, rule.margin, ok, message, "baseline"))
    return reasons


def _bound(
    label: str, metric: str, value: Any, limit: float | None, unit: str, kind: str
) -> list[Reason]:
    if limit is None:
        return []
    number = _finite(value)
    if number is None:
        return [Reason(label, metric, None, limit, False, f"{label}: {metric} not measured", kind)]
    ok = number <= limit
    message = f"{label} {'passed' if ok else 'failed'}: {metric} = {number:.3f} {unit}"
    return [Reason(label, metric, number, limit, ok, message, kind)]


def _fairness_rules(evaluation: dict[str, Any], spec: GatesSpec) -> list[Reason]:
    attributes = (evaluation.get("fairness") or {}).get("attributes") or {}
    reasons = []
    for rule in spec.fairness:
        names = [rule.attribute] if rule.attribute else sorted(attributes)
        for name in names:
            label = f"{rule.metric} for '{name}' <= {rule.max:g}"
            found = attributes.get(name)
            if found is None:
                message = f"{label}: no sensitive attribute '{name}' was evaluated"
                reasons.append(
                    Reason(label, rule.metric, None, rule.max, False, message, "fairness")
                )
                continue
            value = _finite((found.get("disparities") or {}).get(rule.metric))
            if not found.get("disparities"):
                message = f"{label}: not judged, fewer than two groups large enough"
                reasons.append(
                    Reason(
                        label, rule.metric, None, rule.max, True, message, "fairness", None, False
                    )
                )
                continue
            if value is None:
                message = f"{label}: metric '{rule.metric}' was not computed"
                reasons.append(
                    Reason(label, rule.metric, None, rule.max, False, message, "fairness")
                )
                continue
            ok = value <= rule.max
            message = f"{label} {'passed' if ok else 'failed'}: {rule.metric} = {value:.4f}"
            reasons.append(Reason(label, rule.metric, value, rule.max, ok, message, "fairness"))
    return reasons


def gate(
    evaluation: dict[str, Any],
    spec: GatesSpec,
    *,
    champion: dict[str, Any] | None = None,
    same_as_champion: bool = False,
) -> GateDecision:
    """Bless or veto a candidate's evaluation against every rule in ``spec``.

    Args:
        evaluation: The candidate's evaluation.
        spec: The ``gates`` section of the project spec.
        champion: ``{"version": N, "metrics": evaluation}`` of the current champion (with
            ``"candidate"``: the candidate's evaluation on the same rows, when the
            champion's metrics were measured on rows other than ``evaluation``'s), or
            ``None`` when there is none: then only absolute rules and baselines apply.
        same_as_champion: The candidate is the champion's model; it is not compared with
            itself.

    >>> from readyml.config import GatesSpec
    >>> spec = GatesSpec.model_validate({"rules": [{"metric": "accuracy", "min": 0.9}]})
    >>> gate({"primary": "accuracy", "valid": {"accuracy": 0.8}}, spec).failed[0].message
    'accuracy >= 0.9 failed: accuracy = 0.8000'
    """
    valid = evaluation.get("valid") or {}
    reasons: list[Reason] = []
    for rule in spec.rules:
        reasons += _slice_rules(rule, evaluation) if rule.slice else _absolute(rule, valid, None)
    note = ""
    compared = False
    version = None if champion is None else champion.get("version")
    if spec.champion is not None:
        if champion is None:
            note = "no champion yet: judged on absolute rules and baselines only"
        elif same_as_champion:
            note = f"this model is the champion (v{version}); not compared with itself"
        else:
            reasons += _champion_rules(evaluation, spec, champion)
            compared = True
    reasons += _baseline_rules(evaluation, spec)
    serving = evaluation.get("serving") or {}
    reasons += _bound(
        f"p95 latency <= {spec.max_latency_ms:g} ms" if spec.max_latency_ms else "latency",
        "latency_ms_p95",
        serving.get("latency_ms_p95"),
        spec.max_latency_ms,
        "ms",
        "latency",
    )
    reasons += _bound(
        f"size <= {spec.max_size_mb:g} MB" if spec.max_size_mb else "size",
        "size_mb",
        serving.get("size_mb"),
        spec.max_size_mb,
        "MB",
        "size",
    )
    reasons += _fairness_rules(evaluation, spec)
    return _decide(reasons, champion=version, compared_with_champion=compared, note=note)
