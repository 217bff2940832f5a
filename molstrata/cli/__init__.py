"""The `molstrata` command: argument parsing only; each subcommand calls one library function.

One module per group of commands holds their parsers beside their handlers: data (describe,
split, export), train, evaluate (evaluate, compare), study (study, sweep) and deploy (export,
predict); common.py has what they share. Building the parser imports no torch or matplotlib:
handlers import the stages they call.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from molstrata import __version__
from molstrata.cli import data, deploy, evaluate, study, train
from molstrata.cli.common import Parser
from molstrata.errors import Interrupted, MolstrataError, OptionError, ReportedElsewhere

INTERRUPTED_STATUS = 130
"""The exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells expect."""


def build_parser() -> Parser:
    """The full command-line interface."""
    parser = Parser(prog="molstrata",
                    description="SchNet and PaiNN models for molecular properties, with errors "
                                "reported per molecule size and per element.")
    parser.add_argument("--version", action="version", version=f"molstrata {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    for group in (data, train, evaluate, study, deploy):
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; user errors print one line and return 2, Ctrl-C returns 130."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args.func(args)
    except ReportedElsewhere:
        return 2
    except MolstrataError as error:
        rank = os.environ.get("RANK", "0")  # one of torchrun's processes: say which
        print(f"molstrata: error{f' (rank {rank})' if rank != '0' else ''}: "
              f"{_as_typed(error, args.command_parser)}", file=sys.stderr)
        return INTERRUPTED_STATUS if isinstance(error, Interrupted) else 2
    except KeyboardInterrupt:
        print("molstrata: interrupted", file=sys.stderr)
        return INTERRUPTED_STATUS
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    return 0


def _as_typed(error: MolstrataError, command: Parser) -> str:
    """The error's message, an option named as the command line spells it (--min-stratum
    where the library says min_stratum)."""
    if isinstance(error, OptionError) and (flag := command.flag(error.option)) is not None:
        return f"{flag} {error.problem}"
    return error.cli or str(error)
