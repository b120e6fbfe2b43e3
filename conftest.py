"""Repo-wide pytest set-up: notebooks (collected by nbval) run in test mode on synthetic faces."""
from __future__ import annotations

import os
from pathlib import Path


def pytest_collection_modifyitems(session, config, items):
    """When notebooks are collected, run them in test mode with a small checkpoint trained on synthetic faces."""
    if not any(str(item.fspath).endswith(".ipynb") for item in items):
        return
    import tempfile

    from fernb.data import load, read_pool
    from fernb.train import TrainConfig, fit
    os.environ["FERNB_NOTEBOOK_TEST"] = "1"  # kernels inherit it: the notebooks switch to synthetic data
    pool = read_pool("synthetic")
    out = Path(tempfile.mkdtemp(prefix="fernb-nbtest-"))
    fit(load(split="train", pool=pool), load(split="val", pool=pool),
        TrainConfig(model="fernet_s", epochs=2, batch_size=64), out=out, progress=False)
    os.environ["FERNB_CHECKPOINT"] = str(out)
