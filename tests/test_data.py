"""fernb.data: the folder layout, the CSV, splits, the cache and the default source."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fernb import data, sources
from fernb.data import CLASSES, load, read_pool
from fernb.errors import DataError
from tests.conftest import write_csv, write_folder


def test_folder_loads_pixels_labels_and_classes(tiny_root):
    written = write_folder(tiny_root.parent / "again", per_class=4)  # same seed: same faces as tiny_root
    test = load(tiny_root, "test")
    assert test.images.dtype == torch.uint8 and test.images.shape == (28, 48, 48)
    assert test.labels.dtype == torch.int64 and test.classes == CLASSES
    # files are read class folder by class folder, so compare as sorted multisets per class
    images, labels = written["test"]
    for k in range(len(CLASSES)):
        got = sorted(x.tobytes() for x in test.images[test.labels == k].numpy())
        assert got == sorted(x.tobytes() for x in images[labels == k])


def test_val_is_stratified_seeded_and_disjoint(tmp_path):
    write_folder(tmp_path, per_class=20, splits=("train",))
    pool = read_pool(tmp_path)
    train, val = data.split_indices(pool, "train", 0.2, seed=1), data.split_indices(pool, "val", 0.2, seed=1)
    assert len(set(train) & set(val)) == 0
    assert sorted(np.concatenate([train, val])) == list(data.split_indices(pool, "trainval"))
    assert np.bincount(pool.labels[val], minlength=7).tolist() == [4] * 7
    assert list(val) == list(data.split_indices(pool, "val", 0.2, seed=1))
    assert list(val) != list(data.split_indices(pool, "val", 0.2, seed=2))
    assert len(data.split_indices(pool, "train", 0.0)) == 140


def test_test_halves_by_file_name(tmp_path):
    write_folder(tmp_path, per_class=4, splits=("test",))
    assert len(load(tmp_path, "test")) == 28
    assert len(load(tmp_path, "publictest")) == 14 and len(load(tmp_path, "privatetest")) == 14
    with pytest.raises(DataError, match="no training images"):
        load(tmp_path, "train")


def test_test_folder_with_one_half_only(tmp_path):
    write_folder(tmp_path, per_class=2, splits=("test",), test_names=("PublicTest",))
    assert len(load(tmp_path, "publictest")) == len(load(tmp_path, "test")) == 14
    with pytest.raises(DataError, match="PrivateTest"):
        load(tmp_path, "privatetest")


def test_csv_round_trip_keeps_labels_and_splits(tiny_root, tmp_path):
    pool = read_pool(tiny_root)
    write_csv(pool, tmp_path / "fer2013.csv")
    back = read_pool(tmp_path / "fer2013.csv")
    for split in ("train", "val", "test", "publictest", "privatetest"):
        a, b = load(split=split, pool=pool), load(split=split, pool=back)
        assert torch.equal(a.labels, b.labels) and torch.equal(a.images, b.images), split


def test_csv_maps_kaggle_label_order(tmp_path):
    row = " ".join(["7"] * 2304)
    (tmp_path / "f.csv").write_text(f"emotion,pixels,Usage\n4,{row},Training\n6,{row},PublicTest\n1,{row},PrivateTest\n")
    pool = read_pool(tmp_path / "f.csv")
    assert [CLASSES[i] for i in pool.labels] == ["sad", "neutral", "disgust"]
    assert pool.images.shape == (3, 48, 48) and int(pool.images.max()) == 7


def test_cache_is_used_and_rebuilt_when_the_folder_changes(tiny_root, monkeypatch):
    first = read_pool(tiny_root)
    assert list((tiny_root / ".fernb-cache").glob("pool-*.npz"))

    def no_decoding(path):
        raise AssertionError("decoded although the cache was valid")

    monkeypatch.setattr(sources, "decode_image", no_decoding)
    again = read_pool(tiny_root)
    assert np.array_equal(first.images, again.images) and np.array_equal(first.labels, again.labels)
    monkeypatch.undo()
    one = next((tiny_root / "train" / "happy").iterdir())
    one.rename(one.with_name("Training_99999.png"))  # same count, new name
    monkeypatch.setattr(sources, "decode_image", no_decoding)
    with pytest.raises(AssertionError, match="decoded"):
        read_pool(tiny_root)


def test_cache_never_writes_into_a_read_only_folder(tiny_root, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    for p in sorted(tiny_root.rglob("*"), reverse=True) + [tiny_root]:
        if p.is_dir():
            p.chmod(0o555)
    try:
        read_pool(tiny_root)
        assert not (tiny_root / ".fernb-cache").exists()
        assert list((tmp_path / "user-cache").rglob("pool-*.npz"))
    finally:
        for p in [tiny_root] + list(tiny_root.rglob("*")):
            if p.is_dir():
                p.chmod(0o755)


def test_default_source_order(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FERNB_DATA", raising=False)
    assert data.resolve_source() == "synthetic"
    pool = read_pool()
    assert pool.layout == "synthetic" and "synthetic" in capsys.readouterr().err
    (tmp_path / "data" / "fer2013").mkdir(parents=True)
    assert data.resolve_source() == "data/fer2013"
    monkeypatch.setenv("FERNB_DATA", "/somewhere/else")
    assert data.resolve_source() == "/somewhere/else"
    assert data.resolve_source("given") == "given"


def test_synthetic_set_is_seeded_and_has_every_class():
    a, b = data_pool(0), data_pool(0)
    assert np.array_equal(a.images, b.images)
    assert not np.array_equal(a.images, data_pool(1).images)
    for split in ("train", "val", "test", "publictest", "privatetest"):
        assert set(load(split=split, pool=a).labels.tolist()) == set(range(7)), split


def data_pool(seed):
    return sources.synthetic_pool(seed)


def test_describe_counts(tiny_root):
    info = data.describe(read_pool(tiny_root))
    assert info["splits"]["trainval"]["total"] == 28 and info["splits"]["test"]["total"] == 28
    assert info["splits"]["train"]["total"] + info["splits"]["val"]["total"] == 28
    assert info["image_size"] == [48, 48] and info["classes"] == list(CLASSES)


def test_real_fer2013_counts(real_root):
    info = data.describe(read_pool(real_root))
    assert info["splits"]["trainval"]["total"] == 28709
    assert info["splits"]["test"]["total"] == 3589 and len(info["classes"]) == 7


def test_real_fer2013_csv_round_trip(real_root, tmp_path):
    pool = read_pool(real_root)
    write_csv(pool, tmp_path / "fer2013.csv")
    back = read_pool(tmp_path / "fer2013.csv")
    for split in ("train", "val", "test", "publictest"):
        a, b = load(split=split, pool=pool), load(split=split, pool=back)
        assert a.counts() == b.counts() and torch.equal(a.labels, b.labels), split


def test_any_labelled_folder_evaluates_on_the_classes_it_has(tmp_path, capsys):
    """CK+-style: six classes, other names, no train/: a flat folder is one test split, mapped by name (issue 25)."""
    import json
    import shutil

    from fernb.cli import main
    write_folder(tmp_path / "fer", per_class=4, splits=("test",))
    flat = tmp_path / "ck"
    shutil.copytree(tmp_path / "fer" / "test", flat)
    shutil.rmtree(flat / "neutral")
    (flat / "angry").rename(flat / "anger")
    (flat / "happy").rename(flat / "Happiness")
    assert main(["evaluate", "--data", str(flat), "--json"]) == 0
    out = capsys.readouterr()
    m = json.loads(out.out)
    assert m["n"] == 24 and sorted(m["per_class"]) == sorted(set(CLASSES) - {"neutral"})
    assert "Happiness -> happy" in out.err and "anger -> angry" in out.err and "none of neutral" in out.err
    # the happy faces are the same as in the FER-2013 layout, so their recall is too (precision is not: the
    # full set also has neutral faces that may be taken for happy)
    assert main(["evaluate", "--data", str(tmp_path / "fer"), "--json"]) == 0
    whole = json.loads(capsys.readouterr().out)
    assert all(m["per_class"]["happy"][k] == whole["per_class"]["happy"][k] for k in ("recall", "recall_ci", "support"))


def test_a_class_the_model_lacks_is_refused_or_left_out(tmp_path, capsys):
    from fernb.cli import main
    write_folder(tmp_path / "fer", per_class=4, splits=("test",))
    extra = tmp_path / "fer" / "test" / "contempt"
    extra.mkdir()
    for i in range(3):
        (extra / f"c{i}.png").write_bytes((tmp_path / "fer" / "test" / "sad").iterdir().__next__().read_bytes())
    assert main(["evaluate", "--data", str(tmp_path / "fer")]) == 2
    err = capsys.readouterr().err
    assert "contempt" in err and "--skip-unknown" in err.splitlines()[-1]
    assert main(["evaluate", "--data", str(tmp_path / "fer"), "--skip-unknown", "--json"]) == 0
    assert "left out 3 faces of contempt" in capsys.readouterr().err
    (tmp_path / "fer" / "test" / "anger").mkdir()
    assert main(["evaluate", "--data", str(tmp_path / "fer"), "--skip-unknown"]) == 2
    assert "would both be class angry" in capsys.readouterr().err


def test_train_on_your_own_classes_and_use_them_everywhere(tmp_path, capsys):
    """Five class folders, one of them fernb's ninth idea of a class: the model learns those five, and evaluate,
    predict and export follow the checkpoint's classes (issue 25)."""
    import json
    import shutil

    from fernb.cli import main
    write_folder(tmp_path / "fer", per_class=20, splits=("train", "test"))
    mine = tmp_path / "mine"
    for split in ("train", "test"):
        for c in ("angry", "happy", "sad", "surprise"):
            shutil.copytree(tmp_path / "fer" / split / c, mine / split / c)
        shutil.copytree(tmp_path / "fer" / split / "fear", mine / split / "contempt")  # a class of its own
    out = tmp_path / "run"
    assert main(["train", "--data", str(mine), "--model", "fernet_s", "--epochs", "1", "--batch-size", "32",
                 "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["classes"] == ["angry", "happy", "sad", "surprise", "contempt"]
    assert main(["evaluate", "--data", str(mine), "--checkpoint", str(out), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["classes"] == ["angry", "happy", "sad", "surprise", "contempt"] and m["n"] == 100
    face = next((mine / "test" / "contempt").iterdir())
    assert main(["predict", "--crops", "--json", str(face), "--checkpoint", str(out)]) == 0
    assert sorted(json.loads(capsys.readouterr().out)[0]["faces"][0]["probs"]) == sorted(m["classes"])
    assert main(["export", "--checkpoint", str(out), "--out", str(tmp_path / "m.onnx")]) == 0
    assert "output 'probs' [B,5] in class order angry,happy,sad,surprise,contempt" in capsys.readouterr().out
    from fernb import checkpoint
    from fernb.demo import label_frame
    from fernb.evaluate import Predictor
    model, meta = checkpoint.load(out)
    astronaut = pytest.importorskip("skimage.data").astronaut()  # a photo with one face, as the demo gets frames
    labelled, bars = label_frame(Predictor(model, meta["classes"]), ("a", "b"), astronaut)
    assert sorted(bars) == sorted(m["classes"]) and labelled.shape == astronaut.shape
    pytest.importorskip("gradio")
    from fernb.demo import build
    page = json.dumps(build(str(out)).config)
    assert "5 classes (angry, happy, sad, surprise, contempt)" in page and "seven" not in page
