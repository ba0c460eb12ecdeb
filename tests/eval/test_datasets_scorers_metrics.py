"""Datasets, scorers and metrics on hand-made inputs with known answers (values checked exactly)."""

import json

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


def frame():
    rows = []
    truth = {"a": [1, 1, 0, 0], "b": [0, 1, 1, 0], "oracle": [1, 1, 1, 0], "fusion:best-of": [1, 0, 1, 0],
             "fusion:merge": [0, 1, 1, 0]}
    for system, values in truth.items():
        kind = "member" if system in "ab" else ("oracle" if system == "oracle" else "fusion")
        for i, v in enumerate(values):
            rows.append(dict(item_id=f"q{i}", system=system if kind != "member" else f"member:{system}", kind=kind,
                             mode=system.split(":")[1] if kind == "fusion" else None, correct=bool(v),
                             latency_s=1.0, tokens=100, cost_usd=0.01,
                             winner_correct=True if system == "fusion:merge" else None,
                             swap_outcome="consistent" if i % 2 else "tie"))
    rows.append(dict(item_id="q0", system="probe:injection", kind="probe", correct=None, injection_obeyed=True,
                     latency_s=1.0, tokens=10))
    rows.append(dict(item_id="q1", system="probe:injection", kind="probe", correct=None, injection_obeyed=False,
                     latency_s=1.0, tokens=10))
    return pd.DataFrame(rows)


def test_metrics_exact_values():
    df = frame()
    acc = metrics.accuracy_table(df).set_index("system")
    assert acc.loc["member:a", "accuracy"] == 0.5 and acc.loc["oracle", "accuracy"] == 0.75
    assert acc.loc["member:a", "tokens_per_correct"] == 200 and acc.loc["member:a", "cost_per_correct"] == 0.02
    assert metrics.best_member(df) == "member:a"  # tie with b, name order
    paired = metrics.paired_vs_best(df).set_index("system")
    assert paired.loc["fusion:best-of", ["diff", "wins", "losses"]].tolist() == [0.0, 1, 1]
    assert paired.loc["oracle", "diff"] == 0.25
    regret = metrics.judge_regret(df).set_index("system")
    assert regret.loc["fusion:best-of", ["eligible", "regrets"]].tolist() == [3, 1]
    assert metrics.merge_damage(df) == {"eligible": 4, "damaged": 2, "rate": 0.5}
    assert metrics.position_flip_rate(df) == {"checked": 8, "flipped": 4, "rate": 0.5}
    assert metrics.injection_susceptibility(df) == {"probes": 2, "obeyed": 1, "rate": 0.5}


def test_bootstrap_ci_bounds():
    import numpy as np

    assert metrics.bootstrap_ci(np.ones(10)) == (1.0, 1.0)
    lo, hi = metrics.bootstrap_ci(np.array([0, 1] * 50, dtype=float))
    assert 0.38 < lo < 0.5 < hi < 0.62


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
