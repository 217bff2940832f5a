"""The `molstrata` command: argument parsing only; each subcommand calls one library function."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

from molstrata import __version__
from molstrata.errors import MolstrataError, ReportedElsewhere


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


def _train_config(args: argparse.Namespace):
    from molstrata.training.config import DEFAULT_PRESET, TrainConfig, parse_assignment, preset

    if args.config and args.preset:
        raise MolstrataError("give --config or --preset, not both")
    config = TrainConfig.from_toml(args.config) if args.config else preset(
        args.preset or DEFAULT_PRESET)
    if args.epochs is not None and args.time_budget is not None:
        raise MolstrataError("give --epochs or --time-budget, not both: a run is as long as "
                             "one of them")
    if args.epochs is not None:
        config.training.time_budget = None  # epochs asked for: no budget from the preset
    shortcuts = {
        ("data", "dataset"): args.dataset, ("data", "target"): args.target,
        ("data", "unit"): args.unit, ("data", "cache_dir"): args.cache_dir,
        ("data", "max_molecules"): args.max_molecules, ("training", "epochs"): args.epochs,
        ("training", "time_budget"): args.time_budget,
        ("training", "batch_size"): args.batch_size, ("training", "lr"): args.lr,
        ("runtime", "device"): args.device, ("runtime", "threads"): args.threads,
        ("runtime", "seed"): args.seed, ("subset", "cap"): args.cap,
        ("training", "loss_weighting"): args.loss_weighting, ("training", "rate"): args.rate,
        ("training", "alpha"): args.alpha, ("subset", "min_size"): args.train_min_size,
        ("subset", "max_size"): args.train_max_size, ("runtime", "track"): args.track,
    }
    for (section, key), value in shortcuts.items():
        if value is not None:
            config.override(section, key, value, "command line")
    for assignment in args.set:
        config.override(*parse_assignment(assignment), "--set")
    return config.validate()


def _train(args: argparse.Namespace) -> None:
    import time

    from molstrata.training.config import TrainConfig
    from molstrata.training.distributed import is_main_process
    from molstrata.training.launch import launch_devices, worker_devices
    from molstrata.training.run import RunPaths, summary_line, train

    if args.resume:
        given = [name for name in ("config", "preset", "set", "dataset", "target", "unit",
                                   "max_molecules", "epochs", "time_budget", "batch_size",
                                   "lr", "seed", "cap", "loss_weighting", "rate", "alpha",
                                   "train_min_size", "train_max_size", "track", "out")
                 if getattr(args, name) is not None and getattr(args, name) != []]
        if given:
            raise MolstrataError(
                f"--resume continues a run exactly as its config.toml says; drop --"
                f"{given[0].replace('_', '-')}"
            )
        run_dir = args.resume
        device = TrainConfig.from_toml(RunPaths(run_dir).require().config).runtime.device
        if launch_devices(args.argv, args.devices, device, run_dir):
            return
        summary = train(TrainConfig(), args.resume, resume=True, progress=not args.quiet)
    else:
        config = _train_config(args)
        if worker_devices() is not None and not args.out:
            raise MolstrataError("under torchrun, name the run directory with --out: every "
                                 "process must agree on it")
        run_dir = args.out or f"runs/{_run_name(args)}-{time.strftime('%Y%m%d-%H%M%S')}"
        if args.devices not in (None, 1) and not args.out:
            args.argv += ["--out", run_dir]  # the processes must agree on the directory
        if launch_devices(args.argv, args.devices, config.runtime.device, run_dir):
            return
        summary = train(config, run_dir, progress=not args.quiet)
    if is_main_process():
        print(f"{summary_line(summary)}; run: {run_dir}")


def _run_name(args: argparse.Namespace) -> str:
    from molstrata.training.config import DEFAULT_PRESET

    return Path(args.config).stem if args.config else (args.preset or DEFAULT_PRESET)


def _evaluate(args: argparse.Namespace) -> None:
    from molstrata.evaluation.evaluate import evaluate_run, summary_text
    from molstrata.training.launch import launch_devices

    if launch_devices(args.argv, args.devices, args.device):
        return
    evaluation = evaluate_run(
        args.run, split=args.split, dataset=args.dataset, property_name=args.property_name,
        unit=args.unit, checkpoint=args.checkpoint, out_dir=args.out, all_sizes=args.all_sizes,
        n_bootstrap=args.bootstrap, seed=args.seed, device=args.device)
    if evaluation is not None:  # rank 0 (or the only process)
        print(summary_text(evaluation))


def _compare(args: argparse.Namespace) -> None:
    from molstrata.report.compare import compare, comparison_text

    result = compare(args.runs, args.out, labels=args.labels, split=args.split,
                     evaluate_missing=not args.no_evaluate, device=args.device,
                     progress=not args.quiet)
    print(comparison_text(result.comparison))
    print(f"\nwrote {len(result.files)} files to {result.out_dir}")


def _study(args: argparse.Namespace) -> None:
    from molstrata.study import load_plan, run_study, study_text
    from molstrata.training.config import parse_assignment

    if args.plan and args.preset:
        raise MolstrataError("give a plan file or --preset, not both")
    plan = args.plan or args.preset or "quick"
    overrides = [parse_assignment(text) for text in args.set]
    if args.dry_run:
        study = load_plan(plan, overrides)
        print(f"{study.title}\n")
        for e in study.experiments:
            t = e.config.training
            print(f"  {e.name:<22} {e.title}\n  {'':<22} subset {_subset(e.config)}; "
                  f"{t.epochs} epochs, batch {t.batch_size}, lr {t.lr:g}, "
                  f"loss {t.loss_weighting} r={t.rate:g}")
        for a in study.analyses:
            print(f"  analysis {a.name} ({a.kind}): {', '.join(a.experiments)}")
        return
    result = run_study(plan, args.out, cache_dir=args.cache_dir, device=args.device,
                       threads=args.threads, overrides=overrides, progress=not args.quiet)
    print()
    print(study_text(result))


def _sweep(args: argparse.Namespace) -> None:
    from molstrata.sweep.config import load_sweep
    from molstrata.sweep.runner import run_sweep, sweep_text
    from molstrata.training.config import parse_assignment

    overrides = [(s, k, v) for s, k, v in (("data", "cache_dir", args.cache_dir),
                                           ("runtime", "device", args.device),
                                           ("runtime", "threads", args.threads),
                                           ("runtime", "track", args.track)) if v is not None]
    sweep = load_sweep(args.config, [*overrides, *map(parse_assignment, args.set)])
    out = args.out or f"results/sweeps/{sweep.name}"
    result = run_sweep(sweep, out, storage=args.storage, study_name=args.study_name,
                       n_trials=args.n_trials, sampler=args.sampler, timeout=args.timeout,
                       clean_pruned=args.clean_pruned or None, progress=args.verbose,
                       log=(lambda *a, **k: None) if args.quiet else print)
    print()
    print(sweep_text(result))


def _subset(config) -> str:
    s = config.subset
    parts = [f"sizes {s.min_size or ''}-{s.max_size or ''}" if s.min_size or s.max_size else "",
             f"cap {s.cap}/size" if s.cap else "",
             f"contains {' '.join(s.contains)}" if s.contains else "",
             f"excludes {' '.join(s.excludes)}" if s.excludes else ""]
    return ", ".join(p for p in parts if p) or "all"


def _export_model(args: argparse.Namespace) -> None:
    from molstrata.deploy.export import export

    print(export(args.source, args.out, checkpoint=args.checkpoint).text())


def _predict(args: argparse.Namespace) -> None:
    from molstrata.deploy.predict import predict_files, split_paths, summary_text

    models, files = split_paths(args.paths)
    result = predict_files(
        models, files, args.out, property_name=args.property_name, unit=args.unit,
        min_stratum=args.min_stratum, batch_size=args.batch_size, device=args.device,
        dtype=args.dtype, compile_model=args.compile, progress=not args.quiet)
    print(summary_text(result))


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

    from molstrata.training.config import DEFAULT_PRESET, PRESETS

    train = commands.add_parser(
        "train", help="train a SchNet model; writes a run directory",
        description="Train SchNet (SchNetPack 2's architecture) on a target. Options come from "
                    "a preset, a TOML config file, shortcuts and --set; the run directory gets "
                    "the resolved config, the split, checkpoints (every epoch, and the best), "
                    "learning_curve.csv and run.json. Interrupted runs continue with --resume.")
    source = train.add_argument_group("configuration")
    source.add_argument("--preset", choices=list(PRESETS),
                        help=f"named configuration (default: {DEFAULT_PRESET}): "
                             + ", ".join(PRESETS))
    source.add_argument("--config", metavar="FILE", help="TOML config file ([data], [subset], "
                        "[model], [training], [runtime])")
    source.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override any option, e.g. --set model.n_atom_basis=64 (repeatable)")
    source.add_argument("--resume", metavar="RUN", help="continue an interrupted run")
    quick = train.add_argument_group("shortcuts")
    quick.add_argument("--dataset", metavar="qm9|FILE", help="data.dataset")
    quick.add_argument("--target", metavar="NAME", help="data.target, e.g. U0, gap")
    quick.add_argument("--unit", metavar="UNIT", help="data.unit of the target in FILE")
    quick.add_argument("--cache-dir", metavar="DIR", help="data.cache_dir (QM9 cache)")
    quick.add_argument("--max-molecules", type=int, metavar="N", help="data.max_molecules")
    quick.add_argument("--epochs", type=int, help="training.epochs (a run of this many "
                       "epochs, instead of a preset's time budget)")
    quick.add_argument("--time-budget", metavar="DURATION",
                       help="training.time_budget: train for this long (30m, 1.5h, 600s) with "
                            "the learning-rate schedule fitted to it, instead of epochs")
    quick.add_argument("--batch-size", type=int, help="training.batch_size")
    quick.add_argument("--lr", type=float, help="training.lr")
    quick.add_argument("--device", help="runtime.device: auto (default), cpu, cuda")
    quick.add_argument("--threads", type=int, help="runtime.threads (CPU threads)")
    quick.add_argument("--seed", type=int, help="runtime.seed")
    quick.add_argument("--track", nargs="+", choices=["tensorboard", "wandb"],
                       help="runtime.track: also log learning curves to TensorBoard and/or "
                            "Weights & Biases (offline, inside the run directory); needs "
                            "pip install 'molstrata[tracking]'")
    from molstrata.training.weights import LOSS_WEIGHTS

    imbalance = train.add_argument_group(
        "imbalance treatments (the test set is never touched)")
    imbalance.add_argument("--cap", type=int, metavar="N",
                           help="subset.cap: undersample training to at most N molecules per "
                                "size (the study used 2000, 4000, 6000)")
    imbalance.add_argument("--loss-weighting", choices=list(LOSS_WEIGHTS),
                           help="training.loss_weighting: per-molecule loss weight v(s), "
                                "normalised to mean 1 over the training set")
    imbalance.add_argument("--rate", type=float, metavar="R",
                           help="training.rate r of the size and size_frequency weightings")
    imbalance.add_argument("--alpha", type=float, metavar="A",
                           help="training.alpha of inverse_frequency, 0..1")
    imbalance.add_argument("--train-min-size", type=int, metavar="N",
                           help="subset.min_size: train (and validate) only on molecules of "
                                ">= N atoms, e.g. 18 for the study's directed training")
    imbalance.add_argument("--train-max-size", type=int, metavar="N",
                           help="subset.max_size: train only on molecules of <= N atoms")
    train.add_argument("-o", "--out", metavar="RUN",
                       help="run directory (default: runs/NAME-DATE-TIME)")
    train.add_argument("--devices", type=int, metavar="N",
                       help="train on N processes of this machine (one per GPU, or CPU "
                            "processes sharing its cores): torchrun --standalone "
                            "--nproc-per-node N; see the README for several machines")
    train.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    train.set_defaults(func=_train)

    evaluate = commands.add_parser(
        "evaluate", help="stratified errors of a trained run",
        description="Predict the run's test split (or val, train, all, or another dataset) and "
                    "write metrics.json, CSVs per size / element / size x element with 95 %% "
                    "bootstrap intervals, predictions.csv and plots.")
    evaluate.add_argument("run", metavar="RUN", help="run directory written by molstrata train")
    evaluate.add_argument("--split", default="test", choices=["test", "val", "train", "all"],
                          help="which molecules of the run's dataset (default: test)")
    evaluate.add_argument("--dataset", metavar="FILE",
                          help="evaluate on another ASE-readable file instead")
    evaluate.add_argument("--property", dest="property_name", metavar="NAME",
                          help="the target's name in FILE (default: the run's target)")
    evaluate.add_argument("--unit", metavar="UNIT", help="unit of --property in FILE")
    evaluate.add_argument("--checkpoint", default="best", choices=["best", "last"])
    evaluate.add_argument("--all-sizes", action="store_true",
                          help="report every size, not only sizes with >= 1 %% of molecules")
    evaluate.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                          help="bootstrap resamples for the confidence intervals")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    evaluate.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    evaluate.add_argument("-o", "--out", metavar="DIR", help="default: RUN/eval-SPLIT")
    evaluate.add_argument("--devices", type=int, metavar="N",
                          help="predict on N processes of this machine (torchrun --standalone "
                               "--nproc-per-node N); metrics are computed once, from all")
    evaluate.set_defaults(func=_evaluate)

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
    compare.add_argument("--split", default="test", choices=["test", "val"],
                         help="which evaluation to compare (default: test)")
    compare.add_argument("--no-evaluate", action="store_true",
                         help="refuse runs that are not evaluated yet instead of evaluating them")
    compare.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    compare.add_argument("-o", "--out", metavar="DIR",
                         help="output folder (default: results/compare/LABELS-DATE-TIME)")
    compare.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    compare.set_defaults(func=_compare)

    from molstrata.study import plan_presets

    study = commands.add_parser(
        "study", help="run the study: describe, train, evaluate, report",
        description="Run a study end to end: describe the data, train, evaluate stratified, "
                    "and say where the report files are. Finished steps are reused and an "
                    "interrupted training resumes when the same command runs again.")
    study.add_argument("plan", nargs="?", metavar="PLAN.toml",
                       help="a study plan file (see molstrata/study/plans/ for the format)")
    study.add_argument("--preset", choices=plan_presets(),
                       help="a shipped plan: quick (the whole study in miniature, minutes on a "
                            "CPU; the default) or seed (the thesis' study on all of QM9)")
    study.add_argument("--dry-run", action="store_true",
                       help="list the plan's experiments and analyses, and stop")
    study.add_argument("-o", "--out", default="results/study", metavar="DIR",
                       help="output folder (default: results/study)")
    study.add_argument("--cache-dir", metavar="DIR", help="QM9 cache folder")
    study.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    study.add_argument("--threads", type=int, help="CPU threads")
    study.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override an option of every experiment's config (repeatable)")
    study.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    study.set_defaults(func=_study)

    from molstrata.sweep.config import PRUNERS, SAMPLERS
    from molstrata.sweep.objectives import OBJECTIVES

    sweep = commands.add_parser(
        "sweep", help="hyper-parameter sweep on Optuna, judged on the stratified metrics",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Search training options (cutoffs, n_atom_basis, n_interactions, learning rate, "
            "batch size, epochs, loss weighting and rate, any option) for the lowest "
            "stratified error. Each trial trains a run and is judged on its VALIDATION split, "
            "never on the test split: choosing hyper-parameters on the test set would leak "
            "it. Hopeless trials are pruned from their learning curves. The sweep lives in a "
            "storage (OUT/sweep.db by default), so an interrupted sweep goes on where it "
            "stopped when the same command runs again, and workers on many machines share "
            "one sweep given one --storage URL and --study-name.", 79),
        epilog="sweep file: a run config ([data], [model], [training], ...) plus\n"
               "  [sweep]\n"
               '  objective = "macro_size_mae"      # or a list: Pareto front\n'
               '  sampler = "tpe"                   # ' + " | ".join(SAMPLERS) + "\n"
               '  pruner = "median"                 # ' + " | ".join(PRUNERS) + "\n"
               "  n_trials = 20                     # finished trials, all workers together\n"
               "  [sweep.space]\n"
               '  "training.lr" = {low = 1e-4, high = 1e-2, log = true}\n'
               '  "training.epochs" = {low = 5, high = 30, step = 5}\n'
               '  "model.n_atom_basis" = {choices = [32, 64, 128]}\n\n'
               "objectives (on the validation split; errors in meV for eV targets):\n"
               + "\n".join(f"  {name:<18} {o.description}" for name, o in OBJECTIVES.items()))
    sweep.add_argument("--config", required=True, metavar="SWEEP.toml",
                       help="the sweep file: a run config with a [sweep] table")
    sweep.add_argument("-o", "--out", metavar="DIR",
                       help="output folder (default: results/sweeps/NAME): trials/, trials.csv, "
                            "best.toml or pareto-trial-*.toml, plots, sweep.db")
    sweep.add_argument("--n-trials", type=int, metavar="N",
                       help="finished trials the sweep holds when done, counting every worker's "
                            "(default: [sweep] n_trials)")
    sweep.add_argument("--storage", metavar="URL",
                       help="any database URL Optuna supports, shared by workers (e.g. "
                            "postgresql://user:pass@host/db); default sqlite:///OUT/sweep.db")
    sweep.add_argument("--study-name", metavar="NAME",
                       help="the sweep's name in the storage (default: the config file's name)")
    sweep.add_argument("--sampler", choices=list(SAMPLERS), help="default: [sweep] sampler, tpe")
    sweep.add_argument("--timeout", type=float, metavar="S",
                       help="start no new trial after S seconds")
    sweep.add_argument("--clean-pruned", action="store_true",
                       help="remove pruned trials' run directories")
    sweep.add_argument("--track", nargs="+", choices=["tensorboard", "wandb"],
                       help="also log every trial to TensorBoard and/or Weights & Biases "
                            "(offline, inside its run directory)")
    sweep.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override an option of the base config (repeatable)")
    sweep.add_argument("--cache-dir", metavar="DIR", help="QM9 cache folder")
    sweep.add_argument("--device", help="auto (default), cpu or cuda")
    sweep.add_argument("--threads", type=int, help="CPU threads")
    sweep.add_argument("-v", "--verbose", action="store_true",
                       help="show every trial's epochs and progress bars")
    sweep.add_argument("-q", "--quiet", action="store_true",
                       help="no line per trial, only the summary")
    sweep.set_defaults(func=_sweep)

    export_model = commands.add_parser(
        "export", help="a trained run as one self-contained model file (or torch.export)",
        description="Write a run's model as one file holding everything a prediction needs: "
                    "weights, hyper-parameters, reference energies and standardisation, target "
                    "and unit, the training domain (elements, sizes, counts per stratum), the "
                    "molstrata version and hashes of the training data and split. It loads "
                    "with torch.load(weights_only=True). With -o FILE.pt2 it writes a "
                    "torch.export program instead, usable with no molstrata installed.")
    export_model.add_argument("source", metavar="RUN",
                              help="run directory written by molstrata train (or a model file "
                                   "to turn into a .pt2 program)")
    which = export_model.add_mutually_exclusive_group()
    which.add_argument("--best", dest="checkpoint", action="store_const", const="best",
                       help="the checkpoint of the lowest validation loss (default)")
    which.add_argument("--last", dest="checkpoint", action="store_const", const="last",
                       help="the last epoch's checkpoint")
    export_model.set_defaults(checkpoint="best")
    export_model.add_argument("-o", "--out", required=True, metavar="FILE",
                              help="model.pt (molstrata model file) or model.pt2 (torch.export)")
    export_model.set_defaults(func=_export_model)

    from molstrata.deploy.domain import DEFAULT_MIN_STRATUM

    predict = commands.add_parser(
        "predict", help="predict structure files with one or more model files",
        description="Predict every structure of ASE-readable files (extxyz, xyz, ASE .db) with "
                    "a model file, or with several as an ensemble (mean and standard "
                    "deviation). Writes OUT.csv (one row per structure: file, index, formula, "
                    "atoms, prediction with its unit, the reference and error where the file "
                    "holds the target, domain flags) and OUT.extxyz (the structures with the "
                    "prediction in their info), and prints how many structures lie outside "
                    "the training domain and why.")
    predict.add_argument("paths", nargs="+", metavar="PATH",
                         help="one model file ending in .pt, or several (an ensemble), then "
                              "the structure files")
    predict.add_argument("-o", "--out", metavar="OUT",
                         help="output path without suffix (default: FIRST_FILE_predictions)")
    predict.add_argument("--property", dest="property_name", metavar="NAME",
                         help="the target as the files hold it, to report the error (e.g. "
                              "energy); default: the model's target, where a file declares it")
    predict.add_argument("--unit", metavar="UNIT",
                         help="unit of --property in the files (e.g. eV, Hartree, kcal/mol)")
    predict.add_argument("--min-stratum", type=int, default=DEFAULT_MIN_STRATUM, metavar="N",
                         help="flag a structure whose size, element or size x element held "
                              f"fewer than N training molecules (default: {DEFAULT_MIN_STRATUM}"
                              "); elements never seen and sizes outside the training range "
                              "are always flagged")
    predict.add_argument("--batch-size", type=int, metavar="N",
                         help="molecules per forward pass (default: 128 on a CPU, 2048 on a "
                              "GPU)")
    predict.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    predict.add_argument("--dtype", choices=["float32", "float64"],
                         help="compute in this precision (default: the model's)")
    predict.add_argument("--compile", action="store_true",
                         help="run the model under torch.compile (pays a compilation first; on "
                              "a 2-core CPU it did not help: see the README's benchmark)")
    predict.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    predict.set_defaults(func=_predict)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; user errors print one line and return 2."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if getattr(args, "fractions", None) is None and getattr(args, "counts", None) is None \
            and args.func is _split:
        args.fractions = [0.8, 0.1, 0.1]
    try:
        args.func(args)
    except ReportedElsewhere:
        return 2
    except MolstrataError as error:
        rank = os.environ.get("RANK", "0")  # one of torchrun's processes: say which
        print(f"molstrata: error{f' (rank {rank})' if rank != '0' else ''}: {error}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("molstrata: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    return 0
