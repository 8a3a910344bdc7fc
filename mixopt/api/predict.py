"""Predictions for the API: fitted models cached in memory, request -> Targets -> Prediction.

Targets are built and validated by :class:`mixopt.surrogate.Targets` (sums, ranges,
shapes) and predicted by the surrogate itself; this module only turns the request's
lists into arrays (every problem collected) and the :class:`~mixopt.surrogate.Prediction`
into columns. Loaded models are kept in an LRU cache and warmed with one prediction, so
the first request after loading does not pay lazy imports (torch).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mixopt.api.errors import LimitError
from mixopt.data.table import training_flops
from mixopt.errors import SchemaError


def settle_heap() -> None:
    """Collect garbage, then exempt every surviving object from future collections (``gc.freeze``).

    A served process holds a large, long-lived heap (FastAPI, numpy, torch, the loaded models);
    each full (generation 2) collection walks all of it: ~100 ms with the event loop stopped,
    several times a minute under predict load, which set the p99 latency (measured with gc
    callbacks: 8 full collections of 98 ms each in 6 s of load). Frozen objects are never
    scanned; the per-request garbage is still collected normally. Called once after start-up
    and after each model load (``MIXOPT_GC_FREEZE=0`` turns it off).
    """
    import gc

    gc.collect()
    gc.freeze()


class ModelCache:
    """At most ``size`` loaded surrogates, least recently used evicted first.

    With ``freeze``, the heap is settled (:func:`settle_heap`) after each load and warm-up.
    """

    def __init__(self, size: int, *, freeze: bool = False) -> None:
        self.size = int(size)
        self.freeze = bool(freeze)
        self._models: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, key: str, path: Path) -> Any:
        with self._lock:
            m = self._models.get(key)
            if m is not None:
                self._models.move_to_end(key)
                return m
            lock = self._loading.setdefault(key, threading.Lock())
        with lock:  # one loader per model; others wait for it
            with self._lock:
                m = self._models.get(key)
            if m is None:
                from mixopt.surrogate import load_surrogate

                m = load_surrogate(path)
                warm(m)
                with self._lock:
                    self._models[key] = m
                    while len(self._models) > self.size:
                        self._models.popitem(last=False)
                if self.freeze:
                    settle_heap()
            with self._lock:
                self._loading.pop(key, None)
        return m

    def peek(self, key: str) -> Any:
        """The cached model, or None (never loads)."""
        with self._lock:
            m = self._models.get(key)
            if m is not None:
                self._models.move_to_end(key)
            return m

    def drop(self, key: str) -> None:
        with self._lock:
            self._models.pop(key, None)

    def __len__(self) -> int:
        return len(self._models)


def warm(model: Any) -> None:
    """One small prediction (loads lazy imports such as torch in this process)."""
    from mixopt.surrogate import Targets

    k = len(model.domains_)
    try:
        if model.uses_mixture and k:
            model.predict(Targets(flops=np.array([1e20]), mixture=np.full((1, k), 1.0 / k), domains=model.domains_))
        else:
            model.predict(Targets(flops=np.array([1e20])))
    except Exception:  # noqa: BLE001 - warming is best effort; real requests report errors
        pass


def _vector(name: str, v: Any, n: int | None, problems: list[str]) -> np.ndarray | None:
    if v is None:
        return None
    a = np.atleast_1d(np.asarray(v, dtype=np.float64))
    if a.ndim != 1:
        problems.append(f"{name}: expected a number or a list of numbers, got a nested list")
        return None
    if n is not None and a.shape[0] not in (1, n):
        problems.append(f"{name}: expected one number or {n} (one per mixture), got {a.shape[0]}")
        return None
    return a


def build_targets(
    model: Any,
    *,
    mixtures: Sequence[Mapping[str, float] | Sequence[float]] | None,
    flops: float | Sequence[float] | None,
    params: float | Sequence[float] | None,
    tokens: float | Sequence[float] | None,
    max_batch: int,
    schedules: Sequence[Mapping[str, Any]] | None = None,
) -> Any:
    """:class:`~mixopt.surrogate.Targets` for a predict request.

    ``mixtures`` rows are ``{domain: ratio}`` (missing domains = 0) or lists over the
    model's domains in order; compute is ``flops`` or ``params`` and ``tokens`` (each one
    number for every row, or one per row). ``schedules`` (instead of ``mixtures``) rows are
    ``{"phases": [{domain: ratio}, ...], "phase_end": [...]}`` (:mod:`mixopt.data.phases`);
    schedules with fewer phases than the longest are padded (:func:`~mixopt.data.phases.pad_schedule`).

    Raises:
        SchemaError: every problem of the request (unknown domains, wrong lengths, ...).
        LimitError: more rows than ``max_batch``.
    """
    from mixopt.surrogate import Targets

    problems: list[str] = []
    domains = tuple(model.domains_)
    if schedules is not None:
        if mixtures is not None:
            raise SchemaError("Invalid predict request:", ["give mixtures or schedules, not both"])
        return _schedule_targets(model, schedules, flops=flops, params=params, tokens=tokens, max_batch=max_batch)
    n_mix = len(mixtures) if mixtures is not None else None
    lengths = [len(x) for x in (flops, params, tokens) if isinstance(x, (list, tuple))]
    n = n_mix if n_mix is not None else max(lengths, default=1)
    if n > max_batch or max(lengths, default=0) > max_batch:
        raise LimitError(f"A predict request may hold at most {max_batch} rows, got {max([n, *lengths])}; split it into smaller batches.")
    if n == 0:
        problems.append("mixtures: expected at least one mixture, got an empty list")
    mix = None
    if model.uses_mixture:
        if mixtures is None:
            problems.append(f"mixtures: required: this {model.kind} model predicts per mixture over domains {list(domains)}")
        else:
            mix = _mixture_array(mixtures, domains, problems)
    f, p, t = _compute(flops, params, tokens, n, problems, per="mixture")
    return Targets(flops=f, params=p, tokens=t, mixture=mix, domains=domains if mix is not None else ())


def _mixture_array(mixtures: Sequence[Mapping[str, float] | Sequence[float]], domains: tuple[str, ...], problems: list[str]) -> np.ndarray:
    """``(n, k)`` ratios of the request's mixture rows over ``domains``; every bad row's problem added to ``problems``."""
    k = len(domains)
    # the common cases (rows as the API's schema delivers them: lists of the right length, or dicts over known
    # domains) in one conversion, ~10x faster than row by row for 100 rows; anything else takes the checking loop
    if all(type(row) is list and len(row) == k for row in mixtures):
        return np.array(mixtures, dtype=np.float64).reshape(len(mixtures), k)
    known = frozenset(domains)
    if all(type(row) is dict and known.issuperset(row) for row in mixtures):
        return np.array([[row.get(d, 0.0) for d in domains] for row in mixtures], dtype=np.float64).reshape(len(mixtures), k)
    mix = np.zeros((len(mixtures), k))
    for i, row in enumerate(mixtures):
        if isinstance(row, Mapping):
            unknown = sorted(set(row) - known)
            if unknown:
                problems.append(f"mixtures[{i}]: unknown domain(s) {unknown}; the model's domains are {list(domains)}")
                continue
            mix[i] = [float(row.get(d, 0.0)) for d in domains]
        else:
            if len(row) != k:
                problems.append(f"mixtures[{i}]: expected {k} ratios over {list(domains)}, got {len(row)}")
                continue
            mix[i] = [float(x) for x in row]
    return mix


def _schedule_targets(model: Any, schedules: Sequence[Mapping[str, Any]], *, flops: Any, params: Any, tokens: Any, max_batch: int) -> Any:
    """Targets of a predict request with schedules (see :func:`build_targets`)."""
    from mixopt.data.phases import pad_schedule, schedule_from_mappings
    from mixopt.surrogate import Targets

    problems: list[str] = []
    domains = tuple(model.domains_)
    n = len(schedules)
    if n > max_batch:
        raise LimitError(f"A predict request may hold at most {max_batch} rows, got {n}; split it into smaller batches.")
    if n == 0:
        problems.append("schedules: expected at least one schedule, got an empty list")
    if not model.uses_mixture:
        problems.append(f"schedules: this {model.kind} model does not read mixtures; predict with flops or params and tokens")
    rows: list[tuple[np.ndarray, np.ndarray]] = []
    for i, sc in enumerate(schedules):
        try:
            rows.append(schedule_from_mappings(list(sc.get("phases", [])), list(sc.get("phase_end", [])), domains))
        except SchemaError as e:
            problems.extend(f"schedules[{i}]: {p}" for p in (e.problems or [str(e)]))
    f, p, t = _compute(flops, params, tokens, n, problems, per="schedule")
    K = max(P.shape[0] for P, _ in rows)
    padded = [pad_schedule(P[None], E[None], K) for P, E in rows]
    P = np.concatenate([a for a, _ in padded])
    E = np.concatenate([b for _, b in padded])
    return Targets(flops=f, params=p, tokens=t, domains=domains, phases=P, phase_end=E)


def _compute(flops: Any, params: Any, tokens: Any, n: int, problems: list[str], *, per: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """A request's compute as ``(flops, params, tokens)`` for ``n`` rows (flops from N and D when not given).

    Checks the compute fields, adds what is wrong to ``problems`` and raises the request's
    :class:`SchemaError` when anything (earlier problems included) is wrong.
    """
    if flops is not None and (params is not None or tokens is not None):
        problems.append("give compute as flops, or as params and tokens, not both")
    elif flops is None and (params is None or tokens is None):
        problems.append(f"compute: give flops (a number or one per {per}), or params and tokens")
    f = _vector("flops", flops, n, problems)
    p = _vector("params", params, n, problems)
    t = _vector("tokens", tokens, n, problems)
    if problems:
        raise SchemaError("Invalid predict request:", problems)
    if f is None:
        p, t = np.broadcast_to(p, (n,)), np.broadcast_to(t, (n,))
        f = training_flops(p, t)
    return np.broadcast_to(f, (n,)).copy(), p, t


def prediction_columns(pred: Any) -> dict[str, Any]:
    """``{quantity: {"mean": [...], "lower": [...], "upper": [...]}}`` (numpy arrays; NaN = not predictable)."""
    out: dict[str, Any] = {}
    for j, q in enumerate(pred.names):
        col: dict[str, Any] = {"mean": np.ascontiguousarray(pred.mean[:, j])}
        if pred.lower is not None and pred.upper is not None:
            col["lower"] = np.ascontiguousarray(pred.lower[:, j])
            col["upper"] = np.ascontiguousarray(pred.upper[:, j])
        out[q] = col
    return out


# -- batching ---------------------------------------------------------------------------------------
def concat_targets(parts: Sequence[Any]) -> Any:
    """One :class:`~mixopt.surrogate.Targets` of every row of ``parts`` (same domains, all with or all without N and D)."""
    from mixopt.surrogate import Targets

    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    cat = np.concatenate
    return Targets(
        flops=cat([p.flops for p in parts]),
        params=None if first.params is None else cat([p.params for p in parts]),
        tokens=None if first.tokens is None else cat([p.tokens for p in parts]),
        mixture=None if first.mixture is None or first.phases is not None else np.vstack([p.mixture for p in parts]),
        domains=first.domains,
        phases=None if first.phases is None else np.concatenate([p.phases for p in parts]),
        phase_end=None if first.phase_end is None else np.concatenate([p.phase_end for p in parts]),
    )


def split_prediction(pred: Any, sizes: Sequence[int]) -> list[Any]:
    """The rows of ``pred`` cut back into consecutive pieces of ``sizes`` rows."""
    from mixopt.surrogate import Prediction

    if len(sizes) == 1:
        return [pred]
    out, a = [], 0
    for n in sizes:
        sl = slice(a, a + n)
        out.append(
            Prediction(
                names=pred.names,
                mean=pred.mean[sl],
                level=pred.level,
                unpredictable=pred.unpredictable,
                lower=None if pred.lower is None else pred.lower[sl],
                upper=None if pred.upper is None else pred.upper[sl],
                std=None if pred.std is None else pred.std[sl],
            )
        )
        a += n
    return out


def predict_many(model: Any, parts: Sequence[Any], level: float, intervals: bool) -> list[Any]:
    """Predict several requests' targets in one ``model.predict`` call; one prediction per request."""
    pred = model.predict(concat_targets(parts), intervals=intervals, level=level)
    return split_prediction(pred, [len(p) for p in parts])


class PredictBatcher:
    """Merges predict requests that arrive while the model is busy into one ``predict`` call.

    Requests for the same model (and level, intervals, kind of compute) queue up while a
    batch runs; when it ends the next batch takes everything queued (up to ``max_rows``
    rows). An idle model predicts a request at once (no added wait); under load, one
    vectorised call serves many requests, which costs far less than one call each. Rows
    are predicted independently, so a request gets the same numbers either way (tested).
    If a merged call fails, its requests are retried one by one so that one request's
    error never reaches another.
    """

    def __init__(self, pool: Any, max_rows: int) -> None:
        self.pool = pool
        self.max_rows = max(int(max_rows), 1)
        self._pending: dict[tuple[Any, ...], list[tuple[Any, Any]]] = {}
        self._busy: set[tuple[Any, ...]] = set()
        self.calls = 0  # predict calls made (for the benchmark's figures)
        self.requests = 0

    async def predict(self, key: str, model: Any, targets: Any, *, level: float, intervals: bool) -> Any:
        import asyncio

        loop = asyncio.get_running_loop()
        k = (
            key,
            id(model),
            float(level),
            bool(intervals),
            targets.params is None,
            targets.mixture is None,
            None if targets.phases is None else targets.phases.shape[1],
        )  # merged rows share one schedule layout
        fut = loop.create_future()
        self._pending.setdefault(k, []).append((targets, fut))
        self.requests += 1
        if k not in self._busy:
            self._busy.add(k)
            loop.create_task(self._drain(k, model, level, intervals))
        return await fut

    async def _drain(self, k: tuple[Any, ...], model: Any, level: float, intervals: bool) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        try:
            while self._pending.get(k):
                queue = self._pending[k]
                items, rows = [], 0
                while queue and (not items or rows + len(queue[0][0]) <= self.max_rows):
                    items.append(queue.pop(0))
                    rows += len(items[-1][0])
                self.calls += 1
                try:
                    preds = await loop.run_in_executor(self.pool, predict_many, model, [t for t, _ in items], level, intervals)
                except Exception:  # noqa: BLE001 - isolate the failing request(s)
                    for t, f in items:
                        try:
                            p = await loop.run_in_executor(self.pool, predict_many, model, [t], level, intervals)
                            if not f.done():
                                f.set_result(p[0])
                        except Exception as e:  # noqa: BLE001 - reported to its own request
                            if not f.done():
                                f.set_exception(e)
                    continue
                for (_, f), p in zip(items, preds, strict=True):
                    if not f.done():
                        f.set_result(p)
        finally:
            self._busy.discard(k)
            if not self._pending.get(k):
                self._pending.pop(k, None)


__all__ = ["ModelCache", "PredictBatcher", "settle_heap", "build_targets", "concat_targets", "prediction_columns", "predict_many", "split_prediction", "warm"]
