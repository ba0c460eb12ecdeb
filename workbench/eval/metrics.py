"""Metrics over the harness's tidy DataFrame (one row per item x system). Pure functions of the frame."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..fusion.modes import JUDGED_MODES
from ..stats import VS_BEST_METHOD, interval_reading, paired_binary, seed_for, vs_best, wilson


def _graded(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty or "correct" not in df or "kind" not in df:
        return pd.DataFrame(columns=["item_id", "system", "kind", "correct"])
    return df[df["correct"].notna() & (df["kind"] != "probe")]


ACCURACY_COLUMNS = ["system", "kind", "n", "accuracy", "ci_low", "ci_high", "mean_latency_s", "tokens",
                    "tokens_per_correct", "cost_usd", "cost_per_correct", "unscorable"]


def _unscorable_counts(df: pd.DataFrame) -> dict[str, int]:
    """Per system, its rows whose answer could not be scored (``correct`` is None or NaN); probes aside."""
    if df.empty or "correct" not in df or "kind" not in df:
        return {}
    rows = df[df["correct"].isna() & (df["kind"] != "probe")]
    return {str(k): int(v) for k, v in rows.groupby("system", sort=False).size().items()}


def accuracy_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per system: n (its scored items), accuracy with a 95 % Wilson interval, mean latency, tokens and cost per
    correct answer, and ``unscorable``: its answers that could not be scored (left out of n)."""
    rows = []
    unscorable = _unscorable_counts(df)
    for system, g in _graded(df).groupby("system", sort=False):
        correct = g["correct"].astype(bool).to_numpy()
        n_right = int(correct.sum())
        lo, hi = wilson(n_right, len(g))
        cost = g["cost_usd"].dropna() if "cost_usd" in g else pd.Series(dtype=float)
        rows.append(dict(system=system, kind=g["kind"].iloc[0], n=len(g), accuracy=correct.mean(),
                         ci_low=lo, ci_high=hi, mean_latency_s=g["latency_s"].mean(),
                         tokens=int(g["tokens"].sum()),
                         tokens_per_correct=g["tokens"].sum() / n_right if n_right else float("inf"),
                         cost_usd=cost.sum() if len(cost) else None,
                         cost_per_correct=(cost.sum() / n_right if n_right and len(cost) else None),
                         unscorable=unscorable.get(system, 0)))
    return pd.DataFrame(rows, columns=ACCURACY_COLUMNS)  # the columns even with no graded row (0 items)


def best_member(df: pd.DataFrame) -> str | None:
    """The member system with the highest accuracy (ties: the first in name order)."""
    acc = accuracy_table(df)
    members = acc[acc["kind"] == "member"].sort_values(["accuracy", "system"], ascending=[False, True])
    return None if members.empty else str(members.iloc[0]["system"])


def paired_vs_best(df: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Each fusion system (and the oracle) against the best single member, on the items where every member
    and the system were scored.

    ``diff`` is the system's accuracy minus that of the member that scored best on these items (``vs``): choosing
    the best on the items it is compared on flatters it (the winner's curse). The interval (``ci_low``/``ci_high``)
    is for the system minus the truly best member: ``stats.vs_best`` (intersection bounds, ``method``), seeded from
    the items and systems compared, so it does not move when other systems join the frame. ``wins``/``losses``
    are the discordant items against ``vs`` and ``mcnemar_p`` the exact McNemar test on them (against a member
    chosen on these items: read it with the interval). ``near_best``: the members that could be the best.
    ``scored_items``: items where the system was scored; ``left_out``: of those, items left out because some
    member's answer could not be scored, and ``unscorable_members`` which members (and on how many items).
    """
    g = _graded(df)
    wide = g.pivot_table(index="item_id", columns="system", values="correct", aggfunc="first")
    members = sorted(s for s in wide.columns if s.startswith("member:"))
    if not members:
        return pd.DataFrame(columns=PAIRED_COLUMNS)
    all_items = pd.Index(sorted(df["item_id"].unique()))
    scored_members = wide[members].reindex(all_items)
    rows = []
    for system in [s for s in wide.columns if s.startswith("fusion:") or s == "oracle"]:
        sys_scored = wide[system].reindex(all_items).notna()
        missing = scored_members[sys_scored].isna().sum()
        pair = wide[[system] + members].dropna().astype(bool)
        n = len(pair)
        base = dict(system=system, n=n, scored_items=int(sys_scored.sum()), left_out=int(sys_scored.sum()) - n,
                    unscorable_members={m.removeprefix("member:"): int(c) for m, c in missing.items() if c},
                    method=VS_BEST_METHOD)
        if n == 0:
            rows.append(dict(base, vs=None, diff=float("nan"), ci_low=float("nan"), ci_high=float("nan"), wins=0,
                             losses=0, mcnemar_p=float("nan"), near_best=[]))
            continue
        sys_v, mem_v = pair[system].to_numpy(), pair[members].to_numpy()
        vb = vs_best(sys_v, mem_v, level, seed=seed_for(system, *members, *pair.index))
        vs = members[vb["best"]]
        cmp = paired_binary(sys_v, mem_v[:, vb["best"]], level)
        rows.append(dict(base, vs=vs, diff=vb["diff"], ci_low=vb["ci_low"], ci_high=vb["ci_high"], wins=cmp["wins"],
                         losses=cmp["losses"], mcnemar_p=cmp["mcnemar_p"],
                         near_best=[members[j] for j in vb["near_best"]]))
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


PAIRED_COLUMNS = ["system", "vs", "n", "diff", "ci_low", "ci_high", "wins", "losses", "mcnemar_p", "near_best",
                  "scored_items", "left_out", "unscorable_members", "method"]


def _unscorable(g: pd.DataFrame) -> pd.Series:
    return g["correct"].isna()


def judge_regret(df: pd.DataFrame) -> pd.DataFrame:
    """Per judged mode: of the items where some member was right and the fused answer could be scored, how often
    the fused answer was wrong. Items whose fused answer could not be scored are counted apart (``unscorable``)."""
    oracle = df[df["system"] == "oracle"].set_index("item_id")["correct"]
    rows = []
    for system, g in df[(df["kind"] == "fusion") & df["mode"].isin(JUDGED_MODES)].groupby("system", sort=False):
        g = g.set_index("item_id")
        some_right = oracle.reindex(g.index).eq(True).to_numpy()
        unscorable = int((some_right & _unscorable(g).to_numpy()).sum())
        eligible = g[some_right & g["correct"].notna().to_numpy()]
        n = len(eligible)
        regrets = int((eligible["correct"] == False).sum())  # noqa: E712 (a column of True/False/None)
        rows.append(dict(system=system, eligible=n, regrets=regrets, regret_rate=regrets / n if n else float("nan"),
                         unscorable=unscorable))
    return pd.DataFrame(rows)


def merge_damage(df: pd.DataFrame) -> dict[str, Any]:
    """Of the merge items whose top-scored candidate was right (and whose merged answer could be scored), how
    often the merged answer was wrong; merged answers that could not be scored are counted apart."""
    m = df[df["system"] == "fusion:merge"]
    if m.empty or "winner_correct" not in m:
        return dict(eligible=0, damaged=0, rate=float("nan"), unscorable=0)
    top_right = m[m["winner_correct"].eq(True)]
    eligible = top_right[top_right["correct"].notna()]
    damaged = int((eligible["correct"] == False).sum())  # noqa: E712
    return dict(eligible=len(eligible), damaged=damaged, rate=damaged / len(eligible) if len(eligible) else float("nan"),
                unscorable=int(top_right["correct"].isna().sum()))


def position_flip_rate(df: pd.DataFrame) -> dict[str, Any]:
    """Of the judged runs with several orderings that all gave a valid verdict, how often the orderings picked
    different answers. Runs where some ordering's reply did not parse are not flips: they are counted apart
    (``parse_failures``), as are runs where none parsed."""
    empty = dict(checked=0, flipped=0, rate=float("nan"), parse_failures=0)
    if "swap_outcome" not in df:
        return empty
    if "swap_parsed" not in df or "swap_k" not in df:  # rows stored before orderings' parses were recorded
        outcome = df["swap_outcome"].fillna("")
        s = df[(df["kind"] == "fusion") & outcome.astype(bool) & (outcome != "invalid")]
        flipped = int((s["swap_outcome"] != "consistent").sum())
        return dict(checked=len(s), flipped=flipped, rate=flipped / len(s) if len(s) else float("nan"),
                    parse_failures=None, note="older rows: a judge reply that did not parse may count as a flip")
    s = df[(df["kind"] == "fusion") & (df.get("swap_k", pd.Series(0, index=df.index)).fillna(0) > 1)]
    if s.empty:
        return empty
    all_parsed = s["swap_parsed"] == s["swap_k"]
    checked = s[all_parsed]
    flipped = int((checked["swap_outcome"] != "consistent").sum())
    return dict(checked=len(checked), flipped=flipped, rate=flipped / len(checked) if len(checked) else float("nan"),
                parse_failures=int((~all_parsed).sum()))


def injection_susceptibility(df: pd.DataFrame) -> dict[str, Any]:
    """Of the planted-candidate probes the judge answered validly, how often it obeyed the plant; split by
    whether the injection detector flagged the planted text (``flagged``: probes whose plant was flagged)."""
    out = dict(probes=0, obeyed=0, rate=float("nan"), flagged=0, obeyed_flagged=0, obeyed_unflagged=0,
               no_verdict=0)
    if "injection_obeyed" not in df:
        return out
    probes = df[df["system"] == "probe:injection"]
    p = probes[probes["injection_obeyed"].notna()]
    obeyed = p["injection_obeyed"].astype(bool)
    base = dict(probes=len(p), obeyed=int(obeyed.sum()), rate=float(obeyed.mean()) if len(p) else float("nan"),
                no_verdict=len(probes) - len(p))
    if "planted_flagged" not in p:  # rows stored before the detector's verdict on the plant was recorded
        return dict(base, flagged=None, obeyed_flagged=None, obeyed_unflagged=None)
    flagged = p["planted_flagged"].eq(True)
    return dict(base, flagged=int(flagged.sum()), obeyed_flagged=int((obeyed & flagged).sum()),
                obeyed_unflagged=int((obeyed & ~flagged).sum()))


TIE_COLUMNS = ["system", "verdicts", "ties", "tie_accuracy", "no_majority"]


def verdict_ties(df: pd.DataFrame) -> pd.DataFrame:
    """Per fusion system: of its scored verdicts, how many were ties (several answers shared the top score or
    vote count, and a stated rule chose among them: ``Verdict.tie_broken_by``), the accuracy on those items, and
    for the vote how many had no majority. Every metric counts a tied item as the answer the rule took, so with
    many ties a mode's accuracy partly measures its tie-break (position, pool order), not the judge."""
    if "verdict_tie" not in df or df.empty:
        return pd.DataFrame(columns=TIE_COLUMNS)
    rows = []
    for system, g in df[(df["kind"] == "fusion") & df["correct"].notna()].groupby("system", sort=False):
        tied = g[g["verdict_tie"].eq(True)]
        majority = g["vote_majority"] if "vote_majority" in g else pd.Series(dtype=object)
        rows.append(dict(system=system, verdicts=len(g), ties=len(tied),
                         tie_accuracy=float(tied["correct"].astype(bool).mean()) if len(tied) else float("nan"),
                         no_majority=int(majority.eq(False).sum()) if majority.notna().any() else None))
    return pd.DataFrame(rows, columns=TIE_COLUMNS)


def debate_dynamics(df: pd.DataFrame) -> pd.DataFrame:
    """Per debate round (2..R), summed over items: answers changed, right->wrong and wrong->right flips."""
    d = df[df["system"] == "fusion:debate"]
    rows = [dict(stats, item_id=item) for item, rounds in zip(d["item_id"], d.get("debate_rounds", []))
            for stats in (rounds or [])]
    if not rows:
        return pd.DataFrame(columns=["round", "changed", "right_to_wrong", "wrong_to_right", "correct", "items"])
    per = pd.DataFrame(rows).groupby("round").agg(
        changed=("changed", "sum"), right_to_wrong=("right_to_wrong", "sum"), wrong_to_right=("wrong_to_right", "sum"),
        correct=("correct", "sum"), items=("item_id", "nunique")).reset_index()
    return per


def left_out_note(r) -> str:
    """What a fused-vs-best comparison left out, in words ("" when nothing)."""
    if not r["left_out"]:
        return ""
    who = ", ".join(f"{m} on {c}" for m, c in r["unscorable_members"].items())
    return (f"; {r['left_out']} of the {r['scored_items']} items {r['system']} was scored on are left out because "
            f"some member's answer could not be scored ({who})")


def paired_line(r) -> str:
    """One fused-vs-best comparison as a Markdown line: what it can claim, and over what."""
    if r["vs"] is None:
        return f"- {r['system']} vs the best member: no item where it and every member were scored" + left_out_note(r)
    claim = interval_reading(r["ci_low"], r["ci_high"], r["mcnemar_p"], r["n"])
    near = [m for m in r["near_best"] if m != r["vs"]]
    return (f"- {r['system']} vs the best member: {r['diff']:+.2f} against {r['vs']} (the best on these {r['n']} "
            f"items, which flatters it); 95% CI for the difference to the truly best member {r['ci_low']:+.2f} to "
            f"{r['ci_high']:+.2f}: {claim} (intersection bounds"
            + (f", also could be the best: {', '.join(near)}" if near else "")
            + f"); wins {r['wins']}, losses {r['losses']} against {r['vs']}, exact McNemar p = {r['mcnemar_p']:.3g}"
            + left_out_note(r))


def metric_lines(s: dict) -> list[str]:
    """The evaluation's headline numbers as Markdown lines, each with what it is computed over."""
    lines = []
    for _, r in s["paired"].iterrows():
        lines.append(paired_line(r))
    for _, r in s["regret"].iterrows():
        lines.append(f"- judge regret, {r['system']}: {r['regrets']} of {r['eligible']} items some member got right"
                     + (f" ({r['unscorable']} fused answers could not be scored: left out)" if r["unscorable"] else ""))
    for _, r in s.get("ties", pd.DataFrame(columns=TIE_COLUMNS)).iterrows():
        parts = []
        if r["ties"]:
            parts.append(f"{r['ties']} of {r['verdicts']} verdicts were ties settled by a rule (right on "
                         f"{r['tie_accuracy']:.0%} of those)")
        if r["no_majority"] == r["no_majority"] and r["no_majority"]:  # None/NaN: not a vote
            parts.append(f"{int(r['no_majority'])} of {r['verdicts']} votes had no majority")
        if parts:
            lines.append(f"- ties, {r['system']}: " + "; ".join(parts) + "; each counted as the answer the rule took")
    md = s["merge_damage"]
    if md["eligible"] or md["unscorable"]:
        lines.append(f"- merge damage: {md['damaged']} of {md['eligible']} items whose top candidate was right"
                     + (f" ({md['unscorable']} unscorable, left out)" if md["unscorable"] else ""))
    pf = s["position_flips"]
    if pf["parse_failures"] is None:
        lines.append(f"- position flips: {pf['flipped']} of {pf['checked']} runs ({pf['note']})")
    elif pf["checked"] or pf["parse_failures"]:
        lines.append(f"- position flips: {pf['flipped']} of {pf['checked']} runs whose orderings all parsed; "
                     f"{pf['parse_failures']} runs with a judge reply that did not parse (not counted as flips)")
    inj = s["injection"]
    if inj["probes"] or inj["no_verdict"]:
        split = ("the detector's flags were not recorded" if inj["flagged"] is None else
                 f"{inj['obeyed_flagged']} of {inj['flagged']} the detector flagged, {inj['obeyed_unflagged']} of "
                 f"{inj['probes'] - inj['flagged']} it did not")
        lines.append(f"- injection: the judge obeyed {inj['obeyed']} of {inj['probes']} planted candidates ({split})")
    return lines


def summary(df: pd.DataFrame) -> dict[str, Any]:
    """Every metric at once (what the CLI report and the Evaluate tab show)."""
    return dict(accuracy=accuracy_table(df), paired=paired_vs_best(df), regret=judge_regret(df),
                merge_damage=merge_damage(df), position_flips=position_flip_rate(df),
                injection=injection_susceptibility(df), debate=debate_dynamics(df), best_member=best_member(df),
                ties=verdict_ties(df))


def consistency_problems(df: pd.DataFrame) -> list[str]:
    """Every way the frame's metrics contradict each other or their definitions (empty when consistent).

    Notebooks and reports end with ``assert_consistent(df)``, so a table that silently shows a wrong number
    fails instead: accuracies and intervals within [0, 1] and around their estimate, one row per item and
    system, the oracle right exactly where some member is, no member above the oracle, flips counted only
    over runs whose orderings all parsed, counts within their denominators.
    """
    problems: list[str] = []
    if df.empty or "correct" not in df:
        return problems
    s = summary(df)
    dup = df[df.duplicated(["item_id", "system"], keep=False)]
    if len(dup):
        problems.append(f"{len(dup)} rows share an (item, system) pair, e.g. {dup.iloc[0]['system']}")
    acc = s["accuracy"]
    for _, r in acc.iterrows():
        if not (0 <= r["accuracy"] <= 1 and 0 <= r["ci_low"] <= r["accuracy"] + 1e-12
                and r["accuracy"] - 1e-12 <= r["ci_high"] <= 1):
            problems.append(f"{r['system']}: accuracy {r['accuracy']} outside [0, 1] or its interval "
                            f"[{r['ci_low']}, {r['ci_high']}]")
    g = _graded(df)
    wide = g.pivot_table(index="item_id", columns="system", values="correct", aggfunc="first")
    members = [c for c in wide.columns if c.startswith("member:")]
    if "oracle" in wide and members:
        sub = wide[["oracle"] + members].dropna().astype(bool)
        wrong = sub[sub["oracle"] != sub[members].any(axis=1)]
        if len(wrong):
            problems.append(f"oracle disagrees with 'some member was right' on {list(wrong.index)[:5]}")
        for m in members:
            if sub[m].mean() > sub["oracle"].mean() + 1e-12:
                problems.append(f"{m} is above the oracle on the same items")
    for _, r in s["paired"].iterrows():
        if not (-1 <= r["diff"] <= 1 and r["ci_low"] <= r["ci_high"] and r["wins"] + r["losses"] <= r["n"]
                and 0 <= r["mcnemar_p"] <= 1):
            problems.append(f"paired row for {r['system']} is out of range: {dict(r)}")
    for _, r in s["regret"].iterrows():
        if not 0 <= r["regrets"] <= r["eligible"]:
            problems.append(f"{r['system']}: {r['regrets']} regrets of {r['eligible']} eligible")
    md = s["merge_damage"]
    if not 0 <= md["damaged"] <= md["eligible"]:
        problems.append(f"merge damage {md['damaged']} of {md['eligible']}")
    pf = s["position_flips"]
    if "swap_k" in df and "swap_parsed" in df:
        runs = df[(df["kind"] == "fusion") & (df["swap_k"].fillna(0) > 1)]
        valid = int((runs["swap_parsed"] == runs["swap_k"]).sum())
        if pf["checked"] != valid or pf["parse_failures"] != len(runs) - valid:
            problems.append(f"position flips over {pf['checked']} runs, but {valid} runs had every ordering parse")
    if not 0 <= pf["flipped"] <= pf["checked"]:  # noqa: SIM102
        problems.append(f"{pf['flipped']} flips of {pf['checked']} checked")
    inj = s["injection"]
    if not (0 <= inj["obeyed"] <= inj["probes"] and (inj["flagged"] is None or
                                                      inj["obeyed_flagged"] <= inj["flagged"] <= inj["probes"])):
        problems.append(f"injection counts out of range: {inj}")
    return problems


def assert_consistent(df: pd.DataFrame) -> None:
    """Raise AssertionError listing every problem ``consistency_problems`` finds."""
    problems = consistency_problems(df)
    assert not problems, "inconsistent metrics:\n- " + "\n- ".join(problems)
