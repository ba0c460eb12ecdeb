"""RunStore: every fusion run in SQLite, with a versioned schema and atomic writes (rendering is ``workbench.render``).

Images are stored once, by content hash. Records hold API key *variable names* only; ``save`` also
refuses a record in which the value of any key variable it names appears (defence in depth).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable

from .errors import ConfigError, WorkbenchError
from .paths import data_home
from .records import FusionResult
from .types import ImageData

# Each entry moves the schema up one version (PRAGMA user_version); never edit a released entry.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        mode TEXT NOT NULL,
        prompt_text TEXT NOT NULL,
        final_answer TEXT NOT NULL,
        degraded INTEGER NOT NULL,
        parent_run_id TEXT,
        data TEXT NOT NULL
    );
    CREATE INDEX runs_created ON runs(created_at);
    CREATE TABLE images (sha256 TEXT PRIMARY KEY, mime TEXT NOT NULL, data BLOB NOT NULL);
    CREATE TABLE run_images (run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                             position INTEGER NOT NULL, sha256 TEXT NOT NULL REFERENCES images(sha256),
                             PRIMARY KEY (run_id, position));
    """,
    """
    CREATE TABLE eval_members (cache_key TEXT NOT NULL, item_id TEXT NOT NULL, data TEXT NOT NULL,
                               PRIMARY KEY (cache_key, item_id));
    CREATE TABLE eval_rows (eval_id TEXT NOT NULL, item_id TEXT NOT NULL, system TEXT NOT NULL,
                            created_at REAL NOT NULL, data TEXT NOT NULL, PRIMARY KEY (eval_id, item_id, system));
    """,
    """
    ALTER TABLE runs ADD COLUMN status TEXT NOT NULL DEFAULT 'done';
    """,
    """
    ALTER TABLE runs ADD COLUMN owner TEXT;
    CREATE INDEX runs_owner ON runs(owner, created_at);
    """,
]


def default_store_path() -> Path:
    """``$WORKBENCH_HOME/runs.sqlite`` or the user data directory."""
    return data_home() / "runs.sqlite"


class RunStore:
    """Save, list, load, delete and export fusion runs.

    Args:
        path: the SQLite file (created with its folder when missing); default ``default_store_path()``.
    """

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_store_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def _migrate(self) -> None:
        with self._lock:
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise WorkbenchError(f"{self.path} was written by a newer workbench (schema {version})")
            for n, sql in enumerate(MIGRATIONS[version:], start=version + 1):
                self._conn.execute("BEGIN")
                try:
                    for stmt in filter(str.strip, sql.split(";")):
                        self._conn.execute(stmt)
                    self._conn.execute(f"PRAGMA user_version = {n}")
                    self._conn.execute("COMMIT")
                except Exception:
                    self._conn.execute("ROLLBACK")
                    raise

    @property
    def schema_version(self) -> int:
        return self._conn.execute("PRAGMA user_version").fetchone()[0]

    def save(self, result: FusionResult, images: Iterable[ImageData] = (), owner: str | None = None) -> str:
        """Store a run and its images in one transaction; returns the run id.

        Args:
            owner: who the run belongs to (a public server's visitor session); None for a shared run.
        """
        data = json.dumps(result.to_dict(), default=str)
        _refuse_secrets(data, result)
        images = list(images)
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (result.run_id, result.created_at, result.mode, result.prompt.get("text", ""),
                     result.final_answer, int(result.degraded), result.parent_run_id, data,
                     "interrupted" if result.interrupted else "done", owner))
                self._conn.execute("DELETE FROM run_images WHERE run_id = ?", (result.run_id,))
                for pos, img in enumerate(images):
                    self._conn.execute("INSERT OR IGNORE INTO images VALUES (?,?,?)", (img.sha256, img.mime, img.data))
                    self._conn.execute("INSERT INTO run_images VALUES (?,?,?)", (result.run_id, pos, img.sha256))
                self._conn.execute("COMMIT")
            except Exception:
                self._conn.execute("ROLLBACK")
                raise
        return result.run_id

    def list(self, limit: int = 50, owner: str | None = None) -> list[dict[str, Any]]:
        """Newest first: id, time, mode, prompt, final answer, degraded, parent, status (done / interrupted).

        Args:
            owner: only this owner's runs (a public server's visitor); None lists every run.
        """
        where, args = ("WHERE owner = ?", (owner,)) if owner is not None else ("", ())
        rows = self._conn.execute("SELECT id, created_at, mode, prompt_text, final_answer, degraded, parent_run_id, "
                                  f"status FROM runs {where} ORDER BY created_at DESC LIMIT ?", (*args, limit)).fetchall()
        keys = ("run_id", "created_at", "mode", "prompt", "final_answer", "degraded", "parent_run_id", "status")
        return [dict(zip(keys, r)) | {"degraded": bool(r[5])} for r in rows]

    def _row(self, run_id: str, owner: str | None, column: str) -> Any:
        row = self._conn.execute(f"SELECT {column}, owner FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None or (owner is not None and row[1] != owner):  # someone else's run reads as missing
            raise ConfigError(f"no run {run_id!r} in this store")  # no server path in a visitor's message
        return row[0]

    def load(self, run_id: str, owner: str | None = None) -> FusionResult:
        """The run ``run_id`` (only if it is ``owner``'s, when an owner is given)."""
        return FusionResult.from_dict(json.loads(self._row(run_id, owner, "data")))

    def images(self, run_id: str, owner: str | None = None) -> list[ImageData]:
        """The run's prompt images, in order."""
        self._row(run_id, owner, "id")
        rows = self._conn.execute("SELECT i.data FROM run_images r JOIN images i ON i.sha256 = r.sha256 "
                                  "WHERE r.run_id = ? ORDER BY r.position", (run_id,)).fetchall()
        return [ImageData.load(r[0]) for r in rows]

    def delete(self, run_id: str, owner: str | None = None) -> bool:
        try:
            self._row(run_id, owner, "id")
        except ConfigError:
            return False
        with self._lock:
            cur = self._conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
            self._conn.execute("DELETE FROM images WHERE sha256 NOT IN (SELECT sha256 FROM run_images)")
        return cur.rowcount > 0

    # ---- evaluation: cached member answers and result rows (see workbench.eval.harness) ----

    def eval_members(self, cache_key: str, item_id: str) -> list[dict[str, Any]] | None:
        row = self._conn.execute("SELECT data FROM eval_members WHERE cache_key = ? AND item_id = ?",
                                 (cache_key, item_id)).fetchone()
        return json.loads(row[0]) if row else None

    def put_eval_members(self, cache_key: str, item_id: str, outputs: list[dict[str, Any]]) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO eval_members VALUES (?,?,?)",
                               (cache_key, item_id, json.dumps(outputs, default=str)))

    def eval_rows(self, eval_id: str) -> list[dict[str, Any]]:
        rows = self._conn.execute("SELECT data FROM eval_rows WHERE eval_id = ? ORDER BY created_at",
                                  (eval_id,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def put_eval_rows(self, eval_id: str, rows: list[dict[str, Any]]) -> None:
        """One item's rows in one transaction: an interrupted evaluation never keeps half an item."""
        import time

        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for r in rows:
                    self._conn.execute("INSERT OR REPLACE INTO eval_rows VALUES (?,?,?,?,?)",
                                       (eval_id, r["item_id"], r["system"], time.time(), json.dumps(r, default=str)))
                self._conn.execute("COMMIT")
            except Exception:
                self._conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self._conn.close()


def _refuse_secrets(data: str, result: FusionResult) -> None:
    names = {m["model"].get("api_key_env") for m in result.pool}
    if result.judge:
        names.add(result.judge["model"].get("api_key_env"))
    for name in filter(None, names):
        value = os.environ.get(name, "")
        if len(value) >= 8 and value in data:
            raise WorkbenchError(f"refusing to store a run that contains the value of {name}")
