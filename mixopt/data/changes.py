"""Evidence across domain-set changes: map an old run table into a new domain space.

A run table may have been trained on an older domain set. :class:`DomainChanges` states the
change (``[domains.changes]`` in a config); :func:`map_runs` rewrites the old runs' mixture
columns into the new domain space where that is sound, and tags every mapped row with its
provenance in the ``evidence`` column:

============== =============================================================== ===========
change         what the old run's mixture becomes                              evidence
============== =============================================================== ===========
``added``      the new domain at 0 (the old run really had none of it)         exact
``removed``    the domain dropped and the rest renormalised, **only** for runs exact
               with at most ``removed_tolerance`` of it; others by
               ``on_removed`` (below)
``split``      the source's share divided among the parts at the given         assumed
               proportions (``web = {web_hq = 0.3, web_lq = 0.7}``)
``merged``     the members' shares summed into the block; exact when the run's exact /
               internal mix is within ``merge_tolerance`` (total variation) of assumed
               the block's stated internal mix, assumed otherwise (or when the
               internal mix is not given)
``refiltered`` same name and share; the data changed, so a run that used it    assumed
               is assumed evidence
``renamed``    the same data under a new name (``{ "s2pdf:x" = "s2pdfv1:x" }``)  exact
============== =============================================================== ===========

The ``evidence`` column reads ``mapped:<change>[+<change>...]``; an *assumed* change carries a
``~`` (``mapped:added+split~``). A run that no change touches is ``mapped:unchanged``; a split,
merge or re-filter of a domain the run did not use leaves it exact. New runs (trained on the
new domain set) are ``new`` (:func:`combine_runs`). :func:`approximate` tells assumed rows
apart, so a fit can discount them (:class:`mixopt.surrogate.reuse.ReuseRegression`).

**Removed domains.** Dropping a domain a run spent 30 % of its tokens on and renormalising
the rest describes a mixture that run never trained on: its losses are not evidence about
that mixture. So a run is mapped exactly only when its share of the removed domains is at most
``removed_tolerance`` (default 0.01). For the others, ``on_removed`` decides: ``"drop"``
(default: leave them out, listed in :attr:`MappedRuns.dropped` with the reason),
``"discount"`` (keep them renormalised as assumed evidence, ``removed~``) or ``"refuse"``
(raise). If no run is left, the mapping is refused.

Only the mixture columns are mapped. Measurement columns (``loss``, ``loss:<d>``,
``score:<b>``) pass through unchanged: they are evaluations of the old checkpoints, and
re-evaluating an old checkpoint on a new validation set is cheap, training it again is not.
A ``loss:<new domain>`` the old runs lack stays empty there (missing, as for any checkpoint
not evaluated on it).

A change that cannot be mapped is refused with :class:`~mixopt.errors.SchemaError` saying
why: an unknown domain, a domain both removed and kept (split, merged, re-filtered), split
proportions that do not sum to 1 (or are missing with no new runs to learn them from), an
added domain that already exists, a new domain set that does not match the new runs'.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mixopt.data.table import FLOPS, MIX_PREFIX, PARAMS, RUN, TOKENS, RunTable
from mixopt.errors import SchemaError

#: Provenance column of a mapped or combined run table.
EVIDENCE = "evidence"
#: ``evidence`` of a run trained on the new domain set.
NEW = "new"
#: Prefix of the ``evidence`` of a mapped row.
MAPPED = "mapped:"
#: Marks a change that is an assumption for that row (split, re-filtered, approximate merge).
ASSUMED = "~"
#: ``on_removed`` choices.
ON_REMOVED = ("drop", "discount", "refuse")
#: Tolerance on a sum of proportions (split parts, a merged block's internal mix).
SUM_ATOL = 1e-6


def _names(value: Any, what: str, problems: list[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
        problems.append(f"{what} must be a list of domain names, e.g. [\"math\"], got {value!r}")
        return ()
    out = tuple(v.strip() for v in value)
    dup = sorted({v for v in out if out.count(v) > 1})
    if dup:
        problems.append(f"{what} names {dup} more than once")
    return out


def _parts(value: Any, what: str, problems: list[str], *, need: str) -> dict[str, dict[str, float | None]]:
    """``{name: {part: proportion or None}}`` from a table of tables or of lists."""
    if not isinstance(value, Mapping):
        problems.append(f"{what} must be a table like {need}, got {value!r}")
        return {}
    out: dict[str, dict[str, float | None]] = {}
    for name, parts in value.items():
        where = f"{what}.{name}"
        if isinstance(parts, (list, tuple)) and all(isinstance(p, str) and p.strip() for p in parts):
            props: dict[str, float | None] = {p.strip(): None for p in parts}
        elif isinstance(parts, Mapping):
            props = {}
            for p, x in parts.items():
                if isinstance(x, bool) or not isinstance(x, (int, float)) or not np.isfinite(x) or not 0 < x <= 1:
                    problems.append(f"{where}.{p} = {x!r}: a proportion must be a number in (0, 1]")
                    continue
                props[str(p)] = float(x)
        else:
            problems.append(f"{where} must be a list of names or a table of proportions like {need}, got {parts!r}")
            continue
        if len(props) < 2:
            problems.append(f"{where} needs at least two parts, got {list(props)}")
        given = [x for x in props.values() if x is not None]
        if given and len(given) == len(props) and abs(sum(given) - 1.0) > SUM_ATOL:
            problems.append(f"{where}: proportions must sum to 1, but got {sum(given):.6g} for {list(props)}; "
                            "give each part's share of the whole (e.g. their token counts over the total)")
        out[str(name)] = props
    return out


@dataclass(frozen=True, kw_only=True)
class DomainChanges:
    """How the domain set changed since the old runs (``[domains.changes]``).

    Attributes:
        added: new domains (0 in every old run).
        removed: domains no longer in the set.
        split: ``{source: {part: proportion}}``: the source's data is now the parts, at those
            shares of it (sum 1); ``{source: [parts]}`` leaves the proportions to be learned
            from the new runs (:func:`map_runs`).
        merged: ``{block: {member: share}}``: the members are now one domain whose internal mix
            is the shares (sum 1); ``{block: [members]}`` when the internal mix is not known.
        refiltered: domains whose data was re-filtered (same name; their old runs are
            assumed evidence).
        renamed: ``{old name: new name}`` for the same data under a new name.
        runs: the old run table file (config only; read with the ``[data]`` read options).
        removed_tolerance: a run with at most this share of the removed domains maps exactly.
        on_removed: runs above the tolerance: ``"drop"``, ``"discount"`` or ``"refuse"``.
        merge_tolerance: a run whose internal mix of a merged block is within this total
            variation of the stated one maps exactly.

    Raises:
        SchemaError: every inconsistency of the change itself at once (the domains of a
            table are checked by :func:`map_runs`).
    """

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    split: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)
    merged: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)
    refiltered: tuple[str, ...] = ()
    renamed: Mapping[str, str] = field(default_factory=dict)
    runs: Path | None = None
    removed_tolerance: float = 0.01
    on_removed: str = "drop"
    merge_tolerance: float = 0.05

    def __post_init__(self) -> None:
        problems: list[str] = []
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        for key in ("added", "removed", "refiltered"):
            set_(key, _names(getattr(self, key), key, problems))
        set_("split", _parts(self.split, "split", problems, need="{ web = { web_hq = 0.3, web_lq = 0.7 } }"))
        set_("merged", _parts(self.merged, "merged", problems, need="{ code = { python = 0.6, java = 0.4 } }"))
        if not isinstance(self.renamed, Mapping) or not all(
                isinstance(k, str) and k.strip() and isinstance(v, str) and v.strip() for k, v in self.renamed.items()):
            problems.append(f"renamed must be a table of {{old name = \"new name\"}} strings, got {self.renamed!r}")
            set_("renamed", {})
        else:
            set_("renamed", {str(k).strip(): str(v).strip() for k, v in self.renamed.items()})
        for key in ("removed_tolerance", "merge_tolerance"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
                problems.append(f"{key} must be a share in [0, 1), got {v!r}")
        if self.on_removed not in ON_REMOVED:
            problems.append(f"on_removed must be one of {list(ON_REMOVED)}, got {self.on_removed!r}")
        for name, parts in self.split.items():
            if any(x is not None for x in parts.values()) and any(x is None for x in parts.values()):
                problems.append(f"split.{name}: give a proportion for every part or for none, got {dict(parts)}")
        # each old domain may be touched by one change only; each new name may come from one change only
        old_uses: dict[str, list[str]] = {}
        for kind, names in (("removed", self.removed), ("split", tuple(self.split)), ("refiltered", self.refiltered),
                            ("merged", tuple(m for parts in self.merged.values() for m in parts)),
                            ("renamed", tuple(self.renamed))):
            for d in names:
                old_uses.setdefault(d, []).append(kind)
        for d, kinds in old_uses.items():
            if len(kinds) > 1:
                problems.append(f"domain {d!r} is both {' and '.join(kinds)}: a domain is either removed or kept "
                                "(split, merged or re-filtered), and changed once")
        new_names: dict[str, list[str]] = {}
        for kind, names in (("added", self.added), ("split", tuple(p for parts in self.split.values() for p in parts)),
                            ("merged", tuple(self.merged)), ("renamed", tuple(self.renamed.values()))):
            for d in names:
                new_names.setdefault(d, []).append(kind)
        for d, kinds in new_names.items():
            if len(kinds) > 1:
                problems.append(f"new domain {d!r} comes from {' and '.join(kinds)}; give each new domain one origin")
        if problems:
            raise SchemaError("The domain change cannot be mapped:", problems)

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.split or self.merged or self.refiltered or self.renamed)

    def new_domains(self, old: Sequence[str]) -> tuple[str, ...]:
        """The new domain set from the old one (order: old order with changes in place, added last).

        Raises:
            SchemaError: a change names a domain the old set lacks, or adds one it has.
        """
        old = tuple(old)
        problems: list[str] = []
        consumed = [*self.removed, *self.split, *self.refiltered, *(m for parts in self.merged.values() for m in parts),
                    *self.renamed]
        unknown = [d for d in dict.fromkeys(consumed) if d not in old]
        if unknown:
            problems.append(f"unknown domain(s) {unknown}: the old runs have domains {list(old)}; "
                            "name old domains in removed, split, merged, refiltered and renamed")
        present = [d for d in self.added if d in old]
        if present:
            problems.append(f"added domain(s) {present} are already in the old runs' domains {list(old)}; "
                            "use refiltered for a domain whose data changed")
        out: list[str] = []
        for d in old:
            if d in self.removed:
                continue
            if d in self.split:
                out.extend(self.split[d])
                continue
            if d in self.renamed:
                out.append(self.renamed[d])
                continue
            block = next((b for b, parts in self.merged.items() if d in parts), None)
            if block is not None:
                if block not in out:
                    out.append(block)
                continue
            out.append(d)
        out.extend(d for d in self.added if d not in out)
        clash = sorted({d for d in out if out.count(d) > 1})
        if clash:
            problems.append(f"new domain(s) {clash} would appear twice (an added, split or merged name equals a kept "
                            "domain); rename them")
        if not out:
            problems.append(f"no domain is left after the change of {list(old)}")
        if problems:
            raise SchemaError("The domain change cannot be mapped:", problems)
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        return {"added": list(self.added), "removed": list(self.removed),
                "split": {k: dict(v) for k, v in self.split.items()},
                "merged": {k: dict(v) for k, v in self.merged.items()}, "refiltered": list(self.refiltered),
                "renamed": dict(self.renamed),
                "runs": None if self.runs is None else str(self.runs), "removed_tolerance": self.removed_tolerance,
                "on_removed": self.on_removed, "merge_tolerance": self.merge_tolerance}


@dataclass(frozen=True)
class MappedRuns:
    """The result of :func:`map_runs`.

    Attributes:
        runs: the old runs in the new domain space, with the ``evidence`` column.
        domains: the new domain set, in order.
        dropped: ``{run: reason}`` for old runs left out.
        assumptions: one line per assumption made (split proportions, unknown internal mixes).
    """

    runs: RunTable
    domains: tuple[str, ...]
    dropped: dict[str, str] = field(default_factory=dict)
    assumptions: tuple[str, ...] = ()

    def summary(self) -> dict[str, Any]:
        ev = self.runs.final().frame[EVIDENCE].value_counts(sort=True)
        return {"runs": self.runs.n_runs, "domains": list(self.domains), "dropped": dict(self.dropped),
                "evidence": {str(k): int(n) for k, n in ev.iter_rows()}, "assumptions": list(self.assumptions)}


def _learned_split(changes: DomainChanges, new_runs: RunTable | None) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Split proportions: as given, else the mean part shares of the new runs that use the parts."""
    out: dict[str, dict[str, float]] = {}
    notes: list[str] = []
    for src, parts in changes.split.items():
        if all(x is not None for x in parts.values()):
            out[src] = {p: float(x) for p, x in parts.items()}  # type: ignore[arg-type]
            notes.append(f"split {src} -> {out[src]} (given proportions, assumed for every old run)")
            continue
        names = list(parts)
        if new_runs is None or any(p not in new_runs.domains for p in names):
            raise SchemaError(
                f"The domain change cannot be mapped: split.{src} -> {names} has no proportions and there are no new runs "
                "with those domains to learn them from. Give the proportions, e.g. "
                f"split = {{ {src} = {{ {names[0]} = 0.3, {names[1]} = 0.7 }} }} (each part's share of {src}'s tokens)."
            )
        m = new_runs.final().mixture(names)
        tot = m.sum(axis=1)
        use = tot > 0
        if not use.any():
            raise SchemaError(f"The domain change cannot be mapped: split.{src}: no new run uses any of {names}, so "
                              "their proportions cannot be learned; give them.")
        prop = (m[use] / tot[use, None]).mean(axis=0)
        out[src] = {p: float(x) for p, x in zip(names, prop / prop.sum(), strict=True)}
        notes.append(f"split {src} -> {out[src]} (learned from {int(use.sum())} new run(s): their mean part shares)")
    return out, notes


def map_runs(old: RunTable, changes: DomainChanges, *, domains: Sequence[str] | None = None,
             new_runs: RunTable | None = None) -> MappedRuns:
    """Map the old runs' mixtures into the new domain space (see the module docstring).

    Args:
        old: runs trained on the old domain set.
        changes: the change.
        domains: the new domain set when known (e.g. the new runs' or the search's); it must
            equal the one the change gives (as a set); its order is kept.
        new_runs: runs on the new domain set (to learn missing split proportions, and to
            check the new domain set).

    Returns:
        :class:`MappedRuns` (rows in the order of ``old``).

    Raises:
        SchemaError: a change that cannot be mapped, with the reason.
    """
    if not old.domains:
        raise SchemaError("The domain change cannot be mapped: the old runs have no mixture columns (mix:<domain>).")
    new = changes.new_domains(old.domains)
    for what, given in (("the new domain set given", domains),
                        ("the new runs' domains", None if new_runs is None else new_runs.domains)):
        if given is not None and set(given) != set(new):
            raise SchemaError(
                f"The domain change cannot be mapped: {what} {sorted(given)} is not the old domains "
                f"{list(old.domains)} after the change ({sorted(new)}): {sorted(set(given) - set(new))} come from no "
                f"change (state them as added, split parts or merged blocks), {sorted(set(new) - set(given))} are absent "
                "(state them as removed)."
            )
    if domains is not None:
        new = tuple(domains)
    elif new_runs is not None:
        new = tuple(new_runs.domains)
    split, notes = _learned_split(changes, new_runs)
    frame = old.frame
    n = frame.height
    mix = {d: old.column(MIX_PREFIX + d) for d in old.domains}
    tags: list[list[str]] = [[] for _ in range(n)]
    out: dict[str, np.ndarray] = {}
    dropped: dict[str, str] = {}
    keep = np.ones(n, dtype=bool)
    runs = old.run_ids()

    def tag(mask: np.ndarray, name: str) -> None:
        for i in np.flatnonzero(mask):
            tags[i].append(name)

    # removed: only runs with ~0 of it map exactly
    scale = np.ones(n)
    if changes.removed:
        gone = sum(mix[d] for d in changes.removed)
        over = gone > changes.removed_tolerance
        if over.any():
            bad = list(dict.fromkeys(runs[over].tolist()))
            share = {r: float(gone[runs == r].max()) for r in bad}
            if changes.on_removed == "refuse":
                shown = ", ".join(f"{r!r} ({share[r]:.3g})" for r in bad[:5])
                raise SchemaError(
                    f"The domain change cannot be mapped: {len(bad)} old run(s) trained on removed domain(s) "
                    f"{list(changes.removed)} above removed_tolerance = {changes.removed_tolerance:g}: {shown}. Their "
                    "losses describe a mixture that includes the removed data; use on_removed = \"drop\" to leave them out "
                    "or \"discount\" to keep them as assumed evidence."
                )
            if changes.on_removed == "drop":
                keep &= ~over
                for r in bad:
                    dropped[r] = (f"trained {share[r]:.3g} of its tokens on removed domain(s) {list(changes.removed)} "
                                  f"(> removed_tolerance {changes.removed_tolerance:g})")
            else:
                tag(over, "removed" + ASSUMED)
        tag((gone > 0) & ~over, "removed")
        scale = np.where(gone < 1, 1.0 / np.maximum(1.0 - gone, 1e-300), 0.0)
        if keep.any() and np.any(gone[keep] >= 1 - 1e-12):
            r = runs[keep & (gone >= 1 - 1e-12)][0]
            raise SchemaError(f"The domain change cannot be mapped: run {r!r} trained only on removed domain(s) "
                              f"{list(changes.removed)}; it has no mixture in the new space. Drop it.")
    for d in old.domains:
        if d in changes.removed:
            continue
        if d in split:
            for p, x in split[d].items():
                out[p] = mix[d] * x * scale
            tag(mix[d] > 0, "split" + ASSUMED)
            continue
        if d in changes.renamed:
            out[changes.renamed[d]] = mix[d] * scale
            tag(mix[d] > 0, "renamed")
            continue
        block = next((b for b, parts in changes.merged.items() if d in parts), None)
        if block is not None:
            out[block] = out.get(block, np.zeros(n)) + mix[d] * scale
            continue
        out[d] = mix[d] * scale
        if d in changes.refiltered:
            tag(mix[d] > 0, "refiltered" + ASSUMED)
    for block, parts in changes.merged.items():
        members = list(parts)
        m = np.column_stack([mix[p] for p in members])
        tot = m.sum(axis=1)
        use = tot > 0
        if all(x is not None for x in parts.values()):
            q = np.array([parts[p] for p in members], dtype=np.float64)
            tv = 0.5 * np.abs(m / np.where(use, tot, 1.0)[:, None] - q[None, :]).sum(axis=1)
            close = tv <= changes.merge_tolerance
            tag(use & close, "merged")
            tag(use & ~close, "merged" + ASSUMED)
        else:
            tag(use, "merged" + ASSUMED)
            notes.append(f"merged {members} -> {block}: internal mix not given; every old run that used them is "
                         "assumed evidence")
    for d in changes.added:
        out[d] = np.zeros(n)
    if changes.added:
        tag(np.ones(n, dtype=bool), "added")
    evidence = [MAPPED + ("+".join(dict.fromkeys(t)) if t else "unchanged") for t in tags]
    mix_cols = [pl.Series(MIX_PREFIX + d, out[d]) for d in new]
    rest = [c for c in frame.columns if not c.startswith(MIX_PREFIX) and c != EVIDENCE]
    mapped = frame.select(rest).with_columns(mix_cols).with_columns(pl.Series(EVIDENCE, evidence))
    order = [c for c in rest if c in (RUN, PARAMS, TOKENS, FLOPS)] + [MIX_PREFIX + d for d in new]
    mapped = mapped.select(order + [c for c in mapped.columns if c not in order])
    mapped = mapped.filter(pl.Series(keep))
    if mapped.height == 0:
        raise SchemaError(f"The domain change cannot be mapped: every old run was dropped ({len(dropped)} run(s), e.g. "
                          f"{next(iter(dropped.items()))}). Use on_removed = \"discount\" to keep them as assumed evidence.")
    return MappedRuns(runs=RunTable(mapped, old.benchmarks), domains=new, dropped=dropped, assumptions=tuple(notes))


def combine_runs(mapped: RunTable, new: RunTable) -> RunTable:
    """The mapped old runs and the new runs in one table (new runs get ``evidence = "new"``).

    Columns are the union (a measurement one side lacks is empty there); the mixture domains
    must be the same set. Run ids must not collide.
    """
    if set(mapped.domains) != set(new.domains):
        raise SchemaError(f"Cannot combine runs on different domain sets: mapped {list(mapped.domains)}, new "
                          f"{list(new.domains)}. Map the old runs with the change first (map_runs).")
    clash = sorted(set(mapped.runs) & set(new.runs))
    if clash:
        raise SchemaError(f"Old and new runs share run id(s) {clash[:10]}; give the new runs other ids.")
    nf = new.frame if EVIDENCE in new.frame.columns else new.frame.with_columns(pl.lit(NEW).alias(EVIDENCE))
    mf = mapped.frame if EVIDENCE in mapped.frame.columns else mapped.frame.with_columns(pl.lit(NEW).alias(EVIDENCE))
    mf = mf.select([c for c in mf.columns if not c.startswith(MIX_PREFIX) or c[len(MIX_PREFIX):] in new.domains])
    frame = pl.concat([mf, nf], how="diagonal_relaxed")
    head = [c for c in (RUN, PARAMS, TOKENS, FLOPS) if c in frame.columns]
    frame = frame.select(head + [MIX_PREFIX + d for d in new.domains]
                         + [c for c in frame.columns if c not in head and not c.startswith(MIX_PREFIX)])
    names = {b.name: b for b in (*mapped.benchmarks, *new.benchmarks)}
    return RunTable(frame, tuple(names.values()))


def evidence(runs: RunTable) -> np.ndarray:
    """The ``evidence`` of every row, ``(n,)`` object array (``"new"`` when the column is absent)."""
    if EVIDENCE not in runs.frame.columns:
        return np.full(len(runs), NEW, dtype=object)
    return np.asarray(runs.frame[EVIDENCE].fill_null(NEW).to_list(), dtype=object)


def approximate(values: Iterable[str] | str) -> Any:
    """Whether an ``evidence`` value (or each of an array of them) rests on an assumption (``~``)."""
    if isinstance(values, str):
        return ASSUMED in values
    return np.asarray([ASSUMED in str(v) for v in values], dtype=bool)


def mapped(values: Iterable[str] | str) -> Any:
    """Whether an ``evidence`` value (or each of an array of them) is an old, mapped run."""
    if isinstance(values, str):
        return values.startswith(MAPPED)
    return np.asarray([str(v).startswith(MAPPED) for v in values], dtype=bool)


__all__ = ["ASSUMED", "EVIDENCE", "MAPPED", "NEW", "ON_REMOVED", "DomainChanges", "MappedRuns", "approximate",
           "combine_runs", "evidence", "map_runs", "mapped"]
