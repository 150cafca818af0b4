"""``readyml batch-predict``: score a Parquet data set with a registered version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from readyml import _console as console
from readyml.cli._common import FormatOpt, ProjectOpt, cli_errors, output_format

app = typer.Typer(help="Batch prediction.")


@app.command("batch-predict")
@cli_errors
def batch_predict(
    model: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    source: Annotated[Path, typer.Argument(metavar="INPUT", help="The Parquet file to score.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The Parquet file to write.")],
    project: ProjectOpt = Path("."),
    engine: Annotated[
        str,
        typer.Option(
            help="local (this process), ray (Ray Data; extra 'ray'), or auto: ray when a "
            "cluster address is given (--ray-address or RAY_ADDRESS), else local."
        ),
    ] = "auto",
    batch_rows: Annotated[int, typer.Option(help="Rows per batch.")] = 65_536,
    keep: Annotated[
        list[str] | None,
        typer.Option("--keep", "-k", help="Input column copied to the output (repeat)."),
    ] = None,
    row_id: Annotated[
        bool, typer.Option("--row-id", help="Add row_id, each row's position in the input.")
    ] = False,
    runtime: Annotated[str, typer.Option(help="native, onnx or auto.")] = "native",
    actors: Annotated[
        int | None, typer.Option(help="Ray actors scoring in parallel; default: one per CPU.")
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(help="An existing Ray cluster (auto, HOST:PORT, ray://HOST:PORT)."),
    ] = None,
    fmt: FormatOpt = "text",
) -> None:
    """Score every row of a Parquet file and write predictions (and probabilities) to --out.

    The file is read in batches, never whole; the output holds the --keep columns, then
    `prediction`, then `proba_<class>` for classifiers, in the input's row order.
    """
    from readyml.config import Project
    from readyml.predict.batch import BatchPrediction

    kind = output_format(fmt)
    job = BatchPrediction(
        engine=engine,
        batch_rows=batch_rows,
        keep=keep or [],
        row_id=row_id,
        runtime=runtime,
        actors=actors,
        ray_address=ray_address,
    )
    result = job.run(Project.load(project), model, source, out)
    if kind == "json":
        console.print_json(result.to_dict())
        return
    console.stdout.print(
        f"batch-predict: {result.rows:,} rows scored with {result.model} on {result.engine} "
        f"in {result.seconds:.1f} s → {result.out}"
    )
