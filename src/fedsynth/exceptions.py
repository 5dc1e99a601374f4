"""Errors and warnings raised by fedsynth.

User mistakes raise :class:`InvalidDataError` (or :class:`MetadataError`) with one message that
lists every problem found, each naming the column and what was expected, so that a user fixes
their table in one pass instead of one traceback at a time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class FedsynthError(Exception):
    """Base class of every error raised on purpose by fedsynth."""


@dataclass(frozen=True)
class Problem:
    """One problem found while checking a table or a metadata description.

    Parameters
    ----------
    column : str or None
        The column concerned, or ``None`` for a problem with the whole table.
    message : str
        What is wrong and what was expected.
    """

    column: str | None
    message: str

    def __str__(self) -> str:
        if self.column is None:
            return self.message
        return f"column {self.column!r}: {self.message}"


class _ProblemsError(FedsynthError, ValueError):
    """An error that carries a list of :class:`Problem`."""

    headline = "problems found"

    def __init__(self, problems: Iterable[Problem | str]):
        self.problems: list[Problem] = [
            p if isinstance(p, Problem) else Problem(None, str(p)) for p in problems
        ]
        lines = "\n".join(f"  - {p}" for p in self.problems)
        n = len(self.problems)
        super().__init__(f"{n} {self.headline}:\n{lines}")


class InvalidDataError(_ProblemsError):
    """The data do not fit what fedsynth (or the given metadata) expects."""

    headline = "problem(s) with the data"


class ImageDataError(InvalidDataError):
    """Images, image files or their labels do not fit what fedsynth expects (each problem
    names the file)."""

    headline = "problem(s) with the images"


class MetadataError(_ProblemsError):
    """A metadata description (inferred, overridden or loaded) is not valid."""

    headline = "problem(s) with the metadata"


class NoteDataError(FedsynthError, ValueError):
    """Clinical notes could not be read: a missing or empty file or folder, a missing column."""


class NotFittedError(FedsynthError, AttributeError):
    """A generator or encoder was used before ``fit``."""


class UnknownGeneratorError(FedsynthError, KeyError):
    """``fedsynth.make`` was given a name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0])


class ModelFileError(_ProblemsError):
    """A saved model directory is missing, incomplete or from an incompatible version."""

    headline = "problem(s) with the saved model"


class FedsynthWarning(UserWarning):
    """Base class of fedsynth's warnings."""


class DataWarning(FedsynthWarning):
    """Something in the data is unusual but can be handled (constant column, identifiers)."""


class ParameterError(FedsynthError, ValueError):
    """A generator's hyperparameters are invalid (each problem names the parameter and what was
    expected); raised by ``fit``, before any work."""


class ConditionError(FedsynthError, ValueError):
    """Conditions for ``sample`` name unknown columns or values, or cannot be met."""


class ConditionWarning(FedsynthWarning):
    """Conditional sampling needed a fallback (e.g. rejection sampling) that is worth knowing."""
