"""True INT4 for Llama 4: MoE experts included; memory planning from the config alone.

bitsandbytes quantizes ``nn.Linear`` layers on the fly, but Llama 4 keeps its routed experts as fused
``nn.Parameter`` tensors (``Llama4TextExperts.gate_up_proj`` / ``down_proj``), which it leaves in 16-bit:
about 189 GiB for Scout. We quantize once into a local *pre-quantized* checkpoint instead, one safetensors
shard at a time (host memory of about one shard, not the whole 218 GB model): every fused expert is split
into per-expert ``gate_proj`` / ``up_proj`` / ``down_proj`` Linear weights in NF4, the other Linears are
quantized too, and the skip list (vision tower, projector, router, lm_head by default) stays in bf16.
transformers then loads that directory through its pre-quantized bitsandbytes path, which swaps each
``Llama4TextExperts`` for ``SequentialLlama4TextExperts`` of ``Linear4bit`` layers.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

#: Bytes per parameter of an NF4 weight with double-quantized statistics (blocksize 64):
#: 4 bits, one uint8 absmax per 64 values, one fp32 absmax per 256 of those.
INT4_BYTES_PER_PARAM = 0.5 + 1 / 64 + 4 / (64 * 256)
BLOCKSIZE = 64

#: Llama 4 Scout 17B-16E as released (config.json of meta-llama/Llama-4-Scout-17B-16E-Instruct),
#: so that memory plans need no download.
SCOUT_CONFIG: dict[str, Any] = {
    "text_config": dict(
        vocab_size=202048, hidden_size=5120, intermediate_size=8192, intermediate_size_mlp=16384,
        num_hidden_layers=48, num_attention_heads=40, num_key_value_heads=8, head_dim=128,
        num_local_experts=16, num_experts_per_tok=1, interleave_moe_layer_step=1,
        max_position_embeddings=10485760, rope_theta=500000.0, attention_chunk_size=8192,
        use_qk_norm=True, attn_temperature_tuning=True, floor_scale=8192, attn_scale=0.1,
    ),
    "vision_config": dict(
        hidden_size=1408, intermediate_size=5632, num_hidden_layers=34, num_attention_heads=16,
        image_size=336, patch_size=14, pixel_shuffle_ratio=0.5, vision_output_dim=4096,
        projector_input_dim=4096, projector_output_dim=4096, rope_theta=10000.0, norm_eps=1e-5,
    ),
    "image_token_index": 200092, "boi_token_index": 200080, "eoi_token_index": 200081,
}


def component_of(name: str) -> str:
    """Which part of the model a parameter belongs to, for memory reports."""
    if "vision_model" in name:
        return "vision"
    if "multi_modal_projector" in name:
        return "projector"
    leaf_module = name.rsplit(".", 2)[-2] if name.count(".") >= 1 else name
    if "norm" in leaf_module:
        return "norms"
    if ".experts." in name or name.endswith(".experts") or "experts.gate_up_proj" in name:
        return "experts"
    if "shared_expert" in name:
        return "shared_expert"
    if "router" in name:
        return "router"
    if "self_attn" in name or "attention" in name:
        return "attention"
    if "embed_tokens" in name:
        return "embeddings"
    if "lm_head" in name:
        return "lm_head"
    if "mlp" in name or "feed_forward" in name:
        return "mlp"
    return "other"


def _skipped(name: str, skip_modules: Iterable[str]) -> bool:
    """Whether a module stays out of INT4, by the rule transformers applies when it loads the checkpoint
    (a pattern matches from the start up to a module boundary, as a regex, or as a suffix), so the converter
    quantizes exactly what the loader expects to be quantized."""
    patterns = list(skip_modules)
    try:
        from transformers.quantizers.quantizers_utils import should_convert_module
    except ImportError:  # older transformers: a dotted-component match
        return any(f".{p}." in f".{name}." for p in patterns)
    return not should_convert_module(name, patterns)


def quantizable_weights(model, skip_modules: Iterable[str]) -> tuple[set[str], set[str]]:
    """Names of Linear weights to quantize and of fused expert modules to split, for a (meta) model."""
    import torch.nn as nn

    linears, experts = set(), set()
    for mod_name, module in model.named_modules():
        if type(module).__name__ == "Llama4TextExperts":
            # at load time these become per-expert Linears named like `...experts.0.gate_proj`
            if not _skipped(f"{mod_name}.0.gate_proj", skip_modules):
                experts.add(mod_name)
        elif isinstance(module, nn.Linear) and not _skipped(mod_name, skip_modules):
            linears.add(mod_name + ".weight")
    return linears, experts


def meta_model(config):
    """The model for ``config`` on the meta device: shapes, no memory."""
    import torch
    from transformers import AutoModelForCausalLM, Llama4ForConditionalGeneration

    # torch.device("meta") rather than accelerate's init_empty_weights: the latter still allocates the
    # fused expert tensors (torch.zeros) on the host before moving them, 1.5 minutes and 190 GiB for Scout.
    with torch.device("meta"):
        if getattr(config, "model_type", "") == "llama4":
            return Llama4ForConditionalGeneration(config)
        return AutoModelForCausalLM.from_config(config)


def plan_memory(config, skip_modules: Iterable[str]) -> dict[str, Any]:
    """Planned bytes by component for bf16 and INT4, from the config alone (meta device)."""
    model = meta_model(config)
    linears, experts = quantizable_weights(model, skip_modules)
    params: dict[str, int] = defaultdict(int)
    bf16: dict[str, float] = defaultdict(float)
    int4: dict[str, float] = defaultdict(float)
    for name, p in model.named_parameters():
        comp = component_of(name)
        n = p.numel()
        params[comp] += n
        bf16[comp] += 2 * n
        module = name.rsplit(".", 1)[0]
        quantized = name in linears or module in experts
        int4[comp] += n * (INT4_BYTES_PER_PARAM if quantized else 2)
    gib = 1024**3
    return {
        "parameters": dict(params),
        "total_parameters": sum(params.values()),
        "bf16_bytes": {k: int(v) for k, v in bf16.items()},
        "int4_bytes": {k: int(v) for k, v in int4.items()},
        "bf16_total_gib": round(sum(bf16.values()) / gib, 2),
        "int4_total_gib": round(sum(int4.values()) / gib, 2),
        "skip_modules": list(skip_modules),
    }


def bnb_config(skip_modules: Iterable[str], compute_dtype: str = "bfloat16"):
    """The BitsAndBytesConfig we use: NF4, double quantization, explicit skip list."""
    import torch
    from transformers import BitsAndBytesConfig

    # Passing llm_int8_skip_modules replaces the default list, so lm_head and router are named explicitly.
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=getattr(torch, compute_dtype), llm_int8_skip_modules=list(skip_modules),
    )


def model_config(spec):
    """A spec's transformers config, without weights (Scout's is built in; others read from their checkpoint)."""
    from transformers import AutoConfig, Llama4Config

    from ..errors import ModelLoadError

    if spec.backend == "tiny":
        from .tiny import tiny_config

        return tiny_config()
    if "llama-4-scout" in spec.model.lower():
        return Llama4Config(**SCOUT_CONFIG)
    try:
        return AutoConfig.from_pretrained(spec.model)
    except OSError as exc:
        raise ModelLoadError(f"cannot read the config of {spec.model} (offline?): {exc}") from None


def is_prequantized(path: str | Path) -> bool:
    """True when a checkpoint directory's config carries a quantization_config."""
    cfg = Path(path) / "config.json"
    return cfg.is_file() and "quantization_config" in json.loads(cfg.read_text())


def _quantize_tensor(weight, device: str) -> dict[str, Any]:
    import bitsandbytes.functional as F
    import torch

    w = weight.to(device=device, dtype=torch.bfloat16).contiguous()
    packed, state = F.quantize_4bit(w, blocksize=BLOCKSIZE, compress_statistics=True, quant_type="nf4")
    out = {"weight": packed.cpu()}
    for k, v in state.as_dict(packed=True).items():
        out["weight." + k] = v.cpu()
    return out


def split_experts(leaf: str, fused) -> Iterator[tuple[int, str, Any]]:
    """The per-expert ``nn.Linear`` weights (``[out_features, in_features]``) in one fused expert tensor.

    ``Llama4TextExperts`` computes ``x @ gate_up_proj[e]`` then ``chunk(2)`` (gate first, then up), and
    ``(up * act(gate)) @ down_proj[e]``; a Linear computes ``x @ W.T``. So:

    - ``gate_up_proj`` ``[E, hidden, 2D]``: gate is ``[e, :, :D].T``, up is ``[e, :, D:].T`` (each ``[D, hidden]``);
    - ``down_proj`` ``[E, D, hidden]``: ``[e].T`` (``[hidden, D]``).

    Yields ``(expert index, "gate_proj" | "up_proj" | "down_proj", weight)``; ``tests/backends/test_converter.py``
    proves it (logits equal the fused model's) and fails on each plausible mistake.
    """
    for e in range(fused.shape[0]):
        if leaf == "gate_up_proj":
            d = fused.shape[2] // 2
            yield e, "gate_proj", fused[e, :, :d].T
            yield e, "up_proj", fused[e, :, d:].T
        elif leaf == "down_proj":
            yield e, "down_proj", fused[e].T
        else:
            raise ValueError(f"not a fused expert tensor: {leaf}")


def quantize_checkpoint(src: str | Path, dst: str | Path, skip_modules: Iterable[str],
                        device: str | None = None, progress: bool = False, quantize: bool = True) -> Path:
    """Write an NF4 pre-quantized copy of a Llama 4 (or any) safetensors checkpoint, one shard at a time.

    Args:
        src: a Hugging Face checkpoint directory (bf16 safetensors).
        dst: the output directory; written atomically (a temp dir renamed at the end).
        skip_modules: module names kept in bf16.
        device: where to quantize ("cuda" is much faster; default: cuda if available).
        progress: show a progress bar over shards.
        quantize: False writes the same per-expert layout with nothing quantized and every tensor in its
            source dtype (load it with ``load_split_checkpoint``): the split alone, to check it is exact.
    """
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file
    from tqdm.auto import tqdm
    from transformers import AutoConfig

    src, dst = Path(src), Path(dst)
    skip_modules = list(skip_modules)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    config = AutoConfig.from_pretrained(src)
    linears, experts = quantizable_weights(meta_model(config), skip_modules)
    shards = sorted(src.glob("*.safetensors"))
    if not shards:
        raise FileNotFoundError(f"no .safetensors files in {src}")
    tmp = dst.with_name(dst.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weight_map: dict[str, str] = {}
    for shard in tqdm(shards, desc="quantizing shards", disable=not progress):
        out: dict[str, Any] = {}
        with safe_open(str(shard), framework="pt") as f:
            for key in f.keys():
                module, _, leaf = key.rpartition(".")
                if module in experts and leaf in ("gate_up_proj", "down_proj"):
                    fused = f.get_tensor(key)
                    for e, proj, w in split_experts(leaf, fused):
                        if quantize:
                            for k, v in _quantize_tensor(w, device).items():
                                out[f"{module}.{e}.{proj}.{k}"] = v
                        else:
                            out[f"{module}.{e}.{proj}.weight"] = w.contiguous()
                    del fused
                elif key in linears and quantize:
                    for k, v in _quantize_tensor(f.get_tensor(key), device).items():
                        out[f"{module}.{k}"] = v
                else:
                    t = f.get_tensor(key)
                    wide = quantize and t.is_floating_point() and t.dtype == torch.float32
                    out[key] = t.to(torch.bfloat16) if wide else t
        save_file(out, str(tmp / shard.name), metadata={"format": "pt"})
        weight_map.update({k: shard.name for k in out})
        del out
    (tmp / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    cfg = json.loads((src / "config.json").read_text())
    if quantize:
        cfg["quantization_config"] = bnb_config(skip_modules).to_dict()
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2))
    for extra in src.iterdir():
        if extra.is_file() and extra.suffix != ".safetensors" and extra.name not in (
                "config.json", "model.safetensors.index.json"):
            shutil.copy2(extra, tmp / extra.name)
    if dst.exists():
        shutil.rmtree(dst)
    tmp.rename(dst)
    return dst


def sequential_experts(model):
    """Swap every fused ``Llama4TextExperts`` for transformers' ``SequentialLlama4TextExperts`` (one
    ``Llama4TextMLP`` per expert): the swap its pre-quantized loader makes, done here without quantization."""
    from transformers.quantizers.base import SequentialLlama4TextExperts

    text_config = model.config.get_text_config()
    for name, module in list(model.named_modules()):
        if type(module).__name__ == "Llama4TextExperts":
            parent, _, child = name.rpartition(".")
            seq = SequentialLlama4TextExperts(text_config).to(module.gate_up_proj.dtype)
            model.get_submodule(parent)._modules[child] = seq
    return model


def load_split_checkpoint(path: str | Path):
    """A ``quantize_checkpoint(..., quantize=False)`` directory as an fp32 model with per-expert Linears,
    loaded strictly (every tensor must match a parameter by name and shape). For checks on small models:
    the model is first built with real (random) weights on the CPU."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM, Llama4ForConditionalGeneration

    path = Path(path)
    config = AutoConfig.from_pretrained(path)
    if getattr(config, "model_type", "") == "llama4":
        model = Llama4ForConditionalGeneration(config)
    else:
        model = AutoModelForCausalLM.from_config(config)
    model = sequential_experts(model.float())
    state: dict[str, Any] = {}
    for shard in sorted(path.glob("*.safetensors")):
        state.update(load_file(str(shard)))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True)
    return model.eval()


def unquantized_expert_weights(model) -> list[str]:
    """Names of MoE expert weights still held in a 16- or 32-bit float dtype (should be empty in INT4)."""
    import torch

    wide = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
    return [n for n, p in model.named_parameters() if component_of(n) == "experts" and p.dtype in wide]
