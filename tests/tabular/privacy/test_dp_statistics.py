"""Domains under DP: what is public knowledge, what is released, and what it costs."""

import numpy as np
import pandas as pd
import pytest

from fedsynth.core.privacy import PrivacyLedger
from fedsynth.tabular.metadata import Metadata
from fedsynth.tabular.privacy import PrivateDomainError, declare_public
from fedsynth.tabular.privacy.dp_statistics import (
    ColumnDomain,
    can_be_missing,
    cover_domains,
    denoised_counts,
    dp_categories,
    grid_edges,
    private_columns,
    private_domains,
    proxy_table,
    public_bounds,
    public_categories,
    publish_domains,
    release_domains,
    released_view,
    to_proportions,
)


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    n = 3000
    return pd.DataFrame(
        {
            "age": rng.integers(20, 90, n),
            "hb": np.where(rng.random(n) < 0.1, np.nan, rng.normal(10, 2, n)),
            "sex": rng.choice(["F", "M"], n),
            "TP53": rng.integers(0, 2, n),
            "stage": ["rare", *rng.choice(["I", "II"], n - 1)],
        }
    )


def test_declared_facts_are_public_and_kinds_fix_some(table):
    metadata = Metadata.infer(table)
    assert private_columns(metadata, table) == ["age", "hb", "sex", "stage"]
    declare_public(metadata, bounds={"age": (0, 120)}, categories={"sex": ["F", "M", "X"]})
    assert public_bounds(metadata.columns["age"]) == (0.0, 120.0)
    assert public_categories(metadata.columns["sex"]) == ["F", "M", "X"]
    assert public_categories(metadata.columns["TP53"]) == [0, 1]  # a 0/1 flag, by its kind
    assert public_bounds(metadata.columns["hb"]) is None  # inferred from the data: private
    assert private_columns(metadata, table) == ["hb", "stage"]
    assert metadata.columns["age"].extra == {"public": ["bounds"]}


def test_a_pandas_category_dtype_declares_its_categories(table):
    declared = table.assign(stage=pd.Categorical(table["stage"], ["I", "II", "III", "rare"]))
    metadata = Metadata.infer(declared)
    assert public_categories(metadata.columns["stage"], declared["stage"].dtype) == [
        "I",
        "II",
        "III",
        "rare",
    ]
    assert private_columns(metadata, declared) == ["age", "hb", "sex"]
    # Categories the metadata declares win over the dtype's.
    declare_public(metadata, categories={"stage": ["I", "II"]})
    assert public_categories(metadata.columns["stage"], declared["stage"].dtype) == ["I", "II"]


def test_declare_public_names_unknown_columns(table):
    with pytest.raises(Exception, match="'weight': not in the metadata"):
        declare_public(Metadata.infer(table), bounds={"weight": (0, 300)})


def test_missing_state_follows_the_dtype():
    assert not can_be_missing("int64") and not can_be_missing("bool")
    assert can_be_missing("float64") and can_be_missing("object") and can_be_missing("Int64")


def test_released_categories_leave_out_rare_ones(table):
    rng = np.random.default_rng(1)
    assert dp_categories(table["stage"], epsilon=1.0, delta=1e-6, rng=rng) == ["I", "II"]


def test_private_domains_charge_each_private_column_and_publish(table):
    metadata = Metadata.infer(table).resolve(table)
    declare_public(metadata, bounds={"age": (0, 120)})
    ledger = PrivacyLedger()
    rng = np.random.default_rng(3)
    domains = private_domains(table, metadata, epsilon=0.3, delta=3e-6, ledger=ledger, rng=rng)
    assert [s.what for s in ledger.spends] == [
        "domain of 'hb' (bounds)",
        "domain of 'sex' (categories)",
        "domain of 'stage' (categories)",
    ]
    # By need: a category list weighs twice a column's bounds and takes all of delta.
    assert [s.epsilon for s in ledger.spends] == pytest.approx([0.06, 0.12, 0.12])
    assert [s.delta for s in ledger.spends] == pytest.approx([0.0, 1.5e-6, 1.5e-6])
    assert ledger.spent() == pytest.approx((0.3, 3e-6))
    assert domains["age"].bounds == (0.0, 120.0) and not domains["age"].estimated
    assert not domains["age"].missing and domains["hb"].missing  # int64 vs float64
    assert domains["stage"].categories == ["I", "II"] and domains["stage"].missing
    assert domains["TP53"].categories == [0, 1] and not domains["TP53"].estimated
    publish_domains(metadata, domains)
    assert metadata.columns["stage"].categories == ["I", "II"]
    low, high = metadata.columns["hb"].bounds
    assert low <= table["hb"].quantile(0.01) and high >= table["hb"].quantile(0.99)


def test_a_domain_that_cannot_be_released_says_what_to_do(table):
    metadata = Metadata.infer(table).resolve(table)
    # Bounds are always released; only a category list can fail, and the error names it.
    with pytest.raises(
        PrivateDomainError, match=r"no category of column\(s\) \['sex', 'stage'\] could be"
    ):
        private_domains(
            table.head(50),
            metadata,
            epsilon=0.01,
            delta=1e-9,
            ledger=PrivacyLedger(),
            rng=np.random.default_rng(0),
        )


def test_grid_edges_and_proportions():
    assert grid_edges(0, 100, 4, integer=False).tolist() == [0, 25, 50, 75, 100]
    log = grid_edges(0, 1000, 3, integer=False, log=True)
    assert log[0] == 0 and log[-1] == pytest.approx(1000) and np.all(np.diff(log) > 0)
    assert np.diff(log)[0] < np.diff(log)[-1]
    np.testing.assert_allclose(to_proportions(np.array([-5.0, 10.0, 30.0]), 0.0), [0, 0.25, 0.75])
    np.testing.assert_allclose(to_proportions(np.array([-5.0, 10.0, 30.0]), 1e9), 1 / 3, rtol=1e-6)


def test_empty_cells_get_less_mass_when_the_counts_stand_above_the_noise():
    # 800 rows in 4 of 20 cells, Laplace scale 36 (36 columns at epsilon 1): a pseudo-count of
    # the scale in every cell handed the 16 empty cells 48 % of the mass on average.
    rng = np.random.default_rng(0)
    counts = np.zeros(20)
    counts[[3, 4, 5, 6]] = 200.0
    new, old = [], []
    for _ in range(300):
        noisy = counts + rng.laplace(0.0, 36.0, 20)
        new.append(to_proportions(noisy, 36.0)[counts == 0].sum())
        flat = np.maximum(noisy, 0.0) + 36.0
        old.append((flat / flat.sum())[counts == 0].sum())
    assert np.mean(new) < np.mean(old) - 0.08


def test_the_pseudo_count_follows_the_share_of_mass_noise_explains():
    scale = 10.0
    far_above = denoised_counts(np.array([1e6, 0.0, 0.0, 0.0]), scale)
    assert far_above[1] == pytest.approx(scale * 40 / (40 + 1e6))
    drowned = denoised_counts(np.array([-3.0, 5.0, -8.0, 2.0]), scale)
    assert drowned[0] == pytest.approx(scale * 40 / 47) and drowned[0] > scale / 2


def test_proxy_table_is_drawn_from_noisy_marginals(table):
    metadata = Metadata.infer(table).resolve(table)
    declare_public(metadata, bounds={"age": (0, 120)}, categories={"stage": ["I", "II", "III"]})
    rng = np.random.default_rng(4)
    ledger = PrivacyLedger()
    domains = private_domains(table, metadata, epsilon=1.0, delta=1e-6, ledger=ledger, rng=rng)
    proxy = proxy_table(
        table, metadata, domains, epsilon=5.0, n_cells=32, n_rows=4000, ledger=ledger, rng=rng
    )
    assert ledger.spends[-1].what == "encoder statistics (marginal histograms)"
    assert ledger.spends[-1].details["noise_scale"] == pytest.approx(table.shape[1] / 5.0)
    assert proxy.shape == (4000, table.shape[1])
    assert proxy["age"].dtype == table["age"].dtype and proxy["age"].between(0, 120).all()
    assert proxy["age"].mean() == pytest.approx(table["age"].mean(), abs=3)
    assert proxy["hb"].isna().mean() == pytest.approx(0.1, abs=0.03)
    assert (proxy["sex"] == "F").mean() == pytest.approx((table["sex"] == "F").mean(), abs=0.04)
    # Every state shows up, whatever the noise: the encoder fitted on it knows them all.
    assert set(proxy["stage"].dropna()) == {"I", "II", "III"} and proxy["stage"].isna().any()


def test_cover_domains_puts_every_state_in_some_row():
    frame = pd.DataFrame(
        {
            "grade": ["a"] * 6,
            "flag": [0] * 6,
            "done": [False] * 6,
            "level": [1.5] * 6,
            "count": [3] * 6,
        }
    )
    domains = {
        "grade": ColumnDomain("grade", ["a", "b", "c"], None, missing=True, estimated=False),
        "flag": ColumnDomain("flag", [0, 1], None, missing=False, estimated=False),
        "done": ColumnDomain("done", [False, True], None, missing=False, estimated=False),
        "level": ColumnDomain("level", None, (0.0, 2.0), missing=True, estimated=False),
        "count": ColumnDomain("count", None, (0.0, 9.0), missing=False, estimated=False),
    }
    out = cover_domains(frame, domains, np.random.default_rng(0))
    assert set(out["grade"].dropna()) == {"a", "b", "c"} and out["grade"].isna().sum() == 1
    assert sorted(out["flag"]) == [0, 0, 0, 0, 0, 1] and out["flag"].dtype == frame["flag"].dtype
    assert out["done"].sum() == 1 and out["done"].dtype == bool
    assert out["level"].isna().sum() == 1 and out["count"].equals(frame["count"])
    assert frame["grade"].eq("a").all()  # the input is left as it was
    # The rows that carry the states are drawn per column, not the first rows of each.
    rows = [tuple(np.flatnonzero(out[c].ne(frame[c]).to_numpy())) for c in ("grade", "flag")]
    assert len(rows[0]) == 3 and len(rows[1]) == 1


def test_released_view_hides_unreleased_categories(table):
    domains = {
        "stage": ColumnDomain("stage", ["I", "II"], None, missing=True, estimated=True),
        "sex": ColumnDomain("sex", ["F"], None, missing=True, estimated=False),
    }
    view = released_view(table, domains)
    assert pd.isna(view["stage"].iloc[0]) and view["stage"].iloc[1:].notna().all()
    assert view["sex"].equals(table["sex"]) and table["stage"].iloc[0] == "rare"


def test_release_domains_spends_the_domain_share_only_when_a_domain_is_private(table):
    from fedsynth.core.privacy import resolve_dp

    settings = resolve_dp({"epsilon": 2.0, "delta": 1e-5, "domain_fraction": 0.2})
    metadata = Metadata.infer(table).resolve(table)
    ledger = PrivacyLedger()
    rng = np.random.default_rng(5)
    domains, epsilon, delta = release_domains(table, metadata, settings, ledger=ledger, rng=rng)
    assert (epsilon, delta) == pytest.approx((0.4, 2e-6))
    assert ledger.spent() == pytest.approx((0.4, 2e-6))
    assert metadata.columns["stage"].categories == domains["stage"].categories == ["I", "II"]
    declare_public(
        metadata,
        bounds={"age": (0, 120), "hb": (0, 30)},
        categories={"sex": ["F", "M"], "stage": ["I", "II"]},
    )
    ledger = PrivacyLedger()
    assert release_domains(table, metadata, settings, ledger=ledger, rng=rng)[1:] == (0.0, 0.0)
    assert ledger.spends == []
    # Bounds alone spend no delta: the rest of the fit gets all of it.
    metadata.update_column("hb", extra={})
    assert release_domains(table, metadata, settings, ledger=ledger, rng=rng)[1:] == (0.4, 0.0)
