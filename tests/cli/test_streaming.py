"""``fedsynth sample`` streams its rows to the file in bounded memory.

Measured on the 2-core development machine (Linux, CPython 3.11) for 2,000,000 rows of a
gaussian copula fitted on 300 rows x 10 columns (8 numbers, 2 categories), as the process's
peak virtual size (VmPeak, what ``RLIMIT_AS`` bounds) and peak resident size (VmHWM):

- importing the command line alone: about 640 MB virtual, 270 MB resident;
- ``fedsynth sample --rows 2000000 --out x.csv`` (blocks of 50,000 rows written as drawn):
  780 MB virtual, 304 MB resident, 43 s (24 s as the test below, under the ceiling);
- the same command before streaming (all rows gathered, then written): 1,070 MB virtual,
  597 MB resident;
- ``sample(2_000_000)`` in memory as one whole-table draw: 1,330 MB virtual, 928 MB resident
  (``sample`` now draws a table this large in two parts of 1,000,000 rows, which stays under
  the ceiling; the check below switches the parts off).

The ceiling of 1 GiB of address space therefore holds the streamed run with some 240 MB to
spare, and a full materialisation of the 2,000,000 rows exceeds it (checked below as well).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import fedsynth

CEILING = 1024**3
ROWS = 2_000_000


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CEILING, CEILING))


def _run(*args: str) -> subprocess.CompletedProcess:
    # One thread per library: thread stacks count towards the address space.
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, *args],
        preexec_fn=_limited,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 300
    columns = {f"lab{i}": np.round(rng.normal(50, 10, n), 1) for i in range(8)}
    columns["sex"] = rng.choice(["F", "M"], n)
    columns["stage"] = rng.choice(["I", "II", "III"], n)
    path = tmp_path_factory.mktemp("streaming") / "model"
    fedsynth.make("gaussian_copula", seed=0).fit(pd.DataFrame(columns)).save(path)
    return path


def test_two_million_rows_stream_to_csv_under_a_memory_ceiling(model, tmp_path):
    out = tmp_path / "synthetic.csv"
    done = _run("-m", "fedsynth.cli", "sample", str(model), "--rows", str(ROWS), "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    with open(out, encoding="utf-8") as handle:
        header = handle.readline().strip().split(",")
        rows = sum(1 for _ in handle)
    assert rows == ROWS
    assert header == [f"lab{i}" for i in range(8)] + ["sex", "stage"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_the_ceiling_stops_a_full_materialisation(model):
    # One whole-table draw, as a command that gathered every row before writing would make:
    # sample() itself now draws tables this large in parts (``_parts.py``), which keeps its
    # intermediates small, so the parts are switched off here.
    draw = (
        "import fedsynth; from fedsynth.tabular.generators import _parts; "
        f"_parts.SAMPLE_PART_CELLS = 10**12; fedsynth.load({str(model)!r}).sample({ROWS})"
    )
    done = _run("-c", draw)
    assert done.returncode != 0
    assert "MemoryError" in done.stderr


def test_rows_must_be_positive(model, tmp_path):
    out = tmp_path / "none.csv"
    done = _run("-m", "fedsynth.cli", "sample", str(model), "--rows", "0", "--out", str(out))
    assert done.returncode == 2
    assert "--rows" in done.stderr and "1" in done.stderr
    assert not out.exists()


def test_parquet_is_written_block_by_block(model, tmp_path):
    from fedsynth.cli import main, progress

    out = tmp_path / "synthetic.parquet"
    chunk = progress.SAMPLE_CHUNK
    progress.SAMPLE_CHUNK = 40
    try:
        assert main(["sample", str(model), "--rows", "100", "--out", str(out), "--seed", "0"]) == 0
    finally:
        progress.SAMPLE_CHUNK = chunk
    table = pd.read_parquet(out)
    gen = fedsynth.load(model)
    expected = pd.concat(gen.sample_blocks(100, block_size=40, seed=0), ignore_index=True)
    pd.testing.assert_frame_equal(table, expected)
