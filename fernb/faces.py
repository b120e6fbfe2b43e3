"""Faces in photos: read any photo, detect faces with OpenCV's bundled Haar cascade, crop them the FER-2013 way."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fernb.data import IMAGE_SIZE
from fernb.errors import PhotoError
from fernb.evaluate import Predictor, as_predictor
from fernb.images import open_image, why_missing

# Photos are shrunk to this longest side for detection, since Haar's cost grows with the pixels (README: photo
# latency). Faces smaller than about 8% of the longest side (32 px at 400) are missed.
DETECT_SIDE = 400
MARGIN = 0.1  # FER-2013 crops are a little looser than a Haar box: grow it by 10% per side
CROP_SIDE = 128  # a picture this small with no face found is taken as a face crop (FER-2013's are 48x48)


@dataclass
class Face:
    """One detected face: its box in the photo (x, y, width, height) and its 48x48 grey crop."""

    box: tuple[int, int, int, int]
    crop: np.ndarray  # uint8 [48, 48]


def read_photo(path: str | Path) -> np.ndarray:
    """Any photo file (RGB, RGBA, grey, palette, 16-bit; EXIF orientation honoured) as RGB uint8 [H, W, 3]."""
    path = Path(path)
    if path.is_dir():
        raise PhotoError(f"{path}: is a folder; pass photo files, e.g. {path}/*.jpg")
    if not path.is_file():
        raise PhotoError(f"{path}: {why_missing(path)}")
    if path.stat().st_size == 0:
        raise PhotoError(f"{path}: empty file; pass a JPEG or PNG photo")
    return np.asarray(open_image(path, PhotoError).convert("RGB"))


def to_grey(photo: np.ndarray) -> np.ndarray:
    """RGB, RGBA or grey uint8 array -> grey uint8 [H, W]."""
    if photo.ndim == 2:
        return photo
    im = Image.fromarray(photo[..., :3] if photo.shape[-1] >= 3 else photo[..., 0])
    return np.asarray(im.convert("L"))


@functools.cache
def _cascade():
    """OpenCV's frontal-face Haar cascade, loaded once (it ships inside opencv-python-headless)."""
    import cv2
    return cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"))


def detect(photo: np.ndarray, side: int = DETECT_SIDE, min_face: int = 32) -> list[tuple[int, int, int, int]]:
    """Face boxes (x, y, w, h) in photo coordinates, largest first; raise side to find smaller faces."""
    import cv2
    grey = to_grey(photo)
    scale = min(1.0, side / max(grey.shape))
    size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
    if min(size) < min_face:  # a sliver of a picture (a 40000x40 banner, say) holds no face this size
        return []
    small = cv2.resize(grey, size, interpolation=cv2.INTER_AREA) if scale < 1 else grey
    boxes = _cascade().detectMultiScale(cv2.equalizeHist(small), scaleFactor=1.15, minNeighbors=5,
                                        minSize=(min_face, min_face))
    boxes = [tuple(int(round(v / scale)) for v in b) for b in (boxes if len(boxes) else [])]
    return sorted(boxes, key=lambda b: -b[2] * b[3])


def crop(photo: np.ndarray, box: tuple[int, int, int, int], margin: float = MARGIN) -> np.ndarray:
    """The face in box, grown by margin per side, squared, grey and resized to 48x48 (edges padded by replication)."""
    grey = to_grey(photo)
    x, y, w, h = box
    side = int(round(max(w, h) * (1 + 2 * margin)))
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    pad = max(0, -x0, -y0, x0 + side - grey.shape[1], y0 + side - grey.shape[0])
    padded = np.pad(grey, pad, mode="edge") if pad else grey
    square = padded[y0 + pad:y0 + pad + side, x0 + pad:x0 + pad + side]
    return np.asarray(Image.fromarray(square).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS))


def detect_and_crop(photo: np.ndarray) -> list[Face]:
    """Every face in a photo, with its 48x48 crop."""
    grey = to_grey(photo)  # once, not again in detect and in every crop
    return [Face(b, crop(grey, b)) for b in detect(grey)]


def predict_crops(predictor: Predictor, crops: list[np.ndarray]):
    """Class probabilities [N, C] of 48x48 face crops, each averaged with its mirror image."""
    import torch
    return predictor.probs(torch.from_numpy(np.stack(crops)) if crops else torch.empty(0, IMAGE_SIZE, IMAGE_SIZE),
                           tta=True)


def predict_faces(model, photo: np.ndarray, classes) -> list[dict]:
    """Every face in a photo with its box and class probabilities, largest face first (model: a Predictor, or a
    model that one is made from for this photo)."""
    faces = detect_and_crop(photo)
    if not faces:
        return []
    predictor = as_predictor(model, classes)  # labels are the model's own classes, whatever the caller passed
    probs = predict_crops(predictor, [f.crop for f in faces])
    return [face_row(f.box, p, predictor.classes) for f, p in zip(faces, probs)]


def face_row(box, probs, classes) -> dict:
    """One face as predict reports it: its box, its most probable class and every class's probability."""
    return {"box": list(box), "label": classes[int(probs.argmax())],
            "probs": {c: round(float(v), 5) for c, v in zip(classes, probs)}}


def whole_face(photo: np.ndarray) -> np.ndarray:
    """A picture that is a face crop already, grey and resized to 48x48 as FER-2013's faces are read."""
    im = Image.fromarray(to_grey(photo))
    return np.asarray(im if im.size == (IMAGE_SIZE, IMAGE_SIZE) else im.resize((IMAGE_SIZE, IMAGE_SIZE),
                                                                                Image.Resampling.BICUBIC))


def predict_whole(model, photo: np.ndarray, classes) -> list[dict]:
    """The picture classified whole, as one face crop: its box is the whole picture."""
    predictor = as_predictor(model, classes)
    p = predict_crops(predictor, [whole_face(photo)])[0]
    return [face_row((0, 0, photo.shape[1], photo.shape[0]), p, predictor.classes)]


def annotate(photo: np.ndarray, faces: list[dict]) -> Image.Image:
    """The photo with a box and 'label 87%' drawn for every face."""
    from PIL import ImageDraw, ImageFont
    im = Image.fromarray(photo).convert("RGB")
    draw = ImageDraw.Draw(im)
    size = max(12, im.width // 40)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size default font
        font = ImageFont.load_default()
    for f in faces:
        x, y, w, h = f["box"]
        draw.rectangle([x, y, x + w, y + h], outline=(255, 200, 0), width=max(2, im.width // 250))
        text = f"{f['label']} {f['probs'][f['label']]:.0%}"
        draw.text((x, max(0, y - size - 4)), text, fill=(255, 200, 0), font=font, stroke_width=2, stroke_fill=(0, 0, 0))
    return im


def colab_snapshot(path: str = "snapshot.jpg", quality: float = 0.9) -> str:
    """Take a webcam photo in Google Colab (the browser asks for the camera) and save it; returns the path."""
    from base64 import b64decode
    from importlib import resources

    from google.colab.output import eval_js  # only exists on Colab
    from IPython.display import Javascript, display
    display(Javascript((resources.files("fernb") / "webcam.js").read_text()))
    data = eval_js(f"takePhoto({quality})")
    Path(path).write_bytes(b64decode(data.split(",")[1]))
    return path
