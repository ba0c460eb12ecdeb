"""RunStore: every fusion run in SQLite, with a versioned schema and atomic writes (rendering is ``workbench.render``).

Images are stored once, by content hash. Records hold API key *variable names* only; ``save`` also
refuses a record in which the value of any key variable it names appears (defence in depth).
"""

from __future__ import annotations

import builtins
import json
import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import ConfigError, WorkbenchError
from .labels import RATINGS
from .migrations import migrate, schema_version, transaction
from ..paths import data_home
from ..records import FusionResult
from ..types import ImageData

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
            migrate(self._conn, self.path)

    @property
    def schema_version(self) -> int:
        return schema_version(self._conn)

    def save(self, result: FusionResult, images: Iterable[ImageData] = (), owner: str | None = None) -> str:
        """Store a run and its images in one transaction; returns the run id.

        Args:
            owner: who the run belongs to (a public server's visitor session); None for a shared run.
        """
        data = json.dumps(result.to_dict(), default=str)
        _refuse_secrets(data, result)
        images = list(images)
        row = {"id": result.run_id, "created_at": result.created_at, "mode": result.mode,
               "prompt_text": result.prompt.get("text", ""), "final_answer": result.final_answer,
               "degraded": int(result.degraded), "parent_run_id": result.parent_run_id, "data": data,
               "status": "interrupted" if result.interrupted else "done", "owner": owner, **listed_columns(result)}
        with self._lock, transaction(self._conn, immediate=True):
            # an upsert, not INSERT OR REPLACE: a replaced row would take the researcher's label with it
            updates = ", ".join(f"{c} = excluded.{c}" for c in row if c != "id")
            self._conn.execute(f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join(':' + c for c in row)}) "
                               f"ON CONFLICT(id) DO UPDATE SET {updates}", row)
            self._conn.execute("DELETE FROM run_images WHERE run_id = ?", (result.run_id,))
            for pos, img in enumerate(images):
                self._conn.execute("INSERT OR IGNORE INTO images VALUES (?,?,?)", (img.sha256, img.mime, img.data))
                self._conn.execute("INSERT INTO run_images VALUES (?,?,?)", (result.run_id, pos, img.sha256))
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

    def origins(self, owner: str | None = None) -> builtins.list[str]:
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

    def same_prompt(self, run_id: str, owner: str | None = None, limit: int = 50) -> builtins.list[str]:
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
        label = self.label(run_id, owner)
        if label is None:  # deleted between the write and this read
            raise ConfigError(f"no run {run_id!r} in this store")
        return label

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

    def labelled_runs(self, owner: str | None = None, include_eval: bool = True) -> builtins.list[tuple[FusionResult, dict]]:
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

    def images(self, run_id: str, owner: str | None = None) -> builtins.list[ImageData]:
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
        with self._lock, transaction(self._conn, immediate=True):
            cur = self._conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
            self._conn.execute("DELETE FROM images WHERE sha256 NOT IN (SELECT sha256 FROM run_images)")
        return cur.rowcount > 0

    # ---- evaluation: cached member answers and result rows (see workbench.eval.harness) ----

    def eval_members(self, cache_key: str, item_id: str) -> builtins.list[dict[str, Any]] | None:
        row = self._conn.execute("SELECT data FROM eval_members WHERE cache_key = ? AND item_id = ?",
                                 (cache_key, item_id)).fetchone()
        return json.loads(row[0]) if row else None

    def put_eval_members(self, cache_key: str, item_id: str, outputs: builtins.list[dict[str, Any]]) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO eval_members VALUES (?,?,?)",
                               (cache_key, item_id, json.dumps(outputs, default=str)))

    def eval_rows(self, eval_id: str) -> builtins.list[dict[str, Any]]:
        rows = self._conn.execute("SELECT data FROM eval_rows WHERE eval_id = ? ORDER BY created_at",
                                  (eval_id,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def put_eval_rows(self, eval_id: str, rows: builtins.list[dict[str, Any]]) -> None:
        """One item's rows in one transaction: an interrupted evaluation never keeps half an item."""
        import time

        with self._lock, transaction(self._conn, immediate=True):
            for r in rows:
                self._conn.execute("INSERT OR REPLACE INTO eval_rows VALUES (?,?,?,?,?)",
                                   (eval_id, r["item_id"], r["system"], time.time(), json.dumps(r, default=str)))

    def close(self) -> None:
        self._conn.close()


_LIST_COLUMNS = ("id", "created_at", "mode", "prompt_text", "final_answer", "degraded", "parent_run_id", "status",
                 "origin", "pool_text", "judge_text", "winner_text", "total_tokens", "cost_usd", "total_s")
_LIST_KEYS = ("run_id", "created_at", "mode", "prompt", "final_answer", "degraded", "parent_run_id", "status",
              "origin", "pool", "judge", "winner", "total_tokens", "cost_usd", "total_s")
_SEARCHED = ("prompt_text", "final_answer", "pool_text", "judge_text", "id")


def listed_columns(result: FusionResult) -> dict[str, Any]:
    """The columns History lists and filters on, from a run's record: origin, pool, judge, winner, tokens,
    cost, seconds (the one mapping of a record to them: saving and the migrations that fill them use it)."""
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
    return {"origin": result.origin or "", "pool_text": pool, "judge_text": judge, "winner_text": winner,
            "total_tokens": result.total_tokens, "cost_usd": result.total_cost_usd, "total_s": result.total_s}


def _member_name(m: dict[str, Any]) -> str:
    return m.get("label") or m.get("display_name") or (m.get("model") or {}).get("name", "?")


def stored_records(conn: sqlite3.Connection) -> Iterable[tuple[str, FusionResult]]:
    """(id, record) of every stored run this version can read (the others keep what their columns hold)."""
    for run_id, data in conn.execute("SELECT id, data FROM runs").fetchall():
        try:
            yield run_id, FusionResult.from_dict(json.loads(data))
        except Exception:  # a record this version cannot read: listed with what the old columns hold
            continue


def _refuse_secrets(data: str, result: FusionResult) -> None:
    names = {m["model"].get("api_key_env") for m in result.pool}
    if result.judge:
        names.add(result.judge["model"].get("api_key_env"))
    for name in filter(None, names):
        value = os.environ.get(name, "")
        if len(value) >= 8 and value in data:
            raise WorkbenchError(f"refusing to store a run that contains the value of {name}")
