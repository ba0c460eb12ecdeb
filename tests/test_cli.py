import json
import subprocess
import sys

from workbench.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True, timeout=300)


def test_models_json(capsys):
    assert main(["models", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    names = {m["name"] for m in data["models"]}
    assert {"scout-int4", "tiny-offline"} <= names
    assert next(m for m in data["models"] if m["name"] == "tiny-offline")["noise"] is True


def test_generate_json_on_tiny_model():
    p = run("generate", "--model", "tiny-offline", "--max-new-tokens", "5", "--json", "hello")
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["ok"] and data["noise"] and data["usage"]["completion_tokens"] > 0


def test_generate_text_mode_says_noise():
    p = run("generate", "--model", "tiny-offline", "--max-new-tokens", "3", "hello")
    assert p.returncode == 0 and "noise" in p.stderr


def test_bad_inputs_are_clear_errors(tmp_path):
    bad = tmp_path / "x.png"
    bad.write_text("nope")
    cases = [(["--model", "no-such-model", "hi"], "Known presets"),
             (["--model", "tiny-offline", ""], "empty"),
             (["--model", "tiny-offline", "--image", str(bad), "hi"], "not a readable image")]
    for args, msg in cases:
        p = run("generate", *args)
        assert p.returncode == 2 and msg in p.stderr and "Traceback" not in p.stderr
