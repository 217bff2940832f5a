"""`molstrata evaluate` (stratified errors of a run) and `molstrata compare` (runs side by side)."""

from __future__ import annotations

import argparse
from pathlib import Path

from molstrata.cli.common import add_common, existing_files, replaced_line
from molstrata.errors import MolstrataError
from molstrata.evaluation import DEFAULT_MIN_STRATUM, SPLITS


def register(commands: argparse._SubParsersAction) -> None:
    _register_evaluate(commands)
    _register_compare(commands)


def _register_evaluate(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "evaluate", help="stratified errors of a trained run",
        description="Predict the run's test split (or val, train, all, or another dataset) and "
                    "write metrics.json, CSVs per size / element / size x element with 95 % "
                    "bootstrap intervals, predictions.csv and plots.")
    evaluate.add_argument("run", metavar="RUN", help="run directory written by molstrata train")
    evaluate.add_argument("--split", default="test", choices=SPLITS,
                          help="which molecules of the run's dataset (default: test)")
    evaluate.add_argument("--dataset", metavar="FILE",
                          help="evaluate on another ASE-readable file instead")
    evaluate.add_argument("--property", dest="property_name", metavar="NAME",
                          help="the target's name in FILE (default: the run's target)")
    evaluate.add_argument("--unit", metavar="UNIT", help="unit of --property in FILE")
    evaluate.add_argument("--skip-periodic", action="store_true",
                          help="leave out FILE's periodic structures (slabs, bulk cells) "
                               "instead of refusing it")
    evaluate.add_argument("--skip-unseen", action="store_true",
                          help="leave out the molecules holding an element no training "
                               "molecule has (predict flags them and does not predict them) "
                               "instead of refusing them, and say which")
    evaluate.add_argument("--checkpoint", default="best", choices=["best", "last"],
                          help="best (default: the epoch of the lowest validation loss) or "
                               "last")
    evaluate.add_argument("--all-sizes", action="store_true",
                          help="report every size, not only sizes with >= 1 %% of molecules")
    evaluate.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                          help="bootstrap resamples for the confidence intervals")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    evaluate.add_argument("--min-stratum", type=int, default=DEFAULT_MIN_STRATUM, metavar="N",
                          help="with --dataset, flag a molecule whose size, element or size x "
                               "element held fewer than N training molecules (default: "
                               f"{DEFAULT_MIN_STRATUM})")
    add_common(evaluate, threads=True, quiet=None)
    evaluate.add_argument("-o", "--out", metavar="DIR", help="default: RUN/eval-SPLIT")
    evaluate.add_argument("--devices", type=int, metavar="N",
                          help="predict on N processes of this machine (torchrun --standalone "
                               "--nproc-per-node N); metrics are computed once, from all")
    evaluate.set_defaults(func=_evaluate)


def _evaluate(args: argparse.Namespace) -> None:
    from molstrata.evaluation.evaluate import evaluate_run, summary_text
    from molstrata.report.evaluation_plots import draw_evaluation
    from molstrata.training.launch import launch_devices

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
        args.run, split=args.split, dataset=args.dataset, property_name=args.property_name,
        unit=args.unit, checkpoint=args.checkpoint, out_dir=args.out, all_sizes=args.all_sizes,
        n_bootstrap=args.bootstrap, seed=args.seed, device=args.device,
        min_stratum=args.min_stratum, skip_periodic=args.skip_periodic,
        skip_unseen=args.skip_unseen)
    if evaluation is not None:  # rank 0 (or the only process)
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
                    "missing or older than their best checkpoint are evaluated first.")
    compare.add_argument("runs", nargs="+", metavar="RUN",
                         help="two or more run directories written by molstrata train")
    compare.add_argument("--labels", nargs="+", metavar="NAME",
                         help="one name per run (default: the directories' names)")
    compare.add_argument("--split", default="test", choices=SPLITS,
                         help="which evaluation to compare (default: test)")
    compare.add_argument("--no-evaluate", action="store_true",
                         help="refuse runs that are not evaluated yet instead of evaluating them")
    add_common(compare)
    compare.add_argument("-o", "--out", metavar="DIR",
                         help="output folder (default: results/compare/LABELS-DATE-TIME)")
    compare.set_defaults(func=_compare)


def _compare(args: argparse.Namespace) -> None:
    from molstrata.report.compare import compare, comparison_text

    result = compare(args.runs, args.out, labels=args.labels, split=args.split,
                     evaluate_missing=not args.no_evaluate, device=args.device,
                     progress=not args.quiet)
    print(comparison_text(result.comparison))
    print(f"\nwrote {len(result.files)} files to {result.out_dir}")
