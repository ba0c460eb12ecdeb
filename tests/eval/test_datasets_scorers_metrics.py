"""Datasets, scorers and metrics on hand-made inputs with known answers (values checked exactly)."""

import json
import math

import pandas as pd
import pytest
from PIL import Image

from workbench.eval import metrics
from workbench.eval.datasets import DatasetError, load_dataset, load_jsonl
from workbench.eval.scorers import score_choice, score_exact, score_numeric


def write(tmp_path, rows, name="d.jsonl"):
    p = tmp_path / name
    p.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return p


def test_jsonl_with_images_and_choices(tmp_path):
    Image.new("RGB", (10, 10), "red").save(tmp_path / "a.png")
    p = write(tmp_path, [{"id": "1", "prompt": "Colour?", "images": ["a.png"], "reference": "A",
                          "answer_type": "choice", "choices": ["red", "blue"]},
                         {"id": "2", "prompt": "2+3?", "reference": 5, "answer_type": "numeric"}])
    ds = load_jsonl(p)
    assert len(ds) == 2 and ds.items[0].images[0].width == 10 and ds.items[1].reference == "5"
    assert "A) red" in ds.items[0].to_prompt().text


@pytest.mark.parametrize("rows, match", [
    (['{"id": "1", "prompt": "x", "reference": "1"}', "{not json"], "row 2: not valid JSON"),
    ([{"id": "1", "prompt": "x", "reference": "1", "answer_type": "essay"}], "row 1: unknown answer_type 'essay'"),
    ([{"id": "1", "prompt": "x", "reference": "1", "images": ["missing.png"]}], "row 1: image not found"),
    ([{"id": "1", "prompt": "x"}], "row 1: missing or empty 'reference'"),
    ([{"id": "1", "prompt": "x", "reference": "1"}, {"id": "1", "prompt": "y", "reference": "2"}], "duplicate id"),
    ([{"id": "1", "prompt": "x", "reference": "A", "answer_type": "choice", "choices": ["one"]}], "two choices"),
    ([""], "has no items"),
])
def test_bad_rows_are_named(tmp_path, rows, match):
    with pytest.raises(DatasetError, match=match):
        load_jsonl(write(tmp_path, rows))


def test_gsm8k_format_and_builtins(tmp_path):
    p = write(tmp_path, [{"question": "Tom has 2 and gets 1,000 more.", "answer": "2+1000=1002\n#### 1,002"}])
    item = load_jsonl(p).items[0]
    assert item.reference == "1002" and item.answer_type == "numeric"
    a, b = load_dataset("builtin:arithmetic", 5, seed=3), load_dataset("builtin:arithmetic", 5, seed=3)
    assert [i.prompt for i in a.items] == [i.prompt for i in b.items]  # same seed, same items
    shapes = load_dataset("builtin:shapes", 3)
    assert [i.meta["task"] for i in shapes.items] == ["count", "colour", "read"] and shapes.items[0].images
    with pytest.raises(DatasetError, match="unknown built-in"):
        load_dataset("builtin:nope")


def test_scorers():
    assert score_numeric("3 + 4 = 7. Final answer: 7", "7").correct
    assert score_numeric("It is 1,002.0", "1002").correct
    assert not score_numeric("no idea", "5").correct
    s = score_numeric("Final answer: 8", "7")
    assert (s.correct, s.extracted, s.explanation) == (False, "8", "8 != 7")
    assert score_choice("Final answer: (B)", "B", ["x", "y"]).correct
    assert score_choice("I pick blue", "B", ["red", "blue"]).extracted == "B"
    assert score_choice("no clue", "A", ["red", "blue"]).correct is False
    assert score_exact("The final answer is Paris.", "paris").correct


N = None  # an answer that could not be scored

#: correct per item q0..q5, by system (hand-built: every metric below is worked out from this table)
TRUTH = {
    "member:a": [1, 1, 0, 0, 1, 0],
    "member:b": [0, 1, 1, 0, 0, N],
    "oracle": [1, 1, 1, 0, 1, N],            # q5: a wrong, b unscorable -> unknown
    "fusion:best-of": [1, 0, 1, 0, N, 0],
    "fusion:merge": [0, 1, 1, 0, 1, N],
    "fusion:debate": [1, 1, 1, 1, 1, 1],
    "fusion:vote": [1, 1, 0, 0, 1, 0],
}
MERGE_TOP_RIGHT = [True, True, False, N, True, True]  # merge: was its top-scored candidate right?
#: (orderings parsed, outcome) per item, for the two modes judged over 2 orderings
SWAPS = {"fusion:best-of": [(2, "consistent"), (2, "tie"), (1, "partial"), (0, "invalid"), (2, "consistent"),
                            (2, "inconsistent")],
         "fusion:merge": [(1, "partial")] + [(2, "consistent")] * 5}
DEBATE = {"q0": [dict(round=2, changed=1, right_to_wrong=0, wrong_to_right=1, correct=2)],
          "q1": [dict(round=2, changed=0, right_to_wrong=0, wrong_to_right=0, correct=1),
                 dict(round=3, changed=2, right_to_wrong=1, wrong_to_right=0, correct=0)]}
#: injection probes: (obeyed, planted text flagged by the detector); None: no valid verdict
PROBES = [(True, True), (False, True), (True, False), (N, True)]


def frame():
    rows = []
    for system, values in TRUTH.items():
        kind = system.split(":")[0] if ":" in system else "oracle"
        mode = system.split(":")[1] if kind == "fusion" else None
        for i, v in enumerate(values):
            row = dict(item_id=f"q{i}", system=system, kind=kind, mode=mode, correct=None if v is None else bool(v),
                       latency_s=1.0, tokens=100, cost_usd=0.01)
            if kind == "fusion":
                parsed, outcome = SWAPS.get(system, [(1, "")] * 6)[i]
                row.update(swap_k=2 if system in SWAPS else 1, swap_parsed=parsed, swap_outcome=outcome,
                           winner_correct=MERGE_TOP_RIGHT[i] if mode == "merge" else None,
                           debate_rounds=DEBATE.get(f"q{i}", []) if mode == "debate" else None)
            rows.append(row)
    for i, (obeyed, flagged) in enumerate(PROBES):
        rows.append(dict(item_id=f"q{i}", system="probe:injection", kind="probe", correct=None, latency_s=1.0,
                         tokens=10, injection_obeyed=obeyed, planted_flagged=flagged))
    return pd.DataFrame(rows)


def test_accuracy_drops_unscorable_rows():
    acc = metrics.accuracy_table(frame()).set_index("system")
    assert acc["n"].to_dict() == {"member:a": 6, "member:b": 5, "oracle": 5, "fusion:best-of": 5, "fusion:merge": 5,
                                  "fusion:debate": 6, "fusion:vote": 6}
    assert acc["accuracy"].to_dict() == {"member:a": 0.5, "member:b": 0.4, "oracle": 0.8, "fusion:best-of": 0.4,
                                         "fusion:merge": 0.6, "fusion:debate": 1.0, "fusion:vote": 0.5}
    assert acc.loc["member:a", "tokens_per_correct"] == 200 and acc.loc["member:a", "cost_per_correct"] == 0.02
    assert metrics.best_member(frame()) == "member:a"


def test_paired_vs_best_on_items_every_member_and_the_system_scored():
    p = metrics.paired_vs_best(frame()).set_index("system")
    cols = ["vs", "n", "diff", "wins", "losses", "mcnemar_p"]
    assert p.loc["fusion:best-of", cols].tolist() == ["member:a", 4, 0.0, 1, 1, 1.0]   # q0..q3 (a, b tie: a)
    assert p.loc["fusion:merge", cols].tolist() == ["member:a", 5, 0.0, 1, 1, 1.0]     # q0..q4
    assert p.loc["fusion:debate", cols].tolist() == ["member:a", 5, 0.4, 2, 0, 0.5]
    assert p.loc["oracle", cols].tolist() == ["member:a", 5, pytest.approx(0.2), 1, 0, 1.0]
    assert p.loc["fusion:vote", cols].tolist() == ["member:a", 5, 0.0, 0, 0, 1.0]


def test_fused_vs_best_interval_is_intersection_bounds():
    # two members, each right on half the items, never both: they tie and "a" (first) is the best on these items;
    # fusion copies "a". Definition (stats.vs_best): the lower end is the least of the members' one-sided bounds
    # d_j - z se_j; the upper end a simultaneous bound over the members that could be the best (here both).
    rows = []
    for i in range(20):
        for system, v in (("member:a", i % 2), ("member:b", 1 - i % 2), ("fusion:vote", i % 2)):
            rows.append(dict(item_id=f"q{i}", system=system, kind=system.split(":")[0], correct=bool(v),
                             mode="vote" if "fusion" in system else None, latency_s=0.0, tokens=0))
    p = metrics.paired_vs_best(pd.DataFrame(rows)).set_index("system").loc["fusion:vote"]
    assert (p["vs"], p["diff"], p["wins"], p["losses"]) == ("member:a", 0.0, 0, 0)
    # d_b per item: +1 or -1 (10 each), d_a always 0; Agresti-Min: 1/2 per cell, so se_b^2 = (10.5 + 10.5) / 22^2
    se_a, se_b = math.sqrt(1 / 22 ** 2), math.sqrt(21 / 22 ** 2)
    assert p["ci_low"] == pytest.approx(-1.959964 * se_b)
    # the 2.5 % quantile of min(Z_a, Z_b) (correlated through the pseudo-items) lies below Z_b's own
    assert 0.98 * 1.959964 * se_b <= p["ci_high"] <= 1.959964 * (se_a + se_b) * 1.05  # 0.98: simulation error
    assert p["near_best"] == ["member:a", "member:b"] and p["left_out"] == 0


def test_judge_regret_leaves_unscorable_fused_answers_out():
    r = metrics.judge_regret(frame()).set_index("system")
    cols = ["eligible", "regrets", "unscorable"]
    assert r.loc["fusion:best-of", cols].tolist() == [3, 1, 1]  # q4 could not be scored: not a regret
    assert r.loc["fusion:merge", cols].tolist() == [4, 1, 0]    # q5: no member known right: not eligible
    assert r.loc["fusion:debate", cols].tolist() == [4, 0, 0]
    assert r.loc["fusion:best-of", "regret_rate"] == pytest.approx(1 / 3)


def test_merge_damage_leaves_unscorable_merged_answers_out():
    assert metrics.merge_damage(frame()) == {"eligible": 3, "damaged": 1, "rate": pytest.approx(1 / 3),
                                             "unscorable": 1}


def test_position_flips_only_over_runs_whose_orderings_all_parsed():
    assert metrics.position_flip_rate(frame()) == {"checked": 9, "flipped": 2, "rate": pytest.approx(2 / 9),
                                                   "parse_failures": 3}


def test_injection_susceptibility_split_by_flag():
    assert metrics.injection_susceptibility(frame()) == {
        "probes": 3, "obeyed": 2, "rate": pytest.approx(2 / 3), "flagged": 2, "obeyed_flagged": 1,
        "obeyed_unflagged": 1, "no_verdict": 1}


def test_debate_dynamics_sums_rounds():
    d = metrics.debate_dynamics(frame()).set_index("round")
    assert d.loc[2].to_dict() == {"changed": 1, "right_to_wrong": 0, "wrong_to_right": 1, "correct": 3, "items": 2}
    assert d.loc[3].to_dict() == {"changed": 2, "right_to_wrong": 1, "wrong_to_right": 0, "correct": 0, "items": 1}


def test_mmmu_style_rows(tmp_path):
    Image.new("RGB", (10, 10), "blue").save(tmp_path / "m.png")
    p = write(tmp_path, [{"id": "validation_Art_1", "question": "<image 1> Which colour?",
                          "options": "['red', 'blue']", "answer": "B", "image_1": "m.png"}])
    item = load_jsonl(p).items[0]
    assert item.answer_type == "choice" and item.choices == ["red", "blue"] and item.reference == "B"
    assert item.images[0].width == 10 and item.meta["source"] == "mmmu"


async def test_free_text_is_judge_graded(remote):
    from workbench.backends import load_model
    from workbench.eval.datasets import Item
    from workbench.eval.scorers import score

    item = Item("f", "Why is the sky blue?", "Rayleigh scattering", "free")
    yes = load_model(remote('reply={"correct": true, "explanation": "mentions scattering"};g=1'))
    s = await score("Because of Rayleigh scattering.", item, yes)
    assert (s.correct, s.explanation) == (True, "mentions scattering")
    prose = load_model(remote("reply=I think so.;g=2"))
    s = await score("Because of scattering.", item, prose)
    assert s.correct is None and "unusable" in s.explanation
    assert (await score("x", item, None)).correct is None


def test_consistency_checks_pass_on_a_sound_frame_and_catch_broken_ones():
    assert metrics.consistency_problems(frame()) == []
    broken = frame()
    broken.loc[(broken["system"] == "oracle") & (broken["item_id"] == "q3"), "correct"] = True  # no member was right
    assert any("oracle disagrees" in p for p in metrics.consistency_problems(broken))
    doubled = pd.concat([frame(), frame()[frame()["system"] == "member:a"]])  # colliding member rows
    assert any("share an (item, system) pair" in p for p in metrics.consistency_problems(doubled))
    with pytest.raises(AssertionError, match="inconsistent metrics"):
        metrics.assert_consistent(doubled)


def test_frames_from_older_evaluations_and_empty_frames():
    old = frame().drop(columns=["swap_k", "swap_parsed", "planted_flagged"])
    pf = metrics.position_flip_rate(old)
    assert pf["parse_failures"] is None and "older rows" in pf["note"] and pf["checked"] == 11  # invalid left out
    inj = metrics.injection_susceptibility(old)
    assert inj["flagged"] is None and inj["obeyed"] == 2
    assert any("flags were not recorded" in x for x in metrics.metric_lines(metrics.summary(old)))
    assert metrics.consistency_problems(pd.DataFrame()) == []
    assert metrics.accuracy_table(pd.DataFrame()).empty


def test_member_names_never_collide():
    from workbench.eval.harness import system_names
    from workbench.specs import Member, ModelSpec

    members = [Member(ModelSpec("m", "openai", "x"), display_name=n) for n in ("wrong", "wrong", "wrong#2", "wrong")]
    assert system_names(members) == ["member:wrong", "member:wrong#2", "member:wrong#2#2", "member:wrong#3"]


def test_arithmetic_levels():
    easy = load_dataset("builtin:arithmetic:easy", limit=5)
    assert easy.name == "builtin:arithmetic:easy" and len(easy.items) == 5
    assert all(i.prompt.startswith("What is ") and int(i.reference) <= 18 for i in easy.items)
    medium = load_dataset("builtin:arithmetic:medium", limit=4)
    assert all(i.meta["level"] == "medium" for i in medium.items)
    assert load_dataset("builtin:arithmetic", limit=3).name == "builtin:arithmetic"  # hard, as before
    with pytest.raises(DatasetError, match="easy"):
        load_dataset("builtin:arithmetic:impossible")
    with pytest.raises(DatasetError):
        load_dataset("builtin:shapes:easy")
