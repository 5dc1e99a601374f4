"""The modality-neutral estimator base: dp resolved once, the ledger kept by the base (and put
back when a fit fails), saved with the model; the registry keyed by modality."""

import json

import numpy as np
import pandas as pd
import pytest

import fedsynth
from fedsynth.core import registry
from fedsynth.core.base import BaseEstimator
from fedsynth.core.privacy import PrivacyBudgetError, PrivacyConfigError, PrivacyLedger
from fedsynth.core.privacy import config as privacy_config
from fedsynth.exceptions import NotFittedError
from fedsynth.tabular.generators.base import BaseGenerator
from fedsynth.tabular.generators.gaussian_copula import GaussianCopula
from fedsynth.tabular.privacy import declare_public


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(50, 10, 500).round(1), "g": rng.choice(["a", "b"], 500)})


def public(table):
    return declare_public(
        fedsynth.Metadata.infer(table), bounds={"x": (0, 100)}, categories={"g": ["a", "b"]}
    )


class CountingCopula(GaussianCopula):
    """A copula that counts the calls of its fit hooks."""

    plain_calls = private_calls = 0

    def _fit(self, *args):
        CountingCopula.plain_calls += 1
        super()._fit(*args)

    def _fit_private(self, *args):
        CountingCopula.private_calls += 1
        super()._fit_private(*args)


def test_dp_is_resolved_once_per_fit(table, monkeypatch):
    calls = []
    resolve = privacy_config.resolve_dp

    def counting(dp):
        calls.append(dp)
        return resolve(dp)

    monkeypatch.setattr("fedsynth.core.base.resolve_dp", counting)
    dp = {"epsilon": 2.0, "delta": 1e-5}
    gen = CountingCopula(dp=dp).fit(table, metadata=public(table))
    assert calls == [dp]
    assert (CountingCopula.plain_calls, CountingCopula.private_calls) == (0, 1)
    assert gen.privacy_spent_.epsilon == pytest.approx(2.0)
    CountingCopula(dp=None).fit(table)
    assert calls == [dp, None]
    assert (CountingCopula.plain_calls, CountingCopula.private_calls) == (1, 1)


def test_a_refused_fit_puts_the_previous_ledger_back(table):
    gen = fedsynth.make("gaussian_copula", dp={"epsilon": 1.0, "delta": 1e-5, "max_epsilon": 2.0})
    gen.fit(table, metadata=public(table))
    ledger = gen.privacy_spent_
    rows = gen.sample(20, seed=1)
    gen.set_params(dp={"epsilon": 3.0, "delta": 1e-5, "max_epsilon": 2.0})
    with pytest.raises(PrivacyBudgetError, match=r"gaussian_copula fit .* above the budget cap"):
        gen.fit(table, metadata=public(table))
    assert gen.privacy_spent_ is ledger
    pd.testing.assert_frame_equal(gen.sample(20, seed=1), rows)


def test_a_failed_fit_leaves_no_ledger_on_a_new_estimator(table):
    gen = fedsynth.make("bayesian_network", dp={"epsilon": 1.0, "delta": 1e-5})
    gen._fit_released = _raise  # fails after the domains were released and charged
    with pytest.raises(RuntimeError, match="hook failed"):
        gen.fit(table, metadata=public(table))
    assert not hasattr(gen, "privacy_spent_") and not gen.is_fitted


def test_a_refit_that_fails_during_training_leaves_the_estimator_unfitted(table):
    gen = fedsynth.make("gaussian_copula", dp={"epsilon": 1.0, "delta": 1e-5})
    gen.fit(table, metadata=public(table))
    assert gen.is_fitted and isinstance(gen.privacy_spent_, PrivacyLedger)

    def fail_midway(*args):
        gen.marginals_ = "half learned"  # training changed the model, then failed
        raise RuntimeError("hook failed")

    gen._fit_private = fail_midway
    with pytest.raises(RuntimeError, match="hook failed"):
        gen.fit(table, metadata=public(table))
    assert not gen.is_fitted and not hasattr(gen, "privacy_spent_")
    assert not hasattr(gen, "marginals_")
    with pytest.raises(NotFittedError):
        gen.sample(5)
    del gen._fit_private
    assert gen.fit(table, metadata=public(table)).sample(5, seed=0).shape[0] == 5


def _raise(*args):
    raise RuntimeError("hook failed")


def test_without_dp_the_ledger_is_none_even_after_a_private_fit(table):
    gen = fedsynth.make("gaussian_copula", dp={"epsilon": 1.0, "delta": 1e-5})
    assert isinstance(gen.fit(table, metadata=public(table)).privacy_spent_, PrivacyLedger)
    assert gen.set_params(dp=None).fit(table).privacy_spent_ is None


def test_the_base_saves_the_ledger_where_old_files_hold_it(table, tmp_path):
    gen = fedsynth.make("bayesian_network", dp={"epsilon": 1.0, "delta": 1e-5})
    gen.fit(table, metadata=public(table)).save(tmp_path / "model")
    saved = json.loads((tmp_path / "model" / "model.json").read_text())
    assert saved["state"]["privacy"] == gen.privacy_spent_.to_dict()
    loaded = fedsynth.load(tmp_path / "model")
    assert loaded.privacy_spent_.spends == gen.privacy_spent_.spends
    assert "privacy" not in loaded._get_state()[0]  # the generator's own state holds none


def test_an_estimator_without_dp_support_refuses_it(table):
    class Plain(BaseGenerator):
        def __init__(self, *, dp=None, seed=0):
            self.dp = dp
            self.seed = seed

    with pytest.raises(PrivacyConfigError, match="does not support dp"):
        Plain(dp={"epsilon": 1.0, "delta": 1e-5}).fit(table)


def test_registry_by_modality(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    tabular = registry.available_generators("tabular")
    assert {"gaussian_copula", "bayesian_network"} <= set(tabular)
    assert registry.available_generators("imaging") == ["dp_gan", "latent_diffusion"]

    @registry.register("toy_images", modality="imaging")
    class ToyImages(BaseEstimator):
        def __init__(self, *, seed=0):
            self.seed = seed

    assert ToyImages.modality == "imaging" and ToyImages.name == "toy_images"
    assert registry.available_generators("imaging") == ["dp_gan", "latent_diffusion", "toy_images"]
    assert "toy_images" not in registry.available_generators("tabular")
    assert "toy_images" in registry.available_generators()
    assert isinstance(registry.make("toy_images", seed=3), ToyImages)
    assert fedsynth.make("gaussian_copula").modality == "tabular"
    with pytest.raises(ValueError, match="has no modality"):
        registry.register("nameless")(type("Nameless", (BaseEstimator,), {}))
    with pytest.raises(ValueError, match="already taken by GaussianCopula"):
        registry.register("gaussian_copula")(type("Other", (BaseGenerator,), {}))


def test_params_repr_and_not_fitted():
    gen = fedsynth.make("gaussian_copula", n_quantiles=50, seed=2)
    assert gen.get_params() == {"n_quantiles": 50, "dp": None, "seed": 2}
    assert repr(gen) == "GaussianCopula(n_quantiles=50, seed=2)"
    assert gen.set_params(seed=4).seed == 4
    with pytest.raises(TypeError, match="has no parameter 'epochs'"):
        gen.set_params(epochs=3)
    with pytest.raises(fedsynth.NotFittedError, match="not fitted yet"):
        gen.get_info()
