"""The table encoder's saved form: a JSON-ready dict and named numpy arrays, never pickle.

Each column's transform writes its own description and arrays (``get_state``); this module adds
the envelope (format, version, hyperparameters, metadata) and reads it back, refusing what is not
an encoder state or comes from a newer format.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedsynth._version import __version__
from fedsynth.exceptions import ModelFileError, Problem
from fedsynth.tabular.metadata import Metadata
from fedsynth.tabular.transforms.base import ColumnTransform
from fedsynth.tabular.transforms.categorical import CategoricalColumn
from fedsynth.tabular.transforms.constant import ConstantColumn
from fedsynth.tabular.transforms.numeric import ContinuousColumn

FORMAT = "fedsynth-table-encoder"
FORMAT_VERSION = 1

_TRANSFORM_TYPES: dict[str, Any] = {
    "continuous": ContinuousColumn,
    "categorical": CategoricalColumn,
    "constant": ConstantColumn,
}


def encoder_state(
    params: dict[str, Any],
    metadata: Metadata,
    transforms: list[ColumnTransform],
    n_rows: int,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The state of a fitted encoder: its description, and the arrays of its transforms.

    The arrays of the ``i``-th transform are named ``t{i}.<name>``.
    """
    specs, arrays = [], {}
    for i, transform in enumerate(transforms):
        spec, column_arrays = transform.get_state(f"t{i}")
        specs.append(spec)
        arrays.update(column_arrays)
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fedsynth_version": __version__,
        "params": params,
        "n_rows": n_rows,
        "metadata": metadata.to_dict(),
        "transforms": specs,
    }
    return config, arrays


def read_encoder_state(
    config: dict[str, Any], arrays: dict[str, np.ndarray]
) -> tuple[dict[str, Any], Metadata, list[ColumnTransform], int]:
    """Inverse of :func:`encoder_state`: hyperparameters, metadata, transforms and rows.

    Raises
    ------
    ModelFileError
        When ``config`` is not an encoder state, or is from a newer format.
    """
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFileError([Problem(None, "not the state of a fedsynth TableEncoder")])
    if int(config.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelFileError(
            [
                Problem(
                    None,
                    f"encoder state from fedsynth {config.get('fedsynth_version')} uses a "
                    f"newer format; upgrade fedsynth (this is {__version__})",
                )
            ]
        )
    transforms = [
        _TRANSFORM_TYPES[spec["type"]].from_state(spec, arrays, f"t{i}")
        for i, spec in enumerate(config["transforms"])
    ]
    metadata = Metadata.from_dict(config["metadata"])
    return dict(config["params"]), metadata, transforms, config["n_rows"]
