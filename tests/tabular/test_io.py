"""Reading and writing tables: paths of the wrong kind are refused naming the path."""

from __future__ import annotations

import pandas as pd
import pytest

from fedsynth.exceptions import InvalidDataError
from fedsynth.tabular.io import read_table, write_table, write_table_blocks


def test_a_folder_given_as_the_table_is_named_as_a_folder(tmp_path):
    folder = tmp_path / "cohort.csv"
    folder.mkdir()
    with pytest.raises(InvalidDataError, match=r"cohort\.csv' is a folder; expected a table file"):
        read_table(folder)


@pytest.mark.parametrize("name", ["synthetic.xlsx", "synthetic", "synthetic.json"])
def test_an_output_name_that_is_not_a_table_file_is_refused(tmp_path, name):
    frame = pd.DataFrame({"a": [1, 2]})
    with pytest.raises(
        InvalidDataError, match=r"expected a name ending in \.csv, \.tsv, \.parquet"
    ):
        write_table(frame, tmp_path / name)
    with pytest.raises(
        InvalidDataError, match=r"expected a name ending in \.csv, \.tsv, \.parquet"
    ):
        write_table_blocks([frame], tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_an_output_folder_is_refused(tmp_path):
    (tmp_path / "out.csv").mkdir()
    with pytest.raises(InvalidDataError, match=r"out\.csv' is a folder; expected a file name"):
        write_table_blocks([pd.DataFrame({"a": [1]})], tmp_path / "out.csv")
