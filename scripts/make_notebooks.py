"""Write notebooks/*.ipynb from their sources, notebooks/src/*.py (one place to edit them), and execute them.

    python scripts/make_notebooks.py                      # write the notebooks; stored outputs are kept (below)
    python scripts/make_notebooks.py --execute            # write, then execute every notebook and store outputs
    python scripts/make_notebooks.py --execute 03_judge_bias   # only the notebooks named

A source is a Python file in the percent format (as jupytext and VS Code read it): ``# %%`` starts a code cell,
``# %% [markdown]`` a markdown cell whose lines are comments. The setup every notebook starts with is one file,
``notebooks/src/_setup.py``: a source imports from it the names it uses (``from _setup import PRESET, ...``, a cell
of its own) and the notebook gets the setup's text in that cell. Ruff lints the sources and
``tests/test_notebooks.py`` checks that every import and every ``wb.`` name they use exists and that the committed
notebooks match them.

The notebooks are committed executed. Writing them keeps a code cell's stored outputs as long as that cell and every
code cell before it are unchanged (a markdown edit keeps them all); the other code cells are written empty and the
script names the notebooks to run with ``--execute``. ``--execute`` runs each notebook in a fresh kernel
(``jupyter nbconvert --execute``, one at a time) with the test run's environment (notebooks/environment.toml, which
conftest.py reads too): SmolLM2-135M offline, few items, short answers, one throwaway run store for the batch (so 06
reuses the member answers 05 cached, as in the test run). Set ``WORKBENCH_PRESET`` or the ``WORKBENCH_NB_*`` sizes to
execute them otherwise. It then strips what changes on every run (timings, progress bars, widget state), so a
re-execution changes only what the numbers change. All seven take about 10 minutes on an idle 2-core CPU, several
times that under load.

Every notebook starts on the preset the app would start on (Scout INT4 with a GPU and its weights, SmolLM2-135M
on a CPU), prints what it finds with confidence intervals, reads each figure and table in plain words (from the
numbers, so the reading stays right when they change), and ends with a cell that checks its numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "notebooks" / "src"
#: the test run's environment: what the committed outputs are executed with, unless set already
EXECUTE_ENV: dict[str, str] = tomllib.loads((ROOT / "notebooks" / "environment.toml").read_text())


def read_source(path: Path) -> list[tuple[str, str]]:
    """A percent-format source's cells as (kind, text): kind "md" or "code"; a markdown cell's lines uncommented."""
    cells: list[tuple[str, list[str]]] = []
    for line in path.read_text().splitlines():
        if line.startswith("# %%"):
            marker = line[4:].strip()
            if marker not in ("", "[markdown]"):
                raise SystemExit(f"{path}: unknown cell marker {line!r} (use '# %%' or '# %% [markdown]')")
            cells.append(("md" if marker else "code", []))
        elif not cells:
            if line.strip():
                raise SystemExit(f"{path}: text before the first '# %%' cell marker")
        elif cells[-1][0] == "md":
            if line and not line.startswith("#"):
                raise SystemExit(f"{path}: a markdown cell's lines are comments ('# ...'), not {line!r}")
            cells[-1][1].append(line[2:] if line.startswith("# ") else line[1:])
        else:
            cells[-1][1].append(line)
    return [(kind, "\n".join(lines).strip("\n")) for kind, lines in cells]


def is_setup(code: str) -> bool:
    """A code cell that is only ``from _setup import ...``: the shared setup cell, written out in the notebook."""
    lines = [line for line in code.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return len(lines) == 1 and lines[0].startswith("from _setup import ")


def sources() -> dict[str, list[tuple[str, str]]]:
    """Every notebook's cells, its setup cell written out from notebooks/src/_setup.py (one copy for all seven)."""
    setup = (SOURCES / "_setup.py").read_text().strip("\n")
    return {p.stem: [(kind, setup if kind == "code" and is_setup(text) else text) for kind, text in read_source(p)]
            for p in sorted(SOURCES.glob("[0-9]*.py"))}


def cell(kind: str, source: str, name: str, n: int) -> dict:
    cid = hashlib.sha1(f"{name}-{n}".encode()).hexdigest()[:8]
    if kind == "md":
        return {"cell_type": "markdown", "id": cid, "metadata": {}, "source": source.splitlines(keepends=True)}
    return {"cell_type": "code", "execution_count": None, "id": cid, "metadata": {}, "outputs": [],
            "source": source.splitlines(keepends=True)}


def dump(nb: dict) -> str:
    """The notebook as nbformat writes it (sorted keys, one-space indent), so executing it changes only outputs."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def with_stored_outputs(nb: dict, path: Path) -> tuple[dict, int]:
    """Carry the stored outputs of ``path`` into ``nb`` for every code cell that, with all code cells before it,
    is unchanged; return the notebook and how many of its code cells are not executed."""
    new = [c for c in nb["cells"] if c["cell_type"] == "code"]
    if path.exists():
        stored = json.loads(path.read_text())
        old = [c for c in stored["cells"] if c["cell_type"] == "code"]
        same = 0
        while same < min(len(old), len(new)) and "".join(old[same]["source"]) == "".join(new[same]["source"]):
            new[same]["outputs"], new[same]["execution_count"] = old[same]["outputs"], old[same]["execution_count"]
            same += 1
        if same:  # the language info the kernel recorded, with the outputs it wrote
            nb["metadata"].update({k: v for k, v in stored["metadata"].items() if k == "language_info"})
    return nb, sum(c["execution_count"] is None for c in new)


def strip_volatile(path: Path) -> None:
    """Drop what changes on every execution without the numbers changing: timings, progress-bar widgets (they
    show nothing once the kernel is gone), widget state, versions."""
    nb = json.loads(path.read_text())
    for c in nb["cells"]:
        c["metadata"].pop("execution", None)
        if c["cell_type"] == "code":
            c["outputs"] = [o for o in c["outputs"]
                            if "application/vnd.jupyter.widget-view+json" not in o.get("data", {})]
    nb["metadata"].pop("widgets", None)
    info = nb["metadata"].get("language_info", {})
    nb["metadata"]["language_info"] = {k: info[k] for k in ("name", "file_extension", "mimetype") if k in info}
    path.write_text(dump(nb))


def execute(path: Path, home: str) -> None:
    """Run ``path`` in a fresh kernel in place (the test run's sizes, run store in ``home``), then strip it."""
    env = {**EXECUTE_ENV, **os.environ, "HF_HUB_OFFLINE": "1", "WORKBENCH_HOME": home, "TQDM_DISABLE": "1",
           "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # transformers' "Loading weights" bars
           "WORKBENCH_MODELS_FILE": str(Path(home) / "no-user-models.toml")}  # presets only, as in the tests
    jupyter = Path(sys.executable).with_name("jupyter")
    subprocess.run([str(jupyter), "nbconvert", "--to", "notebook", "--execute", "--inplace",
                    "--ExecutePreprocessor.timeout=1800", str(path)], check=True, env=env, cwd=ROOT)
    strip_volatile(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--execute", action="store_true", help="execute the notebooks and store their outputs")
    ap.add_argument("names", nargs="*", help="notebooks to execute (default: all), e.g. 03_judge_bias")
    args = ap.parse_args(argv)
    notebooks = sources()
    unknown = set(args.names) - set(notebooks)
    if unknown:
        ap.error(f"unknown notebooks: {', '.join(sorted(unknown))}; choose from {', '.join(notebooks)}")
    stale = []
    for name, cells in notebooks.items():
        path = ROOT / "notebooks" / f"{name}.ipynb"
        nb = {"cells": [cell(k, s, name, i) for i, (k, s) in enumerate(cells)],
              "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
              "nbformat": 4, "nbformat_minor": 5}
        nb, empty = with_stored_outputs(nb, path)
        text = dump(nb)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}" + (f" ({empty} code cells not executed)" if empty else ""))
        if empty:
            stale.append(name)
    if args.execute:  # one throwaway run store for all, as in the test run: 06 reuses the answers 05 cached
        with tempfile.TemporaryDirectory(prefix="wb-nb-home-") as home:
            for name in args.names or list(notebooks):
                print(f"executing notebooks/{name}.ipynb", flush=True)
                execute(ROOT / "notebooks" / f"{name}.ipynb", home)
    elif stale:
        print("to store their outputs: python scripts/make_notebooks.py --execute " + " ".join(stale))
    return 0


if __name__ == "__main__":
    sys.exit(main())
