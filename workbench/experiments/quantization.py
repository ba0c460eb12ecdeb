"""What INT4 costs: the same model loaded unquantized and in INT4 as two members of one pool, an audit of what is
really 4-bit in each loaded model, and their agreement and accuracy difference on the same items; for a vision
model, a third arm with the vision tower quantized too (is an INT4 vision encoder worse?)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from ..answers import extract_answer
from .common import Experiment, mean_ci, paired

FOUR_BIT = ("nf4", "fp4", "int4")


def audit(spec) -> pd.DataFrame:
    """Bytes by component and dtype of ``spec`` as loaded (``ModelHandle.memory_report``), and whether 4-bit."""
    from ..backends import load_model

    with load_model(spec) as handle:
        report = handle.memory_report()
    rows = [dict(component=comp, dtype=dtype, bytes=n, four_bit=dtype in FOUR_BIT)
            for comp, by in report["by_component"].items() for dtype, n in by.items()]
    return pd.DataFrame(rows)


def quantization_panel(model: Any = "smol-offline", datasets: Sequence[str] = ("builtin:arithmetic:easy",
                                                                               "builtin:shapes"),
                       limit: int | None = None, vision_arm: bool | None = None, max_new_tokens: int = 64,
                       registry: Any = None, store: Any = None, seed: int = 0) -> Experiment:
    """The model unquantized vs INT4 (and INT4 with a 4-bit vision tower), greedy, on the same items.

    Args:
        model: a preset, HF id or ModelSpec of a local model.
        datasets: evaluated in turn; image datasets are skipped for a text-only model (and said so).
        vision_arm: add the INT4 arm whose vision tower is 4-bit too (default: when the model takes images).

    Returns:
        ``frame``: per dataset and comparison, items, the share of items with the same extracted answer among
        those where both arms gave one (with an interval), both arms' accuracy and the paired difference (interval, McNemar p). ``details``: the audit,
        bytes by arm, component and dtype as loaded. ``summary``: each arm's 4-bit share of its bytes, the
        components in 4-bit, and the datasets skipped.
    """
    import plotly.graph_objects as go

    from ..eval.datasets import load_dataset
    from ..eval.harness import evaluate
    from ..settings import FusionSettings
    from ..specs import Member, ModelSpec, load_registry, with_quant

    registry = registry or load_registry()
    spec = model if isinstance(model, ModelSpec) else registry.resolve(model)
    base = with_quant(spec, "none")
    int4 = with_quant(spec, "int4")
    arms = {f"{base.dtype}": base, "INT4": int4}
    if vision_arm is None:
        vision_arm = bool(spec.vision)
    if vision_arm:
        arms["INT4, vision 4-bit"] = replace(int4, skip_modules=tuple(m for m in int4.skip_modules
                                                                       if m != "vision_model"))
    members = [Member(s, display_name=f"{spec.name} {name}") for name, s in arms.items()]
    systems = [f"member:{m.label}" for m in members]
    settings = FusionSettings(seed=seed, temperature=0.0, max_new_tokens=max_new_tokens)
    audits = pd.concat([audit(s).assign(arm=name) for name, s in arms.items()], ignore_index=True)
    rows, skipped, accs = [], [], []
    for ds in datasets:
        items = load_dataset(ds, limit, seed)  # read once: for its images, then evaluated (a built-in, preset, table)
        images = any(item.images for item in items.items)
        if images and spec.vision is False:
            skipped.append(ds)
            continue
        df = evaluate(items, members, None, [], settings, limit=limit, store=store, registry=registry, progress=False)
        m = df[df["kind"] == "member"]
        wide_c = m.pivot_table(index="item_id", columns="system", values="correct", aggfunc="first")
        wide_a = m.assign(key=m["answer"].map(lambda t: extract_answer(str(t)))).pivot_table(
            index="item_id", columns="system", values="key", aggfunc="first")
        for name, system in zip(arms, systems):
            acc, lo, hi = mean_ci(wide_c[system].astype(float).to_numpy())
            accs.append(dict(dataset=ds, arm=name, accuracy=acc, ci_low=lo, ci_high=hi))
        pairs = [(systems[1], systems[0], f"INT4 vs {list(arms)[0]}")]
        if vision_arm and images:
            pairs.append((systems[2], systems[1], "vision 4-bit vs vision 16-bit (both INT4)"))
        for a, b, what in pairs:
            answered = (wide_a[a].fillna("") != "") & (wide_a[b].fillna("") != "")  # both gave an answer
            agree = (wide_a[a] == wide_a[b])[answered].to_numpy(dtype=float)
            rate, alo, ahi = mean_ci(agree)
            cmp = paired(wide_c[a].astype(float).to_numpy(), wide_c[b].astype(float).to_numpy())
            rows.append(dict(dataset=ds, comparison=what, items=len(wide_c), both_answered=len(agree),
                             agreement=rate, agreement_ci_low=alo,
                             agreement_ci_high=ahi, accuracy_a=float(wide_c[a].astype(float).mean()),
                             accuracy_b=float(wide_c[b].astype(float).mean()), diff=cmp["diff"],
                             ci_low=cmp["ci_low"], ci_high=cmp["ci_high"], mcnemar_p=cmp.get("mcnemar_p", np.nan)))
    frame = pd.DataFrame(rows)
    share = {arm: float(g.loc[g["four_bit"], "bytes"].sum() / g["bytes"].sum()) for arm, g in audits.groupby("arm")}
    four = {arm: sorted(set(g.loc[g["four_bit"], "component"])) for arm, g in audits.groupby("arm")}
    summary = dict(model=spec.name, arms=list(arms), four_bit_share_of_bytes=share, four_bit_components=four,
                   total_bytes={arm: int(g["bytes"].sum()) for arm, g in audits.groupby("arm")},
                   datasets_skipped=skipped)
    acc = pd.DataFrame(accs)
    fig = go.Figure()
    for arm in arms:
        a = acc[acc["arm"] == arm]
        fig.add_trace(go.Bar(x=a["dataset"], y=a["accuracy"], name=arm,
                             error_y=dict(type="data", symmetric=False, array=a["ci_high"] - a["accuracy"],
                                          arrayminus=a["accuracy"] - a["ci_low"])))
    fig.update_layout(barmode="group", yaxis_title="accuracy", yaxis_range=[0, 1.05],
                      title=f"{spec.name}: unquantized vs INT4" + (" vs INT4 with a 4-bit vision tower"
                                                                  if vision_arm else ""))
    return Experiment("quantization_panel", frame, fig, summary, details=audits)
