"""Images are charged before they are decoded: count, runs in flight, bytes, format and pixels (from the header)
first; then decoding in a bounded slot (a client one at a time). The second review's bomb: a 154 KB PNG of
6300x6300 that cost 4.65 s and 317 MB per request when every image was decoded in full first."""

from __future__ import annotations

import base64
import io
import threading
from dataclasses import replace

import httpx
import pytest
from PIL import Image

from workbench.errors import BusyError, InputError, TooLargeError
from workbench.policy import DECODING, PUBLIC_LIMITS, Limits, Policy
from workbench.shutdown import RUNS
from workbench.storage import RunStore
from workbench.types import ImageData

from .conftest import serving


def encoded(size=(24, 20), fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, format=fmt)
    return buf.getvalue()


def request(*images: bytes, model="best") -> dict:
    parts = [{"type": "text", "text": "what is this?"}]
    parts += [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(b).decode()}}
              for b in images]
    return {"model": model, "messages": [{"role": "user", "content": parts}]}


@pytest.fixture(scope="module")
def bomb() -> bytes:
    data = encoded((6300, 6300))
    assert len(data) < 300_000  # a small request, a big decode
    return data


@pytest.fixture
def decoded(monkeypatch):
    """How many images were decoded (ImageData.load called on bytes)."""
    calls = []
    real = ImageData.load.__func__

    def counting(cls, image, *a, **kw):
        calls.append(type(image).__name__)
        return real(cls, image, *a, **kw)

    monkeypatch.setattr(ImageData, "load", classmethod(counting))
    return calls


@pytest.fixture
def public_api(scripted_registry, tmp_path):
    policy = Policy(public=True, registry=scripted_registry, allow_custom_endpoints=False, allow_private_hosts=False,
                    allow_image_urls=False, allowed_hosts=frozenset({"127.0.0.1:*"}),
                    limits=replace(PUBLIC_LIMITS, max_new_tokens=256, runs_per_session=1))
    with serving(policy, RunStore(tmp_path / "r.sqlite")) as url:
        yield url, policy


def post(url, body):
    return httpx.post(f"{url}/chat/completions", json=body, timeout=60)


def test_an_image_over_the_pixel_limit_is_413_and_never_decoded(public_api, bomb, decoded):
    url, policy = public_api
    r = post(url, request(encoded(), bomb, bomb, bomb))
    assert r.status_code == 413, r.text
    msg = r.json()["error"]["message"]
    assert "image 2 of 4 is 6300x6300 (39,690,000 pixels)" in msg and f"{policy.limits.max_image_pixels:,}" in msg
    assert decoded == []  # not even the small first one: every header is checked before anything is decoded


def test_formats_other_than_what_members_take_are_refused_unread(public_api, decoded):
    url, _ = public_api
    for fmt in ("BMP", "TIFF", "ICO", "PPM"):
        r = post(url, request(encoded(fmt=fmt)))
        assert r.status_code == 400 and "this server takes PNG, JPEG, WEBP, GIF" in r.json()["error"]["message"], fmt
    assert decoded == []
    for fmt in ("JPEG", "WEBP", "GIF"):
        assert post(url, request(encoded(fmt=fmt))).status_code == 200, fmt


def test_an_image_over_the_byte_limit_is_413(scripted_registry, tmp_path):
    policy = Policy(public=True, registry=scripted_registry, allow_custom_endpoints=False, allow_private_hosts=False,
                    limits=replace(PUBLIC_LIMITS, max_image_bytes=1000))
    with pytest.raises(TooLargeError, match="bytes; this server takes images of at most 1,000"):
        policy.read_images([__import__("os").urandom(3000)])


def test_a_client_at_its_runs_limit_gets_429_before_its_images_are_decoded(public_api, decoded):
    url, _ = public_api
    got = {}
    slow = threading.Thread(target=lambda: got.setdefault("slow", post(url, {
        "model": "slowpool", "messages": [{"role": "user", "content": "2+3?"}]})))
    slow.start()
    try:
        for _ in range(100):
            if RUNS.in_flight:
                break
            threading.Event().wait(0.05)
        r = post(url, request(encoded((2000, 2000))))
        assert r.status_code == 429 and "run(s) in flight" in r.json()["error"]["message"]
        assert decoded == []
    finally:
        slow.join()
    assert got["slow"].status_code == 200


def test_decoding_slots_one_per_client_and_a_bounded_total():
    with DECODING.hold("ip:a", total=2):
        with pytest.raises(BusyError, match="previous images are still being read"):
            with DECODING.hold("ip:a", total=2):
                pass
        with DECODING.hold("ip:b", total=2):
            with pytest.raises(BusyError, match="reading 2 other"):
                with DECODING.hold("ip:c", total=2):
                    pass
    assert DECODING.in_use == 0
    with DECODING.hold("ip:a", total=2):  # released: free again
        pass


def test_the_page_keeps_the_good_images_and_says_which_is_bad(scripted_registry, tmp_path, bomb):
    policy = Policy(public=True, registry=scripted_registry, allow_custom_endpoints=False, allow_private_hosts=False,
                    limits=PUBLIC_LIMITS)
    good, bad, big = tmp_path / "good.png", tmp_path / "bad.png", tmp_path / "big.png"
    good.write_bytes(encoded())
    bad.write_bytes(b"not an image")
    big.write_bytes(bomb)
    out = policy.read_images([str(good), str(bad), str(big)], "ip:x", each=True)
    assert isinstance(out[0], ImageData)
    assert "image 2 of 3: not a readable image" in out[1] and "image 3 of 3 is 6300x6300" in out[2]


def test_local_mode_takes_any_format_pil_reads_and_big_jpegs_decode_at_a_reduced_scale():
    policy = Policy(public=False, limits=Limits())
    img = policy.read_images([encoded(fmt="BMP")])[0]
    assert img.mime == "image/png" and (img.width, img.height) == (24, 20)
    big = policy.read_images([encoded((6000, 4000), fmt="JPEG")])[0]
    assert (big.width, big.height) == (2048, 1365)
    with pytest.raises(InputError, match="not a readable image"):
        policy.read_images([b"\x89PNG\r\n\x1a\n" + b"\0" * 40])
