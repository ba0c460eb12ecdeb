"""What a fusion run records: member outputs, rounds, judge attempts, the verdict, the result.

A FusionResult holds everything needed to replay or re-judge a run: specs (key variable names, never
keys), settings, the prompt with images by hash, every member output of every round, timings and the
verdict. ``to_dict`` / ``from_dict`` are the store's and the exports' format. The events a run streams
while it runs are in ``workbench.events``.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from .answers import sum_known
from .settings import FusionSettings
from .types import decode_rate

#: Version of the FusionResult dict format (bump with a migration in storage/migrations.py).
RECORD_VERSION = 1

#: why a run stopped before it finished (``FusionResult.stopped``), and the words recorded with it
STOPPED = {
    "timeout": "timed out: the run's time limit passed",
    "shutdown": "the server shut down before the run finished",
    "cancelled": "stopped before it finished (cancelled)",
    "client_gone": "the client went away before the run finished",
}
#: ``MemberOutput.kind`` of a member left out of an image prompt because it cannot see images
#: (``FusionSettings.blind_members == "skip"``): not called, not a judge candidate, not a failure of the run
NO_VISION = "no-vision"


@dataclass
class MemberOutput:
    """One member's answer in one round."""

    member: int  #: index in the pool
    label: str  #: the member's display name
    round: int  #: 1 for the pool phase; 2.. for debate rounds
    ok: bool  #: answered, or failed
    text: str = ""  #: the answer (partial text for failures)
    reason: str = ""  #: why it failed
    kind: str = ""  #: failure kind: timeout, rate_limit, server, connection, config, input, cancelled...
    ttft_s: float | None = None  #: seconds to first token
    latency_s: float = 0.0  #: seconds for the whole answer
    start_s: float = 0.0  #: seconds from run start to the request
    end_s: float = 0.0  #: seconds from run start to the last token
    prompt_tokens: int = 0  #: tokens read
    completion_tokens: int = 0  #: tokens written
    cost_usd: float | None = None  #: cost, when known
    finish_reason: str = ""  #: stop, length, cancelled...
    notes: list[str] = field(default_factory=list)  #: e.g. images dropped for a text-only member
    #: the prompt had images: this member was shown them (True) or cannot see images (False); None: no image
    saw_images: bool | None = None

    @property
    def skipped(self) -> bool:
        """Left out on purpose (a text-only member and an image prompt), not failed."""
        return not self.ok and self.kind == NO_VISION

    @property
    def status(self) -> str:
        """"" for an answer, else "skipped" or "failed (kind)": what every view shows before ``reason``."""
        return "" if self.ok else "skipped" if self.skipped else f"failed ({self.kind})"

    @property
    def tokens_per_s(self) -> float | None:
        """Decode rate after the first token (None when too short to measure)."""
        return decode_rate(self.completion_tokens, self.ttft_s, self.latency_s)


@dataclass
class JudgeAttempt:
    """One call to the judge: what it saw (order), what it said, whether that parsed."""

    order: list[int]  #: member indices in the order shown as A, B, C...
    raw: str  #: the judge's full reply
    valid: bool  #: it parsed and passed the schema
    error: str = ""  #: why it did not
    winner: int | None = None  #: member index picked (best-of / debate)
    latency_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None


@dataclass
class Verdict:
    """How the answers became one."""

    mode: str  #: best-of, merge, debate, vote
    winner: int | None = None  #: member index of the chosen answer (best-of, debate, vote)
    scores: dict[int, float] = field(default_factory=dict)  #: member index -> score 0..10
    rationale: str = ""  #: the judge's reasoning
    answer: str = ""  #: the final answer
    label_map: dict[str, int] = field(default_factory=dict)  #: anonymized label -> member index (first attempt)
    attempts: list[JudgeAttempt] = field(default_factory=list)  #: every judge call, retries included
    valid: bool = True  #: the judge produced a schema-valid verdict
    error: str = ""  #: why not
    truncated: list[int] = field(default_factory=list)  #: members whose text was cut for the judge
    truncated_chars: dict[int, int] = field(default_factory=dict)  #: member index -> characters cut from the middle
    swap_k: int = 0  #: orderings judged (position correction and the position-bias check)
    swap_orders: list[list[int]] = field(default_factory=list)  #: member indices shown as A, B... per ordering
    swap_winners: list[int | None] = field(default_factory=list)  #: each ordering's pick (None: no valid reply)
    swap_scores: list[dict[int, float] | None] = field(default_factory=list)  #: each ordering's scores (None: no valid reply)
    swap_method: str = ""  #: how the orderings were combined: "borda" (a winner), "mean score" (merge)
    swap_tie_broken_by: str = ""  #: what settled a tie between the orderings' picks: borda, mean score, pool order
    swap_agreement: float | None = None  #: share of orderings whose pick agrees with the corrected winner
    swap_outcome: str = ""  #: consistent, inconsistent, tie; "invalid" when no ordering gave a valid verdict
    votes: dict[str, int] = field(default_factory=dict)  #: vote mode: extracted answer -> count
    extracted: dict[int, str] = field(default_factory=dict)  #: vote mode: member index -> extracted answer
    injection_flagged: list[int] = field(default_factory=list)  #: members whose text addresses the judge
    #: members sharing the top, one per distinct answer (best-of, debate: the winner's (mean) score; vote: the top
    #: count), the winner among them; [] when one answer led alone (see ``mark_tie``)
    tied: list[int] = field(default_factory=list)
    tie_broken_by: str = ""  #: the rule that chose the winner among ``tied``, in words
    majority: bool | None = None  #: vote: the winning answer had more than half the votes; None: not a vote

    @property
    def tie(self) -> bool:
        """Several answers shared the top: the winner was chosen by ``tie_broken_by``, not by the verdict."""
        return len(self.tied) > 1

    @property
    def winner_note(self) -> str:
        """A few words to put beside the winner's name in a list: "tie of 4", "tie of 4, no majority",
        "no majority" or ""."""
        return ", ".join(([f"tie of {len(self.tied)}"] if self.tie else [])
                         + (["no majority"] if self.majority is False else []))

    @property
    def swap_parsed(self) -> int:
        """How many orderings gave a valid verdict (records from before scores were kept: orderings with a pick)."""
        if not self.swap_scores:
            return sum(w is not None for w in self.swap_winners)
        return sum(s is not None for s in self.swap_scores)


#: What settled a split between orderings' picks (``judge.aggregate``), in words
_SWAP_RULES = {"borda": "the Borda count over the orderings' rankings (each one's pick first, then by score)",
               "mean score": "the mean score over the orderings", "pool order": "pool order (the member listed first)"}
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")


def mark_tie(v: Verdict, texts: dict[int, str]) -> Verdict:
    """Fill ``v.tied``, ``v.tie_broken_by`` and, for a vote, ``v.majority`` from what the verdict holds.

    ``texts``: member -> answer; members whose answers are word for word the same count as one answer.
    Best-of and debate: several answers at the winner's (mean) score, which is the top one; over several
    orderings also several answers picked equally often (the orderings split, a rule chose). Vote: several
    answers with the top count. Merge (no winner) and an invalid verdict have no tie.
    """
    v.tied, v.tie_broken_by, v.majority = [], "", None
    if not v.valid or v.winner is None:
        return v
    if v.mode == "vote":
        most, cast = max(v.votes.values(), default=0), sum(v.votes.values())
        v.majority = 2 * most > cast
        answers = [a for a, c in v.votes.items() if c == most]
        if len(answers) > 1:
            v.tied = sorted(min(m for m, a in v.extracted.items() if a == lead) for lead in answers)
            v.tie_broken_by = "pool order: the answer given first"
        return v
    picks = [p for p in v.swap_winners if p is not None]
    same = {m: texts.get(m, str(m)).strip() for m in {*v.scores, *picks, v.winner}}

    def one_per_answer(members: list[int]) -> list[int]:  # the winner stands for its answer, else the first member
        firsts: dict[str, int] = {}
        for m in sorted(members, key=lambda m: (m != v.winner, m)):
            firsts.setdefault(same[m], m)
        return sorted(firsts.values())

    if v.swap_tie_broken_by:  # the orderings split their picks evenly; a rule chose among the most picked
        counts = Counter(same[p] for p in picks)
        leaders = one_per_answer([p for p in picks if counts[same[p]] == counts[same[v.winner]]])
        rule = _SWAP_RULES.get(v.swap_tie_broken_by, v.swap_tie_broken_by)
    else:
        top = max(v.scores.values(), default=None)
        if top is None or v.scores.get(v.winner) != top:
            return v
        leaders = one_per_answer([m for m, s in v.scores.items() if s == top])
        if v.swap_method:  # several orderings whose picks did not split: the answer picked most often won
            n = sum(same[p] == same[v.winner] for p in picks)
            rule = f"the judge's picks: it named this answer in {n} of {v.swap_parsed} orderings"
        else:  # one ordering: the judge named one of the equal candidates, which says where it stood
            shown = list(v.label_map)
            label = next((lbl for lbl, m in v.label_map.items() if m == v.winner), "")
            where = f"shown {_ORDINALS[shown.index(label)]}, as {label}" if label and shown.index(label) < 10 \
                else f"shown as {label or '?'}"
            rule = f"the judge's own pick among equal scores (it named the candidate {where})"
    if len(leaders) > 1:
        v.tied, v.tie_broken_by = leaders, rule
    return v


@dataclass
class FusionResult:
    """A whole fusion run."""

    run_id: str
    mode: str
    prompt: dict[str, Any]  #: Prompt.to_dict(): text, system, images by hash
    pool: list[dict[str, Any]]  #: Member.to_dict() per member
    judge: dict[str, Any] | None  #: the judge Member.to_dict(); None for vote
    settings: FusionSettings  #: every knob of the run: generation, rounds, quorum, timeouts, seed, swap_k
    rounds: list[list[MemberOutput]] = field(default_factory=list)  #: rounds[0] is the pool phase
    verdict: Verdict | None = None
    final_answer: str = ""  #: what fusion answers
    degraded: bool = False  #: some member or the judge failed, or the answer is a fallback
    failure_reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    judge_is_member: bool = False  #: the judge's model and persona also sit in the pool
    stopped_early: int | None = None  #: debate: the round after which answers agreed
    created_at: float = field(default_factory=time.time)
    load_s: float = 0.0  #: wall time to load the models (before any generation)
    pool_wall_s: float = 0.0  #: wall time of all rounds
    judge_wall_s: float = 0.0  #: wall time of judging
    total_s: float = 0.0
    parent_run_id: str | None = None  #: set when this run re-judged another
    noise: bool = False  #: a random-weight model took part: the text means nothing
    interrupted: str = ""  #: why the run stopped before it finished, in words; "" if it finished
    stopped: str = ""  #: why, as a kind: one of ``STOPPED`` ("" if it finished)
    origin: str = ""  #: where the run came from: "page", "api", "cli", "notebook"... ("" for older records)
    environment: dict[str, Any] = field(default_factory=dict)  #: provenance.environment(): code, packages, device,
    #: models, seed ({} for records from before it was kept)
    version: int = RECORD_VERSION

    @property
    def outputs(self) -> list[MemberOutput]:
        """The last round's outputs (what the judge saw)."""
        return self.rounds[-1] if self.rounds else []

    @property
    def slowest_member_s(self) -> float:
        return max((o.latency_s for o in self.rounds[0]), default=0.0) if self.rounds else 0.0

    @property
    def total_tokens(self) -> int:
        members = sum(o.prompt_tokens + o.completion_tokens for r in self.rounds for o in r)
        judge = sum(a.prompt_tokens + a.completion_tokens for a in (self.verdict.attempts if self.verdict else []))
        return members + judge

    @property
    def total_cost_usd(self) -> float | None:
        return sum_known([o.cost_usd for r in self.rounds for o in r]
                         + [a.cost_usd for a in (self.verdict.attempts if self.verdict else [])])

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["slowest_member_s"] = self.slowest_member_s
        d["total_tokens"] = self.total_tokens
        d["total_cost_usd"] = self.total_cost_usd
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FusionResult:
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        d["settings"] = FusionSettings.from_dict(d.get("settings"))
        images = bool((d.get("prompt") or {}).get("images"))
        d["rounds"] = [[_member_output(o, images) for o in r] for r in d.get("rounds", [])]
        v = d.get("verdict")
        if v is not None:
            v = dict(v)
            v["attempts"] = [JudgeAttempt(**a) for a in v.get("attempts", [])]
            for key in ("scores", "extracted", "truncated_chars"):  # JSON turns int keys into strings
                v[key] = {int(k): val for k, val in v.get(key, {}).items()}
            v["swap_scores"] = [None if s is None else {int(k): val for k, val in s.items()}
                                for s in v.get("swap_scores", [])]
            verdict = d["verdict"] = Verdict(**v)
            if "tied" not in v:  # stored before ties were recorded: found now from what the verdict kept
                mark_tie(verdict, {o.member: o.text for o in (d["rounds"][-1] if d["rounds"] else [])})
        if d.get("interrupted") and not d.get("stopped"):  # stored before the kind was kept: from the words
            d["stopped"] = next((k for k, words in STOPPED.items() if d["interrupted"].startswith(words)),
                                "cancelled")
        return cls(**d)


def _member_output(o: dict[str, Any], images: bool) -> MemberOutput:
    out = MemberOutput(**o)
    if images and "saw_images" not in o:  # stored before it was kept: a text-only member had its images dropped
        out.saw_images = not any(n.startswith("images dropped") for n in out.notes)
    return out


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]
