"""A large ``sample(n)`` drawn in parts and joined, so that its cost per row does not grow
with ``n``.

A generator draws a table through several whole-table intermediates (stacked matrices,
consolidated pandas blocks, the copy guard's fingerprints). Past a few hundred megabytes each
of them is a fresh allocation that the kernel has to fault in, and their passes no longer
share the CPU's caches: measured on 1,000,000 rows x 50 columns (``benchmarks/scale.py``), one
whole draw cost 20-25 % more per row than a 500,000-row one. Drawing parts of a bounded number
of cells, one after the other from the same random stream, and joining them once keeps every
intermediate small, so sampling time is linear in the rows and the peak memory of a draw is
the output plus one part.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pandas as pd

#: Cells (rows x columns) of one part of a large ``sample(n)``: about 80 MB at 8 bytes a
#: cell. Read at each call, so it can be overridden.
SAMPLE_PART_CELLS = 10_000_000

#: Fewest rows of a part, however wide the table (a part has fixed costs of its own).
MIN_PART_ROWS = 10_000


def part_rows(columns: int) -> int:
    """Rows per part for a table of ``columns`` columns."""
    return max(MIN_PART_ROWS, SAMPLE_PART_CELLS // max(int(columns), 1))


def draw_in_parts(draw: Callable[[int], pd.DataFrame], n: int, columns: int) -> pd.DataFrame:
    """``draw(n)``, or for ``n`` above :func:`part_rows` the parts ``draw(k)`` joined in order.

    Each warning that the parts raise is shown once (the first part's), not once per part.
    """
    size = part_rows(columns)
    if n <= size:
        return draw(n)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parts = [draw(min(size, n - start)) for start in range(0, n, size)]
    shown: set[tuple] = set()
    for warning in caught:
        key = (warning.category, warning.filename, warning.lineno)
        if key not in shown:
            shown.add(key)
            # Re-issued through the caller's filters, which the recording above bypassed.
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    return pd.concat(parts, ignore_index=True)
