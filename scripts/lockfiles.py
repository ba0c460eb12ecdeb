"""The lock (requirements.lock) and the files generated from it; the platform check `make install` runs first.

    python scripts/lockfiles.py write       # requirements.txt (Spaces) and environment.yml, pinned from the lock
    python scripts/lockfiles.py check       # exit 1 when they, README's sdk_version or pyproject's ranges disagree
    python scripts/lockfiles.py platform    # exit 2 with one line when this machine is not what the lock is for

requirements.lock is written by `make lock` (pip-compile, hashes on, under lock-constraints.txt) for CPython 3.11 on
Linux x86-64: the platform the CI machines, the developers' machines and a Space run. It holds the runtime, dev and
notebook needs and the build backend; requirements.txt holds the runtime part only (followed through the lock's
"# via" lines from pyproject's dependencies), environment.yml all of it.
"""

from __future__ import annotations

import platform
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
#: what the lock was resolved for (pip-compile resolves for the machine it runs on)
LOCK_PYTHON = (3, 11)
LOCK_MACHINE = ("Linux", "x86_64")
HEADER = "# Generated from requirements.lock by scripts/lockfiles.py (make lock): do not edit by hand.\n"


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(text: str | None = None) -> dict[str, tuple[str, set[str]]]:
    """{normalised name: (version, {names of what requires it; "<project>" / "<build>" for pyproject})}."""
    text = LOCK.read_text() if text is None else text
    out: dict[str, tuple[str, set[str]]] = {}
    current: str | None = None
    in_via = False
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", line)
        if m:
            current = norm(m.group(1))
            out[current] = (m.group(2), set())
            in_via = False
            continue
        s = line.strip()
        if current is None or not s.startswith("#"):
            continue
        body = s.lstrip("#").strip()
        if body.startswith("via"):
            in_via = True
            body = body[3:].strip()
            if not body:
                continue
        elif not in_via or not line.startswith("    #   "):
            in_via = False
            continue
        if "(pyproject.toml::build-system" in body:
            out[current][1].add("<build>")
        elif "(pyproject.toml)" in body:
            out[current][1].add("<project>")
        elif body.startswith("-c ") or body.startswith("-r "):
            continue
        else:
            out[current][1].add(norm(body.split()[0]))
    return out


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirement_name(req: str) -> str:
    return norm(re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0])


def runtime_closure(lock: dict[str, tuple[str, set[str]]]) -> list[str]:
    """The locked packages a runtime install needs: pyproject's dependencies and what they pull in."""
    roots = {requirement_name(d) for d in pyproject()["dependencies"]}
    keep = {n for n in lock if n in roots}
    while True:
        more = {n for n, (_, parents) in lock.items() if n not in keep and parents & keep}
        if not more:
            return sorted(keep)
        keep |= more


def render_requirements(lock) -> str:
    return (HEADER + "# The runtime packages only, for a Hugging Face Space (CPython 3.11, Linux x86-64).\n"
            + "".join(f"{n}=={lock[n][0]}\n" for n in runtime_closure(lock)))


def render_environment(lock) -> str:
    pins = "".join(f"      - {n}=={v}\n" for n, (v, _) in sorted(lock.items()))
    return (HEADER + "# conda env create -f environment.yml && conda activate fusion-workbench   (Linux x86-64)\n"
            "name: fusion-workbench\nchannels:\n  - conda-forge\ndependencies:\n"
            f"  - python={LOCK_PYTHON[0]}.{LOCK_PYTHON[1]}\n  - pip\n  - pip:\n{pins}      - -e .\n")


def disagreements(lock) -> list[str]:
    """Every way the generated files, README's Space front matter and pyproject's ranges disagree with the lock."""
    from packaging.requirements import Requirement

    problems = []
    for path, text in ((ROOT / "requirements.txt", render_requirements(lock)),
                       (ROOT / "environment.yml", render_environment(lock))):
        if not path.is_file() or path.read_text() != text:
            problems.append(f"{path.name} is not what the lock gives: run `python scripts/lockfiles.py write`")
    project = pyproject()
    reqs = list(project["dependencies"]) + [r for extra in project["optional-dependencies"].values() for r in extra]
    for raw in reqs:
        req = Requirement(raw)
        name = norm(req.name)
        if name not in lock:
            problems.append(f"{req.name} is in pyproject.toml but not in requirements.lock: run `make lock`")
        elif not req.specifier.contains(lock[name][0], prereleases=True):
            problems.append(f"requirements.lock pins {req.name}=={lock[name][0]}, outside pyproject's {req.specifier}")
    front = (ROOT / "README.md").read_text().split("\n---\n", 1)[0]
    sdk = re.search(r"^sdk_version:\s*([\w.]+)", front, re.M)
    if "gradio" in lock and (not sdk or sdk.group(1) != lock["gradio"][0]):
        problems.append(f"README's Space sdk_version is {sdk.group(1) if sdk else 'missing'}, the lock's gradio "
                        f"{lock['gradio'][0]}")
    return problems


def platform_problem() -> str | None:
    """One line when this Python or machine is not what the lock was resolved for, else None."""
    here = (sys.version_info[:2], (platform.system(), platform.machine()))
    if here == (LOCK_PYTHON, LOCK_MACHINE):
        return None
    py = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return (f"requirements.lock is for CPython {LOCK_PYTHON[0]}.{LOCK_PYTHON[1]} on {' '.join(LOCK_MACHINE)}; this is "
            f"Python {py} on {platform.system()} {platform.machine()}: run `make install-unlocked` (pyproject's "
            f"ranges, unpinned), or `make lock PYTHON=python{LOCK_PYTHON[0]}.{LOCK_PYTHON[1]}` on such a machine")


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else "check"
    if cmd == "platform":
        problem = platform_problem()
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
        return 0
    lock = read_lock()
    if cmd == "write":
        (ROOT / "requirements.txt").write_text(render_requirements(lock))
        (ROOT / "environment.yml").write_text(render_environment(lock))
        print(f"wrote requirements.txt ({len(runtime_closure(lock))} runtime pins) and environment.yml "
              f"({len(lock)} pins) from requirements.lock")
        return 0
    problems = disagreements(lock)
    for p in problems:
        print(p, file=sys.stderr)
    if not problems:
        print(f"requirements.lock ({len(lock)} pins) agrees with pyproject.toml, requirements.txt, environment.yml "
              f"and README's sdk_version")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
