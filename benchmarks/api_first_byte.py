"""Time to the first byte a chat client shows, through the API, for each fusion mode: without the progress
opt-in (what a plain client showed before it: the answer's first character) and with ``"fusion": {"progress":
"content"}`` (the run's progress in words, inside ``<think>``) and ``"reasoning"``, measured in one run.

    .venv/bin/python benchmarks/api_first_byte.py [--tokens 48] [--reps 1]

A real ``workbench serve`` app on uvicorn, SmolLM2-135M (offline wheel) as three personas and the judge: best-of,
merge and debate (2 rounds). Each request streams to [DONE]; for each: the first visible byte (content, or
reasoning text where asked), the first answer byte, the longest wait between two visible pieces, and the run's
total. The last line is one JSON object with,
per mode, the first visible byte and the longest quiet without and with the opt-in. Runs alternate opt-in / plain so a
noisy machine hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import openai  # noqa: E402

from workbench.policy import Policy  # noqa: E402
from workbench.serve import create_server_app  # noqa: E402
from workbench.serve.cli import UvicornThread  # noqa: E402
from workbench.specs import load_registry  # noqa: E402
from workbench.storage import RunStore  # noqa: E402
from workbench.testing import free_port  # noqa: E402

POOL = '["smol-offline:analyst", "smol-offline:skeptic", "smol-offline:concise"]'
MODELS = {"best-of": "smol-best-of", "merge": "smol-merge", "debate": "smol-debate"}


def registry(tokens: int, folder: Path):
    path = folder / "models.toml"
    path.write_text(f"""
[fusions.smol-merge]
pool = {POOL}
judge = "smol-offline"
mode = "merge"
max_new_tokens = {tokens}

[fusions.smol-debate]
pool = {POOL}
judge = "smol-offline"
mode = "debate"
rounds = 2
max_new_tokens = {tokens}
""")
    return load_registry(path)


def one(client: openai.OpenAI, model: str, progress, tokens: int) -> dict:
    t0 = time.monotonic()
    first_visible = first_answer = None
    thinking = progress == "content"  #: inside the <think> block of progress words
    last_visible, gap = 0.0, 0.0  #: the longest wait between two visible pieces (or from the start to the first)
    extra = {"fusion": {"progress": progress}} if progress is not None else None
    stream = client.chat.completions.create(model=model, stream=True, max_tokens=tokens, seed=1,
                                            messages=[{"role": "user", "content": "What is 17 + 25?"}],
                                            extra_body=extra)
    for c in stream:
        if not c.choices:
            continue
        d = c.choices[0].delta
        now = time.monotonic() - t0
        words = (d.model_extra or {}).get("reasoning_content")
        if d.content or words:
            first_visible = now if first_visible is None else first_visible
            gap, last_visible = max(gap, now - last_visible), now
        if d.content and thinking and "</think>" in d.content:
            thinking = False
            d.content = d.content.split("</think>", 1)[1].lstrip("\n")
        if d.content and not thinking and first_answer is None:
            first_answer = now
    return {"first_visible_s": first_visible, "first_answer_s": first_answer, "longest_quiet_s": gap,
            "total_s": time.monotonic() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, default=48, help="each member's and the judge's new-token limit")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--modes", default="best-of,merge,debate")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        policy = Policy(public=False, registry=registry(args.tokens, Path(tmp)))
        store = RunStore(Path(tmp) / "runs.sqlite")
        port = free_port()
        server = UvicornThread(create_server_app(policy, store, None), "127.0.0.1", port)
        server.start()
        try:
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0,
                                   timeout=900)
            one(client, "smol-offline", None, 4)  # load the model once, outside the figures
            out: dict = {"model": "SmolLM2-135M-Instruct x3 + judge", "tokens": args.tokens, "reps": args.reps}
            for mode in args.modes.split(","):
                runs: dict[str, list[dict]] = {"plain": [], "content": [], "reasoning": []}
                for _ in range(args.reps):
                    for arm, progress in (("content", "content"), ("plain", None), ("reasoning", "reasoning")):
                        r = one(client, MODELS[mode], progress, args.tokens)
                        runs[arm].append(r)
                        print(mode, arm, {k: None if v is None else round(v, 2) for k, v in r.items()},
                              file=sys.stderr, flush=True)
                med = {arm: statistics.median(r["first_visible_s"] for r in rs) for arm, rs in runs.items()}
                out[mode] = {"first_visible_s_plain": round(med["plain"], 3),
                             "first_visible_s_content": round(med["content"], 3),
                             "first_visible_s_reasoning": round(med["reasoning"], 3),
                             "longest_quiet_s_plain": round(statistics.median(r["longest_quiet_s"]
                                                                             for r in runs["plain"]), 2),
                             "longest_quiet_s_content": round(statistics.median(r["longest_quiet_s"]
                                                                               for r in runs["content"]), 2),
                             "total_s_plain": round(statistics.median(r["total_s"] for r in runs["plain"]), 2)}
        finally:
            server.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
