"""Differentially private statistics of columns: their domain, and histograms over it.

What the generators under ``dp=`` use, from :mod:`~fedsynth.tabular.privacy.dp_domains` (the
domains) and :mod:`~fedsynth.tabular.privacy.dp_histograms` (histograms and proxy tables).

Public knowledge
----------------
A generator under ``dp=`` must not take a column's domain from the data: the largest value, or
a category held by one patient, would be released exactly. A domain fact is *public* when

* the column's metadata marks it so: ``extra={"public": ["bounds", "categories"]}``, which
  :func:`declare_public` writes. Declare it from outside the data (a data dictionary, clinical
  ranges, a code list): fedsynth cannot check where it came from;
* or the kind fixes it: an event column's ``[0, 1]``, a binary column whose values are
  ``[0, 1]`` or ``[False, True]``;
* or it is schema: the column names, kinds and dtypes. A column whose dtype cannot hold a
  missing value (``int64``, ``bool``) is taken to have none; any other column may be missing.

* or it is schema: a pandas ``category`` column's categories.

Every other bounds or category list is released with DP by :func:`private_domains`, from
``domain_fraction`` of the budget shared by need: bounds by :func:`private_bounds`, categories
by a thresholded noisy histogram. A category held by a few patients is then left out; declare
the domain to keep it.
"""

from fedsynth.tabular.privacy.dp_bounds import BoundsRelease, private_bounds
from fedsynth.tabular.privacy.dp_domains import (
    PUBLIC,
    SURVIVAL_KINDS,
    ColumnDomain,
    PrivateDomainError,
    can_be_missing,
    category_codes,
    declare_public,
    domain_weights,
    dp_categories,
    partition_threshold,
    private_columns,
    private_domains,
    public_bounds,
    public_categories,
    publish_domains,
    release_domains,
    release_keys,
    released_view,
)
from fedsynth.tabular.privacy.dp_histograms import (
    cover_domains,
    denoised_counts,
    grid_cells,
    grid_edges,
    noisy_counts,
    noisy_histogram,
    proxy_table,
    to_proportions,
)

__all__ = [
    "PUBLIC",
    "SURVIVAL_KINDS",
    "BoundsRelease",
    "ColumnDomain",
    "PrivateDomainError",
    "can_be_missing",
    "category_codes",
    "cover_domains",
    "declare_public",
    "denoised_counts",
    "domain_weights",
    "dp_categories",
    "grid_cells",
    "grid_edges",
    "noisy_counts",
    "noisy_histogram",
    "partition_threshold",
    "private_bounds",
    "private_columns",
    "private_domains",
    "proxy_table",
    "public_bounds",
    "public_categories",
    "publish_domains",
    "release_domains",
    "release_keys",
    "released_view",
    "to_proportions",
]
