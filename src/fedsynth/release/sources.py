"""What goes into a release, taken from a fedsynth output folder.

Only named files are taken, never a whole folder: the synthetic data, the SAFE report and the
aggregate comparison of a federated experiment. The real rows that some folders hold (the
demo's ``real_train.csv``), the model (which can draw more rows and is released apart) and the
sites' logs stay out. Beside them the release gets ``metadata.json`` and ``release.json``, the
provenance: generator, parameters and fedsynth version, the privacy ledger (or "no DP"), the
federation summary (sites, rounds, strategies: no site data) and the report's verdict.

Folders understood: a web app run (``runs/<id>/``: ``model.zip``), and the output of
``fedsynth demo`` or of ``fit`` + ``sample`` + ``evaluate`` written to one folder (``model/``,
``metadata.json``, ``federation/``).
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedsynth.release.signing import ReleaseError

#: Synthetic data files, taken when present (at least one is needed).
DATA_FILES = ("synthetic.csv", "synthetic.parquet")
#: The SAFE report (both needed).
REPORT_FILES = ("report.html", "report.json")
#: Aggregate scores of a federated experiment (centralized, isolated, each strategy).
EXTRA_FILES = ("experiment-summary.csv",)
PROVENANCE = "release.json"
METADATA = "metadata.json"
RELEASE_FORMAT = "fedsynth-release"


def collect(
    folder: str | os.PathLike,
    *,
    metadata: Mapping[str, Any] | None = None,
    federation: Mapping[str, Any] | None = None,
) -> dict[str, Path | bytes]:
    """The members of a release of the output folder ``folder``.

    Parameters
    ----------
    folder : path
        The output folder (see the module's description for the layouts understood).
    metadata : mapping, optional
        The column metadata, when the folder has no ``metadata.json`` (a web app run).
    federation : mapping, optional
        The federation summary, when the folder has no ``federation/`` record (a web app run).

    Returns
    -------
    dict of str to Path or bytes
        Member name -> file to copy, or content (``metadata.json``, ``release.json``).

    Raises
    ------
    ReleaseError
        Naming every file that is missing or unreadable.

    Examples
    --------
    >>> members = collect("fedsynth-demo")  # doctest: +SKIP
    >>> sorted(members)  # doctest: +SKIP
    ['metadata.json', 'release.json', 'report.html', 'report.json', 'synthetic.csv']
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ReleaseError(f"{str(folder)!r} is not a folder of fedsynth outputs")
    problems = []
    members: dict[str, Path | bytes] = {
        name: folder / name for name in (*DATA_FILES, *EXTRA_FILES) if (folder / name).is_file()
    }
    if not any(name in members for name in DATA_FILES):
        problems.append(f"no synthetic data ({' or '.join(DATA_FILES)}) in {str(folder)!r}")
    for name in REPORT_FILES:
        if (folder / name).is_file():
            members[name] = folder / name
        else:
            problems.append(
                f"no {name} in {str(folder)!r}: validate the synthetic data first "
                "(`fedsynth evaluate`, or a run with its report)"
            )
    models = _models(folder, problems)
    if problems:
        raise ReleaseError("cannot make a release:\n  - " + "\n  - ".join(problems))
    report = json.loads((folder / "report.json").read_text())
    if metadata is None:
        metadata = _read_json(folder / METADATA) if (folder / METADATA).is_file() else None
    if metadata is None:
        metadata = models[0][1].get("metadata")
    if federation is None:
        federation = federation_summary(folder / "federation")
    from fedsynth import __version__

    provenance = {
        "format": RELEASE_FORMAT,
        "format_version": 1,
        "fedsynth_version": __version__,
        "generator": generator_section(models),
        "privacy": privacy_section(models),
        "federation": dict(federation) if federation else None,
        "report": {
            "status": report.get("status"),
            "scores": report.get("scores"),
            "failed": [f["name"] for f in report.get("flags", []) if f.get("status") == "fail"],
        },
    }
    members[METADATA] = _json_bytes(metadata)
    members[PROVENANCE] = _json_bytes(provenance)
    return members


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) + "\n").encode()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReleaseError(f"cannot read {str(path)!r} as JSON: {exc}") from exc


def _models(folder: Path, problems: list[str]) -> list[tuple[str | None, dict[str, Any]]]:
    """``(part name or None, model.json)`` of the folder's model: one, or the parts of a
    generator-sharing mixture."""
    files: dict[str, bytes] = {}
    if (folder / "model.zip").is_file():
        with zipfile.ZipFile(folder / "model.zip") as archive:
            for name in archive.namelist():
                if name.endswith(("model.json", "mixture.json")) and name.count("/") <= 1:
                    files[name] = archive.read(name)
    elif (folder / "model").is_dir():
        for name in ("model.json", "mixture.json"):
            if (folder / "model" / name).is_file():
                files[name] = (folder / "model" / name).read_bytes()
        for path in (folder / "model").glob("part_*/model.json"):
            files[path.relative_to(folder / "model").as_posix()] = path.read_bytes()
    try:
        if "model.json" in files:
            return [(None, json.loads(files["model.json"]))]
        if "mixture.json" in files:
            parts = json.loads(files["mixture.json"])["parts"]
            return [
                (part["name"], json.loads(files[f"part_{i}/model.json"]))
                for i, part in enumerate(parts)
            ]
    except (ValueError, KeyError) as exc:
        problems.append(f"the model in {str(folder)!r} cannot be read ({exc})")
        return []
    problems.append(
        f"no model in {str(folder)!r} (model.zip or model/): the release names the generator "
        "and the privacy budget it spent"
    )
    return []


def generator_section(models: list[tuple[str | None, dict[str, Any]]]) -> dict[str, Any]:
    """Generator name, parameters, training rows and the fedsynth version that fitted it."""
    (_, first), mixture = models[0], len(models) > 1 or models[0][0] is not None
    section = {
        "name": first.get("generator"),
        "params": first.get("params"),
        "fedsynth_version": first.get("fedsynth_version"),
        "fitted_at": first.get("fitted_at"),
        "training_rows": first.get("n_rows"),
    }
    if mixture:
        section["mixture_of"] = [name for name, _ in models]
    return section


def privacy_section(models: list[tuple[str | None, dict[str, Any]]]) -> dict[str, Any]:
    """The privacy ledger of the model(s): DP parameters and every spend, or ``no DP``."""
    ledgers = {}
    parameters = None
    for name, model in models:
        parameters = parameters or (model.get("params") or {}).get("dp")
        ledger = (model.get("state") or {}).get("privacy")
        if ledger:
            ledgers[name or "model"] = ledger
    if not parameters and not ledgers:
        return {"differential_privacy": False, "statement": "no DP: trained without it"}
    return {"differential_privacy": True, "parameters": parameters, "spent": ledgers}


def federation_summary(folder: Path) -> dict[str, Any] | None:
    """Sites, rounds and strategies of the federated run recorded under ``folder``."""
    found = sorted(folder.glob("**/sites.json")) if folder.is_dir() else []
    if not found:
        return None
    record = found[0].parent
    sites = _read_json(record / "sites.json")
    rounds: dict[str, int] = {}
    log = record / "rounds.jsonl"
    if log.is_file():
        for line in log.read_text().splitlines():
            if line.strip():
                entry = json.loads(line)
                rounds[entry["strategy"]] = max(rounds.get(entry["strategy"], 0), entry["round"])
    return {
        "sites": sorted(sites.get("sites", {})),
        "refused_sites": sorted(sites.get("refused", {})),
        "strategies": list(rounds),
        "rounds": rounds,
    }
