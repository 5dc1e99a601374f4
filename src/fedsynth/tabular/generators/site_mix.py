"""The site mix of a federated model: how many rows each site holds, and sampling to match it.

A site's rows all hold the same value of the site column, so under weight averaging no site
ever shows the model how the site relates to the other columns: each site's training only pushes
the site output towards its own value. The averaged output then gives every latent code about
the same site probabilities, the softmax of the size-weighted mean of the sites' logits, which
favours the largest site far beyond its share (the demo's FedAvg VAE-BGM: 0.80 / 0.14 / 0.06
for sites holding 0.48 / 0.30 / 0.22 of the rows). The server knows each site's row count, so a
federated model samples by site instead: each site's share of the rows, allocated in proportion
to its size, drawn with the site as a condition (natively where the generator can condition,
by rejection otherwise).

A site's own generator, which the sharing strategies train on one site's rows, learns the site
column too (it is in the shared encoder), and an undertrained one emits other sites' values; it
samples with its own mix, so every row it shares is labelled with its site.

:class:`SiteMix` is saved with the model, so a loaded model samples the same mix.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from fedsynth.tabular.metadata import Metadata
    from fedsynth.tabular.transforms.encoder import TableEncoder

Draw = Callable[[int, dict[str, Any], np.random.Generator], pd.DataFrame]


@dataclass(frozen=True)
class SiteMix:
    """Rows per value of the site column, from which each sample's site shares are allocated.

    Parameters
    ----------
    column : str
        The site column.
    rows : dict
        Rows of each site value (values as in the metadata's categories).

    Examples
    --------
    >>> SiteMix("site", {"a": 480, "b": 300, "c": 220}).allocate(10)
    {'a': 5, 'b': 3, 'c': 2}
    """

    column: str
    rows: dict[Any, int]

    def __post_init__(self) -> None:
        counts = list(self.rows.values())
        if not counts or any(c < 0 for c in counts) or sum(counts) <= 0:
            raise ValueError(f"site mix of {self.column!r} needs positive row counts, got {counts}")

    @classmethod
    def from_encoder(cls, metadata: Metadata, encoder: TableEncoder) -> SiteMix | None:
        """The mix of the metadata's site column from the encoder's category counts.

        ``None`` when there is no site column or it is not learned (one site only). The counts
        of a federated encoder are the sites' aggregate statistics, so the mix costs the sites
        nothing more than they already sent.
        """
        column = metadata.site
        if column is None or column not in encoder.columns_:
            return None
        transform = encoder.transforms_[encoder.columns_.index(column)]
        categories = list(metadata.columns[column].categories)
        counts = np.asarray(transform.counts)[: len(categories)]
        return cls(column, {c: int(n) for c, n in zip(categories, counts, strict=True) if n > 0})

    @classmethod
    def from_data(cls, metadata: Metadata, data: pd.DataFrame) -> SiteMix | None:
        """The mix of the metadata's site column in ``data`` (e.g. one site's own rows, all of
        one value), or ``None`` when there is no site column."""
        column = metadata.site
        if column is None or column not in data.columns:
            return None
        counts = data[column].value_counts()
        categories = metadata.columns[column].categories
        return cls(column, {c: int(counts[c]) for c in categories if counts.get(c, 0) > 0})

    def allocate(self, n: int) -> dict[Any, int]:
        """``n`` rows split in proportion to the sites' sizes (largest remainders), so that
        every share is within one row of exact."""
        values = list(self.rows)
        sizes = np.array([self.rows[v] for v in values], dtype=np.float64)
        exact = n * sizes / sizes.sum()
        counts = np.floor(exact).astype(np.int64)
        # Ties broken by order, so that the allocation is deterministic.
        for i in np.argsort(-(exact - counts), kind="stable")[: n - int(counts.sum())]:
            counts[i] += 1
        return {v: int(k) for v, k in zip(values, counts, strict=True)}

    def sample(
        self, n: int, conditions: Mapping[str, Any], draw: Draw, rng: np.random.Generator
    ) -> pd.DataFrame:
        """``n`` rows: each site's allocated share drawn with ``draw(k, conditions + site,
        rng)``, then shuffled together."""
        parts = [
            draw(k, {**conditions, self.column: value}, rng)
            for value, k in self.allocate(n).items()
            if k
        ]
        pooled = pd.concat(parts, ignore_index=True)
        return pooled.iloc[rng.permutation(len(pooled))].reset_index(drop=True)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (site values as a list beside their counts, as values need not be str)."""
        return {
            "column": self.column,
            "values": [_plain(v) for v in self.rows],
            "rows": list(self.rows.values()),
        }

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> SiteMix:
        """Inverse of :meth:`to_dict`."""
        values, rows = config["values"], config["rows"]
        return cls(str(config["column"]), {v: int(r) for v, r in zip(values, rows, strict=True)})


def attach_site_mix(generator: Any, mix: SiteMix | None) -> Any:
    """Make ``generator`` sample by site with ``mix``; returns it.

    Nothing changes where there is no mix, or where the generator does not learn the site
    column (a statistical model fitted on one site's rows holds it as a constant).
    """
    learned = mix is not None and mix.column in generator.learned_columns_
    generator.site_mix_ = mix if learned else None
    return generator


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
