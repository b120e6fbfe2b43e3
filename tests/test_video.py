"""Emotions over time in a video built here from real photographs (scikit-image's samples)."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from fernb.cli import main
from fernb.data import CLASSES
from fernb.video import make_clip

skimage_data = pytest.importorskip("skimage.data")
cv2 = pytest.importorskip("cv2")
FPS, FACE_FRAMES, EMPTY_FRAMES = 10, 12, 5


def frame_with(photo: np.ndarray, scale: float, dx: int) -> np.ndarray:
    """A 640x480 RGB frame with photo scaled and shifted on a grey background."""
    canvas = np.full((480, 640, 3), 90, np.uint8)
    small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    h, w = small.shape[:2]
    x, y = 40 + dx, (480 - h) // 2
    canvas[y:y + h, x:x + w] = small[:, :min(w, 640 - x)]
    return canvas


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """12 frames of the astronaut (head and shoulders) moving right and growing, then 5 frames of a cup of coffee (no face), at 10 fps."""
    astronaut, coffee = skimage_data.astronaut()[:300, 100:400], skimage_data.coffee()  # her head and shoulders
    frames = ([frame_with(astronaut, 1.0 + 0.025 * i, 8 * i) for i in range(FACE_FRAMES)]
              + [frame_with(coffee, 0.9, 0)] * EMPTY_FRAMES)
    return make_clip(tmp_path_factory.mktemp("video") / "clip.avi", frames, fps=FPS)


def rows_of(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_faces_are_tracked_and_timed_frame_by_frame(clip, tmp_path, capsys):
    assert main(["predict", str(clip), "--csv", str(tmp_path / "e.csv"), "--annotate", str(tmp_path / "ann")]) == 0
    rows = rows_of(tmp_path / "e.csv")
    assert list(rows[0]) == ["time_s", "frame", "face_id", "x", "y", "w", "h", *CLASSES]
    frames = [int(r["frame"]) for r in rows]
    assert frames == list(range(FACE_FRAMES))  # one face on each face frame, none on the coffee
    assert {r["face_id"] for r in rows} == {"0"}  # the same face keeps one id as it moves
    assert all(float(r["time_s"]) == pytest.approx(int(r["frame"]) / FPS, abs=1e-3) for r in rows)
    assert all(sum(float(r[c]) for c in CLASSES) == pytest.approx(1, abs=1e-3) for r in rows)
    xs = [int(r["x"]) for r in rows]
    assert xs[-1] > xs[0] + 40  # the box followed the face to the right
    assert (tmp_path / "ann" / "clip_annotated.mp4").stat().st_size > 1000


def test_every_and_fps_sample_frames_and_smoothing_steadies(clip, tmp_path):
    assert main(["predict", str(clip), "--csv", str(tmp_path / "a.csv"), "--every", "3"]) == 0
    assert [int(r["frame"]) for r in rows_of(tmp_path / "a.csv")] == [0, 3, 6, 9]
    assert main(["predict", str(clip), "--csv", str(tmp_path / "b.csv"), "--fps", "5"]) == 0
    assert [int(r["frame"]) for r in rows_of(tmp_path / "b.csv")] == [0, 2, 4, 6, 8, 10]
    assert main(["predict", str(clip), "--csv", str(tmp_path / "raw.csv")]) == 0
    assert main(["predict", str(clip), "--csv", str(tmp_path / "smooth.csv"), "--smooth", "0.8"]) == 0
    raw = [float(r["happy"]) for r in rows_of(tmp_path / "raw.csv")]
    smooth = [float(r["happy"]) for r in rows_of(tmp_path / "smooth.csv")]
    assert smooth[0] == pytest.approx(raw[0], abs=1e-4)  # the first frame is as it is
    for k in range(1, len(raw)):  # then each frame blends 20% of its own with 80% of the face's history
        assert smooth[k] == pytest.approx(0.8 * smooth[k - 1] + 0.2 * raw[k], abs=1e-3)


def test_a_video_without_faces_gives_an_empty_csv_and_says_so(tmp_path, capsys):
    path = make_clip(tmp_path / "cup.avi", [frame_with(skimage_data.coffee(), 0.9, 0)] * 3, fps=FPS)
    assert main(["predict", str(path), "--csv", str(tmp_path / "e.csv")]) == 0
    assert rows_of(tmp_path / "e.csv") == [] and "no face" in capsys.readouterr().err


@pytest.mark.parametrize("make,says", [
    (lambda p: p.mkdir(), "is a folder"),
    (lambda p: p.write_bytes(b""), "empty file"),
    (lambda p: p.write_text("not a video at all"), "no frame could be read"),
])
def test_bad_videos_are_one_line_and_the_batch_goes_on(clip, tmp_path, capsys, make, says):
    bad = tmp_path / "bad.mp4"
    make(bad)
    assert main(["predict", str(bad), str(clip), "--csv", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"fernb: error: {bad}: {says}" in err and "Traceback" not in err
    assert len(rows_of(tmp_path / "out" / "clip.csv")) == FACE_FRAMES  # the good video was still analysed
    assert not (tmp_path / "out" / "bad.csv").exists()


def test_a_truncated_video_is_one_line(clip, tmp_path, capsys):
    cut = tmp_path / "cut.avi"
    cut.write_bytes(clip.read_bytes()[:300])  # the header and nothing else
    assert main(["predict", str(cut), "--csv", str(tmp_path / "e.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cut.avi" in err and not (tmp_path / "e.csv").exists()
