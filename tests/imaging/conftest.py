"""Imaging tests train tiny torch networks: one thread each, as on a shared 2-core machine
two OpenMP threads of tiny convolutions wait on each other far longer than they compute."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    """Every imaging test on one torch thread (``one_torch_thread`` in ``tests/conftest.py``)."""
