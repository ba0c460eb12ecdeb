"""Research instruments built on cached member answers: where a fusion gain comes from and what the judge does.

Each instrument is a function returning an ``Experiment``: a tidy DataFrame, a plotly figure, a summary dict with
paired confidence intervals (and an exact McNemar p-value where answers are right or wrong), and the number of
judge calls it made. They read an evaluation's frame (``wb.evaluate``), whose member answers are cached, so
most need no generation at all:

- ``debate_vs_vote``: per debate round, answers changed and flips; majority vote over round 1 vs debate's final.
- ``agreement_gate``: skip the judge when k of n members agree; accuracy against tokens and latency per k.
- ``member_attribution``: leave-one-out and exact Shapley values of each member (vote, or best-of re-judged
  on every subset of the cached answers).
- ``judge_bias_sweep``: the judge over permutations of the same candidates: win rate by position and by label,
  Kendall's tau between the rankings of different orderings.
- ``grounding``: the judge's structured analysis (consensus, contradictions, unique insights, blind spots, each
  quoting a member), every quote checked against the answer it is attributed to.
- ``cost_matched_ablation``: the diverse pool vs k samples of its best member vs k samples of the judge model:
  the gain split into diversity and synthesis.
- ``quantization_panel``: the same model unquantized and INT4 (and INT4 with a 4-bit vision tower) in one pool:
  what is really 4-bit, their agreement and accuracy difference.
- ``image_ablation``: vision members answer the image items again without the image and with a blank one; an
  answer that did not change was given without looking.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "Experiment": "common",
    "paired": "common",
    "debate_vs_vote": "frame",
    "agreement_gate": "frame",
    "member_attribution": "attribution",
    "judge_bias_sweep": "bias",
    "grounding": "analysis",
    "image_ablation": "vision",
    "cost_matched_ablation": "ablation",
    "quantization_panel": "quantization",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_LAZY)
