"""A small Python client of the mixopt HTTP API (httpx; no FastAPI needed)::

    from mixopt.client import Client

    c = Client("http://127.0.0.1:8000", api_key="...")
    ds = c.upload("runs.csv")                       # any layout the CLI reads (+ ratios=... for two-file tables)
    m = c.fit(ds, method="flpm")                    # waits until the model is fitted
    p = c.predict(m, mixtures=[{"web": 0.6, "code": 0.4}], flops=1e21)
    job = c.optimize("configs/example.toml", model=m)
    c.wait(job)
    front = c.pareto(job)                           # a polars DataFrame
    picks = c.shortlist(job)                        # a few diverse knee-region mixtures, ranked

Resources are returned as dicts (their ``id`` is what the other calls take; the dicts are
accepted too). An error response raises :class:`APIError` with the server's message and
every problem it listed.
"""

from __future__ import annotations

import io
import logging
import time
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mixopt._json import jsonable
from mixopt.errors import MixoptError

logger = logging.getLogger(__name__)

#: Config keys the server sets itself; the client drops them from a local config file.
_SERVER_SEARCH_KEYS = ("storage", "study_name", "output", "executor", "ray_address", "workers")
_FINAL = ("done", "failed", "cancelled", "interrupted")


class APIError(MixoptError, RuntimeError):
    """An error response of the service.

    Attributes:
        status: HTTP status code.
        error: the server's error class (``SchemaError``, ``NotFoundError``, ...).
        problems: every problem the server listed.
    """

    def __init__(self, status: int, error: str, message: str, problems: Sequence[str] = ()) -> None:
        self.status, self.error, self.problems = status, error, list(problems)
        text = f"HTTP {status} {error}: {message}"
        if self.problems:
            text += "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(text)


def _id(x: str | Mapping[str, Any]) -> str:
    return str(x["id"]) if isinstance(x, Mapping) else str(x)


class Client:
    """Client of one mixopt server.

    Args:
        url: the server, e.g. ``http://127.0.0.1:8000``.
        api_key: bearer key (when the server has ``MIXOPT_API_KEYS``).
        timeout: seconds per HTTP request.
        transport: an httpx transport (tests: ``httpx.ASGITransport``/``WSGITransport``).
    """

    def __init__(self, url: str = "http://127.0.0.1:8000", *, api_key: str | None = None, timeout: float = 120.0,
                 transport: Any = None) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        kw = {"transport": transport} if transport is not None else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout, **kw)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------
    def _call(self, method: str, path: str, **kw: Any) -> Any:
        r = self._http.request(method, path, **kw)
        if r.status_code >= 400:
            try:
                body = r.json()
                raise APIError(r.status_code, body.get("error", "Error"), body.get("message", r.text), body.get("problems", []))
            except ValueError:
                raise APIError(r.status_code, "Error", r.text[:500]) from None
        if r.status_code == 204:
            return None
        if r.headers.get("content-type", "").startswith("application/json"):
            return r.json()
        return r.content

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    # -- datasets -----------------------------------------------------------------------------
    def upload(self, runs: str | Path, *, ratios: str | Path | None = None, benchmarks: str | Path | None = None,
               format: str = "auto", params: float | None = None, tokens: float | None = None,  # noqa: A002
               chance: Mapping[str, float | None] | None = None, columns: Mapping[str, str] | None = None,
               name: str | None = None) -> dict[str, Any]:
        """Upload a run table (and its mixture file for two-file layouts); returns the dataset.

        The ``<stem>.benchmarks.json`` sidecar next to ``runs`` is sent along when present.
        """
        import json

        from mixopt.data.readers import sidecar_path

        runs = Path(runs)
        side = Path(benchmarks) if benchmarks is not None else sidecar_path(runs)
        handles = [("runs", runs)] + ([("ratios", Path(ratios))] if ratios is not None else [])
        if side.is_file():
            handles.append(("benchmarks", side))
        data = {"format": format}
        for k, v in (("params", params), ("tokens", tokens), ("name", name)):
            if v is not None:
                data[k] = str(v)
        if chance:
            data["chance"] = json.dumps(dict(chance))
        if columns:
            data["columns"] = json.dumps(dict(columns))
        opened = [(field, p.name, p.open("rb")) for field, p in handles]
        try:
            return self._call("POST", "/v1/datasets", data=data, files=[(f, (n, fh)) for f, n, fh in opened])
        finally:
            for _, _, fh in opened:
                fh.close()

    def datasets(self) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/datasets")

    def dataset(self, dataset: str | Mapping[str, Any]) -> dict[str, Any]:
        return self._call("GET", f"/v1/datasets/{_id(dataset)}")

    def delete_dataset(self, dataset: str | Mapping[str, Any]) -> None:
        self._call("DELETE", f"/v1/datasets/{_id(dataset)}")

    # -- models -------------------------------------------------------------------------------
    def fit(self, dataset: str | Mapping[str, Any], method: str = "flp", *, settings: Mapping[str, Any] | None = None,
            backtest: Mapping[str, Any] | None = None, wait: bool = True, timeout: float = 1800.0) -> dict[str, Any]:
        """Fit ``method`` on a dataset; with ``wait`` returns the ready model (raises :class:`APIError` if the fit fails)."""
        body: dict[str, Any] = {"dataset": _id(dataset), "method": method, "settings": dict(settings or {})}
        if backtest is not None:
            body["backtest"] = dict(backtest)
        m = self._call("POST", "/v1/models", json=body)
        if not wait:
            return m
        m = self._poll(f"/v1/models/{m['id']}", lambda r: r["status"] != "fitting", timeout)
        if m["status"] != "ready":
            raise APIError(422, "FitFailed", f"model {m['id']} is {m['status']}: {m.get('error')}")
        return m

    def model(self, model: str | Mapping[str, Any]) -> dict[str, Any]:
        return self._call("GET", f"/v1/models/{_id(model)}")

    def models(self) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/models")

    def backtest(self, model: str | Mapping[str, Any]) -> dict[str, Any]:
        return self._call("GET", f"/v1/models/{_id(model)}/backtest")

    def predict(self, model: str | Mapping[str, Any], *, mixtures: Sequence[Mapping[str, float] | Sequence[float]] | None = None,
                flops: float | Sequence[float] | None = None, params: float | Sequence[float] | None = None,
                tokens: float | Sequence[float] | None = None, level: float = 0.9, intervals: bool = True) -> dict[str, Any]:
        """Predict every quantity for mixtures x compute: ``{"predictions": {quantity: {"mean", "lower", "upper"}}, ...}``."""
        body: dict[str, Any] = {"level": level, "intervals": intervals}
        for k, v in (("mixtures", mixtures), ("flops", flops), ("params", params), ("tokens", tokens)):
            if v is not None:
                body[k] = jsonable(v)  # numpy arrays as lists; NaN/inf become null (the server refuses them: 422)
        return self._call("POST", f"/v1/models/{_id(model)}/predict", json=body)

    # -- jobs ---------------------------------------------------------------------------------
    def optimize(self, config: str | Path | Mapping[str, Any], *, model: str | Mapping[str, Any] | None = None,
                 dataset: str | Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Submit a search: ``config`` is a TOML file, TOML text or the parsed dict (as for ``mixopt optimize``).

        Keys only the server sets (storage, output, executor, ...) are dropped. A local
        config whose ``[data] runs`` names files, given without ``model``/``dataset``, has
        them uploaded first.
        """
        raw, base = _load_config(config)
        search = raw.get("search")
        if isinstance(search, dict):
            dropped = [k for k in _SERVER_SEARCH_KEYS if k in search]
            if dropped:
                logger.info("Dropping search.%s: the server sets them", ", search.".join(dropped))
                raw["search"] = {k: v for k, v in search.items() if k not in _SERVER_SEARCH_KEYS}
        data = raw.get("data")
        if isinstance(data, dict) and "runs" in data:
            if model is None and dataset is None:
                rp = Path(data["runs"])
                rp = rp if rp.is_absolute() or base is None else base / rp
                ratios = data.get("ratios")
                rat = None if ratios is None else (Path(ratios) if Path(ratios).is_absolute() or base is None else base / ratios)
                dataset = self.upload(rp, ratios=rat, format=data.get("format", "auto"), params=data.get("params"),
                                      tokens=data.get("tokens"), chance=data.get("chance"), columns=data.get("columns"))
            raw.pop("data")
        body: dict[str, Any] = {"config": raw}
        if model is not None:
            body["model"] = _id(model)
        if dataset is not None:
            body["dataset"] = _id(dataset)
        return self._call("POST", "/v1/jobs", json=body)

    def job(self, job: str | Mapping[str, Any]) -> dict[str, Any]:
        return self._call("GET", f"/v1/jobs/{_id(job)}")

    def jobs(self) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/jobs")

    def wait(self, job: str | Mapping[str, Any], *, timeout: float = 3600.0, poll: float = 0.5) -> dict[str, Any]:
        """Poll until the job is done, failed, cancelled or interrupted; returns it."""
        return self._poll(f"/v1/jobs/{_id(job)}", lambda r: r["status"] in _FINAL, timeout, poll)

    def cancel(self, job: str | Mapping[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"/v1/jobs/{_id(job)}/cancel")

    def resume(self, job: str | Mapping[str, Any], *, trials: int | None = None) -> dict[str, Any]:
        return self._call("POST", f"/v1/jobs/{_id(job)}/resume", json={"trials": trials} if trials else None)

    def pareto(self, job: str | Mapping[str, Any]) -> Any:
        """The Pareto table of a finished job (polars DataFrame)."""
        import polars as pl

        return pl.read_parquet(io.BytesIO(self._call("GET", f"/v1/jobs/{_id(job)}/pareto", params={"format": "parquet"})))

    def shortlist(self, job: str | Mapping[str, Any]) -> Any:
        """The shortlist of a finished job: diverse knee-region rows of the front, with ``rank`` (polars DataFrame)."""
        import polars as pl

        return pl.read_parquet(io.BytesIO(self._call("GET", f"/v1/jobs/{_id(job)}/shortlist", params={"format": "parquet"})))

    def trials(self, job: str | Mapping[str, Any]) -> Any:
        """Every finished trial of a finished job (polars DataFrame)."""
        import polars as pl

        return pl.read_parquet(io.BytesIO(self._call("GET", f"/v1/jobs/{_id(job)}/trials", params={"format": "parquet"})))

    def _poll(self, path: str, ready: Any, timeout: float, poll: float = 0.25) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            r = self._call("GET", path)
            if ready(r):
                return r
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path} still {r.get('status')} after {timeout:.0f} s")
            time.sleep(poll)


def _load_config(config: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], Path | None]:
    if isinstance(config, Mapping):
        return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in config.items()}, None
    text = str(config)
    if "\n" not in text and Path(text).suffix == ".toml":
        p = Path(text).expanduser()
        return tomllib.loads(p.read_text(encoding="utf-8")), p.resolve().parent
    return tomllib.loads(text), None


__all__ = ["APIError", "Client"]
