"""Image generators: ``latent_diffusion`` (MONAI's KL autoencoder and diffusion UNet) and
``dp_gan`` (a conditional DCGAN-style GAN with a DP-SGD discriminator).

Create them by name (``fedsynth.make("latent_diffusion", ...)``); their modules, and torch, are
imported only then. Both take ``fit(images, labels=...)`` and ``sample(n, conditions=...)``,
save without pickle and implement the federable protocol
(:class:`~fedsynth.core.federable.Federable`) on an :class:`ImageSchema`.
"""

from fedsynth.imaging.generators._schema import ImageSchema
from fedsynth.imaging.generators.base import ImageGenerator

__all__ = ["ImageGenerator", "ImageSchema"]
