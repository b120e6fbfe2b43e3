"""Nothing lost, nothing silently wrong: outputs checked against inputs, checkpoints against data (issue 29)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from fernb import checkpoint
from fernb.cli import main
from fernb.data import load, read_pool
from fernb.errors import CheckpointError, ConfigError, DataError, OutputError
from fernb.evaluate import predict
from fernb.files import LOCK, check_run_folder, unique_names
from fernb.train import TrainConfig, fit
from tests.test_bad_input import fails, snapshot

QUICK = ["--model", "fernet_s", "--epochs", "1", "--batch-size", "64"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished one-epoch run on synthetic faces."""
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--data", "synthetic", *QUICK, "--out", str(out), "--json"]) == 0
    return out


@pytest.fixture(scope="module")
def synth():
    pool = read_pool("synthetic")
    return {s: load(split=s, pool=pool) for s in ("train", "val", "test")}


# ---------------------------------------------------------------- 1. outputs checked against inputs


def test_every_command_refuses_its_own_input_as_its_output(capsys, run_dir, tmp_path, tiny_root):
    """The property: a command given one of its inputs (or a path inside one) as an output refuses, touching nothing."""
    clip = tmp_path / "clip.avi"
    clip.write_bytes(b"not really a video, and it must survive")
    photo = tmp_path / "face.png"
    Image.fromarray(np.full((64, 64), 128, np.uint8)).save(photo)
    before = {p: p.read_bytes() for p in (clip, photo)}
    ckpt_before = snapshot(run_dir)
    data_before = snapshot(tiny_root)
    for argv, says in ((["predict", str(clip), "--csv", str(clip), "--checkpoint", str(run_dir)], "is an input"),
                       (["predict", str(photo), "--csv", str(photo), "--checkpoint", str(run_dir)], "is an input"),
                       (["export", "--checkpoint", str(run_dir), "--out", str(run_dir / "weights.safetensors")],
                        "inside"),
                       (["train", "--data", str(tiny_root), *QUICK, "--out", str(tiny_root / "runs")], "inside")):
        fails(capsys, argv, says)
    assert {p: p.read_bytes() for p in (clip, photo)} == before
    assert snapshot(run_dir) == ckpt_before and snapshot(tiny_root) == data_before


def test_annotate_never_overwrites_an_input_and_keeps_same_named_photos_apart(capsys, run_dir, tmp_path):
    from skimage import data as samples
    a, b = tmp_path / "cam1", tmp_path / "cam2"
    a.mkdir()
    b.mkdir()
    for folder in (a, b):
        Image.fromarray(samples.astronaut()).save(folder / "IMG_0001.jpg")
    victim = a / "IMG_0001_annotated.jpg"
    victim.write_bytes(b"someone's own file")
    fails(capsys, ["predict", str(victim), str(a / "IMG_0001.jpg"), "--annotate", str(a), "--checkpoint",
                   str(run_dir)], "is an input")
    assert victim.read_bytes() == b"someone's own file"
    out = tmp_path / "out"
    assert main(["predict", str(a / "IMG_0001.jpg"), str(b / "IMG_0001.jpg"), "--annotate", str(out),
                 "--checkpoint", str(run_dir)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["IMG_0001_2_annotated.jpg", "IMG_0001_annotated.jpg"]
    capsys.readouterr()
    fails(capsys, ["predict", str(a / "IMG_0001.jpg"), "--annotate", str(out), "--checkpoint", str(run_dir)],
          "exists already", "--force")
    assert main(["predict", str(a / "IMG_0001.jpg"), "--annotate", str(out), "--checkpoint", str(run_dir),
                 "--force"]) == 0


def test_unique_names():
    assert unique_names(["a/x.jpg", "b/x.jpg", "c/y.png", "d/x.png"], "_annotated") == \
        ["x_annotated", "x_2_annotated", "y_annotated", "x_3_annotated"]


def test_a_folder_of_someone_elses_files_is_not_taken_as_free(capsys, tmp_path):
    foreign = tmp_path / "theirs"
    foreign.mkdir()
    (foreign / "weights.safetensors").write_bytes(b"their weights")
    fails(capsys, ["train", "--data", "synthetic", *QUICK, "--out", str(foreign)], "no complete fernb checkpoint")
    (foreign / "weights.safetensors").unlink()
    (foreign / "notes.txt").write_text("mine")
    fails(capsys, ["train", "--data", "synthetic", *QUICK, "--out", str(foreign)], "files no fernb run wrote")
    assert (foreign / "notes.txt").read_text() == "mine"


def test_fit_itself_refuses_a_run_it_did_not_start(synth, run_dir):
    before = snapshot(run_dir)
    with pytest.raises(OutputError, match="another run"):
        fit(synth["train"], synth["val"], TrainConfig(model="fernet_s", epochs=1, batch_size=64), out=run_dir,
            progress=False)
    assert snapshot(run_dir) == before


def test_a_run_folder_being_written_is_locked(synth, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / LOCK).write_text(json.dumps({"pid": writer.pid}))
        with pytest.raises(OutputError, match=f"process {writer.pid}"):
            fit(synth["train"], None, TrainConfig(model="fernet_s", epochs=1, batch_size=64), out=out, progress=False)
    finally:
        writer.kill()
        writer.wait()
    check_run_folder(out)  # its process is gone: the lock it left is free again


def test_notebook_03_leaves_another_run_alone(run_dir, tmp_path, monkeypatch):
    from fernb import notebook
    monkeypatch.setattr(notebook, "notice", lambda text: None)
    latest = tmp_path / "latest"
    shutil.copytree(run_dir, latest)
    out, own = notebook.run_folder(latest)
    assert out == str(tmp_path / "latest-1") and not own
    checkpoint.update_meta(latest, made_by=notebook.MADE_BY)
    assert notebook.run_folder(latest) == (str(latest), True)
    assert notebook.run_folder(tmp_path / "new") == (str(tmp_path / "new"), False)


# ---------------------------------------------------------------- 2. checkpoints reconciled with the data


def test_a_checkpoint_whose_classes_come_in_another_order_scores_the_same(run_dir, tmp_path, synth):
    model, meta = checkpoint.load(run_dir)
    plain = predict(model, synth["test"]).accuracy
    order = [3, 0, 6, 1, 5, 2, 4]  # a consistent checkpoint: head rows and class names permuted together
    state = model.state_dict()
    state["head.3.weight"], state["head.3.bias"] = state["head.3.weight"][order], state["head.3.bias"][order]
    model.load_state_dict(state)
    shuffled = tmp_path / "shuffled"
    checkpoint.save(shuffled, model, {**meta, "classes": [meta["classes"][i] for i in order]})
    again, _ = checkpoint.load(shuffled)
    assert predict(again, synth["test"]).accuracy == pytest.approx(plain, abs=1e-9)


def test_resume_refuses_other_data(capsys, tmp_path):
    from tests.conftest import write_folder
    write_folder(tmp_path / "mine", per_class=20, splits=("train",))
    out = tmp_path / "run"
    assert main(["train", "--data", "synthetic", *QUICK, "--out", str(out), "--json"]) == 0
    capsys.readouterr()
    fails(capsys, ["train", "--data", str(tmp_path / "mine"), "--out", str(out), "--resume"], "other faces")


def test_val_of_other_data_is_refused(capsys, run_dir, tiny_root):
    fails(capsys, ["evaluate", "--data", str(tiny_root), "--split", "val", "--checkpoint", str(run_dir)],
          "not the data", "--split test")
    assert main(["evaluate", "--data", "synthetic", "--split", "val", "--checkpoint", str(run_dir)]) == 0


def test_weights_that_are_not_floating_point_are_refused(run_dir, tmp_path):
    from safetensors.torch import load_file, save_file
    bad = tmp_path / "ints"
    shutil.copytree(run_dir, bad)
    state = load_file(str(bad / "weights.safetensors"))
    save_file({k: v.to(torch.int32) if v.is_floating_point() else v for k, v in state.items()},
              str(bad / "weights.safetensors"))
    meta = json.loads((bad / "config.json").read_text())
    del meta["weights_sha256"]  # as a checkpoint made by hand, or by an older fernb, has none
    (bad / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="not floating point"):
        checkpoint.load(bad)


# ---------------------------------------------------------------- 3.-8. errors where they start, numbers stay numbers


def test_a_loss_that_is_not_finite_stops_the_run_and_keeps_nothing(synth, tmp_path):
    out = tmp_path / "nan"
    with pytest.raises(ConfigError, match="lr=1e\\+30.*lower it"):
        fit(synth["train"], synth["val"], TrainConfig(model="fernet_s", epochs=2, batch_size=64, lr=1e30), out=out,
            progress=False)
    assert not (out / "weights.safetensors").exists()


def test_an_empty_val_split_is_refused(synth):
    empty = load(split="val", pool=read_pool("synthetic"))
    empty.images, empty.labels = empty.images[:0], empty.labels[:0]
    with pytest.raises(DataError, match="val split is empty"):
        fit(synth["train"], empty, TrainConfig(model="fernet_s", epochs=1, batch_size=64), progress=False)


@pytest.mark.parametrize("device", ["cuda", "cuda:7", "mps", "tpu", "gpu0"])
def test_a_device_this_machine_lacks_is_one_line(capsys, device):
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has that GPU")
    fails(capsys, ["train", "--data", "synthetic", *QUICK, "--device", device, "--out", "/tmp/fernb-never"],
          f"device={device!r}")


def test_a_damaged_cache_is_rebuilt_with_a_note(tiny_root, capsys):
    first = read_pool(tiny_root)
    cache = next((tiny_root / ".fernb-cache").glob("pool-*.npz"))
    cache.write_bytes(b"PK\x03\x04 not a zip at all")
    again = read_pool(tiny_root)
    assert np.array_equal(again.images, first.images) and "damaged; rebuilding" in capsys.readouterr().err


def test_a_csv_with_a_byte_order_mark_reads(tmp_path):
    path = tmp_path / "fer2013.csv"
    pixels = " ".join(["7"] * 2304)
    path.write_text(f"\ufeffemotion,pixels,Usage\n3,{pixels},Training\n", encoding="utf-8")
    pool = read_pool(path)
    assert len(pool.labels) == 1 and pool.images[0, 0, 0] == 7


def test_the_demo_warns_when_it_listens_beyond_this_machine(capsys, monkeypatch):
    import fernb.demo
    monkeypatch.setattr(fernb.demo, "launch", lambda *a, **k: None)
    assert main(["demo", "--host", "0.0.0.0", "--port", "7861"]) == 0
    assert "WARNING" in capsys.readouterr().err
    assert main(["demo", "--port", "7861"]) == 0
    assert "WARNING" not in capsys.readouterr().err


@pytest.mark.parametrize("field,value", [("model", None), ("augment", {"flip": 0.5}), ("class_weights", "no"),
                                         ("epochs", "3"), ("seed", 1.5), ("device", 0), ("precision", None)])
def test_train_config_checks_types_with_values(field, value):
    with pytest.raises(ConfigError, match=f"^{field}="):
        TrainConfig(**{field: value})


def test_a_resume_state_left_by_a_killed_run_does_not_lock_the_folder(run_dir, tmp_path):
    out = tmp_path / "killed"
    shutil.copytree(run_dir, out)
    (out / LOCK).write_text(json.dumps({"pid": 2**22 + 12345}))  # no such process
    check_run_folder(out, resume=True)
    assert os.path.exists(out / LOCK)


# ---------------------------------------------------------------- what a review of this change found


def test_fast_inference_keeps_an_activation_inside_a_norm_layer():
    from timm.layers import BatchNormAct2d

    from fernb.fast import for_inference
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), BatchNormAct2d(8), torch.nn.Conv2d(8, 4, 3)).eval()
    with torch.no_grad():
        model[1].running_mean.normal_()
        x = torch.randn(2, 1, 12, 12)
        assert torch.allclose(for_inference(model)(x), model(x), atol=1e-5)


def test_resume_needs_a_resume_state_even_in_python(synth, run_dir, tmp_path):
    out = tmp_path / "no-state"
    shutil.copytree(run_dir, out)
    (out / "resume.pt").unlink()
    before = snapshot(out)
    with pytest.raises(OutputError, match="no resume state"):
        fit(synth["train"], synth["val"], TrainConfig(model="fernet_s", epochs=1, batch_size=64), out=out,
            resume=True, progress=False)
    assert snapshot(out) == before


def test_fit_refuses_an_output_inside_its_training_data(tmp_path):
    from tests.conftest import write_folder
    write_folder(tmp_path / "faces", per_class=20, splits=("train",))
    train = load(tmp_path / "faces", "train", val_fraction=0)
    with pytest.raises(OutputError, match="inside"):
        fit(train, None, TrainConfig(model="fernet_s", epochs=1, batch_size=64), out=tmp_path / "faces" / "run",
            progress=False)


def test_names_stay_unique_when_a_stem_already_ends_like_a_suffix():
    names = unique_names(["a/x.jpg", "b/x.jpg", "c/x_2.jpg"], "_annotated")
    assert len(set(names)) == 3


def test_a_live_lock_is_never_taken_over(tmp_path):
    from fernb.files import take_lock
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK).write_text(json.dumps({"pid": writer.pid}))
        with pytest.raises(OutputError, match=f"process {writer.pid}"):
            take_lock(tmp_path)
        assert json.loads((tmp_path / LOCK).read_text())["pid"] == writer.pid
    finally:
        writer.kill()
        writer.wait()
    take_lock(tmp_path)  # its process is gone: taken over
    assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()


def test_init_packaged_without_a_packaged_model_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(checkpoint, "packaged_checkpoint", lambda: None)
    fails(capsys, ["train", "--data", "synthetic", "--init", "packaged", "--epochs", "1", "--out", "/tmp/fernb-never"],
          "no packaged model")


def test_mixup_with_an_odd_batch_is_refused():
    from fernb.augment import AugmentConfig
    with pytest.raises(ConfigError, match="batch_size=63.*even"):
        TrainConfig(batch_size=63, augment=AugmentConfig(mixup=0.2))
