"""The notebooks run headless with papermill: parameters work, and 03's checkpoint feeds 04 and 05."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

papermill = pytest.importorskip("papermill")
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def run(name: str, tmp_path: Path, **params) -> dict:
    """Execute a notebook with papermill; returns the executed notebook."""
    out = tmp_path / f"out-{name}"
    return papermill.execute_notebook(str(NOTEBOOKS / name), str(out), parameters=params, cwd=str(NOTEBOOKS),
                                      progress_bar=False, kernel_name="python3")


def outputs_text(nb) -> str:
    """All stream and text outputs of an executed notebook, joined."""
    parts = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            parts.append(o.get("text", "") or o.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def test_train_notebook_feeds_evaluate_and_gallery(tmp_path, monkeypatch):
    monkeypatch.delenv("FERNB_EPOCHS", raising=False)  # the parameters below must hold, not the quick run
    monkeypatch.delenv("FERNB_CHECKPOINT", raising=False)
    ckpt = tmp_path / "ckpt"
    nb = run("03_train.ipynb", tmp_path, data="synthetic", model_name="fernet_s", epochs=2, out=str(ckpt))
    history = json.loads((ckpt / "config.json").read_text())["history"]  # -p epochs 2: the card's command, exactly
    assert [r["epoch"] for r in history] == [1, 2] and "2 epochs in" in outputs_text(nb)
    nb = run("03_train.ipynb", tmp_path, data="synthetic", minutes=0.1, overfit_minutes=0.2,
             out=str(tmp_path / "budget"))
    assert (tmp_path / "budget" / "config.json").exists() and "epochs in 0.1 min" in outputs_text(nb)
    for name in ("04_evaluate.ipynb", "05_prediction_gallery.ipynb"):
        nb = run(name, tmp_path, data="synthetic", checkpoint=str(ckpt))
        assert "fernet_s" in outputs_text(nb)


def test_real_data_smoke_run(real_root, tmp_path, monkeypatch):
    monkeypatch.delenv("FERNB_EPOCHS", raising=False)
    ckpt = tmp_path / "ckpt"
    nb = run("03_train.ipynb", tmp_path, data=str(real_root), epochs=1, out=str(ckpt))
    from fernb.data import load
    assert f"train {len(load(real_root, 'train'))} faces" in outputs_text(nb)
    for name in ("04_evaluate.ipynb", "05_prediction_gallery.ipynb"):
        nb = run(name, tmp_path, data=str(real_root), checkpoint=str(ckpt))
        assert "3589" in outputs_text(nb)
