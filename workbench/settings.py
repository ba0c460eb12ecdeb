"""FusionSettings: every knob of one fusion run, in one frozen, documented object, validated in one place.

The engine, ``rejudge``, the evaluation harness, the CLI, the UI and the stored record all pass this
object; ``fuse(..., max_new_tokens=64)`` keyword arguments are sugar for ``FusionSettings(max_new_tokens=64)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, Unpack

from .errors import ConfigError
from .types import GenerateConfig

#: the choices of ``FusionSettings.blind_members``
BLIND_MEMBERS = ("skip", "tell")


@dataclass(frozen=True)
class FusionSettings:
    """How one fusion run generates, judges and gives up. Members may override the generation fields."""

    max_new_tokens: int = 256  #: each member's answer limit, per round
    min_new_tokens: int = 0  #: local members only: no end of text before this many tokens (fixed-length benchmarks)
    temperature: float = 0.7  #: members' sampling temperature (0 = greedy)
    top_p: float = 1.0  #: members' nucleus sampling
    seed: int | None = None  #: seeds sampling and the judge's candidate order (None: a fresh one each run)
    rounds: int = 2  #: debate rounds (1 = no exchange); other modes run one round
    member_timeout_s: float = 300.0  #: per member, per round
    judge_timeout_s: float = 300.0  #: per judge call
    timeout_s: float | None = None  #: the whole run; past it the run stops and is recorded as timed out (None: none)
    quorum: int = 1  #: members that must answer for the run to go on to judging
    swap_k: int = 1  #: judge k orderings of the candidates (position-bias check); 1 = one ordering
    judge_max_new_tokens: int | None = None  #: the judge's limit (None: max(512, max_new_tokens))
    #: the judge's reply is constrained to the verdict's JSON schema (local judges decode under it; endpoints get
    #: ``response_format`` where they accept it); False: prompt, validate and retry only
    judge_schema: bool = True
    #: the final answer must be JSON matching this schema (an API client's ``response_format``): members decode
    #: under it where they can (their answers are the candidates), a judge that writes the answer is told so,
    #: and a final answer that is not JSON is noted on the run; None: free text
    answer_schema: dict[str, Any] | None = None
    #: what a member that cannot see images does with an image prompt: "skip" (not called; shown as skipped, not a
    #: judge candidate) or "tell" (called with the text and a plain statement that an image it cannot see was
    #: attached, so it answers from the text alone and says so)
    blind_members: Literal["skip", "tell"] = "skip"

    def __post_init__(self) -> None:
        checks = [(self.max_new_tokens >= 1, "max_new_tokens must be at least 1"),
                  (self.min_new_tokens >= 0, "min_new_tokens cannot be negative"),
                  (self.temperature >= 0, "temperature cannot be negative"),
                  (0 < self.top_p <= 1, "top_p must be in (0, 1]"),
                  (self.rounds >= 1, "rounds must be at least 1"),
                  (self.member_timeout_s > 0 and self.judge_timeout_s > 0 and (self.timeout_s or 1) > 0,
                   "timeouts must be positive"),
                  (self.quorum >= 1, "quorum must be at least 1"),
                  (self.swap_k >= 1, "swap_k must be at least 1"),
                  (self.judge_max_new_tokens is None or self.judge_max_new_tokens >= 1,
                   "judge_max_new_tokens must be at least 1"),
                  (self.answer_schema is None or isinstance(self.answer_schema, dict),
                   "answer_schema must be a JSON schema (a dict)"),
                  (self.blind_members in BLIND_MEMBERS, f"blind_members must be one of {', '.join(BLIND_MEMBERS)}")]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"{message} (got {self!r})")

    @property
    def judge_tokens(self) -> int:
        """The judge's token limit, resolved."""
        return self.judge_max_new_tokens or max(512, self.max_new_tokens)

    def replace(self, **changes: Any) -> FusionSettings:
        """A copy with ``changes`` (validated again)."""
        unknown = set(changes) - set(self.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown setting(s) {sorted(unknown)}: FusionSettings has "
                              f"{', '.join(self.__dataclass_fields__)}")
        return dataclasses.replace(self, **changes)

    def member_config(self) -> GenerateConfig:
        """Members' generation settings (each member may override its own)."""
        return GenerateConfig(max_new_tokens=self.max_new_tokens, min_new_tokens=self.min_new_tokens,
                              temperature=self.temperature, top_p=self.top_p, seed=self.seed,
                              json_schema=self.answer_schema)

    def judge_config(self) -> GenerateConfig:
        """The judge's: greedy, its own limit and timeout."""
        return GenerateConfig(max_new_tokens=self.judge_tokens, temperature=0.0, timeout_s=self.judge_timeout_s,
                              seed=self.seed)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> FusionSettings:
        """From a stored record (unknown keys from other versions are ignored)."""
        return cls(**{k: v for k, v in (d or {}).items() if k in cls.__dataclass_fields__})

    @classmethod
    def build(cls, settings: FusionSettings | None = None,
              **overrides: Unpack[SettingsOverrides]) -> FusionSettings:
        """``settings`` (default: the defaults) with keyword overrides: how ``fuse(**kwargs)`` is read."""
        return (settings or cls()).replace(**overrides) if overrides else (settings or cls())


class SettingsOverrides(TypedDict, total=False):
    """``FusionSettings``' fields as keyword arguments (``fuse(..., max_new_tokens=64)``): with ``Unpack`` in a
    signature, a type checker catches ``fuse(..., round=3)``; ``tests/test_settings.py`` keeps it the twin of
    ``FusionSettings`` (same names, same types)."""

    max_new_tokens: int
    min_new_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    rounds: int
    member_timeout_s: float
    judge_timeout_s: float
    timeout_s: float | None
    quorum: int
    swap_k: int
    judge_max_new_tokens: int | None
    judge_schema: bool
    answer_schema: dict[str, Any] | None
    blind_members: Literal["skip", "tell"]
