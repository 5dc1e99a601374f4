"""The ``fedsynth`` command.

Exit codes: 0 success, 1 failure (including data that fedsynth cannot use), 2 bad usage (unknown
option, generator, parameter or condition).
"""

from __future__ import annotations

import sys

from fedsynth.cli.app import app, run

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``) and return its exit code."""
    return run(sys.argv[1:] if argv is None else argv)
