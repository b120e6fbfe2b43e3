"""Time the first (decode + write cache) and second (cache hit) load of a full FER-2013 folder.

    python benchmarks/load_speed.py --data ../shared/fer2013
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

from fernb.data import read_pool, resolve_source


def main() -> None:
    """Print first-load and second-load seconds for the whole set."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="FER-2013 folder or csv (default: $FERNB_DATA, ./data/fer2013)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["FERNB_CACHE_DIR"] = cache  # an empty cache, so the first load really decodes
        t0 = time.perf_counter()
        pool = read_pool(args.data)
        t1 = time.perf_counter()
        read_pool(args.data)
        t2 = time.perf_counter()
    print(f"source: {resolve_source(args.data)}, {len(pool.labels)} images")
    print(f"first load (decode + write cache): {t1 - t0:.2f} s")
    print(f"second load (cache hit):           {t2 - t1:.2f} s")


if __name__ == "__main__":
    main()
