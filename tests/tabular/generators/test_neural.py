"""The machinery that neural generators share: batches, devices, training loop, weights, warm
start. Checked through TVAE and VAE-BGM trained for a few epochs on a small table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import fedsynth
from fedsynth.core.torch_device import resolve_device
from fedsynth.exceptions import FedsynthError, ParameterError
from fedsynth.tabular.generators._neural_torch import ShuffledBatches
from fedsynth.tabular.generators._vae import _CONTEXT_LR_FACTOR

FAST = {"epochs": 3, "batch_size": 100}


@pytest.fixture
def table(clinical):
    return clinical.drop(columns=["patient_id"])


@pytest.fixture(params=["tvae", "vae_bgm"])
def fitted(request, table):
    return fedsynth.make(request.param, seed=1, **FAST).fit(table)


def test_batches_cover_the_rows_once_per_epoch():
    batches = ShuffledBatches(10, 3, torch.Generator().manual_seed(0))
    epoch = list(batches)
    assert len(batches) == len(epoch) == 3 and all(b.shape == (3,) for b in epoch)
    assert len(set(torch.cat(epoch).tolist())) == 9  # the incomplete last batch is dropped
    assert not torch.equal(torch.cat(epoch), torch.cat(list(batches)))  # reshuffled
    assert [b.shape for b in ShuffledBatches(4, 100, torch.Generator())] == [(4,)]


def test_device_resolution():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu' or 'cuda"):
        resolve_device("gpu please")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_invalid_hyperparameters_are_all_reported(table):
    gen = fedsynth.make(
        "tvae", epochs=0, batch_size=2.5, lr=-1, validation_fraction=0.7, hidden_dims=(64, 0)
    )
    with pytest.raises(ValueError) as info:
        gen.fit(table)
    message = str(info.value)
    for text in ("epochs must be", "batch_size must be", "lr must be", "validation_fraction"):
        assert text in message
    with pytest.raises(ValueError, match="hidden_dims must be a tuple of positive integers"):
        fedsynth.make("tvae", hidden_dims=(64, 0)).fit(table)
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        fedsynth.make("tvae").fit(table, epochs=0)


def test_epochs_of_one_call_and_history(table):
    gen = fedsynth.make("tvae", seed=0, **FAST).fit(table, epochs=2)
    assert [h["epoch"] for h in gen.history_] == [1, 2]
    assert all(np.isfinite(h["loss"]) for h in gen.history_)
    assert gen.epochs == FAST["epochs"]  # the hyperparameter is left as given


def test_early_stopping_stops_and_records_the_validation_loss(table):
    # With a vanishing learning rate the validation loss cannot improve after the first epoch.
    gen = fedsynth.make("tvae", epochs=50, lr=1e-12, early_stopping=True, patience=2, seed=0)
    gen.fit(table)
    assert len(gen.history_) == 3
    assert all("validation" in h for h in gen.history_)


def test_progress_bar_shows_the_loss(table, capsys, monkeypatch):
    monkeypatch.delenv("FEDSYNTH_NO_PROGRESS", raising=False)
    fedsynth.make("tvae", verbose=True, **FAST).fit(table)
    out = capsys.readouterr().out
    assert "Training TVAE" in out and "loss" in out
    fedsynth.make("tvae", **FAST).fit(table)
    assert capsys.readouterr().out == ""


def test_fit_leaves_torch_global_random_state_alone(table):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fedsynth.make("tvae", seed=0, **FAST).fit(table).sample(10)
    assert torch.equal(torch.rand(3), expected)


def test_same_seed_same_weights_and_samples(table):
    a = fedsynth.make("vae_bgm", seed=4, **FAST).fit(table)
    b = fedsynth.make("vae_bgm", seed=4, **FAST).fit(table)
    for x, y in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(x, y)
    pd.testing.assert_frame_equal(a.sample(200, seed=1), b.sample(200, seed=1))
    c = fedsynth.make("vae_bgm", seed=5, **FAST).fit(table)
    assert not a.sample(200, seed=1).equals(c.sample(200, seed=1))


def test_averaged_weights_can_be_set(fitted, table, tmp_path):
    # A second site: the same model (same encoder), trained further on other rows.
    other = fedsynth.load(fitted.save(tmp_path / "model"))
    other.fit(table.iloc[200:], epochs=2, warm_start=True)
    mean = [(x + y) / 2 for x, y in zip(fitted.get_weights(), other.get_weights(), strict=True)]
    fitted.set_weights(mean)
    for got, want in zip(fitted.get_weights(), mean, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=0)
    assert len(fitted.sample(100)) == 100


def test_bad_weights_are_refused(fitted):
    weights = fitted.get_weights()
    before = [w.copy() for w in weights]
    with pytest.raises(FedsynthError, match=f"expected {len(weights)} weight arrays, got 1"):
        fitted.set_weights(weights[:1])
    poisoned = [w.copy() for w in weights]
    poisoned[0][0] = np.nan
    with pytest.raises(FedsynthError, match="holds NaN or infinite values"):
        fitted.set_weights(poisoned)
    reshaped = [*weights[:-1], np.zeros((2, 2), dtype=np.float32)]
    with pytest.raises(FedsynthError, match=r"shape \(2, 2\), expected"):
        fitted.set_weights(reshaped)
    for got, want in zip(fitted.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)  # nothing was loaded


def test_warm_start_continues_from_the_weights_and_keeps_the_encoder(fitted, table):
    encoder_state = fitted.encoder_.get_state()
    before = fitted.get_weights()
    fitted.fit(table.iloc[:200], epochs=2, warm_start=True)
    assert fitted.n_fits_ == 2 and len(fitted.history_) == FAST["epochs"] + 2
    assert fitted.encoder_.get_state()[0] == encoder_state[0]
    after = fitted.get_weights()
    moved = max(float(np.abs(a - b).max()) for a, b in zip(after, before, strict=True))
    scale = max(float(np.abs(w).max()) for w in before)
    # Four Adam steps move each weight by about 4 lr at most (a VAE's discrete context learns
    # at a multiple of lr): training went on from the weights
    fastest = fitted.lr * (_CONTEXT_LR_FACTOR if getattr(fitted, "autoregressive", False) else 1)
    assert 0 < moved < 5 * fastest
    assert moved < scale / 4  # a fresh start would move weights by about their own size
    assert fitted.n_rows_ == 200


def test_warm_start_with_zero_epochs_trains_nothing(fitted, table):
    before = fitted.get_weights()
    fitted.fit(table, epochs=0, warm_start=True)
    for got, want in zip(fitted.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)
    assert len(fitted.history_) == FAST["epochs"]


def test_warm_start_refuses_other_columns(fitted, table):
    with pytest.raises(Exception, match="age"):
        fitted.fit(table.drop(columns=["age"]), epochs=1, warm_start=True)


def test_tuple_hyperparameters_survive_save_and_load(table, tmp_path):
    gen = fedsynth.make("tvae", hidden_dims=(32, 16), latent_dim=4, **FAST).fit(table)
    loaded = fedsynth.load(gen.save(tmp_path / "m"))
    assert loaded.hidden_dims == (32, 16)
    assert repr(loaded) == repr(gen)


def test_warm_start_checks_its_input_as_a_first_fit_does(table):
    from fedsynth.exceptions import InvalidDataError

    gen = fedsynth.make("tvae", seed=0, **FAST).fit(table)
    with pytest.raises(InvalidDataError, match="expected a pandas DataFrame, got ndarray"):
        gen.fit(table.to_numpy(), epochs=1, warm_start=True)
    with pytest.raises(InvalidDataError, match="'sex'"):
        gen.fit(table.assign(sex=5.5), epochs=1, warm_start=True)
    assert gen.n_fits_ == 1 and gen.privacy_spent_ is None


def test_max_steps_caps_the_epochs_of_a_fit(table):
    # 400 rows in batches of 100: 4 steps per epoch, so 10 steps allow 2 whole epochs.
    capped = fedsynth.make("vae_bgm", seed=0, epochs=6, batch_size=100, max_steps=10).fit(table)
    assert [h["epoch"] for h in capped.history_] == [1, 2]
    # A cap below one epoch still trains one; None and a cap above the epochs change nothing.
    one = fedsynth.make("tvae", seed=0, epochs=6, batch_size=100, max_steps=1).fit(table)
    assert len(one.history_) == 1
    for cap in (None, 24):
        gen = fedsynth.make("tvae", seed=0, epochs=6, batch_size=100, max_steps=cap).fit(table)
        assert len(gen.history_) == 6
    with pytest.raises(ValueError, match="max_steps must be a positive integer or None"):
        fedsynth.make("tvae", max_steps=0).fit(table)


@pytest.mark.parametrize("name", ["ctgan", "tvae", "vae_bgm", "tab_ddpm"])
def test_invalid_hyperparameters_are_a_parameter_error_naming_each(clinical, name):
    with pytest.raises(ParameterError, match=r"epochs must be a positive integer, got 'abc'"):
        fedsynth.make(name, epochs="abc").fit(clinical)
