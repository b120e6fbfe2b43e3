"""Distil an ensemble into one network (issue 28): the teachers' average probabilities (flip TTA) over the training
faces, softened by a temperature and blended with the true labels, are the soft targets the student learns (fit
trains on FERData.targets, as on FER+ votes). Teachers and student share the val hold-out, so val stays unseen.

    nice -n 19 python benchmarks/distill.py --data ../shared/fer2013 --epochs 60 --seed 4 --out runs/distill_s4 \\
        fernb/weights/default benchmarks/members/fernet_l_s1 benchmarks/members/fernet_l_s2
"""
from __future__ import annotations

import argparse
from dataclasses import replace

import torch
import torch.nn.functional as F

from _members import members_and_splits  # a module beside this one: benchmarks/ is on the path
from fernb.checkpoint import update_meta
from fernb.evaluate import Predictor
from fernb.train import TrainConfig, fit


def soft_targets(probs: torch.Tensor, labels: torch.Tensor, temperature: float, alpha: float) -> torch.Tensor:
    """alpha of the teachers' probabilities softened by the temperature (p^(1/T), renormalised), 1 - alpha one-hot."""
    soft = (probs.clamp(min=1e-8).log() / temperature).softmax(-1)
    return alpha * soft + (1 - alpha) * F.one_hot(labels, probs.shape[1]).float()


def main() -> None:
    """Compute the teachers' targets once, train the student on them, and print its best val accuracy."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="FER-2013 folder or csv (default: $FERNB_DATA, ./data/fer2013)")
    p.add_argument("teachers", nargs="+", help="checkpoint folders that share one val hold-out")
    p.add_argument("--model", default="fernet_l")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--seed", type=int, default=4, help="the student's training seed; the hold-out keeps the teachers'")
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--alpha", type=float, default=0.8, help="weight of the teachers against the true label")
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true")
    args = p.parse_args()
    loaded, (train, val) = members_and_splits(args.teachers, args.data, ("train", "val"))
    probs = sum(Predictor(model, m["classes"]).probs(train.images, tta=True) for model, m in loaded) / len(loaded)
    print(f"teachers on their training faces: accuracy {(probs.argmax(1) == train.labels).float().mean():.2%}, "
          f"mean top probability {probs.max(1).values.mean():.3f}", flush=True)
    faces_key = train.fingerprint()
    train = replace(train, targets=soft_targets(probs, train.labels, args.temperature, args.alpha))
    # the soft targets smooth already, as mixup's do
    cfg = replace(TrainConfig(), model=args.model, epochs=args.epochs, seed=args.seed, label_smoothing=0.0)
    run = fit(train, val, cfg, out=args.out, resume=args.resume)
    # the run's key hashes its soft targets too (what resume checks); once it is done, record the faces' own key, so
    # that scoring it on val knows the hold-out, as for its teachers; the distillation is recorded beside it
    update_meta(args.out, train_key=faces_key, distilled=dict(teachers=args.teachers, temperature=args.temperature,
                                                              alpha=args.alpha, targets_key=train.fingerprint()))
    print(f"{cfg.model} distilled from {len(loaded)} teachers (T {args.temperature}, alpha {args.alpha}), seed "
          f"{args.seed}: best val {run['best_val_acc']:.4f} after {run['epochs_run']} epochs, "
          f"{run['seconds'] / 60:.0f} min; checkpoint {args.out}")


if __name__ == "__main__":
    main()
