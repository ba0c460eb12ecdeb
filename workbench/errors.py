"""One small exception hierarchy. What to retry is said by the class, not by parsing messages."""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(WorkbenchError):
    """A spec, preset, user file or environment variable is wrong or missing."""


class UnknownModelError(ConfigError):
    """A model name resolves to no preset, Hugging Face id or checkpoint directory."""


class MissingDependencyError(ConfigError):
    """An optional package is not installed; the message names what to install."""


class InputError(WorkbenchError):
    """The user's input cannot be used: empty prompt, unreadable image, prompt too long..."""


class BackendError(WorkbenchError):
    """A model backend failed. ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = False, kind: str = "backend"):
        super().__init__(message)
        self.retryable = retryable
        self.kind = kind


class ModelLoadError(BackendError):
    """Weights or a processor could not be loaded (not a model, not available offline...)."""

    def __init__(self, message: str):
        super().__init__(message, retryable=False, kind="load")


class OutOfMemoryError(BackendError):
    """The accelerator ran out of memory; the message suggests INT4, max_memory or offload."""

    def __init__(self, message: str):
        super().__init__(message, retryable=False, kind="oom")


class JudgeError(WorkbenchError):
    """The judge could not produce a valid verdict."""


class PolicyError(WorkbenchError):
    """The call asks for something this server does not allow (a model, a host, a key, a limit)."""


class TooLargeError(PolicyError):
    """The input is over a host-set size limit: prompt characters, images, pixels, request bytes."""


class BusyError(PolicyError):
    """Over a host-set limit on runs in flight (the caller's or the server's); trying again later may help."""
