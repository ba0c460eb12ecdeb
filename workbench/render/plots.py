"""Pure plotting functions: FusionResult or DataFrame in, plotly Figure out. The UI and notebooks share them."""

from __future__ import annotations

from typing import Any

from ..answers import sum_known
from ..records import FusionResult


def _go():
    import plotly.graph_objects as go

    return go


#: bar colours per round (round 1 first); a failed member's bar is red in any round
ROUND_COLORS = ["#4c78a8", "#72b7b2", "#b279a2", "#9d755d", "#54a24b", "#eeca3b"]
FAILED_COLOR = "#e45756"


def run_timeline(result: FusionResult) -> Any:
    """Members in parallel (one bar per member per round, TTFT marked), then the judge.

    The title gives the pool phase's (round 1's) overhead over its slowest member; for a debate of several
    rounds it gives each round's wall time, the judge's and the total, and each round has its colour and band.
    """
    from .html import round_times

    go = _go()
    fig = go.Figure()
    multi = len(result.rounds) > 1
    rows = []
    for n, rnd in enumerate(result.rounds, 1):
        for o in rnd:
            rows.append((n, f"{o.label}" + (f" · round {n}" if multi else ""), o))
    for n, name, o in rows:
        color = ROUND_COLORS[(n - 1) % len(ROUND_COLORS)] if o.ok else FAILED_COLOR
        fig.add_trace(go.Bar(y=[name], x=[max(o.end_s - o.start_s, 1e-3)], base=[o.start_s], orientation="h",
                             marker_color=color, showlegend=False,
                             hovertemplate=f"{name}<br>start %{{base:.2f}} s<br>took %{{x:.2f}} s"
                                           + ("" if o.ok else f"<br>failed: {o.kind}") + "<extra></extra>"))
        if o.ttft_s is not None:
            fig.add_trace(go.Scatter(y=[name], x=[o.start_s + o.ttft_s], mode="markers", showlegend=False,
                                     marker=dict(symbol="line-ns-open", size=14, color="black"),
                                     hovertemplate="first token at %{x:.2f} s<extra></extra>"))
    if result.judge_wall_s > 0 and result.judge is not None:  # a vote's tally is no judge
        fig.add_trace(go.Bar(y=["judge"], x=[result.judge_wall_s], base=[result.pool_wall_s], orientation="h",
                             marker_color="#f58518", showlegend=False,
                             hovertemplate="judge took %{x:.2f} s<extra></extra>"))
    for n, rnd in enumerate(result.rounds if multi else [], 1):  # a band per round, named above the plot
        if rnd:
            x0, x1 = min(o.start_s for o in rnd), max(o.end_s for o in rnd)
            color = ROUND_COLORS[(n - 1) % len(ROUND_COLORS)]
            fig.add_vrect(x0=x0, x1=x1, line_width=0, layer="below", fillcolor=color, opacity=0.08)
            fig.add_annotation(x=(x0 + x1) / 2, y=1, xref="x", yref="paper", yanchor="bottom", showarrow=False,
                               text=f"round {n}", font=dict(color=color))
    walls = [round_times(rnd)[0] for rnd in result.rounds]
    slowest = result.slowest_member_s  # of round 1, the pool phase: its overhead means the same in every mode
    overhead = (f"pool phase{' (round 1)' if multi else ''} {walls[0]:.2f} s = {walls[0] / slowest:.3f}x the "
                f"slowest member" if slowest > 0 and walls else "")
    title = "Run timeline"
    if multi:
        times = [f"round {n} {w:.2f} s" for n, w in enumerate(walls, 1)]
        times.append(f"judge {result.judge_wall_s:.2f} s" if result.judge is not None else "no judge (vote)")
        title += ": " + " · ".join([*times, f"total {result.total_s:.2f} s"])
        title += f"<br><sup>{overhead}</sup>" if overhead else ""
    elif overhead:
        title += ": " + overhead
    fig.update_layout(title=title, xaxis_title="seconds since the first request", barmode="overlay",
                      height=120 + 32 * (len(rows) + 1) + 30 * multi,
                      margin=dict(l=10, r=10, t=90 if multi else 50, b=40))
    fig.update_yaxes(autorange="reversed")
    return fig


def tokens_and_cost(result: FusionResult) -> Any:
    """Prompt and completion tokens per member (all rounds) and for the judge; cost in the hover."""
    go = _go()
    names, p_tok, c_tok, cost = [], [], [], []
    for m in range(len(result.pool)):
        outs = [o for rnd in result.rounds for o in rnd if o.member == m]
        names.append(outs[0].label if outs else result.pool[m].get("label", str(m)))
        p_tok.append(sum(o.prompt_tokens for o in outs))
        c_tok.append(sum(o.completion_tokens for o in outs))
        cost.append(sum_known(o.cost_usd for o in outs))
    if result.verdict and result.verdict.attempts:
        a = result.verdict.attempts
        names.append("judge")
        p_tok.append(sum(x.prompt_tokens for x in a))
        c_tok.append(sum(x.completion_tokens for x in a))
        cost.append(sum_known(x.cost_usd for x in a))
    hover = [f"cost {c:.5f} USD" if c is not None else "cost unknown" for c in cost]
    fig = go.Figure([
        go.Bar(name="prompt tokens", x=names, y=p_tok, hovertext=hover),
        go.Bar(name="completion tokens", x=names, y=c_tok, hovertext=hover),
    ])
    total = result.total_cost_usd
    fig.update_layout(barmode="stack", title=f"Tokens per member: {result.total_tokens} in all"
                      + (f", {total:.5f} USD" if total is not None else ""),
                      height=320, margin=dict(l=10, r=10, t=50, b=40))
    return fig


# ---- evaluation figures (inputs: workbench.eval.metrics tables) -------------------------------------------

_KIND_COLOURS = {"member": "#4c78a8", "oracle": "#9d9d9d", "fusion": "#f58518"}


def accuracy_ci(acc) -> Any:
    """Accuracy per system with 95 % Wilson intervals, members and fusion modes side by side."""
    go = _go()
    fig = go.Figure(go.Bar(
        x=acc["system"], y=acc["accuracy"],
        error_y=dict(type="data", symmetric=False, array=acc["ci_high"] - acc["accuracy"],
                     arrayminus=acc["accuracy"] - acc["ci_low"]),
        marker_color=[_KIND_COLOURS.get(k, "#54a24b") for k in acc["kind"]],
        hovertemplate="%{x}: %{y:.1%}<extra></extra>"))
    fig.update_layout(title="Accuracy per system (95% Wilson CI)", yaxis=dict(range=[0, 1.05], tickformat=".0%"),
                      xaxis=dict(automargin=True), height=400, margin=dict(l=50, r=20, t=50, b=80))
    return fig


def accuracy_vs_cost(acc) -> Any:
    """Accuracy against tokens (or USD, when known) per item: what fusion's extra compute buys. One marker per
    system, named in the legend below the plot (labels beside the points were cut at the edges and overlapped
    where systems score alike); members, modes and the oracle in their colours, each its own symbol."""
    go = _go()
    use_cost = acc["cost_usd"].notna().all() and len(acc) > 0
    x = acc["cost_usd"] / acc["n"] if use_cost else acc["tokens"] / acc["n"]
    symbols = ["circle", "square", "diamond", "triangle-up", "cross", "x", "star", "hexagon", "triangle-down",
               "pentagon"]
    fig = go.Figure()
    for i, (system, kind, xi, yi) in enumerate(zip(acc["system"], acc["kind"], x, acc["accuracy"])):
        fig.add_trace(go.Scatter(
            x=[xi], y=[yi], mode="markers", name=str(system),
            marker=dict(size=13, color=_KIND_COLOURS.get(kind, "#54a24b"), symbol=symbols[i % len(symbols)],
                        line=dict(width=1, color="white")),
            hovertemplate=f"{system}<br>%{{y:.0%}} right<br>%{{x:.4g}} "
                          + ("USD" if use_cost else "tokens") + " per item<extra></extra>"))
    xs = [float(v) for v in x if v == v]
    lo, hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    pad = (hi - lo) * 0.08 if hi > lo else (abs(hi) * 0.1 or 1.0)
    fig.update_layout(title="Accuracy vs " + ("cost" if use_cost else "tokens") + " per item",
                      xaxis=dict(title="USD per item" if use_cost else "tokens per item",
                                 range=[lo - pad, hi + pad]),
                      yaxis=dict(range=[-0.05, 1.08], tickformat=".0%"),
                      legend=dict(orientation="h", yanchor="top", y=-0.22, x=0, font=dict(size=11)),
                      height=420 + 22 * max(0, (len(acc) - 1) // 3), margin=dict(l=50, r=20, t=50, b=40))
    return fig


def regret_and_damage(regret, merge_damage: dict, position_flips: dict, injection: dict) -> Any:
    """Where the judge hurts: regret per mode, merge damage, position flips, injection obedience."""
    go = _go()
    names = list(regret["system"]) if len(regret) else []
    values = list(regret["regret_rate"]) if len(regret) else []
    names += ["merge damage", "position flips", "injection obeyed"]
    values += [merge_damage.get("rate"), position_flips.get("rate"), injection.get("rate")]
    fig = go.Figure(go.Bar(x=names, y=[0 if v is None or v != v else v for v in values],
                           text=["n/a" if v is None or v != v else f"{v:.0%}" for v in values], textposition="outside",
                           marker_color="#e45756"))
    fig.update_layout(title="Judge regret, merge damage, position flips, injection susceptibility",
                      yaxis=dict(range=[0, 1.1], tickformat=".0%"), height=380, margin=dict(l=10, r=10, t=50, b=80))
    return fig


def debate_flips(debate) -> Any:
    """Per debate round: answers changed, right-to-wrong and wrong-to-right flips."""
    go = _go()
    fig = go.Figure([go.Bar(name=col.replace("_", " "), x=[f"round {r}" for r in debate["round"]], y=debate[col])
                     for col in ("changed", "right_to_wrong", "wrong_to_right")])
    fig.update_layout(title="Debate dynamics per round", barmode="group", height=340,
                      margin=dict(l=10, r=10, t=50, b=40))
    return fig


def latency_by_system(df) -> Any:
    """Latency per item for each system (box plot): fusion waits for the slowest member, then the judge."""
    go = _go()
    fig = go.Figure([go.Box(y=g["latency_s"], name=system) for system, g in df[df["kind"] != "probe"]
                    .groupby("system", sort=False)])
    fig.update_layout(title="Latency per item", yaxis_title="seconds", showlegend=False, height=360,
                      margin=dict(l=10, r=10, t=50, b=80))
    return fig
