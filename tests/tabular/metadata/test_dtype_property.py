"""Inference and the checks agree on every dtype a clinical table arrives in: a table that
``Metadata.infer`` described is fitted and sampled by every table generator, and the synthetic
columns come back in the input's dtypes (issue 23, part 1).

The dtypes: digit codes read as text (object, ``string[pyarrow]``), numbers read as text with
decimal commas or censoring marks (``"<0.1"``), dates as text, an object column mixing ``"12"``
and ``12``, nullable ``Int64`` and ``boolean``, categoricals of numbers, ``datetime64`` naive and
with a time zone, ``timedelta64``; each with missing values.
"""

from __future__ import annotations

import inspect
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

import fedsynth
from fedsynth.tabular.metadata import Metadata
from fedsynth.tabular.metadata.values import encoding_of, read_text

#: Every registered table generator (a newly registered one is picked up here).
GENERATORS = sorted(
    name for name in fedsynth.available_generators() if fedsynth.make(name).modality == "tabular"
)
#: Tiny settings, kept for the generators whose constructor takes them: the dtypes, not the
#: quality, are under test.
TINY = {
    "epochs": 1,
    "hidden_dims": [8],
    "latent_dim": 2,
    "batch_size": 20,
    "generator_dims": [8],
    "discriminator_dims": [8],
    "embedding_dim": 4,
    "candidates": ("gaussian_copula", "bayesian_network"),
    "n_splits": 2,
}
#: Examples per generator: the statistical ones fit in milliseconds; auto fits both of them
#: several times, a neural one trains (other generators get the neural count).
EXAMPLES = {"gaussian_copula": 20, "bayesian_network": 20, "auto": 6}
#: Fewest rows per generator: auto holds out 10 validation rows and keeps 20 training rows;
#: bayesian_network reproduces every value of a column of under 24 rows (each is an atom of
#: its bins), so the copy guard refuses its rows whatever the dtypes.
MIN_ROWS = {"auto": 34, "bayesian_network": 24}


def make_tiny(name: str):
    """The generator with the tiny settings its constructor accepts."""
    accepted = inspect.signature(type(fedsynth.make(name)).__init__).parameters
    return fedsynth.make(name, seed=0, **{k: v for k, v in TINY.items() if k in accepted})


def fit_and_sample(name: str, table: pd.DataFrame, n: int = 12) -> tuple[Metadata, pd.DataFrame]:
    """``Metadata.infer`` then ``fit`` then ``sample``, warnings (constant columns...) ignored."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metadata = Metadata.infer(table)
        generator = make_tiny(name).fit(table, metadata)
        return metadata, generator.sample(n, seed=1)


def assert_input_dtypes(table: pd.DataFrame, metadata: Metadata, synthetic: pd.DataFrame) -> None:
    """Every emitted column has its input's dtype, and numbers read from text are written back
    as text that reads again under the same encoding."""
    emitted = [c for c in table.columns if metadata.kinds[c] != "identifier"]
    assert list(synthetic.columns) == emitted
    for column in emitted:
        assert synthetic[column].dtype == table[column].dtype, column
        encoding = encoding_of(metadata.columns[column])
        if encoding is not None and encoding["as"] not in ("datetime", "timedelta"):
            reading = read_text(synthetic[column], encoding)
            assert reading is not None and not reading.unreadable, (column, reading)


def _with_missing(values: list, missing: list[bool]) -> list:
    return [None if gap else value for value, gap in zip(values, missing, strict=True)]


@st.composite
def dtype_columns(draw, n: int) -> pd.Series:
    """One column of ``n`` rows in one of the dtypes of the issue, with missing values."""
    kind = draw(
        st.sampled_from(
            [
                "codes",
                "many_codes",
                "arrow_codes",
                "arrow_decimals",
                "int64",
                "boolean",
                "category_numbers",
                "mixed",
                "decimal_comma",
                "thousands",
                "censored",
                "dates",
                "datetime64",
                "datetime64_tz",
                "timedelta64",
            ]
        )
    )
    missing = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    missing = [gap and draw(st.integers(0, 3)) == 0 for gap in missing]  # a quarter at most
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if kind == "codes":
        values = [str(v) for v in rng.integers(1, 25, n)]
        return pd.Series(_with_missing(values, missing), dtype=object)
    if kind == "many_codes":
        values = [str(v) for v in rng.integers(100, 100 + 4 * n, n)]
        return pd.Series(_with_missing(values, missing), dtype=object)
    if kind == "arrow_codes":
        values = [str(v) for v in rng.integers(1, 8, n)]
        return pd.Series(_with_missing(values, missing), dtype="string[pyarrow]")
    if kind == "arrow_decimals":
        values = [f"{v:.1f}" for v in rng.normal(10, 2, n)]
        return pd.Series(_with_missing(values, missing), dtype="string[pyarrow]")
    if kind == "int64":
        values = [int(v) for v in rng.integers(0, 60, n)]
        return pd.Series(_with_missing(values, missing), dtype="Int64")
    if kind == "boolean":
        values = [bool(v) for v in rng.integers(0, 2, n)]
        return pd.Series(_with_missing(values, missing), dtype="boolean")
    if kind == "category_numbers":
        values = [int(v) for v in rng.choice([1, 2, 3, 5], n)]
        return pd.Series(pd.Categorical(_with_missing(values, missing)))
    if kind == "mixed":
        values = [str(v) if rng.random() < 0.5 else int(v) for v in rng.integers(1, 6, n)]
        return pd.Series(_with_missing(values, missing), dtype=object)
    if kind == "decimal_comma":
        values = [f"{v:.2f}".replace(".", ",") for v in rng.normal(5, 1, n)]
        return pd.Series(_with_missing(values, missing), dtype=object)
    if kind == "thousands":
        # Lab counts as spreadsheets export them: "12,345.6" or, in a decimal-comma locale,
        # "12.345,6" (a space groups in French exports).
        sep, mark = draw(st.sampled_from([(",", "."), (".", ","), (" ", ".")]))
        values = [
            f"{v:,.1f}".replace(",", "\0").replace(".", mark).replace("\0", sep)
            for v in rng.lognormal(8, 2, n)
        ]
        return pd.Series(_with_missing(values, missing), dtype=object)
    if kind == "censored":
        values = ["<0.1" if rng.random() < 0.2 else f"{v:.2f}" for v in rng.uniform(0.1, 8.0, n)]
        return pd.Series(_with_missing(values, missing), dtype=object)
    if kind == "timedelta64":  # lengths of stay, to the minute
        stays = pd.to_timedelta(rng.exponential(4, n), unit="D").round("min")
        return pd.Series(stays).where(~np.array(missing))
    days = pd.Timestamp("2019-01-01") + pd.to_timedelta(rng.integers(0, 1500, n), unit="D")
    if kind == "datetime64":
        return pd.Series(days).where(~np.array(missing))
    if kind == "datetime64_tz":
        stamps = days + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s")
        paris = stamps.tz_localize("UTC").tz_convert("Europe/Paris")
        return pd.Series(paris).where(~np.array(missing))
    fmt = draw(st.sampled_from(["%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y"]))
    return pd.Series(_with_missing(list(days.strftime(fmt)), missing), dtype=object)


@st.composite
def tables(draw, min_rows: int = 8) -> pd.DataFrame:
    """A table of ``min_rows`` to 40 rows: a float column and one to three columns of the
    issue's dtypes."""
    n = draw(st.integers(min_rows, 40))
    # A measurement at full precision: no synthetic row can equal a training row, so the copy
    # guard (which refuses such rows in coarse tables) stays out of a test of dtypes.
    columns = {"x": np.random.default_rng(n).normal(size=n)}
    for i in range(draw(st.integers(1, 3))):
        columns[f"c{i}"] = draw(dtype_columns(n))
    return pd.DataFrame(columns)


def _property_settings(name: str):
    return settings(
        max_examples=EXAMPLES.get(name, 4),
        deadline=None,
        derandomize=True,
        database=None,
        # No shrinking: a failure prints its table (note) at once, where shrinking tables
        # through a fit can take minutes.
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.mark.parametrize("name", GENERATORS)
def test_what_inference_described_is_fitted_and_sampled_in_the_input_dtypes(name):
    @_property_settings(name)
    @given(table=tables(MIN_ROWS.get(name, 8)))
    def check(table):
        note(f"table: {table.to_dict('list')}, dtypes: {table.dtypes.to_dict()}")
        metadata, synthetic = fit_and_sample(name, table)
        assert len(synthetic) == 12
        assert_input_dtypes(table, metadata, synthetic)

    check()


#: The issue's case: district codes "1" ... "24" read as text (pd.read_csv(dtype=str)).
DISTRICTS = pd.DataFrame(
    {
        "district": [str(1 + i % 24) for i in range(48)],
        "age": np.random.default_rng(0).integers(30, 90, 48),
    }
)


@pytest.mark.parametrize("name", GENERATORS)
def test_district_codes_read_as_text_are_categories_emitted_as_text(name):
    metadata, synthetic = fit_and_sample(name, DISTRICTS, n=30)
    assert metadata.kinds["district"] == "categorical"
    assert metadata.columns["district"].categories == [str(i) for i in range(1, 25)]
    assert synthetic["district"].dtype == object
    assert set(synthetic["district"]) <= {str(i) for i in range(1, 25)}


@pytest.mark.parametrize("name", GENERATORS)
def test_many_digit_strings_are_numbers_written_back_as_digit_strings(name):
    table = DISTRICTS.assign(district=[str(100 + 7 * i) for i in range(48)])
    metadata, synthetic = fit_and_sample(name, table, n=30)
    assert metadata.kinds["district"] == "numeric"
    assert metadata.columns["district"].extra["text"] == {
        "as": "number",
        "decimal": ".",
        "places": 0,
    }
    written = synthetic["district"].dropna()
    assert synthetic["district"].dtype == object and written.map(type).eq(str).all()
    assert written.str.fullmatch(r"\d+").all()
    assert written.astype(int).between(100, 100 + 7 * 47).all()


def test_text_round_trips_keep_the_written_form():
    table = pd.DataFrame(
        {
            "crp": ["<0,5", "1,25", "3,50", "12,00", None, "0,75"] * 5,
            "diagnosed": ["03/02/2021", "28/11/2020", "15/06/2022", "01/01/2020", "", "30/09/2021"]
            * 5,
            "ward_code": ["007", "012", "007", "101", "012", "007"] * 5,
            "k": np.arange(30) % 4,
        }
    )
    with pytest.warns(Warning, match=r"column 'crp': 5 censored value\(s\) such as '<0,5'"):
        metadata, synthetic = fit_and_sample_with_warnings(table)
    assert metadata.columns["crp"].extra["text"] == {"as": "number", "decimal": ",", "places": 2}
    assert metadata.columns["diagnosed"].extra["text"] == {"as": "date", "format": "%d/%m/%Y"}
    assert metadata.kinds["ward_code"] == "categorical"  # leading zeros: codes
    assert synthetic["crp"].dropna().str.fullmatch(r"\d+,\d\d").all()
    assert synthetic["diagnosed"].dropna().str.fullmatch(r"\d\d/\d\d/\d{4}").all()
    assert set(synthetic["ward_code"]) <= {"007", "012", "101"}


def _grouped(values: np.ndarray, sep: str, mark: str, places: int) -> list[str]:
    """Numbers written with ``sep`` between thousands and ``mark`` before decimals."""
    return [
        f"{v:,.{places}f}".replace(",", "\0").replace(".", mark).replace("\0", sep) for v in values
    ]


@pytest.mark.parametrize(
    ("sep", "mark", "places"),
    [(",", ".", 0), (",", ".", 1), (".", ",", 1), (" ", ".", 0), ("'", ".", 0), ("\u202f", ",", 2)],
)
def test_thousands_separators_are_read_and_written_back(sep, mark, places):
    rng = np.random.default_rng(0)
    numbers = np.round(rng.lognormal(9, 2, 60), places)
    table = pd.DataFrame({"plt": _grouped(numbers, sep, mark, places), "x": rng.normal(size=60)})
    metadata = Metadata.infer(table)
    assert metadata.kinds["plt"] == "numeric"
    assert encoding_of(metadata.columns["plt"])["thousands"] == sep
    assert read_text(table["plt"]).numbers.to_numpy() == pytest.approx(numbers)
    synthetic = fedsynth.make("gaussian_copula", seed=0).fit(table, metadata).sample(60, seed=1)
    body = r"\d{1,3}(?:" + re.escape(sep) + r"\d{3})*"
    pattern = body + (re.escape(mark) + r"\d{" + str(places) + "}" if places else "")
    assert synthetic["plt"].dropna().str.fullmatch(pattern).all()
    assert read_text(synthetic["plt"], encoding_of(metadata.columns["plt"])).numbers.min() >= 0


def test_a_lone_comma_group_stays_a_decimal_comma():
    # "1,234" alone could be either; a decimal-comma locale's spreadsheet reads 1.234.
    reading = read_text(pd.Series(["1,234", "0,5", "2"]))
    assert reading.numbers.tolist() == pytest.approx([1.234, 0.5, 2.0])
    assert "thousands" not in reading.encoding


def fit_and_sample_with_warnings(table: pd.DataFrame) -> tuple[Metadata, pd.DataFrame]:
    """``fit_and_sample`` with gaussian_copula, leaving warnings to the caller."""
    metadata = Metadata.infer(table)
    generator = fedsynth.make("gaussian_copula", seed=0).fit(table, metadata)
    return metadata, generator.sample(40, seed=1)


def test_a_loaded_model_writes_text_and_dates_the_same_way(tmp_path):
    rng = np.random.default_rng(0)
    days = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, 40), unit="D")
    table = pd.DataFrame(
        {
            "crp": pd.Series([f"{v:.2f}".replace(".", ",") for v in rng.uniform(1, 9, 40)]),
            "diagnosed": list(days.strftime("%d.%m.%Y")),
            "seen": pd.Series(days.tz_localize("UTC").tz_convert("Europe/Paris")),
            "x": rng.normal(size=40),
        }
    ).astype({"crp": "string[pyarrow]"})
    generator = fedsynth.make("gaussian_copula", seed=0).fit(table)
    loaded = fedsynth.load(generator.save(tmp_path / "model"))
    pd.testing.assert_frame_equal(loaded.sample(10, seed=2), generator.sample(10, seed=2))
    synthetic = loaded.sample(10, seed=2)
    assert (synthetic.dtypes == table.dtypes).all()
    assert synthetic["crp"].str.fullmatch(r"\d,\d\d").all()
    assert synthetic["diagnosed"].str.fullmatch(r"\d\d\.\d\d\.\d{4}").all()
