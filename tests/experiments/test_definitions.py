"""Issue 22, items 2-6: each instrument's number against the definition it states, on frames built so that the
old reading and the definition disagree."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.eval import metrics
from workbench.experiments import agreement_gate, member_attribution
from workbench.experiments.bias import _self_preference, _summarise
from workbench.experiments.common import member_table
from workbench.fusion.modes.vote import majority
from workbench.records import MemberOutput


def member_rows(item: str, answers: list[tuple[str, bool | None]], systems=("member:a", "member:b", "member:c")):
    return [dict(item_id=item, system=s, kind="member", correct=c, extracted=a[:200], explanation="", answer=a,
                 latency_s=1.0, tokens=10) for s, (a, c) in zip(systems, answers)]


def test_attribution_votes_on_the_answers_the_vote_mode_uses():
    """Two members agree in different words (the scorer's `extracted` keeps the first 200 characters of free text,
    so they never shared a key and pool order won: pool value 0, Shapley (-2/3, +1/3, +1/3))."""
    answers = [("I believe it is 7.\nFinal answer: 7", False),
               ("Adding the parts: 5 + 7 = 12, so the answer is 12", True),
               ("Twelve. Final answer: 12", True)]
    df = pd.DataFrame(member_rows("q1", answers))
    df.attrs.update(member_systems=["member:a", "member:b", "member:c"], dataset="hand-built")
    # what the vote mode does with the same replies
    answer, winner, _, _ = majority([MemberOutput(i, s, 1, True, a) for i, (s, (a, _)) in
                                     enumerate(zip("abc", answers))])
    assert answer == "12" and winner == 1
    e = member_attribution(df)
    assert e.summary["pool_accuracy"] == 1.0
    # by the definition: v({})=0, v(a)=0, v(b)=v(c)=1, v(ab)=0 (tie: a first), v(ac)=0, v(bc)=1, v(abc)=1
    assert e.frame["shapley"].tolist() == pytest.approx([-1 / 3, 2 / 3, 2 / 3])
    assert e.summary["efficiency_gap"] == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["7", "12", "Final answer: 12", "the answer is 7", "5"]), min_size=3,
                         max_size=3), min_size=1, max_size=6))
def test_attribution_pool_value_is_the_vote_modes_answer(items):
    """On every item, the whole pool's value is whether the vote mode's own majority answer is right."""
    rows = []
    for i, answers in enumerate(items):
        rows += member_rows(f"q{i}", [(a, a.endswith("12")) for a in answers])
    df = pd.DataFrame(rows)
    df.attrs.update(member_systems=["member:a", "member:b", "member:c"], dataset="hand-built")
    expected = []
    for answers in items:
        voted, _, _, _ = majority([MemberOutput(i, "x", 1, True, a) for i, a in enumerate(answers)])
        expected.append(float(voted == "12"))
    assert member_attribution(df).summary["pool_accuracy"] == pytest.approx(np.mean(expected))


def gate_frame(fused: dict[str, bool | None]) -> pd.DataFrame:
    rows = []
    answers = {"q1": [("3", True), ("3", True), ("4", False)], "q2": [("5", False), ("6", True), ("7", False)],
               "q3": [("8", True), ("9", False), ("1", False)], "q4": [("2", True), ("2", True), ("2", True)]}
    for item, a in answers.items():
        rows += member_rows(item, a)
        rows.append(dict(item_id=item, system="fusion:best-of", kind="fusion", mode="best-of", correct=fused[item],
                         latency_s=3.0, tokens=50))
    df = pd.DataFrame(rows)
    df.attrs.update(member_systems=["member:a", "member:b", "member:c"], dataset="hand-built")
    return df


def test_agreement_gate_leaves_an_unscorable_fused_answer_out_as_the_accuracy_table_does():
    df = gate_frame({"q1": True, "q2": True, "q3": None, "q4": True})
    e = agreement_gate(df)
    never = e.frame.set_index("label").loc["never skip"]
    acc = metrics.accuracy_table(df).set_index("system").loc["fusion:best-of"]
    assert never["accuracy"] == acc["accuracy"] == 1.0 and never["items"] == acc["n"] == 3  # was 0.75 over 4
    assert e.summary["left_out"] == {"fused_unscorable": 1, "agreed_answer_unscorable": 0}
    # skipping the judge on q4 (all three agree, right) changes nothing: no false gain from the unscorable item
    assert e.frame.set_index("label").loc["3 of 3", "diff_vs_judged"] == 0.0


def verdicts(rows):
    return pd.DataFrame([dict(item_id=i, ordering=k, order=order, labels=labels, valid=valid, winner=w,
                              winner_position=order.index(w) if valid else None,
                              winner_label=labels[order.index(w)] if valid else None, winner_correct=None,
                              scores={m: 1.0 for m in order}, n=len(order))
                         for i, k, order, labels, valid, w in rows])


def test_bias_rates_expect_one_over_each_verdicts_own_candidate_count():
    # item x has 3 candidates, item y 2 (a member failed): an unbiased judge spreads its picks evenly over each
    rows = [("x", k, list(p), ["A", "B", "C"], True, p[k % 3]) for k, p in
            enumerate(itertools.permutations([0, 1, 2]))]
    rows += [("y", k, list(p), ["A", "B"], True, p[k % 2]) for k, p in enumerate([(0, 1), (1, 0)] * 3)]
    e = _summarise(verdicts(rows), calls=12)
    r = e.frame.set_index(["kind", "key"])
    # position 3 exists only in x's 6 verdicts and won 2 of them: 1/3, as expected there (it read 2/12 against 1/3)
    assert r.loc[("position", "3"), ["win_rate", "expected", "verdicts"]].tolist() == pytest.approx([1 / 3, 1 / 3, 6])
    # positions 1 and 2 exist in all 12 verdicts: expected the mean of 1/3 and 1/2
    assert r.loc[("position", "1"), "expected"] == pytest.approx((6 / 3 + 6 / 2) / 12)
    for key in ("1", "2", "3"):
        row = r.loc[("position", key)]
        assert float(Fraction(row["win_rate"]).limit_denominator(100)) == pytest.approx(row["expected"])


def test_pick_changed_counts_only_items_that_can_show_a_change():
    rows = [("x", 0, [0, 1], ["A", "B"], True, 0), ("x", 1, [1, 0], ["A", "B"], True, 1),  # changed
            ("y", 0, [0, 1], ["A", "B"], True, 0), ("y", 1, [1, 0], ["A", "B"], False, None)]  # one valid verdict
    s = _summarise(verdicts(rows), calls=4).summary
    assert s["pick_changed_with_ordering"] == 1.0 and s["pick_changed_items"] == 1 and s["pick_changed_left_out"] == 1


def test_self_preference_counts_only_verdicts_where_its_member_was_a_candidate():
    members = member_table(pd.DataFrame(member_rows("i1", [("1", True), ("2", False), ("3", False)])
                                        + member_rows("i2", [("1", True), ("2", False), ("3", False)])))
    # member 2 (the judge's own) failed on i2 and was not shown: the judge cannot pick it there
    rows = [("i1", 0, [0, 1, 2], ["A", "B", "C"], True, 2), ("i2", 0, [0, 1], ["A", "B"], True, 0)]
    s = _self_preference(verdicts(rows), 2, members)
    assert s["win_rate"] == 1.0 and s["verdicts"] == 1 and s["expected"] == pytest.approx(1 / 3)


def test_a_system_s_interval_does_not_move_when_another_system_joins_the_frame():
    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):
        for s, p in (("member:a", 0.6), ("member:b", 0.55), ("fusion:vote", 0.65), ("fusion:best-of", 0.6)):
            rows.append(dict(item_id=f"q{i}", system=s, kind=s.split(":")[0], mode=s.split(":")[1],
                             correct=bool(rng.random() < p), latency_s=1.0, tokens=1))
    df = pd.DataFrame(rows)
    alone = metrics.paired_vs_best(df[df["system"] != "fusion:best-of"]).set_index("system").loc["fusion:vote"]
    both = metrics.paired_vs_best(df).set_index("system").loc["fusion:vote"]
    assert alone.drop("near_best").to_dict() == both.drop("near_best").to_dict()


def test_a_member_unscorable_on_most_items_is_said_next_to_the_comparison():
    rows = []
    for i in range(10):
        rows += [dict(item_id=f"q{i}", system="member:a", kind="member", correct=i % 2 == 0, latency_s=1, tokens=1),
                 dict(item_id=f"q{i}", system="member:b", kind="member", correct=None if i else True, latency_s=1,
                      tokens=1),
                 dict(item_id=f"q{i}", system="fusion:vote", kind="fusion", mode="vote", correct=True, latency_s=1,
                      tokens=1)]
    s = metrics.summary(pd.DataFrame(rows))
    r = s["paired"].set_index("system").loc["fusion:vote"]
    assert (r["n"], r["scored_items"], r["left_out"], r["unscorable_members"]) == (1, 10, 9, {"b": 9})
    line = metrics.metric_lines(s)[0]
    assert "9 of the 10 items fusion:vote was scored on are left out" in line and "b on 9" in line
    assert s["accuracy"].set_index("system").loc["member:b", "unscorable"] == 9


def test_ties_are_counted_and_said_next_to_the_metrics():
    """verdict_ties: of each fusion system's scored verdicts, the ties (a rule chose among answers sharing the top),
    their accuracy, and the votes with no majority; a frame from before the columns existed has no tie table."""
    rows = []
    for i in range(4):
        rows.append(dict(item_id=f"q{i}", system="member:a", kind="member", correct=True, latency_s=1, tokens=1))
        rows.append(dict(item_id=f"q{i}", system="fusion:best-of", kind="fusion", mode="best-of", correct=i % 2 == 0,
                         verdict_tie=i < 3, vote_majority=None, latency_s=1, tokens=1))
        rows.append(dict(item_id=f"q{i}", system="fusion:vote", kind="fusion", mode="vote", correct=True,
                         verdict_tie=i == 0, vote_majority=i > 1, latency_s=1, tokens=1))
    s = metrics.summary(pd.DataFrame(rows))
    t = s["ties"].set_index("system")
    assert t.loc["fusion:best-of", ["verdicts", "ties"]].tolist() == [4, 3]
    assert t.loc["fusion:best-of", "tie_accuracy"] == pytest.approx(2 / 3)  # q0, q2 right of q0-q2
    assert t.loc["fusion:vote", ["ties", "no_majority"]].tolist() == [1, 2]
    lines = [x for x in metrics.metric_lines(s) if x.startswith("- ties")]
    assert lines == ["- ties, fusion:best-of: 3 of 4 verdicts were ties settled by a rule (right on 67% of those); "
                     "each counted as the answer the rule took",
                     "- ties, fusion:vote: 1 of 4 verdicts were ties settled by a rule (right on 100% of those); 2 of 4 "
                     "votes had no majority; each counted as the answer the rule took"]
    assert metrics.verdict_ties(pd.DataFrame(rows).drop(columns=["verdict_tie"])).empty
