"""merge: the judge writes one answer that combines the candidates' strengths, citing them."""

from __future__ import annotations

from .base import Mode

MODE = Mode(
    name="merge",
    description="the judge combines the answers' strengths, citing sources",
    order=2,
    task="Write one answer that combines the candidates' strengths and fixes their mistakes. "
         "After each part, cite the candidate(s) it came from in brackets, e.g. [A].",
    schema=('{"scores": {"<id>": <0-10>, ...}, "rationale": "<why>", '
            '"answer": "<one answer combining the candidates\' strengths; cite sources like [A] or [B]>"}'),
    needs_answer=True,
)
