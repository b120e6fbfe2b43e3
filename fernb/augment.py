"""Augmentation of whole batches on the training device: every random draw is per sample and seeded."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from timm.data import Mixup
from timm.data.random_erasing import RandomErasing

from fernb.errors import ConfigError, check_number

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

    def __post_init__(self):
        for name in ("flip", "erasing"):
            check_number(f"augment.{name}", getattr(self, name), 0, 1, hi_open=False)
        for name in ("degrees", "mixup", "cutmix"):
            check_number(f"augment.{name}", getattr(self, name), 0)
        check_number("augment.translate", self.translate, 0, 1)
        if not (isinstance(self.scale, (tuple, list)) and len(self.scale) == 2):
            raise ConfigError(f"augment.scale={self.scale!r}: must be a pair (lowest, highest) of numbers > 0")
        for v in self.scale:
            check_number("augment.scale", v, 0, lo_open=True)

    def only(self, name: str) -> "AugmentConfig":
        """This config with every augmentation but `name` switched off (for the preview)."""
        return replace(NONE, **{name: getattr(self, name)})


DEFAULT = AugmentConfig()
NONE = AugmentConfig(flip=0.0, degrees=0.0, scale=(1.0, 1.0), translate=0.0, erasing=0.0)


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, 48, 48] -> normalised float [B, 1, 48, 48], the input every model takes.

    No channels-last here: a one-channel batch has the same strides in both layouts; only the model's weights change.
    """
    return (images.unsqueeze(1).float() / 255.0 - MEAN) / STD


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
        random.seed(seed)  # timm's RandomErasing draws from Python's random module, which resume saves too
        self.erase = RandomErasing(cfg.erasing, mode="pixel", device=str(device)) if cfg.erasing > 0 else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        if cfg.flip or cfg.degrees or cfg.translate or cfg.scale != (1.0, 1.0):
            x = random_affine(x, cfg, self.g)
        if self.erase is not None:
            x = self.erase(x)
        return x


class Mix:
    """timm's Mixup/CutMix, seeded from its own generator: (batch, labels) -> (mixed batch, soft targets);
    with both off it returns (batch, labels) unchanged, so a training step has no branch for it."""

    def __init__(self, cfg: AugmentConfig, num_classes: int, label_smoothing: float, seed: int = 0):
        self.on = cfg.mixup > 0 or cfg.cutmix > 0
        self.g = torch.Generator().manual_seed(seed)
        self.mix = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, label_smoothing=label_smoothing,
                         num_classes=num_classes) if self.on else None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.on:
            return x, y
        # timm draws lambda and the box from numpy's global generator: seed it from ours, which resume saves
        np.random.seed(int(torch.randint(2**31, (), generator=self.g)))
        return self.mix(x, y)
