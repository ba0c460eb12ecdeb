"""Instruments that read an evaluation frame only (no generation, no judge call): debate against a vote over
the same first-round answers, and agreement-gated fusion."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .common import Experiment, mean_ci, member_table, paired, scored


def _system(df: pd.DataFrame, system: str) -> pd.DataFrame:
    rows = df[df["system"] == system]
    if rows.empty:
        raise ConfigError(f"the evaluation has no {system} rows: run it with that mode "
                          f"(wb.evaluate(..., modes=[...]) or workbench eval --modes)")
    return rows.set_index("item_id")


def debate_vs_vote(df: pd.DataFrame) -> Experiment:
    """Does debate beat a majority vote over the answers it started from? ("Debate or Vote", 2025)

    Per round: the members' accuracy, answers changed, right->wrong and wrong->right flips (round 1 from the
    member rows; later rounds from the debate rows' transcript statistics). Then, on the items where both were
    scored, debate's final accuracy against the vote over round-1 answers: paired difference with an Agresti-Min
    interval and the exact McNemar p-value.
    """
    import plotly.graph_objects as go

    debate, vote = _system(df, "fusion:debate"), _system(df, "fusion:vote")
    members = member_table(df)
    n_members = members["system"].nunique()
    items = [i for i in debate.index if i in vote.index and scored(debate.at[i, "correct"])
             and scored(vote.at[i, "correct"])]
    rows = [dict(round=1, member_accuracy=members[members["item_id"].isin(items)]["correct"].mean(),
                 changed=0, right_to_wrong=0, wrong_to_right=0, items=len(items))]
    per: dict[int, dict] = {}
    for item in items:
        for stats in debate.at[item, "debate_rounds"] or []:
            agg = per.setdefault(stats["round"], dict(correct=0, changed=0, right_to_wrong=0, wrong_to_right=0,
                                                      items=0))
            for k in ("correct", "changed", "right_to_wrong", "wrong_to_right"):
                agg[k] += stats[k]
            agg["items"] += 1
    for r in sorted(per):
        a = per[r]
        rows.append(dict(round=r, member_accuracy=a["correct"] / (a["items"] * n_members) if a["items"] else np.nan,
                         changed=a["changed"], right_to_wrong=a["right_to_wrong"],
                         wrong_to_right=a["wrong_to_right"], items=a["items"]))
    frame = pd.DataFrame(rows)
    d = np.array([bool(debate.at[i, "correct"]) for i in items], dtype=float)
    v = np.array([bool(vote.at[i, "correct"]) for i in items], dtype=float)
    cmp = paired(d, v)
    summary = dict(items=len(items), debate_accuracy=float(d.mean()) if items else float("nan"),
                   vote_round1_accuracy=float(v.mean()) if items else float("nan"),
                   debate_minus_vote=cmp, flips_right_to_wrong=int(frame["right_to_wrong"].sum()),
                   flips_wrong_to_right=int(frame["wrong_to_right"].sum()))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=frame["round"], y=frame["member_accuracy"], mode="lines+markers",
                             name="members' accuracy in the round"))
    fig.add_hline(y=summary["vote_round1_accuracy"], line_dash="dot", annotation_text="vote over round 1")
    fig.add_hline(y=summary["debate_accuracy"], line_dash="dash", annotation_text="debate (judged)")
    fig.add_trace(go.Bar(x=frame["round"], y=frame["wrong_to_right"], name="wrong -> right", yaxis="y2",
                         opacity=0.4))
    fig.add_trace(go.Bar(x=frame["round"], y=-frame["right_to_wrong"], name="right -> wrong", yaxis="y2",
                         opacity=0.4))
    fig.update_layout(title=f"Debate vs vote: {summary['debate_accuracy']:.2f} vs "
                            f"{summary['vote_round1_accuracy']:.2f} on {len(items)} items",
                      xaxis_title="round", yaxis_title="accuracy", yaxis_range=[0, 1.05],
                      yaxis2=dict(overlaying="y", side="right", title="flips"), barmode="relative")
    return Experiment("debate_vs_vote", frame, fig, summary)


def agreement_gate(df: pd.DataFrame, mode: str = "best-of") -> Experiment:
    """Skip the judge when k of the n members give the same (normalised) answer, for every k.

    At threshold k an item whose most common member answer has at least k votes takes that answer with no judge
    call (tokens: the members'; latency: the slowest member's); other items take the fused row of ``mode``
    (members and judge). Answers are keyed as the vote mode keys them (``member_table``). Items whose fused answer
    or whose most common member answer could not be scored are left out at every k (as ``accuracy_table`` leaves
    out an unscorable answer, never counted as wrong) and counted in ``summary["left_out"]``. k = n + 1 never skips (the judged baseline). Each k reports accuracy with a CI, mean
    tokens and latency, how many items skipped the judge, and the paired difference against the baseline.
    The figure is accuracy against mean tokens, the Pareto front marked.
    """
    import plotly.graph_objects as go

    fused = _system(df, f"fusion:{mode}")
    members = member_table(df)
    n = members["system"].nunique()
    items = [i for i in fused.index if i in set(members["item_id"])]
    per_item, fused_unscorable, gated_unscorable = [], 0, 0
    for item in items:
        g = members[members["item_id"] == item]
        answers = [k for k, ok in zip(g["key"], g["ok"]) if ok and k]
        top_key, top = Counter(answers).most_common(1)[0] if answers else ("", 0)
        f = fused.loc[item]
        if not scored(f["correct"]):  # left out, as the accuracy table leaves it out: not counted as wrong
            fused_unscorable += 1
            continue
        gated = g[(g["key"] == top_key) & g["scored"]] if top_key else g.iloc[:0]
        if top_key and gated.empty:  # the agreed answer could not be scored: no verdict at any k that skips
            gated_unscorable += 1
            continue
        per_item.append(dict(item_id=item, top=top, gated_correct=bool(gated["correct"].any()),
                             member_tokens=float(g["tokens"].sum()), member_latency=float(g["latency_s"].max()),
                             fused_correct=bool(f["correct"]), fused_tokens=float(f["tokens"]),
                             fused_latency=float(f["latency_s"])))
    p = pd.DataFrame(per_item)
    rows = []
    base = p["fused_correct"].to_numpy(dtype=float) if len(p) else np.array([])
    for k in range(1, n + 2):
        skip = (p["top"] >= k).to_numpy() if len(p) else np.array([], dtype=bool)
        correct = np.where(skip, p["gated_correct"], p["fused_correct"]).astype(float) if len(p) else np.array([])
        tokens = np.where(skip, p["member_tokens"], p["fused_tokens"]) if len(p) else np.array([])
        latency = np.where(skip, p["member_latency"], p["fused_latency"]) if len(p) else np.array([])
        acc, lo, hi = mean_ci(correct)
        cmp = paired(correct, base)
        rows.append(dict(threshold=k, label=f"{k} of {n}" if k <= n else "never skip", accuracy=acc, ci_low=lo,
                         ci_high=hi, mean_tokens=float(tokens.mean()) if len(tokens) else np.nan,
                         mean_latency_s=float(latency.mean()) if len(latency) else np.nan,
                         judge_skipped=int(skip.sum()), items=len(p), diff_vs_judged=cmp["diff"],
                         diff_ci_low=cmp["ci_low"], diff_ci_high=cmp["ci_high"],
                         mcnemar_p=cmp.get("mcnemar_p", np.nan)))
    frame = pd.DataFrame(rows)
    frame["pareto"] = [not any((o.accuracy >= r.accuracy and o.mean_tokens <= r.mean_tokens)
                               and (o.accuracy > r.accuracy or o.mean_tokens < r.mean_tokens)
                               for o in frame.itertuples()) for r in frame.itertuples()]
    fig = go.Figure(go.Scatter(x=frame["mean_tokens"], y=frame["accuracy"], mode="markers+text",
                               text=frame["label"], textposition="top center",
                               marker=dict(size=[14 if x else 8 for x in frame["pareto"]],
                                           color=["#4c78a8" if x else "#bab0ac" for x in frame["pareto"]]),
                               error_y=dict(type="data", symmetric=False,
                                            array=frame["ci_high"] - frame["accuracy"],
                                            arrayminus=frame["accuracy"] - frame["ci_low"])))
    fig.update_layout(title=f"Agreement-gated {mode}: accuracy vs tokens (Pareto front in blue)",
                      xaxis_title="mean tokens per item", yaxis_title="accuracy")
    best = frame[frame["pareto"]].sort_values("mean_tokens")
    summary = dict(items=len(p), members=n, judged_accuracy=float(base.mean()) if len(base) else float("nan"),
                   pareto_thresholds=list(best["label"]),
                   left_out=dict(fused_unscorable=fused_unscorable, agreed_answer_unscorable=gated_unscorable))
    return Experiment("agreement_gate", frame, fig, summary)
