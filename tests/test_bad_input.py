"""Every kind of bad input gets one clear line naming the culprit, and the CLI exits 2 without a traceback."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from PIL import Image

from fernb.cli import main
from fernb.data import load, read_pool
from fernb.errors import DataError


def fails(capsys, argv, *fragments):
    """Run the CLI, expect exit 2 and one error line holding every fragment."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("fernb: error:"), err
    for f in fragments:
        assert f in err[-1], (f, err[-1])
    assert "Traceback" not in "\n".join(err)


def test_missing_path(capsys, tmp_path):
    fails(capsys, ["info", "--data", str(tmp_path / "nope")], "nope", "no such file or folder")


def test_folder_without_splits(capsys, tmp_path):
    fails(capsys, ["info", "--data", str(tmp_path)], "neither train/ nor test/")


def test_unknown_class_folder(capsys, tiny_root):
    (tiny_root / "train" / "contempt").mkdir()
    fails(capsys, ["info", "--data", str(tiny_root)], "contempt", "unknown class")


def test_missing_class_folder(capsys, tiny_root):
    shutil.rmtree(tiny_root / "test" / "disgust")
    fails(capsys, ["info", "--data", str(tiny_root)], "disgust", "missing class")


def test_empty_class_folder(capsys, tiny_root):
    for f in (tiny_root / "train" / "fear").iterdir():
        f.unlink()
    fails(capsys, ["info", "--data", str(tiny_root)], "fear", "empty")


def test_non_image_file(capsys, tiny_root):
    (tiny_root / "train" / "sad" / "notes.txt").write_text("hello")
    fails(capsys, ["info", "--data", str(tiny_root)], "notes.txt", "not an image")


def test_corrupt_image(capsys, tiny_root):
    (tiny_root / "test" / "happy" / "PublicTest_bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    fails(capsys, ["info", "--data", str(tiny_root)], "PublicTest_bad.jpg", "corrupt")


def test_wrong_size_image_is_resized_with_a_note(tiny_root, capsys):
    Image.new("RGB", (100, 80), (200, 10, 10)).save(tiny_root / "train" / "angry" / "Training_big.png")
    pool = read_pool(tiny_root)
    assert pool.images.shape[1:] == (48, 48) and pool.resized == 1
    assert "Training_big.png" in capsys.readouterr().err


def test_csv_with_wrong_columns(capsys, tmp_path):
    (tmp_path / "f.csv").write_text("label,image\n1,2\n")
    fails(capsys, ["info", "--data", str(tmp_path / "f.csv")], "f.csv", "expected emotion,pixels,Usage")


@pytest.mark.parametrize("row,what", [("3,1 2 3,Training", "pixels must be 2304"),
                                      ("x,1 2,Training", "malformed row"),
                                      ("9," + " ".join(["0"] * 2304) + ",Training", "emotion 9"),
                                      ("3," + " ".join(["0"] * 2304) + ",Other", "Usage 'Other'")])
def test_csv_with_a_bad_row(capsys, tmp_path, row, what):
    good = "0," + " ".join(["1"] * 2304) + ",Training"
    (tmp_path / "f.csv").write_text(f"emotion,pixels,Usage\n{good}\n{row}\n")
    fails(capsys, ["info", "--data", str(tmp_path / "f.csv")], "f.csv:3", what)


def test_unknown_split():
    with pytest.raises(DataError, match="unknown split 'dev'"):
        load("synthetic", "dev")


def test_console_script_prints_no_traceback(tmp_path):
    run = subprocess.run([sys.executable, "-m", "fernb", "info", "--data", str(tmp_path / "nope")],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().count("\n") == 0 and "nope" in run.stderr
