"""GPU check: a Scout-shaped Llama 4 (full width, a few layers, random weights) in INT4 through the same path.

    python benchmarks/gpu_scout_int4.py --layers 2            # on a GPU: a few minutes
    python benchmarks/gpu_scout_int4.py --small --device cpu  # the same code path at toy size, on a CPU

Builds the checkpoint locally (no download), converts it with the workbench's shard-wise INT4 converter
(experts included), loads it with load_model, and prints: memory per decoder layer (bf16 plan vs INT4 as
loaded), GPU memory, decode tokens/s at batch 1 and batch 4, and the extrapolation to Scout's 48 layers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build(out: Path, args) -> Path:
    import torch
    from transformers import Llama4Config, Llama4ForConditionalGeneration, Llama4Processor
    from transformers.models.llama4.image_processing_llama4 import Llama4ImageProcessor
    from transformers.models.llama4.processing_llama4 import chat_template

    from workbench.backends.quant import SCOUT_CONFIG
    from workbench.backends.tiny import SPECIAL_TOKENS, _train_tokenizer

    tok = _train_tokenizer(448)
    text = dict(SCOUT_CONFIG["text_config"], num_hidden_layers=args.layers, pad_token_id=tok.pad_token_id,
                bos_token_id=0, eos_token_id=[tok.eos_token_id])
    vision = dict(SCOUT_CONFIG["vision_config"])
    if args.small:
        text.update(hidden_size=256, intermediate_size=512, intermediate_size_mlp=1024, num_attention_heads=4,
                    num_key_value_heads=2, head_dim=64, vocab_size=2048)
        vision.update(hidden_size=64, intermediate_size=256, num_hidden_layers=1, num_attention_heads=2,
                      vision_output_dim=256, projector_input_dim=256, projector_output_dim=256)
    config = Llama4Config(text_config=text, vision_config=vision,
                          image_token_index=SPECIAL_TOKENS.index("<|patch|>"),
                          boi_token_index=SPECIAL_TOKENS.index("<|image_start|>"),
                          eoi_token_index=SPECIAL_TOKENS.index("<|image_end|>"))
    t = time.perf_counter()
    with torch.device(args.device):
        model = Llama4ForConditionalGeneration(config).to(torch.bfloat16)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out, max_shard_size="5GB")
    proc = Llama4Processor(image_processor=Llama4ImageProcessor(max_patches=4), tokenizer=tok,
                           chat_template=chat_template, patch_size=vision["patch_size"], pixel_shuffle_ratio=0.5)
    proc.save_pretrained(out)
    del model
    if args.device == "cuda":
        torch.cuda.empty_cache()
    print(f"built and saved a {args.layers}-layer Scout-shaped checkpoint in {time.perf_counter() - t:.1f} s")
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--small", action="store_true", help="toy widths (to check the code path on a CPU)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--dir", default=None, help="where to build (default: a temp dir)")
    args = ap.parse_args()
    import torch

    import workbench as wb
    from workbench.backends.quant import SCOUT_CONFIG, plan_memory
    from workbench.specs import ModelSpec

    root = Path(args.dir or tempfile.mkdtemp(prefix="scout-shaped-"))
    os.environ["WORKBENCH_CACHE"] = str(root / "cache")
    src = build(root / "bf16", args)
    t = time.perf_counter()
    spec = ModelSpec(name="scout-shaped-int4", backend="local", model=str(src), quant="int4", vision=True)
    model = wb.load_model(spec)
    print(f"converted to INT4 (experts included) and loaded in {time.perf_counter() - t:.1f} s")
    from workbench.backends.quant import unquantized_expert_weights

    assert unquantized_expert_weights(model.hf_model) == [], "some expert weights stayed in 16/32-bit"
    report = model.memory_report()
    comps = report["by_component"]
    per_layer_parts = ("experts", "shared_expert", "attention", "router", "norms")
    per_layer = sum(sum(comps.get(c, {}).values()) for c in per_layer_parts) / args.layers
    fixed = report["total_bytes"] - per_layer * args.layers
    gib = 1024**3
    from transformers import Llama4Config

    cfg = model.hf_model.config
    plan = plan_memory(Llama4Config(text_config=cfg.text_config.to_dict(), vision_config=cfg.vision_config.to_dict()),
                       model.spec.skip_modules)
    print(f"INT4 as loaded: {report['total_gib']:.2f} GiB; per decoder layer {per_layer / gib:.3f} GiB "
          f"(bf16 plan per layer {sum(plan['bf16_bytes'][c] for c in per_layer_parts if c in plan['bf16_bytes']) / args.layers / gib:.3f} GiB); "
          f"outside the layers {fixed / gib:.2f} GiB")
    if not args.small:
        print(f"extrapolated to 48 layers: {(fixed + 48 * per_layer) / gib:.1f} GiB "
              f"(the meta-device plan for Scout says {plan_memory(Llama4Config(**SCOUT_CONFIG), model.spec.skip_modules)['int4_total_gib']} GiB)")
    if torch.cuda.is_available() and args.device == "cuda":
        print(f"GPU memory allocated {torch.cuda.memory_allocated() / gib:.2f} GiB, "
              f"peak {torch.cuda.max_memory_allocated() / gib:.2f} GiB")
    prompt = wb.Prompt("Describe a red circle in a few words.")
    await model.generate(prompt, max_new_tokens=4)  # warm-up
    for batch in (1, 4):
        t = time.perf_counter()
        rs = await asyncio.gather(*[model.generate(prompt, persona=f"p{i}", max_new_tokens=args.tokens,
                                                   min_new_tokens=args.tokens) for i in range(batch)])
        dt = time.perf_counter() - t
        n = sum(r.usage.completion_tokens for r in rs)
        print(f"batch {batch}: {n} tokens in {dt:.2f} s = {n / dt:.1f} tokens/s overall, "
              f"{n / dt / batch:.1f} tokens/s per sequence")
    if not args.small:
        print(f"at 48 layers, decode is roughly {args.layers / 48:.3f}x the rates above (scaling by layer count; "
              f"embedding and lm_head costs not scaled)")
    # Models have a lifetime: closing the last handle must give the GPU memory back, and a reload must work.
    on_gpu = torch.cuda.is_available() and args.device == "cuda"

    def allocated() -> int:  # over every GPU accelerate placed layers on
        return sum(torch.cuda.memory_allocated(i) for i in range(torch.cuda.device_count())) if on_gpu else 0

    held = allocated()
    model.close()
    after = allocated()
    with wb.load_model(spec) as again:
        assert (await again.generate(prompt, max_new_tokens=4)).ok
    after_reload = allocated()
    if on_gpu:
        print(f"close(): GPU memory allocated {held / gib:.2f} GiB -> {after / gib:.3f} GiB; "
              f"after load -> generate -> close again {after_reload / gib:.3f} GiB")
        assert after < 0.05 * held, "close() did not return the GPU memory"
        assert after_reload < 0.05 * held, "a second load -> close leaked GPU memory"
    else:
        print("close() and a second load worked (GPU memory figures need --device cuda on a GPU)")


if __name__ == "__main__":
    asyncio.run(main())
