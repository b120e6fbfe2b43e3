"""Faces in real photographs (scikit-image's sample data), `fernb predict`, Grad-CAM and ONNX export."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from fernb import faces
from fernb.cli import main
from fernb.data import load, read_pool
from fernb.explain import gradcam
from fernb.train import TrainConfig, fit

skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A small checkpoint trained on synthetic faces (the packaged model may not exist yet)."""
    out = tmp_path_factory.mktemp("ckpt")
    pool = read_pool("synthetic")
    fit(load(split="train", pool=pool), None, TrainConfig(model="fernet_s", epochs=1, batch_size=64), out=out,
        progress=False)
    return out


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Real photographs from scikit-image in several formats, plus broken files."""
    d = tmp_path_factory.mktemp("photos")
    astronaut = skimage_data.astronaut()  # 512x512 RGB, one frontal face
    Image.fromarray(astronaut).save(d / "astronaut.jpg", quality=95)
    Image.fromarray(astronaut).convert("RGBA").save(d / "astronaut_rgba.png")
    Image.fromarray(astronaut).convert("L").save(d / "astronaut_grey.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the stored pixels must be turned 90 degrees clockwise to view
    Image.fromarray(astronaut).rotate(90, expand=True).save(d / "astronaut_exif.jpg", exif=exif)
    Image.fromarray(skimage_data.coffee()).save(d / "coffee.jpg")  # a real photo with no face
    (d / "empty.jpg").write_bytes(b"")
    (d / "notes.jpg").write_text("not an image")
    return d


def test_detects_the_one_face_in_every_format(photos):
    upright = faces.detect(faces.read_photo(photos / "astronaut.jpg"))
    assert len(upright) == 1
    x, y, w, h = upright[0]
    assert 150 < x + w / 2 < 300 and 50 < y + h / 2 < 200 and 60 < w < 200  # her face, upper middle-left
    for name in ("astronaut_rgba.png", "astronaut_grey.png", "astronaut_exif.jpg"):
        boxes = faces.detect(faces.read_photo(photos / name))
        assert len(boxes) == 1, name
        assert np.abs(np.array(boxes[0]) - np.array(upright[0])).max() < 12, name


def test_crop_is_a_48px_grey_face(photos):
    photo = faces.read_photo(photos / "astronaut.jpg")
    found = faces.detect_and_crop(photo)
    assert found[0].crop.shape == (48, 48) and found[0].crop.dtype == np.uint8
    edge = faces.crop(photo, (480, 480, 60, 60))  # past the corner: padded, not failing
    assert edge.shape == (48, 48)


def test_predict_cli_reports_faces_no_faces_and_bad_files(photos, ckpt, tmp_path, capsys):
    files = [str(photos / n) for n in ("astronaut.jpg", "coffee.jpg", "empty.jpg", "notes.jpg")]
    code = main(["predict", *files, "--checkpoint", str(ckpt), "--json", "--annotate", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 2  # some files were unreadable, but every file was reported
    out = {r["image"].split("/")[-1]: r for r in json.loads(captured.out)}
    face = out["astronaut.jpg"]["faces"][0]
    assert len(out["astronaut.jpg"]["faces"]) == 1 and len(face["box"]) == 4
    assert set(face["probs"]) == {"angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"}
    assert abs(sum(face["probs"].values()) - 1) < 1e-3 and face["label"] == max(face["probs"], key=face["probs"].get)
    assert out["coffee.jpg"]["faces"] == [] and "coffee.jpg: no face found" in captured.err
    assert "empty.jpg: empty file" in captured.err and "notes.jpg: not a readable image" in captured.err
    assert "Traceback" not in captured.err
    assert (tmp_path / "astronaut_annotated.jpg").exists() and (tmp_path / "coffee_annotated.jpg").exists()


def test_gradcam_points_at_the_evidence():
    class Bright(torch.nn.Module):
        """Class 0's logit is the mean activation of one conv channel: evidence is wherever pixels are bright."""

        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 1, 1)
            torch.nn.init.ones_(self.conv.weight)
            torch.nn.init.constant_(self.conv.bias, 3.0)  # normalised black is about -2: keep activations positive

        def forward(self, x):
            s = torch.relu(self.conv(x)).mean((1, 2, 3))
            return torch.stack([s, -s], 1)

    img = torch.zeros(1, 48, 48, dtype=torch.uint8)
    img[0, 4:16, 30:44] = 255  # a bright patch, top right
    cam = gradcam(Bright(), img, torch.tensor([0]))
    assert cam.shape == (1, 48, 48) and float(cam.max()) == pytest.approx(1.0)
    peak = np.unravel_index(int(cam[0].argmax()), (48, 48))
    assert 4 <= peak[0] < 16 and 30 <= peak[1] < 44
    assert float(cam[0, 30:, :20].max()) < 0.5


def test_gradcam_weighs_a_fernets_rectified_feature_maps():
    """Grad-CAM as defined: the last block's maps after BatchNorm and ReLU, not the conv's raw output."""
    import torch.nn.functional as F
    from fernb.augment import to_input
    from fernb.models import create_model
    torch.manual_seed(0)
    model = create_model("fernet_s").eval()
    faces = torch.randint(0, 256, (3, 48, 48), dtype=torch.uint8)
    maps = model.features(to_input(faces))
    logits = model.head(maps)
    grads, = torch.autograd.grad(logits.max(1).values.sum(), maps)
    want = F.relu((grads.mean((2, 3), keepdim=True) * maps).sum(1, keepdim=True))
    want = F.interpolate(want, size=(48, 48), mode="bilinear", align_corners=False)[:, 0]
    want = want / want.flatten(1).max(1).values.clamp(min=1e-8)[:, None, None]
    assert (maps >= 0).all()  # rectified
    assert torch.allclose(gradcam(model, faces), want.detach(), atol=1e-5)
    assert torch.allclose(gradcam(model.requires_grad_(False), faces), want.detach(), atol=1e-5)  # frozen weights


def test_onnx_export_matches_torch(ckpt, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from fernb.checkpoint import load as load_ckpt
    from fernb.export import onnx_parity
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.onnx")]) == 0
    assert "max |onnxruntime - torch|" in capsys.readouterr().out
    model, _ = load_ckpt(ckpt)
    faces_ = torch.from_numpy(read_pool("synthetic").images[:37])  # a batch size unlike the export's
    assert onnx_parity(model, tmp_path / "m.onnx", faces_) <= 1e-4


def test_face_crops_are_classified_whole_as_fer2013_faces_are(tmp_path, capsys):
    """--crops: every input is a face already; a small picture with no face found is taken as one, and says so."""
    from fernb.checkpoint import load_model
    from fernb.cli import main
    from fernb.evaluate import Predictor
    from fernb.synthetic import synthetic_faces
    faces, _ = synthetic_faces({"happy": 3, "sad": 3}, 0, 48)
    paths = []
    for i, face in enumerate(faces):
        paths.append(tmp_path / f"crop{i}.png")
        Image.fromarray(face).save(paths[-1])
    assert main(["predict", "--crops", "--json", *map(str, paths)]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in results] == ["crop"] * len(paths) and all(len(r["faces"]) == 1 for r in results)
    model, meta = load_model()
    want = Predictor(model, meta["classes"]).probs(torch.from_numpy(faces), tta=True)  # as evaluate scores them
    got = torch.tensor([[r["faces"][0]["probs"][c] for c in meta["classes"]] for r in results])
    assert torch.allclose(got, want, atol=1e-4)
    assert main(["predict", "--json", str(paths[0])]) == 0  # no --crops: a 48x48 picture is still taken as a crop
    captured = capsys.readouterr()
    assert json.loads(captured.out)[0]["path"] in ("crop", "detected")
    if json.loads(captured.out)[0]["path"] == "crop":
        assert "classified whole, as a face crop" in captured.err
