"""Settings of the web app: the data directory, the worker count and the limits on what one
user may ask for (upload size, queued runs, synthetic rows)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: Default largest upload, in megabytes.
MAX_UPLOAD_MB = 200.0
#: Default most runs one user may have waiting in the queue.
MAX_QUEUED_RUNS = 10
#: Default most synthetic rows one run may ask for.
MAX_RUN_ROWS = 1_000_000
#: Seconds a client refused for too many queued runs is told to wait (``Retry-After``).
RETRY_AFTER_SECONDS = 60


@dataclass(frozen=True)
class WebSettings:
    """Where the web app keeps its data and how much work it takes on.

    Parameters
    ----------
    data_dir : Path
        Folder of the SQLite database, the uploaded tables, the run artifacts, the access token
        and the session secret. Created when missing.
    workers : int, default 1
        Runs executed at the same time, each in its own worker process; further runs wait in
        the queue.
    max_upload_mb : float, default 200
        Largest uploaded file, in megabytes.
    max_queued_runs : int, default 10
        Runs one user may have waiting in the queue; more are refused with 429 Too Many
        Requests (and ``Retry-After``) until some have started.
    max_run_rows : int, default 1,000,000
        Synthetic rows one run may ask for (``rows``); more are refused with 422.
    token : str, optional
        The access token. By default it is read from ``data_dir/access-token``, created there
        (readable by the owner only) on the first start.
    poll_seconds : float, default 0.5
        How often the job dispatcher looks for queued and finished runs.

    Examples
    --------
    >>> from fedsynth.web import WebSettings, create_app
    >>> app = create_app(WebSettings(data_dir=Path("fedsynth-data")))  # doctest: +SKIP
    """

    data_dir: Path
    workers: int = 1
    max_upload_mb: float = MAX_UPLOAD_MB
    max_queued_runs: int = MAX_QUEUED_RUNS
    max_run_rows: int = MAX_RUN_ROWS
    token: str | None = None
    poll_seconds: float = 0.5

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.workers, int) or self.workers < 1:
            problems.append(f"workers must be an integer >= 1, got {self.workers!r}")
        if not self.max_upload_mb > 0:
            problems.append(f"max_upload_mb must be > 0, got {self.max_upload_mb!r}")
        for name in ("max_queued_runs", "max_run_rows"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name} must be an integer >= 1, got {value!r}")
        if self.token is not None and len(self.token) < 16:
            problems.append("token must be at least 16 characters long")
        if problems:
            raise ValueError("; ".join(problems))
        object.__setattr__(self, "data_dir", Path(self.data_dir))

    @property
    def max_upload_bytes(self) -> int:
        """The upload limit in bytes."""
        return int(self.max_upload_mb * 1024 * 1024)
