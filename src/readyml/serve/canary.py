"""Canary analysis: judge a step's candidate against the stable version, with evidence.

A canary step sees few requests, and raw numbers compared with limits roll good candidates
back on noise: one error in 100 requests is +0.01; the Jensen-Shannon distance of ten
predicted labels from the stable version's is often over 0.1 by chance; p99 of 20 latencies
is their maximum. :func:`judge` therefore answers with one of three outcomes:

* **fail**: at least one limit is broken with confidence (a lower confidence bound, or a
  significant distance, lies beyond it);
* **pass**: every observed number is within its limit;
* **inconclusive**: some number is beyond its limit, but not significantly yet, or it has
  nothing to be compared with (no stable requests, latencies or outputs): the step goes on
  and is judged again at twice the requests; still inconclusive after
  ``max_step_requests`` (or ``max_step_duration_s``), it rolls back. A comparison without
  stable data never passes: "no worse than stable" is unknown, not shown.

A pass is judged on the observed numbers, not on upper bounds: proving an error rate under
+0.01 takes some 300 error-free requests (the rule of three), which would override the
user's ``min_requests``; the later steps, each judged afresh on more traffic, keep watching.

The tests, each one-sided:

* error and rejection rates: Newcombe's square-and-add interval for the increase
  (candidate − stable), with exact Clopper-Pearson bounds per side, against
  ``max_error_rate_increase`` and ``max_rejection_rate_increase``;
* NaN/inf rows: the exact lower bound of the candidate's share against
  ``max_nonfinite_rate``; at the default limit of 0 any non-finite row fails;
* latency p95 and p99: the candidate's distribution-free order-statistic lower bound on the
  quantile against the stable quantile × ``max_latency_ratio`` + ``latency_slack_ms``;
* divergence: the Jensen-Shannon distance (base 2, labels counted, numbers binned at the
  stable version's deciles as :class:`~readyml.data.drift.JensenShannon` does) fails when
  it is over ``max_divergence`` and a permutation test of the pooled outputs finds it
  larger than sampling alone gives.

``1 - confidence`` is split evenly (Bonferroni) over the six limits and the looks a step may
take (:func:`looks`), so that a step fails a candidate within every limit by chance with
probability at most ``1 - confidence``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from readyml.config import RolloutSpec
from readyml.predict import Prediction, nonfinite_rows
from readyml.types import JSON

# Most latencies and outputs kept per side of a step (samples; older ones are dropped).
MAX_SAMPLES = 50_000
# Candidate requests after which an inconclusive step rolls back, per ``min_requests``
# (when ``max_step_requests`` is unset).
DEFAULT_REQUEST_CAP_FACTOR = 10
# Limits judged at each look (errors, rejections, NaN/inf, p95, p99, divergence).
LIMITS = 6
# Bins numeric outputs are counted in (as JensenShannon's default).
OUTPUT_BINS = 10
# Most bins the permutation test draws (the least frequent labels beyond are pooled).
TEST_BINS = 20
# Permutation draws per unit of 1/alpha, and their bounds (draws).
DRAWS_PER_ALPHA = 5
MIN_DRAWS = 1_000
MAX_DRAWS = 100_000
# The permutation test's seed: the same windows always give the same verdict.
SEED = 0


class Outcome(enum.Enum):
    """A judgement: within every limit, beyond one with confidence, or not yet known."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class ArmStats:
    """What one side (stable or candidate) did during a window: counts, latencies, outputs."""

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.rejections = 0
        self.rows = 0
        self.nonfinite_rows = 0
        self.latencies_ms: list[float] = []
        self.outputs: list[Any] = []

    def observe(self, status: int, latency_s: float) -> None:
        """Count one answered request (5xx and 422 are errors, other 4xx rejections)."""
        self.requests += 1
        if status >= 500 or status == 422:
            self.errors += 1
        elif status >= 400:
            self.rejections += 1
        if len(self.latencies_ms) < MAX_SAMPLES:
            self.latencies_ms.append(latency_s * 1000)

    def record(self, prediction: Prediction, offset: int, rows: int) -> None:
        """Keep the predictions of one request (for divergence and NaN/inf counts)."""
        self.rows += rows
        self.nonfinite_rows += nonfinite_rows(prediction, offset, rows)
        if len(self.outputs) < MAX_SAMPLES:
            self.outputs.extend(prediction.labels[offset : offset + rows].tolist())

    def record_nonfinite(self, rows: int, nonfinite: int) -> None:
        """Count a request whose answer held NaN or infinity in ``nonfinite`` of its ``rows``
        (refused to the client, so there is no prediction to keep)."""
        self.rows += rows
        self.nonfinite_rows += nonfinite

    def copy(self) -> ArmStats:
        """A snapshot that later requests do not change (to judge it off the event loop)."""
        snapshot = ArmStats()
        snapshot.__dict__.update(self.__dict__)
        snapshot.latencies_ms = list(self.latencies_ms)
        snapshot.outputs = list(self.outputs)
        return snapshot

    def to_dict(self) -> JSON:
        """Every count and sample, to persist the window (see :meth:`from_dict`)."""
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, document: JSON) -> ArmStats:
        """A window written by :meth:`to_dict`.

        Raises:
            ValueError: ``document`` is not such a window.
        """
        stats = cls()
        if not isinstance(document, dict) or set(document) != set(stats.__dict__):
            raise ValueError(
                f"window: expected keys {sorted(stats.__dict__)}, found {sorted(document)}"
            )
        for key, value in document.items():
            expected = type(getattr(stats, key)).__name__
            if type(value).__name__ != expected:
                raise ValueError(f"window.{key}: expected {expected}, found {type(value).__name__}")
            setattr(stats, key, value)
        return stats

    def rate(self, count: int) -> float:
        """``count`` as a share of the requests (0 when there were none)."""
        return count / self.requests if self.requests else 0.0

    def latency_ms(self, quantile: float) -> float:
        """A latency quantile (0 when there are no samples)."""
        return float(np.quantile(self.latencies_ms, quantile)) if self.latencies_ms else 0.0

    def summary(self) -> JSON:
        """The window's numbers, rounded for reports."""
        return {
            "requests": self.requests,
            "error_rate": round(self.rate(self.errors), 4),
            "rejection_rate": round(self.rate(self.rejections), 4),
            "p95_ms": round(self.latency_ms(0.95), 3),
            "p99_ms": round(self.latency_ms(0.99), 3),
            "nonfinite_rate": round(self.nonfinite_rows / self.rows, 4) if self.rows else 0.0,
        }


@dataclass
class Verdict:
    """The controller's judgement of one step: its outcome, why, and the numbers."""

    outcome: Outcome
    reason: str
    numbers: JSON


@dataclass
class Check:
    """One limit's judgement: its outcome, a sentence when not passed, and its numbers."""

    outcome: Outcome
    text: str
    numbers: JSON


def request_cap(spec: RolloutSpec) -> int:
    """Candidate requests after which a still inconclusive step rolls back.

    >>> request_cap(RolloutSpec(min_requests=100))
    1000
    """
    if spec.max_step_requests is not None:
        return spec.max_step_requests
    return DEFAULT_REQUEST_CAP_FACTOR * spec.min_requests


def looks(spec: RolloutSpec) -> int:
    """The most times one step is judged: at ``min_requests``, then at twice the requests
    of the last look until the cap, and once more at ``max_step_duration_s`` if set.

    >>> looks(RolloutSpec(min_requests=100))  # at 100, 200, 400, 800 and 1000 requests
    5
    """
    doublings = math.ceil(math.log2(request_cap(spec) / spec.min_requests))
    return 1 + doublings + (spec.max_step_duration_s is not None)


def per_test_alpha(spec: RolloutSpec) -> float:
    """The error share of each one-sided test: ``1 - confidence`` over limits and looks.

    >>> round(per_test_alpha(RolloutSpec(min_requests=100)), 6)  # 0.05 / (6 × 5)
    0.001667
    """
    return (1.0 - spec.confidence) / (LIMITS * looks(spec))


def judge(stable: ArmStats, candidate: ArmStats, spec: RolloutSpec) -> Verdict:
    """Judge a step's candidate against the stable version (see the module docstring).

    Any failed limit fails the step; otherwise any inconclusive one makes it inconclusive.
    """
    alpha = per_test_alpha(spec)
    checks: dict[str, Check] = {
        "error_rate": _rate_increase(
            "error rate",
            (candidate.errors, candidate.requests),
            (stable.errors, stable.requests),
            spec.max_error_rate_increase,
            alpha,
        ),
        "rejection_rate": _rate_increase(
            "rejection rate",
            (candidate.rejections, candidate.requests),
            (stable.rejections, stable.requests),
            spec.max_rejection_rate_increase,
            alpha,
        ),
        "nonfinite_rate": _nonfinite(candidate, spec.max_nonfinite_rate, alpha),
        "latency_p95": _latency(0.95, stable, candidate, spec, alpha),
        "latency_p99": _latency(0.99, stable, candidate, spec, alpha),
        "divergence": _divergence(stable.outputs, candidate.outputs, spec.max_divergence, alpha),
    }
    numbers: JSON = {
        "stable": stable.summary(),
        "candidate": candidate.summary(),
        "confidence": spec.confidence,
        "test_alpha": _round(alpha),
        "checks": {name: {"outcome": c.outcome.value, **c.numbers} for name, c in checks.items()},
    }
    distance = checks["divergence"].numbers.get("distance")
    if distance is not None:
        numbers["divergence_js"] = distance
    for outcome in (Outcome.FAIL, Outcome.INCONCLUSIVE):
        texts = [c.text for c in checks.values() if c.outcome is outcome]
        if texts:
            return Verdict(outcome, "; ".join(texts), numbers)
    summary = numbers["candidate"]
    reason = (
        f"{summary['requests']} requests, error rate {summary['error_rate']}, "
        f"p95 {summary['p95_ms']} ms, p99 {summary['p99_ms']} ms, "
        f"divergence {numbers.get('divergence_js', 'n/a')}"
    )
    return Verdict(Outcome.PASS, reason, numbers)


# -- the limits ---------------------------------------------------------------------------


def _rate_increase(
    what: str, candidate: tuple[int, int], stable: tuple[int, int], limit: float, alpha: float
) -> Check:
    """Candidate rate − stable rate against ``limit`` (Newcombe's square-and-add interval)."""
    (count, n), (stable_count, stable_n) = candidate, stable
    share = count / n if n else 0.0
    if not stable_n:  # an increase over an unknown rate is unknown
        numbers: JSON = {"observed": None, "candidate": _round(share), "limit": limit}
        return Check(Outcome.INCONCLUSIVE, f"{what}: no stable requests to compare with", numbers)
    low, high = _exact_bounds(count, n, alpha)
    stable_share = stable_count / stable_n
    stable_low, stable_high = _exact_bounds(stable_count, stable_n, alpha)
    increase = share - stable_share
    lower = increase - math.hypot(share - low, stable_high - stable_share)
    upper = increase + math.hypot(high - share, stable_share - stable_low)
    numbers = {
        "observed": _round(increase),
        "interval": [_round(lower), _round(upper)],
        "limit": limit,
    }
    shown = f"{what} {share:.4f} vs stable {stable_share:.4f} (+{increase:.4f}"
    if lower > limit:
        return Check(Outcome.FAIL, f"{shown}, at least +{lower:.4f} > {limit})", numbers)
    if increase > limit:
        text = f"{shown} > {limit}, but could be {lower:+.4f}: not significant)"
        return Check(Outcome.INCONCLUSIVE, text, numbers)
    return Check(Outcome.PASS, "", numbers)


def _nonfinite(candidate: ArmStats, limit: float, alpha: float) -> Check:
    """The candidate's share of NaN/inf rows against ``limit`` (exact lower bound)."""
    count, rows = candidate.nonfinite_rows, candidate.rows
    share = count / rows if rows else 0.0
    low, high = _exact_bounds(count, rows, alpha) if rows else (0.0, 0.0)
    numbers: JSON = {
        "observed": _round(share),
        "interval": [_round(low), _round(high)],
        "limit": limit,
    }
    shown = f"NaN/inf outputs in {share:.4f} of rows ({count} of {rows}"
    # With limit 0 any non-finite row fails: its exact lower bound is above 0.
    if low > limit:
        return Check(Outcome.FAIL, f"{shown}, at least {low:.4f} > {limit})", numbers)
    if share > limit:
        text = f"{shown} > {limit}, but could be {low:.4f}: not significant)"
        return Check(Outcome.INCONCLUSIVE, text, numbers)
    return Check(Outcome.PASS, "", numbers)


def _latency(
    quantile: float, stable: ArmStats, candidate: ArmStats, spec: RolloutSpec, alpha: float
) -> Check:
    """The candidate's latency quantile against stable × ratio + slack.

    The candidate's lower bound is an order statistic, right for any distribution and any
    sample size: with 20 samples, p99's bound is their second largest, so one slow request
    alone never fails a step. The stable side (usually the larger sample) is taken as
    observed; with few samples its quantile is near its maximum, a lenient limit.
    """
    label = f"p{round(quantile * 100)}"
    missing = _missing_side(stable.latencies_ms, candidate.latencies_ms)
    if missing is not None:
        text = f"latency {label}: no {missing} latencies to compare with"
        return Check(Outcome.INCONCLUSIVE, text, {"observed_ms": None})
    stable_ms = stable.latency_ms(quantile)
    limit_ms = stable_ms * spec.max_latency_ratio + spec.latency_slack_ms
    observed_ms = candidate.latency_ms(quantile)
    lower_ms = _quantile_lower_bound(candidate.latencies_ms, quantile, alpha)
    numbers: JSON = {
        "observed_ms": round(observed_ms, 3),
        "lower_bound_ms": None if lower_ms is None else round(lower_ms, 3),
        "limit_ms": round(limit_ms, 3),
        "samples": len(candidate.latencies_ms),
    }
    shown = f"latency {label} {observed_ms:.1f} ms"
    limit_text = f"limit {limit_ms:.1f} ms (stable {stable_ms:.1f} ms)"
    if lower_ms is not None and lower_ms > limit_ms:
        text = f"{shown} (at least {lower_ms:.1f} ms) > {limit_text}"
        return Check(Outcome.FAIL, text, numbers)
    if observed_ms > limit_ms:
        bound = "no bound yet" if lower_ms is None else f"could be {lower_ms:.1f} ms"
        text = f"{shown} > {limit_text}, but {bound} with {len(candidate.latencies_ms)} samples"
        return Check(Outcome.INCONCLUSIVE, text, numbers)
    return Check(Outcome.PASS, "", numbers)


def _divergence(
    stable: Sequence[Any], candidate: Sequence[Any], limit: float, alpha: float
) -> Check:
    """Jensen-Shannon distance of the outputs against ``limit``, failing only where a
    permutation test says sampling alone would rarely give as large a distance."""
    missing = _missing_side(stable, candidate)
    counts = _histograms(stable, candidate) if missing is None else None
    if counts is None:
        text = f"prediction divergence: no {missing or 'finite'} outputs to compare with"
        return Check(Outcome.INCONCLUSIVE, text, {"distance": None})
    stable_counts, candidate_counts = counts
    distance = float(_js_distance(_shares(stable_counts), _shares(candidate_counts)))
    numbers: JSON = {"distance": round(distance, 4), "limit": limit, "bins": len(stable_counts)}
    if distance <= limit:
        return Check(Outcome.PASS, "", numbers)
    p_value, noise = _permutation_test(stable_counts, candidate_counts, alpha)
    numbers |= {"p_value": _round(p_value), "noise": round(noise, 4)}
    shown = (
        f"prediction divergence (Jensen-Shannon) {distance:.4f} > {limit} "
        f"(p {p_value:.2g}, sampling alone gives up to {noise:.4f}"
    )
    if p_value < alpha:
        return Check(Outcome.FAIL, f"{shown})", numbers)
    return Check(Outcome.INCONCLUSIVE, f"{shown}: not significant)", numbers)


def _missing_side(stable: Sequence[Any], candidate: Sequence[Any]) -> str | None:
    """``"stable"`` or ``"candidate"`` when that side has no samples, else ``None``."""
    if not len(stable):
        return "stable"
    return None if len(candidate) else "candidate"


# -- statistics ---------------------------------------------------------------------------


def _exact_bounds(count: int, n: int, alpha: float) -> tuple[float, float]:
    """One-sided Clopper-Pearson bounds of a proportion, each at error ``alpha``.

    Exact rather than Wilson, whose lower bound at one event in ten is four times too high.
    """
    if n == 0:
        return 0.0, 1.0
    low = 0.0 if count == 0 else float(stats.beta.ppf(alpha, count, n - count + 1))
    high = 1.0 if count == n else float(stats.beta.ppf(1.0 - alpha, count + 1, n - count))
    return low, high


def _quantile_lower_bound(values: Sequence[float], quantile: float, alpha: float) -> float | None:
    """The ``r``-th smallest value, with ``P(Binomial(n, quantile) >= r) >= 1 - alpha``
    (``None`` when the sample is too small for any)."""
    rank = int(stats.binom.ppf(alpha, len(values), quantile))
    if rank < 1:
        return None
    return float(np.partition(np.asarray(values, dtype=np.float64), rank - 1)[rank - 1])


def _histograms(
    stable: Sequence[Any], candidate: Sequence[Any]
) -> tuple[NDArray[np.int64], NDArray[np.int64]] | None:
    """Aligned counts of both sides' outputs (``None`` when one side has none to count)."""
    ref, cur = np.asarray(stable).ravel(), np.asarray(candidate).ravel()
    if ref.dtype.kind in "iuf" and cur.dtype.kind in "iuf":
        ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]  # NaN/inf have their own limit
        if not len(ref) or not len(cur):
            return None
        # Binned as JensenShannon bins numbers: (q_i, q_i+1] at the stable version's deciles.
        edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, OUTPUT_BINS + 1)[1:-1]))
        size = len(edges) + 1
        return (
            np.bincount(np.searchsorted(edges, ref, side="left"), minlength=size),
            np.bincount(np.searchsorted(edges, cur, side="left"), minlength=size),
        )
    labels, codes = np.unique(
        np.concatenate([ref.astype(str), cur.astype(str)]), return_inverse=True
    )
    return (
        np.bincount(codes[: len(ref)], minlength=len(labels)),
        np.bincount(codes[len(ref) :], minlength=len(labels)),
    )


def _permutation_test(
    stable: NDArray[np.int64], candidate: NDArray[np.int64], alpha: float
) -> tuple[float, float]:
    """P-value of the distance under "both sides draw from the same outputs", and the
    distance sampling alone stays under with probability ``1 - alpha``.

    Shuffling which side each pooled output came from gives the candidate's counts a
    multivariate hypergeometric law, drawn directly: O(bins) per draw, whatever the sample.
    """
    pooled = stable + candidate
    order = np.argsort(pooled)[::-1]
    if len(order) > TEST_BINS:  # the rarest labels, pooled, bound the cost
        keep, rest = order[: TEST_BINS - 1], order[TEST_BINS - 1 :]
        stable = np.append(stable[keep], stable[rest].sum())
        candidate = np.append(candidate[keep], candidate[rest].sum())
        pooled = stable + candidate
    observed = _js_distance(_shares(stable), _shares(candidate))
    draws = int(min(MAX_DRAWS, max(MIN_DRAWS, math.ceil(DRAWS_PER_ALPHA / alpha))))
    generator = np.random.default_rng(SEED)
    drawn = generator.multivariate_hypergeometric(pooled, int(candidate.sum()), size=draws)
    null = _js_distance(_shares(pooled - drawn), _shares(drawn))
    p_value = (1 + int(np.count_nonzero(null >= observed - 1e-12))) / (draws + 1)
    return p_value, float(np.quantile(null, 1.0 - alpha))


def _shares(counts: NDArray[np.int64]) -> NDArray[np.float64]:
    """Counts (one row, or one per draw) as shares of their row's total."""
    totals = np.maximum(counts.sum(axis=-1, keepdims=True), 1)
    shares: NDArray[np.float64] = counts / totals
    return shares


def _js_distance(p: NDArray[np.float64], q: NDArray[np.float64]) -> NDArray[np.float64]:
    """Jensen-Shannon distance in bits of each row pair (JensenShannon's formula, batched)."""
    middle = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log2(p / middle), 0.0).sum(axis=-1)
        right = np.where(q > 0, q * np.log2(q / middle), 0.0).sum(axis=-1)
    distance: NDArray[np.float64] = np.sqrt(np.maximum((left + right) / 2, 0.0))
    return distance


def _round(value: float) -> float:
    """Four significant digits (bounds and p-values span orders of magnitude)."""
    return float(f"{value:.4g}")
