"""How a federated round of ``latent_diffusion`` splits its training between the autoencoder
and the diffusion UNet.

A central fit trains the autoencoder ``ae_epochs`` epochs, freezes it, and trains the UNet
``epochs`` epochs on the frozen autoencoder's latents. A federated round gets one number, its
``epochs`` (:meth:`~fedsynth.imaging.generators._federable.FederableImages.train_local`), read
as the central ``epochs`` are, as UNet epochs: every round trains the UNet ``epochs`` epochs.
Before them, while the autoencoder's federated budget of ``ae_epochs`` lasts, the round trains
the autoencoder as many epochs (fewer in the round that ends the budget); after it, the
autoencoder is frozen. ``R`` rounds of ``E`` epochs thus give the autoencoder
``min(ae_epochs, R x E)`` epochs and the UNet ``R x E``: ``E = ceil(epochs / R)`` matches the
central budgets (10 rounds of 20 for the defaults: the autoencoder 20, 20 and 10 epochs in
rounds 1-3, then frozen; the UNet 200 epochs, of which 140 on the frozen, averaged
autoencoder). Before this split, every round trained the autoencoder as many epochs as the
UNet: 200 instead of 50, the latents moving until the last round.

Why the UNet trains in the autoencoder's rounds too: a short federation (the command line's 3
rounds of 5) would otherwise spend every epoch on the autoencoder and leave the UNet untrained.
What it learns while the latents still move is a warm start; from the first round after the
budget every site trains it on the latents of the same autoencoder, and each site's latent
scale (the variance of its images' latent means) stops changing. The sites' scales differ by
their images' spread; the final model takes their size-weighted merge
(:mod:`~fedsynth.imaging.generators._latent_scale`).

A site's model is rebuilt every round by both FedAvg drivers (the Flower strategy and the
benchmark's in-process loop) and knows only the rounds done (``n_fits`` of
:meth:`~fedsynth.imaging.generators._federable.FederableImages.init_from_schema`) and this
round's epochs: the autoencoder epochs already done are counted from them, which assumes every
round had the same epochs (as both drivers do), or from the model's own history when it kept
one (a model fitted centrally, or trained round after round in one object). What the rebuilt
model cannot count it receives with the weights: the patch discriminator of the autoencoder's
adversarial loss travels last in them and is averaged like them (FedGAN-style), so a round's
discriminator continues the sites' average of the last round instead of starting untrained
(``LatentDiffusion._weight_modules``). After the autoencoder's budget it no longer trains and
travels unchanged: the weights' layout stays the one the strategies check every round.
"""

from __future__ import annotations


def autoencoder_epochs_done(
    ae_epochs: int, rounds_done: int, epochs: int, history: list[dict[str, float]]
) -> int:
    """Autoencoder epochs done before this round: those in ``history`` (epochs that recorded
    a reconstruction loss), or ``rounds_done`` rounds of ``epochs``, whichever is larger, at
    most ``ae_epochs``."""
    recorded = sum("reconstruction" in entry for entry in history)
    return min(int(ae_epochs), max(recorded, int(rounds_done) * int(epochs)))


def split_round(ae_epochs: int, ae_done: int, epochs: int) -> tuple[int, int]:
    """This round's ``(autoencoder epochs, UNet epochs)``: the UNet ``epochs``, the
    autoencoder as many while its budget lasts (the rest of ``ae_epochs``, at most
    ``epochs``)."""
    return max(0, min(int(epochs), int(ae_epochs) - int(ae_done))), int(epochs)
