"""fernb.baselines: the numbers a CNN must beat (issue 26)."""
from __future__ import annotations

import numpy as np
import torch

from fernb import baselines
from fernb.data import load, read_pool


def test_baselines_on_the_synthetic_faces():
    pool = read_pool("synthetic")
    train, val, test = (load(split=s, pool=pool) for s in ("train", "val", "test"))
    top = int(torch.bincount(train.labels).argmax())
    assert baselines.majority(train, val, test) == [float((s.labels == top).double().mean()) for s in (val, test)]
    chance = 1 / len(train.classes)
    for features in (baselines.pixels, baselines.hog):
        val_acc, test_acc = baselines.linear(features, train, val, test, max_iter=100)
        assert chance < val_acc <= 1 and chance < test_acc <= 1  # the cartoon faces are linearly separable, mostly
    assert baselines.hog(test).shape == (len(test), 900) and baselines.pixels(test).max() <= 1
    assert np.isfinite(baselines.pixels(test)).all()
