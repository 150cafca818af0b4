"""Knowledge distillation: train a small student on a teacher's soft targets.

The teacher is any classifier with probabilities (a gradient-boosting model, a random forest,
a CNN). Its probabilities on the training split are softened with a temperature ``T``
(``p ** (1/T)``, renormalised: the softmax of ``log p / T``) and mixed with the true labels:

* a **torch** student minimises ``w · T² · KL(teacher_T ‖ softmax(z / T)) + (1 - w) · CE(z, y)``
  (Hinton et al., 2015), keeping the weights with the best validation accuracy;
* a **tree** student (``DecisionTreeClassifier``) is fitted on every row repeated once per
  class, weighted by ``w · teacher_T + (1 - w) · onehot(y)``: the soft-target cross-entropy a
  tree can minimise.

Student specs (``--distill``): ``mlp`` or ``mlp:32,16`` (hidden widths), ``tree`` or
``tree:6`` (depth), or a torch factory ``module:function``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from readyml.errors import ConfigError, FlavorError
from readyml.flavors import ModelAdapter
from readyml.flavors._imports import import_object

# Defaults of the soft-target loss and of student training.
TEMPERATURE = 2.0
SOFT_WEIGHT = 0.7
EPOCHS = 30
BATCH_SIZE = 64
LEARNING_RATE = 3e-3
DEFAULT_HIDDEN = [32]
DEFAULT_DEPTH = 6
MLP_FACTORY = "readyml.flavors.torch:mlp"


@dataclass(frozen=True)
class StudentSpec:
    """A parsed ``--distill`` value."""

    kind: str  # "torch" or "tree"
    factory: str = MLP_FACTORY
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> StudentSpec:
        """Parse ``mlp[:W,W]``, ``tree[:DEPTH]`` or ``module:function``.

        >>> StudentSpec.parse("mlp:32,16")
        StudentSpec(kind='torch', factory='readyml.flavors.torch:mlp', params={'hidden': [32, 16]})
        >>> StudentSpec.parse("tree:4").params
        {'max_depth': 4}
        """
        head, _, rest = text.strip().partition(":")
        try:
            if head == "mlp":
                hidden = [int(w) for w in rest.split(",")] if rest else DEFAULT_HIDDEN
                _check_positive(text, hidden)
                return cls("torch", MLP_FACTORY, {"hidden": hidden})
            if head == "tree":
                depth = int(rest) if rest else DEFAULT_DEPTH
                _check_positive(text, [depth])
                return cls("tree", "", {"max_depth": depth})
        except ValueError as exc:
            raise ConfigError(f"--distill {text!r}: expected integers after ':' ({exc})") from exc
        if all(part.isidentifier() for part in head.split(".")) and rest.isidentifier():
            # Imported now: a factory that is not there fails before any version is made.
            try:
                import_object(text.strip(), field="--distill", kind="function")
            except FlavorError as exc:
                raise ConfigError(str(exc)) from exc
            return cls("torch", text.strip(), {})
        raise ConfigError(
            f"--distill: expected 'mlp[:W,W]', 'tree[:DEPTH]' or a torch factory "
            f"'module:function', found {text!r}"
        )


def _check_positive(text: str, sizes: list[int]) -> None:
    if any(size < 1 for size in sizes):
        raise ConfigError(f"--distill {text!r}: expected sizes of 1 or more, found {sizes}")


def soften(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities at a temperature: the softmax of ``log p / T``.

    >>> soften(np.array([[0.9, 0.1]]), 1.0).round(2).tolist()
    [[0.9, 0.1]]
    """
    logits = np.log(np.clip(proba, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    softened: np.ndarray = weights / weights.sum(axis=1, keepdims=True)
    return softened


def _targets(teacher: ModelAdapter, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    if teacher.task != "classification" or not teacher.has_proba:
        raise FlavorError(
            "distillation: expected a teacher classifier with probabilities, "
            f"found a {teacher.task} model of flavor {teacher.flavor!r}"
        )
    classes = np.asarray(teacher.classes_)
    codes = np.searchsorted(classes, np.asarray(y))
    return np.asarray(teacher.predict_proba(X), dtype=np.float64), codes


def distill(
    teacher: ModelAdapter,
    student: StudentSpec,
    X: Any,
    y: Any,
    *,
    X_valid: Any = None,
    y_valid: Any = None,
    temperature: float = TEMPERATURE,
    soft_weight: float = SOFT_WEIGHT,
    epochs: int = EPOCHS,
    seed: int = 0,
) -> ModelAdapter:
    """Train ``student`` on ``teacher``'s soft targets over the training rows.

    Args:
        teacher: A fitted classifier with ``predict_proba``.
        student: What to train (see :class:`StudentSpec`).
        X: Training features (frame or array), as the teacher takes them.
        y: Training labels.
        X_valid: Validation features, to keep the best epoch of a torch student.
        y_valid: Validation labels.
        temperature: Softening temperature ``T`` (> 0).
        soft_weight: Weight ``w`` of the soft targets against the true labels, in [0, 1].
        epochs: Epochs of a torch student.
        seed: Seed of the student.

    Returns:
        A fitted adapter (flavor ``torch`` or ``sklearn``).
    """
    if temperature <= 0 or not 0.0 <= soft_weight <= 1.0:
        raise ConfigError(
            f"distillation: expected temperature > 0 and 0 <= weight <= 1, found "
            f"{temperature} and {soft_weight}"
        )
    proba, codes = _targets(teacher, X, y)
    soft = soften(proba, temperature)
    if student.kind == "tree":
        return _tree_student(teacher, student, X, y, soft, codes, soft_weight, seed)
    try:
        return _torch_student(
            teacher,
            student,
            X,
            y,
            soft,
            codes,
            X_valid,
            y_valid,
            temperature,
            soft_weight,
            epochs,
            seed,
        )
    except (RuntimeError, TypeError, ValueError) as exc:
        # A factory that does not fit the teacher's inputs (a CNN on table columns, a class
        # that is not a factory): torch's or Python's own error, named.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FlavorError(
            f"--distill {student.factory!r}: expected a torch factory "
            f"(n_inputs, n_outputs) -> nn.Module whose network takes the training inputs, "
            f"found {type(exc).__name__}: {first}"
        ) from exc


def _tree_student(
    teacher: ModelAdapter,
    student: StudentSpec,
    X: Any,
    y: Any,
    soft: np.ndarray,
    codes: np.ndarray,
    soft_weight: float,
    seed: int,
) -> ModelAdapter:
    from sklearn.tree import DecisionTreeClassifier

    from readyml.flavors._signature import infer_inputs
    from readyml.flavors.sklearn import SklearnModel, preprocessing_pipeline

    if not isinstance(X, pd.DataFrame):
        raise FlavorError("distillation: a tree student expects a frame, found an array")
    classes = np.asarray(teacher.classes_)
    k = len(classes)
    target = soft_weight * soft + (1 - soft_weight) * np.eye(k)[codes]
    repeated = X.loc[X.index.repeat(k)].reset_index(drop=True)
    labels = np.tile(classes, len(X))
    weights = target.reshape(-1)
    tree = DecisionTreeClassifier(random_state=seed, **student.params)
    pipeline = preprocessing_pipeline(tree, X, [], [])
    pipeline.fit(repeated, labels, model__sample_weight=weights)
    adapter = SklearnModel(estimator=tree, task="classification")
    adapter.model_ = pipeline
    adapter.features_ = infer_inputs(X)
    return adapter


def _torch_student(
    teacher: ModelAdapter,
    student: StudentSpec,
    X: Any,
    y: Any,
    soft: np.ndarray,
    codes: np.ndarray,
    X_valid: Any,
    y_valid: Any,
    temperature: float,
    soft_weight: float,
    epochs: int,
    seed: int,
) -> ModelAdapter:
    import torch
    from torch.nn import functional

    from readyml.flavors.torch import TorchModel, seeded

    # One epoch of ordinary training builds the encoder, classes and network; then distil.
    model = TorchModel(
        factory=student.factory,
        factory_params=dict(student.params),
        task="classification",
        seed=seed,
        epochs=1,
        validation_fraction=0.0,
    ).fit(X, y)
    encoder = model.encoder_
    encode = (
        (lambda F: encoder.transform(F))
        if encoder is not None
        else (lambda F: np.asarray(F, np.float32))
    )
    features = torch.from_numpy(np.ascontiguousarray(encode(X), dtype=np.float32))
    soft_targets = torch.from_numpy(soft.astype(np.float32))
    hard = torch.from_numpy(codes.astype(np.int64))
    module = model.module_
    best_accuracy, best_state = -1.0, None
    history = []
    with seeded(seed):
        optimizer = torch.optim.Adam(module.parameters(), lr=LEARNING_RATE)
        generator = torch.Generator().manual_seed(seed)
        for epoch in range(1, epochs + 1):
            module.train()
            order = torch.randperm(len(features), generator=generator)
            for start in range(0, len(features), BATCH_SIZE):
                batch = order[start : start + BATCH_SIZE]
                logits = module(features[batch])
                distilled = (
                    functional.kl_div(
                        functional.log_softmax(logits / temperature, dim=1),
                        soft_targets[batch],
                        reduction="batchmean",
                    )
                    * temperature**2
                )
                loss = soft_weight * distilled + (1 - soft_weight) * functional.cross_entropy(
                    logits, hard[batch]
                )
                optimizer.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
            module.eval()
            if X_valid is None:
                continue
            accuracy = float(np.mean(model.predict(X_valid) == np.asarray(y_valid)))
            history.append({"epoch": epoch, "valid_metric": accuracy})
            if accuracy > best_accuracy:
                best_accuracy, best_state = accuracy, copy.deepcopy(module.state_dict())
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    model.history_ = history
    model.epochs = epochs
    return model
