"""Typed errors: every failure a user can cause surfaces as one of these, with a message meant for them."""


class EmpexpError(Exception):
    """Base class of every error empexp raises on purpose."""


class InputError(EmpexpError, ValueError):
    """The text (or another user input) cannot be explained: empty, whitespace only, wrong type."""


class ModelLoadError(EmpexpError, OSError):
    """A classifier or explainer could not be found or loaded from the given id or folder."""


class UnknownExplainerError(EmpexpError, KeyError):
    """No explainer is registered under the requested name."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class PublishError(EmpexpError, OSError):
    """Publishing on the Hub failed: not logged in, no write access, refused metadata, unreachable Hub."""


def out_of_memory_reason(error: BaseException) -> str:
    """What a device out of memory (``torch.OutOfMemoryError``) says, for a user: its first line only, since
    torch adds lines of allocator detail."""
    return str(error).partition("\n")[0]
