"""The research instruments on a hand-built evaluation frame (cached answers with known right and wrong), with
exact expected values; the judged ones against scripted judges whose biases are known."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.eval.datasets import Dataset, Item
from workbench.experiments import agreement_gate, debate_vs_vote, judge_bias_sweep, member_attribution
from workbench.experiments.attribution import shapley
from workbench.experiments.bias import kendall_tau
from workbench.specs import Member

# item -> (reference, [(member answer, extracted, correct) or None for a failed member], vote ok, debate ok,
#          best-of ok, debate round-2 stats)
ITEMS = {
    "i1": ("5", [("It is 5", "5", True), ("Five: 5", "5", True), ("Six, 6", "6", False)], True, True, True,
           dict(changed=1, right_to_wrong=0, wrong_to_right=1, correct=3)),
    "i2": ("3", [("three 3", "3", True), ("4", "4", False), ("four 4", "4", False)], False, True, True,
           dict(changed=2, right_to_wrong=0, wrong_to_right=2, correct=3)),
    "i3": ("8", [("7", "7", False), ("8", "8", True), ("9", "9", False)], False, False, False,
           dict(changed=1, right_to_wrong=1, wrong_to_right=0, correct=0)),
    "i4": ("2", [None, ("two 2", "2", True), ("2", "2", True)], True, True, True,
           dict(changed=0, right_to_wrong=0, wrong_to_right=0, correct=2)),
}
SYSTEMS = ["member:a", "member:b", "member:c"]


def frame(items=ITEMS) -> pd.DataFrame:
    rows = []
    for item, (_ref, answers, vote, debate, best, stats) in items.items():
        for system, a in zip(SYSTEMS, answers):
            if a is None:
                rows.append(dict(item_id=item, system=system, kind="member", correct=False, extracted="",
                                 explanation="failed: server error", answer="", latency_s=0.5, tokens=0))
            else:
                rows.append(dict(item_id=item, system=system, kind="member", correct=a[2], extracted=a[1],
                                 explanation="", answer=a[0], latency_s=1.0, tokens=10))
        member_tokens = sum(0 if a is None else 10 for a in answers)
        rows.append(dict(item_id=item, system="fusion:vote", kind="fusion", mode="vote", correct=vote,
                         latency_s=1.0, tokens=member_tokens))
        rows.append(dict(item_id=item, system="fusion:best-of", kind="fusion", mode="best-of", correct=best,
                         latency_s=3.0, tokens=member_tokens + 20))
        rows.append(dict(item_id=item, system="fusion:debate", kind="fusion", mode="debate", correct=debate,
                         latency_s=6.0, tokens=2 * member_tokens + 20, debate_rounds=[dict(round=2, **stats)]))
    df = pd.DataFrame(rows)
    df.attrs.update(member_systems=SYSTEMS, dataset="hand-built")
    return df


def test_debate_vs_vote_exact():
    e = debate_vs_vote(frame())
    s = e.summary
    assert s["items"] == 4 and s["debate_accuracy"] == 0.75 and s["vote_round1_accuracy"] == 0.5
    cmp = s["debate_minus_vote"]
    assert cmp["diff"] == 0.25 and cmp["wins"] == 1 and cmp["losses"] == 0 and cmp["mcnemar_p"] == 1.0
    assert cmp["ci_low"] <= 0.25 <= cmp["ci_high"]
    r = e.frame.set_index("round")
    assert r.at[1, "member_accuracy"] == 0.5  # 6 of 12 round-1 answers right (the failed one counts as wrong)
    assert r.at[2, "member_accuracy"] == pytest.approx(8 / 12)
    assert (r.at[2, "changed"], r.at[2, "right_to_wrong"], r.at[2, "wrong_to_right"]) == (4, 1, 3)
    assert s["flips_right_to_wrong"] == 1 and s["flips_wrong_to_right"] == 3 and e.judge_calls == 0


def test_agreement_gate_exact():
    e = agreement_gate(frame(), mode="best-of")
    f = e.frame.set_index("threshold")
    assert list(f["accuracy"]) == [0.5, 0.5, 0.75, 0.75]
    assert list(f["mean_tokens"]) == [27.5, 32.5, 47.5, 47.5]
    assert list(f["judge_skipped"]) == [4, 3, 0, 0] and list(f["label"])[-1] == "never skip"
    assert list(f["pareto"]) == [True, False, True, True]
    assert f.at[1, "diff_vs_judged"] == -0.25 and f.at[1, "mcnemar_p"] == 1.0  # i2: 1 loss, no win
    assert f.at[2, "mean_latency_s"] == pytest.approx((1 + 1 + 3 + 1) / 4)
    assert e.summary["judged_accuracy"] == 0.75 and e.summary["pareto_thresholds"] == ["1 of 3", "3 of 3",
                                                                                        "never skip"]


def test_shapley_values_of_one_item_by_hand():
    # i1: a and b right ("5"), c wrong ("6"); ties go to the first member in pool order
    e = member_attribution(frame({"i1": ITEMS["i1"]}))
    f = e.frame.set_index("member")
    assert list(f["shapley"]) == pytest.approx([0.5, 0.5, 0.0])
    assert list(f["leave_one_out"]) == [0.0, 0.0, 0.0] and list(f["alone_accuracy"]) == [1.0, 1.0, 0.0]
    assert e.judge_calls == 0


def test_shapley_is_efficient_and_matches_the_definition_on_a_known_game():
    # the glove game: players 0 and 1 hold left gloves, 2 a right glove; a pair is worth 1
    v = {s: float(2 in s and (0 in s or 1 in s)) for s in
         [(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]}
    phi, loo = shapley(v, 3)
    assert phi == pytest.approx([1 / 6, 1 / 6, 2 / 3]) and loo == [0.0, 0.0, 1.0]
    e = member_attribution(frame())
    assert e.summary["efficiency_gap"] < 1e-12 and e.summary["pool_accuracy"] == 0.5  # = the vote's accuracy


def test_kendall_tau():
    assert kendall_tau([1, 2, 3], [10, 20, 30]) == 1.0 and kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0
    assert kendall_tau([9, 2, 2], [2, 9, 2]) == -0.5


@pytest.fixture
def dataset():
    return Dataset("hand-built", [Item(i, f"What is item {i}?", ref, "numeric") for i, (ref, *_rest) in ITEMS.items()])


def test_a_position_biased_judge_is_caught(remote, dataset):
    judge = Member(remote("judge_pick=NOT-IN-ANY-ANSWER", name="first-pick"))
    e = judge_bias_sweep(frame(), judge, dataset=dataset, shuffle_labels=False)
    rates = e.frame.set_index(["kind", "key"])["win_rate"]
    assert rates[("position", "1")] == 1.0 and rates[("position", "2")] == 0.0
    assert e.summary["pick_changed_with_ordering"] == 1.0  # every item: the pick follows the first place
    assert e.summary["orderings"] == 6 * 3 + 2  # 3! per 3-answer item, 2! for i4
    assert e.judge_calls == 20 + 3 * 4  # and the name probe: 3 labellings per item
    assert e.summary["kendall_tau"] < 0


def test_a_label_biased_judge_is_told_apart_from_position(remote, dataset):
    judge = Member(remote("judge_pick=label:B", name="b-pick"))
    e = judge_bias_sweep(frame(), judge, dataset=dataset, shuffle_labels=True, seed=3)
    rates = e.frame.set_index(["kind", "key"])["win_rate"]
    assert rates[("label", "B")] == 1.0 and rates[("position", "1")] < 0.75


def test_a_judge_that_reads_the_answers_has_no_position_bias(remote, dataset):
    judge = Member(remote("judge_pick=8", name="content"))  # i3's right answer; elsewhere it picks position 1
    e = judge_bias_sweep(frame({"i3": ITEMS["i3"]}), judge, dataset=dataset)
    rates = e.frame.set_index(["kind", "key"])["win_rate"]
    assert [rates[("position", p)] for p in "123"] == pytest.approx([1 / 3] * 3)  # each member at each place twice
    assert e.summary["pick_changed_with_ordering"] == 0.0 and e.summary["kendall_tau"] == 1.0


def test_attribution_with_a_judge_re_run_on_subsets(remote, dataset):
    # a judge that always picks the candidate saying "8": on i3 every subset holding b is right
    judge = Member(remote("judge_pick=8", name="content"))
    e = member_attribution(frame({"i3": ITEMS["i3"]}), judge=judge, dataset=dataset)
    f = e.frame.set_index("member")
    assert list(f["shapley"]) == pytest.approx([0.0, 1.0, 0.0]) and list(f["leave_one_out"]) == [0.0, 1.0, 0.0]
    assert e.judge_calls == 4  # the subsets of two or more: ab, ac, bc, abc


async def test_the_evaluate_tab_runs_the_instruments_on_its_last_evaluation(tmp_path):
    """The Evaluate tab's instruments read the session's last evaluation (kept on the server) and say what is
    missing instead of failing."""
    from workbench.policy import Policy
    from workbench.storage import RunStore
    from workbench.ui.gradio_app import build_demo

    demo = build_demo("tiny-offline", store=RunStore(tmp_path / "r.sqlite"), preload=False,
                      policy=Policy(public=False))
    fns = {f.fn.__qualname__.split(".")[0] + "." + f.name: f.fn for f in demo.fns.values() if f.fn is not None}
    run = fns["EvaluateTab.run_instruments"]
    out = await run(None, ["debate_vs_vote"], "tiny-offline")
    assert out[0].startswith("⚠ run an evaluation first")
    status, *figures = await run(frame(), ["debate_vs_vote", "agreement_gate", "member_attribution"], None)
    assert "**debate_vs_vote** (0 judge calls): items: 4" in status and "debate minus vote: +0.250" in status
    assert "McNemar p 1" in status and figures[3:7] == [None, None, None, None] and all(f is not None for f in figures[:3])
    assert figures[-1] == ""  # no analyses asked for
    no_debate = frame()
    no_debate = no_debate[no_debate["system"] != "fusion:debate"]
    no_debate.attrs.update(frame().attrs)
    status, *_ = await run(no_debate, ["debate_vs_vote", "judge_bias_sweep"], None)
    assert "needs the debate mode(s), which the last evaluation did not run: tick them under Modes" in status
    assert "needs a judge" in status


async def test_a_public_server_caps_the_instruments_model_calls(tmp_path):
    """Each instrument's model calls are bounded before it runs (Limits.max_instrument_calls); the quantization
    panel, which loads models outside the pool, is not offered publicly."""
    import dataclasses

    from workbench.policy import PUBLIC_LIMITS, Policy
    from workbench.storage import RunStore
    from workbench.ui.gradio_app import build_demo

    policy = Policy(public=True, limits=dataclasses.replace(PUBLIC_LIMITS, max_instrument_calls=20))
    demo = build_demo("tiny-offline", store=RunStore(tmp_path / "r.sqlite"), preload=False, policy=policy)
    fns = {f.fn.__qualname__.split(".")[0] + "." + f.name: f.fn for f in demo.fns.values() if f.fn is not None}
    run = fns["EvaluateTab.run_instruments"]
    status, *_ = await run(frame(), ["judge_bias_sweep", "quantization_panel", "debate_vs_vote"], "tiny-offline")
    assert "judge bias sweep would make up to 24 model calls; this server's limit is 20" in status
    assert "not offered on a public server" in status
    assert "**debate_vs_vote** (0 judge calls)" in status  # the others still run


def test_quotes_are_matched_fuzzily_within_the_documented_threshold():
    from workbench.experiments.analysis import THRESHOLD, check, match_score

    answer = "First, add the tens: 20 and 30 make 50.\nThen the ones: 7 and 5 make 12, so the total is 62."
    assert match_score("the ones: 7 and 5 make 12", answer) == 1.0
    assert match_score("THE ONES:   7 and 5 make 12", answer) == 1.0  # case and whitespace do not count
    assert match_score("then the ones, 7 and 5 makes 12", answer) >= THRESHOLD  # punctuation and an ending
    assert match_score("the ones: 8 and 4 make 12 and the tens 90", answer) < THRESHOLD  # another claim
    assert match_score("", answer) == 0.0
    rows = check({"unique_insights": [{"member": "C", "insight": "x", "quote": "make 50"}],
                  "consensus": [{"point": "p", "quotes": [{"member": "[A]", "quote": "make 50"}]}],
                  "blind_spots": [{"point": "units"}]}, {"A": answer, "B": "other"})
    assert [(r["kind"], r["grounded"]) for r in rows] == [("consensus", True), ("unique_insight", False),
                                                          ("blind_spot", None)]  # C names no candidate


def test_grounding_of_a_scripted_analyst_exact(remote, dataset):
    from workbench.experiments import grounding

    analyst = Member(remote("analysis=1", name="analyst"))
    e = grounding(frame(), analyst, dataset=dataset)
    s = e.summary
    # per item: every consensus and contradiction quote is copied (grounded), the one insight is invented
    assert s["quoted_claims"] == 23 and s["grounded_claims"] == 19 and s["analyses_parsed"] == 4
    assert s["grounding_rate"] == pytest.approx((3 * 5 / 6 + 4 / 5) / 4)
    assert s["by_kind"] == {"consensus": 1.0, "contradiction": 1.0, "unique_insight": 0.0}
    assert e.judge_calls == 4 and (e.frame["kind"] == "blind_spot").sum() == 4
    md = e.details.set_index("item_id").at["i1", "markdown"]
    assert "⚠ *not found in member:c's answer" in md and "**Blind spots**" in md
    assert md.count("⚠") == 1


def test_image_ablation_tells_a_member_that_looks_from_one_that_does_not(remote, tmp_path):
    import workbench as wb
    from workbench.experiments import image_ablation

    sees = Member(remote("seen=1", name="sees"))
    blind = Member(remote("reply=Final answer: 3", name="blind"))
    text_only = Member(remote("reply=Final answer: 2", name="text-only", vision=False))
    pool = [sees, blind, text_only]
    df = wb.evaluate("builtin:shapes", pool, modes=["vote"], limit=3, store=wb.RunStore(tmp_path / "s.sqlite"),
                     progress=False)
    e = image_ablation(df, pool=pool)
    ignored = e.summary["ignored"]
    assert ignored["member:sees"]["ignored_rate"] == 0.0 and ignored["member:blind"]["ignored_rate"] == 1.0
    assert e.summary["skipped_text_only"] == ["text-only"] and e.summary["generations"] == 2 * 3 * 2
    f = e.frame.set_index(["item_id", "member"])
    assert not f["same_without_image"].xs("member:sees", level=1).any()  # "none" without the image
    assert not f["same_with_blank"].xs("member:sees", level=1).any()  # another image, another answer
    assert f["ignored"].xs("member:blind", level=1).all()


def test_cost_matched_ablation_splits_the_gain_exactly(remote, tmp_path):
    import workbench as wb
    from workbench.experiments import cost_matched_ablation
    from workbench.experiments.ablation import split_check

    def table(right):  # this member is right on these items, else says 4
        return "table=" + "~~".join(f"Q{i}=>Final answer: {5 if i in right else 4}" for i in range(6))

    pool = [Member(remote(table({0, 1, 2}), name="a")), Member(remote(table({3, 4}), name="b")),
            Member(remote(table({5}), name="c"))]
    ds = Dataset("six", [Item(f"q{i}", f"Q{i}: what is 2+3?", "5", "numeric") for i in range(6)])
    judge = Member(remote("judge_pick=5", name="judge"))
    e = cost_matched_ablation(ds, pool, judge, store=wb.RunStore(tmp_path / "s.sqlite"))
    acc = e.frame.set_index("arm")["accuracy"]
    assert acc["best member alone"] == 0.5 and acc["diverse pool, fused"] == 1.0
    assert acc["3 x best member, fused"] == 0.5  # three identical samples add nothing
    s = e.summary
    assert s["best_member"] == "member:a" and s["total_gain"]["diff"] == 0.5
    assert s["synthesis"]["diff"] == 0.0 and s["diversity"]["diff"] == 0.5 and s["synthesis_share"] == 0.0
    assert s["diversity"]["wins"] == 3 and s["diversity"]["losses"] == 0 and s["diversity"]["mcnemar_p"] == 0.25
    assert split_check(e) == 0.0 and set(e.details["arm"]) == {"diverse", "best samples", "judge samples"}


def test_quantization_panel_audits_what_is_really_4_bit(tmp_path):
    """On the tiny Llama 4: the INT4 arm's experts, shared expert and attention are NF4 and its vision tower is
    not; the third arm's vision tower is NF4 too; the unquantized arm has nothing in 4 bits."""
    from dataclasses import replace as dc_replace

    import workbench as wb
    from workbench.experiments import quantization_panel

    store = wb.RunStore(tmp_path / "s.sqlite")
    e = quantization_panel("tiny-offline", limit=2, max_new_tokens=4, store=store)
    s = e.summary
    assert s["arms"] == ["bfloat16", "INT4", "INT4, vision 4-bit"]
    assert s["four_bit_components"] == {"bfloat16": [], "INT4": ["attention", "experts", "shared_expert"],
                                        "INT4, vision 4-bit": ["attention", "experts", "shared_expert", "vision"]}
    assert s["four_bit_share_of_bytes"]["bfloat16"] == 0.0
    assert s["total_bytes"]["INT4, vision 4-bit"] < s["total_bytes"]["INT4"] < s["total_bytes"]["bfloat16"]
    f = e.frame
    assert list(f["comparison"]) == ["INT4 vs bfloat16", "INT4 vs bfloat16",
                                     "vision 4-bit vs vision 16-bit (both INT4)"]
    assert (f["items"] == 2).all() and ((f["agreement"].isna()) | f["agreement"].between(0, 1)).all()
    text_only = dc_replace(wb.load_registry().models["tiny-offline"], vision=False)
    e2 = quantization_panel(text_only, limit=2, max_new_tokens=4, store=store)
    assert e2.summary["datasets_skipped"] == ["builtin:shapes"] and e2.summary["arms"] == ["bfloat16", "INT4"]


def test_a_judge_that_follows_names_is_caught_by_the_name_probe(remote, dataset):
    # it picks the answer labelled "a" (the first shown when no answer is): names move its pick, letters do not
    judge = Member(remote("judge_pick=label:a", name="name-follower"))
    e = judge_bias_sweep(frame(), judge, dataset=dataset, max_orders=1)
    probe = e.summary["name_probe"]
    assert probe["items"] == 4 and probe["changed_with_true_names"]["rate"] == 0.0
    # i1-i3: under swapped names the answer wearing "a" is member c; i4 has no member a (it failed) to follow
    assert probe["changed_with_swapped_names"]["rate"] == 0.75 and probe["followed_the_name"]["rate"] == 0.75
    names = e.details if e.details is not None else None
    assert names is not None and "self_preference" not in e.summary  # the judge is no member here


def test_self_preference_counts_wins_while_wrong():
    from workbench.experiments.bias import _self_preference
    from workbench.experiments.common import member_table

    verdicts = pd.DataFrame([dict(item_id=i, order=[0, 1, 2], valid=True, winner=w, n=3)
                             for i, w in (("i1", 2), ("i2", 2), ("i3", 2), ("i4", 1))])
    s = _self_preference(verdicts, 2, member_table(frame()))
    # member c (index 2) won 3 of 4; it was wrong with another right on i1, i2, i3 (won all three) but not i4
    assert s["win_rate"] == 0.75 and s["expected"] == 1 / 3
    assert s["verdicts_where_it_was_wrong"] == 3 and s["won_while_wrong"] == 1.0


def test_debate_vs_vote_leaves_out_an_unscorable_vote_read_back_as_nan():
    """A frame read back from CSV holds NaN where an answer could not be scored; bool(nan) is True."""
    df = frame()
    df["correct"] = df["correct"].astype(object)
    df.loc[(df["item_id"] == "i3") & (df["system"] == "fusion:vote"), "correct"] = float("nan")
    s = debate_vs_vote(df).summary
    assert s["items"] == 3  # i3 left out, not counted as a right vote
    assert s["vote_round1_accuracy"] == pytest.approx(2 / 3) and s["debate_accuracy"] == 1.0  # i1, i2, i4
