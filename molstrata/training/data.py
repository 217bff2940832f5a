"""From a run config to the exact molecules, targets and split a run trains and is tested on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from molstrata.data.datasets import QM9_NAMES, load_dataset
from molstrata.data.datasets import is_extensive as dataset_is_extensive
from molstrata.data.filters import apply_filters, filter_mask
from molstrata.data.molecules import Molecules, element_symbol
from molstrata.data.sampling import undersample_per_size
from molstrata.data.splits import Split, load_split, random_split, restrict
from molstrata.errors import MolstrataError
from molstrata.training.config import TrainConfig
from molstrata.training.targets import check_finite


@dataclass(frozen=True)
class PreparedData:
    """The dataset a run sees, its target values, and the split (rows into `molecules`).

    split.train and split.val are restricted to the targeted subset; split.test never is.
    """

    molecules: Molecules
    values: np.ndarray
    split: Split
    target: str
    unit: str
    extensive: bool


def load_molecules(config: TrainConfig, progress: bool = True) -> Molecules:
    """The dataset after the [data] filters and the optional seeded cap on its size.
    progress: the parsing bar only; which structures were left out is said either way."""
    from molstrata.training.distributed import is_main_process

    d = config.data
    unit = d.unit if d.dataset not in QM9_NAMES else None
    molecules = load_dataset(d.dataset, d.target, unit, cache_root=d.cache_dir, progress=progress,
                             skip_periodic=d.skip_periodic,
                             log=print if is_main_process() else None)
    molecules = apply_filters(molecules, min_size=d.min_size, max_size=d.max_size,
                              contains=d.contains, excludes=d.excludes)
    if d.max_molecules is not None and d.max_molecules < len(molecules):
        rows = np.random.default_rng(d.split_seed).permutation(len(molecules))[: d.max_molecules]
        molecules = molecules.subset(np.sort(rows))
    return molecules


def is_extensive(config: TrainConfig) -> bool:
    """Whether the target sums over atoms: the config's aggregation, else the data stage's rule
    for the dataset's property (`molstrata.data.datasets.is_extensive`)."""
    if config.model.aggregation is not None:
        return config.model.aggregation == "sum"
    return dataset_is_extensive(config.data.dataset, config.data.target)


def prepare(config: TrainConfig, split_file: str | Path | None = None,
            progress: bool = True) -> PreparedData:
    """Load, filter, split (or reuse a saved split) and restrict the training subset."""
    molecules = load_molecules(config, progress)
    target = config.data.target
    values = check_finite(molecules, target)
    split_file = split_file or config.data.split_file
    if split_file is not None:
        split = load_split(split_file, molecules)
    else:
        split = random_split(len(molecules), fractions=config.data.split,
                             seed=config.data.split_seed)
        split = restrict_to_subset(config, molecules, split)
    for name, rows in (("train", split.train), ("val", split.val)):
        if len(rows) == 0:
            raise MolstrataError(
                f"the {name} split is empty after the subset filters; relax [subset] or [data] "
                "filters, or use more molecules"
            )
    check_elements(molecules.subset(split.train), molecules.subset(split.val), "validation")
    return PreparedData(molecules, values, split, target, molecules.units[target],
                        is_extensive(config))


def restrict_to_subset(config: TrainConfig, molecules: Molecules, split: Split) -> Split:
    """Keep in train and val only the [subset] molecules, then cap train per size, then keep
    the first max_train of a seeded permutation of train (nested across max_train), then thin
    the subset.thin stratum's training molecules (`thin_rows`). With subset.draw = "seed",
    train and val are first drawn anew from their union by the run's training seed (the test
    set is untouched), and the cap, max_train and the thinning use that seed."""
    s = config.subset
    seed = draw_seed(config)
    if s.draw == "seed":
        split = redraw_train_val(split, seed)
    allowed = filter_mask(molecules, min_size=s.min_size, max_size=s.max_size,
                          contains=s.contains, excludes=s.excludes)
    split = restrict(split, np.flatnonzero(allowed), parts=("train", "val"))
    if s.cap is not None:
        kept = split.train[undersample_per_size(molecules.sizes[split.train], s.cap, seed)]
        split = restrict(split, kept, parts=("train",))
    if s.max_train is not None and s.max_train < len(split.train):
        order = np.random.default_rng([seed, NESTED_STREAM]).permutation(
            len(split.train))
        split = restrict(split, split.train[np.sort(order[: s.max_train])], parts=("train",))
    if s.thinned is not None and s.thin_fraction < 1:
        kept = thin_rows(molecules, split.train, s.thinned, s.thin_fraction, seed)
        split = restrict(split, kept, parts=("train",))
    return split


def thin_rows(molecules: Molecules, train: np.ndarray, stratum: tuple[str, int | str],
              fraction: float, seed: int) -> np.ndarray:
    """The training rows `train` with the stratum's ("size", N) or ("element", X) thinned to
    round(fraction x its count) of them (at least 1 when fraction > 0): the first of a
    permutation seeded by (seed, THIN_STREAM), so a smaller fraction's molecules are among a
    larger one's; every row outside the stratum stays. Sorted."""
    kind, key = stratum
    inside = (molecules.sizes[train] == key if kind == "size"
              else molecules.contains(str(key))[train])
    members = train[inside]
    keep = 0 if fraction == 0 else max(1, round(fraction * len(members)))
    order = np.random.default_rng([seed, THIN_STREAM]).permutation(len(members))
    return np.sort(np.concatenate([train[~inside], members[order[:keep]]]))


NESTED_STREAM = 1
"""The random stream of subset.max_train, apart from the split's own."""

DRAW_STREAM = 2
"""The random stream of a per-seed train / val draw (subset.draw = "seed")."""

THIN_STREAM = 3
"""The random stream of a stratum's thinning (subset.thin)."""


def draw_seed(config: TrainConfig) -> int:
    """The seed of the training molecules' draw: data.split_seed, or with subset.draw = "seed"
    the run's training seed (runtime.seed)."""
    return config.runtime.seed if config.subset.draw == "seed" else config.data.split_seed


def redraw_train_val(split: Split, seed: int) -> Split:
    """The union of train and val split again at their sizes by `seed`; test unchanged."""
    pool = np.concatenate([split.train, split.val])
    order = np.random.default_rng([seed, DRAW_STREAM]).permutation(len(pool))
    n_train = len(split.train)
    return Split(np.sort(pool[order[:n_train]]), np.sort(pool[order[n_train:]]), split.test)


def check_elements(train: Molecules, other: Molecules, what: str) -> None:
    """Refuse to evaluate molecules holding an element no training molecule had."""
    unseen = np.setdiff1d(other.elements, train.elements)
    if len(unseen):
        symbol = element_symbol(unseen[0])
        ids = other.ids[other.contains(int(unseen[0]))][:5].tolist()
        problem = (f"the {what} molecules contain {symbol}, which no training molecule has "
                   f"(molecule ids {ids}); add {symbol} molecules to training or exclude "
                   f"{symbol} with")
        raise MolstrataError(f"{problem} data.excludes = [{symbol!r}]",
                             cli=f"{problem} --set data.excludes=[{symbol!r}]")
