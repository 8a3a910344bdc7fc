"""The reference trainer trains a micro-model for real on the fixture text."""

import numpy as np
import pytest

from mixopt.data.table import RunTable
from mixopt.errors import ConfigError, TrainerError
from mixopt.train.reference import ReferenceTrainer, cloze_items, non_embedding_params, shape_for_params
from mixopt.train.spec import JobSpec

MICRO = dict(context=64, batch=4, eval_windows=4, cloze_items=12, cloze_context=32, threads=1)
MIX = {"prose": 0.4, "code": 0.3, "docs": 0.2, "math": 0.1}
LOSS_RTOL = 1e-6


def _spec(seed=0, **kw):
    base = dict(run_id="micro", mixture=MIX, params=2.5e4, tokens=4 * 64 * 12, seed=seed, checkpoints=3)
    base.update(kw)
    return JobSpec(**base)


@pytest.fixture(scope="module")
def micro_table(fixture_corpus_dir, tmp_path_factory):
    t = ReferenceTrainer(corpus=str(fixture_corpus_dir), **MICRO)
    return t.train(_spec(), tmp_path_factory.mktemp("job"))


def test_micro_model_produces_a_valid_run_table(micro_table):
    t = micro_table
    assert isinstance(t, RunTable)
    RunTable(t.frame, t.benchmarks)  # re-validates
    assert len(t) == 3 and t.runs == ("micro",)
    assert t.domains == tuple(MIX) and t.loss_domains == tuple(MIX)
    assert t.benchmark_names == tuple(f"cloze_{d}" for d in MIX)
    assert all(b.chance == 0.25 for b in t.benchmarks)
    np.testing.assert_allclose(t.tokens(), [4 * 64 * 4, 4 * 64 * 8, 4 * 64 * 12])
    np.testing.assert_allclose(t.flops(), 6 * t.params() * t.tokens())
    losses = t.losses()
    assert np.all((losses > 0.5) & (losses < np.log(256) + 0.5))  # nats per byte, near-uniform at start
    scores = t.scores()
    assert np.all((scores >= 0) & (scores <= 1))
    np.testing.assert_allclose(t.mixture()[0], list(MIX.values()))


def test_training_is_seeded_and_deterministic(fixture_corpus_dir, tmp_path, micro_table):
    t = ReferenceTrainer(corpus=str(fixture_corpus_dir), **MICRO)
    again = t.train(_spec(), tmp_path / "a")
    np.testing.assert_allclose(again.losses(), micro_table.losses(), rtol=LOSS_RTOL, atol=0)
    other = t.train(_spec(seed=1), tmp_path / "b")
    assert not np.allclose(other.losses(), micro_table.losses(), rtol=LOSS_RTOL, atol=0)


def test_the_model_learns(micro_table):
    mean = micro_table.losses().mean(axis=1)  # over domains, per checkpoint
    assert mean[-1] < np.log(256) - 0.5  # below the uniform byte model (5.55 nats) after 12 steps
    assert mean[-1] < mean[0]


def test_shapes_match_the_requested_size():
    for n in (3e4, 1e5, 6e5, 2e6):
        layers, width, heads = shape_for_params(n)
        assert layers >= 2 and width % heads == 0
        assert abs(np.log(non_embedding_params(layers, width) / n)) < 0.25


def test_cloze_items_are_four_way_and_the_same_for_every_run(fixture_corpus_dir):
    from mixopt.train.corpus import load_corpus

    valid = load_corpus(fixture_corpus_dir).valid["code"]
    a = cloze_items(valid, 10, 32, 1234, "code")
    b = cloze_items(valid, 10, 32, 1234, "code")
    toks, mask, answer, lengths = a
    assert toks.shape[0] == 4 * len(answer) and set(answer) <= {0, 1, 2, 3}
    np.testing.assert_array_equal(toks, b[0])
    for i in range(len(answer)):  # the four options of an item differ
        opts = {bytes(toks[4 * i + j][mask[4 * i + j]]) for j in range(4)}
        assert len(opts) == 4


def test_bad_options_and_domains_are_reported(fixture_corpus_dir, tmp_path):
    with pytest.raises(ConfigError, match="Unknown reference-trainer option"):
        ReferenceTrainer(layerz=2)
    t = ReferenceTrainer(corpus=str(fixture_corpus_dir), **MICRO)
    with pytest.raises(TrainerError, match="no domain"):
        t.train(_spec(mixture={"web": 1.0}), tmp_path)


def test_v1_shapes_are_unchanged_and_v2_widths_suit_the_vector_units():
    # v1 is pinned by configs/ladder.toml: its shapes for the shipped ladder sizes must not move
    assert [shape_for_params(n, "v1") for n in (4e4, 1.2e5, 2.5e5, 6e5)] == [(2, 40, 2), (3, 56, 4), (4, 72, 2), (4, 112, 4)]
    assert shape_for_params(6e5) == shape_for_params(6e5, "v1")  # the function's own default stays v1
    for n in (3e4, 1e5, 6e5, 2e6, 1e7):
        layers, width, heads = shape_for_params(n, "v2")
        assert width % (64 if width >= 128 else 16 if width >= 64 else 8) == 0 and width % heads == 0
        assert width < 128 or width // heads == 64
        assert abs(np.log(non_embedding_params(layers, width) / n)) < 0.25


def test_kernels_and_device_options_are_checked(fixture_corpus_dir, tmp_path):
    import torch

    with pytest.raises(ConfigError, match=r"kernels must be one of \['v1', 'v2', 'v3', 'v4'\], got 'v5'"):
        ReferenceTrainer(kernels="v5")
    with pytest.raises(ConfigError, match="device must be one of"):
        ReferenceTrainer(device="tpu")
    if not torch.cuda.is_available():
        t = ReferenceTrainer(corpus=str(fixture_corpus_dir), device="cuda", **MICRO)
        with pytest.raises(TrainerError, match="torch sees no GPU"):
            t.train(_spec(), tmp_path)


@pytest.mark.parametrize(("version", "keeps"), [("v3", "v2"), ("v4", "v3")])
def test_later_versions_keep_the_shapes_and_heads(version, keeps):
    for n in (4e4, 1.2e5, 2.5e5, 6e5, 2e6, 1e7):
        assert shape_for_params(n, version) == shape_for_params(n, keeps)  # the same shapes and heads at every size
        layers, width, _ = shape_for_params(n, version)
        assert abs(np.log(non_embedding_params(layers, width) / n)) < 0.25  # the N the size asks for


def _twin_models(reference: str, other: str):
    """Two small models with the same weights, attention ``reference`` and ``other``, and a batch of bytes."""
    torch = pytest.importorskip("torch")
    from mixopt.train.reference import _model_classes

    torch.manual_seed(0)  # test-local weights; the trainer itself seeds from the job's generator
    ref, model = _model_classes("none", reference)(2, 48, 2, 32), _model_classes("none", other)(2, 48, 2, 32)
    model.load_state_dict(ref.state_dict())
    return torch, ref, model, torch.randint(0, 256, (3, 32), generator=torch.Generator().manual_seed(1))


def test_v3_matmul_attention_computes_causal_attention():
    torch, sdpa, mm, x = _twin_models("sdpa", "matmul")
    with torch.no_grad():
        a, b = sdpa(x), mm(x)
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
        x2 = x.clone()
        x2[:, 20:] = (x2[:, 20:] + 1) % 256  # later bytes must not change earlier logits
        torch.testing.assert_close(mm(x2)[:, :20], b[:, :20], rtol=0, atol=0)


def test_v3_trains_deterministically_on_the_cpu(fixture_corpus_dir, tmp_path, micro_table):
    t = ReferenceTrainer(corpus=str(fixture_corpus_dir), kernels="v3", device="cpu", bf16="on", **MICRO)  # bf16: matmul attention
    a, b = t.train(_spec(), tmp_path / "a"), t.train(_spec(), tmp_path / "b")
    np.testing.assert_array_equal(a.losses(), b.losses())
    np.testing.assert_array_equal(a.scores(), b.scores())
    layers, width, _ = shape_for_params(2.5e4, "v3")
    assert a.params()[0] == non_embedding_params(layers, width)
    assert not np.allclose(a.losses(), micro_table.losses(), rtol=LOSS_RTOL, atol=0)  # another model than v2's
    assert a.losses().mean(axis=1)[-1] < np.log(256) - 0.5  # and it learns


def test_v4_fused_attention_matches_causal_attention_and_its_gradients():
    torch, ref, fused, x = _twin_models("matmul", "fused")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = ref(x), fused(x)
    assert b.dtype == a.dtype
    torch.testing.assert_close(b.float(), a.float(), rtol=0.05, atol=0.05)  # bf16 scores and probabilities
    a.float().square().mean().backward()
    b.float().square().mean().backward()
    for (name, pa), pb in zip(ref.named_parameters(), fused.parameters(), strict=True):
        cos = torch.nn.functional.cosine_similarity(pa.grad.flatten(), pb.grad.flatten(), dim=0)
        assert cos > 0.99, (name, float(cos))  # the hand-written backward is the gradient of the forward
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        x2 = x.clone()
        x2[:, 20:] = (x2[:, 20:] + 1) % 256  # later bytes must not change earlier logits
        torch.testing.assert_close(fused(x2)[:, :20], fused(x)[:, :20], rtol=0, atol=0)


def test_v4_trains_deterministically_on_the_cpu(fixture_corpus_dir, tmp_path):
    t = ReferenceTrainer(corpus=str(fixture_corpus_dir), kernels="v4", device="cpu", bf16="on", **MICRO)  # bf16: fused attention
    v3 = ReferenceTrainer(corpus=str(fixture_corpus_dir), kernels="v3", device="cpu", bf16="on", **MICRO)
    a, b, c = t.train(_spec(), tmp_path / "a"), t.train(_spec(), tmp_path / "b"), v3.train(_spec(), tmp_path / "c")
    np.testing.assert_array_equal(a.losses(), b.losses())
    np.testing.assert_array_equal(a.scores(), b.scores())
    layers, width, _ = shape_for_params(2.5e4, "v4")
    assert a.params()[0] == non_embedding_params(layers, width) == c.params()[0]  # the N the size asks for, as v3
    assert not np.allclose(a.losses(), c.losses(), rtol=LOSS_RTOL, atol=0)  # another model than v3's (bf16 softmax)
    np.testing.assert_allclose(a.losses(), c.losses(), rtol=0.02)  # ... and about as good
    assert a.losses().mean(axis=1)[-1] < np.log(256) - 0.5  # and it learns


@pytest.mark.parametrize("kernels", ["v1", "v2", "v3", "v4"])
def test_a_gpu_trains_the_same_model_on_the_same_data(fixture_corpus_dir, tmp_path, kernels):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here")
    cpu = ReferenceTrainer(corpus=str(fixture_corpus_dir), device="cpu", kernels=kernels, bf16="off", **MICRO)
    gpu = ReferenceTrainer(corpus=str(fixture_corpus_dir), device="cuda", kernels=kernels, bf16="off", **MICRO)
    a, b = cpu.train(_spec(), tmp_path / "c"), gpu.train(_spec(), tmp_path / "g")
    np.testing.assert_allclose(b.losses(), a.losses(), rtol=2e-3)  # same init, same batches; other kernels
    assert b.frame.height == a.frame.height


def _corpus_variant(src, dst, *, valid_is_train: bool, train_bytes: int = 2000):
    """A copy of the fixture corpus whose prose train split is cut to ``train_bytes`` (so a micro run
    over-fits it) and whose prose validation split is either the real held-out text or the train bytes."""
    import shutil

    shutil.copytree(src, dst)
    train = (dst / "prose.train.bin").read_bytes()[:train_bytes]
    (dst / "prose.train.bin").write_bytes(train)
    if valid_is_train:
        (dst / "prose.valid.bin").write_bytes(train)
    return dst


def test_held_out_loss_comes_from_the_held_out_split(fixture_corpus_dir, tmp_path):
    """Two corpora with the same train bytes and seed train the same model; only the validation split
    differs. Scored on its own training bytes the over-fitted model does far better than on held-out
    text, so the reported loss:prose must move with the validation split and be the higher one on
    real held-out text (evaluating on the train split would report the same number twice)."""
    held = _corpus_variant(fixture_corpus_dir, tmp_path / "held", valid_is_train=False)
    same = _corpus_variant(fixture_corpus_dir, tmp_path / "same", valid_is_train=True)
    spec = _spec(mixture={"prose": 1.0}, tokens=4 * 64 * 100, checkpoints=2)  # ~13 passes over 2 KB
    a = ReferenceTrainer(corpus=str(held), **MICRO).train(spec, tmp_path / "ja").column("loss:prose")
    b = ReferenceTrainer(corpus=str(same), **MICRO).train(spec, tmp_path / "jb").column("loss:prose")
    assert np.all(a > b), (a, b)
    assert a[-1] - b[-1] > 0.15, (a, b)  # over-fitted: the train bytes are much easier than unseen text


_ALLOCATOR_SCRIPT = """
import json, sys
from pathlib import Path
from mixopt.train import reference
from mixopt.train.spec import JobSpec
if sys.argv[1] == "default":
    reference._keep_freed_memory = lambda: None  # glibc's own thresholds, as every job before the change
spec = JobSpec(**json.loads(sys.argv[4]))
t = reference.ReferenceTrainer(corpus=sys.argv[2], kernels="v1", device="cpu", bf16=sys.argv[3], **json.loads(sys.argv[5]))
table = t.train(spec, Path(sys.argv[6]))
print(json.dumps([table.losses().tolist(), table.scores().tolist()]))
"""


@pytest.mark.parametrize("bf16", ["on", "off"])
def test_v1_rows_are_bit_identical_with_the_kept_freed_memory(fixture_corpus_dir, tmp_path, bf16):
    # every CPU job now tells glibc to keep freed memory (mallopt); the shipped v1 ladder must re-train to the same bits
    import json
    import subprocess
    import sys

    spec = dict(run_id="micro", mixture=MIX, params=2.5e4, tokens=4 * 64 * 12, seed=0, checkpoints=3)
    out = {}
    for mode in ("default", "kept"):
        args = [sys.executable, "-c", _ALLOCATOR_SCRIPT, mode, str(fixture_corpus_dir), bf16, json.dumps(spec), json.dumps(MICRO), str(tmp_path / mode)]
        done = subprocess.run(args, capture_output=True, text=True, check=True)
        out[mode] = json.loads(done.stdout.splitlines()[-1])
    assert out["default"] == out["kept"]  # float for float: losses and cloze scores of every checkpoint


def _spans_by_scan(b: bytes, n_words: int = 3, max_len: int = 24) -> list[tuple[int, int]]:
    """The cloze spans by the original byte-by-byte scan (the reference for the faster one)."""
    ws = b" \t\n\r"
    out, i, n = [], 1, len(b)
    while i < n:
        if b[i - 1] in ws and b[i] not in ws and b[i] != 0:
            j, words = i, 0
            while j < n and words < n_words and j - i <= max_len:
                while j < n and b[j] not in ws and b[j] != 0:
                    j += 1
                words += 1
                if words < n_words:
                    while j < n and b[j] in (32, 9):
                        j += 1
            if words == n_words and j - i <= max_len and 0 not in b[i:j] and b"\n" not in b[i:j]:
                out.append((i, j))
        i += 1
    return out


def test_cloze_spans_match_the_byte_by_byte_scan(fixture_corpus_dir):
    from mixopt.train.corpus import load_corpus
    from mixopt.train.reference import _spans

    corpus = load_corpus(fixture_corpus_dir)
    texts = [bytes(corpus.valid[d]) for d in corpus.domains] + [bytes(corpus.train[d][:20000]) for d in corpus.domains]
    texts += [b"", b" ", b"a", b" a b c", b"a b c d", b"\x00 x y z \x00 a b c d", b"\ta\t b  c\n d e f", b" " + b"x" * 30 + b" y z"]
    for b in texts:
        assert _spans(np.frombuffer(b, dtype=np.uint8)) == _spans_by_scan(b)
    assert _spans(np.frombuffer(b" ab cd ef gh", dtype=np.uint8)) == [(1, 9), (4, 12)]
