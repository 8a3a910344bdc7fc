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
from mixopt.errors import SchemaError


class ModelCache:
    """At most ``size`` loaded surrogates, least recently used evicted first."""

    def __init__(self, size: int) -> None:
        self.size = int(size)
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
            with self._lock:
                self._loading.pop(key, None)
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
) -> Any:
    """:class:`~mixopt.surrogate.Targets` for a predict request.

    ``mixtures`` rows are ``{domain: ratio}`` (missing domains = 0) or lists over the
    model's domains in order; compute is ``flops`` or ``params`` and ``tokens`` (each one
    number for every row, or one per row).

    Raises:
        SchemaError: every problem of the request (unknown domains, wrong lengths, ...).
        LimitError: more rows than ``max_batch``.
    """
    from mixopt.surrogate import Targets

    problems: list[str] = []
    domains = tuple(model.domains_)
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
            mix = np.zeros((len(mixtures), len(domains)))
            for i, row in enumerate(mixtures):
                if isinstance(row, Mapping):
                    unknown = sorted(set(row) - set(domains))
                    if unknown:
                        problems.append(f"mixtures[{i}]: unknown domain(s) {unknown}; the model's domains are {list(domains)}")
                        continue
                    mix[i] = [float(row.get(d, 0.0)) for d in domains]
                else:
                    if len(row) != len(domains):
                        problems.append(f"mixtures[{i}]: expected {len(domains)} ratios over {list(domains)}, got {len(row)}")
                        continue
                    mix[i] = [float(x) for x in row]
    have_nt = params is not None or tokens is not None
    if flops is not None and have_nt:
        problems.append("give compute as flops, or as params and tokens, not both")
    elif flops is None and (params is None or tokens is None):
        problems.append("compute: give flops (a number or one per mixture), or params and tokens")
    f = _vector("flops", flops, n, problems)
    p = _vector("params", params, n, problems)
    t = _vector("tokens", tokens, n, problems)
    if problems:
        raise SchemaError("Invalid predict request:", problems)
    if f is None:
        p, t = np.broadcast_to(p, (n,)), np.broadcast_to(t, (n,))
        f = 6.0 * p * t
    return Targets(flops=np.broadcast_to(f, (n,)).copy(), params=p, tokens=t, mixture=mix,
                   domains=domains if mix is not None else ())


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


__all__ = ["ModelCache", "build_targets", "prediction_columns", "warm"]
