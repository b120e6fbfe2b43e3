"""Grad-CAM: which parts of a face drove a prediction."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fernb.augment import to_input
from fernb.errors import ModelError
from fernb.models import Ensemble


def last_conv(model: nn.Module) -> nn.Module:
    """The model's last Conv2d: the layer Grad-CAM weighs in a model without forward_features."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ModelError(f"{model.__class__.__name__} has no Conv2d layer for Grad-CAM; explain a CNN such as a FERNet")
    return convs[-1]


def maps_and_logits(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The last feature maps [N, C, h, w] and the logits: the rectified maps that forward_features gives where the
    model has it (FERNet, timm's CNNs), as Grad-CAM is defined on; else the last Conv2d's output, caught by a hook."""
    if hasattr(model, "forward_features") and hasattr(model, "forward_head"):
        maps = model.forward_features(x)
        return maps, model.forward_head(maps)
    saved = {}
    handle = last_conv(model).register_forward_hook(lambda m, i, o: saved.__setitem__("maps", o))
    try:
        logits = model(x)
    finally:
        handle.remove()
    return saved["maps"], logits


def gradcam(model: nn.Module, images: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Grad-CAM heat maps [N, 48, 48] in [0, 1] for uint8 faces [N, 48, 48], for target classes (default: predicted);
    an ensemble's map is its members' maps averaged, each for the ensemble's target.

    By hand, not the grad-cam package: it is a dozen lines, and the package pulls in OpenCV and more.
    """
    model.eval()
    if isinstance(model, Ensemble):
        if target is None:
            with torch.no_grad():
                target = model(to_input(images.to(next(model.parameters()).device))).argmax(-1)
        return _peak_one(sum(gradcam(m, images, target) for m in model.members))
    x = to_input(images.to(next(model.parameters()).device)).requires_grad_(True)  # a graph even with frozen weights
    maps, logits = maps_and_logits(model, x)
    target = logits.argmax(-1) if target is None else target.to(logits.device)
    grads, = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), maps)
    weights = grads.mean((2, 3), keepdim=True)  # one weight per channel: its average gradient
    cam = F.relu((weights * maps).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return _peak_one(cam.detach().cpu())


def _peak_one(cam: torch.Tensor) -> torch.Tensor:
    """Each map scaled so that its hottest pixel is 1 (an all-zero map stays zero)."""
    peak = cam.flatten(1).max(1).values.clamp(min=1e-8)
    return cam / peak[:, None, None]
