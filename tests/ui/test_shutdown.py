"""`workbench demo` stopped as Spaces stops it (SIGTERM) during a run: it drains, records, exits 0."""

import os
import signal
import subprocess
import sys
import time

import pytest
from gradio_client import Client

from workbench.storage import RunStore


def start_demo(tmp_path, server, port: int, grace_s: float):
    models = tmp_path / "models.toml"
    models.write_text(f"""
[models.slow]
backend = "openai"
model = "reply=one two three four five six seven eight nine ten;chunk_delay=0.5"
base_url = "{server.base_url}"

[models.quick]
backend = "openai"
model = "reply=quick answer"
base_url = "{server.base_url}"
""")
    proc, client = launch_demo(tmp_path, port, ["--preset", "quick", "--pool", "slow,quick", "--grace-s", str(grace_s)],
                               WORKBENCH_MODELS_FILE=str(models))
    return proc, client, RunStore(tmp_path / "home" / "runs.sqlite")


def launch_demo(tmp_path, port: int, args: list[str], **env):
    """`workbench demo ARGS` in a subprocess, once it serves: (process, gradio client)."""
    env = {**os.environ, "WORKBENCH_HOME": str(tmp_path / "home"), **env}
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "demo", "--port", str(port), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for _ in range(600):
        try:
            return proc, Client(f"http://127.0.0.1:{port}/", verbose=False)
        except Exception:
            if proc.poll() is not None:
                pytest.fail(proc.stdout.read())
            time.sleep(0.1)
    proc.kill()
    pytest.fail("the demo did not start")


def wait_for_tokens(job, timeout=60):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if any(o.get("event") == "tokens" and o["members"][0] for o in job.outputs()):
            return
        time.sleep(0.05)
    pytest.fail("the run did not start streaming")


@pytest.mark.parametrize("grace_s, status", [(0.5, "interrupted"), (30, "done")])
def test_sigterm_during_a_run_drains_records_and_exits_0(tmp_path, server, port, grace_s, status):
    proc, client, store = start_demo(tmp_path, server, port, grace_s)
    try:
        job = client.submit("q", [], "slow,quick", "", "vote", 1, 32, api_name="/fuse")
        wait_for_tokens(job)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-3000:]
    assert "SIGTERM: refusing new runs" in out and "Traceback" not in out and "terminate called" not in out
    rows = store.list()
    assert [r["status"] for r in rows] == [status], out[-3000:]
    run = store.load(rows[0]["run_id"])
    slow, quick = run.rounds[0]
    assert quick.ok and quick.text == "quick answer"
    if status == "interrupted":
        assert "shut down" in run.interrupted and slow.kind == "interrupted" and slow.text.startswith("one")
        assert "1 recorded as interrupted" in out
    else:
        assert slow.ok and slow.text.endswith("ten") and "1 finished" in out


def test_ctrl_c_on_an_idle_demo_with_a_local_model_exits_0(tmp_path, port):
    proc, _ = launch_demo(tmp_path, port, ["--preset", "tiny-offline"])
    try:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-3000:]
    assert "SIGINT: refusing new runs" in out and "terminate called" not in out and "Traceback" not in out


def test_a_busy_port_is_one_line_naming_the_flag(tmp_path, port):
    """`make demo ARGS="--port N"` on a taken port: one line that names a free port and the flag, exit 2."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        env = {**os.environ, "WORKBENCH_HOME": str(tmp_path / "home")}
        out = subprocess.run([sys.executable, "-m", "workbench.cli", "demo", "--preset", "tiny-offline", "--port",
                              str(port)], env=env, capture_output=True, text=True, timeout=120)
    lines = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert len(lines) == 1 and f"port {port}" in lines[0] and "in use" in lines[0] and "--port" in lines[0], lines
    assert "share=True" not in out.stderr


def test_the_demo_names_its_flags_not_launch_arguments(tmp_path, port):
    proc, client = launch_demo(tmp_path, port, ["--preset", "tiny-offline"])
    try:
        assert client.view_api(print_info=False, return_format="dict") is not None
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=60)[0]
    assert f"Fusion Workbench on http://127.0.0.1:{port}" in out and "--share" in out
    assert "share=True" not in out and "launch()" not in out
