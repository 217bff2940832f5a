"""Learning curves per stratum: how a stratum's MAE falls as its training molecules grow, and
which strata more data would help most. The numbers only: no I/O, no plotting.

The same recipe is trained on nested training subsets, k seeds each, and every model is
evaluated on the same test molecules. A stratum's MAE at subset j (the mean over seeds of each
seed's MAE) is set against n_s[j], that stratum's molecules in the subset, and fitted by a
power law a·n^(−b), or, where the curve flattens, by a·n^(−b) + c with a floor c. Fits are
least squares in log space: errors scale multiplicatively, and log-log is where a power law is
a line with a closed-form fit. The form is chosen by AICc; intervals come from the two-level
bootstrap (training seeds, then test molecules, shared by all subsets), refitting the chosen
form in every replicate.

Caveat for readers of the advice: n_s is not all that changes between subsets (the other
strata grow too), so a stratum's curve mixes its own data with what the rest teaches it; the
advice reads the curve as the effect of that stratum's molecules, and a report must say so.
MAEs, targets and slopes are in the unit of the errors given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from molstrata.errors import MolstrataError
from molstrata.evaluation.bootstrap import CHUNK, mean_mae, resampled_seeds_bootstrap

POWER = "power"
SATURATING = "saturating"
FORMS = {POWER: 2, SATURATING: 3}
"""The curve forms and their parameters (a, b; a, b, c): the count AICc penalises. The
residual variance is not counted: it adds the same 2 to both AICs, but would push the
small-sample correction so far that 6 points choose the floor only for a 150-fold smaller rss."""

GRID = 64
"""Values of the floor c tried per fit, in [0, FLOOR_SPAN · min MAE); a second grid as fine
again around the best one refines it, so c is found to about 0.05 % of the smallest MAE."""

FLOOR_SPAN = 0.98
"""The floor stays below this fraction of the smallest measured MAE, so log(MAE − c) is finite."""

MIN_POINTS = 3
"""Distinct training counts a fit needs: two points fit any power law exactly."""

MIN_POINTS_SATURATING = 4
"""Points below which the saturating form is not tried. At exactly 4 its AICc is infinite
(the small-sample correction divides by m − 3 − 1), so in practice the floor needs 5."""

MIN_MOLECULES = 1
"""Training molecules of a stratum for a subset to be a point of its curve (log 0 is no point)."""

MIN_TEST = 10
"""Test molecules a stratum needs to be fitted: the MAE of fewer is mostly one molecule's luck."""

FACTOR = 10.0
"""Advice needing more than FACTOR times the largest measured n is flagged as extrapolated."""

_VARIANCE_FLOOR = 1e-20
"""Log-space residual variance treated as zero: roundoff of a perfect fit must not make AICc
prefer one form over another (a relative residual of 1e-10 is no real noise)."""


# ---- vectorised fits ---------------------------------------------------------------------


def fit_power_law(n: np.ndarray, mae: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, rss) of log MAE = log a − b log n by least squares over the last axis, for many
    curves at once: n (m,) or (..., m) and mae (..., m), all > 0, broadcast together; a, b and
    the log-space residual sum of squares rss are each (...)."""
    x = np.log(np.asarray(n, dtype=np.float64))
    y = np.log(np.asarray(mae, dtype=np.float64))
    x_mean = x.mean(axis=-1, keepdims=True)
    y_mean = y.mean(axis=-1, keepdims=True)
    dx, dy = x - x_mean, y - y_mean
    slope = (dx * dy).sum(axis=-1) / (dx * dx).sum(axis=-1)
    rss = ((dy - slope[..., None] * dx) ** 2).sum(axis=-1)
    log_a = y_mean[..., 0] - slope * x_mean[..., 0]
    return np.exp(log_a), -slope, rss


def fit_saturating(n: np.ndarray, mae: np.ndarray, grid: int = GRID
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, c, rss) of MAE ≈ a·n^(−b) + c, 0 ≤ c < FLOOR_SPAN · min MAE, over the last axis
    for many curves at once (shapes as `fit_power_law`). For each c on a grid the log-log fit
    of MAE − c is closed form; the c with the lowest log-space rss is kept, then refined on a
    grid as fine again around it. Curves are fitted in chunks so memory stays bounded."""
    n = np.asarray(n, dtype=np.float64)
    mae = np.asarray(mae, dtype=np.float64)
    shape = np.broadcast_shapes(n.shape, mae.shape)
    m = shape[-1]
    n_rows = np.broadcast_to(n, shape).reshape(-1, m)
    mae_rows = np.broadcast_to(mae, shape).reshape(-1, m)
    out = np.empty((4, len(mae_rows)))
    per_chunk = max(1, CHUNK // ((grid + 1) * m))
    for start in range(0, len(mae_rows), per_chunk):
        rows = slice(start, start + per_chunk)
        out[:, rows] = _fit_saturating_rows(n_rows[rows], mae_rows[rows], grid)
    a, b, c, rss = (values.reshape(shape[:-1]) for values in out)
    return a, b, c, rss


def _fit_saturating_rows(n: np.ndarray, mae: np.ndarray, grid: int) -> np.ndarray:
    """(4, rows) a, b, c, rss for n and mae (rows, m): the coarse grid, then the fine one."""
    rows = np.arange(len(mae))
    top = FLOOR_SPAN * mae.min(axis=-1)
    coarse = top[:, None] * np.arange(grid) / grid
    best = coarse[rows, _floor_rss(n, mae, coarse).argmin(axis=-1)]
    step = top / grid
    fine = np.clip(best[:, None] + step[:, None] * np.linspace(-1.0, 1.0, grid + 1),
                   0.0, coarse[:, -1:])
    c = fine[rows, _floor_rss(n, mae, fine).argmin(axis=-1)]
    a, b, rss = fit_power_law(n, mae - c[:, None])
    return np.stack([a, b, c, rss])


def _floor_rss(n: np.ndarray, mae: np.ndarray, floors: np.ndarray) -> np.ndarray:
    """(rows, g) log-space rss of the power law fitted to MAE − c for each of floors (rows, g)."""
    return fit_power_law(n[:, None, :], mae[:, None, :] - floors[:, :, None])[2]


def aicc(rss: np.ndarray | float, m: int, k: int) -> np.ndarray:
    """The small-sample corrected AIC of a least-squares fit of k parameters to m points from its
    residual sum of squares: m·ln(rss/m) + 2k + 2k(k+1)/(m − k − 1); infinite where m ≤ k + 1
    (the correction is undefined: too few points to judge k parameters). Lower is better."""
    variance = np.maximum(np.asarray(rss, dtype=np.float64) / m, _VARIANCE_FLOOR)
    correction = 2 * k * (k + 1) / (m - k - 1) if m - k - 1 > 0 else np.inf
    return m * np.log(variance) + 2 * k + correction


def _fit_form(form: str, n: np.ndarray, mae: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, c) of one named form over the last axis (c = 0 for the power law)."""
    if form == POWER:
        a, b, _ = fit_power_law(n, mae)
        return a, b, np.zeros_like(a)
    a, b, c, _ = fit_saturating(n, mae)
    return a, b, c


def _predict(a: np.ndarray, b: np.ndarray, c: np.ndarray, n: np.ndarray) -> np.ndarray:
    return a * np.asarray(n, dtype=np.float64) ** -b + c


def _slope(a: np.ndarray, b: np.ndarray, n: float) -> np.ndarray:
    """−dMAE/dn at n: the MAE one more training molecule removes (negative where it adds)."""
    return a * b * n ** (-b - 1.0)


def _n_for(a: np.ndarray, b: np.ndarray, c: np.ndarray, target: float) -> np.ndarray:
    """(a / (target − c))^(1/b): molecules to reach target; inf when target ≤ c or b ≤ 0."""
    gap = target - c
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        needed = (a / gap) ** (1.0 / b)
    return np.where((gap > 0) & (b > 0), needed, np.inf)


# ---- one curve ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Fit:
    """A fitted learning curve MAE ≈ a·n^(−b) + c (c = 0 for the power law), with the AICc of
    both forms that were weighed (aicc_saturating is NaN where it was not tried)."""

    form: str
    a: float
    b: float
    c: float
    aicc: float
    aicc_power: float
    aicc_saturating: float

    def predict(self, n: np.ndarray | float) -> np.ndarray:
        """The fitted MAE at n training molecules (same shape as n)."""
        return _predict(np.float64(self.a), np.float64(self.b), np.float64(self.c), n)

    def n_for(self, target: float) -> float:
        """Training molecules needed to reach a target MAE; inf when the target is at or below
        the floor c, or when the MAE does not fall with n (b ≤ 0)."""
        return float(_n_for(np.float64(self.a), np.float64(self.b), np.float64(self.c), target))


def fit_curve(n_train: np.ndarray, mae: np.ndarray) -> Fit:
    """The learning curve through points (n_train[j], mae[j]), both (m,) and > 0: the power law,
    or the saturating form where it has the lower AICc (tried from MIN_POINTS_SATURATING
    points). Raises MolstrataError with fewer than MIN_POINTS distinct training counts."""
    n_train = np.asarray(n_train, dtype=np.float64)
    mae = np.asarray(mae, dtype=np.float64)
    if n_train.ndim != 1 or n_train.shape != mae.shape:
        raise ValueError(f"a curve is (m,) training counts and (m,) MAEs, got {n_train.shape} "
                         f"and {mae.shape}")
    if (n_train <= 0).any() or (mae <= 0).any() or not np.isfinite(mae).all():
        raise ValueError("a learning curve needs training counts and MAEs above zero")
    distinct = len(np.unique(n_train))
    if distinct < MIN_POINTS:
        raise MolstrataError(f"too few points to fit: {distinct} distinct training counts "
                             f"({MIN_POINTS} needed); give more subset sizes or a larger slice")
    m = len(mae)
    a, b, rss = fit_power_law(n_train, mae)
    aicc_p = float(aicc(rss, m, FORMS[POWER]))
    power = Fit(POWER, float(a), float(b), 0.0, aicc_p, aicc_p, float("nan"))
    if m < MIN_POINTS_SATURATING:
        return power
    a, b, c, rss = fit_saturating(n_train, mae)
    aicc_s = float(aicc(rss, m, FORMS[SATURATING]))
    if aicc_s < aicc_p:
        return Fit(SATURATING, float(a), float(b), float(c), aicc_s, aicc_p, aicc_s)
    return dataclasses.replace(power, aicc_saturating=aicc_s)


def fit_problem(n_train: np.ndarray, n_test: int, label: str) -> str | None:
    """Why a stratum gets no curve, as one line naming the fix, or None when it can be fitted:
    it needs MIN_POINTS distinct training counts of at least MIN_MOLECULES and MIN_TEST test
    molecules. The advice prints the line; functions asked to fit raise it."""
    n_train = np.asarray(n_train, dtype=np.float64)
    points = len(np.unique(n_train[n_train >= MIN_MOLECULES]))
    if points >= MIN_POINTS and n_test >= MIN_TEST:
        return None
    return (f"{label}: too few points to fit: {points} subset sizes with distinct training "
            f"counts of at least {MIN_MOLECULES} ({MIN_POINTS} needed) and {n_test} test "
            f"molecules ({MIN_TEST} needed); give more subset sizes or a larger slice")


@dataclass(frozen=True, eq=False)
class Curve:
    """One stratum's learning curve with percentile-bootstrap intervals at `confidence`.

    n_train, mae: (m,) the points fitted (subsets with at least MIN_MOLECULES of the stratum)
    and their measured MAE (mean over seeds); k_seeds: seeds per point. slope: −dMAE/dn at the
    largest n (MAE removed per added molecule). at_n, predicted, predicted_low/high: (q,) the
    fitted MAE at the requested n. n_needed: fit.n_for(target_mae) (inf: unreachable, NaN:
    no target). Intervals are (low, high); c_interval is (0, 0) for the power law.
    """

    label: str
    fit: Fit
    n_train: np.ndarray
    mae: np.ndarray
    n_test: int
    k_seeds: tuple[int, ...]
    confidence: float
    a_interval: tuple[float, float]
    b_interval: tuple[float, float]
    c_interval: tuple[float, float]
    slope: float
    slope_interval: tuple[float, float]
    at_n: np.ndarray
    predicted: np.ndarray
    predicted_low: np.ndarray
    predicted_high: np.ndarray
    target_mae: float | None
    n_needed: float
    n_needed_interval: tuple[float, float]


def bootstrap_curve(
    errors: Sequence[np.ndarray],
    n_train: np.ndarray,
    rng: np.random.Generator,
    *,
    label: str = "stratum",
    at_n: Sequence[float] = (),
    target_mae: float | None = None,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
) -> Curve:
    """One stratum's Curve: the form chosen on the point estimate, refitted in every replicate
    of the two-level bootstrap (each subset's seeds, then the stratum's test molecules, one
    draw shared by all subsets so the curve's points stay paired).

    errors: one (k_j, n_test) array of absolute errors per subset, smallest subset first, the
    same test molecules in the same order in each (k_j may differ); n_train: (m,) the
    stratum's training molecules per subset. Raises MolstrataError (one line, `fit_problem`)
    when the stratum has too few points; the caller decides whether to skip it or stop.
    """
    arms, n_train = _checked(errors, n_train)
    n_test = arms[0].shape[1]
    problem = fit_problem(n_train, n_test, label)
    if problem is not None:
        raise MolstrataError(problem)
    keep = n_train >= MIN_MOLECULES
    arms = [arm for arm, kept in zip(arms, keep) if kept]
    n = n_train[keep]
    mae = np.array([float(mean_mae(arm)) for arm in arms])
    fit = fit_curve(n, mae)
    at = np.asarray(at_n, dtype=np.float64).reshape(-1)
    target = np.nan if target_mae is None else float(target_mae)

    def statistic(*resampled: np.ndarray) -> np.ndarray:
        """(rows, 5 + q): a, b, c, slope, 1/n_needed, then the MAE predicted at each of at_n."""
        rows_mae = np.stack([mean_mae(arm) for arm in resampled], axis=-1)
        a, b, c = _fit_form(fit.form, n, rows_mae)
        with np.errstate(divide="ignore"):
            inverse = 1.0 / _n_for(a, b, c, target)
        return np.column_stack([a, b, c, _slope(a, b, n[-1]), inverse,
                                _predict(a[:, None], b[:, None], c[:, None], at[None, :])])

    low, high = resampled_seeds_bootstrap(arms, statistic, rng, n_bootstrap=n_bootstrap,
                                    confidence=confidence)
    # n_needed may be infinite, where percentiles cannot interpolate; its reciprocal is 0
    # there, and (up to interpolation) a percentile of 1/n is 1 over the mirrored one of n.
    with np.errstate(divide="ignore"):
        needed = (float(1.0 / high[4]), float(1.0 / low[4]))
    return Curve(
        label=label, fit=fit, n_train=n, mae=mae, n_test=n_test,
        k_seeds=tuple(len(arm) for arm in arms), confidence=confidence,
        a_interval=(float(low[0]), float(high[0])), b_interval=(float(low[1]), float(high[1])),
        c_interval=(float(low[2]), float(high[2])),
        slope=float(_slope(np.float64(fit.a), np.float64(fit.b), n[-1])),
        slope_interval=(float(low[3]), float(high[3])),
        at_n=at, predicted=fit.predict(at), predicted_low=low[5:], predicted_high=high[5:],
        target_mae=target_mae,
        n_needed=float("nan") if target_mae is None else fit.n_for(target),
        n_needed_interval=(float("nan"), float("nan")) if target_mae is None else needed,
    )


def global_curve(
    errors: Sequence[np.ndarray],
    subset_sizes: np.ndarray,
    rng: np.random.Generator,
    *,
    at_n: Sequence[float] = (),
    target_mae: float | None = None,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
) -> Curve:
    """The overall learning curve, labelled "all": the MAE over every test molecule against
    the subset size (errors: one (k_j, n_test) array per subset, as `bootstrap_curve`). Its
    slope b is the headline the strata's slopes are read against."""
    return bootstrap_curve(errors, subset_sizes, rng, label="all", at_n=at_n,
                           target_mae=target_mae, n_bootstrap=n_bootstrap,
                           confidence=confidence)


def _checked(errors: Sequence[np.ndarray], n_train: np.ndarray
             ) -> tuple[list[np.ndarray], np.ndarray]:
    """The subsets' errors as float64 (k_j, n_test) arrays and n_train as float64 (m,),
    checked to match (programming errors: the caller builds them)."""
    arms = [np.asarray(e, dtype=np.float64) for e in errors]
    arms = [arm[None, :] if arm.ndim == 1 else arm for arm in arms]
    n_train = np.asarray(n_train, dtype=np.float64)
    if n_train.ndim != 1 or len(n_train) != len(arms) or not arms:
        raise ValueError(f"one training count per subset: {len(arms)} subsets of errors, "
                         f"n_train {n_train.shape}")
    if any(arm.ndim != 2 for arm in arms) or len({arm.shape[1] for arm in arms}) > 1:
        raise ValueError("each subset's errors are (k_seeds, n_test), the same test molecules")
    if (np.diff(n_train) < 0).any():
        raise ValueError(f"subsets are nested, smallest first: n_train must not fall, got "
                         f"{n_train.tolist()}")
    return arms, n_train


# ---- across strata -----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class StratumErrors:
    """What the scaling study measured for one stratum: its label, n_train (m,) its training
    molecules in each subset (smallest subset first) and errors, one (k_j, n_test) array of
    absolute errors per subset over the same test molecules."""

    label: str
    n_train: np.ndarray
    errors: Sequence[np.ndarray]


@dataclass(frozen=True)
class Advice:
    """One stratum's data advice. n_train: its training molecules in the largest subset;
    mae_now: the measured MAE there; form: the fitted form (None: not fitted, note says why);
    n_needed: molecules to reach the target (inf: unreachable); gain_per_1000: the fall of the
    macro-averaged MAE per 1,000 added molecules of this stratum; extrapolated: n_needed is
    finite and above FACTOR times the largest measured n; note: one plain-language line."""

    label: str
    n_train: int
    n_test: int
    mae_now: float
    form: str | None
    b: float
    b_interval: tuple[float, float]
    n_needed: float
    n_needed_interval: tuple[float, float]
    gain_per_1000: float
    gain_interval: tuple[float, float]
    extrapolated: bool
    note: str


def data_advice(
    strata: Sequence[StratumErrors],
    target_mae: float,
    rng: np.random.Generator,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    skip_unfit: bool = True,
) -> list[Advice]:
    """Advice for every stratum of one kind (all sizes, or all elements), ranked by how much
    one added molecule would help: the fall of the macro-averaged MAE, −dMAE_s/dn · 1000 / S
    at the largest subset's n_s (S = len(strata), every stratum of the kind), highest first;
    strata without a fit come last, each with the one-line reason (with skip_unfit=False the
    first of them raises it as a MolstrataError instead)."""
    if not target_mae > 0:
        raise MolstrataError(f"the target MAE must be above zero, got {target_mae}; give the "
                             "MAE to reach in the errors' unit")
    fitted, unfit = [], []
    for stratum in strata:
        arms, n_train = _checked(stratum.errors, stratum.n_train)
        mae_now = float(mean_mae(arms[-1]))
        problem = fit_problem(n_train, arms[0].shape[1], stratum.label)
        if problem is not None:
            if not skip_unfit:
                raise MolstrataError(problem)
            nan2 = (float("nan"), float("nan"))
            unfit.append(Advice(stratum.label, int(n_train[-1]), arms[0].shape[1], mae_now,
                                None, float("nan"), nan2, float("nan"), nan2, float("nan"),
                                nan2, False, problem))
            continue
        curve = bootstrap_curve(arms, n_train, rng, label=stratum.label, target_mae=target_mae,
                                n_bootstrap=n_bootstrap, confidence=confidence)
        scale = 1000.0 / len(strata)
        extrapolated = bool(np.isfinite(curve.n_needed)
                            and curve.n_needed > FACTOR * curve.n_train[-1])
        fitted.append(Advice(
            stratum.label, int(n_train[-1]), curve.n_test, mae_now, curve.fit.form, curve.fit.b,
            curve.b_interval, curve.n_needed, curve.n_needed_interval, curve.slope * scale,
            (curve.slope_interval[0] * scale, curve.slope_interval[1] * scale), extrapolated,
            _note(curve, target_mae, extrapolated)))
    fitted.sort(key=lambda advice: -advice.gain_per_1000)
    return fitted + unfit


def _note(curve: Curve, target: float, extrapolated: bool) -> str:
    """One plain-language line: whether and how far more of this stratum reaches the target."""
    fit, n_now, needed = curve.fit, curve.n_train[-1], curve.n_needed
    if fit.b <= 0:
        return ("its MAE does not fall as its training molecules grow over the measured range; "
                "more of them alone will not reach the target")
    if not np.isfinite(needed):
        return (f"unreachable: the target {target:.4g} is at or below the fitted floor "
                f"{fit.c:.4g}; more of these molecules alone will not reach it")
    if needed <= n_now:
        return f"already at the target: about {needed:.3g} training molecules suffice"
    text = f"needs about {needed:.3g} training molecules ({needed - n_now:.3g} more than now)"
    if extrapolated:
        text += (f", {needed / n_now:.0f} times the most measured: an extrapolation, read it "
                 "as a direction, not a count")
    return text


@dataclass(frozen=True)
class HeldOutRow:
    """One stratum's held-out check: the MAE at the largest subset (n_train molecules of the
    stratum) predicted by the curve fitted without it, the MAE measured there, and
    relative_error = predicted / measured − 1."""

    label: str
    n_train: int
    form: str
    predicted: float
    measured: float
    relative_error: float


@dataclass(frozen=True)
class HeldOutCheck:
    """How well the curves extrapolate one step: rows per fitted stratum, the one-line reasons
    of the strata skipped (too few points without the largest subset), and the median of
    |relative_error| over the rows (NaN when there are none)."""

    rows: tuple[HeldOutRow, ...]
    skipped: tuple[str, ...]
    median_abs_relative_error: float


def held_out_check(strata: Sequence[StratumErrors]) -> HeldOutCheck:
    """Fit every stratum on all subsets but the largest and predict its MAE at the largest
    subset's n_s: the one test of the extrapolation the advice relies on that the data allow.
    Point estimates only; a stratum with too few points left is skipped with its reason."""
    rows, skipped = [], []
    for stratum in strata:
        arms, n_train = _checked(stratum.errors, stratum.n_train)
        problem = fit_problem(n_train[:-1], arms[0].shape[1], stratum.label)
        if problem is not None:
            skipped.append(problem)
            continue
        keep = n_train[:-1] >= MIN_MOLECULES
        mae = np.array([float(mean_mae(arm)) for arm in arms[:-1]])[keep]
        fit = fit_curve(n_train[:-1][keep], mae)
        predicted = float(fit.predict(n_train[-1]))
        measured = float(mean_mae(arms[-1]))
        rows.append(HeldOutRow(stratum.label, int(n_train[-1]), fit.form, predicted, measured,
                               predicted / measured - 1.0))
    errors = [abs(row.relative_error) for row in rows]
    median = float(np.median(errors)) if errors else float("nan")
    return HeldOutCheck(tuple(rows), tuple(skipped), median)
