"""Pure rendering of fusion runs for the page: Markdown and escaped HTML strings, no Gradio imports."""

from __future__ import annotations

import difflib
import html

from ..records import FusionResult, MemberOutput
from .markdown import position_lines

NOISE_NOTICE = ("**The tiny offline model has random weights: its output below is noise.** It is here so the "
                "workbench runs with no GPU or network; pick a real model or endpoint for meaningful answers.")


def esc(text: str) -> str:
    return html.escape(text or "", quote=True)


def fmt_s(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f} s"


def member_stats(o: MemberOutput) -> str:
    """One line under a member's column: TTFT, latency, tokens, tokens/s, cost, finish reason."""
    if not o.ok:
        return f"**failed ({o.kind})**: {o.reason}"
    tps = o.tokens_per_s
    cost = f"${o.cost_usd:.5f}" if o.cost_usd is not None else "cost –"
    notes = "".join(f"<br>_{esc(n)}_" for n in o.notes)
    return (f"TTFT {fmt_s(o.ttft_s)} · latency {fmt_s(o.latency_s)} · {o.prompt_tokens}→{o.completion_tokens} tok · "
            f"{tps:.1f} tok/s · {cost} · {o.finish_reason}{notes}" if tps is not None else
            f"TTFT {fmt_s(o.ttft_s)} · latency {fmt_s(o.latency_s)} · {o.prompt_tokens}→{o.completion_tokens} tok · "
            f"{cost} · {o.finish_reason}{notes}")


def change_note(prev: MemberOutput | None, cur: MemberOutput) -> str:
    """How much a member's answer changed since the previous round."""
    if prev is None or not prev.ok or not cur.ok:
        return ""
    ratio = difflib.SequenceMatcher(None, prev.text, cur.text).ratio()
    if ratio >= 0.999:
        return "unchanged"
    return f"changed ({100 * (1 - ratio):.0f}% different)"


def transcript_html(result: FusionResult) -> str:
    """Debate rounds as collapsible sections: each member's answer per round and what changed."""
    if not result.rounds:
        return "<p><em>No rounds yet.</em></p>"
    parts = []
    for n, rnd in enumerate(result.rounds, 1):
        prev = {o.member: o for o in result.rounds[n - 2]} if n > 1 else {}
        items = []
        for o in rnd:
            note = change_note(prev.get(o.member), o)
            status = "" if o.ok else f" <strong>failed ({esc(o.kind)}): {esc(o.reason)}</strong>"
            items.append(f'<div class="wb-answer"><strong>{esc(o.label)}</strong>'
                         f'{" · <em>" + esc(note) + "</em>" if note else ""}{status}'
                         f'<pre class="wb-pre">{esc(o.text)}</pre></div>')
        open_attr = " open" if n == len(result.rounds) else ""
        parts.append(f'<details class="wb-round" data-round="{n}"{open_attr}><summary>Round {n}</summary>'
                     + "".join(items) + "</details>")
    if result.stopped_early:
        parts.append(f'<p class="wb-early"><em>The debate stopped early after round {result.stopped_early}: '
                     f"every member gave the same answer.</em></p>")
    return "\n".join(parts)


def verdict_html(result: FusionResult) -> str:
    """The judge's decision with anonymized labels mapped back to member names."""
    v = result.verdict
    names = {o.member: o.label for o in result.outputs}
    out = [f'<div class="wb-verdict" data-mode="{esc(result.mode)}">']
    if v is None:
        out.append("<p><strong>No verdict.</strong> " + esc("; ".join(result.failure_reasons)) + "</p></div>")
        return "".join(out)
    judge = result.judge["label"] if result.judge else "none (majority vote)"
    out.append(f"<p>Mode <strong>{esc(result.mode)}</strong> · judge <strong>{esc(judge)}</strong>"
               + (" (also a member)" if result.judge_is_member else "") + "</p>")
    if v.winner is not None:
        corrected = f" (position-corrected over {v.swap_k} orderings)" if v.swap_method else ""
        out.append(f'<p class="wb-winner">Winner{corrected}: <strong>{esc(names.get(v.winner, str(v.winner)))}</strong></p>')
    if v.scores:
        rows = "".join(f"<tr><td>{esc(names.get(m, str(m)))}</td><td>{s:g}</td><td>{esc(lbl)}</td></tr>"
                       for lbl, m in v.label_map.items() for mm, s in v.scores.items() if mm == m)
        score = "mean score" if v.swap_k > 1 else "score"
        shown = "shown to judge as (in the ordering quoted)" if v.swap_k > 1 else "shown to judge as"
        out.append(f'<table class="wb-scores"><tr><th>member</th><th>{score}</th><th>{shown}</th></tr>'
                   + rows + "</table>")
    if v.votes:
        out.append("<p>Votes: " + esc(", ".join(f"{a!r} × {c}" for a, c in v.votes.items())) + "</p>")
    lines = position_lines(v, names)
    if lines:
        out.append('<ul class="wb-swap">' + "".join(f"<li>{esc(x)}</li>" for x in lines) + "</ul>")
    if v.rationale:
        out.append(f'<details open><summary>Rationale</summary><pre class="wb-pre">{esc(v.rationale)}</pre></details>')
    if v.injection_flagged:
        out.append("<p>⚠ Candidates that addressed the judge (flagged, not obeyed): "
                   + esc(", ".join(names.get(m, str(m)) for m in v.injection_flagged)) + "</p>")
    if not v.valid:
        out.append(f"<p><strong>The judge gave no valid verdict:</strong> {esc(v.error)}</p>")
    if v.attempts:
        out.append(f"<details><summary>Judge replies ({len(v.attempts)})</summary>"
                   + "".join(f'<pre class="wb-pre">{esc(a.raw[:4000])}</pre>' for a in v.attempts) + "</details>")
    out.append(f'<h4>Final answer</h4><pre class="wb-pre wb-final">{esc(result.final_answer)}</pre>')
    if result.failure_reasons:
        out.append("<ul>" + "".join(f"<li>{esc(x)}</li>" for x in result.failure_reasons) + "</ul>")
    out.append("</div>")
    return "".join(out)


def status_line(result: FusionResult) -> str:
    """The run's one-line summary for the status bar."""
    ok = sum(o.ok for o in result.outputs)
    parts = [f"Run `{result.run_id}`: {ok}/{len(result.outputs)} members answered",
             f"pool {result.pool_wall_s:.2f} s (slowest member {result.slowest_member_s:.2f} s)",
             f"judge {result.judge_wall_s:.2f} s", f"{result.total_tokens} tokens"]
    if result.total_cost_usd is not None:
        parts.append(f"${result.total_cost_usd:.5f}")
    line = " · ".join(parts)
    if result.interrupted:
        line = f"⏹ Run `{result.run_id}` interrupted: {result.interrupted} (saved with what was written) · " + line
    if result.degraded:
        line += " · **degraded**: " + "; ".join(result.failure_reasons[:3])
    if result.noise:
        line += " · random-weight model: the text is noise"
    return line
