"""The run store's schema, one named step per version, and the one transaction helper the store writes with.

A store file records its schema version in ``PRAGMA user_version``. ``migrate`` runs every step above it in
order, each in its own transaction together with the version it reaches (a step that fails leaves the file at
the version before it, whole). A step is a function of the connection registered with ``@migration``: its SQL and
any data it computes in Python (backfills) sit together. The order of the functions in this file is the schema's
history: never edit a released step; add the next one at the end, and a fixture of the schema before it
(``scripts/make_store_fixtures.py``) so that ``tests/test_migrations.py`` migrates a real old store.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import WorkbenchError


@dataclass(frozen=True)
class Migration:
    version: int  #: the schema version this step reaches
    name: str  #: what it does (the function's name)
    step: Callable[[sqlite3.Connection], None]


#: the steps, in order: MIGRATIONS[k] reaches version k + 1
MIGRATIONS: list[Migration] = []


def migration(fn: Callable[[sqlite3.Connection], None]) -> Callable[[sqlite3.Connection], None]:
    """Register ``fn`` as the step to the next schema version."""
    MIGRATIONS.append(Migration(len(MIGRATIONS) + 1, fn.__name__, fn))
    return fn


@contextmanager
def transaction(conn: sqlite3.Connection, immediate: bool = False) -> Iterator[sqlite3.Connection]:
    """One transaction on a connection opened with ``isolation_level=None``: committed when the block ends,
    rolled back when it raises. ``immediate``: take the write lock at once (a writer that reads first)."""
    conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def schema_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection, path: Path | str) -> list[str]:
    """Bring the store at ``conn`` to the newest schema; returns the names of the steps run.

    Raises:
        WorkbenchError: the file was written by a newer workbench (a schema this code does not know).
    """
    version = schema_version(conn)
    if version > len(MIGRATIONS):
        raise WorkbenchError(f"{path} was written by a newer workbench (schema {version}, this one knows "
                             f"{len(MIGRATIONS)}): upgrade the workbench to open it")
    ran = []
    for m in MIGRATIONS[version:]:
        with transaction(conn):
            m.step(conn)
            conn.execute(f"PRAGMA user_version = {m.version}")
        ran.append(m.name)
    return ran


# -- the steps ----------------------------------------------------------------------------------------------


@migration
def runs_and_images(db: sqlite3.Connection) -> None:
    """1: runs (their record as JSON plus what is listed) and their images, stored once by content hash."""
    db.execute("""
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            created_at REAL NOT NULL,
            mode TEXT NOT NULL,
            prompt_text TEXT NOT NULL,
            final_answer TEXT NOT NULL,
            degraded INTEGER NOT NULL,
            parent_run_id TEXT,
            data TEXT NOT NULL
        )""")
    db.execute("CREATE INDEX runs_created ON runs(created_at)")
    db.execute("CREATE TABLE images (sha256 TEXT PRIMARY KEY, mime TEXT NOT NULL, data BLOB NOT NULL)")
    db.execute("""
        CREATE TABLE run_images (run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                                 position INTEGER NOT NULL, sha256 TEXT NOT NULL REFERENCES images(sha256),
                                 PRIMARY KEY (run_id, position))""")


@migration
def evaluation_cache(db: sqlite3.Connection) -> None:
    """2: the evaluation cache (members' answers per item) and evaluation rows."""
    db.execute("""
        CREATE TABLE eval_members (cache_key TEXT NOT NULL, item_id TEXT NOT NULL, data TEXT NOT NULL,
                                   PRIMARY KEY (cache_key, item_id))""")
    db.execute("""
        CREATE TABLE eval_rows (eval_id TEXT NOT NULL, item_id TEXT NOT NULL, system TEXT NOT NULL,
                                created_at REAL NOT NULL, data TEXT NOT NULL,
                                PRIMARY KEY (eval_id, item_id, system))""")


@migration
def run_status(db: sqlite3.Connection) -> None:
    """3: a run is done or interrupted (runs stored before: done)."""
    db.execute("ALTER TABLE runs ADD COLUMN status TEXT NOT NULL DEFAULT 'done'")


@migration
def run_owner(db: sqlite3.Connection) -> None:
    """4: who a run belongs to (a public server's visitor; NULL: shared)."""
    db.execute("ALTER TABLE runs ADD COLUMN owner TEXT")
    db.execute("CREATE INDEX runs_owner ON runs(owner, created_at)")


@migration
def listed_columns_and_labels(db: sqlite3.Connection) -> None:
    """5: what History lists and filters on without parsing every record (filled from the records of runs stored
    before), and the researcher's own labels."""
    from .store import listed_columns, stored_records

    for column, kind in (("origin", "TEXT NOT NULL DEFAULT ''"), ("pool_text", "TEXT NOT NULL DEFAULT ''"),
                         ("judge_text", "TEXT NOT NULL DEFAULT ''"), ("winner_text", "TEXT NOT NULL DEFAULT ''"),
                         ("total_tokens", "INTEGER NOT NULL DEFAULT 0"), ("cost_usd", "REAL"),
                         ("total_s", "REAL NOT NULL DEFAULT 0")):
        db.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
    db.execute("CREATE INDEX runs_origin ON runs(origin, created_at)")
    db.execute("""
        CREATE TABLE labels (run_id TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
                             best_member INTEGER, fused TEXT, blind INTEGER NOT NULL, created_at REAL NOT NULL)""")
    for run_id, result in stored_records(db):
        listed = listed_columns(result)
        db.execute(f"UPDATE runs SET {', '.join(f'{c} = :{c}' for c in listed)} WHERE id = :run_id",
                   {**listed, "run_id": run_id})
    # the fused runs of earlier evaluations are named in their result rows (the pool's own runs are not)
    for (data,) in db.execute("SELECT data FROM eval_rows").fetchall():
        try:
            run_id = json.loads(data).get("run_id")
        except ValueError:
            continue
        if run_id:
            db.execute("UPDATE runs SET origin = 'eval:(before origins)' WHERE id = ? AND origin = ''", (run_id,))


@migration
def tied_winners(db: sqlite3.Connection) -> None:
    """6: the listed winner says when it was a tie or had no majority (runs stored before: found from the
    verdicts their records kept)."""
    from .store import listed_columns, stored_records

    for run_id, result in stored_records(db):
        db.execute("UPDATE runs SET winner_text = ? WHERE id = ?", (listed_columns(result)["winner_text"], run_id))
