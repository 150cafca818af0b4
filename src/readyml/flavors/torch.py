"""The PyTorch flavor: a seeded training loop with early stopping for tabular data and tensors.

A frame is encoded by a :class:`TabularEncoder` (numerics standardized, categoricals one-hot;
its state goes to ``flavor.json`` as JSON); a numpy array ``(N, ...)`` (e.g. images) is fed
through unchanged. The network comes from a factory ``"module:function"`` called as
``factory(n_inputs, n_outputs, **params)``; :func:`mlp` is the default. Classification trains
with cross-entropy, regression with MSE on a standardized target. Training stops when the
validation loss has not improved for ``patience`` epochs and keeps the best weights.

Seeds: Python, numpy and torch are seeded for the fit and their previous states restored
afterwards, and torch's deterministic algorithms are switched on for the fit only, so two fits
with the same seed give the same weights without changing the caller's global state.
Weights are saved with ``torch.save(state_dict)`` and loaded with ``weights_only=True``; a
dynamically quantized module (``quantization_ == "dynamic-int8"``, made by ``readyml compress
--quantize torch-int8``) saves its int8 weights the same way and is re-quantized from its factory
on load (:mod:`readyml.flavors.torch_quantization`).
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from torch import nn

from readyml.errors import FlavorError
from readyml.flavors._base import (
    Array,
    Features,
    Task,
    check_sample_weight,
    check_task,
    classes_from_json,
    not_fitted,
    write_flavor_file,
)
from readyml.flavors._imports import check_params, import_object
from readyml.flavors._signature import infer_inputs, make_signature
from readyml.flavors._tabular import TabularEncoder, encode_labels, label_codes
from readyml.flavors.guard import TrainingGuard
from readyml.flavors.torch_quantization import DYNAMIC_INT8, load_quantized, save_quantized
from readyml.types import JSON

DEFAULT_FACTORY = "readyml.flavors.torch:mlp"
# Training parameters read from model.params, with their defaults; the rest go to the factory.
TRAINING_DEFAULTS: dict[str, Any] = {
    "epochs": 50,
    "batch_size": 64,
    "lr": 1e-3,
    "patience": 5,
    "weight_decay": 0.0,
    "validation_fraction": 0.1,
}
WEIGHTS_FILE = "model.pt"
# Rows per forward pass at prediction time (bounds memory, not results).
PREDICT_BATCH_ROWS = 8192
# Rows of the training data the guard runs through the network after each epoch.
GUARD_PROBE_ROWS = 256
# Fewer training rows than this: no validation split is carved out.
MIN_ROWS_FOR_SPLIT = 20
_LIBRARIES = ("torch", "numpy", "pandas")


def mlp(
    n_inputs: int, n_outputs: int, *, hidden: Sequence[int] = (64, 64), dropout: float = 0.0
) -> nn.Module:
    """A multilayer perceptron: flatten, then ``Linear``+``ReLU`` per hidden width.

    >>> mlp(4, 3, hidden=[8])
    Sequential(
      (0): Flatten(start_dim=1, end_dim=-1)
      (1): Linear(in_features=4, out_features=8, bias=True)
      (2): ReLU()
      (3): Linear(in_features=8, out_features=3, bias=True)
    )
    """
    layers: list[nn.Module] = [nn.Flatten()]
    width = n_inputs
    for size in hidden:
        layers += [nn.Linear(width, int(size)), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = int(size)
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed Python, numpy and torch and use deterministic algorithms, restoring all after."""
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    deterministic = torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(deterministic)
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def build_module(factory: str, n_inputs: int, n_outputs: int, params: dict[str, Any]) -> nn.Module:
    """Call the factory and check that it returned an ``nn.Module``."""
    function = import_object(factory, field="model.estimator", kind="function")
    module = function(n_inputs, n_outputs, **params)
    if not isinstance(module, nn.Module):
        raise FlavorError(
            f"model.estimator {factory!r}: expected a factory returning torch.nn.Module, "
            f"found {type(module).__name__}"
        )
    return module


class TorchModel:
    """Adapter that trains a torch module built by a factory.

    Args:
        factory: ``"module:function"`` building the network from ``(n_inputs, n_outputs)``.
        factory_params: Keyword arguments for the factory (JSON values).
        task: ``"classification"`` or ``"regression"``.
        categorical: Columns to one-hot encode (inferred from dtypes when both lists are empty).
        numeric: Columns to standardize.
        seed: Seed for initialisation, shuffling and the validation split.
        epochs: Most passes over the training data.
        batch_size: Rows per optimizer step.
        lr: Adam learning rate.
        patience: Epochs without validation improvement before stopping.
        weight_decay: Adam weight decay.
        validation_fraction: Share of rows held out for early stopping when no validation
            pair is given (0 disables).

    >>> frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    >>> model = TorchModel(factory_params={"hidden": [4]}, epochs=2)
    >>> model.fit(frame, ["a", "a", "b", "b"]).predict_proba(frame).shape
    (4, 2)
    """

    flavor: str = "torch"

    def __init__(
        self,
        *,
        factory: str = DEFAULT_FACTORY,
        factory_params: dict[str, Any] | None = None,
        task: Task = "classification",
        categorical: Sequence[str] = (),
        numeric: Sequence[str] = (),
        seed: int = 0,
        epochs: int = TRAINING_DEFAULTS["epochs"],
        batch_size: int = TRAINING_DEFAULTS["batch_size"],
        lr: float = TRAINING_DEFAULTS["lr"],
        patience: int = TRAINING_DEFAULTS["patience"],
        weight_decay: float = TRAINING_DEFAULTS["weight_decay"],
        validation_fraction: float = TRAINING_DEFAULTS["validation_fraction"],
    ) -> None:
        self.factory = factory
        self.factory_params = factory_params
        self.task = task
        self.categorical = categorical
        self.numeric = numeric
        self.seed = seed
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.patience = patience
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction

    # -- encoding -------------------------------------------------------------------------

    def _inputs(self, X: Features) -> Array:
        if isinstance(X, pd.DataFrame):
            if self.encoder_ is None:
                raise FlavorError("features: the model was trained on an array, found a frame")
            return self.encoder_.transform(X)
        if self.encoder_ is not None:
            raise FlavorError(
                f"features: the model was trained on a frame, found {type(X).__name__}"
            )
        return np.asarray(X, dtype=np.float32)

    def _targets(self, y: npt.ArrayLike, *, field: str) -> Array:
        if self.task == "classification":
            return label_codes(self.classes_, y, field=field)
        values = np.asarray(y, dtype=np.float64)
        values = values.reshape(len(values), -1)
        scaled: Array = ((values - self.target_mean_) / self.target_scale_).astype(np.float32)
        return scaled

    # -- training -------------------------------------------------------------------------

    def fit(
        self,
        X: Features,
        y: npt.ArrayLike,
        *,
        X_valid: Features | None = None,
        y_valid: npt.ArrayLike | None = None,
        sample_weight: npt.ArrayLike | None = None,
    ) -> Self:
        """Train with early stopping; per-epoch metrics go to ``history_``.

        With ``sample_weight``, each batch's loss is the mean of weight x per-row loss, the
        weights scaled to mean one over the training rows (so a batch of zero-weight rows
        gives no gradient); ``train_loss`` is weighted, the validation loss is not.
        """
        weights = check_sample_weight(sample_weight, len(X))
        if isinstance(X, pd.DataFrame):
            self.encoder_: TabularEncoder | None = TabularEncoder(
                categorical=self.categorical, numeric=self.numeric, standardize=True
            ).fit(X)
        else:
            self.encoder_ = None
        self.features_ = infer_inputs(X)
        inputs = self._inputs(X)
        labels = np.asarray(y)
        if self.task == "classification":
            self._classes: Array | None = encode_labels(labels)[0]
            n_outputs = len(self._classes)
        else:
            self._classes = None
            values = labels.astype(np.float64).reshape(len(labels), -1)
            self.target_mean_ = values.mean(axis=0)
            self.target_scale_ = np.where(values.std(axis=0) > 0, values.std(axis=0), 1.0)
            n_outputs = values.shape[1]
        targets = self._targets(labels, field="y")
        if X_valid is not None and y_valid is not None:
            valid = (self._inputs(X_valid), self._targets(y_valid, field="y_valid"))
        elif self.validation_fraction > 0 and len(inputs) >= MIN_ROWS_FOR_SPLIT:
            order = np.random.default_rng(self.seed).permutation(len(inputs))
            cut = max(1, round(len(inputs) * self.validation_fraction))
            valid = (inputs[order[:cut]], targets[order[:cut]])
            inputs, targets = inputs[order[cut:]], targets[order[cut:]]
            weights = None if weights is None else weights[order[cut:]]
        else:
            valid = None
        if weights is not None and not np.any(weights > 0):
            raise FlavorError(
                "sample_weight: expected a positive weight among the training rows, found "
                "only zeros after the validation split; pass X_valid/y_valid or set "
                "validation_fraction=0"
            )
        self.n_inputs_ = int(math.prod(inputs.shape[1:]))
        self.n_outputs_ = int(n_outputs)
        self.quantization_: str | None = None
        with seeded(self.seed):
            module = build_module(
                self.factory, self.n_inputs_, self.n_outputs_, dict(self.factory_params or {})
            )
            self.history_ = self._train(module, inputs, targets, valid, weights)
        self.module_ = module
        return self

    def _loss(self, reduction: str = "mean") -> nn.Module:
        if self.task == "classification":
            return nn.CrossEntropyLoss(reduction=reduction)
        return nn.MSELoss(reduction=reduction)

    def _train(
        self,
        module: nn.Module,
        inputs: Array,
        targets: Array,
        valid: tuple[Array, Array] | None,
        weights: Array | None = None,
    ) -> list[JSON]:
        if self.epochs < 1 or self.batch_size < 1:
            raise FlavorError(
                f"model.params: epochs and batch_size must be >= 1, found {self.epochs} "
                f"and {self.batch_size}"
            )
        features = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))
        target = torch.from_numpy(targets)
        generator = torch.Generator().manual_seed(self.seed)
        optimizer = torch.optim.Adam(
            module.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        loss_function = self._loss()
        row_loss = self._loss(reduction="none")
        # Scaled to mean one: the batch mean of weight x loss estimates the weighted mean.
        row_weight = (
            None
            if weights is None
            else torch.from_numpy((weights / weights.mean()).astype(np.float32))
        )
        guard = TrainingGuard()
        probe = features[:GUARD_PROBE_ROWS]
        history: list[JSON] = []
        best_loss, best_state, epochs_without_gain = math.inf, None, 0
        for epoch in range(1, self.epochs + 1):
            module.train()
            order = torch.randperm(len(features), generator=generator)
            total = 0.0
            for start in range(0, len(features), self.batch_size):
                rows = order[start : start + self.batch_size]
                optimizer.zero_grad()
                if row_weight is None:
                    loss = loss_function(module(features[rows]), target[rows])
                else:
                    losses = row_loss(module(features[rows]), target[rows])
                    losses = losses.reshape(len(rows), -1).mean(dim=1)
                    loss = (losses * row_weight[rows]).mean()
                value = float(loss.item())
                guard.after_step(value)  # a NaN/inf loss stops training here, named
                loss.backward()
                optimizer.step()
                total += value * len(rows)
            record: JSON = {
                "epoch": epoch,
                "train_loss": total / max(1, len(features)),
                "valid_loss": None,
                "valid_metric": None,
            }
            if valid is not None:
                record["valid_loss"], record["valid_metric"] = self._evaluate(module, *valid)
            module.eval()
            record["stability"] = guard.after_epoch(module, probe)
            module.train()
            history.append(record)
            if valid is None:
                continue
            if record["valid_loss"] < best_loss:
                best_loss, epochs_without_gain = record["valid_loss"], 0
                best_state = copy.deepcopy(module.state_dict())
            else:
                epochs_without_gain += 1
                if epochs_without_gain >= self.patience:
                    break
        if best_state is not None:
            module.load_state_dict(best_state)
        module.eval()
        return history

    def _evaluate(self, module: nn.Module, inputs: Array, targets: Array) -> tuple[float, float]:
        """Validation loss, and accuracy (classification) or RMSE in target units."""
        outputs = torch.from_numpy(self._forward(module, inputs))
        target = torch.from_numpy(targets)
        loss = float(self._loss()(outputs, target).item())
        if self.task == "classification":
            metric = float((outputs.argmax(dim=1) == target).double().mean().item())
        else:
            error = (outputs - target).numpy() * self.target_scale_
            metric = float(np.sqrt(np.mean(error**2)))
        return loss, metric

    # -- prediction -----------------------------------------------------------------------

    @staticmethod
    def _forward(module: nn.Module, inputs: Array) -> Array:
        was_training = module.training
        module.eval()
        device = _device_of(module)
        chunks = []
        with torch.no_grad():
            for start in range(0, len(inputs), PREDICT_BATCH_ROWS):
                batch = np.ascontiguousarray(inputs[start : start + PREDICT_BATCH_ROWS], np.float32)
                if device.type == "cuda":
                    chunks.append(_forward_on_card(module, torch.from_numpy(batch), device))
                else:
                    chunks.append(module(torch.from_numpy(batch)).numpy())
        module.train(was_training)
        if not chunks:
            return np.zeros((0, 0), dtype=np.float32)
        return np.concatenate(chunks)

    def to_device(self, device: str) -> str:
        """Predict on ``device`` from now on: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.

        ``auto`` is the first GPU when torch sees one and the module is not quantized (dynamic
        int8 runs on the CPU only), else the CPU. Returns the device chosen.

        Raises:
            FlavorError: ``device`` is not one of those, or names a GPU that is not there.
        """
        self._check_fitted("to_device")
        target = _resolve_device(device, quantized=self.quantization_ is not None)
        if target.type == "cuda":
            # On the card, torch's CPU threads only copy, and idle ones spin: in a server they
            # took the event loop's cores (18 ms of CPU per image instead of 1.2, on an H200).
            torch.set_num_threads(1)
        self.module_ = self.module_.to(target)
        return str(_device_of(self.module_))

    def _check_fitted(self, attribute: str) -> None:
        if not hasattr(self, "module_"):
            raise not_fitted(self, attribute)

    def predict_proba(self, X: Features) -> Array:
        """Softmax of the network's outputs, columns in ``classes_`` order."""
        self._check_fitted("predict_proba")
        if self.task != "classification":
            raise FlavorError("flavor 'torch': a regression model has no predict_proba")
        logits = torch.from_numpy(self._forward(self.module_, self._inputs(X)))
        return torch.softmax(logits.double(), dim=1).numpy()

    def predict(self, X: Features) -> Array:
        """Labels in the original label space, or regression values."""
        self._check_fitted("predict")
        outputs = self._forward(self.module_, self._inputs(X))
        if self.task == "classification":
            return np.asarray(self.classes_[np.argmax(outputs, axis=1)])
        values = outputs.astype(np.float64) * self.target_scale_ + self.target_mean_
        return np.asarray(values[:, 0] if values.shape[1] == 1 else values)

    @property
    def has_proba(self) -> bool:
        """Classifiers have probabilities; regressors do not."""
        return self.task == "classification"

    @property
    def classes_(self) -> Array:
        """Class labels seen at fit (or read from ``flavor.json``)."""
        if self.task != "classification":
            raise AttributeError("a regression model has no classes_")
        classes: Array | None = getattr(self, "_classes", None)
        if classes is None:
            raise not_fitted(self, "classes_")
        return classes

    def signature(self) -> JSON:
        """Inputs seen at fit and the output description."""
        self._check_fitted("signature")
        return make_signature(
            self.features_, task=self.task, classes=self._classes, proba=self.has_proba
        )

    # -- persistence ----------------------------------------------------------------------

    def save(self, directory: Path) -> list[Path]:
        """Save the ``state_dict`` and ``flavor.json`` with everything needed to rebuild."""
        self._check_fitted("save")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / WEIGHTS_FILE
        if self.quantization_ is None:
            torch.save(self.module_.state_dict(), path)
        else:
            save_quantized(self.module_, path)
        extra: JSON = {
            "format": "state_dict",
            "factory": self.factory,
            "factory_params": dict(self.factory_params or {}),
            "n_inputs": self.n_inputs_,
            "n_outputs": self.n_outputs_,
            "seed": self.seed,
            "training": {
                "epochs": self.epochs,
                "batch_size": self.batch_size,
                "lr": self.lr,
                "patience": self.patience,
                "weight_decay": self.weight_decay,
                "validation_fraction": self.validation_fraction,
            },
            "history": self.history_,
            "preprocessing": None if self.encoder_ is None else self.encoder_.to_json(),
        }
        if self.quantization_ is not None:
            extra["quantization"] = self.quantization_
        if self.task == "regression":
            extra["target"] = {
                "mean": self.target_mean_.tolist(),
                "scale": self.target_scale_.tolist(),
            }
        meta = write_flavor_file(
            directory,
            flavor=self.flavor,
            task=self.task,
            files=[path],
            features=self.features_,
            classes=self._classes,
            libraries=_LIBRARIES,
            extra=extra,
        )
        return [path, meta]

    @classmethod
    def load(cls, directory: Path, content: JSON) -> TorchModel:
        """Rebuild the module from its factory and load the weights (``weights_only=True``)."""
        try:
            training = dict(content.get("training") or {})
            adapter = cls(
                factory=str(content["factory"]),
                factory_params=dict(content.get("factory_params") or {}),
                task=check_task(str(content["task"])),
                seed=int(content.get("seed", 0)),
                **{key: training[key] for key in TRAINING_DEFAULTS if key in training},
            )
            adapter.n_inputs_ = int(content["n_inputs"])
            adapter.n_outputs_ = int(content["n_outputs"])
        except (KeyError, TypeError, ValueError) as exc:
            raise FlavorError(f"flavor.json: torch model description is malformed ({exc})") from exc
        state = content.get("preprocessing")
        adapter.encoder_ = None if state is None else TabularEncoder.from_json(dict(state))
        adapter.features_ = list(content["features"])
        adapter.history_ = list(content.get("history") or [])
        adapter._classes = classes_from_json(content)
        if adapter.task == "regression":
            target = dict(content.get("target") or {})
            adapter.target_mean_ = np.asarray(target.get("mean", [0.0]), dtype=np.float64)
            adapter.target_scale_ = np.asarray(target.get("scale", [1.0]), dtype=np.float64)
        module = build_module(
            adapter.factory,
            adapter.n_inputs_,
            adapter.n_outputs_,
            dict(adapter.factory_params or {}),
        )
        adapter.quantization_ = content.get("quantization")
        if adapter.quantization_ not in (None, DYNAMIC_INT8):
            raise FlavorError(
                f"flavor.json: quantization: expected {DYNAMIC_INT8!r} or none, found "
                f"{adapter.quantization_!r}"
            )
        path = Path(directory) / WEIGHTS_FILE
        try:
            if adapter.quantization_ is None:
                module.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
            else:
                module = load_quantized(module, path)
        except (RuntimeError, ValueError, OSError, EOFError) as exc:
            raise FlavorError(f"{WEIGHTS_FILE}: cannot load the weights ({exc})") from exc
        module.eval()
        adapter.module_ = module
        return adapter


def _resolve_device(device: str, *, quantized: bool) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() and not quantized else "cpu")
    try:
        target: torch.device | None = torch.device(device)
    except RuntimeError:
        target = None
    if target is None or target.type not in ("cpu", "cuda"):
        raise FlavorError(f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', found {device!r}")
    if target.type == "cuda":
        if quantized:
            raise FlavorError(
                f"device: a dynamic-int8 module runs on the CPU only, found {device!r}"
            )
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (target.index or 0) >= available:
            raise FlavorError(
                f"device: expected one of {available} CUDA device(s), found {device!r}"
            )
    return target


def _device_of(module: nn.Module) -> torch.device:
    parameter = next(module.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _forward_on_card(module: nn.Module, batch: torch.Tensor, device: torch.device) -> Array:
    """One batch on a GPU: page-locked copies both ways, then a blocking wait for the card.

    A plain ``.cpu()`` spins a CPU core until the card is done; a blocking CUDA event sleeps.
    """
    outputs = module(batch.pin_memory().to(device, non_blocking=True))
    host = torch.empty(outputs.shape, dtype=outputs.dtype, pin_memory=True)
    host.copy_(outputs, non_blocking=True)
    done = torch.cuda.Event(blocking=True)  # type: ignore[no-untyped-call]
    done.record()
    done.synchronize()
    return host.numpy()


def build(
    *,
    estimator: str | None,
    params: dict[str, Any],
    entry_point: str | None,
    task: Task,
    categorical: Sequence[str],
    numeric: Sequence[str],
    seed: int,
    allow_pickle: bool = False,
) -> TorchModel:
    """Build the adapter from spec fields (see :func:`readyml.flavors.build_model`).

    ``estimator`` (or ``entry_point``) names the module factory; training parameters
    (:data:`TRAINING_DEFAULTS`) are taken out of ``params`` and the rest go to the factory.
    """
    factory = entry_point or estimator or DEFAULT_FACTORY
    field = "model.entry_point" if entry_point else "model.estimator"
    function = import_object(factory, field=field, kind="function")
    training = {key: params[key] for key in TRAINING_DEFAULTS if key in params}
    factory_params = {key: value for key, value in params.items() if key not in TRAINING_DEFAULTS}
    check_params(function, factory_params)
    return TorchModel(
        factory=factory,
        factory_params=factory_params,
        task=task,
        categorical=categorical,
        numeric=numeric,
        seed=seed,
        **training,
    )
