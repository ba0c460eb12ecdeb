"""A load the public server survives: attackers and one well-behaved client at once, on 127.0.0.1 only.

    .venv/bin/python benchmarks/load.py [--target serve|demo|both] [--seconds 60] [--alone 15] [--think 5]

For each target (``workbench serve --public`` and the public Gradio app, ``workbench demo --public``, each a
process of its own, its members scripted by ``workbench.testing.scripted_server`` in a third), bounded in count and time:

1. the well-behaved client alone for ``--alone`` seconds: a fused run (``POST /v1/chat/completions``, 3 members
   and a best-of judge), then ``--think`` seconds reading the answer (a person), again and again, from a process
   of its own (as a real client is on another machine: the attackers' event loop does not delay it); its latency
   recorded;
2. then for ``--seconds``, all at once, each attacker group from loopback addresses of its own (the server counts
   runs per client address, so each client is a different visitor), each attacker as fast as the server lets it:
   - 50 streaming clients (``"stream": true``), each reading every stream to [DONE], again and again;
   - 20 slow clients: a request header, then one body byte every 3 s (a public server answers 408 after
     ``body_read_s``);
   - 10 clients sending 25 MB bodies, half with a Content-Length, half chunked (and on the Gradio app, 25 MB
     uploads to ``/gradio_api/upload``);
   - 5 image-heavy clients: four 1500x1500 PNGs a request (within the limits: they must be decoded);
   - the well-behaved client, as in 1.

The attackers keep the server's ``runs_total`` slots full. Slots go to the waiting visitor who has used the server
least lately (``RunTracker``), so the well-behaved client, which uses less than an attacker, is served at the next
free slot; a client with ``--think 0`` is one more attacker and gets an attacker's share (about ``runs_total`` /
the number of clients), by design.

Printed: the well-behaved client's median latency under attack vs alone (goal <= 2x), its refusals; the server's
peak resident memory (VmHWM) beside the bound the limits give; every status the attackers got (refused with the
right status: 413 for too large, 429 for over a limit); runs lost: runs the server accepted (HTTP 200) that are not
stored as done (goal 0).

The bound on memory: the server's resident memory before the attack + 3 x ``max_bodies_bytes`` (a body, its JSON
text and the images decoded from base64 live at once) + ``max_decoding`` x ``max_image_pixels`` x 8 bytes (an RGB
image decoded and its shrunk copy) + 64 MB (runs in flight and their streams).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workbench.policy import PUBLIC_LIMITS  # noqa: E402
from workbench.testing import free_port  # noqa: E402

GOOD = "127.0.0.200"
WORKBENCH = [sys.executable, "-c", "import sys; from workbench.cli import main; sys.exit(main())"]
USER = [{"role": "user", "content": "What is 2+3?"}]


def models_toml(base: str) -> str:
    def m(name, script, vision=True):
        return (f'[models.{name}]\nbackend = "openai"\nmodel = "{script}"\nbase_url = "{base}"\n'
                f'vision = {"true" if vision else "false"}\n')
    return "\n".join([
        m("a", "reply=Two plus three is five. Final answer: 5;delay=0.2;chunk_delay=0.01"),
        m("b", "reply=I get 6. Final answer: 6;delay=0.25;chunk_delay=0.01"),
        m("c", "reply=It is 4. Final answer: 4;delay=0.15;chunk_delay=0.01"),
        m("judge", "judge_pick=5;delay=0.1;chunk_delay=0.01"),
        '[fusions.bench]\npool = ["a", "b", "c"]\njudge = "judge"\nmode = "best-of"\n',
    ])


def png(side: int, seed: int) -> bytes:
    from PIL import Image

    img = Image.linear_gradient("L").resize((side, side)).convert("RGB")
    img.putpixel((seed % side, 0), (seed % 255, 0, 0))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def rss(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM")):
            key, value = line.split(":")
            fields[key] = int(value.split()[0]) // 1024
    return fields.get("VmRSS", 0), fields.get("VmHWM", 0)


def client(addr: str, timeout: float = 120.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=addr), timeout=timeout)


class Tally:
    def __init__(self) -> None:
        self.status: dict[str, Counter] = {}
        self.accepted: set[str] = set()
        self.good: list[float] = []
        self.good_refused = 0
        self.good_run: list[tuple[str, float, float]] = []  # (phase, the client's latency, the run's total_s)
        self.phase = "alone"
        self.lags: dict[str, list[float]] = {}  # phase -> latencies of a trivial GET

    def add(self, group: str, status) -> None:
        self.status.setdefault(group, Counter())[status] += 1


async def good_client(base: str, until: float, tally: Tally, latencies: list[float], think: float) -> None:
    async with client(GOOD) as c:
        first = True
        while time.monotonic() < until:
            if not first:
                await asyncio.sleep(think)  # a person reads the answer before asking again
            first = False
            t0 = time.perf_counter()
            try:
                while True:  # a refused request (429) is retried after its Retry-After: the wait counts as latency
                    r = await c.post(f"{base}/v1/chat/completions", json={"model": "bench", "messages": USER})
                    if r.status_code != 429 or time.monotonic() > until + 30:
                        break
                    tally.good_refused += 1
                    try:
                        why = r.json()["error"]["message"]
                    except ValueError:
                        why = r.text
                    tally.add("well-behaved", f"429 ({why[:70]})")
                    await asyncio.sleep(float(r.headers.get("retry-after", "1")))
            except httpx.HTTPError as exc:
                latencies.append(time.perf_counter() - t0)
                tally.add("well-behaved", type(exc).__name__)
                continue
            latencies.append(time.perf_counter() - t0)
            tally.add("well-behaved", r.status_code)
            if r.status_code == 200:
                fusion = r.json()["fusion"]
                tally.accepted.add(fusion["run_id"])
                tally.good_run.append((tally.phase, latencies[-1], fusion["timing"]["total_s"]))


async def streaming_client(base: str, k: int, until: float, tally: Tally) -> None:
    async with client(f"127.0.1.{k + 1}") as c:
        while time.monotonic() < until:
            try:
                async with c.stream("POST", f"{base}/v1/chat/completions",
                                    json={"model": "bench", "messages": USER, "stream": True}) as r:
                    if r.status_code != 200:
                        await r.aread()
                        tally.add("streaming", r.status_code)
                        await asyncio.sleep(float(r.headers.get("retry-after", "1")))
                        continue
                    run_id, error = None, None
                    async for line in r.aiter_lines():
                        if line.startswith("data: {"):
                            obj = json.loads(line[6:])
                            run_id = (obj.get("fusion") or {}).get("run_id") or run_id
                            error = obj.get("error") or error
                    tally.add("streaming", "200 error event" if error else 200)
                    if run_id and not error:
                        tally.accepted.add(run_id)
            except httpx.HTTPError as exc:
                tally.add("streaming", type(exc).__name__)
                await asyncio.sleep(1)


async def slow_client(port: int, k: int, until: float, tally: Tally) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(f"127.0.2.{k + 1}", 0))
    except OSError as exc:
        tally.add("slow", type(exc).__name__)
        return
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100000\r\n\r\n")
    sent = 0
    try:
        while time.monotonic() < until:
            writer.write(b" ")
            await writer.drain()
            sent += 1
            try:
                data = await asyncio.wait_for(reader.read(1), 3.0)
                if not data:  # the server closed it
                    tally.add("slow", f"closed by the server after {sent} bytes")
                    return
                line = data + await asyncio.wait_for(reader.readline(), 5.0)
                tally.add("slow", f"answered {line.decode(errors='replace').split()[1]} after {sent} bytes"
                          if line.startswith(b"HTTP/") else f"answered after {sent} bytes")
                return
            except TimeoutError:
                continue
        tally.add("slow", "still open at the end")
    except (ConnectionError, OSError) as exc:
        tally.add("slow", type(exc).__name__)
    finally:
        writer.close()


async def big_client(base: str, k: int, until: float, tally: Tally, demo: bool) -> None:
    blob = b"x" * 25_000_000
    body = b'{"model": "bench", "messages": [{"role": "user", "content": "' + blob + b'"}]}'

    async def chunks():
        for i in range(0, len(body), 1_000_000):
            yield body[i:i + 1_000_000]

    async with client(f"127.0.3.{k + 1}", timeout=120) as c:
        n = 0
        while time.monotonic() < until:
            n += 1
            try:
                if demo and n % 3 == 0:
                    r = await c.post(f"{base}/gradio_api/upload", files={"files": ("big.png", blob, "image/png")})
                    tally.add("25 MB upload (Gradio)", r.status_code)
                    continue
                chunked = k % 2 == 1
                r = await c.post(f"{base}/v1/chat/completions", content=chunks() if chunked else body,
                                 headers={"content-type": "application/json"})
                tally.add("25 MB body, chunked" if chunked else "25 MB body", r.status_code)
                if r.status_code == 429:
                    await asyncio.sleep(float(r.headers.get("retry-after", "1")))
            except httpx.HTTPError as exc:
                tally.add("25 MB body", type(exc).__name__)
                await asyncio.sleep(0.5)


async def image_client(base: str, k: int, until: float, tally: Tally, images: list[bytes]) -> None:
    import base64

    parts = [{"type": "text", "text": "What do these show?"}] + [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(b).decode()}}
        for b in images]
    async with client(f"127.0.4.{k + 1}", timeout=120) as c:
        while time.monotonic() < until:
            try:
                r = await c.post(f"{base}/v1/chat/completions",
                                 json={"model": "bench", "messages": [{"role": "user", "content": parts}]})
            except httpx.HTTPError as exc:
                tally.add("images", type(exc).__name__)
                continue
            tally.add("images", r.status_code)
            if r.status_code == 200:
                tally.accepted.add(r.json()["fusion"]["run_id"])
            elif r.status_code == 429:
                await asyncio.sleep(float(r.headers.get("retry-after", "1")))


async def probe(base: str, until: float, out: list[float]) -> None:
    """How quickly the server answers a trivial request once a second (``GET`` of an unknown ``/v1`` route: a 404
    that costs nothing but routing): its event loop's lag."""
    async with client("127.0.0.201", timeout=60) as c:
        while time.monotonic() < until:
            t0 = time.perf_counter()
            try:
                await c.get(f"{base}/v1/no-such-route")  # a 404 from the app: no work but routing
                out.append(time.perf_counter() - t0)
            except httpx.HTTPError:
                pass
            await asyncio.sleep(1.0)


def _good_process(base: str, until: float, think: float, phase: str, out) -> None:
    tally = Tally()
    tally.phase = phase
    latencies: list[float] = []
    lags: list[float] = []

    async def both():
        await asyncio.gather(good_client(base, until, tally, latencies, think), probe(base, until, lags))
    asyncio.run(both())
    out.put((latencies, tally.status.get("well-behaved", Counter()), tally.accepted, tally.good_refused,
             tally.good_run, lags))


def good_in_own_process(base: str, until: float, think: float, phase: str, tally: Tally):
    """Start the well-behaved client in a process of its own (as a real one is on another machine: the attackers'
    event loop must not delay its requests or its reading of answers); ``collect()`` merges what it saw into
    ``tally`` and returns its latencies."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    proc = ctx.Process(target=_good_process, args=(base, until, think, phase, out), daemon=True)
    proc.start()

    def collect() -> list[float]:
        latencies, status, accepted, refused, runs, lags = out.get(timeout=max(60.0, until - time.monotonic() + 180))
        tally.lags[phase] = lags
        proc.join(10)
        for k, v in status.items():
            tally.status.setdefault("well-behaved", Counter())[k] += v
        tally.accepted |= accepted
        tally.good_refused += refused
        tally.good_run += runs
        return latencies
    return collect


async def attack(base: str, port: int, until: float, tally: Tally, demo: bool, pid: int, samples: list[int],
                 images: list[bytes]) -> None:

    async def sample():
        while time.monotonic() < until:
            samples.append(rss(pid)[0])
            await asyncio.sleep(0.5)

    await asyncio.gather(
        sample(),
        *(streaming_client(base, k, until, tally) for k in range(50)),
        *(slow_client(port, k, until, tally) for k in range(20)),
        *(big_client(base, k, until, tally, demo) for k in range(10)),
        *(image_client(base, k, until, tally, images) for k in range(5)))


def start_target(kind: str, port: int, env: dict, log: Path) -> subprocess.Popen:
    if kind == "serve":
        cmd = [*WORKBENCH, "serve", "--public", "--host", "127.0.0.1", "--port", str(port),
               "--grace-s", "5"]
    else:
        cmd = [*WORKBENCH, "demo", "--public", "--preset", "tiny-offline", "--host",
               "127.0.0.1", "--port", str(port), "--grace-s", "5"]
    # its log to a file: a pipe nobody reads fills up and then blocks the server's event loop on a write
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log.open("w"), text=True)


def wait_up(base: str, kind: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"{kind} exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/v1/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{kind} did not start in {timeout} s")


def run_target(kind: str, scripted: str, seconds: float, alone: float, think: float) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"load-{kind}-"))
    (home / "models.toml").write_text(models_toml(scripted))
    sport = scripted.split(":")[2].split("/")[0]
    env = {**os.environ, "WORKBENCH_HOME": str(home), "WORKBENCH_MODELS_FILE": str(home / "models.toml"),
           "WORKBENCH_ALLOWED_HOSTS": f"127.0.0.1:{sport}", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = home / "server.log"
    proc = start_target(kind, port, env, log)
    try:
        wait_up(base, kind, proc, log)
        tally = Tally()
        alone_lat = good_in_own_process(base, time.monotonic() + alone, think, "alone", tally)()
        before = rss(proc.pid)[0]
        tally.phase = "under"
        samples: list[int] = []
        images = [png(1500, k) for k in range(4)]
        until = time.monotonic() + seconds
        good = good_in_own_process(base, until, think, "under", tally)  # forked before the attackers' loop runs
        asyncio.run(attack(base, port, until, tally, kind == "demo", proc.pid, samples, images))
        under = good()
        time.sleep(2)  # streams cut at the end finish or are stored as interrupted
        peak = rss(proc.pid)[1]
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    import sqlite3

    con = sqlite3.connect(home / "runs.sqlite")
    stored = dict(con.execute("SELECT id, status FROM runs").fetchall())
    lost = sorted(r for r in tally.accepted if stored.get(r) != "done")
    lim = PUBLIC_LIMITS
    bound = before + 3 * lim.max_bodies_bytes // 2**20 + lim.max_decoding * lim.max_image_pixels * 8 // 2**20 + 64
    return {"kind": kind, "alone": alone_lat, "under": under, "tally": tally, "before": before, "peak": peak,
            "sampled_peak": max(samples, default=0), "bound": bound, "lost": lost, "stored": len(stored)}


def report(r: dict) -> None:
    t: Tally = r["tally"]
    a, u = statistics.median(r["alone"]), statistics.median(r["under"]) if r["under"] else float("nan")
    print(f"\n== {r['kind']} (public) ==")
    print(f"well-behaved client: median {a * 1000:.0f} ms alone ({len(r['alone'])} runs) vs {u * 1000:.0f} ms under "
          f"attack ({len(r['under'])} runs): ratio {u / a:.2f} (goal <= 2); p90 under attack "
          f"{sorted(r['under'])[int(0.9 * (len(r['under']) - 1))] * 1000:.0f} ms; refused and retried "
          f"{t.good_refused} times")
    under_runs = [run for phase, _lat, run in t.good_run if phase == "under"]
    if under_runs:
        gaps = [lat - run for phase, lat, run in t.good_run if phase == "under"]
        alone_gaps = [lat - run for phase, lat, run in t.good_run if phase == "alone"] or [float("nan")]
        print(f"  of which the run itself (its fusion.timing.total_s): median "
              f"{statistics.median(under_runs) * 1000:.0f} ms; the rest (waiting for a slot, the request read, "
              f"checked and answered): median {statistics.median(gaps) * 1000:.0f} ms, max "
              f"{max(gaps) * 1000:.0f} ms (alone: {statistics.median(alone_gaps) * 1000:.0f} ms)")
    if t.lags.get("alone") and t.lags.get("under"):
        print(f"  the server's answer to a trivial GET (a 404, once a second, beside it): median "
              f"{statistics.median(t.lags['alone']) * 1000:.0f} ms alone vs "
              f"{statistics.median(t.lags['under']) * 1000:.0f} ms under attack (max "
              f"{max(t.lags['under']) * 1000:.0f} ms): the event loop's lag, the rest of the wait is for a slot")
    print(f"server memory: {r['before']} MB before the attack, peak {r['peak']} MB (VmHWM; sampled RSS peak "
          f"{r['sampled_peak']} MB); bound from the limits {r['bound']} MB: "
          f"{'within' if r['peak'] <= r['bound'] else 'OVER'}")
    for group, counts in t.status.items():
        print(f"  {group:<28} " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=str)))
    print(f"runs accepted (HTTP 200): {len(t.accepted)}; stored: {r['stored']}; lost (accepted, not stored as done): "
          f"{len(r['lost'])} (goal 0){' ' + str(r['lost'][:5]) if r['lost'] else ''}")


def checks_cost(reps: int = 30) -> None:
    """The new checks on an ordinary run's path, side by side: a prompt's image decoded as before (ImageData.load)
    vs through Policy.read_images (count, runs in flight, header, format, slot), and the address check."""
    from workbench.backends.egress import is_public_address
    from workbench.policy import Policy
    from workbench.types import ImageData

    img = png(1024, 1)
    pol = Policy(public=True, limits=PUBLIC_LIMITS)
    old, new = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        ImageData.load(img)
        old.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        pol.read_images([img], "ip:bench")
        new.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(10000):
        is_public_address("64:ff9b::808:808")
    addr = (time.perf_counter() - t0) / 10000
    mo, mn = statistics.median(old), statistics.median(new)
    print(f"\nchecks on an ordinary run: a 1024x1024 PNG decoded {mo * 1000:.2f} ms before vs {mn * 1000:.2f} ms "
          f"through read_images: ratio {mn / mo:.3f}; the address check {addr * 1e6:.1f} us an address")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", choices=["serve", "demo", "both"], default="both")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--alone", type=float, default=15.0)
    ap.add_argument("--think", type=float, default=5.0,
                    help="seconds the well-behaved client waits between its runs (a person reading the answer)")
    args = ap.parse_args()
    scripted = subprocess.Popen([sys.executable, "-m", "workbench.testing.scripted_server"], cwd=ROOT, text=True,
                                stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        base = scripted.stdout.readline().strip()
        for kind in (["serve", "demo"] if args.target == "both" else [args.target]):
            report(run_target(kind, base, args.seconds, args.alone, args.think))
    finally:
        scripted.terminate()
    checks_cost()


if __name__ == "__main__":
    main()
