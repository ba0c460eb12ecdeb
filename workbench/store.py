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
from .labels import RATINGS
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
    # 5: what History lists and filters on without parsing every record; the researcher's own labels
    """
    ALTER TABLE runs ADD COLUMN origin TEXT NOT NULL DEFAULT '';
    ALTER TABLE runs ADD COLUMN pool_text TEXT NOT NULL DEFAULT '';
    ALTER TABLE runs ADD COLUMN judge_text TEXT NOT NULL DEFAULT '';
    ALTER TABLE runs ADD COLUMN winner_text TEXT NOT NULL DEFAULT '';
    ALTER TABLE runs ADD COLUMN total_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN cost_usd REAL;
    ALTER TABLE runs ADD COLUMN total_s REAL NOT NULL DEFAULT 0;
    CREATE INDEX runs_origin ON runs(origin, created_at);
    CREATE TABLE labels (run_id TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
                         best_member INTEGER, fused TEXT, blind INTEGER NOT NULL, created_at REAL NOT NULL);
    """,
    # 6: the listed winner says when it was a tie or had no majority (runs stored before: found from their verdicts)
    "",
]

#: Python steps run after the SQL of the same version (data the SQL cannot compute): version -> fn(conn).
BACKFILL: dict[int, Any] = {}

#: Origins of runs that are parts of an evaluation or an experiment (hidden in History unless asked for).
EVAL_ORIGINS = ("eval:", "experiment:")


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
        # search folds case in Python (SQLite's lower() knows ASCII only: "École" would not find "école")
        self._conn.create_function("fold", 1, lambda x: x.casefold() if isinstance(x, str) else x,
                                   deterministic=True)
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
                    if n in BACKFILL:
                        BACKFILL[n](self._conn)
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
                # an upsert, not INSERT OR REPLACE: a replaced row would take the researcher's label with it
                self._conn.execute(
                    "INSERT INTO runs (id, created_at, mode, prompt_text, final_answer, degraded, "
                    "parent_run_id, data, status, owner, origin, pool_text, judge_text, winner_text, total_tokens, "
                    "cost_usd, total_s) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
                    + ", ".join(f"{c} = excluded.{c}" for c in _SAVED_COLUMNS[1:]),
                    (result.run_id, result.created_at, result.mode, result.prompt.get("text", ""),
                     result.final_answer, int(result.degraded), result.parent_run_id, data,
                     "interrupted" if result.interrupted else "done", owner, *_summary(result)))
                self._conn.execute("DELETE FROM run_images WHERE run_id = ?", (result.run_id,))
                for pos, img in enumerate(images):
                    self._conn.execute("INSERT OR IGNORE INTO images VALUES (?,?,?)", (img.sha256, img.mime, img.data))
                    self._conn.execute("INSERT INTO run_images VALUES (?,?,?)", (result.run_id, pos, img.sha256))
                self._conn.execute("COMMIT")
            except Exception:
                self._conn.execute("ROLLBACK")
                raise
        return result.run_id

    def list(self, limit: int = 50, owner: str | None = None, *, origin: str | None = None,
             mode: str | None = None, search: str | None = None, include_eval: bool = True,
             labelled: bool | None = None, offset: int = 0) -> list[dict[str, Any]]:
        """Newest first: id, time, mode, prompt, final answer, degraded, parent, status (done / interrupted),
        origin, pool, judge, winner, tokens, cost, seconds, and the researcher's label (or None).

        Args:
            owner: only this owner's runs (a public server's visitor); None lists every run.
            origin: only runs of this origin ("page", "api", "cli", "python"; "eval" matches every evaluation).
            mode: only runs of this fusion mode. search: words that must all appear in the prompt, the final
                answer, the pool or the judge (case-insensitive).
            include_eval: also list the runs that are items of an evaluation or an experiment.
            labelled: only runs the researcher labelled (True) or did not (False).
        """
        where, args = self._filters(owner, origin, mode, search, include_eval, labelled)
        rows = self._conn.execute(
            f"SELECT {', '.join('r.' + c for c in _LIST_COLUMNS)}, l.best_member, l.fused, l.blind "
            f"FROM runs r LEFT JOIN labels l ON l.run_id = r.id {where} ORDER BY r.created_at DESC LIMIT ? OFFSET ?",
            (*args, limit, offset)).fetchall()
        out = []
        for r in rows:
            d = dict(zip(_LIST_KEYS, r[:len(_LIST_KEYS)]))
            d["degraded"] = bool(d["degraded"])
            best, fused, blind = r[len(_LIST_KEYS):]
            d["label"] = None if fused is None and best is None and blind is None else \
                {"best_member": best, "fused": fused, "blind": bool(blind)}
            out.append(d)
        return out

    def count(self, owner: str | None = None, *, origin: str | None = None, mode: str | None = None,
              search: str | None = None, include_eval: bool = True, labelled: bool | None = None) -> int:
        """How many runs ``list`` would give with no limit."""
        where, args = self._filters(owner, origin, mode, search, include_eval, labelled)
        return self._conn.execute(f"SELECT count(*) FROM runs r LEFT JOIN labels l ON l.run_id = r.id {where}",
                                  args).fetchone()[0]

    def origins(self, owner: str | None = None) -> list[str]:
        """The origins present, most used first (evaluations as "eval:NAME")."""
        where, args = ("WHERE owner = ?", (owner,)) if owner is not None else ("", ())
        return [r[0] for r in self._conn.execute(f"SELECT origin, count(*) c FROM runs {where} GROUP BY origin "
                                                 "ORDER BY c DESC", args).fetchall()]

    @staticmethod
    def _filters(owner, origin, mode, search, include_eval, labelled) -> tuple[str, tuple]:
        conds: list[str] = []
        args: list[Any] = []
        if owner is not None:
            conds.append("r.owner = ?")
            args.append(owner)
        if origin:
            if origin in ("eval", "experiment"):
                conds.append("r.origin LIKE ?")
                args.append(origin + ":%")
            else:
                conds.append("r.origin = ?")
                args.append("" if origin == "unknown" else origin)
        elif not include_eval:
            conds.append(" AND ".join("r.origin NOT LIKE ?" for _ in EVAL_ORIGINS))
            args.extend(o + "%" for o in EVAL_ORIGINS)
        if mode:
            conds.append("r.mode = ?")
            args.append(mode)
        for word in (search or "").split()[:8]:
            like = "%" + word.casefold().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            conds.append("(" + " OR ".join(f"fold(r.{c}) LIKE ? ESCAPE '\\'" for c in _SEARCHED) + ")")
            args.extend([like] * len(_SEARCHED))
        if labelled is not None:
            conds.append("l.run_id IS NOT NULL" if labelled else "l.run_id IS NULL")
        return ("WHERE " + " AND ".join(conds)) if conds else "", tuple(args)

    def same_prompt(self, run_id: str, owner: str | None = None, limit: int = 50) -> list[str]:
        """Other runs (newest first) given the same prompt as ``run_id``: the same text and the same images."""
        text = self._row(run_id, owner, "prompt_text")
        where, args = ("AND owner = ?", (owner,)) if owner is not None else ("", ())
        ids = [r[0] for r in self._conn.execute(
            f"SELECT id FROM runs WHERE prompt_text = ? AND id != ? {where} ORDER BY created_at DESC LIMIT ?",
            (text, run_id, *args, limit * 4)).fetchall()]

        def shas(rid):
            return [r[0] for r in self._conn.execute("SELECT sha256 FROM run_images WHERE run_id = ? "
                                                     "ORDER BY position", (rid,)).fetchall()]

        mine = shas(run_id)
        return [i for i in ids if shas(i) == mine][:limit]

    # ---- the researcher as a judge: one label per run ----

    def set_label(self, run_id: str, best_member: int | None = None, fused: str | None = None, *,
                  blind: bool = False, owner: str | None = None) -> dict[str, Any]:
        """Store (or replace) the researcher's label of a run: the best member answer (pool index;
        ``NONE_STANDS_OUT`` (-1): none is better than the others; None: not picked) and the fused answer rated
        against it (better / same / worse; None: not rated)."""
        result = self.load(run_id, owner)
        n = len(result.outputs)
        try:
            best_member = None if best_member is None else int(best_member)
        except (TypeError, ValueError):
            raise ConfigError(f"the best member is a member's number, not {best_member!r}") from None
        if best_member is not None and not (-1 <= best_member < n):
            raise ConfigError(f"run {run_id} has {n} member answers; there is no member {best_member}")
        if fused is not None and fused not in RATINGS:
            raise ConfigError(f"rate the fused answer as one of {', '.join(RATINGS)}, not {fused!r}")
        if best_member is None and fused is None:
            raise ConfigError("a label needs the best member answer, a rating of the fused answer, or both")
        import time

        try:
            with self._lock:
                self._conn.execute("INSERT OR REPLACE INTO labels VALUES (?,?,?,?,?)",
                                   (run_id, best_member, fused, int(blind), time.time()))
        except sqlite3.IntegrityError:  # the run was deleted meanwhile
            raise ConfigError(f"no run {run_id!r} in this store") from None
        return self.label(run_id, owner)

    def label(self, run_id: str, owner: str | None = None) -> dict[str, Any] | None:
        """The researcher's label of a run, or None."""
        self._row(run_id, owner, "id")
        row = self._conn.execute("SELECT best_member, fused, blind, created_at FROM labels WHERE run_id = ?",
                                 (run_id,)).fetchone()
        return None if row is None else {"best_member": row[0], "fused": row[1], "blind": bool(row[2]),
                                         "created_at": row[3]}

    def delete_label(self, run_id: str, owner: str | None = None) -> bool:
        self._row(run_id, owner, "id")
        with self._lock:
            return self._conn.execute("DELETE FROM labels WHERE run_id = ?", (run_id,)).rowcount > 0

    def labelled_runs(self, owner: str | None = None, include_eval: bool = True) -> list[tuple[FusionResult, dict]]:
        """Every labelled run with its label (oldest first): what judge-human agreement is computed on."""
        where, args = self._filters(owner, None, None, None, include_eval, True)
        rows = self._conn.execute(f"SELECT r.data, l.best_member, l.fused, l.blind FROM runs r JOIN labels l "
                                  f"ON l.run_id = r.id {where} ORDER BY r.created_at", args).fetchall()
        return [(FusionResult.from_dict(json.loads(d)), {"best_member": b, "fused": f, "blind": bool(bl)})
                for d, b, f, bl in rows]

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


_SAVED_COLUMNS = ("id", "created_at", "mode", "prompt_text", "final_answer", "degraded", "parent_run_id", "data",
                  "status", "owner", "origin", "pool_text", "judge_text", "winner_text", "total_tokens", "cost_usd",
                  "total_s")
_LIST_COLUMNS = ("id", "created_at", "mode", "prompt_text", "final_answer", "degraded", "parent_run_id", "status",
                 "origin", "pool_text", "judge_text", "winner_text", "total_tokens", "cost_usd", "total_s")
_LIST_KEYS = ("run_id", "created_at", "mode", "prompt", "final_answer", "degraded", "parent_run_id", "status",
              "origin", "pool", "judge", "winner", "total_tokens", "cost_usd", "total_s")
_SEARCHED = ("prompt_text", "final_answer", "pool_text", "judge_text", "id")


def _summary(result: FusionResult) -> tuple:
    """The listed columns a record gives: origin, pool, judge, winner, tokens, cost, seconds."""
    pool = ", ".join(_member_name(m) for m in result.pool)
    judge = _member_name(result.judge) if result.judge else ""
    v = result.verdict
    winner = ""
    if v is not None and v.winner is not None and 0 <= v.winner < len(result.pool):
        outs = result.outputs
        winner = outs[v.winner].label if v.winner < len(outs) else _member_name(result.pool[v.winner])
        winner += f" ({v.winner_note})" if v.winner_note else ""
    elif result.mode == "merge" and result.final_answer:
        winner = "merged"
    return (result.origin or "", pool, judge, winner, result.total_tokens, result.total_cost_usd, result.total_s)


def _member_name(m: dict[str, Any]) -> str:
    return m.get("label") or m.get("display_name") or (m.get("model") or {}).get("name", "?")


def _stored(conn: sqlite3.Connection) -> Iterable[tuple[str, FusionResult]]:
    """(id, record) of every stored run this version can read (the others keep what their columns hold)."""
    for run_id, data in conn.execute("SELECT id, data FROM runs").fetchall():
        try:
            yield run_id, FusionResult.from_dict(json.loads(data))
        except Exception:  # a record this version cannot read: listed with what the old columns hold
            continue


def _backfill_summaries(conn: sqlite3.Connection) -> None:
    """Migration 5: fill the listed columns of runs stored before they existed."""
    for run_id, result in _stored(conn):
        conn.execute("UPDATE runs SET origin=?, pool_text=?, judge_text=?, winner_text=?, total_tokens=?, "
                     "cost_usd=?, total_s=? WHERE id = ?", (*_summary(result), run_id))
    # the fused runs of earlier evaluations are named in their result rows (the pool's own runs are not)
    for (data,) in conn.execute("SELECT data FROM eval_rows").fetchall():
        try:
            run_id = json.loads(data).get("run_id")
        except ValueError:
            continue
        if run_id:
            conn.execute("UPDATE runs SET origin = 'eval:(before origins)' WHERE id = ? AND origin = ''", (run_id,))


BACKFILL[5] = _backfill_summaries


def _backfill_winners(conn: sqlite3.Connection) -> None:
    """Migration 6: the listed winner of runs stored before says a tie or no majority (``from_dict`` finds them in
    the verdicts those runs kept)."""
    for run_id, result in _stored(conn):
        conn.execute("UPDATE runs SET winner_text = ? WHERE id = ?", (_summary(result)[3], run_id))


BACKFILL[6] = _backfill_winners


def _refuse_secrets(data: str, result: FusionResult) -> None:
    names = {m["model"].get("api_key_env") for m in result.pool}
    if result.judge:
        names.add(result.judge["model"].get("api_key_env"))
    for name in filter(None, names):
        value = os.environ.get(name, "")
        if len(value) >= 8 and value in data:
            raise WorkbenchError(f"refusing to store a run that contains the value of {name}")
