"""The fault matrix: every fault a user or a server can cause, what the user sees, and whether anything is lost.

Members and judges are the scripted OpenAI-compatible server on 127.0.0.1 (and the tiny local model for a
context overflow); every run goes to a fresh run store. A row passes when the user gets a clear message
(a failed member with its reason, a degraded verdict, or an error naming the problem), the run is recorded
whenever it ran, and every answer a working member gave is in the record. Also measured side by side: 8
concurrent runs vs one alone, and a remote-only run's start delay while another model is loading.

    python benchmarks/faults.py          # prints the matrix and the figures; exits 1 if a row fails
"""

from __future__ import annotations

import asyncio
import io
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image

import workbench as wb
from workbench.backends import load_model, unload
from workbench.backends.openai_compat import OpenAICompatModel
from workbench.backends.registry import BACKENDS, register_backend
from workbench.errors import WorkbenchError
from workbench.policy import Policy
from workbench.testing import ScriptedServer
from workbench.specs import Member, ModelSpec
from workbench.types import MAX_IMAGE_PIXELS

ROWS: list[tuple[str, str, str, str, bool]] = []  # fault, what the user sees, recorded, lost, ok


def row(fault: str, sees: str, recorded: str, lost: str, ok: bool) -> None:
    ROWS.append((fault, sees[:90].replace("\n", " "), recorded, lost, ok))


async def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="wb-faults-"))
    store = wb.RunStore(tmp / "runs.sqlite")
    with ScriptedServer() as srv:
        def m(script: str, name: str, **kw) -> Member:
            return Member(ModelSpec(name=name, backend="openai", model=script, base_url=srv.base_url, **kw))

        good = m("reply=Final answer: 4", "good")

        async def member_fault(fault: str, bad: Member, **settings) -> None:
            try:
                r = await wb.fuse("2+2?", [good, bad], mode="vote", store=store, **settings)
            except WorkbenchError as exc:
                row(fault, f"error: {exc}", "no", "?", False)
                return
            kept = store.load(r.run_id)
            failed = kept.rounds[0][1]
            lost = "nothing" if kept.rounds[0][0].text == "Final answer: 4" and kept.final_answer == "4" else "yes"
            row(fault, f"{failed.label} failed ({failed.kind}): {failed.reason}", "yes", lost,
                not failed.ok and bool(failed.reason) and lost == "nothing")

        await member_fault("member timeout (hangs; limit 1 s)", m("hang=1", "hung"), member_timeout_s=1)
        await member_fault("429 with Retry-After", m("status=429", "limited"))
        await member_fault("500", m("status=500", "broken"))
        await member_fault("error object mid-stream", m("reply=a b c;error_after=1", "midstream"))
        await member_fault("malformed chunk", m("reply=a b c;malformed_after=1", "malformed"))
        await member_fault("connection refused", Member(ModelSpec(name="refused", backend="openai", model="x",
                                                                  base_url="http://127.0.0.1:9/v1")))
        r = await wb.fuse("2+2?", [good, m("reply=", "empty")], mode="vote", store=store)
        row("empty reply", f"the empty member answered '' ({r.outputs[1].finish_reason}); vote: {r.final_answer}",
            "yes", "nothing", r.final_answer == "4" and store.load(r.run_id).run_id == r.run_id)

        async def judge_fault(fault: str, judge: Member, **settings) -> None:
            r = await wb.fuse("2+2?", [good, m("reply=Final answer: 5", "other")], judge, "best-of", store=store,
                              **settings)
            kept = store.load(r.run_id)
            lost = "nothing" if [o.text for o in kept.rounds[0]] == ["Final answer: 4", "Final answer: 5"] else "yes"
            row(fault, "; ".join(r.failure_reasons)[:90], "yes", lost, r.degraded and bool(r.final_answer)
                and lost == "nothing")

        await judge_fault("judge answers prose", m("reply=I think the first one.", "prose-judge"))
        await judge_fault("judge timeout (limit 1 s)", m("hang=1", "hung-judge"), judge_timeout_s=1)
        r = await wb.fuse("2+2?", [m("status=500", "dead-1"), m("status=500", "dead-2")], good, "best-of",
                          store=store)
        row("all members dead", "; ".join(r.failure_reasons)[-90:], "yes", "nothing",
            r.degraded and "all members failed" in " ".join(r.failure_reasons))

        # bad input: refused before anything runs, with the reason; nothing to record, the prompt stays
        png = io.BytesIO()
        Image.new("RGB", (40, 40), (255, 0, 0)).save(png, format="PNG")
        images = {"corrupt image": b"\x89PNG\r\n\x1a\nnot really", "truncated image": png.getvalue()[:60],
                  "zero-byte image": b""}
        for fault, data in images.items():
            path = tmp / f"{fault.split()[0]}.png"
            path.write_bytes(data)
            try:
                wb.Prompt("what is it?", images=[str(path)])
                row(fault, "accepted", "-", "-", False)
            except WorkbenchError as exc:
                row(fault, f"error: {exc}", "n/a (refused)", "nothing", True)
        large, giant = tmp / "large.png", tmp / "giant.png"
        Image.new("RGB", (3000, 3000)).save(large)
        img = wb.Prompt("x", images=[str(large)]).images[0]
        row("large image (3000x3000)", f"accepted, downscaled to {img.width}x{img.height} for every member",
            "yes", "nothing", max(img.width, img.height) <= 2048)
        side = int(MAX_IMAGE_PIXELS ** 0.5) + 100
        Image.new("L", (side, side)).save(giant)
        public = Policy.for_host(public=True)
        for fault, prompt in [(f"huge image ({side}x{side})", lambda: wb.Prompt("x", images=[str(giant)])),
                              ("over-long prompt (public limit)", lambda: wb.Prompt("x" * 20000)),
                              ("empty prompt", lambda: wb.Prompt(""))]:
            try:
                await wb.fuse(prompt(), ["tiny-offline"], mode="vote", context=wb.RunContext(policy=public))
                row(fault, "accepted", "-", "-", False)
            except WorkbenchError as exc:
                row(fault, f"error: {exc}", "n/a (refused)", "nothing", True)

        r = await wb.fuse("hi", ["tiny-offline", good], mode="vote", max_new_tokens=20000, store=store)
        o = r.outputs[0]
        row("context overflow on a local model", f"{o.label} failed ({o.kind}): {o.reason}", "yes",
            "nothing" if r.outputs[1].ok else "yes", not o.ok and "context" in o.reason and r.outputs[1].ok)

        # 8 sessions at once vs one alone (scripted members with a fixed delay)
        slow = [m("reply=Final answer: 4;delay=0.5", f"s{i}") for i in range(3)]
        t = time.perf_counter()
        await wb.fuse("2+2?", slow, mode="vote", store=store)
        one = time.perf_counter() - t
        t = time.perf_counter()
        rs = await asyncio.gather(*(wb.fuse(f"2+2? ({i})", slow, mode="vote", store=store) for i in range(8)))
        eight = time.perf_counter() - t
        stored = all(store.load(x.run_id).final_answer == "4" for x in rs)
        row("8 sessions at once", f"8/8 answered; wall {eight:.2f} s vs {one:.2f} s alone", "yes (8/8)",
            "nothing" if stored else "yes", stored)

        # kill -9 mid-run: the store opens whole, with every finished run and no half-written one
        killed = tmp / "killed.sqlite"
        script = ("import asyncio, sys, workbench as wb\n"
                  "s = wb.RunStore(sys.argv[1])\n"
                  "p = [wb.Member(wb.ModelSpec(name='k', backend='openai', model='reply=a b c;chunk_delay=0.05', "
                  "base_url=sys.argv[2]))]\n"
                  "async def go():\n"
                  "    while True:\n"
                  "        await wb.fuse('q', p, mode='vote', store=s); print('saved', flush=True)\n"
                  "asyncio.run(go())\n")
        p = subprocess.Popen([sys.executable, "-c", script, str(killed), srv.base_url], stdout=subprocess.PIPE,
                             text=True)
        for _ in range(3):
            p.stdout.readline()
        p.send_signal(signal.SIGKILL)
        p.wait(30)
        ks = wb.RunStore(killed)
        whole = ks._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        runs = ks.list(100)
        intact = all(ks.load(x["run_id"]).final_answer == "a b c" for x in runs)
        row("kill -9 mid-run", f"next start lists {len(runs)} finished runs; integrity {'ok' if whole else 'BAD'}",
            "finished ones", "only the run cut off", whole and intact and len(runs) >= 3)

        # a remote-only run while another model loads (a stand-in for Scout: a load that takes 5 s)
        started, release = threading.Event(), threading.Event()

        def slow_load(spec):
            started.set()
            release.wait(30)
            return OpenAICompatModel(spec)

        register_backend("slow-load", slow_load)
        t = time.perf_counter()
        await wb.fuse("2+2?", [good], mode="vote")
        alone = time.perf_counter() - t
        loader = threading.Thread(target=lambda: load_model(
            ModelSpec(name="loading", backend="slow-load", model="x", base_url=srv.base_url), keep=True))
        loader.start()
        started.wait(10)
        t = time.perf_counter()
        await wb.fuse("2+2?", [good], mode="vote")
        during = time.perf_counter() - t
        release.set()
        loader.join(30)
        BACKENDS.pop("slow-load", None)
        unload("loading")

    width = max(len(r[0]) for r in ROWS)
    print(f"{'fault':<{width}}  {'what the user sees':<90}  {'recorded':<15} {'lost':<20} ok")
    for fault, sees, recorded, lost, ok in ROWS:
        print(f"{fault:<{width}}  {sees:<90}  {recorded:<15} {lost:<20} {'yes' if ok else 'NO'}")
    print(f"\n8 concurrent runs: {eight:.2f} s vs one alone {one:.2f} s (ratio {eight / one:.2f})")
    print(f"remote-only run: {alone * 1000:.0f} ms alone vs {during * 1000:.0f} ms while another model loads "
          f"(ratio {during / alone:.2f})")
    bad = [r[0] for r in ROWS if not r[4]]
    print(f"faults: {len(ROWS) - len(bad)} of {len(ROWS)} rows read 'clear message, nothing lost'"
          + (f"; failing: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
