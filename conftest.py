"""Repo-wide pytest set-up: the notebooks (collected by nbval) run on synthetic faces, steered by the environment."""
from __future__ import annotations

import os
from pathlib import Path


def pytest_collection_modifyitems(session, config, items):
    """When notebooks are collected, steer their kernels (which inherit the environment) to a quick run:
    synthetic faces, two epochs in notebook 03, a small checkpoint trained here for 04-06, and a home of their own."""
    if not any(str(item.fspath).endswith(".ipynb") for item in items):
        return
    import tempfile

    from fernb.data import load, read_pool
    from fernb.train import TrainConfig, fit
    pool = read_pool("synthetic")
    out = Path(tempfile.mkdtemp(prefix="fernb-nbtest-"))
    fit(load(split="train", pool=pool), load(split="val", pool=pool),
        TrainConfig(model="fernet_s", epochs=2, batch_size=64), out=out, progress=False)
    # set after the tests' own modules were imported: tests/conftest.py has read the real data's path already.
    # FERNB_HOME: 03's run and 04-05's search go to a folder of the tests' own, never the checkout's runs/latest,
    # where a student's own run of 03 (or the one the committed outputs came from) lives
    os.environ.update(FERNB_DATA="synthetic", FERNB_EPOCHS="2", FERNB_CHECKPOINT=str(out),
                      FERNB_HOME=tempfile.mkdtemp(prefix="fernb-nbhome-"))
