"""What a caller may name, reach and spend: one object, applied by every entry point that runs a model.

*Local* mode (a researcher's laptop or GPU box) allows any preset, Hugging Face id, checkpoint directory
or endpoint, and any key variable. *Public* mode (a hosted Space, ``--share``, ``--public``) trusts
nothing a browser or API client sends: only the host's models (shipped presets and the host's models
file) may be named, endpoints added by a visitor are off unless the host allows them, may not reach
loopback, private, link-local or metadata addresses, and never carry a key (a visitor cannot name a key
variable); every knob has a host-set limit. State from a browser is checked again on every call.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import urlparse

from .backends.egress import allowed_hosts, public_addresses
from .errors import BusyError, InputError, PolicyError, TooLargeError, WorkbenchError
from .settings import FusionSettings
from .specs import Member, ModelSpec, Registry, load_registry
from .types import ImageData, Prompt, image_header


@dataclass(frozen=True)
class Limits:
    """Host-set upper bounds on what one call may ask for (these defaults are local mode's: generous)."""

    max_pool: int = 8  #: members in a pool
    max_rounds: int = 10  #: debate rounds
    max_new_tokens: int = 32768  #: per member answer
    max_judge_tokens: int = 32768  #: per judge call (its default, max(512, the members' limit), is capped to this)
    max_swap_k: int = 8  #: judge orderings
    max_prompt_chars: int = 1_000_000  #: prompt text
    max_images: int = 16  #: images per prompt
    max_image_pixels: int = 40_000_000  #: width x height of one image as sent (its header, read before decoding)
    max_image_bytes: int = 50_000_000  #: one image file's bytes (the page's uploads; an API request's images)
    max_decoding: int = 4  #: image batches decoded at once on the server (a visitor's: one at a time)
    max_local_models: int = 64  #: distinct local models (weights in this process) callers may have loaded at once
    max_instrument_calls: int = 100_000  #: model calls one Evaluate-tab instrument may make (its upper bound)
    max_eval_items: int = 100_000  #: items one evaluation from the page or its API may take
    runs_per_session: int = 8  #: runs one visitor may have in flight
    runs_total: int = 64  #: runs in flight on the server
    runs_waiting: int = 256  #: runs waiting for a slot when ``runs_total`` are in flight (past it: refused)
    run_wait_s: int = 600  #: seconds a run waits for a slot before it is refused
    queue_size: int = 128  #: requests waiting in the web server's queue
    max_request_bytes: int = 256_000_000  #: one API request's body (``workbench serve``), images included
    max_bodies_bytes: int = 1_024_000_000  #: API request bodies held in memory at once (past it: 429)
    body_read_s: int = 600  #: seconds an API request's body may take to arrive after its headers (past it: 408)

    @classmethod
    def parse(cls, text: str, base: Limits) -> Limits:
        """``"max_new_tokens=512,runs_total=4"`` (the ``WORKBENCH_LIMITS`` variable) on top of ``base``."""
        known = {f.name for f in fields(cls)}
        changes = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, _, value = part.partition("=")
            if key.strip() not in known or not value.strip().isdigit():
                raise PolicyError(f"WORKBENCH_LIMITS: {part!r} is not NAME=NUMBER with NAME one of {sorted(known)}")
            changes[key.strip()] = int(value)
        return replace(base, **changes)


#: the limits of a public server unless the host sets others
PUBLIC_LIMITS = Limits(max_pool=6, max_rounds=3, max_new_tokens=1024, max_judge_tokens=1024, max_swap_k=2, max_prompt_chars=8000,
                       max_images=4, max_image_pixels=4096 * 4096, max_image_bytes=10_000_000, max_decoding=2,
                       max_local_models=2, max_instrument_calls=300, max_eval_items=50,
                       runs_per_session=1, runs_total=8, runs_waiting=32, run_wait_s=20, queue_size=32,
                       max_request_bytes=24_000_000, max_bodies_bytes=96_000_000, body_read_s=30)

def quota_key(host: str | None) -> str:
    """Who a public server's per-visitor limits count, from a client's address: the address itself for IPv4, the
    /64 network for IPv6 (every IPv6 host is given a /64 and may use any address in it, so counting single
    addresses would let one visitor count as millions)."""
    import ipaddress

    try:
        ip = ipaddress.ip_address((host or "").split("%")[0])
    except ValueError:
        return f"ip:{host or 'unknown'}"
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return f"ip:{ip.ipv4_mapped}"
    if ip.version == 6:
        return f"ip:{ipaddress.ip_network(f'{ip}/64', strict=False)}"
    return f"ip:{ip}"


NOT_AVAILABLE = "is not available on this server; choose one of: "
#: image formats a public server takes: those OpenAI-compatible members take (PIL's other decoders stay off)
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")


class _DecodeGate:
    """Image decoding slots: at most ``total`` prompts' images decoded at once, one at a time per client."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = 0
        self._busy: dict[str, int] = {}

    @contextlib.contextmanager
    def hold(self, who: str | None, total: int):
        with self._lock:
            if who is not None and self._busy.get(who):
                raise BusyError("your previous images are still being read; wait for them, then send again")
            if self._total >= total:
                raise BusyError(f"the server is reading {self._total} other prompts' images (its limit); try again "
                                "in a moment")
            self._total += 1
            if who is not None:
                self._busy[who] = 1
        try:
            yield
        finally:
            with self._lock:
                self._total -= 1
                if who is not None:
                    self._busy.pop(who, None)

    @property
    def in_use(self) -> int:
        return self._total


#: the process's decoding slots
DECODING = _DecodeGate()
MAX_ENDPOINTS = 16  #: endpoints one browser may add


@dataclass(frozen=True)
class Policy:
    """What callers of this process may do. Build it with ``Policy.for_host()``."""

    public: bool = False  #: anonymous callers: nothing they send is trusted
    registry: Registry = field(default_factory=load_registry)  #: the host's models: presets + models file
    allow_custom_endpoints: bool = True  #: callers may add OpenAI-compatible endpoints by URL
    allow_private_hosts: bool = True  #: such endpoints may reach loopback / private / link-local addresses
    allowed_hosts: frozenset[str] = frozenset()  #: hosts a custom endpoint may always reach
    allow_image_urls: bool = True  #: API clients may send images as http(s) URLs, which the server fetches
    limits: Limits = Limits()

    @classmethod
    def for_host(cls, public: bool | None = None, registry: Registry | None = None,
                 bind_host: str | None = None) -> Policy:
        """The policy from the host's environment.

        Public when ``public`` is True; when None: ``WORKBENCH_PUBLIC`` decides if set (1/true/yes or
        0/false/no), else public on Hugging Face Spaces (``SPACE_ID``) or when serving on an address other
        than loopback (``bind_host``): a server reachable by others fails closed. ``WORKBENCH_ALLOW_CUSTOM_ENDPOINTS=1`` lets visitors add endpoints,
        ``WORKBENCH_ALLOWED_HOSTS=a,b:8000,c:*`` names hosts they may reach even if private (a bare name: ports
        80 and 443; ``name:PORT``: that port; ``name:*``: any),
        ``WORKBENCH_ALLOW_IMAGE_URLS=1`` lets API clients send images by http(s) URL (fetched from public
        addresses only), ``WORKBENCH_LIMITS``
        sets limits (``max_new_tokens=512,runs_total=4``).
        """
        if public is None:
            flag = os.environ.get("WORKBENCH_PUBLIC", "").strip().lower()
            if flag in ("1", "true", "yes", "on"):
                public = True
            elif flag in ("0", "false", "no", "off"):
                public = False
            else:
                public = bool(os.environ.get("SPACE_ID")) or (bind_host is not None and not _loopback(bind_host))
        base = PUBLIC_LIMITS if public else Limits()
        limits = Limits.parse(os.environ.get("WORKBENCH_LIMITS", ""), base)
        hosts = allowed_hosts()
        custom = not public or os.environ.get("WORKBENCH_ALLOW_CUSTOM_ENDPOINTS") == "1"
        urls = not public or os.environ.get("WORKBENCH_ALLOW_IMAGE_URLS") == "1"
        return cls(public=public, registry=registry or load_registry(), allow_custom_endpoints=custom,
                   allow_private_hosts=not public, allowed_hosts=hosts, limits=limits, allow_image_urls=urls)

    # ---- models -------------------------------------------------------------------------------------

    @property
    def key_envs(self) -> frozenset[str]:
        """The key variables a model may use here: those the host's models file and presets name."""
        return frozenset(s.api_key_env for s in self.registry.models.values() if s.api_key_env)

    def _choices(self) -> str:
        return ", ".join(sorted(self.registry.models))

    def member(self, text: str, registry: Registry | None = None) -> Member:
        """Resolve ``model[:persona]`` as this caller may: in public mode a host model only."""
        reg = registry or self.registry
        member = reg.member(text) if not self.public else self._host_member(text, reg)
        self.check_spec(member.model)
        if self.public and not member.model.untrusted:  # a host's model: its failures and records keep the host's
            member = replace(member, model=replace(member.model, private=True))  # details on the host
        return member

    def _host_member(self, text: str, reg: Registry) -> Member:
        """A registered model (with a known persona), looked up only: nothing is resolved, nothing touches disk."""
        text = text.strip()
        if text in reg.models:
            return Member(reg.models[text])
        head, sep, tail = text.rpartition(":")
        if sep and head in reg.models and tail in reg.personas:
            return Member(reg.models[head], persona=reg.personas[tail], persona_name=tail)
        # the same message whether or not a directory or a Hub repository of that name exists
        raise PolicyError(f"{text!r} {NOT_AVAILABLE}{', '.join(sorted(reg.models))}")

    def check_spec(self, spec: ModelSpec, registry: Registry | None = None) -> None:
        """Refuse a model spec this caller may not use (a Member built by hand, a browser's endpoint)."""
        hosted = self.registry.models.get(spec.name)
        if hosted is not None and hosted == replace(spec, private=False):  # exactly the host's own model
            if self.public and spec.backend == "local":
                self._check_cached(spec)
            if self.public and spec.backend == "openai":  # e.g. a shipped preset on localhost: not for visitors
                self.check_url(spec.base_url or "")
            return
        if spec.backend == "openai":
            self.check_url(spec.base_url or "")
        if not self.public:
            return
        if spec.backend != "openai":  # a free HF id starts a download; a path reads the server's disk
            raise PolicyError(f"{spec.name!r} {NOT_AVAILABLE}{self._choices()}")
        if not self.allow_custom_endpoints:
            raise PolicyError(f"{spec.name!r} {NOT_AVAILABLE}{self._choices()} (custom endpoints are off here)")
        if spec.api_key_env:  # the host's keys go only where the host's models file sends them
            raise PolicyError(f"{spec.name}: an endpoint added here cannot use a server key variable "
                              f"({spec.api_key_env}); ask the host to add it to the models file")
        if not spec.untrusted:  # built by registry_with, which marks it for the guarded HTTP client
            raise PolicyError(f"{spec.name!r} {NOT_AVAILABLE}{self._choices()}")

    def _check_cached(self, spec: ModelSpec) -> None:
        """Public mode loads a host model only from this machine: a visitor never starts a download."""
        from .backends.local import resolve_checkpoint

        try:
            resolve_checkpoint(spec, local_files_only=True)
        except WorkbenchError:
            raise PolicyError(f"{spec.name} is not downloaded on this server; choose another model") from None

    def check_url(self, url: str) -> None:
        """A custom endpoint's base URL: http(s), and a host this server may reach (checked again at connect)."""
        try:
            parsed = urlparse(url)
            port = parsed.port
        except ValueError:
            raise PolicyError("the base URL is malformed") from None
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise PolicyError("the base URL must start with http:// or https:// and name a host")
        if self.allow_private_hosts:
            return
        public_addresses(parsed.hostname, port or (443 if parsed.scheme == "https" else 80), self.allowed_hosts)

    def registry_with(self, endpoints: Iterable[dict[str, Any]]) -> Registry:
        """The host's registry plus endpoints a caller added (a browser's state), each checked."""
        reg = Registry(dict(self.registry.models), dict(self.registry.personas), list(self.registry.sources),
                       dict(self.registry.fusions))
        endpoints = list(endpoints or ())
        if len(endpoints) > MAX_ENDPOINTS:
            raise PolicyError(f"{len(endpoints)} saved endpoints; at most {MAX_ENDPOINTS}")
        for ep in endpoints:
            if not isinstance(ep, dict) or not all(isinstance(ep.get(k), str) for k in ("name", "base_url", "model")):
                raise PolicyError("a saved endpoint is malformed; remove it and add it again")
            if ep["name"] in self.registry.models:
                raise PolicyError(f"an endpoint cannot take the name of the server's model {ep['name']!r}")
            if ":" in ep["name"] or len(ep["name"]) > 64:
                raise PolicyError("an endpoint name has no ':' and at most 64 characters")
            spec = ModelSpec(name=ep["name"], backend="openai", model=ep["model"], base_url=ep["base_url"],
                             api_key_env=(ep.get("api_key_env") or None), vision=bool(ep.get("vision", True)),
                             description="added in the browser", untrusted=self.public)
            if spec.api_key_env and (self.public or not spec.api_key_env.replace("_", "").isalnum()):
                raise PolicyError(f"{spec.name}: an endpoint added here cannot use a server key variable")
            if not self.allow_custom_endpoints:  # the setting is the host's to change, not a visitor's
                raise PolicyError("adding endpoints is off on this server")
            self.check_url(spec.base_url or "")
            reg.models[spec.name] = spec
        return reg

    # ---- what a run may spend ------------------------------------------------------------------------

    def check_run(self, prompt: Prompt, members: list[Member], judge: Member | None, settings: FusionSettings) -> None:
        """Everything one fusion run asks for; raises PolicyError with the limit that was passed."""
        lim = self.limits
        for m in members + ([judge] if judge is not None else []):
            self.check_spec(m.model)
        self.check_prompt(prompt)
        over = [(len(members), lim.max_pool, "members in the pool"),
                (settings.rounds, lim.max_rounds, "debate rounds"),
                (settings.max_new_tokens, lim.max_new_tokens, "max new tokens"),
                (self.fit(settings).judge_tokens, lim.max_judge_tokens, "judge tokens"),
                (settings.swap_k, lim.max_swap_k, "judge orderings")]
        over += [(m.max_new_tokens or 0, lim.max_new_tokens, f"max new tokens of {m.label}") for m in members]
        over += [(len(m.persona or ""), lim.max_prompt_chars, f"characters in the persona of {m.label}")
                 for m in members + ([judge] if judge is not None else [])]
        for m in members:
            if m.temperature is not None and not 0 <= m.temperature <= 2:
                raise PolicyError(f"{m.label}: temperature {m.temperature} is outside 0 to 2")
        for value, most, what in over:
            if value > most:
                raise PolicyError(f"{value} {what} is over this server's limit of {most}")
        self._check_local_models([m.model for m in members + ([judge] if judge is not None else [])])

    def _check_local_models(self, specs: list[ModelSpec]) -> None:
        """Refuse a run that would load a local model beyond ``max_local_models`` (weights are memory)."""
        from .backends.lifetime import loaded

        wanted = {s.name for s in specs if s.backend == "local"}
        if not wanted:
            return
        held = {e["name"] for e in loaded() if e["backend"] == "local"}
        new = wanted - held
        if new and len(held | wanted) > self.limits.max_local_models:
            raise BusyError(f"this server keeps at most {self.limits.max_local_models} local models loaded "
                            f"({', '.join(sorted(held)) or 'none now'}); {', '.join(sorted(new))} would be more: choose "
                            f"among the loaded ones or an endpoint model")

    def check_eval_items(self, n: int) -> None:
        """Refuse an evaluation of fewer than one item or more than the host's limit."""
        if n < 1 or n > self.limits.max_eval_items:
            raise PolicyError(f"{n:,} items: an evaluation here takes 1 to {self.limits.max_eval_items:,}")

    def check_instrument(self, name: str, calls: int) -> None:
        """Refuse an instrument whose model calls (an upper bound, counted before it runs) pass the host's limit."""
        if calls > self.limits.max_instrument_calls:
            raise PolicyError(f"{name.replace('_', ' ')} would make up to {calls:,} model calls; this server's limit "
                              f"is {self.limits.max_instrument_calls:,} (evaluate fewer items)")

    def fit(self, settings: FusionSettings) -> FusionSettings:
        """``settings`` with the judge's default token limit (not one the caller set) capped to this server's."""
        if settings.judge_max_new_tokens is None and settings.judge_tokens > self.limits.max_judge_tokens:
            return settings.replace(judge_max_new_tokens=self.limits.max_judge_tokens)
        return settings

    def check_prompt(self, prompt: Prompt) -> None:
        lim = self.limits
        if prompt.chars > lim.max_prompt_chars:
            raise TooLargeError(f"the prompt has {prompt.chars:,} characters; this server takes at most "
                                f"{lim.max_prompt_chars:,}")
        self.check_image_count(len(prompt.images))
        for img in prompt.images:
            if img.width * img.height > lim.max_image_pixels:
                raise TooLargeError(f"an image of {img.width}x{img.height} pixels is over this server's limit of "
                                    f"{lim.max_image_pixels:,} pixels")

    # ---- images: limits charged before any decoding ------------------------------------------------------

    @property
    def image_formats(self) -> tuple[str, ...] | None:
        """The image formats taken: a public server's are what members take (PIL's other decoders stay off)."""
        return IMAGE_FORMATS if self.public else None

    def check_image_count(self, n: int) -> None:
        """TooLargeError when a prompt has more images than this server takes (checked before any is fetched or
        decoded, and again on the prompt a run is given)."""
        if n > self.limits.max_images:
            raise TooLargeError(f"{n} images; this server takes at most {self.limits.max_images}")

    def read_images(self, sources: list[Any], quota: str | None = None,
                    each: bool = False) -> list[ImageData | str]:
        """Decode a prompt's images (paths or bytes) as this server allows; call it off the event loop.

        In this order, so that nothing is decoded that a limit refuses: the count; the caller's runs in flight
        (a client at its limit gets BusyError before its images cost anything); each image's bytes, format and
        pixel count from its header; then one decoding slot (the server decodes ``max_decoding`` prompts' images at
        once; in public mode a client one at a time), refused with BusyError when none is free.

        Args:
            quota: who the limits count (a client's address); None: the server as a whole.
            each: a bad image is returned as its message (the page removes it and keeps the rest) instead of
                raising.

        Raises:
            TooLargeError (too many, too many bytes or pixels), BusyError, InputError (unreadable or not taken).
        """
        from .shutdown import RUNS

        lim = self.limits
        self.check_image_count(len(sources))
        if not sources:
            return []
        RUNS.check(quota, lim.runs_per_session if quota is not None else None, lim.runs_total, lim.runs_waiting)
        raws: list[bytes | str] = []
        for n, src in enumerate(sources, 1):
            try:
                raws.append(self._checked_image(src, n, len(sources)))
            except (InputError, TooLargeError) as exc:
                if not each:
                    raise
                raws.append(str(exc))
        out: list[ImageData | str] = []
        with DECODING.hold(quota if self.public else None, lim.max_decoding):
            for n, (src, raw) in enumerate(zip(sources, raws), 1):
                if isinstance(raw, str):
                    out.append(raw)
                    continue
                try:
                    name = src if isinstance(src, str) else (f"image {n} of {len(sources)}" if len(sources) > 1
                                                             else "the image")
                    out.append(ImageData.load(raw, max_pixels=lim.max_image_pixels, formats=self.image_formats,
                                              name=name))
                except InputError as exc:
                    if not each:
                        raise
                    out.append(str(exc))
        return out

    def _checked_image(self, src: Any, n: int, total: int) -> bytes:
        lim = self.limits
        where = f"image {n} of {total}" if total > 1 else "the image"
        if isinstance(src, ImageData):
            return src.data
        if isinstance(src, (bytes, bytearray)):
            raw = bytes(src)
        elif isinstance(src, str):
            import pathlib

            path = pathlib.Path(src)
            try:
                size = path.stat().st_size
            except OSError:
                raise InputError(f"{where}: image not found") from None
            if size > lim.max_image_bytes:
                raise TooLargeError(f"{where} is {size:,} bytes; this server takes images of at most "
                                    f"{lim.max_image_bytes:,}")
            raw = path.read_bytes()
        else:
            raise InputError(f"{where}: unsupported image value of type {type(src).__name__}")
        if len(raw) > lim.max_image_bytes:
            raise TooLargeError(f"{where} is {len(raw):,} bytes; this server takes images of at most "
                                f"{lim.max_image_bytes:,}")
        try:
            fmt, w, h = image_header(raw, self.image_formats)
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
        if w * h > lim.max_image_pixels:
            raise TooLargeError(f"{where} is {w}x{h} ({w * h:,} pixels); this server takes at most "
                                f"{lim.max_image_pixels:,} pixels (scale it down and send it again)")
        return raw

    def describe(self) -> str:
        """One paragraph for the console: the mode, what may be named and reached, the limits."""
        lim = ", ".join(f"{f.name}={getattr(self.limits, f.name)}" for f in fields(self.limits))
        if not self.public:
            return f"policy: local mode (any model, path or endpoint; any key variable). Limits: {lim}"
        return (f"policy: PUBLIC mode. Models: {self._choices()}. Custom endpoints: "
                f"{'allowed' if self.allow_custom_endpoints else 'off'} (private hosts "
                f"{'allowed' if self.allow_private_hosts else 'refused'}"
                + (f", except {', '.join(sorted(self.allowed_hosts))}" if self.allowed_hosts else "")
                + f"). Image URLs from API clients: {'fetched' if self.allow_image_urls else 'refused'}"
                + f". Key variables: only the host's ({', '.join(sorted(self.key_envs)) or 'none'}). Limits: {lim}")


def _loopback(host: str) -> bool:
    """Whether a bind address serves this machine only."""
    if host.lower() in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
