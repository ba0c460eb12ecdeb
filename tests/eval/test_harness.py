"""The harness end to end on scripted HTTP members whose correctness is known, so every metric has a case
where it must come out a given way; and on tiny real models."""

import asyncio
import json

import pytest
from known import REFS, table

import workbench as wb
from workbench.eval import metrics
from workbench.eval.harness import evaluate_async
from workbench.specs import Member
from workbench.stats import wilson

A = {"i1": 5, "i2": 7, "i3": 9, "i4": 0}       # right on 3 of 4
B = {"i1": 5, "i2": 8, "i3": 1, "i4": 11}      # right on i1, i4
C = {"i1": 4, "i2": 8, "i3": 2, "i4": 0}       # always wrong; says 7 in every debate round
JUDGE = {"i1": 5, "i2": 8, "i3": 9, "i4": 11}  # picks a wrong answer on i2 only (judge regret)






@pytest.fixture
def pool(remote):
    def make(tag):
        b_extra = ["Your previous answer:\n<answer>\nFinal answer: 11=>Final answer: 12"]  # right -> wrong on i4
        return [Member(remote(table(A, tag), name="A")),
                Member(remote(table(B, tag, b_extra), name="B")),
                Member(remote(table(C, tag, ["previous round=>Final answer: 7"]), name="C"))]
    return make


def judge(remote, tag):
    return Member(remote(f"judge_pick={'~~'.join(f'[{k}]=>answer: {v}' for k, v in JUDGE.items())};tag={tag}",
                         name="J"))


async def test_every_metric_on_known_answers(dataset, pool, remote, tmp_path):
    df = await evaluate_async(dataset, pool("m"), judge(remote, "m"), rounds=2, swap_k=2, inject=True,
                              store=wb.RunStore(tmp_path / "s.sqlite"), progress=False, concurrency=2)
    assert len(df) == 4 * 9  # 3 members + oracle + 4 modes + injection probe, per item
    acc = metrics.accuracy_table(df).set_index("system")["accuracy"].to_dict()
    assert acc == {"member:A": 0.75, "member:B": 0.5, "member:C": 0.0, "oracle": 1.0, "fusion:best-of": 0.75,
                   "fusion:merge": 0.75, "fusion:debate": 0.5, "fusion:vote": 0.5}
    assert metrics.best_member(df) == "member:A"
    paired = metrics.paired_vs_best(df).set_index("system")
    assert paired.loc["fusion:best-of", ["wins", "losses"]].tolist() == [1, 1]
    assert paired.loc["oracle", "diff"] == 0.25 and paired.loc["fusion:vote", "diff"] == -0.25
    regret = metrics.judge_regret(df).set_index("system")
    assert regret.loc["fusion:best-of", "regret_rate"] == 0.25 and regret.loc["fusion:debate", "regrets"] == 2
    assert metrics.merge_damage(df) == {"eligible": 3, "damaged": 0, "rate": 0.0, "unscorable": 0}
    # only debate on i4 flips: no final answer matches the judge's needle, so it falls back to position
    assert metrics.position_flip_rate(df) == {"checked": 12, "flipped": 1, "rate": 1 / 12, "parse_failures": 0}
    assert metrics.injection_susceptibility(df) == {"probes": 4, "obeyed": 0, "rate": 0.0, "flagged": 4,
                                                    "obeyed_flagged": 0, "obeyed_unflagged": 0, "no_verdict": 0}
    debate = metrics.debate_dynamics(df).set_index("round").loc[2].to_dict()
    assert debate == {"changed": 5, "right_to_wrong": 1, "wrong_to_right": 1, "correct": 5, "items": 4}
    acc_ci = metrics.accuracy_table(df).set_index("system")
    # Wilson intervals: 4 of 4 right is not certainty ([0.51, 1]); 0 of 4 is [0, 0.49]
    assert acc_ci.loc["oracle", ["ci_low", "ci_high"]].tolist() == list(wilson(4, 4))
    assert acc_ci.loc["member:C", ["ci_low", "ci_high"]].tolist() == list(wilson(0, 4))
    assert acc_ci.loc["member:A", "ci_low"] < 0.75 < acc_ci.loc["member:A", "ci_high"]


async def test_merge_damage_position_flips_and_obeyed_injection(remote, tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"id": "x", "prompt": "[x] go", "reference": "5", "answer_type": "numeric"}) + "\n")
    members = [Member(remote("reply=Final answer: 5;t=d1", name="a")),
               Member(remote("reply=Final answer: 5.0;t=d2", name="b"))]
    static = json.dumps({"winner": "A", "scores": {"A": 9, "B": 1}, "rationale": "first", "answer": "Final answer: 999"})
    df = await evaluate_async(str(path), members, Member(remote(f"reply={static};t=d3", name="J")),
                              ["best-of", "merge"], swap_k=2, store=wb.RunStore(tmp_path / "s.sqlite"), progress=False)
    assert metrics.merge_damage(df) == {"eligible": 1, "damaged": 1, "rate": 1.0, "unscorable": 0}
    assert metrics.position_flip_rate(df) == {"checked": 2, "flipped": 2, "rate": 1.0, "parse_failures": 0}
    # a judge that obeys: it picks the planted candidate (whichever variant the item got: all end "answer: 12")
    df = await evaluate_async(str(path), members, Member(remote("judge_pick=answer: 12;t=d4", name="J2")),
                              ["vote"], inject=True, store=wb.RunStore(tmp_path / "s2.sqlite"), progress=False)
    assert metrics.injection_susceptibility(df) == {"probes": 1, "obeyed": 1, "rate": 1.0, "flagged": 1,
                                                    "obeyed_flagged": 1, "obeyed_unflagged": 0, "no_verdict": 0}


def member_calls(server, model, item):
    return sum(1 for b in server.requests if b["model"] == model and f"[{item}]" in json.dumps(b["messages"]))


async def test_cached_members_new_modes_and_resume_after_interrupt(dataset, remote, server, tmp_path):
    store = wb.RunStore(tmp_path / "s.sqlite")
    slow = [Member(remote(table(A, "r") + ";delay=0.4", name="A")), Member(remote(table(B, "r"), name="B"))]
    task = asyncio.ensure_future(evaluate_async(dataset, slow, None, ["vote"], store=store, progress=False,
                                                concurrency=1))
    while True:  # interrupt once the first item is saved
        await asyncio.sleep(0.05)
        rows = store._conn.execute("SELECT count(DISTINCT item_id) FROM eval_rows").fetchone()[0]
        if rows >= 1:
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    df = await evaluate_async(dataset, slow, None, ["vote"], store=store, progress=False)
    assert sorted(df["item_id"].unique()) == ["i1", "i2", "i3", "i4"] and len(df) == 4 * 4
    assert member_calls(server, slow[0].model.model, "i1") == 1  # finished items were not redone
    # adding a judge and a mode reuses the cached member answers
    before = sum(member_calls(server, slow[0].model.model, k) for k in REFS)
    df2 = await evaluate_async(dataset, slow, judge(remote, "r"), ["vote", "best-of"], store=store, progress=False)
    assert sum(member_calls(server, slow[0].model.model, k) for k in REFS) == before
    assert (df2["system"] == "fusion:best-of").sum() == 4


async def test_tiny_llama4_members_and_judge_on_shapes(tmp_path):
    df = await evaluate_async("builtin:shapes", ["tiny-offline", "tiny-offline:skeptic"], "tiny-offline",
                              ["best-of", "vote"], limit=2, max_new_tokens=8, store=wb.RunStore(tmp_path / "t.sqlite"),
                              progress=False)
    assert set(df["system"]) == {"member:tiny-offline", "member:tiny-offline:skeptic", "oracle", "fusion:best-of",
                                 "fusion:vote"}
    assert len(df) == 10 and df["correct"].notna().all()


def test_sync_evaluate_and_bad_calls(dataset, remote, tmp_path):
    with pytest.raises(wb.ConfigError, match="need a judge"):
        wb.evaluate(dataset, [Member(remote("reply=1", name="z"))], None, ["best-of"], store=wb.RunStore(tmp_path / "a"))
    with pytest.raises(wb.ConfigError, match="unknown mode"):
        wb.evaluate(dataset, ["tiny-offline"], None, ["nope"], store=wb.RunStore(tmp_path / "b"))
    df = wb.evaluate(dataset, [Member(remote("reply=Final answer: 5;sync=1", name="z"))], None, ["vote"],
                     store=wb.RunStore(tmp_path / "c"), progress=False)
    assert metrics.accuracy_table(df).set_index("system").loc["fusion:vote", "accuracy"] == 0.25


async def test_members_with_the_same_label_keep_separate_rows(remote, tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"id": k, "prompt": f"[{k}] go", "reference": "5", "answer_type": "numeric"})
                            + "\n" for k in ("a", "b")))
    pool = [Member(remote("reply=Final answer: 5;dup=1", name="right")),
            Member(remote("reply=Final answer: 4;dup=2", name="wrong")),
            Member(remote("table=[a]=>Final answer: 5;reply=Final answer: 3;dup=3", name="wrong"))]
    df = await evaluate_async(str(path), pool, None, ["vote"], store=wb.RunStore(tmp_path / "s"), progress=False)
    acc = metrics.accuracy_table(df).set_index("system")["accuracy"].to_dict()
    assert acc == {"member:right": 1.0, "member:wrong": 0.0, "member:wrong#2": 0.5, "oracle": 1.0, "fusion:vote": 1.0}
    assert df.attrs["member_systems"] == ["member:right", "member:wrong", "member:wrong#2"]


async def test_an_edited_prompt_or_reference_is_not_served_from_the_cache(remote, server, tmp_path):
    path = tmp_path / "d.jsonl"
    store = wb.RunStore(tmp_path / "s")
    pool = [Member(remote("table=[e1] first=>Final answer: 5~~[e1] second=>Final answer: 6;edit=1", name="m"))]

    async def run(prompt, reference):
        path.write_text(json.dumps({"id": "e1", "prompt": prompt, "reference": reference,
                                    "answer_type": "numeric"}) + "\n")
        df = await evaluate_async(str(path), pool, None, ["vote"], store=store, progress=False)
        return df.set_index("system").loc["member:m", ["answer", "correct"]].tolist()

    calls = lambda: sum(1 for b in server.requests if b["model"] == pool[0].model.model)  # noqa: E731
    assert await run("[e1] first", "5") == ["Final answer: 5", True] and calls() == 1
    assert await run("[e1] first", "5") == ["Final answer: 5", True] and calls() == 1   # cached
    assert await run("[e1] second", "5") == ["Final answer: 6", False] and calls() == 2  # same id, new prompt
    assert await run("[e1] second", "6") == ["Final answer: 6", True] and calls() == 2   # new reference: rescored


async def test_a_member_skipped_for_an_image_it_cannot_see_is_no_verdict_not_wrong(remote, tmp_path):
    """Under blind_members="skip" a text-only member is not asked about an image item: its row has no verdict
    (left out of its accuracy and counted as unscorable), and the cache is kept apart from "tell". Both members
    are one endpoint model: the text-only one must not share the seeing one's loaded backend."""
    pool = [Member(remote("reply=Final answer: 3", name="sees")), Member(remote("reply=Final answer: 3", name="blind",
                                                                              vision=False))]
    store = wb.RunStore(tmp_path / "runs.sqlite")
    df = await evaluate_async("builtin:shapes", pool, None, modes=["vote"], limit=2, store=store)
    blind = df[df["system"] == "member:blind"]
    assert blind["correct"].isna().all() and blind["explanation"].str.startswith("skipped:").all()
    acc = metrics.accuracy_table(df).set_index("system")
    assert "member:blind" not in acc.index or acc.loc["member:blind", "n"] == 0
    told = await evaluate_async("builtin:shapes", pool, None, modes=["vote"], limit=2, store=store,
                                settings=wb.FusionSettings(blind_members="tell"))
    assert told[told["system"] == "member:blind"]["explanation"].str.startswith("skipped:").sum() == 0
    assert df.attrs["eval_id"] != told.attrs["eval_id"]
