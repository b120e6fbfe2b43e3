"""The baselines a CNN must beat on FER-2013, val and test: python benchmarks/baselines.py --data ../shared/fer2013"""
from __future__ import annotations

import argparse
import time
import warnings

from fernb import baselines
from fernb.data import load, load_train_val, read_pool


def main() -> None:
    """Print val and test accuracy of the majority class and of logistic regression on pixels and on HOG."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="FER-2013 folder or csv (default: $FERNB_DATA, ./data/fer2013)")
    args = p.parse_args()
    pool = read_pool(args.data)
    train, val = load_train_val(pool=pool)
    test = load(split="test", pool=pool)
    print(f"{pool.source}: train {len(train)}, val {len(val)}, test {len(test)}")
    warnings.filterwarnings("ignore", message=".*lbfgs failed to converge.*")  # 200 iterations: a baseline, not a tuned model
    for name, score in (("majority class", lambda: baselines.majority(train, val, test)),
                        ("logistic regression on pixels", lambda: baselines.linear(baselines.pixels, train, val, test)),
                        ("logistic regression on HOG", lambda: baselines.linear(baselines.hog, train, val, test))):
        started = time.perf_counter()
        v, t = score()
        print(f"{name:32s} val {v:.1%}  test {t:.1%}  ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
