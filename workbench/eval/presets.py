"""Standard benchmarks by name: where each is on the Hub, which column is what, and how it is scored.

``workbench eval --dataset gsm8k`` (or ``wb.evaluate("gsm8k", ...)``) reads the preset's Hub dataset through
``eval.tables``: from the Hugging Face cache offline, from the Hub with network, or from a local copy in
``$WORKBENCH_DATASETS/NAME`` (a folder laid out as the Hub repo, or a ``save_to_disk`` folder). When none is there
the message names the Hub id and the folder it looked for.

Prompts follow each benchmark's usual zero-shot chain-of-thought form: the question (with its choices lettered in
their stored order, which is stable), then one instruction for the final line, which the scorer reads. The numbers
are therefore those of a zero-shot CoT reading, not the papers' few-shot ones; ``Preset.source`` says which paper
or card the data and its scoring come from.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..answers import letters
from .datasets import Dataset, DatasetError, Item


def gpqa_row(row: dict) -> Item:
    """GPQA's columns (the question, the correct answer, three incorrect ones) as a choice item; the four are put
    in an order fixed by the item's id, so every run shows the same letters and the right one is not always A."""
    rid = str(row.get("Record ID") or hashlib.sha256(row["Question"].encode()).hexdigest()[:12])
    options = [str(row[k]).strip() for k in ("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2",
                                             "Incorrect Answer 3")]
    order = sorted(range(4), key=lambda i: hashlib.sha256(f"{rid}|{i}".encode()).hexdigest())
    return Item(rid, str(row["Question"]).strip(), letters(4)[order.index(0)], "choice",
                choices=[options[i] for i in order], meta={"source": "gpqa"})


@dataclass(frozen=True)
class Preset:
    name: str
    hub: str  #: hf:REPO[:CONFIG]@SPLIT
    fields: str  #: the table options (eval.tables): input=..,target=..[,choices=..][,image=..][,id=..],type=..
    source: str  #: where the data and its scoring come from
    vision: bool = False
    convert: Callable[[dict], Item | None] | None = None  #: a row -> Item, where a mapping cannot say it

    def spec(self, folder: Path | None = None) -> str:
        """The table spec: the local copy when ``folder`` is given, else the Hub id."""
        head = self.hub if folder is None else f"hf:{folder}@{self.hub.rpartition('@')[2]}"
        return f"{head}#{self.fields}" if self.fields else head


PRESETS = {p.name: p for p in [
    Preset("gsm8k", "hf:openai/gsm8k:main@test", "input=question,target=answer,type=numeric",
           "GSM8K test (Cobbe et al. 2021, 1,319 items); the number after '####' is the reference, compared as a "
           "number"),
    Preset("math-500", "hf:HuggingFaceH4/MATH-500@test", "input=problem,target=answer,id=unique_id,type=math",
           "MATH-500 (Lightman et al. 2023, 'Let's Verify Step by Step'; 500 of Hendrycks et al.'s MATH test); the "
           "last \\boxed{} compared symbolically with sympy"),
    Preset("mmlu-pro", "hf:TIGER-Lab/MMLU-Pro@test", "input=question,target=answer,choices=options,id=question_id",
           "MMLU-Pro test (Wang et al. 2024, 12,032 items, up to 10 choices); the letter chosen"),
    Preset("gpqa-diamond", "hf:Idavidrein/gpqa:gpqa_diamond@train", "",
           "GPQA diamond (Rein et al. 2023, 198 items; gated on the Hub: accept its terms, then log in or put a "
           "copy in the local folder); the four answers in an order fixed per item, the letter chosen",
           convert=gpqa_row),
    Preset("arc-challenge", "hf:allenai/ai2_arc:ARC-Challenge@test",
           "input=question,target=answerKey,choices=choices,id=id",
           "ARC-Challenge test (Clark et al. 2018, 1,172 items); the letter chosen"),
    Preset("mmmu", "hf:lmms-lab/MMMU@validation",
           "input=question,target=answer,choices=options,image=image_1+image_2+image_3+image_4+image_5+image_6"
           "+image_7,id=id",
           "MMMU validation (Yue et al. 2024, 900 items, 30 subjects in one table); multiple-choice items scored "
           "by the letter chosen (the open-ended ones by exact match)", vision=True),
    Preset("chartqa", "hf:HuggingFaceM4/ChartQA@test", "input=query,target=label,image=image,type=relaxed",
           "ChartQA test (Masry et al. 2022, 2,500 items); relaxed accuracy: a number within 5 %, else the same "
           "text", vision=True),
    Preset("mathvista", "hf:AI4Math/MathVista@testmini",
           "input=question,target=answer,choices=choices,image=decoded_image,id=pid,type=relaxed",
           "MathVista testmini (Lu et al. 2024, 1,000 items); the letter for multiple-choice items, else relaxed "
           "accuracy (MathVista's own scorer extracts answers with GPT-4; this one reads the final line)",
           vision=True),
]}


def local_copy(name: str) -> Path:
    """Where a local copy of a preset is looked for: ``$WORKBENCH_DATASETS/NAME`` (default under the data home)."""
    from ..paths import data_home

    root = Path(os.environ.get("WORKBENCH_DATASETS") or data_home() / "datasets")
    return root / name


def preset_spec(name: str) -> str:
    """The table spec of a preset: its local copy when there is one, else its Hub id (cache, or the Hub)."""
    if name not in PRESETS:
        raise DatasetError(f"unknown dataset preset {name!r}; presets: {', '.join(PRESETS)}")
    folder = local_copy(name)
    return PRESETS[name].spec(folder if folder.exists() else None)


def missing_message(name: str, exc: Exception) -> str:
    """Neither a local copy nor the Hub: one line naming both."""
    p = PRESETS[name]
    return (f"dataset preset {name}: no local copy at {local_copy(name)} and {p.hub[3:]} is neither in the Hugging "
            f"Face cache nor reachable ({exc}). With network it downloads; offline, put a copy there "
            f"(datasets' save_to_disk, or the repo's files)")


def load_preset(name: str, limit: int | None = None) -> Dataset:
    """A preset's items (``limit`` of them, in the table's order); DatasetError names what was looked for."""
    from .tables import TableNotFound, load_table

    spec = preset_spec(name)
    try:
        ds = load_table(spec, limit, convert=PRESETS[name].convert)
    except TableNotFound as exc:
        raise DatasetError(missing_message(name, exc)) from None
    ds.name = name  # what the evaluation, its cache and the instruments call it
    return ds
