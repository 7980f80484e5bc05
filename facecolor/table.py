"""Plain-text tables for people: the bench's report and throughput, train's eval table."""

from __future__ import annotations

from collections.abc import Sequence


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]],
                 right: Sequence[bool] | None = None) -> str:
    """A header, a rule, the rows. By default, all columns but the first (a name) and the last
    (a status) align right."""
    right = right or [False, *[True] * (len(headers) - 2), False]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    if not right[-1]:  # a left-aligned last column (statuses) needs no padding, nor a long rule
        widths[-1] = len(headers[-1])

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])
