"""Stratified metrics: the study's reporting standard.

One global error hides how badly rare sizes and rare elements are predicted, so every report
gives the error of each size, each element and each size × element cell, with counts,
confidence intervals and the stratum's share of the TRAINING set; macro averages over strata;
the worst stratum; and a test of the study's hypotheses 1 and 2 (the rarer a size / an element
in training, the larger its error).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from molstrata.data.molecules import Molecules, atomic_number, element_symbol
from molstrata.data.strata import stratum_label
from molstrata.errors import MolstrataError
from molstrata.evaluation.metrics import (
    EXACT_MAX_N,
    MIN_INTERVAL_COUNT,
    ErrorSummary,
    spearman,
    spearman_method,
    summarize,
)
from molstrata.units import canonical_unit

ALL = "all"
"""The kind of the one stratum holding every evaluated molecule."""
SIZE = "size"
ELEMENT = "element"
SIZE_ELEMENT = "size_element"
KINDS = (SIZE, ELEMENT, SIZE_ELEMENT)
"""Kinds of strata; macro averages, worst strata and hypothesis tests are given for the first
two (size × element cells are many and often tiny, so a 'worst cell' would mostly be noise)."""

HYPOTHESES = {
    SIZE: "hypothesis 1: the rarer a size in the training set, the larger its error",
    ELEMENT: "hypothesis 2: the rarer an element in the training set, the larger the error "
    "of the molecules containing it",
}

SIGNIFICANCE = 0.05
"""A hypothesis `holds` when rho < 0 and p < SIGNIFICANCE."""

_STREAM_CODES = {ALL: 0, SIZE: 1, ELEMENT: 2, SIZE_ELEMENT: 3}
"""The seed component of each kind of stratum (see `stratum_rng`)."""


# ---- inputs ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Predictions:
    """A model's predictions of one target for n molecules, with what strata need of them.

    ids: (n,) molecule ids. sizes: (n,) atoms per molecule.
    presence: (n, n_elements) bool, presence[i, k] if molecule i contains elements[k].
    elements: chemical symbols of presence's columns.
    true, predicted: (n,) float64 in `unit` (e.g. 'eV'). target: the property's name.
    """

    ids: np.ndarray
    sizes: np.ndarray
    presence: np.ndarray
    elements: tuple[str, ...]
    true: np.ndarray
    predicted: np.ndarray
    unit: str
    target: str

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "ids", np.asarray(self.ids, dtype=np.int64).reshape(-1))
        set_(self, "sizes", np.asarray(self.sizes, dtype=np.int64).reshape(-1))
        set_(self, "presence", np.asarray(self.presence, dtype=bool))
        set_(self, "elements", tuple(str(e) for e in self.elements))
        set_(self, "true", np.asarray(self.true, dtype=np.float64).reshape(-1))
        set_(self, "predicted", np.asarray(self.predicted, dtype=np.float64).reshape(-1))
        set_(self, "unit", canonical_unit(self.unit))
        n = len(self.ids)
        for name in ("sizes", "true", "predicted"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {getattr(self, name).shape}")
        if self.presence.shape != (n, len(self.elements)):
            raise ValueError(
                f"presence must have shape ({n}, {len(self.elements)}), got {self.presence.shape}"
            )
        for name in ("true", "predicted"):
            bad = ~np.isfinite(getattr(self, name))
            if bad.any():
                raise MolstrataError(
                    f"{int(bad.sum())} {name} values of {self.target} are NaN or infinite "
                    f"(molecule ids {self.ids[bad][:5].tolist()}); a diverged model or a "
                    "damaged file gives these: retrain or regenerate the predictions"
                )

    @classmethod
    def from_molecules(
        cls,
        molecules: Molecules,
        true: np.ndarray,
        predicted: np.ndarray,
        unit: str,
        target: str,
    ) -> Predictions:
        """Predictions for the molecules of `molecules`, in their order."""
        return cls(
            ids=molecules.ids,
            sizes=molecules.sizes,
            presence=molecules.composition > 0,
            elements=tuple(element_symbol(z) for z in molecules.elements),
            true=true,
            predicted=predicted,
            unit=unit,
            target=target,
        )

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def errors(self) -> np.ndarray:
        """(n,) predicted - true, in `unit`."""
        return self.predicted - self.true

    def element_labels(self) -> np.ndarray:
        """(n,) the elements of each molecule in Hill order, e.g. 'CHNO'."""
        has_carbon = "C" in self.elements
        order = sorted(
            range(len(self.elements)),
            key=lambda k: (
                (0, "") if has_carbon and self.elements[k] == "C"
                else (1, "") if has_carbon and self.elements[k] == "H"
                else (2, self.elements[k])
            ),
        )
        symbols = np.asarray([self.elements[k] for k in order], dtype=object)
        patterns, which = np.unique(self.presence[:, order], axis=0, return_inverse=True)
        labels = np.asarray(["".join(symbols[row]) for row in patterns], dtype=str)
        return labels[which.reshape(-1)] if len(self) else np.zeros(0, dtype=str)


@dataclass(frozen=True)
class TrainingCounts:
    """How many TRAINING molecules each stratum holds (what the error is set against)."""

    n_molecules: int
    sizes: Mapping[int, int]
    elements: Mapping[str, int]
    size_elements: Mapping[tuple[int, str], int] = field(default_factory=dict)

    @classmethod
    def unknown(cls) -> TrainingCounts:
        """No training set: another model's predictions, evaluated without its training file;
        every share is then NaN and no hypothesis is tested."""
        return cls(n_molecules=0, sizes={}, elements={}, size_elements={})

    @property
    def known(self) -> bool:
        """Whether these are counts of a training set (False for `unknown`)."""
        return self.n_molecules > 0

    @classmethod
    def from_molecules(cls, molecules: Molecules) -> TrainingCounts:
        """Count the strata of a training set."""
        present = molecules.composition > 0
        symbols = [element_symbol(z) for z in molecules.elements]
        sizes, counts = np.unique(molecules.sizes, return_counts=True)
        size_elements = {}
        for k, symbol in enumerate(symbols):
            cell_sizes, cell_counts = np.unique(molecules.sizes[present[:, k]], return_counts=True)
            size_elements.update(
                {(int(s), symbol): int(c) for s, c in zip(cell_sizes, cell_counts)}
            )
        return cls(
            n_molecules=len(molecules),
            sizes={int(s): int(c) for s, c in zip(sizes, counts)},
            elements={s: int(c) for s, c in zip(symbols, present.sum(axis=0))},
            size_elements=dict(sorted(size_elements.items(), key=_size_element_order)),
        )

    def count(self, kind: str, key: int | str | tuple[int, str]) -> int:
        """Training molecules in one stratum; 0 for a stratum the training set lacks."""
        table = {SIZE: self.sizes, ELEMENT: self.elements, SIZE_ELEMENT: self.size_elements}
        return int(table[kind].get(key, 0))

    def share(self, kind: str, key: int | str | tuple[int, str]) -> float:
        """The stratum's share (0..1) of the training molecules; NaN without a training set."""
        return self.count(kind, key) / self.n_molecules if self.known else math.nan


# ---- results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StratumMetrics:
    """Errors of one stratum and how often the training set showed it."""

    kind: str
    key: int | str | tuple[int, str] | None
    label: str
    train_count: int
    train_share: float
    summary: ErrorSummary

    @property
    def count(self) -> int:
        return self.summary.count


@dataclass(frozen=True)
class MacroAverage:
    """Unweighted mean over the strata of one kind: each stratum counts once, however small.
    MSE in the target unit squared, MAE and RMSE (mean of per-stratum RMSEs) in the target unit."""

    kind: str
    n_strata: int
    mae: float
    rmse: float
    mse: float


@dataclass(frozen=True)
class Correlation:
    """Spearman correlation of the strata's training share with their MAE, and its test."""

    kind: str
    hypothesis: str
    n_strata: int
    rho: float
    p_value: float
    holds: bool
    method: str
    note: str


@dataclass(frozen=True)
class StratifiedReport:
    """Everything the stratified evaluation found; errors in the target unit `unit`. Without
    a training set (`training.known` False) the shares are NaN and `correlations` is empty."""

    target: str
    unit: str
    n_molecules: int
    overall: StratumMetrics
    sizes: list[StratumMetrics]
    elements: list[StratumMetrics]
    size_elements: list[StratumMetrics]
    omitted_sizes: dict[int, int]
    macro: dict[str, MacroAverage]
    worst: dict[str, StratumMetrics]
    correlations: dict[str, Correlation]
    training: TrainingCounts
    seed: int
    n_bootstrap: int
    confidence: float
    min_share: float
    all_sizes: bool
    min_interval_count: int = MIN_INTERVAL_COUNT
    """Strata of fewer molecules have no confidence interval (NaN bounds)."""

    def strata(self, kind: str) -> list[StratumMetrics]:
        """The strata of one kind ('size', 'element' or 'size_element')."""
        return {SIZE: self.sizes, ELEMENT: self.elements, SIZE_ELEMENT: self.size_elements}[kind]


# ---- the evaluation ----------------------------------------------------------------------


def stratified_metrics(
    predictions: Predictions,
    train: Molecules | TrainingCounts | None,
    *,
    min_share: float = 0.01,
    all_sizes: bool = False,
    seed: int = 0,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed_errors: np.ndarray | None = None,
    min_interval_count: int = MIN_INTERVAL_COUNT,
) -> StratifiedReport:
    """Errors overall, per size, per element and per size × element, with bootstrap CIs.

    seed_errors: (k, n) errors (predicted - true) of the same molecules under k training seeds
    (row order: `predictions`'); every figure is then the mean over seeds, with two-level
    intervals (metrics.summarize), and the hypotheses are tested on the seed-averaged MAE.

    Sizes holding at least `min_share` of the EVALUATED molecules are reported (all sizes with
    `all_sizes`); size × element cells are reported for those sizes. `train` is the training
    set (or its counts): each stratum's training share is set against its MAE to test
    hypotheses 1 and 2; None where it is not known (another model's predictions): shares are
    then NaN and no hypothesis is tested. Every stratum draws its bootstrap from its own seed
    derived from `seed` and its key, so results are reproducible and do not depend on which
    other strata are asked. A stratum of fewer than `min_interval_count` evaluated molecules
    gets its figures and no interval (metrics.MIN_INTERVAL_COUNT says why); the 1 % filter
    cannot do this on a small set, where 1 % is under one molecule.
    """
    if len(predictions) == 0:
        raise MolstrataError("no predictions to evaluate; give at least one molecule")
    if not 0.0 <= min_share <= 1.0:
        raise MolstrataError(f"min_share must be between 0 and 1, got {min_share}; 0.01 is 1 %")
    if seed < 0:
        raise MolstrataError(f"seed must be 0 or more, got {seed}")
    if train is None:
        training = TrainingCounts.unknown()
    elif isinstance(train, TrainingCounts):
        training = train
    else:
        training = TrainingCounts.from_molecules(train)
    if train is not None and not training.known:
        raise MolstrataError("the training set is empty; give the molecules the model saw")
    n = len(predictions)
    errors = predictions.errors[None] if seed_errors is None else np.asarray(seed_errors)
    if errors.ndim != 2 or errors.shape[1] != n:
        raise ValueError(f"seed_errors must have shape (k, {n}), got {errors.shape}")

    def measure(kind: str, key, rows: np.ndarray) -> StratumMetrics:
        label = "all molecules" if kind == "all" else stratum_label(key)
        rng = stratum_rng(seed, kind, key)
        summary = summarize(errors[:, rows], rng, n_bootstrap, confidence, name=label,
                            min_count=min_interval_count)
        if kind == "all":
            share = 1.0 if training.known else math.nan
            return StratumMetrics(kind, None, label, training.n_molecules, share, summary)
        return StratumMetrics(kind, key, label, training.count(kind, key),
                              training.share(kind, key), summary)

    overall = measure("all", None, np.arange(n))
    size_values, size_counts = np.unique(predictions.sizes, return_counts=True)
    keep = np.ones(len(size_values), bool) if all_sizes else size_counts / n >= min_share
    reported = {int(s) for s in size_values[keep]}
    omitted = {int(s): int(c) for s, c in zip(size_values[~keep], size_counts[~keep])}
    sizes = [measure(SIZE, key, rows) for key, rows in _size_groups(predictions) if key in reported]
    elements = [measure(ELEMENT, key, rows) for key, rows in _element_groups(predictions)]
    cells = [
        measure(SIZE_ELEMENT, key, rows)
        for key, rows in _size_element_groups(predictions)
        if key[0] in reported
    ]
    by_kind = {SIZE: sizes, ELEMENT: elements}
    return StratifiedReport(
        target=predictions.target,
        unit=predictions.unit,
        n_molecules=n,
        overall=overall,
        sizes=sizes,
        elements=elements,
        size_elements=cells,
        omitted_sizes=omitted,
        macro={kind: _macro(kind, strata) for kind, strata in by_kind.items() if strata},
        worst={
            kind: max(strata, key=lambda s: s.summary.mae)
            for kind, strata in by_kind.items()
            if strata
        },
        correlations={kind: _correlation(kind, strata, seed) for kind, strata in by_kind.items()
                      if training.known},
        training=training,
        seed=seed,
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        min_share=min_share,
        all_sizes=all_sizes,
        min_interval_count=min_interval_count,
    )


def _macro(kind: str, strata: list[StratumMetrics]) -> MacroAverage:
    summaries = [s.summary for s in strata]
    return MacroAverage(
        kind=kind,
        n_strata=len(strata),
        mae=float(np.mean([s.mae for s in summaries])),
        rmse=float(np.mean([s.rmse for s in summaries])),
        mse=float(np.mean([s.mse for s in summaries])),
    )


def _correlation(kind: str, strata: list[StratumMetrics], seed: int) -> Correlation:
    """Spearman of training share against MAE over the strata, and whether the hypothesis holds."""
    n = len(strata)
    share = np.array([s.train_share for s in strata])
    mae = np.array([s.summary.mae for s in strata])
    rho, p = spearman(share, mae, seed=seed) if n else (math.nan, math.nan)
    notes = []
    if n < 3:
        notes.append(f"only {n} strata: no test")
    elif math.isnan(rho):
        notes.append("training shares or errors are all equal: no ranking to test")
    elif n <= EXACT_MAX_N:
        notes.append(f"only {n} strata: p >= {2 / math.factorial(n):.3g} at best, little power")
    if kind == ELEMENT:
        notes.append("element strata overlap")
    holds = bool(not math.isnan(rho) and rho < 0 and p < SIGNIFICANCE)
    return Correlation(
        kind=kind,
        hypothesis=HYPOTHESES[kind],
        n_strata=n,
        rho=rho,
        p_value=p,
        holds=holds,
        method=spearman_method(n, seed=seed),
        note="; ".join(notes),
    )


# ---- grouping ----------------------------------------------------------------------------


def _size_groups(predictions: Predictions) -> Iterator[tuple[int, np.ndarray]]:
    """(size, rows) for every size present, ascending."""
    order = np.argsort(predictions.sizes, kind="stable")
    values, starts = np.unique(predictions.sizes[order], return_index=True)
    for size, rows in zip(values, np.split(order, starts[1:])):
        yield int(size), rows


def _element_groups(predictions: Predictions) -> Iterator[tuple[str, np.ndarray]]:
    """(element, rows of the molecules containing it) for every element present."""
    for k, symbol in enumerate(predictions.elements):
        rows = np.flatnonzero(predictions.presence[:, k])
        if len(rows):
            yield symbol, rows


def _size_element_groups(predictions: Predictions) -> Iterator[tuple[tuple[int, str], np.ndarray]]:
    """((size, element), rows) for every non-empty cell, by size then by element."""
    for size, rows in _size_groups(predictions):
        for k, symbol in enumerate(predictions.elements):
            cell = rows[predictions.presence[rows, k]]
            if len(cell):
                yield (size, symbol), cell


def stratum_rng(seed: int, kind: str, key: int | str | tuple[int, str] | None = None
                ) -> np.random.Generator:
    """The random stream of one stratum's resampling: seeded by `seed`, the stratum's kind
    (ALL, SIZE, ELEMENT or SIZE_ELEMENT) and its key (a size, an element, a (size, element)
    cell, or the stratum's index), so that each stratum draws its own stream, the same
    whichever other strata are drawn. Every per-stratum bootstrap takes its stream here."""
    return np.random.default_rng([seed, _STREAM_CODES[kind], *_key_ints(key)])


def _key_ints(key: int | str | tuple[int, str] | None) -> list[int]:
    """A stratum key as non-negative integers, to seed that stratum's bootstrap."""
    if key is None:
        return []
    if isinstance(key, tuple):
        return [i for part in key for i in _key_ints(part)]
    if isinstance(key, str):
        return [atomic_number(key)]
    return [int(key)]


def _size_element_order(item: tuple[tuple[int, str], int]) -> tuple[int, int]:
    (size, symbol), _ = item
    return size, atomic_number(symbol)
