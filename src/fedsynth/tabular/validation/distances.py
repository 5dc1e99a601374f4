"""Gower distance between mixed-type rows, as a Manhattan distance in an embedding.

Each numeric column becomes ``(x - min) / (max - min)`` with the real table's range, and each
discrete column a one-hot vector scaled by 1/2, so that the Manhattan distance between two rows,
divided by the number of columns, is Gower's (1971) distance: the mean over columns of
``|x - y| / range`` for numbers and of ``[x != y]`` for labels. Missing values: two missing
values are at distance 0; a missing and an observed number are at distance 0.5 to 1 (the missing
value sits at the middle of the range, plus an indicator of weight 0.5); a missing label is a
label of its own. Labels are learnt from every table compared (a label only the synthetic data
has is at distance 1 from every other); a label that ``fit`` never saw takes an "other" slot.

The embedding lets SciPy's ``cdist`` compute blocks of distances; one pass over a block gives
the nearest neighbours in both directions, so that the privacy metrics need few passes.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist

#: Distances held in memory at once (a block of rows x all candidates): 32 MB of float64.
_BLOCK_CELLS = 2**22


class GowerEmbedding:
    """Rows to vectors whose scaled Manhattan distance is the Gower distance.

    Parameters
    ----------
    numeric : list of str
        Columns compared as numbers.
    discrete : list of str
        Columns compared as labels.

    Examples
    --------
    >>> import pandas as pd
    >>> real = pd.DataFrame({"age": [50.0, 70.0], "sex": ["F", "M"]})
    >>> emb = GowerEmbedding(["age"], ["sex"]).fit(real)
    >>> x = emb.transform(real)
    >>> float(abs(x[0] - x[1]).sum() / emb.n_columns)
    1.0
    """

    def __init__(self, numeric: list[str], discrete: list[str]):
        self.numeric = list(numeric)
        self.discrete = list(discrete)

    @property
    def n_columns(self) -> int:
        """Number of compared columns (the Gower denominator)."""
        return len(self.numeric) + len(self.discrete)

    def fit(self, real: pd.DataFrame, *others: pd.DataFrame) -> GowerEmbedding:
        """Learn ranges from the real table and labels from every table; returns ``self``.

        Knowing every label in advance keeps the embedding small: a column with two labels and
        no missing value in any table is a single 0/1 coordinate.
        """
        values = real[self.numeric].to_numpy(dtype=float)
        with np.errstate(all="ignore"):
            low = np.nanmin(values, axis=0) if len(values) else np.zeros(len(self.numeric))
            high = np.nanmax(values, axis=0) if len(values) else np.ones(len(self.numeric))
        low = np.where(np.isfinite(low), low, 0.0)
        span = np.where(np.isfinite(high) & (high > low), high - low, 1.0)
        self.low_, self.span_ = low, span
        frames = (real, *others)
        self.numeric_missing_ = np.array(
            [any(frame[c].isna().any() for frame in frames) for c in self.numeric], dtype=bool
        )
        self.labels_, self.has_missing_ = {}, {}
        for column in self.discrete:
            series = pd.concat([frame[column] for frame in frames], ignore_index=True)
            self.labels_[column] = pd.Index(sorted(series.dropna().unique()), dtype=object)
            self.has_missing_[column] = bool(series.isna().any())
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The embedding of ``frame``'s rows (float64, one row per row)."""
        parts = []
        if self.numeric:
            values = (frame[self.numeric].to_numpy(dtype=float) - self.low_) / self.span_
            missing = np.isnan(values)
            parts += [np.where(missing, 0.5, values), 0.5 * missing[:, self.numeric_missing_]]
        for column in self.discrete:
            known = self.labels_[column]
            codes = known.get_indexer(frame[column])
            missing = frame[column].isna().to_numpy()
            if len(known) <= 2 and not self.has_missing_[column]:
                parts.append(np.maximum(codes, 0)[:, None].astype(float))
                continue
            # Slots: the labels, then missing, then labels never seen at fit time.
            codes = np.where(missing, len(known), np.where(codes < 0, len(known) + 1, codes))
            onehot = np.zeros((len(frame), len(known) + 2))
            onehot[np.arange(len(frame)), codes] = 0.5
            parts.append(onehot)
        return np.hstack(parts) if parts else np.zeros((len(frame), 0))


def distance_blocks(
    queries: np.ndarray, candidates: np.ndarray, n_columns: int
) -> Iterator[tuple[slice, np.ndarray]]:
    """Gower distances from blocks of queries to every candidate: ``(rows, distances)``."""
    step = max(1, _BLOCK_CELLS // max(len(candidates), 1))
    for start in range(0, len(queries), step):
        rows = slice(start, min(start + step, len(queries)))
        yield rows, cdist(queries[rows], candidates, "cityblock") / max(n_columns, 1)


def scan(
    queries: np.ndarray,
    candidates: np.ndarray,
    n_columns: int,
    *,
    k: int = 1,
    first: int | None = None,
) -> dict[str, np.ndarray]:
    """One pass over the Gower distances between two sets of rows, in blocks of rows.

    Returns
    -------
    dict
        ``"nearest"``: the ``k`` smallest distances of each query, sorted (n_queries, k);
        ``"column_min"``: each candidate's distance to its nearest query (n_candidates,);
        ``"nearest_first"``, when ``first`` is given: each query's distance to the nearest of
        the first ``first`` candidates.

    Examples
    --------
    >>> import numpy as np
    >>> out = scan(np.array([[0.0], [3.0]]), np.array([[1.0], [5.0]]), 1, k=2)
    >>> out["nearest"].tolist(), out["column_min"].tolist()
    ([[1.0, 5.0], [2.0, 2.0]], [1.0, 2.0])
    """
    k = min(k, len(candidates))
    nearest_rows, first_rows = [], []
    column_min = np.full(len(candidates), np.inf)
    for _, block in distance_blocks(queries, candidates, n_columns):
        smallest = np.partition(block, k - 1, axis=1)[:, :k] if k < block.shape[1] else block
        nearest_rows.append(np.sort(smallest, axis=1))
        np.minimum(column_min, block.min(axis=0), out=column_min)
        if first is not None:
            first_rows.append(block[:, :first].min(axis=1))
    out = {"nearest": np.vstack(nearest_rows), "column_min": column_min}
    if first is not None:
        out["nearest_first"] = np.concatenate(first_rows)
    return out


def nearest(queries: np.ndarray, candidates: np.ndarray, k: int, n_columns: int) -> np.ndarray:
    """Gower distances from each query to its ``k`` nearest candidates, sorted (n_queries, k)."""
    return scan(queries, candidates, n_columns, k=k)["nearest"]
