"""A FusionResult as Markdown: prompt, members side by side, rounds, verdict, failures."""

from __future__ import annotations

from ..answers import and_list, letters
from ..provenance import summary_lines
from ..records import FusionResult, Verdict


def position_lines(v: Verdict, names: dict[int, str]) -> list[str]:
    """Plain-text lines on a verdict over several orderings: the corrected winner, how it was combined, each
    ordering's pick, and what the judge did not see in full. Shared by the Markdown and HTML renderers."""
    out = []
    if v.swap_k > 1 and not v.swap_method:  # a record from before verdicts were corrected for position
        agree = "–" if v.swap_agreement is None else f"{v.swap_agreement:.0%}"
        out.append(f"swap check over {v.swap_k} orderings (verdict from the first valid one, not corrected for "
                   f"position): {v.swap_outcome}, agreement {agree}")
    elif v.swap_k > 1:
        agree = "–" if v.swap_agreement is None else f"{v.swap_agreement:.0%}"
        how = {"borda": "the pick most orderings made", "mean score": "the top mean score"}.get(v.swap_method, "")
        tie = f"; tie broken by {v.swap_tie_broken_by}" if v.swap_tie_broken_by else ""
        out.append(f"position-corrected over {v.swap_k} orderings ({how}{tie}): {v.swap_outcome}, "
                   f"agreement {agree}, {v.swap_parsed} of {v.swap_k} replies valid")
        for n, (order, pick) in enumerate(zip(v.swap_orders, v.swap_winners), 1):
            shown = ", ".join(f"{lbl}={names.get(m, m)}" for lbl, m in zip(letters(len(order)), order))
            said = "no valid reply" if v.swap_scores[n - 1] is None else \
                f"picked {names.get(pick, pick)}" if pick is not None else "no single top"
            out.append(f"ordering {n} ({shown}): {said}")
    for m, chars in v.truncated_chars.items():
        out.append(f"{names.get(m, m)}: {chars} characters from the middle not shown to the judge (head and tail were)")
    return out


def decision_head(v: Verdict, names: dict[int, str]) -> str:
    """What the page, History and the exports write before the winner's name (``f"{head}: {name}"``): "Winner",
    "Winner by majority (3 of 4 votes)", or for a tie the members, what they shared and the rule that broke it
    ("Tie: a, b and c scored 10 each — broken by the judge's own pick among equal scores (...). Taken")."""
    name = lambda m: str(names.get(m, m))  # noqa: E731
    if v.mode == "vote" and v.votes:
        top, cast = max(v.votes.values()), sum(v.votes.values())
        if v.tie:
            what = f"no two members agree ({cast} answers, one vote each)" if top == 1 else \
                "the answers " + and_list(f'"{v.extracted.get(m, "")}" ({name(m)})' for m in v.tied) + \
                f" got {top} of {cast} votes each"
            return f"Tie, no majority: {what} — broken by {v.tie_broken_by}. Taken"
        if v.majority is not None:
            return f"Winner by {'majority' if v.majority else 'plurality, no majority'} ({top} of {cast} votes)"
    if v.tie:
        who = and_list(name(m) for m in v.tied)
        if v.swap_tie_broken_by:
            what = f"the {v.swap_parsed} orderings' picks split evenly between {who}"
            means = {v.scores.get(m) for m in v.tied}
            what += f", whose mean scores are equal ({means.pop():g})" if len(means) == 1 and None not in means else ""
        else:
            mean = f" (mean over {v.swap_parsed} orderings)" if v.swap_method else ""
            what = f"{who} scored {v.scores.get(v.winner, 0) if v.winner is not None else 0:g} each{mean}"
        return f"Tie: {what} — broken by {v.tie_broken_by}. Taken"
    return "Winner" + (f" (position-corrected over {v.swap_k} orderings)" if v.swap_method else "")


def _fmt(x: float | None, unit: str = "s") -> str:
    return "-" if x is None else f"{x:.2f}{unit}"


def members_markdown(result: FusionResult) -> str:
    """The run's members as a Markdown table: one row per member for a single round; one row per member per
    round (a *round* column, each row that round's times) when a debate ran several."""
    multi = len(result.rounds) > 1
    head = ["round"] * multi + ["#", "member", "ok", "TTFT", "latency"] + ["done at"] * multi + \
        ["tokens in/out", "cost", "finish"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n, rnd in enumerate(result.rounds, 1):
        for o in rnd:
            cells = [str(n)] * multi + [str(o.member), o.label, "yes" if o.ok else "no: " + o.status,
                                        _fmt(o.ttft_s), _fmt(o.latency_s)] + [_fmt(o.end_s)] * multi + \
                [f"{o.prompt_tokens}/{o.completion_tokens}", _fmt(o.cost_usd, " USD"), o.finish_reason]
            lines.append("| " + " | ".join(cells) + " |")
        if not multi:
            break
    return "\n".join(lines)


def to_markdown(r: FusionResult) -> str:
    """Render one run for humans (exports and the UI's history)."""
    import time

    out = [f"# Fusion run {r.run_id}", "",
           f"- {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(r.created_at))}, from "
           f"{r.origin or 'unknown origin'}",
           f"- mode: **{r.mode}**" + (f", {len(r.rounds)} rounds" if len(r.rounds) > 1 else ""),
           f"- judge: {r.judge['label'] if r.judge else '(none: vote)'}"
           + (" (also a member)" if r.judge_is_member else "")]
    if r.parent_run_id:
        out.append(f"- re-judged from run {r.parent_run_id}")
    if r.noise:
        out.append("- **a random-weight tiny model took part: its text is noise**")
    walls = [(max(o.end_s for o in rnd) - min(o.start_s for o in rnd), max(o.latency_s for o in rnd))
             for rnd in r.rounds if rnd]
    per_round = "; ".join(f"round {n} {_fmt(w)}, slowest member {_fmt(m)}" for n, (w, m) in enumerate(walls, 1))
    out += [f"- pool wall time {_fmt(r.pool_wall_s)} ({per_round or 'no round'}), "
            + (f"judge {_fmt(r.judge_wall_s)}" if r.judge is not None else "no judge (vote)")
            + f", total {_fmt(r.total_s)}; tokens {r.total_tokens}, "
            f"cost {_fmt(r.total_cost_usd, ' USD')}"]
    out += [f"- {line}" for line in summary_lines(r.environment)]
    out += ["", "## Prompt", "", r.prompt.get("text") or "(image only)"]
    for img in r.prompt.get("images", []):
        out.append(f"- image {img['sha256'][:12]} ({img['width']}x{img['height']})")
    out += ["", "## Members", "", members_markdown(r)]
    for n, rnd in enumerate(r.rounds, 1):
        out += ["", f"## Round {n}" if len(r.rounds) > 1 else "## Answers"]
        for o in rnd:
            body = o.text if o.ok else f"*{o.status}: {o.reason}*"
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
            head = decision_head(v, names)
            out.append(f"- {head[0].lower()}{head[1:]}: **{names.get(v.winner, v.winner)}**")
        if v.scores:
            out.append(("- mean scores over the orderings: " if v.swap_k > 1 else "- scores: ") + ", ".join(f"{names.get(m, m)} {s:g}" for m, s in v.scores.items()))
        if v.label_map:
            out.append("- labels shown to the judge: " + ", ".join(f"{k}={names.get(m, m)}" for k, m in v.label_map.items()))
        if v.votes:
            out.append("- votes: " + ", ".join(f"{a!r}: {c}" for a, c in v.votes.items()))
        out += [f"- {line}" for line in position_lines(v, names)]
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
