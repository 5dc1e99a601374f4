"""Progress display for long steps of the command line (rich): spinners, bars, and the
progress events of a run (:mod:`fedsynth.core.progress`) as log lines above a bar."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from fedsynth.core.progress import ExperimentStarted, ProgressCallback, ProgressEvent, StepDone

console = Console()
error_console = Console(stderr=True)

#: Rows drawn per chunk when sampling with a progress bar.
SAMPLE_CHUNK = 50_000


@contextmanager
def step(description: str) -> Iterator[None]:
    """Show a spinner with elapsed time while the block runs, then a line with its duration."""
    start = time.perf_counter()
    with console.status(f"{description}..."):
        yield
    console.print(f"{description}: done in {time.perf_counter() - start:.1f} s")


def make_generator(name: str, **params: Any) -> Any:
    """``fedsynth.make`` that switches on the generator's own progress bar when it has one."""
    import fedsynth

    generator = fedsynth.make(name, **params)
    if "verbose" in generator.get_params() and "verbose" not in params:
        generator.set_params(verbose=True)
    return generator


@contextmanager
def fitting(generator: Any, description: str) -> Iterator[None]:
    """A spinner while fitting, or plain lines around the generator's own progress bar (rich
    allows one live display at a time)."""
    if not getattr(generator, "verbose", False):
        with step(description):
            yield
        return
    start = time.perf_counter()
    console.print(f"{description}...")
    yield
    console.print(f"{description}: done in {time.perf_counter() - start:.1f} s")


@contextmanager
def following(description: str, total: int | None = None) -> Iterator[ProgressCallback]:
    """A callback that follows a run's progress events: each event's message is printed, and a
    bar below the lines counts the steps done (references and rounds).

    Parameters
    ----------
    description : str
        The bar's text until the first event.
    total : int, optional
        Steps expected; an :class:`~fedsynth.core.progress.ExperimentStarted` sets it.

    Examples
    --------
    >>> from fedsynth.core.progress import RoundDone
    >>> with following("Federating", total=1) as show:  # doctest: +SKIP
    ...     show(RoundDone("fedavg", 1, 1))
    """
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)

        def show(event: ProgressEvent) -> None:
            if isinstance(event, ExperimentStarted):
                bar.update(task, total=event.steps)
            elif isinstance(event, StepDone):
                bar.advance(task)
            bar.update(task, description=event.label)
            # Site and strategy names are the user's: no rich markup read into them.
            bar.console.print(event.message, markup=False)

        yield show


def sample_blocks_with_progress(
    generator: Any, n: int, *, conditions: dict[str, Any] | None = None, seed: int | None = None
) -> Iterator[pd.DataFrame]:
    """``generator.sample_blocks`` of :data:`SAMPLE_CHUNK` rows under a progress bar of the rows
    drawn; the same seed gives the same rows. The bar lasts while the blocks are consumed."""
    blocks = generator.sample_blocks(
        n, block_size=SAMPLE_CHUNK, conditions=conditions or None, seed=seed
    )
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("Sampling rows", total=n)
        for block in blocks:
            yield block
            progress.advance(task, len(block))


def sample_with_progress(
    generator: Any, n: int, *, conditions: dict[str, Any] | None = None, seed: int | None = None
) -> pd.DataFrame:
    """:func:`sample_blocks_with_progress` gathered into one table (for tables that fit)."""
    parts = list(sample_blocks_with_progress(generator, n, conditions=conditions, seed=seed))
    if not parts:
        return generator.sample(0)
    return pd.concat(parts, ignore_index=True)
