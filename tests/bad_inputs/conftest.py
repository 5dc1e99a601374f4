"""Shared helpers of the bad-input corpus: tiny clinical tables, the files hospitals export them
as (semicolon CSV with decimal commas, tab-separated .csv, Latin-1, BOM...), and a web client.

Every case of the corpus asserts the exact outcome: the error type and that the message names
the file, column or field, or the correct result.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tests.web.conftest import auth, make_app

#: A semicolon CSV in Latin-1 (Windows-1252), as French or German exports often are.
LATIN1 = "ville;âge;hb\nZürich;61;12.5\nBesançon;70;9.8\n".encode("latin-1")


def cohort(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """A tiny simulated cohort: integer age, a lab value with decimals, sex, a survival pair."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(40, 90, n),
            "hb": rng.normal(11.0, 1.5, n).round(1),
            "sex": rng.choice(["F", "M"], n),
            "os_months": rng.uniform(0.5, 60.0, n).round(1),
            "os_status": rng.integers(0, 2, n),
        }
    )


def european_csv(frame: pd.DataFrame) -> bytes:
    """The table as a European hospital export: semicolons, decimal commas."""
    return frame.to_csv(index=False, sep=";", decimal=",").encode()


def write(folder: Path, name: str, content: bytes | str) -> Path:
    """Write a file (text as UTF-8) and return its path."""
    path = folder / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def quiet_infer(frame: pd.DataFrame, **kwargs):
    """``Metadata.infer`` with its warnings recorded: ``(metadata, [messages])``."""
    from fedsynth.tabular.metadata import Metadata

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metadata = Metadata.infer(frame, **kwargs)
    return metadata, [str(w.message) for w in caught]


@pytest.fixture
def web(tmp_path) -> Iterator:
    """``web(**settings)``: a client of a running app with the token (closed at the end)."""
    clients: list[TestClient] = []

    def start(**settings) -> TestClient:
        app = make_app(tmp_path / f"data{len(clients)}", **settings)
        client = TestClient(app, headers=auth(app))
        client.__enter__()
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)
