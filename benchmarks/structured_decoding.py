"""Which structured-generation library to constrain a local judge with: xgrammar, llguidance, lm-format-enforcer.

On SmolLM2-135M-Instruct's tokenizer (the offline judge) and a best-of verdict schema for three candidates,
each library compiles the schema, then walks the tokens of a valid verdict computing the allowed-token mask
before every token (what constrained decoding adds to each step), side by side in one run:

    .venv/bin/python benchmarks/structured_decoding.py

Prints compile time, mask time per token, and whether the mask allowed every token of the valid reply and
forbade a token that breaks the schema.
"""

from __future__ import annotations

import json
import time

import torch


def schema() -> dict:
    ids = ["A", "B", "C"]
    return {"type": "object", "additionalProperties": False, "required": ["winner", "scores", "rationale"],
            "properties": {"winner": {"enum": ids},
                           "scores": {"type": "object", "additionalProperties": False, "required": ids,
                                      "properties": {i: {"type": "integer", "minimum": 0, "maximum": 10} for i in ids}},
                           "rationale": {"type": "string", "maxLength": 300}}}


REPLY = json.dumps({"winner": "B", "scores": {"A": 3, "B": 9, "C": 5},
                    "rationale": "B adds the numbers correctly and shows each step; A and C drop a carry."})


def bench_xgrammar(tok, vocab, ids, bad):
    import xgrammar as xgr

    t0 = time.perf_counter()
    info = xgr.TokenizerInfo.from_huggingface(tok, vocab_size=vocab)
    compiled = xgr.GrammarCompiler(info).compile_json_schema(json.dumps(schema()))
    compile_s = time.perf_counter() - t0
    matcher = xgr.GrammarMatcher(compiled)
    mask = xgr.allocate_token_bitmask(1, vocab)
    xgr.apply_token_bitmask_inplace(torch.zeros(1, vocab), mask)  # warm-up, as for llguidance
    allowed_all, t = True, time.perf_counter()
    for i in ids:
        matcher.fill_next_token_bitmask(mask)
        logits = torch.zeros(1, vocab)
        xgr.apply_token_bitmask_inplace(logits, mask)
        allowed_all &= bool(logits[0, i] == 0)
        matcher.accept_token(i)
    per_tok = (time.perf_counter() - t) / len(ids)
    m2 = xgr.GrammarMatcher(compiled)
    m2.fill_next_token_bitmask(mask)
    logits = torch.zeros(1, vocab)
    xgr.apply_token_bitmask_inplace(logits, mask)
    return compile_s, per_tok, allowed_all, bool(logits[0, bad] == float("-inf"))


def bench_llguidance(tok, vocab, ids, bad):
    import llguidance
    import llguidance.hf
    import llguidance.torch

    t0 = time.perf_counter()
    lltok = llguidance.hf.from_tokenizer(tok, n_vocab=vocab)
    grammar = llguidance.LLMatcher.grammar_from_json_schema(json.dumps(schema()))
    matcher = llguidance.LLMatcher(lltok, grammar)
    compile_s = time.perf_counter() - t0
    mask = llguidance.torch.allocate_token_bitmask(1, lltok.vocab_size)
    llguidance.torch.apply_token_bitmask_inplace(torch.zeros(1, vocab), mask)  # warm-up: its first call compiles
    allowed_all, t = True, time.perf_counter()
    for i in ids:
        llguidance.torch.fill_next_token_bitmask(matcher, mask, 0)
        logits = torch.zeros(1, vocab)
        llguidance.torch.apply_token_bitmask_inplace(logits, mask)
        allowed_all &= bool(logits[0, i] == 0)
        matcher.consume_token(i)
    per_tok = (time.perf_counter() - t) / len(ids)
    m2 = llguidance.LLMatcher(lltok, grammar)
    llguidance.torch.fill_next_token_bitmask(m2, mask, 0)
    logits = torch.zeros(1, vocab)
    llguidance.torch.apply_token_bitmask_inplace(logits, mask)
    return compile_s, per_tok, allowed_all, bool(logits[0, bad] == float("-inf"))


def bench_lmfe(tok, vocab, ids, bad):
    from lmformatenforcer import JsonSchemaParser, TokenEnforcer
    from lmformatenforcer.integrations.transformers import build_token_enforcer_tokenizer_data

    t0 = time.perf_counter()
    data = build_token_enforcer_tokenizer_data(tok)
    enforcer = TokenEnforcer(data, JsonSchemaParser(schema()))
    compile_s = time.perf_counter() - t0
    allowed_all, t = True, time.perf_counter()
    for n, i in enumerate(ids):
        allowed = enforcer.get_allowed_tokens(list(ids[:n])).allowed_tokens
        allowed_all &= i in set(allowed)
    per_tok = (time.perf_counter() - t) / len(ids)
    first = set(TokenEnforcer(data, JsonSchemaParser(schema())).get_allowed_tokens([]).allowed_tokens)
    return compile_s, per_tok, allowed_all, bad not in first


def main() -> None:
    from transformers import AutoConfig, AutoTokenizer

    from workbench.backends.gguf import ensure_converted
    from workbench.specs import load_registry

    path = ensure_converted(load_registry().resolve("smol-offline").model)
    tok = AutoTokenizer.from_pretrained(path)
    vocab = AutoConfig.from_pretrained(path).vocab_size
    ids = tok.encode(REPLY, add_special_tokens=False)
    bad = tok.encode("Sure", add_special_tokens=False)[0]  # a verdict cannot start with prose
    print(f"tokenizer vocab {vocab}; valid reply {len(ids)} tokens")
    print(f"{'library':22} {'compile s':>10} {'mask ms/token':>14} {'allows reply':>13} {'forbids prose':>14}")
    for name, fn in (("xgrammar 0.2.9", bench_xgrammar), ("llguidance 1.9.1", bench_llguidance),
                     ("lm-format-enforcer", bench_lmfe)):
        try:
            c, p, ok, forbids = fn(tok, vocab, ids, bad)
            print(f"{name:22} {c:10.3f} {p * 1000:14.3f} {str(ok):>13} {str(forbids):>14}")
        except Exception as exc:  # noqa: BLE001 - a library that fails here is a finding
            print(f"{name:22} failed: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main()
