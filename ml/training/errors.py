"""Why a training job cannot run: the message is recorded on the job and shown to clients.

The subclasses say whose fault it is, and their messages start with a fixed prefix so that a
failed job's recorded error still tells (``UNKNOWN_SCOPE`` -> not found, ``EXTRA_NOT_INSTALLED``
-> a request this installation cannot serve).
"""

__all__ = [
    "EXTRA_NOT_INSTALLED",
    "UNKNOWN_SCOPE",
    "ExtraNotInstalled",
    "TrainingDataError",
    "UnknownScope",
]

#: How the message of an :class:`UnknownScope` starts.
UNKNOWN_SCOPE = "Unknown scope"
#: How the message of an :class:`ExtraNotInstalled` starts.
EXTRA_NOT_INSTALLED = "Extra not installed"


class TrainingDataError(ValueError):
    """The requested training data is unusable (bad range, too little history, none at all)."""


class UnknownScope(TrainingDataError):
    """No model of the domain has this scope."""

    def __init__(self, domain: str, scope: str, detail: str = "") -> None:
        self.domain, self.scope = domain, scope
        super().__init__(f"{UNKNOWN_SCOPE}: {domain}/{scope}" + (f" ({detail})" if detail else ""))


class ExtraNotInstalled(TrainingDataError):
    """A model needs an optional extra of the package that is not installed."""

    def __init__(self, extra: str, what: str) -> None:
        self.extra = extra
        super().__init__(
            f"{EXTRA_NOT_INSTALLED}: {what} needs the optional extra {extra!r} "
            f"(pip install 'millrace[{extra}]')"
        )
