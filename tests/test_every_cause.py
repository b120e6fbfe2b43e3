"""A property test for each root cause of issue 29: every command, reader, field and plot, not one example of each."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from fernb import checkpoint, faces, images, plots
from fernb.cli import json_text, main
from fernb.data import CLASSES, load, read_pool
from fernb.errors import ConfigError, DataError, PhotoError
from fernb.evaluate import Predictions, predict
from fernb.sources import decode_image
from fernb.train import TrainConfig
from fernb.video import make_clip
from tests.test_bad_input import fails
from tests.test_nothing_lost import QUICK

WRONG = [None, "x", 1.5, -1, True, [], {}]  # a value of each JSON type, and a number where none fits


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished one-epoch run on synthetic faces."""
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--data", "synthetic", *QUICK, "--out", str(out), "--json"]) == 0
    return out


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "face.png"
    Image.fromarray(np.full((64, 64), 128, np.uint8)).save(path)
    return path


def one_line_or_ok(capsys, argv) -> int:
    """Run the CLI: exit 0, or exit 2 with one error line and no traceback; never anything else."""
    rc = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert rc == 0 or (rc == 2 and err.strip().splitlines()[-1].startswith("fernb: error:")), (rc, err)
    return rc


# ---------------------------------------------------------------- 1. outputs checked against inputs


@pytest.mark.parametrize("option", ["--csv", "--annotate", "--out"])
def test_every_output_named_longer_than_a_file_system_allows_is_one_line(capsys, run_dir, photo, tmp_path, option):
    long = str(tmp_path / ("n" * 300 + ".csv"))
    argv = (["export", "--checkpoint", str(run_dir), "--out", long] if option == "--out" else
            ["predict", str(photo), option, long, "--checkpoint", str(run_dir)])
    fails(capsys, argv, "longer than")


def test_weights_and_config_from_two_saves_are_refused(run_dir, tmp_path):
    mixed = tmp_path / "mixed"
    shutil.copytree(run_dir, mixed)
    model, meta = checkpoint.load(run_dir)
    with torch.no_grad():
        next(model.parameters()).add_(1)
    other = checkpoint.save(tmp_path / "other", model, meta)
    shutil.copy(other / "weights.safetensors", mixed / "weights.safetensors")  # the config still names the old weights
    with pytest.raises(checkpoint.CheckpointError, match="not the file its config.json was saved with"):
        checkpoint.load(mixed)


# ---------------------------------------------------------------- 2. checkpoints reconciled with the data


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_order_of_a_checkpoints_classes_scores_the_same(run_dir, tmp_path, seed):
    """Property: head rows and class names permuted together, by any permutation, give the same accuracy."""
    test = load(split="test", pool=read_pool("synthetic"))
    model, meta = checkpoint.load(run_dir)
    plain = predict(model, test).accuracy
    order = np.random.default_rng(seed).permutation(len(CLASSES)).tolist()
    head = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)][-1]
    state = model.state_dict()
    for k in (f"{head}.weight", f"{head}.bias"):
        state[k] = state[k][order]
    model.load_state_dict(state)
    again, _ = checkpoint.load(checkpoint.save(tmp_path / "p", model, {**meta, "classes": [CLASSES[i] for i in order]}))
    assert predict(again, test).accuracy == pytest.approx(plain, abs=1e-9)


def test_predict_faces_labels_with_the_models_own_classes(run_dir):
    model, meta = checkpoint.load(run_dir)
    rows = faces.predict_whole(model, np.full((48, 48, 3), 128, np.uint8), classes=("a", "b", "c", "d", "e", "f", "g"))
    assert set(rows[0]["probs"]) == set(meta["classes"])


# ---------------------------------------------------------------- 3. errors raised where they start


def link_loop(path):
    os.symlink(path, path)


def dangling_link(path):
    os.symlink(path.with_name("never-there.png"), path)


@pytest.mark.parametrize("breaks,says", [(link_loop, "loop"), (dangling_link, "")])
@pytest.mark.parametrize("reader", ["folder", "photo", "video"])
def test_every_reader_given_a_link_loop_or_a_dangling_link_is_one_line(capsys, tiny_root, run_dir, reader, breaks,
                                                                        says):
    path = tiny_root / "train" / "happy" / ("broken.avi" if reader == "video" else "broken.png")
    breaks(path)
    argv = ["info", "--data", str(tiny_root)] if reader == "folder" else ["predict", str(path), "--checkpoint",
                                                                          str(run_dir)]
    fails(capsys, argv, path.name, says)


def test_a_file_name_that_is_not_utf8_reads_and_prints(capsys, tiny_root, run_dir):
    folder = tiny_root / "test" / "happy"
    name = os.fsdecode(b"PublicTest_caf\xe9.png")  # Latin-1, as an old camera or a Windows zip writes it
    shutil.copy(next(folder.glob("*.png")), folder / name)
    assert one_line_or_ok(capsys, ["info", "--data", str(tiny_root)]) == 0
    assert one_line_or_ok(capsys, ["predict", "--crops", str(folder / name), "--checkpoint", str(run_dir)]) == 0


@pytest.mark.parametrize("error,says", [(PermissionError(13, "Permission denied"), "permission denied"),
                                        (OSError(40, "Too many levels of symbolic links"), "loop"),
                                        (OSError("image file is truncated"), "corrupt or truncated"),
                                        (Image.DecompressionBombError("too big"), "too many pixels")])
@pytest.mark.parametrize("kind", [DataError, PhotoError])
def test_every_way_an_image_fails_to_open_is_named_apart(monkeypatch, photo, error, says, kind):
    """Property: permission, the file system, a damaged file and a bomb each get their own words, never 'corrupt'
    for a permission problem."""
    def refuse(*a, **k):
        raise error
    monkeypatch.setattr(images.Image, "open", refuse)
    with pytest.raises(kind, match=says):
        images.open_image(photo, kind)


def test_a_decompression_bomb_is_one_line_in_training_and_predict(capsys, monkeypatch, tiny_root, run_dir, photo):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 48x48 faces are then 'bombs' too
    fails(capsys, ["info", "--data", str(tiny_root)], "too many pixels")
    fails(capsys, ["predict", str(photo), "--checkpoint", str(run_dir)], "too many pixels")


@pytest.mark.parametrize("seed", [-1, 2**32, 2**70, 1.5])
def test_every_seed_torch_or_numpy_cannot_take_is_one_line(capsys, seed):
    fails(capsys, ["train", "--data", "synthetic", *QUICK, "--seed", str(seed), "--out", "/tmp/fernb-never"], "seed")


# ---------------------------------------------------------------- 4. types checked with values


FIELDS = ["model", "classes", "in_chans", "params", "n_train", "n_val", "metrics", "holdout", "config", "train_key",
          "history", "data"]


@pytest.mark.parametrize("field", FIELDS)
def test_every_config_json_field_of_every_wrong_type_is_one_line(capsys, run_dir, tmp_path, photo, field):
    """Property: each field a command reads, replaced by a value of each JSON type, never gives a traceback."""
    for k, value in enumerate(WRONG):
        bad = tmp_path / f"bad{k}"
        shutil.copytree(run_dir, bad)
        meta = json.loads((bad / "config.json").read_text())
        meta[field] = value
        (bad / "config.json").write_text(json.dumps(meta))
        for argv in (["predict", str(photo), "--checkpoint", str(bad)],
                     ["evaluate", "--data", "synthetic", "--split", "val", "--checkpoint", str(bad)],
                     ["train", "--data", "synthetic", "--out", str(bad), "--resume"]):
            one_line_or_ok(capsys, argv)


@pytest.mark.parametrize("field", [f for f in TrainConfig.__dataclass_fields__ if f != "augment"])
def test_every_train_config_field_of_every_wrong_type_is_refused_by_name(field):
    for value in WRONG:
        try:
            TrainConfig(**{field: value})
        except ConfigError as e:
            assert str(e).startswith(f"{field}="), e
        # else: a value that field takes (None for an optional one, True for a switch)


# ---------------------------------------------------------------- 5. empty data reaches no division or argmax


EMPTY = torch.empty(0, 48, 48, dtype=torch.uint8)
NO_LABELS = torch.empty(0, dtype=torch.long)
NO_PREDICTIONS = Predictions(torch.empty(0, 7), NO_LABELS, CLASSES, EMPTY)
PLOTS = {
    "class_counts": lambda: plots.class_counts({"train": {c: 0 for c in CLASSES}}),
    "sample_grid": lambda: plots.sample_grid(EMPTY, NO_LABELS, CLASSES),
    "mean_faces": lambda: plots.mean_faces(EMPTY, NO_LABELS, CLASSES),
    "pixel_stats": lambda: plots.pixel_stats(EMPTY, NO_LABELS, CLASSES),
    "image_strip": lambda: plots.image_strip(EMPTY),
    "augment_rows": lambda: plots.augment_rows({"flip": EMPTY}, "t"),
    "lr_schedule": lambda: plots.lr_schedule([], []),
    "training_curves": lambda: plots.training_curves([]),
    "confusion": lambda: plots.confusion(np.zeros((7, 7), int), CLASSES),
    "per_class_f1": lambda: plots.per_class_f1({}),
    "reliability": lambda: plots.reliability({"edges": [0, 0.5, 1], "count": [0, 0], "accuracy": [0, 0],
                                              "confidence": [0, 0], "ece": 0.0}),
    "view_classify": lambda: plots.view_classify(NO_PREDICTIONS, 0),
    "class_probabilities": lambda: plots.class_probabilities(NO_PREDICTIONS, []),
    "saliency": lambda: plots.saliency(EMPTY, torch.empty(0, 48, 48)),
    "emotion_timeline": lambda: plots.emotion_timeline([], CLASSES),
    "face_report": lambda: plots.face_report([], torch.empty(0, 7), CLASSES, []),
    "per_class_recall": lambda: plots.per_class_recall({}),
    "compare_curves": lambda: plots.compare_curves({"no augmentation": []}),
    "baselines": lambda: plots.baselines({}),
}


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_every_plot_given_no_data_draws_an_empty_figure_or_says_so(name):
    import matplotlib.pyplot as plt
    try:
        fig = PLOTS[name]()
    except DataError as e:
        assert str(e).startswith("nothing to plot")
    else:
        plt.close(fig)


def test_every_plot_is_in_that_test():
    public = {n for n in dir(plots) if not n.startswith("_") and callable(getattr(plots, n))
              and getattr(getattr(plots, n), "__module__", "") == "fernb.plots"}
    assert public - {"show_image", "right_and_wrong"} <= set(PLOTS)  # those two take a photo and a class index


# ---------------------------------------------------------------- 6. decoding and numbers


def grey_file(path, mode: str, level: float):
    """A 48x48 image at `level` (0..1) of mid-grey in one of Pillow's modes, saved in a format that keeps it."""
    if mode == "I;16":
        Image.fromarray(np.full((48, 48), round(level * 65535), np.uint16)).save(path.with_suffix(".png"))
        return path.with_suffix(".png")
    if mode == "F":
        Image.fromarray(np.full((48, 48), level, np.float32), mode="F").save(path.with_suffix(".tif"))
        return path.with_suffix(".tif")
    im = Image.fromarray(np.full((48, 48, 3), round(level * 255), np.uint8)).convert(mode)
    path = path.with_suffix(".png" if mode != "CMYK" else ".tif")
    im.save(path)
    return path


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "F", "1"])
def test_every_image_mode_decodes_to_its_brightness_in_training_and_predict(tmp_path, mode):
    for level in (0.25, 0.75):
        path = grey_file(tmp_path / f"{level}", mode, level)
        near = 10 if mode == "1" else 3  # a 1-bit image is dithered: its mean, not each pixel, keeps the brightness
        pixels, _ = decode_image(path)
        assert abs(float(pixels.mean()) - level * 255) < near, (mode, level, pixels.mean())
        assert abs(float(faces.read_photo(path).mean()) - level * 255) < near


def test_exif_orientation_is_honoured_in_training_as_in_predict(tmp_path):
    face = np.zeros((48, 48), np.uint8)
    face[:10] = 255  # a bright band on top, when upright
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: a viewer rotates it 90 degrees clockwise to show it upright
    Image.fromarray(face).rotate(90, expand=True).save(tmp_path / "turned.jpg", exif=exif, quality=100)
    pixels, _ = decode_image(tmp_path / "turned.jpg")
    assert pixels[:10].mean() > 200 and pixels[-10:].mean() < 50
    assert np.array_equal(faces.read_photo(tmp_path / "turned.jpg")[..., 0] > 128, pixels > 128)


def test_weights_that_hold_nan_are_refused(run_dir, tmp_path):
    model, meta = checkpoint.load(run_dir)
    with torch.no_grad():
        next(model.parameters())[0] = float("nan")
    bad = checkpoint.save(tmp_path / "nan", model, meta)
    with pytest.raises(checkpoint.CheckpointError, match="NaN or infinity"):
        checkpoint.load(bad)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_json_output_stays_json_whatever_the_numbers(value):
    text = json_text({"a": value, "b": [1.0, value, {"c": (value,)}]})
    assert json.loads(text) == {"a": None, "b": [1.0, None, {"c": [None]}]}


# ---------------------------------------------------------------- 7. video


def video_kinds(folder):
    """Each way a file named like a video is not one, with the words its error says."""
    folder.mkdir()
    frames = [np.full((96, 128, 3), 6 * i, np.uint8) for i in range(40)]
    good = make_clip(folder / "good.avi", frames)
    kinds = {}
    for suffix in (".avi", ".mp4"):
        whole = make_clip(folder / f"whole{suffix}", frames).read_bytes()
        (folder / f"cut{suffix}").write_bytes(whole[:len(whole) * 6 // 10])
        kinds[folder / f"cut{suffix}"] = "truncated"
    Image.fromarray(frames[5]).save(folder / "still.jpg")
    kinds[shutil.copy(folder / "still.jpg", folder / "still.mp4")] = "still image"
    (folder / "empty.mp4").write_bytes(b"")
    kinds[folder / "empty.mp4"] = "empty file"
    (folder / "notes.mov").write_text("a shopping list")
    kinds[folder / "notes.mov"] = "no frame could be read"
    return good, kinds


def test_every_broken_video_is_one_line_and_writes_no_csv(capsys, tmp_path, run_dir):
    good, kinds = video_kinds(tmp_path / "v")
    from pathlib import Path
    for path, says in kinds.items():
        out = tmp_path / f"{Path(path).name}.csv"
        fails(capsys, ["predict", str(path), "--csv", str(out), "--checkpoint", str(run_dir)], Path(path).name, says)
        assert not out.exists()
    assert main(["predict", str(good), "--csv", str(tmp_path / "good.csv"), "--checkpoint", str(run_dir)]) == 0


def test_an_annotated_video_is_written_whole_or_not_at_all(capsys, tmp_path, run_dir):
    _, kinds = video_kinds(tmp_path / "v")
    cut = next(p for p in kinds if str(p).endswith("cut.avi"))
    fails(capsys, ["predict", str(cut), "--annotate", str(tmp_path / "ann"), "--checkpoint", str(run_dir)],
          "truncated")
    assert not any((tmp_path / "ann").iterdir())  # no half video under its name, no temp file left


# ---------------------------------------------------------------- 8. words that point the right way


def test_every_path_taken_from_the_environment_is_named_as_such(capsys, monkeypatch, tmp_path, photo):
    monkeypatch.setenv("FERNB_DATA", str(tmp_path / "no-data"))
    fails(capsys, ["info"], "no-data", "$FERNB_DATA")
    monkeypatch.setenv("FERNB_CHECKPOINT", str(tmp_path / "no-model"))
    fails(capsys, ["predict", str(photo)], "no-model", "$FERNB_CHECKPOINT")
    fails(capsys, ["info", "--data", str(tmp_path / "named")], "named")  # a path given on the line: no such note
    assert "$FERNB" not in capsys.readouterr().err


def test_a_tilde_is_expanded_in_every_path_option(capsys, monkeypatch, tmp_path, run_dir, tiny_root, photo):
    monkeypatch.setenv("HOME", str(tmp_path))
    shutil.copytree(run_dir, tmp_path / "model")
    shutil.copytree(tiny_root, tmp_path / "faces")
    assert one_line_or_ok(capsys, ["predict", str(photo), "--checkpoint", "~/model"]) == 0
    assert one_line_or_ok(capsys, ["info", "--data", "~/faces"]) == 0
    assert one_line_or_ok(capsys, ["export", "--checkpoint", "~/model", "--out", "~/m.onnx"]) == 0
    assert (tmp_path / "m.onnx").is_file()


def test_a_config_json_with_a_byte_order_mark_loads(run_dir, tmp_path):
    bom = tmp_path / "bom"
    shutil.copytree(run_dir, bom)
    text = (bom / "config.json").read_text()
    (bom / "config.json").write_text("\ufeff" + text, encoding="utf-8")
    assert checkpoint.load(bom)[1]["model"] == "fernet_s"

