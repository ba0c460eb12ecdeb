"""The OpenAI-compatible API's own cost, measured side by side in one run (scripted HTTP members and judge).

    .venv/bin/python benchmarks/serve_overhead.py [--reps 15]

1. API overhead: the same fused run (3 members, best-of judge, runs stored) through ``POST /v1/chat/completions``
   (non-stream, and stream read to [DONE]) vs ``wb.fuse`` called directly; the three are interleaved, and the
   ratio of medians is printed (goal: <= 1.02).
2. Streaming latency (merge): time to the first streamed byte vs the judge's own first token, and the judge's
   first answer character vs the client receiving it (the answer streams live as the judge writes it).
3. Concurrency: 8 clients at once vs one alone (ratio of wall times), beside 8 ``wb.fuse`` at once vs one (the
   same runs without the API: what the members' server and the engine cost); nothing lost (every answer its own,
   every run stored).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx  # noqa: E402
import openai  # noqa: E402

import workbench as wb  # noqa: E402
from workbench.events import JudgeToken  # noqa: E402
from workbench.policy import Policy  # noqa: E402
from workbench.serve import app as serve_app  # noqa: E402
from workbench.serve import create_server_app  # noqa: E402
from workbench.serve.cli import UvicornThread  # noqa: E402
from workbench.specs import load_registry  # noqa: E402


def models_toml(base: str) -> str:
    def m(name, script):
        return f'[models.{name}]\nbackend = "openai"\nmodel = "{script}"\nbase_url = "{base}"\n'
    return "\n".join([
        m("a", "reply=I think it is 5 because two plus three is five. Final answer: 5;delay=0.25;chunk_delay=0.005"),
        m("b", "reply=Maybe 6 since I added one more. Final answer: 6;delay=0.3;chunk_delay=0.005"),
        m("c", "reply=It is 4. Final answer: 4;delay=0.2;chunk_delay=0.005"),  # one candidate holds 5: the same pick each run
        m("echo", "delay=0.3;chunk_delay=0.005"),
        m("judge", "judge_pick=5;delay=0.1;chunk_delay=0.01"),
        m("judge_echo", "judge_pick=Q;delay=0.1;chunk_delay=0.01"),
        '[fusions.bench]\npool = ["a", "b", "c"]\njudge = "judge"\nmode = "best-of"\n',
        '[fusions.bench-merge]\npool = ["a", "b", "c"]\njudge = "judge"\nmode = "merge"\n',
        '[fusions.echoes]\npool = ["echo", "echo:concise", "echo:skeptic"]\njudge = "judge_echo"\n',
    ])


def ratio_line(name: str, a: list[float], b: list[float], goal: str = "") -> None:
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"{name:<44} {ma * 1000:8.1f} ms vs {mb * 1000:8.1f} ms   ratio {ma / mb:.3f}  {goal}")


async def overhead(url: str, reg, store, reps: int) -> None:
    client = openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0)
    msgs = [{"role": "user", "content": "What is 2+3?"}]
    f = reg.fusions["bench"]
    direct, api, stream = [], [], []

    async def one_direct():
        t = time.perf_counter()
        r = await wb.fuse("What is 2+3?", list(f.pool), f.judge, f.mode, registry=reg, store=store)
        assert r.final_answer and not r.degraded
        return time.perf_counter() - t

    async def one_api():
        t = time.perf_counter()
        r = await client.chat.completions.create(model="bench", messages=msgs)
        assert r.choices[0].message.content
        return time.perf_counter() - t

    async def one_stream():
        t = time.perf_counter()
        s = await client.chat.completions.create(model="bench", messages=msgs, stream=True)
        text = ""
        async for c in s:
            if c.choices:
                text += c.choices[0].delta.content or ""
        assert text
        return time.perf_counter() - t

    for _ in range(2):  # warm connections and imports
        await one_direct(), await one_api(), await one_stream()
    for _ in range(reps):
        direct.append(await one_direct())
        api.append(await one_api())
        stream.append(await one_stream())
    print(f"1. API overhead, {reps} interleaved runs each (3 members + judge, stored)")
    ratio_line("  /v1/chat/completions vs wb.fuse", api, direct, "(goal <= 1.02)")
    ratio_line("  /v1/chat/completions stream vs wb.fuse", stream, direct, "(goal <= 1.02)")
    await client.close()


async def streaming_latency(url: str, reps: int) -> None:
    judge_first: list[float] = []
    judge_answer_first: list[float] = []
    original = serve_app.fuse_stream

    async def watched(*a, **k):  # the judge's own tokens, timed inside the server (same process, same clock)
        text = ""
        async for e in original(*a, **k):
            if isinstance(e, JudgeToken):
                if not text:
                    judge_first.append(time.perf_counter())
                text += e.text
                if '"answer": "' in text and len(judge_answer_first) < len(judge_first) \
                        and len(text.split('"answer": "', 1)[1]) > 0:
                    judge_answer_first.append(time.perf_counter())
            yield e

    serve_app.fuse_stream = watched
    ttfb, first_byte_vs_judge, answer_lag, content_vs_judge = [], [], [], []
    try:
        async with httpx.AsyncClient(timeout=30) as c:
            for _ in range(reps):
                t0 = time.perf_counter()
                n = len(judge_first)
                body = {"model": "bench-merge", "messages": [{"role": "user", "content": "2+3?"}], "stream": True}
                first_byte = first_content = None
                async with c.stream("POST", f"{url}/chat/completions", json=body) as r:
                    async for line in r.aiter_lines():
                        now = time.perf_counter()
                        if first_byte is None:
                            first_byte = now
                        if first_content is None and '"content":"' in line and '"role"' not in line:
                            first_content = now
                ttfb.append(first_byte - t0)
                first_byte_vs_judge.append(judge_first[n] - first_byte)
                content_vs_judge.append(first_content - judge_first[n])
                answer_lag.append(first_content - judge_answer_first[n])
    finally:
        serve_app.fuse_stream = original
    med = lambda xs: statistics.median(xs) * 1000  # noqa: E731
    print(f"2. Streaming (merge), {reps} runs")
    print(f"  time to first streamed byte                  {med(ttfb):8.1f} ms after the request")
    print(f"  judge's first token                          {med(first_byte_vs_judge):8.1f} ms after that first byte")
    print(f"  first answer text at the client              {med(content_vs_judge):8.1f} ms after the judge's first "
          f"token (the judge writes its rationale first)")
    print(f"  ... after the judge wrote that text          {med(answer_lag):8.1f} ms (the API's own delay)")


async def concurrency(url: str, reg, store) -> None:
    client = openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0)
    f = reg.fusions["echoes"]

    async def direct(n):
        return await wb.fuse(f"Q{n}: repeat this back", list(f.pool), f.judge, f.mode, registry=reg, store=store)

    async def ask(n):
        q = f"Q{n}: repeat this back"
        r = await client.chat.completions.create(model="echoes", messages=[{"role": "user", "content": q}])
        return q, r.choices[0].message.content, r.model_extra["fusion"]["run_id"]

    await ask(99)
    singles, eights, lost, d1, d8 = [], [], 0, [], []
    for rep in range(3):
        t = time.perf_counter()
        await direct(rep)
        d1.append(time.perf_counter() - t)
        t = time.perf_counter()
        await asyncio.gather(*(direct(n) for n in range(8)))
        d8.append(time.perf_counter() - t)
        t = time.perf_counter()
        await ask(100 + rep)
        singles.append(time.perf_counter() - t)
        before = {r["run_id"] for r in store.list(limit=10_000)}
        t = time.perf_counter()
        got = await asyncio.gather(*(ask(n) for n in range(8)))
        eights.append(time.perf_counter() - t)
        stored = {r["run_id"] for r in store.list(limit=10_000)} - before
        lost += sum(q != a for q, a, _ in got) + (8 - len(stored & {rid for _, _, rid in got}))
    print("3. Concurrency (3 echo members + judge per request)")
    ratio_line("  8 clients at once vs one alone", eights, singles)
    ratio_line("  the same without the API: 8 wb.fuse vs one", d8, d1)
    print(f"  answers mixed up or runs not stored: {lost} of {8 * 3}")
    await client.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=15)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wb-serve-bench-"))
    # the members' server in its own process, so that its threads do not share this process's interpreter
    members = subprocess.Popen([sys.executable, "-m", "workbench.testing.scripted_server"], stdout=subprocess.PIPE, text=True)
    try:
        base_url = members.stdout.readline().strip()
        (tmp / "models.toml").write_text(models_toml(base_url))
        reg = load_registry(tmp / "models.toml")
        store = wb.RunStore(tmp / "runs.sqlite")
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = UvicornThread(create_server_app(Policy(public=False, registry=reg), store), "127.0.0.1", port)
        server.start()
        url = f"http://127.0.0.1:{port}/v1"
        try:
            # the uvicorn server runs its own loop in a thread; the clients and wb.fuse run on this one
            asyncio.run(overhead(url, reg, store, args.reps))
            asyncio.run(streaming_latency(url, max(5, args.reps // 2)))
            asyncio.run(concurrency(url, reg, store))
        finally:
            server.close()
    finally:
        members.terminate()


if __name__ == "__main__":
    main()
