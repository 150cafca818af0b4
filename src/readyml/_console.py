"""Terminal rendering for the CLI: one place for rich tables, JSON output and error lines."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

# Width of output that goes to a pipe or file (CI logs): rich's default of 80 columns cut
# every table's cells to "wine…". A terminal, or COLUMNS, keeps its own width.
PIPED_WIDTH = 200


def _width(stream: Any) -> int | None:
    isatty = getattr(stream, "isatty", None)
    return None if "COLUMNS" in os.environ or (isatty is not None and isatty()) else PIPED_WIDTH


stdout = Console(highlight=False, soft_wrap=True, width=_width(sys.stdout))
stderr = Console(stderr=True, highlight=False, soft_wrap=True, width=_width(sys.stderr))


def print_json(value: Any, *, one_line: bool = False) -> None:
    """Write ``value`` as indented JSON on stdout (plain, no colour, for machines);
    ``one_line`` writes one line instead, for a stream of JSON Lines."""
    text = json.dumps(value, default=str) if one_line else json.dumps(value, indent=2, default=str)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def error_line(message: str) -> None:
    """One red line on stderr (the message is plain text: ``readyml[ray]`` stays as written)."""
    stderr.print(f"[red]error:[/] {escape(message)}", markup=True)


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    """Print a simple table on stdout; titles and cells are plain text, never markup
    (a column named ``price[usd]`` or a value like ``[/x]`` is shown as written), and a cell
    too long for its column wraps onto more lines rather than losing its end."""
    grid = Table(
        title=None if title is None else Text(title),
        title_justify="left",
        show_edge=False,
        pad_edge=False,
    )
    for column in columns:
        grid.add_column(Text(column), overflow="fold")  # a long path or id is wrapped, not cut
    for row in rows:
        grid.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    stdout.print(grid)


def key_values(title: str, pairs: list[tuple[str, Any]]) -> None:
    """Print ``key: value`` lines under a bold title; keys and values are plain text."""
    stdout.print(Text(title, style="bold"))
    width = max((len(k) for k, _ in pairs), default=0)
    for key, value in pairs:
        stdout.print(Text(f"  {key:<{width}}  {value}"))


def fmt_metric(value: Any) -> str:
    """A metric value with four decimals, or '-' when absent."""
    return f"{value:.4f}" if isinstance(value, int | float) else "-"
