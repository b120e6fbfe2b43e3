"""Make trained runs the packaged default model: their weights at half size (float16) in fernb/weights/default.

    python scripts/package_model.py runs/default                 # one network -> fernb/weights/default
    python scripts/package_model.py runs/a runs/b --out DIR      # an ensemble: the networks' probabilities averaged

float16 keeps the packaged model small; fernb loads it back as float32, and its predictions match the run's to
within rounding (tests/test_train.py checks a half-size checkpoint against its original). The members of an
ensemble must share their classes and their val hold-out, so that they, and the ensemble, are chosen on one val
split; the first run given is the one fine-tuning starts from (`--init`), so give the best first.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from fernb import checkpoint, evaluate
from fernb.errors import FernbError
from fernb.models import Ensemble

PACKAGED = Path(__file__).resolve().parents[1] / "fernb" / "weights" / "default"
MEMBER_FIELDS = ("model", "params", "n_train", "n_val", "metrics", "config", "seconds", "data")  # each member's record


def refuse(message: str) -> None:
    """Stop with one line on stderr and exit code 2, the way fernb's own commands refuse bad input."""
    print(f"package_model: {message}", file=sys.stderr)
    raise SystemExit(2)


def join(runs: list[str]) -> tuple[torch.nn.Module, dict]:
    """One model and its meta from the runs: the run itself, or an Ensemble of them with each member's record."""
    loaded = checkpoint.load_members(runs)  # a CheckpointError: main refuses it in one line
    if len(loaded) == 1:
        return loaded[0]
    metas = [meta for _, meta in loaded]
    shared = ("classes", "in_chans", "input_size", "normalize", "holdout", "train_key", "data", "n_train", "n_val")
    joined = {**{k: metas[0][k] for k in shared if k in metas[0]},
              "model": "+".join(m["model"] for m in metas), "params": sum(m["params"] for m in metas),
              "members": [{"run": str(run), **{k: m[k] for k in MEMBER_FIELDS if k in m}}
                          for run, m in zip(runs, metas)]}
    return Ensemble([model for model, _ in loaded]), joined


def main() -> None:
    """Copy the runs' kept models and their config, with float16 weights."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="checkpoint directories written by fernb train (several: an ensemble)")
    p.add_argument("--out", default=str(PACKAGED))
    p.add_argument("--data", help="score an ensemble on its members' val hold-out of this FER-2013 source, with flip "
                   "TTA, and record it as the ensemble's val accuracy")
    args = p.parse_args()
    try:
        model, meta = join(args.runs)
        if args.data and "members" in meta:
            val = evaluate.load_split(meta, args.data, "val")
            meta["metrics"] = {"val_acc": evaluate.predict(model, val, tta=True).accuracy, "tta": "flip"}
        out = checkpoint.save(args.out, model, meta, dtype=torch.float16)  # stamps this fernb's and torch's versions
    except FernbError as e:
        refuse(str(e))
    size = (out / checkpoint.WEIGHTS).stat().st_size / 1e6
    print(f"{meta['model']} from {', '.join(args.runs)} -> {out} ({size:.1f} MB of float16 weights)")


if __name__ == "__main__":
    main()
