"""The dp= setting: defaults, and one error listing every problem."""

import pytest

from fedsynth.core.privacy import DPSettings, PrivacyConfigError, resolve_dp


def test_defaults_are_filled_and_none_means_no_dp():
    settings = resolve_dp({"epsilon": 2, "delta": 1e-6})
    assert settings == DPSettings(epsilon=2.0, delta=1e-6)
    assert settings.domain_fraction == 0.1 and settings.accountant == "rdp"
    assert settings.pretrain == "bayesian_network" and settings.pretrain_fraction == 0.5
    assert resolve_dp({"epsilon": 2, "delta": 1e-6, "pretrain": None}).pretrain is None
    assert resolve_dp(None) is None
    assert resolve_dp(settings) is settings
    assert resolve_dp(settings.to_dict()) == settings


def test_every_problem_is_listed_at_once():
    with pytest.raises(PrivacyConfigError) as error:
        resolve_dp(
            {
                "epsilon": -1,
                "delta": 1.5,
                "max_epsilon": 0,
                "domain_fraction": 1,
                "accountant": "moments",
                "pretrain": "ctgan",
                "pretrain_fraction": 0,
                "pretrain_epochs": 2.5,
                "noise": 3,
            }
        )
    message = str(error.value)
    for expected in (
        "unknown key 'noise'",
        "epsilon must be a finite positive number, got -1",
        "delta must be a number in (0, 1), got 1.5",
        "max_epsilon must be a finite number > 0 or None, got 0",
        "domain_fraction must be a number in (0, 1), got 1",
        "accountant must be one of rdp, prv, got 'moments'",
        "pretrain must be one of bayesian_network, gaussian_copula or None, got 'ctgan'",
        "pretrain_fraction must be a number in (0, 1), got 0",
        "pretrain_epochs must be an integer >= 1, got 2.5",
    ):
        assert expected in message


def test_missing_keys_and_wrong_types():
    with pytest.raises(PrivacyConfigError, match=r"epsilon is required\n.*delta is required"):
        resolve_dp({})
    with pytest.raises(PrivacyConfigError, match="dp must be a dict"):
        resolve_dp(1.0)
    with pytest.raises(PrivacyConfigError, match="epsilon must be a finite positive number"):
        resolve_dp({"epsilon": True, "delta": 1e-5})
