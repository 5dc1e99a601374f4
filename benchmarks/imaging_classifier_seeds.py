"""How much of the imaging study's AUC gaps is the classifier's own seed?

``benchmarks/imaging.py`` trains one classifier per arm and label (seed 0) and reads issue 21's
targets (synthetic-only AUC within 0.02 of centralized real; generator sharing within 0.02 of
FedAvg) from those single draws. A classifier's AUC on 204 test images moves with its seed
(initialisation and batch order), so one draw per arm can make a gap look larger or smaller
than it is. This script trains the same classifiers with ``--seeds`` seeds on the same images
and reports, per arm and label, the mean and spread of the AUC and the gap to the centralized
real classifier **paired by seed** (same seed, same test images), with a t interval over seeds.

Arms: ``real_central`` and ``real_fedavg`` as in ``imaging.py`` (same cohort, split and
settings), and synthetic sets saved by ``imaging.py --save-synthetic DIR`` (one folder per arm,
:func:`fedsynth.imaging.npz.save_image_set`) or drawn here from a saved central
``latent_diffusion`` (``--ldm-central-model``) through the release's near-copy filter, as the
``ldm_central`` arm does; and, with ``--central-arms reconstructions``, that model's
autoencoder reconstructions of the training images (what no sample of its decoder can beat:
whether the autoencoder or the diffusion model loses the label's signal).

Only the classifiers vary: the synthetic sets are fixed, so the spread is the classifier's, not
the generator's (another draw of the same generator moved AUC by about 0.03 in session 14).

Run: ``PYTHONPATH=src python benchmarks/imaging_classifier_seeds.py --ldm-central-model DIR``;
writes ``benchmarks/results/{--name}.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from _imaging_arms import LABELS, Study, concat, default_epochs, split_rounds
from _imaging_report import RESULTS
from scipy import stats

from imaging import cohort_parts, train_classifier


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--n", type=int, default=600, help="patients (the study's default run used 600)")
    add("--size", type=int, default=64)
    add("--test-site", default="site_2")
    add("--seed", type=int, default=0, help="the cohort's and the split's seed")
    add("--seeds", type=int, default=5, help="classifier seeds 0 .. seeds-1")
    add("--synthetic", type=int, default=2000)
    add("--clf-epochs", type=int, default=None)
    add("--clf-rounds", type=int, default=10)
    add("--ldm-central-model", default=None, metavar="DIR")
    add(
        "--central-arms",
        default="samples",
        help="with --ldm-central-model, comma-separated: samples (its release, the ldm_central "
        "arm) and/or reconstructions (its autoencoder's reconstructions of the training "
        "images: the utility no sample of that decoder can exceed)",
    )
    add("--synthetic-sets", nargs="*", default=[], metavar="ARM=DIR")
    add("--name", default="imaging_classifier_seeds")
    return parser.parse_args()


def classifier_auc(label: str, train, test, seed: int, args, sites=None) -> float:
    """AUC on ``test`` of the study's classifier for ``label`` (``imaging.train_classifier``,
    by FedAvg over ``sites`` when given) trained with ``seed``."""
    from fedsynth.imaging.downstream import evaluate_classifier

    seeded = argparse.Namespace(**{**vars(args), "seed": seed})
    model, _ = train_classifier(label, train, seeded, fedavg_sites=sites)
    return float(evaluate_classifier(model, test).to_dict()["auc"])


def central_synthetic(args, train_by_site, holdout_by_site, train, holdout):
    """The ``ldm_central`` arm's release, drawn from the saved model (``imaging.py``'s code)."""
    from _imaging_arms import central_ldm

    from fedsynth.imaging.validation import prepare_image_validation

    ldm = default_epochs("latent_diffusion")
    study = Study(
        sites=train_by_site,
        holdouts=holdout_by_site,
        n_synthetic=args.synthetic,
        seed=args.seed,
        ldm=ldm,
        gan=default_epochs("dp_gan"),
        ldm_rounds=10,
        ldm_local_epochs=split_rounds(ldm["epochs"], 10),
        epsilon=5.0,
        extractor=prepare_image_validation(train, holdout, holdout, seed=args.seed).extractor,
        central_model=args.ldm_central_model,
    )
    return central_ldm(study).images


def summary(values: list[float]) -> dict[str, float]:
    """Mean, sample SD and the 95 % t interval of the mean over seeds."""
    x = np.asarray(values, float)
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else 0
    return {
        "mean": float(x.mean()),
        "sd": float(x.std(ddof=1)) if len(x) > 1 else 0.0,
        "low": float(x.mean() - half),
        "high": float(x.mean() + half),
    }


def write(result: dict[str, Any], name: str) -> None:
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    seeds = result["settings"]["seeds"]
    lines = [
        "# Imaging study: classifier AUC over seeds (`benchmarks/imaging_classifier_seeds.py`)",
        "",
        "Same cohort and split as `imaging.md` ("
        + ", ".join(f"{k} {v}" for k, v in result["images"].items())
        + f" images); {seeds} classifier "
        "seeds per arm and label, the synthetic sets fixed. Gap = arm minus `real_central` with "
        "the same seed; 95 % t interval over seeds. One torch thread; CPU s of this process: "
        f"{result['cpu_s']:.0f} ({result['wall_s'] / 60:.1f} min wall).",
        "",
        "| arm | label | AUC mean | SD | per seed | gap to central (mean, 95% CI) | "
        "gap to FedAvg (mean, 95% CI) |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, labels in result["arms"].items():
        for label, row in labels.items():
            per_seed = ", ".join(f"{v:.3f}" for v in row["auc"])
            gaps = []
            for key in ("gap_to_central", "gap_to_fedavg"):
                g = row.get(key)
                gaps.append(f"{g['mean']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}]" if g else "-")
            s = row["summary"]
            lines.append(
                f"| {arm} | {label} | {s['mean']:.3f} | {s['sd']:.3f} | {per_seed} | "
                + " | ".join(gaps)
                + " |"
            )
    lines += ["", "## Targets read on the seed means", ""]
    lines += [f"- {t}" for t in result["targets"]]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")


def targets(arms: dict[str, Any]) -> list[str]:
    """Issue 21's AUC targets on the means over seeds (and the paired gap's interval)."""
    found = []
    for arm, labels in arms.items():
        if arm.startswith("real_"):
            continue
        for label, row in labels.items():
            central = arms["real_central"][label]["summary"]["mean"]
            g = row["gap_to_central"]
            met = row["summary"]["mean"] >= central - 0.02
            found.append(
                f"{label}: {arm} mean AUC {row['summary']['mean']:.3f} >= centralized "
                f"{central:.3f} - 0.02: {'met' if met else 'MISSED'} (paired gap "
                f"{g['mean']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}])"
            )
            if "generator_sharing" in arm:
                fedavg = arms["real_fedavg"][label]["summary"]["mean"]
                met = row["summary"]["mean"] >= fedavg - 0.02
                found.append(
                    f"{label}: {arm} mean AUC {row['summary']['mean']:.3f} >= FedAvg "
                    f"{fedavg:.3f} - 0.02: {'met' if met else 'MISSED'}"
                )
    return found


def main() -> None:
    args = arguments()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from fedsynth.imaging.npz import load_image_set

    torch.set_num_threads(1)
    started, started_cpu = time.time(), time.process_time()
    train_by_site, holdout_by_site, test = cohort_parts(args)
    train, holdout = concat(list(train_by_site.values())), concat(list(holdout_by_site.values()))
    sets: dict[str, Any] = {"real_central": train, "real_fedavg": train}
    for item in args.synthetic_sets:
        arm, _, folder = item.partition("=")
        if not folder or not Path(folder).is_dir():
            raise SystemExit(f"--synthetic-sets {item!r}: expected ARM=DIR with DIR a folder")
        sets[arm] = load_image_set(folder)
    wanted = {a for a in args.central_arms.split(",") if a}
    if unknown := wanted - {"samples", "reconstructions"}:
        raise SystemExit(f"--central-arms: unknown {sorted(unknown)}")
    if args.ldm_central_model and "samples" in wanted:
        sets["ldm_central"] = central_synthetic(
            args, train_by_site, holdout_by_site, train, holdout
        )
    if args.ldm_central_model and "reconstructions" in wanted:
        import fedsynth

        model = fedsynth.load(args.ldm_central_model)
        sets["ldm_central_reconstructions"] = model.reconstruct(train)
    arms: dict[str, dict[str, Any]] = {}
    for arm, images in sets.items():
        arms[arm] = {}
        for label in LABELS:
            sites = train_by_site if arm == "real_fedavg" else None
            aucs = [
                classifier_auc(label, images, test, seed, args, sites=sites)
                for seed in range(args.seeds)
            ]
            arms[arm][label] = {"auc": aucs, "summary": summary(aucs)}
            for ref in ("central", "fedavg"):
                base = arms.get(f"real_{ref}", {}).get(label)
                if base is not None and arm != f"real_{ref}":
                    diffs = [a - b for a, b in zip(aucs, base["auc"], strict=True)]
                    arms[arm][label][f"gap_to_{ref}"] = summary(diffs)
            print(arm, label, [round(a, 3) for a in aucs], flush=True)
    result = {
        "settings": vars(args),
        "images": {"train": len(train), "holdout": len(holdout), "test": len(test)},
        "arms": arms,
        "targets": targets(arms),
        "wall_s": time.time() - started,
        "cpu_s": time.process_time() - started_cpu,
    }
    write(result, args.name)


if __name__ == "__main__":
    main()
