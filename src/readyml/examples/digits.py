"""The digits example: scikit-learn's bundled 8×8 handwritten digits and a small CNN for them.

:func:`load_digits_splits` returns images as ``(N, 1, 8, 8)`` float32 arrays in ``[0, 1]``
with a stratified train/validation split; :func:`cnn` is a torch module factory (flavor
``torch``, ``estimator: readyml.examples.digits:cnn``) whose widths are the ``channels`` and
``hidden`` lists, so structured pruning can shrink and save it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from torch import nn

# The images' side in pixels, and the grey levels of sklearn's digits (0..16).
SIDE = 8
GREY_LEVELS = 16.0


def cnn(
    n_inputs: int,
    n_outputs: int,
    *,
    channels: Sequence[int] = (32, 64),
    hidden: Sequence[int] = (256,),
) -> nn.Module:
    """Two 3×3 convolutions (same padding), one 2×2 max-pool, fully connected layers.

    >>> import torch
    >>> cnn(64, 10, channels=[4, 8], hidden=[16])(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """
    if n_inputs != SIDE * SIDE:
        raise ValueError(f"cnn: expected 8×8 images (64 inputs), found {n_inputs} inputs")
    layers: list[nn.Module] = []
    width = 1
    for size in channels:
        layers += [nn.Conv2d(width, int(size), 3, padding=1), nn.ReLU()]
        width = int(size)
    layers += [nn.MaxPool2d(2), nn.Flatten()]
    features = width * (SIDE // 2) ** 2
    for size in hidden:
        layers += [nn.Linear(features, int(size)), nn.ReLU()]
        features = int(size)
    layers.append(nn.Linear(features, n_outputs))
    return nn.Sequential(*layers)


def load_digits_splits(
    *, valid_fraction: float = 0.25, seed: int = 0
) -> tuple[
    npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.int64]
]:
    """Train and validation images ``(N, 1, 8, 8)`` in ``[0, 1]`` and their labels.

    >>> X_train, y_train, X_valid, y_valid = load_digits_splits()
    >>> X_train.shape[1:], len(X_train) + len(X_valid)
    ((1, 8, 8), 1797)
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    images, labels = load_digits(return_X_y=True)
    X = (images / GREY_LEVELS).astype(np.float32).reshape(-1, 1, SIDE, SIDE)
    y = labels.astype(np.int64)
    X_train, X_valid, y_train, y_valid = train_test_split(
        X, y, test_size=valid_fraction, random_state=seed, stratify=y
    )
    return X_train, y_train, X_valid, y_valid
