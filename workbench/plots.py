"""Pure plotting functions: FusionResult or DataFrame in, plotly Figure out. The UI and notebooks share them."""

from __future__ import annotations

from typing import Any

from .fusion.records import FusionResult


def _go():
    import plotly.graph_objects as go

    return go


def run_timeline(result: FusionResult) -> Any:
    """Members in parallel (one bar per member per round, TTFT marked), then the judge.

    The title gives the pool phase's overhead over its slowest member.
    """
    go = _go()
    fig = go.Figure()
    rows = []
    for rnd in result.rounds:
        for o in rnd:
            name = f"{o.label}" + (f" (round {o.round})" if len(result.rounds) > 1 else "")
            rows.append((name, o))
    for name, o in rows:
        color = "#4c78a8" if o.ok else "#e45756"
        fig.add_trace(go.Bar(y=[name], x=[max(o.end_s - o.start_s, 1e-3)], base=[o.start_s], orientation="h",
                             marker_color=color, showlegend=False,
                             hovertemplate=f"{name}<br>start %{{base:.2f}} s<br>took %{{x:.2f}} s"
                                           + ("" if o.ok else f"<br>failed: {o.kind}") + "<extra></extra>"))
        if o.ttft_s is not None:
            fig.add_trace(go.Scatter(y=[name], x=[o.start_s + o.ttft_s], mode="markers", showlegend=False,
                                     marker=dict(symbol="line-ns-open", size=14, color="black"),
                                     hovertemplate=f"first token at %{{x:.2f}} s<extra></extra>"))
    if result.judge_wall_s > 0:
        fig.add_trace(go.Bar(y=["judge"], x=[result.judge_wall_s], base=[result.pool_wall_s], orientation="h",
                             marker_color="#f58518", showlegend=False,
                             hovertemplate="judge took %{x:.2f} s<extra></extra>"))
    slowest = result.slowest_member_s
    title = "Run timeline"
    if slowest > 0 and result.rounds:
        first_round_wall = max(o.end_s for o in result.rounds[0]) - min(o.start_s for o in result.rounds[0])
        title += f": pool phase {first_round_wall:.2f} s = {first_round_wall / slowest:.3f}x the slowest member"
    fig.update_layout(title=title, xaxis_title="seconds since the first request", barmode="overlay",
                      height=120 + 32 * (len(rows) + 1), margin=dict(l=10, r=10, t=50, b=40))
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
        known = [o.cost_usd for o in outs if o.cost_usd is not None]
        cost.append(sum(known) if known else None)
    if result.verdict and result.verdict.attempts:
        a = result.verdict.attempts
        names.append("judge")
        p_tok.append(sum(x.prompt_tokens for x in a))
        c_tok.append(sum(x.completion_tokens for x in a))
        known = [x.cost_usd for x in a if x.cost_usd is not None]
        cost.append(sum(known) if known else None)
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
