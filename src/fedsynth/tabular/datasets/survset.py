"""Real survival datasets shipped offline by the ``SurvSet`` package, as fedsynth-ready frames.

SurvSet (Drysdale, 2022) bundles 77 public survival datasets with one naming scheme: ``pid`` (row
id), ``time``, ``event``, ``num_*`` (numeric) and ``fac_*`` (categorical, the string
``"missing"`` standing for a missing value). The loaders here turn that scheme into plain
columns and into a :class:`~fedsynth.tabular.metadata.Metadata` read from the prefixes. Nothing is
downloaded: the data are files inside the installed package.
"""

from __future__ import annotations

import difflib
import warnings

import numpy as np
import pandas as pd

from fedsynth.tabular.metadata import ColumnMetadata, Metadata

_NUM, _FAC = "num_", "fac_"
_MISSING = "missing"


def list_survset() -> pd.DataFrame:
    """The datasets shipped by SurvSet.

    Returns
    -------
    DataFrame
        One row per dataset: ``name``, ``n_rows``, ``n_numeric`` and ``n_factor`` (columns as
        counted by SurvSet, before :func:`load_survset` drops duplicated factors) and
        ``time_dependent`` (such datasets are refused by :func:`load_survset`).

    Examples
    --------
    >>> from fedsynth.datasets import list_survset
    >>> table = list_survset()
    >>> table.loc[table["name"] == "GBSG2", "n_rows"].item()
    686
    """
    table = _loader().df_ds
    return pd.DataFrame(
        {
            "name": table["ds"].astype(str),
            "n_rows": table["n"].astype("int64"),
            "n_numeric": table["n_num"].astype("int64"),
            "n_factor": table["n_fac"].astype("int64"),
            "time_dependent": table["is_td"].astype(bool),
        }
    ).reset_index(drop=True)


def load_survset(
    name: str, *, keep_id: bool = False, return_metadata: bool = False
) -> pd.DataFrame | tuple[pd.DataFrame, Metadata]:
    """Load one SurvSet dataset with plain column names and genuine missing values.

    Parameters
    ----------
    name : str
        The dataset, as in :func:`list_survset` (case-insensitive: ``"gbsg2"`` is ``"GBSG2"``).
    keep_id : bool, default False
        Keep SurvSet's ``pid`` row id (as an identifier column). It is dropped by default: it
        numbers the rows and carries no information.
    return_metadata : bool, default False
        Also return the metadata of the frame.

    Returns
    -------
    df : DataFrame
        ``time`` (the duration), ``event`` (1 = event, 0 = censored; ``follic`` codes two
        competing causes 1 and 2, modelled as competing risks), then the covariates with
        their ``num_``/``fac_`` prefixes removed:

        - numeric columns are kept as SurvSet stores them (float or integer, ``NaN`` missing);
        - factor columns whose levels are 0 and 1 become integer 0/1 columns (float with
          ``NaN`` when some are missing), read as binary;
        - other factor columns become pandas ``category`` columns whose labels are strings, in
          SurvSet's level order; the ``category`` dtype keeps a factor with number-like levels
          (a stage "1"-"4") from being read as a number.

        The ``"missing"`` level becomes ``NaN``. A factor that holds exactly the values of the
        numeric column of the same name (``num_co`` in ``support2``, ``sample_yr`` in
        ``flchain``) is dropped as a duplicate; a factor that differs from its numeric namesake
        is kept as ``<name>_factor``.
    metadata : Metadata
        Only with ``return_metadata=True``: kinds read from SurvSet's prefixes, not guessed
        (``time`` duration, ``event`` event, ``num_`` numeric, ``fac_`` categorical or binary,
        ``pid`` identifier), facts such as bounds and categories taken from the data.

    Raises
    ------
    ValueError
        For an unknown name (close matches are listed), and for datasets with time-dependent
        covariates (``is_td`` in SurvSet), which fedsynth does not model.

    Examples
    --------
    >>> from fedsynth.datasets import load_survset
    >>> df, metadata = load_survset("gbsg2", return_metadata=True)
    >>> df.shape
    (686, 10)
    >>> metadata.survival
    ('time', 'event')
    """
    loader = _loader()
    resolved = _resolve_name(name, loader.df_ds)
    with warnings.catch_warnings():
        # SurvSet's pickles name numpy.core, which numpy 2 renamed: harmless, and not the
        # caller's to act on.
        warnings.filterwarnings("ignore", message=r"numpy\.core", category=DeprecationWarning)
        raw = loader.load_dataset(resolved)["df"]
    kinds: dict[str, str] = {}
    columns: dict[str, pd.Series] = {}
    if keep_id:
        columns["pid"], kinds["pid"] = raw["pid"], "identifier"
    columns["time"], kinds["time"] = raw["time"], "duration"
    columns["event"], kinds["event"] = raw["event"], "event"
    for column in raw.columns:
        if column.startswith(_NUM):
            columns[column[len(_NUM) :]], kinds[column[len(_NUM) :]] = raw[column], "numeric"
    for column in raw.columns:
        if not column.startswith(_FAC):
            continue
        target = column[len(_FAC) :]
        values, kind = _factor(raw[column])
        if target in columns:
            if _same_values(values, columns[target]):
                continue
            target = f"{target}_factor"
        columns[target], kinds[target] = values, kind
    df = pd.DataFrame(columns)
    if not return_metadata:
        return df
    metadata = Metadata({c: ColumnMetadata(kind=k) for c, k in kinds.items()}).resolve(df)
    return df, metadata


def _loader():
    # Imported here: SurvSet loads its dataset table when imported, which `import fedsynth`
    # should not pay for.
    from SurvSet.data import SurvLoader

    return SurvLoader()


def _resolve_name(name: str, table: pd.DataFrame) -> str:
    """SurvSet's spelling of ``name``; unknown and time-dependent datasets raise ValueError."""
    if not isinstance(name, str):
        raise ValueError(f"name must be a string, got {type(name).__name__}")
    names = table["ds"].astype(str).tolist()
    by_lower = {n.lower(): n for n in names}
    resolved = name if name in names else by_lower.get(name.lower())
    if resolved is None:
        close = difflib.get_close_matches(name.lower(), list(by_lower), n=5, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(by_lower[c]) for c in close)}?" if close else ""
        raise ValueError(
            f"unknown SurvSet dataset {name!r}.{hint} "
            f"fedsynth.datasets.list_survset() lists the {len(names)} available datasets."
        )
    if bool(table.loc[table["ds"] == resolved, "is_td"].iloc[0]):
        raise ValueError(
            f"SurvSet dataset {resolved!r} has time-dependent covariates (several rows per "
            "patient, one per (time, time2] interval), which fedsynth's one-row-per-patient "
            "survival model does not support; choose a dataset whose time_dependent is False "
            "in list_survset()"
        )
    return resolved


def _factor(series: pd.Series) -> tuple[pd.Series, str]:
    """A SurvSet factor with ``"missing"`` made NaN: 0/1 levels as numbers, else string labels."""
    present = [level for level in series.cat.categories if level != _MISSING]
    codes = series.astype(object).where(series != _MISSING)
    if present and all(level in (0, 1, "0", "1") for level in present):
        numbers = pd.to_numeric(codes, errors="raise")
        return (numbers.astype("int64") if numbers.notna().all() else numbers), "binary"
    labels = pd.Categorical(
        codes.map(str, na_action="ignore"), categories=[str(level) for level in present]
    )
    return pd.Series(labels, index=series.index, name=series.name), "categorical"


def _same_values(factor: pd.Series, numeric: pd.Series) -> bool:
    """Whether a factor holds the numeric column's values, missing where it is missing."""
    as_numbers = pd.to_numeric(factor.astype(object), errors="coerce")
    both_missing = as_numbers.isna() & numeric.isna()
    return bool(np.all(both_missing | (as_numbers == numeric)))
