"""Live speed: frames per second of detect + classify on a 640x480 frame with one face, and of video analysis.

    python benchmarks/live_speed.py
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/live_speed.py   # the AVX2 kernels

Uses the packaged model and scikit-image's astronaut (head and shoulders) on a grey 640x480 frame.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data as samples

from _cpu import cpu_summary
from fernb.checkpoint import load_model
from fernb.evaluate import Predictor
from fernb.faces import detect_and_crop, predict_crops
from fernb.video import analyse, make_clip


def test_frame() -> np.ndarray:
    """640x480 RGB: the astronaut's head and shoulders, 360 px tall, on grey."""
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[60:420, 140:500] = np.asarray(Image.fromarray(samples.astronaut()[:300, 100:400]).resize((360, 360)))
    return frame


def main() -> None:
    """Time detection, classification and both together per frame, then a whole clip through fernb.video.analyse."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=50)
    p.add_argument("--frames", type=int, default=100, help="frames in the clip for the video figure")
    args = p.parse_args()
    print(f"torch {torch.__version__}; {cpu_summary()}")
    model, meta = load_model()
    fast = Predictor(model, meta["classes"])  # what fernb predict, video and the demo run
    frame = test_frame()
    crops = [f.crop for f in detect_and_crop(frame)]
    assert len(crops) == 1, "the test frame should hold one face"
    for name, fn in (("detect", lambda: detect_and_crop(frame)), ("classify", lambda: predict_crops(fast, crops)),
                     ("detect + classify", lambda: predict_crops(fast, [f.crop for f in detect_and_crop(frame)]))):
        fn()
        ms = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            fn()
            ms.append(1000 * (time.perf_counter() - t))
        print(f"{name:18s} median {statistics.median(ms):6.1f} ms  ({1000 / statistics.median(ms):5.1f} frames/s)")
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "clip.avi", [np.roll(frame, 2 * i, axis=1) for i in range(args.frames)], fps=25)
        t = time.perf_counter()
        rows = analyse(model, clip, meta["classes"])
        seconds = time.perf_counter() - t
    print(f"video analysis ({meta['model']}, {args.frames} frames of 640x480, every frame): "
          f"{args.frames / seconds:5.1f} frames/s, {len(rows)} face rows")


if __name__ == "__main__":
    main()
