"""Near-duplicates in FER-2013: test faces with a twin in train (and with an exact copy), twin groups within train.

    python benchmarks/twins.py --data ../shared/fer2013

Twins are fernb.twins' aligned correlation at or above THRESHOLD; exact copies are pixel-identical images (what
fernb.explore.find_oddities counts, across all of the pool's splits).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from _cpu import cpu_summary
from fernb import twins
from fernb.data import load, read_pool
from fernb.explore import find_oddities


def exact_copies(query: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """True for each query image that has a pixel-identical copy among the reference images."""
    seen = {img.tobytes() for img in reference}
    return np.array([img.tobytes() in seen for img in query])


def main() -> None:
    """Print the counts and the seconds each took."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/fer2013", help="FER-2013 folder or csv (default: ../shared/fer2013)")
    p.add_argument("--no-groups", action="store_true", help="skip the twin groups within train (the slow part)")
    args = p.parse_args()
    print(cpu_summary())
    pool = read_pool(args.data)
    train, test = load(split="trainval", pool=pool), load(split="test", pool=pool)
    tr, te = train.images.numpy(), test.images.numpy()
    print(f"source: {pool.source}: trainval {len(tr)} faces, test {len(te)} faces; THRESHOLD {twins.THRESHOLD}")

    odd = find_oddities(pool)
    copy = exact_copies(te, tr)
    print(f"exact copies: {len(odd['duplicate_groups'])} groups in the pool ({odd['cross_split']} across splits); "
          f"{copy.sum()} of {len(te)} test faces ({copy.mean():.1%}) have a pixel-identical copy in trainval")

    t0 = time.perf_counter()
    _, sim = twins.nearest(te, tr)
    t1 = time.perf_counter()
    twin = sim >= twins.THRESHOLD
    print(f"near-twins: {twin.sum()} of {len(te)} test faces ({twin.mean():.1%}) have a twin in trainval "
          f"({(twin & ~copy).sum()} of them no exact copy; {(copy & ~twin).sum()} exact copies not called twins); "
          f"nearest test x trainval: {t1 - t0:.1f} s")
    for lo, hi in ((0.90, 0.95), (0.95, 0.96), (0.96, 0.97), (0.97, 0.98), (0.98, 0.99), (0.99, 1.01)):
        print(f"  test faces whose best match scores [{lo:.2f}, {min(hi, 1):.2f}{')' if hi < 1 else ']'}: "
              f"{((sim >= lo) & (sim < hi)).sum()}")

    if not args.no_groups:
        t0 = time.perf_counter()
        found = twins.groups(tr)
        t1 = time.perf_counter()
        sizes = np.array([len(g) for g in found])
        print(f"twin groups within trainval: {len(found)} groups holding {sizes.sum()} faces "
              f"(largest {sizes.max() if len(sizes) else 0}, {np.sum(sizes == 2)} pairs); "
              f"{sizes.sum() - len(found)} faces are a twin of an earlier one; groups: {t1 - t0:.1f} s")


if __name__ == "__main__":
    main()
