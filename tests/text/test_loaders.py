"""Note loaders: a folder of text files, a CSV or Parquet column."""

from __future__ import annotations

import pandas as pd
import pytest

from fedsynth.exceptions import NoteDataError
from fedsynth.text.loaders import notes_from_frame, read_notes_folder, read_notes_table


def test_folder_of_text_files(tmp_path):
    (tmp_path / "b.txt").write_text("Hb 9.1 g/dL.")
    (tmp_path / "a.txt").write_text("PLT 45.")
    (tmp_path / "ignored.md").write_text("not a note")
    notes = read_notes_folder(tmp_path)
    assert notes["note_id"].tolist() == ["a", "b"]
    assert notes["text"].tolist() == ["PLT 45.", "Hb 9.1 g/dL."]


def test_folder_problems_name_the_files(tmp_path):
    with pytest.raises(NoteDataError, match="does not exist"):
        read_notes_folder(tmp_path / "missing")
    with pytest.raises(NoteDataError, match="no file matching"):
        read_notes_folder(tmp_path)
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(NoteDataError) as error:
        read_notes_folder(tmp_path)
    assert "empty.txt: empty" in str(error.value) and "binary.txt: not utf-8" in str(error.value)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_table_column_with_patient_ids(tmp_path, suffix):
    frame = pd.DataFrame({"pid": ["P1", "P2"], "note": ["Hb 9.1", "PLT 45"]})
    path = tmp_path / f"notes{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    notes = read_notes_table(path, text_column="note", id_column="pid")
    assert notes.to_dict("list") == {
        "note_id": ["P1", "P2"], "patient_id": ["P1", "P2"], "text": ["Hb 9.1", "PLT 45"]
    }  # fmt: skip
    without_ids = read_notes_table(path, text_column="note")
    assert without_ids["note_id"].tolist() == ["0", "1"]


def test_table_problems_name_the_file_and_column(tmp_path):
    path = tmp_path / "notes.csv"
    pd.DataFrame({"pid": [1, 2, 3], "note": ["Hb 9.1", None, " "]}).to_csv(path, index=False)
    with pytest.raises(NoteDataError, match=r"no column 'text'.*\['pid', 'note'\]"):
        read_notes_table(path)
    with pytest.raises(NoteDataError, match=r"'note' has 2 missing, blank .*rows 1, 2"):
        read_notes_table(path, text_column="note")
    with pytest.raises(NoteDataError, match=r"unknown format '\.json'"):
        (tmp_path / "n.json").write_text("{}")
        read_notes_table(tmp_path / "n.json")
    with pytest.raises(NoteDataError, match="does not exist"):
        read_notes_table(tmp_path / "none.csv")
    with pytest.raises(NoteDataError, match="no column 'pid'"):
        notes_from_frame(pd.DataFrame({"text": ["x"]}), id_column="pid")


def test_a_table_without_notes_a_folder_or_another_encoding_is_named(tmp_path):
    header_only = tmp_path / "notes.csv"
    header_only.write_text("text\n")
    with pytest.raises(NoteDataError, match=r"holds no notes \(no rows under column 'text'\)"):
        read_notes_table(header_only)
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(NoteDataError, match=r"folder.csv' is a folder; expected a .csv"):
        read_notes_table(tmp_path / "folder.csv")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("text\nprésente une anémie\n".encode("latin-1"))
    with pytest.raises(NoteDataError, match=r"is not UTF-8 text \(byte 0xe9 at position 7\)"):
        read_notes_table(latin1)
