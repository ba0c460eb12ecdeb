"""Typed values that cross module boundaries: prompts, generation settings, responses, failures.

Nothing here imports torch, transformers or gradio.
"""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import InputError

#: Images larger than this (in pixels) are refused: they are almost always a mistake or a decompression bomb.
MAX_IMAGE_PIXELS = 40_000_000
#: Images are downscaled so that their longest side is at most this many pixels before use.
MAX_IMAGE_SIDE = 2048


def image_header(raw: bytes, formats: tuple[str, ...] | None = None) -> tuple[str, int, int]:
    """(format, width, height) from an encoded image's header, nothing decoded; InputError when unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw), formats=list(formats) if formats else None) as pil:
            return str(pil.format), int(pil.width), int(pil.height)
    except UnidentifiedImageError:
        taken = f" (this server takes {', '.join(formats)})" if formats else ""
        raise InputError(f"not a readable image{taken}") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"not a readable image ({exc.__class__.__name__})") from None


@dataclass(frozen=True)
class ImageData:
    """An image as bytes, validated once, identified by content hash."""

    data: bytes  #: encoded image (PNG or JPEG)
    mime: str  #: "image/png" or "image/jpeg"
    width: int  #: pixels
    height: int  #: pixels
    sha256: str  #: hex digest of ``data``; how runs refer to images
    source: str = ""  #: where it came from (a path or "bytes"), for messages only

    @classmethod
    def load(cls, image: Any, max_pixels: int = MAX_IMAGE_PIXELS,
             formats: tuple[str, ...] | None = None, name: str = "") -> ImageData:
        """Validate and normalise an image given as a path, bytes, PIL image or ImageData.

        Args:
            max_pixels: width x height as sent, read from the header before anything is decoded.
            formats: the container formats taken (PIL's names: "PNG", "JPEG", ...); None: any PIL reads.
            name: what to call the image in messages (default: its path, or "bytes").

        Raises:
            InputError: the file is missing, unreadable, not an image, of a format not taken, or too large.
        """
        if isinstance(image, ImageData):
            return image
        from PIL import Image, UnidentifiedImageError

        source = name or "bytes"
        if isinstance(image, Image.Image):
            pil, source = image, "PIL image"
        else:
            if isinstance(image, (str, Path)):
                source = name or str(image)
                path = Path(image)
                if not path.is_file():
                    raise InputError(f"image not found: {source}")
                try:
                    raw = path.read_bytes()
                except OSError as exc:
                    raise InputError(f"cannot read image {source}: {exc.strerror or exc}") from None
            elif isinstance(image, (bytes, bytearray)):
                raw = bytes(image)
            else:
                raise InputError(f"unsupported image value of type {type(image).__name__}")
            try:
                pil = Image.open(io.BytesIO(raw), formats=list(formats) if formats else None)  # the header only
                if pil.width * pil.height > max_pixels:
                    raise InputError(
                        f"image {source} is {pil.width}x{pil.height} ({pil.width * pil.height:,} pixels): over "
                        f"the limit of {max_pixels:,} pixels"
                    )
                if pil.format == "JPEG":  # decode at the smallest 1/2^k scale still >= the size used
                    pil.draft("RGB", (MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))
                pil.load()
            except InputError:
                raise
            except UnidentifiedImageError:
                taken = f" (this server takes {', '.join(formats)})" if formats else ""
                raise InputError(f"{source} is not a readable image{taken}") from None
            except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
                raise InputError(f"{source} is not a readable image ({exc.__class__.__name__})") from None
        if pil.width * pil.height > max_pixels:
            raise InputError(f"image {source} is {pil.width}x{pil.height}: over the size limit")
        if pil.mode not in ("RGB", "L"):
            pil = pil.convert("RGB")
        if max(pil.size) > MAX_IMAGE_SIDE:
            pil = pil.copy()
            pil.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))
        buf = io.BytesIO()
        pil.save(buf, format="PNG")
        data = buf.getvalue()
        return cls(data, "image/png", pil.width, pil.height, hashlib.sha256(data).hexdigest(), source)

    def to_pil(self):
        """The image as an RGB PIL image."""
        from PIL import Image

        return Image.open(io.BytesIO(self.data)).convert("RGB")

    def data_url(self) -> str:
        """The image as a ``data:`` URL, the form OpenAI-compatible APIs take."""
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode()}"


@dataclass(frozen=True)
class TextPart:
    """A piece of text inside a message."""

    text: str
    type: Literal["text"] = "text"


@dataclass(frozen=True)
class ImagePart:
    """An image inside a message."""

    image: ImageData
    type: Literal["image"] = "image"


ContentPart = TextPart | ImagePart


@dataclass(frozen=True)
class Message:
    """One chat message: a role and a list of content parts."""

    role: Literal["system", "user", "assistant"]
    content: tuple[ContentPart, ...]

    @property
    def text(self) -> str:
        """The message's text parts joined."""
        return "".join(p.text for p in self.content if isinstance(p, TextPart))

    @property
    def images(self) -> list[ImageData]:
        """The message's images, in order."""
        return [p.image for p in self.content if isinstance(p, ImagePart)]


class Prompt:
    """What a user asks: text, optional images, optional system prompt.

    Args:
        text: the question or instruction.
        images: paths, bytes, PIL images or ImageData; each is validated now.
        system: an optional system prompt (a member's persona is added by the member, not here).
        history: earlier turns of a conversation, oldest first, as ``{"role": "user"|"assistant", "text": ...}``
            dicts or text-only Messages; the prompt is the turn that answers them (a chat client's request).

    Raises:
        InputError: no text and no image, or an image that cannot be read.
    """

    def __init__(self, text: str = "", images: list[Any] | tuple[Any, ...] = (), system: str | None = None,
                 history: list[Any] | tuple[Any, ...] = ()):
        self.text = (text or "").strip()
        self.images: tuple[ImageData, ...] = tuple(ImageData.load(i) for i in (images or ()))
        self.system = system
        self.history: tuple[Message, ...] = tuple(_turn(h) for h in (history or ()))
        if not self.text and not self.images:
            raise InputError("the prompt is empty: give some text or at least one image")

    def messages(self, persona: str | None = None, include_images: bool = True) -> list[Message]:
        """Chat messages for this prompt, with ``persona`` as the system message when given."""
        system = "\n\n".join(s for s in (persona, self.system) if s)
        out: list[Message] = []
        if system:
            out.append(Message("system", (TextPart(system),)))
        out.extend(self.history)
        parts: list[ContentPart] = [ImagePart(i) for i in self.images] if include_images else []
        if self.text:
            parts.append(TextPart(self.text))
        elif not parts:
            parts.append(TextPart("(see the image)"))
        out.append(Message("user", tuple(parts)))
        return out

    @property
    def chars(self) -> int:
        """Characters of text sent: the prompt, the system prompt and the earlier turns."""
        return len(self.text) + len(self.system or "") + sum(len(m.text) for m in self.history)

    def transcript(self) -> str:
        """The earlier turns as ``User: ...`` / ``Assistant: ...`` lines ("" without history)."""
        return "\n\n".join(f"{m.role.capitalize()}: {m.text}" for m in self.history)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able record; images by hash and size only."""
        d = {
            "text": self.text,
            "system": self.system,
            "images": [{"sha256": i.sha256, "width": i.width, "height": i.height} for i in self.images],
        }
        if self.history:
            d["history"] = [{"role": m.role, "text": m.text} for m in self.history]
        return d

    def __repr__(self) -> str:
        return f"Prompt({self.text[:40]!r}, images={len(self.images)})"


def _turn(turn: Any) -> Message:
    """An earlier turn of a conversation: a text-only user or assistant Message."""
    role: Any
    text: Any
    if isinstance(turn, Message):
        role, text = turn.role, turn.text
    elif isinstance(turn, dict):
        role, text = turn.get("role"), turn.get("text")
    else:
        raise InputError(f"a conversation turn must be a Message or a dict, not {type(turn).__name__}")
    if role not in ("user", "assistant") or not isinstance(text, str):
        raise InputError("a conversation turn needs role 'user' or 'assistant' and text")
    return Message(role, (TextPart(text),))


@dataclass
class GenerateConfig:
    """Sampling and limits for one generation."""

    max_new_tokens: int = 256  #: hard cap on generated tokens
    min_new_tokens: int = 0  #: end-of-sequence is suppressed before this many tokens (local models)
    temperature: float = 0.7  #: 0 means greedy
    top_p: float = 1.0  #: nucleus sampling mass
    seed: int | None = None  #: fixed seed for reproducible sampling where the backend supports it
    timeout_s: float = 300.0  #: wall-clock limit for the whole generation
    #: the reply must be JSON matching this schema: local models decode under it (grammar-constrained),
    #: endpoints get it as ``response_format`` where they accept one
    json_schema: dict[str, Any] | None = None

    def replace(self, **changes: Any) -> GenerateConfig:
        """A copy with ``changes`` applied (None values are ignored)."""
        data = {**self.__dict__, **{k: v for k, v in changes.items() if v is not None}}
        return GenerateConfig(**data)


@dataclass
class Usage:
    """Token and money accounting for one generation."""

    prompt_tokens: int = 0  #: tokens read
    completion_tokens: int = 0  #: tokens written
    cost_usd: float | None = None  #: reported or computed cost; None when unknown


@dataclass
class Chunk:
    """A piece of streamed output: the newly generated text."""

    text: str


@dataclass
class Response:
    """A finished generation."""

    text: str  #: the generated text
    model: str  #: the model's name as resolved
    usage: Usage = field(default_factory=Usage)  #: tokens and cost
    finish_reason: str = "stop"  #: "stop", "length", "cancelled"...
    ttft_s: float | None = None  #: seconds to the first token
    latency_s: float = 0.0  #: seconds for the whole generation
    notes: list[str] = field(default_factory=list)  #: things the user should know (e.g. images dropped)
    ok: Literal[True] = True

    @property
    def tokens_per_s(self) -> float | None:
        """Decode rate: tokens after the first, per second after the first."""
        return decode_rate(self.usage.completion_tokens, self.ttft_s, self.latency_s)


def decode_rate(completion_tokens: int, ttft_s: float | None, latency_s: float) -> float | None:
    """(tokens - 1) / (latency - TTFT); None when too short to measure (under 2 tokens or 50 ms)."""
    gen = latency_s - (ttft_s or 0.0)
    if completion_tokens >= 2 and gen >= 0.05:
        return (completion_tokens - 1) / gen
    return None


@dataclass
class Failure:
    """A generation that did not succeed: data, not an exception."""

    reason: str  #: human-readable cause
    kind: str  #: "timeout", "rate_limit", "server", "connection", "config", "input", "oom", "cancelled", "backend"
    model: str = ""  #: the model's name
    retryable: bool = False  #: whether trying again later may help
    latency_s: float = 0.0  #: seconds until it failed
    partial_text: str = ""  #: whatever was streamed before it failed
    ok: Literal[False] = False


Result = Response | Failure
