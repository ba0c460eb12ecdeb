"""A run's progress in words, for clients that show only text (``"fusion": {"progress": "reasoning"}`` or
``"content"``): who is loading, each round and member as it finishes, the judge's rationale as it writes it,
the verdict, and the seconds since the run began when nothing else happens. The answer is not in it."""

from __future__ import annotations

import time

from ..events import Event, JudgeStart, JudgeToken, Loading, MemberDone, RoundEnd, RoundStart, VerdictEvent
from ..render.markdown import decision_head
from .streaming import FieldStream


class Narration:
    """Feed it the run's events; each call returns the text to show next ("" when there is none)."""

    def __init__(self, mode: str | None, labels: list[str], rounds: int, judge: str | None):
        """``mode`` None: one plain model (its tokens are the answer; only the start and the time are said)."""
        self.mode, self.labels, self.rounds, self.judge = mode, labels, rounds, judge
        self.t0 = time.monotonic()
        self.rationale: FieldStream | None = None
        self.said = ""  #: the rationale written so far

    def start(self) -> str:
        if self.mode is None:
            return f"Asking {', '.join(self.labels)}…\n"
        who = f"judge {self.judge}" if self.judge else "no judge"
        return f"Fusion: {self.mode} over {len(self.labels)} members ({', '.join(self.labels)}), {who}.\n"

    def tick(self) -> str:
        return f"… {time.monotonic() - self.t0:.0f} s\n"

    def see(self, event: Event) -> str:
        if self.mode is None and not isinstance(event, Loading):
            return ""
        match event:
            case Loading():
                return f"Loading {', '.join(event.models)} (first use)…\n"
            case RoundStart():
                head = f"Round {event.round} of {self.rounds}" if self.rounds > 1 else "Members"
                return f"{head}: {len(self.labels)} writing…\n"
            case MemberDone():
                o = event.output
                took = f"{o.latency_s:.1f} s"
                if o.ok:
                    return f"- {o.label}: {o.completion_tokens or 0} tokens in {took}\n"
                return f"- {o.label}: {'skipped' if o.skipped else 'failed'} ({o.reason}) after {took}\n"
            case RoundEnd() if event.agreed:
                return "Every member gives the same answer: the debate stops here.\n"
            case JudgeStart():
                self.rationale, self.said = FieldStream("rationale"), ""
                of = f" (ordering {event.attempt} of {event.orderings})" if event.orderings > 1 else ""
                return f"Judge reading {len(event.order)} answers{of}…\nJudge: "
            case JudgeToken():
                if self.rationale is None:
                    return ""
                text = self.rationale.feed(event.text)
                new = text[len(self.said):] if text.startswith(self.said) else ""
                self.said = text
                return new
            case VerdictEvent():
                v = event.verdict
                names = dict(enumerate(self.labels))
                if not v.valid:
                    return f"\nNo valid verdict: {v.error}\n"
                if v.winner is not None:
                    return f"\n{decision_head(v, names)}: {names.get(v.winner, v.winner)}.\n"
                return "\nThe judge merged the answers.\n"
        return ""
