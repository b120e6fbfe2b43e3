"""Training throughput, in one process: (a) the original notebook's pipeline, (b) fernb's with the same model,
(c) fernb's default models: the recipe's (fernet_l) and the one `--minutes 5` picks on a CPU (fernet_s).
Prints images/s and the ratios, and (b)'s ceiling: efficientnet_b0's own training steps with no data pipeline at all.

    python benchmarks/train_speed.py --data ../shared/fer2013
    python benchmarks/train_speed.py --data ../shared/fer2013 --fernb-only --steps 5 \
        --default-model fernet_s fernet_m fernet_l                  # (c) alone, per FERNet size
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/train_speed.py ...   # the AVX2 path
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import timm
import torch
from PIL import Image

from fernb.data import CLASSES, FERData, load, read_pool
from _cpu import cpu_summary
from fernb.device import seconds_per_step
from fernb.budget import RECIPE_MODEL
from fernb.train import TrainConfig, fit

CPU = torch.device("cpu")


def original_pipeline(root: Path, steps: int) -> float:
    """(a) ImageFolder + PIL flip/rotate/ToTensor, DataLoader batch 32, timm efficientnet_b0 (3 channels), Adam 1e-3."""
    from torchvision import transforms as T
    from torchvision.datasets import ImageFolder
    aug = T.Compose([T.RandomHorizontalFlip(p=0.5), T.RandomRotation(degrees=(-20, 20)), T.ToTensor()])
    loader = torch.utils.data.DataLoader(ImageFolder(str(root / "train"), transform=aug), batch_size=32, shuffle=True)
    model = timm.create_model("efficientnet_b0", num_classes=7).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    seen, warm = 0, 3
    for i, (x, y) in enumerate(loader):
        if i == warm:
            t, seen = time.perf_counter(), 0
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(y)
        if i == warm + steps:
            break
    return seen / (time.perf_counter() - t)


def fernb_pipeline(train: FERData, model: str, steps: int) -> tuple[float, str]:
    """(b)/(c) fernb.train.fit for one epoch of `steps` batches; returns (images/s, precision)."""
    cfg = TrainConfig(model=model, epochs=1, ema_decay=0.0)
    n = cfg.batch_size * steps
    subset = FERData(train.images[:n], train.labels[:n], train.classes, "train", train.source)
    fit(subset, None, cfg, progress=False)  # warm-up: allocator, oneDNN kernels, precision choice
    run = fit(subset, None, cfg, progress=False)
    return run["history"][0]["images_per_s"], run["precision"]


def model_alone(name: str, batch: int, steps: int) -> float:
    """The ceiling of any pipeline for a model: images/s of its fp32 train steps on one fixed in-memory batch."""
    model = timm.create_model(name, num_classes=7, in_chans=1).to(memory_format=torch.channels_last)
    x = torch.randn(batch, 1, 48, 48).contiguous(memory_format=torch.channels_last)
    return batch / seconds_per_step(model, x, torch.randint(0, 7, (batch,)), CPU, "fp32", steps)


def as_folder(data: str | None, tmp: Path) -> Path:
    """The source itself when it is a folder layout, else its train images written out as JPEGs."""
    pool = read_pool(data)
    if pool.layout == "folder" and (Path(pool.source) / "train").is_dir():
        return Path(pool.source)
    train = load(split="trainval", pool=pool)
    for i, (img, lab) in enumerate(zip(train.images[:4000].numpy(), train.labels[:4000].tolist())):
        (tmp / "train" / CLASSES[lab]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(tmp / "train" / CLASSES[lab] / f"{i}.jpg")
    return tmp


def main() -> None:
    """Measure the three pipelines and print their images/s and ratios."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="FER-2013 folder or csv (default: $FERNB_DATA, ./data/fer2013)")
    p.add_argument("--steps", type=int, default=30, help="timed batches per pipeline")
    p.add_argument("--default-model", nargs="+", default=[RECIPE_MODEL, "fernet_s"])
    p.add_argument("--fernb-only", action="store_true", help="only (c): fernb's own models, no efficientnet_b0")
    args = p.parse_args()
    print(f"torch {torch.__version__}; {cpu_summary()}")
    train = load(args.data, "train")
    if args.fernb_only:
        for name in args.default_model:
            c, prec_c = fernb_pipeline(train, name, args.steps)
            print(f"(c) fernb pipeline, {name} ({prec_c}): {c:7.0f} img/s", flush=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        a = original_pipeline(as_folder(args.data, Path(tmp)), args.steps * 4)
    print(f"(a) original notebook pipeline, efficientnet_b0: {a:7.0f} img/s")
    b, prec_b = fernb_pipeline(train, "efficientnet_b0", args.steps)
    print(f"(b) fernb pipeline, efficientnet_b0 ({prec_b}):     {b:7.0f} img/s   (b)/(a) = {b / a:.1f}")
    ceiling = model_alone("efficientnet_b0", TrainConfig().batch_size, args.steps // 3)
    print(f"    efficientnet_b0 alone, no data at all (fp32): {ceiling:7.0f} img/s   the most (b) can be: "
          f"{ceiling / a:.1f}x (a)")
    for name in args.default_model:
        c, prec_c = fernb_pipeline(train, name, args.steps)
        print(f"(c) fernb pipeline, {name} ({prec_c}):{' ' * max(0, 17 - len(name))}{c:7.0f} img/s   "
              f"(c)/(a) = {c / a:.1f}")


if __name__ == "__main__":
    main()
