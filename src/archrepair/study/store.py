"""A study's store: one SQLite file, one row per run, claimed by workers in transactions.

A row's ``status`` is ``pending``, ``running`` (claimed by ``owner``, the driver session, and
``worker``), ``done`` (``figures`` set), ``failed`` (``error`` set) or ``imported`` (a result made
before the store existed; no code version or environment). ``attempts`` counts claims and
``completions`` finished results: a result is accepted only from the session and worker that hold
the claim, so that a worker left over from a killed driver can never finish a row twice.
Only the process that owns the file writes to it (local workers on the same machine included;
never SQLite over a network file system).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import ArchRepairError
from .spec import Run

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    hash TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    model TEXT NOT NULL,
    scenario TEXT NOT NULL,
    method TEXT NOT NULL,
    seed INTEGER NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    figures TEXT,
    seconds REAL,
    code_version TEXT,
    environment TEXT,
    error TEXT,
    note TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    completions INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    worker TEXT,
    started REAL,
    finished REAL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
STATUSES = ("pending", "running", "done", "failed", "imported")
FINISHED = ("done", "failed", "imported")
JSON_COLUMNS = ("config", "figures", "environment")
# what a text export keeps of a finished row (not who ran it, or when)
EXPORTED = ("hash", "model", "scenario", "method", "seed", "config", "status", "figures", "seconds", "code_version",
            "environment", "error", "note", "attempts", "completions")
BACK_TO_PENDING = ("UPDATE runs SET status = 'pending', owner = NULL, worker = NULL, "
                   "note = 'interrupted on attempt ' || attempts || ', rerun' WHERE status = 'running'")


@dataclass(frozen=True)
class StoredRun:
    """A row of the store, its JSON columns decoded."""

    hash: str
    position: int
    model: str
    scenario: str
    method: str
    seed: int
    config: dict
    status: str
    figures: dict | None
    seconds: float | None
    code_version: str | None
    environment: dict | None
    error: str | None
    note: str | None
    attempts: int
    completions: int
    owner: str | None
    worker: str | None
    started: float | None
    finished: float | None

    @property
    def cell(self) -> str:
        """Its place in the grid, in words."""
        return f"{self.model} {self.scenario} {self.method} seed {self.seed}"


class Store:
    """The SQLite store at ``path`` (created with its schema when missing)."""

    def __init__(self, path: str | Path, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise ArchRepairError(f"study store {str(self.path)!r} does not exist; run `archrepair study run` first")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            self.connection.executescript(SCHEMA)
        except sqlite3.DatabaseError as error:
            raise ArchRepairError(f"{str(self.path)!r} is not a study store: {error}") from None
        self.columns = [column[0] for column in self.connection.execute("SELECT * FROM runs LIMIT 0").description]

    def close(self) -> None:
        self.connection.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An immediate (write-locked) transaction: two workers never claim the same row."""
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            yield self.connection
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")

    def add(self, runs: list[Run], results: list[tuple[dict, float | None]] | None = None) -> int:
        """Insert the runs not stored yet (by hash), in order after the stored ones, as ``pending``;
        with ``results`` (``(figures, seconds)`` per run: made before the store) as ``imported``.
        A row already stored takes ``run``'s configuration (the same but for the paths of this machine or
        checkout), and a pending one its place in ``runs``: pending rows run in the study file's current order.
        Returns how many were inserted."""
        with self.transaction() as db:
            position = db.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM runs").fetchone()[0]
            added = 0
            for number, run in enumerate(runs):
                figures, seconds = results[number] if results is not None else (None, None)
                config = json.dumps(run.config, sort_keys=True)
                inserted = db.execute(
                    "INSERT OR IGNORE INTO runs (hash, position, model, scenario, method, seed, config, status, "
                    "figures, seconds, completions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run.hash, position, run.model, run.scenario, run.method, run.seed, config,
                     "pending" if results is None else "imported",
                     None if figures is None else json.dumps(figures, sort_keys=True), seconds,
                     int(results is not None))).rowcount
                added += inserted
                if not inserted and results is None:
                    # the same hash: the same run but for where its files are; every row names this checkout's
                    # files (an export from here then never names another's), and a pending row runs in file order
                    db.execute("UPDATE runs SET config = ? WHERE hash = ?", (config, run.hash))
                    inserted = db.execute("UPDATE runs SET position = ? WHERE hash = ? AND status = 'pending'",
                                          (position, run.hash)).rowcount
                position += inserted
        return added

    def reset(self, retry_failed: bool = False) -> dict[str, int]:
        """Rows a previous driver left ``running`` (it was killed) back to ``pending``, noted; with
        ``retry_failed`` the failed ones too. Call with the driver's lock held."""
        with self.transaction() as db:
            interrupted = db.execute(BACK_TO_PENDING).rowcount
            retried = db.execute("UPDATE runs SET status = 'pending', note = 'failed on attempt ' || attempts || "
                                 "', retried' WHERE status = 'failed'").rowcount if retry_failed else 0
        return {"interrupted": interrupted, "retried": retried}

    def claim(self, owner: str, worker: str, hashes: set[str] | None = None) -> StoredRun | None:
        """The first pending row (of ``hashes``, if given) marked running for ``owner``/``worker``, or ``None``."""
        with self.transaction() as db:
            for row in db.execute("SELECT hash FROM runs WHERE status = 'pending' ORDER BY position").fetchall():
                if hashes is None or row[0] in hashes:
                    db.execute("UPDATE runs SET status = 'running', owner = ?, worker = ?, started = ?, "
                               "attempts = attempts + 1 WHERE hash = ?", (owner, worker, time.time(), row[0]))
                    return self.get(row[0])
        return None

    def finish(self, run_hash: str, owner: str, worker: str, outcome: dict) -> bool:
        """Record a run's outcome (``figures`` or ``error``, ``seconds``, ``code_version``,
        ``environment``) if ``owner``/``worker`` still hold its claim; ``False``: stale, discarded."""
        status = "failed" if outcome.get("error") else "done"
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE runs SET status = ?, figures = ?, seconds = ?, code_version = ?, environment = ?, error = ?, "
                "finished = ?, completions = completions + ? WHERE hash = ? AND owner = ? AND worker = ? "
                "AND status = 'running'",
                (status, json.dumps(outcome.get("figures"), sort_keys=True) if outcome.get("figures") else None,
                 outcome.get("seconds"), outcome.get("code_version"), json.dumps(outcome.get("environment")),
                 outcome.get("error"), time.time(), int(status == "done"), run_hash, owner, worker))
        return cursor.rowcount == 1

    def release(self, owner: str) -> None:
        """``owner``'s running rows back to pending (an interrupted driver's ``finally``)."""
        with self.transaction() as db:
            db.execute(BACK_TO_PENDING + " AND owner = ?", (owner,))

    def get(self, run_hash: str) -> StoredRun:
        return self._decoded(self.connection.execute("SELECT * FROM runs WHERE hash = ?", (run_hash,)).fetchone())

    def runs(self, status: str | None = None) -> list[StoredRun]:
        """Every row (of ``status``), in grid order."""
        query, arguments = "SELECT * FROM runs", ()
        if status is not None:
            query, arguments = query + " WHERE status = ?", (status,)
        return [self._decoded(row) for row in self.connection.execute(query + " ORDER BY position", arguments)]

    def finished_by(self, owner: str) -> list[str]:
        """The hashes of the rows ``owner``'s workers finished (done or failed), in grid order (no
        row decoded: a driver asks this every second)."""
        return [row[0] for row in self.connection.execute(
            "SELECT hash FROM runs WHERE owner = ? AND status IN ('done', 'failed') ORDER BY position", (owner,))]

    def counts(self) -> dict[str, int]:
        """Rows per status (every status, 0 where none)."""
        found = dict(self.connection.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())
        return {status: int(found.get(status, 0)) for status in STATUSES}

    def export_lines(self, folder: str | Path | None = None) -> str:
        """The finished rows (done, failed, imported) in grid order, one sorted JSON object a line:
        a text copy of the store that :meth:`restore` reads back (:func:`read_export`). With
        ``folder`` (where the export is written), the paths a row names (its checkpoint, its field
        set) are written relative to it, so that the export can be moved with the files it names."""
        lines = []
        for run in self.runs():
            if run.status in FINISHED:
                row = {key: getattr(run, key) for key in EXPORTED}
                if folder is not None:
                    row["config"] = _paths_moved(row["config"], lambda path: os.path.relpath(path, folder))
                lines.append(json.dumps(row, sort_keys=True) + "\n")
        return "".join(lines)

    def restore(self, exported: list[dict]) -> int:
        """Put exported rows (:meth:`export_lines`) into the store: a row not stored is added, a stored
        row still pending takes the exported outcome; returns how many rows changed."""
        changed = 0
        with self.transaction() as db:
            start = db.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM runs").fetchone()[0]
            for row in exported:
                values = [json.dumps(row[key], sort_keys=True) if key in JSON_COLUMNS
                          and row[key] is not None else row[key] for key in EXPORTED]
                found = db.execute("SELECT status FROM runs WHERE hash = ?", (row["hash"],)).fetchone()
                if found is None:
                    db.execute(f"INSERT INTO runs ({', '.join(EXPORTED)}, position) VALUES "
                               f"({', '.join('?' * (len(EXPORTED) + 1))})", (*values, start + changed))
                    changed += 1
                elif found[0] == "pending":
                    assignments = ", ".join(f"{key} = ?" for key in EXPORTED[1:])
                    db.execute(f"UPDATE runs SET {assignments} WHERE hash = ?", (*values[1:], row["hash"]))
                    changed += 1
        return changed

    def set_meta(self, key: str, value) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def meta(self, key: str, default=None):
        row = self.connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def _decoded(self, row: tuple) -> StoredRun:
        values = dict(zip(self.columns, row))
        for key in JSON_COLUMNS:
            values[key] = json.loads(values[key]) if values[key] else None
        return StoredRun(**values)


def read_export(path: str | Path) -> list[dict]:
    """The rows of a store's text export (:meth:`Store.export_lines`); a file that is not one is a
    one-line error."""
    path = Path(path)
    try:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ArchRepairError(f"{str(path)!r} is not a study export (JSON lines): {error}") from None
    for row in checked_export(rows, path):  # paths relative to the export (an absolute one stays as it is)
        row["config"] = _paths_moved(row["config"], lambda named: os.path.normpath(os.path.join(path.parent.absolute(),
                                                                                               named)))
    return rows


PATH_KEYS = ("checkpoint", "field")
"""The keys of a row's configuration that name a file or folder (never part of its hash)."""


def _paths_moved(config: dict, move: Callable[[str], str]) -> dict:
    """``config`` with the paths it names (:data:`PATH_KEYS`) passed through ``move``."""
    if not isinstance(config, dict):
        return config
    return config | {key: move(config[key]) for key in PATH_KEYS if isinstance(config.get(key), str)}


def checked_export(rows: list, path: str | Path) -> list[dict]:
    """``rows`` (read from ``path``) if each is a row of a store's export, else a one-line error."""
    if any(not isinstance(row, dict) or set(EXPORTED) - set(row) for row in rows):
        raise ArchRepairError(f"{str(path)!r} is not a study export: each line needs {', '.join(EXPORTED)}")
    return rows


def export_store(store_path: str | Path, out: str | Path) -> dict:
    """Write the finished rows of the store at ``store_path`` to ``out`` (:meth:`Store.export_lines`)."""
    from ..fileio import write_text_atomically

    store = Store(store_path, create=False)
    try:
        text = store.export_lines(Path(out).absolute().parent)
    finally:
        store.close()
    write_text_atomically(Path(out), text)
    return {"store": str(store_path), "out": str(out), "exported": text.count("\n")}
