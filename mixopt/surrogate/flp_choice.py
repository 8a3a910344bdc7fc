"""FLP's choices by the data: the stage-1 form and points, the stage-2 links, the interval calibration.

:class:`_FLPChoice` is the part of :class:`~mixopt.surrogate.flp.FLP` that runs its internal
backtests (:mod:`mixopt.surrogate.select`) on the runs given to ``fit`` and records every
candidate's score in ``selection_`` (rows of :data:`SELECTION_SCHEMA`). It is a mixin: its
methods call FLP's own ``_internal``, ``_usable_rows`` and ``_fit_stage2_one``. The candidate
forms, the fallbacks when no backtest is possible and the calibration settings live here too;
:mod:`mixopt.surrogate.flp` re-exports them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from mixopt.data.table import SCORE_PREFIX, RunTable
from mixopt.surrogate.calibrate import IntervalCalibrator
from mixopt.surrogate.select import DROP_ERRORS, Candidate, Fold, Selection, fold_ratio, internal_backtest, ratio_folds, select

if TYPE_CHECKING:
    from mixopt.surrogate.flp import FLP

#: stage-1 forms with inputs (params, tokens) rather than compute
ND_FORMS: tuple[str, ...] = ("chinchilla", "chinchilla_tied")
#: stage-1 forms, in order of preference on ties
STAGE1_FORMS: tuple[str, ...] = ("power_offset", "pure_power", "chinchilla", "chinchilla_tied")
#: stage-2 links, in order of preference on ties
STAGE2_FORMS: tuple[str, ...] = ("linear", "sigmoid", "sigmoid_free")
#: fallbacks when no internal backtest is possible (too few sizes or emerged points)
DEFAULT_STAGE1 = "power_offset"
#: measured (issue 11): a sigmoid link beats the linear one on the synthetic worlds, Gadre (all
#: small runs), Pythia and Gemstones when it is forced on every benchmark; linear only wins on
#: Gadre's 5-run fit set. A sigmoid that cannot be fitted falls back to linear.
DEFAULT_STAGE2 = "sigmoid"
#: ``auto`` fits a stage-2 link only with at least this many points per parameter
MIN_POINTS_PER_PARAM = 3
#: reference level of the interval calibration
CALIBRATION_LEVEL = 0.9
#: fewest held-out points to calibrate on (with 3 the conformal 90% factor is the largest miss)
CALIBRATION_MIN_POINTS = 3
#: ratio-matched folds added to the size folds for calibration (target known)
CALIBRATION_RATIO_FOLDS = 5
#: rank of each stage-1 form among tied ones (the simplest gives the point prediction): by parameter count,
#: except that the pure power law comes last, having no irreducible loss it falls below any loss floor far out
#: (measured: as the point prediction of a tie it gave 26 % loss error on Pythia where the offset law gives 2.3 %)
FORM_PARAMS: dict[str, int] = {"power_offset": 3, "chinchilla_tied": 4, "chinchilla": 5, "pure_power": 6}
#: fewest sizes a ratio-matched fold fits on (more points than the 3-parameter offset power law has)
RATIO_MIN_TRAIN_SIZES = 4
#: stage-1 candidates whose internal error is within this share of the best one's are within noise (averaged)
TIE_RELATIVE = 0.25
#: ... or within this absolute relative loss error (0.2 % of the loss), or within 2 paired standard errors
TIE_ABSOLUTE = 0.002


SELECTION_SCHEMA = {
    "stage": pl.String,
    "quantity": pl.String,
    "candidate": pl.String,
    "status": pl.String,
    "reason": pl.String,
    "score": pl.Float64,
    "n_points": pl.Int64,
}


def _sel_row(stage: str, quantity: str, candidate: str, status: str, reason: str = "", score: float | None = None, n_points: int | None = 0) -> dict[str, Any]:
    sc = None if score is None or not math.isfinite(float(score)) else float(score)
    return {"stage": stage, "quantity": quantity, "candidate": candidate, "status": status, "reason": reason or "", "score": sc, "n_points": int(n_points or 0)}


class _FLPChoice:
    """Internal-backtest choices of :class:`~mixopt.surrogate.flp.FLP` (a mixin; see the module docstring)."""

    def _choose_stage1(self, runs: RunTable, loss_name: str, eff: Mapping[str, Any], folds: list[Fold]) -> tuple[str, str, list[dict[str, Any]], dict[str, float]]:
        forms = STAGE1_FORMS if eff["stage1"] == "auto" else (eff["stage1"],)
        has_usable = bool(np.any(self._usable_rows(runs, "usable") & ~self._usable_rows(runs, "final")))
        if eff["checkpoints"] == "auto":
            modes = ("final", "usable") if has_usable else ("final",)
        else:
            modes = (eff["checkpoints"],)
        if len(forms) * len(modes) == 1:
            return forms[0], modes[0], [_sel_row("stage1", loss_name, f"{forms[0]}+{modes[0]}", "fixed", "set by the settings")], {}
        pairs = [(f, m) for f in forms for m in modes]
        if self.__dict__.get("_on_law"):
            # checkpoints shown to lie on the compute law (:mod:`mixopt.surrogate.onlaw`) are evidence for the compute
            # forms only: an (N, D) form would read them as the parameter-token trade-off, which the test did not show
            pairs = list(dict.fromkeys((f, "final" if f in ND_FORMS else m) for f, m in pairs))
        cands = [Candidate(f"{f}+{m}", {"stage1": f, "checkpoints": m}) for f, m in pairs]

        def factory(s: Mapping[str, Any]) -> FLP:
            m = self._internal(stage1=s["stage1"], checkpoints=s["checkpoints"], stage2="linear", n_bootstrap=0)
            m._stage1_only = True
            return m

        sel = select(runs, cands, factory, folds=folds, quantities=[loss_name])
        average = self._ties(sel) if getattr(self, "_average_ok", False) else {}
        best = sel.chosen
        if len(average) > 1:
            # the one-standard-error rule: among forms the folds cannot tell apart, the simplest gives the point
            scores = {r["candidate"]: r["score"] for r in sel.table.iter_rows(named=True)}
            best = min(average, key=lambda c: (FORM_PARAMS.get(c.split("+")[0], 99), scores.get(c) or math.inf))
        rows = []
        for r in sel.table.iter_rows(named=True):
            status, reason = r["status"], r["reason"]
            if r["candidate"] in average and len(average) > 1:
                others = ", ".join(k for k in average if k != r["candidate"])
                status = "chosen" if r["candidate"] == best else "averaged"
                reason = (
                    f"{'chosen (point prediction: fewest parameters among the tied forms); ' if status == 'chosen' else ''}"
                    f"within noise of {others} on these folds: intervals and draws cover them all, "
                    f"weight {average[r['candidate']]:.2f}"
                )
            rows.append(_sel_row("stage1", loss_name, r["candidate"], status, reason, r["score"], r["n_points"]))
        sel.chosen = best
        if sel.chosen is None:
            # no internal backtest possible: the fallback below is the form measured best on the shared data
            form = DEFAULT_STAGE1 if DEFAULT_STAGE1 in forms else forms[0]
            mode = "final" if "final" in modes else modes[0]
            rows.append(_sel_row("stage1", loss_name, f"{form}+{mode}", "fallback", sel.reason))
            return form, mode, rows, {}
        chosen = next(c for c in cands if c.name == sel.chosen)
        return str(chosen.settings["stage1"]), str(chosen.settings["checkpoints"]), rows, average

    @staticmethod
    def _ties(sel: Selection) -> dict[str, float]:
        """Candidates within noise of the chosen one on the folds, with averaging weights (empty: no tie).

        Within noise: the mean relative error exceeds the best's by at most
        ``max(TIE_RELATIVE·best, TIE_ABSOLUTE, 2·paired standard error)`` (paired over the same held-out
        points). Weight ``∝ 1 / error²`` (inverse mean-squared evidence): the best gets the most."""
        if sel.chosen is None or len(sel.rows) < 2:
            return {}
        best = sel.rows[sel.chosen].select("fold", "run", pl.col("rel_error").alias("b"))
        s_best = float(best["b"].mean())
        out: dict[str, float] = {}
        for name, r in sel.rows.items():
            j = r.select("fold", "run", pl.col("rel_error").alias("c")).join(best, on=["fold", "run"], how="inner")
            if j.height == 0:
                continue
            d = (j["c"] - j["b"]).to_numpy()
            se = float(np.std(d, ddof=1) / math.sqrt(d.size)) if d.size >= 3 else 0.0
            tol = max(TIE_RELATIVE * s_best, TIE_ABSOLUTE, 2.0 * se)
            delta = float(np.mean(d))
            if name == sel.chosen or delta <= tol:
                out[name] = 1.0 / max(float(j["c"].mean()), 1e-12) ** 2
        if len(out) < 2:
            return {}
        tot = sum(out.values())
        return {k: v / tot for k, v in out.items()}

    def _stage1_folds(self, runs: RunTable, folds: list[Fold]) -> tuple[list[Fold], list[dict[str, Any]]]:
        """Folds that judge the stage-1 form (``selection_at``), and a ``folds`` row saying which and why.

        Ratio-matched folds (target known) also allow averaging forms within noise (``_average_ok``)."""
        self._average_ok = False
        at = getattr(self, "selection_at", "auto")
        target = getattr(self, "target_flops", None)
        fl_max = float(np.max(runs.final().flops()))
        if at == "largest" or target is None:
            why = "leave-largest-out (selection_at='largest')" if at == "largest" else "leave-largest-out: no target_flops given, so the target's distance is unknown"
            reach = max((fold_ratio(f) for f in folds), default=float("nan"))
            return folds, [_sel_row("stage1", "*", "folds", "fixed", f"{why}; the folds reach {reach:.3g}x", None, len(folds))]
        ratio = float(target) / fl_max
        rf = ratio_folds(runs, ratio, int(self.selection_folds), min_train_sizes=RATIO_MIN_TRAIN_SIZES) if ratio > 1 else []
        if not rf:
            why = f"target {target:.3g} FLOPs lies within the fitted compute" if ratio <= 1 else f"no ratio-matched fold has >= {RATIO_MIN_TRAIN_SIZES} sizes to fit on"
            reach = max((fold_ratio(f) for f in folds), default=float("nan"))
            # the request lies beyond what the folds show: forms they cannot tell apart are averaged
            self._average_ok = ratio > 1
            return folds, [_sel_row("stage1", "*", "folds", "fixed", f"leave-largest-out: {why} (request {ratio:.3g}x, the folds reach {reach:.3g}x)", None, len(folds))]
        self._average_ok = True
        reach = max(fold_ratio(f) for f in rf)
        # judged on both: the ratio-matched folds alone preferred the 5-parameter Chinchilla form on Gadre's RedPajama
        # ladder (fit <= 0.411B), 1-3 % off at the targets where the leave-largest-out choice is 0.1-0.3 % off
        both = list(folds) + [Fold(index=len(folds) + k + 1, train=f.train, test=f.test, description=f.description, kind=f.kind) for k, f in enumerate(rf)]
        return both, [
            _sel_row(
                "stage1",
                "*",
                "folds",
                "fixed",
                f"leave-largest-out and ratio-matched to the request ({ratio:.3g}x = target / largest fitted "
                f"compute): {len(rf)} ratio fold(s) reaching {reach:.3g}x; " + "; ".join(f.description for f in rf),
                None,
                len(both),
            )
        ]

    def _loss_folds(self, runs: RunTable, loss_name: str) -> list[tuple[RunTable, RunTable, np.ndarray]]:
        """Stage-2 folds ``(train, test, test rows of runs)``: hold out every checkpoint with a loss below
        the best final loss of the (k+1)-th largest size (stage 2 extrapolates in loss, not in size)."""
        final = runs.final()
        sizes = np.unique(final.params())
        fl = final.column(loss_name)
        out = []
        for k in range(1, int(self.selection_folds) + 1):
            if sizes.size - k < 2:
                break
            at = (final.params() == sizes[-(k + 1)]) & np.isfinite(fl)
            if not at.any():
                continue
            thr = float(np.min(fl[at]))
            is_test = np.asarray(runs.frame.select((pl.col(loss_name).is_not_null() & (pl.col(loss_name) < thr)).fill_null(False)).to_series().to_numpy(), dtype=bool)
            train = runs.filter(pl.col(loss_name).is_not_null() & (pl.col(loss_name) >= thr))
            test = runs.filter(pl.Series(is_test))
            if len(test) and train.n_runs >= 2:
                out.append((train, test, is_test))
        return out

    def _choose_stage2(self, runs: RunTable, loss_name: str, eff: Mapping[str, Any], folds: list[Fold]) -> tuple[dict[str, str], list[dict[str, Any]]]:
        names = [SCORE_PREFIX + b.name for b in runs.benchmarks]
        if eff["stage2"] != "auto":
            return {n: str(eff["stage2"]) for n in names}, []
        self._no_weak = True  # links are scored on emerged evidence; weak-evidence fits come after the choice
        try:
            return self._score_links(runs, loss_name, eff, names)
        finally:
            self._no_weak = False

    def _score_links(self, runs: RunTable, loss_name: str, eff: Mapping[str, Any], names: list[str]) -> tuple[dict[str, str], list[dict[str, Any]]]:
        """Every link of every benchmark scored on the loss-threshold folds; per benchmark the best one, unless
        :data:`DEFAULT_STAGE2` is within noise of it (:meth:`_link_choice`)."""
        links = STAGE2_FORMS
        err: dict[tuple[str, str], dict[int, np.ndarray]] = {}
        runs_of: dict[str, dict[int, np.ndarray]] = {}  # run of every scored held-out row, per benchmark and fold
        fail: dict[tuple[str, str], str] = {}
        # the held-out rows are scored at the regressor the fitted stage 2 reads there (stage2_loss_x: the
        # whole table's denoised loss, not the raw loss a link fitted on denoised x never saw)
        x_all = self._arrays(runs, loss_name)[2]
        for k, (train, test, is_test) in enumerate(self._loss_folds(runs, loss_name)):
            l_test = x_all[is_test]
            sc_test = test.scores()
            for j, b in enumerate(runs.benchmarks):
                name = names[j]
                actual = sc_test[:, j]
                ok = np.isfinite(actual) & np.isfinite(l_test)
                for link in links:
                    fl, _, reason = self._fit_stage2_one(train, j, b, link, loss_name, None, eff["stage2_points"], MIN_POINTS_PER_PARAM)
                    if fl is None:
                        fail.setdefault((name, link), reason or "not fitted")
                        continue
                    if not ok.any():
                        continue
                    with np.errstate(all="ignore"):
                        pred = fl.law.predict(l_test[ok][:, None], fl.params)
                    err.setdefault((name, link), {})[k] = np.abs(pred - actual[ok])
                    runs_of.setdefault(name, {})[k] = test.run_ids().astype(str)[ok]
        choice: dict[str, str] = {}
        rows: list[dict[str, Any]] = []
        for name in names:
            per = {lk: err[(name, lk)] for lk in links if err.get((name, lk))}
            best, scored, why = self._link_choice(per, runs_of.get(name))
            choice[name] = best if best is not None else DEFAULT_STAGE2
            for lk in links:
                if lk in scored:
                    rows.append(_sel_row("stage2", name, lk, "chosen" if lk == best else "scored", why if lk == best else "", scored[lk][0], scored[lk][1]))
                elif lk in per:
                    rows.append(_sel_row("stage2", name, lk, "scored", "not compared: scored on other folds than the links compared", None, int(sum(v.size for v in per[lk].values()))))
                else:
                    rows.append(_sel_row("stage2", name, lk, "failed", fail.get((name, lk), "no held-out checkpoint to score on")))
            if best is None:
                rows.append(_sel_row("stage2", name, DEFAULT_STAGE2, "fallback", "no internal backtest could score a link (too few emerged points in the folds)"))
        return choice, rows

    @staticmethod
    def _link_choice(per: Mapping[str, Mapping[int, np.ndarray]], runs: Mapping[int, np.ndarray] | None = None) -> tuple[str | None, dict[str, tuple[float, int]], str]:
        """The link of one benchmark from its fold errors ``{link: {fold: |error| per held-out row}}``
        (``runs``: ``{fold: run of each row}``, the units the standard error counts; None: every row its own).

        Links are compared on the same held-out rows (the folds every compared link scored on; a link
        that scored on fewer folds than the most is left out: a mean over easier folds is not comparable).
        The lowest mean absolute error wins unless :data:`DEFAULT_STAGE2` (the emergence curve's own
        shape, chance floor to a ceiling; measured best on the synthetic worlds and the real ladders when
        forced on every benchmark) is within noise of it: ``max(TIE_RELATIVE·best, 2·paired standard
        error)``, the standard error over the (fold, run) clusters of the paired differences (the
        checkpoints of one run share its fitted curve: their errors are not independent, and counted as
        such 7 checkpoints of one run made a 0.004 margin "beyond noise"; fewer than 3 clusters: no
        margin is). The folds are a short extrapolation (the checkpoints just past a loss threshold, one or
        two runs); a link that only ties the sigmoid there does not earn the long one (measured on the
        synthetic worlds, seeds 1-30: the linear link chosen on such ties was 11-22 % off at the targets
        where the sigmoid was 2-5 %). Returns (link or None, ``{link: (mean error, rows)}``, reason)."""
        if not per:
            return None, {}, ""
        most = max(len(v) for v in per.values())
        cands = {lk: v for lk, v in per.items() if len(v) == most}
        common = sorted(set.intersection(*(set(v) for v in cands.values())))
        if not common:  # same number of folds but different ones: the ones the default (or the first) scored
            ref = DEFAULT_STAGE2 if DEFAULT_STAGE2 in cands else next(iter(cands))
            cands = {ref: cands[ref]}
            common = sorted(cands[ref])
        vec = {lk: np.concatenate([v[k] for k in common]) for lk, v in cands.items()}
        scored = {lk: (float(np.mean(e)), int(e.size)) for lk, e in vec.items()}
        best = min(scored, key=lambda lk: (scored[lk][0], STAGE2_FORMS.index(lk)))
        if best == DEFAULT_STAGE2 or DEFAULT_STAGE2 not in scored:
            return best, scored, ""
        d = vec[DEFAULT_STAGE2] - vec[best]
        if runs is not None:
            keys = np.concatenate([np.char.add(f"{k}|", np.asarray(runs[k]).astype(str)) for k in common])
            _, inv = np.unique(keys, return_inverse=True)
            units = np.bincount(inv, weights=d) / np.bincount(inv)  # mean difference per (fold, run)
        else:
            units = d
        se = float(np.std(units, ddof=1) / math.sqrt(units.size)) if units.size >= 3 else math.inf
        tol = max(TIE_RELATIVE * scored[best][0], 2.0 * se)
        if float(np.mean(d)) <= tol:
            return (
                DEFAULT_STAGE2,
                scored,
                (f"within noise of {best} ({scored[best][0]:.3g}; margin {float(np.mean(d)):.3g} <= {tol:.3g} = max({TIE_RELATIVE:g} x best, 2 paired SE)): the default link is kept"),
            )
        return best, scored, f"beats {DEFAULT_STAGE2} by {float(np.mean(d)):.3g} > {tol:.3g} (max({TIE_RELATIVE:g} x best, 2 paired SE))"

    def _calibration_folds(self, runs: RunTable, folds: list[Fold]) -> list[Fold]:
        """The size folds, plus (target known) ratio-matched folds that hold out other runs.

        A leave-largest-out fold holds out one size: on a ladder that is a handful of runs, one
        held-out loss each, too few for a finite conformal rank (the loss intervals then cannot
        shrink). Compute cuts (:func:`~mixopt.surrogate.select.ratio_folds`, three sizes to fit
        on) hold out more runs, at distances reaching towards the target's."""
        target = getattr(self, "target_flops", None)
        if target is None or getattr(self, "selection_at", "auto") == "largest":
            return folds
        ratio = float(target) / float(np.max(runs.final().flops()))
        if ratio <= 1:
            return folds
        out = list(folds)
        seen = {(tuple(sorted(f.train.final().run_ids().astype(str))), tuple(sorted(f.test.run_ids().astype(str)))) for f in folds}
        for f in ratio_folds(runs, ratio, CALIBRATION_RATIO_FOLDS):
            key = (tuple(sorted(f.train.final().run_ids().astype(str))), tuple(sorted(f.test.run_ids().astype(str))))
            if key in seen:
                continue
            seen.add(key)
            out.append(Fold(index=len(out) + 1, train=f.train, test=f.test, description=f.description, kind=f.kind))
        return out

    def _fit_calibrator(self, runs: RunTable, folds: list[Fold], form: str, mode: str, links: Mapping[str, str]) -> tuple[IntervalCalibrator | None, list[dict[str, Any]]]:
        folds = self._calibration_folds(runs, folds)
        if not folds:
            return None, [_sel_row("calibration", "*", "conformal", "skipped", "no internal folds (too few model sizes)")]

        def factory() -> FLP:
            # min_runs=1: a benchmark that has emerged in one fitted run still gives calibration points
            m = self._internal(stage1=form, checkpoints=mode, stage2="linear", n_bootstrap=min(int(self.n_bootstrap), 50), min_runs=1)
            m._stage2_map = dict(links)
            return m

        weak_by_fold: dict[int, set[str]] = {}

        def spy(fold: Fold, model: FLP) -> None:
            weak_by_fold[fold.index] = set(getattr(model, "weak_", {}))

        try:
            rows = internal_backtest(folds, factory, level=CALIBRATION_LEVEL, spy=spy)
        except DROP_ERRORS as e:
            msg = str(e).splitlines()[0][:300]
            return None, [_sel_row("calibration", "*", "conformal", "failed", msg)]
        # weak-evidence rows (a benchmark that fold's model predicted on weak evidence) calibrate their own group
        groups = ["loss" if q.startswith("loss") else ("weak" if q in weak_by_fold.get(int(k), set()) else "score") for q, k in zip(rows["quantity"].to_list(), rows["fold"].to_list(), strict=True)]
        is_loss = np.array([g == "loss" for g in groups])
        vals = [rows[c].to_numpy().astype(np.float64) for c in ("actual", "predicted", "lower", "upper")]
        with np.errstate(all="ignore"):  # loss intervals are log-space: calibrated (and later scaled) in log loss
            vals = [np.where(is_loss, np.log(np.where(v > 0, v, np.nan)), v) for v in vals]
        cal = IntervalCalibrator(level=CALIBRATION_LEVEL, min_points=CALIBRATION_MIN_POINTS, apart=("weak",), own=("loss",)).fit(*vals, rows["distance"].to_numpy(), groups)
        out = []
        if cal.is_identity:
            out.append(_sel_row("calibration", "*", "conformal", "skipped", cal.reason_, None, cal.n_points_))
        for r in cal.table_.iter_rows(named=True):
            out.append(_sel_row("calibration", r["group"], f"q={r['q']:.3g},g={r['g']:.3g}", "fitted", f"internal coverage {r['coverage_before']:.0%} -> {r['coverage_after']:.0%}", r["q"], r["n"]))
        return (None if cal.is_identity else cal), out
