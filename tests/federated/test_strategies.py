"""The four strategies on a tiny configuration (2 sites, 1-2 rounds): what leaves a site, what
the server keeps, and the faults it survives. The protocol runs in process (see conftest)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fedsynth
from fedsynth.core.io import model_files_from_bytes
from fedsynth.federated import FederationError, federate, task
from fedsynth.federated.encoder_stats import SharedSchema
from fedsynth.federated.messages import Payload
from fedsynth.federated.strategies import FedAvg
from fedsynth.federated.task import load_model

from .conftest import SIZES, TINY, assert_holds_no_training_row, read_jsonl, run_in_process

ALL = ["fedavg", "fedprox", "synthetic_sharing", "generator_sharing"]


@pytest.fixture(scope="module")
def lockstep(two_sites, tmp_path_factory):
    """Every strategy, two rounds, in lock-step; with a copy of every reply."""
    tmp = tmp_path_factory.mktemp("lockstep")
    out, transport = run_in_process(two_sites, tmp, strategies=ALL, rounds=2, audit=True)
    config = json.loads((out / "schema" / "schema.json").read_text())
    with np.load(out / "schema" / "schema.npz") as npz:
        schema = SharedSchema.from_payload(config, dict(npz))
    return out, transport, schema


def test_fedavg_and_fedprox_send_weights_and_losses_only(lockstep, two_sites):
    _, transport, schema = lockstep
    encoded_width = schema.encoder.output_dim_
    assert encoded_width not in SIZES.values()  # the row-count check below would be void
    train = [(site, reply) for kind, site, reply in transport.replies if kind == "train"]
    assert len(train) == 4
    for site, reply in train:
        assert set(reply) == {"site", *ALL}
        for strategy in ("fedavg", "fedprox"):
            part = reply[strategy]
            assert set(part.config) <= {"has-extra", "extra-config"}, part.config
            assert all(not isinstance(value, bytes | list) for value in part.config.values())
            assert part.metrics["num-examples"] == SIZES[site]
            assert all(k == "num-examples" or k.startswith("loss/") for k in part.metrics)
            assert part.arrays, "no weights sent"
            for array in part.arrays.values():
                assert_holds_no_training_row(array, two_sites, schema)


def test_synthetic_sharing_sends_only_synthetic_rows(lockstep, two_sites):
    _, transport, schema = lockstep
    for kind, site, reply in transport.replies:
        if kind != "train":
            continue
        part = reply["synthetic_sharing"]
        assert set(part.config) == {"rows"} and not part.arrays
        assert part.metrics == {"num-examples": len(two_sites[site])}
        rows = task.table_from_bytes(part.config["rows"])
        real = two_sites[site]
        assert len(rows) == len(real) and list(rows.columns) == schema.columns
        assert "patient_id" not in rows
        learned = schema.learned_columns
        canonical = real[learned].astype(str)
        unique = canonical[~canonical.duplicated(keep=False)]
        copies = rows[learned].astype(str).merge(unique, how="inner", on=learned)
        assert copies.empty, "a synthetic row copies a unique training row"


def test_generator_sharing_sends_the_model_without_fingerprints(lockstep, two_sites):
    _, transport, schema = lockstep
    for kind, site, reply in transport.replies:
        if kind != "train":
            continue
        part = reply["generator_sharing"]
        assert set(part.config) == {"model"} and not part.arrays
        assert part.metrics == {"num-examples": len(two_sites[site])}
        config, arrays = model_files_from_bytes(part.config["model"])
        assert config["generator"] == "tvae"
        assert arrays["copy_guard_fingerprints"].size == 0
        for name, array in arrays.items():
            if name != "copy_guard_fingerprints":
                assert_holds_no_training_row(array, two_sites, schema)


def test_statistics_replies_hold_aggregates_only(lockstep, two_sites):
    _, transport, _ = lockstep
    stats = [(site, r) for kind, site, r in transport.replies if kind == "query.statistics"]
    assert sorted(site for site, _ in stats) == sorted(two_sites)
    for site, reply in stats:
        assert set(reply) == {"site"} and not reply["site"].arrays
        assert set(reply["site"].config) == {"name", "statistics"}
        text = reply["site"].config["statistics"]
        for patient in two_sites[site]["patient_id"]:
            assert patient not in text


def test_every_round_model_is_saved_and_samples(lockstep):
    out, _, schema = lockstep
    models = read_jsonl(out / "models.jsonl")
    assert sorted((m["strategy"], m["round"]) for m in models) == sorted(
        (s, r) for s in ALL for r in (1, 2)
    )
    for entry in models:
        sample = load_model(entry["path"]).sample(20, seed=0)
        assert list(sample.columns) == schema.columns and len(sample) == 20
    rounds = read_jsonl(out / "rounds.jsonl")
    assert all(r["participants"] == sorted(SIZES) for r in rounds)
    assert all(not r["rejected"] and not r["failed"] for r in rounds)
    events = [e["event"] for e in read_jsonl(out / "events.jsonl")]
    assert events[0] == "started" and events[-1] == "finished"
    audit = read_jsonl(out / "audit.jsonl")
    assert {a["phase"] for a in audit} == {"statistics", "train"}
    assert (out / "audit" / "train_002" / "north" / "fedavg.npz").is_file()


def _reply(weights, n) -> Payload:
    arrays = {f"w{i:04d}": w for i, w in enumerate(weights)}
    return Payload({"has-extra": False}, arrays, {"num-examples": n})


def test_nan_or_misshapen_update_is_rejected_not_averaged(lockstep):
    _, _, schema = lockstep
    strategy = FedAvg(model="tvae", params=TINY, schema=schema, local_epochs=1)
    good = [w + 1.0 for w in strategy.weights_]
    poisoned = [w.copy() for w in strategy.weights_]
    poisoned[0][0, 0] = np.nan
    misshapen = [w.copy() for w in strategy.weights_]
    misshapen[1] = np.zeros(misshapen[1].shape[0] + 1, dtype=misshapen[1].dtype)
    log = strategy.aggregate(
        1,
        {
            "good": _reply(good, 50),
            "nan": _reply(poisoned, 500),
            "shape": _reply(misshapen, 500),
            "short": _reply(good[:-1], 10),
            "liar": _reply(good, -3),
        },
    )
    assert log.participants == ["good"]
    assert "NaN" in log.rejected["nan"]
    assert "shape" in log.rejected["shape"]
    assert "weight arrays" in log.rejected["short"]
    assert "num-examples" in log.rejected["liar"]
    for averaged, sent in zip(strategy.weights_, good, strict=True):
        np.testing.assert_allclose(averaged, sent)


def test_weighted_average_and_update_checks():
    a, b = [np.zeros((2, 2)), np.array([4])], [np.ones((2, 2)), np.array([8])]
    mean = task.weighted_average([a, b], [3, 1])
    np.testing.assert_allclose(mean[0], 0.25)
    assert mean[1].dtype == a[1].dtype and mean[1][0] == 5
    assert task.check_update(a, b) == []
    assert task.check_update(a, [a[0]]) == ["expected 2 weight arrays, got 1"]
    assert "dtype" in task.check_update([np.zeros(1)], [np.array(["x"])])[0]
    # 0-d buffers (batch-norm's batch counter) come back as arrays that Flower can send:
    # a numpy scalar there stopped CTGAN's second round.
    from flwr.app import Array

    counters = task.weighted_average([[np.array(12, dtype=np.int64)], [np.array(3)]], [1, 2])
    assert isinstance(counters[0], np.ndarray) and counters[0].shape == () and counters[0] == 6
    assert Array(counters[0]).numpy() == 6


def test_fedprox_keeps_local_weights_near_the_global_ones(lockstep, two_sites):
    _, _, schema = lockstep
    data = two_sites["north"]
    distances = {}
    for mu in (0.0, 50.0):
        generator = task.start_generator("tvae", {**TINY, "lr": 0.01}, schema)
        start = generator.get_weights()
        generator.train_local(data, epochs=3, proximal_mu=mu)
        distances[mu] = sum(
            float(np.sum((w - s) ** 2)) for w, s in zip(generator.get_weights(), start, strict=True)
        )
    assert distances[50.0] < 0.5 * distances[0.0]


def test_a_failed_site_is_left_out_and_recorded(two_sites, mds, tmp_path):
    sites = {**two_sites, "east": mds[mds["site"] == "site_2"].tail(89).reset_index(drop=True)}
    out, _ = run_in_process(
        sites, tmp_path, strategies=["fedavg"], fail={"east": "no reply within 5 s"}
    )
    # The site failed from the start: it never sent statistics, so it is no participant.
    assert json.loads((out / "sites.json").read_text())["no_reply"] == {"3": "no reply within 5 s"}
    (log,) = read_jsonl(out / "rounds.jsonl")
    assert log["participants"] == ["north", "south"]


def test_a_site_failing_mid_run_is_recorded_in_its_round(two_sites, mds, tmp_path):
    from .conftest import InProcessTransport

    class FailsInRoundTwo(InProcessTransport):
        def exchange(self, message_type, contents, timeout):
            if message_type == "train" and any(
                c["common"].config["round"] == 2 for c in contents.values()
            ):
                self.fail["south"] = "the site failed: killed"
            return super().exchange(message_type, contents, timeout)

    import fedsynth.federated.server_app as server_app
    from fedsynth.federated.settings import RunSettings

    sites = {**two_sites, "east": mds[mds["site"] == "site_2"].tail(89).reset_index(drop=True)}
    metadata = fedsynth.federated.shared_metadata(sites)
    (tmp_path / "md.json").write_text(json.dumps(metadata.to_dict()))
    settings = RunSettings(
        metadata_path=str(tmp_path / "md.json"),
        out_dir=str(tmp_path / "server"),
        model="tvae",
        params=TINY,
        local_epochs=1,
        rounds=2,
        min_sites=2,
    )
    server_app.run_server(FailsInRoundTwo(sites), settings)
    first, second = read_jsonl(tmp_path / "server" / "rounds.jsonl")
    assert first["participants"] == ["east", "north", "south"]
    assert second["participants"] == ["east", "north"]
    assert second["failed"] == {"south": "the site failed: killed"}


def test_too_few_sites_stop_the_run(two_sites, tmp_path):
    with pytest.raises(FederationError, match="at least 2"):
        run_in_process(two_sites, tmp_path, fail={"south": "no reply"})
    events = read_jsonl(tmp_path / "server" / "events.jsonl")
    assert events[-1]["event"] == "failed"


def test_site_that_does_not_fit_is_refused_and_the_run_goes_on(two_sites, mds, tmp_path):
    bad = mds[mds["site"] == "site_2"].tail(89).reset_index(drop=True)
    bad["sex"] = bad["sex"].astype(object).where(bad.index > 0, "X")
    sites = {**two_sites, "east": bad}
    metadata = fedsynth.federated.shared_metadata(two_sites)
    (tmp_path / "metadata.json").write_text(json.dumps(metadata.to_dict()))
    from fedsynth.federated.server_app import run_server
    from fedsynth.federated.settings import RunSettings

    from .conftest import InProcessTransport

    settings = RunSettings(
        metadata_path=str(tmp_path / "metadata.json"),
        out_dir=str(tmp_path / "server"),
        model="tvae",
        params=TINY,
        local_epochs=1,
        rounds=1,
    )
    run_server(InProcessTransport(sites), settings)
    refused = json.loads((tmp_path / "server" / "sites.json").read_text())["refused"]
    assert list(refused) == ["east"]
    assert "site 'east' refused" in refused["east"] and "column 'sex'" in refused["east"]
    (log,) = read_jsonl(tmp_path / "server" / "rounds.jsonl")
    assert log["participants"] == ["north", "south"]


def test_vae_bgm_fedavg_completes_its_latent_mixture_on_the_sites(two_sites, tmp_path):
    out, transport = run_in_process(two_sites, tmp_path, model="vae_bgm", rounds=2)
    kinds = [kind for kind, _, _ in transport.replies]
    assert kinds.count("query.finalize") == 2
    round_two = [r for k, _, r in transport.replies if k == "train"][-1]["fedavg"]
    assert "extra-config" in round_two.config  # the mixture for round 1's global weights
    models = read_jsonl(out / "models.jsonl")
    assert [m["round"] for m in models] == [1, 2]
    assert len(load_model(models[-1]["path"]).sample(30, seed=1)) == 30


def test_statistical_generator_with_the_sharing_strategies_reports_each_sites_epsilon(
    two_sites, tmp_path
):
    from fedsynth.tabular.privacy import declare_public

    # The shared metadata is agreed before training: its domains are public knowledge.
    metadata = fedsynth.federated.shared_metadata(two_sites)
    columns = metadata.columns
    declare_public(
        metadata,
        bounds={n: c.bounds for n, c in columns.items() if c.is_continuous},
        categories={n: c.categories for n, c in columns.items() if c.is_discrete},
    )
    out, _ = run_in_process(
        two_sites,
        tmp_path,
        metadata=metadata,
        model="bayesian_network",
        params={"dp": {"epsilon": 1.0, "delta": 1e-6}},
        strategies=["synthetic_sharing", "generator_sharing"],
    )
    for entry in read_jsonl(out / "models.jsonl"):
        assert len(load_model(entry["path"]).sample(10, seed=0)) == 10
    for log in read_jsonl(out / "rounds.jsonl"):
        for site in SIZES:
            assert 0 < log["metrics"][f"epsilon/{site}"] <= 1.0 + 1e-9
            assert log["metrics"][f"delta/{site}"] <= 1e-6


def test_averaging_a_model_without_weights_is_refused_before_starting(two_sites):
    with pytest.raises(FederationError, match="no trainable weights"):
        federate(two_sites, model="bayesian_network", strategy="fedavg")


def test_site_mixtures_merge_into_their_union_weighted_by_site_size():
    from fedsynth.core.federable import ExtraState
    from fedsynth.exceptions import FedsynthWarning
    from fedsynth.tabular.generators.federable import FederableGenerator

    def mixture(k: int, shift: float) -> ExtraState:
        arrays = {
            "weights": np.full(k, 1 / k),
            "means": np.full((k, 2), shift),
            "covariances": np.stack([np.eye(2)] * k),
            "log_var": np.full(2, shift),
        }
        return ExtraState({}, arrays)

    vae_bgm = type(fedsynth.make("vae_bgm"))
    _, merged = vae_bgm.merge_extra_states([mixture(2, 0.0), mixture(4, 1.0)], [30, 10])
    np.testing.assert_allclose(merged["weights"], [0.375, 0.375] + [0.0625] * 4)
    assert merged["means"].shape == (6, 2) and merged["covariances"].shape == (6, 2, 2)
    np.testing.assert_allclose(merged["log_var"], 0.25)
    # A generator with extra state but no merge of its own: the largest site's, with a warning.
    other = ExtraState({"kind": "x"}, {"table": np.zeros(2)}), ExtraState({"kind": "y"}, {})

    class Unmerged(FederableGenerator):
        has_extra_state = True

    with pytest.warns(FedsynthWarning, match="largest site"):
        assert Unmerged.merge_extra_states(other, [1, 5]).config == {"kind": "y"}


def test_ctgan_averages_its_generator_and_discriminator(two_sites, tmp_path):
    tiny_gan = {
        "generator_dims": [16],
        "discriminator_dims": [16],
        "embedding_dim": 8,
        "batch_size": 50,
    }
    out, transport = run_in_process(
        two_sites, tmp_path, model="ctgan", params=tiny_gan, strategies=["fedavg", "fedprox"]
    )
    (reply,) = [r for k, s, r in transport.replies if k == "train" and s == "north"]
    assert not reply["fedavg"].config["has-extra"]
    models = read_jsonl(out / "models.jsonl")
    assert {m["strategy"] for m in models} == {"fedavg", "fedprox"}
    assert len(load_model(models[0]["path"]).sample(25, seed=0)) == 25
