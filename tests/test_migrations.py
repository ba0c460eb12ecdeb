"""A run store of every earlier schema, written by the workbench that had it (``scripts/make_store_fixtures.py``),
opens with today's code: migrated step by step, every run reads back equal to what the old code saved (its
record, images, owner, label), History lists it, and it can be saved again; a step that fails leaves the file at
the version before it, whole."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from workbench.storage.migrations import MIGRATIONS
from workbench.storage import RunStore

FIXTURES = Path(__file__).parent / "fixtures" / "stores"
VERSIONS = sorted(int(p.stem[1:]) for p in FIXTURES.glob("v*.sqlite"))


def copy(version: int, tmp_path: Path) -> tuple[Path, dict]:
    path = tmp_path / f"v{version}.sqlite"
    shutil.copy(FIXTURES / f"v{version}.sqlite", path)
    return path, json.loads((FIXTURES / f"v{version}.json").read_text())


def test_there_is_a_store_made_by_the_old_code_for_every_schema():
    assert VERSIONS == list(range(1, len(MIGRATIONS) + 1)), "run scripts/make_store_fixtures.py for a new schema"
    assert [m.version for m in MIGRATIONS] == VERSIONS
    assert len({m.name for m in MIGRATIONS}) == len(MIGRATIONS) and all(m.step.__doc__ for m in MIGRATIONS)


@pytest.mark.parametrize("version", VERSIONS)
def test_a_store_of_every_schema_migrates_and_every_run_reads_back_equal(tmp_path, version):
    path, kept = copy(version, tmp_path)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == version
    store = RunStore(path)
    assert store.schema_version == len(MIGRATIONS)
    assert len(kept["runs"]) >= 3
    for run_id, k in kept["runs"].items():
        old = k["record"]
        got = store.load(run_id, owner=k["owner"]).to_dict()
        changed = differences(old, got)
        assert not changed, f"{k['what']} run of schema {version}: {changed}"
        assert [i.sha256 for i in store.images(run_id, owner=k["owner"])] == k["images"]
        row = next(r for r in store.list(limit=100, owner=k["owner"]) if r["run_id"] == run_id)
        assert (row["status"], row["mode"], row["degraded"]) == ("done", old["mode"], old["degraded"])
        assert (row["pool"], row["judge"], row["total_tokens"]) == (
            ", ".join(name(m) for m in old["pool"]), name(old["judge"]),
            store.load(run_id, owner=k["owner"]).total_tokens)
    # a public visitor's run stays theirs
    for run_id, k in kept["runs"].items():
        if k["owner"]:
            assert run_id not in {r["run_id"] for r in store.list(limit=100, owner="someone-else")}
    for run_id, label in kept["labels"].items():
        got = store.label(run_id)
        assert (got["best_member"], got["fused"], got["blind"]) == (label["best_member"], label["fused"],
                                                                     label["blind"])
    # the migrated store takes writes: a run saved again keeps its label
    run_id, k = next(iter(kept["runs"].items()))
    store.save(store.load(run_id, owner=k["owner"]), store.images(run_id, owner=k["owner"]), owner=k["owner"])
    assert not differences(k["record"], store.load(run_id, owner=k["owner"]).to_dict())
    assert [i.sha256 for i in store.images(run_id, owner=k["owner"])] == k["images"]
    if run_id in kept["labels"]:
        assert store.label(run_id)["fused"] == kept["labels"][run_id]["fused"]
    store.close()
    assert RunStore(path).schema_version == len(MIGRATIONS)  # opening again runs nothing


def differences(old, new, where: str = "") -> list[str]:
    """Where ``new`` (today's record, as JSON) does not say what ``old`` (the old code's) said: every field the old
    record had reads back with its value; fields added since may hold anything."""
    new = json.loads(json.dumps(new, default=str)) if not where else new
    if isinstance(old, dict):
        if not isinstance(new, dict):
            return [f"{where}: {old!r} became {new!r}"]
        return [d for key in old for d in (differences(old[key], new[key], f"{where}.{key}") if key in new
                                            else [f"{where}.{key}: gone"])]
    if isinstance(old, list):
        if not isinstance(new, list) or len(new) != len(old):
            return [f"{where}: {old!r} became {new!r}"]
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in differences(a, b, f"{where}[{i}]")]
    return [] if old == new else [f"{where}: {old!r} became {new!r}"]


def name(member: dict) -> str:
    return member.get("label") or member.get("display_name") or member["model"]["name"]


def test_the_listed_columns_are_filled_from_the_records_of_runs_stored_before_them(tmp_path):
    path, kept = copy(4, tmp_path)
    store = RunStore(path)
    rows = {r["run_id"]: r for r in store.list(limit=100)}
    for run_id, k in kept["runs"].items():
        if k["owner"]:
            continue
        row, old = rows[run_id], k["record"]
        assert row["pool"] == ", ".join(name(m) for m in old["pool"])
        assert row["total_s"] == pytest.approx(old["total_s"])
        if old["mode"] == "merge":
            assert row["winner"] == "merged"


def test_a_step_that_fails_leaves_the_store_at_the_version_before_it_whole(tmp_path):
    path, kept = copy(4, tmp_path)
    step = MIGRATIONS[4]

    def half_done(db):
        db.execute("ALTER TABLE runs ADD COLUMN origin TEXT NOT NULL DEFAULT ''")
        raise RuntimeError("the disk went away")

    MIGRATIONS[4] = type(step)(step.version, step.name, half_done)
    try:
        with pytest.raises(RuntimeError, match="disk went away"):
            RunStore(path)
    finally:
        MIGRATIONS[4] = step
    c = sqlite3.connect(path)
    assert c.execute("PRAGMA user_version").fetchone()[0] == 4
    assert "origin" not in [r[1] for r in c.execute("PRAGMA table_info(runs)")]
    c.close()
    store = RunStore(path)
    assert store.schema_version == len(MIGRATIONS)
    assert {r["run_id"] for r in store.list(limit=100, owner=None)} >= {
        rid for rid, k in kept["runs"].items() if not k["owner"]}


@pytest.mark.parametrize("words, kind", [
    ("timed out: the run's time limit passed (30 s)", "timeout"),
    ("the server shut down before the run finished", "shutdown"),
    ("stopped before it finished (cancelled)", "cancelled"),
    ("something an old version wrote", "cancelled"),
])
def test_a_record_from_before_stopped_was_kept_gets_its_kind_from_its_words(words, kind):
    from workbench.records import FusionResult

    path = FIXTURES / "v6.json"
    record = dict(next(iter(json.loads(path.read_text())["runs"].values()))["record"])
    record.pop("stopped", None)
    record["interrupted"] = words
    assert FusionResult.from_dict(record).stopped == kind
    record["interrupted"] = ""
    assert FusionResult.from_dict(record).stopped == ""
