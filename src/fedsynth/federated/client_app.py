"""The ClientApp: what a site runs, as thin Flower handlers around pure functions.

A SuperNode is started at each site with its own settings (``--node-config``):

* ``site-name``: the name the site is known by in logs and results;
* ``data-path``: its table (CSV, TSV or Parquet), or its image set folder (``images.npz`` +
  ``labels.csv``), read at each message and never sent.

Three messages reach a site: ``query.statistics`` (check the table against the shared metadata,
send aggregate statistics or a refusal), ``train`` (one round of every strategy of the run, or
the steps of a secure round, see :mod:`~fedsynth.federated.secure_aggregation`) and
``query.finalize`` (the data-derived state of the final global weights); an image run with a
checked release adds ``query.check`` (one boolean per synthetic image sent, see
:mod:`~fedsynth.federated.checked_release`). What each strategy sends
back is documented in :mod:`fedsynth.federated.strategies`. The site's memory between rounds
(its own generator, for the sharing strategies) stays in the SuperNode's context state.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from typing import Any

import pandas as pd
from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from fedsynth.exceptions import DataWarning
from fedsynth.federated import checked_release, image_sites
from fedsynth.federated.encoder_stats import check_site, site_statistics
from fedsynth.federated.errors import SiteRefusedError
from fedsynth.federated.image_sites import TABULAR
from fedsynth.federated.messages import Content, Payload, from_records, to_records
from fedsynth.federated.secure_aggregation import is_secure, masked_reply, secure_mod
from fedsynth.federated.strategies import STRATEGIES
from fedsynth.federated.strategy_base import Site
from fedsynth.federated.task import import_plugins
from fedsynth.tabular.metadata import Metadata


# ---------------------------------------------------------------------- pure handlers
def statistics_reply(content: Mapping[str, Payload], name: str, data: Any) -> Content:
    """Check the site's table against the shared metadata; its statistics, or a refusal (for
    images: :func:`~fedsynth.federated.image_sites.statistics_reply`)."""
    settings = content["common"].config
    if settings.get("modality", TABULAR) != TABULAR:
        return image_sites.statistics_reply(content, name, data)
    if not isinstance(data, pd.DataFrame):
        text = f"site {name!r} holds {type(data).__name__}, but the federation trains on tables"
        return {"site": Payload({"name": name, "refused": text, "columns": "[]"})}
    metadata = Metadata.from_dict(json.loads(content["metadata"].config["json"]))
    try:
        check_site(data, metadata, name)
    except SiteRefusedError as exc:
        refusal = {"name": name, "refused": str(exc), "columns": json.dumps(exc.columns)}
        return {"site": Payload(refusal)}
    statistics = site_statistics(
        data,
        metadata,
        min_count=int(settings["min-count"]),
        max_modes=int(settings["max-modes"]),
        seed=int(settings["seed"]),
    )
    return {"site": Payload({"name": name, "statistics": json.dumps(statistics)})}


def _site(content: Mapping[str, Payload], name: str, data: Any, state) -> Site:
    settings = content["common"].config
    import_plugins(str(settings["plugins"]))
    schema_part = content["schema"]
    return Site(
        name=name,
        data=data,
        schema=image_sites.schema_from_payload(
            str(settings.get("modality", TABULAR)),
            json.loads(schema_part.config["json"]),
            schema_part.arrays,
        ),
        model=str(settings["model"]),
        params=json.loads(settings["params"]),
        round=int(settings["round"]),
        state=state,
    )


def round_reply(
    content: Mapping[str, Payload],
    name: str,
    data: Any,
    state: dict[str, Payload],
    *,
    finalize: bool = False,
) -> Content:
    """The site's work for every strategy named in the message (a round, or the final step).

    A strategy whose task fails gets ``{"error": ...}`` back: the failure of one strategy must
    not lose the others' work, and the server records it as that site's failure.
    """
    site = _site(content, name, data, state)
    reply: Content = {"site": Payload({"name": name})}
    for strategy in str(content["common"].config["strategies"]).split(","):
        if strategy not in content:
            continue
        cls = STRATEGIES[strategy]
        try:
            with warnings.catch_warnings():
                # The table was checked in the statistics phase; a column constant at one site
                # (its own site name, a rare mutation) is expected and not worth a warning.
                warnings.simplefilter("ignore", DataWarning)
                if finalize:
                    reply[strategy] = cls.site_finalize(content[strategy], site)
                else:
                    reply[strategy] = cls.site_task(content[strategy], site)
        except Exception as exc:  # reported to the server: see the docstring
            reply[strategy] = Payload({"error": f"{type(exc).__name__}: {exc}"})
    return reply


# ---------------------------------------------------------------------- Flower handlers
app = ClientApp()


def _node(context: Context) -> tuple[str, Any]:
    name = str(context.node_config["site-name"])
    return name, image_sites.read_site(str(context.node_config["data-path"]))


def _load_state(context: Context) -> dict[str, Payload]:
    """The site's memory between rounds, kept in the SuperNode's context (never sent)."""
    stored = from_records(context.state)
    return {k[len(_STATE) :]: v for k, v in stored.items() if k.startswith(_STATE)}


def _save_state(context: Context, state: Mapping[str, Payload]) -> None:
    for key, record in to_records({_STATE + k: v for k, v in state.items()}).items():
        context.state[key] = record


_STATE = "fedsynth-state/"


@app.query("statistics")
def statistics(message: Message, context: Context) -> Message:
    """Aggregate statistics of the site's table, or its refusal."""
    name, data = _node(context)
    reply = statistics_reply(from_records(message.content), name, data)
    return Message(to_records(reply), reply_to=message)


@app.train(mods=[secure_mod])
def train(message: Message, context: Context) -> Message:
    """One round of every strategy of the run, or, in a secure round, of one averaging
    strategy whose update ``secure_mod`` masks before it leaves the site."""
    name, data = _node(context)
    state = _load_state(context)
    content = from_records(message.content)
    reply = round_reply(content, name, data, state)
    _save_state(context, state)
    if is_secure(message):
        return Message(masked_reply(content, reply), reply_to=message)
    return Message(to_records(reply), reply_to=message)


@app.query("check")
def check(message: Message, context: Context) -> Message:
    """One boolean per synthetic image sent: too close to one of the site's images, or not
    (generator sharing's checked release, :mod:`~fedsynth.federated.checked_release`)."""
    name, data = _node(context)
    reply = checked_release.check_reply(from_records(message.content), name, data)
    return Message(to_records(reply), reply_to=message)


@app.query("finalize")
def finalize(message: Message, context: Context) -> Message:
    """The data-derived state of the final global weights (e.g. VAE-BGM's latent mixture)."""
    name, data = _node(context)
    reply = round_reply(from_records(message.content), name, data, {}, finalize=True)
    return Message(to_records(reply), reply_to=message)
