"""The fusion modes, one module each, and the registry that the engine, CLI, UI and evaluation read.

Adding a mode is one file: ``modes/NAME.py`` defining ``MODE = Mode(...)`` (its judge task, reply schema,
validation and final-answer rule; ``order`` places it in menus). Every module here that defines ``MODE``
is registered; every list of modes in the package comes from ``MODES``.
"""

from __future__ import annotations

import pkgutil
from importlib import import_module

from ...errors import ConfigError
from .base import Mode
from .debate import agreed, debate_messages
from .vote import majority, vote_verdict


def _discover() -> dict[str, Mode]:
    found = [getattr(import_module(f"{__name__}.{m.name}"), "MODE", None) for m in pkgutil.iter_modules(__path__)]
    return {m.name: m for m in sorted((m for m in found if isinstance(m, Mode)), key=lambda m: m.order)}


#: name -> Mode, in the order shown to users
MODES: dict[str, Mode] = _discover()
MODE_NAMES: tuple[str, ...] = tuple(MODES)
JUDGED_MODES: tuple[str, ...] = tuple(n for n, m in MODES.items() if m.judged)


def get_mode(mode: str | Mode) -> Mode:
    """The Mode called ``mode``; raises ConfigError naming the modes there are."""
    if isinstance(mode, Mode):
        return mode
    try:
        return MODES[mode]
    except KeyError:
        raise ConfigError(f"unknown mode {mode!r}: choose one of {', '.join(MODE_NAMES)}") from None


__all__ = ["JUDGED_MODES", "MODES", "MODE_NAMES", "Mode", "agreed", "debate_messages", "get_mode", "majority",
           "vote_verdict"]
