"""Test accuracy reached after a given number of minutes of training with the short-run recipe (TrainConfig.short,
what `fernb train --minutes` uses; one run per budget; the default model, 'auto', is the widest FERNet that still
gets ~40 epochs in the budget on a CPU).

    python benchmarks/time_to_accuracy.py --data ../shared/fer2013                  # 2, 5, 10 and 30 minutes
    python benchmarks/time_to_accuracy.py --data ../shared/fer2013 --minutes 2 5    # only some budgets
"""
from __future__ import annotations

import argparse

from fernb.data import load, read_pool
from _cpu import cpu_summary
from fernb.evaluate import metrics, predict
from fernb.train import TrainConfig, fit


def main() -> None:
    """Train once per budget, selecting on val, and print test accuracy (plain and with flip TTA)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="FER-2013 folder or csv (default: $FERNB_DATA, ./data/fer2013)")
    p.add_argument("--minutes", type=float, nargs="+", default=[2, 5, 10, 30])
    p.add_argument("--model", default=TrainConfig.model, help="default auto: picked per budget")
    args = p.parse_args()
    pool = read_pool(args.data)
    train, val, test = (load(split=s, pool=pool) for s in ("train", "val", "test"))
    print(f"{cpu_summary()}\n{args.model} on {pool.source}: train {len(train)}, val {len(val)}, test {len(test)}")
    for minutes in args.minutes:
        run = fit(train, val, TrainConfig.short(model=args.model, minutes=minutes), progress=False)
        plain, tta = predict(run["network"], test), predict(run["network"], test, tta=True)
        print(f"{minutes:5g} min: {run['model']}, {run['epochs_run']:3d} epochs, val {run['best_val_acc']:.4f}, test "
              f"{plain.accuracy:.4f}, with flip TTA {tta.accuracy:.4f} (macro-F1 {metrics(tta)['macro_f1']:.3f})",
              flush=True)


if __name__ == "__main__":
    main()
