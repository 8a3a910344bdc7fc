"""The reference trainer: a small byte-level GPT trained on a mixture of real text domains.

One file, readable whole (after nanoGPT's ``model.py``/``train.py``): a pre-LayerNorm
decoder-only transformer over a 256-byte vocabulary, AdamW with linear warmup and cosine
decay to 10 %, gradient clipping, bf16 autocast on CPUs that support it (fp32 master
weights). Every batch row is drawn from a domain with the mixture's probabilities, at a
random offset of that domain's training bytes. A phased job (a schedule) switches the
probabilities at each phase boundary: phase ``k`` trains the steps up to
``round(end_k · steps)``, and the rows record the boundaries as trained (``phase_end@k`` =
that step over the run's steps, ``mix:<d>`` = the mixture weighted by the steps of each
phase). A one-phase job draws exactly the batches of the constant mixture. At ``checkpoints`` evenly spaced points the
model is evaluated on every domain's held-out bytes (``loss:<d>``, nats per byte = nats per
token) and on a 4-option cloze task per domain (``score:cloze_<d>``, chance 0.25).

Cloze items come from held-out text, the same items for every run (``eval_seed``): a
64-byte context, the true next three words, and three distractor spans of three words
taken from elsewhere in the same domain; the model picks the option with the highest mean
log-likelihood per byte. ``params`` is the non-embedding parameter count (Kaplan et al.);
``flops`` is ``6·params·tokens``.

Four trainer versions (``kernels``): ``"v1"``, the first one, kept bit-stable so configs
that pin it (``configs/ladder.toml``, the shipped ladder) re-train to the same numbers;
``"v2"`` (default): widths in steps of 64 from 128 with head size 64, tanh GELU and fused
AdamW, measured faster per FLOP on CPUs (``benchmarks/bench_train.py``); and ``"v3"``: v2's
shapes and heads with exact GELU (the tanh form runs 2.7x slower in bf16 on CPUs) and, on
CPUs with bf16 autocast, attention as two batched matrix products instead of torch's flash
kernel (over 2x faster at context 256 in bf16; in fp32 the flash kernel is as fast or faster); and ``"v4"``: v3 with, on
CPUs in bf16, attention as one hand-written autograd function (the scale and causal mask inside the score product, the
softmax in bf16, only q, k, v and the probabilities kept for the backward pass). On a CPU every version tells the
process's allocator to keep freed memory (no page faults for each step's temporaries; numerics unchanged, the shipped
v1 ladder re-trains byte-identical with it). Every version is bit-stable on CPUs. (Two-layer shapes of the same
N, measured 1.1x faster still, trained clearly worse models: 2.62 against v1's 2.48 nats per
byte at 600K on the ladder's uniform mixture.) ``device`` runs the
same job on a GPU (``"cuda"``, or ``"auto"`` when torch sees one): the weights are initialised
on the CPU from the job's generator and the batches come from the same numpy generator, so a
GPU run trains the same model on the same data (not bit-equal: other kernels).

torch is imported here only, when a job runs.
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from mixopt.data.table import Benchmark, RunTable, training_flops
from mixopt.errors import ConfigError, TrainerError
from mixopt.train.corpus import DOC_SEPARATOR, Corpus, fixture_corpus, load_corpus
from mixopt.train.spec import JobSpec, Trainer, register_trainer, rows_to_table

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ReferenceOptions:
    """Settings of the reference trainer (``[trainer]`` keys or a job's ``options``)."""

    corpus: str | None = None  # prepared corpus folder (`mixopt corpus build`); None = the shipped fixture text
    layers: int | None = None  # transformer blocks; None = chosen from the job's params
    width: int | None = None  # model width d; None = chosen from the job's params
    heads: int | None = None  # attention heads; None = width // 32 (at least 1)
    context: int = 256  # sequence length, bytes
    batch: int = 8  # sequences per step (small batches learn faster per token at this scale)
    lr: float = 3e-3  # peak learning rate
    min_lr_frac: float = 0.1  # cosine decays to this fraction of lr
    warmup_frac: float = 0.05  # linear warmup share of the steps
    weight_decay: float = 0.1  # AdamW weight decay (matrices only)
    grad_clip: float = 1.0  # global gradient-norm clip
    bf16: str = "auto"  # "auto" (on when the CPU has AVX-512/AMX), "on" or "off"
    threads: int | None = 1  # torch threads per job (1: jobs side by side; 2+ threads spin badly on a loaded machine); None = torch default
    eval_windows: int = 48  # held-out windows of `context` bytes per domain for loss:<d>
    cloze_items: int = 200  # 4-option cloze items per domain for score:cloze_<d>
    cloze_context: int = 64  # context bytes of a cloze item
    eval_seed: int = 1234  # seeds the held-out windows and cloze items (the same for every run)
    kernels: str = "v2"  # "v2": widths in steps of 64 from 128 (head size 64), tanh GELU, fused AdamW; "v1": the first trainer (configs pin it)
    # ("v3": v2's shapes, exact GELU, attention as two matrix products on CPUs; "v4": v3 with a fused bf16 attention
    # function on CPUs; each version bit-stable on CPUs)
    device: str = "auto"  # "cpu", "cuda", or "auto" (cuda when torch sees a GPU); CPU results are bit-stable, GPU ones are not bit-equal to them

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> ReferenceOptions:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(m) - names)
        if unknown:
            raise ConfigError(f"Unknown reference-trainer option(s) {unknown}; known: {sorted(names)}.")
        o = cls(**dict(m))
        if o.kernels not in KERNELS:
            raise ConfigError(f"Reference-trainer option kernels must be one of {list(KERNELS)}, got {o.kernels!r}; "
                              "use \"v1\" to reproduce runs made before v2, \"v2\", \"v3\" or \"v4\" otherwise.")
        if o.device not in DEVICES:
            raise ConfigError(f"Reference-trainer option device must be one of {list(DEVICES)}, got {o.device!r}.")
        return o


#: trainer versions, each kept bit-stable on CPUs (configs/ladder.toml pins v1 for the shipped ladder)
KERNELS = ("v1", "v2", "v3", "v4")
DEVICES = ("cpu", "cuda", "auto")


# -- model ------------------------------------------------------------------------------------
def _model_classes(gelu: str = "none", attention: str = "sdpa"):
    """The model classes; ``gelu`` is GELU's ``approximate`` ("tanh" in v2, "none" in v1, v3 and v4);
    ``attention``: ``"sdpa"`` (torch's fused kernel; v1, v2, and v3/v4 on a GPU or in fp32) or ``"matmul"`` (v3 on a
    CPU in bf16: scores and values as two batched products in the autocast dtype, softmax in fp32 under a causal
    mask; at context 256 the CPU flash kernel runs its products far below the matrix units' speed) or ``"fused"`` (v4
    on a CPU in bf16: ``FusedAttention`` below, bf16 throughout)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    masks: dict[tuple, Any] = {}

    def causal_mask(t, device, dtype):  # (t, t): 0 on and below the diagonal, -inf above; kept per (t, device, dtype)
        key = (t, device, dtype)
        if key not in masks:
            masks[key] = torch.zeros(t, t, dtype=dtype, device=device).masked_fill_(torch.ones(t, t, dtype=torch.bool, device=device).triu(1), float("-inf"))
        return masks[key]

    def causal_attention(q, k, v):  # (b, h, t, e) each -> (b, h, t, e)
        causal = causal_mask(q.shape[2], q.device, torch.get_default_dtype())
        s = torch.add(causal, (q @ k.transpose(-1, -2)).float(), alpha=q.shape[-1] ** -0.5)  # one pass: scale + mask (0 or -inf)
        return s.softmax(-1).to(v.dtype) @ v

    class FusedAttention(torch.autograd.Function):
        """v4's causal attention on (b·h, t, e) bf16 tensors: the scale and the mask ride in the score product
        (one baddbmm), the softmax runs in bf16 (torch's CPU kernel computes it in fp32), and only q, k, v and the
        bf16 probabilities are kept for the backward pass, which folds the scale into the small q and k gradients."""

        @staticmethod
        def forward(ctx, q, k, v, causal):
            with torch.autocast("cpu", enabled=False):
                p = torch.baddbmm(causal, q, k.transpose(1, 2), alpha=q.shape[-1] ** -0.5).softmax(-1)
                ctx.save_for_backward(q, k, v, p)
                return torch.bmm(p, v)

        @staticmethod
        def backward(ctx, dy):
            q, k, v, p = ctx.saved_tensors
            scale = q.shape[-1] ** -0.5
            dy = dy.to(p.dtype)
            ds = torch._softmax_backward_data(torch.bmm(dy, v.transpose(1, 2)), p, -1, p.dtype)
            return torch.bmm(ds, k).mul_(scale), torch.bmm(ds.transpose(1, 2), q).mul_(scale), torch.bmm(p.transpose(1, 2), dy), None

    def fused_attention(q, k, v):  # (b, h, t, e) each -> (b, h, t, e), in bf16
        b, h, t, e = q.shape
        q, k, v = (z.reshape(b * h, t, e).to(torch.bfloat16) for z in (q, k, v))
        return FusedAttention.apply(q, k, v, causal_mask(t, q.device, torch.bfloat16)).view(b, h, t, e)

    class Block(nn.Module):
        def __init__(self, d: int, heads: int) -> None:
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
            self.heads = heads

        def forward(self, x):
            b, t, d = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
            q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
            if attention == "fused":
                y = fused_attention(q, k, v)
            elif attention == "matmul":
                y = causal_attention(q, k, v)
            else:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            y = y.transpose(1, 2).reshape(b, t, d)
            x = x + self.proj(y)
            return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate=gelu))

    class GPT(nn.Module):
        def __init__(self, layers: int, d: int, heads: int, context: int) -> None:
            super().__init__()
            self.tok, self.pos = nn.Embedding(256, d), nn.Embedding(context, d)
            self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
            self.ln = nn.LayerNorm(d)

        def forward(self, idx):  # idx: (b, t) int64 bytes -> logits (b, t, 256)
            x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
            for blk in self.blocks:
                x = blk(x)
            return self.ln(x) @ self.tok.weight.T  # tied output head

    return GPT


def non_embedding_params(layers: int, d: int) -> int:
    """Parameters outside the embeddings: per block 12d² + 13d, plus the final LayerNorm."""
    return layers * (12 * d * d + 13 * d) + 2 * d


def default_heads(width: int, kernels: str = "v1") -> int:
    """Heads of a width: head size about 32 (16 below width 64), dividing the width; v2, v3 and v4: head size 64 from width 128."""
    if kernels in ("v2", "v3", "v4") and width >= 128:
        return max(1, width // 64)
    h = max(1, round(width / (32 if width >= 64 else 16)))
    while width % h:
        h -= 1
    return h


def shape_for_params(params: float, kernels: str = "v1") -> tuple[int, int, int]:
    """``(layers, width, heads)`` whose non-embedding count is closest (in log) to ``params``.

    At least 2 layers. v1: widths are multiples of 8 and the aspect ratio width/layers stays
    in [16, 40] (the shapes measured fastest per loss at this scale). v2: widths from 128 are
    multiples of 64 (from 64, of 16; below, of 8), aspect ratio in [16, 64]: fewer, wider layers whose
    matrix products suit the vector units (``benchmarks/bench_train.py`` measures the difference).
    v3 and v4: v2's shapes.
    """
    best = None
    hi = 40 if kernels == "v1" else 64
    for layers in range(2, 17):
        for d in range(16, 2049, 8):
            if kernels in ("v2", "v3", "v4") and d % (64 if d >= 128 else 16 if d >= 64 else 8):
                continue
            if not 16 <= d / layers <= hi:
                continue
            err = abs(math.log(non_embedding_params(layers, d) / params))
            if best is None or err < best[0] - 1e-12:
                best = (err, layers, d)
    assert best is not None
    _, layers, d = best
    return layers, d, default_heads(d, kernels)


# -- evaluation sets (the same for every run) --------------------------------------------------
def _domain_rng(seed: int, domain: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(domain.encode())])


def eval_windows(valid: np.ndarray, n: int, context: int, seed: int, domain: str) -> np.ndarray:
    """``(n, context + 1)`` uint8 held-out windows (overlap allowed when the split is small)."""
    if len(valid) < context + 2:
        raise TrainerError(f"Domain {domain!r} has only {len(valid)} held-out bytes; need more than {context + 1}.")
    starts = _domain_rng(seed, domain).integers(0, len(valid) - context - 1, size=n)
    return np.stack([np.asarray(valid[s : s + context + 1]) for s in starts])


_WS = frozenset(b" \t\n\r")
#: cloze items are drawn from the first this-many held-out bytes of a domain (scan cost)
CLOZE_SCAN_BYTES = 262144


def _spans(valid: np.ndarray, n_words: int = 3, max_len: int = 24) -> list[tuple[int, int]]:
    """Every (start, end) of ``n_words`` whitespace-separated words starting after whitespace."""
    b = bytes(valid)
    out = []
    n = len(b)
    arr = np.frombuffer(b, dtype=np.uint8)
    ws = np.isin(arr, np.frombuffer(bytes(sorted(_WS)), dtype=np.uint8))
    # the starts the scan keeps: after whitespace, at neither whitespace nor NUL (every other byte is skipped)
    starts = np.flatnonzero(ws[:-1] & ~ws[1:] & (arr[1:] != 0)) + 1 if n > 1 else np.zeros(0, dtype=np.int64)
    for i in starts.tolist():
        j, words = i, 0
        while j < n and words < n_words and j - i <= max_len:
            while j < n and b[j] not in _WS and b[j] != 0:
                j += 1
            words += 1
            if words < n_words:
                while j < n and b[j] in (32, 9):
                    j += 1
        if words == n_words and j - i <= max_len and 0 not in b[i:j] and b"\n" not in b[i:j]:
            out.append((i, j))
    return out


def cloze_items(valid: np.ndarray, n: int, context: int, seed: int, domain: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """4-option cloze items from held-out bytes.

    Returns:
        ``tokens (4n, context + 24)`` uint8 (context then option, zero-padded),
        ``mask (4n, context + 24)`` bool (the option's byte positions, as targets),
        ``answer (n,)`` index of the true option, ``lengths (4n,)`` option lengths.
    """
    valid = valid[:CLOZE_SCAN_BYTES]
    spans = [s for s in _spans(valid) if s[0] >= context and DOC_SEPARATOR[0] not in bytes(valid[s[0] - context : s[0]])]
    if len(spans) < 4:
        raise TrainerError(f"Domain {domain!r}: too little held-out text for cloze items ({len(spans)} spans).")
    rng = _domain_rng(seed + 1, domain)
    pick = rng.choice(len(spans), size=min(n, len(spans)), replace=False)
    width = context + 24
    toks = np.zeros((4 * len(pick), width), dtype=np.uint8)
    mask = np.zeros((4 * len(pick), width), dtype=bool)
    answer = np.zeros(len(pick), dtype=np.int64)
    lengths = np.zeros(4 * len(pick), dtype=np.int64)
    for i, k in enumerate(pick):
        s, e = spans[k]
        true = bytes(valid[s:e])
        opts = [true]
        while len(opts) < 4:
            ds, de = spans[int(rng.integers(len(spans)))]
            cand = bytes(valid[ds:de])
            if cand not in opts:
                opts.append(cand)
        order = rng.permutation(4)
        answer[i] = int(np.flatnonzero(order == 0)[0])
        ctx = np.asarray(valid[s - context : s])
        for j, o in enumerate(order):
            row = 4 * i + j
            opt = np.frombuffer(opts[o], dtype=np.uint8)
            toks[row, :context] = ctx
            toks[row, context : context + len(opt)] = opt
            mask[row, context : context + len(opt)] = True
            lengths[row] = len(opt)
    return toks, mask, answer, lengths


#: a domain's evaluation sets prepared by :meth:`ReferenceTrainer.warm` (in a job server, whose forked jobs read them),
#: keyed by :func:`_eval_key`
_EVAL_SETS: dict[tuple, tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]] = {}


def _eval_key(corpus: Corpus, o: ReferenceOptions, domain: str) -> tuple | None:
    """What a domain's evaluation sets depend on: its held-out file (path, size, modification time) and the options
    that draw them; None when the held-out bytes are not a file (nothing is kept for them)."""
    name = getattr(corpus.valid[domain], "filename", None)
    if not name:
        return None
    st = Path(name).stat()
    return (str(Path(name).resolve()), st.st_size, st.st_mtime_ns, domain, o.context, o.eval_windows, o.cloze_items,
            o.cloze_context, o.eval_seed)


def evaluation_sets(corpus: Corpus, o: ReferenceOptions, domain: str, *, keep: bool = False):
    """``(windows, cloze items)`` of one domain (:func:`eval_windows`, :func:`cloze_items`): the prepared ones when a
    job server warmed them, else computed (and kept when ``keep``). The same arrays either way."""
    key = _eval_key(corpus, o, domain)
    got = _EVAL_SETS.get(key) if key is not None else None
    if got is None:
        got = (eval_windows(corpus.valid[domain], o.eval_windows, o.context, o.eval_seed, domain),
               cloze_items(corpus.valid[domain], o.cloze_items, o.cloze_context, o.eval_seed, domain))
        if keep and key is not None:
            _EVAL_SETS[key] = got
    return got


# -- the trainer --------------------------------------------------------------------------------
@register_trainer
class ReferenceTrainer(Trainer):
    """Train a byte-level GPT on the mixture for real (see the module docstring).

    Args:
        **options: :class:`ReferenceOptions` fields (a job's ``options`` override them).
    """

    kind = "reference"

    def __init__(self, **options: Any) -> None:
        self.options = ReferenceOptions.from_mapping(options)

    def settings(self) -> dict[str, Any]:
        # the options arrive as **kwargs and live in one dataclass, so the signature cannot name them
        return {k: v for k, v in asdict(self.options).items() if v is not None}

    def preload(self) -> None:
        import torch  # noqa: F401  (~1.2 CPU-s)
        import torch._dynamo  # noqa: F401  (~0.9 CPU-s: torch.optim imports it when a job builds its AdamW)
        import torch.nn.functional  # noqa: F401
        import torch.optim  # noqa: F401

    def warm(self, spec: JobSpec) -> None:
        o = ReferenceOptions.from_mapping({**self.settings(), **spec.options})
        if not o.corpus:  # the fixture text is prepared in each job's own folder: nothing to share
            return
        corpus = load_corpus(o.corpus)
        for d in spec.mixture:
            if d in corpus.domains:
                evaluation_sets(corpus, o, d, keep=True)

    def train(self, spec: JobSpec, workdir: Path) -> RunTable:
        o = ReferenceOptions.from_mapping({**self.settings(), **spec.options})
        corpus = load_corpus(o.corpus) if o.corpus else load_corpus(fixture_corpus(Path(workdir) / "fixture_corpus"))
        missing = [d for d in spec.mixture if d not in corpus.domains]
        if missing:
            raise TrainerError(f"Job {spec.run_id!r}: the corpus {corpus.root} has no domain(s) {missing} "
                               f"(it has {list(corpus.domains)}).", run_id=spec.run_id)
        try:
            rows = _train(spec, o, corpus)
        except TrainerError:
            raise
        except Exception as e:  # a torch error: report it with the run id
            raise TrainerError(f"Job {spec.run_id!r} failed while training: {type(e).__name__}: {e}", run_id=spec.run_id) from e
        benches = [Benchmark(name=f"cloze_{d}", chance=0.25) for d in spec.mixture]
        return rows_to_table(spec, rows, benches)


def _bf16_enabled(mode: str, device: str = "cpu") -> bool:
    import torch

    if mode == "off":
        return False
    if mode == "on":
        return True
    if device == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    cap = torch.backends.cpu.get_cpu_capability()
    return "AVX512" in cap or "AMX" in cap


def _keep_freed_memory() -> None:
    """Every job on a CPU (v4 first, every version since): glibc keeps freed blocks up to 1 GiB in the process (``mallopt``) instead of returning each
    step's large temporaries to the kernel, which page-faults them back every step (about 8 % of a 600K step as
    system time). Numerics are unchanged; the process holds its peak memory. No-op where glibc is absent."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc is not None else None
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return
    if mallopt is not None:
        mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: serve blocks below 1 GiB from the heap, not fresh mmap pages
        mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: give heap memory back only above 1 GiB free


def resolve_device(device: str, run_id: str | None = None) -> str:
    """``"cpu"`` or ``"cuda"`` for a device option (``"auto"``: cuda when torch sees a GPU)."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise TrainerError(f"Job {run_id!r}: device = \"cuda\" but torch sees no GPU (torch {torch.__version__}, "
                           f"CUDA build: {torch.version.cuda}); use device = \"auto\" or \"cpu\", or install a CUDA torch.",
                           run_id=run_id)
    return device


class PhaseSampler:
    """The training batches of a job: each row from a domain drawn with its phase's probabilities.

    Args:
        domains: the ``k`` domains, in the order of the probabilities.
        train: ``{domain: training bytes}``.
        probs: per phase, ``(k,)`` domain probabilities.
        bounds: per phase, the last step (1-based) it trains; increasing, the last = the run's steps.
        batch: rows per step B.
        context: bytes per row T (a row holds T + 1 bytes: inputs and next-byte targets).
        rng: the job's generator (one draw of the sources, then one offset per row, every step).
    """

    def __init__(self, domains: list[str], train: Mapping[str, np.ndarray], probs: list[np.ndarray], bounds: list[int], *,
                 batch: int, context: int, rng: np.random.Generator) -> None:
        self.domains, self.train, self.probs, self.bounds = domains, train, probs, bounds
        self.B, self.T, self.rng = batch, context, rng

    def phase(self, step: int) -> int:
        """Index (0-based) of the phase that trains ``step`` (1-based): the first whose last step is >= it."""
        for k, b in enumerate(self.bounds):
            if step <= b:
                return k
        return len(self.bounds) - 1

    def sources(self, step: int) -> np.ndarray:
        """``(B,)`` domain indices of the rows of ``step``."""
        return self.rng.choice(len(self.domains), size=self.B, p=self.probs[self.phase(step)])

    def batch(self, step: int) -> np.ndarray:
        """``(B, T + 1)`` uint8 rows of ``step``."""
        rows = []
        for s in self.sources(step):
            arr = self.train[self.domains[s]]
            i = int(self.rng.integers(0, len(arr) - self.T - 1))
            rows.append(np.asarray(arr[i : i + self.T + 1]))
        return np.stack(rows)


def phase_plan(spec: JobSpec, domains: list[str], steps: int) -> tuple[list[np.ndarray], list[int], dict[str, Any]]:
    """Per phase: the domain probabilities, the last step it trains, and the rows' phase columns as trained.

    Raises:
        TrainerError: a phase gets no training step at this many steps.
    """
    from mixopt.train.spec import phase_columns

    sched = spec.schedule
    probs = []
    for _, mix in sched:
        p = np.array([mix[d] for d in domains], dtype=float)
        probs.append(p / p.sum())
    bounds = [min(steps, round(end * steps)) for end, _ in sched]
    bounds[-1] = steps
    prev = 0
    for k, b in enumerate(bounds, start=1):
        if b <= prev:
            raise TrainerError(f"Job {spec.run_id!r}: phase {k} (ending at {sched[k - 1][0]:g} of the run) gets no training step "
                               f"of the {steps}; widen it or train on more tokens.", run_id=spec.run_id)
        prev = b
    if len(sched) == 1:
        return probs, bounds, {}
    ends = [b / steps for b in bounds]
    shares = np.diff([0.0, *ends])
    overall = sum(s * p for s, p in zip(shares, probs, strict=True))
    cols = {f"mix:{d}": float(overall[j]) for j, d in enumerate(domains)}
    cols.update(phase_columns(ends, [dict(zip(domains, p.tolist(), strict=True)) for p in probs]))
    return probs, bounds, cols


# Longer than the ~80-line rule on purpose: like nanoGPT's train.py, the training loop (model,
# optimiser, schedule, steps, evaluation at each checkpoint) is read top to bottom as one piece;
# cutting it into helpers would scatter the state every step shares.
def _train(spec: JobSpec, o: ReferenceOptions, corpus: Corpus) -> list[dict[str, Any]]:
    import torch
    from torch.nn import functional as F

    if o.threads:
        torch.set_num_threads(int(o.threads))
    dev = resolve_device(o.device, spec.run_id)
    v2 = o.kernels in ("v2", "v3", "v4")  # tanh GELU (v2 only) and fused AdamW (v2 and later)
    layers, width, heads = shape_for_params(spec.params, o.kernels)
    layers, width = o.layers or layers, o.width or width
    heads = o.heads or default_heads(width, o.kernels)
    if width % heads:
        raise TrainerError(f"Job {spec.run_id!r}: width {width} is not divisible by heads {heads}.", run_id=spec.run_id)
    domains = list(spec.mixture)
    T, B = o.context, o.batch
    steps = max(1, math.ceil(spec.tokens / (B * T)))
    phase_probs, bounds, phase_cols = phase_plan(spec, domains, steps)
    ckpt_steps = sorted({max(1, round(k * steps / spec.checkpoints)) for k in range(1, spec.checkpoints + 1)})
    warmup = max(1, round(o.warmup_frac * steps))

    gen = torch.Generator().manual_seed(spec.seed)
    bf16 = _bf16_enabled(o.bf16, dev)
    gelu = "tanh" if o.kernels == "v2" else "none"
    # v3 on a CPU in bf16: attention as two matrix products (in fp32 torch's kernel is as fast or faster)
    # v4 there: the fused attention function (bf16 softmax, the mask and scale in the score product)
    fast = {"v3": "matmul", "v4": "fused"}.get(o.kernels) if dev == "cpu" and bf16 else None
    model = _model_classes(gelu, fast or "sdpa")(layers, width, heads, T)
    if dev == "cpu":
        _keep_freed_memory()
    with torch.no_grad():  # GPT-2 init from the job's own generator (no global RNG), on the CPU for every device
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("proj.weight", "out.weight")) else 0.02
                p.copy_(torch.randn(p.shape, generator=gen) * std)
            elif name.endswith("bias"):
                p.zero_()
    model.to(dev)
    n_params = non_embedding_params(layers, width)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": o.weight_decay}, {"params": other, "weight_decay": 0.0}],
                            lr=o.lr, betas=(0.9, 0.95), **({"fused": True} if v2 else {}))
    rng = np.random.default_rng([spec.seed, 7])
    train = {d: corpus.train[d] for d in domains}
    for d in domains:
        if spec.mixture[d] > 0 and len(train[d]) < T + 2:
            raise TrainerError(f"Domain {d!r} has only {len(train[d])} training bytes.", run_id=spec.run_id)
    evals, clozes = {}, {}
    for d in domains:
        evals[d], clozes[d] = evaluation_sets(corpus, o, d)
    logger.info("job %s: %d layers x %d wide (%d heads), %d non-embedding params, %d steps of %dx%d bytes, bf16=%s, "
                "kernels %s on %s, %d torch thread(s), default dtype %s", spec.run_id, layers, width, heads, n_params, steps,
                B, T, bf16, o.kernels, dev, torch.get_num_threads(), torch.get_default_dtype())

    def lr_at(step: int) -> float:
        if step < warmup:
            return o.lr * (step + 1) / warmup
        frac = (step - warmup) / max(1, steps - warmup)
        return o.lr * (o.min_lr_frac + (1 - o.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * frac)))

    sampler = PhaseSampler(domains, train, phase_probs, bounds, batch=B, context=T, rng=rng)

    def batch(step: int) -> torch.Tensor:
        return torch.from_numpy(sampler.batch(step).astype(np.int64)).to(dev)

    @torch.no_grad()
    def evaluate() -> dict[str, float]:
        model.eval()
        out: dict[str, float] = {}
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=bf16):
            for d in domains:
                w = torch.from_numpy(evals[d].astype(np.int64)).to(dev)
                losses = [F.cross_entropy(model(x[:, :-1]).float().reshape(-1, 256), x[:, 1:].reshape(-1)) for x in w.split(16)]
                out[f"loss:{d}"] = float(torch.stack(losses).mean())
                toks, mask, answer, lengths = clozes[d]
                t = torch.from_numpy(toks.astype(np.int64)).to(dev)
                m = torch.from_numpy(mask).to(dev)
                lp = []
                for xb, mb in zip(t.split(64), m.split(64), strict=True):
                    logp = F.log_softmax(model(xb[:, :-1]).float(), dim=-1).gather(-1, xb[:, 1:, None])[..., 0]
                    lp.append((logp * mb[:, 1:]).sum(1))
                per_byte = (torch.cat(lp) / torch.from_numpy(lengths).to(dev)).view(-1, 4).cpu().numpy()
                out[f"score:cloze_{d}"] = float((per_byte.argmax(1) == answer).mean())
        out["loss"] = float(np.mean([out[f"loss:{d}"] for d in domains]))
        model.train()
        return out

    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    # this process's CPU-s so far (start-up, imports, model, eval sets; in a job forked by a job server only what
    # followed the fork: the server's imports and shared evaluation sets are in its own log)
    cpu0, cpu_eval = time.process_time(), 0.0
    model.train()
    for step in range(1, steps + 1):
        for g in opt.param_groups:
            g["lr"] = lr_at(step - 1)
        x = batch(step)
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, 256), x[:, 1:].reshape(-1))
        if not torch.isfinite(loss):
            raise TrainerError(f"Job {spec.run_id!r}: training loss became {float(loss)} at step {step}; lower lr.", run_id=spec.run_id)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
        opt.step()
        if step in ckpt_steps:
            tokens = float(step * B * T)
            ce = time.process_time()
            row = {"params": float(n_params), "tokens": tokens, "flops": training_flops(float(n_params), tokens), "step": step,
                   **phase_cols, **evaluate()}
            cpu_eval += time.process_time() - ce
            rows.append(row)
            el = time.perf_counter() - t0
            logger.info("job %s: step %d/%d, train loss %.3f, val loss %.3f, %.0f tokens/s", spec.run_id, step, steps,
                        float(loss.detach()), row["loss"], tokens / el)
    cpu = time.process_time()
    logger.info("job %s: %.1f CPU-s: %.1f before the first step (process start-up, imports, model, evaluation sets), "
                "%.1f training steps, %.1f evaluation at %d checkpoints", spec.run_id, cpu, cpu0, cpu - cpu0 - cpu_eval,
                cpu_eval, len(ckpt_steps))
    return rows


__all__ = ["DEVICES", "KERNELS", "PhaseSampler", "ReferenceOptions", "ReferenceTrainer", "cloze_items", "eval_windows", "evaluation_sets",
           "non_embedding_params", "phase_plan", "resolve_device", "shape_for_params"]
