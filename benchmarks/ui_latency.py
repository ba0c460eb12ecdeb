"""UI figures, side by side in one run.

    .venv/bin/python benchmarks/ui_latency.py

1. App start time on the CPU: `workbench demo` in a fresh process until the page answers.
2. Chunk-to-page latency: scripted members stream chunks stamped with the time they were sent; a
   MutationObserver in Chromium (Playwright) notes when each stamp appears; 3 columns vs 8 columns.
3. 8 concurrent sessions through gradio_client against /fuse: all complete; wall time vs one session.
"""

from __future__ import annotations

import concurrent.futures
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HOME = Path(tempfile.mkdtemp(prefix="wb-bench-"))
os.environ["WORKBENCH_HOME"] = str(HOME)

from workbench.testing import ScriptedServer, free_port  # noqa: E402

OBSERVER = """() => {
  window.__seen = []; const seen = new Set();
  new MutationObserver(() => {
    const now = Date.now();
    document.querySelectorAll('[id^=member-body-]').forEach(el => {
      for (const m of el.innerText.matchAll(/\\[(\\d+\\.\\d+)\\]/g)) {
        const key = el.id + m[1];
        if (!seen.has(key)) { seen.add(key); window.__seen.push(now - parseFloat(m[1]) * 1000); }
      }
    });
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def start_time() -> float:
    port = free_port()
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "demo", "--preset", "tiny-offline", "--port",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                return time.perf_counter() - t
            except OSError:
                if proc.poll() is not None or time.perf_counter() - t > 180:
                    raise RuntimeError("the demo did not start") from None
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait()


def chunk_latency(srv: ScriptedServer, n: int, browser) -> list[float]:
    from workbench.storage import RunStore
    from workbench.ui.gradio_app import CSS, build_demo

    models = HOME / f"models-{n}.toml"
    models.write_text("".join(f'[models.s{i}]\nbackend="openai"\nmodel="stamp=25;chunk_delay=0.04;m={i}"\n'
                              f'base_url="{srv.base_url}"\n' for i in range(n)))
    os.environ["WORKBENCH_MODELS_FILE"] = str(models)
    demo = build_demo("tiny-offline", store=RunStore(HOME / f"runs-{n}.sqlite"), preload=False,
                      pool=[f"s{i}" for i in range(n)])
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, css=CSS,
                            quiet=True)
    try:
        page = browser.new_page(viewport={"width": 1600, "height": 1200})
        page.goto(url)
        page.wait_for_selector("#prompt-box textarea")
        page.click("#settings > button")
        page.get_by_label("vote").check()
        page.evaluate(OBSERVER)
        page.fill("#prompt-box textarea", "go")
        page.click("#prompt-box button.submit-button")
        page.wait_for_function(f"document.querySelectorAll('[id^=member-stats-]').length && "
                               f"[...Array({n}).keys()].every(i => document.querySelector('#member-stats-' + i)"
                               f".innerText.includes('TTFT'))", timeout=120_000)
        page.wait_for_timeout(300)
        seen = page.evaluate("window.__seen")
        page.close()
        return seen
    finally:
        demo.close()


def concurrent_sessions(srv: ScriptedServer, sessions: int) -> tuple[float, float, int]:
    from gradio_client import Client

    from workbench.storage import RunStore
    from workbench.ui.gradio_app import build_demo

    demo = build_demo("tiny-offline", store=RunStore(HOME / "runs-c.sqlite"), preload=False)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    pool = ",".join(f"vllm:reply=answer {i};delay=0.5;chunk_delay=0.02" for i in range(3))

    def one(i):
        c = Client(url, verbose=False)
        return c.predict(f"q{i}", [], pool, "", "vote", 1, 64, api_name="/fuse")

    try:
        os.environ["WORKBENCH_MODELS_FILE"] = str(HOME / "none.toml")
        import workbench.specs as specs

        specs.ENDPOINT_SCHEMES["vllm"] = (srv.base_url, None)  # point the vllm: scheme at the scripted server
        t = time.perf_counter()
        one(-1)
        single = time.perf_counter() - t
        t = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(sessions) as ex:
            outs = list(ex.map(one, range(sessions)))
        wall = time.perf_counter() - t
        return single, wall, sum(o.get("event") == "done" for o in outs)
    finally:
        demo.close()


def main() -> None:
    starts = [start_time() for _ in range(2)]
    print(f"app start (fresh `workbench demo` process until the page answers): {min(starts):.1f} s "
          f"(runs: {', '.join(f'{s:.1f}' for s in starts)})")
    from playwright.sync_api import sync_playwright

    with ScriptedServer() as srv, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        res = {}
        for n in (3, 8):
            lat = chunk_latency(srv, n, browser)
            res[n] = lat
            print(f"chunk -> page, {n} columns: median {statistics.median(lat):.0f} ms, "
                  f"p90 {statistics.quantiles(lat, n=10)[-1]:.0f} ms over {len(lat)} chunks")
        print(f"ratio 8 columns / 3 columns (median): {statistics.median(res[8]) / statistics.median(res[3]):.2f}")
        browser.close()
        single, wall, done = concurrent_sessions(srv, 8)
        print(f"8 concurrent gradio_client sessions: {done}/8 completed in {wall:.2f} s; one alone {single:.2f} s "
              f"(ratio {wall / single:.2f})")


if __name__ == "__main__":
    main()
