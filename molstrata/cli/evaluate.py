"""`molstrata evaluate` (stratified errors of a run) and `molstrata compare` (runs side by side)."""

from __future__ import annotations

import argparse
from pathlib import Path

from molstrata.cli.common import add_common, existing_files, replaced_line
from molstrata.errors import MolstrataError
from molstrata.evaluation import (
    CONVENTIONS,
    DEFAULT_MIN_STRATUM,
    DEFAULT_UNIT,
    OUT_SUFFIX,
    SPLITS,
)


def register(commands: argparse._SubParsersAction) -> None:
    _register_evaluate(commands)
    _register_compare(commands)


KEY_DEFAULTS = "; ".join(f"{energy} beside {' or '.join(references)}"
                         for _, energy, references, *_ in CONVENTIONS)
"""The keys --predicted and --reference default to (MACE's, then NequIP's), for the help."""


def _register_evaluate(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "evaluate", help="stratified errors of a trained run, or of any model's predictions",
        description="Predict the run's test split (or val, train, all, or another dataset) and "
                    "write metrics.json, CSVs per size / element / size x element with 95 % "
                    "bootstrap intervals, predictions.csv and plots. With --predictions FILE "
                    "instead of RUN, the same for another model's energies (MACE, NequIP, "
                    "SchNetPack, ...) stored in FILE beside the reference ones, or in a "
                    "table (CSV, SchNetPack's predictions.pt) joined to --structures FILE.")
    evaluate.add_argument("run", metavar="RUN", nargs="?",
                          help="run directory written by molstrata train")
    evaluate.add_argument("--predictions", metavar="FILE",
                          help="evaluate another model's predictions instead of a RUN: an "
                               "ASE-readable file (extxyz, ASE .db) whose structures carry a "
                               "predicted and a reference energy each")
    evaluate.add_argument("--predicted", metavar="KEY",
                          help="with --predictions, the predicted energy's key (default: the "
                               f"first convention the file follows: {KEY_DEFAULTS}), or its "
                               "column in a CSV / key in predictions.pt (default there: the "
                               "only one)")
    evaluate.add_argument("--reference", metavar="KEY",
                          help="with --predictions, the reference energy's key (default: "
                               "the convention's, as for --predicted)")
    evaluate.add_argument("--structures", metavar="FILE",
                          help="with --predictions TABLE (a CSV of id and predicted value, or "
                               "SchNetPack's spkpredict predictions.pt), the structures it "
                               "predicted, holding the reference energies (any ASE-readable "
                               "file)")
    evaluate.add_argument("--predicted-forces", metavar="KEY",
                          help="with --predictions, the predicted forces' per-atom key "
                               "(default: MACE_forces, or NequIP's forces beside "
                               "original_dataset_forces; none there: energies only)")
    evaluate.add_argument("--reference-forces", metavar="KEY",
                          help="with --predictions, the reference forces' key (default: "
                               "REF_forces, else forces, beside MACE_forces; "
                               "original_dataset_forces beside NequIP's), in --unit per Å")
    evaluate.add_argument("--train", metavar="FILE",
                          help="with --predictions, the structures the model was trained on "
                               "(any ASE-readable file; atoms only): gives training shares, "
                               "domain flags and the tests of hypotheses 1 and 2")
    evaluate.add_argument("--split", choices=SPLITS,
                          help="which molecules of the run's dataset (default: test)")
    evaluate.add_argument("--dataset", metavar="FILE",
                          help="evaluate on another ASE-readable file instead")
    evaluate.add_argument("--property", dest="property_name", metavar="NAME",
                          help="the target's name in FILE (default: the run's target)")
    evaluate.add_argument("--unit", metavar="UNIT",
                          help="unit of --property in FILE, or of the energies in --predictions "
                               f"FILE (default there: {DEFAULT_UNIT})")
    evaluate.add_argument("--skip-periodic", action="store_true",
                          help="leave out FILE's periodic structures (slabs, bulk cells) "
                               "instead of refusing it")
    evaluate.add_argument("--skip-unseen", action="store_true",
                          help="leave out the molecules holding an element no training "
                               "molecule has (predict flags them and does not predict them) "
                               "instead of refusing them, and say which")
    evaluate.add_argument("--checkpoint", choices=["best", "last"],
                          help="best (default: the epoch of the lowest validation loss) or "
                               "last")
    evaluate.add_argument("--all-sizes", action="store_true",
                          help="report every size, not only sizes with >= 1 %% of molecules")
    evaluate.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                          help="bootstrap resamples for the confidence intervals")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    evaluate.add_argument("--min-stratum", type=int, metavar="N",
                          help="with --dataset or --train, flag a molecule whose size, element "
                               "or size x element held fewer than N training molecules (default: "
                               f"{DEFAULT_MIN_STRATUM})")
    add_common(evaluate, threads=True, quiet=None)
    evaluate.add_argument("-o", "--out", metavar="DIR",
                          help="default: RUN/eval-SPLIT; with --predictions, FILE's stem + "
                               f"{OUT_SUFFIX} next to FILE")
    evaluate.add_argument("--devices", type=int, metavar="N",
                          help="predict on N processes of this machine (torchrun --standalone "
                               "--nproc-per-node N); metrics are computed once, from all")
    evaluate.set_defaults(func=_evaluate)


RUN_ONLY = ("split", "dataset", "property_name", "checkpoint", "skip_unseen", "devices",
            "threads")
"""Options of a run's evaluation, refused with --predictions."""
PREDICTIONS_ONLY = ("predicted", "reference", "train", "structures", "predicted_forces",
                    "reference_forces")


def _evaluate(args: argparse.Namespace) -> None:
    from molstrata.evaluation.evaluate import evaluate_run, summary_text
    from molstrata.report.evaluation_plots import draw_evaluation
    from molstrata.training.launch import launch_devices

    if args.predictions is not None:
        return _evaluate_predictions(args)
    if args.run is None:
        raise MolstrataError("evaluate needs a RUN directory, or --predictions FILE to "
                             "evaluate another model's predictions")
    _refuse(args, PREDICTIONS_ONLY, "applies to --predictions FILE; give a file, or drop it")
    if args.skip_periodic and args.dataset is None:
        raise MolstrataError("--skip-periodic applies to the structures of --dataset FILE; "
                             "give a file, or drop it (a run's own data holds no periodic "
                             "structures)")
    if launch_devices(args.argv, args.devices, args.device):
        return
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    before = existing_files(*Path(args.run).glob("eval-*"), args.out)
    evaluation = evaluate_run(
        args.run, split=args.split or "test", dataset=args.dataset,
        property_name=args.property_name, unit=args.unit, checkpoint=args.checkpoint or "best",
        out_dir=args.out, all_sizes=args.all_sizes, n_bootstrap=args.bootstrap, seed=args.seed,
        device=args.device,
        min_stratum=DEFAULT_MIN_STRATUM if args.min_stratum is None else args.min_stratum,
        skip_periodic=args.skip_periodic, skip_unseen=args.skip_unseen)
    if evaluation is not None:  # rank 0 (or the only process)
        figures = draw_evaluation(evaluation, evaluation.out_dir)
        print(summary_text(evaluation, figures))
        if (replaced := replaced_line(before, [*evaluation.files, *figures])) is not None:
            print(replaced)


def _evaluate_predictions(args: argparse.Namespace) -> None:
    """evaluate --predictions FILE: another model's energies, without a run."""
    from molstrata.evaluation.evaluate import summary_text
    from molstrata.evaluation.predictions_file import evaluate_predictions, output_folder
    from molstrata.report.evaluation_plots import draw_evaluation

    if args.run is not None:
        raise MolstrataError(f"give RUN or --predictions FILE, not both: RUN {args.run} "
                             "evaluates a molstrata run, --predictions another model's file")
    _refuse(args, RUN_ONLY, "applies to a RUN, not to --predictions FILE; drop it")
    if args.min_stratum is not None and args.train is None:
        raise MolstrataError("--min-stratum applies to a RUN, or to --predictions FILE with "
                             "--train FILE; give the training file, or drop it")
    out = output_folder(args.predictions, args.out)
    before = existing_files(out)
    evaluation = evaluate_predictions(
        args.predictions, predicted=args.predicted, reference=args.reference,
        unit=args.unit or DEFAULT_UNIT, structures=args.structures,
        predicted_forces=args.predicted_forces, reference_forces=args.reference_forces,
        out_dir=out,
        all_sizes=args.all_sizes, n_bootstrap=args.bootstrap, seed=args.seed,
        skip_periodic=args.skip_periodic, train=args.train,
        min_stratum=DEFAULT_MIN_STRATUM if args.min_stratum is None else args.min_stratum)
    figures = draw_evaluation(evaluation, evaluation.out_dir)
    print(summary_text(evaluation, figures))
    if (replaced := replaced_line(before, [*evaluation.files, *figures])) is not None:
        print(replaced)


def _register_compare(commands: argparse._SubParsersAction) -> None:
    compare = commands.add_parser(
        "compare", help="runs side by side: errors, strata won, curves, run time",
        description="Compare runs on the same split: global errors with 95 % intervals, MAE "
                    "per size and per element on one axis, learning curves with their bands, "
                    "training and evaluation time, and which run wins each stratum (its lead "
                    "tested by a paired bootstrap over the molecules). Runs whose evaluation is "
                    "missing or older than their best checkpoint are evaluated first. With "
                    "--predictions FILE FILE ... instead of RUNs, the same for other models' "
                    "energies (MACE, NequIP, SchNetPack, ...) on the same structures, paired "
                    "structure by structure; files under one --labels name are one model's "
                    "replicates (one per training seed), with intervals over both.")
    compare.add_argument("runs", nargs="*", metavar="RUN",
                         help="two or more run directories written by molstrata train")
    compare.add_argument("--predictions", nargs="+", metavar="FILE",
                         help="compare other models' predictions instead of RUNs: files whose "
                              "structures carry a predicted and a reference energy each (as "
                              "evaluate --predictions reads), the same structures in each "
                              "(matched by id, else by identical atoms)")
    compare.add_argument("--predicted", nargs="+", metavar="KEY",
                         help="with --predictions, the predicted energy's key: one for every "
                              "file, one per file, or several keys of one file (each a model; "
                              f"default: the first convention a file follows: {KEY_DEFAULTS})")
    compare.add_argument("--reference", metavar="KEY",
                         help="with --predictions, the reference energy's key (default: "
                              "the convention's, as for --predicted)")
    compare.add_argument("--unit", metavar="UNIT",
                         help=f"with --predictions, the energies' unit (default: {DEFAULT_UNIT})")
    compare.add_argument("--structures", metavar="FILE",
                         help="with --predictions given as tables (CSV of id and value, or "
                              "SchNetPack's predictions.pt), the structures they predicted, "
                              "holding the reference energies")
    compare.add_argument("--train", metavar="FILE",
                         help="with --predictions, the structures the models were trained on: "
                              "training shares and the tests of hypotheses 1 and 2")
    compare.add_argument("--skip-periodic", action="store_true",
                         help="with --predictions, leave out periodic structures instead of "
                              "refusing them")
    compare.add_argument("--labels", nargs="+", metavar="NAME",
                         help="one name per run (default: the directories' names); with "
                              "--predictions, one per file (the same name to a model's "
                              "replicate files) or per --predicted key of one file (default: "
                              "the files' stems, or the keys)")
    compare.add_argument("--split", choices=SPLITS,
                         help="which evaluation to compare (default: test)")
    compare.add_argument("--no-evaluate", action="store_true",
                         help="refuse runs that are not evaluated yet instead of evaluating them")
    add_common(compare, device_default=None)
    compare.add_argument("-o", "--out", metavar="DIR",
                         help="output folder (default: results/compare/LABELS-DATE-TIME)")
    compare.set_defaults(func=_compare)


COMPARE_RUN_ONLY = ("split", "no_evaluate", "device")
"""Options of a comparison of runs, refused with --predictions."""
COMPARE_PREDICTIONS_ONLY = ("predicted", "reference", "unit", "structures", "train",
                            "skip_periodic")


def _compare(args: argparse.Namespace) -> None:
    from molstrata.report.compare import compare, comparison_text

    if args.predictions is not None:
        return _compare_predictions(args)
    if not args.runs:
        raise MolstrataError("compare needs two or more RUN directories, or --predictions FILE "
                             "FILE ... to compare other models' predictions")
    _refuse(args, COMPARE_PREDICTIONS_ONLY,
            "applies to --predictions FILE ...; give files, or drop it")
    result = compare(args.runs, args.out, labels=args.labels, split=args.split or "test",
                     evaluate_missing=not args.no_evaluate, device=args.device or "auto",
                     progress=not args.quiet)
    print(comparison_text(result.comparison))
    print(f"\nwrote {len(result.files)} files to {result.out_dir}")


def _compare_predictions(args: argparse.Namespace) -> None:
    """compare --predictions FILE ...: other models' energies on the same structures."""
    from molstrata.report.compare import compare_predictions, comparison_text

    if args.runs:
        raise MolstrataError(f"give RUNs or --predictions FILE ..., not both: RUN "
                             f"{args.runs[0]} is a molstrata run, --predictions other models' "
                             "files")
    _refuse(args, COMPARE_RUN_ONLY, "applies to RUNs, not to --predictions FILE ...; drop it")
    predicted = args.predicted[0] if args.predicted and len(args.predicted) == 1 \
        else args.predicted
    result = compare_predictions(
        args.predictions, args.out, labels=args.labels, predicted=predicted,
        reference=args.reference, unit=args.unit or DEFAULT_UNIT, structures=args.structures,
        train=args.train, skip_periodic=args.skip_periodic)
    print(comparison_text(result.comparison))
    print(f"\nwrote {len(result.files)} files to {result.out_dir}")


def _refuse(args: argparse.Namespace, names: tuple[str, ...], why: str) -> None:
    """A one-line refusal of the first of `names` given (an option of the other mode: a RUN's
    against --predictions'), named as the user spelled it."""
    for name in names:
        if getattr(args, name) not in (None, False):
            raise MolstrataError(f"{args.command_parser.flag(name)} {why}")
