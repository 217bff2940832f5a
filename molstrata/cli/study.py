"""`molstrata study` (a plan of experiments end to end) and `molstrata sweep` (Optuna)."""

from __future__ import annotations

import argparse
import textwrap

from molstrata.cli.common import add_common

PRESETS = {
    "quick": "the default; the whole study in miniature, 8,000 QM9 molecules, a small model, "
             "three training seeds per experiment, minutes on a CPU",
    "standard": "the study on all of QM9 with three training seeds per experiment and the "
                "time-to-accuracy recipe (5 epochs), under 2 hours of a 2-core CPU",
    "seed": "the thesis' study on all of QM9 as it was run (22 epochs, batch 512), one "
            "training seed, hours on a GPU",
}
"""What each shipped study plan is, for `study --help`, as its file's comments say."""


def register(commands: argparse._SubParsersAction) -> None:
    _register_study(commands)
    _register_learning_curve(commands)
    _register_data_value(commands)
    _register_sweep(commands)


def _register_study(commands: argparse._SubParsersAction) -> None:
    from molstrata.study.presets import plan_presets

    study = commands.add_parser(
        "study", help="run the study: describe, train, evaluate, report",
        description="Run a study end to end: describe the data, train, evaluate stratified, "
                    "and say where the report files are. Finished steps are reused and an "
                    "interrupted training resumes when the same command runs again.")
    study.add_argument("plan", nargs="?", metavar="PLAN.toml",
                       help="a study plan file (see molstrata/study/plans/ for the format)")
    study.add_argument("--preset", choices=plan_presets(),
                       help="a shipped plan (molstrata/study/plans/NAME.toml): " + "; ".join(
                           f"{name}: {PRESETS.get(name, 'see its file')}"
                           for name in plan_presets()))
    study.add_argument("--replicates", type=int, metavar="K",
                       help="train every experiment with K training seeds (default: the plan's "
                            "[study] replicates, else 1); intervals then include training noise")
    study.add_argument("--workers", type=int, default=1, metavar="N",
                       help="train N runs at once on this machine, each with threads / N CPU "
                            "threads (default 1); the same command on other machines sharing "
                            "--out joins the same study")
    study.add_argument("--draw", choices=("split", "seed"),
                       help="subset.draw of every experiment: seed gives each training seed "
                            "its own draw of training molecules (train / val, caps), so that "
                            "intervals include data-sampling noise; split keeps one draw "
                            "(default: the plan's)")
    study.add_argument("--dry-run", action="store_true",
                       help="list the plan's experiments and analyses, and stop")
    _add_storage(study)
    study.add_argument("--status", action="store_true",
                       help="show where the study in --out stands (runs waiting, running with "
                            "their worker and heartbeat age, done, failed) and stop; give the "
                            "same --storage as its workers, no plan")
    study.add_argument("-o", "--out", default="results/study", metavar="DIR",
                       help="output folder (default: results/study)")
    add_common(study, threads=True, cache_dir=True,
               set_help="override an option of every experiment's config (repeatable)")
    study.set_defaults(func=_study)


def _add_storage(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage", metavar="URL",
                        help="the work queue's database, the same for every worker on every "
                             "machine sharing --out (e.g. postgresql+psycopg://user:pass@host/db,"
                             " with pip install 'molstrata[postgres]'); default: SQLite in "
                             "OUT/queue.db")


def _study(args: argparse.Namespace) -> None:
    from molstrata.errors import MolstrataError
    from molstrata.study import load_plan, run_study, study_text
    from molstrata.study.plan import dataset_name
    from molstrata.training.config import parse_assignment
    from molstrata.wording import counted

    if args.plan and args.preset:
        raise MolstrataError("give a plan file or --preset, not both")
    if args.status:
        from molstrata.study.queue import status_text

        if args.plan or args.preset or args.dry_run:
            raise MolstrataError("--status reads the queue of the study in -o DIR: give it "
                                 "no plan, --preset or --dry-run")
        print(status_text(args.out, args.storage))
        return
    plan = args.plan or args.preset or "quick"
    overrides = [parse_assignment(text) for text in args.set]
    if args.draw:
        overrides.append(parse_assignment(f"subset.draw={args.draw}"))
    if args.dry_run:
        study = load_plan(plan, overrides, replicates=args.replicates)
        data = study.experiments[0].config.data  # the same in every experiment
        print(f"{study.title}\ndata: {dataset_name(study.experiments[0].config)}, property "
              f"{data.target}\n{counted(study.replicates, 'training seed')} per experiment: "
              f"{counted(len(study.runs), 'run')}\n")
        for e in study.experiments:
            t, m = e.config.training, e.config.model
            print(f"  {e.name:<22} {e.title}\n  {'':<22} {m.representation} "
                  f"{m.n_atom_basis}x{m.n_interactions}; subset {_subset(e.config)}; "
                  f"{t.length}, batch {t.batch_size}, lr {t.lr:g}, "
                  f"loss {t.loss_weighting} r={t.rate:g}")
        for a in study.analyses:
            print(f"  analysis {a.name} ({a.kind}): {', '.join(a.experiments)}")
        return
    result = run_study(plan, args.out, cache_dir=args.cache_dir, device=args.device,
                       threads=args.threads, overrides=overrides, replicates=args.replicates,
                       workers=args.workers, storage=args.storage, progress=not args.quiet)
    print()
    print(study_text(result))


def _subset(config) -> str:
    s = config.subset
    parts = [f"sizes {s.min_size or ''}-{s.max_size or ''}" if s.min_size or s.max_size else "",
             f"cap {s.cap}/size" if s.cap else "",
             f"{s.thin} thinned to {s.thin_fraction:g}" if s.thin else "",
             "drawn per seed" if s.draw == "seed" else "",
             f"contains {' '.join(s.contains)}" if s.contains else "",
             f"excludes {' '.join(s.excludes)}" if s.excludes else ""]
    return ", ".join(p for p in parts if p) or "all"


def _register_learning_curve(commands: argparse._SubParsersAction) -> None:
    curve = commands.add_parser(
        "learning-curve", help="per-stratum learning curves over nested training subsets",
        description="Train one recipe on nested training subsets (each holds the smaller "
                    "ones; validation and test molecules stay the same), with several training "
                    "seeds, and fit each size's and element's test MAE against its own "
                    "training molecules: exponents, the molecules each stratum needs to reach "
                    "--target-mae, and which strata gain most from added data. With no option: "
                    "the quick form (a 30,000-molecule QM9 slice, subsets of 750 to 24,000 "
                    "molecules, 3 seeds). Resumable, like a study.")
    curve.add_argument("--preset", metavar="PRESET",
                       help="training preset of the recipe (default: a 32-feature SchNet with "
                            "the time-to-accuracy training)")
    curve.add_argument("--max-molecules", default=str(30_000), metavar="N|all",
                       help="the QM9 slice (default 30000; all: every molecule)")
    curve.add_argument("--sizes", type=int, nargs="+", metavar="N",
                       help="training subset sizes (default: the training split and its "
                            "halves down to 1/32)")
    curve.add_argument("--epochs", type=int, default=20,
                       help="epochs of every subset (default 20)")
    curve.add_argument("--min-steps", type=int, default=1500, metavar="S",
                       help="at least S optimizer steps per subset: small subsets train more "
                            "epochs (default 1500)")
    curve.add_argument("--replicates", type=int, default=3, metavar="K",
                       help="training seeds per subset (default 3)")
    curve.add_argument("--workers", type=int, default=1, metavar="N",
                       help="trainings at once on this machine (as for study)")
    curve.add_argument("--target-mae", type=float, default=43.0, metavar="MEV",
                       help="the MAE the data advice aims at, meV for energies (default 43)")
    curve.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    _add_storage(curve)
    curve.add_argument("-o", "--out", default="results/learning-curve", metavar="DIR",
                       help="output folder (default: results/learning-curve)")
    add_common(curve, threads=True, cache_dir=True,
               set_help="override an option of every subset's config (repeatable)")
    curve.set_defaults(func=_learning_curve)


def _learning_curve(args: argparse.Namespace) -> None:
    from molstrata.study import study_text
    from molstrata.study.learning_curve import plan_text, resolve_sizes, run_learning_curve
    from molstrata.training.config import parse_assignment

    max_molecules = _max_molecules(args.max_molecules)
    options = {"epochs": args.epochs, "min_steps": args.min_steps,
               "replicates": args.replicates, "target_mae": args.target_mae,
               "max_molecules": max_molecules, "preset": args.preset,
               "overrides": [parse_assignment(text) for text in args.set]}
    if args.dry_run:
        print(plan_text(sizes=resolve_sizes(args.sizes, max_molecules, args.cache_dir),
                        **options))
        return
    result = run_learning_curve(args.out, sizes=args.sizes, workers=args.workers,
                                storage=args.storage,
                                cache_dir=args.cache_dir, device=args.device,
                                threads=args.threads, progress=not args.quiet, **options)
    print()
    print(study_text(result))


def _register_data_value(commands: argparse._SubParsersAction) -> None:
    value = commands.add_parser(
        "data-value", help="what each stratum's own training molecules are worth: thin one "
                           "stratum at a time",
        description="Train one recipe on every training molecule and, for each chosen stratum "
                    "(a size, or the molecules with an element), with that stratum's training "
                    "molecules thinned to a few fractions while every other training molecule "
                    "and the validation and test molecules stay; several training seeds, each "
                    "drawing its own thinned molecules. Reports each stratum's error against "
                    "its own count (slope per 1,000 own molecules, the error with none), the "
                    "cross effects on every other stratum, a held-out check and a verdict per "
                    "stratum. With no option: the quick form (a 20,000-molecule QM9 slice, the "
                    "3 rarest sizes with enough molecules and F, fractions 0 and 0.5, 3 seeds). "
                    "Resumable, like a study; --dry-run prints the plan and its cost.")
    value.add_argument("--strata", nargs="+", metavar="STRATUM",
                       help="strata to thin, as size:N or element:X (default: the 3 rarest "
                            f"sizes and the rarest element with at least {100} training and "
                            f"{20} test molecules)")
    value.add_argument("--fractions", type=float, nargs="+", default=[0.0, 0.5], metavar="F",
                       help="fractions of each stratum's training molecules to keep, below 1 "
                            "(default 0 0.5; the full set is always run); an element runs 0.1 "
                            "in place of 0, since a model cannot predict an element no "
                            "training molecule holds")
    value.add_argument("--preset", metavar="PRESET",
                       help="training preset of the recipe (default: a 32-feature SchNet with "
                            "the time-to-accuracy training)")
    value.add_argument("--max-molecules", default=str(20_000), metavar="N|all",
                       help="the QM9 slice (default 20000; all: every molecule)")
    value.add_argument("--epochs", type=int, default=12, help="epochs of every run (default 12)")
    value.add_argument("--replicates", type=int, default=3, metavar="K",
                       help="training seeds per experiment (default 3)")
    value.add_argument("--workers", type=int, default=1, metavar="N",
                       help="trainings at once on this machine (as for study)")
    value.add_argument("--dry-run", action="store_true",
                       help="print the plan and what it costs, and stop")
    _add_storage(value)
    value.add_argument("-o", "--out", default="results/data-value", metavar="DIR",
                       help="output folder (default: results/data-value)")
    add_common(value, threads=True, cache_dir=True,
               set_help="override an option of every experiment's config (repeatable)")
    value.set_defaults(func=_data_value)


def _data_value(args: argparse.Namespace) -> None:
    from molstrata.study import study_text
    from molstrata.study.data_value import (
        cost_text,
        default_strata,
        plan_text,
        run_data_value,
    )
    from molstrata.training.config import parse_assignment

    max_molecules = _max_molecules(args.max_molecules)
    overrides = [parse_assignment(text) for text in args.set]
    options = {"fractions": args.fractions, "epochs": args.epochs,
               "replicates": args.replicates, "max_molecules": max_molecules,
               "preset": args.preset}
    if args.dry_run:
        strata = args.strata or default_strata(max_molecules, args.cache_dir)
        text = plan_text(strata=strata, **options)
        print(text)
        print("# " + cost_text(text, overrides, workers=args.workers))
        return
    result = run_data_value(args.out, strata=args.strata, overrides=overrides,
                            workers=args.workers, storage=args.storage,
                            cache_dir=args.cache_dir,
                            device=args.device, threads=args.threads,
                            progress=not args.quiet, **options)
    print()
    print(study_text(result))


def _max_molecules(text: str) -> int | None:
    """--max-molecules: a number of molecules >= 10, or all (None)."""
    from molstrata.errors import MolstrataError

    if text == "all":
        return None
    if text.isdigit() and int(text) >= 10:
        return int(text)
    raise MolstrataError(f"--max-molecules {text!r}: give a number of molecules >= 10, or all")


def _register_sweep(commands: argparse._SubParsersAction) -> None:
    from molstrata.sweep.config import PRUNERS, SAMPLERS
    from molstrata.sweep.objectives import OBJECTIVES
    from molstrata.training.tracking import TRACKERS

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
                            "postgresql+psycopg://user:pass@host/db); default sqlite:///OUT/sweep.db")
    sweep.add_argument("--study-name", metavar="NAME",
                       help="the sweep's name in the storage (default: the config file's name)")
    sweep.add_argument("--sampler", choices=list(SAMPLERS), help="default: [sweep] sampler, tpe")
    sweep.add_argument("--timeout", type=float, metavar="S",
                       help="start no new trial after S seconds")
    sweep.add_argument("--clean-pruned", action="store_true",
                       help="remove pruned trials' run directories")
    sweep.add_argument("--track", nargs="+", choices=list(TRACKERS),
                       help="also log every trial to TensorBoard and/or Weights & Biases "
                            "(offline, inside its run directory)")
    add_common(sweep, device_default=None, threads=True, cache_dir=True, quiet=None,
               set_help="override an option of the base config (repeatable)")
    sweep.add_argument("-v", "--verbose", action="store_true",
                       help="show every trial's epochs and progress bars")
    sweep.add_argument("-q", "--quiet", action="store_true",
                       help="no line per trial, only the summary")
    sweep.set_defaults(func=_sweep)


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
