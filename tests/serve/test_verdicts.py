"""The API says what the verdict was: a tie and the rule that broke it (in the answer's ``fusion`` object and in the
verdict progress event); members that cannot see a request's image are skipped or told, as the request asks."""

from __future__ import annotations

import httpx

from .conftest import png_data_url


def post(url, body):
    return httpx.post(f"{url}/chat/completions", json=body, timeout=30)


def with_image(text: str) -> list:
    return [{"role": "user", "content": [{"type": "text", "text": text},
                                         {"type": "image_url", "image_url": {"url": png_data_url()}}]}]


def test_a_tie_is_a_tie_in_the_fusion_object_and_the_verdict_event(api):
    url, _ = api
    r = post(url, {"model": "flat", "messages": [{"role": "user", "content": "2+3?"}], "seed": 1})
    verdict = r.json()["fusion"]["verdict"]
    assert r.status_code == 200 and verdict["tie"] is True and verdict["majority"] is None
    assert sorted(verdict["tied"]) == ["five", "paid", "six"] and verdict["winner"] in verdict["tied"]
    assert verdict["tie_broken_by"].startswith("the judge's own pick among equal scores (it named the candidate "
                                               "shown first, as A)")
    assert verdict["decision"].startswith("Tie: five, six and paid scored 10 each — broken by the judge's own pick")
    with httpx.stream("POST", f"{url}/chat/completions", timeout=30,
                      json={"model": "flat", "messages": [{"role": "user", "content": "2+3?"}], "stream": True}) as s:
        lines = [ln for ln in s.iter_lines() if ln.startswith("data: {") and '"event":"verdict"' in ln]
    assert '"tie":true' in lines[0] and '"tied":[' in lines[0] and '"tie_broken_by":"the judge' in lines[0]


def test_a_clear_pick_is_no_tie(api):
    url, _ = api
    verdict = post(url, {"model": "best", "messages": [{"role": "user", "content": "2+3?"}]}).json()["fusion"]["verdict"]
    assert verdict["tie"] is False and verdict["tied"] == [] and verdict["decision"] == "Winner: five"


def test_a_member_that_cannot_see_the_image_is_skipped_or_told_as_the_request_asks(api, server):
    url, _ = api
    n0 = len(server.requests)
    r = post(url, {"model": "halfblind", "messages": with_image("Which number?")})
    skipped = r.json()["fusion"]["rounds"][0][1]
    assert r.status_code == 200 and skipped["skipped"] and skipped["error"]["kind"] == "no-vision"
    assert skipped["saw_images"] is False and not r.json()["fusion"]["degraded"]
    assert not [b for b in server.requests[n0:] if "blind=1" in b["model"]]  # never asked
    r = post(url, {"model": "halfblind", "messages": with_image("Which number?"), "fusion": {"blind_members": "tell"}})
    told = r.json()["fusion"]["rounds"][0][1]
    assert r.status_code == 200 and told["ok"] and told["saw_images"] is False
    sent = [b for b in server.requests[n0:] if "blind=1" in b["model"]][-1]["messages"][-1]["content"]
    assert "image_url" not in str(sent) and "you cannot see images" in str(sent)
    bad = post(url, {"model": "halfblind", "messages": with_image("x"), "fusion": {"blind_members": "guess"}})
    assert bad.status_code == 400 and "blind_members must be one of skip, tell" in bad.json()["error"]["message"]


def test_an_image_for_a_text_only_model_alone_is_refused_unless_it_is_told(api):
    url, _ = api
    r = post(url, {"model": "textonly", "messages": with_image("Which number?")})
    assert r.status_code == 400 and r.json()["error"]["code"] == "no_vision_member"
    r = post(url, {"model": "textonly", "messages": with_image("Which number?"), "fusion": {"blind_members": "tell"}})
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "I cannot see the image."
