"""What every command shares: the parser class, the options several commands repeat, and
loading a dataset with the data stage's filters. Imports neither torch nor matplotlib:
`molstrata --help` builds every parser without them (handlers import what they call)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from pathlib import Path

from molstrata.errors import MolstrataError
from molstrata.wording import counted


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line that points at the --help of the command
    they concern. The parsed namespace's `command_parser` is the innermost (sub)command's."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.set_defaults(command_parser=self)  # a subcommand's default replaces its parent's

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None) -> argparse.Namespace:  # type: ignore[override]
        """As argparse's, with unknown options reported by the subcommand given them."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            parsed.command_parser.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def flag(self, dest: str) -> str | None:
        """This command's long option that sets `dest` (--min-stratum for min_stratum)."""
        for action in self._actions:
            if action.dest == dest:
                return next((s for s in action.option_strings if s.startswith("--")), None)
        return None


def add_common(parser, *, device: bool = True, device_default: str | None = "auto",
               threads: bool = False, cache_dir: bool = False, set_help: str | None = None,
               quiet: str | None = "no progress bars") -> None:
    """The options that commands repeat, with one wording: --device, --threads, --cache-dir,
    --set and -q/--quiet, each where asked for. device_default: None where a config file
    decides the device unless the option is given."""
    if device:
        parser.add_argument("--device", default=device_default,
                            help="auto (the default: CUDA when present), cpu or cuda")
    if threads:
        parser.add_argument("--threads", type=int, metavar="N", help="CPU threads")
    if cache_dir:
        parser.add_argument("--cache-dir", metavar="DIR",
                            help="where the QM9 cache lives (default: $MOLSTRATA_CACHE_DIR or "
                                 "~/.cache/molstrata)")
    if set_help is not None:
        parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                            help=set_help)
    if quiet is not None:
        parser.add_argument("-q", "--quiet", action="store_true", help=quiet)


def add_dataset_options(parser: argparse.ArgumentParser) -> None:
    """--dataset, --property, --unit, --cache-dir and the size and element filters."""
    group = parser.add_argument_group("dataset")
    group.add_argument("--dataset", default="qm9", metavar="qm9|FILE",
                       help="qm9 (default, embedded) or a file ASE can read: extxyz, xyz, .db")
    group.add_argument("--property", dest="property_name", metavar="NAME",
                       help="per-structure property to read from FILE (e.g. energy); "
                            "on QM9 one of U0, U, H, G, homo, lumo, gap, zpve, mu, alpha, r2, "
                            "Cv, A, B, C")
    group.add_argument("--unit", metavar="UNIT",
                       help="unit of --property in FILE (e.g. eV, Hartree, kcal/mol); default: "
                            "the file's metadata")
    group.add_argument("--skip-periodic", action="store_true",
                       help="leave out FILE's periodic structures (slabs, bulk cells) instead "
                            "of refusing the file, and say how many")
    add_common(group, device=False, cache_dir=True, quiet=None)
    filters = parser.add_argument_group("filters")
    filters.add_argument("--min-size", type=int, metavar="N", help="keep molecules of >= N atoms")
    filters.add_argument("--max-size", type=int, metavar="N", help="keep molecules of <= N atoms")
    filters.add_argument("--contains", nargs="+", default=[], metavar="EL",
                         help="keep molecules containing every listed element")
    filters.add_argument("--excludes", nargs="+", default=[], metavar="EL",
                         help="drop molecules containing any listed element")


def load(args: argparse.Namespace):
    """The molecules that --dataset and the filters select."""
    from molstrata.data.datasets import load_dataset
    from molstrata.data.filters import apply_filters

    molecules = load_dataset(args.dataset, args.property_name, args.unit,
                             cache_root=args.cache_dir, skip_periodic=args.skip_periodic,
                             log=print)
    return apply_filters(molecules, min_size=args.min_size, max_size=args.max_size,
                         contains=args.contains, excludes=args.excludes)


def check_cap(cap: int | None) -> None:
    if cap is not None and cap < 1:
        raise MolstrataError(f"--cap must be at least 1 molecule per size, got {cap}")


def existing_files(*paths: str | os.PathLike | None) -> set[Path]:
    """The files at `paths` (None: none) and inside those that are folders, as they are now:
    what a command's output may replace."""
    found = set()
    for path in (Path(p) for p in paths if p is not None):
        if path.is_file():
            found.add(path.resolve())
        elif path.is_dir():
            found.update(p.resolve() for p in path.rglob("*") if p.is_file())
    return found


def replaced_line(before: set[Path], written: Iterable[str | os.PathLike]) -> str | None:
    """One line naming the files of `written` that `before` (`existing_files`) held, which
    this command replaced; None when it replaced nothing. Output files are overwritten, as
    make and compilers do (an evaluation is re-run after more training), and said to be."""
    replaced = [Path(p) for p in written if Path(p).resolve() in before]
    if not replaced:
        return None
    folders = {p.parent for p in replaced}
    names = ", ".join(p.name if len(folders) == 1 else str(p) for p in replaced)
    where = f" in {folders.pop()}" if len(folders) == 1 else ""
    return f"replaced {counted(len(replaced), 'earlier file')}{where}: {names}"
