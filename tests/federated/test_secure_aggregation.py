"""Secure aggregation (Flower's SecAgg+) for fedavg and fedprox, run in this process through the
real ClientApp, its mods and Flower's workflow (:class:`LoopbackGrid`), against the same run
without it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fedsynth.exceptions import DataWarning
from fedsynth.federated import task
from fedsynth.federated.messages import Payload
from fedsynth.federated.secure_aggregation import new_weights, split_update
from fedsynth.federated.settings import RunSettings
from fedsynth.federated.task import load_model

from .conftest import TINY, read_jsonl, run_in_process, run_on_loopback

pytestmark = pytest.mark.usefixtures("task_identity")

THREE = {"north": 111, "south": 97, "east": 100}


@pytest.fixture(scope="module")
def three_sites(mds):
    first = mds[mds["site"] == "site_1"].reset_index(drop=True)
    second = mds[mds["site"] == "site_2"].reset_index(drop=True)
    return {
        "north": first.head(111).reset_index(drop=True),
        "south": second.head(97).reset_index(drop=True),
        "east": first.iloc[111:211].reset_index(drop=True),
    }


@pytest.fixture(scope="module")
def plain_tvae(three_sites, tmp_path_factory):
    """fedavg without secure aggregation, every message kept (the sites' own weights)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        out, _ = run_in_process(three_sites, tmp_path_factory.mktemp("plain"), audit=True)
    return out


def _model_weights(out, strategy: str, round: int) -> list[np.ndarray]:
    return load_model(out / "models" / strategy / f"round_{round:03d}").get_weights()


def _site_weights(out, site: str) -> list[np.ndarray]:
    with np.load(out / "audit" / "train_001" / site / "fedavg.npz") as npz:
        return [npz[k] for k in sorted(npz.files) if k.startswith("w")]


def _gap(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(
        float(np.abs(x.astype(float) - y.astype(float)).max()) for x, y in zip(a, b, strict=True)
    )


def _mean_gap(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    gaps = np.concatenate(
        [np.abs(x.astype(float) - y.astype(float)).ravel() for x, y in zip(a, b, strict=True)]
    )
    return float(gaps.mean())


def _rounds(out, strategy: str) -> list[dict]:
    return [r for r in read_jsonl(out / "rounds.jsonl") if r["strategy"] == strategy]


def test_secure_rounds_give_the_plain_average_and_no_update_in_clear(three_sites, tmp_path):
    """vae_bgm (whose mixture travels in clear) over 2 rounds of fedavg and fedprox, secure,
    beside synthetic_sharing in plain messages, against the same run without SecAgg+."""
    settings = {
        "model": "vae_bgm",
        "strategies": ["fedavg", "fedprox", "synthetic_sharing"],
        "rounds": 2,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        plain, _ = run_in_process(three_sites, tmp_path / "plain", **settings)
        secure, _ = run_on_loopback(
            three_sites, tmp_path / "secure", secure_aggregation=True, audit=True, **settings
        )
    for strategy in ("fedavg", "fedprox"):
        first, second = (_model_weights(plain, strategy, r) for r in (1, 2))
        # Quantization steps of 2 * 8 / 2**22 = 3.8e-6 per site.
        assert _gap(first, _model_weights(secure, strategy, 1)) < 2e-5
        # Round 2 trains on weights that differ by that much (Adam can amplify it): the gap
        # stays a small part of what the round changed.
        assert _mean_gap(second, _model_weights(secure, strategy, 2)) < 0.01 * _mean_gap(
            first, second
        )
        logs = _rounds(secure, strategy)
        assert [r["participants"] for r in logs] == [sorted(THREE)] * 2
        assert all(not r["failed"] and "loss" in " ".join(r["metrics"]) for r in logs)
        final = load_model(secure / "models" / strategy / "round_002")
        assert len(final.sample(50, seed=0)) == 50
    assert len(_rounds(secure, "synthetic_sharing")) == 2
    # What the server saw of each secure reply: settings and the mixture, no weight array.
    audit = read_jsonl(secure / "audit.jsonl")
    for strategy in ("fedavg", "fedprox"):
        entries = [e for e in audit if e["phase"] == f"train.{strategy}"]
        assert len(entries) == 2 * len(THREE)
        for entry in entries:
            arrays = entry["parts"][strategy]["arrays"]
            assert not [k for k in arrays if k.startswith("w")]
            assert entry["parts"]["masked"]["config"]["bytes"] > 0
            # VAE-BGM's mixture for the previous round's weights travels in clear.
            assert any(k.startswith("extra/") for k in arrays) == (entry["round"] == 2)


def test_a_site_lost_before_its_upload_is_left_out_of_the_average(
    three_sites, plain_tvae, tmp_path
):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        out, _ = run_on_loopback(
            three_sites,
            tmp_path,
            secure_aggregation=True,
            drop={"east": "collect_masked_vectors"},
        )
    expected = task.weighted_average(
        [_site_weights(plain_tvae, "north"), _site_weights(plain_tvae, "south")],
        [THREE["north"], THREE["south"]],
    )
    assert _gap(expected, _model_weights(out, "fedavg", 1)) < 1e-5
    (log,) = _rounds(out, "fedavg")
    assert log["participants"] == ["north", "south"]
    assert "node lost" in log["failed"]["east"]


def test_a_site_lost_while_unmasking_still_counts(three_sites, plain_tvae, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        out, _ = run_on_loopback(
            three_sites, tmp_path, secure_aggregation=True, drop={"east": "unmask"}
        )
    assert _gap(_model_weights(plain_tvae, "fedavg", 1), _model_weights(out, "fedavg", 1)) < 1e-5
    (log,) = _rounds(out, "fedavg")
    assert log["participants"] == sorted(THREE) and not log["failed"]


def test_too_few_sites_left_halts_the_round_without_an_update(three_sites, tmp_path):
    lost = {"east": "collect_masked_vectors", "south": "collect_masked_vectors"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        out, _ = run_on_loopback(three_sites, tmp_path, secure_aggregation=True, drop=lost)
    (log,) = _rounds(out, "fedavg")
    assert log["participants"] == []
    assert "halted" in log["failed"]["north"]
    assert "node lost" in log["failed"]["east"] and "node lost" in log["failed"]["south"]
    assert not (out / "models" / "fedavg" / "round_001").exists()
    assert read_jsonl(out / "events.jsonl")[-1]["event"] == "finished"


def test_a_site_checks_its_update_against_the_clipping_range(three_sites, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        out, _ = run_on_loopback(
            three_sites, tmp_path, secure_aggregation=True, secure_clipping_range=1e-9
        )
    (log,) = _rounds(out, "fedavg")
    assert log["participants"] == []
    for site in THREE:
        assert "beyond the secure aggregation's clipping range" in log["failed"][site]
        assert f"site {site}" in log["failed"][site]


def test_update_split_and_new_weights_round_trip():
    start = [np.zeros((2, 3), dtype=np.float32), np.array(5, dtype=np.int64)]
    ends = {
        "a": [np.full((2, 3), 0.5, dtype=np.float32), np.array(9, dtype=np.int64)],
        "b": [np.full((2, 3), -1.0, dtype=np.float32), np.array(6, dtype=np.int64)],
    }
    sizes = {"a": 30, "b": 10}
    parts, masked = {}, {}
    for site, end in ends.items():
        masked[site], clear = split_update(start, end, 8.0, site)
        parts[site] = Payload({}, clear, {"num-examples": sizes[site]})
    average = [sum(masked[s][0] * sizes[s] for s in sizes) / 40]
    weights = new_weights(start, average, parts)
    np.testing.assert_allclose(weights[0], 0.125)
    assert weights[0].dtype == np.float32
    assert weights[1].dtype == np.int64 and int(weights[1]) == 5 + 3  # (4*30 + 1*10) / 40


def test_unusable_updates_are_refused_at_the_site():
    start = [np.zeros(3)]
    with pytest.raises(Exception, match="site x: update not sent: array 0: holds NaN"):
        split_update(start, [np.array([0.0, np.nan, 1.0])], 8.0, "x")
    with pytest.raises(Exception, match="array 0 changed by 9"):
        split_update(start, [np.array([0.0, 9.0, 1.0])], 8.0, "x")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"strategies": ["synthetic_sharing"]}, "average weights"),
        ({"min_sites": 1}, "min_sites >= 2"),
        ({"secure_clipping_range": 0.0}, "secure_clipping_range must be positive"),
    ],
)
def test_secure_settings_are_checked(changes, message):
    with pytest.raises(ValueError, match=message):
        RunSettings(
            metadata_path="m.json", out_dir="o", params=TINY, secure_aggregation=True, **changes
        )
