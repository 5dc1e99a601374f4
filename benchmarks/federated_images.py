"""Federated image generators over Flower's deployment runtime on loopback: wall time, CPU time
and peak memory per site of FedAvg and generator sharing run in lock-step.

Two runs of the simulated brain MRI cohort (``fedsynth.imaging.datasets``), split by its sites:

* ``tiny``: ``dp_gan`` (width 8), 2 sites, 40 slices of 32 x 32, 1 round of 1 local epoch (the
  test configuration);
* ``larger``: ``latent_diffusion`` with its default networks, 3 sites, 300 slices of 64 x 64,
  3 rounds of 3 local epochs.

CPU time is summed over every process of the federation (SuperLink, SuperNodes, SuperExec, the
ServerApp and each ClientApp process): a thread reads ``/proc/<pid>/stat`` of every process that
carries this run's marker in its environment every 0.2 s and keeps each one's last reading, so a
process's CPU after its last reading is missed (a lower bound). ``getrusage`` of the children
would miss the ClientApp processes, which are not reaped through this process. Peak memory per
site is the federation's own sampling (its SuperNode and ClientApp processes together, 1 s).

Run with ``python benchmarks/federated_images.py [--runs tiny larger]``; writes
``benchmarks/results/federated_images.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import uuid
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
_MARKER = "FEDSYNTH_BENCHMARK_RUN"

RUNS = {
    "tiny": {
        "model": "dp_gan",
        "n": 40,
        "size": 32,
        "sites": 2,
        "rounds": 1,
        "local_epochs": 1,
        "params": {"epochs": 1, "batch_size": 12, "noise_dim": 8, "width": 8, "norm_groups": 4},
    },
    "larger": {
        "model": "latent_diffusion",
        "n": 300,
        "size": 64,
        "sites": 3,
        "rounds": 3,
        "local_epochs": 3,
        "params": {},
    },
}


class CpuMonitor(threading.Thread):
    """CPU seconds of the processes whose environment holds ``marker=value`` (see the module
    docstring)."""

    def __init__(self, marker: str, value: str, interval: float = 0.2):
        super().__init__(daemon=True)
        self.wanted = f"{marker}={value}".encode()
        self.interval = interval
        self.readings: dict[int, tuple[str, float]] = {}
        self.done = threading.Event()
        self.tick = os.sysconf("SC_CLK_TCK")

    def run(self) -> None:
        while not self.done.is_set():
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit() and int(entry.name) != os.getpid():
                    self._read(entry)
            time.sleep(self.interval)

    def _read(self, entry: Path) -> None:
        try:
            if self.wanted not in (entry / "environ").read_bytes().split(b"\0"):
                return
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            name = (entry / "comm").read_text().strip()
        except OSError:  # gone, or not ours
            return
        self.readings[int(entry.name)] = (name, (int(fields[11]) + int(fields[12])) / self.tick)

    def totals(self) -> dict[str, float]:
        by: dict[str, float] = {}
        for name, seconds in self.readings.values():
            by[name] = by.get(name, 0.0) + seconds
        return {k: round(v, 1) for k, v in sorted(by.items())}


def run(name: str, work: Path) -> dict:
    from fedsynth.federated import federate
    from fedsynth.imaging import brain_mri_cohort

    spec = RUNS[name]
    cohort = brain_mri_cohort(spec["n"], sites=spec["sites"], size=spec["size"], seed=0)
    names = cohort.labels["site"]
    sites = {s: cohort.take(np.flatnonzero(names == s)) for s in sorted(set(names))}
    params = {
        **spec["params"],
        "label_columns": ["tumour_type", "idh_mutant"],
        "device": "cpu",
        "seed": 1,
    }
    value = uuid.uuid4().hex
    os.environ[_MARKER] = value  # inherited by every Flower process of the run
    monitor = CpuMonitor(_MARKER, value)
    monitor.start()
    start, own = time.perf_counter(), time.process_time()
    result = federate(
        sites,
        model=spec["model"],
        strategy=["fedavg", "generator_sharing"],
        rounds=spec["rounds"],
        local_epochs=spec["local_epochs"],
        params=params,
        out=work / name,
        timeout=3600,
        round_timeout=1800,
    )
    wall = time.perf_counter() - start
    time.sleep(1.0)
    monitor.done.set()
    monitor.join()
    own = time.process_time() - own
    sample_start, sample_cpu = time.perf_counter(), time.process_time()
    pooled = result.sample(64, "generator_sharing", seed=0)
    result.sample(64, "fedavg", seed=0)
    return {
        "run": name,
        **{k: v for k, v in spec.items() if k != "params"},
        "params": params,
        "site_images": result.sites,
        "wall_s": round(wall, 1),
        "cpu_s": round(sum(monitor.totals().values()) + own, 1),
        "cpu_s_by_process": {**monitor.totals(), "caller": round(own, 1)},
        "peak_memory_mb": result.runtime["peak_memory_mb"],
        "sample_128_wall_s": round(time.perf_counter() - sample_start, 1),
        "sample_128_cpu_s": round(time.process_time() - sample_cpu, 1),
        "pooled_sites_of_64": pooled.labels["site"].value_counts().sort_index().to_dict(),
        "load_average": os.getloadavg(),
    }


def write(records: list[dict]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "federated_images.json").write_text(json.dumps(records, indent=2) + "\n")
    lines = [
        "# Federated image generators over Flower (loopback)",
        "",
        "FedAvg and generator sharing in lock-step; `benchmarks/federated_images.py` says how "
        "CPU time is counted (every Flower process of the run, a lower bound).",
        "",
        "| run | model | sites (images) | size | rounds x epochs | wall s | CPU s | "
        "ClientApp CPU s | peak MB per site | server MB | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        memory = r["peak_memory_mb"]
        sites = ", ".join(f"{k} ({v})" for k, v in r["site_images"].items())
        per_site = ", ".join(f"{memory[k]:.0f}" for k in r["site_images"])
        lines.append(
            f"| {r['run']} | {r['model']} | {sites} | {r['size']} | {r['rounds']} x "
            f"{r['local_epochs']} | {r['wall_s']} | {r['cpu_s']} | "
            f"{r['cpu_s_by_process'].get('flwr-clientapp', 0)} | {per_site} | "
            f"{memory['server']:.0f} | {r['load_average'][0]:.1f} |"
        )
    (RESULTS / "federated_images.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--work", type=Path, default=Path("benchmark-federated-images"))
    args = parser.parse_args()
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    records = []
    for name in args.runs:
        records.append(run(name, args.work.resolve()))
        print(json.dumps(records[-1], indent=1), flush=True)
    write(records)


if __name__ == "__main__":
    main()
