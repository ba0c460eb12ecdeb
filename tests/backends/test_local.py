"""The local backend on tiny real Llama 4 checkpoints, loaded through the same from_pretrained path as Scout."""

import asyncio
import dataclasses
import io

import pytest
import torch
from PIL import Image

import workbench as wb
from workbench.backends import load_model, spec_for
from workbench.backends.quant import unquantized_expert_weights
from workbench.backends.tiny import build_tiny_causal_lm


def image(color=(0, 200, 0)):
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-offline")


@pytest.fixture(scope="module")
def tiny_int4():
    return load_model("tiny-offline-int4")


@pytest.fixture(scope="module")
def tiny_fp32():
    return load_model(dataclasses.replace(spec_for("tiny-offline"), dtype="float32"))


def test_llama4_forward_pass_with_image(tiny_dir):
    """Catches a transformers release that breaks Llama 4 (5.24.0 did: see FACTS.md at the repo root)."""
    from transformers import AutoProcessor, Llama4ForConditionalGeneration

    model = Llama4ForConditionalGeneration.from_pretrained(tiny_dir, dtype=torch.bfloat16)
    proc = AutoProcessor.from_pretrained(tiny_dir)
    text = proc.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}],
                                    add_generation_prompt=True, tokenize=False)
    inputs = proc(text=[text], images=[Image.open(io.BytesIO(image()))], return_tensors="pt")
    inputs["pixel_values"] = inputs["pixel_values"].to(torch.bfloat16)
    with torch.no_grad():
        out = model(**inputs)
    assert out.logits.shape[:2] == inputs["input_ids"].shape
    assert torch.isfinite(out.logits.float()).all()


def test_int4_quantizes_every_expert(tiny_int4):
    hf = tiny_int4.hf_model
    assert unquantized_expert_weights(hf) == []
    experts = hf.language_model.model.layers[0].feed_forward.experts
    assert type(experts).__name__ == "SequentialLlama4TextExperts"
    import bitsandbytes as bnb

    assert all(isinstance(mlp.gate_proj, bnb.nn.Linear4bit) for mlp in experts)
    # the skip list stays in bf16
    assert hf.language_model.lm_head.weight.dtype == torch.bfloat16
    assert hf.language_model.model.layers[0].feed_forward.router.weight.dtype == torch.bfloat16
    assert next(hf.vision_model.parameters()).dtype == torch.bfloat16
    report = tiny_int4.memory_report()
    assert set(report["by_component"]["experts"]) == {"nf4"}


def test_int4_memory_is_smaller_and_outputs_track_bf16(tiny, tiny_int4, tiny_dir):
    assert tiny_int4.memory_report()["total_bytes"] < 0.7 * tiny.memory_report()["total_bytes"]
    # NF4 blurs the logits only; this cannot tell a right expert split from a wrong one (the tiny model's experts
    # barely weigh in): test_converter.py proves the split.
    proc = tiny.processor
    text = proc.apply_chat_template([{"role": "user", "content": [{"type": "text", "text": "count the circles"}]}],
                                    add_generation_prompt=True, tokenize=False)
    ids = proc.tokenizer([text], return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        a = tiny.hf_model(**ids).logits[0].float()
        b = tiny_int4.hf_model(**ids).logits[0].float()
    cos = torch.nn.functional.cosine_similarity(a - a.mean(-1, keepdim=True), b - b.mean(-1, keepdim=True), dim=-1)
    assert cos.mean() > 0.9, cos


async def test_generate_text_and_image(tiny):
    r = await tiny.generate("What is two plus three?", max_new_tokens=8)
    assert r.ok and r.usage.completion_tokens > 0 and r.ttft_s is not None and r.latency_s >= r.ttft_s
    r2 = await tiny.generate(wb.Prompt("What colour is this?", images=[image()]), max_new_tokens=8)
    assert r2.ok and r2.usage.prompt_tokens > r.usage.prompt_tokens  # image tokens were added


async def test_int4_generates_from_image(tiny_int4):
    r = await tiny_int4.generate(wb.Prompt("Describe", images=[image()]), max_new_tokens=6)
    assert r.ok and r.usage.completion_tokens > 0


async def test_stream_yields_pieces_that_make_the_answer(tiny):
    pieces = [p async for p in tiny.stream("Say something", max_new_tokens=10, temperature=0)]
    full = await tiny.generate("Say something", max_new_tokens=10, temperature=0)
    assert len(pieces) >= 2 and "".join(pieces) == full.text


async def test_batched_requests_each_get_their_own_answer(tiny_fp32):
    prompts = ["What is two plus three?", "Name a colour", "Count the circles please now", "hi"]
    solo = [(await tiny_fp32.generate(p, max_new_tokens=10, temperature=0)).text for p in prompts]
    before = tiny_fp32.worker.batches_run
    batch = await asyncio.gather(*[tiny_fp32.generate(p, max_new_tokens=10, temperature=0) for p in prompts])
    assert tiny_fp32.worker.batches_run == before + 1  # one generate call for all four
    assert [b.text for b in batch] == solo
    assert len(set(solo)) > 1


async def test_cancel_stops_generation_and_frees_the_worker(tiny):
    started = asyncio.Event()
    task = asyncio.ensure_future(tiny.complete(wb.Prompt("long").messages(),
                                               wb.GenerateConfig(max_new_tokens=1900, min_new_tokens=1900),
                                               on_text=lambda _: started.set()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    r = await asyncio.wait_for(tiny.generate("next", max_new_tokens=4), timeout=60)
    assert r.ok
    assert "cancelled" in tiny.worker.finish_reasons


async def test_timeout_is_a_failure_not_a_hang(tiny):
    r = await tiny.generate("long", max_new_tokens=1900, min_new_tokens=1900, timeout_s=0.2)
    assert not r.ok and r.kind == "timeout"


async def test_prompt_longer_than_context(tiny):
    r = await tiny.generate("word " * 17000, max_new_tokens=8)
    assert not r.ok and r.kind == "input" and "context" in r.reason


async def test_text_only_model_refuses_images_and_fusion_drops_them(tmp_path):
    path = build_tiny_causal_lm(tmp_path / "tiny-llama")
    model = load_model(str(path))
    assert not model.supports_images
    r = await model.generate(wb.Prompt("hi", images=[image()]), max_new_tokens=4)
    assert not r.ok and "text-only" in r.reason
    ok = await model.complete(wb.Prompt("hi", images=[image()]).messages(), wb.GenerateConfig(max_new_tokens=4))
    assert ok.ok and "images dropped" in ok.notes[0]


async def test_plain_causal_lm_in_int4(tmp_path):
    path = build_tiny_causal_lm(tmp_path / "tiny-llama-q")
    model = load_model(str(path), quant="int4")
    assert model.memory_report()["by_component"]["attention"].keys() == {"nf4"}
    assert (await model.generate("hello", max_new_tokens=4)).ok


def test_not_a_checkpoint_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(wb.ModelLoadError, match="no config.json"):
        load_model(str(tmp_path))


def test_hub_model_not_available_offline_says_how_to_get_it():
    with pytest.raises(wb.ModelLoadError, match="hf download"):
        load_model("meta-llama/Llama-4-Scout-17B-16E-Instruct")


async def test_already_quantized_checkpoint_loads_as_is(tiny_int4):
    """A community-style pre-quantized checkpoint (config carries quantization_config) loads without conversion."""
    from workbench.backends.quant import is_prequantized

    path = tiny_int4.checkpoint
    assert is_prequantized(path)
    again = load_model(str(path))  # plain directory, no quant asked: its own quantization_config is used
    assert again.checkpoint == path and unquantized_expert_weights(again.hf_model) == []
    assert (await again.generate("hi", max_new_tokens=4)).ok


async def test_custom_skip_list_is_honoured_by_converter_and_loader():
    import bitsandbytes as bnb

    spec = dataclasses.replace(spec_for("tiny-offline-int4"), name="tiny-skip-attn0",
                               skip_modules=(*spec_for("tiny-offline-int4").skip_modules,
                                             "language_model.model.layers.0.self_attn"))
    model = load_model(spec)
    layers = model.hf_model.language_model.model.layers
    assert not isinstance(layers[0].self_attn.q_proj, bnb.nn.Linear4bit)
    assert layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16
    assert isinstance(layers[1].self_attn.q_proj, bnb.nn.Linear4bit)
    assert (await model.generate("hi", max_new_tokens=4)).ok


async def test_two_checkpoints_loaded_at_once_load_as_they_do_alone(smol_dir):
    """Loading SmolLM2 in float32 and INT4 on two threads (a quantization panel's pool) left the float32 copy with
    "newly initialized" weights and garbage text (transformers sets process-wide state while loading); its greedy
    text must match a load on its own."""
    from workbench.backends import unload_all
    from workbench.fusion.fanout import load_members
    from workbench.specs import load_registry, with_quant

    spec = load_registry().models["smol-offline"]
    prompt = wb.Prompt("What is 3 + 4?")
    unload_all()
    both = await load_members([wb.Member(spec), wb.Member(with_quant(spec, "int4"))])  # the two loads race first
    try:
        got = (await both[0].generate(prompt, max_new_tokens=8, temperature=0)).text
    finally:
        for b in both:
            b.close()
        unload_all()
    with wb.load_model(spec) as alone:
        expected = (await alone.generate(prompt, max_new_tokens=8, temperature=0)).text
    unload_all()
    assert got == expected
