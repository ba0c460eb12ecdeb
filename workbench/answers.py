"""Answer handling shared by fusion and evaluation: option letters, numbers, normalisation, extraction,
the unique top score, sums of known costs, and pool strings.

Every rule about reading an answer lives here once, so a vote, a debate's stop rule and a scorer
agree on what "the answer" of a reply is.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping, TypeVar

K = TypeVar("K")

#: a number as written in prose: "-1,000.5", "42" (not part of a word or a longer number)
NUMBER = r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?(?![\w])"

_ANSWER_PATTERNS = [
    r"final answer\s*(?:is|:)?\s*[:\-]?\s*(.+)",
    r"\banswer\s*(?:is|:)\s*(.+)",
    r"\\boxed\{([^}]*)\}",
]


def letters(n: int) -> list[str]:
    """Option / candidate letters: A, B, ... Z, then C26, C27, ..."""
    return [chr(ord("A") + i) if i < 26 else f"C{i}" for i in range(n)]


def last_number(text: str) -> float | None:
    """The last number in ``text`` as a float (thousands separators dropped), or None."""
    found = re.findall(r"-?\d[\d,]*(?:\.\d+)?", text)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def normalise(answer: str) -> str:
    """Lower-case, strip punctuation and markup; numbers in one canonical form ("1,000.0" -> "1000")."""
    a = answer.strip().lower()
    a = re.sub(r"[*_`$]", "", a)
    nums = re.findall(NUMBER, a)
    if nums and re.fullmatch(rf"\s*{NUMBER}\s*[.!]?\s*(?:[a-z%]+)?\s*", a):
        n = nums[0].replace(",", "")
        try:
            f = float(n)
            return str(int(f)) if f == int(f) else repr(f)
        except ValueError:
            return n
    return re.sub(r"[^\w\s-]", "", a).strip().rstrip(".")


def extract_answer(text: str) -> str:
    """The short final answer in a free-text reply: an "answer:" phrase, else the last number, else the last line."""
    for pat in _ANSWER_PATTERNS:
        found = re.findall(pat, text, flags=re.IGNORECASE)
        if found:
            first_line = found[-1].strip().splitlines()[0] if found[-1].strip() else ""
            if first_line:
                num = re.match(rf"\s*({NUMBER})", first_line)
                return normalise(num.group(1) if num else first_line)
    nums = re.findall(NUMBER, text)
    if nums:
        return normalise(nums[-1])
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return normalise(lines[-1]) if lines else ""


def unique_top(scores: Mapping[K, float]) -> K | None:
    """The key with the highest score, or None when there is no score or the top is shared."""
    if not scores:
        return None
    top = max(scores.values())
    best = [k for k, s in scores.items() if s == top]
    return best[0] if len(best) == 1 else None


def sum_known(values: Iterable[float | None]) -> float | None:
    """The sum of the values that are known (not None); None when none is (e.g. costs of local models)."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def split_pool(text: str | None) -> list[str]:
    """Comma-separated names (a pool: "tiny-offline, tiny-offline:skeptic"; a list of modes) as a list, blanks dropped."""
    return [p.strip() for p in (text or "").split(",") if p.strip()]
