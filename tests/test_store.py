"""RunStore: round trip, images by hash, exports, schema version, no secrets; re-judging without regenerating."""

import io
import json
import sqlite3

import pytest
from PIL import Image

import workbench as wb
from workbench.cli import main
from workbench.specs import Member
from workbench.render import to_json, to_markdown
from workbench.store import MIGRATIONS, RunStore


def png(color):
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def store(tmp_path):
    return wb.RunStore(tmp_path / "runs.sqlite")


@pytest.fixture
def member(remote):
    return lambda script, name, **kw: Member(remote(script, name=name, **kw))


async def test_round_trip_images_and_exports(store, member):
    prompt = wb.Prompt("Which is red?", images=[png((255, 0, 0)), png((0, 0, 255))])
    pool = [member("reply=the first;st=1", "m1"), member("reply=the second;st=1", "m2")]
    r = await wb.fuse(prompt, pool, member("judge_pick=first;st=1", "J"), swap_k=2, seed=1, store=store)
    loaded = store.load(r.run_id)
    assert json.dumps(loaded.to_dict(), default=str) == json.dumps(r.to_dict(), default=str)
    assert [i.sha256 for i in store.images(r.run_id)] == [i.sha256 for i in prompt.images]
    assert store.list()[0]["run_id"] == r.run_id
    md = to_markdown(store.load(r.run_id))
    assert "m1" in md and "## Verdict" in md and "the first" in md
    assert json.loads(to_json(store.load(r.run_id)))["run_id"] == r.run_id
    assert store.schema_version == len(MIGRATIONS)
    assert store.delete(r.run_id) and not store.list()
    with sqlite3.connect(store.path) as c:
        assert c.execute("SELECT count(*) FROM images").fetchone()[0] == 0


async def test_no_secret_is_ever_written(store, member, monkeypatch):
    monkeypatch.setenv("WB_SECRET_KEY", "sk-live-abcdef123456")
    pool = [member("reply=ok;sec=1", "m", api_key_env="WB_SECRET_KEY")]
    r = await wb.fuse("q", pool, mode="vote", store=store)
    raw = store.path.read_bytes() + to_json(store.load(r.run_id)).encode()
    assert b"sk-live" not in raw and b"WB_SECRET_KEY" in to_json(store.load(r.run_id)).encode()


async def test_rejudge_reuses_answers(store, member, server):
    pool = [member("reply=Paris;rj=1", "a"), member("reply=Lyon;rj=1", "b")]
    r = await wb.fuse("Capital?", pool, member("judge_pick=Lyon;rj=1", "J1"), store=store)
    calls = (server.calls["reply=Paris;rj=1"], server.calls["reply=Lyon;rj=1"])
    new = await wb.rejudge(store.load(r.run_id), member("judge_pick=Paris;rj=2", "J2"), "merge")
    assert (server.calls["reply=Paris;rj=1"], server.calls["reply=Lyon;rj=1"]) == calls
    assert new.parent_run_id == r.run_id and new.mode == "merge" and new.final_answer == "Paris"
    assert r.final_answer == "Lyon"
    vote = await wb.rejudge(r, mode="vote")
    assert vote.verdict.votes == {"paris": 1, "lyon": 1}
    with pytest.raises(wb.ConfigError, match="debate"):
        await wb.rejudge(r, mode="debate")


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "r.sqlite"
    with sqlite3.connect(path) as c:
        c.execute("PRAGMA user_version = 99")
    with pytest.raises(wb.WorkbenchError, match="newer"):
        wb.RunStore(path)


def test_cli_fuse_json_and_runs(tmp_path, capsys, server):
    models = tmp_path / "models.toml"
    models.write_text(f'[models.s1]\nbackend="openai"\nmodel="reply=Final answer: 4"\nbase_url="{server.base_url}"\n'
                      f'[models.s2]\nbackend="openai"\nmodel="reply=Final answer: 5"\nbase_url="{server.base_url}"\n')
    import os
    os.environ["WORKBENCH_MODELS_FILE"] = str(models)
    try:
        db = str(tmp_path / "runs.sqlite")
        assert main(["fuse", "--pool", "s1,s2,s2", "--mode", "vote", "--json", "--store", db, "2+3?"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["final_answer"] == "5" and len(out["rounds"][0]) == 3
        assert main(["runs", "list", "--json", "--store", db]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert rows[0]["run_id"] == out["run_id"]
        assert main(["runs", "export", out["run_id"], "--format", "md", "--store", db]) == 0
        assert "## Final answer" in capsys.readouterr().out
        assert main(["runs", "rejudge", out["run_id"], "--mode", "vote", "--json", "--store", db]) == 0
        rejudged = json.loads(capsys.readouterr().out)
        assert rejudged["parent_run_id"] == out["run_id"] and rejudged["final_answer"] == "5"
        assert main(["runs", "show", "nope", "--store", db]) == 2
        assert main(["fuse", "--pool", "", "--mode", "vote", "--store", db, "x"]) == 2
    finally:
        os.environ["WORKBENCH_MODELS_FILE"] = str(tmp_path / "none.toml")


def test_an_older_store_is_migrated_and_its_runs_read_as_done(tmp_path):
    path = tmp_path / "v2.sqlite"
    c = sqlite3.connect(path)
    for sql in MIGRATIONS[:2]:
        c.executescript(sql)
    c.execute("PRAGMA user_version = 2")
    c.execute("INSERT INTO runs VALUES ('old-run', 1.0, 'vote', 'q', 'a', 0, NULL, '{}')")
    c.commit()
    c.close()
    store = RunStore(path)
    assert store.schema_version == len(MIGRATIONS)
    assert [(r["run_id"], r["status"]) for r in store.list()] == [("old-run", "done")]


KILLED_SCRIPT = r"""
import asyncio, sys, workbench as wb
store = wb.RunStore(sys.argv[1])
pool = [wb.Member(wb.ModelSpec(name=f"m{i}", backend="openai", model="reply=a b c d e f;chunk_delay=0.05",
                               base_url=sys.argv[2])) for i in range(3)]
async def main():
    while True:
        await wb.fuse("q", pool, mode="vote", store=store)
        print("saved", flush=True)
asyncio.run(main())
"""


def test_a_store_killed_mid_run_opens_whole_with_every_finished_run(tmp_path, server):
    import signal
    import subprocess
    import sys

    path = tmp_path / "runs.sqlite"
    p = subprocess.Popen([sys.executable, "-c", KILLED_SCRIPT, str(path), server.base_url], stdout=subprocess.PIPE,
                         text=True)
    try:
        for _ in range(3):
            assert p.stdout.readline().strip() == "saved"
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(30)
    store = RunStore(path)
    assert store._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    runs = store.list(100)
    assert len(runs) >= 3 and all(r["status"] == "done" for r in runs)
    assert all(store.load(r["run_id"]).final_answer == "a b c d e f" for r in runs)  # none half-written
