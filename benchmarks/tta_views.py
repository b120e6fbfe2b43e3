"""Which test-time views to average (issue 28), on val only: flips (what fernb offers), flips of faces shifted
2 pixels in four directions (10 views), flips of a face zoomed in by 8% (4 views).

    python benchmarks/tta_views.py --data ../shared/fer2013 [--checkpoint RUN]
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from fernb.checkpoint import load, packaged_checkpoint
from fernb.evaluate import Predictor, load_split


def shifted(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """uint8 faces [N, H, W] moved by (dy, dx) pixels, the edge repeated into the gap (as a shifted crop would)."""
    p = max(abs(dy), abs(dx))
    padded = F.pad(images[:, None].float(), (p, p, p, p), mode="replicate")[:, 0]
    h, w = images.shape[-2:]
    return padded[:, p - dy:p - dy + h, p - dx:p - dx + w].to(torch.uint8)


def zoomed(images: torch.Tensor, scale: float) -> torch.Tensor:
    """uint8 faces [N, H, W] with their centre 1/scale enlarged to the whole frame."""
    n = images.shape[-1]
    side = round(n / scale)
    o = (n - side) // 2
    x = images[:, None, o:o + side, o:o + side].float()
    x = F.interpolate(x, size=(n, n), mode="bilinear", align_corners=False, antialias=True)
    return x[:, 0].round().clamp(0, 255).to(torch.uint8)


def main() -> None:
    """Print val accuracy for each set of views."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="FER-2013 folder or csv (default: $FERNB_DATA, ./data/fer2013)")
    p.add_argument("--checkpoint", default=None, help="default: the packaged model")
    args = p.parse_args()
    model, meta = load(args.checkpoint or packaged_checkpoint())
    val = load_split(meta, args.data, "val")
    predictor = Predictor(model, meta["classes"])
    flip = predictor.probs(val.images, tta=True)  # each view below is a face and its mirror image
    shifts = [predictor.probs(shifted(val.images, dy, dx), tta=True) for dy, dx in ((2, 0), (-2, 0), (0, 2), (0, -2))]
    zoom = predictor.probs(zoomed(val.images, 1.08), tta=True)
    for name, views in [("flips (2 views)", [flip]), ("flips and 2-pixel shifts (10 views)", [flip, *shifts]),
                        ("flips and an 8% zoom (4 views)", [flip, zoom])]:
        acc = (sum(views).argmax(1) == val.labels).float().mean()
        print(f"{name}: val {acc:.2%}")


if __name__ == "__main__":
    main()
