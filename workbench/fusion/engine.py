"""``fuse`` and ``fuse_stream``: one async core for a fusion run, emitting events as it goes.

The flow: validate the call, load the pool (and judge) off the event loop, round 1 fans the prompt out
to every member at once, debate adds rounds in which each member sees the others' previous-round answers,
then the judge (or a vote) turns the answers into one. Every step is recorded in the FusionResult.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Unpack

from ..answers import letters
from ..backends import ModelHandle
from ..backends import loaded as loaded_models
from ..context import RunContext, with_shorthands
from ..errors import ConfigError, WorkbenchError
from ..events import (Event, JudgeStart, JudgeToken, Loading, MemberDone, MemberToken, RoundEnd, RoundStart, RunDone,
                      RunStart, VerdictEvent)
from ..policy import Policy
from ..provenance import environment
from ..records import STOPPED, FusionResult, MemberOutput, Verdict, mark_tie, new_run_id
from ..settings import FusionSettings, SettingsOverrides
from ..shutdown import RUNS
from ..specs import Member, Registry
from ..storage import RunStore
from ..types import Failure, Prompt
from . import judge as J
from .fanout import Emit, fan_out, load_members
from .modes import Mode, agreed, debate_messages, get_mode, vote_verdict

_DONE = object()
#: how a run stopped by ``FusionSettings.timeout_s`` is recorded (``FusionResult.interrupted`` starts with it;
#: ``FusionResult.stopped`` is "timeout")
TIMED_OUT = STOPPED["timeout"]


def _member(x: str | Member, registry: Registry) -> Member:
    return x if isinstance(x, Member) else registry.member(x)


def _validate(prompt: Prompt | str, pool: Sequence[str | Member], judge: str | Member | None, mode: Mode,
              settings: FusionSettings, registry: Registry,
              policy: Policy | None = None) -> tuple[Prompt, list[Member], Member | None]:
    if isinstance(prompt, str):
        prompt = Prompt(prompt)
    if not pool:
        raise ConfigError("the pool is empty: name at least one member")
    resolve = (lambda x: x if isinstance(x, Member) else policy.member(x, registry)) if policy else \
        (lambda x: _member(x, registry))
    members = [resolve(m) for m in pool]
    if settings.quorum > len(members):
        raise ConfigError(f"quorum must be between 1 and the pool size {len(members)} (got {settings.quorum})")
    judge_member = None
    if mode.judged:
        if judge is None:
            raise ConfigError(f"mode {mode.name} needs a judge (any model name or member)")
        judge_member = resolve(judge)
    if policy is not None:
        policy.check_run(prompt, members, judge_member, settings)
    return prompt, members, judge_member


async def fuse_stream(prompt: Prompt | str, pool: Sequence[str | Member], judge: str | Member | None = None,
                      mode: str | Mode = "best-of", settings: FusionSettings | None = None, *,
                      context: RunContext | None = None, store: RunStore | None = None,
                      registry: Registry | None = None, reuse_rounds: list[list[MemberOutput]] | None = None,
                      **overrides: Unpack[SettingsOverrides]) -> AsyncGenerator[Event, None]:
    """Run one fusion and yield its events; the last is RunDone with the FusionResult.

    Args:
        prompt: a Prompt (text + images) or text.
        pool: members as names ("scout-int4:skeptic", "openrouter:...") or Member objects.
        judge: the judge, any model name or Member (not used by "vote").
        mode: "best-of", "merge", "debate" or "vote" (see ``workbench.fusion.modes``), or a Mode.
        settings: the run's knobs (FusionSettings); ``**overrides`` are its fields as keywords
            (``rounds=3, max_new_tokens=64``), applied on top.
        context: who runs it, where, under which policy, stored where, counted against whom
            (``workbench.context.RunContext``; default: a trusted local call, not stored, origin "python").
        store, registry: shorthands that replace the context's (a RunStore to save the finished run in, with its
            images; the presets that resolve names).
        reuse_rounds: rounds generated before (a stored run, an evaluation cache); they are reused, not
            regenerated, and a debate continues from the last of them.

    Raises:
        ConfigError, InputError, UnknownModelError: the call itself is wrong (before anything runs).
        ShuttingDownError: the server is draining and takes no new run.
        PolicyError: the policy refuses a model, a host, a key variable or a limit.
    """
    context = with_shorthands(context, store=store, registry=registry)
    registry, store, policy = context.resolved_registry(), context.store, context.policy
    mode = get_mode(mode)
    settings = FusionSettings.build(settings, **overrides)
    if not mode.multi_round:
        settings = settings.replace(rounds=1)
    # resolving names and checking hosts may wait on DNS: off the event loop
    checked, members, judge_member = await asyncio.to_thread(_validate, prompt, pool, judge, mode, settings,
                                                             registry, policy)
    if policy is not None:
        settings = policy.fit(settings)  # the judge's default token limit within the server's
    queue: asyncio.Queue = asyncio.Queue()

    def save(result: FusionResult) -> None:  # one transaction; run off the event loop when the run finishes
        assert store is not None
        store.save(result, checked.images, owner=context.owner)

    # a draining server refuses new runs; the policy caps runs in flight: a full server's slots go to those
    # waiting, the least served first (RunTracker.admit)
    lim = policy.limits if policy is not None else None
    quota = context.quota
    admission = await RUNS.admit(quota, lim.runs_per_session if quota is not None else None, lim.runs_total,
                                 lim.run_wait_s, lim.runs_waiting) if lim is not None else None
    # why the consumer stopped (one of STOPPED), for the run to record: kept here, not in the cancellation's
    # message, which the libraries under a member or judge call may replace with their own
    stopped: list[str] = []
    task = asyncio.ensure_future(_run(checked, members, judge_member, mode, settings, queue.put_nowait, reuse_rounds,
                                      save if store is not None else None, context.origin,
                                      public=context.public, stopped=stopped))
    try:
        token = RUNS.start(task, quota, lim.runs_per_session if lim else None, lim.runs_total if lim else None,
                           admission=admission)
    except WorkbenchError:
        task.cancel()
        RUNS.release(admission)
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
    except asyncio.CancelledError as exc:  # the consumer was cancelled: its reason (one of STOPPED) goes to the run
        if exc.args and exc.args[0] in STOPPED:
            stopped.append(exc.args[0])
        raise
    finally:
        task.cancel()  # the consumer stopped (UI stop button): cancel every member and the judge


class FuseOptions(SettingsOverrides, total=False):
    """``fuse``'s keyword arguments: ``fuse_stream``'s, and ``FusionSettings``' fields."""

    context: RunContext | None
    store: RunStore | None
    registry: Registry | None
    reuse_rounds: list[list[MemberOutput]] | None


async def fuse(prompt: Prompt | str, pool: Sequence[str | Member], judge: str | Member | None = None,
               mode: str | Mode = "best-of", settings: FusionSettings | None = None,
               **kwargs: Unpack[FuseOptions]) -> FusionResult:
    """Run one fusion and return its FusionResult (same arguments as ``fuse_stream``)."""
    result = None
    async for event in fuse_stream(prompt, pool, judge, mode, settings, **kwargs):
        if isinstance(event, RunDone):
            result = event.result
    assert result is not None
    return result


async def _run(prompt: Prompt, members: list[Member], judge_member: Member | None, mode: Mode,
               settings: FusionSettings, emit: Emit, reuse_rounds: list[list[MemberOutput]] | None = None,
               save: Callable[[FusionResult], None] | None = None, origin: str = "", public: bool = False,
               stopped: list[str] | None = None) -> None:
    """One run, start to RunDone. Cancelled midway, it still ends with RunDone: the run marked interrupted,
    with every finished round and what each member of the round in progress had written so far."""
    t_start = time.perf_counter()
    result = FusionResult(new_run_id(), mode.name, prompt.to_dict(), [m.to_dict() for m in members],
                          judge_member.to_dict() if judge_member else None, settings, origin=origin)
    progress = _Progress(result, emit, save)
    try:
        try:
            async with asyncio.timeout(settings.timeout_s):
                await _run_steps(result, prompt, members, judge_member, mode, settings, progress.emit,
                                 reuse_rounds or [], t_start, public)
        except TimeoutError:  # the whole run's limit: recorded as interrupted, what it had kept
            progress.interrupt("timeout", f"{TIMED_OUT} ({settings.timeout_s:g} s)", time.perf_counter() - t_start)
            return
        progress.steps_done = True
        if save is not None:
            await asyncio.to_thread(save, result)  # SQLite off the event loop
        emit(RunDone(result))
    except (asyncio.CancelledError, KeyboardInterrupt):  # a drain, Stop, a client gone, Ctrl-C, SIGTERM
        kind = "shutdown" if RUNS.draining else stopped[0] if stopped else "cancelled"
        progress.interrupt(kind, STOPPED[kind], time.perf_counter() - t_start)
        raise


class _Progress:
    """Follows a run's events, so that a run cut short can still be recorded with what it had."""

    def __init__(self, result: FusionResult, emit: Emit, save: Callable[[FusionResult], None] | None):
        self.result, self._emit, self.save = result, emit, save
        self.steps_done = False  #: every step ran; only saving and RunDone were left
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

    def interrupt(self, kind: str, reason: str, total_s: float) -> None:
        """Close the record as interrupted (``kind``: one of ``STOPPED``) and emit its RunDone (which saves it, when
        a store is given)."""
        r = self.result
        if self.steps_done:  # cancelled while saving a finished run: it is whole, save it as it is
            if self.save is not None:
                self.save(r)
            self._emit(RunDone(r))
            return
        if self.round > len(r.rounds):  # a round was in progress: keep what its members had written
            r.rounds.append([self.finished.get(i) or MemberOutput(i, m["label"], self.round, False,
                                                                 self.texts.get(i, ""), reason=reason,
                                                                 kind="interrupted", finish_reason="interrupted")
                             for i, m in enumerate(r.pool)])
        r.interrupted, r.stopped = reason, kind
        r.degraded = True
        r.failure_reasons.append(f"interrupted: {reason}")
        r.total_s = total_s
        if self.save is not None:  # synchronously: the loop may be closing (a drain, Ctrl-C)
            self.save(r)
        self._emit(RunDone(r))


async def _run_steps(result: FusionResult, prompt: Prompt, members: list[Member], judge_member: Member | None,
                     mode: Mode, settings: FusionSettings, emit: Emit, reuse_rounds: list[list[MemberOutput]],
                     t_start: float, public: bool = False) -> None:
    result.noise = any(m.model.is_noise for m in members) or bool(judge_member and judge_member.model.is_noise)
    if judge_member is not None:
        result.judge_is_member = any(m.model == judge_member.model and m.persona == judge_member.persona
                                     for m in members)
    emit(RunStart(result.run_id, mode.name, [m.label for m in members], settings.rounds))
    # Load every model first (pool and judge, in parallel, off the loop) so the timeline measures generation.
    # Members are loaded only when some round is still to be generated.
    need_pool = settings.rounds > len(reuse_rounds)
    needed = (members if need_pool else []) + ([judge_member] if judge_member else [])
    ready = {m["name"] for m in loaded_models()}
    cold = list(dict.fromkeys(m.model.name for m in needed if m.model.name not in ready))
    if cold:
        emit(Loading(cold))
    loaded = await load_members(needed)
    backends = loaded[:len(members)] if need_pool else []
    judge_backend = loaded[-1] if judge_member else None
    result.load_s = time.perf_counter() - t_start
    # what produced this run: code, packages, device, each model's identity (a model that failed to load by its
    # spec; members reused from a stored run by theirs), the seed
    models = [(m.model, None if isinstance(h, Failure) else h) for m, h in zip(needed, loaded)] + \
        ([] if need_pool else [(m.model, None) for m in members])
    result.environment = await asyncio.to_thread(environment, models, settings.seed, public)
    t0 = time.perf_counter()
    config = settings.member_config()
    previous: list[MemberOutput] = []
    for r in range(1, settings.rounds + 1):
        emit(RoundStart(r))
        if r <= len(reuse_rounds):  # generated before (a stored run, an eval cache): not regenerated
            outputs = reuse_rounds[r - 1]
            for o in outputs:
                emit(MemberDone(o))
        elif r == 1:
            def messages_for(i: int, prev: list[MemberOutput] = previous):
                return prompt.messages(members[i].persona)
        else:
            def messages_for(i: int, prev: list[MemberOutput] = previous):
                return debate_messages(prompt, members[i].persona, i, prev)
        if r > len(reuse_rounds):
            outputs = await fan_out(members, backends, messages_for, config, round_no=r,
                                    timeout_s=settings.member_timeout_s, emit=emit, t0=t0,
                                    blind=settings.blind_members)
        result.rounds.append(outputs)
        previous = outputs
        stop = mode.multi_round and r < settings.rounds and agreed(outputs)
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
    # left out on purpose (the setting), not failed: a note, once per member, and the run is not degraded by it
    result.notes += list(dict.fromkeys(f"{o.label}: skipped: {o.reason}" for rnd in result.rounds for o in rnd
                                       if o.skipped))
    if result.failure_reasons:
        result.degraded = True
    if not ok and result.outputs and all(o.skipped for o in result.outputs):
        result.failure_reasons.append("no member can see the prompt's image(s) and members that cannot are "
                                      "skipped: nothing to judge (the setting 'tell' lets them answer from the text)")
    elif not ok:
        result.failure_reasons.append("all members failed: nothing to judge")
    elif len(ok) < settings.quorum:
        result.failure_reasons.append(f"quorum not met: {len(ok)} of {len(members)} answered "
                                      f"(need {settings.quorum})")
    else:
        tj = time.perf_counter()
        result.verdict = await decide(prompt, result.outputs, mode, judge_member, judge_backend, settings, emit)
        result.judge_wall_s = time.perf_counter() - tj
        _finish(result, mode)
    if not ok or len(ok) < settings.quorum:
        result.degraded = True
    result.total_s = time.perf_counter() - t_start


async def decide(prompt: Prompt, outputs: list[MemberOutput], mode: Mode, judge_member: Member | None,
                 judge_backend: ModelHandle | Failure | None, settings: FusionSettings, emit: Emit) -> Verdict:
    """Turn the answers into a Verdict: a vote, or the judge over k shuffled orderings."""
    ok = [o for o in outputs if o.ok]
    flagged = [o.member for o in ok if J.looks_like_injection(o.text)]
    if not mode.judged:
        v = vote_verdict(ok, flagged)
        emit(VerdictEvent(v))
        return v
    if isinstance(judge_backend, Failure) or judge_backend is None or judge_member is None:
        reason = judge_backend.reason if isinstance(judge_backend, Failure) else "no judge"
        v = Verdict(mode.name, valid=False, error=f"judge failed to load: {reason}")
        emit(VerdictEvent(v))
        return v
    rng = random.Random(settings.seed if settings.seed is not None else time.time_ns())
    orders = J.shuffled_orders([o.member for o in ok], settings.swap_k, rng)
    config = settings.judge_config()
    verdict = Verdict(mode.name, swap_k=len(orders), injection_flagged=flagged)
    parsed_all: list[dict | None] = []
    for n, order in enumerate(orders):
        emit(JudgeStart(n + 1, order, len(orders)))
        last, parsed, attempts, cut = await J.judge_once(
            judge_backend, judge_member, prompt, ok, order, mode, config, on_text=lambda t: emit(JudgeToken(t)),
            constrain=settings.judge_schema, answer_schema=settings.answer_schema)
        verdict.attempts += attempts
        for m, chars in cut.items():
            verdict.truncated_chars[m] = max(chars, verdict.truncated_chars.get(m, 0))
        verdict.swap_orders.append(list(order))
        parsed_all.append(parsed)
        label = dict(zip(letters(len(order)), order))
        verdict.swap_scores.append({label[k]: v for k, v in parsed["scores"].items()} if parsed else None)
    verdict.truncated = sorted(verdict.truncated_chars)
    # every ordering's verdict, combined: the pick most orderings made (ties: Borda, then mean score), or the
    # top mean score (merge); rationale and written answer from an ordering that agrees with it
    combined = J.aggregate(orders, parsed_all, mode.needs_winner, {o.member: o.text for o in ok})
    verdict.swap_winners = combined.picks
    for attempt in verdict.attempts:  # merge: the top-scored candidate of each ordering, for the record
        if attempt.valid and attempt.winner is None:
            attempt.winner = combined.picks[next(i for i, o in enumerate(orders) if o == attempt.order)]
    if combined.chosen is None:
        verdict.valid = False
        verdict.error = verdict.attempts[-1].error or "judge returned no valid verdict"
    else:
        main = parsed_all[combined.chosen]
        assert main is not None  # the chosen ordering is one that parsed
        verdict.label_map = dict(zip(letters(len(orders[combined.chosen])), orders[combined.chosen]))
        verdict.scores = combined.scores
        verdict.rationale = main["rationale"]
        verdict.answer = main.get("answer", "")
        if mode.needs_winner:
            verdict.winner = combined.winner
    if len(orders) > 1:
        verdict.swap_method = combined.method
        verdict.swap_agreement, verdict.swap_outcome = combined.agreement, combined.outcome
        verdict.swap_tie_broken_by = combined.tie_broken_by
    mark_tie(verdict, {o.member: o.text for o in ok})  # equal scores or split picks: said, with the rule
    emit(VerdictEvent(verdict))
    return verdict


def member_failures(rounds: list[list[MemberOutput]]) -> list[str]:
    """One line per failed member answer, in round and pool order (a member skipped on purpose did not fail)."""
    return [f"{o.label} (round {o.round}): {o.kind}: {o.reason}" for rnd in rounds for o in rnd
            if not o.ok and not o.skipped]


def _finish(result: FusionResult, mode: Mode) -> None:
    """Set the final answer from the verdict (the mode's rule), with a recorded fallback when the judge failed."""
    v = result.verdict
    if v is not None and v.valid:
        result.final_answer = mode.final_answer(v, result.outputs)
        _check_answer_format(result)
        return
    first_ok = next(o for o in result.outputs if o.ok)
    result.final_answer = first_ok.text
    result.degraded = True
    result.failure_reasons.append(f"{v.error if v else 'no verdict'}; fell back to the first answer "
                                  f"({first_ok.label})")


def _check_answer_format(result: FusionResult) -> None:
    """Note a final answer that is not the JSON the run's ``answer_schema`` asked for (what it says is kept)."""
    if result.settings.answer_schema is None:
        return
    import json

    try:
        json.loads(result.final_answer)
    except ValueError:
        result.notes.append("the final answer is not valid JSON, though the request asked for JSON "
                            "(response_format)")


async def rejudge(result: FusionResult, judge: str | Member | None = None, mode: str | Mode | None = None,
                  images: Sequence = (), swap_k: int | None = None, seed: int | None = None, *,
                  context: RunContext | None = None, registry: Registry | None = None) -> FusionResult:
    """Judge a finished run again, with another judge or mode, without regenerating any member's answer.

    Args:
        result: the run to re-judge (from ``fuse`` or ``RunStore.load``).
        judge: the new judge (default: the run's judge).
        mode: "best-of", "merge" or "vote" (debate needs new rounds: run ``fuse`` again).
        images: the prompt's images (``RunStore.images(run_id)``), shown to the judge.
        swap_k, seed: change these settings for the new judging (default: the run's).
        context: as for ``fuse_stream``: the judge and the settings are checked against its policy, the run counts
            against its quota, and the new run is saved in its store (with ``images``) when it has one.
        registry: a shorthand that replaces the context's.
    """
    context = with_shorthands(context, registry=registry)
    registry, policy = context.resolved_registry(), context.policy
    mode = get_mode(mode or result.mode)
    if mode.multi_round and result.mode != mode.name:
        raise ConfigError(f"re-judging as {mode.name} needs new rounds of answers: run fuse with mode={mode.name!r}")
    if judge is None and result.judge:
        judge = Member.from_dict(result.judge)
    prompt = Prompt(result.prompt["text"], images=list(images), system=result.prompt.get("system"),
                    history=result.prompt.get("history") or ())
    judge_member = _member(judge, registry) if mode.judged and judge is not None else None
    if mode.judged and judge_member is None:
        raise ConfigError(f"mode {mode.name} needs a judge")
    # Every round is reused, so the shared core loads and runs only the judge.
    settings = result.settings.replace(rounds=len(result.rounds), swap_k=swap_k or result.settings.swap_k,
                                       seed=seed if seed is not None else result.settings.seed)
    done: list[FusionResult] = []
    members = [Member.from_dict(p) for p in result.pool]
    if policy is not None:
        await asyncio.to_thread(policy.check_run, prompt, [], judge_member, settings)
        settings = policy.fit(settings)
    await context.tracked(_run(prompt, members, judge_member, mode, settings,
                               lambda e: done.append(e.result) if isinstance(e, RunDone) else None,
                               reuse_rounds=result.rounds, public=context.public), f"re-judging {result.run_id}")
    new = done[0]
    new.prompt, new.parent_run_id, new.stopped_early = result.prompt, result.run_id, result.stopped_early
    new.origin = result.origin
    new.pool_wall_s = result.pool_wall_s
    new.total_s = new.pool_wall_s + new.judge_wall_s
    if context.store is not None:
        await asyncio.to_thread(context.store.save, new, list(images), context.owner)
    return new
