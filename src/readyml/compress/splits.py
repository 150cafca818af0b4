"""The training and validation rows a registered version was made from, read back from its run.

The pipeline's ``split`` step stores both frames (Parquet, sha256-checked) in the artifact
store; a version's ``run_id`` leads to that step, and its input fingerprint to the stored
outputs when the step itself was reused from an earlier run.

The label is read from readyml.yaml, so it must be the one the parent was trained on: every
version records its label in its lineage (versions registered before it did are not checked).
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

import numpy as np
import pandas as pd

from readyml.compress.run import Splits
from readyml.config import ProjectSpec
from readyml.errors import ConfigError, RegistryError
from readyml.registry import ModelVersion, Registry, StepRecord
from readyml.registry.lineage import LABEL_KEY

SPLIT_STEP = "split"


def _frames(registry: Registry, outputs: dict[str, Any]) -> dict[str, pd.DataFrame]:
    frames = {}
    for name in ("train", "valid"):
        files = {f["name"]: f for f in outputs[name]["files"]}
        meta = files["data.parquet"]
        data = registry.artifacts.get_bytes(
            meta["key"], sha256=meta["sha256"], label=f"split output {name!r}"
        )
        frames[name] = pd.read_parquet(BytesIO(data))
    return frames


def _outputs(
    registry: Registry, spec: ProjectSpec, record: StepRecord, wanted: str
) -> dict[str, Any]:
    """A step's stored outputs; those of the earlier run it reused when ``wanted`` is not
    among its own (a skipped step records none)."""
    if wanted in record.outputs:
        return dict(record.outputs)
    cached = registry.store.find_cached_step(spec.name, record.name, record.input_fingerprint)
    return {} if cached is None else dict(cached.outputs)


def _check_label(version: ModelVersion, spec: ProjectSpec, trained: str | None) -> None:
    if trained is not None and trained != spec.label:
        raise ConfigError(
            f"{version.ref}: expected label {trained!r} (its run's), found {spec.label!r} in "
            f"readyml.yaml; set label back to {trained!r} or train a new version"
        )


def version_splits(registry: Registry, version: ModelVersion, spec: ProjectSpec) -> Splits:
    """The train/validation splits of the run that produced ``version``.

    Raises:
        RegistryError: The version has no run, or its run's split is no longer stored.
        ConfigError: readyml.yaml's label is not the one the version was trained on, or the
            split lacks it or a model input.
    """
    if version.run_id is None:
        raise RegistryError(
            f"{version.ref}: expected a version produced by a pipeline run, found no run id; "
            "pass the splits to readyml.compress.compress_version yourself"
        )
    splits = [s for s in registry.store.steps_for_run(version.run_id) if s.name == SPLIT_STEP]
    if not splits:
        raise RegistryError(f"{version.ref}: run {version.run_id[:8]} has no split step")
    outputs = _outputs(registry, spec, splits[-1], "train")
    if not {"train", "valid"} <= set(outputs):
        raise RegistryError(
            f"{version.ref}: the split of run {version.run_id[:8]} is no longer stored"
        )
    frames = _frames(registry, outputs)
    names = [str(f["name"]) for f in version.signature.get("inputs", [])]
    train, valid = frames["train"], frames["valid"]
    recorded = version.lineage.get(LABEL_KEY)
    _check_label(version, spec, None if recorded is None else str(recorded))
    missing = [name for name in [*names, spec.label] if name not in train.columns]
    if missing:
        what = "the label in readyml.yaml" if missing[0] == spec.label else "a model input"
        raise ConfigError(
            f"{version.ref}: expected its run's split to hold {missing[0]!r} ({what}), "
            f"found columns {[str(c) for c in train.columns]}"
        )
    return Splits(
        X_train=train[names],
        y_train=np.asarray(train[spec.label]),
        X_valid=valid[names],
        y_valid=np.asarray(valid[spec.label]),
        slices=list(spec.slices),
        seed=spec.seed,
        valid_frame=valid,
        fairness=spec.fairness,
        label=spec.label,
    )
