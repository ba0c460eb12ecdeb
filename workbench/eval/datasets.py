"""Evaluation items: a JSONL format, standard sets the user has locally, and built-in generated tasks.

JSONL, one item a line::

    {"id": "q1", "prompt": "What is 2+3?", "reference": "5", "answer_type": "numeric"}
    {"id": "q2", "prompt": "Which colour?", "images": ["img/a.png"], "reference": "B",
     "answer_type": "choice", "choices": ["red", "blue"]}

``answer_type`` is exact, numeric, choice or free (judge-graded). Image paths are relative to the file;
http(s) URLs are refused offline with a clear message. GSM8K's own JSONL (question / "#### answer") loads too.
Built-in tasks are generated from a seed and need no download: ``builtin:arithmetic`` (also at a level:
``builtin:arithmetic:easy|medium|hard``), ``builtin:shapes``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..answers import letters
from ..errors import ConfigError, InputError
from ..types import ImageData, Prompt

#: exact, numeric, choice (a letter), free (judge-graded), math (the last \\boxed{}, compared symbolically),
#: relaxed (a number within 5 %, else the same text: ChartQA's relaxed accuracy)
ANSWER_TYPES = ("exact", "numeric", "choice", "free", "math", "relaxed")
#: the prefixes of a table spec (``eval.tables``)
TABLE_SCHEMES = ("hf:", "parquet:", "csv:", "jsonl:")


class DatasetError(ConfigError):
    """A dataset file or row is wrong; the message names the file and row."""


@dataclass
class Item:
    """One evaluation item with its ground truth."""

    id: str  #: unique within the dataset
    prompt: str  #: the question
    reference: str  #: the right answer (a letter for choice items)
    answer_type: str = "exact"  #: exact, numeric, choice, free
    images: list[ImageData] = field(default_factory=list)  #: validated images
    choices: list[str] = field(default_factory=list)  #: for choice items, shown as A) B) C)...
    meta: dict[str, Any] = field(default_factory=dict)  #: anything else (task, difficulty...)

    def to_prompt(self) -> Prompt:
        """The Prompt members see: the question, choices lettered, and an instruction to end with the answer."""
        text = self.prompt
        if self.choices:
            text += "\n" + "\n".join(f"{x}) {c}" for x, c in zip(letters(len(self.choices)), self.choices))
            text += "\nAnswer with the letter of the right choice. End with 'Final answer: <letter>'."
        elif self.answer_type == "math":
            text += "\nReason step by step, and put your final answer within \\boxed{}."
        elif self.answer_type in ("numeric", "exact", "relaxed"):
            text += "\nEnd with 'Final answer: <answer>'."
        return Prompt(text, images=self.images)


@dataclass
class Dataset:
    """A named list of items."""

    name: str
    items: list[Item]
    skipped: list[tuple[str, str]] = field(default_factory=list)  #: rows left out (their id, why): e.g. a bad image

    def __len__(self) -> int:
        return len(self.items)


def load_jsonl(path: str | Path, name: str | None = None) -> Dataset:
    """Load a JSONL dataset, checking every row. Raises DatasetError naming the row."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset file not found: {path}")
    items, ids = [], set()
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name} row {n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(row, dict):
            raise DatasetError(f"{where}: each row must be a JSON object")
        if "question" in row and "####" in str(row.get("answer", "")):
            item = _gsm8k_row(row, n)
        elif "question" in row and "options" in row:
            item = _mmmu_row(row, n, path.parent, where)
        else:
            item = _row(row, n, path.parent, where)
        if item.id in ids:
            raise DatasetError(f"{where}: duplicate id {item.id!r}")
        ids.add(item.id)
        items.append(item)
    if not items:
        raise DatasetError(f"{path} has no items")
    return Dataset(name or path.stem, items)


def _row(row: dict, n: int, base: Path, where: str) -> Item:
    for key in ("prompt", "reference"):
        if key not in row or not isinstance(row[key], (str, int, float)) or str(row[key]).strip() == "":
            raise DatasetError(f"{where}: missing or empty {key!r}")
    answer_type = row.get("answer_type", "exact")
    if answer_type not in ANSWER_TYPES:
        raise DatasetError(f"{where}: unknown answer_type {answer_type!r}; use one of {', '.join(ANSWER_TYPES)}")
    choices = row.get("choices") or []
    if answer_type == "choice" and len(choices) < 2:
        raise DatasetError(f"{where}: a choice item needs at least two choices")
    images = []
    for ref in row.get("images") or []:
        if str(ref).startswith(("http://", "https://")):
            raise DatasetError(f"{where}: image {ref} is a URL; download it and give a local path")
        p = Path(ref) if Path(ref).is_absolute() else base / ref
        if not p.is_file():
            raise DatasetError(f"{where}: image not found: {p}")
        try:
            images.append(ImageData.load(p))
        except InputError as exc:
            raise DatasetError(f"{where}: {exc}") from None
    return Item(str(row.get("id", n)), str(row["prompt"]), str(row["reference"]).strip(), answer_type, images,
                [str(c) for c in choices], {k: v for k, v in row.items() if k not in
                                            ("id", "prompt", "reference", "answer_type", "images", "choices")})


def _gsm8k_row(row: dict, n: int) -> Item:
    answer = str(row["answer"]).split("####")[-1].strip().replace(",", "")
    return Item(str(row.get("id", f"gsm8k-{n}")), str(row["question"]), answer, "numeric",
                meta={"source": "gsm8k"})


def _mmmu_row(row: dict, n: int, base: Path, where: str) -> Item:
    """MMMU-style rows: question, options (a list or its string form), answer letter, image path(s)."""
    options = row["options"]
    if isinstance(options, str):
        try:
            options = json.loads(options.replace("'", '"'))
        except json.JSONDecodeError:
            raise DatasetError(f"{where}: options must be a list") from None
    images = row.get("images") or [v for k, v in sorted(row.items()) if k.startswith("image") and v]
    mapped = {"id": row.get("id", f"mmmu-{n}"), "prompt": str(row["question"]), "reference": row.get("answer", ""),
              "answer_type": "choice", "choices": options, "images": images if isinstance(images, list) else [images]}
    item = _row(mapped, n, base, where)
    item.meta["source"] = "mmmu"
    return item


# ---- built-in generated tasks ----------------------------------------------------------------------------

NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Farah", "Gus", "Hana"]
THINGS = ["apples", "marbles", "stamps", "books", "shells", "coins"]


#: ``builtin:arithmetic:LEVEL``: easy (one single-digit sum), medium (one step in words), hard (several steps in
#: words; plain ``builtin:arithmetic``). Easy sits above zero and below ceiling for SmolLM2-135M.
ARITHMETIC_LEVELS = ("easy", "medium", "hard")


def arithmetic(n: int = 20, seed: int = 0, level: str = "hard") -> Dataset:
    """Arithmetic with numeric ground truth, at a difficulty ``level`` (see ``ARITHMETIC_LEVELS``)."""
    if level not in ARITHMETIC_LEVELS:
        raise DatasetError(f"unknown arithmetic level {level!r}: choose one of {', '.join(ARITHMETIC_LEVELS)}")
    if level != "hard":
        return _arithmetic_simple(n, seed, level)
    rng = random.Random(seed)
    items = []
    for i in range(n):
        who, thing = rng.choice(NAMES), rng.choice(THINGS)
        a, b, c = rng.randint(3, 30), rng.randint(2, 20), rng.randint(2, 5)
        d = rng.randint(1, a + b)
        kind = i % 3
        if kind == 0:
            text, ans = f"{who} has {a} {thing}, buys {b} more, then gives away {d}. How many {thing} now?", a + b - d
        elif kind == 1:
            text = f"{who} buys {c} boxes of {b} {thing} and already had {a}. How many {thing} in all?"
            ans = a + b * c
        else:
            total = (a + b) * c
            text = f"{c} friends share {total} {thing} equally, and each then gets {d} more. How many does each have?"
            ans = a + b + d
        items.append(Item(f"arith-{seed}-{i}", text, str(ans), "numeric",
                          meta={"task": "arithmetic", "kind": kind, "level": "hard"}))
    return Dataset("builtin:arithmetic", items)


def _arithmetic_simple(n: int, seed: int, level: str) -> Dataset:
    rng = random.Random(f"{seed}-{level}")
    items = []
    for i in range(n):
        if level == "easy":  # one sum of two single digits
            a, b = rng.randint(1, 9), rng.randint(1, 9)
            text, ans = f"What is {a} + {b}?", a + b
        else:  # one step, in words
            who, thing = rng.choice(NAMES), rng.choice(THINGS)
            a, b = rng.randint(2, 20), rng.randint(2, 9)
            if i % 2:
                text, ans = f"{who} has {a + b} {thing} and gives away {b}. How many {thing} are left?", a
            else:
                text, ans = f"{who} has {a} {thing} and buys {b} more. How many {thing} now?", a + b
        items.append(Item(f"arith-{level}-{seed}-{i}", text, str(ans), "numeric",
                          meta={"task": "arithmetic", "level": level}))
    return Dataset(f"builtin:arithmetic:{level}", items)


COLOURS = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (40, 70, 220), "yellow": (235, 200, 20),
           "purple": (140, 50, 170)}


def shapes(n: int = 12, seed: int = 0, size: int = 224) -> Dataset:
    """Image tasks drawn with PIL: count the shapes, name a shape's colour, read a drawn number."""
    from PIL import Image, ImageDraw, ImageFont

    rng = random.Random(seed)
    items = []
    for i in range(n):
        img = Image.new("RGB", (size, size), "white")
        draw = ImageDraw.Draw(img)
        kind = i % 3
        if kind == 0:  # count circles among squares
            k = rng.randint(1, 6)
            boxes = _place(rng, k + rng.randint(0, 3), size)
            for j, (x, y, r) in enumerate(boxes):
                col = COLOURS[rng.choice(list(COLOURS))]
                (draw.ellipse if j < k else draw.rectangle)((x - r, y - r, x + r, y + r), fill=col)
            items.append(Item(f"shapes-{seed}-{i}", "How many circles are in the image?", str(k), "numeric",
                              [ImageData.load(img)], meta={"task": "count"}))
        elif kind == 1:  # colour of the only triangle
            names = list(COLOURS)
            target = rng.choice(names)
            x, y, r = _place(rng, 1, size)[0]
            draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=COLOURS[target])
            others = rng.sample([c for c in names if c != target], 2)
            for (ox, oy, orr), c in zip(_place(rng, 2, size, avoid=[(x, y, r)]), others):
                draw.ellipse((ox - orr, oy - orr, ox + orr, oy + orr), fill=COLOURS[c])
            choices = rng.sample(names, len(names))
            ref = letters(len(choices))[choices.index(target)]
            items.append(Item(f"shapes-{seed}-{i}", "What colour is the triangle?", ref, "choice",
                              [ImageData.load(img)], choices, meta={"task": "colour", "colour": target}))
        else:  # read a number
            number = rng.randint(10, 999)
            try:
                font = ImageFont.load_default(size=size // 3)
            except TypeError:  # older Pillow
                font = ImageFont.load_default()
            draw.text((size // 8, size // 3), str(number), fill="black", font=font)
            items.append(Item(f"shapes-{seed}-{i}", "What number is written in the image?", str(number), "numeric",
                              [ImageData.load(img)], meta={"task": "read"}))
    return Dataset("builtin:shapes", items)


def _place(rng: random.Random, k: int, size: int, avoid=()) -> list[tuple[int, int, int]]:
    placed = list(avoid)
    out = []
    for _ in range(k):
        for _try in range(200):
            r = rng.randint(size // 16, size // 9)
            x, y = rng.randint(r + 2, size - r - 2), rng.randint(r + 2, size - r - 2)
            if all((x - a) ** 2 + (y - b) ** 2 > (r + c + 4) ** 2 for a, b, c in placed):
                placed.append((x, y, r))
                out.append((x, y, r))
                break
    return out


def load_dataset(spec: str | Dataset, limit: int | None = None, seed: int = 0) -> Dataset:
    """``builtin:arithmetic``, ``builtin:shapes``, a JSONL path, or a table (``hf:``, ``parquet:``, ``csv:``,
    ``jsonl:``; ``eval.tables``); the first ``limit`` items (of a table: as its spec samples them)."""
    if isinstance(spec, Dataset):
        ds = spec
    elif spec.startswith("builtin:"):
        name, _, level = spec.split(":", 1)[1].partition(":")
        makers: dict[str, Callable[..., Dataset]] = {"arithmetic": arithmetic, "shapes": shapes}
        if name not in makers or (level and name != "arithmetic"):
            raise DatasetError(f"unknown built-in dataset {spec!r}; built in: "
                               + ", ".join(f"builtin:{k}" for k in makers)
                               + ", builtin:arithmetic:" + "|".join(ARITHMETIC_LEVELS))
        extra = {"level": level} if level else {}
        ds = makers[name](n=max(limit or 20, 1), seed=seed, **extra)
    elif spec.startswith(TABLE_SCHEMES) or spec in _presets():  # limited as read
        from .presets import load_preset
        from .tables import load_table

        if limit is not None and limit < 1:
            raise DatasetError("limit must be at least 1")
        return load_preset(spec, limit) if spec in _presets() else load_table(spec, limit)
    elif not Path(spec).exists():
        raise DatasetError(f"no dataset {spec!r}: not a file. Presets: {', '.join(_presets())}; built in: "
                           "builtin:arithmetic, builtin:shapes; tables: hf:REPO_OR_FOLDER[:CONFIG][@SPLIT], "
                           "parquet:FILE, csv:FILE, jsonl:FILE")
    else:
        ds = load_jsonl(spec)
    if limit is not None:
        if limit < 1:
            raise DatasetError("limit must be at least 1")
        ds = Dataset(ds.name, ds.items[:limit], ds.skipped)
    return ds


def _presets() -> dict:
    from .presets import PRESETS

    return PRESETS
