"""Matching a labels table to image files, shared by the loaders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import pandas as pd

from fedsynth.exceptions import ImageDataError


def read_labels(labels: pd.DataFrame | str | Path | None, file_column: str) -> pd.DataFrame | None:
    """The labels as a DataFrame (read from CSV when a path), checked for the file column."""
    if labels is None:
        return None
    if not isinstance(labels, pd.DataFrame):
        path = Path(labels)
        try:
            labels = pd.read_csv(path)
        except (OSError, ValueError) as error:
            raise ImageDataError([f"labels file {str(path)!r} cannot be read: {error}"]) from error
    if file_column not in labels.columns:
        # A semicolon- or tab-separated file reads as one column whose name holds them all.
        joined = [mark for mark in (";", "\t") if any(mark in str(c) for c in labels.columns)]
        hint = (
            f"; the file looks {'semicolon' if joined[0] == ';' else 'tab'}-separated: save it "
            "with commas between the columns"
            if joined and len(labels.columns) == 1
            else ""
        )
        raise ImageDataError(
            [
                f"labels have no column {file_column!r} naming each image's file; "
                f"columns are {list(labels.columns)}{hint}"
            ]
        )
    return labels


def match_labels(
    keys: Sequence[str], labels: pd.DataFrame | None, file_column: str
) -> pd.DataFrame:
    """Label rows in the order of ``keys`` (file names); every file needs exactly one row.

    A row matches a file by its name relative to the folder or by its base name.

    Raises
    ------
    ImageDataError
        Listing the files without a label row, the label rows without a file, and file names
        given in several rows.
    """
    if labels is None:
        return pd.DataFrame({file_column: list(keys)})
    # "./a.png" and "scans\\a.png" name the files "a.png" and "scans/a.png".
    names = (
        labels[file_column]
        .astype(str)
        .map(lambda s: PurePosixPath(s.replace("\\", "/")).as_posix())
    )
    problems = [
        f"file {name!r} is named in {count} label rows"
        for name, count in names.value_counts().items()
        if count > 1
    ]
    position = {name: i for i, name in enumerate(names)}
    rows: list[int] = []
    missing: list[str] = []
    for key in keys:
        row = position.get(key, position.get(Path(key).name))
        if row is None:
            missing.append(key)
        else:
            rows.append(row)
    if missing:
        problems.append(f"{len(missing)} image file(s) without a label row: {_list(missing)}")
    unused = sorted(set(range(len(names))) - set(rows))
    if unused:
        problems.append(
            f"{len(unused)} label row(s) name a file that is not among the images: "
            f"{_list([names.iloc[i] for i in unused])}"
        )
    if problems:
        raise ImageDataError(problems)
    return labels.iloc[rows].reset_index(drop=True)


def _list(names: Sequence[str], most: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def check_same_shape(shapes: dict[str, tuple[int, ...]], what: str = "shape") -> None:
    """Raise when the files' arrays differ in shape, naming the files off the commonest one."""
    counts = pd.Series([str(s) for s in shapes.values()]).value_counts()
    if len(counts) <= 1:
        return
    common = counts.index[0]
    odd = [f"{name!r} {what} {s}" for name, s in shapes.items() if str(s) != common]
    raise ImageDataError(
        [
            f"images must share one {what}; most are {common}, but "
            f"{len(odd)} differ: {', '.join(odd[:8])}{' ...' if len(odd) > 8 else ''}"
        ]
    )
