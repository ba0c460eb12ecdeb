"""Pure rendering of fusion runs for the page: Markdown and escaped HTML strings, no Gradio imports."""

from __future__ import annotations

import difflib
import html

from ..records import FusionResult, MemberOutput
from .markdown import decision_head, position_lines

NOISE_NOTICE = ("**The tiny offline model has random weights: its output below is noise.** It is here so the "
                "workbench runs with no GPU or network; pick a real model or endpoint for meaningful answers.")
#: the same, for a visitor of a hosted copy whose host has only that model
NOISE_NOTICE_VISITOR = ("**The test model here has random weights: its output below is noise.** This copy shows how "
                        "fusion works, not what it gives.")


def esc(text: str) -> str:
    return html.escape(text or "", quote=True)


def fmt_s(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f} s"


def member_stats(o: MemberOutput, batch: tuple[int, float | None] | None = None) -> str:
    """One line under a member's column: when it finished (seconds from the run's start, its own row even in
    a batch), TTFT, tokens, its own tokens/s, cost, finish reason. ``batch``: (rows generated together, the
    batch's tokens/s) when this member shared one generate call with others."""
    if not o.ok:
        return f"**{o.status}**: {o.reason}"
    tps = o.tokens_per_s
    cost = f"${o.cost_usd:.5f}" if o.cost_usd is not None else "cost –"
    notes = "".join(f"<br>_{esc(n)}_" for n in o.notes)
    done = f"done at {fmt_s(o.end_s)}" if o.end_s else f"latency {fmt_s(o.latency_s)}"
    rate = f" · {tps:.1f} tok/s" if tps is not None else ""
    shared = ""
    if batch is not None and batch[0] > 1:
        shared = f"<br>_batched with {batch[0] - 1} other row(s): its tok/s is a share of the batch's"
        shared += f" {batch[1]:.1f} tok/s_" if batch[1] else "_"
    return (f"{done} · TTFT {fmt_s(o.ttft_s)} · {o.prompt_tokens}→{o.completion_tokens} tok{rate} · {cost} · "
            f"{o.finish_reason}{notes}{shared}")


def batches(result: FusionResult, round_no: int) -> dict[int, tuple[int, float | None]]:
    """Member -> (rows generated together, their tokens/s together) for one round: the members of one
    local model started together share a batched generate call."""
    rnd = result.rounds[round_no - 1] if 0 < round_no <= len(result.rounds) else []
    groups: dict[tuple, list[MemberOutput]] = {}
    for o in rnd:
        spec = result.pool[o.member]["model"] if o.member < len(result.pool) else {}
        if spec.get("backend") in ("local", "tiny", "gguf") and o.ok:
            groups.setdefault((spec.get("name"), round(o.start_s, 1)), []).append(o)
    out: dict[int, tuple[int, float | None]] = {}
    for rows in groups.values():
        span = max(o.end_s for o in rows) - min(o.start_s + (o.ttft_s or 0) for o in rows)
        tokens = sum(max(0, o.completion_tokens - 1) for o in rows)
        for o in rows:
            out[o.member] = (len(rows), tokens / span if span > 0.05 and tokens else None)
    return out


def change_note(prev: MemberOutput | None, cur: MemberOutput) -> str:
    """How much a member's answer changed since the previous round."""
    if prev is None or not prev.ok or not cur.ok:
        return ""
    ratio = difflib.SequenceMatcher(None, prev.text, cur.text).ratio()
    if ratio >= 0.999:
        return "unchanged"
    return f"changed ({100 * (1 - ratio):.0f}% different)"


def round_times(outputs: list[MemberOutput]) -> tuple[float, float]:
    """(wall seconds of a round: first request to last token, its slowest member's latency)."""
    if not outputs:
        return 0.0, 0.0
    return (max(o.end_s for o in outputs) - min(o.start_s for o in outputs), max(o.latency_s for o in outputs))


def _thumb_figures(images: list, size: int) -> list[str]:
    """Each image as a ``<figure>``: scaled down here to fit ``size`` px, sent inline as a data URI (never a
    path the browser would fetch from the server), its full size as the caption."""
    import base64
    import io

    from PIL import Image

    thumbs: list[str] = []
    for img in images:
        try:
            pil = img.to_pil() if hasattr(img, "to_pil") else Image.open(img)
            pil = pil.convert("RGB")
            w, h = pil.size
            pil.thumbnail((size, size))
            buf = io.BytesIO()
            pil.save(buf, format="PNG")
            src = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
            thumbs.append(f'<figure class="wb-thumb"><img src="{src}" alt="input image {len(thumbs) + 1}" '
                          f'width="{pil.size[0]}" height="{pil.size[1]}"><figcaption>{w}×{h}</figcaption></figure>')
        except Exception:  # already checked when the run started; a thumbnail is not worth failing over
            thumbs.append('<figure class="wb-thumb"><figcaption>(image)</figcaption></figure>')
    return thumbs


def thumbnails_html(text: str, images: list, size: int = 96) -> str:
    """The prompt a run was given, as a strip: its images as small thumbnails (scaled down here, sent inline,
    whole image visible) and its text."""
    thumbs = _thumb_figures(images, size)
    body = f'<div class="wb-thumbs">{"".join(thumbs)}</div>' if thumbs else ""
    return (f'<div class="wb-strip"><span class="wb-strip-label">This run\'s prompt</span>{body}'
            f'<div class="wb-prompt-echo">{esc(text) or "<em>(no text)</em>"}</div></div>')


def run_images_html(images: list, size: int = 96) -> str:
    """A stored run's prompt images as thumbnails (History's run view), or "" when it had none. ``images``:
    the store's ``ImageData`` of that run, so a visitor sees only the images of runs the store let them open."""
    thumbs = _thumb_figures(images, size)
    if not thumbs:
        return ""
    return (f'<div class="wb-strip wb-run-images"><span class="wb-strip-label">Prompt image'
            f'{"s" if len(thumbs) > 1 else ""}</span><div class="wb-thumbs">{"".join(thumbs)}</div></div>')


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
            status = "" if o.ok else f" <strong>{esc(o.status)}: {esc(o.reason)}</strong>"
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


def judge_live_html(text: str, phase: str = "") -> str:
    """The judge at work: what it has written so far (its rationale, then its answer), escaped; the verdict
    replaces it when the run ends."""
    head = esc(phase[:1].upper() + phase[1:]) if phase.startswith("judge") else "Judge at work"
    body = esc(text) if text else "<i>reading the answers…</i>"
    return (f'<div class="wb-judge-live" id="judge-live"><b>{head}…</b>'
            f'<div style="white-space:pre-wrap">{body}</div></div>')


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
        out.append(f'<p class="wb-winner{" wb-tie" if v.tie else ""}">{esc(decision_head(v, names))}: '
                   f'<strong>{esc(names.get(v.winner, str(v.winner)))}</strong></p>')
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
    """The run's one-line summary for the status bar (every round timed the same way: its wall time and its
    slowest member, beside the judge's time)."""
    ok = sum(o.ok for o in result.outputs)
    skipped = sum(o.skipped for o in result.outputs)
    parts = [f"Run `{result.run_id}`: {ok}/{len(result.outputs)} members answered"
             + (f" ({skipped} skipped: cannot see images)" if skipped else "")]
    walls = [round_times(r) for r in result.rounds]
    if len(walls) == 1:
        parts.append(f"pool {walls[0][0]:.2f} s (slowest member {walls[0][1]:.2f} s)")
    elif walls:
        parts.append(f"{len(walls)} rounds {result.pool_wall_s:.2f} s ("
                     + "; ".join(f"round {n}: {w:.2f} s, slowest member {m:.2f} s" for n, (w, m) in enumerate(walls, 1))
                     + ")")
    # a vote has no judge: its tally takes no model call, and a time for it would read as one
    parts += [f"judge {result.judge_wall_s:.2f} s" if result.judge is not None else "no judge (vote)",
              f"{result.total_tokens} tokens"]
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


def _plain_stats(o: MemberOutput) -> str:
    if not o.ok:
        return f"{o.status}: {o.reason}"
    tps = o.tokens_per_s
    return (f"done at {fmt_s(o.end_s)} · {o.prompt_tokens}→{o.completion_tokens} tok"
            + (f" · {tps:.1f} tok/s" if tps is not None else "") + f" · {o.finish_reason}")


def _run_column(r: FusionResult) -> str:
    import time

    v = r.verdict
    names = {o.member: o.label for o in r.outputs}
    winner = names.get(v.winner, "") if v is not None and v.winner is not None else ""
    judge = r.judge["label"] if r.judge else "none (vote)"
    cost = f"${r.total_cost_usd:.5f}" if r.total_cost_usd is not None else "cost –"
    members = "".join(
        f'<div class="wb-answer"><strong>{esc(o.label)}</strong>{" ★" if o.member == (v.winner if v else None) else ""}'
        f' <small>{esc(_plain_stats(o))}</small><pre class="wb-pre">{esc(o.text)}</pre></div>' for o in r.outputs)
    return (f'<div class="wb-compare-col" data-run="{esc(r.run_id)}">'
            f'<h4>{esc(r.run_id)}</h4><p>{time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at))} · '
            f'{esc(r.origin or "unknown")} · mode <strong>{esc(r.mode)}</strong> · judge <strong>{esc(judge)}</strong></p>'
            f'<p>pool: {esc(", ".join(o.label for o in r.outputs))}</p>'
            f'<p>{r.total_s:.2f} s · {r.total_tokens} tokens · {cost}'
            + (f" · winner <strong>{esc(winner)}</strong>" if winner else "")
            + (f" ({esc(v.winner_note)})" if v is not None and winner and v.winner_note else "") + "</p>"
            f'<h5>Final answer</h5><pre class="wb-pre wb-final">{esc(r.final_answer)}</pre>'
            f'<details><summary>Member answers ({len(r.outputs)})</summary>{members}</details>'
            + (f'<details><summary>Rationale</summary><pre class="wb-pre">{esc(v.rationale)}</pre></details>'
               if v is not None and v.rationale else "") + "</div>")


def compare_html(a: FusionResult, b: FusionResult) -> str:
    """Two runs side by side (same prompt, different pools or judges): what differs, then each run."""
    diffs = []
    same_prompt = a.prompt.get("text") == b.prompt.get("text") and \
        [i.get("sha256") for i in a.prompt.get("images", [])] == [i.get("sha256") for i in b.prompt.get("images", [])]
    if not same_prompt:
        diffs.append("the prompts differ")
    pool_a, pool_b = ([str(m.get("label")) for m in r.pool] for r in (a, b))
    if pool_a != pool_b:
        diffs.append("pools differ: " + ", ".join(pool_a) + " vs " + ", ".join(pool_b))
    ja, jb = (r.judge["label"] if r.judge else "vote" for r in (a, b))
    if ja != jb:
        diffs.append(f"judges differ: {ja} vs {jb}")
    if a.mode != b.mode:
        diffs.append(f"modes differ: {a.mode} vs {b.mode}")
    same_answer = a.final_answer.strip() == b.final_answer.strip()
    detail = [d for d in diffs if d != "the prompts differ"]
    head = (f'<p class="wb-compare-head">{"Same prompt" if same_prompt else "⚠ Different prompts"}; '
            + esc("; ".join(detail) if detail else "same pool, judge and mode")
            + f'. Final answers: <strong>{"the same" if same_answer else "different"}</strong>.</p>'
            f'<p><em>Prompt:</em> {esc(a.prompt.get("text", "")[:400])}</p>')
    return (head + '<div class="wb-compare">' + _run_column(a) + _run_column(b) + "</div>")
