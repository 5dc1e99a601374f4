"""One column far off fails the report, even when the means over columns are fine (issue 26)."""

from __future__ import annotations

import pytest

from fedsynth.tabular.validation import SCORE_THRESHOLDS, validate
from fedsynth.tabular.validation.worst_columns import WORST_COLUMN_CHECKS

FAST = ("fidelity",)


def _validate(train, synthetic, metadata):
    return validate(train, synthetic, metadata=metadata, families=FAST, max_rows=300)


def _worst_flags(report) -> dict[str, tuple[str, str]]:
    return {f.name: (f.status, f.rule) for f in report.flags if f.name in WORST_COLUMN_CHECKS}


@pytest.fixture(scope="module")
def faithful(split, metadata):
    train, other, _ = split
    return _validate(train, other, metadata)


def test_every_check_has_documented_thresholds():
    assert set(WORST_COLUMN_CHECKS) <= set(SCORE_THRESHOLDS)


def test_a_second_real_sample_passes_every_worst_column_check(faithful):
    flags = _worst_flags(faithful)
    assert set(flags) == set(WORST_COLUMN_CHECKS)
    assert {status for status, _ in flags.values()} == {"pass"}, flags
    assert faithful.status == "pass", [(f.name, f.status) for f in faithful.flags]


@pytest.mark.parametrize(
    ("column", "value", "check"),
    [("site", "site_1", "worst_discrete_column"), ("age", 70, "worst_numeric_column")],
)
def test_a_constant_column_fails_and_is_named(split, metadata, faithful, column, value, check):
    train, other, _ = split
    broken = other.copy()
    broken[column] = value
    report = _validate(train, broken, metadata)
    # The mean over columns barely moves: only the worst-column check sees it.
    assert report.scores["csf"] > faithful.scores["csf"] - 0.05
    assert report.status == "fail"
    status, rule = _worst_flags(report)[check]
    assert status == "fail" and repr(column) in rule
    assert report.worst_columns[0].column == column
    assert f"<td>{column}</td>" in _first_table_after(report, "Worst columns")


@pytest.mark.parametrize(
    ("column", "source", "check"),
    [("age", "plt", "worst_numeric_column"), ("sex", "site", "worst_discrete_column")],
)
def test_a_column_holding_another_columns_values_is_named(split, metadata, column, source, check):
    train, other, _ = split
    broken = other.copy()
    broken[column] = other[source].to_numpy()
    report = _validate(train, broken, metadata)
    assert report.status != "pass"
    status, rule = _worst_flags(report)[check]
    assert status != "pass" and repr(column) in rule
    assert report.worst_columns[0].column == column
    assert report.to_dict()["worst_columns"][0]["column"] == column


def test_missing_values_added_to_one_column_are_flagged(split, metadata):
    train, other, _ = split
    broken = other.copy()
    broken.loc[broken.index[: len(broken) // 4], "hb"] = float("nan")
    report = _validate(train, broken, metadata)
    status, rule = _worst_flags(report)["worst_missing_rate"]
    assert status == "fail" and "'hb'" in rule


def _first_table_after(report, heading: str) -> str:
    from fedsynth.tabular.validation.report import render_html

    page = render_html(report)
    start = page.index(f"<h2>{heading}</h2>")
    return page[start : page.index("</table>", start)]
