"""An ensemble of trained runs (issue 28): one checkpoint whose probabilities are its members' average."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fernb import checkpoint
from fernb.augment import to_input
from fernb.cli import main
from fernb.data import load, read_pool
from fernb.errors import ConfigError
from fernb.evaluate import Predictor, predict
from fernb.models import Ensemble, create_model
from fernb.train import TrainConfig, fit

PACKAGE = [sys.executable, str(Path(__file__).resolve().parents[1] / "scripts" / "package_model.py")]


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Two short runs on the synthetic faces, of two widths and seeds, and the synthetic splits."""
    pool = read_pool("synthetic")
    data = {s: load(split=s, pool=pool) for s in ("train", "val", "test")}
    runs = []
    for model, seed in (("fernet_s", 0), ("fernet_m", 1)):
        out = tmp_path_factory.mktemp(model)
        fit(data["train"], data["val"], TrainConfig(model=model, epochs=2, batch_size=64, lr=3e-3, seed=seed), out=out,
            progress=False)
        runs.append(out)
    return runs, data


@pytest.fixture(scope="module")
def joined(members, tmp_path_factory):
    """The two runs packaged as one ensemble checkpoint, scored on val."""
    runs, _ = members
    out = tmp_path_factory.mktemp("ensemble") / "both"
    done = subprocess.run([*PACKAGE, *map(str, runs), "--out", str(out), "--data", "synthetic"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    return out


def test_an_ensemble_predicts_the_average_of_its_members_probabilities(members, joined):
    runs, data = members
    model, meta = checkpoint.load(joined)
    assert isinstance(model, Ensemble) and meta["model"] == "fernet_s+fernet_m" and len(meta["members"]) == 2
    assert meta["params"] == sum(checkpoint.read_meta(r)["params"] for r in runs)
    faces = data["test"].images[:50]
    with torch.no_grad():
        x = (faces[:, None].float() / 255 - meta["normalize"]["mean"]) / meta["normalize"]["std"]
        want = sum(checkpoint.load(r)[0](x).softmax(-1) for r in runs) / 2  # float16 storage: compare loosely
        got = model(x).softmax(-1)
    assert torch.allclose(got, want, atol=2e-3)
    assert torch.allclose(Predictor(model, meta["classes"]).probs(faces, tta=False), want, atol=2e-2)  # bf16 where native
    assert meta["metrics"]["val_acc"] == pytest.approx(predict(model, data["val"], tta=True).accuracy, abs=0.02)


def test_an_ensemble_has_no_kept_epoch_to_set_against_test_but_each_run_has_its_own(members, joined):
    runs, _ = members  # notebook 04 compares a kept epoch's plain val accuracy with test: an ensemble has none
    assert checkpoint.kept_epoch(checkpoint.read_meta(joined)) is None
    meta = checkpoint.read_meta(runs[0])
    assert checkpoint.kept_epoch(meta) == (meta["metrics"]["val_acc"], 1 if meta["metrics"]["epoch"] == 2 else 2)


def test_an_ensemble_checkpoint_works_in_every_command(joined, tmp_path, capsys):
    assert main(["evaluate", "--data", "synthetic", "--checkpoint", str(joined), "--split", "val", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "fernet_s+fernet_m" and 0 <= report["accuracy"] <= 1
    assert "an ensemble of 2 networks (val accuracy" in checkpoint.summary(checkpoint.read_meta(joined))
    pytest.importorskip("onnxruntime")
    assert main(["export", "--checkpoint", str(joined), "--out", str(tmp_path / "m.onnx")]) == 0  # averages inside
    parity = float(capsys.readouterr().out.split("max |onnxruntime - torch| = ")[1].split()[0])
    assert parity < 1e-4


def test_fine_tuning_from_an_ensemble_starts_from_its_first_member(members, joined, tmp_path):
    runs, data = members
    cfg = TrainConfig(epochs=1, batch_size=64, seed=0, init=str(joined), lr=1e-9, warmup=0.0, ema_decay=0.0)
    run = fit(data["train"], data["val"], cfg, out=tmp_path / "tuned", progress=False)
    assert run["config"]["model"] == "fernet_s"  # the first run given, its best network by the script's rule
    first, _ = checkpoint.load(joined)
    tuned = run["network"].state_dict()
    same = [torch.allclose(v.float(), tuned[k].float(), atol=1e-3) for k, v in first.members[0].state_dict().items()
            if v.is_floating_point() and "running" not in k]
    assert all(same)  # lr 1e-9 and no EMA averaging: the weights it started from


def test_an_ensemble_is_joined_from_runs_not_trained(members, tmp_path):
    with pytest.raises(ConfigError, match="an ensemble is not trained as one"):
        fit(members[1]["train"], members[1]["val"], TrainConfig(model="fernet_s+fernet_m", epochs=1), out=tmp_path)
    assert isinstance(create_model("fernet_s+fernet_s"), Ensemble)


def test_members_of_other_hold_outs_are_refused_with_one_line(members, tmp_path):
    runs, data = members
    other = tmp_path / "other"
    fit(load(split="train", pool=read_pool("synthetic"), val_fraction=0.2), None,
        TrainConfig(model="fernet_s", epochs=1, batch_size=64), out=other, progress=False)
    done = subprocess.run([*PACKAGE, str(runs[0]), str(other), "--out", str(tmp_path / "x")], capture_output=True,
                          text=True)
    assert done.returncode == 2 and not (tmp_path / "x").exists()
    assert len(done.stderr.strip().splitlines()) == 1 and "share their classes" in done.stderr


def test_an_ensembles_grad_cam_averages_its_members_maps(members, joined):
    from fernb.explain import gradcam
    runs, data = members
    model, _ = checkpoint.load(joined)
    faces = data["test"].images[:4]
    cam = gradcam(model, faces)
    with torch.no_grad():
        target = model(to_input(faces)).argmax(-1)
    both = sum(gradcam(m, faces, target) for m in model.members)
    assert cam.shape == (4, 48, 48) and float(cam.max()) <= 1 + 1e-6
    assert torch.allclose(cam, both / both.flatten(1).max(1).values.clamp(min=1e-8)[:, None, None], atol=1e-5)


def test_ensemble_benchmark_refuses_other_data_in_one_line(members, tiny_root):
    """Members scored on data other than they trained on: one line naming the data, exit code 2, no traceback."""
    runs, _ = members
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "ensemble.py"
    done = subprocess.run([sys.executable, str(script), "--data", str(tiny_root), *map(str, runs)], capture_output=True,
                          text=True)
    assert done.returncode == 2 and "not the data this" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
