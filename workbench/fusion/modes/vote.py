"""vote: no judge; the answer most members gave (extracted and normalised) wins. The baseline to beat."""

from __future__ import annotations

from collections import Counter

from ...answers import extract_answer
from ...records import MemberOutput, Verdict, mark_tie
from .base import Mode

MODE = Mode(name="vote", description="no judge: the most common extracted answer wins", judged=False, order=4)


def majority(outputs: list[MemberOutput]) -> tuple[str | None, int | None, dict[str, int], dict[int, str]]:
    """Vote over extracted answers: (answer, first member giving it, counts, per-member extraction).

    Ties go to the answer given first in pool order.
    """
    extracted = {o.member: extract_answer(o.text) for o in outputs if o.ok}
    extracted = {m: a for m, a in extracted.items() if a}
    if not extracted:
        return None, None, {}, {}
    counts = Counter(extracted.values())
    top = max(counts.values())
    first = next(m for m in sorted(extracted) if counts[extracted[m]] == top)
    return extracted[first], first, dict(counts), extracted


def vote_verdict(outputs: list[MemberOutput], injection_flagged: list[int]) -> Verdict:
    """The vote as a Verdict (valid when some member gave an extractable answer), with ``majority`` and any tie."""
    answer, winner, counts, extracted = majority([o for o in outputs if o.ok])
    v = Verdict("vote", winner=winner, answer=answer or "", votes=counts, extracted=extracted,
                valid=answer is not None, error="" if answer else "no member gave an extractable answer",
                injection_flagged=injection_flagged)
    return mark_tie(v, {o.member: o.text for o in outputs})  # no majority, or a tie broken by pool order: said
