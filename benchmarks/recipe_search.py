"""Select the default recipe on val: train variants of the default TrainConfig and print each one's val accuracy.

Each variant changes a few fields of TrainConfig() (the default recipe); test is never read. Each variant runs in a
process of its own, --jobs at a time; on a 2-core CPU keep --jobs 1 (two runs at once each go 3.5x slower).

    python benchmarks/recipe_search.py --data ../shared/fer2013 --only base drop50 --json runs/search.json
    python benchmarks/recipe_search.py --data ../shared/fer2013 --only base mixup --epochs 10
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from fernb.data import load, read_pool
from fernb.evaluate import run_model
from fernb.train import TrainConfig, fit

LIGHT = {"weight_decay": 0.01, "drop": 0.0, "augment": {"erasing": 0.0}}  # less regularisation: TrainConfig.short
# name: changes to TrainConfig(); "augment" holds changes to AugmentConfig
VARIANTS = {
    "base": {},
    "base_seed1": {"seed": 1},
    "mixup": {"augment": {"mixup": 0.2}},
    "cutmix": {"augment": {"cutmix": 1.0}},
    "mixup_cutmix": {"augment": {"mixup": 0.2, "cutmix": 1.0}},
    "erasing50": {"augment": {"erasing": 0.5}},
    "drop50": {"drop": 0.5},
    "wd10": {"weight_decay": 0.1},
    "lr2e-3": {"lr": 2e-3},
    "ls0": {"label_smoothing": 0.0},
    "geometry": {"augment": {"degrees": 20.0, "translate": 0.15, "scale": (0.8, 1.2)}},
    "cutmix_drop50": {"drop": 0.5, "augment": {"cutmix": 1.0}},
    "mixup_cutmix_drop50": {"drop": 0.5, "augment": {"mixup": 0.2, "cutmix": 1.0}},
    "cutmix_erasing50": {"augment": {"cutmix": 1.0, "erasing": 0.5}},
    "fernet_m_150ep": {"model": "fernet_m", "epochs": 150},  # about fernet_l's CPU time for 60 epochs
    "fernet_100ep": {"model": "fernet", "epochs": 100},
    "light": LIGHT,
    "light_seed1": {**LIGHT, "seed": 1},
    "light_bs128": {**LIGHT, "batch_size": 128},  # twice the steps
}


def config_for(name: str, epochs: int | None = None, minutes: float | None = None):
    """TrainConfig() with the variant's changes, and optionally other epochs or a time budget."""
    change = dict(VARIANTS[name])
    cfg = TrainConfig()
    aug = replace(cfg.augment, **change.pop("augment", {}))
    cfg = replace(cfg, augment=aug, **change)
    cfg = replace(cfg, epochs=epochs) if epochs else cfg
    return replace(cfg, minutes=minutes) if minutes else cfg


def run_one(name: str, data: str | None, epochs: int | None, minutes: float | None) -> dict:
    """Train one variant; its best val accuracy, plain and with flip TTA, and where it peaked."""
    pool = read_pool(data)
    train, val = load(split="train", pool=pool), load(split="val", pool=pool)
    run = fit(train, val, config_for(name, epochs, minutes), progress=False)
    hist = run["history"]
    best = max(hist, key=lambda r: r["val_acc"])
    flip = run_model(run["network"], val.images, precision=run["precision"], tta=True)
    return dict(variant=name, model=run["model"], epochs=run["epochs_run"], best_epoch=best["epoch"],
                val_acc=run["best_val_acc"], val_acc_flip=(flip.argmax(-1) == val.labels).float().mean().item(),
                last_val_acc=hist[-1]["val_acc"], last_train_acc=hist[-1]["train_acc"],
                minutes=run["seconds"] / 60, device=run["device"])


def main() -> None:
    """Run the chosen variants, --jobs at a time, each in its own process, and print a line per variant."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="FER-2013 folder or csv (default: $FERNB_DATA, ./data/fer2013)")
    p.add_argument("--only", nargs="+", choices=list(VARIANTS), help="variants to run (default: all)")
    p.add_argument("--epochs", type=int, help="override every variant's epochs (for a quick look)")
    p.add_argument("--minutes", type=float, help="give every variant this time budget instead of epochs")
    p.add_argument("--jobs", type=int, default=1, help="variants run at once")
    p.add_argument("--json", help="write the results here as they come in")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one variant, print its JSON
    args = p.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.data, args.epochs, args.minutes)))
        return
    read_pool(args.data)  # decode once and fill the cache before the workers start
    results, t0 = [], time.time()

    def launch(name: str) -> None:
        cmd = [sys.executable, __file__, "--one", name] + (["--data", args.data] if args.data else [])
        cmd += ["--epochs", str(args.epochs)] if args.epochs else []
        cmd += ["--minutes", str(args.minutes)] if args.minutes else []
        env = dict(os.environ, OMP_NUM_THREADS="1") if args.jobs > 1 else None  # workers share the cores
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode:
            print(f"{name}: failed\n{proc.stderr[-2000:]}", flush=True)
            return
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(r)
        print(f"{name:22s} {r['model']:9s} {r['epochs']:3d} ep  val {r['val_acc']:.4f} (epoch {r['best_epoch']}), "
              f"flip TTA {r['val_acc_flip']:.4f}, last val {r['last_val_acc']:.4f}, train {r['last_train_acc']:.3f}"
              f"  {r['minutes']:.1f} min  [{(time.time() - t0) / 60:.1f} min]", flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(launch, args.only or list(VARIANTS)))


if __name__ == "__main__":
    main()
