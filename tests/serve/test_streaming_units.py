"""The pieces the stream is built from: the judge's answer decoded as it arrives, stop sequences across chunks,
the request's messages as a Prompt."""

from __future__ import annotations

import json

import pytest

from workbench.fusion.modes import get_mode
from workbench.serve import protocol as P
from workbench.serve.streaming import AnswerStream, StopFilter

MERGE = get_mode("merge")


def feed_all(reply: str, size: int) -> tuple[str, AnswerStream]:
    s = AnswerStream(lambda obj: MERGE.validate({**obj, "answer": "x"}, ["A", "B"]))
    out = "".join(s.feed(reply[i:i + size]) for i in range(0, len(reply), size))
    return out, s


ANSWER = 'Line one "quoted" \\ back\nslash, tab\t, unicode é → 😀 done'
REPLY = json.dumps({"rationale": 'B says "answer": "no" inside a string', "scores": {"A": 7, "B": 3},
                    "answer": ANSWER})


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64, 10_000])
def test_the_answer_streams_exactly_whatever_the_chunking(size):
    out, s = feed_all("```json\n" + REPLY + "\n```", size)
    assert out == ANSWER and s.live  # escapes and surrogate pairs cut between chunks come out whole


def test_ascii_escaped_unicode_cut_mid_escape():
    reply = json.dumps({"rationale": "r", "scores": {"A": 1, "B": 2}, "answer": "é 😀 x"}, ensure_ascii=True)
    assert "\\ud83d" in reply
    for size in (1, 3, 4):
        assert feed_all(reply, size)[0] == "é 😀 x"


def test_nothing_streams_when_the_fields_before_the_answer_are_not_a_valid_verdict():
    bad = json.dumps({"rationale": "r", "scores": {"A": 70}, "answer": "secret"})  # a score out of range
    out, s = feed_all(bad, 4)
    assert out == "" and s.live is False


def test_nothing_streams_live_when_the_answer_comes_first():
    first = json.dumps({"answer": "early", "rationale": "r", "scores": {"A": 1, "B": 2}})
    out, s = feed_all(first, 3)
    assert out == "" and s.live is False


def test_a_reply_cut_off_mid_answer_streams_what_it_has():
    out, _ = feed_all(REPLY[:-20], 5)
    assert ANSWER.startswith(out) and len(out) > 10


@pytest.mark.parametrize("size", [1, 2, 4, 100])
def test_stop_sequences_are_cut_across_chunk_boundaries(size):
    text = "The answer is 5.\nUser: and more"
    f = StopFilter(["\nUser:", "###"])
    out = "".join(f.push(text[i:i + size]) for i in range(0, len(text), size)) + f.flush()
    assert out == "The answer is 5." and f.stopped
    g = StopFilter(["###"])
    assert "".join(g.push(c) for c in "no stop here #") + g.flush() == "no stop here #"


def test_messages_become_a_prompt_with_system_history_and_images():
    req = P.parse_request(json.dumps({"model": "m", "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "developer", "content": "Use metric units."},
        {"role": "user", "content": [{"type": "text", "text": "Look:"},
                                     {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
        {"role": "assistant", "content": "A cat."},
        {"role": "user", "content": "How big?"}]}).encode())
    conv = P.conversation(req)
    assert conv.system == "Be brief.\n\nUse metric units." and conv.text == "How big?"
    assert conv.history == [{"role": "user", "text": "Look:"}, {"role": "assistant", "text": "A cat."}]
    assert conv.images == ["https://example.com/a.png"]  # earlier turns' images go with the prompt


def test_response_format_becomes_the_answer_schema():
    assert P.answer_schema(None) is None and P.answer_schema({"type": "text"}) is None
    assert P.answer_schema({"type": "json_object"}) == {"type": "object"}
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    assert P.answer_schema({"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}) == schema
    with pytest.raises(P.APIError):
        P.answer_schema({"type": "json_schema", "json_schema": {"name": "x"}})
