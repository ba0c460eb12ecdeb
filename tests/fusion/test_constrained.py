"""Verdicts that always parse: local judges decode under the verdict's JSON schema; endpoints get
``response_format`` where they take it, and prompt + validate + retry where they refuse it."""

import json

import pytest

import workbench as wb
from workbench.answers import letters
from workbench.fusion import judge as J
from workbench.fusion.modes import MODES
from workbench.records import MemberOutput
from workbench.specs import Member
from workbench.types import GenerateConfig, Prompt

CANDIDATES = [MemberOutput(0, "a", 1, True, "Final answer: 5"), MemberOutput(1, "b", 1, True, "I think 6"),
              MemberOutput(2, "c", 1, True, "It is 7.")]


@pytest.fixture(scope="module")
def tiny_judge():
    return wb.load_model("tiny-offline")


@pytest.mark.parametrize("mode", ["best-of", "merge", "debate"])
async def test_a_random_weight_judge_gives_a_valid_verdict_when_constrained(tiny_judge, mode):
    cfg = GenerateConfig(max_new_tokens=160, temperature=0.0)
    orders = [[0, 1, 2], [2, 0, 1], [1, 2, 0]]
    for order in orders:  # constrained: every ordering parses, from noise weights
        last, parsed, attempts, _ = await J.judge_once(tiny_judge, Member(tiny_judge.spec), Prompt("2+3?"),
                                                       CANDIDATES, order, MODES[mode], cfg)
        assert parsed is not None and len(attempts) == 1, last.raw
    free = [await J.judge_once(tiny_judge, Member(tiny_judge.spec), Prompt("2+3?"), CANDIDATES, o, MODES[mode], cfg,
                               constrain=False) for o in orders]
    assert all(parsed is None for _, parsed, _, _ in free)  # unconstrained, the same judge never parses


async def test_a_limit_too_small_for_any_verdict_is_a_recorded_failure_not_a_hang(tiny_judge):
    last, parsed, attempts, _ = await J.judge_once(tiny_judge, Member(tiny_judge.spec), Prompt("2+3?"), CANDIDATES,
                                                   [0, 1, 2], MODES["best-of"], GenerateConfig(max_new_tokens=12))
    assert parsed is None and len(attempts) == 2 and "invalid verdict" in last.error


def test_the_schema_fits_the_limit_and_matches_validation():
    s = MODES["merge"].json_schema(letters(3), 300)
    assert list(s["properties"]) == ["rationale", "scores", "answer"] and s["required"] == list(s["properties"])
    budget = 300 - (24 + 8 * 3)
    assert s["properties"]["rationale"]["maxLength"] + s["properties"]["answer"]["maxLength"] == budget
    assert s["properties"]["scores"]["required"] == ["A", "B", "C"]
    assert MODES["best-of"].json_schema(letters(2), 100)["properties"]["winner"] == {"enum": ["A", "B"]}


def test_a_cut_reply_is_closed_then_validated():
    assert J.close_truncated_json('{"rationale": "ok", "scores": {"A": 3, "B": 9}, "winner": "B') == \
        {"rationale": "ok", "scores": {"A": 3, "B": 9}, "winner": "B"}
    assert J.close_truncated_json("prose {") is None
    with pytest.raises(ValueError):  # closed but missing the winner: still not a verdict
        MODES["best-of"].validate(J.extract_json('{"rationale": "ok", "scores": {"A": 3'), ["A", "B"])


async def test_endpoints_get_response_format_or_fall_back_when_refused(remote, server):
    good = json.dumps({"winner": "A", "scores": {"A": 8, "B": 2}, "rationale": "A is right"})
    pool = [Member(remote("reply=Final answer: 5;rf=1", name="m1")), Member(remote("reply=6;rf=2", name="m2"))]
    takes = remote(f"reply={good};rf=3", name="J1")
    r = await wb.fuse("2+3?", pool, Member(takes), seed=0)
    sent = [b for b in server.requests if b["model"] == takes.model][-1]
    assert r.verdict.valid and sent["response_format"]["type"] == "json_schema"
    schema = sent["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["winner"] == {"enum": ["A", "B"]} and "maxLength" not in json.dumps(schema)
    refuses = remote(f"reply={good};refuse_schema=1;rf=4", name="J2")
    r = await wb.fuse("2+3?", pool, Member(refuses), seed=0)
    calls = [b for b in server.requests if b["model"] == refuses.model]
    assert r.verdict.valid and "response_format" in calls[0] and "response_format" not in calls[-1]
    r = await wb.fuse("2+3?", pool, Member(refuses), seed=1)  # remembered: not offered again
    assert all("response_format" not in b for b in [b for b in server.requests if b["model"] == refuses.model][2:])
    off = remote(f"reply={good};rf=5", name="J3")
    await wb.fuse("2+3?", pool, Member(off), seed=0, judge_schema=False)
    assert "response_format" not in [b for b in server.requests if b["model"] == off.model][-1]


async def test_constrained_rows_that_finish_at_different_steps_share_a_batch(tiny_judge):
    """One judge, several orderings at once: rows end at different steps; the others go on under the grammar."""
    import asyncio

    cfgs = [GenerateConfig(max_new_tokens=160, temperature=0.0) for _ in range(4)]
    orders = [[0, 1, 2], [2, 0, 1], [1, 2, 0], [0, 2, 1]]
    prompts = [Prompt("2+3?"), Prompt("What is 9 + 9? Think about it for a long while."), Prompt("x"), Prompt("Hi")]
    results = await asyncio.gather(*(J.judge_once(tiny_judge, Member(tiny_judge.spec), p, CANDIDATES, o,
                                                  MODES["best-of"], c) for p, o, c in zip(prompts, orders, cfgs)))
    assert all(parsed is not None for _, parsed, _, _ in results), [r[0].error for r in results]
    lengths = {r[0].completion_tokens for r in results}
    assert len(lengths) > 1  # they did end at different steps
