"""The one exception type for mistakes a user can fix (bad file, bad option, empty selection)."""


class MolstrataError(Exception):
    """A user error: the CLI prints its message as one line and exits with status 2.

    The message names the problem and how to fix it. Programming errors use ordinary
    exceptions and keep their traceback.
    """


class ReportedElsewhere(MolstrataError):
    """A user error that another process already printed (rank 0 of a data-parallel run
    speaks for all): the CLI exits with status 2 without repeating it."""


class Interrupted(MolstrataError):
    """The user stopped the command (Ctrl-C, or a termination signal): the CLI prints the
    message, which says how to go on, and exits with status 130 as shells expect."""
