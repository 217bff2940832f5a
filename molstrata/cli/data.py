"""`molstrata data describe | split | export`: look at a dataset, split it, write it out."""

from __future__ import annotations

import argparse
from pathlib import Path

from molstrata.cli.common import Parser, add_dataset_options, check_cap, load
from molstrata.errors import MolstrataError
from molstrata.wording import counted


def register(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="inspect, split and export datasets",
                               description="Inspect, split and export datasets.")
    data_commands = data.add_subparsers(dest="data_command", metavar="COMMAND",
                                        parser_class=Parser)
    data_commands.required = True
    _register_describe(data_commands)
    _register_split(data_commands)
    _register_export(data_commands)


def _register_describe(commands: argparse._SubParsersAction) -> None:
    describe = commands.add_parser(
        "describe", help="size and element frequencies, tables and plots",
        description="Print the element-frequency table and the size histogram; write CSVs "
                    "and PNG plots (size histogram, element frequency, size x element heatmap, "
                    "and with --cap the undersampled histogram) to --out. Check the values of "
                    "--property (on QM9 by default U0): how many are NaN or infinite, their "
                    "range, mean and standard deviation per size, and outliers (beyond 6 "
                    "robust standard deviations of the residual per atom after per-element "
                    "reference energies), with their ids in summary.json and value_flags.csv.")
    add_dataset_options(describe)
    describe.add_argument("--cap", type=int, metavar="N",
                          help="also show undersampling to at most N molecules per size "
                               "(the study used 2000, 4000, 6000)")
    describe.add_argument("--seed", type=int, default=0, help="seed of the undersampling")
    describe.add_argument("-o", "--out", default="results/describe", metavar="DIR",
                          help="output folder (default: results/describe)")
    describe.set_defaults(func=_describe)


def _describe(args: argparse.Namespace) -> None:
    from molstrata.data.datasets import described_property, is_extensive
    from molstrata.report.describe import describe

    check_cap(args.cap)
    molecules = load(args)
    name = "QM9" if args.dataset in ("qm9", "QM9") else Path(args.dataset).name
    target = described_property(args.dataset, args.property_name)
    result = describe(molecules, args.out, name=name, cap=args.cap, seed=args.seed,
                      target=target,
                      extensive=target is None or is_extensive(args.dataset, target))
    print(result.text)
    print(f"\nwrote {len(result.files)} files to {Path(args.out).resolve()}:")
    for path in result.files:
        print(f"  {path.name}")


def _register_split(commands: argparse._SubParsersAction) -> None:
    split = commands.add_parser(
        "split", help="seeded train/val/test split saved as an index file",
        description="Make a seeded random train/validation/test split and save it as a JSON "
                    "index file (molecule ids and the dataset's fingerprint).")
    add_dataset_options(split)
    sizes = split.add_mutually_exclusive_group()
    sizes.add_argument("--fractions", type=float, nargs=3, metavar=("TRAIN", "VAL", "TEST"),
                       help="fractions of the molecules (default: 0.8 0.1 0.1)")
    sizes.add_argument("--counts", type=int, nargs=3, metavar=("TRAIN", "VAL", "TEST"),
                       help="numbers of molecules")
    split.add_argument("--seed", type=int, default=0, help="seed of the split (default: 0)")
    split.add_argument("-o", "--out", default="split.json", metavar="FILE",
                       help="index file to write (default: split.json)")
    split.set_defaults(func=_split)


def _split(args: argparse.Namespace) -> None:
    from molstrata.data.splits import random_split, save_split

    if args.fractions is None and args.counts is None:
        args.fractions = [0.8, 0.1, 0.1]
    molecules = load(args)
    split = random_split(len(molecules), fractions=args.fractions, counts=args.counts,
                         seed=args.seed)
    save_split(split, args.out, molecules, seed=args.seed, fractions=args.fractions,
               counts=args.counts, dataset=str(args.dataset))
    print(f"train {len(split.train):,} / val {len(split.val):,} / test {len(split.test):,} "
          f"molecules; wrote {args.out}")


def _register_export(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export", help="write (filtered) molecules to extxyz or an ASE database",
        description="Write the dataset, after filters and an optional cap, to an extxyz file "
                    "or an ASE database, with its properties and units.")
    add_dataset_options(export)
    export.add_argument("--cap", type=int, metavar="N", help="undersample to N per size")
    export.add_argument("--seed", type=int, default=0, help="seed of the undersampling")
    export.add_argument("-o", "--out", required=True, metavar="FILE",
                        help="output file: .extxyz, .xyz or .db")
    export.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> None:
    from molstrata.data.ase_io import write_db, write_extxyz
    from molstrata.data.sampling import undersample

    check_cap(args.cap)
    suffix = Path(args.out).suffix.lower()
    if suffix not in (".extxyz", ".xyz", ".db"):
        raise MolstrataError(
            f"cannot tell the format of {args.out!r}; end it in .extxyz, .xyz or .db"
        )
    molecules = load(args)
    if args.cap is not None:
        molecules = undersample(molecules, args.cap, seed=args.seed)
    (write_db if suffix == ".db" else write_extxyz)(molecules, args.out)
    print(f"wrote {counted(len(molecules), 'molecule')} to {args.out}")
