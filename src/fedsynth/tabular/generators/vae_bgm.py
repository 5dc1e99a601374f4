"""VAE-BGM: a TVAE-style autoencoder whose latent codes come from a Bayesian Gaussian mixture
fitted on the training rows' latent means (Apellániz et al.), fedsynth's default deep generator."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fedsynth.core.federable import ExtraState
from fedsynth.core.registry import register
from fedsynth.tabular.generators._site_offsets import fit_site_offset
from fedsynth.tabular.generators._vae import VAEGenerator
from fedsynth.tabular.generators.federable import union_of_mixtures

if TYPE_CHECKING:
    import torch


@register("vae_bgm")
class VAEBGM(VAEGenerator):
    """Variational autoencoder with a Bayesian Gaussian mixture over its latent space.

    The autoencoder is :class:`~fedsynth.tabular.generators.tvae.TVAE`'s. After training, a
    :class:`~sklearn.mixture.BayesianGaussianMixture` with ``latent_dim`` full-covariance
    components is fitted on the posterior means of the training rows (of 50,000 of them drawn at
    random when there are more, without ``dp``). A new row draws a mean
    from the mixture, keeps the log-variance at its training average, draws its latent code from
    that Gaussian, decodes it and draws each feature from its decoded distribution.

    The mixture follows where the training rows really lie in the latent space, which N(0, I)
    only approximates (the KL term never closes the gap), so fewer rows come from regions the
    decoder was never trained on: marginals, correlations and the survival curve come out closer
    than TVAE's from the same network.

    With ``dp=`` the autoencoder is trained as TVAE's is (domains, DP proxy for the encoder and
    pretraining, DP-SGD, see :class:`~fedsynth.tabular.generators.tvae.TVAE`), and the mixture must
    not look at the training rows, whose latent means no noise protects. It is fitted instead on the
    latent means of rows the private model generates itself: as many codes as training rows
    drawn from N(0, I), decoded, each feature drawn from its decoded distribution, and encoded
    again. That is post-processing of the private weights and costs no budget, so the total
    guarantee is TVAE's. The mixture then follows where the encoder puts the model's own rows,
    which is where the decoder was trained to produce rows, rather than the training rows
    themselves.

    Parameters
    ----------
    epochs, max_steps, batch_size, lr, weight_decay, latent_dim, hidden_dims, loss_factor,
    autoregressive, early_stopping, patience, validation_fraction, dp, device, verbose, seed
        As for :class:`~fedsynth.tabular.generators.tvae.TVAE`, with the same defaults.

    Attributes
    ----------
    mixture_weights_ : ndarray of shape (latent_dim,)
        Weights of the mixture components.
    mixture_means_ : ndarray of shape (latent_dim, latent_dim)
        Their means, in the latent space.
    mixture_covariances_ : ndarray of shape (latent_dim, latent_dim, latent_dim)
        Their full covariance matrices.
    mixture_sites_ : ndarray of shape (n_components, n_sites) or None
        p(site | component): the site categories of the rows each component is responsible
        for (by its responsibilities), when the table has a learned site column. Sampling
        conditioned on a site draws components re-weighted by it, so a federated model, whose
        merged mixture holds every site's components, draws from the conditioned site's own.
    site_offsets_ : ndarray of shape (n_sites, output_dim) or None
        Per site category, the offset of the decoder's raw outputs fitted on that site's rows
        alone with the networks frozen (see :mod:`fedsynth.tabular.generators._site_offsets`);
        set by federated training (a site's rows hold one site of several), ``None`` for a
        centralized model and under ``dp``.
    site_rows_ : ndarray of shape (n_sites,) or None
        The rows behind each site's offset (0: none; that site is sampled without one).
    latent_log_var_ : ndarray of shape (latent_dim,)
        Training average of the posterior log-variances (under ``dp``, their average over the
        model's own rows).
    encoder_, encoder_net_, decoder_net_, history_, privacy_spent_, device_, metadata_
        As for :class:`~fedsynth.tabular.generators.tvae.TVAE`.

    Notes
    -----
    The mixture is fitted again at the end of every :meth:`fit`, warm starts included; after
    :meth:`set_weights` it still describes the previous weights, so federated training ends
    with ``fit(data, epochs=0, warm_start=True)`` (or a round of training) before sampling.
    The mixture is saved as arrays, without pickle. Conditional sampling reweights the codes
    drawn from the mixture, as TVAE does; a condition on the site first re-weights the
    components by ``mixture_sites_`` and adds that site's output offset (``site_offsets_``).
    Under FedAvg (1,000 simulated MDS patients, 3 sites, 30 local epochs x 3 rounds) the mean
    ages of the sites' synthetic rows were 71.8 / 71.6 / 71.6 with the site components alone
    (real 73.2 / 69.8 / 67.9) and 73.1 / 69.7 / 68.6 with the offsets.

    References
    ----------
    Apellániz PA, Parras J, Zazo S. An improved tabular data generator with VAE-GMM
    integration. EUSIPCO 2024.
    Xu L, Skoularidou M, Cuesta-Infante A, Veeramachaneni K. Modeling tabular data using
    conditional GAN. NeurIPS 2019.

    Examples
    --------
    >>> import fedsynth
    >>> real = fedsynth.datasets.mds_cohort(n=500, seed=0)
    >>> gen = fedsynth.make("vae_bgm", epochs=50, seed=0).fit(real)  # doctest: +SKIP
    >>> synthetic = gen.sample(500)  # doctest: +SKIP
    """

    has_extra_state = True

    @classmethod
    def merge_extra_states(cls, states: Sequence[ExtraState], sizes: Sequence[float]) -> ExtraState:
        """The sites' latent mixtures for averaged weights as one: every site's components,
        weighted by its share of the rows, and the size-weighted mean log-variance."""
        return union_of_mixtures(states, sizes)

    def _after_training(self, data: torch.Tensor, rng: np.random.Generator) -> None:
        import torch
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.mixture import BayesianGaussianMixture
        from threadpoolctl import threadpool_limits

        if getattr(self, "privacy_spent_", None) is not None:
            data = self._own_rows(len(data), rng)
        elif len(data) > _MIXTURE_ROWS:  # a random subsample is plenty (see ``_MIXTURE_ROWS``)
            keep = np.sort(rng.choice(len(data), size=_MIXTURE_ROWS, replace=False))
            data = data[torch.from_numpy(keep)]
        mean, log_var = self._posterior(data)
        codes = mean.cpu().numpy().astype(np.float64)

        def start(seed: int) -> BayesianGaussianMixture:
            return BayesianGaussianMixture(
                n_components=int(self.latent_dim),
                covariance_type="full",
                init_params="k-means++",
                reg_covar=_REG_COVAR,
                max_iter=_SCREEN_ITER,
                # scikit-learn's lower bound is a sum over the rows, not an average, so its
                # ``tol`` shrinks per row as rows are added: per row, as documented.
                tol=_TOL_PER_ROW * len(codes),
                random_state=int(seed),
            )

        # Its matrices are latent_dim wide: BLAS threads cost more than they save there, and
        # under a loaded CPU they multiplied the fit time by more than ten.
        with warnings.catch_warnings(), threadpool_limits(1):
            # An unconverged start still covers the codes, and the best start is kept.
            warnings.simplefilter("ignore", ConvergenceWarning)
            # Several starts, screened after a few iterations; only the best runs on to
            # convergence (see ``_SCREEN_ITER``).
            starts = [start(seed).fit(codes) for seed in rng.integers(2**31 - 1, size=_N_INIT)]
            mixture = max(starts, key=lambda candidate: candidate.lower_bound_)
            mixture.set_params(warm_start=True, max_iter=_MAX_ITER)
            mixture.fit(codes)
        self.mixture_weights_ = mixture.weights_
        self.mixture_means_ = mixture.means_
        self.mixture_covariances_ = mixture.covariances_
        self.mixture_sites_ = self._component_sites(mixture.predict_proba(codes), data)
        self.latent_log_var_ = log_var.mean(dim=0).cpu().numpy().astype(np.float64)
        self._prepare_mixture()
        self.site_offsets_, self.site_rows_ = self._site_offsets(data, rng)

    def _site_offsets(self, data: torch.Tensor, rng: np.random.Generator):
        """A site's output offset (see :mod:`._site_offsets`) when the rows are one site's of
        several (federated training), as ``(offsets, rows)`` per site category; otherwise
        ``(None, None)``: centralized rows show the decoder how the sites differ, and under
        ``dp`` the offset would be computed from the rows without noise."""
        span = self._site_span()
        if span is None or span.width < 2 or getattr(self, "privacy_spent_", None) is not None:
            return None, None
        rows = data[:, span.slice].sum(dim=0).cpu().numpy().astype(np.float64)
        if np.count_nonzero(rows) != 1:
            return None, None
        offset = fit_site_offset(self, data, self._torch_generator(rng))
        offsets = np.zeros((span.width, len(offset)))
        offsets[np.flatnonzero(rows)[0]] = offset
        return offsets, rows

    def _site_span(self):
        """The category span of the learned site column, or ``None`` without one."""
        # The encoder's metadata: the generator's own is set only after the first fit's training.
        site = self.encoder_.metadata_.site
        if site is None or site not in self.encoder_.columns_:
            return None
        spans = [s for s in self.encoder_.output_info_ if s.column == site and s.role == "category"]
        return spans[0] if spans else None

    def _component_sites(self, responsibilities: np.ndarray, data: torch.Tensor):
        """p(site | component): the site categories of the rows each component is responsible
        for, from the site span of the encoded rows (one-hot); ``None`` without a site column.

        A component no row belongs to gets uniform site probabilities."""
        span = self._site_span()
        if span is None:
            return None
        onehot = data[:, span.slice].cpu().numpy().astype(np.float64)
        counts = responsibilities.T @ onehot
        totals = counts.sum(axis=1, keepdims=True)
        uniform = np.full_like(counts, 1.0 / counts.shape[1])
        return np.where(totals > 0, counts / np.where(totals > 0, totals, 1.0), uniform)

    def _own_rows(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        """``n`` rows generated from N(0, I) codes, encoded as training rows are: what the
        mixture is fitted on under DP (see the class docstring)."""
        import torch

        generator = self._torch_generator(rng)
        codes = torch.randn((n, int(self.latent_dim)), generator=generator, device=self.device_)
        raw, drawn = self.decoder_net_.decode(codes, generator)
        activated = self.layout_.activate(raw, self.decoder_net_.sigma, generator, drawn)
        rows = self._decode_matrices([activated.cpu().numpy()], rng)
        return torch.from_numpy(self.encoder_.transform(rows))

    def _prepare_mixture(self) -> None:
        """The mixture as tensors on the device, with Cholesky factors to draw from it."""
        import torch

        def tensor(array: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(array, dtype=torch.float32, device=self.device_)

        self._mixture = {
            "weights": tensor(self.mixture_weights_),
            "means": tensor(self.mixture_means_),
            "cholesky": tensor(np.linalg.cholesky(self.mixture_covariances_)),
            "std": tensor(np.exp(0.5 * self.latent_log_var_)),
        }

    def _latent(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self._draw_latent(n, generator, self._mixture["weights"])

    def _conditioned_latent(
        self, n: int, generator: torch.Generator, conditions: dict[str, Any]
    ) -> torch.Tensor:
        """Latent codes drawn from the components re-weighted by p(site | component) when the
        site is a condition (Bayes: w_k p(s | k), normalised), so that a merged federated
        mixture draws from the conditioned site's own components; otherwise as
        :meth:`_latent`."""
        weights = self._site_weights(conditions)
        if weights is None:
            return self._latent(n, generator)
        return self._draw_latent(n, generator, weights)

    def _site_weights(self, conditions: dict[str, Any]):
        """Component weights given the site condition, or ``None`` when there is none (or no
        component carries that site, or the model holds no site information)."""
        import torch

        site = self.encoder_.metadata_.site
        sites = getattr(self, "mixture_sites_", None)
        if sites is None or site not in conditions:
            return None
        span = self._site_span()
        category = self.encoder_.category_slot(site, conditions[site]) - span.start
        posterior = self.mixture_weights_ * sites[:, category]
        if posterior.sum() <= 0:
            return None
        posterior = posterior / posterior.sum()
        return torch.as_tensor(posterior, dtype=torch.float32, device=self.device_)

    def _draw_latent(
        self, n: int, generator: torch.Generator, weights: torch.Tensor
    ) -> torch.Tensor:
        """``n`` codes from the mixture with component ``weights``."""
        import torch

        mixture = self._mixture
        component = torch.multinomial(weights, n, replacement=True, generator=generator)
        shape = (n, int(self.latent_dim), 1)
        spread = torch.randn(shape, generator=generator, device=self.device_)
        mean = mixture["means"][component] + (mixture["cholesky"][component] @ spread)[..., 0]
        noise = torch.randn(shape[:2], generator=generator, device=self.device_)
        return mean + mixture["std"] * noise

    def _extra_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays = {
            "weights": self.mixture_weights_,
            "means": self.mixture_means_,
            "covariances": self.mixture_covariances_,
            "log_var": self.latent_log_var_,
        }
        if getattr(self, "mixture_sites_", None) is not None:
            arrays["sites"] = self.mixture_sites_
        if getattr(self, "site_offsets_", None) is not None:
            arrays["site_offsets"] = self.site_offsets_
            arrays["site_rows"] = self.site_rows_
        return {}, arrays

    def _load_extra_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.mixture_weights_ = arrays["weights"]
        self.mixture_means_ = arrays["means"]
        self.mixture_covariances_ = arrays["covariances"]
        self.latent_log_var_ = arrays["log_var"]
        # Models saved before the mixture recorded sites carry no site information.
        self.mixture_sites_ = arrays.get("sites")
        # Only a site's own model, or a federated one, has per-site output offsets.
        self.site_offsets_ = arrays.get("site_offsets")
        self.site_rows_ = arrays.get("site_rows")
        self._prepare_mixture()

    def _raw_offset(self, conditions: dict[str, Any]):
        """The conditioned site's output offset, or ``None`` (no site condition, or no offset
        for that site)."""
        import torch

        site = self.encoder_.metadata_.site
        offsets = getattr(self, "site_offsets_", None)
        if offsets is None or site not in conditions:
            return None
        category = self.encoder_.category_slot(site, conditions[site]) - self._site_span().start
        if self.site_rows_[category] <= 0:
            return None
        return torch.as_tensor(offsets[category], dtype=torch.float32, device=self.device_)


# The mixture of Apellániz et al.: several starts, a small covariance floor (latent means are
# of order 1, and the dimensions the KL term switched off hold nearly constant means).
_N_INIT = 3
_REG_COVAR = 1e-6
_MAX_ITER = 200
# Convergence threshold on the lower bound's gain per training row: scikit-learn's default of
# 1e-3, which it documents as a per-row average but applies to the bound summed over the rows.
# Applied to the sum, the starts ran to ``_MAX_ITER`` or close, a quarter of the fit's CPU time
# on support2, for a bound higher by under 0.1 nat per row, no more than it varies between
# random seeds. Per row, a start stops after about 30 to 75 iterations. The three starts stay:
# a single start sometimes stopped in a clearly worse optimum (0.3 nat per row on flchain).
_TOL_PER_ROW = 1e-3
# Training rows whose latent means the mixture is fitted on, at most (a random subsample of a
# larger table, without DP): its 16 full-covariance components hold about 2,400 numbers, which
# 50,000 codes pin down, and each EM iteration costs time in proportion to the codes. On 100,000
# rows of a 50-column table (2 epochs) the mixture on all the codes took 127 of the fit's 249 s
# (profiled, on a loaded machine); on 1,000,000 rows it would take ten times as long. Tables up
# to this size (all the benchmarks' own) are fitted on every row, as before.
_MIXTURE_ROWS = 50_000
# Iterations after which the starts are compared; the best then runs on alone. On the latent
# means of SUPPORT2 and flchain (4 seeds each) the final bound was within 0.01 nat per row of
# running all three starts to convergence (27.180 against 27.186; 26.198 against 26.190), in
# half the CPU time (0.86-0.91 s against 1.69-1.88 s).
_SCREEN_ITER = 10
