"""Train one ensemble member for the packaged predictor (issue 28): its own model and training seed, the shared
val hold-out (val_fraction 0.1, seed 0), so that members, their weights and the TTA are chosen on one val split.

    nice -n 19 python benchmarks/member.py --data ../shared/fer2013 --model fernet_m --epochs 40 --seed 1 \\
        --out runs/member_m_s1          # --resume continues a killed run
    nice -n 19 python benchmarks/member.py --data ../shared/fer2013 --init packaged --epochs 8 --lr 2e-3 \\
        --seed 1 --out runs/snap_s1     # a snapshot member: the packaged weights trained on, LR restarted
    nice -n 19 python benchmarks/member.py --data ../shared/fer2013 --variant mixup_cutmix --epochs 30 --seed 3 \\
        --out runs/member_mc_s3         # another recipe: one of recipe_search.py's variants of the default
"""
from __future__ import annotations

import argparse
from dataclasses import replace

from recipe_search import VARIANTS, config_for  # a script beside this one: benchmarks/ is on the path
from fernb.data import load_train_val
from fernb.train import fit


def main() -> None:
    """Train the member and print its best val accuracy."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="FER-2013 folder or csv (default: $FERNB_DATA, ./data/fer2013)")
    p.add_argument("--model", default=None, help="default: the variant's, else fernet_l")
    p.add_argument("--epochs", type=int, default=None, help="default: the variant's, else the recipe's 60")
    p.add_argument("--seed", type=int, default=1, help="the member's training seed; the hold-out keeps seed 0")
    p.add_argument("--out", required=True)
    p.add_argument("--init", default=None, help="start from this checkpoint's weights ('packaged': fernb's own)")
    p.add_argument("--lr", type=float, default=None, help="the one-cycle schedule's peak learning rate")
    p.add_argument("--variant", choices=list(VARIANTS), default="base", help="recipe_search.py's change to the recipe")
    p.add_argument("--resume", action="store_true")
    args = p.parse_args()
    train, val = load_train_val(args.data, val_fraction=0.1, seed=0)
    cfg = config_for(args.variant, args.epochs)
    given = {"lr": args.lr} if args.lr else {}  # else the variant's, or the recipe's
    cfg = replace(cfg, model=args.model or (cfg.model if cfg.model != "auto" else "fernet_l"), seed=args.seed,
                  init=args.init, **given)
    run = fit(train, val, cfg, out=args.out, resume=args.resume)
    print(f"{cfg.model} ({args.variant}) seed {args.seed}: best val {run['best_val_acc']:.4f} after "
          f"{run['epochs_run']} epochs, {run['seconds'] / 60:.0f} min; checkpoint {args.out}")


if __name__ == "__main__":
    main()
