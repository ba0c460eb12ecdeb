"""Where runs are kept: ``RunStore`` (SQLite, records only), its schema as named steps (``migrations``), and the
researcher's labels with the judge's agreement with them (``labels``)."""

from .store import RunStore

__all__ = ["RunStore"]
