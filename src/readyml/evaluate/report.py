"""The evaluation report: JSON for machines and one self-contained HTML page for people.

:func:`curves` computes what the plots need from predictions (confusion matrix, ROC and
precision-recall curves one-vs-rest, reliability bins); :func:`write_report` writes
``evaluation.json`` and ``evaluation.html``. The page is rendered from a Jinja2 template with
inline SVG plots (:mod:`readyml.evaluate.plots`) and inline CSS: it opens offline.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
import numpy as np
from sklearn import metrics as skm

from readyml.evaluate import plots
from readyml.evaluate.metrics import CALIBRATION_BINS, Array, clean

# Points kept per curve (evenly thinned), and classes drawn one-vs-rest.
CURVE_POINTS = 200
MAX_CURVE_CLASSES = 8
TEMPLATE = "report.html.j2"


def _thin(xs: Array, ys: Array) -> tuple[list[float], list[float]]:
    if len(xs) > CURVE_POINTS:
        keep = np.unique(np.linspace(0, len(xs) - 1, CURVE_POINTS).astype(int))
        xs, ys = xs[keep], ys[keep]
    return [float(x) for x in xs], [float(y) for y in ys]


def curves(
    task: str, y_true: Array, y_pred: Array, proba: Array | None, classes: Array | None
) -> dict[str, Any]:
    """Confusion matrix, ROC and PR curves (one-vs-rest), and calibration bins.

    Regression gets predicted-against-actual quantiles instead.
    """
    y, pred = np.asarray(y_true), np.asarray(y_pred)
    if task != "classification":
        order = np.argsort(y.astype(float))
        qs = np.linspace(0, len(y) - 1, min(len(y), 50)).astype(int)
        return {
            "actual_vs_predicted": {
                "actual": y.astype(float)[order][qs].tolist(),
                "predicted": pred.astype(float)[order][qs].tolist(),
            }
        }
    labels = classes if classes is not None else np.unique(np.concatenate([y, pred]))
    out: dict[str, Any] = {
        "labels": [str(c) for c in labels],
        "confusion": skm.confusion_matrix(y, pred, labels=labels).tolist(),
    }
    if proba is None or classes is None:
        return out
    positives = list(enumerate(classes))
    positives = positives[1:] if len(classes) == 2 else positives[:MAX_CURVE_CLASSES]
    roc, pr = [], []
    for k, cls in positives:
        truth = y == cls
        if not truth.any() or truth.all():
            continue
        fpr, tpr, _ = skm.roc_curve(truth, proba[:, k])
        precision, recall, _ = skm.precision_recall_curve(truth, proba[:, k])
        roc.append({"class": str(cls), "x": _thin(fpr, tpr)[0], "y": _thin(fpr, tpr)[1]})
        pr.append(
            {
                "class": str(cls),
                "x": _thin(recall[::-1], precision[::-1])[0],
                "y": _thin(recall[::-1], precision[::-1])[1],
            }
        )
    confidence = proba.max(axis=1)
    correct = (np.asarray(classes)[proba.argmax(axis=1)] == y).astype(float)
    bins = np.minimum((confidence * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    counts = np.bincount(bins, minlength=CALIBRATION_BINS)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(bins, weights=confidence, minlength=CALIBRATION_BINS) / counts
        acc = np.bincount(bins, weights=correct, minlength=CALIBRATION_BINS) / counts
    used = counts > 0
    out["roc"], out["pr"] = roc, pr
    out["calibration"] = {
        "confidence": conf[used].tolist(),
        "accuracy": acc[used].tolist(),
        "count": counts[used].tolist(),
    }
    return dict(clean(out))


def _plots(report: dict[str, Any]) -> dict[str, str]:
    evaluation = report["evaluation"]
    primary = evaluation["primary"]
    drawn = report.get("curves") or {}
    out: dict[str, str] = {}
    if "confusion" in drawn:
        out["confusion"] = plots.heatmap(
            drawn["confusion"],
            rows=drawn["labels"],
            columns=drawn["labels"],
            title="Confusion matrix (validation)",
        )
    if drawn.get("roc"):
        out["roc"] = plots.line_chart(
            [(c["class"], c["x"], c["y"]) for c in drawn["roc"]],
            title="ROC (one-vs-rest)",
            x_label="false positive rate",
            y_label="true positive rate",
            diagonal=True,
            unit_square=True,
        )
        out["pr"] = plots.line_chart(
            [(c["class"], c["x"], c["y"]) for c in drawn["pr"]],
            title="Precision-recall (one-vs-rest)",
            x_label="recall",
            y_label="precision",
            unit_square=True,
        )
    if drawn.get("calibration"):
        cal = drawn["calibration"]
        out["calibration"] = plots.line_chart(
            [("model", cal["confidence"], cal["accuracy"])],
            title="Calibration (top label)",
            x_label="confidence",
            y_label="accuracy",
            diagonal=True,
            unit_square=True,
        )
    if "actual_vs_predicted" in drawn:
        avp = drawn["actual_vs_predicted"]
        out["actual_vs_predicted"] = plots.line_chart(
            [
                ("predicted", avp["actual"], avp["predicted"]),
                ("actual", avp["actual"], avp["actual"]),
            ],
            title="Predicted against actual (quantiles)",
            x_label="actual",
            y_label="value",
        )
    slices = [s for s in evaluation.get("slices") or [] if s.get("metrics")]
    if slices:
        out["slices"] = plots.bar_chart(
            [f"{s['name']} (n={s['size']})" for s in slices],
            [s["metrics"].get(primary) for s in slices],
            title=f"{primary} by slice",
            highlight=[not s["judged"] for s in slices],
            value_label=f"{primary} (pale: too small to judge)",
        )
    importance = (evaluation.get("importance") or {}).get("features") or {}
    if importance:
        names = sorted(importance, key=lambda n: -(importance[n].get("mean") or 0.0))
        out["importance"] = plots.bar_chart(
            names,
            [importance[n].get("mean") for n in names],
            errors=[importance[n].get("std") or 0.0 for n in names],
            highlight=[importance[n].get("verdict") != "helps" for n in names],
            title="Permutation importance",
            value_label=f"loss of {primary} when shuffled",
        )
    baselines = evaluation.get("baselines") or {}
    names = [n for n in ("dummy", "linear") if n in baselines]
    out["baselines"] = plots.bar_chart(
        ["candidate", *names],
        [
            (evaluation.get("valid") or {}).get(primary),
            *[baselines[n]["metrics"].get(primary) for n in names],
        ],
        title=f"{primary}: candidate against baselines",
        value_label=primary,
    )
    staleness = evaluation.get("staleness") or {}
    if staleness.get("points"):
        pts = staleness["points"]
        out["staleness"] = plots.line_chart(
            [(primary, [p["age_days"] for p in pts], [p["metric"] for p in pts])],
            title="Quality against model age",
            x_label="model age (days)",
            y_label=staleness.get("metric", primary),
        )
    return out


def render_html(report: dict[str, Any]) -> str:
    """The report as one HTML page."""
    source = resources.files("readyml.evaluate").joinpath("templates", TEMPLATE).read_text("utf-8")
    env = jinja2.Environment(autoescape=True)
    env.filters["num"] = lambda v, d=4: (
        "–" if v is None else (f"{v:.{d}f}" if isinstance(v, float) else str(v))
    )
    template = env.from_string(source)
    svgs = {k: markupsafe.Markup(v) for k, v in _plots(report).items()}
    return template.render(
        report=report, ev=report["evaluation"], gate=report.get("gate") or {}, plots=svgs
    )


def write_report(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``evaluation.json`` and ``evaluation.html`` into ``out``; return both paths."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "evaluation.json", out / "evaluation.html"
    json_path.write_text(json.dumps(clean(report), indent=2, default=str), encoding="utf-8")
    html_path.write_text(render_html(report), encoding="utf-8")
    return json_path, html_path
