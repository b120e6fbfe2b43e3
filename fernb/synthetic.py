"""Seeded synthetic cartoon faces in FER-2013's 7 classes: the offline stand-in for tests and demos.

It only renders arrays; `fernb.data` turns them into a Pool, so this module imports nothing of fernb.
"""
from __future__ import annotations

import numpy as np

# Per-class mean of each face parameter; every sample adds noise, so classes overlap (learnable, not trivially).
#              mouth curve, mouth open, brow tilt, brow raise, eye open, mouth skew
_PARAMS = {
    "angry":    (-0.3, 0.15, 0.8, -0.4, 0.45, 0.0),
    "disgust":  (-0.4, 0.10, 0.5, -0.3, 0.35, 0.6),
    "fear":     (-0.2, 0.45, -0.5, 0.5, 0.95, 0.0),
    "happy":    (0.9, 0.30, 0.0, 0.0, 0.55, 0.0),
    "neutral":  (0.0, 0.05, 0.0, 0.0, 0.65, 0.0),
    "sad":      (-0.7, 0.05, -0.6, 0.1, 0.45, 0.0),
    "surprise": (0.0, 0.95, 0.0, 0.8, 1.05, 0.0),
}
_NOISE = np.array([0.30, 0.20, 0.35, 0.30, 0.20, 0.25])
# images per class and split, skewed like FER-2013 (disgust is rare)
TRAIN_PER_CLASS = {"angry": 200, "disgust": 40, "fear": 200, "happy": 360, "neutral": 250, "sad": 240, "surprise": 160}
TEST_PER_CLASS = {c: max(10, n // 4) for c, n in TRAIN_PER_CLASS.items()}


def _soft(d: np.ndarray, edge: float = 0.03) -> np.ndarray:
    """Anti-aliased inside-ness from a signed distance (negative inside)."""
    return 1.0 / (1.0 + np.exp(np.clip(d / edge, -30, 30)))


def render_faces(params: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """Draw faces [N, size, size] uint8 from parameters [N, 6], with random pose, lighting and noise."""
    n = len(params)
    curve, mouth_open, tilt, raise_, eye_open, skew = (params[:, i, None, None] for i in range(6))
    g = np.linspace(-1, 1, size)
    y0, x0 = np.meshgrid(g, g, indexing="ij")
    angle = rng.uniform(-0.2, 0.2, (n, 1, 1))
    scale = rng.uniform(0.9, 1.1, (n, 1, 1))
    dx, dy = rng.uniform(-0.12, 0.12, (2, n, 1, 1))
    x = (np.cos(angle) * (x0 - dx) + np.sin(angle) * (y0 - dy)) / scale
    y = (-np.sin(angle) * (x0 - dx) + np.cos(angle) * (y0 - dy)) / scale
    background = rng.uniform(20, 120, (n, 1, 1))
    skin = rng.uniform(140, 230, (n, 1, 1))
    img = background + (skin - background) * _soft(np.sqrt((x / 0.72) ** 2 + (y / 0.9) ** 2) - 1, 0.05)
    ink = np.zeros_like(img)
    for side in (-1, 1):
        ex = x - side * 0.3
        ink = np.maximum(ink, _soft(np.sqrt((ex / 0.13) ** 2 + ((y + 0.15) / (0.02 + 0.08 * eye_open)) ** 2) - 1))
        # brow: a short bar above the eye whose inner end drops by `tilt`
        t = np.clip(side * ex / 0.16, -1, 1)
        brow_y = -0.4 - 0.12 * raise_ + 0.08 * tilt * (-t)
        ink = np.maximum(ink, _soft(np.maximum(np.abs(y - brow_y) - 0.035, np.abs(ex) - 0.16)))
    u = np.clip(x / 0.3, -1.2, 1.2)
    mouth_y = 0.45 - 0.14 * curve * (u ** 2 - 0.3) + 0.08 * skew * u
    half = 0.03 + 0.12 * np.clip(mouth_open, 0, None) * np.clip(1 - u ** 2, 0, None)
    ink = np.maximum(ink, _soft(np.maximum(np.abs(y - mouth_y) - half, np.abs(x) - 0.3)))
    img = img * (1 - 0.85 * ink) + rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def synthetic_faces(per_class: dict[str, int], seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [N, size, size] and labels int64 [N] (indices into per_class's keys), per_class[c] faces of c."""
    rng = np.random.default_rng(seed)
    names = list(per_class)
    labels = np.concatenate([np.full(n, i, np.int64) for i, n in enumerate(per_class.values())])
    means = np.array([_PARAMS[names[i]] for i in labels])
    params = means + rng.normal(0, 1, means.shape) * _NOISE
    return render_faces(params, rng, size), labels
