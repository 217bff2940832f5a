"""The `molstrata` command: argument parsing only; each subcommand calls one library function."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from molstrata import __version__
from molstrata.errors import MolstrataError


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line that points at --help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def _dataset_options(parser: argparse.ArgumentParser) -> None:
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
    group.add_argument("--cache-dir", metavar="DIR",
                       help="where the QM9 cache lives (default: $MOLSTRATA_CACHE_DIR or "
                            "~/.cache/molstrata)")
    filters = parser.add_argument_group("filters")
    filters.add_argument("--min-size", type=int, metavar="N", help="keep molecules of >= N atoms")
    filters.add_argument("--max-size", type=int, metavar="N", help="keep molecules of <= N atoms")
    filters.add_argument("--contains", nargs="+", default=[], metavar="EL",
                         help="keep molecules containing every listed element")
    filters.add_argument("--excludes", nargs="+", default=[], metavar="EL",
                         help="drop molecules containing any listed element")


def _load(args: argparse.Namespace):
    from molstrata.data.datasets import load_dataset
    from molstrata.data.filters import apply_filters

    molecules = load_dataset(args.dataset, args.property_name, args.unit,
                             cache_root=args.cache_dir)
    return apply_filters(molecules, min_size=args.min_size, max_size=args.max_size,
                         contains=args.contains, excludes=args.excludes)


def _check_cap(cap: int | None) -> None:
    if cap is not None and cap < 1:
        raise MolstrataError(f"--cap must be at least 1 molecule per size, got {cap}")


def _describe(args: argparse.Namespace) -> None:
    from molstrata.report.describe import describe

    _check_cap(args.cap)
    molecules = _load(args)
    name = "QM9" if args.dataset in ("qm9", "QM9") else Path(args.dataset).name
    result = describe(molecules, args.out, name=name, cap=args.cap, seed=args.seed)
    print(result.text)
    print(f"\nwrote {len(result.files)} files to {Path(args.out).resolve()}:")
    for path in result.files:
        print(f"  {path.name}")


def _split(args: argparse.Namespace) -> None:
    from molstrata.data.splits import random_split, save_split

    molecules = _load(args)
    split = random_split(len(molecules), fractions=args.fractions, counts=args.counts,
                         seed=args.seed)
    save_split(split, args.out, molecules, seed=args.seed, fractions=args.fractions,
               counts=args.counts, dataset=str(args.dataset))
    print(f"train {len(split.train):,} / val {len(split.val):,} / test {len(split.test):,} "
          f"molecules; wrote {args.out}")


def _export(args: argparse.Namespace) -> None:
    from molstrata.data.ase_io import write_db, write_extxyz
    from molstrata.data.sampling import undersample

    _check_cap(args.cap)
    suffix = Path(args.out).suffix.lower()
    if suffix not in (".extxyz", ".xyz", ".db"):
        raise MolstrataError(
            f"cannot tell the format of {args.out!r}; end it in .extxyz, .xyz or .db"
        )
    molecules = _load(args)
    if args.cap is not None:
        molecules = undersample(molecules, args.cap, seed=args.seed)
    (write_db if suffix == ".db" else write_extxyz)(molecules, args.out)
    print(f"wrote {len(molecules):,} molecules to {args.out}")


def build_parser() -> argparse.ArgumentParser:
    """The full command-line interface."""
    parser = _Parser(prog="molstrata",
                     description="SchNet models for molecular properties, with errors "
                                 "reported per molecule size and per element.")
    parser.add_argument("--version", action="version", version=f"molstrata {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    data = commands.add_parser("data", help="inspect, split and export datasets",
                               description="Inspect, split and export datasets.")
    data_commands = data.add_subparsers(dest="data_command", metavar="COMMAND",
                                        parser_class=_Parser)
    data_commands.required = True

    describe = data_commands.add_parser(
        "describe", help="size and element frequencies, tables and plots",
        description="Print the element-frequency table and the size histogram; write CSVs "
                    "and PNG plots (size histogram, element frequency, size x element heatmap, "
                    "and with --cap the undersampled histogram) to --out.")
    _dataset_options(describe)
    describe.add_argument("--cap", type=int, metavar="N",
                          help="also show undersampling to at most N molecules per size "
                               "(the study used 2000, 4000, 6000)")
    describe.add_argument("--seed", type=int, default=0, help="seed of the undersampling")
    describe.add_argument("-o", "--out", default="results/describe", metavar="DIR",
                          help="output folder (default: results/describe)")
    describe.set_defaults(func=_describe)

    split = data_commands.add_parser(
        "split", help="seeded train/val/test split saved as an index file",
        description="Make a seeded random train/validation/test split and save it as a JSON "
                    "index file (molecule ids and the dataset's fingerprint).")
    _dataset_options(split)
    sizes = split.add_mutually_exclusive_group()
    sizes.add_argument("--fractions", type=float, nargs=3, metavar=("TRAIN", "VAL", "TEST"),
                       help="fractions of the molecules (default: 0.8 0.1 0.1)")
    sizes.add_argument("--counts", type=int, nargs=3, metavar=("TRAIN", "VAL", "TEST"),
                       help="numbers of molecules")
    split.add_argument("--seed", type=int, default=0, help="seed of the split (default: 0)")
    split.add_argument("-o", "--out", default="split.json", metavar="FILE",
                       help="index file to write (default: split.json)")
    split.set_defaults(func=_split)

    export = data_commands.add_parser(
        "export", help="write (filtered) molecules to extxyz or an ASE database",
        description="Write the dataset, after filters and an optional cap, to an extxyz file "
                    "or an ASE database, with its properties and units.")
    _dataset_options(export)
    export.add_argument("--cap", type=int, metavar="N", help="undersample to N per size")
    export.add_argument("--seed", type=int, default=0, help="seed of the undersampling")
    export.add_argument("-o", "--out", required=True, metavar="FILE",
                        help="output file: .extxyz, .xyz or .db")
    export.set_defaults(func=_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; user errors print one line and return 2."""
    args = build_parser().parse_args(argv)
    if getattr(args, "fractions", None) is None and getattr(args, "counts", None) is None \
            and args.func is _split:
        args.fractions = [0.8, 0.1, 0.1]
    try:
        args.func(args)
    except MolstrataError as error:
        print(f"molstrata: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("molstrata: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    return 0
