"""Monitor 7's slice bias: a change since validation beyond noise fires, a standing bias does not.

The world here has a minority slice (``region=north``, about 15% of rows) where the label
leans away from what the model predicts, so the model is biased there at validation already.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from readyml.monitor import CheckResult, QualityCheck

from .helpers import NOW, inputs_for, log_traffic

FEATURES = ["x1", "x2", "region"]
DTYPES = {"x1": "float64", "x2": "float64", "region": "string"}
NORTH = "region=north"


def world(n: int, seed: int, *, north_shift: float = 0.0) -> pd.DataFrame:
    """Rows of both regions; ``north_shift`` moves x1 in the north only (a real change)."""
    rng = np.random.default_rng(seed)
    region = rng.choice(["north", "south"], n, p=[0.15, 0.85])
    north = region == "north"
    x1 = rng.normal(0.0, 1.0, n) + np.where(north, north_shift, 0.0)
    x2 = rng.normal(0.0, 1.0, n)
    # The model's rule is x1 + x2 > 0; in the north the label needs more (about 20% 'a').
    y = np.where(x1 + x2 > np.where(north, 1.2, 0.0), "a", "b")
    # For the regressor: the north's values sit 1.0 higher than the model predicts.
    value = 2.0 * x1 + x2 + np.where(north, 1.0, 0.0) + rng.normal(0.0, 0.5, n)
    return pd.DataFrame({"x1": x1, "x2": x2, "region": region, "y": y, "value": value})


def classify(frame: pd.DataFrame) -> np.ndarray:
    """The classifier: 'a' when x1 + x2 > 0 (blind to the north's higher bar)."""
    return np.where(frame["x1"] + frame["x2"] > 0, "a", "b")


def regress(frame: pd.DataFrame) -> np.ndarray:
    """The regressor: 2·x1 + x2 (blind to the north's offset)."""
    return np.asarray(2.0 * frame["x1"] + frame["x2"], dtype=np.float64)


def served(frame: pd.DataFrame, prediction: np.ndarray) -> pd.DataFrame:
    """Log rows as the server writes them, over the hour before the last."""
    n = len(frame)
    step = timedelta(hours=1) / n
    return pd.DataFrame(
        {
            "request_id": [uuid.uuid4().hex for _ in range(n)],
            "ts": pd.DatetimeIndex([NOW - timedelta(hours=2) + step * i for i in range(n)]),
            "model": "m",
            "version": np.int64(1),
            "x1": frame["x1"].to_numpy(),
            "x2": frame["x2"].to_numpy(),
            "region": frame["region"].to_numpy(),
            "prediction": prediction,
            "latency_ms": 5.0,
            "status": np.int32(200),
        }
    )


def run_classifier(
    workspace: Path, traffic: pd.DataFrame, valid: pd.DataFrame, *, with_pred: bool = True
) -> CheckResult:
    log_traffic(workspace, served(traffic, classify(traffic)))
    inputs = inputs_for(
        workspace,
        features=FEATURES,
        dtypes=DTYPES,
        schema=None,
        valid=valid[["x1", "x2", "region", "y"]],
        valid_pred=classify(valid) if with_pred else None,
        valid_proba=None,
    )
    return QualityCheck().run(inputs)


def run_regressor(workspace: Path, traffic: pd.DataFrame, valid: pd.DataFrame) -> CheckResult:
    log_traffic(workspace, served(traffic, regress(traffic)))
    inputs = inputs_for(
        workspace,
        task="regression",
        label="value",
        classes=None,
        features=FEATURES,
        dtypes=DTYPES,
        schema=None,
        profile=None,
        metrics={},
        primary=None,
        valid=valid[["x1", "x2", "region", "value"]],
        valid_pred=regress(valid),
        valid_proba=None,
    )
    return QualityCheck().run(inputs)


def bias_keys(result: CheckResult) -> set[str]:
    return {f.key for f in result.findings if f.key.startswith("slice_bias:")}


@pytest.mark.parametrize("seed", range(5))
def test_standing_bias_of_a_minority_slice_on_normal_traffic_does_not_fire(
    workspace: Path, seed: int
) -> None:
    result = run_classifier(workspace, world(1000, seed=seed + 1), world(1000, seed=seed + 50))
    assert bias_keys(result) == set(), [f.message for f in result.findings]
    north = result.details["slice_bias"][NORTH]
    # The bias against the labels is there (the old comparison fired on it), and reported.
    assert north["bias"] > 0.15 and north["standing_bias"] > 0.15, north
    assert abs(north["change"]) < 0.15, north
    assert result.details["slice_bias_test"]["baseline"] == "validation predictions"


def test_a_real_shift_in_one_slice_fires_naming_it(workspace: Path) -> None:
    result = run_classifier(workspace, world(1000, seed=1, north_shift=1.0), world(1000, seed=50))
    assert bias_keys(result) == {f"slice_bias:{NORTH}"}
    (finding,) = [f for f in result.findings if f.key == f"slice_bias:{NORTH}"]
    assert finding.labels == {"slice": NORTH}
    assert "standing bias" in finding.message and "Holm over 2 slices" in finding.message
    north = result.details["slice_bias"][NORTH]
    assert north["change"] > 0.15 and north["p_adjusted"] < 0.01
    assert north["class"] == "a" and north["served_share"] > north["reference_share"]


def test_a_small_slice_with_a_noisy_gap_does_not_fire(workspace: Path) -> None:
    east = pd.DataFrame(
        {"x1": 0.0, "x2": 0.0, "region": "east", "y": "a", "value": 0.0}, index=range(40)
    )
    valid = pd.concat([world(1000, seed=50), east], ignore_index=True)
    valid_pred = classify(valid)
    valid_pred[-40:] = ["a", "b"] * 20  # half 'a' at validation
    traffic = pd.concat([world(1000, seed=1), east.iloc[:35]], ignore_index=True)
    log = served(traffic, classify(traffic))
    log.loc[log.index[-35:], "prediction"] = ["a"] * 25 + ["b"] * 10  # 71% 'a' now
    log_traffic(workspace, log)
    inputs = inputs_for(
        workspace,
        features=FEATURES,
        dtypes=DTYPES,
        schema=None,
        valid=valid[["x1", "x2", "region", "y"]],
        valid_pred=valid_pred,
        valid_proba=None,
    )
    result = QualityCheck().run(inputs)
    east_bias = result.details["slice_bias"]["region=east"]
    assert east_bias["rows"] == 35 and east_bias["reference_rows"] == 40
    assert east_bias["change"] > 0.15 and east_bias["p_value"] > 0.05, east_bias
    assert bias_keys(result) == set(), [f.message for f in result.findings]


def test_without_validation_predictions_it_falls_back_to_the_labels_and_says_so(
    workspace: Path,
) -> None:
    result = run_classifier(workspace, world(1000, seed=1), world(1000, seed=50), with_pred=False)
    test = result.details["slice_bias_test"]
    assert test["baseline"] == "validation labels" and "standing bias" in test["note"]
    north = result.details["slice_bias"][NORTH]
    assert north["standing_bias"] is None and north["change"] == north["bias"]
    # The labels stand in for the predictions, so the standing bias counts (as before).
    assert f"slice_bias:{NORTH}" in bias_keys(result)


@pytest.mark.parametrize("seed", range(3))
def test_regressor_standing_bias_is_quiet_and_a_shift_fires(tmp_path: Path, seed: int) -> None:
    quiet, shifted = tmp_path / "quiet", tmp_path / "shifted"
    quiet.mkdir()
    shifted.mkdir()
    valid = world(1000, seed=seed + 50)
    result = run_regressor(quiet, world(1000, seed=seed + 1), valid)
    assert bias_keys(result) == set(), [f.message for f in result.findings]
    north = result.details["slice_bias"][NORTH]
    assert north["standing_bias"] < -0.15 and north["bias"] < -0.15, north
    assert result.details["slice_bias_test"]["test"] == "Welch's t"

    result = run_regressor(shifted, world(1000, seed=seed + 1, north_shift=1.0), valid)
    assert bias_keys(result) == {f"slice_bias:{NORTH}"}
    assert result.details["slice_bias"][NORTH]["change"] > 0.15
