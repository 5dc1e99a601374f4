"""Damaged model folders give one clear ModelFileError naming the file, never a traceback.

Each damage below is applied to a copy of a saved tiny gaussian_copula and a tiny tvae; loading
the copy (``fedsynth.load``, the federated ``load_model`` and ``from_bytes``) must raise
:class:`ModelFileError` whose message names the damaged file.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fedsynth
from fedsynth.cli import main
from fedsynth.core.base import BaseEstimator
from fedsynth.core.io import CHECKSUMS_KEY, array_checksum, load_model_files, save_model_files
from fedsynth.exceptions import ModelFileError
from fedsynth.federated.task import load_model

CONFIG, ARRAYS = "model.json", "arrays.npz"


def _table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 60
    return pd.DataFrame(
        {
            "age": rng.integers(40, 90, n),
            "sex": rng.choice(["F", "M"], n),
            "hb": np.round(rng.normal(10, 1.5, n), 1),
        }
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    """A tiny gaussian_copula and a tiny tvae, each saved once for the module."""
    root = tmp_path_factory.mktemp("saved")
    tiny = {
        "gaussian_copula": {},
        "tvae": {"epochs": 1, "batch_size": 30, "hidden_dims": (8,), "latent_dim": 2},
    }
    return {
        name: fedsynth.make(name, seed=0, **params).fit(_table()).save(root / name)
        for name, params in tiny.items()
    }


# ---------------------------------------------------------------- damages
def _edit_config(folder: Path, edit: Callable[[dict], object]) -> None:
    config = json.loads((folder / CONFIG).read_text())
    replaced = edit(config)
    (folder / CONFIG).write_text(json.dumps(config if replaced is None else replaced))


def _edit_arrays(folder: Path, edit: Callable[[dict], None]) -> None:
    with np.load(folder / ARRAYS) as npz:
        arrays = {key: npz[key] for key in npz.files}
    edit(arrays)
    np.savez(folder / ARRAYS, **arrays)


def _first_float(arrays: dict) -> str:
    return next(k for k, v in arrays.items() if v.dtype.kind == "f" and v.size)


def _truncate(folder: Path) -> None:
    data = (folder / ARRAYS).read_bytes()
    (folder / ARRAYS).write_bytes(data[: len(data) // 2])


def _flip_byte(folder: Path) -> None:
    data = bytearray((folder / ARRAYS).read_bytes())
    data[len(data) // 3] ^= 0xFF
    (folder / ARRAYS).write_bytes(bytes(data))


def _change_one_value(arrays: dict) -> None:
    key = _first_float(arrays)
    arrays[key] = arrays[key].copy()
    arrays[key].flat[0] += 1.0


def _rename_column(config: dict) -> None:
    columns = config["metadata"]["columns"]
    columns["AGE"] = columns.pop("age")


def _wrong_type_param(config: dict) -> None:
    key = "n_quantiles" if config["generator"] == "gaussian_copula" else "epochs"
    config["params"][key] = "many"


def _edit_checksum(config: dict) -> None:
    name = sorted(config[CHECKSUMS_KEY])[0]
    config[CHECKSUMS_KEY][name] = "0" * 64


def _reshape_without_checksums(folder: Path) -> None:
    """A file of fedsynth 0.1.0 (no checksums) whose arrays do not fit its state."""
    _edit_config(folder, lambda c: c.pop(CHECKSUMS_KEY) and None)

    def grow(arrays: dict) -> None:
        for key, value in arrays.items():
            if value.dtype.kind == "f" and value.ndim >= 1 and not key.startswith("copy_guard"):
                arrays[key] = np.concatenate([value, value])

    _edit_arrays(folder, grow)


def _drop_state_entry(config: dict) -> None:
    config.pop(CHECKSUMS_KEY)
    config["state"].pop(sorted(config["state"])[0])


DAMAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated arrays": (_truncate, ARRAYS),
    "garbage arrays": (lambda f: (f / ARRAYS).write_bytes(b"\x00garbage" * 40), ARRAYS),
    "flipped byte in npz": (_flip_byte, ARRAYS),
    "garbage model.json": (lambda f: (f / CONFIG).write_text("{not json"), CONFIG),
    "deleted model.json": (lambda f: (f / CONFIG).unlink(), CONFIG),
    "empty folder": (lambda f: [p.unlink() for p in f.iterdir()], CONFIG),
    "model.json a list": (lambda f: _edit_config(f, lambda c: [c]), CONFIG),
    "state removed": (lambda f: _edit_config(f, lambda c: c.pop("state") and None), CONFIG),
    "state entry removed": (lambda f: _edit_config(f, _drop_state_entry), CONFIG),
    "column renamed in metadata": (lambda f: _edit_config(f, _rename_column), CONFIG),
    "metadata unparsable": (
        lambda f: _edit_config(f, lambda c: c.update(metadata={"columns": 3})),
        CONFIG,
    ),
    "param of wrong type": (lambda f: _edit_config(f, _wrong_type_param), CONFIG),
    "unknown param": (
        lambda f: _edit_config(f, lambda c: c["params"].update(warp_speed=9)),
        "warp_speed",
    ),
    "unknown generator": (
        lambda f: _edit_config(f, lambda c: c.update(generator="no_such_model")),
        CONFIG,
    ),
    "newer format_version": (
        lambda f: _edit_config(f, lambda c: c.update(format_version=99)),
        CONFIG,
    ),
    "array dropped": (lambda f: _edit_arrays(f, lambda a: a.pop(_first_float(a))), ARRAYS),
    "array value changed": (lambda f: _edit_arrays(f, _change_one_value), ARRAYS),
    "extra array": (lambda f: _edit_arrays(f, lambda a: a.update(extra=np.zeros(2))), ARRAYS),
    "checksum edited": (lambda f: _edit_config(f, _edit_checksum), ARRAYS),
    "arrays reshaped in an old file": (_reshape_without_checksums, "model.json/arrays.npz"),
}


@pytest.fixture(params=["gaussian_copula", "tvae"])
def copy(request, saved, tmp_path) -> Path:
    return Path(shutil.copytree(saved[request.param], tmp_path / "model"))


@pytest.mark.parametrize("damage", DAMAGES)
def test_every_damage_is_a_model_file_error_naming_the_file(copy, damage):
    apply, named = DAMAGES[damage]
    apply(copy)
    with pytest.raises(ModelFileError, match=re.escape(named)):
        fedsynth.load(copy)
    with pytest.raises(ModelFileError, match=re.escape(named)):
        load_model(copy)


@pytest.mark.parametrize(
    "damage", ["array value changed", "state removed", "param of wrong type", "extra array"]
)
def test_damaged_model_bytes_are_a_model_file_error(copy, damage):
    apply, named = DAMAGES[damage]
    apply(copy)
    blob = io.BytesIO()
    with zipfile.ZipFile(blob, "w") as zf:
        zf.write(copy / CONFIG, CONFIG)
        zf.write(copy / ARRAYS, ARRAYS)
    with pytest.raises(ModelFileError, match=re.escape(named)):
        BaseEstimator.from_bytes(blob.getvalue())


def test_truncated_model_bytes_are_a_model_file_error(saved):
    blob = fedsynth.load(saved["tvae"]).to_bytes()
    with pytest.raises(ModelFileError, match="not a readable saved model"):
        BaseEstimator.from_bytes(blob[: len(blob) // 2])


def test_saved_files_record_a_checksum_per_array(saved):
    config, arrays = load_model_files(saved["gaussian_copula"])
    assert config[CHECKSUMS_KEY] == {name: array_checksum(a) for name, a in arrays.items()}
    # The checksum sees the dtype and the shape, not only the bytes.
    values = np.arange(4, dtype=np.int32)
    assert array_checksum(values) != array_checksum(values.reshape(2, 2))
    assert array_checksum(values) != array_checksum(values.view(np.float32))


def test_damaged_mixture_listing_is_a_model_file_error(saved, tmp_path):
    folder = Path(shutil.copytree(saved["gaussian_copula"], tmp_path / "mix" / "part_0"))
    (folder.parent / "mixture.json").write_text(json.dumps({"parts": [{"name": "a"}]}))
    with pytest.raises(ModelFileError, match=re.escape("mixture.json")):
        load_model(folder.parent)


@pytest.mark.parametrize("damage", ["truncated arrays", "column renamed in metadata"])
def test_cli_sample_prints_the_error_without_traceback(copy, damage, tmp_path, capsys):
    apply, named = DAMAGES[damage]
    apply(copy)
    code = main(["sample", str(copy), "--out", str(tmp_path / "rows.csv"), "--rows", "5"])
    err = capsys.readouterr().err
    assert code == 1
    assert "problem(s) with the saved model" in err and named in err
    assert "Traceback" not in err
    assert not (tmp_path / "rows.csv").exists()


def test_saving_onto_a_file_is_a_model_file_error_naming_it(tmp_path):
    taken = tmp_path / "model.csv"
    taken.write_text("a,b\n")
    with pytest.raises(
        ModelFileError, match=r"model\.csv' is a file; a model is saved as a folder"
    ):
        save_model_files(taken, {}, {})
    assert taken.read_text() == "a,b\n"
