"""fernb.models and fernb.augment."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fernb.augment import DEFAULT, NONE, AugmentConfig, BatchAugment, Mix, to_input
from fernb.explore import preview
from fernb.data import CLASSES, IMAGE_SIZE
from fernb.errors import ModelError
from fernb.models import FERNETS, create_model
from fernb.synthetic import synthetic_faces
from fernb.train import TrainConfig


@pytest.mark.parametrize("name", list(FERNETS) + ["efficientnet_b0", "resnet18"])
def test_models_take_grey_48px_faces(name):
    model = create_model(name).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 48, 48)).shape == (2, 7)


def test_drop_sets_the_head_dropout_of_fernets_and_timm_models():
    assert create_model("fernet_s").head[2].p == 0.2  # FERNet's own default
    assert create_model("fernet_s", drop=0.5).head[2].p == 0.5
    assert create_model("resnet18", drop=0.5).drop_rate == 0.5


def test_unknown_model_suggests_close_names():
    with pytest.raises(ModelError, match="did you mean.*efficientnet_b0"):
        create_model("efficientnet-b0")


def test_pretrained_without_network_is_a_clear_error(monkeypatch):
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelError, match="pretrained weights for 'resnet18'"):
        create_model("resnet18", pretrained=True)
    with pytest.raises(ModelError, match="no pretrained weights"):
        create_model("fernet", pretrained=True)


def faces(n=8):
    images, _ = synthetic_faces({c: n for c in CLASSES}, 0, IMAGE_SIZE)
    return torch.from_numpy(images)


def test_augment_is_seeded_and_per_sample():
    x = to_input(faces(1)[:1].expand(6, -1, -1))  # six copies of one face
    a, b, c = (BatchAugment(DEFAULT, seed=s)(x) for s in (0, 0, 1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert all(not torch.equal(a[0], a[i]) for i in range(1, 6))  # each copy drew its own transform


def test_flip_only_mirrors_exactly_and_none_is_identity():
    x = to_input(faces(1))
    flipped = BatchAugment(AugmentConfig(flip=1.0).only("flip"))(x)
    assert torch.allclose(flipped, x.flip(-1), atol=1e-4)
    assert torch.allclose(BatchAugment(NONE)(x), x, atol=1e-4)


def test_rotation_moves_pixels_but_keeps_shape():
    x = to_input(faces(1)[:4])
    y = BatchAugment(DEFAULT.only("degrees"))(x)
    assert y.shape == x.shape and (y - x).abs().mean() > 0.05


def test_preview_and_training_share_the_defaults():
    assert TrainConfig().augment is DEFAULT
    out = preview(faces(1)[0], n=5)
    assert out.shape == (5, IMAGE_SIZE, IMAGE_SIZE) and out.dtype == torch.uint8


def test_mixup_gives_soft_targets_and_is_a_function_of_its_seed():
    x, y = to_input(faces(2)[:8]), torch.arange(8) % 7
    off = Mix(DEFAULT, 7, 0.1)
    assert not off.on and off(x, y)[1] is y  # off: the labels pass through, no branch in the training step
    mix = Mix(AugmentConfig(mixup=0.4, cutmix=1.0), 7, 0.0, seed=3)
    mixed, target = mix(x, y)
    assert target.shape == (8, 7) and torch.allclose(target.sum(-1), torch.ones(8))
    assert (target.max(-1).values < 1).any()
    np.random.seed(123)  # numpy's global state, which timm draws from, does not matter
    again = Mix(AugmentConfig(mixup=0.4, cutmix=1.0), 7, 0.0, seed=3)(x, y)
    assert torch.equal(again[0], mixed) and torch.equal(again[1], target)


@pytest.mark.parametrize("name", ["fernet_s", "resnet18"])
def test_the_inference_copy_keeps_the_outputs(name):
    from fernb.fast import MaxPool2x2, for_inference
    model = create_model(name)
    model.train()
    with torch.no_grad():  # give every BatchNorm running statistics of its own
        for _ in range(3):
            model(torch.randn(8, 1, 48, 48) * 2 + 0.5)
    model.eval()
    folded = for_inference(model)
    x = torch.randn(4, 1, 48, 48)
    with torch.no_grad():
        assert torch.allclose(folded(x), model(x), atol=1e-4)
    if name == "fernet_s":  # every FERNet BatchNorm follows a conv in one Sequential; timm's models may keep some
        assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.MaxPool2d)) for m in folded.modules())
        assert sum(isinstance(m, MaxPool2x2) for m in folded.modules()) == 3
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the original is left as it was


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("size", [(6, 6), (7, 5), (2, 3)])
def test_maxpool2x2_matches_torch(size, dtype):
    from fernb.fast import MaxPool2x2
    x = torch.randn(2, 3, *size).to(dtype)
    x[0, 0, 1, 1] = float("nan")  # a NaN wins its window, as in max_pool2d
    for layout in (torch.contiguous_format, torch.channels_last):
        x = x.contiguous(memory_format=layout)
        torch.testing.assert_close(MaxPool2x2()(x), torch.nn.functional.max_pool2d(x, 2), rtol=0, atol=0,
                                   equal_nan=True)


def test_only_plain_2x2_max_pools_are_swapped():
    from timm.layers.pool2d_same import MaxPool2dSame  # pads in forward: not a plain 2x2 pool

    from fernb.fast import _is_2x2
    nn = torch.nn
    assert _is_2x2(nn.MaxPool2d(2)) and _is_2x2(nn.MaxPool2d((2, 2), stride=2))
    for pool in (nn.MaxPool2d(3, 2, 1), nn.MaxPool2d(2, 1), nn.MaxPool2d(2, ceil_mode=True), MaxPool2dSame(2, 2),
                 nn.AvgPool2d(2)):
        assert not _is_2x2(pool), pool


def test_a_timm_model_fine_tunes_from_a_local_weights_file(tmp_path):
    """TrainConfig(pretrained=FILE): timm reads the file in place of the hub, folds the RGB stem into one grey
    channel and makes a new head; the backbone starts equal to the file's weights (issue 26)."""
    import timm
    from safetensors.torch import save_file
    imagenet = timm.create_model("resnet10t", num_classes=1000)  # stands in for downloaded ImageNet weights
    save_file(imagenet.state_dict(), str(tmp_path / "w.safetensors"))
    model = create_model("resnet10t", num_classes=7, pretrained=str(tmp_path / "w.safetensors"))
    assert torch.equal(model.layer1[0].conv1.weight, imagenet.layer1[0].conv1.weight)
    assert torch.allclose(model.conv1[0].weight[:, 0], imagenet.conv1[0].weight.sum(1))  # grey = R + G + B
    assert model.fc.out_features == 7
    from fernb.data import load, read_pool
    from fernb.train import fit
    pool = read_pool("synthetic")
    run = fit(load(split="train", pool=pool), None, TrainConfig(model="resnet10t", epochs=1, batch_size=64,
                                                               pretrained=str(tmp_path / "w.safetensors")), progress=False)
    assert run["epochs_run"] == 1 and run["config"]["pretrained"] == str(tmp_path / "w.safetensors")


def test_pretrained_weights_that_cannot_be_had_are_one_line(capsys, monkeypatch, tmp_path):
    from fernb.cli import main
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # as offline as this machine, without waiting on the network
    assert main(["train", "--data", "synthetic", "--model", "resnet10t", "--pretrained", "--epochs", "1",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and "resnet10t" in err[-1] and "network" in err[-1] and "Traceback" not in "\n".join(err)
    assert main(["train", "--data", "synthetic", "--model", "fernet_s", "--pretrained", "--epochs", "1",
                 "--out", str(tmp_path / "run")]) == 2
    assert "has no pretrained weights" in capsys.readouterr().err
