"""Grad-CAM: which parts of a face drove a prediction."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fernb.augment import to_input
from fernb.errors import ModelError


def last_conv(model: nn.Module) -> nn.Module:
    """The model's last Conv2d: its feature maps are the ones Grad-CAM weighs."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ModelError(f"{model.__class__.__name__} has no Conv2d layer for Grad-CAM; explain a CNN such as a FERNet")
    return convs[-1]


def gradcam(model: nn.Module, images: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Grad-CAM heat maps [N, 48, 48] in [0, 1] for uint8 faces [N, 48, 48], for target classes (default: predicted).

    By hand, not the grad-cam package: it is a dozen lines with two hooks, and the package pulls in OpenCV and more.
    """
    model.eval()
    layer, saved = last_conv(model), {}
    handles = [layer.register_forward_hook(lambda m, i, o: saved.__setitem__("act", o)),
               layer.register_full_backward_hook(lambda m, gi, go: saved.__setitem__("grad", go[0]))]
    try:
        x = to_input(images.to(next(model.parameters()).device)).requires_grad_(True)
        logits = model(x)
        target = logits.argmax(-1) if target is None else target.to(logits.device)
        model.zero_grad(set_to_none=True)
        logits.gather(1, target[:, None]).sum().backward()
    finally:
        for h in handles:
            h.remove()
    weights = saved["grad"].mean((2, 3), keepdim=True)  # one weight per channel: its average gradient
    cam = F.relu((weights * saved["act"]).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).max(1).values.clamp(min=1e-8)
    return (cam / peak[:, None, None]).detach().cpu()
