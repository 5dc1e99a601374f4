"""The federable protocol (:class:`~fedsynth.core.federable.Federable`) for the image
generators.

:class:`FederableImages` is a mixin of
:class:`~fedsynth.imaging.generators.base.ImageGenerator`: it implements the protocol with the
generator's own hooks (``_check_params``, ``_build_untrained``, ``_modules``, ``_train_local``,
``_refresh_extra_state``), so that federated training never touches a generator from outside.
``get_weights``/``set_weights`` come from the base class. The schema is an
:class:`~fedsynth.imaging.generators._schema.ImageSchema` the sites agreed on (e.g.
:meth:`ImageSchema.merge` of theirs); a site's data is an :class:`~fedsynth.imaging.ImageSet`
with the schema's label columns.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from fedsynth.core.federable import ExtraState, proximal_term
from fedsynth.core.privacy.accounting import PrivacyLedger
from fedsynth.core.privacy.config import resolve_dp
from fedsynth.core.torch_device import resolve_device
from fedsynth.imaging.generators._schema import ImageSchema, as_image_set

if TYPE_CHECKING:
    from fedsynth.core.privacy.dp_sgd import PrivateTraining


class FederableImages:
    """Implements :class:`~fedsynth.core.federable.Federable` for an image generator (see the
    module docstring)."""

    def init_from_schema(self, schema: ImageSchema, *, n_fits: int = 0) -> Self:
        """Become an untrained model on the shared ``schema``, without images (every site and
        the server build the same initial weights from the same seed).

        Parameters
        ----------
        schema : ImageSchema
            The schema the sites agreed on (e.g. :meth:`ImageSchema.merge` of theirs).
        n_fits : int, default 0
            Trainings already done: a site starting round ``r`` passes ``r - 1``.
        """
        self._check_params(resolve_dp(getattr(self, "dp", None)))
        self.schema_ = schema
        self.device_ = resolve_device(self.device)
        self._build_untrained(np.random.default_rng(self.seed))
        self.n_fits_ = int(n_fits)
        self._stamp()
        self._reset_sample_stream()
        return self

    def train_local(
        self,
        data: Any,
        *,
        epochs: int,
        weights: Sequence[np.ndarray] | None = None,
        proximal_mu: float = 0.0,
        extra_state: bool = True,
    ) -> dict[str, float]:
        """Train ``epochs`` more epochs on a site's images (an ImageSet with the schema's label
        columns), from ``weights`` when given.

        Returns
        -------
        dict of str to float
            The losses of the last epoch (none under DP).
        """
        self._check_is_fitted()
        if not isinstance(epochs, int | np.integer) or isinstance(epochs, bool) or epochs < 0:
            raise ValueError(f"epochs must be an integer >= 0, got {epochs!r}")
        images = as_image_set(data)
        classes = self.schema_.check(images)
        if weights is not None:
            self.set_weights(list(weights))
        rng = np.random.default_rng(None if self.seed is None else self.seed + self.n_fits_)
        done = len(self.history_)
        with self._proximal_term(proximal_mu):
            self._train_local(self.schema_.scale(images.images), classes, int(epochs), rng)
        if extra_state:
            self._refresh_extra_state(self.schema_.scale(images.images), rng)
        if epochs:
            self.n_fits_ += 1
        self._reset_sample_stream()
        history = self.history_[done:]
        if not history:
            return {}
        return {k: float(v) for k, v in history[-1].items() if k != "epoch"}

    def export_extra_state(self) -> ExtraState:
        """The state derived from the images besides the weights (empty unless
        ``has_extra_state``)."""
        return ExtraState({}, {})

    def load_extra_state(self, state: ExtraState) -> None:
        """Load a state from :meth:`export_extra_state` or :meth:`merge_extra_states`."""

    @classmethod
    def merge_extra_states(cls, states: Sequence[ExtraState], sizes: Sequence[float]) -> ExtraState:
        """One state for averaged weights from the sites' states (here: the largest site's)."""
        if not states:
            raise ValueError("no extra state to merge")
        return ExtraState(*states[int(np.argmax(sizes))])

    def to_bytes(self, *, keep_guard: bool = True) -> bytes:
        """The files of :meth:`save` as bytes (no pickle). ``keep_guard`` is accepted for the
        federable protocol: an image model stores no training image or fingerprint of one."""
        return super().to_bytes()

    def _local_plan(self, n: int, epochs: int) -> PrivateTraining | None:
        """The DP-SGD plan of a federated site's epochs, charged to ``privacy_spent_`` (created
        on first use): the first run is calibrated to ``dp``'s target for these epochs, later
        ones go on at its noise. ``None`` without ``dp`` or epochs."""
        from fedsynth.core.privacy.dp_sgd import PrivateTraining

        settings = resolve_dp(getattr(self, "dp", None))
        if settings is None or epochs == 0:
            return None
        ledger = getattr(self, "privacy_spent_", None) or PrivacyLedger(settings.max_epsilon)
        runs = [s for s in ledger.spends if s.mechanism.startswith("dp-sgd")]
        common = {
            "n_rows": n,
            "batch_size": int(self.batch_size),
            "epochs": epochs,
            "delta": settings.delta,
            "max_grad_norm": settings.max_grad_norm,
            "accountant": settings.accountant,
        }
        if runs:
            plan = PrivateTraining(
                **common, epsilon=None, noise_multiplier=float(runs[-1].details["history"][-1][0])
            )
        else:
            plan = PrivateTraining(**common, epsilon=settings.epsilon)
        charge_plan(ledger, plan, self.privacy_parts)
        self.privacy_spent_ = ledger
        return plan

    def _proximal_term(self, mu: float) -> contextlib.AbstractContextManager[None]:
        """FedProx's ``mu / 2 * ||w - w_start||^2`` on every loss while open (see
        :func:`fedsynth.core.federable.proximal_term`)."""
        return proximal_term(self._modules().values(), mu)


def charge_plan(ledger: PrivacyLedger, plan: PrivateTraining, what: str) -> None:
    """Record a DP-SGD run's spend in ``ledger`` before it starts, with the details that let
    anyone recompute it with an Opacus accountant (``history``: noise multiplier, sample rate,
    steps)."""
    ledger.charge(
        f"DP-SGD training of the {what} ({plan.epochs} epochs)",
        f"dp-sgd ({plan.accountant})",
        plan.planned_epsilon,
        plan.delta,
        history=[list(step) for step in plan.history],
        accountant=plan.accountant,
        max_grad_norm=plan.max_grad_norm,
        expected_batch_size=plan.expected_batch_size,
    )
