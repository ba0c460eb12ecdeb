"""Cost-matched ablation: is a fusion gain diversity (different models) or synthesis (fusing several answers at
all)? The diverse pool against k samples of its own best member and k samples of the judge's model, each fused the
same way, on the same items, with the same number of members and token limits (Self-MoA asks the same)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .common import Experiment, mean_ci, paired


def _wide(df: pd.DataFrame, system: str) -> pd.Series:
    rows = df[df["system"] == system].set_index("item_id")["correct"]
    return rows.map(lambda c: bool(c) if c is not None and c == c else False)


def _generated(df: pd.DataFrame) -> float:
    """Mean tokens the members wrote per item (completion tokens are not kept in the frame's rows: the rows'
    ``tokens`` are prompt + completion, which is what a matched budget compares)."""
    m = df[df["kind"] == "member"]
    return float(m.groupby("item_id")["tokens"].sum().mean()) if len(m) else float("nan")


def cost_matched_ablation(dataset: Any, pool: Sequence[Any], judge: Any, mode: str = "best-of",
                          temperature: float = 0.8, settings: Any = None, registry: Any = None, store: Any = None,
                          limit: int | None = None, seed: int = 0) -> Experiment:
    """The diverse pool vs k samples of its best member vs k samples of the judge model (k = the pool's size).

    Three evaluations share the dataset, the judge, the mode and the generation limits (their member answers are
    cached like any evaluation's): the diverse pool; its best member (the most accurate alone, chosen on these
    items) sampled k times at ``temperature``; the judge's model sampled k times. The gain of the fused diverse
    pool over its best member splits into **synthesis** (fused samples of the best member minus the best member
    alone) and **diversity** (fused diverse pool minus fused samples of the best member); each is a paired
    difference on the same items with an Agresti-Min interval and the exact McNemar p-value. Each arm's mean tokens
    per item are reported beside it, so that "at equal cost" can be checked, not assumed.
    """
    import plotly.graph_objects as go

    from ..eval import metrics
    from ..eval.harness import evaluate
    from ..settings import FusionSettings
    from ..specs import Member, load_registry

    registry = registry or load_registry()
    settings = settings or FusionSettings(seed=seed)
    members = [m if isinstance(m, Member) else registry.member(m) for m in pool]
    judge_member = judge if isinstance(judge, Member) else registry.member(judge)
    k = len(members)
    if k < 2:
        raise ConfigError("a cost-matched ablation needs a pool of at least two members")
    kw = dict(registry=registry, store=store, limit=limit, progress=False)
    diverse = evaluate(dataset, members, judge_member, [mode], settings, **kw)
    best_system = metrics.best_member(diverse)
    if best_system is None:
        raise ConfigError("no member of the pool was scored on any item")
    best = members[(diverse.attrs.get("member_systems") or []).index(best_system)]

    def samples(m: Member, what: str) -> list[Member]:
        return [Member(m.model, persona=m.persona, persona_name=m.persona_name, temperature=temperature,
                       display_name=f"{what} sample {i + 1}") for i in range(k)]

    same = evaluate(dataset, samples(best, best.label), judge_member, [mode], settings, **kw)
    judge_samples = evaluate(dataset, samples(judge_member, f"judge {judge_member.label}"), judge_member, [mode],
                             settings, **kw)
    fused = f"fusion:{mode}"
    arms = {"best member alone": _wide(diverse, best_system), "diverse pool, fused": _wide(diverse, fused),
            f"{k} x best member, fused": _wide(same, fused), f"{k} x judge model, fused": _wide(judge_samples, fused)}
    items = sorted(set.intersection(*(set(a.index) for a in arms.values())))
    if not items:
        raise ConfigError("no item was scored in every arm")
    vec = {name: a.loc[items].to_numpy(dtype=float) for name, a in arms.items()}
    tokens = {"best member alone": _generated(diverse[diverse["system"] == best_system]),
              "diverse pool, fused": _generated(diverse), f"{k} x best member, fused": _generated(same),
              f"{k} x judge model, fused": _generated(judge_samples)}
    rows = []
    for name, v in vec.items():
        acc, lo, hi = mean_ci(v)
        rows.append(dict(arm=name, accuracy=acc, ci_low=lo, ci_high=hi, member_tokens_per_item=tokens[name],
                         tokens_vs_diverse=tokens[name] / tokens["diverse pool, fused"], items=len(items)))
    frame = pd.DataFrame(rows)
    b, d = vec["best member alone"], vec["diverse pool, fused"]
    s_, j = vec[f"{k} x best member, fused"], vec[f"{k} x judge model, fused"]
    gain, synthesis, diversity = paired(d, b), paired(s_, b), paired(d, s_)
    total = gain["diff"]
    summary: dict[str, Any] = dict(items=len(items), k=k, best_member=best_system, mode=mode,
                                   temperature=temperature, total_gain=gain, synthesis=synthesis,
                                   diversity=diversity, diverse_vs_judge_samples=paired(d, j),
                                   synthesis_share=synthesis["diff"] / total if total else float("nan"))
    fig = go.Figure(go.Bar(x=frame["arm"], y=frame["accuracy"],
                           error_y=dict(type="data", symmetric=False, array=frame["ci_high"] - frame["accuracy"],
                                        arrayminus=frame["accuracy"] - frame["ci_low"]),
                           text=[f"{t:.0f} tok" for t in frame["member_tokens_per_item"]], textposition="outside"))
    fig.update_layout(title=f"Diversity {diversity['diff']:+.2f} and synthesis "
                            f"{synthesis['diff']:+.2f} (of a total gain {total:+.2f})",
                      yaxis_title="accuracy", yaxis_range=[0, 1.15])
    details = pd.concat([diverse.assign(arm="diverse"), same.assign(arm="best samples"),
                         judge_samples.assign(arm="judge samples")], ignore_index=True)
    return Experiment("cost_matched_ablation", frame, fig, summary, details=details)


def split_check(e: Experiment) -> float:
    """|total gain - (synthesis + diversity)|: 0 up to rounding (a notebook's consistency check)."""
    s = e.summary
    return float(np.abs(s["total_gain"]["diff"] - s["synthesis"]["diff"] - s["diversity"]["diff"]))
