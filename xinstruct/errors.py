"""Exception types. Every error a user can cause says what was wrong and what to do."""


class XInstructError(Exception):
    """Base class: the message is meant for the user, without a traceback."""


class InputError(XInstructError):
    """A file or value given by the user cannot be used."""

    def __init__(self, what: str, *, path: str | None = None, line: int | None = None, hint: str | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        msg = f"{where}{what}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)
        self.path, self.line, self.what, self.hint = path, line, what, hint


class StoreError(XInstructError):
    """The database refused an operation; nothing was written by the failed transaction."""


class StoreBusy(StoreError):
    """Another process held the database for longer than we were willing to wait."""


class AccessDenied(XInstructError):
    """The current user may not do this."""


class ConfigError(XInstructError):
    """A configuration file or option is invalid."""
