"""The layout of an encoded table: each column's transform, its block of the matrix, its spans.

:class:`EncodedLayout` is what :class:`~fedsynth.tabular.transforms.TableEncoder` holds once
fitted (or built from statistics, or loaded), with the questions generators ask of it: where each
column's block lies, and, for conditional generators (CTGAN's conditional vector,
``sample(conditions=...)``), the category spans, how often to pick each slot, and the slot of a
value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fedsynth.exceptions import InvalidDataError, NotFittedError, Problem
from fedsynth.tabular.metadata import Metadata
from fedsynth.tabular.transforms.base import ColumnTransform, Span
from fedsynth.tabular.transforms.categorical import CategoricalColumn, category_codes


class EncodedLayout:
    """The fitted transforms of a table encoder and the matrix layout they make.

    Attributes
    ----------
    columns_ : list of str
        Output columns, in input order, identifiers excluded.
    output_info_ : list of Span
        Spans of the matrix, in order; they cover ``[0, output_dim_)`` without gaps.
    output_dim_ : int
        Number of matrix columns.
    category_counts_ : dict of str to ndarray
        Rows of each slot of each discrete column's category span (for CTGAN's conditional
        vector); see :meth:`category_probabilities`.
    metadata_ : Metadata
        The metadata of the columns.
    transforms_ : list
        The transform of each output column.
    n_rows_ : int
        Rows of the table the transforms were fitted on (or the statistics describe).
    """

    def _set_fitted(
        self, metadata: Metadata, transforms: list[ColumnTransform], n_rows: int
    ) -> None:
        spans: list[Span] = []
        start = 0
        for transform in transforms:
            spans += transform.spans(start)
            start += transform.width
        self.metadata_ = metadata
        self.transforms_ = transforms
        self.columns_ = [t.name for t in transforms]
        self.output_info_ = spans
        self.output_dim_ = start
        self.category_counts_ = {
            t.name: t.counts for t in transforms if isinstance(t, CategoricalColumn)
        }
        self.n_rows_ = n_rows

    def _check_is_fitted(self) -> None:
        if not hasattr(self, "transforms_"):
            raise NotFittedError(
                "this TableEncoder is not fitted yet; call fit(df, metadata) first"
            )

    def _blocks(self) -> list[tuple[ColumnTransform, slice]]:
        """Each transform with its block of matrix columns."""
        blocks, start = [], 0
        for transform in self.transforms_:
            blocks.append((transform, slice(start, start + transform.width)))
            start += transform.width
        return blocks

    # ------------------------------------------------------------------ discrete spans (CTGAN)
    def discrete_spans(self) -> list[Span]:
        """The category spans of the discrete columns, in order (CTGAN's conditional vector)."""
        self._check_is_fitted()
        return [span for span in self.output_info_ if span.role == "category"]

    def category_probabilities(self, *, log_frequency: bool = True) -> dict[str, np.ndarray]:
        """Probability of picking each slot of each discrete column in training-by-sampling.

        Parameters
        ----------
        log_frequency : bool, default True
            Weigh slots by ``log(1 + count)`` as CTGAN does, so that rare categories are
            conditioned on more often than their frequency; else by their counts.

        Returns
        -------
        dict of str to ndarray
            Column to probabilities over its category span (the last slot is "missing" when the
            column had missing values); each sums to 1.
        """
        self._check_is_fitted()
        probabilities = {}
        for name, counts in self.category_counts_.items():
            weights = np.log1p(counts) if log_frequency else counts.astype(np.float64)
            probabilities[name] = weights / weights.sum()
        return probabilities

    def category_slot(self, column: str, value: Any) -> int:
        """Matrix column of ``value`` in the category span of discrete ``column``.

        A missing ``value`` (``None``, NaN) names the "missing" slot. Useful to build a
        condition vector, e.g. for ``sample(conditions={"sex": "F"})``.

        Raises
        ------
        InvalidDataError
            When ``column`` is not an encoded discrete column or ``value`` is not one of its slots.
        """
        self._check_is_fitted()
        spans = [s for s in self.discrete_spans() if s.column == column]
        if not spans:
            discrete = [s.column for s in self.discrete_spans()]
            raise InvalidDataError(
                [Problem(column, f"not an encoded discrete column; expected one of {discrete}")]
            )
        transform = self.transforms_[self.columns_.index(column)]
        codes, _ = category_codes(pd.Series([value], dtype=object), transform.categories)
        code = int(codes[0])
        if code == -1 and transform.has_missing:
            code = len(transform.categories)
        if code < 0:
            raise InvalidDataError(
                [
                    Problem(
                        column,
                        f"no slot for {value!r}; expected one of {transform.categories}"
                        + (" or missing" if transform.has_missing else ""),
                    )
                ]
            )
        return spans[0].start + code
