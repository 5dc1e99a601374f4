"""The one registry of generators: name -> class, keyed by modality, filled by :func:`register`.

Generator modules are imported only when their name is asked for, so that ``import fedsynth``
stays fast and does not import torch for the statistical generators. A name is unique across
modalities, so that a saved model names its class by the name alone.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from fedsynth.exceptions import UnknownGeneratorError

if TYPE_CHECKING:
    from fedsynth.core.base import BaseEstimator

#: Where each built-in generator is defined, by modality. A module registers its class when
#: imported.
BUILTIN_MODULES: dict[str, dict[str, str]] = {
    "tabular": {
        "gaussian_copula": "fedsynth.tabular.generators.gaussian_copula",
        "bayesian_network": "fedsynth.tabular.generators.bayesian_network",
        "ctgan": "fedsynth.tabular.generators.ctgan",
        "tvae": "fedsynth.tabular.generators.tvae",
        "vae_bgm": "fedsynth.tabular.generators.vae_bgm",
        "tab_ddpm": "fedsynth.tabular.generators.tab_ddpm",
        "auto": "fedsynth.tabular.generators.auto",
    },
    "imaging": {
        "latent_diffusion": "fedsynth.imaging.generators.latent_diffusion",
        "dp_gan": "fedsynth.imaging.generators.dp_gan",
    },
    "text": {
        "dp_icl": "fedsynth.text.dp_icl",
    },
}

_REGISTRY: dict[str, type[BaseEstimator]] = {}
G = TypeVar("G", bound="type[BaseEstimator]")


def register(name: str, *, modality: str | None = None) -> Callable[[G], G]:
    """Class decorator that registers a generator under ``name``.

    Parameters
    ----------
    name : str
        The name :func:`make` and saved models use; unique across modalities.
    modality : str, optional
        What the generator makes ("tabular", ...); by default the class's ``modality``, which
        this sets when given.

    Examples
    --------
    >>> from fedsynth.tabular.generators.base import BaseGenerator
    >>> @register("my_generator")          # doctest: +SKIP
    ... class MyGenerator(BaseGenerator): ...
    """

    def decorator(cls: G) -> G:
        kind = modality or cls.modality
        if not kind:
            raise ValueError(
                f"generator {name!r} has no modality: pass register(..., modality=...) or set "
                f"{cls.__name__}.modality"
            )
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(f"generator name {name!r} is already taken by {existing.__name__}")
        cls.name = name
        cls.modality = kind
        _REGISTRY[name] = cls
        return cls

    return decorator


def available_generators(modality: str | None = None) -> list[str]:
    """Names accepted by :func:`make`, sorted: built-in ones whose module is installed, and
    those registered since.

    Parameters
    ----------
    modality : str, optional
        Only the generators of this modality ("tabular", ...); all of them by default.

    Examples
    --------
    >>> "gaussian_copula" in available_generators("tabular")
    True
    """
    names = {
        name
        for kind, modules in BUILTIN_MODULES.items()
        if modality in (None, kind)
        for name, module in modules.items()
        if importlib.util.find_spec(module)
    }
    names |= {name for name, cls in _REGISTRY.items() if modality in (None, cls.modality)}
    return sorted(names)


def get_generator_class(name: str) -> type[BaseEstimator]:
    """The class registered under ``name`` (importing its module if needed)."""
    if name not in _REGISTRY and name in available_generators():
        importlib.import_module(_builtin_module(name))
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownGeneratorError(
            f"unknown generator {name!r}; available: {', '.join(available_generators())}"
        ) from None


def _builtin_module(name: str) -> str:
    return next(modules[name] for modules in BUILTIN_MODULES.values() if name in modules)


def make(name: str, **params: Any) -> BaseEstimator:
    """Create a generator by name.

    Parameters
    ----------
    name : str
        A name from :func:`available_generators`, e.g. ``"gaussian_copula"``.
    **params
        The generator's hyperparameters (see its class).

    Examples
    --------
    >>> import fedsynth
    >>> gen = fedsynth.make("gaussian_copula", seed=1)
    >>> gen
    GaussianCopula(seed=1)
    """
    cls = get_generator_class(name)
    accepted = cls._param_names()
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise TypeError(
            f"{name} got unknown parameter(s) {', '.join(unknown)}; "
            f"it accepts: {', '.join(accepted) or 'none'}"
        )
    return cls(**params)
