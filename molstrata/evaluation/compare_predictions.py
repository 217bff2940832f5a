"""Several models' energies on the same structures, as results that `compare_runs` pairs.

`prediction_results` reads two or more prediction files (MACE, NequIP, SchNetPack, ... through
`load_predictions`), or several predicted keys of one file, and matches every file's
structures to the first file's: by their own ids where both files have them, else by
identical atoms (atomic numbers in order, positions within `POSITION_TOLERANCE`). Files that
hold other structures, or other reference energies, are refused at their first difference.
Every model then carries the first file's ids in its order, so that `same_molecules` holds
and the leads are tested paired over the structures, as for runs on one split. Files under
one label are one model's replicates (one per training seed), grouped by `group_runs` with
two-level intervals (replicates, then structures).
"""

from __future__ import annotations

import bisect
import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from molstrata.data.molecules import LABEL, Molecules
from molstrata.errors import MolstrataError
from molstrata.evaluation import DEFAULT_PREDICTED, DEFAULT_UNIT
from molstrata.evaluation.predictions_file import (
    LoadedPredictions,
    Source,
    load_predictions,
    training_counts,
)
from molstrata.evaluation.results import RunResult, check_labels, group_runs
from molstrata.evaluation.stratified import Predictions, TrainingCounts, stratified_metrics

PREDICTION_FILES = "prediction files"
"""The `split` of results read from prediction files: what their structures are."""

POSITION_TOLERANCE = 1e-6
"""Å: two structures are the same where their atoms, in order, lie this close."""

REFERENCE_TOLERANCE = 1e-6
"""eV: the reference energies of one structure in two files agree to within this."""

MATCH_HINT = ("compare files of the same structures (each model's predictions of one test "
              "set)")


def prediction_results(
    sources: Source | Sequence[Source],
    *,
    labels: Sequence[str] | None = None,
    predicted: str | Sequence[str] | None = None,
    reference: str | None = None,
    unit: str = DEFAULT_UNIT,
    structures: str | os.PathLike | Sequence[Atoms] | None = None,
    train: Source | None = None,
    skip_periodic: bool = False,
    n_bootstrap: int = 1000,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> list[RunResult]:
    """One result per model, on the structures of the first source in its order.

    sources: prediction files (or lists of Atoms), read by `load_predictions` with
    `reference`, `unit`, `structures` (the structures file of tables of predictions) and
    `skip_periodic`. predicted: one key for every source, one key per source, or several keys
    of ONE source (each a model). labels: one per source (or per key of one source); sources
    sharing a label are that model's replicates, one per training seed. Labels default to the
    files' stems, or the keys of one file. train: the structures the models were trained on,
    for the training counts of every stratum (the hypotheses' tests). Every file is read and
    matched before the first result is built; a mismatch is a MolstrataError naming it.
    """
    entries = _entries(sources, predicted)
    names = _labels(entries, labels, several_keys=_several_keys(sources, predicted))
    models = list(dict.fromkeys(names))
    if len(models) < 2:
        raise MolstrataError(
            f"a comparison needs at least 2 models, got {len(models)} ({', '.join(models)}); "
            "give two or more prediction files, or several predicted keys of one file",
            cli=f"a comparison needs at least 2 models, got {len(models)} "
                f"({', '.join(models)}); give two or more files to --predictions, or several "
                "keys to --predicted")
    check_labels(models)
    _check_replicates(entries, names)
    loaded, seconds = [], []
    for source, key in entries:
        started = time.perf_counter()
        loaded.append(load_predictions(source, predicted=key, reference=reference, unit=unit,
                                       structures=structures, skip_periodic=skip_periodic,
                                       with_forces=False, log=log))  # energies compared only
        seconds.append(time.perf_counter() - started)
    base = loaded[0]
    aligned = [base.predictions]
    for other in loaded[1:]:
        started = time.perf_counter()
        aligned.append(_aligned(base, other, _matched(base, other)))
        seconds[len(aligned) - 1] += time.perf_counter() - started
    training = None if train is None else training_counts(train, skip_periodic, log)
    members: dict[str, list[RunResult]] = {model: [] for model in models}
    for name, one, predictions, spent in zip(names, loaded, aligned, seconds):
        members[name].append(_result(name, one, predictions, training, spent, n_bootstrap,
                                     seed))
    return [group[0] if len(group) == 1 else group_runs(
                [dataclasses.replace(m, label=f"{model}/{i}") for i, m in enumerate(group)],
                model)
            for model, group in members.items()]


def _several_keys(sources: Source | Sequence[Source], predicted: object) -> bool:
    return (len(_sources(sources)) == 1 and not isinstance(predicted, str | None)
            and len(list(predicted)) > 1)


def _sources(sources: Source | Sequence[Source]) -> list[Source]:
    """The sources as a list: one path, or one list of Atoms, is one source."""
    if isinstance(sources, str | os.PathLike):
        return [sources]
    sources = list(sources)
    if sources and isinstance(sources[0], Atoms):
        return [sources]
    return sources


def _entries(sources: Source | Sequence[Source],
             predicted: str | Sequence[str] | None) -> list[tuple[Source, str | None]]:
    """(source, predicted key) of every model file."""
    listed = _sources(sources)
    if not listed:
        raise MolstrataError("no prediction files given; give two or more")
    if predicted is None or isinstance(predicted, str):
        return [(source, predicted) for source in listed]
    keys = list(predicted)
    if len(listed) == 1 and len(keys) > 1:
        return [(listed[0], key) for key in keys]
    if len(keys) != len(listed):
        raise MolstrataError(
            f"{len(keys)} predicted keys for {len(listed)} prediction files; give one key "
            "for every file, one key per file, or several keys of one file")
    return list(zip(listed, keys))


def _labels(entries: list[tuple[Source, str | None]], labels: Sequence[str] | None,
            several_keys: bool) -> list[str]:
    """One label per entry: the given ones (repeated for replicates), else the keys of one
    file or the files' stems, which must then differ."""
    if labels is not None:
        labels = [str(label) for label in labels]
        if len(labels) != len(entries):
            what = "predicted keys" if several_keys else "prediction files"
            raise MolstrataError(f"{len(labels)} labels for {len(entries)} {what}; give one "
                                 "label each (the same label to a model's replicate files)")
        return labels
    if several_keys:
        return [key or DEFAULT_PREDICTED for _, key in entries]
    names = [Path(s).stem if isinstance(s, str | os.PathLike) else f"atoms-{i + 1}"
             for i, (s, _) in enumerate(entries)]
    for i, name in enumerate(names):
        if name in names[:i]:
            first = entries[names.index(name)][0]
            raise MolstrataError(
                f"{os.fspath(first)} and {os.fspath(entries[i][0])} are both named {name!r}; "
                "give labels (the same label to one model's replicate files, one per "
                "training seed)", cli=f"{os.fspath(first)} and {os.fspath(entries[i][0])} "
                f"are both named {name!r}; give --labels (the same label to one model's "
                "replicate files, one per training seed)")
    return names


def _check_replicates(entries: list[tuple[Source, str | None]], names: list[str]) -> None:
    """A model's replicates are different files (or keys): one file twice measures no
    training noise."""
    seen = set()
    for (source, key), name in zip(entries, names):
        if not isinstance(source, str | os.PathLike):
            continue
        marker = (name, str(Path(source).resolve()), key)
        if marker in seen:
            raise MolstrataError(f"{os.fspath(source)} is given twice as a replicate of {name}"
                                 "; give one file per training seed")
        seen.add(marker)


def _result(label: str, loaded: LoadedPredictions, predictions: Predictions,
            training: TrainingCounts | None, seconds: float, n_bootstrap: int,
            seed: int) -> RunResult:
    """A model's RunResult: no config, curve or training time."""
    started = time.perf_counter()
    report = stratified_metrics(predictions, training, n_bootstrap=n_bootstrap, seed=seed)
    seconds += time.perf_counter() - started
    summary = {"predictions": {"file": loaded.name, **loaded.document()}}
    if training is not None:
        summary["n_molecules"] = {"train": training.n_molecules}
    return RunResult(label=label, run_dir=Path(loaded.name), split=PREDICTION_FILES, config=None,
                     summary=summary, curve=None, eval_dir=None, report=report,
                     predictions=predictions, evaluation_seconds=seconds)


# ---- matching the structures of two files -------------------------------------------------


def _matched(base: LoadedPredictions, other: LoadedPredictions) -> np.ndarray:
    """(n,) rows of `other` in the order of `base`'s structures, or a MolstrataError naming
    the first difference: a structure of one missing from the other, one id with other
    atoms, or other reference energies."""
    a, b = base.molecules, other.molecules
    if _own_ids(base) and _own_ids(other):
        order = _by_id(base, other)
        for i, j in enumerate(order):
            problem = _atoms_differ(a.atoms_of(i), b.atoms_of(j))
            if problem:
                raise MolstrataError(
                    f"structure {_id(base, i)!r} is {a.formulas()[i]} in {base.name} but has "
                    f"{problem} in {other.name} ({b.formulas()[j]}); {MATCH_HINT}")
    else:
        order = _by_structure(base, other)
    true_a, true_b = base.predictions.true, other.predictions.true[order]
    far = np.flatnonzero(np.abs(true_b - true_a) > REFERENCE_TOLERANCE)
    if len(far):
        i = int(far[0])
        raise MolstrataError(
            f"structure {_id(base, i)!r} ({a.formulas()[i]}) has the reference energy "
            f"{true_a[i]:.6f} eV in {base.name} but {true_b[i]:.6f} eV in {other.name}; "
            "compare predictions against the same reference energies")
    return order


def _own_ids(loaded: LoadedPredictions) -> bool:
    """Whether the file named its structures (molstrata_id, id or name): string ids, or
    integers other than the positions ASE or a database numbers them by."""
    m = loaded.molecules
    if LABEL in m.annotations:
        return True
    ids = m.ids
    n = len(ids) + len(loaded.skipped_periodic)
    positional = bool(np.all(np.diff(ids) > 0)) and (len(ids) == 0 or (ids[0] >= 0
                                                                       and ids[-1] <= n))
    return not positional


def _id(loaded: LoadedPredictions, row: int) -> int | str:
    return loaded.molecules.identifiers()[row]


def _by_id(base: LoadedPredictions, other: LoadedPredictions) -> np.ndarray:
    rows = {str(identifier): j for j, identifier in enumerate(other.molecules.identifiers())}
    order = []
    for i, identifier in enumerate(base.molecules.identifiers()):
        if str(identifier) not in rows:
            raise MolstrataError(
                f"structure {identifier!r} ({base.molecules.formulas()[i]}) of {base.name} is "
                f"not in {other.name}; {MATCH_HINT}")
        order.append(rows[str(identifier)])
    _check_extra(base, other, order)
    return np.asarray(order, dtype=np.int64)


def _by_structure(base: LoadedPredictions, other: LoadedPredictions) -> np.ndarray:
    """Match each structure of `base` to an unused one of `other` with the same atomic
    numbers in order and positions within POSITION_TOLERANCE: candidates share the numbers
    and lie within the tolerance in the sum of their coordinates (a bisection), then every
    coordinate is checked."""
    a, b = base.molecules, other.molecules
    sums_a, sums_b = _coordinate_sums(a), _coordinate_sums(b)
    buckets: dict[bytes, tuple[list[float], list[int]]] = {}
    for j in np.argsort(sums_b, kind="stable"):
        numbers = b.atoms_of(int(j))[0]
        values, rows = buckets.setdefault(numbers.tobytes(), ([], []))
        values.append(float(sums_b[j]))
        rows.append(int(j))
    used = np.zeros(len(b), dtype=bool)
    order = []
    for i in range(len(a)):
        numbers, positions = a.atoms_of(i)
        values, rows = buckets.get(numbers.tobytes(), ([], []))
        slack = 3 * len(numbers) * POSITION_TOLERANCE + 1e-9 * (1 + abs(sums_a[i]))
        low = bisect.bisect_left(values, sums_a[i] - slack)
        high = bisect.bisect_right(values, sums_a[i] + slack)
        found = next((rows[k] for k in range(low, high) if not used[rows[k]]
                      and np.max(np.abs(b.atoms_of(rows[k])[1] - positions))
                      <= POSITION_TOLERANCE), None)
        if found is None:
            raise MolstrataError(
                f"structure {_id(base, i)!r} ({a.formulas()[i]}) of {base.name} is not in "
                f"{other.name} (no structure there has its atoms, in order, within "
                f"{POSITION_TOLERANCE:g} Å; without ids in both files, structures are matched "
                f"by their atoms); {MATCH_HINT}")
        used[found] = True
        order.append(found)
    _check_extra(base, other, order)
    return np.asarray(order, dtype=np.int64)


def _coordinate_sums(molecules: Molecules) -> np.ndarray:
    """(n_molecules,) the sum of every coordinate of each molecule."""
    if len(molecules) == 0:
        return np.zeros(0)
    return np.add.reduceat(molecules.positions.sum(axis=1), molecules.offsets[:-1])


def _check_extra(base: LoadedPredictions, other: LoadedPredictions, order: list[int]) -> None:
    """Refuse the first structure of `other` that no structure of `base` matched."""
    if len(order) == len(other.molecules):
        return
    extra = int(np.setdiff1d(np.arange(len(other.molecules)), order)[0])
    raise MolstrataError(
        f"structure {_id(other, extra)!r} ({other.molecules.formulas()[extra]}) of "
        f"{other.name} is not in {base.name}; {MATCH_HINT}")


def _atoms_differ(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> str:
    """What differs between two structures' atoms ('' when nothing)."""
    (za, ra), (zb, rb) = a, b
    if len(za) != len(zb) or not np.array_equal(za, zb):
        return ("other atoms" if sorted(za.tolist()) != sorted(zb.tolist())
                else "its atoms in another order")
    moved = float(np.max(np.abs(ra - rb))) if len(ra) else 0.0
    return f"other positions (up to {moved:.3g} Å apart)" if moved > POSITION_TOLERANCE else ""


def _aligned(base: LoadedPredictions, other: LoadedPredictions,
             order: np.ndarray) -> Predictions:
    """`other`'s predictions on `base`'s structures, ids and references: each structure keeps
    its error against its own file's reference (equal to `base`'s within
    REFERENCE_TOLERANCE)."""
    p, q = base.predictions, other.predictions
    true, guess = q.true[order], q.predicted[order]
    predicted = guess if np.array_equal(true, p.true) else p.true + (guess - true)
    return Predictions(p.ids, p.sizes, p.presence, p.elements, p.true, predicted, p.unit,
                       p.target)
