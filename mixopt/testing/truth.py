"""A synthetic world's exact truth behind the surrogate interface.

:class:`WorldSurrogate` predicts a :class:`~mixopt.testing.World`'s true scores and losses,
so the search can be measured against a known Pareto front (benchmarks, tests, demos).
It is "fitted" on construction; ``fit`` ignores its runs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from mixopt.data.table import RunTable
from mixopt.surrogate.base import Prediction, Surrogate, Targets


class WorldSurrogate(Surrogate):
    """The exact truth of a synthetic world, as a surrogate.

    Args:
        world: a :class:`mixopt.testing.World` (mixture world: it needs domains).
        std: constant predictive standard deviation reported for every quantity (0: exact).
        delay_s: seconds to sleep per ``predict`` call (simulates a slow surrogate).

    Outputs: ``score:<b>`` per benchmark, ``loss:<d>`` per validation domain, ``loss``.
    """

    kind: ClassVar[str] = "world-truth"
    uses_mixture: ClassVar[bool] = True

    def __init__(self, world: Any, *, std: float = 0.0, delay_s: float = 0.0) -> None:
        self.world = world
        self.std = float(std)
        self.delay_s = float(delay_s)
        self._fit(None)  # type: ignore[arg-type]
        self.fitted_ = True

    def _fit(self, runs: RunTable) -> None:
        w = self.world
        self.domains_ = tuple(w.domains)
        self.benchmarks_ = tuple(w.benchmarks)
        self.outputs_ = tuple([f"score:{b.name}" for b in w.benchmarks] + [f"loss:{d}" for d in w.loss_domains] + ["loss"])
        self.unpredictable_ = {}

    def _predict(self, targets: Targets, *, intervals: bool, level: float) -> Prediction:
        if self.delay_s:
            time.sleep(self.delay_s)
        w = self.world
        losses = w.true_losses(targets.flops, targets.mixture)
        mean = np.column_stack([w.scores_from_losses(losses), losses, losses @ w.overall_weights])
        return Prediction.from_normal(self.outputs_, mean, self.std if intervals else None, level)

    def _settings(self) -> dict[str, Any]:
        return {"std": self.std, "delay_s": self.delay_s}

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"world": self.world.to_dict()}, {}

    def _set_state(self, state: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> None:  # pragma: no cover
        from mixopt.testing import World

        self.world = World.from_dict(state["world"])
        self._fit(None)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"WorldSurrogate({self.world!r}, std={self.std}, delay_s={self.delay_s})"


__all__ = ["WorldSurrogate"]
