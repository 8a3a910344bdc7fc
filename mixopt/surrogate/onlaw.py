"""Whether a table's intermediate checkpoints lie on the compute law its final checkpoints define.

FLP's stage 1 fits the loss of *finished* runs. An intermediate checkpoint of a cosine run has not
cooled down: its loss lies above the law of finished runs at the same compute, by an amount that
trends with the fraction of training, so only final checkpoints are evidence (the paper's rule).
Under a constant or warmup-stable-decay schedule, or in a world that defines the loss by compute
alone, every checkpoint lies on that law, and using them gives stage 1 ten times the points.
A table without a ``schedule`` column does not say which it is; the data can:

1. the compute law ``L = E + A·C^-alpha`` (:class:`~mixopt.laws.forms.PowerLawWithOffset`) is
   fitted to the final checkpoints alone (log space, as stage 1 fits it);
2. each intermediate checkpoint inside the finals' compute range (where the law interpolates)
   gets its deviation ``d_i = log L_i − log L̂(C_i)``. If the checkpoints lie on the law,
   ``d ~ N(0, s²·(I + G))``: ``s`` the log-loss measurement noise the checkpoints themselves show
   (:func:`~mixopt.surrogate.flp.loss_noise_sd`, estimated without any law) and
   ``G = J_i (J_fᵀ J_f)⁻¹ J_iᵀ`` the law's own error carried from the finals (linearised);
3. two tests of that null, each at ``alpha / 2`` (Bonferroni): the **level** test
   ``dᵀ Σ⁻¹ d ~ χ²(n)`` (deviations within noise), and the **trend** test, the generalised-least-
   squares slope of ``d`` on ``1 − f`` (``f`` the checkpoint's fraction of its run's tokens; a
   schedule that has not cooled down leaves a deviation growing with ``1 − f``), ``z ~ N(0, 1)``.

The checkpoints count as compute-law evidence only when neither test rejects. Real cosine ladders
fail it by a wide margin (Pythia: deviations 11-21x the noise, trending with ``1 − f`` at
``|z|`` 29-63); so does a
table whose loss is not a function of compute alone (Gemstones: every model trains on the same
tokens, so at one compute a smaller model has seen more data: 31-52x the noise). The test licenses the checkpoints
as points *of the compute law* only: an ``(N, D)`` form fitted to them would read them as evidence
of the parameter-token trade-off, which the test did not establish (a declared ``wsd`` or
``constant`` schedule does).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy.special import gammaincc

from mixopt.errors import FitError
from mixopt.laws.base import reference_for
from mixopt.laws.fitter import LawFitter
from mixopt.laws.forms import PowerLawWithOffset

#: false-rejection rate of the whole test (split evenly between the level and trend tests)
ON_LAW_ALPHA = 0.05
#: fewest intermediate checkpoints inside the finals' compute range the test needs to say anything
ON_LAW_MIN_POINTS = 5
#: fewest runs (final checkpoints) the compute law needs: one more than its parameters
ON_LAW_MIN_RUNS = 4


@dataclasses.dataclass(frozen=True)
class OnLawTest:
    """Outcome of :func:`checkpoints_on_law`: ``passed`` and the evidence, with a sentence for ``selection_``."""

    passed: bool
    n_points: int
    noise_sd: float
    level_stat: float = math.nan
    level_p: float = math.nan
    trend_z: float = math.nan
    trend_p: float = math.nan
    rms_over_noise: float = math.nan
    why: str = ""

    def describe(self) -> str:
        if self.why:
            return self.why
        verdict = "they lie on it within noise: used as compute-law evidence" if self.passed else "they do not: final checkpoints only"
        return (
            f"{self.n_points} intermediate checkpoints inside the finals' compute range against the compute law of the "
            f"final checkpoints: rms deviation {self.rms_over_noise:.2f}x the log-loss noise sd {self.noise_sd:.3g}, "
            f"chi-square {self.level_stat:.1f} on {self.n_points} (p = {self.level_p:.3g}), trend with the fraction of "
            f"training z = {self.trend_z:.2f} (p = {self.trend_p:.3g}); each test at {ON_LAW_ALPHA / 2:g}: {verdict}"
        )


def checkpoints_on_law(run_ids: np.ndarray, tokens: np.ndarray, flops: np.ndarray, loss: np.ndarray, noise_sd: float, *, seed: int = 0) -> OnLawTest:
    """Test whether the intermediate checkpoints lie on the compute law of the final ones (module doc).

    Args:
        run_ids, tokens, flops, loss: ``(n,)`` per checkpoint; a run's final checkpoint is its
            row with the most tokens; rows with a missing or non-positive loss are ignored.
        noise_sd: log-loss measurement noise sd of the checkpoints (NaN: unknown, the test fails).
        seed: seed of the law fit's multi-start.
    """
    ids = np.asarray(run_ids).astype(str)
    tok = np.asarray(tokens, dtype=np.float64)
    fl = np.asarray(flops, dtype=np.float64)
    y = np.asarray(loss, dtype=np.float64)
    ok = np.isfinite(y) & (y > 0) & np.isfinite(fl) & (fl > 0) & np.isfinite(tok) & (tok > 0)
    if not (math.isfinite(noise_sd) and noise_sd > 0):
        return OnLawTest(False, 0, noise_sd, why="intermediate checkpoints not used: no loss-noise estimate (too few checkpoints per run) to judge them against")
    last = np.zeros(ids.size, dtype=bool)
    t_end = np.full(ids.size, np.nan)
    for run in np.unique(ids[ok]):
        rows = np.flatnonzero(ok & (ids == run))
        top = rows[np.argmax(tok[rows])]
        last[top] = True
        t_end[rows] = tok[top]
    n_runs = int(last.sum())
    if n_runs < ON_LAW_MIN_RUNS:
        return OnLawTest(False, 0, noise_sd, why=f"intermediate checkpoints not used: the compute law needs >= {ON_LAW_MIN_RUNS} runs to be judged against, got {n_runs}")
    lo, hi = float(fl[last].min()), float(fl[last].max())
    inter = ok & ~last & (fl >= lo * (1 - 1e-9)) & (fl <= hi * (1 + 1e-9))
    n = int(inter.sum())
    if n < ON_LAW_MIN_POINTS:
        return OnLawTest(False, n, noise_sd, why=f"intermediate checkpoints not used: {n} lie inside the finals' compute range, the test needs >= {ON_LAW_MIN_POINTS}")
    law = PowerLawWithOffset(reference=reference_for(fl[ok]))
    fitter = LawFitter(law, n_bootstrap=0, seed=seed)
    try:
        fitter.fit(fl[last][:, None], y[last])
    except FitError as e:
        return OnLawTest(False, n, noise_sd, why=f"intermediate checkpoints not used: the compute law did not fit the final checkpoints ({str(e).splitlines()[0]})")
    theta = np.asarray(fitter.params_, dtype=np.float64)
    xf, xi = fl[last][:, None], fl[inter][:, None]
    pf, pi = law.predict(xf, theta), law.predict(xi, theta)
    # log-space Jacobians (the fit's residuals are in log loss)
    jf = law.jacobian(xf, theta) / pf[:, None]
    ji = law.jacobian(xi, theta) / pi[:, None]
    d = np.log(y[inter]) - np.log(pi)
    cov = np.eye(n) + ji @ np.linalg.pinv(jf.T @ jf) @ ji.T
    cov *= noise_sd * noise_sd
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return OnLawTest(False, n, noise_sd, why="intermediate checkpoints not used: the deviations' covariance is singular")
    wd = np.linalg.solve(chol, d)
    level = float(wd @ wd)
    p_level = float(gammaincc(0.5 * n, 0.5 * level))  # P(chi-square_n >= level), without scipy.stats
    wx = np.linalg.solve(chol, 1.0 - tok[inter] / t_end[inter])
    sxx = float(wx @ wx)
    z = float(wx @ wd) / math.sqrt(sxx) if sxx > 0 else 0.0
    p_trend = math.erfc(abs(z) / math.sqrt(2.0))  # two-sided normal tail
    passed = min(p_level, p_trend) > ON_LAW_ALPHA / 2
    rms = float(np.sqrt(np.mean(d * d))) / noise_sd
    return OnLawTest(passed, n, float(noise_sd), level, p_level, z, p_trend, rms)


__all__ = ["ON_LAW_ALPHA", "ON_LAW_MIN_POINTS", "ON_LAW_MIN_RUNS", "OnLawTest", "checkpoints_on_law"]
