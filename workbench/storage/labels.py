"""The researcher as a judge: labels stored with runs, and how often the model judge agrees with them.

A label (``RunStore.set_label``) names the best member answer of a run (pool index, or ``NONE_STANDS_OUT``) and rates the fused answer against it: better, same or worse. ``agreement`` reports what MT-Bench
reports for its judges: the share of runs where the judge picked the answer the human picked, with a
95 % interval (Wilson score), beside what picking at random would agree (1 / members), per judge model; and
how the fused answers were rated, each share with its interval. ``blind_order`` is the arena-style order in
which a labelling queue shows a run's answers (random, fixed per run and labeller, names hidden).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from ..records import FusionResult
from ..stats import wilson

RATINGS = ("better", "same", "worse")
NONE_STANDS_OUT = -1  #: a label's best member when no answer is better than the others


def judge_pick(result: FusionResult) -> int | None:
    """The member answer the run's judge (or vote) chose: the verdict's winner, else the single top score
    (merge scores every answer); None when nothing was chosen."""
    v = result.verdict
    if v is None:
        return None
    if v.winner is not None:
        return v.winner
    if v.scores:
        top = max(v.scores.values())
        best = [m for m, s in v.scores.items() if s == top]
        return best[0] if len(best) == 1 else None
    return None


def judge_name(result: FusionResult) -> str:
    """Who decided the run: the judge's label, or "vote"."""
    if result.judge:
        return result.judge.get("label") or result.judge.get("model", {}).get("name", "judge")
    return "vote" if result.mode == "vote" else "none"


def blind_order(run_id: str, n: int, salt: str = "") -> list[int]:
    """The positions 0..n-1 in the order a labelling queue shows them (the same for one run and labeller)."""
    order = list(range(n))
    random.Random(f"{run_id}|{salt}").shuffle(order)
    return order


def agreement(labelled: Iterable[tuple[FusionResult, dict[str, Any]]]) -> dict[str, Any]:
    """Judge-human agreement over labelled runs (``RunStore.labelled_runs``).

    Returns a dict: ``labelled`` runs; ``compared`` (the human named a best answer and the judge chose one),
    ``agree``, ``rate``, ``ci`` (Wilson 95 %), ``chance`` (mean of 1/members: a judge picking at random);
    ``skipped`` (why the other runs were not compared); ``by_judge`` (the same per judge); ``by_view``: the
    same for blind labels and for labels made seeing names and the judge's pick; ``fused``: the
    ratings of the fused answer (count, share and interval of each of better / same / worse)."""
    labelled = list(labelled)
    rows = []
    skipped: dict[str, int] = defaultdict(int)
    ratings: dict[str, int] = {r: 0 for r in RATINGS}
    for result, label in labelled:
        if label.get("fused") in ratings:
            ratings[label["fused"]] += 1
        human = label.get("best_member")
        pick = judge_pick(result)
        n_ok = sum(o.ok for o in result.outputs)
        if human is None:
            skipped["you picked no answer"] += 1
        elif human == NONE_STANDS_OUT:
            skipped["no answer stood out to you"] += 1
        elif pick is None:
            skipped["the judge chose no single answer"] += 1
        elif n_ok < 2:
            skipped["fewer than two answers"] += 1
        else:
            rows.append((judge_name(result), pick == human, 1 / max(2, n_ok), bool(label.get("blind"))))

    def block(rs) -> dict[str, Any]:
        k, n = sum(r[1] for r in rs), len(rs)
        lo, hi = wilson(k, n)
        return {"compared": n, "agree": k, "rate": k / n if n else float("nan"), "ci": (lo, hi),
                "chance": sum(r[2] for r in rs) / n if n else float("nan")}

    by_judge: dict[str, list] = defaultdict(list)
    for r in rows:
        by_judge[r[0]].append(r)
    rated = sum(ratings.values())
    fused = {r: {"count": c, "share": c / rated if rated else float("nan"), "ci": wilson(c, rated)}
             for r, c in ratings.items()}
    # labels made blind (the Label tab) and labels made seeing the names and the judge's pick (under a run)
    by_view = {"blind": block([r for r in rows if r[3]]), "seen": block([r for r in rows if not r[3]])}
    return {"labelled": len(labelled), **block(rows), "skipped": dict(skipped), "by_view": by_view,
            "by_judge": {j: block(rs) for j, rs in sorted(by_judge.items())}, "fused": fused, "rated": rated}


def _pct(x: float) -> str:
    return "–" if x != x else f"{100 * x:.0f}%"


def _agree(b: dict[str, Any]) -> str:
    return f"{b['agree']}/{b['compared']} = {_pct(b['rate'])} (CI {_pct(b['ci'][0])}–{_pct(b['ci'][1])})"


def agreement_markdown(a: dict[str, Any]) -> str:
    """The agreement as a few lines of Markdown for the page (what it says and how sure it is)."""
    if not a["labelled"]:
        return ("**Judge vs you:** no labelled runs yet. Label runs on the **Label** tab (keyboard, answers "
                "blind) or under any run you open; the judge's agreement with you shows here.")
    lines = []
    if a["compared"]:
        lo, hi = a["ci"]
        lines.append(f"**Judge vs you:** the judge picked the answer you picked in **{a['agree']} of "
                     f"{a['compared']}** runs: **{_pct(a['rate'])}** (95% CI {_pct(lo)}–{_pct(hi)}); picking at "
                     f"random would agree {_pct(a['chance'])}."
                     + (" The interval still covers chance: no evidence yet that the judge sees what you see."
                        if lo <= a["chance"] else ""))
        if len(a["by_judge"]) > 1 or (a["by_judge"] and a["compared"] < a["labelled"]):
            for j, b in a["by_judge"].items():
                lines.append(f"- `{j}`: {_agree(b)}; chance {_pct(b['chance'])}")
        bv = a["by_view"]
        if bv["blind"]["compared"] and bv["seen"]["compared"]:
            lines.append("Blind labels (Label tab): " + _agree(bv["blind"]) + "; labels made seeing the names and "
                         "the judge's pick (under a run): " + _agree(bv["seen"]) + " — these can lean toward the judge.")
        elif bv["seen"]["compared"]:
            lines.append("All these labels were made seeing the names and the judge's pick, which can pull them "
                         "toward the judge; the Label tab's blind queue gives the unbiased figure.")
    else:
        lines.append(f"**Judge vs you:** {a['labelled']} labelled run(s), none comparable yet.")
    if a["skipped"]:
        lines.append("Not compared: " + "; ".join(f"{n} ({why})" for why, n in a["skipped"].items()) + ".")
    if a["rated"]:
        f = a["fused"]
        lines.append(f"**Fused answer vs the best member answer** ({a['rated']} rated): "
                     + ", ".join(f"{r} {f[r]['count']} ({_pct(f[r]['share'])}, CI {_pct(f[r]['ci'][0])}–"
                                 f"{_pct(f[r]['ci'][1])})" for r in RATINGS) + ".")
    return "\n\n".join(lines)
