"""The imaging study on the simulated brain MRI cohort: classifiers trained on real and on
synthetic images, tested on a site held out of all training (issue 21's targets).

Cohort: ``brain_mri_cohort(n, sites=3, size=64)``; one site (``--test-site``) is held out of all
training and is the classifiers' test set. The other sites' images are split: 80 % train
the generators and the real classifiers, 20 % are the real holdout of the fidelity and privacy
checks (images of the same sites the generators never saw).

Arms, each classifier predicting IDH status and tumour type with
:class:`fedsynth.imaging.downstream.ImageClassifier` (the library's defaults unless flags say):

* ``real_central``: trained on the training sites' images pooled;
* ``real_fedavg``: FedAvg of the classifier over the training sites, in process (an evaluation
  baseline, :func:`fedsynth.imaging.downstream.fedavg_classifier`);
* synthetic only, one per generator arm of ``_imaging_arms.SYNTHETIC_ARMS``: generator sharing
  (``latent_diffusion`` per site, pooled samples in proportion to site size), a centralized
  ``latent_diffusion``, ``latent_diffusion`` by FedAvg (federable protocol, in process), and
  ``dp_gan`` at ``--epsilon`` and without DP, each also warm-started on public images
  (``dp_gan_private_public``, ``dp_gan_nonprivate_public``: the simulated cohort with another
  seed, so other patients and scanners, ``_imaging_arms.public_cohort``; no privacy cost).
  Generators use their own defaults unless a flag sets epochs.

Per arm and label: accuracy, AUC, sensitivity, specificity, McNemar's exact p against
``real_central`` (same test images). Per synthetic arm: FID of synthetic vs train over FID of
the real holdout vs train (autoencoder features fitted once on the training images), the
nearest-training-image check (no synthetic image closer to a training image than the closest
real holdout image, in pixels and in features; the sets are released through the near-copy
filter of :mod:`fedsynth.imaging.validation.copy_filter` unless ``--no-copy-filter``, which drops
and redraws such images, and the count it dropped is reported; generator sharing's through the
cross-site check of :mod:`fedsynth.imaging.validation.cross_site`, every draw checked at every
site against that site's own images, this pooled check then verifying it), PIQE, fit CPU s,
sampled images per CPU s (the filter's checks and redraws included),
the process's peak RSS after the arm, and for ``dp_gan`` the epsilon recomputed by Opacus's
RDP and PRV accountants from the ledger's history. One torch thread; CPU seconds of this
process (the issue's time targets are wall time on 2 cores: a 1-thread CPU second is at most
one wall second there).

Run: ``PYTHONPATH=src python benchmarks/imaging.py [--quick] [--n 1000] ...``; writes
``benchmarks/results/{name}.json`` and ``.md`` (``--name``, default ``imaging``, or
``imaging_quick`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from _clock import Clock, preload_torch_optimiser_imports
from _imaging_arms import (
    LABELS,
    SYNTHETIC_ARMS,
    Study,
    concat,
    default_epochs,
    peak_rss_mb,
    split_rounds,
)
from _imaging_report import RESULTS, TITLE, targets, write

#: Settings of ``--quick`` (a few minutes): far below the defaults, to check the pipeline.
QUICK = {
    "n": 400,
    "synthetic": 200,
    "clf_epochs": 20,
    "clf_rounds": 4,
    "ldm_epochs": 20,
    "ldm_ae_epochs": 5,
    "ldm_rounds": 2,
    "gan_epochs": 30,
}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=TITLE)
    add = parser.add_argument
    add("--quick", action="store_true", help="small settings (a few CPU minutes): " + str(QUICK))
    add("--n", type=int, default=1000, help="patients, one slice each (default 1000)")
    add("--size", type=int, default=64)
    add("--test-site", default="site_2", help="the site held out of all training")
    add(
        "--synthetic",
        type=int,
        default=2000,
        help="synthetic images per arm (default 2000: on the central latent_diffusion, 2000 "
        "gave the classifiers AUC 0.841 / 0.885 against 0.818 / 0.829 with as many as the 317 "
        "training images, results/imaging_ldm_guidance.md; 0: as many as the training images)",
    )
    add("--clf-epochs", type=int, default=None, help="classifier epochs (default: its own)")
    add("--clf-rounds", type=int, default=10, help="FedAvg rounds of the real classifier")
    add(
        "--ldm-epochs",
        type=int,
        default=None,
        help="latent_diffusion UNet epochs (default: its own)",
    )
    add("--ldm-ae-epochs", type=int, default=None, help="its autoencoder epochs (default: its own)")
    add("--ldm-rounds", type=int, default=10, help="FedAvg rounds of latent_diffusion")
    add(
        "--ldm-guidance",
        type=float,
        default=None,
        help="latent_diffusion's classifier-free guidance at sampling (default: its own)",
    )
    add(
        "--ldm-central-model",
        default=None,
        metavar="DIR",
        help="sample the ldm_central arm from a latent_diffusion saved by an earlier run on "
        "the same cohort and seed (e.g. imaging_ldm_guidance.py --model-dir) instead of "
        "refitting it; its fit is then not timed",
    )
    add(
        "--no-copy-filter",
        dest="copy_filter",
        action="store_false",
        help="release the synthetic sets as drawn, without the near-copy filter",
    )
    add("--gan-epochs", type=int, default=None, help="dp_gan epochs (default: its own)")
    add("--epsilon", type=float, default=5.0)
    add("--arms", default=",".join(SYNTHETIC_ARMS), help="synthetic arms to run")
    add("--seed", type=int, default=0)
    add("--name", default=None)
    add(
        "--save-synthetic",
        default=None,
        metavar="DIR",
        help="save each arm's released synthetic set under DIR/ARM (fedsynth's image-set "
        "folder), e.g. to train its classifiers again with imaging_classifier_seeds.py",
    )
    add(
        "--combine",
        nargs="+",
        metavar="PART",
        help="merge the results of runs split by --arms (same cohort, seed and settings) into "
        "--name, and state the targets over all their arms; trains nothing",
    )
    args = parser.parse_args()
    if args.quick:
        defaults = {"n": 1000, "synthetic": 2000, "clf_epochs": None, "clf_rounds": 10}
        defaults |= {"ldm_epochs": None, "ldm_ae_epochs": None, "ldm_rounds": 10}
        defaults["gan_epochs"] = None
        for key, value in QUICK.items():
            if getattr(args, key) == defaults[key]:  # a flag given beside --quick wins
                setattr(args, key, value)
    args.name = args.name or ("imaging_quick" if args.quick else "imaging")
    return args


def train_classifier(label: str, train, args, *, fedavg_sites=None):
    """A classifier for ``label`` on ``train`` (or by FedAvg over ``fedavg_sites``), timed."""
    from _imaging_arms import LABEL_VALUES

    from fedsynth.imaging.downstream import ImageClassifier, fedavg_classifier

    epochs = args.clf_epochs or ImageClassifier().epochs
    classes = LABEL_VALUES[label]
    with Clock() as clock:
        if fedavg_sites is None:
            model = ImageClassifier(epochs=epochs, seed=args.seed).fit(
                train, label, classes=classes
            )
        else:
            model = fedavg_classifier(
                fedavg_sites,
                label,
                rounds=args.clf_rounds,
                local_epochs=split_rounds(epochs, args.clf_rounds),
                classes=classes,
                classifier=ImageClassifier(seed=args.seed),
            )
    return model, clock.cpu


def score(model, test, central_predictions) -> tuple[dict[str, Any], Any]:
    """Accuracy, AUC, sensitivity, specificity on ``test``, and McNemar's p against the
    centralized classifier's predictions (when given)."""
    from fedsynth.imaging.downstream import column_values, evaluate_classifier, mcnemar_test

    result = evaluate_classifier(model, test).to_dict()
    predicted = model.predict(test)
    if central_predictions is not None:
        found = mcnemar_test(column_values(test, model.column_), predicted, central_predictions)
        result["mcnemar_p_vs_central"] = found.p_value
        result["discordant"] = [found.only_first, found.only_second]
    return result, predicted


def image_checks(train, holdout, synthetic, extractor, seed: int) -> dict[str, Any]:
    """FID ratio, the nearest-training-image check (pixels and features) and PIQE."""
    import numpy as np
    from scipy.spatial.distance import cdist

    from fedsynth.imaging.validation import prepare_image_validation
    from fedsynth.imaging.validation.fidelity import frechet_distance
    from fedsynth.imaging.validation.quality import channel_piqe

    data = prepare_image_validation(
        train, synthetic, holdout, seed=seed, max_images=10**9, extractor=extractor
    )
    fid = frechet_distance(data.real_features, data.synthetic_features)
    reference = frechet_distance(data.real_features, data.holdout_features)

    def nearest(a, b):
        return cdist(a.reshape(len(a), -1), b.reshape(len(b), -1)).min(axis=1)

    found: dict[str, Any] = {
        "fid_synthetic_vs_train": fid,
        "fid_holdout_vs_train": reference,
        "fid_ratio": fid / reference,
    }
    spaces = {
        "pixels": (data.synthetic, data.holdout, data.real),
        "features": (data.synthetic_features, data.holdout_features, data.real_features),
    }
    for space, (syn, held, real) in spaces.items():
        to_syn, to_held = nearest(syn, real), nearest(held, real)
        found[f"nearest_{space}"] = {
            "synthetic_min": float(to_syn.min()),
            "holdout_min": float(to_held.min()),
            "synthetic_closer": int((to_syn < to_held.min()).sum()),
        }
    found["piqe"] = {
        "synthetic": float(np.mean(channel_piqe(data.synthetic))),
        "train": float(np.mean(channel_piqe(data.real))),
        "holdout": float(np.mean(channel_piqe(data.holdout))),
    }
    return found


def cohort_parts(args):
    """Per training site its training and its holdout images, and the test site's images."""
    import numpy as np

    from fedsynth.imaging import brain_mri_cohort

    cohort = brain_mri_cohort(args.n, sites=3, size=args.size, seed=args.seed)
    site = cohort.labels["site"].to_numpy()
    if args.test_site not in set(site):
        raise SystemExit(f"--test-site {args.test_site!r} is not one of {sorted(set(site))}")
    test = cohort.take(site == args.test_site)
    train_by_site, holdout_by_site = {}, {}
    for name in sorted(set(site) - {args.test_site}):
        part = cohort.take(np.flatnonzero(site == name))
        train_by_site[name], holdout_by_site[name] = part.split(
            0.2, seed=args.seed, stratify="tumour_type"
        )
    return train_by_site, holdout_by_site, test


def combine(parts: list[str], name: str) -> None:
    """One result from runs split by ``--arms``: the first part's real classifiers (every part
    trains the same ones on the same cohort), the synthetic arms of all parts, summed CPU time,
    the largest peak memory and the longest wall time (the parts ran side by side)."""
    loaded = [json.loads((RESULTS / f"{part}.json").read_text()) for part in parts]
    first = loaded[0]
    for part, other in zip(parts[1:], loaded[1:], strict=True):
        if (
            other["images"] != first["images"]
            or other["settings"]["seed"] != first["settings"]["seed"]
        ):
            raise SystemExit(f"{part}: another cohort or seed than {parts[0]}; not combined")
    arms = {k: v for k, v in first["arms"].items() if k.startswith("real_")}
    for other in loaded:
        arms |= {k: v for k, v in other["arms"].items() if not k.startswith("real_")}
    result = {
        "settings": first["settings"] | {"arms": ",".join(a for a in arms if a[:5] != "real_")},
        "parts": parts,
        "images": first["images"],
        "arms": arms,
        "wall_s": max(r["wall_s"] for r in loaded),
        "cpu_s": sum(r["cpu_s"] for r in loaded),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in loaded),
    }
    result["targets"] = targets(result)
    write(result, name)


def main() -> None:
    args = arguments()
    if args.combine:
        combine(args.combine, args.name)
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    preload_torch_optimiser_imports()
    from fedsynth.imaging.validation import prepare_image_validation

    started, started_cpu = time.time(), time.process_time()
    train_by_site, holdout_by_site, test = cohort_parts(args)
    train, holdout = concat(list(train_by_site.values())), concat(list(holdout_by_site.values()))
    ldm = default_epochs("latent_diffusion")
    ldm |= {k: v for k, v in (("epochs", args.ldm_epochs), ("ae_epochs", args.ldm_ae_epochs)) if v}
    if args.ldm_guidance is not None:
        ldm["guidance"] = args.ldm_guidance
    gan = default_epochs("dp_gan") | ({"epochs": args.gan_epochs} if args.gan_epochs else {})
    extractor = prepare_image_validation(train, holdout, holdout, seed=args.seed).extractor
    study = Study(
        sites=train_by_site,
        holdouts=holdout_by_site,
        n_synthetic=args.synthetic or len(train),
        seed=args.seed,
        ldm=ldm,
        gan=gan,
        ldm_rounds=args.ldm_rounds,
        # UNet epochs per round; the autoencoder's come first in the rounds (_ldm_rounds).
        ldm_local_epochs=split_rounds(ldm["epochs"], args.ldm_rounds),
        epsilon=args.epsilon,
        copy_filter=args.copy_filter,
        extractor=extractor,
        central_model=args.ldm_central_model,
    )
    arms: dict[str, dict[str, Any]] = {}
    central: dict[str, Any] = {}
    for name, sites in (("real_central", None), ("real_fedavg", train_by_site)):
        arms[name] = {"labels": {}}
        for label in LABELS:
            model, cpu = train_classifier(label, train, args, fedavg_sites=sites)
            result, predicted = score(model, test, central.get(label))
            arms[name]["labels"][label] = result | {"classifier_cpu_s": cpu}
            if name == "real_central":
                central[label] = predicted
        print(name, {k: round(v["auc"], 3) for k, v in arms[name]["labels"].items()}, flush=True)

    def write_so_far() -> None:
        result = {
            "settings": vars(args)
            | {"ldm": ldm, "dp_gan": gan, "ldm_local_epochs": study.ldm_local_epochs},
            "images": {
                "train": {k: len(v) for k, v in train_by_site.items()},
                "holdout": len(holdout),
                "test": len(test),
                "test_site": args.test_site,
            },
            "arms": arms,
            "wall_s": time.time() - started,
            "cpu_s": time.process_time() - started_cpu,
            "peak_rss_mb": peak_rss_mb(),
        }
        result["targets"] = targets(result)
        write(result, args.name)

    for name in [a for a in args.arms.split(",") if a]:
        synthetic = SYNTHETIC_ARMS[name](study)
        row: dict[str, Any] = {
            "fit_cpu_s": synthetic.fit_cpu_s,
            "sample_cpu_s": synthetic.sample_cpu_s,
            "images_per_cpu_s": synthetic.images_per_cpu_s,
            "n_synthetic": len(synthetic.images),
            "peak_rss_mb": peak_rss_mb(),
            **synthetic.details,
            **image_checks(train, holdout, synthetic.images, extractor, args.seed),
            "labels": {},
        }
        if args.save_synthetic:
            from fedsynth.imaging.npz import save_image_set

            save_image_set(synthetic.images, os.path.join(args.save_synthetic, name))
        for label in LABELS:
            model, cpu = train_classifier(label, synthetic.images, args)
            result, _ = score(model, test, central[label])
            row["labels"][label] = result | {"classifier_cpu_s": cpu}
        arms[name] = row
        print(
            name,
            {k: round(v["auc"], 3) for k, v in row["labels"].items()},
            f"FID ratio {row['fid_ratio']:.2f}",
            flush=True,
        )
        # Written after every arm: a run stopped later keeps the arms it finished.
        write_so_far()
    write_so_far()


if __name__ == "__main__":
    main()
