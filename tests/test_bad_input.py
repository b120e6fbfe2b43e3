"""Every kind of bad input gets one clear line naming the culprit, and the CLI exits 2 without a traceback."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from fernb.cli import main
from fernb.data import CLASSES, load, read_pool
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
    (tiny_root / "train" / "contempt").mkdir()  # a class of your own is welcome, an empty one is not
    fails(capsys, ["info", "--data", str(tiny_root)], "contempt", "class folder is empty")


def test_missing_class_folder_is_a_subset_and_said(capsys, tiny_root):
    shutil.rmtree(tiny_root / "test" / "disgust")
    assert main(["info", "--data", str(tiny_root), "--json"]) == 0
    out = capsys.readouterr()
    assert "holds no faces of disgust" not in out.err  # train/ still has disgust
    assert json.loads(out.out)["splits"]["test"]["per_class"]["disgust"] == 0


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


# ---------------------------------------------------------------- options, outputs and checkpoints (issue 17)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished one-epoch run on synthetic faces, with its checkpoint and resume state."""
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--data", "synthetic", "--model", "fernet_s", "--epochs", "1", "--batch-size", "64",
                 "--out", str(out), "--json"]) == 0
    return out


def snapshot(folder) -> dict:
    """Every file under folder and its bytes, to show that a refused command touched nothing."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("argv,says", [(["--epochs", "0"], "epochs=0"), (["--minutes", "0"], "minutes=0"),
                                       (["--epochs", "-3"], "epochs=-3"), (["--batch-size", "-4"], "batch_size=-4"),
                                       (["--batch-size", "0"], "batch_size=0"), (["--lr", "-1"], "lr=-1"),
                                       (["--minutes", "-1"], "minutes=-1"), ([], "--resume"),
                                       (["--force", "--epochs", "0"], "epochs=0")])
def test_a_refused_train_leaves_an_existing_checkpoint_byte_for_byte(capsys, run_dir, argv, says):
    before = snapshot(run_dir)
    capsys.readouterr()
    fails(capsys, ["train", "--data", "synthetic", "--out", str(run_dir)] + argv, says)
    assert snapshot(run_dir) == before


def test_resume_needs_a_run_and_keeps_its_model(capsys, run_dir, tmp_path):
    fails(capsys, ["train", "--data", "synthetic", "--resume", "--out", str(tmp_path)], "no run to resume")
    before = snapshot(run_dir)
    fails(capsys, ["train", "--data", "synthetic", "--resume", "--model", "fernet_l", "--out", str(run_dir)],
          "--model fernet_l (the run has fernet_s)", "drop them")
    assert snapshot(run_dir) == before


def test_resume_continues_the_saved_run_with_its_own_options(capsys, run_dir, tmp_path):
    import shutil as sh
    sh.copytree(run_dir, tmp_path / "run")
    before = (tmp_path / "run" / "weights.safetensors").read_bytes()
    assert main(["train", "--data", "synthetic", "--resume", "--out", str(tmp_path / "run"), "--json"]) == 0
    import json
    summary = json.loads(capsys.readouterr().out)
    assert summary["model"] == "fernet_s" and summary["epochs_run"] == 1  # the saved run (1 epoch) was already done
    assert (tmp_path / "run" / "weights.safetensors").read_bytes() == before  # so no step ran: nothing retrained


def test_resume_reads_a_config_with_options_fernb_no_longer_has(capsys, run_dir, tmp_path):
    import json
    import shutil as sh
    sh.copytree(run_dir, tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    meta["config"]["self_distill"], meta["config"]["augment"]["crop"] = 0.0, 0  # as runs of earlier versions wrote
    (tmp_path / "run" / "config.json").write_text(json.dumps(meta))
    assert main(["train", "--data", "synthetic", "--resume", "--out", str(tmp_path / "run"), "--json"]) == 0
    (tmp_path / "run" / "config.json").write_text(json.dumps({"model": "fernet_s", "classes": list(CLASSES)}))
    fails(capsys, ["train", "--data", "synthetic", "--resume", "--out", str(tmp_path / "run")], "no training config")


def test_demo_on_a_taken_port_is_one_line(capsys):
    import socket
    pytest.importorskip("gradio")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        fails(capsys, ["demo", "--port", str(s.getsockname()[1])], "cannot serve there", "--port")
    fails(capsys, ["demo", "--port", "70000"], "port=70000")


@pytest.mark.parametrize("content", ["{}", "[]", '{"model": "fernet_s"}'])
def test_a_config_that_is_json_but_not_a_checkpoints(capsys, run_dir, tmp_path, content):
    import shutil as sh
    sh.copytree(run_dir, tmp_path / "c")
    (tmp_path / "c" / "config.json").write_text(content)
    fails(capsys, ["evaluate", "--data", "synthetic", "--checkpoint", str(tmp_path / "c")], "not a fernb checkpoint")


def test_a_pickle_under_the_safetensors_name_is_named_a_pickle(capsys, run_dir, tmp_path):
    import shutil as sh

    import torch
    sh.copytree(run_dir, tmp_path / "c")
    torch.save({"w": torch.zeros(1)}, tmp_path / "c" / "weights.safetensors")
    fails(capsys, ["evaluate", "--data", "synthetic", "--checkpoint", str(tmp_path / "c")], "pickled")


def test_outputs_are_checked_before_any_work(capsys, run_dir, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    fails(capsys, ["export", "--checkpoint", str(run_dir), "--out", str(tmp_path)], "is a folder")
    fails(capsys, ["export", "--checkpoint", str(run_dir), "--out", str(a_file / "m.onnx")], "is a file")
    fails(capsys, ["predict", str(a_file), "--annotate", str(a_file)], "is a file")
    fails(capsys, ["download", str(a_file)], "is a file")
    fails(capsys, ["train", "--data", "synthetic", "--out", str(a_file)], "is a file")
    assert a_file.read_text() == "keep me"


def test_a_failed_download_leaves_nothing_behind(capsys, tmp_path):
    from tests.conftest import git_repo_of_faces
    repo = git_repo_of_faces(tmp_path / "repo", per_class=1)
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "notes.txt").write_text("my notes")
    fails(capsys, ["download", str(dest), "--url", str(repo)], "expected 28709")
    assert sorted(p.name for p in dest.iterdir()) == ["notes.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".fernb-download")]


def test_csv_that_is_not_text_and_a_pixel_out_of_range(capsys, tmp_path):
    (tmp_path / "bin.csv").write_bytes(b"emotion,pixels,Usage\n\xff\xfe\x00\x81garbage")
    fails(capsys, ["info", "--data", str(tmp_path / "bin.csv")], "bin.csv", "not a text file")
    row = " ".join(["300"] + ["0"] * 2303)
    (tmp_path / "f.csv").write_text(f"emotion,pixels,Usage\n0,{row},Training\n")
    fails(capsys, ["info", "--data", str(tmp_path / "f.csv")], "f.csv:2", "a value of 300")


def test_predict_on_a_folder_says_so(capsys, tmp_path):
    assert main(["predict", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and "Traceback" not in err


NUMERIC = {("train", "--epochs"): ["0", "-1", "abc", "1e999", "2.5"],
           ("train", "--minutes"): ["0", "-1", "abc", "1e999", "nan"],
           ("train", "--batch-size"): ["0", "-1", "abc", "1e999"],
           ("train", "--lr"): ["0", "-1", "abc", "1e999", "nan"],
           ("train", "--seed"): ["-1", "abc", "1e999"],
           ("train", "--val-fraction"): ["-0.1", "1", "2", "abc", "nan"],
           ("info", "--val-fraction"): ["0", "-1", "1", "abc", "nan"],
           ("info", "--seed"): ["-1", "abc", "1e999"],
           ("predict", "--every"): ["0", "-1", "abc", "1e999"],
           ("predict", "--fps"): ["0", "-1", "abc", "nan", "1e999"],
           ("predict", "--smooth"): ["-0.1", "1", "abc", "nan"]}


@pytest.mark.parametrize("command,option,value", [(c, o, v) for (c, o), vs in NUMERIC.items() for v in vs])
def test_every_bad_numeric_option_is_one_line_and_exit_2(capsys, tmp_path, command, option, value):
    where = [str(tmp_path / "clip.mp4")] if command == "predict" else ["--data", "synthetic"]
    argv = [command, *where, option, value] + (["--out", str(tmp_path / "o")] if command == "train" else [])
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "NOTICE" not in line]
    assert len(err) == 1 and err[0].startswith("fernb: error:") and "Traceback" not in err[0], err
    assert option.strip("-").replace("-", "_") in err[0] or option in err[0], err
    assert not (tmp_path / "o").exists()


def test_a_model_that_cannot_take_48px_faces_is_one_line(capsys, tmp_path):
    fails(capsys, ["train", "--data", "synthetic", "--model", "vit_tiny_patch16_224", "--epochs", "1",
                   "--out", str(tmp_path / "o")], "vit_tiny_patch16_224", "cannot take 48x48")
