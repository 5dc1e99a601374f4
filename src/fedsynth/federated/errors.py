"""Errors of federated training."""

from __future__ import annotations

from collections.abc import Iterable

from fedsynth.exceptions import FedsynthError, Problem


class FederationError(FedsynthError):
    """A federation could not run or finish (too few sites, a deadline passed, a process died)."""


class SiteRefusedError(FedsynthError):
    """A site's data do not fit the shared metadata; the site is left out of the federation.

    Parameters
    ----------
    site : str
        The site's name.
    problems : iterable of Problem
        What does not fit, each naming its column.
    """

    def __init__(self, site: str, problems: Iterable[Problem]):
        self.site = site
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"site {site!r} refused: its data do not fit the shared metadata "
            f"({len(self.problems)} problem(s)):\n{lines}"
        )

    @property
    def columns(self) -> list[str]:
        """The columns named by the problems, in order."""
        return list(dict.fromkeys(p.column for p in self.problems if p.column is not None))
