"""Untrusted text inside the workbench's prompts: tags it cannot close or forge, and cuts that keep its end.

Candidate answers, debate answers and graded answers are written by models (and, in a public copy, prompts by
visitors); every prompt that wraps such text in tags passes it through ``escape_tags`` first, and a text too
long for a judge is ``clip``-ped to its head and tail.
"""

from __future__ import annotations

import re

#: Share of a cut text's budget kept from its beginning; the rest comes from its end.
HEAD_SHARE = 0.4
#: Tags that wrap untrusted text in the workbench's prompts (judge, debate, grader).
WRAPPER_TAGS = ("candidate", "prompt", "answer", "conversation")


def escape_tags(text: str, tags: tuple[str, ...] = WRAPPER_TAGS) -> str:
    """Escape every opening or closing look-alike of the wrapper tags in untrusted text, so it cannot close its
    own block or open a fake one (``</candidate>`` becomes ``&lt;/candidate>``); all other text is unchanged."""
    return re.sub(rf"<(\s*/?\s*(?:{'|'.join(tags)})\b)", r"&lt;\1", text, flags=re.IGNORECASE)


def clip(text: str, max_chars: int, head_share: float = HEAD_SHARE) -> tuple[str, int]:
    """``text`` cut to about ``max_chars``: its head and its tail (a final answer is usually at the end), with
    the cut marked where it is. Returns (text for the judge, characters cut); nothing is cut when it fits."""
    if len(text) <= max_chars:
        return text, 0
    head = int(max_chars * head_share)
    tail = max_chars - head
    cut = len(text) - head - tail
    return (text[:head] + f"\n[... {cut} characters cut here for length; the beginning and the end are shown ...]\n"
            + text[len(text) - tail:]), cut
