"""Weight averaging (issue 28's "snapshot or SWA averaging"), on val only: runs fine-tuned from one checkpoint
stay in its basin, so the mean of their weights may be one network as good as their ensemble, at one network's
cost. Prints val accuracy (flip TTA) of each run, of their ensemble (mean of probabilities) and of the soup
(mean of weights, BatchNorm statistics recomputed on the training faces with torch's update_bn).

    python benchmarks/soup.py --data ../shared/fer2013 fernb/weights/default runs/snap_s1
"""
from __future__ import annotations

import argparse
import copy

import torch
from torch.optim.swa_utils import update_bn

from _members import members_and_splits  # a module beside this one: benchmarks/ is on the path
from fernb.augment import to_input
from fernb.evaluate import Predictor


def soup(models: list[torch.nn.Module], train_images: torch.Tensor) -> torch.nn.Module:
    """The mean of the models' weights, with BatchNorm's running statistics measured again on train_images
    (the mean of several runs' statistics is not the statistics of the mean network)."""
    out = copy.deepcopy(models[0])
    states = [m.state_dict() for m in models]
    out.load_state_dict({k: sum(s[k].float() for s in states) / len(states) if v.is_floating_point() else v
                         for k, v in states[0].items()})
    batches = (to_input(train_images[i:i + 256]) for i in range(0, len(train_images), 256))
    update_bn(batches, out)
    return out.eval()


def main() -> None:
    """Print each run's, the ensemble's and the soup's val accuracy."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="FER-2013 folder or csv (default: $FERNB_DATA, ./data/fer2013)")
    p.add_argument("runs", nargs="+", help="checkpoint folders of one architecture, fine-tuned from one checkpoint")
    args = p.parse_args()
    loaded, (val, train) = members_and_splits(args.runs, args.data, ("val", "train"))  # train: what the runs saw

    def val_probs(model):
        return Predictor(model, loaded[0][1]["classes"]).probs(val.images, tta=True)

    def acc(probs):
        return f"{(probs.argmax(1) == val.labels).float().mean():.2%}"
    probs = [val_probs(model) for model, _ in loaded]
    for path, pr in zip(args.runs, probs):
        print(f"{path}: val {acc(pr)}", flush=True)
    print(f"ensemble (mean of probabilities): val {acc(sum(probs))}", flush=True)
    mixed = soup([model for model, _ in loaded], train.images)
    print(f"soup (mean of weights, BatchNorm re-estimated): val {acc(val_probs(mixed))}")


if __name__ == "__main__":
    main()
