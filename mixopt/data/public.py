"""Loaders for the public scaling-law data sets mixopt is measured on.

Each loader takes the folder that holds the data sets (``data_dir``; the layout of
``../shared/data`` described in its README and SCHEMA.md files) and returns a validated
:class:`~mixopt.data.table.RunTable`. Library functions take paths and never read the
environment; :func:`default_data_dir` gives the conventional location next to a source
checkout (``<repo>/../shared/data``).

Choices made here (documented per loader):

* **Gadre et al. 2024** (:func:`load_gadre`): ``params`` = total parameters (the
  authors' FLOPs column is exactly ``6·params·tokens``); overall ``loss`` = the C4
  validation loss (``loss_c4_val``), the loss the paper maps to downstream error; all
  eight validation losses also become ``loss:<set>``; ``acc_<task>`` -> ``score:<task>``
  with chance = the task's "Random baseline" from ``eval_metadata.csv`` (percent -> 0-1).
* **Gemstones** (:func:`load_gemstones`): ``params`` = active parameters (their FLOPs
  column is ``6·params_active·tokens``); overall ``loss`` = FineWeb-Edu validation loss
  (both FineWeb-Edu and DCLM become ``loss:<set>``); nine 0-1 accuracies with the chance
  levels of :data:`~mixopt.data.table.KNOWN_BENCHMARKS`.
* **RegMix** (:func:`load_regmix`): sizes per the repository's SCHEMA.md (non-embedding
  params): 1M proxies with 1001 x 512 x 2048 = 1.05e9 tokens, 60M models with 1e9
  tokens, TinyLlama-1.1B models with 25e9 tokens. Run ids are ``<split>/<index>``.
* **Olmix** (:func:`load_olmix`): every proxy is ~30M parameters at 5x Chinchilla
  (5 x 20 tokens/param = 3e9 tokens); metrics are bits-per-byte (lower is better, no
  chance floor).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import polars as pl

from mixopt.data.readers import read_frame, read_runs
from mixopt.data.table import LOSS, LOSS_PREFIX, PARAMS, RUN, SCORE_PREFIX, TOKENS, Benchmark, RunTable
from mixopt.errors import SchemaError

logger = logging.getLogger(__name__)

RegmixSplit = Literal["train_1m", "test_1m", "test_60m", "test_1b"]

#: RegMix splits: (mixture file, loss file, params N, tokens D).
REGMIX_SPLITS: dict[str, tuple[str, str, float, float]] = {
    "train_1m": ("train_mixture_1m.csv", "train_pile_loss_1m.csv", 1e6, 1001 * 512 * 2048),
    "test_1m": ("test_mixture_1m.csv", "test_pile_loss_1m.csv", 1e6, 1001 * 512 * 2048),
    "test_60m": ("test_mixture_60m.csv", "test_pile_loss_60m.csv", 60e6, 1e9),
    "test_1b": ("test_mixture_1B.csv", "test_pile_loss_1B.csv", 1.1e9, 25e9),
}

#: Olmix swarms: name -> file stem (``<stem>_ratios.csv`` / ``<stem>_metrics.csv``).
OLMIX_SWARMS: dict[str, str] = {
    "dclm": "dclm",
    "full_recomputation": "full_recomputation",
    "full_reuse_update_5_seed_0": "full_reuse_update_5_seed_0",
    "reuse": "full_reuse_update_5_seed_0",
}

#: Olmix proxy size: ~30M parameters trained to 5x Chinchilla (100 tokens/param).
OLMIX_PARAMS = 30e6
OLMIX_TOKENS = 5 * 20 * OLMIX_PARAMS

GADRE_DEFAULT_LOSS = "loss_c4_val"
GEMSTONES_DEFAULT_LOSS = "fineweb_edu"


def default_data_dir(repo_root: str | Path | None = None) -> Path:
    """The conventional data folder ``<repo_root>/../shared/data``.

    Args:
        repo_root: the source checkout; default: the one this module was imported from
            (meaningful for an editable install only).
    """
    root = Path(repo_root) if repo_root is not None else Path(__file__).resolve().parents[2]
    return root.parent / "shared" / "data"


def _dir(data_dir: str | Path | None, sub: str) -> Path:
    base = default_data_dir() if data_dir is None else Path(data_dir)
    d = base / sub if (base / sub).is_dir() else base
    if not d.is_dir():
        raise SchemaError(
            f"Data folder {str(base)!r} does not exist (looked for {str(base / sub)!r}). Pass data_dir= pointing to the "
            "folder that holds the public data sets (e.g. ../shared/data)."
        )
    return d


def load_gadre(data_dir: str | Path | None = None, *, loss: str = GADRE_DEFAULT_LOSS, dataset: str | None = None) -> RunTable:
    """Gadre et al. 2024 (104 final checkpoints, 11M-6.9B, C4/RedPajama/RefinedWeb).

    Args:
        data_dir: folder holding ``gadre-scaling/`` (or that folder itself).
        loss: which ``loss_*`` column becomes the overall ``loss`` (default C4 validation,
            the loss Gadre et al. relate to downstream error).
        dataset: keep only runs trained on this set (``c4_original``, ``rpj``,
            ``rw_original``); default all (the ``dataset`` column tells them apart).

    Returns:
        One checkpoint per run; columns ``run`` (the model name), ``params`` (total),
        ``tokens``, ``flops``, ``loss``, ``loss:<set>`` for the 8 validation sets,
        ``score:<task>`` for 46 tasks, and ``dataset``, ``model``, ``params_no_embed``,
        ``tokens_per_param``, ``chinchilla_multiplier``, ``err_avg46``.
    """
    d = _dir(data_dir, "gadre-scaling")
    raw = read_frame(d / "derived_gadre_models_flat.csv", string_columns=("name",), what="Gadre table")
    meta = read_frame(d / "eval_metadata.csv", what="Gadre eval metadata").filter(pl.col("Eval Task").is_not_null())
    loss_cols = [c for c in raw.columns if c.startswith("loss_")]
    if loss not in loss_cols:
        raise SchemaError(f"load_gadre: loss={loss!r} is not a loss column; choose one of {loss_cols}.")
    if dataset is not None:
        known = sorted(raw["dataset"].unique().to_list())
        if dataset not in known:
            raise SchemaError(f"load_gadre: dataset={dataset!r} is unknown; choose one of {known}.")
        raw = raw.filter(pl.col("dataset") == dataset)
    chance = dict(zip(meta["Eval Task"].to_list(), meta["Random baseline"].cast(pl.Float64).to_list(), strict=True))
    acc_cols = [c for c in raw.columns if c.startswith("acc_")]
    missing = [c[4:] for c in acc_cols if c[4:] not in chance]
    if missing:
        raise SchemaError(f"load_gadre: eval_metadata.csv has no random baseline for {missing}.")
    frame = raw.select(
        pl.col("name").alias(RUN),
        pl.col("params").cast(pl.Float64).alias(PARAMS),
        pl.col("tokens").cast(pl.Float64).alias(TOKENS),
        pl.col("flops_6ND").cast(pl.Float64).alias("flops"),
        pl.col(loss).alias(LOSS),
        *[pl.col(c).alias(LOSS_PREFIX + c[len("loss_"):]) for c in loss_cols],
        *[pl.col(c).alias(SCORE_PREFIX + c[4:]) for c in acc_cols],
        "dataset", "model", pl.col("params_no_embed").cast(pl.Float64), "tokens_per_param", "chinchilla_multiplier", "err_avg46",
    )
    bench = [Benchmark(name=c[4:], chance=chance[c[4:]] / 100.0, higher_is_better=True) for c in acc_cols]
    return RunTable(frame, bench)


def load_gemstones(data_dir: str | Path | None = None, *, loss: str = GEMSTONES_DEFAULT_LOSS) -> RunTable:
    """Gemstones (22 models, 48M-2B, 35 checkpoints each, 9 benchmarks).

    Args:
        data_dir: folder holding ``gemstones/`` (or that folder itself).
        loss: ``"fineweb_edu"`` or ``"dclm"``: which validation loss is the overall ``loss``.

    Returns:
        770 checkpoints; columns ``run``, ``params`` (active), ``tokens``, ``step``,
        ``flops``, ``loss``, ``loss:fineweb_edu``, ``loss:dclm``, ``score:<b>`` and
        ``width``, ``depth``, ``train_loss_wandb_hot``.
    """
    d = _dir(data_dir, "gemstones")
    raw = read_frame(d / "derived_gemstones_checkpoints.csv", string_columns=("run_name",), what="Gemstones table")
    losses = {"fineweb_edu": "val_loss_fineweb_edu", "dclm": "val_loss_dclm"}
    if loss not in losses:
        raise SchemaError(f"load_gemstones: loss={loss!r} is unknown; choose one of {sorted(losses)}.")
    fixed = {"run_name", "width", "depth", "params_active_precise", "tokens", "step", "train_loss_wandb_hot", "flops_6ND", *losses.values()}
    scores = [c for c in raw.columns if c not in fixed]
    frame = raw.select(
        pl.col("run_name").alias(RUN),
        pl.col("params_active_precise").cast(pl.Float64).alias(PARAMS),
        pl.col("tokens").cast(pl.Float64).alias(TOKENS),
        "step",
        pl.col("flops_6ND").cast(pl.Float64).alias("flops"),
        pl.col(losses[loss]).alias(LOSS),
        *[pl.col(v).alias(LOSS_PREFIX + k) for k, v in losses.items()],
        *[pl.col(c).alias(SCORE_PREFIX + c) for c in scores],
        "width", "depth", "train_loss_wandb_hot",
    )
    return RunTable(frame)


def load_regmix(data_dir: str | Path | None = None, split: RegmixSplit = "train_1m") -> RunTable:
    """RegMix (Pile domains): 17 mixture ratios and 13 domain validation losses per run.

    Args:
        data_dir: folder holding ``regmix/`` (or that folder itself).
        split: ``"train_1m"`` (512 runs), ``"test_1m"`` (256), ``"test_60m"`` (the same
            256 mixtures at 60M), ``"test_1b"`` (64 TinyLlama-1.1B runs).

    Returns:
        One checkpoint per run, run ids ``<split>/<index>``; ``mix:<domain>`` (17),
        ``loss:<domain>`` (13), no overall loss and no scores.
    """
    if split not in REGMIX_SPLITS:
        raise SchemaError(f"load_regmix: split={split!r} is unknown; choose one of {sorted(REGMIX_SPLITS)}.")
    d = _dir(data_dir, "regmix")
    mix_file, loss_file, n, t = REGMIX_SPLITS[split]
    table = read_runs(d / loss_file, ratios=d / mix_file, format="regmix", params=n, tokens=t)
    frame = table.frame.with_columns((pl.lit(split + "/") + pl.col(RUN)).alias(RUN))
    return RunTable(frame, table.benchmarks)


def load_olmix(
    data_dir: str | Path | None = None,
    swarm: str = "dclm",
    *,
    params: float = OLMIX_PARAMS,
    tokens: float = OLMIX_TOKENS,
) -> RunTable:
    """An Olmix swarm: many-domain mixtures at one scale, 110 task metrics in bits-per-byte.

    Args:
        data_dir: folder holding ``olmix/`` (or that folder itself).
        swarm: ``"dclm"`` (127 runs, 24 domains), ``"full_recomputation"`` (512 runs,
            64 domains) or ``"full_reuse_update_5_seed_0"`` (alias ``"reuse"``; 64 runs,
            22 domains).
        params: model size (default 30e6; the swarms' names say ``30m``).
        tokens: training tokens (default 5x Chinchilla = 3e9).

    Returns:
        One checkpoint per run; ``mix:<domain>``, ``score:<task>`` (BPB, lower is better,
        ``chance=None``).
    """
    if swarm not in OLMIX_SWARMS:
        raise SchemaError(f"load_olmix: swarm={swarm!r} is unknown; choose one of {sorted(OLMIX_SWARMS)}.")
    d = _dir(data_dir, "olmix")
    stem = OLMIX_SWARMS[swarm]
    return read_runs(d / f"{stem}_metrics.csv", ratios=d / f"{stem}_ratios.csv", format="olmix", params=params, tokens=tokens)


__all__ = [
    "GADRE_DEFAULT_LOSS",
    "GEMSTONES_DEFAULT_LOSS",
    "OLMIX_PARAMS",
    "OLMIX_SWARMS",
    "OLMIX_TOKENS",
    "REGMIX_SPLITS",
    "default_data_dir",
    "load_gadre",
    "load_gemstones",
    "load_olmix",
    "load_regmix",
]
