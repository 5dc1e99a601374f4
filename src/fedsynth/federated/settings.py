"""The settings of a federated run: the ``[tool.flwr.app.config]`` of the Flower app.

Every setting is a flat key of the run config (Flower's ``UserConfig``), so that a coordinator
can change it with ``flwr run ... --run-config 'rounds=10'`` as well as through
:func:`fedsynth.federated.federate`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from fedsynth.federated.strategies import STRATEGIES


@dataclass
class RunSettings:
    """What the ServerApp needs to run a federation.

    Parameters
    ----------
    metadata_path : str
        The shared metadata (JSON), on the server's disk (empty for images).
    out_dir : str
        Where the server writes its results (schema, round logs, round models, audit log).
    model : str, default "vae_bgm"
        Generator name.
    params : dict
        Its hyperparameters (``epochs`` is ignored: ``local_epochs`` sets training per round).
    plugins : str, default ""
        Comma-separated modules to import before making the model (extra generators).
    strategies : list of str, default ["fedavg"]
        Strategies run in lock-step.
    rounds : int, default 5
        Federated rounds.
    local_epochs : int, default 10
        Epochs of local training per round.
    proximal_mu : float, default 0.01
        FedProx's proximal weight.
    min_sites : int, default 2
        Fewest sites a round may run with.
    round_timeout : float, default 600
        Seconds to wait for the replies of a round (of each of the four steps of a secure
        round); a site that has not replied is left out of that round.
    connect_timeout : float, default 120
        Seconds to wait for ``min_sites`` sites to be connected before failing.
    seed : int, default 0
        Seed of the shared encoder and of the generators.
    min_count : int, default 5
        Fewest rows behind any statistic a site sends.
    max_modes : int, default 10
        Most mixture modes per numeric column of the shared encoder.
    audit : bool, default False
        Keep a copy of everything every site sent (``out_dir/audit``).
    secure_aggregation : bool, default False
        Average the weights of fedavg and fedprox with Flower's secure aggregation (SecAgg+):
        the server learns the average update, not a site's
        (:mod:`~fedsynth.federated.secure_aggregation`). Needs ``min_sites >= 2``.
    secure_clipping_range : float, default 8.0
        Largest change of a weight in one round that a site may send securely; a site whose
        update goes beyond it is left out of the round with a message saying so.
    modality : str, default "tabular"
        What the sites hold: ``"tabular"`` (a table each, shared metadata) or ``"imaging"``
        (an image set each, :mod:`~fedsynth.federated.image_sites`).
    checked_release : int, default 0
        Images ``generator_sharing`` releases at the end of an image run, each checked at
        every site against that site's own images (:mod:`~fedsynth.federated.checked_release`);
        0: none.
    """

    metadata_path: str
    out_dir: str
    model: str = "vae_bgm"
    params: dict[str, Any] = field(default_factory=dict)
    plugins: str = ""
    strategies: list[str] = field(default_factory=lambda: ["fedavg"])
    rounds: int = 5
    local_epochs: int = 10
    proximal_mu: float = 0.01
    min_sites: int = 2
    round_timeout: float = 600.0
    connect_timeout: float = 120.0
    seed: int = 0
    min_count: int = 5
    max_modes: int = 10
    audit: bool = False
    secure_aggregation: bool = False
    secure_clipping_range: float = 8.0
    modality: str = "tabular"
    checked_release: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.modality not in ("tabular", "imaging"):
            problems.append(f"modality must be 'tabular' or 'imaging', got {self.modality!r}")
        elif self.modality == "imaging" and "synthetic_sharing" in self.strategies:
            problems.append(
                "synthetic_sharing is for tables (its server trains on pooled rows); federate "
                "images with fedavg, fedprox or generator_sharing"
            )
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown or not self.strategies:
            problems.append(
                f"strategies must name some of {', '.join(STRATEGIES)}, got {self.strategies!r}"
            )
        if len(set(self.strategies)) != len(self.strategies):
            problems.append(f"strategies are named twice: {self.strategies!r}")
        for name in ("rounds", "local_epochs", "min_sites", "min_count", "max_modes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        for name in ("round_timeout", "connect_timeout"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be positive, got {getattr(self, name)!r}")
        if not self.proximal_mu > 0:
            problems.append(f"proximal_mu must be positive, got {self.proximal_mu!r}")
        if "fedprox" in self.strategies and self.params.get("dp") is not None:
            # DP-SGD computes each row's gradient functionally and sets the noisy mean itself,
            # so the proximal term's gradient hook would never be applied: refuse, not ignore.
            problems.append(
                "fedprox cannot be combined with dp: under DP-SGD the proximal term is not "
                "applied; use fedavg (or another strategy) with dp"
            )
        if self.secure_aggregation:
            if not any(STRATEGIES[s].averages_weights for s in self.strategies if s in STRATEGIES):
                problems.append(
                    "secure_aggregation applies to the strategies that average weights (fedavg, "
                    f"fedprox); {self.strategies!r} has none"
                )
            if isinstance(self.min_sites, int) and self.min_sites < 2:
                problems.append(
                    "secure_aggregation needs min_sites >= 2: a secure sum over one site is "
                    "that site's update"
                )
        release = self.checked_release
        if isinstance(release, bool) or not isinstance(release, int) or release < 0:
            problems.append(f"checked_release must be an integer >= 0, got {release!r}")
        elif release and (self.modality != "imaging" or "generator_sharing" not in self.strategies):
            problems.append(
                "checked_release applies to image sites with generator_sharing; got modality "
                f"{self.modality!r} and strategies {self.strategies!r}"
            )
        if not self.secure_clipping_range > 0:
            problems.append(
                f"secure_clipping_range must be positive, got {self.secure_clipping_range!r}"
            )
        if problems:
            raise ValueError("invalid federation setting(s):\n  - " + "\n  - ".join(problems))

    def to_run_config(self) -> dict[str, str | int | float | bool]:
        """Flat run config (keys with dashes, as Flower apps write them)."""
        out: dict[str, str | int | float | bool] = {}
        for key, value in asdict(self).items():
            if key == "params":
                value = json.dumps(value)
            elif key == "strategies":
                value = ",".join(value)
            out[key.replace("_", "-")] = value
        return out

    @classmethod
    def from_run_config(cls, config: Mapping[str, Any]) -> RunSettings:
        """Inverse of :meth:`to_run_config`; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in config.items():
            name = key.replace("-", "_")
            if name not in known:
                continue
            if name == "params":
                value = json.loads(value) if isinstance(value, str) else dict(value)
            elif name == "strategies":
                value = [s.strip() for s in str(value).split(",") if s.strip()]
            elif name in (
                "round_timeout",
                "connect_timeout",
                "proximal_mu",
                "secure_clipping_range",
            ):
                value = float(value)
            kwargs[name] = value
        return cls(**kwargs)
