"""Speed levers of the reference trainer's 600K bf16 training step, one at a time (docs/figures.md, v4 paragraphs).

A copy of the reference model (mixopt/train/reference.py: pre-LayerNorm blocks, exact GELU, tied head) whose
attention function, heads, batch, GELU and LayerNorm can be switched, trained for a few steps on random bytes
(forward, backward, clip, fused AdamW; no evaluation), 1 thread, tokens per CPU-second, best of ``--repeats``
passes that alternate the variants in one process. Attention variants:

- ``v3``: v3's two batched products with an fp32 softmax (the mask and scale in one add);
- ``bf16``: the same in bf16 (autograd through a bf16 softmax);
- ``fused``: v4's autograd function (``FusedAttention`` in the reference module);
- ``blocks``: ``fused`` split into two query blocks, the first half seeing only the first half of the keys
  (a quarter fewer attention FLOPs, more and smaller products);
- ``none``: no attention (``y = v``): what the rest of the step costs.

Figures for the step, not for a trained model: a variant that changes the model (heads, batch, no GELU) needs its
own quality check before a trainer version may use it.

Run:  python benchmarks/bench_train_levers.py [--malloc] [--no-gelu] [--no-ln] [--compile] [--repeats 3]
      [VARIANT ...]   (VARIANT = attention:heads:batch, default v3:2:8 fused:2:8 fused:1:8 fused:2:16 none:2:8)
"""

from __future__ import annotations

import argparse
import time

from bench_train import train_step  # the trainer's step, as bench_train measures it

STEPS, CONTEXT, LAYERS, WIDTH = 10, 256, 3, 128


def _attention_functions():
    import torch

    masks: dict = {}

    def mask(t, dt):
        if (t, dt) not in masks:
            masks[(t, dt)] = torch.zeros(t, t, dtype=dt).masked_fill_(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
        return masks[(t, dt)]

    def v3(q, k, v):
        s = torch.add(mask(q.shape[2], torch.float32), (q @ k.transpose(-1, -2)).float(), alpha=q.shape[-1] ** -0.5)
        return s.softmax(-1).to(v.dtype) @ v

    def bf16(q, k, v):
        return torch.add(mask(q.shape[2], q.dtype), q @ k.transpose(-1, -2), alpha=q.shape[-1] ** -0.5).softmax(-1) @ v

    class Blocks(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v):
            scale, t = q.shape[-1] ** -0.5, q.shape[1]
            h, m = t // 2, mask(t, q.dtype)
            p1 = torch.baddbmm(m[:h, :h], q[:, :h], k[:, :h].transpose(1, 2), alpha=scale).softmax(-1)
            p2 = torch.baddbmm(m[h:], q[:, h:], k.transpose(1, 2), alpha=scale).softmax(-1)
            ctx.save_for_backward(q, k, v, p1, p2)
            return torch.cat([torch.bmm(p1, v[:, :h]), torch.bmm(p2, v)], 1)

        @staticmethod
        def backward(ctx, dy):
            q, k, v, p1, p2 = ctx.saved_tensors
            scale, h = q.shape[-1] ** -0.5, q.shape[1] // 2
            dy = dy.to(p1.dtype)
            dy1, dy2 = dy[:, :h], dy[:, h:]
            ds1 = torch._softmax_backward_data(torch.bmm(dy1, v[:, :h].transpose(1, 2)), p1, -1, p1.dtype)
            ds2 = torch._softmax_backward_data(torch.bmm(dy2, v.transpose(1, 2)), p2, -1, p2.dtype)
            dq = torch.cat([torch.bmm(ds1, k[:, :h]), torch.bmm(ds2, k)], 1).mul_(scale)
            dk = torch.bmm(ds2.transpose(1, 2), q[:, h:])
            dk[:, :h] += torch.bmm(ds1.transpose(1, 2), q[:, :h])
            dv = torch.bmm(p2.transpose(1, 2), dy2)
            dv[:, :h] += torch.bmm(p1.transpose(1, 2), dy1)
            return dq, dk.mul_(scale), dv

    def split(fn):
        def run(q, k, v):
            b, h, t, e = q.shape
            q, k, v = (z.reshape(b * h, t, e).to(torch.bfloat16) for z in (q, k, v))
            return fn(q, k, v).view(b, h, t, e)

        return run

    return {"v3": v3, "bf16": bf16, "blocks": split(Blocks.apply), "none": lambda q, k, v: v * 1.0}


def _model(attention: str, heads: int, ln: bool):
    from torch import nn
    from torch.nn import functional as F

    from mixopt.train.reference import _model_classes

    if attention == "fused":  # the reference module's own v4 model
        model = _model_classes("none", "fused")(LAYERS, WIDTH, heads, CONTEXT)
    else:
        model = _model_classes("none", "matmul")(LAYERS, WIDTH, heads, CONTEXT)
        fn = _attention_functions()[attention]
        for blk in model.blocks:  # the block's forward with another attention function

            def forward(x, blk=blk, fn=fn):
                b, t, d = x.shape
                q, k, v = blk.qkv(blk.ln1(x)).split(d, dim=2)
                q, k, v = (z.view(b, t, blk.heads, d // blk.heads).transpose(1, 2) for z in (q, k, v))
                x = x + blk.proj(fn(q, k, v).transpose(1, 2).reshape(b, t, d))
                return x + blk.out(F.gelu(blk.fc(blk.ln2(x))))

            blk.forward = forward
    if not ln:
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.forward = lambda x: x
    return model


def measure(attention: str, heads: int, batch: int, *, gelu: bool, ln: bool, compile_: bool) -> tuple[float, float]:
    """(tokens per CPU-second over STEPS steps after 3 warm-up steps, CPU-seconds of the warm-up)."""
    import torch
    from torch.nn import functional as F

    torch.manual_seed(0)  # a speed measurement: the weights' values do not matter, only their shapes
    model = _model(attention, heads, ln)
    real_gelu = F.gelu
    if not gelu:
        F.gelu = lambda x, approximate="none": x  # the blocks look F.gelu up at call time
    step_model = torch.compile(model) if compile_ else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    x = torch.randint(0, 256, (batch, CONTEXT + 1), generator=torch.Generator().manual_seed(0))

    def step():
        train_step(model, opt, x, bf16=True, forward=step_model)

    try:
        c0 = time.process_time()
        for _ in range(3):
            step()
        warm = time.process_time() - c0
        c0 = time.process_time()
        for _ in range(STEPS):
            step()
        return STEPS * batch * CONTEXT / (time.process_time() - c0), warm
    finally:
        F.gelu = real_gelu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", nargs="*", default=["v3:2:8", "fused:2:8", "fused:1:8", "fused:2:16", "none:2:8"])
    ap.add_argument("--malloc", action="store_true", help="keep freed memory in the process first (as v4 jobs do)")
    ap.add_argument("--no-gelu", action="store_true", help="GELU replaced by the identity (what GELU costs)")
    ap.add_argument("--no-ln", action="store_true", help="LayerNorms replaced by the identity (what they cost)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the whole model (inductor)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    if args.malloc:
        from mixopt.train.reference import _keep_freed_memory

        _keep_freed_memory()
    six_n = 6.0 * (LAYERS * (12 * WIDTH * WIDTH + 13 * WIDTH) + 2 * WIDTH)
    best: dict[str, float] = {}
    for _ in range(args.repeats):
        for v in args.variants:
            attention, heads, batch = v.split(":")
            tps, warm = measure(attention, int(heads), int(batch), gelu=not args.no_gelu, ln=not args.no_ln, compile_=args.compile)
            best[v] = max(best.get(v, 0.0), tps)
            print(f"  {v}: {tps:,.0f} tokens/CPU-s (warm-up {warm:.1f} CPU-s)", flush=True)
    flags = " ".join(f for f, on in (("--malloc", args.malloc), ("--no-gelu", args.no_gelu), ("--no-ln", args.no_ln), ("--compile", args.compile)) if on)
    print(f"best of {args.repeats} ({flags or 'no flags'}), {LAYERS}x{WIDTH}, context {CONTEXT}, bf16 autocast, 1 thread:")
    for v, tps in best.items():
        ms = int(v.split(":")[2]) * CONTEXT / tps * 1e3
        print(f"  {v:12s} {tps:9,.0f} tokens/CPU-s  {tps * six_n / 1e9:6.1f} GF/CPU-s (6N)  {ms:6.1f} ms per step")


if __name__ == "__main__":
    main()
