"""`molstrata export` (a run to a model file or a torch.export program) and `molstrata predict`."""

from __future__ import annotations

import argparse

from molstrata.cli.common import add_common, existing_files, replaced_line


def register(commands: argparse._SubParsersAction) -> None:
    _register_export(commands)
    _register_predict(commands)


def _register_export(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export", help="a trained run as one self-contained model file (or torch.export)",
        description="Write a run's model as one file holding everything a prediction needs: "
                    "weights, hyper-parameters, reference energies and standardisation, target "
                    "and unit, the training domain (elements, sizes, counts per stratum), the "
                    "molstrata version and hashes of the training data and split. It loads "
                    "with torch.load(weights_only=True). With -o FILE.pt2 it writes a "
                    "torch.export program instead, usable with no molstrata installed.")
    export.add_argument("source", metavar="RUN",
                        help="run directory written by molstrata train (or a model file to "
                             "turn into a .pt2 program)")
    which = export.add_mutually_exclusive_group()
    which.add_argument("--best", dest="checkpoint", action="store_const", const="best",
                       help="the checkpoint of the lowest validation loss (default)")
    which.add_argument("--last", dest="checkpoint", action="store_const", const="last",
                       help="the last epoch's checkpoint")
    export.set_defaults(checkpoint="best")
    export.add_argument("-o", "--out", required=True, metavar="FILE",
                        help="model.pt (molstrata model file) or model.pt2 (torch.export)")
    export.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> None:
    from molstrata.deploy.export import export

    before = existing_files(args.out)
    exported = export(args.source, args.out, checkpoint=args.checkpoint)
    print(exported.text())
    if (replaced := replaced_line(before, [exported.path])) is not None:
        print(replaced)


def _register_predict(commands: argparse._SubParsersAction) -> None:
    from molstrata.evaluation import DEFAULT_MIN_STRATUM

    predict = commands.add_parser(
        "predict", help="predict structure files with one or more model files",
        description="Predict every structure of ASE-readable files (extxyz, xyz, ASE .db) with "
                    "a model file, or with several as an ensemble (mean and standard "
                    "deviation). Writes OUT.csv (one row per structure: file, index, formula, "
                    "atoms, prediction with its unit, the reference and error where the file "
                    "holds the target, domain flags) and OUT.extxyz (the structures with the "
                    "prediction in their info and the input's per-atom arrays and cell), and "
                    "prints how many structures lie outside the training domain and why. A "
                    "periodic structure gets a row flagged periodic, not a prediction; "
                    "references on another zero (e.g. atomisation energies) get a hint and an "
                    "offset-corrected MAE.")
    predict.add_argument("paths", nargs="+", metavar="PATH",
                         help="one model file ending in .pt, or several (an ensemble), then "
                              "the structure files")
    predict.add_argument("-o", "--out", metavar="OUT",
                         help="output path without suffix (default: FIRST_FILE_predictions)")
    predict.add_argument("--property", dest="property_name", metavar="NAME",
                         help="the target as the files hold it, to report the error (e.g. "
                              "energy); default: the model's target, where a file declares it")
    predict.add_argument("--unit", metavar="UNIT",
                         help="unit of --property in the files (e.g. eV, Hartree, kcal/mol); "
                              "alone, the unit of the model's target")
    predict.add_argument("--min-stratum", type=int, default=DEFAULT_MIN_STRATUM, metavar="N",
                         help="flag a structure whose size, element or size x element held "
                              f"fewer than N training molecules (default: {DEFAULT_MIN_STRATUM}"
                              "); elements never seen and sizes outside the training range "
                              "are always flagged")
    predict.add_argument("--batch-size", type=int, metavar="N",
                         help="molecules per forward pass (default: 128 on a CPU, 2048 on a "
                              "GPU)")
    predict.add_argument("--dtype", choices=["float32", "float64"],
                         help="compute in this precision (default: the model's)")
    predict.add_argument("--compile", action="store_true",
                         help="run the model under torch.compile (pays a compilation first; on "
                              "a 2-core CPU it did not help: see docs/benchmarks.md)")
    add_common(predict, quiet="no progress bar")
    predict.set_defaults(func=_predict)


def _predict(args: argparse.Namespace) -> None:
    from molstrata.deploy.predict import output_paths, predict_files, split_paths, summary_text

    models, files = split_paths(args.paths)
    before = existing_files(*output_paths(args.out, files))
    result = predict_files(
        models, files, args.out, property_name=args.property_name, unit=args.unit,
        min_stratum=args.min_stratum, batch_size=args.batch_size, device=args.device,
        dtype=args.dtype, compile_model=args.compile, progress=not args.quiet)
    print(summary_text(result))
    if (replaced := replaced_line(before, [result.csv_path, result.extxyz_path])) is not None:
        print(replaced)
