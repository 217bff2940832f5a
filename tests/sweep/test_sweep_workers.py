"""How workers share a sweep without running a trial twice: per-trial seeds, the trial budget."""

import optuna
from optuna.trial import TrialState

from molstrata.sweep.config import sweep_from_dict
from molstrata.sweep.runner import _over_budget, _sampler

SWEEP = {"sweep": {"sampler": "random", "space": {
    "training.lr": {"low": 1e-4, "high": 1e-2, "log": True},
    "model.n_atom_basis": {"choices": [16, 32, 64, 128]}}}}


def draws(sweep, n: int, tell: bool) -> list[dict]:
    study = optuna.create_study(sampler=_sampler(sweep))
    params = []
    for _ in range(n):
        trial = study.ask()
        params.append(sweep.space.suggest(trial))
        if tell:
            study.tell(trial, 1.0)
    return params


def test_each_trial_is_drawn_from_its_own_number():
    sweep = sweep_from_dict(SWEEP)
    first = draws(sweep, 4, tell=True)
    assert draws(sweep, 4, tell=True) == first  # one worker's sweep is reproducible
    concurrent = draws(sweep, 4, tell=False)  # trials asked while others still run
    assert len({repr(p) for p in concurrent}) == 4
    tpe = sweep_from_dict({**SWEEP, "sweep": {**SWEEP["sweep"], "sampler": "tpe"}})
    assert len({repr(p) for p in draws(tpe, 4, tell=False)}) == 4


def test_a_trial_beyond_the_budget_is_not_run():
    study = optuna.create_study()
    for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING):
        trial = study.ask()
        if state != TrialState.RUNNING:
            study.tell(trial, 1.0 if state == TrialState.COMPLETE else None, state=state)
    # trials 0 (complete), 1 (pruned) and 3 (running) hold slots; 2 failed and holds none
    assert not _over_budget(study, 4, budget=4)
    assert _over_budget(study, 4, budget=3)
    assert not _over_budget(study, 3, budget=3)  # the running trial itself is within
