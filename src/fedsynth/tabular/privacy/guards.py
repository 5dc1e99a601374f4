"""Release guards: no synthetic row may be an exact copy of a training patient's row.

A generator keeps keyed 64-bit fingerprints of its training rows (on the learned columns) and
redraws any synthetic row whose fingerprint matches. A row shared by at least
:data:`COMMON_PROFILE_COUNT` training patients (a common profile of a coarse table, e.g. "no
mutation" on a gene panel) identifies none of them, as in k-anonymity, and is not refused:
refusing it would distort the data without protecting anyone.

The fingerprints are saved with the model so that a loaded model keeps the guard. They reveal
nothing about a patient to someone who does not already hold that patient's complete row, but
to such a person they answer "was this row in the training data?": treat a saved model as
being as sensitive as the data, unless trained with DP.
"""

from __future__ import annotations

import secrets
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from fedsynth.exceptions import DataWarning, FedsynthError

#: A training row shared by at least this many patients may appear in synthetic data (k = 5).
COMMON_PROFILE_COUNT = 5
#: Above this share of copies in a draw, the redraws distort the data enough to warn about.
REDRAW_WARNING_SHARE = 0.10


def _canonical(frame: pd.DataFrame, columns: Sequence[str], numeric: Sequence[str]) -> pd.DataFrame:
    """The same value gets the same representation whatever its dtype (1, 1.0 and True)."""
    out = {}
    for column in columns:
        values = frame[column]
        if column in numeric or pd.api.types.is_bool_dtype(values):
            out[column] = pd.to_numeric(values, errors="coerce").astype("float64")
            continue
        # Labels are converted once per distinct value, not once per row: parsing strings is
        # what made fingerprinting a large draw slow.
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        labels = pd.Series(np.asarray(uniques, dtype=object), dtype=object)
        numbers = pd.to_numeric(labels, errors="coerce")
        missing = codes < 0
        if not len(labels):  # nothing but missing values
            converted = np.full(len(values), np.nan)
        elif numbers.notna().all():  # numeric labels (0/1 flags)
            converted = numbers.to_numpy(np.float64)[np.where(missing, 0, codes)]
            converted[missing] = np.nan
        else:
            text = np.append(labels.astype(str).to_numpy(dtype=object), "\x00missing")
            converted = text[np.where(missing, len(labels), codes)]
        out[column] = converted
    return pd.DataFrame(out, index=frame.index)


def row_fingerprints(
    frame: pd.DataFrame, columns: Sequence[str], numeric: Sequence[str], key: str
) -> np.ndarray:
    """Keyed 64-bit fingerprint of each row of ``frame`` restricted to ``columns``."""
    canonical = _canonical(frame, columns, numeric)
    return pd.util.hash_pandas_object(canonical, index=False, hash_key=key).to_numpy(np.uint64)


class CopyGuard:
    """Fingerprints of the training rows, to refuse synthetic rows that copy one.

    Parameters
    ----------
    columns : list of str
        The learned columns (identifiers and constants excluded).
    numeric : list of str
        Columns compared as numbers.
    key : str, optional
        16-character hashing key; a random one is drawn when omitted.
    """

    def __init__(
        self,
        columns: Sequence[str],
        numeric: Sequence[str],
        key: str | None = None,
        fingerprints: np.ndarray | None = None,
    ):
        self.columns = list(columns)
        self.numeric = list(numeric)
        self.key = key or secrets.token_hex(8)
        self.fingerprints = np.empty(0, np.uint64) if fingerprints is None else fingerprints

    @classmethod
    def from_training(
        cls, data: pd.DataFrame, columns: Sequence[str], numeric: Sequence[str]
    ) -> CopyGuard:
        """Fingerprint the training rows."""
        guard = cls(columns, numeric)
        prints, counts = np.unique(
            row_fingerprints(data, columns, numeric, guard.key), return_counts=True
        )
        guard.fingerprints = prints[counts < COMMON_PROFILE_COUNT]
        return guard

    def add(self, data: pd.DataFrame) -> CopyGuard:
        """Also protect the rows of ``data`` (more training data, e.g. a warm-started fit)."""
        prints, counts = np.unique(
            row_fingerprints(data, self.columns, self.numeric, self.key), return_counts=True
        )
        self.fingerprints = np.union1d(self.fingerprints, prints[counts < COMMON_PROFILE_COUNT])
        return self

    def copies(self, synthetic: pd.DataFrame) -> np.ndarray:
        """Boolean mask of the synthetic rows that equal a training row."""
        if not self.columns or len(synthetic) == 0:
            return np.zeros(len(synthetic), dtype=bool)
        prints = row_fingerprints(synthetic, self.columns, self.numeric, self.key)
        return np.isin(prints, self.fingerprints)

    def enforce(self, synthetic: pd.DataFrame, redraw, *, max_rounds: int = 20) -> pd.DataFrame:
        """Replace copied rows by rows from ``redraw(k)`` until none is left.

        Raises
        ------
        FedsynthError
            When copies remain after ``max_rounds`` redraws (a table so coarse that most possible
            rows are real patients' rows).
        """
        copied = self.copies(synthetic)
        share = float(copied.mean()) if len(copied) else 0.0
        if share > REDRAW_WARNING_SHARE:
            warnings.warn(
                f"{share:.0%} of the synthetic rows equalled a training patient's row and were "
                "redrawn: on a table this coarse, the guard moves the synthetic distribution "
                "away from the profiles that real patients hold (rare values become more "
                "frequent); add informative columns or keep more precision in the numbers",
                DataWarning,
                stacklevel=4,
            )
        rounds = 0
        while copied.any():
            if rounds == max_rounds:
                raise FedsynthError(
                    f"{int(copied.sum())} synthetic row(s) still equal training rows after "
                    f"{max_rounds} redraws; the table is too coarse for the generator to avoid "
                    "copying patients (add informative columns or coarsen fewer of them)"
                )
            index = np.flatnonzero(copied)
            fresh = redraw(len(index))
            for position, column in enumerate(synthetic.columns):
                synthetic.iloc[index, position] = fresh[column].to_numpy()
            copied[index] = self.copies(fresh)
            rounds += 1
        return synthetic
