"""The torch flavor's training loop: history, early stopping, tensors, no global side effects."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from readyml.errors import FlavorError
from readyml.flavors import FLAVOR_FILE, load_model

from . import helpers
from .conftest import Dataset

torch = pytest.importorskip("torch")
from readyml.flavors.torch import TorchModel  # noqa: E402


def test_history_has_one_record_per_epoch_and_goes_into_flavor_json(
    datasets: dict[str, Dataset], tmp_path: Path
) -> None:
    data = datasets["iris_strings"]
    model = TorchModel(factory_params={"hidden": [8]}, epochs=3, patience=10).fit(
        data.X_train, data.y_train, X_valid=data.X_valid, y_valid=data.y_valid
    )
    assert [record["epoch"] for record in model.history_] == [1, 2, 3]
    for record in model.history_:
        assert set(record) == {"epoch", "train_loss", "valid_loss", "valid_metric", "stability"}
        assert 0.0 <= record["valid_metric"] <= 1.0
    model.save(tmp_path)
    content = json.loads((tmp_path / FLAVOR_FILE).read_text())
    assert content["history"] == model.history_
    assert content["factory"] == "readyml.flavors.torch:mlp"
    assert content["factory_params"] == {"hidden": [8]}
    assert set(content["preprocessing"]["categories"]) == {"petal size"}


def test_early_stopping_stops_before_the_last_epoch(datasets: dict[str, Dataset]) -> None:
    data = datasets["iris_strings"]
    model = TorchModel(factory_params={"hidden": [32]}, epochs=300, patience=2, lr=0.05).fit(
        data.X_train, data.y_train, X_valid=data.X_valid, y_valid=data.y_valid
    )
    assert len(model.history_) < 300
    best = min(record["valid_loss"] for record in model.history_)
    assert model._evaluate(
        model.module_, model._inputs(data.X_valid), model._targets(data.y_valid, field="y_valid")
    )[0] == pytest.approx(best, rel=1e-5)


def test_without_validation_pair_a_seeded_split_is_held_out(datasets: dict[str, Dataset]) -> None:
    data = datasets["diabetes"]
    model = TorchModel(task="regression", epochs=2).fit(data.X_train, data.y_train)
    assert all(record["valid_loss"] is not None for record in model.history_)
    no_split = TorchModel(task="regression", epochs=2, validation_fraction=0.0)
    no_split.fit(data.X_train, data.y_train)
    assert all(record["valid_loss"] is None for record in no_split.history_)


def test_fit_restores_global_random_state(datasets: dict[str, Dataset]) -> None:
    data = datasets["iris_strings"]
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    expected = (random.random(), np.random.random(), torch.rand(1).item())
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    TorchModel(epochs=1).fit(data.X_train, data.y_train)
    assert (random.random(), np.random.random(), torch.rand(1).item()) == expected
    assert not torch.are_deterministic_algorithms_enabled()


def test_array_input_trains_a_cnn_and_round_trips(tmp_path: Path) -> None:
    digits = load_digits()
    images = (digits.images[:600] / 16.0).astype(np.float32)[:, None, :, :]
    labels = digits.target[:600]
    factory = f"{helpers.__name__}:small_cnn"
    model = TorchModel(factory=factory, epochs=4, lr=0.01, seed=3).fit(images[:500], labels[:500])
    predictions = model.predict(images[500:])
    assert predictions.shape == (100,)
    assert np.mean(predictions == labels[500:]) > 0.7
    assert model.signature()["inputs"] == [
        {"name": "input", "dtype": "float32", "shape": [None, 1, 8, 8]}
    ]
    model.save(tmp_path)
    loaded = load_model(tmp_path)
    np.testing.assert_array_equal(loaded.predict(images[500:]), predictions)
    again = TorchModel(factory=factory, epochs=4, lr=0.01, seed=3).fit(images[:500], labels[:500])
    np.testing.assert_allclose(
        again.predict_proba(images[500:]), model.predict_proba(images[500:]), atol=1e-6
    )


def test_weights_file_is_a_plain_state_dict(datasets: dict[str, Dataset], tmp_path: Path) -> None:
    data = datasets["iris_strings"]
    TorchModel(epochs=1).fit(data.X_train, data.y_train).save(tmp_path)
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert all(isinstance(value, torch.Tensor) for value in state.values())


def _small_cnn_model() -> tuple[TorchModel, np.ndarray]:
    digits = load_digits()
    images = (digits.images[:300] / 16.0).astype(np.float32)[:, None, :, :]
    factory = f"{helpers.__name__}:small_cnn"
    model = TorchModel(factory=factory, epochs=2, lr=0.01, seed=3)
    return model.fit(images[:250], digits.target[:250]), images[250:]


def test_to_device_cpu_and_auto_without_a_gpu_keep_predictions() -> None:
    model, images = _small_cnn_model()
    before = model.predict_proba(images)
    assert model.to_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        assert model.to_device("auto") == "cpu"
    np.testing.assert_allclose(model.predict_proba(images), before, atol=1e-5)


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("gpu", "expected 'auto', 'cpu', 'cuda' or 'cuda:N', found 'gpu'"),
        ("meta", "expected 'auto', 'cpu', 'cuda' or 'cuda:N', found 'meta'"),
        ("cuda:7", "CUDA device(s), found 'cuda:7'"),
    ],
)
def test_to_device_names_what_it_expected(device: str, message: str) -> None:
    model, _ = _small_cnn_model()
    with pytest.raises(FlavorError, match=re.escape(message)):
        model.to_device(device)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_the_gpu_predictions_match_the_cpu_and_save_loads_anywhere(tmp_path: Path) -> None:
    model, images = _small_cnn_model()
    before = model.predict_proba(images)
    assert model.to_device("auto") == "cuda:0"
    assert next(model.module_.parameters()).is_cuda
    np.testing.assert_allclose(model.predict_proba(images), before, atol=1e-4)
    model.save(tmp_path)
    loaded = load_model(tmp_path)
    assert isinstance(loaded, TorchModel)
    np.testing.assert_allclose(loaded.predict_proba(images), before, atol=1e-4)
