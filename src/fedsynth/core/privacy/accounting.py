"""The privacy ledger of a model: every spend of privacy budget, and what they add up to.

Each time a model looks at the data under differential privacy it records a :class:`Spend`:
what was released (a structure, noisy counts, DP-SGD training, an encoder statistic, a federated
round), by which mechanism, at which (epsilon, delta), and for which site's patients.

Composition
-----------
The total is the *basic sequential composition* of the spends: epsilons add up and deltas add
up (Dwork and Roth 2014, theorem 3.16). It holds for any mix of mechanisms, each chosen after
seeing the outputs of the previous ones. Within one spend a tighter rule may already have been
used (DP-SGD composes its steps with an Opacus accountant; the spend holds the result).

Spends that name a ``site`` touch only that site's patients. A patient belongs to one site, so
the spends of different sites compose in parallel: the guarantee of a patient at site ``s`` is
the sum of the spends on all patients (``site=None``) and those on site ``s``, and the model's
total is that sum for the worst site.

The ledger may carry a cap, ``max_epsilon``: a spend that would take the total above it is
refused before anything is released.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from fedsynth.exceptions import FedsynthError

COMPOSITION = "basic sequential composition (epsilons and deltas add up); parallel across sites"
# Floating-point slack when comparing a total with the cap: splitting a budget into shares and
# adding them back must not be refused for a rounding error.
_TOLERANCE = 1e-9


class PrivacyBudgetError(FedsynthError):
    """A spend would take a model's privacy loss above its budget cap (``max_epsilon``)."""


@dataclass(frozen=True)
class Spend:
    """One release of information about the data under differential privacy.

    Parameters
    ----------
    what : str
        What was released, e.g. ``"structure"`` or ``"DP-SGD training (300 epochs)"``.
    mechanism : str
        How, e.g. ``"laplace"``, ``"gaussian"``, ``"exponential"``, ``"dp-sgd (rdp)"``.
    epsilon, delta : float
        Its privacy loss.
    site : str or None
        The site whose patients it concerns; ``None`` for all patients.
    details : dict
        What an auditor needs to recompute it (noise scale, sensitivity, steps, ...).
    """

    what: str
    mechanism: str
    epsilon: float
    delta: float = 0.0
    site: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


class PrivacyLedger:
    """Every spend of a model, their composition and an optional budget cap.

    Parameters
    ----------
    max_epsilon : float, optional
        Budget cap on the total epsilon; ``None`` for none.
    spends : iterable of Spend, optional
        Spends already made (a loaded model).

    Attributes
    ----------
    spends : list of Spend
        In the order they were made.

    Examples
    --------
    >>> ledger = PrivacyLedger(max_epsilon=1.0)
    >>> ledger.charge("counts", "laplace", 0.6)
    Spend(what='counts', mechanism='laplace', epsilon=0.6, delta=0.0, site=None, details={})
    >>> ledger.epsilon
    0.6
    >>> ledger.charge("more counts", "laplace", 0.5)
    Traceback (most recent call last):
    ...
    fedsynth.core.privacy.accounting.PrivacyBudgetError: refused: more counts (laplace, \
epsilon=0.5) \
would take the privacy loss to epsilon=1.1, above the budget cap max_epsilon=1 \
(already spent: epsilon=0.6, delta=0)
    """

    composition = COMPOSITION

    def __init__(self, max_epsilon: float | None = None, spends: Iterable[Spend] = ()):
        self.max_epsilon = max_epsilon
        self.spends: list[Spend] = list(spends)

    # ------------------------------------------------------------------ totals
    def spent(self, site: str | None = None) -> tuple[float, float]:
        """``(epsilon, delta)`` of the patients of ``site``; without one, of the worst-off
        patients (those of the site with the largest total, or everyone when no spend names a
        site)."""
        if site is not None:
            return self._total(s for s in self.spends if s.site in (None, site))
        sites = {s.site for s in self.spends if s.site is not None}
        if not sites:
            return self._total(self.spends)
        return max((self.spent(name) for name in sorted(sites)), key=lambda t: (t[0], t[1]))

    @property
    def epsilon(self) -> float:
        """Total epsilon (worst site)."""
        return self.spent()[0]

    @property
    def delta(self) -> float:
        """Total delta (worst site)."""
        return self.spent()[1]

    @staticmethod
    def _total(spends: Iterable[Spend]) -> tuple[float, float]:
        epsilon = delta = 0.0
        for spend in spends:
            epsilon += spend.epsilon
            delta += spend.delta
        return epsilon, delta

    # ------------------------------------------------------------------ spending
    def check(
        self, what: str, mechanism: str, epsilon: float, delta: float = 0.0, site: str | None = None
    ) -> None:
        """Refuse, before any release, a spend that would exceed the cap.

        Raises
        ------
        PrivacyBudgetError
            Naming the spend, the total it would reach, the cap and what is already spent.
        ValueError
            For a negative or non-finite epsilon or delta.
        """
        if not (math.isfinite(epsilon) and epsilon >= 0 and math.isfinite(delta) and delta >= 0):
            raise ValueError(
                f"a spend needs finite epsilon and delta >= 0, got {epsilon!r} and {delta!r}"
            )
        if self.max_epsilon is None:
            return
        before = self.spent(site) if site is not None else self.spent()
        after = before[0] + epsilon
        if after > self.max_epsilon * (1 + _TOLERANCE) + _TOLERANCE:
            where = f" for site {site!r}" if site is not None else ""
            raise PrivacyBudgetError(
                f"refused: {what} ({mechanism}, epsilon={epsilon:.4g}) would take the privacy "
                f"loss{where} to epsilon={after:.4g}, above the budget cap "
                f"max_epsilon={self.max_epsilon:.4g} (already spent: epsilon={before[0]:.4g}, "
                f"delta={before[1]:.4g})"
            )

    def charge(
        self,
        what: str,
        mechanism: str,
        epsilon: float,
        delta: float = 0.0,
        *,
        site: str | None = None,
        **details: Any,
    ) -> Spend:
        """Record a spend, after :meth:`check`; call it *before* releasing the result.

        Returns
        -------
        Spend
            The recorded spend.
        """
        self.check(what, mechanism, epsilon, delta, site)
        spend = Spend(what, mechanism, float(epsilon), float(delta), site, dict(details))
        self.spends.append(spend)
        return spend

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the totals and the composition rule for a reader of the file."""
        epsilon, delta = self.spent()
        return {
            "epsilon": epsilon,
            "delta": delta,
            "max_epsilon": self.max_epsilon,
            "composition": self.composition,
            "spends": [s.to_dict() for s in self.spends],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PrivacyLedger:
        """Inverse of :meth:`to_dict` (the totals are recomputed from the spends)."""
        return cls(
            data.get("max_epsilon"),
            [
                Spend(
                    s["what"],
                    s["mechanism"],
                    float(s["epsilon"]),
                    float(s.get("delta", 0.0)),
                    s.get("site"),
                    dict(s.get("details") or {}),
                )
                for s in data.get("spends", [])
            ],
        )

    def summary(self) -> str:
        """One line per spend, then the total: what a data steward reads."""
        lines = [
            f"{s.what}: {s.mechanism}, epsilon={s.epsilon:.4g}, delta={s.delta:.3g}"
            + (f" (site {s.site})" if s.site is not None else "")
            for s in self.spends
        ]
        epsilon, delta = self.spent()
        lines.append(f"total: epsilon={epsilon:.4g}, delta={delta:.3g} ({self.composition})")
        return "\n".join(lines)

    def __repr__(self) -> str:
        epsilon, delta = self.spent()
        cap = "" if self.max_epsilon is None else f", max_epsilon={self.max_epsilon:g}"
        return (
            f"PrivacyLedger(epsilon={epsilon:.4g}, delta={delta:.3g}, "
            f"{len(self.spends)} spend(s){cap})"
        )
