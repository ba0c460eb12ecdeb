"""The fusion modes, one module each, and the registry that the engine, CLI, UI and evaluation read.

Adding a mode: write ``modes/NAME.py`` with a ``Mode`` (its judge task, reply schema, validation and final
answer rule) and register it in ``MODES`` below; every list of modes in the package comes from here.
"""

from __future__ import annotations

from ...errors import ConfigError
from .base import Mode
from .best_of import BEST_OF
from .debate import DEBATE, agreed, debate_messages
from .merge import MERGE
from .vote import VOTE, majority, vote_verdict

#: name -> Mode, in the order shown to users
MODES: dict[str, Mode] = {m.name: m for m in (BEST_OF, MERGE, DEBATE, VOTE)}
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
