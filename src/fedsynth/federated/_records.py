"""Payloads to and from Flower records: the only format glue between the apps and Flower.

A message's content is a mapping ``{part name: Payload}``; each part travels as a
``ConfigRecord`` named ``<part>.config`` and an ``ArrayRecord`` named ``<part>.arrays``.
"""

from __future__ import annotations

from collections.abc import Mapping

from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

from fedsynth.federated.strategies import Payload

Content = dict[str, Payload]


def to_records(content: Mapping[str, Payload]) -> RecordDict:
    """A message content as a Flower ``RecordDict``."""
    records: dict[str, ConfigRecord | ArrayRecord] = {}
    for name, payload in content.items():
        records[f"{name}.config"] = ConfigRecord(dict(payload.config))
        records[f"{name}.arrays"] = ArrayRecord({k: Array(v) for k, v in payload.arrays.items()})
    return RecordDict(records)


def from_records(records: RecordDict) -> Content:
    """Inverse of :func:`to_records` (other records, e.g. Flower's own, are ignored)."""
    content: Content = {}
    for key, record in records.config_records.items():
        if key.endswith(".config"):
            content.setdefault(key[: -len(".config")], Payload()).config = dict(record)
    for key, record in records.array_records.items():
        if key.endswith(".arrays"):
            arrays = {k: v.numpy() for k, v in record.items()}
            content.setdefault(key[: -len(".arrays")], Payload()).arrays = arrays
    return content
