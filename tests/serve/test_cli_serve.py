"""The `workbench serve` command as a user runs it: starts, answers, refuses a busy port, drains on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import openai

from .conftest import free_port, models_file


def start(tmp_path, server, port, *extra):
    models = tmp_path / "models.toml"
    models.write_text(models_file(server.base_url))
    env = {**os.environ, "WORKBENCH_MODELS_FILE": str(models), "WORKBENCH_HOME": str(tmp_path / "home"),
           "WB_SERVE_TOKEN": "tok-123456789"}
    return subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", "--port", str(port), *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_up(url, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError("workbench serve did not start")


def test_serve_answers_with_auth_then_drains_on_sigterm(tmp_path, server):
    port = free_port()
    proc = start(tmp_path, server, port, "--api-key-env", "WB_SERVE_TOKEN")
    try:
        wait_up(f"http://127.0.0.1:{port}", proc)
        c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="tok-123456789", max_retries=0)
        assert {"best", "smol-best-of"} <= {m.id for m in c.models.list()}
        r = c.chat.completions.create(model="best", messages=[{"role": "user", "content": "2+3?"}])
        assert r.choices[0].message.content == "I think it is 5. Final answer: 5"
        # a busy port: one line that says what to do, exit status 2
        other = start(tmp_path, server, port)
        out, err = other.communicate(timeout=60)
        assert other.returncode == 2 and f"port {port} on 127.0.0.1 is in use" in err and "Traceback" not in err
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "serving http://127.0.0.1:" in err and "SIGTERM: refusing new runs" in err and "Traceback" not in err
    listed = subprocess.run([sys.executable, "-m", "workbench.cli", "runs", "list", "--json"], capture_output=True,
                            text=True, env={**os.environ, "WORKBENCH_HOME": str(tmp_path / "home")})
    assert r.model_extra["fusion"]["run_id"] in listed.stdout
