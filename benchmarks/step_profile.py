"""Where a training step's time goes: augmentation, forward and backward, optimizer, EMA, and by operator kind
(convolution, batch norm, ReLU, pooling, other), for one FERNet size and precision.

    python benchmarks/step_profile.py --data ../shared/fer2013                    # fernet_s, fp32
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/step_profile.py --data ../shared/fer2013
"""
from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch
import torch.nn.functional as F
from torch.profiler import profile

from fernb.augment import to_input
from fernb.data import load
from _cpu import cpu_summary
from fernb.device import autocast
from fernb.train import Run, TrainConfig

KINDS = {"conv": ("conv", "mkldnn_convolution"), "batch norm": ("batch_norm",), "ReLU": ("relu", "threshold"),
         "pooling": ("pool",)}


def ms_per_call(fn, n: int = 8) -> float:
    """Milliseconds per call of fn, after one warm-up call."""
    fn()
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1000


def main() -> None:
    """Time the parts of a step, then profile whole steps and sum the operators' own time by kind."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="FER-2013 folder or csv (default: $FERNB_DATA, ./data/fer2013)")
    p.add_argument("--model", default="fernet_s")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    args = p.parse_args()
    print(cpu_summary())
    t = Run(load(args.data, "train"), TrainConfig(model=args.model, precision=args.precision))
    idx = torch.randperm(len(t.labels), generator=torch.Generator().manual_seed(0))[:t.cfg.batch_size]
    faces, y = t.images[idx], t.labels[idx]
    x0 = to_input(faces)
    x = t.augment(x0)

    def forward_backward():
        t.opt.zero_grad(set_to_none=True)
        with autocast(t.device, t.precision):
            loss = F.cross_entropy(t.model(x).float(), y)
        loss.backward()

    parts = {"augmentation": lambda: t.augment(x0), "forward + backward": forward_backward,
             "optimizer step": t.opt.step, "EMA update": lambda: t.ema.update(t.model, step=1000),
             "whole Run.step": lambda: t.step(faces, y, t.cfg.lr)}
    print(f"{args.model}, {args.precision}, batch {len(y)}:")
    for name, fn in parts.items():
        print(f"  {name:20s} {ms_per_call(fn):7.1f} ms")
    with profile() as prof:
        for _ in range(3):
            t.step(faces, y, t.cfg.lr)
    by_kind = defaultdict(float)
    for e in prof.key_averages():
        kind = next((k for k, names in KINDS.items() if any(n in e.key.lower() for n in names)), "other")
        by_kind[kind] += e.self_cpu_time_total
    total = sum(by_kind.values())
    print("  operators' own time: " + ", ".join(f"{k} {v / total:.0%}" for k, v in
                                                sorted(by_kind.items(), key=lambda kv: -kv[1])))


if __name__ == "__main__":
    main()
