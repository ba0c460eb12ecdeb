"""``fuse`` and ``fuse_stream``: one async core for a fusion run, emitting events as it goes.

The flow: validate the call, load the pool (and judge) off the event loop, round 1 fans the prompt out
to every member at once, debate adds rounds in which each member sees the others' previous-round answers,
then the judge (or a vote) turns the answers into one. Every step is recorded in the FusionResult.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import AsyncIterator, Sequence

from ..backends import ModelHandle
from ..errors import ConfigError
from ..shutdown import RUNS, SHUTDOWN_REASON, ShuttingDownError
from ..specs import Member, Registry, load_registry
from ..types import Failure, GenerateConfig, Prompt
from . import judge as J
from .fanout import Emit, fan_out, load_members
from .modes import JUDGED_MODES, MODES, agreed, debate_messages, majority
from .records import (Event, FusionResult, JudgeStart, JudgeToken, MemberDone, MemberOutput, MemberToken, RoundEnd,
                      RoundStart, RunDone, RunStart, Verdict, VerdictEvent, new_run_id)

_DONE = object()


def _member(x: str | Member, registry: Registry) -> Member:
    return x if isinstance(x, Member) else registry.member(x)


def _validate(prompt, pool, judge, mode, rounds, quorum, swap_k, registry):
    if isinstance(prompt, str):
        prompt = Prompt(prompt)
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
    if not pool:
        raise ConfigError("the pool is empty: name at least one member")
    if rounds < 1:
        raise ConfigError(f"rounds must be at least 1 (got {rounds})")
    if swap_k < 1:
        raise ConfigError(f"swap_k must be at least 1 (got {swap_k})")
    members = [_member(m, registry) for m in pool]
    if quorum < 1 or quorum > len(members):
        raise ConfigError(f"quorum must be between 1 and the pool size {len(members)} (got {quorum})")
    judge_member = None
    if mode in JUDGED_MODES:
        if judge is None:
            raise ConfigError(f"mode {mode} needs a judge (any model name or member)")
        judge_member = _member(judge, registry)
    return prompt, members, judge_member


async def fuse_stream(prompt: Prompt | str, pool: Sequence[str | Member], judge: str | Member | None = None,
                      mode: str = "best-of", rounds: int = 2, *, max_new_tokens: int = 256,
                      temperature: float = 0.7, top_p: float = 1.0, seed: int | None = None,
                      member_timeout_s: float = 300.0, judge_timeout_s: float = 300.0, quorum: int = 1,
                      swap_k: int = 1, judge_max_new_tokens: int | None = None, min_new_tokens: int = 0,
                      registry: Registry | None = None, store=None,
                      reuse_rounds: list[list[MemberOutput]] | None = None) -> AsyncIterator[Event]:
    """Run one fusion and yield its events; the last is RunDone with the FusionResult.

    Args:
        prompt: a Prompt (text + images) or text.
        pool: members as names ("scout-int4:skeptic", "openrouter:...") or Member objects.
        judge: the judge, any model name or Member (not used by "vote").
        mode: "best-of", "merge", "debate" or "vote".
        rounds: debate rounds (1 = no exchange); other modes use one round.
        max_new_tokens, temperature, top_p, seed: generation settings (members may override).
        member_timeout_s: per-member limit per round; judge_timeout_s: per judge call.
        quorum: minimum members that must answer for the run to go on to judging.
        swap_k: judge k orderings of the candidates and report agreement (position-bias check).
        judge_max_new_tokens: the judge's limit (default: max(512, max_new_tokens)).
        min_new_tokens: local members only: no end-of-sequence before this many tokens (fixed-length benchmarks).
        registry: presets to resolve names (default: shipped + user file).
        store: a RunStore to save the finished run in (with its images).
        reuse_rounds: rounds generated before (a stored run, an evaluation cache); they are reused, not
            regenerated, and a debate continues from the last of them.

    Raises:
        ConfigError, InputError, UnknownModelError: the call itself is wrong (before anything runs).
    """
    registry = registry or load_registry()
    prompt, members, judge_member = _validate(prompt, pool, judge, mode, rounds, quorum, swap_k, registry)
    queue: asyncio.Queue = asyncio.Queue()
    settings = dict(max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens, temperature=temperature, top_p=top_p, seed=seed,
                    rounds=rounds if mode == "debate" else 1, member_timeout_s=member_timeout_s,
                    judge_timeout_s=judge_timeout_s, quorum=quorum, swap_k=swap_k,
                    judge_max_new_tokens=judge_max_new_tokens or max(512, max_new_tokens))
    def emit(event: Event) -> None:
        if store is not None and isinstance(event, RunDone):
            store.save(event.result, prompt.images)
        queue.put_nowait(event)

    task = asyncio.ensure_future(_run(prompt, members, judge_member, mode, settings, emit, reuse_rounds))
    try:
        token = RUNS.start(task)  # a draining server refuses new runs
    except ShuttingDownError:
        task.cancel()
        raise

    def done(_t: asyncio.Task) -> None:
        RUNS.end(token)
        queue.put_nowait(_DONE)

    task.add_done_callback(done)
    try:
        while (event := await queue.get()) is not _DONE:
            yield event
        if task.cancelled():  # a draining server cancelled it: its last event was RunDone, marked interrupted
            return
        task.result()  # a bug in our code raises here rather than vanishing
    finally:
        task.cancel()  # the consumer stopped (UI stop button): cancel every member and the judge


async def fuse(prompt: Prompt | str, pool: Sequence[str | Member], judge: str | Member | None = None,
               mode: str = "best-of", rounds: int = 2, **kwargs) -> FusionResult:
    """Run one fusion and return its FusionResult (same arguments as ``fuse_stream``)."""
    result = None
    async for event in fuse_stream(prompt, pool, judge, mode, rounds, **kwargs):
        if isinstance(event, RunDone):
            result = event.result
    assert result is not None
    return result


async def _run(prompt: Prompt, members: list[Member], judge_member: Member | None, mode: str,
               settings: dict, emit: Emit, reuse_rounds: list[list[MemberOutput]] | None = None) -> None:
    """One run, start to RunDone. Cancelled midway, it still ends with RunDone: the run marked interrupted,
    with every finished round and what each member of the round in progress had written so far."""
    t_start = time.perf_counter()
    result = FusionResult(new_run_id(), mode, prompt.to_dict(), [m.to_dict() for m in members],
                          judge_member.to_dict() if judge_member else None, settings)
    progress = _Progress(result, emit)
    try:
        await _run_steps(result, prompt, members, judge_member, mode, settings, progress.emit, reuse_rounds or [],
                         t_start)
    except asyncio.CancelledError:
        progress.interrupt(SHUTDOWN_REASON if RUNS.draining else "stopped before it finished (cancelled)",
                           time.perf_counter() - t_start)
        raise


class _Progress:
    """Follows a run's events, so that a run cut short can still be recorded with what it had."""

    def __init__(self, result: FusionResult, emit: Emit):
        self.result, self._emit = result, emit
        self.round = 0
        self.texts: dict[int, str] = {}  #: member -> text so far in the round in progress
        self.finished: dict[int, MemberOutput] = {}  #: member -> output, in the round in progress

    def emit(self, event: Event) -> None:
        if isinstance(event, RoundStart):
            self.round, self.texts, self.finished = event.round, {}, {}
        elif isinstance(event, MemberToken):
            self.texts[event.member] = self.texts.get(event.member, "") + event.text
        elif isinstance(event, MemberDone):
            self.finished[event.output.member] = event.output
        self._emit(event)

    def interrupt(self, reason: str, total_s: float) -> None:
        """Close the record as interrupted and emit its RunDone (which saves it, when a store is given)."""
        r = self.result
        if self.round > len(r.rounds):  # a round was in progress: keep what its members had written
            r.rounds.append([self.finished.get(i) or MemberOutput(i, m["label"], self.round, False,
                                                                 self.texts.get(i, ""), reason=reason,
                                                                 kind="interrupted", finish_reason="interrupted")
                             for i, m in enumerate(r.pool)])
        r.interrupted = reason
        r.degraded = True
        r.failure_reasons.append(f"interrupted: {reason}")
        r.total_s = total_s
        self._emit(RunDone(r))


async def _run_steps(result: FusionResult, prompt: Prompt, members: list[Member], judge_member: Member | None,
                     mode: str, settings: dict, emit: Emit, reuse_rounds: list[list[MemberOutput]],
                     t_start: float) -> None:
    result.noise = any(m.model.is_noise for m in members) or bool(judge_member and judge_member.model.is_noise)
    if judge_member is not None:
        result.judge_is_member = any(m.model == judge_member.model and m.persona == judge_member.persona
                                     for m in members)
    emit(RunStart(result.run_id, mode, [m.label for m in members], settings["rounds"]))
    # Load every model first (pool and judge, in parallel, off the loop) so the timeline measures generation.
    # Members are loaded only when some round is still to be generated.
    need_pool = settings["rounds"] > len(reuse_rounds)
    loaded = await load_members((members if need_pool else []) + ([judge_member] if judge_member else []))
    backends = loaded[:len(members)] if need_pool else []
    judge_backend = loaded[-1] if judge_member else None
    result.load_s = time.perf_counter() - t_start
    t0 = time.perf_counter()
    config = GenerateConfig(max_new_tokens=settings["max_new_tokens"], min_new_tokens=settings["min_new_tokens"],
                            temperature=settings["temperature"],
                            top_p=settings["top_p"], seed=settings["seed"])
    previous: list[MemberOutput] = []
    for r in range(1, settings["rounds"] + 1):
        emit(RoundStart(r))
        if r <= len(reuse_rounds):  # generated before (a stored run, an eval cache): not regenerated
            outputs = reuse_rounds[r - 1]
            for o in outputs:
                emit(MemberDone(o))
        elif r == 1:
            def messages_for(i: int):
                return prompt.messages(members[i].persona)
        else:
            prev = previous

            def messages_for(i: int, prev=prev):
                return debate_messages(prompt, members[i].persona, i, prev)
        if r > len(reuse_rounds):
            outputs = await fan_out(members, backends, messages_for, config, round_no=r,
                                    timeout_s=settings["member_timeout_s"], emit=emit, t0=t0)
        result.rounds.append(outputs)
        previous = outputs
        stop = mode == "debate" and r < settings["rounds"] and agreed(outputs)
        emit(RoundEnd(r, agreed=stop))
        if stop:
            result.stopped_early = r
            result.notes.append(f"debate stopped after round {r}: every member gave the same answer")
            break
    result.pool_wall_s = time.perf_counter() - t0
    result.failure_reasons += member_failures(result.rounds)
    ok = [o for o in result.outputs if o.ok]
    if any(o.notes for o in result.outputs):
        result.notes += [f"{o.label}: {n}" for o in result.outputs for n in o.notes]
    if result.failure_reasons:
        result.degraded = True
    if not ok:
        result.failure_reasons.append("all members failed: nothing to judge")
    elif len(ok) < settings["quorum"]:
        result.failure_reasons.append(f"quorum not met: {len(ok)} of {len(members)} answered "
                                      f"(need {settings['quorum']})")
    else:
        tj = time.perf_counter()
        result.verdict = await decide(prompt, result.outputs, mode, judge_member, judge_backend, settings, emit)
        result.judge_wall_s = time.perf_counter() - tj
        _finish(result)
    if not ok or len(ok) < settings["quorum"]:
        result.degraded = True
    result.total_s = time.perf_counter() - t_start
    emit(RunDone(result))


async def decide(prompt: Prompt, outputs: list[MemberOutput], mode: str, judge_member: Member | None,
                 judge_backend: ModelHandle | Failure | None, settings: dict, emit: Emit) -> Verdict:
    """Turn the answers into a Verdict: a vote, or the judge over k shuffled orderings."""
    ok = [o for o in outputs if o.ok]
    flagged = [o.member for o in ok if J.looks_like_injection(o.text)]
    if mode == "vote":
        answer, winner, counts, extracted = majority(ok)
        v = Verdict("vote", winner=winner, answer=answer or "", votes=counts, extracted=extracted,
                    valid=answer is not None, error="" if answer else "no member gave an extractable answer",
                    injection_flagged=flagged)
        emit(VerdictEvent(v))
        return v
    if isinstance(judge_backend, Failure) or judge_backend is None:
        reason = judge_backend.reason if isinstance(judge_backend, Failure) else "no judge"
        v = Verdict(mode, valid=False, error=f"judge failed to load: {reason}")
        emit(VerdictEvent(v))
        return v
    rng = random.Random(settings["seed"] if settings["seed"] is not None else time.time_ns())
    orders = J.shuffled_orders([o.member for o in ok], settings["swap_k"], rng)
    config = GenerateConfig(max_new_tokens=settings["judge_max_new_tokens"], temperature=0.0,
                            timeout_s=settings["judge_timeout_s"], seed=settings["seed"])
    verdict = Verdict(mode, swap_k=len(orders), injection_flagged=flagged)
    main_parsed, main_order = None, None
    for n, order in enumerate(orders):
        emit(JudgeStart(n + 1, order))
        last, parsed, attempts, truncated = await J.judge_once(
            judge_backend, judge_member, prompt, ok, order, mode, config, on_text=lambda t: emit(JudgeToken(t)))
        verdict.attempts += attempts
        verdict.truncated = truncated
        winner = last.winner
        if parsed is not None and winner is None:  # merge: the top-scored candidate, for the swap check
            top = max(parsed["scores"].values())
            best = [k for k, s in parsed["scores"].items() if s == top]
            winner = order[J.labels(len(order)).index(best[0])] if len(best) == 1 else None
            last.winner = winner
        verdict.swap_winners.append(winner if parsed is not None else None)
        if parsed is not None and main_parsed is None:
            main_parsed, main_order = parsed, order
    if main_parsed is None:
        verdict.valid = False
        verdict.error = verdict.attempts[-1].error or "judge returned no valid verdict"
    else:
        ids = J.labels(len(main_order))
        verdict.label_map = dict(zip(ids, main_order))
        verdict.scores = {verdict.label_map[k]: s for k, s in main_parsed["scores"].items()}
        verdict.rationale = main_parsed["rationale"]
        verdict.answer = main_parsed.get("answer", "")
        if "winner" in main_parsed:
            verdict.winner = verdict.label_map[main_parsed["winner"]]
    if len(orders) > 1:
        # Orderings agree when they pick the same member, or members whose answers are word for word the same.
        text_of = {o.member: o.text.strip() for o in ok}
        winners = [text_of.get(w, w) for w in verdict.swap_winners if w is not None]
        if winners:
            top = max(winners.count(w) for w in set(winners))
            leaders = {w for w in winners if winners.count(w) == top}
            verdict.swap_agreement = top / len(orders)
            verdict.swap_outcome = ("tie" if len(leaders) > 1 else
                                    "consistent" if top == len(orders) else "inconsistent")
        else:  # no ordering produced a valid verdict: nothing to compare
            verdict.swap_agreement, verdict.swap_outcome = None, "invalid"
    emit(VerdictEvent(verdict))
    return verdict


def member_failures(rounds: list[list[MemberOutput]]) -> list[str]:
    """One line per failed member answer, in round and pool order."""
    return [f"{o.label} (round {o.round}): {o.kind}: {o.reason}" for rnd in rounds for o in rnd if not o.ok]


def _finish(result: FusionResult) -> None:
    """Set the final answer from the verdict, with a recorded fallback when the judge failed."""
    v = result.verdict
    by_member = {o.member: o for o in result.outputs}
    if v is not None and v.valid:
        if result.mode == "best-of":
            result.final_answer = by_member[v.winner].text
        else:
            result.final_answer = v.answer
        return
    first_ok = next(o for o in result.outputs if o.ok)
    result.final_answer = first_ok.text
    result.degraded = True
    result.failure_reasons.append(f"{v.error if v else 'no verdict'}; fell back to the first answer "
                                  f"({first_ok.label})")


async def rejudge(result: FusionResult, judge: str | Member | None = None, mode: str | None = None,
                  images: Sequence = (), swap_k: int | None = None, seed: int | None = None,
                  registry: Registry | None = None) -> FusionResult:
    """Judge a finished run again, with another judge or mode, without regenerating any member's answer.

    Args:
        result: the run to re-judge (from ``fuse`` or ``RunStore.load``).
        judge: the new judge (default: the run's judge).
        mode: "best-of", "merge" or "vote" (debate needs new rounds: run ``fuse`` again).
        images: the prompt's images (``RunStore.images(run_id)``), shown to the judge.
    """
    registry = registry or load_registry()
    mode = mode or result.mode
    if mode == "debate" and result.mode != "debate":
        raise ConfigError("re-judging as a debate needs new rounds of answers: run fuse with mode='debate'")
    if judge is None and result.judge:
        judge = Member.from_dict(result.judge)
    prompt = Prompt(result.prompt["text"], images=list(images), system=result.prompt.get("system"))
    judge_member = _member(judge, registry) if mode in JUDGED_MODES else None
    if mode in JUDGED_MODES and judge_member is None:
        raise ConfigError(f"mode {mode} needs a judge")
    # Every round is reused, so the shared core loads and runs only the judge.
    settings = {**result.settings, "rounds": len(result.rounds),
                "swap_k": swap_k or result.settings.get("swap_k", 1),
                "seed": seed if seed is not None else result.settings.get("seed")}
    done: list[FusionResult] = []
    members = [Member.from_dict(p) for p in result.pool]
    await _run(prompt, members, judge_member, mode, settings,
               lambda e: done.append(e.result) if isinstance(e, RunDone) else None, reuse_rounds=result.rounds)
    new = done[0]
    new.prompt, new.parent_run_id, new.stopped_early = result.prompt, result.run_id, result.stopped_early
    new.pool_wall_s = result.pool_wall_s
    new.total_s = new.pool_wall_s + new.judge_wall_s
    return new
