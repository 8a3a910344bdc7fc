"""``/v1/datasets``: upload a run table (any layout the CLI reads), list, show, delete."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool

from mixopt._files import atomic_path
from mixopt.api.deps import CtxDep, OwnerDep
from mixopt.api.errors import ConflictError
from mixopt.api.schemas import DatasetChangesCreate, DatasetChangesPublic, DatasetPublic
from mixopt.api.store import new_id
from mixopt.api.tasks import DATASET_FILE, dataset_summary, load_dataset
from mixopt.errors import SchemaError

router = APIRouter(prefix="/datasets", tags=["datasets"])

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_CHUNK = 1 << 20


def _public(row: dict[str, Any]) -> DatasetPublic:
    return DatasetPublic(id=row["id"], name=row["name"], created_at=row["created_at"], **row["info"])


def _safe_name(name: str | None, fallback: str) -> str:
    base = _SAFE.sub("_", Path(name or fallback).name).strip("._")[:100]
    return base or fallback


async def _save(upload: UploadFile, folder: Path, fallback: str, extensions: tuple[str, ...]) -> tuple[Path, str]:
    """Copy an uploaded file into ``folder`` under a sanitised name with an allowed extension."""
    shown = upload.filename or fallback
    name = _safe_name(upload.filename, fallback)
    ext = Path(name).suffix.lower()
    if ext not in extensions:
        raise SchemaError(
            f"Cannot tell the file type of {shown!r} from its extension {ext or '(none)'!r}: upload one of {sorted(extensions)} "
            "(CSV, TSV, Parquet or JSON lines)."
        )
    path = folder / name
    if path.exists():
        path = folder / f"2-{name}"
    with atomic_path(path, what="upload") as tmp, tmp.open("wb") as out:  # a full disk leaves no partial file
        while chunk := await upload.read(_CHUNK):
            out.write(chunk)
    return path, shown


def _json_map(text: str | None, what: str, example: str) -> dict[str, Any] | None:
    if text is None or not text.strip():
        return None
    try:
        v = json.loads(text)
    except json.JSONDecodeError as e:
        raise SchemaError(f"{what} must be a JSON object like {example}, got {text[:80]!r} ({e.msg}).") from None
    if not isinstance(v, dict):
        raise SchemaError(f"{what} must be a JSON object like {example}, got {type(v).__name__}.")
    return v


def _positive(v: float | None, what: str) -> float | None:
    if v is not None and not (v > 0 and v < float("inf")):
        raise SchemaError(f"{what} must be a finite number > 0, got {v!r}.")
    return v


@router.post("", status_code=201, response_model=DatasetPublic, summary="Upload a run table")
async def upload_dataset(
    ctx: CtxDep,
    owner: OwnerDep,
    runs: Annotated[UploadFile, File(description="run table: CSV/TSV/Parquet/JSON lines (mixopt wide layout), or the loss/metrics file of a two-file RegMix/Olmix table")],
    ratios: Annotated[UploadFile | None, File(description="mixture-ratios file joined with runs on the run id (RegMix/Olmix)")] = None,
    benchmarks: Annotated[UploadFile | None, File(description="benchmark metadata (the <stem>.benchmarks.json sidecar)")] = None,
    format: Annotated[str, Form(description="auto, mixopt, regmix or olmix")] = "auto",  # noqa: A002
    params: Annotated[float | None, Form(description="parameter count N for files without a params column")] = None,
    tokens: Annotated[float | None, Form(description="training tokens D for files without a tokens column")] = None,
    chance: Annotated[str | None, Form(description='chance level per benchmark, JSON: {"mmlu": 0.25}')] = None,
    columns: Annotated[str | None, Form(description='column renames, JSON: {"file column": "canonical column"}')] = None,
    name: Annotated[str | None, Form(max_length=200, description="a name for the dataset (default: the file name)")] = None,
) -> DatasetPublic:
    """Validated like ``mixopt fit --runs``: every problem of the table is listed in one 422."""
    from mixopt.data.readers import EXTENSIONS, FORMATS, read_runs, sidecar_path, write_runs

    if format not in FORMATS:
        raise SchemaError(f"format must be one of {list(FORMATS)}, got {format!r}.")
    problems = []
    for v, what in ((params, "params"), (tokens, "tokens")):
        try:
            _positive(v, what)
        except SchemaError as e:
            problems.append(str(e))
    chance_map = columns_map = None
    try:
        chance_map = _json_map(chance, "chance", '{"mmlu": 0.25}')
    except SchemaError as e:
        problems.append(str(e))
    try:
        columns_map = _json_map(columns, "columns", '{"val_loss": "loss"}')
    except SchemaError as e:
        problems.append(str(e))
    if problems:
        raise SchemaError("Invalid upload options:", problems)
    tmp = ctx.upload_dir()
    try:
        exts = tuple(EXTENSIONS)
        runs_path, runs_name = await _save(runs, tmp, "runs.csv", exts)
        files = [runs_name]
        ratios_path = None
        if ratios is not None:
            ratios_path, shown = await _save(ratios, tmp, "ratios.csv", exts)
            files.append(shown)
        if benchmarks is not None:
            side, shown = await _save(benchmarks, tmp, "benchmarks.json", (".json",))
            side.rename(sidecar_path(runs_path))
            files.append(shown)

        def read() -> Any:
            return read_runs(runs_path, ratios=ratios_path, format=format, params=params, tokens=tokens,  # type: ignore[arg-type]
                             chance=chance_map, columns=columns_map)

        table = await run_in_threadpool(read)
        id_ = new_id("dataset")
        folder = ctx.dataset_dir(id_)
        try:
            await run_in_threadpool(write_runs, table, folder / DATASET_FILE)
            info = dataset_summary(table) | {"files": files}
            row = await run_in_threadpool(ctx.store.insert, "dataset", {
                "id": id_, "owner": owner, "name": (name or runs_name)[:200], "created_at": time.time(), "info": info})
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)  # no dataset folder without its record
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _public(row)


@router.get("", response_model=list[DatasetPublic], summary="List your datasets")
def list_datasets(ctx: CtxDep, owner: OwnerDep) -> list[DatasetPublic]:
    return [_public(r) for r in ctx.store.list("dataset", owner)]


@router.get("/{dataset_id}", response_model=DatasetPublic, summary="Show a dataset")
def get_dataset(dataset_id: str, ctx: CtxDep, owner: OwnerDep) -> DatasetPublic:
    return _public(ctx.store.get("dataset", dataset_id, owner))


@router.post("/{dataset_id}/changes", status_code=201, response_model=DatasetChangesPublic,
             summary="Map a dataset's runs into a new domain set")
def map_dataset(dataset_id: str, body: DatasetChangesCreate, ctx: CtxDep, owner: OwnerDep) -> DatasetChangesPublic:
    """The old runs of ``dataset_id`` mapped by ``changes`` (and the ``new`` dataset's runs added), stored
    as a new dataset with an ``evidence`` column; an unmappable change is a 422 saying why."""
    from mixopt.data.changes import DomainChanges, combine_runs, map_runs
    from mixopt.data.readers import write_runs

    if "runs" in body.changes:
        raise SchemaError("changes.runs: not accepted over the API: the old runs are the dataset in the path.")
    ctx.store.get("dataset", dataset_id, owner)
    try:
        changes = DomainChanges(**body.changes)
    except TypeError as e:
        raise SchemaError(f"Invalid changes: {e}. Allowed keys: added, removed, split, merged, refiltered, renamed, "
                          "removed_tolerance, on_removed, merge_tolerance.") from None
    old = load_dataset(ctx.dataset_dir(dataset_id))
    new = None
    if body.new is not None:
        ctx.store.get("dataset", body.new, owner)
        new = load_dataset(ctx.dataset_dir(body.new))
    mapped = map_runs(old, changes, new_runs=new)
    table = mapped.runs if new is None else combine_runs(mapped.runs, new)
    id_ = new_id("dataset")
    folder = ctx.dataset_dir(id_)
    try:
        write_runs(table, folder / DATASET_FILE)
        info = dataset_summary(table) | {"files": [f"{dataset_id} (mapped)"] + ([body.new] if body.new else [])}
        row = ctx.store.insert("dataset", {"id": id_, "owner": owner, "name": (body.name or f"{dataset_id} mapped")[:200],
                                           "created_at": time.time(), "info": info})
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return DatasetChangesPublic(**_public(row).model_dump(), mapping=mapped.summary())


@router.delete("/{dataset_id}", status_code=204, summary="Delete a dataset")
def delete_dataset(dataset_id: str, ctx: CtxDep, owner: OwnerDep) -> None:
    ctx.store.get("dataset", dataset_id, owner)
    users = ctx.store.referencing("dataset", dataset_id, owner)
    if users:
        raise ConflictError(f"Dataset {dataset_id!r} is in use by unfinished {users}; cancel them or wait, then delete it.")
    ctx.store.delete("dataset", dataset_id, owner)
    shutil.rmtree(ctx.dataset_dir(dataset_id), ignore_errors=True)
