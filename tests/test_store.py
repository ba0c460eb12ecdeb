"""RunStore: round trip, images by hash, exports, schema version, no secrets; re-judging without regenerating."""

import io
import json
import sqlite3

import pytest
from PIL import Image

import workbench as wb
from workbench.cli import main
from workbench.storage.migrations import MIGRATIONS
from workbench.render import to_json, to_markdown
from workbench.specs import Member
from workbench.storage import RunStore


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
    for m in MIGRATIONS[:2]:  # the schema as it was at version 2
        m.step(c)
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


# ---- History at scale: origins, filters, search; the researcher's labels and the judge's agreement ----

async def _runs_of_every_origin(store, member):
    pool = [member("reply=Paris;hist=1", "alpha"), member("reply=Lyon;hist=1", "beta")]
    judge = member("judge_pick=Lyon;hist=1", "J")
    made = {}
    for origin, text in [("page", "capital of France?"), ("api", "largest city of France?"),
                         ("cli", "river of Lyon?"), ("eval:builtin:arithmetic", "2+2?")]:
        made[origin] = await wb.fuse(text, pool, judge, context=wb.RunContext(store=store, origin=origin))
    made["python"] = await wb.fuse("a notebook question", pool, mode="vote", store=store)
    return made


async def test_history_filters_origins_search_and_eval_items(store, member):
    made = await _runs_of_every_origin(store, member)
    assert made["python"].origin == "python"  # wb.fuse from a script or notebook
    everything = store.list(100)
    assert {r["origin"] for r in everything} == {"page", "api", "cli", "eval:builtin:arithmetic", "python"}
    shown = store.list(100, include_eval=False)
    assert "eval:builtin:arithmetic" not in {r["origin"] for r in shown} and len(shown) == 4
    assert store.count(include_eval=False) == 4 and store.count() == 5
    assert [r["origin"] for r in store.list(100, origin="eval")] == ["eval:builtin:arithmetic"]
    assert [r["run_id"] for r in store.list(100, origin="api")] == [made["api"].run_id]
    assert [r["run_id"] for r in store.list(100, mode="vote")] == [made["python"].run_id]
    # search: every word, in prompt / answer / pool / judge, any case
    assert {r["run_id"] for r in store.list(100, search="FRANCE")} == {made["page"].run_id, made["api"].run_id}
    assert [r["run_id"] for r in store.list(100, search="france largest")] == [made["api"].run_id]
    assert len(store.list(100, search="beta")) == 5
    row = store.list(100, origin="page")[0]
    assert (row["pool"], row["judge"], row["winner"]) == ("alpha, beta", "J", "beta")
    assert row["total_tokens"] == made["page"].total_tokens and row["label"] is None
    assert store.list(2, include_eval=False)[0]["created_at"] >= store.list(2, include_eval=False)[1]["created_at"]
    assert store.origins()[0] in {"page", "api", "cli", "python", "eval:builtin:arithmetic"}


async def test_labels_are_stored_with_runs_and_checked(store, member):
    made = await _runs_of_every_origin(store, member)
    rid = made["page"].run_id
    assert store.label(rid) is None
    lab = store.set_label(rid, 0, "worse", blind=True)
    assert (lab["best_member"], lab["fused"], lab["blind"]) == (0, "worse", True)
    assert store.list(100, origin="page")[0]["label"] == {"best_member": 0, "fused": "worse", "blind": True}
    assert [r["run_id"] for r in store.list(100, labelled=True)] == [rid]
    assert rid not in {r["run_id"] for r in store.list(100, labelled=False)}
    with pytest.raises(wb.ConfigError, match="no member 5"):
        store.set_label(rid, 5, None)
    with pytest.raises(wb.ConfigError, match="better, same, worse"):
        store.set_label(rid, 0, "great")
    with pytest.raises(wb.ConfigError, match="no run"):
        store.set_label("nope", 0, "same")
    store.set_label(rid, 1, "same")  # a second label replaces the first
    assert store.label(rid)["best_member"] == 1 and len(store.labelled_runs()) == 1
    assert store.delete(rid) and store.labelled_runs() == []  # the label goes with its run


async def test_judge_human_agreement_with_interval(store, member):
    from workbench.storage.labels import agreement, agreement_markdown, wilson

    pool = [member("reply=Paris;agr=1", "alpha"), member("reply=Lyon;agr=1", "beta")]
    runs = [await wb.fuse(f"q{i}", pool, member("judge_pick=Lyon;agr=1", "J"), store=store) for i in range(5)]
    # the judge picked beta (1) every time; the researcher agrees on 3, picks alpha on 1, sees no winner on 1
    for r, best, fused in zip(runs, [1, 1, 1, 0, -1], ["same", "same", "better", "worse", "same"]):
        store.set_label(r.run_id, best, fused)
    a = agreement(store.labelled_runs())
    assert (a["labelled"], a["compared"], a["agree"]) == (5, 4, 3) and a["rate"] == 0.75
    assert a["ci"] == pytest.approx(wilson(3, 4)) and a["chance"] == 0.5
    assert a["skipped"] == {"no answer stood out to you": 1}
    assert (a["by_view"]["seen"]["compared"], a["by_view"]["blind"]["compared"]) == (4, 0)
    assert a["fused"]["same"]["count"] == 3 and a["fused"]["better"]["share"] == 0.2 and a["rated"] == 5
    lo, hi = wilson(3, 4)
    assert lo == pytest.approx(0.3006, abs=1e-3) and hi == pytest.approx(0.9544, abs=1e-3)
    md = agreement_markdown(a)
    assert "3 of 4" in md and "75%" in md and "covers chance" in md and "better 1 (20%" in md
    assert "no labelled runs" in agreement_markdown(agreement([]))


def test_a_v4_store_gets_listed_columns_from_its_records(tmp_path, member):
    import asyncio

    async def one():
        mem = wb.RunStore(tmp_path / "scratch.sqlite")
        return await wb.fuse("old question", [member("reply=x;v4=1", "m")], mode="vote",
                             context=wb.RunContext(store=mem, origin="cli"))

    r = asyncio.run(one())

    async def eval_item():  # an evaluation's fused run from before origins were stored
        mem = wb.RunStore(tmp_path / "scratch.sqlite")
        return await wb.fuse("2+2?", [member("reply=4;v4=1", "m")], mode="vote",
                             context=wb.RunContext(store=mem, origin=""))

    e = asyncio.run(eval_item())
    path = tmp_path / "v4.sqlite"
    c = sqlite3.connect(path)
    for m in MIGRATIONS[:4]:  # the schema as it was at version 4
        m.step(c)
    c.execute("PRAGMA user_version = 4")
    c.execute("INSERT INTO runs VALUES (?, ?, 'vote', 'old question', 'x', 0, NULL, ?, 'done', NULL)",
              (r.run_id, r.created_at, json.dumps(r.to_dict(), default=str)))
    c.execute("INSERT INTO runs VALUES (?, ?, 'vote', '2+2?', '4', 0, NULL, ?, 'done', NULL)",
              (e.run_id, e.created_at, json.dumps(e.to_dict(), default=str)))
    c.execute("INSERT INTO eval_rows VALUES ('ev', 'i1', 'fusion:vote', 1.0, ?)", (json.dumps({"run_id": e.run_id}),))
    c.commit()
    c.close()
    migrated = RunStore(path)
    row = migrated.list(search="old question")[0]
    assert (row["origin"], row["pool"], row["total_tokens"]) == ("cli", "m", r.total_tokens)
    assert [x["run_id"] for x in migrated.list(include_eval=False)] == [r.run_id]  # the evaluation's run is hidden


async def test_cli_runs_list_shows_time_and_origin_and_labels(store, member, capsys):
    import time

    made = await _runs_of_every_origin(store, member)
    db = str(store.path)
    assert main(["runs", "list", "--store", db]) == 0
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert len(lines) == 4 and "1 evaluation item(s) hidden" in err and "4 of 4" in err
    assert lines[0].startswith(time.strftime("%Y-%m-%d", time.localtime(made["python"].created_at)))
    assert "python" in lines[0] and "vote" in lines[0] and made["python"].run_id in lines[0]
    assert any(" page " in ln and "-> beta" in ln for ln in lines)
    assert main(["runs", "list", "--all", "--store", db]) == 0
    assert "eval:builtin:arithmetic" in capsys.readouterr().out
    assert main(["runs", "list", "--origin", "api", "--json", "--store", db]) == 0
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)] == [made["api"].run_id]
    assert main(["runs", "label", made["page"].run_id, "--best", "beta", "--fused", "same", "--store", db]) == 0
    assert "best beta, fused same" in capsys.readouterr().out
    assert main(["runs", "label", made["api"].run_id, "--best", "9", "--store", db]) == 2
    capsys.readouterr()
    assert main(["runs", "agreement", "--store", db]) == 0
    assert "1 of 1" in capsys.readouterr().out


async def test_labels_of_a_public_visitor_are_theirs_only(store, member):
    pool = [member("reply=Paris;own=1", "alpha"), member("reply=Lyon;own=1", "beta")]
    mine = await wb.fuse("mine", pool, mode="vote", context=wb.RunContext(store=store, owner="visitor-a"))
    theirs = await wb.fuse("theirs", pool, mode="vote", context=wb.RunContext(store=store, owner="visitor-b"))
    store.set_label(mine.run_id, 0, "same", owner="visitor-a")
    with pytest.raises(wb.ConfigError, match="no run"):
        store.set_label(theirs.run_id, 0, "same", owner="visitor-a")
    with pytest.raises(wb.ConfigError, match="no run"):
        store.label(mine.run_id, owner="visitor-b")
    assert [r.run_id for r, _ in store.labelled_runs("visitor-a")] == [mine.run_id]
    assert store.labelled_runs("visitor-b") == []


async def test_search_escapes_wildcards_folds_unicode_and_a_resave_keeps_the_label(store, member):
    pool = [member("reply=ok;esc=1", "m")]
    r1 = await wb.fuse("5% off at the École", pool, mode="vote", store=store)
    r2 = await wb.fuse("5 off at the ecole", pool, mode="vote", store=store)
    r3 = await wb.fuse("a_b", pool, mode="vote", store=store)
    await wb.fuse("axb", pool, mode="vote", store=store)
    assert [r["run_id"] for r in store.list(search="5%")] == [r1.run_id]  # % is a character, not a wildcard
    assert [r["run_id"] for r in store.list(search="a_b")] == [r3.run_id]  # so is _
    assert [r["run_id"] for r in store.list(search="éCOLE")] == [r1.run_id]  # case folded beyond ASCII
    assert store.same_prompt(r1.run_id) == []
    again = await wb.fuse("5 off at the ecole", pool, mode="vote", store=store)
    assert store.same_prompt(r2.run_id) == [again.run_id]
    store.set_label(r2.run_id, 0, "same")
    store.save(store.load(r2.run_id))  # saved again (an interrupted run is): the label stays
    assert store.label(r2.run_id)["fused"] == "same"
    with pytest.raises(wb.ConfigError, match="member's number"):
        store.set_label(r2.run_id, "first", None)


async def test_runs_stored_before_ties_were_recorded_list_their_tie_after_the_migration(tmp_path, member):
    pool = [member("reply=red;old=1", "m0"), member("reply=blue;old=1", "m1")]
    r = await wb.fuse("Colour?", pool, member("judge_flat=10;old=1", "J"), seed=1)
    data = r.to_dict()
    for key in ("tied", "tie_broken_by", "majority"):  # a record from before: none of these fields
        del data["verdict"][key]
    path = tmp_path / "v5.sqlite"
    c = sqlite3.connect(path)
    for m in MIGRATIONS[:5]:  # the schema as it was at version 5
        m.step(c)
    c.execute("PRAGMA user_version = 5")
    winner = f"m{r.verdict.winner}"
    c.execute("INSERT INTO runs (id, created_at, mode, prompt_text, final_answer, degraded, data, winner_text) "
              "VALUES (?, 1.0, 'best-of', 'Colour?', ?, 0, ?, ?)", (r.run_id, r.final_answer, json.dumps(data), winner))
    c.commit()
    c.close()
    store = RunStore(path)
    assert store.list()[0]["winner"] == f"{winner} (tie of 2)"
    assert store.load(r.run_id).verdict.tie_broken_by.startswith("the judge's own pick among equal scores")


def test_cli_fuse_says_a_tie_and_skips_or_tells_members_that_cannot_see_the_image(tmp_path, capsys, server,
                                                                                   monkeypatch):
    models = tmp_path / "models.toml"
    models.write_text("".join(f'[models.{n}]\nbackend="openai"\nmodel="{s}"\nbase_url="{server.base_url}"\nvision={v}\n'
                              for n, s, v in [("red", "reply=red;cli=1", "true"), ("blue", "reply=blue;cli=1", "true"),
                                              ("blind", "reply=I cannot see it;cli=1", "false"),
                                              ("flat", "judge_flat=10;cli=1", "true")]))
    monkeypatch.setenv("WORKBENCH_MODELS_FILE", str(models))
    image = tmp_path / "red.png"
    image.write_bytes(png((255, 0, 0)))
    db = str(tmp_path / "runs.sqlite")
    assert main(["fuse", "--pool", "red,blue,blind", "--judge", "flat", "--image", str(image), "--store", db,
                 "Colour?"]) == 0
    out = capsys.readouterr().out
    assert "- tie: red and blue scored 10 each — broken by the judge's own pick among equal scores" in out
    assert "| blind | no: skipped |" in out
    assert main(["runs", "list", "--store", db]) == 0 and "(tie of 2)" in capsys.readouterr().out
    assert main(["fuse", "--pool", "red,blind", "--judge", "flat", "--image", str(image), "--blind-members", "tell",
                 "--json", "--store", db, "Colour?"]) == 0
    blind = json.loads(capsys.readouterr().out)["rounds"][0][1]
    assert blind["ok"] and blind["saw_images"] is False and blind["text"] == "I cannot see it"
