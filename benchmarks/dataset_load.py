"""Reading evaluation tables: load time and memory for a large text table and an image table, and the throughput
of an evaluation on SmolLM2 over GSM8K-shaped items, in one run.

    .venv/bin/python benchmarks/dataset_load.py [--text-rows 10000] [--image-rows 500] [--eval-items 50]

Both tables are built here in the Hub's own layout (a config folder of parquet shards and a README naming them;
the images PNGs embedded in an Image feature, one colour each, so small) and read through
``workbench.eval.tables`` as a Hub download is: once with no limit (every row becomes an item, every image decoded
and checked) and once with a limit of 50 (only those rows are decoded). Memory: the peak of Python's allocations
while reading (tracemalloc; Arrow's own buffers are not in it), the process's resident memory after minus before,
and what the items hold (prompt text and image bytes). ``--eval-items N`` (0 to skip) runs ``wb.evaluate`` with
three SmolLM2 members and a SmolLM2 judge (best-of, 64-token answers) on N GSM8K-shaped items and prints items per
minute, members and judge included. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "eval"))


def rss_mib() -> float:
    """The process's resident memory now (Linux), MiB."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def build(root: Path, text_rows: int, image_rows: int) -> tuple[str, str]:
    import datasets
    from PIL import Image
    from test_tables import gsm8k_like, hub_repo

    hub_repo(root / "text", "main", {"test": gsm8k_like(text_rows)})
    feats = datasets.Features({"id": datasets.Value("string"), "query": datasets.Value("string"),
                               "label": datasets.Value("string"), "image": datasets.Image()})
    rows: dict[str, list] = {"id": [], "query": [], "label": [], "image": []}
    for k in range(image_rows):
        buf = io.BytesIO()
        Image.new("RGB", (448, 336), (k % 256, 80, 160)).save(buf, "PNG")
        rows["id"].append(f"c{k}")
        rows["query"].append(f"What is bar {k}?")
        rows["label"].append(str(k))
        rows["image"].append({"bytes": buf.getvalue(), "path": None})
    hub_repo(root / "images", "default", {"test": datasets.Dataset.from_dict(rows, features=feats)})
    return (f"hf:{root / 'text'}:main@test#input=question,target=answer",
            f"hf:{root / 'images'}@test#input=query,target=label,image=image,id=id,type=relaxed")


def timed_load(spec: str, limit: int | None) -> dict:
    from workbench.eval.tables import load_table

    rss0 = rss_mib()
    tracemalloc.start()
    t = time.perf_counter()
    ds = load_table(spec, limit)
    elapsed = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    held = sum(len(i.prompt) + sum(len(img.data) for img in i.images) for i in ds.items) / 2**20
    return {"items": len(ds), "seconds": round(elapsed, 2), "python_peak_mib": round(peak, 1),
            "rss_growth_mib": round(rss_mib() - rss0, 1), "items_text_and_image_bytes_mib": round(held, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--text-rows", type=int, default=10_000)
    ap.add_argument("--image-rows", type=int, default=500)
    ap.add_argument("--eval-items", type=int, default=50)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="wb-bench-tables-"))
    os.environ.setdefault("HF_DATASETS_CACHE", str(root / "hf-cache"))  # a cold cache: the first read converts
    text, images = build(root, args.text_rows, args.image_rows)
    out: dict = {}
    for name, spec in (("text", text), ("images", images)):
        out[f"{name}_all"] = timed_load(spec, None)
        out[f"{name}_50"] = timed_load(spec, 50)
        print(f"{name}: all rows {out[f'{name}_all']}; 50 rows {out[f'{name}_50']}", flush=True)
    if args.eval_items:
        import workbench as wb

        pool = ["smol-offline", "smol-offline:skeptic", "smol-offline:analyst"]
        wb.load_model("smol-offline", keep=True)  # loaded once, outside the timing
        t = time.perf_counter()
        df = wb.evaluate(text, pool, "smol-offline", ["best-of"], limit=args.eval_items,
                         store=wb.RunStore(root / "runs.sqlite"), max_new_tokens=64)
        minutes = (time.perf_counter() - t) / 60
        out["eval"] = {"items": int(df["item_id"].nunique()), "minutes": round(minutes, 2),
                       "items_per_minute": round(df["item_id"].nunique() / minutes, 2),
                       "pool": pool, "judge": "smol-offline", "mode": "best-of", "max_new_tokens": 64}
        print(f"evaluation: {out['eval']}", flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
