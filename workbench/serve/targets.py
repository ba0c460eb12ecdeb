"""What a request's model name runs on this server: its fused models (``[fusions.NAME]``) and plain models, the
``/models`` listing, and the check a server makes of its fused models when it starts."""

from __future__ import annotations

from typing import Any

from ..availability import Availability, availability, of_fusion
from ..errors import ConfigError, WorkbenchError
from ..fusion.modes import Mode, get_mode
from ..policy import Policy
from ..settings import FusionSettings
from ..specs import FusionSpec, Registry
from . import protocol as P


def check_fusions(registry: Registry) -> None:
    """Every fused model's members and judge resolve and its settings are valid (a server checks at start).

    Raises:
        ConfigError: naming the fused model and what is wrong with it.
    """
    for f in registry.fusions.values():
        try:
            mode = get_mode(f.mode)
            for m in f.pool:
                registry.member(m)
            if mode.judged and not f.judge:
                raise ConfigError(f"mode {f.mode} needs a judge")
            if f.judge:
                registry.member(f.judge)
            FusionSettings(**f.settings)
        except ConfigError as exc:
            raise ConfigError(f"fused model {f.name!r}: {exc}") from None


def usable(policy: Policy, names: list[str]) -> bool:
    """Whether callers here may use every model named (public mode: only the host's, downloaded ones)."""
    try:
        for n in names:
            policy.member(n)
    except WorkbenchError:
        return False
    return True


def model_rows(policy: Policy) -> list[dict[str, Any]]:
    """The ``/models`` list: OpenAI's model objects, with the extension fields ``fusion`` or ``workbench``, and
    ``availability`` (``workbench.availability``: whether it can run here, and why not)."""
    reg = policy.registry
    rows = []
    for f in reg.fusions.values():
        if usable(policy, [*f.pool, *([f.judge] if f.judge else [])]):
            rows.append({"id": f.name, "object": "model", "created": 0, "owned_by": "workbench-fusion",
                         "fusion": f.to_dict(), "availability": of_fusion(f, reg, policy.public).to_dict()})
    for spec in reg.models.values():
        if usable(policy, [spec.name]):
            rows.append({"id": spec.name, "object": "model", "created": 0, "owned_by": f"workbench-{spec.backend}",
                         "workbench": {"backend": spec.backend, "vision": spec.vision, "noise": spec.is_noise,
                                       "description": spec.description},
                         "availability": availability(spec, policy.public).to_dict()})
    return rows


class Target:
    """What a request's model name runs: a fused model, or one plain model (a pool of one, no judge)."""

    def __init__(self, name: str, policy: Policy):
        self.name = name
        self.fusion: FusionSpec | None = policy.registry.fusions.get(name)
        if self.fusion is None and name not in policy.registry.models:
            if policy.public or not usable(policy, [name]):
                raise P.APIError(404, f"the model {name!r} does not exist on this server; GET /v1/models lists "
                                      "them", "model_not_found", "model")
        self.mode: Mode = get_mode(self.fusion.mode if self.fusion else "vote")
        self._check_available(policy)

    def availability(self, policy: Policy) -> Availability | None:
        """Whether this target can run here (None: its name does not resolve; the run says why)."""
        reg = policy.registry
        if self.fusion is not None:
            return of_fusion(self.fusion, reg, policy.public)
        try:
            spec = reg.models.get(self.name) or reg.resolve(self.name)
        except WorkbenchError:
            return None
        return availability(spec, policy.public)

    def _check_available(self, policy: Policy) -> None:
        """A model that cannot run here is refused at once, saying why (nothing is loaded or downloaded)."""
        a = self.availability(policy)
        if a is not None and not a.runnable:
            raise P.APIError(400, f"the model {self.name!r} cannot run on this server: {a.reason} (GET /v1/models "
                                  "says what can)", "model_not_available", "model")

    @property
    def plain(self) -> bool:
        return self.fusion is None

    def call(self) -> tuple[list[str], str | None, str]:
        if self.fusion is None:
            return [self.name], None, "vote"
        return list(self.fusion.pool), self.fusion.judge, self.fusion.mode

    def settings(self, req: P.ChatRequest, policy: Policy) -> FusionSettings:
        f = self.fusion
        base = FusionSettings(**(f.settings if f else {}))
        cap = min(policy.limits.max_new_tokens, f.max_tokens or policy.limits.max_new_tokens) if f else \
            policy.limits.max_new_tokens
        if req.limit is not None and req.limit > cap:
            raise P.APIError(400, f"max_tokens {req.limit} is over this model's limit of {cap}", "invalid_value",
                             "max_tokens")
        changes: dict[str, Any] = {"answer_schema": P.answer_schema(req.response_format)}
        if req.limit is None and base.max_new_tokens > cap:  # the default, within this server's limit
            changes["max_new_tokens"] = cap
        for key, value in (("max_new_tokens", req.limit), ("temperature", req.temperature), ("top_p", req.top_p),
                           ("seed", req.seed), ("timeout_s", f.timeout_s if f else None),
                           ("blind_members", (req.fusion or {}).get("blind_members"))):
            if value is not None:
                changes[key] = value
        if self.plain:
            changes["rounds"] = 1
        return base.replace(**changes)
