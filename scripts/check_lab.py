"""Open the series in JupyterLab in a real browser: every notebook renders, and 01 runs through Run All.

    apt-get install chromium && pip install -e ".[dev]"      # Debian's Chromium; playwright drives it
    python scripts/check_lab.py                               # screenshots in /tmp/fernb-lab
    python scripts/check_lab.py --out docs --only 01          # the README's screenshot

It starts JupyterLab on 127.0.0.1 with a token on a copy of notebooks/ (the repo's files are not touched), opens each
notebook in headless Chromium, runs notebook 01 on synthetic faces with Run All Cells, and saves a screenshot of
each. It fails on an error output, a dead kernel, or a notebook that does not render.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(root: Path, port: int, token: str) -> subprocess.Popen:
    """JupyterLab on 127.0.0.1:port serving root; returns once it answers."""
    env = dict(os.environ, FERNB_DATA="synthetic")  # notebook 01 runs on the synthetic faces, offline
    env.pop("MPLBACKEND", None)  # figures inline, as a student sees them
    lab = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
                            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(120):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
            return lab
        except OSError:
            time.sleep(0.5)
    lab.kill()
    sys.exit("check_lab: JupyterLab did not start within 60 s")


def open_notebook(page, base: str, name: str, token: str, n_cells: int) -> None:
    """Open a notebook and wait until all of its cells have rendered."""
    page.goto(f"{base}/lab/tree/{name}?token={token}")
    page.wait_for_function(f"document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell').length "
                           f">= {n_cells}", timeout=60_000)
    page.wait_for_timeout(1500)  # let images and markdown settle before the screenshot
    no = page.get_by_role("button", name="No", exact=True)
    if no.count():  # JupyterLab's one-time question about its news feed covers a corner of the page
        no.first.click()


def run_all(page, timeout_s: float) -> None:
    """Run All Cells from the Run menu, wait until no cell is queued or running, then save."""
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_text("Run All Cells", exact=True).click()
    page.wait_for_timeout(2000)
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        busy = page.evaluate("[...document.querySelectorAll('.jp-InputPrompt')].some(p => p.textContent.includes('*'))")
        if "Kernel Restarting" in page.content() or "Dead kernel" in page.content():
            raise SystemExit("check_lab: the kernel died while running the notebook")
        if not busy:
            break
        page.wait_for_timeout(1000)
    else:
        raise SystemExit(f"check_lab: Run All did not finish within {timeout_s:.0f} s")
    page.keyboard.press("Control+s")
    page.wait_for_timeout(2000)


def errors_in(path: Path) -> list[str]:
    """The error outputs of a saved notebook, one line each."""
    nb = json.loads(path.read_text())
    return [f"cell {i}: {o.get('ename')}: {o.get('evalue')}" for i, c in enumerate(nb["cells"])
            for o in c.get("outputs", []) if o.get("output_type") == "error"]


def main() -> None:
    """Open every notebook, run 01, screenshot each, and print what was checked."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="/tmp/fernb-lab", help="folder for the screenshots")
    p.add_argument("--only", nargs="*", help="notebook prefixes to open (default: all)")
    p.add_argument("--timeout", type=float, default=600, help="seconds Run All may take")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="fernb-lab-"))
    shutil.copytree(NOTEBOOKS, root / "notebooks")
    names = [n.name for n in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
             if not args.only or any(n.name.startswith(o) for o in args.only)]
    port, token, t0 = free_port(), secrets.token_hex(16), time.time()
    lab = start_lab(root, port, token)
    ran = 0
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for name in names:
                nb_path = root / "notebooks" / name
                n_cells = len(json.loads(nb_path.read_text())["cells"])
                open_notebook(page, f"http://127.0.0.1:{port}", f"notebooks/{name}", token, n_cells)
                if name.startswith("01"):
                    run_all(page, args.timeout)
                    ran += n_cells
                    if errors_in(nb_path):
                        raise SystemExit(f"check_lab: {name} has error outputs: {errors_in(nb_path)}")
                page.screenshot(path=str(out / f"{Path(name).stem}.png"))
                print(f"{name}: {n_cells} cells rendered" + (", Run All: no errors" if name.startswith("01") else ""),
                      flush=True)
            browser.close()
    finally:
        lab.terminate()
        lab.wait(10)
        shutil.rmtree(root, ignore_errors=True)
    print(f"check_lab: {len(names)} notebooks opened, {ran} cells run (notebook 01), {time.time() - t0:.0f} s; "
          f"screenshots in {out}")


if __name__ == "__main__":
    main()
