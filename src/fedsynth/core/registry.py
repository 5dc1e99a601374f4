"""The one registry of generators: name -> class, filled by :func:`register`.

Generator modules are imported only when their name is asked for, so that ``import fedsynth``
stays fast and does not import torch for the statistical generators.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from fedsynth.exceptions import UnknownGeneratorError

if TYPE_CHECKING:
    from fedsynth.tabular.generators.base import BaseGenerator

# Where each built-in generator is defined. A module registers its class when imported.
BUILTIN_MODULES: dict[str, str] = {
    "gaussian_copula": "fedsynth.tabular.generators.gaussian_copula",
    "bayesian_network": "fedsynth.tabular.generators.bayesian_network",
    "ctgan": "fedsynth.tabular.generators.ctgan",
    "tvae": "fedsynth.tabular.generators.tvae",
    "vae_bgm": "fedsynth.tabular.generators.vae_bgm",
    "auto": "fedsynth.tabular.generators.auto",
}

_REGISTRY: dict[str, type[BaseGenerator]] = {}
G = TypeVar("G", bound="type[BaseGenerator]")


def register(name: str) -> Callable[[G], G]:
    """Class decorator that registers a generator under ``name``.

    Examples
    --------
    >>> from fedsynth.tabular.generators.base import BaseGenerator
    >>> @register("my_generator")          # doctest: +SKIP
    ... class MyGenerator(BaseGenerator): ...
    """

    def decorator(cls: G) -> G:
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(f"generator name {name!r} is already taken by {existing.__name__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def available_generators() -> list[str]:
    """Names accepted by :func:`make`, sorted (built-in ones whose module is installed)."""
    installed = {
        name for name, module in BUILTIN_MODULES.items() if importlib.util.find_spec(module)
    }
    return sorted(installed | set(_REGISTRY))


def get_generator_class(name: str) -> type[BaseGenerator]:
    """The class registered under ``name`` (importing its module if needed)."""
    if name not in _REGISTRY and name in available_generators():
        importlib.import_module(BUILTIN_MODULES[name])
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownGeneratorError(
            f"unknown generator {name!r}; available: {', '.join(available_generators())}"
        ) from None


def make(name: str, **params: Any) -> BaseGenerator:
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
    accepted = [
        p.name
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise TypeError(
            f"{name} got unknown parameter(s) {', '.join(unknown)}; "
            f"it accepts: {', '.join(accepted) or 'none'}"
        )
    return cls(**params)
