"""skops.io is imported without PyTorch, and leaves PyTorch importable."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from readyml.flavors._skops import _HideTorch

SCRIPT = """
import sys
from pathlib import Path
import pandas as pd
from sklearn.linear_model import LogisticRegression
from readyml.flavors import load_model
from readyml.flavors.sklearn import SklearnModel

frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
model = SklearnModel(estimator=LogisticRegression()).fit(frame, ["a", "a", "b", "b"])
model.save(Path(sys.argv[1]))
loaded = load_model(Path(sys.argv[1]))
assert loaded.predict(frame).tolist() == ["a", "a", "b", "b"]
print("torch imported:", "torch" in sys.modules)
import torch
print("torch importable:", bool(torch.__version__))
"""


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_a_scikit_learn_model_round_trip_does_not_import_torch(tmp_path: Path) -> None:
    answer = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "model")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "torch imported: False" in answer.stdout
    assert "torch importable: True" in answer.stdout


def test_torch_is_hidden_from_the_importing_thread_only() -> None:
    finder = _HideTorch()
    with pytest.raises(ModuleNotFoundError, match=r"torch\.nn is hidden"):
        finder.find_spec("torch.nn")
    assert finder.find_spec("torchvision") is None
    assert finder.find_spec("numpy") is None
    found: list[object] = []
    other = threading.Thread(target=lambda: found.append(finder.find_spec("torch")))
    other.start()
    other.join()
    assert found == [None]
