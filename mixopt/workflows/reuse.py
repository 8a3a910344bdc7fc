"""Reuse old runs after a domain-set change: frozen-block reuse and a joint fit.

Two strategies, both measured in ``benchmarks/bench_reuse.py`` (see ``docs/reuse.md``):

* **Frozen block** (Olmix's mixture reuse, :class:`FrozenBlock`): the old runs choose the best
  mixture of the domains that did not change (a surrogate fitted on the old runs, in the old
  space); that mixture is frozen as one pseudo-domain :data:`BLOCK`, and only the changed
  domains' ratios and the block's weight are searched with new runs, in a space of
  ``1 + len(free)`` domains instead of all of them. The old runs inform the block, not the
  fit of the new space.
* **Joint fit** (:func:`joint_fit`): the old runs mapped into the new space
  (:func:`mixopt.data.changes.map_runs`) and the new runs are fitted together by
  :class:`~mixopt.surrogate.reuse.ReuseRegression`, which learns an offset and a discount for
  rows whose mapping rests on an assumption; the search then covers the whole new space.

:func:`plan_new_runs` plans the runs the change makes necessary with ``mixopt plan``
(:func:`mixopt.search.plan.plan_runs`) on the new space, from the surrogate of the mapped
table (the old runs' evidence already in it, so runs that would re-learn what the old runs
showed are worth little). :func:`best_mixture` is the single-objective pick these helpers
and the benchmark use (the best of seeded candidates of a mixture space by the surrogate's
mean); for several objectives or constraints run ``mixopt optimize`` on the same space.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from mixopt.data.changes import DomainChanges, MappedRuns, combine_runs
from mixopt.data.table import MIX_PREFIX, RunTable
from mixopt.errors import SchemaError
from mixopt.search import ComputeSpace, MixtureSpace, Problem, SearchSpace
from mixopt.search.plan import Plan, PlanSettings, plan_runs
from mixopt.surrogate.base import Surrogate, Targets, make_surrogate

#: Name of the frozen block's pseudo-domain (Olmix calls it ``existing``).
BLOCK = "existing"
#: Largest deviation (total variation) of a run's kept-domain mix from the block's before
#: :meth:`FrozenBlock.reduce` refuses it.
BLOCK_ATOL = 1e-6


def best_mixture(model: Surrogate, space: MixtureSpace, quantity: str, *, params: float, tokens: float,
                 n: int = 4096, seed: int = 0, minimize: bool = True) -> tuple[np.ndarray, float]:
    """The best of ``n`` seeded mixtures of ``space`` by the model's mean of ``quantity`` at ``params`` x ``tokens``.

    Returns:
        ``(mixture (k,), predicted value)``.
    """
    rng = np.random.default_rng([int(seed), 0x6265])
    mix = space.to_mixture(rng.random((n, space.dim))) if space.dim else np.tile(space.center(), (n, 1))
    pred = model.predict(Targets.from_params_tokens(np.full(n, params), np.full(n, tokens), mix, space.domains),
                         intervals=False).get(quantity)
    i = int(np.nanargmin(pred) if minimize else np.nanargmax(pred))
    return mix[i], float(pred[i])


@dataclass(frozen=True)
class FrozenBlock:
    """The old domains' mixture frozen as one block; the ``free`` domains are searched with it.

    Attributes:
        block: ``{domain: share}`` of the block's internal mix (sum 1).
        free: the domains searched besides the block (added, split parts, merged blocks,
            re-filtered domains), in order.
    """

    block: Mapping[str, float]
    free: tuple[str, ...]

    def __post_init__(self) -> None:
        total = sum(self.block.values())
        if not self.block or abs(total - 1.0) > 1e-6 or any(v < 0 for v in self.block.values()):
            raise SchemaError(f"A frozen block's internal mix must be shares >= 0 summing to 1, got {dict(self.block)}.")
        both = sorted(set(self.block) & set(self.free))
        if both:
            raise SchemaError(f"Domain(s) {both} are both in the frozen block and free; a domain is one or the other.")

    @property
    def domains(self) -> tuple[str, ...]:
        """The full new domain set: the block's domains, then the free ones."""
        return (*self.block, *self.free)

    @property
    def reduced_domains(self) -> tuple[str, ...]:
        """The searched space: :data:`BLOCK`, then the free domains."""
        return (BLOCK, *self.free)

    def expand(self, reduced: np.ndarray) -> np.ndarray:
        """Reduced mixtures ``(n, 1 + f)`` -> full mixtures ``(n, k)`` over :attr:`domains`."""
        reduced = np.atleast_2d(np.asarray(reduced, dtype=np.float64))
        b = np.asarray(list(self.block.values()))
        return np.column_stack([reduced[:, :1] * b[None, :], reduced[:, 1:]])

    def reduce(self, full: np.ndarray, domains: Sequence[str]) -> np.ndarray:
        """Full mixtures ``(n, k)`` over ``domains`` -> reduced ``(n, 1 + f)``.

        Raises:
            SchemaError: a run whose mix of the block's domains is not the block's.
        """
        full = np.atleast_2d(np.asarray(full, dtype=np.float64))
        col = {d: j for j, d in enumerate(domains)}
        missing = [d for d in self.domains if d not in col]
        if missing:
            raise SchemaError(f"Mixtures over {list(domains)} lack the block's or free domain(s) {missing}.")
        kept = full[:, [col[d] for d in self.block]]
        w = kept.sum(axis=1)
        b = np.asarray(list(self.block.values()))
        dev = np.abs(kept - w[:, None] * b[None, :]).max(axis=1) if kept.size else np.zeros(len(full))
        if np.any(dev > BLOCK_ATOL):
            i = int(np.argmax(dev))
            raise SchemaError(f"Mixture {i} does not hold the block's domains at the block's mix {dict(self.block)} "
                              f"(deviation {dev[i]:.3g}); a frozen-block fit takes runs trained on block mixtures "
                              "(FrozenBlock.expand).")
        return np.column_stack([w, full[:, [col[d] for d in self.free]]])

    def reduce_runs(self, runs: RunTable) -> RunTable:
        """Runs trained on block mixtures, with their mixture columns in the reduced space."""
        red = self.reduce(runs.mixture(), runs.domains)
        f = runs.frame.drop([MIX_PREFIX + d for d in runs.domains])
        cols = [pl.Series(MIX_PREFIX + d, red[:, j]) for j, d in enumerate(self.reduced_domains)]
        f = f.with_columns(cols)
        head = [c for c in f.columns if not c.startswith(("loss", "score:", MIX_PREFIX, "evidence"))]
        f = f.select(head + [MIX_PREFIX + d for d in self.reduced_domains] + [c for c in f.columns if c not in head
                                                                               and not c.startswith(MIX_PREFIX)])
        return RunTable(f, runs.benchmarks)


def frozen_block(old: RunTable, changes: DomainChanges, quantity: str, *, params: float, tokens: float,
                 surrogate: str = "regmix", n: int = 4096, seed: int = 0, minimize: bool = True,
                 settings: Mapping[str, object] | None = None) -> FrozenBlock:
    """The frozen block of the old runs: the best mixture of the unchanged old domains.

    A surrogate (``surrogate`` kind) fitted on the old runs in the old space picks the best
    mixture of the domains the change keeps as they were (not removed, split, merged or
    re-filtered), every changed old domain held at 0; the free domains are the rest of the new
    domain set.
    """
    new = changes.new_domains(old.domains)
    touched = set(changes.removed) | set(changes.split) | set(changes.refiltered) | {
        m for parts in changes.merged.values() for m in parts}
    kept = tuple(d for d in old.domains if d not in touched)
    if not kept:
        raise SchemaError(f"No old domain is left unchanged by the change of {list(old.domains)}; there is no block to "
                          "freeze. Use the joint fit (joint_fit) instead.")
    model = make_surrogate(surrogate, **dict(settings or {})).fit(old)
    caps = {d: 0.0 for d in old.domains if d not in kept}
    space = MixtureSpace(old.domains, caps=caps) if caps else MixtureSpace(old.domains)
    mix, _ = best_mixture(model, space, quantity, params=params, tokens=tokens, n=n, seed=seed, minimize=minimize)
    share = {d: float(x) for d, x in zip(old.domains, mix, strict=True) if d in kept}
    total = sum(share.values())
    block = {changes.renamed.get(d, d): v / total for d, v in share.items()}
    return FrozenBlock(block=block, free=tuple(d for d in new if d not in block))


def joint_fit(mapped: MappedRuns | RunTable, new: RunTable | None = None, *, offset_mapped: bool = False,
              **settings: object) -> Surrogate:
    """:class:`~mixopt.surrogate.reuse.ReuseRegression` fitted on the mapped old runs and the new ones."""
    table = mapped.runs if isinstance(mapped, MappedRuns) else mapped
    if new is not None:
        table = combine_runs(table, new)
    return make_surrogate("reuse", offset_mapped=offset_mapped, **settings).fit(table)


def plan_new_runs(model: Surrogate, domains: Sequence[str], objective: str, *, params: float, tokens: float,
                  settings: PlanSettings, floors: Mapping[str, float] | None = None,
                  caps: Mapping[str, float] | None = None, existing: RunTable | None = None) -> Plan:
    """Plan the next runs on the new space with ``mixopt plan`` at one size (``params`` x ``tokens``).

    ``model`` is fitted on the mapped table (and any new runs): the old runs' evidence is in
    its draws, so the plan spends runs where the change left the decision uncertain.
    ``existing``: the runs already made (the mapped old runs, and any new ones): never proposed
    again, and the coverage picks (``settings.coverage``, default 0.75) count them as covering
    the decision region, so the batch spreads from where the old runs are into the added
    domain's range (as ``mixopt plan CONFIG`` does with its table). Without it the coverage
    picks cover the region as if no run were made; from a table that never used a new domain
    the criterion alone sends the first runs to mixtures heavy in it (docs/figures.md#reuse-across-domain-set-changes).
    """
    space = SearchSpace(MixtureSpace(domains, floors=floors, caps=caps), ComputeSpace(params=params, tokens=tokens))
    st = PlanSettings(**{**settings.__dict__, "sizes": (float(params),), "tokens_per_param": float(tokens) / float(params)})
    from mixopt.workflows.plan import made_runs

    made = None if existing is None else made_runs(existing, space.domains)
    return plan_runs(Problem(space, model, [objective]), st, existing=made)


__all__ = ["BLOCK", "FrozenBlock", "best_mixture", "frozen_block", "joint_fit", "plan_new_runs"]
