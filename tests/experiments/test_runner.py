"""The experiment runner and ``fedsynth federate``, with the federation run in process."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from fedsynth.cli.federate import federate as federate_command
from fedsynth.core.progress import (
    ExperimentStarted,
    ReferenceDone,
    RoundDone,
    StageFinished,
    StepDone,
)
from fedsynth.experiments import runner as experiment
from fedsynth.federated import FederationResult, partition
from tests.federated.conftest import TINY, InProcessTransport, read_jsonl


@pytest.fixture
def in_process_federate(monkeypatch):
    """``federate`` replaced by the same protocol over the in-process transport."""
    from fedsynth.federated.server_app import run_server
    from fedsynth.federated.settings import RunSettings

    def fake(partitions, *, out, on_round, metadata, strategy, params, **settings):
        out.mkdir(parents=True, exist_ok=True)
        (out / "metadata.json").write_text(json.dumps(metadata.to_dict()))
        keep = ("rounds", "local_epochs", "model", "seed", "audit")
        run_server(
            InProcessTransport(partitions),
            RunSettings(
                metadata_path=str(out / "metadata.json"),
                out_dir=str(out / "server"),
                strategies=list(strategy),
                params=params,
                **{k: v for k, v in settings.items() if k in keep},
            ),
        )
        for entry in read_jsonl(out / "server" / "models.jsonl"):
            on_round(entry["strategy"], entry["round"], entry["path"])
        return FederationResult(out / "server")

    monkeypatch.setattr(experiment, "federate", fake)


def test_experiment_scores_every_round_against_the_references(
    two_sites, tmp_path, in_process_federate
):
    events = []
    result = experiment.run_experiment(
        two_sites,
        out=tmp_path,
        model="tvae",
        strategies=["fedavg", "synthetic_sharing"],
        rounds=2,
        local_epochs=1,
        params=TINY,
        families=["fidelity"],
        progress=events.append,
    )
    scores = result.scores
    assert set(scores["method"]) == {"centralized", "isolated", "fedavg", "synthetic_sharing"}
    federated = scores[scores["method"].isin(["fedavg", "synthetic_sharing"])]
    assert sorted(federated["round"]) == [1, 1, 2, 2]
    isolated = scores[scores["method"] == "isolated"]
    pairs = sorted(zip(isolated["site"], isolated["scope"], strict=True))
    assert pairs == [("north", "all"), ("north", "own"), ("south", "all"), ("south", "own")]
    assert scores["csf"].notna().all() and scores["utility"].isna().all()
    summary = pd.read_csv(tmp_path / "summary.csv", index_col="method")
    assert summary.loc["fedavg", "round"] == 2 and summary.loc["isolated", "models"] == 2
    assert (tmp_path / "scores.png").stat().st_size > 1000
    assert "| fedavg | 2 | 1 |" in (tmp_path / "summary.md").read_text()
    for name in ("centralized", "fedavg", "synthetic_sharing", "isolated_north"):
        assert len(pd.read_csv(tmp_path / "synthetic" / f"{name}.csv")) > 0
    record = json.loads((tmp_path / "experiment.json").read_text())
    assert record["holdout_rows"] == round(0.3 * 111) + round(0.3 * 97)
    assert record["secure_aggregation"] is False
    # The events: the plan, each reference started and done, the federation, each round scored.
    (plan,) = [e for e in events if isinstance(e, ExperimentStarted)]
    assert plan.steps == 1 + 2 + 2 * 2
    assert len([e for e in events if isinstance(e, StepDone)]) == plan.steps
    assert [(e.method, e.site) for e in events if isinstance(e, ReferenceDone)] == [
        ("centralized", None),
        ("isolated", "north"),
        ("isolated", "south"),
    ]
    rounds = [e for e in events if isinstance(e, RoundDone)]
    assert sorted((e.strategy, e.round, e.rounds) for e in rounds) == [
        ("fedavg", 1, 2),
        ("fedavg", 2, 2),
        ("synthetic_sharing", 1, 2),
        ("synthetic_sharing", 2, 2),
    ]
    last = next(e for e in rounds if (e.strategy, e.round) == ("fedavg", 2))
    assert last.scores["csf"] == federated.set_index(["method", "round"]).loc[("fedavg", 2), "csf"]
    assert last.message.startswith("fedavg round 2/2: csf ")
    assert isinstance(events[-1], StageFinished) and events[-1].name == "Federated"


def test_holdout_split_keeps_every_row_once(two_sites):
    train, holdout, per_site = experiment.split_holdout(two_sites, 0.3, seed=0)
    for name, data in two_sites.items():
        assert len(train[name]) + len(per_site[name]) == len(data)
    together = pd.concat([*train.values(), holdout])
    assert together["patient_id"].is_unique and len(together) == sum(map(len, two_sites.values()))
    with pytest.raises(ValueError, match="holdout_fraction"):
        experiment.split_holdout(two_sites, 1.5)


@pytest.fixture
def cli(monkeypatch):
    """The command on its own Typer app, with the experiment replaced by a recorder."""
    calls = []

    def fake_run(partitions, **kwargs):
        calls.append((partitions, kwargs))
        show = kwargs["progress"]
        show(ExperimentStarted("tvae", tuple(partitions), ("fedavg",), 2, False, False))
        show(RoundDone("fedavg", 1, 2, {"csf": 0.85}))
        show(RoundDone("fedavg", 2, 2, {"csf": 0.9, "utility": None}))
        summary = pd.DataFrame(
            [{"method": "fedavg", "round": 2, "models": 1, "csf": 0.9, "gsf": 0.8,
              "utility": None, "privacy": 0.7, "overall": 0.8}]
        ).set_index("method")  # fmt: skip

        federation = SimpleNamespace(refused={"east": "site 'east' refused: ..."})
        return experiment.ExperimentResult(pd.DataFrame(), summary, federation, {}, None)

    monkeypatch.setattr(experiment, "run_experiment", fake_run)
    app = typer.Typer()
    app.command("federate")(federate_command)
    app.command("other")(lambda: None)  # a group, so that "federate" is a subcommand
    return app, calls


def test_cli_partition_by_site(cli, mds, tmp_path):
    app, calls = cli
    data = tmp_path / "mds.csv"
    mds.to_csv(data, index=False)
    args = ["federate", "--partition-by", "site", str(data), "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(
        app,
        [
            *args,
            "--strategies",
            "fedavg,fedprox",
            "--rounds",
            "2",
            "-p",
            "epochs=3",
            "--secure-aggregation",
        ],
    )
    assert result.exit_code == 0, result.output
    partitions, kwargs = calls[0]
    assert sorted(partitions) == ["site_1", "site_2"]
    assert kwargs["strategies"] == ["fedavg", "fedprox"] and kwargs["rounds"] == 2
    assert kwargs["secure_aggregation"] is True
    assert kwargs["params"] == {"seed": 0, "epochs": 3}
    assert "fedavg" in result.output and "0.900" in result.output and "refused" in result.output
    # The experiment's events are printed as they come.
    assert "fedavg round 1/2: csf 0.850" in result.output
    assert "fedavg round 2/2: csf 0.900" in result.output


def test_cli_one_file_per_site_and_simulated_splits(cli, mds, tmp_path):
    app, calls = cli
    files = []
    for name, part in partition.by_column(mds, "site").items():
        files.append(tmp_path / f"hospital_{name}.csv")
        part.to_csv(files[-1], index=False)
    out = ["--out", str(tmp_path / "o")]
    runner = CliRunner()
    assert runner.invoke(app, ["federate", "--data", *map(str, files), *out]).exit_code == 0
    assert sorted(calls[-1][0]) == ["hospital_site_1", "hospital_site_2"]
    split = ["federate", "--split", "dirichlet", "--split-column", "sex", "--sites", "3"]
    assert runner.invoke(app, [*split, str(files[0]), *out]).exit_code == 0
    assert len(calls[-1][0]) == 3
    both = runner.invoke(
        app, ["federate", "--data", "--partition-by", "site", *map(str, files), *out]
    )
    assert both.exit_code == 2 and "choose one of" in both.output
