"""Data commands: ``profile``, ``validate`` and ``schema infer``.

``validate`` exits 0 when no anomaly has error severity, 1 when one does, and 2 for a usage
or file error (one red line).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from readyml import _console as console
from readyml.cli._common import FormatOpt, ProjectOpt, cli_errors, output_format, write_output
from readyml.errors import DataError, SchemaError

if TYPE_CHECKING:
    from readyml.data import ColumnProfile, Profile, Schema

app = typer.Typer(no_args_is_help=True, help="Profile and validate data; infer its schema.")
schema_app = typer.Typer(no_args_is_help=True, help="The feature schema (schema.yaml).")
app.add_typer(schema_app, name="schema")

DataArg = Annotated[Path, typer.Argument(help="A CSV or Parquet file, or a glob of them.")]
PROFILE_SUFFIXES = (".json",)  # a reference with this suffix is a saved profile


@app.command("profile")
@cli_errors
def profile(
    data: DataArg,
    out: Annotated[Path | None, typer.Option(help="Write the profile JSON to this file.")] = None,
    fmt: FormatOpt = "text",
) -> None:
    """Profile every column: counts, nulls, range, quantiles, distinct values, top values."""
    from readyml.data import profile_file

    output = output_format(fmt)
    result = profile_file(data)
    if out is not None:
        write_output(out, result.to_json())
    if output == "json":
        console.print_json(result.to_dict())
        return
    rows = []
    for column in result.columns.values():
        # Past the sketch's capacity a count is the least it can be.
        least = "≥" if column.frequency_error else ""
        top = ", ".join(f"{v} ({least}{c})" for v, c in column.top(3)) if not column.numeric else ""
        rows.append(
            [
                column.name,
                column.type,
                column.count,
                column.missing,
                column.distinct,
                _statistic(column, column.min),
                _statistic(column, column.max),
                _statistic(column, column.mean),
                _spread(column.type, column.std),
                top,
            ]
        )
    console.table(
        f"{result.n_rows} rows x {len(result.columns)} columns",
        ["column", "type", "rows", "missing", "distinct", "min", "max", "mean", "std", "top"],
        rows,
    )
    if out is not None:
        console.stdout.print(f"wrote {out}")


@app.command("validate")
@cli_errors
def validate(
    data: DataArg,
    against: Annotated[
        Path | None,
        typer.Option(
            help="Reference: a data file or a saved profile (.json); drift, and the schema "
            "when --schema is not given."
        ),
    ] = None,
    schema: Annotated[Path | None, typer.Option(help="Schema YAML to check against.")] = None,
    duplicates: Annotated[
        bool, typer.Option("--duplicates", help="Also look for duplicate rows.")
    ] = False,
    fmt: FormatOpt = "text",
) -> None:
    """Check data against a schema and a reference; exit 1 when an error anomaly is found.

    With ``--against`` and no ``--schema``, the schema is inferred from the reference, as
    TFDV does with training statistics: a column missing, of another type, with nulls or a
    category the reference never had is an anomaly, besides drift. The reference's observed
    ranges are left out: new data of a continuous column passes them by chance alone (a
    reviewed schema.yaml states real bounds).
    """
    from readyml.data import ValidationOptions, infer_schema, load_schema, validate_file

    output = output_format(fmt)
    checked = load_schema(schema) if schema is not None else None
    reference = _reference(against) if against is not None else None
    if reference is not None and reference.n_rows == 0:
        # A header alone types every column float: each check against it would be noise.
        raise DataError(f"--against {against}: expected a reference with rows, found none")
    if checked is None and reference is not None:
        checked = infer_schema(reference, label=None)
        for feature in checked.features:
            feature.min = feature.max = None
    report = validate_file(
        data,
        schema=checked,
        reference=reference,
        options=ValidationOptions(check_duplicates=duplicates),
    )
    if output == "json":
        console.print_json(report.to_dict())
    elif report.anomalies:
        console.stdout.print(report.to_table())
    else:
        console.stdout.print(f"{report.n_rows} rows x {report.n_columns} columns: no anomalies")
    if not report.ok:
        raise typer.Exit(code=1)


@schema_app.command("infer")
@cli_errors
def schema_infer(
    data: DataArg,
    project: ProjectOpt = Path("."),
    out: Annotated[
        Path | None, typer.Option(help="Write here instead of the project's schema.yaml.")
    ] = None,
    label: Annotated[
        str | None, typer.Option(help="Label column (default: the project's label).")
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Re-infer the features already in the file too (type, nullable, range, "
            "categories), keeping their descriptions, meta, required flags and comments; "
            "drop those no longer in the data."
        ),
    ] = False,
    max_categories: Annotated[
        int,
        typer.Option(min=0, help="Text columns with at most this many values are categories."),
    ] = 50,
) -> None:
    """Infer the schema from data and write it; features already in the file are kept.

    An existing file is edited in place: its comments and layout stay.
    """
    from readyml.data import infer_schema, profile_file, refresh_schema, write_schema

    target = out
    if target is None:
        from readyml.config import Project
        from readyml.train.steps import SCHEMA_FILE

        loaded = Project.load(project)
        target = loaded.root / SCHEMA_FILE
        label = label if label is not None else loaded.spec.label
    old = _existing_schema(target, overwrite=overwrite)
    profile = profile_file(data)
    if profile.n_rows == 0:  # every column would be inferred from nothing
        raise DataError(f"{data}: expected data rows to infer a schema from, found none")
    inferred = infer_schema(profile, label=label, max_categories=max_categories)
    if overwrite and old is not None:
        inferred = refresh_schema(old, inferred)
    written = write_schema(inferred, target, overwrite=overwrite)
    before = set(old.names) if old is not None else set()
    added = len([n for n in written.names if n not in before])
    if overwrite:
        dropped = len(before - set(written.names))
        detail = (
            f"{added} new, {len(written.features) - added} re-inferred keeping what was "
            f"written about them, {dropped} dropped as not in the data"
        )
    else:
        detail = f"{added} new, {len(written.features) - added} kept as written"
    console.stdout.print(f"wrote {target}: {len(written.features)} features ({detail})")


def _existing_schema(path: Path, *, overwrite: bool) -> Schema | None:
    """The schema already at ``path``; with ``overwrite``, ``None`` for a malformed one."""
    from readyml.data import load_schema

    if not path.exists():
        return None
    try:
        return load_schema(path)
    except SchemaError:
        if overwrite:  # replaced as a whole, as before
            return None
        raise


def _reference(path: Path) -> Profile:
    from readyml.data import Profile, profile_file

    if path.suffix.lower() not in PROFILE_SUFFIXES:
        return profile_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DataError(f"profile file '{path}' not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"profile file '{path}': cannot read it ({exc})") from exc
    try:
        return Profile.from_json(text)
    except DataError as exc:
        raise DataError(f"profile file '{path}': {exc}") from exc


def _statistic(column: ColumnProfile, value: float | None) -> str:
    """A number as text; a datetime column's (nanoseconds since the epoch) as ISO 8601."""
    if value is None:
        return ""
    if column.type == "datetime":
        return _timestamp(value, column.timezone)
    return f"{value:.6g}"


def _spread(kind: str, value: float | None) -> str:
    """A standard deviation as text; a datetime column's (nanoseconds) as a duration."""
    if value is None:
        return ""
    if kind == "datetime":
        return _duration(value)
    return f"{value:.6g}"


def _timestamp(nanoseconds: float, timezone: str | None) -> str:
    import numpy as np
    import pandas as pd

    try:  # a float holds nanoseconds near today to 256 ns: microseconds are what is known
        stamp = pd.Timestamp(round(nanoseconds), unit="ns").round("us")
        if timezone is not None:
            stamp = stamp.tz_localize("UTC").tz_convert(timezone)
    except (OverflowError, ValueError):  # outside pandas' range (years 1677 to 2262), as UTC
        return str(np.datetime_as_string(np.datetime64(round(nanoseconds / 1e3), "us"), "s"))
    return stamp.isoformat(timespec="seconds" if stamp.microsecond == 0 else "microseconds")


def _duration(nanoseconds: float) -> str:
    import pandas as pd

    try:
        span = pd.Timedelta(round(nanoseconds), unit="ns")
    except (OverflowError, ValueError):  # over 292 years
        return f"{nanoseconds / 86_400e9:.6g} days"
    if span >= pd.Timedelta(seconds=1):
        span = span.round("s")
    return str(span)


__all__ = ["app", "schema_app"]
