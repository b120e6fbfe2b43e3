"""Make a trained run the packaged default model: its weights at half size (float16) in fernb/weights/default.

    python scripts/package_model.py runs/default                 # -> fernb/weights/default
    python scripts/package_model.py runs/default --out DIR

float16 keeps the packaged model under 10 MB; fernb loads it back as float32, and its predictions match the run's
to within rounding (tests/test_train.py checks a half-size checkpoint against its original).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from fernb import checkpoint

PACKAGED = Path(__file__).resolve().parents[1] / "fernb" / "weights" / "default"


def main() -> None:
    """Copy RUN's kept model and its config.json, with float16 weights."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="a checkpoint directory written by fernb train")
    p.add_argument("--out", default=str(PACKAGED))
    args = p.parse_args()
    model, meta = checkpoint.load(args.run)
    out = checkpoint.save(args.out, model, meta, dtype=torch.float16)  # save() stamps this fernb's and torch's versions
    size = (out / checkpoint.WEIGHTS).stat().st_size / 1e6
    print(f"{meta['model']} from {args.run} -> {out} ({size:.1f} MB of float16 weights)")


if __name__ == "__main__":
    main()
