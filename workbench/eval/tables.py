"""Evaluation items from tables, read with the ``datasets`` library: any Hugging Face dataset, or one file.

A table spec is one string, so an evaluation, its cache and the instruments that reload it name the same items::

    hf:REPO_OR_FOLDER[:CONFIG][@SPLIT][#OPTIONS]   a Hub dataset (its cache offline, the Hub with network), a local
                                                  folder laid out as a Hub dataset repo (parquet / arrow / JSONL /
                                                  CSV shards, config folders), or a ``save_to_disk`` folder
    parquet:FILE[#OPTIONS]  csv:FILE[#OPTIONS]  jsonl:FILE[#OPTIONS]

OPTIONS (``workbench eval --fields ... --shuffle SEED --stratify COLUMN`` write them) are ``key=value`` joined by
commas: which column is what, ``input`` (the question), ``target`` (the reference), ``choices`` (a list, or the
list as text), ``image`` (columns joined by ``+``; each an Image feature, bytes, a path, or a list of those: every
image of a row is kept, in order), ``id``, ``type`` (exact, numeric, choice, free; default: choice when there are
choices, numeric when every reference is a number, else exact), and how to sample: ``shuffle=SEED``,
``stratify=COLUMN`` (the items taken in turn from each value of the column, so a limit keeps every group).
A target that is a choice's index (0, 1, ...) is turned into its letter.

In Python, ``load_table(spec, convert=fn)`` takes a function from a row (a dict) to an ``Item`` (or None to leave
the row out) for anything a mapping cannot say; the ``Dataset`` it returns goes to ``wb.evaluate`` as it is.
A row whose image cannot be decoded is left out and named (``Dataset.skipped``); the other rows run.
"""

from __future__ import annotations

import ast
import glob
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..answers import letters
from ..errors import InputError
from ..types import ImageData
from .datasets import ANSWER_TYPES, TABLE_SCHEMES, Dataset, DatasetError, Item


class TableNotFound(DatasetError):
    """Neither the Hugging Face cache, a local folder nor the Hub has the dataset."""

#: what a row's columns are called when the spec names none (the first that the table has)
DEFAULT_FIELDS = {"input": ("question", "prompt", "problem", "query", "input", "Question"),
                  "target": ("answer", "reference", "target", "label", "answerKey", "solution")}


@dataclass(frozen=True)
class TableSpec:
    """A parsed table spec (see the module's docstring)."""

    kind: str  #: hf, parquet, csv or jsonl
    path: str  #: the Hub id, the folder or the file
    config: str | None = None
    split: str | None = None
    fields: dict[str, str] = field(default_factory=dict)  #: input, target, choices, image, id, type
    shuffle: int | None = None
    stratify: str | None = None

    @property
    def images(self) -> list[str]:
        return [c for c in self.fields.get("image", "").split("+") if c]


def is_table(spec: Any) -> bool:
    return isinstance(spec, str) and spec.startswith(TABLE_SCHEMES)


def parse_spec(spec: str) -> TableSpec:
    """``hf:openai/gsm8k:main@test#input=question,target=answer`` -> its parts; DatasetError says what is wrong."""
    kind, _, rest = spec.partition(":")
    rest, _, options = rest.partition("#")
    opts: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in options.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not value:
            raise DatasetError(f"{spec}: {part!r} is not key=value (e.g. input=question,target=answer)")
        opts[key.strip()] = value.strip()
    known = {"input", "target", "choices", "image", "id", "type", "shuffle", "stratify"}
    if unknown := sorted(set(opts) - known):
        raise DatasetError(f"{spec}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if opts.get("type") and opts["type"] not in ANSWER_TYPES:
        raise DatasetError(f"{spec}: type={opts['type']} is not one of {', '.join(ANSWER_TYPES)}")
    config = split = None
    if kind == "hf":
        rest, _, split = rest.partition("@")
        if not Path(rest).exists() and rest.count(":") == 1:  # REPO:CONFIG (a local folder keeps its colons)
            rest, config = rest.split(":")
    if not rest:
        raise DatasetError(f"{spec}: no dataset named (e.g. hf:openai/gsm8k:main@test, parquet:items.parquet)")
    try:
        shuffle = int(opts.pop("shuffle")) if "shuffle" in opts else None
    except ValueError:
        raise DatasetError(f"{spec}: shuffle= takes a seed (an integer)") from None
    stratify = opts.pop("stratify", None)
    return TableSpec(kind, rest, config or None, split or None, opts, shuffle, stratify)


def with_options(spec: str, fields: str | None = None, shuffle: int | None = None,
                 stratify: str | None = None) -> str:
    """``spec`` with the command line's ``--fields``, ``--shuffle`` and ``--stratify`` added to its options."""
    extra = [fields] if fields else []
    extra += [f"shuffle={shuffle}"] if shuffle is not None else []
    extra += [f"stratify={stratify}"] if stratify else []
    if not extra:
        return spec
    if not is_table(spec):
        raise DatasetError("--fields, --shuffle and --stratify apply to hf:, parquet:, csv: and jsonl: datasets")
    head, _, opts = spec.partition("#")
    return head + "#" + ",".join(filter(None, [opts, *extra]))


def open_table(t: TableSpec):
    """The table as a ``datasets.Dataset`` (one split), with messages that name what exists when it does not."""
    try:
        import datasets
    except ImportError:  # pragma: no cover - in the lock
        raise DatasetError("reading hf:, parquet: and csv: datasets needs the datasets package: "
                           "pip install datasets") from None
    datasets.disable_progress_bars()
    if t.kind != "hf":
        builder = {"parquet": "parquet", "csv": "csv", "jsonl": "json"}[t.kind]
        if not glob.glob(t.path):
            raise DatasetError(f"{t.kind}:{t.path}: no such file")
        return datasets.load_dataset(builder, data_files=t.path, split="train")
    folder = Path(t.path)
    try:
        if (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file():  # save_to_disk
            table = datasets.load_from_disk(str(folder))
        else:
            table = datasets.load_dataset(t.path, t.config, split=t.split)
    except ValueError as exc:
        raise DatasetError(_why(exc, t)) from None
    except (FileNotFoundError, ConnectionError) as exc:  # the library's not-found and offline errors
        raise TableNotFound(f"hf:{t.path}: not in the Hugging Face cache, not a local folder, and the Hub was "
                            f"not reachable ({type(exc).__name__}: {str(exc)[:200]})") from None
    return _pick_split(table, t) if isinstance(table, datasets.DatasetDict) else table


def _pick_split(table, t: TableSpec):
    splits = list(table)
    if t.split in splits:
        return table[t.split]
    if t.split is None and len(splits) == 1:
        return table[splits[0]]
    if t.split is None and "test" in splits:
        return table["test"]
    raise DatasetError(f"hf:{t.path}: no split {t.split!r}; its splits: {', '.join(splits)} (add @SPLIT)")


def _why(exc: ValueError, t: TableSpec) -> str:
    """The library's ValueError about a split or a config, as a line that lists what there is."""
    import datasets

    text = str(exc)
    if "split" in text.lower():
        try:
            splits = datasets.get_dataset_split_names(t.path, t.config)
        except Exception:  # noqa: BLE001 - the listing is a courtesy; the library's message stays
            return f"hf:{t.path}: {text}"
        return f"hf:{t.path}: no split {t.split!r}; its splits: {', '.join(splits)}"
    if "config" in text.lower():
        try:
            configs = datasets.get_dataset_config_names(t.path)
        except Exception:  # noqa: BLE001
            return f"hf:{t.path}: {text}"
        return (f"hf:{t.path}: " + (f"no config {t.config!r}" if t.config else "it has several configs: name one")
                + f"; its configs: {', '.join(configs)} (hf:{t.path}:CONFIG)")
    return f"hf:{t.path}: {text}"


def resolve_fields(t: TableSpec, columns: list[str]) -> dict[str, str]:
    """The spec's fields, defaults filled in from the columns; DatasetError names the columns the table has."""
    chosen = dict(t.fields)
    for key, guesses in DEFAULT_FIELDS.items():
        chosen.setdefault(key, next((c for c in guesses if c in columns), ""))
    named = [(k, c) for k, v in chosen.items() if k != "type" for c in v.split("+") if c]
    missing = [(k, c) for k, c in named if c not in columns]
    if missing or not chosen["input"] or not chosen["target"]:
        what = ", ".join(f"{k}={c!r}" for k, c in missing) or \
            ", ".join(k for k in ("input", "target") if not chosen[k]) + " (none of the usual column names)"
        raise DatasetError(f"{t.kind}:{t.path}: no column for {what}. Its columns: {', '.join(columns)}. "
                           f"Map them with --fields input=COLUMN,target=COLUMN[,choices=..][,image=..][,id=..]")
    return chosen


def sample(n: int, t: TableSpec, strata: list[Any] | None, limit: int | None) -> list[int]:
    """Row indices in the order taken: shuffled by ``t.shuffle``, then in turn from each stratum; ``limit`` rows."""
    order = list(range(n))
    if t.shuffle is not None:
        random.Random(t.shuffle).shuffle(order)
    if strata is not None:
        groups: dict[Any, list[int]] = {}
        for i in order:
            groups.setdefault(strata[i], []).append(i)
        queues = [groups[k] for k in sorted(groups, key=str)]
        order = [q[j] for j in range(max(map(len, queues), default=0)) for q in queues if j < len(q)]
    return order[:limit] if limit is not None else order


def load_table(spec: str, limit: int | None = None, convert: Callable[[dict], Item | None] | None = None) -> Dataset:
    """The items of a table spec (see the module's docstring); ``limit`` rows, sampled as the spec says."""
    t = parse_spec(spec)
    table = open_table(t)
    columns = list(table.column_names)
    chosen = resolve_fields(t, columns) if convert is None else dict(t.fields)
    if t.stratify and t.stratify not in columns:
        raise DatasetError(f"{spec}: no column {t.stratify!r} to stratify by. Its columns: {', '.join(columns)}")
    strata = list(table[t.stratify]) if t.stratify else None
    order = sample(len(table), t, strata, limit)
    picked = undecoded(table.select(order), t.images)  # only these rows' images are read, one row at a time
    typed = chosen.get("type") or _infer_type(picked, chosen)
    items, skipped, seen = [], [], set()
    for n, row in zip(order, picked):  # without an id column, a row is named by its place in the table
        rid = str(row[chosen["id"]]) if chosen.get("id") else f"{Path(t.path).name}-{n}"
        try:
            item = convert(row) if convert else _item(row, rid, chosen, typed, t)
        except InputError as exc:  # an image that does not decode: that row only
            skipped.append((rid, str(exc)))
            continue
        if item is None:
            continue
        if item.id in seen:
            raise DatasetError(f"{spec}: duplicate id {item.id!r} (map a unique column with --fields id=COLUMN)")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise DatasetError(f"{spec}: no items" + (f" ({len(skipped)} row(s) could not be read: "
                                                   f"{skipped[0][0]}: {skipped[0][1]})" if skipped else ""))
    return Dataset(spec, items, skipped)


def undecoded(table, columns: list[str]):
    """``table`` with its Image columns (also lists of images) left as bytes: the library decodes an Image cell as
    the row is read, and a bad one would fail the whole read; ``ImageData.load`` decodes and checks each here."""
    import copy

    import datasets

    def plain(feature):
        if isinstance(feature, datasets.Image):
            feature.decode = False
        elif isinstance(feature, (list, tuple)):
            for f in feature:
                plain(f)
        elif hasattr(feature, "feature"):  # List / Sequence of images
            plain(feature.feature)
        return feature

    for column in columns:
        if column in table.column_names:
            table = table.cast_column(column, plain(copy.deepcopy(table.features[column])))
    return table


def _infer_type(rows, chosen: dict[str, str]) -> str:
    if chosen.get("choices"):
        return "choice"
    refs = [gsm8k_final(str(r[chosen["target"]])).replace(",", "") for r in rows]
    try:
        [float(x) for x in refs]
    except ValueError:
        return "exact"
    return "numeric"


def _item(row: dict, rid: str, chosen: dict[str, str], typed: str, t: TableSpec) -> Item:
    reference = row[chosen["target"]]
    choices: list[str] = []
    if chosen.get("choices"):
        raw = row[chosen["choices"]]
        if isinstance(raw, str):  # a list as text: JSON, or Python's repr of one (MMMU's options)
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError:
                try:
                    raw = ast.literal_eval(raw)
                except (ValueError, SyntaxError):
                    raise DatasetError(f"{t.kind}:{t.path} row {rid}: {chosen['choices']} is not a list") from None
        raw = raw or []  # MathVista's free-form rows: None
        if isinstance(raw, dict) and "text" in raw:  # ARC's {"text": [...], "label": [...]}
            labels, raw = raw.get("label") or [], raw["text"]
            if str(reference) in labels:
                reference = letters(len(raw))[labels.index(str(reference))]
        choices = [str(c) for c in raw]
        if isinstance(reference, int) or (isinstance(reference, str) and reference.isdigit()
                                          and reference.upper() not in letters(len(choices))):
            index = int(reference)
            if not 0 <= index < len(choices):
                raise DatasetError(f"{t.kind}:{t.path} row {rid}: answer index {index} but {len(choices)} choices")
            reference = letters(len(choices))[index]
    if choices and isinstance(reference, str) and reference.strip() in choices \
            and reference.strip().upper() not in letters(len(choices)):  # MathVista: the answer is the choice's text
        reference = letters(len(choices))[choices.index(reference.strip())]
    if isinstance(reference, (list, tuple)):  # ChartQA's label: ["42"]
        reference = reference[0] if reference else ""
    reference = gsm8k_final(str(reference))
    if typed == "numeric":
        reference = reference.replace(",", "")
    images = [ImageData.load(_image_input(v), name=f"row {rid} {column}")
              for column in t.images for v in _as_list(row[column]) if v is not None]
    meta = {k: v for k, v in row.items() if k not in set(chosen.values()) and _plain(v)}
    # a row with choices is a choice item whatever the table's type (MMMU and MathVista mix them with open ones)
    answer_type = "choice" if choices else ("exact" if typed == "choice" else typed)
    return Item(rid, str(row[chosen["input"]]), reference, answer_type, images, choices, meta)


def gsm8k_final(reference: str) -> str:
    """A worked solution that ends "#### 42" (GSM8K's form) as its final answer; any other text as it is."""
    return reference.split("####")[-1].strip() if "####" in reference else reference.strip()


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _image_input(value: Any) -> Any:
    """An image cell as ``ImageData.load`` takes it: a PIL image, bytes, or a path."""
    if isinstance(value, dict):  # an Image feature not decoded: {"bytes": ..., "path": ...}
        return value.get("bytes") or value.get("path")
    return value


def _plain(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None


__all__ = ["TableNotFound", "TableSpec", "is_table", "load_table", "open_table", "parse_spec",
           "with_options"]
