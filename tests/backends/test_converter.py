"""The INT4 converter's split of Llama 4's fused experts, proven on a tiny model whose shapes cannot hide a mistake.

hidden (128), expert intermediate (64), dense intermediate (192) and the expert count (3) all differ, so a
missing transpose cannot pass on shape, and the routed experts are drawn wide enough to move the logits
(checked: zeroing them changes the logits by far more than the tolerance). Each plausible mistake in the
split (no transpose, gate and up swapped, experts zeroed) is run through the same checks and must fail them.
"""

import io

import pytest
import torch
from PIL import Image
from safetensors import safe_open

from workbench.backends import quant
from workbench.backends.tiny import build_tiny_llama4
from workbench.specs import DEFAULT_SKIP_MODULES

SIZES = dict(hidden_size=128, intermediate_size=64, intermediate_size_mlp=192, num_local_experts=3)
#: NF4 (blocksize 64, double-quantized absmax) on Gaussian weights: about 0.09 relative error
NF4_REL_ERR = 0.15
RIGHT = quant.split_experts  #: the converter's split, which the mutants below get wrong on purpose


@pytest.fixture(scope="module")
def fused_dir(tmp_path_factory):
    return build_tiny_llama4(tmp_path_factory.mktemp("fused"), seed=1, dtype="float32", expert_std=0.3, **SIZES)


def prompts(path):
    from transformers import AutoProcessor

    proc = AutoProcessor.from_pretrained(path)
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 60)).save(buf, format="PNG")
    out = []
    for content in ([{"type": "text", "text": "count the circles and squares"}],
                    [{"type": "image"}, {"type": "text", "text": "what colour is this?"}]):
        text = proc.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                        tokenize=False)
        images = [Image.open(buf)] if content[0]["type"] == "image" else None
        enc = proc(text=[text], images=images, return_tensors="pt")
        if "pixel_values" in enc:
            enc["pixel_values"] = enc["pixel_values"].float()
        out.append(dict(enc))
    return out


def logits(model, inputs):
    with torch.no_grad():
        return model(**inputs).logits.float()


def original(path):
    from transformers import Llama4ForConditionalGeneration

    return Llama4ForConditionalGeneration.from_pretrained(path, dtype=torch.float32).eval()


def check_split_exact(src, out_dir) -> list[float]:
    """Unquantized, the converted model's logits equal the fused original's (text and image prompts)."""
    split = quant.quantize_checkpoint(src, out_dir, DEFAULT_SKIP_MODULES, device="cpu", quantize=False)
    ref, conv = original(src), quant.load_split_checkpoint(split)
    assert type(conv.language_model.model.layers[0].feed_forward.experts).__name__ == "SequentialLlama4TextExperts"
    diffs = []
    for inputs in prompts(src):
        a, b = logits(ref, inputs), logits(conv, inputs)
        diffs.append(float((a - b).abs().max()))
    assert max(diffs) <= 1e-5, diffs
    return diffs


def check_nf4_slices(src, out_dir) -> dict[str, float]:
    """In NF4, each expert's dequantized gate/up/down match the original slices within NF4's error, and are far
    from the swapped slice (a transposed one differs in shape, since hidden != intermediate)."""
    import bitsandbytes.functional as F
    from transformers import Llama4ForConditionalGeneration

    nf4 = quant.quantize_checkpoint(src, out_dir, DEFAULT_SKIP_MODULES, device="cpu")
    model = Llama4ForConditionalGeneration.from_pretrained(nf4)
    hidden, d = SIZES["hidden_size"], SIZES["intermediate_size"]
    worst = dict(match=0.0, swapped=float("inf"))

    def rel(w, ref):
        return float((w - ref).norm() / ref.norm())

    with safe_open(str(next(src.glob("*.safetensors"))), framework="pt") as f:
        for layer_no, layer in enumerate(model.language_model.model.layers):
            prefix = f"language_model.model.layers.{layer_no}.feed_forward.experts"
            gate_up, down = f.get_tensor(f"{prefix}.gate_up_proj"), f.get_tensor(f"{prefix}.down_proj")
            for e, mlp in enumerate(layer.feed_forward.experts):
                refs = {"gate_proj": gate_up[e, :, :d].T, "up_proj": gate_up[e, :, d:].T, "down_proj": down[e].T}
                swapped = {"gate_proj": refs["up_proj"], "up_proj": refs["gate_proj"]}
                for proj, ref in refs.items():
                    lin = getattr(mlp, proj)
                    w = F.dequantize_4bit(lin.weight.data, lin.weight.quant_state).float()
                    expected = (d, hidden) if proj != "down_proj" else (hidden, d)
                    assert tuple(w.shape) == expected, (proj, tuple(w.shape))
                    worst["match"] = max(worst["match"], rel(w, ref))
                    if proj in swapped:
                        worst["swapped"] = min(worst["swapped"], rel(w, swapped[proj]))
    assert worst["match"] < NF4_REL_ERR, worst
    assert worst["swapped"] > 1.0, worst
    return worst


def test_experts_weigh_in_the_logits(fused_dir):
    """Without this, an equality of logits could not see a wrong expert split."""
    model = original(fused_dir)
    inputs = prompts(fused_dir)[0]
    before = logits(model, inputs)
    with torch.no_grad():
        for layer in model.language_model.model.layers:
            layer.feed_forward.experts.gate_up_proj.zero_()
    assert float((before - logits(model, inputs)).abs().max()) > 1e-2


def test_split_is_exact_on_text_and_image(fused_dir, tmp_path):
    assert check_split_exact(fused_dir, tmp_path / "split") == pytest.approx([0.0, 0.0], abs=1e-5)


def test_nf4_experts_match_their_slices(fused_dir, tmp_path):
    worst = check_nf4_slices(fused_dir, tmp_path / "nf4")
    assert worst["match"] < NF4_REL_ERR < 1.0 < worst["swapped"]


def _no_transpose(leaf, fused):
    for e in range(fused.shape[0]):
        if leaf == "gate_up_proj":
            d = fused.shape[2] // 2
            yield e, "gate_proj", fused[e, :, :d]
            yield e, "up_proj", fused[e, :, d:]
        else:
            yield e, "down_proj", fused[e]


def _swapped(leaf, fused):
    names = {"gate_proj": "up_proj", "up_proj": "gate_proj", "down_proj": "down_proj"}
    for e, proj, w in RIGHT(leaf, fused):
        yield e, names[proj], w


def _zeroed(leaf, fused):
    for e, proj, w in RIGHT(leaf, fused):
        yield e, proj, torch.zeros_like(w)


@pytest.mark.parametrize("mutant", [_no_transpose, _swapped, _zeroed], ids=["no-transpose", "gate-up-swapped",
                                                                             "experts-zeroed"])
def test_each_mistake_in_the_split_fails_both_checks(mutant, fused_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(quant, "split_experts", mutant)
    with pytest.raises((AssertionError, RuntimeError)):
        check_split_exact(fused_dir, tmp_path / "split")
    with pytest.raises((AssertionError, RuntimeError, ValueError)):
        check_nf4_slices(fused_dir, tmp_path / "nf4")
