"""The progress bar of a training run (rich), with each epoch's losses."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def training_progress(
    enabled: bool, title: str, epochs: int
) -> Iterator[Callable[[int, dict[str, float]], None]]:
    """Yield ``advance(epoch, losses)``; a rich progress bar with the losses when enabled."""
    if not enabled or os.environ.get("FEDSYNTH_NO_PROGRESS"):
        yield lambda epoch, losses: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[losses]}"),
    )
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task(title, total=epochs, losses="")

        def advance(epoch: int, losses: dict[str, float]) -> None:
            text = "  ".join(f"{k} {v:.4f}" for k, v in losses.items())
            progress.update(task, completed=epoch, losses=text)

        yield advance
