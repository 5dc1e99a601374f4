"""What strategies put in a message, and its Flower records: the only format glue between the
apps and Flower.

A message's content is a mapping ``{part name: Payload}``. As in Flower's own apps, each part
travels as up to three records: its settings as a ``ConfigRecord`` named ``<part>.config``, its
arrays (weights) as an ``ArrayRecord`` named ``<part>.arrays`` and its numbers (row count,
losses, privacy spent) as a ``MetricRecord`` named ``<part>.metrics``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict


@dataclass
class Payload:
    """What one strategy puts in a message: settings, named arrays and metrics.

    ``config`` values are ``str``, ``int``, ``float``, ``bool`` or ``bytes`` (what a Flower
    ``ConfigRecord`` holds); ``arrays`` are numeric numpy arrays; ``metrics`` are ``int`` or
    ``float`` (what a ``MetricRecord`` holds), e.g. ``num-examples`` and ``loss/<name>``.
    """

    config: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    metrics: dict[str, int | float] = field(default_factory=dict)


Content = dict[str, Payload]

_CONFIG, _ARRAYS, _METRICS = ".config", ".arrays", ".metrics"


def to_records(content: Mapping[str, Payload]) -> RecordDict:
    """A message content as a Flower ``RecordDict`` (empty metrics make no record)."""
    records: dict[str, ConfigRecord | ArrayRecord | MetricRecord] = {}
    for name, payload in content.items():
        records[name + _CONFIG] = ConfigRecord(dict(payload.config))
        records[name + _ARRAYS] = ArrayRecord({k: Array(v) for k, v in payload.arrays.items()})
        if payload.metrics:
            records[name + _METRICS] = MetricRecord(dict(payload.metrics))
    return RecordDict(records)


def from_records(records: RecordDict) -> Content:
    """Inverse of :func:`to_records` (other records, e.g. Flower's own, are ignored)."""
    content: Content = {}

    def part(key: str, suffix: str) -> Payload:
        return content.setdefault(key[: -len(suffix)], Payload())

    for key, record in records.config_records.items():
        if key.endswith(_CONFIG):
            part(key, _CONFIG).config = dict(record)
    for key, record in records.array_records.items():
        if key.endswith(_ARRAYS):
            part(key, _ARRAYS).arrays = {k: v.numpy() for k, v in record.items()}
    for key, record in records.metric_records.items():
        if key.endswith(_METRICS):
            part(key, _METRICS).metrics = dict(record)
    return content
