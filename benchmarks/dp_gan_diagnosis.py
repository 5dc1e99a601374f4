"""Diagnose ``dp_gan`` on the imaging benchmark's cohort: FID ratio (the benchmark's
features), per-channel means of scaled real and synthetic images, diversity (pixel standard
deviation across images), whether conditioning reproduces the label's appearance
(correlation of the mean-image difference between two label values, real vs synthetic) and
the benchmark's classifier AUC on the held-out site when trained on the synthetic images.

``OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/dp_gan_diagnosis.py 60 300
60p:discriminator_steps=2,loss=hinge 20pw`` (epochs; ``p`` for the private arm at epsilon 5;
``w`` for the warm start on the benchmark's public images, ``_imaging_arms.public_cohort``;
after ``:`` dp_gan parameters). Synthetic sets are as drawn (no near-copy filter). Prints;
with ``--out FILE`` also appends one JSON line per run.
"""

from __future__ import annotations

import json
import sys
import types

import numpy as np


def parse(spec: str) -> tuple[int, bool, bool, dict]:
    """``"60pw:loss=hinge,discriminator_lr=1e-4"`` -> (60, True, True, {...}); numbers as
    numbers."""
    head, _, tail = spec.partition(":")
    params = {}
    for item in filter(None, tail.split(",")):
        key, _, value = item.partition("=")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    flags = head.lstrip("0123456789")
    return int(head[: len(head) - len(flags)]), "p" in flags, "w" in flags, params


def main(specs: list[str], out: str | None = None) -> None:
    import time

    import torch

    torch.set_num_threads(1)
    import _imaging_arms as arms

    import imaging as bench
    from fedsynth.imaging.validation import prepare_image_validation

    args = types.SimpleNamespace(n=600, size=64, seed=0, test_site="site_2")
    train_by_site, holdout_by_site, test = bench.cohort_parts(args)
    train = arms.concat(list(train_by_site.values()))
    holdout = arms.concat(list(holdout_by_site.values()))
    extractor = prepare_image_validation(train, holdout, holdout, seed=0).extractor
    made = {}
    make = arms._make

    def keep(name, params, seed):
        made["gen"] = make(name, params, seed)
        return made["gen"]

    arms._make = keep
    for spec in specs:
        epochs, private, public, params = parse(spec)
        study = arms.Study(
            sites=train_by_site,
            holdouts=holdout_by_site,
            n_synthetic=len(train),
            seed=0,
            ldm={},
            gan={"epochs": epochs, **params},
            ldm_rounds=1,
            ldm_local_epochs=1,
            epsilon=5.0,
            copy_filter=False,
        )
        synthetic = arms.dp_gan(private, public=public)(study)
        gen = made["gen"]
        checks = bench.image_checks(train, holdout, synthetic.images, extractor, 0)
        row = {"spec": spec, "fit_cpu_s": synthetic.fit_cpu_s, "fid_ratio": checks["fid_ratio"]}
        row |= {k: v for k, v in synthetic.details.items() if "epsilon" in k}
        history = [h for h in gen.history_ if "discriminator" in h]
        row["noise_multiplier"] = gen.steps_taken()[0][0] if private else None
        print(
            f"{spec}: fit CPU {synthetic.fit_cpu_s:.0f} s, FID {checks['fid_ratio']:.1f} x holdout"
        )
        if history and "discriminator" in history[0]:
            step = max(1, len(history) // 10)
            print(
                "  losses (epoch, D, G)",
                [
                    (h["epoch"], round(h["discriminator"], 2), round(h["generator"], 2))
                    for h in history[::step]
                ],
            )
        real = gen.schema_.scale(train.images)
        fake = gen.schema_.scale(synthetic.images.images)
        print(
            "  channel means real",
            real.mean(axis=(0, 2, 3)).round(2),
            "synthetic",
            fake.mean(axis=(0, 2, 3)).round(2),
        )
        row["std_across_images"] = float(fake.std(axis=0).mean())
        print(
            f"  std across images real {real.std(axis=0).mean():.3f} "
            f"synthetic {row['std_across_images']:.3f}"
        )
        for column in ("idh_mutant", "tumour_type"):
            values = sorted(train.labels[column].unique())
            a, b = values[0], values[-1]
            shown = train.labels[column].to_numpy()
            real_diff = real[shown == b].mean(0) - real[shown == a].mean(0)
            drawn = [gen.schema_.scale(gen.sample(150, {column: v}, seed=3).images) for v in (a, b)]
            fake_diff = drawn[1].mean(0) - drawn[0].mean(0)
            corr = np.corrcoef(real_diff.ravel(), fake_diff.ravel())[0, 1]
            row[f"{column}_corr"] = float(corr)
            print(f"  {column} {b} - {a}: correlation real vs synthetic {corr:.2f}")
        clf_args = types.SimpleNamespace(clf_epochs=None, seed=0)
        for column in arms.LABELS:
            model, _ = bench.train_classifier(column, synthetic.images, clf_args)
            row[f"{column}_auc"] = bench.score(model, test, None)[0]["auc"]
        print("  AUC on the held-out site", {k: round(v, 3) for k, v in row.items() if "auc" in k})
        row["cpu_s_total"] = time.process_time()
        if out:
            with open(out, "a") as handle:
                handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, "benchmarks")
    argv = sys.argv[1:]
    out = None
    if "--out" in argv:
        at = argv.index("--out")
        out = argv[at + 1]
        del argv[at : at + 2]
    main(argv or ["60"], out)
