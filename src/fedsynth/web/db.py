"""SQLite records of the web app: datasets, runs and their logs, login sessions, the audit log.

The server process and its worker processes share one database file. Every operation opens its
own short connection (WAL journal, busy timeout), so that threads and processes never hold a
lock for long and a killed worker never leaves a transaction half applied.
"""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2
#: Run states. ``queued`` and ``running`` are active; the others are final.
ACTIVE = ("queued", "running")
FINAL = ("done", "failed", "cancelled", "interrupted")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    filename TEXT NOT NULL,
    file_format TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    n_rows INTEGER NOT NULL,
    n_columns INTEGER NOT NULL,
    created TEXT NOT NULL,
    metadata TEXT NOT NULL,
    problems TEXT NOT NULL,
    notes TEXT NOT NULL,
    summary TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    dataset_id TEXT NOT NULL,
    dataset_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    stage TEXT NOT NULL DEFAULT '',
    error TEXT,
    created TEXT NOT NULL,
    started TEXT,
    finished TEXT,
    pid INTEGER,
    rerun_of TEXT,
    artifacts TEXT NOT NULL DEFAULT '[]',
    privacy TEXT,
    scores TEXT,
    override TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, created);
CREATE TABLE IF NOT EXISTS run_log (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    time TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    actor TEXT NOT NULL,
    client TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id_hash TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    expires TEXT NOT NULL,
    user TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_tokens (
    token_hash TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    label TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS releases (
    run_id TEXT PRIMARY KEY,
    manifest_sha256 TEXT NOT NULL,
    approved_by TEXT NOT NULL,
    approved_at TEXT NOT NULL,
    comment TEXT NOT NULL
);
"""


def now() -> str:
    """The current UTC time as ISO 8601 text (seconds)."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


@dataclass
class DatasetRecord:
    """A stored upload: where it is, its metadata and what the checks found.

    ``problems`` and ``notes`` are lists of ``{"column": str | None, "message": str}``;
    ``summary`` holds one aggregate description per column (see :mod:`fedsynth.web.summary`).
    """

    id: str
    name: str
    filename: str
    file_format: str
    size_bytes: int
    n_rows: int
    n_columns: int
    created: str
    metadata: dict[str, Any]
    problems: list[dict[str, Any]]
    notes: list[dict[str, Any]]
    summary: list[dict[str, Any]]

    @property
    def ready(self) -> bool:
        """Whether a run can start on it (no problem left)."""
        return not self.problems


@dataclass
class RunRecord:
    """A run: its configuration, its state and, once done, its artifacts and SAFE verdict."""

    id: str
    dataset_id: str
    dataset_name: str
    kind: str
    config: dict[str, Any]
    status: str
    created: str
    progress: float = 0.0
    stage: str = ""
    error: str | None = None
    started: str | None = None
    finished: str | None = None
    pid: int | None = None
    rerun_of: str | None = None
    artifacts: list[str] = field(default_factory=list)
    privacy: str | None = None
    scores: dict[str, Any] | None = None
    override: dict[str, Any] | None = None

    @property
    def active(self) -> bool:
        """Queued or running."""
        return self.status in ACTIVE


_JSON_FIELDS = {
    "metadata",
    "problems",
    "notes",
    "summary",
    "config",
    "artifacts",
    "scores",
    "override",
    "detail",
}


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for key in _JSON_FIELDS & out.keys():
        if out[key] is not None:
            out[key] = json.loads(out[key])
    return out


def _encode(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


class Database:
    """The web app's SQLite database (created with its tables when missing).

    Parameters
    ----------
    path : Path
        The database file.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        # Outside a transaction: the journal mode cannot change inside one, and executescript
        # commits on its own.
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            con.execute("PRAGMA busy_timeout=30000")
            con.execute("PRAGMA journal_mode=WAL")
            if con.execute("PRAGMA user_version").fetchone()[0] < 2:
                # Version 1 sessions belonged to no user (one shared token): they end.
                con.execute("DROP TABLE IF EXISTS sessions")
            con.executescript(_SCHEMA)
            con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        finally:
            con.close()

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection whose transaction commits on success and rolls back on error."""
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        con.row_factory = sqlite3.Row
        try:
            con.execute("PRAGMA busy_timeout=30000")
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        finally:
            con.close()

    # ------------------------------------------------------------------ datasets
    def _insert(self, table: str, record: DatasetRecord | RunRecord) -> None:
        values = {k: getattr(record, k) for k in type(record).__dataclass_fields__}
        for key in _JSON_FIELDS & values.keys():
            if values[key] is not None:
                values[key] = _encode(values[key])
        columns = ", ".join(values)
        marks = ", ".join(f":{k}" for k in values)
        with self.connect() as con:
            con.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", values)

    def add_dataset(self, record: DatasetRecord) -> None:
        """Store a new dataset record."""
        self._insert("datasets", record)

    def get_dataset(self, dataset_id: str) -> DatasetRecord | None:
        """The dataset with this id, or ``None``."""
        with self.connect() as con:
            row = con.execute("SELECT * FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
        return None if row is None else DatasetRecord(**_decode(row))

    def list_datasets(self) -> list[DatasetRecord]:
        """Every dataset, newest first."""
        with self.connect() as con:
            rows = con.execute("SELECT * FROM datasets ORDER BY created DESC, rowid DESC")
            return [DatasetRecord(**_decode(row)) for row in rows.fetchall()]

    def update_dataset_metadata(
        self,
        dataset_id: str,
        metadata: dict[str, Any],
        problems: list[dict[str, Any]],
        notes: list[dict[str, Any]],
    ) -> None:
        """Replace a dataset's metadata and the findings of its checks."""
        with self.connect() as con:
            con.execute(
                "UPDATE datasets SET metadata = ?, problems = ?, notes = ? WHERE id = ?",
                (_encode(metadata), _encode(problems), _encode(notes), dataset_id),
            )

    def delete_dataset(self, dataset_id: str) -> None:
        """Remove a dataset record (its runs stay, with their artifacts)."""
        with self.connect() as con:
            con.execute("DELETE FROM datasets WHERE id = ?", (dataset_id,))

    # ------------------------------------------------------------------ runs
    def add_run(self, record: RunRecord) -> None:
        """Store a new run record."""
        self._insert("runs", record)

    def get_run(self, run_id: str) -> RunRecord | None:
        """The run with this id, or ``None``."""
        with self.connect() as con:
            row = con.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else RunRecord(**_decode(row))

    def list_runs(self, *, status: tuple[str, ...] | None = None) -> list[RunRecord]:
        """Runs, newest first; only those in ``status`` when given."""
        query, params = "SELECT * FROM runs", ()
        if status:
            query += f" WHERE status IN ({', '.join('?' * len(status))})"
            params = tuple(status)
        with self.connect() as con:
            rows = con.execute(query + " ORDER BY created DESC, rowid DESC", params).fetchall()
        return [RunRecord(**_decode(row)) for row in rows]

    def active_dataset_runs(self, dataset_id: str) -> int:
        """How many queued or running runs use a dataset."""
        with self.connect() as con:
            row = con.execute(
                "SELECT COUNT(*) FROM runs "
                "WHERE dataset_id = ? AND status IN ('queued', 'running')",
                (dataset_id,),
            ).fetchone()
        return int(row[0])

    def queued_runs_of(self, requester: str) -> int:
        """How many runs that ``requester`` asked for wait in the queue."""
        with self.connect() as con:
            row = con.execute(
                "SELECT COUNT(*) FROM runs WHERE status = 'queued' "
                "AND json_extract(config, '$.requested_by') = ?",
                (requester,),
            ).fetchone()
        return int(row[0])

    def claim_next_run(self) -> RunRecord | None:
        """Mark the oldest queued run as running and return it (``None`` if none is queued)."""
        with self.connect() as con:
            row = con.execute(
                "UPDATE runs SET status = 'running', started = ?, stage = 'starting a worker' "
                "WHERE id = (SELECT id FROM runs WHERE status = 'queued' "
                "ORDER BY created, rowid LIMIT 1) AND status = 'queued' RETURNING *",
                (now(),),
            ).fetchone()
        return None if row is None else RunRecord(**_decode(row))

    def set_run_pid(self, run_id: str, pid: int | None) -> None:
        """Record the worker process computing a run."""
        with self.connect() as con:
            con.execute("UPDATE runs SET pid = ? WHERE id = ?", (pid, run_id))

    def set_progress(self, run_id: str, progress: float, stage: str) -> None:
        """Update a running run's progress (a fraction in [0, 1]) and current stage."""
        with self.connect() as con:
            con.execute(
                "UPDATE runs SET progress = ?, stage = ? WHERE id = ? AND status = 'running'",
                (min(max(float(progress), 0.0), 1.0), stage, run_id),
            )

    def finish_run(
        self,
        run_id: str,
        status: str,
        *,
        expected: tuple[str, ...] = ("running",),
        stage: str = "",
        error: str | None = None,
        artifacts: list[str] | None = None,
        privacy: str | None = None,
        scores: dict[str, Any] | None = None,
    ) -> bool:
        """Move a run from one of the ``expected`` states to a final one.

        Returns whether it moved: a worker finishing a run that was cancelled or interrupted
        meanwhile does not overwrite that state.
        """
        if status not in FINAL:
            raise ValueError(f"not a final status: {status!r}")
        sets = "status = ?, stage = ?, error = ?, finished = ?, pid = NULL"
        params: list[Any] = [status, stage, error, now()]
        if status == "done":
            sets += ", progress = 1, artifacts = ?, privacy = ?, scores = ?"
            params += [_encode(artifacts or []), privacy, _encode(scores or {})]
        marks = ", ".join("?" * len(expected))
        with self.connect() as con:
            cursor = con.execute(
                f"UPDATE runs SET {sets} WHERE id = ? AND status IN ({marks})",
                (*params, run_id, *expected),
            )
            return cursor.rowcount == 1

    def set_override(self, run_id: str, override: dict[str, Any]) -> None:
        """Record the privacy override of a run."""
        with self.connect() as con:
            con.execute("UPDATE runs SET override = ? WHERE id = ?", (_encode(override), run_id))

    # ------------------------------------------------------------------ run logs
    def append_log(self, run_id: str, message: str) -> None:
        """Add a line to a run's log."""
        with self.connect() as con:
            (seq,) = con.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM run_log WHERE run_id = ?", (run_id,)
            ).fetchone()
            con.execute(
                "INSERT INTO run_log (run_id, seq, time, message) VALUES (?, ?, ?, ?)",
                (run_id, seq, now(), message),
            )

    def get_log(self, run_id: str, *, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """Log lines of a run with a sequence number above ``after``, oldest first."""
        with self.connect() as con:
            rows = con.execute(
                "SELECT seq, time, message FROM run_log WHERE run_id = ? AND seq > ? "
                "ORDER BY seq LIMIT ?",
                (run_id, after, limit),
            ).fetchall()
        return [dict(row) for row in rows]

    # ------------------------------------------------------------------ audit log
    def add_audit(
        self, actor: str, client: str, action: str, target: str, detail: dict[str, Any]
    ) -> None:
        """Append an entry to the audit log."""
        with self.connect() as con:
            con.execute(
                "INSERT INTO audit (time, actor, client, action, target, detail) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (now(), actor, client, action, target, _encode(detail)),
            )

    def list_audit(self, *, limit: int = 200) -> list[dict[str, Any]]:
        """The newest audit entries first."""
        with self.connect() as con:
            rows = con.execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [_decode(row) for row in rows]

    # ------------------------------------------------------------------ sessions
    def add_session(self, id_hash: str, expires: str, user: str) -> None:
        """Store a login session of ``user`` (by the hash of its id)."""
        with self.connect() as con:
            con.execute("DELETE FROM sessions WHERE expires < ?", (now(),))
            con.execute(
                "INSERT INTO sessions (id_hash, created, expires, user) VALUES (?, ?, ?, ?)",
                (id_hash, now(), expires, user),
            )

    def session_user(self, id_hash: str) -> str | None:
        """The user of a session that exists and has not expired, else ``None``."""
        with self.connect() as con:
            row = con.execute(
                "SELECT user FROM sessions WHERE id_hash = ? AND expires >= ?", (id_hash, now())
            ).fetchone()
        return None if row is None else str(row[0])

    def delete_session(self, id_hash: str) -> None:
        """End a session."""
        with self.connect() as con:
            con.execute("DELETE FROM sessions WHERE id_hash = ?", (id_hash,))
