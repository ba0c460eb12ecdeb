"""Verdicts say what happened: a tie is reported as a tie, with the rule that broke it, in the record, the page, the
exports and the API object; a vote says whether it had a majority; old records get the same from their verdicts."""

import json

import workbench as wb
from workbench.records import FusionResult
from workbench.render import to_json, to_markdown
from workbench.render.html import verdict_html
from workbench.serve.responses import fusion_object
from workbench.specs import Member


def pool_of(remote, replies, tag):
    return [Member(remote(f"reply={text};{tag}={i}", name=f"m{i}")) for i, text in enumerate(replies)]


async def test_a_judge_that_scores_every_candidate_the_same_gives_a_tie_broken_by_position(remote, tmp_path):
    store = wb.RunStore(tmp_path / "runs.sqlite")
    pool = pool_of(remote, ["red", "blue", "a mosaic of colors", "green"], "flat")
    r = await wb.fuse("What colour?", pool, Member(remote("judge_flat=10;t=1", name="J")), seed=3, store=store)
    v = r.verdict
    shown_first = v.label_map["A"]
    # the record: all four tied, the judge's pick was the candidate shown first
    assert v.tie and v.tied == [0, 1, 2, 3] and v.winner == shown_first and v.majority is None
    assert v.tie_broken_by == "the judge's own pick among equal scores (it named the candidate shown first, as A)"
    head = ("Tie: m0, m1, m2 and m3 scored 10 each — broken by the judge's own pick among equal scores (it named "
            "the candidate shown first, as A). Taken")
    # the page and the Markdown export say so instead of a bare "Winner"
    html = verdict_html(r)
    assert head.replace("'", "&#x27;") + f": <strong>m{shown_first}</strong>" in html and "Winner" not in html
    md = to_markdown(r)
    assert "- t" + head[1:] + f": **m{shown_first}**" in md and "winner" not in md.split("## Verdict")[1]
    # the JSON export and the API's fusion object
    assert json.loads(to_json(r))["verdict"]["tied"] == [0, 1, 2, 3]
    api = fusion_object(r)["verdict"]
    assert api["tie"] is True and api["tied"] == ["m0", "m1", "m2", "m3"] and api["majority"] is None
    assert api["tie_broken_by"] == v.tie_broken_by and api["decision"] == f"{head}: m{shown_first}"
    # History's list
    assert store.list()[0]["winner"] == f"m{shown_first} (tie of 4)"


async def test_members_with_the_same_answer_count_once_in_a_tie(remote):
    pool = pool_of(remote, ["Paris", "Paris", "Lyon"], "same")
    r = await wb.fuse("Capital?", pool, Member(remote("judge_flat=7;t=2", name="J")), seed=0)
    assert len(r.verdict.tied) == 2 and r.verdict.winner in r.verdict.tied  # Paris once, Lyon once
    assert "scored 7 each" in verdict_html(r)


async def test_a_judge_that_tells_the_candidates_apart_gives_no_tie(remote):
    pool = pool_of(remote, ["Lyon", "Paris"], "apart")
    r = await wb.fuse("Capital?", pool, Member(remote("judge_pick=Paris;t=3", name="J")), seed=0)
    assert not r.verdict.tie and r.verdict.tied == [] and r.verdict.tie_broken_by == ""
    assert "Winner: <strong>m1</strong>" in verdict_html(r) and "Tie" not in verdict_html(r)
    assert fusion_object(r)["verdict"]["tie"] is False


async def test_orderings_that_split_their_picks_are_a_tie_with_the_aggregation_rule(remote):
    pool = pool_of(remote, ["one", "two"], "split")
    r = await wb.fuse("q", pool, Member(remote("judge_flat=9;t=4", name="J")), seed=0, swap_k=2)
    v = r.verdict  # each ordering picked its first candidate: one pick each, equal Borda points and mean scores
    assert v.swap_tie_broken_by == "pool order" and v.tie and v.tied == [0, 1] and v.winner == 0
    assert v.tie_broken_by == "pool order (the member listed first)"
    assert ("tie: the 2 orderings' picks split evenly between m0 and m1, whose mean scores are equal (9) — broken by "
            "pool order (the member listed first). Taken: **m0**") in to_markdown(r)


async def test_a_vote_where_no_two_members_agree_says_there_is_no_majority(remote):
    pool = pool_of(remote, ["Final answer: 20", "Final answer: 3", "Final answer: 4", "Final answer: 5"], "nomaj")
    r = await wb.fuse("q", pool, mode="vote")
    v = r.verdict
    assert v.majority is False and v.tie and v.tied == [0, 1, 2, 3] and v.winner == 0
    assert v.tie_broken_by == "pool order: the answer given first"
    assert ("Tie, no majority: no two members agree (4 answers, one vote each) — broken by pool order: the answer "
            "given first. Taken: <strong>m0</strong>") in verdict_html(r)
    assert fusion_object(r)["verdict"]["majority"] is False


async def test_a_vote_split_evenly_and_a_plurality_say_so(remote):
    even = await wb.fuse("q", pool_of(remote, ["Final answer: 3", "Final answer: 4", "Final answer: 3",
                                               "Final answer: 4"], "even"), mode="vote")
    assert even.verdict.tied == [0, 1] and even.verdict.majority is False
    assert '- tie, no majority: the answers "3" (m0) and "4" (m1) got 2 of 4 votes each' in to_markdown(even)
    plural = await wb.fuse("q", pool_of(remote, ["Final answer: 3", "Final answer: 3", "Final answer: 4",
                                                 "Final answer: 5"], "plural"), mode="vote")
    assert not plural.verdict.tie and plural.verdict.majority is False
    assert "Winner by plurality, no majority (2 of 4 votes): <strong>m0</strong>" in verdict_html(plural)


async def test_a_vote_with_a_real_majority_is_not_a_tie(remote):
    pool = pool_of(remote, ["Final answer: 5", "It is 6. Final answer: 6", "Final answer: 5", "5, Final answer: 5"],
                   "maj")
    r = await wb.fuse("q", pool, mode="vote")
    assert r.verdict.majority is True and not r.verdict.tie and r.verdict.winner == 0
    html = verdict_html(r)
    assert "Winner by majority (3 of 4 votes): <strong>m0</strong>" in html and "Tie" not in html
    assert fusion_object(r)["verdict"]["tie"] is False and fusion_object(r)["verdict"]["majority"] is True


async def test_a_record_stored_before_ties_were_recorded_loads_and_finds_its_tie(remote):
    pool = pool_of(remote, ["red", "blue"], "old")
    r = await wb.fuse(wb.Prompt("What colour?"), pool, Member(remote("judge_flat=10;t=5", name="J")), seed=1)
    d = json.loads(to_json(r))
    for key in ("tied", "tie_broken_by", "majority"):
        del d["verdict"][key]
    old = FusionResult.from_dict(d)
    assert old.verdict.tied == [0, 1] and old.verdict.tie_broken_by == r.verdict.tie_broken_by
    vote = json.loads(to_json(await wb.fuse("q", pool_of(remote, ["Final answer: 1", "Final answer: 2"], "oldv"),
                                            mode="vote")))
    del vote["verdict"]["majority"], vote["verdict"]["tied"]
    assert FusionResult.from_dict(vote).verdict.majority is False and FusionResult.from_dict(vote).verdict.tie
