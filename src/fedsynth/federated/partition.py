"""Partitions: the table of each site, from a site column, from files, or simulated.

A partition is an ordered mapping ``{site name: DataFrame}``. Real federations have one file (or
one database extract) per hospital; experiments also simulate sites from one table, either IID
(rows dealt at random) or non-IID with a Dirichlet split over a chosen column, the usual way to
make sites whose case mix differs (Hsu et al. 2019).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fedsynth.exceptions import InvalidDataError, Problem

Partitions = dict[str, pd.DataFrame]


def by_column(data: pd.DataFrame, column: str, *, drop: bool = False) -> Partitions:
    """One partition per value of ``column`` (e.g. the hospital), in order of first appearance.

    Parameters
    ----------
    data : DataFrame
        The pooled table.
    column : str
        The column naming each row's site; rows where it is missing are refused.
    drop : bool, default False
        Remove ``column`` from the partitions.

    Examples
    --------
    >>> df = pd.DataFrame({"site": ["a", "b", "a"], "age": [61, 70, 55]})
    >>> {name: len(part) for name, part in by_column(df, "site").items()}
    {'a': 2, 'b': 1}
    """
    if column not in data.columns:
        raise InvalidDataError([Problem(column, "named as the site column but not in the table")])
    missing = int(data[column].isna().sum())
    if missing:
        raise InvalidDataError(
            [Problem(column, f"{missing} row(s) have no site; every row needs one")]
        )
    parts: Partitions = {}
    for value in pd.unique(data[column]):
        part = data[data[column] == value]
        parts[str(value)] = (part.drop(columns=column) if drop else part).reset_index(drop=True)
    return parts


def from_files(
    paths: Sequence[str | os.PathLike], names: Sequence[str] | None = None
) -> Partitions:
    """Read one table per site (CSV/TSV/Parquet); sites are named after the file stems.

    Raises
    ------
    InvalidDataError
        When a file cannot be read, or two sites would get the same name.
    """
    from fedsynth.tabular.io import read_table

    paths = [Path(p) for p in paths]
    names = [p.stem for p in paths] if names is None else [str(n) for n in names]
    if len(names) != len(paths):
        raise ValueError(f"got {len(paths)} files but {len(names)} site names")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InvalidDataError(
            [Problem(None, f"several files give the site name(s) {repeated}; rename them")]
        )
    return {name: read_table(path) for name, path in zip(names, paths, strict=True)}


def split_iid(data: pd.DataFrame, n_sites: int, *, seed: int = 0) -> Partitions:
    """Deal the rows at random into ``n_sites`` sites of (nearly) equal size.

    Examples
    --------
    >>> df = pd.DataFrame({"x": range(10)})
    >>> [len(p) for p in split_iid(df, 3, seed=0).values()]
    [4, 3, 3]
    """
    _check_n_sites(data, n_sites)
    order = np.random.default_rng(seed).permutation(len(data))
    return {
        f"site_{i + 1}": data.iloc[np.sort(rows)].reset_index(drop=True)
        for i, rows in enumerate(np.array_split(order, n_sites))
    }


def split_dirichlet(
    data: pd.DataFrame,
    n_sites: int,
    column: str,
    *,
    alpha: float = 0.5,
    seed: int = 0,
    min_rows: int = 10,
) -> Partitions:
    """Non-IID sites: each value of ``column`` is spread over the sites in Dirichlet proportions.

    For every value ``v`` of ``column`` (a numeric column is cut into quintiles first), site
    shares ``p ~ Dirichlet(alpha)`` are drawn and the rows holding ``v`` are dealt in those
    shares. A small ``alpha`` gives sites with very different case mixes, a large one nearly IID
    sites. Draws are repeated (at most 100 times) until every site holds ``min_rows`` rows.

    Parameters
    ----------
    data : DataFrame
        The pooled table.
    n_sites : int
        Number of sites.
    column : str
        The column whose distribution differs between sites (e.g. a risk category).
    alpha : float, default 0.5
        Concentration of the Dirichlet distribution.
    seed : int, default 0
        Seed of the split.
    min_rows : int, default 10
        Fewest rows a site may get.

    Examples
    --------
    >>> df = pd.DataFrame({"risk": ["low"] * 60 + ["high"] * 40})
    >>> parts = split_dirichlet(df, 2, "risk", alpha=0.3, seed=1)
    >>> sum(len(p) for p in parts.values())
    100
    """
    _check_n_sites(data, n_sites)
    if column not in data.columns:
        raise InvalidDataError([Problem(column, "named as the split column but not in the table")])
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha!r}")
    if n_sites * min_rows > len(data):
        raise ValueError(f"{len(data)} rows cannot give {n_sites} sites of {min_rows} rows each")
    values = data[column]
    if pd.api.types.is_numeric_dtype(values) and values.nunique() > 10:
        values = pd.qcut(values, 5, duplicates="drop")
    groups = values.astype(object).where(values.notna(), "\x00missing")
    rng = np.random.default_rng(seed)
    for _ in range(100):
        site_of_row = np.empty(len(data), dtype=np.int64)
        for value in pd.unique(groups):
            rows = rng.permutation(np.flatnonzero((groups == value).to_numpy()))
            shares = rng.dirichlet(np.full(n_sites, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(rows)).round().astype(int)
            for site, part in enumerate(np.split(rows, cuts)):
                site_of_row[part] = site
        sizes = np.bincount(site_of_row, minlength=n_sites)
        if sizes.min() >= min_rows:
            return {
                f"site_{i + 1}": data.iloc[np.flatnonzero(site_of_row == i)].reset_index(drop=True)
                for i in range(n_sites)
            }
    raise ValueError(
        f"no Dirichlet split with alpha={alpha} gave every site {min_rows} rows in 100 draws; "
        "raise alpha or lower min_rows"
    )


def check_partitions(partitions: Mapping[str, pd.DataFrame]) -> Partitions:
    """The partitions as a plain dict, after checking that there are at least two non-empty ones.

    Raises
    ------
    InvalidDataError
        Naming each site that is not a non-empty DataFrame.
    """
    if not isinstance(partitions, Mapping):
        raise InvalidDataError(
            [Problem(None, "partitions must be a mapping {site name: DataFrame}")]
        )
    problems = [
        Problem(None, f"site {name!r}: expected a non-empty DataFrame")
        for name, part in partitions.items()
        if not isinstance(part, pd.DataFrame) or part.empty
    ]
    if len(partitions) < 2:
        problems.append(
            Problem(None, f"a federation needs at least 2 sites, got {len(partitions)}")
        )
    if problems:
        raise InvalidDataError(problems)
    return {str(name): part for name, part in partitions.items()}


def _check_n_sites(data: pd.DataFrame, n_sites: int) -> None:
    if isinstance(n_sites, bool) or not isinstance(n_sites, int) or n_sites < 2:
        raise ValueError(f"n_sites must be an integer >= 2, got {n_sites!r}")
    if n_sites > len(data):
        raise ValueError(f"cannot split {len(data)} rows into {n_sites} sites")
