"""best-of: the judge picks the single strongest candidate; its text, unchanged, is the answer."""

from __future__ import annotations

from ...records import MemberOutput, Verdict
from .base import Mode


class BestOf(Mode):
    def final_answer(self, verdict: Verdict, outputs: list[MemberOutput]) -> str:
        return next(o.text for o in outputs if o.member == verdict.winner)


MODE = BestOf(
    name="best-of",
    description="the judge picks the strongest answer",
    order=1,
    task="Pick the single strongest candidate.",
    schema='{"winner": "<id>", "scores": {"<id>": <0-10>, ...}, "rationale": "<why>"}',
    needs_winner=True,
)
