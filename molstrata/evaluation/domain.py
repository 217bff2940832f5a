"""The domain of applicability: where a model was trained, and flags for what lies outside it.

The study found that rare sizes and rare elements are predicted worst. A model file therefore
carries its training set's counts per size, per element and per size × element, and every
prediction is checked against them. A structure gets a flag, a short machine-readable code,
for each way it leaves the training domain:

    unseen_element:Cl           an element no training molecule held (no prediction is made)
    size_outside_training:31    more (or fewer) atoms than any training molecule
    rare_size:27(12)            a size held by fewer than `min_stratum` training molecules (12)
    rare_element:F(40)          an element held by fewer than `min_stratum` training molecules
    rare_size_element:27xF(3)   a size × element cell with fewer than `min_stratum` of them
    periodic                    a periodic structure (not predicted: the models know molecules)

A rare size makes all its size × element cells rare as well, so cells are flagged only for
sizes that are not flagged themselves. An ensemble's training range is the union of its
members' (sizes 6-29 when one member saw 8-29 and another 6-29); inside it, a size some member
never saw is rare for that member: `rare_size:7(0)`.

It lives in the evaluation stage so that `evaluate --dataset` and the deployment stage
(`predict`, the ASE calculator) flag structures by the same rules.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from molstrata.data.molecules import Molecules, atomic_number, element_symbol
from molstrata.errors import OptionError
from molstrata.evaluation import DEFAULT_MIN_STRATUM
from molstrata.evaluation.stratified import TrainingCounts
from molstrata.wording import counted

UNSEEN = "unseen_element"
OUTSIDE = "size_outside_training"
RARE_SIZE = "rare_size"
RARE_ELEMENT = "rare_element"
RARE_CELL = "rare_size_element"
PERIODIC = "periodic"
FLAG_KINDS = (PERIODIC, UNSEEN, OUTSIDE, RARE_SIZE, RARE_ELEMENT, RARE_CELL)
"""Flag codes, in the order they are listed for a structure."""

_DESCRIPTIONS = {
    PERIODIC: "periodic (not predicted)",
    UNSEEN: "element never seen in training (not predicted)",
    OUTSIDE: "size outside the training range",
    RARE_SIZE: "rare size",
    RARE_ELEMENT: "rare element",
    RARE_CELL: "rare size x element",
}


# ---- the training domain as plain values (it is stored in model files) --------------------


def domain_document(training: TrainingCounts) -> dict:
    """The training counts as plain values (ints, strings, lists) for a model file."""
    return {
        "n_molecules": int(training.n_molecules),
        "sizes": [[int(size), int(count)] for size, count in sorted(training.sizes.items())],
        "elements": {str(symbol): int(count) for symbol, count in training.elements.items()},
        "size_elements": [
            [int(size), str(symbol), int(count)]
            for (size, symbol), count in training.size_elements.items()
        ],
    }


def domain_from_document(document: Mapping) -> TrainingCounts:
    """The TrainingCounts of a model file's `training_domain` entry."""
    return TrainingCounts(
        n_molecules=int(document["n_molecules"]),
        sizes={int(size): int(count) for size, count in document["sizes"]},
        elements={str(symbol): int(count) for symbol, count in document["elements"].items()},
        size_elements={
            (int(size), str(symbol)): int(count)
            for size, symbol, count in document["size_elements"]
        },
    )


def size_range(domains: TrainingCounts | Sequence[TrainingCounts]) -> tuple[int, int]:
    """(smallest, largest) number of atoms of a training molecule; for an ensemble, of any
    member's training molecule (the union of the members' ranges)."""
    domains = _as_list(domains)
    return min(min(d.sizes) for d in domains), max(max(d.sizes) for d in domains)


def _as_list(domains: TrainingCounts | Sequence[TrainingCounts]) -> list[TrainingCounts]:
    return [domains] if isinstance(domains, TrainingCounts) else list(domains)


# ---- flags -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Applicability:
    """Flags of n structures against one or more training domains.

    flags: per structure, its codes (empty where it lies inside every domain).
    predictable: (n,) bool, False where a structure holds an element some model never saw.
    """

    flags: list[tuple[str, ...]]
    predictable: np.ndarray

    def __len__(self) -> int:
        return len(self.flags)

    @property
    def flagged(self) -> np.ndarray:
        """(n,) bool: structures with at least one flag."""
        return np.array([bool(codes) for codes in self.flags], dtype=bool)

    def counts(self) -> dict[str, int]:
        """Flag kind -> number of structures carrying at least one flag of that kind."""
        seen = Counter(kind for codes in self.flags for kind in {c.split(":")[0] for c in codes})
        return {kind: seen[kind] for kind in FLAG_KINDS if seen[kind]}

    @staticmethod
    def concatenate(parts: Sequence[Applicability]) -> Applicability:
        return Applicability(
            [codes for part in parts for codes in part.flags],
            np.concatenate([part.predictable for part in parts]) if parts else np.zeros(0, bool),
        )

    def with_periodic(self, periodic: np.ndarray) -> Applicability:
        """These flags spread over a file's structures, the periodic ones (periodic: (n,) bool,
        with as many False as this holds structures) flagged `periodic` and not predictable."""
        periodic = np.asarray(periodic, dtype=bool)
        if int((~periodic).sum()) != len(self):
            raise ValueError(f"{int((~periodic).sum())} molecules for {len(self)} flags")
        flags: list[tuple[str, ...]] = [(PERIODIC,)] * len(periodic)
        predictable = np.zeros(len(periodic), dtype=bool)
        for row, codes in zip(np.flatnonzero(~periodic).tolist(), self.flags):
            flags[row] = codes
        predictable[~periodic] = self.predictable
        return Applicability(flags, predictable)


def applicability(
    molecules: Molecules,
    domains: TrainingCounts | Sequence[TrainingCounts],
    min_stratum: int = DEFAULT_MIN_STRATUM,
) -> Applicability:
    """Flag every molecule outside the training domain(s) (see the module's docstring).

    With several domains (an ensemble), a molecule lies outside the training range when it
    lies outside the union of the members' ranges, carries the other flags of every domain it
    leaves, and is predictable only if every model saw all of its elements.
    """
    if min_stratum < 0:
        raise OptionError("min_stratum", f"must be 0 or more training molecules, got "
                                         f"{min_stratum}")
    domains = _as_list(domains)
    limits = size_range(domains)
    n = len(molecules)
    per_molecule: list[dict[str, None]] = [{} for _ in range(n)]
    predictable = np.ones(n, dtype=bool)
    for domain in domains:
        for row, codes in _domain_flags(molecules, domain, min_stratum, limits).items():
            per_molecule[row].update(dict.fromkeys(codes))
            if any(code.startswith(UNSEEN) for code in codes):
                predictable[row] = False
    flags = [tuple(sorted(codes, key=_code_order)) for codes in per_molecule]
    return Applicability(flags, predictable)


def _domain_flags(molecules: Molecules, domain: TrainingCounts, min_stratum: int,
                  limits: tuple[int, int]) -> dict[int, list[str]]:
    """Row -> codes, for the flagged rows only; vectorised over molecules. limits: the
    (smallest, largest) training size of the whole ensemble."""
    sizes = molecules.sizes
    symbols = [element_symbol(z) for z in molecules.elements]
    present = molecules.composition > 0
    low, high = limits
    size_count = np.array([domain.sizes.get(int(s), 0) for s in range(high + 2)])
    outside = (sizes < low) | (sizes > high)
    inside_sizes = np.clip(sizes, 0, high + 1)
    rare_size = ~outside & (size_count[inside_sizes] < min_stratum)
    flags: dict[int, list[str]] = {}

    def add(rows: np.ndarray, code) -> None:
        for row in rows.tolist():
            flags.setdefault(row, []).append(code(row))

    add(np.flatnonzero(outside), lambda r: f"{OUTSIDE}:{sizes[r]}")
    add(np.flatnonzero(rare_size), lambda r: f"{RARE_SIZE}:{sizes[r]}({size_count[sizes[r]]})")
    for k, symbol in enumerate(symbols):
        holds = present[:, k]
        seen = domain.elements.get(symbol, 0)
        if seen == 0:
            add(np.flatnonzero(holds), lambda r, s=symbol: f"{UNSEEN}:{s}")
            continue
        if seen < min_stratum:
            add(np.flatnonzero(holds), lambda r, s=symbol, c=seen: f"{RARE_ELEMENT}:{s}({c})")
        cell = np.array([domain.size_elements.get((int(s), symbol), 0)
                         for s in range(high + 2)])
        rare_cell = holds & ~outside & ~rare_size & (cell[inside_sizes] < min_stratum)
        add(np.flatnonzero(rare_cell),
            lambda r, s=symbol, c=cell: f"{RARE_CELL}:{sizes[r]}x{s}({c[sizes[r]]})")
    return flags


def _code_order(code: str) -> tuple[int, int, str]:
    """Kind order, then atomic number of the code's element (if any), then the text."""
    kind, _, rest = code.partition(":")
    element = rest.split("(")[0].split("x")[-1]
    z = atomic_number(element) if element.isalpha() else 0
    return FLAG_KINDS.index(kind), z, code


def flags_text(codes: Sequence[str]) -> str:
    """A structure's codes as one field: 'rare_size:27(12);rare_size_element:27xF(3)'."""
    return ";".join(codes)


def summary_text(result: Applicability, training_sizes: tuple[int, int],
                 min_stratum: int, predicted_elsewhere: bool = False) -> str:
    """One line: how many structures were flagged, and why. predicted_elsewhere: another
    model's predictions are evaluated (`evaluate --predictions`), so the structures of an
    element training never saw were predicted and are evaluated."""
    n = len(result)
    flagged = int(result.flagged.sum())
    if flagged == 0:
        return (f"domain of applicability: {'all ' * (n > 1)}{counted(n, 'structure')} "
                f"{'lie' if n > 1 else 'lies'} inside the training domain "
                f"(sizes {training_sizes[0]}-{training_sizes[1]} atoms, every stratum >= "
                f"{min_stratum} training molecules)")
    reasons = []
    for kind, count in result.counts().items():
        detail = _DESCRIPTIONS[kind]
        if kind == UNSEEN and predicted_elsewhere:
            detail = "element never seen in training (evaluated all the same)"
        if kind == OUTSIDE:
            detail += f" {training_sizes[0]}-{training_sizes[1]}"
        reasons.append(f"{count:,} {detail}")
    return (f"domain of applicability: {flagged:,} of {counted(n, 'structure')} flagged: "
            f"{', '.join(reasons)} (rare: < {min_stratum} training molecules)")
