"""The worker process of one run: ``python -m fedsynth.web.worker DATA_DIR RUN_ID``.

Started by :class:`~fedsynth.web.jobs.JobManager` for a run it marked ``running``. It computes
the run (:func:`fedsynth.web.pipeline.execute`) into ``runs/<id>.partial/``, renames that folder
to ``runs/<id>/`` once every file is written, and only then records the run as done with its
artifacts, so that no half-written artifact is ever served. Progress and log lines go to the
database as they come, which is what every browser watching the run reads.
"""

from __future__ import annotations

import shutil
import signal
import sys
import time
import traceback
import warnings
from pathlib import Path

from fedsynth.exceptions import FedsynthError
from fedsynth.web.db import Database
from fedsynth.web.pipeline import execute
from fedsynth.web.storage import Storage, check_id

#: Least seconds between two progress writes of the same stage.
PROGRESS_INTERVAL = 0.3


class DatabaseReporter:
    """Writes a run's progress and log lines into the database (and to standard output)."""

    def __init__(self, db: Database, run_id: str):
        self.db = db
        self.run_id = run_id
        self._last = (0.0, "")
        self._warned: set[str] = set()

    def log(self, message: str) -> None:
        """Add a line to the run's log."""
        print(message, flush=True)
        self.db.append_log(self.run_id, message)

    def warn(self, message: Warning | str, *args: object, **kwargs: object) -> None:
        """Log a warning once (fitting and validating check the same table)."""
        text = f"warning: {message}"
        if text not in self._warned:
            self._warned.add(text)
            self.log(text)

    def progress(self, fraction: float, stage: str) -> None:
        """Record progress; repeated updates of one stage are thinned out."""
        moment = time.monotonic()
        if stage == self._last[1] and moment - self._last[0] < PROGRESS_INTERVAL:
            return
        self._last = (moment, stage)
        self.db.set_progress(self.run_id, fraction, stage)


def short_error(message: str, limit: int = 2000) -> str:
    """The part of an error message shown on the run (the log keeps all of it): without the
    tail of a server log that federated errors append."""
    head = message.split("\n--- ")[0].strip()
    return head if len(head) <= limit else head[: limit - 1] + "…"


def run(data_dir: Path, run_id: str) -> int:
    """Compute run ``run_id`` of the web app in ``data_dir``; returns an exit code."""
    storage = Storage(data_dir)
    db = Database(storage.database)
    record = db.get_run(check_id(run_id))
    if record is None or record.status != "running":
        print(f"run {run_id} is not waiting for a worker", file=sys.stderr)
        return 2
    say = DatabaseReporter(db, run_id)
    partial = storage.partial_run_dir(run_id)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            # Libraries' notes to their developers are not for the run's log.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            warnings.showwarning = say.warn
            outcome = execute(record.config, storage, partial, say)
        storage.publish(partial, storage.run_dir(run_id))
    except (FedsynthError, ValueError, KeyError) as exc:
        shutil.rmtree(partial, ignore_errors=True)
        message = str(exc).strip("'\"") or type(exc).__name__
        say.log(f"failed: {message}")
        db.finish_run(run_id, "failed", stage="failed", error=short_error(message))
        return 1
    except Exception as exc:
        shutil.rmtree(partial, ignore_errors=True)
        say.log(traceback.format_exc())
        message = f"internal error ({type(exc).__name__}: {exc}); the log has the details"
        db.finish_run(run_id, "failed", stage="failed", error=message)
        return 1
    finished = db.finish_run(
        run_id,
        "done",
        stage="done",
        artifacts=outcome.artifacts,
        privacy=outcome.privacy,
        scores=outcome.scores,
    )
    if not finished:  # cancelled or interrupted at the last moment: nothing is offered
        storage.discard_artifacts(run_id)
        return 1
    say.log(f"finished in {time.perf_counter() - start:.1f} s")
    return 0


def _stop(signum: int, frame: object) -> None:
    # An exception, not the default instant death: the ``with`` blocks of the run unwind, so
    # that a federation stops the Flower processes it started.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``DATA_DIR RUN_ID``."""
    signal.signal(signal.SIGTERM, _stop)
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m fedsynth.web.worker DATA_DIR RUN_ID", file=sys.stderr)
        return 2
    return run(Path(args[0]), args[1])


if __name__ == "__main__":
    sys.exit(main())
