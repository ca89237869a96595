"""The one base class of errors a user can act on: the CLI prints their message, without a traceback."""


class TacitError(RuntimeError):
    """Raised with a message that says what went wrong and what to do about it."""
