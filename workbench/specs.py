"""Model specs, members and pools; presets shipped with the package and a user file merged on top."""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError, UnknownModelError

#: URL prefixes accepted in model names: ``openrouter:vendor/model`` and friends.
ENDPOINT_SCHEMES = {
    "openrouter": ("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "openai": ("https://api.openai.com/v1", "OPENAI_API_KEY"),
    "vllm": ("http://localhost:8000/v1", None),
    "ollama": ("http://localhost:11434/v1", None),
    "llamacpp": ("http://localhost:8080/v1", None),
}

#: Modules kept in bf16 when a Llama 4 model is loaded in INT4.
DEFAULT_SKIP_MODULES = ("vision_model", "multi_modal_projector", "router", "lm_head")


@dataclass(frozen=True)
class ModelSpec:
    """How to reach one model."""

    name: str  #: the name users type
    backend: Literal["local", "openai", "tiny"]  #: which backend serves it
    model: str  #: HF id or local path (local), model name (openai), variant (tiny)
    quant: Literal["int4", "none"] = "none"  #: weight quantization for local models
    base_url: str | None = None  #: OpenAI-compatible endpoint
    api_key_env: str | None = None  #: name of the environment variable holding the key (never the key)
    vision: bool | None = None  #: takes images; None = find out when loaded
    dtype: str = "bfloat16"  #: compute dtype of local models
    max_memory: dict[str, str] | None = None  #: accelerate's per-device limits, e.g. {"0": "70GiB", "cpu": "200GiB"}
    skip_modules: tuple[str, ...] = DEFAULT_SKIP_MODULES  #: kept out of INT4
    context_length: int | None = None  #: max prompt + output tokens, when known
    price_in_per_m: float | None = None  #: USD per million prompt tokens, for cost when the API reports none
    price_out_per_m: float | None = None  #: USD per million completion tokens
    description: str = ""  #: one line for listings
    untrusted: bool = False  #: an endpoint a caller typed (public mode): called without redirects, host headers or private addresses
    #: a host's model serving a public server's visitors: its failures are told without the host's URLs, key
    #: variables or paths (the host's log has them), and records leave them out (``Policy.member`` sets it)
    private: bool = False

    @property
    def is_noise(self) -> bool:
        """True for random-weight models whose output means nothing."""
        return self.backend == "tiny"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (holds the key's variable name, never a key)."""
        d = asdict(self)
        d["skip_modules"] = list(self.skip_modules)
        if self.private:  # the host's setup stays on the host
            d.update(base_url=None, api_key_env=None, max_memory=None)
            if self.backend == "local":
                d["model"] = public_model_name(self.model)
        return d


def public_model_name(model: str) -> str:
    """A local model's name as a visitor may see it: a Hub id as is, a host path by its last folder only."""
    from pathlib import Path

    looks_like_path = model.startswith(("/", ".", "~")) or "\\" in model or model.count("/") > 1
    return Path(model).name if looks_like_path else model


@dataclass(frozen=True)
class Member:
    """A pool member: a model plus a role."""

    model: ModelSpec  #: what generates
    persona: str | None = None  #: system prompt
    persona_name: str | None = None  #: short name of the persona, if it came from the table
    temperature: float | None = None  #: overrides the run's temperature
    top_p: float | None = None  #: overrides the run's top_p
    max_new_tokens: int | None = None  #: overrides the run's limit
    display_name: str = ""  #: shown in the UI and records

    @property
    def label(self) -> str:
        """The member's name for display."""
        if self.display_name:
            return self.display_name
        return f"{self.model.name}:{self.persona_name}" if self.persona_name else self.model.name

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        d = asdict(self)
        d["model"] = self.model.to_dict()
        d["label"] = self.label
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Member:
        """Inverse of ``to_dict`` (for re-judging stored runs)."""
        model = dict(d["model"])
        model["skip_modules"] = tuple(model.get("skip_modules", DEFAULT_SKIP_MODULES))
        fields = {k: v for k, v in d.items() if k in cls.__dataclass_fields__ and k != "model"}
        return cls(ModelSpec(**{k: v for k, v in model.items() if k in ModelSpec.__dataclass_fields__}), **fields)


#: The settings a ``[fusions.NAME]`` table may fix (``FusionSettings`` fields), beside pool / judge / mode / limits.
FUSION_SETTINGS = ("rounds", "swap_k", "quorum", "temperature", "top_p", "max_new_tokens", "judge_max_new_tokens",
                   "member_timeout_s", "judge_timeout_s", "judge_schema")


@dataclass(frozen=True)
class FusionSpec:
    """A fused model served as one name by ``workbench serve``: a ``[fusions.NAME]`` table of the models file.

    A request's ``max_tokens``, ``temperature`` and ``seed`` apply on top of ``settings``, within the limits.
    """

    name: str  #: the model name clients ask for
    pool: tuple[str, ...]  #: members as ``model[:persona]``
    judge: str | None = None  #: the judge model (None only for mode "vote")
    mode: str = "best-of"  #: best-of, merge, debate, vote
    settings: dict[str, Any] = field(default_factory=dict)  #: FusionSettings fields the host fixes (rounds, swap_k...)
    max_tokens: int | None = None  #: limit: the most ``max_tokens`` a request may ask for (None: the server's limit)
    timeout_s: float | None = None  #: limit: seconds a whole request may take before it is cancelled (504)
    description: str = ""  #: one line for ``/v1/models``

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (as ``/v1/models`` shows it)."""
        return {"pool": list(self.pool), "judge": self.judge, "mode": self.mode, "settings": dict(self.settings),
                "max_tokens": self.max_tokens, "timeout_s": self.timeout_s, "description": self.description}


@dataclass
class Registry:
    """Every model, persona and fused model known: shipped presets, then the user file on top."""

    models: dict[str, ModelSpec] = field(default_factory=dict)
    personas: dict[str, str] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    fusions: dict[str, FusionSpec] = field(default_factory=dict)

    def add_toml(self, text: str, source: str) -> None:
        """Merge a TOML document of ``[models.NAME]`` and ``[personas]`` tables."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from None
        for name, table in (data.get("models") or {}).items():
            self.models[name] = _spec_from_table(name, table, source)
        for name, text_ in (data.get("personas") or {}).items():
            if not isinstance(text_, str):
                raise ConfigError(f"{source}: persona {name!r} must be a string")
            self.personas[name] = text_
        for name, table in (data.get("fusions") or {}).items():
            self.fusions[name] = _fusion_from_table(name, table, source)
        self.sources.append(source)

    def resolve(self, name: str) -> ModelSpec:
        """A ModelSpec for a preset name, ``scheme:model``, a local checkpoint directory or an HF id.

        Raises:
            UnknownModelError: nothing matches; the message lists the presets.
        """
        name = name.strip()
        if not name:
            raise UnknownModelError("no model named: " + self._known())
        if name in self.models:
            return self.models[name]
        scheme, sep, rest = name.partition(":")
        if sep and scheme in ENDPOINT_SCHEMES and rest:
            base_url, key_env = ENDPOINT_SCHEMES[scheme]
            return ModelSpec(name=name, backend="openai", model=rest, base_url=base_url, api_key_env=key_env)
        path = Path(name).expanduser()
        if path.exists():
            if not path.is_dir():
                raise UnknownModelError(f"{name} is a file, not a checkpoint directory")
            return ModelSpec(name=name, backend="local", model=str(path.resolve()))
        if name.count("/") == 1 and not name.startswith((".", "/", "~")) and " " not in name:
            return ModelSpec(name=name, backend="local", model=name)
        raise UnknownModelError(f"unknown model {name!r}. {self._known()}")

    def member(self, text: str) -> Member:
        """Parse ``model[:persona]`` (``scout-int4:skeptic``) into a Member."""
        text = text.strip()
        head, sep, tail = text.rpartition(":")
        if sep and tail in self.personas and head:
            return Member(self.resolve(head), persona=self.personas[tail], persona_name=tail)
        return Member(self.resolve(text))

    def _known(self) -> str:
        return (
            "Known presets: " + ", ".join(sorted(self.models))
            + ". Also accepted: a Hugging Face id (org/name), a local checkpoint directory, or "
            + ", ".join(f"{s}:MODEL" for s in ENDPOINT_SCHEMES) + "."
        )


def _spec_from_table(name: str, table: dict[str, Any], source: str) -> ModelSpec:
    fields = set(ModelSpec.__dataclass_fields__) - {"name"}
    unknown = set(table) - fields
    if unknown:
        raise ConfigError(f"{source}: model {name!r} has unknown keys {sorted(unknown)}; allowed: {sorted(fields)}")
    if table.get("backend") not in ("local", "openai", "tiny"):
        raise ConfigError(f"{source}: model {name!r} needs backend = \"local\", \"openai\" or \"tiny\"")
    if "model" not in table:
        raise ConfigError(f"{source}: model {name!r} needs a `model` key")
    if table.get("quant", "none") not in ("int4", "none"):
        raise ConfigError(f"{source}: model {name!r}: quant must be \"int4\" or \"none\"")
    if "skip_modules" in table:
        table = {**table, "skip_modules": tuple(table["skip_modules"])}
    return ModelSpec(name=name, **table)


def _fusion_from_table(name: str, table: dict[str, Any], source: str) -> FusionSpec:
    where = f"{source}: fused model {name!r}"
    allowed = {"pool", "judge", "mode", "max_tokens", "timeout_s", "description", *FUSION_SETTINGS}
    unknown = set(table) - allowed
    if unknown:
        raise ConfigError(f"{where} has unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    pool = table.get("pool")
    if not isinstance(pool, list) or not pool or not all(isinstance(p, str) and p.strip() for p in pool):
        raise ConfigError(f"{where} needs pool = [\"model[:persona]\", ...] with at least one member")
    if ":" in name or "/" in name or not name.strip():
        raise ConfigError(f"{where}: a fused model's name has no ':' or '/'")
    judge = table.get("judge")
    if judge is not None and (not isinstance(judge, str) or not judge.strip()):
        raise ConfigError(f"{where}: judge must be a model name")
    for key in ("max_tokens", "timeout_s"):
        v = table.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0):
            raise ConfigError(f"{where}: {key} must be a positive number")
    return FusionSpec(name=name, pool=tuple(p.strip() for p in pool), judge=judge, mode=table.get("mode", "best-of"),
                      settings={k: table[k] for k in FUSION_SETTINGS if k in table},
                      max_tokens=table.get("max_tokens"), timeout_s=table.get("timeout_s"),
                      description=table.get("description", ""))


def user_models_file() -> Path:
    """Where the user's models file lives (``WORKBENCH_MODELS_FILE`` overrides)."""
    env = os.environ.get("WORKBENCH_MODELS_FILE")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("WORKBENCH_HOME", Path.home() / ".config" / "workbench")) / "models.toml"


def load_registry(user_file: Path | None = None) -> Registry:
    """Presets shipped with the package, with the user's file merged on top when it exists."""
    reg = Registry()
    reg.add_toml(resources.files("workbench").joinpath("presets.toml").read_text(), "presets.toml")
    path = user_file or user_models_file()
    if path.is_file():
        reg.add_toml(path.read_text(), str(path))
    return reg


def with_quant(spec: ModelSpec, quant: str | None) -> ModelSpec:
    """A copy of ``spec`` with another quantization (None keeps it)."""
    if quant is None or quant == spec.quant:
        return spec
    match quant:
        case "int4" | "none":
            return replace(spec, quant=quant)
    raise ConfigError(f"quant must be int4 or none, not {quant!r}")
