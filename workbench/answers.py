"""Answer handling shared by fusion and evaluation: option letters, numbers, normalisation, extraction,
the unique top score, sums of known costs, and pool strings (and names as prose).

Every rule about reading an answer lives here once, so a vote, a debate's stop rule and a scorer
agree on what "the answer" of a reply is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import TypeVar

K = TypeVar("K")

#: a number as written in prose: "-1,000.5", "42", "3/4", "1 1/2" (not part of a word or a longer number).
#: Commas count as thousands separators only in groups of three ("1,000"), so "1,2" is two numbers.
NUMBER = (r"(?<![\w.,/])[-−]?(?:\d+\s+\d+\s*/\s*\d+|(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?|\.\d+)"
          r"(?![\w/^]|[.,:]\d)")

_ONES = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())}
_TENS = {w: 10 * (i + 2) for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9}
_FRACTION_WORDS = {"half": Fraction(1, 2), "halves": Fraction(1, 2), "third": Fraction(1, 3),
                   "thirds": Fraction(1, 3), "quarter": Fraction(1, 4), "quarters": Fraction(1, 4)}

#: words that cannot be the unit after a number word ("one of them" is not 1)
_NOT_UNITS = set("of them the a an is are was to in on for and or but it this that these those than as at by "
                 "with from if so".split())

#: "final answer: X", "the answer is X", "answer = X" (the last one in the text wins)
_ANSWER_PHRASE = re.compile(r"\b(?:final\s+answer\b\s*(?:is\b|:|=)?|answer\b\s*(?:is\b|:|=))\s*(?::|-(?=\s))?[ \t]*",
                            re.IGNORECASE)


def letters(n: int) -> list[str]:
    """Option / candidate letters: A, B, ... Z, then C26, C27, ..."""
    return [chr(ord("A") + i) if i < 26 else f"C{i}" for i in range(n)]


def parse_number(token: str) -> Fraction | None:
    """A number token ("-1,000.5", "3/4", "1 1/2", "−2") as an exact Fraction, or None."""
    t = token.strip().replace("−", "-").replace(",", "")
    sign = -1 if t.startswith("-") else 1
    t = t.lstrip("-").strip()
    try:
        mixed = re.fullmatch(r"(\d+)\s+(\d+)\s*/\s*(\d+)", t)
        if mixed:
            whole, num, den = (int(g) for g in mixed.groups())
            return sign * (whole + Fraction(num, den))
        frac = re.fullmatch(r"(\d+(?:\.\d+)?)\s*/\s*(\d+)", t)
        if frac:
            return sign * Fraction(frac.group(1)) / int(frac.group(2))
        return sign * Fraction(t)
    except (ValueError, ZeroDivisionError):
        return None


def words_to_number(text: str) -> Fraction | None:
    """"five", "twenty-one", "one hundred and five", "a half", "three quarters" as a number, else None."""
    words = [w for w in re.split(r"[\s-]+", text.strip().lower()) if w and w != "and"]
    if not words:
        return None
    if len(words) <= 2 and words[-1] in _FRACTION_WORDS:
        count = 1 if len(words) == 1 or words[0] in ("a", "one", "an") else _ONES.get(words[0])
        return None if count is None else count * _FRACTION_WORDS[words[-1]]
    total, current, seen = 0, 0, False
    for w in words:
        if w in _ONES:
            current += _ONES[w]
        elif w in _TENS:
            current += _TENS[w]
        elif w in _SCALES and seen:
            if _SCALES[w] == 100:
                current *= 100
            else:
                total, current = total + current * _SCALES[w], 0
        else:
            return None
        seen = True
    return Fraction(total + current)


def format_number(value: Fraction) -> str:
    """One canonical string per value: "3", "-0.25", "1/3" (a decimal when the value has a finite one)."""
    if value.denominator == 1:
        return str(value.numerator)
    for k in range(1, 19):
        if (10**k) % value.denominator == 0:
            digits = str(abs(value.numerator) * (10**k // value.denominator)).rjust(k + 1, "0")
            return ("-" if value < 0 else "") + (digits[:-k] + "." + digits[-k:]).rstrip("0")
    return f"{value.numerator}/{value.denominator}"


def last_number(text: str) -> float | None:
    """The last number in ``text`` as a float (fractions and thousands separators understood), or None."""
    for token in reversed(re.findall(NUMBER, text)):
        value = parse_number(token)
        if value is not None:
            return float(value)
    return None


def answer_value(answer: str) -> Fraction | None:
    """The number a normalised answer stands for ("1/2", "-3", "0.25"), or None when it is not one."""
    return parse_number(answer) if re.fullmatch(NUMBER, answer.strip()) else None


def _braced(text: str, start: int) -> tuple[str, int] | None:
    """The contents of the ``{...}`` that opens at ``text[start]`` (nested braces allowed), and its end."""
    if start >= len(text) or text[start] != "{":
        return None
    depth = 0
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start + 1:i], i + 1
    return None


def boxed(text: str) -> list[str]:
    r"""Every ``\boxed{...}`` / ``\fbox{...}`` content in ``text``, in order (nested braces kept whole)."""
    out = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*", text):
        got = _braced(text, m.end())
        if got is not None:
            out.append(got[0])
    return out


def _strip_latex(a: str) -> str:
    a = re.sub(r"(\d)\s*\\([dt]?frac)", r"\1 \\\2", a)  # 1\frac{1}{2}: a mixed number
    a = re.sub(r"\\[dt]?frac\s*(\d)\s*(\d)", r"\1/\2", a)  # \frac12
    a = re.sub(r"\^\s*\{([^{}]*)\}", r"^\1", a)  # 10^{6} -> 10^6
    for _ in range(3):  # \frac{\frac..}: a few passes
        a = re.sub(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}", r"\1/\2", a)
    a = re.sub(r"\\(?:text|textbf|mathrm|mathbf|boxed)\s*\{([^{}]*)\}", r"\1", a)
    a = re.sub(r"\\(?:left|right|,|;|!|\(|\)|\[|\])", " ", a)
    return a.replace("\\%", "%").replace("\\$", "$")


def _unit_free_number(a: str) -> Fraction | None:
    """A lone number with an optional currency sign before it and up to two unit words after it
    ("$1,000", "3 apples", "12 cm", "50%", "5 million"), as a value; else None."""
    power = re.fullmatch(r"(-?\d+)\s*\^\s*(\d{1,3})", a)
    if power:
        return Fraction(int(power.group(1)) ** int(power.group(2)))
    m = re.fullmatch(rf"(?:[$£€¥]\s*)?({NUMBER})\s*(%|°\s*[a-z]?|[a-z]+(?:\s+[a-z]+)?)?", a)
    if not m:
        return None
    value = parse_number(m.group(1))
    scale = _SCALES.get((m.group(2) or "").split(" ")[0]) if value is not None else None
    return value * scale if scale and value is not None else value


def normalise(answer: str) -> str:
    """One canonical form per answer, so equal answers compare equal in a vote and a scorer: lower case,
    no markup or trailing punctuation; a number (digits, a fraction, words, with a currency sign or
    units) as one canonical string ("1,000.0" -> "1000", "1/2" and "0.5" -> "0.5", "five apples" -> "5")."""
    a = _strip_latex(answer.strip())
    a = a.lower().replace("−", "-")
    a = re.sub(r"[*_`$]", "", a) if not re.search(r"\$\s*\d", a) else re.sub(r"[*_`]", "", a)
    a = re.sub(r"\s+", " ", a).strip().strip("\"'“”‘’").strip()
    a = re.sub(r"[.!?,;:]+$", "", a).strip()
    a = re.sub(r"^\(?([a-z])\)(?:\s.*)?$", r"\1", a)  # "(b)", "b) paris" -> "b"
    a = re.sub(r"^[a-z]\s*=\s*(?=[-−$£€\d.])", "", a)  # "x = 5" -> "5"
    value = _unit_free_number(a)
    if value is None:
        words = a.split(" ")
        for cut in range(len(words), max(0, len(words) - 3), -1):  # number words, then up to two unit words
            if any(w in _NOT_UNITS for w in words[cut:]):
                break
            value = words_to_number(" ".join(words[:cut]))
            if value is not None:
                break
    if value is not None:
        return format_number(value)
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s/.,:^%-]", "", a)).strip().rstrip(".,:")


def extract_answer(text: str) -> str:
    r"""The short final answer in a free-text reply, normalised.

    In order: the last ``\boxed{}``; else the last answer phrase ("final answer: X", "the answer is X"),
    where a number at the start of the phrase is the answer; else the last number; else the last line.
    """
    box = boxed(text)
    if box:
        return normalise(box[-1])
    text = _strip_latex(text)
    # what follows each answer phrase, to the end of its line (a later phrase on the same line wins)
    phrases = [text[m.end():].split("\n", 1)[0].strip() for m in _ANSWER_PHRASE.finditer(text)]
    phrases = [p for p in phrases if p]
    if phrases:
        line = phrases[-1]
        if re.search(r"(?<![<>!=])=(?!=)", line):  # "3 + 4 = 7", "x = 5": what comes after the last "="
            line = re.split(r"(?<![<>!=])=(?!=)", line)[-1].strip() or line
        lead = re.match(rf"\s*(?:[$£€¥]\s*)?{NUMBER}(?:\s*%|\s+(?:hundred|thousand|million|billion)\b)?", line)
        if lead and not re.match(r"\s*[-+*/×÷^]\s*\d", line[lead.end():]):
            return normalise(lead.group(0))
        word_lead = re.match(r"\s*([a-z]+(?:[\s-][a-z]+){0,3})", line, flags=re.IGNORECASE)
        if word_lead and words_to_number(word_lead.group(1)) is not None and len(line.split()) <= 4:
            return normalise(line)
        return normalise(re.split(r"(?<=[\w)])[.;](?:\s|$)", line)[0])
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


def and_list(names: Iterable[str]) -> str:
    """Names as prose: "a", "a and b", "a, b and c" (the reverse of ``split_pool``, for sentences)."""
    names = list(names)
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)
