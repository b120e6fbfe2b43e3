"""The copy of a model that inference runs: the same outputs, computed with fewer passes over the activations."""
from __future__ import annotations

import copy

import torch
from torch import nn


class MaxPool2x2(nn.Module):
    """2x2 max-pooling with stride 2 as two strided maxima, for inference: nn.MaxPool2d also computes the indices
    that only training needs (its backward is slower, so training keeps nn.MaxPool2d)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2  # an odd last row or column is dropped, as MaxPool2d does
        x = torch.maximum(x[..., :w:2], x[..., 1:w:2])
        return torch.maximum(x[..., :h:2, :], x[..., 1:h:2, :])


def for_inference(model: nn.Module) -> nn.Module:
    """An eval-mode copy of model for fast inference, with the same outputs: each BatchNorm that follows a Conv2d
    folded into the conv's weights, plain 2x2 max-pools as MaxPool2x2 (both only inside an nn.Sequential, where
    FERNet keeps them), and channels-last weights, the layout oneDNN's fast convolutions take."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    model = copy.deepcopy(model).eval()
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq)):
            # exactly nn.BatchNorm2d: a subclass such as timm's BatchNormAct2d also applies an activation
            if isinstance(seq[i], nn.Conv2d) and i + 1 < len(seq) and type(seq[i + 1]) is nn.BatchNorm2d:
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
