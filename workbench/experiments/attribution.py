"""Member attribution: what each member adds to fused accuracy, by leave-one-out and exact Shapley values,
computed on the cached answers of an evaluation (no member answers again; a judge re-runs on subsets only)."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..records import MemberOutput
from .common import Experiment, dataset_items, mean_ci, member_table, run_sync

#: the largest pool whose exact Shapley values are computed (2^n subsets per item)
MAX_POOL = 6


def _vote_value(rows: pd.DataFrame, subset: tuple[int, ...]) -> float:
    """Majority vote over the subset's extracted answers (ties: the answer given first in pool order)."""
    sub = rows[rows["order"].isin(subset) & rows["ok"] & (rows["key"] != "")]
    if sub.empty:
        return 0.0
    counts = Counter(sub["key"])
    top = max(counts.values())
    first = sub[sub["key"].map(counts) == top].sort_values("order").iloc[0]
    return float(first["correct"])


def shapley(values: dict[tuple[int, ...], float], n: int) -> tuple[list[float], list[float]]:
    """Exact Shapley values and leave-one-out differences of ``n`` players from ``values`` (every subset, as a
    sorted tuple of player indices, to its value; the empty subset included)."""
    full = tuple(range(n))
    phi, loo = [], []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        total = 0.0
        for size in range(n):
            w = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for s in itertools.combinations(others, size):
                total += w * (values[tuple(sorted(s + (i,)))] - values[s])
        phi.append(total)
        loo.append(values[full] - values[tuple(others)])
    return phi, loo


def member_attribution(df: pd.DataFrame, judge: Any = None, dataset: Any = None, registry: Any = None,
                       seed: int = 0) -> Experiment:
    """Leave-one-out and exact Shapley values of each member's contribution to fused accuracy.

    The value of a set of members on an item is whether fusing only their (cached) answers is right: by majority
    vote when ``judge`` is None (no model call at all), else by a best-of judge re-run on every subset of two or
    more members (a subset of one is that member's own answer; the empty set is 0). Values are averaged over
    items, so a member's Shapley value is the mean of its per-item values, with a t interval over items;
    they sum to the accuracy of the whole pool (efficiency), which ``summary`` checks.

    Args:
        df: an evaluation frame (``wb.evaluate``), whose member rows hold the cached answers.
        judge: a judge model name or Member for best-of on subsets; None: majority vote.
        dataset: the evaluation's dataset (for the prompts the judge sees); default ``df.attrs["dataset"]``.
    """
    members = member_table(df)
    systems = list(dict.fromkeys(members.sort_values("order")["system"]))
    n = len(systems)
    if n > MAX_POOL:
        raise ConfigError(f"exact Shapley values take 2^n subsets: at most {MAX_POOL} members (got {n})")
    if n == 0:
        raise ConfigError("the evaluation has no member rows")
    items = list(dict.fromkeys(members["item_id"]))
    subsets = [s for size in range(n + 1) for s in itertools.combinations(range(n), size)]
    per_item: dict[str, dict[tuple[int, ...], float]] = {}
    calls = 0
    if judge is None:
        for item in items:
            rows = members[members["item_id"] == item]
            per_item[item] = {s: _vote_value(rows, s) for s in subsets}
    else:
        per_item, calls = _judged_values(df, members, items, subsets, judge, dataset, registry, seed)
    phis = np.array([shapley(per_item[i], n)[0] for i in items])  # items x members
    loos = np.array([shapley(per_item[i], n)[1] for i in items])
    rows = []
    for m, system in enumerate(systems):
        phi, lo, hi = mean_ci(phis[:, m])
        loo, llo, lhi = mean_ci(loos[:, m])
        alone = float(np.mean([per_item[i][(m,)] for i in items]))
        rows.append(dict(member=system, shapley=phi, shapley_ci_low=lo, shapley_ci_high=hi, leave_one_out=loo,
                         loo_ci_low=llo, loo_ci_high=lhi, alone_accuracy=alone))
    frame = pd.DataFrame(rows)
    full = float(np.mean([per_item[i][tuple(range(n))] for i in items]))
    summary = dict(items=len(items), value="vote" if judge is None else "best-of judge", pool_accuracy=full,
                   shapley_sum=float(frame["shapley"].sum()), efficiency_gap=abs(float(frame["shapley"].sum()) - full),
                   subsets_per_item=len(subsets))
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(go.Bar(x=frame["member"], y=frame["shapley"], name="Shapley value",
                         error_y=dict(type="data", symmetric=False, array=frame["shapley_ci_high"] - frame["shapley"],
                                      arrayminus=frame["shapley"] - frame["shapley_ci_low"])))
    fig.add_trace(go.Bar(x=frame["member"], y=frame["leave_one_out"], name="leave-one-out"))
    fig.update_layout(barmode="group", yaxis_title="contribution to accuracy",
                      title=f"Member attribution ({summary['value']}): pool accuracy {full:.2f} = sum of Shapley")
    return Experiment("member_attribution", frame, fig, summary, judge_calls=calls)


def _judged_values(df, members, items, subsets, judge, dataset, registry, seed):
    """Per item, every subset's value with a best-of judge over the subset's cached answers."""
    from ..fusion.engine import decide
    from ..fusion.fanout import load_members
    from ..fusion.modes import MODES
    from ..settings import FusionSettings
    from ..specs import Member, load_registry
    from ..types import Failure

    registry = registry or load_registry()
    judge_member = judge if isinstance(judge, Member) else registry.member(judge)
    by_id = dataset_items(df, dataset)
    settings = FusionSettings(seed=seed, swap_k=1)

    async def run():
        backend = (await load_members([judge_member]))[0]
        if isinstance(backend, Failure):
            raise ConfigError(f"the judge could not be loaded: {backend.reason}")
        out: dict[str, dict[tuple[int, ...], float]] = {}
        calls = 0
        for item in items:
            rows = members[members["item_id"] == item].sort_values("order")
            outputs = [MemberOutput(int(r.order), r.system.removeprefix("member:"), 1, bool(r.ok), str(r.answer or ""))
                       for r in rows.itertuples()]
            right = {int(r.order): bool(r.correct) for r in rows.itertuples()}
            values: dict[tuple[int, ...], float] = {}
            for s in subsets:
                ok = [o for o in outputs if o.member in s and o.ok]
                if not ok:
                    values[s] = 0.0
                elif len(ok) == 1:
                    values[s] = float(right[ok[0].member])
                else:
                    v = await decide(by_id[item].to_prompt(), ok, MODES["best-of"], judge_member, backend, settings,
                                     lambda _e: None)
                    calls += len(v.attempts)
                    values[s] = float(right.get(v.winner, False)) if v.valid and v.winner is not None else 0.0
            out[item] = values
        return out, calls

    return run_sync(run())
