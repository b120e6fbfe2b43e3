"""Emotions over time: the faces of every analysed video frame, tracked across frames, classified, written as CSV."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from fernb.errors import PhotoError, check_number
from fernb.evaluate import as_predictor
from fernb.files import atomic_write
from fernb.images import why_missing

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
BOX = ("x", "y", "w", "h")


def check_options(every: int = 1, fps: float | None = None, smooth: float = 0.0) -> None:
    """Refuse video options out of range, with one line naming the option."""
    check_number("every", every, 1, whole=True)
    check_number("fps", fps, 0, lo_open=True, optional=True)
    check_number("smooth", smooth, 0, 1)


def is_video(path: str | Path) -> bool:
    """True for a file name that ends like a video."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def iou(a, b) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    w = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    h = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / (a[2] * a[3] + b[2] * b[3] - inter) if inter else 0.0


class Tracker:
    """Gives each face an id that it keeps across frames: a box takes the id of the last-seen box it overlaps most
    (greedy, largest face first); a face unseen for more than max_gap analysed frames is forgotten.

    By hand, not a tracking library: a dozen lines of box overlap are enough for faces that move a little per frame.
    """

    def __init__(self, min_iou: float = 0.3, max_gap: int = 5):
        self.min_iou, self.max_gap, self.next_id = min_iou, max_gap, 0
        self.tracks: dict[int, tuple[tuple, int]] = {}  # id -> (last box, analysed frames since it was seen)

    def assign(self, boxes: list[tuple]) -> list[int]:
        """The id of each box of this frame."""
        free, ids = dict(self.tracks), []
        for box in boxes:
            best = max(free, key=lambda k: iou(free[k][0], box), default=None)
            if best is not None and iou(free[best][0], box) >= self.min_iou:
                free.pop(best)
                ids.append(best)
            else:
                ids.append(self.next_id)
                self.next_id += 1
        self.tracks = {k: (b, gap + 1) for k, (b, gap) in free.items() if gap + 1 <= self.max_gap}
        self.tracks.update({i: (tuple(b), 0) for i, b in zip(ids, boxes)})
        return ids


def open_video(path: str | Path):
    """An OpenCV capture of path and its frame rate; one line naming the file when OpenCV cannot read it."""
    import cv2
    path = Path(path)
    if path.is_dir():
        raise PhotoError(f"{path}: is a folder; pass video files, e.g. {path}/*.mp4")
    if not path.is_file():
        raise PhotoError(f"{path}: {why_missing(path)}")
    if path.stat().st_size == 0:
        raise PhotoError(f"{path}: empty file; pass a video file")
    if _is_picture(path):
        raise PhotoError(f"{path}: a still image under a video's name; rename it (.jpg, .png) to read it as a photo")
    cap = cv2.VideoCapture(str(path))
    ok, first = cap.read() if cap.isOpened() else (False, None)
    if not ok:
        cap.release()
        raise PhotoError(f"{path}: no frame could be read (not a video, truncated, or a codec OpenCV lacks); "
                         "convert it, e.g. ffmpeg -i IN -c:v libx264 OUT.mp4")
    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
    return cap, cap.get(cv2.CAP_PROP_FPS) or 25.0  # some containers store no rate: assume 25


def _is_picture(path: Path) -> bool:
    """True when Pillow knows the file as a still image (OpenCV would read a JPEG named .mp4 as a one-frame video)."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            return im.format not in ("GIF", "MPO") or getattr(im, "n_frames", 1) == 1
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return False


def frame_step(rate: float, every: int = 1, fps: float | None = None) -> int:
    """Analyse every step-th frame: every, or as many as give about fps frames a second."""
    return max(1, round(rate / fps)) if fps else max(1, every)


def frames(cap, rate: float, step: int, name: str = "video"):
    """Yield (frame number, time in seconds, RGB frame) of every step-th frame of an open capture; releases it."""
    import cv2
    total = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))) or None  # what the container says; some say nothing
    n = 0
    try:
        for n in tqdm(range(total or 10**9), desc=name, unit="frame", leave=False):
            ok, bgr = cap.read()
            if not ok:
                break
            if n % step == 0:
                yield n, n / rate, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        else:
            n = total or n
    finally:
        cap.release()
    if total and n < total - max(2, total // 20):  # a few frames short is an estimate's error; more is damage
        raise PhotoError(f"{name}: the video stops after {n} of the {total} frames it says it has (truncated or "
                         "damaged); repair it, e.g. ffmpeg -i IN -c:v libx264 OUT.mp4, and run again")


def analyse(model, path: str | Path, classes, every: int = 1, fps: float | None = None, smooth: float = 0.0,
            annotated: str | Path | None = None) -> list[dict]:
    """One row per face per analysed frame: time, frame, face id, box and the class probabilities;
    smooth in [0, 1) blends each face's probabilities with its previous ones (an exponential moving average).
    model: a Predictor, or a model that one is made from, once for the whole video."""
    if annotated is not None:  # into a temp file, renamed when the video is done: never half a video under its name
        rows: list[dict] = []
        atomic_write(annotated, lambda tmp: rows.extend(_analyse(model, path, classes, every, fps, smooth, tmp)))
        return rows
    return _analyse(model, path, classes, every, fps, smooth, annotated)


def _analyse(model, path, classes, every, fps, smooth, annotated) -> list[dict]:
    """analyse, writing the annotated video (if any) straight to `annotated`."""
    from fernb.faces import annotate, detect_and_crop, predict_crops
    fast = as_predictor(model, classes)
    classes = fast.classes  # the model's own, whatever the caller passed
    cap, rate = open_video(path)
    step = frame_step(rate, every, fps)
    tracker, last, rows, writer = Tracker(), {}, [], None
    for n, t, rgb in frames(cap, rate, step, Path(path).name):
        found = detect_and_crop(rgb)
        probs = predict_crops(fast, [f.crop for f in found]) if found else torch.empty(0, len(classes))
        for face_id, face, p in zip(tracker.assign([f.box for f in found]), found, probs):
            p = smooth * last[face_id] + (1 - smooth) * p if face_id in last and smooth else p
            last[face_id] = p
            rows.append({"time_s": round(t, 3), "frame": n, "face_id": face_id, **dict(zip(BOX, face.box)),
                         **{c: round(float(v), 5) for c, v in zip(classes, p)}})
        if annotated is not None:
            writer = writer or _writer(annotated, rgb.shape, rate / step)
            faces = [{"box": [r[k] for k in BOX], "label": max(classes, key=r.get), "probs": r}
                     for r in rows[len(rows) - len(found):]]  # this frame's rows: the last len(found)
            writer.write(np.asarray(annotate(rgb, faces))[..., ::-1].copy())
    if writer is not None:
        writer.release()
    return rows


def _writer(path: str | Path, shape: tuple, fps: float):
    """An OpenCV video writer for frames of this shape: MJPG in .avi, else mp4v (every OpenCV build writes both)."""
    import cv2
    fourcc = "MJPG" if Path(path).suffix.lower() == ".avi" else "mp4v"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (shape[1], shape[0]))
    if not writer.isOpened():
        raise PhotoError(f"{path}: OpenCV cannot write a video there (a .mp4 or .avi name in a writable folder "
                         "is needed); pick another path")
    return writer


def make_clip(path: str | Path, frames_rgb, fps: float = 10.0) -> Path:
    """Write RGB frames (all of one size) as a video file (MJPG in .avi, or mp4v): for demos and tests."""
    frames_rgb = list(frames_rgb)
    writer = _writer(path, frames_rgb[0].shape, fps)
    for f in frames_rgb:
        writer.write(np.ascontiguousarray(f[..., ::-1]))
    writer.release()
    return Path(path)


def write_csv(rows: list[dict], path: str | Path, classes) -> Path:
    """The rows as CSV with a header, written atomically (a killed run leaves no half file)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["time_s", "frame", "face_id", *BOX, *classes])
            w.writeheader()
            w.writerows(rows)
    return atomic_write(path, write)
