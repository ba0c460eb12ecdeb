"""The GPU proof in one call (``make gpu-check``): a Scout-shaped Llama 4 through the workbench's INT4 path.

    python benchmarks/gpu_check.py                 # a GPU: full width, 2 decoder layers (about 5 minutes on an H100)
    python benchmarks/gpu_check.py --small         # no GPU (chosen by itself without CUDA): toy widths on the CPU

Everything is built here (random weights, no download) and goes through the code a user's Scout goes through:

1. **bandwidth**: a device-to-device copy, bytes read + written per second (the decode bound below uses it).
2. **build + convert + load**: a Llama 4 with Scout's widths (text 5120, 16 experts, vocabulary 202,048; the vision
   tower) and ``--layers`` decoder layers, saved in bf16, converted by the workbench's shard-wise INT4 converter
   (experts included) and loaded with ``LocalModel`` (``quant="int4"``).
3. **memory**: bytes per decoder layer as loaded vs the plan (``quant.plan_memory`` of the same config), and the
   total extrapolated to Scout's 48 layers (goal: within 5 % of the plan per layer).
4. **decode**: tokens/s at batch 1, 4 and 16 (every answer forced to ``--tokens`` tokens), and batch 1 over the
   bandwidth bound: bandwidth / bytes read per token (every weight a token touches as loaded: attention, router,
   shared expert, 1 of 16 routed experts, norms, lm_head) (goal: >= 25 %).
5. **vision**: the same image + text prompt through the INT4 model with its vision tower in bf16 and with it in
   4-bit (a second conversion of the same weights): top-1 agreement and cosine of the logits at every position.
6. **close()**: memory allocated before and after closing the last model (goal: < 5 % left).
7. **fusion**: three members and a judge on one local model through the fusion engine (best-of): the run's wall
   time over its slowest member's. Then **batching** on the same model: a late 3-member run's time to first token
   over its idle one with continuous batching (``stepper.StepWorker``) and with the batcher it replaced, and
   tokens/s of 8 concurrent 3-member runs on each (``benchmarks/late_arrival.py``, one rep); on a GPU also with
   transformers' own manager (``paged.PagedWorker``, ``paged`` in the JSON; on the CPU it is left out to keep the
   toy run short, and ``tests/backends/test_paged.py`` covers it there). The model:
   SmolLM2-135M when its converted checkpoint is in the workbench cache (``make install`` puts it there), else a
   small random-weight Llama built here (the device machine has no SmolLM2 and cannot download it); the JSON says
   which.

Each phase is timed; a phase that fails is recorded with its error and the rest still run; past ``--budget-s`` the
remaining phases are skipped (and named). The last line printed is one JSON object, also written to
``benchmarks/results/gpu_check-<device>-<time>.json`` (``--out`` to choose).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
GIB = 1024**3
HERE = Path(__file__).resolve().parent


def build(out: Path, layers: int, small: bool, device: str) -> Path:
    """A Scout-shaped Llama 4 checkpoint (bf16, random weights) with its processor, saved in ``out``."""
    import torch
    from transformers import Llama4Config, Llama4ForConditionalGeneration, Llama4Processor
    from transformers.models.llama4.image_processing_llama4 import Llama4ImageProcessor
    from transformers.models.llama4.processing_llama4 import chat_template

    from workbench.backends.quant import SCOUT_CONFIG
    from workbench.backends.tiny import SPECIAL_TOKENS, _train_tokenizer

    tok = _train_tokenizer(448)
    text = dict(SCOUT_CONFIG["text_config"], num_hidden_layers=layers, pad_token_id=tok.pad_token_id,
                bos_token_id=0, eos_token_id=[tok.eos_token_id])
    vision = dict(SCOUT_CONFIG["vision_config"])
    if small:
        text.update(hidden_size=256, intermediate_size=512, intermediate_size_mlp=1024, num_attention_heads=4,
                    num_key_value_heads=2, head_dim=64, vocab_size=2048)
        vision.update(hidden_size=64, intermediate_size=256, num_hidden_layers=1, num_attention_heads=2,
                      vision_output_dim=256, projector_input_dim=256, projector_output_dim=256)
    config = Llama4Config(text_config=text, vision_config=vision,
                          image_token_index=SPECIAL_TOKENS.index("<|patch|>"),
                          boi_token_index=SPECIAL_TOKENS.index("<|image_start|>"),
                          eoi_token_index=SPECIAL_TOKENS.index("<|image_end|>"))
    torch.manual_seed(0)
    with torch.device(device):
        model = Llama4ForConditionalGeneration(config).to(torch.bfloat16)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out, max_shard_size="5GB")
    Llama4Processor(image_processor=Llama4ImageProcessor(max_patches=4), tokenizer=tok, chat_template=chat_template,
                    patch_size=vision["patch_size"], pixel_shuffle_ratio=0.5).save_pretrained(out)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return out


def bandwidth(device: str, mib: int) -> float:
    """Bytes read + written per second by a device-to-device copy of ``mib`` MiB (the best of 10)."""
    import torch

    a = torch.empty(mib * 2**20, dtype=torch.uint8, device=device)
    b = torch.empty_like(a)
    best = float("inf")
    for i in range(13):
        sync(device)
        t = time.perf_counter()
        b.copy_(a)
        sync(device)
        if i >= 3:
            best = min(best, time.perf_counter() - t)
    return 2 * a.numel() / best


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def allocated(device: str) -> int:
    import torch

    if device != "cuda":
        return 0
    return sum(torch.cuda.memory_allocated(i) for i in range(torch.cuda.device_count()))


PER_LAYER = ("experts", "shared_expert", "attention", "router", "norms", "mlp")


def memory_figures(model, layers: int) -> dict:
    """Bytes per decoder layer as loaded vs the plan for the same config, and the 48-layer extrapolation."""
    from transformers import Llama4Config

    from workbench.backends.quant import SCOUT_CONFIG, plan_memory

    report = model.memory_report()
    comps = {k: sum(v.values()) for k, v in report["by_component"].items()}
    per_layer = sum(comps.get(c, 0) for c in PER_LAYER) / layers
    fixed = report["total_bytes"] - per_layer * layers
    cfg = model.hf_model.config
    plan = plan_memory(Llama4Config(text_config=cfg.text_config.to_dict(), vision_config=cfg.vision_config.to_dict()),
                       model.spec.skip_modules)
    planned = sum(plan["int4_bytes"].get(c, 0) for c in PER_LAYER) / layers
    scout = plan_memory(Llama4Config(**SCOUT_CONFIG), model.spec.skip_modules)
    return {"loaded_gib": report["total_gib"], "per_layer_gib": round(per_layer / GIB, 4),
            "per_layer_plan_gib": round(planned / GIB, 4), "per_layer_over_plan": round(per_layer / planned, 4),
            "outside_layers_gib": round(fixed / GIB, 3),
            "extrapolated_48_layers_gib": round((fixed + 48 * per_layer) / GIB, 2),
            "scout_plan_int4_gib": scout["int4_total_gib"], "by_component_bytes": comps}


def bytes_per_token(model) -> int:
    """Weight bytes one decoded token reads, as loaded: every decoder weight but the routed experts it does not use,
    and the lm_head (embeddings: one row; the vision tower: none)."""
    report = model.memory_report()["by_component"]
    text = model.hf_model.config.get_text_config()
    share = text.num_experts_per_tok / text.num_local_experts
    total = 0.0
    for comp, by_dtype in report.items():
        size = sum(by_dtype.values())
        if comp == "experts":
            total += size * share
        elif comp in PER_LAYER or comp == "lm_head":
            total += size
    return int(total)


async def decode_rates(model, tokens: int, batches: tuple[int, ...]) -> dict:
    import workbench as wb

    prompt = wb.Prompt("Describe a red circle in a few words.")
    await model.generate(prompt, max_new_tokens=4)  # warm-up
    out = {}
    for batch in batches:
        t = time.perf_counter()
        rs = await asyncio.gather(*[model.generate(prompt, persona=f"voice {i}", max_new_tokens=tokens,
                                                   min_new_tokens=tokens, temperature=0) for i in range(batch)])
        dt = time.perf_counter() - t
        bad = [r for r in rs if not r.ok]
        if bad:
            raise RuntimeError(f"batch {batch}: {bad[0].reason}")
        n = sum(r.usage.completion_tokens for r in rs)
        out[batch] = {"tokens": n, "seconds": round(dt, 3), "tokens_per_s": round(n / dt, 2),
                      "per_sequence_tokens_per_s": round(n / dt / batch, 2)}
    return out


def image_logits(model):
    """Logits at every position of one image + text prompt (float32, on the CPU)."""
    import torch
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (336, 336), "white")
    draw = ImageDraw.Draw(img)
    draw.ellipse((60, 60, 276, 276), fill="red")
    draw.rectangle((10, 10, 90, 60), fill="blue")
    import workbench as wb

    messages = wb.Prompt("What shapes and colours are in this image?", images=[img]).messages()
    text = model._chat_text(messages)
    inputs = model.processor(text=[text], images=[img], return_tensors="pt")
    inputs = {k: v.to(model.hf_model.device) for k, v in inputs.items()}
    inputs["pixel_values"] = inputs["pixel_values"].to(model.hf_model.dtype)
    with torch.inference_mode():
        return model.hf_model(**inputs).logits[0].float().cpu()


def agreement(a, b) -> dict:
    import torch

    top1 = (a.argmax(-1) == b.argmax(-1)).float().mean().item()
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
    return {"positions": int(a.shape[0]), "top1_agreement": round(top1, 4), "cosine_mean": round(cos.mean().item(), 5),
            "cosine_min": round(cos.min().item(), 5)}


async def fusion_check(root: Path, device: str) -> dict:
    """Three members and a judge on one local model through the fusion engine: wall time over the slowest member."""
    import workbench as wb
    from workbench.backends.tiny import build_tiny_causal_lm
    from workbench.specs import Member, ModelSpec

    dtype = "bfloat16" if device == "cuda" else "float32"
    try:
        from workbench.backends.gguf import ensure_converted

        path, used = ensure_converted(wb.load_registry().resolve("smol-offline").model, fetch=False), "SmolLM2-135M-Instruct"
    except Exception as exc:  # noqa: BLE001  (not cached, or no gguf package: a model built here instead)
        path = build_tiny_causal_lm(root / "small-llama", hidden_size=512, intermediate_size=1536, num_hidden_layers=8,
                                    max_position_embeddings=8192)
        used = f"a random-weight 8-layer Llama built here (SmolLM2 unavailable: {type(exc).__name__})"
    spec = ModelSpec(name="fusion-check", backend="local", model=str(path), dtype=dtype)
    STATE["small_spec"], STATE["small_model"] = spec, used
    pool = [Member(spec, persona=p, display_name=f"m{i}") for i, p in
            enumerate(["You are a careful analyst.", "You are a skeptic.", "Answer concisely."])]
    judge = Member(spec, display_name="judge")
    settings = wb.FusionSettings(max_new_tokens=48, judge_max_new_tokens=160, temperature=0.0, seed=0)
    await wb.fuse("What is 17 + 25? Explain briefly.", pool, judge, "best-of", settings)  # loads and warms
    t = time.perf_counter()
    r = await wb.fuse("Name three primary colours and say why they are called primary.", pool, judge, "best-of",
                      settings)
    wall = time.perf_counter() - t
    failed = [o for o in r.rounds[0] if not o.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} member(s) failed: {failed[0].reason}")
    slowest = max(o.latency_s for o in r.rounds[0])
    return {"model": used, "members": 3, "mode": "best-of", "wall_s": round(wall, 3),
            "slowest_member_s": round(slowest, 3), "judge_s": round(r.judge_wall_s, 3),
            "wall_over_slowest_member": round(wall / slowest, 3), "ok": not r.degraded,
            "constrained_judge": _has("xgrammar")}


#: what one phase hands the next (the small model the fusion phase built or found)
STATE: dict = {}


async def batching_check(tokens: int) -> dict:
    """Continuous batching on this device (``benchmarks/late_arrival.py``'s measurements, one rep): a late 3-member
    run's time to first token over its idle one, step path vs the batcher it replaced, and tokens/s of 8 concurrent
    3-member runs, on the fusion phase's model."""
    import sys

    sys.path.insert(0, str(HERE))
    from late_arrival import late_arrival, throughput

    from workbench.backends.local import LocalModel

    spec = STATE["small_spec"]
    # a random-weight model's greedy tokens stream no text (special ones): it samples, seeded, instead
    temperature = 0.0 if STATE["small_model"].startswith("SmolLM2") else 1.0
    out: dict = {"model": STATE["small_model"], "temperature": temperature}
    import torch

    # the library's manager on a GPU only (its arm). A sampled run (the random-weight model) is unseeded there: the
    # manager has no per-request generator, and a seeded request would take PagedWorker's StepWorker fallback
    # ("routed" says which path served the arm)
    paths = ("step", "batch", "paged") if torch.cuda.is_available() else ("step", "batch")
    for batching in paths:
        m = LocalModel(spec, batching=batching)
        try:
            seed = None if batching == "paged" and temperature > 0 else 0
            idle, late = await late_arrival(m, tokens, temperature, seed)
            out[batching] = {"idle_ttft_s": round(idle, 4), "late_ttft_s": round(late, 4),
                             "late_over_idle": round(late / idle, 3),
                             "tokens_per_s_8_runs": round(await throughput(m, 8, tokens, temperature, seed), 1)}
            if batching == "paged":
                out[batching]["routed"] = dict(getattr(m.worker, "routed", {}))
        except Exception as exc:  # noqa: BLE001  (the paged arm is new: its failure must not hide the others)
            if batching != "paged":
                raise
            out["paged"] = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            m.close()
    out["throughput_step_over_batch"] = round(out["step"]["tokens_per_s_8_runs"] / out["batch"]["tokens_per_s_8_runs"], 3)
    if "tokens_per_s_8_runs" in out.get("paged", {}):
        out["throughput_paged_over_step"] = round(out["paged"]["tokens_per_s_8_runs"] / out["step"]["tokens_per_s_8_runs"], 3)
        out["late_over_idle_paged"] = out["paged"]["late_over_idle"]
    return out


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for p in ("torch", "transformers", "accelerate", "bitsandbytes"):
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = None
    return out


async def main() -> None:
    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--small", action="store_true", help="toy widths (chosen by itself without CUDA)")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--budget-s", type=float, default=420, help="skip the phases not started by then")
    ap.add_argument("--dir", default=None, help="where to build (default: a temp folder)")
    ap.add_argument("--out", default=None, help="the JSON file (default: benchmarks/results/gpu_check-...json)")
    a = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    small = a.small or device == "cpu"
    root = Path(a.dir or tempfile.mkdtemp(prefix="gpu-check-"))
    os.environ.setdefault("WORKBENCH_HOME", str(root / "home"))
    from workbench.paths import cache_root

    smol_cache = str(cache_root())  # where make install put SmolLM2's converted checkpoint
    os.environ["WORKBENCH_CACHE"] = str(root / "cache")  # the INT4 copies go here, not into the user's cache
    started = time.perf_counter()
    res: dict = {"device": torch.cuda.get_device_name(0) if device == "cuda" else f"cpu ({platform.processor() or 'x86_64'})",
                 "size": "toy (CPU)" if small else f"Scout width, {a.layers} decoder layers",
                 "layers": a.layers, "versions": versions(), "phases_s": {}, "errors": {}, "skipped": []}
    state: dict = {}

    async def phase(name: str, fn):
        if time.perf_counter() - started > a.budget_s:
            res["skipped"].append(name)
            return
        t = time.perf_counter()
        try:
            out = fn()
            if asyncio.iscoroutine(out):
                out = await out
            if out is not None:
                res[name] = out
        except Exception as exc:  # noqa: BLE001  (recorded; the other phases still run)
            res["errors"][name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        res["phases_s"][name] = round(time.perf_counter() - t, 2)
        print(f"[{time.perf_counter() - started:6.1f} s] {name}: {json.dumps(res.get(name, res['errors'].get(name)))[:400]}",
              flush=True)

    from workbench.backends.local import LocalModel
    from workbench.specs import ModelSpec

    await phase("bandwidth", lambda: {"bytes_per_s": bandwidth(device, 2048 if device == "cuda" else 256)})

    def load():
        src = build(root / "bf16", a.layers, small, device)
        t = time.perf_counter()
        spec = ModelSpec(name="scout-shaped-int4", backend="local", model=str(src), quant="int4", vision=True)
        state["spec"] = spec
        state["model"] = model = LocalModel(spec, max_batch=16)
        from workbench.backends.quant import unquantized_expert_weights

        left = unquantized_expert_weights(model.hf_model)
        assert not left, f"expert weights left in 16/32-bit: {left[:3]}"
        return {"convert_and_load_s": round(time.perf_counter() - t, 2), "allocated_gib": round(allocated(device) / GIB, 3)}

    await phase("load", load)
    if "model" in state:
        model = state["model"]
        await phase("memory", lambda: memory_figures(model, a.layers))

        async def decode():
            rates = await decode_rates(model, a.tokens, (1, 4, 16))
            bw = res.get("bandwidth", {}).get("bytes_per_s")
            per_token = bytes_per_token(model)
            out = {"batch": rates, "bytes_per_token": per_token}
            if bw:
                bound = bw / per_token
                out.update(bound_tokens_per_s=round(bound, 2),
                           batch1_over_bound=round(rates[1]["tokens_per_s"] / bound, 4))
            return out

        await phase("decode", decode)
        await phase("vision_bf16_logits", lambda: state.update(bf16_vision=image_logits(model)) or None)
        before = allocated(device)
        model.close()
        del state["model"], model
        await phase("close", lambda: {"allocated_before_gib": round(before / GIB, 3),
                                      "allocated_after_gib": round(allocated(device) / GIB, 4),
                                      "left_share": round(allocated(device) / before, 4) if before else None})

        def vision4():
            from dataclasses import replace

            spec = state["spec"]
            four = replace(spec, name="scout-shaped-int4-vision4",
                           skip_modules=tuple(m for m in spec.skip_modules if m != "vision_model"))
            m4 = LocalModel(four)
            try:
                vis = m4.memory_report()["by_component"].get("vision", {})
                return {"vision_dtypes": sorted(vis), **agreement(state["bf16_vision"], image_logits(m4))}
            finally:
                m4.close()

        if "bf16_vision" in state:
            await phase("vision", vision4)
    os.environ["WORKBENCH_CACHE"] = smol_cache
    await phase("fusion", lambda: fusion_check(root, device))
    if "small_spec" in STATE:
        await phase("batching", lambda: batching_check(a.tokens))
    res["total_s"] = round(time.perf_counter() - started, 1)
    goals = {}
    if "memory" in res:
        goals["per_layer_within_5pct_of_plan"] = abs(res["memory"]["per_layer_over_plan"] - 1) <= 0.05
    if "batch1_over_bound" in res.get("decode", {}):
        goals["batch1_at_least_25pct_of_bound"] = res["decode"]["batch1_over_bound"] >= 0.25
    if "close" in res and res["close"]["left_share"] is not None:
        goals["close_returns_95pct"] = res["close"]["left_share"] < 0.05
    res["goals"] = goals
    out = Path(a.out) if a.out else HERE / "results" / (
        f"gpu_check-{'cpu' if device == 'cpu' else res['device'].replace(' ', '_')}-{time.strftime('%Y%m%d-%H%M%S')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res))


if __name__ == "__main__":
    asyncio.run(main())
