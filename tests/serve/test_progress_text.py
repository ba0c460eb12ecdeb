"""``"fusion": {"progress": "reasoning" | "content"}``: the run's progress in words that a plain client shows, from
the first chunk on, while the answer stays exactly what it is without it."""

from __future__ import annotations

import time

import openai
import pytest


def client(url):
    return openai.OpenAI(base_url=url, api_key="unused", max_retries=0)


def stream(url, model, progress, **kw):
    t0 = time.monotonic()
    chunks = []
    for c in client(url).chat.completions.create(model=model, messages=[{"role": "user", "content": "2+3?"}],
                                                 stream=True, extra_body={"fusion": {"progress": progress}}, **kw):
        chunks.append((time.monotonic() - t0, c))
    return chunks


def visible(c, field):
    return (c.choices[0].delta.model_extra or {}).get(field) if field != "content" else c.choices[0].delta.content


@pytest.mark.parametrize("model", ["best", "merge", "debate"])
def test_reasoning_progress_says_each_step_and_leaves_the_answer_alone(api, model):
    url, _ = api
    chunks = stream(url, model, "reasoning")
    answer = "".join(visible(c, "content") or "" for _, c in chunks if c.choices)
    assert answer == "I think it is 5. Final answer: 5"
    words = "".join(visible(c, "reasoning_content") or "" for _, c in chunks if c.choices)
    assert words.startswith(f"Fusion: {'best-of' if model == 'best' else model} over ")
    n = 3 if model == "best" else 2
    assert "- five: " in words and " tokens in " in words and f"Judge reading {n} answers…\nJudge: " in words
    assert words.endswith("merged the answers.\n" if model == "merge" else "Winner: five.\n"), words
    if model == "debate":
        assert "Round 2 of 2" in words
    # the first words come before any member finished (the first visible byte is not the answer's)
    first_words = next(t for t, c in chunks if c.choices and visible(c, "reasoning_content"))
    first_done = next(t for t, c in chunks if (c.model_extra.get("fusion") or {}).get("event") == "member_done")
    assert first_words <= first_done
    # the same words under "reasoning", for clients that read that name
    assert words == "".join(visible(c, "reasoning") or "" for _, c in chunks if c.choices)


def test_content_progress_is_a_think_block_before_the_answer(api):
    url, _ = api
    chunks = stream(url, "merge", "content")
    text = "".join(visible(c, "content") or "" for _, c in chunks if c.choices)
    assert text.startswith("<think>\nFusion: merge over 2 members (five, six), judge pick5slow.\n")
    think, answer = text.split("\n</think>\n\n")
    assert answer == "I think it is 5. Final answer: 5" and "Judge: " in think
    finish = [c for _, c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish[0].model_extra["fusion"]["verdict"]["valid"]


def test_a_plain_model_with_content_progress(api):
    url, _ = api
    text = "".join(visible(c, "content") or "" for _, c in stream(url, "six", "content", max_tokens=2) if c.choices)
    assert text == "<think>\nAsking six…\n\n</think>\n\nMaybe 6. "


def test_a_non_streamed_answer_is_the_same_and_a_bad_value_is_refused(api):
    url, _ = api
    r = client(url).chat.completions.create(model="best", messages=[{"role": "user", "content": "2+3?"}],
                                            extra_body={"fusion": {"progress": "content"}})
    assert r.choices[0].message.content == "I think it is 5. Final answer: 5"
    with pytest.raises(openai.BadRequestError, match="fusion.progress must be true, false, 'reasoning' or"):
        client(url).chat.completions.create(model="best", messages=[{"role": "user", "content": "2+3?"}],
                                            extra_body={"fusion": {"progress": "loud"}})
