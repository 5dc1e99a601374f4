"""Reading uploaded notes: a zip's .txt files are read as UTF-8 or refused naming each file."""

from __future__ import annotations

import io
import zipfile

import pytest

from fedsynth.web.errors import InvalidRequestError
from fedsynth.web.notes_store import read_uploaded_notes


def notes_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


NOTES = {f"notes/n{i}.txt": f"Hb {9 + i}.1 g/dL, anémie.".encode() for i in range(4)}


def test_notes_of_a_zip_leave_out_what_macos_adds():
    content = notes_zip(
        {**NOTES, "__MACOSX/notes/._n0.txt": b"\x00\x05\x16\x07", "._x.txt": b"\xff"}
    )
    assert read_uploaded_notes("notes.zip", content) == [
        f"Hb {9 + i}.1 g/dL, anémie." for i in range(4)
    ]


def test_a_note_that_is_not_utf8_is_refused_naming_the_file():
    latin1 = {"notes/old.txt": "Patient présente une anémie.".encode("latin-1")}
    with pytest.raises(
        InvalidRequestError,
        match=r"1 note file\(s\) are not UTF-8 text: notes/old\.txt \(byte 0xe9\)",
    ):
        read_uploaded_notes("notes.zip", notes_zip({**NOTES, **latin1}))
