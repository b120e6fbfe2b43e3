"""ONNX export of a checkpoint, with the normalisation and softmax inside the graph, and a parity check."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from fernb.augment import MEAN, STD
from fernb.data import IMAGE_SIZE


class WithPreprocessing(nn.Module):
    """Raw grey pixels [B, 1, 48, 48] in 0..255 -> class probabilities [B, C]: all a deployment needs."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model((pixels / 255.0 - MEAN) / STD).softmax(-1)


def export_onnx(model: nn.Module, out: str | Path, opset: int = 17) -> Path:
    """Write model as ONNX with a dynamic batch axis: input 'pixels', output 'probs'."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    wrapped = WithPreprocessing(model.float().eval().to(memory_format=torch.contiguous_format))
    dummy = torch.zeros(2, 1, IMAGE_SIZE, IMAGE_SIZE)
    torch.onnx.export(wrapped, (dummy,), str(out), input_names=["pixels"], output_names=["probs"],
                      dynamic_axes={"pixels": {0: "batch"}, "probs": {0: "batch"}}, opset_version=opset, dynamo=False)
    return out


def onnx_parity(model: nn.Module, onnx_path: str | Path, images: torch.Tensor) -> float:
    """Max absolute difference between onnxruntime's and torch's probabilities on uint8 faces [N, 48, 48]."""
    import onnxruntime as ort
    pixels = images[:, None].float()
    with torch.no_grad():
        ref = WithPreprocessing(model.float().eval())(pixels).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(["probs"], {"pixels": pixels.numpy()})[0]
    return float(np.abs(got - ref).max())
