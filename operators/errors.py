"""The root of every error seeknal-flow raises on purpose, and the engine's own.

The root lives here, at the bottom of the dependency graph, because
``operators`` never imports ``seeknal_flow``: both packages derive from it, and
``seeknal_flow.errors`` re-exports it with the framework's stage errors.
"""


class SeeknalError(Exception):
    """A user-facing problem; the message names where, what and the fix.

    The CLI prints ``str(error)`` (one line per problem) and exits 1; ``--debug``
    adds the traceback with its causes.
    """


class EngineError(SeeknalError):
    """A problem found while executing an operator (bad data, bad SQL, a missing file).

    The message is complete and user-facing: it names the file, column or
    operator involved and, where possible, the fix.
    """


# datafusion-python has no exception class of its own (55.x): planning errors are
# ValueError, execution errors a bare Exception. Catching this tuple is catching
# "DataFusion failed"; it is the one place that knowledge lives.
DATAFUSION_ERRORS: tuple[type[Exception], ...] = (Exception,)
