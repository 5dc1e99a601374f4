"""Pure training functions of federated training: no Flower, no network, no global state.

What a site does with its rows (check them, summarise them, train a generator on them, sample
from it) and what the server does with the sites' replies (check an update, average weights,
pool synthetic rows, mix generators) are plain functions of arrays and tables here. The Flower
apps (:mod:`~fedsynth.federated.client_app`, :mod:`~fedsynth.federated.server_app`) only move
their inputs and outputs between processes.
"""

from __future__ import annotations

import importlib
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fedsynth.core.base import BaseEstimator
from fedsynth.core.federable import Federable
from fedsynth.exceptions import ConditionError, FedsynthError, ModelFileError, Problem
from fedsynth.federated.encoder_stats import SharedSchema
from fedsynth.tabular.generators import BaseGenerator, load, make
from fedsynth.tabular.generators.site_mix import SiteMix, attach_site_mix


def import_plugins(plugins: str | Sequence[str]) -> None:
    """Import the modules that register extra generators (comma-separated names).

    A generator registered by the caller's own module must be registered in the Flower
    processes too: they import the modules named here before making the model.
    """
    names = plugins.split(",") if isinstance(plugins, str) else list(plugins)
    for name in (n.strip() for n in names):
        if name:
            importlib.import_module(name)


def new_generator(model: str, params: Mapping[str, Any]) -> BaseGenerator:
    """A generator by registry name, with ``verbose`` off (a Flower process has no terminal)."""
    generator = make(model, **dict(params))
    if "verbose" in generator.get_params():
        generator.set_params(verbose=False)
    return generator


def averages_weights(generator: object) -> bool:
    """Whether weight averaging can train ``generator``: it implements the
    :class:`~fedsynth.core.federable.Federable` protocol and has trainable weights."""
    return isinstance(generator, Federable) and bool(generator.has_weights)


# ---------------------------------------------------------------------- weight averaging
def start_generator(
    model: str, params: Mapping[str, Any], schema: SharedSchema, *, n_fits: int = 0
) -> Federable:
    """A federable generator on the shared schema, untrained
    (:meth:`~fedsynth.core.federable.Federable.init_from_schema`).

    Raises
    ------
    FedsynthError
        When the generator has no weights to average.
    """
    generator = new_generator(model, params)
    if not averages_weights(generator):
        raise FedsynthError(
            f"{model} has no trainable weights to average; federate it with the "
            "synthetic_sharing or generator_sharing strategy instead"
        )
    return generator.init_from_schema(schema, n_fits=n_fits)


def privacy_spent(generator: BaseGenerator) -> dict[str, float]:
    """``{"epsilon": ..., "delta": ...}`` the generator's training spent under differential
    privacy (its ``privacy_spent_`` ledger), or ``{}`` when it was trained without DP."""
    ledger = getattr(generator, "privacy_spent_", None)
    if ledger is None:
        return {}
    return {"epsilon": float(ledger.epsilon), "delta": float(ledger.delta)}


def check_update(reference: Sequence[np.ndarray], update: Sequence[np.ndarray]) -> list[str]:
    """Problems that make a weight update unusable: wrong count, wrong shapes, NaN or infinity.

    Examples
    --------
    >>> check_update([np.zeros(2)], [np.array([np.nan, 1.0])])
    ['array 0: holds NaN or infinite values']
    """
    if len(update) != len(reference):
        return [f"expected {len(reference)} weight arrays, got {len(update)}"]
    problems = []
    for i, (old, new) in enumerate(zip(reference, update, strict=True)):
        new = np.asarray(new)
        if new.shape != np.shape(old):
            problems.append(f"array {i}: shape {new.shape}, expected {np.shape(old)}")
        elif not np.issubdtype(new.dtype, np.number):
            problems.append(f"array {i}: dtype {new.dtype} is not numeric")
        elif not np.isfinite(new).all():
            problems.append(f"array {i}: holds NaN or infinite values")
    return problems


def weighted_average(
    updates: Sequence[Sequence[np.ndarray]], weights: Sequence[float]
) -> list[np.ndarray]:
    """Average of weight lists, weighted (e.g. by site size); each array keeps its dtype.

    Examples
    --------
    >>> weighted_average([[np.array([0.0])], [np.array([3.0])]], [2, 1])
    [array([1.])]
    """
    if not updates:
        raise ValueError("nothing to average")
    total = float(np.sum(weights))
    out = []
    for arrays in zip(*updates, strict=True):
        mean = sum(
            np.asarray(a, dtype=np.float64) * (w / total)
            for a, w in zip(arrays, weights, strict=True)
        )
        dtype = np.asarray(arrays[0]).dtype
        # Integer buffers (e.g. batch-norm's batch counter) stay integers, and 0-d arrays stay
        # arrays (arithmetic on them gives numpy scalars, which Flower's records refuse).
        mean = np.round(mean) if np.issubdtype(dtype, np.integer) else mean
        out.append(np.asarray(mean, dtype=dtype))
    return out


# ---------------------------------------------------------------------- local generators
def fit_local(
    model: str,
    params: Mapping[str, Any],
    schema: SharedSchema,
    data: pd.DataFrame,
    *,
    epochs: int,
    previous: BaseGenerator | None = None,
    n_fits: int = 0,
) -> BaseGenerator:
    """A site's own generator, trained ``epochs`` more epochs on its rows.

    A federable generator with weights is built on the shared schema (so that no
    site-specific encoder, with modes fitted on one site's values, ever leaves the site) and
    trained further each round; any other generator is fitted once on the shared metadata and
    then kept as it is.
    """
    generator = previous
    if generator is None:
        generator = new_generator(model, params)
        if not averages_weights(generator):
            return generator.fit(data, metadata=schema.metadata)
        generator.init_from_schema(schema, n_fits=n_fits)
    elif not averages_weights(generator):
        return generator
    generator.train_local(data, epochs=epochs)
    return generator


def model_from_bytes(data: bytes) -> BaseEstimator:
    """A generator from :meth:`~fedsynth.core.federable.Federable.to_bytes` (any generator's
    ``to_bytes``, of any modality; no pickle)."""
    return BaseEstimator.from_bytes(data)


def by_site(generator: Any, schema: Any, data: Any = None) -> Any:
    """Make a federated model sample each site's share; returns it.

    A table model gets the site mix of the shared encoder, or of ``data``, a site's own rows
    (:mod:`~fedsynth.tabular.generators.site_mix`); a site's own image model samples the case
    mix of ``data``, its images (:func:`~fedsynth.federated.image_sites.own_case_mix`), and an
    averaged image model the pooled one, already in the shared schema.
    """
    if isinstance(schema, SharedSchema):
        mix = (
            SiteMix.from_encoder(schema.metadata, schema.encoder)
            if data is None
            else SiteMix.from_data(schema.metadata, data)
        )
        return attach_site_mix(generator, mix)
    if data is not None:
        from fedsynth.federated.image_sites import own_case_mix

        own_case_mix(generator, data)
    return generator


def output_problem(generator: Any, schema: Any) -> str | None:
    """Why a site's generator does not make what the shared schema describes, or ``None``."""
    if isinstance(schema, SharedSchema):
        columns = getattr(generator, "columns_", None)
        return None if columns == schema.columns else f"it makes columns {columns}"
    from fedsynth.federated.image_sites import output_problem as image_problem

    return image_problem(generator, schema)


def table_to_bytes(table: pd.DataFrame) -> bytes:
    """A table as Parquet bytes (dtypes kept), for a message."""
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    return buffer.getvalue()


def table_from_bytes(data: bytes) -> pd.DataFrame:
    """Inverse of :func:`table_to_bytes`."""
    return pd.read_parquet(io.BytesIO(data))


# ---------------------------------------------------------------------- mixtures of generators
class GeneratorMixture:
    """Samples from several generators, each in proportion to its weight (e.g. site size).

    Parameters
    ----------
    generators : mapping of str to BaseGenerator
        One fitted generator per site.
    weights : mapping of str to float
        The weight of each (rows at its site).

    Examples
    --------
    >>> mixture = GeneratorMixture({"a": gen_a, "b": gen_b}, {"a": 300, "b": 100})  # doctest: +SKIP
    >>> mixture.sample(400)  # about 300 rows from gen_a, 100 from gen_b  # doctest: +SKIP
    """

    def __init__(self, generators: Mapping[str, BaseGenerator], weights: Mapping[str, float]):
        if not generators or set(generators) != set(weights):
            raise ValueError("a mixture needs one weight per generator, and at least one")
        self.generators = dict(generators)
        self.weights = {k: float(weights[k]) for k in self.generators}

    def sample(
        self, n: int, seed: int | None = None, conditions: Mapping[str, Any] | None = None
    ) -> Any:
        """``n`` rows (or images): a multinomial share of them from each generator, shuffled
        together.

        An image generator's share is its weight times the share of its images that meet
        ``conditions``, so that a site without such images contributes none; the pooled
        :class:`~fedsynth.imaging.ImageSet` names each image's site in its ``site`` label
        column (:func:`~fedsynth.federated.image_sites.pool_images`).
        """
        rng = np.random.default_rng(seed)
        names = list(self.generators)
        shares = np.array([self.weights[k] * self._share(k, conditions) for k in names])
        if not shares.sum() > 0:
            raise ConditionError(f"no site's generator makes {dict(conditions or {})}")
        counts = rng.multinomial(n, shares / shares.sum())
        options = {} if conditions is None else {"conditions": conditions}
        parts = {
            name: self.generators[name].sample(int(k), seed=int(rng.integers(2**31 - 1)), **options)
            for name, k in zip(names, counts, strict=True)
        }
        if not all(isinstance(part, pd.DataFrame) for part in parts.values()):
            from fedsynth.federated.image_sites import pool_images

            return pool_images(parts, rng)
        pooled = pd.concat(parts.values(), ignore_index=True)
        return pooled.iloc[rng.permutation(len(pooled))].reset_index(drop=True)

    def _share(self, name: str, conditions: Mapping[str, Any] | None) -> float:
        """The share of a generator's output that meets ``conditions`` (1 for a table model,
        whose conditions are met row by row)."""
        schema = getattr(self.generators[name], "schema_", None)
        share_of = getattr(schema, "share_of", None)
        return 1.0 if share_of is None else float(share_of(conditions))

    def save(self, path: str | os.PathLike) -> Path:
        """Save as ``mixture.json`` and one model directory per generator."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for i, generator in enumerate(self.generators.values()):
            generator.save(path / f"part_{i}")
        listing = [{"name": k, "weight": w} for k, w in self.weights.items()]
        (path / "mixture.json").write_text(json.dumps({"parts": listing}, indent=2) + "\n")
        return path


def load_model(path: str | os.PathLike) -> BaseGenerator | GeneratorMixture:
    """Load a round's model: a generator, or a :class:`GeneratorMixture` (generator sharing)."""
    path = Path(path)
    listing = path / "mixture.json"
    if not listing.is_file():
        return load(path)
    try:
        parts = json.loads(listing.read_text())["parts"]
        names = [p["name"] for p in parts]
        weights = {p["name"]: float(p["weight"]) for p in parts}
    except (ValueError, OSError, KeyError, TypeError) as exc:
        problem = f"{str(listing)!r} is damaged: {type(exc).__name__}: {exc}"
        raise ModelFileError([Problem(None, problem)]) from exc
    generators = {name: load(path / f"part_{i}") for i, name in enumerate(names)}
    return GeneratorMixture(generators, weights)
