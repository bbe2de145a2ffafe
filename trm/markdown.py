"""Markdown tables: the one formatter behind model cards, Tune result tables, Prefect artifacts and benchmarks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def cell(value: Any, float_format: str = ".4g") -> str:
    """One table cell: floats formatted, None empty, pipes escaped and newlines flattened so the row survives."""
    if value is None:
        return ""
    if isinstance(value, float):
        return format(value, float_format)
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], float_format: str = ".4g") -> str:
    """A GitHub-flavoured markdown table (no trailing newline)."""
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c, float_format) for c in row) + " |" for row in rows]
    return "\n".join(lines)
