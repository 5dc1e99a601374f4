"""Request and response bodies of the REST API (pydantic), which its OpenAPI schema describes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from fedsynth.core.metrics import FAMILIES
from fedsynth.core.registry import available_generators
from fedsynth.federated.strategies import STRATEGIES
from fedsynth.tabular.metadata import KINDS
from fedsynth.web.storage import ID_PATTERN

Kind = Literal[KINDS]  # type: ignore[valid-type]
Family = Literal[FAMILIES]  # type: ignore[valid-type]
StrategyName = Literal[tuple(STRATEGIES)]  # type: ignore[valid-type]
GeneratorName = Literal[tuple(available_generators("tabular"))]  # type: ignore[valid-type]
ResourceId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
ColumnName = Annotated[str, StringConstraints(min_length=1, max_length=500)]
#: Run states (see :mod:`fedsynth.web.db`).
RunStatus = Literal["queued", "running", "done", "failed", "cancelled", "interrupted"]
#: What a run's synthetic data may be, as far as SAFE's privacy check goes.
PrivacyVerdict = Literal["pass", "warn", "fail", "unchecked"]
#: Files a finished run offers (the experiment files for federated runs only).
ArtifactName = Literal[
    "synthetic.csv",
    "synthetic.parquet",
    "report.html",
    "report.json",
    "model.zip",
    "experiment-scores.csv",
    "experiment-summary.csv",
    "experiment-scores.png",
    "synthetic_images.zip",
    "image_report.html",
    "image_report_private.html",
]


class _Strict(BaseModel):
    # NaN and infinity (which Python's JSON reader accepts) are refused as "not a finite
    # number" rather than compared against a field's bounds.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ProblemOut(BaseModel):
    """One problem, with the column it concerns (``null`` for the whole table or request)."""

    column: str | None
    message: str


class ErrorOut(BaseModel):
    """Every error answer: a message and, where there are several, each problem."""

    detail: str
    problems: list[ProblemOut] = []


class HealthOut(BaseModel):
    """The health check."""

    status: Literal["ok"]
    version: str


class GeneratorOut(BaseModel):
    """A generator and the options it takes."""

    name: str
    epochs: bool = Field(description="Takes a number of training epochs.")
    dp: bool = Field(description="Can train with differential privacy (epsilon, delta).")
    weights: bool = Field(description="Has trainable weights (needed by fedavg and fedprox).")
    native_conditioning: bool


class ColumnOut(BaseModel):
    """A column of an uploaded table: its metadata, an aggregate summary, what checks found."""

    name: str
    kind: str
    group: str | None
    dtype: str
    missing: int
    distinct: int
    details: str = Field(description="Range and median, or the frequent categories.")
    problems: list[str]
    notes: list[str]


class DatasetSummaryOut(BaseModel):
    """A dataset in the list."""

    id: str
    name: str
    filename: str
    rows: int
    columns: int
    created: str
    ready: bool = Field(description="No problem left: a run can start.")
    problems: int


class DatasetOut(BaseModel):
    """An uploaded dataset: metadata, roles, column summaries and problems. Never a row."""

    id: str
    name: str
    filename: str
    file_format: str
    size_bytes: int
    rows: int
    created: str
    ready: bool
    survival: list[str] | None = Field(description="[duration, event], when there is a pair.")
    site: str | None
    genomic: list[str]
    identifiers: list[str]
    columns: list[ColumnOut]
    problems: list[ProblemOut] = Field(description="Every problem; fix them before a run.")
    notes: list[ProblemOut]
    metadata: dict[str, Any] = Field(description="The metadata as fedsynth saves it.")


class ColumnChoiceIn(_Strict):
    """The kind of one column and, for binary columns, whether it is genomic."""

    kind: Kind
    genomic: bool | None = Field(None, description="In the genomic group; null keeps it.")


class MetadataUpdateIn(_Strict):
    """New kinds for some columns (the others keep theirs)."""

    columns: dict[ColumnName, ColumnChoiceIn] = Field(min_length=1)


class RebalanceIn(_Strict):
    """Cohort rebalancing: synthetic rows that bring groups of a column to target shares."""

    column: ColumnName
    shares: dict[Annotated[str, StringConstraints(min_length=1, max_length=200)], float] = Field(
        min_length=1, description="Value of the column -> target share in (0, 1]."
    )


class FederatedIn(_Strict):
    """A federated experiment: sites from a site column or one dataset per site."""

    site_column: ColumnName | None = Field(
        None, description="Column of the dataset naming each row's site."
    )
    site_datasets: list[ResourceId] = Field(
        [], max_length=50, description="Further datasets, one per site (the run's dataset first)."
    )
    strategies: list[StrategyName] = Field(["synthetic_sharing"], min_length=1, max_length=4)
    rounds: int = Field(3, ge=1, le=100)
    local_epochs: int = Field(5, ge=1, le=1000)
    secure_aggregation: bool = Field(
        False,
        description=(
            "Average fedavg's and fedprox's weights with Flower's secure aggregation (SecAgg+): "
            "the server learns the average update, not a site's."
        ),
    )


class RunIn(_Strict):
    """A run: train a generator (centrally or federated), sample, validate with SAFE."""

    dataset_id: ResourceId
    generator: GeneratorName = "gaussian_copula"  # type: ignore[assignment]
    epochs: int | None = Field(None, ge=1, le=100_000, description="For neural generators.")
    epsilon: float | None = Field(
        None, gt=0, le=1000, description="Differential privacy: target epsilon (off if null)."
    )
    delta: float = Field(1e-5, gt=0, lt=0.1, description="Differential privacy: target delta.")
    public_domain: bool = Field(
        False,
        description=(
            "Differential privacy: the ranges and category lists of the metadata are known from "
            "outside the data (a protocol, a coding standard), so no budget is spent on them "
            "and they are not protected (central runs)."
        ),
    )
    rows: int | None = Field(
        None, ge=1, le=1_000_000, description="Synthetic rows (default: as many as training)."
    )
    conditions: dict[ColumnName, str | int | float | bool] = Field(
        {}, max_length=50, description="Every synthetic row has these values."
    )
    rebalance: RebalanceIn | None = None
    holdout_fraction: float = Field(
        0.3, ge=0.1, le=0.5, description="Real rows kept out of training, for SAFE."
    )
    families: list[Family] = Field(
        list(FAMILIES),
        description="SAFE metric families; privacy is always run (it gates the download).",
    )
    seed: int = Field(0, ge=0, le=2**31 - 1)
    federated: FederatedIn | None = None


class OverrideOut(BaseModel):
    """A recorded decision to release synthetic data that did not pass SAFE's privacy check."""

    reason: str
    actor: str
    time: str


class RunOut(BaseModel):
    """A run's state, progress and results."""

    id: str
    dataset_id: str
    dataset_name: str
    kind: Literal["central", "federated", "imaging"]
    status: RunStatus
    progress: float = Field(ge=0, le=1)
    stage: str
    error: str | None
    created: str
    started: str | None
    finished: str | None
    rerun_of: str | None
    config: dict[str, Any]
    artifacts: list[str]
    scores: dict[str, float | None] | None
    privacy: PrivacyVerdict | None
    download_allowed: bool = Field(
        description="The synthetic data may be downloaded (privacy passed, or overridden)."
    )
    override: OverrideOut | None


class LogLineOut(BaseModel):
    """A line of a run's log."""

    seq: int
    time: str
    message: str


class LogOut(BaseModel):
    """Log lines after a sequence number; ask again with ``after=next``."""

    lines: list[LogLineOut]
    next: int


class OverrideIn(_Strict):
    """Release synthetic data despite SAFE's privacy check: needs a reason, kept in the audit
    log."""

    confirm: Literal[True]
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=10, max_length=2000)]


class AuditOut(BaseModel):
    """An entry of the audit log."""

    id: int
    time: str
    actor: str
    client: str
    action: str
    target: str
    detail: dict[str, Any]
