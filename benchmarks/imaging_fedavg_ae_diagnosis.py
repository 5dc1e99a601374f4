"""Diagnosis of the imaging study's ``ldm_fedavg`` arm: how good is the federated autoencoder?

Runs the arm's first three FedAvg rounds (20 local epochs: the autoencoder's 50-epoch budget,
20 + 20 + 10, see ``fedsynth.imaging.generators._ldm_rounds``) on the study's cohort (n 600,
seed 0, site_2 held out) and prints, after each round, the FID of the holdout's
reconstructions against the training images (the study's features) for each site's local
autoencoder and for the averaged one: the ceiling of any sample of the FedAvg model. One torch
thread. Run: ``PYTHONPATH=src python benchmarks/imaging_fedavg_ae_diagnosis.py``.

``--one-site``: no averaging, the larger site alone: its autoencoder trained in the same three
rounds (a model rebuilt every round from the last round's weights, as a federated site's), and
fitted centrally on its images (50 autoencoder epochs in one call, one UNet epoch), each
reconstruction FID printed. What the rounds cost without averaging, and what averaging adds.
``--pooled``: the reference, a central fit on both sites' images (50 autoencoder epochs, one
UNet epoch).
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from _imaging_arms import LABELS, concat

    import fedsynth
    from fedsynth.federated.task import weighted_average
    from fedsynth.imaging.generators import ImageSchema
    from fedsynth.imaging.validation import prepare_image_validation
    from fedsynth.imaging.validation.fidelity import frechet_distance
    from imaging import cohort_parts

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--one-site", action="store_true", help="the larger site alone")
    parser.add_argument("--pooled", action="store_true", help="a central fit on both sites")
    options = parser.parse_args()
    one_site = options.one_site
    args = argparse.Namespace(n=600, size=64, seed=0, test_site="site_2")
    train_by_site, holdout_by_site, _ = cohort_parts(args)
    train = concat(list(train_by_site.values()))
    holdout = concat(list(holdout_by_site.values()))
    extractor = prepare_image_validation(train, holdout, holdout, seed=0).extractor

    def fid(images) -> tuple[float, float]:
        data = prepare_image_validation(
            train, images, holdout, seed=0, max_images=10**9, extractor=extractor
        )
        return (
            frechet_distance(data.real_features, data.synthetic_features),
            frechet_distance(data.real_features, data.holdout_features),
        )

    sites = list(train_by_site.values())
    sizes = [len(s) for s in sites]
    schema = ImageSchema.merge(
        [ImageSchema.from_images(s, label_columns=list(LABELS)) for s in sites]
    )
    params = {"label_columns": list(LABELS), "device": "cpu", "seed": 0}

    def model(rounds_done: int):
        return fedsynth.make("latent_diffusion", **params).init_from_schema(
            schema, n_fits=rounds_done
        )

    start = time.process_time()
    if options.pooled:
        central = fedsynth.make("latent_diffusion", **params, epochs=1).fit(train)
        print(
            f"central fit on the {len(train)} training images (50 autoencoder epochs): "
            f"{fid(central.reconstruct(holdout))[0]:.2f}, {time.process_time() - start:.0f} CPU s"
        )
        return
    if one_site:
        images = max(sites, key=len)
        weights = model(0).get_weights()
        for done in range(3):
            site = model(done)
            site.train_local(images, epochs=20, weights=weights, extra_state=False)
            weights = site.get_weights()
            print(
                f"round {done + 1}, site of {len(images)} alone: "
                f"{fid(site.reconstruct(holdout))[0]:.2f}, {time.process_time() - start:.0f} CPU s",
                flush=True,
            )
        central = fedsynth.make("latent_diffusion", **params, epochs=1).fit(images)
        print(
            f"central fit on the site of {len(images)} (50 autoencoder epochs): "
            f"{fid(central.reconstruct(holdout))[0]:.2f}, {time.process_time() - start:.0f} CPU s"
        )
        return
    weights = model(0).get_weights()
    for done in range(3):
        replies = []
        for images in sites:
            site = model(done)
            site.train_local(images, epochs=20, weights=weights, extra_state=False)
            replies.append(site.get_weights())
            local = fid(site.reconstruct(holdout))[0]
            print(f"round {done + 1}, site of {len(images)}: local autoencoder {local:.2f}")
        weights = weighted_average(replies, sizes)
        server = model(done + 1)
        server.set_weights(weights)
        averaged, reference = fid(server.reconstruct(holdout))
        print(
            f"round {done + 1}: averaged autoencoder {averaged:.2f} (holdout {reference:.2f}), "
            f"{time.process_time() - start:.0f} CPU s",
            flush=True,
        )


if __name__ == "__main__":
    main()
