"""The command-line reference (docs/cli.md), rendered from the argparse parsers themselves so
that it cannot drift from `--help`:

    python -m molstrata.cli.reference > docs/cli.md

Rendered from the parsers' actions rather than from argparse's help text, whose layout
depends on the terminal's width and on the Python version.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

from molstrata.cli import build_parser

HEADER = """# Command-line reference

Every command and option of `molstrata`, generated from its argument parsers by
`python -m molstrata.cli.reference > docs/cli.md` (a test regenerates it and compares). Each
command's `--help` prints the same. Options without a default below take theirs from the
preset or config file where the command has one.
"""


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("molstrata",)
             ) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(`molstrata data split`, its parser) for the parser and every subcommand, depth first."""
    yield " ".join(path), parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))


def render(parser: argparse.ArgumentParser | None = None) -> str:
    """The whole reference as Markdown."""
    parser = build_parser() if parser is None else parser
    parts = [HEADER]
    for name, command in commands(parser):
        parts.append(_command(name, command))
    return "\n".join(parts)


def _command(name: str, parser: argparse.ArgumentParser) -> str:
    depth = name.count(" ")
    lines = [f"{'#' * min(depth + 2, 4)} `{name}`", ""]
    lines += ["```text", _synopsis(name, parser), "```", ""]
    if parser.description:
        lines += [_paragraph(parser.description, parser), ""]
    for group in parser._action_groups:
        rows = [_row(action) for action in group._group_actions if _listed(action)]
        if not rows:
            continue
        if _is_subcommands(group):
            lines += ["| command | what it does |", "|---|---|", *rows, ""]
        else:
            lines += [f"| {group.title or 'options'} | what it does |", "|---|---|", *rows, ""]
    if parser.epilog:
        lines += [_paragraph(parser.epilog, parser), ""]
    return "\n".join(lines)


def _listed(action: argparse.Action) -> bool:
    return action.help != argparse.SUPPRESS and not isinstance(action, argparse._HelpAction)


def _synopsis(name: str, parser: argparse.ArgumentParser) -> str:
    words = [name]
    if any(a.option_strings and not isinstance(a, argparse._HelpAction) for a in parser._actions):
        words.append("[options]")
    for action in parser._actions:
        if not action.option_strings:
            words.append(_metavar(action))
    return " ".join(words)


def _row(action: argparse.Action) -> str:
    if isinstance(action, argparse._SubParsersAction):
        return "\n".join(f"| `{choice.metavar}` | {_cell(choice.help or '')} |"
                         for choice in action._choices_actions)
    name = ", ".join(action.option_strings) if action.option_strings else ""
    value = _metavar(action) if action.nargs != 0 else ""
    label = " ".join(part for part in (name, value) if part)
    text = action.help or ""
    if action.choices is not None and action.metavar is not None:  # else the metavar lists them
        text += f" (one of: {', '.join(map(str, action.choices))})"
    if _shows_default(action):
        text += f" [default: {action.default}]"
    if "|" in label:  # a pipe would end the table's cell: HTML reads the same everywhere
        return f"| <code>{label.replace('|', '&#124;')}</code> | {_cell(text)} |"
    return f"| `{label}` | {_cell(text)} |"


def _metavar(action: argparse.Action) -> str:
    formatter = argparse.HelpFormatter("molstrata")
    if action.option_strings:
        default = formatter._get_default_metavar_for_optional(action)
    else:
        default = formatter._get_default_metavar_for_positional(action)
    return formatter._format_args(action, default)


def _shows_default(action: argparse.Action) -> bool:
    default = action.default
    if default in (None, argparse.SUPPRESS, False, [], ()) or action.nargs == 0:
        return False
    return "default" not in (action.help or "")


def _is_subcommands(group: argparse._ArgumentGroup) -> bool:
    return any(isinstance(a, argparse._SubParsersAction) for a in group._group_actions)


def _paragraph(text: str, parser: argparse.ArgumentParser) -> str:
    if parser.formatter_class is argparse.RawDescriptionHelpFormatter and "\n" in text.strip():
        return "```text\n" + text.strip("\n") + "\n```"
    return " ".join(text.split())


def _cell(text: str) -> str:
    text = " ".join(text.split())
    for raw, escaped in (("|", "\\|"), ("*", "\\*"), ("<", "&lt;"), (">", "&gt;")):
        text = text.replace(raw, escaped)
    return text


if __name__ == "__main__":
    sys.stdout.write(render())
