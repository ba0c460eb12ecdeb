"""Does a vision member look at the image? Each one answers the image items again with the image removed and
with a blank image of the same size; an item whose answer did not change either way was answered without the
image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..answers import extract_answer
from ..errors import ConfigError
from ..types import Message, Prompt
from .common import Experiment, dataset_items, mean_ci, member_table, run_sync


def blank_like(image) -> bytes:
    """A white PNG of the image's size."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (image.width, image.height), (255, 255, 255)).save(buf, format="PNG")
    return buf.getvalue()


def image_ablation(df: pd.DataFrame, pool: Sequence[Any] | None = None, dataset: Any = None, registry: Any = None,
                   seed: int = 0) -> Experiment:
    """Each vision member's cached answer on every image item against its answers without the image and with a
    blank one (same prompt, same generation settings, extracted answers compared).

    Args:
        df: an evaluation frame whose items have images (``builtin:shapes``, an MMMU-style JSONL).
        pool: the members the evaluation ran, in order (names or Members); default: its labels, resolved.

    Returns:
        One row per item x vision member (``ignored``: the answer was the same without the image and with a blank
        one); ``summary["ignored_rate"]`` per member with a Wilson interval. Members that take no images
        (``vision = false``) are skipped, and said so.
    """
    import plotly.graph_objects as go

    from ..fusion.fanout import fan_out, load_members
    from ..settings import FusionSettings
    from ..specs import Member, load_registry

    registry = registry or load_registry()
    labels = df.attrs.get("pool")
    names = list(pool) if pool is not None else labels
    if not names:
        raise ConfigError("which members ran this evaluation? pass pool=")
    members = [m if isinstance(m, Member) else registry.member(m) for m in names]
    systems = df.attrs.get("member_systems") or [f"member:{m.label}" for m in members]
    vision = [(m, s) for m, s in zip(members, systems) if m.model.vision is not False]
    skipped = [m.label for m in members if m.model.vision is False]
    by_id = dataset_items(df, dataset)
    cached = member_table(df)
    items = [i for i in dict.fromkeys(cached["item_id"]) if by_id[i].images]
    if not vision or not items:
        raise ConfigError("no vision member or no image item in this evaluation: nothing to ablate")
    config = FusionSettings(seed=seed).member_config()

    async def run():
        backends = await load_members([m for m, _ in vision])
        rows = []
        for item in items:
            original = by_id[item].to_prompt()
            variants = {"no_image": Prompt(original.text, [], original.system),
                        "blank_image": Prompt(original.text, [blank_like(i) for i in original.images],
                                              original.system)}
            answers: dict[str, list] = {}
            for name, prompt in variants.items():
                def messages_for(i: int, p: Prompt = prompt) -> list[Message]:
                    return p.messages(vision[i][0].persona)

                outs = await fan_out([m for m, _ in vision], backends, messages_for, config)
                answers[name] = outs
            for k, (_m, system) in enumerate(vision):
                row = cached[(cached["item_id"] == item) & (cached["system"] == system)]
                before = extract_answer(str(row["answer"].iloc[0])) if len(row) and bool(row["ok"].iloc[0]) else None
                no_img, blank = answers["no_image"][k], answers["blank_image"][k]
                a_no = extract_answer(no_img.text) if no_img.ok else None
                a_blank = extract_answer(blank.text) if blank.ok else None
                same_no = before is not None and a_no is not None and a_no == before
                same_blank = before is not None and a_blank is not None and a_blank == before
                rows.append(dict(item_id=item, member=system, answer=before, without_image=a_no,
                                 with_blank_image=a_blank, same_without_image=same_no, same_with_blank=same_blank,
                                 ignored=same_no and same_blank,
                                 measured=before is not None and a_no is not None and a_blank is not None))
        return rows

    rows = run_sync(run())
    frame = pd.DataFrame(rows)
    rates: dict[str, dict[str, Any]] = {}
    for system, g in frame[frame["measured"]].groupby("member", sort=False):
        rate, lo, hi = mean_ci(g["ignored"].to_numpy(dtype=float))
        rates[system] = dict(ignored_rate=rate, ci=(lo, hi), items=len(g))
    summary = dict(items=len(items), members=[s for _, s in vision], skipped_text_only=skipped,
                   ignored=rates, generations=2 * len(items) * len(vision))
    fig = go.Figure(go.Bar(x=list(rates), y=[r["ignored_rate"] for r in rates.values()],
                           error_y=dict(type="data", symmetric=False,
                                        array=[r["ci"][1] - r["ignored_rate"] for r in rates.values()],
                                        arrayminus=[r["ignored_rate"] - r["ci"][0] for r in rates.values()])))
    fig.update_layout(title="Image ablation: share of image items answered the same without the image and with a "
                            "blank one", yaxis_title="answered without looking", yaxis_range=[0, 1.05])
    return Experiment("image_ablation", frame, fig, summary)
