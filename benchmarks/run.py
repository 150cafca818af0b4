"""Run every benchmark and append the results, with machine info, to docs/benchmarks.md.

Usage: ``python benchmarks/run.py [NAME ...]`` where NAME is a module's suffix
(``pipeline`` for ``bench_pipeline.py``); no names runs them all.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "docs" / "benchmarks.md"
HEADER = "# Benchmarks\n\nAppended by `make bench` (`python benchmarks/run.py`); newest last.\n"


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(HERE))
    from _machine import machine_info

    names = argv or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    sections = [f"## Run of {machine_info()}", ""]
    for name in names:
        module = importlib.import_module(f"bench_{name}")
        print(f"running {name} …", file=sys.stderr, flush=True)
        section = module.main()
        print(section)
        sections += [section, ""]
    if not RESULTS.exists():
        RESULTS.write_text(HEADER, encoding="utf-8")
    with RESULTS.open("a", encoding="utf-8") as handle:
        handle.write("\n" + "\n".join(sections))
    print(f"appended to {RESULTS.relative_to(HERE.parent)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
