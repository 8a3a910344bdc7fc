"""FLP-M stage 2: small two-layer networks from domain losses to benchmark scores.

The paper maps the vector of per-domain validation losses to a benchmark score with a
two-layer network (Linear -> nonlinearity -> Linear) trained on the *emerged* checkpoints
of the sampling runs. It leaves every training choice open; mixopt's choices, each kept
small enough to read whole:

* **One net per benchmark** (not one multi-output net): each benchmark has its own emerged
  subset of checkpoints, so a shared output layer would need masked losses and would let a
  benchmark with many points shape the features of one with few. All nets of all
  benchmarks and all ensemble members are trained *together* as one batched model (a
  ``(M, m, h)`` weight tensor, ``M = benchmarks x members``); Adam is element-wise, so this
  is exactly ``M`` independent trainings, done in one loop.
* **Input standardisation** per benchmark on its emerged rows: domain losses span a narrow
  range (a few tenths of a nat), so raw inputs would make the first layer ill-conditioned.
  Targets are standardised too. Both are folded into the exported weights.
* **Width 16, ReLU** by default: a ReLU net extrapolates *linearly* beyond the training
  losses (the regime of a larger target model, whose losses are lower than any sampling
  run's) and is the cheapest activation for numpy batch prediction (width 16 keeps the
  5-domain, 5-benchmark ensemble above a million predictions per second on two cores).
  ``tanh`` (saturating) and ``softplus`` (smooth ReLU) are available.
* **Output link** (``link="auto"``): for a benchmark with a chance level the net's output
  is a *logit*, ``score = chance + span·sigmoid(net(L))`` with a learned ceiling ``span``;
  otherwise (no floor, e.g. bits-per-byte) the output is the score itself. The paper's
  network ends in a Linear layer; the link adds what the reviewers ask of FLP's stage 2
  (scores bend near emergence and saturate) and is what makes extrapolation to 10x the
  sampling compute work on synthetic worlds (median relative error 1-5 % noise-free,
  against 11-35 % for a linear read-out). ``link="linear"`` is the paper's literal net.
* **Full-batch Adam** (lr 1e-2) with an L2 penalty on the weights (not biases), at most
  ``max_epochs`` steps, **early stopping on held-out runs** (a seeded ``val_fraction`` of
  the runs per member; the best state on them is kept). Full batch is fine: a benchmark has
  at most a few thousand emerged checkpoints. ``stop="member"`` (FLP-M's default): each
  member stops once it has gone ``patience`` steps without a held-out improvement and
  leaves the batch, so later steps cost only the members still training (FLP-M ``auto``'s
  two folds of the 1,000-run table of ``benchmarks/bench_scale.py``, 100 checkpoints a run: 25 members each, trained
  213-1,500 steps, mean 476, where training them until all had stalled took 1,500 and 853
  steps); ``stop="all"`` (the paper preset's) trains every member until all of
  them have stalled at once, and a stalled member whose held-out loss improves again
  later keeps that later state.
* **Ensemble** of ``n_members`` nets per benchmark, each with its own initialisation, its
  own held-out runs, and a bootstrap-by-run resample of the rest (bagging). Their spread is
  the stage-2 model uncertainty; the pooled held-out residual sd is the checkpoint noise.
* **Determinism**: initial weights come from a ``torch.Generator`` seeded from ``seed``,
  split and resamples from ``np.random.default_rng``; nothing touches a global RNG. Training
  runs single-threaded (``torch.set_num_threads(1)`` for the duration of ``fit``, then
  restored): the nets are tiny, threads only add overhead, and a fixed thread count makes
  results independent of the machine's core count.

Prediction never calls torch: the trained weights (standardisation folded in) are exported
as float64 numpy arrays and evaluated with matmuls, one member-net at a time on blocks of
rows (the hidden buffer stays in cache), blocks spread over a few threads.

Shapes: ``n`` rows, ``m`` input domains, ``b`` benchmarks, ``E`` members, ``h`` hidden units.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Self

import numpy as np

from mixopt.errors import ConfigError, NotFittedError, SchemaError

logger = logging.getLogger(__name__)

Activation = Literal["relu", "tanh", "softplus", "identity"]
ACTIVATIONS: tuple[str, ...] = ("relu", "tanh", "softplus", "identity")
LINKS: tuple[str, ...] = ("auto", "linear", "sigmoid")
#: early-stopping rules of :class:`NetConfig` (``stop``)
STOPS: tuple[str, ...] = ("member", "all")

#: rows per block in numpy prediction (the hidden buffer of one member-net stays in cache)
PREDICT_CHUNK = 4096
#: threads for large batch predictions (numpy releases the GIL in matmuls and ufuncs)
PREDICT_THREADS = max(1, min(4, os.cpu_count() or 1))
#: relative improvement of the held-out loss that resets early-stopping patience
_MIN_REL_IMPROVEMENT = 1e-4
#: L2 pull of a sigmoid link's log-span towards its starting value (weakly identified
#: while scores are far below their ceiling)
_SPAN_PENALTY = 1e-3


@dataclass(frozen=True, kw_only=True)
class NetConfig:
    """Settings of the stage-2 network ensemble (JSON-serialisable).

    Attributes:
        hidden: hidden units per net (16-64 is plenty for a few hundred points).
        activation: ``"relu"`` (linear extrapolation, cheapest), ``"tanh"`` or ``"softplus"``.
        n_members: ensemble members per benchmark (different init, held-out runs, bootstrap).
        max_epochs: maximum full-batch Adam steps.
        lr: Adam learning rate (on standardised inputs/targets).
        weight_decay: L2 penalty on the weights (not biases), added to the mean squared error.
        val_fraction: fraction of runs held out per member for early stopping (by run).
        patience: stop a member after this many steps without a held-out improvement.
        bootstrap: resample the non-held-out runs with replacement per member (bagging).
        link: output link. ``"linear"``: the net's output is the score (the paper's
            Linear -> act -> Linear). ``"sigmoid"``: the net's output is a logit,
            ``score = chance + span·sigmoid(output)`` with a learned ``span`` (the ceiling
            above chance; starts at ``1 - chance`` for 0-1 scores) -- scores are bounded
            and rise like a sigmoid from chance as losses fall, which extrapolates to larger
            models far better than a linear read-out (see ``tests``/the closing report).
            ``"auto"`` (default): sigmoid for benchmarks with a chance level, linear for
            those without (e.g. bits-per-byte).
        stop: early stopping. ``"member"``: a member (with held-out runs) stops after
            ``patience`` steps without improvement and leaves the batch; ``"all"``: every
            member trains until all have gone ``patience`` steps without improvement at
            once. Members without held-out runs train for ``max_epochs`` either way.
        seed: seed of initialisation, splits and resamples.
    """

    hidden: int = 16
    activation: str = "relu"
    n_members: int = 5
    max_epochs: int = 1500
    lr: float = 1e-2
    weight_decay: float = 1e-3
    val_fraction: float = 0.2
    patience: int = 150
    bootstrap: bool = True
    link: str = "auto"
    stop: str = "member"
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.hidden, (int, np.integer)) or not 1 <= self.hidden <= 4096:
            problems.append(f"hidden must be an integer in [1, 4096], got {self.hidden!r}")
        if self.activation not in ACTIVATIONS:
            problems.append(f"activation must be one of {list(ACTIVATIONS)}, got {self.activation!r}")
        if not isinstance(self.n_members, (int, np.integer)) or self.n_members < 1:
            problems.append(f"n_members must be an integer >= 1, got {self.n_members!r}")
        if not isinstance(self.max_epochs, (int, np.integer)) or self.max_epochs < 1:
            problems.append(f"max_epochs must be an integer >= 1, got {self.max_epochs!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            problems.append(f"lr must be finite and > 0, got {self.lr!r}")
        if not (isinstance(self.weight_decay, (int, float)) and math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            problems.append(f"weight_decay must be finite and >= 0, got {self.weight_decay!r}")
        if not (isinstance(self.val_fraction, (int, float)) and 0 <= self.val_fraction < 1):
            problems.append(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if not isinstance(self.patience, (int, np.integer)) or self.patience < 1:
            problems.append(f"patience must be an integer >= 1, got {self.patience!r}")
        if self.link not in LINKS:
            problems.append(f"link must be one of {list(LINKS)}, got {self.link!r}")
        if self.stop not in STOPS:
            problems.append(f"stop must be one of {list(STOPS)}, got {self.stop!r}")
        if not isinstance(self.seed, (int, np.integer)):
            problems.append(f"seed must be an integer, got {self.seed!r}")
        if problems:
            raise ConfigError("Invalid stage-2 network settings: " + "; ".join(problems) + ".")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _act_numpy(name: str, a: np.ndarray) -> np.ndarray:
    """Apply an activation in place to ``a`` and return it."""
    if name == "relu":
        return np.maximum(a, 0.0, out=a)
    if name == "tanh":
        return np.tanh(a, out=a)
    if name == "softplus":
        return np.logaddexp(0.0, a, out=a)
    if name == "identity":
        return a
    raise ConfigError(f"Unknown activation {name!r}; choose one of {list(ACTIVATIONS)}.")


def _check_fit_inputs(X: np.ndarray, Y: np.ndarray, mask: np.ndarray, groups: Sequence[Any] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Coerce and validate the stage-2 training arrays; raise one SchemaError listing every problem."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    groups = np.asarray(groups)
    problems = []
    if X.ndim != 2:
        raise SchemaError(f"X must be (n, m), got shape {X.shape}.")
    n = X.shape[0]
    if Y.ndim != 2 or Y.shape[0] != n or mask.shape != Y.shape or groups.shape != (n,):
        raise SchemaError(f"Y, mask must be (n, b) and groups (n,) with n = {n}; got Y {Y.shape}, mask {mask.shape}, groups {groups.shape}.")
    if not np.all(np.isfinite(X)):
        problems.append("X (domain losses) contains NaN/inf")
    counts = mask.sum(axis=0)
    if Y.shape[1] and counts.min() < 2:
        problems.append(f"every benchmark needs >= 2 training rows, got counts {counts.tolist()}")
    if np.any(mask & ~np.isfinite(Y)):
        problems.append("Y is NaN/inf on a row selected by mask")
    if problems:
        raise SchemaError("Cannot train the stage-2 networks:", problems)
    return X, Y, mask, groups


def _benchmark_rows(
    X: np.ndarray,
    Y: np.ndarray,
    mask: np.ndarray,
    groups: np.ndarray,
    links: np.ndarray,
    chance: Sequence[float | None],
    higher_is_better: Sequence[bool],
) -> dict[str, Any]:
    """Per benchmark: its own rows (padded to the largest count), standardisation and link constants."""
    m = X.shape[1]
    b = Y.shape[1]
    n_max = int(mask.sum(axis=0).max())
    mu = np.zeros((b, m))
    sd = np.ones((b, m))
    ymu = np.zeros(b)
    ysd = np.ones(b)
    floor = np.zeros(b)
    sign = np.ones(b)
    span0 = np.ones(b)
    Xb = np.zeros((b, n_max, m))
    Yb = np.zeros((b, n_max))
    row_groups: list[np.ndarray] = []
    for j in range(b):
        rows = np.flatnonzero(mask[:, j])
        xj, yj = X[rows], Y[rows, j]
        mu[j] = xj.mean(axis=0)
        s = xj.std(axis=0)
        sd[j] = np.where(s > 1e-12, s, 1.0)
        ymu[j] = yj.mean()
        ys = yj.std()
        ysd[j] = ys if ys > 1e-12 else max(abs(ymu[j]), 1.0) * 1e-3
        if links[j] == 1:
            floor[j] = float(chance[j])  # type: ignore[arg-type]
            sign[j] = 1.0 if higher_is_better[j] else -1.0
            gap = sign[j] * (yj - floor[j])
            bounded = higher_is_better[j] and floor[j] < 1.0 and yj.max() <= 1.0
            span0[j] = (1.0 - floor[j]) if bounded else max(1.5 * float(gap.max()), 1e-6)
        Xb[j, : rows.size] = (xj - mu[j]) / sd[j]
        Yb[j, : rows.size] = yj
        row_groups.append(groups[rows])
    return {"mu": mu, "sd": sd, "ymu": ymu, "ysd": ysd, "floor": floor, "sign": sign, "span0": span0, "Xb": Xb, "Yb": Yb, "groups": row_groups}


def _member_weights(row_groups: Sequence[np.ndarray], n_max: int, E: int, cfg: NetConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-member row weights ``(b·E, n_max)``: training (bootstrap counts by run) and held-out (0/1)."""
    b = len(row_groups)
    M = b * E
    w_train = np.zeros((M, n_max))
    w_val = np.zeros((M, n_max))
    rng = np.random.default_rng(np.random.SeedSequence([int(cfg.seed), 2]))
    for j in range(b):
        labels, inv = np.unique(row_groups[j], return_inverse=True)
        nj = inv.size
        G = labels.shape[0]
        n_val = min(max(int(round(cfg.val_fraction * G)), 1), G - 2) if (G >= 3 and cfg.val_fraction > 0) else 0
        for e in range(E):
            i = j * E + e
            perm = rng.permutation(G)
            val_g, tr_g = perm[:n_val], perm[n_val:]
            if cfg.bootstrap and tr_g.size > 1:
                cnt_g = np.bincount(rng.choice(tr_g, size=tr_g.size, replace=True), minlength=G).astype(np.float64)
            else:
                cnt_g = np.zeros(G)
                cnt_g[tr_g] = 1.0
            is_val = np.zeros(G)
            is_val[val_g] = 1.0
            w_train[i, :nj] = cnt_g[inv]
            w_val[i, :nj] = is_val[inv]
    return w_train, w_val


class ScoreNetEnsemble:
    """An ensemble of two-layer nets per benchmark: domain losses ``(n, m)`` -> scores ``(n, b)``.

    sklearn-style: ``__init__`` stores the config; :meth:`fit` trains and returns ``self``.

    Args:
        config: the :class:`NetConfig`.

    Attributes (after fit; float64 numpy, standardisation folded in):
        W1_: ``(b, E, m, h)`` first-layer weights (input = raw losses, nats/token).
        b1_: ``(b, E, h)`` first-layer biases.
        w2_: ``(b, E, h)`` output weights; the output ``g`` is the score itself (linear
            link) or a logit (sigmoid link).
        b2_: ``(b, E)`` output biases.
        link_: ``(b,)`` 0 = linear, 1 = sigmoid: ``score = floor_ + sign_·span_·sigmoid(g)``.
        floor_: ``(b,)`` chance level of sigmoid-link benchmarks (0 for linear ones).
        sign_: ``(b,)`` +1 (higher is better) or -1.
        span_: ``(b, E)`` learned ceiling above the floor per member (1 for linear links).
        noise_sd_: ``(b,)`` residual sd of held-out checkpoints (score units): the
            checkpoint-level noise plus the misfit of one member.
        epochs_: ``(b, E)`` step at which each member's kept state was reached.
        steps_: ``(b, E)`` steps each member trained (``stop="member"``: where it stopped);
            set by :meth:`fit` only (not part of :meth:`arrays`).
        n_rows_: ``(b,)`` training rows per benchmark.
        input_range_: ``(2, m)`` min/max of the training losses over all benchmarks.
    """

    def __init__(self, config: NetConfig | None = None) -> None:
        self.config = config or NetConfig()

    # -- training ----------------------------------------------------------------------------
    def fit(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        mask: np.ndarray,
        groups: Sequence[Any] | np.ndarray,
        *,
        chance: Sequence[float | None] | None = None,
        higher_is_better: Sequence[bool] | None = None,
    ) -> Self:
        """Train ``E`` nets per benchmark column.

        Args:
            X: ``(n, m)`` inputs (per-domain losses, nats/token), finite.
            Y: ``(n, b)`` targets (scores); only entries where ``mask`` is True are used
                (may be NaN elsewhere).
            mask: ``(n, b)`` bool, the training rows of each benchmark (e.g. its emerged
                checkpoints).
                Every column needs at least 2 rows.
            groups: ``(n,)`` run id of each row (held-out split and bootstrap are by run).
            chance: ``(b,)`` chance level per benchmark (None: no floor), for the link.
            higher_is_better: ``(b,)`` direction per benchmark (default all True).

        Raises:
            SchemaError: shapes disagree, non-finite inputs/targets, or a column with < 2 rows.
        """
        import torch

        cfg = self.config
        X, Y, mask, groups = _check_fit_inputs(X, Y, mask, groups)
        n, m = X.shape
        b = Y.shape[1]
        higher_is_better = [True] * b if higher_is_better is None else [bool(v) for v in higher_is_better]
        chance = [None] * b if chance is None else [None if c is None else float(c) for c in chance]
        E, h = int(cfg.n_members), int(cfg.hidden)
        counts = mask.sum(axis=0)
        self.n_rows_ = counts.astype(np.int64)
        self.input_range_ = np.stack([X.min(axis=0), X.max(axis=0)]) if n else np.zeros((2, m))
        links = self._resolve_links(b, cfg.link, chance, higher_is_better)
        if b == 0:
            self._set_empty(m)
            return self
        rows = _benchmark_rows(X, Y, mask, groups, links, chance, higher_is_better)
        w_train, w_val = _member_weights(rows["groups"], int(counts.max()), E, cfg)
        M = b * E
        has_val = w_val.sum(axis=1) > 0
        if not has_val.all():
            logger.info(
                "stage 2: %d of %d nets have fewer than 3 runs to split; they train for max_epochs=%d without early stopping.",
                int((~has_val).sum()),
                M,
                cfg.max_epochs,
            )
        rep = lambda a: np.repeat(a, E, axis=0)  # noqa: E731  (benchmark -> member rows)
        prev_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            trained = self._train_torch(
                rep(rows["Xb"]),
                rep(rows["Yb"]),
                w_train,
                w_val,
                has_val,
                rep(links),
                rep(rows["floor"]),
                rep(rows["sign"]),
                rep(rows["span0"]),
                rep(rows["ymu"]),
                rep(rows["ysd"]),
                m,
                h,
                M,
            )
        finally:
            torch.set_num_threads(prev_threads)
        self._fold_weights(trained, rows, links, b, E, m, h)
        self._build_fast()
        return self

    def _fold_weights(self, trained: tuple[np.ndarray, ...], rows: dict[str, Any], links: np.ndarray, b: int, E: int, m: int, h: int) -> None:
        """Fold input standardisation (and, for linear links, target standardisation) into float64 weights."""
        W1, B1, W2, B2, log_span, epochs, val_res, steps = trained
        mu, sd, ymu, ysd = rows["mu"], rows["sd"], rows["ymu"], rows["ysd"]
        W1 = W1.reshape(b, E, m, h)
        B1 = B1.reshape(b, E, h)
        W2 = W2.reshape(b, E, h)
        B2 = B2.reshape(b, E)
        lin = (links == 0)[:, None]
        self.W1_ = W1 / sd[:, None, :, None]
        self.b1_ = B1 - np.einsum("bm,bemh->beh", mu / sd, W1)
        self.w2_ = np.where(lin[..., None], W2 * ysd[:, None, None], W2)
        self.b2_ = np.where(lin, B2 * ysd[:, None] + ymu[:, None], B2)
        self.link_ = links.astype(np.int64)
        self.floor_ = rows["floor"]
        self.sign_ = rows["sign"]
        self.span_ = np.where(lin, 1.0, np.exp(log_span.reshape(b, E)))
        self.epochs_ = epochs.reshape(b, E)
        self.steps_ = steps.reshape(b, E)
        # pooled held-out residual sd (score units), falling back to training residuals
        res2 = val_res.reshape(b, E, 2)  # (sum of squared standardised residuals, count)
        self.noise_sd_ = np.sqrt(res2[..., 0].sum(axis=1) / np.maximum(res2[..., 1].sum(axis=1), 1.0)) * ysd

    @staticmethod
    def _resolve_links(b: int, link: str, chance: Sequence[float | None] | None, higher_is_better: Sequence[bool] | None) -> np.ndarray:
        """Per benchmark 0 (linear) or 1 (sigmoid); ``auto`` = sigmoid where a chance level is known."""
        if link not in LINKS:
            raise ConfigError(f"link must be one of {list(LINKS)}, got {link!r}.")
        chance = list(chance) if chance is not None else [None] * b
        if len(chance) != b or (higher_is_better is not None and len(higher_is_better) != b):
            raise SchemaError(f"chance and higher_is_better need one entry per benchmark ({b}).")
        out = np.zeros(b, dtype=np.int64)
        for j in range(b):
            has_floor = chance[j] is not None and math.isfinite(float(chance[j]))  # type: ignore[arg-type]
            if link == "sigmoid" and not has_floor:
                raise ConfigError(f"link='sigmoid' needs a chance level for every benchmark; benchmark #{j} has none. Use link='auto'.")
            out[j] = 1 if (link == "sigmoid" or (link == "auto" and has_floor)) else 0
        return out

    def _train_torch(
        self,
        Xs: np.ndarray,
        Ys: np.ndarray,
        w_train: np.ndarray,
        w_val: np.ndarray,
        has_val: np.ndarray,
        links: np.ndarray,
        floor: np.ndarray,
        sign: np.ndarray,
        span0: np.ndarray,
        ymu: np.ndarray,
        ysd: np.ndarray,
        m: int,
        h: int,
        M: int,
    ) -> tuple[np.ndarray, ...]:
        """Full-batch Adam on all ``M`` nets at once; returns the kept weights (float64 numpy)."""
        import torch

        cfg = self.config
        dt = torch.float32
        gen = torch.Generator().manual_seed(int(cfg.seed))
        lim1, lim2 = 1.0 / math.sqrt(m), 1.0 / math.sqrt(h)
        sig = torch.from_numpy(links == 1)
        # the sigmoid link starts at the logit of the mean normalised score
        p0 = np.clip(sign * (ymu - floor) / span0, 0.02, 0.98)
        b2_init = np.where(links == 1, np.log(p0 / (1 - p0)), 0.0)
        W1 = ((torch.rand((M, m, h), generator=gen, dtype=dt) * 2 - 1) * lim1).requires_grad_()
        B1 = ((torch.rand((M, 1, h), generator=gen, dtype=dt) * 2 - 1) * lim1).requires_grad_()
        W2 = ((torch.rand((M, h, 1), generator=gen, dtype=dt) * 2 - 1) * lim2).requires_grad_()
        B2 = (torch.from_numpy(b2_init).to(dt)[:, None] + (torch.rand((M, 1), generator=gen, dtype=dt) * 2 - 1) * lim2).requires_grad_()
        ls0 = torch.from_numpy(np.log(span0)).to(dt)
        LS = ls0.clone().requires_grad_()
        params = [W1, B1, W2, B2, LS]
        x = torch.from_numpy(Xs).to(dt)
        y = torch.from_numpy(Ys).to(dt)
        wt = torch.from_numpy(w_train).to(dt)
        wv = torch.from_numpy(w_val).to(dt)
        wt_sum = wt.sum(dim=1).clamp_min(1e-12)
        wv_sum = wv.sum(dim=1).clamp_min(1e-12)
        hv = torch.from_numpy(has_val)
        fl = torch.from_numpy(floor).to(dt)[:, None]
        sg = torch.from_numpy(sign).to(dt)[:, None]
        mu_t = torch.from_numpy(ymu).to(dt)[:, None]
        sd_t = torch.from_numpy(ysd).to(dt)[:, None]
        act = {"relu": torch.relu, "tanh": torch.tanh, "softplus": torch.nn.functional.softplus, "identity": lambda t: t}[cfg.activation]
        opt = torch.optim.Adam(params, lr=float(cfg.lr))
        wd = float(cfg.weight_decay)

        def forward(w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor, ls: torch.Tensor, d: dict[str, torch.Tensor]) -> torch.Tensor:
            """Predicted scores in standardised units, (k, n_max), of the k members in ``d``."""
            g = torch.bmm(act(torch.baddbmm(b1, d["x"], w1)), w2)[..., 0] + b2
            s = torch.where(d["sig"][:, None], d["fl"] + d["sg"] * torch.exp(ls)[:, None] * torch.sigmoid(g), g * d["sd"] + d["mu"])
            return (s - d["mu"]) / d["sd"]

        ys = (y - mu_t) / sd_t
        data = {"x": x, "ys": ys, "wt": wt, "wv": wv, "wt_sum": wt_sum, "wv_sum": wv_sum, "hv": hv, "sig": sig, "fl": fl, "sg": sg, "sd": sd_t, "mu": mu_t, "ls0": ls0}
        best = [p.detach().clone() for p in params]
        best_val = torch.full((M,), math.inf, dtype=dt)
        best_epoch = torch.zeros(M, dtype=torch.int64)
        since = torch.zeros(M, dtype=torch.int64)
        per_member = cfg.stop == "member"
        training = torch.ones(M, dtype=torch.bool)  # "member": members not yet stopped
        steps = torch.full((M,), -1, dtype=torch.int64)  # the step each member stopped at (-1: trained to the end)
        idx: torch.Tensor | None = None  # their indices while some have stopped (None: all train)
        d = data
        for epoch in range(int(cfg.max_epochs) + 1):
            opt.zero_grad(set_to_none=True)
            if idx is None:
                cur = params
            else:  # the members still training, gathered (the gradient flows back to their rows only)
                cur = [W1[idx], B1[idx], W2[idx], B2[idx], LS[idx]]
            d_step = d
            err2 = (forward(*cur, d_step) - d_step["ys"]) ** 2
            with torch.no_grad():  # held-out loss of the current state (before this step)
                val_k = torch.where(d["hv"], (err2 * d["wv"]).sum(dim=1) / d["wv_sum"], (err2 * d["wt"]).sum(dim=1) / d["wt_sum"])
                if idx is None:
                    val = val_k
                else:
                    val = torch.full((M,), math.inf, dtype=dt)
                    val[idx] = val_k
                improved = val < best_val * (1 - _MIN_REL_IMPROVEMENT)
                if bool(improved.any()):
                    for p, bp in zip(params, best, strict=True):
                        sel = improved.view(-1, *([1] * (p.dim() - 1)))
                        bp.copy_(torch.where(sel, p, bp))
                    best_val = torch.where(improved, val, best_val)
                    best_epoch = torch.where(improved, torch.full_like(best_epoch, epoch), best_epoch)
                since = torch.where(improved, torch.zeros_like(since), since + 1)
                stalled = since >= int(cfg.patience)
                if per_member:
                    done = training & hv & stalled
                    if bool(done.any()):
                        steps[done] = epoch
                        training &= ~done
                        if not bool(training.any()):
                            break
                        idx = torch.nonzero(training)[:, 0]
                        d = {k: v[idx] for k, v in data.items()}
                elif bool(hv.all()) and bool(stalled.all()):
                    break
            if epoch == int(cfg.max_epochs):
                break
            w1, _, w2, _, ls = cur
            # this step's members (a member stopped just now takes this last step, which its kept state ignores)
            per = (err2 * d_step["wt"]).sum(dim=1) / d_step["wt_sum"]
            loss = per.sum() + wd * ((w1**2).sum() + (w2**2).sum()) + _SPAN_PENALTY * ((ls - d_step["ls0"]) ** 2).sum()
            loss.backward()
            opt.step()
        steps = torch.where(steps < 0, torch.full_like(steps, epoch), steps)
        # held-out residuals of the kept states
        with torch.no_grad():
            for p, bp in zip(params, best, strict=True):
                p.copy_(bp)
            err2 = (forward(*params, data) - ys) ** 2
            use = torch.where(hv[:, None], wv, (wt > 0).to(dt))
            ss = (err2 * use).sum(dim=1)
            cnt = use.sum(dim=1)
        val_res = torch.stack([ss, cnt], dim=1).double().numpy()
        logger.debug("stage 2: trained %d nets, kept states at steps %s", M, best_epoch.tolist())
        f64 = lambda t: t.detach().double().numpy().copy()  # noqa: E731
        return (f64(W1), f64(B1)[:, 0, :], f64(W2)[..., 0], f64(B2)[:, 0], f64(LS), best_epoch.numpy().copy(), val_res, steps.numpy().copy())

    def _set_empty(self, m: int) -> None:
        h, E = int(self.config.hidden), int(self.config.n_members)
        self.W1_ = np.zeros((0, E, m, h))
        self.b1_ = np.zeros((0, E, h))
        self.w2_ = np.zeros((0, E, h))
        self.b2_ = np.zeros((0, E))
        self.link_ = np.zeros(0, dtype=np.int64)
        self.floor_ = np.zeros(0)
        self.sign_ = np.zeros(0)
        self.span_ = np.zeros((0, E))
        self.noise_sd_ = np.zeros(0)
        self.epochs_ = np.zeros((0, E), dtype=np.int64)
        self.steps_ = np.zeros((0, E), dtype=np.int64)
        self._build_fast()

    # -- export / import ---------------------------------------------------------------------
    def _build_fast(self) -> None:
        """Lay every member of every benchmark side by side as one wide two-layer net.

        Column ``j·E + e`` of the output layer is member ``e`` of benchmark ``j``; the
        link is applied per column and members are averaged afterwards.
        """
        b, E, m, h = self.W1_.shape
        self._W1aug = np.ascontiguousarray(np.concatenate([self.W1_.reshape(b * E, m, h), self.b1_.reshape(b * E, 1, h)], axis=1))
        self._w2flat = np.ascontiguousarray(self.w2_.reshape(b * E, h))
        self._b2cat = self.b2_.reshape(b * E).copy()
        self._sig_cols = np.repeat(self.link_ == 1, E)
        self._floor_cols = np.repeat(self.floor_, E)
        self._scale_cols = (self.sign_[:, None] * self.span_).reshape(b * E)
        # one member: all benchmarks side by side
        self._Wmem, self._bmem, self._W2mem = [], [], []
        for e in range(E):
            self._Wmem.append(np.ascontiguousarray(self.W1_[:, e].transpose(1, 0, 2).reshape(m, b * h)))
            self._bmem.append(self.b1_[:, e].reshape(b * h).copy())
            w = np.zeros((b, h, b))
            w[np.arange(b), :, np.arange(b)] = self.w2_[:, e]
            self._W2mem.append(w.reshape(b * h, b))

    def arrays(self) -> dict[str, np.ndarray]:
        """Fitted weights as named float arrays (for model files)."""
        self._check()
        return {
            "W1": self.W1_,
            "b1": self.b1_,
            "w2": self.w2_,
            "b2": self.b2_,
            "link": self.link_.astype(np.float64),
            "floor": self.floor_,
            "sign": self.sign_,
            "span": self.span_,
            "noise_sd": self.noise_sd_,
            "epochs": self.epochs_.astype(np.float64),
            "n_rows": self.n_rows_.astype(np.float64),
            "input_range": self.input_range_,
        }

    @classmethod
    def from_arrays(cls, config: NetConfig, arrays: Mapping[str, np.ndarray]) -> ScoreNetEnsemble:
        """Rebuild a fitted ensemble from :meth:`arrays` (identical predictions)."""
        net = cls(config)
        f = lambda k: np.asarray(arrays[k], dtype=np.float64)  # noqa: E731
        net.W1_, net.b1_, net.w2_, net.b2_ = f("W1"), f("b1"), f("w2"), f("b2")
        net.link_ = f("link").astype(np.int64)
        net.floor_, net.sign_, net.span_ = f("floor"), f("sign"), f("span")
        net.noise_sd_ = f("noise_sd")
        net.epochs_ = f("epochs").astype(np.int64)
        net.n_rows_ = f("n_rows").astype(np.int64)
        net.input_range_ = f("input_range")
        b, E, m, h = net.W1_.shape
        shapes_ok = (
            (E, h) == (config.n_members, config.hidden)
            and net.b1_.shape == (b, E, h)
            and net.w2_.shape == (b, E, h)
            and net.b2_.shape == (b, E)
            and net.span_.shape == (b, E)
            and net.link_.shape == (b,)
        )
        if not shapes_ok:
            raise SchemaError(
                f"Network arrays have shapes W1 {net.W1_.shape}, b1 {net.b1_.shape}, w2 {net.w2_.shape}, b2 {net.b2_.shape}, inconsistent with n_members={config.n_members}, hidden={config.hidden}."
            )
        net._build_fast()
        return net

    # -- prediction --------------------------------------------------------------------------
    def _check(self) -> None:
        if not hasattr(self, "W1_"):
            raise NotFittedError("This ScoreNetEnsemble is not fitted yet; call fit(X, Y, mask, groups) first.")

    @property
    def n_benchmarks(self) -> int:
        self._check()
        return int(self.W1_.shape[0])

    @property
    def n_members(self) -> int:
        self._check()
        return int(self.W1_.shape[1])

    @property
    def n_inputs(self) -> int:
        self._check()
        return int(self.W1_.shape[2])

    def _as_x(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_inputs:
            raise SchemaError(f"X must be (n, {self.n_inputs}) domain losses, got shape {X.shape}.")
        return X

    def _hidden(self, X: np.ndarray, W: np.ndarray, bias: np.ndarray) -> np.ndarray:
        hid = X @ W
        hid += bias
        return _act_numpy(self.config.activation, hid)

    def predict_mean(self, X: np.ndarray) -> np.ndarray:
        """Ensemble-mean scores ``(n, b)`` at domain losses ``X (n, m)`` (the fast path).

        Rows go in blocks of :data:`PREDICT_CHUNK` (spread over :data:`PREDICT_THREADS`
        threads; numpy releases the GIL), and within a block one member-net at a time (an
        ``(rows, h)`` hidden buffer that stays in cache). Each row's result depends on that
        row only, whatever the batch or the thread count.
        """
        self._check()
        X = self._as_x(X)
        n, b = X.shape[0], self.W1_.shape[0]
        out = np.empty((n, b))
        if b == 0 or n == 0:
            return out
        starts = range(0, n, PREDICT_CHUNK)
        if PREDICT_THREADS > 1 and n > PREDICT_CHUNK:
            from concurrent.futures import ThreadPoolExecutor

            def work(s: int) -> None:
                out[s : s + PREDICT_CHUNK] = self._mean_block(X[s : s + PREDICT_CHUNK])

            with ThreadPoolExecutor(max_workers=PREDICT_THREADS) as pool:
                list(pool.map(work, starts))
        else:
            for s in starts:
                out[s : s + PREDICT_CHUNK] = self._mean_block(X[s : s + PREDICT_CHUNK])
        return out

    def predict_mean_each(self, Xs: Sequence[np.ndarray]) -> np.ndarray:
        """``np.stack([predict_mean(X) for X in Xs])``: ``(k, n, b)`` for ``k`` inputs ``(n, m)`` of one shape
        (the interface of :meth:`LogisticScoreMap.predict_mean_each <mixopt.surrogate.logistic.LogisticScoreMap.predict_mean_each>`)."""
        if len({np.shape(X) for X in Xs}) > 1:
            raise SchemaError(f"predict_mean_each takes inputs of one shape, got {[np.shape(X) for X in Xs]}.")
        return np.stack([self.predict_mean(X) for X in Xs]) if Xs else np.zeros((0, 0, self.n_benchmarks))

    def _mean_block(self, xs: np.ndarray) -> np.ndarray:
        """Ensemble mean for one block of rows ``(r, m)`` -> ``(r, b)``.

        The bias rides along as a column of ones and the hidden buffer is allocated once
        per block (fresh large temporaries per member cost more than the arithmetic).
        """
        b, E = self.W1_.shape[:2]
        r, m = xs.shape
        M = b * E
        act = self.config.activation
        x1 = np.empty((r, m + 1))
        x1[:, :m] = xs
        x1[:, m] = 1.0
        hid = np.empty((r, self._W1aug.shape[2]))
        g = np.empty((M, r))
        for k in range(M):
            np.matmul(x1, self._W1aug[k], out=hid)
            _act_numpy(act, hid)
            np.matmul(hid, self._w2flat[k], out=g[k])
        g = g.T
        g += self._b2cat
        sig = self._sig_cols
        if sig.any():
            z = g[:, sig]
            np.negative(z, out=z)
            np.exp(z, out=z)
            z += 1.0
            g[:, sig] = self._floor_cols[sig] + self._scale_cols[sig] / z
        return g.reshape(r, b, E).mean(axis=2)

    def predict_member(self, X: np.ndarray, e: int) -> np.ndarray:
        """Scores ``(n, b)`` of ensemble member ``e`` (``0 <= e < E``)."""
        self._check()
        X = self._as_x(X)
        b = self.n_benchmarks
        n = X.shape[0]
        out = np.empty((n, b))
        if b == 0:
            return out
        sig = self.link_ == 1
        scale = self.sign_ * self.span_[:, e]
        for s in range(0, n, PREDICT_CHUNK):
            g = self._hidden(X[s : s + PREDICT_CHUNK], self._Wmem[e], self._bmem[e]) @ self._W2mem[e]
            g += self.b2_[:, e]
            g[:, sig] = self.floor_[sig] + scale[sig] / (1.0 + np.exp(-g[:, sig]))
            out[s : s + PREDICT_CHUNK] = g
        return out

    def predict_members(self, X: np.ndarray) -> np.ndarray:
        """Every member's scores, ``(E, n, b)``."""
        self._check()
        return np.stack([self.predict_member(X, e) for e in range(self.n_members)])

    def predict_paired(self, Xs: np.ndarray) -> np.ndarray:
        """Propagate input draws through the ensemble: draw ``s`` goes through member ``s mod E``.

        Args:
            Xs: ``(S, n, m)`` input draws (e.g. stage-1 bootstrap losses).

        Returns:
            ``(S, n, b)`` score draws.
        """
        self._check()
        Xs = np.asarray(Xs, dtype=np.float64)
        if Xs.ndim != 3:
            raise SchemaError(f"Xs must be (S, n, m) input draws, got shape {Xs.shape}.")
        if Xs.shape[0] == 0:
            return np.zeros((0, Xs.shape[1], self.n_benchmarks))
        S, n, m = Xs.shape
        E = self.n_members
        out = np.empty((S, n, self.n_benchmarks))
        for e in range(min(E, S)):  # every draw of one member in one call
            idx = np.arange(e, S, E)
            out[idx] = self.predict_member(Xs[idx].reshape(-1, m), e).reshape(idx.size, n, -1)
        return out


__all__ = ["ACTIVATIONS", "NetConfig", "ScoreNetEnsemble"]
