"""Partitions: by site column, one file per site, simulated IID and Dirichlet splits."""

from __future__ import annotations

import pandas as pd
import pytest

from fedsynth.exceptions import InvalidDataError
from fedsynth.federated import partition


def test_by_column_keeps_order_and_rows(mds):
    parts = partition.by_column(mds, "site")
    assert list(parts) == list(pd.unique(mds["site"]))
    assert sum(len(p) for p in parts.values()) == len(mds)
    assert all((p["site"] == name).all() for name, p in parts.items())
    assert "site" not in partition.by_column(mds, "site", drop=True)["site_1"]


def test_by_column_refuses_rows_without_a_site():
    df = pd.DataFrame({"site": ["a", None, "b"], "x": [1, 2, 3]})
    with pytest.raises(InvalidDataError, match="1 row"):
        partition.by_column(df, "site")
    with pytest.raises(InvalidDataError, match="hospital"):
        partition.by_column(df, "hospital")


def test_from_files_names_sites_after_files(tmp_path, mds):
    paths = []
    for name in ("north", "south"):
        path = tmp_path / f"{name}.csv"
        mds.head(20).to_csv(path, index=False)
        paths.append(path)
    parts = partition.from_files(paths)
    assert list(parts) == ["north", "south"]
    assert len(parts["south"]) == 20
    with pytest.raises(InvalidDataError, match="north"):
        partition.from_files([paths[0], paths[0]])


def test_iid_split_is_seeded_and_balanced(mds):
    first = partition.split_iid(mds, 3, seed=1)
    again = partition.split_iid(mds, 3, seed=1)
    assert [len(p) for p in first.values()] == [200, 200, 200]
    assert all(first[k].equals(again[k]) for k in first)
    assert not first["site_1"].equals(partition.split_iid(mds, 3, seed=2)["site_1"])


def test_dirichlet_split_skews_the_chosen_column(mds):
    parts = partition.split_dirichlet(mds, 3, "ipssm_risk", alpha=0.1, seed=0, min_rows=20)
    assert sum(len(p) for p in parts.values()) == len(mds)
    assert min(len(p) for p in parts.values()) >= 20
    shares = pd.DataFrame(
        {name: p["ipssm_risk"].value_counts(normalize=True) for name, p in parts.items()}
    ).fillna(0)
    iid = partition.split_iid(mds, 3, seed=0)
    iid_shares = pd.DataFrame(
        {name: p["ipssm_risk"].value_counts(normalize=True) for name, p in iid.items()}
    ).fillna(0)
    # Sites differ in case mix far more than IID sites do.
    assert shares.std(axis=1).mean() > 2 * iid_shares.std(axis=1).mean()
    numeric = partition.split_dirichlet(mds, 2, "age", alpha=0.5, seed=0)
    assert sum(len(p) for p in numeric.values()) == len(mds)


def test_split_arguments_are_checked(mds):
    with pytest.raises(ValueError, match="n_sites"):
        partition.split_iid(mds, 1)
    with pytest.raises(ValueError, match="alpha"):
        partition.split_dirichlet(mds, 2, "sex", alpha=0)
    with pytest.raises(ValueError, match="rows each"):
        partition.split_dirichlet(mds, 3, "sex", min_rows=300)


def test_check_partitions_needs_two_non_empty_sites(mds):
    with pytest.raises(InvalidDataError, match="at least 2"):
        partition.check_partitions({"a": mds})
    with pytest.raises(InvalidDataError, match="'b'"):
        partition.check_partitions({"a": mds, "b": mds.head(0)})
