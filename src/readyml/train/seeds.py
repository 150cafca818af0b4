"""Seed every random number generator a training run may touch."""

from __future__ import annotations

import os
import random
import sys

import numpy as np


def set_seeds(seed: int) -> None:
    """Seed Python, NumPy and (when it is already imported) PyTorch.

    PyTorch is seeded only if the user's code imported it, so that a scikit-learn project
    never pays torch's import time.
    """
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)
