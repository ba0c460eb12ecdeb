"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for tests, benchmarks and demos.

The requested model name is the script: ``key=value`` directives joined by ``;``:

- ``reply=TEXT``        what to answer (default: echo the last user text); ``|`` separates per-call replies
- ``delay=S``           seconds before the first token
- ``chunk_delay=S``     seconds between streamed chunks
- ``status=CODE``       answer every call with this HTTP error (429, 500...)
- ``fail_first=N``      the first N calls with this script fail with ``status`` (default 500), then succeed
- ``hang=1``            never answer (for timeouts)
- ``cost=USD``          report ``usage.cost`` as OpenRouter does
- ``error_after=N``     stream N chunks, then an error object mid-stream (as OpenRouter does) and stop
- ``malformed_after=N`` stream N chunks, then a chunk that is not JSON
- ``strict=1``          refuse requests that carry ``stream_options`` (400), as some servers do
- ``refuse_schema=1``   refuse requests that carry ``response_format`` (400), as servers without structured output do
- ``stamp=N``           stream N chunks, each the wall-clock time it was sent (``[1700000000.123]``), to measure
                        how long a chunk takes to reach a page
- ``table=K=>V~~K2=>V2`` answer V for the first key K found in the request's last user message (else ``reply``)
- ``seen=1``            answer ``Final answer: img<digest>`` from the first image's bytes (``none`` without one):
                        a member that looks at the image
- ``analysis=1``        act as an analyst: the structured analysis ``workbench.experiments.grounding`` asks
                        for, quoting the candidates (grounded) except for one invented quote
- ``judge_pick=TEXT``   act as a judge: pick the candidate whose text contains TEXT (position-independent),
                        answering the JSON verdict the workbench asks for (``answer`` = that candidate's text);
                        TEXT may be a table (``K=>TEXT~~...``) keyed by the prompt; no candidate holding it: the
                        first shown (position bias); ``label:B``: the candidate labelled B (label bias)
- ``judge_flat=N``      act as a judge that cannot tell the candidates apart: every one scored N, the first shown picked

Every request body is kept in ``server.requests`` so tests can check what a backend sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def parse_script(model: str) -> dict[str, str]:
    out = {}
    for part in model.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            out[key.strip()] = value
    return out


class _Server(ThreadingHTTPServer):
    owner: ScriptedServer
    request_queue_size = 256  # a backlog of 5 drops bursts of connections (1 s SYN retry)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server: _Server

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._json(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        srv = self.server.owner
        with srv.lock:
            srv.requests.append(body)
            model = body.get("model", "")
            srv.calls[model] += 1
            call_no = srv.calls[model]
        script = parse_script(model)
        if script.get("hang"):
            time.sleep(float(script.get("hang_s", 3600)))
            return
        if script.get("strict") and "stream_options" in body:
            self._json(400, {"error": {"message": "unknown field: stream_options", "code": 400}})
            return
        if script.get("refuse_schema") and "response_format" in body:
            self._json(400, {"error": {"message": "response_format is not supported by this server", "code": 400}})
            return
        status = int(script.get("status", 0) or 0)
        if "fail_first" in script and call_no <= int(script["fail_first"]):
            status = status or 500
        elif "fail_first" in script:
            status = 0
        if status:
            self._json(status, {"error": {"message": f"scripted error {status}", "code": status}},
                       headers={"retry-after-ms": "10"})
            return
        time.sleep(float(script.get("delay", 0)))
        if "seen" in script:  # a member that looks at the image: its answer depends on the image's bytes
            text = "Final answer: " + _image_digest(body)
        elif "analysis" in script:
            text = _analysis_reply(_last_user_text(body))
        elif "judge_flat" in script:
            text = _judge_reply(_last_user_text(body), "", flat=int(script["judge_flat"]))
        elif "judge_pick" in script:
            needle = _lookup(script["judge_pick"], _last_user_text(body)) if "=>" in script["judge_pick"] \
                else script["judge_pick"]
            text = _judge_reply(_last_user_text(body), needle or "")
        elif "table" in script and (found := _lookup(script["table"], _last_user_text(body))) is not None:
            text = found
        else:
            replies = script["reply"].split("|") if "reply" in script else [_last_user_text(body)]
            text = replies[(call_no - 1) % len(replies)].replace("\\n", "\n")
        max_tokens = body.get("max_tokens") or 10_000
        words = text.split(" ")
        pieces = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)][:max_tokens]
        finish = "stop" if len(pieces) == len(words) else "length"
        usage: dict[str, Any] = {"prompt_tokens": len(json.dumps(body["messages"])) // 4,
                                 "completion_tokens": len(pieces), "total_tokens": 0}
        if "cost" in script:
            usage["cost"] = float(script["cost"])
        if not body.get("stream"):
            self._json(200, {"id": "x", "object": "chat.completion", "created": 0, "model": model,
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(pieces)},
                                          "finish_reason": finish}], "usage": usage})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        chunk_delay = float(script.get("chunk_delay", 0))
        stamp = int(script.get("stamp", 0) or 0)
        try:
            for i, piece in enumerate(pieces if not stamp else range(stamp)):
                if i and chunk_delay:
                    time.sleep(chunk_delay)
                if stamp:
                    piece = f"[{time.time():.4f}] "
                if "error_after" in script and i == int(script["error_after"]):
                    self._event({"error": {"message": "upstream provider failed mid-stream", "code": 502}})
                    return
                if "malformed_after" in script and i == int(script["malformed_after"]):
                    self.wfile.write(b"data: {not json\n\n")
                    self.wfile.flush()
                    return
                self._event({"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
            self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
            self._event({"choices": [], "usage": usage})
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client went away (cancelled)
            pass

    def _event(self, data: dict[str, Any]) -> None:
        data = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "scripted", **data}
        self.wfile.write(b"data: " + json.dumps(data).encode() + b"\n\n")
        self.wfile.flush()

    def _json(self, status: int, data: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)


def _last_user_text(body: dict[str, Any]) -> str:
    for m in reversed(body.get("messages", [])):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, str):
                return c
            return " ".join(p.get("text", "") for p in c if p.get("type") == "text")
    return ""


def _lookup(table: str, message: str) -> str | None:
    for entry in table.split("~~"):
        key, sep, value = entry.partition("=>")
        if sep and key in message:
            return value
    return None


def _judge_reply(prompt: str, needle: str, flat: int | None = None) -> str:
    import re

    blocks = re.findall(r'<candidate id="([^"]+)">\n(.*?)\n</candidate>', prompt, flags=re.S)
    if needle.startswith("label:"):  # a judge biased to one label, wherever it stands
        pick = next((cid for cid, _ in blocks if cid == needle[6:]), blocks[0][0] if blocks else "A")
    else:  # the candidate holding the needle; none: the first shown (a judge biased to position 1)
        pick = next((cid for cid, text in blocks if needle in text), blocks[0][0] if blocks else "A")
    answer = next((text for cid, text in blocks if cid == pick), "")
    scores = {cid: (flat if flat is not None else 9 if cid == pick else 2) for cid, _ in blocks}
    return json.dumps({"winner": pick, "scores": scores, "rationale": f"{pick} contains {needle!r}",
                       "answer": answer})


def _image_digest(body: dict[str, Any]) -> str:
    """``none`` without an image in the last user message, else a short digest of its first image's data."""
    import hashlib

    for m in reversed(body.get("messages", [])):
        if m.get("role") == "user":
            parts = m.get("content") if isinstance(m.get("content"), list) else []
            urls = [p["image_url"]["url"] for p in parts if p.get("type") == "image_url"]
            return "img" + hashlib.sha256(urls[0].encode()).hexdigest()[:6] if urls else "none"
    return "none"


def _analysis_reply(prompt: str) -> str:
    """A structured analysis of the candidates with known grounding: every consensus quote and both contradiction
    quotes are copied from the candidates (grounded), the one unique insight quotes a sentence no candidate wrote."""
    import re

    blocks = re.findall(r'<candidate id="([^"]+)">\n(.*?)\n</candidate>', prompt, flags=re.S)
    first = lambda t: " ".join(t.split()[:6])  # noqa: E731
    last = lambda t: " ".join(t.split()[-3:])  # noqa: E731
    return json.dumps({
        "consensus": [{"point": "they answer the question", "quotes": [{"member": c, "quote": first(t)}
                                                                       for c, t in blocks]}],
        "contradictions": [{"topic": "the final answer", "stances": [
            {"member": c, "stance": f"says {last(t)}", "quote": last(t)} for c, t in blocks[:2]]}],
        "unique_insights": [{"member": blocks[-1][0] if blocks else "A", "insight": "an invented insight",
                             "quote": "this sentence was never written by anyone"}],
        "blind_spots": [{"point": "no one checked the units"}]})


class ScriptedServer:
    """Run with ``with ScriptedServer() as srv:``; ``srv.base_url`` ends in ``/v1``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.requests: list[dict[str, Any]] = []
        self.calls: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()
        self._host = host
        self._httpd = _Server((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self._httpd.server_address[1]}/v1"

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: list[str]) -> None:
    """``python -m workbench.testing.scripted_server [PORT]``: serve until killed (benchmarks, demos)."""
    with ScriptedServer(port=int(argv[0]) if argv else 0) as srv:
        print(srv.base_url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
