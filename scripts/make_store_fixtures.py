"""Make the run-store fixtures of every earlier schema, each written by the workbench that had that schema.

    .venv/bin/python scripts/make_store_fixtures.py   # writes tests/fixtures/stores/v{N}.sqlite and v{N}.json

For each schema version N, the workbench package of the commit that introduced it is taken from git
(``git archive``) into a temporary folder, and that old code, with this venv's libraries, runs real fusions
against its own scripted server and saves them with its own ``RunStore``: a best-of with an image, a two-round
debate, a degraded run (a member failing); from schema 4 on also a run owned by a public visitor, from schema 5 on
a label. ``v{N}.json`` keeps what the old code returned (each run's record as it saw it, its images' hashes, the
label) for ``tests/test_migrations.py`` to compare with what today's code reads after migrating the file.

The old code speaks to its members through the OpenAI SDK of its day (openai 1.x on httpx, whose client API
openai 3 no longer takes), so the script installs those (``OLD_LIBS``, without dependencies) into a folder put
before this venv's libraries for the old code only.

The commits are fixed: a new schema version adds its commit here, and its fixture is made once and committed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "stores"

#: what the old code called its members with (today's openai 3 refuses its httpx objects)
OLD_LIBS = ["openai==1.109.1", "httpx==0.28.1", "httpcore==1.0.9", "distro==1.9.0"]

#: schema version -> the commit whose workbench introduced it
SCHEMAS = {1: "71b1300", 2: "72dbc6b", 3: "cfab529", 4: "62f2640", 5: "2e63962", 6: "643e6c8"}

SNIPPET = r'''
import asyncio, hashlib, io, json, sqlite3, sys
from PIL import Image
from workbench.fusion.engine import fuse
from workbench.scripted_server import ScriptedServer
from workbench.specs import Member, ModelSpec
from workbench.store import RunStore  # the old code's own paths
from workbench.types import ImageData, Prompt

out, version = sys.argv[1], int(sys.argv[2])
buf = io.BytesIO()
Image.new("RGB", (8, 8), (200, 30, 30)).save(buf, "PNG")
image = ImageData.load(buf.getvalue())
store = RunStore(out)
kept = {"version": version, "runs": {}, "labels": {}}

with ScriptedServer() as srv:
    def member(script, name):
        return Member(ModelSpec(name=name, backend="openai", model=script, base_url=srv.base_url, vision=True))

    five = member("reply=Two plus three is five. Final answer: 5", "five")
    six = member("reply=I get 6. Final answer: 6", "six")
    broken = member("status=500", "broken")
    judge = member("judge_pick=five", "judge")

    async def main():
        runs = [
            ("best-of with an image", dict(prompt=Prompt("What is 2+3? And the colour?", [image]),
                                           pool=[five, six], mode="best-of")),
            ("debate", dict(prompt="What is 2+3?", pool=[five, six], mode="debate", rounds=2)),
            ("degraded", dict(prompt="What is 2+3?", pool=[five, broken], mode="merge")),
        ]
        if version >= 4:
            runs.append(("a public visitor's", dict(prompt="What is 2+3?", pool=[five, six], mode="best-of",
                                                    owner="visitor:abc")))
        for what, kw in runs:
            prompt, pool, mode = kw.pop("prompt"), kw.pop("pool"), kw.pop("mode")
            result = await fuse(prompt, pool, judge, mode, store=store, **kw)
            kept["runs"][result.run_id] = {"what": what, "owner": kw.get("owner"),
                                           "record": json.loads(json.dumps(result.to_dict(), default=str)),
                                           "images": [image.sha256] if what.endswith("image") else []}
        if version >= 5:
            rid = next(iter(kept["runs"]))
            kept["labels"][rid] = store.set_label(rid, best_member=0, fused="better")
    asyncio.run(main())
store._conn.close()

con = sqlite3.connect(out)
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
con.execute("PRAGMA journal_mode=DELETE")
con.execute("VACUUM")
con.close()
kept["user_version"] = sqlite3.connect(out).execute("PRAGMA user_version").fetchone()[0]
print(json.dumps(kept, default=str))
'''


def make(version: int, commit: str, libs: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tree = subprocess.run(["git", "archive", commit, "workbench"], cwd=ROOT, check=True,
                              capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=tree, check=True)
        db = Path(tmp) / "runs.sqlite"
        done = subprocess.run([sys.executable, "-c", SNIPPET, str(db), str(version)], cwd=tmp, text=True,
                              capture_output=True, env={"PYTHONPATH": f"{tmp}:{libs}", "PATH": "/usr/bin:/bin",
                                                        "HF_HUB_OFFLINE": "1", "WORKBENCH_HOME": tmp})
        if done.returncode:
            raise SystemExit(f"schema {version} ({commit}): {done.stderr[-3000:]}")
        kept = json.loads(done.stdout.strip().splitlines()[-1])
        if kept["user_version"] != version:
            raise SystemExit(f"{commit} wrote schema {kept['user_version']}, not {version}")
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / f"v{version}.sqlite").write_bytes(db.read_bytes())
        (OUT / f"v{version}.json").write_text(json.dumps(kept, indent=1, sort_keys=True) + "\n")
        print(f"v{version} ({commit}): {len(kept['runs'])} runs, {len(kept['labels'])} label(s), "
              f"{db.stat().st_size:,} bytes")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as libs:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", libs, *OLD_LIBS],
                       check=True)
        for version, commit in SCHEMAS.items():
            make(version, commit, libs)
