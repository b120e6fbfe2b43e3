"""Models: any timm architecture by name, or FERNet, a compact CNN designed for 48x48 grey faces."""
from __future__ import annotations

import difflib

import timm
import torch
from torch import nn

from fernb.data import IMAGE_SIZE
from fernb.errors import ModelError

# FERNet sizes: channel widths of its three stages at 24, 12 and 6 pixels (multiples of 32: oneDNN's fast paths)
FERNETS = {"fernet_s": (32, 64, 128), "fernet_m": (64, 96, 192), "fernet": (64, 128, 256), "fernet_l": (96, 192, 384)}


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 conv, batch norm, ReLU: the one building block of FERNet (ReLU rather than GELU: cheaper on a CPU)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class FERNet(nn.Module):
    """A VGG-style CNN for 48x48 faces: a cheap full-resolution stem, then three conv-pool-conv stages.

    Most of the compute sits at 24x24 and below, which keeps it fast on a CPU; the widths set its size.
    """

    def __init__(self, widths=(64, 128, 256), num_classes: int = 7, in_chans: int = 1, drop: float = 0.2):
        super().__init__()
        stem = widths[0] // 2
        layers = [conv_bn(in_chans, stem), nn.MaxPool2d(2)]  # 48 -> 24
        c = stem
        for i, w in enumerate(widths):
            layers += [conv_bn(c, w), conv_bn(w, w)]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))  # 24 -> 12 -> 6
            c = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(drop), nn.Linear(c, num_classes))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's rectified feature maps [N, C, 6, 6] (timm's name: Grad-CAM weighs these)."""
        return self.features(x)

    def forward_head(self, maps: torch.Tensor) -> torch.Tensor:
        """Class scores (logits) from the feature maps: global average pooling, dropout, a linear layer."""
        return self.head(maps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class Ensemble(nn.Module):
    """Trained networks that vote: forward gives the log of their mean class probabilities, so softmax of it (what
    every caller takes) is their average, and a checkpoint of it is one weights file like any model's."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = sum(m(x).float().softmax(-1) for m in self.members) / len(self.members)
        return mean.clamp_min(1e-12).log()  # the clamp keeps log finite where every member gives a class 0


def create_model(name: str = "fernet", num_classes: int = 7, in_chans: int = 1, pretrained: bool | str = False,
                 drop: float | None = None) -> nn.Module:
    """Build a model by name: a FERNet size, or any timm architecture (e.g. 'efficientnet_b0'); drop: head dropout.
    pretrained: True starts a timm model from its ImageNet weights (downloaded once), a path from a weights file;
    timm folds the RGB stem into one grey channel (in_chans=1) and makes a new classifier for num_classes.
    Names joined by '+' (e.g. 'fernet_l+fernet_m') build an Ensemble of them: how a packaged ensemble loads."""
    if "+" in name:
        if pretrained:
            raise ModelError(f"{name}: an ensemble is built from trained runs (scripts/package_model.py), not pretrained")
        return Ensemble([create_model(n, num_classes, in_chans, drop=drop) for n in name.split("+")])
    if name in FERNETS:
        if pretrained:
            raise ModelError(f"{name} has no pretrained weights; train it (fernb train) or use the packaged checkpoint")
        kw = {} if drop is None else {"drop": drop}
        return FERNet(FERNETS[name], num_classes=num_classes, in_chans=in_chans, **kw)
    if name not in timm.list_models():
        close = difflib.get_close_matches(name, [*FERNETS, *timm.list_models()], n=4, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else "see timm.list_models() or fernb.models.FERNETS"
        raise ModelError(f"unknown model {name!r}; {hint}")
    try:
        extra = {} if drop is None else {"drop_rate": drop}
        if isinstance(pretrained, str):  # a local weights file, in place of the hub's
            extra["pretrained_cfg_overlay"] = {"file": pretrained}
        model = timm.create_model(name, pretrained=bool(pretrained), num_classes=num_classes, in_chans=in_chans,
                                  **extra)
    except Exception as e:  # noqa: BLE001 - hub unreachable, no weights for this name, a bad file: one line each
        if not pretrained:
            raise
        raise ModelError(f"could not get pretrained weights for {name!r} ({e.__class__.__name__}: "
                         f"{(str(e).splitlines() or [''])[0][:120]}); they come from the Hugging Face hub over the "
                         "network: check it, give a local weights file, or train from scratch") from None
    check_input_size(model, name, in_chans)
    return model


def check_input_size(model: nn.Module, name: str, in_chans: int = 1) -> None:
    """Refuse a timm model that cannot take a 48x48 face (a ViT with a fixed 224x224 grid, say), with one line."""
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(2, in_chans, IMAGE_SIZE, IMAGE_SIZE))
    except (RuntimeError, AssertionError, ValueError) as e:
        raise ModelError(f"model {name!r} cannot take {IMAGE_SIZE}x{IMAGE_SIZE} faces ({e.__class__.__name__}: "
                         f"{str(e).splitlines()[0][:80]}); pick a CNN such as fernet_s or resnet18") from None
    model.train()


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
