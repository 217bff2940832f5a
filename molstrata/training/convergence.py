"""Whether a run had stopped learning: the trend of its validation MAE over the end of training.

A model that is still learning when its training ends gives errors, and differences between
errors, that say as much about the budget as about the treatment: the third source of noise a
verdict must name, after the test molecules and the training seed. The criterion: the slope of
log validation MAE against the epoch, fitted by least squares over the last TAIL of the epochs
(at least 3 points where the run has them), projected over one more such tail; a projected
fall under FLAT counts as flat. A fit over several epochs is less noisy than comparing two
epochs' values, and an experiment is judged by its worst training seed, not by the mean of its
seeds (which hides a seed still learning).

What it cannot see: a schedule that decays the learning rate to zero (cosine, linear) flattens
the end of any curve by construction, so for such runs "flat" means the run had stopped
learning at this budget, not that a longer budget of the same recipe would not reach a lower
error; only a longer run of the same recipe tells that (`scheduled` says when this applies).
Studies and `compare` both ask it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from molstrata.tables import read_csv_rows
from molstrata.wording import counted

TAIL = 0.4
"""The end of training that is judged: the last 40 % of the epochs (at least 3 when run)."""
FLAT = 0.02
"""A projected fall of the validation MAE under 2 % over one more tail counts as flat."""


@dataclass(frozen=True)
class Convergence:
    """The validation MAE at the start of the judged tail (epoch `from_epoch`) and at the end
    (in the curve's unit, meV for energies); `slope`: fitted d log MAE / d epoch over the tail;
    `fall` = (start - end) / start; `scheduled`: the learning rate decayed to the end."""

    epochs: int
    from_epoch: int
    start: float
    end: float
    slope: float = 0.0
    scheduled: bool = False

    @property
    def fall(self) -> float:
        return (self.start - self.end) / self.start if self.start else math.nan

    @property
    def projected_fall(self) -> float:
        """The fall of the validation MAE over one more tail, if the fitted trend went on."""
        return 1.0 - math.exp(self.slope * (self.epochs - self.from_epoch))

    @property
    def flat(self) -> bool:
        return self.projected_fall < FLAT

    def text(self) -> str:
        trend = -100 * self.projected_fall
        return (f"validation MAE {self.start:.1f} -> {self.end:.1f} meV from epoch "
                f"{self.from_epoch} to {self.epochs} (fitted trend {trend:+.1f} % over as many "
                "epochs again)")


def run_convergence(curve: Path | None) -> Convergence | None:
    """The convergence of one run from its learning_curve.csv; None without two epochs."""
    if curve is None or not Path(curve).is_file():
        return None
    rows = [r for r in read_csv_rows(curve, "") if r.get("val_mae_meV") not in (None, "")]
    if len(rows) < 2:
        return None
    epochs = len(rows)
    tail = min(epochs, max(3, math.ceil(TAIL * epochs)))
    first = epochs - tail + 1  # 1-based epoch where the judged tail starts
    mae = np.array([float(r["val_mae_meV"]) for r in rows[first - 1:]])
    slope = float(np.polyfit(np.arange(len(mae)), np.log(np.maximum(mae, 1e-300)), 1)[0])
    lrs = [float(r["lr"]) for r in rows if r.get("lr") not in (None, "")]
    scheduled = len(lrs) >= 2 and lrs[-1] < 0.1 * max(lrs)
    return Convergence(epochs, first, float(mae[0]), float(mae[-1]), slope, scheduled)


def still_learning(curves: Sequence[Path | None]) -> str | None:
    """Why the runs of one experiment (its replicates' curves) were still learning, judged by
    the worst seed, or None when every seed's projected fall is under FLAT (or no curve
    says)."""
    found = [c for c in (run_convergence(curve) for curve in curves) if c is not None]
    if not found:
        return None
    worst = max(found, key=lambda c: c.projected_fall)
    if worst.flat:
        return None
    seeds = f", the worst of {len(found)} seeds" if len(found) > 1 else ""
    return (f"validation MAE still falling {100 * worst.projected_fall:.1f} % per "
            f"{counted(worst.epochs - worst.from_epoch, 'epoch')} at the end (fitted over epochs "
            f"{worst.from_epoch}-{worst.epochs}{seeds})")
