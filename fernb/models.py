"""Models: any timm architecture by name, or FERNet, a compact CNN designed for 48x48 grey faces."""
from __future__ import annotations

import copy
import difflib

import timm
import torch
from torch import nn

from fernb.data import IMAGE_SIZE
from fernb.errors import ModelError

# FERNet sizes: channel widths of its three stages at 24, 12 and 6 pixels (multiples of 32: oneDNN's fast paths)
FERNETS = {"fernet_s": (32, 64, 128), "fernet_m": (64, 96, 192), "fernet": (64, 128, 256), "fernet_l": (96, 192, 384)}


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 conv, batch norm, ReLU: the one building block of FERNet (ReLU, not GELU: 19% faster on a CPU)."""
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def model_names() -> list[str]:
    """Every name create_model accepts: the FERNets, then timm's architectures."""
    return list(FERNETS) + timm.list_models()


def create_model(name: str = "fernet", num_classes: int = 7, in_chans: int = 1, pretrained: bool = False,
                 drop: float | None = None) -> nn.Module:
    """Build a model by name: a FERNet size, or any timm architecture (e.g. 'efficientnet_b0'); drop: head dropout."""
    if name in FERNETS:
        if pretrained:
            raise ModelError(f"{name} has no pretrained weights; train it (fernb train) or use the packaged checkpoint")
        kw = {} if drop is None else {"drop": drop}
        return FERNet(FERNETS[name], num_classes=num_classes, in_chans=in_chans, **kw)
    if name not in timm.list_models():
        close = difflib.get_close_matches(name, model_names(), n=4, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else "see fernb.models.model_names()"
        raise ModelError(f"unknown model {name!r}; {hint}")
    try:
        extra = {} if drop is None else {"drop_rate": drop}
        model = timm.create_model(name, pretrained=pretrained, num_classes=num_classes, in_chans=in_chans, **extra)
    except (OSError, RuntimeError, ValueError) as e:  # hub unreachable, no weights for this name, ...
        if not pretrained:
            raise
        raise ModelError(f"could not get pretrained weights for {name!r} ({e.__class__.__name__}: "
                         f"{str(e).splitlines()[0][:120]}); check the network, or pass pretrained=False") from None
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


class MaxPool2x2(nn.Module):
    """2x2 max-pooling with stride 2 as two strided maxima, for inference: faster than nn.MaxPool2d on a CPU,
    which also computes the indices that only training needs (its backward is slower, so training keeps it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2  # an odd last row or column is dropped, as MaxPool2d does
        x = torch.maximum(x[..., :w:2], x[..., 1:w:2])
        return torch.maximum(x[..., :h:2, :], x[..., 1:h:2, :])


def for_inference(model: nn.Module) -> nn.Module:
    """An eval-mode copy of model for fast inference, with the same outputs: each BatchNorm that follows a Conv2d
    folded into the conv's weights (one pass over the activations fewer per layer), plain 2x2 max-pools as
    MaxPool2x2 (both only inside an nn.Sequential, where FERNet keeps them), and channels-last weights, the layout
    fernb's inputs have (to_input(..., channels_last=True))."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    model = copy.deepcopy(model).eval()
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq)):
            if isinstance(seq[i], nn.Conv2d) and i + 1 < len(seq) and isinstance(seq[i + 1], nn.BatchNorm2d):
                seq[i], seq[i + 1] = fuse_conv_bn_eval(seq[i], seq[i + 1]), nn.Identity()
            elif _is_2x2(seq[i]):
                seq[i] = MaxPool2x2()
    return model.to(memory_format=torch.channels_last)


def _is_2x2(pool: nn.Module) -> bool:
    """True for a plain 2x2, stride-2 nn.MaxPool2d (FERNet's), the only kind MaxPool2x2 replaces; not a subclass,
    which may pad in its forward (timm's MaxPool2dSame)."""
    if type(pool) is not nn.MaxPool2d:
        return False
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    return (pair(pool.kernel_size) == (2, 2) and pair(pool.stride) == (2, 2) and pair(pool.padding) == (0, 0)
            and pair(pool.dilation) == (1, 1) and not pool.ceil_mode and not pool.return_indices)


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


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
