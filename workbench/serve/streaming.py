"""Streaming a fused answer: the judge's ``answer`` field decoded as its JSON reply arrives, and stop sequences
held back across chunk boundaries.

A judge that writes the answer (merge, debate) replies ``{"rationale": ..., "scores": ..., "answer": "..."}``;
its tokens stream in as raw JSON. ``AnswerStream`` finds the top-level ``answer`` string and yields its decoded
text as it grows, but only once the fields before it form a valid verdict (so what was streamed is what the
verdict says, not a reply that is then thrown away and retried). A reply that puts ``answer`` first streams
nothing live; the answer is then sent whole when the verdict is in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from ..fusion.judge import _scan



def _key(name: str) -> re.Pattern[str]:
    return re.compile(r'"' + re.escape(name) + r'"\s*:\s*"')


_ANSWER_KEY = _key("answer")


class AnswerStream:
    """Feed it the judge's reply piece by piece; it returns the answer's new text (maybe "") each time.

    Args:
        check_prefix: called with the reply's fields before ``answer`` (a dict); raises ValueError when they
            would not make a valid verdict, and then nothing of this reply is streamed.
    """

    def __init__(self, check_prefix: Callable[[dict[str, Any]], None]):
        self.check_prefix = check_prefix
        self.buf = ""
        self.sent = ""  #: the answer text returned so far
        self.live: bool | None = None  #: None: not decided yet; True: streaming; False: never for this reply
        self._value_at = 0
        self._closed = False

    def feed(self, text: str) -> str:
        self.buf += text
        if self.live is False or self._closed:
            return ""
        if self.live is None:
            found = _value_start(self.buf, _ANSWER_KEY)
            if found is None:
                return ""
            key_at, self._value_at = found
            self.live = self._prefix_ok(key_at)
            if not self.live:
                return ""
        decoded, self._closed = _partial_string(self.buf[self._value_at:])
        if not decoded.startswith(self.sent):  # cannot happen for a JSON string that only grows; be safe
            return ""
        new, self.sent = decoded[len(self.sent):], decoded
        return new

    def _prefix_ok(self, key_at: int) -> bool:
        start = self.buf.find("{")
        head = self.buf[start:key_at].rstrip().rstrip(",") + "}"
        try:
            obj = json.loads(head, strict=False)
            if not isinstance(obj, dict):
                return False
            self.check_prefix(obj)
        except ValueError:
            return False
        return True


class FieldStream:
    """A top-level string field of the judge's JSON reply (``rationale``, ``answer``), decoded as it is written:
    ``feed`` takes the reply's next piece and returns the field's whole text so far ("" until it starts). For
    showing the judge at work; what the verdict says is the parsed reply's."""

    def __init__(self, name: str):
        self.key = _key(name)
        self.buf = ""
        self.text = ""
        self._value_at: int | None = None

    def feed(self, piece: str) -> str:
        self.buf += piece
        if self._value_at is None:
            found = _value_start(self.buf, self.key)
            if found is None:
                return ""
            self._value_at = found[1]
        self.text = _partial_string(self.buf[self._value_at:])[0] or self.text
        return self.text


def _value_start(buf: str, key: re.Pattern[str]) -> tuple[int, int] | None:
    """(where ``key`` starts, where its string value's text starts) at the top level of the first JSON object in
    ``buf``; None until that is in ``buf``."""
    start = buf.find("{")
    if start < 0:
        return None
    for m in key.finditer(buf, start):
        depth, in_string = 0, False
        for i, ch, in_str in _scan(buf, start):
            if i >= m.start():
                break
            depth += (ch == "{") - (ch == "}")
            in_string = in_str
        if depth == 1 and not in_string:
            return m.start(), m.end()
    return None


def _partial_string(s: str) -> tuple[str, bool]:
    """The decoded text of a JSON string's body ``s`` so far (without its opening quote), and whether its
    closing quote has come. An escape cut off at the end is left for the next piece."""
    esc = False
    end = None
    for i, ch in enumerate(s):
        if esc:
            esc = False
        elif ch == "\\":
            esc = True
        elif ch == '"':
            end = i
            break
    body = s if end is None else s[:end]
    if end is None:
        body = re.sub(r"\\(u[0-9a-fA-F]{0,3})?$", "", body)  # a cut escape: wait for the rest
    try:
        text = json.loads('"' + body + '"', strict=False)
    except ValueError:
        return "", end is not None
    if end is None and text and "\ud800" <= text[-1] <= "\udbff":  # half a surrogate pair
        text = text[:-1]
    return text, end is not None


class StopFilter:
    """Passes streamed text through, cut before the first stop sequence; holds back a tail that could be the
    start of one until the next piece (or ``flush``) says."""

    def __init__(self, stops: list[str]):
        self.stops = stops
        self.text = ""  #: everything given
        self.sent = ""  #: everything let through
        self.stopped = False

    def push(self, piece: str) -> str:
        if self.stopped:
            return ""
        self.text += piece
        if not self.stops:
            out, self.sent = self.text[len(self.sent):], self.text
            return out
        cut = min((i for i in (self.text.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            safe = cut
        else:
            hold = max(len(s) for s in self.stops) - 1
            safe = max(len(self.sent), len(self.text) - hold)
        out = self.text[len(self.sent):safe]
        self.sent += out
        return out

    def flush(self) -> str:
        if self.stopped or not self.stops:
            return ""
        out = self.text[len(self.sent):]
        self.sent += out
        return out
