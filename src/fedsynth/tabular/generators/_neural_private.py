"""What the neural generators share under ``dp=``: DP domains, the DP proxy, pretraining,
the DP-SGD plan of a warm start and the DP-SGD step itself.

:class:`PrivateFitting` is a mixin of :class:`~fedsynth.tabular.generators._neural.NeuralGenerator`:
its methods read the generator's parameters (``batch_size``, ``epochs``, ``seed``...) and call
its training loop. :func:`private_step` is the step that each generator's ``_train_epoch``
takes under DP.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fedsynth.core.privacy.accounting import PrivacyLedger, Spend
from fedsynth.core.privacy.config import DPSettings
from fedsynth.exceptions import ParameterError
from fedsynth.tabular.metadata import Metadata
from fedsynth.tabular.privacy.dp_statistics import (
    ColumnDomain,
    cover_domains,
    declare_public,
    proxy_table,
    public_categories,
    release_domains,
    released_view,
)
from fedsynth.tabular.transforms import TableEncoder

if TYPE_CHECKING:
    import torch

    from fedsynth.core.privacy.dp_sgd import PrivateTraining

# Under DP without pretraining: share of the budget left after the domains that the encoder's
# statistics get (the rest trains the network), and the proxy table those statistics make:
# rows, and histogram cells of a numeric column (as the Gaussian copula's).
_STATISTICS_FRACTION = 0.1
_PROXY_ROWS = 5_000
_PROXY_CELLS = 64
# Under DP with pretraining: proxy rows drawn per training row, and their cap (unless the data
# hold more rows): enough for the network to learn the proxy's joint distribution, not so many
# that the pretraining epochs cost more than the private ones.
_PRETRAIN_ROWS_PER_ROW = 4
_PRETRAIN_MAX_ROWS = 100_000
_EARLY_STOPPING_UNDER_DP = (
    "early_stopping must be False with dp: the validation rows it holds out would be read at "
    "every epoch outside DP-SGD, unprotected; choose the number of epochs instead"
)


class PrivateFitting:
    """What a neural generator's fit or warm start under ``dp=`` does besides training (see
    :meth:`_fit_private`); a mixin of
    :class:`~fedsynth.tabular.generators._neural.NeuralGenerator`."""

    def _fit_private(
        self,
        data: pd.DataFrame,
        metadata: Metadata,
        rng: np.random.Generator,
        settings: DPSettings,
        ledger: PrivacyLedger,
    ) -> None:
        """The fit under DP (the hook the base class calls): the statistics below, then the
        pretraining on the proxy if any and DP-SGD on the rows."""
        released, plan, proxy = self._private_statistics(data, metadata, rng, settings, ledger)
        self._start_training(released, rng, plan, proxy, settings.pretrain_epochs)

    def _private_statistics(
        self,
        data: pd.DataFrame,
        metadata: Metadata,
        rng: np.random.Generator,
        settings: DPSettings,
        ledger: PrivacyLedger,
    ) -> tuple[pd.DataFrame, PrivateTraining, pd.DataFrame | None]:
        """What a fit under DP shares across the neural generators, before training.

        In this order, each spend recorded in ``ledger``:

        1. the domains not declared public, from ``domain_fraction`` of epsilon (and of delta
           when a category list is released)
           (:func:`~fedsynth.tabular.privacy.dp_statistics.private_domains`), published into the
           metadata;
        2. with ``pretrain`` (the default), ``pretrain_fraction`` of the rest of epsilon and
           delta: the ``pretrain`` generator (PrivBayes by default) fitted under DP on the
           rows, with the released domains as public facts; the proxy table drawn from it
           (four rows per training row, at most 100,000 unless the data hold more) is what
           the encoder is fitted on and the network pretrained on (:meth:`_pretrain`), both
           post-processing. Without ``pretrain``, a tenth of the rest of epsilon: one Laplace
           histogram per column (:func:`~fedsynth.tabular.privacy.dp_statistics.proxy_table`), whose
           5,000-row proxy the encoder is fitted on;
        3. the rest of epsilon and delta: DP-SGD, its noise calibrated to the planned epochs.

        The encoder (each numeric column's modes, each discrete column's category
        frequencies) never sees the real rows. Returns the rows to train on (values of
        categories not released made missing), the DP-SGD plan, whose spend :meth:`_train`
        records, and the pretraining proxy (``None`` without ``pretrain``).
        """
        from fedsynth.core.privacy.dp_sgd import PrivateTraining

        # Survival columns come without a missing state (see private_domains): the encoder
        # gets none for them, so no missing time or event is ever generated.
        domains, epsilon, delta = release_domains(data, metadata, settings, ledger=ledger, rng=rng)
        released = released_view(data, domains)
        epsilon, delta = settings.epsilon - epsilon, settings.delta - delta
        if settings.pretrain is not None:
            fraction = settings.pretrain_fraction
            proxy, spends = self._pretraining_proxy(
                released, metadata, domains, settings, fraction * epsilon, fraction * delta, rng
            )
            for spend in spends:
                ledger.charge(
                    f"pretraining proxy: {spend.what}",
                    spend.mechanism,
                    spend.epsilon,
                    spend.delta,
                    generator=settings.pretrain,
                    **spend.details,
                )
            # DP-SGD gets what the proxy left: PrivBayes on public domains spends no delta.
            epsilon -= sum(spend.epsilon for spend in spends)
            delta -= sum(spend.delta for spend in spends)
            self.encoder_ = TableEncoder(seed=self.seed).fit(proxy, metadata)
        else:
            statistics = _STATISTICS_FRACTION * epsilon
            histograms = proxy_table(
                data,
                metadata,
                domains,
                epsilon=statistics,
                n_cells=_PROXY_CELLS,
                n_rows=_PROXY_ROWS,
                ledger=ledger,
                rng=rng,
            )
            epsilon -= statistics
            self.encoder_ = TableEncoder(seed=self.seed).fit(histograms, metadata)
            proxy = None
        plan = PrivateTraining(
            n_rows=len(data),
            batch_size=int(self.batch_size),
            epochs=self._epochs_of_this_fit(),
            epsilon=epsilon,
            delta=delta,
            max_grad_norm=settings.max_grad_norm,
            accountant=settings.accountant,
        )
        return released, plan, proxy

    def _pretraining_proxy(
        self,
        released: pd.DataFrame,
        metadata: Metadata,
        domains: Mapping[str, ColumnDomain],
        settings: DPSettings,
        epsilon: float,
        delta: float,
        rng: np.random.Generator,
    ) -> tuple[pd.DataFrame, list[Spend]]:
        """Rows drawn from ``settings.pretrain`` fitted with (``epsilon``, ``delta``)-DP, and
        its spends.

        The domains already released (or declared) are public facts for it, so it spends
        nothing on them again. Every state of the domains is put in some rows of the proxy
        (:func:`~fedsynth.tabular.privacy.dp_statistics.cover_domains`): a missing state the draw
        left out would leave the encoder unable to encode the real rows that have it.
        """
        from fedsynth.core.registry import make

        teacher = make(
            settings.pretrain,
            dp={"epsilon": epsilon, "delta": delta},
            seed=int(rng.integers(2**31 - 1)),
        )
        teacher.fit(released, metadata=_public_facts(metadata, domains))
        n = len(released)
        states = max((len(d.categories or ()) + d.missing for d in domains.values()), default=0)
        size = max(n, states, min(_PRETRAIN_ROWS_PER_ROW * n, _PRETRAIN_MAX_ROWS))
        # Drawn without the teacher's copy guard: the guard reads the training rows, and the
        # proxy must depend on them only through the DP release. (The proxy is never shown;
        # what this model samples goes through its own guard.)
        proxy = teacher._model_form(teacher._sample(size, rng), size)
        return cover_domains(proxy, domains, rng), list(teacher.privacy_spent_.spends)

    def _pretrain(self, matrix: np.ndarray, rng: np.random.Generator, epochs: int) -> None:
        """Train on the encoded DP proxy rows, without DP-SGD (post-processing), before the
        private training on the real rows."""
        kept, self._epochs_this_fit = self._epochs_this_fit, epochs
        try:
            self._train(matrix, rng, None, pretraining=True)
        finally:
            self._epochs_this_fit = kept

    def _continued_privacy(
        self, n_rows: int, epochs: int | None, settings: DPSettings | None
    ) -> tuple[PrivacyLedger | None, PrivateTraining | None]:
        """The ledger and DP-SGD plan of a warm start (``None`` for a model without DP).

        A model trained under DP goes on at the noise of its last DP-SGD run. A model with
        ``dp`` but no ledger yet (built on a shared encoder, as federated training does)
        starts one, calibrated to ``dp``'s target (``settings``) for these epochs. ``epochs=0``
        trains nothing and plans nothing.
        """
        from fedsynth.core.privacy.dp_sgd import PrivateTraining

        ledger = getattr(self, "privacy_spent_", None)
        if ledger is None and settings is None:
            return None, None
        if self.early_stopping:
            raise ParameterError(_EARLY_STOPPING_UNDER_DP)
        ledger = PrivacyLedger(settings.max_epsilon) if ledger is None else ledger
        epochs = self._epochs_of_this_fit() if epochs is None else epochs
        if epochs == 0:
            return ledger, None
        common = {"n_rows": n_rows, "batch_size": int(self.batch_size), "epochs": epochs}
        previous = _last_training(ledger)
        if previous is None:
            return ledger, PrivateTraining(
                **common,
                epsilon=settings.epsilon,
                delta=settings.delta,
                max_grad_norm=settings.max_grad_norm,
                accountant=settings.accountant,
            )
        return ledger, PrivateTraining(
            **common,
            epsilon=None,
            delta=previous.delta,
            max_grad_norm=float(previous.details["max_grad_norm"]),
            accountant=str(previous.details["accountant"]),
            noise_multiplier=float(previous.details["history"][-1][0]),
        )

    def _released_domains(self, present: Iterable[str]) -> dict[str, ColumnDomain]:
        """The domains of the discrete columns among ``present``, marked as released with DP
        where their categories are not public: the values of categories that DP left out then
        become missing, as in the first fit, instead of failing the metadata check."""
        present = set(present)
        return {
            name: ColumnDomain(
                name, list(col.categories), None, True, estimated=public_categories(col) is None
            )
            for name in self.learned_columns_
            if name in present
            and (col := self.metadata_.columns[name]).is_discrete
            and col.categories is not None
        }


def _public_facts(metadata: Metadata, domains: Mapping[str, ColumnDomain]) -> Metadata:
    """The metadata of the learned columns (those of ``domains``) with their released or
    declared domains marked public: what a DP proxy generator is fitted with."""
    source = metadata.copy()  # declare_public updates the columns in place
    columns = {name: source.columns[name] for name in domains}
    pair = [c for c in (metadata.survival or ()) if c in columns]
    if len(pair) == 1:  # the other half is constant, so not learned: a plain column then
        col = columns[pair[0]]
        columns[pair[0]] = replace(col, kind="numeric" if col.kind == "duration" else "binary")
    facts = Metadata(columns)
    return declare_public(
        facts,
        bounds={n: d.bounds for n, d in domains.items() if d.bounds is not None},
        categories={n: d.categories for n, d in domains.items() if d.categories is not None},
    )


def private_step(
    plan: PrivateTraining,
    modules: Mapping[str, torch.nn.Module],
    loss,
    inputs: tuple[torch.Tensor, ...],
    *,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    mean_of: float,
    clip_norm: float | None = None,
) -> list[Any]:
    """One DP-SGD step of ``optimizer`` on the parameters of ``modules``.

    Each sample's gradient of ``loss(params, *sample) -> (loss, aux)`` (``params`` as
    ``{module: {name: tensor}}``, for :func:`torch.func.functional_call`; the samples run along
    the first dimension of ``inputs``) is clipped, the clipped gradients are summed, Gaussian
    noise is added (:meth:`PrivateTraining.clipped_sum`, :meth:`PrivateTraining.add_noise`),
    and the result divided by ``mean_of``, a data-independent count (the expected number of
    samples), becomes each parameter's gradient. An empty batch is a step too: noise only.

    Returns the samples' ``aux``, in chunks.
    """
    import torch

    from fedsynth.core.privacy.dp_sgd import per_sample_gradients

    params = {
        name: {key: p.detach() for key, p in module.named_parameters()}
        for name, module in modules.items()
    }
    total = {
        f"{name}/{key}": torch.zeros_like(p)
        for name, group in params.items()
        for key, p in group.items()
    }
    aux = []
    for grads, values in per_sample_gradients(loss, params, *inputs):
        for key, value in plan.clipped_sum(grads, clip_norm=clip_norm).items():
            total[key] += value
        aux.append(values)
    noisy = plan.add_noise(total, generator)
    for name, module in modules.items():
        for key, parameter in module.named_parameters():
            parameter.grad = noisy[f"{name}/{key}"] / mean_of
    optimizer.step()
    return aux


def _training_spend(plan: PrivateTraining) -> tuple[tuple[str, str, float, float], dict[str, Any]]:
    """``(what, mechanism, epsilon, delta)`` of a DP-SGD run and the details that let anyone
    recompute it with an Opacus accountant (lists, so that they read back equal from JSON)."""
    spend = (
        f"DP-SGD training ({plan.epochs} epochs)",
        f"dp-sgd ({plan.accountant})",
        plan.planned_epsilon,
        plan.delta,
    )
    details = {
        "history": [list(step) for step in plan.history],
        "accountant": plan.accountant,
        "max_grad_norm": plan.max_grad_norm,
        "expected_batch_size": plan.expected_batch_size,
    }
    return spend, details


def _last_training(ledger: PrivacyLedger) -> Spend | None:
    """The ledger's last DP-SGD spend, if any."""
    runs = [s for s in ledger.spends if s.mechanism.startswith("dp-sgd")]
    return runs[-1] if runs else None
