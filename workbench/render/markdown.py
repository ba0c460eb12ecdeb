"""A FusionResult as Markdown: prompt, members side by side, rounds, verdict, failures."""

from __future__ import annotations

from ..records import FusionResult


def _fmt(x: float | None, unit: str = "s") -> str:
    return "-" if x is None else f"{x:.2f}{unit}"


def to_markdown(r: FusionResult) -> str:
    """Render one run for humans (exports and the UI's history)."""
    out = [f"# Fusion run {r.run_id}", "",
           f"- mode: **{r.mode}**" + (f", {len(r.rounds)} rounds" if len(r.rounds) > 1 else ""),
           f"- judge: {r.judge['label'] if r.judge else '(none: vote)'}"
           + (" (also a member)" if r.judge_is_member else "")]
    if r.parent_run_id:
        out.append(f"- re-judged from run {r.parent_run_id}")
    if r.noise:
        out.append("- **a random-weight tiny model took part: its text is noise**")
    out += [f"- pool wall time {_fmt(r.pool_wall_s)} (slowest member {_fmt(r.slowest_member_s)}), "
            f"judge {_fmt(r.judge_wall_s)}, total {_fmt(r.total_s)}; tokens {r.total_tokens}, "
            f"cost {_fmt(r.total_cost_usd, ' USD')}", "", "## Prompt", "", r.prompt.get("text") or "(image only)"]
    for img in r.prompt.get("images", []):
        out.append(f"- image {img['sha256'][:12]} ({img['width']}x{img['height']})")
    out += ["", "## Members", "", "| # | member | ok | TTFT | latency | tokens in/out | cost | finish |",
            "|---|---|---|---|---|---|---|---|"]
    for o in r.rounds[0] if r.rounds else []:
        out.append(f"| {o.member} | {o.label} | {'yes' if o.ok else 'no: ' + o.kind} | {_fmt(o.ttft_s)} | "
                   f"{_fmt(o.latency_s)} | {o.prompt_tokens}/{o.completion_tokens} | {_fmt(o.cost_usd, ' USD')} | "
                   f"{o.finish_reason} |")
    for n, rnd in enumerate(r.rounds, 1):
        out += ["", f"## Round {n}" if len(r.rounds) > 1 else "## Answers"]
        for o in rnd:
            body = o.text if o.ok else f"*failed ({o.kind}): {o.reason}*"
            out += ["", f"### {o.label}", "", body]
    if r.stopped_early:
        out += ["", f"*Debate stopped early after round {r.stopped_early}: the answers agreed.*"]
    v = r.verdict
    out += ["", "## Verdict", ""]
    if v is None:
        out.append("*no verdict*")
    else:
        names = {o.member: o.label for o in r.outputs}
        if v.winner is not None:
            out.append(f"- winner: **{names.get(v.winner, v.winner)}**")
        if v.scores:
            out.append("- scores: " + ", ".join(f"{names.get(m, m)} {s:g}" for m, s in v.scores.items()))
        if v.label_map:
            out.append("- labels shown to the judge: " + ", ".join(f"{k}={names.get(m, m)}" for k, m in v.label_map.items()))
        if v.votes:
            out.append("- votes: " + ", ".join(f"{a!r}: {c}" for a, c in v.votes.items()))
        if v.swap_k > 1:
            out.append(f"- swap check over {v.swap_k} orderings: {v.swap_outcome} (agreement {_fmt(v.swap_agreement, '')})")
        if v.rationale:
            out += ["", "**Rationale.** " + v.rationale]
        if not v.valid:
            out.append(f"- no valid verdict: {v.error}")
        if v.injection_flagged:
            out.append("- candidates that addressed the judge (flagged, not obeyed): "
                       + ", ".join(names.get(m, str(m)) for m in v.injection_flagged))
    out += ["", "## Final answer", "", r.final_answer or "*none*"]
    if r.failure_reasons or r.notes:
        out += ["", "## Failures and notes", ""] + [f"- {x}" for x in r.failure_reasons + r.notes]
    return "\n".join(out) + "\n"
