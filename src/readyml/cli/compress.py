"""``readyml compress``: compress a registered version; every result becomes a gated version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from readyml import _console as console
from readyml.cli._common import ProjectOpt, cli_errors, output_folder, output_format

app = typer.Typer(help="Compress a registered model version.")


@app.command("compress")
@cli_errors
def compress(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS to compress.")],
    to_format: Annotated[
        str | None, typer.Option("--format", help="Export to 'onnx' or 'ort' (mobile).")
    ] = None,
    quantize: Annotated[
        str | None,
        typer.Option(
            help="'int8' (ONNX Runtime, after an ONNX export) or 'torch-int8' (torch's own "
            "dynamic int8 of Linear/LSTM/GRU layers; stays a torch version)."
        ),
    ] = None,
    static: Annotated[
        bool,
        typer.Option("--static", help="Static int8 (ONNX Runtime), calibrated on training rows."),
    ] = False,
    calibration: Annotated[int, typer.Option(help="Calibration rows for --static.")] = 256,
    prune: Annotated[
        float | None, typer.Option(help="Target sparsity in (0, 1), torch models.")
    ] = None,
    structured: Annotated[
        bool, typer.Option("--structured", help="Remove whole neurons and channels.")
    ] = False,
    fine_tune: Annotated[int, typer.Option(help="Fine-tuning epochs after pruning.")] = 0,
    distill: Annotated[
        str | None, typer.Option(help="Student: 'mlp[:W,W]', 'tree[:DEPTH]' or module:function.")
    ] = None,
    temperature: Annotated[float, typer.Option(help="Distillation temperature.")] = 2.0,
    soft_weight: Annotated[float, typer.Option(help="Weight of the soft targets.")] = 0.7,
    max_loss: Annotated[
        float, typer.Option(help="Largest loss of the primary metric allowed vs the parent.")
    ] = 0.01,
    max_slice_loss: Annotated[float, typer.Option(help="The same, per slice.")] = 0.05,
    out: Annotated[
        Path | None,
        typer.Option(help="Report folder (default: WORKSPACE/reports/compress-NAME-vN-to-vM)."),
    ] = None,
    project: ProjectOpt = Path("."),
    output: Annotated[str, typer.Option("--output", help="Output: text or json.")] = "text",
) -> None:
    """Export, quantize, prune or distil a version; register, gate and measure every result.

    Exits 1 when the gate vetoed a result (it is registered, with status vetoed).
    """
    from readyml.compress import Methods, compress_version
    from readyml.compress.splits import version_splits
    from readyml.config import Project
    from readyml.errors import ConfigError
    from readyml.train import open_project_registry

    fmt = output_format(output, "--output")
    for option, value in (("--max-loss", max_loss), ("--max-slice-loss", max_slice_loss)):
        if not value >= 0.0:  # before any work: a negative bound would fail only at the gate
            raise ConfigError(f"{option}: expected a loss of 0 or more, found {value}")
    if out is not None:  # before anything is registered
        output_folder(out)
    loaded = Project.load(project)
    registry = open_project_registry(loaded)
    parent = registry.get(ref)
    methods = Methods(
        format=to_format,
        quantize=quantize,
        static=static,
        calibration=calibration,
        prune=prune,
        structured=structured,
        fine_tune_epochs=fine_tune,
        distill=distill,
        temperature=temperature,
        soft_weight=soft_weight,
    ).check()
    report = compress_version(
        registry,
        parent.ref,
        version_splits(registry, parent, loaded.spec),
        methods,
        gates=loaded.spec.gates,
        primary=loaded.spec.metrics.primary,
        max_quality_loss=max_loss,
        max_slice_loss=max_slice_loss,
        trusted_types=loaded.trusted_types(),
    )
    # Named after the first version it made too: a second compression of the same parent
    # must not overwrite the first one's report (unless it made nothing new).
    made = [row for row in report.rows[1:] if not row.details.get("already_registered")]
    first = (made or report.rows[1:])[0].ref.rpartition(":")[2]
    folder = (
        out
        or loaded.workspace / "reports" / f"compress-{parent.name}-v{parent.version}-to-v{first}"
    )
    report.write(folder)
    if fmt == "json":
        console.print_json(report.to_dict())
    else:
        header, *rows = report.table()
        console.table(f"compression of {report.parent}", header, rows)
        console.stdout.print(f"report: {folder}")
    if report.vetoed:
        raise typer.Exit(code=1)
