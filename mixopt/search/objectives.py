"""Objectives and constraints of a mixture search, and the batch evaluation problem.

Objectives know nothing of Optuna: they turn a surrogate's :class:`Prediction` for a batch
of models into numbers. Kinds (written as strings in configs, see :func:`parse_objective`):

* ``"score:<b>"``: a benchmark score; maximised when the benchmark's
  ``higher_is_better`` is True, minimised otherwise.
* ``"loss:<d>"`` / ``"loss"``: a domain's (or the overall) validation loss, nats/token,
  minimised.
* ``"mean(score:a, score:b)"``, ``"mean(score:*)"``: the mean of several scores (every
  score for ``*``); :class:`Aggregate` also takes weights (a weighted mean). Scores of
  lower-is-better benchmarks enter with a minus sign so the aggregate is always maximised.
* ``"compute"``: training compute, minimised, as ``log10(FLOPs)`` (so a 10x cheaper model
  is one unit better anywhere on the scale).

Constraints are strings like ``"score:mmlu >= 0.45"``, ``"loss:code <= 1.2"`` or
``"compute <= 1e21"`` (the threshold of ``compute`` is in FLOPs). Their value handed to
the sampler is ``threshold - x`` for ``>=`` and ``x - threshold`` for ``<=`` (``<= 0``
feasible, in the quantity's own units; ``<`` and ``>`` are read as ``<=`` and ``>=``).

**Chance constraints.** ``"score:gsm8k >= 0.71 @ 0.9"`` asks that the bound hold with
probability at least 0.9. During the search the sampler sees the bound applied to the
``p``-quantile of the predictive distribution under a normal reading, ``mean - z_p·std``
(``>=``) or ``mean + z_p·std`` (``<=``) with ``z_p = Φ⁻¹(p)`` (``@ 0.95`` is ``z = 1.645``);
after the search every candidate's probability of meeting the bound is measured on the
surrogate's joint draws (:mod:`mixopt.search.decision`) and a candidate whose measured
probability falls short of ``p`` is not recommended. ``p`` must lie in ``[0.5, 1)``
(below 0.5 the bound would be looser than the mean). A constraint's own ``@ p`` overrides
``kappa`` for that constraint.

**Risk-aware search** (``kappa > 0``): every objective and constraint uses a pessimistic
bound instead of the mean, ``mean - kappa·std`` for quantities to maximise (or that must stay
above a threshold) and ``mean + kappa·std`` for quantities to minimise (or that must stay
below), with ``std`` the surrogate's predictive standard deviation. ``kappa = 1.645`` is a
one-sided 95 % bound under a normal predictive distribution; on a constraint without its
own ``@ p`` it is the chance constraint ``@ Φ(kappa)`` (1.645 -> 0.95) as the sampler sees it. For an aggregate the std is
``sqrt(sum w_i^2 std_i^2)`` (errors treated as independent, an approximation).

:class:`Problem` bundles the space, the objectives, the constraints and the surrogate into
one picklable function from unit-cube points to objective and constraint values: the
thing executors run (locally or on Ray workers). One call makes **one** vectorised
``surrogate.predict``.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from mixopt.errors import SearchError
from mixopt.search.space import Points, SearchSpace
from mixopt.surrogate.base import Prediction, Surrogate, Targets, normal_quantile

logger = logging.getLogger(__name__)

Direction = Literal["maximize", "minimize"]

#: Name of the compute objective / constraint quantity.
COMPUTE = "compute"
#: Name of the data-availability constraint (see :mod:`mixopt.search.space`).
DATA_CONSTRAINT = "data"


@dataclass(frozen=True)
class OutputInfo:
    """What a fitted surrogate predicts, as the objectives need it.

    Attributes:
        outputs: predicted quantity names (``score:<b>``, ``loss:<d>``, ``loss``).
        higher_is_better: direction of each ``score:<b>`` quantity.
        chance: chance level of each ``score:<b>`` quantity (None when unknown).
        unpredictable: quantity -> reason, for quantities the surrogate cannot predict.
        domains: mixture domains of the surrogate (empty if mixture-blind).
    """

    outputs: tuple[str, ...]
    higher_is_better: Mapping[str, bool] = field(default_factory=dict)
    chance: Mapping[str, float | None] = field(default_factory=dict)
    unpredictable: Mapping[str, str] = field(default_factory=dict)
    domains: tuple[str, ...] = ()

    @classmethod
    def from_surrogate(cls, surrogate: Surrogate) -> OutputInfo:
        """Read ``outputs_``, ``benchmarks_``, ``unpredictable_`` and ``domains_`` of a fitted surrogate."""
        surrogate._check_fitted()
        bench = {f"score:{b.name}": b for b in getattr(surrogate, "benchmarks_", ())}
        return cls(
            outputs=tuple(surrogate.outputs_),
            higher_is_better={k: b.higher_is_better for k, b in bench.items()},
            chance={k: b.chance for k, b in bench.items()},
            unpredictable=dict(getattr(surrogate, "unpredictable_", {}) or {}),
            domains=tuple(getattr(surrogate, "domains_", ()) or ()),
        )

    def check(self, quantity: str, used_by: str) -> None:
        """Raise SearchError unless ``quantity`` is a predictable output."""
        if quantity not in self.outputs:
            kind = quantity.split(":", 1)[0]
            same = [o for o in self.outputs if o.split(":", 1)[0] == kind] or list(self.outputs)
            what = {"score": "benchmark", "loss": "loss"}.get(kind, "quantity")
            raise SearchError(
                f"Unknown {what} {quantity!r} in {used_by}: the surrogate predicts {same}. "
                "Use one of those names (check the spelling, or refit on runs that have that column)."
            )
        if quantity in self.unpredictable:
            raise SearchError(
                f"{used_by} uses {quantity!r}, which the surrogate cannot predict: {self.unpredictable[quantity]}. "
                "Drop it or refit on runs where it has emerged."
            )


class Objective(ABC):
    """One quantity to optimise, computed from a batch prediction.

    Attributes:
        name: column name in results and the Optuna study's metric name.
        direction: ``"maximize"`` or ``"minimize"`` (set by :meth:`bind`).
        quantities: surrogate outputs this objective reads.
    """

    name: str
    direction: Direction
    quantities: tuple[str, ...]

    @abstractmethod
    def bind(self, info: OutputInfo) -> Objective:
        """A copy checked against (and resolved with) the surrogate's outputs.

        Raises:
            SearchError: an unknown or unpredictable quantity.
        """

    @abstractmethod
    def compute(self, pred: Prediction, points: Points) -> tuple[np.ndarray, np.ndarray | None]:
        """``(mean, std)``, each ``(n,)``; ``std`` is None when the prediction has none."""

    def sign(self) -> float:
        """+1 to maximise, -1 to minimise."""
        return 1.0 if self.direction == "maximize" else -1.0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {getattr(self, 'direction', '?')})"


def _std_of(pred: Prediction, j: int) -> np.ndarray | None:
    if pred.std is not None:
        return np.asarray(pred.std)[:, j]
    if pred.lower is not None and pred.upper is not None:
        z = normal_quantile(0.5 + pred.level / 2)
        return (np.asarray(pred.upper)[:, j] - np.asarray(pred.lower)[:, j]) / (2 * z)
    return None


@dataclass(frozen=True, repr=False)
class Metric(Objective):
    """A single predicted quantity (``score:<b>``, ``loss:<d>`` or ``loss``).

    Attributes:
        quantity: the surrogate output.
        direction: resolved from the benchmark's ``higher_is_better`` by :meth:`bind`
            (losses are minimised); may be given to override.
    """

    quantity: str
    direction: Direction | None = None  # type: ignore[assignment]

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.quantity

    @property
    def quantities(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.quantity,)

    def bind(self, info: OutputInfo) -> Metric:
        info.check(self.quantity, f"objective {self.quantity!r}")
        if self.direction is not None:
            return self
        if self.quantity.startswith("score:"):
            d: Direction = "maximize" if info.higher_is_better.get(self.quantity, True) else "minimize"
        else:
            d = "minimize"
        return Metric(self.quantity, d)

    def compute(self, pred: Prediction, points: Points) -> tuple[np.ndarray, np.ndarray | None]:
        j = pred.index(self.quantity)
        return pred.mean[:, j], _std_of(pred, j)


@dataclass(frozen=True, repr=False)
class Aggregate(Objective):
    """Weighted mean of several scores, maximised.

    Attributes:
        items: ``score:<b>`` names (``"score:*"`` patterns are expanded by :meth:`bind`).
        weights: one weight per item (default equal); normalised to sum 1.
        label: objective name (default ``mean(<items>)``).
    """

    items: tuple[str, ...]
    weights: tuple[float, ...] | None = None
    label: str | None = None
    _signs: tuple[float, ...] | None = None

    direction: Direction = "maximize"  # type: ignore[assignment]

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.label or f"mean({','.join(self.items)})"

    @property
    def quantities(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.items

    def bind(self, info: OutputInfo) -> Aggregate:
        items: list[str] = []
        weights: list[float] = []
        given = self.weights if self.weights is not None else (1.0,) * len(self.items)
        if len(given) != len(self.items):
            raise SearchError(f"Aggregate {self.name!r}: {len(self.items)} items but {len(given)} weights; give one weight per item.")
        for it, w in zip(self.items, given, strict=True):
            if any(ch in it for ch in "*?["):
                matched = [o for o in info.outputs if fnmatch.fnmatchcase(o, it)]
                hits = [o for o in matched if o not in info.unpredictable]
                if len(hits) < len(matched):
                    logger.warning("Aggregate %s: %r leaves out unpredictable output(s) %s.", self.name, it,
                                   sorted(set(matched) - set(hits)))
                if not hits:
                    raise SearchError(f"Aggregate {self.name!r}: pattern {it!r} matches no predictable output of {list(info.outputs)}.")
                items += hits
                weights += [float(w)] * len(hits)
            else:
                info.check(it, f"aggregate {self.name!r}")
                items.append(it)
                weights.append(float(w))
        if not all(i.startswith("score:") for i in items):
            raise SearchError(f"Aggregate {self.name!r} averages benchmark scores only (score:<b>), got {items}.")
        wa = np.asarray(weights, dtype=float)
        if not (np.all(np.isfinite(wa)) and np.all(wa >= 0) and wa.sum() > 0):
            raise SearchError(f"Aggregate {self.name!r}: weights must be >= 0 with a positive sum, got {weights}.")
        wa = wa / wa.sum()
        signs = tuple(1.0 if info.higher_is_better.get(i, True) else -1.0 for i in items)
        return Aggregate(tuple(items), tuple(wa.tolist()), self.label or self.name, signs)

    def compute(self, pred: Prediction, points: Points) -> tuple[np.ndarray, np.ndarray | None]:
        idx = [pred.index(i) for i in self.items]
        w = np.asarray(self.weights) * np.asarray(self._signs or (1.0,) * len(idx))
        mean = pred.mean[:, idx] @ w
        stds = [_std_of(pred, j) for j in idx]
        if any(s is None for s in stds):
            return mean, None
        std = np.sqrt((np.column_stack(stds) ** 2) @ (w**2))  # type: ignore[arg-type]
        return mean, std


@dataclass(frozen=True, repr=False)
class ComputeCost(Objective):
    """Training compute, minimised, as ``log10(FLOPs)`` (exact: no uncertainty)."""

    direction: Direction = "minimize"  # type: ignore[assignment]

    @property
    def name(self) -> str:  # type: ignore[override]
        return COMPUTE

    @property
    def quantities(self) -> tuple[str, ...]:  # type: ignore[override]
        return ()

    def bind(self, info: OutputInfo) -> ComputeCost:
        return self

    def compute(self, pred: Prediction, points: Points) -> tuple[np.ndarray, np.ndarray | None]:
        return np.log10(points.flops), np.zeros(len(points))


_MEAN_RE = re.compile(r"^\s*mean\s*\((.*)\)\s*$", re.IGNORECASE)


def parse_objective(spec: str | Mapping[str, object]) -> Objective:
    """Parse an objective written in a config.

    Args:
        spec: ``"score:<b>"``, ``"loss:<d>"``, ``"loss"``, ``"compute"`` (or ``"flops"``),
            ``"mean(score:a, score:b)"`` / ``"mean(score:*)"``, optionally prefixed with
            ``"max:"`` or ``"min:"`` to force the direction; or a table
            ``{name = "avg", mean = ["score:a", "score:b"], weights = [2, 1]}``.

    Raises:
        SearchError: a malformed spec (checked against the surrogate later, by ``bind``).
    """
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - {"name", "mean", "weights"})
        if unknown or "mean" not in spec:
            raise SearchError(
                f"An objective table must look like {{name = \"avg\", mean = [\"score:a\", \"score:b\"], weights = [1, 1]}}; "
                f"got {dict(spec)!r}" + (f" (unknown keys {unknown})" if unknown else "")
            )
        items = spec["mean"]
        if isinstance(items, str):
            items = [items]
        if not isinstance(items, Sequence) or not items or not all(isinstance(i, str) for i in items):
            raise SearchError(f"'mean' of objective {spec.get('name')!r} must be a list of score names, got {items!r}.")
        weights = spec.get("weights")
        if weights is not None:
            if isinstance(weights, Mapping):
                weights = [weights.get(i, 0.0) for i in items]  # type: ignore[union-attr]
            try:
                weights = tuple(float(w) for w in weights)  # type: ignore[union-attr]
            except (TypeError, ValueError):
                raise SearchError(f"weights of objective {spec.get('name')!r} must be numbers, got {weights!r}.") from None
        name = spec.get("name")
        return Aggregate(tuple(s.strip() for s in items), weights, str(name) if name else None)
    if not isinstance(spec, str) or not spec.strip():
        raise SearchError(f"An objective must be a string like 'score:hellaswag' or a table, got {spec!r}.")
    s = spec.strip()
    forced: Direction | None = None
    low = s.lower()
    if low.startswith(("max:", "min:")):
        forced = "maximize" if low.startswith("max:") else "minimize"
        s = s[4:].strip()
    if s.lower() in (COMPUTE, "flops"):
        if forced == "maximize":
            raise SearchError("Compute can only be minimised; drop 'max:'.")
        return ComputeCost()
    m = _MEAN_RE.match(s)
    if m:
        items = tuple(i.strip() for i in m.group(1).split(",") if i.strip())
        if not items:
            raise SearchError(f"{spec!r}: mean() needs at least one score, e.g. mean(score:*).")
        return Aggregate(items)
    if s == "loss" or s.startswith(("score:", "loss:")) and len(s.split(":", 1)[1]) > 0:
        return Metric(s, forced)
    raise SearchError(
        f"Cannot read objective {spec!r}: expected 'score:<benchmark>', 'loss:<domain>', 'loss', 'compute' "
        "or 'mean(score:a, score:b)'."
    )


_CONSTRAINT_RE = re.compile(r"^(?P<lhs>.+?)\s*(?P<op><=|>=|<|>|≤|≥)\s*(?P<rhs>[^<>=@]+?)\s*(?:@\s*(?P<prob>[^<>=@]*))?$")


@dataclass(frozen=True)
class Constraint:
    """A bound on a predicted quantity, e.g. ``score:mmlu >= 0.45``.

    Attributes:
        target: the quantity (an :class:`Objective`, e.g. :class:`Metric`).
        op: ``">="`` or ``"<="``.
        threshold: the bound (FLOPs for ``compute``).
        text: the string it was parsed from.
        probability: for a chance constraint (``... @ 0.9``), the probability with which
            the bound must hold; None for a plain constraint.
    """

    target: Objective
    op: Literal[">=", "<="]
    threshold: float
    text: str = ""
    probability: float | None = None

    @property
    def name(self) -> str:
        return self.text or f"{self.target.name} {self.op} {self.threshold:g}"

    def bind(self, info: OutputInfo) -> Constraint:
        t = self.target
        if isinstance(t, Metric):
            info.check(t.quantity, f"constraint {self.name!r}")
            t = Metric(t.quantity, "maximize" if self.op == ">=" else "minimize")
        else:
            t = t.bind(info)
        return Constraint(t, self.op, self.threshold, self.text, self.probability)

    @property
    def z(self) -> float | None:
        """``Φ⁻¹(probability)`` of a chance constraint (None for a plain one)."""
        if self.probability is None:
            return None
        from mixopt._normal import ndtri

        return float(ndtri(self.probability))

    def effective_kappa(self, kappa: float) -> float:
        """The std multiple the sampler's value uses: ``z`` of a chance constraint, else ``kappa``."""
        z = self.z
        return float(kappa) if z is None else z

    def margin(self, pred: Prediction, points: Points) -> np.ndarray:
        """``(n,)`` constraint value of the predicted means (or of draws stacked as a
        prediction), ``<= 0`` feasible, no risk adjustment."""
        return self.value(pred, points, 0.0, chance=False)

    def value(self, pred: Prediction, points: Points, kappa: float, *, chance: bool = True) -> np.ndarray:
        """``(n,)`` constraint value, ``<= 0`` feasible, pessimistic by ``kappa`` std (by
        ``z_p`` std for a chance constraint, unless ``chance=False``)."""
        mean, std = self.target.compute(pred, points)
        thr = self.threshold
        if isinstance(self.target, ComputeCost):
            mean, thr = np.power(10.0, mean), self.threshold
            std = None
        k = self.effective_kappa(kappa) if chance else kappa
        if k and std is not None:
            mean = mean - k * std if self.op == ">=" else mean + k * std
        return thr - mean if self.op == ">=" else mean - thr


def parse_constraint(text: str) -> Constraint:
    """Parse ``"<quantity> >= <number>"`` or ``"<quantity> <= <number>"``, optionally
    followed by ``"@ <probability>"`` (a chance constraint, e.g. ``"score:gsm8k >= 0.71 @ 0.9"``).

    The quantity is anything :func:`parse_objective` reads (``score:<b>``, ``loss:<d>``,
    ``loss``, ``mean(...)``, ``compute``). The probability lies in ``[0.5, 1)``; a
    ``compute`` bound is exact and takes none.

    Raises:
        SearchError: a malformed constraint.
    """
    if not isinstance(text, str):
        raise SearchError(f"A constraint must be a string like 'score:mmlu >= 0.45', got {text!r}.")
    m = _CONSTRAINT_RE.match(text.strip())
    if not m:
        raise SearchError(f"Cannot read constraint {text!r}: expected '<quantity> >= <number>' or '<quantity> <= <number>' "
                          "(optionally '@ <probability>'), e.g. 'score:mmlu >= 0.45' or 'score:gsm8k >= 0.71 @ 0.9'.")
    try:
        thr = float(m.group("rhs").strip())
    except ValueError:
        raise SearchError(f"Constraint {text!r}: the right-hand side must be a number, got {m.group('rhs').strip()!r}.") from None
    if not math.isfinite(thr):
        raise SearchError(f"Constraint {text!r}: the threshold must be finite.")
    prob = _chance_probability(text, m.group("prob"))
    op = m.group("op").replace("≤", "<=").replace("≥", ">=")
    op = {"<": "<=", ">": ">="}.get(op, op)
    target = parse_objective(m.group("lhs").strip())
    if isinstance(target, Metric) and target.direction is not None:
        raise SearchError(f"Constraint {text!r}: drop the 'max:'/'min:' prefix; the operator gives the direction.")
    if prob is not None and isinstance(target, ComputeCost):
        raise SearchError(f"Constraint {text!r}: compute is exact, so a probability means nothing there; drop '@ {m.group('prob').strip()}'.")
    return Constraint(target, op, thr, text.strip(), prob)  # type: ignore[arg-type]


def _chance_probability(text: str, raw: str | None) -> float | None:
    """The ``@ p`` of a chance constraint (None when absent), checked."""
    if raw is None:
        return None
    raw = raw.strip()
    if not raw:
        raise SearchError(f"Constraint {text!r}: '@' must be followed by a probability, e.g. 'score:gsm8k >= 0.71 @ 0.9'.")
    try:
        p = float(raw.rstrip("%")) / (100.0 if raw.endswith("%") else 1.0)
    except ValueError:
        raise SearchError(f"Constraint {text!r}: the probability after '@' must be a number like 0.9 (or 90%), got {raw!r}.") from None
    if not (0.5 <= p < 1.0):
        raise SearchError(f"Constraint {text!r}: the probability after '@' must be in [0.5, 1) (e.g. 0.9), got {raw!r}; "
                          "1 cannot be guaranteed and below 0.5 the bound is looser than the mean.")
    return p


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Objective and constraint values of one batch.

    Attributes:
        values: ``(n, o)`` objective values handed to the sampler (risk-adjusted and
            penalised as configured).
        constraints: ``(n, c)`` constraint values, ``<= 0`` feasible (columns in
            :attr:`Problem.constraint_names` order).
        ok: ``(n,)`` False where the surrogate gave a non-finite value (the trial fails).
    """

    values: np.ndarray
    constraints: np.ndarray
    ok: np.ndarray


class Problem:
    """Space + objectives + constraints + surrogate: a batch function of cube points.

    Args:
        space: the search space.
        surrogate: a fitted surrogate.
        objectives: objectives (parsed or as strings).
        constraints: constraints (parsed or as strings).
        kappa: risk aversion (0 = optimise means; see the module docstring).
        penalty: 0 leaves constraints to the sampler. ``> 0`` additionally worsens every
            objective of an infeasible model by ``penalty × total violation`` (sum of the
            positive constraint values) — for samplers that ignore constraints (random,
            QMC): infeasible trials then rank behind feasible ones.

    Raises:
        SearchError: unknown or unpredictable quantities, a surrogate that lacks a domain of
            the space (or has domains the space does not cover), duplicate objectives, or
            ``kappa > 0`` with a surrogate that gives no uncertainty.
    """

    def __init__(
        self,
        space: SearchSpace,
        surrogate: Surrogate,
        objectives: Sequence[Objective | str | Mapping[str, object]],
        constraints: Sequence[Constraint | str] = (),
        *,
        kappa: float = 0.0,
        penalty: float = 0.0,
        level: float = 0.9,
    ) -> None:
        info = OutputInfo.from_surrogate(surrogate)
        problems: list[str] = []
        sdom = info.domains
        if not surrogate.uses_mixture or not sdom:
            if space.mixture.dim > 0 or space.mixture.k > 1:
                raise SearchError(
                    f"The surrogate {type(surrogate).__name__} does not depend on the mixture (it has no domains), "
                    f"but the search space has domains {list(space.domains)}: a mixture search needs a mixture-aware "
                    "surrogate (e.g. method 'flpm')."
                )
        else:
            missing = [d for d in space.domains if d not in sdom]
            if missing:
                problems.append(
                    f"the surrogate was fitted on domains {list(sdom)} and lacks {missing}; fix the domain names or refit on runs that cover them"
                )
            extra = [d for d in sdom if d not in space.domains]
            if extra:
                problems.append(f"the search space does not cover the surrogate's domain(s) {extra}; add them (cap = 0 to exclude one)")
        if problems:
            raise SearchError("The surrogate does not match the search space:\n" + "\n".join(f"  - {p}" for p in problems))
        if not objectives:
            raise SearchError("A search needs at least one objective, e.g. objectives = ['score:hellaswag'].")
        objs = [parse_objective(o) if not isinstance(o, Objective) else o for o in objectives]
        self.objectives: tuple[Objective, ...] = tuple(o.bind(info) for o in objs)
        names = [o.name for o in self.objectives]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise SearchError(f"Objective(s) {dup} are listed more than once; list each once.")
        cons = [parse_constraint(c) if isinstance(c, str) else c for c in constraints]
        self.constraints: tuple[Constraint, ...] = tuple(c.bind(info) for c in cons)
        if not (math.isfinite(kappa) and kappa >= 0):
            raise SearchError(f"risk kappa must be a number >= 0, got {kappa!r}.")
        if not (math.isfinite(penalty) and penalty >= 0):
            raise SearchError(f"penalty must be a number >= 0, got {penalty!r}.")
        self.space = space
        self.surrogate = surrogate
        self.kappa = float(kappa)
        self.penalty = float(penalty)
        self.level = float(level)
        self.info = info
        self.quantities: tuple[str, ...] = tuple(dict.fromkeys(
            q for x in (*self.objectives, *(c.target for c in self.constraints)) for q in x.quantities
        ))
        self.constraint_names: tuple[str, ...] = tuple(c.name for c in self.constraints) + (
            (DATA_CONSTRAINT,) if space.has_data_constraint else ()
        )
        chance = [c for c in self.constraints if c.probability is not None]
        if self.kappa > 0 or chance:
            probe = self.predict(space.decode(np.full((1, space.dim), 0.5)), intervals=True)
            need = self.quantities if self.kappa > 0 else tuple(q for c in chance for q in c.target.quantities)
            missing_std = [q for q in need if _std_of(probe, probe.index(q)) is None]
            if missing_std:
                what = f"Risk-aware search (kappa={self.kappa})" if self.kappa > 0 else \
                    f"The chance constraint(s) {[c.name for c in chance]}"
                raise SearchError(
                    f"{what} needs predictive uncertainty, but {type(surrogate).__name__} "
                    f"gives none for {missing_std}. Set kappa = 0 / drop the '@ p', or use a surrogate with intervals."
                )
        self.needs_intervals = self.kappa > 0 or bool(chance)

    @property
    def directions(self) -> tuple[Direction, ...]:
        return tuple(o.direction for o in self.objectives)

    @property
    def objective_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.objectives)

    def targets(self, points: Points) -> Targets:
        """Surrogate targets for decoded points."""
        if self.surrogate.uses_mixture and self.info.domains:
            if points.phases is not None:  # a schedule: a surrogate that reads only the mixture sees the whole-run one
                return Targets(flops=points.flops, params=points.params, tokens=points.tokens, mixture=points.mixture,
                               domains=self.space.domains, phases=points.phases, phase_end=points.phase_end)
            return Targets(flops=points.flops, params=points.params, tokens=points.tokens,
                           mixture=points.mixture, domains=self.space.domains)
        return Targets(flops=points.flops, params=points.params, tokens=points.tokens)

    def predict(self, points: Points, *, intervals: bool) -> Prediction:
        """One vectorised ``surrogate.predict`` for the batch."""
        return self.surrogate.predict(self.targets(points), intervals=intervals, level=self.level)

    def evaluate_points(self, points: Points) -> Evaluation:
        """Objective and constraint values of decoded points (see :class:`Evaluation`)."""
        n = len(points)
        pred = self.predict(points, intervals=self.needs_intervals)
        vals = np.empty((n, len(self.objectives)))
        for j, o in enumerate(self.objectives):
            mean, std = o.compute(pred, points)
            if self.kappa and std is not None:
                mean = mean - o.sign() * self.kappa * std
            vals[:, j] = mean
        cons = np.empty((n, len(self.constraint_names)))
        for j, c in enumerate(self.constraints):
            cons[:, j] = c.value(pred, points, self.kappa)
        if self.space.has_data_constraint:
            cons[:, -1] = self.space.data_violation(points)
        ok = np.all(np.isfinite(vals), axis=1) & np.all(np.isfinite(cons), axis=1)
        if self.penalty and cons.shape[1]:
            viol = np.where(np.isfinite(cons), np.maximum(cons, 0.0), 0.0).sum(axis=1)
            vals = vals - np.asarray([o.sign() for o in self.objectives]) * self.penalty * viol[:, None]
        return Evaluation(values=vals, constraints=cons, ok=ok)

    def __call__(self, u: np.ndarray) -> Evaluation:
        """Evaluate ``(n, dim)`` unit-cube points: decode, one predict, objectives, constraints."""
        return self.evaluate_points(self.space.decode(u))

    def describe(self) -> dict[str, object]:
        """JSON-able summary (stored with the study to refuse resuming a different problem)."""
        sp = self.space
        return {
            "domains": list(sp.domains),
            "floor": [round(float(x), 12) for x in sp.mixture.floor],
            "cap": [round(float(x), 12) for x in sp.mixture.cap],
            "compute": {k: v for k, v in vars(sp.compute).items()},
            "data": None if sp.data is None else {"available": dict(sp.data.available), "max_epochs": sp.data.max_epochs,
                                                   "epochs": dict(sp.data.epochs)},
            "objectives": [[o.name, o.direction] for o in self.objectives],
            "constraints": list(self.constraint_names),
            "kappa": self.kappa,
            "penalty": self.penalty,
            "params": list(sp.names),
            **({"schedule": sp.schedule.describe()} if sp.schedule is not None else {}),
        }


__all__ = [
    "COMPUTE",
    "DATA_CONSTRAINT",
    "Aggregate",
    "ComputeCost",
    "Constraint",
    "Evaluation",
    "Metric",
    "Objective",
    "OutputInfo",
    "Problem",
    "parse_constraint",
    "parse_objective",
]
