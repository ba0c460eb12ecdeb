"""A non-editable install (what `pip install .` and Spaces give users) holds every module and works."""

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_built_wheel_installs_into_a_fresh_venv_and_runs(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(ROOT)], check=True, capture_output=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("fusion_workbench-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "workbench").rglob("*.py")}
    assert sources <= names, sorted(sources - names)
    assert "workbench/presets.toml" in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # the wheel itself, installed by pip (console script included); its dependencies come from this
    # environment's site-packages (a path entry: this environment's editable workbench is not visible through it)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {**os.environ, "PYTHONPATH": ""}
    check = subprocess.run([str(py), "-c", "import workbench, workbench.ui.gradio_app as g; print(workbench.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stderr[-2000:]
    assert check.stdout.strip().startswith(site)  # the installed copy, not the source tree
    gen = subprocess.run([str(venv / "bin" / "workbench"), "generate", "--model", "tiny-offline", "--max-new-tokens",
                          "3", "--json", "hi"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert gen.returncode == 0, gen.stderr[-2000:]
    assert '"ok": true' in gen.stdout
