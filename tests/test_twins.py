"""fernb.twins finds the same picture copied, re-encoded, shifted, re-cropped or re-lit, and nothing else.

Faces here are crops of scikit-image's sample photos (a re-crop is cut again from the photo, so it shows real
content the first crop left out) and fernb's synthetic faces as bystanders; each copy is made by the test itself.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from fernb import twins
from fernb.sources import CLASSES
from fernb.synthetic import synthetic_faces

samples = pytest.importorskip("skimage.data")

# sample photo: (centre row, centre column, side of the square crop in the photo's pixels)
PHOTOS = {"astronaut": (120, 245, 150), "camera": (115, 245, 130), "chelsea": (150, 200, 260),
          "coffee": (200, 300, 260), "rocket": (220, 320, 300), "coins": (150, 190, 200), "moon": (256, 256, 300),
          "immunohistochemistry": (256, 256, 300)}


def grey(name: str) -> np.ndarray:
    """A scikit-image sample photo as grey uint8."""
    image = getattr(samples, name)()
    return np.asarray(Image.fromarray(image).convert("L")) if image.ndim == 3 else image


def crop(name: str, scale: float = 1.0, dy: float = 0.0, dx: float = 0.0) -> np.ndarray:
    """The photo's square crop, scale times as wide and moved by (dy, dx) pixels of the 48x48 result, as 48x48."""
    cy, cx, side = PHOTOS[name]
    side = side * scale
    cy, cx = cy + dy * side / 48, cx + dx * side / 48
    box = tuple(round(v) for v in (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))
    return np.asarray(Image.fromarray(grey(name)).resize((48, 48), Image.BILINEAR, box=box))


def jpeg(face: np.ndarray, quality: int) -> np.ndarray:
    """The face saved as a JPEG and read back."""
    buffer = io.BytesIO()
    Image.fromarray(face).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer))


def relit(face: np.ndarray, gain: float, offset: float) -> np.ndarray:
    """New brightness and contrast: gain * face + offset, kept in 0..255."""
    return np.clip(face * gain + offset, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """One crop of each sample photo, in PHOTOS' order: eight different pictures."""
    return np.stack([crop(name) for name in PHOTOS])


@pytest.fixture(scope="module")
def gallery(photos) -> np.ndarray:
    """The photo crops (indices 0..7), then 14 synthetic faces as bystanders. The cartoons are not compared with
    each other: they share one layout, and twins calls many of them twins (its docstring says so)."""
    cartoons, _ = synthetic_faces({c: 2 for c in CLASSES}, seed=0, size=48)
    return np.concatenate([photos, cartoons])


COPIES = {
    "JPEG quality 50": lambda name: jpeg(crop(name), 50),
    "shifted 3 px down, 2 px left": lambda name: crop(name, dy=-3, dx=2),
    "re-cropped 10% larger": lambda name: crop(name, scale=1.1),
    "re-cropped 10% smaller, off-centre": lambda name: crop(name, scale=0.9, dy=1, dx=-1),
    "brighter by 30": lambda name: relit(crop(name), 1.0, 30),
    "contrast 0.8": lambda name: relit(crop(name), 0.8, 40),
}


@pytest.mark.parametrize("how", COPIES)
def test_copies_are_twins_of_their_original(gallery, how):
    names = ["astronaut", "camera", "coffee"]
    copies = np.stack([COPIES[how](name) for name in names])
    index, similarity = twins.nearest(copies, gallery)
    assert index.tolist() == [list(PHOTOS).index(name) for name in names]
    assert (similarity >= twins.THRESHOLD).all(), similarity
    assert twins.has_twin(copies, gallery).all()


def test_a_re_crop_defeats_a_pixel_difference_but_not_twins():
    """Why a mean absolute difference of 10 grey levels (the rule twins replaced) misses re-crops."""
    face, recrop = crop("astronaut"), crop("astronaut", scale=1.1)
    assert np.abs(face.astype(float) - recrop).mean() > 10
    assert twins.distinct(np.stack([face, recrop]), [0, 1], 2) == [0]


def test_different_pictures_are_not_twins(gallery, photos):
    index, similarity = twins.nearest(photos, gallery, exclude_self=True)  # photos against photos and cartoons
    assert (similarity < twins.THRESHOLD).all(), similarity
    assert (index != np.arange(len(photos))).all()
    assert not twins.has_twin(photos, gallery, exclude_self=True).any()
    cartoons = gallery[len(photos):]
    assert not twins.has_twin(cartoons, photos).any()
    far = crop("astronaut", dy=30)  # the same photo, a crop that shares little with the first
    assert twins.nearest(far[None], photos[:1])[1][0] < twins.THRESHOLD


def test_signature_is_unit_length_and_ignores_brightness():
    faces = np.stack([crop("camera"), relit(crop("camera"), 0.7, 50), crop("coins")])
    sig = twins.signature(faces)
    assert sig.dtype == np.float32 and sig.shape[0] == 3
    np.testing.assert_allclose(np.linalg.norm(sig, axis=1), 1, atol=1e-5)
    assert sig[0] @ sig[1] > 0.99 > sig[0] @ sig[2]


def test_numpy_and_torch_agree_and_batches_do_not_matter(gallery):
    query = np.stack([crop("chelsea", scale=1.1), crop("moon", dy=2), gallery[9]])
    a = twins.nearest(query, gallery)
    b = twins.nearest(torch.from_numpy(query), torch.from_numpy(gallery), batch=1)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], atol=1e-5)
    self_a = twins.nearest(gallery, gallery, exclude_self=True)  # exclusion must follow the batch's offset
    self_b = twins.nearest(gallery, gallery, exclude_self=True, batch=5)
    np.testing.assert_array_equal(self_a[0], self_b[0])
    assert (self_a[0] != np.arange(len(gallery))).all()


def test_has_twin_with_exclude_self(photos):
    faces = np.concatenate([photos, jpeg(crop("rocket", dx=2), 60)[None]])
    rocket = list(PHOTOS).index("rocket")
    expected = np.zeros(len(faces), bool)
    expected[[rocket, len(faces) - 1]] = True
    np.testing.assert_array_equal(twins.has_twin(faces, faces, exclude_self=True), expected)
    assert twins.has_twin(faces, faces).all()  # without it, every face is its own twin
    assert twins.nearest(faces[:1], faces[:1], exclude_self=True)[0].tolist() == [-1]  # nobody else to be


def test_distinct_skips_re_crops_of_earlier_picks_and_keeps_order():
    faces = np.stack([crop("astronaut"), crop("camera"), crop("astronaut", scale=1.1), crop("coffee"),
                      jpeg(crop("camera", dy=2), 50), crop("rocket")])
    assert twins.distinct(faces, [0, 1, 2, 3, 4, 5], 3) == [0, 1, 3]
    assert twins.distinct(faces, range(6), 10) == [0, 1, 3, 5]
    assert twins.distinct(faces, [5, 4, 3, 2, 1, 0], 10) == [5, 4, 3, 2]  # the first seen of a pair is kept
    assert twins.distinct(faces, np.array([2, 0, 1]), 2) == [2, 1]


def test_groups_finds_planted_groups(photos):
    planted = [crop("camera", dy=2, dx=-2), jpeg(crop("camera"), 40), crop("camera", scale=1.1),
               relit(crop("coins", scale=0.92), 1.1, -20)]
    faces = np.concatenate([photos, np.stack(planted)])
    n = len(photos)
    found = [g.tolist() for g in twins.groups(faces)]
    assert found == [[list(PHOTOS).index("camera"), n, n + 1, n + 2], [list(PHOTOS).index("coins"), n + 3]]


def test_blank_images_are_never_twins(photos):
    rng = np.random.default_rng(0)
    blanks = np.stack([np.full((48, 48), 128, np.uint8), np.full((48, 48), 128, np.uint8),
                       (120 + rng.normal(0, 1.5, (48, 48))).astype(np.uint8), np.zeros((48, 48), np.uint8)])
    faces = np.concatenate([photos[:4], blanks])
    index, similarity = twins.nearest(faces, faces, exclude_self=True)
    assert index[4:].tolist() == [-1] * 4 and similarity[4:].tolist() == [-1.0] * 4
    assert (index[:4] < 4).all()  # a blank frame is nobody's nearest
    assert not twins.has_twin(faces, faces, exclude_self=True).any()
    assert twins.groups(faces) == []
    assert twins.distinct(faces, range(len(faces)), 10) == list(range(len(faces)))


def test_groups_never_links_faces_distinct_kept():
    """What notebook 05 asserts of its gallery, on synthetic faces (many of them alike, see the gallery fixture)."""
    faces, _ = synthetic_faces({c: 6 for c in CLASSES}, seed=1, size=48)
    kept = twins.distinct(faces, range(len(faces)), len(faces))
    assert 5 < len(kept) < len(faces)
    assert twins.groups(faces[kept]) == []
