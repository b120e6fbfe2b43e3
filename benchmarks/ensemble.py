"""Val accuracy (flip TTA) of ensemble members and of every average of two or more of them, each average set face by
face against the first member (McNemar) (issue 28): what chooses the packaged predictor's members, on val only.

    python benchmarks/ensemble.py --data ../shared/fer2013 fernb/weights/default benchmarks/members/fernet_m_s1
"""
from __future__ import annotations

import argparse
import itertools

from _members import members_and_splits  # a module beside this one: benchmarks/ is on the path
from fernb.evaluate import Predictor
from fernb.stats import mcnemar


def main() -> None:
    """Print each member's val accuracy, then each combination's."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="FER-2013 folder or csv (default: $FERNB_DATA, ./data/fer2013)")
    p.add_argument("members", nargs="+", help="checkpoint folders that share one val hold-out")
    args = p.parse_args()
    loaded, (val,) = members_and_splits(args.members, args.data, ("val",))
    probs = {}
    for path, (model, meta) in zip(args.members, loaded):
        probs[path] = Predictor(model, meta["classes"]).probs(val.images, tta=True)
        print(f"{path}: {meta['model']}, val {(probs[path].argmax(1) == val.labels).float().mean():.2%}", flush=True)
    first = probs[args.members[0]].argmax(1) == val.labels
    for r in range(2, len(probs) + 1):
        for group in itertools.combinations(probs, r):
            right = (sum(probs[m] for m in group) / r).argmax(1) == val.labels
            t = mcnemar(right, first)  # face by face against the first member: is the gain beyond luck?
            print(f"average of {' + '.join(group)}: val {right.float().mean():.2%} (against the first: only the "
                  f"average right on {t['a_only']} faces, only the first on {t['b_only']}, p = {t['p_value']:.2g})")


if __name__ == "__main__":
    main()
