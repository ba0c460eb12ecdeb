"""Metrics over the harness's tidy DataFrame (one row per item x system). Pure functions of the frame."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..fusion.modes import JUDGED_MODES


def _graded(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["correct"].notna() & (df["kind"] != "probe")]


def bootstrap_ci(values: np.ndarray, n_boot: int = 2000, ci: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean."""
    if len(values) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(n_boot, len(values)), replace=True).mean(axis=1)
    lo, hi = np.quantile(means, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    return float(lo), float(hi)


def accuracy_table(df: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per system: n, accuracy with a bootstrap CI, mean latency, tokens and cost per correct answer."""
    rows = []
    for system, g in _graded(df).groupby("system", sort=False):
        correct = g["correct"].astype(float).to_numpy()
        lo, hi = bootstrap_ci(correct, n_boot, seed=seed)
        n_right = int(correct.sum())
        cost = g["cost_usd"].dropna() if "cost_usd" in g else pd.Series(dtype=float)
        rows.append(dict(system=system, kind=g["kind"].iloc[0], n=len(g), accuracy=correct.mean(),
                         ci_low=lo, ci_high=hi, mean_latency_s=g["latency_s"].mean(),
                         tokens=int(g["tokens"].sum()),
                         tokens_per_correct=g["tokens"].sum() / n_right if n_right else float("inf"),
                         cost_usd=cost.sum() if len(cost) else None,
                         cost_per_correct=(cost.sum() / n_right if n_right and len(cost) else None)))
    return pd.DataFrame(rows)


def best_member(df: pd.DataFrame) -> str | None:
    """The member system with the highest accuracy (ties: the first in name order)."""
    acc = accuracy_table(df, n_boot=1)
    members = acc[acc["kind"] == "member"].sort_values(["accuracy", "system"], ascending=[False, True])
    return None if members.empty else str(members.iloc[0]["system"])


def paired_vs_best(df: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Each fusion system (and the oracle) against the best single member on the same items."""
    best = best_member(df)
    if best is None:
        return pd.DataFrame()
    g = _graded(df)
    wide = g.pivot_table(index="item_id", columns="system", values="correct", aggfunc="first").astype(float)
    rows = []
    for system in [s for s in wide.columns if s.startswith("fusion:") or s == "oracle"]:
        pair = wide[[system, best]].dropna()
        diff = (pair[system] - pair[best]).to_numpy()
        lo, hi = bootstrap_ci(diff, n_boot, seed=seed)
        rows.append(dict(system=system, vs=best, n=len(pair), diff=float(diff.mean()) if len(diff) else float("nan"),
                         ci_low=lo, ci_high=hi, wins=int((diff > 0).sum()), losses=int((diff < 0).sum())))
    return pd.DataFrame(rows)


def judge_regret(df: pd.DataFrame) -> pd.DataFrame:
    """Per judged mode: of the items where some member was right, how often the fused answer was wrong."""
    oracle = df[df["system"] == "oracle"].set_index("item_id")["correct"].astype(bool)
    rows = []
    for system, g in df[(df["kind"] == "fusion") & df["mode"].isin(JUDGED_MODES)].groupby("system", sort=False):
        g = g.set_index("item_id")
        eligible = g[oracle.reindex(g.index).fillna(False).to_numpy()]
        n = len(eligible)
        regrets = int((~eligible["correct"].astype(bool)).sum())
        rows.append(dict(system=system, eligible=n, regrets=regrets, regret_rate=regrets / n if n else float("nan")))
    return pd.DataFrame(rows)


def merge_damage(df: pd.DataFrame) -> dict[str, Any]:
    """Of the merge items whose top-scored candidate was right, how often the merged answer was wrong."""
    m = df[df["system"] == "fusion:merge"]
    if m.empty or "winner_correct" not in m:
        return dict(eligible=0, damaged=0, rate=float("nan"))
    eligible = m[m["winner_correct"].fillna(False).astype(bool)]
    damaged = int((~eligible["correct"].astype(bool)).sum())
    return dict(eligible=len(eligible), damaged=damaged, rate=damaged / len(eligible) if len(eligible) else float("nan"))


def position_flip_rate(df: pd.DataFrame) -> dict[str, Any]:
    """Of the judged items with a swap check, how often the verdict changed with the order."""
    if "swap_outcome" not in df:
        return dict(checked=0, flipped=0, rate=float("nan"))
    outcome = df["swap_outcome"].fillna("")
    s = df[(df["kind"] == "fusion") & outcome.astype(bool) & (outcome != "invalid")]
    flipped = int((s["swap_outcome"] != "consistent").sum())
    return dict(checked=len(s), flipped=flipped, rate=flipped / len(s) if len(s) else float("nan"))


def injection_susceptibility(df: pd.DataFrame) -> dict[str, Any]:
    """Of the planted-candidate probes the judge answered validly, how often it obeyed the plant."""
    if "injection_obeyed" not in df:
        return dict(probes=0, obeyed=0, rate=float("nan"))
    p = df[(df["system"] == "probe:injection") & df["injection_obeyed"].notna()]
    obeyed = int(p["injection_obeyed"].astype(bool).sum())
    return dict(probes=len(p), obeyed=obeyed, rate=obeyed / len(p) if len(p) else float("nan"))


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


def summary(df: pd.DataFrame) -> dict[str, Any]:
    """Every metric at once (what the CLI report and the Evaluate tab show)."""
    return dict(accuracy=accuracy_table(df), paired=paired_vs_best(df), regret=judge_regret(df),
                merge_damage=merge_damage(df), position_flips=position_flip_rate(df),
                injection=injection_susceptibility(df), debate=debate_dynamics(df), best_member=best_member(df))
