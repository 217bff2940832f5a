"""`molstrata train`: a run from a preset, a config file, shortcuts and --set; or --resume."""

from __future__ import annotations

import argparse
from pathlib import Path

from molstrata.cli.common import add_common
from molstrata.errors import MolstrataError
from molstrata.training.config import SHORTCUTS

NEW_RUN_ONLY = ("config", "preset", "out")
"""The options that describe a new run, and that a resumed run (its own config) refuses."""


def register(commands: argparse._SubParsersAction) -> None:
    from molstrata.training import LOSS_WEIGHTINGS
    from molstrata.training.config import DEFAULT_PRESET, DRAWS, PRESETS
    from molstrata.training.tracking import TRACKERS

    train = commands.add_parser(
        "train", help="train a SchNet or PaiNN model; writes a run directory",
        description="Train SchNet or PaiNN (SchNetPack 2's architectures) on a target. "
                    "Options come from a preset, a TOML config file, shortcuts and --set; the "
                    "run directory gets the resolved config, the split, checkpoints (every "
                    "epoch, and the best), "
                    "learning_curve.csv and run.json. Interrupted runs continue with --resume; "
                    "a finished one trains further as a new run with --init-from.")
    source = train.add_argument_group("configuration")
    source.add_argument("--preset", choices=list(PRESETS),
                        help=f"named configuration (default: {DEFAULT_PRESET}): "
                             + ", ".join(PRESETS))
    source.add_argument("--config", metavar="FILE", help="TOML config file ([data], [subset], "
                        "[model], [training], [runtime])")
    add_common(source, device=False, quiet=None, set_help="override any option, e.g. --set "
               "model.n_atom_basis=64 (repeatable)")
    source.add_argument("--resume", metavar="RUN",
                        help="continue an interrupted run as its config.toml says; only "
                             "--device, --threads and --cache-dir (and --set of them) may "
                             "change, since they leave the result as it would have been")
    source.add_argument("--init-from", metavar="RUN",
                        help="training.init_from: a new run that starts from RUN's best weights "
                             "and reuses its split (to train a finished run further: a run's "
                             "length cannot change on --resume)")
    quick = train.add_argument_group("shortcuts")
    quick.add_argument("--dataset", metavar="qm9|FILE", help="data.dataset")
    quick.add_argument("--property", "--target", dest="target", metavar="NAME",
                       help="data.target: the property to learn, as evaluate, predict and data "
                            "name it (on QM9 e.g. U0, gap; in FILE its name there)")
    quick.add_argument("--unit", metavar="UNIT", help="data.unit of --property in FILE")
    quick.add_argument("--cache-dir", metavar="DIR", help="data.cache_dir (QM9 cache)")
    quick.add_argument("--max-molecules", type=int, metavar="N", help="data.max_molecules")
    quick.add_argument("--representation", metavar="NAME",
                       help="model.representation: schnet (the default) or painn "
                            "(SchNetPack 2's PaiNN, equivariant)")
    quick.add_argument("--skip-periodic", action="store_true", default=None,
                       help="data.skip_periodic: leave out FILE's periodic structures instead "
                            "of refusing the file")
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
    quick.add_argument("--compile", action="store_const", const=True,
                       help="runtime.compile: training steps under torch.compile (a compilation "
                            "of tens of seconds first; halved PaiNN's step time on a 2-core CPU)")
    quick.add_argument("--track", nargs="+", choices=list(TRACKERS),
                       help="runtime.track: also log learning curves to TensorBoard and/or "
                            "Weights & Biases (offline, inside the run directory); needs "
                            "pip install 'molstrata[tracking]'")
    imbalance = train.add_argument_group(
        "imbalance treatments (the test set is never touched)")
    imbalance.add_argument("--cap", type=int, metavar="N",
                           help="subset.cap: undersample training to at most N molecules per "
                                "size (the study used 2000, 4000, 6000)")
    imbalance.add_argument("--loss-weighting", choices=LOSS_WEIGHTINGS,
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
    imbalance.add_argument("--draw", choices=list(DRAWS),
                           help="subset.draw: what seeds the draw of the training molecules "
                                "(train / val, the cap): split (data.split_seed, the default) "
                                "or seed (--seed: each training seed draws its own molecules; "
                                "the test set stays the same)")
    train.add_argument("-o", "--out", metavar="RUN",
                       help="run directory (default: runs/NAME-DATE-TIME)")
    train.add_argument("--devices", type=int, metavar="N",
                       help="train on N processes of this machine (one per GPU, or CPU "
                            "processes sharing its cores): torchrun --standalone "
                            "--nproc-per-node N; see docs/training.md for several machines")
    train.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    train.set_defaults(func=_train)


def _given(args: argparse.Namespace, names) -> list[str]:
    return [name for name in names if getattr(args, name) not in (None, [])]


def _train_config(args: argparse.Namespace):
    from molstrata.training.config import DEFAULT_PRESET, TrainConfig, parse_assignment, preset

    if args.config and args.preset:
        raise MolstrataError("give --config or --preset, not both")
    config = TrainConfig.from_toml(args.config) if args.config else preset(
        args.preset or DEFAULT_PRESET)
    given = [(*SHORTCUTS[name], getattr(args, name)) for name in _given(args, SHORTCUTS)]
    return config.apply([*given, *map(parse_assignment, args.set)], "command line").validate()


def _resume_changes(args: argparse.Namespace) -> dict:
    """The (section, key) -> value changes that --resume RUN was given: only options whose
    field is RESULT_NEUTRAL; anything else is refused, named as the user typed it."""
    from molstrata.training.config import RESULT_NEUTRAL, parse_assignment

    def refuse(option: str) -> MolstrataError:
        allowed = ", ".join("--" + name.replace("_", "-") for name, field in SHORTCUTS.items()
                            if field in RESULT_NEUTRAL)
        return MolstrataError(f"--resume continues a run exactly as its config.toml says; "
                              f"drop {option} (it may change only {allowed})")

    def typed(name: str) -> str:
        """The option string of `name` as the command line gave it (--target or --property)."""
        strings = next(a.option_strings for a in args.command_parser._actions if a.dest == name)
        return next((s for s in strings for word in args.argv
                     if word == s or word.startswith(s + "=")), strings[0])

    changes = {}
    for name in _given(args, SHORTCUTS):
        if SHORTCUTS[name] not in RESULT_NEUTRAL:
            raise refuse(typed(name))
        changes[SHORTCUTS[name]] = getattr(args, name)
    for name in _given(args, NEW_RUN_ONLY):
        raise refuse(typed(name))
    for assignment in args.set:
        section, key, value = parse_assignment(assignment)
        if (section, key) not in RESULT_NEUTRAL:
            raise refuse(f"--set {assignment}")
        changes[section, key] = value
    return changes


def _train(args: argparse.Namespace) -> None:
    from molstrata.training.distributed import is_main_process
    from molstrata.training.launch import launch_devices, worker_devices
    from molstrata.training.run import resumed_config, summary_line, train
    from molstrata.training.rundir import default_run_dir

    if args.resume:
        run_dir = args.resume
        changes = _resume_changes(args)
        device = resumed_config(run_dir, changes).runtime.device
        if launch_devices(args.argv, args.devices, device, run_dir):
            return
        summary = train(None, run_dir, resume=True, changes=changes, progress=not args.quiet)
    else:
        config = _train_config(args)
        if worker_devices() is not None and not args.out:
            raise MolstrataError("under torchrun, name the run directory with --out: every "
                                 "process must agree on it")
        run_dir = args.out or str(default_run_dir(_run_name(args)))
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
