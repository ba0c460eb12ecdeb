"""Model backends: local transformers models, the offline tiny Llama 4, OpenAI-compatible endpoints.

``load_model`` is the one entry point. It returns a handle on a shared backend: members that use the
same model cost one copy of the weights and their requests are batched together. ``close`` / ``with``
end a handle, ``unload`` closes a model now (see ``lifetime``).
"""

from __future__ import annotations

from .base import ModelBackend, StreamEnd
from .lifetime import ModelHandle, load_model, loaded, spec_for, unload, unload_all

__all__ = ["ModelBackend", "ModelHandle", "StreamEnd", "load_model", "loaded", "spec_for", "unload", "unload_all"]
