"""Augmentation of whole batches on the training device: every random draw is per sample and seeded."""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from timm.data.random_erasing import RandomErasing

# FER-2013 pixel statistics (train split), used to normalise every model's input
MEAN, STD = 0.5077, 0.2550


@dataclass(frozen=True)
class AugmentConfig:
    """The augmentation parameters; training and the notebook-02 preview both read DEFAULT."""

    flip: float = 0.5  # probability of a horizontal flip
    degrees: float = 15.0  # rotation drawn from [-degrees, degrees]
    scale: tuple[float, float] = (0.85, 1.15)
    translate: float = 0.1  # shift drawn from [-translate, translate] of the image size, per axis
    erasing: float = 0.25  # probability of erasing one random rectangle (timm's RandomErasing)
    mixup: float = 0.0  # mixup alpha (timm's Mixup); 0 turns it off
    cutmix: float = 0.0  # cutmix alpha; 0 turns it off

    def only(self, name: str) -> "AugmentConfig":
        """This config with every augmentation but `name` switched off (for the preview)."""
        return replace(NONE, **{name: getattr(self, name)})

    def to_dict(self) -> dict:
        """Plain dict for JSON."""
        return asdict(self)


DEFAULT = AugmentConfig()
NONE = AugmentConfig(flip=0.0, degrees=0.0, scale=(1.0, 1.0), translate=0.0, erasing=0.0)


def to_input(images: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """uint8 [B, 48, 48] -> normalised float [B, 1, 48, 48], the input every model takes."""
    x = (images.unsqueeze(1).float() / 255.0 - MEAN) / STD
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """The inverse of to_input: normalised float [B, 1, H, W] -> uint8 faces [B, H, W], for showing."""
    return ((x[:, 0] * STD + MEAN).clamp(0, 1) * 255).round().to(torch.uint8)


def random_affine(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Flip, rotate, scale and shift each sample of a float batch [B, C, H, W] by its own random draw, in one warp."""
    b = len(x)

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, generator=g, device=g.device).to(x.device)

    angle = uniform(-cfg.degrees, cfg.degrees) * math.pi / 180
    scale = uniform(*cfg.scale)
    flip = torch.where(uniform(0, 1) < cfg.flip, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    shift = cfg.translate * 2  # translate is a fraction of the image; the grid spans [-1, 1], twice that
    theta = torch.stack([torch.stack([cos * flip, -sin, uniform(-1, 1) * shift], 1),
                         torch.stack([sin * flip, cos, uniform(-1, 1) * shift], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class BatchAugment:
    """Callable that augments a normalised batch [B, 1, H, W]; seeded, per-sample draws."""

    def __init__(self, cfg: AugmentConfig = DEFAULT, seed: int = 0, device: str | torch.device = "cpu"):
        self.cfg = cfg
        self.g = torch.Generator(device="cpu").manual_seed(seed)
        random.seed(seed)  # timm's RandomErasing draws from Python's random module
        self.erase = RandomErasing(cfg.erasing, mode="pixel", device=str(device)) if cfg.erasing > 0 else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        if cfg.flip or cfg.degrees or cfg.translate or cfg.scale != (1.0, 1.0):
            x = random_affine(x, cfg, self.g)
        if self.erase is not None:
            x = self.erase(x)
        return x


def mixer(cfg: AugmentConfig, num_classes: int, label_smoothing: float):
    """timm's Mixup/CutMix for this config, or None when both are off."""
    if cfg.mixup <= 0 and cfg.cutmix <= 0:
        return None
    from timm.data import Mixup
    return Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, label_smoothing=label_smoothing,
                 num_classes=num_classes)


def preview(image: torch.Tensor, n: int = 8, cfg: AugmentConfig = DEFAULT, seed: int = 0) -> torch.Tensor:
    """n augmented variants of one uint8 face [48, 48], as uint8 [n, 48, 48]: what training sees."""
    x = to_input(image.expand(n, -1, -1))
    return to_uint8(BatchAugment(cfg, seed)(x))


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
    torch.manual_seed(seed)  # timm's Mixup draws from torch's and numpy's global generators
    np.random.seed(seed)
    x, target = mixer(cfg, len(classes), 0.0)(to_input(images), labels)
    top = target.topk(2, dim=-1)
    titles = [f"{classes[i]} {a:.0%}\n{classes[j]} {b:.0%}" if b > 0.005 else f"{classes[i]} 100%"
              for (a, b), (i, j) in zip(top.values.tolist(), top.indices.tolist())]
    return to_uint8(x), titles
