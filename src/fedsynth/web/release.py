"""The privacy gate: which synthetic data may leave the server.

A run's synthetic data (CSV, Parquet, and the model, which can draw more of it) is released
when SAFE's privacy checks pass or only warn. When a privacy check fails, or none could be
computed, it is released only after someone records an explicit override with a reason, which
the audit log keeps. Table reports hold aggregates only and are never gated; an image run's
report shows synthetic images, so it is gated like them, and its private version, with real
images, is for stewards only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: Files that hold (or can generate) synthetic rows or images (an image run's report shows
#: synthetic images).
GATED = frozenset(
    {"synthetic.csv", "synthetic.parquet", "model.zip", "synthetic_images.zip", "image_report.html"}
)
#: Files that show real data (an image run's report with real images beside the synthetic
#: ones): stewards only, whatever the verdict, and never in a release.
STEWARDS_ONLY = frozenset({"image_report_private.html"})
#: Verdicts that release the synthetic data without an override.
RELEASED = frozenset({"pass", "warn"})


def privacy_verdict(flags: Iterable[Mapping[str, Any]]) -> str:
    """The worst status of the privacy flags of a SAFE report, or ``"unchecked"``.

    Parameters
    ----------
    flags : iterable of dict
        The report's flags (``report.to_dict()["flags"]``): ``name`` and ``status``.

    Examples
    --------
    >>> privacy_verdict([{"name": "csf", "status": "fail"},
    ...                  {"name": "privacy.dcr_closer_probability", "status": "warn"}])
    'warn'
    >>> privacy_verdict([])
    'unchecked'
    """
    statuses = {
        flag["status"]
        for flag in flags
        if flag["name"] == "privacy" or str(flag["name"]).startswith("privacy.")
    }
    if not statuses:
        return "unchecked"
    for status in ("fail", "warn", "pass"):
        if status in statuses:
            return status
    return "unchecked"


def failed_checks(flags: Iterable[Mapping[str, Any]]) -> list[str]:
    """Names of the privacy flags that failed."""
    return [
        str(flag["name"])
        for flag in flags
        if (flag["name"] == "privacy" or str(flag["name"]).startswith("privacy."))
        and flag["status"] == "fail"
    ]


def released(verdict: str | None, override: Mapping[str, Any] | None) -> bool:
    """Whether synthetic data with this verdict (and override, if any) may be downloaded."""
    return verdict in RELEASED or override is not None


def federation_of(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The federation summary of a run's settings (sites, strategies, rounds), for a release
    bundle; ``None`` for a central run. Site names only: no site data."""
    settings = config.get("federated")
    if not settings:
        return None
    if settings.get("site_column"):
        column = config["metadata"]["columns"].get(settings["site_column"], {})
        sites = [str(value) for value in column.get("categories") or []]
    else:
        sites = [str(source["site"]) for source in config.get("sources", [])]
    strategies = list(settings["strategies"])
    return {
        "sites": sorted(sites),
        "strategies": strategies,
        "released_strategy": strategies[0],
        "rounds": {strategy: settings["rounds"] for strategy in strategies},
        "local_epochs": settings["local_epochs"],
        "secure_aggregation": bool(settings.get("secure_aggregation", False)),
    }
