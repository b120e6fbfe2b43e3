"""Evaluation speed: the packaged model on the test split with flip TTA, by the previous path and by fernb's path.

    python benchmarks/eval_speed.py --data ../shared/fer2013
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/eval_speed.py --data ../shared/fer2013  # AVX2
    ONEDNN_MAX_CPU_ISA=AVX512_CORE python benchmarks/eval_speed.py --data ../shared/fer2013  # AVX-512 without BF16

Each path runs --repeat times; the median wall time is printed with the accuracy it reached. --int8 adds a third
path that fernb does not use: static int8 quantization with torch.ao (deprecated in torch) on oneDNN's kernels,
calibrated on 2,048 training faces; it shows what lower precision would buy on a CPU without native bf16.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from fernb.augment import to_input
from fernb.data import load
from _cpu import cpu_summary
from fernb.checkpoint import load_model
from fernb.evaluate import predict


@torch.no_grad()
def previous_path(model, images: torch.Tensor) -> torch.Tensor:
    """fernb's evaluation before this benchmark (commit cea1b45): BatchNorm kept, each TTA view its own forward."""
    model.eval()
    out = []
    for i in range(0, len(images), 512):
        x = to_input(images[i:i + 512])
        views = [x, x.flip(-1)]
        out.append(sum(model(v).float() for v in views) / 2)
    return torch.cat(out).softmax(-1)


def int8_model(model, data: str | None):
    """The model quantized to int8 by torch.ao's FX mode on the oneDNN engine (which honours ONEDNN_MAX_CPU_ISA)."""
    import copy
    import warnings

    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    warnings.filterwarnings("ignore")  # torch.ao.quantization's deprecation notices
    torch.backends.quantized.engine = "onednn"
    train = load(data, "train")
    faces = train.images[torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:2048]]
    observed = prepare_fx(copy.deepcopy(model).eval(), get_default_qconfig_mapping("onednn"),
                          (to_input(faces[:8]),))
    with torch.no_grad():
        for i in range(0, len(faces), 256):
            x = to_input(faces[i:i + 256])
            observed(x), observed(x.flip(-1))
    return convert_fx(observed)


def flop_per_face(model) -> int:
    """FLOPs of one 48x48 face through the model (2 per multiply-add), as torch's FlopCounterMode counts them."""
    from torch.utils.flop_counter import FlopCounterMode
    in_chans = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d)).in_channels
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(torch.zeros(1, in_chans, 48, 48))
    return counter.get_total_flops()


def timed(fn, repeat: int) -> tuple[float, torch.Tensor]:
    """Median seconds of fn() over repeat runs after one warm-up, and its last result."""
    result, times = fn(), []
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def main() -> None:
    """Time each path on the same model and faces; print seconds, speed-up, faces/s, GFLOP/s and accuracy."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="FER-2013 folder or csv (default: $FERNB_DATA, ./data/fer2013)")
    p.add_argument("--checkpoint", default=None, help="default: the packaged model")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--int8", action="store_true", help="also time an int8-quantized copy (not fernb's path)")
    args = p.parse_args()
    print(f"torch {torch.__version__}; {cpu_summary()}")
    model, meta = load_model(args.checkpoint)
    test = load(args.data, "test")
    per_face = flop_per_face(model)
    flop = per_face * 2 * len(test)  # 2 views a face
    print(f"{meta['model']}: {per_face / 2e6:.0f}M multiply-adds a face")
    paths = {"previous path": lambda: previous_path(model, test.images),
             "fernb.evaluate.predict": lambda: predict(model, test, tta=True).probs}
    if args.int8:
        quantized = int8_model(model, args.data)
        paths["int8 (torch.ao, oneDNN)"] = lambda: previous_path(quantized, test.images)
    first = None
    for name, fn in paths.items():
        seconds, probs = timed(fn, args.repeat)
        first = first or seconds
        acc = (probs.argmax(-1) == test.labels).float().mean().item()
        print(f"{name:24s} {meta['model']}, {len(test)} faces, flip TTA: {seconds:6.2f} s ({first / seconds:3.1f}x), "
              f"{len(test) / seconds:6.0f} faces/s, {flop / seconds / 1e9:4.0f} GFLOP/s, accuracy {acc:.4f}", flush=True)


if __name__ == "__main__":
    main()
