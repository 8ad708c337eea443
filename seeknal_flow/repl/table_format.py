"""Plain-text tables for the terminal (REPL, dry-run)."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Sequence


def render_value(value: object) -> str:
    """Text of one cell: NULL for None, floats without noise.

    >>> render_value(None), render_value(1.5), render_value(dt.date(2026, 1, 2))
    ('NULL', '1.5', '2026-01-02')
    """
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.10g}"
    if isinstance(value, decimal.Decimal | dt.date | dt.datetime):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {render_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def render_table(columns: Sequence[str], rows: Sequence[Sequence[object]], max_width: int = 40) -> str:
    """An aligned table with a header rule.

    >>> print(render_table(["a", "b"], [(1, "x"), (22, None)]))
    a   b
    --  ----
    1   x
    22  NULL
    """
    cells = [[_clip(render_value(v), max_width) for v in row] for row in rows]
    widths = [len(c) for c in columns]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
