"""Whether a run had stopped learning: the fall of its validation MAE over the end of training.

A model that is still learning when its training ends gives errors, and differences between
errors, that say as much about the budget as about the treatment: the third source of noise a
verdict must name, after the test molecules and the training seed. A run counts as converged
when its validation MAE fell by less than FLAT (relative) over the last TAIL of its epochs
(for example, from epoch 8 to epoch 10 of 10). A schedule that decays the learning rate to
nothing flattens the curve by itself, so a flat end is necessary, not sufficient: the report
also says how far a study's data and budget are from the full study. Studies and `compare`
both ask it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from molstrata.tables import read_csv_rows

TAIL = 0.2
"""The end of training that is judged: the last 20 % of the epochs."""
FLAT = 0.02
"""A fall of the validation MAE under 2 % over that end counts as flat."""


@dataclass(frozen=True)
class Convergence:
    """The validation MAE at the start of the judged tail (epoch `from_epoch`) and at the end
    (in the curve's unit, meV for energies); `fall` = (start - end) / start."""

    epochs: int
    from_epoch: int
    start: float
    end: float

    @property
    def fall(self) -> float:
        return (self.start - self.end) / self.start if self.start else math.nan

    @property
    def flat(self) -> bool:
        return self.fall < FLAT

    def text(self) -> str:
        return (f"validation MAE {self.start:.1f} -> {self.end:.1f} meV from epoch "
                f"{self.from_epoch} to {self.epochs} ({-100 * self.fall:+.1f} %)")


def run_convergence(curve: Path | None) -> Convergence | None:
    """The convergence of one run from its learning_curve.csv; None without two epochs."""
    if curve is None or not Path(curve).is_file():
        return None
    rows = [r for r in read_csv_rows(curve, "") if r.get("val_mae_meV") not in (None, "")]
    if len(rows) < 2:
        return None
    epochs = len(rows)
    first = min(epochs - 1, max(1, math.floor((1 - TAIL) * epochs)))  # 1-based epoch
    return Convergence(epochs, first, float(rows[first - 1]["val_mae_meV"]),
                       float(rows[-1]["val_mae_meV"]))


def still_learning(curves: Sequence[Path | None]) -> str | None:
    """Why the runs of one experiment (its replicates' curves) were still learning, or None
    when the mean fall over them is under FLAT (or no curve says)."""
    found = [c for c in (run_convergence(curve) for curve in curves) if c is not None]
    if not found:
        return None
    mean_fall = sum(c.fall for c in found) / len(found)
    if mean_fall < FLAT:
        return None
    c = found[0]
    seeds = f", mean of {len(found)} seeds" if len(found) > 1 else ""
    return (f"validation MAE fell {100 * mean_fall:.1f} % over the last "
            f"{100 * TAIL:.0f} % of training (epochs {c.from_epoch}-{c.epochs}{seeds})")
