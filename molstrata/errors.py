"""The one exception type for mistakes a user can fix (bad file, bad option, empty selection)."""


class MolstrataError(Exception):
    """A user error: the CLI prints its message as one line and exits with status 2.

    The message names the problem and how to fix it, in the caller's terms: Python's (the
    message) or, where a fix is a command and not a call, the command line's (`cli`, printed by
    the CLI instead). Programming errors use ordinary exceptions and keep their traceback.
    """

    def __init__(self, *args: object, cli: str | None = None) -> None:
        super().__init__(*args)
        self.cli = cli

    def __reduce__(self):
        return _rebuilt, (type(self), self.args, self.__dict__)


def _rebuilt(cls: type, args: tuple, state: dict) -> MolstrataError:
    """An error sent between processes, with its command-line spelling."""
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class ReportedElsewhere(MolstrataError):
    """A user error that another process already printed (rank 0 of a data-parallel run
    speaks for all): the CLI exits with status 2 without repeating it."""


class Interrupted(MolstrataError):
    """The user stopped the command (Ctrl-C, or a termination signal): the CLI prints the
    message, which says how to go on, and exits with status 130 as shells expect."""


class OptionError(MolstrataError):
    """A user error about one option's value, named as Python and config files name it
    (`workers`, `min_stratum`, `data.excludes`): "workers must be ... ". The command line
    names its own flag instead (--workers), where it has one of that name."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option} {problem}")
        self.option = option
        self.problem = problem

    def __reduce__(self):
        return type(self), (self.option, self.problem)
