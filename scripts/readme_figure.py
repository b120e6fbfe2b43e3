"""Draw the README's opening figure, docs/face_report.png: notebook 06's face report on scikit-image's astronaut
photo with the packaged model (rerun it when the packaged model or Grad-CAM changes).

    python scripts/readme_figure.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fernb import faces, notebook, plots
from fernb.checkpoint import load_model, packaged_checkpoint
from fernb.explain import gradcam

OUT = Path(__file__).resolve().parents[1] / "docs" / "face_report.png"


def main() -> None:
    """The same calls as notebook 06's face-report cell, saved at 100 dpi."""
    image, _ = notebook.choose_photo(None, False, None)  # the astronaut
    model, meta = load_model(packaged_checkpoint())
    found = faces.predict_faces(model, image, meta["classes"])
    crops = torch.from_numpy(np.stack([faces.crop(image, f["box"]) for f in found]))
    fig = plots.face_report(crops, [list(f["probs"].values()) for f in found], meta["classes"], gradcam(model, crops))
    fig.savefig(OUT, dpi=100, bbox_inches="tight")
    print(f"{len(found)} face(s) -> {OUT}")


if __name__ == "__main__":
    main()
