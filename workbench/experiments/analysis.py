"""A structured analysis of the pool's answers by the judge (consensus, contradictions, unique insights, blind
spots, each citing a member and a quoted span, as OpenRouter's analyst does), and a check of it: does every quoted
span exist in the answer of the member it is attributed to?

The check is a fuzzy match: case and whitespace are normalised, and a quote is *grounded* when some window of the
member's answer of the quote's length matches it with a ``difflib`` ratio of at least ``THRESHOLD`` (0.85: a
40-character quote may differ by about three characters, e.g. punctuation or a changed word ending, but not by a
different claim). An empty quote, or a quote attributed to a label that names no candidate, is ungrounded.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

import pandas as pd

from ..answers import letters
from ..errors import ConfigError
from ..escaping import clip, escape_tags
from ..records import MemberOutput
from .common import Experiment, dataset_items, mean_ci, member_table, run_sync

#: the lowest difflib ratio at which a quote counts as found in the member's answer (see the module docstring)
THRESHOLD = 0.85

def schema_for(labels: list[str], max_items: int = 4) -> dict[str, Any]:
    """The analysis the judge is asked for, as a JSON schema (local judges decode under it; endpoints get it as
    ``response_format``): every ``member`` is one of the candidates' labels, and lists are short."""
    member = {"enum": list(labels)}

    def items(props: dict[str, Any], most: int = max_items) -> dict[str, Any]:
        return {"type": "array", "maxItems": most, "items": {"type": "object", "additionalProperties": False,
                                                             "required": list(props), "properties": props}}

    quote = {"type": "string"}
    return {"type": "object", "additionalProperties": False,
            "required": ["consensus", "contradictions", "unique_insights", "blind_spots"],
            "properties": {
                "consensus": items({"point": {"type": "string"},
                                    "quotes": items({"member": member, "quote": quote}, len(labels))}),
                "contradictions": items({"topic": {"type": "string"},
                                         "stances": items({"member": member, "stance": {"type": "string"},
                                                           "quote": quote}, len(labels))}),
                "unique_insights": items({"member": member, "insight": {"type": "string"}, "quote": quote}),
                "blind_spots": items({"point": {"type": "string"}}),
            }}


TASK = ("Analyse the candidates; do not pick one. List: consensus points (each with quotes from the candidates "
        "that make it), contradictions (a topic and each candidate's stance, with a quote), unique insights (a point "
        "only one candidate makes, with its quote) and blind spots (what every candidate missed). Every quote must "
        "be copied word for word from the candidate named in \"member\" (its id, e.g. \"A\").")


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def match_score(quote: str, answer: str) -> float:
    """How well ``quote`` is found in ``answer``: 1.0 for an exact (normalised) substring, else the best difflib
    ratio over windows of the answer as long as the quote (stepping by word)."""
    q, a = _norm(quote), _norm(answer)
    if not q or not a:
        return 0.0
    if q in a:
        return 1.0
    starts = [0] + [m.end() for m in re.finditer(" ", a)]
    best = 0.0
    for s in starts:
        for length in (len(q) - 3, len(q), len(q) + 3):  # a few characters more or fewer
            window = a[s:s + max(1, length)]
            best = max(best, difflib.SequenceMatcher(None, q, window, autojunk=False).ratio())
    return best


def claims(analysis: dict[str, Any]) -> list[dict[str, Any]]:
    """The analysis as flat claims: kind, the member label cited, the claim's text and its quote (None for a
    blind spot, which quotes nobody)."""
    out = []
    for c in analysis.get("consensus") or []:
        for q in c.get("quotes") or []:
            out.append(dict(kind="consensus", label=q.get("member"), claim=c.get("point", ""), quote=q.get("quote")))
    for c in analysis.get("contradictions") or []:
        for s in c.get("stances") or []:
            out.append(dict(kind="contradiction", label=s.get("member"),
                            claim=f"{c.get('topic', '')}: {s.get('stance', '')}", quote=s.get("quote")))
    for c in analysis.get("unique_insights") or []:
        out.append(dict(kind="unique_insight", label=c.get("member"), claim=c.get("insight", ""), quote=c.get("quote")))
    for c in analysis.get("blind_spots") or []:
        out.append(dict(kind="blind_spot", label=None, claim=c.get("point", ""), quote=None))
    return out


def check(analysis: dict[str, Any], texts: dict[str, str], threshold: float = THRESHOLD) -> list[dict[str, Any]]:
    """Every claim of ``analysis`` with ``score`` and ``grounded`` (None for blind spots); ``texts`` maps each
    candidate label to its answer."""
    rows = []
    for c in claims(analysis):
        if c["kind"] == "blind_spot":
            rows.append(dict(c, score=None, grounded=None))
            continue
        label = str(c["label"] or "").strip().strip("[]")
        text = texts.get(label)
        score = match_score(str(c["quote"] or ""), text) if text is not None else 0.0
        rows.append(dict(c, label=label, score=score, grounded=score >= threshold))
    return rows


def render(rows: list[dict[str, Any]], names: dict[str, str] | None = None) -> str:
    """The checked analysis as Markdown, ungrounded quotes marked (what the UI shows)."""
    names = names or {}
    titles = {"consensus": "Consensus", "contradiction": "Contradictions", "unique_insight": "Unique insights",
              "blind_spot": "Blind spots"}
    out = []
    for kind, title in titles.items():
        mine = [r for r in rows if r["kind"] == kind]
        if not mine:
            continue
        out.append(f"**{title}**")
        for r in mine:
            if kind == "blind_spot":
                out.append(f"- {escape_tags(r['claim'])}")
                continue
            who = names.get(r["label"], r["label"] or "?")
            mark = "" if r["grounded"] else f" ⚠ *not found in {who}'s answer (match {r['score']:.2f})*"
            out.append(f"- {escape_tags(r['claim'])} — {who}: “{escape_tags(str(r['quote'] or ''))}”{mark}")
    return "\n".join(out)


async def analyse(prompt, outputs: list[MemberOutput], judge_member, backend, config) -> tuple[dict | None, int, str]:
    """Ask the judge for the structured analysis of ``outputs`` (labelled A, B... in pool order). Returns (the
    parsed analysis or None, judge calls, the raw reply)."""
    from ..fusion.judge import SYSTEM
    from ..types import Message, TextPart

    labels = letters(len(outputs))
    blocks = "\n\n".join(f'<candidate id="{lab}">\n{escape_tags(clip(o.text, 6000)[0])}\n</candidate>'
                         for lab, o in zip(labels, outputs))
    body = (f"User prompt:\n<prompt>\n{escape_tags(prompt.text)}\n</prompt>\n\nCandidates ({', '.join(labels)}):\n\n"
            f"{blocks}\n\nTask: {TASK}\nReply with only a JSON object with the keys consensus, contradictions, "
            f"unique_insights and blind_spots.")
    messages = [Message("system", (TextPart(SYSTEM),)), Message("user", (TextPart(body),))]
    r = await backend.complete(messages, config.replace(json_schema=schema_for(labels)))
    if not r.ok:
        return None, 1, r.partial_text
    return parse_analysis(r.text), 1, r.text


def parse_analysis(text: str) -> dict[str, Any] | None:
    """The analysis in a reply: its JSON object (a reply cut off at the token limit is closed first), or None
    when it has none of the four lists."""
    from ..fusion.judge import close_truncated_json, extract_json

    keys = ("consensus", "contradictions", "unique_insights", "blind_spots")
    for attempt in (lambda: extract_json(text),
                    lambda: close_truncated_json(text[max(0, text.find("{")):])):
        try:
            obj = attempt()
        except (ValueError, TypeError):
            continue
        if isinstance(obj, dict) and any(k in obj for k in keys):
            return obj
    return None


def grounding(df: pd.DataFrame, judge: Any, dataset: Any = None, threshold: float = THRESHOLD,
              registry: Any = None, seed: int = 0) -> Experiment:
    """The judge's structured analysis of each item's cached member answers, every quote checked.

    Returns one row per claim (item, kind, member, claim, quote, match score, grounded), the grounding rate with a
    t or Wilson interval over items (``summary``), rates per kind and per member, the items whose analysis did not
    parse, and a figure of the rates. ``Experiment.details`` holds each item's analysis rendered as Markdown with
    ungrounded quotes marked.
    """
    import plotly.graph_objects as go

    from ..fusion.fanout import load_members
    from ..settings import FusionSettings
    from ..specs import Member, load_registry
    from ..types import Failure

    registry = registry or load_registry()
    judge_member = judge if isinstance(judge, Member) else registry.member(judge)
    members = member_table(df)
    by_id = dataset_items(df, dataset)
    config = FusionSettings(seed=seed).judge_config()

    async def run():
        backend = (await load_members([judge_member]))[0]
        if isinstance(backend, Failure):
            raise ConfigError(f"the judge could not be loaded: {backend.reason}")
        rows, rendered, calls = [], [], 0
        for item in dict.fromkeys(members["item_id"]):
            g = members[(members["item_id"] == item) & members["ok"]].sort_values("order")
            outs = [MemberOutput(int(r.order), r.system, 1, True, str(r.answer)) for r in g.itertuples()]
            if not outs:
                continue
            labels = letters(len(outs))
            analysis, n, raw = await analyse(by_id[item].to_prompt(), outs, judge_member, backend, config)
            calls += n
            if analysis is None:
                rendered.append(dict(item_id=item, parsed=False, markdown="", raw=raw))
                continue
            checked = check(analysis, {lab: o.text for lab, o in zip(labels, outs)}, threshold)
            system = dict(zip(labels, [o.label for o in outs]))
            for c in checked:
                rows.append(dict(item_id=item, member=system.get(c["label"]), **c))
            rendered.append(dict(item_id=item, parsed=True, markdown=render(checked, system), raw=raw))
        return rows, rendered, calls

    rows, rendered, calls = run_sync(run())
    frame = pd.DataFrame(rows, columns=["item_id", "kind", "label", "member", "claim", "quote", "score", "grounded"])
    quoted = frame[frame["grounded"].notna()]
    per_item = quoted.groupby("item_id")["grounded"].mean().to_numpy(dtype=float)
    rate, lo, hi = mean_ci(per_item)
    by_kind = {k: float(g["grounded"].astype(float).mean()) for k, g in quoted.groupby("kind")}
    by_member = {k: float(g["grounded"].astype(float).mean()) for k, g in quoted.groupby("member")}
    parsed = sum(r["parsed"] for r in rendered)
    summary = dict(items=len(rendered), analyses_parsed=parsed, claims=len(frame), quoted_claims=len(quoted),
                   grounded_claims=int(quoted["grounded"].sum()) if len(quoted) else 0,
                   grounding_rate=rate, grounding_rate_ci=(lo, hi), threshold=threshold,
                   by_kind=by_kind, by_member=by_member)
    fig = go.Figure()
    fig.add_trace(go.Bar(x=list(by_kind), y=list(by_kind.values()), name="by kind"))
    fig.add_trace(go.Bar(x=list(by_member), y=list(by_member.values()), name="by member cited"))
    fig.update_layout(title=f"Grounding: {summary['grounded_claims']} of {len(quoted)} quotes found in the cited "
                            f"answer (match >= {threshold})", yaxis_title="grounded share", yaxis_range=[0, 1.05])
    return Experiment("grounding", frame, fig, summary, judge_calls=calls, details=pd.DataFrame(rendered))
