"""`molstrata --help` builds every parser from light modules: the names its choices list come
from registries of names, each checked here against the registry of functions it stands for."""

from __future__ import annotations

import subprocess
import sys

from molstrata.cli import build_parser

HEAVY = ("numpy", "ase", "torch", "scipy", "matplotlib")


def test_help_imports_neither_numpy_nor_ase_nor_torch():
    code = ("import sys\n"
            "from molstrata.cli import main\n"
            "try:\n"
            "    main(['--help'])\n"
            "except SystemExit:\n"
            "    pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def _choices(command: str, option: str) -> list[str]:
    commands = build_parser()._subparsers._group_actions[0].choices
    action = next(a for a in commands[command]._actions if option in a.option_strings)
    return list(action.choices)


def test_the_loss_weightings_listed_are_the_registry_s():
    from molstrata.training import LOSS_WEIGHTINGS
    from molstrata.training.weights import LOSS_WEIGHTS

    assert tuple(LOSS_WEIGHTS) == LOSS_WEIGHTINGS
    assert _choices("train", "--loss-weighting") == list(LOSS_WEIGHTS)


def test_the_study_presets_listed_are_the_plans_that_load():
    from molstrata.study.plan import load_plan

    presets = _choices("study", "--preset")
    assert "quick" in presets
    for name in presets:
        assert load_plan(name).name == name


def test_the_sweep_registries_listed_are_the_sweep_s():
    from molstrata.sweep.config import SAMPLERS
    from molstrata.sweep.objectives import OBJECTIVES
    from molstrata.training.tracking import TRACKERS

    assert _choices("sweep", "--sampler") == list(SAMPLERS)
    assert _choices("sweep", "--track") == _choices("train", "--track") == list(TRACKERS)
    epilog = build_parser()._subparsers._group_actions[0].choices["sweep"].epilog
    assert all(f"  {name:<18} {o.description}" in epilog for name, o in OBJECTIVES.items())
