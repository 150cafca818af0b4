"""The compression demo: a small CNN on scikit-learn's digits, compressed every way, gated.

:func:`compress_demo` trains the CNN (flavor torch), registers it, then exports it to ONNX and
ORT, quantizes it (static int8), prunes it (structured, fine-tuned) and distils it into a small
MLP; each result is a version with lineage, gated against the CNN, and the report is written
next to the workspace.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from readyml.compress.report import CompressionReport
from readyml.compress.run import Methods, Splits, compress_version, evaluate
from readyml.flavors import ModelAdapter
from readyml.registry import ModelVersion, Registry

DEMO_MODEL = "digits-cnn"
FACTORY = "readyml.examples.digits:cnn"
# CNN training for the demo: small enough to train in seconds on two cores.
TRAINING = {"epochs": 15, "batch_size": 64, "lr": 2e-3, "patience": 4}


def register_trained(
    registry: Registry,
    name: str,
    model: ModelAdapter,
    splits: Splits,
    *,
    primary: str | None = None,
) -> ModelVersion:
    """Register a fitted model as a new version, with its validation metrics (status candidate)."""
    import hashlib

    with tempfile.TemporaryDirectory() as tmp:
        written = model.save(Path(tmp))
        digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(written))).hexdigest()
        return registry.register(
            name,
            files={p.name: p for p in written},
            model_fingerprint=digest,
            metrics=evaluate(model, splits, primary=primary),
            signature=model.signature(),
            tags={"flavor": model.flavor, "task": model.task},
        )


def train_digits_cnn(splits: Splits, *, seed: int = 0, **params: Any) -> ModelAdapter:
    """Fit the example CNN on the digits training images."""
    from readyml.flavors.torch import TorchModel

    settings: dict[str, Any] = {**TRAINING, **params}
    factory_params: dict[str, Any] = {
        k: settings.pop(k) for k in ("channels", "hidden") if k in settings
    }
    return TorchModel(factory=FACTORY, factory_params=factory_params, seed=seed, **settings).fit(
        splits.X_train, splits.y_train, X_valid=splits.X_valid, y_valid=splits.y_valid
    )


def digits_splits() -> Splits:
    """The digits images as compression splits."""
    from readyml.examples.digits import load_digits_splits

    X_train, y_train, X_valid, y_valid = load_digits_splits()
    return Splits(X_train, y_train, X_valid, y_valid)


def compress_demo(workdir: Path, registry: Registry) -> dict[str, Any]:
    """Train, register and compress the digits CNN; return a JSON-friendly summary.

    Args:
        workdir: Where ``compression.json`` and ``compression.html`` are written
            (``workdir/reports/digits-cnn``).
        registry: Where the CNN and its compressed versions are registered.

    Returns:
        ``{"parent", "report": {json, html}, "table": [...], "vetoed": [...]}``.
    """
    splits = digits_splits()
    parent = register_trained(registry, DEMO_MODEL, train_digits_cnn(splits), splits=splits)
    out = Path(workdir) / "reports" / DEMO_MODEL
    report: CompressionReport = compress_version(
        registry,
        parent.ref,
        splits,
        Methods(format="ort", quantize="int8", static=True),
        out=None,
    )
    for methods in (
        Methods(prune=0.5, structured=True, fine_tune_epochs=5),
        Methods(distill="mlp:64"),
    ):
        extra = compress_version(registry, parent.ref, splits, methods)
        report.rows += extra.rows[1:]
    json_path, html_path = report.write(out)
    return {
        "parent": parent.ref,
        "report": {"json": str(json_path), "html": str(html_path)},
        "table": report.table(),
        "vetoed": [row.ref for row in report.vetoed],
    }
