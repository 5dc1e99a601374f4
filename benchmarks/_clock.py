"""Wall and CPU time of a fit and a draw, shared by both sides of the generator benchmark.

Standard library only at import time: the SDV environment imports it too.
"""

from __future__ import annotations

import resource
import time


class Clock:
    """Wall and CPU seconds (all threads of this process) of a ``with`` block.

    CPU seconds are what a shared machine does not distort: wall time grows with whatever else
    runs, the work a fit needs does not.
    """

    wall: float
    cpu: float

    def __enter__(self) -> Clock:
        self._wall, self._cpu = time.perf_counter(), _cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = _cpu_seconds() - self._cpu


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def preload_torch_optimiser_imports() -> None:
    """Import what torch imports lazily for the first optimiser, before a fit's clock starts.

    torch loads its compiler stack (``torch._dynamo``, about 1 CPU s here) when an optimiser is
    first built or steps, whichever library builds it: a once-per-process import, as importing
    SDV or fedsynth is, not part of a fit. Both sides call this before timing a neural fit.
    """
    import torch._dynamo  # noqa: F401


#: Rows of the draw that measures sampling speed: large enough that a draw's fixed costs (set-up,
#: checks) do not dominate, as they would for a table of a few thousand rows.
THROUGHPUT_ROWS = 100_000


def timings(fit: Clock, sample: Clock, rows: int) -> dict[str, float]:
    """What one child process reports: fit and sampling speed (``rows`` drawn in ``sample``),
    and its peak memory."""
    return {
        "fit_s": fit.wall,
        "fit_cpu_s": fit.cpu,
        "sample_rows_per_s": rows / sample.wall,
        "sample_rows_per_cpu_s": rows / max(sample.cpu, 1e-3),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
