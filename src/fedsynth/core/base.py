"""The base of every estimator, whatever it generates (tables now, images and notes later).

:class:`BaseEstimator` holds what does not depend on the modality:

* keyword-only hyperparameters stored unchanged (``get_params``/``set_params``, ``__repr__``);
* the fit template with differential privacy: the public ``fit`` resolves ``dp`` once, runs the
  modality's own steps (``_fit_data``: schema, checks), which hand over to the plain hook
  ``_fit`` or to the private one ``_fit_private``, and keeps the privacy ledger itself
  (``privacy_spent_``: created with the ``max_epsilon`` cap, ``None`` without ``dp``, the
  previous one restored when the fit fails);
* ``is_fitted`` and the :class:`~fedsynth.exceptions.NotFittedError` check;
* saving as ``model.json`` + ``arrays.npz`` (:mod:`fedsynth.core.io`, never pickle), with the
  ledger saved and loaded here for every estimator, and :func:`load`.

A modality's base class (e.g. :class:`fedsynth.tabular.generators.base.BaseGenerator`) adds its
schema: ``_fit_data``, ``_schema_config``/``_load_schema`` (what the model file holds besides the
estimator's own state) and ``_fitted_summary``.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import os
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from fedsynth._version import __version__
from fedsynth.core.io import (
    check_config,
    load_model_files,
    model_files_from_bytes,
    model_files_to_bytes,
    save_model_files,
    verify_checksums,
)
from fedsynth.core.privacy.accounting import PrivacyLedger
from fedsynth.core.privacy.config import DPSettings, PrivacyConfigError, resolve_dp
from fedsynth.exceptions import (
    FedsynthError,
    ModelFileError,
    NotFittedError,
    ParameterError,
    Problem,
)

#: Instance flag: the fit hook has started (a failure from here on leaves the estimator
#: unfitted).
_HOOK_STARTED = "_fit_hook_started"
#: Key of the privacy ledger in the estimator's saved ``state`` (where fedsynth 0.1.0 put it).
PRIVACY_KEY = "privacy"
#: Version of the model files written here; :func:`load` refuses newer ones.
FORMAT_VERSION = 1
_UNSET = object()


class BaseEstimator:
    """Base class of fedsynth's estimators (scikit-learn-like).

    Subclasses take keyword-only hyperparameters stored unchanged, one of which is ``seed``;
    those that support differential privacy take ``dp`` too.
    """

    #: Registry name (set by :func:`fedsynth.core.registry.register`).
    name: ClassVar[str] = ""
    #: What the estimator generates: "tabular", later "imaging" or "text".
    modality: ClassVar[str] = ""
    #: What the privacy budget of a fit pays for, named when a budget cap refuses it.
    privacy_parts: ClassVar[str] = "every part of the fit"

    seed: int | None

    # ------------------------------------------------------------------ parameters
    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [
            p.name
            for p in signature.parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        ]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyperparameters as given to the constructor."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        """Change hyperparameters (takes effect at the next ``fit``); returns ``self``."""
        valid = self._param_names()
        for key, value in params.items():
            if key not in valid:
                raise TypeError(f"{type(self).__name__} has no parameter {key!r}; valid: {valid}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default
            for p in inspect.signature(type(self).__init__).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        }
        shown = [
            f"{k}={v!r}"
            for k, v in self.get_params().items()
            if k not in defaults or defaults[k] != v
        ]
        if "seed" not in [s.split("=")[0] for s in shown] and self.seed is not None:
            shown.append(f"seed={self.seed!r}")
        text = f"{type(self).__name__}({', '.join(shown)})"
        if self.is_fitted:
            text += f"  # {self._fitted_summary()}"
        return text

    def _raise_invalid_params(self, problems: list[str]) -> None:
        """Raise one :class:`ParameterError` listing every problem with the hyperparameters, if
        any."""
        if problems:
            raise ParameterError(
                f"invalid {type(self).__name__} parameter(s):\n  - " + "\n  - ".join(problems)
            )

    # ------------------------------------------------------------------ fitting
    @property
    def is_fitted(self) -> bool:
        """Whether ``fit`` (or :func:`fedsynth.load`) has run."""
        return hasattr(self, "fitted_at_")

    def _check_is_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(data) before sampling"
            )

    def fit(self, data: Any, **options: Any) -> Self:
        """Learn from ``data`` (the template every modality's ``fit`` runs).

        Resolves ``dp`` once (:func:`~fedsynth.core.privacy.config.resolve_dp`), checks the
        hyperparameters (:meth:`_check_params`), then runs the modality's steps
        (:meth:`_fit_data`), which end in :meth:`_run_fit_hook`. When the fit fails before the
        hook starts (a refused setting, data that fails the checks, a budget above the cap),
        the estimator is left as it was, its ``privacy_spent_`` included; when it fails once the
        hook has started training, the estimator is left unfitted (a model part-trained on the
        new data must not be sampled under the old ledger).

        Raises
        ------
        PrivacyConfigError
            When ``dp`` is not a valid setting, or the estimator does not support it.
        """
        settings = resolve_dp(getattr(self, "dp", None))
        self._check_params(settings)
        previous = getattr(self, "privacy_spent_", _UNSET)
        self.__dict__.pop(_HOOK_STARTED, None)
        try:
            self._fit_data(data, settings, **options)
        except BaseException:
            if self.__dict__.pop(_HOOK_STARTED, False):
                # Training began: networks may hold part of what the new data taught them,
                # which the old ledger does not account for. Nothing of it may be sampled.
                self._forget_fit()
            elif previous is _UNSET:
                self.__dict__.pop("privacy_spent_", None)
            else:
                self.privacy_spent_ = previous
            raise
        self.__dict__.pop(_HOOK_STARTED, None)
        return self

    def _forget_fit(self) -> None:
        """Drop every fitted attribute (scikit-learn's trailing underscore), the ledger with
        them: the estimator is unfitted, as after construction."""
        for name in [n for n in vars(self) if n.endswith("_") and not n.startswith("_")]:
            delattr(self, name)

    def _run_fit_hook(self, settings: DPSettings | None, *args: Any) -> None:
        """Run ``_fit(*args)``, or under ``dp`` ``_fit_private(*args, settings, ledger)``.

        The ledger is new, capped at ``settings.max_epsilon``; the whole budget is checked
        against the cap before any spend, and the ledger is ``privacy_spent_`` while the hook
        runs (a training loop charges it), ``None`` without ``dp``.
        """
        if settings is None:
            self.__dict__[_HOOK_STARTED] = True
            self.privacy_spent_ = None
            self._fit(*args)
            return
        ledger = PrivacyLedger(settings.max_epsilon)
        ledger.check(f"{self.name} fit", self.privacy_parts, settings.epsilon)
        self.__dict__[_HOOK_STARTED] = True
        self.privacy_spent_ = ledger
        self._fit_private(*args, settings, ledger)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Save to directory ``path`` as ``model.json`` + ``arrays.npz`` (no pickle).

        The files carry the fedsynth version, the hyperparameters, the schema, the fitted state
        and the privacy ledger; :func:`fedsynth.load` restores an estimator that samples
        identically.
        """
        return save_model_files(path, *self._model_files())

    def to_bytes(self) -> bytes:
        """The files of :meth:`save` as bytes (a ZIP archive made in memory, no pickle).

        Examples
        --------
        >>> same = type(gen).from_bytes(gen.to_bytes())  # doctest: +SKIP
        """
        return model_files_to_bytes(*self._model_files())

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """The estimator that :meth:`to_bytes` wrote; on a base class, of any registered class.

        Raises
        ------
        ModelFileError
            When ``data`` holds no model, or one of another class than ``cls``.
        """
        config, arrays = model_files_from_bytes(data)
        estimator = from_model_files(config, arrays, "the model bytes")
        if not isinstance(estimator, cls):
            problem = f"the model bytes hold a {config['generator']}, not a {cls.name}"
            raise ModelFileError([Problem(None, problem)])
        return estimator

    def _model_files(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``model.json``'s content and the arrays: what :meth:`save` and :meth:`to_bytes`
        write."""
        self._check_is_fitted()
        state, arrays = self._get_state()
        if PRIVACY_KEY in state:
            raise FedsynthError(f"{self.name} state uses the reserved key {PRIVACY_KEY!r}")
        ledger = getattr(self, "privacy_spent_", None)  # absent on a federated initial model
        if ledger is not None:
            state = {**state, PRIVACY_KEY: ledger.to_dict()}
        schema, schema_arrays = self._schema_config()
        clash = sorted(set(arrays) & set(schema_arrays))
        if clash:
            raise FedsynthError(f"{self.name} state uses the reserved array name(s) {clash}")
        config = {
            "format": "fedsynth-model",
            "format_version": FORMAT_VERSION,
            "fedsynth_version": __version__,
            "generator": self.name,
            "params": self.get_params(),
            "fitted_at": self.fitted_at_,
            **schema,
            "state": state,
        }
        return config, {**arrays, **schema_arrays}

    def get_info(self) -> dict[str, Any]:
        """What was fitted, when, with which hyperparameters and fedsynth version."""
        self._check_is_fitted()
        return {
            "generator": self.name,
            "params": self.get_params(),
            "fitted_at": self.fitted_at_,
            "fedsynth_version": self.fedsynth_version_,
            **self._schema_info(),
        }

    @classmethod
    def _from_saved(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> BaseEstimator:
        estimator = cls(**config["params"])
        estimator.fitted_at_ = config["fitted_at"]
        estimator.fedsynth_version_ = config["fedsynth_version"]
        estimator._load_schema(config, arrays)
        state = dict(config["state"])
        privacy = state.pop(PRIVACY_KEY, None)
        estimator.privacy_spent_ = None if privacy is None else PrivacyLedger.from_dict(privacy)
        estimator._set_state(state, arrays)
        estimator._after_load()
        return estimator

    def _stamp(self) -> None:
        """Record when the fit ended and with which fedsynth."""
        self.fitted_at_ = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        self.fedsynth_version_ = __version__

    # ------------------------------------------------------------------ modality hooks
    def _fit_data(self, data: Any, settings: DPSettings | None, **options: Any) -> None:
        """The modality's steps of ``fit``: schema and checks, then :meth:`_run_fit_hook`."""
        raise NotImplementedError

    def _schema_config(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """What the model file holds besides the state: JSON entries and arrays."""
        return {}, {}

    def _load_schema(self, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`_schema_config` wrote (its arrays are taken out of ``arrays``)."""

    def _schema_info(self) -> dict[str, Any]:
        """The modality's entries of :meth:`get_info`."""
        return {}

    def _fitted_summary(self) -> str:
        """What ``__repr__`` says of a fitted estimator."""
        return "fitted"

    def _after_load(self) -> None:
        """Work done once a saved estimator is restored."""

    # ------------------------------------------------------------------ estimator hooks
    def _check_params(self, settings: DPSettings | None) -> None:
        """Check the hyperparameters (``settings``: the resolved ``dp``) before any data work."""

    def _fit(self, *args: Any) -> None:
        raise NotImplementedError

    def _fit_private(self, *args: Any) -> None:
        """The fit under ``dp``: ``_fit``'s arguments, then the settings and the ledger."""
        raise PrivacyConfigError(f"{self.name} does not support dp; leave dp=None")

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        raise NotImplementedError

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError


def load(path: str | os.PathLike) -> BaseEstimator:
    """Load an estimator saved with :meth:`BaseEstimator.save`.

    Examples
    --------
    >>> gen = fedsynth.load("model/")  # doctest: +SKIP
    """
    return from_model_files(*load_model_files(path), repr(str(path)))


def from_model_files(
    config: dict[str, Any], arrays: dict[str, np.ndarray], source: str
) -> BaseEstimator:
    """The estimator of a model file's content; ``source`` names where it was read."""
    from fedsynth.core.registry import get_generator_class

    check_config(config, source)
    if config["format_version"] > FORMAT_VERSION:
        raise ModelFileError(
            [
                Problem(
                    None,
                    f"{source}: model.json was saved by fedsynth "
                    f"{config['fedsynth_version']} in a "
                    f"newer format; upgrade fedsynth (this is {__version__})",
                )
            ]
        )
    verify_checksums(config, arrays, source)
    try:
        cls = get_generator_class(config["generator"])
    except FedsynthError as exc:
        problem = f"{source}: model.json names an unknown generator: {exc}"
        raise ModelFileError([Problem(None, problem)]) from exc
    try:
        cls(**config["params"])
    except (TypeError, ValueError) as exc:  # the message names the parameter
        problem = f"{source}: model.json has parameters that {cls.__name__} rejects: {exc}"
        raise ModelFileError([Problem(None, problem)]) from exc
    mistyped = _mistyped_params(cls, config["params"])
    if mistyped:
        raise ModelFileError([f"{source}: model.json: {problem}" for problem in mistyped])
    try:
        return cls._from_saved(config, dict(arrays))
    except ModelFileError as exc:
        raise ModelFileError([f"{source}: {p}" for p in exc.problems]) from exc
    except (
        FedsynthError,
        KeyError,
        ValueError,
        IndexError,
        TypeError,
        AttributeError,
        RuntimeError,  # torch's load_state_dict on tensors of another shape
    ) as exc:
        # A damaged state (a missing key, an array of the wrong shape, a torch state dict that
        # does not fit the network) must read as a damaged file, not as a bug.
        reason = f"{type(exc).__name__}: {exc}" if isinstance(exc, KeyError) else str(exc)
        problem = (
            f"{source}: model.json/arrays.npz of a {cls.name} do not match its parameters "
            f"(damaged or edited?): {reason}"
        )
        raise ModelFileError([Problem(None, problem)]) from exc


def _mistyped_params(cls: type[BaseEstimator], params: dict[str, Any]) -> list[str]:
    """The saved parameters whose JSON type cannot be that of the constructor's default.

    Constructors store parameters unchecked, so an edited ``"epochs": "ten"`` would only fail
    in the middle of sampling; ``None`` passes (many parameters are optional).
    """
    defaults = {
        p.name: p.default
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not inspect.Parameter.empty
    }
    problems = []
    for name, value in params.items():
        default = defaults.get(name)
        if value is None or default is None:
            continue
        if isinstance(default, bool):
            allowed: tuple[type, ...] = (bool,)
        elif isinstance(default, int | float):
            allowed = (int, float)
        elif isinstance(default, str):
            allowed = (str,)
        elif isinstance(default, list | tuple):
            allowed = (list,)
        else:
            continue
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            problems.append(
                f"parameter {name!r} is {value!r}, of another type than its default {default!r}"
            )
    return problems
