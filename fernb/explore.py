"""What notebooks 01, 02, 03 and 05 look at: odd images in a source, faces worth showing, augmentation previews,
a model's layers."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import nn

from fernb import twins
from fernb.augment import DEFAULT, AugmentConfig, BatchAugment, Mix, to_input, to_uint8
from fernb.data import IMAGE_SIZE, USAGES, Pool
from fernb.evaluate import Predictions

USAGE_TITLES = {"Training": "train", "PublicTest": "public test", "PrivateTest": "private test", "Test": "test"}


def find_oddities(pool: Pool, blank_std: float = 3.0) -> dict:
    """Near-blank images (pixel std below blank_std) and groups of pixel-identical images across all splits."""
    blank = np.flatnonzero(pool.images.reshape(len(pool.images), -1).std(1) < blank_std)
    rows = np.ascontiguousarray(pool.images.reshape(len(pool.images), -1))
    as_bytes = rows.view(np.dtype((np.void, rows.shape[1]))).ravel()  # one opaque value per image: a fast unique
    _, inverse, counts = np.unique(as_bytes, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    groups = [np.flatnonzero(inverse == g) for g in np.flatnonzero(counts > 1)]
    train = USAGES.index("Training")
    cross = sum(1 for g in groups if len(set(pool.usage[g] == train)) > 1)
    conflicting = [g for g in groups if len(set(pool.labels[g])) > 1]
    return {"blank": blank, "duplicate_groups": groups, "cross_split": cross, "conflicting_labels": len(conflicting),
            "conflicting_groups": conflicting}


def face_titles(pool: Pool, indices) -> list[str]:
    """'split / label' for each face, to title a strip of faces from a pool."""
    return [f"{USAGE_TITLES[USAGES[pool.usage[i]]]}\n{pool.classes[pool.labels[i]]}" for i in indices]


def pick_faces(images: torch.Tensor, n: int, seed: int = 0, min_std: float = 20.0) -> list[int]:
    """n random (seeded) faces with real contrast: FER-2013's blank frames make poor examples."""
    ok = torch.nonzero(images.float().flatten(1).std(1) >= min_std).flatten()
    return ok[torch.randperm(len(ok), generator=torch.Generator().manual_seed(seed))[:n]].tolist()


def preview(image: torch.Tensor, n: int = 8, cfg: AugmentConfig = DEFAULT, seed: int = 0) -> torch.Tensor:
    """n augmented variants of one uint8 face [48, 48], as uint8 [n, 48, 48]: what training sees."""
    return to_uint8(BatchAugment(cfg, seed)(to_input(image.expand(n, -1, -1))))


def preview_rows(image: torch.Tensor, n: int = 8, cfg: AugmentConfig = DEFAULT, seed: int = 0) -> dict[str, torch.Tensor]:
    """The original face, each augmentation alone, then all combined: {row name: uint8 [k, 48, 48]}.

    The original and its mirror image are shown once (a flip has one outcome); erasing happens with
    probability 1 in its row, so its effect shows in every variant.
    """
    rows = {"original": image[None], "flip (p=1)": preview(image, 1, replace(cfg.only("flip"), flip=1.0), seed)}
    for name in ("degrees", "scale", "translate", "erasing"):
        alone = replace(cfg.only(name), erasing=1.0) if name == "erasing" else cfg.only(name)
        rows[f"{name} (p=1)" if name == "erasing" else name] = preview(image, n, alone, seed)
    rows["all combined"] = preview(image, n, cfg, seed)
    return rows


def preview_mix(images: torch.Tensor, labels: torch.Tensor, classes, cfg: AugmentConfig,
                seed: int = 0) -> tuple[torch.Tensor, list[str]]:
    """Faces after mixup/cutmix as training would see them (uint8), each titled with the two classes it blends."""
    x, target = Mix(cfg, len(classes), 0.0, seed)(to_input(images), labels)
    top = target.topk(2, dim=-1)
    titles = [f"{classes[i]} {a:.0%}\n{classes[j]} {b:.0%}" if b > 0.005 else f"{classes[i]} 100%"
              for (a, b), (i, j) in zip(top.values.tolist(), top.indices.tolist())]
    return to_uint8(x), titles


def pick_per_class(pred: Predictions, seed: int = 0) -> list[int]:
    """One random (seeded) face index per true class that has any."""
    g = torch.Generator().manual_seed(seed)
    picks = []
    for k in range(len(pred.classes)):
        idx = torch.nonzero(pred.labels == k).flatten()
        if len(idx):
            picks.append(int(idx[torch.randint(len(idx), (1,), generator=g)]))
    return picks


def most_confident(pred: Predictions, k: int, n: int = 6, shown: list[int] = ()) -> tuple[list[int], list[int]]:
    """Indices of class k's faces predicted right and wrong, each sorted by falling confidence, n at most; a
    near-twin of a face already picked, here or in `shown` (other rows of a gallery), is skipped: FER-2013 holds
    the same picture more than once, re-cropped too, and under two labels (fernb.twins)."""
    order = torch.argsort(pred.confidence, descending=True)
    mine = order[pred.labels[order] == k]
    right, wrong = mine[pred.preds[mine] == k].tolist()[:20 * n], mine[pred.preds[mine] != k].tolist()[:20 * n]
    kept = set(twins.distinct(pred.images, [*shown, *right, *wrong], len(shown) + len(right) + len(wrong)))
    return [i for i in right if i in kept][:n], [i for i in wrong if i in kept][:n]  # shown ones are in neither list


def layer_table(model: nn.Module, in_chans: int = 1):
    """Every layer with its output shape for one 48x48 face and its parameter count, as a pandas DataFrame."""
    import pandas as pd
    rows, hooks = [], []
    for name, m in model.named_modules():
        if not list(m.children()):  # a leaf: conv, norm, activation, pool, linear...
            hooks.append(m.register_forward_hook(lambda m, i, o, name=name: rows.append(
                (name, m.__class__.__name__, tuple(o.shape[1:]), sum(p.numel() for p in m.parameters())))))
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, in_chans, IMAGE_SIZE, IMAGE_SIZE))
    finally:
        for h in hooks:
            h.remove()
    return pd.DataFrame(rows, columns=["layer", "type", "output shape", "parameters"])
