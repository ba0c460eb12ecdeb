"""What every tab of the page is, and the pieces two tabs share.

A tab is a ``Tab`` subclass: made with the ``Page`` (what every tab is given) and the tabs it reads from, it lays
out its components in ``layout()`` (attributes of the tab), wires its events in ``wire()``, and names what the
page's load fills (``loads``, from ``on_load``). Its handlers are methods: a test builds the page with
``build_demo`` (no browser, no server) and calls ``tab.run(...)``, or finds them in ``demo.fns`` as
``FuseTab.run``. Logic that needs no component (a query, a check, a summary) is a module-level function.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import gradio as gr

from ..storage.labels import NONE_STANDS_OUT, RATINGS
from ..policy import Policy
from ..records import FusionResult
from ..storage import RunStore


@dataclass
class Page:
    """What every tab is given: where runs are kept, the host's policy, the model lists, the start-up model."""

    store: RunStore
    policy: Policy
    preset: str  #: the model the page starts on (pool and judge)
    #: the registry's models as dropdown choices (the page adds the session's endpoints): given as names, kept as
    #: (label, name) pairs that mark what cannot run here (``ModelChoices``); a dropdown's value is still the name
    models: list[str] | ModelChoices
    personas: list[str] = field(default_factory=lambda: [""])
    api_token: str | None = None  #: the key the programmatic endpoints (``/fuse``, ``/evaluate``) ask for
    preloader: Any = None  #: ``startup.Preloader`` of the start-up model, or None

    def __post_init__(self) -> None:
        if not isinstance(self.models, ModelChoices):
            self.models = ModelChoices(self.models, self.policy)


class ModelChoices(list[tuple[str, str]]):
    """Model names as dropdown choices, ``(label, name)``: a name that cannot run here as it is is marked
    ("scout-int4 — needs a GPU", "smol-hub — downloads on first use", "tiny-offline — loaded"; ``workbench.availability``),
    the others shown as their name. The value a dropdown gives is always the plain name."""

    def __init__(self, names: list[str], policy: Policy):
        self.names, self.policy = list(names), policy
        super().__init__(self.labelled(self.names))

    def labelled(self, names: list[str]) -> list[tuple[str, str]]:
        """``names`` as (label, name) pairs, as they stand now (a model loaded or downloaded since is said so)."""
        from ..availability import availability

        reg = self.policy.registry
        out = []
        for name in names:
            spec = reg.models.get(name)
            label = availability(spec, self.policy.public).label(name) if spec is not None else name
            out.append((label, name))
        return out


class Tab:
    """One tab: ``Tab(page, ...).build()`` inside the page's Blocks."""

    title: ClassVar[str]
    elem_id: ClassVar[str | None] = None
    load_js: ClassVar[str | None] = None  #: JavaScript the page runs once on load for this tab

    def __init__(self, page: Page):
        self.page, self.store, self.policy = page, page.store, page.policy
        self.loads: list[Any] = []  #: the components ``on_load`` fills, in order

    def build(self):
        with gr.Tab(self.title, elem_id=self.elem_id):
            self.layout()
        self.wire()
        return self

    def layout(self) -> None:
        raise NotImplementedError

    def wire(self) -> None:
        raise NotImplementedError

    def on_load(self, state: dict[str, Any], request: gr.Request | None) -> tuple:
        """Values for ``loads`` when a page opens (``state``: the browser's saved pool and endpoints)."""
        return ()


def session_key(request: gr.Request | None) -> str:
    """The browser session a request comes from (one per open page)."""
    return getattr(request, "session_hash", None) or "anonymous"


def models_with_endpoints(models: list[str] | ModelChoices,
                          state: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The model choices as (label, name): the registry's (``ModelChoices``, relabelled as things stand now) and the
    endpoints this browser added, sorted by name."""
    names = models.names if isinstance(models, ModelChoices) else list(models)
    choices = {n: (n, n) for n in [*names, *(e["name"] for e in (state or {}).get("endpoints", []))]}
    if isinstance(models, ModelChoices):
        choices.update((name, (label, name)) for label, name in models.labelled(models.names))
    return [choices[n] for n in sorted(choices)]


def label_controls(prefix: str) -> tuple:
    """The researcher's label of one run (best member answer, the fused answer against it, save), hidden until
    a run is shown: (group, best radio, rating radio, save button); element ids ``{prefix}label-...``."""
    with gr.Group(visible=False, elem_id=f"{prefix}label-box") as box:
        with gr.Row(equal_height=True):
            best = gr.Radio([], label="You as the judge: the best member answer", elem_id=f"{prefix}label-best")
            fused = gr.Radio(list(RATINGS), label="The fused answer, against that one", elem_id=f"{prefix}label-fused")
            save = gr.Button("Save my label", elem_id=f"{prefix}label-save", scale=0, min_width=120)
    return box, best, fused, save


def label_choices(result: FusionResult) -> list[tuple[str, int]]:
    """The best-member choices of a run: its members by name, and "none stands out"."""
    return [(o.label, o.member) for o in result.outputs] + [("none stands out", NONE_STANDS_OUT)]
