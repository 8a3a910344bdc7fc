"""The compute surrogates' shared machinery (FLP, FP): settings checks, emergence and
predictability, the by-run bootstrap, model-file state of the fitted laws, and assembling a
:class:`~mixopt.surrogate.base.Prediction`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import polars as pl

from mixopt.data.table import Benchmark, RunTable
from mixopt.laws.fitter import GroupResample
from mixopt.surrogate.base import Prediction, Surrogate, Targets
from mixopt.surrogate.emergence import EMERGENCE_MODES, _threshold_text, emerged_mask
from mixopt.surrogate.fitted import _REPORT_SCHEMA, FittedLaw


class _ComputeSurrogate(Surrogate):
    """Shared settings checks, emergence, bootstrap plumbing and model-file state."""

    uses_mixture: ClassVar[bool] = False

    # set by subclasses' __init__
    emergence_margin: float
    emergence: str
    min_emerged: int
    min_runs: int
    n_bootstrap: int
    seed: int
    include_noise: bool

    def _check_common(self) -> list[str]:
        problems = []
        try:
            m = float(self.emergence_margin)
            if not math.isfinite(m) or m < 0:
                raise ValueError
        except (TypeError, ValueError):
            problems.append(f"emergence_margin must be a finite number >= 0, got {self.emergence_margin!r} (paper: 0.05)")
        if self.emergence not in EMERGENCE_MODES:
            problems.append(f"emergence must be one of {list(EMERGENCE_MODES)}, got {self.emergence!r}")
        for name, lo in (("min_emerged", 1), ("min_runs", 1), ("n_bootstrap", 0)):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
                problems.append(f"{name} must be an integer >= {lo}, got {v!r}")
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool):
            problems.append(f"seed must be an integer, got {self.seed!r}")
        return problems

    def _emergence(self, runs: RunTable, b: Benchmark, scores: np.ndarray) -> np.ndarray:
        return emerged_mask(scores, b, float(self.emergence_margin), run_ids=runs.run_ids(), mode=self.emergence)

    def _predictability(self, b: Benchmark, emerged: np.ndarray, run_ids: np.ndarray, n_evaluated: int) -> str | None:
        """None when benchmark ``b`` can be fitted, else the reason."""
        n_em = int(emerged.sum())
        n_runs = int(np.unique(run_ids[emerged]).shape[0]) if n_em else 0
        if n_em < self.min_emerged or n_runs < self.min_runs:
            return (
                f"not predictable: {n_em} emerged checkpoint(s) from {n_runs} run(s) "
                f"({_threshold_text(b, float(self.emergence_margin))}, out of {n_evaluated} evaluated); "
                f"need >= {self.min_emerged} from >= {self.min_runs} runs. Add larger runs or lower min_emerged/"
                "emergence_margin (settings)."
            )
        return None

    def _resample(self, runs: RunTable) -> GroupResample | None:
        if self.n_bootstrap == 0:
            return None
        return GroupResample.draw(np.asarray(runs.runs, dtype=object), int(self.n_bootstrap), np.random.default_rng(self.seed))

    @staticmethod
    def _group_ids(ids: np.ndarray) -> np.ndarray:
        return np.asarray(ids, dtype=object)

    # -- state ---------------------------------------------------------------------------------
    def _laws_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state: dict[str, Any] = {"laws": {}, "report": self.fit_report_.to_dicts()}
        arrays: dict[str, np.ndarray] = {}
        for i, (name, fl) in enumerate(self.laws_.items()):
            state["laws"][name] = {**fl.state(), "index": i}
            arrays[f"law{i}.params"] = fl.params
            arrays[f"law{i}.boot"] = fl.boot
        return state, arrays

    def _set_laws_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        laws: dict[str, FittedLaw] = {}
        for name, st in dict(state["laws"]).items():
            i = int(st["index"])
            laws[name] = FittedLaw.from_state(st, arrays[f"law{i}.params"], arrays[f"law{i}.boot"])
        self.laws_ = laws
        rows = [{**r, "residual_scale": float(r["residual_scale"])} for r in state.get("report", [])]  # 'nan' in JSON
        self.fit_report_ = pl.DataFrame(rows, schema=_REPORT_SCHEMA, orient="row") if rows else pl.DataFrame(schema=_REPORT_SCHEMA)

    # -- prediction helpers ------------------------------------------------------------------------
    def _predict_draws(self, targets: Targets, *, n_draws: int, seed: int) -> dict[str, np.ndarray]:
        """Joint draws: the raw bootstrap-by-run draws of :meth:`_raw_draws`, each marginal
        matched to the (calibrated) interval (:func:`~mixopt.surrogate.draws.calibrated_draws`)."""
        from mixopt.surrogate.draws import DRAW_LEVEL, calibrated_draws

        pred = self._predict(targets, intervals=True, level=DRAW_LEVEL)
        raw = self._raw_draws(targets, n_draws, seed)
        return calibrated_draws(raw, pred.mean, pred.lower, pred.upper, pred.names,  # type: ignore[arg-type]
                                n_draws=n_draws, seed=seed)

    def _raw_draws(self, targets: Targets, n_draws: int, seed: int) -> dict[str, np.ndarray]:
        """Raw joint draws ``{name: (S, n)}``; a quantity left out gets the comonotone default."""
        return {}

    @staticmethod
    def _draw_index(n_boot: int, n_draws: int, rng: np.random.Generator) -> np.ndarray | None:
        """Bootstrap refit of every draw ``(S,)``: a seeded permutation of the ``n_boot``
        refits, cycled (None without refits). The same refit serves every row and quantity
        (the by-run resample is shared by all laws of one fit)."""
        if n_boot == 0:
            return None
        return rng.permutation(n_boot)[np.arange(n_draws) % n_boot]

    def _finish(self, names: list[str], cols: dict[str, tuple[np.ndarray, ...]], n: int, intervals: bool,
                level: float) -> Prediction:
        mean = np.full((n, len(names)), np.nan)
        lower = np.full((n, len(names)), np.nan) if intervals else None
        upper = np.full((n, len(names)), np.nan) if intervals else None
        std = np.full((n, len(names)), np.nan) if intervals else None
        for j, name in enumerate(names):
            if name not in cols:
                continue
            c = cols[name]
            mean[:, j] = c[0]
            if intervals:
                lower[:, j], upper[:, j], std[:, j] = c[1], c[2], c[3]  # type: ignore[index]
        return Prediction(names=tuple(names), mean=mean, lower=lower, upper=upper, std=std, level=level,
                          unpredictable=dict(self.unpredictable_))
