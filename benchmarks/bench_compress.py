"""Compression (issue 7): a small CNN on scikit-learn's digits, and the tabular demo model.

CNN: trained once, then exported to ONNX (fp32), quantized (static int8, calibrated on 256
training images; and torch's own dynamic int8 of its Linear layers), pruned (structured, 50%,
5 fine-tuning epochs) and distilled (MLP with one hidden layer of 64). Tabular: the demo's
RandomForest on Seattle weather exported to ONNX.
Every number comes from readyml's own compression report: size on disk, parameters,
single-thread latency (median), accuracy on the validation split, parity with the parent.

Targets: ONNX Runtime fp32 ≥ 2× faster than PyTorch eager at batch 1, outputs within 1e-4;
static int8 ≥ 3× smaller than fp32 and ≥ 2× faster at batch 64, within 1 accuracy point;
distilled student ≥ 5× fewer parameters within 2 points; structured pruning ≥ 2× smaller
saved model within 2 points.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from readyml.compress import Methods, Splits, compress_version
from readyml.compress.demo import digits_splits, register_trained, train_digits_cnn
from readyml.compress.report import Row
from readyml.registry import open_registry


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _tabular(registry_dir: Path) -> list[str]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    from readyml.demo import DEMO_SPEC, seattle_weather
    from readyml.flavors.sklearn import SklearnModel

    frame = seattle_weather()
    frame = frame[frame["date"] < "2014-01-01"]
    X = frame.drop(columns=["weather", "date"]).reset_index(drop=True)
    y = frame["weather"].to_numpy()
    X_train, X_valid, y_train, y_valid = train_test_split(
        X, y, test_size=0.25, random_state=42, stratify=y
    )
    splits = Splits(
        X_train.reset_index(drop=True), y_train, X_valid.reset_index(drop=True), y_valid
    )
    params = DEMO_SPEC["model"]["params"]
    model = SklearnModel(estimator=RandomForestClassifier(random_state=42, **params))
    registry = open_registry(registry_dir)
    parent = register_trained(registry, "weather", model.fit(splits.X_train, y_train), splits)
    report = compress_version(registry, parent.ref, splits, Methods(format="onnx"))
    base, onnx_row = report.rows
    return [
        "",
        "Tabular demo model (RandomForest, 200 trees, Seattle weather, 183 validation rows):",
        "",
        "| | size KB | ms @1 | ms @64 | accuracy | parity max abs diff |",
        "|---|---:|---:|---:|---:|---:|",
        _line("scikit-learn (native)", base),
        _line("ONNX Runtime", onnx_row),
    ]


def _line(label: str, row: Row) -> str:
    accuracy = row.quality["valid"]["accuracy"]
    parity = "-" if row.parity is None else f"{row.parity['max_abs_diff']:.1e}"
    return (
        f"| {label} | {row.size_bytes / 1024:.1f} | {row.latency_ms['1']:.3f} | "
        f"{row.latency_ms['64']:.3f} | {accuracy:.4f} | {parity} |"
    )


def main() -> str:
    """Run the benchmark and return its markdown section."""
    with tempfile.TemporaryDirectory() as tmp:
        registry = open_registry(Path(tmp) / "digits")
        splits = digits_splits()
        parent = register_trained(registry, "digits-cnn", train_digits_cnn(splits), splits)
        rows = compress_version(
            registry,
            parent.ref,
            splits,
            Methods(format="onnx", quantize="int8", static=True),
            max_quality_loss=0.01,
        ).rows
        for methods in (
            Methods(prune=0.5, structured=True, fine_tune_epochs=5),
            Methods(distill="mlp:64", distill_epochs=40),
            Methods(quantize="torch-int8"),
        ):
            rows += compress_version(
                registry, parent.ref, splits, methods, max_quality_loss=0.02
            ).rows[1:]
        tabular = _tabular(Path(tmp) / "weather")
    torch_row, onnx_row, int8_row, pruned_row, student_row, dynamic_row = rows
    acc = {r.method: float(r.quality["valid"]["accuracy"]) for r in rows}
    fp32_speed = torch_row.latency_ms["1"] / onnx_row.latency_ms["1"]
    int8_smaller = onnx_row.size_bytes / int8_row.size_bytes
    int8_faster = onnx_row.latency_ms["64"] / int8_row.latency_ms["64"]
    fewer = (torch_row.parameters or 0) / max(1, student_row.parameters or 1)
    pruned_smaller = torch_row.size_bytes / pruned_row.size_bytes
    dynamic_smaller = torch_row.size_bytes / dynamic_row.size_bytes
    dynamic_faster = {n: torch_row.latency_ms[n] / dynamic_row.latency_ms[n] for n in ("1", "64")}
    candidates = "; ".join(
        f"{'+'.join(c['op_types'])}: {c['latency_ms_batch64']:.3f} ms"
        for c in int8_row.details.get("candidates", [])
        if c.get("latency_ms_batch64") is not None
    )
    assert onnx_row.parity is not None
    lines = [
        "### Compression (issue 7)",
        "",
        f"Digits CNN ({len(splits.X_train)} training, {len(splits.X_valid)} validation "
        "images), single thread, latency = median of up to 50 calls on prepared inputs.",
        "",
        "| version | size KB | parameters | ms @1 | ms @64 | accuracy | gate |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.method} | {row.size_bytes / 1024:.1f} | {row.parameters or '-'} | "
            f"{row.latency_ms['1']:.3f} | {row.latency_ms['64']:.3f} | "
            f"{acc[row.method]:.4f} | {row.decision} |"
        )
    lines += [
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        f"| ONNX fp32 ≥ 2× faster than torch eager @1, outputs within 1e-4 | {fp32_speed:.2f}×, "
        f"max abs diff {onnx_row.parity['max_abs_diff']:.1e} | "
        f"{_verdict(fp32_speed >= 2 and onnx_row.parity['max_abs_diff'] <= 1e-4)} |",
        f"| static int8 ≥ 3× smaller than fp32 | {int8_smaller:.2f}× | "
        f"{_verdict(int8_smaller >= 3)} |",
        f"| static int8 ≥ 2× faster @64 | {int8_faster:.2f}× | {_verdict(int8_faster >= 2)} |",
        f"| static int8 within 1 point | {100 * (acc['int8-static'] - acc['parent']):+.2f} pts | "
        f"{_verdict(acc['int8-static'] >= acc['parent'] - 0.01)} |",
        f"| student ≥ 5× fewer parameters, within 2 points | {fewer:.1f}×, "
        f"{100 * (acc['distill'] - acc['parent']):+.2f} pts | "
        f"{_verdict(fewer >= 5 and acc['distill'] >= acc['parent'] - 0.02)} |",
        f"| structured pruning ≥ 2× smaller, within 2 points | {pruned_smaller:.2f}×, "
        f"{100 * (acc['prune-structured'] - acc['parent']):+.2f} pts | "
        f"{_verdict(pruned_smaller >= 2 and acc['prune-structured'] >= acc['parent'] - 0.02)} |",
        f"| torch dynamic int8 (no target): size, speed vs torch eager @1 / @64, accuracy | "
        f"{dynamic_smaller:.2f}× smaller, "
        f"{dynamic_faster['1']:.2f}× / {dynamic_faster['64']:.2f}×, "
        f"{100 * (acc['torch-int8-dynamic'] - acc['parent']):+.2f} pts | - |",
        "",
        f"Static int8 candidates timed @64 (chosen: {'+'.join(int8_row.details['op_types'])}): "
        f"{candidates}.",
        *tabular,
        "",
        f"Machine shared with other jobs (2 cores): timings are noisy. numpy {np.__version__}.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
