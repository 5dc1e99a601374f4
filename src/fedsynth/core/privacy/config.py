"""The ``dp=`` setting of the generators: a target (epsilon, delta) and how to spend it.

A generator takes ``dp`` as a plain mapping, so that it is stored unchanged among the
hyperparameters and saved in the model's JSON like any other. :class:`DPConfig` types that
mapping; :func:`resolve_dp` checks it (every problem at once) and fills the defaults.

Every guarantee in fedsynth is for *add/remove neighbours*: two tables that differ by the
presence of one patient's row. This is the definition Opacus's accountants use; a guarantee of
epsilon for it is one of 2 epsilon when one patient's row is replaced by another's.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, NotRequired, TypedDict

from fedsynth.exceptions import FedsynthError

#: Accountants of DP-SGD (Opacus names): Renyi DP, or the privacy random variable (tighter).
ACCOUNTANTS = ("rdp", "prv")
#: DP generators that can make the proxy a neural generator pretrains on (registry names).
PRETRAINERS = ("bayesian_network", "gaussian_copula")


class DPConfig(TypedDict):
    """The ``dp=`` mapping of a generator (a plain ``dict``; this class only types it).

    Keys
    ----
    epsilon : float
        Target epsilon of the whole fit (model and every statistic it needs), > 0.
    delta : float
        Target delta, in (0, 1); take it well below ``1 / n_rows`` (e.g. ``1e-5``).
    max_epsilon : float, optional
        Budget cap of the model across uses (a fit, each warm-started continuation, each
        federated round): a spend that would take the total above it is refused with
        :class:`~fedsynth.core.privacy.PrivacyBudgetError`. Default: no cap.
    domain_fraction : float, optional
        Share of epsilon spent on the domain facts not declared public (numeric bounds,
        category lists), when there are any, shared by need (see
        :mod:`fedsynth.tabular.privacy.dp_domains`); the same share of delta when a category
        list is among them (bounds need none). Default 0.1.
    max_grad_norm : float, optional
        DP-SGD: per-sample gradient clipping norm. Default 1.0.
    accountant : {"rdp", "prv"}, optional
        DP-SGD: Opacus accountant that calibrates the noise and reports the spend. Default "rdp".
    pretrain : {"bayesian_network", "gaussian_copula"} or None, optional
        Neural generators: the DP generator (PrivBayes, or the DP Gaussian copula) fitted with
        ``pretrain_fraction`` of the budget left after the domains, whose synthetic rows the
        network is pretrained on before DP-SGD on the real rows (post-processing: no further
        cost). ``None``: no pretraining, the network starts from random weights. Default
        "bayesian_network".
    pretrain_fraction : float, optional
        Neural generators: share of the budget left after the domains that fits the pretraining
        proxy, in (0, 1); the rest goes to DP-SGD. Default 0.5.
    pretrain_epochs : int, optional
        Neural generators: epochs over the proxy rows (four per training row, at most 100,000
        unless the data hold more). Default 30.

    The three ``pretrain`` keys act in a neural generator's first fit only (not in warm starts,
    nor at federated sites, which start from a shared encoder); ``bayesian_network`` and
    ``gaussian_copula`` ignore them, as they ignore the DP-SGD keys.

    Examples
    --------
    >>> import fedsynth
    >>> gen = fedsynth.make("bayesian_network", dp={"epsilon": 1.0, "delta": 1e-5})
    """

    epsilon: float
    delta: float
    max_epsilon: NotRequired[float | None]
    domain_fraction: NotRequired[float]
    max_grad_norm: NotRequired[float]
    accountant: NotRequired[Literal["rdp", "prv"]]
    pretrain: NotRequired[Literal["bayesian_network", "gaussian_copula"] | None]
    pretrain_fraction: NotRequired[float]
    pretrain_epochs: NotRequired[int]


class PrivacyConfigError(FedsynthError, ValueError):
    """A ``dp=`` setting is not valid; the message lists every problem."""


@dataclass(frozen=True)
class DPSettings:
    """A checked ``dp=`` setting with its defaults filled (see :class:`DPConfig`)."""

    epsilon: float
    delta: float
    max_epsilon: float | None = None
    domain_fraction: float = 0.1
    max_grad_norm: float = 1.0
    accountant: str = "rdp"
    pretrain: str | None = "bayesian_network"
    pretrain_fraction: float = 0.5
    pretrain_epochs: int = 30

    def to_dict(self) -> dict[str, Any]:
        """The setting as a JSON-ready mapping (a valid ``dp=`` value)."""
        return asdict(self)


def resolve_dp(dp: Mapping[str, Any] | DPSettings | None) -> DPSettings | None:
    """Check a ``dp=`` value and fill its defaults; ``None`` (no DP) stays ``None``.

    Raises
    ------
    PrivacyConfigError
        Listing every problem: unknown keys, missing or out-of-range values.

    Examples
    --------
    >>> resolve_dp({"epsilon": 1.0, "delta": 1e-5}).domain_fraction
    0.1
    >>> resolve_dp({"epsilon": 0, "delta": 1e-5})
    Traceback (most recent call last):
    ...
    fedsynth.core.privacy.config.PrivacyConfigError: invalid dp setting:
      - epsilon must be a finite positive number, got 0
    """
    if dp is None or isinstance(dp, DPSettings):
        return dp
    if not isinstance(dp, Mapping):
        raise PrivacyConfigError(
            f"dp must be a dict such as {{'epsilon': 1.0, 'delta': 1e-5}} or None, "
            f"got {type(dp).__name__}"
        )
    known = list(DPSettings.__dataclass_fields__)
    problems = [
        f"unknown key {key!r}; expected some of {', '.join(known)}"
        for key in dp
        if key not in known
    ]
    for key in ("epsilon", "delta"):
        if key not in dp:
            problems.append(f"{key} is required")
    values = {k: dp[k] for k in known if k in dp}
    settings = {**DPSettings(epsilon=1.0, delta=0.5).to_dict(), **values}
    if "epsilon" in dp and not _positive(dp["epsilon"]):
        problems.append(f"epsilon must be a finite positive number, got {dp['epsilon']!r}")
    if "delta" in dp and not (_number(dp["delta"]) and 0 < dp["delta"] < 1):
        problems.append(f"delta must be a number in (0, 1), got {dp['delta']!r}")
    cap = settings["max_epsilon"]
    if cap is not None and not _positive(cap):
        problems.append(f"max_epsilon must be a finite number > 0 or None, got {cap!r}")
    fraction = settings["domain_fraction"]
    if not (_number(fraction) and 0 < fraction < 1):
        problems.append(f"domain_fraction must be a number in (0, 1), got {fraction!r}")
    if not _positive(settings["max_grad_norm"]):
        problems.append(
            f"max_grad_norm must be a finite number > 0, got {settings['max_grad_norm']!r}"
        )
    if settings["accountant"] not in ACCOUNTANTS:
        problems.append(
            f"accountant must be one of {', '.join(ACCOUNTANTS)}, got {settings['accountant']!r}"
        )
    pretrain = settings["pretrain"]
    if pretrain is not None and pretrain not in PRETRAINERS:
        problems.append(
            f"pretrain must be one of {', '.join(PRETRAINERS)} or None, got {pretrain!r}"
        )
    if not (_number(settings["pretrain_fraction"]) and 0 < settings["pretrain_fraction"] < 1):
        problems.append(
            f"pretrain_fraction must be a number in (0, 1), got {settings['pretrain_fraction']!r}"
        )
    epochs = settings["pretrain_epochs"]
    if not (isinstance(epochs, numbers.Integral) and not isinstance(epochs, bool) and epochs >= 1):
        problems.append(f"pretrain_epochs must be an integer >= 1, got {epochs!r}")
    if problems:
        raise PrivacyConfigError("invalid dp setting:\n  - " + "\n  - ".join(problems))
    return DPSettings(
        epsilon=float(settings["epsilon"]),
        delta=float(settings["delta"]),
        max_epsilon=None if cap is None else float(cap),
        domain_fraction=float(fraction),
        max_grad_norm=float(settings["max_grad_norm"]),
        accountant=str(settings["accountant"]),
        pretrain=None if pretrain is None else str(pretrain),
        pretrain_fraction=float(settings["pretrain_fraction"]),
        pretrain_epochs=int(epochs),
    )


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _positive(value: Any) -> bool:
    return _number(value) and value > 0
