"""Rollouts against real server processes: infra validation, canary, shadow, rollback, resume."""

from __future__ import annotations

import asyncio
import concurrent.futures
import doctest
import json
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from typer.testing import CliRunner

from readyml.cli.rollout import app as rollout_cli
from readyml.config import Project, RolloutSpec
from readyml.data.drift import JensenShannon
from readyml.errors import ConfigError
from readyml.flavors.sklearn import SklearnModel
from readyml.registry import Registry
from readyml.serve import canary as canary_module
from readyml.serve import infra_validation
from readyml.serve import rollout as rollout_module
from readyml.serve.canary import ArmStats, Outcome, judge, looks, request_cap
from readyml.serve.canary_demo import canary_demo
from readyml.serve.rollout import (
    IllegalTransition,
    Rollout,
    RolloutManager,
    RolloutRecord,
    RolloutState,
    rollout_folder,
    transition,
)
from readyml.serve.server import build_app
from readyml.train import open_project_registry
from support import IRIS_SPEC, iris_frame, write_project

from .conftest import ROW, TOKEN, Server, serve_process, train_iris

AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Seconds a test waits for the controller to reach a decision.
DECISION_TIMEOUT_S = 30.0
# A fixed, unbalanced batch (5 setosa, 3 versicolor, 1 virginica rows), so that a healthy
# candidate's predictions match the stable version's exactly and a shifted one's do not.
BATCH_ROWS = [0, 1, 2, 3, 4, 50, 51, 52, 100]
FAST_STEPS: dict[str, Any] = {
    "steps": [25, 50, 100],
    "step_duration_s": 0.2,
    "min_requests": 8,
    "tick_s": 0.05,
    "latency_slack_ms": 200.0,
    "max_latency_ratio": 10.0,
}


def registry_of(root: Path) -> Registry:
    return open_project_registry(Project.load(root))


def register(root: Path, make: Callable[[], LogisticRegression], *, shift: bool = False) -> int:
    """Fit ``make()`` on iris (labels skewed to virginica when ``shift``); register it blessed."""
    frame = iris_frame()
    features = frame.drop(columns=["species"])
    labels = frame["species"].copy()
    if shift:
        keep = labels.index.isin([0, 60])
        labels[~keep] = "virginica"
    model = SklearnModel(estimator=make()).fit(features, labels)
    with tempfile.TemporaryDirectory() as tmp:
        written = model.save(Path(tmp))
        version = registry_of(root).register(
            "iris",
            files={path.name: path for path in written},
            model_fingerprint=f"iris-{time.monotonic_ns()}",
            signature=model.signature(),
            input_example=[ROW],
            tags={"flavor": "sklearn"},
            status="blessed",
        )
    return version.version


def register_nan(root: Path) -> int:
    """A version whose probabilities are all NaN (its coefficients are)."""
    frame = iris_frame()
    model = SklearnModel(estimator=LogisticRegression(max_iter=500))
    model.fit(frame.drop(columns=["species"]), frame["species"])
    estimator: Any = model.model_
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    final.coef_ = np.full_like(final.coef_, np.nan)
    with tempfile.TemporaryDirectory() as tmp:
        written = model.save(Path(tmp))
        version = registry_of(root).register(
            "iris",
            files={path.name: path for path in written},
            model_fingerprint="iris-nan",
            signature=model.signature(),
            input_example=[ROW],
            tags={"flavor": "sklearn"},
            status="blessed",
        )
    return version.version


def register_overflowing(root: Path) -> int:
    """A version that answers the recorded example but gives NaN for wide petals.

    Its petal-width weights are so large that ``petal_width * weight`` overflows to inf
    above 1.79 (the example row has 0.2), and the softmax of inf - inf is NaN: the model
    passes infra validation and breaks only on live traffic, as overflow bugs do.
    """
    frame = iris_frame()
    model = SklearnModel(estimator=LogisticRegression(max_iter=500))
    model.fit(frame.drop(columns=["species"]), frame["species"])
    estimator: Any = model.model_
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    final.coef_[:, 3] = 1e308
    with tempfile.TemporaryDirectory() as tmp:
        written = model.save(Path(tmp))
        version = registry_of(root).register(
            "iris",
            files={path.name: path for path in written},
            model_fingerprint="iris-overflow",
            signature=model.signature(),
            input_example=[ROW],
            tags={"flavor": "sklearn"},
            status="blessed",
        )
    return version.version


def infer_body() -> dict[str, Any]:
    frame = iris_frame().drop(columns=["species"])
    data = frame.iloc[BATCH_ROWS].to_numpy(dtype=float).tolist()
    return {"inputs": [{"name": "x", "shape": [len(data), 4], "datatype": "FP64", "data": data}]}


class Traffic:
    """A thread sending the fixed batch until stopped; keeps (status, version) per answer."""

    def __init__(self, server: Server, *, headers: dict[str, str] | None = None) -> None:
        self.server = server
        self.headers = headers or {}
        self.answers: list[tuple[int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        body = infer_body()
        with self.server.client() as client:
            while not self._stop.is_set():
                answer = client.post("/v2/models/iris/infer", json=body, headers=self.headers)
                version = answer.json().get("model_version", "") if answer.is_success else ""
                self.answers.append((answer.status_code, version))

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def rollout_state(client: httpx.Client) -> dict[str, Any]:
    answer = client.get("/v2/management/rollout", headers=AUTH)
    assert answer.status_code == 200, answer.text
    rollouts: list[dict[str, Any]] = answer.json()["rollouts"]
    return rollouts[0] if rollouts else {}


def wait_for(client: httpx.Client, version: int, states: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + DECISION_TIMEOUT_S
    while time.monotonic() < deadline:
        state = rollout_state(client)
        if state.get("candidate_version") == version and state.get("state") in states:
            return state
        time.sleep(0.05)
    pytest.fail(f"rollout of version {version} did not reach {states}: {rollout_state(client)}")


def eventually(condition: Callable[[], bool]) -> None:
    """Wait for ``condition``: a decision shows in the status before its records are written."""
    deadline = time.monotonic() + DECISION_TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, "the rollout's records were not written in time"
        time.sleep(0.1)


def served_version(client: httpx.Client) -> str:
    answer = client.post("/v2/models/iris/infer", json=infer_body())
    assert answer.status_code == 200, answer.text
    version: str = answer.json()["model_version"]
    return version


def deploy(client: httpx.Client, version: int, **extra: Any) -> httpx.Response:
    body = {"model": "iris", "version": version, "rollout": FAST_STEPS, **extra}
    return client.post("/v2/management/deploy", json=body, headers=AUTH)


@dataclass
class Fleet:
    """One project and server shared by the module's rollout tests, and its versions."""

    root: Path
    server: Server
    healthy: int
    shadow: int
    shifted: int
    nan: int
    overflowing: int
    slow: int


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Version 1 is champion; the others are blessed candidates, registered up front."""
    root = train_iris(
        tmp_path_factory.mktemp("rollout"),
        serving={"request_log": {"enabled": False}, "access_log": False},
    )
    healthy = register(root, lambda: LogisticRegression(max_iter=500, C=0.9))
    shadow = register(root, lambda: LogisticRegression(max_iter=500, C=0.8))
    shifted = register(root, lambda: LogisticRegression(max_iter=500), shift=True)
    nan = register_nan(root)
    overflowing = register_overflowing(root)
    # A thousand trees behind a scaler: correct answers, tens of milliseconds per call (the
    # inner pipeline keeps readyml's direct path off, so scikit-learn dispatches each tree).
    slow = register(
        root,
        lambda: make_pipeline(
            StandardScaler(), RandomForestClassifier(n_estimators=1000, random_state=0)
        ),
    )
    with serve_process(root) as server:
        yield Fleet(root, server, healthy, shadow, shifted, nan, overflowing, slow)


@pytest.mark.parametrize("module", [rollout_module, canary_module, infra_validation])
def test_doctests_pass(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted > 0


def test_illegal_transitions_have_their_own_message() -> None:
    assert transition(RolloutState.SHADOW, RolloutState.CANARY, "m") is RolloutState.CANARY
    with pytest.raises(IllegalTransition, match="cannot return to shadowing"):
        transition(RolloutState.CANARY, RolloutState.SHADOW, "m")
    with pytest.raises(IllegalTransition, match="finished \\(promoted\\)"):
        transition(RolloutState.PROMOTED, RolloutState.ROLLED_BACK, "m")


# -- canary analysis on synthetic windows ---------------------------------------------------

SMALL = RolloutSpec(min_requests=10)


def arm(
    *,
    requests: int,
    errors: int = 0,
    labels: Sequence[Any] = (),
    latencies_ms: Iterable[float] = (),
    nonfinite: int = 0,
) -> ArmStats:
    """A window with these counts, outputs and latencies (as the controller records them)."""
    stats = ArmStats()
    stats.requests, stats.errors = requests, errors
    stats.rows, stats.nonfinite_rows = len(labels), nonfinite
    stats.outputs = list(labels)
    stats.latencies_ms = [float(value) for value in latencies_ms]
    return stats


def stable_arm(*, errors: int = 0, seed: int = 0) -> ArmStats:
    """10,000 stable requests: a binary classifier predicting 1 for 30 % of rows."""
    rng = np.random.default_rng(seed)
    return arm(
        requests=10_000,
        errors=errors,
        labels=rng.binomial(1, 0.3, 10_000).tolist(),
        latencies_ms=rng.lognormal(1.0, 0.5, 10_000),
    )


def test_clean_candidate_passes_where_raw_limits_were_tight() -> None:
    stable = stable_arm()
    quiet = np.full(100, 3.0)
    for errors in (0, 1):  # +0.01 is within max_error_rate_increase
        candidate = arm(requests=100, errors=errors, labels=[0] * 70 + [1] * 30, latencies_ms=quiet)
        verdict = judge(stable, candidate, RolloutSpec())
        assert verdict.outcome is Outcome.PASS, verdict.reason
    check = verdict.numbers["checks"]["error_rate"]
    assert check["observed"] == 0.01 and check["interval"][0] < 0.01 < check["interval"][1]


def test_good_candidate_with_small_samples_is_never_failed() -> None:
    stable = stable_arm(errors=50)
    rng = np.random.default_rng(7)
    outcomes, over_raw_limit = [], 0
    for _ in range(200):
        candidate = arm(
            requests=10,
            errors=int(rng.binomial(10, 0.005)),
            labels=rng.binomial(1, 0.3, 10).tolist(),
            latencies_ms=rng.lognormal(1.0, 0.5, 10),
        )
        verdict = judge(stable, candidate, SMALL)
        outcomes.append(verdict.outcome)
        over_raw_limit += verdict.numbers["divergence_js"] > SMALL.max_divergence
    assert Outcome.FAIL not in outcomes
    assert over_raw_limit > 50  # the raw distance limit alone would have rolled these back
    assert outcomes.count(Outcome.PASS) > 50


def test_noise_beyond_a_limit_is_inconclusive() -> None:
    stable = stable_arm()
    steady = np.full(20, 3.0)
    half = arm(requests=10, labels=[0, 1] * 5, latencies_ms=steady[:10])
    verdict = judge(stable, half, SMALL)
    check = verdict.numbers["checks"]["divergence"]
    assert verdict.outcome is Outcome.INCONCLUSIVE and "not significant" in verdict.reason
    assert check["distance"] > SMALL.max_divergence and check["p_value"] > 0.01
    outlier = arm(requests=20, labels=[0] * 14 + [1] * 6, latencies_ms=[*steady[:19], 500.0])
    verdict = judge(stable, outlier, SMALL)
    assert verdict.outcome is Outcome.INCONCLUSIVE and "latency p99" in verdict.reason
    assert verdict.numbers["checks"]["latency_p99"]["lower_bound_ms"] == 3.0
    two_errors = arm(requests=100, errors=2, labels=[0] * 70 + [1] * 30, latencies_ms=steady)
    verdict = judge(stable, two_errors, RolloutSpec())
    assert verdict.outcome is Outcome.INCONCLUSIVE and "error rate" in verdict.reason


def test_comparisons_without_stable_data_are_inconclusive() -> None:
    # A single 100 % step, or a restart during a step, leaves nothing to compare with.
    quiet = np.full(100, 3.0)
    candidate = arm(requests=100, labels=[0] * 70 + [1] * 30, latencies_ms=quiet)
    verdict = judge(ArmStats(), candidate, SMALL)
    assert verdict.outcome is Outcome.INCONCLUSIVE, verdict.reason
    outcomes = {name: check["outcome"] for name, check in verdict.numbers["checks"].items()}
    assert outcomes == {
        "error_rate": "inconclusive",
        "rejection_rate": "inconclusive",
        "nonfinite_rate": "pass",  # the candidate's own share: no comparison
        "latency_p95": "inconclusive",
        "latency_p99": "inconclusive",
        "divergence": "inconclusive",
    }
    assert "error rate: no stable requests to compare with" in verdict.reason
    assert "prediction divergence: no stable outputs to compare with" in verdict.reason
    counted = arm(requests=100)  # stable requests, but no latencies or outputs kept
    assert judge(counted, candidate, SMALL).outcome is Outcome.INCONCLUSIVE
    # A failed limit that needs no comparison still fails at once.
    broken = arm(requests=100, labels=[0] * 100, latencies_ms=quiet, nonfinite=5)
    assert judge(ArmStats(), broken, SMALL).outcome is Outcome.FAIL


@pytest.mark.parametrize(
    ("candidate", "expected", "failed"),
    [
        (arm(requests=100, errors=10, labels=[0] * 70 + [1] * 30), "error rate", {"error_rate"}),
        (
            arm(requests=10, labels=[1] * 10),
            "prediction divergence (Jensen-Shannon)",
            {"divergence"},
        ),
        (
            arm(requests=100, labels=[0] * 70 + [1] * 30, nonfinite=1),
            "NaN/inf outputs",
            {"nonfinite_rate"},
        ),
        (
            arm(requests=20, labels=[0] * 14 + [1] * 6, latencies_ms=np.full(20, 40.0)),
            "latency p95",
            {"latency_p95", "latency_p99"},
        ),
    ],
)
def test_clearly_bad_candidate_fails_at_once(
    candidate: ArmStats, expected: str, failed: set[str]
) -> None:
    verdict = judge(stable_arm(), candidate, SMALL)
    assert verdict.outcome is Outcome.FAIL and expected in verdict.reason, verdict.reason
    checks = verdict.numbers["checks"].items()
    assert {name for name, check in checks if check["outcome"] == "fail"} == failed


def test_numeric_outputs_are_binned_as_jensen_shannon_does() -> None:
    rng = np.random.default_rng(3)
    reference, current = rng.normal(0.0, 1.0, 5000), rng.normal(0.5, 1.0, 400)
    stable = arm(requests=5000, labels=reference.tolist())
    candidate = arm(requests=400, labels=[*current.tolist(), float("nan")])
    verdict = judge(stable, candidate, RolloutSpec())
    expected = JensenShannon().run(reference, current).statistic
    assert verdict.numbers["divergence_js"] == round(expected, 4)
    assert verdict.outcome is Outcome.FAIL
    assert judge(stable, candidate, RolloutSpec()).numbers == verdict.numbers  # seeded


def test_rollout_spec_validates_confidence_and_caps() -> None:
    for bad, message in (
        ({"confidence": 1.0}, "confidence"),
        ({"confidence": 0.5}, "confidence"),
        ({"max_step_requests": 50}, "expected at least min_requests (100), found 50"),
        ({"max_step_duration_s": 60.0}, "expected at least step_duration_s (300), found 60"),
        ({"sticky_header": ""}, "expected a header name such as x-user-id (letters, digits"),
        ({"sticky_header": "x user"}, "found 'x user'"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            RolloutSpec.model_validate(bad)
    assert request_cap(RolloutSpec(min_requests=10)) == 100
    assert request_cap(RolloutSpec(min_requests=10, max_step_requests=40)) == 40
    assert looks(RolloutSpec(min_requests=10, max_step_requests=40)) == 3
    assert looks(RolloutSpec(min_requests=10, max_step_requests=10, max_step_duration_s=600)) == 2


def test_empty_sticky_header_is_a_config_error(tmp_path: Path) -> None:
    write_project(tmp_path, {**IRIS_SPEC, "serving": {"rollout": {"sticky_header": ""}}})
    with pytest.raises(ConfigError, match=r"serving\.rollout\.sticky_header: expected a header"):
        Project.load(tmp_path)


# -- the controller on inconclusive steps ------------------------------------------------------

PATIENT: dict[str, Any] = {
    "steps": [50, 100],
    "step_duration_s": 0.0,
    "min_requests": 10,
    "max_step_requests": 40,
    "tick_s": 60.0,  # the test calls step() itself
}


async def deploy_with_stable(rollouts: RolloutManager, version: int, **overrides: Any) -> Rollout:
    """Start a canary of ``version`` whose stable side answered 10,000 clean requests."""
    await rollouts.deploy("iris", version, mode="canary", overrides={**PATIENT, **overrides})
    rollout = rollouts.rollouts["iris"]
    answer_stable(rollout, 10_000)
    return rollout


def answer_stable(rollout: Rollout, requests: int) -> None:
    """``requests`` clean stable answers, each predicting setosa."""
    for _ in range(requests):
        rollout.stable_stats.observe(200, 0.001)
        rollout.stable_stats.outputs.append("setosa")


def answer(rollout: Rollout, requests: int, *, errors: int = 0) -> None:
    for index in range(requests):
        rollout.candidate_stats.observe(500 if index < errors else 200, 0.001)
        if index >= errors:
            rollout.candidate_stats.outputs.append("setosa")


def test_inconclusive_step_extends_then_passes_or_the_cap_rolls_back(tmp_path: Path) -> None:
    root = train_iris(tmp_path, serving={"request_log": {"enabled": False}, "access_log": False})
    candidate = register(root, lambda: LogisticRegression(max_iter=500, C=0.9))
    registry = registry_of(root)
    app = build_app(Project.load(root), registry=registry, token=TOKEN)
    rollouts = app.rollouts
    assert rollouts is not None
    actions: list[list[str]] = []

    async def scenario() -> None:
        assert rollouts is not None
        try:
            # Capped by requests: 2 errors in 10, 20, 40 requests are never significant.
            rollout = await deploy_with_stable(rollouts, candidate)
            answer(rollout, 10, errors=2)
            await rollouts.step(rollout)
            assert rollout.judge_at_requests == 20 and rollout.undecided is not None
            await rollouts.step(rollout)  # not due: no new requests
            answer(rollout, 10)
            await rollouts.step(rollout)
            assert rollout.judge_at_requests == 40 and rollout.state is RolloutState.CANARY
            answer(rollout, 20)
            await rollouts.step(rollout)
            assert "iris" not in rollouts.rollouts
            actions.append([d.action for d in rollout.record.decisions])
            # Enough clean requests settle it: 2 errors in 320 are within the limit.
            rollout = await deploy_with_stable(rollouts, candidate, max_step_requests=400)
            answer(rollout, 10, errors=2)
            await rollouts.step(rollout)
            answer(rollout, 310)
            await rollouts.step(rollout)
            assert rollout.record.step_index == 1 and rollout.undecided is None
            actions.append([d.action for d in rollout.record.decisions])
            await rollouts.rollback("iris", reason="test over")
            # Capped by time.
            rollout = await deploy_with_stable(rollouts, candidate, max_step_duration_s=5.0)
            answer(rollout, 10, errors=2)
            await rollouts.step(rollout)
            rollout.step_started_s -= 10.0
            await rollouts.step(rollout)
            assert "iris" not in rollouts.rollouts
            actions.append([d.action for d in rollout.record.decisions])
        finally:
            await app.shutdown()

    asyncio.run(scenario())
    assert actions == [
        ["start", "extend", "rollback"],
        ["start", "extend", "advance"],
        ["start", "extend", "rollback"],
    ]
    reasons = [event.reason for event in registry.history("iris", "canary")]
    assert reasons[1].startswith("extend: step 1/2 (50%) inconclusive at 10 requests: error rate")
    assert "judged again at 20 requests, rolled back if still undecided after 40" in reasons[1]
    assert reasons[2].startswith("rollback: step 1/2 (50%) inconclusive after 40 requests")
    assert "inconclusive after 10 requests (10 s)" in reasons[-1]
    path = rollout_folder(Project.load(root).workspace) / "iris.json"
    record = RolloutRecord.from_dict(json.loads(path.read_text()))
    assert RolloutSpec.model_validate(record.spec).max_step_duration_s == 5.0
    assert record.decisions[1].numbers["checks"]["error_rate"]["outcome"] == "inconclusive"


def advance_to_last_step(root: Path, candidate: int) -> None:
    """Deploy ``candidate`` in one server (in process) and pass its 50 % step on data."""
    app = build_app(Project.load(root), registry=registry_of(root), token=TOKEN)
    rollouts = app.rollouts
    assert rollouts is not None

    async def scenario() -> None:
        assert rollouts is not None
        try:
            rollout = await deploy_with_stable(rollouts, candidate)
            answer(rollout, 10)
            await rollouts.step(rollout)
            assert rollout.record.step_index == 1, rollout.record.decisions[-1].reason
        finally:
            await app.shutdown()

    asyncio.run(scenario())


def judge_after_restart(root: Path) -> Rollout:
    """Restart (build the app again), let the candidate answer a step, and judge it."""
    app = build_app(Project.load(root), registry=registry_of(root), token=TOKEN)
    rollouts = app.rollouts
    assert rollouts is not None
    rollout = rollouts.rollouts["iris"]

    async def scenario() -> None:
        assert rollouts is not None
        try:
            answer(rollout, 10)
            await rollouts.step(rollout)
        finally:
            await app.shutdown()

    asyncio.run(scenario())
    return rollout


def test_restart_at_the_last_step_keeps_the_stable_window(tmp_path: Path) -> None:
    root = train_iris(tmp_path, serving={"request_log": {"enabled": False}, "access_log": False})
    candidate = register(root, lambda: LogisticRegression(max_iter=500, C=0.9))
    advance_to_last_step(root, candidate)
    rollout = judge_after_restart(root)
    assert rollout.stable_stats.requests == 10_000  # as of the decision to advance
    assert rollout.state is RolloutState.PROMOTED, rollout.record.decisions[-1].reason
    window = rollout_folder(Project.load(root).workspace) / "windows" / "iris.json"
    assert not window.exists()  # settled with the rollout


@pytest.mark.parametrize("window", [None, "null", "[1, 2]"])
def test_restart_without_the_stable_window_does_not_pass_the_last_step(
    tmp_path: Path, window: str | None
) -> None:
    # None: no window file (a rollout saved before windows were); else one of the wrong shape.
    root = train_iris(tmp_path, serving={"request_log": {"enabled": False}, "access_log": False})
    candidate = register(root, lambda: LogisticRegression(max_iter=500, C=0.9))
    advance_to_last_step(root, candidate)
    path = rollout_folder(Project.load(root).workspace) / "windows" / "iris.json"
    if window is None:
        path.unlink()
    else:
        path.write_text(window)
    rollout = judge_after_restart(root)  # the 100 % step: no stable request since the restart
    assert rollout.state is RolloutState.CANARY and rollout.undecided is not None
    decision = rollout.record.decisions[-1]
    assert decision.action == "extend" and decision.weight == 100
    assert "error rate: no stable requests to compare with" in decision.reason


def test_load_failures_of_any_kind_are_validation_verdicts(tmp_path: Path) -> None:
    root = train_iris(tmp_path, serving={"request_log": {"enabled": False}, "access_log": False})
    candidate = register(root, lambda: LogisticRegression(max_iter=500, C=0.9))
    registry = registry_of(root)
    record = RolloutRecord("iris", 1, candidate, "canary", 0, {}, "2026-12-07T18:05:01.250+00:00")
    folder = rollout_folder(Project.load(root).workspace)
    folder.mkdir(parents=True)
    (folder / "iris.json").write_text(json.dumps(record.to_dict()))
    app = build_app(Project.load(root), registry=registry, token=TOKEN)
    rollouts = app.rollouts
    assert rollouts is not None and "iris" in rollouts.rollouts
    rollouts.rollouts.clear()

    def broken(ref: str) -> Any:
        raise RuntimeError(f"{ref}: unpickling stack underflow")  # a library's own error

    rollouts.load = broken
    assert rollouts.resume() == []  # another restart, after which the candidate cannot load
    settled = RolloutRecord.from_dict(json.loads((folder / "iris.json").read_text()))
    assert settled.state == "rolled_back"
    assert "RuntimeError: iris:2: unpickling stack underflow" in settled.decisions[-1].reason

    async def reload() -> None:
        try:
            await rollouts.reload_champion("iris")
        finally:
            await app.shutdown()

    with pytest.raises(infra_validation.InfraValidationFailed, match="RuntimeError"):
        asyncio.run(reload())


def test_management_routes_need_the_token(fleet: Fleet) -> None:
    with fleet.server.client() as client:
        assert client.get("/v2/management/rollout").status_code == 401
        answer = client.post("/v2/management/deploy", json={"model": "iris", "version": 2})
        assert answer.status_code == 401
        assert client.post("/v2/management/rollback", json={"model": "iris"}).status_code == 401
    arguments = ["rollout", "--project", str(fleet.root), "--url", fleet.server.url]
    refused = CliRunner().invoke(
        rollout_cli, [*arguments, "--format", "json"], env={"READYML_SERVE_TOKEN": None}
    )
    assert refused.exit_code == 2 and "401" in refused.output
    shown = CliRunner().invoke(
        rollout_cli, [*arguments, "--format", "json"], env={"READYML_SERVE_TOKEN": TOKEN}
    )
    assert shown.exit_code == 0 and "rollouts" in json.loads(shown.output)


def test_bad_management_bodies_are_400s_naming_the_key(fleet: Fleet) -> None:
    with fleet.server.client() as client:
        answer = client.post(
            "/v2/management/deploy",
            json={"model": "iris", "version": 2, "rollout": {"steps": "x"}},
            headers=AUTH,
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"].startswith("rollout.steps: "), answer.text
        answer = client.post(
            "/v2/management/deploy",
            json={"model": "iris", "version": 2, "rollout": {"bogus": 1}},
            headers=AUTH,
        )
        assert answer.status_code == 400 and "unknown key 'bogus'" in answer.json()["error"]
        assert answer.json()["field"] == "rollout.bogus", answer.text
        assert "min_requests" in answer.json()["expected"]
        for override, key, found in (
            ({"steps": "x"}, "rollout.steps", "'x'"),
            ({"steps": []}, "rollout.steps", "[]"),
            ({"min_requests": 0}, "rollout.min_requests", "0"),
            ({"steps": [1, "a", 100]}, "rollout.steps[1]", "'a'"),
            ({"sticky_header": ""}, "rollout.sticky_header", "''"),
            ({"steps": [100]}, "rollout.steps", "[100.0]"),  # nothing left to compare with
        ):
            body = {"model": "iris", "version": 2, "rollout": override}
            answer = client.post("/v2/management/deploy", json=body, headers=AUTH)
            assert answer.status_code == 400, answer.text
            assert (answer.json()["field"], answer.json()["found"]) == (key, found), answer.text
        for mode in (5, None):
            body = {"model": "iris", "version": 2, "mode": mode}
            answer = client.post("/v2/management/deploy", json=body, headers=AUTH)
            assert answer.status_code == 400, answer.text
            assert (answer.json()["field"], answer.json()["found"]) == ("mode", json.dumps(mode))
        for name in ("../x", ".hidden", "iris@champion"):
            answer = client.post("/v2/management/rollback", json={"model": name}, headers=AUTH)
            assert answer.status_code == 400, answer.text
            assert "expected a bare model name" in answer.json()["error"]


def test_management_values_of_the_wrong_type_are_400s(fleet: Fleet) -> None:
    with fleet.server.client() as client:
        stable = served_version(client)
        for path, body, field in (
            ("/v2/repository/models/iris/unload", {"parameters": []}, "parameters"),
            ("/v2/repository/models/iris/load", {"parameters": 0}, "parameters"),
            ("/v2/repository/models/iris/load", {"parameters": {"version": "²"}}, None),
            ("/v2/management/deploy", {"model": "iris", "version": 2, "rollout": []}, "rollout"),
            ("/v2/management/rollback", {"model": "iris", "reason": 123}, "reason"),
        ):
            answer = client.post(path, json=body, headers=AUTH)
            assert answer.status_code == 400, (path, body, answer.text)
            expected = field or "parameters.version"
            assert answer.json()["field"] == expected, answer.text
        assert served_version(client) == stable


def test_vetoed_version_is_refused_in_every_mode(fleet: Fleet) -> None:
    vetoed = register(fleet.root, lambda: LogisticRegression(max_iter=500, C=0.7))
    registry_of(fleet.root).set_status("iris", vetoed, "vetoed")
    with fleet.server.client() as client:
        stable = served_version(client)
        for mode in ("canary", "shadow", "direct"):
            answer = deploy(client, vetoed, mode=mode)
            assert answer.status_code == 409, answer.text
            assert answer.json()["field"] == "version", answer.text
            assert answer.json()["found"] == f"version {vetoed} vetoed", answer.text
            assert rollout_state(client).get("candidate_version") != vetoed
            assert served_version(client) == stable


def test_repository_load_passes_what_a_deploy_checks(fleet: Fleet) -> None:
    vetoed = register(fleet.root, lambda: LogisticRegression(max_iter=500, C=0.6))
    registry_of(fleet.root).set_status("iris", vetoed, "vetoed")
    with fleet.server.client() as client:
        stable = served_version(client)
        for version, status in ((vetoed, 409), (fleet.nan, 422)):
            body = {"parameters": {"version": version}}
            answer = client.post("/v2/repository/models/iris/load", json=body, headers=AUTH)
            assert answer.status_code == status, answer.text
            assert served_version(client) == stable
        assert answer.json()["error"].startswith(f"iris:{fleet.nan}: infra validation failed")


# A rollout that stays at its first step for the length of a test.
LONG_STEPS = {**FAST_STEPS, "step_duration_s": 600.0, "min_requests": 10_000}


def test_a_running_rollout_alone_changes_its_model_s_version(fleet: Fleet) -> None:
    with fleet.server.client() as client:
        stable = served_version(client)
        answer = deploy(client, int(stable))
        assert answer.status_code == 409 and "serves already" in answer.json()["error"]
        answer = deploy(client, fleet.shadow, mode="shadow", rollout=LONG_STEPS)
        assert answer.status_code == 200, answer.text
        try:
            for action in ("load", "unload"):
                answer = client.post(f"/v2/repository/models/iris/{action}", json={}, headers=AUTH)
                assert answer.status_code == 409, answer.text
                assert "rollout of 'iris' running" in answer.json()["error"]
            assert deploy(client, fleet.healthy).status_code == 409
            assert served_version(client) == stable
        finally:
            rolled = client.post("/v2/management/rollback", json={"model": "iris"}, headers=AUTH)
            assert rolled.status_code == 200, rolled.text


def test_concurrent_deploys_start_one_rollout(fleet: Fleet) -> None:
    with fleet.server.client() as client:
        version = next(v for v in (fleet.healthy, fleet.shadow) if str(v) != served_version(client))
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        answers = list(
            pool.map(
                lambda _: httpx.post(
                    f"{fleet.server.url}/v2/management/deploy",
                    json={"model": "iris", "version": version, "rollout": LONG_STEPS},
                    headers=AUTH,
                    timeout=30,
                ),
                range(3),
            )
        )
    with fleet.server.client() as client:
        rolled = client.post("/v2/management/rollback", json={"model": "iris"}, headers=AUTH)
        assert rolled.status_code == 200, rolled.text
    assert sorted(answer.status_code for answer in answers) == [200, 409, 409]


def test_candidate_failing_infra_validation_never_receives_traffic(fleet: Fleet) -> None:
    with fleet.server.client() as client:
        stable = served_version(client)
        with Traffic(fleet.server) as traffic:
            answer = deploy(client, fleet.nan)
            time.sleep(0.3)
        assert answer.status_code == 422, answer.text
        assert "NaN" in answer.json()["error"]
        assert rollout_state(client).get("candidate_version") != fleet.nan
    assert traffic.answers and set(traffic.answers) == {(200, stable)}
    evidence = registry_of(fleet.root).list_evidence("iris", test_id="infra-6")
    failed = [e for e in evidence if e.version == fleet.nan]
    assert failed and not failed[0].passed and "NaN" in failed[0].details["reason"]
    assert failed[0].artifact is not None  # the validation's report, kept in the store
    stored = json.loads(
        Path(registry_of(fleet.root).artifacts.url_for(failed[0].artifact)).read_text()
    )
    assert "NaN" in stored["reason"]


def test_shadow_answers_with_stable_and_records_the_candidate(fleet: Fleet) -> None:
    with fleet.server.client() as client:
        stable = served_version(client)
        spec = {**FAST_STEPS, "shadow_s": 60.0}
        assert deploy(client, fleet.shadow, mode="shadow", rollout=spec).status_code == 200
        with Traffic(fleet.server) as traffic:
            time.sleep(0.8)
        state = rollout_state(client)
        aborted = client.post(
            "/v2/management/rollback", json={"model": "iris", "reason": "test over"}, headers=AUTH
        )
    assert state["state"] == "shadow"
    assert traffic.answers and set(traffic.answers) == {(200, stable)}
    mirrored = state["window"]["candidate"]["requests"]
    assert mirrored >= len(traffic.answers) - 2 > 0
    assert aborted.status_code == 200 and aborted.json()["state"] == "rolled_back"


def test_canary_of_shifted_candidate_is_rolled_back_with_the_reason(fleet: Fleet) -> None:
    registry = registry_of(fleet.root)
    champion = registry.get("iris@champion").version
    with fleet.server.client() as client, Traffic(fleet.server) as traffic:
        assert deploy(client, fleet.shifted).status_code == 200
        final = wait_for(client, fleet.shifted, {"rolled_back"})
    assert {status for status, _ in traffic.answers} == {200}
    decision = final["decisions"][-1]
    assert decision["action"] == "rollback" and "divergence" in decision["reason"]
    assert registry.get("iris@champion").version == champion
    eventually(
        lambda: any(
            "rollback" in e.reason and "Jensen-Shannon" in e.reason
            for e in registry.history("iris", "canary")
        )
    )
    eventually(lambda: bool(registry.list_evidence("iris", test_id="infra-7")))
    executed = registry.list_evidence("iris", test_id="infra-7")
    assert executed[-1].passed and executed[-1].details["seconds"] < 1.0
    # The evidence links to the rollout's decision log, the rollback decision included.
    assert executed[-1].artifact and executed[-1].artifact.startswith("rollouts/iris/")
    log = json.loads(Path(registry.artifacts.url_for(executed[-1].artifact)).read_text())
    assert log["candidate_version"] == fleet.shifted
    assert log["decisions"][-1]["action"] == "rollback"


def test_canary_returning_nan_on_live_traffic_is_rolled_back(fleet: Fleet) -> None:
    registry = registry_of(fleet.root)
    champion = registry.get("iris@champion").version
    with fleet.server.client() as client, Traffic(fleet.server) as traffic:
        assert deploy(client, fleet.overflowing).status_code == 200
        final = wait_for(client, fleet.overflowing, {"rolled_back"})
    assert {status for status, _ in traffic.answers} == {200}
    decision = final["decisions"][-1]
    assert decision["action"] == "rollback" and "NaN/inf outputs" in decision["reason"]
    assert decision["numbers"]["candidate"]["nonfinite_rate"] > 0
    assert registry.get("iris@champion").version == champion


def test_slow_canary_is_rolled_back_on_latency(fleet: Fleet) -> None:
    spec = {**FAST_STEPS, "max_latency_ratio": 2.0, "latency_slack_ms": 10.0}
    spec["infra_latency_budget_ms"] = 5000.0
    with fleet.server.client() as client, Traffic(fleet.server) as traffic:
        assert deploy(client, fleet.slow, rollout=spec).status_code == 200
        final = wait_for(client, fleet.slow, {"rolled_back"})
    assert {status for status, _ in traffic.answers} == {200}
    decision = final["decisions"][-1]
    assert decision["action"] == "rollback" and "latency p95" in decision["reason"]
    numbers = decision["numbers"]
    assert numbers["candidate"]["p95_ms"] > 2 * numbers["stable"]["p95_ms"] + 10


def test_healthy_candidate_is_promoted_through_every_step(fleet: Fleet) -> None:
    with fleet.server.client() as client, Traffic(fleet.server) as traffic:
        assert deploy(client, fleet.healthy).status_code == 200
        final = wait_for(client, fleet.healthy, {"promoted"})
        time.sleep(0.2)
    assert {status for status, _ in traffic.answers} == {200}
    assert traffic.answers[-1][1] == str(fleet.healthy)
    actions = [(d["action"], d["weight"]) for d in final["decisions"]]
    assert actions == [("start", 25), ("advance", 50), ("advance", 100), ("promote", 100)]
    registry = registry_of(fleet.root)
    assert registry.get("iris@champion").version == fleet.healthy
    promotion = registry.history("iris", "champion")[-1]
    assert promotion.who == "readyml-rollout" and "divergence 0.0" in promotion.reason
    eventually(
        lambda: any(
            e.passed and e.version == fleet.healthy
            for e in registry.list_evidence("iris", test_id="infra-6")
        )
    )


def test_rollback_command_is_instant_and_tells_the_server(fleet: Fleet) -> None:
    registry = registry_of(fleet.root)
    registry.promote("iris:1", who="tests", reason="start from 1")
    registry.promote(f"iris:{fleet.healthy}", who="tests", reason="to roll back")
    runner = CliRunner()
    with fleet.server.client() as client:
        if served_version(client) != str(fleet.healthy):  # earlier tests may have left it
            body = {"model": "iris", "version": fleet.healthy, "mode": "direct"}
            answer = client.post("/v2/management/deploy", json=body, headers=AUTH)
            assert answer.status_code == 200, answer.text
        before = served_version(client)
        arguments = ["rollback", "iris", "--project", str(fleet.root), "--url", fleet.server.url]
        arguments += ["--reason", "bad numbers", "--format", "json"]
        result = runner.invoke(rollout_cli, arguments, env={"READYML_SERVE_TOKEN": TOKEN})
        assert result.exit_code == 0, result.output
        after = served_version(client)
    report = json.loads(result.output)
    assert before == str(fleet.healthy) and after == "1"
    assert report["to_version"] == 1 and report["seconds"] < 1.0
    evidence = registry.list_evidence("iris", test_id="infra-7")
    assert evidence[-1].details["seconds"] == report["seconds"]
    assert evidence[-1].artifact and evidence[-1].artifact.startswith("rollbacks/iris/")
    kept = json.loads(Path(registry.artifacts.url_for(evidence[-1].artifact)).read_text())
    assert kept["to_version"] == 1 and kept["reason"] == "bad numbers"


def test_rollback_of_a_direct_deploy_tells_the_server_when_champion_never_moved(
    tmp_path: Path,
) -> None:
    root = train_iris(tmp_path, serving={"request_log": {"enabled": False}, "access_log": False})
    candidate = register(root, lambda: LogisticRegression(max_iter=500, C=0.9))
    with serve_process(root) as server, server.client() as client:
        body = {"model": "iris", "version": candidate, "mode": "direct"}
        assert client.post("/v2/management/deploy", json=body, headers=AUTH).status_code == 200
        assert served_version(client) == str(candidate)
        arguments = ["rollback", "iris", "--project", str(root), "--url", server.url]
        result = CliRunner().invoke(
            rollout_cli, [*arguments, "--format", "json"], env={"READYML_SERVE_TOKEN": TOKEN}
        )
        assert result.exit_code == 0, result.output
        assert served_version(client) == "1"
    report = json.loads(result.output)
    assert (report["from_version"], report["to_version"], report["registry"]) == (
        None,
        1,
        "unchanged",
    )
    assert registry_of(root).get("iris@champion").version == 1
    # Without a server there is nothing to undo: the registry's answer stands.
    alone = CliRunner().invoke(rollout_cli, ["rollback", "iris", "--project", str(root)])
    assert alone.exit_code == 2 and "nothing to roll back to" in alone.output


def test_rollback_of_a_direct_deploy_leaves_a_moved_champion_alone(tmp_path: Path) -> None:
    root = train_iris(tmp_path, serving={"request_log": {"enabled": False}, "access_log": False})
    candidate = register(root, lambda: LogisticRegression(max_iter=500, C=0.9))
    registry_of(root).promote(f"iris:{candidate}", who="tests", reason="champion moved once")
    with serve_process(root) as server, server.client() as client:
        body = {"model": "iris", "version": 1, "mode": "direct"}
        assert client.post("/v2/management/deploy", json=body, headers=AUTH).status_code == 200
        assert served_version(client) == "1"
        arguments = ["rollback", "iris", "--project", str(root), "--url", server.url]
        result = CliRunner().invoke(
            rollout_cli, [*arguments, "--format", "json"], env={"READYML_SERVE_TOKEN": TOKEN}
        )
        assert result.exit_code == 0, result.output
        assert served_version(client) == str(candidate)
    report = json.loads(result.output)
    assert (report["from_version"], report["to_version"], report["registry"]) == (
        None,
        candidate,
        "unchanged",
    )
    assert registry_of(root).get("iris@champion").version == candidate


def test_deploy_usage_errors_are_one_line_before_any_call(tmp_path: Path) -> None:
    root = train_iris(tmp_path, serving={"request_log": {"enabled": False}, "access_log": False})
    nowhere = ["--project", str(root), "--url", "http://127.0.0.1:9"]
    for arguments, expected in (
        (["deploy", "iris:2", *nowhere, "--format", "yaml"], "--format: expected"),
        (["rollout", *nowhere, "--format", "yaml"], "--format: expected"),
        (["deploy", "iris:x", *nowhere], "ref: expected NAME:VERSION"),
        (["deploy", "iris:2", "--project", str(root), "--url", "nowhere"], "url: expected"),
        (["deploy", "iris:2", *nowhere, "--canary", "five"], "--canary: expected percentages"),
        (["deploy", "iris:2", *nowhere, "--canary", "nan"], "--canary: expected percentages"),
        (["deploy", "iris:2", *nowhere, "--canary", "5,inf"], "--canary: expected percentages"),
        (["deploy", "iris:2", *nowhere, "--canary", "100"], "--canary: expected a first step"),
        (["deploy", "iris:2", *nowhere, "--step-duration", "inf"], "--step-duration: expected"),
        (["deploy", "iris:2", *nowhere, "--shadow", "nan"], "--shadow: expected"),
        (
            ["deploy", "iris:2", *nowhere, "--mode", "direct", "--canary", "5"],
            "--canary: expected --mode canary or shadow, found --mode direct",
        ),
        (["deploy", "iris:2", *nowhere, "--mode", "sideways"], "--mode: expected canary"),
        (["deploy", "iris@nope", *nowhere], "expected an existing alias"),
    ):
        result = CliRunner().invoke(rollout_cli, arguments, env={"READYML_SERVE_TOKEN": TOKEN})
        assert result.exit_code == 2, result.output
        assert expected in result.output and len(result.output.strip().splitlines()) == 1


def test_deploy_cli_rolls_an_alias_out_from_the_canary_step_it_names(tmp_path: Path) -> None:
    root = train_iris(tmp_path, serving={"request_log": {"enabled": False}, "access_log": False})
    candidate = register(root, lambda: LogisticRegression(max_iter=500, C=0.9))
    registry_of(root).set_alias("iris", "challenger", candidate, who="tests", reason="to try")
    with serve_process(root) as server, server.client() as client:
        arguments = ["deploy", "iris@challenger", "--project", str(root), "--url", server.url]
        result = CliRunner().invoke(
            rollout_cli,
            [*arguments, "--canary", "5", "--step-duration", "600", "--format", "json"],
            env={"READYML_SERVE_TOKEN": TOKEN},
        )
        assert result.exit_code == 0, result.output
        status = client.get("/v2/management/rollout", headers=AUTH).json()["rollouts"][0]
    assert status["candidate_version"] == candidate and status["state"] == "canary"
    assert status["spec"]["steps"] == [5.0, 25.0, 50.0, 100.0]
    assert status["spec"]["step_duration_s"] == 600.0


def test_rollout_state_survives_a_restart(tmp_path: Path) -> None:
    root = train_iris(tmp_path, serving={"request_log": {"enabled": False}, "access_log": False})
    candidate = register(root, lambda: LogisticRegression(max_iter=500, C=0.9))
    slow = {**FAST_STEPS, "step_duration_s": 600.0}
    with serve_process(root) as server, server.client() as client:
        assert deploy(client, candidate, rollout=slow).status_code == 200
        refused = deploy(client, candidate)
        assert refused.status_code == 409, refused.text
        assert refused.json()["found"] == f"version {candidate} in canary", refused.text
    with serve_process(root) as server, server.client() as client:
        state = rollout_state(client)
        assert state["state"] == "canary" and state["candidate_version"] == candidate
        assert state["weight"] == 25
        with Traffic(server) as traffic:
            time.sleep(0.5)
        assert {version for _, version in traffic.answers} == {"1", str(candidate)}
        answer = client.post("/v2/management/promote", json={"model": "iris"}, headers=AUTH)
        assert answer.status_code == 200 and answer.json()["state"] == "promoted"
        again = client.post("/v2/management/promote", json={"model": "iris"}, headers=AUTH)
        assert again.status_code == 409 and again.json()["found"] == "none", again.text


def corrupt(root: Path, version: int) -> None:
    """Overwrite the files of ``version`` that no other version shares."""
    registry = registry_of(root)
    others = {
        a.key for v in registry.list_versions("iris") if v.version != version for a in v.artifacts
    }
    for artifact in registry.get(f"iris:{version}").artifacts:
        if artifact.key not in others:
            (Path(registry.artifacts.root) / artifact.key).write_bytes(b"corrupt")


def test_restart_with_a_candidate_that_no_longer_loads_serves_stable(tmp_path: Path) -> None:
    root = train_iris(tmp_path, serving={"request_log": {"enabled": False}, "access_log": False})
    candidate = register(root, lambda: LogisticRegression(max_iter=500, C=0.9))
    held = {**FAST_STEPS, "step_duration_s": 600.0}
    with serve_process(root) as server, server.client() as client:
        assert deploy(client, candidate, rollout=held).status_code == 200
    corrupt(root, candidate)
    folder = rollout_folder(Project.load(root).workspace)
    logs = []
    for _ in range(2):  # the rollout is settled by the first restart, not retried
        with serve_process(root) as server, server.client() as client:
            with Traffic(server) as traffic:
                time.sleep(0.3)
            state = rollout_state(client)
        logs.append(server.log.read_text())
        assert traffic.answers and set(traffic.answers) == {(200, "1")}
        assert state["state"] == "rolled_back" and state["candidate_version"] == candidate
    decisions = [d for d in state["decisions"] if d["action"] == "rollback"]
    assert len(decisions) == 1 and decisions[0]["weight"] == 0
    assert decisions[0]["reason"].startswith(f"resume after a restart: iris:{candidate} cannot")
    assert "infra validation failed: load failed" in decisions[0]["reason"]
    assert ["rolled back: resume after a restart" in log for log in logs] == [True, False]
    assert not (folder / "windows" / "iris.json").exists()
    registry = registry_of(root)
    assert registry.history("iris", "canary")[-1].reason.startswith("rollback: resume after")
    failed = registry.list_evidence("iris", test_id="infra-6")
    assert any(e.version == candidate and not e.passed for e in failed)


def test_rollback_to_a_corrupt_champion_is_a_422_and_the_version_serving_stays(
    tmp_path: Path,
) -> None:
    root = train_iris(tmp_path, serving={"request_log": {"enabled": False}, "access_log": False})
    candidate = register(root, lambda: LogisticRegression(max_iter=500, C=0.9))
    with serve_process(root) as server, server.client() as client:
        body = {"model": "iris", "version": candidate, "mode": "direct"}
        assert client.post("/v2/management/deploy", json=body, headers=AUTH).status_code == 200
        corrupt(root, 1)  # the champion
        answer = client.post(
            "/v2/management/rollback", json={"model": "iris", "reload": True}, headers=AUTH
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"].startswith("iris@champion: infra validation failed: load")
        assert served_version(client) == str(candidate)
    failed = registry_of(root).list_evidence("iris", test_id="infra-6")
    assert any(e.version == 1 and not e.passed for e in failed)


def test_canary_demo_promotes_a_healthy_second_version(tmp_path: Path) -> None:
    root = train_iris(tmp_path, serving={"request_log": {"enabled": False}, "access_log": False})
    candidate = register(root, lambda: LogisticRegression(max_iter=500, C=0.9))
    summary = canary_demo(Project.load(root), registry_of(root))
    assert summary["state"] == "promoted" and summary["candidate_version"] == candidate
    assert [d["action"] for d in summary["decisions"]][-1] == "promote"
