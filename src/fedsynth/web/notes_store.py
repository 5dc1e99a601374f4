"""Clinical notes in the web app: text generation runs and the blinded expert review.

Text runs: uploaded private notes (a CSV with a ``text`` column, or a zip of ``.txt`` files)
are given to ``dp_icl`` in a thread of the server; the run records its progress (notes,
prompts and words done, time left), then the text report and its privacy verdict
(:mod:`fedsynth.text.report`). The synthetic notes are downloaded only when the verdict is
``pass`` or ``warn``, or after a steward recorded an override with a reason (audited), as for
tables.

Expert review (the CardioSynth protocol): a finished run's synthetic notes mixed with as many of
its real notes, shown blinded (opaque item ids, an order shuffled per rater, no source) and
rated 1 to 5 for coherence, usability, language and style; a rater has one rating per item,
which a new rating replaces. **Who may review**: the real notes are private data, and the web
app otherwise never shows a real row or note, so only stewards (the role trusted with the
private data: it approves releases and overrides) may open the review and its aggregates.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import secrets
import threading
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from fedsynth.web.db import Database, now
from fedsynth.web.errors import InvalidRequestError, NotFoundError

CRITERIA = ("coherence", "usability", "language", "style")
#: Roles that may see real notes (the review) — see the module's docstring.
REVIEW_ROLES = frozenset({"steward"})
MAX_NOTES = 200

_SCHEMA = """
CREATE TABLE IF NOT EXISTS note_runs (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, filename TEXT NOT NULL, created TEXT NOT NULL,
    config TEXT NOT NULL, status TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL, prompts INTEGER NOT NULL DEFAULT 0,
    words INTEGER NOT NULL DEFAULT 0, eta REAL, error TEXT, verdict TEXT, report TEXT,
    override TEXT
);
CREATE TABLE IF NOT EXISTS review_items (
    id TEXT PRIMARY KEY, run_id TEXT NOT NULL, source TEXT NOT NULL, text TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS review_ratings (
    item_id TEXT NOT NULL, rater TEXT NOT NULL, coherence INTEGER NOT NULL,
    usability INTEGER NOT NULL, language INTEGER NOT NULL, style INTEGER NOT NULL,
    time TEXT NOT NULL, PRIMARY KEY (item_id, rater)
);
"""


def read_uploaded_notes(filename: str, content: bytes) -> list[str]:
    """The notes of an upload: a CSV's ``text`` column, or the ``.txt`` files of a zip."""
    name = filename.lower()
    if name.endswith(".zip"):
        try:
            archive = zipfile.ZipFile(io.BytesIO(content))
        except zipfile.BadZipFile as error:
            raise InvalidRequestError(f"{filename}: not a zip file ({error})") from error
        members = sorted(m for m in archive.namelist() if _is_note_member(m))
        notes, unreadable = [], []
        for member in members:
            try:
                notes.append(archive.read(member).decode("utf-8").strip())
            except UnicodeDecodeError as error:
                # Decoding with replacement would train on notes with mangled letters.
                unreadable.append(f"{member} (byte {error.object[error.start]:#04x})")
        if unreadable:
            shown = ", ".join(unreadable[:5]) + (" ..." if len(unreadable) > 5 else "")
            raise InvalidRequestError(
                f"{filename}: {len(unreadable)} note file(s) are not UTF-8 text: {shown}; save "
                "them as UTF-8"
            )
    elif name.endswith(".csv"):
        try:
            frame = pd.read_csv(io.BytesIO(content))
        except Exception as error:
            raise InvalidRequestError(f"{filename}: not a readable CSV ({error})") from error
        if "text" not in frame.columns:
            raise InvalidRequestError(
                f"{filename} has no 'text' column (columns: {list(frame.columns)[:10]})"
            )
        notes = [str(t).strip() for t in frame["text"].dropna()]
    else:
        raise InvalidRequestError(f"{filename}: expected a .csv with a 'text' column or a .zip")
    notes = [n for n in notes if n]
    if len(notes) < 4:
        raise InvalidRequestError(f"{filename} holds {len(notes)} non-blank note(s); need 4+")
    return notes


def _is_note_member(name: str) -> bool:
    """A ``.txt`` member of a notes zip, leaving out what macOS adds (``__MACOSX/``, ``._*``)."""
    parts = PurePosixPath(name).parts
    return (
        name.lower().endswith(".txt")
        and parts[0] != "__MACOSX"
        and not any(p.startswith(".") for p in parts)
    )


class NotesStore:
    """Text runs and reviews, in the app's database and a folder of the data directory."""

    def __init__(self, db: Database, folder: Path):
        self.db, self.folder = db, Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        with db.connect() as con:
            # One statement at a time: executescript would commit the connection's transaction.
            for statement in filter(str.strip, _SCHEMA.split(";")):
                con.execute(statement)

    # ------------------------------------------------------------------ runs
    def create_run(self, owner: str, filename: str, content: bytes, config: dict) -> str:
        """Check and store an upload; returns the new run's id (the run is started apart)."""
        notes = read_uploaded_notes(filename, content)
        n = config.get("notes")
        if not (isinstance(n, int) and 1 <= n <= MAX_NOTES):
            raise InvalidRequestError(f"notes: a whole number from 1 to {MAX_NOTES}, got {n!r}")
        eps = config.get("epsilon")
        if not (isinstance(eps, float | int) and eps > 0):
            raise InvalidRequestError(f"epsilon: a number > 0, got {eps!r}")
        run_id = secrets.token_hex(8)
        (self.folder / run_id).mkdir()
        (self.folder / run_id / "private.json").write_text(json.dumps(notes))
        with self.db.connect() as con:
            con.execute(
                "INSERT INTO note_runs (id, owner, filename, created, config, status, total) "
                "VALUES (?, ?, ?, ?, ?, 'queued', ?)",
                (run_id, owner, filename[:200], now(), json.dumps(config), n),
            )
        return run_id

    def get_run(self, run_id: str) -> dict[str, Any]:
        """A run's record; raises NotFoundError."""
        with self.db.connect() as con:
            row = con.execute("SELECT * FROM note_runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no text run with id {run_id!r}")
        run = dict(row)
        for key in ("config", "report", "override"):
            run[key] = None if run[key] is None else json.loads(run[key])
        return run

    def list_runs(self) -> list[dict[str, Any]]:
        """Every text run, newest first."""
        with self.db.connect() as con:
            ids = [r["id"] for r in con.execute("SELECT id FROM note_runs ORDER BY created DESC")]
        return [self.get_run(i) for i in ids]

    def _update(self, run_id: str, **fields: Any) -> None:
        names = ", ".join(f"{k} = ?" for k in fields)
        with self.db.connect() as con:
            con.execute(f"UPDATE note_runs SET {names} WHERE id = ?", (*fields.values(), run_id))

    def start(self, run_id: str, *, backend: Any = "local", embedder: Any = None) -> Any:
        """Run in a daemon thread; returns the thread."""
        thread = threading.Thread(
            target=self.execute, args=(run_id,), kwargs={"backend": backend, "embedder": embedder}
        )
        thread.daemon = True
        thread.start()
        return thread

    def execute(self, run_id: str, *, backend: Any = "local", embedder: Any = None) -> None:
        """Generate, validate and store the notes of a run (its status says how it ended)."""
        import fedsynth
        from fedsynth.text.embeddings import SentenceEmbedder
        from fedsynth.text.report import notes_report

        run = self.get_run(run_id)
        cfg = run["config"]
        private = json.loads((self.folder / run_id / "private.json").read_text())
        self._update(run_id, status="running")
        start = time.perf_counter()
        try:
            gen = fedsynth.make(
                "dp_icl",
                dp={"epsilon": float(cfg["epsilon"]), "delta": 1e-5},
                n_prompts=min(int(cfg.get("prompts", 4)), len(private)),
                candidates=int(cfg.get("candidates", 4)),
                candidate_styles=cfg.get("candidate_styles"),
                shots=2,
                max_tokens=int(cfg.get("max_tokens", 160)),
                backend=backend if isinstance(backend, str) else None,
                seed=0,
            )
            if not isinstance(backend, str):
                gen.set_backend(backend)
            embedder = embedder or SentenceEmbedder(n_threads=1)
            gen.set_backend(embedder=embedder).fit(private)

            def progress(done: int, total: int, info: dict[str, int]) -> None:
                eta = (time.perf_counter() - start) / done * (total - done)
                self._update(
                    run_id, done=done, prompts=info["prompts"], words=info["words"], eta=eta
                )

            notes = gen.sample(run["total"], progress=progress)
            (self.folder / run_id / "synthetic.json").write_text(json.dumps(notes))
            report = notes_report(
                private,
                notes,
                embedder=embedder,
                public=gen.candidate_instructions(),
                extra={"epsilon_spent": gen.privacy_spent_.epsilon, "delta": 1e-5},
            )
            self._update(
                run_id, status="done", verdict=report["verdict"], report=json.dumps(report)
            )
        except Exception as error:  # the run's page says what went wrong
            self._update(run_id, status="failed", error=f"{type(error).__name__}: {error}")

    def synthetic(self, run_id: str) -> list[str]:
        """The synthetic notes of a finished run (gating is the caller's)."""
        path = self.folder / run_id / "synthetic.json"
        if not path.is_file():
            raise NotFoundError(f"text run {run_id!r} has no synthetic notes")
        return json.loads(path.read_text())

    def set_override(self, run_id: str, who: str, reason: str) -> None:
        """Record a steward's override of the privacy gate."""
        self._update(run_id, override=json.dumps({"by": who, "reason": reason, "time": now()}))

    # ------------------------------------------------------------------ review
    def build_review(self, run_id: str, per_source: int = 10, seed: int = 0) -> int:
        """Put ``per_source`` synthetic and as many real notes of a done run up for review."""
        run = self.get_run(run_id)
        if run["status"] != "done":
            raise InvalidRequestError(f"text run {run_id} is {run['status']}, not done")
        synthetic = self.synthetic(run_id)[:per_source]
        private = json.loads((self.folder / run_id / "private.json").read_text())
        rng = np.random.default_rng(seed)
        real = [
            private[i]
            for i in rng.choice(len(private), min(len(synthetic), len(private)), replace=False)
        ]
        with self.db.connect() as con:
            con.execute("DELETE FROM review_items WHERE run_id = ?", (run_id,))
            for source, texts in (("synthetic", synthetic), ("real", real)):
                con.executemany(
                    "INSERT INTO review_items (id, run_id, source, text) VALUES (?, ?, ?, ?)",
                    [(secrets.token_hex(8), run_id, source, t) for t in texts],
                )
        return len(synthetic) + len(real)

    def review_items(self, run_id: str, rater: str) -> list[dict[str, Any]]:
        """The items in this rater's own order, with the rater's ratings; no source."""
        with self.db.connect() as con:
            items = con.execute(
                "SELECT id, text FROM review_items WHERE run_id = ? ORDER BY id", (run_id,)
            ).fetchall()
            mine = {
                r["item_id"]: {c: r[c] for c in CRITERIA}
                for r in con.execute(
                    "SELECT * FROM review_ratings WHERE rater = ? AND item_id IN "
                    "(SELECT id FROM review_items WHERE run_id = ?)",
                    (rater, run_id),
                )
            }
        key = hashlib.sha256(f"{run_id}:{rater}".encode()).digest()
        order = np.random.default_rng(int.from_bytes(key[:8], "little")).permutation(len(items))
        return [
            {"id": items[i]["id"], "text": items[i]["text"], "rating": mine.get(items[i]["id"])}
            for i in order
        ]

    def rate(self, item_id: str, rater: str, scores: dict[str, Any]) -> bool:
        """Record (or replace) a rater's 1-5 scores of an item; True when it replaced one."""
        problems = [
            f"{c}: a whole number from 1 to 5, got {scores.get(c)!r}"
            for c in CRITERIA
            if not (str(scores.get(c, "")).isdigit() and 1 <= int(scores[c]) <= 5)
        ]
        if problems:
            raise InvalidRequestError("cannot record the rating:\n  - " + "\n  - ".join(problems))
        with self.db.connect() as con:
            if (
                con.execute("SELECT 1 FROM review_items WHERE id = ?", (item_id,)).fetchone()
                is None
            ):
                raise NotFoundError(f"no review item {item_id!r}")
            had = con.execute(
                "SELECT 1 FROM review_ratings WHERE item_id = ? AND rater = ?", (item_id, rater)
            ).fetchone()
            con.execute(
                "INSERT INTO review_ratings VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (item_id, "
                "rater) DO UPDATE SET coherence = excluded.coherence, usability = "
                "excluded.usability, language = excluded.language, style = excluded.style, "
                "time = excluded.time",
                (item_id, rater, *(int(scores[c]) for c in CRITERIA), now()),
            )
        return had is not None

    def run_of_item(self, item_id: str) -> str:
        """The run an item belongs to."""
        with self.db.connect() as con:
            row = con.execute("SELECT run_id FROM review_items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no review item {item_id!r}")
        return row["run_id"]

    def aggregates(self, run_id: str) -> dict[str, Any]:
        """Per source and criterion: mean, standard deviation and count of the ratings; raters."""
        with self.db.connect() as con:
            rows = con.execute(
                "SELECT i.source, r.* FROM review_ratings r JOIN review_items i "
                "ON i.id = r.item_id WHERE i.run_id = ?",
                (run_id,),
            ).fetchall()
        table: dict[str, dict[str, dict[str, float | int | None]]] = {}
        for source in ("real", "synthetic"):
            mine = [r for r in rows if r["source"] == source]
            table[source] = {}
            for c in CRITERIA:
                values = np.array([r[c] for r in mine], dtype=float)
                table[source][c] = {
                    "mean": float(values.mean()) if len(values) else None,
                    "sd": float(values.std(ddof=1)) if len(values) > 1 else None,
                    "n": len(values),
                }
        gap = {
            c: None
            if table["real"][c]["mean"] is None or table["synthetic"][c]["mean"] is None
            else table["synthetic"][c]["mean"] - table["real"][c]["mean"]
            for c in CRITERIA
        }
        return {"by_source": table, "gap": gap, "raters": len({r["rater"] for r in rows})}


def eta_text(seconds: float | None) -> str:
    """``"3 min 20 s"`` (or an empty string when unknown)."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"
