"""`fernb demo` in a real browser: an uploaded photo and a (fake) webcam stream come back labelled.

Needs Gradio (the demo extra), playwright and Debian's chromium; it skips with the reason when one is missing.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio", reason="the demo extra is not installed: pip install -e '.[demo]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
skimage_data = pytest.importorskip("skimage.data")
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")


def write_y4m(path, frames, fps: int = 10) -> None:
    """RGB frames as a YUV4MPEG2 clip: the format Chromium's fake camera plays."""
    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            ycc = np.asarray(Image.fromarray(rgb).convert("YCbCr"))
            f.write(b"FRAME\n" + ycc[..., 0].tobytes())
            for k in (1, 2):
                f.write(np.asarray(Image.fromarray(ycc[..., k]).resize((w // 2, h // 2))).tobytes())


@pytest.fixture(scope="module")
def demo_url():
    """`fernb demo` on a free port of 127.0.0.1, with the packaged model."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "FERNB_CHECKPOINT"}
    proc = subprocess.Popen([sys.executable, "-m", "fernb", "demo", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(20)


def test_demo_labels_an_upload_and_a_webcam_stream(demo_url, tmp_path):
    head = np.asarray(Image.fromarray(skimage_data.astronaut()[:300, 100:400]).resize((480, 480)))
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[:, 80:560] = head
    write_y4m(tmp_path / "cam.y4m", [frame] * 20)
    Image.fromarray(skimage_data.astronaut()).save(tmp_path / "astronaut.png")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={tmp_path / 'cam.y4m'}"])
        page = browser.new_context(viewport={"width": 1300, "height": 900}, permissions=["camera"]).new_page()
        page.goto(demo_url)
        page.get_by_role("tab", name="Photo").click()
        page.locator("#photo-in input[type=file]").set_input_files(str(tmp_path / "astronaut.png"))
        page.wait_for_function("document.querySelector('#photo-bars').innerText.includes('%')", timeout=60_000)
        top = page.locator("#photo-bars").inner_text().split("\n")
        assert top[1] == "happy", top  # the label's heading: the largest face's top class
        page.get_by_role("tab", name="Webcam").click()
        page.get_by_text("Click to Access Webcam").click()
        page.locator("button:has-text('Record')").locator("visible=true").first.click()  # streaming starts
        page.wait_for_function("document.querySelector('#webcam-bars').innerText.includes('%')", timeout=60_000)
        bars = page.locator("#webcam-bars").inner_text()
        assert "happy" in bars and bars.count("%") == 7, bars  # streamed frames came back with seven bars
        if os.environ.get("FERNB_DEMO_SCREENSHOT"):
            page.screenshot(path=os.environ["FERNB_DEMO_SCREENSHOT"])
        browser.close()
