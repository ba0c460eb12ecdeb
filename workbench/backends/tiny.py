"""Build a random-weight tiny Llama 4 (text MoE + vision) with a real processor, fully offline.

The checkpoint is an ordinary Hugging Face directory, so it loads through exactly the same
``from_pretrained`` path as Llama 4 Scout. Its output is random noise: it exists for tests, CI and the
demo on machines with no GPU or network. Every quantizable Linear keeps ``in_features % 64 == 0`` and
``out_features % 32 == 0`` so bitsandbytes' CPU 4-bit kernel accepts it.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..paths import build_once, cache_root

#: Bump when the recipe changes, so cached checkpoints are rebuilt.
TINY_VERSION = 4

SPECIAL_TOKENS = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|finetune_right_pad|>", "<|header_start|>", "<|header_end|>",
    "<|eom|>", "<|eot|>", "<|step|>", "<|python_start|>", "<|python_end|>",
    "<|image_start|>", "<|image_end|>", "<|image|>", "<|patch|>", "<|tile_x_separator|>", "<|tile_y_separator|>",
]

_CORPUS = """The quick brown fox jumps over the lazy dog. A model answers a question about an image.
Fusion combines the answers of several models; a judge picks the best candidate or merges them.
Red, green, blue, yellow: count the circles and squares. What is two plus three? The answer is five.
Researchers compare debate, merge and best-of modes on arithmetic word problems and pictures.
""" * 4


def default_cache_dir() -> Path:
    """Where built tiny checkpoints are kept (``WORKBENCH_CACHE`` overrides)."""
    return cache_root() / f"tiny-llama4-v{TINY_VERSION}"


#: the locally trained BPE tokenizer's size (at most; special tokens included)
TOKENIZER_VOCAB = 448


def padded_vocab(n_tokens: int) -> int:
    """lm_head rows padded to a kernel-friendly multiple of 64."""
    return ((n_tokens + 63) // 64) * 64


def tiny_config():
    """The tiny Llama 4's config, without building it (for memory plans)."""
    from transformers import Llama4Config

    return Llama4Config(**tiny_config_kwargs(padded_vocab(TOKENIZER_VOCAB)))


def tiny_config_kwargs(vocab_size: int) -> dict:
    """The tiny Llama 4 config, following the consistency rules in FACTS.md at the repo root."""
    text = dict(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=64, intermediate_size_mlp=128,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        num_local_experts=4, num_experts_per_tok=1, interleave_moe_layer_step=1,
        max_position_embeddings=16384, rope_theta=500000.0, attention_chunk_size=8192,
        pad_token_id=SPECIAL_TOKENS.index("<|finetune_right_pad|>"),
        bos_token_id=0, eos_token_id=[1, SPECIAL_TOKENS.index("<|eot|>")],
    )
    vision = dict(
        hidden_size=32, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
        image_size=32, patch_size=8, pixel_shuffle_ratio=0.5, vision_output_dim=64,
        projector_input_dim=64, projector_output_dim=64, rope_theta=10000.0,
    )
    return dict(text_config=text, vision_config=vision,
                image_token_index=SPECIAL_TOKENS.index("<|patch|>"),
                boi_token_index=SPECIAL_TOKENS.index("<|image_start|>"),
                eoi_token_index=SPECIAL_TOKENS.index("<|image_end|>"))


def _train_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS.splitlines(), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot|>",
        pad_token="<|finetune_right_pad|>", padding_side="left",
    )


def build_tiny_llama4(out_dir: str | Path, seed: int = 0, dtype: str = "bfloat16", expert_std: float | None = None,
                      **text: int) -> Path:
    """Write a random-weight tiny Llama 4 checkpoint with processor to ``out_dir`` and return it.

    ``text`` overrides text-config sizes (``hidden_size=128, intermediate_size=64, num_local_experts=3``);
    ``expert_std`` re-draws the routed experts' weights with that spread, so that they weigh in the output
    (at the default init their share of the logits is tiny); ``dtype`` is what the weights are saved in."""
    import torch
    from transformers import Llama4Config, Llama4ForConditionalGeneration, Llama4Processor
    from transformers.models.llama4.image_processing_llama4 import Llama4ImageProcessor
    from transformers.models.llama4.processing_llama4 import chat_template

    out_dir = Path(out_dir)
    tokenizer = _train_tokenizer(TOKENIZER_VOCAB)
    vocab = padded_vocab(len(tokenizer))
    kwargs = tiny_config_kwargs(vocab)
    kwargs["text_config"].update(text)
    config = Llama4Config(**kwargs)
    torch.manual_seed(seed)
    model = Llama4ForConditionalGeneration(config)
    if expert_std is not None:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if ".experts." in name:
                    p.normal_(0.0, expert_std)
    model = model.to(getattr(torch, dtype))
    # `.to(bfloat16)` turns the vision rotary buffer real (see FACTS.md at the repo root); it is not saved, and
    # loading with `dtype=bfloat16` rebuilds it correctly.
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|end_of_text|>")]
    image_processor = Llama4ImageProcessor(size={"height": 32, "width": 32}, max_patches=4)
    processor = Llama4Processor(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template,
                                patch_size=8, pixel_shuffle_ratio=0.5)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    (out_dir / "WORKBENCH_TINY.json").write_text(json.dumps({"version": TINY_VERSION, "seed": seed,
                                                              "note": "random weights: output is noise"}))
    return out_dir


def ensure_tiny_llama4(cache_dir: str | Path | None = None) -> Path:
    """The cached tiny checkpoint, built on first use (once, atomically: ``paths.build_once``)."""
    target = Path(cache_dir) if cache_dir else default_cache_dir()
    return build_once(target, "WORKBENCH_TINY.json", build_tiny_llama4)


def build_tiny_causal_lm(out_dir: str | Path, seed: int = 0, hidden_size: int = 64, intermediate_size: int = 128,
                         num_hidden_layers: int = 2, max_position_embeddings: int = 256) -> Path:
    """A random-weight tiny text-only Llama (no chat template): the plain causal-LM path, offline.

    The sizes can be raised to make a model large enough to see in a memory measurement."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    tokenizer = _train_tokenizer(TOKENIZER_VOCAB)
    vocab = padded_vocab(len(tokenizer))
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden_size, intermediate_size=intermediate_size,
                         num_hidden_layers=num_hidden_layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=max_position_embeddings,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=0, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
