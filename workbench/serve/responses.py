"""What the API answers: ``chat.completion`` objects and chunks, usage, the ``fusion`` extension object, and the
status of a run that did not produce an answer."""

from __future__ import annotations

import time
from typing import Any

from ..fusion.modes import Mode
from ..records import FusionResult, MemberOutput, Verdict
from ..render.markdown import decision_head
from .protocol import APIError


def usage(result: FusionResult) -> dict[str, Any]:
    """Every call of the run summed: members in every round, and every judge attempt; cost when known."""
    calls = [(o.prompt_tokens, o.completion_tokens) for r in result.rounds for o in r]
    calls += [(a.prompt_tokens, a.completion_tokens) for a in (result.verdict.attempts if result.verdict else [])]
    p, c = sum(x for x, _ in calls), sum(y for _, y in calls)
    out: dict[str, Any] = {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
    if result.total_cost_usd is not None:
        out["cost"] = result.total_cost_usd
    return out


def _output(o: MemberOutput) -> dict[str, Any]:
    return {"member": o.label, "round": o.round, "ok": o.ok, "skipped": o.skipped, "saw_images": o.saw_images,
            "content": o.text, "finish_reason": o.finish_reason,
            "error": None if o.ok else {"kind": o.kind, "message": o.reason},
            "usage": {"prompt_tokens": o.prompt_tokens, "completion_tokens": o.completion_tokens,
                      **({"cost": o.cost_usd} if o.cost_usd is not None else {})},
            "latency_s": round(o.latency_s, 4), "ttft_s": None if o.ttft_s is None else round(o.ttft_s, 4)}


def decision(v: Verdict, labels: list[str]) -> dict[str, Any]:
    """How the winner was decided: ``tie`` (several answers shared the top), ``tied`` (one member per such answer),
    ``tie_broken_by`` (the rule, in words), ``majority`` (vote: more than half the votes; null otherwise) and
    ``decision``, the sentence the page shows ("Tie: a and b scored 10 each — broken by .... Taken: a")."""
    names = dict(enumerate(labels))
    return {"tie": v.tie, "tied": [names.get(i, str(i)) for i in v.tied], "tie_broken_by": v.tie_broken_by or None,
            "majority": v.majority,
            "decision": f"{decision_head(v, names)}: {names.get(v.winner, v.winner)}" if v.winner is not None
            else None}


def fusion_object(result: FusionResult) -> dict[str, Any]:
    """The ``fusion`` extension: what each member wrote in each round, the verdict and why, what failed."""
    labels = [m["label"] for m in result.pool]
    v = result.verdict
    verdict = None
    if v is not None:
        name = lambda i: labels[i] if i is not None and 0 <= i < len(labels) else None  # noqa: E731
        verdict = {"valid": v.valid, "error": v.error or None, "winner": name(v.winner), **decision(v, labels),
                   "scores": {name(i): s for i, s in v.scores.items()}, "rationale": v.rationale,
                   "orderings": v.swap_k, "agreement": v.swap_agreement, "outcome": v.swap_outcome or None,
                   "picks": [name(w) for w in v.swap_winners], "votes": v.votes or None,
                   "injection_flagged": [name(i) for i in v.injection_flagged],
                   "judge_calls": [{"valid": a.valid, "error": a.error or None, "latency_s": round(a.latency_s, 4),
                                    "usage": {"prompt_tokens": a.prompt_tokens,
                                              "completion_tokens": a.completion_tokens,
                                              **({"cost": a.cost_usd} if a.cost_usd is not None else {})}}
                                   for a in v.attempts]}
    return {"run_id": result.run_id, "mode": result.mode, "members": labels,
            "judge": result.judge["label"] if result.judge else None,
            "rounds": [[_output(o) for o in rnd] for rnd in result.rounds], "verdict": verdict,
            "degraded": result.degraded, "interrupted": result.interrupted or None,
            "stopped": result.stopped or None,
            "failure_reasons": list(result.failure_reasons), "notes": list(result.notes),
            "stopped_early_after_round": result.stopped_early,
            "timing": {"load_s": round(result.load_s, 4), "pool_s": round(result.pool_wall_s, 4),
                       "judge_s": round(result.judge_wall_s, 4), "total_s": round(result.total_s, 4)},
            "environment": result.environment or None}


def apply_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """``text`` cut before the first stop sequence (and whether one was found)."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def completion(cid: str, model: str, created: int, content: str, finish_reason: str,
               result: FusionResult) -> dict[str, Any]:
    """A ``chat.completion`` object with ``usage`` and the ``fusion`` extension."""
    return {"id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
                         "logprobs": None, "finish_reason": finish_reason}],
            "usage": usage(result), "system_fingerprint": None, "fusion": fusion_object(result)}


def chunk(cid: str, model: str, created: int, delta: dict[str, Any] | None = None,
          finish_reason: str | None = None, **extra: Any) -> dict[str, Any]:
    """A ``chat.completion.chunk``; ``delta={}`` with extension fields is a chunk plain clients skip."""
    return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish_reason}],
            **extra}


def now() -> int:
    return int(time.time())


def raise_if_failed(result: FusionResult) -> None:
    """504 for a run past its time limit, 503 when no member answered (504 if they all timed out), 400 when every
    member was skipped (an image none of them can see); a run with some answers, a failed judge or a fallback
    still answers (``fusion.degraded``)."""
    fusion = fusion_object(result)
    if result.stopped == "timeout":
        raise APIError(504, f"the fused model did not finish in time: {result.interrupted}", "timeout",
                         fusion=fusion)
    if result.interrupted:
        raise APIError(503, f"the run was interrupted: {result.interrupted}", "interrupted", fusion=fusion)
    if result.outputs and all(o.skipped for o in result.outputs):  # the request's image, not the members, failed
        raise APIError(400, "no member of this model can see images, and members that cannot are skipped; "
                              "send the text alone, or "
                              '"fusion": {"blind_members": "tell"} to have them answer from the text and say so',
                         "no_vision_member", "messages", fusion=fusion)
    if not result.final_answer and not any(o.ok for o in result.outputs):
        failed = [o for o in result.outputs if not o.ok]
        timeouts = failed and all(o.kind == "timeout" for o in failed)
        reasons = "; ".join(result.failure_reasons) or "no member answered"
        raise APIError(504 if timeouts else 503, f"every member failed: {reasons}",
                         "members_timed_out" if timeouts else "all_members_failed", fusion=fusion)
    if not result.final_answer:
        raise APIError(503, "; ".join(result.failure_reasons) or "no answer", "no_answer", fusion=fusion)


def final(result: FusionResult, plain: bool, mode: Mode, stops: list[str]) -> tuple[str, str]:
    """The answer and its finish reason: the member's own text for a plain model, else the fused answer."""
    if plain:
        out = result.outputs[0]
        text, finish = out.text, "length" if out.finish_reason == "length" else "stop"
    else:
        text, finish = result.final_answer, "stop"
        v = result.verdict
        if v is not None and v.valid and v.winner is not None and not mode.needs_answer:
            winner = next((o for o in result.outputs if o.member == v.winner), None)
            if winner is not None and winner.finish_reason == "length":
                finish = "length"
    text, stopped = apply_stop(text, stops)
    return text, "stop" if stopped else finish


def judge_writes_answer(mode: Mode) -> bool:
    """Whether the judge writes the answer itself (so it can stream as the judge writes it)."""
    return mode.needs_answer and type(mode).final_answer is Mode.final_answer
