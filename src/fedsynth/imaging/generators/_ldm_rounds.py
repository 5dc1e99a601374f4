"""How a federated round of ``latent_diffusion`` splits its epochs between the autoencoder and
the diffusion UNet.

A central fit trains the autoencoder ``ae_epochs`` epochs, freezes it, and trains the UNet
``epochs`` epochs on the frozen autoencoder's latents. Federated training keeps that order
across rounds: a round's ``epochs`` (the protocol's one number,
:meth:`~fedsynth.imaging.generators._federable.FederableImages.train_local`) go to the
autoencoder while its federated budget of ``ae_epochs`` lasts, the rest of the round and every
later round to the UNet. With ``R`` rounds of ``E`` epochs the autoencoder gets
``min(ae_epochs, R x E)`` epochs and the UNet the remaining ``R x E - ae_epochs``: choose
``E = ceil((ae_epochs + epochs) / R)`` for the central budgets (10 rounds of 25 for the
defaults: the autoencoder in rounds 1-2, the UNet's 200 epochs in rounds 3-10 on a frozen,
averaged autoencoder).

Why not both parts in every round: the UNet learns the autoencoder's latents; while the
autoencoder changes (and is averaged) each round, what the UNet learned of the previous latents
is partly lost. Once the autoencoder stops changing, each site's latent scale (the variance of
its images' latent means) stops changing too, so every later round of a site trains the UNet on
the same latents; the sites' scales differ by their images' spread and are merged by size for
the final model (:mod:`~fedsynth.imaging.generators._latent_scale`).

A site's model is rebuilt every round by both FedAvg drivers (the Flower strategy and the
benchmark's in-process loop) and knows only the rounds done (``n_fits`` of
:meth:`~fedsynth.imaging.generators._federable.FederableImages.init_from_schema`) and this
round's epochs: the autoencoder epochs already done are counted from them, which assumes every
round had the same epochs (as both drivers do), or from the model's own history when it kept
one (a model trained centrally or across rounds in one object).
"""

from __future__ import annotations


def autoencoder_epochs_done(
    ae_epochs: int, rounds_done: int, epochs: int, history: list[dict[str, float]]
) -> int:
    """Autoencoder epochs done before this round: those in ``history`` (epochs that recorded
    a reconstruction loss), or ``rounds_done`` rounds of ``epochs`` spent on the autoencoder
    first, whichever is larger, at most ``ae_epochs``."""
    recorded = sum("reconstruction" in entry for entry in history)
    return min(int(ae_epochs), max(recorded, int(rounds_done) * int(epochs)))


def split_round(ae_epochs: int, ae_done: int, epochs: int) -> tuple[int, int]:
    """This round's ``(autoencoder epochs, UNet epochs)``: the autoencoder first, until
    ``ae_epochs`` are done in all, the UNet the rest of the round's ``epochs``."""
    ae = max(0, min(int(epochs), int(ae_epochs) - int(ae_done)))
    return ae, int(epochs) - ae
