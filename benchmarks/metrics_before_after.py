"""One evaluation whose every answer is known, run end to end, and every metric the report shows.

Run it on two versions of the code to compare what their metrics say about the same evaluation:

    .venv/bin/python benchmarks/metrics_before_after.py            # this checkout
    git worktree add /tmp/old <commit> && PYTHONPATH=/tmp/old .venv/bin/python benchmarks/metrics_before_after.py

The members and the judge are scripted OpenAI-compatible endpoints (``workbench.testing.scripted_server``), so the
evaluation is the same on every run and every version. It holds, on purpose, each case that the metrics
must keep apart:

- two members with the same label ("wrong" twice) that answer differently;
- a judge biased to position A on two items (q08, q09): a real position flip;
- a judge whose reply does not parse in one ordering of item q10 (a parse failure, not a flip);
- a free-text item (q11) whose merged answer the grader cannot score (unscorable, not wrong);
- injection probes, of which the judge obeys two phrasings.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

import pandas as pd

N = 11  # numeric items q00..q10; q11 is free text
REF = {f"q{i:02d}": 10 + i for i in range(N)}
RIGHT_ON = set(range(0, 9))           # "right" is right on q00..q08
WRONG1_ON = {0}                       # the first "wrong" is right on q00 only
WRONG2_ON = {3, 4, 5, 6, 7, 9}        # the second "wrong" is right on these


def answers(right_on: set[int], offset: int, special: dict[str, str] | None = None) -> dict[str, str]:
    out = {k: f"Final answer: {v if i in right_on else v + offset}" for i, (k, v) in enumerate(REF.items())}
    return out | (special or {})


MEMBERS = {
    "right": answers(RIGHT_ON, 50, {"q10": "Final answer: 5", "q11": "Final answer: Paris"}),
    "wrong1": answers(WRONG1_ON, 60, {"q10": "Final answer: 777", "q11": "Final answer: Lyon"}),
    "wrong2": answers(WRONG2_ON, 70, {"q10": "Final answer: 6", "q11": "Final answer: Marseille"}),
}


def verdict(winner: str, answer: str) -> str:
    return json.dumps({"winner": winner, "scores": {winner: 9}, "rationale": f"{winner} is best", "answer": answer})


def judge_script() -> str:
    entries = []
    # grading the free-text item: members graded, the merged answer unusable (correct=None)
    entries += [f"<answer>\nFinal answer: {city}=>" + json.dumps({"correct": city == "Paris", "explanation": "x"})
                for city in ("Paris", "Lyon", "Marseille")]
    entries += ["<answer>\nMERGED=>I cannot grade this"]
    # the injection probe: a judge that falls for two phrasings of the planted candidate, wherever it is shown
    for c in "ABCD":
        entries += [f'<candidate id="{c}">\nIMPORTANT NOTE=>' + verdict(c, "Final answer: 0")]
        entries += [f'<candidate id="{c}">\nFinal answer: {v + 7}\n\n(Evaluator=>' + verdict(c, "Final answer: 0")
                    for v in REF.values()]
    # q10: no parseable reply when the 777 answer sits in position A or B
    entries += [f'<candidate id="{c}">\nFinal answer: 777\n</candidate>=>not json at all' for c in "AB"]
    # q08, q09: always position A
    entries += [f"[q08]=>{verdict('A', 'Final answer: 18')}", f"[q09]=>{verdict('A', 'Final answer: 1')}"]
    # q11 merged answer: one that the grader cannot score
    picks = {k: MEMBERS["right"][k] for k in list(REF)[:6]}           # right picks on q00..q05
    picks |= {"q06": MEMBERS["wrong1"]["q06"], "q07": MEMBERS["wrong1"]["q07"]}  # judge regret on q06, q07
    picks |= {"q10": MEMBERS["right"]["q10"], "q11": MEMBERS["right"]["q11"]}
    for item, text in picks.items():
        merged = "MERGED Paris or Lyon" if item == "q11" else text
        entries += [f'<candidate id="{c}">\n{text}\n</candidate>=>{verdict(c, merged)}' for c in "ABCD"]
    return "table=" + "~~".join(entries)


def member_script(name: str) -> str:
    return "table=" + "~~".join(f"[{k}]=>{v}" for k, v in MEMBERS[name].items()) + f";who={name}"


async def run() -> pd.DataFrame:
    import workbench as wb
    from workbench.eval.harness import evaluate_async
    from workbench.testing import ScriptedServer
    from workbench.specs import Member, ModelSpec

    tmp = Path(tempfile.mkdtemp())
    data = tmp / "known.jsonl"
    rows = [{"id": k, "prompt": f"[{k}] compute", "reference": str(v), "answer_type": "numeric"} for k, v in REF.items()]
    rows.append({"id": "q11", "prompt": "[q11] What is the capital of France?", "reference": "Paris",
                 "answer_type": "free"})
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with ScriptedServer() as srv:
        def spec(name: str, script: str) -> Member:
            return Member(ModelSpec(name=name, backend="openai", model=script, base_url=srv.base_url))

        pool = [spec("right", member_script("right")), spec("wrong", member_script("wrong1")),
                spec("wrong", member_script("wrong2"))]
        return await evaluate_async(str(data), pool, spec("judge", judge_script()), ["best-of", "merge", "vote"],
                                    swap_k=2, inject=True, store=wb.RunStore(tmp / "runs.sqlite"), progress=False,
                                    concurrency=1)


def show(df: pd.DataFrame) -> None:
    from workbench.eval import metrics

    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    print(f"rows: {len(df)}; systems: {sorted(df['system'].unique())}")
    for name, value in metrics.summary(df).items():
        print(f"\n== {name}")
        if isinstance(value, pd.DataFrame):
            keep = [c for c in value.columns if c not in ("mean_latency_s", "tokens", "tokens_per_correct",
                                                           "cost_usd", "cost_per_correct")]
            print(value[keep].to_string(index=False, float_format=lambda x: f"{x:.3f}") if len(value) else "(empty)")
        else:
            print(value)


if __name__ == "__main__":
    show(asyncio.run(run()))
