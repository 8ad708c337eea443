"""Errors raised by operators. The CLI turns them into one-line messages."""


class EngineError(Exception):
    """A problem found while executing an operator (bad data, bad SQL, a missing file).

    The message is complete and user-facing: it names the file, column or
    operator involved and, where possible, the fix.
    """
