"""SmolLM2-135M-Instruct (the offline preset) on this CPU: every figure side by side in one run.

    .venv/bin/python benchmarks/smol_cpu.py [--reps 3] [--tokens 64] [--items 6]

Prints:
1. load time: the first load (GGUF -> safetensors conversion, into a fresh cache) vs a cached load;
2. one request, fixed length: tokens/s in fp32 vs bf16;
3. 4 members sharing one model in one batched call vs one member alone vs 4 separate calls (ratios);
4. a 3-member best-of run end to end vs its slowest member (ratio), locally and through `transformers serve`;
5. the valid-verdict rate of tiny and SmolLM2 judges per mode, without and with constrained decoding.
Run it on an idle machine: under load every figure moves (see FACTS.md at the repo root), the ratios less than
the times.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def load_times() -> tuple[float, float]:
    """Fresh processes: one converting into an empty cache, one loading from it."""
    code = ("import time, workbench as wb; t = time.perf_counter(); wb.load_model('smol-offline'); "
            "print(time.perf_counter() - t)")
    cache = tempfile.mkdtemp(prefix="smol-bench-")
    env = dict(os.environ, WORKBENCH_CACHE=cache)
    out = []
    for _ in range(2):
        res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        out.append(float(res.stdout.strip().splitlines()[-1]))
    return out[0], out[1]


async def timed(coro) -> tuple[float, object]:
    t = time.perf_counter()
    r = await coro
    return time.perf_counter() - t, r


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--items", type=int, default=6)
    ap.add_argument("--parts", default="1,2,3,4,5", help="which figures to measure, e.g. 4 or 1,3")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    import workbench as wb
    from workbench.specs import Member, load_registry

    spec = load_registry().resolve("smol-offline")
    if "1" in parts:
        first, cached = load_times()
        print(f"1. load: first (GGUF conversion + load) {first:.1f} s, cached {cached:.1f} s, ratio {first / cached:.1f}x")

    fp32 = wb.load_model(spec)
    n = args.tokens
    fixed = dict(max_new_tokens=n, min_new_tokens=n, temperature=0)
    if "2" in parts:
        await one_request(spec, fp32, fixed, args.reps)
    if "3" in parts:
        await batching(fp32, fixed, args.reps)
    prompt = "What is 7 + 5? End with 'Final answer: <number>'."
    pool = [Member(spec), Member(spec, persona="You are a skeptic. Check, then answer.", temperature=1.0),
            Member(spec, persona="Reason step by step.", temperature=0.3)]
    if "4" in parts:
        ratios = []
        for _ in range(args.reps):
            r = await wb.fuse(prompt, pool, Member(spec), "best-of", max_new_tokens=48, judge_max_new_tokens=96,
                              seed=0)
            ratios.append((r.total_s - r.load_s, r.slowest_member_s, r.pool_wall_s, r.judge_wall_s))
        tot, slow, pool_s, judge_s = (statistics.median(x) for x in zip(*ratios))
        print(f"4a. 3-member best-of, local: run {tot:.2f} s vs slowest member {slow:.2f} s = {tot / slow:.2f}x "
              f"(pool phase {pool_s:.2f} s = {pool_s / slow:.2f}x the slowest member; judge {judge_s:.2f} s)")
        await serve_run(spec, pool, prompt, args.reps)
    if "5" in parts:
        print("5. valid verdicts (per mode: unconstrained -> constrained), judge limit 128 tokens, 3 candidates,"
              f" {args.items} prompts:")
        await verdict_rates(args.items)


async def one_request(spec, fp32, fixed, reps) -> None:
    import workbench as wb

    n = fixed["max_new_tokens"]
    bf16 = wb.load_model(dataclasses.replace(spec, name="smol-bf16", dtype="bfloat16"))
    q = "Explain why the sky is blue."
    for m in (fp32, bf16):
        await m.generate(q, **fixed)  # warm-up
    t32, t16 = [], []
    for _ in range(reps):  # alternated, so drift hits both
        t32.append((await timed(fp32.generate(q, **fixed)))[0])
        t16.append((await timed(bf16.generate(q, **fixed)))[0])
    a, b = statistics.median(t32), statistics.median(t16)
    print(f"2. one request, {n} tokens: fp32 {n / a:.1f} tok/s, bf16 {n / b:.1f} tok/s, bf16/fp32 time {b / a:.2f}x")
    bf16.close()


async def batching(fp32, fixed, reps) -> None:
    n = fixed["max_new_tokens"]
    asks = ["Explain why the sky is blue.", "Name three uses of copper.", "What is a prime number?",
            "Describe a cat in two sentences."]
    one, batch, separate = [], [], []
    for _ in range(reps):
        one.append((await timed(fp32.generate(asks[0], **fixed)))[0])
        batch.append((await timed(asyncio.gather(*(fp32.generate(x, **fixed) for x in asks))))[0])
        t = time.perf_counter()
        for x in asks:
            await fp32.generate(x, **fixed)
        separate.append(time.perf_counter() - t)
    o, bt, sp = statistics.median(one), statistics.median(batch), statistics.median(separate)
    print(f"3. 4 requests x {n} tokens: batched {bt:.2f} s = {bt / o:.2f}x one alone ({o:.2f} s); "
          f"4 separate calls {sp:.2f} s = {sp / o:.2f}x; batched/separate {bt / sp:.2f}x "
          f"({4 * n / bt:.0f} tok/s in all vs {n / o:.0f} for one)")
    raw_batching(fp32, n)


def raw_batching(model, n: int) -> None:
    """The same 4-vs-1 ratio for transformers' own generate (no streaming, no worker): what the model costs."""
    import torch

    tok, hf = model.tokenizer, model.hf_model
    asks = ["Explain why the sky is blue.", "Name three uses of copper.", "What is a prime number?",
            "Describe a cat in two sentences."]
    res = {}
    for bs in (1, 4):
        texts = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
                 for q in asks[:bs]]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            t = time.perf_counter()
            hf.generate(**enc, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id)
            res[bs] = time.perf_counter() - t
    print(f"3b. transformers generate alone, same prompts: 4 rows {res[4]:.2f} s = {res[4] / res[1]:.2f}x one row "
          f"({res[1]:.2f} s; {torch.get_num_threads()} threads)")


async def serve_run(spec, pool, prompt, reps) -> None:
    import workbench as wb
    from workbench.backends.gguf import ensure_converted
    from workbench.specs import Member, ModelSpec

    path = ensure_converted(spec.model)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "transformers.cli.transformers", "serve", str(path), "--device", "cpu",
                             "--dtype", "float32", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(360):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        remote = ModelSpec(name="smol-serve", backend="openai", model=str(path), base_url=f"http://127.0.0.1:{port}/v1",
                           vision=False)
        rpool = [dataclasses.replace(m, model=remote) for m in pool]
        await wb.fuse(prompt, rpool, Member(remote), "best-of", max_new_tokens=8, judge_max_new_tokens=16)  # warm-up
        rows = []
        for _ in range(reps):
            r = await wb.fuse(prompt, rpool, Member(remote), "best-of", max_new_tokens=48, judge_max_new_tokens=96,
                              seed=0)
            rows.append((r.total_s - r.load_s, r.slowest_member_s, r.pool_wall_s, r.judge_wall_s,
                         len(r.verdict.attempts) if r.verdict else 0))
        tot, slow, pool_s, judge_s, attempts = (statistics.median(x) for x in zip(*rows))
        print(f"4b. 3-member best-of through transformers serve: run {tot:.2f} s vs slowest member {slow:.2f} s = "
              f"{tot / slow:.2f}x (pool phase {pool_s / slow:.2f}x the slowest member; judge {judge_s:.2f} s in "
              f"{attempts:.0f} calls: the server ignores response_format, so its replies are free text, validated "
              f"and retried)")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def verdict_rates(items: int) -> None:
    import workbench as wb
    from workbench.answers import letters
    from workbench.fusion import judge as J
    from workbench.fusion.modes import MODES
    from workbench.records import MemberOutput
    from workbench.specs import Member
    from workbench.types import GenerateConfig, Prompt

    qs = [(f"What is {a} + {b}?", a + b) for a, b in [(3, 4), (8, 5), (6, 9), (2, 7), (9, 9), (4, 6), (7, 1), (5, 8)]]
    qs = qs[:items]
    cfg = GenerateConfig(max_new_tokens=128, temperature=0.0)
    for name in ("tiny-offline", "smol-offline"):
        judge = wb.load_model(name)
        cells = []
        for mode in ("best-of", "merge", "debate"):
            rate = {}
            for constrain in (False, True):
                ok = 0
                for n, (q, ans) in enumerate(qs):
                    cands = [MemberOutput(0, "a", 1, True, f"Final answer: {ans}"),
                             MemberOutput(1, "b", 1, True, f"I think it is {ans + 1}."),
                             MemberOutput(2, "c", 1, True, f"{ans - 2}")]
                    order = [[0, 1, 2], [1, 2, 0], [2, 0, 1]][n % 3]
                    _, parsed, _, _ = await J.judge_once(judge, Member(judge.spec), Prompt(q), cands, order,
                                                         MODES[mode], cfg, constrain=constrain)
                    ok += parsed is not None
                rate[constrain] = ok / len(qs)
            cells.append(f"{mode} {rate[False]:.0%} -> {rate[True]:.0%}")
        print(f"   {name:13} " + "; ".join(cells) + f" (letters {letters(3)})")
        judge.close()


if __name__ == "__main__":
    asyncio.run(main())
