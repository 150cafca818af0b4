"""Infra 5: observe the step-by-step computation of inference on a single example.

:func:`explain_prediction` loads a registered version and walks one input row through it,
showing what each stage computed:

1. the raw input, as the caller gave it;
2. for scikit-learn pipelines, the output of every transformer (one-hot encoding, scaling...)
   under the feature names the transformer reports; for PyTorch, the encoded input vector;
3. how the final model turned those features into the output:
   * linear models: ``coef × value`` per feature plus the intercept, which add up to the
     decision function of the predicted class;
   * decision trees and random/extra forests: per-feature contributions along each tree's
     decision path (``sklearn``'s ``decision_path``; the value at each node minus the value
     at its parent, averaged over trees), which add up to the predicted probability or value;
   * PyTorch: the output of every layer;
4. the prediction, and whether the trace reproduces ``predict()`` exactly.

The last check is what makes the trace trustworthy, and is the evidence recorded for
``infra-5``: a trace that does not reproduce the model's own answer fails.
"""

from __future__ import annotations

import itertools
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from readyml.errors import ConfigError
from readyml.flavors import ModelAdapter, load_model
from readyml.predict.inputs import InvalidInput, features_from
from readyml.registry import Registry
from readyml.types import JSON, Evidence

# How close a recomputed output must be to the model's own, absolute.
TOLERANCE = 1e-6
# The model's own value of what the contributions add up to, shown under their sum.
OWN_KEY = "model's own"
# Decision-path nodes shown for the first tree of an ensemble.
PATH_NODES_SHOWN = 12


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return str(value)


# Flavors whose computation is traced step by step; another is traced through the version
# it was made from (an ONNX export's ``base``), or not at all.
TRACED_FLAVORS = ("sklearn", "torch")
UNTRACEABLE = "step-by-step tracing is not available for"


@dataclass
class ExplainStep:
    """One stage of the computation and the values it produced."""

    name: str
    kind: str
    values: dict[str, Any]
    note: str = ""

    def rows(self, limit: int = 25) -> list[tuple[str, str]]:
        """``(key, value)`` lines for a terminal, at most ``limit`` (then a count)."""
        items = list(self.values.items())
        lines = [(str(k), f"{v:.6g}" if isinstance(v, float) else str(v)) for k, v in items]
        shown = lines[:limit]
        if len(lines) > limit:
            shown.append(("…", f"{len(lines) - limit} more"))
        if self.note:
            shown.append(("note", self.note))
        return shown

    def to_dict(self) -> JSON:
        """JSON form."""
        return {
            "name": self.name,
            "kind": self.kind,
            "values": {k: _plain(v) for k, v in self.values.items()},
            "note": self.note,
        }


@dataclass
class Explanation:
    """The step-by-step trace of one prediction."""

    model: str
    flavor: str
    example: JSON
    steps: list[ExplainStep] = field(default_factory=list)
    prediction: Any = None
    consistent: bool = False

    @property
    def problem(self) -> str:
        """One line: the prediction the trace should reproduce and what it computed instead;
        ``""`` when consistent."""
        if self.consistent:
            return ""
        notes = [s.note for s in self.steps if s.kind == "model" and s.note]
        for note in notes:
            if note.startswith(UNTRACEABLE):
                return (
                    f"trace of {self.model}: expected a step-by-step trace of the prediction, "
                    f"found none ({note})"
                )
            if "DIFFERENT" in note:
                return (
                    f"trace of {self.model}: expected the prediction it was traced by, found {note}"
                )
        prediction = _plain(self.prediction)
        shown = f"{prediction:.6g}" if isinstance(prediction, float) else repr(prediction)
        output = self.steps[-1].values if self.steps else {}
        probability = output.get(f"P({prediction})")
        if isinstance(probability, float):
            shown += f" (P={probability:.6g})"
        summed = next((s for s in self.steps if OWN_KEY in s.values), None)
        found = (
            f"contributions summing to {summed.values['= sum']:.6g} where the model's own "
            f"value is {summed.values[OWN_KEY]:.6g} ({summed.note})"
            if summed is not None
            else "a different output from the traced steps"
        )
        return (
            f"trace of {self.model}: expected the step-by-step computation to reproduce "
            f"the prediction {shown}, found {found}"
        )

    def to_dict(self) -> JSON:
        """JSON form."""
        return {
            "model": self.model,
            "flavor": self.flavor,
            "example": self.example,
            "steps": [s.to_dict() for s in self.steps],
            "prediction": _plain(self.prediction),
            "consistent": self.consistent,
        }


def _named(names: list[str], row: np.ndarray) -> dict[str, float]:
    return {name: float(value) for name, value in zip(names, row, strict=True)}


def _feature_names(step: Any, n_columns: int, previous: list[str]) -> list[str]:
    getter = getattr(step, "get_feature_names_out", None)
    if callable(getter):
        try:
            return [str(n) for n in getter()]
        except (AttributeError, ValueError, TypeError):
            pass
    if len(previous) == n_columns:
        return previous
    return [f"x{i}" for i in range(n_columns)]


def _dense(matrix: Any) -> np.ndarray:
    to_dense = getattr(matrix, "toarray", None)
    dense = to_dense() if callable(to_dense) else matrix
    return np.asarray(dense, dtype=np.float64)


def _class_index(estimator: Any, label: Any) -> int | None:
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        return None
    matches = np.flatnonzero(np.asarray(classes) == label)
    return int(matches[0]) if len(matches) else None


def _linear(
    estimator: Any, names: list[str], x: np.ndarray, label: Any
) -> tuple[ExplainStep, bool]:
    coef = np.atleast_2d(np.asarray(estimator.coef_, dtype=np.float64))
    intercept = np.atleast_1d(np.asarray(estimator.intercept_, dtype=np.float64))
    index = _class_index(estimator, label)
    row, target = 0, "output"
    if coef.shape[0] > 1 and index is not None:
        row, target = index, f"decision function of class {label!r}"
    elif index is not None:
        target = f"decision function (positive class {estimator.classes_[-1]!r})"
    contributions = coef[row] * x
    values: dict[str, Any] = {"intercept": float(intercept[min(row, len(intercept) - 1)])}
    order = np.argsort(-np.abs(contributions))
    values.update({names[i]: float(contributions[i]) for i in order})
    total = float(values["intercept"] + contributions.sum())
    decision = getattr(estimator, "decision_function", None) or estimator.predict
    expected = np.asarray(decision(x.reshape(1, -1)), dtype=np.float64).reshape(-1)
    own = float(expected[row] if expected.size > 1 else expected[0])
    values["= sum"] = total
    values[OWN_KEY] = own
    ok = abs(total - own) <= TOLERANCE * max(1.0, abs(own))
    return ExplainStep("contributions: coef × value", "contributions", values, target), ok


def _tree_values(tree: Any, classification: bool) -> np.ndarray:
    values = np.asarray(tree.tree_.value[:, 0, :], dtype=np.float64)
    if classification:
        sums = values.sum(axis=1, keepdims=True)
        values = values / np.where(sums == 0, 1.0, sums)
    return values


def _trees(
    estimator: Any, names: list[str], x: np.ndarray, label: Any
) -> tuple[ExplainStep, ExplainStep, bool]:
    trees = list(getattr(estimator, "estimators_", [estimator]))
    index = _class_index(estimator, label)
    classification = index is not None
    column = index if index is not None else 0
    bias = 0.0
    contributions = np.zeros(len(names))
    first_path: dict[str, Any] = {}
    for number, tree in enumerate(trees):
        values = _tree_values(tree, classification)[:, column]
        path = sorted(int(n) for n in tree.decision_path(x.reshape(1, -1)).indices)
        bias += values[path[0]]
        for parent, child in itertools.pairwise(path):
            feature = int(tree.tree_.feature[parent])
            contributions[feature] += values[child] - values[parent]
            if number == 0 and len(first_path) < PATH_NODES_SHOWN:
                threshold = float(tree.tree_.threshold[parent])
                side = "<=" if x[feature] <= threshold else ">"
                first_path[f"node {parent}"] = (
                    f"{names[feature]} = {x[feature]:.6g} {side} {threshold:.6g} → node {child}"
                )
    bias /= len(trees)
    contributions /= len(trees)
    values_out: dict[str, Any] = {"bias (mean of root values)": float(bias)}
    order = np.argsort(-np.abs(contributions))
    values_out.update({names[i]: float(contributions[i]) for i in order if contributions[i] != 0})
    total = float(bias + contributions.sum())
    values_out["= sum"] = total
    if classification:
        own = float(np.asarray(estimator.predict_proba(x.reshape(1, -1)))[0, column])
        target = f"probability of class {label!r}"
    else:
        own = float(np.asarray(estimator.predict(x.reshape(1, -1))).reshape(-1)[0])
        target = "predicted value"
    values_out[OWN_KEY] = own
    ok = abs(total - own) <= TOLERANCE * max(1.0, abs(own))
    contributions_step = ExplainStep(
        "contributions: decision paths",
        "contributions",
        values_out,
        f"{target}; {len(trees)} tree(s)",
    )
    path_step = ExplainStep("decision path of tree 0", "path", first_path)
    return path_step, contributions_step, ok


def _sklearn_steps(adapter: Any, frame: pd.DataFrame, label: Any) -> tuple[list[ExplainStep], bool]:
    model = adapter.model_
    stages = list(getattr(model, "steps", [("model", model)]))
    *transformers, (last_name, estimator) = stages
    data: Any = frame
    names = [str(c) for c in frame.columns]
    steps: list[ExplainStep] = []
    for stage_name, transformer in transformers:
        data = transformer.transform(data)
        matrix = _dense(data)
        names = _feature_names(transformer, matrix.shape[1], names)
        steps.append(
            ExplainStep(
                f"{stage_name}: {type(transformer).__name__}", "transform", _named(names, matrix[0])
            )
        )
    x = _dense(data)[0] if transformers else _dense(frame.to_numpy(dtype=np.float64))[0]
    kind = type(estimator).__name__
    if hasattr(estimator, "coef_") and hasattr(estimator, "intercept_"):
        step, ok = _linear(estimator, names, x, label)
        steps.append(step)
        return steps, ok
    ensemble = getattr(estimator, "estimators_", None)
    forest = isinstance(ensemble, list) and all(hasattr(t, "tree_") for t in ensemble)
    if hasattr(estimator, "tree_") or forest:
        path_step, contributions_step, ok = _trees(estimator, names, x, label)
        steps.extend([path_step, contributions_step])
        return steps, ok
    steps.append(
        ExplainStep(
            f"{last_name}: {kind}",
            "model",
            {},
            f"per-feature contributions are not available for {kind}",
        )
    )
    return steps, True


def _torch_steps(adapter: Any, frame: pd.DataFrame) -> tuple[list[ExplainStep], bool]:
    import torch

    encoder = getattr(adapter, "encoder_", None)
    if encoder is None:
        raise ConfigError(
            "explain: this torch model was trained on arrays; give a frame-trained model"
        )
    inputs = np.asarray(encoder.transform(frame), dtype=np.float32)
    names = [
        *(f"{c}={v}" for c in encoder.categorical_ for v in encoder.categories_[c]),
        *encoder.numeric_,
    ]
    steps = [ExplainStep("encode", "transform", _named(names, inputs[0]))]
    module = adapter.module_
    outputs: list[tuple[str, np.ndarray]] = []
    hooks = []
    for layer_name, layer in module.named_modules():
        if layer_name and not list(layer.children()):

            def hook(_m: Any, _i: Any, out: Any, layer_name: str = layer_name) -> None:
                outputs.append((layer_name, out.detach().numpy().reshape(-1)))

            hooks.append(layer.register_forward_hook(hook))
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            final = module(torch.from_numpy(inputs)).numpy()
    finally:
        module.train(was_training)
        for handle in hooks:
            handle.remove()
    for layer_name, values in outputs:
        layer = dict(module.named_modules())[layer_name]
        steps.append(
            ExplainStep(
                f"layer {layer_name}: {type(layer).__name__}",
                "layer",
                {f"[{i}]": float(v) for i, v in enumerate(values)},
            )
        )
    ok = bool(outputs) and np.allclose(outputs[-1][1], final.reshape(-1), atol=TOLERANCE)
    return steps, ok


def explain_model(
    adapter: ModelAdapter,
    example: JSON,
    *,
    through: ModelAdapter | None = None,
    through_ref: str = "",
) -> tuple[list[ExplainStep], Any, bool]:
    """Trace one example through a loaded model: steps, prediction, whether they agree.

    A model no trace reaches (an ONNX export) is traced ``through`` the version it was made
    from (``through_ref``), and agrees only when both predict the same; with nothing to trace
    through, there is no trace and it does not agree.
    """
    frame = pd.DataFrame([example])
    prediction = np.asarray(adapter.predict(frame))[0]
    steps = [ExplainStep("input", "input", dict(example))]
    traced = through if through is not None else adapter
    traced_prediction = np.asarray(traced.predict(frame))[0] if through is not None else prediction
    if through is not None:
        agree = _plain(traced_prediction) == _plain(prediction)
        steps.append(
            ExplainStep(
                "model",
                "model",
                {"prediction": _plain(prediction), f"{through_ref}'s": _plain(traced_prediction)},
                f"{adapter.flavor} export of {through_ref}, traced through it: "
                + ("the same prediction" if agree else "a DIFFERENT prediction"),
            )
        )
    if traced.flavor == "sklearn":
        middle, ok = _sklearn_steps(traced, frame, traced_prediction)
    elif traced.flavor == "torch":
        middle, ok = _torch_steps(traced, frame)
    else:
        note = f"{UNTRACEABLE} {traced.flavor}"
        middle, ok = [ExplainStep("model", "model", {}, note)], False
    if through is not None:
        ok = ok and agree
    steps.extend(middle)
    output: dict[str, Any] = {"prediction": _plain(prediction)}
    if adapter.task == "classification" and adapter.has_proba:
        proba = np.asarray(adapter.predict_proba(frame))[0]
        output.update({f"P({c})": float(p) for c, p in zip(adapter.classes_, proba, strict=True)})
    steps.append(ExplainStep("prediction", "output", output))
    return steps, prediction, ok


def _misfit(signature: JSON, row: JSON, error: Exception) -> str:
    """Why the model could not take ``row``: the first value its signature rejects."""
    for feature in features_from(signature, None):
        try:
            feature.check_values([row[feature.name]])
        except InvalidInput as exc:
            return str(exc.args[0]).removesuffix(" (row 0)")
        except (KeyError, ValueError, TypeError):
            continue
    return f"expected values the model accepts, found an example it cannot take ({error})"


def explain_prediction(
    registry: Registry,
    ref: str,
    example: JSON | None = None,
    *,
    trusted_types: Sequence[str] = (),
) -> Explanation:
    """Load a registered version and trace one example (default: its stored input example).

    ``trusted_types`` are the project's ``model.trusted_types``.

    Raises:
        RegistryError: The reference names no version.
        ConfigError: No example was given and the version stores none, or the example is
            missing a column the model needs.
    """
    version = registry.get(ref)
    if example is None:
        if not version.input_example:
            raise ConfigError(f"explain {ref}: give --example; the version stores no input example")
        example = dict(version.input_example[0])
    needed = [c["name"] for c in version.signature.get("inputs", [])]
    missing = [name for name in needed if name not in example]
    if missing:
        raise ConfigError(
            f"explain {ref}: the example lacks column(s) {missing}; expected keys {needed}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        adapter = load_model(
            registry.download(version, Path(tmp) / "model"), trusted_types=trusted_types
        )
    through, through_ref = None, ""
    base = version.lineage.get("base")
    if adapter.flavor not in TRACED_FLAVORS and isinstance(base, str):
        through_ref = base
        with tempfile.TemporaryDirectory() as tmp:
            parent = registry.get(base)
            through = load_model(
                registry.download(parent, Path(tmp) / "model"), trusted_types=trusted_types
            )
    row = {k: example[k] for k in needed or example}
    try:
        # A value the model cannot take is reported in one line below, not also as numpy's
        # overflow warnings on stderr.
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            steps, prediction, ok = explain_model(
                adapter, row, through=through, through_ref=through_ref
            )
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"explain {ref}: {_misfit(version.signature, row, exc)}") from exc
    return Explanation(
        model=f"{version.name}:{version.version}",
        flavor=adapter.flavor,
        example=dict(example),
        steps=steps,
        prediction=prediction,
        consistent=ok,
    )


def record_explanation(
    registry: Registry, project: str, explanation: Explanation, *, automated: bool = True
) -> int:
    """Store infra-5 evidence: the trace was produced and reproduces the prediction.

    ``automated=False`` for a trace a person asked for (``readyml explain``): it shows the
    model can be debugged, not that something checks it again and again.
    """
    name, _, version = explanation.model.partition(":")
    return registry.add_evidence(
        Evidence(
            test_id="infra-5",
            passed=explanation.consistent,
            automated=automated,
            project=project,
            model_name=name,
            version=int(version) if version.isdigit() else None,
            details={
                "steps": [s.name for s in explanation.steps],
                "flavor": explanation.flavor,
                "prediction": _plain(explanation.prediction),
                "consistent": explanation.consistent,
                **({"reason": explanation.problem} if explanation.problem else {}),
            },
        )
    )
