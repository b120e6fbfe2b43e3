"""Photo prediction speed on this CPU: one 512x512 photo (detect + classify), batch throughput, and ONNX Runtime.

    python benchmarks/photo_speed.py [--checkpoint DIR]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from skimage import data as samples

from fernb.checkpoint import load_model
from fernb.faces import detect_and_crop, predict_faces


def timed(fn, repeat: int) -> list[float]:
    """Wall-clock milliseconds of repeated calls, after one warm-up call."""
    fn()
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(1000 * (time.perf_counter() - t))
    return out


def main() -> None:
    """Print latency and throughput figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="checkpoint directory (default: the packaged model, else runs/latest)")
    p.add_argument("--repeat", type=int, default=30)
    args = p.parse_args()
    model, meta = load_model(args.checkpoint)
    photo = samples.astronaut()  # 512x512 RGB, one face
    ms = timed(lambda: predict_faces(model, photo, meta["classes"]), args.repeat)
    det = timed(lambda: detect_and_crop(photo), args.repeat)
    print(f"{meta['model']}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"one 512x512 photo, detect + classify (flip TTA): median {statistics.median(ms):.1f} ms "
          f"(detection alone {statistics.median(det):.1f} ms)")
    photos = [np.ascontiguousarray(np.roll(photo, 7 * i, axis=1)) for i in range(16)]
    t = time.perf_counter()
    for ph in photos:
        predict_faces(model, ph, meta["classes"])
    print(f"batch of {len(photos)} photos one after another: {len(photos) / (time.perf_counter() - t):.1f} photos/s")
    faces = torch.randint(0, 256, (512, 48, 48), dtype=torch.uint8)
    from fernb.evaluate import run_model
    ms = timed(lambda: run_model(model, faces), 5)
    print(f"torch, 512 face crops: {512 / statistics.median(ms) * 1000:.0f} faces/s")
    try:
        import onnxruntime as ort

        from fernb.export import export_onnx
    except ImportError:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, Path(tmp) / "m.onnx")
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        x = faces[:, None].float().numpy()
        ms = timed(lambda: sess.run(["probs"], {"pixels": x}), 5)
        one = timed(lambda: sess.run(["probs"], {"pixels": x[:1]}), 50)
    print(f"onnxruntime, 512 face crops: {512 / statistics.median(ms) * 1000:.0f} faces/s; "
          f"one face: {statistics.median(one):.2f} ms")


if __name__ == "__main__":
    main()
